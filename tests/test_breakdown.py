"""Per-stage breakdown (psum.flows.breakdown): stage attribution, the critical path by stage, energy
by stage, on a hand-written netlist (every figure computed by hand) and on real Yosys runs.

Slow tier (``pytest -m slow tests/test_breakdown.py``): the breakdown of a small float MAC through
Yosys and Icarus (about 30 s on a loaded machine).
"""

import json
import shutil

import pytest

from psum.cli.main import main
from psum.flows.breakdown import breakdown, path_by_stage, stage_group
from psum.flows.cells import CELLS
from psum.hw.float_parts import STAGES, stage_of

SMALL_FLOAT = "a=e2m1,b=e2m1,acc=e3m2,round=rne"

# -- stage names ------------------------------------------------------------------------------


@pytest.mark.parametrize("path, kind", [
    ("$flatten\\p__multiplier.$abc$4306$blif$4306$15", "multiplier"),
    ("$flatten\\round_sum.\\n__normalise.$abc$1$2", "normalise"),  # innermost stage wins
    ("$flatten\\l1_s__align.$abc$7", "align"),                      # a named FloatStep (chunk units)
    ("$abc$12$auto$3", None),                                      # top level: no stage
    ("$flatten\\x__bogus.$abc$1", None),                            # not a stage kind
])
def test_stage_of(path, kind):
    assert stage_of(path) == kind


def test_stage_group_flip_flops_and_top_level():
    assert stage_group("$flatten\\s__adder.$abc$1", CELLS["DFF_X1"]) == "register"
    assert stage_group("$abc$1", CELLS["NAND2_X1"]) == "control"
    assert stage_group("$flatten\\s__adder.$abc$1", CELLS["NAND2_X1"]) == "adder"


def test_stage_kind_is_checked():
    from amaranth.hdl import Module

    from psum.hw.float_parts import stage

    m = Module()
    with pytest.raises(ValueError, match=r"^stage kind must be one of unpack, multiplier, .*, not 'mul'$"):
        stage(m, "p", "mul")
    m._MustUse__silence = True  # never elaborated on purpose


def test_float_verilog_keeps_the_stages():
    from psum.hw import verilog

    text = verilog(SMALL_FLOAT)
    for kind in ("unpack", "multiplier", "normalise", "align", "adder", "round", "specials"):
        assert f"__{kind}" in text, kind
    assert set(STAGES) >= {"control", "register"}


# -- a hand-written mapped netlist with stage names --------------------------------------------
# m = NAND2(a, b) in a multiplier stage, s = XOR2(m, a) in an adder stage, q = DFF(s) -> acc.
_STAGED = {"modules": {"staged": {
    "ports": {"clk": {"direction": "input", "bits": [2]}, "a": {"direction": "input", "bits": [3]},
              "b": {"direction": "input", "bits": [4]}, "acc": {"direction": "output", "bits": [7]}},
    "cells": {
        "$flatten\\p__multiplier.$abc$1": {"type": "NAND2_X1", "connections": {"A1": [3], "A2": [4], "ZN": [5]}},
        "$flatten\\s__adder.$abc$2": {"type": "XOR2_X1", "connections": {"A": [5], "B": [3], "Z": [6]}},
        "$auto$ff$3": {"type": "DFF_X1", "connections": {"D": [6], "CK": [2], "Q": [7]}},
    },
}}}
_W1, _W2 = 0.1774 * 1.7460, 0.1774 * 3.9394  # wire-load model, fanout 1 and 2 (psum.flows.cells)


@pytest.fixture
def staged(tmp_path):
    from psum.flows.netlist import Netlist

    path = tmp_path / "staged.json"
    path.write_text(json.dumps(_STAGED))
    return Netlist(path, "staged")


def test_path_by_stage_by_hand(staged):
    t = staged.timing()
    m = 0.012 + 0.0050 * (2.23 + _W1)              # NAND2 into XOR2 A
    s = m + 0.035 + 0.0050 * (1.14 + _W1)          # XOR2 into DFF D
    assert t.end == "ff" and t.delay_ns == round(s + 0.040, 6)
    runs = path_by_stage(t, staged)
    assert [(r["stage"], r["cells"]) for r in runs] == [("multiplier", 1), ("adder", 1), ("register", 0)]
    assert [r["delay_ns"] for r in runs] == pytest.approx([m, s - m, 0.040], abs=2e-6)
    assert runs[-1]["arrival_ns"] == t.delay_ns
    assert sum(r["delay_ns"] for r in runs) == pytest.approx(t.delay_ns, abs=1e-5)


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs Icarus Verilog")
def test_energy_groups_split_the_energy_by_hand(staged, tmp_path):
    from psum.flows.power import estimate_power
    from psum.golden import MacSpec

    spec = MacSpec.parse("a=int8,b=int8,acc=int32")  # only the stimulus layout comes from it
    streams = [([1, 1, 0, 1], [1, 0, 0, 1], 0)]
    res = estimate_power(staged, spec, workdir=tmp_path, streams=streams, idle_cycles=3, group_of=stage_group)
    assert set(res.groups) <= {"multiplier", "adder", "register", "inputs"}
    assert sum(res.groups.values()) == pytest.approx(res.energy_per_mac_fj, abs=1e-3)
    # The clock (DFF internal clock energy + the CK net) is the register's, every active cycle:
    # 5 active cycles (one load, four products) over 4 MACs, plus the q net's toggles.
    e_clock = 4.50 + (0.95 + _W1) * 1.1 ** 2
    assert res.groups["register"] >= e_clock * 5 / 4 - 1e-3
    # Without group_of the figure is unchanged and no groups are returned.
    plain = estimate_power(staged, spec, workdir=tmp_path, streams=streams, idle_cycles=3)
    assert plain.groups == {} and plain.energy_per_mac_fj == res.energy_per_mac_fj


# -- bad input ----------------------------------------------------------------------------------
def test_bad_options_messages():
    with pytest.raises(ValueError, match=r"^n_outputs must be an integer >= 1, not 0$"):
        breakdown(SMALL_FLOAT, n_outputs=0)


# -- real runs ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_breakdown_small_float(tmp_path, capsys):
    b = breakdown(SMALL_FLOAT, cache_dir=tmp_path, n_outputs=4)
    names = [s["stage"] for s in b.stages]
    assert {"unpack", "multiplier", "normalise", "align", "adder", "round", "specials", "register"} <= set(names)
    assert sum(s["ge"] for s in b.stages) == pytest.approx(b.ge, abs=0.1)
    assert sum(s["energy_fj"] for s in b.stages) == pytest.approx(b.energy_per_mac_fj, abs=0.05)
    assert sum(r["delay_ns"] for r in b.path) == pytest.approx(b.delay_ns, abs=1e-3)
    # Boundaries usually cost a little; ABC's run-to-run variation can make the flat netlist the
    # larger one by a few percent (fp16: -1.7 %).
    assert -0.1 < b.hierarchy_overhead < 0.3
    assert b.stage("register")["cells"] == 6  # the e3m2 accumulator, nothing else
    again = breakdown(SMALL_FLOAT, cache_dir=tmp_path, n_outputs=4)
    assert again.cached and again.stages == b.stages
    assert main(["synth", SMALL_FLOAT, "--breakdown", "--cache-dir", str(tmp_path), "--outputs", "4"]) == 0
    out = capsys.readouterr().out
    for word in ("multiplier", "align", "critical path", "GE"):
        assert word in out
