"""Complete MAC coverage: every emulated op against a scalar ``mac_step`` loop, element for element.

The references re-derive each op from its documented semantics (psum.golden.emulation.ops): the
operands quantised with psum's encoders and the documented scales, the bias loaded into the
accumulator, one ``mac_step`` per product in the documented reduction order; transposed
convolutions gather ``x[(o + p - t*d) / s]`` tap by tap (taps last to first, a = +0 where no input
lands); attention is written out by hand (heads, softmax in float) around reference products.
"""

import itertools
import json
import math
import zlib

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import psum
from psum.golden import MacSpec, mac_step
from psum.golden.emulation.context import accumulator
from psum.golden.emulation.coverage import CoverageError, coverage
from psum.golden.emulation.kernels import fmix32, sr_rand
from psum.golden.emulation.layers import compute_scale, emulate

torch.manual_seed(0)


# ---------------------------------------------------------------------------------------------
# scalar reference
# ---------------------------------------------------------------------------------------------
def _seed(seed, name):
    return int(fmix32(np.uint64((seed ^ zlib.crc32(name.encode())) & 0xFFFFFFFF)))


def _code(fmt, v):
    return int(fmt.encode(np.asarray([v], dtype=np.float64), saturate=True)[0])


def _val(fmt, c):
    return float(fmt.decode(np.asarray([c], dtype=np.uint64))[0])


def _scale(amax, fmt, how="tensor"):
    return float(compute_scale(torch.tensor([float(amax)], dtype=torch.float64), fmt, how)[0])


def _load(spec, v):
    mode = "rne" if spec.rounding.value == "sr" else spec.rounding
    sat = True if not spec.acc.is_float else spec.saturate
    return int(spec.acc.encode(np.asarray([v]), mode, saturate=sat)[0])


def _element(spec, init_code, a_vals, b_vals, seed, idx):
    """One output element: ``mac_step`` per product, operands given as real values of a and b."""
    acc = init_code
    for k, (a, b) in enumerate(zip(a_vals, b_vals)):
        rand = int(sr_rand(seed, idx, k, spec.sr_bits)) if spec.sr_bits else None
        acc = mac_step(spec, acc, _code(spec.a, a), _code(spec.b, b), rand=rand)
    return _val(spec.acc, acc)


def ref_linear(spec, x, w, b, name, seed=0):
    """x (M, K), w (N, K): per-channel weight scale, per-tensor activation scale."""
    spec = MacSpec.parse(spec)
    x, w = x.detach().double().numpy(), w.detach().double().numpy()
    s_a = _scale(np.abs(x).max(), spec.a)
    M, N = x.shape[0], w.shape[0]
    out = np.zeros((M, N))
    for m, n in itertools.product(range(M), range(N)):
        s_w = _scale(np.abs(w[n]).max(), spec.b)
        init = 0 if b is None else _load(spec, float(b[n]) / (s_a * s_w))
        av = [_val(spec.a, _code(spec.a, v / s_a)) for v in x[m]]
        bv = [_val(spec.b, _code(spec.b, v / s_w)) for v in w[n]]
        out[m, n] = _element(spec, init, av, bv, _seed(seed, name), m * N + n) * (s_a * s_w)
    return out


def ref_matmul(spec, a, b, name, seed=0):
    """Activation x activation: a (nb, M, K), b (nb, K, N), per-tensor scales, acc from +0."""
    spec = MacSpec.parse(spec)
    a, b = a.detach().double().numpy(), b.detach().double().numpy()
    s_a, s_b = _scale(np.abs(a).max(), spec.a), _scale(np.abs(b).max(), spec.b)
    nb, M, K = a.shape
    N = b.shape[2]
    out = np.zeros((nb, M, N))
    for i, m, n in itertools.product(range(nb), range(M), range(N)):
        av = [_val(spec.a, _code(spec.a, v / s_a)) for v in a[i, m]]
        bv = [_val(spec.b, _code(spec.b, v / s_b)) for v in b[i, :, n]]
        out[i, m, n] = _element(spec, 0, av, bv, _seed(seed, name), (i * M + m) * N + n) * (s_a * s_b)
    return out


