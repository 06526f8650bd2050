"""The torch backend on a GPU: bit-for-bit against the CPU kernel, and its throughput vs native matmul.

    .venv/bin/python benchmarks/bench_gpu.py [--device cuda] [--quick]

For every spec family (float and integer accumulators, every rounding mode including ``sr``, the
``chunk`` and ``mta`` orders), one conv-like GEMM is accumulated by
:func:`psum.golden.emulation.kernels.accumulate_order` with ``backend="torch"`` on the device and
with the CPU kernel (``backend="auto"``: the C kernel where it applies); the two results must be
identical bit for bit (float64 bit patterns, NaNs included). Then, per spec, the device's exact
MAC/s is printed next to native float32 ``A @ B`` on the same device and shape (native first, so a
busy device shows in the baseline). Sized to finish within ten minutes on one GPU; ``--quick``
shrinks the shapes. Without CUDA, ``--device cuda`` is a one-line error (exit 2).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from psum.golden import MacSpec
from psum.golden.emulation.kernels import accumulate_order

from bench_emulate import _operands  # the same operands as the CPU benchmark (benchmarks/ is on sys.path)

SPECS = [
    "a=fp16,b=fp16,acc=fp16",
    "a=bf16,b=bf16,acc=e6m9,prod=bf16,fused=no",
    "a=fp8_e4m3,b=fp8_e4m3,acc=e5m6",
    *(f"a=fp8_e4m3,b=fp8_e4m3,acc=e5m6,round={r}" for r in ("rtz", "rup", "rdn", "rna", "rod")),
    "a=fp8_e4m3,b=fp8_e4m3,acc=e5m6,round=sr,srbits=8",
    "a=fp16,b=fp16,acc=fp16,round=sr,srbits=12",
    "a=fp8_e4m3,b=fp8_e4m3,acc=e5m6,order=chunk16,acc2=fp16",
    "a=fp8_e4m3,b=fp8_e4m3,acc=fp32,order=mta32w14p128",
    "a=int8,b=int8,acc=int16,overflow=wrap",
    "a=int8,b=int8,acc=int16,overflow=sat",
    "a=int8,b=int8,acc=int32",
]


def _bits(t):
    return t.detach().cpu().contiguous().view(torch.int64)


def _time(fn, device, min_time=0.5):
    fn()
    torch.cuda.synchronize(device) if device.type == "cuda" else None
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        n += 1
        if time.perf_counter() - t0 >= min_time:
            return (time.perf_counter() - t0) / n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="torch device (default cuda)")
    ap.add_argument("--quick", action="store_true", help="smaller shapes")
    args = ap.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"bench_gpu: error: --device {args.device}: CUDA is not available (torch {torch.__version__})",
              file=sys.stderr)
        return 2
    device = torch.device(args.device)
    M, K, N = (256, 288, 32) if args.quick else (2048, 576, 64)
    rng = np.random.default_rng(0)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    print(f"torch {torch.__version__} on {name}; GEMM {M} x {K} x {N}")
    print(f"{'spec':58} {'bit-exact':>9} {'native GMAC/s':>13} {'exact GMAC/s':>12} {'ratio':>7}")
    bad = 0
    for text in SPECS:
        spec = MacSpec.parse(text)
        A, B, init = _operands(spec, M, K, N, rng)
        t0 = time.perf_counter()
        ref = accumulate_order(spec, A, B, init, seed=7)  # CPU: the C kernel where it applies
        cpu_s = time.perf_counter() - t0
        Ad, Bd, Id = A.to(device), B.to(device), init.to(device)
        got = accumulate_order(spec, Ad, Bd, Id, seed=7, backend="torch")
        same = torch.equal(_bits(ref), _bits(got))
        bad += not same
        A32, B32 = Ad.float(), Bd.float()
        native = _time(lambda: A32 @ B32, device)
        exact = _time(lambda: accumulate_order(spec, Ad, Bd, Id, seed=7, backend="torch"), device,
                      min_time=0.2)
        macs = M * K * N
        print(f"{text:58} {'yes' if same else 'NO':>9} {macs / native / 1e9:13.1f} {macs / exact / 1e9:12.3f} "
              f"{native / exact:7.2%}   (CPU {macs / cpu_s / 1e9:.3f})", flush=True)
    print("all bit-exact" if not bad else f"{bad} spec(s) differ from the CPU kernel")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
