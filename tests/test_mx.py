"""OCP MX / NVFP4 block formats: quantisation, the block dot product and its emulation.

References: gfloat's MX block quantisation (an independent implementation of OCP MX v1.0's
shared-exponent rule), the Fraction rule written out here for NVFP4, and psum's Fraction block
reference (:func:`psum.golden.reference.block_dot_ref`).
"""

from fractions import Fraction

import numpy as np
import pytest

from psum.golden import MacSpec, parse_format
from psum.golden.block_dot import block_dot, block_terms
from psum.golden.blocks import BLOCK_NAMED, BlockFormat, dequantize_blocks, parse_block_format, quantize_blocks
from psum.golden.reference import block_dot_ref, encode_ref

MX = ["mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e3m2", "mxfp6_e2m3", "mxfp4", "mxint8"]


# -- names and bad input -------------------------------------------------------------------------
def test_block_names():
    assert parse_block_format("mxfp4") == BlockFormat("fp4_e2m1", "e8m0", 32, name="mxfp4")
    assert parse_block_format("nvfp4").block == 16 and str(parse_block_format("nvfp4")) == "nvfp4"
    assert str(parse_block_format("mxfp8_e4m3_k16")) == "mxfp8_e4m3_k16"
    assert parse_block_format("mxint8").elem == parse_format("q2.6")
    assert parse_block_format("mxfp4").bits_per_element == 4.25
    for name in BLOCK_NAMED:
        assert str(parse_block_format(name)) == name


@pytest.mark.parametrize("text, message", [
    ("a=mxfp4,b=nvfp4,acc=fp16", "block-scaled operands need one block size; a=mxfp4 has 32, b=nvfp4 has 16"),
    ("a=mxfp4,b=fp8_e4m3,acc=fp16", "block-scaled operands come in pairs; b=fp8_e4m3 is not a block format"),
    ("a=mxfp4,b=mxfp4,acc=uint24",
     "block-scaled operands need a float, fixed-point or signed integer accumulator, not uint24"),
    ("a=fp16,b=fp16,acc=fp16,bsum=fp16", "bsum applies only to block-scaled operands (a=mxfp4,b=mxfp4, ...)"),
    ("a=mxfp4,b=mxfp4,acc=fp16,prod=fp16,fused=no",
     "prod/fused=no do not apply to block-scaled operands; bsum=FMT names the block-sum format"),
    ("a=e8m0,b=fp16,acc=fp16",
     "a=e8m0 is a scale format; it names the scale of a block format (mxfp4, ...), not a MAC operand"),
    ("a=mxfp4_k0,b=mxfp4,acc=fp16", "block format 'mxfp4_k0': block size must be an integer between 1 and 4096, not 0"),
    ("a=mxfp4,b=mxfp4,acc=fp16,bsum=int8", "bsum must be a float format, not int8"),
])
def test_block_spec_bad_input(text, message):
    with pytest.raises(ValueError) as exc:
        MacSpec.parse(text)
    assert str(exc.value) == message


def test_block_format_bad_scale_and_lengths():
    with pytest.raises(ValueError, match=r"^block scale format must be a power-of-two format \(e8m0\) or an FP8 format, not fp16$"):
        BlockFormat("fp4_e2m1", "fp16", 32)
    with pytest.raises(ValueError, match=r"^30 values do not fill blocks of 32 \(mxfp4\); pad with zeros \(pad=True\)$"):
        quantize_blocks(np.zeros(30), "mxfp4")
    with pytest.raises(ValueError, match=r"^tensor scale must be a positive finite fp32 number, not nan$"):
        quantize_blocks(np.zeros(16), "nvfp4", tensor_scale=float("nan"))
    with pytest.raises(ValueError, match=r"^mxfp4 takes no per-tensor scale"):
        quantize_blocks(np.zeros(32), "mxfp4", tensor_scale=2.0)
    with pytest.raises(ValueError, match="^mac_step takes element operands"):
        from psum.golden import mac_step
        mac_step("a=mxfp4,b=mxfp4,acc=fp16", 0, 0, 0)


