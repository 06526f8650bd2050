"""Iso-throughput comparison: every design family at a fixed number of MACs per cycle and one clock.

A per-MAC comparison (one sequential float MAC against one integer MAC) is not what a hardware
team builds: it needs, say, 32 MACs per cycle at 400 MHz, and asks which *design* delivers that
for the least area and energy while the network stays within tolerance. Here each design family
is one unit type (:class:`IsoDesign`: an accumulator and an order such as ``tree8`` or
``chunk16``), and :func:`run_iso` (the report's stage ``iso``):

1. **Its own accumulator.** A sequential design takes its family's network-wide minimum from the
   report's search. A design with an order (tree, mta, chunk, ilv) changes the numerics, and may
   hold accuracy with a narrower accumulator (shorter serial sums) or need a wider one: it gets
   its own minimum, found by :func:`psum.sweeps.sweep.search_min_acc` on the report's images
   with the design's order, over a short candidate list (:func:`iso_search`): the sequential
   minimum's exponent, mantissa (integer: width) from :data:`ISO_NARROWER` below to
   :data:`ISO_WIDER` above the sequential minimum. Rule (the search's): the smallest candidate
   ``m`` whose top-1 is within the tolerance of the float32 network, confirmed by ``m + 1``
   passing and ``m - 1`` failing (bisection with confirmation); no candidate passing: the design
   is listed as below tolerance, with its candidates' accuracies. The fixed-point design's given
   format (``q8.8``) is the start of its own search (:func:`search_fixed`: fraction bits, then
   integer bits, each by the same rule), since no other stage searches fixed-point registers.
2. It is checked bit-exact in Icarus against the golden model (zero mismatches), in the
   implementation that meets the clock (:func:`psum.reports.checked.checked_sim`, the verdict
   keyed by the generated Verilog's digest).
3. It is synthesised at ``pipeline=0``; when it misses the clock (:func:`psum.flows.clock.at_clock`),
   at ``pipeline=1``, ``2`` (:data:`psum.hw.impl.MAX_PIPELINE`) until one meets it.
4. **Throughput with the dot product's overheads** (:func:`utilisation`): on the network's own dot
   products (every Conv2d/Linear: ``n`` dot products of ``K`` products per image), a unit of ``L``
   products per cycle and ``F`` flush cycles (:func:`psum.hw.unit.flush_cycles`: chunk and mta 1,
   ilv<L> L-1) spends ``1 + ceil(K / L) + F`` cycles per dot product: one ``load`` of the bias,
   the product cycles (the last group of a multi-lane unit zero-padded), the flush, i.e. the
   schedule psum's own RTL check drives (:func:`psum.hw.verify.stimulus.stream_cycles`). Its
   sustained rate is ``U = sum(n K) / sum(n (1 + ceil(K/L) + F))`` MACs per cycle, and
   ``copies = ceil(macs_per_cycle / U)``; area = copies x the unit's area, power = copies x its
   power at the clock.

A design that misses the clock at every pipeline depth, or the accuracy, is listed with the
reason and takes no part in the verdict (never silently dropped).

Energy per MAC: the synthesis flow's power proxy (:func:`psum.flows.power.estimate_power`) on its
default stimulus, the same for every design: the digits 3x3 convolution (``n_outputs`` dot
products of 9 products, seed 0; multi-lane units' streams merged into dot products of at least P
or N products), every ``load`` and ``flush`` cycle of those dot products included in the active
energy, so the flush is charged per MAC at that (short) length: an upper bound on the network's
longer dot products. The row's ``stimulus`` names it. These energies compare designs with each
other; they are not the real-stream figures of the per-MAC table.
"""

from __future__ import annotations

import dataclasses
import math

__all__ = ["IsoDesign", "ISO_DESIGNS", "ISO_NARROWER", "ISO_WIDER", "IsoStage", "iso_specs", "iso_search", "search_fixed",
           "dot_products", "utilisation", "iso_row", "iso_verdict", "iso_sentence", "iso_method", "run_iso"]

