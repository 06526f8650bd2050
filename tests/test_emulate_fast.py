"""The emulated ops' fast paths against the reference paths, bit for bit.

* :func:`psum.golden.emulation.ops.round_rne_saturate` (torch operand quantisation, float64 and
  float32 inputs) and its C twin (``kernels.quantize_rne_saturate``) against golden's encoder
  (``fmt.encode(v, "rne", saturate=True)`` then ``decode``, i.e. ``round_float``) on every input
  class: every code of the format, the midpoints between neighbouring codes (ties) and one float64
  / float32 ulp either side, the overflow threshold, the subnormal range and below, +-0, +-inf,
  and random float32 values (bit patterns, and magnitudes spread over the format's range);
  ``quantize_operand`` on both quantisers, with double-rounding traps for the float32 path.
* The C im2row against torch's rows and ``unfold`` + transpose; ``kernels._nz_range`` and the
  ``a_range`` hint; ``Site.observe``; the ``$PSUM_EMULATE_PATH`` switch and its one-line error.
* Whole emulated ops (conv 1-3d, transposed conv, linear, matmul) with ``PSUM_EMULATE_PATH=fast``
  against ``reference`` (golden's numpy encoder, float64 operands, im2col by ``unfold`` and a copy).

Slow tier: the random classes with 4 M values per format
(``.venv/bin/python -m pytest -q -m slow tests/test_emulate_fast.py``).
"""

import numpy as np
import pytest
import torch

import psum
from psum.golden.formats import parse_format
from psum.golden.emulation import ops
from psum.golden.emulation.ops import emulation_path, fast_quantize_ok, round_rne_saturate

# fp16/bf16 (IEEE), OCP fp8 (fn and ieee), a custom e4m4, e5m6 / e6m9 accumulator-like formats,
# fnuz, P3109 binary8p3 (no -0, inf at the top), a flush-to-zero format, fp32, integers
FLOAT_FORMATS = ["fp16", "bf16", "fp8_e4m3", "fp8_e5m2", "e4m4", "e5m6", "e6m9", "e4m3fnuz",
                 "binary8p3", "e3m2_ftz", "e2m1", "fp32", "e7m2_b120", "e7m3_b126"]
INT_FORMATS = ["int8", "int4", "uint8", "int16", "int24"]


def _reference(fmt, v: np.ndarray) -> np.ndarray:
    return fmt.decode(fmt.encode(v, "rne", saturate=True))


def _same(got: np.ndarray, ref: np.ndarray):
    """Equal values and equal zero signs (no NaN can come out: NaN is mapped to 0 before)."""
    bad = ~((got == ref) & (np.signbit(got) == np.signbit(ref)))
    assert not bad.any(), f"{bad.sum()} differ, first at {np.flatnonzero(bad.ravel())[:3]}"


def _check(fmt, v: np.ndarray):
    v = np.asarray(v, dtype=np.float64)
    got = round_rne_saturate(torch.from_numpy(v.copy()), fmt).numpy()
    _same(got, _reference(fmt, v))


def _float_classes(fmt) -> np.ndarray:
    """Every code's value, ties, their float64/float32 neighbours, overflow and underflow edges."""
    if fmt.width <= 16:
        vals = fmt.decode(np.arange(1 << fmt.width, dtype=np.uint64))
    else:  # fp32: every mantissa pattern of a few binades, and every binade's edges
        rng = np.random.default_rng(1)
        codes = rng.integers(0, 1 << fmt.width, 1 << 16, dtype=np.uint64)
        edges = (np.arange(1 << fmt.exp_bits, dtype=np.uint64)[:, None] << np.uint64(fmt.man_bits)
                 ) + np.array([0, 1, 2, (1 << fmt.man_bits) - 1], dtype=np.uint64)
        vals = fmt.decode(np.concatenate([codes, edges.ravel()]))
    vals = vals[np.isfinite(vals)]
    pos = np.unique(np.abs(vals))
    # the next value above the largest finite one with an unbounded exponent: ties at the top
    top = np.ldexp(1.0, int(np.floor(np.log2(fmt.max_value))) - fmt.man_bits)
    pos = np.append(pos, [fmt.max_value + top, fmt.max_value + 2 * top, 2 * fmt.max_value])
    mids = (pos[:-1] + pos[1:]) / 2  # exact in float64: neighbours differ in <= 25 bits here
    pts = np.concatenate([pos, mids, [fmt.min_subnormal / 2, fmt.min_subnormal / 4, fmt.min_normal / 2,
                                      1e-300, 5e-324, 1e300, np.finfo(np.float64).max]])
    with np.errstate(over="ignore"):  # float64's max goes to inf: one more class
        out = [pts, np.nextafter(pts, np.inf), np.nextafter(pts, -np.inf)]
    f32 = pts[(pts < 3e38) & (pts > 1e-44)].astype(np.float32)  # float32 neighbours of every class
    out += [np.nextafter(f32, np.float32(np.inf)).astype(np.float64),
            np.nextafter(f32, np.float32(0)).astype(np.float64)]
    allv = np.concatenate(out)
    return np.concatenate([allv, -allv, [0.0, -0.0, np.inf, -np.inf]])


