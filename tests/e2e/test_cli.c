/* The command line: event-service -t -c FILE, and environment overrides. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Writes text to the test's config file and runs `-t -c` on it; returns the
 * exit code, *out gets the output (caller frees). */
static int check_config(h_env_t *e, const char *text, const char *const *env, char **out)
{
    h_svc_write_config_text(e, text);
    const char *args[] = {"-t", "-c", e->svc.conf, NULL};
    return h_run_binary(e, args, env, out);
}

/* conf/event_service.yaml of this source tree (found from this file's path). */
static void shipped_conf(char *out, size_t cap)
{
    const char *self = __FILE__;
    const char *tail = strstr(self, "tests/e2e/test_cli.c");
    int root = tail ? (int)(tail - self) : 0;
    snprintf(out, cap, "%.*sconf/event_service.yaml", root, self);
}

/* A valid file (the harness's own, and the shipped conf/) passes -t. */
H_TEST(cli, test_valid_config)
{
    h_env_t *e = h_setup(&(h_opts_t){.no_nats = true});
    char *out = NULL;
    const char *args[] = {"-t", "-c", e->svc.conf, NULL};
    int rc = h_run_binary(e, args, NULL, &out);
    cr_assert_eq(rc, 0, "-t on a valid file exited %d: %s", rc, out);
    free(out);
    char conf[512];
    shipped_conf(conf, sizeof(conf));
    const char *shipped[] = {"-t", "-c", conf, NULL};
    rc = h_run_binary(e, shipped, NULL, &out);
    cr_assert_eq(rc, 0, "-t on %s exited %d: %s", conf, rc, out);
    free(out);
}

/* Unknown keys and wrong types: exit 1 with a message naming the line and
 * the key. */
H_TEST(cli, test_invalid_config_names_line)
{
    h_env_t *e = h_setup(&(h_opts_t){.no_nats = true});
    static const struct {
        const char *text, *line, *key;
    } cases[] = {
        {"service:\n  port: 9000\n  prot: 1\n", ":3", "prot"},
        {"service:\n  port: abc\n", ":2", "service.port"},
        {"logging:\n  level: info\nworkers:\n  api: [1, 2]\n", ":4", "workers.api"},
        {"nats:\n  enabled: maybe\n", ":2", "nats.enabled"},
        {"# comment\nbogus_section:\n  x: 1\n", ":2", "bogus_section"},
        {"service:\n  port: \"8208\"\n", ":2", "service.port"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out = NULL;
        int rc = check_config(e, cases[i].text, NULL, &out);
        cr_assert_eq(rc, 1, "case %zu exited %d: %s", i, rc, out);
        char where[400];
        snprintf(where, sizeof(where), "%s%s", e->svc.conf, cases[i].line);
        cr_assert(strstr(out, where) != NULL, "case %zu: no \"%s\" in: %s", i, where, out);
        cr_assert(strstr(out, cases[i].key) != NULL, "case %zu: key %s not named in: %s", i,
                  cases[i].key, out);
        free(out);
    }
}

/* A bad value in an override variable is refused and names the variable. */
H_TEST(cli, test_invalid_env_override)
{
    h_env_t *e = h_setup(&(h_opts_t){.no_nats = true});
    const char *env[] = {"SERVICE_PORT=eighty", NULL};
    const char *args[] = {"-t", "-c", e->svc.conf, NULL};
    char *out = NULL;
    int rc = h_run_binary(e, args, env, &out);
    cr_assert_eq(rc, 1, "exited %d: %s", rc, out);
    cr_assert(strstr(out, "SERVICE_PORT") != NULL, "%s", out);
    free(out);
}

/* SERVICE_PORT wins over the file's service.port: the service answers on
 * the variable's port and not on the file's. */
H_TEST(cli, service_port_env_overrides_file)
{
    h_env_t *e = h_setup(NULL);
    int env_port = h_free_port();
    char var[32];
    snprintf(var, sizeof(var), "SERVICE_PORT=%d", env_port);
    const char *env[] = {var, NULL};
    h_svc_start_env(e, env, env_port);
    h_resp_t r = h_http(env_port, "GET", "/health", NULL, 0, NULL, 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    h_resp_free(&r);
    r = h_http(e->svc.port, "GET", "/health", NULL, 0, NULL, 2000);
    cr_assert_eq(r.status, 0, "the file's port %d answered %ld", e->svc.port, r.status);
    h_resp_free(&r);
}

/* DATABASE_URL and NATS_URL win over the file: a file pointing at nothing
 * still gives a working service when the variables are right. */
H_TEST(cli, database_and_nats_url_env_override_file)
{
    h_env_t *e = h_setup(&(h_opts_t){.api_workers = 1});
    char text[1024], db[300], nats[80];
    snprintf(text, sizeof(text),
             "service:\n  bind: 127.0.0.1\n  port: %d\n"
             "workers:\n  api: 1\n  processor: 0\n  replay: 0\n"
             "database:\n  url: \"postgresql://postgres@127.0.0.1:1/nothing\"\n"
             "nats:\n  url: \"nats://127.0.0.1:1\"\n"
             "logging:\n  format: text\n",
             e->svc.port);
    h_svc_write_config_text(e, text);
    snprintf(db, sizeof(db), "DATABASE_URL=%s", e->dburl);
    snprintf(nats, sizeof(nats), "NATS_URL=nats://127.0.0.1:%d", e->nats.port);
    const char *env[] = {db, nats, NULL};
    h_svc_start_env(e, env, 0);
    h_resp_t r = h_get(e, "/health/ready");
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "checks.nats"), "ok", "%s", r.body);
    h_resp_free(&r);
    free(h_create(e, "{\"event_type\":\"env.ok\"}"));
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), 1);
}
