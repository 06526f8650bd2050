"""The iso-throughput arithmetic (psum.reports.iso) on hand-made synthesis figures; the stage end to
end (real emulation, Icarus, Yosys) runs in tests/test_report.py's small report."""

import math

import pytest

from psum.flows.synth import SynthResult
from psum.reports.iso import ISO_DESIGNS, IsoDesign, iso_row, iso_sentence, iso_specs, iso_verdict
from psum.reports.report import ReportConfig


def _result(delay_ns, ge=1000.0, macs=1.0, energy=500.0, active=600.0, pipeline=0):
    return SynthResult(spec="x", module="m", ge=ge, area_um2=ge * 0.798, cells={}, n_cells=1, ffs=1, transistors=1,
                       depth=1, max_depth=1, delay_ns=delay_ns, energy_per_mac_fj=energy, active_fj_per_cycle=active,
                       idle_fj_per_cycle=10.0, idle_fraction=0.1, power={}, flow_version="3", library="psum45",
                       seconds=0.0, impl=f"pipeline={pipeline},lanes={int(macs)}", macs_per_cycle=macs)


INT = "a=int8,b=int8,acc=int18,round=rne,overflow=sat"
FLT = "a=fp8_e4m3,b=fp8_e4m3,acc=e5m4,round=rne,overflow=ieee,order=tree8"


def test_row_takes_the_first_pipeline_depth_that_meets_the_clock_and_replicates():
    # tree8: 8 MACs per cycle -> 32 / 8 = 4 copies; p0 misses 2 ns, p1 meets it
    res = [_result(2.5, ge=3000, macs=8), _result(1.9, ge=3400, macs=8, pipeline=1)]
    r = iso_row("float tree8", FLT, 99.0, res, 32, 2.0, True)
    assert (r["impl"], r["copies"], r["ge"], r["side"]) == ("pipeline=1,lanes=8", 4, 4 * 3400, "float")
    assert r["met_clock"] and r["slack_ns"] == pytest.approx(0.1) and r["reason"] == ""
    # power of the design = copies x active energy per cycle / clock (fJ / ns = uW)
    assert r["power_uw"] == pytest.approx(4 * 600.0 / 2.0)
    # 30 MACs per cycle from 8-lane units: ceil(30 / 8) = 4
    assert iso_row("t", FLT, 99.0, res, 30, 2.0, True)["copies"] == math.ceil(30 / 8)


def test_row_that_misses_the_clock_or_the_accuracy_says_why():
    r = iso_row("int sat", INT, 50.0, [_result(3.0), _result(2.8, pipeline=2)], 4, 2.0, False)
    assert not r["met_clock"] and r["side"] == "int"
    assert r["reason"] == "below tolerance; misses 2 ns even at pipeline=2 (2.80 ns)"


def test_verdict_picks_the_cheapest_eligible_design_of_each_side():
    rows = [iso_row("int sat", INT, 99.0, [_result(1.0, ge=1000, energy=400)], 32, 2.0, True),
            iso_row("int wrap", INT.replace("sat", "wrap"), 99.0, [_result(1.0, ge=900, energy=300)], 32, 2.0, False),
            iso_row("float tree8", FLT, 99.0, [_result(1.5, ge=6000, macs=8, energy=800)], 32, 2.0, True),
            iso_row("float seq", FLT.replace(",order=tree8", ""), 99.0, [_result(4.0, ge=1100)], 32, 2.0, True)]
    v = iso_verdict(rows)
    # int wrap is smaller but below tolerance; float seq misses the clock
    assert v["int"]["family"] == "int sat" and v["float"]["family"] == "float tree8"
    assert v["ratios"]["ge"] == pytest.approx(4 * 6000 / (32 * 1000))
    assert v["ratios"]["energy_per_mac_fj"] == pytest.approx(2.0)
    text = iso_sentence(dict(verdict=v, macs_per_cycle=32, clock_ns=2.0))
    assert text == ("At 32 MACs per cycle and a 2 ns clock (500 MHz), the cheapest float-product design within "
                    "tolerance, float tree8 (acc=e5m4, order=tree8, 4 x 6,000 GE = 24,000 GE, 800.0 fJ/MAC), needs "
                    "0.75x the area and 2.00x the energy per MAC of the cheapest integer design, int sat (acc=int18, "
                    "32,000 GE, 400.0 fJ/MAC).")
    assert iso_sentence(dict(verdict=iso_verdict([]), macs_per_cycle=32, clock_ns=2.0)).endswith(
        "no design both meets the clock and stays within tolerance.")


def test_specs_come_from_the_family_minima():
    minima = [dict(family="float", acc="e4m5", acc_bits=10), dict(family="float", acc="e5m4", acc_bits=10),
              dict(family="int-wrap", acc="int18", acc_bits=18), dict(family="int-sat", acc=None, acc_bits=None)]
    got = {d["family"]: d for d in iso_specs(ISO_DESIGNS, minima, "fp8_e4m3", "int8")}
    assert got["float tree8"]["spec"] == "a=fp8_e4m3,b=fp8_e4m3,acc=e4m5,round=rne,overflow=ieee,order=tree8"
    assert got["int wrap"]["spec"] == "a=int8,b=int8,acc=int18,round=rne,overflow=wrap"
    assert got["int sat"] == dict(family="int sat", spec=None, reason="no int-sat accumulator within tolerance")
    assert got["fixed q8.8"]["spec"].startswith("a=fp8_e4m3,b=fp8_e4m3,acc=q8.8")
    assert iso_specs([("mine", "q4.4", "")], minima, "fp8_e4m3", "int8")[0]["family"] == "mine"
    assert IsoDesign("x", "float").extra == ""


@pytest.mark.parametrize("field, value, message", [
    ("iso_macs", 0, "iso_macs must be an integer >= 1, not 0"),
    ("iso_clock_ns", -1.0, "clock period must be a positive number of ns, not -1.0"),
])
def test_config_refuses_bad_iso_options(field, value, message):
    with pytest.raises(ValueError) as e:
        ReportConfig(**{field: value})
    if message:
        assert str(e.value) == message
