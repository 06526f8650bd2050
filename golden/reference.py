"""The slow, obviously-correct reference: Python integers and ``fractions.Fraction``, one value at a time.

Nothing here is vectorised or clever. Values are exact rationals; rounding finds the ulp by
comparing against powers of two; encoding builds the fields by division. The fast paths in
:mod:`psum.golden._vector` and :mod:`psum.golden.mac` are tested against these functions.
"""

from __future__ import annotations

from fractions import Fraction

from .formats import FixedFormat, FloatFormat, IntFormat
from .rounding import Rounding, parse_rounding
from .spec import MacSpec, add_spec

__all__ = ["decode_ref", "round_ref", "encode_ref", "mac_step_ref", "mta_sum_ref", "block_dot_ref", "tree_order_ref",
           "NAN", "INF"]

NAN = "nan"
INF = "inf"


def _pow2(e: int) -> Fraction:
    return Fraction(2) ** e


def decode_ref(fmt, code: int):
    """Return ``(sign, value)``: value is a non-negative Fraction, ``INF`` or ``NAN``.

    Raises ``ValueError`` for a code outside ``0 .. 2**width - 1`` (never masked).
    """
    if not 0 <= code < 1 << fmt.width:
        raise ValueError(f"code of {fmt} must be an integer between 0 and {(1 << fmt.width) - 1:#x}, not {code}")
    if isinstance(fmt, FixedFormat):  # the integer k of I+F bits, worth k / 2**F
        sign, k = decode_ref(IntFormat(fmt.width), code)
        return sign, k / (1 << fmt.frac_bits)
    if isinstance(fmt, IntFormat):
        code &= (1 << fmt.bits) - 1
        v = code - (1 << fmt.bits) if fmt.signed and code >> (fmt.bits - 1) else code
        return v < 0, Fraction(abs(v))
    M, E = fmt.man_bits, fmt.exp_bits
    sign = bool((code >> (E + M)) & 1)
    ef = (code >> M) & ((1 << E) - 1)
    mf = code & ((1 << M) - 1)
    top = ef == (1 << E) - 1
    if fmt.specials == "ieee" and top:
        return sign, (INF if mf == 0 else NAN)
    if fmt.specials == "fn" and top and mf == (1 << M) - 1:
        return sign, NAN
    if fmt.specials == "fnuz" and code == fmt.sign_bit:
        return sign, NAN
    if fmt.specials == "p3109":  # P3109: 0x80 is NaN, 0x7f / 0xff are +-inf
        if code == 1 << (E + M):
            return sign, NAN
        if code & ((1 << (E + M)) - 1) == (1 << (E + M)) - 1:
            return sign, INF
    if ef == 0:
        if not fmt.subnormals:
            return sign, Fraction(0)
        return sign, Fraction(mf) * _pow2(fmt.emin - M)
    return sign, Fraction((1 << M) + mf) * _pow2(ef - fmt.bias - M)


def _floor_log2(x: Fraction) -> int:
    e = x.numerator.bit_length() - x.denominator.bit_length()
    while _pow2(e) > x:
        e -= 1
    while _pow2(e + 1) <= x:
        e += 1
    return e


def _round_int(sign: bool, x: Fraction, rounding: Rounding, rand: int | None, sr_bits: int,
               odd: bool | None = None) -> int:
    """Round the non-negative rational x to an integer (magnitude); sign steers directed modes.

    ``odd`` says whether the truncated result's *code* is odd, when that is not ``q``'s own parity
    (a float format without stored mantissa bits: the code's lsb is the exponent field's).
    """
    q = x.numerator // x.denominator
    r = x - q
    if r == 0:
        return q
    half = Fraction(1, 2)
    if odd is None:
        odd = q % 2 == 1
    if rounding is Rounding.RNE:
        return q + (r > half or (r == half and odd))
    if rounding is Rounding.RNA:
        return q + (r >= half)
    if rounding is Rounding.RTZ:
        return q
    if rounding is Rounding.RUP:
        return q + (not sign)
    if rounding is Rounding.RDN:
        return q + sign
    if rounding is Rounding.ROD:  # jam: an even code steps to its odd neighbour
        return q + (not odd)
    if rounding is Rounding.SR:
        top = (r * (1 << sr_bits)).numerator // (r * (1 << sr_bits)).denominator
        return q + (top + rand >= (1 << sr_bits))
    raise AssertionError(rounding)


