"""Fixed-point accumulators ``q<I>.<F>`` end to end: format, mac_step, reference, emulation, RTL.

Every fast path is checked against an independent slow one: ``mac_step`` against the Fraction
reference (``mac_step_ref``) on adversarial triples (ties at the lsb and just off them,
cancellation, overflow in both directions, exponent gaps, every special operand) for every
rounding mode including stochastic rounding; the emulation kernels against a scalar ``mac_step``
loop; the generated unit against ``mac_step`` in Amaranth's simulator and in Icarus (directed,
random with load/en/rst, recorded digits-conv streams), zero mismatches.

    pytest tests/test_fixed.py              # fast tier
    pytest tests/test_fixed.py -m slow      # exhaustive fp8 operand pairs in Icarus, larger samples
"""

from __future__ import annotations

import shutil
from fractions import Fraction

import numpy as np
import pytest
import torch

from psum.cli.main import main
from psum.golden import MacSpec, mac_step, parse_format
from psum.golden.formats import FixedFormat
from psum.golden.reference import decode_ref, encode_ref, mac_step_ref
from psum.golden.stimulus import adversarial_triples, random_triples, special_codes

MODES = ("rne", "rtz", "rup", "rdn", "rna", "rod", "sr")

# Operand kinds x register sizes: products always on the grid (fp8 into q8.24), mostly below
# it (fp16 into q4.12), integer and fixed-point operands, a tiny register that overflows on
# almost every step, a 62-bit register (the int64 path's limit) and one beyond it (reference).
SPECS = (
    "a=fp8_e4m3,b=fp8_e4m3,acc=q8.24",
    "a=fp8_e4m3,b=fp8_e4m3,acc=q4.12",
    "a=fp16,b=fp16,acc=q4.12,overflow=sat",
    "a=int8,b=int8,acc=q16.4",
    "a=q4.4,b=fp8_e5m2,acc=q6.3",
    "a=fp16,b=bf16,acc=q2.3,overflow=sat",
    "a=fp32,b=bf16,acc=q20.40",
    "a=fp8_e5m2,b=fp16,acc=q62.0",
)


# ---------------------------------------------------------------------------------------------
# The format
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, fmt", [
    ("q8.24", FixedFormat(8, 24)), ("Q1.15", FixedFormat(1, 15)), ("q4_12", FixedFormat(4, 12)),
    ("q32.0", FixedFormat(32, 0)), ("q1.63", FixedFormat(1, 63)),
])
def test_parse_str_round_trip(text, fmt):
    assert parse_format(text) == fmt
    assert parse_format(str(fmt)) == fmt and parse_format(fmt.tag) == fmt
    assert str(fmt) == f"q{fmt.int_bits}.{fmt.frac_bits}" and fmt.tag == f"q{fmt.int_bits}_{fmt.frac_bits}"
    assert FixedFormat.parse(text) == fmt


def test_derived_properties():
    f = FixedFormat(8, 24)
    assert (f.width, f.bits, f.signed, f.is_float, f.lsb_exp) == (32, 32, True, False, -24)
    assert (f.min_int, f.max_int) == (-(1 << 31), (1 << 31) - 1)
    assert f.min_value == -128.0 and f.max_value == 128.0 - 2.0**-24 and f.resolution == 2.0**-24
    assert f.replace(frac_bits=8) == FixedFormat(8, 8)


@pytest.mark.parametrize("text, message", [
    ("q0.8", "format 'q0.8': fixed-point integer bits must be an integer between 1 and 64, not 0"),
    ("q8.-1", "format 'q8.-1': fixed-point fraction bits must be an integer between 0 and 63, not -1"),
    ("q1.0", "format 'q1.0': fixed-point width I+F must be between 2 and 64, not 1+0"),
    ("q40.40", "format 'q40.40': fixed-point width I+F must be between 2 and 64, not 40+40"),
])
def test_bad_formats(text, message):
    with pytest.raises(ValueError) as exc:
        parse_format(text)
    assert str(exc.value) == message


