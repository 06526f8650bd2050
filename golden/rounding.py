"""Rounding modes and the rule book: the rounding decision and the sign of an exact zero, written once.

The two rules here are the only places that say *when* a rounder increments and *which sign* an
exact zero sum takes. They are written with ``&``, ``|`` and ``~`` only, so one body serves numpy
bool arrays (golden), torch bool tensors (the torch kernel) and 1-bit Amaranth values (the RTL
rounder); the C kernel receives the same rules as small truth tables computed here
(:func:`round_table`, :func:`zero_sign_table`). The Fraction reference
(:mod:`psum.golden.reference`) keeps its own independent formulation on purpose.

The integer codes follow RISC-V ``frm`` (RNE=0, RTZ=1, RDN=2, RUP=3, RMM=4) so that a generated
unit's rounding-mode constant means the same thing as in any RISC-V FPU; psum adds round-to-odd (5)
and stochastic rounding (6), which ``frm`` does not have.
"""

from __future__ import annotations

import enum

__all__ = ["Rounding", "parse_rounding", "ROUNDING_HELP", "round_up", "exact_zero_sign",
           "round_table", "zero_sign_table"]


class Rounding(enum.Enum):
    """A rounding mode; the value is its short name used in the API, the CLI and reports."""

    RNE = "rne"  #: round to nearest, ties to even (IEEE default)
    RTZ = "rtz"  #: round toward zero (truncate the magnitude)
    RDN = "rdn"  #: round toward -inf
    RUP = "rup"  #: round toward +inf
    RNA = "rna"  #: round to nearest, ties away from zero (IEEE roundTiesToAway, RISC-V RMM)
    ROD = "rod"  #: round to odd (von Neumann jamming: truncate, then set the lsb if inexact)
    SR = "sr"  #: stochastic: add k random bits below the lsb, then truncate

    @property
    def code(self) -> int:
        """RISC-V ``frm`` code (5 and 6 are psum extensions)."""
        return _CODES[self]

    def __str__(self) -> str:
        return self.value


_CODES = {
    Rounding.RNE: 0,
    Rounding.RTZ: 1,
    Rounding.RDN: 2,
    Rounding.RUP: 3,
    Rounding.RNA: 4,
    Rounding.ROD: 5,
    Rounding.SR: 6,
}

ROUNDING_HELP = "rne, rtz, rup, rdn, rna, rod or sr"


def parse_rounding(mode: "Rounding | str") -> Rounding:
    """Return the :class:`Rounding` named by ``mode`` (a member or its short name).

    Raises
    ------
    ValueError
        If ``mode`` names no rounding mode.
    """
    if isinstance(mode, Rounding):
        return mode
    if isinstance(mode, str):
        try:
            return Rounding(mode.lower())
        except ValueError:
            pass
    raise ValueError(f"rounding mode must be one of {ROUNDING_HELP}, not {mode!r}")


