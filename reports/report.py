"""The trade-off report, psum's main job: accuracy, area, delay and energy per accumulator format.

:func:`build_report` runs end to end for one model and dataset (default LeNet5 on the built-in
digits):

1. the checkpoint (trained when absent);
2. an accumulator sweep over float formats (several exponent/mantissa splits, fp8_e4m3 operands)
   and integer widths (wrap and saturate, int8 operands), network-wide;
3. a minimum-format search within ``tol`` points of the float32 baseline, network-wide and per
   layer (one layer reduced at a time, the others at float32);
4. for every unit that appears in the cost plots: Verilog generation, a short cocotb+Icarus check
   against the golden model (zero mismatches required) and Yosys synthesis (area, delay, energy);
5. partial-sum statistics (exponent histograms) of the worst layer;
6. ``./<model>-<dataset>/`` (relative to the working directory, or ``$PSUM_RESULTS_DIR``, or
   ``out_dir``): ``index.html`` (self-contained), ``report.md``, PNG+SVG plots and ``data.json`` /
   ``*.csv`` with every number behind every plot. When ``psum fake2true`` wrote its section beside
   it (``../fake2true/fake2true.md``), the report links it.

Every stage caches: sweep rows in ``sweep.jsonl`` (resumable), simulation results in ``sim.jsonl``,
synthesis in the flow cache, so a rerun takes well under a minute.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import time
from pathlib import Path

from psum._util import atomic_path, atomic_write, check_int
from psum.golden import FloatFormat, IntFormat, parse_format
from psum.golden.spec import DEFAULT_OPERANDS

from .document import Document
from . import plots

__all__ = ["ReportConfig", "build_report", "default_out_dir", "fake2true_section", "reduced_run", "rerender", "OPTIONAL_SECTIONS",
           "SweepStage", "MinimaStage", "HardwareStage", "StatsStage"]


@dataclasses.dataclass(frozen=True)
class ReportConfig:
    """What a report covers (the defaults are the built-in main job).

    Parameters
    ----------
    model, dataset : str
        Checkpoint to evaluate (trained first when absent), or a user's model and data as the CLI
        names them: ``FILE.py:FUNCTION``, ``imagefolder`` (with ``data_dir``), ``FILE.py:FUNCTION``
        (see :func:`psum.sweeps.sweep.workload`). Python objects go to :func:`build_report`'s
        ``model`` / ``dataset`` arguments instead.
    checkpoint : str, optional
        Weights for ``model`` (:data:`psum.nets.user.CHECKPOINT_KINDS`).
    groups : tuple of str
        Layer groups (``"layer3"``, ``"layer3.*"``, :func:`psum.sweeps.sweep.select_layers`) whose
        minimum accumulator is searched like a single layer's (the rest float32).
    mx : tuple of str
        Block-scaled operand formats (``mxfp4``, ``nvfp4``, ...; text ``"all"`` or comma-separated)
        of the optional MX section: the minimum accumulator per format (:mod:`psum.reports.mx`).
        Empty: no section.
    tol : float
        Allowed top-1 drop from the float32 baseline, percentage points.
    float_exps : tuple of int
        Exponent widths of the float accumulator curves (mantissa 1..``max_man``).
    int_widths : tuple of int
        Integer accumulator widths (each wrap and saturate).
    limit : int, optional
        Evaluate on the first ``limit`` test images only.
    sim_cycles : int
        Cycles of the cocotb check per unit.
    per_layer : bool
        Per-layer minimum-bits searches.
    power_outputs : int
        Output elements of the busiest layer whose operand streams drive the power proxy.
    iso, iso_macs, iso_clock_ns : bool, int, float
        The iso-throughput comparison (:mod:`psum.reports.iso`): on/off, the MACs per cycle every
        design is replicated to, and the common clock period (ns; default ``clock_ns``, else 5.0).
    glitch : bool
        A timed gate simulation of the headline's float and integer units (psum45 cell delays):
        how much glitching adds to their zero-delay energy (:func:`psum.flows.synth.glitch`).
    iso_designs : tuple of (family, base, extra), optional
        Its design families (:class:`psum.reports.iso.IsoDesign` fields); default
        :data:`psum.reports.iso.ISO_DESIGNS`.
    liberty : str, optional
        A Liberty file (NLDM) every silicon figure is computed on instead of psum45: the per-MAC
        hardware table, the iso-throughput comparison, the breakdown and the glitch figures
        (:mod:`psum.reports.library`; read and checked when :func:`build_report` starts).
    clock_ns : float, optional
        A clock period (ns) at which the per-MAC table also gives each unit's slack, fastest
        clock, energy per MAC and power (:func:`psum.flows.clock.at_clock`).
    breakdown : bool
        The section "where area, delay and energy go": the headline's units synthesised by
        datapath stage (:func:`psum.flows.breakdown.breakdown`).

    Raises
    ------
    ValueError, TypeError
        A field out of range (checked here, before any work: a bad ``jobs`` must not surface
        only after the sweep and the RTL checks ran).
    """

    model: str = "lenet5"
    dataset: str = "digits"
    tol: float = 1.0
    float_exps: tuple = (4, 5, 6)
    max_man: int = 10
    int_widths: tuple = tuple(range(8, 25, 2))
    float_operand: str = str(DEFAULT_OPERANDS["float"])
    int_operand: str = str(DEFAULT_OPERANDS["int"])
    limit: int | None = None
    data_dir: str | None = None
    sim_cycles: int = 3000
    per_layer: bool = True
    jobs: int = 2
    stats_images: int = 64
    power_outputs: int = 8
    checkpoint: str | None = None
    groups: tuple = ()
    iso: bool = True
    iso_macs: int = 32
    iso_clock_ns: float | None = None
    iso_designs: tuple | None = None
    glitch: bool = True
    mx: tuple = ()
    liberty: str | None = None
    clock_ns: float | None = None
    breakdown: bool = True

    def __post_init__(self):
        self._check_types()
        if isinstance(self.tol, bool) or not isinstance(self.tol, (int, float)) or not 0 <= self.tol < 100:
            raise ValueError(f"tol must be a number of percentage points in [0, 100), not {self.tol!r}")
        from psum.flows.power import POWER_MAX_OUTPUTS

        for name, lo, hi in (("max_man", 1, 23), ("sim_cycles", 1, None), ("jobs", 1, None),
                             ("stats_images", 1, None), ("power_outputs", 1, POWER_MAX_OUTPUTS)):
            check_int(name, getattr(self, name), lo, hi)
        check_int("iso_macs", self.iso_macs, 1)
        if self.glitch:  # the glitch figures simulate power_outputs outputs, after the sweeps
            from psum.flows.power import GLITCH_MAX_OUTPUTS

            if self.power_outputs > GLITCH_MAX_OUTPUTS:
                raise ValueError(f"power_outputs must be at most {GLITCH_MAX_OUTPUTS} with glitch=True (the timed "
                                 f"gate simulation's bound), not {self.power_outputs}")
        from psum.flows.clock import check_clock_ns

        if self.clock_ns is not None:
            object.__setattr__(self, "clock_ns", check_clock_ns(self.clock_ns))
        # the iso comparison runs at iso_clock_ns, else at clock_ns, else at 5 ns (as psum report does)
        iso_clock = self.iso_clock_ns if self.iso_clock_ns is not None else self.clock_ns or 5.0
        object.__setattr__(self, "iso_clock_ns", check_clock_ns(iso_clock))
        if self.limit is not None:
            check_int("limit", self.limit, 1)
        for e in self.float_exps:
            check_int("float exponent width", e, 2, 8)
        for w in self.int_widths:
            check_int("integer accumulator width", w, 2, 64)
        parse_format(self.float_operand), parse_format(self.int_operand)
        from .mx import check_mx_operands  # the optional MX section's operand formats (issue 15)

        object.__setattr__(self, "mx", check_mx_operands(self.mx))
        if self.liberty is not None:
            # Why only the type here: a report's data.json keeps the path, and re-rendering it on
            # another machine must not need the file; build_report reads it before any work.
            if not isinstance(self.liberty, (str, os.PathLike)) or not str(self.liberty):
                raise ValueError(f"liberty must be the path of a Liberty file, not {self.liberty!r}")
            object.__setattr__(self, "liberty", str(self.liberty))

    def _check_types(self) -> None:
        """The type of every field that is not a number (numbers are range-checked in
        ``__post_init__``): one line naming the field, before any work (``ReportConfig(model=5)``
        was accepted and failed deep in the sweep). Lists become tuples (a data.json holds lists)."""
        for name, what in (("model", "a built-in model name or FILE.py:FUNCTION"),
                           ("dataset", "a data set name or FILE.py:FUNCTION"),
                           ("float_operand", "a format name such as 'fp8_e4m3'"),
                           ("int_operand", "a format name such as 'int8'")):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise TypeError(f"{name} must be {what}, not {value!r}")
        for name in ("data_dir", "checkpoint"):
            value = getattr(self, name)
            if value is not None:
                if not isinstance(value, (str, os.PathLike)) or not str(value):
                    raise TypeError(f"{name} must be a path or None, not {value!r}")
                object.__setattr__(self, name, str(value))  # data.json keeps the config as JSON
        for name in ("per_layer", "iso", "glitch", "breakdown"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False, not {getattr(self, name)!r}")
        for name, item in (("float_exps", "integers"), ("int_widths", "integers"), ("groups", "layer selections"),
                           ("iso_designs", "(family, base, extra) designs")):
            value = getattr(self, name)
            if value is None and name == "iso_designs":
                continue
            if not isinstance(value, (tuple, list)):
                raise TypeError(f"{name} must be a tuple of {item}, not {value!r}")
            object.__setattr__(self, name, tuple(value))
        for g in self.groups:
            if not isinstance(g, str) or not g:
                raise TypeError(f"groups must hold layer selections (text such as 'layer3.*'), not {g!r}")

    @classmethod
    def quick(cls, **overrides) -> "ReportConfig":
        """A smaller study for a first look (``psum report --quick``): one float exponent width
        (e5, mantissa 1..8), four integer widths, the first 200 test images, no per-layer search.

        ``overrides`` replace any field (``limit=None`` evaluates every test image).
        """
        preset = dict(float_exps=(5,), max_man=8, int_widths=tuple(range(10, 23, 4)), per_layer=False, limit=200)
        return cls(**{**preset, **overrides})


def default_out_dir(model: str, dataset: str) -> Path:
    """``<model>-<dataset>`` under :func:`psum.paths.results_dir` (the working directory, or
    ``$PSUM_RESULTS_DIR``): never inside the installed package. Labels of user models and data
    (``my/net.py:build``, ``imagefolder:/data/x``) become one folder name (``net.py_build``)."""
    import re

    from psum.paths import results_dir

    def slug(label: str) -> str:
        label = label.split(":", 1)[0].rsplit("/", 1)[-1] + ("_" + label.split(":", 1)[1].rsplit("/", 1)[-1]
                                                              if ":" in label else "")
        return re.sub(r"[^\w.+-]+", "_", label).strip("._") or "model"

    return results_dir(f"{slug(model)}-{slug(dataset)}")


def fake2true_section(out: Path) -> Path | None:
    """The ``psum fake2true`` section beside the report folder ``out``
    (``<out>/../fake2true/fake2true.md``), or ``None`` when it has not been written."""
    from psum.quant.fake2true import SECTION_MD

    path = Path(out).parent / "fake2true" / SECTION_MD
    return path if path.is_file() else None


def _acc_bits(fmt_text: str) -> int:
    return parse_format(fmt_text).width


def _is_int_entry(entry: str) -> bool:
    """True for a sweep entry ``FMT[:OVERFLOW]`` whose format is an integer one."""
    return isinstance(parse_format(entry.partition(":")[0]), IntFormat)


def _sweep_entries(cfg: ReportConfig) -> list[str]:
    # built from format objects; the tag (e5m10, not fp16) keeps every entry in e<E>m<M> form
    entries = [FloatFormat(e, m).tag for e in cfg.float_exps for m in range(1, cfg.max_man + 1)]
    entries += [f"{IntFormat(w).tag}:{ov}" for ov in ("wrap", "sat") for w in cfg.int_widths]
    return entries


def _write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    cols = list(dict.fromkeys(k for r in rows for k in r if not isinstance(r[k], (dict, list))))
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def _write_json(path: Path, data) -> None:
    atomic_write(path, json.dumps(data, indent=1, default=str))


def _say(msg: str, quiet: bool) -> None:
    if not quiet:
        import sys

        print(f"[report] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# The stages of the study: each returns a small record that the next ones read
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SweepStage:
    """Stage 2: the network-wide sweep.

    ``points``: one accuracy-vs-bits point per accumulator format
    (:func:`psum.sweeps.sweep.network_points`); ``baseline``: float32 top-1 %; ``n_images``.
    """

    points: list
    baseline: float
    n_images: int | None


@dataclasses.dataclass(frozen=True)
class MinimaStage:
    """Stage 3: the minimum format per family, network-wide (``minima``) and per layer (``layer_min``)."""

    minima: list
    layer_min: list


@dataclasses.dataclass(frozen=True)
class HardwareStage:
    """Stage 4: the units on the cost plots (``rows``: sweep point + check + synthesis figures) and
    the layer whose operand streams drove the check and the power proxy (``power_layer``)."""

    rows: list
    power_layer: str


@dataclasses.dataclass(frozen=True)
class StatsStage:
    """Stage 5: partial-sum exponent histograms of the worst layer (``None`` / ``{}`` without one)."""

    worst_layer: str | None
    histograms: dict


def build_report(config: ReportConfig | None = None, *, model=None, dataset=None, out_dir=None,
                 force_synth: bool = False, progress_enabled: bool | None = None, quiet: bool = False,
                 metric=None, data_options=None) -> dict:
    """Run the whole study for ``config`` and write the report; return the report's data.

    Parameters
    ----------
    config : ReportConfig, optional
        What the study covers (default: the built-in main job; :meth:`ReportConfig.quick` is smaller).
    model : torch.nn.Module, Workload or str, optional
        A user's model object instead of ``config.model`` (:func:`psum.sweeps.sweep.workload`).
    dataset : Dataset, DataLoader or str, optional
        Its data instead of ``config.dataset``.
    metric : callable, optional
        Per-sample score instead of top-1 (:func:`psum.nets.train.evaluate`).
    data_options : dict, optional
        :func:`psum.sweeps.sweep.workload` options (``trust``, ``image_size``, ``model_name``, ...).
    out_dir : str or Path, optional
        Report folder (default :func:`default_out_dir`: ``./<model>-<dataset>``).
    force_synth : bool
        Recompute synthesis instead of reading the flow cache.
    progress_enabled : bool, optional
        Progress bars (default: when stderr is a terminal).
    quiet : bool
        No stage messages on stderr.

    Returns
    -------
    dict
        Everything behind the report (also written to ``data.json``).

    Raises
    ------
    ValueError, FileNotFoundError, psum.errors.PsumError
        Bad configuration, missing data, a tool failure, or an RTL mismatch (one line).
    """
    from psum.sweeps.sweep import select_layers, workload

    from .library import library_info, report_library

    cfg = config or ReportConfig()
    t0 = time.time()
    timings = {}
    # The cell library every silicon figure comes from: a bad Liberty file is one line, here,
    # before the checkpoint, the sweeps or any synthesis.
    lib = report_library(cfg.liberty)

    # -- 1. model and data: the psum checkpoint (yours, else the shipped one, else trained), or
    #       the user's model and data; resolved and checked once, before the output folder exists
    wl = workload(model if model is not None else cfg.model, dataset if dataset is not None else cfg.dataset,
                  checkpoint=cfg.checkpoint, data_dir=cfg.data_dir, metric=metric, train_if_missing=True,
                  data_options=data_options)
    for g in cfg.groups:
        select_layers(wl.net, g)
    net, meta = wl.net, dict(wl.meta, model=wl.model, dataset=wl.dataset)
    cfg = dataclasses.replace(cfg, model=wl.model, dataset=wl.dataset)
    _say(f"model {cfg.model} ({wl.meta.get('checkpoint_kind')}), data {cfg.dataset}", quiet)
    out = Path(out_dir) if out_dir else default_out_dir(cfg.model, cfg.dataset)
    out.mkdir(parents=True, exist_ok=True)
    common = dict(limit=cfg.limit, out=out / "sweep.jsonl", progress_enabled=progress_enabled)
    cfg_test = wl.test
    timings["checkpoint_s"] = time.time() - t0

    t = time.time()
    sweep = _sweep(cfg, wl, common, quiet)
    timings["sweep_s"] = time.time() - t

    t = time.time()
    minima = _minima(cfg, wl, common)
    timings["search_s"] = time.time() - t

    hardware = _hardware(cfg, net, sweep, minima, out, force_synth, quiet, timings, cfg_test, lib)  # sim_s, synth_s

    t = time.time()
    iso = _iso(cfg, wl, minima, common, out, force_synth, quiet, lib) if cfg.iso else None
    timings["iso_s"] = time.time() - t

    t = time.time()
    stats = _stats(cfg, net, minima, cfg_test)
    timings["stats_s"] = time.time() - t

    # -- 6. write ------------------------------------------------------------------------------
    data = _data(cfg, meta, sweep, minima, hardware, stats, timings)
    data["iso"] = dataclasses.asdict(iso) if iso else None
    data["glitch"] = _glitch(cfg, data["headline"], quiet, lib) if cfg.glitch else []
    t = time.time()
    data["breakdown"] = _breakdown(cfg, data["headline"], quiet, lib, force_synth) if cfg.breakdown else []
    timings["breakdown_s"] = time.time() - t
    data["library"] = library_info(lib)
    data["ratios"] = _ratios(data["headline"])
    data["conclusion"] = _conclusion(data["headline"], data["ratios"], sweep.baseline, cfg.tol, data["iso"])
    data["reduced"] = reduced_run(cfg)
    _write_json(out / "data.json", data)
    _write_csv(out / "sweep.csv", data["sweep"])
    _write_csv(out / "hardware.csv", data["hardware"])
    _write_csv(out / "layer_min.csv", data["layer_min"])
    _write_csv(out / "iso.csv", data["iso"]["rows"] if data["iso"] else [])
    _render(cfg, out, data)
    timings["total_s"] = time.time() - t0
    _write_json(out / "data.json", data)
    _say(f"wrote {out / 'index.html'} in {timings['total_s']:.0f} s", quiet)
    return dict(data, out_dir=str(out))  # where it went; not in data.json (no machine paths in results)


def _operands(cfg: ReportConfig, int_acc: bool) -> tuple[str, str]:
    """Operand formats for an integer or a float accumulator: equal 8-bit width."""
    return (cfg.int_operand, cfg.int_operand) if int_acc else (cfg.float_operand, cfg.float_operand)


def _sweep(cfg: ReportConfig, wl, common: dict, quiet: bool) -> SweepStage:
    """-- 2. network-wide sweep: every float and integer accumulator of ``cfg``."""
    from psum.sweeps.sweep import network_points, run_sweep

    entries = _sweep_entries(cfg)
    _say(f"sweep: {len(entries)} accumulator formats", quiet)
    rows = []
    n_float = len(cfg.float_exps) * cfg.max_man
    for group in (entries[:n_float], entries[n_float:]):
        a, b = _operands(cfg, _is_int_entry(group[0]))
        rows += run_sweep(wl, cfg.dataset, group, a=a, b=b, **common)
    base = next(r for r in rows if r["spec"] == "fp32")
    return SweepStage(points=network_points(rows), baseline=base["accuracy"], n_images=base.get("n_images"))


def _minima(cfg: ReportConfig, wl, common: dict) -> MinimaStage:
    """-- 3. minimum formats: network-wide, then per group and per layer (one reduced at a time)."""
    from psum.sweeps.sweep import search_min_acc

    searches = [dict(kind="man", exp_bits=e, family="float", label=f"float e{e}") for e in cfg.float_exps]
    searches += [dict(kind="int", overflow=ov, family=f"int-{ov}", label=f"int {ov}") for ov in ("wrap", "sat")]
    minima = []
    for s in searches:
        a, b = _operands(cfg, s["kind"] == "int")
        res = search_min_acc(wl, cfg.dataset, kind=s["kind"], exp_bits=s.get("exp_bits"),
                             overflow=s.get("overflow"), tol=cfg.tol, a=a, b=b, **common)
        minima.append(dict(family=s["family"], search=s["label"], acc=res["acc"] if res["min"] is not None else None,
                           acc_bits=_acc_bits(res["acc"]) if res["min"] is not None else None,
                           accuracy=res["accuracy"], spec=res["spec"]))
    layer_min = []
    if cfg.per_layer or cfg.groups:
        from psum.nets.models import mac_layers

        best_float = min((m for m in minima if m["family"] == "float" and m["acc"]), key=lambda m: m["acc_bits"], default=None)
        e_best = parse_format(best_float["acc"]).exp_bits if best_float else cfg.float_exps[-1]
        for layer in list(cfg.groups) + (mac_layers(wl.net) if cfg.per_layer else []):
            for fam, kw in (("float", dict(kind="man", exp_bits=e_best)), ("int-wrap", dict(kind="int", overflow="wrap")),
                            ("int-sat", dict(kind="int", overflow="sat"))):
                a, b = _operands(cfg, kw["kind"] == "int")
                res = search_min_acc(wl, cfg.dataset, layer=layer, tol=cfg.tol, a=a, b=b, **kw, **common)
                layer_min.append(dict(layer=layer, group=layer in cfg.groups, family=fam,
                                      acc=res["acc"] if res["min"] is not None else None,
                                      min_bits=_acc_bits(res["acc"]) if res["min"] is not None else None,
                                      accuracy=res["accuracy"]))
    return MinimaStage(minima=minima, layer_min=layer_min)


def _hardware(cfg: ReportConfig, net, sweep: SweepStage, minima: MinimaStage, out: Path, force_synth: bool,
              quiet: bool, timings: dict, test, lib=None) -> HardwareStage:
    """-- 4. hardware: the units on the cost plots, checked in Icarus (zero mismatches) and
    synthesised (onto ``lib``, a Liberty library, or psum45); sets ``timings["sim_s"]`` and
    ``timings["synth_s"]``. With ``cfg.clock_ns`` every row also holds the unit at that clock;
    with a Liberty library its area in the file's unit and its leakage."""
    from psum.flows.clock import at_clock
    from psum.flows.synth import synthesize_many

    from .checked import checked_sim, sim_results

    t = time.time()
    hw_rows = _hardware_points(cfg, sweep.points, minima.minima, sweep.baseline)
    specs = sorted({r["spec"] for r in hw_rows})
    _say(f"hardware: {len(specs)} units (cocotb check + synthesis)", quiet)
    # The check replays the busiest layer's recorded operand streams on top of the directed and
    # random stimulus (the same streams then drive the power proxy).
    streams_for = _layer_streams(cfg, net, minima.layer_min, test)
    sims = sim_results(out)
    checked = {s: checked_sim(sims, s, cycles=cfg.sim_cycles, seed=0, layer=streams_for.layer,
                              streams_for=streams_for) for s in specs}
    timings["sim_s"] = time.time() - t
    t = time.time()
    synth = {str(r.spec): r for r in synthesize_many(specs, jobs=cfg.jobs, force=force_synth,
                                                     streams_for=streams_for, liberty=lib)}
    for r in hw_rows:
        s = synth[r["spec"]]
        r.update(ge=s.ge, energy_per_mac_fj=s.energy_per_mac_fj, delay_ns=s.delay_ns, depth=s.depth, ffs=s.ffs,
                 idle_fraction=s.idle_fraction,
                 sim_cycles=checked[r["spec"]]["checked"])
        if lib is not None:  # only then: a psum45 report keeps its columns (and data.json its shape)
            r.update(area=s.area_um2, leakage_nw=s.power.get("leakage_nw", 0.0))
        if cfg.clock_ns is not None:
            c = at_clock(s, cfg.clock_ns)
            r.update(clock_ns=c.clock_ns, slack_ns=c.slack_ns, met_clock=c.met, fmax_mhz=c.fmax_mhz,
                     energy_at_clock_fj=c.energy_per_mac_fj, power_uw=c.power_uw, idle_power_uw=c.idle_power_uw)
    timings["synth_s"] = time.time() - t
    return HardwareStage(rows=hw_rows, power_layer=streams_for.layer)