def test_bad_format_fields_types_and_kinds():
    with pytest.raises(TypeError, match="fixed-point integer bits must be an integer between 1 and 64, not 8.0"):
        FixedFormat(8.0, 24)
    with pytest.raises(ValueError, match="^'q8.24' is a fixed-point format, not a float format$"):
        parse_format("fp16").parse("q8.24")
    with pytest.raises(ValueError, match="^'fp16' is not a fixed-point format q<I>.<F>$"):
        FixedFormat.parse("fp16")


@pytest.mark.parametrize("fmt", ["q4.4", "q1.7", "q3.0", "q2.6"])
def test_every_code_round_trips(fmt):
    f = parse_format(fmt)
    codes = np.arange(1 << f.width, dtype=np.uint64)
    vals = f.decode(codes)
    assert np.array_equal(f.encode(vals, saturate=False), codes)
    for c, v in zip(codes, vals):
        sign, mag = decode_ref(f, int(c))
        assert (-mag if sign else mag) == Fraction(float(v))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("saturate", [True, False])
def test_encode_matches_reference(mode, saturate):
    f = parse_format("q3.5")
    rng = np.random.default_rng(3)
    # ties at the lsb, one-off ties, values beyond the range (wrap and saturation), tiny values
    x = np.concatenate([(rng.integers(-300, 300, 400) + 0.5) / 32, rng.standard_normal(400) * 6,
                        (rng.integers(-300, 300, 200) + 0.5 + 2.0**-20) / 32, rng.standard_normal(50) * 1e-6])
    rand = rng.integers(0, 1 << 4, x.size) if mode == "sr" else None
    kw = dict(sr_bits=4, rand=rand) if mode == "sr" else {}
    got = f.encode(x, mode, saturate=saturate, **kw)
    ref = [encode_ref(f, float(v), mode, saturate=saturate, sr_bits=4,
                      rand=None if rand is None else int(rand[i])) for i, v in enumerate(x)]
    assert np.array_equal(got, np.asarray(ref, dtype=np.uint64))


def test_encode_refuses_nan_and_wraps_exactly():
    f = parse_format("q8.24")
    with pytest.raises(ValueError, match="^cannot encode NaN: fixed-point format q8.24 has no NaN$"):
        f.encode([float("nan")])
    # large values wrap exactly (issue 14: no refusal, no clamp): the low 32 bits of k = x * 2**24
    assert f.encode([2.0**40, 2.0**7 + 2.0**-24, -(2.0**100)], saturate=False).tolist() == [0, 1 << 31 | 1, 0]
    assert f.encode([float("inf"), -float("inf")]).tolist() == [f.max_int, 1 << 31]


# ---------------------------------------------------------------------------------------------
# The spec
# ---------------------------------------------------------------------------------------------
def test_spec_text_name_and_defaults():
    s = MacSpec.parse("a=fp8_e4m3,b=fp8_e4m3,acc=q8.24")
    assert s.fixed_acc and not s.int_acc and s.overflow == "wrap"
    assert str(s) == "a=fp8_e4m3,b=fp8_e4m3,acc=q8.24,round=rne,overflow=wrap"
    assert MacSpec.parse(str(s)) == s
    assert s.name == "mac_e4m3fn_e4m3fn_acc_q8_24_rne_wrap"
    assert MacSpec.parse("a=fp16,b=fp16,acc=q4.12,overflow=sat,round=sr,srbits=4").name == \
        "mac_e5m10_e5m10_acc_q4_12_sr4_sat"


@pytest.mark.parametrize("text, message", [
    ("a=fp16,b=fp16,acc=q8.8,overflow=ieee",
     "overflow for a fixed-point accumulator must be wrap or sat, not 'ieee'"),
    ("a=fp16,b=fp16,acc=q8.8,fused=no",
     "a fixed-point accumulator takes the exact product (fused=yes); acc=q8.8 with prod/fused=no is not supported"),
    ("a=q4.4,b=int8,acc=int16", "an integer accumulator needs integer operands; a=q4.4 is a fixed-point format"),
    ("a=fp16,b=fp16,acc=fp16,prod=q4.4,fused=no", "prod=q4.4 must be a float format like acc=fp16"),
    ("a=fp16,b=fp16,acc=q8.8,order=mta4w20p8", "order mta4w20p8 needs a float accumulator, not q8.8"),
])
def test_bad_specs(text, message):
    with pytest.raises(ValueError) as exc:
        MacSpec.parse(text)
    assert str(exc.value) == message


