"""What a newcomer hit on first use, each fixed: one line on stderr and exit 2 (never a traceback,
never a silent or wrong success) for their own model file, checkpoint and data function, and for
options that were silently ignored.

Every case runs ``psum.cli.main.main`` in-process on small user files written into a scratch
folder (fast: torch and the commands are imported once); the messages are exact.
"""

from __future__ import annotations

import textwrap

import pytest

from psum.cli.main import main

MODEL = """
import sys
import torch
from torch import nn


def build():                      # digits: 1 x 32 x 32 images, 10 classes
    return nn.Sequential(nn.Flatten(), nn.Linear(1024, 10))


def build64():                    # the 8 x 8 images of data.py
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))


def build_exit():
    sys.exit(0)


class NaNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(1024, 10)

    def forward(self, x):
        return self.fc(x.flatten(1)) * float("nan")


def build_nan():
    return NaNNet()
"""

DATA = """
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

g = torch.Generator().manual_seed(0)


def images(n):
    return torch.rand(n, 1, 8, 8, generator=g)


def good(split):
    return TensorDataset(images(8), torch.arange(8) % 10)


def empty(split):
    return TensorDataset(images(0), torch.zeros(0, dtype=torch.long))


def inputs_only(split):
    return TensorDataset(images(4))


def float_labels(split):
    return TensorDataset(images(4), torch.full((4,), 0.5))


def loader_inputs_only(split):
    return DataLoader(TensorDataset(images(4)), batch_size=2)


class Pairs(Dataset):
    def __init__(self, label):
        self.label = label

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return torch.zeros(1, 8, 8), self.label


def python_float_labels(split):
    return Pairs(0.5)


def bool_labels(split):
    return Pairs(True)


def nan_images(split):
    return TensorDataset(torch.full((4, 1, 8, 8), float("nan")), torch.zeros(4, dtype=torch.long))
"""


