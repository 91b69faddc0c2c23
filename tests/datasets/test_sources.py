from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest

from convscope.datasets.sources import cache_dir, data_root, download, sha256_of
from convscope.errors import ConvscopeError


def test_data_root_prefers_cli_then_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cli, env = tmp_path / "cli", tmp_path / "env"
    cli.mkdir()
    env.mkdir()
    monkeypatch.delenv("CONVSCOPE_DATA", raising=False)
    assert data_root(None) is None
    monkeypatch.setenv("CONVSCOPE_DATA", str(env))
    assert data_root(None) == env
    assert data_root(cli) == cli


def test_data_root_missing_folder_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConvscopeError, match=r"nowhere.*--data"):
        data_root(tmp_path / "nowhere")
    monkeypatch.setenv("CONVSCOPE_DATA", str(tmp_path / "gone"))
    with pytest.raises(ConvscopeError, match=r"gone.*\$CONVSCOPE_DATA"):
        data_root(None)


def test_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVSCOPE_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("CONVSCOPE_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "convscope"


def test_download_file_url(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"abc" * 1000)
    dest = tmp_path / "out" / "copy.bin"
    got = download(src.as_uri(), dest, sha256=hashlib.sha256(src.read_bytes()).hexdigest())
    assert got == dest
    assert dest.read_bytes() == src.read_bytes()
    assert [p.name for p in dest.parent.iterdir()] == ["copy.bin"]


def test_download_hashes_gzip_content(tmp_path: Path) -> None:
    payload = b"canonical bytes" * 100
    src = tmp_path / "f.gz"
    src.write_bytes(gzip.compress(payload, mtime=123))
    dest = tmp_path / "out" / "f.gz"
    download(src.as_uri(), dest, sha256=hashlib.sha256(payload).hexdigest(), decompress_gzip_for_hash=True)
    assert sha256_of(dest, decompress_gzip=True) == hashlib.sha256(payload).hexdigest()


def test_checksum_mismatch_leaves_no_file(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"tampered")
    dest = tmp_path / "out" / "copy.bin"
    with pytest.raises(ConvscopeError, match=r"src\.bin: checksum mismatch.*--data"):
        download(src.as_uri(), dest, sha256="0" * 64)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []


def test_not_gzip_when_gzip_hash_requested(tmp_path: Path) -> None:
    src = tmp_path / "plain.gz"
    src.write_bytes(b"not gzip")
    dest = tmp_path / "out" / "plain.gz"
    with pytest.raises(ConvscopeError, match="corrupt"):
        download(src.as_uri(), dest, sha256="0" * 64, decompress_gzip_for_hash=True)
    assert list(dest.parent.iterdir()) == []


def test_network_failure_names_url_and_offline_fix(tmp_path: Path) -> None:
    url = (tmp_path / "missing.bin").as_uri()
    dest = tmp_path / "out" / "missing.bin"
    with pytest.raises(ConvscopeError, match=r"missing\.bin: download failed.*pass --data DIR"):
        download(url, dest, sha256="0" * 64)
    assert not dest.exists()
