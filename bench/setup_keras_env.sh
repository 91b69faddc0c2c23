#!/usr/bin/env bash
# Create the Keras 3 + TensorFlow (CPU) environment used as the reference side of the
# training-throughput benchmark (bench/throughput.py). It lives in its own venv,
# bench/.envs/keras (git-ignored), so TensorFlow never enters convscope's environment.
#
#   bash bench/setup_keras_env.sh          # idempotent: does nothing when already installed
#   FORCE=1 bash bench/setup_keras_env.sh  # reinstall the pinned versions
#
# Environment: PYTHON (interpreter used to create the venv, default python3).
set -euo pipefail

TF_VERSION="2.21.0"     # tensorflow-cpu
KERAS_VERSION="3.15.1"  # keras (Keras 3, TensorFlow backend)

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
env_dir="${here}/.envs/keras"
py="${env_dir}/bin/python"

installed_ok() {
    [[ -x "${py}" ]] || return 1
    "${py}" - "${TF_VERSION}" "${KERAS_VERSION}" <<'EOF' >/dev/null 2>&1
import sys
from importlib.metadata import version
tf_want, keras_want = sys.argv[1], sys.argv[2]
ok = version("tensorflow-cpu") == tf_want and version("keras") == keras_want
sys.exit(0 if ok else 1)
EOF
}

if [[ "${FORCE:-0}" != "1" ]] && installed_ok; then
    echo "keras env already set up at ${env_dir}"
else
    if [[ ! -x "${py}" ]]; then
        echo "creating venv ${env_dir}"
        mkdir -p "$(dirname "${env_dir}")"
        "${PYTHON:-python3}" -m venv "${env_dir}"
    fi
    echo "installing tensorflow-cpu==${TF_VERSION} keras==${KERAS_VERSION} (large download, takes a while)"
    "${py}" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "${py}" -m pip install --disable-pip-version-check --progress-bar off \
        "tensorflow-cpu==${TF_VERSION}" "keras==${KERAS_VERSION}"
fi

# Check: import both and report the versions (also makes sure the backend is TensorFlow).
KERAS_BACKEND=tensorflow TF_CPP_MIN_LOG_LEVEL=2 "${py}" -c '
import keras, tensorflow as tf
assert keras.backend.backend() == "tensorflow", keras.backend.backend()
print(f"keras {keras.__version__}, tensorflow {tf.__version__}, backend {keras.backend.backend()}")
'
echo "python for the Keras side: ${py}"
