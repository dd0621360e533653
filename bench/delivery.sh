#!/usr/bin/env bash
# bench/delivery.sh - the webhook delivery benchmark of event_service, with
# same-run ceilings of the receiver and of the HTTP client it is judged
# against. One command:
#
#   bench/delivery.sh
#
# It builds a Release binary, starts its own PostgreSQL (fsync on, default
# durability) and nats-server under a temporary directory on free ports, runs
# the service against them (2 API workers, PROCESSORS processor workers,
# delivery.allow_private on, logging warn), compiles the local receiver
# (bench/receiver/receiver.c) and measures (see bench/README.md):
#   1. throughput: SUBS subscriptions to the benchmark's event type, all
#      pointing at the receiver; EVENTS events posted with POST /batch (100 a
#      request); timed from the first POST to the arrival of the last of the
#      EVENTS x SUBS deliveries: deliveries/s. ROUNDS rounds;
#   2. ceilings, same run, same body, same concurrency: the receiver alone
#      (wrk), and libcurl's multi interface set up as the service's sender,
#      with no database (bench/receiver/blast.c);
#   3. latency: LAT_SUBS subscription(s) to another event type; POST /create
#      paced at RATE events/s for LAT_DURATION s (wrk, bench/delivery_create.lua,
#      the client's wall clock in data.sent_at_us); the receiver takes arrival
#      minus sent_at_us for each delivery: p50/p90/p99/max, split into stages
#      with the database's timestamps, and deliveries arrived vs events made.
# The receiver counts distinct webhook-id headers, so duplicates and missing
# deliveries show. CPU time per delivery is attributed to the service,
# PostgreSQL, NATS, the receiver, the client and everything else. It prints a
# table at the end, and stops everything it started on exit, including when
# interrupted.
#
# Knobs (environment): PROCESSORS (processor workers, 1), SUBS (100), EVENTS
# (2000), ROUNDS (throughput rounds, 1), DELIVERY_CONCURRENCY (the service's
# delivery.concurrency, 256), CEIL_DURATION (s, 10), RATE (events/s, 1000),
# LAT_DURATION (s, 20), LAT_WARMUP (s, 3), LAT_SUBS (1), LAT_CONNS (16),
# THREADS (wrk threads, 2), DRAIN_TIMEOUT (s, 600), STALL_TIMEOUT (s, 60),
# PG_SHARED_BUFFERS (512MB), LOG_DIR (copy the logs, receiver records and raw
# outputs there before cleaning up), SKIP_BUILD=1 (use the existing
# build/bench/event-service).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source-path=SCRIPTDIR/.. source=bench/lib.sh
. bench/lib.sh

PROCESSORS=${PROCESSORS:-1}
PG_STATEMENTS=${PG_STATEMENTS:-0} # 1: pg_stat_statements on; the latency phase's statements in lat_statements.txt
SUBS=${SUBS:-100}
EVENTS=${EVENTS:-2000}
ROUNDS=${ROUNDS:-1}
DELIVERY_CONCURRENCY=${DELIVERY_CONCURRENCY:-256}
CEIL_DURATION=${CEIL_DURATION:-10}
RATE=${RATE:-1000}
LAT_DURATION=${LAT_DURATION:-20}
LAT_WARMUP=${LAT_WARMUP:-3}
LAT_SUBS=${LAT_SUBS:-1}
LAT_CONNS=${LAT_CONNS:-16}
THREADS=${THREADS:-2}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-600}
STALL_TIMEOUT=${STALL_TIMEOUT:-60}
PG_SHARED_BUFFERS=${PG_SHARED_BUFFERS:-512MB}
LOG_DIR=${LOG_DIR:-}
SKIP_BUILD=${SKIP_BUILD:-0}
DB=event_delivery
TPUT_TYPE=bench.delivery.throughput
LAT_TYPE=bench.delivery.latency
BATCH_EVENTS=100
# The sender's connections to one host (CURLMOPT_MAX_HOST_CONNECTIONS in
# processor-worker/delivery.c): every subscription here points at one
# host:port, so this, not delivery.concurrency, bounds the requests on the wire.
HOST_CONNS=64
# Targets of issue 4, and the figure it quotes for Convoy (not measured here).
TARGET_DPS=5000
TARGET_P50=10
TARGET_P99=50

require_positive PROCESSORS SUBS EVENTS ROUNDS DELIVERY_CONCURRENCY CEIL_DURATION RATE LAT_DURATION LAT_SUBS \
  LAT_CONNS THREADS DRAIN_TIMEOUT STALL_TIMEOUT
[[ $LAT_WARMUP =~ ^[0-9]+$ ]] || die "LAT_WARMUP must be a non-negative integer"
require_tools cmake cc pkg-config wrk psql nats-server curl ss awk sort

# --- cleanup -----------------------------------------------------------------

# Besides what bench/lib.sh's cleanup stops: the curl-multi drivers of the
# ceiling (BG_PIDS), before the service, and the receivers, after it.
BG_PIDS=()
declare -A RECV_PID RECV_PORT
LOG_DIR_WHAT="logs, receiver records and raw outputs"

stop_receivers() {
  local n
  for n in "${!RECV_PID[@]}"; do
    kill -TERM "${RECV_PID[$n]}" 2>/dev/null || true
    wait "${RECV_PID[$n]}" 2>/dev/null || true
    unset "RECV_PID[$n]"
  done
}
cleanup_hook_pre() {
  local p
  for p in "${BG_PIDS[@]}"; do
    kill -TERM "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
}
cleanup_hook_post() { stop_receivers; }
install_cleanup

# --- helpers -------------------------------------------------------------------

COMMANDS_UNIQUE=1 # a command run again (another round, another phase) is listed once
now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }
ms_since() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b - a) / 1000 }'; } # ms_since T0_US T_US

# The CPU table: service, postgres, nats, receivers, client (wrk, curl, psql,
# the curl-multi driver), other, all.
CPU_LABEL_WIDTH=40
CPU_DECIMALS=1
CPU_WIDTHS="8 8 6 8 7 7 8"
cpu_snap_extra() {
  local n recv=0
  for n in "${!RECV_PID[@]}"; do recv=$((recv + $(proc_ticks "${RECV_PID[$n]}"))); done
  echo "$recv"
}

