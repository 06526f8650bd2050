"""psum synth --liberty (psum.flows.liberty): a real-format NLDM Liberty file read with liberty-parser,
timing with slew propagation, internal and leakage power, every figure checked by hand.

The library is ``tests/data/tiny_nldm.lib`` (2x2 tables of round numbers). The netlist is a
hand-written mapped design: n1 = NAND2_T(a, b), n2 = INV_T(n1), q = DFF_T(D=n2), acc = q.

Slow tier (``pytest -m slow tests/test_liberty.py``): a small integer MAC synthesised onto the file
through Yosys and Icarus, and the CLI.
"""

import json
import os
import re
from pathlib import Path

import pytest

from psum.cli.main import main
from psum.errors import PsumError
from psum.flows.cells import wire_cap
from psum.flows.liberty import Table, arc_delay, arc_edges, read_liberty, setup_time, unateness

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
    assert setup_time(lib.cells["DFF_T"], 0.01, 0.01) == pytest.approx(0.040)  # the larger: fall
    assert setup_time(lib.cells["DFF_T"], 0.01, 0.01, "rise") == pytest.approx(0.030)


def test_arc_edges_follow_the_timing_sense(lib):
    """Negative unate: a rising output comes from a falling input, so cell_rise is read at the
    input's *falling* slew; positive unate: rise from rise."""
    inv, buf = lib.cells["INV_T"], lib.cells["BUF_T"]
    assert inv.arcs["ZN", "A"].sense == "negative_unate" and buf.arcs["Z", "A"].sense == "positive_unate"
    # INV_T at load 1 (index_2[0]): rise from the fall slew 0.11 -> cell_rise 0.020, rise_transition 0.030;
    # fall from the rise slew 0.01 -> cell_fall 0.008, fall_transition 0.008.
    e = arc_edges(inv, "ZN", "A", (0.01, 0.11), 1.0)
    assert e["rise"] == [("fall", pytest.approx(0.020), pytest.approx(0.030))]
    assert e["fall"] == [("rise", pytest.approx(0.008), pytest.approx(0.008))]
    assert arc_edges(buf, "Z", "A", (0.01, 0.11), 1.0)["rise"] == [("rise", pytest.approx(0.020), pytest.approx(0.010))]
    # The flip-flop's clock-to-Q: either Q edge from the clock's (rising) edge.
    assert [x[0] for x in arc_edges(lib.cells["DFF_T"], "Q", "CK", (0.01, 0.01), 1.0)["rise"]] == ["rise", "fall"]


@pytest.mark.parametrize("function, pin, sense", [
    ("~(A1 & A2)", "A1", "negative_unate"), ("A", "A", "positive_unate"), ("A ^ B", "A", "non_unate"),
    ("(A & S) | (B & ~S)", "S", "non_unate"), ("(A & S) | (B & ~S)", "A", "positive_unate"),
])
def test_unateness_from_the_function(function, pin, sense):
    assert unateness(function, ["A", "A1", "A2", "B", "S"], pin) == sense


