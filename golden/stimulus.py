"""Operand streams for checking MAC semantics: special codes, random codes and adversarial triples.

Shared by the golden-model tests, the cocotb testbenches and ``psum sim`` so that every level is
checked on the same corner cases: zeros of both signs, subnormals, the largest values, inf and NaN
where the format has them, exact ties and one-ulp-off ties, total and partial cancellation, huge
exponent gaps (sticky bits) and overflow.
"""

from __future__ import annotations

import numpy as np

from .formats import FixedFormat, FloatFormat, IntFormat
from .spec import MacSpec

__all__ = ["special_codes", "random_codes", "adversarial_triples", "random_triples"]


def special_codes(fmt) -> np.ndarray:
    """Codes of the values every MAC test must visit, for ``fmt`` (unique, uint64).

    Integers and fixed point: 0, +-1, +-2 lsbs, both ends of the range and their neighbours; fixed
    point also +-1.0 and +-0.5 where the format holds them.
    """
    if isinstance(fmt, (IntFormat, FixedFormat)):
        vals = {0, 1, fmt.max_int, fmt.max_int - 1, fmt.min_int, fmt.min_int + 1}
        if fmt.signed:
            vals |= {-1, 2, -2}
        if isinstance(fmt, FixedFormat):
            vals |= {s * (1 << f) for s in (1, -1) for f in (fmt.frac_bits, fmt.frac_bits - 1) if f >= 0}
        vals = [v for v in vals if fmt.min_int <= v <= fmt.max_int]
        # Python ints, then codes: uint64's max_int (2**64 - 1) is no int64
        return np.unique(np.asarray([v & ((1 << fmt.bits) - 1) for v in vals], dtype=np.uint64))
    M, s = fmt.man_bits, fmt.sign_bit
    mags = {0, 1, (1 << M) - 1 if M else 0, 1 << M, (1 << M) + 1, fmt.max_code, fmt.max_code - 1,
            fmt.bias << M, (fmt.bias << M) + 1, ((fmt.bias + 1) << M) - 1}
    codes = set()
    for m in mags:
        if 0 <= m <= fmt.max_code:
            codes |= {m, m | s}
    for c in (fmt.inf_code, fmt.nan_code):
        if c is not None:
            codes |= {c, c | s}
    codes = np.asarray(sorted(codes), dtype=np.uint64) & np.uint64((1 << fmt.width) - 1)
    return np.unique(codes)


def random_codes(fmt, n: int, rng: np.random.Generator, *, finite_only: bool = False) -> np.ndarray:
    """Uniformly random codes of ``fmt`` (every bit pattern equally likely)."""
    if fmt.width < 64:
        codes = rng.integers(0, 1 << fmt.width, size=n, dtype=np.uint64)
    else:  # two 32-bit halves: every 64-bit pattern, the top bit included
        hi, lo = (rng.integers(0, 1 << 32, size=n, dtype=np.uint64) for _ in range(2))
        codes = (hi << np.uint64(32)) | lo
    if finite_only and isinstance(fmt, FloatFormat):
        vals = fmt.decode(codes)
        bad = ~np.isfinite(vals)
        codes[bad] = codes[bad] & np.uint64(fmt.sign_bit | 1)
    return codes


def _one(fmt):
    if isinstance(fmt, FixedFormat):  # 1.0, or the largest value below it (q1.F)
        return np.uint64(min(1 << fmt.frac_bits, fmt.max_int))
    return np.uint64(1) if isinstance(fmt, IntFormat) else np.uint64(fmt.bias << fmt.man_bits)


def random_triples(spec: MacSpec, n: int, rng: np.random.Generator):
    """``(acc, a, b)`` uniformly random codes."""
    return random_codes(spec.acc, n, rng), random_codes(spec.a, n, rng), random_codes(spec.b, n, rng)