def ref_conv(spec, x, w, b, stride, padding, dilation, groups, name="", transpose=False, output_padding=None,
             seed=0):
    """Direct N-d (transposed) convolution, one ``mac_step`` per (in_channel, tap) step."""
    spec = MacSpec.parse(spec)
    x, w = x.detach().double().numpy(), w.detach().double().numpy()
    nd = w.ndim - 2
    k = w.shape[2:]
    s_a = _scale(np.abs(x).max(), spec.a)
    Bsz, C = x.shape[:2]
    S = x.shape[2:]
    G = groups
    cin = C // G
    if transpose:
        coutg = w.shape[1]
        Cout = coutg * G
        o = [(n - 1) * s - 2 * p + d * (kk - 1) + op + 1
             for n, s, p, d, kk, op in zip(S, stride, padding, dilation, k, output_padding)]

        def weight_of(oc, c, tap):  # the flipped kernel of the direct convolution
            g = oc // coutg
            return w[(g * cin + c, oc % coutg, *[kk - 1 - t for kk, t in zip(k, tap)])]
    else:
        Cout = w.shape[0]
        o = [(n + 2 * p - d * (kk - 1) - 1) // s + 1 for n, s, p, d, kk in zip(S, stride, padding, dilation, k)]

        def weight_of(oc, c, tap):
            return w[(oc, c, *tap)]
    coutg = Cout // G
    out = np.zeros((Bsz, Cout, *o))
    L = math.prod(o)
    for bb, oc in itertools.product(range(Bsz), range(Cout)):
        g = oc // coutg
        wrow = [weight_of(oc, c, tap) for c in range(cin) for tap in itertools.product(*map(range, k))]
        s_w = _scale(np.abs(wrow).max(), spec.b)
        init = 0 if b is None else _load(spec, float(b[oc]) / (s_a * s_w))
        for li, pos in enumerate(itertools.product(*map(range, o))):
            av = []
            for c in range(cin):
                for tap in itertools.product(*map(range, k)):
                    src = []
                    for dim in range(nd):
                        if transpose:  # flipped tap t' = k-1-t reads zero-stuffed position o + p - t'*d
                            num = pos[dim] + padding[dim] - (k[dim] - 1 - tap[dim]) * dilation[dim]
                            ok = num % stride[dim] == 0 and 0 <= num // stride[dim] < S[dim]
                            src.append(num // stride[dim] if ok else None)
                        else:
                            y = pos[dim] * stride[dim] - padding[dim] + tap[dim] * dilation[dim]
                            src.append(y if 0 <= y < S[dim] else None)
                    v = 0.0 if None in src else x[(bb, g * cin + c, *src)]
                    av.append(_val(spec.a, _code(spec.a, v / s_a)))
            bv = [_val(spec.b, _code(spec.b, v / s_w)) for v in wrow]
            idx = (bb * Cout + oc) * L + li
            out[(bb, oc, *pos)] = _element(spec, init, av, bv, _seed(seed, name), idx) * (s_a * s_w)
    return out


def _same(x, y):
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return x.shape == y.shape and bool(np.all((np.isnan(x) & np.isnan(y)) | (x == y)))


def _np(t):
    return t.detach().double().numpy()


SPECS = ["a=fp8_e4m3,b=fp8_e4m3,acc=e5m3",             # float accumulator: overflow and swamping
         "a=int8,b=int8,acc=int6",                      # wraps (the done-when check)
         "a=int4,b=int4,acc=int8,overflow=sat"]


# ---------------------------------------------------------------------------------------------
# layers, bare roots
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", SPECS)
def test_bare_linear_root_differs_from_float_and_equals_reference(text):
    layer = nn.Linear(30, 7)
    x = torch.randn(3, 30) * 2
    got = emulate(layer, text)(x)
    assert not torch.equal(got, layer(x))
    assert _same(_np(got), ref_linear(text, x, layer.weight, layer.bias.detach(), "").astype(np.float32))


@pytest.mark.parametrize("text", SPECS)
def test_conv1d_root(text):
    layer = nn.Conv1d(4, 3, 3, stride=2, padding=2, dilation=2, groups=1)
    x = torch.randn(2, 4, 9)
    got = emulate(layer, text)(x.double())
    assert not torch.equal(got.float(), layer(x))
    assert _same(_np(got), ref_conv(text, x, layer.weight, layer.bias.detach(), (2,), (2,), (2,), 1))


def test_conv1d_same_padding_groups():
    text = "a=fp8_e5m2,b=fp8_e5m2,acc=e4m3,round=rtz"
    layer = nn.Conv1d(4, 4, 4, padding="same", groups=2, bias=False)
    x = torch.randn(1, 4, 7)
    got = emulate(layer, text)(x.double())
    # "same" with an even kernel: 1 zero before, 2 after (PyTorch's split)
    xp = F.pad(x, (1, 2))
    assert _same(_np(got), ref_conv(text, xp, layer.weight, None, (1,), (0,), (1,), 2))


def test_conv3d_stride_dilation_groups_sr():
    text = "a=fp8_e4m3,b=fp8_e4m3,acc=e5m4,round=sr,srbits=4"
    layer = nn.Conv3d(2, 2, (2, 2, 1), stride=(1, 2, 1), padding=(1, 0, 1), dilation=(2, 1, 1), groups=2)
    x = torch.randn(1, 2, 3, 4, 2)
    got = emulate(layer, text, seed=3)(x.double())
    ref = ref_conv(text, x, layer.weight, layer.bias.detach(), (1, 2, 1), (1, 0, 1), (2, 1, 1), 2, seed=3)
    assert _same(_np(got), ref)


@pytest.mark.parametrize("text", SPECS)
def test_conv_transpose2d_stride_padding_output_padding_groups_dilation(text):
    layer = nn.ConvTranspose2d(4, 4, (3, 2), stride=(2, 3), padding=(1, 0), output_padding=(1, 2), groups=2,
                               dilation=(2, 1))
    x = torch.randn(1, 4, 3, 2)
    got = emulate(layer, text)(x.double())
    assert got.shape == layer(x).shape
    ref = ref_conv(text, x, layer.weight, layer.bias.detach(), (2, 3), (1, 0), (2, 1), 2, transpose=True,
                   output_padding=(1, 2))
    assert _same(_np(got), ref)


def test_conv_transpose1d_crop_and_close_to_float():
    text = "a=fp8_e4m3,b=fp8_e4m3,acc=e5m4"
    layer = nn.ConvTranspose1d(3, 2, 3, stride=2, padding=3)  # padding > d*(k-1): the input is cropped
    x = torch.randn(2, 3, 6)
    got = emulate(layer, text)(x.double())
    ref = ref_conv(text, x, layer.weight, layer.bias.detach(), (2,), (3,), (1,), 1, transpose=True,
                   output_padding=(0,))
    assert _same(_np(got), ref)
    wide = emulate(layer, "a=fp16,b=fp16,acc=fp32")(x)
    assert (wide - layer(x)).abs().max() < 1e-2


def test_functional_forms_inside_a_module():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(5, 6))
            self.cw = nn.Parameter(torch.randn(3, 2, 2))

        def forward(self, x):
            h = F.conv1d(x, self.cw)  # (B, 3, 5)
            return F.linear(h.reshape(h.shape[0], -1)[:, :6], self.w)

    net = Net()
    x = torch.randn(2, 2, 6)
    text = "a=int8,b=int8,acc=int10"
    q = emulate(net, text)
    got = q(x)
    names = [r["name"] for r in coverage(q).table()]
    assert names == ["conv1d0", "linear0"]
    h = ref_conv(text, x, net.cw, None, (1,), (0,), (1,), 1, name="conv1d0")
    hin = torch.from_numpy(h.astype(np.float32)).reshape(2, -1)[:, :6]
    assert _same(_np(got), ref_linear(text, hin, net.w, None, "linear0").astype(np.float32))


# ---------------------------------------------------------------------------------------------
# activation x activation
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", SPECS + ["a=fp8_e4m3,b=fp8_e5m2,acc=e5m4,round=rup"])
def test_matmul_family_matches_reference(text):
    a, b = torch.randn(2, 3, 5) * 3, torch.randn(2, 5, 4)
    ref = ref_matmul(text, a, b, "matmul0")
    with accumulator(text) as acc:
        outs = {"matmul": torch.matmul(a, b), "op": a @ b, "bmm": torch.bmm(a, b), "method": a.bmm(b),
                "einsum": torch.einsum("bmk,bkn->bmn", a, b)}
    names = [r["name"] for r in acc.coverage.table()]
    assert all(n.startswith(("matmul@test_coverage.py:", "einsum@test_coverage.py:")) for n in names), names
    for key, y in outs.items():  # no stochastic rounding here: the op names (seeds) do not matter
        assert _same(_np(y), ref.astype(np.float32)), key


def test_matmul_sr_seed_is_the_op_name():
    text = "a=fp8_e4m3,b=fp8_e4m3,acc=e5m3,round=sr,srbits=4"
    a, b = torch.randn(2, 3, 7), torch.randn(2, 7, 4)

    class Net(nn.Module):
        def forward(self, a, b):
            return a @ b

    got = emulate(Net(), text)(a, b)
    assert _same(_np(got), ref_matmul(text, a, b, "matmul0").astype(np.float32))


def test_baddbmm_loads_input_and_einsum_order():
    text = "a=fp8_e4m3,b=fp8_e4m3,acc=e5m4"
    spec = MacSpec.parse(text)
    inp, a, b = torch.randn(2, 3, 4), torch.randn(2, 3, 5), torch.randn(2, 5, 4)
    with accumulator(text):
        got = torch.baddbmm(inp, a, b, beta=0.5, alpha=2.0)
    a_, b_ = _np(a), _np(b)
    s_a, s_b = _scale(np.abs(a_).max(), spec.a), _scale(np.abs(b_).max(), spec.b)
    sc = 2.0 * s_a * s_b
    for i, m, n in itertools.product(range(2), range(3), range(4)):
        init = _load(spec, 0.5 * float(inp[i, m, n]) / sc)
        av = [_val(spec.a, _code(spec.a, v / s_a)) for v in a_[i, m]]
        bv = [_val(spec.b, _code(spec.b, v / s_b)) for v in b_[i, :, n]]
        assert np.float32(_element(spec, init, av, bv, 0, 0) * sc) == got[i, m, n]
    # einsum "bhqd,bhkd->bhqk": contracted d, batch (b, h)
    q, k = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 5, 4)
    with accumulator(text):
        s = torch.einsum("bhqd,bhkd->bhqk", q, k)
    ref = ref_matmul(text, q.reshape(2, 3, 4), k.reshape(2, 5, 4).transpose(1, 2), "x")
    assert _same(_np(s).reshape(2, 3, 5), ref.astype(np.float32))


