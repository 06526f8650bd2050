"""``psum synth``: synthesise MAC units and print their area, delay and energy figures."""

from __future__ import annotations

import argparse
import json
from .options import positive_int, text

__all__ = ["register", "format_result"]


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
                   help="result cache (default: $PSUM_CACHE_DIR/synth, else ~/.cache/psum/synth)")
    p.add_argument("--outputs", type=positive_int, metavar="N",
                   help="output elements of the power proxy's digits conv, 9 MACs each (default: the API's, 64)")
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
        ("area", f"{r.ge:,.0f} GE  ({r.area_um2:,.1f} um2 of NanGate45 X1 cells, NAND2 = 0.798 um2)"),
        ("cells", f"{r.n_cells}: {cells}"),
        ("flip-flops", f"{r.ffs}"),
        ("transistors", f"{r.transistors:,}  (yosys stat -tech cmos)"),
        ("depth", f"{r.depth} cells on the critical path (longest path {r.max_depth})"),
        ("delay", f"{r.delay_ns:.3f} ns  ({1e3 / r.delay_ns:,.0f} MHz)" if r.delay_ns else "0"),
        ("energy/MAC", f"{r.energy_per_mac_fj:,.1f} fJ"),
        ("active", f"{r.active_fj_per_cycle:,.1f} fJ/cycle  ({parts})"),
        ("idle", f"{r.idle_fj_per_cycle:,.1f} fJ/cycle = {r.idle_fraction:.1%} of active  (clock, no gating)"),
        ("stream", f"{r.power.get('stream', '')}, toggle rate {r.power.get('toggle_rate', 0):.3f}"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _cmd_synth(args) -> int:
    from psum.flows.synth import synthesize_many

    kw = {} if args.outputs is None else {"n_outputs": args.outputs}  # the API owns the default
    results = synthesize_many(args.specs, jobs=args.jobs, force=args.force, cache_dir=args.cache_dir,
                              impl=args.impl, **kw)
    if args.json:
        data = [r.to_dict() for r in results]
        print(json.dumps(data[0] if len(data) == 1 else data, indent=1))
    else:
        print("\n\n".join(format_result(r) for r in results))
    return 0
