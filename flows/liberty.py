"""A team's own Liberty file as the cell library: NLDM timing with slew propagation, power, area.

``psum synth --liberty FILE.lib`` maps the unit onto the cells of FILE.lib (Yosys ``dfflibmap`` and
``abc -liberty`` read the file directly) and then reads, through the maintained ``liberty-parser``
package (PyPI; a Lark/sympy Liberty reader), what the flow's own timing and power need:

- **area** of every cell (``area``, in the library's area unit, taken as µm²; GE = area / the
  smallest two-input NAND of the library);
- **NLDM timing** (``delay_model : table_lookup``): per arc ``cell_rise`` / ``cell_fall`` and
  ``rise_transition`` / ``fall_transition`` tables over input transition x output load, bilinear
  interpolation inside and linear extrapolation outside the index range (the Liberty reference
  manual's table lookup); flip-flops' ``rising_edge`` clock-to-Q arcs and ``setup_rising``
  constraints (``rise_constraint`` / ``fall_constraint`` over constrained x related transition);
- **power**: ``internal_power`` tables (``rise_power`` / ``fall_power``, energy per output
  transition over input transition x load; the clock pin's own table per clock edge) and
  ``cell_leakage_power`` (or ``leakage_power`` groups, the first value).

Timing model: a static analysis over the mapped netlist in topological order, rise and fall
apart (as STA tools do). Every net has a rising and a falling arrival and slew. An arc
``pin -> out`` maps input edges to output edges by its ``timing_sense`` (``positive_unate``: rise
to rise, fall to fall; ``negative_unate``: fall to rise, rise to fall; ``non_unate``: either input
edge to either output edge); without a ``timing_sense`` the sense is read off the cell's function
(truth table: unate in the pin if raising it never lowers, or never raises, the output). The output
edge's delay comes from ``cell_rise`` (rising output) or ``cell_fall`` (falling) at the slew of the
input edge that causes it, its slew from ``rise_transition`` / ``fall_transition``; each output
edge's arrival is the latest over the arcs, its slew the largest (worst-slew merge, the default
of STA tools). Flip-flops launch both edges of Q from the clock's rising edge (``rising_edge``
arcs); a D that rises is checked against ``rise_constraint``, one that falls against
``fall_constraint``. Primary inputs and the clock are ideal: both edges at t = 0 with the
smallest input-transition index of the library's tables as slew. Loads are the sink pins'
capacitances plus psum45's wire-load estimate (:func:`psum.flows.cells.wire_cap`; a Liberty's own
wire-load tables are not read). An arc without a table for one output edge uses the other edge's.

Energy per output toggle of a cell: ``0.5 * C_load * V**2`` (``nom_voltage``) plus the mean of its
``rise_power`` (at the slew of the input edge that makes the output rise, by the arc's sense) and
``fall_power`` (likewise), averaged over its related pins (the simulation does not say which
input caused the toggle). Flip-flops: the clock pin's internal energy per cycle (rise + fall
tables at the ideal clock slew). Units: ``time_unit`` (ps/ns), ``capacitive_load_unit`` (ff/pf),
``leakage_power_unit`` (pW/nW/uW/mW); internal energy in capacitive unit x V**2 (fF x V**2 = fJ).

Not supported (refused with a one-line error naming the cell): latches, flip-flops other than a
plain rising-edge D flop (the flow legalises every register to one), cells with more than one
output other than a flip-flop's Q/QN, and ``delay_model`` other than ``table_lookup``.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import math
import os
import re
from pathlib import Path

import numpy as np

from psum.errors import PsumError

__all__ = ["MODEL_VERSION", "Table", "StateTables", "Arc", "LibCell", "Library", "read_liberty", "check_path",
           "check_usable", "unateness", "arc_delay", "arc_edges", "setup_time", "internal_energy", "clock_energy",
           "instance_edge_delays"]

#: Version of the Liberty timing and power model; part of every cache key of a Liberty result
#: (4: the `when` states of one arc timed by their worst table and powered by their mean, not by
#: the last group; 3: the ideal input/clock slew converted to ns, which changes every figure of a
#: library whose time_unit is not 1ns; 2: rise and fall timed apart by timing_sense; 1: the larger of rise and
#: fall per arc).
MODEL_VERSION = 4

#: The output edges, in the order of every (rise, fall) pair of this module.
EDGES = ("rise", "fall")

_TIME = {"1ps": 1e-3, "10ps": 1e-2, "100ps": 1e-1, "1ns": 1.0}
_CAP = {"ff": 1.0, "pf": 1e3}
_LEAK = {"1pw": 1e-3, "1nw": 1.0, "1uw": 1e3, "1mw": 1e6}

_SLEW_VARS = ("input_net_transition", "input_transition_time", "constrained_pin_transition")
_LOAD_VARS = ("total_output_net_capacitance",)
_RELATED_VARS = ("related_pin_transition",)


def _text(v) -> str:
    return str(v).strip().strip('"')


@dataclasses.dataclass(frozen=True)
class Table:
    """A Liberty lookup table: ``values[i, j]`` at ``index_1[i]``, ``index_2[j]``.

    ``var_1`` / ``var_2`` name what each index is (``slew``, ``load`` or ``related``); a 1-D table
    has no second index, a scalar one neither.
    """

    var_1: str
    var_2: str
    index_1: tuple
    index_2: tuple
    values: tuple

    def __call__(self, *, slew: float = 0.0, load: float = 0.0, related: float = 0.0) -> float:
        """The table at the given slew (ns), load (fF) and related-pin slew (ns)."""
        args = {"slew": slew, "load": load, "related": related}
        v = np.asarray(self.values, dtype=float)
        if v.ndim == 0 or v.size == 1:
            return float(v.ravel()[0])
        x = args[self.var_1]
        if v.ndim == 1 or not self.index_2:
            return _interp1(self.index_1, v.ravel(), x)
        y = args[self.var_2]
        # Bilinear: interpolate along index_2 on each row, then along index_1.
        rows = np.array([_interp1(self.index_2, row, y) for row in v])
        return _interp1(self.index_1, rows, x)


@dataclasses.dataclass(frozen=True)
class StateTables:
    """The tables of one arc (or one internal-power pair) under several ``when`` states, read as one.

    A real library times and powers a cell's pin per state of its other inputs (``timing`` and
    ``internal_power`` groups with ``when : "!A2"`` ...). psum's timing knows no state, so it takes
    the worst (``how="max"``, the usual choice of a state-blind static timing analysis); its power
    proxy knows no state probabilities, so it takes their ``"mean"`` (equal weights).
    """

    tables: tuple
    how: str

    def __call__(self, **kwargs) -> float:
        values = [t(**kwargs) for t in self.tables]
        return max(values) if self.how == "max" else sum(values) / len(values)


def _states(old, new, how: str):
    """``old`` and ``new`` (a table, a :class:`StateTables` or None) as one :class:`StateTables`."""
    if old is None or new is None:
        return new if old is None else old
    tables = lambda t: t.tables if isinstance(t, StateTables) else (t,)  # noqa: E731
    return StateTables(tables(old) + tables(new), how)


def _interp1(index, values, x) -> float:
    """Linear interpolation, linear extrapolation beyond the ends (Liberty's table lookup)."""
    idx = np.asarray(index, dtype=float)
    vals = np.asarray(values, dtype=float)
    if idx.size == 1:
        return float(vals[0])
    k = int(np.clip(np.searchsorted(idx, x) - 1, 0, idx.size - 2))
    x0, x1 = idx[k], idx[k + 1]
    return float(vals[k] + (vals[k + 1] - vals[k]) * (x - x0) / (x1 - x0))


@dataclasses.dataclass(frozen=True)
class Arc:
    """One timing arc ``related pin -> output pin`` of a cell.

    Attributes
    ----------
    sense : str
        ``"positive_unate"``, ``"negative_unate"`` or ``"non_unate"`` (from ``timing_sense``, else
        from the cell's function; a flip-flop's clock-to-Q arc is ``non_unate``: the clock's rising
        edge launches either edge of Q).
    cell_rise, cell_fall, rise_transition, fall_transition : Table, StateTables or None
        Delay and output slew of a rising / falling output (None when the file has no such table;
        the worst of several ``when`` states' tables: :class:`StateTables`).
    """

    sense: str
    cell_rise: Table | None
    cell_fall: Table | None
    rise_transition: Table | None
    fall_transition: Table | None

    def causes(self, out_edge: str) -> tuple:
        """The input edges that make the output take ``out_edge`` (``"rise"`` or ``"fall"``)."""
        if self.sense == "positive_unate":
            return (out_edge,)
        if self.sense == "negative_unate":
            return ("fall" if out_edge == "rise" else "rise",)
        return EDGES

    def delay(self, out_edge: str, slew: float, load: float) -> tuple[float, float]:
        """``(delay, output slew)`` of an ``out_edge`` output at input slew ``slew`` (ns), ``load`` (fF);
        the other edge's tables when this edge has none, ``(0, 0)`` when the arc has none."""
        d, t = ((self.cell_rise, self.rise_transition) if out_edge == "rise" else
                (self.cell_fall, self.fall_transition))
        d = d or (self.cell_fall if out_edge == "rise" else self.cell_rise)
        t = t or (self.fall_transition if out_edge == "rise" else self.rise_transition)
        return (d(slew=slew, load=load) if d else 0.0), (t(slew=slew, load=load) if t else 0.0)


_BOOLEAN_OPS = {ast.BitAnd: lambda x, y: x & y, ast.BitOr: lambda x, y: x | y, ast.BitXor: lambda x, y: x ^ y}


def _boolean_ast(function: str, shown: str | None = None) -> ast.expr:
    """The parsed Verilog form of a Liberty ``function``: names, 0/1, ``~``, ``&``, ``|``, ``^`` only.

    Why not ``eval``: the text comes from a user's Liberty file; only this closed grammar is
    evaluated (by :func:`_evaluate`), anything else is a one-line error, naming the function as
    ``shown`` (the Liberty text it was translated from) when given.

    Raises
    ------
    PsumError
        The function uses anything else.
    """
    try:
        tree = ast.parse(function, "<liberty function>", mode="eval").body
    except SyntaxError:
        raise PsumError(f"liberty function {shown or function!r} is not a boolean expression psum reads") from None
    for node in ast.walk(tree):
        ok = (isinstance(node, (ast.Name, ast.Load, ast.Invert, *_BOOLEAN_OPS))
              or (isinstance(node, ast.BinOp) and type(node.op) in _BOOLEAN_OPS)
              or (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Invert))
              or (isinstance(node, ast.Constant) and node.value in (0, 1) and type(node.value) is int))
        if not ok:
            raise PsumError(f"liberty function {shown or function!r} is not a boolean expression psum reads "
                            f"(names, 0, 1, !, &, |, ^ and parentheses)")
    return tree


