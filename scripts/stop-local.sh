#!/usr/bin/env bash
# Stops the local PostgreSQL and nats-server that scripts/run.sh started under ./var/.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
pg_stop "$PWD/var/pg"
nats_stop "$PWD/var/nats"
