"""U-Net: any input size, both up-sampling modes, depths, options, hand-computed parameter counts."""

from __future__ import annotations

import pytest
import torch

from convscope.errors import ConvscopeError
from convscope.models import count_params, create_model, get_entry, summarize
from convscope.models.unet import pad_to_multiple


def _conv(cin: int, cout: int, k: int = 3, bias: bool = True) -> int:
    return k * k * cin * cout + (cout if bias else 0)


@pytest.mark.parametrize("upsampling", ["transpose", "bilinear"])
@pytest.mark.parametrize("depth", [2, 3, 4])
def test_odd_sizes_keep_height_and_width(upsampling: str, depth: int) -> None:
    torch.manual_seed(0)
    model = create_model("unet", in_channels=2, num_classes=3, depth=depth, base_filters=4, upsampling=upsampling)
    out = model(torch.rand(2, 2, 100, 77))
    assert out.shape == (2, 3, 100, 77)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("size", [(16, 16), (33, 17), (5, 3), (1, 1)])
def test_small_and_divisible_sizes(size: tuple[int, int]) -> None:
    model = create_model("unet", depth=4, base_filters=2).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 1, *size)).shape == (1, 1, *size)


def test_padding_is_reflect_and_cropped_back() -> None:
    x = torch.arange(2 * 7, dtype=torch.float32).reshape(1, 1, 2, 7)
    padded, (top, left) = pad_to_multiple(x, 4)
    assert padded.shape == (1, 1, 4, 8)
    assert (top, left) == (1, 0)
    assert torch.equal(padded[..., top : top + 2, left : left + 7], x)
    assert padded[0, 0, 0, 0] == x[0, 0, 1, 0]  # reflected, not zero
    same, offset = pad_to_multiple(x[..., :4], 2)
    assert same.shape == (1, 1, 2, 4) and offset == (0, 0)


def test_output_is_the_padded_prediction_cropped_at_the_image() -> None:
    torch.manual_seed(0)
    model = create_model("unet", depth=2, base_filters=2).eval()
    x = torch.rand(1, 1, 13, 10)
    with torch.no_grad():
        whole = model(x)
        # 13x10 -> 16x12: rows padded 1 above and 2 below, columns 1 left and 1 right
        padded = model(torch.nn.functional.pad(x, (1, 1, 1, 2), mode="reflect"))
    assert torch.allclose(whole, padded[..., 1:14, 1:11], atol=1e-6)
    assert not torch.allclose(whole, padded[..., 0:13, 0:10], atol=1e-6)


def test_tiny_config_parameter_count_by_hand() -> None:
    # depth 1, 2 -> 4 filters, no batch norm, 1 input channel, 1 output
    enc = _conv(1, 2) + _conv(2, 2)
    bottleneck = _conv(2, 4) + _conv(4, 4)
    up = _conv(4, 2, k=2)  # 2x2 transposed conv
    dec = _conv(4, 2) + _conv(2, 2)
    head = _conv(2, 1, k=1)
    expected = enc + bottleneck + up + dec + head
    assert expected == 431
    model = create_model("unet", depth=1, base_filters=2, batch_norm=False)
    assert count_params(model) == (expected, 0)


def test_tiny_config_batch_norm_and_bilinear_counts_by_hand() -> None:
    # batch norm: the block convs lose their bias; each BN has 2*c trainable and 2*c running statistics
    def block(cin: int, cout: int) -> int:
        return _conv(cin, cout, bias=False) + 2 * cout

    bn_channels = [2, 2, 4, 4, 2, 2]
    trainable = block(1, 2) + block(2, 2) + block(2, 4) + block(4, 4) + _conv(4, 2) + block(4, 2) + block(2, 2)
    trainable += _conv(2, 3, k=1)
    model = create_model("unet", depth=1, base_filters=2, num_classes=3, upsampling="bilinear")
    assert count_params(model) == (trainable, 2 * sum(bn_channels))


def test_defaults_count_and_summary() -> None:
    entry = get_entry("unet")
    assert entry.tasks == ("semantic", "flows")
    assert entry.default_input == (256, 256, 1)
    model = create_model("unet", base_filters=4)
    s = summarize(model, (32, 48, 1))
    assert (s.trainable, s.non_trainable) == count_params(model)
    assert s.rows[-1].output_shape == (1, 32, 48)


def test_batch_norm_off_has_no_norm_layers() -> None:
    model = create_model("unet", base_filters=4, batch_norm=False)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert count_params(model)[1] == 0


def test_dropout_only_at_bottleneck() -> None:
    model = create_model("unet", base_filters=4, dropout=0.5)
    drops = [name for name, m in model.named_modules() if isinstance(m, torch.nn.Dropout)]
    assert drops == ["bottleneck.1"]
    assert not any(isinstance(m, torch.nn.Dropout) for m in create_model("unet", base_filters=4).modules())


def test_gradient_reaches_every_parameter() -> None:
    torch.manual_seed(0)
    model = create_model("unet", depth=3, base_filters=4, num_classes=2, upsampling="bilinear", dropout=0.2)
    x = torch.rand(2, 1, 40, 24, requires_grad=True)
    model(x).square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_input_size_is_accepted_and_ignored() -> None:
    a = create_model("unet", base_filters=2, input_size=(64, 64))
    b = create_model("unet", base_filters=2)
    assert count_params(a) == count_params(b)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"upsampling": "nearest"}, "upsampling.*transpose, bilinear"),
        ({"depth": 0}, "depth"),
        ({"base_filters": -1}, "base_filters"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_bad_options_are_clear_errors(options: dict[str, object], match: str) -> None:
    with pytest.raises(ConvscopeError, match=match):
        create_model("unet", **options)


def test_wrong_rank_input_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        create_model("unet", base_filters=2)(torch.rand(1, 16, 16))


def test_stardist_output_grid_for_any_input_size() -> None:
    """Any (H, W) gives ceil(H / grid) x ceil(W / grid) outputs; bad options are clear errors."""
    torch.manual_seed(0)
    model = create_model("stardist", grid=2, depth=2, base_filters=8, features=16, num_classes=9).eval()
    for h, w in ((64, 64), (37, 50), (9, 5)):
        assert model(torch.rand(1, 1, h, w)).shape == (1, 9, -(-h // 2), -(-w // 2))
    with pytest.raises(ConvscopeError, match="grid"):
        create_model("stardist", grid=3)
    with pytest.raises(ConvscopeError, match="n_rays"):
        create_model("stardist", num_classes=2)
