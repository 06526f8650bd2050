"""``psum step`` operands: a code carries a base prefix (0x/0b/0o), a bare number is a value.

The value path is checked against an exact reference: for every code of small formats (and random
codes of wide ones) the exact decimal text of the code's value (a Fraction; binary fractions have
finite decimal expansions) must parse back to the same code, and one more digit must be refused.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from psum.cli.golden import parse_operand
from psum.cli.main import main
from psum.golden import FixedFormat, FloatFormat, IntFormat, parse_format
from psum.golden.reference import decode_ref


def _decimal(x: Fraction) -> str:
    """The exact decimal text of a dyadic rational (its denominator is a power of two)."""
    sign, x = ("-" if x < 0 else ""), abs(x)
    den, shift = x.denominator, 0
    while den > 1:
        den, shift = den // 2, shift + 1
    digits = str(x.numerator * 5 ** shift)  # x = n * 5**s / 10**s
    if shift == 0:
        return sign + digits
    digits = digits.rjust(shift + 1, "0")
    return f"{sign}{digits[:-shift]}.{digits[-shift:]}"


def _codes(fmt, n=300):
    if fmt.width <= 8:
        return range(1 << fmt.width)
    rng = np.random.default_rng(fmt.width)
    return [int(c) for c in rng.integers(0, 1 << fmt.width, n, dtype=np.uint64)]


@pytest.mark.parametrize("name", ["fp8_e4m3", "e5m2", "fp16", "bf16", "e3m2fin", "e4m3fnuz", "int8", "uint8",
                                  "int64", "q4.4", "q8.24", "q64.0", "q1.63"])
def test_exact_decimal_of_every_code_parses_back(name):
    fmt = parse_format(name)
    for code in _codes(fmt):
        sign, v = decode_ref(fmt, code)  # the Fraction reference, independent of the encoder
        if not isinstance(v, Fraction):  # inf / nan: the value text is tested below
            continue
        v = -v if sign else v
        if v == 0 and code != 0:  # -0: the value 0 is +0 (the code 0x80.. is written in hex)
            assert parse_operand(f"{code:#x}", fmt, "a") == code
            continue
        text = _decimal(v)
        assert Fraction(text) == v
        assert parse_operand(text, fmt, "a") == code, (name, text, hex(code))
        assert parse_operand(f"{code:#x}", fmt, "a") == code
        assert parse_operand(f"{code:#b}", fmt, "a") == code
        if "." in text or isinstance(fmt, FloatFormat):  # one more digit: not a value of the format
            with pytest.raises(ValueError, match=r"^a=.* is not exactly representable in "):
                parse_operand(text + ("1" if "." in text else ".0000000000000000000001"), fmt, "a")


def test_bare_decimal_is_a_value_not_a_code():
    fp16 = parse_format("fp16")
    assert parse_operand("2", fp16, "a") == 0x4000  # was the code 0x0002 (a subnormal)
    assert parse_operand("0x2", fp16, "a") == 0x0002
    assert parse_operand("0o17", fp16, "a") == 0xF
    assert parse_operand("-2", fp16, "a") == 0xC000
    assert parse_operand("inf", fp16, "a") == 0x7C00 and parse_operand("-inf", fp16, "a") == 0xFC00
    assert parse_operand("0", IntFormat(8), "a") == 0 and parse_operand("-1", IntFormat(8), "a") == 0xFF
    assert parse_operand("9007199254740993", FixedFormat(64, 0), "a") == 2 ** 53 + 1  # float64 would round it


@pytest.mark.parametrize("fmt, text, message", [
    ("int8", "200", "a=200 is outside int8 (-128 .. 127)"),  # was the code 0xc8 (-56)
    ("fp16", "1.0000000000000000001", "a=1.0000000000000000001 is not exactly representable in fp16 (nearest 1 = "
                                      "0x3c00)"),  # float() rounds the text to 1.0
    ("fp16", "3", "a=3 is not exactly representable in fp16"),
    ("q8.8", "0.001", "a=0.001 is not exactly representable in q8.8 (nearest 0 = 0x0)"),
    ("fp16", "0x10000", "a=0x10000 is not a code of fp16 (16 bits: 0 .. 0xffff)"),
])
def test_refused_operands(fmt, text, message):
    if text == "3":  # 3 is an fp16 value: the check is that it is *accepted*
        assert parse_operand(text, parse_format(fmt), "a") == 0x4200
        return
    with pytest.raises(ValueError) as info:
        parse_operand(text, parse_format(fmt), "a")
    assert str(info.value).startswith(message)


def test_readme_step_example(capsys):
    # README: psum step a=fp16,b=fp16,acc=fp16 0x3c00 0x1400 0x3c00
    assert main(["step", "a=fp16,b=fp16,acc=fp16", "0x3c00", "0x1400", "0x3c00"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "  -> 0x3c01 (1.00097656)"
    assert main(["step", "a=fp16,b=fp16,acc=fp16", "1", "2", "0.5"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "  -> 0x4000 (2)"
