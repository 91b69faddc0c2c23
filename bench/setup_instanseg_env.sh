#!/usr/bin/env bash
# Create the InstanSeg (PyTorch, CPU) environment used as a peer of the star-convex speed benchmark
# (bench/instanseg_peer.py, driven by bench/speed_peers.py). It lives in its own venv, bench/.envs/instanseg
# (git-ignored), so InstanSeg and its pins never enter convscope's environment; nothing of convscope is installed
# there (the peer does not import it).
#
#   bash bench/setup_instanseg_env.sh          # idempotent: does nothing when already installed
#   FORCE=1 bash bench/setup_instanseg_env.sh  # reinstall the pinned versions
#
# Environment: PYTHON (a Python 3.11 interpreter used to create the venv, default python3.11);
# TORCH_SPEC (how torch is installed, default "torch==2.13.0", as scripts/bootstrap.sh does it: an unpinned torch
# pulls a multi-GB CUDA build; here the pinned version resolves to the CPU wheel in pip's find-links. Where it does
# not, e.g. TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu").
#
# Versions: instanseg-torch 0.1.2 with its core dependencies only (no extras: the `full` extra would pull
# torchvision, monai, kornia, bioimageio, ...), on the same torch as convscope (2.13.0, CPU). Its core dependencies
# are einops, fastremap, matplotlib, numpy, requests, scikit-image, torch and tqdm; the versions pinned below are
# the ones uv resolved for them here (2026-12). Two more are pinned although instanseg-torch does not declare them:
# pandas and seaborn. Its post-processing module (instanseg/utils/loss/instanseg_loss.py, which holds
# InstanSeg_Torchscript, the network + instance decoding its published TorchScript models are made of) imports
# instanseg/utils/biological_utils.py, which imports both at module level; neither is used by the code we time.
# Its training code (instanseg/scripts/train.py) needs more: torchvision and monai at import time (the `full`
# extra), so it cannot run here.
#
# Installs with uv where it can (about ten times faster than pip; uv gets pip's index settings through
# scripts/pip_to_uv.py, as in scripts/bootstrap.sh), else with pip.
set -euo pipefail

INSTANSEG_VERSION="0.1.2"     # instanseg-torch
TORCH_VERSION="2.13.0"
UV_VERSION="0.13.9"
NUMPY_VERSION="2.4.6"
SCIPY_VERSION="1.17.1"
EINOPS_VERSION="0.8.2"
FASTREMAP_VERSION="1.21.0"
MATPLOTLIB_VERSION="3.11.2"
REQUESTS_VERSION="2.34.2"
SKIMAGE_VERSION="0.26.0"      # scikit-image
TQDM_VERSION="4.70.1"
IMAGEIO_VERSION="2.38.2"
TIFFFILE_VERSION="2026.3.3"
PANDAS_VERSION="3.1.1"        # undeclared, imported by instanseg.utils.biological_utils
SEABORN_VERSION="0.13.2"      # undeclared, imported by instanseg.utils.biological_utils

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "${here}")"
env_dir="${here}/.envs/instanseg"
py="${env_dir}/bin/python"
# shellcheck source=bench/venv_lib.sh
source "${here}/venv_lib.sh"
pins=(
    "instanseg-torch==${INSTANSEG_VERSION}" "numpy==${NUMPY_VERSION}" "scipy==${SCIPY_VERSION}"
    "einops==${EINOPS_VERSION}" "fastremap==${FASTREMAP_VERSION}" "matplotlib==${MATPLOTLIB_VERSION}"
    "requests==${REQUESTS_VERSION}" "scikit-image==${SKIMAGE_VERSION}" "tqdm==${TQDM_VERSION}"
    "imageio==${IMAGEIO_VERSION}" "tifffile==${TIFFFILE_VERSION}" "pandas==${PANDAS_VERSION}"
    "seaborn==${SEABORN_VERSION}"
)

installed_ok() {
    UNWANTED="torchvision monai kornia" pins_ok "${py}" "torch==${TORCH_VERSION}" "${pins[@]}"
}

if [[ "${FORCE:-0}" != "1" ]] && installed_ok; then
    echo "instanseg env already set up at ${env_dir}"
else
    fresh_venv "${env_dir}"
    "${py}" -m pip install --quiet --disable-pip-version-check "uv==${UV_VERSION}" >/dev/null 2>&1 || true
    if "${py}" -m uv --version >/dev/null 2>&1; then
        # shellcheck disable=SC2046  # the flags are words, quoted by pip_to_uv.py
        eval "install=(${py} -m uv pip install --quiet --python ${py} --index-strategy unsafe-best-match \
            $("${py}" "${root}/scripts/pip_to_uv.py"))"
    else
        install=("${py}" -m pip install --disable-pip-version-check --progress-bar off)
    fi
    # torch first and pinned, so that instanseg-torch's "torch>=2.0.0" is already satisfied and pulls nothing
    echo "installing ${TORCH_SPEC:-torch==${TORCH_VERSION}}"
    # shellcheck disable=SC2086  # TORCH_SPEC may carry pip options
    "${install[@]}" ${TORCH_SPEC:-torch==${TORCH_VERSION}}
    echo "installing ${pins[*]}"
    "${install[@]}" "torch==${TORCH_VERSION}" "${pins[@]}"
    installed_ok || { echo "the pinned versions did not install as asked (see above)" >&2; exit 1; }
fi

# Check: import InstanSeg's inference class, network builder and post-processing on the CPU; report the versions.
"${py}" -W ignore -c '
import instanseg, numpy, torch
from importlib.metadata import version
from instanseg import InstanSeg
from instanseg.utils.loss.instanseg_loss import InstanSeg_Torchscript
from instanseg.utils.model_loader import build_model_from_dict
v = version("instanseg-torch")
print(f"instanseg-torch {v}, torch {torch.__version__} (cuda build: "
      f"{torch.version.cuda is not None}), numpy {numpy.__version__}")
'
echo "python for the InstanSeg side: ${py}"
