"""The Verilog harness around a unit: it plays the stimulus and checks the outputs in the simulator.

The harness ``psum_mac_tb`` is generated from the port contract (:func:`psum.hw.unit.mac_signature`
through :func:`psum.hw.verify.stimulus.input_ports`): one register per input port, one wire per
output, the instance connected by name. The stimulus reaches it as hex files of :data:`CHUNK`
rows (``stim_<i>.hex``), loaded with ``$readmemh`` into a memory, one row per cycle; each row
packs the input columns into nibble-aligned fields (:func:`stim_layout`: the 1-bit inputs
``rst``, ``en``, ``load``, a 1-bit ``rnd`` in one ``ctrl`` field, every wider input in its own).

Three modes, chosen by plusargs when the simulation starts (one build serves all three):

``stream`` (default, ``+psum_cycles=N``)
    The golden model's expected outputs arrive the same way (``exp_<i>.hex``, :func:`exp_layout`);
    at every falling edge the harness compares the outputs the last rising edge stored with the
    expected row (``!==``: an x/z bit is a mismatch), counts the mismatches and records the first
    :data:`RECORDS` of them (cycle, outputs, expected outputs) in ``check.txt``
    (:func:`read_check`). No Python and no text output run per cycle.
``trace`` (``+psum_cycles=N +psum_trace``)
    The harness writes every cycle's outputs to ``resp.txt`` (:func:`read_response`); the check
    runs in Python afterwards, from the register the unit itself held
    (:func:`psum.hw.verify.check.check_trace`).
``drive`` (``+psum_drive``)
    The harness plays nothing: the cocotb test clocks ``clk`` and drives the input registers by
    their port names.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from psum.golden import MacSpec
from psum.hw.impl import module_name
from psum.hw.unit import mac_signature

from .check import UNKNOWN
from .stimulus import input_ports

__all__ = ["harness_verilog", "output_ports", "Field", "stim_layout", "exp_layout", "write_hex_chunks",
           "read_check", "read_response", "TOP", "PERIOD_NS", "CHUNK", "RECORDS"]

TOP = "psum_mac_tb"  # the simulator's toplevel
PERIOD_NS = 10  # clock period of the harness and of the cocotb drive mode
# Rows per hex file and harness memory: a long run never holds more than this many rows in the
# simulator (a 1 M-cycle run reads 16 files), and a short one reads one short file.
CHUNK = 1 << 16
RECORDS = 16  # mismatches recorded with their values in check.txt (all of them are counted)


@dataclasses.dataclass(frozen=True)
class Field:
    """One nibble-aligned field of a hex row: the columns it packs (first = top bit when more
    than one 1-bit column share it), its width in bits and its lowest bit in the row."""

    name: str
    columns: tuple
    width: int
    lsb: int

    @property
    def digits(self) -> int:
        """Hex digits of the field in a row."""
        return (self.width + 3) // 4


def _fields(named: list) -> list:
    """``[(name, columns, width)]`` laid out from the row's top down, each on whole hex digits."""
    total = sum((w + 3) // 4 * 4 for _, _, w in named)
    out, top = [], total
    for name, cols, w in named:
        top -= (w + 3) // 4 * 4
        out.append(Field(name, tuple(cols), w, top))
    return out


def stim_layout(spec) -> list:
    """The fields of a stimulus row (list of :class:`Field`, most significant first): ``ctrl``
    packs the 1-bit inputs in stimulus-column order, every wider input has its own field."""
    ports = input_ports(MacSpec.parse(spec))
    ctrl = [k for k, w in ports.items() if w == 1]
    return _fields([("ctrl", ctrl, len(ctrl))] + [(k, (k,), w) for k, w in ports.items() if w > 1])


def exp_layout(spec) -> list:
    """The fields of an expected-outputs row: one per output (``acc``, then ``acc2``)."""
    return _fields([(k, (k,), w) for k, w in output_ports(spec).items()])


def _row_bits(layout) -> int:
    return sum(f.digits * 4 for f in layout)


def output_ports(spec) -> dict:
    """``{port: width}`` of the unit's outputs in the contract's order (``acc``, then ``acc2``)."""
    from amaranth.hdl import Shape
    from amaranth.lib.wiring import Out

    return {k: Shape.cast(m.shape).width for k, m in mac_signature(spec).items() if m.flow is Out}


_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)


