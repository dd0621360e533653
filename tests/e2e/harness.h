/*
 * harness.h - end-to-end test harness: the real event-service against a real
 * PostgreSQL and nats-server, all on free ports, from Criterion tests.
 *
 * Lifetime of a run (e2e_tests --jobs N):
 *  - The runner process (Criterion's parent) starts ONE PostgreSQL for the
 *    whole run in its PRE_ALL report hook, under a fresh run directory, and
 *    exports ES_E2E_ROOT and ES_E2E_PG_PORT; the tests, which Criterion
 *    starts from the runner after PRE_ALL, inherit them (checked with
 *    Criterion 2.4.1: the hooks run in the runner's main thread, before any
 *    test, and the tests' environment has the variables). POST_ALL stops it. A test that runs
 * without them (a filtered run from a debugger, say) starts a server of its own instead.
 *  - Each test calls h_setup() first: it gets its own directory
 *    ($ES_E2E_ROOT/<suite>.<test>), its own database (created here, dropped by
 *    h_teardown), and its own nats-server. It then starts the service with
 *    h_svc_start().
 *  - When a test fails, crashes or times out, the runner prints the tail of
 *    its service log and keeps its directory; a passing test's directory is
 *    removed.
 *
 * Every process the harness starts dies with the test process that started
 * it (PR_SET_PDEATHSIG), so a crashed test leaves nothing running.
 *
 * Every wait in the harness polls a condition until a deadline; nothing
 * sleeps in place of a condition. Functions that cannot go on (a server that
 * does not start, SQL that fails) fail the current test with a message.
 */
#ifndef ES_E2E_HARNESS_H
#define ES_E2E_HARNESS_H

#include <criterion/criterion.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

/* Per-test limit (seconds); sanitizer builds are several times slower. */
#define H_TEST_TIMEOUT 240

/* Declares a test that uses the harness. The body runs, then h_finish()
 * stops the service and fails the test if its log shows a sanitizer report
 * or a worker crash the test did not cause; h_teardown() cleans up (it also
 * runs when an assertion fails). */
#define H_TEST(suite, name)                                                                        \
    static void suite##__##name##__body(void);                                                     \
    Test(suite, name, .fini = h_teardown, .timeout = H_TEST_TIMEOUT)                               \
    {                                                                                              \
        suite##__##name##__body();                                                                 \
        h_finish();                                                                                \
    }                                                                                              \
    static void suite##__##name##__body(void)

/* Polls expr every 5 ms until it is true or timeout_ms passed; evaluates to
 * the last value of expr (so `cr_assert(H_WAIT(2000, cond))` reads well). */
#define H_WAIT(timeout_ms, expr)                                                                   \
    ({                                                                                             \
        int64_t h_wait_deadline_ = h_now_ms() + (timeout_ms);                                      \
        bool h_wait_ok_;                                                                           \
        while (!(h_wait_ok_ = (expr)) && h_now_ms() < h_wait_deadline_)                            \
            h_pause_ms(5);                                                                         \
        h_wait_ok_;                                                                                \
    })

/* ---- time ---------------------------------------------------------------- */

/* Monotonic clock, milliseconds. */
int64_t h_now_ms(void);
/* Yields the CPU for ms between two polls of a condition (H_WAIT uses it). */
void h_pause_ms(int ms);

/* ---- processes and ports ------------------------------------------------- */

/* A free TCP port on this host, reserved for the rest of this process's life
 * (a lock file under /tmp/es-e2e-ports keeps parallel tests and concurrent
 * runs from picking the same one). Chosen below the kernel's ephemeral range
 * so no outgoing connection takes it meanwhile. */
int h_free_port(void);

/* Starts argv[0] (looked up in PATH) with stdout and stderr appended to
 * log_path and stdin from /dev/null. as_postgres: run as the postgres user
 * (PostgreSQL refuses to run as root). env_unset: names removed from the
 * inherited environment; env_set: "NAME=value" strings added; both
 * NULL-terminated or NULL. The child gets SIGKILL when the calling thread
 * dies. Returns the pid; fails the test if the program cannot be found. */
pid_t h_spawn(const char *const *argv, const char *log_path, bool as_postgres,
              const char *const *env_unset, const char *const *env_set);

/* Waits up to timeout_ms for child pid to exit. Returns true and stores the
 * waitpid status in *status (may be NULL) when it did. */
