"""Timed gate simulation (psum45 cell delays) and the glitch share (issue 12 item 5): real Yosys and Icarus."""

import json
import shutil
from pathlib import Path

import pytest

from psum.flows.power import _timed_models

TINY = "a=int4,b=int4,acc=int12"


def test_timed_models_delay_every_output_inertially():
    text = _timed_models()
    assert text.count("parameter real TD = 0.0;") == text.count("module ")
    assert "assign #(TD) ZN = ~(A1 & A2);" in text  # NAND2_X1
    assert "always @(posedge CK) Q <= #(TD) D;" in text  # DFF_X1: the data pin stays D


@pytest.mark.slow
def test_glitch_share_of_a_tiny_unit():
    """The timed run settles to the zero-delay values (its zero-delay energy is synthesize()'s, to
    the rounding), and counts at least as many transitions."""
    from psum.flows.synth import glitch, synthesize

    g = glitch(TINY, n_outputs=2)
    r = synthesize(TINY, n_outputs=2)
    assert g.zero_delay_fj_per_mac == pytest.approx(r.energy_per_mac_fj, abs=0.01)
    assert g.toggles_timed >= g.toggles_zero_delay > 0
    assert g.timed_fj_per_mac >= g.zero_delay_fj_per_mac and 0 <= g.glitch_share < 1
    assert g.macs == 18 and g.clock_ns > 2 * r.delay_ns  # every cycle settles before its edge
    assert 0 < g.max_cell_delay_ns < r.delay_ns


# -- NLDM rise/fall delays from a Liberty file (tests/data/tiny_nldm.lib) ---------------------------
# y = NAND2_T(a, i3), i3 = INV_T(INV_T(INV_T(a))): a static-1 hazard. When a rises, both NAND inputs
# are 1 until the inverter chain's output falls, so y falls and rises again (a glitch of two
# transitions, as long as the chain is slower than the NAND's fall, which passes the inertial
# filter); when a falls, A1 = 0 holds y at 1. Settled, y never changes. No clock: no flip-flops.
_HAZARD = {"modules": {"hazard": {
    "ports": {"a": {"direction": "input", "bits": [3]}, "y": {"direction": "output", "bits": [8]}},
    "cells": {
        "i1": {"type": "INV_T", "connections": {"A": [3], "ZN": [5]}},
        "i2": {"type": "INV_T", "connections": {"A": [5], "ZN": [6]}},
        "i3": {"type": "INV_T", "connections": {"A": [6], "ZN": [7]}},
        "y": {"type": "NAND2_T", "connections": {"A1": [3], "A2": [7], "ZN": [8]}},
    },
}}}
LIB = Path(__file__).parent / "data" / "tiny_nldm.lib"


@pytest.fixture
def hazard(tmp_path):
    from psum.flows.liberty import read_liberty
    from psum.flows.netlist import Netlist

    path = tmp_path / "hazard.json"
    path.write_text(json.dumps(_HAZARD))
    return Netlist(path, "hazard", library=read_liberty(LIB))


def test_instance_delays_from_the_nldm_tables_by_hand(hazard):
    """i1: input a ideal (slew 0.01), load INV_T A 1.0 fF + wire (fraction f = wire / 4 of the 1..5 fF
    index): rise = cell_rise 0.010 + 0.020 f, fall = cell_fall 0.008 + 0.016 f. i2: rises from i1's
    fall (cell_rise at i1's fall slew 0.008 + 0.032 f), falls from i1's rise (cell_fall at i1's rise
    slew 0.010 + 0.040 f)."""
    from psum.flows.cells import wire_cap
    from psum.flows.power import instance_delays

    f = wire_cap(1) / 4.0
    idx = {name: i for i, (name, _, _) in enumerate(hazard.cells)}
    d = instance_delays(hazard)
    assert d[idx["i1"]] == pytest.approx((0.010 + 0.020 * f, 0.008 + 0.016 * f))
    s_fall, s_rise = 0.008 + 0.032 * f, 0.010 + 0.040 * f
    assert d[idx["i2"]] == pytest.approx((0.010 + 0.020 * f + 0.010 * (s_fall - 0.01) / 0.1,
                                          0.008 + 0.016 * f + 0.008 * (s_rise - 0.01) / 0.1))


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs Icarus Verilog")
def test_timed_liberty_simulation_counts_the_hazard_by_hand(hazard, tmp_path):
    """Every rise of a in the active cycles adds exactly two transitions of y (the glitch), none settled."""
    from psum.flows.power import ACTIVE, build_stimulus, estimate_glitch, instance_delays
    from psum.golden import MacSpec

    spec = MacSpec.parse("a=int8,b=int8,acc=int32")  # only the stimulus layout comes from it
    streams = [([1, 0, 1, 1, 0, 1, 0, 1], [1] * 8, 0)]
    idx = {name: i for i, (name, _, _) in enumerate(hazard.cells)}
    d = instance_delays(hazard)
    chain = d[idx["i1"]][1] + d[idx["i2"]][0] + d[idx["i3"]][1]  # a rises: i1 falls, i2 rises, i3 falls
    assert chain > d[idx["y"]][1]  # slower than the NAND's fall: the glitch passes the inertial filter
    stim = build_stimulus(spec, streams)
    a, active = stim["a"] & 1, stim["phase"] == ACTIVE
    rises = int(sum(1 for t in range(1, len(a)) if active[t] and a[t] > a[t - 1]))
    falls = int(sum(1 for t in range(1, len(a)) if active[t] and a[t] < a[t - 1]))
    g = estimate_glitch(hazard, spec, workdir=tmp_path, streams=streams)
    assert rises == 4 and falls == 3
    # Settled: a, i1, i2, i3 toggle once per change of a; y never. Timed: y twice per rise of a.
    assert g.toggles_zero_delay == 4 * (rises + falls)
    assert g.toggles_timed == 4 * (rises + falls) + 2 * rises
    assert g.timed_fj_per_mac > g.zero_delay_fj_per_mac and 0 < g.glitch_share < 1


