"""The mapped gate-level netlist: connectivity, net loads, static timing, and a Verilog view.

Yosys writes the mapped design as JSON (``write_json``): every net bit has an integer id, every
cell lists the bit ids on its pins. :class:`Netlist` reads that file once and answers what the
flow needs: the load capacitance of each net (fanout pin capacitances plus the library's wire-load
estimate), the critical path under the linear delay model of :mod:`psum.flows.cells`, and a flat
Verilog netlist with one scalar wire per net bit (``n<id>``), which the power proxy's testbench
samples every cycle.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from pathlib import Path

from psum.errors import PsumError

from .cells import CELLS, wire_cap

__all__ = ["Netlist", "TimingReport"]

_CONST = {"0": "1'b0", "1": "1'b1", "x": "1'bx", "z": "1'bz"}


@dataclasses.dataclass(frozen=True)
class TimingReport:
    """Static timing of a netlist under the linear delay model.

    Attributes
    ----------
    delay_ns : float
        Critical path: clock-to-Q (or a primary input at t=0) through combinational cells to a
        flip-flop's D (plus setup) or a primary output.
    depth : int
        Cells on that critical path (the flip-flop it starts from not counted).
    max_depth : int
        Longest path in cells between any start and end point (Yosys ``ltp -noff``'s measure).
    path : tuple of str
        Cell types along the critical path, start first.
    steps : tuple of (str, str, float)
        The same path as ``(instance name, cell type, arrival at the cell's output in ns)``; the
        stage-by-stage critical path of :mod:`psum.flows.breakdown` is read from the instance names.
    end : str
        Where the path ends: ``"ff"`` (a flip-flop's D, setup included in ``delay_ns``) or ``"port"``.
    edges : tuple of str
        NLDM timing only: ``"rise"`` or ``"fall"``, the edge of each step's output (rise and fall
        are timed apart; empty under psum45's linear model, where they are one figure).
    """

    delay_ns: float
    depth: int
    max_depth: int
    path: tuple
    steps: tuple = ()
    end: str = "port"
    edges: tuple = ()


class Netlist:
    """A mapped, flattened netlist read from Yosys' JSON.

    Parameters
    ----------
    path : path-like
        ``write_json`` output of a design mapped to :data:`psum.flows.cells.CELLS`.
    top : str
        Top module name.

    library : psum.flows.liberty.Library, optional
        A Liberty library the design was mapped to (NLDM timing, table power, leakage); default
        psum45 (:data:`psum.flows.cells.CELLS`, linear delay).

    Raises
    ------
    PsumError
        If the module is missing or uses a cell outside the library.
    """

    def __init__(self, path, top: str, library=None):
        self.library = library
        lib_cells = CELLS if library is None else library.cells
        lib_name = "psum45" if library is None else library.name
        data = json.loads(Path(path).read_text())
        module = data.get("modules", {}).get(top)
        if module is None:
            raise PsumError(f"module {top} not found in the mapped netlist {path}")
        self.top = top
        self.ports = {name: (p["direction"], list(p["bits"])) for name, p in module["ports"].items()}
        self.cells = []  # (instance name, Cell, {pin: bit})
        for name, c in sorted(module["cells"].items()):
            cell = lib_cells.get(c["type"])
            if cell is None:
                raise PsumError(f"mapped netlist uses {c['type']}, which is not a {lib_name} cell psum can model")
            pins = {pin: bits[0] for pin, bits in c["connections"].items()}
            self.cells.append((name, cell, pins))
        self.driver = {}  # bit -> index into self.cells
        self.sinks = defaultdict(list)  # bit -> [(cell index, pin)]
        for i, (_, cell, pins) in enumerate(self.cells):
            for pin, bit in pins.items():
                if pin in cell.outputs:
                    self.driver[bit] = i
                elif isinstance(bit, int):
                    self.sinks[bit].append((i, pin))
        self.bits = sorted({b for _, _, pins in self.cells for b in pins.values() if isinstance(b, int)}
                           | {b for _, bits in self.ports.values() for b in bits if isinstance(b, int)})
        self.load = {b: self._load(b) for b in self.bits}

    # -- loads ---------------------------------------------------------------------------------
    def _load(self, bit) -> float:
        """fF driven on ``bit``: every sink pin's capacitance plus the wire-load estimate."""
        sinks = self.sinks.get(bit, [])
        return sum(self.cells[i][1].cap(pin) for i, pin in sinks) + wire_cap(len(sinks))

    @property
    def ffs(self) -> list:
        """The flip-flop instances."""
        return [c for c in self.cells if c[1].is_ff]

    @property
    def clock_bits(self) -> set:
        """Bits that drive a flip-flop's CK pin."""
        return {pins["CK"] for _, cell, pins in self.cells if cell.is_ff}

    def cell_counts(self) -> dict:
        """Instances per cell type, most frequent first."""
        counts = defaultdict(int)
        for _, cell, _ in self.cells:
            counts[cell.name] += 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def area(self) -> float:
        """Total cell area, µm²."""
        return sum(cell.area for _, cell, _ in self.cells)

    @property
    def vdd(self) -> float:
        """Supply voltage of the library, V."""
        from .cells import VDD

        return VDD if self.library is None else self.library.vdd

    def leakage_nw(self) -> float:
        """Total cell leakage, nW (0 for psum45, which has no leakage figures)."""
        return 0.0 if self.library is None else sum(cell.leakage_nw for _, cell, _ in self.cells)

    def internal_energy(self, i: int) -> float:
        """Internal energy (fJ) of one output toggle of cell ``i`` (NLDM: at its slews and load)."""
        _, cell, pins = self.cells[i]
        if self.library is None:
            return cell.energy
        from .liberty import internal_energy

        slews = getattr(self, "_slew", None) or self._nldm()[1]
        s0 = self.library.input_slew
        return internal_energy(cell, {p: slews.get(b, (s0, s0)) for p, b in pins.items()},
                               self.load[pins[cell.output]])

    def clock_energy(self, i: int) -> float:
        """Internal energy (fJ) per clock cycle of flip-flop ``i`` with steady data."""
        _, cell, _ = self.cells[i]
        if self.library is None:
            return cell.clk_energy
        from .liberty import clock_energy

        return clock_energy(cell, self.library.input_slew)

    def models_text(self) -> str | None:
        """Verilog cell models for simulation (None: psum45's file)."""
        return None if self.library is None else self.library.models_text()

    # -- timing --------------------------------------------------------------------------------
    def _critical_path(self, ends, arrival, prev, depth, levels) -> "TimingReport":
        """The report of the latest of ``ends`` (``(arrival, bit, "ff"|"port")``, non-empty): its
        path traced back through ``prev`` (bit -> (cell index, input bit)) to a launching flip-flop
        or an input, cell by cell with arrival times."""
        delay, end, kind = max(ends)
        steps, edges, b = [], [], end
        while b in prev:
            i, nb = prev[b]
            steps.append((self.cells[i][0], self.cells[i][1].name, round(arrival[b], 6)))
            if isinstance(b, tuple):  # NLDM keys are (bit, edge): the edge of this cell's output
                edges.append(b[1])
            b = nb
            if b is None or self.cells[i][1].is_ff:
                break
        steps.reverse()
        edges.reverse()
        return TimingReport(round(delay, 6), depth[end], max(levels[b] for _, b, _ in ends),
                            tuple(s[1] for s in steps), tuple(steps), kind, tuple(edges))

    def timing(self) -> TimingReport:
        """Critical path: ``d0 + k * C_load`` per cell (psum45, :mod:`psum.flows.cells`), or the
        Liberty's NLDM tables with slew propagation (:mod:`psum.flows.liberty`)."""
        if self.library is not None:
            return self._nldm()[0]
        arrival, depth, levels, prev = {}, {}, {}, {}
        for b in self.bits:
            if b not in self.driver:  # primary input or undriven: arrives at t=0
                arrival[b], depth[b], levels[b] = 0.0, 0, 0
        for i, (_, cell, pins) in enumerate(self.cells):
            if cell.is_ff:
                q = pins[cell.output]
                arrival[q], depth[q], levels[q] = cell.d0 + cell.k * self.load[q], 0, 0
                prev[q] = (i, None)
        # Why Kahn's algorithm: the combinational cells form a DAG between the start points above;
        # visiting a cell only when all its inputs are known gives each net its latest arrival.
        comb = [i for i, (_, cell, _) in enumerate(self.cells) if not cell.is_ff]
        waiting = {}
        users = defaultdict(list)
        for i in comb:
            _, cell, pins = self.cells[i]
            ins = [pins[p] for p, _ in cell.inputs if isinstance(pins[p], int)]
            waiting[i] = sum(1 for b in ins if b not in arrival)
            for b in ins:
                if b not in arrival:
                    users[b].append(i)
        ready = [i for i in comb if waiting[i] == 0]
        while ready:
            i = ready.pop()
            _, cell, pins = self.cells[i]
            ins = [pins[p] for p, _ in cell.inputs if isinstance(pins[p], int)]
            out = pins[cell.output]
            worst = max(ins, key=lambda b: arrival[b], default=None)
            start = arrival[worst] if worst is not None else 0.0
            arrival[out] = start + cell.d0 + cell.k * self.load[out]
            depth[out] = (depth[worst] if worst is not None else 0) + 1
            levels[out] = max((levels[b] for b in ins), default=0) + 1
            prev[out] = (i, worst)
            for j in users.pop(out, []):
                waiting[j] -= 1
                if waiting[j] == 0:
                    ready.append(j)
        if any(n for n in waiting.values() if n):
            raise PsumError(f"combinational loop in the mapped netlist of {self.top}")
        ends = [(arrival[pins["D"]] + cell.setup, pins["D"], "ff") for _, cell, pins in self.cells
                if cell.is_ff and isinstance(pins["D"], int)]
        ends += [(arrival[b], b, "port") for d, bits in self.ports.values() if d == "output"
                 for b in bits if isinstance(b, int)]
        if not ends:
            return TimingReport(0.0, 0, 0, ())
        return self._critical_path(ends, arrival, prev, depth, levels)

    def _nldm(self):
        """(TimingReport, slews) under the library's NLDM tables, rise and fall apart (module
        docstring of :mod:`psum.flows.liberty`): ``slews`` maps every net bit to its
        ``(rising slew, falling slew)`` in ns. The report's ``edges`` name the edge of each step."""
        from .liberty import EDGES, arc_edges, setup_time

        lib = self.library
        s0 = lib.input_slew
        # Every timing figure is kept per (bit, edge); the critical-path backtrace walks those keys.
        arrival, slew, depth, levels, prev = {}, {}, {}, {}, {}
        for b in self.bits:
            if b not in self.driver:
                for e in EDGES:
                    arrival[b, e], slew[b, e], depth[b, e], levels[b, e] = 0.0, s0, 0, 0
        for i, (_, cell, pins) in enumerate(self.cells):
            if cell.is_ff:
                for out in cell.outputs:
                    q = pins.get(out)
                    if not isinstance(q, int):
                        continue
                    # Both edges of Q launch from the clock's rising edge (ideal clock).
                    edges = arc_edges(cell, out, cell.clock, (s0, s0), self.load[q])
                    for e in EDGES:
                        _, d, tr = max(edges[e], key=lambda x: x[1]) if edges else ("rise", 0.0, s0)
                        arrival[q, e], slew[q, e], depth[q, e], levels[q, e] = d, tr, 0, 0
                        prev[q, e] = (i, None)
        comb = [i for i, (_, cell, _) in enumerate(self.cells) if not cell.is_ff]
        waiting, users = {}, defaultdict(list)
        for i in comb:
            _, cell, pins = self.cells[i]
            ins = [pins[p] for p, _ in cell.inputs if isinstance(pins.get(p), int)]
            waiting[i] = sum(1 for b in ins if (b, "rise") not in arrival)
            for b in ins:
                if (b, "rise") not in arrival:
                    users[b].append(i)
        ready = [i for i in comb if waiting[i] == 0]
        while ready:
            i = ready.pop()
            _, cell, pins = self.cells[i]
            out = pins[cell.output]
            load = self.load[out]
            ins = [(p, pins[p]) for p, _ in cell.inputs if isinstance(pins.get(p), int)]
            for e in EDGES:
                best, src, out_slew = 0.0, None, s0
                for p, b in ins:
                    edges = arc_edges(cell, cell.output, p, (slew[b, "rise"], slew[b, "fall"]), load)
                    # A pin without an arc passes its input through with no delay (both edges).
                    for ie, d, tr in (edges[e] if edges else [(x, 0.0, slew[b, x]) for x in EDGES]):
                        if src is None or arrival[b, ie] + d > best:
                            best, src = arrival[b, ie] + d, (b, ie)
                        out_slew = max(out_slew, tr)
                arrival[out, e], slew[out, e] = best, out_slew
                depth[out, e] = (depth[src] if src is not None else 0) + 1
                levels[out, e] = max((levels[b, e2] for _, b in ins for e2 in EDGES), default=0) + 1
                prev[out, e] = (i, src)
            for j in users.pop(out, []):
                waiting[j] -= 1
                if waiting[j] == 0:
                    ready.append(j)
        if any(n for n in waiting.values() if n):
            raise PsumError(f"combinational loop in the mapped netlist of {self.top}")
        # A rising D is checked against rise_constraint, a falling one against fall_constraint.
        ends = [(arrival[pins["D"], e] + setup_time(cell, slew[pins["D"], e], s0, e), (pins["D"], e), "ff")
                for _, cell, pins in self.cells if cell.is_ff and isinstance(pins.get("D"), int) for e in EDGES]
        ends += [(arrival[b, e], (b, e), "port") for d, bits in self.ports.values() if d == "output"
                 for b in bits if isinstance(b, int) for e in EDGES]
        slews = {b: (slew[b, "rise"], slew[b, "fall"]) for b in self.bits if (b, "rise") in slew}
        self._slew = slews
        if not ends:
            return TimingReport(0.0, 0, 0, ()), slews
        report = self._critical_path(ends, arrival, prev, depth, levels)
        return report, slews

    # -- Verilog -------------------------------------------------------------------------------
    def verilog(self, name: str = "psum_gl") -> str:
        """Flat Verilog netlist; net bit ``i`` is the scalar wire ``n<i>``.

        Why scalar wires (not one vector): Icarus wakes every reader of a vector when any of its
        bits changes, which makes a one-vector netlist quadratically slow.
        """
        ports = sorted(self.ports)
        out = [f"module {name}({', '.join(ports)});"]
        for p in ports:
            d, bits = self.ports[p]
            out.append(f"  {d} [{len(bits) - 1}:0] {p};")
        for k in range(0, len(self.bits), 16):
            out.append("  wire " + ", ".join(f"n{b}" for b in self.bits[k:k + 16]) + ";")

        def ref(b):
            return f"n{b}" if isinstance(b, int) else _CONST[b]

        for p in ports:
            d, bits = self.ports[p]
            for k, b in enumerate(bits):
                if d == "input" and isinstance(b, int):
                    out.append(f"  assign n{b} = {p}[{k}];")
                elif d == "output":
                    out.append(f"  assign {p}[{k}] = {ref(b)};")
        for k, (_, cell, pins) in enumerate(self.cells):
            conns = ", ".join(f".{pin}({ref(b)})" for pin, b in sorted(pins.items()))
            out.append(f"  {cell.name} c{k} ({conns});")
        out.append("endmodule")
        return "\n".join(out) + "\n"