@pytest.mark.parametrize("name", FLOAT_FORMATS)
def test_round_rne_saturate_every_class(name):
    fmt = parse_format(name)
    assert fast_quantize_ok(fmt)
    _check(fmt, _float_classes(fmt))


F32_FORMATS = [n for n in FLOAT_FORMATS if fast_quantize_ok(parse_format(n), torch.float32)]


def test_float32_path_formats():
    # bf16, fp32 and e7m3_b126 have subnormals below float32's normal range (bf16, fp32 also
    # a range beyond its top binade): they stay on float64; e7m2_b120's smallest is 2**-121
    assert F32_FORMATS == ["fp16", "fp8_e4m3", "fp8_e5m2", "e4m4", "e5m6", "e6m9", "e4m3fnuz",
                           "binary8p3", "e3m2_ftz", "e2m1", "e7m2_b120"]


def _check32(fmt, v: np.ndarray):
    """The float32 path on float32 inputs against the reference on the same (exact) values."""
    v = np.asarray(v, dtype=np.float32)
    got = round_rne_saturate(torch.from_numpy(v.copy()), fmt)
    assert got.dtype == torch.float32
    _same(got.double().numpy(), _reference(fmt, v.astype(np.float64)))


@pytest.mark.parametrize("name", F32_FORMATS)
def test_round_rne_saturate_float32_every_class(name):
    fmt = parse_format(name)
    with np.errstate(over="ignore"):
        pts = _float_classes(fmt).astype(np.float32)  # ties and neighbours as float32 sees them
    tiny = np.float32(2.0**-126) * np.array([1, 0.5, 2.0**-23, 0.75, 3], dtype=np.float32)
    _check32(fmt, np.concatenate([pts, tiny, -tiny, np.nextafter(tiny, np.float32(1))]))
    _check32(fmt, _random_f32(1 << 16, fmt, seed=7))


@pytest.mark.parametrize("name", INT_FORMATS)
def test_round_rne_saturate_int_classes(name):
    fmt = parse_format(name)
    assert fast_quantize_ok(fmt)
    k = np.arange(fmt.min_int - 3, fmt.max_int + 4, dtype=np.float64)
    if k.size > 1 << 18:
        k = np.concatenate([k[:4096], k[-4096:], np.linspace(fmt.min_int, fmt.max_int, 1 << 16).round()])
    v = np.concatenate([k, k + 0.5, k - 0.5, np.nextafter(k + 0.5, np.inf), np.nextafter(k + 0.5, -np.inf),
                        k + 0.25, [0.0, -0.0, -0.3, -0.5, 0.5, np.inf, -np.inf, 1e300, -1e300]])
    _check(fmt, v)


