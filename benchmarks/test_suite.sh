#!/usr/bin/env bash
# Benchmark of the test suite's bound: `make test` from a fresh clone of this repository's HEAD, setup included,
# as CI runs it. Prints the setup time, the test time and the total; asserts nothing.
# Bound to compare with (2 CPU cores, an idle machine): total <= 6 min. Another process computing at the same
# time slows it in proportion: measure on an idle machine.
#   benchmarks/test_suite.sh                   every test (make test)
#   TARGET=test-fast benchmarks/test_suite.sh  the edit-test loop (bound 90 s for the tests)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${TARGET:-test}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git clone --quiet "$repo" "$work/clone"
cd "$work/clone"

t0=$SECONDS
make --no-print-directory setup >/dev/null
t_setup=$((SECONDS - t0))
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
t1=$SECONDS
status=0
make --no-print-directory "$target" >"$work/tests.log" 2>&1 || status=$?
t_tests=$((SECONDS - t1))
tail -n 3 "$work/tests.log"
if (( status )); then  # the clone is removed on exit: keep what failed, and why, on the screen
  grep -E '^(FAILED|ERROR) ' "$work/tests.log" || tail -n 40 "$work/tests.log"
fi
echo "cores: $(nproc); load average before the tests: $load_before"
echo "setup (make setup):  ${t_setup} s"
echo "tests (make $target): ${t_tests} s"
echo "total:               $((t_setup + t_tests)) s   (bound for make test: 360 s)"
exit "$status"
