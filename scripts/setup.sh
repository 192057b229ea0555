#!/usr/bin/env bash
# Install tinyopt (editable) and get Fashion-MNIST. Usage: scripts/setup.sh [--test]
#   --test   also install the test tools (pytest, hypothesis), the PyTorch oracle (torch==2.13.0) and MPI
#            (mpi4py + the mpich wheel, extra "distributed": the multi-rank tests run under mpiexec)
# Prints the Python interpreter to use on its last line (a .venv is made only where the system
# Python refuses pip installs, PEP 668).
set -euo pipefail
cd "$(dirname "$0")/.."

with_tests=0
[ "${1:-}" = "--test" ] && with_tests=1

# 1. The data set: Debian/Ubuntu package dataset-fashion-mnist (/usr/share/datasets/fashion-mnist).
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && [ -z "${TINYOPT_DATA:-}" ]; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "setup: installing the Debian package dataset-fashion-mnist" >&2
    $sudo apt-get update -qq >&2 && $sudo apt-get install -y -qq dataset-fashion-mnist >&2 \
      || echo "setup: could not install dataset-fashion-mnist; see README (Data) for other ways" >&2
  else
    echo "setup: no apt-get here; put the four Fashion-MNIST .gz files in ~/.cache/tinyopt (see README)" >&2
  fi
fi

# 2. Python: use the active interpreter, or a .venv where the system one is externally managed.
py="${PYTHON:-python3}"
if [ -x .venv/bin/python ]; then
  py=.venv/bin/python
elif "$py" - <<'PY'
import sys, sysconfig, pathlib
in_venv = sys.prefix != sys.base_prefix
managed = (pathlib.Path(sysconfig.get_path("stdlib")) / "EXTERNALLY-MANAGED").exists()
sys.exit(0 if (managed and not in_venv) else 1)
PY
then
  echo "setup: system Python is externally managed; creating .venv" >&2
  "$py" -m venv .venv
  py=.venv/bin/python
fi

extras=""
if [ "$with_tests" = 1 ]; then
  # The oracle first, pinned: 2.13.0 is the CPU build these machines hold locally.
  "$py" -m pip install -q "torch==2.13.0" >&2
  extras="[test,course,distributed]"
fi
"$py" -m pip install -q -e ".${extras}" >&2
echo "$py"
