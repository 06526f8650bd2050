"""argparse ``type=`` validators: every option's value is checked while the command line is parsed.

Why at parse time: a bad count or a non-finite float must fail before any data is loaded, any
model trained or any sweep and RTL simulation run (``psum report --jobs 0`` used to fail only
after the sweep). argparse turns an :class:`argparse.ArgumentTypeError` into one line naming the
option, ``psum CMD: error: argument --limit: must be a positive integer, not 0``, exit 2.
"""

from __future__ import annotations

import argparse
import math

__all__ = ["positive_int", "nonneg_int", "positive_float", "nonneg_float", "number", "sr_bits", "text", "Once"]


class Once(argparse.Action):
    """``action=Once``: an option that may be given once. Why: argparse keeps the last of two, so
    ``--impl pipeline=1 --impl multiplier=booth`` built an unpipelined unit without a word."""

    def __call__(self, parser, namespace, values, option_string=None):
        before = getattr(namespace, self.dest, None)
        if before is not None and before is not self.default:
            hint = " (--impl takes KEY=VALUE,KEY=VALUE)" if self.dest == "impl" else ""
            raise argparse.ArgumentError(self, f"given twice ({before!r}, then {values!r}); give it once{hint}")
        setattr(namespace, self.dest, values)


def _int(value: str) -> int:
    try:
        return int(value, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, not {value!r}") from None


def _float(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, not {value!r}") from None
    if not math.isfinite(x):  # inf / nan: --lr inf trained NaN weights and wrote a checkpoint
        raise argparse.ArgumentTypeError(f"must be a finite number, not {value!r}")
    return x


def positive_int(value: str) -> int:
    """A count: an integer >= 1 (``--limit``, ``--jobs``, ``--epochs``, ``--batch-size``, ...)."""
    n = _int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {value}")
    return n


def nonneg_int(value: str) -> int:
    """An integer >= 0 (seeds: numpy and torch take non-negative seeds)."""
    n = _int(value)
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, not {value}")
    return n


def positive_float(value: str) -> float:
    """A finite number > 0 (``--lr``, ``--width``)."""
    x = _float(value)
    if not x > 0:
        raise argparse.ArgumentTypeError(f"must be a finite number greater than 0, not {value}")
    return x


def nonneg_float(value: str) -> float:
    """A finite number >= 0 (``--tol``)."""
    x = _float(value)
    if not x >= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of at least 0, not {value}")
    return x


def number(value: str) -> float:
    """Any float value, inf and nan included, in ASCII (``float()`` reads non-ASCII digits too:
    ``float("\u0661")`` is 1.0, which a user did not type)."""
    if not value.isascii():
        raise argparse.ArgumentTypeError(f"must be a number in ASCII digits, not {value!r}")
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, not {value!r}") from None


def sr_bits(value: str) -> int:
    """Random bits per stochastic rounding: 1 .. 32 (the spec's ``srbits`` range)."""
    n = _int(value)
    if not 1 <= n <= 32:
        raise argparse.ArgumentTypeError(f"must be an integer between 1 and 32, not {n}")
    return n


def text(value: str) -> str:
    """A non-empty text (formats, specs, lists, paths): ``--acc ''`` ran the default formats."""
    if not value.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return value
