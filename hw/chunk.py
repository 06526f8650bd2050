"""The chunked-accumulation unit (``order=chunk<L>``): a sequential MAC plus a second-level ``acc2``.

What it computes is :func:`psum.golden.emulation.kernels.accumulate_order`'s ``chunk<L>``: the
products of a dot product in chunks of L, each chunk summed sequentially in ``acc`` (chunk 0 from
the loaded bias, later chunks from +0), each chunk sum added into ``acc2`` with one rounding
(``acc2 := round(acc2 + acc)``, the spec's :func:`psum.golden.spec.add_spec` step). This is how
FP8 training accumulates (Wang et al. 2018, "Training deep neural networks with 8-bit floating
point numbers": chunk-based accumulation bounds the swamping of a narrow accumulator).

Datapath (two :class:`psum.hw.float_mac.FloatStep` instances)::

    l1: acc_next  = step(full ? +0 : acc, a, b)      the MAC of spec (order=seq)
    l2: acc2_next = add(acc2, acc)                   the promotion, add_spec(spec, acc2)

Control (``cnt`` counts the products of the current chunk, ``pend`` says ``acc`` holds a chunk
that is not in ``acc2`` yet)::

    rst         acc = acc2 = +0, cnt = 0, pend = 0
    load        acc = init, acc2 = +0, cnt = 0, pend = 1     (a new dot product, bias in chunk 0)
    flush       if pend: acc2 = add(acc2, acc), acc = +0, cnt = 0, pend = 0
    en          if cnt == L: acc2 = add(acc2, acc), acc = step(+0, a, b), cnt = 1
                else:        acc = step(acc, a, b), cnt += 1;               pend = 1

Why the promotion is lazy (at the first product of the next chunk, or at ``flush``): a full
chunk is promoted in the same cycle the next chunk starts, so the unit takes one product every
cycle with no bubble, and the last chunk, full or partial, is promoted by the one ``flush`` cycle.
After ``load``, K products and one ``flush``, ``acc2`` is ``accumulate_order``'s output.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal
from psum.golden import IntFormat
from psum.golden.spec import add_spec

from .float_mac import FloatStep, register_stage
from .int_mac import IntStep
from .unit import MacUnit

__all__ = ["ChunkMac", "promotion_control", "pipelined_product", "step_for", "INT_CUTS"]

#: The one pipeline cut of an order unit with an integer accumulator (no normalisation stage).
INT_CUTS = ("the product",)


def step_for(spec, name: str = "", multiplier: str = "array"):
    """The combinational MAC step of ``spec``: :class:`IntStep` for an integer accumulator, else
    :class:`FloatStep` (same interface: ``product``, ``normalise``, ``accumulate``, call).
    ``multiplier`` is the float step's significand multiplier (:class:`psum.hw.impl.MacImpl`)."""
    if isinstance(spec.acc, IntFormat):
        return IntStep(spec, name=name)
    return FloatStep(spec, name=name, multiplier=multiplier)


def pipelined_product(m, unit, steps, operands, extra=()):
    """The products of ``steps`` (one :class:`FloatStep` per lane) with ``unit.pipeline`` cuts
    ahead of the loop: cut 1 after the exact products, cut 2 after their normalisation.

    ``operands`` is ``[(a_bits, b_bits), ...]``, one pair per step. The controls (``en``,
    ``load``, ``init``, ``flush`` where the unit has it, ``rnd`` for stochastic rounding, and the
    names in ``extra``) travel through the same cuts, so the loop sees each input with its
    product. Returns ``(normalised products, controls)``.
    """
    k = unit.pipeline
    ctl = {name: getattr(unit, name) for name in ("en", "load", "init", "flush", "rnd", *extra)
           if name in unit.signature.members}
    ps = [st.product(m, a, b) for st, (a, b) in zip(steps, operands)]
    if k >= 1:
        ps = [register_stage(m, p, f"s1_p{i}") for i, p in enumerate(ps)]
        ctl = register_stage(m, ctl, "s1")
    qs = [st.normalise(m, p) for st, p in zip(steps, ps)]
    if k >= 2:
        qs = [register_stage(m, q, f"s2_p{i}") for i, q in enumerate(qs)]
        ctl = register_stage(m, ctl, "s2")
    return qs, ctl


