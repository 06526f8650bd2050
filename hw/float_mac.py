"""The float MAC generator: ``acc := round(acc + a*b)`` once per cycle, exactly as the golden model.

Built from a :class:`psum.golden.MacSpec` only. Every enabled cycle the register takes
``psum.golden.mac_step(spec, acc, a, b, rand)``: float x float, int x int or int x float operands
into a float accumulator; exact product (fused) or a product rounded to ``spec.prod`` (unfused);
every rounding mode (fixed at generation time; stochastic rounding reads ``rnd``); subnormals or
flush-to-zero; the ``ieee``, ``fn``, ``fnuz`` and ``fin`` special-value policies; saturating or IEEE
overflow.

Datapath (``../shared/STYLE.md`` section 4, the order of cvfpu's ``fpnew_fma``)::

    unpack a, b, acc  ->  classify + specials apart (NaN > inf > exact zero > rounded sum)
        -> exact product (sign, a.mag * b.mag, a.exp + b.exp)
        -> [unfused: FloatRounder(prod) -> unpack(prod)]
        -> place the product: at its field's top, unnormalised (FloatStep.place), or normalised
           where its leading zeros would widen the window by more than two bits; the
           accumulator enters at its field's top (_top_aligned)
        -> align the smaller term in a W-bit window with a sticky (jam) bit
        -> add / subtract -> FloatRounder(acc): one leading-zero count and one left shift,
           capped at emin (gradual underflow), one increment that rounds and packs
        -> pick the special or the rounded code -> register

As in cvfpu's FMA, the significand is normalised once, after the add; unlike it, the larger
term (by field top) is swapped to the window's top, so the window is W ~ 2p + 3 bits, not 3p + 4.

The combinational step lives in :class:`FloatStep` (three parts: ``product``, ``place`` (or
``normalise``), ``accumulate``), so the order units (:mod:`psum.hw.chunk`, :mod:`psum.hw.ilv`)
reuse it, and the pipeline cuts of ``MacImpl(pipeline=k)`` fall between its parts::

    pipeline=0:  [product -> place -> accumulate] -> acc        (latency 0)
    pipeline=1:  product | s1 regs | place -> accumulate -> acc  (latency 1)
    pipeline=2:  product | s1 regs | place | s2 regs | accumulate -> acc  (latency 2)

Only the product side can be cut: alignment, add and rounding read the accumulator, so they form
the loop that must close in one cycle. ``en``, ``load``, ``init`` (and ``rnd``) travel with the
product through the same registers; ``rst`` clears them and the accumulator at once.

The window argument (restated for this structure in :meth:`FloatStep._add`): each term enters
at a *top* (its field's top bit, or its leading one when normalised) with at most ``K`` leading
zeros below it (``K`` = 0 normalised, ``Normalised.lz_max``); the larger top goes to the
window's top, never below the accumulator's ``emin``. With W >= max(golden's
:func:`psum.golden.mac.window_bits`, K + p_acc + sr_bits + 3) the larger term is exact, and the
smaller term's bits below the window, OR-ed into its lsb (round to odd), lie at least
``sr_bits + 2`` places below the result's ulp, so guard, sticky, ties and the stochastic-rounding
residual bits are all unchanged by the jam.

Generation-time specialisation: class flags a format cannot raise are Python ``False`` (no gates),
leading-zero counts only look where a leading one can be (one bit for normal-only floats), the
rounder drops the subnormal shifter for flush-to-zero formats and the overflow logic where the
exponent range cannot overflow.
"""

from __future__ import annotations

import dataclasses

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from psum.golden import FloatFormat, Rounding
from psum.golden.mac import infinity_codes, nan_result_code, window_bits
from psum.golden.rounding import exact_zero_sign

from .float_parts import (
    FloatRounder,
    Unpacked,
    all_of,
    any_of,
    as_bit,
    int_shape,
    leading_zeros,
    stage,
    unpack,
)
from .multiplier import multiply
from .unit import MacUnit

__all__ = ["FloatMac", "FloatStep", "Normalised", "register_stage"]


def _sig(m: Module, lo: int, hi: int, value, name: str) -> Signal:
    """A signal holding every integer of ``[lo, hi]``, driven by ``value``."""
    s = Signal(int_shape(lo, hi), name=name)
    m.d.comb += s.eq(value)
    return s


