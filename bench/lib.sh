# bench/lib.sh - shell helpers shared by the benchmarks of bench/ (ingest.sh,
# delivery.sh, processing.sh, replay.sh): a throw-away PostgreSQL, nats-server
# and event-service on free ports under a temporary directory, the cleanup
# trap that stops them, CPU accounting from /proc, and the small helpers of
# their reports. Source it from the repository root, after `set -euo
# pipefail`; do not run it. It sources scripts/lib.sh (pg_start, nats_start).
#
# Sourcing it also clears the caller's environment of what the service and
# psql would read (see the unset below). A script sets before it uses these:
# DB (its database), LOG_DIR and SKIP_BUILD (knobs), and where it needs them:
# write_config (a function writing $CONFIG, with service_config, for
# start_service), the CPU table's layout (CPU_LABEL_WIDTH, CPU_DECIMALS,
# CPU_WIDTHS, for cpu_row and cpu_header), COMMANDS_UNIQUE=1 (record_cmd
# keeps a command once), and the optional hooks cleanup_hook_pre,
# cleanup_hook_post and cpu_snap_extra (see below).
# shellcheck shell=bash
# Variables are shared both ways with the scripts that source this file:
# shellcheck disable=SC2034,SC2154

# shellcheck source-path=SCRIPTDIR/.. source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

# Ports other local setups use: never ours.
RESERVED_PORTS=" 54329 42229 55999 42999 8208 18208 "

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# require_positive VAR...: dies unless each VAR holds a positive integer.
require_positive() {
  local v
  for v in "$@"; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
  done
}

# require_tools TOOL...: dies unless each TOOL is on the PATH and the
# PostgreSQL server binaries are installed.
require_tools() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || die "$tool not found (scripts/deps.sh installs the toolchain)"
  done
  [ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ] || die "PostgreSQL server binaries not found under /usr/lib/postgresql"
}

# The service takes these from the environment over its config file; psql and
# pgbench take PG*. None of the caller's may leak into a run.
unset SERVICE_PORT SERVICE_NAME LOG_LEVEL DATABASE_URL POSTGRES_HOST POSTGRES_PORT POSTGRES_DB \
  POSTGRES_USER POSTGRES_PASSWORD NATS_URL NATS_ENABLED CONSUL_HOST CONSUL_PORT CONSUL_ENABLED \
  RUDDERSTACK_WEBHOOK_SECRET BATCH_SIZE PROCESSING_INTERVAL \
  PGHOST PGPORT PGDATABASE PGUSER PGOPTIONS PGSERVICE PGSERVICEFILE

# --- cleanup -----------------------------------------------------------------

# What a run started, for cleanup: the temporary directory, the service, the
# child waited for (run_child), and the directories of nats-server and
# PostgreSQL (both stopped through their pid files).
WORK=""
SVC_PID=""
CHILD_PID=""
NATS_DIR=""
PG_DIR=""
# What LOG_DIR receives, in cleanup's message.
LOG_DIR_WHAT="logs and raw outputs"

alive() { # alive PID: running and not a zombie
  local s
  s=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ -n $s && $s != Z* ]]
}

# stop_service: SIGTERM to the service, SIGKILL after 15 s; then its workers
# get 5 s each to follow before they are killed too.
stop_service() {
  [ -n "$SVC_PID" ] || return 0
  local workers w
  workers=$(ps -o pid= --ppid "$SVC_PID" 2>/dev/null | tr -s ' \n' ' ' || true)
  kill -TERM "$SVC_PID" 2>/dev/null || true
  for _ in $(seq 1 150); do alive "$SVC_PID" || break; sleep 0.1; done
  if alive "$SVC_PID"; then
    log "service did not stop within 15 s of SIGTERM; killing it"
    kill -KILL "$SVC_PID" 2>/dev/null || true
  fi
  wait "$SVC_PID" 2>/dev/null || true
  for w in $workers; do
    for _ in $(seq 1 50); do alive "$w" || break; sleep 0.1; done
    alive "$w" && kill -KILL "$w" 2>/dev/null || true
  done
  SVC_PID=""
}

