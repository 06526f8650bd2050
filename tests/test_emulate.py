"""Emulated layers and accumulation orders against naive scalar loops of mac_step.

The reference here re-derives everything from the documented semantics: operands quantised with
psum's encoders, the bias loaded into the accumulator, and for every output element one
``mac_step`` per product in the documented reduction order (Conv2d: (in_channel, kh, kw), padded
positions issued as a = +0).
"""

from fractions import Fraction

import numpy as np
import pytest
import torch
from torch import nn

from psum.golden import MacSpec, mac_step
from psum.golden.emulation.layers import EmulatedConv2d, EmulatedLinear, compute_scale, emulate
from psum.golden.emulation.kernels import accumulate_order, add_spec, sr_rand
from psum.golden.reference import decode_ref, round_ref
from psum.golden.emulation.stats import collect_stats
from psum.golden.emulation.coverage import coverage

torch.manual_seed(0)


def _enc(fmt, x):
    return int(fmt.encode(np.asarray([x]), saturate=True)[0]) if not fmt.is_float else \
        int(fmt.encode(np.asarray([x]), saturate=True)[0])


def _q(fmt, x):
    return float(fmt.decode(np.asarray([_enc(fmt, x)], dtype=np.uint64))[0])


def _scales(layer, spec, x):
    w = layer.weight.detach().double().reshape(layer.weight.shape[0], -1)
    s_w = compute_scale(w.abs().amax(dim=1), spec.b, "tensor").numpy()
    s_a = float(compute_scale(x.detach().abs().max().double().reshape(1), spec.a, "tensor")[0])
    return s_a, s_w, w.numpy()


def _load(spec, bias, s_a, s_w_n):
    mode = "rne" if spec.rounding.value == "sr" else spec.rounding
    sat = True if not spec.acc.is_float else spec.saturate
    return int(spec.acc.encode(np.asarray([bias / (s_a * s_w_n)]), mode, saturate=sat)[0])


def _run_element(spec, acc, a_vals, b_vals, seed, idx):
    for k, (a, b) in enumerate(zip(a_vals, b_vals)):
        rand = int(sr_rand(seed, idx, k, spec.sr_bits)) if spec.sr_bits else None
        acc = mac_step(spec, acc, _enc(spec.a, a), _enc(spec.b, b), rand=rand)
    return float(spec.acc.decode(np.asarray([acc], dtype=np.uint64))[0])


def conv_reference(layer, spec, x, seed):
    spec = MacSpec.parse(spec)
    s_a, s_w, w = _scales(layer, spec, x)
    xn = x.detach().double().numpy()
    Bsz, C, H, W = xn.shape
    kh, kw = layer.kernel_size
    (sh, sw), (ph, pw), (dh, dw), G = layer.stride, layer.padding, layer.dilation, layer.groups
    ho = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    cout, cin = layer.out_channels, C // G
    out = np.zeros((Bsz, cout, ho, wo))
    for b in range(Bsz):
        for n in range(cout):
            g = n // (cout // G)
            for i in range(ho):
                for j in range(wo):
                    a_vals, b_vals = [], []
                    for c in range(cin):  # the weight's (in_channel, kh, kw) order
                        for u in range(kh):
                            for v in range(kw):
                                y, z = i * sh - ph + u * dh, j * sw - pw + v * dw
                                inside = 0 <= y < H and 0 <= z < W
                                a_vals.append(_q(spec.a, xn[b, g * cin + c, y, z] / s_a) if inside else 0.0)
                                b_vals.append(_q(spec.b, w[n, c * kh * kw + u * kw + v] / s_w[n]))
                    bias = float(layer.bias.detach()[n]) if layer.bias is not None else 0.0
                    init = _load(spec, bias, s_a, s_w[n]) if layer.bias is not None else 0
                    idx = ((b * cout + n) * ho + i) * wo + j
                    acc = _run_element(spec, init, a_vals, b_vals, seed, idx)
                    out[b, n, i, j] = acc * (s_a * s_w[n])
    return out


def _same(x, y):
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return bool(np.all((np.isnan(x) & np.isnan(y)) | (x == y)))


CONV_SPECS = ["a=fp8_e4m3,b=fp8_e4m3,acc=e5m3",          # overflow and swamping present
              "a=fp8_e4m3,b=fp8_e4m3,acc=e4m4,round=sr,srbits=6",
              "a=int8,b=int8,acc=int12",                  # wraps
              "a=int4,b=int4,acc=int8,overflow=sat"]


