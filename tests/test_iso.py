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
    assert got["fixed point"]["spec"].startswith("a=fp8_e4m3,b=fp8_e4m3,acc=q8.8")  # the fixed search's start
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


def test_the_iso_clock_follows_clock_ns_in_the_api_as_on_the_command_line():
    """docs/silicon.md: the comparison runs at iso_clock_ns, else at clock_ns, else at 5 ns. Only
    psum report did so; ReportConfig(clock_ns=2) compared the designs at 5 ns."""
    assert ReportConfig().iso_clock_ns == 5.0
    assert ReportConfig(clock_ns=2).iso_clock_ns == 2.0
    assert ReportConfig(clock_ns=2, iso_clock_ns=4).iso_clock_ns == 4.0
    assert ReportConfig.quick(clock_ns=3).iso_clock_ns == 3.0


# -- each family's own accumulator, and the dot products' load and flush cycles ------------------
def test_order_designs_search_their_own_minimum_around_the_sequential_one():
    from psum.reports.iso import ISO_NARROWER, ISO_WIDER, iso_search

    assert (ISO_NARROWER, ISO_WIDER) == (3, 1)
    tree = IsoDesign("float tree8", "float", "order=tree8")
    assert iso_search(tree, "e4m5") == dict(kind="man", exp_bits=4, overflow=None, lo=2, hi=6)
    assert iso_search(tree, "e4m2")["lo"] == 1  # at least one mantissa bit
    assert iso_search(IsoDesign("int ilv4", "int-sat", "order=ilv4"), "int18") == dict(
        kind="int", exp_bits=None, overflow="sat", lo=15, hi=19)
    assert iso_search(IsoDesign("float seq", "float"), "e4m5") is None      # sequential: the family minimum
    # fixed point: the given format starts its own search; search=False, or a float format: as given
    assert iso_search(IsoDesign("q", "q8.8"), "q8.8") == dict(kind="fixed", int_bits=8, frac_bits=8, overflow=None)
    assert iso_search(IsoDesign("q", "q6.10:sat"), "q6.10:sat")["overflow"] == "sat"
    assert iso_search(IsoDesign("q", "q8.8", "", False), "q8.8") is None
    assert iso_search(IsoDesign("e", "e5m3"), "e5m3") is None
    minima = [dict(family="float", acc="e4m5", acc_bits=10)]
    got = {d["family"]: d for d in iso_specs(ISO_DESIGNS, minima, "fp8_e4m3", "int8")}
    assert "search" not in got["float seq"]
    assert got["float chunk16"]["search"] == dict(kind="man", exp_bits=4, overflow=None, lo=2, hi=6,
                                                  extra="order=chunk16,acc2=fp16", operand="fp8_e4m3")


def test_utilisation_charges_load_and_flush_cycles_by_hand():
    from psum.reports.iso import utilisation

    dots = [dict(layer="c1", k=25, n=100), dict(layer="fc", k=400, n=10)]
    macs = 25 * 100 + 400 * 10
    # sequential: 1 load + K products per dot product
    assert utilisation(1, 0, dots) == pytest.approx(macs / (100 * 26 + 10 * 401))
    # tree8: ceil(25/8) = 4, 400/8 = 50 product cycles
    assert utilisation(8, 0, dots) == pytest.approx(macs / (100 * (1 + 4) + 10 * (1 + 50)))
    # ilv4: 3 flush cycles; chunk16: 1
    assert utilisation(1, 3, dots) == pytest.approx(macs / (100 * 29 + 10 * 404))
    assert utilisation(1, 1, dots) == pytest.approx(macs / (100 * 27 + 10 * 402))
    assert utilisation(8, 0, []) == 8.0  # no network: the peak rate


def test_row_replicates_to_the_sustained_rate():
    from psum.reports.iso import utilisation

    dots = [dict(layer="c", k=7, n=4)]  # 1 + 7 + 3 = 11 cycles of ilv4 for 7 MACs
    ilv = "a=fp8_e4m3,b=fp8_e4m3,acc=e5m4,round=rne,overflow=ieee,order=ilv4"
    r = iso_row("float ilv4", ilv, 99.0, [_result(1.0, ge=1200)], 8, 2.0, True, dots)
    assert (r["lanes"], r["flush"]) == (1, 3) and r["unit_macs"] == pytest.approx(7 / 11, abs=1e-4)
    assert r["copies"] == math.ceil(8 / utilisation(1, 3, dots)) == 13 and r["ge"] == 13 * 1200
    assert r["gmacs"] == pytest.approx(13 * 7 / 11 / 2.0, abs=1e-3)
    # peak rate without dot products (the old figure): 8 copies
    assert iso_row("float ilv4", ilv, 99.0, [_result(1.0, ge=1200)], 8, 2.0, True)["copies"] == 8


