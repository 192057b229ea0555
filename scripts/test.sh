#!/usr/bin/env bash
# Set up (including the PyTorch oracle), then run the whole test suite. Extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
py=$(bash scripts/setup.sh --test | tail -n 1) || { echo "setup failed" >&2; exit 1; }
# Two workers by default (pytest-xdist, from the [test] extra): the suite takes half the time on 2 cores.
# Pass your own -n N (or -n 0 for one process, e.g. to use a debugger).
workers=(-n "${TINYOPT_TEST_WORKERS:-2}")
for arg in "$@"; do
  case "$arg" in -n|-n[0-9]*|--numprocesses*) workers=() ;; esac
done
"$py" -m pytest "${workers[@]}" "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: treating that as a failure" >&2
  exit 1
fi
exit "$status"
