/* GET /openapi.json - an OpenAPI 3 document of every route, generated from
 * the route table itself, so it cannot list a route the server does not serve
 * or miss one it does. */
#include "api-worker/http.h"
#include "api-worker/routes.h"
#include "common/buf.h"

#include <stdlib.h>
#include <string.h>

static char *document;
static size_t document_len;

static void build(void)
{
    es_buf_t b = ES_BUF_INIT;
    es_buf_puts(&b, "{\"openapi\":\"3.0.3\",\"info\":{\"title\":\"event_service\",\"version\":\"" ES_VERSION
                    "\",\"description\":\"The event hub: ingest, store, process, deliver, replay."
                    " Errors are {\\\"detail\\\": \\\"...\\\"}.\"},\"paths\":{");
    bool first_path = true;
    for (int i = 0; i < es_routes_count; i++) {
        bool seen = false; /* a path with several methods is one entry */
        for (int k = 0; k < i; k++)
            seen |= strcmp(es_routes[k].pattern, es_routes[i].pattern) == 0;
        if (seen)
            continue;
        if (!first_path)
            es_buf_putc(&b, ',');
        first_path = false;
        es_buf_json_cstr(&b, es_routes[i].pattern);
        es_buf_puts(&b, ":{");
        bool first_op = true;
        for (int k = i; k < es_routes_count; k++) {
            const es_route_t *r = &es_routes[k];
            if (strcmp(r->pattern, es_routes[i].pattern) != 0)
                continue;
            if (!first_op)
                es_buf_putc(&b, ',');
            first_op = false;
            char method[8];
            size_t n = strlen(r->method);
            for (size_t j = 0; j < n && j < sizeof(method) - 1; j++)
                method[j] = (char)(r->method[j] | 0x20);
            method[ES_MIN(n, sizeof(method) - 1)] = '\0';
            es_buf_printf(&b, "\"%s\":{\"operationId\":", method);
            es_buf_json_cstr(&b, r->name);
            es_buf_puts(&b, ",\"summary\":");
            es_buf_json_cstr(&b, r->name);
            es_buf_puts(&b, ",\"parameters\":[");
            bool first_param = true;
            for (const char *p = strchr(r->pattern, '{'); p != NULL; p = strchr(p + 1, '{')) {
                const char *close = strchr(p, '}');
                if (!first_param)
                    es_buf_putc(&b, ',');
                first_param = false;
                es_buf_puts(&b, "{\"name\":");
                es_buf_json_str(&b, p + 1, (size_t)(close - p - 1));
                es_buf_puts(&b, ",\"in\":\"path\",\"required\":true,\"schema\":{\"type\":\"string\"}}");
            }
            es_buf_putc(&b, ']');
            if (strcmp(r->method, "POST") == 0 || strcmp(r->method, "PUT") == 0)
                es_buf_puts(&b, ",\"requestBody\":{\"required\":false,\"content\":{\"application/"
                                "json\":{\"schema\":{\"type\":\"object\"}}}}");
            es_buf_puts(&b, ",\"responses\":{\"default\":{\"description\":\"JSON\"}}}");
        }
        es_buf_putc(&b, '}');
    }
    es_buf_puts(&b, "}}");
    document_len = b.len;
    document = es_buf_take(&b);
}

void es_h_openapi(h2o_req_t *req, const es_route_args_t *args)
{
    if (document == NULL)
        build();
    es_http_json(req, 200, document, document_len);
}
