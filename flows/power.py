"""Power proxy: switching activity of the gate-level netlist on real operand streams → fJ per MAC.

The model
---------
1. **Activity.** The mapped netlist (:meth:`psum.flows.netlist.Netlist.verilog` with the cell models
   of ``psum45_cells.v``) is simulated with Icarus (``iverilog``/``vvp``) on operand streams of a
   real layer: by default :func:`psum.hw.verify.streams.conv_streams_from_digits` (3x3 convolutions over
   scikit-learn's bundled 8x8 handwritten digits, activations and weights quantised with
   ``spec.a.encode`` / ``spec.b.encode``, a bias loaded into the accumulator before each output's
   9 products). Callers can pass recorded streams instead (``streams=``). After every clock edge,
   once the logic has settled, the testbench writes every net of the design in one line; a net
   toggles in a cycle when its settled value differs from the previous cycle's.
2. **Energy per cycle** (fJ), with ``Vdd = 1.1 V`` and figures from :mod:`psum.flows.cells`::

       E = sum over nets  toggles(net) * (C_load(net) * Vdd**2 / 2 + E_int(driver cell))
         + N_ff * E_clk_int(DFF_X1) + C_clock * Vdd**2

   ``C_load`` = sink pin capacitances + the library's wire-load estimate; ``E_int`` = the driving
   cell's internal energy per output transition; the clock net (every CK pin plus its wire) is
   charged and discharged once per cycle, and every flip-flop spends its internal clock energy
   whether or not its data changes. Primary-input nets count their load (the unit's input
   capacitance) but no driver energy.
3. **Figures.** *energy per MAC* = energy of the active phase (the bias loads included) / number
   of products; *active* and *idle* energy per cycle; *idle fraction* = idle / active per cycle,
   where idle = ``en=0``, ``load=0`` and operands held still (after two settling cycles), i.e. what
   the unit costs per cycle when it does nothing: its clock (no clock gating is modelled).

Limits (read the figures as a proxy for comparing formats, not as a sign-off power number)
-----------------------------------------------------------------------------------------------
- Zero-delay activity: glitches are not counted. Glitching adds a large share in array
  multipliers and adders (often 20-50 %), so absolute energies are low, and designs with deeper
  carry chains are flattered more than shallow ones.
- X1 cells only, no buffering or sizing, wire capacitance from a statistical wire-load model,
  no leakage (a few nW per cell at 45 nm: negligible per MAC at GHz rates, not at low activity),
  no clock tree beyond one net, internal energies accurate to about ±30 % (see
  :mod:`psum.flows.cells`).
- The operands come from one small layer; activity depends on the data (sparsity, magnitudes).
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import numpy as np

from psum._util import check_int, dies_with_me, find_tool
from psum.hw.verify import ICARUS_HINT
from psum.hw.unit import lanes
from psum.hw.verify.stimulus import concat, held_cycles, stream_cycles
from psum.errors import PsumError

from .cells import MODELS_PATH

__all__ = ["PowerResult", "build_stimulus", "simulate_nets", "estimate_power", "GlitchResult", "instance_delays",
           "simulate_glitches", "estimate_glitch", "GLITCH_MAX_OUTPUTS", "POWER_MAX_OUTPUTS"]

# The most output elements the timed glitch simulation takes (9 cycles each for a one-lane unit).
# Why a bound: the timed Icarus run costs about 1 us per net and cycle on psum's development
# machine (an fp8 unit, 770 nets: 14.6 s for 2048 outputs; an fp16 x fp16 -> fp32 unit, 2403
# nets: 28.7 s for 1024 outputs), and it writes every net's settled value per cycle (a text file
# and a bool array of cycles x nets bytes). 4096 outputs (about 37,000 cycles) is a minute or two
# for such units and tens of MB; --outputs 100000 would run for an hour and need GBs of memory.
GLITCH_MAX_OUTPUTS = 4096

# Why a bound on the zero-delay proxy too: it writes one line per cycle and net bit (9 cycles per
# output of the digits conv) and reads them back as a bool array; the e4m4 unit (fp8 operands) at
# 4096 outputs takes about 40 s in all and 0.26 GB at its peak (0.37 GB before _row_energy), so
# 65536 outputs (the digits conv has 64,692 distinct ones) is minutes and GBs, and --outputs 1000000
# built stimulus for 4 minutes after Yosys, then ran into Icarus' timeout.
POWER_MAX_OUTPUTS = 65536

# Cycle phases of the stimulus.
WARM, ACTIVE, SETTLE, IDLE = 0, 1, 2, 3


@dataclasses.dataclass(frozen=True)
class PowerResult:
    """Switching-activity power proxy of one netlist.

    Attributes
    ----------
    energy_per_mac_fj : float
        Active-phase energy (bias loads included) divided by the number of products.
    active_fj_per_cycle, idle_fj_per_cycle : float
        Mean energy of an active cycle and of an idle cycle (``en=0``, inputs still).
    idle_fraction : float
        ``idle_fj_per_cycle / active_fj_per_cycle``.
    macs, active_cycles, idle_cycles : int
        Products, active cycles (products + bias loads) and measured idle cycles.
    breakdown : dict
        Active energy per cycle by part: ``clock``, ``registers`` (flip-flop outputs), ``logic``
        (combinational outputs), ``inputs`` (primary-input nets).
    toggle_rate : float
        Mean toggles per net per active cycle (clock excluded).
    stream : str
        Where the operands came from.
    groups : dict
        Only with ``group_of``: energy per MAC (fJ) by group of the driving cell (the clock and
        the flip-flops' clock energy in ``"register"``, primary-input nets in ``"inputs"``); the
        values add up to ``energy_per_mac_fj``.
    """

    energy_per_mac_fj: float
    active_fj_per_cycle: float
    idle_fj_per_cycle: float
    idle_fraction: float
    macs: int
    active_cycles: int
    idle_cycles: int
    breakdown: dict
    toggle_rate: float
    stream: str
    groups: dict = dataclasses.field(default_factory=dict)


def build_stimulus(spec, streams, *, idle_cycles: int = 32, seed: int = 0) -> dict:
    """Per-cycle values of every input port, and the phase of each cycle.

    The columns are those of the RTL check (:mod:`psum.hw.verify.stimulus`, named after the unit's
    ports); this adds only the ``phase`` column. Two reset cycles (``WARM``), then per stream one
    ``load`` of its ``init`` code followed by one ``en`` cycle per product (``ACTIVE``, inputs a
    cycle does not use held at their last value), then two ``SETTLE`` cycles and ``idle_cycles``
    ``IDLE`` cycles with ``en=0`` and every input held. Stochastic-rounding units get fixed-seed
    random bits on ``rnd``.

    Returns
    -------
    dict
        Port name -> ``uint64`` array (one entry per cycle) and ``"phase"``.
    """
    warm = held_cycles(spec, 2)
    warm["rst"][:] = 1
    active = stream_cycles(spec, streams, hold=True)
    rest = held_cycles(spec, 2 + idle_cycles, after=active if len(active["rst"]) else warm)
    stim = concat(spec, [warm, active, rest])
    stim["phase"] = np.repeat(np.array([WARM, ACTIVE, SETTLE, IDLE], dtype=np.uint64),
                              [2, len(active["rst"]), 2, idle_cycles])
    if spec.sr_bits:
        n = len(stim["phase"])
        rng = np.random.default_rng(seed)
        rnd = rng.integers(0, 1 << spec.sr_bits, size=n, dtype=np.uint64)
        # Why hold rnd when not computing: a real generator would be stalled with the unit.
        is_active = stim["phase"] == ACTIVE
        held = np.maximum.accumulate(np.where(is_active, np.arange(n), 0))
        stim["rnd"] = np.where(stim["phase"] == WARM, np.uint64(0), rnd[held])
    return stim


def _input_memories(netlist, stim: dict, workdir: Path):
    """The gate-level testbench's input side: one ``$readmemh`` file per input port (zeros where
    ``stim`` has none), with the Verilog lines that declare, load and apply them per cycle ``i``.

    Returns ``(inputs, decl, load, apply)``: the input port names (``clk`` excluded) and the lines.
    """
    n = len(stim["phase"])
    inputs = [p for p, (d, _) in sorted(netlist.ports.items()) if d == "input" and p != "clk"]
    decl, load, apply = [], [], []
    for p in inputs:
        width = len(netlist.ports[p][1])
        values = stim.get(p)
        if values is None:
            values = np.zeros(n, dtype=np.uint64)
        digits = (width + 3) // 4
        (workdir / f"{p}.hex").write_text("".join(f"{int(v):0{digits}x}\n" for v in values))
        decl.append(f"  reg [{width - 1}:0] {p}; reg [{width - 1}:0] m_{p} [0:{n - 1}];")
        load.append(f'    $readmemh("{p}.hex", m_{p});')
        apply.append(f"      {p} = m_{p}[i];")
    return inputs, decl, load, apply


#: Seconds an Icarus step of the power proxy or the glitch simulation may run.
SIM_TIMEOUT_S = 1800


def _run(cmd, workdir, what: str):
    """``cmd`` in ``workdir`` (no orphaned vvp if psum is killed); its time-out is one line, not
    subprocess's ``TimeoutExpired`` traceback."""
    try:
        return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=SIM_TIMEOUT_S,
                              preexec_fn=dies_with_me())
    except subprocess.TimeoutExpired:
        raise PsumError(f"{what} timed out after {SIM_TIMEOUT_S} s ({Path(cmd[0]).name}); "
                        f"give fewer outputs") from None


