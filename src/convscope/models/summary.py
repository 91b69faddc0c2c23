"""Layer table with output shapes and parameter counts (as Keras' ``model.summary()``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class LayerRow:
    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int


@dataclass(frozen=True)
class ModelSummary:
    """Per-layer rows and totals. ``non_trainable`` counts frozen parameters and batch-norm running
    statistics, as Keras does."""

    rows: tuple[LayerRow, ...]
    trainable: int
    non_trainable: int

    def table(self) -> str:
        """The summary as a fixed-width text table."""
        lines = [f"{'layer':<28}{'type':<14}{'output shape':<22}{'params':>12}", "-" * 76]
        for r in self.rows:
            shape = "x".join(str(s) for s in r.output_shape)
            lines.append(f"{r.name:<28}{r.kind:<14}{shape:<22}{r.params:>12,}")
        lines += ["-" * 76, f"trainable params:     {self.trainable:>14,}",
                  f"non-trainable params: {self.non_trainable:>14,}",
                  f"total params:         {self.trainable + self.non_trainable:>14,}"]
        return "\n".join(lines)


def count_params(model: nn.Module) -> tuple[int, int]:
    """(trainable, non-trainable) parameter counts; non-trainable includes batch-norm running stats."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    stats = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var")))
    return trainable, frozen + stats


def summarize(model: nn.Module, input_shape: tuple[int, int, int]) -> ModelSummary:
    """Run one zero image of ``input_shape`` (H, W, C) through ``model`` and tabulate its leaf layers."""
    rows: list[LayerRow] = []
    hooks = []

    def hook(name: str):
        def fn(module: nn.Module, _inp: object, out: torch.Tensor) -> None:
            params = sum(p.numel() for p in module.parameters(recurse=False))
            rows.append(LayerRow(name, type(module).__name__, tuple(out.shape[1:]), params))
        return fn

    for name, module in model.named_modules():
        if not list(module.children()):
            hooks.append(module.register_forward_hook(hook(name)))
    was_training = model.training
    model.eval()
    h, w, c = input_shape
    try:
        with torch.no_grad():
            model(torch.zeros(1, c, h, w))
    finally:
        for handle in hooks:
            handle.remove()
        model.train(was_training)
    trainable, non_trainable = count_params(model)
    return ModelSummary(tuple(rows), trainable, non_trainable)
