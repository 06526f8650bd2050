"""Issue 14, "Wrong values": every right value of the issue as a test, each fault's whole kind.

* integers of every width the parser accepts (up to int64 / uint64) exact in decode, encode,
  ``mac_step``, the emulation backends and the RTL, checked against Python ints and the Fraction
  reference;
* fixed point of 63 and 64 bits exact the same way;
* float formats whose values do not fit float64 refused;
* a NaN reaching an accumulator without NaN: one rule (+0) in golden, reference, kernels and RTL;
* codes outside their format refused (never masked);
* stochastic rounding independent of the batch size; sweep rows keyed by everything they depend
  on, with the numerics version;
* options validated while parsing; checkpoints with a weights digest; CIFAR labels checked.

Slow tier (``pytest -m slow tests/test_values.py``): the sweep at two batch sizes, the resume with
rows of another numerics version, and the Icarus runs.
"""

from __future__ import annotations

import io
import pickle
import shutil
import zipfile
from fractions import Fraction

import numpy as np
import pytest

from psum.cli.main import main
from psum.golden import NUMERICS_VERSION, IntFormat, MacSpec, mac_step, parse_format
from psum.golden._vector import check_codes, int_values
from psum.golden.mac import nan_result_code
from psum.golden.reference import decode_ref, encode_ref, mac_step_ref

needs_iverilog = pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs Icarus Verilog")


def _run(argv, capsys):
    """``psum argv``: (exit code, stdout, stderr)."""
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code
    out = capsys.readouterr()
    return rc, out.out, out.err


def _int_of(fmt, code: int) -> int:
    """Python-int value of an integer/fixed code, straight from the definition."""
    code = int(code)
    return code - (1 << fmt.bits) if fmt.signed and code >> (fmt.bits - 1) else code


# ---------------------------------------------------------------------------------------------
# Integers of every width: decode, encode, int_values against Python ints
# ---------------------------------------------------------------------------------------------
WIDTHS = ["int2", "int8", "int32", "int53", "int54", "int62", "int63", "int64",
          "uint1", "uint8", "uint53", "uint62", "uint63", "uint64", "q2.62", "q33.31", "q1.63", "q32.30"]


def _edge_codes(fmt) -> list[int]:
    n = fmt.bits
    raw = {0, 1, 2, 3, (1 << n) - 1, (1 << n) - 2, (1 << (n - 1)) - 1, 1 << (n - 1), (1 << (n - 1)) + 1,
           (1 << 53) + 1, (1 << 61) - 1, 1 << 61, (1 << 62) + 5, 0xC080, 0xFFFF_FFFF_FFFF_C080, 0x9E37_79B9_7F4A_7C15}
    return sorted(c for c in raw if 0 <= c < 1 << n)


@pytest.mark.parametrize("text", WIDTHS)
def test_integer_decode_exact_every_width(text):
    fmt = parse_format(text)
    codes = _edge_codes(fmt)
    exact = [_int_of(fmt, c) for c in codes]
    assert list(int_values(fmt, codes)) == exact
    lsb = Fraction(1, 1 << getattr(fmt, "frac_bits", 0))
    # decode: the exact value rounded once to float64 (Python's int -> float rounds to nearest)
    assert fmt.decode(codes).tolist() == [float(v * lsb) for v in exact]
    for c, v in zip(codes, exact):  # and the Fraction reference agrees
        sign, mag = decode_ref(fmt, c)
        assert (-mag if sign else mag) == v * lsb


@pytest.mark.parametrize("text", WIDTHS)
@pytest.mark.parametrize("saturate", [True, False], ids=["sat", "wrap"])
def test_integer_encode_exact_every_width(text, saturate):
    fmt = parse_format(text)
    F = getattr(fmt, "frac_bits", 0)
    values = [0.0, -7.0, 5.0, 1.5, -2.5, 4e18, -4e18, 9.2e18, -9.3e18, 1.8e19, 2.0**63, -(2.0**63), 2.0**64,
              1e30, -1e30, 2.0**61 + 2048, 1.25, -0.75, 2.0**40 + 0.5]
    got = fmt.encode(values, "rne", saturate=saturate)
    for v, c in zip(values, got.tolist()):
        q = Fraction(v) * (1 << F)
        k = round(q)  # Python's round: ties to even, exact on Fractions
        if saturate:
            k = min(max(k, fmt.min_int), fmt.max_int)
        want = k & ((1 << fmt.bits) - 1)
        assert c == want, (text, v, hex(c), hex(want))
        assert c == encode_ref(fmt, v, "rne", saturate=saturate), (text, v)


