#!/usr/bin/env bash
# bench/processing.sh - the processing benchmark of event_service: how fast
# processor workers drain event.processing_queue, next to PostgreSQL draining
# the same queue directly, measured in the same run. One command:
#
#   bench/processing.sh
#
# It builds a Release binary, starts its own PostgreSQL (fsync on, default
# durability) and nats-server under a temporary directory on free ports, and
# for each processor worker count W (1, 2, 4):
#   1. service: a fresh database (event-service migrate), one enabled noop
#      processor, N events stored in one go (the insert trigger queues them),
#      ANALYZE, CHECKPOINT; then the service starts with W processor workers
#      and is timed until event.processing_queue is empty. Every event must
#      end processed with exactly one processing_results row;
#   2. raw drain: the same fresh queue of N rows, drained by W pgbench clients,
#      each transaction claiming CLAIM rows with FOR UPDATE SKIP LOCKED and
#      deleting them in one statement (pgbench/drain_raw.sql): the ceiling;
#   3. fuller drain: the same, and per event also the status update and one
#      processing_results row (pgbench/drain_full.sql).
# All three are timed the same way: from the start of the process that drains
# to the first poll (every POLL_MS) that finds the queue empty. It prints a
# table at the end (events/s, ratios, CPU), and stops everything it started
# on exit, including when interrupted. See bench/README.md.
#
# Knobs (environment): N (events, 100000), WORKERS ("1 2 4"), BATCH (the
# service's processing.batch_size, 500), CLAIM (rows per pgbench transaction,
# 50), ROUNDS (1), POLL_MS (50), DRAIN_TIMEOUT (s, 600), PUBLISH_PRELOAD
# (0: the event.stored publisher skips the preloaded events; 1: it publishes
# them during the measurement), PG_SHARED_BUFFERS (512MB), LOG_DIR (copy the
# logs and raw outputs there before cleaning up), SKIP_BUILD=1 (use the
# existing build/bench/event-service).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source-path=SCRIPTDIR/.. source=bench/lib.sh
. bench/lib.sh

N=${N:-100000}
WORKERS=${WORKERS:-"1 2 4"}
BATCH=${BATCH:-500}
CLAIM=${CLAIM:-50}
ROUNDS=${ROUNDS:-1}
POLL_MS=${POLL_MS:-50}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-600}
PUBLISH_PRELOAD=${PUBLISH_PRELOAD:-0}
PG_SHARED_BUFFERS=${PG_SHARED_BUFFERS:-512MB}
LOG_DIR=${LOG_DIR:-}
SKIP_BUILD=${SKIP_BUILD:-0}
PRELOAD_CHUNK=250000
DB=event_proc
# Figures quoted in the issue for graphile-worker 0.18 with batching, no-op
# jobs, on a 2-core machine of this kind (events/s by process count). They
# were not measured by this script.
declare -A GRAPHILE=([1]=20000 [2]=31000)

require_positive N BATCH CLAIM ROUNDS POLL_MS DRAIN_TIMEOUT
for w in $WORKERS; do [[ $w =~ ^[1-9][0-9]*$ ]] || die "WORKERS must list positive integers"; done
require_tools cmake pgbench psql nats-server ss awk sort

# --- cleanup -----------------------------------------------------------------

# Besides what bench/lib.sh's cleanup stops: the polling psql session.
POLLER_OPEN=0

