#!/usr/bin/env bash
# bench/replay.sh - the replay benchmark of event_service: how fast one replay
# worker republishes a large history to NATS (mode republish, JetStream,
# Nats-Msg-Id per event), and how much memory it needs doing it, next to
# same-run baselines of the two systems it sits between. One command:
#
#   bench/replay.sh
#
# It builds a Release binary, starts its own PostgreSQL (fsync on, default
# durability) and nats-server under a temporary directory on free ports,
# applies the schema (event-service migrate), loads N events of history
# straight into event.events (INSERT ... SELECT generate_series: 20 event
# types, 50,000 users, a month of timestamps, processed), moves the
# event.stored publisher past them, and then:
#   1. service: starts event-service (1 API worker, 0 processor workers,
#      1 replay worker), POSTs one republish replay of the whole time window
#      and times it until GET /api/v1/events/replay/{id} says completed,
#      sampling the replay worker's resident memory (/proc/<pid>/status VmRSS,
#      and VmHWM, the kernel's high-water mark, at the end); checks that the
#      job counted N events and that the JetStream stream took N messages;
#   2. baselines, same run, same rows: psql exporting them in position order
#      to /dev/null (COPY of the rows; COPY of the rows as JSON), the
#      service's own page query (event.replay_select, PAGE_SIZE rows a page)
#      run page by page inside PostgreSQL, and a C client (libnats, compiled
#      here) publishing N messages of the events' mean JSON size to the same
#      JetStream stream with a Nats-Msg-Id each, waiting for the acks every
#      PAGE_SIZE messages (as the worker does) and, as a ceiling, only at the
#      end; and the count the worker makes of the whole window before its
#      first page (its total), timed alone.
# It prints a table at the end (events/s, time, peak RSS, CPU per event), and
# stops everything it started on exit, including when interrupted. See
# bench/README.md.
#
# Knobs (environment): N (events, 1000000), PAGE_SIZE (the service's
# replay.page_size, 500), PG_SHARED_BUFFERS (512MB), REPLAY_TIMEOUT (s, 1800),
# LOG_DIR (copy the logs and raw outputs there before cleaning up),
# SKIP_BUILD=1 (use the existing build/bench/event-service).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source-path=SCRIPTDIR/.. source=bench/lib.sh
. bench/lib.sh

N=${N:-1000000}
PAGE_SIZE=${PAGE_SIZE:-500}
PG_SHARED_BUFFERS=${PG_SHARED_BUFFERS:-512MB}
REPLAY_TIMEOUT=${REPLAY_TIMEOUT:-1800}
LOG_DIR=${LOG_DIR:-}
SKIP_BUILD=${SKIP_BUILD:-0}
PRELOAD_CHUNK=250000
DB=event_replay
TARGET=bench

require_positive N PAGE_SIZE REPLAY_TIMEOUT
require_tools cmake cc psql nats-server curl ss awk
[ -f /usr/include/nats/nats.h ] || die "libnats headers not found (scripts/deps.sh installs them)"

install_cleanup

# --- helpers -------------------------------------------------------------------

now() { date +%s.%N; }