def register_stage(m: Module, obj, name: str):
    """A copy of ``obj`` whose Amaranth values are registered in ``m``'s ``sync`` domain.

    ``obj`` is a dataclass (:class:`Unpacked`, :class:`Normalised`), a dict or a single value;
    Python constants (a flag the formats rule out, a bound) pass through unregistered, so a pipeline
    cut costs flip-flops only for what the spec can use. The registers take their reset value on
    ``rst`` (the ``sync`` domain's reset), which is how a reset discards the inputs in flight.
    """
    def reg(key, v):
        if not isinstance(v, Value):
            return v
        r = Signal(v.shape(), name=f"{name}_{key}")
        m.d.sync += r.eq(v)
        return r

    if isinstance(obj, dict):
        return {k: reg(k, v) for k, v in obj.items()}
    if dataclasses.is_dataclass(obj):
        return dataclasses.replace(obj, **{f.name: reg(f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj)})
    return reg("v", obj)


@dataclasses.dataclass(frozen=True)
class Normalised:
    """A term of the sum with its leading one moved to the top of ``norm``.

    ``lead`` is the exponent of that leading one (``lead_lo``..``lead_hi``); the class flags are
    those of :class:`Unpacked`. Meaningless ``norm``/``lead`` for a zero term (its flag says so).
    """

    sign: Value
    norm: Value
    lead: Value
    zero: object
    inf: object
    nan: object
    lead_lo: int
    lead_hi: int
    #: Most leading zeros ``norm`` can have when the term is the larger one (0: normalised).
    lz_max: int = 0
    #: The exponent is ``lead + lead_off`` (``lead_lo``/``lead_hi`` bound the exponent itself):
    #: a term may carry its exponent in a shifted frame, e.g. the accumulator's biased field,
    #: so that no constant adder is spent on it.
    lead_off: int = 0

    @property
    def width(self) -> int:
        """Width of ``norm`` in bits."""
        return len(self.norm)