def _evaluate(node: ast.expr, env: dict) -> int:
    """Value of a :func:`_boolean_ast` tree with pin values ``env`` (0/1 ints; ``~`` gives -1/-2, read bit 0)."""
    if isinstance(node, ast.Name):
        if node.id not in env:
            raise PsumError(f"liberty function names {node.id!r}, which is not an input pin of the cell")
        return env[node.id]
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp):
        return ~_evaluate(node.operand, env)
    return _BOOLEAN_OPS[type(node.op)](_evaluate(node.left, env), _evaluate(node.right, env))


def unateness(function: str, pins, pin: str) -> str:
    """The sense of ``pin`` in a combinational Liberty ``function`` (its Verilog form), by truth table.

    ``positive_unate`` when raising ``pin`` never lowers the output, ``negative_unate`` when it never
    raises it, else ``non_unate`` (the Liberty reference manual's definition of ``timing_sense``).
    """
    pins = [p for p in pins if p != pin]
    expr = _boolean_ast(function)
    rises = falls = False
    for k in range(1 << len(pins)):
        env = {p: (k >> j) & 1 for j, p in enumerate(pins)}
        # ~, &, |, ^ on 0/1 Python ints: bit 0 of the result is the Boolean value.
        lo = _evaluate(expr, dict(env, **{pin: 0})) & 1
        hi = _evaluate(expr, dict(env, **{pin: 1})) & 1
        rises |= hi > lo
        falls |= hi < lo
    return "negative_unate" if falls and not rises else "positive_unate" if rises and not falls else "non_unate"


