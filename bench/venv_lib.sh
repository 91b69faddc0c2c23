# Shared by the bench/setup_*_env.sh scripts (sourced, not run): checking and creating the peers' venvs.

# pins_ok PY NAME==VERSION ...: true when PY exists, every pin is installed in its environment at that version (a
# local label such as torch's +cpu ignored) and none of the distributions named in $UNWANTED (space-separated) is.
pins_ok() {
    local py="$1"
    shift
    [[ -x "${py}" ]] || return 1
    UNWANTED="${UNWANTED:-}" "${py}" - "$@" <<'EOF' >/dev/null 2>&1
import os
import sys
from importlib.metadata import PackageNotFoundError, version
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    if version(name).split("+")[0] != want:
        sys.exit(1)
for name in os.environ["UNWANTED"].split():
    try:
        version(name)
        sys.exit(1)
    except PackageNotFoundError:
        pass
EOF
}

# fresh_venv DIR: remove DIR if it exists (upgrading in place leaves packages of other versions behind), then create
# a venv there with $PYTHON (default python3.11), which must be Python 3.11.
fresh_venv() {
    local env_dir="$1"
    if [[ -e "${env_dir}" ]]; then
        echo "removing ${env_dir} (FORCE=1 or other versions installed)"
        rm -rf "${env_dir}"
    fi
    echo "creating venv ${env_dir}"
    mkdir -p "$(dirname "${env_dir}")"
    "${PYTHON:-python3.11}" -m venv "${env_dir}"
    "${env_dir}/bin/python" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
        || { echo "${PYTHON:-python3.11} is not Python 3.11; set PYTHON to a python3.11" >&2; exit 1; }
}
