"""``mac_step``: the exact semantics of one MAC cycle, vectorised over numpy arrays of bit patterns.

This function is the contract that the RTL, the testbenches and the layer emulation obey.

Integer accumulator (integer operands)
    ``acc + a*b`` computed exactly, then wrapped (two's complement) or saturated into ``acc``.
    Unfused: the product is first wrapped/saturated into ``prod``.

Float accumulator, IEEE 754-2019 for ``ieee`` formats
    fused: ``fusedMultiplyAdd(a, b, acc)`` with one rounding; unfused: ``multiplication`` into
    ``prod`` then ``addition`` into ``acc``. Integer operands enter as exact integers.

    * NaN in, ``inf * 0``, or ``inf - inf`` give the accumulator's canonical NaN (payloads are not
      propagated).
    * An exact zero sum of two zeros is ``-0`` only if both are ``-0`` (``rdn``: if either is);
      an exact zero from cancelling non-zero terms is ``+0`` (``rdn``: ``-0``). A non-zero result
      that rounds to zero keeps its sign.
    * Overflow: see :func:`psum.golden._vector.round_float`. ``overflow=sat`` clamps to the largest
      finite number; an infinite *operand* still gives inf (IEEE) or NaN.

Other special-value policies (same rules, where the value exists)
    ``fn`` (OCP E4M3 style): no inf; operands cannot be inf, a NaN operand gives NaN, overflow gives
    NaN unless saturating or rounding toward zero. ``fnuz``: as ``fn``, and a zero result is always
    ``+0``. ``fin``: every code is finite; overflow always saturates.
    Flush-to-zero formats read subnormal operands as zero and flush subnormal results (see
    :class:`psum.golden.FloatFormat`).

Stochastic rounding takes ``rand`` (integers in ``[0, 2**spec.sr_bits)``, one per step): the
accumulation rounds up when the top ``sr_bits`` bits of the residual plus ``rand`` carry out. In an
unfused unit the product is rounded to nearest-even.
"""

from __future__ import annotations

import numpy as np

from . import _vector as V
from .formats import FloatFormat
from .rounding import Rounding, exact_zero_sign
from .spec import MacSpec

__all__ = ["mac_step", "fast_path_ok", "window_bits", "product_terms", "apply_specials",
           "infinity_codes"]

_I64 = np.int64
_NEG_INF_POS = np.iinfo(np.int64).min // 4  # "leading-one position" of a zero operand


def window_bits(spec: MacSpec) -> int:
    """Width W of the exact addition window (see :func:`_add_round`)."""
    p_prod = spec.prod.precision if spec.prod is not None else spec.a.precision + spec.b.precision
    p_acc = spec.acc.precision
    return max(p_acc + spec.sr_bits + 4, max(p_prod, p_acc) + 2)


def fast_path_ok(spec: MacSpec) -> bool:
    """True when the int64 datapath below is exact for ``spec``; otherwise the reference is used."""
    exact_prod = spec.a.precision + spec.b.precision <= 61
    if spec.int_acc:
        return exact_prod and spec.acc.bits <= 62 and (spec.prod is None or spec.prod.bits <= 62)
    return exact_prod and window_bits(spec) <= 60


def mac_step(spec: MacSpec | str, acc, a, b, rand=None, *, flags: bool = False):
    """One MAC cycle: ``acc := round(acc + a*b)`` on bit patterns.

    Parameters
    ----------
    spec : MacSpec or str
        What the unit computes.
    acc, a, b : array_like of unsigned integers
        Bit patterns in the accumulator and operand formats (broadcast together).
    rand : array_like, optional
        Random integers in ``[0, 2**spec.sr_bits)`` for stochastic rounding (required then).
    flags : bool
        Also return the step's exception flags (see Returns).

    Returns
    -------
    numpy.ndarray of uint64, or (codes, dict) when ``flags``
        The new accumulator bit patterns. The dict holds bool arrays: ``overflow`` (the rounder
        overflowed: the sum, or an unfused product, rounded with an unbounded exponent exceeds
        the largest finite value; an integer sum or product left its range), ``underflow``,
        ``inexact`` (of the accumulation rounding) and ``swamped`` (``inexact`` and the
        accumulator did not change: the product was rounded away).

    Raises
    ------
    ValueError
        Stochastic rounding without ``rand``; ``flags`` for a spec outside the int64 datapath
        (:func:`fast_path_ok`), where only the Fraction reference runs and it keeps no flags.
    """
    spec = MacSpec.parse(spec)
    acc, a, b = np.broadcast_arrays(*(np.asarray(x, dtype=np.uint64) for x in (acc, a, b)))
    if spec.rounding is Rounding.SR:
        if rand is None:
            raise ValueError("stochastic rounding needs rand (one random integer per step)")
        rand = V.draw_random(acc.shape, spec.sr_bits, rand=rand)
    if not fast_path_ok(spec):
        if flags:
            raise ValueError(f"exception flags need the int64 datapath, which cannot compute {spec} exactly")
        from .reference import mac_step_ref

        out = [mac_step_ref(spec, int(c), int(x), int(y), None if rand is None else int(r))
               for c, x, y, r in np.nditer([acc, a, b, rand if rand is not None else acc])]
        return np.asarray(out, dtype=np.uint64).reshape(acc.shape)
    code, fl = _mac_int(spec, acc, a, b) if spec.int_acc else _mac_float(spec, acc, a, b, rand)
    if not flags:
        return code
    fl["swamped"] = fl["inexact"] & (code == acc)
    return code, fl