@dataclasses.dataclass(frozen=True)
class LibCell:
    """One cell of a Liberty library, in the shape :class:`psum.flows.cells.Cell` has for the flow.

    Attributes
    ----------
    name : str
    area : float
        Library area unit (µm²).
    inputs : tuple of (str, float)
        Input pins and capacitances (fF).
    output : str
        The output pin (a flip-flop's Q).
    outputs : tuple of str
        Every output pin (``Q`` and ``QN`` of a flip-flop).
    function : str
        Liberty function of ``output`` (a flip-flop: its ``next_state``).
    verilog : str
        Verilog expression of the output (combinational cells).
    is_ff : bool
    clock : str
        A flip-flop's clock pin.
    leakage_nw : float
    arcs : dict
        ``(output pin, input pin) -> Arc``.
    power : dict
        ``(pin, related pin) -> (rise_power, fall_power)`` (each a Table or None): an output's
        energy per rising / falling transition caused by the related input; a flip-flop's clock
        pin (``(CK, CK)``) its energy per clock edge.
    setup : tuple
        A flip-flop's ``(rise_constraint, fall_constraint)`` tables of D against the clock (each
        a Table or None).
    """

    name: str
    area: float
    inputs: tuple
    output: str
    outputs: tuple
    function: str
    verilog: str
    is_ff: bool
    clock: str
    leakage_nw: float
    arcs: dict
    power: dict
    setup: tuple

    def cap(self, pin: str) -> float:
        """Input capacitance of ``pin`` (fF)."""
        return dict(self.inputs)[pin]


def _verilog_of(function: str, cell: str) -> str:
    """A Liberty boolean function as a Verilog expression (``!``, ``&``/``*``, ``|``/``+``, ``^``)."""
    f = function.replace("!", "~").replace("*", "&").replace("+", "|")
    if "'" in f or re.search(r"[A-Za-z0-9_\]]\s+[A-Za-z_(~]", f):
        raise PsumError(f"cell {cell}: function {function!r} uses a form psum does not read (postfix ' or "
                        f"implicit AND); write it with !, &, |, ^")
    return f