def test_cli_glitch_and_breakdown_take_a_liberty(capsys):
    """--glitch and --breakdown with --liberty are no longer refused: a bad file is the error."""
    from psum.cli.main import main

    for flag in ("--glitch", "--breakdown"):
        assert main(["synth", TINY, flag, "--liberty", "/nonexistent/x.lib"]) == 2
        assert capsys.readouterr().err.strip().splitlines()[-1] == (
            "psum synth: error: liberty file /nonexistent/x.lib does not exist")


@pytest.mark.slow
def test_glitch_on_a_liberty_unit():
    """A small MAC mapped onto the Liberty file: its timed run settles to synthesize()'s zero-delay energy."""
    from psum.flows.synth import glitch, synthesize

    g = glitch(TINY, n_outputs=2, liberty=LIB)
    r = synthesize(TINY, n_outputs=2, liberty=LIB)
    assert g.zero_delay_fj_per_mac == pytest.approx(r.energy_per_mac_fj, abs=0.01)
    assert g.toggles_timed >= g.toggles_zero_delay > 0 and g.clock_ns > 2 * r.delay_ns


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["a=mxfp4_k2,b=mxfp4_k2,acc=e5m3", "a=e2m1,b=e2m1,acc=e3m2,order=tree4"])
def test_glitch_of_a_block_and_a_multi_lane_unit(spec, tmp_path):
    """A block (MX) unit's default streams are whole blocks, as for the zero-delay proxy: merging
    them into dot products (as a multi-lane scalar unit's are) ended psum synth --glitch in an
    AttributeError traceback after the synthesis."""
    from psum.flows.synth import glitch, synthesize

    g = glitch(spec, n_outputs=2)
    r = synthesize(spec, n_outputs=2, cache_dir=tmp_path)
    assert g.zero_delay_fj_per_mac == pytest.approx(r.energy_per_mac_fj, abs=0.01)
    assert g.macs == r.power["macs"] and g.toggles_timed >= g.toggles_zero_delay > 0


# -- the timed simulation's cost bound: refused before Yosys, the CLI before any synthesis -------
def test_glitch_refuses_more_outputs_than_the_bound_before_any_work(monkeypatch):
    from psum.flows import synth
    from psum.flows.power import GLITCH_MAX_OUTPUTS

    assert GLITCH_MAX_OUTPUTS == 4096  # the figure psum synth --help gives
    monkeypatch.setattr(synth, "_run_yosys", lambda *a, **k: pytest.fail("Yosys ran"))
    with pytest.raises(ValueError) as info:
        synth.glitch(TINY, n_outputs=GLITCH_MAX_OUTPUTS + 1)
    assert str(info.value) == "n_outputs must be an integer between 1 and 4096, not 4097"


def test_synth_help_names_the_glitch_bound(capsys):
    from psum.cli.main import main
    from psum.flows.power import GLITCH_MAX_OUTPUTS

    with pytest.raises(SystemExit):
        main(["synth", "--help"])
    assert f"with --glitch at most {GLITCH_MAX_OUTPUTS}" in " ".join(capsys.readouterr().out.split())
