"""The report's shared pieces: one checked simulation keyed by the RTL's digest
(psum.reports.checked, real Icarus) and the report's cell library (psum.reports.library)."""

import json
from pathlib import Path

import pytest

from psum.errors import PsumError
from psum.flows.synth import rtl_digest
from psum.reports.checked import SIM_KEY, checked_sim, sim_results
from psum.reports.library import library_info, library_sentence, report_library

TINY = Path(__file__).parent / "data" / "tiny_nldm.lib"  # five cells, hand-checked in tests/test_liberty.py

SPEC = "a=int4,b=int4,acc=int8,round=rne,overflow=wrap"


def _row(**fields):
    row = dict(spec=SPEC, impl="pipeline=0", cycles=40, seed=0, layer="random", checked=40, mismatches=0,
               first_mismatch=None)
    row.update(fields)
    return row


def test_sim_rows_are_keyed_by_the_verilog_digest():
    assert SIM_KEY == ("spec", "impl", "cycles", "seed", "layer", "rtl")


def test_a_stored_verdict_of_the_same_rtl_is_reused(tmp_path):
    """A row with this RTL's digest is the verdict: here a stored mismatch, which must raise
    without simulating (nothing is appended)."""
    digest = rtl_digest(SPEC)
    (tmp_path / "sim.jsonl").write_text(json.dumps(_row(rtl=digest, mismatches=3, first_mismatch=dict(cycle=17)))
                                        + "\n")
    with pytest.raises(PsumError) as e:
        checked_sim(sim_results(tmp_path), SPEC, cycles=40)
    assert str(e.value) == (f"RTL of {SPEC} differs from the golden model at cycle 17; run psum sim '{SPEC}' "
                            "for details")
    assert len((tmp_path / "sim.jsonl").read_text().splitlines()) == 1


def test_old_rows_and_rows_of_other_rtl_are_simulated_again(tmp_path):
    """Rows written before the digest (no ``rtl``) or for other Verilog claim a mismatch; the
    unit is simulated again in Icarus (it matches), the new row holds the digest and is reused."""
    (tmp_path / "sim.jsonl").write_text(
        json.dumps(_row(mismatches=1, first_mismatch=dict(cycle=3))) + "\n"
        + json.dumps(_row(rtl="0" * 16, mismatches=1, first_mismatch=dict(cycle=3))) + "\n")
    row = checked_sim(sim_results(tmp_path), SPEC, cycles=40)
    assert row["mismatches"] == 0 and row["checked"] > 0 and row["rtl"] == rtl_digest(SPEC)
    lines = (tmp_path / "sim.jsonl").read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[-1])["rtl"] == rtl_digest(SPEC)
    assert checked_sim(sim_results(tmp_path), SPEC, cycles=40) == row  # reused: no fourth line
    assert len((tmp_path / "sim.jsonl").read_text().splitlines()) == 3


# -- the report's library ------------------------------------------------------------------------
def test_report_library_reads_and_describes_a_liberty_file():
    lib = report_library(str(TINY))
    info = library_info(lib)
    assert info["kind"] == "liberty" and info["name"] == "tiny_nldm" and info["file"] == "tiny_nldm.lib"
    assert info["digest"] == lib.digest and len(info["digest"]) == 16 and info["ge_area"] == 0.8
    assert report_library(None) is None and library_info(None)["kind"] == "psum45"
    assert library_sentence(info).startswith("synthesised with Yosys+ABC onto the Liberty library tiny_nldm "
                                             f"(`tiny_nldm.lib`, sha256 {lib.digest})")
    assert "psum45" in library_sentence(None)


def test_a_library_without_nand2_says_what_its_ge_are(tmp_path):
    """GE are the file's NAND2 area; without one, read_liberty divides by psum45's (0.798 um2) and
    the report says so."""
    info = library_info(report_library(str(_without("NAND2_T", tmp_path))))
    assert info["nand2"] is False and info["ge_area"] == 0.798
    assert "in GE of psum45's NAND2 area (0.798; the file has no two-input NAND" in library_sentence(info)
    assert library_info(report_library(str(TINY)))["nand2"] is True


def _without(cell: str, tmp_path):
    text = TINY.read_text()
    a = text.index(f"  cell ({cell})")
    b = text.index("  cell (", a + 5)
    path = tmp_path / f"no_{cell}.lib"
    path.write_text(text[:a] + text[b:])
    return path


@pytest.mark.parametrize("what, message", [
    ("missing", "liberty file {path} does not exist"),
    ("not liberty", "{path}: not a Liberty file (Error on line 1, position 0: UnexpectedToken(\"'(' | ':'\", 'world'))"),
    ("no buffer", "{path}: no usable logic cells for synthesis (missing a buffer; usable logic cells: INV_T, "
                  "NAND2_T, NOR2_T)"),
])
def test_report_library_refuses_bad_files_in_one_line(what, message, tmp_path):
    if what == "missing":
        path = tmp_path / "nope.lib"
    elif what == "not liberty":
        path = tmp_path / "x.lib"
        path.write_text("hello world\n")
    else:
        path = _without("BUF_T", tmp_path)
    with pytest.raises((FileNotFoundError, PsumError)) as e:
        report_library(str(path))
    assert str(e.value) == message.format(path=path)


def test_report_library_refuses_a_library_of_positive_cells_only(tmp_path):
    path = _without("INV_T", tmp_path)
    text = path.read_text()
    for cell in ("NAND2_T", "NOR2_T"):
        a = text.index(f"  cell ({cell})")
        b = text.index("  cell (", a + 5)
        text = text[:a] + text[b:]
    path.write_text(text)
    with pytest.raises(PsumError, match=r"missing an inverter and a cell of two or more inputs; usable "
                                        r"logic cells: BUF_T\)$"):
        report_library(str(path))