@dataclasses.dataclass(frozen=True)
class Library:
    """The cells of a Liberty file and what the flow reads from it.

    Attributes
    ----------
    name : str
        The ``library (name)``.
    path : Path
        The file.
    cells : dict
        Cell name -> :class:`LibCell`.
    vdd : float
        ``nom_voltage``, V.
    nand2_area : float
        Area of the smallest two-input NAND (one GE); psum45's NAND2_X1 if the library has none.
    input_slew : float
        Ideal slew of primary inputs and the clock, ns (the tables' smallest slew index).
    digest : str
        Content hash of the file (enters the synthesis cache key, with :data:`MODEL_VERSION`).
    """

    name: str
    path: Path
    cells: dict
    vdd: float
    nand2_area: float
    input_slew: float
    digest: str

    @property
    def leakage_nw(self) -> dict:
        """Leakage per cell type, nW."""
        return {n: c.leakage_nw for n, c in self.cells.items()}

    def models_text(self, timed: bool = False) -> str:
        """Verilog models of the cells for the gate-level simulations.

        ``timed=False``: zero delay (the power proxy). ``timed=True``: every output behind an
        inertial rise/fall delay ``#(PSUM_TR, PSUM_TF)`` (ns, per-instance parameters; the timed
        glitch simulation of :mod:`psum.flows.power`). Why inertial: a pulse shorter than the
        gate's delay does not pass a real gate either (Verilog continuous-assignment semantics).
        """
        kind = "rise/fall output delays PSUM_TR/PSUM_TF" if timed else "zero delay"
        out = [f"// {self.name}: cell models generated by psum.flows.liberty ({kind}).", "`timescale 1ns/1ps"]
        dly = "#(PSUM_TR, PSUM_TF) " if timed else ""
        for c in self.cells.values():
            pins = [p for p, _ in c.inputs] + list(c.outputs)
            out.append(f"module {c.name}({', '.join(pins)});")
            if timed:
                out.append("  parameter real PSUM_TR = 0.0; parameter real PSUM_TF = 0.0;")
            if c.inputs:
                out.append(f"  input {', '.join(p for p, _ in c.inputs)};")
            if c.is_ff:
                d = _verilog_of(c.function, c.name)
                for o in c.outputs:
                    inv = o != c.output
                    if timed:  # the state updates on the edge; the pin follows after the clock-to-Q delay
                        out.append(f"  output {o}; reg psum_s_{o} = 1'b{int(inv)};")
                        out.append(f"  always @(posedge {c.clock}) psum_s_{o} <= {'~' if inv else ''}({d});")
                        out.append(f"  assign {dly}{o} = psum_s_{o};")
                    else:
                        out.append(f"  output reg {o} = 1'b{int(inv)};")
                        out.append(f"  always @(posedge {c.clock}) {o} <= {'~' if inv else ''}({d});")
            else:
                out.append(f"  output {c.output};")
                out.append(f"  assign {dly}{c.output} = {c.verilog};")
            out.append("endmodule")
        return "\n".join(out) + "\n"


def _unit(value, table: dict, what: str, path) -> float:
    key = _text(value).lower().replace(" ", "")
    if key not in table:
        raise PsumError(f"{path}: {what} {_text(value)!r} is not one of {', '.join(table)}")
    return table[key]


def _number(value, what: str, path, *, low: float | None = None, strict: bool = False) -> float:
    """``value`` (a Liberty attribute) as a finite float, at least ``low`` (above it when ``strict``).

    Why: every figure psum prints is a sum or product of these; a word, NaN, infinity or a negative
    area would otherwise surface as a traceback or as a plausible-looking wrong number.
    """
    try:
        x = float(_text(value))
    except (TypeError, ValueError):
        raise PsumError(f"{path}: {what} {_text(value)!r} is not a number") from None
    if not math.isfinite(x) or (low is not None and (x <= low if strict else x < low)):
        bound = "" if low is None else f" {'above' if strict else 'at least'} {low:g}"
        raise PsumError(f"{path}: {what} is {x:g}; it must be a finite number{bound}")
    return x


def _one_library(path, text: str) -> None:
    """Raise the one-line error for a file of several top-level groups (``library (a) {...} library (b) {...}``),
    which ``parse_liberty`` reports by naming another function of its own."""
    from liberty.parser import parse_multi_liberty

    try:
        groups = parse_multi_liberty(text)
    except Exception:  # not Liberty at all: the caller's message
        return
    if len(groups) != 1:
        names = ", ".join(f"{g.group_name} ({', '.join(map(_text, g.args))})" for g in groups[:3])
        raise PsumError(f"{path}: holds {len(groups)} top-level groups ({names}); psum reads a file of one library")


