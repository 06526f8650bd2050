"""Emulated MAC ops: linear, N-d convolution, transposed convolution, matmul, einsum, attention.

Each function computes one PyTorch op with a MAC spec's exact arithmetic: every output element is
what a MAC unit stepping :func:`psum.golden.mac_step` produces. The per-op state (spec, operand
scales, calibration, statistics) is a :class:`Site`; :mod:`psum.golden.emulation.context` decides
which op gets which site, :mod:`psum.golden.emulation.layers` documents the operand semantics.

Reduction orders (the K steps of one output element, step 0 first):

``linear``
    ``y = x W^T + b``: the input feature index ``k = 0 .. in_features-1``.
``conv1d/2d/3d``
    The weight's ``(in_channel, k_1, .., k_n)`` order (row-major over the kernel, the order of
    ``torch.nn.functional.unfold``); zero-padded input positions are steps with ``a = +0``.
``conv_transpose1d/2d/3d``
    Computed as the direct convolution of the stride-zero-inserted, padded input (``d*(k-1) - p``
    zeros before, that plus ``output_padding`` after; negative amounts crop) with the spatially
    flipped kernel: steps in that convolution's ``(in_channel, kernel position)`` order, i.e. the
    weight's taps from last to first; inserted zeros and padding are steps with ``a = +0`` (every
    output element takes ``in_channels/groups * prod(kernel)`` steps).
``matmul`` (``@``, ``mm``, ``bmm``, ``baddbmm``, ``addmm``)
    ``out[.., m, n] = sum_k a[.., m, k] * b[.., k, n]``: ``k`` ascending. ``baddbmm``/``addmm``
    load ``beta * input / (alpha * s_a * s_b)`` into the accumulator (as a bias).
``einsum`` (two operands)
    Rewritten as a batched matmul: the contracted indices in the order they appear in the left
    operand, row-major.
``scaled_dot_product_attention``
    ``S = Q K^T`` (a matmul site ``qk``, ``k`` over the head dimension), then in float32: times
    the scale (``1/sqrt(E)`` unless given), the mask (boolean: ``-inf`` where False; float:
    added), softmax, dropout; ``O = P V`` (a matmul site ``av``, ``k`` over the key positions).

Operands: a weight (``F.linear``/``F.conv*``'s weight, or an ``nn.Parameter`` operand of a matmul)
is quantised to ``spec.b`` with the site's weight scaling; activations are quantised to ``spec.a``
(left operand) and ``spec.b`` (right operand of an activation x activation product) with per-tensor
activation scales, calibrated like every activation (``calib`` data, else the first call).
Stochastic rounding uses the op's element index: ``Site.sample_offset`` samples of the call's
per-sample output size, plus the flat index in the call's output (einsum: in its ``(batch, left,
right)`` layout), as in the layers -- so the bits follow the sample, not its place in a batch.
"""

from __future__ import annotations

import functools
import math
import os
import zlib

import numpy as np
import torch
from torch.nn import functional as F

from psum.golden.blocks import BlockFormat
from psum.golden.formats import FloatFormat, IntFormat
from psum.golden.rounding import Rounding
from psum.golden.spec import MacSpec
from .kernels import BACKENDS, _nz_range, accumulate_order, fmix32, im2row2d, quantize_rne_saturate

__all__ = ["Site", "linear", "conv", "conv_transpose", "matmul", "einsum_plan", "einsum",
           "compute_scale", "quantize_operand", "round_rne_saturate", "fast_quantize_ok", "emulation_path",
           "WEIGHT_SCALES", "ACT_SCALES", "Unsupported"]

WEIGHT_SCALES = ("channel", "tensor", "pow2", "none")
ACT_SCALES = ("tensor", "pow2", "none")
_ROWS_PER_BLOCK = 1 << 22  # elements of one unfolded block (rows x K); bounds memory


class Unsupported(Exception):
    """An op configuration the emulation does not cover (the op then runs in float and is reported)."""


def _fmt_max(fmt) -> float:
    return float(fmt.max_int) if isinstance(fmt, IntFormat) else fmt.max_value


def compute_scale(amax: torch.Tensor, fmt, how: str) -> torch.Tensor:
    """Scale(s) ``s`` so that ``x / s`` uses ``fmt``'s range (``amax`` = max |x|, per tensor or channel)."""
    amax = amax.double()
    if how == "none":
        return torch.ones_like(amax)
    if isinstance(fmt, BlockFormat) and not fmt.pow2_scale:
        # NVFP4's per-tensor second level: NVIDIA's amax / (6 * 448), raised to a power of two so
        # that dividing by it is exact (the block scales absorb the difference)
        s = torch.exp2(torch.ceil(torch.log2(amax / (fmt.elem.max_value * fmt.scale.max_value))))
        return torch.where(amax > 0, s, torch.ones_like(s))
    if isinstance(fmt, (FloatFormat, BlockFormat)):  # MX: the E8M0 block scales do the rest
        # floats: a power of two putting max |x| in [1, 2) -- mantissas untouched, products in
        # [0, 4), so the accumulator's range (not the operand scale) decides where sums overflow
        s = torch.exp2(torch.floor(torch.log2(amax)))
        return torch.where(amax > 0, s, torch.ones_like(s))
    s = amax / _fmt_max(fmt)
    if how == "pow2":
        s = torch.exp2(torch.ceil(torch.log2(s)))
    return torch.where(amax > 0, s, torch.ones_like(s))


