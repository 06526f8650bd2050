"""Vectorised (numpy int64) encode, decode, unpack and the one shared rounder.

Every value here is carried exactly as ``(-1)**sign * mag * 2**exp`` with ``mag`` a non-negative
int64 below ``2**61``; no host floating-point arithmetic touches a value except

* ``np.frexp`` on a float64 input, which is exact (it only splits the bits), and
* ``np.ldexp`` when decoding, which is exact because every code of every psum format is a float64
  (at most 53 significand bits, exponents inside float64's range).

The slow reference in :mod:`psum.golden.reference` is the specification; these functions are
tested against it.
"""

from __future__ import annotations

import numpy as np

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: formats imports this module for its encode/decode
    from .formats import FixedFormat, FloatFormat, IntFormat
from .rounding import Rounding, round_up

__all__ = [
    "as_float64",
    "bit_length",
    "round_to_ulp",
    "round_float",
    "encode_float",
    "decode_float",
    "unpack_float",
    "unpack",
    "encode_int",
    "decode_int",
    "encode_fixed",
    "decode_fixed",
    "unpack_int",
    "int_values",
    "check_codes",
    "draw_random",
    "ZERO",
    "FINITE",
    "INF",
    "NAN",
]

# Operand classes returned by the unpack functions.
ZERO, FINITE, INF, NAN = 0, 1, 2, 3

_I64 = np.int64


def _integer_array(values):
    """``values`` as a numpy integer array when they are integer-typed (numpy or torch), else None."""
    if hasattr(values, "detach"):  # torch tensor, without importing torch here
        if values.dtype.is_floating_point or values.dtype.is_complex or str(values.dtype) == "torch.bool":
            return None
        return values.detach().cpu().numpy()
    if isinstance(values, float):
        return None
    arr = np.asarray(values) if not isinstance(values, np.ndarray) else values
    return arr if arr.dtype.kind in "iu" else None


def as_float64(values) -> np.ndarray:
    """numpy float64 array from array_like or a torch tensor (exact for every torch float dtype).

    Raises
    ------
    ValueError
        Integer-typed values of magnitude above ``2**53``: float64 would round them silently.
    """
    ints = _integer_array(values)
    if ints is not None and ints.size and (ints.max() > 1 << 53 or (ints.dtype.kind == "i" and ints.min() < -(1 << 53))):
        raise ValueError("integer values beyond 2**53 in magnitude do not convert to float64 exactly; "
                         "encode them into an integer or fixed-point format")
    if hasattr(values, "detach"):  # torch tensor, without importing torch here
        values = values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64)


def bit_length(x: np.ndarray) -> np.ndarray:
    """Vectorised ``int.bit_length`` for non-negative int64 below 2**62."""
    # float64(x) may round up to the next power of two; the shift test below corrects that.
    n = np.frexp(x.astype(np.float64))[1].astype(_I64)
    n = np.where(x == 0, 0, n)
    return n - ((n > 0) & ((x >> np.maximum(n - 1, 0)) == 0))


def _shr(x, s):
    """x >> s for 0 <= x < 2**62 and any s >= 0 (numpy leaves s >= 64 undefined)."""
    return x >> np.minimum(s, 62)


def draw_random(shape, sr_bits: int, seed=None, rand=None) -> np.ndarray:
    """Random integers in ``[0, 2**sr_bits)`` for stochastic rounding: ``rand`` or drawn from ``seed``."""
    if not 1 <= sr_bits <= 32:
        raise ValueError(f"stochastic rounding needs sr_bits between 1 and 32, not {sr_bits!r}")
    if rand is not None:
        rand = np.broadcast_to(np.asarray(rand, dtype=_I64), shape)
        if rand.size and (rand.min() < 0 or rand.max() >= (1 << sr_bits)):
            raise ValueError(f"random values for stochastic rounding must lie in [0, 2**{sr_bits})")
        return rand
    if seed is None:
        raise ValueError("stochastic rounding needs a seed or explicit random bits (rand=...)")
    gen = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return gen.integers(0, 1 << sr_bits, size=shape, dtype=_I64)


