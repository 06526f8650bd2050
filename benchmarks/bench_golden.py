"""Golden-model throughput: encode (values/s) and mac_step (steps/s), against baselines run alongside.

Baselines measured in the same run: the scalar Fraction reference (the "naive" path, on a small
sample) and, where a host type exists, the library's own conversion (numpy float16, ml_dtypes).

    python benchmarks/bench_golden.py [--n 1000000]
"""

from __future__ import annotations

import argparse
import time

import ml_dtypes
import numpy as np

from psum.golden import MacSpec, mac_step, parse_format
from psum.golden.reference import encode_ref, mac_step_ref
from psum.golden.stimulus import random_triples


def rate(fn, n, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return n / best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--naive-n", type=int, default=2000)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    x = rng.standard_normal(args.n) * 10.0
    xs = x[: args.naive_n]

    print(f"encode: {args.n:,} float64 values (rne)")
    print(f"{'format':<10} {'psum values/s':>15} {'naive values/s':>15} {'speedup':>8} {'library values/s':>17}")
    libs = {"fp16": lambda: x.astype(np.float16), "bf16": lambda: x.astype(ml_dtypes.bfloat16),
            "fp8_e4m3": lambda: x.astype(np.float32).astype(ml_dtypes.float8_e4m3fn), "int16": None}
    for name, lib in libs.items():
        fmt = parse_format(name)
        fast = rate(lambda: fmt.encode(x), args.n)
        naive = rate(lambda: [encode_ref(fmt, float(v)) for v in xs], len(xs), repeat=1)
        libr = f"{rate(lib, args.n):>17,.0f}" if lib else f"{'-':>17}"
        print(f"{name:<10} {fast:>15,.0f} {naive:>15,.0f} {fast / naive:>7.0f}x {libr}")

    print(f"\nmac_step: {args.n:,} random (acc, a, b) bit-pattern triples")
    print(f"{'spec':<44} {'psum steps/s':>13} {'naive steps/s':>14} {'speedup':>8}")
    for text in ["a=fp16,b=fp16,acc=fp16", "a=bf16,b=bf16,acc=bf16", "a=bf16,b=bf16,acc=e6m9,prod=bf16,fused=no",
                 "a=fp8_e4m3,b=fp8_e4m3,acc=e5m6", "a=int8,b=int8,acc=int16", "a=int8,b=int8,acc=int16,overflow=sat"]:
        spec = MacSpec.parse(text)
        acc, a, b = random_triples(spec, args.n, rng)
        fast = rate(lambda: mac_step(spec, acc, a, b), args.n)
        k = args.naive_n
        naive = rate(lambda: [mac_step_ref(spec, int(acc[i]), int(a[i]), int(b[i])) for i in range(k)], k, repeat=1)
        print(f"{text:<44} {fast:>13,.0f} {naive:>14,.0f} {fast / naive:>7.0f}x")


if __name__ == "__main__":
    main()
