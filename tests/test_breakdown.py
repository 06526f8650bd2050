"""Per-stage breakdown (psum.flows.breakdown): stage attribution, the critical path by stage, energy
by stage, on a hand-written netlist (every figure computed by hand) and on real Yosys runs.

Slow tier (``pytest -m slow tests/test_breakdown.py``): the breakdown of a small float MAC through
Yosys and Icarus (about 30 s on a loaded machine).
"""

import json
import shutil
from pathlib import Path

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
    with pytest.raises(ValueError, match=r"^n_outputs must be an integer between 1 and 65536, not 0$"):
        breakdown(SMALL_FLOAT, n_outputs=0)


@pytest.mark.parametrize("results, message", [
    ("x", "breakdown_markdown takes a list of Breakdown results, not str 'x'"),
    ([None], "breakdown_markdown takes Breakdown results (from psum.flows.breakdown.breakdown), not NoneType None"),
    (None, "breakdown_markdown takes a list of Breakdown results, not NoneType None"),
])
def test_breakdown_markdown_refuses_what_is_no_breakdown(results, message):
    """Each was an AttributeError or 'object is not iterable' from inside the table."""
    from psum.flows.breakdown import breakdown_markdown

    with pytest.raises(TypeError) as e:
        breakdown_markdown(results)
    assert str(e.value) == message


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


# -- the same split on a Liberty library (tests/data/tiny_nldm.lib) -------------------------------
# m = NAND2_T(a, b) in a multiplier stage, s = NOR2_T(m, a) in an adder stage, q = DFF_T(s) -> acc.
_STAGED_LIB = {"modules": {"staged": {
    "ports": {"clk": {"direction": "input", "bits": [2]}, "a": {"direction": "input", "bits": [3]},
              "b": {"direction": "input", "bits": [4]}, "acc": {"direction": "output", "bits": [7]}},
    "cells": {
        "$flatten\\p__multiplier.$abc$1": {"type": "NAND2_T", "connections": {"A1": [3], "A2": [4], "ZN": [5]}},
        "$flatten\\s__adder.$abc$2": {"type": "NOR2_T", "connections": {"A1": [5], "A2": [3], "ZN": [6]}},
        "$auto$ff$3": {"type": "DFF_T", "connections": {"D": [6], "CK": [2], "Q": [7]}},
    },
}}}