def check_path(path) -> Path:
    """``path`` as a :class:`Path` when it names a readable Liberty file's place, else one line.

    Raises
    ------
    FileNotFoundError
        Nothing is there.
    PsumError
        A folder, a device, FIFO or socket is there.
    ValueError
        ``path`` is empty.
    TypeError
        ``path`` is not a path.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"liberty must be a Liberty file's path or a psum.flows.liberty.Library, not "
                        f"{type(path).__name__} {path!r}"[:200])
    if not str(path).strip():  # Path("") is the working folder
        raise ValueError("liberty file name is empty")
    path = Path(path)
    if path.is_dir():
        raise PsumError(f"liberty file {path} is a folder, not a Liberty file")
    if path.exists() and not path.is_file():  # /dev/null, a FIFO: "does not exist" was wrong
        raise PsumError(f"liberty file {path} is not a regular file (a device, FIFO or socket)")
    if not path.is_file():
        raise FileNotFoundError(f"liberty file {path} does not exist")
    return path


def read_liberty(path) -> Library:
    """Read ``path`` (a Liberty file) with ``liberty-parser``.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    PsumError
        If it is a folder or not UTF-8 text, does not parse, uses a construct psum does not model, or
        holds a figure psum cannot use: an attribute that is not a finite number (a negative area,
        capacitance or leakage, a non-positive ``nom_voltage``), a table whose template the file
        does not define (or with a variable psum does not read), whose values do not fill its
        indices or whose indices do not increase, a logic cell (or the flip-flop's clock-to-Q and
        setup) without a delay table for an input its function reads, which the timing would count
        as 0 ns, a cell defined twice, a pin group for several pins, or cells the flow cannot map
        logic onto (:func:`check_usable`); one line, naming the cell. Cells Yosys never maps to
        are skipped: latches, flops with reset, multi-output, three-state and ``dont_use`` cells,
        pads.
    """
    from liberty.parser import parse_liberty

    path = check_path(path)
    try:
        text = path.read_text()
    except UnicodeDecodeError as exc:
        raise PsumError(f"{path}: not a Liberty file (not text: byte {exc.object[exc.start]:#04x} at offset "
                        f"{exc.start} is not UTF-8)") from None
    if not text.strip():
        raise PsumError(f"{path}: not a Liberty file (empty)")
    try:
        lib = parse_liberty(text)
    except Exception as exc:  # the parser raises several types; the message names the line
        _one_library(path, text)
        raise PsumError(f"{path}: not a Liberty file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    model = _text(lib.get("delay_model", "table_lookup"))
    if model != "table_lookup":
        raise PsumError(f"{path}: delay_model {model!r} is not supported (only table_lookup, NLDM)")
    t_unit = _unit(lib.get("time_unit", '"1ns"'), _TIME, "time_unit", path)
    cap = lib.get("capacitive_load_unit", [1, "ff"])
    if not isinstance(cap, (list, tuple)) or len(cap) != 2:
        shown = ", ".join(map(_text, cap)) if isinstance(cap, (list, tuple)) else _text(cap)
        raise PsumError(f"{path}: capacitive_load_unit ({shown}) is not (NUMBER, ff|pf)")
    c_unit = (_number(cap[0], "capacitive_load_unit", path, low=0.0, strict=True)
              * _unit(cap[1], _CAP, "capacitive_load_unit", path))
    l_unit = _unit(lib.get("leakage_power_unit", '"1nW"'), _LEAK, "leakage_power_unit", path)
    _unit(lib.get("voltage_unit", '"1V"'), {"1v": 1.0}, "voltage_unit", path)  # nom_voltage and energies in V
    vdd = _number(lib.get("nom_voltage", 1.0), "nom_voltage", path, low=0.0, strict=True)

    def array(g, key: str, where: str) -> np.ndarray:
        try:
            a = np.asarray(g.get_array(key), dtype=float)
        except (TypeError, ValueError, AttributeError):
            raise PsumError(f"{path}: {where}: {key} {_text(g.get(key))!r} is not a list of numbers") from None
        if not np.all(np.isfinite(a)):
            raise PsumError(f"{path}: {where}: {key} holds {a[~np.isfinite(a)].ravel()[0]:g}; every figure must be a "
                            f"finite number")
        return a

    templates, variables = {}, {}
    for g in [*lib.get_groups("lu_table_template"), *lib.get_groups("power_lut_template")]:
        names = []
        for k in ("variable_1", "variable_2"):
            v = _text(g.get(k, ""))
            names.append("slew" if v in _SLEW_VARS else "load" if v in _LOAD_VARS else
                         "related" if v in _RELATED_VARS else "")
            if v and not names[-1]:
                variables[(_text(g.args[0]) if g.args else "", k)] = v
        where = f"{g.group_name} {_text(g.args[0]) if g.args else ''}".rstrip()
        idx = [tuple(array(g, k, where).ravel()) if g.get(k) is not None else () for k in ("index_1", "index_2")]
        templates[_text(g.args[0]) if g.args else ""] = (names, idx)
    slews = [i for names, idx in templates.values() for n, i in zip(names, idx) if n == "slew" and i]
    # in ns, as every table's index (the templates hold the file's time unit)
    input_slew = min(min(i) for i in slews) * t_unit if slews else 0.0

    def table(g, scale: float, where: str) -> Table:
        where = f"{where} {g.group_name}"
        name = _text(g.args[0]) if g.args else ""
        if name and name != "scalar" and name not in templates:
            raise PsumError(f"{path}: {where} names the template {name!r}, which the file does not define")
        names, idx = templates.get(name, (["slew", "load"], [(), ()]))
        own = [tuple(array(g, k, where).ravel()) if g.get(k) is not None else None for k in ("index_1", "index_2")]
        idx = [o if o is not None else i for o, i in zip(own, idx)]
        for k, i in zip(("variable_1", "variable_2"), idx):
            if i and (name, k) in variables:  # ABC failed on it after the synthesis; psum read it as a slew
                known = ", ".join(_SLEW_VARS + _LOAD_VARS + _RELATED_VARS)
                raise PsumError(f"{path}: {where}: its template {name!r} has {k} {variables[(name, k)]!r}, which psum "
                                f"does not read (one of {known})")
        if g.get("values") is None:
            raise PsumError(f"{path}: {where} has no values")
        raw = array(g, "values", where)
        # Why check the shape: the lookup (Table.__call__) reads values[i, j] at index_1[i], index_2[j];
        # a table that does not fill its indices would be read at the wrong points, or past its end.
        shape = tuple(len(i) for i in idx if i)
        fits = (raw.size == 1 and not shape) or (len(shape) == 1 and raw.size == shape[0]) or \
            (len(shape) == 2 and np.atleast_2d(raw).shape == shape)
        if not fits:
            raise PsumError(f"{path}: {where} has {np.atleast_2d(raw).shape[0]} x {np.atleast_2d(raw).shape[1]} "
                            f"values for indices of {' x '.join(map(str, shape)) or 'no'} points")
        for k, i in zip(("index_1", "index_2"), idx):
            if len(i) > 1 and not np.all(np.diff(i) > 0):
                raise PsumError(f"{path}: {where}: {k} ({', '.join(f'{x:g}' for x in i)}) does not increase")
        # Indices to ns and fF; values by `scale`.
        conv = {"slew": t_unit, "related": t_unit, "load": c_unit, "": 1.0}
        i1 = tuple(x * conv[names[0]] for x in idx[0])
        i2 = tuple(x * conv[names[1]] for x in idx[1])
        values = raw * scale
        return Table(names[0] or "slew", names[1] or "load", i1, i2, tuple(map(tuple, np.atleast_2d(values))))

    e_unit = c_unit * 1.0  # internal energy: capacitive unit x V^2 -> fJ with fF
    cells, seen, timed = {}, set(), []
    for cg in lib.get_groups("cell"):
        name = _text(cg.args[0])
        if name in seen:  # a dict keeps the last: the mapped netlist's cell would get the other's figures
            raise PsumError(f"{path}: cell {name} is defined twice")
        seen.add(name)
        if cg.get_groups("latch") or cg.get_groups("statetable"):
            continue  # never mapped by the flow (no latches are inferred); skipped, not refused
        if _text(cg.get("dont_use", "false")).lower() == "true":
            continue  # Yosys' dfflibmap and abc never map to it: not counted as usable, not checked
        ffs = cg.get_groups("ff")
        inputs, outputs, functions, arcs, power, setup = [], [], {}, {}, {}, ()
        clock, tristate, others = "", False, []
        for pg in cg.get_groups("pin"):
            if len(pg.args) != 1:  # Liberty allows pin (A1, A2) { ... }; psum read A1 only, Yosys fails on it
                raise PsumError(f"{path}: cell {name}: pin ({', '.join(map(_text, pg.args))}) declares "
                                f"{len(pg.args)} pins in one group, which the synthesis (Yosys, ABC) does not read; "
                                f"write one pin group per pin")
            pin = _text(pg.args[0])
            d = _text(pg.get("direction", ""))
            if d == "input":
                inputs.append((pin, _number(pg.get("capacitance", 0.0), f"cell {name}: pin {pin}: capacitance", path,
                                            low=0.0) * c_unit))
                if _text(pg.get("clock", "false")) == "true":
                    clock = pin
            elif d == "output":
                outputs.append(pin)
                tristate = tristate or pg.get("three_state") is not None
                if pg.get("function") is not None:
                    functions[pin] = _text(pg["function"])
            else:  # inout (pads), internal
                others.append(pin)
            for tg in pg.get_groups("timing"):
                rel = _text(tg.get("related_pin", ""))
                kind = _text(tg.get("timing_type", "combinational"))
                if kind == "setup_rising":
                    setup = tuple(table(tg.get_group(k), t_unit, f"cell {name}: pin {pin}") if tg.get_groups(k)
                                  else None for k in ("rise_constraint", "fall_constraint"))
                elif kind in ("combinational", "combinational_rise", "combinational_fall", "rising_edge"):
                    sense = _text(tg.get("timing_sense", ""))
                    if kind == "rising_edge":
                        sense = "non_unate"
                    elif sense not in ("positive_unate", "negative_unate", "non_unate"):
                        sense = ""  # read off the function once every pin is known (below)
                    for r in rel.split():  # related_pin may name several pins
                        arc = Arc(sense, *(table(tg.get_group(k), t_unit, f"cell {name}: pin {pin}")
                                           if tg.get_groups(k) else None
                                           for k in ("cell_rise", "cell_fall", "rise_transition", "fall_transition")))
                        old = arcs.get((pin, r))
                        if old is not None:
                            # combinational_rise + combinational_fall: one arc with both edges' tables;
                            # groups per `when` state: the worst of their tables (StateTables)
                            tables = ("cell_rise", "cell_fall", "rise_transition", "fall_transition")
                            arc = Arc(arc.sense or old.sense,
                                      *(_states(getattr(old, k), getattr(arc, k), "max") for k in tables))
                        arcs[(pin, r)] = arc
            for ig in pg.get_groups("internal_power"):
                rel = _text(ig.get("related_pin", pin))
                for r in rel.split():
                    new = tuple(table(ig.get_group(k), e_unit, f"cell {name}: pin {pin}")
                                if ig.get_groups(k) else None for k in ("rise_power", "fall_power"))
                    old = power.get((pin, r), (None, None))  # groups per `when` state: their mean
                    power[(pin, r)] = tuple(_states(o, n, "mean") for o, n in zip(old, new))
        leak = cg.get("cell_leakage_power")
        if leak is None and cg.get_groups("leakage_power"):
            leak = cg.get_groups("leakage_power")[0].get("value", 0.0)
        leak = _number(leak or 0.0, f"cell {name}: leakage", path, low=0.0) * l_unit
        area = _number(cg.get("area", 0.0), f"cell {name}: area", path, low=0.0)
        if ffs:
            ff = ffs[0]
            nxt, clk = _text(ff.get("next_state", "")), _text(ff.get("clocked_on", ""))
            iq, iqn = (_text(a) for a in ff.args[:2])
            q = [o for o in outputs if functions.get(o) == iq]
            if ff.get("clear") is not None or ff.get("preset") is not None or not re.fullmatch(r"\w+", nxt) \
                    or not re.fullmatch(r"\w+", clk) or not q:
                continue  # a flop with reset/set/enable or an inverted clock: the flow never maps to it
            pins = [p for p, _ in inputs]
            for attr, pin in (("next_state", nxt), ("clocked_on", clk)):
                if pin not in pins:  # Yosys failed after the synthesis, or the clock arc was "missing"
                    raise PsumError(f"{path}: cell {name}: ff {attr} {pin!r} names no input pin of the cell "
                                    f"(inputs: {', '.join(pins) or 'none'})")
            if not any(setup):  # the timing would add no setup time: the path came out shorter
                raise PsumError(f"{path}: cell {name} has no setup_rising rise_constraint or fall_constraint table "
                                f"on {nxt}; psum times the register's setup from the file's NLDM tables")
            timed.append((name, arcs, q[0], [clk]))
            cells[name] = LibCell(name, area, tuple(inputs), q[0],
                                  tuple([q[0]] + [o for o in outputs if functions.get(o) == iqn]), nxt, "",
                                  True, clk, leak, arcs, power, setup)
            continue
        if len(outputs) != 1 or outputs[0] not in functions or tristate:
            continue  # multi-output, function-less or three-state cells (adders, fillers, TBUF): ABC maps none
        out = outputs[0]
        try:
            verilog = _verilog_of(functions[out], name)
            used = {n.id for n in ast.walk(_boolean_ast(verilog, shown=functions[out])) if isinstance(n, ast.Name)}
        except PsumError as exc:  # one line naming the file and the cell, with the function as written
            where = "" if str(exc).startswith("cell ") else f"cell {name}: "
            raise PsumError(f"{path}: {where}{exc}") from None
        if used & set(others):
            continue  # a function of an inout or internal pin (a pad): ABC maps no such cell
        _check_function(path, name, used, functions[out], [p for p, _ in inputs])
        timed.append((name, arcs, out, [p for p, _ in inputs if p in used]))  # the pins the function reads
        for (o, r), arc in list(arcs.items()):
            if not arc.sense:
                arcs[(o, r)] = dataclasses.replace(arc, sense=unateness(verilog, [p for p, _ in inputs], r))
        cells[name] = LibCell(name, area, tuple(inputs), out, (out,), functions[out],
                              verilog, False, "", leak, arcs, power, ())
    if not any(c.is_ff for c in cells.values()):
        raise PsumError(f"{path}: no plain rising-edge D flip-flop (ff with next_state and clocked_on) to map "
                        f"the registers to")
    for args in timed:
        _check_timed(path, *args)
    nands = [c for c in cells.values() if not c.is_ff and len(c.inputs) == 2
             and re.fullmatch(r"!\(\s*(\w+)\s*[&*]\s*(\w+)\s*\)", c.function)]
    zero = [c.name for c in nands if c.area == 0]
    if zero:  # one GE is the smallest NAND2's area: every GE figure would divide by zero
        raise PsumError(f"{path}: cell {zero[0]} is a two-input NAND of area 0; psum's gate equivalent is the "
                        f"smallest NAND2's area")
    nands = [c.area for c in nands]
    from .cells import NAND2_AREA

    library = Library(name=_text(lib.args[0]) if lib.args else path.stem, path=path, cells=cells, vdd=vdd,
                      nand2_area=min(nands) if nands else NAND2_AREA, input_slew=input_slew,
                      digest=hashlib.sha256(text.encode()).hexdigest()[:16])
    check_usable(library)  # before any synthesis, not from ABC after it
    return library


def _check_function(path, cell: str, names: set, function: str, pins) -> None:
    """Refuse a logic cell's ``function`` whose pin ``names`` include one the cell does not have (one line)."""
    unknown = sorted(names - set(pins))
    if unknown:
        raise PsumError(f"{path}: cell {cell}: function {function!r} names {unknown[0]}, which is not an input pin "
                        f"of the cell (inputs: {', '.join(pins) or 'none'})")