# ---------------------------------------------------------------------------------------------
# mac_step against the Fraction reference
# ---------------------------------------------------------------------------------------------
def _check_against_reference(spec, n, seed):
    rng = np.random.default_rng(seed)
    acc, a, b = adversarial_triples(spec, n, rng)
    acc2, a2, b2 = random_triples(spec, n // 4, rng)
    acc, a, b = (np.concatenate(p) for p in ((acc, acc2), (a, a2), (b, b2)))
    rand = rng.integers(0, 1 << spec.sr_bits, size=acc.size) if spec.sr_bits else None
    got = mac_step(spec, acc, a, b, rand=rand)
    ref = np.asarray([mac_step_ref(spec, int(c), int(x), int(y), None if rand is None else int(rand[i]))
                      for i, (c, x, y) in enumerate(zip(acc, a, b))], dtype=np.uint64)
    bad = np.flatnonzero(got != ref)
    assert bad.size == 0, (f"{bad.size} mismatches, first acc={int(acc[bad[0]]):#x} a={int(a[bad[0]]):#x} "
                           f"b={int(b[bad[0]]):#x}: {int(got[bad[0]]):#x} != {int(ref[bad[0]]):#x}")
    return acc, a, b, rand


def _spec_or_refused(text, mode):
    """The spec with ``round=mode``, or None where its products lie on the grid and the mode is
    refused as having no effect (int8 into q16.4, fp8 into q8.24; tests/test_spec.py)."""
    try:
        return MacSpec.parse(f"{text},round={mode}")
    except ValueError as exc:
        assert mode != "rne" and str(exc).startswith(f"round={mode} has no effect on acc="), exc
        return None


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("text", SPECS)
def test_mac_step_matches_reference(text, mode):
    spec = _spec_or_refused(text, mode)
    if spec is not None:
        _check_against_reference(spec, 1200, seed=len(text) + len(mode))


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("text", SPECS)
def test_mac_step_matches_reference_large(text, mode):
    spec = _spec_or_refused(text, mode)
    if spec is not None:
        _check_against_reference(spec, 40_000, seed=7)


def test_adversarial_cases_are_hit():
    """The stimulus really reaches lsb ties, inexact steps and overflow in both policies."""
    for text in ("a=fp8_e4m3,b=fp8_e4m3,acc=q4.12", "a=fp8_e4m3,b=fp8_e4m3,acc=q4.12,overflow=sat"):
        spec = MacSpec.parse(text)
        acc, a, b = adversarial_triples(spec, 4000, np.random.default_rng(0))
        _, fl = mac_step(spec, acc, a, b, flags=True)
        assert fl["overflow"].sum() > 200 and fl["inexact"].sum() > 200 and fl["swamped"].sum() > 20
        p = parse_format("fp8_e4m3").decode(a) * parse_format("fp8_e4m3").decode(b) * 2.0**12
        assert np.sum(np.isfinite(p) & (p % 1 == 0.5)) > 100  # exact ties at the lsb


@pytest.mark.parametrize("text", ["a=fp8_e4m3,b=fp8_e4m3,acc=q8.24", "a=fp16,b=fp16,acc=q4.12,overflow=sat"])
def test_specials_rule(text):
    """A NaN product writes the most negative code, an infinite one the end of the range by sign."""
    spec = MacSpec.parse(text)
    f = spec.acc
    nan = spec.a.nan_code
    one = spec.b.encode([1.0])[0]
    low = np.uint64(f.min_int & ((1 << f.width) - 1))
    assert mac_step(spec, 5, nan, one) == low
    if spec.a.has_inf:
        zero = np.uint64(0)
        assert mac_step(spec, 5, spec.a.inf_code, one) == f.max_int
        assert mac_step(spec, 5, spec.a.inf_code | spec.a.sign_bit, one) == low
        assert mac_step(spec, 5, spec.a.inf_code, zero) == low  # inf * 0 is NaN
    for c in special_codes(spec.a):
        assert mac_step(spec, 5, c, one) == mac_step_ref(spec, 5, int(c), int(one))


def test_wrap_and_saturate_at_the_ends():
    wrap = MacSpec.parse("a=int8,b=int8,acc=q8.0")
    sat = wrap.replace(overflow="sat")
    assert int(mac_step(wrap, 127, 1, 1)) == 0x80 and int(mac_step(sat, 127, 1, 1)) == 127
    assert int(mac_step(wrap, 0x80, 0xFF, 1)) == 127 and int(mac_step(sat, 0x80, 0xFF, 1)) == 0x80


# ---------------------------------------------------------------------------------------------
# Emulation against a scalar mac_step loop
# ---------------------------------------------------------------------------------------------
def _scalar_loop(spec, A, B, init, seed=0):
    from psum.golden.emulation.kernels import codes, sr_rand

    M, K = A.shape
    N = B.shape[1]
    ac, bc = codes(spec.a, A.numpy()), codes(spec.b, B.numpy())
    out = np.empty((M, N), dtype=np.uint64)
    for m in range(M):
        for n in range(N):
            c = codes(spec.acc, init[0, n].reshape(1).numpy())[0]
            for k in range(K):
                r = int(sr_rand(seed, m * N + n, k, spec.sr_bits)) if spec.sr_bits else None
                c = mac_step_ref(spec, int(c), int(ac[m, k]), int(bc[k, n]), r)
            out[m, n] = c
    return spec.acc.decode(out)


def _operands(spec, M, K, N, seed, scale=2.0):
    rng = np.random.default_rng(seed)
    A = torch.from_numpy(spec.a.decode(spec.a.encode(rng.standard_normal((M, K)) * scale, saturate=True)))
    B = torch.from_numpy(spec.b.decode(spec.b.encode(rng.standard_normal((K, N)) * scale, saturate=True)))
    init = torch.from_numpy(spec.acc.decode(spec.acc.encode(rng.standard_normal((1, N)))))
    return A, B, init


@pytest.mark.parametrize("text, backends", [
    ("a=fp8_e4m3,b=fp8_e4m3,acc=q8.24", ("auto", "gemm", "torch", "numpy")),
    ("a=fp8_e4m3,b=fp8_e4m3,acc=q8.24,overflow=sat", ("auto", "torch")),
    ("a=fp8_e4m3,b=fp8_e4m3,acc=q4.12", ("auto", "torch", "numpy")),
    ("a=fp8_e4m3,b=fp8_e4m3,acc=q4.12,overflow=sat,round=rtz", ("auto", "torch")),
    ("a=fp8_e4m3,b=fp8_e4m3,acc=q3.6,round=sr,srbits=5", ("auto", "torch", "numpy")),
    ("a=fp16,b=fp16,acc=q4.20,round=rna", ("auto", "torch")),
    ("a=fp8_e4m3,b=fp8_e4m3,acc=q5.3,round=rdn", ("auto", "torch")),
])
def test_accumulate_matches_scalar_loop(text, backends):
    from psum.golden.emulation.kernels import accumulate

    spec = MacSpec.parse(text)
    A, B, init = _operands(spec, 5, 40, 4, seed=len(text))
    ref = _scalar_loop(spec, A, B, init)
    for backend in backends:
        got = accumulate(spec, A, B, init, backend=backend).numpy()
        assert np.array_equal(got, ref), backend


def test_backend_choices_are_reported():
    from psum.golden.emulation.kernels import accumulate, fixed_gemm_ok

    spec = MacSpec.parse("a=fp8_e4m3,b=fp8_e4m3,acc=q4.12")
    A, B, init = _operands(spec, 2, 8, 2, seed=0)
    assert not fixed_gemm_ok(spec, A, B, init)  # fp8 products reach 2**-18, below q4.12's lsb
    assert fixed_gemm_ok(spec.replace(acc="q8.24"), A, B, init)
    # saturation takes the GEMM only where the data bound shows it can never fire
    sat = spec.replace(acc="q8.24", overflow="sat")
    assert fixed_gemm_ok(sat, A / 16, B / 16, init * 0) and not fixed_gemm_ok(sat, A * 64, B * 64, init)
    with pytest.raises(ValueError, match="^backend c does not take fixed-point accumulators"):
        accumulate(spec, A, B, init, backend="c")
    with pytest.raises(ValueError, match="^backend gemm cannot compute"):
        accumulate(spec, A, B, init, backend="gemm")


@pytest.mark.parametrize("order", ["chunk8,acc2=fp32", "chunk8,acc2=q8.24", "tree"])
def test_orders_with_fixed_point(order):
    """chunk and tree orders compose fixed-point and float accumulators through mac_step."""
    from psum.golden.emulation.kernels import accumulate_order

    spec = MacSpec.parse(f"a=fp8_e4m3,b=fp8_e4m3,acc=q4.12,order={order}")
    A, B, init = _operands(spec, 3, 20, 3, seed=1)
    got = accumulate_order(spec, A, B, init).numpy()
    assert np.all(np.isfinite(got))
    if order.startswith("chunk"):  # the same as a chunk-by-chunk scalar computation
        seq = spec.replace(order="seq", acc2=None)
        from psum.golden.emulation.kernels import add_spec, codes

        s2 = add_spec(spec, spec.acc2)
        acc2 = np.zeros((3, 3), dtype=np.uint64)
        for j, k0 in enumerate(range(0, 20, 8)):
            part = _scalar_loop(seq, A[:, k0:k0 + 8], B[k0:k0 + 8], init if j == 0 else torch.zeros_like(init))
            acc2 = mac_step(s2, acc2, codes(spec.acc, part), np.ones((3, 3), dtype=np.uint64))
        assert np.array_equal(got, spec.acc2.decode(acc2))


def test_emulate_linear_layer():
    from psum.golden import emulate

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(24, 6))
    x = torch.randn(5, 24)
    for text in ("a=fp8_e4m3,b=fp8_e4m3,acc=q8.24", "a=fp8_e4m3,b=fp8_e4m3,acc=q2.10"):
        y = emulate(net, text)(x)
        y_np = emulate(net, text, backend="numpy")(x)
        assert torch.equal(y, y_np)
    # without a bias to round on load, q8.24 and fp64 hold every partial sum of fp8 products of
    # this layer exactly (multiples of 2**-18 below 2**7): the outputs are identical
    nb = torch.nn.Sequential(torch.nn.Linear(24, 6, bias=False))
    assert torch.equal(emulate(nb, "a=fp8_e4m3,b=fp8_e4m3,acc=q8.24")(x),
                       emulate(nb, "a=fp8_e4m3,b=fp8_e4m3,acc=fp64")(x))