# ---------------------------------------------------------------------------------------------
# The rounder: one place that turns an exact (sign, mag, exp) into a multiple of 2**ulp.
# ---------------------------------------------------------------------------------------------
def _round_to_ulp(sign, mag, exp, ulp, rounding: Rounding, rand=None, sr_bits: int = 0, parity=None):
    """:func:`round_to_ulp` and its inexact flag: ``(q, inexact)``.

    ``parity`` (optional) is added to ``q`` before its last bit is read as the lsb: a format
    without stored mantissa bits has its code's lsb in the exponent field, not in ``q``.
    """
    shift = ulp - exp
    drop = np.clip(shift, 0, None)
    # Dropping more than n+1 bits (n = bit length of mag) leaves q = 0 with a residual in
    # (0, 1/2) ulp; clamping keeps the guard bit 0 and the sticky bits non-zero, as they must be.
    drop_c = np.minimum(drop, bit_length(mag) + 1)
    q = np.where(shift <= 0, mag << np.clip(-shift, 0, 62), mag >> drop_c)
    rem = np.where(shift > 0, mag - (q << drop_c), 0)
    half = np.where(drop_c > 0, _I64(1) << np.maximum(drop_c - 1, 0), 0)
    guard = (drop_c > 0) & (rem >= half)
    sticky = (drop_c > 0) & ((rem & (half - 1)) != 0)
    carry = None
    if rounding is Rounding.SR:
        # The top sr_bits bits of the residual (truncated below) plus the random integer:
        # a carry out rounds up, so P(up) = residual (to sr_bits bits of resolution).
        k = sr_bits
        top = np.where(drop >= k, _shr(rem, np.maximum(drop - k, 0)), rem << np.clip(k - drop, 0, 62))
        carry = (top + rand) >= (1 << k)
    lsb = (q & 1) == 1 if parity is None else ((q + parity) & 1) == 1
    up = round_up(rounding, lsb=lsb, guard=guard, sticky=sticky, sign=np.asarray(sign, dtype=bool),
                  sr_carry=carry)
    return q + up, guard | sticky


def round_to_ulp(sign, mag, exp, ulp, rounding: Rounding, rand=None, sr_bits: int = 0):
    """Round ``mag * 2**exp`` to an integer multiple ``q`` of ``2**ulp`` (magnitudes, sign apart).

    Returns ``q`` (int64). ``ulp - exp`` bits are dropped; when it is <= 0 the value is exact and
    ``q = mag << (exp - ulp)`` (the caller keeps that in range). The increment decision is
    :func:`psum.golden.rounding.round_up`, the one shared by every engine.
    """
    return _round_to_ulp(sign, mag, exp, ulp, rounding, rand, sr_bits)[0]


