"""The multi-term dot-product unit (``order=mta<N>w<W>p<P>``): N products per cycle, one rounding.

What it computes is :func:`psum.golden.emulation.kernels.accumulate_order`'s ``mta<N>w<W>p<P>``,
the fused dot-product adder of a tensor core as DeepSeek-V3 (2024, section 3.3.2) describes
Hopper's FP8 GEMM: the N products of a cycle and the register R (format ``spec.acc``) are aligned
to the largest exponent among them, each truncated toward zero to W bits below that exponent's
leading one, summed exactly, and the sum rounded once into R; every P products R is promoted
into ``acc2`` (``acc2 := round(acc2 + R)``) and restarts at +0.

Datapath (per cycle)::

    lane i:  unpack a_i, b_i -> exact product (unfused: rounded into prod) -> normalise
    R term:  unpack (full ? +0 : acc) -> normalise
    e_max  = max leading-one exponent over the finite non-zero terms (a comparator tree)
    term_i = trunc(+-norm_i * 2**(W - width_i - (e_max - lead_i)))   W-bit, toward zero
             (floor suffix: two's complement, sign-fill right shift, toward -inf)
    S      = sum of +-term_i (an adder tree), exact
    R_next = FloatRounder(acc)(|S|, e_max - W + 1); S = 0 gives +0 (rdn: -0); specials apart
    acc2_next = add(acc2, acc)                                           add_spec(spec, acc2)

Control (``cnt`` counts the groups since the last promotion, G = P / N of them fill one)::

    rst    acc = acc2 = +0, cnt = 0, pend = 0
    load   acc = init, acc2 = +0, cnt = 0, pend = 1
    flush  if pend: acc2 = add(acc2, acc), acc = +0, cnt = 0, pend = 0
    en     if cnt == G: acc2 = add(acc2, acc), acc = group(+0, lanes), cnt = 1
           else:        acc = group(acc, lanes), cnt += 1;               pend = 1

A dot product whose length K is not a multiple of N is driven with its last group padded with
zero operands: a zero product is a term of magnitude 0, which changes neither the largest
exponent nor the sum (and an exact zero sum is +0 whatever the terms' signs), so padding is
exact. After ``load``, ceil(K/N) groups and one ``flush``, ``acc2`` is the emulation's output.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal
from psum.golden import FloatFormat
from psum.golden.mac import infinity_codes, nan_result_code
from psum.golden.rounding import exact_zero_sign
from psum.golden.spec import add_spec

from .chunk import pipelined_product, promotion_control
from .float_mac import FloatStep, Normalised
from .float_parts import FloatRounder, any_of, all_of, as_bit, balanced_tree, int_shape, unpack
from .unit import MacUnit, operand_ports

__all__ = ["MtaMac"]


class MtaMac(MacUnit):
    """Fused N-term dot-product unit with a second-level accumulator (``order=mta<N>w<W>p<P>``).

    Ports: the contract of :mod:`psum.hw` with ``a0 .. a{N-1}``, ``b0 .. b{N-1}`` instead of
    ``a``, ``b``, and ``flush`` in, ``acc2`` out.

    Parameters
    ----------
    spec : MacSpec or str
        A float-accumulator spec with ``order=mta<N>w<W>p<P>`` (``acc2`` a float format).
    impl : MacImpl or str, optional
        ``pipeline`` 0, 1 (cut after the N exact products) or 2 (also after their
        normalisation); ``flush`` travels with the inputs, latency ``pipeline`` cycles.

    Raises
    ------
    ValueError
        Another order, stochastic rounding (not implemented), or an implementation other than
        the default.
    """

    int_acc = False
    orders = ("mta",)
    sr_refused = ""

    def elaborate(self, platform):
        spec = self._spec
        fmt: FloatFormat = spec.acc
        N, W, P = spec.order.n, spec.order.w, spec.order.p
        G = P // N
        m = Module()
        seq = spec.replace(order="seq", acc2=None)

        cnt = Signal(range(G + 1), name="cnt")  # groups since the last promotion
        pend = Signal(name="pend")
        full = Signal(name="full")
        m.d.comb += full.eq(cnt == G)

        # -- the terms: N exact products and the register (from +0 when a promotion is due) ---
        ports = operand_ports(spec)
        steps = [FloatStep(seq, name=f"lane{i}", multiplier=self.impl.multiplier) for i in range(len(ports))]
        terms: list[Normalised]
        terms, ctl = pipelined_product(m, self, steps, [(getattr(self, pa), getattr(self, pb)) for pa, pb in ports])
        r = FloatStep(seq, name="r")
        r_bits = Signal(fmt.width, name="r_bits")
        m.d.comb += r_bits.eq(Mux(full, 0, self.acc))
        terms.append(r.normalise(m, unpack(m, fmt, r_bits, name="r"), "r"))

        # -- largest leading-one exponent among the finite non-zero terms -------------------------
        lo = min(t.lead_lo for t in terms)
        hi = max(t.lead_hi for t in terms)
        shape = int_shape(lo, hi)
        valid = []
        for i, t in enumerate(terms):
            v = Signal(name=f"t{i}_valid")
            # Why not inf/NaN: their result is decided by the specials below, and the golden
            # model leaves them out of the exponent maximum too.
            m.d.comb += v.eq(~as_bit(any_of(t.zero, t.inf, t.nan)))
            valid.append(v)

        def vmax(x, y):
            (vx, ex), (vy, ey) = x, y
            e = Signal(shape)
            m.d.comb += e.eq(Mux(vx & (~vy | (ex >= ey)), ex, ey))
            return vx | vy, e

        _, emax = balanced_tree([(v, t.lead) for v, t in zip(valid, terms)], vmax)
        e_max = Signal(shape, name="e_max")
        m.d.comb += e_max.eq(emax)

        # -- align: W bits from e_max's position down, truncated toward zero ------------------
        signed_terms = []
        for i, (v, t) in enumerate(zip(valid, terms)):
            pw = t.width
            x = Cat(Const(0, max(W - pw, 0)), t.norm)  # norm * 2**max(W - pw, 0)
            xw = len(x)
            d = Signal(range(xw + 1), name=f"t{i}_shift")
            dist = e_max - t.lead + max(pw - W, 0)
            # Past xw places every bit is truncated away; the clamp keeps the shifter small.
            m.d.comb += d.eq(Mux(dist > xw, xw, dist))
            st = Signal(int_shape(-(1 << W), (1 << W) - 1), name=f"t{i}_signed")
            if spec.order.trunc == "floor":
                # Two's complement first, then an arithmetic (sign-fill) shift: toward -inf.
                # A shift of xw places leaves 0 or -1, the floor of a term below the window.
                sx = Signal(int_shape(-(1 << xw), (1 << xw) - 1), name=f"t{i}_twos")
                m.d.comb += sx.eq(Mux(t.sign, -x, x))
                m.d.comb += st.eq(Mux(v, sx >> d, 0))
            else:
                mag = Signal(W, name=f"t{i}_mag")
                m.d.comb += mag.eq(Mux(v, (x >> d)[:W], 0))
                m.d.comb += st.eq(Mux(t.sign, -mag, mag))
            signed_terms.append(st)

        # -- exact sum: a balanced adder tree ---------------------------------------------------
        total = Signal(int_shape(-(N + 1) * (1 << W), (N + 1) * ((1 << W) - 1)), name="sum")
        m.d.comb += total.eq(balanced_tree(signed_terms, lambda x, y: x + y))
        mag = Signal(len(total), name="sum_mag")
        m.d.comb += mag.eq(Mux(total < 0, -total, total))

        # -- one rounding into acc ---------------------------------------------------------------
        rnd = FloatRounder(fmt, rounding=spec.rounding, saturate=spec.saturate, mag_width=len(mag),
                           exp_range=(lo - W + 1, hi - W + 1))
        m.submodules.round_sum = rnd
        m.d.comb += [rnd.sign.eq(total < 0), rnd.mag.eq(mag), rnd.exp.eq(e_max - (W - 1))]

        # An exact zero sum of the multi-term adder is one zero: the rule book's cancellation
        # sign (+0, -0 under rdn), a constant of the rounding mode.
        no = np.zeros(1, dtype=bool)
        zneg = bool(exact_zero_sign(spec.rounding, both_zero=no, sp=no, sc=no)[0]) and fmt.has_neg_zero
        zero_code = Const(fmt.sign_bit if zneg else 0, fmt.width)

        # -- specials: NaN in, or inf of both signs -> NaN; an inf -> inf (the adder's rules) --
        t_inf = [t.inf for t in terms]
        pos_inf = any_of(*[all_of(f, ~t.sign) for f, t in zip(t_inf, terms) if f is not False])
        neg_inf = any_of(*[all_of(f, t.sign) for f, t in zip(t_inf, terms) if f is not False])
        nan = any_of(*[t.nan for t in terms], all_of(pos_inf, neg_inf))
        inf = any_of(*t_inf)
        ipos, ineg = infinity_codes(fmt, spec.saturate)
        result = Mux(total == 0, zero_code, rnd.code)
        if inf is not False:
            result = Mux(as_bit(inf), Mux(as_bit(neg_inf), ineg, ipos), result)
        if nan is not False:
            result = Mux(as_bit(nan), nan_result_code(fmt), result)  # the rule book
        nxt = Signal(fmt.width, name="nxt")
        m.d.comb += nxt.eq(result)

        # -- promotion into acc2 -----------------------------------------------------------------
        nxt2 = FloatStep(add_spec(spec, spec.acc2), name="promo")(m, self.acc2, self.acc, Const(1, 2))

        promotion_control(m, self, nxt, nxt2, cnt, pend, full, ctl)  # rst > load > flush > en, as ChunkMac
        return m
