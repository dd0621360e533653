#!/usr/bin/env bash
# Installs the Debian 12 packages event_service builds, runs and tests with.
# Idempotent: does nothing when everything is already installed.
set -euo pipefail
PKGS=(build-essential cmake pkg-config
      libh2o-evloop-dev libjansson-dev libnats-dev libpq-dev libcurl4-openssl-dev
      libyaml-dev libssl-dev zlib1g-dev libcriterion-dev
      postgresql postgresql-contrib nats-server curl wrk)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