def _check_timed(path, cell: str, arcs: dict, out: str, pins) -> None:
    """Refuse a cell the flow may map to that has no delay table from one of ``pins`` to ``out``.

    Why: ABC maps onto such a cell (with the delays it guesses), and the static timing would count
    the arc as 0 ns, so the critical path came out shorter than the file's cells allow.
    """
    for pin in pins:
        arc = arcs.get((out, pin))
        if arc is None or (arc.cell_rise is None and arc.cell_fall is None):
            raise PsumError(f"{path}: cell {cell} has no cell_rise or cell_fall table from pin {pin} to {out}; "
                            f"psum times every arc from the file's NLDM tables")


def check_usable(lib) -> None:
    """Raise when ``lib`` (a :class:`psum.flows.liberty.Library`) lacks the cells the flow maps to.

    The flow (:mod:`psum.flows.synth`) needs a buffer and an inverter (ABC stops without either:
    a library of NAND and NOR without an inverter fails in ABC as one without a buffer does) and
    a cell of two or more inputs; its flip-flop is checked by :func:`read_liberty`, which runs this
    check too. Cells the reader skipped (multi-output cells, latches, flops with reset) do not
    count.

    Raises
    ------
    psum.errors.PsumError
        One line naming the file, what is missing and the usable logic cells found.
    """
    logic = [c for c in lib.cells.values() if not c.is_ff and c.verilog]
    pins = {c.name: [p for p, _ in c.inputs] for c in logic}
    senses = {c.name: {unateness(c.verilog, pins[c.name], p) for p in pins[c.name]} for c in logic}
    missing = []
    if not any(len(pins[c.name]) == 1 and senses[c.name] == {"positive_unate"} for c in logic):
        missing.append("a buffer")
    if not any(len(pins[c.name]) == 1 and senses[c.name] == {"negative_unate"} for c in logic):
        missing.append("an inverter")
    if not any(len(pins[c.name]) >= 2 for c in logic):
        missing.append("a cell of two or more inputs")
    if missing:
        found = ", ".join(sorted(c.name for c in logic)) or "none"
        raise PsumError(f"{lib.path}: no usable logic cells for synthesis (missing {' and '.join(missing)}; "
                        f"usable logic cells: {found})")


