"""Edge steps of the float MAC's lean datapath (issue 12, item 1) that sampled tests miss.

Each test is one hand-built step (Amaranth simulator) against the scalar golden ``mac_step``:

* the window bound of an unnormalised product with a subnormal operand: the counterexample that
  refutes one window bit fewer for fp16 (W = 24 instead of 25, docs/hw_float.md);
* the overflow code of an ``fnuz`` accumulator, whose only NaN is the sign bit alone;
* the alignment distance across the sign of the exponent gap (the product entering as the
  smaller term one place lower, :meth:`psum.hw.float_mac.FloatStep._add`).
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from psum.golden import MacSpec, Rounding, mac_step, parse_format
from psum.hw.float_parts import FloatRounder
from psum.hw.verify import amaranth_trace


def _steps(text: str, steps) -> tuple[list[int], list[int]]:
    """``(got, want)``: each ``(acc, a, b)`` loaded and stepped once in the unit and by ``mac_step``."""
    spec = MacSpec.parse(text)
    rows = {k: [] for k in ("rst", "load", "en", "a", "b", "init", "rnd")}
    want = []
    for c, a, b in steps:
        for k, v in (("rst", 0), ("load", 1), ("en", 0), ("a", 0), ("b", 0), ("init", c), ("rnd", 0)):
            rows[k].append(v)
        for k, v in (("rst", 0), ("load", 0), ("en", 1), ("a", a), ("b", b), ("init", 0), ("rnd", 0)):
            rows[k].append(v)
        want.append(int(mac_step(spec, c, a, b)))
    got = [int(v) for v in amaranth_trace(spec, {k: np.asarray(v, dtype=np.uint64) for k, v in rows.items()})]
    return got[1::2], want


def test_window_bound_counterexample_fp16():
    # 2**-24 * 2**15 = 2**-9 (product with 11 leading zeros in its 22-bit field, top 2**2) minus
    # c = 2**-21 + 2**-24 (subnormal): exactly below the midpoint 2**-9 - 2**-21, so RNE rounds
    # down to 0x17ff. A 24-bit window puts its jam bit at 2**-21, the guard of the result: the
    # jammed sum is the midpoint and rounds to even, 0x1800 (measured with W - 1).
    got, want = _steps("a=fp16,b=fp16,acc=fp16,round=rne", [(0x8009, 0x0001, 0x7800)])
    assert want == [0x17FF]
    assert got == want


@pytest.mark.parametrize("text", ["a=e3m2,b=e3m2,acc=e3m2fnuz,round=rne", "a=fp8_e5m2,b=fp8_e5m2,acc=fp8_e5m2fnuz,round=rne"])
def test_fnuz_overflow_is_the_nan_code(text):
    spec = MacSpec.parse(text)
    top = spec.acc.max_code  # the largest finite value; adding a product of about its ulp overflows
    steps = [(top, a, b) for a in range(1, 1 << spec.a.width, 7) for b in range(1, 1 << spec.b.width, 5)][:200]
    got, want = _steps(text, steps)
    assert spec.acc.sign_bit in want  # some step overflows to fnuz's NaN (the sign bit alone)
    assert got == want


def test_rounder_fnuz_overflow_code():
    fmt = parse_format("e3m2fnuz")
    rnd = FloatRounder(fmt, rounding=Rounding.RNE, saturate=False, mag_width=5, exp_range=(-6, 2))
    out = {}

    async def bench(ctx):
        for mag in (14, 15, 31):
            ctx.set(rnd.mag, mag)
            out[mag] = ctx.get(rnd.code)

    sim = Simulator(rnd)
    sim.add_testbench(bench)
    sim.run()
    # 14 is the largest finite value; 15 rounds (tie to even) to 16 and 31 is above: fnuz's NaN.
    assert out == {14: 0x1F, 15: fmt.sign_bit, 31: fmt.sign_bit}


@pytest.mark.parametrize("text", ["a=fp16,b=fp16,acc=fp16,round=rne", "a=bf16,b=bf16,acc=bf16,round=rdn"])
def test_alignment_across_the_gap_sign(text):
    # Accumulators from far above to far below the product 1.5 * 1.25 (gap of both signs, the
    # clamp at the window's width and beyond), both signs of the accumulator.
    spec = MacSpec.parse(text)
    fmt = spec.acc
    one = fmt.bias << fmt.man_bits
    a, b = one | (1 << (fmt.man_bits - 1)), one | (1 << (fmt.man_bits - 2))
    steps = []
    for e in range(-40, 41, 1):
        field = fmt.bias + e
        if 1 <= field < (1 << fmt.exp_bits) - 1:
            for man in (0, 1, (1 << fmt.man_bits) - 1):
                for s in (0, fmt.sign_bit):
                    steps.append(((field << fmt.man_bits) | man | s, a, b))
    got, want = _steps(text, steps)
    assert got == want