bool h_wait_exit(pid_t pid, int timeout_ms, int *status);

/* Sends sig, waits up to timeout_ms, then SIGKILLs and reaps. Returns the
 * waitpid status, or -1 if the process had to be killed. */
int h_stop_process(pid_t pid, int sig, int timeout_ms);

/* True when the file at path contains needle at or after byte offset from. */
bool h_file_contains(const char *path, const char *needle, long from);
/* Size of the file at path, 0 if it does not exist. */
long h_file_size(const char *path);
/* Prints the last `lines` lines of path to stderr, each prefixed. */
void h_print_tail(const char *path, int lines, const char *prefix);

/* ---- PostgreSQL ---------------------------------------------------------- */

typedef struct {
    char dir[256]; /* data directory is dir/pgdata, socket and log in dir */
    int port;
    pid_t pid; /* postmaster, 0 when stopped */
} h_pg_t;

/* Creates dir/pgdata with initdb (trust auth, no fsync) and starts the server
 * on port (tuned for tests: fsync off, 400 connections). dir must exist. */
void h_pg_create(h_pg_t *pg, const char *dir, int port);
/* Starts the stopped server again on the same port and data directory and
 * waits (up to 30 s) until it accepts connections. */
void h_pg_start(h_pg_t *pg);
/* Fast shutdown (SIGINT: sessions are terminated); waits for the exit. */
void h_pg_stop(h_pg_t *pg);
/* Stops the server if running and removes its data directory. */
void h_pg_destroy(h_pg_t *pg);

/* ---- nats-server --------------------------------------------------------- */

typedef struct {
    char dir[256]; /* JetStream store in dir/nats-store, log dir/nats.log */
    int port;
    pid_t pid; /* 0 when stopped */
} h_nats_t;

/* Starts nats-server -js on 127.0.0.1:port with its store under dir, and
 * waits (up to 20 s) until its log says "Server is ready". Also restarts a
 * stopped server with the same port and store. */
void h_nats_start(h_nats_t *n);
/* Sends sig (SIGTERM, or SIGKILL for a crash) and waits for the exit. */
void h_nats_stop(h_nats_t *n, int sig);

/* ---- the test environment ------------------------------------------------ */

typedef struct {
    int api_workers;        /* workers.api; 0 means 2 */
    int shutdown_timeout;   /* service.shutdown_timeout_seconds; 0 means 10 */
    int processors;         /* workers.processor (they also publish event.stored); 0 by
                               default so that stored events stay pending */
    bool private_pg;        /* a PostgreSQL of the test's own (outage tests) */
    bool no_nats;           /* no nats-server; nats.enabled false */
    const char *extra_yaml; /* appended to the generated config, or NULL */
} h_opts_t;

typedef struct {
    pid_t pid; /* master, 0 when not running */
    int port;
    char conf[300];
    char log[300];
    int exit_status; /* waitpid status once it exited (see h_svc_stop) */
} h_svc_t;

typedef struct {
    char name[128]; /* "suite.test" */
    char dir[256];  /* the test's own directory */
    h_opts_t opts;
    int pg_port; /* server that holds this test's database */
    char dbname[64];
    char dburl[256]; /* libpq URI of the test's database */
    PGconn *db;      /* the harness's blocking connection (h_sql) */
    h_pg_t pg;       /* the private server when opts.private_pg */
    h_nats_t nats;
    h_svc_t svc;
    bool expect_worker_deaths; /* the test kills workers on purpose */
} h_env_t;

/* Creates the test's directory, database and nats-server; writes the service
 * config (h_svc_write_config) but does not start the service. opts may be
 * NULL for the defaults. Returns the environment, also kept for h_teardown. */
h_env_t *h_setup(const h_opts_t *opts);
/* Stops everything the test started and drops its database; registered as
 * .fini by H_TEST. Safe to call twice. */
void h_teardown(void);
/* End of a passing test body (H_TEST calls it): stops the service and checks
 * its log for sanitizer reports and unexpected worker crashes. */
void h_finish(void);

/* ---- the service --------------------------------------------------------- */

/* (Re)writes e->svc.conf from e and e->opts: service port, database.url,
 * nats.url, logging.format text, workers.api, workers.processor
 * (opts.processors), replay workers 0, then opts.extra_yaml verbatim (a
 * section may repeat: later keys win). */