# us_per EVENTS TICKS: CPU microseconds per event.
us_per() { awk -v n="$1" -v t="$2" -v hz="$CLK_TCK" 'BEGIN { printf "%.1f", (n > 0) ? t * 1e6 / hz / n : 0 }'; }
# kb_of PID FIELD: a VmXXX line of /proc/PID/status, in kB (0 when gone).
kb_of() { awk -v f="$2:" '$1 == f { print $2; found = 1 } END { if (!found) print 0 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# --- build and start -------------------------------------------------------------

build_service
make_workdir es-bench-replay

# The raw JetStream publisher of the baseline: N messages of SIZE bytes on
# SUBJECT, each with a Nats-Msg-Id, acks awaited every PAGE messages (0: at
# the end only), as the replay worker's publisher does it.
cat >"$WORK/jspub.c" <<'EOF'
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: jspub URL SUBJECT N SIZE PAGE IDPREFIX\n");
        return 2;
    }
    const char *url = argv[1], *subject = argv[2], *prefix = argv[6];
    long n = atol(argv[3]), size = atol(argv[4]), page = atol(argv[5]);
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = 65536;
    if (natsConnection_ConnectTo(&nc, url) != NATS_OK || natsConnection_JetStream(&js, nc, &jo) != NATS_OK) {
        fprintf(stderr, "cannot connect to %s\n", url);
        return 1;
    }
    char *payload = malloc((size_t)size + 1);
    for (long i = 0; i < size; i++)
        payload[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[i % 36];
    payload[0] = '{';
    payload[size - 1] = '}';
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 60000;
    double t0 = now();
    for (long i = 0; i < n; i++) {
        natsMsg *m = NULL;
        char id[96];
        snprintf(id, sizeof(id), "%s:%ld", prefix, i);
        if (natsMsg_Create(&m, subject, NULL, payload, (int)size) != NATS_OK ||
            natsMsgHeader_Set(m, "Nats-Msg-Id", id) != NATS_OK ||
            js_PublishMsgAsync(js, &m, NULL) != NATS_OK) {
            fprintf(stderr, "publish %ld failed\n", i);
            return 1;
        }
        if (page > 0 && (i + 1) % page == 0 && js_PublishAsyncComplete(js, &po) != NATS_OK) {
            fprintf(stderr, "acks of page %ld did not come\n", i / page);
            return 1;
        }
    }
    if (js_PublishAsyncComplete(js, &po) != NATS_OK) {
        fprintf(stderr, "the last acks did not come\n");
        return 1;
    }
    double secs = now() - t0;
    printf("RESULT n=%ld secs=%.3f rate=%.0f\n", n, secs, n / secs);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    free(payload);
    return 0;
}
EOF
cc -O2 -o "$WORK/jspub" "$WORK/jspub.c" -lnats || die "cannot compile the baseline publisher"

start_postgres "shared_buffers=$PG_SHARED_BUFFERS" max_wal_size=4GB
pg_createdb "$PG_PORT" "$DB"
pg_describe "current_setting(name)" fsync synchronous_commit shared_buffers max_wal_size
start_nats

CONFIG=$WORK/event_service.yaml
# No processor workers: nothing to process; the replay is measured alone.
write_config() {
  service_config 1 0 1 <<EOF
replay:
  page_size: $PAGE_SIZE
logging:
  level: info    # the master names the replay worker's pid; the worker logs per job, not per page
  format: text
EOF
}
pick_port SVC_PORT
write_config
"$BIN" -t -c "$CONFIG" >/dev/null || die "the service refuses the generated config $CONFIG"
run_child "$OUT/migrate.txt" "$BIN" migrate -c "$CONFIG" || die "migrate failed: $(tail -n 5 "$OUT/migrate.txt")"

# --- history -----------------------------------------------------------------------

log "loading $N events of history (INSERT ... SELECT, $PRELOAD_CHUNK a statement)"
t0=$(date +%s)
loaded=0
while [ "$loaded" -lt "$N" ]; do
  k=$((N - loaded < PRELOAD_CHUNK ? N - loaded : PRELOAD_CHUNK))
  # 20 event types with their source and category, the common ones first;
  # users skewed (1/sqrt); timestamps over the 30 days before 2026-01-01, in
  # insertion order, so positions and timestamps rise together as in a live
  # system; a small JSON body.
  sql "INSERT INTO event.events (event_id, event_type, event_source, event_category, user_id,
         session_id, data, metadata, status, processed_at, timestamp, created_at, updated_at)
       SELECT gen_random_uuid()::text,
              (ARRAY['page.viewed', 'button.clicked', 'user.login', 'api.request', 'cart.updated',
                     'order.created', 'form.submitted', 'payment.succeeded', 'sensor.reading',
                     'device.heartbeat', 'user.logout', 'order.shipped', 'task.completed',
                     'report.generated', 'user.signup', 'payment.failed', 'error.raised',
                     'security.login_failed', 'device.command', 'alert.raised'])[x.k],
              (ARRAY['frontend', 'frontend', 'backend', 'external_api', 'frontend', 'backend',
                     'frontend', 'backend', 'iot_device', 'iot_device', 'backend', 'backend',
                     'system', 'scheduled', 'backend', 'backend', 'system', 'backend', 'iot_device',
                     'system'])[x.k],
              (ARRAY['page_view', 'click', 'user_lifecycle', 'performance', 'user_action', 'order',
                     'form_submit', 'payment', 'telemetry', 'device_status', 'user_lifecycle', 'order',
                     'task', 'system', 'user_lifecycle', 'payment', 'error', 'security', 'command',
                     'alert'])[x.k],
              'user_' || x.u, 'sess_' || (x.u * 7 + x.g / 1800 % 7),
              jsonb_build_object('amount', x.g % 1000, 'currency', 'EUR',
                                 'page', '/products/' || (x.g % 2000)),
              jsonb_build_object('user_agent', 'Mozilla/5.0 (X11; Linux x86_64) bench/1.0'),
              'processed', x.ts + interval '2 seconds', x.ts, x.ts + interval '1 second',
              x.ts + interval '2 seconds'
       FROM (SELECT g, least(49999, floor(50000 * r.ru * r.ru))::int AS u,
                    least(20, 1 + floor(20 * power(r.rk, 2.2)))::int AS k,
                    timestamptz '2025-12-02T00:00:00Z' + (g * (2592000.0 / $N)) * interval '1 second' AS ts
             FROM (SELECT g, random() AS ru, random() AS rk
                   FROM generate_series($((loaded + 1)), $((loaded + k))) g) r) x" >/dev/null
  loaded=$((loaded + k))
  log "  $loaded"