def test_issue_integer_examples(capsys):
    rc, out, _ = _run(["quantize", "int64", "--json", "--", "-7", "5", "4e18"], capsys)
    import json

    rows = json.loads(out)
    assert rc == 0 and [r["result"] for r in rows] == [-7, 5, 4000000000000000000]
    rc, out, _ = _run(["quantize", "int63", "--json", "5"], capsys)
    assert rc == 0 and json.loads(out)[0]["result"] == 5
    rc, out, _ = _run(["quantize", "uint64", "--json", "1.8e19"], capsys)
    assert json.loads(out)[0]["result"] == 18000000000000000000
    rc, out, _ = _run(["step", "a=int8,b=int8,acc=int64", "0", "0x80", "0x7f"], capsys)
    assert rc == 0 and out.splitlines()[-1] == "  -> 0xffffffffffffc080 (-16256)"
    rc, out, _ = _run(["step", "a=int32,b=int32,acc=int64,overflow=sat", "0x7fffffffffffff00", "0x80000000",
                       "0x80000000"], capsys)
    assert out.splitlines()[-1] == "  -> 0x7fffffffffffffff (9223372036854775807)"


# ---------------------------------------------------------------------------------------------
# mac_step with 63/64-bit integer and fixed-point accumulators: against Python ints / reference
# ---------------------------------------------------------------------------------------------
WIDE_SPECS = [
    "a=int8,b=int8,acc=int64", "a=int8,b=int8,acc=int64,overflow=sat", "a=int32,b=int32,acc=int64,overflow=sat",
    "a=int32,b=int32,acc=int64", "a=uint32,b=uint32,acc=uint64,overflow=sat", "a=uint32,b=uint32,acc=uint64",
    "a=int32,b=int32,acc=int63,overflow=sat", "a=int64,b=int64,acc=int64", "a=int64,b=int64,acc=int64,overflow=sat",
    "a=int32,b=int32,acc=int64,prod=int40,fused=no,overflow=sat", "a=uint64,b=int8,acc=int64,overflow=sat",
    "a=int32,b=int32,acc=uint64,overflow=sat", "a=int32,b=int32,acc=uint64", "a=int16,b=int16,acc=uint63",
    "a=int16,b=int16,acc=uint63,overflow=sat", "a=int32,b=int31,acc=int63,overflow=sat", "a=uint32,b=uint31,acc=uint64",
    "a=int32,b=int32,acc=int63", "a=int8,b=uint8,acc=uint64,prod=int12,fused=no,overflow=sat",
]


def _python_int_step(spec, acc, a, b):
    """The integer MAC rule on Python ints, written from the module docstring of golden.mac."""
    p = _int_of(spec.a, a) * _int_of(spec.b, b)

    def fit(fmt, v):
        if spec.saturate:
            return min(max(v, fmt.min_int), fmt.max_int)
        return _int_of(fmt, v & ((1 << fmt.bits) - 1))

    if spec.prod is not None:
        p = fit(spec.prod, p)
    return fit(spec.acc, _int_of(spec.acc, acc) + p) & ((1 << spec.acc.bits) - 1)


@pytest.mark.parametrize("text", WIDE_SPECS)
def test_wide_integer_mac_step_matches_python_ints(text):
    spec = MacSpec.parse(text)
    rng = np.random.default_rng(14)
    accs = _edge_codes(spec.acc) + [int(x) for x in rng.integers(0, 1 << 62, 6)]
    ops_a = _edge_codes(spec.a)[:8]
    ops_b = _edge_codes(spec.b)[-8:]
    cases = [(c, x, y) for c in accs for x, y in zip(ops_a, ops_b)]
    got = mac_step(spec, [c for c, _, _ in cases], [x for _, x, _ in cases], [y for _, _, y in cases])
    for (c, x, y), g in zip(cases, got.tolist()):
        assert g == _python_int_step(spec, c, x, y) == mac_step_ref(spec, c, x, y), (text, hex(c), x, y)