#: How far below / above the sequential family minimum an order design's own minimum is searched
#: (mantissa bits of a float accumulator, bits of an integer one).
ISO_NARROWER, ISO_WIDER = 3, 1


@dataclasses.dataclass(frozen=True)
class IsoDesign:
    """One design family of the iso-throughput comparison.

    Parameters
    ----------
    family : str
        Label in the table and figure (``"float tree8"``).
    base : str
        Where the accumulator comes from: ``"float"``, ``"int-wrap"`` or ``"int-sat"`` (that
        family's network-wide minimum from the report's search), or an explicit format
        (``"q8.8"``: a fixed-point register fed by the float operands).
    extra : str
        More spec fields (``"order=tree8"``, ``"order=chunk16,acc2=fp16"``); ``""`` for a
        sequential MAC.
    search : bool
        Search the design's own minimum accumulator (:func:`iso_search`: an order design around
        its family's minimum, a fixed-point format around the given one); ``False`` takes the
        accumulator as it is.
    """

    family: str
    base: str
    extra: str = ""
    search: bool = True


#: The default design set: the three sequential MACs, the four order units of psum.hw on the float
#: minimum, and a fixed-point accumulator (FloPoCo-style wide register, see docs/fixed.md).
ISO_DESIGNS = (
    IsoDesign("float seq", "float"),
    IsoDesign("int wrap", "int-wrap"),
    IsoDesign("int sat", "int-sat"),
    IsoDesign("float tree8", "float", "order=tree8"),
    IsoDesign("float mta8", "float", "order=mta8w12p64,acc2=fp16"),
    IsoDesign("float chunk16", "float", "order=chunk16,acc2=fp16"),
    IsoDesign("float ilv4", "float", "order=ilv4"),
    IsoDesign("fixed point", "q8.8"),
)


@dataclasses.dataclass(frozen=True)
class IsoStage:
    """The report stage: ``rows`` (one per design, :func:`iso_row`), the target ``macs_per_cycle``
    and the common ``clock_ns``; ``verdict`` (:func:`iso_verdict`); ``dots``, the network's dot
    products the rates were computed on (:func:`dot_products`)."""

    rows: list
    macs_per_cycle: int
    clock_ns: float
    verdict: dict
    dots: list = dataclasses.field(default_factory=list)


def iso_search(design, acc: str) -> dict | None:
    """The candidate list of a design's own minimum accumulator, or None for a design taken as given.

    Three cases. An order design on a family minimum (``base`` ``float``, ``int-wrap``,
    ``int-sat``): its order changes the numerics, so its own minimum is searched around the
    family's. A fixed-point design (``base`` a ``q<I>.<F>`` format): no other stage of the report
    searches fixed-point registers, so the given format is only the start of its own search
    (:func:`search_fixed`), as every other family gets its own minimum. Anything else (a
    sequential design, whose family minimum the report searched already; an explicit float or
    integer format; ``design.search`` false) is taken as given.

    Parameters
    ----------
    design : IsoDesign
    acc : str
        Its family's sequential minimum (``"e4m5"``, ``"int18"``), or the explicit format.

    Returns
    -------
    dict or None
        Order designs: :func:`psum.sweeps.sweep.search_min_acc` arguments: ``kind`` (``"man"`` or
        ``"int"``), ``exp_bits`` (float: the sequential minimum's), ``overflow`` (integer: the
        family's), ``lo``, ``hi`` (from :data:`ISO_NARROWER` below to :data:`ISO_WIDER` above the
        sequential minimum). Fixed point: ``kind="fixed"``, ``int_bits`` and ``frac_bits`` of the
        start format (:func:`search_fixed` derives the ranges).
    """
    from psum.golden import FixedFormat, IntFormat, parse_format

    if not getattr(design, "search", True):
        return None
    if design.base not in ("float", "int-wrap", "int-sat"):
        fmt = parse_format(design.base.partition(":")[0])
        if isinstance(fmt, FixedFormat):
            return dict(kind="fixed", int_bits=fmt.int_bits, frac_bits=fmt.frac_bits,
                        overflow=design.base.partition(":")[2] or None)
        return None
    if "order=" not in design.extra:
        return None
    fmt = parse_format(acc.partition(":")[0])
    if isinstance(fmt, IntFormat):
        return dict(kind="int", exp_bits=None, overflow=design.base[4:], lo=max(2, fmt.width - ISO_NARROWER),
                    hi=fmt.width + ISO_WIDER)
    return dict(kind="man", exp_bits=fmt.exp_bits, overflow=None, lo=max(1, fmt.man_bits - ISO_NARROWER),
                hi=fmt.man_bits + ISO_WIDER)