def test_spec_round_trip():
    for text in ("a=mxfp4,b=mxfp4,acc=e5m4,round=rne,overflow=ieee",
                 "a=nvfp4,b=nvfp4,acc=fp16,round=rtz,overflow=sat,order=chunk4,acc2=fp32,bsum=e6m5"):
        assert str(MacSpec.parse(text)) == text and MacSpec.parse(str(MacSpec.parse(text))) == MacSpec.parse(text)


# -- quantisation -------------------------------------------------------------------------------
def _data(rng, shape):
    """Values over many binades, with zero blocks, single spikes and exact powers of two."""
    x = rng.normal(size=shape) * np.exp2(rng.integers(-20, 20, size=shape[:-1] + (1,)))
    x[..., 0, :] = 0.0
    x[..., 1, :] = np.exp2(rng.integers(-5, 5, size=x.shape[-1]))
    return x


@pytest.mark.parametrize("name", MX)
def test_mx_quantize_matches_gfloat(name):
    gfloat = pytest.importorskip("gfloat")
    from gfloat import formats as GF

    fi = getattr(GF, "format_info_" + {"mxfp4": "mxfp4_e2m1"}.get(name, name))
    rng = np.random.default_rng(0)
    x = _data(rng, (6, 32))
    sc, el = quantize_blocks(x, name)
    got = dequantize_blocks(name, sc, el)
    for row, g in zip(x, got):
        want = gfloat.quantize_block(fi, row, gfloat.compute_scale_amax)
        np.testing.assert_array_equal(g, want)


@pytest.mark.parametrize("name", MX)
def test_mx_quantize_rule_by_fractions(name):
    # shared exponent floor(log2 amax) - emax_elem (clamped), elements rne + saturation (Fraction encode)
    bf = parse_block_format(name)
    rng = np.random.default_rng(1)
    x = _data(rng, (4, 64))
    sc, el = quantize_blocks(x, name)
    for r in range(x.shape[0]):
        for j in range(2):
            blk = x[r, j * 32:(j + 1) * 32]
            amax = max(abs(Fraction(float(v))) for v in blk)
            if amax == 0:
                e = -127
            else:
                e = amax.numerator.bit_length() - amax.denominator.bit_length()
                e -= Fraction(2) ** e > amax
                e -= (bf.elem.emax if hasattr(bf.elem, "emax") else 0)
                e = min(max(e, -127), 127)
            assert int(sc[r, j]) == e + 127
            want = [encode_ref(bf.elem, float(v) * 2.0 ** -e, "rne", saturate=True) for v in blk]
            assert [int(c) for c in el[r, j]] == want


def _nearest_ref(fmt, q: Fraction) -> int:
    """Nearest code of ``fmt`` to the rational ``q`` (ties to even code, saturating), by Fractions."""
    best = None
    for c in range(fmt.max_code + 1):
        v = Fraction(float(fmt.decode(np.uint64(c))))
        key = (abs(abs(q) - v), c % 2)
        if best is None or key < best[0]:
            best = (key, c)
    c = best[1]
    return c | (fmt.sign_bit if q < 0 and c else 0)


@pytest.mark.parametrize("g", [1.0, float(np.float32(0.00037))])
def test_nvfp4_quantize_rule_by_fractions(g):
    bf = parse_block_format("nvfp4")
    rng = np.random.default_rng(2)
    x = _data(rng, (3, 48)) * 1e-3
    # ties on purpose: a block whose amax / 6 is a midpoint of E4M3, elements on e2m1 midpoints
    x[2, :16] = np.array([1.25, 0.25, 0.75, 2.5, -1.25, 5.0] + [0.0] * 10) * 6 * 2.0 ** -4 * g / 6
    sc, el = quantize_blocks(x, "nvfp4", tensor_scale=g)
    for r in range(x.shape[0]):
        for j in range(3):
            blk = [Fraction(float(v)) for v in x[r, j * 16:(j + 1) * 16]]
            amax = max(abs(v) for v in blk)
            s = _nearest_ref(bf.scale, amax / 6 / Fraction(g))
            assert int(sc[r, j]) == s
            sv = Fraction(float(bf.scale.decode(np.uint64(s)))) * Fraction(g)
            want = [0 if sv == 0 else _nearest_ref(bf.elem, v / sv) for v in blk]
            assert [int(c) for c in el[r, j]] == want