# --- the receiver ------------------------------------------------------------------

# rstat NAME KEY: a counter of receiver NAME's GET /stats.
rstat() {
  { curl -s -m 5 "http://127.0.0.1:${RECV_PORT[$1]}/stats" || true; } | { grep -o "\"$2\":[0-9]*" || true; } | cut -d: -f2
}
# rstats NAME: "requests distinct duplicates without_id unsigned connections
# max_open last_new_us" of receiver NAME.
rstats() {
  curl -s -m 5 "http://127.0.0.1:${RECV_PORT[$1]}/stats" | awk '{
    n = split("requests distinct duplicates without_id unsigned connections max_open last_new_us", k, " ");
    s = "";
    for (i = 1; i <= n; i++) {
      v = "?";
      if (match($0, "\"" k[i] "\":[0-9]+")) { v = substr($0, RSTART, RLENGTH); sub(/.*:/, "", v) }
      s = s (i > 1 ? " " : "") v
    }
    print s }'
}
# start_receiver NAME: the receiver on a free port; its records go to
# $OUT/recv_NAME.tsv when dumped, the first body it gets to $OUT/sample_NAME.json.
start_receiver() {
  local name=$1 port
  for attempt in 1 2 3; do
    pick_port port
    "$WORK/receiver" -p "$port" -o "$OUT/recv_$name.tsv" -s "$OUT/sample_$name.json" \
      >"$OUT/recv_$name.log" 2>&1 &
    RECV_PID[$name]=$!
    RECV_PORT[$name]=$port
    for _ in $(seq 1 50); do
      grep -q listening "$OUT/recv_$name.log" 2>/dev/null && return 0
      alive "${RECV_PID[$name]}" || break
      sleep 0.05
    done
    log "  receiver $name did not start on $port (attempt $attempt): $(tail -n 1 "$OUT/recv_$name.log")"
    kill "${RECV_PID[$name]}" 2>/dev/null || true
    wait "${RECV_PID[$name]}" 2>/dev/null || true
    unset "RECV_PID[$name]"
  done
  die "the receiver did not start"
}
rdump() { curl -s -m 30 -o /dev/null -w '%{http_code}' "http://127.0.0.1:${RECV_PORT[$1]}/dump" | grep -q 200 ||
  die "receiver $1 did not write its records"; }

# wait_distinct NAME TARGET TIMEOUT STALL PROGRESS_FILE T0_US: waits until
# receiver NAME has seen TARGET distinct webhook-ids; every second appends
# "ms_since_T0 distinct" to PROGRESS_FILE. Gives up after TIMEOUT s, or
# after STALL s without a new one. Sets WAIT_DISTINCT and WAIT_OK (1 when
# reached).
wait_distinct() {
  local name=$1 target=$2 timeout=$3 stall=$4 pfile=$5 t0=$6
  local start last_change d prev=-1 last_sample=0 now s
  start=$(date +%s)
  last_change=$start
  WAIT_OK=0
  while :; do
    d=$(rstat "$name" distinct)
    d=${d:-0}
    now=$(date +%s)
    if [ "$d" != "$prev" ]; then prev=$d; last_change=$now; fi
    if [ "$now" != "$last_sample" ]; then
      last_sample=$now
      echo "$(ms_since "$t0" "$(now_us)") $d" >>"$pfile"
      s=$((now - start))
      [ $((s % 10)) = 0 ] && [ "$s" -gt 0 ] && log "  ${s}s: $d of $target"
    fi
    if [ "$d" -ge "$target" ]; then WAIT_OK=1; break; fi
    [ $((now - start)) -ge "$timeout" ] && { log "  gave up after ${timeout}s: $d of $target"; break; }
    [ $((now - last_change)) -ge "$stall" ] && { log "  no new delivery for ${stall}s: $d of $target"; break; }
    sleep 0.1
  done
  WAIT_DISTINCT=$d
}

# --- build and start -----------------------------------------------------------

build_service
make_workdir es-dlvbench

log "compiling the receiver and the curl-multi driver (bench/receiver/)"
RECV_CC="cc -O2 -Wall -o <tmp>/receiver bench/receiver/receiver.c"
BLAST_CC="cc -O2 -Wall -o <tmp>/blast bench/receiver/blast.c \$(pkg-config --cflags --libs libcurl)"
cc -O2 -Wall -o "$WORK/receiver" bench/receiver/receiver.c || die "the receiver does not compile"
# shellcheck disable=SC2046
cc -O2 -Wall -o "$WORK/blast" bench/receiver/blast.c $(pkg-config --cflags --libs libcurl) ||
  die "bench/receiver/blast.c does not compile"

extra=()
[ "$PG_STATEMENTS" = 1 ] && extra=(shared_preload_libraries=pg_stat_statements pg_stat_statements.track=all)
start_postgres "shared_buffers=$PG_SHARED_BUFFERS" max_wal_size=4GB track_commit_timestamp=on log_lock_waits=on \
  log_autovacuum_min_duration=0 "${extra[@]}"
pg_createdb "$PG_PORT" "$DB"
[ "$PG_STATEMENTS" = 1 ] && sql "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
pg_describe "setting || coalesce(unit, '')" fsync synchronous_commit full_page_writes wal_sync_method \
  shared_buffers max_connections max_wal_size commit_delay track_commit_timestamp log_lock_waits \
  deadlock_timeout log_autovacuum_min_duration
start_nats

CONFIG=$WORK/event_service.yaml
write_config() {
  service_config 2 "$PROCESSORS" 0 <<EOF
delivery:
  concurrency: $DELIVERY_CONCURRENCY
  allow_private: true      # the receiver is on 127.0.0.1
logging:
  level: warn
EOF
}

start_service "2 API workers, $PROCESSORS processor workers"
SVC_URL="http://127.0.0.1:$SVC_PORT"
log "  ready: $(curl -s -m 2 "$SVC_URL/health/ready")"

# svc_post PATH BODY_OR_@FILE OUT: POSTs JSON to the service; prints the status.
svc_post() {
  curl -s -o "$3" -m 30 -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "$2" "$SVC_URL$1" || echo 000
}

