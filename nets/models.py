"""The networks psum studies: LeNet5, AlexNet (CIFAR variant), ResNet18 (CIFAR and ImageNet) and a
small vision transformer.

Written here from the papers (torchvision is not importable beside this CPU torch), with
``nn.Conv2d`` and ``nn.Linear`` as the only multiply-accumulate layers of the CNNs, because those
are the layers :func:`psum.golden.emulation.layers.emulate` replaces with bit-exact MAC arithmetic.
Everything else (ReLU, pooling, batch norm, dropout, residual additions) stays in float32. The
vision transformer adds the two attention products, written as plain ``torch.matmul`` calls on two
activations (see :class:`Attention`); softmax, layer norm and GELU stay float.

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
vit                 C×32×32  8x8 patches (16 tokens + class token), dim 64, 4 blocks ×       0.15 M**
                             (4-head self-attention, MLP 128), layer norm, fc K
==================  =======  ===========================================================  ==========

Parameter counts for K=10 classes (* K=1000; ** C=3).
"""

from __future__ import annotations

import torch
from torch import nn

from psum._util import check_int

__all__ = ["MODELS", "DEFAULT_WIDTH", "LeNet5", "AlexNet", "ResNet18", "BasicBlock", "VisionTransformer",
           "PatchEmbedding", "Attention", "Mlp", "TransformerBlock", "build_model", "default_width",
           "mac_layers"]

MODELS = ("lenet5", "alexnet", "resnet18", "resnet18-imagenet", "vit")

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