def quantize_operand(x: torch.Tensor, fmt, scale) -> torch.Tensor:
    """Values of ``fmt`` (float64, x's device) nearest to ``x / scale``: rne, saturating.

    A block format defers quantisation to the block GEMM (:mod:`psum.golden.emulation.mx`),
    where the blocks of the reduction dimension are known: ``x / scale`` is returned (exact, the
    scale being a power of two). Integer and float formats take :func:`round_rne_saturate` (torch
    ops, exact) where :func:`fast_quantize_ok` allows it and the emulation path is ``fast``
    (:func:`emulation_path`), else golden's encoder (``fmt.encode`` / ``fmt.decode``, the
    reference); both give the same values, bit for bit (``tests/test_emulate_fast.py``).
    """
    return _quantize(x, fmt, scale).double()


def _quantize(x, fmt, scale):
    """:func:`quantize_operand` in the dtype the kernels read: float32 when every value of ``fmt``
    is a float32 value and the fast path runs (half the bytes through im2col, no conversion before
    the C kernel's float32 lanes), else float64."""
    if isinstance(fmt, BlockFormat):
        return torch.nan_to_num(x.detach().double() / scale, nan=0.0)
    # the same float64 quotient (an IEEE division; exact when the scale is a power of two) and the
    # same NaN -> 0 as the reference below
    if emulation_path() == "fast" and fast_quantize_ok(fmt):
        if _C_QUANTIZE and isinstance(fmt, FloatFormat):
            # the C twin of round_rne_saturate's float64 branch on the reference's own quotient
            consts = _float_consts(fmt, torch.float64) + (fmt.subnormals, fmt.has_neg_zero)
            q = quantize_rne_saturate(x, scale, consts, torch.float32 if _in_float32(fmt) else torch.float64)
            if q is not None:
                return q.to(x.device)
        if x.dtype == torch.float32 and _f32_scale_ok(scale) and fast_quantize_ok(fmt, torch.float32):
            # float32 all the way (no float64 copy of activations or weights): x * (1/s) with s a
            # power of two in [2**-126, 2**126] is exact unless it underflows below 2**-126 or
            # overflows; both cases give the reference's result (round_rne_saturate, Notes)
            inv = 1.0 / scale if isinstance(scale, float) else (1.0 / scale).float()
            v = torch.nan_to_num(x.detach() * inv, nan=0.0)
            return round_rne_saturate(v, fmt)
        v = torch.nan_to_num(x.detach().double() / scale, nan=0.0)
        return round_rne_saturate(v, fmt).to(torch.float32 if _in_float32(fmt) else torch.float64)
    v = (x.detach().double() / scale).cpu().numpy()
    v = np.nan_to_num(v, nan=0.0)
    q = fmt.decode(fmt.encode(v, "rne", saturate=True))
    return torch.from_numpy(q).to(x.device)


_PATHS = ("fast", "reference")
_C_QUANTIZE = True  # tests switch it off to check the torch quantiser on the same calls


def emulation_path() -> str:
    """``$PSUM_EMULATE_PATH``: ``fast`` (default) or ``reference``.

    ``reference`` runs the emulated ops as they ran before the fast paths: operands through
    golden's numpy encoder, float64 everywhere, im2col by ``unfold`` and a transpose copy. The
    results are the same bit for bit (tested); the switch exists for those tests and for
    benchmarks (before/after in one run).

    Raises
    ------
    ValueError
        Any other value (one line).
    """
    want = os.environ.get("PSUM_EMULATE_PATH", "") or "fast"
    if want not in _PATHS:
        raise ValueError(f"PSUM_EMULATE_PATH must be one of {', '.join(_PATHS)}, not {want!r}")
    return want


@functools.lru_cache(maxsize=256)
def _in_float32(fmt) -> bool:
    """Every value of ``fmt`` is a float32 value (so float32 carries the quantised operands)."""
    if isinstance(fmt, IntFormat):
        return max(abs(fmt.min_int), fmt.max_int) <= 2**24
    if isinstance(fmt, FloatFormat):
        return (fmt.precision <= 24 and fmt.max_value <= np.finfo(np.float32).max
                and fmt.min_subnormal >= 2.0**-149 and 2.0**(fmt.emin - fmt.man_bits) >= 2.0**-149)
    return False


def _f32_scale_ok(scale) -> bool:
    """Powers of two in ``[2**-126, 2**126]`` (a Python float, or a float64 tensor of per-row
    scales): their reciprocals are exact float32 numbers."""
    if isinstance(scale, float):
        return math.frexp(scale)[0] == 0.5 and 2.0**-126 <= scale <= 2.0**126
    if isinstance(scale, torch.Tensor) and scale.dtype == torch.float64:
        return bool(((torch.frexp(scale)[0] == 0.5) & (scale >= 2.0**-126) & (scale <= 2.0**126)).all())
    return False


