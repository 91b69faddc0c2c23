#!/usr/bin/env bash
# Create the StarDist (TensorFlow, CPU) environment used as the peer of the star-convex benchmark
# (bench/stardist_peer.py) and for the differential test of convscope's matching metrics against
# stardist.matching (tests/metrics/test_matching_vs_stardist.py). It lives in its own venv,
# bench/.envs/stardist (git-ignored), so TensorFlow and StarDist never enter convscope's environment;
# nothing of convscope is installed there (the differential test runs with PYTHONPATH=src).
#
#   bash bench/setup_stardist_env.sh          # idempotent: does nothing when already installed
#   FORCE=1 bash bench/setup_stardist_env.sh  # reinstall the pinned versions
#
# Environment: PYTHON (a Python 3.11 interpreter used to create the venv, default python3.11).
#
# Versions (all verified together on Python 3.11, CPU): StarDist 0.9.2 and CSBDeep 0.8.2 on the newest
# TensorFlow, 2.21.0, with Keras 3.15.1 (the same TensorFlow and Keras as bench/setup_keras_env.sh).
# csbdeep >= 0.8 supports Keras 3 natively (it imports `keras` instead of `tensorflow.keras` when
# Keras >= 3), so the TF 2.15 pin usually recommended for StarDist is not needed. The older pairing
# tensorflow-cpu==2.15.1 (tf.keras = Keras 2.15.0) with numpy==1.26.4 works too (trained, optimised
# thresholds and predicted the same way in the smoke test); set those pins here to go back to it.
set -euo pipefail

STARDIST_VERSION="0.9.2"
CSBDEEP_VERSION="0.8.2"
TF_VERSION="2.21.0"      # tensorflow-cpu
KERAS_VERSION="3.15.1"   # keras (Keras 3, TensorFlow backend), used by csbdeep/stardist
NUMPY_VERSION="2.4.6"
SCIPY_VERSION="1.17.1"
TIFFFILE_VERSION="2026.3.3"
IMAGEIO_VERSION="2.38.1"
PYTEST_VERSION="9.2.0"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
env_dir="${here}/.envs/stardist"
py="${env_dir}/bin/python"
# shellcheck source=bench/venv_lib.sh
source "${here}/venv_lib.sh"
pins=(
    "stardist==${STARDIST_VERSION}" "csbdeep==${CSBDEEP_VERSION}" "tensorflow-cpu==${TF_VERSION}"
    "keras==${KERAS_VERSION}" "numpy==${NUMPY_VERSION}" "scipy==${SCIPY_VERSION}" "tifffile==${TIFFFILE_VERSION}"
    "imageio==${IMAGEIO_VERSION}" "pytest==${PYTEST_VERSION}"
)

installed_ok() {
    pins_ok "${py}" "${pins[@]}"
}

if [[ "${FORCE:-0}" != "1" ]] && installed_ok; then
    echo "stardist env already set up at ${env_dir}"
else
    fresh_venv "${env_dir}"  # a fresh venv: upgrading TensorFlow/Keras in place leaves old packages behind
    echo "installing ${pins[*]} (large download, takes a while)"
    "${py}" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "${py}" -m pip install --disable-pip-version-check --progress-bar off "${pins[@]}"
fi

# Check: import StarDist's model and matching code (also builds csbdeep's Keras shim) and report the versions.
TF_CPP_MIN_LOG_LEVEL=2 "${py}" -c '
import csbdeep, numpy, stardist, tensorflow as tf
from importlib.metadata import version
from stardist.matching import matching
from stardist.models import Config2D, StarDist2D
keras = version("keras")
print(f"stardist {stardist.__version__}, csbdeep {csbdeep.__version__}, tensorflow {tf.__version__}, "
      f"keras {keras}, numpy {numpy.__version__}")
'
echo "python for the StarDist side: ${py}"
