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
py=.venv/bin/python
# uv installs the same packages about ten times faster than pip (napari's dependencies take pip about three
# minutes); it gets pip's index settings (scripts/pip_to_uv.py). Without uv (no index offers it) pip does the work.
$py -m uv --version >/dev/null 2>&1 || $py -m pip install --quiet uv >/dev/null 2>&1 || true
if $py -m uv --version >/dev/null 2>&1; then
    # shellcheck disable=SC2046  # the flags are words, quoted by pip_to_uv.py
    eval "install=($py -m uv pip install --quiet --python $py --index-strategy unsafe-best-match $($py scripts/pip_to_uv.py))"
else
    install=($py -m pip install --quiet)
fi
if ! $py -c "import torch" 2>/dev/null; then
    # Pin torch: an unpinned torch pulls a multi-GB CUDA build. On a CPU-only machine the pinned
    # version resolves to a CPU wheel where one is provided (here: a local wheel). Override with
    # TORCH_SPEC (e.g. TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu124").
    # shellcheck disable=SC2086
    "${install[@]}" ${TORCH_SPEC:-torch==2.13.0}
fi
# dev: pytest, ruff, pytest-qt and a Qt binding; the extras whose parts the suite tests: napari (the plugin), dask
# (block-wise prediction of large images), onnx and bioimageio (export, import, the ONNX Runtime backend).
"${install[@]}" -e ".[dev,napari,dask,onnx,bioimageio]"
touch .venv/.bootstrapped
