"""The Verilog stimulus player around a unit, and the text files it reads and writes.

The harness ``psum_mac_tb`` is generated from the port contract (:func:`psum.hw.unit.mac_signature`
through :func:`psum.hw.verify.stimulus.input_ports`): one register per input port, one wire per
output, the instance connected by name, and one text column per stimulus column. The 1-bit inputs
(``rst``, ``en``, ``load``, a 1-bit ``rnd``) travel packed in one ``ctrl`` field; wider ones each
have their own hex field.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from psum.golden import MacSpec
from psum.hw.impl import module_name
from psum.hw.unit import mac_signature

from .check import UNKNOWN
from .stimulus import input_ports

__all__ = ["harness_verilog", "output_ports", "write_stimulus_text", "read_response", "TOP", "PERIOD_NS"]

TOP = "psum_mac_tb"  # the simulator's toplevel
PERIOD_NS = 10  # clock period of the harness and of the cocotb drive mode


def _layout(spec: MacSpec) -> tuple[list, list]:
    """``(ctrl, data)``: the 1-bit input columns (packed into ``ctrl``, first = top bit) and the
    wider ones (one hex field each), both in stimulus-column order."""
    ports = input_ports(spec)
    return [k for k, w in ports.items() if w == 1], [k for k, w in ports.items() if w > 1]


def output_ports(spec) -> dict:
    """``{port: width}`` of the unit's outputs in the contract's order (``acc``, then ``acc2``)."""
    from amaranth.hdl import Shape
    from amaranth.lib.wiring import Out

    return {k: Shape.cast(m.shape).width for k, m in mac_signature(spec).items() if m.flow is Out}


def harness_verilog(spec, impl=None, *, top: str | None = None) -> str:
    """Verilog of ``psum_mac_tb``: the unit plus a per-cycle stimulus player.

    The unit instantiated is :func:`psum.hw.impl.module_name` ``(spec, impl)``, or ``top`` (a
    user's module with the same ports, ``psum sim --rtl``). At every falling edge the harness
    writes the outputs left by the previous rising edge (``acc``, then ``acc2`` where the unit
    has one, space-separated hex) to ``resp.txt`` and reads the next row (:func:`write_stimulus_text`) from ``stim.txt`` in the
    working directory; at the end of the file it raises ``done``. With the plusarg ``+psum_drive``
    it plays nothing and the cocotb test drives the input registers itself, by their port names.
    In stream mode the harness runs its own clock (period :data:`PERIOD_NS`); in drive mode the
    cocotb test clocks ``clk``.
    """
    spec = MacSpec.parse(spec)
    ports = input_ports(spec)
    outputs = output_ports(spec)
    dut = top or module_name(spec, impl)
    ctrl, data = _layout(spec)

    def vec(w):
        return f"[{w - 1}:0] " if w > 1 else ""

    regs = "\n".join(f"    reg {vec(w)}{k};" for k, w in ports.items())
    wires = "\n".join(f"    wire {vec(w)}{k};" for k, w in outputs.items())
    conns = ",\n".join(f"        .{k}({k})" for k in ("clk", *ports, *outputs))
    fields = ["ctrl", *data]
    fmt = " ".join(["%h"] * len(fields))
    return f"""`timescale 1ns/1ps
// psum stimulus player for {dut} ({spec}); generated, do not edit.
module {TOP}(output reg done);
    reg clk = 1'b1;
    // No initial values on purpose: the first row then changes every input from x, which wakes
    // the unit's `always @*` blocks (Yosys' Verilog relies on an input event to evaluate them;
    // with inputs equal to their initial values the register would load an x).
{regs}
    reg [{len(ctrl) - 1}:0] ctrl;
{wires}
    integer fi, fo, r, count, drive;

    {dut} dut (
{conns}
    );

    initial begin
        done = 1'b0;
        count = 0;
        drive = $test$plusargs("psum_drive");
        if (!drive) begin
            fi = $fopen("stim.txt", "r");
            fo = $fopen("resp.txt", "w");
            if (fi == 0 || fo == 0) $fatal(1, "{TOP}: cannot open stim.txt / resp.txt");
            // Why a Verilog clock here: a clock toggled from Python costs a GPI callback per edge,
            // which caps cocotb near 15,000 cycles/s; this keeps Python out of the cycle loop.
            while (!done) #{PERIOD_NS // 2} clk = ~clk;
        end
    end

    // Falling edge: record what the last rising edge stored, then present the next cycle's inputs.
    always @(negedge clk) if (!drive && !done) begin
        if (count > 0) $fwrite(fo, "{" ".join(["%h"] * len(outputs))}\\n", {", ".join(outputs)});
        r = $fscanf(fi, "{fmt}\\n", {", ".join(fields)});
        if (r != {len(fields)}) begin
            $fclose(fo);
            $fclose(fi);
            done = 1'b1;
        end else begin
            {{{", ".join(ctrl)}}} = ctrl;
            count = count + 1;
        end
    end
endmodule
"""


def write_stimulus_text(spec, stim: dict, path) -> None:
    """The harness' ``stim.txt``: one hex row ``ctrl <wide inputs...>`` per cycle."""
    ctrl_cols, data = _layout(MacSpec.parse(spec))
    ctrl = np.zeros(len(stim["rst"]), dtype=np.uint64)
    for k in ctrl_cols:  # first column ends up in the top bit, as {rst, ...} = ctrl unpacks it
        ctrl = (ctrl << np.uint64(1)) | stim[k]
    cols = [c.tolist() for c in (ctrl, *(stim[k] for k in data))]
    line = " ".join(["{:x}"] * len(cols)) + "\n"
    with open(path, "w") as f:
        f.write("".join(line.format(*row) for row in zip(*cols)))


def read_response(path, outputs=("acc",)) -> dict:
    """The harness' ``resp.txt``: ``{output: uint64 codes}`` (x/z values as :data:`psum.hw.verify.check.UNKNOWN`).

    ``outputs`` names the columns of a line, :func:`output_ports`' order.
    """
    def code(text):
        # An x/z bit (an undriven or uninitialised register) can never equal a golden code.
        try:
            return int(text, 16)
        except ValueError:
            return UNKNOWN

    with open(Path(path)) as f:
        rows = [line.split() for line in f.read().splitlines() if line.strip()]
    return {k: np.array([code(r[i]) if i < len(r) else UNKNOWN for r in rows], dtype=np.uint64)
            for i, k in enumerate(outputs)}