def _random_f32(n: int, fmt, seed: int) -> np.ndarray:
    """Random float32 values: raw bit patterns (every class, NaN mapped to 0 as the callers do)
    and log-uniform magnitudes over the format's range and two binades beyond."""
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 1 << 32, n // 2, dtype=np.uint64).astype(np.uint32).view(np.float32).copy()
    raw[np.isnan(raw)] = 0
    raw = np.nan_to_num(raw.astype(np.float64), nan=0.0)  # float32 -> float64: exact
    lo, hi = np.log2(getattr(fmt, "min_subnormal", 0.5)) - 2, np.log2(fmt.max_value) + 2
    with np.errstate(over="ignore"):  # fp32's top binades: inf, a class of its own
        mag = np.exp2(rng.uniform(lo, hi, n - n // 2)).astype(np.float32).astype(np.float64)
    return np.concatenate([raw, np.where(rng.random(mag.size) < 0.5, -mag, mag)])


@pytest.mark.parametrize("name", FLOAT_FORMATS + ["int8"])
def test_round_rne_saturate_random_float32(name):
    fmt = parse_format(name)
    _check(fmt, _random_f32(1 << 17, fmt, seed=len(name)))


@pytest.mark.slow
@pytest.mark.parametrize("name", FLOAT_FORMATS + INT_FORMATS)
def test_round_rne_saturate_random_float32_millions(name):
    fmt = parse_format(name)
    for seed in range(4):
        _check(fmt, _random_f32(1 << 20, fmt, seed=100 + seed))


def test_round_rne_saturate_refuses_what_it_cannot_do():
    # no stored mantissa bit: "even" is the code's parity (P3109 binary8p1), left to golden
    assert not fast_quantize_ok(parse_format("binary8p1"))
    assert not fast_quantize_ok(parse_format("int64"))
    assert not fast_quantize_ok(parse_format("q8.8"))


@pytest.mark.parametrize("name", FLOAT_FORMATS)
def test_c_quantizer_every_class(name):
    # the C twin (psum_quantize_*) on the same input classes, float64 and float32 inputs
    from psum.golden.emulation.kernels import c_kernel_available, quantize_rne_saturate

    if not c_kernel_available():
        pytest.skip("no C kernel")
    fmt = parse_format(name)
    consts = ops._float_consts(fmt, torch.float64) + (fmt.subnormals, fmt.has_neg_zero)
    v = _float_classes(fmt)
    for out in (torch.float64, torch.float32) if ops._in_float32(fmt) else (torch.float64,):
        got = quantize_rne_saturate(torch.from_numpy(v.copy()), 1.0, consts, out)
        _same(got.double().numpy(), _reference(fmt, v))
        with np.errstate(over="ignore"):
            v32 = v.astype(np.float32)
        got = quantize_rne_saturate(torch.from_numpy(v32), 0.5, consts, out)
        _same(got.double().numpy(), _reference(fmt, v32.astype(np.float64) / 0.5))


@pytest.fixture(params=[True, False], ids=["c", "torch"])
def c_quantize(request, monkeypatch):
    monkeypatch.setattr(ops, "_C_QUANTIZE", request.param)
    return request.param


def test_quantize_operand_fast_equals_reference(monkeypatch, c_quantize):
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.standard_normal((64, 33)).astype(np.float32) * 50)
    x[0, :4] = torch.tensor([float("nan"), float("inf"), -float("inf"), -0.0])
    pow2 = torch.exp2(torch.randint(-3, 4, (64, 1)).double())  # per-row weight scales
    extreme = pow2.clone()
    extreme[:4, 0] = torch.tensor([2.0**-126, 2.0**126, 2.0**-128, 2.0**127])
    not_pow2 = pow2.clone()
    not_pow2[5, 0] = 3.0  # one row not a power of two: the float64 path for the whole tensor
    for name in FLOAT_FORMATS + INT_FORMATS + ["binary8p1"]:
        fmt = parse_format(name)
        for scale in (pow2, extreme, not_pow2):
            for xs in (x, x.double()):
                monkeypatch.setenv("PSUM_EMULATE_PATH", "reference")
                ref = ops.quantize_operand(xs, fmt, scale)
                monkeypatch.setenv("PSUM_EMULATE_PATH", "fast")
                got = ops.quantize_operand(xs, fmt, scale)
                assert got.dtype == ref.dtype == torch.float64
                _same(got.numpy(), ref.numpy())


@pytest.mark.parametrize("name", F32_FORMATS + ["bf16", "e7m3_b126", "int8"])
def test_quantize_operand_scalar_scale_float32_equals_reference(monkeypatch, name, c_quantize):
    # activations: float32 x, a Python-float power-of-two scale -> the float32 path where allowed;
    # extreme scales push quotients into float32's subnormal range and past its overflow
    fmt = parse_format(name)
    rng = np.random.default_rng(4)
    x = torch.from_numpy(np.concatenate([rng.standard_normal(4096), np.exp2(rng.uniform(-149, 127, 4096))
                                         * rng.choice([-1, 1], 4096)]).astype(np.float32))
    x[:5] = torch.tensor([float("nan"), float("inf"), -float("inf"), -0.0, 1e-45])
    # double-rounding traps: with s = 2**126, x / s = t +- 2**-150 for ties t of the format's
    # subnormal grid lands on t after float32's subnormal rounding (bits below 2**-149)
    t = fmt.min_subnormal / 2 * np.arange(1, 16, 2) if fmt.is_float else np.array([0.5])
    trap = np.concatenate([t + 2.0**-150, t - 2.0**-150, t + 2.0**-149]) * 2.0**126
    trap = trap[trap.astype(np.float32).astype(np.float64) == trap].astype(np.float32)
    x = torch.cat([x, torch.from_numpy(trap), -torch.from_numpy(trap)])
    for scale in (1.0, 0.25, 2.0**-126, 2.0**126, 2.0**-127, 2.0**-128, 2.0**-129, 2.0**-140, 2.0**127,
                  2.0**130, 3.0, 2.0**100):
        monkeypatch.setenv("PSUM_EMULATE_PATH", "reference")
        ref = ops.quantize_operand(x, fmt, scale)
        monkeypatch.setenv("PSUM_EMULATE_PATH", "fast")
        _same(ops.quantize_operand(x, fmt, scale).numpy(), ref.numpy())


def test_emulation_path_bad_value(monkeypatch):
    monkeypatch.setenv("PSUM_EMULATE_PATH", "quick")
    with pytest.raises(ValueError, match=r"^PSUM_EMULATE_PATH must be one of fast, reference, not 'quick'$"):
        emulation_path()
    monkeypatch.setenv("PSUM_EMULATE_PATH", "")
    assert emulation_path() == "fast"


# ---------------------------------------------------------------------------------------------
# whole ops: fast against reference
# ---------------------------------------------------------------------------------------------
SPECS = ["a=fp16,b=fp16,acc=fp16", "a=bf16,b=bf16,acc=e6m9,prod=bf16,fused=no",
         "a=fp8_e4m3,b=fp8_e4m3,acc=e5m6", "a=int8,b=int8,acc=int32", "a=int8,b=int8,acc=int16,overflow=sat",
         "a=fp8_e5m2,b=fp8_e4m3,acc=fp16,round=sr", "a=fp16,b=fp16,acc=fp16,order=chunk8",
         "a=binary8p1,b=binary8p3,acc=fp16"]


def _run_both(monkeypatch, model, x, spec, **kw):
    outs = []
    for path in ("reference", "fast"):
        monkeypatch.setenv("PSUM_EMULATE_PATH", path)
        q = psum.emulate(model, spec, **kw)
        with torch.no_grad():
            outs.append((q(x), q(x[:1])))  # the first call calibrates; the second reuses the scales
    (r1, r2), (f1, f2) = outs
    for r, f in ((r1, f1), (r2, f2)):
        assert r.dtype == f.dtype and r.shape == f.shape
        rn, fn = r.double().numpy(), f.double().numpy()
        same = (rn == fn) & (np.signbit(rn) == np.signbit(fn)) | np.isnan(rn) & np.isnan(fn)
        assert same.all(), f"{(~same).sum()} outputs differ"
    return r1


@pytest.mark.parametrize("spec", SPECS)
def test_conv2d_fast_equals_reference(monkeypatch, spec):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(6, 8, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(8, 4, (3, 2), stride=2, dilation=(1, 2), groups=2, bias=False))
    x = torch.randn(3, 6, 9, 10) * 3
    x[0, 0, 0, :3] = torch.tensor([0.0, -0.0, 1e-30])  # exact zeros of both signs, a tiny value
    _run_both(monkeypatch, model, x, spec)


@pytest.mark.parametrize("kind", ["conv1d", "conv3d", "convt2d", "linear", "matmul", "padding_same"])
def test_other_ops_fast_equals_reference(monkeypatch, kind):
    torch.manual_seed(1)
    nn = torch.nn
    x = {"conv1d": torch.randn(2, 4, 11), "conv3d": torch.randn(2, 3, 4, 5, 5),
         "convt2d": torch.randn(2, 4, 5, 5), "linear": torch.randn(5, 7, 12),
         "matmul": torch.randn(2, 6, 8), "padding_same": torch.randn(2, 3, 7, 8)}[kind]
    if kind == "matmul":
        class M(nn.Module):
            def forward(self, t):
                return t @ t.transpose(1, 2)
        model = M()
    else:
        model = {"conv1d": nn.Conv1d(4, 6, 3, stride=2, padding=2), "conv3d": nn.Conv3d(3, 4, (2, 3, 3), padding=1),
                 "convt2d": nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1),
                 "linear": nn.Linear(12, 9),
                 "padding_same": nn.Conv2d(3, 5, (2, 3), padding="same", padding_mode="reflect")}[kind]
    for spec in SPECS[:4]:
        _run_both(monkeypatch, model, x, spec)


