#!/usr/bin/env bash
# The GPU check: CUDA tests, MS-G3D / STF training and evaluation speed at full width, one short
# paper-profile epoch; writes benchmarks/results/gpu.json (see benchmarks/gpu_check.py).
# Sized for at most 8 minutes on one GPU; stopped at 8 minutes whatever happens.
#   benchmarks/gpu_check.sh             on a machine with a CUDA GPU
#   benchmarks/gpu_check.sh --dry-run   tiny sizes on the CPU (checks the script; writes benchmarks/work/gpu_dry.json)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
if [[ ! -x "$PY" ]]; then
  echo "gpu_check: $PY not found; run 'make .venv/.installed' (with a CUDA build of torch) first" >&2
  exit 2
fi
exec timeout --signal=INT --kill-after=20 480 "$PY" benchmarks/gpu_check.py "$@"