def _iso(cfg: ReportConfig, wl, minima: MinimaStage, common: dict, out: Path, force_synth: bool, quiet: bool,
         lib=None):
    """-- 4b. iso-throughput: :func:`psum.reports.iso.run_iso` (each design family with its own
    accumulator, checked in Icarus, at the lowest pipeline depth that meets ``cfg.iso_clock_ns``,
    replicated to ``cfg.iso_macs`` sustained MACs per cycle), on the report's library ``lib``."""
    from .iso import run_iso

    return run_iso(cfg, wl, minima.minima, common, out, force_synth=force_synth, say=lambda msg: _say(msg, quiet),
                   liberty=lib)


def _glitch(cfg: ReportConfig, headline: list[dict], quiet: bool, lib=None) -> list[dict]:
    """-- 4c. glitches: the headline's units in a timed gate simulation (digits stimulus,
    ``cfg.power_outputs`` outputs; cell delays of ``lib``, a Liberty library, or psum45):
    ``[{design, acc, spec, zero_delay_fj_per_mac, timed_fj_per_mac, glitch_share}]``."""
    from psum.flows.synth import glitch

    rows = []
    for r in headline:
        _say(f"glitches: {r['design']} {r['acc']} (timed gate simulation)", quiet)
        g = glitch(r["spec"], n_outputs=cfg.power_outputs, liberty=lib)
        rows.append(dict(design=r["design"], acc=r["acc"], spec=r["spec"], **dataclasses.asdict(g)))
    return rows


