"""The network an export contains: a trained convscope network followed by its task's output activations, so the
exported outputs are probabilities, distances and flows a user can read without convscope.

This module imports only torch: its source is copied into the architecture file of a bioimage.io package
(:mod:`convscope.export.architecture`), which must run where convscope is not installed.
"""

from __future__ import annotations

import torch
from torch import nn

#: One output tensor: raw channels [start, stop), an activation (identity, sigmoid, softmax, sigmoid_pair) and a
#: scale applied after it (see ``convscope.tasks.ExportedOutput``).
Head = tuple[int, int, str, float]


class ExportedNetwork(nn.Module):
    """``net`` with its raw output split into output tensors and activated.

    Parameters
    ----------
    net : nn.Module
        Maps (N, C, H, W) float32 to raw outputs (N, K, h, w) (dense tasks) or (N, K) (classifiers).
    heads : sequence of (int, int, str, float)
        Per output tensor: the raw channels ``[start, stop)``, the activation (``identity``, ``sigmoid``,
        ``softmax`` along the channels, ``sigmoid_pair``: one logit to ``(1 - p, p)``) and a factor applied after
        it.

    The state dict is ``net``'s with the prefix ``net.``. ``forward`` returns one tensor for one head, else a tuple
    in the order of ``heads``; every tensor keeps the batch axis and the spatial axes of the raw output.
    """

    def __init__(self, net: nn.Module, heads: list[Head] | tuple[Head, ...]) -> None:
        super().__init__()
        self.net = net
        self.heads = [(int(a), int(b), str(act), float(scale)) for a, b, act, scale in heads]
        unknown = {act for _, _, act, _ in self.heads} - {"identity", "sigmoid", "softmax", "sigmoid_pair"}
        if unknown:
            raise ValueError(f"unknown output activation {sorted(unknown)[0]!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        raw = self.net(x)
        outputs = []
        for start, stop, activation, scale in self.heads:
            z = raw[:, start:stop]
            if activation == "sigmoid":
                z = torch.sigmoid(z)
            elif activation == "softmax":
                z = torch.softmax(z, dim=1)
            elif activation == "sigmoid_pair":
                p = torch.sigmoid(z)
                z = torch.cat([1 - p, p], dim=1)
            outputs.append(z * scale if scale != 1.0 else z)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)
