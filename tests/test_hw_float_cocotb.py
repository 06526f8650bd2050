"""The bit-exact claim on the generated float MAC Verilog: cocotb + Icarus against ``mac_step``.

Every unit goes through :func:`psum.hw.verify.simulate`: its Verilog (``psum.hw.verilog``) is built
in Icarus with the cocotb runner (one build directory per spec under ``psum.paths.cache_dir("sim")``), the
stimulus plays directed special-value pairs from several loaded accumulator states, then
constrained-random cycles with ``load``, ``en`` and ``rst`` interleaved (adversarial triples:
ties, cancellation, exponent gaps, overflow), and the register is compared with the golden model
after every cycle. Zero mismatches allowed.

Tiers (``pytest`` runs the fast one)::

    pytest tests/test_hw_float_cocotb.py                 # fast: 8 units covering every feature
    pytest tests/test_hw_float_cocotb.py -m slow         # whole matrix, long runs, corner specs,
                                                         # exhaustive operand pairs (<= 8 bits)

The matrix is ``tests/specs.py``'s (issue 3's float units), also run in Amaranth's simulator.
"""

from __future__ import annotations

import shutil

import pytest

from psum.golden import MacSpec

from specs import CORNERS, MATRIX

pytestmark = pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs Icarus Verilog")

# The fast tier: together every feature of the float generator -- IEEE specials, an unfused
# product, fn x ieee operands with rtz-free saturation, a fin operand format into an fn
# accumulator, integer operands, directed rounding, flush-to-zero, fnuz, stochastic rounding.
FAST = ("fp16_fused_ieee", "bf16_unfused_prod_bf16_e6m9", "e2m1_e4m3fn_sat", "int8_e6m9",
        "fp16_rdn", "e4m3_ftz", "fnuz_unfused", "fp16_sr6")
SLOW = tuple(k for k in MATRIX if k not in FAST)

# Units whose operands are at most 8 bits wide: every (a, b) pair from several acc states.
EXHAUSTIVE = tuple(k for k in MATRIX
                   if max(MacSpec.parse(MATRIX[k]).a.width, MacSpec.parse(MATRIX[k]).b.width) <= 8)


def _run(key: str, *, table=MATRIX, **kwargs):
    from psum.hw.verify import simulate

    spec = MacSpec.parse(table[key])
    res = simulate(spec, **kwargs)  # build directory: the default, psum.paths.cache_dir("sim", spec.name)
    assert res.cycles_checked > 0
    assert res.mismatches == 0, f"{res.mismatches} mismatches; first: {res.first_mismatch}"
    return res


@pytest.mark.parametrize("key", FAST)
def test_float_unit_bit_exact_in_icarus(key):
    res = _run(key, cycles=2000, seed=1)
    assert res.cycles_checked >= 2000


@pytest.mark.slow
@pytest.mark.parametrize("key", SLOW)
def test_float_unit_bit_exact_in_icarus_rest_of_matrix(key):
    _run(key, cycles=2000, seed=1)


@pytest.mark.slow
@pytest.mark.parametrize("key", tuple(MATRIX))
def test_float_unit_bit_exact_in_icarus_long(key):
    _run(key, cycles=50_000, seed=2)


@pytest.mark.slow
@pytest.mark.parametrize("key", EXHAUSTIVE)
def test_float_unit_exhaustive_operand_pairs(key):
    spec = MacSpec.parse(MATRIX[key])
    res = _run(key, cycles=1, seed=3, exhaustive=True)
    # Two cycles (load, step) per operand pair and accumulator state.
    assert res.cycles_checked >= 2 * (1 << (spec.a.width + spec.b.width))


@pytest.mark.slow
@pytest.mark.parametrize("key", tuple(CORNERS))
def test_corner_unit_bit_exact_in_icarus(key):
    _run(key, table=CORNERS, cycles=5000, seed=4)
