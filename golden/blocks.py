"""Block-scaled formats: OCP Microscaling (MX v1.0) and NVIDIA NVFP4, and their block dot product.

A block format stores ``k`` elements of an element format that share one scale of a scale format:
the value of element ``i`` of a block is ``scale * element_i``. psum names them as OCP MX v1.0
(table 1) and NVIDIA do:

=============  ============  ===========  ====  ==============================================
name           element       scale        k     source
=============  ============  ===========  ====  ==============================================
mxfp8_e4m3     fp8_e4m3      e8m0         32    OCP MX v1.0, section 5
mxfp8_e5m2     fp8_e5m2      e8m0         32    OCP MX v1.0, section 5
mxfp6_e3m2     fp6_e3m2      e8m0         32    OCP MX v1.0, section 5
mxfp6_e2m3     fp6_e2m3      e8m0         32    OCP MX v1.0, section 5
mxfp4          fp4_e2m1      e8m0         32    OCP MX v1.0, section 5
mxint8         q2.6          e8m0         32    OCP MX v1.0, section 5.3 (int8, scale 2**-6)
nvfp4          fp4_e2m1      fp8_e4m3     16    NVIDIA Blackwell NVFP4 (E4M3 block scale)
=============  ============  ===========  ====  ==============================================

Another block size is part of the name: ``mxfp4_k16`` (``k`` is the OCP spec's name for it).

Quantisation (:func:`quantize_blocks`), per block of ``k`` consecutive values along the last axis:

MX (OCP MX v1.0 section 6.3)
    shared exponent ``floor(log2(max|v|)) - emax_elem`` (``emax_elem``: exponent of the element
    format's largest normal, 0 for mxint8), clamped into E8M0's range ``[-127, 127]``; an all-zero
    block takes ``2**-127``. Elements: ``v / 2**shared`` (exact) rounded to nearest, ties to even,
    saturating at the element's largest finite value (OCP leaves FP8 overflow implementation
    defined; psum saturates, as the microxcaling reference library does).
NVFP4
    block scale ``amax / 6`` rounded to nearest-even into E4M3 (saturating at 448); elements
    ``v / scale`` rounded to nearest-even, saturating at 6, computed exactly (compared against the
    exact products ``midpoint * scale``, no host-float division). An optional per-tensor scale
    ``g`` (NVIDIA's fp32 second level, ``amax_tensor / (6 * 448)``) divides first:
    ``scale = e4m3(amax / (6 g))``, elements ``v / (scale * g)``. A block scale that rounds to
    zero gives zero elements.
Specials
    a block holding a NaN or an infinity gets the scale NaN (E8M0 ``0xff``, E4M3 ``0x7f``) and
    zero element codes: every value of the block reads back as NaN (OCP MX v1.0 section 6.3: a
    NaN scale makes the whole block NaN).

The block dot product (:mod:`psum.golden.block_dot`) of two block vectors of ``J``
blocks: block ``j`` contributes the term ``T_j = P_j * Sa_j * Sb_j``, where ``P_j`` is the sum
of the block's ``k`` element products, exact (default) or, with ``spec.bsum``, accumulated
product by product (index order) into the named intermediate format with the spec's rounding;
the accumulator then takes ``acc := round(acc + T_j)`` for ``j = 0 .. J-1`` with the spec's
rounding, overflow and accumulation order (each term one step of the order). An exactly zero
``P_j`` contributes ``+0``. A NaN scale or element, or ``inf * 0`` inside a block, makes its term
NaN; infinite elements (e5m2) give an infinite term, ``+inf - inf`` NaN.
"""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np

from psum._util import check_int

from .formats import FixedFormat, FloatFormat, Pow2Format, parse_format

__all__ = ["BlockFormat", "BLOCK_NAMED", "BLOCK_HELP", "parse_block_format", "is_block_format",
           "quantize_blocks", "dequantize_blocks", "pad_blocks", "emax_elem"]

BLOCK_HELP = ("a block format: mxfp8_e4m3, mxfp8_e5m2, mxfp6_e3m2, mxfp6_e2m3, mxfp4, mxint8 or nvfp4, "
              "with _k<N> for a block size other than 32 (nvfp4: 16)")

# name -> (element format, scale format, default block size)
BLOCK_NAMED: dict[str, tuple[str, str, int]] = {
    "mxfp8_e4m3": ("fp8_e4m3", "e8m0", 32),
    "mxfp8_e5m2": ("fp8_e5m2", "e8m0", 32),
    "mxfp6_e3m2": ("fp6_e3m2", "e8m0", 32),
    "mxfp6_e2m3": ("fp6_e2m3", "e8m0", 32),
    "mxfp4": ("fp4_e2m1", "e8m0", 32),
    "mxint8": ("q2.6", "e8m0", 32),
    "nvfp4": ("fp4_e2m1", "fp8_e4m3", 16),
}
_BLOCK_RE = re.compile(r"(" + "|".join(sorted(BLOCK_NAMED, key=len, reverse=True)) + r")(?:_k([0-9]+))?")
_MAX_BLOCK = 4096


