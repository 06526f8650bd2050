"""Edge cases a newcomer found in the new layout: each one a one-line error or the right value."""

import subprocess
import sys

import numpy as np
import pytest

from psum.cli.main import main
from psum.golden import MacSpec, Rounding, parse_format
from psum.golden.rounding import exact_zero_sign


def _run(argv, capsys):
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    # checked while parsing (psum.cli.options), so before the sweep and the RTL simulations
    (["report", "--jobs", "0"], "psum report: error: argument --jobs: must be a positive integer, not 0 "
                                "(see psum report --help)"),
    (["report", "--sim-cycles", "-5"], "psum report: error: argument --sim-cycles: must be a positive integer, "
                                       "not -5 (see psum report --help)"),
    (["report", "--tol", "-1"], "psum report: error: argument --tol: must be a finite number of at least 0, not -1 "
                                "(see psum report --help)"),
    (["report", "--limit", "0"], "psum report: error: argument --limit: must be a positive integer, not 0 "
                                 "(see psum report --help)"),
])
def test_report_options_checked_before_any_work(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, err = _run(argv, capsys)
    assert rc == 2 and err == message + "\n"
    assert not any(tmp_path.iterdir())  # nothing written


def test_output_path_that_is_a_directory_is_one_line(capsys, tmp_path):
    rc, err = _run(["verilog", "a=int8,b=int8,acc=int32", "-o", str(tmp_path)], capsys)
    assert rc == 2 and err == f"psum verilog: error: cannot write {tmp_path}: is a directory\n"


@pytest.mark.parametrize("text, message", [
    ("e5m10_b3_b4", "format 'e5m10_b3_b4': each modifier (_ftz, _b<bias>) may appear once"),
    ("e5m10_ftz_ftz", "format 'e5m10_ftz_ftz': each modifier (_ftz, _b<bias>) may appear once"),
])
def test_format_modifiers_once(text, message):
    with pytest.raises(ValueError) as info:
        parse_format(text)
    assert str(info.value) == message


@pytest.mark.parametrize("text", ["e\u0665m2", "int\u0661\u0666", "a=fp16,b=fp16,acc=fp16,order=chunk\u0663"])
def test_only_ascii_digits(text):
    with pytest.raises(ValueError):
        MacSpec.parse(text) if "=" in text else parse_format(text)


def test_replace_order_drops_the_default_acc2_only_when_unused():
    s = MacSpec.parse("a=fp16,b=fp16,acc=fp16,order=chunk4,acc2=fp16")
    assert str(s.replace(order="seq")) == "a=fp16,b=fp16,acc=fp16,round=rne,overflow=ieee"
    assert s.replace(order="chunk8").acc2 == parse_format("fp16")  # the user's acc2 stays
    assert s.replace(order="tree").acc2 is None


def test_srbits_stored_as_python_int():
    s = MacSpec("fp16", "fp16", "fp16", rounding="sr", sr_bits=np.int64(8))
    assert type(s.sr_bits) is int and s == MacSpec.parse(str(s))


@pytest.mark.parametrize("both_zero, sp, sc, rdn, other", [
    (True, False, False, False, False), (True, True, False, True, False), (True, True, True, True, True),
    (False, False, False, True, False), (False, True, False, True, False),
])
def test_exact_zero_sign_plain_bools(both_zero, sp, sc, rdn, other):
    """Python bools give the same answer as numpy bools (``~True`` is -2 in Python)."""
    assert bool(exact_zero_sign(Rounding.RDN, both_zero=both_zero, sp=sp, sc=sc)) is rdn
    assert bool(exact_zero_sign(Rounding.RNE, both_zero=both_zero, sp=sp, sc=sc)) is other


def test_star_import_of_the_core_stays_numpy_only_and_subpackages_are_attributes():
    code = ("import sys; from psum.golden import *; assert 'torch' not in sys.modules; "
            "import psum; assert psum.golden.formats.NAMED['fp16'].width == 16; "
            "from psum.golden import emulate; import psum.golden.emulation.layers as L; "
            "assert emulate is L.emulate is psum.emulate")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_impl_text_takes_ascii_digits_only():
    from psum.hw.impl import MacImpl

    with pytest.raises(ValueError, match="^impl pipeline must be a non-negative integer, not '\u0661'$"):
        MacImpl.parse("pipeline=\u0661")