# cleanup (the EXIT trap): stops everything the run started, copies the logs
# and raw outputs to LOG_DIR when set, and removes the temporary directory.
# A script stops what only it starts in cleanup_hook_pre (before the
# service is stopped) and cleanup_hook_post (after), when it defines them.
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  if [ -n "$CHILD_PID" ]; then
    kill -TERM "$CHILD_PID" 2>/dev/null
    wait "$CHILD_PID" 2>/dev/null
  fi
  declare -F cleanup_hook_pre >/dev/null && cleanup_hook_pre
  stop_service
  declare -F cleanup_hook_post >/dev/null && cleanup_hook_post
  [ -n "$NATS_DIR" ] && nats_stop "$NATS_DIR"
  [ -n "$PG_DIR" ] && pg_stop "$PG_DIR"
  if [ -n "$WORK" ] && [ -d "$WORK" ]; then
    if [ -n "$LOG_DIR" ]; then
      mkdir -p "$LOG_DIR"
      cp "$WORK"/out/* "$LOG_DIR"/ 2>/dev/null
      cp "$WORK"/service.log "$WORK"/event_service.yaml "$LOG_DIR"/ 2>/dev/null
      cp "$PG_DIR"/postgres.log "$NATS_DIR"/nats.log "$LOG_DIR"/ 2>/dev/null
      log "$LOG_DIR_WHAT copied to $LOG_DIR"
    fi
    rm -rf "$WORK"
  fi
  [ "$rc" -ne 0 ] && log "stopped (exit $rc); everything this run started is stopped"
  exit "$rc"
}

# install_cleanup: cleanup on exit, on Ctrl-C and on SIGTERM. A signal that
# arrives inside a `read -t` (see guarded_read) is only noted, and acted on
# when the read has returned: bash 5.2 can crash when a trap exits in the
# middle of a timed read, leaving everything running.
IN_READ=0
STOP_RC=""
on_signal() {
  if [ "$IN_READ" = 1 ]; then STOP_RC=$1; else exit "$1"; fi
}
install_cleanup() {
  trap cleanup EXIT
  trap 'on_signal 130' INT
  trap 'on_signal 143' TERM
}
# guarded_read ARGS...: `read ARGS...`, with a signal that arrives meanwhile
# handled once it has returned. Returns read's status.
guarded_read() {
  local rc=0
  IN_READ=1
  read "$@" || rc=$?
  IN_READ=0
  [ -n "$STOP_RC" ] && exit "$STOP_RC"
  return "$rc"
}

# run_child OUT CMD...: runs CMD in the background with its output in OUT and
# waits for it, so that a signal reaches our trap at once (and the trap stops
# the child). Returns CMD's exit status.
run_child() {
  local out=$1 rc=0
  shift
  "$@" >"$out" 2>&1 &
  CHILD_PID=$!
  wait "$CHILD_PID" || rc=$?
  CHILD_PID=""
  return "$rc"
}

# --- helpers -------------------------------------------------------------------

# pick_port VAR: a TCP port no socket on this host uses, below the kernel's
# ephemeral range (which outgoing connections draw from at any moment), not
# reserved, not picked before. A port can still be taken between this check
# and our bind: the starts below retry with a new port.
TAKEN_PORTS=" "
EPHEMERAL_LOW=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
pick_port() {
  local p hi=$((EPHEMERAL_LOW > 20000 ? EPHEMERAL_LOW : 65535))
  for _ in $(seq 1 500); do
    p=$((20000 + RANDOM % (hi - 20000)))
    [[ $RESERVED_PORTS == *" $p "* || $TAKEN_PORTS == *" $p "* ]] && continue
    if [ -z "$(ss -Htan "( sport = :$p or dport = :$p )" 2>/dev/null)" ]; then
      TAKEN_PORTS+="$p "
      printf -v "$1" '%s' "$p"
      return 0
    fi
  done
  die "no free port found"
}

# psql on the run's database ($DB), quiet, stopping at the first error; sql
# runs one statement and prints its rows unaligned; sql_admin does the same
# on the postgres database.
psqlq() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$DB" "$@"; }
sql() { psqlq -Atc "$1"; }
sql_admin() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -Atc "$1"; }

# record_cmd CMD...: a command for the report's list of commands; with
# COMMANDS_UNIQUE=1, one that is listed already is not listed again.
COMMANDS=()
COMMANDS_UNIQUE=0
record_cmd() {
  local c="$*"
  [ "$COMMANDS_UNIQUE" = 1 ] && [[ " ${COMMANDS[*]-} " == *"$c"* ]] && return 0
  COMMANDS+=("$c")
}

# kv FILE KEY: the value of KEY=value on FILE's RESULT line.
kv() { grep -m1 '^RESULT ' "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k { print $2 }'; }

# fmt X [DECIMALS]: X rounded ("n/a" when empty, nan or "?"); calc EXPR: an
# awk expression, 6 decimals; mean X...: the mean, 3 decimals.
fmt() { awk -v x="$1" -v d="${2:-0}" 'BEGIN { if (x == "" || x == "nan" || x == "?") print "n/a"; else printf "%.*f", d, x }'; }
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
mean() { printf '%s\n' "$@" | awk '{ s += $1; n++ } END { printf "%.3f", n ? s / n : 0 }'; }

# pass X OP T: PASS or FAIL for X OP T (OP one of >=, >, <); n/a without X.
pass() {
  awk -v x="$1" -v op="$2" -v t="$3" 'BEGIN { if (x == "" || x == "n/a") { print "n/a"; exit }
    ok = (op == ">=") ? (x >= t) : (op == ">") ? (x > t) : (x < t); print ok ? "PASS" : "FAIL" }'
}

# summarize_log FILE: the service log's most frequent messages, with times,
# ids and numbers blanked out.
summarize_log() { sed -E 's/"(ts|time|request_id|pid)":"?[^,"]*"?,?//g; s/[0-9]+/N/g' "$1" | sort | uniq -c | sort -rn | head -n 8; }

# pg_log_errors: the ERROR/FATAL/PANIC lines of the run's PostgreSQL log,
# counted; pg_log_errors_top prints the most frequent of them.
pg_log_errors() { grep -cE 'ERROR|FATAL|PANIC' "$PG_DIR/postgres.log" || true; }
pg_log_errors_top() {
  echo " PostgreSQL log, ERROR/FATAL/PANIC lines (most frequent):"
  grep -E 'ERROR|FATAL|PANIC' "$PG_DIR/postgres.log" | sed -E 's/^[^]]*\] //; s/[0-9]+/N/g' | sort | uniq -c | sort -rn | head -n 8
}

# What a pgbench output FILE says: tps, failed transactions, transactions.
pgb_tps() { awk '/^tps = / { print $3; exit }' "$1"; }
pgb_failed() { awk -F': ' '/number of failed transactions/ { split($2, a, " "); print a[1]; exit }' "$1"; }
pgb_count() { awk -F': ' '/number of transactions actually processed/ { split($2, a, "/"); print a[1]; exit }' "$1"; }

# --- CPU accounting ------------------------------------------------------------

# CPU accounting from /proc, in clock ticks. A process's own time plus what
# its reaped children used (so backends and workers that exited still count).
CLK_TCK=$(getconf CLK_TCK)
proc_ticks() { awk '{ sub(/^[^)]*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
tree_ticks() {
  local t c
  t=$(proc_ticks "$1")
  for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do t=$((t + $(proc_ticks "$c"))); done
  echo "$t"
}

# cpu_snap: "service postgres nats [extra] client busy steal total" ticks
# now: extra is what the script's cpu_snap_extra prints, when it defines one
# (more process groups); client is what this shell's waited-for children used
# (the load generator, psql, pgbench).
cpu_snap() {
  local svc=0 pg nats extra="" client kids prev=""
  # A backend that exits shows no CPU time while it is a zombie, and counts in
  # the postmaster's cutime only once reaped; one reaped between our reads of
  # the parent and of its children would count in neither. So wait (bounded)
  # until the postmaster's children are the same over two polls, none a zombie.
  for _ in $(seq 1 40); do
    kids=$(ps -o pid=,stat= --ppid "$PM_PID" 2>/dev/null | tr -s ' \n' ' ')
    [[ $kids == "$prev" && $kids != *Z* ]] && break
    prev=$kids
    sleep 0.05
  done
  [ -n "$SVC_PID" ] && svc=$(tree_ticks "$SVC_PID")
  pg=$(tree_ticks "$PM_PID")
  nats=$(proc_ticks "$NATS_PID")
  declare -F cpu_snap_extra >/dev/null && extra="$(cpu_snap_extra) "
  client=$(awk '{ sub(/^[^)]*\) /, ""); print $14 + $15 }' "/proc/$$/stat")
  echo "$svc $pg $nats $extra$client $(awk '/^cpu / { t = $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9;
    print $2 + $3 + $4 + $7 + $8, $9, t }' /proc/stat)"
}

# The CPU table's layout, set by the script: the width of the label column,
# the decimals of the figures, and the widths of the columns of each process
# group of cpu_snap, then of "other" and "all".
CPU_LABEL_WIDTH=42
CPU_DECIMALS=0
CPU_WIDTHS="8 8 6 8 7 8"

# cpu_row LABEL BEFORE AFTER N: one line of the CPU table, CPU time per item
# (us) of each process group between two cpu_snaps, then of everything else
# ("other") and of the whole machine ("all"), then busy and steal in % of the
# machine. Sets CPU_BUSY and CPU_STEAL (the same two, rounded).
CPU_ROWS=()
cpu_row() {
  local line
  line=$(awk -v label="$1" -v b="$2" -v a="$3" -v n="$4" -v hz="$CLK_TCK" -v lw="$CPU_LABEL_WIDTH" \
    -v dp="$CPU_DECIMALS" -v widths="$CPU_WIDTHS" 'BEGIN {
    m = split(b, x, " "); split(a, y, " "); split(widths, w, " ");
    g = m - 3; # process groups; then busy, steal and total
    for (i = 1; i <= m; i++) d[i] = y[i] - x[i];
    us = (n > 0) ? 1e6 / hz / n : 0;
    other = d[g + 1]; for (i = 1; i <= g; i++) other -= d[i]; if (other < 0) other = 0;
    busy = (d[m] > 0 ? 100 * d[g + 1] / d[m] : 0);
    steal = (d[m] > 0 ? 100 * d[g + 2] / d[m] : 0);
    s = sprintf("  %-" lw "s", label);
    for (i = 1; i <= g; i++) s = s sprintf(" %" w[i] "." dp "f", d[i] * us);
    s = s sprintf(" %" w[g + 1] "." dp "f %" w[g + 2] "." dp "f", other * us, d[g + 1] * us);
    printf "%.0f|%.1f|%s %5.0f%% %5.1f%%", busy, steal, s, busy, steal }')
  CPU_BUSY=${line%%|*}
  line=${line#*|}
  CPU_STEAL=${line%%|*}
  CPU_ROWS+=("${line#*|}")
}

# cpu_header NAME...: the CPU table's column heads (the process groups,
# "other" and "all"; busy and steal follow), aligned with cpu_row's lines.
cpu_header() {
  local i=0 w s
  s=$(printf '  %-*s' "$CPU_LABEL_WIDTH" "")
  for w in $CPU_WIDTHS; do
    i=$((i + 1))
    s+=$(printf ' %*s' "$w" "${!i}")
  done
  printf '%s %6s %6s\n' "$s" busy steal
}

# --- NATS ----------------------------------------------------------------------

# js_stream_state STREAM: "messages last_seq" of a JetStream stream on our
# nats-server ("0 0" when it does not exist yet, "? ?" when unknown), asked
# over the plain NATS protocol.
js_stream_state() {
  local line payload="" fd msgs seq
  if ! exec {fd}<>"/dev/tcp/127.0.0.1/$NATS_PORT"; then echo "? ?"; return 0; fi
  guarded_read -r -t 2 -u "$fd" line || true # INFO
  printf 'CONNECT {"verbose":false,"pedantic":false}\r\nSUB _INBOX.bench.si 1\r\nPUB $JS.API.STREAM.INFO.%s _INBOX.bench.si 0\r\n\r\n' "$1" >&"$fd"
  while guarded_read -r -t 3 -u "$fd" line; do
    line=${line%$'\r'}
    case $line in
      PING) printf 'PONG\r\n' >&"$fd" ;;
      MSG*) guarded_read -r -t 2 -u "$fd" payload || true; break ;;
    esac
  done
  exec {fd}>&-
  if [[ $payload == *'"code":404'* ]]; then echo "0 0"; return 0; fi
  msgs=$(grep -o '"messages":[0-9]*' <<<"$payload" | head -n1 | cut -d: -f2 || true)
  seq=$(grep -o '"last_seq":[0-9]*' <<<"$payload" | head -n1 | cut -d: -f2 || true)
  echo "${msgs:-?} ${seq:-?}"
}
# js_last_seq: the last sequence of the service's stream (messages ever accepted).
js_last_seq() { js_stream_state event-stream | cut -d' ' -f2; }
# js_published: the stream's last sequence once it stops moving (acks of a
# run may still be arriving), waiting at most 5 s.
js_published() {
  local a b
  a=$(js_last_seq)
  for _ in $(seq 1 10); do
    sleep 0.5
    b=$(js_last_seq)
    [ "$a" = "$b" ] && break
    a=$b
  done
  echo "$a"
}
# pub_delta BEFORE AFTER: messages published in between, or "?".
pub_delta() { if [[ $1 =~ ^[0-9]+$ && $2 =~ ^[0-9]+$ ]]; then echo $(($2 - $1)); else echo "?"; fi; }

# --- build and start -----------------------------------------------------------

# build_service: the Release binary in build/bench (SKIP_BUILD=1: the one
# there); sets BIN, SVC_VERSION, and GIT_DESC (the commit, and whether the
# source outside bench/ has uncommitted changes).
build_service() {
  BIN=$ROOT/build/bench/event-service
  if [ "$SKIP_BUILD" != 1 ]; then
    log "building the Release binary (build/bench)"
    cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release -DES_TESTS=OFF >/dev/null
    cmake --build build/bench -j2 >/dev/null
  fi
  [ -x "$BIN" ] || die "$BIN missing"
  GIT_DESC=$(git rev-parse --short HEAD 2>/dev/null || echo "?")
  if [ -n "$(git status --porcelain --untracked-files=no -- . ':!bench' 2>/dev/null)" ]; then
    GIT_DESC+=" + uncommitted changes outside bench/"
  fi
  SVC_VERSION=$("$BIN" -v 2>/dev/null || echo "?")
}

# make_workdir PREFIX: the run's temporary directory, /tmp/PREFIX.XXXXXX
# (WORK), with out/ (OUT) for the raw outputs; PostgreSQL and nats-server go
# in PG_DIR and NATS_DIR under it.
make_workdir() {
  WORK=$(mktemp -d "/tmp/$1.XXXXXX")
  chmod 755 "$WORK"
  OUT=$WORK/out
  mkdir -p "$OUT"
  PG_DIR=$WORK/pg
  NATS_DIR=$WORK/nats
}

# start_postgres OPTION...: PostgreSQL in PG_DIR on a free port (three
# tries), with the postgres -c OPTIONs; sets PG_PORT and PM_PID.
start_postgres() {
  local attempt
  for attempt in 1 2 3; do
    pick_port PG_PORT
    log "starting PostgreSQL on 127.0.0.1:$PG_PORT (fsync on, synchronous_commit on) under $PG_DIR"
    if pg_start "$PG_DIR" "$PG_PORT" "$@"; then
      PM_PID=$(head -n1 "$PG_DIR/data/postmaster.pid")
      return 0
    fi
    log "  PostgreSQL did not start (attempt $attempt): $(grep -E 'FATAL|ERROR' "$PG_DIR/postgres.log" | tail -n 1)"
  done
  die "PostgreSQL did not start; see $PG_DIR/postgres.log"
}

# pg_describe VALUE NAME...: PG_SETTINGS, "name=value ..." of the settings
# NAME... with VALUE the SQL expression of a value over pg_settings, and
# PG_VERSION_STR; logs the settings, and dies unless fsync and
# synchronous_commit are on.
pg_describe() {
  local value=$1 names
  shift
  names=$(printf ", '%s'" "$@")
  PG_SETTINGS=$(sql_admin "SELECT string_agg(name || '=' || $value, ' ' ORDER BY name)
    FROM pg_settings WHERE name IN (${names#, })")
  PG_VERSION_STR=$(sql_admin "SHOW server_version")
  log "  $PG_SETTINGS"
  [[ $PG_SETTINGS == *"fsync=on"* && $PG_SETTINGS == *"synchronous_commit=on"* ]] ||
    die "PostgreSQL is not running with fsync and synchronous_commit on"
}

# start_nats: nats-server (JetStream) in NATS_DIR on a free port (three
# tries); sets NATS_PORT and NATS_PID.
start_nats() {
  local attempt
  for attempt in 1 2 3; do
    pick_port NATS_PORT
    log "starting nats-server on 127.0.0.1:$NATS_PORT"
    rm -f "$NATS_DIR/nats.log" "$NATS_DIR/nats.pid"
    if nats_start "$NATS_DIR" "$NATS_PORT"; then
      NATS_PID=$(cat "$NATS_DIR/nats.pid")
      return 0
    fi
    nats_stop "$NATS_DIR"
    log "  nats-server did not start (attempt $attempt): $(tail -n 1 "$NATS_DIR/nats.log" 2>/dev/null)"
  done
  die "nats-server did not start"
}

# service_config API PROCESSORS REPLAY: writes CONFIG, the service's config
# for the run: listening on 127.0.0.1:SVC_PORT, with API, PROCESSORS and
# REPLAY workers, on the run's database and nats-server; the script's own
# sections follow, read from stdin.
service_config() {
  {
    cat <<EOF
# written by bench/${0##*/}
service:
  bind: 127.0.0.1
  port: $SVC_PORT
