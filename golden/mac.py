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

Fixed-point accumulator (``acc=q<I>.<F>``, float, integer or fixed-point operands)
    The register holds ``k * 2**-F``. Each step computes ``acc + a*b`` exactly (the exact
    product, never rounded on its own), rounds it to a multiple of ``2**-F`` with the spec's
    rounding (the rule book's ``round_up`` on the magnitude of the sum, so ``rtz`` truncates
    toward zero and ``rdn`` floors), then wraps (two's complement) or saturates into ``I + F``
    bits as an integer accumulator does. The register holds no NaN or infinity: a NaN product
    (NaN operand, ``inf * 0``) gives the most negative code (the "integer indefinite" of x86's
    float-to-integer conversions), an infinite product the most positive / most negative code by
    its sign, whatever ``overflow`` says (IEEE 754-2019 section 5.8 leaves such conversions
    implementation-defined; these are fixed here so that every engine agrees).

Stochastic rounding takes ``rand`` (integers in ``[0, 2**spec.sr_bits)``, one per step): the
accumulation rounds up when the top ``sr_bits`` bits of the residual plus ``rand`` carry out. In an
unfused unit the product is rounded to nearest-even.
"""

from __future__ import annotations

import numpy as np

from . import _vector as V
from .formats import FloatFormat
from .rounding import Rounding, exact_zero_sign, round_up
from .spec import MacSpec

__all__ = ["mac_step", "fast_path_ok", "window_bits", "product_terms", "apply_specials",
           "infinity_codes", "nan_result_code"]

_I64 = np.int64


def _shr(x, s):
    """x >> s for non-negative int64 x and any s >= 0 (numpy leaves s >= 64 undefined)."""
    return x >> np.minimum(s, 62)
_NEG_INF_POS = np.iinfo(np.int64).min // 4  # "leading-one position" of a zero operand


def window_bits(spec: MacSpec) -> int:
    """Width W of the exact addition window (see :func:`_add_round`)."""
    p_prod = spec.prod.precision if spec.prod is not None else spec.a.precision + spec.b.precision
    p_acc = spec.acc.precision
    return max(p_acc + spec.sr_bits + 4, max(p_prod, p_acc) + 2)


def fast_path_ok(spec: MacSpec) -> bool:
    """True when the int64 datapath below is exact for ``spec``; otherwise the reference is used."""
    exact_prod = spec.a.precision + spec.b.precision <= 61
    if spec.fixed_acc:
        # stored integers below 2**61 and the sums of _mac_fixed below 2**63 (see there)
        return exact_prod and spec.acc.bits <= 62
    if spec.int_acc:
        # Integer products are exact in int64 when the largest magnitudes' product is (int32 x
        # int32: 2**62). The sum: exact in int64 when the accumulator's largest magnitude plus the
        # product's stays below 2**63; uint63 / int64 / uint64 take _add_wide's mod-2**64 sum.
        def mag(f):
            return max(-f.min_int, f.max_int)

        p_max = mag(spec.a) * mag(spec.b)
        if p_max >= 1 << 63 or (spec.prod is not None and spec.prod.bits > 62):
            return False
        if spec.prod is not None:
            p_max = min(p_max, mag(spec.prod))
        return _wide_acc(spec.acc) or mag(spec.acc) + p_max < 1 << 63
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
    if spec.blocked:  # a block's products are not one step each: psum.golden.block_dot
        raise ValueError(f"mac_step takes element operands; block-scaled {spec} runs in psum.golden.block_dot.block_dot")
    acc, a, b = np.broadcast_arrays(*(V.check_codes(f, x, name) for f, x, name in
                                      ((spec.acc, acc, "acc code"), (spec.a, a, "a code"), (spec.b, b, "b code"))))
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
    if spec.fixed_acc:
        code, fl = _mac_fixed(spec, acc, a, b, rand)
    elif spec.int_acc:
        code, fl = _mac_int(spec, acc, a, b)
    else:
        code, fl = _mac_float(spec, acc, a, b, rand)
    if not flags:
        return code
    fl["swamped"] = fl["inexact"] & (code == acc)
    return code, fl


def _mac_int(spec: MacSpec, acc, a, b):
    va = V.unpack_int(spec.a, a)
    vb = V.unpack_int(spec.b, b)
    p = va * vb  # exact: |a| * |b| < 2**63 (fast_path_ok)
    over = np.zeros(acc.shape, dtype=bool)
    if spec.prod is not None:
        over |= (p < spec.prod.min_int) | (p > spec.prod.max_int)
        p = V.fit_int(spec.prod, p, spec.saturate)
    none = np.zeros(acc.shape, dtype=bool)
    if _wide_acc(spec.acc):
        code, o = _add_wide(spec.acc, acc, p, spec.saturate)
        return code, {"overflow": over | o, "underflow": none, "inexact": none}
    s = V.unpack_int(spec.acc, acc) + p  # exact: |acc| + |p| < 2**63 (fast_path_ok)
    over |= (s < spec.acc.min_int) | (s > spec.acc.max_int)
    code = V.int_to_code(spec.acc, V.fit_int(spec.acc, s, spec.saturate))
    return code, {"overflow": over, "underflow": none, "inexact": none}


def _wide_acc(fmt) -> bool:
    """Integer accumulators whose range leaves int64 arithmetic room: uint63, int64, uint64."""
    return fmt.bits == 64 or (fmt.bits == 63 and not fmt.signed)


def _add_wide(fmt, acc, p, saturate: bool):
    """``acc + p`` into a ``uint63``, ``int64`` or ``uint64`` accumulator, exact in uint64 arithmetic.

    Such sums leave int64 (``2**63 - 1 + 2**61``), so the sum is formed mod ``2**64`` and the
    overflow decided from signs and carries (Hacker's Delight 2-13): signed, an overflow happened
    when both terms have one sign and the sum the other; unsigned, when adding ``|p|`` carried
    out (the sum is below the accumulator) or subtracting it borrowed (``|p| >`` the accumulator).
    ``|p| < 2**63`` (:func:`fast_path_ok`; the uint63 sum then stays below ``2**64``). Returns
    ``(codes, overflow)``.
    """
    with np.errstate(over="ignore"):
        pos = p >= 0
        mag = np.where(pos, p, -p).astype(np.uint64)
        total = np.where(pos, acc + mag, acc - mag)  # mod 2**64
        if fmt.signed:  # int64
            s = total.view(_I64)
            av = acc.view(_I64)
            over = (av >= 0) == pos
            over &= (s >= 0) != (av >= 0)
            hi, lo = np.uint64(fmt.max_int), np.uint64(fmt.min_int & ((1 << 64) - 1))
            if saturate:
                total = np.where(over, np.where(pos, hi, lo), total)
            return total, over
        under = ~pos & (mag > acc)
        top = np.uint64(fmt.max_int)
        if fmt.bits == 64:
            carry = pos & (total < acc)
        else:  # uint63: acc < 2**63 and |p| <= 2**61, so the uint64 sum is the true one
            carry = pos & (total > top)
        over = under | carry
        if saturate:
            total = np.where(under, np.uint64(0), np.where(carry, top, total))
        elif fmt.bits < 64:
            total = total & top  # mod 2**63
        return total, over


def _mac_fixed(spec: MacSpec, acc, a, b, rand):
    """A fixed-point accumulator step, exact in int64 (see the module docstring for the rules).

    With ``s = ep + F`` the product's exponent in lsb units, ``|p| = mp * 2**s`` lsbs:

    * ``s >= 0``: the product is an integer number of lsbs, the sum is exact and only overflow
      matters. Wrap needs the sum mod ``2**64`` only (uint64 arithmetic, shift clamped at 64:
      ``mp << s`` is then 0 mod ``2**64``); saturation needs the magnitude only up to
      ``2**62`` (the clamp: any larger ``|p|`` saturates whatever the accumulator, which is
      below ``2**61`` in magnitude).
    * ``s < 0``: ``d = -s`` bits lie below the lsb. The integer part ``q = mp >> d`` is below
      ``2**61``; the fraction is kept as ``G = sr_bits + 2`` bits with every lower bit OR-ed
      ("jammed") into its lsb. The jammed fraction and the true one lie in the same open interval
      between multiples of ``2**-(G-1)``, and so do their complements ``1 - f``: guard, sticky
      and the top ``sr_bits`` residual bits (stochastic rounding) are unchanged, for either sign
      of the sum. The sum is then ``floor + frac`` (exact), its magnitude ``trunc + residual``
      and the rule book's ``round_up`` decides the increment.
    """
    with np.errstate(over="ignore"):  # the wrap path computes mod 2**64 on purpose
        return _mac_fixed_body(spec, acc, a, b, rand)


def _mac_fixed_body(spec: MacSpec, acc, a, b, rand):
    fmt = spec.acc
    F = fmt.frac_bits
    sp, mp, ep, cp = product_terms(spec, a, b)
    k = V.unpack_int(fmt, acc)  # stored integer, |k| <= 2**61
    finite = cp == V.FINITE
    mp = np.where(finite, mp, 0)
    s = np.where(finite, ep + F, 0)
    G = spec.sr_bits + 2

    # -- s >= 0: exact integer sum (wrap: mod 2**64; sat: magnitude clamped at 2**62) ------------
    big = s >= 0
    sh = np.clip(s, 0, 64)
    p_mod = np.where(sh >= 64, np.uint64(0), mp.astype(np.uint64) << np.minimum(sh, 63).astype(np.uint64))
    p_mod = np.where(sp, (~p_mod) + np.uint64(1), p_mod)  # two's complement negation mod 2**64
    sum_mod = (k.astype(np.uint64) + p_mod).view(np.int64)  # the exact sum mod 2**64
    huge = V.bit_length(mp) + sh > 62
    p_clamp = np.where(huge, _I64(1) << 62, mp << np.minimum(sh, 62))
    sum_sat = k + np.where(sp, -p_clamp, p_clamp)  # |.| < 2**61 + 2**62: no int64 overflow

    # -- s < 0: integer part and a jammed G-bit fraction -----------------------------------------
    d = np.where(big, 0, -s)
    dc = np.minimum(d, 62)
    q = mp >> dc  # (mp < 2**61, so d >= 62 leaves 0)
    rem_bits = mp - (q << dc)  # the d dropped bits (exactly mp when d >= 62)
    # keep the top G bits of the d-bit fraction, jam the rest into the lsb
    keep = np.where(d >= G, _shr(rem_bits, d - G), rem_bits << np.clip(G - d, 0, 62))
    lost = np.where(d > G, (rem_bits & ((_I64(1) << np.clip(d - G, 0, 62)) - 1)) != 0, False)
    lost |= (d - G > 62) & (rem_bits != 0)
    frac = keep | lost  # the fraction in units of 2**-G, jammed
    t = k + np.where(sp, -q, q)  # |.| < 2**62
    neg_frac = sp & (frac != 0)
    floor = t - neg_frac  # sum = floor + f, 0 <= f < 1
    f = np.where(neg_frac, (_I64(1) << G) - frac, frac)
    neg = floor < 0
    # magnitude = trunc + r (r the residual in units of 2**-G, 0 <= r < 2**G)
    trunc = np.where(neg, np.where(f != 0, -floor - 1, -floor), floor)
    r = np.where(neg & (f != 0), (_I64(1) << G) - f, f)
    carry = None
    if spec.rounding is Rounding.SR:
        carry = (r >> (G - spec.sr_bits)) + rand >= (1 << spec.sr_bits)
    up = round_up(spec.rounding, lsb=(trunc & 1) == 1, guard=(r >> (G - 1)) == 1,
                  sticky=(r & ((1 << (G - 1)) - 1)) != 0, sign=neg, sr_carry=carry)
    rounded = trunc + up
    small_sum = np.where(neg, -rounded, rounded)

    exact = np.where(big, sum_sat if spec.saturate else sum_mod, small_sum)
    over = np.where(big & ~spec.saturate, (sum_sat < fmt.min_int) | (sum_sat > fmt.max_int),
                    (exact < fmt.min_int) | (exact > fmt.max_int))
    if spec.saturate:
        fitted = np.clip(exact, fmt.min_int, fmt.max_int)
    else:  # wrap: the low I+F bits, sign-extended (exact from the mod-2**64 sum as well)
        fitted = V.fit_int(fmt, exact, False) if fmt.bits < 64 else exact
    code = V.int_to_code(fmt, fitted)
    inexact = ~big & (r != 0)

    # -- specials: the register holds no NaN or inf (module docstring) -----------------------------
    nan, inf = cp == V.NAN, cp == V.INF
    code = np.where(inf, np.where(sp, np.uint64(fmt.min_int & ((1 << fmt.bits) - 1)), np.uint64(fmt.max_int)), code)
    code = np.where(nan, np.uint64(fmt.min_int & ((1 << fmt.bits) - 1)), code)
    special = nan | inf
    none = np.zeros(code.shape, dtype=bool)
    return code, {"overflow": over & ~special, "underflow": none, "inexact": inexact & ~special}


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
        if not spec.prod.has_neg_zero:  # fnuz, p3109: a zero product has no sign there
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
        if not spec.prod.has_neg_zero:  # fnuz, p3109: a product that rounded to zero has no sign there
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


def nan_result_code(fmt: FloatFormat) -> int:
    """Code of a NaN *result* (NaN operand, ``inf * 0``, ``inf - inf``): the one rule of every engine.

    A format with NaN holds its canonical NaN. A format without NaN (``fin``: OCP FP6/FP4, whose
    spec leaves NaN conversion implementation-defined, OCP MX v1.0 section 5.3.3) holds **+0**:
    a NaN has no sign and no magnitude to saturate towards, and +0 is the value that leaves a
    following accumulation unchanged. The RTL writes the same code (``psum.hw.float_mac``), the
    C and torch kernels read it from here, and the Fraction reference states the rule on its own.
    Before this rule a NaN into ``fin`` raised, so such specs could not be simulated at all.
    """
    return fmt.nan_code if fmt.has_nan else 0


def apply_specials(fmt: FloatFormat, saturate: bool, code, nan, inf, inf_sign):
    """Override ``code`` with the special results, fixed priority NaN then inf.

    ``nan``/``inf`` mark results that are NaN / infinite (from NaN or infinite operands, not from
    rounding); an infinite result takes :func:`infinity_codes` by ``inf_sign``.

    Raises
    ------
    ValueError
        Never for a NaN any more: see :func:`nan_result_code`.
    """
    if inf.any():
        pos, neg = infinity_codes(fmt, saturate)
        code = np.where(inf, np.where(inf_sign, np.uint64(neg), np.uint64(pos)), code)
    if nan.any():
        code = np.where(nan, np.uint64(nan_result_code(fmt)), code)
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
