"""The fixed-point-accumulator MAC generator: ``acc := fit(round(acc + a*b))`` on the ``2**-F`` grid.

Built from a :class:`psum.golden.MacSpec` whose accumulator is a :class:`psum.golden.FixedFormat`
(``q<I>.<F>``): float, integer or fixed-point operands, the exact product placed on the register's
grid, one rounding of the bits below the lsb (the rule book's ``round_up``, every mode, stochastic
rounding reading ``rnd``), then two's complement wrap or saturation. Every enabled cycle the register
takes :func:`psum.golden.mac_step` (``_mac_fixed``): this is the fixed-point register of a Kulisch
accumulator / FloPoCo's ``FPLargeAcc`` with a rounding stage for products below its lsb.

Datapath::

    unpack a, b (classify: NaN, inf, zero)  ->  exact product (sign, a.mag * b.mag, s = ea + eb + F)
      -> align: |p| = mag * 2**s lsbs by one left shift, s clamped to [-D, I+F]
      -> [products below the lsb: keep G = sr_bits + 2 fraction bits, jam the rest]
      -> add/subtract into the register (acc << G)  ->  [round the G fraction bits]
      -> wrap (low I+F bits) or saturate  ->  NaN / inf overrides  ->  register

Why the clamps are exact (the argument of golden ``_mac_fixed``): a product of ``2**(I+F)`` lsbs
or more saturates whatever the register holds, and its low ``I+F`` bits are 0, so shifting by
``I+F`` instead of more changes neither result. Below the lsb, the fraction is kept as G bits with
every lower bit OR-ed into the last ("jam"): the jammed value and the true one lie in the same open
interval between multiples of ``2**-(G-1)``, for the sum and for its negation, so guard, sticky and
the ``sr_bits`` residual bits of stochastic rounding are those of the exact sum; a shift deeper than
``D = mag bits + G`` leaves a fraction below ``2**-G`` either way (all kept bits 0, sticky 1).

Generation-time specialisation: when no product of the operand formats can fall below the lsb
(fp8 operands into ``q8.24``: the smallest product is ``2**-18``), there is no fraction, no
rounder and no sign-magnitude conversion: the unit is an aligner and an adder. Specials (the
register holds no NaN or inf; see :mod:`psum.golden.mac`): a NaN product writes the most negative
code, an infinite one the most positive / most negative code by its sign.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed

from psum.golden import Rounding
from psum.golden.formats import FixedFormat
from psum.golden.rounding import round_up

from .float_mac import register_stage
from .float_parts import all_of, any_of, as_bit, int_shape, unpack
from .multiplier import multiply
from .unit import MacUnit

__all__ = ["FixedMac", "align_to_grid", "add_round_fit"]


def _sig(m: Module, lo: int, hi: int, value, name: str) -> Signal:
    """A signal holding every integer of ``[lo, hi]``, driven by ``value``."""
    s = Signal(int_shape(lo, hi), name=name)
    m.d.comb += s.eq(value)
    return s


def align_to_grid(m: Module, mag, s, s_lo: int, s_hi: int, n: int, G: int):
    """``|p| = mag * 2**s`` register lsbs as an unsigned value in units of ``2**-G``, jammed.

    The align step of :class:`FixedMac` (the module docstring proves the clamps exact), shared
    with the block unit's fixed-point register (:class:`psum.hw.mx.MxMac`).

    Parameters
    ----------
    m : Module
    mag : Value
        Unsigned magnitude.
    s : Value
        Its lsb exponent in register lsbs, every value in ``[s_lo, s_hi]``.
    n : int
        Register width ``I + F``.
    G : int
        Fraction bits kept below the lsb (0 when no value can fall below it).

    Returns
    -------
    Value
        ``P``: ``|p| * 2**G`` with every bit below ``2**-G`` OR-ed into its lsb.
    """
    # =====================================================================================
    # Align: |p| in units of 2**-D by one left shift of s + D (clamped, see the module doc).
    # =====================================================================================
    D = min(-s_lo, len(mag) + G) if G else 0
    top = min(s_hi, n)
    sh_max = max(top + D, 0)
    sh = Signal(range(sh_max + 1), name="p_shift")
    clamped = s
    if s_hi > n:  # products of 2**(I+F) lsbs or more: saturate / low bits 0 either way
        clamped = Mux(s > n, n, clamped)
    if s_lo < -D:  # deeper than D: a fraction below 2**-G either way (all jammed)
        clamped = Mux(s < -D, -D, clamped)
    m.d.comb += sh.eq(clamped + D)
    X = Signal(len(mag) + sh_max, name="p_aligned")
    m.d.comb += X.eq(mag << sh)

    # -- keep G fraction bits, the rest jammed into the last (only when products can fall
    #    below the lsb; otherwise D = G = 0 and X is a whole number of lsbs) ------------------
    if G == 0:
        P = X
    elif D > G:
        P = Signal(len(X) - D + G, name="p_jam")
        m.d.comb += P.eq(Cat(X[:D - G + 1].any(), X[D - G + 1:]))
    else:
        P = Signal(len(X) + G - D, name="p_frac")
        m.d.comb += P.eq(X << (G - D))
    return P


def add_round_fit(m: Module, spec, fmt, acc, sign, P, nan, inf, G: int, rnd=None):
    """The next register code: ``fit(round(acc + (-1)**sign * P * 2**-G))``, specials applied.

    The add, rounding (the rule book's ``round_up`` on the sum's magnitude; ``round=sr`` reads
    ``rnd``), wrap or saturation and NaN / inf overrides of :class:`FixedMac` (golden
    ``_mac_fixed``), shared with :class:`psum.hw.mx.MxMac`.

    Parameters
    ----------
    spec : MacSpec
        Rounding and overflow.
    fmt : FixedFormat
        The register's grid (``q<I>.<F>``; an integer register as ``q<W>.0``).
    acc : Value
        The register (``I + F`` bits, two's complement).
    sign, P, nan, inf
        The addend: its sign, :func:`align_to_grid`'s ``P``, its NaN / infinity class (Python
        ``False`` when the class cannot occur).
    G : int
        As :func:`align_to_grid`.

    Returns
    -------
    Signal
        ``nxt``, ``I + F`` bits.
    """
    n = fmt.bits
    # =====================================================================================
    # Add into the register (units of 2**-G): exact, wide enough for every sum.
    # =====================================================================================
    zw = max(n + G, len(P)) + 2
    acc_g = Signal(signed(n + G), name="acc_g")
    m.d.comb += acc_g.eq(acc.as_signed() << G)
    total = Signal(signed(zw), name="total")
    m.d.comb += total.eq(Mux(sign, acc_g - P, acc_g + P))

    # =====================================================================================
    # Round the G fraction bits (sign-magnitude, the rule book's increment).
    # =====================================================================================
    if G:
        neg = Signal(name="sum_neg")
        m.d.comb += neg.eq(total < 0)
        absz = Signal(zw, name="sum_mag")
        m.d.comb += absz.eq(Mux(neg, -total, total))
        trunc = absz[G:]
        r = absz[:G]
        carry = None
        if spec.rounding is Rounding.SR:
            k = spec.sr_bits
            # carry out of the top k residual bits plus the random bits: P(up) = residual
            sr_sum = Signal(k + 1, name="sr_sum")
            m.d.comb += sr_sum.eq(r[G - k:] + rnd)
            carry = sr_sum[k]
        up = Signal(name="round_up")
        m.d.comb += up.eq(round_up(spec.rounding, lsb=trunc[0], guard=r[G - 1],
                                   sticky=r[:G - 1].any(), sign=neg, sr_carry=carry))
        rmag = Signal(len(trunc) + 1, name="rounded_mag")
        m.d.comb += rmag.eq(trunc + up)
        value = Signal(signed(len(rmag) + 1), name="rounded")
        m.d.comb += value.eq(Mux(neg, -rmag, rmag))
    else:
        value = total

    # =====================================================================================
    # Overflow: wrap (the low I+F bits) or saturate.
    # =====================================================================================
    if spec.saturate:
        fitted = Mux(value > fmt.max_int, fmt.max_int, Mux(value < fmt.min_int, fmt.min_int, value))
    else:
        fitted = value
    nxt = Signal(n, name="nxt")
    min_code = Const(fmt.min_int & ((1 << n) - 1), n)
    max_code = Const(fmt.max_int, n)
    result = fitted[:n]  # wrap: two's complement keeps the low I+F bits
    if inf is not False:
        result = Mux(inf, Mux(sign, min_code, max_code), result)
    if nan is not False:
        result = Mux(nan, min_code, result)
    m.d.comb += nxt.eq(result)
    return nxt


class FixedMac(MacUnit):
    """Multiply-accumulate unit with a fixed-point (two's complement ``q<I>.<F>``) register.

    Ports follow the contract in :mod:`psum.hw` (``clk`` and ``rst`` come from the ``sync``
    domain): ``a``, ``b``, ``en``, ``load``, ``init`` in, ``acc`` out, and ``rnd``
    (``spec.sr_bits`` bits) in when the spec rounds stochastically.

    Parameters
    ----------
    spec : MacSpec or str
        A spec with a fixed-point accumulator (``spec.fixed_acc``), ``order=seq``; float, integer
        or fixed-point operands, every rounding mode, ``overflow=wrap`` or ``sat``.
    impl : MacImpl or str, optional
        Micro-architecture, kept apart from the spec: ``pipeline`` 0, 1 (cut after the exact
        product) or 2 (also after its alignment to the register's grid, jam included); latency
        ``pipeline`` cycles. The add, rounding and overflow read the register: the loop.

    Raises
    ------
    ValueError
        If the accumulator is not fixed point, the order is not ``seq``, or ``pipeline`` is
        more than 2.
    """

    int_acc = False
    pipeline_cuts = ("the exact product", "its alignment to the register's grid")

    @classmethod
    def _validate(cls, spec, impl) -> None:
        super()._validate(spec, impl)
        if not spec.fixed_acc:
            raise ValueError(f"FixedMac needs a fixed-point accumulator q<I>.<F>, not acc={spec.acc}")

    @property
    def guard_bits(self) -> int:
        """G, fraction bits kept below the lsb (0 when no product can fall below it)."""
        spec = self._spec
        return spec.sr_bits + 2 if self._s_range()[0] < 0 else 0

    def _s_range(self) -> tuple[int, int]:
        """Range of a finite product's lsb exponent in register lsbs, ``ea + eb + F``."""
        spec = self._spec
        lo = []
        hi = []
        for fmt in (spec.a, spec.b):
            if isinstance(fmt, FixedFormat) or not fmt.is_float:
                e = getattr(fmt, "lsb_exp", 0)
                lo.append(e)
                hi.append(e)
            else:  # the unpacker's range: subnormals share emin, the all-ones field included
                lo.append(fmt.emin - fmt.man_bits)
                hi.append(((1 << fmt.exp_bits) - 1) - fmt.bias - fmt.man_bits)
        F = spec.acc.frac_bits
        return lo[0] + lo[1] + F, hi[0] + hi[1] + F

    # -----------------------------------------------------------------------------------------
    def elaborate(self, platform):
        spec = self._spec
        fmt: FixedFormat = spec.acc
        n = fmt.bits
        G = self.guard_bits
        m = Module()

        # =====================================================================================
        # Unpack and classify the operands (golden product_terms).
        # =====================================================================================
        a = unpack(m, spec.a, self.a, name="a")
        b = unpack(m, spec.b, self.b, name="b")
        # inf * 0 is invalid (NaN); a NaN operand gives NaN; only then can inf win.
        nan = any_of(a.nan, b.nan, all_of(a.inf, b.zero), all_of(a.zero, b.inf))
        if nan is not False:
            nan_s = Signal(name="p_nan")
            m.d.comb += nan_s.eq(nan)
            nan = nan_s
        inf = all_of(any_of(a.inf, b.inf), ~as_bit(nan) if nan is not False else True)

        # =====================================================================================
        # Exact product: sign XOR, magnitudes multiply, exponent in register lsbs.
        # =====================================================================================
        sign = Signal(name="p_sign")
        m.d.comb += sign.eq(a.sign ^ b.sign)
        mag = Signal(a.width + b.width, name="p_mag")
        # a zero operand has mag 0: the product is 0 (structure: MacImpl.multiplier)
        m.d.comb += mag.eq(multiply(m, a.mag, b.mag, kind=self.impl.multiplier, name="p_mul"))
        s_lo, s_hi = self._s_range()
        s = _sig(m, s_lo, s_hi, a.exp + b.exp + fmt.frac_bits, "p_s")

        # -- cut 1 (pipeline >= 1): the exact product, with the controls that travel with it --
        depth = self.pipeline
        ctl = {"en": self.en, "load": self.load, "init": self.init}
        if spec.rounding is Rounding.SR:
            ctl["rnd"] = self.rnd
        if depth >= 1:
            r1 = register_stage(m, {"sign": sign, "mag": mag, "s": s, "nan": nan, "inf": inf}, "s1_p")
            sign, mag, s, nan, inf = (r1[x] for x in ("sign", "mag", "s", "nan", "inf"))
            ctl = register_stage(m, ctl, "s1")

        P = align_to_grid(m, mag, s, s_lo, s_hi, n, G)

        # -- cut 2 (pipeline = 2): the aligned product ---------------------------------------------
        if depth >= 2:
            r2 = register_stage(m, {"sign": sign, "p": P, "nan": nan, "inf": inf}, "s2_p")
            sign, P, nan, inf = (r2[x] for x in ("sign", "p", "nan", "inf"))
            ctl = register_stage(m, ctl, "s2")

        # The add, the rounding of the G fraction bits, wrap / saturation, NaN / inf overrides.
        nxt = add_round_fit(m, spec, fmt, self.acc, sign, P, nan, inf, G, ctl.get("rnd"))

        # =====================================================================================
        # Register: load wins over en; the sync domain's reset gives acc = 0 (and clears the
        # pipeline's en/load registers).
        # =====================================================================================
        with m.If(ctl["load"]):
            m.d.sync += self.acc.eq(ctl["init"])
        with m.Elif(ctl["en"]):
            m.d.sync += self.acc.eq(nxt)
        return m