def _zero(fmt: FloatFormat, sign: bool) -> int:
    return fmt.sign_bit if (sign and fmt.has_neg_zero) else 0


def round_ref(fmt: FloatFormat, sign: bool, x: Fraction, rounding="rne", *, saturate=False,
              rand: int | None = None, sr_bits: int = 0) -> int:
    """Round the exact value ``(-1)**sign * x`` (x >= 0 rational) to a code of ``fmt``."""
    rounding = parse_rounding(rounding)
    if x == 0:
        return _zero(fmt, sign)
    M = fmt.man_bits
    e = _floor_log2(x)
    ulp = (max(e, fmt.emin) if fmt.subnormals else e) - M
    # without stored mantissa bits the code is e + bias (q = 1): its parity is the exponent's
    odd = None if M else (ulp + fmt.bias + (x >= _pow2(ulp)) - 1) % 2 == 1
    q = _round_int(sign, x / _pow2(ulp), rounding, rand, sr_bits, odd)
    value = q * _pow2(ulp)
    if value == 0:
        return _zero(fmt, sign)
    if not fmt.subnormals and value < _pow2(fmt.emin):
        return _zero(fmt, sign)
    max_value = decode_ref(fmt, fmt.max_code)[1]
    if value > max_value:
        toward_zero = (rounding in (Rounding.RTZ, Rounding.ROD)
                       or (rounding is Rounding.RUP and sign) or (rounding is Rounding.RDN and not sign))
        if saturate or toward_zero or fmt.specials == "fin":
            return (fmt.sign_bit if sign else 0) | fmt.max_code
        if fmt.specials in ("ieee", "p3109"):
            return (fmt.sign_bit if sign else 0) | fmt.inf_code
        return fmt.nan_code
    e = _floor_log2(value)
    if e < fmt.emin:  # subnormal: exponent field 0, mantissa = value / 2**(emin - M)
        mag = value / _pow2(fmt.emin - M)
    else:
        frac = value / _pow2(e - M) - (1 << M)
        mag = ((e + fmt.bias) << M) + frac
    assert mag.denominator == 1
    return (fmt.sign_bit if sign else 0) | int(mag)


def _fit_int(fmt: IntFormat, v: int, saturate: bool) -> int:
    if saturate:
        return min(max(v, fmt.min_int), fmt.max_int)
    m = 1 << fmt.bits
    v %= m
    if fmt.signed and v >= m // 2:
        v -= m
    return v


def encode_ref(fmt, value: float, rounding="rne", *, saturate=None, rand=None, sr_bits=0) -> int:
    """Encode one Python float (exactly converted) into ``fmt``."""
    rounding = parse_rounding(rounding)
    if isinstance(fmt, FixedFormat):
        if value != value:
            raise ValueError(f"cannot encode NaN: fixed-point format {fmt} has no NaN")
        if value in (float("inf"), float("-inf")):
            if saturate is False:
                raise ValueError(f"cannot wrap an infinity into {fmt}")
            return _fixed_code(fmt, fmt.max_int if value > 0 else fmt.min_int)
        x = abs(Fraction(value)) * (1 << fmt.frac_bits)
        q = _round_int(value < 0, x, rounding, rand, sr_bits)
        v = _fit_int(IntFormat(fmt.width), -q if value < 0 else q, True if saturate is None else saturate)
        return _fixed_code(fmt, v)
    if isinstance(fmt, IntFormat):
        q = _round_int(value < 0, abs(Fraction(value)), rounding, rand, sr_bits)
        v = _fit_int(fmt, -q if value < 0 else q, True if saturate is None else saturate)
        return v & ((1 << fmt.bits) - 1)
    saturate = bool(saturate)
    if value != value:
        return fmt.nan_code
    neg = value < 0 or (value == 0 and str(value).startswith("-"))
    if value in (float("inf"), float("-inf")):
        if fmt.has_inf and not saturate:
            return (fmt.sign_bit if neg else 0) | fmt.inf_code
        if fmt.has_nan and not saturate:
            return fmt.nan_code
        return (fmt.sign_bit if neg else 0) | fmt.max_code
    return round_ref(fmt, neg, abs(Fraction(value)), rounding, saturate=saturate, rand=rand, sr_bits=sr_bits)