def adversarial_triples(spec: MacSpec, n: int, rng: np.random.Generator):
    """``(acc, a, b)`` codes concentrated on the hard cases of ``acc + a*b``.

    A quarter of the triples mixes special codes; the rest target the accumulator's rounding
    boundary: the product is set to (a format-representable value near) half an ulp of ``acc``,
    a tie, one-ulp-off ties, ``-acc`` (cancellation), or a value 2**±k away (exponent gaps).
    A fixed-point accumulator's ulp is its lsb ``2**-F``: products on ties ``(j + 1/2)`` lsbs and
    just off them, cancellation, products that carry the sum past either end of the range
    (overflow, wrap), and exponent gaps.
    """
    acc, a, b = random_triples(spec, n, rng)
    k = n // 4
    for arr, fmt in ((acc, spec.acc), (a, spec.a), (b, spec.b)):
        sp = special_codes(fmt)
        pick = rng.random(n) < 0.5
        pick[k:] = False
        arr[pick] = rng.choice(sp, size=int(pick.sum()))
    if isinstance(spec.acc, IntFormat):
        return acc, a, b
    if isinstance(spec.acc, FixedFormat):
        target = _fixed_targets(spec.acc, spec.acc.decode(acc[k:]), rng)
        return _operands_for(spec, acc, a, b, k, target, rng)
    # Target products relative to acc's value.
    accv = spec.acc.decode(acc[k:])
    accv = np.where(np.isfinite(accv) & (accv != 0), accv, 1.0)
    e = np.floor(np.log2(np.abs(accv)))
    ulp = np.exp2(e - spec.acc.man_bits)
    kind = rng.integers(0, 6, size=accv.size)
    jitter = rng.choice([-1.0, 1.0], size=accv.size)
    target = np.select(
        [kind == 0, kind == 1, kind == 2, kind == 3, kind == 4],
        [0.5 * ulp * jitter,                                  # exact tie
         0.5 * ulp * jitter * (1 + 2.0 ** -rng.integers(1, 8, size=accv.size)),  # just above a tie
         -accv,                                               # total cancellation
         -accv * (1 + jitter * 2.0 ** -rng.integers(1, 12, size=accv.size)),   # partial cancellation
         accv * 2.0 ** rng.integers(-40, 40, size=accv.size)],                 # exponent gaps
        accv * rng.standard_normal(accv.size),
    )
    return _operands_for(spec, acc, a, b, k, target, rng)


def _fixed_targets(fmt: FixedFormat, accv: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Products that stress a fixed-point accumulator holding ``accv`` (see adversarial_triples)."""
    n = accv.size
    lsb = fmt.resolution
    j = rng.integers(0, 8, size=n).astype(np.float64)
    sgn = rng.choice([-1.0, 1.0], size=n)
    off = 2.0 ** -rng.integers(1, 12, size=n)
    kind = rng.integers(0, 6, size=n)
    return np.select(
        [kind == 0, kind == 1, kind == 2, kind == 3, kind == 4],
        [sgn * (j + 0.5) * lsb,                                   # ties at the lsb
         sgn * (j + 0.5 + rng.choice([-1.0, 1.0], size=n) * off) * lsb,  # just off a tie
         -accv,                                                   # total cancellation
         np.where(sgn > 0, fmt.max_value - accv, fmt.min_value - accv) + sgn * off * 4 * lsb,  # overflow
         np.where(accv != 0, accv, lsb) * 2.0 ** rng.integers(-30, 30, size=n)],  # exponent gaps
        (np.abs(accv) + lsb) * rng.standard_normal(n),
    )


def _operands_for(spec: MacSpec, acc, a, b, k: int, target: np.ndarray, rng: np.random.Generator):
    """Put products near ``target`` into ``a[k:]``, ``b[k:]`` (a scaled with b = 1, or split)."""
    accv = target
    # Product = target: put it into a (scaled) with b = +-1, or split across a and b.
    one_b = _one(spec.b)
    split = rng.random(accv.size) < 0.5
    if isinstance(spec.a, FloatFormat):
        root = np.sqrt(np.abs(target))
        a_val = np.where(split, root * np.sign(target), target)
        if isinstance(spec.acc, FixedFormat):
            # a power-of-two b keeps a's significand that of the target, so an lsb tie such as
            # 15 * 2**-13 stays exact even where no single operand value reaches it
            with np.errstate(divide="ignore"):
                root = np.where(target != 0, np.exp2(np.floor(np.log2(np.abs(target)) / 2)), 0.0)
            a_val = np.where(split, np.divide(target, root, out=np.zeros_like(target), where=root != 0), target)
        a[k:] = spec.a.encode(a_val, rng.choice(["rne", "rtz", "rup"]), saturate=True)
        if isinstance(spec.b, FloatFormat):
            b_val = np.where(split, root, 1.0)
            b[k:] = spec.b.encode(b_val, "rne", saturate=True)
        else:
            b[k:] = one_b
    elif isinstance(spec.a, IntFormat):
        a[k:] = spec.a.encode(np.clip(np.round(target), spec.a.min_int, spec.a.max_int), saturate=True)
    else:  # a fixed-point operand: the target on its grid, saturated to its range
        a[k:] = spec.a.encode(target, "rne", saturate=True)
    return acc, a, b