# ---------------------------------------------------------------------------------------------
# attention
# ---------------------------------------------------------------------------------------------
def ref_encoder_layer(layer, x, text):
    """TransformerEncoderLayer (post-norm, relu, batch_first, eval) written out by hand."""
    E = layer.self_attn.embed_dim
    H = layer.self_attn.num_heads
    hd = E // H
    B, T, _ = x.shape
    f = lambda t: torch.from_numpy(t.astype(np.float32))  # noqa: E731
    att = layer.self_attn
    xt = x.transpose(0, 1).reshape(T * B, E)  # MHA works sequence-first
    proj = f(ref_linear(text, xt, att.in_proj_weight, att.in_proj_bias.detach(), "self_attn.in_proj"))
    q, k, v = proj.reshape(T, B, 3, E).unbind(2)
    heads = lambda t: t.reshape(T, B * H, hd).transpose(0, 1).reshape(B, H, T, hd)  # noqa: E731
    q, k, v = heads(q), heads(k), heads(v)
    s = f(ref_matmul(text, q.reshape(B * H, T, hd), k.reshape(B * H, T, hd).transpose(1, 2), "self_attn.qk"))
    p = torch.softmax(s.reshape(B, H, T, T) * (1.0 / math.sqrt(hd)), dim=-1)
    o = f(ref_matmul(text, p.reshape(B * H, T, T), v.reshape(B * H, T, hd), "self_attn.av")).reshape(B, H, T, hd)
    o = o.permute(2, 0, 1, 3).reshape(T * B, E)
    o = f(ref_linear(text, o, att.out_proj.weight, att.out_proj.bias.detach(), "self_attn.out_proj"))
    h = layer.norm1(x + o.reshape(T, B, E).transpose(0, 1))
    u = f(ref_linear(text, h.reshape(-1, E), layer.linear1.weight, layer.linear1.bias.detach(), "linear1"))
    u = f(ref_linear(text, torch.relu(u), layer.linear2.weight, layer.linear2.bias.detach(), "linear2"))
    return layer.norm2(h + u.reshape(B, T, E))