@pytest.mark.parametrize("text", WIDE_SPECS)
def test_wide_integer_mac_step_random_codes_and_flags(text):
    """Random codes (top bits included) against Python ints; the overflow flag from the exact sum."""
    from psum.golden.mac import fast_path_ok
    from psum.golden.stimulus import random_codes

    spec = MacSpec.parse(text)
    rng = np.random.default_rng(hash(text) & 0xFFFF)
    n = 400
    acc, a, b = (random_codes(f, n, rng) for f in (spec.acc, spec.a, spec.b))
    got = mac_step(spec, acc, a, b)
    want = [_python_int_step(spec, int(c), int(x), int(y)) for c, x, y in zip(acc, a, b)]
    assert got.tolist() == want
    if fast_path_ok(spec):
        _, fl = mac_step(spec, acc, a, b, flags=True)
        exact = [_int_of(spec.acc, int(c)) + _int_of(spec.a, int(x)) * _int_of(spec.b, int(y))
                 for c, x, y in zip(acc, a, b)]
        if spec.prod is None:
            assert fl["overflow"].tolist() == [not spec.acc.min_int <= v <= spec.acc.max_int for v in exact]


def test_wide_integer_accumulators_take_the_fast_path():
    from psum.golden.mac import fast_path_ok

    for text in ("a=int8,b=int8,acc=int64,overflow=sat", "a=int32,b=int32,acc=int64,overflow=sat",
                 "a=int16,b=int16,acc=uint64", "a=int16,b=int16,acc=uint63,overflow=sat"):
        assert fast_path_ok(MacSpec.parse(text)), text
    for text in ("a=int64,b=int64,acc=int64", "a=uint32,b=uint32,acc=uint64"):  # products beyond int64
        assert not fast_path_ok(MacSpec.parse(text)), text


def test_issue_int32_into_saturating_int64():
    spec = MacSpec.parse("a=int32,b=int32,acc=int64,overflow=sat")
    acc = np.uint64(0)
    for _ in range(4):  # 4 x (-2**31)**2 = 2**64: saturates at 2**63 - 1
        acc = mac_step(spec, acc, 0x80000000, 0x80000000)
    assert int(acc) == (1 << 63) - 1


@pytest.mark.parametrize("backend", ["auto", "numpy", "torch"])
def test_emulation_wide_integer_accumulators(backend):
    import torch

    from psum.golden.emulation.kernels import accumulate

    # int8 into int64 (was -16384 on numpy, a crash on torch)
    out = accumulate("a=int8,b=int8,acc=int64", torch.tensor([[-128.0]]), torch.tensor([[127.0]]),
                     torch.zeros(1, 1), backend=backend)
    assert out.tolist() == [[-16256.0]]
    # int32 into a saturating int64 (was 0.0)
    A = torch.full((1, 4), -(2.0**31))
    out = accumulate("a=int32,b=int32,acc=int64,overflow=sat", A, A.T.clone(), torch.zeros(1, 1), backend=backend)
    assert out.tolist() == [[float((1 << 63) - 1)]]
    # wrapping int64 past 2**63: the low 64 bits, as mac_step gives
    spec = MacSpec.parse("a=int32,b=int32,acc=int64")
    out = accumulate(spec, A, A.T.clone(), torch.zeros(1, 1), backend=backend)
    code = np.uint64(0)
    for _ in range(4):
        code = mac_step(spec, code, 0x80000000, 0x80000000)
    assert out.tolist() == [[float(spec.acc.decode([code])[0])]] == [[0.0]]


RTL_WIDE = ["a=int8,b=int8,acc=int64,overflow=sat", "a=int32,b=int32,acc=int64,overflow=sat",
            "a=uint32,b=uint32,acc=uint64,overflow=sat", "a=int64,b=int64,acc=int64,overflow=sat"]


def test_int_mac_rtl_64_bit_saturating_elaborates():
    """``psum verilog a=int8,b=int8,acc=int64,overflow=sat`` raised OverflowError."""
    from psum.hw import verilog

    assert "module mac_" in verilog(MacSpec.parse(RTL_WIDE[0]))  # the rest: the slow test below


@pytest.mark.slow
def test_int_mac_rtl_64_bit_saturating_matches_golden():
    """The 64-bit saturating units elaborate and match mac_step cycle by cycle (Amaranth simulator)."""
    from psum.hw import verilog
    from psum.hw.verify import amaranth_trace, check_trace, make_stimulus

    for text in RTL_WIDE:
        spec = MacSpec.parse(text)
        assert "module mac_" in verilog(spec)
        stim = make_stimulus(spec, cycles=120, seed=3, directed=True)
        observed = amaranth_trace(spec, stim)
        bad, first, expected = check_trace(spec, stim, observed)
        assert bad == 0, f"{text}: cycle {first}"


