"""The course's image classifiers: dense networks and a small ConvNet for MNIST, VGG-like nets for RBC.

Architectures and parameter counts follow the course's Keras models: "valid" 3x3 convolutions, 2x2
max-pooling, dense heads. Every model outputs logits; a binary classifier has one output unit
(``num_classes=1``, sigmoid + BCE), a K-class one has K (softmax + cross-entropy).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from convscope.models.layers import Classifier, conv_block, dense_stack, flat_features
from convscope.models.registry import register_model

MNIST = (28, 28, 1)
RBC = (85, 85, 3)


def _conv_features(
    in_channels: int, blocks: Sequence[Sequence[int]], *, pool_last: bool, batch_norm: bool,
    dropouts: Sequence[float] | None = None,
) -> nn.Sequential:
    """VGG-style blocks: each a run of valid 3x3 conv+ReLU, then 2x2 max-pool (and dropout).

    A block's last ReLU runs after its pool (conv, [BN,] max-pool, ReLU): the same outputs and gradients as ReLU
    then pool (ReLU is monotonic, and where a window holds no positive value both give 0 and a zero gradient), on a
    quarter of the values. The module indices of the weights are those of the Keras order.
    """
    layers: list[nn.Module] = []
    for i, widths in enumerate(blocks):
        for width in widths:
            layers += conv_block(in_channels, width, batch_norm=batch_norm)
            in_channels = width
        if pool_last or i < len(blocks) - 1:
            layers.insert(len(layers) - 1, nn.MaxPool2d(2))
        if dropouts and dropouts[i] > 0:
            layers.append(nn.Dropout(dropouts[i]))
    return nn.Sequential(*layers)


def _dense_classifier(
    widths: Sequence[int], in_channels: int, num_classes: int, input_size: tuple[int, int],
    dropout: float, batch_norm: bool,
) -> nn.Module:
    in_features = in_channels * input_size[0] * input_size[1]
    head = dense_stack(in_features, widths, num_classes, dropouts=[dropout] * len(widths), batch_norm=batch_norm)
    return Classifier(nn.Identity(), head)


@register_model(tasks=("classification",), description="MNIST: flatten, Dense 10 softmax", default_input=MNIST)
def dense_10(
    *, in_channels: int = 1, num_classes: int = 10, input_size: tuple[int, int] = (28, 28),
    dropout: float = 0.0, batch_norm: bool = False,
) -> nn.Module:
    """Multinomial logistic regression on raw pixels (7,850 parameters at 28x28x1, 10 classes)."""
    return _dense_classifier([], in_channels, num_classes, input_size, dropout, batch_norm)


@register_model(tasks=("classification",), description="MNIST: Dense 10 relu, Dense 10 softmax", default_input=MNIST)
def dense_10_10(
    *, in_channels: int = 1, num_classes: int = 10, input_size: tuple[int, int] = (28, 28),
    dropout: float = 0.0, batch_norm: bool = False,
) -> nn.Module:
    """One hidden layer of 10 units (7,960 parameters at 28x28x1)."""
    return _dense_classifier([10], in_channels, num_classes, input_size, dropout, batch_norm)


@register_model(
    tasks=("classification",), description="MNIST: Dense 15, 15 relu, Dense 10 softmax", default_input=MNIST
)
def dense_15_15(
    *, in_channels: int = 1, num_classes: int = 10, input_size: tuple[int, int] = (28, 28),
    dropout: float = 0.0, batch_norm: bool = False,
) -> nn.Module:
    """Two hidden layers of 15 units (12,175 parameters at 28x28x1)."""
    return _dense_classifier([15, 15], in_channels, num_classes, input_size, dropout, batch_norm)


@register_model(
    tasks=("classification",), description="MNIST: 3 x Conv 16, 2 max-pools, Dense 15, Dense 10", default_input=MNIST
)
def mnist_cnn(
    *, in_channels: int = 1, num_classes: int = 10, input_size: tuple[int, int] = (28, 28),
    dropout: float = 0.0, batch_norm: bool = False,
) -> nn.Module:
    """The course's small ConvNet (7,135 parameters at 28x28x1, 10 classes)."""
    features = _conv_features(in_channels, [[16], [16], [16]], pool_last=False, batch_norm=batch_norm)
    n = flat_features(features, in_channels, input_size)
    return Classifier(features, dense_stack(n, [15], num_classes, dropouts=[dropout], batch_norm=batch_norm))


@register_model(
    tasks=("classification",), description="RBC: 2x32, 2x64, 2x128 convs, Dense 256, 128, 1", default_input=RBC
)
def vgg1(
    *, in_channels: int = 3, num_classes: int = 1, input_size: tuple[int, int] = (85, 85),
    dropout: float = 0.0, batch_norm: bool = False,
) -> nn.Module:
    """VGG-like net with two convs per block (1,925,921 parameters at 85x85x3, one sigmoid output)."""
    features = _conv_features(in_channels, [[32, 32], [64, 64], [128, 128]], pool_last=True, batch_norm=batch_norm)
    n = flat_features(features, in_channels, input_size)
    head = dense_stack(n, [256, 128], num_classes, dropouts=[dropout] * 2, batch_norm=batch_norm)
    return Classifier(features, head)


@register_model(
    tasks=("classification",), description="RBC: 32, 64, 128 convs, Dense 128, 64, 1", default_input=RBC
)
def vgg2(
    *, in_channels: int = 3, num_classes: int = 1, input_size: tuple[int, int] = (85, 85),
    dropout: float = 0.0, batch_norm: bool = False,
) -> nn.Module:
    """VGG-like net with one conv per block (1,150,273 parameters at 85x85x3)."""
    features = _conv_features(in_channels, [[32], [64], [128]], pool_last=True, batch_norm=batch_norm)
    n = flat_features(features, in_channels, input_size)
    head = dense_stack(n, [128, 64], num_classes, dropouts=[dropout] * 2, batch_norm=batch_norm)
    return Classifier(features, head)


@register_model(
    tasks=("classification",),
    description="RBC: vgg1 convs + dropout 0.2/0.3/0.4, Dense 256-128-64-32 + dropout, 1",
    default_input=RBC,
)
def vgg3(
    *, in_channels: int = 3, num_classes: int = 1, input_size: tuple[int, int] = (85, 85),
    batch_norm: bool = False,
    conv_dropout: tuple[float, float, float] = (0.2, 0.3, 0.4),
    dense_dropout: tuple[float, float, float, float] = (0.4, 0.3, 0.2, 0.1),
) -> nn.Module:
    """vgg1's convolutions without the last pool, regularised with dropout (6,753,057 parameters)."""
    features = _conv_features(
        in_channels, [[32, 32], [64, 64], [128, 128]], pool_last=False, batch_norm=batch_norm,
        dropouts=conv_dropout,
    )
    n = flat_features(features, in_channels, input_size)
    head = dense_stack(n, [256, 128, 64, 32], num_classes, dropouts=dense_dropout, batch_norm=batch_norm)
    return Classifier(features, head)