def test_conv_overflow_and_nan_inputs_fast_equals_reference(monkeypatch):
    # activations far beyond the calibrated range saturate; a NaN input becomes 0; accumulators
    # overflow to inf (fp8 -> e5m6 saturating and not)
    torch.manual_seed(2)
    model = torch.nn.Conv2d(3, 4, 3, padding=1)
    x = torch.randn(2, 3, 6, 6)
    calib = x.clone()
    x[1] *= 1e4
    x[0, 1, 2, 2] = float("nan")
    for spec in ("a=fp8_e4m3,b=fp8_e4m3,acc=e5m6", "a=fp8_e4m3,b=fp8_e4m3,acc=e5m6,overflow=sat",
                 "a=int8,b=int8,acc=int16"):
        _run_both(monkeypatch, model, x, spec, calib=calib)


def test_nz_range_bits_equal_plain_masking():
    # kernels._nz_range reads magnitudes off the bit patterns; the obvious version masks zeros
    import math

    from psum.golden.emulation.kernels import _nz_range

    def plain(t):
        ax = t.abs()
        return float(torch.where(ax > 0, ax, math.inf).min()), float(ax.max())

    rng = np.random.default_rng(5)
    cases = [torch.zeros(3), torch.tensor([0.0, -0.0]), torch.tensor([float("nan")]),
             torch.tensor([float("inf"), 0.0, float("nan")]), torch.tensor([-float("inf"), 0.5]),
             torch.tensor([0.0, -3.0, 1e-40, 2.0]), torch.tensor([1e-45, -0.0])]
    for _ in range(200):
        n = int(rng.integers(1, 40))
        raw = rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32).view(np.float32)
        cases.append(torch.from_numpy(np.where(rng.random(n) < 0.3, np.float32(0), raw)))
        raw64 = rng.integers(0, 1 << 63, n, dtype=np.int64).view(np.float64)
        cases.append(torch.from_numpy(np.where(rng.random(n) < 0.3, 0.0, raw64)))
    views = [torch.tensor([[0.0, -2.0, 1e-3]]).expand(5, 3), torch.tensor([[0.0], [-7.0]]).expand(2, 4),
             torch.zeros(1, 1).expand(3, 3)]  # broadcast inits
    for t in cases + views + [c.double() for c in cases[:7]] + [torch.arange(-3, 4).reshape(7, 1)[:, 0]]:
        (mn, mx), (pm, px) = _nz_range(t), plain(t)
        assert mn == pm and (mx == px or math.isnan(mx) and math.isnan(px)), t