# ---------------------------------------------------------------------------------------------
# Formats beyond float64
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, span", [
    ("e5m10_b4000", "-4009 .. -3970"),
    ("e11m52_bn1", "-50 .. 2047"),
    ("e5m10_b1066", "-1075 .. -1036"),
    ("e5m10_bn994", "985 .. 1024"),
    ("e11m52_b1024", "-1075 .. 1022"),
    ("e8m23_b1200", "-1222 .. -946"),
])
def test_formats_beyond_float64_refused(text, span):
    with pytest.raises(ValueError) as exc:
        parse_format(text)
    assert str(exc.value) == (f"format {text!r}: values must fit float64 (bit exponents -1074 .. 1023); "
                              f"this format spans {span}")


def test_formats_at_the_float64_limits_decode_exactly():
    lo = parse_format("e5m10_b1065")  # smallest subnormal exactly float64's 2**-1074
    assert lo.emin - lo.man_bits == -1074 and float(lo.decode([1])[0]) == 2.0**-1074
    hi = parse_format("e5m10_bn993")  # largest binade exactly float64's 2**1023
    assert hi.emax == 1023 and float(hi.decode([hi.max_code])[0]) == 2.0**1023 * (2 - 2.0**-10)
    fp64 = parse_format("fp64")
    assert float(fp64.decode([0x7FEFFFFFFFFFFFFF])[0]) == np.finfo(np.float64).max
    assert float(lo.decode([0x3C00])[0]) == 2.0 ** (15 - 1065)


def test_cli_refuses_huge_bias(capsys):
    rc, _, err = _run(["quantize", "e5m10_b4000", "1"], capsys)
    assert rc == 2 and err == ("psum quantize: error: format 'e5m10_b4000': values must fit float64 "
                               "(bit exponents -1074 .. 1023); this format spans -4009 .. -3970\n")


# ---------------------------------------------------------------------------------------------
# NaN into an accumulator without NaN: one rule everywhere
# ---------------------------------------------------------------------------------------------
FIN_SPECS = ["a=fp8_e4m3,b=fp8_e4m3,acc=fp6_e3m2", "a=fp8_e5m2,b=fp8_e5m2,acc=fp4_e2m1,overflow=sat",
             "a=fp16,b=fp16,acc=fp6_e2m3,fused=no,prod=fp8_e4m3", "a=fp8_e4m3fnuz,b=fp8_e5m2,acc=e4m3fin"]


@pytest.mark.parametrize("text", FIN_SPECS)
def test_nan_into_fin_accumulator_is_plus_zero(text):
    spec = MacSpec.parse(text)
    assert nan_result_code(spec.acc) == 0
    a_codes = np.arange(1 << spec.a.width, dtype=np.uint64)
    if spec.a.width > 8:  # fp16: every NaN-ish top exponent code plus a spread of the rest
        a_codes = np.unique(np.concatenate([a_codes[::509], np.arange(0x7C00, 0x7C40, dtype=np.uint64),
                                            np.arange(0xFC00, 0xFC10, dtype=np.uint64)]))
    accs = np.arange(1 << spec.acc.width, dtype=np.uint64)
    a, acc = np.meshgrid(a_codes, accs)
    b = np.full_like(a, 0x38 if spec.b.width == 8 else 0x3C00)
    got = mac_step(spec, acc.ravel(), a.ravel(), b.ravel())
    ref = [mac_step_ref(spec, int(c), int(x), int(y)) for c, x, y in zip(acc.ravel()[::7], a.ravel()[::7], b.ravel()[::7])]
    assert got[::7].tolist() == ref
    nan_a = np.isnan(spec.a.decode(a.ravel()))
    assert (got[nan_a] == 0).all()


def test_nan_into_fin_emulation_backends_agree():
    import torch

    from psum.golden.emulation.kernels import accumulate

    spec = "a=fp8_e4m3,b=fp8_e4m3,acc=fp6_e3m2"
    A = torch.tensor([[float("nan"), 1.0, 2.0], [1.0, float("nan"), 0.5]])
    B = torch.tensor([[1.0], [1.0], [1.0]])
    want = []
    for row in A.tolist():  # a scalar mac_step loop
        code = np.uint64(0)
        enc = MacSpec.parse(spec).a.encode
        for x in row:
            code = mac_step(spec, code, enc([x])[0], enc([1.0])[0])
        want.append([float(MacSpec.parse(spec).acc.decode([code])[0])])
    for backend in ("auto", "numpy", "torch"):
        assert accumulate(spec, A, B, torch.zeros(2, 1), backend=backend).tolist() == want == [[3.0], [0.5]]


