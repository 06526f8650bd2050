"""Bit-exactness of the fast golden paths: against the Fraction reference and independent libraries.

The default run checks a fast sample (tens of thousands of cases); ``pytest -m slow`` repeats the
reference comparisons on over a million cases and runs the exhaustive fp8 operand sweeps.
"""

import ml_dtypes
import numpy as np
import pytest
import torch

from psum.golden import NAMED, MacSpec, Rounding, mac_step, parse_format
from psum.golden.reference import encode_ref, mac_step_ref
from psum.golden.stimulus import adversarial_triples, random_triples

MODES = [m.value for m in Rounding]


# ---------------------------------------------------------------------------------------------
# Independent implementations
# ---------------------------------------------------------------------------------------------
ML = {
    "fp8_e4m3": ml_dtypes.float8_e4m3fn, "fp8_e5m2": ml_dtypes.float8_e5m2,
    "fp8_e4m3fnuz": ml_dtypes.float8_e4m3fnuz, "fp8_e5m2fnuz": ml_dtypes.float8_e5m2fnuz,
    "fp6_e3m2": ml_dtypes.float6_e3m2fn, "fp6_e2m3": ml_dtypes.float6_e2m3fn,
    "fp4_e2m1": ml_dtypes.float4_e2m1fn, "e4m3": ml_dtypes.float8_e4m3, "e3m4": ml_dtypes.float8_e3m4,
    "bf16": ml_dtypes.bfloat16,
}


def _values_near_codes(fmt, rng, n, dtype=np.float64):
    """Codes' values, midpoints between neighbours (ties), values one host-ulp off those (in
    ``dtype``, float32 for libraries that convert through float32), and values beyond the range."""
    codes = np.arange(1 << fmt.width, dtype=np.uint64) if fmt.width <= 16 else \
        rng.integers(0, 1 << fmt.width, size=n, dtype=np.uint64)
    v = fmt.decode(codes)
    v = np.sort(v[np.isfinite(v)])
    mids = ((v[1:] + v[:-1]) / 2).astype(dtype)
    big = np.float64(np.finfo(dtype).max)
    ties = np.concatenate([v, mids, np.nextafter(mids, dtype(np.inf)), np.nextafter(mids, dtype(-np.inf)),
                           [min(fmt.max_value * 1.01, big), -min(fmt.max_value * 1.3, big), big, -1e-30]])
    rand = rng.standard_normal(n) * rng.choice([1e-3, 1, 100, 1e5], n)
    return np.concatenate([ties.astype(np.float64), rand.astype(dtype).astype(np.float64)])


@pytest.mark.parametrize("name", list(ML), ids=str)
def test_encode_decode_vs_ml_dtypes(name):
    fmt, dt = parse_format(name), ML[name]
    codes = np.arange(1 << fmt.width, dtype=np.uint64)
    width = 16 if fmt.width > 8 else 8
    ours = fmt.decode(codes)
    theirs = codes.astype(np.uint16 if width == 16 else np.uint8).view(dt).astype(np.float64) \
        if fmt.width in (8, 16) else np.asarray([float(dt(x)) for x in ours])
    assert np.array_equal(ours, theirs, equal_nan=True)
    # ml_dtypes converts float64 through float32 (double rounding), so compare on float32 inputs.
    x = _values_near_codes(fmt, np.random.default_rng(1), 20000, np.float32)
    with np.errstate(over="ignore"):
        ref = x.astype(np.float32).astype(dt).astype(np.float64)
    got = fmt.decode(fmt.encode(x))
    assert np.array_equal(got, ref, equal_nan=True), x[~((got == ref) | (np.isnan(got) & np.isnan(ref)))][:5]


def test_fp16_vs_numpy():
    fmt = NAMED["fp16"]
    codes = np.arange(1 << 16, dtype=np.uint64)
    assert np.array_equal(fmt.decode(codes), codes.astype(np.uint16).view(np.float16).astype(np.float64), equal_nan=True)
    x = _values_near_codes(fmt, np.random.default_rng(2), 100000)
    assert np.array_equal(fmt.encode(x), x.astype(np.float16).view(np.uint16).astype(np.uint64))


