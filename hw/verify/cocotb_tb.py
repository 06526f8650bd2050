"""cocotb test module of every generated MAC unit (run through :func:`psum.hw.verify.runner.simulate`).

:func:`~psum.hw.verify.runner.simulate` copies this file into each run folder as
``psum_cocotb_tb.py`` and the simulator loads it from there, as a top-level module, so that its
start-up does not import the package ``psum.hw`` (see ``runner._TB_MODULE``): keep every psum
and numpy import inside the tests, as absolute imports.

The simulator's toplevel is the ``psum_mac_tb`` harness (:func:`psum.hw.verify.harness.harness_verilog`)
around the unit. One test per check mode:

``mac_stream``
    The harness clocks itself, plays the stimulus files and compares every cycle with golden's
    expected stream inside the simulator (no Python per cycle); this coroutine waits for ``done``
    and fails with the harness' count and first record (``check.txt``). The full report (inputs,
    previous register) is built by :func:`psum.hw.verify.runner.simulate` from the same file.
``mac_trace``
    The harness plays the stimulus and records every cycle's outputs; this coroutine checks the
    trace against :func:`psum.golden.mac_step` from the register the unit itself held
    (:func:`psum.hw.verify.check.finish`) and writes ``result.json``.
``mac_drive``
    This coroutine writes every input at the falling edge and reads the outputs at the next one,
    then checks them like ``mac_trace``.

The spec arrives in ``PSUM_SPEC``, the implementation in ``PSUM_IMPL``; ``mac_trace`` and
``mac_drive`` read the stimulus, one row per cycle, from ``stim.npz`` in the working directory.
Why the imports of numpy and psum wait inside the tests: ``mac_stream`` needs neither, and the
simulator process' start-up is a fixed cost of every run (about a CPU-second more with them).

The pytest side is ``tests/test_hw_int.py`` (and the float tests), through ``simulate()``.
"""

import os

import cocotb
from cocotb.triggers import FallingEdge, RisingEdge

PERIOD_NS = 10  # psum.hw.verify.harness.PERIOD_NS (not imported here, see above)


def _setup():
    import numpy as np

    from psum.golden import MacSpec
    from psum.hw.verify.stimulus import columns

    spec = MacSpec.parse(os.environ["PSUM_SPEC"])
    impl = os.environ.get("PSUM_IMPL", "")
    with np.load("stim.npz") as z:
        stim = {k: z[k] for k in columns(spec)}
    return spec, impl, stim


@cocotb.test()
async def mac_stream(dut):
    """The harness plays the stimulus and compares every cycle in the simulator; read its verdict."""
    await RisingEdge(dut.done)
    with open("check.txt") as f:
        lines = [line.split() for line in f.read().splitlines() if line.strip()]
    end = [f for f in lines if f[0] == "end"]
    assert end, "the harness wrote no end line in check.txt"
    n, mism = int(end[0][1]), int(end[0][2])
    first = lines[0] if mism else None
    k = (len(first) - 1) // 2 if first else 0
    assert mism == 0, (f"{mism} mismatches in {n} cycles; first at cycle {first[0]}: got "
                       f"{' '.join(first[1:1 + k])}, expected {' '.join(first[1 + k:])}")


@cocotb.test()
async def mac_trace(dut):
    """The harness plays the stimulus and records every cycle; check the trace in Python."""
    from psum.hw.verify.check import finish
    from psum.hw.verify.harness import output_ports, read_response

    spec, impl, stim = _setup()
    await RisingEdge(dut.done)
    observed = read_response("resp.txt", tuple(output_ports(spec)))
    res = finish(spec, stim, observed, ".", impl)
    assert res["mismatches"] == 0, f"{res['mismatches']} mismatches; first: {res['first_mismatch']}"


@cocotb.test()
async def mac_drive(dut):
    """Clock and drive every input from Python; check the register after every rising edge."""
    from cocotb.clock import Clock

    from psum.hw.verify.check import UNKNOWN, finish
    from psum.hw.verify.harness import output_ports

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
