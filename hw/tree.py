"""The adder-tree unit (``order=tree<N>``): N products per cycle, summed pairwise, into one register.

What it computes is :func:`psum.golden.emulation.kernels.accumulate_order`'s ``tree<N>``: every
cycle takes N products; each is rounded into the accumulator format alone (a leaf: one MAC step
from +0), the N leaves are summed by a balanced tree of two-input float adders (level by level,
left to right, an odd last node passing up unchanged; every node rounds into ``acc``), and the
group sum is added into the register, ``acc := round(acc + group_sum)``. This is the classic
adder-tree dot-product datapath of DNN accelerators (DianNao's NFU-2 stage, Chen et al.,
ASPLOS 2014; the MAC cells of NVDLA's convolution core), here with every adder at the
accumulator's precision.

Why ``tree<N>`` and not ``tree``: the emulation's plain ``tree`` sums all K products of a dot
product in one tree and adds the bias last; a unit streaming N products per cycle never holds
all K at once. ``tree<N>`` is the order such a unit does compute, and it is priced by the
emulation like every other order.

Datapath (per cycle)::

    lane i:  unpack a_i, b_i -> exact product (unfused: rounded into prod)      [cut 1 after]
             -> leaf_i = round(+0 + p_i) into acc                                 FloatStep(seq)
    tree:    node = round(x + y), level by level (N - 1 adders, ceil(log2 N) levels)
                                                                                  [cut 2 after]
    loop:    acc_next = round(acc + group_sum)                                    add_spec(spec, acc)

Pipelining (:class:`psum.hw.impl.MacImpl`): cut 1 registers the N exact products, cut 2 the
group sum, so with ``pipeline=2`` only one float adder is left in the accumulate loop. The
controls (``en``, ``load``, ``init``) travel with their products; latency ``pipeline`` cycles.

Control: ``rst`` (acc = +0) > ``load`` (acc = init, a new dot product) > ``en`` (one group). A
dot product whose length K is not a multiple of N is driven with its last group padded with zero
operands (codes 0): a pad leaf is +0 in every rounding mode, and the emulation pads the same way.
There is no ``flush``: after ``load`` and ceil(K/N) ``en`` cycles, ``acc`` is the result.

Refused: integer and fixed-point accumulators (the emulation builds them; this unit is float
only) and ``round=sr`` (2N roundings per cycle would need 2N random draws).
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Signal
from psum.golden.spec import add_spec

from .float_mac import FloatStep, register_stage
from .unit import MacUnit, operand_ports

__all__ = ["TreeMac"]


class TreeMac(MacUnit):
    """N-input adder-tree dot-product unit with one float register (``order=tree<N>``).

    Ports: the contract of :mod:`psum.hw` with ``a0 .. a{N-1}``, ``b0 .. b{N-1}`` instead of
    ``a``, ``b`` (N > 1); no ``flush``, no ``acc2``.

    Parameters
    ----------
    spec : MacSpec or str
        A float-accumulator spec with ``order=tree<N>``.
    impl : MacImpl or str, optional
        ``pipeline`` 0, 1 (after the products) or 2 (also after the tree).

    Raises
    ------
    ValueError
        An integer or fixed-point accumulator, another order (plain ``tree`` included),
        stochastic rounding, or an implementation the unit cannot use.
    """

    int_acc = False
    orders = ("tree",)
    sr_refused = " (2N roundings per cycle)"
    max_pipeline = 2

    def elaborate(self, platform):
        spec = self._spec
        fmt = spec.acc
        k = self.pipeline
        m = Module()
        seq = spec.replace(order="seq")
        sadd = add_spec(spec, fmt)
        one = Const(1, 2)  # operand b = 1 of an add step (add_spec)

        # -- the N exact products (unfused: rounded into prod) --------------------------------
        steps, prods = [], []
        for i, (pa, pb) in enumerate(operand_ports(spec)):
            st = FloatStep(seq, name=f"lane{i}", multiplier=self.impl.multiplier)
            steps.append(st)
            prods.append(st.product(m, getattr(self, pa), getattr(self, pb)))
        ctl = {"en": self.en, "load": self.load, "init": self.init}
        # -- cut 1 (pipeline >= 1): the exact products ------------------------------------------
        if k >= 1:
            prods = [register_stage(m, p, f"s1_p{i}") for i, p in enumerate(prods)]
            ctl = register_stage(m, ctl, "s1")

        # -- leaves: each product rounded into acc alone (one MAC step from +0) ---------------
        zero = Signal(fmt.width, name="zero")  # +0, constant: synthesis folds the leaf adders
        m.d.comb += zero.eq(0)
        level = [st.accumulate(m, st.normalise(m, p), zero) for st, p in zip(steps, prods)]

        # -- the tree: pairwise, level by level, left to right; an odd last node moves up --------
        j = 0
        while len(level) > 1:
            nxt = []
            for i in range(0, len(level) - 1, 2):
                nxt.append(FloatStep(sadd, name=f"n{j}")(m, level[i], level[i + 1], one))
                j += 1
            if len(level) % 2:
                nxt.append(level[-1])
            level = nxt
        group = level[0]
        # -- cut 2 (pipeline = 2): the group sum ------------------------------------------------
        if k >= 2:
            group = register_stage(m, group, "s2_sum")
            ctl = register_stage(m, ctl, "s2")

        # =====================================================================================
        # The accumulate loop: one add step. Load wins over en; the sync domain's reset gives
        # acc = +0 (and clears the pipeline's en/load registers).
        # =====================================================================================
        nxt = FloatStep(sadd, name="r")(m, self.acc, group, one)
        with m.If(ctl["load"]):
            m.d.sync += self.acc.eq(ctl["init"])
        with m.Elif(ctl["en"]):
            m.d.sync += self.acc.eq(nxt)
        return m