# -- the figures the netlist asks for --------------------------------------------------------
def arc_delay(cell: LibCell, out: str, pin: str, slew: float, load: float) -> tuple[float, float] | None:
    """``(delay, output slew)`` of the arc ``pin -> out``, the larger of rise and fall (a bound), or None.

    The static timing uses :func:`arc_edges` (rise and fall apart); this worst case is for readers
    who want one figure per arc.
    """
    arc = cell.arcs.get((out, pin))
    if arc is None:
        return None
    figures = [arc.delay(e, slew, load) for e in EDGES]
    return max(f[0] for f in figures), max(f[1] for f in figures)


def arc_edges(cell: LibCell, out: str, pin: str, slews: tuple, load: float) -> dict | None:
    """Rise and fall of ``out`` through the arc from ``pin``, or None when the cell has no such arc.

    Parameters
    ----------
    slews : (float, float)
        The input's rising and falling slew, ns.
    load : float
        Output load, fF.

    Returns
    -------
    dict
        ``{"rise": [(input edge, delay, output slew), ...], "fall": [...]}``: one entry per input
        edge that causes the output edge (one for a unate arc, two for a non-unate one).
    """
    arc = cell.arcs.get((out, pin))
    if arc is None:
        return None
    slew = dict(zip(EDGES, slews))
    return {e: [(i, *arc.delay(e, slew[i], load)) for i in arc.causes(e)] for e in EDGES}