class FloatStep:
    """``mac_step(spec, c, a, b)`` as combinational logic, in three parts that pipeline cuts separate.

    :meth:`product` (unpack a and b, exact product, unfused rounding) -> :meth:`normalise` (the
    product's leading one to the top) -> :meth:`accumulate` (read the accumulator code, align,
    add, round, specials). Not a component: a builder that adds its logic to the caller's
    module, so a unit can instantiate several steps (the chunked unit's two levels) side by side.

    Parameters
    ----------
    spec : MacSpec
        A float-accumulator spec (its ``order`` is ignored: one step).
    name : str
        Prefix of every signal and submodule name, unique within the module.
    multiplier : str
        Structure of the significand multiplier (:attr:`psum.hw.impl.MacImpl.multiplier`).
    """

    def __init__(self, spec, *, name: str = "", multiplier: str = "array"):
        self._spec = spec
        self._name = name
        self._multiplier = multiplier

    @property
    def window(self) -> int:
        """Golden's window width (:func:`psum.golden.mac.window_bits`); the datapath's window is
        wider by what an unnormalised product's leading zeros need (:meth:`place`, at most 2)."""
        return window_bits(self._spec)

    def _n(self, s: str) -> str:
        return f"{self._name}_{s}" if self._name else s

    def __call__(self, m: Module, c_bits, a_bits, b_bits, rnd=None) -> Signal:
        """The next accumulator code for accumulator ``c_bits`` and operands ``a_bits``, ``b_bits``."""
        return self.accumulate(m, self.place(m, self.product(m, a_bits, b_bits)), c_bits, rnd)

    # -----------------------------------------------------------------------------------------
    def product(self, m: Module, a_bits, b_bits) -> Unpacked:
        """Unpack ``a`` and ``b``, form the exact product; unfused: round it into ``spec.prod``."""
        spec = self._spec
        a = unpack(stage(m, self._n("a"), "unpack"), spec.a, a_bits, name=self._n("a"))
        b = unpack(stage(m, self._n("b"), "unpack"), spec.b, b_bits, name=self._n("b"))
        p = self._product(stage(m, self._n("p"), "multiplier"), a, b)
        # Unfused: round the product into spec.prod with the shared rounder, then read it back
        # as an operand of that format (its class may change: overflow to inf/NaN, underflow
        # to zero).
        if spec.prod is not None:
            p = self._round_product(m, p)
        return p

    def normalise(self, m: Module, t: Unpacked, which: str = "p") -> Normalised:
        """Leading one of ``t`` to the top, and its exponent.

        Why normalise first: the window is placed below the larger term's leading one, and a
        subnormal or integer term has leading zeros.
        """
        name = self._n(which)
        m = stage(m, name, "normalise")
        lz, _ = leading_zeros(m, t.mag, name=name, top=t.lead)
        n = Signal(t.width, name=f"{name}_norm")
        m.d.comb += n.eq((t.mag << lz)[:t.width])
        lo, hi = t.exp_lo - 1, t.exp_hi + t.width - 1
        lead = _sig(m, lo, hi, t.exp + (t.width - 1) - lz, f"{name}_lead")
        return Normalised(sign=t.sign, norm=n, lead=lead, zero=t.zero, inf=t.inf, nan=t.nan,
                          lead_lo=lo, lead_hi=hi)

    def place(self, m: Module, t: Unpacked, which: str = "p") -> Normalised:
        """The product as a term of the sum: unnormalised when a slightly wider window allows it.

        Why: a product's leading zeros come only from subnormal (or integer) operands, and they
        are bounded at generation time: ``Unpacked.cases`` pairs each case's highest field top
        with its most leading zeros. Only a product whose field top can reach the accumulator's
        ``emin`` can be the larger term (``_add`` never places the window's top below it), so
        ``K`` = the most leading zeros among those cases. A term that enters at its field's top
        with at most ``K`` leading zeros keeps the window argument when W >= K + p_acc +
        sr_bits + 3 (``_add``'s docstring). The product of two normal significands has K = 1;
        of a subnormal and a normal one, K = p (fp16: 11); two subnormals' product lies below
        a same-format accumulator's ``emin`` and never counts. When that W is at most two bits
        above :attr:`window`, the leading-zero count and shifter of :meth:`normalise` (an LZC
        and a 2p-bit shifter) are dropped for one or two more bits of window; otherwise the
        product is normalised as before. The rounder's own leading-zero count finds the leading
        one of the sum in either case.
        """
        spec = self._spec
        k = max((lz for top, lz in t.cases if top >= spec.acc.emin), default=0)
        if k + spec.acc.precision + spec.sr_bits + 3 > self.window + 2:
            return self.normalise(m, t, which)
        top = t.width - 1
        lead = _sig(m, t.exp_lo + top, t.exp_hi + top, t.exp + top, self._n(f"{which}_top"))
        return Normalised(sign=t.sign, norm=t.mag, lead=lead, zero=t.zero, inf=t.inf, nan=t.nan,
                          lead_lo=t.exp_lo + top, lead_hi=t.exp_hi + top, lz_max=k)

    @staticmethod
    def _top_aligned(c: Unpacked) -> Normalised:
        """The accumulator as a term *without* normalising it: ``lead`` is its field's top bit.

        Why no leading-zero count and shifter here: only a subnormal accumulator has leading
        zeros, and the window argument holds with its field's top (``emin``) in place of its
        leading one. (1) If the product is placed above it, the product is normalised and the
        argument is golden's. (2) If the accumulator is placed above it (its top ``emin`` >= the
        product's leading one), both terms are below ``2**(emin + 1)``, so every result's ulp is at
        least ``emin - M``, while the window's lsb is ``emin - W + 1``: the jam lies
        ``W - M - 1 >= sr_bits + 3`` places below it (W >= p_acc + sr_bits + 4). The product may
        then be the larger value even with distinct tops; the adder's sign flip handles a
        negative difference, and the jam (round to odd at the window's lsb) keeps the rounding.
        (3) Near cancellation (tops one apart or equal): both terms fit the window exactly
        (W >= max precision + 2), no jam. A normal accumulator's top is its leading one.
        """
        C = c.width
        # The lead in the frame of the exponent field: c.exp - exp_lo + 1 is the field itself (1
        # for a subnormal), so the unpacker's bias subtraction and this one cancel and no adder
        # is left; the offset travels as a constant (Normalised.lead_off).
        off = c.exp_lo - 1 + C - 1
        return Normalised(sign=c.sign, norm=c.mag, lead=c.exp + (C - 1 - off), zero=c.zero, inf=c.inf,
                          nan=c.nan, lead_lo=c.exp_lo + C - 1, lead_hi=c.exp_hi + C - 1, lead_off=off)

    def accumulate(self, m: Module, p: Normalised, c_bits, rnd=None) -> Signal:
        """The next accumulator code: ``round(c + p)`` with the specials' priority."""
        spec = self._spec
        fmt: FloatFormat = spec.acc
        # The accumulator is read back through the same unpacker as the operands: a DAZ
        # subnormal loaded with `init` is a zero, as the golden model reads it.
        c = unpack(stage(m, self._n("c"), "unpack"), fmt, c_bits, name=self._n("c"))
        sm = stage(m, self._n("s"), "specials")

        # =====================================================================================
        # Specials apart, fixed priority: NaN, then inf, then an exact zero sum.
        # =====================================================================================
        # inf - inf is invalid; a NaN operand or an invalid product is already in p.nan.
        nan = any_of(p.nan, c.nan, all_of(p.inf, c.inf, p.sign ^ c.sign))
        inf = any_of(p.inf, c.inf)

        # =====================================================================================
        # Significand datapath: normalise, align in the window, add, round.
        # =====================================================================================
        sign, mag, top, top_lo, top_hi, top_off = self._add(m, p, self._top_aligned(c))
        # The rounder takes the window's top (in its frame) and the offset to the lsb's exponent
        # (a constant that folds into the rounder's own additions: no adder here).
        off = top_off - (len(mag) - 2)
        rnd_u = FloatRounder(fmt, rounding=spec.rounding, saturate=spec.saturate, mag_width=len(mag),
                             exp_range=(top_lo, top_hi), sr_bits=spec.sr_bits, exp_offset=off)
        m.submodules[self._n("round_sum")] = rnd_u
        m.d.comb += [rnd_u.sign.eq(sign), rnd_u.mag.eq(mag), rnd_u.exp.eq(top)]
        if spec.rounding is Rounding.SR:
            m.d.comb += rnd_u.rnd.eq(rnd)

        # -- exact zero sums: IEEE 754 section 6.3 sign rules ------------------------------------
        # Both terms zero: -0 only if both are -0 (rdn: if either is). Cancellation of non-zero
        # terms: +0 (rdn: -0). A non-zero sum that rounds to zero kept its sign in the rounder.
        # The rule is the rule book's, the same body golden and the kernels run.
        zsign = exact_zero_sign(spec.rounding, both_zero=as_bit(p.zero) & c.zero, sp=p.sign, sc=c.sign)
        zero_code = Cat(Const(0, fmt.width - 1), zsign & int(fmt.has_neg_zero))
        total_zero = Signal(name=self._n("total_zero"))
        sm.d.comb += total_zero.eq(mag == 0)

        # -- the special codes -------------------------------------------------------------------
        # Codes of an infinite result by sign: golden's infinity_codes table (inf, or without inf
        # max finite when saturating / in a fin format, else NaN), constants at generation time.
        inf_sign = Mux(as_bit(p.inf), p.sign, c.sign) if p.inf is not False else c.sign
        ipos, ineg = infinity_codes(fmt, spec.saturate)
        if ineg == ipos:  # the canonical NaN
            inf_code = Const(ipos, fmt.width)
        else:  # the same magnitude for both signs
            inf_code = Cat(Const(ipos, fmt.width - 1), inf_sign)
        nan_code = Const(nan_result_code(fmt), fmt.width)  # the rule book: +0 without NaN

        # The rounded sum is computed for every input and overridden here, in the golden
        # model's priority: NaN, then inf, then an exact zero, then the rounded code.
        nxt = Signal(fmt.width, name=self._n("nxt"))
        result = Mux(total_zero, zero_code, rnd_u.code)
        if inf is not False:
            result = Mux(inf, inf_code, result)
        if nan is not False:
            result = Mux(nan, nan_code, result)
        sm.d.comb += nxt.eq(result)
        return nxt

    # -----------------------------------------------------------------------------------------
    def _product(self, m: Module, a: Unpacked, b: Unpacked) -> Unpacked:
        """The exact product ``a * b`` with its class (golden ``_mac_float``'s first block)."""
        # inf * 0 is invalid (NaN); a NaN operand gives NaN; only then can inf or zero win.
        nan = any_of(a.nan, b.nan, all_of(a.inf, b.zero), all_of(a.zero, b.inf))
        if nan is not False:
            nan_s = Signal(name=self._n("p_nan"))
            m.d.comb += nan_s.eq(nan)
            nan = nan_s
        inf = all_of(any_of(a.inf, b.inf), ~as_bit(nan) if nan is not False else True)
        # The zero flag may be set together with nan (inf * 0); nan has priority everywhere
        # it is read, so the flag needs no masking.
        zero = Signal(name=self._n("p_zero"))
        m.d.comb += zero.eq(a.zero | b.zero)
        # IEEE: the sign of a product is the XOR of the signs, for zeros and infinities too.
        sign = Signal(name=self._n("p_sign"))
        m.d.comb += sign.eq(a.sign ^ b.sign)
        # Why no rounding here: a.mag * b.mag has at most a.precision + b.precision bits, all
        # kept; the window below decides what reaches the rounder.
        mag = Signal(a.width + b.width, name=self._n("p_mag"))
        m.d.comb += mag.eq(multiply(m, a.mag, b.mag, kind=self._multiplier, name=self._n("p_mul")))
        # Exponents of the lsbs add: (ma * 2**ea) * (mb * 2**eb) = (ma * mb) * 2**(ea + eb).
        lo, hi = a.exp_lo + b.exp_lo, a.exp_hi + b.exp_hi
        exp = _sig(m, lo, hi, a.exp + b.exp, self._n("p_exp"))
        # The leading one of a product of two normal-only floats is in its top two bits.
        lead = a.width + b.width if (a.lead > 1 or b.lead > 1) else 2
        # Per pair of operand cases: field tops add plus one ((ea + Pa - 1) + (eb + Pb - 1) + 1
        # is the product's top), and a product of significands with za and zb leading zeros has
        # at most za + zb + 1 (2**(Pa-1-za) * 2**(Pb-1-zb) = 2**(P-2-za-zb)).
        cases = tuple(sorted({(ta + tb + 1, za + zb + 1) for ta, za in a.cases for tb, zb in b.cases}))
        return Unpacked(sign=sign, mag=mag, exp=exp, zero=zero, inf=inf, nan=nan,
                        exp_lo=lo, exp_hi=hi, lead=lead, lz_cases=cases)

    def _round_product(self, m: Module, p: Unpacked) -> Unpacked:
        """Round the exact product into ``spec.prod`` and unpack it (the unfused MAC)."""
        spec = self._spec
        pf: FloatFormat = spec.prod
        # A zero product has no sign in a fnuz product format.
        sign = p.sign
        if pf.specials == "fnuz":
            sign = p.sign & ~p.zero
        # The product rounding uses the unit's mode, except that stochastic rounding is applied
        # to the accumulation only (the product rounds to nearest-even).
        mode = Rounding.RNE if spec.rounding is Rounding.SR else spec.rounding
        rnd = FloatRounder(pf, rounding=mode, saturate=spec.saturate, mag_width=p.width,
                           exp_range=(p.exp_lo, p.exp_hi), lead=p.lead)
        m.submodules[self._n("round_prod")] = rnd
        m.d.comb += [rnd.sign.eq(p.sign), rnd.mag.eq(p.mag), rnd.exp.eq(p.exp)]
        m = stage(m, self._n("q"), "round")
        # Why round-trip through the code: the product's overflow (inf, NaN or max finite per
        # policy), flush-to-zero and fnuz rules are then exactly those of a stored prod value,
        # and the sum datapath below sees a prod-format operand like any other.
        q = unpack(m, pf, rnd.code, name=self._n("q"))

        # Only a finite non-zero exact product takes the rounded one's sign, magnitude and class;
        # zero, inf and NaN products keep theirs.
        finite = Signal(name=self._n("q_finite"))
        m.d.comb += finite.eq(~p.zero & ~as_bit(any_of(p.inf, p.nan)))
        q_sign = Signal(name=self._n("q_sgn"))
        if pf.specials == "fnuz":  # a product that rounded to zero has no sign there either
            m.d.comb += q_sign.eq(Mux(finite, q.sign & ~q.zero, sign))
        else:
            m.d.comb += q_sign.eq(Mux(finite, q.sign, sign))
        mag = Signal(q.width, name=self._n("q_m"))
        m.d.comb += mag.eq(Mux(finite, q.mag, 0))
        zero = Signal(name=self._n("q_z"))
        m.d.comb += zero.eq(Mux(finite, q.zero, p.zero))
        inf = any_of(all_of(finite, q.inf), p.inf)
        nan = any_of(all_of(finite, q.nan), p.nan)
        return Unpacked(sign=q_sign, mag=mag, exp=q.exp, zero=zero, inf=inf, nan=nan,
                        exp_lo=q.exp_lo, exp_hi=q.exp_hi, lead=q.lead, lz_cases=q.lz_cases)

    def _add(self, m: Module, p: Normalised, c: Normalised):
        """Exact-enough sum of the product and the accumulator, as golden ``_add_round``.

        Returns ``(sign, mag, top, top_lo, top_hi, off)``: the sum is ``(-1)**sign * mag *
        2**(top + off - W + 1)`` with the window's jam bit in ``mag``'s lsb; ``mag`` is W + 1
        bits and ``top + off`` the exponent of the window's top bit (``top`` in ``[top_lo,
        top_hi]``, ``off`` the accumulator's ``lead_off``).

        The window argument. Each term has a *top* T (``lead``: its field's top bit; its leading
        one if normalised) and at most K leading zeros below it when it is the larger term
        (product: ``p.lz_max``; accumulator: see (3)). The term with the larger top is ``big``;
        the window is its W bits from T down, its lsb j = T - W + 1. W >= P + 2 and >= C + 2,
        so (1) ``big`` is exact in the window and (2) when the tops differ by at most
        W - width(small) the smaller term is exact too: no jam, exact sum, and the rounder's
        leading-zero count finds its leading one. Otherwise bits of ``small`` fall below j and
        are OR-ed into its lsb: small' = RO_j(small) (round to odd at j). Since ``big`` is a
        multiple of 2**j, big +- small' = RO_j(big +- small), whose bits above j are those of
        the exact sum. (3) With a jam and a product ``big`` with leading one L >= T - K: small
        < 2**(T - W + C + 1) <= 2**(L - 2) (W >= K + C + 3), so the sum > 2**(L - 1), its ulp
        u >= L - 1 - M_acc >= T - K - p_acc, and u - j >= W - 1 - K - p_acc >= sr_bits + 2:
        guard (u - 1), the sr_bits residual bits and, below them, the sticky are those of the
        exact sum, and rounding RO_j(sum) gives round(sum). With the accumulator ``big``:
        normal, it is normalised (K = 0; small < 2**(T - 1) by W >= P + 2, the same bound on u); subnormal, its top is ``emin``
        and every result's ulp is at least emin - M_acc, W - M_acc - 1 >= sr_bits + 3 above j
        (:meth:`_top_aligned`); zero, it is never ``big`` unless the product's top is below
        ``emin``, then the sum is the product, rounded as in the subnormal case. Hence
        W = max(:attr:`window`, K + p_acc + sr_bits + 3).
        """
        P, C = p.width, c.width
        # An unnormalised product (place) widens the window by what its leading zeros need.
        W = max(self.window, p.lz_max + self._spec.acc.precision + self._spec.sr_bits + 3)
        n_p, n_c = p.norm, c.norm
        lp_lo, lp_hi, lc_lo, lc_hi = p.lead_lo, p.lead_hi, c.lead_lo, c.lead_hi
        # Both leads in the accumulator's frame (exponent = lead + off): the product's constant
        # shift folds into the adder that formed its lead.
        off = c.lead_off
        l_c = c.lead
        l_p = p.lead + (p.lead_off - off) if p.lead_off != off else p.lead
        p_zero = as_bit(p.zero)
        # Two stages for the breakdown: the alignment (compare, swap, shift, jam, exponent)
        # and the adder (add/subtract, absolute value).
        ad = stage(m, self._n("s"), "adder")
        m = stage(m, self._n("s"), "align")

        # -- pick the larger term by leading-one position (a zero term is never the larger) ---
        # Comparing leading-one positions (not full magnitudes) is enough: the window only
        # needs the larger *binade*; within equal binades either order is exact (no jam).
        # One subtractor serves the comparison and the alignment distance below.
        gap = _sig(m, lp_lo - lc_hi, lp_hi - lc_lo, l_p - l_c, self._n("gap"))
        # A zero accumulator is a term with mag 0 whose lead is its field's top (emin, see
        # _top_aligned), so a product below emin is the *smaller* term: the window's top never
        # lies below emin (l_max >= lc_lo), and the rounder then needs no denormalising right
        # shift (FloatRounder._merged). The product is exact in the window when its lead is
        # emin - 1 or higher (P <= W - 2); further down it is jammed, and the sum, 0 + product,
        # is rounded exactly as argued in _top_aligned (2): a subnormal accumulator's ulp is
        # emin - M, W - M - 1 >= sr_bits + 3 places above the jam. A flush-to-zero accumulator
        # flushes such a sum either way: it is below 2**(emin - 1), and so is its jammed value.
        p_big = Signal(name=self._n("p_big"))
        m.d.comb += p_big.eq(~p_zero & (gap >= 0))
        # Both terms in the window's top: the larger one exactly (W >= its precision + 2).
        w_p = Cat(Const(0, W - P), n_p)
        w_c = Cat(Const(0, W - C), n_c)
        big = Signal(W, name=self._n("big"))
        small = Signal(W, name=self._n("small"))
        # The product enters as the smaller term one place lower (w_p >> 1, exact: its lsb is a
        # window zero since W >= P + 2), so that its distance is ~gap = |gap| - 1 when gap < 0:
        # the alignment distance is gap or its one's complement, with no negation (an adder)
        # and no multiplexer of the two.
        m.d.comb += [big.eq(Mux(p_big, w_p, w_c)), small.eq(Mux(p_big, w_c, w_p >> 1))]
        # The result takes the larger term's sign unless a subtraction goes negative below.
        s_big = Mux(p_big, p.sign, c.sign)
        l_max_hi = max(lp_hi, lc_hi)
        l_max = _sig(m, lc_lo - off, l_max_hi - off, Mux(p_big, l_p, l_c), self._n("l_max"))

        # -- align the smaller term: shift right by the leading-one distance, jam the rest ------
        # dist = gap (gap >= 0) or ~gap (gap < 0, the product pre-shifted by one above). When a
        # term is zero its window is all zeros and any shift of it is 0, so only the two-non-zero
        # case, where p_big is exactly gap >= 0, needs it right.
        g = len(gap)
        diff = (gap ^ gap[g - 1].replicate(g))[:max(g - 1, 1)]
        # Saturated to k bits (2**k - 1 >= W + 1: the whole term out) by OR-ing the high bits
        # into every low one, cheaper than a comparison with W + 1 and a multiplexer.
        k = (W + 1).bit_length()
        dist = Signal(k, name=self._n("dist"))
        if len(diff) > k:
            m.d.comb += dist.eq(diff[:k] | diff[k:].any().replicate(k))
        else:
            m.d.comb += dist.eq(diff)
        # The shifted-out bits are exactly small's low `dist` bits (dist >= W covers all W),
        # so the jam bit is their OR, read through the mask (1 << dist) - 1 beside a W-bit
        # shifter (a decoder and a decrement; W comparisons of dist with constants, the same
        # mask, map larger in the generic flow). A dist >= W + 1 shifts the one out of the W + 1
        # bits and the decrement wraps to all ones: every bit lost. Why not shift a 2W + 1 bit value and OR its low half (same result): that
        # shifter is twice as wide, and its low half exists only to be OR-ed away.
        shifted = Signal(W, name=self._n("small_sh"))
        m.d.comb += shifted.eq(small >> dist)
        lost = Signal(name=self._n("small_lost"))
        m.d.comb += lost.eq((small & ((Const(1, W + 1) << dist)[:W + 1] - 1)[:W]).any())
        aligned = Signal(W, name=self._n("small_jam"))
        m.d.comb += aligned.eq(Cat(shifted[0] | lost, shifted[1:]))

        # -- add or subtract magnitudes; a negative difference flips the sign ------------------
        # Only when the leading ones coincide can the "smaller" term be larger; then both are
        # exact in the window (no jam) and the absolute value is exact.
        eff_sub = p.sign ^ c.sign
        total = Signal(int_shape(-(1 << W), (1 << (W + 1)) - 1), name=self._n("total"))
        # One adder for both: big - aligned = big + ~aligned + 1 in W + 2 bits (two's complement;
        # the sum of two W-bit values and the difference both fit). Why not Mux(sub, big - x,
        # big + x): the generic flow keeps two carry chains and a multiplexer for that.
        flip = Signal(W + 2, name=self._n("addend"))
        ad.d.comb += flip.eq(aligned ^ eff_sub.replicate(W + 2))
        ad.d.comb += total.eq((big + flip + eff_sub)[:W + 2])
        neg = total < 0
        mag = Signal(W + 1, name=self._n("sum_mag"))
        ad.d.comb += mag.eq(Mux(neg, -total, total))
        sign = Signal(name=self._n("sum_sign"))
        ad.d.comb += sign.eq(s_big ^ neg)

        # -- exponent: the window's top bit is the larger top (l_max), its lsb W - 1 places below;
        # the rounder takes l_max with that offset and the W + 1 bit magnitude (carry included).
        return sign, mag, l_max, lc_lo - off, l_max_hi - off, off


