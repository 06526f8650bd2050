"""Bit-exact verification of a generated MAC unit: cocotb + Icarus against :func:`psum.golden.mac_step`.

How a run works (:func:`simulate`):

1. The stimulus is computed up front in numpy (:func:`make_stimulus`): one row per clock cycle of
   ``rst, load, en, a, b, init, rand``.
2. The unit's Verilog (:func:`psum.hw.verilog`) and a small Verilog harness (:func:`harness_verilog`)
   are built with the cocotb runner for Icarus, one build directory per spec (named ``spec.name``).
3. The cocotb test (``psum.hw.verify.cocotb_tb``, file ``hw/cocotb_tb.py``) starts the clock. In ``stream`` mode (default) the
   harness reads one stimulus row per cycle from a text file at the falling edge and writes the
   accumulator it sees at the next falling edge, so no Python runs per cycle. In ``drive`` mode the
   cocotb coroutine writes every input and reads ``acc`` itself each cycle (slower; a cross-check of
   the harness).
4. The check is one vectorised :func:`psum.golden.mac_step` call (:func:`check_trace`): for every
   cycle ``t``, the expected register is computed from the register the unit *itself* held before
   the edge, so the first differing cycle is exactly the first wrong step.

Ports are found by name from the contract in :mod:`psum.hw` (``rnd`` exists iff ``spec.sr_bits``; the stimulus column is ``rand``),
so every generator that keeps the contract plugs in unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from psum._util import atomic_write, check_int, find_tool
from psum.errors import PsumError
from psum.golden import IntFormat, MacSpec, mac_step
from psum.golden.stimulus import adversarial_triples, random_codes, special_codes

__all__ = [
    "amaranth_trace",
    "SimResult",
    "simulate",
    "make_stimulus",
    "check_trace",
    "harness_verilog",
    "unit_verilog",
    "conv_streams_from_digits",
    "FIELDS",
    "DEFAULT_CACHE",
]

# Stimulus columns, one value per cycle; also the order of the harness' text rows (after ctrl).
FIELDS = ("rst", "load", "en", "a", "b", "init", "rand")

# Build directories live here unless the caller gives one (relative to the working directory).
DEFAULT_CACHE = Path(".psum-cache") / "sim"

_TB_MODULE = "psum.hw.verify.cocotb_tb"  # importable from the installed package
_UNKNOWN = (1 << 64) - 1  # stands for a register value with x/z bits
_TOP = "psum_mac_tb"
PERIOD_NS = 10  # clock period of the harness and of the cocotb drive mode
ICARUS_HINT = "run ./setup.sh or apt-get install iverilog"  # what to do when iverilog/vvp are missing


@dataclasses.dataclass(frozen=True)
class SimResult:
    """Outcome of one :func:`simulate` run.

    Attributes
    ----------
    spec : MacSpec
        The unit checked.
    cycles_checked : int
        Clock cycles whose register value was compared with the golden model.
    mismatches : int
        Cycles whose register differed (0 = bit-exact).
    first_mismatch : dict or None
        ``{"cycle", "inputs", "prev_acc", "expected", "got"}`` of the first wrong cycle (codes as
        hex strings), ``None`` when there is none.
    wall_s : float
        Seconds for the whole call (Verilog generation, build, stimulus, simulation, check).
    sim_s : float
        Seconds of the simulator process (start-up, simulation and the vectorised check).
    cpu_s : float
        CPU seconds of the simulator process (user + system): the figure to compare on a shared
        machine, where ``sim_s`` also counts time spent waiting for a core.
    cycles_per_s : float
        ``cycles_checked / sim_s``: checked cycles per second.
    mode : str
        ``"stream"`` or ``"drive"``.
    """

    spec: MacSpec
    cycles_checked: int
    mismatches: int
    first_mismatch: dict | None
    wall_s: float
    sim_s: float
    cpu_s: float
    cycles_per_s: float
    mode: str

    @property
    def cycles_per_cpu_s(self) -> float:
        """``cycles_checked / cpu_s``."""
        return self.cycles_checked / self.cpu_s if self.cpu_s > 0 else 0.0

    @property
    def ok(self) -> bool:
        """True when every checked cycle matched."""
        return self.mismatches == 0 and self.cycles_checked > 0


# ---------------------------------------------------------------------------------------------
# Stimulus
# ---------------------------------------------------------------------------------------------
def _empty(n: int) -> dict:
    return {k: np.zeros(n, dtype=np.uint64) for k in FIELDS}


def _concat(parts: list[dict]) -> dict:
    return {k: np.concatenate([p[k] for p in parts]) if parts else np.zeros(0, np.uint64) for k in FIELDS}


def _load_then_step(acc, a, b) -> dict:
    """Two cycles per triple: ``load init=acc``, then ``en`` with ``(a, b)``."""
    n = len(acc)
    s = _empty(2 * n)
    s["load"][0::2] = 1
    s["init"][0::2] = acc
    s["en"][1::2] = 1
    s["a"][1::2] = a
    s["b"][1::2] = b
    return s


def _acc_states(spec: MacSpec, rng: np.random.Generator, k: int) -> np.ndarray:
    """``k`` accumulator codes from the format's special values, always including +0."""
    sp = special_codes(spec.acc)
    pick = rng.choice(sp, size=min(k - 1, len(sp)), replace=False) if k > 1 else sp[:0]
    return np.unique(np.concatenate([np.zeros(1, np.uint64), pick.astype(np.uint64)]))


