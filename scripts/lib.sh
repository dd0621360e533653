# Shell helpers shared by scripts/run.sh and bench/: a local PostgreSQL and
# nats-server under a directory of our own. Source it; do not run it.

PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)

# Runs a command as the postgres user when we are root (initdb refuses root).
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# pg_start DIR PORT [extra postgres -c options...]: initdb on first use, then start.
pg_start() {
  local dir=$1 port=$2; shift 2
  mkdir -p "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_pg "$PG_BIN/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >/dev/null
  fi
  if as_pg "$PG_BIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    return 0
  fi
  local opts="-k $dir -p $port -c listen_addresses=127.0.0.1 -c max_connections=300"
  for o in "$@"; do opts="$opts -c $o"; done
  as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 -o "$opts" start >/dev/null
}

pg_stop() {
  local dir=$1
  as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

# pg_createdb PORT NAME: creates the database unless it exists.
pg_createdb() {
  local port=$1 name=$2
  if ! psql -h 127.0.0.1 -p "$port" -U postgres -Atc "SELECT 1 FROM pg_database WHERE datname = '$name'" postgres | grep -q 1; then
    psql -h 127.0.0.1 -p "$port" -U postgres -qc "CREATE DATABASE \"$name\"" postgres
  fi
}

# nats_start DIR PORT: a JetStream-enabled nats-server (pid in DIR/nats.pid).
nats_start() {
  local dir=$1 port=$2
  mkdir -p "$dir"
  if [ -f "$dir/nats.pid" ] && kill -0 "$(cat "$dir/nats.pid")" 2>/dev/null; then
    return 0
  fi
  nats-server -js -sd "$dir/js" -a 127.0.0.1 -p "$port" -l "$dir/nats.log" -P "$dir/nats.pid" &
  for _ in $(seq 1 100); do
    grep -q "Server is ready" "$dir/nats.log" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nats-server did not start; see $dir/nats.log" >&2
  return 1
}

nats_stop() {
  local dir=$1
  [ -f "$dir/nats.pid" ] && kill "$(cat "$dir/nats.pid")" 2>/dev/null || true
}