@pytest.mark.parametrize("text", ["a=int8,b=int8,acc=int6", "a=fp8_e4m3,b=fp8_e4m3,acc=e5m3"])
def test_transformer_encoder_layer_every_mac_emulated(text):
    torch.manual_seed(1)
    layer = nn.TransformerEncoderLayer(8, 2, 12, dropout=0.0, batch_first=True).eval()
    x = torch.randn(2, 3, 8)
    q = emulate(layer, text)
    with torch.no_grad():
        got = q(x)
        ref = ref_encoder_layer(layer, x, text)
        assert not torch.equal(got, layer(x))
    assert torch.equal(got, ref)
    cov = coverage(q)
    assert [r["name"] for r in cov.table()] == ["self_attn.in_proj", "self_attn.qk", "self_attn.av",
                                                "self_attn.out_proj", "linear1", "linear2"]
    assert cov.summary() == "emulated 6 ops, 100.0 % of MACs"
    macs = {r["name"]: r["macs_per_input"] for r in cov.table()}
    assert macs["self_attn.qk"] == 2 * 3 * 3 * 4 and macs["self_attn.in_proj"] == 3 * 24 * 8


def _float_mha_forward(args, kwargs):
    """Our MHA re-statement with float products: must equal torch's own function."""
    from psum.golden.emulation import context as C

    class FloatAcc:
        def linear(self, name, x, w, b=None):
            return F.linear(x, w, b)

        def matmul(self, name, a, b, **kw):
            return torch.matmul(a, b)

        sdpa = C.Accumulator.sdpa

    p = C._MHA_SIG.bind(*args, **kwargs)
    p.apply_defaults()
    return C._mha_forward(FloatAcc(), "m", **p.arguments)


