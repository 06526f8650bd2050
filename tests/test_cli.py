"""The psum CLI: every subcommand is registered, and every usage or input error is one line, exit 2."""

import subprocess
import sys

import pytest

from psum.cli.main import build_parser, main

COMMANDS = {"formats", "quantize", "step", "verilog", "sim", "synth", "train", "eval", "sweep", "qat",
            "fake2true", "report"}


def test_every_subcommand_is_registered():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == COMMANDS


@pytest.mark.parametrize("argv, message", [
    (["frob"], "psum: error: argument COMMAND: invalid choice: 'frob'"),
    (["quantize"], "psum quantize: error: the following arguments are required: FORMAT, VALUE"),
    (["quantize", "e0m3", "1"], "psum quantize: error: format 'e0m3': exponent bits must be an integer "
                                "between 2 and 11, not 0"),
    (["quantize", "e5m-1", "1"], "psum quantize: error: format 'e5m-1': mantissa bits must be an integer "
                                 "between 1 and 52, not -1"),
    (["quantize", "int0", "1"], "psum quantize: error: format 'int0': integer width must be an integer "
                                "between 2 and 64, not 0"),
    (["step", "a=fp16,b=fp16,acc=fp16,round=xyz", "0", "0", "0"],
     "psum step: error: rounding mode must be one of rne, rtz, rup, rdn, rna, rod or sr, not 'xyz'"),
    (["formats", "fp7"], "psum formats: error: unknown format 'fp7'"),
    # user models and data (issue 10), each before any evaluation
    (["eval"], "psum eval: error: --model is required (a built-in name or FILE.py:FUNCTION) unless --checkpoint "
               "holds a whole model or a torch.export archive"),
    (["eval", "--model", "nofile.py:build"], "psum eval: error: --model nofile.py:build: file nofile.py does not exist"),
    (["eval", "--model", "no_such_pkg.mod:build"], "psum eval: error: --model no_such_pkg.mod:build: no module "
                                                   "'no_such_pkg'"),
    (["eval", "--model", "lenet5", "--dataset", "mnist"],
     "psum eval: error: dataset must be one of digits, cifar10, cifar100, imagenet, imagefolder or FILE.py:FUNCTION, "
     "not 'mnist'"),
    (["eval", "--model", "lenet5", "--dataset", "imagefolder"],
     "psum eval: error: imagefolder needs --data-dir DIR with DIR/<class>/*.png|jpg (one folder per class), or "
     "DIR/{train,val}/<class>/*"),
    (["eval", "--model", "lenet5", "--dataset", "imagefolder", "--data-dir", "/tmp", "--image-size", "0"],
     "psum eval: error: image size must be an integer >= 1, not 0"),
    (["eval", "--model", "lenet5", "--normalize", "cifar"],
     "psum eval: error: argument --normalize: invalid choice: 'cifar'"),
    (["eval", "--model", "lenet5", "--spec", "a=int8,b=int8,acc=int16", "--spec-file", "s.json"],
     "psum eval: error: give --spec or --spec-file, not both"),
    (["eval", "--model", "lenet5", "--spec-file", "/nonexistent/specs.json"],
     "psum eval: error: spec file /nonexistent/specs.json does not exist"),
    (["eval", "--model", "lenet5", "--layer", "fc9", "--spec", "a=int8,b=int8,acc=int16", "--limit", "4"],
     "psum eval: error: layer 'fc9' selects none of the Conv2d/Linear layers: conv1, conv2, fc1, fc2, fc3"),
    (["sweep", "--model", "lenet5", "--layer", "fc9", "--acc", "e5m3", "--limit", "4"],
     "psum sweep: error: layer 'fc9' selects none of the Conv2d/Linear layers: conv1, conv2, fc1, fc2, fc3"),
    (["report", "--model", "lenet5", "--layer", "fc9", "--out", "/tmp/psum-none"],
     "psum report: error: layer 'fc9' selects none of the Conv2d/Linear layers: conv1, conv2, fc1, fc2, fc3"),
    # silicon figures (issue 12), each before any synthesis
    (["synth", "a=int4,b=int4,acc=int12", "--clock-ns", "0"],
     "psum synth: error: clock period must be a positive number of ns, not 0.0"),
    (["synth", "a=int4,b=int4,acc=int12", "--liberty", "/nonexistent/x.lib"],
     "psum synth: error: liberty file /nonexistent/x.lib does not exist"),
    (["synth", "a=int4,b=int4,acc=int12", "--liberty", "/nonexistent/x.lib", "--breakdown"],
     "psum synth: error: --breakdown maps onto psum45 only; drop --liberty or --breakdown"),
])
def test_errors_are_one_line(argv, message, capsys):
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse usage errors exit from the parser
        rc = exc.code
    assert rc == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(message), err


def test_console_script_exit_code():
    r = subprocess.run([sys.executable, "-m", "psum", "quantize", "fp8_e4m3", "1.1"], capture_output=True, text=True)
    assert r.returncode == 0 and "0x39" in r.stdout
    r = subprocess.run([sys.executable, "-m", "psum", "quantize", "bogus", "1"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_sweep_plot_writes_png_and_svg(tmp_path, capsys):
    out = tmp_path / "rows.jsonl"
    plot = tmp_path / "acc.png"
    assert main(["sweep", "--model", "lenet5", "--acc", "e5m3,int18", "--limit", "20", "--out", str(out),
                 "--plot", str(plot)]) == 0
    assert plot.stat().st_size > 0 and plot.with_suffix(".svg").stat().st_size > 0
    assert main(["sweep", "--model", "lenet5", "--acc", "e5m3", "--limit", "20", "--out", str(out),
                 "--plot", str(tmp_path / "acc.pdf")]) == 2
    assert capsys.readouterr().err.strip().endswith("--plot needs a .png file name (an .svg is written beside it), "
                                                    f"not '{tmp_path / 'acc.pdf'}'")
