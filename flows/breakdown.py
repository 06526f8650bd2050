"""Where area, delay and energy go: a unit's figures split by datapath stage.

The generators build every datapath stage of a float unit as its own Amaranth submodule
(:func:`psum.hw.float_parts.stage`: unpack, multiplier, normalise, align, adder, round, specials),
so the generated Verilog is hierarchical. This flow maps that hierarchy *without* flattening first,
then flattens the mapped netlist; every cell's name then carries its stage's instance path
(``$flatten\\s__align.$abc$...``) and :func:`psum.hw.float_parts.stage_of` reads it back::

    read_verilog unit.v; design -save rtl
    synth -top <module>                        # hierarchy kept: no logic crosses a stage boundary
    dfflibmap + abc -liberty psum45.lib        # every stage mapped on its own
    flatten; write_json                        # one netlist, cell names = stage paths
    design -load rtl; synth -flatten; ...      # the normal flat flow, for the reference area

Area per stage is the sum of its cells' areas; energy per stage is the power proxy's energy
(:func:`psum.flows.power.estimate_power`) split by the stage of each net's driving cell (the clock
and the flip-flops go to ``register``, the operand ports' load to ``inputs``); the critical path
(:meth:`psum.flows.netlist.Netlist.timing`) is cut into consecutive runs of cells of one stage.

Cells outside every stage are ``control`` (the accumulator's load/enable multiplexers; the whole
datapath of units whose generator has no stages, e.g. the integer MACs), flip-flops are
``register``. Because no optimisation crosses a stage boundary, the hierarchical total is a little
larger than the flat area of :func:`psum.flows.synth.synthesize`; both are reported, and the
difference (``hierarchy_overhead``) says how far the split can be trusted. This is the practice of
hierarchical area reports in commercial flows (a design kept "ungrouped" per block).

With a team's Liberty file (``liberty=``, :mod:`psum.flows.liberty`) the same script maps onto
that file (registers legalised to its plain D flop first, as :func:`psum.flows.synth.synthesize`
does): stage areas and leakage are its cells', GE its smallest NAND2's, the critical path is the
NLDM timing (rise and fall apart; every run of the path names the edge it ends on), and the
energies use its internal-power tables.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

from psum._util import check_int
from psum.errors import PsumError

from . import cache
from .cells import LIB_PATH, NAND2_AREA, library_hash

__all__ = ["Breakdown", "breakdown", "stage_group", "stage_table", "path_by_stage", "breakdown_markdown"]

ENERGY_ONLY = ("inputs",)


@dataclasses.dataclass(frozen=True)
class Breakdown:
    """Area, energy and critical path of one unit by datapath stage.

    Attributes
    ----------
    spec, module, impl : str
        The unit (canonical spec text, top module name, implementation text).
    stages : list of dict
        One dict per stage present, in datapath order: ``stage``, ``cells``, ``area_um2``,
        ``ge``, ``area_share`` (of the hierarchical total), ``energy_fj`` (per MAC),
        ``energy_share``, and with a Liberty library ``leakage_nw``. ``inputs`` (the operand
        ports' load) has energy only.
    ge : float
        Hierarchical total (sum of the stages), NAND2 equivalents.
    flat_ge : float
        The same unit mapped flat in the same Yosys run (the mapping of
        :func:`psum.flows.synth.synthesize`; ABC's run-to-run variation can put it a few percent
        from that function's figure: int4 MAC 395 here against 366 GE there).
    hierarchy_overhead : float
        ``ge / flat_ge - 1``: what keeping the stage boundaries costs.
    delay_ns : float
        Critical path of the hierarchical netlist.
    path : list of dict
        The critical path stage by stage, start first: ``stage``, ``cells`` (on the path),
        ``delay_ns`` (of that run), ``arrival_ns`` (at its end). The delays add up to ``delay_ns``.
    energy_per_mac_fj : float
        Power proxy of the hierarchical netlist (sum of the stages' energies).
    flow_version, library : str
        What produced the figures.
    seconds : float
        Wall time.
    cached : bool
        True when read from the cache.
    """

    spec: str
    module: str
    impl: str
    stages: list
    ge: float
    flat_ge: float
    hierarchy_overhead: float
    delay_ns: float
    path: list
    energy_per_mac_fj: float
    flow_version: str
    library: str
    seconds: float
    cached: bool = False

    def to_dict(self) -> dict:
        """Plain JSON-able dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Breakdown":
        """Inverse of :meth:`to_dict` (unknown keys are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def stage(self, name: str) -> dict:
        """The figures of one stage (zeros when the unit has no such stage)."""
        for s in self.stages:
            if s["stage"] == name:
                return s
        return {"stage": name, "cells": 0, "area_um2": 0.0, "ge": 0.0, "area_share": 0.0,
                "energy_fj": 0.0, "energy_share": 0.0}


def stage_group(instance: str, cell) -> str:
    """The stage a mapped cell belongs to: flip-flops ``register``, else its instance path's stage.

    Cells outside every stage submodule are ``control``.
    """
    from psum.hw.float_parts import stage_of

    if cell.is_ff:
        return "register"
    return stage_of(instance) or "control"


def _script(work: Path, top: str, liberty=None) -> str:
    from .synth import _host

    lib = _host(LIB_PATH if liberty is None else liberty.path)
    # A team's library: every register legalised to its plain D flop, as psum.flows.synth does.
    legal = [] if liberty is None else ["dfflegalize -cell $_DFF_P_ 01"]
    return "\n".join([
        "setenv YOSYS_MAX_THREADS 1",  # see psum.flows.synth._script
        f"read_verilog {_host(work / 'unit.v')}",
        "design -save rtl",
        # Hierarchical: every stage optimised and mapped within its own boundary.
        f"synth -top {top}",
        "delete t:$scopeinfo",
        *legal,
        f"dfflibmap -liberty {lib}",
        f"abc -liberty {lib}",
        "opt_clean",
        "flatten",
        "delete t:$scopeinfo",  # flatten leaves hierarchy markers (no logic)
        "opt_clean",
        f"write_json {_host(work / 'hier.json')}",
        # The normal flat flow, for the reference area.
        "design -load rtl",
        f"synth -flatten -top {top}",
        "delete t:$scopeinfo",
        *legal,
        f"dfflibmap -liberty {lib}",
        f"abc -liberty {lib}",
        "opt_clean",
        f"tee -q -o {_host(work / 'flat.txt')} stat -liberty {lib}",
    ]) + "\n"


def _run(work: Path, top: str, liberty=None) -> None:
    from .synth import _host, _yosys_script

    (work / "breakdown.ys").write_text(_script(work, top, liberty))
    proc = _yosys_script(work / "breakdown.ys", top)
    if proc.returncode != 0 or not (work / "hier.json").exists() or not (work / "flat.txt").exists():
        text = (proc.stderr + proc.stdout).strip().splitlines()
        last = next((ln for ln in text if "ERROR" in ln), text[-1] if text else f"exit code {proc.returncode}")
        raise PsumError(f"yosys failed on {top}: {last.strip().replace(_host(work) + '/', '')}")


def path_by_stage(timing, netlist) -> list:
    """The critical path of ``timing`` cut into consecutive runs of one stage.

    Returns
    -------
    list of dict
        ``stage``, ``cells``, ``delay_ns``, ``arrival_ns`` per run, start first (NLDM timing adds
        ``edge``, the rise or fall at the run's end); a path that ends at a flip-flop ends with a
        ``register`` run of zero cells holding the setup time.
    """
    cells = {name: cell for name, cell, _ in netlist.cells}
    runs, t_prev = [], 0.0
    edges = timing.edges or (None,) * len(timing.steps)
    for (name, _, arrival), edge in zip(timing.steps, edges):
        g = stage_group(name, cells[name])
        if runs and runs[-1]["stage"] == g:
            runs[-1]["cells"] += 1
            runs[-1]["arrival_ns"] = arrival
        else:
            if runs:
                t_prev = runs[-1]["arrival_ns"]
            runs.append({"stage": g, "cells": 1, "arrival_ns": arrival, "start": t_prev})
        if edge is not None:  # NLDM timing: the edge leaving the run (rise and fall are timed apart)
            runs[-1]["edge"] = edge
    for r in runs:
        r["delay_ns"] = round(r.pop("arrival_ns") - r["start"], 6)
        r["arrival_ns"] = round(r.pop("start") + r["delay_ns"], 6)
        if "edge" in r:
            r["edge"] = r.pop("edge")  # after the figures, for the table's column order
    if timing.end == "ff" and runs:
        setup = round(timing.delay_ns - runs[-1]["arrival_ns"], 6)
        runs.append({"stage": "register", "cells": 0, "delay_ns": setup, "arrival_ns": timing.delay_ns})
    return runs


def stage_table(netlist, energy: dict, ge_unit: float) -> list:
    """Area, leakage and energy of each datapath stage of a mapped, flattened netlist.

    Parameters
    ----------
    netlist : psum.flows.netlist.Netlist
        Cell names carry their stage's instance path (:func:`stage_group`).
    energy : dict
        Energy per MAC (fJ) by stage (:attr:`psum.flows.power.PowerResult.groups`).
    ge_unit : float
        Area of one gate equivalent (the library's smallest NAND2), in the netlist's area unit.

    Returns
    -------
    list of dict
        In datapath order (:data:`psum.hw.float_parts.STAGES`, then ``inputs``), stages present only:
        ``stage, cells, area_um2, ge, area_share, energy_fj, energy_share`` and, for a Liberty
        library, ``leakage_nw`` (the sum of the stage's cells' leakage).
    """
    from psum.hw.float_parts import STAGES

    area, count, leak = {}, {}, {}
    for name, cell, _ in netlist.cells:
        g = stage_group(name, cell)
        area[g] = area.get(g, 0.0) + cell.area
        count[g] = count.get(g, 0) + 1
        leak[g] = leak.get(g, 0.0) + getattr(cell, "leakage_nw", 0.0)
    total = sum(area.values())
    e_total = sum(energy.values())
    stages = []
    for g in (*STAGES, *ENERGY_ONLY):
        if g not in area and g not in energy:
            continue
        a, e = area.get(g, 0.0), energy.get(g, 0.0)
        row = {"stage": g, "cells": count.get(g, 0), "area_um2": round(a, 3),
               "ge": round(a / ge_unit, 2), "area_share": round(a / total, 4) if total else 0.0,
               "energy_fj": round(e, 3), "energy_share": round(e / e_total, 4) if e_total else 0.0}
        if netlist.library is not None:
            row["leakage_nw"] = round(leak.get(g, 0.0), 3)
        stages.append(row)
    return stages


def _compute(spec, impl, n_outputs: int, seed: int, keep: Path | None, liberty=None) -> Breakdown:
    import shutil

    from psum.hw import module_name, verilog

    from .netlist import Netlist
    from .power import estimate_power
    from .synth import FLOW_VERSION, _chip_area

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="psum-breakdown-") as tmp:
        work = Path(tmp)
        top = module_name(spec, impl)
        (work / "unit.v").write_text(verilog(spec, impl))
        _run(work, top, liberty)
        netlist = Netlist(work / "hier.json", top, library=liberty)
        flat_area = _chip_area((work / "flat.txt").read_text())
        timing = netlist.timing()
        power = estimate_power(netlist, spec, workdir=work, n_outputs=n_outputs, seed=seed,
                               group_of=stage_group)
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            for name in ("unit.v", "breakdown.ys", "hier.json", "flat.txt"):
                shutil.copy(work / name, keep / name)
    ge_unit = NAND2_AREA if liberty is None else liberty.nand2_area
    stages = stage_table(netlist, power.groups, ge_unit)
    total = netlist.area()
    return Breakdown(
        spec=str(spec), module=top, impl=str(impl), stages=stages,
        ge=round(total / ge_unit, 2), flat_ge=round(flat_area / ge_unit, 2),
        hierarchy_overhead=round(total / flat_area - 1, 4) if flat_area else 0.0,
        delay_ns=round(timing.delay_ns, 4), path=path_by_stage(timing, netlist),
        energy_per_mac_fj=round(sum(power.groups.values()), 2), flow_version=FLOW_VERSION,
        library=library_hash() if liberty is None else f"{liberty.name}:{liberty.digest}",
        seconds=round(time.perf_counter() - t0, 2))


def breakdown(spec, *, impl=None, force: bool = False, cache_dir=None, n_outputs: int = 64, seed: int = 0,
              keep_dir=None, liberty=None) -> Breakdown:
    """Area, energy and the critical path of the unit for ``spec``, split by datapath stage.

    Parameters
    ----------
    spec : MacSpec or str
        The MAC (any spec :func:`psum.hw.verilog` accepts; float units have stages, the others
        report ``control`` and ``register`` only).
    impl : MacImpl or str, optional
        The implementation (:class:`psum.hw.impl.MacImpl`).
    force : bool
        Recompute even when a cached result exists.
    cache_dir : path-like, optional
        Cache directory (default :func:`psum.flows.cache.default_cache_dir`).
    n_outputs, seed : int
        The power proxy's digits convolution (as :func:`psum.flows.synth.synthesize`).
    keep_dir : path-like, optional
        Copy the RTL, script and netlists there.
    liberty : path-like or psum.flows.liberty.Library, optional
        Map onto this Liberty library instead of psum45: stage areas (and leakage) from its
        cells, GE = area / its smallest NAND2, the critical path from its NLDM tables (rise and
        fall apart, each run's ``edge``), energies from its internal-power tables.

    Returns
    -------
    Breakdown

    Raises
    ------
    ValueError
        Bad spec or options (before any work).
    PsumError
        Yosys, Icarus or the generator failed.
    """
    from psum.hw import check
    from psum.hw.impl import MacImpl

    from .synth import FLOW_VERSION

    spec, impl = check(spec, impl)
    from .power import POWER_MAX_OUTPUTS

    check_int("n_outputs", n_outputs, 1, POWER_MAX_OUTPUTS)  # before Yosys
    check_int("seed", seed, 0)
    impl = MacImpl.parse(impl)
    if liberty is not None and not hasattr(liberty, "cells"):
        from .liberty import read_liberty

        liberty = read_liberty(liberty)  # a bad file is one line, before any synthesis
    from .liberty import MODEL_VERSION

    lib = library_hash() if liberty is None else f"liberty{MODEL_VERSION}:" + liberty.digest
    cache_dir = Path(cache_dir) if cache_dir is not None else cache.default_cache_dir()
    from .synth import rtl_digest

    key = cache.cache_key("breakdown", str(spec), impl.tag, FLOW_VERSION, lib, n_outputs, seed, "rtl",
                          rtl_digest(spec, impl))
    if not force:
        hit = cache.load(cache_dir, key)
        if hit is not None:
            try:
                return dataclasses.replace(Breakdown.from_dict(hit), cached=True)
            except TypeError:
                pass
    result = _compute(spec, impl, n_outputs, seed, Path(keep_dir) if keep_dir is not None else None, liberty)
    cache.store(cache_dir, key, result.to_dict())
    return result


def breakdown_markdown(results, *, title: str = "Where area, delay and energy go") -> str:
    """A report section (Markdown) of :class:`Breakdown` results: one table of GE and fJ/MAC per
    stage (a column per unit) and each unit's critical path by stage.

    The hook of the report (:mod:`psum.reports`): ``breakdown_markdown([breakdown(s) for s in
    specs])`` gives a self-contained section.
    """
    from psum.hw.float_parts import STAGES

    if isinstance(results, (str, Breakdown)) or not hasattr(results, "__iter__"):
        raise TypeError(f"breakdown_markdown takes a list of Breakdown results, not {type(results).__name__} "
                        f"{results!r}"[:200])
    results = list(results)
    for b in results:
        if not isinstance(b, Breakdown):
            raise TypeError(f"breakdown_markdown takes Breakdown results (from psum.flows.breakdown.breakdown), not "
                            f"{type(b).__name__} {b!r}"[:200])
    if not results:
        return ""
    names = [g for g in (*STAGES, *ENERGY_ONLY) if any(b.stage(g)["cells"] or b.stage(g)["energy_fj"]
                                                       for b in results)]
    head = "| stage | " + " | ".join(f"`{b.spec}` GE | fJ/MAC" for b in results) + " |"
    sep = "|---|" + "---:|---:|" * len(results)
    rows = [f"| {g} | " + " | ".join(f"{b.stage(g)['ge']:,.0f} ({b.stage(g)['area_share']:.0%}) | "
                                     f"{b.stage(g)['energy_fj']:,.1f}" for b in results) + " |" for g in names]
    rows.append("| **total** | " + " | ".join(f"**{b.ge:,.0f}** (flat {b.flat_ge:,.0f}) | **{b.energy_per_mac_fj:,.1f}**"
                                              for b in results) + " |")
    paths = [f"- `{b.spec}`: " + " → ".join(f"{r['stage']} {r['delay_ns']:.2f}" for r in b.path)
             + f" = **{b.delay_ns:.2f} ns**" for b in results]
    return "\n".join([f"## {title}", "",
                      "Hierarchical synthesis, one datapath stage per submodule (psum synth --breakdown); "
                      "GE with its share of the unit, energy per MAC from the power proxy.", "",
                      head, sep, *rows, "", "Critical path by stage (ns):", "", *paths, ""])