@pytest.mark.parametrize("opts", [dict(need_weights=True), dict(need_weights=False),
                                  dict(need_weights=True, mask=True), dict(need_weights=False, mask=True),
                                  dict(need_weights=False, cross=True), dict(need_weights=True, bias_kv=True)])
def test_mha_restatement_equals_torch_in_float(opts):
    torch.manual_seed(2)
    m = nn.MultiheadAttention(8, 2, add_bias_kv=opts.get("bias_kv", False)).eval()
    q = torch.randn(4, 2, 8)
    kv = torch.randn(5, 2, 8) if opts.get("cross") else q
    mask = (torch.rand(4, kv.shape[0] + opts.get("bias_kv", 0) * 0) > 0.7) if opts.get("mask") else None
    kpm = torch.tensor([[False] * kv.shape[0], [False] * (kv.shape[0] - 1) + [True]]) if opts.get("mask") else None
    args = (q, kv, kv, 8, 2, m.in_proj_weight, m.in_proj_bias, m.bias_k, m.bias_v, False, 0.0,
            m.out_proj.weight, m.out_proj.bias)
    kw = dict(training=False, need_weights=opts["need_weights"], attn_mask=mask, key_padding_mask=kpm)
    with torch.no_grad():
        want = F.multi_head_attention_forward(*args, **kw)
        got = _float_mha_forward(args, kw)
    assert torch.allclose(got[0], want[0], atol=1e-5, equal_nan=True)
    if opts["need_weights"]:
        assert torch.allclose(got[1], want[1], atol=1e-6)


def test_sdpa_and_mha_names():
    torch.manual_seed(3)

    class Attn(nn.Module):
        def __init__(self):
            super().__init__()
            self.mha = nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, x):
            y, _ = self.mha(x, x, x, need_weights=True)
            return F.scaled_dot_product_attention(y[:, None], y[:, None], y[:, None], is_causal=True)

    q = emulate(Attn(), "a=fp8_e4m3,b=fp8_e4m3,acc=e5m6")
    with torch.no_grad():
        q(torch.randn(2, 3, 8))
    assert [r["name"] for r in coverage(q).table()] == ["mha.in_proj", "mha.qk", "mha.av", "mha.out_proj",
                                                        "sdpa0.qk", "sdpa0.av"]


def test_sdpa_matches_reference():
    text = "a=fp8_e4m3,b=fp8_e4m3,acc=e5m4"
    q, k, v = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 5, 4), torch.randn(1, 2, 5, 4)
    mask = torch.rand(3, 5) > 0.3
    mask[:, 0] = True
    with accumulator(text) as acc:
        got = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    name = next(iter(acc.sites)).rsplit(".", 1)[0]
    s = torch.from_numpy(ref_matmul(text, q.reshape(2, 3, 4), k.reshape(2, 5, 4).transpose(1, 2),
                                    f"{name}.qk").astype(np.float32)).reshape(1, 2, 3, 5) * 0.5
    p = torch.softmax(s.masked_fill(~mask, float("-inf")), dim=-1)
    ref = ref_matmul(text, p.reshape(2, 3, 5), v.reshape(2, 5, 4), f"{name}.av").astype(np.float32)
    assert _same(_np(got).reshape(2, 3, 4), ref)