def _hex_rows(layout, cols: dict, rows: slice) -> bytes:
    """The rows ``rows`` of ``cols`` as fixed-width hex lines of ``layout``, built in numpy (no
    Python per row or per value)."""
    parts = []
    for f in layout:
        if len(f.columns) == 1:
            v = np.asarray(cols[f.columns[0]][rows], np.uint64)
        else:  # 1-bit columns sharing a field: the first ends up in the top bit
            v = np.zeros(len(cols[f.columns[0]][rows]), np.uint64)
            for c in f.columns:
                v = (v << np.uint64(1)) | (np.asarray(cols[c][rows], np.uint64) & np.uint64(1))
        shifts = np.arange(f.digits - 1, -1, -1, dtype=np.uint64) * np.uint64(4)
        parts.append(_HEX[((v[:, None] >> shifts[None, :]) & np.uint64(15)).astype(np.intp)])
    n = parts[0].shape[0] if parts else 0
    parts.append(np.full((n, 1), ord("\n"), np.uint8))
    return np.concatenate(parts, axis=1).tobytes()


def write_hex_chunks(layout, cols: dict, directory, prefix: str) -> int:
    """Write ``cols`` as ``<prefix>_<i>.hex`` files of :data:`CHUNK` rows in ``directory``.

    Parameters
    ----------
    layout : list of Field
        :func:`stim_layout` or :func:`exp_layout` of the spec.
    cols : dict
        One uint64 array per column the layout names, all of the same length.
    directory : path
    prefix : str
        ``"stim"`` or ``"exp"``.

    Returns
    -------
    int
        The number of rows written.
    """
    n = len(cols[layout[0].columns[0]])
    for i, start in enumerate(range(0, n, CHUNK)):
        (Path(directory) / f"{prefix}_{i}.hex").write_bytes(_hex_rows(layout, cols, slice(start, start + CHUNK)))
    return n


def harness_verilog(spec, impl=None, *, top: str | None = None) -> str:
    """Verilog of ``psum_mac_tb``: the unit, a stimulus player and the in-simulator check.

    The unit instantiated is :func:`psum.hw.impl.module_name` ``(spec, impl)``, or ``top`` (a
    user's module with the same ports, ``psum sim --rtl``). At every falling edge the harness
    first handles the outputs left by the previous rising edge (``stream``: compare with the
    expected row, count, record; ``trace``: write them to ``resp.txt``), then presents the next
    cycle's inputs from the stimulus memory, loading the next files every :data:`CHUNK` cycles;
    after ``N`` cycles (plusarg ``+psum_cycles=N``) it raises ``done``. In stream and trace mode
    the harness runs its own clock (period :data:`PERIOD_NS`); in drive mode (``+psum_drive``) the
    cocotb test clocks ``clk`` and writes the input registers. See the module's docstring.
    """
    spec = MacSpec.parse(spec)
    ports = input_ports(spec)
    outputs = output_ports(spec)
    dut = top or module_name(spec, impl)
    stim, exp = stim_layout(spec), exp_layout(spec)
    sw, ew = _row_bits(stim), _row_bits(exp)

    def vec(w):
        return f"[{w - 1}:0] " if w > 1 else ""

    def sl(f):  # the field's bits in a row
        return f"[{f.lsb + f.width - 1}:{f.lsb}]" if f.width > 1 else f"[{f.lsb}]"

    regs = "\n".join(f"    reg {vec(w)}{k};" for k, w in ports.items())
    wires = "\n".join(f"    wire {vec(w)}{k};" for k, w in outputs.items())
    conns = ",\n".join(f"        .{k}({k})" for k in ("clk", *ports, *outputs))
    unpack = "\n".join(f"            {{{', '.join(f.columns)}}} = row{sl(f)};" if len(f.columns) > 1
                       else f"            {f.columns[0]} = row{sl(f)};" for f in stim)
    differ = " || ".join(f"{f.name} !== want{sl(f)}" for f in exp)
    outs = ", ".join(outputs)
    wants = ", ".join(f"want{sl(f)}" for f in exp)
    hexes = " ".join(["%h"] * len(outputs))
    return f"""`timescale 1ns/1ps
// psum stimulus player and checker for {dut} ({spec}); generated, do not edit.
module {TOP}(output reg done);
    reg clk = 1'b1;
    // No initial values on purpose: the first row then changes every input from x, which wakes
    // the unit's `always @*` blocks (Yosys' Verilog relies on an input event to evaluate them;
    // with inputs equal to their initial values the register would load an x).
{regs}
{wires}
    // One row per cycle, {CHUNK} rows per file; fields as psum.hw.verify.harness.stim_layout / exp_layout.
    reg [{sw - 1}:0] stim_mem [0:{CHUNK - 1}];
    reg [{ew - 1}:0] exp_mem [0:{CHUNK - 1}];
    reg [{sw - 1}:0] row;
    reg [{ew - 1}:0] want;
    reg [8*32-1:0] fname;
    integer n, t, mism, nrec, fo, drive, trace;

    {dut} dut (
{conns}
    );

    initial begin
        done = 1'b0;
        t = 0;
        mism = 0;
        nrec = 0;
        n = 0;
        drive = $test$plusargs("psum_drive");
        trace = $test$plusargs("psum_trace");
        if (!drive) begin
            if (!$value$plusargs("psum_cycles=%d", n)) $fatal(1, "{TOP}: no +psum_cycles=N");
            fo = $fopen(trace ? "resp.txt" : "check.txt", "w");
            if (fo == 0) $fatal(1, "{TOP}: cannot open the output file");
            // Why a Verilog clock here: a clock toggled from Python costs a GPI callback per edge,
            // which caps cocotb near 15,000 cycles/s; this keeps Python out of the cycle loop.
            while (!done) #{PERIOD_NS // 2} clk = ~clk;
        end
    end

    // Falling edge: check (or record) what the last rising edge stored, then present the next
    // cycle's inputs; the unit's registers see them at the next rising edge.
    always @(negedge clk) if (!drive && !done) begin
        if (t > 0) begin
            if (trace) $fwrite(fo, "{hexes}\\n", {outs});
            else begin
                want = exp_mem[(t - 1) % {CHUNK}];
                if ({differ}) begin
                    // Why only the first few: the count is exact; a wrong unit may differ on
                    // every later cycle, and the report needs the first.
                    if (nrec < {RECORDS}) $fwrite(fo, "%0d {hexes} {hexes}\\n", t - 1, {outs}, {wants});
                    nrec = nrec + 1;
                    mism = mism + 1;
                end
            end
        end
        if (t == n) begin
            if (!trace) $fwrite(fo, "end %0d %0d\\n", n, mism);
            $fclose(fo);
            done = 1'b1;
        end else begin
            if (t % {CHUNK} == 0) begin
                $sformat(fname, "stim_%0d.hex", t / {CHUNK});
                $readmemh(fname, stim_mem);
                if (!trace) begin
                    $sformat(fname, "exp_%0d.hex", t / {CHUNK});
                    $readmemh(fname, exp_mem);
                end
            end
            row = stim_mem[t % {CHUNK}];
{unpack}
            t = t + 1;
        end
    end
endmodule
"""


