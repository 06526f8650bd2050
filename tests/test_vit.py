"""The small vision transformer (``psum.nets.models.VisionTransformer``, model name ``vit``).

Fast tier: it builds, its forward shape and sizes, its attention is standard scaled dot-product
attention, the torch ops that carry its MACs (what emulation has to intercept), the shipped digits
checkpoint loads and classifies, and today's emulation of its Linear/Conv2d layers runs.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from psum.nets.models import MODELS, Attention, VisionTransformer, build_model, default_width, mac_layers

# MACs per image of the default ViT on 3×32×32 inputs (docs/nets.md "Vision transformer"): T = 17
# tokens, dim 64, 4 heads of 16, MLP 128, 4 blocks, 10 classes.
T, D, H, DH, HID, DEPTH = 17, 64, 4, 16, 128, 4
MACS = {
    "patch_embed": 16 * D * 3 * 8 * 8,  # 16 patches × 64 outputs × (3·8·8)
    "qkv": DEPTH * T * D * 3 * D,
    "scores": DEPTH * H * T * T * DH,  # Q Kᵀ
    "context": DEPTH * H * T * DH * T,  # A V
    "proj": DEPTH * T * D * D,
    "mlp": DEPTH * 2 * T * D * HID,
    "head": D * 10,  # the class token only
}


def _vit(**kw):
    torch.manual_seed(0)
    return build_model("vit", 10, 3, **kw).eval()


def test_vit_is_registered():
    assert "vit" in MODELS and default_width("vit", "digits") == 1.0


@pytest.mark.parametrize("chans", [1, 3])
def test_vit_forward_shape(chans):
    net = build_model("vit", 10, chans).eval()
    with torch.no_grad():
        assert net(torch.randn(2, chans, 32, 32)).shape == (2, 10)


def test_vit_sizes_and_layers():
    net = _vit()
    assert sum(p.numel() for p in net.parameters()) == 148170
    names = mac_layers(net)
    assert names[0] == "patch_embed.proj" and names[-1] == "head" and len(names) == 2 + 4 * DEPTH
    assert names[1:5] == ["blocks.0.attn.qkv", "blocks.0.attn.proj", "blocks.0.mlp.fc1", "blocks.0.mlp.fc2"]
    # width scales the token width (a multiple of the heads) and the MLP
    half = build_model("vit", 10, 3, width=0.5)
    assert half.head.in_features == 32 and half.blocks[0].mlp.fc1.out_features == 64
    odd = build_model("vit", 10, 3, width=0.3)
    assert odd.head.in_features == 20  # 64·0.3 = 19.2 -> 5 per head × 4
    # a patch of 4: 64 tokens + the class token
    assert build_model("vit", 10, 3, patch=4).pos_embed.shape == (1, 65, 64)


def test_vit_errors():
    with pytest.raises(ValueError, match=r"^image_size must be a multiple of patch \(5\), not 32$"):
        build_model("vit", 10, 3, patch=5)
    with pytest.raises(ValueError, match=r"^heads must be an integer >= 1, not 0$"):
        build_model("vit", 10, 3, heads=0)
    with pytest.raises(ValueError, match=r"^vit expects 32×32 images, not 28×28$"):
        _vit()(torch.zeros(1, 3, 28, 28))


def test_attention_is_scaled_dot_product_attention():
    """The explicit matmuls compute softmax(QKᵀ/√d)V per head, as PyTorch's reference does."""
    torch.manual_seed(1)
    att = Attention(64, 4).double()
    x = torch.randn(3, 17, 64, dtype=torch.float64)
    b, t, _ = x.shape
    q, k, v = att.qkv(x).reshape(b, t, 3, 4, 16).permute(2, 0, 3, 1, 4).unbind(0)
    ref = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, 64)
    torch.testing.assert_close(att(x), att.proj(ref), rtol=0, atol=1e-12)