def test_nldm_timing_rise_and_fall_by_hand(net):
    """n1 = NAND2_T(a, b), n2 = INV_T(n1), D of DFF_T; inputs ideal (both edges at 0, slew S0).

    n1 (negative unate, inputs' slew S0, load fraction f between the indices 1 and 5 fF):
    rises after the later cell_rise (A2: 0.014 + 0.024 f) with rise_transition 0.012 + 0.048 f;
    falls after A2's cell_fall 0.016 + 0.024 f with fall_transition 0.016 + 0.048 f.
    n2 = INV_T(n1) (negative unate): rises from n1's fall (cell_rise at n1's fall slew), falls from
    n1's rise (cell_fall at n1's rise slew). D rising: + rise_constraint at n2's rise slew; D
    falling: + fall_constraint at n2's fall slew. The latest of the two ends is the critical path.
    The old "larger of rise and fall" model (every arc its worse edge, one slew) is an upper bound.
    """
    f = (L_N1 - 1.0) / 4.0
    n1r, s1r = 0.014 + 0.024 * f, 0.012 + 0.048 * f
    n1f, s1f = 0.016 + 0.024 * f, 0.016 + 0.048 * f
    g = (L_N2 - 1.0) / 4.0
    hf, hr = (s1f - S0) / 0.1, (s1r - S0) / 0.1
    n2r = n1f + 0.010 + 0.020 * g + 0.010 * hf             # INV_T cell_rise at n1's fall slew
    s2r = 0.010 + 0.040 * g + 0.020 * hf                   # rise_transition
    n2f = n1r + 0.008 + 0.016 * g + 0.008 * hr             # INV_T cell_fall at n1's rise slew
    s2f = 0.008 + 0.032 * g + 0.016 * hr                   # fall_transition
    end_rise = n2r + 0.030 + 0.020 * (s2r - S0) / 0.1      # rise_constraint (clock slew S0)
    end_fall = n2f + 0.040 + 0.020 * (s2f - S0) / 0.1      # fall_constraint
    old = (n1f + 0.010 + 0.020 * g + 0.010 * hf) + 0.040 + 0.020 * (s2r - S0) / 0.1  # worst-of-both bound
    t = net.timing()
    assert t.delay_ns == pytest.approx(max(end_rise, end_fall), abs=1e-6)
    assert t.delay_ns < old - 1e-3  # rise/fall apart is tighter than the bound
    assert t.end == "ff" and t.path == ("NAND2_T", "INV_T")
    assert t.edges == (("fall", "rise") if end_rise > end_fall else ("rise", "fall"))
    slew = net._nldm()[1]
    assert slew[5] == pytest.approx((s1r, s1f)) and slew[6] == pytest.approx((s2r, s2f))


def _in_ps(text: str) -> str:
    """tiny_nldm.lib in picoseconds: time_unit 1ps and every time figure x 1000 (the slew indices of
    every template, delays, transitions and constraints); loads and energies unchanged."""
    def scaled(line):
        return re.sub(r"[0-9]+\.[0-9]+", lambda m: f"{float(m.group()) * 1000:g}", line)
    out, template = [], ""
    for line in text.replace('time_unit : "1ns"', 'time_unit : "1ps"').split("\n"):
        if "lu_table_template" in line or "power_lut_template" in line:
            template = line
        elif line.strip().startswith("cell ("):
            template = ""
        if template and ("index_1" in line or ("index_2" in line and "setup" in template)):
            line = scaled(line)
        if re.search(r"(cell_rise|cell_fall|rise_transition|fall_transition|rise_constraint|fall_constraint) \(",
                     line):
            line = scaled(line)
        out.append(line)
    return "\n".join(out)


def test_a_library_in_picoseconds_times_as_the_same_one_in_nanoseconds(net, tmp_path):
    """The ideal input and clock slew is the tables' smallest slew index in ns: it was taken in the
    file's unit, so a 1ps library that is tiny_nldm.lib in picoseconds timed the int4 MAC at 39.874 ns
    instead of 1.507 (and 1,762 fJ/MAC instead of 261.6)."""
    from psum.flows.netlist import Netlist

    path = tmp_path / "ps.lib"
    path.write_text(_in_ps(LIB.read_text()))
    ps = read_liberty(path)
    assert ps.input_slew == pytest.approx(S0)
    (tmp_path / "tiny.json").write_text(json.dumps(_NET))
    in_ps = Netlist(tmp_path / "tiny.json", "tiny", library=ps)
    assert in_ps.timing().delay_ns == pytest.approx(net.timing().delay_ns, rel=1e-9)
    assert [in_ps.internal_energy(i) for i in range(3)] == pytest.approx([net.internal_energy(i) for i in range(3)])
    from psum.flows.liberty import MODEL_VERSION

    assert MODEL_VERSION >= 3  # the fix changes a 1ps library's figures: its cached results are not reused


