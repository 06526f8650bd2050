"""Timed gate simulation (psum45 cell delays) and the glitch share (issue 12 item 5): real Yosys and Icarus."""

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


def test_glitch_refuses_a_liberty_library(capsys):
    from psum.cli.main import main

    assert main(["synth", TINY, "--glitch", "--liberty", "tests/data/tiny_nldm.lib"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "psum synth: error: --glitch simulates psum45 cell delays only; drop --liberty or --glitch")