def test_dot_products_of_a_small_network():
    import torch

    from psum.reports.iso import dot_products

    net = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5))
    got = dot_products(net, torch.zeros(2, 2, 4, 4))
    assert got == [dict(layer="0", k=2 * 3 * 3, n=3 * 4 * 4), dict(layer="2", k=48, n=5)]


def test_method_text_states_the_rule_the_rates_and_the_stimulus():
    from psum.reports.iso import iso_method

    stage = dict(dots=[dict(layer="c", k=25, n=1), dict(layer="f", k=400, n=1)],
                 rows=[dict(stimulus="digits conv3x3, 64 outputs, seed 0")])
    text = iso_method(stage)
    assert "from 3 below to 1 above" in text and "K = 25, 400 products" in text
    assert "digits conv3x3, 64 outputs, seed 0, load and flush cycles included" in text
    assert "Energies: the synthesis flow's stimulus" in iso_method(dict(rows=[]))  # older data


# -- the fixed-point family's own accumulator (psum.reports.iso.search_fixed) ---------------------
def _fixed_network(min_int, min_frac, log):
    """A stand-in for the network's top-1 (the search arithmetic alone; the report evaluates the
    real network): 99 % when the register has at least ``min_int`` integer and ``min_frac``
    fraction bits, else 50 %."""
    def accuracy_of(fmt):
        log.append(str(fmt))
        return 99.0 if fmt.int_bits >= min_int and fmt.frac_bits >= min_frac else 50.0
    return accuracy_of


def test_fixed_search_narrows_fraction_then_integer_bits():
    from psum.golden import FixedFormat
    from psum.reports.iso import search_fixed

    log = []
    res = search_fixed(_fixed_network(7, 6, log), FixedFormat(8, 8), 98.0)
    assert res["fmt"] == FixedFormat(7, 6) and res["passed"] and res["accuracy"] == 99.0
    # F in 5..9 at I=8: bisection 9, 7, 6, 5 (fails) -> 6, its +1 (7) already passed;
    # I in 5..9 at F=6: 9, 7, 6 (fails) -> 7, its +1 (q8.6) already evaluated in the first pass
    assert log == ["q8.9", "q8.7", "q8.6", "q8.5", "q9.6", "q7.6", "q6.6"]
    assert list(res["candidates"]) == log and res["candidates"]["q8.5"] == 50.0
    assert res["rule"].startswith("fraction bits 5..9 at I=8 (F=6), then integer bits 5..9 at F=6 (I=7)")
    assert "bottom" not in res["rule"]
    # every candidate passes: both widths end at the bottom of their ranges, and the rule says so
    res = search_fixed(_fixed_network(1, 0, []), FixedFormat(8, 8), 98.0)
    assert res["fmt"] == FixedFormat(5, 5)
    assert res["rule"].endswith("; F and I at the bottom of the searched range (narrower not tried)")


def test_fixed_search_reports_a_start_below_tolerance_with_its_widest_candidate():
    from psum.golden import FixedFormat
    from psum.reports.iso import search_fixed

    log = []
    res = search_fixed(_fixed_network(8, 12, log), FixedFormat(8, 8), 98.0)
    assert not res["passed"] and res["fmt"] == FixedFormat(8, 9) and log == ["q8.9"]
    assert res["rule"] == "fraction bits 5..9 at I=8: none within tolerance"


def test_fixed_search_stays_within_the_format_widths():
    from psum.golden import FixedFormat
    from psum.reports.iso import search_fixed

    log = []
    # q1.2: F from max(0, 2 - 1) = 1; I never below 1; every candidate passes
    res = search_fixed(_fixed_network(1, 0, log), FixedFormat(1, 2), 98.0)
    assert res["fmt"] == FixedFormat(1, 1) and all(FixedFormat.parse(t).width >= 2 for t in log)
    log.clear()
    res = search_fixed(_fixed_network(1, 0, log), FixedFormat(8, 56), 98.0)  # 64 bits: F never above 56
    assert max(FixedFormat.parse(t).width for t in log) == 64