@pytest.fixture()
def user(tmp_path, monkeypatch):
    """A scratch folder (the working directory) holding the newcomer's files."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PSUM_PROGRESS", "0")
    (tmp_path / "net.py").write_text(MODEL)
    (tmp_path / "data.py").write_text(DATA)
    (tmp_path / "exits.py").write_text("import sys\nsys.exit(0)\ndef build():\n    pass\n")
    (tmp_path / "script.py").write_text(textwrap.dedent("""
        import argparse
        parser = argparse.ArgumentParser()
        parser.add_argument("--lr", type=float)
        args = parser.parse_args()    # psum's own command line: unrecognized arguments
        def build():
            pass
        """))
    return tmp_path


def one_line(argv, capsys) -> str:
    """The single stderr line of a refused command (exit 2, no traceback)."""
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, f"exit {rc}:\n{err}"
    return err.strip()


# -- a model file that calls sys.exit (a script with argparse at the top) -------------------------
@pytest.mark.parametrize("argv, message", [
    (["eval", "--model", "net.py:build_exit", "--limit", "8"],
     "psum eval: error: --model net.py:build_exit: the function called sys.exit(0)"),
    (["eval", "--model", "exits.py:build", "--limit", "8"],
     "psum eval: error: --model exits.py:build: importing exits.py called sys.exit(0); psum imports the file, so "
     "keep script code under if __name__ == '__main__':"),
    (["sweep", "--model", "exits.py:build", "--acc", "e5m6", "--limit", "8"],
     "psum sweep: error: --model exits.py:build: importing exits.py called sys.exit(0); psum imports the file, so "
     "keep script code under if __name__ == '__main__':"),
])
def test_user_code_calling_sys_exit_is_refused(user, capsys, argv, message):
    # Before: exit 0 and no output at all (a wrong success).
    assert one_line(argv, capsys) == message


def test_user_script_parsing_argv_at_import_is_one_line(user, capsys, monkeypatch):
    # argparse printed its usage (two lines) and psum exited 2 with the user's message only.
    # The script parses sys.argv: give it the command line `psum eval ...` has (not pytest's own,
    # which differs between a bare `pytest` and `pytest -q ...`).
    import sys

    monkeypatch.setattr(sys, "argv", ["psum", "eval", "--model", "script.py:build", "--limit", "8"])
    err = one_line(["eval", "--model", "script.py:build", "--limit", "8"], capsys)
    assert err.startswith("psum eval: error: --model script.py:build: importing script.py called sys.exit(2) after "
                          "printing '"), err
    assert "error: unrecognized arguments:" in err
    assert err.endswith("; psum imports the file, so keep script code under if __name__ == '__main__':")


# -- checkpoints that are no checkpoints -----------------------------------------------------------
KINDS = ("expected a psum checkpoint, a plain state_dict, a torch.export archive or (with --trust-checkpoint) a "
         "whole saved model")


@pytest.mark.parametrize("content, trust, reason", [
    (bytes(range(256)) * 16, False, "neither a zip archive nor a pickle"),   # random bytes
    (bytes(range(256)) * 16, True, "neither a zip archive nor a pickle"),
    (b"my notes\n", False, "neither a zip archive nor a pickle"),
    (b"", False, "it is empty"),
    (b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01]q\x02", True, "EOFError"),  # a pickle cut short
])
def test_file_that_is_no_checkpoint(user, capsys, content, trust, reason):
    # Before: random bytes were "a whole saved model? pass --trust-checkpoint", and with
    # --trust-checkpoint torch's UnpicklingError escaped as a traceback.
    (user / "weights.pt").write_bytes(content)
    argv = ["eval", "--model", "lenet5", "--checkpoint", "weights.pt", "--limit", "8"] + (
        ["--trust-checkpoint"] if trust else [])
    assert one_line(argv, capsys) == f"psum eval: error: weights.pt is not a checkpoint torch can read ({reason}); {KINDS}"


def test_empty_dict_checkpoint_says_empty(user, capsys):
    import torch

    torch.save({}, user / "empty.pt")
    assert one_line(["eval", "--model", "net.py:build", "--checkpoint", "empty.pt", "--limit", "8"], capsys) == (
        f"psum eval: error: empty.pt holds an empty dict; {KINDS}")


def test_legacy_pickle_checkpoint_still_loads(user, capsys):
    import torch
    from torch import nn

    torch.save(nn.Sequential(nn.Flatten(), nn.Linear(1024, 10)).state_dict(), user / "legacy.pt",
               _use_new_zipfile_serialization=False)  # starts with the pickle PROTO opcode
    assert main(["eval", "--model", "net.py:build", "--checkpoint", "legacy.pt", "--limit", "8"]) == 0
    assert "on 8 test images" in capsys.readouterr().out


# -- a data function that returns the wrong thing -------------------------------------------------
@pytest.mark.parametrize("func, message", [
    # Before: "top-1 0.00 % on 0 test images", exit 0.
    ("empty", "dataset data.py:empty is empty (no test images)"),
    # Before: an IndexError traceback from the batch iterator.
    ("inputs_only", "dataset data.py:inputs_only must give (input, label) pairs; its first item is a tuple of 1"),
    ("loader_inputs_only", "dataset data.py:loader_inputs_only must give (input, label) pairs; its first item is a "
                           "list of 1"),
    # Before: 0.5 compared with class indices, top-1 0 %, exit 0.
    ("float_labels", "dataset data.py:float_labels has labels of type float32; labels must be integer class indices"),
    ("python_float_labels", "dataset data.py:python_float_labels has labels of type float; labels must be integer "
                            "class indices"),
    ("bool_labels", "dataset data.py:bool_labels has labels of type bool; labels must be integer class indices"),
])
def test_dataset_function_returning_unusable_data(user, capsys, func, message):
    for cmd in (["eval"], ["sweep", "--acc", "e5m6"]):
        argv = cmd + ["--model", "net.py:build64", "--dataset", f"data.py:{func}", "--limit", "8"]
        assert one_line(argv, capsys) == f"psum {cmd[0]}: error: {message}"


def test_good_dataset_function_still_runs(user, capsys):
    assert main(["eval", "--model", "net.py:build64", "--dataset", "data.py:good"]) == 0
    assert "on 8 test images" in capsys.readouterr().out


def test_api_refuses_empty_dataset_object():
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset

    from psum.nets.user import resolve

    empty = TensorDataset(torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match=r"^dataset TensorDataset is empty \(no test images\)$"):
        resolve(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), empty)


# -- a float model whose output is NaN -------------------------------------------------------------
NAN = ("the model's float32 output on the data's first input holds NaN; check the model and the data (their "
       "accuracy would be meaningless)")


@pytest.mark.parametrize("argv", [
    ["eval", "--model", "net.py:build_nan", "--limit", "8"],                       # Before: top-1 12.50 %, exit 0
    ["sweep", "--model", "net.py:build_nan", "--acc", "e5m6", "--limit", "8"],
    ["eval", "--model", "net.py:build64", "--dataset", "data.py:nan_images"],      # NaN pixels
])
def test_nan_logits_are_refused(user, capsys, argv):
    assert one_line(argv, capsys) == f"psum {argv[0]}: error: {NAN}"


# -- rounding-mode names in capitals ---------------------------------------------------------------
def test_quantize_round_in_capitals_is_the_mode(capsys):
    # "--round SR" failed with "stochastic rounding needs sr_bits between 1 and 32, not 0"
    # (the seed and bit count were passed only for lower-case "sr"); RTZ printed "rounding RTZ".
    assert main(["quantize", "fp8_e4m3", "1.1", "--round", "SR", "--seed", "4", "--json"]) == 0
    upper = capsys.readouterr().out
    assert main(["quantize", "fp8_e4m3", "1.1", "--round", "sr", "--seed", "4", "--json"]) == 0
    assert capsys.readouterr().out == upper
    assert main(["quantize", "fp8_e4m3", "1.1", "--round", "RTZ"]) == 0
    assert capsys.readouterr().out.startswith("format fp8_e4m3, rounding rtz\n")


def test_step_rand_with_stochastic_rounding_still_runs(capsys):
    assert main(["step", "a=fp16,b=fp16,acc=fp16,round=SR,srbits=4", "0", "1", "1", "--rand", "3"]) == 0
    assert "-> 0x3c00 (1)" in capsys.readouterr().out


# -- --help that promised what the command refuses -------------------------------------------------
def test_top_level_help_names_every_study(capsys):
    from psum.cli.main import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    top = capsys.readouterr().out
    import argparse

    def subcommands(parser):
        return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices

    studies = list(subcommands(subcommands(build_parser())["study"]))
    line = " ".join(top.split("\n    study ", 1)[1].split("\noptions:")[0].split())  # wrapped help text
    assert len(studies) >= 4 and line.endswith(", ".join(studies)), (studies, line)


def test_train_help_offers_only_what_train_takes(capsys, tmp_path, monkeypatch):
    from psum.cli.main import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "FILE.py" not in text and "imagefolder" not in text
    assert "cpu, cuda, cuda:N or auto" in text
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.py").write_text(MODEL)
    assert one_line(["train", "--model", "net.py:build", "--epochs", "1", "--out", "x.pt"], capsys) == (
        "psum train: error: model must be one of lenet5, alexnet, resnet18, resnet18-imagenet, vit, not 'net.py:build'")


# -- layer selections and spec files that silently dropped part of what they said -----------------
LAYERS = "conv1, conv2, fc1, fc2, fc3"


@pytest.mark.parametrize("argv, message", [
    (["eval", "--model", "lenet5", "--spec", "a=int8,b=int8,acc=int16", "--layer", "fc1|fc9", "--limit", "8"],
     f"psum eval: error: layer 'fc9' (in 'fc1|fc9') selects none of the Conv2d/Linear layers: {LAYERS}"),
    (["sweep", "--model", "lenet5", "--acc", "int16", "--layer", "conv2|fc*|cnov1", "--limit", "8"],
     f"psum sweep: error: layer 'cnov1' (in 'conv2|fc*|cnov1') selects none of the Conv2d/Linear layers: {LAYERS}"),
])
def test_a_typo_in_one_alternative_of_a_layer_selection(user, capsys, argv, message):
    # Before: 'fc1|fc9' emulated fc1 alone with exit 0, while 'fc9' alone was refused.
    assert one_line(argv, capsys) == message


@pytest.mark.parametrize("content, message", [
    # Before: json kept the last of the two and ran conv1 with int32.
    ('{"conv1": "a=int8,b=int8,acc=int16", "conv1": "a=int8,b=int8,acc=int32"}',
     "spec file specs.json gives pattern 'conv1' twice"),
    # Before: first match wins, so conv1 ran with e5m6 and the file's conv1 entry was ignored.
    ('{"*": "a=fp8_e4m3,b=fp8_e4m3,acc=e5m6", "conv1": "a=int8,b=int8,acc=int16"}',
     "spec file pattern 'conv1' never applies: every layer it selects (conv1) is taken by an earlier pattern (the "
     "first match wins; put specific patterns first)"),
    ('{"conv*": "a=fp8_e4m3,b=fp8_e4m3,acc=e5m6", "conv2|conv1": "a=int8,b=int8,acc=int16"}',
     "spec file pattern 'conv2|conv1' never applies: every layer it selects (conv1, conv2) is taken by an earlier "
     "pattern (the first match wins; put specific patterns first)"),
])
def test_spec_file_entries_that_would_never_apply(user, capsys, content, message):
    (user / "specs.json").write_text(content)
    assert one_line(["eval", "--model", "lenet5", "--spec-file", "specs.json", "--limit", "8"], capsys) == (
        f"psum eval: error: {message}")


def test_spec_file_specific_patterns_first_still_runs(user, capsys):
    (user / "specs.json").write_text('{"conv1": "a=int8,b=int8,acc=int16", "*": "a=fp8_e4m3,b=fp8_e4m3,acc=e5m6"}')
    assert main(["eval", "--model", "lenet5", "--spec-file", "specs.json", "--limit", "8"]) == 0
    assert "emulated 5 ops, 100.0 % of MACs" in capsys.readouterr().out


@pytest.mark.slow  # redraws the committed LeNet5 report: ~30 s on a loaded 2-core machine
def test_report_rerender_into_out(tmp_path, capsys):
    # --out was ignored by --rerender (the committed report folder would have been rewritten).
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "results" / "lenet5-digits"
    before = (src / "report.md").read_bytes()
    assert main(["report", "--rerender", str(src), "--out", str(tmp_path / "new")]) == 0
    assert (tmp_path / "new" / "index.html").is_file() and (tmp_path / "new" / "report.md").is_file()
    assert (src / "report.md").read_bytes() == before
    assert capsys.readouterr().out.strip().endswith(f"report: {tmp_path / 'new'}/index.html")


# -- an output that is a device or FIFO (-o /dev/null as root replaced the device node) -----------
SPECIAL = "not a regular file (psum writes a new file and renames it over the old one)"


@pytest.mark.parametrize("argv", [
    ["verilog", "a=int8,b=int8,acc=int32", "-o", "{f}"],
    ["train", "--model", "lenet5", "--epochs", "1", "--out", "{f}"],
    ["sweep", "--model", "lenet5", "--acc", "int16", "--limit", "8", "--out", "{f}"],
])
@pytest.mark.parametrize("link", [False, True])
def test_output_that_is_not_a_regular_file(tmp_path, monkeypatch, capsys, argv, link):
    # A FIFO stands for /dev/null and /dev/full (a device node needs root to make): the atomic
    # write renamed a regular file over it, and for /dev/full printed "wrote".
    import os
    import stat

    monkeypatch.chdir(tmp_path)
    os.mkfifo(tmp_path / "fifo")
    name = "fifo"
    if link:
        (tmp_path / "link").symlink_to("fifo")
        name = "link"
    argv = [a.replace("{f}", name) for a in argv]
    assert one_line(argv, capsys) == f"psum {argv[0]}: error: cannot write {name}: {SPECIAL}"
    assert stat.S_ISFIFO(os.stat(tmp_path / "fifo").st_mode)


def test_atomic_write_refuses_a_fifo(tmp_path):
    import os

    from psum._util import atomic_write

    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(OSError, match=r"^\[Errno 22\] not a regular file"):
        atomic_write(tmp_path / "fifo", "x")
    assert not any(p.name.startswith(".fifo.") for p in tmp_path.iterdir())


# -- your own RTL with other ports ------------------------------------------------------------------
def test_own_rtl_without_load_and_init_is_one_line(tmp_path, capsys):
    # Before: cocotb's "RuntimeError: Command failed with return code: 2" as a traceback.
    import shutil

    if shutil.which("iverilog") is None:
        pytest.skip("Icarus Verilog not installed")
    (tmp_path / "my_mac.v").write_text(
        "module my_mac(input clk, input rst, input [7:0] a, input [7:0] b, input en, output reg [15:0] acc);\n"
        "  always @(posedge clk) if (rst) acc <= 0; else if (en) acc <= acc + a * b;\nendmodule\n")
    build = tmp_path / "build"
    err = one_line(["sim", "a=int8,b=int8,acc=int16", "--rtl", str(tmp_path / "my_mac.v"), "--top", "my_mac",
                    "--simulator", "icarus", "--cycles", "100", "--build-dir", str(build)], capsys)
    assert err.startswith("psum sim: error: icarus could not build module my_mac: "), err
    assert "port ``load'' is not a port of dut." in err
    assert err.endswith(f"(log: {build / 'build.log'}); an --rtl unit needs psum's ports (clk, rst, a, b, en, load, "
                        "init, acc; docs/hw.md)")


def test_own_rtl_refuses_a_multiplier_it_does_not_build(tmp_path, capsys):
    """--impl multiplier= chooses psum's generated multiplier; with --rtl and --top the unit is the
    user's, so the option was ignored (the check ran on the user's module as with array)."""
    (tmp_path / "my_mac.v").write_text("module my_mac(); endmodule\n")
    err = one_line(["sim", "a=fp8_e4m3,b=fp8_e4m3,acc=e4m4", "--rtl", str(tmp_path / "my_mac.v"), "--top", "my_mac",
                    "--impl", "multiplier=booth", "--cycles", "100"], capsys)
    assert err == ("psum sim: error: impl multiplier=booth builds psum's own unit; the rtl module my_mac is yours "
                   "(with rtl, impl sets only the latency and lanes the check expects)")


@pytest.mark.parametrize("extra, message", [
    (["--clock-ns", "0.0001"], "clock period must be at least 0.001 ns (1 ps: no logic gate switches faster), not 0.0001"),
    (["--iso-clock-ns", "0.0001"],
     "clock period must be at least 0.001 ns (1 ps: no logic gate switches faster), not 0.0001"),
    (["--no-iso", "--iso-macs", "8"], "--iso-macs sets the iso-throughput comparison, which --no-iso skips"),
    (["--per-layer", "--no-per-layer"], "give --per-layer or --no-per-layer, not both"),
    (["--tol", "150"], "tol must be a number of percentage points in [0, 100), not 150.0"),
    (["--mx", "fp8_e4m3"], "unknown block format 'fp8_e4m3'; use a block format: mxfp8_e4m3, mxfp8_e5m2, mxfp6_e3m2, "
                           "mxfp6_e2m3, mxfp4, mxint8 or nvfp4, with _k<N> for a block size other than 32 (nvfp4: 16)"),
])
def test_report_silicon_options_are_checked_before_a_width_checkpoint_is_trained(extra, message, capsys,
                                                                                 monkeypatch):
    """psum report --width W trains the width-W checkpoint when it is missing (minutes); these
    options were refused only after that (the config is now built, and checked, first)."""
    import psum.nets.train

    def trained(*a, **k):
        raise AssertionError("the checkpoint was trained before the options were checked")

    monkeypatch.setattr(psum.nets.train, "width_checkpoint", trained)
    err = one_line(["report", "--model", "lenet5", "--width", "0.3", *extra], capsys)
    assert err == f"psum report: error: {message}"


# -- the gaps a newcomer's pass left open, each refused before any work ---------------------------
@pytest.mark.parametrize("argv, message", [
    # Before: a warning per unit ("cannot write the cache entry ...: File exists"), then every
    # synthesis ran uncached.
    (["synth", "a=int4,b=int4,acc=int8", "--cache-dir", "net.py"],
     "psum synth: error: cannot write net.py: exists and is not a directory"),
    (["synth", "a=int4,b=int4,acc=int8", "--cache-dir", "net.py/synth"],
     "psum synth: error: cannot write net.py/synth: {user}/net.py is not a directory"),
    # Before: "no report data net.py/data.json", a path that cannot exist
    (["report", "--rerender", "net.py"],
     "psum report: error: net.py is not a report folder or its data.json (give a report folder or its data.json)"),
    # a rounding mode none of the accumulators uses (integer ones never round)
    (["sweep", "--model", "lenet5", "--acc", "int16,int18:sat", "--round", "rtz", "--limit", "8"],
     "psum sweep: error: round=rtz has no effect on int16, int18:sat: none of these accumulators rounds (an integer "
     "one adds exact integer products)"),
    (["sweep", "--model", "lenet5", "--search", "--acc", "int?", "--round", "sr", "--limit", "8"],
     "psum sweep: error: round=sr has no effect on int?: none of these accumulators rounds (an integer one adds "
     "exact integer products)"),
    (["step", "a=int8,b=int8,acc=q16.4,round=rdn", "0", "1", "1"],
     "psum step: error: round=rdn has no effect on acc=q16.4: the products of int8 and int8 lie on its grid, so it "
     "never rounds (only a float acc2 of order=chunk<L> would); leave round unset (rne)"),
])
def test_open_gaps_are_refused(user, capsys, argv, message):
    assert one_line(argv, capsys) == message.format(user=user)


def test_sweep_lists_a_repeated_format_once(user, capsys):
    """'--acc e5m6,e5m6' printed (and evaluated) the row twice; fp16 and e5m10 are one unit too."""
    assert main(["sweep", "--model", "lenet5", "--acc", "e5m6,fp16,e5m6,e5m10", "--limit", "8", "--json"]) == 0
    rows = __import__("json").loads(capsys.readouterr().out)
    assert [r["spec"] for r in rows[1:]] == ["a=fp8_e4m3,b=fp8_e4m3,acc=e5m6,round=rne,overflow=ieee",
                                             "a=fp8_e4m3,b=fp8_e4m3,acc=fp16,round=rne,overflow=ieee"]


@pytest.mark.parametrize("argv, name", [
    (["sweep", "--model", "lenet5"], "sweep"), (["--version"], ""), ([], ""), (["-h", "report", "--quick"], "report"),
])
def test_one_rule_names_the_subcommand(argv, name):
    """psum.cli.main and the guarded entry (psum/__main__.py) name the subcommand by one function,
    which lives in a leaf module the entry can import while psum.cli.main is half imported."""
    import inspect

    import psum.__main__
    from psum._util import command_name
    from psum.cli.main import _command

    assert command_name(argv) == _command(argv) == name
    source = inspect.getsource(psum.__main__)
    assert "from psum._util import command_name" in source and "startswith" not in source


def test_sweep_mode_applies_to_the_accumulators_that_round(user, capsys):
    """'--round rtz' over a mixed list: the float row rounds rtz, the integer row is the rne unit its
    spec says (it never rounds); an integer chunk unit's float acc2 takes the mode."""
    assert main(["sweep", "--model", "lenet5", "--acc", "e5m6,int16", "--round", "rtz", "--limit", "8", "--json"]) == 0
    rows = __import__("json").loads(capsys.readouterr().out)
    assert [r["spec"] for r in rows[1:]] == ["a=fp8_e4m3,b=fp8_e4m3,acc=e5m6,round=rtz,overflow=ieee",
                                             "a=int8,b=int8,acc=int16,round=rne,overflow=wrap"]
    assert main(["sweep", "--model", "lenet5", "--acc", "int16", "--round", "rtz", "--extra", "order=chunk4",
                 "--limit", "8", "--json"]) == 0
    rows = __import__("json").loads(capsys.readouterr().out)
    assert rows[1]["spec"] == "a=int8,b=int8,acc=int16,round=rtz,overflow=wrap,order=chunk4,acc2=fp32"

