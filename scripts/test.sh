#!/usr/bin/env bash
# Set up (including the PyTorch oracle), then run the whole test suite. Extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
py=$(bash scripts/setup.sh --test | tail -n 1) || { echo "setup failed" >&2; exit 1; }
"$py" -m pytest "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: treating that as a failure" >&2
  exit 1
fi
exit "$status"
