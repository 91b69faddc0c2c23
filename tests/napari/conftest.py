"""Fixtures of the napari widget tests: a tiny trained star-convex run, and the skip when there is no display."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """GUI tests need a display (run them under `xvfb-run -a`; `QT_QPA_PLATFORM=offscreen` breaks vispy)."""
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return
    skip = pytest.mark.skip(reason="napari GUI test: no display; run under `xvfb-run -a` (make test does)")
    for item in items:
        if "tests/napari/" in str(item.fspath).replace(os.sep, "/") and "gui" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_recipe(tiny_star_recipe: str) -> str:
    """The YAML text of a one-epoch star-convex recipe (a few seconds)."""
    return tiny_star_recipe


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, tiny_star_recipe: str) -> Path:
    """A one-epoch star-convex run on 4 generated 64 x 64 images (a few seconds); ``CONVSCOPE_TEST_RUN=RUN`` uses
    a finished star-convex run instead (a better model, for the README's screenshots)."""
    if os.environ.get("CONVSCOPE_TEST_RUN"):
        return Path(os.environ["CONVSCOPE_TEST_RUN"])
    from convscope import train
    from convscope.config import load_recipe

    tmp = tmp_path_factory.mktemp("napari_run")
    (tmp / "recipe.yaml").write_text(tiny_star_recipe)
    train(load_recipe(tmp / "recipe.yaml"), tmp / "run", log=lambda _m: None)
    return tmp / "run"