done
sql "UPDATE event.outbox_state SET position = (SELECT max(position) FROM event.events) WHERE name = 'event.stored'" >/dev/null
sql "VACUUM ANALYZE event.events" >/dev/null
sql "CHECKPOINT" >/dev/null
LOAD_SECS=$(($(date +%s) - t0))
TOTAL=$(sql "SELECT count(*) FROM event.events")
[ "$TOTAL" -eq "$N" ] || die "$TOTAL events in the table, not $N"
TABLE_SIZE=$(sql "SELECT pg_size_pretty(pg_table_size('event.events')) || ' + ' ||
  pg_size_pretty(pg_indexes_size('event.events')) || ' indexes'")
WINDOW_START=$(sql "SELECT to_char(min(timestamp) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM event.events")
WINDOW_END=$(sql "SELECT to_char(max(timestamp) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM event.events")
log "  $TOTAL events ($TABLE_SIZE) in ${LOAD_SECS}s; timestamps $WINDOW_START .. $WINDOW_END"

# --- 1. the service --------------------------------------------------------------------

log "starting event-service on 127.0.0.1:$SVC_PORT (1 API worker, 0 processor workers, 1 replay worker, page $PAGE_SIZE)"
"$BIN" -c "$CONFIG" >"$WORK/service.log" 2>&1 &
SVC_PID=$!
wait_ready || die "event-service did not become ready: $(tail -n 5 "$WORK/service.log")"
RW_PID=""
for _ in $(seq 1 100); do
  RW_PID=$(grep -o 'started replay worker 0 (pid [0-9]*' "$WORK/service.log" | tail -n1 | grep -o '[0-9]*$' || true)
  [ -n "$RW_PID" ] && alive "$RW_PID" && break
  sleep 0.1
done
[ -n "$RW_PID" ] || die "no replay worker pid in the service log"
[ "$(ps -o ppid= -p "$RW_PID" | tr -d ' ')" = "$SVC_PID" ] || die "pid $RW_PID is not a worker of the service"
RSS_IDLE=$(kb_of "$RW_PID" VmRSS)
log "  replay worker pid $RW_PID, $RSS_IDLE kB resident before the replay"

BODY="{\"start_time\":\"$WINDOW_START\",\"end_time\":\"$WINDOW_END\",\"target_service\":\"$TARGET\"}"
record_cmd "curl -X POST http://127.0.0.1:$SVC_PORT/api/v1/events/replay -d '$BODY'"
SEQ0=$(js_last_seq)
C_RW0=$(proc_ticks "$RW_PID"); C_PG0=$(tree_ticks "$PM_PID"); C_NATS0=$(proc_ticks "$NATS_PID")
T_POST=$(now)
code=$(curl -s -o "$OUT/replay_post.json" -m 10 -w '%{http_code}' -H 'Content-Type: application/json' \
  -d "$BODY" "http://127.0.0.1:$SVC_PORT/api/v1/events/replay" || true)
[ "$code" = 202 ] || die "POST /replay answered $code: $(head -c 300 "$OUT/replay_post.json")"
RID=$(grep -o '"replay_id": *"[^"]*"' "$OUT/replay_post.json" | sed 's/.*"\([^"]*\)"$/\1/')
[ -n "$RID" ] || die "no replay_id in $(cat "$OUT/replay_post.json")"
log "replay $RID started; polling its status every 0.2 s"
RSS_MAX=0
STATUS=""
LAST_LOG=$(date +%s)
while :; do
  rss=$(kb_of "$RW_PID" VmRSS)
  [ "$rss" -gt "$RSS_MAX" ] && RSS_MAX=$rss
  curl -s -m 5 -o "$OUT/replay_status.json" "http://127.0.0.1:$SVC_PORT/api/v1/events/replay/$RID" || true
  STATUS=$(grep -o '"status": *"[^"]*"' "$OUT/replay_status.json" | head -n1 | sed 's/.*"\([^"]*\)"$/\1/' || true)
  case $STATUS in completed | failed | cancelled) break ;; esac
  if [ $(($(date +%s) - LAST_LOG)) -ge 10 ]; then
    LAST_LOG=$(date +%s)
    log "  $(grep -o '"replayed": *[0-9]*' "$OUT/replay_status.json" || true) of $N; $rss kB resident"
  fi
  [ "$(awk -v a="$(now)" -v b="$T_POST" 'BEGIN { print int(a - b) }')" -lt "$REPLAY_TIMEOUT" ] ||
    die "the replay did not end within $REPLAY_TIMEOUT s: $(cat "$OUT/replay_status.json")"
  alive "$RW_PID" || die "the replay worker $RW_PID died: $(tail -n 5 "$WORK/service.log")"
  sleep 0.2