def test_energies_and_leakage_by_hand(net):
    """Internal energy per toggle: (rise_power + fall_power) / 2, each at the slew of the input edge
    that causes it (negative unate: rise_power at the input's fall slew), averaged over related pins."""
    f = (L_N1 - 1.0) / 4.0
    s1r, s1f = 0.012 + 0.048 * f, 0.016 + 0.048 * f
    g = (L_N2 - 1.0) / 4.0
    hr, hf = (s1r - S0) / 0.1, (s1f - S0) / 0.1
    idx = {name: i for i, (name, _, _) in enumerate(net.cells)}
    # NAND2_T: at slew S0 both pins: A1 (0.40 + 0.04 f + 0.20 + 0.02 f) / 2, A2 (0.42 + 0.04 f + 0.22 + 0.02 f) / 2.
    assert net.internal_energy(idx["g_nand"]) == pytest.approx(((0.30 + 0.03 * f) + (0.32 + 0.03 * f)) / 2)
    # INV_T: rise_power at n1's fall slew (0.20 + 0.04 g + 0.10 hf), fall_power at its rise slew (0.10 + 0.02 g + 0.04 hr).
    assert net.internal_energy(idx["g_inv"]) == pytest.approx(
        ((0.20 + 0.04 * g + 0.10 * hf) + (0.10 + 0.02 * g + 0.04 * hr)) / 2)
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


def _edited(text: str, edit: str) -> str:
    """tiny_nldm.lib with one edit of the table below (a cell removed, a figure replaced, ...)."""
    def block(cell):
        a = text.index(f"  cell ({cell})")
        return text[a:text.index("\n  cell (", a + 5) + 1] if cell != "DFF_T" else text[a:text.rindex("}")]
    nand_area = "area : 0.8;\n    cell_leakage_power : 20.0"
    nand_rise = 'cell_rise (delay_2x2) { values ("0.012, 0.036", "0.024, 0.048"); }'
    if edit.startswith("without "):
        return text.replace(block(edit.split()[1]), "")
    if edit == "NOR2_T untimed":
        b = block("NOR2_T")
        return text.replace(b, re.sub(r"      timing \(\) \{.*?\n      \}\n", "", b, flags=re.S))
    if edit == "DFF_T without setup":
        return re.sub(r"      timing \(\) \{\n        related_pin : \"CK\";\n        timing_type : setup_rising;.*?\n      \}\n",
                      "", text, flags=re.S)
    if edit == "twice INV_T":
        return text.replace("  cell (BUF_T)", block("INV_T") + "  cell (BUF_T)")
    if edit == "two libraries":
        return text + text.replace("tiny_nldm", "other")
    old, new = {
        "area word": (nand_area, nand_area.replace("0.8", '"big"')),
        "area negative": (nand_area, nand_area.replace("0.8", "-0.8")),
        "area inf": (nand_area, nand_area.replace("0.8", "inf")),
        "area zero": (nand_area, nand_area.replace("0.8", "0")),
        "leakage nan": ("cell_leakage_power : 20.0", "cell_leakage_power : nan"),
        "capacitance word": ("capacitance : 1.5;", 'capacitance : "x";'),
        "load unit one": ("capacitive_load_unit (1,ff)", "capacitive_load_unit (1)"),
        "load unit zero": ("capacitive_load_unit (1,ff)", "capacitive_load_unit (0,ff)"),
        "vdd zero": ("nom_voltage : 1.0", "nom_voltage : 0"),
        "millivolts": ('voltage_unit : "1V"', 'voltage_unit : "1mV"'),
        "values nan": (nand_rise, nand_rise.replace('"0.012, 0.036", "0.024, 0.048"', '"nan, nan", "nan, nan"')),
        "values short": (nand_rise, nand_rise.replace('"0.012, 0.036", "0.024, 0.048"', '"0.012", "0.024"')),
        "template unknown": (nand_rise, nand_rise.replace("delay_2x2", "nosuch")),
        "index decreasing": ('index_1 ("0.01, 0.11");\n    index_2 ("1.0, 5.0");\n  }\n  power',
                             'index_1 ("0.11, 0.01");\n    index_2 ("1.0, 5.0");\n  }\n  power'),
        "function pin": ('function : "!(A1 & A2)";', 'function : "!(A1 & B)";'),
        "ff next_state": ('next_state : "D";', 'next_state : "DX";'),
        "template variable": ("variable_1 : input_net_transition;", "variable_1 : input_voltage;"),
        "ff clocked_on": ('clocked_on : "CK";', 'clocked_on : "CLK";'),
        "function implicit and": ('function : "!(A1 & A2)";', 'function : "!(A1 A2)";'),
        "function operator": ('function : "!(A1 & A2)";', 'function : "!(A1 @ A2)";'),
    }[edit]
    assert text.count(old) >= 1
    return text.replace(old, new, 1)