# make_subscriptions PREFIX COUNT TYPE RECEIVER: COUNT subscriptions to event
# type TYPE, each with its own path on the receiver and a generated secret.
make_subscriptions() {
  local prefix=$1 count=$2 type=$3 recv=$4 i code
  for i in $(seq 1 "$count"); do
    code=$(svc_post /api/v1/events/subscriptions \
      "{\"subscriber_name\":\"$prefix-$i\",\"event_types\":[\"$type\"],\"callback_url\":\"http://127.0.0.1:${RECV_PORT[$recv]}/$prefix/$i\"}" \
      "$OUT/subscription.json")
    [ "$code" = 201 ] || die "POST /subscriptions answered $code: $(head -c 300 "$OUT/subscription.json")"
    grep -q '"webhook_secret":"whsec_' "$OUT/subscription.json" ||
      die "POST /subscriptions returned no generated webhook_secret: $(head -c 300 "$OUT/subscription.json")"
  done
}

# svc_warnings: the service's log lines so far (warn and above).
svc_warnings() { grep -c . "$WORK/service.log" || true; }

start_receiver tput
start_receiver ceiling
start_receiver lat
log "receivers: throughput 127.0.0.1:${RECV_PORT[tput]}, ceilings ${RECV_PORT[ceiling]}, latency ${RECV_PORT[lat]}"

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
# How busy the machine is with the service idle: other work on a shared
# machine shows here (and in the CPU table's "other" column).
idle0=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)
sleep 2
idle1=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)
BUSY_BEFORE=$(awk -v a="$idle0" -v b="$idle1" 'BEGIN { split(a, x, " "); split(b, y, " ");
  printf "%.0f", (y[2] > x[2]) ? 100 * (y[1] - x[1]) / (y[2] - x[2]) : 0 }')
log "machine busy before the run (service idle, 2 s): $BUSY_BEFORE%"
T_START=$(date +%s)

# --- 1. throughput: SUBS subscriptions, EVENTS events ------------------------------

log "throughput: $SUBS subscriptions to $TPUT_TYPE, each pointing at the receiver"
make_subscriptions tput "$SUBS" "$TPUT_TYPE" tput

# The /batch bodies: BATCH_EVENTS events of the shape create_event.lua posts.
# make_batch FILE N ROUND
make_batch() {
  awk -v n="$2" -v type="$TPUT_TYPE" -v round="$3" -v seed="$RANDOM" 'BEGIN {
    srand(seed);
    printf "{\"events\":[";
    for (i = 1; i <= n; i++)
      printf "%s{\"event_type\":\"%s\",\"event_source\":\"backend\",\"event_category\":\"user_action\",\"user_id\":\"user_%d\",\"session_id\":\"sess_%d\",\"data\":{\"round\":%d,\"seq\":%d,\"amount\":%d,\"currency\":\"EUR\",\"items\":[{\"sku\":\"sku-%d\",\"qty\":2}],\"note\":\"benchmark event\"},\"metadata\":{\"ip_address\":\"10.0.0.%d\",\"user_agent\":\"bench/1.0\"}}",
        (i > 1 ? "," : ""), type, int(rand() * 50000), int(rand() * 20000), round, i,
        int(rand() * 1000), int(rand() * 300), int(rand() * 250);
    printf "]}";
  }' >"$1"
}

# One event first, end to end: SUBS deliveries must arrive. It is shaped as
# the measured ones, so the receiver keeps a delivery body of the measured
# size for the ceilings.
log "warm-up: one $TPUT_TYPE event -> $SUBS deliveries"
make_batch "$WORK/batch_warmup.json" 1 0
code=$(svc_post /api/v1/events/batch "@$WORK/batch_warmup.json" "$OUT/smoke.json")
[ "$code" = 201 ] || die "POST /batch answered $code: $(head -c 300 "$OUT/smoke.json")"
wait_distinct tput "$SUBS" 60 30 "$OUT/warmup_progress.txt" "$(now_us)"
[ "$WAIT_OK" = 1 ] || die "only $WAIT_DISTINCT of $SUBS warm-up deliveries arrived; service log: $(tail -n 5 "$WORK/service.log")"
SAMPLE=$OUT/sample_tput.json
[ -s "$SAMPLE" ] || die "the receiver kept no delivery body"
log "  $SUBS deliveries arrived; a delivery body is $(wc -c <"$SAMPLE") bytes"