@pytest.mark.slow
def test_nan_into_fin_rtl_matches_golden():
    from psum.hw.verify import amaranth_trace, check_trace, make_stimulus

    spec = MacSpec.parse("a=fp8_e4m3,b=fp8_e4m3,acc=fp6_e3m2")
    stim = make_stimulus(spec, cycles=200, seed=1, directed=True)
    bad, first, _ = check_trace(spec, stim, amaranth_trace(spec, stim))
    assert bad == 0, f"cycle {first}"


@needs_iverilog
@pytest.mark.slow
def test_issue_sim_fp6_accumulator(tmp_path, capsys):
    rc, out, err = _run(["sim", "a=fp8_e4m3,b=fp8_e4m3,acc=fp6_e3m2", "--cycles", "300",
                         "--build-dir", str(tmp_path)], capsys)
    assert rc == 0 and " 0 mismatches" in out, out + err


# ---------------------------------------------------------------------------------------------
# Codes outside their format
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt, code, shown", [
    ("fp16", 0x10000, "0x10000"), ("fp16", -1, "-1"), ("fp16", 1 << 80, hex(1 << 80)),
    ("int8", 0x100, "0x100"), ("fp8_e4m3", 2**64, hex(2**64)), ("uint64", -5, "-5"), ("q8.8", 1.5, "1.5"),
])
def test_codes_outside_the_format_refused(fmt, code, shown):
    f = parse_format(fmt)
    msg = f"code of {f} must be an integer between 0 and {(1 << f.width) - 1:#x}, not {shown}"
    with pytest.raises(ValueError) as exc:
        f.decode([code])
    assert str(exc.value) == msg
    with pytest.raises(ValueError) as exc:
        check_codes(f, np.asarray([code]) if isinstance(code, int) and -2**63 <= code < 2**63 else [code])
    assert str(exc.value) == msg


def test_mac_step_refuses_wide_codes():
    with pytest.raises(ValueError, match=r"^acc code of fp16 must be an integer between 0 and 0xffff, not 0x10000$"):
        mac_step("a=fp16,b=fp16,acc=fp16", 0x10000, 0, 0)
    with pytest.raises(ValueError, match=r"^b code of int8 must be an integer between 0 and 0xff, not -1$"):
        mac_step("a=int8,b=int8,acc=int32", 0, 0, np.asarray([-1]))
    with pytest.raises(ValueError, match=r"^a code of fp8_e4m3 must be an integer between 0 and 0xff, not 0x100$"):
        mac_step("a=fp8_e4m3,b=fp8_e4m3,acc=fp16", 0, np.asarray([1, 0x100], dtype=np.uint16), 0)


@pytest.mark.parametrize("codes, message", [
    (["0x10000", "0", "0"], "acc=0x10000 is not a code of fp16 (16 bits: 0 .. 0xffff)"),
    (["0", "0x1000000000000000000000", "0"], "a=0x1000000000000000000000 is not a code of fp16 (16 bits: 0 .. 0xffff)"),
    (["0", "0", "0x1ffff"], "b=0x1ffff is not a code of fp16 (16 bits: 0 .. 0xffff)"),
    (["--", "-1e99", "0", "0"], "acc=-1e99 is not exactly representable in fp16 (nearest -inf = 0xfc00)"),
])
def test_cli_step_refuses_wide_codes(codes, message, capsys):
    rc, _, err = _run(["step", "a=fp16,b=fp16,acc=fp16", *codes], capsys)
    assert rc == 2 and err == f"psum step: error: {message}\n"


