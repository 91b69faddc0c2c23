#!/usr/bin/env bash
# Create .venv with convscope, its dev and napari extras and the right torch for this machine.
# Idempotent: re-running only installs what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "convscope: creating .venv with $($PY --version)"
    "$PY" -m venv .venv
fi
pip=".venv/bin/python -m pip"
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    # Pin torch: an unpinned torch pulls a multi-GB CUDA build. On a CPU-only machine the pinned
    # version resolves to a CPU wheel where one is provided (here: a local wheel). Override with
    # TORCH_SPEC (e.g. TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu124").
    $pip install --quiet ${TORCH_SPEC:-torch==2.13.0}
fi
# dev: pytest, ruff, pytest-qt and a Qt binding; napari: the plugin's extra (napari, magicgui, qtpy).
$pip install --quiet -e ".[dev,napari]"
touch .venv/.bootstrapped