NBATCH=$(((EVENTS + BATCH_EVENTS - 1) / BATCH_EVENTS))
declare -a T_AUTOVAC T_DPS T_DPS_ARR T_POST_MS T_FAN_FIRST T_FAN_LAST T_COMMIT_FIRST T_COMMIT_LAST T_ARR_FIRST T_ARR_LAST T_OK T_DUP T_STATUS T_RETRIED T_TIMELINE T_MAXOPEN T_CONNS T_UNSIGNED
for r in $(seq 1 "$ROUNDS"); do
  # The bodies, written before the clock starts.
  curl_args=()
  left=$EVENTS
  for b in $(seq 1 "$NBATCH"); do
    n=$((left < BATCH_EVENTS ? left : BATCH_EVENTS))
    left=$((left - n))
    make_batch "$WORK/batch_$b.json" "$n" "$r"
    [ "$b" -gt 1 ] && curl_args+=(--next)
    curl_args+=(-s -o /dev/null -w '%{http_code}\n' -m 60 -H 'Content-Type: application/json'
      --data-binary "@$WORK/batch_$b.json" "$SVC_URL/api/v1/events/batch")
  done
  record_cmd "curl (one process, keep-alive) -> POST /api/v1/events/batch x $NBATCH, $BATCH_EVENTS events of type $TPUT_TYPE each"
  sql "CHECKPOINT" >/dev/null
  read -r _ base dup0 _ _ _ _ _ <<<"$(rstats tput)"
  expected=$((base + EVENTS * SUBS))
  log "throughput round $r/$ROUNDS: $EVENTS events -> $((EVENTS * SUBS)) deliveries"
  c0=$(cpu_snap)
  t0=$(now_us)
  run_child "$OUT/post_r$r.txt" curl "${curl_args[@]}" || die "posting the batches failed: $(tail -n 3 "$OUT/post_r$r.txt")"
  t_posted=$(now_us)
  bad=$(grep -vc '^201$' "$OUT/post_r$r.txt" || true)
  [ "$bad" = 0 ] || die "POST /batch: $bad answers other than 201: $(sort "$OUT/post_r$r.txt" | uniq -c | tr '\n' ' ')"
  T_POST_MS[r]=$(ms_since "$t0" "$t_posted")
  log "  posted in ${T_POST_MS[r]} ms; waiting for the receiver"
  wait_distinct tput "$expected" "$DRAIN_TIMEOUT" "$STALL_TIMEOUT" "$OUT/tput_progress_r$r.txt" "$t0"
  c1=$(cpu_snap)
  read -r _ got dup1 _ unsigned conns maxopen last_new <<<"$(rstats tput)"
  got_round=$((got - base))
  T_OK[r]="$got_round / $((EVENTS * SUBS))"
  T_DUP[r]=$((dup1 - dup0))
  T_UNSIGNED[r]=$unsigned
  T_CONNS[r]=$conns
  T_MAXOPEN[r]=$maxopen
  T_ARR_LAST[r]=$(ms_since "$t0" "$last_new")
  T_DPS[r]=$(calc "$got_round / (($last_new - $t0) / 1000000)")
  cpu_row "throughput round $r (per delivery)" "$c0" "$c1" "$got_round"
  rdump tput
  T_ARR_FIRST[r]=$(awk -F'\t' -v t0="$t0" '$1 >= t0 { if (m == "" || $1 < m) m = $1 } END { if (m == "") print "?"; else printf "%.0f", (m - t0) / 1000 }' "$OUT/recv_tput.tsv")
  T_DPS_ARR[r]=$(calc "$got_round / (($last_new - $t0) / 1000000 - ${T_ARR_FIRST[r]} / 1000)")
  # What the database says about this round's deliveries (a flush of the
  # last outcomes may lag the arrivals by a few ms: wait until none is open).
  for _ in $(seq 1 50); do
    open=$(sql "SELECT count(*) FROM event.deliveries d JOIN event.event_subscriptions s USING (subscription_id)
                WHERE s.subscriber_name LIKE 'tput-%' AND d.status IN ('pending', 'failed')")
    [ "$open" = 0 ] && break
    sleep 0.2
  done
  IFS='|' read -r 'T_FAN_FIRST[r]' 'T_FAN_LAST[r]' 'T_STATUS[r]' 'T_RETRIED[r]' 'T_COMMIT_FIRST[r]' 'T_COMMIT_LAST[r]' <<<"$(sql "
    WITH d AS (SELECT d.* FROM event.deliveries d JOIN event.event_subscriptions s USING (subscription_id)
               WHERE s.subscriber_name LIKE 'tput-%' AND d.created_at >= to_timestamp($t0 / 1e6))
    SELECT round((extract(epoch FROM min(created_at)) * 1e6 - $t0) / 1000),
           round((extract(epoch FROM max(created_at)) * 1e6 - $t0) / 1000),
           (SELECT string_agg(status || ' ' || n, ', ' ORDER BY status)
              FROM (SELECT status, count(*) AS n FROM d GROUP BY status) s),
           count(*) FILTER (WHERE attempts > 1),
           (SELECT round((extract(epoch FROM min(c)) * 1e6 - $t0) / 1000) || '|' ||
                   round((extract(epoch FROM max(c)) * 1e6 - $t0) / 1000)
              FROM (SELECT pg_xact_commit_timestamp(e.xmin) AS c FROM event.events e
                    WHERE e.event_type = '$TPUT_TYPE' AND (e.data ->> 'round')::int = $r
                      AND e.created_at >= to_timestamp($t0 / 1e6)) x)
    FROM d")"
  # When autovacuum finished with event.deliveries during the round (ms after
  # the first POST; the server logs it at the end of each run).
  T_AUTOVAC[r]=$({ grep -E "automatic vacuum of table \"$DB\.event\.deliveries\"" "$PG_DIR/postgres.log" || true; } |
    while read -r d t z _; do
      v=$(date -d "$d $t $z" +%s%N 2>/dev/null) || continue
      if [ $((v / 1000)) -ge "$t0" ] && [ $((v / 1000)) -le "$last_new" ]; then
        printf '+%s ' $(((v / 1000 - t0) / 1000))
      fi
    done || true)
  T_AUTOVAC[r]=${T_AUTOVAC[r]:-none}
  # Deliveries per second over the round, in up to 20 intervals.
  T_TIMELINE[r]=$(awk -v base="$base" '{ t[NR] = $1; d[NR] = $2 - base } END {
    if (NR < 2) { print "-"; exit }
    step = int((NR + 19) / 20); s = "";
    for (i = 1 + step; i <= NR; i += step) s = s sprintf("%.0f ", (d[i] - d[i - step]) / ((t[i] - t[i - step]) / 1000));
    print s }' "$OUT/tput_progress_r$r.txt")
  log "  $(fmt "${T_DPS[r]}") deliveries/s; ${T_OK[r]} arrived, ${T_DUP[r]} duplicates; fan-out began +${T_FAN_FIRST[r]}..+${T_FAN_LAST[r]} ms, committed +${T_COMMIT_FIRST[r]}..+${T_COMMIT_LAST[r]} ms, arrivals +${T_ARR_FIRST[r]}..+${T_ARR_LAST[r]} ms; rows: ${T_STATUS[r]}"
done
TPUT_DPS=$(mean "${T_DPS[@]}")
TPUT_DPS_ARR=$(mean "${T_DPS_ARR[@]}")

# --- 2. ceilings: the receiver alone, and the HTTP client as the sender ---------

CEIL_CONNS=$((HOST_CONNS * PROCESSORS))
log "receiver ceiling: wrk, $CEIL_CONNS connections, the delivery body, ${CEIL_DURATION}s"
cmd=(wrk -t"$THREADS" -c"$CEIL_CONNS" -d"${CEIL_DURATION}s" --timeout 10s -s bench/webhook_post.lua
  "http://127.0.0.1:${RECV_PORT[ceiling]}/ceiling" -- body="$SAMPLE")
record_cmd "${cmd[*]/$SAMPLE/<a delivery body>}"
c0=$(cpu_snap)
run_child "$OUT/ceiling_wrk.txt" "${cmd[@]}" || die "wrk failed: $(tail -n 5 "$OUT/ceiling_wrk.txt")"
c1=$(cpu_snap)
grep -q '^RESULT ' "$OUT/ceiling_wrk.txt" || die "wrk printed no RESULT: $(tail -n 5 "$OUT/ceiling_wrk.txt")"
CEIL_WRK=$(kv "$OUT/ceiling_wrk.txt" rps)
CEIL_WRK_BAD=$(($(kv "$OUT/ceiling_wrk.txt" non2xx) + $(kv "$OUT/ceiling_wrk.txt" sock_errors)))
cpu_row "receiver ceiling, wrk (per request)" "$c0" "$c1" "$(kv "$OUT/ceiling_wrk.txt" requests)"
log "  $(fmt "$CEIL_WRK") requests/s"

log "HTTP client ceiling: $PROCESSORS curl-multi driver(s) set up as the sender ($DELIVERY_CONCURRENCY in flight, $HOST_CONNS connections each), ${CEIL_DURATION}s"
record_cmd "$PROCESSORS x <tmp>/blast http://127.0.0.1:${RECV_PORT[ceiling]}/blast <a delivery body> $CEIL_DURATION $DELIVERY_CONCURRENCY $HOST_CONNS"
c0=$(cpu_snap)
BG_PIDS=()
for p in $(seq 1 "$PROCESSORS"); do
  "$WORK/blast" "http://127.0.0.1:${RECV_PORT[ceiling]}/blast" "$SAMPLE" "$CEIL_DURATION" \
    "$DELIVERY_CONCURRENCY" "$HOST_CONNS" "blast$p" >"$OUT/ceiling_blast_$p.txt" 2>&1 &
  BG_PIDS+=($!)
done
blast_rc=0
for p in "${BG_PIDS[@]}"; do wait "$p" || blast_rc=1; done
BG_PIDS=()
c1=$(cpu_snap)
CEIL_BLAST=0
CEIL_BLAST_REQ=0
CEIL_BLAST_ERR=0
for p in $(seq 1 "$PROCESSORS"); do
  f=$OUT/ceiling_blast_$p.txt
  grep -q '^RESULT ' "$f" || die "the curl-multi driver printed no RESULT: $(tail -n 3 "$f")"
  CEIL_BLAST=$(calc "$CEIL_BLAST + $(kv "$f" rps)")
  CEIL_BLAST_REQ=$((CEIL_BLAST_REQ + $(kv "$f" requests)))
  CEIL_BLAST_ERR=$((CEIL_BLAST_ERR + $(kv "$f" errors)))
done
[ "$blast_rc" = 0 ] || log "  the curl-multi driver saw $CEIL_BLAST_ERR failed requests"
cpu_row "HTTP client ceiling, curl multi (per req.)" "$c0" "$c1" "$CEIL_BLAST_REQ"
log "  $(fmt "$CEIL_BLAST") requests/s"

# --- 3. latency at RATE events/s ----------------------------------------------------

log "latency: VACUUM ANALYZE and CHECKPOINT after the throughput phase"
sql "VACUUM ANALYZE event.deliveries" >/dev/null
sql "VACUUM ANALYZE event.delivery_attempts" >/dev/null
sql "VACUUM ANALYZE event.events" >/dev/null
sql "VACUUM ANALYZE event.event_subscriptions" >/dev/null
sql "CHECKPOINT" >/dev/null
log "latency: $LAT_SUBS subscription(s) to $LAT_TYPE"
make_subscriptions lat "$LAT_SUBS" "$LAT_TYPE" lat
code=$(svc_post /api/v1/events/create "{\"event_type\":\"$LAT_TYPE\",\"user_id\":\"user_0\",\"data\":{\"warmup\":true}}" "$OUT/smoke.json")
[ "$code" = 201 ] || die "POST /create answered $code: $(head -c 300 "$OUT/smoke.json")"
wait_distinct lat "$LAT_SUBS" 60 30 "$OUT/lat_warmup_progress.txt" "$(now_us)"
[ "$WAIT_OK" = 1 ] || die "the latency subscription's first delivery did not arrive"

# lat_wrk NAME DURATION: one paced wrk run of POST /create; output in $OUT/NAME.txt.
lat_wrk() {
  local cmd=(wrk -t"$THREADS" -c"$LAT_CONNS" -d"${2}s" --timeout 10s -s bench/delivery_create.lua
    "$SVC_URL/api/v1/events/create" -- type="$LAT_TYPE" rate="$RATE" threads="$THREADS")
  [ "$1" = lat_warmup ] || record_cmd "${cmd[*]}"
  run_child "$OUT/$1.txt" "${cmd[@]}" || die "wrk failed: $(tail -n 5 "$OUT/$1.txt")"
  grep -q '^RESULT ' "$OUT/$1.txt" || die "wrk printed no RESULT: $(tail -n 5 "$OUT/$1.txt")"
}
if [ "$LAT_WARMUP" -gt 0 ]; then
  log "latency: ${LAT_WARMUP}s warm-up at $RATE events/s"
  lat_wrk lat_warmup "$LAT_WARMUP"
  warm=$(sql "SELECT count(*) FROM event.events WHERE event_type = '$LAT_TYPE'")
  wait_distinct lat $((warm * LAT_SUBS)) 120 30 "$OUT/lat_warmup_progress.txt" "$(now_us)"
fi
read -r _ _ dup0 _ _ _ _ _ <<<"$(rstats lat)"
log "latency: POST /create paced at $RATE events/s, $LAT_CONNS connections, ${LAT_DURATION}s"
c0=$(cpu_snap)
[ "$PG_STATEMENTS" = 1 ] && sql "SELECT pg_stat_statements_reset()" >/dev/null
T_MEAS=$(now_us)
lat_wrk lat_run "$LAT_DURATION"
t_wrk_end=$(now_us)
LAT_MADE=$(sql "SELECT count(*) FROM event.events WHERE event_type = '$LAT_TYPE' AND (data ->> 'sent_at_us')::bigint >= $T_MEAS")
before=$(sql "SELECT count(*) FROM event.events WHERE event_type = '$LAT_TYPE' AND NOT coalesce((data ->> 'sent_at_us')::bigint >= $T_MEAS, false)")
wait_distinct lat $(((before + LAT_MADE) * LAT_SUBS)) 120 30 "$OUT/lat_progress.txt" "$t_wrk_end"
LAT_DRAIN_MS=$(ms_since "$t_wrk_end" "$(now_us)")
c1=$(cpu_snap)
read -r _ _ dup1 _ LAT_UNSIGNED LAT_CONNS_ACC LAT_MAXOPEN _ <<<"$(rstats lat)"
LAT_DUP=$((dup1 - dup0))
f=$OUT/lat_run.txt
LAT_RPS=$(kv "$f" rps)
LAT_DEV=$(calc "($LAT_RPS / $RATE - 1) * 100")
LAT_OK=$(awk -v d="$LAT_DEV" 'BEGIN { print (d < -5 || d > 5) ? "OFF TARGET" : "on target" }')
LAT_CREATE_P50=$(kv "$f" p50_ms)
LAT_CREATE_P99=$(kv "$f" p99_ms)
LAT_NON2XX=$(($(kv "$f" non2xx) + $(kv "$f" sock_errors)))
cpu_row "latency, $RATE events/s (per delivery)" "$c0" "$c1" "$((LAT_MADE * LAT_SUBS))"
if [ "$PG_STATEMENTS" = 1 ]; then # the statements of the latency phase, dearest first
  psqlq -c "SELECT calls, round(total_exec_time)::bigint AS total_ms, round(mean_exec_time::numeric, 3) AS mean_ms,
                   rows, left(regexp_replace(query, '\\s+', ' ', 'g'), 110) AS query
            FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 25" >"$OUT/lat_statements.txt" 2>&1
fi

# The receiver's records, joined with the database's timestamps: the event's
# created_at (set by the API worker when it takes the request), the delivery
# row's created_at (the start of the transaction that completed the event's
# processing and fanned it out), and that transaction's commit time (the
# event row's xmin: complete_events updated it, and nothing writes it after).
rdump lat
psqlq -c "SET client_min_messages = warning" -c "DROP TABLE IF EXISTS public.bench_arrivals" \
  -c "CREATE TABLE public.bench_arrivals (arrival_us bigint, webhook_id text, event_id text, sent_us bigint)" \
  -c "\\copy public.bench_arrivals FROM '$OUT/recv_lat.tsv'" >/dev/null
LAT_Q="WITH a AS (
    SELECT DISTINCT ON (webhook_id) * FROM public.bench_arrivals
    WHERE sent_us >= $T_MEAS ORDER BY webhook_id, arrival_us),
  j AS (
    SELECT (a.arrival_us - a.sent_us) / 1000.0 AS e2e,
           (extract(epoch FROM e.created_at) * 1e6 - a.sent_us) / 1000.0 AS accept,
           (extract(epoch FROM d.created_at) - extract(epoch FROM e.created_at)) * 1000.0 AS process,
           (extract(epoch FROM pg_xact_commit_timestamp(e.xmin)) - extract(epoch FROM d.created_at)) * 1000.0 AS fanout,
           (a.arrival_us - extract(epoch FROM pg_xact_commit_timestamp(e.xmin)) * 1e6) / 1000.0 AS send
    FROM a LEFT JOIN event.deliveries d ON d.delivery_id = a.webhook_id
           LEFT JOIN event.events e ON e.event_id = a.event_id)"