def emax_elem(fmt) -> int:
    """Exponent of the largest power of two an element format holds (OCP MX's ``emax_elem``).

    Float formats: ``fmt.emax``; fixed point ``q<I>.<F>``: ``I - 2`` (mxint8 = q2.6: 0).
    """
    if isinstance(fmt, FixedFormat):
        return fmt.int_bits - 2
    return fmt.emax


@dataclasses.dataclass(frozen=True)
class BlockFormat:
    """A block-scaled format: ``block`` elements of ``elem`` sharing one ``scale`` value.

    Parameters
    ----------
    elem : Format or str
        Element format: a float format or fixed point (mxint8's ``q2.6``).
    scale : Format or str
        Scale format: a power-of-two format (``e8m0``: MX rules) or an 8-bit float format
        (``fp8_e4m3``: NVFP4 rules).
    block : int
        Elements per block (OCP's ``k``), 1..4096.
    name : str, optional
        The family name (``mxfp4``); derived text otherwise.

    Raises
    ------
    ValueError
        A scale format that is neither a power-of-two nor an FP8 format; an element format that
        is not float or fixed point; a block size out of range.
    """

    elem: object
    scale: object
    block: int
    name: str = ""

    def __post_init__(self):
        object.__setattr__(self, "elem", parse_format(self.elem))
        object.__setattr__(self, "scale", parse_format(self.scale))
        if not isinstance(self.scale, Pow2Format) and not (isinstance(self.scale, FloatFormat) and self.scale.width == 8):
            raise ValueError(f"block scale format must be a power-of-two format (e8m0) or an FP8 format, "
                             f"not {self.scale}")
        if not isinstance(self.elem, (FloatFormat, FixedFormat)):
            raise ValueError(f"block element format must be a float or fixed-point format, not {self.elem}")
        check_int("block size", self.block, 1, _MAX_BLOCK)

    @property
    def pow2_scale(self) -> bool:
        """True for MX (E8M0 scales), False for FP8 scales (NVFP4)."""
        return isinstance(self.scale, Pow2Format)

    @property
    def bits_per_element(self) -> float:
        """Storage cost: element width plus the scale's share."""
        return self.elem.width + self.scale.width / self.block

    @property
    def tag(self) -> str:
        """Identifier-safe text (``mxfp4``, ``mxfp4_k16``)."""
        return str(self)

    def __str__(self) -> str:
        if self.name:
            default = BLOCK_NAMED[self.name][2]
            return self.name if self.block == default else f"{self.name}_k{self.block}"
        return f"blk_{self.elem.tag}_{self.scale.tag}_k{self.block}"


def is_block_format(text) -> bool:
    """True for a :class:`BlockFormat` or text naming one."""
    if isinstance(text, BlockFormat):
        return True
    return isinstance(text, str) and _BLOCK_RE.fullmatch(text.strip().lower()) is not None


def parse_block_format(text) -> BlockFormat:
    """Parse ``mxfp4``, ``nvfp4``, ``mxfp8_e4m3_k16``, ...; a :class:`BlockFormat` is returned unchanged.

    Raises
    ------
    ValueError
        Text that names no block format, or a block size out of range.
    """
    if isinstance(text, BlockFormat):
        return text
    m = _BLOCK_RE.fullmatch(text.strip().lower()) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"unknown block format {text!r}; use {BLOCK_HELP}")
    elem, scale, k = BLOCK_NAMED[m.group(1)]
    try:
        return BlockFormat(elem, scale, int(m.group(2)) if m.group(2) else k, name=m.group(1))
    except ValueError as exc:
        raise ValueError(f"block format {text!r}: {exc}") from None


# ---------------------------------------------------------------------------------------------
# Quantisation
# ---------------------------------------------------------------------------------------------
def pad_blocks(x: np.ndarray, k: int) -> np.ndarray:
    """``x`` with zeros appended along the last axis up to a multiple of ``k``."""
    K = x.shape[-1]
    extra = (-K) % k
    if not extra:
        return x
    return np.concatenate([x, np.zeros((*x.shape[:-1], extra), dtype=x.dtype)], axis=-1)


