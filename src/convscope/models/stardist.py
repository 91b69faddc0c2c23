"""StarDist-style network for star-convex instances (Schmidt et al., MICCAI 2018), on our U-Net.

A 3x3 convolution (+ batch norm) + ReLU at full resolution, ``grid x grid`` max-pooling (StarDist's output grid:
the prediction is made at every ``grid``-th pixel), a U-Net, a 3x3 convolution with ``features`` filters + ReLU
(StarDist's ``net_conv_after_unet``), then two 1x1 heads: one object-probability logit and ``n_rays`` ray
distances in pixels (linear, as StarDist). The output stacks them: channel 0 is the probability logit,
channels ``1 .. n_rays`` the distances.

Output pixel ``(i, j)`` belongs to input pixel ``(i * grid, j * grid)`` (as :func:`convscope.instances.star_dist`
with ``grid``); inputs of any size are padded at the bottom and right to a multiple of ``grid * 2**depth`` and
the output is cropped to ``(ceil(H / grid), ceil(W / grid))``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from convscope.errors import ConvscopeError
from convscope.models.layers import conv_block
from convscope.models.registry import register_model
from convscope.models.unet import UNet, check_options


class StarDistNet(nn.Module):
    """Input (N, C, H, W) float32; output (N, 1 + n_rays, ceil(H / grid), ceil(W / grid)) float32."""

    def __init__(self, *, in_channels: int, n_rays: int, grid: int, depth: int, base_filters: int,
                 features: int, batch_norm: bool, dropout: float) -> None:
        super().__init__()
        self.n_rays, self.grid = n_rays, grid
        stem: list[nn.Module] = list(conv_block(in_channels, base_filters, padding=1, batch_norm=batch_norm))
        if grid > 1:  # pool before the ReLU: the same values on 1 / grid**2 of them (ReLU is monotonic)
            stem.insert(len(stem) - 1, nn.MaxPool2d(grid))
        self.stem = nn.Sequential(*stem)
        self.unet = UNet(in_channels=base_filters, num_classes=None, depth=depth, base_filters=base_filters,
                         batch_norm=batch_norm, dropout=dropout, upsampling="transpose")
        self.neck = nn.Sequential(nn.Conv2d(base_filters, features, kernel_size=3, padding=1), nn.ReLU(inplace=True))
        self.prob = nn.Conv2d(features, 1, kernel_size=1)
        self.dist = nn.Conv2d(features, n_rays, kernel_size=1)

    @property
    def size_multiple(self) -> int:
        """Input sizes that are multiples of this number are not padded."""
        return self.grid * self.unet.size_multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"StarDistNet expects (N, C, H, W) input, got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        m = self.size_multiple
        ph, pw = -h % m, -w % m
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        z = self.neck(self.unet.features(self.stem(x)))
        out = torch.cat([self.prob(z), self.dist(z)], dim=1)
        return out[..., : -(-h // self.grid), : -(-w // self.grid)]


@register_model(
    tasks=("stardist",),
    description="StarDist: U-Net depth 3, 32-256 filters, batch norm, grid 2; object probability + 32 ray distances",
    default_input=(256, 256, 1),
)
def stardist(
    *, in_channels: int = 1, num_classes: int = 33, grid: int = 2, depth: int = 3, base_filters: int = 32,
    features: int = 128, batch_norm: bool = True, dropout: float = 0.0, input_size: tuple[int, int] | None = None,
) -> nn.Module:
    """StarDist network (1,976,929 trainable parameters at the defaults).

    Parameters
    ----------
    in_channels : int
        Image channels C.
    num_classes : int
        Output channels: 1 probability logit + ``n_rays`` distances (33 for 32 rays); set from the recipe's
        ``stardist.n_rays``.
    grid : int
        Output subsampling (1, 2, 4 or 8): the prediction is made at every ``grid``-th pixel in each direction.
    depth, base_filters, batch_norm, dropout
        Of the U-Net (see :func:`convscope.models.unet.unet`); filters from ``base_filters`` to
        ``base_filters * 2**depth``.
    features : int
        Filters of the 3x3 convolution between the U-Net and the heads.
    input_size : tuple of int, optional
        Accepted for a uniform factory signature; any (H, W) works.

    Returns
    -------
    StarDistNet
    """
    del input_size
    if int(num_classes) != num_classes or num_classes < 4:
        raise ConvscopeError(f"stardist needs 1 + n_rays outputs with n_rays >= 3, got {num_classes!r}")
    if grid not in (1, 2, 4, 8):
        raise ConvscopeError(f"stardist option 'grid' must be 1, 2, 4 or 8, got {grid!r}")
    check_options("stardist", dropout=dropout, depth=depth, base_filters=base_filters, features=features)
    return StarDistNet(in_channels=int(in_channels), n_rays=int(num_classes) - 1, grid=int(grid), depth=int(depth),
                       base_filters=int(base_filters), features=int(features), batch_norm=bool(batch_norm),
                       dropout=float(dropout))