def test_observe_equals_abs_max():
    # Site.observe takes max |x| from aminmax (one pass); the plain abs().max() is the reference
    site = ops.Site("s", "conv2d", "a=fp16,b=fp16,acc=fp16")
    cases = [torch.tensor([-3.0, 2.0]), torch.tensor([-0.0, 0.0]), torch.tensor([1.0, float("nan")]),
             torch.tensor([-float("inf"), 1.0]), torch.tensor([5.0, -7.5]).double(), torch.randn(4, 5, 6)]
    for i, t in enumerate(cases):
        site.amax.clear()
        site.observe("a", t)
        want = max(0.0, float(t.abs().max()))  # the former observe, NaN included
        got = site.amax["a"]
        assert got == want or (np.isnan(got) and np.isnan(want)), (i, got, want)
    site.amax.clear()
    site.observe("a", torch.empty(0))
    assert site.amax["a"] == 0.0


@pytest.mark.parametrize("shape,k,stride,dilation", [
    ((2, 3, 7, 8), (3, 3), (1, 1), (1, 1)), ((1, 5, 9, 6), (3, 2), (2, 1), (1, 2)),
    ((3, 2, 5, 5), (1, 1), (2, 2), (1, 1)), ((2, 4, 6, 11), (2, 5), (1, 3), (2, 1)),
    ((1, 1, 3, 3), (3, 3), (1, 1), (1, 1))])