def search_fixed(accuracy_of, start, threshold: float) -> dict:
    """The narrowest fixed-point accumulator around ``start`` that stays within tolerance.

    A fixed-point register has two widths, and they fail differently: too few fraction bits
    swamp small products (the sum loses its low part), too few integer bits overflow (wrap or
    saturate). So the search runs in two passes, each the report's rule (bisection with
    confirmation, :func:`psum.sweeps.sweep.min_passing`: the smallest ``m`` that passes with
    ``m + 1`` passing and ``m - 1`` failing):

    1. fraction bits ``F``, from :data:`ISO_NARROWER` below to :data:`ISO_WIDER` above the
       start's, at the start's integer bits ``I``;
    2. integer bits, likewise around ``I``, at the ``F`` found.

    The width ``I + F`` stays within what :class:`psum.golden.FixedFormat` allows (2..64). A
    start whose widest fraction candidate fails is reported as below tolerance with that
    candidate; when the integer pass finds nothing (only possible if widening ``I`` loses
    accuracy) the start's ``I`` is kept.

    Parameters
    ----------
    accuracy_of : callable
        ``accuracy_of(fmt)`` -> top-1 (%) of the network with a :class:`FixedFormat` accumulator
        (the report evaluates and caches it in ``sweep.jsonl``).
    start : FixedFormat
        The design's given format (``q8.8``).
    threshold : float
        Passing top-1: the float32 baseline minus the tolerance.

    Returns
    -------
    dict
        ``fmt`` (the chosen FixedFormat), ``passed`` (bool), ``accuracy`` (its top-1),
        ``candidates`` (format text -> top-1, in evaluation order), ``rule`` (one line).
    """
    from psum.sweeps.sweep import min_passing

    seen = {}

    def acc(fmt) -> float:
        if str(fmt) not in seen:
            seen[str(fmt)] = accuracy_of(fmt)
        return seen[str(fmt)]

    i0, f0 = start.int_bits, start.frac_bits
    f_lo, f_hi = max(0, 2 - i0, f0 - ISO_NARROWER), min(64 - i0, f0 + ISO_WIDER)
    f_min = min_passing(lambda f: acc(start.replace(frac_bits=f)) >= threshold, f_lo, f_hi)
    rule = f"fraction bits {f_lo}..{f_hi} at I={i0}"
    if f_min is None:
        fmt = start.replace(frac_bits=f_hi)
        return dict(fmt=fmt, passed=False, accuracy=acc(fmt), candidates=dict(seen),
                    rule=rule + ": none within tolerance")
    i_lo, i_hi = max(1, 2 - f_min, i0 - ISO_NARROWER), min(64 - f_min, i0 + ISO_WIDER)
    at_f = start.replace(frac_bits=f_min)
    i_min = min_passing(lambda i: acc(at_f.replace(int_bits=i)) >= threshold, i_lo, i_hi)
    fmt = at_f.replace(int_bits=i_min if i_min is not None else i0)
    rule += (f" (F={f_min}), then integer bits {i_lo}..{i_hi} at F={f_min} (I={fmt.int_bits}): min passes, "
             f"min+1 passes, min-1 fails (bisection with confirmation); pass = top-1 >= {threshold:.2f}")
    # Never silently a bound for a minimum: a width at the bottom of its range was not tried lower.
    floor = [name for name, got, lo, least in (("F", f_min, f_lo, max(0, 2 - i0)), ("I", fmt.int_bits, i_lo,
                                                                                     max(1, 2 - f_min)))
             if got == lo and lo > least]
    if floor:
        rule += f"; {' and '.join(floor)} at the bottom of the searched range (narrower not tried)"
    return dict(fmt=fmt, passed=True, accuracy=acc(fmt), candidates=dict(seen), rule=rule)


