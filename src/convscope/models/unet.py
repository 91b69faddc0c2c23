"""U-Net for semantic segmentation (Ronneberger et al., 2015), with "same" convolutions.

Each level of the contracting path is two 3x3 convolutions (+ batch norm) + ReLU followed by 2x2
max-pooling; the number of filters doubles per level, from ``base_filters`` to ``base_filters * 2**depth``
at the bottleneck (where the optional dropout sits). The expanding path up-samples by 2 (a 2x2 transposed
convolution, or bilinear interpolation followed by a 3x3 convolution), halving the channels, concatenates
the skip connection of the same level and applies two 3x3 convolutions (+ batch norm) + ReLU. A 1x1
convolution gives ``num_classes`` logits per pixel: 1 for binary foreground vs background (sigmoid + BCE),
K for K classes (softmax + cross-entropy).

Because the convolutions are padded ("same"), the output has the input's height and width. The network
needs sizes divisible by ``2**depth``; any other size is padded inside ``forward`` (reflect padding, split
evenly between the two sides, replicate padding for images too small to reflect) and the logits are cropped
back, so every (H, W) works.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from convscope.errors import ConvscopeError
from convscope.models.layers import conv_block
from convscope.models.registry import register_model

UPSAMPLING_MODES = ("transpose", "bilinear")


def double_conv(in_channels: int, out_channels: int, *, batch_norm: bool) -> nn.Sequential:
    """Two 3x3 "same" convolutions, each (+ batch norm) + ReLU."""
    return nn.Sequential(
        *conv_block(in_channels, out_channels, padding=1, batch_norm=batch_norm),
        *conv_block(out_channels, out_channels, padding=1, batch_norm=batch_norm),
    )


def up_sampler(in_channels: int, out_channels: int, *, mode: str) -> nn.Module:
    """Double the height and width: a 2x2 transposed convolution, or bilinear interpolation + a 3x3 conv."""
    if mode == "transpose":
        return nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
    )


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad the last two axes of ``x`` up to multiples of ``multiple``.

    Parameters
    ----------
    x : Tensor, shape (N, C, H, W)
    multiple : int

    Returns
    -------
    padded : Tensor, shape (N, C, H', W')
        ``x`` itself when H and W are already multiples; otherwise reflect-padded (replicate-padded when a
        side would need more padding than reflection allows), the padding split evenly between both sides.
    offset : tuple of int
        (top, left): where the original image starts inside ``padded``.
    """
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph == 0 and pw == 0:
        return x, (0, 0)
    top, left = ph // 2, pw // 2
    pad = (left, pw - left, top, ph - top)
    mode = "reflect" if max(pad[0], pad[1]) < w and max(pad[2], pad[3]) < h else "replicate"
    return F.pad(x, pad, mode=mode), (top, left)


