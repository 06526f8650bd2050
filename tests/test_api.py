"""The public API: ``import psum`` exposes it lazily, and every documented import path gives the
same object every time, whatever was imported before (each case in a fresh interpreter)."""

from __future__ import annotations

import itertools
import subprocess
import sys

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