def round_float(fmt: FloatFormat, sign, mag, exp, rounding: Rounding, *, saturate=False,
                rand=None, sr_bits: int = 0, flags: bool = False):
    """Round exact values ``(-1)**sign * mag * 2**exp`` (``mag`` < 2**61) to codes of ``fmt``.

    Overflow (the value rounded with an unbounded exponent exceeds the largest finite number)
    gives the codes of :meth:`psum.golden.FloatFormat.overflow_codes` for ``(rounding,
    saturate)``: the largest finite number or +-inf / the canonical NaN, by sign.

    Parameters
    ----------
    fmt : FloatFormat
        Target format.
    sign, mag, exp : array_like
        The exact values (broadcast together).
    rounding : Rounding
        Rounding mode.
    saturate : bool
        ``overflow=sat``.
    rand, sr_bits
        Stochastic rounding: random integers in ``[0, 2**sr_bits)``.
    flags : bool
        Also return the exception flags.

    Returns
    -------
    numpy.ndarray of uint64, or (codes, dict) when ``flags``
        The dict holds bool arrays ``overflow`` (as defined above), ``underflow`` (inexact and
        below the smallest normal magnitude: subnormal, zero or flushed) and ``inexact`` (the
        code's value differs from the exact one), HardFloat's / cvfpu's OF, UF and NX.
    """
    sign = np.asarray(sign, dtype=bool)
    mag = np.asarray(mag, dtype=_I64)
    exp = np.asarray(exp, dtype=_I64)
    sign, mag, exp = np.broadcast_arrays(sign, mag, exp)
    M = fmt.man_bits
    E = exp + bit_length(mag) - 1  # exponent of the leading one
    e_eff = np.maximum(E, fmt.emin) if fmt.subnormals else E
    # With no stored mantissa bits (binary8p1, e<E>m0fn) q is the hidden bit and the code's lsb is
    # the exponent field's: code = e_eff + bias + q - 1, so "even" means an even code (P3109).
    parity = (e_eff + fmt.bias - 1) if M == 0 else None
    q, inexact = _round_to_ulp(sign, mag, exp, e_eff - M, rounding, rand, sr_bits, parity)
    # Pack: a carry out of the significand (q = 2**(M+1), or a subnormal reaching 2**M) moves into
    # the exponent field by plain addition, so no renormalisation step is needed.
    code = ((e_eff + fmt.bias) << M) + q - (1 << M)
    code = np.where(mag == 0, 0, code)
    tiny = (mag != 0) & (code < (1 << M))
    if not fmt.subnormals:  # flush results whose rounded magnitude is below the smallest normal
        code = np.where(code < (1 << M), 0, code)
    over = code > fmt.max_code
    out = code.astype(np.uint64) | (sign.astype(np.uint64) << np.uint64(fmt.exp_bits + M))
    if not fmt.has_neg_zero:  # fnuz, p3109: no negative zero; the single NaN is 0x80..
        out = np.where(code == 0, np.uint64(0), out)
    if over.any():
        pos, neg = fmt.overflow_codes(rounding, saturate)
        out = np.where(over, np.where(sign, np.uint64(neg), np.uint64(pos)), out)
    if not flags:
        return out
    inexact = inexact | over
    if not fmt.subnormals:  # a flushed non-zero result is inexact too
        inexact = inexact | tiny
    return out, {"overflow": over, "underflow": tiny & inexact, "inexact": inexact}


# ---------------------------------------------------------------------------------------------
# Float formats
# ---------------------------------------------------------------------------------------------
def _split_float64(x: np.ndarray):
    """Exact (sign, mag, exp) of finite float64 values: x = (-1)**sign * mag * 2**exp."""
    sign = np.signbit(x)
    frac, e = np.frexp(np.abs(x))
    mag = (frac * 2.0**53).astype(_I64)  # exact: frac has at most 53 significant bits
    return sign, mag, e.astype(_I64) - 53


def encode_float(fmt: FloatFormat, values, rounding: Rounding, *, saturate=False, sr_bits=0,
                 seed=None, rand=None) -> np.ndarray:
    x = as_float64(values)
    finite = np.isfinite(x)
    sign, mag, exp = _split_float64(np.where(finite, x, 0.0))
    if rounding is Rounding.SR:
        rand = draw_random(x.shape, sr_bits, seed, rand)
    out = round_float(fmt, sign, mag, exp, rounding, saturate=saturate, rand=rand, sr_bits=sr_bits)
    if not finite.all():
        nan = np.isnan(x)
        if nan.any():
            if not fmt.has_nan:
                raise ValueError(f"cannot encode NaN: format {fmt} has no NaN")
            out = np.where(nan, np.uint64(fmt.nan_code), out)
        inf = np.isinf(x)
        if inf.any():
            if fmt.has_inf and not saturate:
                mag_code = fmt.inf_code
            elif fmt.has_nan and not saturate:
                mag_code = None  # no infinity: inf becomes NaN, as ml_dtypes does
            else:
                mag_code = fmt.max_code
            if mag_code is None:
                out = np.where(inf, np.uint64(fmt.nan_code), out)
            else:
                signed = np.uint64(mag_code) | (np.signbit(x).astype(np.uint64) << np.uint64(fmt.width - 1))
                out = np.where(inf, signed, out)
    return out


