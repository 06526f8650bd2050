"""The C kernel's round-to-nearest-even blocks (``rne_path`` 1 and 2) against ``mac_step``.

The proof is the comment above ``DEFINE_KERNEL`` in ``golden/emulation/csrc/psum_kernels.c``;
these tests check each of its cases on every instruction set the host runs (AVX-512, AVX2,
generic vectors), on full register tiles (the blocks run there; edge tiles take the careful
path): ties, subnormal sums, sums and products that round to a signed zero, ``-0 + -0``,
overflow and infinite operands inside otherwise benign blocks, and the double-rounding cases
that make the plain host sum wrong where the kernel uses round to odd.
"""

import numpy as np
import pytest
import torch

from psum.golden import MacSpec
from psum.golden.emulation import kernels as K
from psum.golden.emulation.kernels import accumulate, c_kernel_available, rne_path

pytestmark = pytest.mark.skipif(not c_kernel_available(), reason="no C compiler")

RNE_SPECS = [
    "a=fp16,b=fp16,acc=fp16",                      # fused, 22-bit products: round to odd (2)
    "a=fp8_e4m3,b=fp8_e4m3,acc=e5m6",              # fused, 8-bit products into 7 bits: (2)
    "a=bf16,b=bf16,acc=e6m9,prod=bf16,fused=no",   # unfused: plain sum (1)
    "a=fp16,b=fp16,acc=fp16,prod=fp16,fused=no",   # unfused: plain sum (1)
    "a=fp8_e5m2,b=fp8_e5m2,acc=e4m3fn",            # acc range fits 24 bits: plain sum (1)
    "a=fp16,b=fp16,acc=fp32",                      # float64 lanes: plain sum (1)
    "a=fp8_e4m3,b=fp8_e4m3,acc=fp16",              # the host's binary16 FMA where it has one
    "a=fp16,b=fp16,acc=fp16,overflow=sat",         # binary16 FMA, saturation by the redo
    "a=fp16,b=fp16,acc=e5m6",                      # binary16 FMA rounded to odd, then to 7 bits
    "a=fp8_e4m3,b=fp8_e4m3,acc=e5m2,overflow=sat", # the same, 8 pattern bits dropped
]
F32_LANES = [t for t in RNE_SPECS if "acc=fp32" not in t]


def _isas():
    best = K.kernel_isa()
    return [n for n, v in K._ISAS.items() if v <= K._ISAS[best]]


def _same(x, y):
    x, y = np.asarray(x), np.asarray(y)
    return bool(np.all((np.isnan(x) & np.isnan(y)) | ((x == y) & (np.signbit(x) == np.signbit(y)))))


def _run(spec, A, B, init, backend):
    return accumulate(spec, *(torch.from_numpy(np.ascontiguousarray(x)) for x in (A, B, init)),
                      backend=backend).numpy()


def _check(monkeypatch, isa, spec, A, B, init):
    monkeypatch.setenv("PSUM_KERNEL_ISA", isa)
    got = _run(spec, A, B, init, "c")
    monkeypatch.delenv("PSUM_KERNEL_ISA")
    want = _run(spec, A, B, init, "numpy")
    bad = ~((np.isnan(got) & np.isnan(want)) | ((got == want) & (np.signbit(got) == np.signbit(want))))
    assert not bad.any(), f"{spec} on {isa}: {np.argwhere(bad)[:3]} got {got[bad][:3]} want {want[bad][:3]}"


def _q(fmt, x):
    return fmt.decode(fmt.encode(np.asarray(x, dtype=np.float64), saturate=True))


@pytest.mark.parametrize("text, w, path", [
    ("a=fp16,b=fp16,acc=fp16", 24, 2), ("a=fp16,b=fp16,acc=fp16", 53, 1),
    ("a=fp8_e4m3,b=fp8_e4m3,acc=e5m6", 24, 2),
    ("a=bf16,b=bf16,acc=e6m9,prod=bf16,fused=no", 24, 1),
    ("a=fp16,b=fp16,acc=fp16,prod=fp16,fused=no", 24, 1),
    ("a=fp8_e5m2,b=fp8_e5m2,acc=e4m3fn", 24, 1),
    ("a=fp16,b=fp16,acc=fp32", 53, 1),
    ("a=fp16,b=fp16,acc=fp16,round=rtz", 24, 0),        # not the host's rounding
    ("a=fp16,b=fp16,acc=fp16,round=rdn", 24, 0),
    ("a=fp16,b=fp16,acc=fp16,round=sr", 53, 0),
    ("a=fp8_e4m3,b=fp8_e4m3,acc=e4m3fnuz,prod=e4m3fnuz,fused=no", 24, 0),  # no -0
    ("a=fp8_e4m3,b=fp8_e4m3,acc=e5m4_ftz", 24, 0),      # no subnormals
])
def test_rne_path_choice(text, w, path):
    assert rne_path(MacSpec.parse(text), w) == path


def _benign(spec, rng, M=8, N=64, K=96):
    A = _q(spec.a, np.abs(rng.standard_normal((M, K))) + 0.5)
    B = _q(spec.b, rng.standard_normal((K, N)) * 0.1)
    return A, B, np.zeros((M, N))