def simulate_nets(netlist, stim: dict, workdir) -> np.ndarray:
    """Simulate ``netlist`` on ``stim`` with Icarus; settled value of every net after each cycle.

    Returns
    -------
    numpy.ndarray
        ``bool`` array ``(cycles, nets)``; column ``j`` is net bit ``netlist.bits[j]``.

    Raises
    ------
    PsumError
        Icarus (``iverilog``/``vvp``) is missing, or the simulation fails.
    """
    # Look the tools up before writing anything: a missing Icarus is a one-line error.
    iverilog, vvp = find_tool("iverilog", ICARUS_HINT), find_tool("vvp", ICARUS_HINT)
    workdir = Path(workdir)
    n = len(stim["phase"])
    inputs, decl, load, apply = _input_memories(netlist, stim, workdir)
    # Why sample 4 ns after the edge: zero-delay logic has settled; one line of 0/1 per cycle,
    # one character per net bit in the order of netlist.bits.
    sample = []
    for k in range(0, len(netlist.bits), 64):
        chunk = netlist.bits[k:k + 64]
        lead = "      #4 " if k == 0 else "      "
        sample.append(f'{lead}$fwrite(f, "{"%b" * len(chunk)}", {", ".join(f"dut.n{b}" for b in chunk)});')
    sample.append('      $fwrite(f, "\\n");')
    conns = ", ".join(f".{p}({p})" for p in sorted(netlist.ports) if netlist.ports[p][0] == "input")
    tb = "\n".join([
        "`timescale 1ns/1ps",
        "module tb;",
        "  reg clk = 0;",
        *decl,
        f"  psum_gl dut({conns});",
        "  integer i, f;",
        "  initial begin",
        *load,
        '    f = $fopen("nets.txt", "w");',
        f"    for (i = 0; i < {n}; i = i + 1) begin",
        *apply,
        "      #5 clk = 1;",
        *sample,
        "      #1 clk = 0;",
        "    end",
        "    $fclose(f);",
        "    $finish;",
        "  end",
        "endmodule",
    ]) + "\n"
    (workdir / "tb.v").write_text(tb)
    (workdir / "gl.v").write_text(netlist.verilog("psum_gl"))
    models = str(MODELS_PATH)
    if netlist.models_text() is not None:  # a Liberty library's cells
        (workdir / "cells.v").write_text(netlist.models_text())
        models = "cells.v"
    for cmd in ([iverilog, "-g2005", "-o", "sim.vvp", "tb.v", "gl.v", models], [vvp, "-n", "sim.vvp"]):
        proc = _run(cmd, workdir, "gate-level simulation")
        if proc.returncode != 0:
            last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise PsumError(f"gate-level simulation failed ({Path(cmd[0]).name}): {last[0]}")
    # Why np.fromfile and not a split into lines: one copy of the file instead of three (a line of
    # width characters and "\n" per cycle; --outputs 65536 of an fp32 unit is GBs).
    raw = np.fromfile(workdir / "nets.txt", dtype=np.uint8)
    width = len(netlist.bits)
    if raw.size != n * (width + 1) or not (raw[width::width + 1] == ord("\n")).all():
        raise PsumError(f"gate-level simulation wrote {raw.size:,} bytes, expected {n} cycles of {width} nets")
    # Why == "1": x and z (none in a mapped, reset design) count as 0.
    return raw.reshape(n, width + 1)[:, :width] == ord("1")