pcts() { # pcts COLUMN: p50|p90|p99|max of that column, ms
  sql "$LAT_Q SELECT concat_ws('|', round(percentile_disc(0.5) WITHIN GROUP (ORDER BY $1)::numeric, 2),
         round(percentile_disc(0.9) WITHIN GROUP (ORDER BY $1)::numeric, 2),
         round(percentile_disc(0.99) WITHIN GROUP (ORDER BY $1)::numeric, 2),
         round(max($1)::numeric, 2)) FROM j"
}
IFS='|' read -r E2E_P50 E2E_P90 E2E_P99 E2E_MAX <<<"$(pcts e2e)"
IFS='|' read -r ACC_P50 ACC_P90 ACC_P99 ACC_MAX <<<"$(pcts accept)"
IFS='|' read -r PRC_P50 PRC_P90 PRC_P99 PRC_MAX <<<"$(pcts process)"
IFS='|' read -r FAN_P50 FAN_P90 FAN_P99 FAN_MAX <<<"$(pcts fanout)"
IFS='|' read -r SND_P50 SND_P90 SND_P99 SND_MAX <<<"$(pcts send)"
IFS='|' read -r LAT_ARRIVED LAT_UNJOINED LAT_OVER50 LAT_OVER1S <<<"$(sql "$LAT_Q
  SELECT concat_ws('|', count(*), count(*) FILTER (WHERE send IS NULL OR process IS NULL),
                   count(*) FILTER (WHERE e2e > $TARGET_P99), count(*) FILTER (WHERE e2e > 1000)) FROM j")"