done
T_DONE=$(now)
C_RW1=$(proc_ticks "$RW_PID"); C_PG1=$(tree_ticks "$PM_PID"); C_NATS1=$(proc_ticks "$NATS_PID")
RSS_HWM=$(kb_of "$RW_PID" VmHWM)
RSS_END=$(kb_of "$RW_PID" VmRSS)
[ "$RSS_END" -gt "$RSS_MAX" ] && RSS_MAX=$RSS_END
[ "$STATUS" = completed ] || die "the replay ended $STATUS: $(cat "$OUT/replay_status.json")"
sleep 1
SEQ1=$(js_last_seq)
PUBLISHED=$(pub_delta "$SEQ0" "$SEQ1")
WALL=$(calc "$T_DONE - $T_POST")
IFS='|' read -r JOB_TOTAL JOB_REPLAYED JOB_FAILED JOB_RUN JOB_ALL <<<"$(sql "SELECT total, replayed, failed,
  extract(epoch FROM finished_at - started_at), extract(epoch FROM finished_at - created_at)
  FROM event.replay_jobs WHERE replay_id = '$RID'")"
SVC_EPS=$(calc "$N / $JOB_ALL")
SVC_EPS_RUN=$(calc "$N / $JOB_RUN")
log "  completed: total $JOB_TOTAL, replayed $JOB_REPLAYED, failed $JOB_FAILED; $(fmt "$JOB_ALL" 2) s from the request to the end ($(fmt "$SVC_EPS") events/s), polled wall time $(fmt "$WALL" 2) s"
log "  JetStream took $PUBLISHED messages; replay worker peak RSS $RSS_HWM kB (VmHWM), max sampled $RSS_MAX kB"
stop_service

# --- 2. baselines ---------------------------------------------------------------------------

SEL="{\"start_time\": \"$WINDOW_START\", \"end_time\": \"$WINDOW_END\", \"filters\": {}}"
COLS="event_id, event_type, event_source, event_category, user_id, session_id, organization_id,
  device_id, correlation_id, data, metadata, context, properties, status, processed_at, processors,
  error_message, retry_count, timestamp, created_at, updated_at, version, schema_version, stream_id,
  stream_version, position"
WHERE="timestamp >= '$WINDOW_START' AND timestamp <= '$WINDOW_END'"

timed() { # timed NAME CMD...: runs CMD (output to /dev/null), prints the seconds it took
  local name=$1 a b
  shift
  record_cmd "$*"
  a=$(now)
  run_child "$OUT/$name.txt" "$@" || die "$name failed: $(tail -n 5 "$OUT/$name.txt")"
  b=$(now)
  calc "$b - $a"
}

log "baseline: psql COPY of the same rows in position order to /dev/null"
sql "SELECT count(*) FROM event.events" >/dev/null # warm the cache as the replay had it
EXPORT_SECS=$(timed export_rows sh -c "psql -X -q -h 127.0.0.1 -p $PG_PORT -U postgres -d $DB -c \"COPY (SELECT $(tr -d '\n' <<<"$COLS") FROM event.events WHERE $WHERE ORDER BY position) TO STDOUT\" >/dev/null")
log "  $(fmt "$EXPORT_SECS" 2) s"
log "baseline: psql COPY of the same rows as JSON, in position order, to /dev/null"
EXPORT_JSON_SECS=$(timed export_json sh -c "psql -X -q -h 127.0.0.1 -p $PG_PORT -U postgres -d $DB -c \"COPY (SELECT row_to_json(e) FROM (SELECT $(tr -d '\n' <<<"$COLS") FROM event.events WHERE $WHERE ORDER BY position) e) TO STDOUT\" >/dev/null")
log "  $(fmt "$EXPORT_JSON_SECS" 2) s"

