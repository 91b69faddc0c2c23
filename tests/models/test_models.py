"""One contract for every registered model: parameter counts, output shape, a backward pass."""

from __future__ import annotations

import pytest
import torch

from convscope.errors import ConvscopeError
from convscope.models import count_params, create_model, get_entry, list_models, summarize

# (trainable, non-trainable) at the model's default input, from the course's Keras models.
EXPECTED_PARAMS = {
    "dense_10": (7_850, 0),
    "dense_10_10": (7_960, 0),
    "dense_15_15": (12_175, 0),
    "mnist_cnn": (7_135, 0),
    "vgg1": (1_925_921, 0),
    "vgg2": (1_150_273, 0),
    "vgg3": (6_753_057, 0),
    "vgg16_transfer": (557_569, 14_714_688),
    "vgg16_finetune": (7_636_993, 7_635_264),
    "unet": (7_762_465, 5_888),  # ours, not the course's: depth 4, 32..512 filters, batch norm
    "stardist": (1_976_929, 2_880),  # ours: grid 2, U-Net depth 3, 32..256 filters, batch norm, 32 rays
}

# Inputs smaller than the default, to keep the forward/backward contract test fast; (H, W, C).
SMALL_INPUT = {"unet": (64, 64, 1), "stardist": (64, 48, 1)}
# Output channels asked of each task's models in the contract test (StarDist: 1 probability + 4 rays).
OUTPUTS = {"classification": 3, "semantic": 3, "stardist": 5}


def test_every_model_has_expected_counts() -> None:
    assert {e.name for e in list_models()} == set(EXPECTED_PARAMS)


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_param_counts(name: str) -> None:
    assert count_params(create_model(name)) == EXPECTED_PARAMS[name]


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_forward_backward(name: str) -> None:
    torch.manual_seed(0)
    entry = get_entry(name)
    h, w, c = SMALL_INPUT.get(name, entry.default_input)
    k = OUTPUTS[entry.tasks[0]]
    model = create_model(name, num_classes=k)
    x = torch.rand(2, c, h, w)
    out = model(x)
    expected = {"classification": (2, k), "semantic": (2, k, h, w), "stardist": (2, k, h // 2, w // 2)}[entry.tasks[0]]
    assert out.shape == expected
    out.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    frozen = [p for p in model.parameters() if not p.requires_grad]
    assert all(p.grad is None for p in frozen)


@pytest.mark.parametrize("name", ["mnist_cnn", "vgg1", "dense_15_15"])
def test_other_input_sizes_and_channels(name: str) -> None:
    model = create_model(name, in_channels=2, num_classes=1, input_size=(48, 40))
    assert model(torch.rand(3, 2, 48, 40)).shape == (3, 1)


def test_batch_norm_option_adds_norm_layers_and_stats() -> None:
    plain = create_model("vgg2")
    bn = create_model("vgg2", batch_norm=True)
    kinds = {type(m).__name__ for m in bn.modules()}
    assert {"BatchNorm2d", "BatchNorm1d"} <= kinds
    assert count_params(bn)[1] > 0 and count_params(plain)[1] == 0


def test_unknown_model_and_option_are_clear_errors() -> None:
    with pytest.raises(ConvscopeError, match=r"unknown model 'vgg9'.*vgg1"):
        create_model("vgg9")
    with pytest.raises(ConvscopeError, match="no option 'dropot'"):
        create_model("vgg1", dropot=0.5)


def test_too_small_input_is_an_error() -> None:
    with pytest.raises(ValueError):
        create_model("vgg1", input_size=(16, 16))


def test_summary_matches_counts_and_shapes() -> None:
    model = create_model("mnist_cnn")
    s = summarize(model, (28, 28, 1))
    assert (s.trainable, s.non_trainable) == (7_135, 0)
    assert sum(r.params for r in s.rows) == 7_135
    convs = [r for r in s.rows if r.kind == "Conv2d"]
    assert [r.output_shape for r in convs] == [(16, 26, 26), (16, 11, 11), (16, 3, 3)]
    assert "7,135" in s.table()


def test_vgg16_freezing_follows_blocks() -> None:
    transfer = create_model("vgg16_transfer")
    finetune = create_model("vgg16_finetune")
    assert not any(p.requires_grad for p in transfer.features.parameters())
    trainable_convs = [i for i, m in enumerate(finetune.features)
                       if isinstance(m, torch.nn.Conv2d) and m.weight.requires_grad]
    assert trainable_convs == [24, 26, 28]


def _keras_order(layers: list[torch.nn.Module]) -> list[torch.nn.Module]:
    """``layers`` with every max-pool that precedes a ReLU moved after it (ReLU, then pool)."""
    order = list(layers)
    for i, layer in enumerate(layers[:-1]):
        if isinstance(layer, torch.nn.MaxPool2d) and isinstance(layers[i + 1], torch.nn.ReLU):
            order[i], order[i + 1] = layers[i + 1], layer
    assert order != layers  # the swap happened where a pool ends a block
    return order


@pytest.mark.parametrize(("name", "batch_norm", "part"), [
    ("mnist_cnn", False, "features"), ("vgg1", False, "features"), ("mnist_cnn", True, "features"),
    ("stardist", True, "stem"),
])
def test_pool_before_relu_equals_the_keras_order(name: str, batch_norm: bool, part: str) -> None:
    """A block's last ReLU runs after its max-pool: outputs and gradients equal those of ReLU then pool."""
    torch.manual_seed(0)
    model = create_model(name, batch_norm=batch_norm).train()
    layers = list(getattr(model, part))
    h, w, c = SMALL_INPUT.get(name, get_entry(name).default_input)
    x = torch.randn(2, c, h, w)
    results = []
    for order in (layers, _keras_order(layers)):
        model.zero_grad()
        setattr(model, part, torch.nn.Sequential(*order))
        out = model(x)
        out.square().sum().backward()
        results.append((out.detach(), [p.grad.clone() for p in model.parameters()]))
    (out_a, grad_a), (out_b, grad_b) = results
    torch.testing.assert_close(out_a, out_b, rtol=0, atol=0)
    for a, b in zip(grad_a, grad_b, strict=True):
        torch.testing.assert_close(a, b)