LAT_STATUS=$(sql "SELECT coalesce(string_agg(status || ' ' || n, ', ' ORDER BY status), 'none') FROM (
  SELECT d.status, count(*) AS n FROM event.deliveries d JOIN event.events e USING (event_id)
  WHERE e.event_type = '$LAT_TYPE' AND (e.data ->> 'sent_at_us')::bigint >= $T_MEAS GROUP BY d.status) s")
LAT_EXPECTED=$((LAT_MADE * LAT_SUBS))
LAT_MISSING=$((LAT_EXPECTED - LAT_ARRIVED))
# The e2e latency per second of the run: p99 of each second, to show spikes.
LAT_PER_SEC=$(sql "$LAT_Q, s AS (SELECT floor((a.sent_us - $T_MEAS) / 1e6)::int AS sec, (a.arrival_us - a.sent_us) / 1000.0 AS e2e
    FROM (SELECT DISTINCT ON (webhook_id) * FROM public.bench_arrivals WHERE sent_us >= $T_MEAS ORDER BY webhook_id, arrival_us) a)
  SELECT string_agg(round(p)::text, ' ' ORDER BY sec) FROM (
    SELECT sec, percentile_disc(0.99) WITHIN GROUP (ORDER BY e2e) AS p FROM s GROUP BY sec) x")