def unpack_float(fmt: FloatFormat, bits):
    """Split codes into ``(sign, mag, exp, cls)``: value = (-1)**sign * mag * 2**exp for finite.

    ``cls`` is ZERO, FINITE, INF or NAN. Subnormal codes of a flush-to-zero format read as zero.
    """
    bits = np.asarray(bits, dtype=np.uint64)
    M = fmt.man_bits
    sign = ((bits >> np.uint64(fmt.exp_bits + M)) & np.uint64(1)).astype(bool)
    ef = ((bits >> np.uint64(M)) & np.uint64((1 << fmt.exp_bits) - 1)).astype(_I64)
    mf = (bits & np.uint64((1 << M) - 1)).astype(_I64)
    sub = ef == 0
    mag = np.where(sub, mf, mf | (1 << M))
    exp = np.where(sub, fmt.emin, ef - fmt.bias) - M
    zero = sub & ((mf == 0) | (not fmt.subnormals))
    cls = np.where(zero, ZERO, FINITE).astype(np.int8)
    all_ones = ef == (1 << fmt.exp_bits) - 1
    if fmt.specials == "ieee":
        cls = np.where(all_ones, np.where(mf == 0, INF, NAN), cls).astype(np.int8)
    elif fmt.specials == "fn":
        cls = np.where(all_ones & (mf == (1 << M) - 1), NAN, cls).astype(np.int8)
    elif fmt.specials == "fnuz":
        cls = np.where(bits == np.uint64(fmt.sign_bit), NAN, cls).astype(np.int8)
    elif fmt.specials == "p3109":  # NaN at 1000..0, +-inf at the all-ones magnitude
        mag_bits = bits & np.uint64(fmt.sign_bit - 1)
        cls = np.where(mag_bits == np.uint64(fmt.inf_code), INF, cls).astype(np.int8)
        cls = np.where(bits == np.uint64(fmt.sign_bit), NAN, cls).astype(np.int8)
    mag = np.where(cls == ZERO, 0, mag)
    return sign, mag, exp, cls


def unpack(fmt, bits):
    """``(sign, mag, exp, cls)`` of codes of any format: :func:`unpack_float`, or for an integer
    format the exact value as ``(v < 0, |v|, 0, ZERO or FINITE)`` (integers enter the float
    datapaths as exact floats with exponent 0; a fixed-point code ``k`` as ``|k|`` with exponent
    ``-F``)."""
    if fmt.is_float:
        return unpack_float(fmt, bits)
    v = unpack_int(fmt, bits)
    exp = np.full_like(v, getattr(fmt, "lsb_exp", 0))  # 0 for int<N>, -F for q<I>.<F>
    return v < 0, np.abs(v), exp, np.where(v == 0, ZERO, FINITE).astype(np.int8)


def decode_float(fmt: FloatFormat, bits) -> np.ndarray:
    sign, mag, exp, cls = unpack_float(fmt, check_codes(fmt, bits))
    val = np.ldexp(mag.astype(np.float64), exp.astype(np.int32))  # exact (see module docstring)
    val = np.where(cls == INF, np.inf, val)
    val = np.where(cls == NAN, np.nan, val)
    return np.where(sign, -val, val)