def _directed(spec: MacSpec, rng: np.random.Generator, states: int = 4) -> dict:
    """Every pair of special operand codes from a few loaded accumulator states."""
    sa, sb = special_codes(spec.a), special_codes(spec.b)
    acc = _acc_states(spec, rng, states)
    A, B, C = np.meshgrid(sa, sb, acc, indexing="ij")
    return _load_then_step(C.ravel(), A.ravel(), B.ravel())


def _exhaustive(spec: MacSpec, rng: np.random.Generator, states: int = 4) -> dict:
    """Every ``(a, b)`` code pair from a few loaded accumulator states (operands of at most 8 bits)."""
    for key in ("a", "b"):
        if getattr(spec, key).width > 8:
            raise ValueError(
                f"exhaustive mode needs operands of at most 8 bits, not {key}={getattr(spec, key)}"
            )
    acc = _acc_states(spec, rng, states)
    A, B, C = np.meshgrid(np.arange(1 << spec.a.width, dtype=np.uint64),
                          np.arange(1 << spec.b.width, dtype=np.uint64), acc, indexing="ij")
    return _load_then_step(C.ravel(), A.ravel(), B.ravel())


def _streams(spec: MacSpec, streams) -> dict:
    """Recorded operand streams: per output, ``load init`` then one ``en`` cycle per (a, b)."""
    parts = []
    for a, b, init in streams:
        a = np.asarray(a, dtype=np.uint64).ravel()
        b = np.asarray(b, dtype=np.uint64).ravel()
        if a.shape != b.shape:
            raise ValueError(f"stream operands must have the same length, not {a.size} and {b.size}")
        s = _empty(a.size + 1)
        s["load"][0] = 1
        s["init"][0] = np.uint64(init)
        s["en"][1:] = 1
        s["a"][1:] = a
        s["b"][1:] = b
        parts.append(s)
    return _concat(parts)


def _random(spec: MacSpec, n: int, rng: np.random.Generator) -> dict:
    """Constrained-random cycles: ``en`` mostly high, occasional ``load`` and ``rst``.

    Half of the operands come from :func:`adversarial_triples` (special values, rounding ties,
    cancellation, exponent gaps relative to a loaded accumulator), half are uniformly random finite
    codes; loads bring the accumulator back from NaN/inf and into adversarial states.
    """
    s = _empty(n)
    if n == 0:
        return s
    adv_acc, adv_a, adv_b = adversarial_triples(spec, n, rng)
    use_adv = rng.random(n) < 0.5
    s["a"] = np.where(use_adv, adv_a, random_codes(spec.a, n, rng, finite_only=True))
    s["b"] = np.where(use_adv, adv_b, random_codes(spec.b, n, rng, finite_only=True))
    u = rng.random(n)
    s["rst"] = (u < 0.003).astype(np.uint64)
    s["load"] = ((u >= 0.003) & (u < 0.06)).astype(np.uint64)
    s["init"] = adv_acc
    # en is independent of load, so "load wins over en" is exercised on about 5% of cycles.
    s["en"] = (rng.random(n) < 0.85).astype(np.uint64)
    return s


