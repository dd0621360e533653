/*
 * receiver.c - a fast local webhook receiver for bench/delivery.sh.
 *
 * One thread, epoll, HTTP/1.1 with keep-alive. Every POST, whatever its path,
 * is answered "200 OK" with an empty body as soon as its body is in, and
 * recorded: the arrival time (wall clock, microseconds), the webhook-id
 * header, and the top-level "event_id" and the first "sent_at_us" number
 * found in the body. Requests with the same webhook-id are counted apart, so
 * duplicates show. Nothing is written while it runs: the records stay in
 * memory until asked for.
 *
 *   receiver -p PORT [-b ADDR] [-o RECORDS] [-s SAMPLE]
 *
 *   GET /stats  one JSON object: requests, distinct webhook-ids, duplicates,
 *               requests without a webhook-id or webhook-signature header,
 *               connections accepted and most open at once, first and last
 *               arrival and the arrival of the last new webhook-id (us)
 *   GET /dump   writes the records to RECORDS, one a line, tab separated:
 *               arrival_us webhook_id event_id sent_at_us (\N when absent),
 *               then answers 200
 *   -s SAMPLE   the body of the first POST is saved there
 *
 * Build: cc -O2 -o receiver receiver.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ID_MAX 64
#define MAX_REQUEST (8 << 20)

typedef struct {
    int64_t arrival_us;
    int64_t sent_us; /* -1: none in the body */
    char id[ID_MAX];
    char event_id[ID_MAX];
} rec_t;

typedef struct {
    int fd;
    char *in;
    size_t in_len, in_cap;
    char *out;
    size_t out_len, out_off, out_cap;
    bool want_out;
    bool close_after;
} conn_t;

static rec_t *recs;
static size_t nrecs, cap_recs;
static uint32_t *set; /* open addressing: index + 1 into recs, 0 empty */
static size_t set_cap, set_used;

static uint64_t requests, duplicates, no_id, unsigned_reqs, accepted, open_now, max_open;
static int64_t first_us, last_us, last_new_us;
static const char *records_path, *sample_path;
static bool sample_saved;
static volatile sig_atomic_t stop;
static int ep;

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (q == NULL) {
        fprintf(stderr, "receiver: out of memory\n");
        exit(1);
    }
    return q;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void set_grow(void)
{
    size_t ncap = set_cap ? set_cap * 2 : 1 << 16;
    uint32_t *n = calloc(ncap, sizeof(*n));
    if (n == NULL) {
        fprintf(stderr, "receiver: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < set_cap; i++) {
        if (set[i] == 0)
            continue;
        size_t k = hash(recs[set[i] - 1].id) & (ncap - 1);
        while (n[k] != 0)
            k = (k + 1) & (ncap - 1);
        n[k] = set[i];
    }
    free(set);
    set = n;
    set_cap = ncap;
}

/* Adds record idx's id to the set; false when it was there already. */
static bool set_add(size_t idx)
{
    if ((set_used + 1) * 2 > set_cap)
        set_grow();
    size_t k = hash(recs[idx].id) & (set_cap - 1);
    while (set[k] != 0) {
        if (strcmp(recs[set[k] - 1].id, recs[idx].id) == 0)
            return false;
        k = (k + 1) & (set_cap - 1);
    }
    set[k] = (uint32_t)(idx + 1);
    set_used++;
    return true;
}

static void copy_id(char *dst, const char *src, size_t n)
{
    if (n >= ID_MAX)
        n = ID_MAX - 1;
    for (size_t i = 0; i < n; i++) /* keep the records one line, tab separated */
        dst[i] = (src[i] == '\t' || src[i] == '\n' || src[i] == '\r' || src[i] == '\\') ? '_' : src[i];
    dst[n] = '\0';
}

/* The top-level "event_id" string and the first "sent_at_us" number. */
static void parse_body(const char *b, size_t n, rec_t *r)
{
    r->event_id[0] = '\0';
    r->sent_us = -1;
    const char *p = memmem(b, n, "\"event_id\"", 10);
    if (p != NULL) {
        p += 10;
        const char *end = b + n;
        while (p < end && (*p == ' ' || *p == ':'))
            p++;
        if (p < end && *p == '"') {
            p++;
            const char *q = memchr(p, '"', (size_t)(end - p));
            if (q != NULL)
                copy_id(r->event_id, p, (size_t)(q - p));
        }
    }
    p = memmem(b, n, "\"sent_at_us\"", 12);
    if (p != NULL) {
        p += 12;
        const char *end = b + n;
        while (p < end && (*p == ' ' || *p == ':'))
            p++;
        if (p < end && *p >= '0' && *p <= '9') {
            int64_t v = 0;
            while (p < end && *p >= '0' && *p <= '9')
                v = v * 10 + (*p++ - '0');
            r->sent_us = v;
        }
    }
}

static void out_append(conn_t *c, const char *s, size_t n)
{
    if (c->out_len + n > c->out_cap) {
        c->out_cap = (c->out_len + n) * 2;
        c->out = xrealloc(c->out, c->out_cap);
    }
    memcpy(c->out + c->out_len, s, n);
    c->out_len += n;
}

static void respond(conn_t *c, int status, const char *body)
{
    char head[256];
    size_t blen = body ? strlen(body) : 0;
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n%s%s\r\n", status,
                     status == 200 ? "OK" : "Bad Request", blen,
                     body ? "Content-Type: application/json\r\n" : "",
                     c->close_after ? "Connection: close\r\n" : "");
    out_append(c, head, (size_t)n);
    if (blen)
        out_append(c, body, blen);
}