class _Ops(TorchFunctionMode):
    """Records every torch function called (name, input shapes) while active."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        shapes = [tuple(a.shape) for a in args if isinstance(a, torch.Tensor)]
        self.calls.append((getattr(func, "__name__", str(func)), shapes))
        return func(*args, **kwargs)


def test_vit_mac_ops():
    """The torch ops that carry the ViT's MACs: one conv2d, 17 linear, 8 matmul; nothing fused.

    This pins what a function-level interceptor (emulate's coverage) must see: every MAC of the
    model goes through ``F.conv2d``, ``F.linear`` or ``torch.matmul`` on two activations.
    """
    net = _vit()
    with torch.no_grad(), _Ops() as ops:
        net(torch.randn(2, 3, 32, 32))
    names = [n for n, _ in ops.calls]
    assert names.count("conv2d") == 1 and names.count("linear") == 1 + 4 * DEPTH
    assert names.count("matmul") == 2 * DEPTH
    fused = {"scaled_dot_product_attention", "multi_head_attention_forward", "_native_multi_head_attention",
             "bmm", "baddbmm", "einsum", "mm", "addmm", "__matmul__"}
    assert not fused & set(names)
    # MACs per image from the recorded shapes equal the closed form in docs/nets.md
    macs = 0
    for name, shapes in ops.calls:
        if name == "conv2d":
            (bsz, _, h, w), (cout, cin, kh, kw) = shapes[:2]
            macs += (h // kh) * (w // kw) * cout * cin * kh * kw
        elif name == "linear":
            x, wt = shapes[:2]
            rows = torch.Size(x[:-1]).numel() // 2
            macs += rows * wt[0] * wt[1]
        elif name == "matmul":
            a, b = shapes
            macs += torch.Size(a[:-1]).numel() // 2 * b[-1] * a[-1]
    assert macs == sum(MACS.values()) == 2573440
    attention = MACS["scores"] + MACS["context"]
    assert round(100 * attention / macs, 2) == 5.75


def test_shipped_vit_checkpoint_classifies_digits():
    from psum.nets.data import load_dataset
    from psum.nets.train import evaluate, find_checkpoint, load_checkpoint

    path = find_checkpoint("vit", "digits")
    assert path is not None and path.stat().st_size < 2_000_000
    net, meta = load_checkpoint("vit", "digits")
    assert isinstance(net, VisionTransformer) and meta["autocast"] == "bfloat16" and meta["accuracy"] > 95
    ds = load_dataset("digits", "test", channels=meta["in_channels"])
    assert evaluate(net, ds, limit=60, device="cpu")["top1"] >= 90


def test_vit_every_mac_is_emulated():
    """Every MAC-bearing op of the ViT is emulated: the patch conv, 17 linears and the 8 attention
    matmuls (Q.K^T and A.V per block); a wide accumulator keeps the float answer on a few images."""
    import collections

    from psum.golden.emulation.coverage import coverage
    from psum.golden.emulation.layers import emulate

    net = _vit()
    x = torch.randn(4, 3, 32, 32)
    q = emulate(net, "a=fp8_e4m3,b=fp8_e4m3,acc=fp32", calib=x, strict=True)
    with torch.no_grad():
        ref, out = net(x), q(x)
    cov = coverage(q)
    assert cov.summary() == "emulated 26 ops, 100.0 % of MACs"
    assert collections.Counter(r["kind"] for r in cov.table()) == {"linear": 17, "matmul": 8, "conv2d": 1}
    assert out.shape == ref.shape and torch.equal(out.argmax(1), ref.argmax(1))


def test_vit_qat_is_refused_in_one_line():
    """QAT's integer export covers CNN ops only: the ViT is refused up front, not half converted."""
    from psum.quant.qat import prepare_qat

    with pytest.raises(ValueError, match=r"^operation transpose \(transpose\) is not supported by QAT export$"):
        prepare_qat(_vit())
