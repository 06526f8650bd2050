"""Throughput of bit-exact sequential accumulation vs torch's native fp32 matmul, same shapes.

    .venv/bin/python benchmarks/bench_emulate.py [--quick] [--backend auto|c|torch]

Prints MAC/s of the exact kernel (psum.golden.emulation.kernels.accumulate) and of ``A @ B`` in float32 on
the same conv-like GEMM (M = batch*HW = 4096 rows, K = 150..1152, N = 16..64), measured side by
side in this run, and their ratio. Target: ratio >= 10 % for sequential float accumulation.
"""

import argparse
import time

import numpy as np
import torch

from psum.golden import MacSpec
from psum.golden.emulation.kernels import accumulate, c_kernel_available

SPECS = {
    "fp16 -> fp16": "a=fp16,b=fp16,acc=fp16",
    "bf16 prod -> e6m9 (unfused)": "a=bf16,b=bf16,acc=e6m9,prod=bf16,fused=no",
    "fp8 e4m3 -> e5m6": "a=fp8_e4m3,b=fp8_e4m3,acc=e5m6",
    "int8 -> int16 wrap": "a=int8,b=int8,acc=int16,overflow=wrap",
    "int8 -> int16 sat": "a=int8,b=int8,acc=int16,overflow=sat",
}
SHAPES = [(4096, 150, 16), (4096, 576, 64), (4096, 1152, 64)]


def _operands(spec, M, K, N, rng):
    def q(fmt, x):
        if fmt.is_float:
            return torch.from_numpy(fmt.decode(fmt.encode(x, saturate=True)))
        return torch.from_numpy(np.clip(np.round(x * 40), fmt.min_int, fmt.max_int))
    A = q(spec.a, np.maximum(rng.standard_normal((M, K)), 0))  # ReLU-like activations
    B = q(spec.b, rng.standard_normal((K, N)) * 0.1)
    init = torch.zeros((M, N), dtype=torch.float64)
    return A, B, init


def _time(fn, min_time=0.5):
    fn()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        dt = time.perf_counter() - t0
        if dt >= min_time:
            return dt / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="one shape only")
    ap.add_argument("--backend", default="auto")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, C kernel: {c_kernel_available()}")
    print(f"{'spec':30s} {'M x K x N':>16s} {'exact GMAC/s':>13s} {'fp32 GMAC/s':>12s} {'ratio':>7s}")
    for M, K, N in SHAPES[1:2] if args.quick else SHAPES:
        macs = M * K * N
        for label, text in SPECS.items():
            spec = MacSpec.parse(text)
            A, B, init = _operands(spec, M, K, N, rng)
            Af, Bf = A.float(), B.float()
            t_native = _time(lambda: Af @ Bf)
            t_exact = _time(lambda: accumulate(spec, A, B, init, backend=args.backend), min_time=0.3)
            print(f"{label:30s} {f'{M}x{K}x{N}':>16s} {macs / t_exact / 1e9:13.3f} "
                  f"{macs / t_native / 1e9:12.2f} {t_native / t_exact:7.1%}", flush=True)


if __name__ == "__main__":
    main()
