"""Number formats: the one place where a format's parameters are declared.

A :class:`FloatFormat` is ``(exp_bits, man_bits)`` plus an explicit bias, a subnormal policy and a
special-value policy, because "FP8" means three different things across cvfpu, ml_dtypes and
QPyTorch. ``man_bits`` excludes the hidden bit (as cvfpu and QPyTorch). Everything else -- width,
precision, exponent range, largest and smallest values, the codes of NaN and infinity -- is a derived
property, so no other module recomputes it.

Special-value policies (``specials=``):

``"ieee"``
    IEEE 754: the all-ones exponent holds +-inf (mantissa 0) and NaN (mantissa != 0).
``"fn"``
    OCP FP8 E4M3 style: no infinities; NaN only where exponent *and* mantissa are all ones, so the
    all-ones exponent otherwise holds finite values (E4M3: max 448).
``"fnuz"``
    ml_dtypes ``*fnuz`` / Graphcore style: no infinities, no negative zero, one NaN at the code
    ``1000...0``; the default bias is one larger than IEEE's (E4M3FNUZ: bias 8, max 240).
``"fin"``
    every code is a finite number, no inf and no NaN (OCP FP6 / FP4 MX element types).
``"p3109"``
    IEEE P3109 (interim report, binary8p<P>): no negative zero, one NaN at the code ``1000...0``,
    +-inf at the all-ones magnitude (``0x7f`` / ``0xff``), every other code finite; the default
    bias is ``2**(E-1)`` as for ``fnuz``. ``binary8p<P>`` (P = 1..7) is ``e<8-P>m<P-1>p3109``.

Scale formats: ``e8m0`` (:class:`Pow2Format`, OCP MX v1.0 section 5.4) is an unsigned power of two,
no sign, no mantissa, no zero: code ``c`` is ``2**(c-127)`` and ``0xff`` is NaN.

Text form (``FloatFormat.parse`` / ``str``): ``e<E>m<M>[fn|fnuz|fin][_ftz][_b<bias>]`` or one of
the names in :data:`NAMED`; integers are ``int<N>`` (two's complement) or ``uint<N>``; fixed
point is ``q<I>.<F>`` (:class:`FixedFormat`: two's complement, I integer bits counting the sign, F
fraction bits; ``q8.24`` holds ``k * 2**-24`` for ``-2**31 <= k < 2**31``).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Union

import numpy as np

from psum._util import check_int

from .rounding import Rounding, parse_rounding

__all__ = [
    "FloatFormat",
    "IntFormat",
    "FixedFormat",
    "Pow2Format",
    "Format",
    "NAMED",
    "SPECIALS",
    "parse_format",
    "FORMAT_HELP",
    "DTYPE_ALIASES",
    "E4M3_NOTE",
]

SPECIALS = ("ieee", "fn", "fnuz", "fin", "p3109")

FORMAT_HELP = (
    "a name from `psum formats` (fp32, bf16, fp8_e4m3, ...), "
    "e<E>m<M>[fn|fnuz|fin|p3109][_ftz][_b<bias>], binary8p<P> (IEEE P3109, P=1..7), e8m0, "
    "int<N>, uint<N> or q<I>.<F> (fixed point)"
)

# The widest float that decodes exactly into a float64 and whose exact products fit psum's
# integer datapaths is fp64 itself; wider exponent fields would overflow float64 decoding.
_MAX_EXP_BITS = 11
_MAX_MAN_BITS = 52
_MAX_INT_BITS = 64
# float64's smallest subnormal and largest binade: every code of a float format lies in between.
_F64_MIN_EXP, _F64_MAX_EXP = -1074, 1023


def _default_bias(exp_bits: int, specials: str) -> int:
    """IEEE's ``2**(E-1) - 1``; one larger for ``fnuz`` (no negative zero, ml_dtypes' convention)
    and ``p3109`` (the P3109 interim report's bias ``2**(K-P-1)``)."""
    half = 1 << (exp_bits - 1)
    return half if specials in ("fnuz", "p3109") else half - 1


@dataclasses.dataclass(frozen=True)
class FloatFormat:
    """A binary floating-point format.

    Parameters
    ----------
    exp_bits : int
        Exponent field width, 1..11 (2..11 for ``specials="ieee"``).
    man_bits : int
        Stored mantissa bits, without the hidden bit, 0..52.
    bias : int, optional
        Exponent bias; default ``2**(exp_bits-1) - 1`` (``2**(exp_bits-1)`` for ``"fnuz"``).
    subnormals : bool
        ``False`` flushes subnormal results to zero and reads subnormal codes as zero
        (FTZ + DAZ). A result is flushed when its magnitude, rounded with an unbounded exponent,
        is below the smallest normal; the zero keeps the result's sign.
    specials : str
        One of ``"ieee"``, ``"fn"``, ``"fnuz"``, ``"fin"`` (see the module docstring).

    Raises
    ------
    ValueError
        If a parameter is out of range, with the exact reason.
    """

    exp_bits: int
    man_bits: int
    bias: int = None  # type: ignore[assignment]  # filled in by __post_init__
    subnormals: bool = True
    specials: str = "ieee"

    def __post_init__(self):
        if self.specials not in SPECIALS:
            raise ValueError(
                f"special-value policy must be one of {', '.join(SPECIALS)}, not {self.specials!r}"
            )
        check_int("exponent bits", self.exp_bits, 2 if self.specials == "ieee" else 1, _MAX_EXP_BITS)
        check_int("mantissa bits", self.man_bits, 1 if self.specials == "ieee" else 0, _MAX_MAN_BITS)
        if self.specials == "fn" and self.exp_bits + self.man_bits < 2:
            raise ValueError("an fn format needs at least 2 exponent+mantissa bits")
        if not isinstance(self.subnormals, bool):
            raise ValueError(f"subnormals must be True or False, not {self.subnormals!r}")
        if self.bias is None:
            object.__setattr__(self, "bias", _default_bias(self.exp_bits, self.specials))
        check_int("bias", self.bias, -(1 << 12), 1 << 12)
        if self.emax < self.emin:
            raise ValueError(f"format {self} has no normal numbers")
        # Why: decode returns float64 and the fast paths rely on every code being a float64
        # (module docstring of psum.golden._vector); e5m10_b4000 decoded 0x3c00 as 0.0 before.
        lo, hi = self.emin - self.man_bits, self.emax
        if lo < _F64_MIN_EXP or hi > _F64_MAX_EXP:
            raise ValueError(f"values must fit float64 (bit exponents {_F64_MIN_EXP} .. {_F64_MAX_EXP}); "
                             f"this format spans {lo} .. {hi}")

    # -- derived properties --------------------------------------------------------------------
    @property
    def width(self) -> int:
        """Total bits: sign + exponent + mantissa."""
        return 1 + self.exp_bits + self.man_bits

    @property
    def precision(self) -> int:
        """Significand bits including the hidden bit."""
        return self.man_bits + 1

    @property
    def is_float(self) -> bool:
        return True

    @property
    def max_exp_field(self) -> int:
        """Largest exponent field that holds finite numbers."""
        all_ones = (1 << self.exp_bits) - 1
        return all_ones - 1 if self.specials == "ieee" else all_ones

    @property
    def emin(self) -> int:
        """Unbiased exponent of the smallest normal number."""
        return 1 - self.bias

    @property
    def emax(self) -> int:
        """Unbiased exponent of the largest finite number."""
        return self.max_exp_field - self.bias

    @property
    def max_code(self) -> int:
        """Magnitude code (bits without the sign) of the largest finite number."""
        top = self.max_exp_field << self.man_bits
        if self.specials in ("fn", "p3109"):  # the all-ones magnitude is NaN (fn) or inf (p3109)
            return top + (1 << self.man_bits) - 2
        return top + (1 << self.man_bits) - 1

    @property
    def max_value(self) -> float:
        """Largest finite value."""
        return float(self.decode(np.uint64(self.max_code)))

    @property
    def min_normal(self) -> float:
        """Smallest positive normal value."""
        return float(np.ldexp(1.0, self.emin))

    @property
    def min_subnormal(self) -> float:
        """Smallest positive value (the smallest normal when subnormals are off)."""
        if not self.subnormals or self.man_bits == 0:
            return self.min_normal
        return float(np.ldexp(1.0, self.emin - self.man_bits))

    @property
    def has_inf(self) -> bool:
        return self.specials in ("ieee", "p3109")

    @property
    def has_nan(self) -> bool:
        return self.specials != "fin"

    @property
    def has_neg_zero(self) -> bool:
        return self.specials not in ("fnuz", "p3109")

    @property
    def sign_bit(self) -> int:
        return 1 << (self.exp_bits + self.man_bits)

    @property
    def inf_code(self) -> int | None:
        """Code of +inf, or ``None`` if the format has none."""
        if self.specials == "p3109":  # the all-ones magnitude (0x7f of binary8p<P>)
            return (1 << (self.exp_bits + self.man_bits)) - 1
        return ((1 << self.exp_bits) - 1) << self.man_bits if self.has_inf else None

    @property
    def nan_code(self) -> int | None:
        """Canonical NaN code that psum produces, or ``None`` if the format has none."""
        if self.specials == "ieee":  # quiet NaN, positive, top mantissa bit set
            return (((1 << self.exp_bits) - 1) << self.man_bits) | (1 << (self.man_bits - 1))
        if self.specials == "fn":
            return (1 << (self.exp_bits + self.man_bits)) - 1
        if self.specials in ("fnuz", "p3109"):
            return self.sign_bit
        return None

    def overflow_codes(self, rounding: "Rounding | str" = "rne", saturate: bool = False) -> tuple[int, int]:
        """Codes of a positive and a negative overflow: the one overflow table of every engine.

        A result overflows when its magnitude, rounded with an unbounded exponent, exceeds the
        largest finite number. It becomes the largest finite number when ``saturate``, when the
        format has no inf and no NaN (``fin``), or when the rounding mode would not round a
        magnitude beyond the largest finite one *up* for that sign (IEEE 754 section 7.4: rtz,
        rod, rup of a negative, rdn of a positive -- read off :func:`psum.golden.rounding.round_up`
        with every dropped bit set); otherwise +-inf (``ieee``) or the canonical NaN (``fn``,
        ``fnuz``). Computed once per (format, rounding, saturation) and consumed by golden, the
        torch and C kernels and the RTL; the Fraction reference keeps its own rule on purpose.

        Parameters
        ----------
        rounding : Rounding or str
            Rounding mode of the result.
        saturate : bool
            The spec's ``overflow=sat``.

        Returns
        -------
        (int, int)
            Full codes (sign bit included) for a positive and for a negative overflow.
        """
        from .rounding import round_up

        mode = parse_rounding(rounding)
        codes = []
        for sign in (False, True):
            t = np.bool_(True)
            grows = bool(round_up(mode, lsb=t, guard=t, sticky=t, sign=np.bool_(sign), sr_carry=t))
            neg = self.sign_bit if sign else 0
            if saturate or self.specials == "fin" or not grows:
                codes.append(self.max_code | neg)
            elif self.has_inf:
                codes.append(self.inf_code | neg)
            else:
                codes.append(self.nan_code)
        return codes[0], codes[1]

    @property
    def tag(self) -> str:
        """Identifier-safe canonical text, used in module names (``e4m3fn``, ``e5m10``)."""
        text = f"e{self.exp_bits}m{self.man_bits}"
        if self.specials != "ieee":
            text += self.specials
        if not self.subnormals:
            text += "_ftz"
        default = FloatFormat(self.exp_bits, self.man_bits, specials=self.specials).bias
        if self.bias != default:
            text += f"_b{self.bias}" if self.bias >= 0 else f"_bn{-self.bias}"
        return text

    def __str__(self) -> str:
        return _NAME_OF.get(self, self.tag)

    def replace(self, **changes) -> "FloatFormat":
        """A copy with some fields changed, validated like the constructor.

        Build candidates from a format object, never from its text: ``fmt.replace(man_bits=4)``.
        A bias that is the default of this format follows the new ``exp_bits``/``specials`` (so
        ``fp16.replace(exp_bits=6)`` is ``e6m10``, bias 31); an explicit non-default bias is kept
        unless ``bias`` is given.

        Parameters
        ----------
        **changes
            Any of ``exp_bits``, ``man_bits``, ``bias``, ``subnormals``, ``specials``.

        Returns
        -------
        FloatFormat

        Raises
        ------
        ValueError
            A changed field out of range (the constructor's message).
        TypeError
            An unknown field name.
        """
        if "bias" not in changes and self.bias == _default_bias(self.exp_bits, self.specials):
            changes["bias"] = None
        return dataclasses.replace(self, **changes)

    # -- parsing -------------------------------------------------------------------------------
    @staticmethod
    def parse(text: str) -> "FloatFormat":
        """Parse a float format name or ``e<E>m<M>...`` text; see :func:`parse_format`."""
        fmt = parse_format(text)
        if not isinstance(fmt, FloatFormat):
            kind = "a fixed-point" if isinstance(fmt, FixedFormat) else "an integer"
            raise ValueError(f"{text!r} is {kind} format, not a float format")
        return fmt

    # -- conversions ---------------------------------------------------------------------------
    def encode(self, values, rounding: "Rounding | str" = "rne", *, saturate: bool = False,
               sr_bits: int = 0, seed: int | None = None, rand=None) -> np.ndarray:
        """Round real values to this format and return their bit patterns as ``uint64``.

        Parameters
        ----------
        values : array_like or torch.Tensor
            Real values (converted exactly to float64; inf and NaN allowed).
        rounding : Rounding or str
            Rounding mode (``rne``, ``rtz``, ``rup``, ``rdn``, ``rna``, ``rod``, ``sr``).
        saturate : bool
            Overflow to the largest finite value instead of inf/NaN.
        sr_bits, seed, rand
            For ``sr``: number of random bits, and either a seed or an explicit array of random
            integers in ``[0, 2**sr_bits)``, one per value (reproducible either way).

        Returns
        -------
        numpy.ndarray of uint64
        """
        from ._vector import encode_float

        return encode_float(self, values, parse_rounding(rounding), saturate=saturate,
                            sr_bits=sr_bits, seed=seed, rand=rand)

    def decode(self, bits) -> np.ndarray:
        """Return the float64 values of bit patterns (exact: every code of every format fits)."""
        from ._vector import decode_float

        return decode_float(self, bits)

    def fields(self, code: int) -> tuple[int, int, int]:
        """Split one bit pattern into its ``(sign, exponent field, mantissa field)`` integers.

        The exponent field is biased (``self.bias``), the mantissa field excludes the hidden bit,
        as stored in the code: ``code == sign << (width-1) | exp << man_bits | man``.

        Raises
        ------
        ValueError
            ``code`` is not a code of this format (``0 .. 2**width - 1``).
        """
        code = int(code)
        if not 0 <= code < 1 << self.width:
            raise ValueError(f"code of {self} must be an integer between 0 and {(1 << self.width) - 1}, not {code}")
        return (code >> (self.width - 1), (code >> self.man_bits) & ((1 << self.exp_bits) - 1),
                code & ((1 << self.man_bits) - 1))


class _TwosComplementRange:
    """The integer range of a stored integer code: the one definition :class:`IntFormat` and
    :class:`FixedFormat` share.

    A subclass provides ``bits`` (the stored integer's width) and ``signed``; this base derives
    ``width``, ``precision``, ``min_int`` and ``max_int`` from them, so a fixed-point code wraps
    and saturates exactly like an ``int<I+F>`` code because both read the same two properties. It
    is a plain mixin, not a format: ``isinstance(fixed, IntFormat)`` stays ``False`` (the engines
    tell integers and fixed point apart with it).
    """

    __slots__ = ()
    bits: int
    signed: bool

    @property
    def width(self) -> int:
        """Bits of a code: the stored integer's width."""
        return self.bits

    @property
    def is_float(self) -> bool:
        return False

    @property
    def precision(self) -> int:
        """Bits of the largest magnitude's stored integer (``int8``: 8, since ``|-128| = 2**7``)."""
        return self.bits

    @property
    def min_int(self) -> int:
        """Smallest stored integer: ``-2**(bits-1)`` (two's complement) or 0 (unsigned)."""
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max_int(self) -> int:
        """Largest stored integer: ``2**(bits-1) - 1`` (two's complement) or ``2**bits - 1``."""
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1


@dataclasses.dataclass(frozen=True)
class IntFormat(_TwosComplementRange):
    """A binary integer format: two's complement when signed.

    Parameters
    ----------
    bits : int
        Width, 1..64 (2..64 when signed).
    signed : bool
        Two's complement if ``True``, else unsigned.
    """

    bits: int
    signed: bool = True

    def __post_init__(self):
        check_int("integer width", self.bits, 2 if self.signed else 1, _MAX_INT_BITS)
        if not isinstance(self.signed, bool):
            raise ValueError(f"signed must be True or False, not {self.signed!r}")

    @property
    def max_value(self) -> float:
        return float(self.max_int)

    @property
    def tag(self) -> str:
        return f"{'int' if self.signed else 'uint'}{self.bits}"

    def __str__(self) -> str:
        return self.tag

    def replace(self, **changes) -> "IntFormat":
        """A copy with some fields changed (``bits``, ``signed``), validated like the constructor.

        Raises
        ------
        ValueError
            A changed field out of range (the constructor's message).
        TypeError
            An unknown field name.
        """
        return dataclasses.replace(self, **changes)

    @staticmethod
    def parse(text: str) -> "IntFormat":
        fmt = parse_format(text)
        if not isinstance(fmt, IntFormat):
            kind = "a fixed-point" if isinstance(fmt, FixedFormat) else "a float"
            raise ValueError(f"{text!r} is {kind} format, not an integer format")
        return fmt

    def encode(self, values, rounding: "Rounding | str" = "rne", *, saturate: bool = True,
               sr_bits: int = 0, seed: int | None = None, rand=None) -> np.ndarray:
        """Round real values to integers, then saturate (default) or wrap; return ``uint64`` codes."""
        from ._vector import encode_int

        return encode_int(self, values, parse_rounding(rounding), saturate=saturate,
                          sr_bits=sr_bits, seed=seed, rand=rand)

    def decode(self, bits) -> np.ndarray:
        """Return the float64 values of bit patterns: the exact integer rounded once to float64
        (exact up to 53-bit magnitudes; :func:`psum.golden._vector.int_values` gives Python ints).

        Raises
        ------
        ValueError
            A code outside ``0 .. 2**bits - 1`` (never masked silently).
        """
        from ._vector import decode_int

        return decode_int(self, bits)


@dataclasses.dataclass(frozen=True)
class FixedFormat(_TwosComplementRange):
    """A binary fixed-point format: two's complement, ``int_bits`` integer bits (counting the sign)
    and ``frac_bits`` fraction bits; text ``q<I>.<F>`` (ARM's / TI's Q notation with the sign
    counted in I, as in ``q1.15`` for Q15).

    A code is the two's complement integer ``k`` of ``I + F`` bits; its value is ``k * 2**-F``. So
    ``q8.24`` spans ``[-128, 128 - 2**-24]`` in steps of ``2**-24``. The stored integer's range is
    :attr:`min_int` .. :attr:`max_int` (the names the integer machinery reads: a fixed-point code
    wraps and saturates exactly like an ``int<I+F>`` code). There is no NaN, no infinity and one
    zero.

    Parameters
    ----------
    int_bits : int
        I, integer bits including the sign bit, 1..64.
    frac_bits : int
        F, fraction bits, 0..63; ``I + F`` between 2 and 64.

    Raises
    ------
    ValueError
        A field out of range (psum's one message shape, see :func:`psum._util.check_int`).
    TypeError
        A field that is not an integer.
    """

    int_bits: int
    frac_bits: int

    def __post_init__(self):
        check_int("fixed-point integer bits", self.int_bits, 1, _MAX_INT_BITS)
        check_int("fixed-point fraction bits", self.frac_bits, 0, _MAX_INT_BITS - 1)
        if not 2 <= self.int_bits + self.frac_bits <= _MAX_INT_BITS:
            raise ValueError(f"fixed-point width I+F must be between 2 and {_MAX_INT_BITS}, not "
                             f"{self.int_bits}+{self.frac_bits}")

    # -- derived properties (width, precision, min_int, max_int: _TwosComplementRange) -------------
    @property
    def bits(self) -> int:
        """Width of the stored two's complement integer, ``I + F`` (also :attr:`width`)."""
        return self.int_bits + self.frac_bits

    @property
    def signed(self) -> bool:
        """Always ``True``: psum's fixed-point formats are two's complement."""
        return True

    @property
    def lsb_exp(self) -> int:
        """Exponent of the lsb: a code ``k`` is the value ``k * 2**lsb_exp`` (``-F``)."""
        return -self.frac_bits

    @property
    def max_value(self) -> float:
        """Largest value ``2**(I-1) - 2**-F`` (rounded to float64 above 53 bits)."""
        return float(np.ldexp(float(self.max_int), self.lsb_exp))

    @property
    def min_value(self) -> float:
        """Most negative value ``-2**(I-1)``."""
        return float(np.ldexp(float(self.min_int), self.lsb_exp))

    @property
    def resolution(self) -> float:
        """Value of one lsb, ``2**-F``."""
        return float(np.ldexp(1.0, self.lsb_exp))

    @property
    def tag(self) -> str:
        """Identifier-safe text used in module names: ``q8_24``."""
        return f"q{self.int_bits}_{self.frac_bits}"

    def __str__(self) -> str:
        return f"q{self.int_bits}.{self.frac_bits}"

    def replace(self, **changes) -> "FixedFormat":
        """A copy with some fields changed (``int_bits``, ``frac_bits``), validated like the constructor.

        Raises
        ------
        ValueError
            A changed field out of range (the constructor's message).
        TypeError
            An unknown field name.
        """
        return dataclasses.replace(self, **changes)

    @staticmethod
    def parse(text: str) -> "FixedFormat":
        """Parse ``q<I>.<F>`` (or the tag ``q<I>_<F>``); see :func:`parse_format`."""
        fmt = parse_format(text)
        if not isinstance(fmt, FixedFormat):
            raise ValueError(f"{text!r} is not a fixed-point format q<I>.<F>")
        return fmt

    # -- conversions ---------------------------------------------------------------------------
    def encode(self, values, rounding: "Rounding | str" = "rne", *, saturate: bool = True,
               sr_bits: int = 0, seed: int | None = None, rand=None) -> np.ndarray:
        """Round real values to multiples of ``2**-F``, then saturate (default) or wrap.

        Parameters
        ----------
        values : array_like or torch.Tensor
            Real values (converted exactly to float64; +-inf saturate, NaN is refused).
        rounding : Rounding or str
            Rounding mode of the bits below the lsb (the rule book's ``round_up``).
        saturate : bool
            Clamp to ``[min_value, max_value]`` (default) instead of wrapping (two's complement).
        sr_bits, seed, rand
            Stochastic rounding, as :meth:`FloatFormat.encode`.

        Returns
        -------
        numpy.ndarray of uint64
            Codes: the stored integer's low ``I + F`` bits.

        Raises
        ------
        ValueError
            NaN, or an infinity with ``saturate=False``.
        """
        from ._vector import encode_fixed

        return encode_fixed(self, values, parse_rounding(rounding), saturate=saturate,
                            sr_bits=sr_bits, seed=seed, rand=rand)

    def decode(self, bits) -> np.ndarray:
        """Return the float64 values ``k * 2**-F`` of codes (exact up to ``I + F = 53``)."""
        from ._vector import decode_fixed

        return decode_fixed(self, bits)


@dataclasses.dataclass(frozen=True)
class Pow2Format:
    """An unsigned power-of-two scale format: OCP MX v1.0's E8M0 (section 5.4) and its kin.

    A code ``c`` of ``exp_bits`` bits is the value ``2**(c - bias)``; the all-ones code is NaN.
    There is no sign, no mantissa, no zero and no infinity. ``e8m0`` (``Pow2Format(8)``, bias
    127) spans ``2**-127`` (``0x00``) .. ``2**127`` (``0xfe``), ``0x7f`` is 1 and ``0xff`` NaN, as
    ml_dtypes' ``float8_e8m0fnu``. It is a scale format only: a MAC spec refuses it as operand or
    accumulator (a block format names it as its scale).

    Parameters
    ----------
    exp_bits : int
        Code width, 2..11.
    bias : int, optional
        Default ``2**(exp_bits-1) - 1`` (127 for 8 bits).

    Raises
    ------
    ValueError
        A parameter out of range.
    """

    exp_bits: int = 8
    bias: int = None  # type: ignore[assignment]

    def __post_init__(self):
        check_int("scale exponent bits", self.exp_bits, 2, _MAX_EXP_BITS)
        if self.bias is None:
            object.__setattr__(self, "bias", (1 << (self.exp_bits - 1)) - 1)
        check_int("bias", self.bias, -(1 << 12), 1 << 12)

    @property
    def width(self) -> int:
        return self.exp_bits

    @property
    def is_float(self) -> bool:
        return False

    @property
    def nan_code(self) -> int:
        """The one NaN: the all-ones code."""
        return (1 << self.exp_bits) - 1

    @property
    def emin(self) -> int:
        """Exponent of the smallest value (code 0)."""
        return -self.bias

    @property
    def emax(self) -> int:
        """Exponent of the largest value (the code below NaN)."""
        return self.nan_code - 1 - self.bias

    @property
    def max_value(self) -> float:
        return float(np.ldexp(1.0, self.emax))

    @property
    def min_value(self) -> float:
        return float(np.ldexp(1.0, self.emin))

    @property
    def tag(self) -> str:
        return f"e{self.exp_bits}m0" + ("" if self.bias == (1 << (self.exp_bits - 1)) - 1 else f"_b{self.bias}")

    def __str__(self) -> str:
        return _NAME_OF.get(self, self.tag)

    def encode(self, values, rounding: "Rounding | str" = "rne", *, saturate: bool = False,
               sr_bits: int = 0, seed=None, rand=None) -> np.ndarray:
        """Round positive values to powers of two and return their codes as ``uint64``.

        ``x = m * 2**e`` with ``1 <= m < 2`` keeps the exponent ``e`` and rounds ``m`` to 1 or 2
        with the rule book (:func:`psum.golden.rounding.round_up`: the guard bit is ``m >= 1.5``,
        the sticky bit ``m`` not in ``{1, 1.5}``, the lsb the code's last bit), so ``rne`` ties to
        the even code and ``rna`` ties up (ml_dtypes' ``float8_e8m0fnu`` conversion). Results above
        the largest value give NaN (``saturate``: the largest code); results below the smallest
        give code 0 (there is no zero to flush to). Zero, negative values and NaN give NaN (there
        is no sign and no zero; as ml_dtypes); +inf gives NaN, or the largest code when
        ``saturate``.

        Parameters
        ----------
        values : array_like
        rounding : Rounding or str
            Any mode but ``sr``.
        saturate : bool
        sr_bits, seed, rand
            Accepted for the common encode signature; stochastic rounding is refused.

        Returns
        -------
        numpy.ndarray of uint64

        Raises
        ------
        ValueError
            ``rounding="sr"``.
        """
        from ._vector import as_float64
        from .rounding import Rounding, round_up

        mode = parse_rounding(rounding)
        if mode is Rounding.SR:
            raise ValueError(f"scale format {self} takes no stochastic rounding")
        x = as_float64(values)
        ok = np.isfinite(x) & (x > 0)
        frac, e = np.frexp(np.where(ok, x, 1.0))  # x = frac * 2**e, 0.5 <= frac < 1: exact
        m = frac * 2.0  # 1 <= m < 2, exact
        code = e.astype(np.int64) - 1 + self.bias
        false = np.zeros(x.shape, dtype=bool)
        up = round_up(mode, lsb=(code & 1) == 1, guard=m >= 1.5, sticky=(m != 1.0) & (m != 1.5),
                      sign=false, sr_carry=None)
        code = code + up.astype(np.int64)
        over = code > self.nan_code - 1
        code = np.clip(code, 0, self.nan_code - 1)
        nan = ~ok | (over & (not saturate))
        if saturate:  # +inf saturates too; zero, negatives and NaN stay NaN
            nan = nan & ~(np.isposinf(x))
            code = np.where(np.isposinf(x), self.nan_code - 1, code)
        return np.where(nan, self.nan_code, code).astype(np.uint64)

    def decode(self, bits) -> np.ndarray:
        """float64 values ``2**(c - bias)`` of codes (exact), NaN for the all-ones code."""
        c = np.asarray(bits, dtype=np.uint64).astype(np.int64)
        v = np.ldexp(1.0, (c - self.bias).astype(np.int32))
        return np.where(c == self.nan_code, np.nan, v)


Format = Union[FloatFormat, IntFormat, FixedFormat, Pow2Format]

NAMED: dict[str, Format] = {
    "fp64": FloatFormat(11, 52),
    "fp32": FloatFormat(8, 23),
    "tf32": FloatFormat(8, 10),
    "fp16": FloatFormat(5, 10),
    "bf16": FloatFormat(8, 7),
    "fp8_e4m3": FloatFormat(4, 3, specials="fn"),
    "fp8_e5m2": FloatFormat(5, 2),
    "fp8_e4m3fnuz": FloatFormat(4, 3, specials="fnuz"),
    "fp8_e5m2fnuz": FloatFormat(5, 2, specials="fnuz"),
    "fp6_e3m2": FloatFormat(3, 2, specials="fin"),
    "fp6_e2m3": FloatFormat(2, 3, specials="fin"),
    "fp4_e2m1": FloatFormat(2, 1, specials="fin"),
    # IEEE P3109 interim report: binary8p<P>, K = 8 bits, precision P (P-1 stored mantissa bits)
    **{f"binary8p{p}": FloatFormat(8 - p, p - 1, specials="p3109") for p in range(1, 8)},
    "e8m0": Pow2Format(8),  # OCP MX v1.0 shared scale
}
_NAME_OF = {fmt: name for name, fmt in NAMED.items()}

# The dtype names of ml_dtypes, numpy and torch (``torch.`` prefix dropped before the lookup), each
# the psum text of the same format. Why a table and not a rule: the suffixes mean different
# things across projects (ml_dtypes' ``float6_e3m2fn`` has neither inf nor NaN, which psum calls
# ``fin``; its ``float8_e4m3`` is the IEEE-like e4m3, max 240, not OCP's fp8_e4m3, max 448).
# Each entry's range is checked against ml_dtypes.finfo in tests/test_cli_consistency.py.
DTYPE_ALIASES: dict[str, str] = {
    "float64": "fp64", "double": "fp64",
    "float32": "fp32",  # not bare "float": torch's float is float32, Python's and numpy's float64
    "float16": "fp16", "half": "fp16",
    "bfloat16": "bf16",
    "float8_e4m3fn": "fp8_e4m3",
    "float8_e4m3fnuz": "fp8_e4m3fnuz",
    "float8_e5m2": "fp8_e5m2",
    "float8_e5m2fnuz": "fp8_e5m2fnuz",
    "float8_e4m3": "e4m3",
    "float8_e3m4": "e3m4",
    "float8_e4m3b11fnuz": "e4m3fnuz_b11",
    "float6_e3m2fn": "fp6_e3m2",
    "float6_e2m3fn": "fp6_e2m3",
    "float4_e2m1fn": "fp4_e2m1",
}  # int8, uint4, ... are psum's own spellings already

# Where a user meets e4m3 (``psum formats``, format errors, docs): the two 8-bit e4m3 formats differ.
E4M3_NOTE = ("e4m3 is IEEE-like (inf and NaN, max 240, ml_dtypes float8_e4m3); fp8_e4m3 = e4m3fn is OCP FP8 "
             "(no inf, max 448, ml_dtypes/torch float8_e4m3fn)")

# [0-9], not \d: \d also matches other scripts' digits ("e٥m2"), which int() would accept silently.
_FLOAT_RE = re.compile(r"e(-?[0-9]+)m(-?[0-9]+)(fnuz|fn|fin|p3109)?((?:_ftz|_bn?[0-9]+)*)")
_INT_RE = re.compile(r"(u?)int(-?[0-9]+)")
_FIXED_RE = re.compile(r"q(-?[0-9]+)[._](-?[0-9]+)")


def parse_format(text) -> Format:
    """Parse a format from its text form.

    Accepts the names in :data:`NAMED`, ``e<E>m<M>`` (IEEE-like) with an optional policy suffix
    ``fn`` / ``fnuz`` / ``fin`` and modifiers ``_ftz`` (flush to zero) and ``_b<bias>``
    (``_bn<bias>`` for a negative bias), ``int<N>`` / ``uint<N>``, and fixed point ``q<I>.<F>``
    (also its tag ``q<I>_<F>``), and the dtype names of ml_dtypes, numpy and torch
    (:data:`DTYPE_ALIASES`: ``float8_e4m3fn``, ``torch.float8_e4m3fn``, ``bfloat16``, ...). A
    format object is returned unchanged.

    Raises
    ------
    ValueError
        One line saying what is wrong and what is accepted.
    """
    if isinstance(text, (FloatFormat, IntFormat, FixedFormat, Pow2Format)):
        return text
    if not isinstance(text, str):
        raise ValueError(f"format must be text such as 'fp16' or 'e5m10', not {text!r}")
    key = text.strip().lower()
    if key.startswith(("torch.", "np.", "numpy.", "ml_dtypes.")):  # torch.float8_e4m3fn, np.float16
        key = key.split(".", 1)[1]
    key = DTYPE_ALIASES.get(key, key)
    if key in NAMED:
        return NAMED[key]
    m = _FLOAT_RE.fullmatch(key)
    if m:
        exp_bits, man_bits = int(m.group(1)), int(m.group(2))
        specials = m.group(3) or "ieee"
        subnormals, bias = True, None
        mods = re.findall(r"_ftz|_bn?[0-9]+", m.group(4) or "")
        if len({mod[:2] for mod in mods}) != len(mods):  # e5m10_b3_b4, _ftz_ftz: which one was meant?
            raise ValueError(f"format {text!r}: each modifier (_ftz, _b<bias>) may appear once")
        for mod in mods:
            if mod == "_ftz":
                subnormals = False
            else:
                bias = -int(mod[3:]) if mod.startswith("_bn") else int(mod[2:])
        try:
            return FloatFormat(exp_bits, man_bits, bias=bias, subnormals=subnormals, specials=specials)
        except ValueError as exc:
            raise ValueError(f"format {text!r}: {exc}") from None
    m = _INT_RE.fullmatch(key)
    if m:
        try:
            return IntFormat(int(m.group(2)), signed=not m.group(1))
        except ValueError as exc:
            raise ValueError(f"format {text!r}: {exc}") from None
    m = _FIXED_RE.fullmatch(key)
    if m:
        try:
            return FixedFormat(int(m.group(1)), int(m.group(2)))
        except ValueError as exc:
            raise ValueError(f"format {text!r}: {exc}") from None
    hint = f"; note: {E4M3_NOTE}" if "e4m3" in key else ""
    raise ValueError(f"unknown format {text!r}; use {FORMAT_HELP}{hint}")
