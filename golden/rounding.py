"""Rounding modes, named once and shared by the golden model, the RTL generators and the reports.

The integer codes follow RISC-V ``frm`` (RNE=0, RTZ=1, RDN=2, RUP=3, RMM=4) so that a generated
unit's rounding-mode constant means the same thing as in any RISC-V FPU; psum adds round-to-odd (5)
and stochastic rounding (6), which ``frm`` does not have.
"""

from __future__ import annotations

import enum

__all__ = ["Rounding", "parse_rounding", "ROUNDING_HELP"]


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