def _breakdown(cfg: ReportConfig, headline: list[dict], quiet: bool, lib=None, force: bool = False) -> list[dict]:
    """-- 4d. where area, delay and energy go: the headline's units by datapath stage
    (:func:`psum.flows.breakdown.breakdown`, hierarchical synthesis onto ``lib`` or psum45, cached;
    power proxy on the digits stimulus with ``cfg.power_outputs`` outputs):
    ``[{design, acc, **Breakdown fields}]``."""
    from psum.flows.breakdown import breakdown

    rows = []
    for r in headline:
        _say(f"breakdown: {r['design']} {r['acc']} (hierarchical synthesis)", quiet)
        b = breakdown(r["spec"], n_outputs=cfg.power_outputs, liberty=lib, force=force)
        rows.append(dict(design=r["design"], acc=r["acc"], **b.to_dict()))
    return rows


def _stats(cfg: ReportConfig, net, minima: MinimaStage, test) -> StatsStage:
    """-- 5. partial-sum statistics of the worst layer."""
    worst, hists = _exponent_histograms(cfg, net, minima.layer_min, minima.minima, test)
    return StatsStage(worst_layer=worst, histograms=hists)


def _data(cfg: ReportConfig, meta: dict, sweep: SweepStage, minima: MinimaStage, hardware: HardwareStage,
          stats: StatsStage, timings: dict) -> dict:
    """Everything behind the report, as ``data.json`` stores it (the keys are a file format)."""
    return dict(config=dataclasses.asdict(cfg), baseline_accuracy=sweep.baseline, n_images=sweep.n_images,
                checkpoint=dict((k, meta.get(k)) for k in ("model", "dataset", "accuracy", "seed", "epochs", "width")),
                sweep=sweep.points, minima=minima.minima, layer_min=minima.layer_min, hardware=hardware.rows,
                headline=_headline(hardware.rows, minima.minima, sweep.baseline, cfg.tol),
                worst_layer=stats.worst_layer, exponent_histograms=stats.histograms,
                power_layer=hardware.power_layer, timings=timings)


