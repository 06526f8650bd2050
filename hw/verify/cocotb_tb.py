"""cocotb test module of every generated MAC unit (run through :func:`psum.hw.verify.runner.simulate`).

The simulator's toplevel is the ``psum_mac_tb`` harness (:func:`psum.hw.verify.harness.harness_verilog`)
around the unit. The spec arrives in ``PSUM_SPEC``, the implementation in ``PSUM_IMPL``; the stimulus, one row per cycle, in
``stim.npz`` in the working directory. Both tests end by checking every cycle against
:func:`psum.golden.mac_step` (:func:`psum.hw.verify.check.finish`) and writing ``result.json``.

``mac_stream``
    The harness clocks itself and plays ``stim.txt`` (no Python per cycle); this coroutine waits
    for ``done`` and checks the recorded trace.
``mac_drive``
    This coroutine writes every input at the falling edge and reads ``acc`` at the next one.

The pytest side is ``tests/test_hw_int.py`` (and the float tests), through ``simulate()``.
"""

import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

from psum.golden import MacSpec
from .check import UNKNOWN, finish
from .harness import PERIOD_NS, output_ports, read_response
from .stimulus import columns


def _setup():
    spec = MacSpec.parse(os.environ["PSUM_SPEC"])
    impl = os.environ.get("PSUM_IMPL", "")
    with np.load("stim.npz") as z:
        stim = {k: z[k] for k in columns(spec)}
    return spec, impl, stim


@cocotb.test()
async def mac_stream(dut):
    """The harness clocks and plays the stimulus file; check the recorded register trace."""
    spec, impl, stim = _setup()
    await RisingEdge(dut.done)
    observed = read_response("resp.txt", tuple(output_ports(spec)))
    res = finish(spec, stim, observed, ".", impl)
    assert res["mismatches"] == 0, f"{res['mismatches']} mismatches; first: {res['first_mismatch']}"


@cocotb.test()
async def mac_drive(dut):
    """Clock and drive every input from Python; check the register after every rising edge."""
    spec, impl, stim = _setup()
    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    n = len(stim["rst"])
    cols = {k: stim[k].tolist() for k in stim}
    # Every stimulus column is an input register of the harness, of the same name as the port.
    ports = {k: getattr(dut, k) for k in stim}
    outs = {k: getattr(dut, k) for k in output_ports(spec)}
    falling = FallingEdge(dut.clk)
    observed = {k: [] for k in outs}
    await falling  # inputs change half a cycle away from the sampling edge
    for t in range(n):
        for k, port in ports.items():
            port.value = cols[k][t]
        await falling  # the rising edge in between stored the new register value
        for k, port in outs.items():
            v = port.value
            observed[k].append(v.to_unsigned() if v.is_resolvable else UNKNOWN)
    res = finish(spec, stim, observed, ".", impl)
    assert res["mismatches"] == 0, f"{res['mismatches']} mismatches; first: {res['first_mismatch']}"
