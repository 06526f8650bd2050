"""Formats: validation messages, derived properties, text round trips and exhaustive code round trips."""

import dataclasses

import numpy as np
import pytest

from psum.golden import NAMED, FloatFormat, IntFormat, MacSpec, parse_format


@pytest.mark.parametrize("name, max_value", [
    ("fp32", 3.4028234663852886e38), ("fp16", 65504.0), ("bf16", 3.3895313892515355e38),
    ("fp8_e4m3", 448.0), ("fp8_e5m2", 57344.0), ("fp8_e4m3fnuz", 240.0), ("fp8_e5m2fnuz", 57344.0),
    ("fp6_e3m2", 28.0), ("fp6_e2m3", 7.5), ("fp4_e2m1", 6.0), ("tf32", 3.4011621342146535e38),
])
def test_named_max(name, max_value):
    assert NAMED[name].max_value == max_value


def test_derived_fp16():
    f = parse_format("fp16")
    assert (f.width, f.precision, f.bias, f.emin, f.emax) == (16, 11, 15, -14, 15)
    assert f.min_normal == 2.0**-14 and f.min_subnormal == 2.0**-24
    assert f.inf_code == 0x7C00 and f.nan_code == 0x7E00


def test_policies_codes():
    assert NAMED["fp8_e4m3"].nan_code == 0x7F and NAMED["fp8_e4m3"].inf_code is None
    assert NAMED["fp8_e4m3fnuz"].nan_code == 0x80 and NAMED["fp8_e4m3fnuz"].bias == 8
    assert NAMED["fp4_e2m1"].nan_code is None and not NAMED["fp4_e2m1"].has_inf


@pytest.mark.parametrize("text", ["e5m10", "e4m3fn", "e4m3fnuz", "e3m2fin", "e5m10_ftz", "e6m9_b20",
                                  "e4m3fn_ftz_b6", "int8", "uint4", "int32", "fp16", "bf16", "fp8_e5m2"])
def test_text_round_trip(text):
    fmt = parse_format(text)
    assert parse_format(str(fmt)) == fmt
    assert parse_format(fmt.tag) == fmt


@pytest.mark.parametrize("text, message", [
    ("e0m3", "format 'e0m3': exponent bits must be an integer between 2 and 11, not 0"),
    ("e5m-1", "format 'e5m-1': mantissa bits must be an integer between 1 and 52, not -1"),
    ("int0", "format 'int0': integer width must be an integer between 2 and 64, not 0"),
    ("uint0", "format 'uint0': integer width must be an integer between 1 and 64, not 0"),
    ("e12m3", "format 'e12m3': exponent bits must be an integer between 2 and 11, not 12"),
    ("fp7", "unknown format 'fp7'; use a name from `psum formats` (fp32, bf16, fp8_e4m3, ...), "
            "e<E>m<M>[fn|fnuz|fin|p3109][_ftz][_b<bias>], binary8p<P> (IEEE P3109, P=1..7), e8m0, "
            "int<N>, uint<N> or q<I>.<F> (fixed point)"),
])
def test_bad_formats(text, message):
    with pytest.raises(ValueError) as info:
        parse_format(text)
    assert str(info.value) == message


def test_bad_constructor_args():
    with pytest.raises(ValueError, match="^special-value policy must be one of ieee, fn, fnuz, fin, p3109, not 'x'$"):
        FloatFormat(4, 3, specials="x")
    # a wrong type is a TypeError (as in Amaranth), with the same one message shape as a bad value
    with pytest.raises(TypeError, match="^integer width must be an integer between 2 and 64, not 1.5$"):
        IntFormat(1.5)
    with pytest.raises(TypeError, match="^exponent bits must be an integer between 2 and 11, not True$"):
        FloatFormat(True, 3)


# e8m0 (no sign, no zero) round-trips in tests/test_p3109.py
SMALL = [f for f in NAMED.values() if f.width <= 16 and str(f) != "e8m0"] + [parse_format(t) for t in (
    "e5m10_ftz", "e4m3", "e3m4", "e6m9", "e4m3fn_ftz", "e5m2fnuz_ftz", "e2m1fin_b2", "e4m6", "e6m7")]


@pytest.mark.parametrize("fmt", SMALL, ids=str)
def test_every_code_round_trips(fmt):
    """decode then encode returns the same code for every code (NaNs: some NaN)."""
    codes = np.arange(1 << fmt.width, dtype=np.uint64)
    vals = fmt.decode(codes)
    nan = np.isnan(vals)
    back = fmt.encode(np.where(nan, 0.0, vals))
    if not fmt.subnormals:  # subnormal codes read as zero and come back as zero
        ef = (codes >> np.uint64(fmt.man_bits)) & np.uint64((1 << fmt.exp_bits) - 1)
        mf = codes & np.uint64((1 << fmt.man_bits) - 1)
        sub = (ef == 0) & (mf != 0)
        assert (back[sub] & np.uint64(fmt.sign_bit - 1) == 0).all()
        nan |= sub
    assert (back[~nan] == codes[~nan]).all()
    assert (fmt.decode(np.uint64(fmt.nan_code)) != fmt.decode(np.uint64(fmt.nan_code))) if fmt.has_nan else True