def _mac_int(spec: MacSpec, acc, a, b):
    va = V.unpack_int(spec.a, a)
    vb = V.unpack_int(spec.b, b)
    p = va * vb  # exact: |a| * |b| < 2**61 (fast_path_ok)
    over = np.zeros(acc.shape, dtype=bool)
    if spec.prod is not None:
        over |= (p < spec.prod.min_int) | (p > spec.prod.max_int)
        p = V.fit_int(spec.prod, p, spec.saturate)
    s = V.unpack_int(spec.acc, acc) + p  # exact: below 2**62 (fast_path_ok)
    over |= (s < spec.acc.min_int) | (s > spec.acc.max_int)
    none = np.zeros(acc.shape, dtype=bool)
    code = V.int_to_code(spec.acc, V.fit_int(spec.acc, s, spec.saturate))
    return code, {"overflow": over, "underflow": none, "inexact": none}


def product_terms(spec: MacSpec, a, b, *, flags: bool = False):
    """The product of codes ``a``, ``b`` as exact ``(sign, mag, exp, cls)`` (cls ZERO/FINITE/INF/NAN).

    Fused: the exact product. Unfused: rounded into ``spec.prod`` (stochastic rounding applies to
    the accumulation only: the product rounds to nearest-even) and read back as a value of that
    format. ``mag`` is meaningful only where ``cls`` is FINITE. Shared by :func:`mac_step` and the
    multi-term adder of :mod:`psum.golden.emulation.kernels`. With ``flags``, also the product
    rounder's ``overflow`` flag (bool array; all false when fused).
    """
    sa, ma, ea, ca = V.unpack(spec.a, a)
    sb, mb, eb, cb = V.unpack(spec.b, b)

    # -- product: exact sign/magnitude/exponent, specials classified apart --------------------
    sp = sa ^ sb
    mp = ma * mb  # exact: below 2**61 (fast_path_ok)
    ep = ea + eb
    invalid = ((ca == V.INF) & (cb == V.ZERO)) | ((ca == V.ZERO) & (cb == V.INF))
    cp = np.where((ca == V.NAN) | (cb == V.NAN) | invalid, V.NAN,
                  np.where((ca == V.INF) | (cb == V.INF), V.INF,
                           np.where((ca == V.ZERO) | (cb == V.ZERO), V.ZERO, V.FINITE)))
    over = np.zeros(np.shape(cp), dtype=bool)
    if spec.prod is not None:
        if spec.prod.specials == "fnuz":  # a zero product has no sign there
            sp = sp & (cp != V.ZERO)
        # Unfused: round the product into its own format, then read it back.
        mode = Rounding.RNE if spec.rounding is Rounding.SR else spec.rounding
        finite = cp == V.FINITE
        pcode, pfl = V.round_float(spec.prod, sp, np.where(finite, mp, 0), ep, mode,
                                   saturate=spec.saturate, flags=True)
        over = finite & pfl["overflow"]
        psign, mp, ep, pcls = V.unpack_float(spec.prod, pcode)
        sp = np.where(finite, psign, sp)
        cp = np.where(finite, pcls, cp)
        if spec.prod.specials == "fnuz":  # a product that rounded to zero has no sign there
            sp = np.where(finite & (pcls == V.ZERO), False, sp)
    return (sp, mp, ep, cp, over) if flags else (sp, mp, ep, cp)


def infinity_codes(fmt: FloatFormat, saturate: bool) -> tuple[int, int]:
    """Codes of a +inf and a -inf *result* (from an infinite operand or product, not overflow).

    An ``ieee`` format holds it as +-inf, even when saturating (IEEE: only a rounding overflows);
    a format without inf holds it as the largest finite value when saturating or when it has no
    NaN either (``fin``), else as its NaN. One table, read by :func:`apply_specials` and handed to
    the C kernel.
    """
    if fmt.has_inf:
        return fmt.inf_code, fmt.inf_code | fmt.sign_bit
    if saturate or not fmt.has_nan:
        return fmt.max_code, fmt.max_code | fmt.sign_bit
    return fmt.nan_code, fmt.nan_code


