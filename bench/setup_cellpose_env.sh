#!/usr/bin/env bash
# Create the Cellpose 3 (PyTorch, CPU) environment used as the peer of the flow-field benchmark
# (bench/cellpose_peer.py, driven by bench/flows_bench.py). It lives in its own venv, bench/.envs/cellpose
# (git-ignored), so Cellpose and its pins (numpy < 2.1, numba, OpenCV) never enter convscope's environment;
# nothing of convscope is installed there (the peer does not import it; the driver scores in .venv).
#
#   bash bench/setup_cellpose_env.sh          # idempotent: does nothing when already installed
#   FORCE=1 bash bench/setup_cellpose_env.sh  # reinstall the pinned versions
#
# Environment: PYTHON (a Python 3.11 interpreter used to create the venv, default python3.11);
# TORCH_SPEC (how torch is installed, default "torch==2.13.0", as scripts/bootstrap.sh does it: an unpinned
# torch pulls a multi-GB CUDA build; on this machine the pinned version resolves to a CPU wheel on disk. Where
# it does not, e.g. TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu").
#
# Versions: Cellpose 3.1.1.3, the last 3.x release (`cellpose<4`; 4.x is Cellpose-SAM, a different model),
# without extras (the [gui] extra would pull PyQt6), on the same torch as convscope (2.13.0, CPU). Cellpose 3
# needs no torchvision. Its own requirements are numpy<2.1 (-> 2.0.2), scipy, natsort, tifffile, tqdm, numba,
# llvmlite, opencv-python-headless, fastremap, imagecodecs, roifile and fill-voids; the versions pinned below
# are the ones pip resolved for them here (2026-11), except OpenCV, held at 4.x (5.0 also imported and ran
# a quick eval). imageio reads the PNGs (the peer shares bench/stardist_peer.py's readers).
set -euo pipefail

CELLPOSE_VERSION="3.1.1.3"
TORCH_VERSION="2.13.0"
NUMPY_VERSION="2.0.2"             # the newest numpy cellpose 3.1.1.3 allows (< 2.1)
SCIPY_VERSION="1.17.1"
NUMBA_VERSION="0.68.1"
OPENCV_VERSION="4.14.0.94"        # opencv-python-headless: the last 4.x (Cellpose 3 predates OpenCV 5)
FASTREMAP_VERSION="1.21.0"
TIFFFILE_VERSION="2026.3.3"
IMAGEIO_VERSION="2.38.1"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
env_dir="${here}/.envs/cellpose"
py="${env_dir}/bin/python"
# shellcheck source=bench/venv_lib.sh
source "${here}/venv_lib.sh"
pins=(
    "cellpose==${CELLPOSE_VERSION}" "numpy==${NUMPY_VERSION}" "scipy==${SCIPY_VERSION}" "numba==${NUMBA_VERSION}"
    "opencv-python-headless==${OPENCV_VERSION}" "fastremap==${FASTREMAP_VERSION}" "tifffile==${TIFFFILE_VERSION}"
    "imageio==${IMAGEIO_VERSION}"
)

installed_ok() {
    UNWANTED="PyQt6 PyQt5 pyqtgraph" pins_ok "${py}" "torch==${TORCH_VERSION}" "${pins[@]}"
}

if [[ "${FORCE:-0}" != "1" ]] && installed_ok; then
    echo "cellpose env already set up at ${env_dir}"
else
    fresh_venv "${env_dir}"
    "${py}" -m pip install --quiet --disable-pip-version-check --upgrade pip
    # torch first and pinned, so that cellpose's "torch>=1.6" is already satisfied and pulls nothing
    # shellcheck disable=SC2086  # TORCH_SPEC may carry pip options
    echo "installing ${TORCH_SPEC:-torch==${TORCH_VERSION}}"
    "${py}" -m pip install --disable-pip-version-check --progress-bar off ${TORCH_SPEC:-torch==${TORCH_VERSION}}
    echo "installing ${pins[*]}"
    "${py}" -m pip install --disable-pip-version-check --progress-bar off "torch==${TORCH_VERSION}" "${pins[@]}"
fi

# Check: import Cellpose's model, training and dynamics code on the CPU and report the versions.
"${py}" -c '
import cellpose, cv2, numba, numpy, torch
from cellpose import dynamics, metrics, models, train
m = models.CellposeModel(gpu=False, pretrained_model=False, nchan=2)
print(f"cellpose {cellpose.version}, torch {torch.__version__} (cuda build: {torch.version.cuda is not None}), "
      f"numpy {numpy.__version__}, numba {numba.__version__}, opencv {cv2.__version__}; "
      f"from-scratch CellposeModel: diam_mean {m.diam_mean}, nchan {m.nchan}, device {m.device}, mkldnn {m.mkldnn}")
'
echo "python for the Cellpose side: ${py}"