def test_bf16_vs_torch():
    fmt = NAMED["bf16"]
    x = _values_near_codes(fmt, np.random.default_rng(3), 100000, np.float32)
    theirs = torch.from_numpy(x.astype(np.float32)).to(torch.bfloat16).view(torch.int16).numpy()
    assert np.array_equal(fmt.encode(x), theirs.view(np.uint16).astype(np.uint64))


def test_fp16_unfused_mac_vs_numpy_arithmetic():
    """numpy float16 + and * are correctly rounded (float32 has >= 2*11+2 bits: double rounding is
    innocuous), so an unfused fp16 MAC in rne equals float16(float16(a*b) + acc)."""
    spec = MacSpec.parse("a=fp16,b=fp16,acc=fp16,prod=fp16,fused=no")
    rng = np.random.default_rng(4)
    for acc, a, b in (random_triples(spec, 100000, rng), adversarial_triples(spec, 100000, rng)):
        h = lambda c: c.astype(np.uint16).view(np.float16)  # noqa: E731
        with np.errstate(all="ignore"):
            ref = (h(a) * h(b) + h(acc)).view(np.uint16).astype(np.uint64)
        got = mac_step(spec, acc, a, b)
        nan = np.isnan(h(ref))
        assert np.array_equal(got[~nan], ref[~nan])
        assert np.isnan(h(got[nan])).all()


def test_bf16_unfused_mac_vs_torch_arithmetic():
    spec = MacSpec.parse("a=bf16,b=bf16,acc=bf16,prod=bf16,fused=no")
    rng = np.random.default_rng(5)
    for acc, a, b in (random_triples(spec, 100000, rng), adversarial_triples(spec, 100000, rng)):
        t = lambda c: torch.from_numpy(c.astype(np.uint16).view(np.int16)).view(torch.bfloat16)  # noqa: E731
        ref = (t(a) * t(b) + t(acc)).view(torch.int16).numpy().view(np.uint16).astype(np.uint64)
        got = mac_step(spec, acc, a, b)
        nan = torch.isnan(t(ref)).numpy()
        assert np.array_equal(got[~nan], ref[~nan])
        assert torch.isnan(t(got[nan])).all()


# ---------------------------------------------------------------------------------------------
# The Fraction reference
# ---------------------------------------------------------------------------------------------
ENCODE_FORMATS = ["fp16", "bf16", "fp8_e4m3", "fp8_e5m2fnuz", "fp4_e2m1", "e5m10_ftz", "e3m4", "int8", "uint4", "int20"]


def _encode_cases(fmt, rng, n):
    if fmt.is_float:
        return _values_near_codes(fmt, rng, n)[: 3 * n]
    x = rng.standard_normal(n) * fmt.max_int
    return np.concatenate([x, np.round(x) + 0.5, np.round(x) - 0.5, [fmt.max_int + 0.5, fmt.min_int - 0.7]])


def check_encode(fmt_name, mode, n, seed):
    fmt = parse_format(fmt_name)
    rng = np.random.default_rng(seed)
    x = _encode_cases(fmt, rng, n)
    rand = rng.integers(0, 1 << 5, size=x.size) if mode == "sr" else None
    for saturate in (False, True):
        got = fmt.encode(x, mode, saturate=saturate, sr_bits=5 if rand is not None else 0, rand=rand)
        for i, v in enumerate(x):
            r = None if rand is None else int(rand[i])
            want = encode_ref(fmt, float(v), mode, saturate=saturate, rand=r, sr_bits=5 if r is not None else 0)
            assert int(got[i]) == want, (fmt_name, mode, saturate, v, hex(int(got[i])), hex(want))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fmt_name", ENCODE_FORMATS)
def test_encode_vs_reference(fmt_name, mode):
    check_encode(fmt_name, mode, 300, seed=hash((fmt_name, mode)) % 2**32)