class ChunkMac(MacUnit):
    """Chunked float accumulation: ``acc`` (format ``spec.acc``) promoted into ``acc2`` every L products.

    Ports: the contract of :mod:`psum.hw` with ``flush`` in and ``acc2`` out.

    Parameters
    ----------
    spec : MacSpec or str
        A spec with ``order=chunk<L>``: a float accumulator (``acc2`` float), or an integer one
        (``acc2`` integer or float; the level-1 MAC is then :class:`psum.hw.int_mac.IntStep`).
    impl : MacImpl or str, optional
        ``pipeline`` 0, 1 (cut after the level-1 product) or 2 (also after its normalisation;
        integer accumulators: 1 cut); ``flush`` travels with the inputs, latency ``pipeline``.

    Raises
    ------
    ValueError
        A fixed-point accumulator, another order, stochastic rounding (a full-chunk cycle
        rounds twice, which would need two random draws), or an implementation the unit cannot
        use.
    """

    int_acc = None
    orders = ("chunk",)
    sr_refused = " (two roundings per cycle)"

    @classmethod
    def cuts_for(cls, spec):
        return INT_CUTS if spec.int_acc else cls.pipeline_cuts

    def elaborate(self, platform):
        spec = self._spec
        L = spec.order.length
        m = Module()
        l1 = step_for(spec.replace(order="seq", acc2=None), name="l1", multiplier=self.impl.multiplier)
        l2 = step_for(add_spec(spec, spec.acc2), name="l2")

        cnt = Signal(range(L + 1), name="cnt")  # products in the current chunk
        pend = Signal(name="pend")  # acc holds a chunk not yet added into acc2
        full = Signal(name="full")
        m.d.comb += full.eq(cnt == L)

        # -- level 1: the sequential MAC; a new chunk starts from +0 (code 0) -----------------
        (q,), ctl = pipelined_product(m, self, [l1], [(self.a, self.b)])
        nxt1 = l1.accumulate(m, q, Mux(full, 0, self.acc))
        # -- level 2: acc2 + acc * 1, one rounding into acc2 ------------------------------------
        nxt2 = l2(m, self.acc2, self.acc, Const(1, 2))

        promotion_control(m, self, nxt1, nxt2, cnt, pend, full, ctl)
        return m


def promotion_control(m, unit, nxt, nxt2, cnt, pend, full, ctl) -> None:
    """The control of a unit with a second-level accumulator: ``rst`` (the domain's reset) > ``load``
    > ``flush`` > ``en``, shared by :class:`ChunkMac` and :class:`psum.hw.mta.MtaMac`.

    ``load`` puts ``init`` in ``acc`` and clears ``acc2``; ``flush`` promotes a pending ``acc`` into
    ``acc2`` (``nxt2``) and clears it; ``en`` steps ``acc`` to ``nxt`` and, when the group is ``full``,
    promotes into ``acc2`` in the same cycle (no bubble). ``cnt`` counts the group's steps, ``pend``
    marks an ``acc`` not yet promoted. ``ctl`` holds ``load``, ``init``, ``flush`` and ``en`` as the
    loop sees them (after the pipeline cuts, :func:`pipelined_product`).
    """
    with m.If(ctl["load"]):
        m.d.sync += [unit.acc.eq(ctl["init"]), unit.acc2.eq(0), cnt.eq(0), pend.eq(1)]
    with m.Elif(ctl["flush"]):
        with m.If(pend):
            m.d.sync += [unit.acc2.eq(nxt2), unit.acc.eq(0), cnt.eq(0), pend.eq(0)]
    with m.Elif(ctl["en"]):
        m.d.sync += [unit.acc.eq(nxt), pend.eq(1)]
        with m.If(full):
            m.d.sync += [unit.acc2.eq(nxt2), cnt.eq(1)]
        with m.Else():
            m.d.sync += cnt.eq(cnt + 1)