# ---------------------------------------------------------------------------------------------
# Stochastic rounding independent of batching
# ---------------------------------------------------------------------------------------------
def test_sr_emulation_independent_of_batch_size():
    import torch
    from torch import nn

    from psum.golden.emulation.layers import emulate

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Flatten(), nn.Linear(3 * 3 * 3, 4))
    x = torch.randn(7, 2, 5, 5)
    spec = "a=fp8_e4m3,b=fp8_e4m3,acc=e5m3,round=sr"
    outs = []
    for bs in (1, 3, 7):
        q = emulate(net, spec, calib=x, seed=3)
        outs.append(torch.cat([q(x[i:i + bs]) for i in range(0, 7, bs)]))
    assert all(torch.equal(outs[0], o) for o in outs[1:])
    q = emulate(net, spec, calib=x, seed=3)
    first = q(x)
    assert not torch.equal(q(x), first)  # later samples draw other bits ...
    q.psum_accumulator.next_sample = 0
    assert torch.equal(q(x), first)  # ... and a replay from sample 0 the same ones


def test_sweep_key_holds_what_a_row_depends_on():
    from psum.sweeps.sweep import KEY_FIELDS

    assert {"weight_scale", "act_scale", "seed", "metric", "numerics", "checkpoint", "n_images",
            "calib", "spec"} <= set(KEY_FIELDS)
    assert "batch_size" not in KEY_FIELDS and isinstance(NUMERICS_VERSION, int) and NUMERICS_VERSION >= 2


@pytest.mark.slow
def test_sweep_sr_rows_identical_at_batch_sizes_7_and_256(tmp_path):
    from psum.sweeps.sweep import run_sweep

    rows = {}
    for bs in (7, 256):
        out = run_sweep("lenet5", "digits", "e4m2,e3m1", rounding="sr", limit=40, batch_size=bs,
                        out=tmp_path / f"bs{bs}.jsonl", progress_enabled=False)
        rows[bs] = [(r["spec"], r["accuracy"], r["seed"], r["numerics"]) for r in out]
    assert rows[7] == rows[256]


@pytest.mark.slow
def test_sweep_recomputes_rows_of_another_numerics_version(tmp_path, capsys):
    import json

    from psum.sweeps.sweep import run_sweep

    out = tmp_path / "s.jsonl"
    first = run_sweep("lenet5", "digits", "e5m3", limit=20, out=out, progress_enabled=False)
    lines = out.read_text().splitlines()
    old = [dict(json.loads(line), numerics=1, accuracy=-1.0) for line in lines]
    out.write_text("".join(json.dumps(r) + "\n" for r in old))
    capsys.readouterr()
    again = run_sweep("lenet5", "digits", "e5m3", limit=20, out=out, progress_enabled=False)
    assert "2 rows of numerics version 1 are recomputed" in capsys.readouterr().err
    assert [r["accuracy"] for r in again] == [r["accuracy"] for r in first]
    assert all(r["accuracy"] >= 0 for r in again)


# ---------------------------------------------------------------------------------------------
# Option validation: every count, seed, float and list option of every subcommand
# ---------------------------------------------------------------------------------------------
_POS = "must be a positive integer, not {v}"
_NONNEG = "must be a non-negative integer, not {v}"
_FIN = "must be a finite number, not '{v}'"
_EMPTY = "must not be empty"
OPTION_CASES = [
    ("quantize", "--seed", "-1", _NONNEG), ("quantize", "--sr-bits", "0", "must be an integer between 1 and 32, not {v}"), ("step", "--rand", "-1", _NONNEG),
    ("quantize", "--round", "", _EMPTY),
    ("sim", "--cycles", "0", _POS), ("sim", "--cycles", "-5", _POS), ("sim", "--seed", "-1", _NONNEG),
    ("sim", "--build-dir", "", _EMPTY), ("verilog", "-o/--output", "", _EMPTY), ("verilog", "--impl", " ", _EMPTY),
    ("synth", "--jobs", "0", _POS), ("synth", "--outputs", "0", _POS), ("synth", "--cache-dir", "", _EMPTY),
    ("train", "--epochs", "0", _POS), ("train", "--seed", "-1", _NONNEG), ("train", "--batch-size", "0", _POS),
    ("train", "--limit", "0", _POS), ("train", "--lr", "inf", _FIN), ("train", "--lr", "nan", _FIN),
    ("train", "--lr", "-1", "must be a finite number greater than 0, not {v}"),
    ("train", "--lr", "0", "must be a finite number greater than 0, not {v}"),
    ("train", "--width", "0", "must be a finite number greater than 0, not {v}"), ("train", "--width", "-inf", _FIN),
    ("train", "--out", "", _EMPTY),
    ("eval", "--limit", "0", _POS), ("eval", "--batch-size", "-1", _POS), ("eval", "--image-size", "0", _POS),
    ("eval", "--spec", "", _EMPTY), ("eval", "--device", "", _EMPTY), ("eval", "--model", "", _EMPTY),
    ("sweep", "--acc", "", _EMPTY), ("sweep", "--acc", " ", _EMPTY), ("sweep", "--a", "", _EMPTY),
    ("sweep", "--tol", "-1", "must be a finite number of at least 0, not {v}"), ("sweep", "--tol", "inf", _FIN),
    ("sweep", "--limit", "0", _POS), ("sweep", "--batch-size", "0", _POS), ("sweep", "--out", "", _EMPTY),
    ("sweep", "--layer", "", _EMPTY), ("sweep", "--extra", "", _EMPTY),
    ("qat", "--epochs", "0", _POS), ("qat", "--seed", "-1", _NONNEG), ("qat", "--width", "nan", _FIN),
    ("qat", "--float-epochs", "0", _POS),
    ("fake2true", "--limit", "0", _POS), ("fake2true", "--formats", "", _EMPTY), ("fake2true", "--acc", "", _EMPTY),
    ("report", "--limit", "0", _POS), ("report", "--tol", "-1", "must be a finite number of at least 0, not {v}"),
    ("report", "--tol", "nan", _FIN), ("report", "--jobs", "0", _POS), ("report", "--sim-cycles", "0", _POS),
    ("report", "--image-size", "-3", _POS), ("report", "--out", "", _EMPTY),
    ("eval", "--limit", "ten", "must be an integer, not 'ten'"), ("train", "--lr", "fast", "must be a number, not 'fast'"),
]