@pytest.mark.parametrize("edit, message", [
    # each was a traceback, a figure computed from nonsense, or an error from ABC after the synthesis
    ("area word", "cell NAND2_T: area 'big' is not a number"),  # TypeError traceback
    ("capacitance word", "cell NAND2_T: pin A1: capacitance 'x' is not a number"),  # TypeError traceback
    ("load unit one", "capacitive_load_unit (1) is not (NUMBER, ff|pf)"),  # IndexError traceback
    ("area negative", "cell NAND2_T: area is -0.8; it must be a finite number at least 0"),  # -40.9 area units, 51 GE
    ("area inf", "cell NAND2_T: area is inf; it must be a finite number at least 0"),
    ("area zero", "cell NAND2_T is a two-input NAND of area 0; psum's gate equivalent is the smallest NAND2's area"),
    ("leakage nan", "cell NAND2_T: leakage is nan; it must be a finite number at least 0"),
    ("load unit zero", "capacitive_load_unit is 0; it must be a finite number above 0"),  # delay nan ns, exit 0
    ("vdd zero", "nom_voltage is 0; it must be a finite number above 0"),
    ("millivolts", "voltage_unit '1mV' is not one of 1v"),  # nom_voltage 1100 would have been 1100 V  # energy without the 0.5 C V^2 part
    ("values nan", "cell NAND2_T: pin ZN cell_rise: values holds nan; every figure must be a finite number"),
    ("values short", "cell NAND2_T: pin ZN cell_rise has 2 x 1 values for indices of 2 x 2 points"),
    ("template unknown", "cell NAND2_T: pin ZN cell_rise names the template 'nosuch', which the file does not define"),
    ("index decreasing", "cell INV_T: pin ZN cell_rise: index_1 (0.11, 0.01) does not increase"),
    ("function pin", "cell NAND2_T: function '!(A1 & B)' names B, which is not an input pin of the cell "
                     "(inputs: A1, A2)"),
    ("function implicit and", "cell NAND2_T: function '!(A1 A2)' uses a form psum does not read (postfix ' or "
                              "implicit AND); write it with !, &, |, ^"),  # named no file
    ("function operator", "cell NAND2_T: liberty function '!(A1 @ A2)' is not a boolean expression psum reads (names, "
                          "0, 1, !, &, |, ^ and parentheses)"),  # named neither file nor cell, and showed ~(A1 @ A2)
    ("NOR2_T untimed", "cell NOR2_T has no cell_rise or cell_fall table from pin A1 to ZN; psum times every arc "
                       "from the file's NLDM tables"),  # ABC mapped 214 NOR2_T, each timed at 0 ns
    ("template variable", "cell INV_T: pin ZN cell_rise: its template 'delay_2x2' has variable_1 'input_voltage', "
                          "which psum does not read (one of input_net_transition, input_transition_time, "
                          "constrained_pin_transition, total_output_net_capacitance, related_pin_transition)"),
    ("ff next_state", "cell DFF_T: ff next_state 'DX' names no input pin of the cell (inputs: D, CK)"),  # Yosys failed
    ("ff clocked_on", "cell DFF_T: ff clocked_on 'CLK' names no input pin of the cell (inputs: D, CK)"),
    ("DFF_T without setup", "cell DFF_T has no setup_rising rise_constraint or fall_constraint table on D; psum times "
                            "the register's setup from the file's NLDM tables"),  # 1.464 ns instead of 1.507
    ("twice INV_T", "cell INV_T is defined twice"),
    ("two libraries", "holds 2 top-level groups (library (tiny_nldm), library (other)); psum reads a file of one "
                      "library"),
    ("without INV_T", "no usable logic cells for synthesis (missing an inverter; usable logic cells: BUF_T, NAND2_T, "
                      "NOR2_T)"),  # ABC failed after the synthesis: "yosys failed ...: exit code 1, outputs missing"
    ("without BUF_T", "no usable logic cells for synthesis (missing a buffer; usable logic cells: INV_T, NAND2_T, "
                      "NOR2_T)"),
])
def test_a_file_psum_cannot_use_is_one_line_before_any_work(tmp_path, edit, message):
    path = tmp_path / "my.lib"
    path.write_text(_edited(LIB.read_text(), edit))
    with pytest.raises(PsumError) as e:
        read_liberty(path)
    assert str(e.value) == f"{path}: {message}"


