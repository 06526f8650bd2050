"""Throughput of bit-exact emulation vs torch's native fp32 and vs APyTypes, same shapes, one run.

    .venv/bin/python benchmarks/bench_emulate.py [--threads N] [--cpu] [--sweep] [--twosum] [--reference] [--backend auto|c|torch]

(``--threads 1 --cpu``: best-of CPU time on one thread, the steadier figure on a shared machine;
``PSUM_KERNEL_ISA=avx2`` etc. caps the kernel's instruction set; ``--twosum`` adds, under each
matmul, the same kernel with its round-to-nearest-even blocks switched off, i.e. the previous
TwoSum blocks, measured in the same run; ``--reference`` adds, under each conv, the same conv with
``PSUM_EMULATE_PATH=reference``: the layer code as it ran before its fast paths.)

Issue 13's shapes, native first (a busy machine shows in the baseline):

1. per conv shape, native fp32 ``F.conv2d`` first, then the same conv through ``psum.emulate``
   (operand quantisation, im2col, kernel, scaling: what a network sweep pays) for fp16, bf16
   product -> e6m9 (unfused), fp8 e4m3 -> e5m6 and int8 -> int32; MAC/s and the ratio to native.
   Shapes: the issue's input 8x64x16x16, 64 out channels, 3x3, padding 1 (2048x576x64 MACs), and
   one full-width ResNet18 layer (layer3 on 32x32 digits: 1x256x8x8, 256 out, 3x3: 64x2304x256);
2. native fp32 ``A @ B`` (256x576x256), then the float specs through the kernel
   (``psum.golden.emulation.kernels.accumulate``);
3. APyTypes (``APyFloatAccumulatorContext``: each product rounded to the accumulator format, then
   each sum rounded, i.e. psum's ``prod=fp16,fused=no``) on the fp16 256x576x256 matmul, checked
   bit for bit against psum, and the ratio psum / APyTypes.

Targets (issue 13): psum / native >= 10 % for the float accumulators, psum / APyTypes >= 50x.
``--sweep`` adds the older conv-like GEMM sweep (M = 4096, K = 150..1152) with the int specs.
"""

import argparse
import contextlib
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

import psum
from psum.golden import MacSpec
from psum.golden.emulation import kernels
from psum.golden.emulation.kernels import accumulate, c_kernel_available, kernel_isa

FLOAT_SPECS = {
    "fp16 -> fp16": "a=fp16,b=fp16,acc=fp16",
    "bf16 prod -> e6m9 (unfused)": "a=bf16,b=bf16,acc=e6m9,prod=bf16,fused=no",
    "fp8 e4m3 -> e5m6": "a=fp8_e4m3,b=fp8_e4m3,acc=e5m6",
}
SWEEP_SPECS = dict(FLOAT_SPECS, **{
    "int8 -> int16 wrap": "a=int8,b=int8,acc=int16,overflow=wrap",
    "int8 -> int16 sat": "a=int8,b=int8,acc=int16,overflow=sat",
})
SWEEP_SHAPES = [(4096, 150, 16), (4096, 576, 64), (4096, 1152, 64)]
CONV = (8, 64, 16, 16, 64, 3)      # batch, C_in, H, W, C_out, k (padding 1)
# One full-width ResNet18 layer (layer3's 3x3 convs on the 32x32 digits: 8x8 maps, K = 2,304)
CONV_RESNET = (1, 256, 8, 8, 256, 3)
# The conv also runs with an integer accumulator (exact-GEMM backend: a float32 BLAS product)
CONV_SPECS = dict(FLOAT_SPECS, **{"int8 -> int32": "a=int8,b=int8,acc=int32"})
MATMUL = (256, 576, 256)           # M, K, N
APY_SPEC = "a=fp16,b=fp16,acc=fp16,prod=fp16,fused=no"


def _operands(spec, M, K, N, rng):
    def q(fmt, x):
        if fmt.is_float:
            return torch.from_numpy(fmt.decode(fmt.encode(x, saturate=True)))
        return torch.from_numpy(np.clip(np.round(x * 40), fmt.min_int, fmt.max_int))
    A = q(spec.a, np.maximum(rng.standard_normal((M, K)), 0))  # ReLU-like activations
    B = q(spec.b, rng.standard_normal((K, N)) * 0.1)
    init = torch.zeros((M, N), dtype=torch.float64)
    return A, B, init


