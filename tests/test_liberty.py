"""psum synth --liberty (psum.flows.liberty): a real-format NLDM Liberty file read with liberty-parser,
timing with slew propagation, internal and leakage power, every figure checked by hand.

The library is ``tests/data/tiny_nldm.lib`` (2x2 tables of round numbers). The netlist is a
hand-written mapped design: n1 = NAND2_T(a, b), n2 = INV_T(n1), q = DFF_T(D=n2), acc = q.

Slow tier (``pytest -m slow tests/test_liberty.py``): a small integer MAC synthesised onto the file
through Yosys and Icarus, and the CLI.
"""

import json
import re
from pathlib import Path

import pytest

from psum.cli.main import main
from psum.errors import PsumError
from psum.flows.cells import wire_cap
from psum.flows.liberty import Table, arc_delay, read_liberty, setup_time

LIB = Path(__file__).parent / "data" / "tiny_nldm.lib"

_NET = {"modules": {"tiny": {
    "ports": {"clk": {"direction": "input", "bits": [2]}, "a": {"direction": "input", "bits": [3]},
              "b": {"direction": "input", "bits": [4]}, "acc": {"direction": "output", "bits": [7]}},
    "cells": {
        "g_nand": {"type": "NAND2_T", "connections": {"A1": [3], "A2": [4], "ZN": [5]}},
        "g_inv": {"type": "INV_T", "connections": {"A": [5], "ZN": [6]}},
        "r_q": {"type": "DFF_T", "connections": {"D": [6], "CK": [2], "Q": [7]}},
    },
}}}
W1 = wire_cap(1)
L_N1 = 1.0 + W1  # INV_T A + wire
L_N2 = 1.1 + W1  # DFF_T D + wire
S0 = 0.01        # ideal input and clock slew: the tables' smallest slew index


@pytest.fixture(scope="module")
def lib():
    return read_liberty(LIB)


@pytest.fixture
def net(lib, tmp_path):
    from psum.flows.netlist import Netlist

    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(_NET))
    return Netlist(path, "tiny", library=lib)


def test_reads_cells_units_and_figures(lib):
    assert lib.name == "tiny_nldm" and lib.vdd == 1.0 and lib.input_slew == S0
    assert set(lib.cells) == {"INV_T", "BUF_T", "NAND2_T", "NOR2_T", "DFF_T"}
    assert lib.nand2_area == 0.8  # one GE
    dff = lib.cells["DFF_T"]
    assert dff.is_ff and dff.clock == "CK" and dff.output == "Q" and dff.cap("D") == 1.1
    assert lib.cells["NAND2_T"].verilog == "~(A1 & A2)" and lib.cells["NAND2_T"].leakage_nw == 20.0


def test_table_bilinear_and_extrapolation():
    t = Table("slew", "load", (0.0, 1.0), (0.0, 10.0), ((0.0, 10.0), (1.0, 11.0)))
    assert t(slew=0.5, load=5.0) == pytest.approx(5.5)
    assert t(slew=2.0, load=20.0) == pytest.approx(22.0)  # linear beyond both ends
    assert t(slew=0.0, load=-10.0) == pytest.approx(-10.0)


def test_arc_by_hand(lib):
    # NAND2_T A1 at the tables' centre (slew 0.06, load 3): the mean of each 2x2 table;
    # the larger of rise (0.030) and fall (0.032), transitions 0.048 / 0.050.
    d, tr = arc_delay(lib.cells["NAND2_T"], "ZN", "A1", 0.06, 3.0)
    assert (d, tr) == pytest.approx((0.032, 0.050))
    assert setup_time(lib.cells["DFF_T"], 0.01, 0.01) == pytest.approx(0.040)  # fall constraint