class FloatMac(MacUnit):
    """Float-accumulator multiply-accumulate unit with one registered accumulator.

    Ports follow the contract in :mod:`psum.hw` (``clk`` and ``rst`` come from the ``sync``
    domain): ``a``, ``b``, ``en``, ``load``, ``init`` in, ``acc`` out, and ``rnd``
    (``spec.sr_bits`` bits) in when the spec rounds stochastically.

    Parameters
    ----------
    spec : MacSpec or str
        A float-accumulator spec (not ``spec.int_acc``), ``order=seq``.
    impl : MacImpl or str, optional
        Micro-architecture, kept apart from the spec: ``pipeline`` 0, 1 or 2 register stages
        ahead of the accumulate loop (module docstring: where the cuts are).
    **options
        The implementation as keywords instead (``pipeline=2``).

    Raises
    ------
    ValueError
        If the spec has an integer accumulator, its order is not ``seq``, or the implementation
        is out of range.

    Notes
    -----
    A NaN can reach a ``fin`` accumulator (no NaN code) only from an operand or product format
    that has NaN; the golden model rejects that step with a ValueError, and this unit then writes
    ``+0``.
    """

    int_acc = False

    @property
    def window(self) -> int:
        """Golden's window width (:func:`psum.golden.mac.window_bits`); the datapath's may be up to
        two bits wider (:meth:`FloatStep.place`)."""
        return window_bits(self._spec)

    # -----------------------------------------------------------------------------------------
    def elaborate(self, platform):
        spec = self._spec
        k = self.pipeline
        m = Module()
        step = FloatStep(spec, multiplier=self.impl.multiplier)

        # -- stage 0: unpack, exact product (unfused: rounded into prod) ----------------------
        p = step.product(m, self.a, self.b)
        # The controls travel with their product, so the loop sees them in the same cycle.
        ctl = {"en": self.en, "load": self.load, "init": self.init}
        if spec.rounding is Rounding.SR:
            ctl["rnd"] = self.rnd
        # -- cut 1 (pipeline >= 1): the exact product ------------------------------------------
        if k >= 1:
            p = register_stage(m, p, "s1_p")
            ctl = register_stage(m, ctl, "s1")
        # -- the product as a term: normalised, or at its field's top (FloatStep.place) ---------
        q = step.place(m, p)
        # -- cut 2 (pipeline = 2): the normalised product ---------------------------------------
        if k >= 2:
            q = register_stage(m, q, "s2_p")
            ctl = register_stage(m, ctl, "s2")

        # =====================================================================================
        # The accumulate loop: align, add, round, specials, register. Load wins over en; the
        # sync domain's reset gives acc = +0 (and clears the pipeline's en/load registers).
        # =====================================================================================
        nxt = step.accumulate(m, q, self.acc, ctl.get("rnd"))
        with m.If(ctl["load"]):
            m.d.sync += self.acc.eq(ctl["init"])
        with m.Elif(ctl["en"]):
            m.d.sync += self.acc.eq(nxt)
        return m