@pytest.mark.parametrize("text", CONV_SPECS)
def test_conv2d_padding_stride_matches_scalar_loop(text):
    layer = nn.Conv2d(1, 2, 3, stride=2, padding=1)
    x = torch.randn(1, 1, 5, 4) * 3
    seed = 5
    em = EmulatedConv2d(layer, text, name="c", seed=seed)
    got = em(x.double()).numpy()
    ref = conv_reference(layer, text, x, em.seed)
    assert _same(got.astype(np.float64), ref), (got, ref)


@pytest.mark.parametrize("mode", ["rne", "rtz", "rdn", "rup", "rna", "rod"])
def test_conv2d_groups_dilation_all_modes(mode):
    layer = nn.Conv2d(2, 2, 2, padding=1, dilation=2, groups=2)
    x = torch.randn(1, 2, 4, 4)
    text = f"a=fp8_e5m2,b=fp8_e5m2,acc=e4m3,round={mode}"
    got = EmulatedConv2d(layer, text)(x.double()).numpy()
    assert _same(got, conv_reference(layer, text, x, 0))


@pytest.mark.parametrize("text", ["a=fp16,b=fp16,acc=fp16", "a=bf16,b=bf16,acc=e6m9,prod=bf16,fused=no",
                                  "a=int8,b=int8,acc=int16,overflow=sat"])
def test_linear_matches_scalar_loop(text):
    spec = MacSpec.parse(text)
    layer = nn.Linear(13, 3)
    x = torch.randn(2, 13) * 4
    got = EmulatedLinear(layer, spec)(x.double()).numpy()
    s_a, s_w, w = _scales(layer, spec, x)
    xn = x.double().numpy()
    for m in range(2):
        for n in range(3):
            init = _load(spec, float(layer.bias.detach()[n]), s_a, s_w[n])
            acc = _run_element(spec, init, [_q(spec.a, v / s_a) for v in xn[m]],
                               [_q(spec.b, v / s_w[n]) for v in w[n]], 0, m * 3 + n)
            assert _same(got[m, n], acc * (s_a * s_w[n]))


# ---------------------------------------------------------------------------------------------
# Orders: chunk, tree, mta against scalar references
# ---------------------------------------------------------------------------------------------
def _gemm_problem(spec, seed, M=2, N=3, K=21):
    rng = np.random.default_rng(seed)
    A = spec.a.decode(spec.a.encode(rng.standard_normal((M, K)) * 2, saturate=True))
    B = spec.b.decode(spec.b.encode(rng.standard_normal((K, N)), saturate=True))
    init = spec.acc.decode(spec.acc.encode(rng.standard_normal((M, N)) * 4))
    return A, B, init


def _add(spec, target, acc_code, x_code, rand):
    return mac_step(add_spec(spec, target), acc_code, x_code, 1, rand=rand)


def _rand(spec, seed, idx, step):
    return int(sr_rand(seed, idx, step, spec.sr_bits)) if spec.sr_bits else None


def chunk_reference(spec, L, a, b, init, seed, idx):
    seq = spec.replace(order="seq", acc2=None)
    K = len(a)
    acc2 = 0
    for j, k0 in enumerate(range(0, K, L)):
        c = _enc(spec.acc, init) if j == 0 else 0
        for k in range(k0, min(K, k0 + L)):
            c = mac_step(seq, c, _enc(spec.a, a[k]), _enc(spec.b, b[k]), rand=_rand(spec, seed, idx, k))
        acc2 = _add(spec, spec.acc2, acc2, c, _rand(spec, seed, idx, K + j))
    return float(spec.acc2.decode(np.asarray([acc2], dtype=np.uint64))[0])


def tree_reference(spec, a, b, init, seed, idx):
    seq = spec.replace(order="seq", acc2=None)
    K = len(a)
    t = [mac_step(seq, 0, _enc(spec.a, a[k]), _enc(spec.b, b[k]), rand=_rand(spec, seed, idx, k)) for k in range(K)]
    node = K
    while len(t) > 1:
        nxt = []
        for i in range(0, len(t) - 1, 2):
            nxt.append(_add(spec, spec.acc, t[i], t[i + 1], _rand(spec, seed, idx, node)))
            node += 1
        if len(t) % 2:
            nxt.append(t[-1])
        t = nxt
    out = _add(spec, spec.acc, _enc(spec.acc, init), t[0], _rand(spec, seed, idx, node))
    return float(spec.acc.decode(np.asarray([out], dtype=np.uint64))[0])


