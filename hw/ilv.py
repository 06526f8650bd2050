"""The interleaved-accumulation unit (``order=ilv<L>``): L partial sums, combined at the end.

A float adder pipelined into L stages cannot add a product into the sum it is still computing:
the accumulate loop has an L-cycle latency. The standard answer (C-slowing the loop; the
"interleaved" or "multi-accumulator" reduction of FPGA float accumulators) is to keep L partial
sums in flight, product k going into sum ``k mod L``, and to combine them after the last
product. What it computes is :func:`psum.golden.emulation.kernels.accumulate_order`'s ``ilv<L>``.

Datapath: one :class:`psum.hw.float_mac.FloatStep` (the MAC of the spec) reads the partial sum
``s[k]`` and writes it back; one add step (:func:`psum.golden.spec.add_spec` into ``acc``)
combines ``s[0] := s[0] + s[j]`` for ``j = 1 .. L-1``, one per ``flush`` cycle. ``acc`` is
``s[0]``; ``s[1..L-1]`` are internal registers.

Control::

    rst     every s = +0, k = 0, j = 0
    load    s[0] = init, s[1..] = +0, k = 0, j = 0        (a new dot product)
    flush   if j < L-1: s[0] = s[0] + s[j+1], s[j+1] = +0, j += 1   (else nothing)
    en      s[k] = step(s[k], a, b), k = (k + 1) mod L

After ``load``, K products and L - 1 ``flush`` cycles, ``acc`` is ``accumulate_order``'s output.

Limits: the L registers sit behind a one-cycle datapath here (a register file indexed by k);
a C-slow retiming (Leiserson and Saxe) would move L - 1 of them into the add loop so that the
loop closes in 1/L of the delay. psum's synthesis flow does not retime, so its delay figure is
that of the unretimed loop: it prices the area and the accuracy of the order, not its speed.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal
from psum.golden.spec import add_spec

from .chunk import INT_CUTS, pipelined_product, step_for
from .unit import MacUnit

__all__ = ["IlvMac"]


def _select(values: list, index):
    """``values[index]`` as a Mux chain (the last value for an index past the end)."""
    out = values[-1]
    for i in range(len(values) - 2, -1, -1):
        out = Mux(index == i, values[i], out)
    return out


class IlvMac(MacUnit):
    """Interleaved float accumulation in L partial sums (``order=ilv<L>``).

    Ports: the contract of :mod:`psum.hw`, with ``flush`` in when L > 1.

    Parameters
    ----------
    spec : MacSpec or str
        A float- or integer-accumulator spec with ``order=ilv<L>`` (integer: the step is
        :class:`psum.hw.int_mac.IntStep`).
    impl : MacImpl or str, optional
        ``pipeline`` 0, 1 (cut after the product) or 2 (also after its normalisation; integer
        accumulators: 1 cut); ``flush`` travels with the inputs, latency ``pipeline`` cycles.

    Raises
    ------
    ValueError
        A fixed-point accumulator, another order, or an implementation the unit cannot use.

    Notes
    -----
    Stochastic rounding: every cycle rounds once (a product into ``s[k]`` under ``en``, or a
    combine under ``flush``), with that cycle's ``rnd`` bits.
    """

    int_acc = None
    orders = ("ilv",)
    sr_refused = None

    @classmethod
    def cuts_for(cls, spec):
        return INT_CUTS if spec.int_acc else cls.pipeline_cuts

    def elaborate(self, platform):
        spec = self._spec
        L = spec.order.length
        m = Module()
        step = step_for(spec.replace(order="seq"), name="mac", multiplier=self.impl.multiplier)
        sums = [self.acc] + [Signal(spec.acc.width, name=f"s{i}") for i in range(1, L)]
        k = Signal(range(L), name="k")  # the partial sum the next product goes into
        # Why explicit Mux chains and not an Array: Yosys writes an Array read as an `always @*`
        # case block, which an event-driven simulator first evaluates when its index changes;
        # an index that stays at its initial value (k = 0 after reset) would read as x.
        (q,), ctl = pipelined_product(m, self, [step], [(self.a, self.b)])
        rnd = ctl.get("rnd")
        nxt = step.accumulate(m, q, _select(sums, k), rnd)

        with m.If(ctl["load"]):
            m.d.sync += [self.acc.eq(ctl["init"]), k.eq(0)] + [s.eq(0) for s in sums[1:]]
        if L > 1:
            j = Signal(range(L), name="j")  # combine steps done
            other = _select(sums[1:], j)  # s[j + 1] (j = L - 1 reads s[L-1]; no combine then)
            add = step_for(add_spec(spec, spec.acc), name="comb")(m, self.acc, other, Const(1, 2), rnd)
            with m.If(ctl["load"]):
                m.d.sync += j.eq(0)
            with m.Elif(ctl["flush"]):
                with m.If(j < L - 1):
                    m.d.sync += [self.acc.eq(add), j.eq(j + 1)]
                    for i, s in enumerate(sums[1:]):
                        with m.If(j == i):
                            m.d.sync += s.eq(0)
            with m.Elif(ctl["en"]):
                m.d.sync += k.eq(Mux(k == L - 1, 0, k + 1))
                for i, s in enumerate(sums):
                    with m.If(k == i):
                        m.d.sync += s.eq(nxt)
        else:
            with m.Elif(ctl["en"]):
                m.d.sync += self.acc.eq(nxt)
        return m