def iso_specs(designs, minima: list[dict], float_operand: str, int_operand: str) -> list[dict]:
    """The spec text of every design: ``[{family, spec, search}]``, or ``{family, spec: None, reason}``
    when its base family has no minimum within tolerance.

    ``spec`` is built on the family's sequential minimum; ``search`` (:func:`iso_search`) is the
    candidate list of the design's own minimum when its order changes the numerics (None for a
    sequential design), which :func:`run_iso` searches and puts in ``spec``'s place.

    Parameters
    ----------
    designs : sequence of IsoDesign or of (family, base, extra) tuples
    minima : list of dict
        The report's minima (``family``, ``acc``); the float base is the narrowest float minimum.
    float_operand, int_operand : str
        Operand formats (the report's equal 8-bit width).

    Raises
    ------
    ValueError
        A design whose spec is not a valid MacSpec (one line, from :class:`psum.golden.MacSpec`).
    """
    from psum.golden import IntFormat, parse_format
    from psum.sweeps.sweep import make_spec

    found = {}
    for m in minima:
        if m.get("acc"):
            fam = m["family"]
            if fam not in found or m["acc_bits"] < found[fam]["acc_bits"]:
                found[fam] = m
    out = []
    for d in designs:
        d = d if isinstance(d, IsoDesign) else IsoDesign(*d)
        if d.base in ("float", "int-wrap", "int-sat"):
            m = found.get(d.base)
            if m is None:
                out.append(dict(family=d.family, spec=None, reason=f"no {d.base} accumulator within tolerance"))
                continue
            acc = m["acc"] + ("" if d.base == "float" else ":" + d.base[4:])
        else:
            acc = d.base
        fmt = parse_format(acc.partition(":")[0])
        op = int_operand if isinstance(fmt, IntFormat) else float_operand
        row = dict(family=d.family, spec=str(make_spec(acc, a=op, b=op, extra=d.extra or None)))
        search = iso_search(d, acc)
        if search is not None:
            row["search"] = dict(search, extra=d.extra, operand=op)
        out.append(row)
    return out