def _hardware_points(cfg: ReportConfig, sweep: list[dict], minima: list[dict], baseline: float) -> list[dict]:
    """Units to synthesise: per family, the minimum and the points around the knee of its curve.

    Float: the best exponent width's curve from 3 bits below its minimum to 3 above; integer: the
    same window around each minimum. Both at equal (8-bit) operand width.
    """
    points = []
    for m in minima:
        if not m["acc"]:
            continue
        fam = m["family"]
        # compare formats, not their text: a sweep row says "fp16" where the search says "e5m10"
        m_fmt = parse_format(m["acc"])
        if fam == "float":
            curve = [r for r in sweep if r["family"] == "float" and parse_format(r["acc"]).exp_bits == m_fmt.exp_bits]
        else:
            curve = [r for r in sweep if r["family"] == fam]
        curve.sort(key=lambda r: r["acc_bits"])
        for r in curve:
            is_min = parse_format(r["acc"]) == m_fmt
            if abs(r["acc_bits"] - m["acc_bits"]) <= 3 or is_min:
                points.append(dict(r, search=m["search"], is_min=is_min))
        # the minimum itself may sit between sweep points (e.g. an odd integer width)
        if not any(parse_format(p["acc"]) == m_fmt and p["family"] == fam for p in points):
            points.append(dict(family=fam, acc=m["acc"], acc_bits=m["acc_bits"], accuracy=m["accuracy"],
                               spec=m["spec"], search=m["search"], is_min=True))
    uniq = {}
    for p in points:
        uniq.setdefault((p["family"], parse_format(p["acc"])), p)
    return sorted(uniq.values(), key=lambda p: (p["family"], p["acc_bits"]))