def _row_energy(toggles: np.ndarray, e: np.ndarray, rows: int = 4096) -> np.ndarray:
    """``toggles @ e``: fJ of each cycle (row) of a bool ``(cycles, nets)`` array, block by block.

    Why blocks: the bool array cast to float64 whole takes 8 bytes per net and cycle.
    """
    out = np.empty(len(toggles))
    for k in range(0, len(toggles), rows):
        out[k:k + rows] = toggles[k:k + rows].astype(np.float64) @ e
    return out


def _energy_per_toggle(netlist) -> tuple[np.ndarray, dict]:
    """fJ per toggle of every net (column order of :func:`simulate_nets`), and the parts' masks."""
    width = len(netlist.bits)
    e = np.zeros(width)
    part = {k: np.zeros(width, dtype=bool) for k in ("registers", "logic", "inputs")}
    clock = netlist.clock_bits
    for j, b in enumerate(netlist.bits):
        if b in clock:
            continue  # the clock is accounted per cycle
        e[j] = 0.5 * netlist.load[b] * netlist.vdd ** 2
        i = netlist.driver.get(b)
        if i is None:
            part["inputs"][j] = True
        else:
            cell = netlist.cells[i][1]
            e[j] += netlist.internal_energy(i)
            part["registers" if cell.is_ff else "logic"][j] = True
    return e, part