def test_im2row_c_equals_torch_and_unfold(monkeypatch, shape, k, stride, dilation):
    # the C copy loop, the torch strided copy and unfold + transpose give the same rows, also on
    # a channel slice (a group: strided batch dimension)
    from psum.golden.emulation.kernels import c_kernel_available

    x = torch.randn(*shape)
    for xs in (x, torch.cat([x, x], dim=1)[:, 1:1 + shape[1]]):
        K = shape[1] * k[0] * k[1]
        want = ops._im2col(xs, k, stride, dilation).transpose(1, 2).reshape(-1, K)
        monkeypatch.setattr(ops, "_C_IM2ROW", False)
        assert torch.equal(ops._im2row(xs, k, stride, dilation), want)
        monkeypatch.setattr(ops, "_C_IM2ROW", True)
        got = ops._im2row(xs, k, stride, dilation)
        assert got.is_contiguous() and torch.equal(got, want)
    if c_kernel_available():
        from psum.golden.emulation.kernels import im2row2d

        assert im2row2d(x, k, stride, dilation) is not None
        assert im2row2d(x.double(), k, stride, dilation) is None  # float64: the torch rows


def test_accumulate_a_range_lazy_and_conservative():
    # a_range only steers the choice of an exact path: a callable is called at most once and not
    # at all when the formats settle it; any bounds (wide ones too) give the same values
    from psum.golden.emulation.kernels import accumulate

    rng = np.random.default_rng(6)
    calls = []

    def bounds(lo, hi):
        def f():
            calls.append(1)
            return lo, hi
        return f
    for spec, fmt in (("a=fp16,b=fp16,acc=fp16", "fp16"), ("a=bf16,b=bf16,acc=e6m9,prod=bf16,fused=no", "bf16"),
                      ("a=int8,b=int8,acc=int32", "int8")):
        f = parse_format(fmt)
        A = torch.from_numpy(_reference(f, rng.standard_normal((9, 40)) * 3))
        B = torch.from_numpy(_reference(f, rng.standard_normal((40, 16))))
        init = torch.zeros(9, 16, dtype=torch.float64)
        want = accumulate(spec, A, B, init)
        calls.clear()
        got = accumulate(spec, A, B, init, a_range=bounds(2.0**-200, 2.0**200))  # wide: float64 lanes
        assert torch.equal(got, want) and len(calls) <= 1
        if fmt == "fp16":
            assert not calls  # fp16 products are normal float32 numbers whatever the data
        if fmt == "bf16":
            assert len(calls) == 1


def test_bad_emulation_path_refused_before_work(monkeypatch, capsys):
    monkeypatch.setenv("PSUM_EMULATE_PATH", "quick")
    msg = "PSUM_EMULATE_PATH must be one of fast, reference, not 'quick'"
    with pytest.raises(ValueError, match=f"^{msg}$"):
        psum.emulate(torch.nn.Linear(3, 2), "a=fp16,b=fp16,acc=fp16")
    from psum.cli.main import main

    assert main(["eval", "--model", "lenet5", "--spec", "a=fp16,b=fp16,acc=fp16", "--limit", "2"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"psum eval: error: {msg}"


@pytest.mark.parametrize("model, message", [
    ("net", "model must be a torch.nn.Module (a network or a bare layer such as nn.Linear), not str: load a built-in "
            "one with psum.load_checkpoint(name, dataset)[0]"),
    (5, "model must be a torch.nn.Module (a network or a bare layer such as nn.Linear), not int"),
    (torch.zeros(2), "model must be a torch.nn.Module (a network or a bare layer such as nn.Linear), not Tensor"),
])
def test_emulate_refuses_what_is_not_a_module(model, message):
    # Before: AttributeError: 'str' object has no attribute 'eval'
    with pytest.raises(TypeError) as info:
        psum.emulate(model, "a=int8,b=int8,acc=int16")
    assert str(info.value) == message
