"""The psum CLI: every subcommand is registered, and every usage or input error is one line, exit 2."""

import subprocess
import sys

import pytest

from psum.cli.main import build_parser, main

COMMANDS = {"formats", "quantize", "step", "verilog", "sim", "synth", "train", "eval", "sweep", "qat",
            "fake2true", "report", "study"}


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
    # block formats, P3109, E8M0 (issue 15)
    (["quantize", "nvfp4", "1", "--tensor-scale", "nan"],
     "psum quantize: error: tensor scale must be a positive finite fp32 number, not nan"),
    (["quantize", "fp16", "1", "--tensor-scale", "2"],
     "psum quantize: error: --tensor-scale applies only to block formats (nvfp4)"),
    (["quantize", "mxfp4_k0", "1"],
     "psum quantize: error: block format 'mxfp4_k0': block size must be an integer between 1 and 4096, not 0"),
    (["quantize", "e8m0", "1", "--round", "sr"], "psum quantize: error: scale format e8m0 takes no stochastic rounding"),
    (["step", "a=mxfp4,b=nvfp4,acc=fp16", "0", "0", "0"],
     "psum step: error: block-scaled operands need one block size; a=mxfp4 has 32, b=nvfp4 has 16"),
    (["step", "a=mxfp4,b=mxfp4,acc=fp16", "0", "0", "0"],
     "psum step: error: mac_step takes element operands; block-scaled a=mxfp4,b=mxfp4,acc=fp16,round=rne,"
     "overflow=ieee runs in psum.golden.block_dot.block_dot"),
    # the MX block unit and report section (issue 15), each before any work
    (["report", "--mx", "mxfp9"],
     "psum report: error: unknown block format 'mxfp9'; use a block format: mxfp8_e4m3, mxfp8_e5m2, mxfp6_e3m2, "
     "mxfp6_e2m3, mxfp4, mxint8 or nvfp4, with _k<N> for a block size other than 32 (nvfp4: 16)"),
    (["sim", "a=mxfp4,b=mxfp4,acc=e8m5,bsum=e8m5"],
     "psum sim: error: no RTL unit for bsum=e8m5 (block sums rounded into an intermediate format); MxMac sums "
     "each block exactly (bsum unset)"),
    (["synth", "a=mxfp4,b=mxfp4,acc=e8m5", "--impl", "lanes=16"],
     "psum synth: error: impl lanes=16 does not match the block size k=32 of mxfp4: the block unit takes one block "
     "(32 element pairs) per cycle"),
    # psum study mx (issue 15), each before any evaluation
    (["study", "mx", "--kinds", "int"], "psum study mx: error: argument --kinds: must list float and/or fixed, not 'int'"),
    (["study", "mx", "--operands", "fp8_e4m3"],
     "psum study mx: error: argument --operands: unknown block format 'fp8_e4m3'; use a block format: mxfp8_e4m3, mxfp8_e5m2, mxfp6_e3m2, "
     "mxfp6_e2m3, mxfp4, mxint8 or nvfp4, with _k<N> for a block size other than 32 (nvfp4: 16)"),
    (["study", "mx", "--tol", "-1"],
     "psum study mx: error: argument --tol: must be a finite number of at least 0, not -1"),
    (["study", "mx", "--limit", "0"], "psum study mx: error: argument --limit: must be a positive integer, not 0"),
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
     "psum eval: error: argument --image-size: must be a positive integer, not 0"),
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
    # issue 17: step takes values too, exactly representable ones only; the e4m3 note on a bad name
    (["step", "a=fp16,b=fp16,acc=fp16", "0", "1.1", "0"],
     "psum step: error: a=1.1 is not exactly representable in fp16 (nearest 1.09960938 = 0x3c66)"),
    (["step", "a=fp16,b=fp16,acc=fp16", "0x10000", "0", "0"],
     "psum step: error: acc=0x10000 is not a code of fp16 (16 bits: 0 .. 0xffff)"),
    (["step", "a=fp16,b=fp16,acc=fp16", "0", "0", "one"],
     "psum step: error: b must be a bit pattern such as 0x3c00 or a value such as 1.5, not 'one'"),
    (["quantize", "float8_e4m3fnx", "1"],
     "psum quantize: error: unknown format 'float8_e4m3fnx'; use a name from `psum formats` (fp32, bf16, fp8_e4m3, "
     "...), e<E>m<M>[fn|fnuz|fin|p3109][_ftz][_b<bias>], binary8p<P> (IEEE P3109, P=1..7), e8m0, int<N>, uint<N> "
     "or q<I>.<F> (fixed point); note: e4m3 is "
     "IEEE-like (inf and NaN, max 240, ml_dtypes float8_e4m3); fp8_e4m3 = e4m3fn is OCP FP8 (no inf, max 448, "
     "ml_dtypes/torch float8_e4m3fn)"),
    # issue 12 iso-throughput options, checked while parsing
    (["report", "--model", "lenet5", "--iso-macs", "0"],
     "psum report: error: argument --iso-macs: must be a positive integer, not 0"),
    (["report", "--model", "lenet5", "--iso-clock-ns", "-2"],
     "psum report: error: argument --iso-clock-ns: must be a finite number greater than 0, not -2"),
    # issue 12 leftovers: the report on a Liberty file and at a clock, each before any work
    (["report", "--liberty", "/nonexistent/x.lib"], "psum report: error: liberty file /nonexistent/x.lib does not exist"),
    (["report", "--clock-ns", "0"], "psum report: error: argument --clock-ns: must be a finite number greater than 0, not 0"),
    (["report", "--rerender", "/nonexistent/report"],
     "psum report: error: no report data /nonexistent/report/data.json (give a report folder or its data.json)"),
    # issue 13: simulator choice and Ray sweeps
    (["sim", "a=int8,b=int8,acc=int32", "--simulator", "ghdl"],
     "psum sim: error: argument --simulator: invalid choice: 'ghdl'"),
    (["sim", "a=int8,b=int8,acc=int32", "--drive", "--trace"], "psum sim: error: give --drive or --trace, not both"),
    (["sweep", "--model", "lenet5", "--acc", "e5m3", "--limit", "4", "--ray", ""],
     "psum sweep: error: ray must be 'local' or a Ray cluster address, not ''"),
    (["sweep", "--model", "lenet5", "--search", "--acc", "int?", "--early-stop", "stat:1"],
     "psum sweep: error: argument --early-stop: must be 'exact', 'off' or 'stat:ALPHA' (0 < ALPHA < 1), not 'stat:1'"),
    *([(["sweep", "--model", "lenet5", "--acc", "e5m3", "--limit", "4", "--device", "cuda"],
        "psum sweep: error: --device cuda: CUDA is not available on this machine (use --device cpu)")]
      if not __import__("torch").cuda.is_available() else []),
    # issue 14, wrong values: every option checked while parsing (the full table: tests/test_values.py)
    (["eval", "--model", "lenet5", "--limit", "0"], "psum eval: error: argument --limit: must be a positive integer, not 0"),
    (["sweep", "--model", "lenet5", "--acc", ""], "psum sweep: error: argument --acc: must not be empty"),
    (["train", "--model", "lenet5", "--lr", "inf"], "psum train: error: argument --lr: must be a finite number, not 'inf'"),
    (["train", "--model", "lenet5", "--seed", "-1"], "psum train: error: argument --seed: must be a non-negative integer, not -1"),
    (["quantize", "e5m10_b4000", "1"], "psum quantize: error: format 'e5m10_b4000': values must fit float64"),
    # silicon figures (issue 12), each before any synthesis
    (["synth", "a=int4,b=int4,acc=int12", "--clock-ns", "0"],
     "psum synth: error: clock period must be a positive number of ns, not 0.0"),
    (["synth", "a=int4,b=int4,acc=int12", "--clock-ns", "1e-300"],  # printed a 300-digit MHz and uW, exit 0
     "psum synth: error: clock period must be at least 0.001 ns (1 ps: no logic gate switches faster), not 1e-300"),
    (["synth", "a=int4,b=int4,acc=int12", "--liberty", "/nonexistent/x.lib"],
     "psum synth: error: liberty file /nonexistent/x.lib does not exist"),
    (["synth", "a=int4,b=int4,acc=int12", "--liberty", "/nonexistent/x.lib", "--breakdown"],
     "psum synth: error: liberty file /nonexistent/x.lib does not exist"),
    # a silicon option given twice: argparse kept the last one (--impl pipeline=1 --impl multiplier=booth
    # built an unpipelined unit)
    (["verilog", "a=e2m1,b=e2m1,acc=e3m2", "--impl", "pipeline=1", "--impl", "multiplier=booth"],
     "psum verilog: error: argument --impl: given twice ('pipeline=1', then 'multiplier=booth'); give it once "
     "(--impl takes KEY=VALUE,KEY=VALUE)"),
    (["synth", "a=int4,b=int4,acc=int12", "--clock-ns", "1", "--clock-ns", "2"],
     "psum synth: error: argument --clock-ns: given twice (1.0, then 2.0); give it once"),
    (["report", "--liberty", "a.lib", "--liberty", "b.lib"],
     "psum report: error: argument --liberty: given twice ('a.lib', then 'b.lib'); give it once"),
    (["synth", "a=int4,b=int4,acc=int12", "--outputs", "1000000"],  # Yosys, then minutes of stimulus, then GBs
     "psum synth: error: --outputs is at most 65536 (the gate-level simulation's bound: 9 cycles per output, a line "
     "per cycle and net), not 1000000"),
    (["synth", "a=int4,b=int4,acc=int12", "--breakdown", "--jobs", "4"],  # ignored: one unit at a time
     "psum synth: error: --jobs sets the parallel flat synthesis; --breakdown synthesises one unit at a time (leave "
     "--jobs out, or add --clock-ns, whose figures come from the flat synthesis)"),
    (["synth", "a=int4,b=int4,acc=int12", "--liberty", "/tmp", "--glitch"],  # was "does not exist"
     "psum synth: error: liberty file /tmp is a folder, not a Liberty file"),
    (["report", "--liberty", "/tmp"], "psum report: error: liberty file /tmp is a folder, not a Liberty file"),
    (["synth", "a=int4,b=int4,acc=int12", "--liberty", "/dev/null"],  # was "does not exist"
     "psum synth: error: liberty file /dev/null is not a regular file (a device, FIFO or socket)"),
    (["synth", "a=int4,b=int4,acc=int12", "--liberty", ""],  # was "liberty file . is a folder"
     "psum synth: error: argument --liberty: must not be empty"),
    # issue 13 item 6: networks at a chosen width (--width, --storage), each before any evaluation
    (["eval", "--model", "resnet18", "--width", "0"], "psum eval: error: argument --width: must be a finite number "
                                                      "greater than 0, not 0"),
    (["sweep", "--model", "resnet18", "--width", "1", "--checkpoint", "x.pt"],
     "psum sweep: error: give --width or --checkpoint, not both (a psum checkpoint records its width)"),
    (["sweep", "--model", "my.py:build", "--width", "1"],
     "psum sweep: error: --width needs a built-in model (lenet5, alexnet, resnet18, resnet18-imagenet, vit), "
     "not 'my.py:build'"),
    (["eval", "--model", "resnet18", "--width", "0.3", "--limit", "4"],
     "psum eval: error: no checkpoint for resnet18 at width 0.3 on digits; run psum train --model resnet18 "
     "--dataset digits --width 0.3"),
    (["report", "--model", "resnet18", "--width", "1", "--checkpoint", "x.pt"],
     "psum report: error: give --width or --checkpoint, not both (a psum checkpoint records its width)"),
    (["report", "--model", "resnet18", "--width", "-1"],
     "psum report: error: argument --width: must be a finite number greater than 0, not -1"),
    (["train", "--model", "resnet18", "--storage", "fp16"],
     "psum train: error: argument --storage: invalid choice: 'fp16'"),
    # a newcomer's first use: options that were silently ignored (more in tests/test_newcomer.py)
    (["quantize", "fp8_e4m3", "1.1", "--seed", "4"], "psum quantize: error: --seed applies only to --round sr, not --round rne"),
    (["quantize", "fp8_e4m3", "1.1", "--round", "rtz", "--sr-bits", "4"],
     "psum quantize: error: --sr-bits applies only to --round sr, not --round rtz"),
    (["quantize", "mxfp4", "1.3", "--round", "rtz"],
     "psum quantize: error: --round does not apply to block format mxfp4: its elements round rne with saturation"),
    (["quantize", "nvfp4", "1.3", "--saturate", "--seed", "1"],
     "psum quantize: error: --saturate, --seed do not apply to block format nvfp4: its elements round rne with saturation"),
    (["step", "a=fp16,b=fp16,acc=fp16", "0", "1", "1", "--rand", "3"],
     "psum step: error: --rand applies only to round=sr, not round=rne"),
    (["sweep", "--model", "lenet5", "--search", "--acc", "q?.8", "--limit", "8"],  # was an AttributeError traceback
     "psum sweep: error: search entry must be e<E>m?, e?m<M> or int?[:wrap|:sat], not 'q?.8'"),
    # sweep options of the other mode, each silently ignored before
    (["sweep", "--model", "lenet5", "--acc", "int16", "--tol", "5", "--limit", "8"],
     "psum sweep: error: --tol applies to --search (a sweep row has no pass mark)"),
    (["sweep", "--model", "lenet5", "--acc", "int16", "--relative-to", "operands", "--limit", "8"],
     "psum sweep: error: --relative-to applies to --search (a sweep row has no pass mark)"),
    (["sweep", "--model", "lenet5", "--search", "--acc", "int?", "--plot", "p.png", "--limit", "8"],
     "psum sweep: error: --plot draws sweep rows; --search has no plot (sweep the formats with --acc LIST --plot)"),
    (["sweep", "--model", "lenet5", "--search", "--acc", "int?", "--per-layer", "--layers-only", "--limit", "8"],
     "psum sweep: error: --layers-only applies to a sweep; --search always finds the network-wide minimum too"),
    (["sweep", "--model", "lenet5", "--acc", "int16", "--layers-only", "--limit", "8"],  # was the API's wording
     "psum sweep: error: --layers-only needs --per-layer or --layer (it skips the network-wide rows)"),
    # report options that were silently ignored or overridden
    (["report", "--rerender", "results/lenet5-digits", "--model", "alexnet", "--limit", "8"],
     "psum report: error: --rerender redraws DIR from its data.json (no study run); --model, --limit would be ignored "
     "(rerun the report instead)"),
    (["report", "--per-layer", "--no-per-layer"], "psum report: error: give --per-layer or --no-per-layer, not both"),
    (["report", "--no-iso", "--iso-macs", "8"],
     "psum report: error: --iso-macs sets the iso-throughput comparison, which --no-iso skips"),
    # data options the data set does not read (--data-dir mydata/ evaluated the built-in digits)
    (["eval", "--model", "lenet5", "--data-dir", "/tmp", "--limit", "8"],
     "psum eval: error: --data-dir applies to cifar10, cifar100, imagenet and imagefolder, not --dataset digits (built in)"),
    (["sweep", "--model", "lenet5", "--dataset", "data.py:test_set", "--data-dir", "/tmp", "--acc", "int16"],
     "psum sweep: error: --data-dir applies to cifar10, cifar100, imagenet and imagefolder, not --dataset "
     "data.py:test_set (your function loads its own data)"),
    (["train", "--model", "lenet5", "--data-dir", "/tmp", "--epochs", "1"],
     "psum train: error: --data-dir applies to cifar10, cifar100, imagenet and imagefolder, not --dataset digits (built in)"),
    (["eval", "--model", "lenet5", "--image-size", "64"], "psum eval: error: --image-size applies to --dataset imagefolder, not digits"),
    (["report", "--normalize", "imagenet"], "psum report: error: --normalize applies to --dataset imagefolder, not digits"),
    (["fake2true", "--model", "lenet5", "--acc", "acc=int20,overflow=sat", "--overflow", "wrap"],
     "psum fake2true: error: give the overflow in --acc (acc=int20,overflow=sat) or in --overflow, not both"),
    (["study", "mx", "--checkpoint", "x.pt", "--no-search"],  # both were ignored: no load, minutes of search
     "psum study: error: psum study mx does not take --checkpoint, --no-search (it searches every layer of the model's "
     "psum checkpoint, or of FILE.py:FUNCTION's own weights)"),
    (["study", "a2q", "--no-search", "--tol", "2"], "psum study: error: --tol sets the accuracy search, which --no-search skips"),
    (["study", "accumulation-theory", "--no-search", "--tol", "3", "--limit", "8"],
     "psum study: error: --tol, --limit set the accuracy search, which --no-search skips"),
    # the newcomer's open bad-input gaps (tests/test_spec.py has the API's rows)
    (["step", "a=int8,b=int8,acc=int16,round=sr", "0", "1", "1", "--rand", "3"],
     "psum step: error: round=sr has no effect on acc=int16: an integer accumulator adds exact integer products and "
     "never rounds (only a float acc2 of order=chunk<L> would); leave round unset (rne)"),
    (["synth", "a=int4,b=int4,acc=int8", "--glitch", "--outputs", "100000"],  # was silent, then an hour of simulation
     "psum synth: error: --glitch simulates at most 4096 outputs (a timed gate simulation, about 1 us per net and "
     "cycle), not --outputs 100000"),
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


def test_sweep_plot_writes_png_svg_and_pdf(tmp_path, capsys):
    out = tmp_path / "rows.jsonl"
    plot = tmp_path / "acc.png"
    assert main(["sweep", "--model", "lenet5", "--acc", "e5m3,int18", "--limit", "20", "--out", str(out),
                 "--plot", str(plot)]) == 0
    for ext in (".png", ".svg", ".pdf"):
        assert plot.with_suffix(ext).stat().st_size > 0
    assert main(["sweep", "--model", "lenet5", "--acc", "e5m3,int18", "--limit", "20", "--out", str(out),
                 "--plot", str(tmp_path / "p.pdf")]) == 0  # --plot p.pdf: a publication figure
    assert (tmp_path / "p.pdf").read_bytes().startswith(b"%PDF")
    capsys.readouterr()
    assert main(["sweep", "--model", "lenet5", "--acc", "e5m3", "--limit", "20", "--out", str(out),
                 "--plot", str(tmp_path / "acc.jpg")]) == 2
    assert capsys.readouterr().err.strip().endswith("--plot needs a .png, .svg or .pdf file name (the other two are "
                                                    f"written beside it), not '{tmp_path / 'acc.jpg'}'")