@pytest.mark.parametrize("cmd, option, value, message", OPTION_CASES,
                         ids=[f"{c}{o}={v!r}" for c, o, v, _ in OPTION_CASES])
def test_options_validated_while_parsing(cmd, option, value, message, capsys):
    rc, out, err = _run([cmd, f"{option.split('/')[-1]}={value}"], capsys)
    assert rc == 2 and out == ""
    assert err == f"psum {cmd}: error: argument {option}: {message.format(v=value)} (see psum {cmd} --help)\n"


def test_api_refuses_non_finite_training_options():
    from psum.nets.train import train

    with pytest.raises(ValueError, match=r"^lr must be a finite positive number, not inf$"):
        train("lenet5", "digits", lr=float("inf"), save=False)
    with pytest.raises(ValueError, match=r"^width must be a finite positive number, not nan$"):
        train("lenet5", "digits", width=float("nan"), save=False)
    with pytest.raises(ValueError, match=r"^seed must be an integer >= 0, not -1$"):
        train("lenet5", "digits", seed=-1, save=False)


# ---------------------------------------------------------------------------------------------
# Checkpoints: a digest of the weights, checked on load; labels checked on load
# ---------------------------------------------------------------------------------------------
def test_shipped_checkpoints_carry_their_digest():
    import torch

    from psum.nets.train import weights_digest
    from psum.paths import find_checkpoint

    for model in ("lenet5", "alexnet", "resnet18", "vit"):
        p = find_checkpoint(f"{model}-digits.pt")
        if p is None:
            continue
        ck = torch.load(p, map_location="cpu", weights_only=True)
        assert ck["weights_sha256"] == weights_digest(ck["state_dict"])


def _ckpt_copy(tmp_path):
    from psum.paths import find_checkpoint

    src = find_checkpoint("lenet5-digits.pt")
    if src is None:
        pytest.skip("no lenet5 digits checkpoint")
    dst = tmp_path / "lenet5-digits.pt"
    dst.write_bytes(src.read_bytes())
    return dst