def make_stimulus(spec, *, cycles: int = 10_000, seed: int = 0, streams=None,
                  exhaustive: bool = False, directed: bool = True) -> dict:
    """Per-cycle stimulus for ``spec``: a dict of uint64 arrays keyed by :data:`FIELDS`.

    Layout: a reset cycle; the directed special-value pairs (or, with ``exhaustive``, every operand
    pair) from several loaded accumulator states; the recorded ``streams``; then constrained-random
    cycles up to ``cycles`` in total (the directed part and the streams always run in full, so the
    total may exceed ``cycles``). Stochastic rounding specs get ``rand`` drawn per cycle.

    Parameters
    ----------
    spec : MacSpec or str
    cycles : int
        Minimum number of cycles in total.
    seed : int
        Seed of every random choice (the stimulus is a pure function of its arguments).
    streams : iterable of (a_codes, b_codes, init_code), optional
        Operand sequences recorded from a network layer (see :func:`conv_streams_from_digits`).
    exhaustive : bool
        Every ``(a, b)`` code pair (operands of at most 8 bits) instead of the directed pairs.
    directed : bool
        Include the directed special-value pairs.

    Raises
    ------
    ValueError
        Bad ``cycles`` or ``seed``, or ``exhaustive`` with operands wider than 8 bits.
    """
    spec = MacSpec.parse(spec)
    cycles = check_int("cycles", cycles, 1)
    seed = check_int("seed", seed, 0)
    rng = np.random.default_rng(seed)
    head = _empty(1)
    head["rst"][0] = 1  # never rely on the register's power-up value
    parts = [head]
    if exhaustive:
        parts.append(_exhaustive(spec, rng))
    elif directed:
        parts.append(_directed(spec, rng))
    if streams is not None:
        parts.append(_streams(spec, streams))
    used = sum(len(p["rst"]) for p in parts)
    parts.append(_random(spec, max(0, int(cycles) - used), rng))
    stim = _concat(parts)
    if spec.sr_bits:
        stim["rand"] = rng.integers(0, 1 << spec.sr_bits, size=len(stim["rst"]), dtype=np.uint64)
    return stim


def conv_streams_from_digits(spec, n_outputs: int, seed: int = 0) -> list:
    """Operand streams of a 3x3 convolution over real handwritten-digit images.

    The images are scikit-learn's bundled 8x8 digits (no download). Pixels (0..16) are scaled into
    ``spec.a``'s range (integers: ``[0, max_int]``; floats: ``[0, 1]``), weights are fixed-seed
    Gaussian values scaled into ``spec.b``, and each output element's bias is loaded into the
    accumulator first, as a conv layer's MAC array would do.

    Parameters
    ----------
    spec : MacSpec or str
    n_outputs : int
        Number of output elements (streams of 9 products each).
    seed : int
        Seed of the weights, biases and the choice of images and positions.

    Returns
    -------
    list of (a_codes, b_codes, init_code)
    """
    from sklearn.datasets import load_digits

    spec = MacSpec.parse(spec)
    n_outputs = check_int("n_outputs", n_outputs, 0)
    rng = np.random.default_rng(seed)
    images = load_digits().images  # (1797, 8, 8), values 0..16
    n_filters = 4
    weights = rng.standard_normal((n_filters, 3, 3))
    bias = rng.standard_normal(n_filters) * 0.25

    def scale(fmt, x):
        # Why the scales: integer units get codes that span the format, float units keep values
        # around 1 (activations in [0, 1], weights ~N(0, 1)), as a quantised network would.
        if isinstance(fmt, IntFormat):
            return fmt.encode(np.clip(np.round(x * fmt.max_int), fmt.min_int, fmt.max_int), saturate=True)
        return fmt.encode(x, "rne", saturate=True)

    out = []
    img = rng.integers(0, len(images), size=n_outputs)
    pos = rng.integers(0, 6, size=(n_outputs, 2))
    flt = rng.integers(0, n_filters, size=n_outputs)
    for i in range(n_outputs):
        y, x = pos[i]
        patch = images[img[i], y:y + 3, x:x + 3].ravel() / 16.0
        w = weights[flt[i]].ravel()
        a = scale(spec.a, patch)
        b = scale(spec.b, w / 3.0 if isinstance(spec.b, IntFormat) else w)
        if isinstance(spec.acc, IntFormat):
            hi = min(spec.acc.max_int, spec.a.max_int * max(abs(spec.b.min_int), spec.b.max_int))
            init = spec.acc.encode([bias[flt[i]] * hi / 4], saturate=True)[0]
        else:
            init = spec.acc.encode([bias[flt[i]]], "rne", saturate=True)[0]
        out.append((a, b, int(init)))
    return out


