"""Where data sets live: the local data folder, the download cache, and verified downloads.

Order of precedence for a data folder: ``--data DIR`` on the command line, then ``$CONVSCOPE_DATA``.
Downloadable sets that are not there are fetched into the cache (``$CONVSCOPE_CACHE``, default
``~/.cache/convscope``), checked against a recorded SHA-256 before they are renamed into place.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO

from convscope.errors import ConvscopeError
from convscope.io.atomic import atomic_path

DATA_ENV = "CONVSCOPE_DATA"
CACHE_ENV = "CONVSCOPE_CACHE"
OFFLINE_FIX = f"no internet? put the files in a folder and pass --data DIR or set {DATA_ENV}"
_CHUNK = 1 << 20
_TIMEOUT_S = 60


def data_root(cli_data: Path | None) -> Path | None:
    """The local data folder: ``cli_data`` (``--data``), else ``$CONVSCOPE_DATA``, else None.

    Raises
    ------
    ConvscopeError
        If the chosen folder does not exist.
    """
    if cli_data is not None:
        root, origin = Path(cli_data).expanduser(), "--data"
    elif os.environ.get(DATA_ENV):
        root, origin = Path(os.environ[DATA_ENV]).expanduser(), f"${DATA_ENV}"
    else:
        return None
    if not root.is_dir():
        raise ConvscopeError(f"{root}: data folder (from {origin}) not found; pass an existing folder")
    return root


def cache_dir() -> Path:
    """The download cache: ``$CONVSCOPE_CACHE``, else ``~/.cache/convscope`` (not created here)."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "convscope"


def sha256_of(path: str | os.PathLike[str], *, decompress_gzip: bool = False) -> str:
    """Hex SHA-256 of a file's bytes, or of its gunzipped content with ``decompress_gzip``."""
    opener = gzip.open if decompress_gzip else open
    digest = hashlib.sha256()
    with opener(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, dest: str | os.PathLike[str], *, sha256: str,
             decompress_gzip_for_hash: bool = False) -> Path:
    """Download ``url`` to ``dest``, verified, atomically.

    The bytes are streamed to a temporary file in the folder of ``dest``; the SHA-256 is checked
    before the file is renamed onto ``dest``, so ``dest`` is either complete and verified or absent.

    Parameters
    ----------
    url : str
        ``https://``, ``http://`` or ``file://`` URL.
    dest : str or PathLike
        Target file (its folder is created).
    sha256 : str
        Expected hex digest (of the file, or of its gunzipped content with ``decompress_gzip_for_hash``).
    decompress_gzip_for_hash : bool
        Hash the decompressed content of a gzip file (for files whose uncompressed bytes are canonical).

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    ConvscopeError
        On a network failure or a checksum mismatch (nothing is left at ``dest``).
    """
    dest = Path(dest)
    with atomic_path(dest) as tmp:
        _fetch(url, tmp, label=dest.name)
        try:
            got = sha256_of(tmp, decompress_gzip=decompress_gzip_for_hash)
        except (OSError, EOFError) as err:  # not gzip, truncated gzip
            raise ConvscopeError(f"{url}: downloaded file is corrupt ({err}); retry later, or "
                                 f"{OFFLINE_FIX}") from None
        if got != sha256.lower():
            raise ConvscopeError(f"{url}: checksum mismatch (expected sha256 {sha256[:16]}..., got "
                                 f"{got[:16]}...); the mirror or the transfer is broken: retry later, or "
                                 f"{OFFLINE_FIX}")
    return dest


def _fetch(url: str, target: Path, *, label: str) -> None:
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response, open(target, "wb") as out:
            total = response.headers.get("Content-Length")
            _copy_with_progress(response, out, int(total) if total and total.isdigit() else None, label)
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        raise ConvscopeError(f"{url}: download failed ({reason}); {OFFLINE_FIX}") from None


def _copy_with_progress(src: BinaryIO, out: BinaryIO, total: int | None, label: str) -> None:
    from tqdm import tqdm

    show = total is None or total > 4 * _CHUNK
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=f"download {label}",
              file=sys.stderr, disable=None if show else True, leave=False) as bar:
        while chunk := src.read(_CHUNK):
            out.write(chunk)
            bar.update(len(chunk))