def read_check(path, outputs=("acc",)) -> tuple[int, int, list]:
    """The harness' ``check.txt``: ``(cycles, mismatches, records)``.

    ``records`` holds the first :data:`RECORDS` mismatches as ``(cycle, got, expected)``, ``got``
    and ``expected`` being ``{output: code}`` (an x/z value as :data:`psum.hw.verify.check.UNKNOWN`).

    Raises
    ------
    ValueError
        The file lacks its final ``end`` line (the simulation stopped early).
    """
    k = len(outputs)
    records, end = [], None
    for line in Path(path).read_text().splitlines():
        f = line.split()
        if not f:
            continue
        if f[0] == "end":
            end = (int(f[1]), int(f[2]))
        else:
            got = {o: _code(v) for o, v in zip(outputs, f[1:1 + k])}
            want = {o: _code(v) for o, v in zip(outputs, f[1 + k:1 + 2 * k])}
            records.append((int(f[0]), got, want))
    if end is None:
        raise ValueError(f"{path} has no end line: the simulation stopped before its last cycle")
    return end[0], end[1], records


def _code(text: str) -> int:
    # An x/z bit (an undriven or uninitialised register) can never equal a golden code.
    try:
        return int(text, 16)
    except ValueError:
        return UNKNOWN


def read_response(path, outputs=("acc",)) -> dict:
    """The harness' ``resp.txt``: ``{output: uint64 codes}`` (x/z values as :data:`psum.hw.verify.check.UNKNOWN`).

    ``outputs`` names the columns of a line, :func:`output_ports`' order.
    """
    with open(Path(path)) as f:
        rows = [line.split() for line in f.read().splitlines() if line.strip()]
    return {k: np.array([_code(r[i]) if i < len(r) else UNKNOWN for r in rows], dtype=np.uint64)
            for i, k in enumerate(outputs)}