# ---------------------------------------------------------------------------------------------
# RTL
# ---------------------------------------------------------------------------------------------
RTL_SPECS = (
    "a=fp8_e4m3,b=fp8_e4m3,acc=q8.24",
    "a=fp8_e4m3,b=fp8_e4m3,acc=q4.12,overflow=sat,round=rtz",
    "a=fp8_e4m3,b=fp8_e4m3,acc=q3.6,round=sr,srbits=3",
    "a=int8,b=int8,acc=q16.4,overflow=sat",
    "a=q4.4,b=fp8_e5m2,acc=q6.3,round=rna",
    "a=fp16,b=fp16,acc=q8.8,round=rdn",
)


@pytest.mark.parametrize("text", RTL_SPECS)
def test_unit_bit_exact_in_amaranth_simulator(text):
    from psum.hw.verify import amaranth_trace, check_trace, make_stimulus

    stim = make_stimulus(text, cycles=800, seed=2)
    n, first, _ = check_trace(text, stim, amaranth_trace(text, stim))
    assert n == 0, f"first mismatch at cycle {first}"


def test_planted_fault_is_caught():
    """The check is not vacuous: a unit built for rtz, checked as rne, mismatches."""
    from psum.hw.verify import amaranth_trace, check_trace, make_stimulus

    built = "a=fp8_e4m3,b=fp8_e4m3,acc=q4.12,round=rtz"
    stim = make_stimulus(built, cycles=600, seed=0)
    n, first, _ = check_trace(built.replace("rtz", "rne"), stim, amaranth_trace(built, stim))
    assert n > 0 and first is not None