def test_nldm_timing_with_slew_by_hand(net):
    f = (L_N1 - 1.0) / 4.0                       # n1's load between the indices 1 and 5 fF
    n1 = 0.016 + 0.024 * f                       # A2's cell_fall (the latest arc), slew S0
    s1 = 0.016 + 0.048 * f                       # worst transition: A2's fall_transition
    g, h = (L_N2 - 1.0) / 4.0, (s1 - S0) / 0.1   # INV_T: load and slew fractions
    n2 = n1 + 0.010 + 0.020 * g + 0.010 * h      # cell_rise (larger than cell_fall)
    s2 = 0.010 + 0.040 * g + 0.020 * h           # rise_transition
    setup = 0.040 + 0.020 * (s2 - S0) / 0.1      # fall_constraint at D slew s2, clock slew S0
    q = 0.050 + 0.020 * (0.0 - 1.0) / 4.0        # clock-to-Q into the bare port: extrapolated
    assert n2 + setup > q
    t = net.timing()
    assert t.delay_ns == pytest.approx(n2 + setup, abs=1e-6)
    assert t.end == "ff" and t.path == ("NAND2_T", "INV_T")
    slew = net._nldm()[1]
    assert slew[5] == pytest.approx(s1) and slew[6] == pytest.approx(s2)


def test_energies_and_leakage_by_hand(net):
    f = (L_N1 - 1.0) / 4.0
    s1 = 0.016 + 0.048 * f
    g, h = (L_N2 - 1.0) / 4.0, (s1 - S0) / 0.1
    idx = {name: i for i, (name, _, _) in enumerate(net.cells)}
    # NAND2_T: mean of rise/fall power per related pin, then over A1 and A2, at slew S0.
    assert net.internal_energy(idx["g_nand"]) == pytest.approx(((0.30 + 0.03 * f) + (0.32 + 0.03 * f)) / 2)
    # INV_T at its input slew s1 and load: (rise + fall) / 2.
    assert net.internal_energy(idx["g_inv"]) == pytest.approx(0.15 + 0.03 * g + 0.07 * h)
    # DFF_T: Q's energy related to CK at load 0 (extrapolated), and the clock pin's per cycle.
    assert net.internal_energy(idx["r_q"]) == pytest.approx(((1.00 - 0.025) + (0.80 - 0.025)) / 2)
    assert net.clock_energy(idx["r_q"]) == pytest.approx(2.00 + 1.00)
    assert net.leakage_nw() == 20.0 + 10.0 + 60.0 and net.vdd == 1.0


@pytest.mark.parametrize("text, message", [
    ("garbage {", "not a Liberty file"),
    ('library (x) { delay_model : generic_cmos; }', "delay_model 'generic_cmos' is not supported (only table_lookup, NLDM)"),
    ('library (x) { cell (I) { area : 1; pin (A) { direction : input; } '
     'pin (Z) { direction : output; function : "!A"; } } }', "no plain rising-edge D flip-flop"),
    ('library (x) { time_unit : "1s"; }', "time_unit '1s' is not one of 1ps, 10ps, 100ps, 1ns"),
])
def test_bad_files_are_one_line(tmp_path, text, message):
    path = tmp_path / "bad.lib"
    path.write_text(text)
    with pytest.raises(PsumError, match=re.escape(message)) as e:
        read_liberty(path)
    assert "\n" not in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^liberty file .*nope.lib does not exist$"):
        read_liberty(tmp_path / "nope.lib")


@pytest.mark.slow
def test_synth_onto_the_liberty(tmp_path, capsys):
    from psum.flows.synth import synthesize

    r = synthesize("a=int4,b=int4,acc=int12", liberty=LIB, cache_dir=tmp_path, n_outputs=4)
    assert set(r.cells) <= {"INV_T", "BUF_T", "NAND2_T", "NOR2_T", "DFF_T"} and r.cells["DFF_T"] == r.ffs == 12
    assert r.ge == pytest.approx(r.area_um2 / 0.8, abs=0.01)
    assert r.power["leakage_nw"] > 0 and r.delay_ns > 0 and r.energy_per_mac_fj > 0
    psum45 = synthesize("a=int4,b=int4,acc=int12", cache_dir=tmp_path, n_outputs=4)
    assert psum45.library != r.library  # another cache entry
    assert main(["synth", "a=int4,b=int4,acc=int12", "--liberty", str(LIB), "--cache-dir", str(tmp_path),
                 "--outputs", "4", "--clock-ns", "5"]) == 0
    out = capsys.readouterr().out
    for word in ("NAND2_T", "leakage", "NLDM with slew", "slack"):
        assert word in out