def mta_reference(spec, N, W, P, a, b, init, seed, idx):
    """Fractions and the reference rounder, one group at a time."""
    fmt = spec.acc
    K = len(a)
    R = _enc(fmt, init)
    acc2, prom = 0, 0
    for g0 in range(0, K, N):
        g1 = min(K, g0 + N)
        rs, rv = decode_ref(fmt, R)
        terms = [-rv if rs else rv]
        for k in range(g0, g1):
            terms.append(Fraction(a[k]) * Fraction(b[k]))  # exact product (fused)
        nz = [abs(t) for t in terms if t != 0]
        if nz:
            # leading-one exponent of the largest term: an integer estimate within one, then exact
            e = max(t.numerator.bit_length() - t.denominator.bit_length() for t in nz)
            while Fraction(2) ** e > max(nz):
                e -= 1
            while Fraction(2) ** (e + 1) <= max(nz):
                e += 1
            lsb = Fraction(2) ** (e - W + 1)
            S = sum((1 if t > 0 else -1) * (abs(t) // lsb) * lsb for t in terms)
        else:
            S = Fraction(0)
        if S == 0:
            R = fmt.sign_bit if spec.rounding.value == "rdn" else 0
        else:
            R = round_ref(fmt, S < 0, abs(S), spec.rounding, saturate=spec.saturate,
                          rand=_rand(spec, seed, idx, g1 - 1), sr_bits=spec.sr_bits)
        if g1 % P == 0 or g1 == K:
            acc2 = _add(spec, spec.acc2, acc2, R, _rand(spec, seed, idx, K + prom))
            prom += 1
            R = 0
    return float(spec.acc2.decode(np.asarray([acc2], dtype=np.uint64))[0])


def _order_check(text, ref_fn):
    spec = MacSpec.parse(text)
    A, B, init = _gemm_problem(spec, 3)
    got = accumulate_order(spec, *(torch.from_numpy(x) for x in (A, B, init)), seed=9).numpy()
    N = B.shape[1]
    for m in range(A.shape[0]):
        for n in range(N):
            assert _same(got[m, n], ref_fn(spec, A[m], B[:, n], init[m, n], 9, m * N + n)), (m, n)


@pytest.mark.parametrize("text", ["a=fp8_e4m3,b=fp8_e4m3,acc=e5m4,order=chunk4,acc2=e6m9",
                                  "a=fp8_e4m3,b=fp8_e4m3,acc=e5m4,order=chunk8,acc2=fp16,round=sr,srbits=4",
                                  "a=int8,b=int8,acc=int12,order=chunk5,acc2=int16"])
def test_chunk_order_matches_scalar_loop(text):
    L = MacSpec.parse(text).order.length
    _order_check(text, lambda s, a, b, i, sd, ix: chunk_reference(s, L, a, b, i, sd, ix))


@pytest.mark.parametrize("text", ["a=fp8_e4m3,b=fp8_e4m3,acc=e5m4,order=tree",
                                  "a=fp8_e4m3,b=fp8_e4m3,acc=e5m4,order=tree,round=sr,srbits=3",
                                  "a=int8,b=int8,acc=int14,order=tree,overflow=sat"])
def test_tree_order_matches_scalar_loop(text):
    _order_check(text, tree_reference)


@pytest.mark.parametrize("text", ["a=fp8_e4m3,b=fp8_e4m3,acc=fp32,order=mta4w8p8,round=rtz",
                                  "a=fp8_e4m3,b=fp8_e4m3,acc=e5m6,order=mta3w6p6,acc2=fp16",
                                  "a=fp16,b=fp16,acc=fp32,order=mta8w14p16,round=sr"])
def test_mta_order_matches_fraction_reference(text):
    order = MacSpec.parse(text).order
    n, w, p = order.n, order.w, order.p
    _order_check(text, lambda s, a, b, i, sd, ix: mta_reference(s, n, w, p, a, b, i, sd, ix))


def test_mta_rejects_p_not_multiple_of_n():
    with pytest.raises(ValueError, match=r"^order mta4w8p6: P=6 must be a multiple of N=4$"):
        EmulatedLinear(nn.Linear(4, 2), "a=fp8_e4m3,b=fp8_e4m3,acc=fp32,order=mta4w8p6")


# ---------------------------------------------------------------------------------------------
# API
# ---------------------------------------------------------------------------------------------
def _net():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))