@pytest.mark.parametrize("what, message", [
    ("folder", "liberty file {path} is a folder, not a Liberty file"),  # was "... does not exist"
    ("fifo", "liberty file {path} is not a regular file (a device, FIFO or socket)"),  # was "... does not exist"
    ("empty", "{path}: not a Liberty file (empty)"),
    ("binary", "{path}: not a Liberty file (not text: byte 0x80 at offset 128 is not UTF-8)"),  # the codec's words
])
def test_a_path_that_is_no_liberty_text_is_one_line(tmp_path, what, message):
    path = tmp_path / "my.lib"
    if what == "folder":
        path.mkdir()
    elif what == "fifo":
        os.mkfifo(path)
    else:
        path.write_bytes(b"" if what == "empty" else bytes(range(256)))
    with pytest.raises(PsumError) as e:
        read_liberty(path)
    assert str(e.value) == message.format(path=path)


def test_a_library_without_timing_tables_is_refused_not_timed_at_zero():
    """psum45.lib (psum's own cells: areas and functions, its delays are a linear model in
    psum.flows.cells) has no NLDM tables; as --liberty it printed "delay 0" and "slack +1.000 ns,
    met" at a 1 ns clock."""
    from psum.flows.synth import LIB_PATH

    with pytest.raises(PsumError) as e:
        read_liberty(LIB_PATH)
    assert str(e.value) == (f"{LIB_PATH}: cell DFF_X1 has no setup_rising rise_constraint or fall_constraint table on "
                            f"D; psum times the register's setup from the file's NLDM tables")