def _layer_streams(cfg: ReportConfig, net, layer_min: list[dict], test):
    """``streams_for(spec)``: operand streams of real output elements of the model's busiest layer.

    The power proxy toggles each unit with what it would see in this network: the layer with the
    longest dot products (the most MACs per output), its quantised operands and bias loads, recorded
    by :func:`psum.golden.emulation.record.record_streams` under the unit's own spec.
    """
    import torch

    from psum.golden.emulation.record import as_streams, record_streams
    from psum.nets.user import calibration_batch

    x = calibration_batch(test, 16)
    fan_in = {name: mod.weight[0].numel() for name, mod in net.named_modules()
              if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear))}
    layer = max(fan_in, key=fan_in.get)

    def streams_for(spec):
        return as_streams(record_streams(net, spec, layer, x, n_outputs=cfg.power_outputs, seed=0))

    streams_for.layer = layer
    return streams_for


def _headline(hw_rows: list[dict], minima: list[dict], baseline: float, tol: float) -> list[dict]:
    """Cheapest (by area) float and integer accumulators within tolerance (ratios: :func:`_ratios`)."""
    ok = [r for r in hw_rows if r["accuracy"] >= baseline - tol and r.get("ge")]
    best = {}
    for fam in ("float", "int-wrap", "int-sat"):
        cands = [r for r in ok if r["family"] == fam]
        if cands:
            best[fam] = min(cands, key=lambda r: r["ge"])
    return [dict(design=fam, acc=r["acc"], bits=r["acc_bits"], accuracy=r["accuracy"], ge=r["ge"],
                 energy_per_mac_fj=r["energy_per_mac_fj"], delay_ns=r["delay_ns"], spec=r["spec"])
            for fam, r in best.items()]


# quantity, headline key, unit of the quantity (the ratio itself is unit-less: "x")
_RATIO_QUANTITIES = (("accumulator width", "bits", "bits"), ("area", "ge", "GE"),
                     ("energy per MAC", "energy_per_mac_fj", "fJ"), ("delay", "delay_ns", "ns"))


def _ratios(headline: list[dict]) -> list[dict]:
    """Float against the cheapest integer design of the headline, one row per quantity:
    ``quantity``, ``float``, ``integer``, ``unit``, ``ratio`` (float / integer, times) and
    ``compared`` (``"float / int-sat"``). Empty without both a float and an integer design."""
    flt = next((r for r in headline if r["design"] == "float"), None)
    ints = [r for r in headline if r["design"].startswith("int")]
    if flt is None or not ints:
        return []
    i = min(ints, key=lambda r: r["ge"])
    return [dict(quantity=q, unit=unit, float=flt[k], integer=i[k], ratio=flt[k] / i[k],
                 compared=f"float {flt['acc']} / {i['design']} {i['acc']}")
            for q, k, unit in _RATIO_QUANTITIES if i[k]]


def _conclusion(headline: list[dict], ratios: list[dict], baseline: float, tol: float, iso: dict | None = None) -> str:
    """The report's answer, generated from its own numbers: the iso-throughput verdict (when the
    report has one) first, then the per-MAC comparison."""
    per_mac = _per_mac_conclusion(headline, ratios, baseline, tol)
    if not iso:
        return per_mac
    from .iso import iso_sentence

    return f"{iso_sentence(iso)} Per MAC: {per_mac[0].lower()}{per_mac[1:]}"


def _per_mac_conclusion(headline: list[dict], ratios: list[dict], baseline: float, tol: float) -> str:
    within = f"within {tol:g} point(s) of the float32 baseline ({baseline:.2f} % top-1)"
    if not headline:
        return f"No synthesised accumulator stays {within}; widen the sweep (more bits) or raise the tolerance."
    if not ratios:
        r = headline[0]
        return (f"Only {r['design']} accumulators stay {within}: the cheapest is {r['acc']} ({r['bits']} bits, "
                f"{r['ge']:,.0f} GE, {r['delay_ns']:.2f} ns).")
    q = {r["quantity"]: r for r in ratios}
    flt = next(r for r in headline if r["design"] == "float")
    ints = min((r for r in headline if r["design"].startswith("int")), key=lambda r: r["ge"])

    parts = [f"{q[n]['ratio']:.2f}x the {n}" for n in ("area", "energy per MAC", "delay") if n in q]
    needs = parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"
    cheaper = "smaller" if q.get("area", {}).get("ratio", 1.0) < 1 else "larger"
    return (f"Within {tol:g} point(s) of the float32 baseline ({baseline:.2f} % top-1), the cheapest float "
            f"accumulator, {flt['acc']} ({flt['bits']} bits), is {cheaper} than the cheapest integer one, "
            f"{ints['acc']} {ints['design'][4:]} ({ints['bits']} bits): it needs {needs} of the integer unit.")


def _exponent_histograms(cfg: ReportConfig, net, layer_min: list[dict], minima: list[dict], test):
    """Partial-sum exponent histograms of the worst layer at the minimum float format and one bit less."""
    import torch

    from psum.golden.emulation.layers import emulate
    from psum.golden.emulation.stats import collect_stats
    from psum.nets.user import calibration_batch
    from psum.sweeps.sweep import make_spec

    flt = [m for m in minima if m["family"] == "float" and m["acc"]]
    if not flt:
        return None, {}
    best = min(flt, key=lambda m: m["acc_bits"])
    per_layer = [r for r in layer_min if r["family"] == "float" and r["min_bits"] and not r.get("group")]
    worst = max(per_layer, key=lambda r: r["min_bits"])["layer"] if per_layer else None
    if worst is None:
        return None, {}
    x = calibration_batch(test, cfg.stats_images)
    fmt = parse_format(best["acc"])
    narrower = fmt.replace(man_bits=max(fmt.man_bits - 2, 1)).tag
    hists = {}
    for acc in (best["acc"], narrower):
        spec = make_spec(acc, a=cfg.float_operand, b=cfg.float_operand)
        q = emulate(net, {worst: spec}, stats=True)
        with torch.no_grad():
            q(x)
        st = collect_stats(q)[worst]
        h = {int(k): int(v) for k, v in st["exp_hist"].items()}
        f = parse_format(acc)
        hists[f"{acc} ({worst})"] = dict(exponents=sorted(h), counts=[h[k] for k in sorted(h)], emax=f.emax,
                                         emin=f.emin, swamp=st["swamp"], overflow=st["overflow"],
                                         cancel=st["cancel"], max_abs=st["max_abs"])
    return worst, hists


