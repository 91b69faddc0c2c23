"""Shared by the benchmark drivers: BENCHMARKS.md blocks, the CPU name, child processes that print JSON."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

from convscope.io.atomic import write_text

HEADER = (
    "# Benchmarks\n\n"
    "Results of the benchmarks in `bench/` (see `bench/README.md`), run on demand; "
    "each block is rewritten by the script named in it.\n\n"
)


def update_block(path: Path, begin: str, end: str, block: str) -> None:
    """Replace the text from ``begin`` to ``end`` in ``path`` with ``block`` (which carries both markers),
    or append it; other blocks stay; the write is atomic."""
    text = path.read_text() if path.exists() else HEADER
    start, stop = text.find(begin), text.find(end)
    if start != -1 and stop > start:
        text = text[:start] + block + text[stop + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    write_text(path, text)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_json(cmd: list[str], what: str, env: dict[str, str] | None = None) -> dict:
    """Run ``cmd`` (in ``env``, default this process's) and parse the last non-empty line it prints as JSON; stop
    with its stderr on failure."""
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}")
    return json.loads([line for line in proc.stdout.splitlines() if line.strip()][-1])