# ---------------------------------------------------------------------------------------------
# The check
# ---------------------------------------------------------------------------------------------
def check_trace(spec, stim: dict, observed) -> tuple[int, int | None, np.ndarray]:
    """Compare the register after every cycle with the golden model, in one vectorised pass.

    ``observed[t]`` is the register after cycle ``t``'s rising edge. The expected value of cycle
    ``t`` is computed from ``observed[t-1]`` (the unit's own previous state; ``+0`` before cycle 0),
    so the sequential dependency disappears and the first mismatch is the first wrong step.

    Returns
    -------
    (mismatches, first_cycle or None, expected)
    """
    spec = MacSpec.parse(spec)
    obs = np.asarray(observed, dtype=np.uint64)
    n = len(stim["rst"])
    if obs.shape != (n,):
        raise ValueError(f"observed trace has {obs.size} cycles, the stimulus {n}")
    prev = np.concatenate([np.zeros(1, np.uint64), obs[:-1]])
    rst, load, en = (stim[k].astype(bool) for k in ("rst", "load", "en"))
    step = en & ~load & ~rst
    expected = np.where(rst, np.uint64(0), np.where(load, stim["init"], prev))
    if step.any():
        rand = stim["rand"][step].astype(np.int64) if spec.sr_bits else None
        expected[step] = mac_step(spec, prev[step], stim["a"][step], stim["b"][step], rand=rand)
    bad = np.flatnonzero(expected != obs)
    return int(bad.size), (int(bad[0]) if bad.size else None), expected


def _describe(spec: MacSpec, stim: dict, observed, expected, t: int) -> dict:
    def hx(fmt, v):
        return f"0x{int(v):0{(fmt.width + 3) // 4}x}"

    prev = int(observed[t - 1]) if t > 0 else 0
    inputs = {k: int(stim[k][t]) for k in ("rst", "load", "en")}
    inputs.update(a=hx(spec.a, stim["a"][t]), b=hx(spec.b, stim["b"][t]), init=hx(spec.acc, stim["init"][t]))
    if spec.sr_bits:
        inputs["rand"] = int(stim["rand"][t])
    return {"cycle": int(t), "inputs": inputs, "prev_acc": hx(spec.acc, prev),
            "expected": hx(spec.acc, expected[t]), "got": hx(spec.acc, observed[t])}


# ---------------------------------------------------------------------------------------------
# Verilog: the unit and the stream harness
# ---------------------------------------------------------------------------------------------
def unit_verilog(spec, **implementation) -> str:
    """:func:`psum.hw.verilog`, with a missing float generator turned into a one-line PsumError."""
    from psum.hw import verilog

    try:
        return verilog(spec, **implementation)
    except ModuleNotFoundError as exc:
        if exc.name == "psum.hw.float_mac":
            raise PsumError("float MAC generator not available yet (psum.hw.float_mac)") from None
        raise


