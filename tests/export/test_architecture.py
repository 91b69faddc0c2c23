"""The exported network and its self-contained architecture file: every registered model built from the file, where
convscope cannot be imported, gives the outputs of convscope's own model with the same weights."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from convscope.export.architecture import FACTORY_NAME, architecture_source
from convscope.export.network import ExportedNetwork
from convscope.models import create_model, list_models

#: Run where ``import convscope`` fails, as bioimage.io consumers without convscope load the file.
_BUILD_WITHOUT_CONVSCOPE = """
import importlib.util, json, sys
import numpy as np, torch
sys.modules["convscope"] = None
spec = importlib.util.spec_from_file_location("arch", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules["arch"] = module
spec.loader.exec_module(module)
folder = sys.argv[2]
for case in json.load(open(folder + "/cases.json")):
    net = getattr(module, "{factory}")(**case["kwargs"]).eval()
    net.load_state_dict(torch.load(folder + "/" + case["name"] + ".pt", weights_only=True))
    x = torch.from_numpy(np.load(folder + "/" + case["name"] + "_x.npy"))
    with torch.no_grad():
        np.save(folder + "/" + case["name"] + "_y.npy", net(x).numpy())
""".replace("{factory}", FACTORY_NAME)


def _options(name: str) -> tuple[dict, tuple[int, int, int]]:
    """Small options of every registered model and its input (H, W, C)."""
    entry = next(e for e in list_models() if e.name == name)
    h, w, c = entry.default_input
    if name in ("unet", "stardist"):
        return {"in_channels": 1, "depth": 2, "base_filters": 4, "input_size": [32, 32]}, (32, 32, 1)
    size = (32, 32) if name.startswith("vgg16") else (h, w)
    return {"in_channels": c, "input_size": list(size)}, (*size, c)


@pytest.mark.slow
def test_every_registered_model_builds_from_the_file_without_convscope(tmp_path: Path) -> None:
    import json

    (tmp_path / "architecture.py").write_text(architecture_source())
    cases, expected = [], {}
    for entry in list_models():
        options, (h, w, c) = _options(entry.name)
        net = ExportedNetwork(create_model(entry.name, **{**options, "input_size": tuple(options["input_size"])}),
                              [(0, 1, "identity", 1.0)]).eval()
        torch.manual_seed(0)
        for p in net.parameters():  # non-trivial weights, so a mismatch cannot hide behind an initialisation
            p.data.normal_(0, 0.1)
        x = torch.rand(2, c, h, w, generator=torch.Generator().manual_seed(1))
        torch.save(net.state_dict(), tmp_path / f"{entry.name}.pt")
        np.save(tmp_path / f"{entry.name}_x.npy", x.numpy())
        with torch.no_grad():
            expected[entry.name] = net(x).numpy()
        cases.append({"name": entry.name, "kwargs": {"model": entry.name, "options": options,
                                                     "heads": [[0, 1, "identity", 1.0]]}})
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    done = subprocess.run([sys.executable, "-c", _BUILD_WITHOUT_CONVSCOPE, str(tmp_path / "architecture.py"),
                           str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    for name, y in expected.items():
        assert np.allclose(np.load(tmp_path / f"{name}_y.npy"), y, atol=1e-6), name


def test_the_architecture_file_imports_only_torch_and_the_standard_library() -> None:
    tree = ast.parse(architecture_source())
    modules = {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    modules |= {alias.name.split(".")[0] for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
    top_level = {(n.module or "").split(".")[0] for n in tree.body if isinstance(n, ast.ImportFrom)}
    assert "convscope" not in top_level
    assert modules - {"convscope"} <= {"torch", "collections", "dataclasses", "inspect", "typing", "__future__"}


def test_output_heads_are_activated_and_split() -> None:
    raw = torch.tensor([[[[0.0]], [[2.0]], [[-1.0]], [[3.0]]]])  # (1, 4, 1, 1)
    net = ExportedNetwork(torch.nn.Identity(), [(0, 1, "sigmoid_pair", 1.0), (1, 3, "softmax", 1.0),
                                                (3, 4, "identity", 0.5)])
    pair, soft, scaled = net(raw)
    assert torch.allclose(pair[0, :, 0, 0], torch.tensor([0.5, 0.5]))
    assert torch.allclose(soft.sum(dim=1), torch.ones(1, 1, 1)) and soft[0, 0, 0, 0] > soft[0, 1, 0, 0]
    assert scaled.item() == 1.5
    single = ExportedNetwork(torch.nn.Identity(), [(0, 2, "sigmoid", 1.0)])(raw)
    assert isinstance(single, torch.Tensor) and torch.allclose(single, torch.sigmoid(raw[:, :2]))
    with pytest.raises(ValueError, match="relu"):
        ExportedNetwork(torch.nn.Identity(), [(0, 1, "relu", 1.0)])
