"""Fast, bit-exact accumulation kernels: ``out[m, n] = MAC-accumulate_k A[m, k] * B[k, n]``.

Every kernel here computes, for each output element independently, exactly what a MAC unit running
:func:`psum.golden.mac_step` cycle by cycle computes: the accumulator starts from ``init[m, n]``
(the loaded bias) and takes one product per step, ``k = 0 .. K-1`` in order. Operands,
products and accumulators travel as float64 (or float32) *values* that equal the format values
exactly; the caller (:mod:`psum.golden.emulation.layers`) quantises them.

Backends, fastest first (``backend="auto"`` picks the first whose exactness conditions hold):

``gemm``
    Integer accumulator with wrap-around and no product that can wrap/saturate: the sum modulo
    ``2**n`` is associative, so an exact GEMM (every partial sum an integer below ``2**24`` for
    float32 or ``2**53`` for float64, whatever order BLAS uses) followed by one wrap is
    bit-identical to the sequential unit.
``c``
    The C/OpenMP kernel in ``golden/emulation/csrc/psum_kernels.c`` (compiled at first use with the system
    gcc into ``~/.cache/psum/kernels/``, loaded with ctypes). Float accumulators: TwoSum + round-to-odd +
    integer rounding (proof in the C file's header), vectorised across output elements (AVX-512,
    AVX2 or generic vectors, picked at run time: :func:`kernel_isa`), register-tiled, in
    branch-free blocks of 32 steps whose range evidence is checked once per block (specs that
    round like the host's round-to-nearest-even take shorter blocks: a host sum, plain or rounded
    to odd, then a magic-constant rounding into the accumulator; :func:`rne_path`); a block in
    which a lane left the accumulator's normal range (subnormals, overflow, specials) is redone
    with a per-step check and a scalar exact fix-up for the flagged lanes. Stochastic
    rounding runs the scalar routine every step. Integer accumulators: exact integer values in
    float/double with per-step saturation.
``torch``
    The same float algorithm in device-agnostic torch ops (CPU or CUDA), one step for all outputs
    at a time; flagged elements and stochastic rounding go through ``mac_step`` (numpy).
``numpy``
    ``mac_step`` itself, one step for all outputs at a time: slow, exact by definition, works for
    every spec (e.g. fp64 accumulators, where the float tricks do not apply).

Fixed-point accumulators (``acc=q<I>.<F>``) do not enter the C kernel (it knows float and
integer accumulators only); two exact paths serve them instead, picked by ``auto``:

``gemm`` (fixed point)
    Wrap-around (or saturation that provably never fires on the data) and every product of the formats a multiple of ``2**-F`` (e.g. fp8 operands into
    ``q8.24``: products are multiples of ``2**-18``): no step rounds, the sum modulo ``2**(I+F)``
    lsbs is associative, and a float64 GEMM whose partial sums stay below ``2**53`` lsbs is exact
    whatever BLAS's order; one wrap follows.
``torch`` (fixed point)
    One step for all outputs at a time in float64 / int64 torch ops: the exact product scaled by
    ``2**F`` splits exactly into ``floor`` and a fraction in ``[0, 1)``; the stored integer plus
    the floor is exact in int64, and the rule book's ``round_up`` reads guard, sticky and the
    stochastic residual off the fraction (:func:`_run_fixed_torch`).

Stochastic rounding draws its random bits from a counter-based hash (:func:`sr_rand`) of
``(seed, element index, step)``, so every backend and the scalar reference loop agree.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import math
import os
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np

from psum.golden import _vector as V
from psum.golden.formats import NAMED, FloatFormat, IntFormat
from psum.golden.mac import apply_specials, infinity_codes, mac_step, nan_result_code, product_terms
from psum.golden.rounding import Rounding, exact_zero_sign, round_table, round_up, zero_sign_table
from psum.golden.spec import MacSpec, add_spec  # add_spec: re-exported (its home is the spec)
from psum._util import atomic_write, die_with_parent, file_lock, umask_mode
from psum.paths import cache_dir

__all__ = ["accumulate", "accumulate_order", "add_spec", "sr_rand", "fmix32", "codes",
           "c_kernel_available", "kernel_isa", "float_path_ok", "rne_path", "fp16_native", "fixed_gemm_ok", "fixed_torch_ok",
           "im2row2d", "quantize_rne_saturate", "BACKENDS"]

BACKENDS = ("auto", "gemm", "c", "torch", "numpy")
_M32 = 0xFFFFFFFF


# ---------------------------------------------------------------------------------------------
# Counter-based random bits (the same function as sr_rand() in the C kernel)
# ---------------------------------------------------------------------------------------------
def fmix32(h):
    """MurmurHash3's 32-bit finaliser on uint64 arrays holding 32-bit values (the C kernel's fmix32)."""
    h = h ^ (h >> 16)
    h = (h * 0x85EBCA6B) & _M32
    h = h ^ (h >> 13)
    h = (h * 0xC2B2AE35) & _M32
    return h ^ (h >> 16)


def sr_rand(seed: int, index, step, bits: int) -> np.ndarray:
    """Random integers in ``[0, 2**bits)`` for stochastic rounding of element ``index`` at ``step``.

    ``h1 = fmix32(seed ^ lo32(index))``, ``h2 = fmix32(h1 ^ lo32(step * 0x9E3779B1) ^ hi32(index))``,
    result ``h2 >> (32 - bits)`` (``fmix32`` is MurmurHash3's finaliser). Arrays broadcast.
    """
    idx = np.asarray(index, dtype=np.int64).astype(np.uint64)
    stp = np.asarray(step, dtype=np.int64).astype(np.uint64)
    seed = np.uint64(int(seed) & _M32)
    h1 = fmix32((seed ^ (idx & np.uint64(_M32))))
    h2 = fmix32(h1 ^ ((stp * np.uint64(0x9E3779B1)) & np.uint64(_M32)) ^ (idx >> np.uint64(32)))
    return (h2 >> np.uint64(32 - bits)).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Building and loading the C kernel
# ---------------------------------------------------------------------------------------------
_CSRC = Path(__file__).with_name("csrc") / "psum_kernels.c"
_LIB = None
_LIB_LOCK = threading.Lock()
_LIB_ERROR: str | None = None


class _Fmt(ctypes.Structure):
    _fields_ = [("man_bits", ctypes.c_int32), ("emin", ctypes.c_int32), ("subnormals", ctypes.c_int32),
                ("specials", ctypes.c_int32), ("max_value", ctypes.c_double),
                ("int_bits", ctypes.c_int32), ("is_signed", ctypes.c_int32), ("is_int", ctypes.c_int32),
                ("present", ctypes.c_int32), ("round_tbl", ctypes.c_uint32), ("zero_tbl", ctypes.c_uint32),
                ("bias_cls", ctypes.c_uint32),
                ("ovf_pos", ctypes.c_double), ("ovf_neg", ctypes.c_double),
                ("inf_pos", ctypes.c_double), ("inf_neg", ctypes.c_double)]


class _Params(ctypes.Structure):
    _fields_ = [("M", ctypes.c_int64), ("N", ctypes.c_int64), ("K", ctypes.c_int64),
                ("lda", ctypes.c_int64), ("ldb", ctypes.c_int64), ("ldo", ctypes.c_int64),
                ("mode", ctypes.c_int32), ("saturate", ctypes.c_int32), ("sr_bits", ctypes.c_int32),
                ("int_acc", ctypes.c_int32), ("seed", ctypes.c_uint32),
                ("col_stride", ctypes.c_int64), ("k_offset", ctypes.c_int64),
                ("row_base", ctypes.POINTER(ctypes.c_int64)), ("acc", _Fmt), ("prod", _Fmt),
                ("nthreads", ctypes.c_int32), ("zero_slow", ctypes.c_int32),
                ("bias_dep", ctypes.c_int32), ("isa", ctypes.c_int32), ("rne_path", ctypes.c_int32),
                ("fp16_native", ctypes.c_int32)]


def _digest(path: Path) -> str:
    """``"<sha256> <size>"`` of a file: the seal a built kernel is checked against before loading."""
    data = path.read_bytes()
    return f"{hashlib.sha256(data).hexdigest()} {len(data)}"


def _sealed(lib: Path) -> bool:
    """Whether ``lib`` is a complete build: its seal file exists and matches its bytes.

    Why check before loading: a truncated shared object (a crash or full disk during the first
    compile) is mapped by the dynamic loader without complaint and kills the process with SIGBUS
    at the first call, which no Python code can catch or explain.
    """
    seal = lib.with_name(lib.name + ".sha256")
    try:
        return seal.read_text().strip() == _digest(lib)
    except (OSError, UnicodeDecodeError):
        return False


def _compile(src: Path) -> Path:
    """The compiled C kernel of ``src`` in psum's cache, built when missing or not intact.

    A build writes a temporary file, ``fsync`` s it, writes the seal (sha256 and size, see
    :func:`_sealed`) and then renames the library into place; a library whose seal is missing or
    does not match is rebuilt. Builders of one key hold an ``flock`` so that concurrent first uses
    compile once.
    """
    text = src.read_bytes()
    cache = cache_dir("kernels")  # psum's one cache root: $PSUM_CACHE_DIR, else ~/.cache/psum
    cache.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(text + os.uname().machine.encode()).hexdigest()[:16]
    lib = cache / f"psum_kernels_{key}.so"
    if _sealed(lib):
        return lib
    with file_lock(cache / f".psum_kernels_{key}.lock"):
        if _sealed(lib):  # another process built it while this one waited
            return lib
        return _build(src, cache, lib)


def _build(src: Path, cache: Path, lib: Path) -> Path:
    cc = os.environ.get("CC", "gcc")
    last = ""
    # -march=native vectorises with the host's AVX2/AVX-512; the portable retry is still exact
    # (the arithmetic is IEEE binary32/64 plus integer ops, no fast-math).
    for flags in (["-O3", "-march=native"], ["-O3"]):
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=cache, prefix=".psum_kernels_")
        os.close(fd)
        cmd = [cc, *flags, "-fopenmp", "-ffp-contract=off", "-shared", "-fPIC", "-o", tmp, str(src), "-lm"]
        try:
            # ~30 CPU-seconds (every ISA variant and block path instantiated); on a loaded
            # 2-core machine that took 2-4 minutes of wall time, and a timeout means slow paths
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                                 preexec_fn=functools.partial(die_with_parent, os.getpid()))
        except (OSError, subprocess.TimeoutExpired) as exc:
            os.unlink(tmp)
            raise OSError(f"cannot run {cc}: {exc}") from None
        except BaseException:
            os.unlink(tmp)
            raise
        if res.returncode == 0:
            try:
                with open(tmp, "rb") as fh:  # durable before it becomes visible
                    os.fsync(fh.fileno())
                os.chmod(tmp, umask_mode(0o777))
                atomic_write(lib.with_name(lib.name + ".sha256"), _digest(Path(tmp)) + "\n")
                os.replace(tmp, lib)  # atomic: concurrent first uses never load a half-written file
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            return lib
        os.unlink(tmp)
        last = res.stderr.strip().splitlines()[-1:] or [""]
    raise OSError(f"{cc} failed to build the psum kernel: {last[0]}")


def _lib():
    """The loaded C kernel, or ``None`` when it cannot be built (then slower exact paths run)."""
    global _LIB, _LIB_ERROR
    if os.environ.get("PSUM_NO_CKERNEL"):
        return None
    if _LIB is not None or _LIB_ERROR is not None:
        return _LIB
    with _LIB_LOCK:
        if _LIB is None and _LIB_ERROR is None:
            try:
                lib = ctypes.CDLL(str(_compile(_CSRC)))
                lib.psum_accumulate.argtypes = [ctypes.POINTER(_Params), ctypes.c_int,
                                                ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
                lib.psum_accumulate.restype = ctypes.c_int
                lib.psum_slow_step.argtypes = [ctypes.POINTER(_Params), ctypes.c_double,
                                               ctypes.c_double, ctypes.c_double, ctypes.c_uint32]
                lib.psum_slow_step.restype = ctypes.c_double
                lib.psum_sr_rand.argtypes = [ctypes.c_uint32, ctypes.c_int64, ctypes.c_int64, ctypes.c_int]
                lib.psum_sr_rand.restype = ctypes.c_uint32
                lib.psum_isa.argtypes = [ctypes.c_int]
                lib.psum_isa.restype = ctypes.c_int
                lib.psum_lanes.argtypes = [ctypes.c_int, ctypes.c_int]
                lib.psum_lanes.restype = ctypes.c_int
                lib.psum_im2row2d_f32.argtypes = [ctypes.c_void_p] + [ctypes.c_int64] * 13 + [
                    ctypes.c_void_p, ctypes.c_int]
                lib.psum_im2row2d_f32.restype = None
                for name in ("psum_quantize_f32_f64", "psum_quantize_f64_f64"):
                    fn = getattr(lib, name)
                    fn.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64,
                                   ctypes.c_double, ctypes.c_double, ctypes.c_uint64, ctypes.c_uint64,
                                   ctypes.c_double, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
                    fn.restype = None
                _LIB = lib
            except OSError as exc:
                _LIB_ERROR = str(exc)
                # Exact either way, but much slower: say so once instead of running slow silently.
                warnings.warn(f"psum: the C kernel is not available ({_LIB_ERROR.splitlines()[0]}); emulation "
                              "falls back to slower exact paths (check $PSUM_CACHE_DIR and gcc)",
                              RuntimeWarning, stacklevel=2)
    return _LIB


_ISAS = {"generic": 0, "avx2": 1, "avx512": 2, "avx512fp16": 3}


def kernel_isa() -> str | None:
    """The instruction set the C kernel's float path runs on here: ``"avx512fp16"`` (AVX-512 with
    binary16 arithmetic: specs that are the host's own binary16 MAC run on it, see
    :func:`fp16_native`; all others as on ``"avx512"``), ``"avx512"``, ``"avx2"``,
    ``"generic"`` (portable vector code), or ``None`` without the C kernel.

    The library holds all three and picks at run time (``__builtin_cpu_supports``), so one cached
    build runs on any x86-64 host. ``$PSUM_KERNEL_ISA`` (one of those names) caps the choice, e.g.
    to compare the variants or to test each one on one machine; an unknown name is a ValueError.
    """
    lib = _lib()
    return None if lib is None else {v: k for k, v in _ISAS.items()}[lib.psum_isa(_isa_cap())]


def _isa_cap() -> int:
    want = os.environ.get("PSUM_KERNEL_ISA", "")
    if want and want not in _ISAS:
        raise ValueError(f"PSUM_KERNEL_ISA must be one of {', '.join(_ISAS)}, not {want!r}")
    return _ISAS.get(want, -1)


def c_kernel_available() -> bool:
    """True when the C kernel is built and loaded (gcc with OpenMP present)."""
    return _lib() is not None


_SPECIALS = {"ieee": 0, "fn": 1, "fnuz": 2, "fin": 3}


# frac classes in the order zero, (0, half), half, (half, 1) ulp as (guard, sticky); round_up as a
# function of them is a threshold ("up from class c on") for every mode, i.e. a bias to add before
# truncating, which is what the C vector path applies.
_FRAC_CLASSES = ((0, 0), (0, 1), (1, 0), (1, 1))
_THRESHOLDS = {(0, 0, 0, 0): 0, (0, 0, 0, 1): 1, (0, 0, 1, 1): 2, (0, 1, 1, 1): 3}


@functools.lru_cache(maxsize=64)
def _bias_classes(mode: Rounding) -> tuple[int, int]:
    """:func:`~psum.golden.rounding.round_up` for ``mode`` as the C vector path's rounding bias.

    Returns ``(bias_cls, dep)``: 2 bits per ``j = lsb | sign << 1`` (class 0 never rounds up,
    1 above half an ulp, 2 from half, 3 when inexact), read off :func:`round_table`; and what the
    classes depend on (bit 0: lsb, bit 1: sign, 7: both), so C instantiates no unused term.
    """
    tbl = round_table(mode)
    per = []
    for j in range(4):
        lsb, sign = j & 1, j >> 1
        ups = tuple((tbl >> (g | lsb << 1 | st << 2 | sign << 3)) & 1 for g, st in _FRAC_CLASSES)
        per.append(_THRESHOLDS[ups])  # KeyError: a rule that is no threshold (none is)
    on_lsb = per[1] != per[0] or per[3] != per[2]
    on_sign = per[2] != per[0] or per[3] != per[1]
    dep = 7 if on_lsb and on_sign else int(on_lsb) | int(on_sign) << 1
    return sum(c << (2 * j) for j, c in enumerate(per)), dep


@functools.lru_cache(maxsize=512)
def _cfmt(fmt, mode: Rounding = Rounding.RNE, saturate: bool = False) -> _Fmt:
    """The C kernel's view of a format with its rule book for ``(mode, saturate)``.

    The C code re-derives no rule: it looks the rounding increment and the exact-zero sign up in
    truth tables of :func:`~psum.golden.rounding.round_up` / ``exact_zero_sign`` and takes the
    overflow and infinity results as values decoded from ``overflow_codes`` / ``infinity_codes``.
    """
    if fmt is None:
        return _Fmt(0, 0, 1, 0, 1.0, 0, 0, 0, 0)
    if isinstance(fmt, IntFormat):
        return _Fmt(0, 0, 1, 0, float(fmt.max_int), fmt.bits, int(fmt.signed), 1, 1)
    ovf_pos, ovf_neg, inf_pos, inf_neg = (float(v) for v in fmt.decode(np.array(
        [*fmt.overflow_codes(mode, saturate), *infinity_codes(fmt, saturate)], dtype=np.uint64)))
    return _Fmt(fmt.man_bits, fmt.emin, int(fmt.subnormals), _SPECIALS[fmt.specials],
                fmt.max_value, 0, 0, 0, 1, round_table(mode), zero_sign_table(mode, fmt.has_neg_zero),
                _bias_classes(mode)[0], ovf_pos, ovf_neg, inf_pos, inf_neg)


# ---------------------------------------------------------------------------------------------
# Exactness conditions
# ---------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=512)
def _fmt_range(fmt):
    """(smallest positive, largest finite) value of a format (cached: the properties decode)."""
    if isinstance(fmt, IntFormat):
        return 1.0, float(max(abs(fmt.min_int), fmt.max_int))
    return fmt.min_subnormal, fmt.max_value


def _nz_range(x):
    """(min nonzero |x|, max |x|) of a torch tensor; (inf, 0) when all zero."""
    import torch

    if not x.numel():
        return math.inf, 0.0
    if any(st == 0 and n > 1 for st, n in zip(x.stride(), x.shape)):
        # a broadcast view (an accumulate's init): its values are those of one slice
        x = x[tuple(slice(0, 1) if st == 0 else slice(None) for st in x.stride())]
    ity = {torch.float32: torch.int32, torch.float64: torch.int64}.get(x.dtype)
    if ity is None:
        ax = x.abs()
        mx = float(ax.max())
        mn = float(torch.where(ax > 0, ax, math.inf).min())
        return mn, mx
    # On the bit patterns (4x faster than masking the float values): magnitudes order as their
    # patterns with the sign bit cleared, NaN patterns above inf's (so the max is NaN when a NaN
    # is present, as torch's max is); "pattern - 1" with the sign bit cleared sends 0 to the top,
    # out of the nonzero minimum's way.
    mag = (1 << (8 * x.element_size() - 1)) - 1
    inf = 0x7F800000 if ity is torch.int32 else 0x7FF0000000000000
    bits = x.contiguous().view(ity) & mag
    top = torch.tensor([int(bits.max())], dtype=ity).view(x.dtype)
    low = int(((bits - 1) & mag).min()) + 1  # smallest nonzero pattern (NaNs lie above inf)
    mn = math.inf if low >= inf else float(torch.tensor([low], dtype=ity).view(x.dtype))
    return mn, float(top)


# The host float of each fast path, by significand bits: its limits come from the format table.
_HOST_FLOAT = {24: NAMED["fp32"], 53: NAMED["fp64"]}


def float_path_ok(spec: MacSpec, w: int, A=None, B=None, a_range=None) -> bool:
    """True when the TwoSum/round-to-odd algorithm in a ``w``-bit host float (24 or 53) is exact.

    Conditions: the exact product fits (``p_a + p_b <= w``), round-to-odd at ``w`` bits followed
    by the accumulator rounding is exact (``w >= p_acc + 2``, plus ``sr_bits`` for SR, checked at
    53 bits since SR runs in binary64), every accumulator/product value and every product of the
    data is a normal host float (exponent range), so the bit-level rounding can read the exponent.
    ``a_range`` (optional) bounds ``|A|`` in place of a pass over ``A`` (see :func:`accumulate`).
    """
    verdict, lo, hi = _float_path_static(spec, w)
    if verdict is not None:
        return verdict
    if A is not None:
        amin, amax = _range_of(A, a_range)
        bmin, bmax = _nz_range(B)
        if not (math.isfinite(amax) and math.isfinite(bmax)):
            return False
        if amin * bmin < lo or amax * bmax >= hi:  # products exact and normal (or zero)
            return False
    return True


@functools.lru_cache(maxsize=512)
def _float_path_static(spec: MacSpec, w: int):
    """:func:`float_path_ok`'s conditions on the formats alone (cached: a network calls the kernel
    once per layer block, and the format properties decode codes each time): ``(verdict, lo,
    hi)``, the verdict None when the data decides (products in ``[lo, hi)`` or zero)."""
    if spec.int_acc:
        return False, 0.0, 0.0
    if any(getattr(f, "specials", None) not in _SPECIALS for f in (spec.acc, spec.prod) if f is not None):
        return False, 0.0, 0.0  # a policy the C kernel has no code for (p3109): the exact numpy path runs
    host = _HOST_FLOAT[w]
    if w == 24:
        # products must be normal binary32 numbers, at least 2**emin and below 2**emax (one binade
        # of headroom under fp32's top, so a TwoSum of two of them stays finite)
        lo, hi, p_need = host.min_normal, 2.0**host.emax, spec.acc.precision + 2
    else:
        # binary64 runs with a wide margin inside its normal range (2**-1022 .. 2**1024)
        lo, hi, p_need = 2.0**-1000, 2.0**1000, spec.acc.precision + 2 + spec.sr_bits
    if spec.rounding is Rounding.SR and w == 24 and spec.acc.precision + 2 + spec.sr_bits > 53:
        return False, lo, hi
    if spec.a.precision + spec.b.precision > w or p_need > w:
        return False, lo, hi
    for fmt in (spec.acc, spec.prod):
        if fmt is None:
            continue
        if isinstance(fmt, FloatFormat) and (fmt.man_bits > w - 3):
            return False, lo, hi
        small, big = _fmt_range(fmt)
        # every value of the format (incl. its subnormals) is exact in the host type; the
        # normal-range test of the C fast path needs 2**emin to be a normal host number.
        if small < host.min_subnormal or big > host.max_value or 2.0**fmt.emin < lo:
            return False, lo, hi
    (amin, amax), (bmin, bmax) = _fmt_range(spec.a), _fmt_range(spec.b)
    if amin * bmin >= lo and amax * bmax < hi:
        return True, lo, hi  # every product of the formats is exact and normal: no data check needed
    return None, lo, hi


@functools.lru_cache(maxsize=512)  # per kernel call twice; the format properties decode codes
def rne_path(spec: MacSpec, w: int) -> int:
    """Which round-to-nearest-even block the C kernel may run for ``spec`` in a ``w``-bit host float.

    Returns 0 (none: the TwoSum / round-to-odd blocks), 1 (plain host sum, then the
    magic-constant rounding) or 2 (host sum rounded to odd, then the same rounding); the proof of
    each condition is the comment above ``DEFINE_KERNEL`` in ``csrc/psum_kernels.c`` (its items
    (a)-(d) are cited here). The caller has checked :func:`float_path_ok` for ``w``.

    Conditions: the rule book rounds like the host's round-to-nearest-even (the same rounding
    bias classes as ``rne``, which depend on the lsb only, and the host's exact-zero sign), so
    (a) holds; accumulator and product formats have subnormals and a negative zero (the
    magic constant rounds into the subnormal range, and a sum that rounds to zero keeps its
    sign); ``p_acc <= w - 2`` ((a), (b)). Path 1 when a plain sum cannot create a false tie (c):
    ``w >= p_acc + pp + 1`` and either ``pp <= p_acc`` and ``w >= 2 p_acc + 1``, or the whole
    accumulator range fits ``w`` bits; ``pp`` is the product's precision (``p_a + p_b``
    fused, ``p_prod`` unfused).

    Parameters
    ----------
    spec : MacSpec
        The MAC spec (order ``seq``; other orders call the kernel with their ``seq`` spec).
    w : int
        Significand bits of the host float: 24 (float32 lanes) or 53 (float64 lanes).

    Returns
    -------
    int
        0, 1 or 2 as above.
    """
    if spec.int_acc or spec.fixed_acc or spec.rounding is Rounding.SR:
        return 0
    if _bias_classes(spec.rounding) != _bias_classes(Rounding.RNE) or not _host_zero_ok(spec.rounding):
        return 0
    fmts = [spec.acc] + ([spec.prod] if spec.prod is not None else [])
    if any(not isinstance(f, FloatFormat) or not f.subnormals or not f.has_neg_zero
           or f.precision > w - 2 for f in fmts):
        return 0
    pa = spec.acc.precision
    pp = spec.prod.precision if spec.prod is not None else spec.a.precision + spec.b.precision
    if pp > w - 1:
        return 0
    # bits from the top binade's leading bit (as the C side reads it off max_value) to the quantum
    acc_range_bits = math.frexp(spec.acc.max_value)[1] - 1 - spec.acc.emin + spec.acc.man_bits + 1
    if w >= pa + pp + 1 and ((pp <= pa and w >= 2 * pa + 1) or w >= acc_range_bits):
        return 1
    return 2


_FP16 = NAMED["fp16"]


@functools.lru_cache(maxsize=512)
def _in_fp16(fmt) -> bool:
    """Whether every value of ``fmt`` is a binary16 value (precision, range and quantum)."""
    return (isinstance(fmt, FloatFormat) and fmt.precision <= _FP16.precision
            and fmt.max_value <= _FP16.max_value and fmt.emin - fmt.man_bits >= _FP16.emin - _FP16.man_bits
            and fmt.emin >= _FP16.emin - _FP16.man_bits)


def fp16_native(spec: MacSpec) -> int:
    """Whether ``spec`` runs on the host's IEEE binary16 arithmetic (the C kernel's AVX512-FP16 path).

    That is: the accumulator is binary16 (``fp16``: subnormals, inf, NaN), the spec takes a
    float32-lane round-to-nearest-even block (:func:`rne_path`, so the rule book rounds and signs
    exact zeros as IEEE's roundTiesToEven does), both operand formats hold only binary16 values,
    and the product is exact (fused: IEEE fusedMultiplyAdd) or rounded into binary16 itself
    (unfused ``prod=fp16``: IEEE multiplication then addition). Overflow and non-finite values,
    where IEEE and the rule book may differ, are recomputed by the float path (``run_h32`` in
    ``csrc/psum_kernels.c``).

    Parameters
    ----------
    spec : MacSpec
        The MAC spec.

    Returns
    -------
    int
        1 (fused), 2 (unfused), 3 (fused into a narrower ``e5m<M>`` accumulator with binary16's
        exponent layout, ``M <= 8``: a binary16 FMA rounded to odd, then rounded on the binary16
        pattern; finite operands only) or 0 (none of these).
    """
    if spec.int_acc or spec.fixed_acc or not rne_path(spec, 24):
        return 0
    if not (_in_fp16(spec.a) and _in_fp16(spec.b)):
        return 0
    if spec.acc == _FP16:
        if spec.prod is None:
            return 1
        return 2 if spec.prod == _FP16 else 0
    acc = spec.acc
    # e5m<M> with binary16's layout (bias, emin, ieee specials, subnormals) and M + 3 <= 11:
    # rounded on binary16 patterns after a round-to-odd binary16 FMA (mode 3, run_h32)
    if (spec.prod is None and isinstance(acc, FloatFormat) and acc.exp_bits == _FP16.exp_bits
            and acc.bias == _FP16.bias and acc.specials == "ieee" and acc.subnormals
            and acc.precision + 2 <= _FP16.precision):
        return 3
    return 0


class _LazyRange:
    """A caller's ``a_range`` function, called on first use (:func:`accumulate`)."""

    def __init__(self, fn):
        self.fn, self.value = fn, None

    def get(self):
        if self.value is None:
            self.value = tuple(self.fn())
        return self.value


def _range_of(A, a_range):
    """``(min nonzero |A|, max |A|)`` or the caller's bounds (:func:`accumulate`'s ``a_range``)."""
    if a_range is None:
        return _nz_range(A)
    if isinstance(a_range, _LazyRange):
        return a_range.get()
    return tuple(a_range()) if callable(a_range) else a_range


def _int_exact_bound(spec: MacSpec, A, B, init, K, a_range=None):
    """Largest |partial sum| bound of an integer MAC (products after fitting)."""
    amax, bmax = _fmt_range(spec.a)[1], _fmt_range(spec.b)[1]
    if K * amax * bmax >= 2.0**24:  # the formats alone do not bound it well: look at the data
        amax, bmax = _range_of(A, a_range)[1], _nz_range(B)[1]
    pmax = amax * bmax
    if spec.prod is not None:
        pmax = min(pmax, float(max(abs(spec.prod.min_int), spec.prod.max_int)))
    _, imax = _nz_range(init)
    if spec.saturate:
        return float(max(abs(spec.acc.min_int), spec.acc.max_int)) + pmax + imax
    return K * pmax + imax


# ---------------------------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------------------------
def _index_grid(M, N, row_base, col_stride):
    rb = np.arange(M, dtype=np.int64) * N if row_base is None else np.asarray(row_base, dtype=np.int64)
    return rb[:, None] + np.arange(N, dtype=np.int64)[None, :] * int(col_stride)


def _run_c(spec, A, B, init, *, row_base, col_stride, k_offset, seed, w, nthreads=None):
    import torch

    lib = _lib()
    dt = torch.float32 if w == 24 else torch.float64
    isa = _isa_cap()
    lanes = lib.psum_lanes(lib.psum_isa(isa), 0 if w == 24 else 1)
    M, K = A.shape
    N = B.shape[1]
    Np = -(-N // lanes) * lanes
    A_ = A.to(dt).contiguous()
    if Np == N:  # no padding: one conversion each (out: a fresh array the kernel writes)
        B_ = B.to(dt).contiguous()
        out = init.to(dt, copy=True).contiguous()
    else:
        B_ = torch.zeros((K, Np), dtype=dt)
        B_[:, :N] = B
        out = torch.zeros((M, Np), dtype=dt)
        out[:, :N] = init
    rb = np.ascontiguousarray(np.arange(M, dtype=np.int64) * N if row_base is None else row_base,
                              dtype=np.int64)
    p = _Params(M, Np, K, K, Np, Np, spec.rounding.code, int(spec.saturate), spec.sr_bits,
                int(spec.int_acc), int(seed) & _M32, int(col_stride), int(k_offset),
                rb.ctypes.data_as(ctypes.POINTER(ctypes.c_int64)),
                _cfmt(spec.acc, spec.rounding, spec.saturate),
                _cfmt(spec.prod, Rounding.RNE if spec.rounding is Rounding.SR else spec.rounding, spec.saturate),
                nthreads or torch.get_num_threads(), int(not _host_zero_ok(spec.rounding)),
                _bias_classes(spec.rounding)[1], isa, rne_path(spec, w), fp16_native(spec) if w == 24 else 0)
    if M and K and N:
        lib.psum_accumulate(ctypes.byref(p), 0 if w == 24 else 1, A_.data_ptr(), B_.data_ptr(),
                            out.data_ptr())
    return (out if Np == N else out[:, :N]).double()


def im2row2d(x, k, stride, dilation):
    """``(B*OH*OW, C*KH*KW)`` rows of a padded float32 ``(B, C, H, W)`` CPU tensor whose last
    dimension is contiguous, in convolution order (row ``(b, oh, ow)``, column ``(c, i, j)``):
    the C library's copy loop (``psum_im2row2d_f32``); ``None`` when it does not apply (no C
    library, another dtype or device, a strided last dimension)."""
    import torch

    lib = _lib()
    if lib is None or x.dtype != torch.float32 or x.device.type != "cpu" or x.dim() != 4 or (
            x.shape[3] > 1 and x.stride(3) != 1):
        return None
    B, C, H, W = x.shape
    (KH, KW), (SH, SW), (DH, DW) = k, stride, dilation
    OH, OW = (H - DH * (KH - 1) - 1) // SH + 1, (W - DW * (KW - 1) - 1) // SW + 1
    out = torch.empty((B * OH * OW, C * KH * KW), dtype=torch.float32)
    if out.numel():
        lib.psum_im2row2d_f32(x.data_ptr(), B, C, x.stride(0), x.stride(1), x.stride(2), KH, KW, SH, SW,
                              DH, DW, OH, OW, out.data_ptr(), torch.get_num_threads())
    return out


def quantize_rne_saturate(x, scale, consts, out_dtype):
    """The C library's saturating RNE quantisation of ``x / scale`` (``psum_quantize_*``), or
    ``None`` when it does not apply (no C library, a CUDA tensor, another dtype or scale shape).

    Parameters
    ----------
    x : torch.Tensor, float32 or float64, CPU
    scale : float, or float64 tensor of shape (R, 1) for a 2-D ``x`` with R rows (per-row scales)
    consts : tuple
        ``(max_value, 2 * max_value, lowest binade's exponent field, (52 - M) << 52, min_normal,
        subnormals, has_neg_zero)`` of the format, float64 layout (``ops._float_consts``).
    out_dtype : torch.dtype
        float32 (every value of the format is a float32 value) or float64.

    Returns
    -------
    torch.Tensor of out_dtype, x's shape, or None
    """
    import torch

    lib = _lib()
    if lib is None or x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        return None
    if isinstance(scale, float):
        sc, row_len = torch.tensor([scale], dtype=torch.float64), max(1, x.numel())
    elif (isinstance(scale, torch.Tensor) and scale.dtype == torch.float64 and scale.device.type == "cpu"
          and x.dim() == 2 and tuple(scale.shape) == (x.shape[0], 1)):
        sc, row_len = scale.contiguous(), max(1, x.shape[1])
    else:
        return None
    xc = x.detach().contiguous()
    out = torch.empty(x.shape, dtype=torch.float64)
    name = f"psum_quantize_{'f32' if x.dtype == torch.float32 else 'f64'}_f64"
    mv, two_mv, lo_bits, c_offset, min_normal, subnormals, neg_zero = consts
    if x.numel():
        getattr(lib, name)(xc.data_ptr(), x.numel(), sc.data_ptr(), row_len, mv, two_mv, lo_bits, c_offset,
                           min_normal, int(subnormals), int(neg_zero), out.data_ptr())
    return out.to(out_dtype)  # exact: the caller asks for float32 only when the format fits it


def _wrap(spec, v):
    """Wrap exact integer values (float64 tensor) into the accumulator's two's complement range."""
    import torch

    if spec.acc.bits >= 63:
        return v
    iv = v.to(torch.int64)
    m = 1 << spec.acc.bits
    w = iv & (m - 1)
    if spec.acc.signed:
        w = torch.where(w >= (m >> 1), w - m, w)
    return w.double()


def _fit_int_torch(fmt, v, saturate):
    import torch

    if saturate:
        return v.clamp(fmt.min_int, min(fmt.max_int, (1 << 63) - 1))
    if fmt.bits >= 64:  # int64 arithmetic is already mod 2**64 (callers exclude uint64)
        return v
    m = 1 << fmt.bits
    w = v & (m - 1)
    if fmt.signed:
        w = torch.where(w >= (m >> 1), w - m, w)
    return w


def _run_int_torch(spec, A, B, init):
    """Integer MAC in int64 torch ops (any device), one step for all outputs at a time."""
    Ai, Bi = A.round().long(), B.round().long()
    acc = init.round().long()
    for k in range(A.shape[1]):
        p = Ai[:, k:k + 1] * Bi[k:k + 1, :]
        if spec.prod is not None:
            p = _fit_int_torch(spec.prod, p, spec.saturate)
        acc = acc + p
        if spec.saturate:
            acc = _fit_int_torch(spec.acc, acc, True)
    if not spec.saturate:
        acc = _fit_int_torch(spec.acc, acc, False)
    return acc.double()


def codes(fmt, values):
    """Exact codes of values that lie in ``fmt`` (numpy float64 -> uint64)."""
    if isinstance(fmt, IntFormat):
        return fmt.encode(values, saturate=False)
    return fmt.encode(values)


def _run_numpy(spec, A, B, init, *, row_base, col_stride, k_offset, seed, stats=None):
    """mac_step over all outputs per step. ``stats`` (a callable) sees every step's
    ``(spec, old, p, new, flags)``, the flags being the rounder's (:func:`mac_step` ``flags=True``)."""
    import torch

    dev = A.device
    An = A.detach().cpu().double().numpy()
    Bn = B.detach().cpu().double().numpy()
    M, K = An.shape
    N = Bn.shape[1]
    ac, bc = codes(spec.a, An), codes(spec.b, Bn)
    acc = codes(spec.acc, init.detach().cpu().double().numpy())
    idx = _index_grid(M, N, row_base, col_stride) if spec.rounding is Rounding.SR else None
    for k in range(K):
        rand = sr_rand(seed, idx, k_offset + k, spec.sr_bits) if idx is not None else None
        if stats is None:
            new = mac_step(spec, acc, ac[:, k:k + 1], bc[k:k + 1, :], rand=rand)
        else:
            new, flags = mac_step(spec, acc, ac[:, k:k + 1], bc[k:k + 1, :], rand=rand, flags=True)
            stats(spec, acc, An[:, k:k + 1] * Bn[k:k + 1, :], new, flags)
        acc = new
    return torch.from_numpy(spec.acc.decode(acc)).to(dev)


def _round_fixed(sb, D, mode):
    """Round int64 float bit patterns at the fixed bit position ``D`` (the C kernel's ``rnd_*``).

    Magnitude arithmetic on the pattern: adding one ulp to a sign-magnitude pattern grows the
    magnitude, and a carry into the exponent field is the next binade. The decision is the rule
    book's :func:`~psum.golden.rounding.round_up` on torch bool tensors.
    """
    one = 1 << D
    up = round_up(mode, lsb=(sb & one) != 0, guard=(sb & (one >> 1)) != 0,
                  sticky=(sb & ((one >> 1) - 1)) != 0, sign=sb < 0)
    return (sb & ~(one - 1)) + up.long() * one


@functools.lru_cache(maxsize=64)
def _host_zero_ok(mode: Rounding) -> bool:
    """Whether the host's round-to-nearest addition gives the exact-zero sign ``mode`` wants.

    The float fast paths take exact zero sums from host arithmetic, which follows IEEE's rule for
    round to nearest; where the rule book's :func:`~psum.golden.rounding.exact_zero_sign` differs
    for ``mode`` (rdn), a zero result is recomputed by the slow path. (An ``fnuz`` accumulator
    never meets a ``-0`` here: it holds none, and ``+0 + -0`` is ``+0`` on the host.)
    """
    return zero_sign_table(mode) == zero_sign_table(Rounding.RNE)


def _run_torch(spec, A, B, init, *, row_base, col_stride, k_offset, seed):
    """TwoSum + round-to-odd + fixed-position rounding in float64 torch ops (CPU or CUDA).

    Exact by the argument in the C kernel's header (w = 53); results outside the accumulator's
    normal range (and rdn zeros) are flagged and recomputed with mac_step.
    """
    import torch

    if spec.rounding is Rounding.SR:
        return _run_numpy(spec, A, B, init, row_base=row_base, col_stride=col_stride,
                          k_offset=k_offset, seed=seed)
    A = A.double()
    B = B.double()
    acc = init.double().clone()
    M, K = A.shape
    N = B.shape[1]
    sign = -(1 << 63)

    def consts(fmt):
        maxb = torch.tensor([fmt.max_value], dtype=torch.float64).view(torch.int64).item()
        minn = torch.tensor([2.0**fmt.emin], dtype=torch.float64).view(torch.int64).item()
        return 52 - fmt.man_bits, maxb, minn

    def bad_range(s0, sb, r, maxb, minn):
        a0, ab, ar = s0 & ~sign, sb & ~sign, r & ~sign
        return (a0 > maxb) | (ar > maxb) | ((ab < minn) & (ab != 0))

    Dc, maxc, minc = consts(spec.acc)
    if spec.prod is not None:
        Dp, maxp, minp = consts(spec.prod)
    pmode = Rounding.RNE if spec.rounding is Rounding.SR else spec.rounding
    zero_ok = _host_zero_ok(spec.rounding)
    for k in range(K):
        p = A[:, k:k + 1] * B[k:k + 1, :]  # exact (float_path_ok)
        bad = torch.zeros((M, N), dtype=torch.bool, device=acc.device)
        if spec.prod is not None:
            pb = p.view(torch.int64)
            r = _round_fixed(pb, Dp, pmode)
            bad |= bad_range(pb, pb, r, maxp, minp)
            p = r.view(torch.float64)
            if spec.prod.specials == "fnuz":
                p = p + 0.0  # a zero product has no sign there
        s = acc + p
        z = s - acc
        err = (acc - (s - z)) + (p - z)
        s0 = s.view(torch.int64)
        eb = err.view(torch.int64)
        adj = (err != 0) & ((s0 & 1) == 0)
        sb = s0 + torch.where((s0 ^ eb) < 0, -1, 1) * adj.long()  # round to odd at 53 bits
        r = _round_fixed(sb, Dc, spec.rounding)
        bad |= bad_range(s0, sb, r, maxc, minc)
        if not zero_ok:
            bad |= (r & ~sign) == 0
        new = r.view(torch.float64)
        if bool(bad.any()):
            mi, ni = torch.nonzero(bad, as_tuple=True)
            old = acc[mi, ni].cpu().numpy()
            av = A[mi, k].cpu().numpy()
            bv = B[k, ni].cpu().numpy()
            code = mac_step(spec, codes(spec.acc, old), codes(spec.a, av), codes(spec.b, bv))
            new[mi, ni] = torch.from_numpy(spec.acc.decode(code)).to(new.device)
        acc = new
    return acc


# ---------------------------------------------------------------------------------------------
# Fixed-point accumulators
# ---------------------------------------------------------------------------------------------
def _lsb_exp(fmt) -> int:
    """Exponent of the smallest non-zero magnitude step of a format (every value is a multiple)."""
    if isinstance(fmt, FloatFormat):
        return fmt.emin - fmt.man_bits
    return getattr(fmt, "lsb_exp", 0)  # int<N>: 0; q<I>.<F>: -F


def fixed_gemm_ok(spec: MacSpec, A, B, init) -> bool:
    """True when the exact GEMM computes a fixed-point ``spec`` bit-exactly (see the module docstring).

    Conditions: every product a multiple of the lsb (``lsb_exp(a) + lsb_exp(b) >= -F``, so no
    step rounds); every partial sum, in lsbs, below ``2**53`` (bounded by ``K * max|a| * max|b|
    + max|init|`` of the data); products finite; and wrap-around, or saturation that the bound
    shows can never fire (every partial sum inside the range: then it equals wrap-around).
    """
    if (not spec.fixed_acc or spec.acc.bits > 62
            or _lsb_exp(spec.a) + _lsb_exp(spec.b) < spec.acc.lsb_exp):
        return False
    amax, bmax = _nz_range(A)[1], _nz_range(B)[1]
    if not (math.isfinite(amax) and math.isfinite(bmax)):
        return False
    bound = (A.shape[1] * amax * bmax + _nz_range(init)[1]) * 2.0 ** spec.acc.frac_bits
    if spec.saturate and bound > spec.acc.max_int:
        return False
    return bound < 2.0**53


def fixed_torch_ok(spec: MacSpec, A, B) -> bool:
    """True when :func:`_run_fixed_torch` is exact for a fixed-point ``spec`` on this data.

    Conditions: the product of two operand values is exact in float64 (``p_a + p_b <= 53``) and
    normal (every non-zero ``|a*b| >= 2**-1000``), and ``|a*b| * 2**F < 2**61`` so the floor of the
    scaled product and its sum with a stored integer (``I + F <= 62``) stay exact in int64.
    """
    if not spec.fixed_acc or spec.acc.bits > 62 or spec.a.precision + spec.b.precision > 53:
        return False
    (amin, amax), (bmin, bmax) = _nz_range(A), _nz_range(B)
    if not (math.isfinite(amax) and math.isfinite(bmax)):
        return False
    if amax == 0 or bmax == 0:
        return True
    return amin * bmin >= 2.0**-1000 and amax * bmax * 2.0 ** spec.acc.frac_bits < 2.0**61


def _fit_fixed_torch(fmt, v, saturate):
    """Stored integers (int64 tensor) wrapped or saturated into ``fmt``'s ``I + F`` bits."""
    return _fit_int_torch(fmt, v, saturate)


def _run_fixed_torch(spec, A, B, init, *, row_base, col_stride, k_offset, seed):
    """Sequential fixed-point accumulation in float64/int64 torch ops, exact (:func:`fixed_torch_ok`).

    Per step, with ``k`` the stored integer and ``x = a*b * 2**F`` (exact: a product of two
    float64 values that fits 53 bits, scaled by a power of two): ``xi = floor(x)`` and
    ``xf = x - xi`` are exact (``xf`` is a multiple of x's ulp, below 1), so the sum is
    ``floor + xf`` with ``floor = k + xi`` exact in int64. Its magnitude is ``floor + xf`` for a
    non-negative floor, else ``(-floor - 1) + (1 - xf)`` (``-floor`` when ``xf == 0``); guard and
    sticky of ``1 - xf`` are read without computing it (``1 - xf >= 1/2`` iff ``xf <= 1/2``), as
    are the top ``sr_bits`` residual bits of stochastic rounding (``2**k - ceil(xf * 2**k)``).
    The increment is the rule book's ``round_up`` on torch bool tensors.
    """
    import torch

    fmt = spec.acc
    F = fmt.frac_bits
    dev = A.device
    A = A.double()
    B = B.double()
    M, K = A.shape
    N = B.shape[1]
    acc = torch.round(torch.ldexp(init.double(), torch.tensor(float(F), dtype=torch.float64))).long()
    acc = acc.to(dev).clone()
    scale = torch.tensor(2.0**F, dtype=torch.float64, device=dev)
    idx = _index_grid(M, N, row_base, col_stride) if spec.rounding is Rounding.SR else None
    half = torch.tensor(0.5, dtype=torch.float64, device=dev)
    for k in range(K):
        x = (A[:, k:k + 1] * B[k:k + 1, :]) * scale  # exact (fixed_torch_ok)
        xi = torch.floor(x)
        xf = x - xi  # exact: a multiple of x's ulp in [0, 1)
        floor = acc + xi.long()
        neg = floor < 0
        inexact = xf != 0
        guard = torch.where(neg, inexact & (xf <= half), xf >= half)
        sticky = inexact & (xf != half)
        trunc = torch.where(neg, torch.where(inexact, -floor - 1, -floor), floor)
        carry = None
        if idx is not None:
            kb = spec.sr_bits
            top_pos = torch.floor(xf * 2.0**kb).long()
            top_neg = torch.where(inexact, (1 << kb) - torch.ceil(xf * 2.0**kb).long(), torch.zeros_like(top_pos))
            top = torch.where(neg, top_neg, top_pos)
            rand = torch.from_numpy(sr_rand(seed, idx, k_offset + k, kb)).to(dev)
            carry = top + rand >= (1 << kb)
        up = round_up(spec.rounding, lsb=(trunc & 1) == 1, guard=guard, sticky=sticky, sign=neg,
                      sr_carry=carry)
        mag = trunc + up.long()
        acc = _fit_fixed_torch(fmt, torch.where(neg, -mag, mag), spec.saturate)
    return torch.ldexp(acc.double(), torch.tensor(float(-F), dtype=torch.float64, device=dev))


def _nan_rule(spec, out):
    """A NaN value left by the torch path's fast lanes becomes the value of
    :func:`psum.golden.mac.nan_result_code` (+0) in a format without NaN, as mac_step and the RTL
    give (a guard: the torch path recomputes special lanes with mac_step)."""
    import torch

    if spec.acc.has_nan:
        return out
    zero = float(spec.acc.decode([nan_result_code(spec.acc)])[0])
    return torch.where(torch.isnan(out), torch.full_like(out, zero), out)


def _accumulate_fixed(spec, A, B, init, backend, **kw):
    """:func:`accumulate` for a fixed-point accumulator: gemm, torch or numpy (never the C kernel)."""
    import torch

    if backend == "c":
        raise ValueError(f"backend c does not take fixed-point accumulators (acc={spec.acc}); "
                         "use auto, gemm, torch or numpy")
    if backend in ("auto", "gemm") and fixed_gemm_ok(spec, A, B, init):
        # Exact GEMM in lsb units (module docstring), then one wrap into I + F bits.
        s = (A.double() @ B.double() + init) * 2.0 ** spec.acc.frac_bits
        wrapped = _fit_int_torch(spec.acc, s.long(), False)
        return torch.ldexp(wrapped.double(), torch.tensor(float(spec.acc.lsb_exp), dtype=torch.float64,
                                                         device=A.device))
    if backend == "gemm":
        raise ValueError(f"backend gemm cannot compute {spec} exactly (saturation, products off the "
                         "2**-F grid, or partial sums of 2**53 lsbs or more)")
    if backend in ("auto", "torch") and fixed_torch_ok(spec, A, B):
        return _run_fixed_torch(spec, A, B, init, **kw)
    if backend == "torch":
        raise ValueError(f"backend torch is inexact for {spec} on these operands; use numpy")
    return _run_numpy(spec, A, B, init, **kw)


# ---------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------
def accumulate(spec, A, B, init, *, row_base=None, col_stride=1, k_offset=0, seed=0,
               backend="auto", stats=None, a_range=None):
    """Sequential MAC accumulation of a GEMM, bit-identical to ``mac_step`` per element.

    Parameters
    ----------
    spec : MacSpec or str
        The unit (its ``order`` is ignored here: this is the sequential kernel).
    A : torch.Tensor, shape (M, K)
        Operand ``a`` values, each exactly a value of ``spec.a``.
    B : torch.Tensor, shape (K, N)
        Operand ``b`` values, each exactly a value of ``spec.b``.
    init : torch.Tensor, shape (M, N) or broadcastable
        Initial accumulator values (exactly values of ``spec.acc``).
    row_base, col_stride : optional
        Element index of output ``(m, n)`` for stochastic rounding is ``row_base[m] + n*col_stride``
        (default ``m*N + n``).
    k_offset : int
        Step number of the first product (stochastic rounding).
    seed : int
        Stochastic rounding seed (32 bits used).
    backend : str
        One of :data:`BACKENDS`.
    stats : callable, optional
        Forces the numpy backend and is called as ``stats(spec, old_codes, products, new_codes,
        flags)`` after every step (``flags``: the rounder's, see :func:`psum.golden.mac_step`).
    a_range : (float, float) or callable, optional
        Bounds ``(lo, hi)`` with ``lo <= `` every nonzero ``|A|`` and ``hi >=`` every ``|A|``,
        or a function returning them (called at most once, only when the formats alone do not
        settle the choice), when the caller knows them cheaply (an im2col matrix holds only its
        input's values and padding zeros, so the input's :func:`_nz_range` bounds it at a ninth
        of the cost for a 3x3 kernel). Only the choice of an exact path reads them (wider bounds
        choose more conservatively); default: computed from ``A``.

    Returns
    -------
    torch.Tensor of float64, shape (M, N)
        Final accumulator values (NaN/inf where the accumulator holds them), on A's device.

    Raises
    ------
    ValueError
        If ``backend`` is unknown or cannot compute ``spec`` exactly.
    """
    import torch

    spec = MacSpec.parse(spec)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    M, K = A.shape
    N = B.shape[1]
    init = torch.broadcast_to(init.to(A.device, torch.float64), (M, N))
    kw = dict(row_base=row_base, col_stride=col_stride, k_offset=k_offset, seed=seed)
    if callable(a_range):  # evaluated on first use, then kept for the later checks
        a_range = _LazyRange(a_range)
    if stats is not None:
        return _run_numpy(spec, A, B, init, stats=stats, **kw)
    if spec.fixed_acc:
        return _accumulate_fixed(spec, A, B, init, backend, **kw)
    cpu = A.device.type == "cpu"
    if spec.int_acc:
        bound = _int_exact_bound(spec, A, B, init, K, a_range)
        prod_inert = spec.prod is None or _fmt_range(spec.a)[1] * _fmt_range(spec.b)[1] <= min(
            spec.prod.max_int, -spec.prod.min_int) or (
            _range_of(A, a_range))[1] * _nz_range(B)[1] <= min(
            spec.prod.max_int, -spec.prod.min_int)
        if backend in ("auto", "gemm") and not spec.saturate and prod_inert and bound < 2.0**53:
            # Exact GEMM: every partial sum is an integer below 2**24 (float32) / 2**53 (float64)
            # in magnitude, so BLAS's summation order and FMA use cannot change it.
            dt = torch.float32 if bound < 2.0**24 else torch.float64
            s = (A.to(dt) @ B.to(dt)).double() + init
            return _wrap(spec, s)
        if backend == "gemm":
            raise ValueError(f"backend gemm cannot compute {spec} exactly (saturation or product wrap)")
        if backend in ("auto", "c") and cpu and _lib() is not None and bound < 2.0**53:
            w = 24 if bound < 2.0**24 else 53
            out = _run_c(spec, A, B, init, w=w, **kw)
            return out if spec.saturate else _wrap(spec, out)
        if backend == "c":
            raise ValueError("backend c is unavailable (no C compiler, not a CPU tensor, or values too large)")
        # int64 torch ops are exact while every partial sum stays below 2**62 in magnitude; a
        # wrapping signed accumulator is also exact beyond that (int64 arithmetic is mod 2**64 and
        # every wrap keeps low bits). Anything else (saturating 64-bit sums, uint64 values above
        # 2**63) takes mac_step's exact Python-int path: int32 x int32 into a saturating int64
        # once gave 0.0 instead of 2**63 - 1.
        torch_exact = bound < 2.0**62 or (not spec.saturate and spec.acc.signed)
        if backend == "numpy" or not torch_exact:
            return _run_numpy(spec, A, B, init, **kw)
        return _run_int_torch(spec, A, B, init)
    if backend == "gemm":
        raise ValueError("backend gemm applies only to wrap-around integer accumulators")
    ok53 = float_path_ok(spec, 53, A, B, a_range)
    # The C kernel carries a NaN result on as a NaN value; an accumulator without NaN holds +0
    # there and keeps accumulating (nan_result_code), so such data takes the torch/numpy paths.
    c_ok = ok53 and (spec.acc.has_nan or bool(torch.isfinite(A).all() and torch.isfinite(B).all()))
    if backend in ("auto", "c") and cpu and _lib() is not None and c_ok:
        w = 24 if (spec.rounding is not Rounding.SR and float_path_ok(spec, 24, A, B, a_range)) else 53
        return _run_c(spec, A, B, init, w=w, **kw)
    if backend == "c":
        raise ValueError(f"backend c is unavailable or inexact for {spec}")
    if backend in ("auto", "torch") and ok53:
        return _nan_rule(spec, _run_torch(spec, A, B, init, **kw))
    if backend == "torch":
        raise ValueError(f"backend torch is inexact for {spec}; use numpy")
    return _run_numpy(spec, A, B, init, **kw)


# ---------------------------------------------------------------------------------------------
# Accumulation orders beyond sequential
# ---------------------------------------------------------------------------------------------
def _zero_codes(shape):
    """Codes of +0: code 0 in every psum format (float +0 and integer 0 alike)."""
    return np.zeros(shape, dtype=np.uint64)


def _one_codes(shape):
    return np.ones(shape, dtype=np.uint64)


def _rand_or_none(spec, seed, idx, step):
    return sr_rand(seed, idx, step, spec.sr_bits) if spec.rounding is Rounding.SR else None


def _chunked(spec, L, A, B, init, *, row_base, col_stride, seed, backend):
    import torch

    M, K = A.shape
    N = B.shape[1]
    seq = spec.replace(order="seq", acc2=None)
    s2 = add_spec(spec, spec.acc2)
    idx = _index_grid(M, N, row_base, col_stride)
    acc2 = _zero_codes((M, N))
    zero = torch.zeros((M, N), dtype=torch.float64, device=A.device)
    starts = list(range(0, K, L)) or [0]
    for j, k0 in enumerate(starts):
        # chunk j: sequential in acc from the bias (j = 0) or +0, steps numbered k0.. (SR)
        c = accumulate(seq, A[:, k0:k0 + L], B[k0:k0 + L], init if j == 0 else zero, row_base=row_base,
                       col_stride=col_stride, k_offset=k0, seed=seed, backend=backend)
        cc = codes(spec.acc, c.cpu().numpy())
        acc2 = mac_step(s2, acc2, cc, _one_codes((M, N)), rand=_rand_or_none(spec, seed, idx, K + j))
    return torch.from_numpy(spec.acc2.decode(acc2)).to(A.device)


def _tree(spec, A, B, init, *, row_base, col_stride, seed):
    import torch

    M, K = A.shape
    N = B.shape[1]
    seq = spec.replace(order="seq", acc2=None)
    sadd = add_spec(spec, spec.acc)
    An = A.detach().cpu().double().numpy()
    Bn = B.detach().cpu().double().numpy()
    ac, bc = codes(spec.a, An), codes(spec.b, Bn)
    ic = codes(spec.acc, init.detach().cpu().double().numpy())
    out = np.empty((M, N), dtype=np.uint64)
    idx_all = _index_grid(M, N, row_base, col_stride)
    rows = max(1, (1 << 21) // max(1, N * K))  # bound memory: rows x N x K codes per block
    for r0 in range(0, M, rows):
        r1 = min(M, r0 + rows)
        idx = idx_all[r0:r1, :, None]
        shape = (r1 - r0, N, K)
        # leaves: each product rounded into acc as one MAC step from +0 (steps numbered k)
        t = mac_step(seq, _zero_codes(shape), ac[r0:r1, None, :], bc.T[None, :, :],
                     rand=_rand_or_none(spec, seed, idx, np.arange(K)))
        node = K
        while t.shape[2] > 1:
            n2 = t.shape[2] // 2
            steps = node + np.arange(n2)
            pair = mac_step(sadd, t[:, :, 0:2 * n2:2], t[:, :, 1:2 * n2:2], _one_codes((1, 1, n2)),
                            rand=_rand_or_none(spec, seed, idx, steps))
            node += n2
            t = np.concatenate([pair, t[:, :, 2 * n2:]], axis=2)  # an odd last node moves up as is
        if K == 0:
            out[r0:r1] = ic[r0:r1]
        else:
            # the bias (loaded into the accumulator) is added last: acc := bias + tree_sum
            out[r0:r1] = mac_step(sadd, ic[r0:r1], t[:, :, 0], _one_codes((1, 1)),
                                  rand=_rand_or_none(spec, seed, idx[:, :, 0], node))
    return torch.from_numpy(spec.acc.decode(out)).to(A.device)


def _tree_groups(spec, N_, A, B, init, *, row_base, col_stride, seed):
    """Adder tree over each group of N products, group sums added in turn: see :func:`accumulate_order`."""
    import torch

    M, K = A.shape
    N = B.shape[1]
    seq = spec.replace(order="seq")
    sadd = add_spec(spec, spec.acc)
    G = -(-K // N_)
    Kp = G * N_  # the last group padded with zero operands (code 0: +0), as the unit's idle lanes
    ac = np.zeros((M, Kp), np.uint64)
    bc = np.zeros((Kp, N), np.uint64)
    ac[:, :K] = codes(spec.a, A.detach().cpu().double().numpy())
    bc[:K] = codes(spec.b, B.detach().cpu().double().numpy())
    R = np.broadcast_to(codes(spec.acc, init.detach().cpu().double().numpy()), (M, N)).copy()
    idx_all = _index_grid(M, N, row_base, col_stride)
    rows = max(1, (1 << 21) // max(1, N * Kp))  # bound memory: rows x N x K codes per block
    for r0 in range(0, M, rows):
        r1 = min(M, r0 + rows)
        idx = idx_all[r0:r1, :, None]
        # leaves: each product rounded into acc alone, one MAC step from +0 (step k)
        t = mac_step(seq, _zero_codes((r1 - r0, N, Kp)), ac[r0:r1, None, :], bc.T[None, :, :],
                     rand=_rand_or_none(spec, seed, idx, np.arange(Kp)))
        t = t.reshape(r1 - r0, N, G, N_)
        # tree nodes of group g: steps Kp + g*N + j, j = 0 .. N-2 level by level, left to right
        base = Kp + N_ * np.arange(G)[:, None]
        node = 0
        while t.shape[3] > 1:
            n2 = t.shape[3] // 2
            pair = mac_step(sadd, t[..., 0:2 * n2:2], t[..., 1:2 * n2:2], _one_codes((1, 1, 1, n2)),
                            rand=_rand_or_none(spec, seed, idx[..., None], base + node + np.arange(n2)))
            node += n2
            t = np.concatenate([pair, t[..., 2 * n2:]], axis=3)  # an odd last node moves up as is
        # the group sums into the register in turn (step Kp + g*N + N - 1)
        for g in range(G):
            R[r0:r1] = mac_step(sadd, R[r0:r1], t[:, :, g, 0], _one_codes((1, 1)),
                                rand=_rand_or_none(spec, seed, idx[:, :, 0], Kp + g * N_ + N_ - 1))
    return torch.from_numpy(spec.acc.decode(R)).to(A.device)


def _mta(spec, N_, W, P, A, B, init, *, row_base, col_stride, seed):
    """Fused multi-term adder: see :func:`accumulate_order` for the semantics."""
    import torch

    M, K = A.shape
    N = B.shape[1]
    fmt = spec.acc
    s2 = add_spec(spec, spec.acc2)
    An = A.detach().cpu().double().numpy()
    Bn = B.detach().cpu().double().numpy()
    ac, bc = codes(spec.a, An), codes(spec.b, Bn)
    R = np.broadcast_to(codes(fmt, init.detach().cpu().double().numpy()), (M, N)).copy()
    acc2 = _zero_codes((M, N))
    idx = _index_grid(M, N, row_base, col_stride)
    n_prom = 0
    for g0 in range(0, K, N_):
        g1 = min(K, g0 + N_)
        # -- products: the MAC's own product stage (exact; unfused: rounded into prod) --------------
        sp, mp, ep, cp = product_terms(spec, ac[:, None, g0:g1], bc.T[None, :, g0:g1])
        rs, rm, re_, rc = V.unpack_float(fmt, R)
        # terms: the register first, then the group's products
        ts = np.concatenate([rs[:, :, None], np.broadcast_to(sp, (M, N, g1 - g0))], axis=2)
        tm = np.concatenate([rm[:, :, None], np.broadcast_to(np.where(cp == V.FINITE, mp, 0), (M, N, g1 - g0))], axis=2)
        te = np.concatenate([re_[:, :, None], np.broadcast_to(ep, (M, N, g1 - g0))], axis=2)
        tc = np.concatenate([rc[:, :, None], np.broadcast_to(cp, (M, N, g1 - g0))], axis=2)
        # -- align to the largest leading-one exponent, truncate below W bits, sum exactly ----------
        lead = np.where((tc == V.FINITE) & (tm > 0), te + V.bit_length(tm) - 1, -(1 << 40))
        emax = lead.max(axis=2, keepdims=True)
        lsb = emax - W + 1
        sh = te - lsb
        if spec.order.trunc == "floor":
            # Two's complement, shifted right with sign fill: numpy's >> on int64 is arithmetic,
            # so it floors (toward -inf). |term| < 2**61, so a shift clamped at 62 already gives
            # the floor of a term wholly below the window: 0, or -1 for a negative one.
            v = np.where(ts, -tm, tm)
            S = np.where(sh >= 0, v << np.clip(sh, 0, 62), v >> np.clip(-sh, 0, 62)).sum(axis=2)
        else:
            mag = np.where(sh >= 0, tm << np.clip(sh, 0, 62), tm >> np.clip(-sh, 0, 62))
            mag = np.where(sh < -62, 0, mag)  # truncation toward zero drops the whole term
            S = np.where(ts, -mag, mag).sum(axis=2)
        rand = _rand_or_none(spec, seed, idx, g1 - 1)
        code = V.round_float(fmt, S < 0, np.abs(S), lsb[:, :, 0], spec.rounding, saturate=spec.saturate,
                             rand=rand, sr_bits=spec.sr_bits)
        # -- an exact zero sum: the rule book's sign of a cancellation (the documented semantics
        #    treat every zero of the multi-term sum as one: +0, -0 under rdn) ----------------------
        no = np.zeros(S.shape, dtype=bool)
        zero_neg = exact_zero_sign(spec.rounding, both_zero=no, sp=no, sc=no) & fmt.has_neg_zero
        code = np.where(S == 0, np.where(zero_neg, np.uint64(fmt.sign_bit), np.uint64(0)), code)
        # -- specials: NaN in, or inf of both signs -> NaN; an inf -> inf (the adder's rules) ------
        t_inf, t_nan = tc == V.INF, tc == V.NAN
        nan = t_nan.any(axis=2) | ((t_inf & ts).any(axis=2) & (t_inf & ~ts).any(axis=2))
        inf = t_inf.any(axis=2) & ~nan
        code = apply_specials(fmt, spec.saturate, code, nan, inf, (t_inf & ts).any(axis=2))
        R = code
        # -- promotion into acc2 every P products and at the end; the register restarts at +0 -----
        if g1 % P == 0 or g1 == K:
            acc2 = mac_step(s2, acc2, R, _one_codes((M, N)), rand=_rand_or_none(spec, seed, idx, K + n_prom))
            n_prom += 1
            R = _zero_codes((M, N))
    if K == 0:
        acc2 = mac_step(s2, acc2, R, _one_codes((M, N)), rand=_rand_or_none(spec, seed, idx, K))
    return torch.from_numpy(spec.acc2.decode(acc2)).to(A.device)


def _ilv(spec, L, A, B, init, *, row_base, col_stride, seed, backend):
    """Interleaved partial sums: see :func:`accumulate_order` for the semantics."""
    import torch

    M, K = A.shape
    N = B.shape[1]
    seq = spec.replace(order="seq")
    sadd = add_spec(spec, spec.acc)
    idx = _index_grid(M, N, row_base, col_stride)
    if spec.rounding is Rounding.SR:
        # Stochastic rounding numbers steps globally (product k is step k), which a per-sum
        # kernel call cannot (it numbers its own steps contiguously): step the sums one product
        # at a time with mac_step, the reference semantics.
        ac = codes(spec.a, A.detach().cpu().double().numpy())
        bc = codes(spec.b, B.detach().cpu().double().numpy())
        s = [np.broadcast_to(codes(spec.acc, init.detach().cpu().double().numpy()), (M, N)).copy()]
        s += [_zero_codes((M, N)) for _ in range(L - 1)]
        for k in range(K):
            s[k % L] = mac_step(seq, s[k % L], ac[:, k][:, None], bc[k][None, :],
                                rand=_rand_or_none(spec, seed, idx, k))
    else:
        # Partial sum r holds products r, r + L, r + 2L, ... in that order: a sequential MAC
        # over that slice of K, from the bias (r = 0) or +0.
        zero = torch.zeros((M, N), dtype=torch.float64, device=A.device)
        s = []
        for r in range(L):
            v = accumulate(seq, A[:, r::L], B[r::L], init if r == 0 else zero, row_base=row_base,
                           col_stride=col_stride, seed=seed, backend=backend)
            s.append(np.broadcast_to(codes(spec.acc, v.detach().cpu().double().numpy()), (M, N)).copy())
    out = s[0]
    for j in range(1, L):  # ((s_0 + s_1) + s_2) + ...: the combine through the unit's one adder
        out = mac_step(sadd, out, s[j], _one_codes((M, N)), rand=_rand_or_none(spec, seed, idx, K + j - 1))
    return torch.from_numpy(spec.acc.decode(out)).to(A.device)


def accumulate_order(spec, A, B, init, *, row_base=None, col_stride=1, seed=0, backend="auto",
                     stats=None, a_range=None):
    """:func:`accumulate` for any ``spec.order``.

    ``seq``
        One product per step into the accumulator (the MAC unit).
    ``chunk<L>``
        Products in chunks of L consecutive steps, each chunk accumulated sequentially in
        ``acc`` (chunk 0 from the bias, later chunks from +0); after each chunk its sum is added
        into ``acc2`` (starting at +0) with one rounding, ``acc2 := round(acc2 + chunk_sum)``.
        The output is ``acc2``.
    ``tree``
        Each product rounded into ``acc`` alone (one MAC step from +0); then pairwise sums
        ``round(t[2i] + t[2i+1])`` level by level (an odd last node moves up unchanged); finally
        ``round(bias + tree_sum)``.
    ``tree<N>``
        What an N-input adder-tree unit computes, N products per cycle: the products in groups of
        N consecutive ones, the last group padded to N with zero products (operand codes 0, so
        each pad leaf is +0 in every rounding mode). In each group, every product is rounded into
        ``acc`` alone (one MAC step from +0), then summed pairwise as ``tree`` does (level by
        level, left to right, an odd last node moving up unchanged), each node rounded into
        ``acc``. The register R starts at the bias and adds each group sum in turn,
        ``R := round(R + group_sum)``; the output is R (K = 0: the bias). ``tree1`` rounds each
        product before adding it (an unfused MAC with ``prod = acc``).
    ``mta<N>w<W>p<P>``
        A fused multi-term adder (Hopper-like). The register R (format ``acc``) starts at the
        bias. For each group of N consecutive products: the terms are R and the N exact products
        (unfused: rounded into ``prod``); with ``e`` the largest leading-one exponent among the
        non-zero terms, every term is truncated toward zero to a multiple of ``2**(e - W + 1)``
        (W bits from the leading one down; with the ``floor`` suffix toward -inf instead, as a
        two's-complement right shift with sign fill does, so a negative term wholly below the
        window becomes ``-2**(e - W + 1)``), the truncated terms are summed exactly, and the sum
        is rounded once into ``acc`` with the spec's rounding (an exact zero gives +0, -0 under
        rdn). Every P products (P a multiple of N) and after the last product, R is added into
        ``acc2`` (starting at +0) with one rounding and restarts at +0. The output is ``acc2``.
    ``ilv<L>``
        Interleaved accumulation, what a unit whose float adder has an L-cycle latency computes:
        L partial sums in ``acc``, ``s_0`` from the bias, ``s_1 .. s_{L-1}`` from +0; product k
        goes into ``s_{k mod L}`` as one MAC step; at the end the sums are combined in order
        through the same adder, ``((s_0 + s_1) + s_2) + ... + s_{L-1}``, each addition rounded
        into ``acc`` (all L - 1 additions, also when K < L). ``ilv1`` is ``seq``.

    Stochastic rounding steps are numbered: products ``0..K-1``; chunk/promotion additions and
    tree nodes ``K, K+1, ...`` in the order they happen (tree: level by level, left to right;
    the final bias addition last; ilv: the L - 1 combine additions); an mta group's rounding uses
    the step of its last product. ``tree<N>`` with K' = ceil(K/N) * N padded products: leaf k is
    step k, the N - 1 nodes of group g steps ``K' + g*N + j`` (level by level, left to right) and
    the group's addition into R step ``K' + g*N + N - 1``.
    """
    spec = MacSpec.parse(spec)  # MacSpec has validated the order against the spec already
    order = spec.order
    kw = dict(row_base=row_base, col_stride=col_stride, seed=seed)
    if order.kind == "seq":  # a_range: see accumulate (the other orders look at their blocks)
        return accumulate(spec, A, B, init, backend=backend, stats=stats, a_range=a_range, **kw)
    if stats is not None:
        raise ValueError(f"partial-sum statistics need order=seq, not {order}")
    if order.kind == "tree":
        if order.n is not None:
            return _tree_groups(spec, order.n, A, B, init, **kw)
        return _tree(spec, A, B, init, **kw)
    if order.kind == "chunk":
        return _chunked(spec, order.length, A, B, init, backend=backend, **kw)
    if order.kind == "ilv":
        return _ilv(spec, order.length, A, B, init, backend=backend, **kw)
    return _mta(spec, order.n, order.w, order.p, A, B, init, **kw)