# ---------------------------------------------------------------------------------------------
# Integer formats
# ---------------------------------------------------------------------------------------------
def unpack_int(fmt: IntFormat, bits) -> np.ndarray:
    """Integer values (int64) of codes of any signed width up to 64 or unsigned width up to 63.

    Why shifts instead of ``v - 2**bits``: ``2**63`` and ``2**64`` are not int64, so the sign is
    extended by moving the format's top bit to bit 63 and shifting back arithmetically (exact for
    every width 1..64). A ``uint64`` code of ``2**63`` or more has no int64 value and is refused
    (callers that need them use :func:`int_values`).
    """
    bits = check_codes(fmt, bits)
    if fmt.signed:
        up = np.uint64(64 - fmt.bits)
        return (bits << up).view(_I64) >> up.astype(_I64)
    if fmt.bits == 64 and bits.size and (bits >> np.uint64(63)).any():
        raise ValueError(f"{fmt} codes of 2**63 or more have no int64 value")
    return bits.astype(_I64)


def int_values(fmt, bits) -> np.ndarray:
    """Exact values of integer codes as Python ints (object array), any width up to 64.

    For fixed point the stored integer ``k`` (the value is ``k * 2**-F``).
    """
    bits = check_codes(fmt, bits)
    half = 1 << (fmt.bits - 1)
    out = np.empty(bits.shape, dtype=object)
    flat = out.reshape(-1)
    for i, c in enumerate(bits.reshape(-1).tolist()):
        flat[i] = c - (1 << fmt.bits) if fmt.signed and c >= half else c
    return out


def check_codes(fmt, bits, name: str = "code") -> np.ndarray:
    """``bits`` as uint64 after checking each is a code of ``fmt`` (``0 .. 2**width - 1``).

    Why: a wider code used to be masked silently (fp16 ``0x10000`` read as ``+0``), a negative one
    wrapped or raised numpy's OverflowError. Every decode and ``mac_step`` goes through here.

    Raises
    ------
    ValueError
        One line naming the format and the accepted range.
    """
    if isinstance(bits, (list, tuple)):  # numpy turns a list mixing ints >= 2**63 into float64
        arr = np.empty(len(bits), dtype=object)
        arr[:] = bits
    else:
        try:
            arr = np.asarray(bits)
        except (OverflowError, ValueError, TypeError):  # a Python int beyond 64 bits
            arr = np.asarray(bits, dtype=object)
    if arr.dtype.kind == "f":  # float codes: integral, finite and in range, checked vectorised
        bad = ~np.isfinite(arr) | (arr != np.floor(arr)) | (arr < 0) | (arr >= 2.0**fmt.width)
        if bad.any():
            raise ValueError(_code_range_msg(fmt, name, float(arr[bad].reshape(-1)[0])))
        return arr.astype(np.uint64)
    if arr.dtype.kind not in "uib":  # objects (Python ints of any size), strings: value by value
        flat = arr.reshape(-1).tolist()
        for v in flat:
            if isinstance(v, np.generic) or (isinstance(v, np.ndarray) and v.ndim == 0):
                v = v.item()  # numpy scalars inside a list
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 1 << fmt.width:
                raise ValueError(_code_range_msg(fmt, name, v))
        return np.asarray([int(np.asarray(v).item()) for v in flat], dtype=np.uint64).reshape(arr.shape)
    if arr.dtype.kind == "i" and arr.size and arr.min() < 0:
        raise ValueError(_code_range_msg(fmt, name, int(arr.min())))
    arr = arr.astype(np.uint64, copy=False)
    if fmt.width < 64 and arr.size and (arr >> np.uint64(fmt.width)).any():
        raise ValueError(_code_range_msg(fmt, name, int(arr.max())))
    return arr


def _code_range_msg(fmt, name, v) -> str:
    shown = (f"{v:#x}" if v >= 0 else str(v)) if isinstance(v, int) and not isinstance(v, bool) else repr(v)
    return f"{name} of {fmt} must be an integer between 0 and {(1 << fmt.width) - 1:#x}, not {shown}"