def test_split_arcs_three_state_cells_and_unused_pins_still_read(tmp_path):
    """What a real library holds must not trip the checks above: a combinational_rise and a
    combinational_fall group of one arc are one arc with both edges' tables (they were not read: 0 ns);
    a three-state buffer and a pad (a function of an inout pin) are skipped as ABC skips them; a pin
    the function does not read needs no arc."""
    text = LIB.read_text()
    nand = text[text.index("  cell (NAND2_T)"):text.index("  cell (NOR2_T)")]
    split = nand.replace("""        timing_sense : negative_unate;
        cell_rise (delay_2x2) { values ("0.012, 0.036", "0.024, 0.048"); }
        cell_fall (delay_2x2) { values ("0.014, 0.038", "0.026, 0.050"); }
        rise_transition (delay_2x2) { values ("0.012, 0.060", "0.036, 0.084"); }
        fall_transition (delay_2x2) { values ("0.014, 0.062", "0.038, 0.086"); }""", """        timing_sense : negative_unate;
        timing_type : combinational_rise;
        cell_rise (delay_2x2) { values ("0.012, 0.036", "0.024, 0.048"); }
        rise_transition (delay_2x2) { values ("0.012, 0.060", "0.036, 0.084"); }
      }
      timing () {
        related_pin : "A1";
        timing_sense : negative_unate;
        timing_type : combinational_fall;
        cell_fall (delay_2x2) { values ("0.014, 0.038", "0.026, 0.050"); }
        fall_transition (delay_2x2) { values ("0.014, 0.062", "0.038, 0.086"); }""")
    assert split != nand
    tbuf = ("  cell (TBUF_T) {\n    area : 1.0;\n    pin (A) { direction : input; capacitance : 1.0; }\n"
            "    pin (EN) { direction : input; capacitance : 1.0; }\n"
            '    pin (Z) { direction : output; function : "A"; three_state : "!EN"; }\n  }\n')
    unused = ("  cell (INVX_T) {\n    area : 0.5;\n    pin (A) { direction : input; capacitance : 1.0; }\n"
              "    pin (NC) { direction : input; capacitance : 1.0; }\n"
              '    pin (ZN) { direction : output; function : "!A";\n      timing () { related_pin : "A"; '
              'cell_rise (delay_2x2) { values ("0.010, 0.030", "0.020, 0.040"); } } }\n  }\n')
    pad = ("  cell (PAD_T) {\n    area : 9.0;\n    pin (PAD) { direction : inout; capacitance : 3.0; }\n"
           '    pin (Y) { direction : output; function : "PAD"; }\n  }\n')
    path = tmp_path / "real.lib"
    path.write_text(text.replace(nand, split + tbuf + unused + pad))
    lib = read_liberty(path)
    assert "TBUF_T" not in lib.cells and "PAD_T" not in lib.cells and "INVX_T" in lib.cells
    whole, parts = read_liberty(LIB).cells["NAND2_T"].arcs[("ZN", "A1")], lib.cells["NAND2_T"].arcs[("ZN", "A1")]
    for edge in ("rise", "fall"):
        assert parts.delay(edge, 0.05, 3.0) == pytest.approx(whole.delay(edge, 0.05, 3.0))


def test_dont_use_cells_are_not_the_librarys(tmp_path):
    """Yosys never maps to a dont_use cell: its only flip-flop dont_use failed in Yosys after the
    synthesis; a dont_use cell without timing needs none."""
    text = LIB.read_text()
    path = tmp_path / "dont_use.lib"
    path.write_text(text.replace("  cell (DFF_T) {\n", "  cell (DFF_T) {\n    dont_use : true;\n"))
    with pytest.raises(PsumError, match="no plain rising-edge D flip-flop"):
        read_liberty(path)
    nor = text[text.index("  cell (NOR2_T)"):text.index("  cell (DFF_T)")]
    untimed = re.sub(r"      timing \(\) \{.*?\n      \}\n", "", nor, flags=re.S)
    path.write_text(text.replace(nor, untimed.replace("  cell (NOR2_T) {\n", "  cell (NOR2_T) {\n    dont_use : true;\n")))
    assert "NOR2_T" not in read_liberty(path).cells


