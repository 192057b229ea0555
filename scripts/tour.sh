#!/usr/bin/env bash
# Set everything up, then run the guided tour (train a CNN on Fashion-MNIST, then compress it).
# Extra arguments go to `tinyopt tour` (e.g. --fast).
set -euo pipefail
cd "$(dirname "$0")/.."
py=$(bash scripts/setup.sh | tail -n 1)
exec "$py" -m tinyopt tour "$@"