log "baseline: the service's page query (event.replay_select, $PAGE_SIZE a page) in a loop inside PostgreSQL"
cat >"$WORK/pages.sql" <<EOF
DO \$\$
DECLARE
    sel jsonb := '$SEL';
    ckpt bigint := 0;
    upper bigint := event.position_mark();
    n int;
    last bigint;
    total bigint := 0;
BEGIN
    LOOP
        SELECT count(*), max(p.position) INTO n, last
        FROM event.replay_select(sel, ckpt, upper, $PAGE_SIZE) p;
        EXIT WHEN n = 0;
        ckpt := last;
        total := total + n;
    END LOOP;
    IF total <> $N THEN
        RAISE EXCEPTION 'paged % rows, not $N', total;
    END IF;
END \$\$;
EOF
PAGES_SECS=$(timed pages psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$DB" -f "$WORK/pages.sql")
log "  $(fmt "$PAGES_SECS" 2) s"

log "baseline: the job's total, as the worker counts it before its first page (count(*) over event.replay_select of the whole window)"
cat >"$WORK/count.sql" <<EOF
SELECT count(*) FROM event.replay_select('$SEL', 0, event.position_mark(), 2147483647);
EOF
COUNT_SECS=$(timed count psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$DB" -f "$WORK/count.sql")
log "  $(fmt "$COUNT_SECS" 2) s"

MSG_SIZE=$(sql "SELECT round(avg(length(row_to_json(e)::text))) FROM (SELECT $(tr -d '\n' <<<"$COLS") FROM event.events TABLESAMPLE SYSTEM (1)) e")
log "baseline: raw JetStream publish of $N messages of $MSG_SIZE bytes with Nats-Msg-Id, acks every $PAGE_SIZE (C client)"
JS_SEQ0=$(js_last_seq)
C_NATSB0=$(proc_ticks "$NATS_PID")
record_cmd "$WORK/jspub nats://127.0.0.1:$NATS_PORT event.replay.baseline $N $MSG_SIZE $PAGE_SIZE paged"
run_child "$OUT/jspub_paged.txt" "$WORK/jspub" "nats://127.0.0.1:$NATS_PORT" event.replay.baseline "$N" "$MSG_SIZE" "$PAGE_SIZE" paged ||
  die "the baseline publisher failed: $(tail -n 3 "$OUT/jspub_paged.txt")"
C_NATSB1=$(proc_ticks "$NATS_PID")
JS_PAGED_EPS=$(grep -o 'rate=[0-9]*' "$OUT/jspub_paged.txt" | cut -d= -f2)
JS_PAGED_SECS=$(grep -o 'secs=[0-9.]*' "$OUT/jspub_paged.txt" | cut -d= -f2)
sleep 1
JS_PAGED_TOOK=$(pub_delta "$JS_SEQ0" "$(js_last_seq)")
log "  $(fmt "$JS_PAGED_EPS") messages/s ($JS_PAGED_TOOK taken)"
log "baseline: the same, acks awaited only at the end"
record_cmd "$WORK/jspub nats://127.0.0.1:$NATS_PORT event.replay.baseline $N $MSG_SIZE 0 free"
run_child "$OUT/jspub_free.txt" "$WORK/jspub" "nats://127.0.0.1:$NATS_PORT" event.replay.baseline "$N" "$MSG_SIZE" 0 free ||
  die "the baseline publisher failed: $(tail -n 3 "$OUT/jspub_free.txt")"
JS_FREE_EPS=$(grep -o 'rate=[0-9]*' "$OUT/jspub_free.txt" | cut -d= -f2)
JS_FREE_SECS=$(grep -o 'secs=[0-9.]*' "$OUT/jspub_free.txt" | cut -d= -f2)
log "  $(fmt "$JS_FREE_EPS") messages/s"

# --- report ---------------------------------------------------------------------------------

# Warnings before the stop (the stop itself logs dropped connections).
WARNINGS=$(sed -n '/stopping: asking/q; p' "$WORK/service.log" | grep -cE ' (warn|error) ' || true)
{
  echo
  echo "=================================================================================================="
  echo " event_service replay benchmark   $(date -u +%Y-%m-%dT%H:%M:%SZ)   $SVC_VERSION, source $GIT_DESC"
  echo " machine: $(nproc) cores; PostgreSQL $PG_VERSION_STR: $PG_SETTINGS"
  echo " history: $N events ($TABLE_SIZE), loaded in ${LOAD_SECS}s; mean event JSON $MSG_SIZE bytes"
  echo " service: 1 API worker, 0 processor workers, 1 replay worker, replay.page_size $PAGE_SIZE"
  echo "=================================================================================================="
  printf '%-58s %12s %10s %14s\n' "republish $N events (same rows, same run)" "events/s" "seconds" "peak RSS"
  printf '%-58s %12s %10s %14s\n' "  service: POST /replay -> completed (job times)" "$(fmt "$SVC_EPS")" "$(fmt "$JOB_ALL" 2)" "$((RSS_HWM / 1024)) MB"
  printf '%-58s %12s %10s\n' "    of which the worker's run (started -> finished)" "$(fmt "$SVC_EPS_RUN")" "$(fmt "$JOB_RUN" 2)"
  printf '%-58s %12s %10s\n' "    request -> completed seen by polling (0.2 s)" "" "$(fmt "$WALL" 2)"
  printf '%-58s %12s %10s\n' "  psql COPY rows ORDER BY position > /dev/null" "$(fmt "$(calc "$N / $EXPORT_SECS")")" "$(fmt "$EXPORT_SECS" 2)"
  printf '%-58s %12s %10s\n' "  psql COPY rows as JSON ORDER BY position > /dev/null" "$(fmt "$(calc "$N / $EXPORT_JSON_SECS")")" "$(fmt "$EXPORT_JSON_SECS" 2)"
  printf '%-58s %12s %10s\n' "  replay_select pages of $PAGE_SIZE, inside PostgreSQL" "$(fmt "$(calc "$N / $PAGES_SECS")")" "$(fmt "$PAGES_SECS" 2)"
  printf '%-58s %12s %10s\n' "  the job's count of the window (before its first page)" "" "$(fmt "$COUNT_SECS" 2)"
  printf '%-58s %12s %10s\n' "  raw JetStream publish, $MSG_SIZE B + Nats-Msg-Id, acks every $PAGE_SIZE" "$(fmt "$JS_PAGED_EPS")" "$(fmt "$JS_PAGED_SECS" 2)"
  printf '%-58s %12s %10s\n' "  raw JetStream publish, acks only at the end" "$(fmt "$JS_FREE_EPS")" "$(fmt "$JS_FREE_SECS" 2)"
  echo "--------------------------------------------------------------------------------------------------"
  printf '%-58s %12s\n' " service vs raw JetStream publish (acks every page)" "$(fmt "$(calc "$SVC_EPS / $JS_PAGED_EPS")" 2)x"
  printf '%-58s %12s\n' " service vs psql JSON export" "$(fmt "$(calc "$SVC_EPS / ($N / $EXPORT_JSON_SECS)")" 2)x"
  echo " replay worker memory: $((RSS_IDLE / 1024)) MB resident before, $((RSS_MAX / 1024)) MB max sampled during, VmHWM $((RSS_HWM / 1024)) MB"
  echo " CPU per event during the service's replay (us): replay worker $(us_per "$N" $((C_RW1 - C_RW0))),"\
       "PostgreSQL $(us_per "$N" $((C_PG1 - C_PG0))), nats-server $(us_per "$N" $((C_NATS1 - C_NATS0)));"\
       "nats-server during the raw paged publish $(us_per "$N" $((C_NATSB1 - C_NATSB0)))"
  echo "--------------------------------------------------------------------------------------------------"
  echo " checks: job total $JOB_TOTAL, replayed $JOB_REPLAYED, failed $JOB_FAILED; JetStream took $PUBLISHED messages"
  echo "         for the replay (last_seq delta) and $JS_PAGED_TOOK for the paged baseline; service warn/error lines before the stop: $WARNINGS"
  echo "--------------------------------------------------------------------------------------------------"
  echo " commands (PostgreSQL 127.0.0.1:$PG_PORT db $DB, nats-server 127.0.0.1:$NATS_PORT):"
  printf '   %s\n' "${COMMANDS[@]}"
  echo "=================================================================================================="
} | tee "$OUT/report.txt"
[ "$JOB_TOTAL" = "$N" ] && [ "$JOB_REPLAYED" = "$N" ] || die "the job counted $JOB_REPLAYED of $JOB_TOTAL, not $N"
[ "$PUBLISHED" = "$N" ] || log "WARNING: JetStream took $PUBLISHED messages for $N events"