_CLOCK = time.perf_counter


def _time(fn, min_time=0.5):
    """Seconds per call of ``fn``: best of repeated runs, on the clock chosen by ``--cpu``."""
    fn()
    best, spent = float("inf"), 0.0
    while spent < min_time:
        t0 = _CLOCK()
        fn()
        dt = _CLOCK() - t0
        best, spent = min(best, dt), spent + max(dt, 1e-6)
    return best


def _row(label, shape, macs, t, t_native):
    print(f"{label:40s} {shape:>14s} {macs / t / 1e9:10.3f} {t_native / t:9.1%}", flush=True)


def _conv_rows(shape, reference=False):
    """Native conv, then each spec of CONV_SPECS through ``psum.emulate``, on one conv shape
    (``reference``: also with ``PSUM_EMULATE_PATH=reference``, the ops as they ran before their
    fast paths, in the same run)."""
    nb, ci, h, w, co, k = shape
    x = torch.relu(torch.randn(nb, ci, h, w, generator=torch.Generator().manual_seed(0)))
    conv = torch.nn.Conv2d(ci, co, k, padding=k // 2, bias=False)
    macs = nb * h * w * ci * k * k * co
    with torch.no_grad():
        t_conv = _time(lambda: F.conv2d(x, conv.weight, padding=k // 2))
    label = f"{nb}x{ci}x{h}x{w}->{co}"
    _row(f"native fp32 conv2d {label}", f"{nb * h * w}x{ci * k * k}x{co}", macs, t_conv, t_conv)
    for name, text in CONV_SPECS.items():
        qconv = psum.emulate(torch.nn.Sequential(conv), MacSpec.parse(text))
        with torch.no_grad():
            t = _time(lambda: qconv(x), min_time=0.3)
        _row(f"  psum conv {name}", "", macs, t, t_conv)
        if reference:
            with _env("PSUM_EMULATE_PATH", "reference"), torch.no_grad():
                t = _time(lambda: qconv(x), min_time=0.3)
            _row("    (reference path)", "", macs, t, t_conv)


@contextlib.contextmanager
def _env(name, value):
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            del os.environ[name]
        else:
            os.environ[name] = saved


def issue_shapes(backend, twosum=False, reference=False):
    rng = np.random.default_rng(0)
    M, K, N = MATMUL
    mm_macs = M * K * N
    a32, b32 = torch.randn(M, K), torch.randn(K, N)
    with torch.no_grad():
        t_mm = _time(lambda: a32 @ b32)
    mm_shape = f"{M}x{K}x{N}"
    print(f"{'':40s} {'M x K x N':>14s} {'GMAC/s':>10s} {'/ native':>9s}")
    # the conv through psum.emulate: operand quantisation, im2col, kernel, scaling (a sweep's cost)
    _conv_rows(CONV, reference)
    _conv_rows(CONV_RESNET, reference)
    _row("native fp32 matmul", mm_shape, mm_macs, t_mm, t_mm)
    for label, text in FLOAT_SPECS.items():
        spec = MacSpec.parse(text)
        A, B, init = _operands(spec, M, K, N, rng)
        t = _time(lambda: accumulate(spec, A, B, init, backend=backend), min_time=0.3)
        _row(f"psum matmul {label}", mm_shape, mm_macs, t, t_mm)
        if twosum:
            # the same kernel with its round-to-nearest-even blocks switched off: the TwoSum /
            # round-to-odd blocks that ran before (kernels.rne_path, the block path's switch)
            with _rne_blocks_off():
                t = _time(lambda: accumulate(spec, A, B, init, backend=backend), min_time=0.3)
            _row("    (TwoSum blocks)", mm_shape, mm_macs, t, t_mm)
    return t_mm


@contextlib.contextmanager
def _rne_blocks_off():
    saved = kernels.rne_path
    kernels.rne_path = lambda spec, w: 0
    try:
        yield
    finally:
        kernels.rne_path = saved


def _paths():
    """Which block path the C kernel takes per float spec (float32 lanes): the header line."""
    names = {0: "TwoSum", 1: "RNE plain sum", 2: "RNE round-to-odd sum"}

    def path(spec):
        mode = kernels.fp16_native(spec) if kernel_isa() == "avx512fp16" else 0
        if mode:
            return {1: "binary16 FMA", 2: "binary16 mul+add",
                    3: "binary16 round-to-odd FMA + pattern rounding"}[mode] + " (AVX512-FP16)"
        return names[kernels.rne_path(spec, 24)]
    specs = dict(FLOAT_SPECS, **{"APyTypes spec": APY_SPEC})
    return ", ".join(f"{label}: {path(MacSpec.parse(text))}" for label, text in specs.items())


def versus_apytypes(backend):
    try:
        import apytypes as apy
    except ImportError:
        print("APyTypes: not installed (.venv/bin/python -m pip install apytypes)")
        return
    spec = MacSpec.parse(APY_SPEC)
    M, K, N = MATMUL
    A, B, init = _operands(spec, M, K, N, np.random.default_rng(1))
    fa = dict(exp_bits=spec.acc.exp_bits, man_bits=spec.acc.man_bits)
    aa = apy.APyFloatArray.from_float(A.numpy(), **fa)
    ba = apy.APyFloatArray.from_float(B.numpy(), **fa)

    def run_apy():
        with apy.APyFloatAccumulatorContext(**fa):
            return aa @ ba
    t_apy = _time(run_apy, min_time=0.5)
    t_psum = _time(lambda: accumulate(spec, A, B, init, backend=backend), min_time=0.3)
    ref, got = run_apy().to_numpy(), accumulate(spec, A, B, init, backend=backend).numpy()
    same = bool(np.all((ref == got) & (np.signbit(ref) == np.signbit(got)) | np.isnan(ref) & np.isnan(got)))
    macs = M * K * N
    print(f"\nAPyTypes {apy.__version__} vs psum, {APY_SPEC}, {M}x{K}x{N}: "
          f"APyTypes {macs / t_apy / 1e9:.3f} GMAC/s, psum {macs / t_psum / 1e9:.3f} GMAC/s, "
          f"psum / APyTypes {t_apy / t_psum:.1f}x, bit-identical: {same}")


def sweep(backend):
    rng = np.random.default_rng(0)
    print(f"\n{'spec':34s} {'M x K x N':>14s} {'GMAC/s':>10s} {'/ native':>9s}")
    for M, K, N in SWEEP_SHAPES:
        for label, text in SWEEP_SPECS.items():
            spec = MacSpec.parse(text)
            A, B, init = _operands(spec, M, K, N, rng)
            Af, Bf = A.float(), B.float()
            t_native = _time(lambda: Af @ Bf)
            t_exact = _time(lambda: accumulate(spec, A, B, init, backend=backend), min_time=0.3)
            _row(label, f"{M}x{K}x{N}", M * K * N, t_exact, t_native)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch (and C kernel) threads")
    ap.add_argument("--sweep", action="store_true", help="also the older conv-like GEMM sweep")
    ap.add_argument("--twosum", action="store_true",
                    help="also time each matmul with the round-to-nearest-even blocks off (the previous kernel)")
    ap.add_argument("--reference", action="store_true",
                    help="also time each conv on the reference path (PSUM_EMULATE_PATH=reference: before the fast paths)")
    ap.add_argument("--cpu", action="store_true",
                    help="time by process CPU time (steadier on a shared machine; use with --threads 1)")
    args = ap.parse_args()
    global _CLOCK
    if args.cpu:
        _CLOCK = time.process_time
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, C kernel: {c_kernel_available()} "
          f"({kernel_isa()}), clock: {'CPU time' if args.cpu else 'wall'}, best of repeats")
    print(f"block paths: {_paths()}")
    issue_shapes(args.backend, args.twosum, args.reference)
    versus_apytypes(args.backend)
    if args.sweep:
        sweep(args.backend)


if __name__ == "__main__":
    main()