def test_emulate_copies_and_keeps_unnamed_layers_full_precision():
    net = _net()
    x = torch.randn(3, 1, 6, 6)
    q = emulate(net, {"3": "a=fp8_e4m3,b=fp8_e4m3,acc=e5m6"})
    assert q is not net and q[3] is not net[3] and type(q) is type(net)
    y = q(x)
    assert y.shape == (3, 5) and torch.isfinite(y).all()
    assert (y - net(x)).abs().max() < 0.5
    cov = {r["name"]: r for r in coverage(q).table()}
    assert cov["3"]["emulated"] and not cov["0"]["emulated"] and cov["0"]["intended"]
    assert cov["0"]["reason"] == "not in the spec mapping"
    assert not hasattr(net, "psum_accumulator")  # the original model is untouched


def test_emulate_all_layers_fp32_acc_close_to_float():
    net = _net()
    x = torch.randn(3, 1, 6, 6)
    q = emulate(net, "a=fp16,b=fp16,acc=fp32", calib=x)
    assert (q(x) - net(x)).abs().max() < 1e-2


def test_emulate_unknown_layer_message():
    with pytest.raises(ValueError, match=r"^layer 'fc' is not a module of the model nor an op inside one; MAC layers: 0, 3$"):
        emulate(_net(), {"fc": "a=fp16,b=fp16,acc=fp16"})


def test_bad_scale_and_padding_mode_messages():
    with pytest.raises(ValueError, match=r"^weight_scale must be one of channel, tensor, pow2, none, not 'row'$"):
        emulate(_net(), "a=fp16,b=fp16,acc=fp16", weight_scale="row")
    with pytest.raises(ValueError, match=r"^act_scale must be one of tensor, pow2, none, not 'channel'$"):
        emulate(_net(), "a=fp16,b=fp16,acc=fp16", act_scale="channel")
    with pytest.raises(ValueError, match=r"^backend must be one of auto, gemm, c, torch, numpy, not 'gpu'$"):
        emulate(_net(), "a=fp16,b=fp16,acc=fp16", backend="gpu")


def test_padding_modes_through_f_pad():
    """A reflect-padded Conv2d pads with F.pad (float, exact copies) and then convolves unpadded."""
    conv = nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect")
    x = torch.randn(1, 1, 5, 4)
    text = "a=fp8_e4m3,b=fp8_e4m3,acc=e5m3"
    got = emulate(conv, text)(x.double()).detach().numpy()
    plain = nn.Conv2d(1, 2, 3)
    plain.load_state_dict(conv.state_dict())
    xp = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    assert _same(got, conv_reference(plain, text, xp, 0))
    assert _same(EmulatedConv2d(conv, text)(x.double()).numpy(), got)


def test_overflow_propagates_inf():
    lin = nn.Linear(64, 1, bias=False)
    with torch.no_grad():
        lin.weight.fill_(1.0)
    y = EmulatedLinear(lin, "a=fp8_e4m3,b=fp8_e4m3,acc=e3m4", act_scale="none", weight_scale="none")(torch.full((1, 64), 8.0))
    assert torch.isinf(y).all()


def test_stats_collected():
    net = _net()
    q = emulate(net, "a=fp8_e4m3,b=fp8_e4m3,acc=e5m3", stats=True)
    q(torch.randn(2, 1, 6, 6))
    st = collect_stats(q)
    assert set(st) == {"0", "3"}
    assert st["3"]["steps"] == 2 * 5 * 144 and 0 <= st["3"]["swamp"] <= 1 and st["3"]["max_abs"] > 0
    with pytest.raises(ValueError, match="^no partial-sum statistics"):
        collect_stats(_net())


def test_record_streams_replay_equals_layer_output():
    from psum.golden.emulation.record import record_streams

    net = _net()
    x = torch.randn(2, 1, 6, 6)
    spec = MacSpec.parse("a=fp8_e4m3,b=fp8_e4m3,acc=e5m4,round=sr,srbits=4")
    rec = record_streams(net, spec, "0", x, 7, seed=3)
    assert rec["a"].shape == (7, 9) and rec["b"].shape == (7, 9) and rec["init"].shape == (7,)
    q = emulate(net, {"0": spec}, seed=3)
    y = q[0](x.double()).reshape(-1).detach().numpy()
    want = spec.acc.decode(rec["out"]) * rec["scale"]
    assert _same(y[rec["index"]], want)
