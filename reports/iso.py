"""Iso-throughput comparison: every design family at a fixed number of MACs per cycle and one clock.

A per-MAC comparison (one sequential float MAC against one integer MAC) is not what a hardware
team builds: it needs, say, 32 MACs per cycle at 400 MHz, and asks which *design* delivers that
for the least area and energy while the network stays within tolerance. Here each design family
is one unit type (:class:`IsoDesign`: the family's minimum accumulator from the report's search,
plus an order such as ``tree8`` or ``chunk16``), and:

1. its accuracy is evaluated network-wide on the report's images (the sweep's cache);
2. it is checked bit-exact in Icarus against the golden model (zero mismatches), in the
   implementation that meets the clock;
3. it is synthesised at ``pipeline=0``; when it misses the clock (:func:`psum.flows.clock.at_clock`),
   at ``pipeline=1``, ``2`` (:data:`psum.hw.impl.MAX_PIPELINE`) until one meets it;
4. it is replicated to the throughput: ``copies = ceil(macs_per_cycle / unit's MACs per cycle)``;
   area = copies x the unit's area, power = copies x its power at the clock; energy per MAC is the
   unit's (replication does not change it).

A design that misses the clock at every pipeline depth, or the accuracy, is listed with the
reason and takes no part in the verdict (never silently dropped).

Energy: every unit here is driven by the same random operand stimulus of the synthesis flow
(:func:`psum.flows.power.estimate_power`, ``n_outputs`` dot products, seed 0), so the energies
compare designs with each other; they are not the real-stream figures of the per-MAC table.
The flush cycles of chunk, ilv and mta units at the end of each dot product (``psum.hw.unit.
flush_cycles``, 1 or L-1 per K products) are not charged to the throughput: with the dot-product
lengths of a CNN (K >= 25) they cost at most a few percent.
"""

from __future__ import annotations

import dataclasses
import math

__all__ = ["IsoDesign", "ISO_DESIGNS", "IsoStage", "iso_specs", "iso_row", "iso_verdict", "iso_sentence"]


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
    """

    family: str
    base: str
    extra: str = ""


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
    IsoDesign("fixed q8.8", "q8.8"),
)


@dataclasses.dataclass(frozen=True)
class IsoStage:
    """The report stage: ``rows`` (one per design, :func:`iso_row`), the target ``macs_per_cycle``
    and the common ``clock_ns``; ``verdict`` (:func:`iso_verdict`)."""

    rows: list
    macs_per_cycle: int
    clock_ns: float
    verdict: dict


def iso_specs(designs, minima: list[dict], float_operand: str, int_operand: str) -> list[dict]:
    """The spec text of every design: ``[{family, spec}]``, or ``{family, spec: None, reason}``
    when its base family has no minimum within tolerance.

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
        out.append(dict(family=d.family, spec=str(make_spec(acc, a=op, b=op, extra=d.extra or None))))
    return out


def iso_row(family: str, spec: str, accuracy: float, results: list, macs_per_cycle: int, clock_ns: float,
            meets_accuracy: bool) -> dict:
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

    Returns
    -------
    dict
        ``family, side`` (``"int"``: an integer accumulator, else ``"float"``), ``spec, impl, accuracy, meets_accuracy, met_clock, unit_ge, unit_macs, copies, ge,
        energy_per_mac_fj, power_uw, delay_ns, slack_ns, fmax_mhz, reason`` (``ge``: the replicated
        design, ``unit_ge``: one unit).
    """
    from psum.flows.clock import at_clock

    chosen = next((r for r in results if at_clock(r, clock_ns).met), None)
    met = chosen is not None
    r = chosen if met else results[-1]
    c = at_clock(r, clock_ns)
    copies = math.ceil(macs_per_cycle / r.macs_per_cycle)
    reason = "" if met else f"misses {clock_ns:g} ns even at {r.impl.split(',')[0]} ({r.delay_ns:.2f} ns)"
    if not meets_accuracy:
        reason = "; ".join(x for x in ("below tolerance", reason) if x)
    from psum.golden import IntFormat, MacSpec

    side = "int" if isinstance(MacSpec.parse(spec).acc, IntFormat) else "float"
    return dict(family=family, side=side, spec=spec, impl=r.impl, accuracy=accuracy, meets_accuracy=meets_accuracy,
                met_clock=met, unit_ge=r.ge, unit_macs=r.macs_per_cycle, copies=copies, ge=copies * r.ge,
                energy_per_mac_fj=c.energy_per_mac_fj, power_uw=copies * c.power_uw, delay_ns=r.delay_ns,
                slack_ns=c.slack_ns, fmax_mhz=c.fmax_mhz, reason=reason)


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


def _acc(row: dict) -> str:
    fields = dict(f.split("=", 1) for f in row["spec"].split(","))
    return f"acc={fields['acc']}" + (f", order={fields['order']}" if "order" in fields else "")
