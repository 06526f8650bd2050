"""The accumulation kernels against a scalar loop of ``mac_step`` over every output element.

Every backend (exact GEMM, C kernel in float32 and float64, torch, numpy) must reproduce, bit for
bit, a MAC unit stepping ``mac_step`` cycle by cycle: all rounding modes (sr with the counter-based
random bits), fused and unfused, float and integer accumulators, with ties, subnormals, overflow
and specials present.
"""

import numpy as np
import pytest
import torch

from psum.golden import MacSpec, mac_step
from psum.golden.emulation.kernels import accumulate, c_kernel_available, float_path_ok, sr_rand

MODES = ["rne", "rtz", "rdn", "rup", "rna", "rod", "sr"]


def _values(fmt, rng, shape, coarse=False):
    """Random finite values of ``fmt``; ``coarse`` draws few-bit values (ties, exact sums)."""
    from psum.golden.formats import IntFormat

    if isinstance(fmt, IntFormat):
        return rng.integers(fmt.min_int, fmt.max_int + 1, size=shape).astype(np.float64)
    codes = rng.integers(0, 1 << fmt.width, size=shape, dtype=np.uint64)
    if coarse:  # keep the top two mantissa bits: sums land on midpoints and grid points
        keep = ~np.uint64((1 << max(fmt.man_bits - 2, 0)) - 1)
        codes &= keep
    v = fmt.decode(codes)
    v[~np.isfinite(v)] = 0.0
    return v


def loop_reference(spec, A, B, init, seed=0, k_offset=0):
    """The naive model: one output element at a time, one mac_step per product."""
    spec = MacSpec.parse(spec)
    enc = lambda f, x: f.encode(np.asarray([x]), saturate=False)[0] if not f.is_float \
        else f.encode(np.asarray([x]))[0]  # noqa: E731
    M, K = A.shape
    N = B.shape[1]
    out = np.zeros((M, N))
    for m in range(M):
        for n in range(N):
            acc = enc(spec.acc, init[m, n])
            for k in range(K):
                rand = int(sr_rand(seed, m * N + n, k_offset + k, spec.sr_bits)) if spec.sr_bits else None
                acc = mac_step(spec, acc, enc(spec.a, A[m, k]), enc(spec.b, B[k, n]), rand=rand)
            out[m, n] = spec.acc.decode(np.asarray([acc]))[0]
    return out


def _problem(spec, seed, M=5, N=11, K=24, coarse=True, scale_b=1.0):
    spec = MacSpec.parse(spec)
    rng = np.random.default_rng(seed)
    A = _values(spec.a, rng, (M, K), coarse)
    B = _values(spec.b, rng, (K, N), coarse) * scale_b
    B = spec.b.decode(spec.b.encode(B, saturate=True)) if spec.b.is_float else B
    init = _values(spec.acc, rng, (M, N), coarse)
    init[0, :] = 0.0
    init[1, :3] = -0.0
    A[0, :4] = 0.0  # zero products (padding, ReLU)
    return A, B, init


def _same(x, y):
    x, y = np.asarray(x), np.asarray(y)
    both_nan = np.isnan(x) & np.isnan(y)
    eq = (x == y) & (np.signbit(x) == np.signbit(y))
    return bool(np.all(both_nan | eq))


def _check(spec, backend, seed=0, scalar_loop=False, **kw):
    """Backend vs the reference: the scalar loop (slow tier) or mac_step stepped over all outputs
    at once (fast tier; identical semantics since mac_step is elementwise, and checked against the
    scalar loop in test_numpy_backend_is_the_scalar_loop)."""
    A, B, init = _problem(spec, seed, **kw)
    if scalar_loop:
        ref = loop_reference(spec, A, B, init, seed=7)
    else:
        ref = accumulate(spec, torch.from_numpy(A), torch.from_numpy(B), torch.from_numpy(init),
                         seed=7, backend="numpy").numpy()
    got = accumulate(spec, torch.from_numpy(A), torch.from_numpy(B), torch.from_numpy(init),
                     seed=7, backend=backend).numpy()
    bad = ~((got == ref) & (np.signbit(got) == np.signbit(ref)) | (np.isnan(got) & np.isnan(ref)))
    assert not bad.any(), f"{spec} {backend}: {np.argwhere(bad)[:3]} got {got[bad][:3]} want {ref[bad][:3]}"