def _merge_streams(streams, length: int) -> list:
    """Consecutive streams joined into streams of at least ``length`` products (the first's init)."""
    out, acc_a, acc_b, init = [], [], [], None
    for a, b, i in streams:
        init = i if init is None else init
        acc_a.append(np.asarray(a, np.uint64))
        acc_b.append(np.asarray(b, np.uint64))
        if sum(x.size for x in acc_a) >= length:
            out.append((np.concatenate(acc_a), np.concatenate(acc_b), init))
            acc_a, acc_b, init = [], [], None
    if acc_a:
        out.append((np.concatenate(acc_a), np.concatenate(acc_b), init))
    return out


def estimate_power(netlist, spec, *, workdir, n_outputs: int = 64, seed: int = 0, streams=None,
                   idle_cycles: int = 32, group_of=None) -> PowerResult:
    """Energy per MAC and idle fraction of ``netlist`` (a unit implementing ``spec``).

    Parameters
    ----------
    netlist : psum.flows.netlist.Netlist
    spec : MacSpec
    workdir : path-like
        Scratch directory for the testbench and the simulation.
    n_outputs : int
        Output elements of the default digits convolution (9 products each).
    seed : int
        Seed of the default stream and of stochastic-rounding bits.
    streams : list of (a_codes, b_codes, init_code), optional
        Operand streams to use instead of the default (e.g. recorded from a network layer).
    idle_cycles : int
        Idle cycles measured after the active phase.
    group_of : callable, optional
        ``group_of(instance_name, cell) -> str``: splits the energy per MAC by the group of each
        net's driving cell (``PowerResult.groups``; the breakdown's datapath stages).

    Raises
    ------
    ValueError
        If ``n_outputs`` or ``idle_cycles`` is not a positive integer.
    PsumError
        If Icarus is missing or the simulation fails.
    """
    check_int("n_outputs", n_outputs, 1, POWER_MAX_OUTPUTS)
    check_int("idle_cycles", idle_cycles, 1)
    if streams is None:
        from psum.hw.verify.streams import conv_streams_from_digits

        streams = conv_streams_from_digits(spec, n_outputs, seed)
        source = f"digits {'linear 64 (blocks)' if spec.blocked else 'conv3x3'}, {n_outputs} outputs, seed {seed}"
        if lanes(spec) > 1 and not spec.blocked:  # block streams are whole blocks already
            # Why merge: a 9-product stream would fill 9 of N lanes for one cycle; consecutive
            # outputs' operands form dot products of at least P products (one promotion each),
            # the length a multi-term unit is built for.
            # (tree<N> has no P: dot products of at least N products.)
            length = spec.order.p or lanes(spec)
            streams = _merge_streams(streams, length)
            source += f", merged into {len(streams)} dot products of >= {length} products"
    else:
        source = f"{len(streams)} given streams"
    stim = build_stimulus(spec, streams, idle_cycles=idle_cycles, seed=seed)
    nets = simulate_nets(netlist, stim, workdir)
    toggles = nets[1:] ^ nets[:-1]  # row t-1: changes during cycle t
    phase = stim["phase"][1:]
    e_tog, part = _energy_per_toggle(netlist)
    clock_bits = netlist.clock_bits
    e_clock = (sum(netlist.clock_energy(i) for i, (_, cell, _) in enumerate(netlist.cells) if cell.is_ff)
               + sum(netlist.load[b] for b in clock_bits) * netlist.vdd ** 2)
    active, idle = phase == ACTIVE, phase == IDLE
    t_act = toggles[active]
    per_cycle = _row_energy(toggles, e_tog) + e_clock
    act_fj = float(per_cycle[active].mean())
    idle_fj = float(per_cycle[idle].mean())
    # Products, not en cycles: a multi-lane unit takes N per cycle (zero padding not counted).
    macs = sum(int(np.asarray(a).size) for a, _, _ in streams)
    breakdown = {"clock": e_clock}
    for k, mask in part.items():
        breakdown[k] = float(_row_energy(t_act[:, mask], e_tog[mask]).mean()) if mask.any() else 0.0
    groups = {}
    if group_of is not None:
        # Why per MAC: the groups split energy_per_mac_fj, the figure a reader compares.
        active_sum = toggles[active].sum(axis=0).astype(np.float64) * e_tog
        n_active = int(active.sum())
        groups["register"] = e_clock * n_active
        for j, b in enumerate(netlist.bits):
            if not active_sum[j]:
                continue
            i = netlist.driver.get(b)
            g = "inputs" if i is None else group_of(netlist.cells[i][0], netlist.cells[i][1])
            groups[g] = groups.get(g, 0.0) + float(active_sum[j])
        groups = {g: round(v / max(macs, 1), 4) for g, v in groups.items()}
    data = np.array([b not in clock_bits for b in netlist.bits])
    rate = float(t_act[:, data].mean()) if data.any() else 0.0
    return PowerResult(
        energy_per_mac_fj=float(per_cycle[active].sum()) / max(macs, 1),
        active_fj_per_cycle=act_fj,
        idle_fj_per_cycle=idle_fj,
        idle_fraction=idle_fj / act_fj if act_fj else 0.0,
        macs=macs,
        active_cycles=int(active.sum()),
        idle_cycles=int(idle.sum()),
        breakdown={k: round(v, 4) for k, v in breakdown.items()},
        toggle_rate=rate,
        stream=source,
        groups=groups,
    )