def test_one_pin_group_for_several_pins(tmp_path):
    """pin (A1, A2) { ... } declares both pins (Liberty), but psum read A1 only and Yosys failed on
    the file after the generic synthesis ("outputs missing"): refused when read."""
    text = LIB.read_text()
    two = ("    pin (A1) { direction : input; capacitance : 1.5; }\n"
           "    pin (A2) { direction : input; capacitance : 1.5; }\n")
    assert two in text
    path = tmp_path / "grouped.lib"
    path.write_text(text.replace(two, "    pin (A1, A2) { direction : input; capacitance : 1.5; }\n"))
    with pytest.raises(PsumError) as e:
        read_liberty(path)
    assert str(e.value) == (f"{path}: cell NAND2_T: pin (A1, A2) declares 2 pins in one group, which the synthesis "
                            f"(Yosys, ABC) does not read; write one pin group per pin")


def test_an_empty_name_is_not_the_working_folder():
    with pytest.raises(ValueError, match=r"^liberty file name is empty$"):  # was "liberty file . is a folder"
        read_liberty("")


def test_the_files_own_units_and_scalar_tables_still_read(tmp_path):
    """What held up: 1ps time units and pF loads scale the tables; scalar tables are single figures."""
    text = LIB.read_text()
    ps = tmp_path / "ps.lib"
    ps.write_text(text.replace('time_unit : "1ns"', 'time_unit : "1ps"'))
    nand, nand_ps = read_liberty(LIB).cells["NAND2_T"], read_liberty(ps).cells["NAND2_T"]
    assert nand_ps.arcs[("ZN", "A1")].delay("rise", 1e-5, 1.0)[0] == pytest.approx(0.012e-3)
    assert nand.arcs[("ZN", "A1")].delay("rise", 0.01, 1.0)[0] == pytest.approx(0.012)
    scalar = tmp_path / "scalar.lib"
    scalar.write_text(re.sub(r'\(delay_2x2\) \{ values \("([0-9.]+), [^)]*\); \}', r'(scalar) { values ("\1"); }', text))
    arc = read_liberty(scalar).cells["NAND2_T"].arcs[("ZN", "A1")]
    assert arc.delay("rise", 0.5, 50.0)[0] == pytest.approx(0.012)


@pytest.mark.slow
def test_a_cached_result_names_the_file_given_now(tmp_path, capsys):
    """The cache key is the file's content; a cached result used to print the path of the run that
    filled the cache ("area units of tests/data/tiny_nldm.lib" for --liberty copy.lib)."""
    from psum.flows.synth import synthesize, synthesize_many

    first = synthesize("a=int4,b=int4,acc=int12", liberty=LIB, cache_dir=tmp_path, n_outputs=2)
    copy = tmp_path / "copy.lib"
    copy.write_text(LIB.read_text())
    again = synthesize("a=int4,b=int4,acc=int12", liberty=copy, cache_dir=tmp_path, n_outputs=2)
    assert again.cached and first.power["liberty"] == str(LIB) and again.power["liberty"] == str(copy)
    assert again.ge == first.ge and again.delay_ns == first.delay_ns  # the figures are the file's, the same
    many, = synthesize_many(["a=int4,b=int4,acc=int12"], liberty=copy, cache_dir=tmp_path, n_outputs=2)
    assert many.cached and many.power["liberty"] == str(copy)
    assert main(["synth", "a=int4,b=int4,acc=int12", "--liberty", str(copy), "--cache-dir", str(tmp_path),
                 "--outputs", "2"]) == 0
    assert f"area units of {copy};" in capsys.readouterr().out


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
    assert r.power["unpowered_cells"] == [] and "internal_power" not in out