def test_block_specials_make_nan_blocks():
    x = np.ones((2, 32))
    x[0, 3] = np.nan
    x[1, 5] = np.inf
    sc, el = quantize_blocks(x, "mxfp4")
    assert list(sc) == [0xFF, 0xFF] and not el.any()
    assert np.isnan(dequantize_blocks("mxfp4", sc, el)).all()
    sc, el = quantize_blocks(np.r_[np.ones(15), np.nan], "nvfp4")
    assert int(sc[0]) == 0x7F  # E4M3's NaN


# -- the block dot product ------------------------------------------------------------------------
def _random_blocks(bf, rng, n, J):
    """Random codes: scales over a narrow range around 1 (so sums meet the accumulator's range),
    all element codes (NaN and inf included where the element format has them)."""
    k = bf.block
    if bf.pow2_scale:
        sc = rng.integers(bf.scale.bias - 6, bf.scale.bias + 4, size=(n, J), dtype=np.uint64)
    else:
        sc = rng.integers(0x20, 0x48, size=(n, J), dtype=np.uint64)
    el = rng.integers(0, 1 << bf.elem.width, size=(n, J, k), dtype=np.uint64)
    return sc, el


SPECS = [
    "a=mxfp4,b=mxfp4,acc=e5m4",
    "a=mxfp4,b=mxfp4,acc=e4m3,round=rtz,overflow=sat",
    "a=mxfp6_e2m3,b=mxfp6_e3m2,acc=fp16",
    "a=mxfp8_e4m3_k8,b=mxfp8_e4m3_k8,acc=e6m7",
    "a=mxint8_k8,b=mxint8_k8,acc=e5m6,round=rup",
    "a=nvfp4,b=nvfp4,acc=e5m4",
    "a=nvfp4,b=nvfp4,acc=q6.6,overflow=sat",
    "a=mxfp4_k8,b=mxfp4_k8,acc=e5m4,bsum=e3m3",
    "a=nvfp4_k4,b=nvfp4_k4,acc=e5m3,round=rdn,bsum=e4m2",
    "a=mxfp4,b=mxfp4,acc=binary8p4",
    # integer accumulators: the grid q<W>.0, every rounding direction, wrap and saturation
    "a=mxfp4,b=mxfp4,acc=int8",
    "a=nvfp4,b=nvfp4,acc=int12,round=rdn",
    "a=mxint8_k8,b=mxint8_k8,acc=int16,round=rna,overflow=sat",
    "a=mxfp6_e2m3,b=mxfp6_e2m3,acc=int6,round=rtz",
    "a=mxfp8_e4m3_k8,b=mxfp8_e4m3_k8,acc=int10,round=rup,overflow=sat",
    "a=mxfp4_k8,b=mxfp4_k8,acc=q5.3,round=rod",
]


@pytest.mark.parametrize("text", SPECS)
def test_block_dot_matches_fraction_reference(text):
    spec = MacSpec.parse(text)
    rng = np.random.default_rng(abs(hash(text)) % 1000)
    n, J = 40, 4
    sa, ea = _random_blocks(spec.a, rng, n, J)
    sb, eb = _random_blocks(spec.b, rng, n, J)
    sa[0, 1] = spec.a.scale.nan_code  # a NaN scale
    acc0 = spec.acc.encode(rng.normal(size=n) * 4, "rne", saturate=True)
    if not spec.acc.is_float:
        acc0 = acc0
    got = block_dot(spec, acc0, sa, ea, sb, eb)
    for i in range(n):
        if i == 0 and not getattr(spec.acc, "has_nan", True) and spec.acc.is_float:
            continue
        want = block_dot_ref(spec, int(acc0[i]), sa[i], ea[i], sb[i], eb[i])
        assert int(got[i]) == want, (i, text)