@functools.lru_cache(maxsize=512)
def fast_quantize_ok(fmt, dtype=torch.float64) -> bool:
    """Whether :func:`round_rne_saturate` computes ``fmt``'s saturating RNE encoding exactly on
    ``dtype`` (float64 or float32) values.

    Float64: integer formats up to 53 bits (every value, and every clamp bound, exact in
    float64); float formats with at least one stored mantissa bit (with none, P3109's
    ``binary8p1``, "even" is the code's parity, not the significand's), at most 51 (the magic
    constant below), whose saturating overflow codes are the largest finite value by sign (so
    saturation is a clamp), and whose rounding binades keep the magic constant a normal float64.
    Float32 (float formats only), also: at most 22 mantissa bits, every constant (down to the
    lowest binade, up to ``2 * max_value``'s) a normal float32, and a smallest nonzero magnitude
    of at least ``2**-125``, so every value below float32's normal range rounds to zero (the
    argument for the float32 path in :func:`round_rne_saturate`).
    """
    if isinstance(fmt, IntFormat):
        return fmt.bits <= 53 and dtype == torch.float64
    if not isinstance(fmt, FloatFormat) or not 1 <= fmt.man_bits <= 51:
        return False
    pos, neg = fmt.overflow_codes("rne", True)
    if (float(fmt.decode(np.uint64(pos))), float(fmt.decode(np.uint64(neg)))) != (fmt.max_value, -fmt.max_value):
        return False
    lowest = fmt.emin - (0 if fmt.subnormals else 2)
    if dtype == torch.float32:
        top = math.frexp(2.0 * fmt.max_value)[1] - 1
        return (fmt.man_bits <= 22 and lowest >= -126 and lowest - fmt.man_bits + 23 >= -126
                and top - fmt.man_bits + 23 <= 127 and fmt.min_subnormal >= 2.0**-125)
    return lowest >= -1022 and lowest - fmt.man_bits + 52 >= -1022 and 2.0 * fmt.max_value < 2.0**1000


# (int view, exponent field mask, bias, fraction bits) of each host float
_HOST = {torch.float64: (torch.int64, 0x7FF << 52, 1023, 52), torch.float32: (torch.int32, 0xFF << 23, 127, 23)}


@functools.lru_cache(maxsize=512)
def _float_consts(fmt, dtype):
    """:func:`round_rne_saturate`'s per-format constants (the format properties decode codes)."""
    _, _, bias, frac = _HOST[dtype]
    lowest = fmt.emin if fmt.subnormals else fmt.emin - 2
    return (fmt.max_value, 2.0 * fmt.max_value, (lowest + bias) << frac, (frac - fmt.man_bits) << frac,
            fmt.min_normal)