static bool dump(void)
{
    if (records_path == NULL)
        return false;
    FILE *f = fopen(records_path, "w");
    if (f == NULL)
        return false;
    static char buf[1 << 20];
    setvbuf(f, buf, _IOFBF, sizeof(buf));
    for (size_t i = 0; i < nrecs; i++) {
        const rec_t *r = &recs[i];
        if (r->sent_us >= 0)
            fprintf(f, "%" PRId64 "\t%s\t%s\t%" PRId64 "\n", r->arrival_us, r->id,
                    r->event_id[0] ? r->event_id : "\\N", r->sent_us);
        else
            fprintf(f, "%" PRId64 "\t%s\t%s\t\\N\n", r->arrival_us, r->id,
                    r->event_id[0] ? r->event_id : "\\N");
    }
    return fclose(f) == 0;
}

static void control(conn_t *c, const char *path, size_t plen)
{
    if (plen == 6 && memcmp(path, "/stats", 6) == 0) {
        char body[512];
        snprintf(body, sizeof(body),
                 "{\"requests\":%" PRIu64 ",\"distinct\":%zu,\"duplicates\":%" PRIu64
                 ",\"without_id\":%" PRIu64 ",\"unsigned\":%" PRIu64
                 ",\"connections\":%" PRIu64 ",\"max_open\":%" PRIu64
                 ",\"first_us\":%" PRId64 ",\"last_us\":%" PRId64
                 ",\"last_new_us\":%" PRId64 "}",
                 requests, set_used, duplicates, no_id, unsigned_reqs, accepted, max_open,
                 first_us, last_us, last_new_us);
        respond(c, 200, body);
    } else if (plen == 5 && memcmp(path, "/dump", 5) == 0) {
        bool ok = dump();
        respond(c, ok ? 200 : 400, ok ? "{\"dumped\":true}" : NULL);
    } else {
        respond(c, 400, NULL);
    }
}

/* Handles every complete request in c->in; false on a malformed one. */
static bool handle(conn_t *c)
{
    size_t off = 0;
    for (;;) {
        char *start = c->in + off;
        size_t avail = c->in_len - off;
        char *hend = memmem(start, avail, "\r\n\r\n", 4);
        if (hend == NULL) {
            if (avail > 65536)
                return false;
            break;
        }
        size_t hlen = (size_t)(hend - start) + 4;
        /* request line */
        char *sp1 = memchr(start, ' ', hlen);
        if (sp1 == NULL)
            return false;
        char *path = sp1 + 1;
        char *sp2 = memchr(path, ' ', (size_t)(hend - path));
        if (sp2 == NULL)
            return false;
        size_t plen = (size_t)(sp2 - path);
        bool is_post = (sp1 - start) == 4 && memcmp(start, "POST", 4) == 0;
        /* headers */
        size_t clen = 0;
        const char *id = NULL;
        size_t idlen = 0;
        bool signed_req = false;
        c->close_after = false;
        char *line = memchr(start, '\n', hlen) + 1;
        while (line < hend) {
            char *eol = memchr(line, '\r', (size_t)(hend + 2 - line));
            if (eol == NULL)
                break;
            char *colon = memchr(line, ':', (size_t)(eol - line));
            if (colon != NULL) {
                size_t nlen = (size_t)(colon - line);
                char *v = colon + 1;
                while (v < eol && (*v == ' ' || *v == '\t'))
                    v++;
                size_t vlen = (size_t)(eol - v);
                if (nlen == 14 && strncasecmp(line, "content-length", 14) == 0)
                    clen = (size_t)strtoull(v, NULL, 10);
                else if (nlen == 10 && strncasecmp(line, "webhook-id", 10) == 0) {
                    id = v;
                    idlen = vlen;
                } else if (nlen == 17 && strncasecmp(line, "webhook-signature", 17) == 0)
                    signed_req = vlen > 3 && memcmp(v, "v1,", 3) == 0;
                else if (nlen == 10 && strncasecmp(line, "connection", 10) == 0)
                    c->close_after = vlen == 5 && strncasecmp(v, "close", 5) == 0;
                else if (nlen == 17 && strncasecmp(line, "transfer-encoding", 17) == 0)
                    return false; /* chunked bodies: not expected from the service */
            }
            line = eol + 2;
        }
        if (hlen + clen > MAX_REQUEST)
            return false;
        if (avail < hlen + clen)
            break; /* the body is not all in yet */
        if (is_post) {
            int64_t t = now_us();
            if (nrecs == cap_recs) {
                cap_recs = cap_recs ? cap_recs * 2 : 1 << 16;
                recs = xrealloc(recs, cap_recs * sizeof(*recs));
            }
            rec_t *r = &recs[nrecs];
            r->arrival_us = t;
            copy_id(r->id, id ? id : "-", id ? idlen : 1);
            parse_body(start + hlen, clen, r);
            requests++;
            if (first_us == 0)
                first_us = t;
            last_us = t;
            if (id == NULL)
                no_id++;
            if (!signed_req)
                unsigned_reqs++;
            if (set_add(nrecs))
                last_new_us = t;
            else
                duplicates++;
            nrecs++;
            if (!sample_saved && sample_path != NULL) {
                sample_saved = true;
                FILE *f = fopen(sample_path, "w");
                if (f != NULL) {
                    fwrite(start + hlen, 1, clen, f);
                    fclose(f);
                }
            }
            respond(c, 200, NULL);
        } else {
            control(c, path, plen);
        }
        off += hlen + clen;
        if (c->close_after)
            break;
    }
    if (off > 0) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
    return true;
}