def rerender(data_file, out_dir=None) -> dict:
    """Write a report's document and figures again from its ``data.json``, without rerunning the study.

    For a new renderer over committed results (and for results written before the unified key
    names, :mod:`psum.keys`): the ratios, conclusion and reduced-run banner are derived from the
    data when the file predates them.

    Parameters
    ----------
    data_file : str or Path
        A report's ``data.json`` (or the report folder holding it).
    out_dir : str or Path, optional
        Where to write (default: beside ``data_file``; ``data.json`` is then rewritten with the
        standard key names).

    Returns
    -------
    dict
        The report's data as rendered.

    Raises
    ------
    FileNotFoundError
        No ``data.json`` there.
    ValueError
        A file that is not a psum report's data.
    """
    from psum.keys import unify_keys

    data_file = Path(data_file)
    if data_file.exists() and not data_file.is_dir() and data_file.suffix != ".json":
        # notes.txt said "no report data notes.txt/data.json", a path that cannot exist
        raise ValueError(f"{data_file} is not a report folder or its data.json (give a report folder or its data.json)")
    if data_file.is_dir() or data_file.suffix != ".json":
        data_file = data_file / "data.json"
    if not data_file.is_file():
        raise FileNotFoundError(f"no report data {data_file} (give a report folder or its data.json)")
    try:
        data = json.loads(data_file.read_text())
    except ValueError:
        raise ValueError(f"{data_file} is not JSON") from None
    if not isinstance(data, dict) or not {"config", "headline", "hardware", "sweep"} <= set(data):
        raise ValueError(f"{data_file} is not a psum report's data.json")
    known = {f.name for f in dataclasses.fields(ReportConfig)}
    if not isinstance(data["config"], dict):
        raise ValueError(f"{data_file}: config is not a JSON object")
    try:
        cfg = ReportConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in data["config"].items() if k in known})
    except (TypeError, ValueError) as exc:  # the CLI prints a ValueError as one line, a TypeError would be a traceback
        raise ValueError(f"{data_file}: config: {exc}") from None
    data["hardware"] = [unify_keys(r) for r in data["hardware"]]
    # the ratio row of old files becomes the ratios table
    data["headline"] = [unify_keys(r) for r in data["headline"] if r.get("spec") != "ratio"]
    data["ratios"] = _ratios(data["headline"])
    data["conclusion"] = _conclusion(data["headline"], data["ratios"], data["baseline_accuracy"], cfg.tol,
                                     data.get("iso"))
    data["reduced"] = reduced_run(cfg)
    out = Path(out_dir) if out_dir is not None else data_file.parent
    out.mkdir(parents=True, exist_ok=True)
    data["out_dir"] = str(out)
    _render(cfg, out, data)
    if out_dir is None or out.resolve() == data_file.parent.resolve():
        saved = dict(data)
        saved.pop("out_dir")  # a committed file must not name the machine's folders
        _write_json(out / "data.json", saved)
        _write_csv(out / "hardware.csv", data["hardware"])
    return data


def reduced_run(cfg: ReportConfig) -> str | None:
    """What a reduced study (``--quick``, ``--limit``, a narrower sweep) left out, as one sentence
    for the report's banner; ``None`` for the full study."""
    full = ReportConfig(model=cfg.model, dataset=cfg.dataset)
    cut = []
    if cfg.limit is not None:
        cut.append(f"accuracy on the first {cfg.limit} test images only")
    if (cfg.float_exps, cfg.max_man, cfg.int_widths) != (full.float_exps, full.max_man, full.int_widths):
        cut.append(f"{len(cfg.float_exps) * cfg.max_man} float and {2 * len(cfg.int_widths)} integer accumulators "
                   f"swept (full study: {len(full.float_exps) * full.max_man} and {2 * len(full.int_widths)})")
    if not cfg.per_layer and full.per_layer:
        cut.append("no per-layer search")
    if not cut:
        return None
    return ("Reduced run: " + "; ".join(cut) + ". Numbers are indicative; run `psum report` without --quick/--limit "
            "for the full study.")


# Optional sections: callables ``section(cfg, out, data, doc)`` that add headings, tables or
# figures to the document before "Reproduce" when they have something to show (a studies link,
# silicon results, ...). Another module appends to this list; a section that has nothing adds
# nothing, so the contents list only what exists.
def _studies_section(cfg, out: Path, data: dict, doc: Document) -> None:
    """Links to the ``psum study`` sections found beside the report (psum against published results)."""
    from psum.studies.common import STUDIES, section_path

    found = [(n, section_path(n, Path(out).parent)) for n in STUDIES]
    if any(path for _, path in found):
        doc.heading("psum against published results")
        for n, path in found:
            if path is not None:
                rel = Path(os.path.relpath(path, out)).as_posix()
                doc.link(rel, rel, before=f"`psum study {n}`: ", after=".")


def _mx_section(cfg, out: Path, data: dict, doc: Document) -> None:
    from .mx import mx_section

    mx_section(cfg, out, data, doc)


OPTIONAL_SECTIONS: list = [_studies_section, _mx_section]


def _fake2true_figure(out: Path, doc: Document) -> None:
    """The fake-to-true top-1 figure from ``../fake2true/fake2true.json`` when it exists."""
    path = Path(out).parent / "fake2true" / "fake2true.json"
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    results = [results] if isinstance(results, dict) else results
    if not results or not all(isinstance(r, dict) and r.get("formats") for r in results):
        return
    plots.plot_fake2true(results, out)
    doc.figure("fake2true_top1.png", "Top-1 of the fake-quantised graph (arithmetic in each float format) beside "
                                     "the true integer program (dashed), per model and remedy setting; every bar "
                                     "carries its value, so 0 % shows as 0.0.")


