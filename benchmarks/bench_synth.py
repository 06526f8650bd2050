"""Wall time of the synthesis flow per unit: cold (Yosys + Icarus), cached, and a parallel sweep.

    .venv/bin/python benchmarks/bench_synth.py [--jobs N]

Prints, for a few integer units measured in this run: the cold time of each stage's total
(``synthesize(force=True)``), the cached time, their ratio, and the sweep time of
``synthesize_many`` with 1 and N jobs (same units, forced) with the speed-up. Target: a cached
result in well under 1 % of the cold time, so a rerun report is dominated by nothing but I/O.
"""

import argparse
import tempfile
import time

from psum.flows.synth import synthesize, synthesize_many

SPECS = ["a=int4,b=int4,acc=int12", "a=int8,b=int8,acc=int16", "a=int8,b=int8,acc=int32,overflow=sat"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        synthesize(SPECS[0], cache_dir=d, n_outputs=8)  # pays yowasp's one-time compile
        print(f"{'spec':<40} {'cold s':>8} {'cached ms':>10} {'ratio':>8}")
        for s in SPECS:
            t = time.perf_counter()
            r = synthesize(s, cache_dir=d, force=True)
            cold = time.perf_counter() - t
            t = time.perf_counter()
            synthesize(s, cache_dir=d)
            warm = time.perf_counter() - t
            print(f"{s:<40} {cold:8.2f} {warm * 1e3:10.2f} {warm / cold:8.2%}   ({r.ge:.0f} GE)")
        times = {}
        for jobs in (1, args.jobs):
            t = time.perf_counter()
            synthesize_many(SPECS, jobs=jobs, force=True, cache_dir=d, progress=False)
            times[jobs] = time.perf_counter() - t
        print(f"sweep of {len(SPECS)} units: 1 job {times[1]:.1f} s, {args.jobs} jobs {times[args.jobs]:.1f} s, "
              f"speed-up {times[1] / times[args.jobs]:.2f}x")


if __name__ == "__main__":
    main()