def test_block_dot_sr_matches_reference():
    spec = MacSpec.parse("a=mxfp4_k8,b=mxfp4_k8,acc=e5m3,round=sr,srbits=6")
    rng = np.random.default_rng(5)
    sa, ea = _random_blocks(spec.a, rng, 30, 3)
    sb, eb = _random_blocks(spec.b, rng, 30, 3)
    acc0 = np.zeros(30, dtype=np.uint64)
    rand = rng.integers(0, 64, size=(30, 3))
    got = block_dot(spec, acc0, sa, ea, sb, eb, rand=rand)
    for i in range(30):
        assert int(got[i]) == block_dot_ref(spec, 0, sa[i], ea[i], sb[i], eb[i], rand=rand[i])


def test_int_acc_is_the_fixed_grid_q_w_0():
    # int<W> and q<W>.0 share codes; a block dot product gives the same codes in both, and a
    # term below half an lsb leaves an rne register unchanged (rounded onto the integer grid)
    rng = np.random.default_rng(11)
    for ops in ("mxfp4", "nvfp4", "mxint8"):
        si = MacSpec.parse(f"a={ops},b={ops},acc=int9,round=rne")
        sq = MacSpec.parse(f"a={ops},b={ops},acc=q9.0,round=rne")
        sa, ea = _random_blocks(si.a, rng, 50, 3)
        sb, eb = _random_blocks(si.b, rng, 50, 3)
        acc0 = rng.integers(0, 512, 50, dtype=np.uint64)
        np.testing.assert_array_equal(block_dot(si, acc0, sa, ea, sb, eb), block_dot(sq, acc0, sa, ea, sb, eb))
    spec = MacSpec.parse("a=mxfp4_k2,b=mxfp4_k2,acc=int8")
    one, half = parse_format("fp4_e2m1").encode(np.array([1.0, 0.5]))
    s127, s126 = np.uint64(127), np.uint64(126)
    # T = 0.5 * 1 * 2**-1 = 0.25: rne keeps 3; T = 1 * 1 * 2**-1 = 0.5 onto odd 3 rounds to 4 (tie to even)
    assert int(block_dot(spec, np.uint64(3), [s126], [[half, 0]], [s127], [[one, 0]])) == 3
    assert int(block_dot(spec, np.uint64(3), [s126], [[one, 0]], [s127], [[one, 0]])) == 4
    assert int(block_dot(spec, np.uint64(2), [s126], [[one, 0]], [s127], [[one, 0]])) == 2
    up = spec.replace(rounding="rup")
    assert int(block_dot(up, np.uint64(2), [s126], [[half, 0]], [s127], [[one, 0]])) == 3


def test_block_terms_exact_zero_is_positive_and_e5m2_span_refused():
    spec = MacSpec.parse("a=mxfp8_e5m2_k2,b=mxfp8_e5m2_k2,acc=fp32")
    e5 = parse_format("fp8_e5m2")
    one = np.uint64(127)
    # -0 * 1 + 0: +0
    t = block_terms(spec, [one], [[0x80, 0]], [one], [[0x3C, 0x3C]])
    assert t[0] == 0 and not np.signbit(t[0])
    # 57344**2 + (2**-16)**2 spans 64 bits: refused
    big, tiny = int(e5.encode([57344.0])[0]), 1
    with pytest.raises(ValueError, match="^a block sum of mxfp8_e5m2_k2 x mxfp8_e5m2_k2 needs more than 53 bits"):
        block_terms(spec, [one], [[big, tiny]], [one], [[big, tiny]])


# -- the emulation: Linear, Conv, matmul, every order ----------------------------------------------
def _expected(spec, X, W, init_codes=None):
    """Each output element by the Fraction block reference on zero-padded rows (X (M,K), W (N,K))."""
    from psum.golden.blocks import pad_blocks

    k = spec.a.block
    sa, ea = quantize_blocks(pad_blocks(X, k), spec.a)
    sb, eb = quantize_blocks(pad_blocks(W, k), spec.b)
    out = np.empty((X.shape[0], W.shape[0]))
    for m in range(X.shape[0]):
        for n in range(W.shape[0]):
            acc = 0 if init_codes is None else int(init_codes[n])
            code = block_dot_ref(spec, acc, sa[m], ea[m], sb[n], eb[n])
            out[m, n] = spec.acc.decode(np.uint64(code))
    return out


