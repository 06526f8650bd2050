"""The public API: ``import psum`` exposes it lazily, and every documented import path gives the
same object every time, whatever was imported before (each case in a fresh interpreter)."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import pytest

import psum


def run(code: str) -> str:
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


# Every documented way to reach ``emulate``: each statement binds ``f``.
EMULATE_PATHS = {
    "psum.emulate": "import psum; f = psum.emulate",
    "from psum": "from psum import emulate as f",
    "from psum.golden": "from psum.golden import emulate as f",
    "psum.golden attribute": "import psum.golden as g; f = g.emulate",
    "layers module": "import psum.golden.emulation.layers as m; f = m.emulate",
}
TRUTH = "from psum.golden.emulation.layers import emulate as TRUE"


# Both orders of: the module that defines emulate against each re-export, and the two re-exports
# of psum.golden against each other (the lazy attribute that once returned a module).
ORDERS = [p for p in itertools.permutations(EMULATE_PATHS, 2)
          if "layers module" in p or set(p) == {"from psum.golden", "psum.golden attribute"}]


@pytest.mark.parametrize("first, second", ORDERS,
                         ids=lambda k: k.replace(" ", "_").replace(".", "_"))
def test_emulate_is_the_function_in_every_order(first, second):
    code = "\n".join([
        EMULATE_PATHS[first], "a = f",
        EMULATE_PATHS[second], "b = f",
        # and once more, every path, after both
        *(f"{stmt}\nassert f is a, {key!r}" for key, stmt in EMULATE_PATHS.items()),
        TRUTH,
        "import inspect",
        "assert a is b is TRUE and inspect.isfunction(a), (a, b)",
        "print('ok')",
    ])
    assert run(code) == "ok"


def test_every_api_name_is_its_home_object_in_both_orders():
    names = sorted(psum._API)
    check = ("import importlib, psum\n"
             "for n, home in sorted(psum._API.items()):\n"
             "    assert getattr(psum, n) is getattr(importlib.import_module(home), n), n\n"
             "    assert getattr(psum, n) is getattr(psum, n), n\n"
             "print(len(psum._API))")
    # psum first, then the homes
    assert run(check) == str(len(names))
    # the homes first, then psum
    homes = sorted(set(psum._API.values()))
    assert run("".join(f"import {h}\n" for h in homes) + check) == str(len(names))


def test_api_names_are_documented_and_listed():
    assert set(psum._API) <= set(psum.__all__) and "__version__" in psum.__all__
    assert set(psum._API) <= set(dir(psum))
    with pytest.raises(AttributeError, match="module 'psum' has no attribute 'nope'"):
        psum.nope  # noqa: B018


def test_import_psum_and_the_numeric_core_stay_light():
    code = ("import sys, psum, psum.golden, psum.errors, psum.paths\n"
            "spec = psum.MacSpec.parse('a=int8,b=int8,acc=int32')\n"
            "fmt = psum.parse_format('e5m6'); psum.mac_step; psum.quantize; psum.Rounding\n"
            "print(sorted(m for m in ('torch', 'amaranth', 'cocotb', 'matplotlib') if m in sys.modules))")
    assert run(code) == "[]"


def test_cli_help_stays_light():
    code = ("import sys\nfrom psum.cli.main import build_parser\nbuild_parser()\n"
            "print(sorted(m for m in ('torch', 'amaranth', 'cocotb', 'matplotlib') if m in sys.modules))")
    assert run(code) == "[]"


def test_the_api_works_from_the_top():
    spec = psum.MacSpec.parse("a=int8,b=int8,acc=int16,overflow=sat")
    assert psum.MacSpec.parse(str(spec)) == spec
    assert isinstance(psum.parse_format("e5m6"), psum.FloatFormat)
    assert isinstance(psum.parse_format("int8"), psum.IntFormat)
    import numpy as np

    out = psum.mac_step(spec, np.array([32767]), np.array([127]), np.array([127]))
    assert int(out[0]) == 32767  # saturated
    assert "module mac_int8_int8_acc_int16_sat" in psum.verilog(spec)


# -- behaviour that moved out of the CLI into the APIs ----------------------------------------
def test_report_quick_preset():
    from psum.reports.report import ReportConfig

    q = ReportConfig.quick()
    assert (q.float_exps, q.max_man, q.int_widths, q.per_layer, q.limit) == ((5,), 8, (10, 14, 18, 22), False, 200)
    assert q.model == ReportConfig().model and q.sim_cycles == ReportConfig().sim_cycles
    assert ReportConfig.quick(limit=None, model="alexnet").limit is None
    assert ReportConfig.quick(model="alexnet").model == "alexnet"


def test_float_format_fields():
    fmt = psum.parse_format("e4m3")
    assert fmt.fields(0x39) == (0, 0b0111, 0b001)
    assert fmt.fields(0xF8) == (1, 0b1111, 0)
    code = 0xBC00  # fp16 -1.0
    s, e, m = psum.parse_format("fp16").fields(code)
    assert (s, e, m) == (1, 15, 0) and s << 15 | e << 10 | m == code
    with pytest.raises(ValueError, match=r"^code of e4m3 must be an integer between 0 and 255, not 256$"):
        fmt.fields(256)


def test_search_templates():
    from psum.sweeps.sweep import parse_search_entry, search_label

    assert parse_search_entry("e5m?") == ("man", {"exp_bits": 5}, None)
    assert parse_search_entry("e?m7:sat") == ("exp", {"man_bits": 7}, "sat")
    assert parse_search_entry("int?") == ("int", {}, "wrap")
    assert search_label({"kind": "man", "fixed": 5, "overflow": None}) == "e5m?"
    assert search_label({"kind": "int", "fixed": None, "overflow": "sat"}) == "int?:sat"
    with pytest.raises(ValueError, match=r"^search entry must be e<E>m\?, e\?m<M> or int\?\[:wrap\|:sat\], "
                                         r"not 'int8'$"):
        psum.run_search("lenet5", "digits", "int?,int8")  # before any evaluation


def test_run_search_templates_times_layers(tmp_path):
    res = psum.run_search("lenet5", "digits", ["int?:sat", "int?:wrap"], per_layer=True, lo=14, hi=18, tol=5.0,
                          limit=16, out=tmp_path / "s.jsonl")
    layers = ["all"] + [r["layer"] for r in res[1:len(res) // 2]]
    assert len(layers) > 2 and len(res) == 2 * len(layers)
    assert [(r["overflow"], r["layer"]) for r in res] == [(o, L) for o in ("sat", "wrap") for L in layers]


def test_plot_sweep_uses_network_rows(tmp_path):
    from psum.reports.plots import plot_sweep
    from psum.sweeps.sweep import network_points

    rows = [dict(spec="fp32", layer="all", accuracy=99.0),
            dict(spec="x", kind="int", overflow="sat", acc="int16", acc_bits=16, layer="all", accuracy=98.0),
            dict(spec="y", kind="float", acc="e5m3", acc_bits=9, exp_bits=5, man_bits=3, layer="all", accuracy=97.0),
            dict(spec="z", kind="int", overflow=None, acc="int16", acc_bits=16, layer="conv1", accuracy=90.0)]
    assert [p["family"] for p in network_points(rows)] == ["int-sat", "float"]
    written = plot_sweep(rows, tmp_path / "a.png", title="t")
    assert [Path(w).name for w in written] == ["a.png", "a.svg", "a.pdf"]
    with pytest.raises(ValueError, match="needs network-wide rows"):
        plot_sweep([rows[0], rows[3]], tmp_path / "b.png", title="t")


def test_evaluate_spec_and_the_eval_command(capsys):
    from psum.cli.main import main
    from psum.sweeps.sweep import evaluate_spec

    row = evaluate_spec("lenet5", "digits", "a=int8,b=int8,acc=int16,overflow=sat", layer="conv1", limit=16)
    assert row["spec"] == "a=int8,b=int8,acc=int16,round=rne,overflow=sat" and row["n_images"] == 16
    assert row["layer"] == "conv1" and 0 <= row["top1"] <= 100
    assert evaluate_spec("lenet5", "digits", limit=16)["spec"] == "fp32"
    assert main(["eval", "--model", "lenet5", "--limit", "16"]) == 0
    assert capsys.readouterr().out.startswith("lenet5/digits [fp32]: top-1 ")
    assert main(["eval", "--model", "vgg", "--limit", "16"]) == 2
    assert capsys.readouterr().err == ("psum eval: error: model must be one of lenet5, alexnet, resnet18, "
                                       "resnet18-imagenet, vit, FILE.py:FUNCTION or package.module:FUNCTION, not 'vgg'\n")