def apply_specials(fmt: FloatFormat, saturate: bool, code, nan, inf, inf_sign):
    """Override ``code`` with the special results, fixed priority NaN then inf.

    ``nan``/``inf`` mark results that are NaN / infinite (from NaN or infinite operands, not from
    rounding); an infinite result takes :func:`infinity_codes` by ``inf_sign``.

    Raises
    ------
    ValueError
        A NaN reaches a format without NaN.
    """
    if inf.any():
        pos, neg = infinity_codes(fmt, saturate)
        code = np.where(inf, np.where(inf_sign, np.uint64(neg), np.uint64(pos)), code)
    if nan.any():
        if not fmt.has_nan:
            raise ValueError(f"a NaN reached accumulator format {fmt}, which has no NaN")
        code = np.where(nan, np.uint64(fmt.nan_code), code)
    return code


def _mac_float(spec: MacSpec, acc, a, b, rand):
    sp, mp, ep, cp, p_over = product_terms(spec, a, b, flags=True)
    sc, mc, ec, cc = V.unpack_float(spec.acc, acc)
    code, fl = _add_round(spec, sp, mp, ep, cp, sc, mc, ec, cc, rand)
    # why OR the product's overflow in: the step overflowed when either rounder did
    fl["overflow"] = fl["overflow"] | p_over
    return code, fl


def _add_round(spec, sp, mp, ep, cp, sc, mc, ec, cc, rand):
    """Round ``p + c`` into the accumulator, both exact ``(sign, mag, exp, cls)``.

    Exact addition in a window of W bits below the larger operand's leading one: the larger term
    always fits (W >= its precision + 2), and the smaller one is truncated with its discarded bits
    OR-ed ("jammed") into the window's lsb. That lsb lies at least ``sr_bits + 2`` positions below
    the result's ulp, so the jammed value and the true value fall in the same open interval between
    adjacent window-lsb multiples, and every rounding decision (guard, sticky, tie, the top sr_bits
    residual bits) is the same for both. If the terms' leading ones are within one position, the
    result may cancel, but then both terms fit in the window exactly.
    """
    fmt: FloatFormat = spec.acc
    W = window_bits(spec)
    lp = np.where(cp == V.FINITE, ep + V.bit_length(mp) - 1, _NEG_INF_POS)
    lc = np.where(cc == V.FINITE, ec + V.bit_length(mc) - 1, _NEG_INF_POS)
    base = np.maximum(lp, lc) - W + 1  # exponent of the window's lsb

    def align(m, e, cls):
        m = np.where(cls == V.FINITE, m, 0)
        s = base - e
        left = m << np.clip(-s, 0, 62)
        right = m >> np.clip(s, 0, 62)
        lost = (m & ((_I64(1) << np.clip(s, 0, 62)) - 1)) != 0
        lost |= (s > 62) & (m != 0)
        return np.where(s <= 0, left, right | lost)

    total = np.where(sp, -align(mp, ep, cp), align(mp, ep, cp)) + \
        np.where(sc, -align(mc, ec, cc), align(mc, ec, cc))
    sign = total < 0
    code, fl = V.round_float(fmt, sign, np.abs(total), base, spec.rounding, saturate=spec.saturate,
                             rand=rand, sr_bits=spec.sr_bits, flags=True)

    # -- exact zero sums: IEEE 754 §6.3 sign rules (the rule book) -----------------------------
    zero_sign = exact_zero_sign(spec.rounding, both_zero=(cp == V.ZERO) & (cc == V.ZERO), sp=sp, sc=sc)
    zero_code = (zero_sign & fmt.has_neg_zero).astype(np.uint64) << np.uint64(fmt.width - 1)
    code = np.where((total == 0) & (cp <= V.FINITE) & (cc <= V.FINITE), zero_code, code)

    # -- specials, fixed priority: NaN, then infinities ------------------------------------------
    inf_p, inf_c = cp == V.INF, cc == V.INF
    nan = (cp == V.NAN) | (cc == V.NAN) | (inf_p & inf_c & (sp != sc))
    inf = (inf_p | inf_c) & ~nan
    code = apply_specials(fmt, spec.saturate, code, nan, inf, np.where(inf_p, sp, sc))
    # Flags belong to the rounding of a finite sum; a special result raised none of them.
    special = nan | inf
    return code, {k: v & ~special for k, v in fl.items()}