def _iso_section(iso: dict, out: Path, doc: Document, what: str, library: dict | None = None) -> None:
    """Headline: the iso-throughput table and figure (:mod:`psum.reports.iso`)."""
    from .iso import iso_method, iso_sentence

    n, t = iso["macs_per_cycle"], iso["clock_ns"]
    doc.heading(f"Headline: every design family at {n} MACs per cycle, {t:g} ns clock")
    doc.para(iso_sentence(iso) + " " + iso_method(iso))
    rows = [dict(r, acc=r["spec"] and r["spec"].split("acc=", 1)[1].split(",")[0],
                 verdict="ok" if r.get("meets_accuracy") and r.get("met_clock") else r.get("reason", "")) for r in iso["rows"]]
    cols = ["family", "acc", "impl", "accuracy", "unit_ge", "unit_macs", "copies", "ge", "energy_per_mac_fj",
            "power_uw", "delay_ns", "slack_ns", "verdict"]
    heads = ["design", "accumulator", "implementation", "top-1 (%)", "unit area (GE)", "MACs/cycle per unit",
             "copies", "area (GE)", "energy/MAC (fJ)", "power (uW)", "delay (ns)", "slack (ns)", "verdict"]
    if (library or {}).get("kind") == "liberty":  # the replicated area in the file's own unit too
        cols.insert(8, "area")
        heads.insert(8, f"area ({library['name']} units)")
    doc.table(rows, cols, heads,
              formats=dict(accuracy="{:.2f}", unit_ge="{:,.0f}", unit_macs="{:.2f}", ge="{:,.0f}", area="{:,.1f}",
                           energy_per_mac_fj="{:,.1f}", power_uw="{:,.0f}", delay_ns="{:.2f}", slack_ns="{:+.2f}"))
    searched = [r for r in iso["rows"] if r.get("candidates")]
    if searched:
        doc.para("Own accumulator of the searched designs (top-1 % of each candidate evaluated by the search): "
                 + "; ".join(f"{r['family']}: " + ", ".join(f"{k} {v:.2f}" for k, v in r["candidates"].items())
                             for r in searched) + ".")
    plotted = [r for r in iso["rows"] if r.get("ge")]
    if plotted:
        plots.plot_iso_throughput(plotted, out, f"Area vs energy at {n} MACs/cycle and {t:g} ns, {what}")
        doc.figure("iso_throughput.png", f"Each design replicated to {n} MACs per cycle at a {t:g} ns clock: total "
                                         "area against energy per MAC (lower left is better). Hollow markers: the "
                                         "design misses the accuracy tolerance or the clock.")


def _hardware_columns(hw: list[dict], library: dict | None) -> tuple[list, list, dict]:
    """Columns, headers and formats of the per-MAC hardware table: the standard ones, plus the
    Liberty area and leakage, and the figures at a clock, when the rows hold them."""
    cols = ["family", "acc", "acc_bits", "accuracy", "ge", "energy_per_mac_fj", "delay_ns", "area_delay",
            "depth", "ffs", "sim_cycles"]
    heads = ["family", "accumulator", "bits", "top-1 (%)", "area (GE)", "energy/MAC (fJ)", "delay (ns)",
             "area x delay (GE ns)", "depth (gates)", "flip-flops", "cycles checked"]
    fmts = dict(accuracy="{:.2f}", ge="{:,.0f}", energy_per_mac_fj="{:,.1f}", delay_ns="{:.2f}",
                area_delay="{:,.0f}")
    if any("area" in r for r in hw):
        name = (library or {}).get("name", "library")
        cols[5:5] = ["area", "leakage_nw"]
        heads[5:5] = [f"area ({name} units)", "leakage (nW)"]
        fmts.update(area="{:,.1f}", leakage_nw="{:,.1f}")
    if any(r.get("clock_ns") for r in hw):
        cols += ["slack_ns", "fmax_mhz", "energy_at_clock_fj", "power_uw"]
        heads += ["slack (ns)", "fastest clock (MHz)", "energy/MAC at clock (fJ)", "power at clock (uW)"]
        fmts.update(slack_ns="{:+.2f}", fmax_mhz="{:,.0f}", energy_at_clock_fj="{:,.1f}", power_uw="{:,.1f}")
    return cols, heads, fmts


def _breakdown_section(rows: list[dict], doc: Document) -> None:
    """Where area, delay and energy go: the headline units by datapath stage (``data["breakdown"]``)."""
    doc.heading("Where area, delay and energy go: the headline units by datapath stage")
    units = [f"{r['design']} {r['acc']}" for r in rows]
    names = list(dict.fromkeys(st["stage"] for r in rows for st in r["stages"]))
    table = []
    for name in names:
        line = dict(stage=name)
        for i, r in enumerate(rows):
            st = next((x for x in r["stages"] if x["stage"] == name), None)
            line[f"ge{i}"] = st["ge"] if st else None
            line[f"share{i}"] = 100 * st["area_share"] if st else None
            line[f"fj{i}"] = st["energy_fj"] if st else None
        table.append(line)
    table.append(dict(stage="total (hierarchical)", **{k: v for i, r in enumerate(rows)
                                                         for k, v in ((f"ge{i}", r["ge"]), (f"share{i}", 100.0),
                                                                      (f"fj{i}", r["energy_per_mac_fj"]))}))
    cols, heads, fmts = ["stage"], ["stage"], {}
    for i, u in enumerate(units):
        cols += [f"ge{i}", f"share{i}", f"fj{i}"]
        heads += [f"{u}: GE", "area (%)", "fJ/MAC"]
        fmts.update({f"ge{i}": "{:,.0f}", f"share{i}": "{:.1f}", f"fj{i}": "{:,.1f}"})
    doc.para("Each unit synthesised with one datapath stage per submodule (`psum synth --breakdown`): area by "
             "stage with its share, energy per MAC by the stage of each net's driving cell (clock and flip-flops "
             "in register, operand ports' load in inputs). Keeping the boundaries costs "
             + ", ".join(f"{u} {100 * r['hierarchy_overhead']:+.1f} %" for u, r in zip(units, rows))
             + " of the flat area. Critical path by stage (ns): "
             + "; ".join(f"{u}: " + " -> ".join(f"{p['stage']} {p['delay_ns']:.2f}" for p in r["path"])
                         + f" = {r['delay_ns']:.2f} ns" for u, r in zip(units, rows)) + ".")
    doc.table(table, cols, heads, formats=fmts)


