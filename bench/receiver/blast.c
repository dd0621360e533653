/*
 * blast.c - POSTs one body to a URL as fast as libcurl's multi interface
 * allows, set up the way the service's delivery sender sets it up
 * (processor-worker/delivery.c): one easy handle per request, created and
 * cleaned up around it, the connections reused through the multi handle's
 * pool, CONCURRENCY requests in flight, at most HOST_CONNS connections to
 * the host, the Standard Webhooks headers (a fresh webhook-id per request, a
 * fixed signature: nothing is signed), a 10 ms poll between rounds. No
 * database, no rendering, no signing: what is left is the HTTP client and
 * the receiver. bench/delivery.sh uses it as a ceiling next to the service.
 *
 *   blast URL BODY_FILE SECONDS [CONCURRENCY [HOST_CONNS [ID_PREFIX]]]
 *
 * Prints one line:
 *   RESULT requests=N ok=N errors=N duration_s=S rps=R
 *
 * Build: cc -O2 -o blast blast.c $(pkg-config --cflags --libs libcurl)
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    struct curl_slist *headers;
} xfer_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static size_t discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    (void)ptr;
    (void)userdata;
    return size * nmemb;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: blast URL BODY_FILE SECONDS [CONCURRENCY [HOST_CONNS [ID_PREFIX]]]\n");
        return 2;
    }
    const char *url = argv[1];
    double secs = atof(argv[3]);
    long conc = argc > 4 ? atol(argv[4]) : 256;
    long host_conns = argc > 5 ? atol(argv[5]) : 64;
    const char *prefix = argc > 6 ? argv[6] : "blast";
    FILE *f = fopen(argv[2], "rb");
    if (f == NULL) {
        perror(argv[2]);
        return 2;
    }
    static char body[1 << 20];
    size_t blen = fread(body, 1, sizeof(body) - 1, f);
    fclose(f);
    body[blen] = '\0';

    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURLM *multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, conc);
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, host_conns);

    uint64_t started = 0, ok = 0, errors = 0;
    long inflight = 0;
    double t0 = now_s(), deadline = t0 + secs;
    for (;;) {
        double t = now_s();
        bool adding = t < deadline;
        if (!adding && inflight == 0)
            break;
        while (adding && inflight < conc) {
            xfer_t *x = calloc(1, sizeof(*x));
            char line[160];
            x->headers = curl_slist_append(x->headers, "Content-Type: application/json");
            x->headers = curl_slist_append(x->headers, "User-Agent: blast");
            x->headers = curl_slist_append(x->headers, "Expect:");
            snprintf(line, sizeof(line), "webhook-id: %s_%llu", prefix,
                     (unsigned long long)started);
            x->headers = curl_slist_append(x->headers, line);
            snprintf(line, sizeof(line), "webhook-timestamp: %lld", (long long)time(NULL));
            x->headers = curl_slist_append(x->headers, line);
            x->headers = curl_slist_append(
                x->headers, "webhook-signature: v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
            CURL *e = curl_easy_init();
            curl_easy_setopt(e, CURLOPT_URL, url);
            curl_easy_setopt(e, CURLOPT_POST, 1L);
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)blen);
            curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
            curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 15000L);
            curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
            curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
            curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
            curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
            curl_easy_setopt(e, CURLOPT_PRIVATE, x);
            curl_multi_add_handle(multi, e);
            inflight++;
            started++;
        }
        int running = 0;
        curl_multi_perform(multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            CURL *e = msg->easy_handle;
            long status = 0;
            xfer_t *x = NULL;
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
            curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
            if (msg->data.result == CURLE_OK && status >= 200 && status < 300)
                ok++;
            else
                errors++;
            curl_multi_remove_handle(multi, e);
            curl_easy_cleanup(e);
            curl_slist_free_all(x->headers);
            free(x);
            inflight--;
        }
        curl_multi_poll(multi, NULL, 0, 10, NULL);
    }
    double dur = now_s() - t0;
    printf("RESULT requests=%llu ok=%llu errors=%llu duration_s=%.3f rps=%.1f\n",
           (unsigned long long)(ok + errors), (unsigned long long)ok,
           (unsigned long long)errors, dur, (double)(ok + errors) / dur);
    curl_multi_cleanup(multi);
    curl_global_cleanup();
    return errors > 0 ? 1 : 0;
}
