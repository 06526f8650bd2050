"""``psum verilog`` and ``psum sim``: generate a MAC unit's Verilog; check it bit-exactly in Icarus."""

from __future__ import annotations

import argparse
import json
import sys
from .options import nonneg_int, positive_int, text

__all__ = ["register"]


def _spec_epilog() -> str:
    from psum.golden.spec import SPEC_EXAMPLES, SPEC_HELP
    from psum.hw.impl import IMPL_HELP

    return ("SPEC grammar:\n  " + SPEC_HELP + "\n\nexamples:\n" + "".join(f"  {e}\n" for e in SPEC_EXAMPLES)
            + "\n--impl grammar:\n  " + IMPL_HELP + "\n")


def add_impl_option(p) -> None:
    """The ``--impl KEY=VALUE[,KEY=VALUE]`` option (shared by verilog, sim and synth)."""
    p.add_argument("--impl", type=text, metavar="KEY=VALUE[,KEY=VALUE]", default=None,
                   help="micro-architecture, e.g. pipeline=2 (default: none; see the grammar below)")


def register(sub) -> None:
    """Add the ``verilog`` and ``sim`` subcommands to ``sub`` (argparse subparsers)."""
    epilog = _spec_epilog()
    p = sub.add_parser(
        "verilog", help="write the Verilog of the MAC unit for SPEC",
        description="Write deterministic Verilog of the MAC unit for SPEC; the module is named "
                    "after the spec (e.g. mac_int8_int8_acc_int32_wrap).",
        epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec", metavar="SPEC", help="MAC spec, e.g. a=int8,b=int8,acc=int32")
    p.add_argument("-o", "--output", type=text, metavar="FILE.v", help="output file (default: stdout)")
    add_impl_option(p)
    p.set_defaults(func=_cmd_verilog)

    p = sub.add_parser(
        "sim", help="check the generated Verilog against the golden model (cocotb + Icarus)",
        description="Simulate the generated unit for SPEC in Icarus and compare its accumulator "
                    "with the golden mac_step after every cycle: directed special cases, a conv "
                    "on digit images, then constrained-random cycles. Exit 1 on any mismatch.",
        epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec", metavar="SPEC", help="MAC spec, e.g. a=int8,b=int8,acc=int16,overflow=sat")
    p.add_argument("--cycles", type=positive_int, default=20_000, metavar="N",
                   help="cycles to check at least (default 20000)")
    p.add_argument("--seed", type=nonneg_int, default=0, metavar="S", help="stimulus seed (default 0)")
    p.add_argument("--exhaustive", action="store_true",
                   help="every operand pair (operands of at most 8 bits) from several accumulator states")
    p.add_argument("--drive", action="store_true",
                   help="drive every cycle from the cocotb coroutine instead of the Verilog stimulus player (slower)")
    p.add_argument("--waves", action="store_true", help="record a waveform in the build directory")
    p.add_argument("--build-dir", type=text, metavar="DIR", help="build directory (default: psum's cache, $PSUM_CACHE_DIR/sim/<module>)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_impl_option(p)
    p.add_argument("--rtl", type=text, metavar="FILE.v",
                   help="check your own Verilog unit (the same port contract, see docs/hw.md) instead of psum's")
    p.add_argument("--top", type=text, metavar="MODULE",
                   help="the module of --rtl to check (default: psum's module name for SPEC and --impl)")
    p.set_defaults(func=_cmd_sim)


def _cmd_verilog(args) -> int:
    from psum.hw import check, module_name
    from psum.hw import verilog as unit_verilog

    spec, impl = check(args.spec, args.impl)
    text = unit_verilog(spec, impl)
    if args.output:
        from psum._util import atomic_write

        atomic_write(args.output, text)
        print(f"wrote {args.output} (module {module_name(spec, impl)})", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _cmd_sim(args) -> int:
    from psum.hw import check
    from psum.hw.verify import conv_streams_from_digits, simulate

    spec, impl = check(args.spec, args.impl)
    if args.top is not None and args.rtl is None:
        raise ValueError("--top names a module of --rtl FILE.v; give --rtl too")
    streams = None if args.exhaustive else conv_streams_from_digits(spec, seed=args.seed)
    res = simulate(spec, cycles=args.cycles, seed=args.seed, streams=streams,
                   exhaustive=args.exhaustive, waves=args.waves, build_dir=args.build_dir,
                   mode="drive" if args.drive else "stream", impl=impl, rtl=args.rtl, top=args.top)
    if args.json:
        out = {"spec": str(spec), "impl": str(impl), "module": res.module, "cycles_checked": res.cycles_checked,
               "mismatches": res.mismatches, "first_mismatch": res.first_mismatch,
               "sim_s": round(res.sim_s, 3), "cpu_s": round(res.cpu_s, 3),
               "cycles_per_s": round(res.cycles_per_s), "cycles_per_cpu_s": round(res.cycles_per_cpu_s),
               "mode": res.mode}
        print(json.dumps(out, indent=1))
    else:
        print(f"{res.module}: {res.cycles_checked} cycles checked, {res.mismatches} mismatches, "
              f"{res.cycles_per_s:,.0f} cycles/s ({res.cycles_per_cpu_s:,.0f} per CPU-second)")
        if res.first_mismatch:
            fm = res.first_mismatch
            ins = " ".join(f"{k}={v}" for k, v in fm["inputs"].items())
            extra = "".join(f" {k[9:]}: expected={fm[k]} got={fm['got_' + k[9:]]}"
                            for k in fm if k.startswith("expected_"))
            late = f" (inputs of cycle {fm['cycle'] - fm['latency']}, latency {fm['latency']})" if "latency" in fm else ""
            print(f"first mismatch at cycle {fm['cycle']}: {ins}{late} acc_before={fm['prev_acc']} "
                  f"expected={fm['expected']} got={fm['got']}{extra}")
    return 0 if res.mismatches == 0 else 1