log "  achieved $(fmt "$LAT_RPS") events/s; end to end p50 $E2E_P50 ms, p90 $E2E_P90 ms, p99 $E2E_P99 ms, max $E2E_MAX ms; $LAT_ARRIVED of $LAT_EXPECTED deliveries arrived, $LAT_DUP duplicates"

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$(($(date +%s) - T_START))
cp "$WORK/service.log" "$OUT/service.log"
SVC_WARNINGS=$(svc_warnings)
SVC_ALIVE=$(alive "$SVC_PID" && echo yes || echo "NO (exited)")
PG_ERRORS=$(pg_log_errors)
PG_DEADLOCKS=$(grep -c 'deadlock detected' "$PG_DIR/postgres.log" || true)
# log_lock_waits: a wait longer than deadlock_timeout (1 s) is logged, and so
# is its end ("acquired ... after N ms").
PG_LOCK_WAITS=$(grep -c 'still waiting for' "$PG_DIR/postgres.log" || true)
PG_LOCK_MAX=$({ grep -o 'acquired [A-Za-z]* on [a-z ]*[0-9]* after [0-9.]* ms' "$PG_DIR/postgres.log" || true; } |
  awk '{ if ($(NF-1) > m) m = $(NF-1) } END { printf "%.0f", m }')
ATTEMPTS_TOTAL=$(sql "SELECT count(*) FROM event.delivery_attempts")
ATTEMPT_ERRORS=$(sql "SELECT count(*) FROM event.delivery_attempts WHERE error IS NOT NULL OR status_code IS NULL OR status_code >= 300")
DELIVERY_ROWS=$(sql "SELECT coalesce(string_agg(status || ' ' || n, ', ' ORDER BY status), 'none') FROM (SELECT status, count(*) AS n FROM event.deliveries GROUP BY status) s")
EVENT_ROWS=$(sql "SELECT coalesce(string_agg(status || ' ' || n, ', ' ORDER BY status), 'none') FROM (SELECT status, count(*) AS n FROM event.events GROUP BY status) s")

# --- report ------------------------------------------------------------------------

