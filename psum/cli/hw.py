"""``psum verilog`` and ``psum sim``: generate a MAC unit's Verilog; check it bit-exactly in Verilator or Icarus."""

from __future__ import annotations

import argparse
import json
import sys
from .options import Once, nonneg_int, positive_int, text

__all__ = ["register"]


def _spec_epilog() -> str:
    from psum.golden.spec import SPEC_EXAMPLES, SPEC_HELP
    from psum.hw.impl import IMPL_HELP

    return ("SPEC grammar:\n  " + SPEC_HELP + "\n\nexamples:\n" + "".join(f"  {e}\n" for e in SPEC_EXAMPLES)
            + "\n--impl grammar:\n  " + IMPL_HELP + "\n")


def add_impl_option(p) -> None:
    """The ``--impl KEY=VALUE[,KEY=VALUE]`` option (shared by verilog, sim and synth)."""
    p.add_argument("--impl", type=text, metavar="KEY=VALUE[,KEY=VALUE]", default=None, action=Once,
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
    p.add_argument("--json", action="store_true",
                   help="print {spec, impl, module, file or verilog} as JSON instead of the bare Verilog")
    add_impl_option(p)
    p.set_defaults(func=_cmd_verilog)

    p = sub.add_parser(
        "sim", help="check the generated Verilog against the golden model (cocotb + Verilator or Icarus)",
        description="Simulate the generated unit for SPEC in Verilator or Icarus and compare its accumulator "
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
    p.add_argument("--trace", action="store_true",
                   help="record every cycle's outputs and check them in Python from the unit's own previous "
                        "register, instead of comparing inside the simulator (slower)")
    p.add_argument("--waves", action="store_true",
                   help="record a waveform in the build directory and print its path (Icarus: FST, Verilator: "
                        "VCD)")
    p.add_argument("--build-dir", type=text, metavar="DIR", help="build directory (default: psum's cache, $PSUM_CACHE_DIR/sim/<module>)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_impl_option(p)
    p.add_argument("--rtl", type=text, metavar="FILE.v",
                   help="check your own Verilog unit (the same port contract, see docs/hw.md) instead of psum's")
    p.add_argument("--top", type=text, metavar="MODULE",
                   help="the module of --rtl to check (default: psum's module name for SPEC and --impl)")
    p.add_argument("--simulator", choices=("verilator", "icarus"), default=None,
                   help="RTL simulator (default: $PSUM_SIMULATOR, else verilator when installed, else icarus)")
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
    if args.json:
        out = {"spec": str(spec), "impl": str(impl), "module": module_name(spec, impl)}
        out.update({"file": str(args.output)} if args.output else {"verilog": text})
        print(json.dumps(out, indent=1))
    elif not args.output:
        sys.stdout.write(text)
    return 0


def _waves_file(args, module: str, since: float):
    """The waveform the run just wrote: the newest ``*.fst``/``*.vcd`` under the build directory
    (``--build-dir``, else psum's sim cache for this module), modified since ``since``."""
    from pathlib import Path

    from psum.paths import cache_dir

    roots = [Path(args.build_dir)] if args.build_dir else [cache_dir("sim", module)]
    if args.rtl and not args.build_dir:  # a user's RTL builds in rtl_<module>_<digest>
        roots = list(cache_dir("sim").glob(f"rtl_{module}_*"))
    found = [p for r in roots if r.is_dir() for ext in ("fst", "vcd") for p in r.rglob(f"*.{ext}")
             if p.stat().st_mtime >= since - 1]
    return max(found, key=lambda p: p.stat().st_mtime).resolve() if found else None


def _build_failure(args, module: str, since: float, simulator: str) -> str:
    """One line for a simulator build that failed: its first error and the log that holds the rest.

    Why: the cocotb runner raised ``RuntimeError: Command failed with return code: 2`` as a
    traceback, e.g. for ``--rtl`` units whose ports differ from psum's contract.
    """
    from pathlib import Path

    from psum.paths import cache_dir

    roots = [Path(args.build_dir)] if args.build_dir else [cache_dir("sim", module)]
    if args.rtl and not args.build_dir:  # a user's RTL builds in rtl_<module>_<digest>
        roots = list(cache_dir("sim").glob(f"rtl_{module}_*"))
    logs = [p for r in roots if r.is_dir() for p in r.rglob("build.log") if p.stat().st_mtime >= since - 1]
    log = max(logs, key=lambda p: p.stat().st_mtime) if logs else None
    first = ""
    if log is not None:
        errors = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if "error" in ln.lower()]
        first = f": {errors[0]}" if errors else ""
    where = f" (log: {log})" if log is not None else ""
    hint = "; an --rtl unit needs psum's ports (clk, rst, a, b, en, load, init, acc; docs/hw.md)" if args.rtl else ""
    return f"{simulator} could not build module {module}{first}{where}{hint}"


def _cmd_sim(args) -> int:
    from psum.errors import PsumError
    from psum.hw import check, module_name
    from psum.hw.verify import conv_streams_from_digits, simulate
    from psum.hw.verify.runner import default_simulator

    spec, impl = check(args.spec, args.impl)
    if args.top is not None and args.rtl is None:
        raise ValueError("--top names a module of --rtl FILE.v; give --rtl too")
    if args.drive and args.trace:
        raise ValueError("give --drive or --trace, not both")
    import time

    from psum.progress import stage

    streams = None if args.exhaustive else conv_streams_from_digits(spec, seed=args.seed)
    simulator = args.simulator or default_simulator()
    stage(f"sim: building and simulating {spec} in {simulator} ({'exhaustive' if args.exhaustive else args.cycles} "
          f"cycles; a first build takes a few seconds)")
    started = time.time()
    try:
        res = simulate(spec, cycles=args.cycles, seed=args.seed, streams=streams,
                       exhaustive=args.exhaustive, waves=args.waves, build_dir=args.build_dir,
                       mode="drive" if args.drive else "trace" if args.trace else "stream", impl=impl, rtl=args.rtl,
                       top=args.top, simulator=args.simulator)
    except RuntimeError as exc:  # cocotb's runner: a build that failed (a user's --rtl unit without load/init)
        if not str(exc).startswith("Command failed"):
            raise
        raise PsumError(_build_failure(args, args.top or module_name(spec, impl), started, simulator)) from None
    if args.json:
        out = {"spec": str(spec), "impl": str(impl), "module": res.module, "cycles_checked": res.cycles_checked,
               "mismatches": res.mismatches, "first_mismatch": res.first_mismatch,
               "sim_s": round(res.sim_s, 3), "cpu_s": round(res.cpu_s, 3),
               "cycles_per_s": round(res.cycles_per_s), "cycles_per_cpu_s": round(res.cycles_per_cpu_s),
               "mode": res.mode, "simulator": res.simulator}
        if args.waves:
            waves = _waves_file(args, res.module, started)
            out["waves"] = str(waves) if waves else None
        print(json.dumps(out, indent=1))
    else:
        print(f"{res.module}: {res.cycles_checked} cycles checked, {res.mismatches} mismatches, "
              f"{res.cycles_per_s:,.0f} cycles/s ({res.cycles_per_cpu_s:,.0f} per CPU-second), {res.simulator}")
        if res.first_mismatch:
            fm = res.first_mismatch
            ins = " ".join(f"{k}={v}" for k, v in fm["inputs"].items())
            extra = "".join(f" {k[9:]}: expected={fm[k]} got={fm['got_' + k[9:]]}"
                            for k in fm if k.startswith("expected_"))
            late = f" (inputs of cycle {fm['cycle'] - fm['latency']}, latency {fm['latency']})" if "latency" in fm else ""
            print(f"first mismatch at cycle {fm['cycle']}: {ins}{late} acc_before={fm['prev_acc']} "
                  f"expected={fm['expected']} got={fm['got']}{extra}")
        if args.waves:
            waves = _waves_file(args, res.module, started)
            print(f"waveform: {waves}" if waves else "waveform: none written (see the build directory's sim.log)")
    return 0 if res.mismatches == 0 else 1