def harness_verilog(spec) -> str:
    """Verilog of ``psum_mac_tb``: the unit ``spec.name`` plus a per-cycle stimulus player.

    At every falling edge the harness writes the accumulator left by the previous rising edge to
    ``resp.txt`` and reads the next row ``ctrl a b init rand`` (hex; ``ctrl = {rst, load, en}``)
    from ``stim.txt`` in the working directory; at the end of the file it raises ``done``. With
    the plusarg ``+psum_drive`` it plays nothing and the cocotb test drives the registers itself
    (``rst load en a b init`` and ``rnd``, which feeds the unit's ``rand`` port).
    In stream mode the harness runs its own clock (period :data:`PERIOD_NS`); in drive mode the
    cocotb test clocks ``clk``.
    """
    spec = MacSpec.parse(spec)
    aw, bw, cw = spec.a.width, spec.b.width, spec.acc.width
    rw = max(spec.sr_bits, 1)
    # The random-bits port is ``rnd``, not ``rand``: ``rand`` is a SystemVerilog keyword.
    rand_port = "        .rnd(rnd),\n" if spec.sr_bits else ""
    return f"""`timescale 1ns/1ps
// psum stimulus player for {spec.name} ({spec}); generated, do not edit.
module {_TOP}(output reg done);
    reg clk = 1'b1;
    // No initial values on purpose: the first row then changes every input from x, which wakes
    // the unit's `always @*` blocks (Yosys' Verilog relies on an input event to evaluate them;
    // with inputs equal to their initial values the register would load an x).
    reg rst, load, en;
    reg [{aw - 1}:0] a;
    reg [{bw - 1}:0] b;
    reg [{cw - 1}:0] init;
    reg [{rw - 1}:0] rnd;
    reg [2:0] ctrl;
    wire [{cw - 1}:0] acc;
    integer fi, fo, r, count, drive;

    {spec.name} dut (
        .clk(clk),
        .rst(rst),
        .a(a),
        .b(b),
        .en(en),
        .load(load),
        .init(init),
{rand_port}        .acc(acc)
    );

    initial begin
        done = 1'b0;
        count = 0;
        drive = $test$plusargs("psum_drive");
        if (!drive) begin
            fi = $fopen("stim.txt", "r");
            fo = $fopen("resp.txt", "w");
            if (fi == 0 || fo == 0) $fatal(1, "psum_mac_tb: cannot open stim.txt / resp.txt");
            // Why a Verilog clock here: a clock toggled from Python costs a GPI callback per edge,
            // which caps cocotb near 15,000 cycles/s; this keeps Python out of the cycle loop.
            while (!done) #{PERIOD_NS // 2} clk = ~clk;
        end
    end

    // Falling edge: record what the last rising edge stored, then present the next cycle's inputs.
    always @(negedge clk) if (!drive && !done) begin
        if (count > 0) $fwrite(fo, "%h\\n", acc);
        r = $fscanf(fi, "%h %h %h %h %h\\n", ctrl, a, b, init, rnd);
        if (r != 5) begin
            $fclose(fo);
            $fclose(fi);
            done = 1'b1;
        end else begin
            {{rst, load, en}} = ctrl;
            count = count + 1;
        end
    end
endmodule
"""


def _write_if_changed(path: Path, text: str) -> None:
    # Why: the runner rebuilds when a source is newer than the compiled simulation.
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def write_stimulus_text(stim: dict, path: Path) -> None:
    """The harness' ``stim.txt``: one hex row ``ctrl a b init rand`` per cycle."""
    ctrl = (stim["rst"] << np.uint64(2)) | (stim["load"] << np.uint64(1)) | stim["en"]
    cols = [ctrl, stim["a"], stim["b"], stim["init"], stim["rand"]]
    rows = zip(*(c.tolist() for c in cols))
    with open(path, "w") as f:
        f.write("".join(f"{c:x} {a:x} {b:x} {i:x} {r:x}\n" for c, a, b, i, r in rows))


