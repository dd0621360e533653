/*
 * event-service: the one executable.
 *
 *   event-service [-c FILE]            run (master in the foreground, logs on stderr)
 *   event-service -t [-c FILE]         validate the configuration, exit 0/1
 *   event-service migrate [-c FILE]    apply pending schema migrations and exit
 *   event-service -v                   print the version
 *
 * Without -c, conf/event_service.yaml is used when it exists, else the
 * built-in defaults (the embedded local setup). Environment variables from
 * the seed override the file either way.
 */
#include "common/config.h"
#include "common/log.h"
#include "master/master.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_CONFIG "conf/event_service.yaml"

static void usage(FILE *out)
{
    fprintf(out, "usage: event-service [-c FILE] [-t]\n"
                 "       event-service migrate [-c FILE]\n"
                 "       event-service -v\n"
                 "  -c FILE  configuration file (default: " DEFAULT_CONFIG " if present)\n"
                 "  -t       test the configuration and exit (0 = valid)\n");
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    bool test = false, migrate = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            path = argv[++i];
        } else if (strcmp(argv[i], "-t") == 0) {
            test = true;
        } else if (strcmp(argv[i], "migrate") == 0) {
            migrate = true;
        } else if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--version") == 0) {
            printf("event-service %s\n", ES_VERSION);
            return 0;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "event-service: unknown argument \"%s\"\n", argv[i]);
            usage(stderr);
            return 1;
        }
    }
    if (path == NULL && access(DEFAULT_CONFIG, R_OK) == 0)
        path = DEFAULT_CONFIG;

    es_config_t *cfg = es_xcalloc(1, sizeof(*cfg));
    char err[512];
    es_rc_t rc = es_config_load(cfg, path, err, sizeof(err));
    if (test) {
        if (rc == ES_OK)
            printf("event-service: configuration %s is valid\n", path ? path : "(defaults)");
        else
            fprintf(stderr, "event-service: configuration invalid: %s\n", err);
        es_config_free(cfg);
        free(cfg);
        return rc == ES_OK ? 0 : 1;
    }
    if (rc != ES_OK) {
        fprintf(stderr, "event-service: configuration invalid: %s\n", err);
        es_config_free(cfg);
        free(cfg);
        return 1;
    }
    es_log_setup(cfg->logging.level, cfg->logging.json, "master");
    if (migrate) {
        rc = es_master_migrate(cfg, 30, err, sizeof(err));
        if (rc != ES_OK)
            es_error("%s", err);
        es_config_free(cfg);
        free(cfg);
        return rc == ES_OK ? 0 : 1;
    }
    /* Before any fork, while single-threaded (libcurl's rule). */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int status = es_master_run(cfg);
    curl_global_cleanup();
    return status;
}