def dot_products(net, x) -> list[dict]:
    """The dot products of one forward pass of ``net`` per input: one entry per Conv2d / Linear.

    Parameters
    ----------
    net : torch.nn.Module
    x : torch.Tensor
        A batch of inputs (``B`` samples).

    Returns
    -------
    list of dict
        ``layer``, ``k`` (products per dot product: ``in_channels / groups * kh * kw`` of a
        convolution, ``in_features`` of a linear layer), ``n`` (dot products per input: the layer's
        output elements per sample).
    """
    import torch

    found = []
    hooks = []
    for name, mod in net.named_modules():
        if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)):
            def hook(m, _inp, out, name=name):
                found.append(dict(layer=name, k=int(m.weight[0].numel()), n=int(out.numel() // out.shape[0])))
            hooks.append(mod.register_forward_hook(hook))
    try:
        with torch.no_grad():
            net.eval()(x)
    finally:
        for h in hooks:
            h.remove()
    return found


def utilisation(lanes: int, flush: int, dots: list[dict]) -> float:
    """Sustained MACs per cycle of one unit on the dot products ``dots`` (:func:`dot_products`).

    A dot product of ``K`` products takes ``1 + ceil(K / lanes) + flush`` cycles (one ``load``, the
    product cycles, the flush), the schedule of :func:`psum.hw.verify.stimulus.stream_cycles`::

        U = sum(n * K) / sum(n * (1 + ceil(K / lanes) + flush))

    Parameters
    ----------
    lanes : int
        Products per ``en`` cycle of the unit.
    flush : int
        Flush cycles per dot product (:func:`psum.hw.unit.flush_cycles`).
    dots : list of dict
        ``k`` and ``n`` per layer; empty: the ideal rate ``lanes``.
    """
    if not dots:
        return float(lanes)
    macs = sum(d["n"] * d["k"] for d in dots)
    cycles = sum(d["n"] * (1 + -(-d["k"] // lanes) + flush) for d in dots)
    return macs / cycles


def iso_row(family: str, spec: str, accuracy: float, results: list, macs_per_cycle: int, clock_ns: float,
            meets_accuracy: bool, dots: list | None = None) -> dict:
    """One design at the throughput: the first of ``results`` (pipeline 0, 1, ...) that meets the clock.

    Parameters
    ----------
    family, spec : str
    accuracy : float
        Network top-1 (%) of ``spec``.
    results : list of SynthResult
        The unit at increasing pipeline depth (at least one).
    macs_per_cycle : int
        Target throughput, products per cycle.
    clock_ns : float
        Common clock period, ns.
    meets_accuracy : bool
    dots : list of dict, optional
        The network's dot products (:func:`dot_products`): the unit's rate is then its sustained
        rate with load and flush cycles (:func:`utilisation`); None: its peak rate (lanes).

    Returns
    -------
    dict
        ``family, side`` (``"int"``: an integer accumulator, else ``"float"``), ``spec, impl,
        accuracy, meets_accuracy, met_clock, unit_ge, lanes`` (products per cycle at peak),
        ``flush`` (cycles per dot product), ``unit_macs`` (sustained MACs per cycle), ``copies, ge,
        energy_per_mac_fj, power_uw, gmacs`` (the design's sustained throughput, GMAC/s),
        ``delay_ns, slack_ns, fmax_mhz, stimulus, reason`` (``ge``: the replicated design,
        ``unit_ge``: one unit; ``area``: the replicated design in the library's area unit, µm² for
        psum45).
    """
    from psum.flows.clock import at_clock

    chosen = next((r for r in results if at_clock(r, clock_ns).met), None)
    met = chosen is not None
    r = chosen if met else results[-1]
    c = at_clock(r, clock_ns)
    from psum.hw.unit import flush_cycles

    lanes = int(r.macs_per_cycle)
    flush = flush_cycles(spec)
    rate = utilisation(lanes, flush, dots) if dots is not None else float(r.macs_per_cycle)
    # Why round before ceil: 8 / 1.0000000001 must stay 8 copies.
    copies = math.ceil(round(macs_per_cycle / rate, 9))
    reason = "" if met else f"misses {clock_ns:g} ns even at {r.impl.split(',')[0]} ({r.delay_ns:.2f} ns)"
    if not meets_accuracy:
        reason = "; ".join(x for x in ("below tolerance", reason) if x)
    from psum.golden import IntFormat, MacSpec

    side = "int" if isinstance(MacSpec.parse(spec).acc, IntFormat) else "float"
    return dict(family=family, side=side, spec=spec, impl=r.impl, accuracy=accuracy, meets_accuracy=meets_accuracy,
                met_clock=met, unit_ge=r.ge, lanes=lanes, flush=flush, unit_macs=round(rate, 4), copies=copies,
                ge=copies * r.ge, area=round(copies * r.area_um2, 3), energy_per_mac_fj=c.energy_per_mac_fj,
                power_uw=copies * c.power_uw,
                gmacs=round(copies * rate / clock_ns, 4), delay_ns=r.delay_ns, slack_ns=c.slack_ns,
                fmax_mhz=c.fmax_mhz, stimulus=(r.power or {}).get("stream", ""), reason=reason)


def iso_verdict(rows: list[dict]) -> dict:
    """The cheapest (by replicated area) eligible design of the float side and of the integer side.

    Returns
    -------
    dict
        ``float`` and ``int`` (a row or ``None``); ``ratios``: float / integer area, energy per
        MAC and power when both exist.
    """
    ok = [r for r in rows if r.get("meets_accuracy") and r.get("met_clock")]
    flt = min((r for r in ok if r["side"] == "float"), key=lambda r: r["ge"], default=None)
    ints = min((r for r in ok if r["side"] == "int"), key=lambda r: r["ge"], default=None)
    ratios = {}
    if flt and ints:
        ratios = {k: flt[k] / ints[k] for k in ("ge", "energy_per_mac_fj", "power_uw") if ints[k]}
    return {"float": flt, "int": ints, "ratios": ratios}


def iso_sentence(stage: dict) -> str:
    """The iso-throughput answer in one sentence (``stage``: the report's ``iso`` data)."""
    v, n, t = stage["verdict"], stage["macs_per_cycle"], stage["clock_ns"]
    at = f"At {n} MACs per cycle and a {t:g} ns clock ({1e3 / t:,.0f} MHz)"
    flt, ints = v.get("float"), v.get("int")
    if not flt and not ints:
        return f"{at}, no design both meets the clock and stays within tolerance."
    if not flt or not ints:
        r = flt or ints
        return (f"{at}, only {'float-side' if flt else 'integer'} designs qualify: the cheapest is {r['family']} "
                f"({r['copies']} x {r['unit_ge']:,.0f} GE = {r['ge']:,.0f} GE, {r['energy_per_mac_fj']:,.1f} fJ/MAC).")
    q = v["ratios"]
    return (f"{at}, the cheapest float-product design within tolerance, {flt['family']} ({_acc(flt)}, "
            f"{flt['copies']} x {flt['unit_ge']:,.0f} GE = {flt['ge']:,.0f} GE, {flt['energy_per_mac_fj']:,.1f} fJ/MAC), "
            f"needs {q['ge']:.2f}x the area and {q['energy_per_mac_fj']:.2f}x the energy per MAC of the cheapest "
            f"integer design, {ints['family']} ({_acc(ints)}, {ints['ge']:,.0f} GE, "
            f"{ints['energy_per_mac_fj']:,.1f} fJ/MAC).")


def _fields(spec: str) -> dict:
    return dict(f.split("=", 1) for f in spec.split(","))


def _acc(row: dict) -> str:
    fields = _fields(row["spec"])
    return f"acc={fields['acc']}" + (f", order={fields['order']}" if "order" in fields else "")


def run_iso(cfg, wl, minima: list[dict], common: dict, out, *, force_synth: bool = False, say=None,
            liberty=None) -> IsoStage:
    """The report's stage ``iso``: every design family (:data:`ISO_DESIGNS` or ``cfg.iso_designs``)
    with its own accumulator, checked in Icarus (zero mismatches), synthesised at the lowest
    pipeline depth that meets ``cfg.iso_clock_ns`` and replicated to ``cfg.iso_macs`` sustained MACs
    per cycle on the network's dot products (module docstring).

    Parameters
    ----------
    cfg : psum.reports.report.ReportConfig
    wl : psum.sweeps.sweep workload
        The report's network and data (``wl.net``, ``wl.test``).
    minima : list of dict
        The report's network-wide minima (``family``, ``acc``, ``acc_bits``).
    common : dict
        The report's evaluation options (``limit``, ``out``: its ``sweep.jsonl``, ...), passed to
        :func:`psum.sweeps.sweep.run_sweep` and :func:`psum.sweeps.sweep.search_min_acc`.
    out : Path
        The report folder (``sim.jsonl``).
    force_synth : bool
    say : callable, optional
        Progress messages.
    liberty : psum.flows.liberty.Library or path, optional
        Synthesise onto this Liberty library instead of psum45 (areas in GE of its smallest
        NAND2, NLDM delays, internal and leakage power; the clock figures include the leakage).

    Returns
    -------
    IsoStage

    Raises
    ------
    PsumError
        A unit's RTL differs from the golden model.
    """
    from pathlib import Path

    from psum.flows.clock import at_clock
    from psum.flows.synth import synthesize_many
    from psum.golden import MacSpec
    from psum.hw import check
    from psum.hw.impl import MAX_PIPELINE, MacImpl
    from psum.nets.user import calibration_batch
    from psum.golden import FixedFormat
    from psum.sweeps.sweep import make_spec, run_sweep, search_min_acc

    from .checked import checked_sim, sim_results

    say = say or (lambda msg: None)
    out = Path(out)
    designs = iso_specs(cfg.iso_designs or ISO_DESIGNS, minima, cfg.float_operand, cfg.int_operand)
    say(f"iso-throughput: {len(designs)} designs at {cfg.iso_macs} MACs/cycle, {cfg.iso_clock_ns:g} ns")
    for d in designs:  # every unit buildable, before any evaluation (one line, from psum.hw.check)
        if d["spec"] is not None:
            check(d["spec"])
    base = None
    for d in designs:
        if d["spec"] is None:
            continue
        spec = MacSpec.parse(d["spec"])
        fields = dict(f.split("=", 1) for f in str(spec).split(","))
        if d.get("search", {}).get("kind") == "fixed":
            s = d["search"]

            def evaluate(fmt, s=s) -> tuple[float, float]:
                # (top-1 of the candidate, float32 top-1); rows cached in the report's sweep.jsonl
                acc = str(fmt) + (f":{s['overflow']}" if s["overflow"] else "")
                spec_text = str(make_spec(acc, a=s["operand"], b=s["operand"], extra=s["extra"] or None))
                rows = run_sweep(wl, cfg.dataset, [acc], a=s["operand"], b=s["operand"], extra=s["extra"] or None,
                                 **common)
                return (next(r["accuracy"] for r in rows if r["spec"] != "fp32"
                             and str(MacSpec.parse(r["spec"])) == spec_text),
                        next(r["accuracy"] for r in rows if r["spec"] == "fp32"))

            start = FixedFormat(s["int_bits"], s["frac_bits"])
            base = evaluate(start)[1]
            res = search_fixed(lambda f: evaluate(f)[0], start, base - cfg.tol)
            acc = str(res["fmt"]) + (f":{s['overflow']}" if s["overflow"] else "")
            d["spec"] = str(make_spec(acc, a=s["operand"], b=s["operand"], extra=s["extra"] or None))
            d["accuracy"] = res["accuracy"]
            d["candidates"] = res["candidates"]
            d["rule"] = res["rule"]
            check(d["spec"])
            continue
        if d.get("search"):
            # The design's own minimum: the report's search rule on its candidate list.
            s = d["search"]
            res = search_min_acc(wl, cfg.dataset, kind=s["kind"], exp_bits=s["exp_bits"], overflow=s["overflow"],
                                 lo=s["lo"], hi=s["hi"], tol=cfg.tol, a=s["operand"], b=s["operand"],
                                 extra=s["extra"], **common)
            base = res["baseline_accuracy"]
            chosen = res["spec"] if res["min"] is not None else res["rows"][-1]["spec"]
            d["spec"] = str(MacSpec.parse(chosen))
            d["accuracy"] = res["accuracy"] if res["min"] is not None else res["rows"][-1]["accuracy"]
            d["candidates"] = {_fields(str(MacSpec.parse(r["spec"])))["acc"]: r["accuracy"] for r in res["rows"]}
            d["rule"] = (f"{s['kind']} {s['lo']}..{s['hi']}: " + res["rule"])
            if res["min"] is not None and res["min"] == s["lo"] > (1 if s["kind"] == "man" else 2):
                d["rule"] += "; at the bottom of the searched range (narrower not tried)"
            check(d["spec"])
            continue
        extra = ",".join(f"{k}={v}" for k, v in fields.items() if k not in ("a", "b", "acc", "round", "overflow"))
        acc = fields["acc"] + (f":{fields['overflow']}" if "overflow" in fields else "")
        rows = run_sweep(wl, cfg.dataset, [acc], a=fields["a"], b=fields["b"], rounding=fields["round"],
                         extra=extra or None, **common)
        base = next(r["accuracy"] for r in rows if r["spec"] == "fp32")
        d["accuracy"] = next(r["accuracy"] for r in rows if r["spec"] == str(spec))
    dots = dot_products(wl.net, calibration_batch(wl.test, 1))
    todo = [d for d in designs if d["spec"] is not None]
    results = {d["spec"]: [] for d in todo}
    for p in range(MAX_PIPELINE + 1):  # deeper only for the designs that still miss the clock
        # A unit with fewer pipeline cuts than p (an integer MAC has one, after the product) stays
        # at its deepest implementation, listed as missing the clock there.
        todo = [d for d in todo if _pipelines_to(d["spec"], p)]
        if not todo:
            break
        # one call per lane count: synthesize_many resolves its impl once, for the first spec
        for n in sorted({MacSpec.parse(d["spec"]).order.lanes for d in todo}):
            group = [d for d in todo if MacSpec.parse(d["spec"]).order.lanes == n]
            for d, r in zip(group, synthesize_many([d["spec"] for d in group], jobs=cfg.jobs, force=force_synth,
                                                   impl=MacImpl(pipeline=p), liberty=liberty)):
                results[d["spec"]].append(r)
        todo = [d for d in todo if not at_clock(results[d["spec"]][-1], cfg.iso_clock_ns).met]
    sims = sim_results(out)
    rows = []
    for d in designs:
        if d["spec"] is None:
            rows.append(dict(family=d["family"], spec=None, meets_accuracy=False, met_clock=False, reason=d["reason"]))
            continue
        row = iso_row(d["family"], d["spec"], d["accuracy"], results[d["spec"]], cfg.iso_macs, cfg.iso_clock_ns,
                      d["accuracy"] >= base - cfg.tol, dots)
        if d.get("candidates"):
            row.update(candidates=d["candidates"], rule=d["rule"])
        # the directed + random stimulus: the order units take their own streams
        sim = checked_sim(sims, d["spec"], impl=row["impl"], cycles=cfg.sim_cycles, seed=0, layer="random")
        rows.append(dict(row, sim_cycles=sim["checked"]))
    return IsoStage(rows=rows, macs_per_cycle=cfg.iso_macs, clock_ns=cfg.iso_clock_ns, verdict=iso_verdict(rows),
                    dots=dots)


def _pipelines_to(spec: str, pipeline: int) -> bool:
    """True when the generator of ``spec`` can cut its datapath into ``pipeline`` more stages."""
    from psum.hw import check
    from psum.hw.impl import MacImpl

    try:
        check(spec, MacImpl(pipeline=pipeline))
    except ValueError:
        return False
    return True


def iso_method(stage: dict) -> str:
    """How the iso-throughput figures were made, in a few sentences generated from ``stage`` (the
    report's ``iso`` data; older data without dot products or stimuli gets the shorter text)."""
    dots = stage.get("dots") or []
    parts = ["Each sequential design uses its family's network-wide minimum accumulator; a design with an "
             f"order (tree, mta, chunk, ilv) its own, searched with that order over the sequential minimum's "
             f"mantissa (integer: width) from {ISO_NARROWER} below to {ISO_WIDER} above (the smallest m within "
             "tolerance with m+1 passing and m-1 failing). Each is synthesised at the lowest pipeline depth that "
             "meets the clock, checked bit-exact in Icarus, and replicated to the throughput."]
    if any(str(r.get("rule", "")).startswith("fraction bits") for r in stage.get("rows", [])):
        parts.append("The fixed-point design searches its own register from its given format by the same rule: "
                     "fraction bits first (at the given integer bits), then integer bits (at the fraction bits "
                     "found).")
    if dots:
        ks = sorted({d["k"] for d in dots})
        parts.append(f"MACs/cycle per unit is its sustained rate on the network's dot products ({len(dots)} layers, "
                     f"K = {', '.join(map(str, ks))} products): a dot product takes one load cycle, ceil(K / lanes) "
                     "product cycles and the unit's flush cycles (chunk, mta: 1; ilv<L>: L-1).")
    stimuli = sorted({r.get("stimulus") for r in stage.get("rows", []) if r.get("stimulus")})
    if stimuli:
        parts.append("Energies: the synthesis flow's power proxy on " + "; ".join(stimuli) + ", load and flush cycles "
                     "included (charged per MAC at these short dot products: an upper bound), the same for every "
                     "design: compare rows with each other, not with the per-MAC table's real-stream figures.")
    else:
        parts.append("Energies: the synthesis flow's stimulus, the same for every design (compare rows with each "
                     "other, not with the per-MAC table's real-stream figures).")
    return " ".join(parts)