def _nearest_scaled(v: np.ndarray, fmt: FloatFormat, s: np.ndarray) -> np.ndarray:
    """Codes of ``fmt`` nearest to ``v / s`` (ties to even code, saturating), computed exactly.

    Compares ``|v|`` with the products ``midpoint * s`` of the format's midpoints, which are exact
    in float64 (a midpoint has at most ``precision + 1`` significand bits, ``s`` at most 29 here), so
    no quotient is ever rounded (a float64 quotient would round twice). ``fmt`` has at most 8 bits.
    """
    pos = np.arange(fmt.max_code + 1, dtype=np.uint64)
    grid = fmt.decode(pos)  # 0 .. max, ascending (positive codes are monotone)
    mids = (grid[1:] + grid[:-1]) / 2  # exact: neighbours differ by a power-of-two ulp
    a = np.abs(v)[..., None]
    below = (a > mids * s[..., None]).sum(axis=-1)  # index of the nearest when not a tie
    tie = (a == mids * s[..., None]).any(axis=-1)
    # a tie between codes i-1 and i (a == mids[i-1]*s): count gave i-1; even code wins
    idx = np.where(tie & (below % 2 == 1), below + 1, below)
    code = pos[np.minimum(idx, fmt.max_code)]
    neg = np.signbit(v) & (code != 0)
    return code | (neg.astype(np.uint64) << np.uint64(fmt.width - 1))


def quantize_blocks(x, bfmt, *, tensor_scale: float = 1.0, pad: bool = False):
    """Quantise values into blocks along the last axis (rules in the module docstring).

    Parameters
    ----------
    x : array_like, shape (..., K)
        Values; ``K`` a multiple of the block size unless ``pad``.
    bfmt : BlockFormat or str
    tensor_scale : float
        NVFP4's per-tensor (fp32) scale ``g``; 1 for none. MX formats take none.
    pad : bool
        Append zeros up to a multiple of the block size.

    Returns
    -------
    scales : numpy.ndarray of uint64, shape (..., J)
        Scale codes (E8M0 or E4M3), ``J = K / k``.
    elems : numpy.ndarray of uint64, shape (..., J, k)
        Element codes.

    Raises
    ------
    ValueError
        ``K`` not a multiple of the block size (without ``pad``); a tensor scale with an MX format,
        or one that is not a positive finite fp32 number.
    """
    bfmt = parse_block_format(bfmt)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 0:
        x = x[None]
    k = bfmt.block
    if pad:
        x = pad_blocks(x, k)
    if x.shape[-1] % k:
        raise ValueError(f"{x.shape[-1]} values do not fill blocks of {k} ({bfmt}); pad with zeros (pad=True)")
    g = float(tensor_scale)
    if g != 1.0 and bfmt.pow2_scale:
        raise ValueError(f"{bfmt} takes no per-tensor scale (its E8M0 scales are the whole scaling)")
    if not (math.isfinite(g) and g > 0 and float(np.float32(g)) == g):
        raise ValueError(f"tensor scale must be a positive finite fp32 number, not {tensor_scale!r}")
    xb = x.reshape(*x.shape[:-1], -1, k)
    special = ~np.isfinite(xb).all(axis=-1)
    xb = np.where(np.isfinite(xb), xb, 0.0)
    amax = np.abs(xb).max(axis=-1)
    elem, sfmt = bfmt.elem, bfmt.scale
    if bfmt.pow2_scale:
        # shared exponent: floor(log2(amax)) - emax_elem, clamped into the scale's range
        e = np.frexp(np.where(amax > 0, amax, 1.0))[1].astype(np.int64) - 1  # exact floor(log2)
        shared = np.where(amax > 0, e - emax_elem(elem), sfmt.emin)
        shared = np.clip(shared, sfmt.emin, sfmt.emax)
        scodes = (shared + sfmt.bias).astype(np.uint64)
        v = np.ldexp(xb, -shared[..., None].astype(np.int32))  # exact: a power-of-two scaling
        ecodes = elem.encode(v, "rne", saturate=True)  # one rounding
    else:
        six = elem.max_value
        scodes = _nearest_scaled(amax, sfmt, np.full(amax.shape, six * g))
        s = sfmt.decode(scodes) * g  # exact: <= 4 + 24 significand bits
        ecodes = _nearest_scaled(xb, elem, np.broadcast_to(s[..., None], xb.shape))
        ecodes = np.where(s[..., None] == 0, np.uint64(0), ecodes)
    scodes = np.where(special, np.uint64(sfmt.nan_code), scodes)
    ecodes = np.where(special[..., None], np.uint64(0), ecodes)
    return scodes.astype(np.uint64), ecodes.astype(np.uint64)


def dequantize_blocks(bfmt, scales, elems, *, tensor_scale: float = 1.0) -> np.ndarray:
    """Values ``scale * element * tensor_scale`` of block codes, shape (..., J*k); NaN scales give NaN."""
    bfmt = parse_block_format(bfmt)
    s = bfmt.scale.decode(np.asarray(scales, dtype=np.uint64))
    v = bfmt.elem.decode(np.asarray(elems, dtype=np.uint64)) * s[..., None] * float(tensor_scale)
    return v.reshape(*v.shape[:-2], -1)