void h_svc_write_config(h_env_t *e);
/* Writes text as the config file, replacing it (for reload tests). */
void h_svc_write_config_text(h_env_t *e, const char *text);

/* Spawns ES_TEST_BINARY -c e->svc.conf (log to e->svc.log) with the seed's
 * override variables removed from its environment, plus env_set
 * ("NAME=value", NULL-terminated, or NULL), and returns at once. */
void h_svc_spawn(h_env_t *e, const char *const *env_set);

/* h_svc_spawn, then waits up to 30 s until GET /health/ready on port
 * answers 200, the JetStream stream exists (when NATS is on), and every API
 * worker has its two database connections established (seen in
 * pg_stat_activity: /health/ready answers as soon as ONE worker has ONE
 * reader connection, and tests about something else must not trip over a
 * worker still connecting). port 0 means e->svc.port. Fails the test (with
 * the log tail) if the service exits or is not ready in time. */
void h_svc_start_env(h_env_t *e, const char *const *env_set, int port);
#define h_svc_start(e) h_svc_start_env((e), NULL, 0)

/* h_setup with `processors` processor workers and extra_yaml (or NULL), then h_svc_start. */
h_env_t *h_start(int processors, const char *extra_yaml);

/* Sends sig to the master and waits up to timeout_ms for it to exit.
 * Returns true if it exited (status in e->svc.exit_status); otherwise
 * SIGKILLs it and returns false. */
bool h_svc_stop(h_env_t *e, int sig, int timeout_ms);

/* True when GET /health/ready answers 200 right now. */
bool h_svc_ready(h_env_t *e);

/* Current worker processes of the master (its live children), up to max.
 * Returns how many. */
int h_svc_workers(h_env_t *e, pid_t *out, int max);
/* True while pid is a live process (neither gone nor a zombie). */
bool h_process_alive(pid_t pid);
/* True when pid is one of the master's worker processes now. */
bool h_svc_is_worker(h_env_t *e, pid_t pid);

/* True when the service log contains needle (at or after byte offset from). */
bool h_svc_log_contains(h_env_t *e, const char *needle, long from);

/* Runs ES_TEST_BINARY with args (NULL-terminated, without argv[0]) and the
 * same environment as the service (plus env_set), waits up to 30 s, and
 * returns its exit code (-1 if it did not exit normally). *output gets
 * stdout and stderr together (caller frees); output may be NULL. */
int h_run_binary(h_env_t *e, const char *const *args, const char *const *env_set, char **output);

/* ---- HTTP ---------------------------------------------------------------- */

typedef struct {
    long status;   /* HTTP status, 0 when no response came */
    int curl_code; /* CURLcode of the transfer */
    char *body;    /* NUL-terminated, never NULL */
    size_t len;
    json_t *json;    /* body parsed, or NULL if it is not JSON */
    double seconds;  /* time the request took */
    char error[256]; /* curl's message when curl_code != 0 */
} h_resp_t;

/* One request to 127.0.0.1:port. body NULL sends none; a body is sent as
 * application/json. headers: extra "Name: value" lines, NULL-terminated, or
 * NULL. Gives up after timeout_ms (0 means 15 s). */
h_resp_t h_http(int port, const char *method, const char *path, const char *body, size_t body_len,
                const char *const *headers, int timeout_ms);
void h_resp_free(h_resp_t *r);