def _fixed_code(fmt: FixedFormat, k: int) -> int:
    return k & ((1 << fmt.width) - 1)


def _mac_fixed_ref(spec: MacSpec, sa, va, sb, vb, sc, vc, rand) -> int:
    """A fixed-point accumulator: the exact rational sum rounded to a multiple of ``2**-F``.

    Stated on its own (not through the fast path's floor/residual split): the product is the
    exact rational ``a*b``; a NaN product (NaN operand, ``inf * 0``) gives the most negative code,
    an infinite one the most positive / most negative code by its sign; otherwise ``acc + a*b``
    is scaled by ``2**F``, rounded to an integer by the magnitude rules of ``_round_int`` with
    the sum's sign, and wrapped or saturated into ``I + F`` bits.
    """
    fmt: FixedFormat = spec.acc
    as_int = IntFormat(fmt.width)
    if va is NAN or vb is NAN or (va is INF and vb == 0) or (vb is INF and va == 0):
        return _fixed_code(fmt, as_int.min_int)
    if va is INF or vb is INF:
        return _fixed_code(fmt, as_int.min_int if sa ^ sb else as_int.max_int)
    total = ((-1 if sa ^ sb else 1) * va * vb + (-1 if sc else 1) * vc) * (1 << fmt.frac_bits)
    q = _round_int(total < 0, abs(total), spec.rounding, rand, spec.sr_bits)
    return _fixed_code(fmt, _fit_int(as_int, -q if total < 0 else q, spec.saturate))


def mac_step_ref(spec: MacSpec, acc: int, a: int, b: int, rand: int | None = None) -> int:
    """One MAC cycle on Python ints, following the rules in :mod:`psum.golden.mac` line by line."""
    spec = MacSpec.parse(spec)
    sa, va = decode_ref(spec.a, a)
    sb, vb = decode_ref(spec.b, b)
    sc, vc = decode_ref(spec.acc, acc)
    if isinstance(spec.acc, FixedFormat):
        return _mac_fixed_ref(spec, sa, va, sb, vb, sc, vc, rand)

    if spec.int_acc:
        p = (-1 if sa ^ sb else 1) * int(va * vb)
        if spec.prod is not None:
            p = _fit_int(spec.prod, p, spec.saturate)
        s = _fit_int(spec.acc, (-1 if sc else 1) * int(vc) + p, spec.saturate)
        return s & ((1 << spec.acc.bits) - 1)

    fmt: FloatFormat = spec.acc
    # Product, exact, with its special cases.
    sp = sa ^ sb
    if va is NAN or vb is NAN or (va is INF and vb == 0) or (vb is INF and va == 0):
        vp = NAN
    elif va is INF or vb is INF:
        vp = INF
    else:
        vp = va * vb
    if spec.prod is not None:
        if vp == 0 and not spec.prod.has_neg_zero:
            sp = False
        if vp not in (NAN, INF):
            mode = Rounding.RNE if spec.rounding is Rounding.SR else spec.rounding
            sp, vp = decode_ref(spec.prod, round_ref(spec.prod, sp, vp, mode, saturate=spec.saturate))

    return _sum_ref(spec, fmt, sp, vp, sc, vc, rand)


def _sum_ref(spec: MacSpec, fmt: FloatFormat, sp, vp, sc, vc, rand) -> int:
    """``round((-1)**sp * vp + (-1)**sc * vc)`` into the float accumulator, specials first."""
    # Sum, with its special cases in priority order.
    if vp is NAN or vc is NAN or (vp is INF and vc is INF and sp != sc):
        # A format without NaN (fin) holds +0: the rule of psum.golden.mac.nan_result_code,
        # restated here on purpose so the reference does not share the fast paths' code.
        return fmt.nan_code if fmt.has_nan else 0
    if vp is INF or vc is INF:
        s = sp if vp is INF else sc
        if fmt.has_inf:
            return (fmt.sign_bit if s else 0) | fmt.inf_code
        if spec.saturate or not fmt.has_nan:
            return (fmt.sign_bit if s else 0) | fmt.max_code
        return fmt.nan_code
    total = (-vp if sp else vp) + (-vc if sc else vc)
    if total == 0:
        rdn = spec.rounding is Rounding.RDN
        if vp == 0 and vc == 0:
            zsign = (sp or sc) if rdn else (sp and sc)
        else:
            zsign = rdn
        return _zero(fmt, zsign)
    return round_ref(fmt, total < 0, abs(total), spec.rounding, saturate=spec.saturate,
                     rand=rand, sr_bits=spec.sr_bits)