@pytest.mark.parametrize("isa", _isas())
@pytest.mark.parametrize("text", RNE_SPECS)
def test_rne_blocks_random_match_mac_step(monkeypatch, isa, text):
    """Full tiles of ordinary data (most blocks kept) and of coarse codes (ties, exact sums)."""
    spec = MacSpec.parse(text)
    rng = np.random.default_rng(31)
    _check(monkeypatch, isa, spec, *_benign(spec, rng))
    M, N, K_ = 8, 64, 70
    coarse = lambda f, shape: _q(f, f.decode(rng.integers(0, 1 << f.width, size=shape, dtype=np.uint64)  # noqa: E731
                                               & ~np.uint64((1 << max(f.man_bits - 2, 0)) - 1)))
    A, B = coarse(spec.a, (M, K_)), coarse(spec.b, (K_, N))
    A[~np.isfinite(A)] = 0.0
    B[~np.isfinite(B)] = 0.0
    _check(monkeypatch, isa, spec, A, B, np.zeros((M, N)))


@pytest.mark.parametrize("isa", _isas())
@pytest.mark.parametrize("text", RNE_SPECS)
def test_rne_blocks_tiny_values_subnormal_and_signed_zero(monkeypatch, isa, text):
    """Operands near the bottom of their formats: subnormal sums, products and sums that round
    to a signed zero, cancellations; -0 and +0 initial values with -0 products (-0 + -0 = -0)."""
    spec = MacSpec.parse(text)
    rng = np.random.default_rng(32)
    M, N, K_ = 8, 64, 40
    sa = spec.a.min_normal * 4 if spec.acc.precision < 20 else 1.0
    A = _q(spec.a, rng.standard_normal((M, K_)) * sa)
    B = _q(spec.b, rng.standard_normal((K_, N)) * spec.acc.min_normal / max(sa, 1e-300) * 0.3)
    init = _q(spec.acc, rng.standard_normal((M, N)) * spec.acc.min_normal)
    init[0, :] = -0.0
    A[0, :] = 0.0                                 # row 0: -0 + (+-0 products): -0 or +0 per rule
    B[:, 1] = -np.abs(B[:, 1])
    init[1, :32] = -0.0
    _check(monkeypatch, isa, spec, A, B, init)


@pytest.mark.parametrize("isa", _isas())
@pytest.mark.parametrize("text", F32_LANES)
def test_rne_blocks_specials_inside_benign_blocks(monkeypatch, isa, text):
    """One overflow, one infinite operand, one NaN and one exact cancellation planted mid-block in
    benign data: those blocks are redone, the others kept."""
    spec = MacSpec.parse(text)
    rng = np.random.default_rng(33)
    A, B, init = _benign(spec, rng)
    big = _q(spec.a, spec.a.max_value)
    A[0, 40], B[40, 3] = big, _q(spec.b, spec.acc.max_value / big * 1.5)  # overflow at step 40
    A[1, :], B[:, 5] = 1.0, 0.0
    B[10, 5], B[11, 5] = 0.5, -0.5                 # an exact zero at step 11
    if spec.a.has_inf:
        A[3, 33] = np.inf
    if spec.a.has_nan:
        A[4, 50] = np.nan
    _check(monkeypatch, isa, spec, A, B, init)


# The double-rounding cases of the proof's item (c): a plain binary32 sum lands on a tie of the
# accumulator grid that the exact sum is not on.
TIES = [
    # e5m6 from fp16 operands: 1024 + (8 + 2**-12); binary16 RN gives 1032, a 7-bit tie RNE takes
    # to 1024; exact: 1040 (the binary16 round-to-odd FMA of fp16_native mode 3)
    # (exact in binary32, so only the binary16 path meets this tie)
    ("a=fp16,b=fp16,acc=e5m6", 1024.0, 1 + 2.0**-5, 8 * (1 - 2.0**-5 + 2.0**-10), 1040.0, False),
    # fp16: 1024 + (0.5 + 2**-16): binary32 gives 1024.5, a tie RNE takes to 1024; exact: 1025
    ("a=fp16,b=fp16,acc=fp16", 1024.0, 1 + 2.0**-5, 0.5 - 2.0**-6 + 2.0**-11, 1025.0, True),
    # e5m6: -2**-20 + 8640 (8 bits, a 7-bit midpoint): binary32 gives 8640, RNE 8704; exact: 8576
    ("a=fp8_e4m3,b=fp8_e4m3,acc=e5m6", -2.0**-20, 72.0, 120.0, 8576.0, True),
]