/* GET path (printf format) on the test's service. */
h_resp_t h_get(h_env_t *e, const char *path_fmt, ...) __attribute__((format(printf, 2, 3)));
/* h_get that asserts 200 and returns the answer's JSON (caller decrefs). */
json_t *h_get_json(h_env_t *e, const char *path_fmt, ...) __attribute__((format(printf, 2, 3)));
/* POST a JSON body (printf format) to path on the test's service. */
h_resp_t h_post(h_env_t *e, const char *path, const char *body_fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Fires n requests at once (curl multi, one connection each) and waits for
 * all; bodies[i] is the body of request i (NULL for none). out[i] gets the
 * answer of request i; free each with h_resp_free. */
void h_http_multi(int port, int n, const char *method, const char *path, const char *const *bodies,
                  h_resp_t *out, int timeout_ms);

/* POSTs body to /api/v1/events/create, asserts 201 and returns the new
 * event_id (caller frees). */
char *h_create(h_env_t *e, const char *body_fmt, ...) __attribute__((format(printf, 2, 3)));
/* POSTs body to /api/v1/events/processors, asserts 201, returns processor_id (caller frees). */
char *h_add_processor(h_env_t *e, const char *body_fmt, ...) __attribute__((format(printf, 2, 3)));
/* POSTs body to /api/v1/events/subscriptions, asserts 201, returns the answer (caller decrefs). */
json_t *h_subscribe(h_env_t *e, const char *body_fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- JSON ---------------------------------------------------------------- */

/* Looks up a dotted path ("checks.database", "events.0.event_id") in v. */
json_t *h_jget(const json_t *v, const char *path);
/* The string at path, or NULL when absent or not a string. */
const char *h_jstr(const json_t *v, const char *path);
/* The integer at path, or INT64_MIN when absent or not an integer. */
int64_t h_jint(const json_t *v, const char *path);
/* v as compact JSON for failure messages, in a static buffer that the next call reuses. */
const char *h_jdump(const json_t *v);
/* True when s is a UUID in its 36-character text form (false for NULL). */
bool h_is_uuid(const char *s);

/* ---- SQL (blocking libpq on the test's database) ------------------------- */

/* Runs sql with text parameters (a NULL-terminated list) and returns the
 * result (caller PQclears). Fails the test on an error. */
PGresult *h_sql_(h_env_t *e, const char *sql, ...);
#define h_sql(e, ...) h_sql_((e), __VA_ARGS__, (const char *)NULL)
/* The first column of the first row as an integer (fails the test on NULL). */
int64_t h_sql_int_(h_env_t *e, const char *sql, ...);
#define h_sql_int(e, ...) h_sql_int_((e), __VA_ARGS__, (const char *)NULL)
/* The first column of the first row of sql ($1 = param) as text (caller frees), or NULL. */
char *h_sql_text(h_env_t *e, const char *sql, const char *param);
/* Counts how many of ids[0..n) are rows of event.events. */
int64_t h_count_events(h_env_t *e, char *const *ids, int n);

/* Asserts that expr is want in the row "e" of event.events where `where` holds ($1 = param);
 * expr, where and label (the message's prefix) are string literals. */
#define H_ASSERT_EVENT_TEXT(e, where, param, expr, want, label)                                    \
    do {                                                                                           \
        char *h_got_ =                                                                             \
            h_sql_text((e), "SELECT " expr " FROM event.events e WHERE " where, (param));          \
        cr_assert(h_got_ != NULL && strcmp(h_got_, (want)) == 0,                                   \
                  label "%s: %s is %s, expected %s", (param), expr, h_got_ ? h_got_ : "NULL",      \
                  (want));                                                                         \
        free(h_got_);                                                                              \
    } while (0)

/* True when the event event_id is stored with status. */
bool h_event_status_is(h_env_t *e, const char *event_id, const char *status);
/* Rows of event.events with status. */
int64_t h_events_with_status(h_env_t *e, const char *status);
/* Rows of event.events whose metadata.messageId is message_id. */
int64_t h_events_with_message_id(h_env_t *e, const char *message_id);
/* processing_results rows of event_id for processor and with status (each NULL: any). */
int64_t h_processing_results(h_env_t *e, const char *event_id, const char *processor,
                             const char *status);
/* True when the delivery delivery_id has status. */
bool h_delivery_status_is(h_env_t *e, const char *delivery_id, const char *status);
/* Deliveries of subscription subscription_id with status. */
int64_t h_deliveries_with_status(h_env_t *e, const char *subscription_id, const char *status);
/* Inserts n processed events "pre-0000001".. (bulk.item, one second apart from 2025-01-01)
 * straight into event.events, and moves the event.stored publisher past them. */
void h_preload_events(h_env_t *e, int n);
/* The worker pid in a claim token ("host:pid[.loop]:batch", "host:pid:rN"), or 0. */
pid_t h_claim_pid(const char *token);

/* ---- NATS JetStream (what the service published) ------------------------- */

typedef struct {
    char *subject;
    char *data; /* NUL-terminated */
    int len;
    char *msg_id; /* Nats-Msg-Id header, or NULL */
    uint64_t seq; /* stream sequence */
} h_msg_t;

/* Every message now in the service's stream (event-stream), in order.
 * Returns how many (*out is freed with h_msgs_free); -1 when the stream
 * cannot be read. */
int h_js_snapshot(h_env_t *e, h_msg_t **out);
void h_msgs_free(h_msg_t *msgs, int n);
/* Waits up to timeout_ms for a message whose Nats-Msg-Id is msg_id to be in
 * the stream. On success moves it to *out (out may be NULL; release it with
 * h_msg_clear). */
bool h_js_wait_msg(h_env_t *e, const char *msg_id, int timeout_ms, h_msg_t *out);
void h_msg_clear(h_msg_t *m);
/* True once the stream exists on the test's nats-server. */
bool h_js_stream_exists(h_env_t *e);
/* Deletes the service's stream from the test's nats-server (true when it did). */
bool h_js_delete_stream(h_env_t *e);
/* The data of the stream's messages on subject about event_id, in order (caller decrefs). */
json_t *h_js_published(h_env_t *e, const char *subject, const char *event_id);
/* How many messages h_js_published would return. */
size_t h_js_published_count(h_env_t *e, const char *subject, const char *event_id);

/* ---- background load ----------------------------------------------------- */

/* Client threads that POST /api/v1/events/create in a loop, each request on a
 * fresh connection, and record every answer. */
typedef struct h_load h_load_t;

typedef struct {
    int sent;         /* requests finished (answered or failed) */
    int created;      /* 201 answers */
    int refused;      /* the connection was refused (nothing listening) */
    int no_response;  /* other transport errors: no HTTP answer at all */
    int partial;      /* a response started but did not complete */
    int bad_body;     /* an HTTP answer whose body is not JSON */
    int unavailable;  /* 503 answers */
    int other_status; /* answers other than 201 and 503 */
    double max_seconds;
    char **ids; /* the event_id of every 201 */
    int nids;
    int first_other; /* first unexpected status, 0 if none */
    char first_error[256];
} h_load_result_t;

h_load_t *h_load_start(int port, int threads);
/* 201 answers so far (while running). */
int h_load_created(h_load_t *l);
/* Stops the threads, joins them, fills *res (free with h_load_result_free). */
void h_load_stop(h_load_t *l, h_load_result_t *res);
void h_load_result_free(h_load_result_t *res);

/* ---- an HTTP receiver (the target of webhook processors) ------------------ */

/* A minimal blocking HTTP/1.1 server on 127.0.0.1 run by the test process: a
 * thread accepts, a thread per connection reads one request (head and a
 * Content-Length body), answers it and closes the connection. Every request
 * is recorded. How it answers is set per path (h_recv_rule): a status and a
 * delay before the answer, so a test can make a processor fail or be slow.
 * A path without a rule is answered 200 at once. */
typedef struct h_recv h_recv_t;

typedef struct {
    char path[256];   /* request target as sent (query string included) */
    char *body;       /* NUL-terminated, never NULL */
    size_t len;
    json_t *json;     /* body parsed, or NULL */
    int64_t start_ms; /* h_now_ms() when the whole request had been read */
    int64_t end_ms;   /* when the answer was written (or found the client gone); 0 while
                         the request is in flight */
    int status;       /* the status answered (0 while in flight) */
} h_recv_req_t;

/* Starts a receiver on a free port (h_free_port). Fails the test if it
 * cannot listen. */
h_recv_t *h_recv_start(void);
/* Its port. */
int h_recv_port(const h_recv_t *r);
/* From now on, requests for path (exact match, query string ignored) are
 * answered status after delay_ms (0: at once). A later rule for the same path
 * replaces the earlier one; requests already waiting keep theirs. */
void h_recv_rule(h_recv_t *r, const char *path, int status, int delay_ms);
/* Requests received so far for path (NULL: all), answered or in flight. */
int h_recv_count(h_recv_t *r, const char *path);
/* Requests read in full and not yet answered. */
int h_recv_in_flight(h_recv_t *r);
/* A copy of every request so far, in the order they were read in full
 * (free with h_recv_reqs_free). Returns how many. */
int h_recv_reqs(h_recv_t *r, h_recv_req_t **out);
void h_recv_reqs_free(h_recv_req_t *reqs, int n);
/* Stops accepting, ends waiting answers early (they are still written), waits
 * up to 10 s for the connection threads, and frees the receiver. */
void h_recv_stop(h_recv_t *r);
/* Stops the service (SIGTERM; asserts it exits within 20 s), then the receiver r. */
void h_stop_all(h_env_t *e, h_recv_t *r);

/* ---- HTTP: response headers ---------------------------------------------- */

/* h_http, and also the response's header block as received (the status line
 * and every "Name: value" line, each ending in CRLF) in *head (caller frees;
 * never NULL, empty when no response came). */
h_resp_t h_http_head(int port, const char *method, const char *path, const char *body,
                     size_t body_len, const char *const *headers, int timeout_ms, char **head);
/* The value of the header name (case-insensitive) in a block from
 * h_http_head, without surrounding blanks, copied into out (truncated to
 * cap). False when the block has no such header. */
bool h_head_get(const char *head, const char *name, char *out, size_t cap);

/* ---- NATS as another service would use it (ingestion tests) --------------- */

/* A client connection of the test to its nats-server (no reconnect), with at
 * most one core subscription. */
typedef struct h_nc h_nc_t;

/* Connects to e's nats-server; fails the test when it cannot. */
h_nc_t *h_nc_open(h_env_t *e);
/* Drops the subscription, if any, and the connection. NULL is fine. */
void h_nc_close(h_nc_t *c);
/* Core publish of the NUL-terminated data on subject, with a Nats-Msg-Id
 * header when msg_id is not NULL, then a flush (the server has it when this
 * returns true). */
bool h_nc_publish(h_nc_t *c, const char *subject, const char *data, const char *msg_id);
/* JetStream publish (as h_nc_publish, but waits up to 5 s for the stream's
 * acknowledgement). *duplicate (may be NULL) gets whether the stream found it
 * a duplicate within its window. False when no stream acknowledged it. */
bool h_nc_js_publish(h_nc_t *c, const char *subject, const char *data, const char *msg_id,
                     bool *duplicate);
/* Subscribes (core NATS) to subject, wildcards allowed, and returns once the
 * server has registered the interest. One subscription per client. */
bool h_nc_subscribe(h_nc_t *c, const char *subject);
/* The next message of the subscription, waiting up to timeout_ms, moved to
 * *out (release with h_msg_clear; seq is 0 for core messages). False when
 * none came in time. */
bool h_nc_next(h_nc_t *c, int timeout_ms, h_msg_t *out);
/* Creates a file-stored JetStream stream name capturing subject, with a
 * de-duplication window of duplicate_window_ms (0: the server's default;
 * nats-server refuses less than 100 ms). False when it cannot (it exists
 * already, say). */
bool h_nc_add_stream(h_nc_t *c, const char *name, const char *subject, int duplicate_window_ms);

/* What JetStream reports about a consumer. */
typedef struct {
    uint64_t num_pending;      /* stream messages not yet delivered */
    int64_t num_ack_pending;   /* delivered, neither acknowledged nor terminated */
    int64_t num_redelivered;   /* messages delivered more than once */
    uint64_t delivered_stream; /* stream sequence of the last delivery */
    uint64_t ack_floor_stream; /* stream sequence up to which all is acknowledged */
} h_consumer_t;

/* Fills *out (may be NULL) with the state of consumer on stream, over a new
 * connection to e's nats-server. False when the consumer (or the server)
 * does not answer. */
bool h_js_consumer(h_env_t *e, const char *stream, const char *consumer, h_consumer_t *out);

/* ---- more instances of the service (several hosts, one database) --------- */

/* Starts another event-service as a second host would run it: against the
 * test's database and nats-server, on a port of its own (h_free_port), with
 * its config in <test dir>/<name>.yaml (what h_svc_write_config writes for e,
 * but on that port, then extra_yaml appended: later keys win; NULL for none)
 * and its log in <test dir>/<name>.log. Returns once GET /health/ready on its
 * port answers 200 and the API workers of every running instance have their
 * database connections (as h_svc_start); fails the test with its log tail if
 * it exits or is not ready within 30 s. The harness owns the instance:
 * h_finish stops it (SIGTERM) and checks its log as it checks the main one's,
 * h_teardown stops it if it still runs. At most 4 per test. */
h_svc_t *h_svc_start_other(h_env_t *e, const char *name, const char *extra_yaml);
/* Stops an instance of h_svc_start_other as h_svc_stop stops the main one
 * (sig, then SIGKILL after timeout_ms; true if it exited in time). */
bool h_svc_stop_other(h_svc_t *s, int sig, int timeout_ms);

#endif
