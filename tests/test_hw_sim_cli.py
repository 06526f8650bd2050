"""``psum verilog`` and ``psum sim`` from the command line (real Amaranth, Yosys, cocotb, Icarus)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from psum.cli.main import main

needs_iverilog = pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs Icarus Verilog")


def _psum(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "psum", *args], capture_output=True, text=True, cwd=cwd)


def test_verilog_to_file(tmp_path, capsys):
    out = tmp_path / "mac.v"
    assert main(["verilog", "a=int8,b=int8,acc=int32", "-o", str(out)]) == 0
    text = out.read_text()
    assert "module mac_int8_int8_acc_int32_wrap(" in text
    assert "wrote" in capsys.readouterr().err


def test_verilog_to_stdout_matches_file(tmp_path, capsys):
    assert main(["verilog", "a=int4,b=int4,acc=int12"]) == 0
    printed = capsys.readouterr().out
    out = tmp_path / "x.v"
    main(["verilog", "a=int4,b=int4,acc=int12", "-o", str(out)])
    assert printed == out.read_text()


def test_verilog_help_shows_spec_grammar():
    r = _psum("verilog", "--help")
    assert r.returncode == 0
    assert "SPEC grammar:" in r.stdout and "a=bf16,b=bf16,acc=e6m9,prod=bf16,fused=no" in r.stdout


def test_bad_spec_is_one_line_exit_2():
    r = _psum("verilog", "a=int8,b=int8")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("psum verilog: error: MAC spec needs acc=FMT; ")


def test_unknown_format_is_one_line_exit_2():
    r = _psum("sim", "a=int8,b=int8,acc=int99")
    assert r.returncode == 2 and r.stderr.count("\n") == 1


def test_exhaustive_needs_narrow_operands(capsys):
    assert main(["sim", "a=int16,b=int8,acc=int32", "--exhaustive"]) == 2
    err = capsys.readouterr().err
    assert err == "psum sim: error: exhaustive mode needs operands of at most 8 bits, not a=int16\n"


def test_missing_iverilog_is_one_line(monkeypatch, capsys):
    import psum._util

    monkeypatch.setattr(psum._util.shutil, "which", lambda name: None)
    assert main(["sim", "a=int8,b=int8,acc=int32", "--cycles", "10"]) == 2
    assert capsys.readouterr().err == \
        "psum sim: error: iverilog not found: run ./setup.sh or apt-get install iverilog\n"


@needs_iverilog
def test_sim_small_int_spec(tmp_path):
    r = _psum("sim", "a=int8,b=int8,acc=int16,overflow=sat", "--cycles", "1500", "--seed", "3",
              "--build-dir", str(tmp_path / "b"))
    assert r.returncode == 0, r.stderr
    line = r.stdout.strip()
    assert line.startswith("mac_int8_int8_acc_int16_sat: ") and " 0 mismatches, " in line
    assert "cycles checked" in line and "cycles/s" in line


@needs_iverilog
def test_sim_json(tmp_path):
    r = _psum("sim", "a=int4,b=int4,acc=int12", "--cycles", "1000", "--json",
              "--build-dir", str(tmp_path / "b"))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["module"] == "mac_int4_int4_acc_int12_wrap"
    assert out["mismatches"] == 0 and out["cycles_checked"] >= 1000 and out["first_mismatch"] is None


@needs_iverilog
def test_sim_mismatch_prints_first_failing_cycle_exit_1(tmp_path, monkeypatch, capsys):
    import psum.hw.verify.runner as runner
    from psum.golden import MacSpec
    from psum.hw import verilog

    wrap, sat = MacSpec.parse("a=int8,b=int8,acc=int16"), MacSpec.parse("a=int8,b=int8,acc=int16,overflow=sat")
    monkeypatch.setattr(runner, "verilog", lambda spec, *a, **kw: verilog(wrap).replace(wrap.name, sat.name))
    rc = main(["sim", str(sat), "--cycles", "2000", "--build-dir", str(tmp_path / "b")])
    out = capsys.readouterr().out
    assert rc == 1
    assert "first mismatch at cycle " in out and " expected=0x" in out and " got=0x" in out