def mta_sum_ref(terms, w: int, trunc: str = "zero") -> tuple[Fraction, Fraction]:
    """The exact sum of one group of a multi-term adder (``order=mta<N>w<W>p<P>[floor]``).

    Each term is cut to a multiple of ``lsb = 2**(e - w + 1)``, ``e`` the largest term's
    leading-one exponent (found by comparing with powers of two): toward zero
    (``trunc="zero"``: ``sign * (|t| // lsb) * lsb``) or toward -inf (``trunc="floor"``:
    ``(t // lsb) * lsb``, Python's floor division), then the cut terms are added exactly.

    Parameters
    ----------
    terms : sequence of Fraction
        The register and the group's exact products, finite values.
    w : int
        W, the bits kept from the leading one down.
    trunc : {"zero", "floor"}

    Returns
    -------
    (Fraction, Fraction)
        The sum and ``lsb`` (``(0, 0)`` when every term is zero).
    """
    nz = [abs(t) for t in terms if t != 0]
    if not nz:
        return Fraction(0), Fraction(0)
    e = _floor_log2(max(nz))
    lsb = _pow2(e - w + 1)
    if trunc == "floor":
        return sum((t // lsb) * lsb for t in terms), lsb
    return sum((1 if t > 0 else -1) * (abs(t) // lsb) * lsb for t in terms), lsb


# ---------------------------------------------------------------------------------------------
# Block-scaled dot product (psum.golden.blocks), one vector of J blocks at a time
# ---------------------------------------------------------------------------------------------
def _scale_ref(fmt, code: int):
    """Value of a scale code: a Fraction, or NAN (E8M0: ``2**(c - bias)``, all ones NaN)."""
    from .formats import Pow2Format

    if isinstance(fmt, Pow2Format):
        return NAN if code == (1 << fmt.exp_bits) - 1 else _pow2(code - fmt.bias)
    sign, v = decode_ref(fmt, code)
    return NAN if v is NAN or v is INF else (-v if sign else v)


def block_dot_ref(spec, acc: int, a_scales, a_elems, b_scales, b_elems, rand=None, bsum_rand=None) -> int:
    """The block dot product on Python ints and Fractions: ``acc := round(acc + T_j)``, j in order.

    ``T_j = P_j * Sa_j * Sb_j`` with ``P_j`` the exact sum of the block's element products (or,
    with ``spec.bsum``, the products accumulated one by one into ``bsum`` by :func:`mac_step_ref`);
    a NaN scale, a NaN element or ``inf * 0`` makes the term NaN, an infinite product an infinite
    term (``+inf`` and ``-inf`` together: NaN); an exact zero term is ``+0``.

    Parameters
    ----------
    spec : MacSpec or str
        Block-scaled, ``order=seq``.
    acc : int
        Accumulator code.
    a_scales, b_scales : sequence of int, length J
    a_elems, b_elems : sequence of sequences of int, J x k
    rand, bsum_rand : optional
        Stochastic rounding: one integer per block (accumulation), per product (``bsum``).
    """
    spec = MacSpec.parse(spec)
    fa, fb = spec.a, spec.b
    for j in range(len(a_scales)):
        Sa, Sb = _scale_ref(fa.scale, int(a_scales[j])), _scale_ref(fb.scale, int(b_scales[j]))
        nan = Sa is NAN or Sb is NAN
        infs = set()
        total = Fraction(0)
        if spec.bsum is not None:
            inner = MacSpec(a=fa.elem, b=fb.elem, acc=spec.bsum, rounding=spec.rounding,
                            sr_bits=spec.sr_bits or None, overflow="sat" if spec.saturate else None)
            code = 0
            for i, (x, y) in enumerate(zip(a_elems[j], b_elems[j])):
                r = None if bsum_rand is None else int(bsum_rand[j][i])
                code = mac_step_ref(inner, code, int(x), int(y), r)
            s_, v_ = decode_ref(spec.bsum, code)
            if v_ is NAN:
                nan = True
            elif v_ is INF:
                infs.add(s_)
            else:
                total = -v_ if s_ else v_
        else:
            for x, y in zip(a_elems[j], b_elems[j]):
                (s1, v1), (s2, v2) = decode_ref(fa.elem, int(x)), decode_ref(fb.elem, int(y))
                if v1 is NAN or v2 is NAN or (v1 is INF and v2 == 0) or (v2 is INF and v1 == 0):
                    nan = True
                elif v1 is INF or v2 is INF:
                    infs.add(s1 ^ s2)
                else:
                    total += (-1 if s1 ^ s2 else 1) * v1 * v2
        if nan or len(infs) == 2:
            sp, vp = False, NAN
        elif infs:
            sp, vp = infs.pop() ^ ((Sa < 0) ^ (Sb < 0)), INF
        else:
            t = total * Sa * Sb
            sp, vp = t < 0, abs(t)  # an exact zero term is +0
        r = None if rand is None else int(rand[j])
        sc, vc = decode_ref(spec.acc, acc)
        if isinstance(spec.acc, (FixedFormat, IntFormat)):
            # an integer accumulator int<W> is the grid q<W>.0: frac_bits 0, same codes
            fmt = spec.acc if isinstance(spec.acc, FixedFormat) else FixedFormat(spec.acc.bits, 0)
            as_int = IntFormat(fmt.width)
            if vp is NAN:
                acc = _fixed_code(fmt, as_int.min_int)
            elif vp is INF:
                acc = _fixed_code(fmt, as_int.min_int if sp else as_int.max_int)
            else:
                tot = ((-vp if sp else vp) + (-vc if sc else vc)) * (1 << fmt.frac_bits)
                q = _round_int(tot < 0, abs(tot), spec.rounding, r, spec.sr_bits)
                acc = _fixed_code(fmt, _fit_int(as_int, -q if tot < 0 else q, spec.saturate))
        else:
            acc = _sum_ref(spec, spec.acc, sp, vp, sc, vc, r)
    return acc


def tree_order_ref(spec: MacSpec, a, b, init: int, rand=None) -> int:
    """One dot product in ``order=tree<N>``, scalar: :func:`mac_step_ref` for every rounding.

    The semantics of :func:`psum.golden.emulation.kernels.accumulate_order`'s ``tree<N>``, written
    out on their own: pad the K products to a multiple of N with zero operands (codes 0); per
    group of N, leaf i is ``mac_step_ref(seq, +0, a_i, b_i)``; the leaves are summed pairwise,
    level by level, left to right, an odd last node moving up unchanged, each pair one add step
    (:func:`psum.golden.spec.add_spec` into ``acc``); the register R starts at ``init`` and takes
    ``R := add(R, group_sum)`` per group.

    Parameters
    ----------
    spec : MacSpec
        A spec with ``order=tree<N>``.
    a, b : sequence of int
        The K operand codes.
    init : int
        The bias (accumulator code).
    rand : callable, optional
        ``rand(step) -> int``, the random bits of each rounding (``round=sr``), steps numbered as
        ``accumulate_order`` documents.

    Returns
    -------
    int
        The accumulator code of the result.
    """
    spec = MacSpec.parse(spec)
    n = spec.order.n
    seq, sadd = spec.replace(order="seq"), add_spec(spec, spec.acc)
    a, b = list(a), list(b)
    groups = -(-len(a) // n)
    kp = groups * n
    a += [0] * (kp - len(a))
    b += [0] * (kp - len(b))

    def r(step):
        return None if rand is None else rand(step)

    acc = init
    for g in range(groups):
        level = [mac_step_ref(seq, 0, a[k], b[k], r(k)) for k in range(g * n, g * n + n)]
        step = kp + g * n
        while len(level) > 1:
            nxt = []
            for i in range(0, len(level) - 1, 2):
                nxt.append(mac_step_ref(sadd, level[i], level[i + 1], 1, r(step)))
                step += 1
            if len(level) % 2:
                nxt.append(level[-1])
            level = nxt
        acc = mac_step_ref(sadd, acc, level[0], 1, r(kp + g * n + n - 1))
    return acc
