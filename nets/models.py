"""The networks psum studies: LeNet5, AlexNet (CIFAR variant) and ResNet18 (CIFAR and ImageNet).

Written here from the papers (torchvision is not importable beside this CPU torch), with
``nn.Conv2d`` and ``nn.Linear`` as the only multiply-accumulate layers, because those are the
layers :func:`psum.golden.emulation.layers.emulate` replaces with bit-exact MAC arithmetic. Everything else
(ReLU, pooling, batch norm, dropout, residual additions) stays in float32.

Every model takes a ``width`` multiplier that scales all channel counts and hidden sizes (1.0 = the
published network). The built-in digits default uses narrower nets (see :data:`DEFAULT_WIDTH`), so
checkpoints stay small and train in seconds on a laptop CPU; note that narrower layers also mean
shorter dot products, which is exactly what accumulator sizing depends on, so the minimum
accumulator found for a narrow net is a lower bound for the full-width one.

==================  =======  ===========================================================  ==========
name                input    layers                                                       params w=1
==================  =======  ===========================================================  ==========
lenet5              C×32×32  conv5x5 6, maxpool, conv5x5 16, maxpool, fc 120, fc 84, fc K   61.7 k
alexnet             3×32×32  5 conv3x3 (64,192,384,256,256), 3 maxpool, fc 4096, 4096, K  23.3 M
resnet18            3×32×32  conv3x3 stem (no maxpool), 4 stages × 2 basic blocks, fc K    11.2 M
resnet18-imagenet   3×224²   conv7x7/2 stem + maxpool, 4 stages × 2 basic blocks, fc K     11.7 M*
==================  =======  ===========================================================  ==========

Parameter counts for K=10 classes (* K=1000).
"""

from __future__ import annotations

import torch
from torch import nn

from psum._util import check_int

__all__ = ["MODELS", "DEFAULT_WIDTH", "LeNet5", "AlexNet", "ResNet18", "BasicBlock", "build_model",
           "default_width", "mac_layers"]

MODELS = ("lenet5", "alexnet", "resnet18", "resnet18-imagenet")

# Width used when none is given, per (model, dataset); anything not listed uses 1.0. Chosen so that
# the digits checkpoints stay small (< 2 MB for the committed ones) and train in seconds.
DEFAULT_WIDTH = {
    ("alexnet", "digits"): 0.125,
    ("resnet18", "digits"): 0.125,
}


def default_width(model: str, dataset: str) -> float:
    """The width multiplier used for ``model`` on ``dataset`` when none is given."""
    return DEFAULT_WIDTH.get((model, dataset), 1.0)


def _scaled(n: int, width: float) -> int:
    return max(1, int(round(n * width)))


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al. 1998) with ReLU and max pooling, for 32×32 inputs.

    Parameters
    ----------
    num_classes : int
        Output classes.
    in_channels : int
        Input channels (1 for digits, 3 for CIFAR).
    width : float
        Channel and hidden-size multiplier (1.0: 6, 16, 120, 84).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, *, width: float = 1.0):
        super().__init__()
        c1, c2, h1, h2 = (_scaled(n, width) for n in (6, 16, 120, 84))
        self.conv1 = nn.Conv2d(in_channels, c1, 5)
        self.conv2 = nn.Conv2d(c1, c2, 5)
        self.fc1 = nn.Linear(c2 * 5 * 5, h1)
        self.fc2 = nn.Linear(h1, h2)
        self.fc3 = nn.Linear(h2, num_classes)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        x = self.pool(self.relu(self.conv1(x)))  # 32 -> 28 -> 14
        x = self.pool(self.relu(self.conv2(x)))  # 14 -> 10 -> 5
        x = torch.flatten(x, 1)
        x = self.relu(self.fc1(x))
        x = self.relu(self.fc2(x))
        return self.fc3(x)