# A persistent psql session for the polls (no process or backend started per
# poll). Queries go in on its stdin, one answer line comes back per query.
poll_open() {
  coproc POLLER { exec psql -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$DB" 2>&1; }
  POLLER_OPEN=1
  POLLER_IN=${POLLER[1]}
  POLLER_OUT=${POLLER[0]}
  POLLER_PROC=$POLLER_PID
}
# poll SQL: runs one single-row, single-line query; the answer is in $ANSWER.
poll() {
  printf '%s;\n' "$1" >&"$POLLER_IN" || die "the polling psql is gone"
  IFS= guarded_read -r -t 10 -u "$POLLER_OUT" ANSWER || die "the polling psql did not answer: $1"
}
poll_close() {
  [ "$POLLER_OPEN" = 1 ] || return 0
  POLLER_OPEN=0
  exec {POLLER_IN}>&-
  wait "$POLLER_PROC" 2>/dev/null || true
}

cleanup_hook_pre() {
  if [ "$POLLER_OPEN" = 1 ]; then
    kill -TERM "$POLLER_PROC" 2>/dev/null
    poll_close
  fi
}
install_cleanup

# --- helpers -------------------------------------------------------------------

COMMANDS_UNIQUE=1 # a command run again (another round, another phase) is listed once

# The CPU table: service, postgres, nats, client (pgbench, psql), other, all.
CPU_LABEL_WIDTH=34
CPU_DECIMALS=1
CPU_WIDTHS="8 8 6 8 7 8"

# --- build and start -----------------------------------------------------------

build_service
make_workdir es-procbench
start_postgres "shared_buffers=$PG_SHARED_BUFFERS" max_wal_size=4GB
pg_describe "setting || coalesce(unit, '')" fsync synchronous_commit full_page_writes wal_sync_method \
  shared_buffers max_connections max_wal_size commit_delay autovacuum
start_nats

CONFIG=$WORK/event_service.yaml
# write_config W: the service with one API worker and W processor workers.
write_config() {
  service_config 1 "$1" 0 <<EOF
processing:
  batch_size: $BATCH
logging:
  level: warn
EOF
  "$BIN" -t -c "$CONFIG" >/dev/null || die "the service refuses the generated config $CONFIG"
}
pick_port SVC_PORT

# The preload: N events of the shape bench/ingest.sh posts (five types, a
# JSON payload of about 330 bytes), all pending, in INSERT ... SELECT chunks.
# The statement trigger queues every one of them in event.processing_queue.
PRELOAD_SQL="INSERT INTO event.events (event_id, event_type, event_source, event_category, user_id,
                          session_id, data, metadata, timestamp, created_at, updated_at)
SELECT gen_random_uuid()::text,
       (ARRAY['user.login', 'user.logout', 'order.created', 'payment.succeeded', 'page.viewed'])[1 + floor(random() * 5)::int],
       'backend', 'user_action', 'user_' || floor(random() * 50000)::int,
       'sess_' || floor(random() * 20000)::int,
       jsonb_build_object('amount', floor(random() * 1000)::int, 'currency', 'EUR',
                          'items', jsonb_build_array(jsonb_build_object('sku', 'sku-' || floor(random() * 300)::int, 'qty', 2)),
                          'note', 'benchmark event'),
       jsonb_build_object('ip_address', '10.0.0.' || floor(random() * 250)::int, 'user_agent', 'bench/1.0'),
       now(), now(), now()
FROM generate_series(1, :n)"

# prepare_db W: a fresh database with the schema, one noop processor and N
# queued events, analyzed and checkpointed.
prepare_db() {
  local left chunk queued
  sql_admin "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1 &&
    sql_admin "DROP DATABASE $DB WITH (FORCE)"
  sql_admin "CREATE DATABASE $DB"
  write_config "$1"
  "$BIN" migrate -c "$CONFIG" >"$OUT/migrate.log" 2>&1 || die "migrate failed: $(tail -n 5 "$OUT/migrate.log")"
  # What POST /api/v1/events/processors {"processor_name":"noop","processor_type":"noop"} stores.
  sql "INSERT INTO event.event_processors (processor_id, processor_name, processor_type)
       VALUES (gen_random_uuid()::text, 'noop', 'noop')" >/dev/null
  left=$N
  while [ "$left" -gt 0 ]; do
    chunk=$((left < PRELOAD_CHUNK ? left : PRELOAD_CHUNK))
    psqlq -v n="$chunk" >/dev/null <<<"$PRELOAD_SQL"
    left=$((left - chunk))
  done
  if [ "$PUBLISH_PRELOAD" != 1 ]; then
    # The event.stored publisher starts after the preload: it is not what is measured.
    sql "UPDATE event.outbox_state SET position = (SELECT coalesce(max(position), 0) FROM event.events)
         WHERE name = 'event.stored'" >/dev/null
  fi
  sql "ANALYZE" >/dev/null
  sql "CHECKPOINT" >/dev/null
  queued=$(sql "SELECT count(*) FROM event.processing_queue")
  [ "$queued" = "$N" ] || die "the preload queued $queued events, not $N"
}