# ---------------------------------------------------------------------------------------------
# orders
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["a=fp8_e4m3,b=fp8_e4m3,acc=e5m4,order=chunk4,acc2=e6m9",
                                  "a=fp8_e4m3,b=fp8_e4m3,acc=e5m4,order=tree",
                                  "a=fp8_e4m3,b=fp8_e4m3,acc=fp32,order=mta4w8p8,round=rtz"])
def test_orders_reach_every_op(text):
    """Every op goes through accumulate_order: the activation x activation product too."""
    from psum.golden.emulation.kernels import accumulate_order

    spec = MacSpec.parse(text)
    a, b = torch.randn(1, 3, 9), torch.randn(1, 9, 2)
    with accumulator(text) as acc:
        got = a @ b
    s_a, s_b = _scale(a.abs().max(), spec.a), _scale(b.abs().max(), spec.b)
    A = torch.from_numpy(spec.a.decode(spec.a.encode(_np(a[0]) / s_a, saturate=True)))
    B = torch.from_numpy(spec.b.decode(spec.b.encode(_np(b[0]) / s_b, saturate=True)))
    want = accumulate_order(spec, A, B, torch.zeros(3, 2, dtype=torch.float64),
                            seed=next(iter(acc.sites.values())).seed)
    assert _same(_np(got[0]), (want * s_a * s_b).float().numpy())


# ---------------------------------------------------------------------------------------------
# coverage report, strict, the context, patterns
# ---------------------------------------------------------------------------------------------
class _Mixed(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 4)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        h = self.fc(x)
        return self.head(h) + torch.mv(h, torch.ones(4))[:, None]  # mv: MAC-bearing, not emulated


def test_coverage_summary_table_and_strict():
    x = torch.randn(5, 6)
    q = emulate(_Mixed(), {"fc": "a=int8,b=int8,acc=int16"})
    q(x)
    cov = coverage(q)
    assert cov.summary() == ("emulated 1 op, 60.0 % of MACs; float: head (not in the spec mapping), "
                             "mv0 (not in the spec mapping)")
    rows = json.loads(json.dumps(cov.table()))
    assert rows[0] == {"name": "fc", "kind": "linear", "call_site": rows[0]["call_site"],
                       "spec": "a=int8,b=int8,acc=int16,round=rne,overflow=wrap", "emulated": True, "reason": None,
                       "intended": True, "calls": 1, "macs": 120, "macs_per_input": 24.0}
    assert rows[0]["call_site"].startswith("test_coverage.py:")
    cov.check()  # only intended float ops: fine
    q = emulate(_Mixed(), "a=int8,b=int8,acc=int16")
    q(x)
    assert coverage(q).summary() == "emulated 2 ops, 90.0 % of MACs; float: mv0 (op not emulated by psum)"
    with pytest.raises(CoverageError, match=r"^MAC-bearing ops ran in float32: mv0 \(op not emulated by psum\)$"):
        coverage(q).check()
    strict = emulate(_Mixed(), "a=int8,b=int8,acc=int16", strict=True)
    with pytest.raises(CoverageError, match=r"^op 'mv0' \(mv\) would run in float32: op not emulated by psum "
                                            r"\(strict; without it the op runs in float and is reported\)$"):
        strict(x)


def test_integer_operands_are_reported_not_emulated():
    with accumulator("a=int8,b=int8,acc=int16") as acc:
        torch.matmul(torch.ones(2, 3, dtype=torch.int64), torch.ones(3, 2, dtype=torch.int64))
    (row,) = acc.coverage.table()
    assert not row["emulated"] and row["reason"] == "torch.int64 operands" and not row["intended"]