LINE="======================================================================================================================"
SEP="----------------------------------------------------------------------------------------------------------------------"
{
  echo
  echo "$LINE"
  echo " event_service delivery benchmark   $(date -u +%Y-%m-%dT%H:%M:%SZ)   $SVC_VERSION, source $GIT_DESC"
  echo " machine: $(nproc) cores, load $LOAD_BEFORE -> $LOAD_AFTER, $BUSY_BEFORE% busy before the run with the service idle"
  echo "          (service, PostgreSQL, NATS, receiver, client and any other work share the cores); ${ELAPSED}s"
  echo " PostgreSQL $PG_VERSION_STR: $PG_SETTINGS"
  echo " service: 2 API workers, $PROCESSORS processor worker(s) (one sender thread each: delivery.concurrency $DELIVERY_CONCURRENCY,"
  echo "          delivery.batch_size 200, at most $HOST_CONNS connections to one host), processing.batch_size 500, no processor"
  echo "          registered (processing = fan-out), delivery.allow_private true, logging warn; every subscription signs"
  echo " receiver: bench/receiver/receiver.c, one thread, epoll, 200 with an empty body, keep-alive; counts distinct webhook-ids"
  echo "$LINE"
  printf '%-58s %14s %12s   %s\n' "throughput: $SUBS subscriptions, $EVENTS events (/batch)" "" "" "target"
  printf '%-58s %14s %12s   %s\n' "  deliveries/s, first POST -> last delivery arrived" "$(fmt "$TPUT_DPS")" "" \
    ">= $TARGET_DPS: $(pass "$TPUT_DPS" ">=" "$TARGET_DPS")"
  printf '%-58s %14s\n' "  deliveries/s, first -> last delivery arrived" "$(fmt "$TPUT_DPS_ARR")"
  printf '%-58s %14s\n' "  events/s fully delivered (x $SUBS subscriptions each)" "$(fmt "$(calc "$TPUT_DPS / $SUBS")" 1)"
  printf '%-58s %14s %12s\n' "  ceiling: receiver alone (wrk, $CEIL_CONNS conns, same body), req/s" "$(fmt "$CEIL_WRK")" \
    "svc $(fmt "$(calc "$TPUT_DPS / $CEIL_WRK")" 2)x"
  printf '%-58s %14s %12s\n' "  ceiling: curl multi as the sender, no database, req/s" "$(fmt "$CEIL_BLAST")" \
    "svc $(fmt "$(calc "$TPUT_DPS / $CEIL_BLAST")" 2)x"
  for r in $(seq 1 "$ROUNDS"); do
    echo "  round $r: $(fmt "${T_DPS[r]}") deliveries/s ($(fmt "${T_DPS_ARR[r]}") between the first and the last arrival); arrived (distinct) ${T_OK[r]}, duplicates ${T_DUP[r]}"
    echo "    ms after the first POST: all posted +${T_POST_MS[r]}, fan-out transactions began +${T_FAN_FIRST[r]}..+${T_FAN_LAST[r]}"
    echo "    and committed +${T_COMMIT_FIRST[r]}..+${T_COMMIT_LAST[r]},"
    echo "    arrivals +${T_ARR_FIRST[r]}..+${T_ARR_LAST[r]}; rows now: ${T_STATUS[r]}; retried: ${T_RETRIED[r]}"
    echo "    deliveries/s over the round: ${T_TIMELINE[r]}"
    echo "    autovacuum of event.deliveries finished at (ms after the first POST): ${T_AUTOVAC[r]% }"
  done
  echo "  connections to the receiver: ${T_CONNS[$ROUNDS]} accepted, at most ${T_MAXOPEN[$ROUNDS]} open at once; requests without a"
  echo "  v1 signature: ${T_UNSIGNED[$ROUNDS]}; ceiling runs: wrk non-2xx/socket errors $CEIL_WRK_BAD, curl multi errors $CEIL_BLAST_ERR"
  echo "$SEP"
  printf '%-58s %14s %12s   %s\n' "latency: $LAT_SUBS subscription(s), POST /create paced (wrk)" "target" "achieved" ""
  printf '%-58s %14s %12s   %s\n' "  rate (events/s), $LAT_CONNS conns, ${LAT_DURATION}s" "$RATE" "$(fmt "$LAT_RPS")" \
    "$(fmt "$LAT_DEV" 1)% $LAT_OK"
  printf '%-58s %14s %12s   %s\n' "  end to end, sent -> arrived: p50 (ms)" "< $TARGET_P50" "$(fmt "$E2E_P50" 1)" "$(pass "$E2E_P50" "<" "$TARGET_P50")"
  printf '%-58s %14s %12s\n' "                                p90 (ms)" "" "$(fmt "$E2E_P90" 1)"
  printf '%-58s %14s %12s   %s\n' "                                p99 (ms)" "< $TARGET_P99" "$(fmt "$E2E_P99" 1)" "$(pass "$E2E_P99" "<" "$TARGET_P99")"
  printf '%-58s %14s %12s\n' "                                max (ms)" "" "$(fmt "$E2E_MAX" 1)"
  printf '%-58s %14s %12s\n' "  Convoy, quoted in issue 4 (not measured here)" "" "p95 120 ms at 200 events/s"
  echo "  stages, p50 / p90 / p99 / max (ms):"
  printf '%-58s %s\n' "    sent -> event accepted (API worker's created_at)" "$ACC_P50 / $ACC_P90 / $ACC_P99 / $ACC_MAX"
  printf '%-58s %s\n' "    accepted -> fan-out transaction began" "$PRC_P50 / $PRC_P90 / $PRC_P99 / $PRC_MAX"
  printf '%-58s %s\n' "    fan-out transaction began -> committed" "$FAN_P50 / $FAN_P90 / $FAN_P99 / $FAN_MAX"
  printf '%-58s %s\n' "    fan-out committed -> arrived at the receiver" "$SND_P50 / $SND_P90 / $SND_P99 / $SND_MAX"
  printf '%-58s %s\n' "    POST /create answered (wrk), p50 / p99" "$LAT_CREATE_P50 / $LAT_CREATE_P99"
  echo "  p99 of each second of the run (ms): $LAT_PER_SEC"
  echo "  events created $LAT_MADE -> deliveries expected $LAT_EXPECTED, arrived (distinct) $LAT_ARRIVED, missing $LAT_MISSING,"
  echo "  duplicates $LAT_DUP, slower than $TARGET_P99 ms: $LAT_OVER50, slower than 1 s: $LAT_OVER1S; all in $LAT_DRAIN_MS ms after wrk ended"
  echo "  delivery rows of the run: $LAT_STATUS; non-2xx/socket errors of POST /create: $LAT_NON2XX; unjoined arrivals: $LAT_UNJOINED"
  echo "  connections to the receiver (whole phase): $LAT_CONNS_ACC accepted, at most $LAT_MAXOPEN open at once; without a v1 signature: $LAT_UNSIGNED"
  echo "$SEP"
  echo " CPU per delivery, or per request (us), by process group; busy and steal in % of the whole machine:"
  cpu_header service postgres nats receiver client other "all"
  printf '%s\n' "${CPU_ROWS[@]}"
  echo "$SEP"
  echo " checks:"
  echo "   deliveries: $DELIVERY_ROWS; attempts recorded $ATTEMPTS_TOTAL, failed $ATTEMPT_ERRORS; events: $EVENT_ROWS"
  echo "   service log lines at warn and above: $SVC_WARNINGS; PostgreSQL ERROR/FATAL/PANIC lines: $PG_ERRORS, of which deadlocks: $PG_DEADLOCKS;"
  echo "   lock waits longer than 1 s (log_lock_waits): $PG_LOCK_WAITS, the longest $PG_LOCK_MAX ms;"
  echo "   service alive at the end: $SVC_ALIVE"
  echo "$SEP"
  echo " commands (service 127.0.0.1:$SVC_PORT, receivers 127.0.0.1:${RECV_PORT[tput]} / ${RECV_PORT[ceiling]} / ${RECV_PORT[lat]}):"
  echo "   $RECV_CC"
  echo "   $BLAST_CC"
  echo "   <tmp>/receiver -p PORT -o RECORDS -s SAMPLE   (one per phase)"
  echo "   POST /api/v1/events/subscriptions {\"subscriber_name\":\"tput-N\",\"event_types\":[\"$TPUT_TYPE\"],\"callback_url\":\"http://127.0.0.1:PORT/tput/N\"} x $SUBS"
  echo "   POST /api/v1/events/subscriptions {\"subscriber_name\":\"lat-N\",\"event_types\":[\"$LAT_TYPE\"],\"callback_url\":\"http://127.0.0.1:PORT/lat/N\"} x $LAT_SUBS"
  printf '   %s\n' "${COMMANDS[@]}"
  echo "$LINE"
} | tee "$OUT/report.txt"

if [ "$SVC_WARNINGS" -gt 0 ]; then
  echo " service log (warn and above), most frequent messages:"
  summarize_log "$OUT/service.log"
fi
if [ "$PG_ERRORS" -gt 0 ]; then
  pg_log_errors_top
fi
if [ "$PG_DEADLOCKS" -gt 0 ] || [ "$PG_LOCK_WAITS" -gt 0 ]; then
  echo " PostgreSQL log, the statements of the deadlocks and of the lock waits (most frequent):"
  grep -A6 -E 'deadlock detected|still waiting for' "$PG_DIR/postgres.log" |
    { grep -oE '(Process [0-9]+: |STATEMENT: +|CONTEXT: +while )[^$]*' || true; } | sed -E 's/[0-9]+/N/g' | sort | uniq -c | sort -rn | head -n 8
fi