def test_checkpoint_with_flipped_weight_bytes_is_refused(tmp_path):
    from psum.errors import PsumError
    from psum.nets.train import load_checkpoint

    p = _ckpt_copy(tmp_path)
    load_checkpoint("lenet5", "digits", path=p)  # intact: loads
    # flip 64 bytes inside the largest tensor record (stored uncompressed in torch's zip)
    with zipfile.ZipFile(p) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    raw = bytearray(p.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for i in range(start + 100, start + 164):
        raw[i] ^= 0xFF
    p.write_bytes(bytes(raw))
    with pytest.raises(PsumError) as exc:
        load_checkpoint("lenet5", "digits", path=p)
    assert str(exc.value) == f"checkpoint {p} is corrupt: digest mismatch"


def test_checkpoint_without_digest_loads_unchecked(tmp_path):
    import torch

    from psum.nets.train import load_checkpoint

    p = _ckpt_copy(tmp_path)
    ck = torch.load(p, map_location="cpu", weights_only=True)
    del ck["weights_sha256"]
    ck["state_dict"]["fc3.bias"] += 1.0  # no digest, no check: older files still load
    torch.save(ck, p)
    net, meta = load_checkpoint("lenet5", "digits", path=p)
    assert "weights_sha256" not in meta


@pytest.mark.slow
def test_training_writes_the_digest(tmp_path):
    import torch

    from psum.nets.train import load_checkpoint, train, weights_digest

    path = tmp_path / "lenet5-digits.pt"
    train("lenet5", "digits", epochs=1, limit=64, out=path, seed=0)
    ck = torch.load(path, map_location="cpu", weights_only=True)
    assert ck["weights_sha256"] == weights_digest(ck["state_dict"])
    load_checkpoint("lenet5", "digits", path=path)


def _cifar(tmp_path, labels_for):
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": labels_for(name)}
        with open(base / name, "wb") as fh:
            pickle.dump(entry, fh)
    return base


@pytest.mark.parametrize("labels, message", [
    ([0, 1, 10, 3], "cifar10: the test split has label 10, outside the 10 classes 0..9"),
    ([0, -1, 2, 3], "cifar10: the test split has label -1, outside the 10 classes 0..9"),
    ([0, 1, 2], "cifar10: {base}/cifar-10-batches-py/test_batch holds 4 images but 3 labels; expected "
                "DIR/cifar-10-batches-py/{{data_batch_1..5,test_batch}} (CIFAR-10 python version, untarred)"),
])
def test_cifar_labels_checked_on_load(tmp_path, labels, message):
    from psum.errors import PsumError
    from psum.nets.data import load_dataset

    _cifar(tmp_path, lambda name: labels if name == "test_batch" else [0, 1, 2, 3])
    with pytest.raises(PsumError) as exc:
        load_dataset("cifar10", "test", tmp_path)
    assert str(exc.value) == message.format(base=tmp_path)
    assert len(load_dataset("cifar10", "train", tmp_path)) == 20  # the good split still loads


def test_int_format_cli_rows_use_python_ints():
    rows = __import__("psum.cli.golden", fromlist=["quantize_rows"]).quantize_rows("int64", [-(2.0**63), 2.0**62 + 4096])
    assert [r["result"] for r in rows] == [-(1 << 63), (1 << 62) + 4096]
    assert isinstance(IntFormat(64).decode([1])[0], np.floating)
    assert io is not None


@pytest.mark.parametrize("text", ["int8", "uint8", "int63", "uint63", "int64", "uint64", "q8.8", "q2.62", "uint1"])
def test_integer_typed_inputs_encode_exactly(text):
    """int64 inputs never pass through float64 (2**62 + 1 stays 2**62 + 1)."""
    fmt = parse_format(text)
    rng = np.random.default_rng(7)
    v = np.concatenate([rng.integers(-2**63, 2**63 - 1, 100, dtype=np.int64),
                        np.asarray([0, 1, -1, 127, -128, 255, 2**62 + 1, -2**63], dtype=np.int64)])
    F = getattr(fmt, "frac_bits", 0)
    for saturate in (True, False):
        want = []
        for x in v.tolist():
            k = x << F
            if saturate:
                k = min(max(k, fmt.min_int), fmt.max_int)
            want.append(k & ((1 << fmt.bits) - 1))
        assert fmt.encode(v, saturate=saturate).tolist() == want


def test_integer_inputs_beyond_float64_refused_for_float_formats():
    import torch

    msg = ("integer values beyond 2**53 in magnitude do not convert to float64 exactly; encode them into an "
           "integer or fixed-point format")
    with pytest.raises(ValueError) as exc:
        parse_format("fp32").encode(np.asarray([2**60 + 129]))
    assert str(exc.value) == msg
    with pytest.raises(ValueError):
        parse_format("bf16").encode(torch.tensor([-(2**55) - 1]))
    assert parse_format("fp16").encode(np.asarray([1, 2, 3])).tolist() == [0x3C00, 0x4000, 0x4200]
    assert parse_format("int64").encode(torch.tensor([2**62 + 1])).tolist() == [2**62 + 1]