def simulate(spec, *, cycles: int = 10_000, seed: int = 0, build_dir=None, streams=None,
             exhaustive: bool = False, waves: bool = False, mode: str = "stream",
             stimulus: dict | None = None, **implementation) -> SimResult:
    """Check the generated Verilog of ``spec`` against :func:`psum.golden.mac_step` in Icarus.

    Parameters
    ----------
    spec : MacSpec or str
    cycles, seed, streams, exhaustive
        Passed to :func:`make_stimulus`.
    build_dir : path, optional
        Build directory of this spec; default ``.psum-cache/sim/<spec.name>``.
    waves : bool
        Record an FST/VCD trace in the build directory.
    mode : str
        ``"stream"``: the Verilog harness plays the stimulus (fast); ``"drive"``: the cocotb
        coroutine drives every input each cycle.
    stimulus : dict, optional
        A ready stimulus (see :func:`make_stimulus`) instead of generating one.
    **implementation
        Micro-architecture options of the generator (e.g. ``pipeline=0``).

    Returns
    -------
    SimResult

    Raises
    ------
    PsumError
        Icarus is missing, the float generator is missing, or the simulation produced no result.
    ValueError
        Bad arguments.
    """
    t0 = time.perf_counter()
    spec = MacSpec.parse(spec)
    if mode not in ("stream", "drive"):
        raise ValueError(f"mode must be stream or drive, not {mode!r}")
    find_tool("iverilog", ICARUS_HINT)
    if stimulus is None:
        stimulus = make_stimulus(spec, cycles=cycles, seed=seed, streams=streams, exhaustive=exhaustive)
    build = Path(build_dir) if build_dir is not None else DEFAULT_CACHE / spec.name
    build = build.resolve()
    build.mkdir(parents=True, exist_ok=True)
    unit_v, tb_v = build / f"{spec.name}.v", build / f"{_TOP}.v"
    _write_if_changed(unit_v, unit_verilog(spec, **implementation))
    _write_if_changed(tb_v, harness_verilog(spec))

    from cocotb_tools.runner import get_runner

    runner = get_runner("icarus")
    # The runner logs "Skipping compilation" on every cached build; keep psum's output clean.
    runner.log.setLevel(logging.ERROR)
    runner.build(sources=[unit_v, tb_v], hdl_toplevel=_TOP, build_dir=build,
                 timescale=("1ns", "1ps"), waves=waves, log_file=build / "build.log")
    run = Path(tempfile.mkdtemp(prefix="run-", dir=build))
    np.savez(run / "stim.npz", **stimulus)
    if mode == "stream":
        write_stimulus_text(stimulus, run / "stim.txt")
    t1, ru0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        runner.test(test_module=_TB_MODULE, hdl_toplevel=_TOP, build_dir=build, test_dir=run,
                    testcase=f"mac_{mode}", seed=seed, waves=waves,
                    plusargs=["+psum_drive"] if mode == "drive" else [],
                    extra_env={"PSUM_SPEC": str(spec)}, timescale=("1ns", "1ps"),
                    log_file=run / "sim.log")
    except SystemExit:
        # Under pytest the runner exits when a cocotb test fails; result.json still says why.
        pass
    sim_s = time.perf_counter() - t1
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    result_file = run / "result.json"
    if not result_file.exists():
        raise PsumError(f"simulation of {spec.name} produced no result; see {run / 'sim.log'}")
    res = json.loads(result_file.read_text())
    if res["mismatches"] == 0 and not waves:
        shutil.rmtree(run, ignore_errors=True)
    n = res["cycles_checked"]
    return SimResult(spec=spec, cycles_checked=n, mismatches=res["mismatches"],
                     first_mismatch=res["first_mismatch"], wall_s=time.perf_counter() - t0,
                     sim_s=sim_s, cpu_s=cpu_s, cycles_per_s=n / sim_s if sim_s > 0 else 0.0, mode=mode)


def read_response(path) -> np.ndarray:
    """The harness' ``resp.txt`` as uint64 codes."""
    def code(text):
        # An x/z bit (an undriven or uninitialised register) can never equal a golden code.
        try:
            return int(text, 16)
        except ValueError:
            return _UNKNOWN

    with open(path) as f:
        return np.array([code(x) for x in f.read().split()], dtype=np.uint64)


def finish(spec, stim: dict, observed, out_dir) -> dict:
    """Check ``observed`` and write ``result.json`` in ``out_dir`` (called by the cocotb test)."""
    spec = MacSpec.parse(spec)
    observed = np.asarray(observed, dtype=np.uint64)
    bad, first, expected = check_trace(spec, stim, observed)
    res = {"spec": str(spec), "cycles_checked": int(observed.size), "mismatches": bad,
           "first_mismatch": None if first is None else _describe(spec, stim, observed, expected, first)}
    atomic_write(Path(out_dir) / "result.json", json.dumps(res, indent=1))
    return res


def amaranth_trace(spec, stim: dict, **implementation) -> np.ndarray:
    """The unit of ``spec`` in Amaranth's Python simulator: the register after every rising edge.

    ``stim`` is a :func:`make_stimulus`-style dict (``rst``, ``load``, ``en``, ``a``, ``b``,
    ``init`` and, for stochastic rounding, ``rand``). For fast unit tests of the generators; the
    bit-exact claim is made on the emitted Verilog in Icarus (:func:`simulate`).
    """
    from amaranth.hdl import ClockDomain, Module
    from amaranth.sim import Simulator

    from psum.hw import generate

    spec = MacSpec.parse(spec)
    dut = generate(spec, **implementation)
    top = Module()
    top.domains.sync = cd = ClockDomain("sync")
    top.submodules.dut = dut
    observed = []

    async def bench(ctx):
        for t in range(len(stim["en"])):
            ctx.set(cd.rst, int(stim["rst"][t]))
            for k in ("load", "en", "a", "b", "init"):
                ctx.set(getattr(dut, k), int(stim[k][t]))
            if spec.sr_bits:
                ctx.set(dut.rnd, int(stim["rand"][t]))
            await ctx.tick()
            observed.append(ctx.get(dut.acc))

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return np.asarray(observed, dtype=np.uint64)