def int_to_code(fmt: IntFormat, v: np.ndarray) -> np.ndarray:
    """Two's complement codes (uint64) of in-range int64 values."""
    return (np.asarray(v, dtype=_I64).astype(np.uint64)) & np.uint64((1 << fmt.bits) - 1) \
        if fmt.bits < 64 else np.asarray(v, dtype=_I64).astype(np.uint64)


def fit_int(fmt: IntFormat, v: np.ndarray, saturate: bool) -> np.ndarray:
    """Saturate or wrap int64 values (any int64; |v| < 2**62 on the fast paths) into ``fmt``'s range.

    A ``uint64`` range does not fit int64: callers hand such formats Python ints instead
    (:func:`_fit_int_exact`).
    """
    if saturate:
        return np.clip(v, fmt.min_int, min(fmt.max_int, np.iinfo(_I64).max))
    if fmt.bits >= 64:
        return v
    if fmt.signed:  # keep the low bits and sign-extend by shifts (2**63 is not an int64)
        up = np.uint64(64 - fmt.bits)
        return (np.asarray(v, dtype=_I64).astype(np.uint64) << up).view(_I64) >> up.astype(_I64)
    return v & ((1 << fmt.bits) - 1)


def _fit_int_exact(fmt, v: int, saturate: bool) -> int:
    """Python-int twin of :func:`fit_int` for any width (wrap = the low bits, sign-extended)."""
    if saturate:
        return min(max(v, fmt.min_int), fmt.max_int)
    v &= (1 << fmt.bits) - 1
    return v - (1 << fmt.bits) if fmt.signed and v >> (fmt.bits - 1) else v


def _encode_integer(fmt, x: np.ndarray, lsb_exp: int, rounding: Rounding, saturate: bool, sr_bits, seed,
                    rand) -> np.ndarray:
    """Codes of float64 ``x`` rounded to multiples ``k * 2**lsb_exp``, ``k`` saturated or wrapped
    into ``fmt``'s stored integer (``int<N>``: ``lsb_exp = 0``; ``q<I>.<F>``: ``-F``). Any width.

    Stored integers below ``2**61`` in magnitude go through the shared int64 rounder. A larger
    ``|k|`` needs no rounding: ``x * 2**-lsb_exp`` is then an integer (a float64 of magnitude
    ``2**53`` or more has no fraction bits, and scaling by a power of two is exact), so ``k`` is
    formed exactly with Python ints and saturated or wrapped there. Before, such values were
    clamped at ``2**61`` first (``int64 4e18`` and ``q2.62 1.5`` came back wrong).
    """
    if np.isnan(x).any():
        raise ValueError(f"cannot encode NaN: {'fixed-point' if lsb_exp else 'integer'} format {fmt} has no NaN")
    if not saturate and np.isinf(x).any():
        raise ValueError(f"cannot wrap an infinite value into {fmt}")
    with np.errstate(over="ignore"):
        big = ~(np.abs(np.ldexp(x, -lsb_exp)) < 2.0**61)
    sign, mag, exp = _split_float64(np.where(big, 0.0, x))
    if rounding is Rounding.SR:
        rand = draw_random(x.shape, sr_bits, seed, rand)
    q = round_to_ulp(sign, mag, exp, np.full_like(exp, lsb_exp), rounding, rand, sr_bits)
    v = np.where(sign, -q, q)  # |v| < 2**61 where not big
    if fmt.bits <= 63:
        code = int_to_code(fmt, fit_int(fmt, v, saturate))
    elif saturate and not fmt.signed:  # uint64: negatives clamp to 0, the rest fit
        code = np.where(v < 0, 0, v).astype(np.uint64)
    else:  # 64-bit two's complement: int64 -> uint64 keeps the low 64 bits exactly
        code = v.astype(np.uint64)
    if big.any():
        flat, xs = code.reshape(-1), x.reshape(-1)
        mask = (1 << fmt.bits) - 1
        for i in np.flatnonzero(big.reshape(-1)):
            xi = float(xs[i])
            if np.isinf(xi):
                k = fmt.max_int if xi > 0 else fmt.min_int
            elif xi.is_integer():  # lsb_exp <= 0 (integers, fixed point)
                k = int(xi) << -lsb_exp
            else:  # a fraction below 2**52 scaled to 2**61 or more: the scaled value is an integer
                k = int(np.ldexp(xi, -lsb_exp))
            flat[i] = _fit_int_exact(fmt, k, saturate) & mask
    return code


