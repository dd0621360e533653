#!/usr/bin/env bash
# One command: installs what is missing, builds event_service twice (optimised,
# and with AddressSanitizer + UndefinedBehaviorSanitizer), runs the unit and
# end-to-end suites against each build, and prints a pass/fail summary.
# The end-to-end suite starts its own PostgreSQL and nats-server on free ports
# under a temporary directory (tests/e2e/harness.c).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
bash scripts/deps.sh || { echo "FAIL: could not install dependencies"; exit 1; }

LOGDIR=$(mktemp -d /tmp/es-test-logs.XXXXXX)
declare -a SUMMARY=()
status=0

run_suite() { # name binary [args...]
  local name=$1; shift
  local log="$LOGDIR/$name.log"
  "$@" >"$log" 2>&1
  local rc=$?
  local line
  line=$(grep -a "Synthesis:" "$log" | tail -n1 | sed 's/.*Synthesis: //')
  [ -n "$line" ] || line="no summary (exit $rc)"
  if [ $rc -ne 0 ]; then
    status=1
    SUMMARY+=("FAIL  $name: $line")
    echo "---- $name failed; last lines of $log:"
    grep -a -E "\[FAIL\]|\[----\]|ERROR|Assertion|runtime error|Sanitizer" "$log" | head -n 60
  else
    SUMMARY+=("ok    $name: $line")
  fi
}

for variant in release sanitize; do
  dir="build/test-$variant"
  opts=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
  [ "$variant" = sanitize ] && opts=(-DCMAKE_BUILD_TYPE=Debug -DES_SANITIZE=ON)
  if ! cmake -S . -B "$dir" "${opts[@]}" >"$LOGDIR/cmake-$variant.log" 2>&1 ||
     ! cmake --build "$dir" -j"$(nproc)" >"$LOGDIR/build-$variant.log" 2>&1; then
    status=1
    SUMMARY+=("FAIL  build ($variant): see $LOGDIR/build-$variant.log")
    tail -n 40 "$LOGDIR/build-$variant.log"
    continue
  fi
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:symbolize=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  run_suite "unit ($variant)" "$dir/tests/unit_tests" --jobs 2
  if [ -x "$dir/tests/e2e_tests" ]; then
    # Library threads (nats.c) and h2o keep global state until exit; leak
    # checking stays on for the unit tests, where everything is ours.
    ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:symbolize=1" \
      run_suite "e2e ($variant)" "$dir/tests/e2e_tests" --jobs 2
  fi
done

echo
echo "==== event_service test summary (logs in $LOGDIR)"
for s in "${SUMMARY[@]}"; do echo "$s"; done
if [ $status -eq 0 ]; then echo "==== PASS"; else echo "==== FAIL"; fi
exit $status