static void conn_close(conn_t *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
    open_now--;
}

/* Writes what is queued; false when the connection is to be closed. */
static bool flush_out(conn_t *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                if (!c->want_out) {
                    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                    c->want_out = true;
                }
                return true;
            }
            return false;
        }
        c->out_off += (size_t)n;
    }
    c->out_off = c->out_len = 0;
    if (c->want_out) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        c->want_out = false;
    }
    return !c->close_after;
}

static void on_readable(conn_t *c)
{
    for (;;) {
        if (c->in_cap - c->in_len < 65536) {
            c->in_cap = c->in_cap ? c->in_cap * 2 : 131072;
            c->in = xrealloc(c->in, c->in_cap);
        }
        size_t room = c->in_cap - c->in_len;
        ssize_t n = read(c->fd, c->in + c->in_len, room);
        if (n > 0) {
            c->in_len += (size_t)n;
            if ((size_t)n < room)
                break; /* short read: nothing more for now */
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        conn_close(c); /* EOF or error */
        return;
    }
    if (!handle(c)) {
        c->close_after = true;
        respond(c, 400, NULL);
    }
    if (!flush_out(c))
        conn_close(c);
}

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    const char *bind_addr = "127.0.0.1";
    int port = 0, opt;
    while ((opt = getopt(argc, argv, "p:b:o:s:")) != -1) {
        switch (opt) {
        case 'p': port = atoi(optarg); break;
        case 'b': bind_addr = optarg; break;
        case 'o': records_path = optarg; break;
        case 's': sample_path = optarg; break;
        default:
            fprintf(stderr, "usage: receiver -p PORT [-b ADDR] [-o RECORDS] [-s SAMPLE]\n");
            return 2;
        }
    }
    if (port <= 0) {
        fprintf(stderr, "usage: receiver -p PORT [-b ADDR] [-o RECORDS] [-s SAMPLE]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, bind_addr, &a.sin_addr) != 1) {
        fprintf(stderr, "receiver: bad address %s\n", bind_addr);
        return 2;
    }
    if (bind(ls, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(ls, 4096) != 0) {
        fprintf(stderr, "receiver: cannot listen on %s:%d: %s\n", bind_addr, port, strerror(errno));
        return 1;
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &lev);
    printf("receiver listening on %s:%d\n", bind_addr, port);
    fflush(stdout);

    struct epoll_event evs[256];
    while (!stop) {
        int n = epoll_wait(ep, evs, 256, 1000);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (c == NULL) {
                for (;;) {
                    int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0)
                        break;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    conn_t *nc = calloc(1, sizeof(*nc));
                    if (nc == NULL) {
                        close(fd);
                        continue;
                    }
                    nc->fd = fd;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = nc};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                    accepted++;
                    if (++open_now > max_open)
                        max_open = open_now;
                }
                continue;
            }
            if (evs[i].events & EPOLLOUT) {
                if (!flush_out(c)) {
                    conn_close(c);
                    continue;
                }
                if (!(evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                    continue;
            }
            on_readable(c);
        }
    }
    return 0;
}