@pytest.mark.parametrize("text", ["a=mxfp4_k8,b=mxfp4_k8,acc=e5m4", "a=nvfp4_k8,b=nvfp4_k8,acc=e4m3,overflow=sat",
                                  "a=mxfp8_e4m3_k8,b=mxfp8_e4m3_k8,acc=e6m5,round=rtz",
                                  "a=mxfp4_k8,b=mxfp4_k8,acc=e5m4,bsum=e3m2",
                                  "a=mxfp4_k8,b=mxfp4_k8,acc=q6.4,overflow=sat",
                                  "a=nvfp4_k8,b=nvfp4_k8,acc=int7,round=rtz"])
def test_emulated_linear_matches_reference(text):
    import torch
    from psum.golden import emulate

    torch.manual_seed(0)
    spec = MacSpec.parse(text)
    lin = torch.nn.Linear(21, 3, bias=False)  # 21: the last block of 8 is zero padded
    x = torch.randn(5, 21) * 2
    y = emulate(lin, spec, weight_scale="none", act_scale="none")(x).double().numpy()
    want = _expected(spec, x.double().numpy(), lin.weight.detach().double().numpy())
    np.testing.assert_array_equal(y, want.astype(np.float32))


def test_emulated_conv_matches_reference():
    import torch
    from torch.nn import functional as F
    from psum.golden import emulate

    torch.manual_seed(1)
    spec = MacSpec.parse("a=mxfp4_k8,b=mxfp4_k8,acc=e5m5")
    conv = torch.nn.Conv2d(2, 3, 3, padding=1, bias=False)  # K = 18: blocks 8, 8, 2 + 6 zeros
    x = torch.randn(1, 2, 4, 4)
    y = emulate(conv, spec, weight_scale="none", act_scale="none")(x).double()
    cols = F.unfold(x.double(), 3, padding=1)[0].T.numpy()  # (L, K) in the unfold order
    want = _expected(spec, cols, conv.weight.detach().double().reshape(3, -1).numpy())
    np.testing.assert_array_equal(y[0].reshape(3, -1).T.numpy(), want.astype(np.float32))


def test_emulated_orders_match_the_terms():
    # each order of the block terms: block_gemm = accumulate_order(term_spec, exact terms), and
    # one chunk of all 5 blocks with an fp32 acc2 equals seq (the chunk sum enters fp32 exactly)
    import torch
    from psum.golden.emulation.kernels import accumulate_order
    from psum.golden.emulation.mx import block_gemm
    from psum.golden.block_dot import term_spec

    rng = np.random.default_rng(4)
    A = torch.from_numpy(rng.normal(size=(6, 40)))
    B = torch.from_numpy(rng.normal(size=(40, 3)))
    init = torch.zeros(6, 3, dtype=torch.float64)
    rb = np.arange(6) * 3
    for order, acc in (("tree", "e5m3"), ("chunk2", "e5m3"), ("ilv2", "e5m3"), ("mta2w8p4", "e5m3"),
                       ("tree", "int6"), ("ilv2", "q4.2,overflow=sat")):
        spec = MacSpec.parse(f"a=mxfp4_k8,b=mxfp4_k8,acc={acc},order={order}")
        got = block_gemm(spec, A, B, init, row_base=rb, col_stride=1, seed=0)
        sa, ea = quantize_blocks(A.numpy(), spec.a)
        sb, eb = quantize_blocks(B.numpy().T, spec.b)
        T = block_terms(spec, sa[:, None], ea[:, None], sb[None], eb[None])
        want = accumulate_order(term_spec(spec), torch.from_numpy(T.reshape(18, -1)), torch.ones(T.shape[-1], 1,
                                dtype=torch.float64), init.reshape(18, 1), row_base=np.repeat(rb, 3) + np.tile(np.arange(3), 6),
                                col_stride=1, seed=0)
        np.testing.assert_array_equal(got.numpy(), want.reshape(6, 3).numpy())
    seq = MacSpec.parse("a=mxfp4_k8,b=mxfp4_k8,acc=e5m3")
    chunk = seq.replace(order="chunk5", acc2="fp32")
    np.testing.assert_array_equal(block_gemm(seq, A, B, init, row_base=rb, col_stride=1, seed=0).numpy(),
                                  block_gemm(chunk, A, B, init, row_base=rb, col_stride=1, seed=0).numpy())