def round_rne_saturate(v: torch.Tensor, fmt) -> torch.Tensor:
    """``fmt.decode(fmt.encode(v, "rne", saturate=True))`` in torch ops on ``v``'s float type (any device).

    Parameters
    ----------
    v : torch.Tensor of float64 or float32, any shape
        Values to round; no NaN (the callers map NaN to 0 first, as the reference does); +-inf
        saturate.
    fmt : IntFormat or FloatFormat
        A format :func:`fast_quantize_ok` accepts for ``v.dtype``.

    Returns
    -------
    torch.Tensor of v's dtype and shape
        The values of ``fmt`` the rule book's round-to-nearest-even gives, saturated to the
        largest finite magnitude; the same values and zero signs as golden's encoder, which stays
        the reference (``psum.golden._vector.round_float``).

    Notes
    -----
    Why this equals ``round_float`` (RNE, ``saturate=True``) for every float64 ``v``:

    *Integers.* ``torch.round`` is round half to even to an integer, exact in float64 (the
    result is an integer of at most 53 bits, or ``v`` itself when ``|v| >= 2**52``); the clamp
    to ``[min_int, max_int]`` is saturation; ``+ 0.0`` turns a ``-0`` (``round(-0.3)``) into the
    integer code 0's ``+0`` (IEEE 754 section 6.3: ``-0 + +0 = +0`` under RNE).

    *Floats* (``M`` stored mantissa bits, ``1 <= M <= 51``; written for float64, ``P = 53``;
    float32, ``P = 24``, reads the same with ``2**52`` -> ``2**23``, ``M <= 22`` and 1023 -> 127). ``round_float`` rounds
    ``a = |v|`` at the quantum ``2**(e - M)`` of its binade ``e = max(E, emin)`` (``E`` =
    ``floor(log2 a)``; ``E`` unclamped without subnormals), ties to an even multiple, with an
    unbounded exponent; a result above the largest finite value overflows (saturating: the
    largest finite value), one below the smallest normal is flushed when the format has no
    subnormals, and the sign is ORed in (``+0`` instead in formats without ``-0``).

    1. ``a`` is clamped to ``2 * max_value`` first (inf included). Rounding is monotone and
       ``max_value`` is representable, so every ``a >= max_value`` still rounds to at least
       ``max_value`` and saturates to it: the clamp changes no result.
    2. ``e = max(E, emin)`` is read off ``a``'s exponent field: for a normal float64 ``a`` the
       field is ``E + 1023``; a float64 subnormal or zero has field 0, i.e. reads as ``E =
       -1023``, below every format's ``emin`` (``fast_quantize_ok``), where the clamp puts it (as
       for any ``a < 2**emin``; ``a = 0`` rounds to 0 at any quantum). Without subnormals ``e =
       max(E, emin - 2)``: an ``a`` below ``2**(emin - 1)`` rounds to at most ``2**(emin - 1)``
       either way and is flushed, so that clamp only keeps the constant normal.
    3. ``C = 2**(e - M + 52)``, built from its bit pattern, is a normal float64 number whose
       ulp is the quantum ``2**(e - M)``. Since ``a < 2**(e + 1) <= C`` (``M <= 51``), the exact
       sum ``a + C`` lies in ``[C, 2C)``, where float64's grid is exactly the multiples of the
       quantum: the IEEE addition (round to nearest, ties to even) returns ``C + q * 2**(e-M)``
       with ``q`` the nearest integer to ``a / 2**(e - M)``, a tie going to the even ``C / 2**(e
       - M) + q``, i.e. the even ``q`` because ``C / 2**(e - M) = 2**52`` is even. ``(a + C) - C``
       is then exact (both are multiples of the quantum below ``2**53`` quanta). This is
       ``round_float``'s ``q`` and its ``round_up`` decision for RNE (lsb = ``q``'s last bit,
       guard, sticky: HardFloat's / IEEE's roundTiesToEven).
    4. ``min(r, max_value)``: saturation (step 1). Flush: ``r < 2**emin`` -> 0. Sign:
       ``copysign`` gives ``-0`` for a negative ``v`` that rounds to zero (and for ``v = -0``),
       as ``round_float`` ORs the sign into code 0; formats without ``-0`` get ``+0``.

    *The float32 caller* (``_quantize``, activations): ``v = x * (1/s)`` in float32, with ``x``
    float32 and ``s`` a power of two in ``[2**-126, 2**126]`` (so ``1/s`` is an exact float32),
    is the reference's float64 quotient ``x / s`` exactly, except (i) when ``|x / s| < 2**-126``
    (float32's subnormal range rounds it to at most ``2**-126``, sign kept) -- both values then
    round to a signed zero in ``fmt``, whose smallest nonzero magnitude is at least ``2**-125``
    (``fast_quantize_ok``), so at most half of it, a tie going to the even zero -- and (ii) on
    float32 overflow, where ``+-inf`` saturates like the reference's large quotient. ``C`` stays
    a normal float32 for ``e`` from the lowest binade to ``2 * max_value``'s (checked there).

    The tests (``tests/test_emulate_fast.py``) check this against ``fmt.encode``/``decode`` on
    every code of each format, the midpoints between neighbouring codes and one float64 ulp
    either side, the overflow threshold, the subnormal range, +-0, +-inf and millions of random
    float32 values scaled across each format's range.
    """
    if isinstance(fmt, IntFormat):
        return torch.round(v).clamp_(float(fmt.min_int), float(fmt.max_int)) + 0.0
    ity, exp_field = _HOST[v.dtype][:2]
    mv, two_mv, lo_bits, c_offset, min_normal = _float_consts(fmt, v.dtype)
    a = v.abs().clamp_(max=two_mv)
    # C's bit pattern: a's biased exponent field (step 2: a host subnormal or zero reads as
    # 2**-1023 / 2**-127, below every clamp), clamped to the lowest binade, plus P - 1 - M
    # binades (step 3)
    C = (a.view(ity) & exp_field).clamp_(min=lo_bits).add_(c_offset).view(v.dtype)
    r = ((a + C) - C).clamp_(max=mv)
    if not fmt.subnormals:
        r = torch.where(r < min_normal, 0.0, r)
    r = torch.copysign(r, v)
    if not fmt.has_neg_zero:
        r = r + 0.0  # -0 -> +0 (see the integers above)
    return r


def _site_seed(seed: int, name: str) -> int:
    return int(fmix32(np.uint64((seed ^ zlib.crc32(name.encode())) & 0xFFFFFFFF)))


def _out_dtype(x):
    return torch.float64 if x.dtype == torch.float64 else torch.float32