class PatchEmbedding(nn.Module):
    """Non-overlapping ``patch``×``patch`` patches, each projected linearly to ``dim`` (ViT's embedding).

    A ``Conv2d`` with kernel = stride = ``patch`` is exactly a ``Linear`` on each flattened patch
    (Dosovitskiy et al. 2021, eq. 1), and the form emulation handles today: dot products of length
    ``in_channels·patch²`` in (c, kh, kw) order.

    Parameters
    ----------
    in_channels, dim, patch : int
        Input channels, embedding width and patch side (pixels).

    Shapes: ``(B, C, H, W)`` in, ``(B, (H/patch)·(W/patch), dim)`` out (tokens in row-major order).
    """

    def __init__(self, in_channels: int, dim: int, patch: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with explicit matmuls (Vaswani et al. 2017, eq. 1; timm's layout).

    ``softmax(Q Kᵀ / √d) V`` per head, with ``Q, K, V`` from one packed ``Linear`` (``qkv``) and an
    output projection ``proj``. Written with two ``torch.matmul`` calls on activations rather than
    ``nn.MultiheadAttention`` or ``F.scaled_dot_product_attention``: those may take fused kernels
    (``torch._native_multi_head_attention`` in eval mode, flash/efficient attention) that a
    function-level interceptor cannot split into their MACs.

    MAC-bearing ops per image (T tokens, d = dim / heads): ``qkv`` (T·dim·3dim), ``Q Kᵀ``
    (heads·T·T·d, dot products of length d), ``A V`` (heads·T·d·T, dot products of length T),
    ``proj`` (T·dim·dim). The softmax stays float.

    Parameters
    ----------
    dim : int
        Token width, a multiple of ``heads``.
    heads : int
        Attention heads.
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        # Why scale q (timm's order) rather than the scores: with d = 16 the factor is 1/4, a power of
        # two, so q·scale is exact in every float format and the QKᵀ operands carry the final scale.
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, t, dim = x.shape
        qkv = self.qkv(x).reshape(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, heads, T, d)
        scores = torch.matmul(q * self.scale, k.transpose(-2, -1))  # (B, heads, T, T): MACs
        attn = scores.softmax(dim=-1)  # float
        out = torch.matmul(attn, v)  # (B, heads, T, d): MACs
        return self.proj(out.transpose(1, 2).reshape(b, t, dim))


class Mlp(nn.Module):
    """The transformer's position-wise MLP: ``fc2(GELU(fc1(x)))`` (GELU exact, erf form)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class TransformerBlock(nn.Module):
    """Pre-norm transformer encoder block: ``x + attn(LN(x))``, then ``x + mlp(LN(x))`` (ViT, eq. 2-3)."""

    def __init__(self, dim: int, heads: int, hidden: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, hidden)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """A small vision transformer (ViT, Dosovitskiy et al. 2021) for 32×32 inputs.

    Patch embedding (:class:`PatchEmbedding`), a learned class token and learned position
    embeddings, ``depth`` pre-norm blocks (:class:`TransformerBlock`), a final layer norm and a
    linear head on the class token. Module names follow timm's ``VisionTransformer``
    (``patch_embed.proj``, ``blocks.<i>.attn.qkv``, ``blocks.<i>.attn.proj``, ``blocks.<i>.mlp.fc1``,
    ``blocks.<i>.mlp.fc2``, ``head``), so ``blocks.1.*`` selects one block and ``*.attn.*`` the
    attention projections.

    Defaults (width 1): 8×8 patches of the 32×32 digits (each patch is a 2×2 block of the original
    8×8 image: 16 tokens + the class token), dim 64, 4 blocks, 4 heads of width 16, MLP hidden 128;
    0.15 M parameters for 3 input channels and 10 classes. Much smaller than ViT-Ti (dim 192, 12
    blocks): sized for 1,437 training images, so its dot products are short (192 in the patch
    embedding, 64 / 128 in the projections, 16 in ``Q Kᵀ``, 17 in ``A V``).

    Parameters
    ----------
    num_classes, in_channels : int
        Output classes and input channels.
    width : float
        Multiplier of the token width (rounded to a multiple of ``heads``) and the MLP hidden size.
    image_size : int
        Input side in pixels (a multiple of ``patch``).
    patch : int
        Patch side in pixels.
    dim, depth, heads, mlp_hidden : int
        Token width (at width 1), blocks, heads, MLP hidden size (at width 1).

    Raises
    ------
    ValueError
        ``image_size`` not a multiple of ``patch``.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, *, width: float = 1.0, image_size: int = 32,
                 patch: int = 8, dim: int = 64, depth: int = 4, heads: int = 4, mlp_hidden: int = 128):
        super().__init__()
        image_size = check_int("image_size", image_size, 1)
        patch = check_int("patch", patch, 1)
        depth = check_int("depth", depth, 1)
        heads = check_int("heads", heads, 1)
        if image_size % patch:
            raise ValueError(f"image_size must be a multiple of patch ({patch}), not {image_size}")
        dim = heads * max(1, int(round(check_int("dim", dim, 1) * width / heads)))
        hidden = _scaled(check_int("mlp_hidden", mlp_hidden, 1), width)
        self.image_size = image_size
        tokens = (image_size // patch) ** 2
        self.patch_embed = PatchEmbedding(in_channels, dim, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens + 1, dim))
        self.blocks = nn.Sequential(*(TransformerBlock(dim, heads, hidden) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        # ViT's initialisation (timm): truncated normal, std 0.02, for the embeddings.
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def forward(self, x):
        # Why the isinstance: under torch.fx tracing (QAT's reader) x is a Proxy, whose shape cannot
        # steer Python control flow; the check is for real tensors only.
        if isinstance(x, torch.Tensor) and x.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(f"vit expects {self.image_size}×{self.image_size} images, not "
                             f"{x.shape[-2]}×{x.shape[-1]}")
        x = self.patch_embed(x)  # (B, T, dim)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


def build_model(name: str, num_classes: int, in_channels: int, *, width: float = 1.0,
                **options) -> nn.Module:
    """Construct a model by name, with freshly initialised weights.

    Parameters
    ----------
    name : {"lenet5", "alexnet", "resnet18", "resnet18-imagenet", "vit"}
    num_classes : int
        Output classes, at least 2.
    in_channels : int
        Input channels, at least 1.
    width : float
        Channel multiplier, greater than 0.
    **options
        Model-specific options (``batch_norm``, ``dropout`` for AlexNet; ``image_size``, ``patch``,
        ``dim``, ``depth``, ``heads``, ``mlp_hidden`` for the vision transformer).

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
    if name == "vit":
        return VisionTransformer(num_classes, in_channels, width=width, **options)
    return ResNet18(num_classes, in_channels, width=width,
                    stem="imagenet" if name == "resnet18-imagenet" else "cifar", **options)


def mac_layers(model: nn.Module) -> list[str]:
    """Names of the ``Conv2d`` and ``Linear`` layers, in definition order (the per-layer sweep's keys)."""
    return [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
