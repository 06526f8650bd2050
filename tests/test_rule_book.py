"""The rule book (golden/rounding.py, FloatFormat.overflow_codes, the rounder's flags): one body of
each rule, checked against a naive model, on every kind of value it serves (numpy, torch,
Amaranth), in the tables handed to the C kernel, and in the flags the statistics read."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from psum.golden import FloatFormat, MacSpec, Rounding, mac_step, parse_format
from psum.golden.emulation.stats import PartialSumStats
from psum.golden.reference import mac_step_ref
from psum.golden.rounding import exact_zero_sign, round_table, round_up, zero_sign_table

MODES = [m for m in Rounding]
BITS = [(lsb, g, s, sign, c) for lsb in (0, 1) for g in (0, 1) for s in (0, 1) for sign in (0, 1) for c in (0, 1)]


def _naive_up(mode, lsb, g, s, sign, carry):
    """The naive model: the dropped residual r in ulps (guard = 1/2, sticky = "a bit more")."""
    r = Fraction(g, 2) + Fraction(s, 4)
    return {
        Rounding.RNE: r > Fraction(1, 2) or (r == Fraction(1, 2) and lsb == 1),
        Rounding.RNA: r >= Fraction(1, 2),
        Rounding.RTZ: False,
        Rounding.RUP: r > 0 and not sign,
        Rounding.RDN: r > 0 and bool(sign),
        Rounding.ROD: r > 0 and lsb == 0,  # truncate, then set the lsb if inexact
        Rounding.SR: bool(carry),
    }[mode]


def _columns(kind):
    cols = list(zip(*BITS))
    if kind == "numpy":
        return [np.array(c, dtype=bool) for c in cols]
    return [torch.tensor(c, dtype=torch.bool) for c in cols]


@pytest.mark.parametrize("kind", ["numpy", "torch"])
@pytest.mark.parametrize("mode", MODES, ids=str)
def test_round_up_is_the_naive_rule_on_arrays(mode, kind):
    lsb, g, s, sign, c = _columns(kind)
    up = round_up(mode, lsb=lsb, guard=g, sticky=s, sign=sign, sr_carry=c if mode is Rounding.SR else None)
    got = [bool(x) for x in (up.tolist() if kind == "torch" else np.broadcast_to(up, lsb.shape))]
    assert got == [_naive_up(mode, *b) for b in BITS]


@pytest.mark.parametrize("mode", MODES, ids=str)
def test_round_up_is_the_naive_rule_on_amaranth_values(mode):
    m = Module()
    ins = [Signal(name=n) for n in ("lsb", "guard", "sticky", "sign", "carry")]
    out = Signal()
    m.d.comb += out.eq(round_up(mode, lsb=ins[0], guard=ins[1], sticky=ins[2], sign=ins[3],
                                sr_carry=ins[4] if mode is Rounding.SR else None))
    got = []

    async def bench(ctx):
        for b in BITS:
            for sig, v in zip(ins, b):
                ctx.set(sig, v)
            got.append(bool(ctx.get(out)))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert got == [_naive_up(mode, *b) for b in BITS]


@pytest.mark.parametrize("mode", MODES, ids=str)
def test_c_round_table_is_round_up(mode):
    tbl = round_table(mode)
    for lsb, g, s, sign, c in BITS:
        if mode is not Rounding.SR and c:
            continue
        i = g | lsb << 1 | s << 2 | sign << 3 | c << 4
        assert (tbl >> i) & 1 == _naive_up(mode, lsb, g, s, sign, c)


def test_round_up_sr_needs_a_carry():
    with pytest.raises(ValueError, match=r"^stochastic rounding needs sr_carry \(the carry of residual \+ random bits\)$"):
        round_up(Rounding.SR, lsb=np.False_, guard=np.True_, sticky=np.False_, sign=np.False_)


@pytest.mark.parametrize("mode", MODES, ids=str)
def test_exact_zero_sign_ieee_6_3(mode):
    rdn = mode is Rounding.RDN
    for both, sp, sc in [(b, p, c) for b in (0, 1) for p in (0, 1) for c in (0, 1)]:
        want = ((sp or sc) if rdn else (sp and sc)) if both else rdn
        got = exact_zero_sign(mode, both_zero=np.bool_(both), sp=np.bool_(sp), sc=np.bool_(sc))
        assert bool(got) == bool(want)
        assert (zero_sign_table(mode) >> (both | sp << 1 | sc << 2)) & 1 == bool(want)
        assert (zero_sign_table(mode, has_neg_zero=False) >> (both | sp << 1 | sc << 2)) & 1 == 0


@pytest.mark.parametrize("name,mode,sat,want", [
    ("fp16", "rne", False, (0x7C00, 0xFC00)),
    ("fp16", "rna", False, (0x7C00, 0xFC00)),
    ("fp16", "rtz", False, (0x7BFF, 0xFBFF)),
    ("fp16", "rod", False, (0x7BFF, 0xFBFF)),
    ("fp16", "rup", False, (0x7C00, 0xFBFF)),
    ("fp16", "rdn", False, (0x7BFF, 0xFC00)),
    ("fp16", "sr", False, (0x7C00, 0xFC00)),
    ("fp16", "rne", True, (0x7BFF, 0xFBFF)),
    ("fp8_e4m3", "rne", False, (0x7F, 0x7F)),        # fn: NaN, whatever the sign
    ("fp8_e4m3", "rup", False, (0x7F, 0xFE)),
    ("fp8_e4m3", "rne", True, (0x7E, 0xFE)),
    ("fp8_e4m3fnuz", "rne", False, (0x80, 0x80)),    # fnuz: the single NaN 0x80
    ("fp6_e3m2", "rne", False, (0x1F, 0x3F)),        # fin: always saturates
])
def test_overflow_codes_table(name, mode, sat, want):
    assert parse_format(name).overflow_codes(mode, sat) == want


def _fraction(fmt, code):
    v = fmt.decode(np.uint64(code))
    return Fraction(float(v))


def test_rne_sum_just_above_max_is_not_an_overflow():
    """65504 + 8 is above fp16's max but RNE rounds it back to max: no overflow, swamped;
    65504 + 16 is the tie that rounds to 65536: overflow (inf)."""
    spec = MacSpec.parse("a=fp16,b=fp16,acc=fp16")
    fmt = spec.acc
    acc = fmt.encode([65504.0, 65504.0, 65504.0])
    a = fmt.encode([8.0, 16.0, 1.0])
    b = fmt.encode([1.0, 1.0, 1.0])
    code, fl = mac_step(spec, acc, a, b, flags=True)
    assert fmt.decode(code).tolist() == [65504.0, float("inf"), 65504.0]
    assert fl["overflow"].tolist() == [False, True, False]
    assert fl["swamped"].tolist() == [True, False, True]
    assert fl["inexact"].tolist() == [True, True, True]
    st = PartialSumStats(spec)
    st.observe(spec, acc, fmt.decode(a) * fmt.decode(b), code, fl)
    assert (st.n_overflow, st.n_swamp) == (1, 2)


@pytest.mark.parametrize("text", ["a=fp16,b=fp16,acc=fp16", "a=fp8_e4m3,b=fp8_e4m3,acc=e5m2,round=rup",
                                  "a=bf16,b=bf16,acc=e5m6,prod=e5m6,fused=no,round=rtz"])
def test_flags_equal_those_derived_from_the_reference(text):
    """Near the top of the range: overflow iff the Fraction reference, rounding with an unbounded
    exponent, lands beyond max finite; inexact iff its result differs from the exact sum."""
    spec = MacSpec.parse(text)
    fmt = spec.acc
    rng = np.random.default_rng(3)
    n = 400
    # accumulators and products near max finite, both signs, so sums straddle the overflow point
    acc = fmt.encode(fmt.max_value * rng.uniform(0.5, 1.0, n) * rng.choice([-1, 1], n), saturate=True)
    a = spec.a.encode(rng.uniform(0.0, 1.0, n) * np.sqrt(fmt.max_value) * rng.choice([-1, 1], n), saturate=True)
    b = spec.b.encode(rng.uniform(0.0, 1.0, n) * np.sqrt(fmt.max_value), saturate=True)
    code, fl = mac_step(spec, acc, a, b, flags=True)
    # the accumulator's grid with room above (same bias, man_bits, subnormals): rounding there is
    # rounding with an unbounded exponent
    wide = FloatFormat(fmt.exp_bits + 2, fmt.man_bits, bias=fmt.bias)
    fp64 = parse_format("fp64")

    def round_wide(fmt_to, x: Fraction) -> Fraction:
        # the reference rounds x (exact in fp64: sums of narrow values) as x * 1 into fmt_to
        s = MacSpec(a=fp64, b=parse_format("int2"), acc=fmt_to, rounding=spec.rounding)
        return _fraction(fmt_to, mac_step_ref(s, 0, int(fp64.encode(float(x))[()]), 1))

    n_over = 0
    for i in range(n):
        ref = mac_step_ref(spec, int(acc[i]), int(a[i]), int(b[i]))
        assert ref == int(code[i])
        p = _fraction(spec.a, a[i]) * _fraction(spec.b, b[i])
        over = False
        if spec.prod is not None:
            pw = round_wide(FloatFormat(spec.prod.exp_bits + 2, spec.prod.man_bits, bias=spec.prod.bias), p)
            over = abs(pw) > Fraction(spec.prod.max_value)
            p = pw
        exact = _fraction(fmt, acc[i]) + p
        assert float(exact) == exact
        over = over or abs(round_wide(wide, exact)) > Fraction(fmt.max_value)
        n_over += over
        assert bool(fl["overflow"][i]) == over, (i, exact)
        if not over:
            assert bool(fl["inexact"][i]) == (_fraction(fmt, ref) != exact), (i, exact)
    assert 0 < n_over < n  # the stimulus straddles the boundary
