"""Print pip's index settings (index-url, extra-index-url, find-links, constraint) as uv flags.

``scripts/bootstrap.sh`` installs with uv (about ten times faster than pip) where it can, and this keeps uv on the
indexes and constraints pip is configured with on this machine (pip.conf, ``PIP_*`` variables). Prints nothing where
pip has no such settings. Run with the interpreter whose pip to read.
"""

import shlex
import subprocess
import sys

FLAGS = {"index-url": "--index-url", "extra-index-url": "--extra-index-url",
         "find-links": "--find-links", "constraint": "--constraint"}


def uv_flags(pip_config: str) -> list[str]:
    """Translate the lines of ``pip config list`` (``scope.key='value'``) into uv flags, each value once."""
    pairs: dict[tuple[str, str], None] = {}
    for line in pip_config.splitlines():
        key, _, value = line.partition("=")
        flag = FLAGS.get(key.rsplit(".", 1)[-1])
        for item in " ".join(shlex.split(value)).split() if flag else []:
            pairs[flag, item] = None
    return [word for pair in pairs for word in pair]


if __name__ == "__main__":
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    print(" ".join(shlex.quote(flag) for flag in uv_flags(listed)))