MAC_SPECS = [
    "a=fp16,b=fp16,acc=fp16",
    "a=fp16,b=fp16,acc=fp32",
    "a=bf16,b=bf16,acc=fp32",
    "a=bf16,b=bf16,acc=e6m9,prod=bf16,fused=no",
    "a=fp8_e4m3,b=fp8_e4m3,acc=e5m10",
    "a=fp8_e5m2,b=fp8_e5m2,acc=e6m7",
    "a=fp8_e4m3,b=fp8_e5m2,acc=e4m6",
    "a=fp4_e2m1,b=fp4_e2m1,acc=e4m3fn",
    "a=fp4_e2m1,b=fp4_e2m1,acc=e4m3fn,overflow=sat",
    "a=fp8_e4m3fnuz,b=fp8_e4m3fnuz,acc=e5m6fnuz",
    "a=fp6_e3m2,b=fp6_e2m3,acc=e3m4fin",
    "a=int8,b=int8,acc=e6m9",
    "a=int8,b=fp8_e4m3,acc=fp16",
    "a=fp16,b=fp16,acc=e5m10_ftz",
    "a=fp16,b=fp16,acc=fp16,overflow=sat",
    "a=fp8_e5m2,b=fp8_e5m2,acc=e5m2,prod=e5m2,fused=no",
    "a=fp32,b=fp32,acc=fp32",
    "a=int8,b=int8,acc=int32",
    "a=int8,b=int8,acc=int16,overflow=sat",
    "a=int4,b=int4,acc=int12",
    "a=uint8,b=int8,acc=int18,prod=int12,fused=no",
    "a=int8,b=int8,acc=uint12,overflow=sat",
]


def check_mac(spec_text, mode, n, seed):
    try:
        spec = MacSpec.parse(spec_text).replace(rounding=mode, sr_bits=6 if mode == "sr" else 0)
    except ValueError as exc:  # a mode an integer accumulator never uses is refused (tests/test_spec.py)
        assert str(exc).startswith(f"round={mode} has no effect on acc="), exc
        return
    rng = np.random.default_rng(seed)
    triples = [random_triples(spec, n, rng), adversarial_triples(spec, 3 * n, rng)]
    for acc, a, b in triples:
        rand = rng.integers(0, 1 << 6, size=acc.size) if mode == "sr" else None
        try:
            got = mac_step(spec, acc, a, b, rand)
        except ValueError:  # NaN into a format without NaN; the reference raises too
            got = None
        for i in range(acc.size):
            r = None if rand is None else int(rand[i])
            try:
                want = mac_step_ref(spec, int(acc[i]), int(a[i]), int(b[i]), r)
            except ValueError:
                assert got is None
                continue
            assert got is not None and int(got[i]) == want, (
                str(spec), hex(int(acc[i])), hex(int(a[i])), hex(int(b[i])), r, hex(int(got[i])), hex(want))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("spec_text", MAC_SPECS)
def test_mac_step_vs_reference(spec_text, mode):
    check_mac(spec_text, mode, 60, seed=abs(hash((spec_text, mode))) % 2**32)


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("spec_text", MAC_SPECS)
def test_mac_step_vs_reference_million(spec_text, mode):
    """22 specs x 7 modes x 4 x 1700 = 1.05 M cases against the reference."""
    check_mac(spec_text, mode, 1700, seed=1 + abs(hash((spec_text, mode))) % 2**32)


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fmt_name", ENCODE_FORMATS)
def test_encode_vs_reference_many(fmt_name, mode):
    check_encode(fmt_name, mode, 6000, seed=7 + abs(hash((fmt_name, mode))) % 2**32)


@pytest.mark.slow
@pytest.mark.parametrize("spec_text", [
    "a=fp8_e4m3,b=fp8_e4m3,acc=e5m10", "a=fp8_e5m2,b=fp8_e5m2,acc=e6m7",
    "a=fp8_e4m3fnuz,b=fp8_e5m2fnuz,acc=fp16", "a=fp8_e4m3,b=fp8_e4m3,acc=e4m3fn,round=rtz",
])
def test_fp8_exhaustive_pairs(spec_text):
    """Every pair of 8-bit operands from several accumulator states against the reference."""
    spec = MacSpec.parse(spec_text)
    a, b = np.meshgrid(np.arange(256, dtype=np.uint64), np.arange(256, dtype=np.uint64))
    a, b = a.ravel(), b.ravel()
    one = spec.acc.encode([1.0, -3.5, 1e-3, spec.acc.max_value, 0.0])
    for acc0 in one:
        acc = np.full(a.size, acc0, dtype=np.uint64)
        got = mac_step(spec, acc, a, b)
        for i in range(a.size):
            assert int(got[i]) == mac_step_ref(spec, int(acc0), int(a[i]), int(b[i])), (hex(int(a[i])), hex(int(b[i])))