class Site:
    """The state of one MAC-bearing op: spec, operand scaling and calibration, statistics.

    Parameters
    ----------
    name : str
        The op's name (module name, ``module.kind<i>`` or ``kind@file:line``); seeds stochastic
        rounding (mixed with ``seed``, as the layers always did).
    kind : str
        ``linear``, ``conv2d``, ``matmul``, ...
    spec : MacSpec or str
    weight_scale : {"channel", "tensor", "pow2", "none"}
    act_scale : {"tensor", "pow2", "none"}
    seed : int
    backend : str
        Kernel backend (:data:`psum.golden.emulation.kernels.BACKENDS`).
    stats : bool
        Collect partial-sum statistics (sequential order only).

    Raises
    ------
    ValueError
        Bad spec, scale choice or backend (one line).
    """

    def __init__(self, name, kind, spec, *, weight_scale="channel", act_scale="tensor", seed=0,
                 backend="auto", stats=False):
        spec = MacSpec.parse(spec)  # validates the order too
        if weight_scale not in WEIGHT_SCALES:
            raise ValueError(f"weight_scale must be one of {', '.join(WEIGHT_SCALES)}, not {weight_scale!r}")
        if act_scale not in ACT_SCALES:
            raise ValueError(f"act_scale must be one of {', '.join(ACT_SCALES)}, not {act_scale!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        if spec.blocked and stats:
            raise ValueError(f"partial-sum statistics are not collected for block-scaled operands ({spec.a})")
        if spec.blocked and spec.bsum is not None and spec.rounding is Rounding.SR:
            raise ValueError("round=sr with bsum is not emulated in networks; use the golden block_dot")
        self.name, self.kind, self.spec = name, kind, spec
        self.weight_scale, self.act_scale, self.backend = weight_scale, act_scale, backend
        self.seed = _site_seed(seed, name)
        self.amax: dict[str, float] = {}
        self.stats = None
        if stats:
            from .stats import PartialSumStats

            self.stats = PartialSumStats(spec)
        self.capture = None  # a list: every GEMM block is appended (record_streams)
        self.last_scales = None
        # Global index of the first sample of the current forward (set by the Accumulator): the
        # stochastic-rounding element index is sample_offset * per_sample + the index in the
        # call's output, so random bits follow the image, never its position in a batch.
        self.sample_offset = 0
        self._wcache: dict = {}

    # -- operands ------------------------------------------------------------------------------
    def observe(self, which: str, x) -> None:
        """Widen the calibrated max |x| of operand ``which`` ("a" or "b") by ``x`` (calibration)."""
        # one pass, no |x| copy; NaN propagates as with abs().max()
        v = max(-float((mm := torch.aminmax(x.detach()))[0]), float(mm[1])) if x.numel() else 0.0
        self.amax[which] = max(self.amax.get(which, 0.0), v)

    def calibrate(self, amax, which: str = "a") -> None:
        """Fix the activation scale of operand ``which`` from a max |input|."""
        self.amax[which] = float(amax)

    def act_scale_of(self, which: str, x, fmt) -> float:
        """The per-tensor scale of activation operand ``which`` (calibrates on first use)."""
        if which not in self.amax:
            self.observe(which, x)
        amax = torch.tensor([self.amax[which]], dtype=torch.float64)
        return float(compute_scale(amax, fmt, self.act_scale)[0])

    def weight(self, w, build, fmt=None, per_row=True):
        """``(quantised rows (R, K), scales (R,) float64)`` of a weight, cached per tensor version.

        ``build()`` gives the ``(R, K)`` matrix whose rows are output channels, in the weight's
        dtype (the scales and the quantiser take float32 or float64 values alike and compute in
        float64 or, where exact, float32). The rows are float32 where every value of ``fmt`` is.
        """
        fmt = self.spec.b if fmt is None else fmt
        key = (w.data_ptr(), w._version, tuple(w.shape), w.device, per_row)
        hit = self._wcache.get(key)
        if hit is None:
            m = build()
            how = self.weight_scale
            if how == "channel" and per_row:
                s = compute_scale(m.abs().amax(dim=1), fmt, "tensor")
            else:
                how = "tensor" if how == "channel" else how
                s = compute_scale(m.abs().max().expand(m.shape[0]), fmt, how)
            hit = (_quantize(m, fmt, s[:, None]), s)
            self._wcache = {key: hit}  # one weight per site
        return hit

    def operand(self, which, x, fmt):
        """Quantised values and scale of a matmul operand: a Parameter is a weight (per tensor)."""
        if isinstance(x, torch.nn.Parameter):
            m = x.detach().reshape(1, -1)
            q, s = self.weight(x, lambda: m, fmt=fmt, per_row=False)
            return q.reshape(x.shape), float(s[0])
        s = self.act_scale_of(which, x, fmt)
        return _quantize(x, fmt, s), s

    def load(self, values) -> torch.Tensor:
        """Values in accumulator units rounded into ``acc`` (the unit's load), float64.

        The spec's rounding (rne for stochastic rounding); integer accumulators saturate, float
        ones follow the spec's overflow.
        """
        acc = self.spec.acc
        v = values.detach().double().cpu().numpy()
        mode = Rounding.RNE if self.spec.rounding is Rounding.SR else self.spec.rounding
        sat = True if not acc.is_float else self.spec.saturate  # integer and fixed point: the load saturates
        return torch.from_numpy(acc.decode(acc.encode(v, mode, saturate=sat)))

    def index_base(self, out_numel: int, batch: int) -> int:
        """Element-index offset of this call: ``sample_offset`` samples of ``out_numel // batch``
        output elements each (dimension 0 is the batch, as in every psum network)."""
        return self.sample_offset * (out_numel // max(1, batch))

    def gemm(self, A, B, init, row_base, col_stride, out_scale=None, a_range=None):
        """One accumulate block through :func:`~psum.golden.emulation.kernels.accumulate_order`.

        ``out_scale`` (per column, real units per accumulator unit) is only recorded (``capture``);
        ``a_range`` bounds ``|A|`` (:func:`~psum.golden.emulation.kernels.accumulate`).
        """
        if self.capture is not None:
            self.capture.append((A, B, init, np.asarray(row_base), col_stride, out_scale))
        if self.spec.blocked:  # block-scaled operands: quantised and summed per block there
            from .mx import block_gemm

            return block_gemm(self.spec, A, B, init, row_base=row_base, col_stride=col_stride,
                              seed=self.seed, backend=self.backend)
        stats = self.stats.observe if self.stats is not None else None
        return accumulate_order(self.spec, A, B, init, row_base=row_base, col_stride=col_stride,
                                seed=self.seed, backend=self.backend, stats=stats, a_range=a_range)


def _bias_init(site, bias, s_a, s_w):
    """Bias in accumulator units, ``bias / (s_a * s_w)``, loaded (float64 (N,)); +0 without bias."""
    if bias is None:
        return torch.zeros(s_w.shape[0], dtype=torch.float64)
    return site.load(bias.detach().double().cpu() / (s_a * s_w.cpu()))


# ---------------------------------------------------------------------------------------------
# linear
# ---------------------------------------------------------------------------------------------
def linear(site: Site, x, weight, bias=None):
    """``F.linear(x, weight, bias)`` with the site's arithmetic: x (..., K), weight (N, K) -> (..., N)."""
    spec = site.spec
    N, K = weight.shape
    s_a = site.act_scale_of("a", x, spec.a)
    wq, s_w = site.weight(weight, lambda: weight.detach().reshape(N, -1))
    site.last_scales = (s_a, s_w)
    xa = _quantize(x.reshape(-1, K), spec.a, s_a)
    M = xa.shape[0]
    init = _bias_init(site, bias, s_a, s_w).to(x.device)
    out = torch.empty((M, N), dtype=torch.float64, device=x.device)
    base = site.index_base(M * N, x.shape[0] if x.dim() >= 2 else 1)
    step = max(1, _ROWS_PER_BLOCK // max(1, K))
    for r0 in range(0, M, step):
        r1 = min(M, r0 + step)
        rb = base + np.arange(r0, r1, dtype=np.int64) * N
        cs = s_a * s_w.to(x.device)
        out[r0:r1] = site.gemm(xa[r0:r1], wq.T, init.expand(r1 - r0, N), rb, 1, cs) * cs[None, :]
    return out.to(_out_dtype(x)).reshape(*x.shape[:-1], N)


# ---------------------------------------------------------------------------------------------
# convolutions
# ---------------------------------------------------------------------------------------------
def _tuple(v, n):
    return tuple(v) if isinstance(v, (tuple, list)) else (int(v),) * n


def _im2col(x, k, stride, dilation):
    """``(B, C*prod(k), L)`` columns of an already padded ``(B, C, *S)`` input (unfold order)."""
    if len(k) == 2:
        return F.unfold(x, k, dilation=dilation, stride=stride)
    nd = len(k)
    for i in range(nd):
        x = x.unfold(2 + i, dilation[i] * (k[i] - 1) + 1, stride[i])  # (B, C, o.., w..)
    x = x[(Ellipsis, *(slice(None, None, d) for d in dilation))]
    B, C = x.shape[:2]
    perm = (0, 1, *range(2 + nd, 2 + 2 * nd), *range(2, 2 + nd))
    return x.permute(perm).reshape(B, C * math.prod(k), -1)


_C_IM2ROW = True  # tests switch it off to check the torch rows against the C ones


def _im2row(x, k, stride, dilation):
    """``(B*L, C*prod(k))`` rows of an already padded ``(B, C, *S)`` input: row ``b*L + l`` holds
    output position ``l``'s window in :func:`_im2col`'s (unfold) order, ``(channel, kernel
    position)``.

    2-D float32 on the CPU: the C library's loop (:func:`~.kernels.im2row2d`). Otherwise built
    from a channels-last copy of the input: its windows are a strided view ``(B, o..,
    k.., C)`` whose innermost dimension is contiguous, copied once into ``(B*L, prod(k), C)``,
    then transposed to the reduction order by a second copy. Two copies with long contiguous
    runs cost less than ``unfold`` plus a transpose, or one copy gathering runs of ``k[-1]``
    values (3x slower on a 3x3 kernel).
    """
    if len(k) == 2 and _C_IM2ROW:
        rows = im2row2d(x, k, stride, dilation)  # the C library's copy loop (float32, CPU)
        if rows is not None:
            return rows
    nd = len(k)
    B, C, *S = x.shape
    xc = x.movedim(1, -1).contiguous()  # (B, *S, C)
    st = xc.stride()
    o = [(n - d * (kk - 1) - 1) // s + 1 for n, kk, s, d in zip(S, k, stride, dilation)]
    win = xc.as_strided((B, *o, *k, C),
                        (st[0], *(st[1 + i] * stride[i] for i in range(nd)),
                         *(st[1 + i] * dilation[i] for i in range(nd)), 1), xc.storage_offset())
    rows = win.reshape(-1, math.prod(k), C)  # copy: (B*L, kernel position, channel)
    return rows.transpose(1, 2).reshape(-1, C * math.prod(k))


def _conv_core(site, xq, wq, s_w, bias, s_a, k, stride, dilation, groups, dtype):
    """Convolution of quantised, padded ``xq`` (B, C, *S) with quantised rows ``wq`` (Cout, K)."""
    Bsz, C = xq.shape[:2]
    o = [(S - d * (kk - 1) - 1) // s + 1 for S, kk, s, d in zip(xq.shape[2:], k, stride, dilation)]
    L = math.prod(o)
    Cout, K = wq.shape
    G = groups
    cin, cout = C // G, Cout // G
    init_all = _bias_init(site, bias, s_a, s_w).to(xq.device)
    fast = emulation_path() == "fast"
    # im2col rows hold xq's values and padding zeros: xq's range bounds them (one pass over the
    # input instead of K/C passes over the rows, for the kernel's choice of an exact path)
    a_range = (lambda: _nz_range(xq)) if fast and xq.device.type == "cpu" else None
    # the float64 products acc * scale are rounded once into the output dtype either way: by the
    # assignment into a float32 ``out`` (fast) or by the final ``.to(dtype)`` (reference)
    out = torch.empty((Bsz, Cout, L), dtype=dtype if fast else torch.float64, device=xq.device)
    per = max(1, _ROWS_PER_BLOCK // max(1, K * L))  # images per unfolded block
    base = site.index_base(Bsz * Cout * L, Bsz)
    for b0 in range(0, Bsz, per):
        b1 = min(Bsz, b0 + per)
        for g in range(G):
            xg = xq[b0:b1, g * cin:(g + 1) * cin]
            if fast:
                A = _im2row(xg, k, stride, dilation)  # (b*L, K)
            else:
                A = _im2col(xg, k, stride, dilation).transpose(1, 2).reshape(-1, K)
            chans = slice(g * cout, (g + 1) * cout)
            init = init_all[chans].expand(A.shape[0], cout)
            # flat N C spatial index of output (b, c, l) = b*Cout*L + c*L + l
            bb = np.repeat(np.arange(b0, b1, dtype=np.int64), L)
            ll = np.tile(np.arange(L, dtype=np.int64), b1 - b0)
            rb = base + bb * Cout * L + g * cout * L + ll
            cs = s_a * s_w[chans].to(A.device)
            acc = site.gemm(A, wq[chans].T, init, rb, L, cs, a_range) * cs[None, :]
            out[b0:b1, chans] = acc.reshape(b1 - b0, L, cout).transpose(1, 2)
    return out.reshape(Bsz, Cout, *o).to(dtype)


def _pads(padding, k, dilation, nd):
    """Per spatial dim ``(before, after)`` zero padding of a convolution."""
    if isinstance(padding, str):
        if padding == "valid":
            return [(0, 0)] * nd
        if padding == "same":  # PyTorch puts the odd extra zero after
            tot = [d * (kk - 1) for kk, d in zip(k, dilation)]
            return [(t // 2, t - t // 2) for t in tot]
        raise Unsupported(f"padding={padding!r}")
    return [(p, p) for p in _tuple(padding, nd)]


def _flat_pad(pads):
    out = []
    for lo, hi in reversed(pads):  # F.pad: last dim first
        out += [lo, hi]
    return out


def conv(site: Site, x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """``F.conv1d/2d/3d`` with the site's arithmetic (zero padding, any stride/dilation/groups)."""
    nd = weight.dim() - 2
    unbatched = x.dim() == nd + 1
    if unbatched:
        x = x[None]
    k = tuple(weight.shape[2:])
    stride, dilation = _tuple(stride, nd), _tuple(dilation, nd)
    pads = _pads(padding, k, dilation, nd)
    s_a = site.act_scale_of("a", x, site.spec.a)
    Cout = weight.shape[0]
    wq, s_w = site.weight(weight, lambda: weight.detach().reshape(Cout, -1))
    site.last_scales = (s_a, s_w)
    xq = _quantize(x, site.spec.a, s_a)  # each activation once; padding adds exact +0
    if any(p != (0, 0) for p in pads):
        xq = F.pad(xq, _flat_pad(pads))
    y = _conv_core(site, xq, wq, s_w, bias, s_a, k, stride, dilation, groups, _out_dtype(x))
    return y[0] if unbatched else y


def conv_transpose(site: Site, x, weight, bias=None, stride=1, padding=0, output_padding=0,
                   groups=1, dilation=1):
    """``F.conv_transpose1d/2d/3d`` as the equivalent direct convolution (see the module docstring)."""
    nd = weight.dim() - 2
    unbatched = x.dim() == nd + 1
    if unbatched:
        x = x[None]
    if isinstance(padding, str):
        raise Unsupported(f"padding={padding!r}")
    k = tuple(weight.shape[2:])
    stride, dilation = _tuple(stride, nd), _tuple(dilation, nd)
    padding, output_padding = _tuple(padding, nd), _tuple(output_padding, nd)
    G = groups
    Cin, coutg = weight.shape[:2]
    cin = Cin // G

    def build():
        # (Cin, Cout/G, *k) -> per group (Cout/G, Cin/G, *k), kernel flipped: the direct conv's weight
        w = weight.detach().reshape(G, cin, coutg, *k).transpose(1, 2)
        return w.flip(dims=tuple(range(3, 3 + nd))).reshape(G * coutg, -1)

    s_a = site.act_scale_of("a", x, site.spec.a)
    wq, s_w = site.weight(weight, build)
    site.last_scales = (s_a, s_w)
    xq = _quantize(x, site.spec.a, s_a)
    B, C = xq.shape[:2]
    S = xq.shape[2:]
    xz = xq.new_zeros((B, C, *[(n - 1) * s + 1 for n, s in zip(S, stride)]))
    xz[(Ellipsis, *(slice(None, None, s) for s in stride))] = xq
    pads = [(d * (kk - 1) - p, d * (kk - 1) - p + op)
            for kk, d, p, op in zip(k, dilation, padding, output_padding)]
    xz = F.pad(xz, _flat_pad(pads))  # negative amounts crop
    y = _conv_core(site, xz, wq, s_w, bias, s_a, k, (1,) * nd, dilation, G, _out_dtype(x))
    return y[0] if unbatched else y


# ---------------------------------------------------------------------------------------------
# matmul family (activation x activation, or with a Parameter operand)
# ---------------------------------------------------------------------------------------------
def matmul(site: Site, a, b, *, init=None, alpha=1.0, beta=1.0):
    """``torch.matmul(a, b)`` (broadcasting, 1-D operands) with the site's arithmetic.

    ``init`` (broadcastable to the output, real units) is ``baddbmm``/``addmm``'s input:
    ``beta * init / (alpha * s_a * s_b)`` is loaded into the accumulator.
    """
    spec = site.spec
    if alpha == 0:
        raise Unsupported("alpha=0")
    a2 = a[None] if a.dim() == 1 else a
    b2 = b[:, None] if b.dim() == 1 else b
    batch = torch.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    M, K = a2.shape[-2:]
    N = b2.shape[-1]
    if b2.shape[-2] != K:
        raise Unsupported(f"shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be multiplied")
    aq, s_a = site.operand("a", a2, spec.a)
    bq, s_b = site.operand("b", b2, spec.b)
    site.last_scales = (s_a, s_b)
    aq = aq.expand(*batch, M, K).reshape(-1, M, K)
    bq = bq.expand(*batch, K, N).reshape(-1, K, N)
    nb = aq.shape[0]
    scale = float(alpha) * s_a * s_b
    if init is None:
        inits = torch.zeros((nb, M, N), dtype=torch.float64)
    else:
        full = torch.broadcast_to(init.detach().double(), (*batch, M, N)).reshape(nb, M, N)
        inits = site.load(full * float(beta) / scale)
    out = torch.empty((nb, M, N), dtype=torch.float64, device=a.device)
    base = site.index_base(nb * M * N, batch[0] if len(batch) else 1)
    for i in range(nb):
        rb = base + i * M * N + np.arange(M, dtype=np.int64) * N
        out[i] = site.gemm(aq[i], bq[i], inits[i].to(a.device), rb, 1,
                           torch.full((N,), scale, dtype=torch.float64)) * scale
    out = out.reshape(*batch, M, N)
    if a.dim() == 1:
        out = out.squeeze(-2)
    if b.dim() == 1:
        out = out.squeeze(-1)
    dt = torch.float64 if torch.float64 in (a.dtype, b.dtype) else torch.float32
    return out.to(dt)


def einsum_plan(equation: str, a_shape, b_shape):
    """How a two-operand einsum maps onto a batched matmul.

    Returns ``(perm_a, perm_b, sizes, out_perm)`` or raises :class:`Unsupported`.
    """
    eq = equation.replace(" ", "")
    if "..." in eq:
        raise Unsupported("einsum with '...'")
    lhs, arrow, out = eq.partition("->")
    ins = lhs.split(",")
    if len(ins) != 2:
        raise Unsupported(f"einsum with {len(ins)} operands")
    A, B = ins
    if not arrow:  # implicit output: the letters that appear once, sorted
        out = "".join(sorted(c for c in set(A + B) if (A + B).count(c) == 1))
    if len(set(A)) != len(A) or len(set(B)) != len(B) or len(A) != len(a_shape) or len(B) != len(b_shape):
        raise Unsupported(f"einsum {equation!r} (repeated index or rank mismatch)")
    lone = [c for c in A + B if c not in out and ((c in A) != (c in B))]
    if lone:
        raise Unsupported(f"einsum {equation!r} sums index {lone[0]!r} of one operand")
    size = {c: n for c, n in zip(A, a_shape)}
    for c, n in zip(B, b_shape):
        if size.get(c, n) != n:
            raise Unsupported(f"einsum {equation!r}: index {c!r} has sizes {size[c]} and {n}")
        size[c] = n
    bat = [c for c in out if c in A and c in B]
    m = [c for c in A if c in out and c not in B]
    n = [c for c in B if c in out and c not in A]
    k = [c for c in A if c in B and c not in out]
    perm_a = [A.index(c) for c in bat + m + k]
    perm_b = [B.index(c) for c in bat + k + n]
    mid = bat + m + n
    return perm_a, perm_b, ([size[c] for c in bat], [size[c] for c in m], [size[c] for c in k],
                            [size[c] for c in n]), [mid.index(c) for c in out]


def einsum(site: Site, equation, a, b):
    """Two-operand ``torch.einsum`` as a batched matmul (see the module docstring)."""
    perm_a, perm_b, (sb, sm, sk, sn), out_perm = einsum_plan(equation, a.shape, b.shape)
    nb, M, K, N = math.prod(sb), math.prod(sm), math.prod(sk), math.prod(sn)
    a3 = a.permute(perm_a).reshape(nb, M, K)
    b3 = b.permute(perm_b).reshape(nb, K, N)
    if isinstance(a, torch.nn.Parameter):
        a3 = torch.nn.Parameter(a3, requires_grad=False)
    if isinstance(b, torch.nn.Parameter):
        b3 = torch.nn.Parameter(b3, requires_grad=False)
    y = matmul(site, a3, b3)
    return y.reshape(*sb, *sm, *sn).permute(out_perm)