def test_stage_table_and_path_on_a_liberty_by_hand(tmp_path):
    """Areas (NAND2_T 0.8 = 1 GE, NOR2_T 0.8, DFF_T 4.5 -> 5.625 GE), leakage per stage (20, 18, 60 nW),
    and the NLDM critical path by stage with its edges, worked out from the tables by hand.

    m (NAND2_T, load = NOR2_T A1 1.6 fF + wire, fraction f of the 1..5 fF index; inputs ideal, slew
    0.01): rises at 0.014 + 0.024 f (A2's cell_rise), slew 0.012 + 0.048 f; falls at 0.016 + 0.024 f,
    slew 0.016 + 0.048 f. s (NOR2_T, negative unate, load DFF_T D 1.1 fF + wire, fraction g): rises
    from m's fall through A1 (cell_rise 0.020 + 0.040 g + 0.010 h_f at m's fall slew) or from a's
    fall through A2 (0.022 + 0.040 g); falls from m's rise through A1 (0.010 + 0.020 g + 0.010 h_r).
    D rising: + rise_constraint 0.030 + 0.2 (s_rise_slew - 0.01); falling: + fall_constraint.
    """
    from psum.flows.breakdown import stage_table
    from psum.flows.cells import wire_cap
    from psum.flows.liberty import read_liberty
    from psum.flows.netlist import Netlist

    lib = read_liberty(Path(__file__).parent / "data" / "tiny_nldm.lib")
    path = tmp_path / "staged.json"
    path.write_text(json.dumps(_STAGED_LIB))
    net = Netlist(path, "staged", library=lib)
    stages = {s["stage"]: s for s in stage_table(net, {"multiplier": 1.0, "adder": 3.0, "register": 4.0}, 0.8)}
    assert [(g, s["cells"], s["ge"], s["leakage_nw"]) for g, s in stages.items()] == [
        ("multiplier", 1, 1.0, 20.0), ("adder", 1, 1.0, 18.0), ("register", 1, 5.62, 60.0)]  # 5.625 rounded to 0.01
    assert stages["adder"]["energy_share"] == 0.375 and stages["register"]["area_share"] == pytest.approx(4.5 / 6.1, abs=1e-4)

    f = (1.6 + wire_cap(1) - 1.0) / 4.0
    g = (1.1 + wire_cap(1) - 1.0) / 4.0
    m_rise, m_rise_slew = 0.014 + 0.024 * f, 0.012 + 0.048 * f
    m_fall, m_fall_slew = 0.016 + 0.024 * f, 0.016 + 0.048 * f
    h_f, h_r = (m_fall_slew - 0.01) / 0.1, (m_rise_slew - 0.01) / 0.1
    s_rise_a1 = m_fall + 0.020 + 0.040 * g + 0.010 * h_f
    s_rise_a2 = 0.022 + 0.040 * g                      # a falls at t = 0 with the ideal slew
    s_rise = max(s_rise_a1, s_rise_a2)
    s_rise_slew = max(0.020 + 0.080 * g + 0.020 * h_f, 0.020 + 0.080 * g)   # rise_transition, worst of the arcs
    s_fall = max(m_rise + 0.010 + 0.020 * g + 0.010 * h_r, 0.012 + 0.020 * g)
    s_fall_slew = max(0.010 + 0.040 * g + 0.020 * h_r, 0.010 + 0.040 * g)
    end_rise = s_rise + 0.030 + 0.2 * (s_rise_slew - 0.01)
    end_fall = s_fall + 0.040 + 0.2 * (s_fall_slew - 0.01)
    assert end_rise > end_fall and s_rise_a1 > s_rise_a2  # the path: m falls, s rises, D's rise setup
    t = net.timing()
    assert t.delay_ns == pytest.approx(end_rise, abs=1e-6)
    runs = path_by_stage(t, net)
    assert [(r["stage"], r["cells"], r.get("edge")) for r in runs] == [
        ("multiplier", 1, "fall"), ("adder", 1, "rise"), ("register", 0, None)]
    assert [r["delay_ns"] for r in runs] == pytest.approx([m_fall, s_rise - m_fall, end_rise - s_rise], abs=2e-6)


@pytest.mark.slow
def test_breakdown_small_float_on_a_liberty(tmp_path, capsys):
    """The stages of a small float MAC mapped onto tests/data/tiny_nldm.lib (Yosys, Icarus)."""
    lib = Path(__file__).parent / "data" / "tiny_nldm.lib"
    b = breakdown(SMALL_FLOAT, cache_dir=tmp_path, n_outputs=2, liberty=lib)
    assert b.library.startswith("tiny_nldm:")
    assert {"multiplier", "align", "adder", "round", "register"} <= {s["stage"] for s in b.stages}
    assert sum(s["ge"] for s in b.stages) == pytest.approx(b.ge, abs=0.1)
    assert b.stage("register")["leakage_nw"] == pytest.approx(60.0 * 6)  # six DFF_T of 60 nW
    assert sum(r["delay_ns"] for r in b.path) == pytest.approx(b.delay_ns, abs=1e-3)
    assert all(r.get("edge") in ("rise", "fall") for r in b.path if r["cells"])
    assert main(["synth", SMALL_FLOAT, "--breakdown", "--liberty", str(lib), "--cache-dir", str(tmp_path),
                 "--outputs", "2"]) == 0
    out = capsys.readouterr().out
    assert "leakage nW" in out and "edge" in out