# ---------------------------------------------------------------------------------------------
# The rule book
# ---------------------------------------------------------------------------------------------
def round_up(mode: Rounding, *, lsb, guard, sticky, sign, sr_carry=None):
    """The increment decision of every rounder: does the truncated significand ``q`` go up one ulp?

    The magnitude is split as ``q`` (kept bits, ``lsb`` its last bit), ``guard`` (the first
    dropped bit, worth half an ulp) and ``sticky`` (the OR of every bit below the guard); ``sign``
    is the sign of the value. The rounded magnitude is ``q + round_up(...)``, for *every* mode:
    round-to-odd is written as cvfpu's increment ``~lsb & (guard | sticky)`` (an even ``q`` of an
    inexact value goes up to the odd neighbour, which equals "set the lsb"), so no caller needs a
    mode-specific datapath.

    Parameters
    ----------
    mode : Rounding
        The rounding mode (a Python value: the decision is specialised at generation time).
    lsb, guard, sticky, sign : bool array, bool tensor or 1-bit Amaranth value
        The rounding inputs; all of one kind (numpy, torch or Amaranth), broadcastable together.
    sr_carry : same kind, optional
        Stochastic rounding only: the carry out of ``top_k(residual) + random`` (``k = sr_bits``),
        which rounds up with probability equal to the residual (to ``k`` bits of resolution).

    Returns
    -------
    The same kind as the inputs: true where the magnitude is incremented.

    Raises
    ------
    ValueError
        For stochastic rounding without ``sr_carry``.
    """
    inexact = guard | sticky
    if mode is Rounding.RNE:  # ties (guard, no sticky) go to the even neighbour
        return guard & (sticky | lsb)
    if mode is Rounding.RNA:  # ties away from zero: the guard bit alone decides
        return guard
    if mode is Rounding.RTZ:  # never; written as a false of the inputs' own kind
        return guard & ~guard
    if mode is Rounding.RUP:  # toward +inf: only a positive inexact magnitude grows
        return inexact & ~sign
    if mode is Rounding.RDN:  # toward -inf: only a negative inexact magnitude grows
        return inexact & sign
    if mode is Rounding.ROD:  # von Neumann jamming as an increment (cvfpu fpnew_rounding.sv)
        return ~lsb & inexact
    if mode is Rounding.SR:
        if sr_carry is None:
            raise ValueError("stochastic rounding needs sr_carry (the carry of residual + random bits)")
        return sr_carry
    raise AssertionError(mode)  # pragma: no cover - Rounding is closed


def exact_zero_sign(mode: Rounding, *, both_zero, sp, sc):
    """Sign of an exact zero sum ``p + c`` (IEEE 754-2019 section 6.3), before any format policy.

    Two zero terms give ``-0`` only when both are ``-0`` (under ``rdn``: when either is); an exact
    zero from cancelling non-zero terms is ``+0`` (under ``rdn``: ``-0``). A format without
    negative zero (``fnuz``) then drops the sign; that is the caller's format rule, not this one.

    Parameters
    ----------
    mode : Rounding
        The rounding mode of the addition.
    both_zero, sp, sc : bool array, bool tensor or 1-bit Amaranth value
        Whether both terms are zeros, and the sign of each term.

    Returns
    -------
    The same kind as the inputs: true for ``-0``.
    """
    if isinstance(both_zero, bool):  # Python's ~True is -2: lift plain bools to numpy's bool
        import numpy as np

        both_zero, sp, sc = np.bool_(both_zero), np.bool_(sp), np.bool_(sc)
    if mode is Rounding.RDN:
        return (both_zero & (sp | sc)) | ~both_zero
    return both_zero & sp & sc


# The truth tables below hand the two rules to the C kernel, which looks decisions up instead of
# re-deriving them. Index bits of round_table: guard (bit 0), lsb (1), sticky (2), sign (3),
# sr_carry (4) -- guard and lsb first because they are adjacent bits of a bit pattern (lsb just
# above guard), so the C code gets both with one shift and one mask.
def round_table(mode: Rounding) -> int:
    """32-bit truth table of :func:`round_up` for ``mode``: bit ``i`` is the decision for index ``i``.

    Index ``i = guard | lsb << 1 | sticky << 2 | sign << 3 | sr_carry << 4``.
    """
    import numpy as np

    i = np.arange(32)
    bit = lambda n: ((i >> n) & 1).astype(bool)  # noqa: E731
    up = round_up(mode, guard=bit(0), lsb=bit(1), sticky=bit(2), sign=bit(3),
                  sr_carry=bit(4) if mode is Rounding.SR else None)
    up = np.broadcast_to(up, i.shape)
    return int(sum(1 << int(n) for n in np.nonzero(up)[0]))


def zero_sign_table(mode: Rounding, has_neg_zero: bool = True) -> int:
    """8-bit truth table of :func:`exact_zero_sign` (and the format's ``-0``): index ``both_zero |
    sp << 1 | sc << 2``."""
    import numpy as np

    i = np.arange(8)
    bit = lambda n: ((i >> n) & 1).astype(bool)  # noqa: E731
    neg = exact_zero_sign(mode, both_zero=bit(0), sp=bit(1), sc=bit(2)) & has_neg_zero
    return int(sum(1 << int(n) for n in np.nonzero(neg)[0]))
