/*
 * schedule.c - scheduled reprocessing. Each schedule's last considered due
 * time lives in event.replay_schedules; the instance that locks that row
 * (SKIP LOCKED: one at a time) creates the jobs of the due times since, and
 * (schedule_name, fire_time) is unique in event.replay_jobs, so each due time
 * fires once whatever the number of instances. After downtime, replay.catch_up
 * decides: "latest" runs the most recent missed time, "all" every one (up to
 * replay.max_catch_up), "none" only a due time less than a minute old.
 */
#include "common/buf.h"
#include "common/event_row.h"
#include "common/ids.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "replay-worker/worker.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The selector of a run at fire time t: events stamped in [t - window, t]. */
static char *selector_at(const es_schedule_t *s, int64_t t)
{
    char from[ES_TIME_BUFLEN], to[ES_TIME_BUFLEN];
    es_time_format((t - s->window_seconds) * 1000000, from);
    es_time_format(t * 1000000, to);
    json_t *filters = json_object();
    if (s->status)
        json_object_set_new(filters, "status", json_string(s->status));
    if (s->event_type)
        json_object_set_new(filters, "event_type", json_string(s->event_type));
    if (s->event_source)
        json_object_set_new(filters, "event_source", json_string(s->event_source));
    if (s->event_category)
        json_object_set_new(filters, "event_category", json_string(s->event_category));
    json_t *sel = json_pack("{ss ss so}", "start_time", from, "end_time", to, "filters", filters);
    char *text = json_dumps(sel, JSON_COMPACT);
    json_decref(sel);
    return text;
}

static int create_run(es_rworker_t *w, const es_schedule_t *s, int64_t t)
{
    char id[ES_UUID_LEN + 1], when[ES_TIME_BUFLEN];
    es_uuid_v4(id);
    es_time_format(t * 1000000, when);
    char *selector = selector_at(s, t);
    const char *p[7] = {id, s->mode, s->target_service, s->subscription_id, selector, s->name, when};
    PGresult *r = es_pgsync_query(&w->db, "create scheduled replay",
                                  "INSERT INTO event.replay_jobs (replay_id, mode, target_service, "
                                  "subscription_id, selector, schedule_name, fire_time) VALUES "
                                  "($1, $2, $3, $4, $5::jsonb, $6, $7::timestamptz) "
                                  "ON CONFLICT (schedule_name, fire_time) DO NOTHING RETURNING 1",
                                  7, p);
    int created = r != NULL ? PQntuples(r) : -1;
    PQclear(r);
    free(selector);
    if (created == 1)
        es_info("schedule %s fired for %s (replay %s)", s->name, when, id);
    return created;
}

/* One schedule, in its own transaction. */
static void fire(es_rworker_t *w, const es_schedule_t *s)
{
    const es_config_t *cfg = w->cfg;
    const char *p[1] = {s->name};
    if (!es_pgsync_exec(&w->db, "schedule", "BEGIN"))
        return;
    PGresult *r = es_pgsync_query(&w->db, "schedule",
                                  "INSERT INTO event.replay_schedules (name, last_fire) VALUES "
                                  "($1, date_trunc('minute', now())) ON CONFLICT DO NOTHING",
                                  1, p);
    PQclear(r);
    r = es_pgsync_query(&w->db, "schedule",
                        "SELECT extract(epoch FROM last_fire)::bigint, "
                        "extract(epoch FROM now())::bigint FROM event.replay_schedules "
                        "WHERE name = $1 FOR UPDATE SKIP LOCKED",
                        1, p);
    if (r == NULL || PQntuples(r) == 0) { /* another instance is on it */
        PQclear(r);
        es_pgsync_rollback(&w->db);
        return;
    }
    int64_t last = es_pg_int(r, 0, 0), now = es_pg_int(r, 0, 1);
    PQclear(r);
    /* Due times in (last, now], the most recent max_catch_up of them. */
    int cap = cfg->replay.max_catch_up;
    int64_t *due = es_xcalloc((size_t)cap, sizeof(int64_t));
    int ndue = 0;
    int64_t latest = last;
    for (int64_t t = es_cron_next(&s->cron, last); t > 0 && t <= now; t = es_cron_next(&s->cron, t)) {
        due[ndue % cap] = t; /* a ring: keeps the most recent */
        ndue++;
        latest = t;
        if (ndue > 1000000)
            break;
    }
    bool ok = true;
    if (ndue > 0) {
        const char *mode = cfg->replay.catch_up;
        if (strcmp(mode, "all") == 0) {
            int n = ES_MIN(ndue, cap);
            for (int i = 0; i < n && ok; i++)
                ok = create_run(w, s, due[(ndue - n + i) % cap]) >= 0;
        } else if (strcmp(mode, "latest") == 0 || now - latest < 60) {
            ok = create_run(w, s, latest) >= 0;
        }
        if (ndue > 1 && strcmp(mode, "all") != 0)
            es_info("schedule %s: %d due times missed while down; catch_up %s", s->name, ndue - 1,
                    mode);
    }
    free(due);
    char latest_s[24];
    snprintf(latest_s, sizeof(latest_s), "%lld", (long long)latest);
    const char *up[2] = {s->name, latest_s};
    r = ok ? es_pgsync_query(&w->db, "schedule",
                             "UPDATE event.replay_schedules SET last_fire = to_timestamp($2::bigint), "
                             "updated_at = now() WHERE name = $1",
                             2, up)
           : NULL;
    PQclear(r);
    if (r == NULL || !es_pgsync_exec(&w->db, "schedule", "COMMIT"))
        es_pgsync_rollback(&w->db);
}

void es_replay_fire_schedules(es_rworker_t *w)
{
    for (size_t i = 0; i < w->cfg->replay.nschedules; i++)
        fire(w, &w->cfg->replay.schedules[i]);
}