class AlexNet(nn.Module):
    """AlexNet's CIFAR variant: five 3×3 convolutions and three fully connected layers.

    The layout of the common CIFAR-10 ports of AlexNet (Krizhevsky et al. 2012): conv 64 (stride 2),
    pool, conv 192, pool, conv 384, conv 256, conv 256, pool, then dropout + fc 4096, dropout +
    fc 4096, fc K. With 32×32 inputs the last feature map is 2×2.

    Parameters
    ----------
    num_classes, in_channels : int
        Output classes and input channels.
    width : float
        Multiplier of every channel count and of the hidden size 4096.
    batch_norm : bool
        Insert ``BatchNorm2d`` after each convolution (not in the original).
    dropout : float
        Dropout probability before the two hidden fully connected layers.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, *, width: float = 1.0,
                 batch_norm: bool = False, dropout: float = 0.5):
        super().__init__()
        c = [_scaled(n, width) for n in (64, 192, 384, 256, 256)]
        hidden = _scaled(4096, width)

        def conv(cin, cout, stride=1):
            layers = [nn.Conv2d(cin, cout, 3, stride=stride, padding=1)]
            if batch_norm:
                layers.append(nn.BatchNorm2d(cout))
            return layers + [nn.ReLU(inplace=True)]

        self.features = nn.Sequential(
            *conv(in_channels, c[0], stride=2), nn.MaxPool2d(2),  # 32 -> 16 -> 8
            *conv(c[0], c[1]), nn.MaxPool2d(2),  # 8 -> 4
            *conv(c[1], c[2]),
            *conv(c[2], c[3]),
            *conv(c[3], c[4]), nn.MaxPool2d(2),  # 4 -> 2
        )
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(c[4] * 2 * 2, hidden), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


class BasicBlock(nn.Module):
    """ResNet basic block: two 3×3 conv + BN, identity or 1×1 conv + BN shortcut (He et al. 2016)."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """ResNet-18: a stem, four stages of two basic blocks (64, 128, 256, 512 channels), fc.

    Parameters
    ----------
    num_classes, in_channels : int
        Output classes and input channels.
    width : float
        Channel multiplier (1.0: 64..512).
    stem : {"cifar", "imagenet"}
        ``"cifar"``: 3×3 stride-1 convolution and no max pool (32×32 inputs); ``"imagenet"``: 7×7
        stride-2 convolution and a 3×3 stride-2 max pool (224×224 inputs).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, *, width: float = 1.0,
                 stem: str = "cifar"):
        super().__init__()
        if stem not in ("cifar", "imagenet"):
            raise ValueError(f"stem must be 'cifar' or 'imagenet', not {stem!r}")
        chans = [_scaled(n, width) for n in (64, 128, 256, 512)]
        if stem == "cifar":
            self.conv1 = nn.Conv2d(in_channels, chans[0], 3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(in_channels, chans[0], 7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(chans[0])
        self.relu = nn.ReLU(inplace=True)
        cin = chans[0]
        for i, (cout, stride) in enumerate(zip(chans, (1, 2, 2, 2)), start=1):
            setattr(self, f"layer{i}", nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout)))
            cin = cout
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def build_model(name: str, num_classes: int, in_channels: int, *, width: float = 1.0,
                **options) -> nn.Module:
    """Construct a model by name, with freshly initialised weights.

    Parameters
    ----------
    name : {"lenet5", "alexnet", "resnet18", "resnet18-imagenet"}
    num_classes : int
        Output classes, at least 2.
    in_channels : int
        Input channels, at least 1.
    width : float
        Channel multiplier, greater than 0.
    **options
        Model-specific options (``batch_norm``, ``dropout`` for AlexNet).

    Raises
    ------
    ValueError
        Unknown name or invalid size.
    """
    if name not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}, not {name!r}")
    num_classes = check_int("num_classes", num_classes, 2)
    in_channels = check_int("in_channels", in_channels, 1)
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width <= 16:
        raise ValueError(f"width must be a number in (0, 16], not {width!r}")
    if name == "lenet5":
        return LeNet5(num_classes, in_channels, width=width, **options)
    if name == "alexnet":
        return AlexNet(num_classes, in_channels, width=width, **options)
    return ResNet18(num_classes, in_channels, width=width,
                    stem="imagenet" if name == "resnet18-imagenet" else "cifar", **options)


def mac_layers(model: nn.Module) -> list[str]:
    """Names of the ``Conv2d`` and ``Linear`` layers, in definition order (the per-layer sweep's keys)."""
    return [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
