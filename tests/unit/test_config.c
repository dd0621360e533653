#include "common/config.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static es_rc_t parse(es_config_t *cfg, const char *yaml, char *err, size_t errlen)
{
    es_config_defaults(cfg);
    return es_config_parse_yaml(cfg, "test.yaml", yaml, strlen(yaml), err, errlen);
}

Test(config, defaults_are_the_embedded_setup)
{
    es_config_t cfg;
    es_config_defaults(&cfg);
    cr_assert_eq(cfg.service.port, 8208);
    cr_assert_eq(cfg.workers.api, 2);
    cr_assert_eq(cfg.service.max_batch, 100);
    cr_assert_eq(cfg.service.body_limit_bytes, 1048576);
    cr_assert_str_eq(cfg.nats.stream, "event-stream");
    cr_assert_eq(cfg.nats.subjects.len, 1);
    cr_assert_str_eq(cfg.nats.subjects.items[0], "event.>");
    char *ci = es_config_conninfo(&cfg);
    cr_assert(strstr(ci, "port='54329'") != NULL, "conninfo: %s", ci);
    free(ci);
    es_config_free(&cfg);
}

Test(config, file_values_override_defaults)
{
    es_config_t cfg;
    char err[256] = "";
    cr_assert_eq(parse(&cfg,
                       "service:\n  port: 9000\n  trusted_proxies: [10.0.0.1, 10.0.0.2]\n"
                       "workers:\n  api: 3\n  processor: 0\n"
                       "processing:\n  interval_seconds: 0.5\n"
                       "logging:\n  level: debug\n  format: text\n",
                       err, sizeof(err)),
                 ES_OK, "%s", err);
    cr_assert_eq(cfg.service.port, 9000);
    cr_assert_eq(cfg.workers.api, 3);
    cr_assert_eq(cfg.workers.processor, 0);
    cr_assert_float_eq(cfg.processing.interval_seconds, 0.5, 1e-9);
    cr_assert_eq(cfg.service.trusted_proxies.len, 2);
    cr_assert_str_eq(cfg.service.trusted_proxies.items[1], "10.0.0.2");
    cr_assert_eq(cfg.logging.level, ES_LOG_DEBUG);
    cr_assert_eq(cfg.logging.json, false);
    es_config_free(&cfg);
}

Test(config, unknown_key_names_key_and_line)
{
    es_config_t cfg;
    char err[256] = "";
    cr_assert_eq(parse(&cfg, "service:\n  port: 9000\n  prot: 1\n", err, sizeof(err)), ES_INVALID);
    cr_assert(strstr(err, "test.yaml:3") != NULL, "%s", err);
    cr_assert(strstr(err, "service.prot") != NULL, "%s", err);
    es_config_free(&cfg);
}

Test(config, unknown_section_is_an_error)
{
    es_config_t cfg;
    char err[256] = "";
    cr_assert_eq(parse(&cfg, "servce:\n  port: 1\n", err, sizeof(err)), ES_INVALID);
    cr_assert(strstr(err, "test.yaml:1: unknown key servce") != NULL, "%s", err);
    es_config_free(&cfg);
}

Test(config, wrong_type_names_key_and_line)
{
    es_config_t cfg;
    char err[256] = "";
    cr_assert_eq(parse(&cfg, "workers:\n  api: two\n", err, sizeof(err)), ES_INVALID);
    cr_assert(strstr(err, "test.yaml:2") != NULL && strstr(err, "workers.api") != NULL, "%s",
              err);
    es_config_free(&cfg);
    cr_assert_eq(parse(&cfg, "nats:\n  enabled: \"yes\"\n", err, sizeof(err)), ES_INVALID);
    cr_assert(strstr(err, "nats.enabled") != NULL, "%s", err);
    es_config_free(&cfg);
    cr_assert_eq(parse(&cfg, "nats:\n  subjects: event.>\n", err, sizeof(err)), ES_INVALID);
    cr_assert(strstr(err, "nats.subjects") != NULL, "%s", err);
    es_config_free(&cfg);
    cr_assert_eq(parse(&cfg, "service:\n  port:\n    a: 1\n", err, sizeof(err)), ES_INVALID);
    cr_assert(strstr(err, "service.port") != NULL, "%s", err);
    es_config_free(&cfg);
}