def test_accumulator_context_patterns_no_copy():
    torch.manual_seed(4)
    net = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Sequential(nn.Linear(5, 4), nn.Linear(4, 2)))
    x = torch.randn(3, 6)
    s1, s2 = "a=int8,b=int8,acc=int10", "a=fp8_e4m3,b=fp8_e4m3,acc=e5m3"
    acc = psum.accumulator({"2.1": None, "2.*": s1, "*": s2})
    with acc:
        y = net(x)
    assert all(type(m) in (nn.Linear, nn.ReLU, nn.Sequential) for m in net.modules())  # untouched
    rows = {r["name"]: r for r in acc.coverage.table()}
    assert rows["0"]["spec"].startswith(s2) and rows["2.0"]["spec"].startswith(s1)
    assert not rows["2.1"]["emulated"] and rows["2.1"]["reason"] == "spec mapping gives '2.1' None"
    # the same model emulated per op equals the context's result
    q = emulate(net, {"2.1": None, "2.*": s1, "*": s2})
    assert torch.equal(q(x), y)
    # the context is reusable: calibration is kept, so a second batch is computed with the same scales
    with acc:
        y2 = net(x * 0.5)
    assert acc.coverage.table()[0]["calls"] == 2 and not torch.equal(y2, y)
    assert psum.coverage(acc) is acc.coverage


def test_unknown_name_and_bad_spec_messages():
    with pytest.raises(ValueError, match=r"^layer 'x' is not a module of the model nor an op inside one; "
                                         r"MAC layers: 0, 2\.0$"):
        emulate(nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Sequential(nn.Conv1d(1, 1, 1))), {"x": "a=int8,b=int8,acc=int9"})
    with pytest.raises(ValueError, match=r"^unknown format 'int0x'"):
        psum.accumulator({"*": "a=int0x,b=int8,acc=int9"})
    with pytest.raises(ValueError, match=r"^no coverage: build the model with emulate\(model, spec\) or use "
                                         r"psum.accumulator\(spec\)$"):
        coverage(nn.Linear(2, 2))


def test_calib_sets_scales_before_the_first_batch():
    net = nn.Sequential(nn.Linear(4, 3))
    calib = torch.randn(8, 4) * 10
    q = emulate(net, "a=int8,b=int8,acc=int16", calib=calib)
    assert coverage(q).records == {}  # the calibration pass is not counted
    x = torch.randn(2, 4)
    y = q(x)
    site = q.psum_accumulator.sites["0"]
    assert site.amax["a"] == float(calib.abs().max())
    assert y.shape == (2, 3)


@pytest.mark.parametrize("name", ["lenet5", "resnet18"])
def test_psum_models_fully_covered(name):
    from psum.nets.models import build_model

    torch.manual_seed(0)
    net = build_model(name, 10, 1, width=0.25).eval()
    x = torch.randn(1, 1, 32, 32)
    q = emulate(net, "a=int8,b=int8,acc=int24")
    with torch.no_grad():
        q(x)
    cov = coverage(q)
    n = sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in net.modules())
    assert cov.summary() == f"emulated {n} ops, 100.0 % of MACs"
    cov.check()


def test_context_calibrate_equals_emulate_calib():
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    calib, x = torch.randn(16, 4) * 3, torch.randn(2, 4)
    acc = psum.accumulator("a=int8,b=int8,acc=int12")
    acc.calibrate(net, calib)
    assert acc.coverage.records == {}
    with acc:
        y = net(x)
    assert torch.equal(y, emulate(net, "a=int8,b=int8,acc=int12", calib=calib)(x))


def test_unbatched_conv1d_input():
    layer = nn.Conv1d(2, 3, 3, padding=1)
    x = torch.randn(2, 5)
    got = emulate(layer, "a=int8,b=int8,acc=int12")(x.double())
    ref = ref_conv("a=int8,b=int8,acc=int12", x[None], layer.weight, layer.bias.detach(), (1,), (1,), (1,), 1)
    assert _same(_np(got), ref[0])


def test_record_streams_of_an_attention_product():
    """RTL operand streams of QK^T: K = head_dim steps, replay equals the recorded codes."""
    from psum.golden.emulation.record import as_streams, record_streams

    torch.manual_seed(5)
    layer = nn.TransformerEncoderLayer(8, 2, 12, dropout=0.0, batch_first=True).eval()
    spec = MacSpec.parse("a=fp8_e4m3,b=fp8_e4m3,acc=e5m4")
    rec = record_streams(layer, spec, "self_attn.qk", torch.randn(2, 3, 8), 5, seed=1)
    assert rec["a"].shape == (5, 4) and len(as_streams(rec)) == 5
    for i in range(5):
        acc = int(rec["init"][i])
        for a, b in zip(rec["a"][i], rec["b"][i]):
            acc = mac_step(spec, acc, int(a), int(b))
        assert acc == int(rec["out"][i])
