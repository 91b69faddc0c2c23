"""The training step's phases: fused Adam keeps Adam's maths, the phase timer changes nothing it times."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from convscope.config import AugmentConfig, NormalizeConfig, TrainConfig
from convscope.datasets.base import ImageSet
from convscope.models import create_model
from convscope.tasks import ClassificationTask
from convscope.training.step import (
    PHASES,
    PhaseTimer,
    adam,
    add_batch_stats,
    make_fit_step,
    make_train_step,
)
from convscope.training.tensors import ShuffledBatches, TensorImages
from convscope.transforms import build_augmentation

CPU = torch.device("cpu")


def _images(n: int = 96, seed: int = 0) -> tuple[TensorImages, ClassificationTask]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8)
    y = rng.integers(0, 3, n).astype(np.int64)
    task = ClassificationTask(("a", "b", "c"))
    return TensorImages.from_set(ImageSet(x, y, task.class_names, ("",) * n), NormalizeConfig(), CPU), task


def _train(optimizer_for, *, steps: int = 30, timer: PhaseTimer | None = None,
           augment: bool = False) -> tuple[torch.nn.Module, list[float]]:
    """mnist_cnn trained ``steps`` batches of 16 from a fixed seed; its weights and per-step losses."""
    torch.manual_seed(0)
    data, task = _images()
    model = create_model("mnist_cnn", in_channels=1, num_classes=3).to(memory_format=torch.channels_last)
    optimizer = optimizer_for(model.parameters())
    aug = build_augmentation(AugmentConfig(flip_horizontal=True, brightness=0.1)) if augment else None
    step = make_train_step(model, model, task, optimizer, aug, TrainConfig(l2=1e-4), timer=timer)
    totals: dict = {}
    fit_step = make_fit_step(data, step, task, totals, channels_last=True, timer=timer)
    batches = ShuffledBatches(len(data), 16, seed=1)
    losses = []
    for epoch in range(steps // len(batches) + 1):
        batches.set_epoch(epoch)
        for index in batches:
            if len(losses) == steps:
                return model, losses
            losses.append(float(fit_step(index)))
    return model, losses


def test_fused_adam_is_adam() -> None:
    """Fused and per-parameter Adam train to the same weights (float rounding apart) and the same losses."""
    assert adam([torch.nn.Parameter(torch.zeros(2))], 1e-3, CPU).defaults["fused"] is True
    fused, fused_losses = _train(lambda p: adam(p, 1e-3, CPU))
    plain, plain_losses = _train(lambda p: torch.optim.Adam(p, lr=1e-3))
    np.testing.assert_allclose(fused_losses, plain_losses, rtol=1e-4, atol=1e-6)
    for (name, a), b in zip(fused.state_dict().items(), plain.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=name)
    # and the update is not a no-op: the weights moved from their start
    torch.manual_seed(0)
    start = create_model("mnist_cnn", in_channels=1, num_classes=3)
    assert not torch.allclose(start.features[0].weight, fused.features[0].weight)


def test_adam_state_round_trips_through_a_checkpoint() -> None:
    """A resumed fused Adam continues exactly as an uninterrupted one."""
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(5, 3))
    a = adam([w], 1e-2, CPU)
    for _ in range(3):
        a.zero_grad()
        (w**2).sum().backward()
        a.step()
    w2 = torch.nn.Parameter(w.detach().clone())
    b = adam([w2], 1e-2, CPU)
    saved = io.BytesIO()
    torch.save(a.state_dict(), saved)
    saved.seek(0)
    b.load_state_dict(torch.load(saved, weights_only=True))
    for opt, p in ((a, w), (b, w2)):
        opt.zero_grad()
        (p**2).sum().backward()
        opt.step()
    assert torch.equal(w, w2)


def test_the_timer_times_every_phase_and_changes_nothing() -> None:
    timer = PhaseTimer(CPU)
    timed, timed_losses = _train(lambda p: adam(p, 1e-3, CPU), steps=8, timer=timer, augment=True)
    untimed, untimed_losses = _train(lambda p: adam(p, 1e-3, CPU), steps=8, augment=True)
    assert timed_losses == untimed_losses
    assert all(torch.equal(a, b) for a, b in zip(timed.state_dict().values(), untimed.state_dict().values(),
                                                  strict=True))
    assert set(timer.seconds) == set(PHASES)
    assert all(timer.seconds[name] > 0 for name in PHASES), timer.seconds
    timer.reset()
    assert sum(timer.seconds.values()) == 0
    with pytest.raises(ValueError, match="unknown phase"):
        with timer.phase("lunch"):
            pass


def test_batch_stats_add_up_over_batches() -> None:
    task = ClassificationTask(("a", "b", "c"))
    logits = torch.tensor([[2.0, 0, 0], [0, 2.0, 0], [0, 0, 2.0], [2.0, 0, 0]])
    labels = torch.tensor([0, 1, 0, 0])
    totals: dict = {}
    add_batch_stats(totals, task, task.loss(logits[:2], labels[:2]), logits[:2], labels[:2])
    add_batch_stats(totals, task, task.loss(logits[2:], labels[2:]), logits[2:], labels[2:])
    assert totals["n"] == 4 and int(totals["correct"]) == 3
    torch.testing.assert_close(totals["loss"], task.loss(logits, labels) * 4)


def _conv_dtypes(model: torch.nn.Module) -> list[torch.dtype]:
    """Collects the output dtype of every convolution the model runs."""
    seen: list[torch.dtype] = []
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    return seen


@pytest.mark.parametrize("precision, conv_dtype", [("float32", torch.float32), ("bfloat16", torch.bfloat16)])
def test_precision_sets_the_convolutions_dtype_and_keeps_float32_weights(precision: str,
                                                                           conv_dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    data, task = _images(32)
    model = create_model("mnist_cnn", in_channels=1, num_classes=3).to(memory_format=torch.channels_last)
    start = [p.detach().clone() for p in model.parameters()]
    seen = _conv_dtypes(model)
    step = make_train_step(model, model, task, adam(model.parameters(), 1e-3, CPU), None,
                           TrainConfig(precision=precision))
    x, y = data.batch(torch.arange(16), channels_last=True)
    loss, logits, _ = step(x, y)
    assert seen == [conv_dtype] * 3
    assert loss.dtype == logits.dtype == torch.float32 and torch.isfinite(loss)
    for before, after in zip(start, model.parameters(), strict=True):
        assert after.dtype == torch.float32 and after.grad is not None and after.grad.dtype == torch.float32
        assert not torch.equal(before, after)  # every weight was updated


def test_bfloat16_training_follows_float32() -> None:
    """bfloat16 keeps about 3 significant digits: the loss curve of the same run stays close to the float32 one,
    and both learn."""
    def losses(precision: str) -> list[float]:
        torch.manual_seed(0)
        data, task = _images(96)
        model = create_model("mnist_cnn", in_channels=1, num_classes=3).to(memory_format=torch.channels_last)
        step = make_train_step(model, model, task, adam(model.parameters(), 1e-2, CPU), None,
                               TrainConfig(precision=precision))
        x, y = data.batch(torch.arange(8), channels_last=True)  # memorising 8 images
        return [float(step(x, y)[0]) for _ in range(60)]

    full, half = losses("float32"), losses("bfloat16")
    assert full[-1] < 0.5 * full[0] and half[-1] < 0.5 * half[0]
    np.testing.assert_allclose(half[:5], full[:5], rtol=0.02)


def test_unknown_precision_is_refused() -> None:
    from pydantic import ValidationError

    from convscope.training.step import autocast

    with pytest.raises(ValidationError, match="bfloat16"):
        TrainConfig(precision="float16")
    with pytest.raises(ValueError, match="unknown precision"):
        autocast("float16", CPU)