def _render(cfg: ReportConfig, out: Path, data: dict) -> None:
    from psum.keys import unify_keys

    from .library import library_sentence

    base = data["baseline_accuracy"]
    operands = f"float acc. with {cfg.float_operand} x {cfg.float_operand}, integer with {cfg.int_operand} x {cfg.int_operand}"
    what = f"{cfg.model} on {cfg.dataset}"
    title = f"psum trade-off report: {what}"
    hw = [unify_keys(r) for r in data["hardware"]]  # an old data.json says energy_fj
    headline = [unify_keys(r) for r in data["headline"]]
    doc = Document(title)
    if data.get("reduced"):
        doc.note(data["reduced"])
    if data.get("conclusion"):
        doc.lead("Conclusion.", data["conclusion"])
    doc.toc()
    doc.para(f"Float32 baseline top-1 {base:.2f} % on {data['n_images']} test images; tolerance {cfg.tol:g} "
             f"point(s). Float accumulators take {cfg.float_operand} x {cfg.float_operand} operands, integer "
             f"ones {cfg.int_operand} x {cfg.int_operand}: equal 8-bit operand width. Every partial sum is "
             f"rounded exactly as the MAC unit does (`psum.golden.emulation.layers`), every unit below was checked "
             f"bit-exact in Icarus against the golden model and {library_sentence(data.get('library'))}.")
    if data.get("iso"):
        _iso_section(data["iso"], out, doc, what, data.get("library"))
    doc.heading("Per MAC: cheapest float vs cheapest integer accumulator within tolerance")
    doc.table(headline, ["design", "acc", "bits", "accuracy", "ge", "energy_per_mac_fj", "delay_ns"],
              ["design", "accumulator", "bits", "top-1 (%)", "area (GE)", "energy/MAC (fJ)", "delay (ns)"],
              formats=dict(accuracy="{:.2f}", ge="{:,.0f}", energy_per_mac_fj="{:,.1f}", delay_ns="{:.2f}"))
    if data.get("ratios"):
        doc.para(f"Ratios, {data['ratios'][0]['compared']} (less than 1: the float design needs less):")
        doc.table(data["ratios"], ["quantity", "unit", "float", "integer", "ratio"],
                  ["quantity", "unit", "float", "integer", "float / integer (x)"],
                  formats=dict(float="{:,.4g}", integer="{:,.4g}", ratio="{:.2f}"))  # rows differ in unit
    if data.get("glitch"):
        lib = data.get("library") or {}
        delays = ("psum45 cell delays" if lib.get("kind", "psum45") == "psum45"
                  else f"the NLDM rise/fall cell delays of {lib['name']}")
        doc.para(f"Glitches (timed gate simulation with {delays}, digits stimulus): " + "; ".join(
            f"{g['design']} {g['acc']} {g['timed_fj_per_mac']:,.1f} fJ/MAC against {g['zero_delay_fj_per_mac']:,.1f} "
            f"zero-delay ({100 * g['glitch_share']:.0f} % of its switching energy is glitches)" for g in data["glitch"])
            + ". The cost figures below are zero-delay (`psum synth --glitch` for any unit).")
    doc.heading("Accuracy vs accumulator bits")
    plots.plot_accuracy_vs_bits(data["sweep"], base, cfg.tol, out,
                                title=f"Top-1 vs accumulator width, {what} ({operands})")
    doc.figure("accuracy_vs_bits.png", "Top-1 accuracy per accumulator format (network-wide): the full range "
                                       "(left) and the band where the tolerance decides (right).")
    doc.heading("Minimum accumulator per family (network-wide)")
    doc.table(data["minima"], ["search", "acc", "acc_bits", "accuracy"], ["search", "minimum format", "bits", "top-1 (%)"],
              formats=dict(accuracy="{:.2f}"))
    doc.heading("Area, energy and delay vs accuracy")
    for r in hw:  # area x delay: the cost of a unit at the clock it allows (GE * ns)
        r["area_delay"] = r["ge"] * r["delay_ns"] if r.get("ge") and r.get("delay_ns") else None
    for key, label, stem, cap in (
            ("ge", "area (NAND2 equivalents, GE)", "area_vs_accuracy",
             "Synthesised area against accuracy; every unit labelled, the dotted line is the Pareto front, the dashed "
             "line the float32 baseline, the band the tolerance."),
            ("energy_per_mac_fj", "energy per MAC (fJ)", "energy_vs_accuracy",
             f"Energy per MAC: toggle counts of the gate netlist replaying {cfg.power_outputs} real output elements "
             f"of layer {data['power_layer']}."),
            ("area_delay", "area x delay (GE x ns)", "area_delay_vs_accuracy",
             "Area x critical-path delay: the area a unit costs at the clock it allows (lower is better).")):
        plots.plot_cost_vs_accuracy(hw, key, label, out, stem, f"{label.split(' (')[0].capitalize()} vs top-1, "
                                    f"{what} ({operands})", baseline=base, tol=cfg.tol)
        doc.figure(f"{stem}.png", cap)
    plots.plot_delay_vs_bits(hw, out, f"Critical-path delay and clock vs accumulator width, {what} ({operands})")
    doc.figure("delay_vs_bits.png", "Critical-path delay (left axis) and the maximum clock it allows (right axis) "
                                    "per synthesised unit.")
    cols, heads, fmts = _hardware_columns(hw, data.get("library"))
    doc.table(hw, cols, heads, formats=fmts)
    clocked = [r for r in hw if r.get("clock_ns")]
    if clocked:
        t = clocked[0]["clock_ns"]
        missed = [f"{r['family']} {r['acc']}" for r in clocked if not r.get("met_clock")]
        doc.para(f"At a {t:g} ns clock ({1e3 / t:,.0f} MHz): slack = {t:g} ns - delay (negative: the unit misses "
                 "the clock), the fastest clock 1 / delay, energy per MAC and power at that clock (active energy per "
                 "cycle / period, leakage included when the library has it; `psum.flows.clock.at_clock`). "
                 + (f"Missing it: {', '.join(missed)}." if missed else "Every unit meets it."))
    if data.get("breakdown"):
        _breakdown_section(data["breakdown"], doc)
    if data["layer_min"]:
        doc.heading("Per-layer and per-group minimum accumulator (one layer or group reduced, the rest float32)")
        plots.plot_layer_min_bits(data["layer_min"], out, f"Minimum accumulator bits per layer, {what} ({operands})")
        doc.figure("layer_min_bits.png", "Minimum accumulator width per layer and family.")
        doc.table(data["layer_min"], ["layer", "family", "acc", "min_bits", "accuracy"],
                  ["layer", "family", "minimum format", "bits", "top-1 (%)"], formats=dict(accuracy="{:.2f}"))
    if data["exponent_histograms"]:
        doc.heading(f"Why formats fail: partial sums of the worst layer ({data['worst_layer']})")
        plots.plot_exponent_histograms(data["exponent_histograms"], out,
                                       f"Partial-sum exponents in {data['worst_layer']}, {what} "
                                       f"({cfg.float_operand} operands)")
        doc.figure("psum_exponents.png", "Histogram of partial-sum exponents (accumulator units); shaded: exponents "
                                         "the format cannot hold. The passing format (left) keeps its sums in range.")
        doc.table([dict(format=k, swamp=100 * v["swamp"], overflow=100 * v["overflow"], cancel=100 * v["cancel"],
                        max_abs=v["max_abs"]) for k, v in data["exponent_histograms"].items()],
                  ["format", "swamp", "overflow", "cancel", "max_abs"],
                  ["format", "swamped steps (%)", "overflowed steps (%)", "cancelling steps (%)", "max |partial sum|"],
                  formats=dict(swamp="{:.2f}", overflow="{:.2f}", cancel="{:.2f}", max_abs="{:.4g}"))
    f2t = fake2true_section(out)
    if f2t is not None:
        rel = Path(os.path.relpath(f2t, out)).as_posix()
        doc.heading("Fake-quantised vs true-integer conversion")
        _fake2true_figure(out, doc)
        doc.link(rel, rel, before="Fake-quantised float graphs against the true integer program, per layer "
                                  "and end to end: ", after=" (written by `psum fake2true`).")
    for section in OPTIONAL_SECTIONS:
        section(cfg, out, data, doc)
    doc.heading("Reproduce")
    data_arg = (f"--dataset imagefolder --data-dir {cfg.dataset.split(':', 1)[1]}"
                if cfg.dataset.startswith("imagefolder:") else f"--dataset {cfg.dataset}")
    extra = f" --checkpoint {cfg.checkpoint}" if cfg.checkpoint else ""
    extra += "".join(f" --layer '{g}'" for g in cfg.groups)
    lib = data.get("library") or {}
    if lib.get("kind") == "liberty":  # the file's name only: results name no machine paths
        extra += f" --liberty {lib['file']}"
    if cfg.clock_ns is not None:
        extra += f" --clock-ns {cfg.clock_ns:g}"
    doc.para(f"`psum report --model {cfg.model} {data_arg}{extra}`; data behind every plot: `data.json`, "
             "`sweep.csv`, `hardware.csv`, `layer_min.csv`; every figure also as SVG and PDF. Timings (s): "
             + ", ".join(f"{k} {v:.0f}" for k, v in data["timings"].items()))
    doc.write(out)