@pytest.mark.slow
def test_cells_without_internal_power_are_named(tmp_path, capsys):
    """internal_power tables are optional in Liberty: a cell without them costs only 0.5 C V^2 per
    toggle, and the result says which mapped cells those were instead of a quietly low energy."""
    from psum.flows.synth import synthesize

    text = LIB.read_text()
    bare = re.sub(r"(cell \((?:NAND2_T|INV_T)\).*?)(\n  cell \()",
                  lambda m: re.sub(r"\n\s*internal_power \(\) \{.*?\n      \}", "", m.group(1), flags=re.S) + m.group(2),
                  text, flags=re.S)
    assert bare.count("internal_power") < text.count("internal_power")
    path = tmp_path / "bare.lib"
    path.write_text(bare)
    r = synthesize("a=int4,b=int4,acc=int12", liberty=path, cache_dir=tmp_path, n_outputs=4)
    full = synthesize("a=int4,b=int4,acc=int12", liberty=LIB, cache_dir=tmp_path, n_outputs=4)
    assert r.power["unpowered_cells"] == sorted({"NAND2_T", "INV_T"} & set(r.cells))
    assert r.power["unpowered_cells"] and r.energy_per_mac_fj < full.energy_per_mac_fj
    assert main(["synth", "a=int4,b=int4,acc=int12", "--liberty", str(path), "--cache-dir", str(tmp_path),
                 "--outputs", "4"]) == 0
    assert f"no internal_power tables in {path})" in capsys.readouterr().out


def test_when_states_time_by_the_worst_and_power_by_the_mean(tmp_path):
    """Timing and internal_power groups of one pin per `when` state (as real libraries write XOR,
    MUX and AOI cells): the arc is timed by the worst state's table at every point, its energy is
    the states' mean. Before, the last group won: a later, faster state made the cell faster."""
    from psum.flows.liberty import internal_energy

    text = LIB.read_text()
    timing = """      timing () {
        related_pin : "A1";
        timing_sense : negative_unate;
        cell_rise (delay_2x2) { values ("0.012, 0.036", "0.024, 0.048"); }
        cell_fall (delay_2x2) { values ("0.014, 0.038", "0.026, 0.050"); }
        rise_transition (delay_2x2) { values ("0.012, 0.060", "0.036, 0.084"); }
        fall_transition (delay_2x2) { values ("0.014, 0.062", "0.038, 0.086"); }
      }
"""
    power = """      internal_power () {
        related_pin : "A1";
        rise_power (energy_2x2) { values ("0.40, 0.44", "0.50, 0.54"); }
        fall_power (energy_2x2) { values ("0.20, 0.22", "0.24, 0.26"); }
      }
"""
    assert timing in text and power in text
    # the other state: slower at some points of each table, faster at others
    timing_b = (timing.replace('"0.012, 0.036", "0.024, 0.048"', '"0.020, 0.030", "0.010, 0.060"')
                .replace('"0.014, 0.062", "0.038, 0.086"', '"0.030, 0.050", "0.020, 0.090"'))
    power_b = power.replace('"0.40, 0.44", "0.50, 0.54"', '"0.60, 0.40", "0.30, 0.70"')

    def lib_of(name, t, p):
        path = tmp_path / f"{name}.lib"
        path.write_text(text.replace(timing, t).replace(power, p))
        return read_liberty(path).cells["NAND2_T"]

    when = lambda g, cond: g.replace('related_pin : "A1";', f'related_pin : "A1";\n        when : "{cond}";')  # noqa: E731
    a, b = lib_of("a", timing, power), lib_of("b", timing_b, power_b)
    both = lib_of("both", when(timing, "A2") + when(timing_b, "!A2"), when(power, "A2") + when(power_b, "!A2"))
    for slew in (0.005, 0.01, 0.05, 0.2):
        for load in (0.5, 2.0, 6.0):
            for edge in ("rise", "fall"):
                da, db, dboth = (c.arcs[("ZN", "A1")].delay(edge, slew, load) for c in (a, b, both))
                assert dboth == pytest.approx(tuple(max(x, y) for x, y in zip(da, db)))
            slews = {"A1": (slew, slew), "A2": (slew, slew)}
            assert internal_energy(both, slews, load) == pytest.approx(
                (internal_energy(a, slews, load) + internal_energy(b, slews, load)) / 2)
    assert a.arcs[("ZN", "A1")].delay("rise", 0.01, 6.0) != b.arcs[("ZN", "A1")].delay("rise", 0.01, 6.0)
