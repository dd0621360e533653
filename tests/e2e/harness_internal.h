/*
 * harness_internal.h - what the harness's own files share; tests use
 * harness.h only.
 */
#ifndef ES_E2E_HARNESS_INTERNAL_H
#define ES_E2E_HARNESS_INTERNAL_H

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

/* True in Criterion's runner (parent) process, where there is no test to
 * fail: the report hooks set it. */
extern bool h_in_runner;

/* Fails the current test, or ends the runner when there is no test. */
#define h_fatal(...)                                                                               \
    do {                                                                                           \
        if (h_in_runner) {                                                                         \
            fprintf(stderr, "e2e harness: " __VA_ARGS__);                                          \
            fputc('\n', stderr);                                                                   \
            exit(1);                                                                               \
        }                                                                                          \
        cr_assert_fail(__VA_ARGS__);                                                               \
    } while (0)

/* Reads path from byte offset `from` to its end (works for /proc files,
 * whose size is reported as 0). NULL if it cannot be opened. */
char *h_read_file(const char *path, long from, long *len);
/* Removes path and everything under it; missing paths are fine. */
void h_rm_rf(const char *path);
/* Runs one statement on the postgres database of the server on port;
 * false (with the reason in err) on failure. */
bool h_pg_admin(int port, const char *sql, char *err, size_t errlen);

/* ---- what the two HTTP receivers (harness_http.c, receiver.c) share ------- */

/* A socket listening on 127.0.0.1 at a free port (in *port); fails the test if it cannot. */
int h_listen_local(int backlog, int *port);
/* The next connection accepted on fd, or -1 once *stopping (read under mu) is true. */
int h_accept_until(int fd, pthread_mutex_t *mu, const bool *stopping);
/* Runs fn(arg) on a detached thread; false when it cannot be started. */
bool h_thread_detached(void *(*fn)(void *), void *arg);
/* Sends n bytes of p on fd (no SIGPIPE); false once the peer is gone. */
bool h_send_all(int fd, const char *p, size_t n);
/* The reason phrase of an HTTP status ("Status" for one not listed). */
const char *h_reason_phrase(int status);

#endif