def test_generator_routing_and_refusals():
    from psum.hw import generate
    from psum.hw.fixed_mac import FixedMac

    unit = generate("a=fp8_e4m3,b=fp8_e4m3,acc=q8.24")
    assert isinstance(unit, FixedMac) and unit.guard_bits == 0  # no product below the lsb
    assert generate("a=fp8_e4m3,b=fp8_e4m3,acc=q4.12,round=sr,srbits=3").guard_bits == 5
    with pytest.raises(ValueError, match="^FixedMac needs a fixed-point accumulator q<I>.<F>, not acc=fp16$"):
        FixedMac("a=fp16,b=fp16,acc=fp16")
    for order in ("tree4", "chunk4"):
        with pytest.raises(ValueError, match=f"^fixed-point accumulators have a sequential unit only, not order={order}$"):
            generate(f"a=fp8_e4m3,b=fp8_e4m3,acc=q8.24,order={order}")


def test_float_unit_takes_fixed_point_operands():
    from psum.hw.verify import amaranth_trace, check_trace, make_stimulus

    text = "a=q4.4,b=fp8_e4m3,acc=e5m6"
    stim = make_stimulus(text, cycles=600, seed=3)
    assert check_trace(text, stim, amaranth_trace(text, stim))[0] == 0


icarus = pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs Icarus Verilog")