def encode_int(fmt: IntFormat, values, rounding: Rounding, *, saturate=True, sr_bits=0,
               seed=None, rand=None) -> np.ndarray:
    """Codes of ``values`` rounded to integers, saturated or wrapped into ``fmt`` (any width up to
    64, exact: see :func:`_encode_integer`; ``int64 4e18`` is 4000000000000000000)."""
    ints = _integer_array(values)
    if ints is not None:
        return _encode_exact_ints(fmt, ints, 0, saturate)
    return _encode_integer(fmt, as_float64(values), 0, rounding, saturate, sr_bits, seed, rand)


def _encode_exact_ints(fmt, ints: np.ndarray, frac_bits: int, saturate: bool) -> np.ndarray:
    """Codes of integer-typed input (any int64/uint64 value, exact: no float64 on the way; an
    integer needs no rounding, even at ``2**-F`` resolution)."""
    if frac_bits == 0 and fmt.bits <= 63 and (ints.dtype.kind == "i" or not ints.size or ints.max() < 1 << 63):
        # vectorised: every int64 saturates (clip) or wraps (shifts) exactly in fit_int
        return int_to_code(fmt, fit_int(fmt, ints.astype(_I64), saturate))
    mask = (1 << fmt.bits) - 1
    flat = [_fit_int_exact(fmt, int(v) << frac_bits, saturate) & mask for v in ints.reshape(-1).tolist()]
    return np.asarray(flat, dtype=np.uint64).reshape(ints.shape)


def decode_int(fmt: IntFormat, bits) -> np.ndarray:
    """float64 values of codes: the exact integer, rounded once to float64 (exact below 2**53).

    Why not ``float(code) - 2**64``: that rounds the code first (int64 ``0x...c080`` became
    -16384 instead of -16256). The exact integer comes first, then one rounding.
    """
    bits = check_codes(fmt, bits)
    if fmt.signed or fmt.bits < 64:
        return unpack_int(fmt, bits).astype(np.float64)
    return bits.astype(np.float64)  # uint64: the code is the value


# ---------------------------------------------------------------------------------------------
# Fixed-point formats: an integer code k worth k * 2**-F
# ---------------------------------------------------------------------------------------------
def encode_fixed(fmt: FixedFormat, values, rounding: Rounding, *, saturate=True, sr_bits=0,
                 seed=None, rand=None) -> np.ndarray:
    """Codes of ``values`` rounded to multiples of ``2**-F`` (the shared rounder at ``ulp = -F``),
    then saturated or wrapped into ``I + F`` bits (:meth:`psum.golden.FixedFormat.encode`); exact
    for every width up to 64 (:func:`_encode_integer`)."""
    ints = _integer_array(values)
    if ints is not None:
        return _encode_exact_ints(fmt, ints, fmt.frac_bits, saturate)
    return _encode_integer(fmt, as_float64(values), fmt.lsb_exp, rounding, saturate, sr_bits, seed, rand)


def decode_fixed(fmt: FixedFormat, bits) -> np.ndarray:
    """float64 values ``k * 2**-F`` of codes (exact while ``I + F <= 53``; ldexp by a power of two
    is exact, and the stored integer is exact before its one rounding to float64)."""
    k = unpack_int(fmt, check_codes(fmt, bits)).astype(np.float64)
    return np.ldexp(k, fmt.lsb_exp)
