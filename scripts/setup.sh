#!/usr/bin/env bash
# Creates .venv in the repo root and installs SRM Bench with everything it needs.
# Torch is pinned to the wheels this machine kind keeps on disk (a looser pin downloads GBs).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
if ! .venv/bin/python -c "import torch, torchvision" 2>/dev/null; then
    .venv/bin/python -m pip install -q "torch==${TORCH_VERSION:-2.14.1}" "torchvision==${TORCHVISION_VERSION:-0.29.1}"
fi
.venv/bin/python -m pip install -q -e ".[${SRM_BENCH_EXTRAS:-test}]"
# Compile SRM's CPU kernels now (once per machine, ~10 s) rather than at the first inference.
.venv/bin/python -m srm_models.ops || echo "note: SRM runs on its torch-op passes here (no C++ compiler or ninja)"