Test(config, out_of_range_is_an_error)
{
    es_config_t cfg;
    char err[256] = "";
    cr_assert_eq(parse(&cfg, "service:\n  port: 70000\n", err, sizeof(err)), ES_INVALID);
    cr_assert(strstr(err, "out of range") != NULL, "%s", err);
    es_config_free(&cfg);
    cr_assert_eq(parse(&cfg, "logging:\n  format: xml\n", err, sizeof(err)), ES_INVALID);
    cr_assert(strstr(err, "logging.format") != NULL, "%s", err);
    es_config_free(&cfg);
}

Test(config, syntax_error_names_line)
{
    es_config_t cfg;
    char err[256] = "";
    cr_assert_eq(parse(&cfg, "service:\n  port: 1\n bad: [\n", err, sizeof(err)), ES_INVALID);
    cr_assert(strstr(err, "YAML syntax error") != NULL, "%s", err);
    es_config_free(&cfg);
}

Test(config, empty_document_keeps_defaults)
{
    es_config_t cfg;
    char err[256] = "";
    cr_assert_eq(parse(&cfg, "# nothing\n", err, sizeof(err)), ES_OK, "%s", err);
    cr_assert_eq(cfg.service.port, 8208);
    es_config_free(&cfg);
}

Test(config, environment_overrides_file)
{
    es_config_t cfg;
    char err[256] = "";
    cr_assert_eq(parse(&cfg, "service:\n  port: 9000\nnats:\n  url: nats://a:1\n", err,
                       sizeof(err)),
                 ES_OK);
    setenv("SERVICE_PORT", "9100", 1);
    setenv("NATS_URL", "nats://b:2", 1);
    setenv("DATABASE_URL", "postgresql://x@y/z", 1);
    setenv("CONSUL_ENABLED", "true", 1);
    setenv("PROCESSING_INTERVAL", "2", 1);
    cr_assert_eq(es_config_apply_env(&cfg, err, sizeof(err)), ES_OK, "%s", err);
    cr_assert_eq(cfg.service.port, 9100);
    cr_assert_str_eq(cfg.nats.url, "nats://b:2");
    cr_assert_eq(cfg.consul.enabled, true);
    cr_assert_float_eq(cfg.processing.interval_seconds, 2.0, 1e-9);
    char *ci = es_config_conninfo(&cfg);
    cr_assert_str_eq(ci, "postgresql://x@y/z");
    free(ci);
    setenv("SERVICE_PORT", "eighty", 1);
    cr_assert_eq(es_config_apply_env(&cfg, err, sizeof(err)), ES_INVALID);
    cr_assert(strstr(err, "SERVICE_PORT") != NULL, "%s", err);
    unsetenv("SERVICE_PORT");
    unsetenv("NATS_URL");
    unsetenv("DATABASE_URL");
    unsetenv("CONSUL_ENABLED");
    unsetenv("PROCESSING_INTERVAL");
    es_config_free(&cfg);
}

Test(config, conninfo_quotes_values)
{
    es_config_t cfg;
    es_config_defaults(&cfg);
    free(cfg.database.password);
    cfg.database.password = strdup("it's secret");
    char *ci = es_config_conninfo(&cfg);
    cr_assert(strstr(ci, "password='it\\'s secret'") != NULL, "%s", ci);
    free(ci);
    es_config_free(&cfg);
}

Test(config, shipped_file_is_valid)
{
    es_config_t cfg;
    char err[256] = "";
    cr_assert_eq(es_config_load(&cfg, ES_SOURCE_DIR "/conf/event_service.yaml", err, sizeof(err)),
                 ES_OK, "%s", err);
    cr_assert_eq(cfg.service.port, 8208);
    es_config_free(&cfg);
}
