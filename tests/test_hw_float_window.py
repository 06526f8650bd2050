"""The float step's area cuts (issue 12) against the scalar golden model, where they could go wrong.

The accumulator enters the alignment window unnormalised (its field's top bit instead of its
leading one) and the smaller term is aligned by a W-bit shifter with a separate jam mask; both are
exact only by the argument in :meth:`psum.hw.float_mac.FloatStep._top_aligned`. These tests load
every subnormal (and zero) accumulator code and step it with operand pairs, including every pair
of a small format, and compare each result with one ``mac_step`` per step (Amaranth simulator).

Slow tier (``pytest -m slow tests/test_hw_float_window.py``): every operand pair for every
subnormal accumulator of ``e3m2`` (32,768 steps per spec).
"""

from __future__ import annotations

import numpy as np
import pytest

from psum.golden import MacSpec, mac_step
from steptrace import check_step_trace

SPECS = {
    "e3m2_fused_rne": "a=e3m2,b=e3m2,acc=e3m2,round=rne",
    "e3m2_fused_rdn": "a=e3m2,b=e3m2,acc=e3m2,round=rdn",
    "e2m1_into_e3m2": "a=e2m1,b=e2m1,acc=e3m2,round=rne",
    "e3m2_into_e4m3_sr": "a=e3m2,b=e3m2,acc=e4m3,round=sr,srbits=3",
}


def _subnormal_accs(fmt) -> list[int]:
    """Every code of ``fmt`` whose exponent field is zero (subnormals and both zeros)."""
    man = range(1 << fmt.man_bits)
    return [m | s for m in man for s in (0, fmt.sign_bit)]


def _run(text: str, pairs: int | None, seed: int) -> int:
    spec = MacSpec.parse(text)
    rng = np.random.default_rng(seed)
    accs = _subnormal_accs(spec.acc)
    a_all, b_all = np.arange(1 << spec.a.width), np.arange(1 << spec.b.width)
    ga, gb = np.meshgrid(a_all, b_all, indexing="ij")
    ga, gb = ga.ravel(), gb.ravel()
    rows = {k: [] for k in ("rst", "load", "en", "a", "b", "init", "rnd")}
    want = []
    for c in accs:
        idx = np.arange(ga.size) if pairs is None else rng.choice(ga.size, pairs, replace=False)
        for i in idx:
            a, b = int(ga[i]), int(gb[i])
            r = int(rng.integers(0, 1 << spec.sr_bits)) if spec.sr_bits else 0
            for k, v in (("rst", 0), ("load", 1), ("en", 0), ("a", 0), ("b", 0), ("init", c), ("rnd", 0)):
                rows[k].append(v)
            for k, v in (("rst", 0), ("load", 0), ("en", 1), ("a", a), ("b", b), ("init", 0), ("rnd", r)):
                rows[k].append(v)
            want += [c, int(mac_step(spec, c, a, b, rand=r if spec.sr_bits else None))]
    stim = {k: np.asarray(v, dtype=np.uint64) for k, v in rows.items()}
    return check_step_trace(spec, stim, want)


@pytest.mark.parametrize("text", list(SPECS.values()), ids=list(SPECS))
def test_subnormal_accumulator_sampled(text):
    assert _run(text, pairs=12, seed=1) == 2 * 12 * len(_subnormal_accs(MacSpec.parse(text).acc))


@pytest.mark.slow
@pytest.mark.parametrize("text", list(SPECS.values()), ids=list(SPECS))
def test_subnormal_accumulator_every_pair(text):
    _run(text, pairs=None, seed=2)