@pytest.mark.parametrize("isa", _isas())
@pytest.mark.parametrize("text, acc0, a, b, want, plain_wrong", TIES)
def test_rne_round_to_odd_needed_and_used(monkeypatch, isa, text, acc0, a, b, want, plain_wrong):
    spec = MacSpec.parse(text)
    assert rne_path(spec, 24) == 2
    rng = np.random.default_rng(34)
    A, B, init = _benign(spec, rng, K=32)
    A[2, :], B[:, 7] = 0.0, 0.0
    init[2, 7], A[2, 5], B[5, 7] = acc0, a, b     # one product into a lane that holds acc0
    _check(monkeypatch, isa, spec, A, B, init)
    monkeypatch.setenv("PSUM_KERNEL_ISA", isa)
    assert _run(spec, A, B, init, "c")[2, 7] == want
    if not plain_wrong:
        return
    # the plain sum (rne_path 1) would be wrong here: the test has teeth (the binary16 FMA,
    # exact by itself, is kept out of this half)
    if isa == "avx512fp16":
        monkeypatch.setenv("PSUM_KERNEL_ISA", "avx512")
    monkeypatch.setattr(K, "rne_path", lambda spec, w: 1)
    assert _run(spec, A, B, init, "c")[2, 7] != want


@pytest.mark.parametrize("text, want", [
    ("a=fp16,b=fp16,acc=fp16", 1), ("a=fp16,b=fp16,acc=fp16,prod=fp16,fused=no", 2),
    ("a=fp8_e4m3,b=fp8_e4m3,acc=e5m6", 3), ("a=fp16,b=fp16,acc=e5m8", 3),
    ("a=fp16,b=fp16,acc=e5m9", 0),                # 10 + 2 > 11 bits: no room for round to odd
    ("a=fp8_e4m3,b=fp8_e4m3,acc=e5m6,prod=e5m6,fused=no", 0),
    ("a=fp8_e4m3,b=fp8_e4m3,acc=fp16", 1), ("a=fp8_e5m2,b=fp8_e5m2,acc=fp16", 1),
    ("a=fp16,b=fp16,acc=fp16,overflow=sat", 1),   # overflow is recomputed, never kept
    ("a=bf16,b=bf16,acc=fp16", 0),                # bf16 operands are not binary16 values
    ("a=fp16,b=fp16,acc=fp16,prod=bf16,fused=no", 0),
    ("a=fp16,b=fp16,acc=fp16,round=rtz", 0), ("a=bf16,b=bf16,acc=e5m6", 0),
])
def test_fp16_native_choice(text, want):
    assert K.fp16_native(MacSpec.parse(text)) == want


@pytest.mark.skipif("avx512fp16" not in _isas(), reason="no AVX512-FP16 on this host")
@pytest.mark.parametrize("text", ["a=fp16,b=fp16,acc=fp16", "a=fp16,b=fp16,acc=fp16,prod=fp16,fused=no"])
def test_fp16_native_edges_and_flush_to_zero(monkeypatch, text):
    """Edge tiles (M = 9, N = 80: partial rows and a 16-column remainder) take the float path
    next to binary16 tiles; with flush-to-zero / denormals-are-zero set in MXCSR (torch's
    set_flush_denormal) the binary16 tiles step aside and subnormal results stay exact."""
    spec = MacSpec.parse(text)
    rng = np.random.default_rng(35)
    A = _q(spec.a, rng.standard_normal((9, 50)) * 2.0**-7)
    B = _q(spec.b, rng.standard_normal((50, 80)) * 2.0**-7)   # products and sums near 2**-14
    init = np.zeros((9, 80))
    _check(monkeypatch, "avx512fp16", spec, A, B, init)
    torch.set_flush_denormal(True)
    try:
        _check(monkeypatch, "avx512fp16", spec, A, B, init)
    finally:
        torch.set_flush_denormal(False)


@pytest.mark.skipif("avx512fp16" not in _isas(), reason="no AVX512-FP16 on this host")
@pytest.mark.parametrize("text", ["a=fp8_e4m3,b=fp8_e4m3,acc=e5m6", "a=fp8_e4m3,b=fp8_e4m3,acc=e5m6,overflow=sat",
                                  "a=fp16,b=fp16,acc=e5m6"])
def test_fp16_pattern_rounding_overflow_and_nonfinite_init(monkeypatch, text):
    """fp16_native mode 3 on finite operands: an overflow mid-tile (the inf pattern, redone),
    the top binade's carry, and a NaN / inf initial value in one tile (that tile redone)."""
    spec = MacSpec.parse(text)
    rng = np.random.default_rng(36)
    A, B, init = _benign(spec, rng, M=12)
    A[0, 40], B[40, 3] = _q(spec.a, 200.0), _q(spec.b, 400.0)   # 80000 > max: overflow
    A[5, :], B[:, 9] = 1.0, 0.0
    B[0, 9] = _q(spec.b, 60000.0 if spec.b.max_value > 60000 else 448.0)
    init[5, 9] = _q(spec.acc, 65000.0)                          # near the top, carries
    init[6, 20] = np.nan
    init[7, 60] = -np.inf
    # alone in the third row tile: a NaN whose binary16 pattern is 0x7fff (all payload bits);
    # rounding that pattern as a number would carry into the sign bit and give -0
    init[9, 10] = np.frombuffer(np.uint64(0x7FFFFFFFFFFFFFFF).tobytes(), dtype=np.float64)[0]
    _check(monkeypatch, "avx512fp16", spec, A, B, init)