# ---------------------------------------------------------------------------------------------
# Glitches: the same stimulus in a timed gate simulation (issue 12 item 5)
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class GlitchResult:
    """Zero-delay against timed switching activity of one netlist on one stimulus.

    Attributes
    ----------
    zero_delay_fj_per_mac : float
        Energy per MAC from the settled values once per cycle (:func:`estimate_power`'s figure).
    timed_fj_per_mac : float
        Energy per MAC counting every transition of every net in a simulation with cell delays
        (glitches included).
    glitch_share : float
        ``(timed - zero_delay) / timed`` of the data nets' energy (the clock excluded: it toggles
        the same in both): the part of the switching energy spent on glitches.
    toggles_zero_delay, toggles_timed : int
        Net transitions in the active cycles (clock nets excluded).
    macs : int
        Products in the active cycles.
    max_cell_delay_ns, clock_ns : float
        The largest instance delay, and the clock period of the timed simulation (longer than the
        critical path, so every cycle settles before the next edge).
    """

    zero_delay_fj_per_mac: float
    timed_fj_per_mac: float
    glitch_share: float
    toggles_zero_delay: int
    toggles_timed: int
    macs: int
    max_cell_delay_ns: float
    clock_ns: float


def instance_delays(netlist) -> list:
    """Output delay (ns) of every cell instance for a rising and a falling output: ``[(rise, fall)]``.

    psum45: ``d0 + k * C_load`` of the output for both edges (the linear model of
    :mod:`psum.flows.cells`, the static timing's figures). A Liberty netlist: per edge, the largest
    over the instance's arcs of the NLDM delay (``cell_rise`` / ``cell_fall``) at its load and at
    the slew the static timing computed for the input edge that causes that output edge
    (:func:`psum.flows.liberty.instance_edge_delays`; arc senses as in the static timing).
    """
    if netlist.library is not None:
        from .liberty import instance_edge_delays

        slews = netlist._nldm()[1]
        s0 = netlist.library.input_slew
        return [instance_edge_delays(cell, pins, slews, netlist.load[pins[cell.output]]
                                     if isinstance(pins[cell.output], int) else 0.0, s0)
                for _, cell, pins in netlist.cells]
    out = []
    for _, cell, pins in netlist.cells:
        d = cell.d0 + cell.k * netlist.load[pins[cell.output]] if isinstance(pins[cell.output], int) else cell.d0
        out.append((d, d))
    return out


