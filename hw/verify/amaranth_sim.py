"""The generated unit in Amaranth's Python simulator: fast unit tests of the generators.

The bit-exact claim is made on the emitted Verilog in Icarus (:func:`psum.hw.verify.runner.simulate`);
this driver runs the same stimulus on the Amaranth model in a few seconds per unit.
"""

from __future__ import annotations

import numpy as np

from psum.golden import MacSpec

from .stimulus import columns

__all__ = ["amaranth_trace"]


def amaranth_trace(spec, stim: dict, impl=None, **options):
    """The unit of ``spec`` in Amaranth's Python simulator: its outputs after every rising edge.

    Parameters
    ----------
    spec : MacSpec or str
    stim : dict
        A :func:`psum.hw.verify.stimulus.make_stimulus`-style dict, one uint64 array per column of
        :func:`psum.hw.verify.stimulus.columns` (``rst``, ``a``, ``b``, ``en``, ``load``, ``init``
        and, for stochastic rounding, ``rnd``); other keys are ignored.
    impl : MacImpl or str, optional
        The implementation (:class:`psum.hw.impl.MacImpl`).
    **options
        The implementation as keywords instead (``pipeline=2``).

    Returns
    -------
    numpy.ndarray or dict
        uint64 codes of ``acc``, one per cycle; for a unit with more outputs (``acc2``), a dict
        ``{output port: codes}``.
    """
    from amaranth.hdl import ClockDomain, Module
    from amaranth.lib.wiring import Out
    from amaranth.sim import Simulator

    from psum.hw import generate

    spec = MacSpec.parse(spec)
    dut = generate(spec, impl, **options)
    outs = [k for k, mem in dut.signature.members.items() if mem.flow is Out]
    top = Module()
    top.domains.sync = cd = ClockDomain("sync")
    top.submodules.dut = dut
    # Every column is a port of the unit, by name (rst: the sync domain's reset).
    ports = [(cd.rst if k == "rst" else getattr(dut, k), k) for k in columns(spec)]
    observed = {k: [] for k in outs}

    async def bench(ctx):
        for t in range(len(stim["en"])):
            for port, k in ports:
                ctx.set(port, int(stim[k][t]))
            await ctx.tick()
            for k in outs:
                observed[k].append(ctx.get(getattr(dut, k)))

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    res = {k: np.asarray(v, dtype=np.uint64) for k, v in observed.items()}
    return res["acc"] if len(res) == 1 else res