class UNet(nn.Module):
    """U-Net: input (N, in_channels, H, W) float32, output (N, num_classes, H, W) logits.

    See the module docstring for the architecture and :func:`unet` for the options.
    """

    def __init__(
        self, *, in_channels: int, num_classes: int | None, depth: int, base_filters: int, batch_norm: bool,
        dropout: float, upsampling: str,
    ) -> None:
        super().__init__()
        self.depth = depth
        widths = [base_filters * 2**i for i in range(depth + 1)]
        self.encoders = nn.ModuleList()
        self.pools = nn.ModuleList()
        channels = in_channels
        for width in widths[:-1]:
            self.encoders.append(double_conv(channels, width, batch_norm=batch_norm))
            self.pools.append(nn.MaxPool2d(2))
            channels = width
        bottleneck: list[nn.Module] = [double_conv(channels, widths[-1], batch_norm=batch_norm)]
        if dropout > 0:
            bottleneck.append(nn.Dropout(dropout))
        self.bottleneck = nn.Sequential(*bottleneck)
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for width in reversed(widths[:-1]):
            self.ups.append(up_sampler(2 * width, width, mode=upsampling))
            self.decoders.append(double_conv(2 * width, width, batch_norm=batch_norm))
        # num_classes=None: no head; the network returns the last decoder features (base_filters channels)
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1) if num_classes else nn.Identity()

    @property
    def size_multiple(self) -> int:
        """Input sizes that are multiples of this number are not padded."""
        return 2**self.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"UNet expects (N, C, H, W) input, got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        x, (top, left) = pad_to_multiple(x, self.size_multiple)
        return self.head(self.features(x))[..., top : top + h, left : left + w]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Last decoder features (N, base_filters, H, W) of ``x`` (N, C, H, W), H and W multiples of
        :attr:`size_multiple` (no padding here)."""
        skips = []
        for encode, pool in zip(self.encoders, self.pools, strict=True):
            x = encode(x)
            skips.append(x)
            x = pool(x)
        x = self.bottleneck(x)
        for up, decode, skip in zip(self.ups, self.decoders, reversed(skips), strict=True):
            x = decode(torch.cat([skip, up(x)], dim=1))
        return x


def check_options(model: str, *, dropout: float, **counts: int) -> None:
    """Raise a :class:`ConvscopeError` naming ``model``'s option unless every ``counts`` value is a positive
    integer and ``dropout`` is in [0, 1)."""
    for name, value in counts.items():
        if int(value) != value or value < 1:
            raise ConvscopeError(f"{model} option '{name}' must be a positive integer, got {value!r}")
    if not 0.0 <= dropout < 1.0:
        raise ConvscopeError(f"{model} option 'dropout' must be in [0, 1), got {dropout!r}")


def _check_options(in_channels: int, num_classes: int, depth: int, base_filters: int, dropout: float,
                   upsampling: str) -> None:
    check_options("unet", dropout=dropout, in_channels=in_channels, num_classes=num_classes, depth=depth,
                  base_filters=base_filters)
    if upsampling not in UPSAMPLING_MODES:
        raise ConvscopeError(
            f"unet option 'upsampling' must be one of {', '.join(UPSAMPLING_MODES)}; got {upsampling!r}"
        )


@register_model(
    tasks=("semantic", "flows"),
    description="U-Net: depth 4, 32-512 filters, batch norm, transposed-conv up-sampling; per-pixel logits",
    default_input=(256, 256, 1),
)
def unet(
    *, in_channels: int = 1, num_classes: int = 1, depth: int = 4, base_filters: int = 32,
    batch_norm: bool = True, dropout: float = 0.0, upsampling: str = "transpose",
    input_size: tuple[int, int] | None = None,
) -> nn.Module:
    """U-Net for semantic segmentation (7,762,465 trainable parameters at the defaults).

    Parameters
    ----------
    in_channels : int
        Image channels C.
    num_classes : int
        Output channels: 1 = one binary foreground logit, K = logits of K classes.
    depth : int
        Number of 2x2 max-pooling steps; inputs are padded internally to multiples of ``2**depth``.
    base_filters : int
        Filters of the first level, doubled at each level down to ``base_filters * 2**depth``.
    batch_norm : bool
        Batch normalisation after every 3x3 convolution of the conv blocks (which then have no bias).
    dropout : float
        Dropout rate after the bottleneck (0 = none).
    upsampling : {"transpose", "bilinear"}
        2x2 transposed convolution, or bilinear interpolation followed by a 3x3 convolution.
    input_size : tuple of int, optional
        Accepted for a uniform factory signature; the U-Net works for any (H, W) and ignores it.

    Returns
    -------
    UNet
        Maps (N, in_channels, H, W) float32 to (N, num_classes, H, W) logits.
    """
    del input_size  # fully convolutional: any size works
    _check_options(in_channels, num_classes, depth, base_filters, dropout, upsampling)
    return UNet(
        in_channels=int(in_channels), num_classes=int(num_classes), depth=int(depth),
        base_filters=int(base_filters), batch_norm=bool(batch_norm), dropout=float(dropout), upsampling=upsampling,
    )