def _timed_models() -> str:
    """psum45 cell models with an inertial output delay ``TD`` (ns, per instance).

    Why inertial (``assign #(D)``, Verilog's continuous-assignment semantics): a pulse shorter
    than the cell's delay does not get through a real gate either, so only glitches a gate can
    propagate are counted.
    """
    from .cells import models_text

    out = []
    for line in models_text().splitlines():
        if line.startswith("//"):
            line = "// psum45 cell models with an inertial output delay TD (ns). Generated by psum.flows.power."
        out.append(line.replace("assign ", "assign #(TD) ").replace("<= D;", "<= #(TD) D;"))
        if line.startswith("module "):
            out.append("  parameter real TD = 0.0;")  # not D: the flip-flop's data pin
    return "\n".join(out) + "\n"


def simulate_glitches(netlist, stim: dict, workdir) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Timed Icarus simulation of ``netlist`` on ``stim`` (cell delays of :func:`instance_delays`:
    psum45's linear model, or a Liberty library's NLDM rise and fall delays).

    Returns
    -------
    (settled, counts, max_delay_ns, clock_ns)
        ``settled``: bool ``(cycles, nets)``, each net's value at the end of each cycle (as
        :func:`simulate_nets`); ``counts``: int ``(nets,)``, transitions of each net during the
        ``ACTIVE`` cycles (glitches included; column order of ``netlist.bits``).

    Raises
    ------
    PsumError
        Icarus is missing, or the simulation fails.
    """
    import math
    import re

    delays = instance_delays(netlist)
    iverilog, vvp = find_tool("iverilog", ICARUS_HINT), find_tool("vvp", ICARUS_HINT)
    workdir = Path(workdir)
    timing = netlist.timing()
    # Half period: longer than the critical path (every cycle settles before the sample).
    half = max(2, math.ceil(timing.delay_ns) + 1)
    n = len(stim["phase"])
    (workdir / "phase.hex").write_text("".join(f"{int(v):x}\n" for v in stim["phase"]))
    inputs, decl, load, apply = _input_memories(netlist, stim, workdir)
    clock = netlist.clock_bits
    counted = [j for j, b in enumerate(netlist.bits) if b not in clock]
    # One counter per net, bumped on every change while an ACTIVE cycle runs.
    watch = [f"  always @(dut.n{netlist.bits[j]}) if (act) c[{k}] = c[{k}] + 1;" for k, j in enumerate(counted)]
    sample = []
    for k in range(0, len(netlist.bits), 64):
        chunk = netlist.bits[k:k + 64]
        sample.append(f'      $fwrite(f, "{"%b" * len(chunk)}", {", ".join(f"dut.n{b}" for b in chunk)});')
    sample.append('      $fwrite(f, "\\n");')
    conns = ", ".join(f".{p}({p})" for p in sorted(netlist.ports) if netlist.ports[p][0] == "input")
    m = max(len(counted), 1)
    tb = "\n".join([
        "`timescale 1ns/1ps",
        "module tb;",
        "  reg clk = 0; reg act = 0;",
        f"  reg [3:0] m_phase [0:{n - 1}];",
        *decl,
        f"  integer c [0:{m - 1}];",
        f"  psum_gl dut({conns});",
        *watch,
        "  integer i, f, g;",
        "  initial begin",
        f"    for (i = 0; i < {m}; i = i + 1) c[i] = 0;",
        '    $readmemh("phase.hex", m_phase);',
        *load,
        '    f = $fopen("nets.txt", "w");',
        f"    for (i = 0; i < {n}; i = i + 1) begin",
        f"      act = (m_phase[i] == {ACTIVE});",
        *apply,
        f"      #{half} clk = 1;",
        f"      #{half - 1};",
        *sample,
        "      #1 clk = 0;",
        "    end",
        "    $fclose(f);",
        '    g = $fopen("counts.txt", "w");',
        f'    for (i = 0; i < {m}; i = i + 1) $fwrite(g, "%0d\\n", c[i]);',
        "    $fclose(g);",
        "    $finish;",
        "  end",
        "endmodule",
    ]) + "\n"
    (workdir / "tb_timed.v").write_text(tb)
    gl = netlist.verilog("psum_gl")
    if netlist.library is None:  # psum45: one delay TD per instance (rise = fall in the linear model)
        def params(k):
            return f".TD({delays[k][0]:.4f})"
    else:
        def params(k):
            return f".PSUM_TR({delays[k][0]:.4f}), .PSUM_TF({delays[k][1]:.4f})"
    gl = re.sub(r"^  (\w+) c(\d+) \(", lambda mt: f"  {mt.group(1)} #({params(int(mt.group(2)))}) c{mt.group(2)} (",
                gl, flags=re.M)
    (workdir / "gl_timed.v").write_text(gl)
    (workdir / "cells_timed.v").write_text(_timed_models() if netlist.library is None
                                           else netlist.library.models_text(timed=True))
    for cmd in ([iverilog, "-g2005", "-o", "timed.vvp", "tb_timed.v", "gl_timed.v", "cells_timed.v"],
                [vvp, "-n", "timed.vvp"]):
        proc = _run(cmd, workdir, "timed gate-level simulation")
        if proc.returncode != 0:
            last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise PsumError(f"timed gate-level simulation failed ({Path(cmd[0]).name}): {last[0]}")
    lines = (workdir / "nets.txt").read_bytes().split()
    width = len(netlist.bits)
    if len(lines) != n or any(len(line) != width for line in lines):
        raise PsumError(f"timed gate-level simulation wrote {len(lines)} cycles, expected {n} of {width} nets")
    settled = np.frombuffer(b"".join(lines), dtype=np.uint8).reshape(n, width) == ord("1")
    counts = np.zeros(width, dtype=np.int64)
    counts[counted] = np.array([int(x) for x in (workdir / "counts.txt").read_text().split()][:len(counted)])
    return settled, counts, max((max(d) for d in delays), default=0.0), 2.0 * half


def estimate_glitch(netlist, spec, *, workdir, n_outputs: int = 16, seed: int = 0, streams=None) -> GlitchResult:
    """How much glitching adds to the zero-delay power proxy of ``netlist`` (a unit for ``spec``, on
    psum45 or a Liberty library).

    One timed Icarus simulation with every cell's delay (:func:`instance_delays`) on the stimulus of
    :func:`estimate_power`: the values settled at the end of each cycle give the zero-delay toggles
    (what :func:`estimate_power` counts), every transition counted during the cycle gives the
    timed toggles. Both are weighted by each net's energy per toggle (load and driver's internal
    energy); the clock is left out of the share (it toggles alike in both).

    Parameters
    ----------
    netlist, spec, workdir, n_outputs, seed, streams
        As for :func:`estimate_power`.

    Returns
    -------
    GlitchResult

    Raises
    ------
    ValueError
        If ``n_outputs`` is not an integer from 1 to :data:`GLITCH_MAX_OUTPUTS`.
    PsumError
        Icarus missing or a failed simulation.
    """
    check_int("n_outputs", n_outputs, 1, GLITCH_MAX_OUTPUTS)
    if streams is None:
        from psum.hw.verify.streams import conv_streams_from_digits

        streams = conv_streams_from_digits(spec, n_outputs, seed)
        if lanes(spec) > 1 and not spec.blocked:  # as estimate_power: block streams are whole blocks already
            streams = _merge_streams(streams, spec.order.p or lanes(spec))
    stim = build_stimulus(spec, streams, seed=seed)
    settled, counts, dmax, clock_ns = simulate_glitches(netlist, stim, workdir)
    toggles = settled[1:] ^ settled[:-1]
    active = stim["phase"][1:] == ACTIVE
    clock = netlist.clock_bits
    data = np.array([b not in clock for b in netlist.bits])
    e_tog, _ = _energy_per_toggle(netlist)
    zero = toggles[active][:, data].sum(axis=0).astype(np.float64)
    e_zero = float(zero @ e_tog[data])
    e_timed = float(counts[data].astype(np.float64) @ e_tog[data])
    e_clock = (sum(netlist.clock_energy(i) for i, (_, cell, _) in enumerate(netlist.cells) if cell.is_ff)
               + sum(netlist.load[b] for b in clock) * netlist.vdd ** 2) * int(active.sum())
    macs = max(sum(int(np.asarray(a).size) for a, _, _ in streams), 1)
    return GlitchResult(
        zero_delay_fj_per_mac=round((e_zero + e_clock) / macs, 3),
        timed_fj_per_mac=round((e_timed + e_clock) / macs, 3),
        glitch_share=round((e_timed - e_zero) / e_timed, 4) if e_timed else 0.0,
        toggles_zero_delay=int(zero.sum()),
        toggles_timed=int(counts[data].sum()),
        macs=macs,
        max_cell_delay_ns=round(dmax, 4),
        clock_ns=clock_ns,
    )
