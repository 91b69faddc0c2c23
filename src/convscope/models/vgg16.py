"""VGG16 transfer learning and fine-tuning for small crops (the course's RBC exercise).

The convolutional base has the layout of torchvision's ``vgg16().features`` so that the published
ImageNet checkpoint maps onto it key by key. Inputs are images scaled to [0, 1]; the model applies the
ImageNet mean/std normalisation itself (a fixed buffer, not a parameter).
"""

from __future__ import annotations

import torch
from torch import nn

from convscope.models.layers import Classifier, dense_stack, flat_features
from convscope.models.registry import register_model

# torchvision's VGG16 configuration: conv widths, "M" = 2x2 max-pool.
_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Index in ``features`` of the first layer of block 5 (conv5_1).
BLOCK5_START = 24


class ImageNetNormalize(nn.Module):
    """(x - mean) / std with ImageNet statistics, for RGB input in [0, 1]. Grey input is broadcast."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def vgg16_features() -> nn.Sequential:
    """The 13-conv VGG16 base with "same" padding, indexed exactly as torchvision's ``features``."""
    layers: list[nn.Module] = []
    in_channels = 3
    for item in _VGG16:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(in_channels, int(item), 3, padding=1), nn.ReLU(inplace=True)]
            in_channels = int(item)
    return nn.Sequential(*layers)


class VGG16Classifier(Classifier):
    """VGG16 base + dense head; ``trainable_from`` is the first ``features`` index left trainable."""

    def __init__(self, head_widths: tuple[int, ...], num_classes: int, input_size: tuple[int, int],
                 dropout: float, trainable_from: int | None) -> None:
        base = vgg16_features()
        n = flat_features(base, 3, input_size)
        super().__init__(base, dense_stack(n, head_widths, num_classes, dropouts=[dropout] * len(head_widths)))
        self.normalize = ImageNetNormalize()
        for i, layer in enumerate(self.features):
            layer.requires_grad_(trainable_from is not None and i >= trainable_from)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return super().forward(self.normalize(x))


@register_model(
    tasks=("classification",),
    description="VGG16 conv base frozen (ImageNet weights: weights=imagenet) + Dense 256, 128, 1",
    default_input=(85, 85, 3),
)
def vgg16_transfer(
    *, in_channels: int = 3, num_classes: int = 1, input_size: tuple[int, int] = (85, 85), dropout: float = 0.5,
) -> nn.Module:
    """Transfer learning: only the dense head trains (557,569 trainable, 14,714,688 frozen at 85x85x3)."""
    _check_rgb(in_channels)
    return VGG16Classifier((256, 128), num_classes, input_size, dropout, trainable_from=None)


@register_model(
    tasks=("classification",),
    description="VGG16 with block 5 trainable (fine-tuning) + Dense 256, 128, 1",
    default_input=(85, 85, 3),
)
def vgg16_finetune(
    *, in_channels: int = 3, num_classes: int = 1, input_size: tuple[int, int] = (85, 85), dropout: float = 0.5,
) -> nn.Module:
    """Fine-tuning: block 5 and the head train (7,636,993 trainable, 7,635,264 frozen at 85x85x3)."""
    _check_rgb(in_channels)
    return VGG16Classifier((256, 128), num_classes, input_size, dropout, trainable_from=BLOCK5_START)


def _check_rgb(in_channels: int) -> None:
    if in_channels not in (1, 3):
        raise ValueError(f"VGG16 takes RGB (or grey, broadcast) images, not {in_channels} channels")
