"""The block dot-product unit of block-scaled operands (OCP MX v1.0, NVFP4): one block per cycle.

What it computes is :func:`psum.golden.block_dot.block_dot` (``order=seq``), one block per enabled
cycle: ``acc := round(acc + T)`` with ``T = P * Sa * Sb``, ``P`` the **exact** sum of the block's
k element products, ``Sa``, ``Sb`` the two block scales (E8M0 powers of two, or NVFP4's E4M3
scales), one rounding with the spec's mode and overflow. The rules for NaN, inf and zero are
golden's (:mod:`psum.golden.blocks`' docstring, ``docs/mx.md``).

Ports: the contract of :mod:`psum.hw` with the k lanes ``a0 .. a{k-1}``, ``b0 .. b{k-1}`` (element
codes of block ``a`` and ``b``) in place of ``a``, ``b``, and ``sa``, ``sb`` (the two scale
codes). ``rst`` > ``load`` > ``en``; no ``flush`` (each block ends in the register).

Datapath (per cycle)::

    lane i:  unpack a_i, b_i -> exact product (sign, ma*mb, ea+eb); NaN/inf classes apart
             -> aligned: +-(ma*mb) << (ea + eb - L0)    fixed point, lsb 2**L0 (smallest product lsb)
    P      = sum of the k aligned products: a balanced integer adder tree, exact
    scales:  unpack sa, sb (E8M0: 2**(c - 127), 0xff NaN; E4M3: a 4-bit significand)
    T      = (-1)**s * |P| * ma_s * mb_s * 2**(L0 + e_sa + e_sb)      exact (a product of integers)
    acc    = FloatStep.accumulate(acc, T): align in a window, add, ONE rounding (the shared rounder)

Why an integer adder tree and not floating adds: the products of fp4/fp6/fp8 elements are small
fixed-point numbers (mxfp4: 4 bits over an exponent span of 4; mxfp8_e4m3: 8 bits over 28), so
the exact sum of a block costs a fixed-point adder of at most ``2 (p + span) + log2 k`` bits,
and it is the golden contract (``bsum`` unset: exact block sums).

Specials (golden ``block_terms``, IEEE products and sums on float64): a lane's product is NaN for a
NaN element or ``inf * 0``, infinite for an infinite element otherwise; ``P`` is NaN for a NaN
product or infinities of both signs, else infinite with their sign. ``T`` is NaN for a NaN ``P``,
a NaN scale, or an infinite ``P`` times a zero scale (E4M3 has zeros); an exactly zero ``T`` is
``+0`` (golden adds ``0.0``). The accumulate step then applies the accumulator's rules (NaN > inf
> exact zero > rounded sum), the same logic as :class:`psum.hw.float_mac.FloatMac`.

Pipeline (``MacImpl(pipeline=k)``), as the float MAC: cut 1 after the block term ``T``, cut 2
after its normalisation; the accumulate loop closes in one cycle.

Not built (one-line refusals): ``bsum=FMT`` (block sums rounded into an intermediate format),
fixed-point and integer accumulators, ``round=sr``, orders other than ``seq``, operand formats of
different block sizes (golden refuses those too), and a block spread over several cycles
(k/N elements per cycle): the unit takes a whole block per cycle.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal
from psum.golden.block_dot import grid_format
from psum.golden.formats import Pow2Format

from .fixed_mac import add_round_fit, align_to_grid
from .float_mac import FloatStep, register_stage
from .float_parts import Unpacked, all_of, any_of, as_bit, balanced_tree, int_shape, stage, unpack
from .unit import MacUnit, operand_ports

__all__ = ["MxMac"]


def _unpack_scale(m: Module, fmt, bits, name: str) -> Unpacked:
    """A scale code as :class:`Unpacked`: E8M0 (:class:`Pow2Format`) or an 8-bit float (E4M3).

    E8M0 (OCP MX v1.0 section 5.4): value ``2**(c - bias)``, magnitude 1, no sign, zero or inf;
    the all-ones code is NaN. A float scale goes through the operands' unpacker.
    """
    if not isinstance(fmt, Pow2Format):
        return unpack(m, fmt, bits, name=name)
    lo, hi = -fmt.bias, fmt.nan_code - 1 - fmt.bias
    exp = Signal(int_shape(lo, fmt.nan_code - fmt.bias), name=f"{name}_exp")
    nan = Signal(name=f"{name}_nan")
    m.d.comb += [exp.eq(bits - fmt.bias), nan.eq(bits == fmt.nan_code)]
    return Unpacked(sign=Const(0, 1), mag=Const(1, 1), exp=exp, zero=False, inf=False, nan=nan,
                    exp_lo=lo, exp_hi=hi, lead=1)


class _TermStep(FloatStep):
    """:class:`FloatStep` whose addend is a block term of ``precision`` bits (not ``a*b``).

    The window argument of :func:`psum.golden.mac.window_bits` with the term's precision in place
    of the product's: W >= max(term, acc precision) + 2 holds the larger term exactly, and
    W >= p_acc + 4 keeps the jam bit below guard and sticky.
    """

    def __init__(self, spec, precision: int, *, name: str = ""):
        super().__init__(spec, name=name)
        self._precision = precision

    @property
    def window(self) -> int:
        p_acc = self._spec.acc.precision
        return max(p_acc + self._spec.sr_bits + 4, max(self._precision, p_acc) + 2)


class MxMac(MacUnit):
    """Block dot-product unit: one block of k element pairs and two scales per cycle, one rounding.

    Ports: the contract of :mod:`psum.hw` with ``a0 .. a{k-1}``, ``b0 .. b{k-1}`` (element codes)
    instead of ``a``, ``b``, and ``sa``, ``sb`` (scale codes) in.

    Parameters
    ----------
    spec : MacSpec or str
        Block-scaled operands (``a=mxfp4,b=mxfp4``, ``nvfp4``, ``mxfp8_e4m3``, ...), a float
        accumulator, ``order=seq``, no ``bsum``.
    impl : MacImpl or str, optional
        ``pipeline`` 0, 1 (cut after the block term) or 2 (also after its normalisation).

    Raises
    ------
    ValueError
        ``bsum=FMT``, a fixed-point or integer accumulator, ``round=sr``, another order, or an
        implementation out of range (one line each).
    """

    int_acc = None  # float, fixed-point and integer registers
    block_unit = True
    sr_refused = " with block-scaled operands (not built)"
    pipeline_cuts = ("the block term", "its normalisation")

    @classmethod
    def _validate(cls, spec, impl) -> None:
        if spec.bsum is not None:
            # Why not built: rounding each product into bsum is a k-step serial chain of float
            # adders per block (golden's product-by-product rule), not the exact adder tree.
            raise ValueError(f"no RTL unit for bsum={spec.bsum} (block sums rounded into an intermediate "
                             f"format); MxMac sums each block exactly (bsum unset)")
        super()._validate(spec, impl)

    @classmethod
    def cuts_for(cls, spec) -> tuple:
        """Float register: after the block term and its normalisation; fixed / integer register:
        after the block term and its alignment to the register's grid."""
        if spec.acc.is_float:
            return cls.pipeline_cuts
        return ("the block term", "its alignment to the register's grid")

    @property
    def block(self) -> int:
        """Elements per block (the lanes): k."""
        return self._spec.a.block

    # -----------------------------------------------------------------------------------------
    def _term(self, m: Module, a_bits: list, b_bits: list, sa_bits, sb_bits) -> Unpacked:
        """The exact block term ``T = P * Sa * Sb`` of one cycle's inputs, with its class flags."""
        spec = self._spec
        fa, fb = spec.a.elem, spec.b.elem
        # Stage submodules (unpack, multiplier, align, adder) for psum synth --breakdown.
        um, pm, am = stage(m, "blk", "unpack"), stage(m, "blk", "multiplier"), stage(m, "blk", "align")
        # -- lanes: unpack, exact products ------------------------------------------------------
        lanes = []
        for i, (xa, xb) in enumerate(zip(a_bits, b_bits)):
            a = unpack(um, fa, xa, name=f"l{i}_a")
            b = unpack(um, fb, xb, name=f"l{i}_b")
            # IEEE products: NaN in, or inf * 0, is NaN; inf * finite non-zero is inf.
            nan = any_of(a.nan, b.nan, all_of(a.inf, b.zero), all_of(a.zero, b.inf))
            inf = any_of(a.inf, b.inf)
            lanes.append((a, b, nan, inf))
        a0, b0 = lanes[0][0], lanes[0][1]
        # Fixed point of the block sum: lsb L0 = the smallest product lsb, D places above it.
        L0 = a0.exp_lo + b0.exp_lo
        D = a0.exp_hi + b0.exp_hi - L0
        pw = a0.width + b0.width
        k = len(lanes)
        span = ((1 << pw) - 1) << D  # the largest aligned product magnitude
        sm = stage(m, "blk", "adder")
        terms, pos_inf, neg_inf, nans = [], [], [], []
        for i, (a, b, nan, inf) in enumerate(lanes):
            sign = Signal(name=f"l{i}_sign")
            pm.d.comb += sign.eq(a.sign ^ b.sign)
            sh = Signal(range(D + 1), name=f"l{i}_shift")
            am.d.comb += sh.eq(a.exp + b.exp - L0)
            # A NaN or infinite product takes no part in the sum (its class decides the term);
            # a zero element has magnitude 0 already (the unpacker's rule).
            special = any_of(nan, inf)
            mag = Signal(pw + D, name=f"l{i}_aligned")
            prod = Signal(pw, name=f"l{i}_prod")
            pm.d.comb += prod.eq(a.mag * b.mag)
            am.d.comb += mag.eq(prod << sh if special is False else Mux(as_bit(special), 0, prod << sh))
            st = Signal(int_shape(-span, span), name=f"l{i}_term")
            sm.d.comb += st.eq(Mux(sign, -mag, mag))
            terms.append(st)
            nans.append(nan)
            if inf is not False:
                pos_inf.append(all_of(inf, ~as_bit(nan), ~sign))
                neg_inf.append(all_of(inf, ~as_bit(nan), sign))
        # -- the exact block sum: a balanced adder tree -----------------------------------------
        total = Signal(int_shape(-k * span, k * span), name="blk_sum")
        sm.d.comb += total.eq(balanced_tree(terms, lambda x, y: x + y))
        p_pos_inf, p_neg_inf = any_of(*pos_inf), any_of(*neg_inf)
        p_nan = any_of(*nans, all_of(p_pos_inf, p_neg_inf))
        p_inf = any_of(p_pos_inf, p_neg_inf)

        # -- scales: exact product of the two, then of the block sum ----------------------------
        xm = stage(m, "scale", "multiplier")
        sa = _unpack_scale(um, spec.a.scale, sa_bits, "sa")
        sb = _unpack_scale(um, spec.b.scale, sb_bits, "sb")
        psum_mag = Signal(len(total), name="blk_mag")
        xm.d.comb += psum_mag.eq(Mux(total < 0, -total, total))
        mag = Signal(len(total) + sa.width + sb.width, name="term_mag")
        xm.d.comb += mag.eq(psum_mag * sa.mag * sb.mag)
        lo, hi = L0 + sa.exp_lo + sb.exp_lo, L0 + sa.exp_hi + sb.exp_hi
        exp = Signal(int_shape(lo, hi), name="term_exp")
        xm.d.comb += exp.eq(L0 + sa.exp + sb.exp)
        scale_zero = any_of(sa.zero, sb.zero)
        nan = Signal(name="term_nan")
        xm.d.comb += nan.eq(as_bit(any_of(p_nan, sa.nan, sb.nan, all_of(p_inf, scale_zero))))
        inf = Signal(name="term_inf")
        xm.d.comb += inf.eq(as_bit(p_inf) & ~nan)
        zero = Signal(name="term_zero")
        xm.d.comb += zero.eq((mag == 0) & ~inf & ~nan)
        # The sign: an infinite P's, else the sum's, times the scales' signs; an exact zero is +0
        # (golden: T + 0.0).
        s_scale = sa.sign ^ sb.sign
        sign = Signal(name="term_sign")
        xm.d.comb += sign.eq(Mux(inf, as_bit(p_neg_inf) ^ s_scale, Mux(zero, 0, (total < 0) ^ s_scale)))
        return Unpacked(sign=sign, mag=mag, exp=exp, zero=zero, inf=inf, nan=nan,
                        exp_lo=lo, exp_hi=hi, lead=len(mag))

    def elaborate(self, platform):
        spec = self._spec
        k = self.pipeline
        m = Module()
        ports = operand_ports(spec)
        t = self._term(m, [getattr(self, pa) for pa, _ in ports], [getattr(self, pb) for _, pb in ports],
                       self.sa, self.sb)
        if not spec.acc.is_float:
            return self._elaborate_grid(m, t)
        step = _TermStep(spec, t.width)
        ctl = {"en": self.en, "load": self.load, "init": self.init}
        # -- cut 1 (pipeline >= 1): the block term ----------------------------------------------
        if k >= 1:
            t = register_stage(m, t, "s1_t")
            ctl = register_stage(m, ctl, "s1")
        q = step.normalise(m, t, "t")
        # -- cut 2 (pipeline = 2): the normalised term ------------------------------------------
        if k >= 2:
            q = register_stage(m, q, "s2_t")
            ctl = register_stage(m, ctl, "s2")
        # -- the accumulate loop: align, add, ONE rounding, specials; load wins over en --------
        nxt = step.accumulate(m, q, self.acc)
        with m.If(ctl["load"]):
            m.d.sync += self.acc.eq(ctl["init"])
        with m.Elif(ctl["en"]):
            m.d.sync += self.acc.eq(nxt)
        return m

    def _elaborate_grid(self, m: Module, t: Unpacked):
        """The fixed-point (``q<I>.<F>``) or integer (``int<W>`` = ``q<W>.0``) register.

        The exact block term ``T = (-1)**s * mag * 2**exp`` is an addend like the fixed-point
        MAC's product: placed on the register's grid (``s = exp + F`` lsbs) by the shared
        :func:`psum.hw.fixed_mac.align_to_grid` (G = 2 fraction bits kept, the rest jammed, since
        a term can always fall below the lsb: the scales reach 2**-127), then
        :func:`psum.hw.fixed_mac.add_round_fit` adds it, rounds once by the spec's mode, wraps or
        saturates and writes the specials (NaN term: the most negative code; an infinite term:
        the most positive / negative code by its sign). Golden: ``mac_step`` of
        :func:`psum.golden.block_dot.term_spec`.
        """
        spec = self._spec
        fmt = grid_format(spec.acc)
        n, F = fmt.bits, fmt.frac_bits
        k = self.pipeline
        ctl = {"en": self.en, "load": self.load, "init": self.init}
        sign, mag, exp, nan, inf = t.sign, t.mag, t.exp, t.nan, t.inf
        # -- cut 1 (pipeline >= 1): the block term ----------------------------------------------
        if k >= 1:
            r1 = register_stage(m, {"sign": sign, "mag": mag, "exp": exp, "nan": nan, "inf": inf}, "s1_t")
            sign, mag, exp, nan, inf = (r1[x] for x in ("sign", "mag", "exp", "nan", "inf"))
            ctl = register_stage(m, ctl, "s1")
        s_lo, s_hi = t.exp_lo + F, t.exp_hi + F
        s = Signal(int_shape(s_lo, s_hi), name="t_s")
        m.d.comb += s.eq(exp + F)
        G = 2 if s_lo < 0 else 0  # sr_bits + 2 with round=sr refused
        P = align_to_grid(m, mag, s, s_lo, s_hi, n, G)
        # -- cut 2 (pipeline = 2): the aligned term ---------------------------------------------
        if k >= 2:
            r2 = register_stage(m, {"sign": sign, "p": P, "nan": nan, "inf": inf}, "s2_t")
            sign, P, nan, inf = (r2[x] for x in ("sign", "p", "nan", "inf"))
            ctl = register_stage(m, ctl, "s2")
        nxt = add_round_fit(m, spec, fmt, self.acc, sign, P, nan, inf, G)
        with m.If(ctl["load"]):
            m.d.sync += self.acc.eq(ctl["init"])
        with m.Elif(ctl["en"]):
            m.d.sync += self.acc.eq(nxt)
        return m