workers:
  api: $1
  processor: $2
  replay: $3
database:
  url: "postgresql://postgres@127.0.0.1:$PG_PORT/$DB"
nats:
  url: "nats://127.0.0.1:$NATS_PORT"
EOF
    cat
  } >"$CONFIG"
}

# wait_ready: waits (30 s at most) while the service runs until its GET
# /health/ready answers 200; READY_CODE is the last answer. Fails when the
# service exits or the time runs out.
wait_ready() {
  READY_CODE=000
  for _ in $(seq 1 300); do
    alive "$SVC_PID" || return 1
    READY_CODE=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$SVC_PORT/health/ready" || true)
    [ "$READY_CODE" = 200 ] && return 0
    sleep 0.1
  done
  return 1
}

# start_service WHAT: event-service on a free port SVC_PORT (three tries),
# with the config the script's write_config writes to CONFIG, its log in
# $WORK/service.log; WHAT says in the log what runs. Returns once it is ready.
start_service() {
  local attempt
  for attempt in 1 2 3; do
    pick_port SVC_PORT
    write_config
    "$BIN" -t -c "$CONFIG" >/dev/null || die "the service refuses the generated config $CONFIG"
    log "starting event-service on 127.0.0.1:$SVC_PORT ($1)"
    "$BIN" -c "$CONFIG" >"$WORK/service.log" 2>&1 &
    SVC_PID=$!
    wait_ready && return 0
    log "  event-service not ready (attempt $attempt, last /health/ready: $READY_CODE): $(tail -n 3 "$WORK/service.log")"
    stop_service
  done
  die "event-service did not become ready; see the lines above"
}
