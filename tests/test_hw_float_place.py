"""The unnormalised product (:meth:`psum.hw.float_mac.FloatStep.place`) against the scalar golden model.

The fused MAC feeds the exact product to the alignment window at its field's top, without a
leading-zero count, whenever one or two more window bits cover the leading zeros that a subnormal
operand leaves (``K``; the argument is in :meth:`FloatStep._add`). The steps that could go wrong
are those with a subnormal operand: the product then has up to ``K`` leading zeros. These tests
step such products against accumulators of every kind (zeros, subnormals, normals near the
product, for cancellation) and compare each result with one ``mac_step`` (Amaranth simulator).

Slow tier (``pytest -m slow tests/test_hw_float_place.py``): every operand pair with a subnormal
operand against every accumulator code of ``e3m2`` (about 90,000 steps).
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Fragment, Module, Signal

from psum.golden import MacSpec, mac_step
from psum.hw.float_mac import FloatStep
from steptrace import check_step_trace

SPECS = {
    "e3m2_fused_rne": "a=e3m2,b=e3m2,acc=e3m2,round=rne",
    "e3m2_fused_rup": "a=e3m2,b=e3m2,acc=e3m2,round=rup",
    "e3m2_e2m1_into_e3m2_rdn": "a=e3m2,b=e2m1,acc=e3m2,round=rdn",
    "e3m2_into_e4m3_sr": "a=e3m2,b=e3m2,acc=e4m3,round=sr,srbits=3",
    "e2m3_into_e3m2_ftz": "a=e2m3,b=e2m3,acc=e3m2_ftz,round=rne",
    "fp8_e5m2_fused_rne": "a=fp8_e5m2,b=fp8_e5m2,acc=fp8_e5m2,round=rne",
}


def _k(text: str) -> int:
    """``lz_max`` of the placed product (0: the product is normalised)."""
    spec = MacSpec.parse(text)
    step = FloatStep(spec)
    m = Module()
    p = step.product(m, Signal(spec.a.width), Signal(spec.b.width))
    k = step.place(m, p).lz_max
    Fragment.get(m, None)  # elaborate what was built (no unused-elaboratable warnings)
    return k


def test_place_bounds_the_leading_zeros_fp16():
    # subnormal x normal: 10 leading zeros of the subnormal significand + 1; two subnormals'
    # product (field top -27) lies below the accumulator's emin (-14) and is never the larger term.
    assert _k("a=fp16,b=fp16,acc=fp16,round=rne") == 11


def test_place_normal_only_operands_have_one_leading_zero():
    assert _k("a=e4m3_ftz,b=e4m3_ftz,acc=fp16,round=rne") == 1


def test_place_normalises_integer_products():
    # int8 x int8 can have 15 leading zeros: more than two extra window bits, so normalised.
    assert _k("a=int8,b=int8,acc=fp16,round=rne") == 0


def _subnormal_pairs(spec) -> tuple[np.ndarray, np.ndarray]:
    """Every (a, b) code pair in which at least one operand is subnormal (exponent field 0)."""
    a_all, b_all = np.arange(1 << spec.a.width), np.arange(1 << spec.b.width)
    ga, gb = (g.ravel() for g in np.meshgrid(a_all, b_all, indexing="ij"))

    def sub(fmt, code):
        return ((code >> fmt.man_bits) & ((1 << fmt.exp_bits) - 1)) == 0

    keep = sub(spec.a, ga) | sub(spec.b, gb)
    return ga[keep], gb[keep]


def _run(text: str, steps: int | None, seed: int) -> int:
    spec = MacSpec.parse(text)
    rng = np.random.default_rng(seed)
    ga, gb = _subnormal_pairs(spec)
    accs = np.arange(1 << spec.acc.width)
    if steps is None:  # every pair against every accumulator code
        idx = np.repeat(np.arange(ga.size), accs.size)
        cs = np.tile(accs, ga.size)
    else:
        idx = rng.integers(0, ga.size, steps)
        cs = rng.choice(accs, steps)
    rows = {k: [] for k in ("rst", "load", "en", "a", "b", "init", "rnd")}
    want = []
    for i, c in zip(idx, cs):
        a, b, c = int(ga[i]), int(gb[i]), int(c)
        r = int(rng.integers(0, 1 << spec.sr_bits)) if spec.sr_bits else 0
        for k, v in (("rst", 0), ("load", 1), ("en", 0), ("a", 0), ("b", 0), ("init", c), ("rnd", 0)):
            rows[k].append(v)
        for k, v in (("rst", 0), ("load", 0), ("en", 1), ("a", a), ("b", b), ("init", 0), ("rnd", r)):
            rows[k].append(v)
        try:
            nxt = int(mac_step(spec, c, a, b, rand=r if spec.sr_bits else None))
        except ValueError:  # a NaN into a fin accumulator has no golden value
            nxt = None
        want += [c, nxt]
    stim = {k: np.asarray(v, dtype=np.uint64) for k, v in rows.items()}
    return check_step_trace(spec, stim, want)


@pytest.mark.parametrize("text", list(SPECS.values()), ids=list(SPECS))
def test_subnormal_operand_products_sampled(text):
    assert _run(text, steps=400, seed=3) == 800


@pytest.mark.slow
def test_subnormal_operand_products_every_accumulator_e3m2():
    _run(SPECS["e3m2_fused_rne"], steps=None, seed=4)