FLOAT_SPECS = [
    "a=fp8_e4m3,b=fp8_e4m3,acc=e5m6",          # float32 C path, overflow and subnormals present
    "a=fp16,b=fp16,acc=fp16",                  # float32 path (22-bit products)
    "a=bf16,b=bf16,acc=e6m9,prod=bf16,fused=no",
    "a=fp8_e5m2,b=fp8_e5m2,acc=e4m3fn",        # fn accumulator: NaN on overflow
    "a=fp8_e4m3,b=fp8_e4m3,acc=e4m3fnuz,prod=e4m3fnuz,fused=no",
    "a=fp8_e4m3,b=fp8_e4m3,acc=e5m4_ftz",      # flush to zero
    "a=fp16,b=fp16,acc=fp32",                  # float64 path
    "a=fp8_e4m3,b=fp8_e4m3,acc=e5m6,overflow=sat",
]


@pytest.mark.skipif(not c_kernel_available(), reason="no C compiler")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("text", FLOAT_SPECS)
def test_c_kernel_float_matches_loop(text, mode):
    spec = MacSpec.parse(text + f",round={mode}")
    _check(spec, "c", seed=hash((text, mode)) % 1000)


@pytest.mark.parametrize("mode", ["rne", "rtz", "rdn", "rod"])
@pytest.mark.parametrize("text", FLOAT_SPECS[:4])
def test_torch_backend_float_matches_loop(text, mode):
    _check(MacSpec.parse(text + f",round={mode}"), "torch", seed=3)


@pytest.mark.parametrize("text", ["a=fp8_e4m3,b=fp8_e4m3,acc=e5m6,round=sr,srbits=5",
                                  "a=bf16,b=bf16,acc=e6m9,prod=bf16,fused=no,round=rtz",
                                  "a=int8,b=int8,acc=int12,prod=int10,fused=no,overflow=sat"])
def test_numpy_backend_is_the_scalar_loop(text):
    _check(MacSpec.parse(text), "numpy", seed=4, scalar_loop=True, M=2, N=5, K=10)


@pytest.mark.slow
@pytest.mark.skipif(not c_kernel_available(), reason="no C compiler")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("text", FLOAT_SPECS)
def test_c_kernel_float_matches_scalar_loop_slow(text, mode):
    _check(MacSpec.parse(text + f",round={mode}"), "c", seed=11, scalar_loop=True, M=3, N=9, K=16)


INT_SPECS = ["a=int8,b=int8,acc=int16", "a=int8,b=int8,acc=int16,overflow=sat",
             "a=int8,b=int8,acc=int12,prod=int10,fused=no", "a=int8,b=int8,acc=int14,prod=int12,fused=no,overflow=sat",
             "a=int4,b=int4,acc=int8",
             # an unsigned accumulator of signed products: wraps mod 2**12, or saturates at 0 and 4095
             "a=int8,b=int8,acc=uint12", "a=int8,b=uint8,acc=uint16,prod=int12,fused=no,overflow=sat"]


@pytest.mark.parametrize("backend", ["auto", "torch", "numpy"] + (["c"] if c_kernel_available() else []))
@pytest.mark.parametrize("text", INT_SPECS)
def test_int_backends_match_loop(text, backend):
    spec = MacSpec.parse(text)
    if backend == "c" and not spec.saturate and spec.prod is None:
        pass
    _check(spec, backend, seed=5, K=40)


def test_gemm_backend_wrap_int8_int16():
    _check(MacSpec.parse("a=int8,b=int8,acc=int16"), "gemm", seed=6, K=64)


def test_gemm_backend_rejects_saturation():
    with pytest.raises(ValueError, match="^backend gemm cannot compute"):
        _check(MacSpec.parse("a=int8,b=int8,acc=int16,overflow=sat"), "gemm")


@pytest.mark.skipif(not c_kernel_available(), reason="no C compiler")
def test_c_kernel_large_tile_edges_match_numpy():
    """Row/column counts that are not multiples of the tile, and a long K."""
    spec = MacSpec.parse("a=fp8_e4m3,b=fp8_e4m3,acc=e5m6")
    A, B, init = _problem(spec, 9, M=13, N=37, K=150, coarse=False)
    args = [torch.from_numpy(x) for x in (A, B, init)]
    assert _same(accumulate(spec, *args, backend="c"), accumulate(spec, *args, backend="numpy"))


def test_float_path_conditions():
    assert float_path_ok(MacSpec.parse("a=fp16,b=fp16,acc=fp16"), 24)
    assert not float_path_ok(MacSpec.parse("a=fp16,b=fp16,acc=fp32"), 24)   # 24 + 2 > 24
    assert float_path_ok(MacSpec.parse("a=fp16,b=fp16,acc=fp32"), 53)
    assert not float_path_ok(MacSpec.parse("a=fp32,b=fp32,acc=fp64"), 53)


