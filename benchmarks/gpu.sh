#!/usr/bin/env bash
# GPU benchmark of the ImageNet track (see benchmarks/gpu.py): SD v1.5-sized synthesis throughput and
# QDrop reconstruction speed, random weights, nothing downloaded. About 5-8 min on one H100.
#
#   bash benchmarks/gpu.sh [--json FILE] [other benchmarks/gpu.py options]
#
# It runs from a checkout of this repository with the project's dependencies importable (torch, timm,
# diffusers, transformers). A machine without network whose Python lacks some of them can bring them as
# wheels in .whl/ (pip download --no-deps ... -d .whl NAME==VERSION, done where pip works); they are
# installed into a temporary folder, not into the system.
set -euo pipefail
cd "$(dirname "$0")/.."
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/mixq-site .whl/*.whl
    export PYTHONPATH="/tmp/mixq-site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 benchmarks/gpu.py "$@"