# Fork-free helpers for the polling loop, so that polling costs the machine
# no more than the one psql session's queries.
exec {SLEEP_FD}<> <(:)
nap_ms() { guarded_read -r -t "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))" -u "$SLEEP_FD" _ || true; }
now_us() { local t=$EPOCHREALTIME; NOW_US=$((10#${t//[.,]/})); }
us_to_s() { printf '%d.%06d' $(($1 / 1000000)) $(($1 % 1000000)); }
running() { # running PID: alive and not a zombie, read from /proc
  local line
  [ -r "/proc/$1/stat" ] && read -r line <"/proc/$1/stat" 2>/dev/null || return 1
  line=${line##*) }
  [[ ${line%% *} != Z ]]
}

# drain_wait LABEL PID T0_US: polls every POLL_MS until event.processing_queue
# is empty, while process PID (the service or pgbench) runs. Sets T_FIRST_US
# (the first poll that saw fewer than N queued, empty if none did before the
# queue was empty) and T_END_US (the first poll that saw it empty).
drain_wait() {
  local label=$1 pid=$2 t0=$3 started=0 nextlog
  T_FIRST_US=""
  T_END_US=""
  nextlog=$((t0 + 5000000))
  while :; do
    now_us
    if [ "$started" = 0 ]; then
      poll "SELECT count(*) FROM event.processing_queue"
      if [ "$ANSWER" -lt "$N" ]; then
        started=1
        [ "$ANSWER" -gt 0 ] && T_FIRST_US=$NOW_US
      fi
      [ "$ANSWER" = 0 ] && { T_END_US=$NOW_US; return 0; }
    else
      poll "SELECT EXISTS (SELECT 1 FROM event.processing_queue)"
      [ "$ANSWER" = f ] && { T_END_US=$NOW_US; return 0; }
    fi
    if ! running "$pid"; then
      poll "SELECT count(*) FROM event.processing_queue"
      [ "$ANSWER" = 0 ] && { now_us; T_END_US=$NOW_US; return 0; }
      DRAIN_DEAD=1
      log "  $label: the draining process exited with $ANSWER events still queued"
      return 1
    fi
    if [ $((NOW_US - t0)) -gt $((DRAIN_TIMEOUT * 1000000)) ]; then
      poll "SELECT count(*) FROM event.processing_queue"
      die "$label: the queue still holds $ANSWER events after ${DRAIN_TIMEOUT}s"
    fi
    if [ "$NOW_US" -ge "$nextlog" ]; then
      poll "SELECT count(*) FROM event.processing_queue"
      log "  $label: $ANSWER still queued after $(((NOW_US - t0) / 1000000))s"
      nextlog=$((NOW_US + 5000000))
    fi
    nap_ms "$POLL_MS"
  done
}

declare -A SVC_EPS RAW_EPS FULL_EPS SVC_FIRST SVC_SPAN FULL_SPAN BUSY CHECKS SVC_PUB SVC_WARN SVC_WARN_STOP SVC_OUTBOX
FAILURES=()
fail() { FAILURES+=("$*"); log "  CHECK FAILED: $*"; }

# run_service W R: one measured drain by the service with W processor workers.
run_service() {
  local w=$1 r=$2 key="$1.$2" t0 c0 c1 p0 secs svclog v attempt
  local label="service, $w worker(s), round $r"
  svclog=$OUT/service_w${w}_r$r.log
  for attempt in 1 2 3; do
    log "$label: preparing $N queued events"
    prepare_db "$w"
    p0=$(js_last_seq)
    poll_open
    c0=$(cpu_snap)
    record_cmd "event-service -c <config: workers.api 1, workers.processor W, processing.batch_size $BATCH, logging.level warn>"
    log "$label: starting event-service, timing until event.processing_queue is empty"
    now_us
    t0=$NOW_US
    "$BIN" -c "$CONFIG" >"$svclog" 2>&1 &
    SVC_PID=$!
    DRAIN_DEAD=0
    if drain_wait "$label" "$SVC_PID" "$t0"; then
      break
    fi
    poll_close
    # A service that died before claiming anything (a lost port race): try again.
    v=$(sql "SELECT count(*) FROM event.processing_queue WHERE claim IS NOT NULL")
    stop_service
    if [ "$v" = 0 ] && [ "$attempt" -lt 3 ]; then
      log "  the service exited before claiming anything: $(tail -n 2 "$svclog")"
      pick_port SVC_PORT
      continue
    fi
    die "$label: the service exited mid-run; log: $(tail -n 5 "$svclog")"
  done
  # Lines the service logged while draining; those of its shutdown come after.
  SVC_WARN[$key]=$(grep -c . "$svclog" || true)
  poll_close
  c1=$(cpu_snap)
  stop_service
  secs=$(us_to_s $((T_END_US - t0)))
  SVC_EPS[$key]=$(calc "$N / $secs")
  cpu_row "service, W=$w, r$r" "$c0" "$c1" "$N"
  BUSY[svc.$key]="$CPU_BUSY/$CPU_STEAL"
  SVC_PUB[$key]=$(pub_delta "$p0" "$(js_published)")
  # The database's own clock: first and last completed batch, after launch.
  v=$(sql "SELECT round((extract(epoch FROM min(processed_at)) - $(us_to_s "$t0")) * 1000) || ' ' ||
                  round((extract(epoch FROM max(processed_at)) - $(us_to_s "$t0")) * 1000)
           FROM event.processing_results")
  SVC_FIRST[$key]=${v%% *}
  SVC_SPAN[$key]=${v##* }
  # Every event processed once: status, one result row each, counters, outbox.
  v=$(sql "SELECT (SELECT count(*) FROM event.processing_queue),
                  (SELECT count(*) FROM event.events),
                  (SELECT count(*) FROM event.events WHERE status = 'processed'),
                  (SELECT count(*) FROM event.events WHERE status = 'processed'
                     AND (processors IS DISTINCT FROM ARRAY['noop']::text[] OR processed_at IS NULL)),
                  (SELECT count(*) FROM event.processing_results),
                  (SELECT count(DISTINCT event_id) FROM event.processing_results),
                  (SELECT count(*) FROM event.processing_results
                     WHERE status <> 'success' OR processor_name <> 'noop'),
                  (SELECT count(*) FROM event.events e WHERE NOT EXISTS
                     (SELECT 1 FROM event.processing_results p WHERE p.event_id = e.event_id)),
                  (SELECT count(*) FROM (SELECT 1 FROM event.processing_results
                     GROUP BY event_id HAVING count(*) > 1) d),
                  (SELECT coalesce(sum(n) FILTER (WHERE status = 'pending'), 0)
                     FROM event.event_counters),
                  (SELECT coalesce(sum(n) FILTER (WHERE status = 'processed'), 0)
                     FROM event.event_counters),
                  (SELECT count(*) FROM event.outbox),
                  (SELECT error_count FROM event.event_processors WHERE processor_name = 'noop')")
  local q ev proc badproc res dist badres missing dups cpend cproc outbox perr
  IFS='|' read -r q ev proc badproc res dist badres missing dups cpend cproc outbox perr <<<"$v"
  SVC_OUTBOX[$key]=$outbox
  SVC_WARN_STOP[$key]=$(($(grep -c . "$svclog" || true) - SVC_WARN[$key]))
  head -n "${SVC_WARN[$key]}" "$svclog" >>"$OUT/service_draining.log"
  tail -n +"$((SVC_WARN[$key] + 1))" "$svclog" >>"$OUT/service_shutdown.log"
  CHECKS[svc.$key]="processed $proc/$ev, results $res ($dist events, $dups with >1, $missing without), counters pending/processed $cpend/$cproc, outbox spill $outbox, log lines while draining ${SVC_WARN[$key]} (+${SVC_WARN_STOP[$key]} at shutdown)"
  [ "$q" = 0 ] || fail "$label: $q events left in the queue"
  [ "$ev" = "$N" ] || fail "$label: $ev events in the table, not $N"
  [ "$proc" = "$N" ] || fail "$label: only $proc of $N events ended processed: $(sql "SELECT string_agg(status || ' ' || n, ', ') FROM (SELECT status, count(*) n FROM event.events GROUP BY 1) s")"
  [ "$badproc" = 0 ] || fail "$label: $badproc processed events without processors = {noop} or processed_at"
  [ "$res" = "$N" ] && [ "$dist" = "$N" ] || fail "$label: $res processing_results rows for $dist events (expected $N for $N)"
  [ "$badres" = 0 ] || fail "$label: $badres results not noop/success"
  [ "$missing" = 0 ] || fail "$label: $missing events without a processing_results row"
  [ "$dups" = 0 ] || fail "$label: $dups events with more than one processing_results row"
  [ "$cpend" = 0 ] && [ "$cproc" = "$N" ] || fail "$label: status counters say pending $cpend, processed $cproc"
  [ "$perr" = 0 ] || fail "$label: the noop processor's error_count is $perr"
  [ "${SVC_PUB[$key]}" = "$N" ] || fail "$label: ${SVC_PUB[$key]} messages published on event-stream, expected $N event.processed.success"
  log "  $(fmt "${SVC_EPS[$key]}") events/s ($(fmt "$secs" 2)s; first batch completed at +${SVC_FIRST[$key]} ms, last at +${SVC_SPAN[$key]} ms); busy $CPU_BUSY%; ${CHECKS[svc.$key]}; published ${SVC_PUB[$key]}"
}

# run_pgbench KIND W R: one measured pgbench drain (KIND raw or full) by W
# clients of the same fresh queue.
run_pgbench() {
  local kind=$1 w=$2 r=$3 key="$2.$3" t0 c0 c1 secs tx v out pid rc=0 failed
  local label="pgbench $kind drain, $w client(s), round $r"
  out=$OUT/pgb_${kind}_w${w}_r$r.txt
  log "$label: preparing $N queued events"
  prepare_db "$w"
  # Enough transactions for every client to find the queue empty; the
  # surplus ones find nothing and cost a few ms.
  tx=$(((N + CLAIM * w - 1) / (CLAIM * w)))
  tx=$((tx + tx / 4 + 10))
  local cmd=(pgbench -n -h 127.0.0.1 -p "$PG_PORT" -U postgres -c "$w" -j "$w" -t "$tx" -M prepared
    -D "claim=$CLAIM" -f "bench/pgbench/drain_$kind.sql" "$DB")
  record_cmd "$(printf '%s ' "${cmd[@]}" | sed -E 's/ -t [0-9]+ / -t <enough> /; s/ $//')"
  poll_open
  c0=$(cpu_snap)
  log "$label: timing until event.processing_queue is empty"
  now_us
  t0=$NOW_US
  "${cmd[@]}" >"$out" 2>&1 &
  CHILD_PID=$!
  pid=$CHILD_PID
  DRAIN_DEAD=0
  drain_wait "$label" "$pid" "$t0" || true
  wait "$pid" || rc=$?
  CHILD_PID=""
  poll_close
  c1=$(cpu_snap)
  [ "$rc" = 0 ] || die "$label: pgbench failed (exit $rc): $(tail -n 8 "$out")"
  [ "$DRAIN_DEAD" = 0 ] || die "$label: pgbench ended before the queue was empty: $(tail -n 8 "$out")"
  secs=$(us_to_s $((T_END_US - t0)))
  failed=$(pgb_failed "$out")
  cpu_row "pgbench $kind, W=$w, r$r" "$c0" "$c1" "$N"
  BUSY[$kind.$key]="$CPU_BUSY/$CPU_STEAL"
  if [ "$kind" = raw ]; then
    RAW_EPS[$key]=$(calc "$N / $secs")
    v=$(sql "SELECT count(*) FROM event.processing_queue")
    CHECKS[raw.$key]="queue left $v, failed transactions ${failed:-?}"
    [ "$v" = 0 ] || fail "$label: $v rows left in the queue"
    log "  $(fmt "${RAW_EPS[$key]}") rows/s ($(fmt "$secs" 2)s); busy $CPU_BUSY%; ${CHECKS[raw.$key]}"
  else
    FULL_EPS[$key]=$(calc "$N / $secs")
    v=$(sql "SELECT (SELECT count(*) FROM event.processing_queue) || '|' ||
                    (SELECT count(*) FROM event.events WHERE status = 'processed') || '|' ||
                    (SELECT count(*) FROM event.processing_results) || '|' ||
                    (SELECT count(DISTINCT event_id) FROM event.processing_results) || '|' ||
                    coalesce((SELECT round((extract(epoch FROM max(processed_at)) - $(us_to_s "$t0")) * 1000)
                              FROM event.processing_results)::text, '?')")
    local q proc res dist last
    IFS='|' read -r q proc res dist last <<<"$v"
    FULL_SPAN[$key]=$last
    CHECKS[full.$key]="queue left $q, processed $proc, results $res ($dist events), failed transactions ${failed:-?}"
    [ "$q" = 0 ] && [ "$proc" = "$N" ] && [ "$res" = "$N" ] && [ "$dist" = "$N" ] ||
      fail "$label: ${CHECKS[full.$key]}"
    log "  $(fmt "${FULL_EPS[$key]}") rows/s ($(fmt "$secs" 2)s; last transaction began at +$last ms); busy $CPU_BUSY%; ${CHECKS[full.$key]}"
  fi
  [ "${failed:-0}" = 0 ] || fail "$label: $failed failed pgbench transactions"
}

# --- the measurements ------------------------------------------------------------

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
T_START=$(date +%s)
for r in $(seq 1 "$ROUNDS"); do
  for w in $WORKERS; do
    # Odd rounds measure the service first, even rounds the baselines first.
    if [ $((r % 2)) = 1 ]; then
      run_service "$w" "$r"
      run_pgbench raw "$w" "$r"
      run_pgbench full "$w" "$r"
    else
      run_pgbench raw "$w" "$r"
      run_pgbench full "$w" "$r"
      run_service "$w" "$r"
    fi
  done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$(($(date +%s) - T_START))
PG_ERRORS=$(pg_log_errors)
touch "$OUT/service_draining.log" "$OUT/service_shutdown.log"
SVC_WARNINGS=$(grep -c . "$OUT/service_draining.log" || true)
SVC_WARNINGS_STOP=$(grep -c . "$OUT/service_shutdown.log" || true)

# --- report ------------------------------------------------------------------------

mean_of() { # mean_of ARRAYNAME W: mean over the rounds
  local -n arr=$1
  local vals=() r
  for r in $(seq 1 "$ROUNDS"); do vals+=("${arr[$2.$r]}"); done
  mean "${vals[@]}"
}
per_round() { # per_round ARRAYNAME W: "a b" figures of each round
  local -n arr=$1
  local s="" r
  for r in $(seq 1 "$ROUNDS"); do s+="$(fmt "${arr[$2.$r]}") "; done
  echo "${s% }"
}

{
  echo
  echo "===================================================================================================================="
  echo " event_service processing benchmark   $(date -u +%Y-%m-%dT%H:%M:%SZ)   $SVC_VERSION, source $GIT_DESC"
  echo " machine: $(nproc) cores, load $LOAD_BEFORE -> $LOAD_AFTER (service, pgbench, PostgreSQL, NATS share them); ${ELAPSED}s"
  echo " PostgreSQL $PG_VERSION_STR: $PG_SETTINGS"
  echo " queue: $N events queued by one INSERT ... SELECT, ANALYZE, CHECKPOINT, fresh database for every drain"
  echo " service: 1 API worker, W processor workers, processing.batch_size $BATCH, one noop processor, logging warn;"
  if [ "$PUBLISH_PRELOAD" = 1 ]; then
    echo "          the event.stored publisher also published the $N preloaded events during the measurement"
  else
    echo "          the event.stored publisher's checkpoint starts after the preload (it publishes none of it)"
  fi
  echo " pgbench: W clients, $CLAIM rows a transaction (FOR UPDATE SKIP LOCKED), -M prepared"
  echo " every figure: $N / (time from starting the service or pgbench to the first poll, every ${POLL_MS} ms, that finds"
  echo " event.processing_queue empty); mean of $ROUNDS round(s)"
  echo "===================================================================================================================="
  printf '%3s %12s %12s %8s %12s %8s %14s %16s %10s\n' "W" "service" "raw drain" "svc/raw" "fuller drain" \
    "svc/full" "graphile-worker" "target: >" "target:"
  printf '%3s %12s %12s %8s %12s %8s %14s %16s %10s\n' "" "events/s" "rows/s" "" "rows/s" "" \
    "0.18 (quoted)" "graphile" "svc/raw>=0.5"
  for w in $WORKERS; do
    s=$(mean_of SVC_EPS "$w"); raw=$(mean_of RAW_EPS "$w"); full=$(mean_of FULL_EPS "$w")
    rr=$(calc "$s / $raw"); rf=$(calc "$s / $full")
    g=${GRAPHILE[$w]:-}
    if [ -n "$g" ]; then gcol="$g"; gt="$(pass "$s" ">" "$g") ($(fmt "$(calc "$s / $g")" 2)x)"; else gcol="-"; gt="-"; fi
    printf '%3s %12s %12s %8s %12s %8s %14s %16s %10s\n' "$w" "$(fmt "$s")" "$(fmt "$raw")" "$(fmt "$rr" 2)x" \
      "$(fmt "$full")" "$(fmt "$rf" 2)x" "$gcol" "$gt" "$(pass "$rr" ">=" 0.5)"
  done
  echo " graphile-worker figures are those quoted in issue 3 (20k/s in one process, 31k/s in two, no-op jobs, batching);"
  echo " they were not measured here. The issue quotes 37-54k/s for the raw pgbench drain on that machine."
  if [ "$ROUNDS" -gt 1 ]; then
    echo "--------------------------------------------------------------------------------------------------------------------"
    echo " per round (service / raw / fuller):"
    for w in $WORKERS; do
      echo "   W=$w: $(per_round SVC_EPS "$w") / $(per_round RAW_EPS "$w") / $(per_round FULL_EPS "$w")"
    done
  fi
  echo "--------------------------------------------------------------------------------------------------------------------"
  echo " each run: busy/steal in % of the machine; service: first and last completed batch after launch (database clock)"
  for r in $(seq 1 "$ROUNDS"); do
    for w in $WORKERS; do
      k=$w.$r
      echo "   W=$w r$r service $(fmt "${SVC_EPS[$k]}")/s, busy/steal ${BUSY[svc.$k]}%, batches completed +${SVC_FIRST[$k]}..+${SVC_SPAN[$k]} ms, event.processed.success published ${SVC_PUB[$k]}"
      echo "            ${CHECKS[svc.$k]}"
      echo "          raw     $(fmt "${RAW_EPS[$k]}")/s, busy/steal ${BUSY[raw.$k]}%, ${CHECKS[raw.$k]}"
      echo "          fuller  $(fmt "${FULL_EPS[$k]}")/s, busy/steal ${BUSY[full.$k]}%, last transaction began +${FULL_SPAN[$k]} ms, ${CHECKS[full.$k]}"
    done
  done
  echo "--------------------------------------------------------------------------------------------------------------------"
  echo " CPU per event (us) by process group over each drain; busy and steal in % of the whole machine:"
  cpu_header service postgres nats client other "all"
  printf '%s\n' "${CPU_ROWS[@]}"
  echo "--------------------------------------------------------------------------------------------------------------------"
  echo " checks:"
  if [ ${#FAILURES[@]} -eq 0 ]; then
    echo "   all passed: every service run left the queue empty, every event processed with exactly one noop/success"
    echo "   result row, the status counters moved pending -> processed, and $N event.processed.success were published;"
    echo "   every pgbench drain emptied the queue without a failed transaction"
  else
    printf '   FAILED: %s\n' "${FAILURES[@]}"
  fi
  echo "   service log lines (warn and above), all runs: $SVC_WARNINGS while draining, $SVC_WARNINGS_STOP during the shutdowns"
  echo "   after each drain; PostgreSQL log ERROR/FATAL/PANIC lines: $PG_ERRORS"
  echo "--------------------------------------------------------------------------------------------------------------------"
  echo " commands (PostgreSQL 127.0.0.1:$PG_PORT db $DB):"
  printf '   %s\n' "${COMMANDS[@]}"
  echo "===================================================================================================================="
} | tee "$OUT/report.txt"

if [ "$SVC_WARNINGS" -gt 0 ]; then
  echo " service log while draining (warn and above), most frequent messages:"
  summarize_log "$OUT/service_draining.log"
fi
if [ "$SVC_WARNINGS_STOP" -gt 0 ]; then
  echo " service log during the shutdowns (warn and above), most frequent messages:"
  summarize_log "$OUT/service_shutdown.log"
fi
if [ "$PG_ERRORS" -gt 0 ]; then
  pg_log_errors_top
fi
[ ${#FAILURES[@]} -eq 0 ] || exit 1