def test_sr_rand_matches_c():
    from psum.golden.emulation.kernels import _lib

    lib = _lib()
    if lib is None:
        pytest.skip("no C compiler")
    for idx, step in [(0, 0), (12345, 77), (2**40 + 3, 2**33)]:
        assert int(sr_rand(99, idx, step, 8)) == lib.psum_sr_rand(99, idx, step, 8)


# ---- the C float path's variants: AVX-512 / AVX2 / generic vectors, branch-free blocks -------
def _isas():
    from psum.golden.emulation.kernels import _ISAS, kernel_isa

    best = kernel_isa()
    return [] if best is None else [n for n, v in _ISAS.items() if v <= _ISAS[best]]


def _check_isa(monkeypatch, isa, spec, A, B, init):
    monkeypatch.setenv("PSUM_KERNEL_ISA", isa)
    args = [torch.from_numpy(x) for x in (A, B, init)]
    got = accumulate(spec, *args, backend="c")
    monkeypatch.delenv("PSUM_KERNEL_ISA")
    want = accumulate(spec, *args, backend="numpy")
    assert _same(got, want), f"{spec} on {isa}"


# M = 9: two full row tiles and an edge row; N = 40: full column tiles and an edge vector for
# every lane count (8 and 16: padded to 48); K = 75: two full blocks of 32 steps and a tail of 11.
@pytest.mark.parametrize("isa", _isas())
@pytest.mark.parametrize("text", FLOAT_SPECS)
def test_c_kernel_isa_blocks_match_mac_step(monkeypatch, isa, text):
    spec = MacSpec.parse(text)
    # coarse random codes: ties, subnormal sums, overflow and exact zeros in many blocks
    _check_isa(monkeypatch, isa, spec, *_problem(spec, 21, M=9, N=40, K=75, coarse=True))


@pytest.mark.parametrize("isa", _isas())
@pytest.mark.parametrize("mode", [m for m in MODES if m != "sr"])
def test_c_kernel_isa_specials_inside_benign_blocks(monkeypatch, isa, mode):
    """Benign data (every block takes the branch-free path) with one special event per lane
    family planted mid-block: an overflow, a cancellation to an exact zero, a subnormal sum and an
    infinite operand; the block holding each must be redone and the rest kept."""
    spec = MacSpec.parse(f"a=fp16,b=fp16,acc=fp16,round={mode}")
    rng = np.random.default_rng(5)
    M, N, K = 8, 64, 100
    A = spec.a.decode(spec.a.encode(np.abs(rng.standard_normal((M, K))) + 0.5))
    B = spec.b.decode(spec.b.encode(rng.standard_normal((K, N)) * 0.1))
    init = np.zeros((M, N))
    A[0, 40], B[40, 3] = 240.0, 300.0           # product 72000 > 65504: overflow at step 40
    A[1, :], B[:, 5] = 1.0, 0.0                 # row 1, column 5: ...
    B[10, 5], B[11, 5] = 0.5, -0.5              # ... +0.5 then -0.5: an exact zero at step 11
    A[2, 70], B[70, 9] = 2.0**-12, 2.0**-12     # row 2, column 9 (zero so far): a subnormal sum
    B[:70, 9] = 0.0
    A[3, 33] = np.inf                           # row 3: an infinite operand at step 33
    _check_isa(monkeypatch, isa, spec, A, B, init)


@pytest.mark.slow
@pytest.mark.parametrize("isa", _isas())
@pytest.mark.parametrize("mode", [m for m in MODES if m != "sr"])
@pytest.mark.parametrize("text", FLOAT_SPECS)
def test_c_kernel_isa_all_modes_slow(monkeypatch, isa, mode, text):
    spec = MacSpec.parse(text + f",round={mode}")
    for coarse in (True, False):
        _check_isa(monkeypatch, isa, spec, *_problem(spec, 22, M=9, N=40, K=75, coarse=coarse))


def test_kernel_isa_choice(monkeypatch):
    from psum.golden.emulation.kernels import kernel_isa

    if not c_kernel_available():
        assert kernel_isa() is None
        return
    assert kernel_isa() in ("avx512fp16", "avx512", "avx2", "generic")
    monkeypatch.setenv("PSUM_KERNEL_ISA", "generic")
    assert kernel_isa() == "generic"
    monkeypatch.setenv("PSUM_KERNEL_ISA", "sse9")
    with pytest.raises(ValueError, match=r"^PSUM_KERNEL_ISA must be one of generic, avx2, avx512, avx512fp16, not 'sse9'$"):
        kernel_isa()