def test_macspec_text_round_trip_and_errors():
    for text in ["a=fp16,b=fp16,acc=fp16,round=rne,fused=yes", "a=int8,b=int8,acc=int20,overflow=wrap",
                 "a=bf16,b=bf16,acc=e6m9,prod=bf16,fused=no", "a=fp16,b=fp16,acc=e5m10,round=sr,srbits=6",
                 "a=fp8_e4m3,b=fp8_e4m3,acc=e5m6,order=chunk16,acc2=fp16", "a=int8,b=fp8_e4m3,acc=fp32"]:
        s = MacSpec.parse(text)
        assert MacSpec.parse(str(s)) == s
    assert MacSpec.parse("a=fp8_e4m3,b=fp8_e4m3,acc=e6m9").name == "mac_e4m3fn_e4m3fn_acc_e6m9_rne"
    for text, message in [
        ("a=fp16,b=fp16,acc=fp16,round=xyz", "rounding mode must be one of rne, rtz, rup, rdn, rna, rod or sr, not 'xyz'"),
        ("a=fp16,b=fp16", "MAC spec needs acc=FMT;"),
        ("a=fp16,b=fp16,acc=int16", "an integer accumulator needs integer operands; a=fp16 is a float format"),
        ("a=int8,b=int8,acc=int16,overflow=ieee", "overflow for an integer accumulator must be wrap or sat, not 'ieee'"),
        ("a=fp16,b=fp16,acc=fp32,prod=fp16", "prod=fp16 rounds the product, which makes the MAC unfused; add fused=no"),
        ("a=fp16,b=fp16,acc=fp32,colour=red", "unknown MAC spec key 'colour'"),
        ("a=e0m3,b=fp16,acc=fp32", "format 'e0m3': exponent bits"),
        ("a=fp16,b=fp16,acc=fp32,srbits=4", "srbits applies only to stochastic rounding"),
    ]:
        with pytest.raises(ValueError) as info:
            MacSpec.parse(text)
        assert str(info.value).startswith(message)


def test_quantize_tensor_dtype_and_values():
    import torch

    from psum.golden import quantize

    x = torch.tensor([1.1, -3.3, 1e-4, 500.0], dtype=torch.float32)
    q = quantize(x, "fp16", "rne")
    assert q.dtype == torch.float32  # every fp16 value is a float32
    assert torch.equal(q, x.half().float())
    q = quantize(x.double(), "fp8_e4m3", "rtz", saturate=True)
    assert q.dtype == torch.float64 and q.tolist() == [1.0, -3.25, 0.0, 448.0]
    q = quantize(torch.tensor([65504.0, 1.0], dtype=torch.float16), "bf16")  # 65536 is no fp16 value
    assert q.dtype == torch.float64 and q.tolist() == [65536.0, 1.0]
    assert np.array_equal(quantize(np.array([[0.3, 7.0]]), "int4"), np.array([[0.0, 7.0]]))


@pytest.mark.parametrize("int_bits,frac_bits", [(1, 1), (1, 15), (8, 24), (4, 0), (32, 32), (1, 63)])
def test_fixed_and_int_share_one_twos_complement_range(int_bits, frac_bits):
    # The range rule lives once (formats._TwosComplementRange): q<I>.<F> stores an int<I+F>.
    from psum.golden import FixedFormat

    q, n = FixedFormat(int_bits, frac_bits), IntFormat(int_bits + frac_bits)
    for name in ("width", "bits", "signed", "precision", "min_int", "max_int", "is_float"):
        assert getattr(q, name) == getattr(n, name), name
    # written out once more by hand: -2**(I+F-1) .. 2**(I+F-1) - 1
    assert (q.min_int, q.max_int) == (-(2 ** (int_bits + frac_bits - 1)), 2 ** (int_bits + frac_bits - 1) - 1)
    assert q.min_value == -(2.0 ** (int_bits - 1)) and q.resolution == 2.0 ** -frac_bits
    assert not isinstance(q, IntFormat) and not isinstance(n, type(q))  # the engines tell them apart
    assert [f.name for f in dataclasses.fields(q)] == ["int_bits", "frac_bits"]


@pytest.mark.parametrize("bits,signed,lo,hi", [(8, True, -128, 127), (8, False, 0, 255), (1, False, 0, 1),
                                               (64, True, -(2 ** 63), 2 ** 63 - 1), (64, False, 0, 2 ** 64 - 1)])
def test_int_range(bits, signed, lo, hi):
    f = IntFormat(bits, signed)
    assert (f.min_int, f.max_int, f.width, f.precision, f.is_float) == (lo, hi, bits, bits, False)
