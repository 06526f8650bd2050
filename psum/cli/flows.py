"""``psum synth``: synthesise MAC units and print their area, delay and energy figures."""

from __future__ import annotations

import argparse
import dataclasses
import json
from .options import Once, positive_int, text

__all__ = ["register", "format_result", "format_breakdown", "format_clock", "format_glitch"]


def register(sub) -> None:
    """Add the ``synth`` subcommand to ``sub`` (argparse subparsers)."""
    from psum.golden.spec import SPEC_EXAMPLES, SPEC_HELP

    p = sub.add_parser(
        "synth", help="synthesise the MAC unit for SPEC: area (GE), delay, energy per MAC",
        description="Synthesise the generated unit for each SPEC with Yosys+ABC onto psum45 "
                    "(NanGate 45 nm X1 cells) and report gate equivalents, cells by type, "
                    "flip-flops, transistors, critical-path depth and delay, and the switching-"
                    "activity energy per MAC (Icarus gate-level simulation on a digits conv). "
                    "Results are cached; --force recomputes.",
        epilog="SPEC grammar:\n  " + SPEC_HELP + "\n\nexamples:\n" + "".join(f"  {e}\n" for e in SPEC_EXAMPLES),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("specs", nargs="+", metavar="SPEC", help="MAC spec, e.g. a=int8,b=int8,acc=int32")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--force", action="store_true", help="recompute even if cached")
    p.add_argument("--jobs", type=positive_int, default=None, metavar="N",
                   help="parallel synthesis processes (default: CPU count)")
    p.add_argument("--cache-dir", type=text, metavar="DIR", default=None,
                   help="result cache, a folder (created if missing; default: $PSUM_CACHE_DIR/synth, else "
                        "~/.cache/psum/synth)")
    p.add_argument("--outputs", type=positive_int, metavar="N",
                   help="output elements of the power proxy's digits conv, 9 MACs each (a block-scaled unit's: digits "
                        "linear outputs of 64 MACs) (default: the API's, 64; "
                        "at most 65536; with --glitch at most 4096, the timed simulation's bound, about 1 us per net "
                        "and cycle)")
    p.add_argument("--breakdown", action="store_true",
                   help="area, energy and the critical path per datapath stage (multiplier, align, adder, "
                        "normalise, round, specials, register) from a hierarchical synthesis")
    p.add_argument("--liberty", type=text, metavar="FILE.lib", default=None, action=Once,
                   help="map onto this Liberty library (NLDM timing with slew, internal and leakage power, "
                        "area) instead of psum45")
    p.add_argument("--clock-ns", type=float, default=None, metavar="T", action=Once,
                   help="clock period: print slack, the fastest clock, energy per MAC, power and throughput at T")
    p.add_argument("--glitch", action="store_true",
                   help="also a timed gate simulation with the library's cell delays (psum45 linear, or "
                        "--liberty NLDM rise/fall): energy per MAC with glitches and the glitch share of the "
                        "switching energy (not cached)")
    from .hw import add_impl_option

    add_impl_option(p)
    p.set_defaults(func=_cmd_synth)


def format_result(r) -> str:
    """Human-readable block of one :class:`psum.flows.synth.SynthResult`."""
    cells = ", ".join(f"{k} {v}" for k, v in sorted(r.cells.items(), key=lambda kv: (-kv[1], kv[0])))
    b = r.power.get("breakdown", {})
    parts = ", ".join(f"{k} {b[k]:.0f}" for k in ("clock", "registers", "logic", "inputs") if k in b)
    rows = [
        ("spec", r.spec + ("  (cached)" if r.cached else "")),
        ("module", r.module),
        ("impl", f"{r.impl}  (latency {r.latency}, {r.macs_per_cycle:g} MAC/cycle)"),
        ("area", f"{r.ge:,.0f} GE  ({r.area_um2:,.1f} um2 of NanGate45 X1 cells, NAND2 = 0.798 um2)"
                 if "liberty" not in r.power else
                 f"{r.ge:,.0f} GE  ({r.area_um2:,.1f} area units of {r.power['liberty']}; its smallest NAND2 = 1 GE)"),
        *([("leakage", f"{r.power['leakage_nw']:,.1f} nW (cell_leakage_power)")] if "leakage_nw" in r.power else []),
        ("cells", f"{r.n_cells}: {cells}"),
        ("flip-flops", f"{r.ffs}"),
        ("transistors", f"{r.transistors:,}  (yosys stat -tech cmos)"),
        ("depth", f"{r.depth} cells on the critical path (longest path {r.max_depth})"),
        ("delay", (f"{r.delay_ns:.3f} ns  ({1e3 / r.delay_ns:,.0f} MHz"
                   + (", NLDM with slew)" if "liberty" in r.power else ")")) if r.delay_ns else "0"),
        ("energy/MAC", f"{r.energy_per_mac_fj:,.1f} fJ" + (
            f"  (switching 0.5 C V^2 only for {', '.join(r.power['unpowered_cells'])}: no internal_power tables in "
            f"{r.power['liberty']})" if r.power.get("unpowered_cells") else "")),
        ("active", f"{r.active_fj_per_cycle:,.1f} fJ/cycle  ({parts})"),
        ("idle", f"{r.idle_fj_per_cycle:,.1f} fJ/cycle = {r.idle_fraction:.1%} of active  (clock, no gating)"),
        ("stream", f"{r.power.get('stream', '')}, toggle rate {r.power.get('toggle_rate', 0):.3f}"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def format_clock(c) -> str:
    """Human-readable block of one :class:`psum.flows.clock.ClockReport`."""
    verdict = "met" if c.met else f"MISSED: needs a pipeline or a clock >= {1e3 / c.fmax_mhz:.3f} ns"
    rows = [
        ("clock", f"{c.clock_ns:g} ns ({1e3 / c.clock_ns:,.0f} MHz): slack {c.slack_ns:+.3f} ns, {verdict}"),
        ("fastest clock", f"{c.fmax_mhz:,.0f} MHz"),
        ("at this clock", f"{c.energy_per_mac_fj:,.1f} fJ/MAC, {c.power_uw:,.1f} uW computing, "
                          f"{c.idle_power_uw:,.1f} uW idle (leakage {c.leakage_uw:,.2f} uW), "
                          f"{c.throughput_gmacs:g} GMAC/s"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def format_breakdown(b) -> str:
    """Human-readable tables of one :class:`psum.flows.breakdown.Breakdown`."""
    from psum._util import format_table

    head = (f"{b.spec}{'  (cached)' if b.cached else ''}\n"
            f"area {b.ge:,.0f} GE by stage (hierarchical; the flat flow gives {b.flat_ge:,.0f} GE, "
            f"boundaries cost {b.hierarchy_overhead:+.1%}), energy {b.energy_per_mac_fj:,.1f} fJ/MAC")
    rows = [{"stage": s["stage"], "cells": s["cells"], "GE": f"{s['ge']:,.0f}", "area": f"{s['area_share']:.1%}",
             "fJ/MAC": f"{s['energy_fj']:,.1f}", "energy": f"{s['energy_share']:.1%}",
             "leakage nW": f"{s.get('leakage_nw', 0.0):,.1f}"} for s in b.stages]
    leak = any("leakage_nw" in s for s in b.stages)  # a Liberty library's figure
    area = format_table(rows, ["stage", "cells", "GE", "area", "fJ/MAC", "energy"] + (["leakage nW"] if leak else []))
    edges = any("edge" in r for r in b.path)  # NLDM timing: rise and fall apart
    path = format_table([{"critical path": r["stage"], "cells": r["cells"], "ns": f"{r['delay_ns']:.3f}",
                          "arrival ns": f"{r['arrival_ns']:.3f}", "edge": r.get("edge", "")} for r in b.path],
                        ["critical path", "cells", "ns", "arrival ns"] + (["edge"] if edges else []))
    return f"{head}\n\n{area}\n\n{path}\n(total {b.delay_ns:.3f} ns)"


def format_glitch(g) -> str:
    """One line of a :class:`psum.flows.power.GlitchResult`."""
    return (f"glitches       {g.timed_fj_per_mac:,.1f} fJ/MAC timed vs {g.zero_delay_fj_per_mac:,.1f} zero-delay: "
            f"{100 * g.glitch_share:.1f}% of the switching energy is glitches "
            f"({g.toggles_timed:,} vs {g.toggles_zero_delay:,} transitions, {g.macs} MACs)")


def _cmd_synth(args) -> int:
    from psum.flows.synth import synthesize_many
    from psum.golden import MacSpec

    # one unit given twice (or by two names, fp16 and e5m10) is synthesised and printed once
    args.specs = list(dict.fromkeys(str(MacSpec.parse(s)) for s in args.specs))

    kw = {} if args.outputs is None else {"n_outputs": args.outputs}  # the API owns the default
    if args.glitch and args.outputs is not None:
        from psum.flows.power import GLITCH_MAX_OUTPUTS

        if args.outputs > GLITCH_MAX_OUTPUTS:  # before any synthesis, not after it
            raise ValueError(f"--glitch simulates at most {GLITCH_MAX_OUTPUTS} outputs (a timed gate simulation, "
                             f"about 1 us per net and cycle), not --outputs {args.outputs}")
    if args.breakdown and args.jobs is not None and args.clock_ns is None:
        raise ValueError("--jobs sets the parallel flat synthesis; --breakdown synthesises one unit at a time "
                         "(leave --jobs out, or add --clock-ns, whose figures come from the flat synthesis)")
    if args.outputs is not None:
        from psum.flows.power import POWER_MAX_OUTPUTS

        if args.outputs > POWER_MAX_OUTPUTS:  # before any synthesis
            raise ValueError(f"--outputs is at most {POWER_MAX_OUTPUTS} (the gate-level simulation's bound: 9 cycles "
                             f"per output, a line per cycle and net), not {args.outputs}")
    if args.clock_ns is not None:
        from psum.flows.clock import check_clock_ns

        check_clock_ns(args.clock_ns)  # before any synthesis
    liberty = None
    if args.liberty is not None:
        from psum.flows.liberty import read_liberty

        liberty = read_liberty(args.liberty)  # a bad file is one line, before any synthesis
    if args.breakdown:
        from psum.flows.breakdown import breakdown
        from psum.hw import check

        for s in args.specs:
            check(s, args.impl)  # every spec before any work
        results = [breakdown(s, impl=args.impl, force=args.force, cache_dir=args.cache_dir, liberty=liberty, **kw)
                   for s in args.specs]
        fmt = format_breakdown
    else:  # --jobs parallel processes, on psum45 or the Liberty file (it ran one unit at a time)
        results = synthesize_many(args.specs, jobs=args.jobs, force=args.force, cache_dir=args.cache_dir,
                                  impl=args.impl, liberty=liberty, **kw)
        fmt = format_result
    clocks = [None] * len(results)
    if args.clock_ns is not None:
        from psum.flows.clock import at_clock

        if not args.breakdown:
            flat = results
        else:
            flat = synthesize_many(args.specs, jobs=args.jobs, force=args.force, cache_dir=args.cache_dir,
                                   impl=args.impl, liberty=liberty, **kw)
        clocks = [at_clock(r, args.clock_ns) for r in flat]
    glitches = [None] * len(results)
    if args.glitch:
        from psum.flows.synth import glitch

        glitches = [glitch(s, impl=args.impl, liberty=liberty, **kw) for s in args.specs]
    if args.json:
        data = [dict(r.to_dict(), **({"clock": c.to_dict()} if c is not None else {}),
                     **({"glitch": dataclasses.asdict(g)} if g is not None else {}))
                for r, c, g in zip(results, clocks, glitches)]
        print(json.dumps(data[0] if len(data) == 1 else data, indent=1))
    else:
        print("\n\n".join(fmt(r) + ("\n" + format_clock(c) if c is not None else "")
                           + ("\n" + format_glitch(g) if g is not None else "")
                           for r, c, g in zip(results, clocks, glitches)))
    return 0
