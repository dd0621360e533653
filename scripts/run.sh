#!/usr/bin/env bash
# One command on a fresh Debian 12 machine: installs what is missing, builds,
# starts a local PostgreSQL (127.0.0.1:54329) and nats-server (127.0.0.1:42229)
# under ./var/ (the embedded default of conf/event_service.yaml), and runs the
# service on :8208 in the foreground. Ctrl-C stops the service; the local
# PostgreSQL and nats-server keep running (scripts/stop-local.sh stops them).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
bash scripts/deps.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DES_TESTS=OFF >/dev/null
cmake --build build/release -j"$(nproc)"
. scripts/lib.sh
pg_start "$ROOT/var/pg" 54329
pg_createdb 54329 event_service
nats_start "$ROOT/var/nats" 42229
exec "$ROOT/build/release/event-service" -c "$ROOT/conf/event_service.yaml"