@icarus
@pytest.mark.parametrize("text", ["a=fp8_e4m3,b=fp8_e4m3,acc=q8.24", "a=fp8_e4m3,b=fp8_e4m3,acc=q4.12,overflow=sat"])
def test_unit_bit_exact_in_icarus_with_recorded_streams(text):
    from psum.hw.verify import conv_streams_from_digits, simulate

    res = simulate(text, cycles=3000, seed=1, streams=conv_streams_from_digits(text, 40))
    assert res.cycles_checked >= 3000 and res.mismatches == 0, res.first_mismatch


@icarus
@pytest.mark.slow
@pytest.mark.parametrize("text", ["a=fp8_e4m3,b=fp8_e4m3,acc=q8.24", "a=fp8_e4m3,b=fp8_e4m3,acc=q4.12,round=sr,srbits=3"])
def test_unit_exhaustive_operand_pairs_in_icarus(text):
    from psum.hw.verify import simulate

    res = simulate(text, exhaustive=True)
    assert res.cycles_checked > 500_000 and res.mismatches == 0, res.first_mismatch


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["formats", "q0.8"], "psum formats: error: format 'q0.8': fixed-point integer bits must be an integer "
                          "between 1 and 64, not 0"),
    (["quantize", "q40.40", "1"], "psum quantize: error: format 'q40.40': fixed-point width I+F must be "
                                  "between 2 and 64, not 40+40"),
    (["verilog", "a=fp16,b=fp16,acc=q8.8,fused=no"],
     "psum verilog: error: a fixed-point accumulator takes the exact product (fused=yes)"),
    (["sim", "a=fp16,b=fp16,acc=q8.8,overflow=ieee"],
     "psum sim: error: overflow for a fixed-point accumulator must be wrap or sat, not 'ieee'"),
])
def test_cli_errors_are_one_line(argv, message, capsys):
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code
    assert rc == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(message), err


def test_cli_step_quantize_formats(capsys):
    assert main(["step", "a=fp8_e4m3,b=fp8_e4m3,acc=q4.12", "0x0010", "0x38", "0x38"]) == 0
    out = capsys.readouterr().out
    assert "-> 0x1010" in out
    assert main(["quantize", "q4.12", "1.00006103515625", "-9"]) == 0
    out = capsys.readouterr().out
    assert "0x1000" in out and "0x8000" in out
    assert main(["formats", "q8.24"]) == 0
    assert "q8_24" in capsys.readouterr().out