def setup_time(cell: LibCell, d_slew: float, clk_slew: float, edge: str | None = None) -> float:
    """Setup time of a flip-flop's D, ns: ``rise_constraint`` for a rising D (``edge="rise"``),
    ``fall_constraint`` for a falling one, the larger of the two when ``edge`` is None."""
    tables = dict(zip(EDGES, cell.setup))
    if edge is not None and tables.get(edge) is not None:
        return tables[edge](slew=d_slew, related=clk_slew)
    return max((t(slew=d_slew, related=clk_slew) for t in cell.setup if t is not None), default=0.0)


def internal_energy(cell: LibCell, slews: dict, load: float) -> float:
    """Internal energy per output toggle (fJ): the mean of ``rise_power`` and ``fall_power``, each at
    the slew of the input edge that causes that output edge (:class:`Arc` sense; the larger slew for a
    non-unate arc), averaged over the related pins.

    Parameters
    ----------
    slews : dict
        Input pin -> ``(rising slew, falling slew)`` in ns (a single number: both edges).
    load : float
        Output load, fF.
    """
    figures = []
    for (owner, rel), tables in cell.power.items():
        if owner not in cell.outputs or not any(tables):
            continue
        s = slews.get(rel, 0.0)
        s = dict(zip(EDGES, s if isinstance(s, (tuple, list)) else (s, s)))
        arc = cell.arcs.get((owner, rel))
        parts = []
        for e, t in zip(EDGES, tables):
            if t is None:
                continue
            causes = arc.causes(e) if arc is not None else EDGES
            parts.append(t(slew=max(s[i] for i in causes), load=load))
        figures.append(sum(parts) / len(parts))
    return sum(figures) / len(figures) if figures else 0.0


def clock_energy(cell: LibCell, clk_slew: float) -> float:
    """A flip-flop's internal energy per clock cycle with steady data (both edges), fJ."""
    # Why only tables on the clock pin itself: an internal_power of Q related to CK is the
    # energy of a Q toggle, counted with the output's toggles.
    tables = [t for (owner, _), ts in cell.power.items() if owner == cell.clock for t in ts if t is not None]
    return sum(t(slew=clk_slew, load=0.0) for t in tables)


def instance_edge_delays(cell: LibCell, pins: dict, slews: dict, load: float, clk_slew: float) -> tuple[float, float]:
    """One instance's output delay for a rising and for a falling output, ns (the timed simulation's
    ``#(rise, fall)``): the largest over its arcs of the edge's delay at the slews the static timing
    computed for the input edges that cause it.

    Parameters
    ----------
    pins : dict
        Pin -> net bit of the instance.
    slews : dict
        Net bit -> ``(rising slew, falling slew)`` (ns); bits absent: ``clk_slew``.
    load : float
        Output load, fF.
    clk_slew : float
        Ideal slew of inputs and the clock, ns.
    """
    worst = {"rise": 0.0, "fall": 0.0}
    related = [cell.clock] if cell.is_ff else [p for p, _ in cell.inputs]
    for p in related:
        s = slews.get(pins.get(p), (clk_slew, clk_slew)) if not cell.is_ff else (clk_slew, clk_slew)
        edges = arc_edges(cell, cell.output, p, s, load)
        for e, options in (edges or {}).items():
            worst[e] = max([worst[e], *(d for _, d, _ in options)])
    return worst["rise"], worst["fall"]
