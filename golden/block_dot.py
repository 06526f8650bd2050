"""The block dot product of block-scaled operands (OCP MX, NVFP4): the golden contract.

Block ``j`` contributes ``T_j = P_j * Sa_j * Sb_j`` (``P_j`` the exact sum of the block's element
products, or with ``spec.bsum`` their sum accumulated into that format), added into the
accumulator as ``acc := round(acc + T_j)`` with the spec's rounding, overflow and order (a float
accumulator: one float rounding; a fixed-point ``q<I>.<F>`` or signed integer ``int<W>`` = ``q<W>.0``
accumulator: the exact sum rounded onto its grid by the spec's rounding, then wrapped or
saturated, :func:`grid_format`); the rules (specials, zero sign) are in :mod:`psum.golden.blocks`' docstring and ``docs/mx.md``.
"""

from __future__ import annotations

import numpy as np

from .formats import NAMED, FixedFormat, IntFormat
from .mac import mac_step
from .spec import MacSpec

__all__ = ["grid_format", "term_spec", "block_terms", "block_dot"]


def grid_format(fmt):
    """The register a block term is added into: an integer format ``int<W>`` as ``q<W>.0``.

    A block term ``T_j = P_j * 2**(e_a + e_b)`` (E8M0 scales) is a dyadic rational, not an
    integer, so an integer accumulator takes it the way a fixed-point one does: the exact sum
    ``acc + T_j`` rounded onto the grid of integers by the spec's rounding (``rtz`` truncates
    toward zero, ``rdn`` floors), then wrapped or saturated into ``W`` bits
    (:mod:`psum.golden.mac`, fixed-point accumulator). ``int<W>`` and ``q<W>.0`` have the same
    codes (the two's complement integer), so the register's codes are the integer's. Any other
    format is returned unchanged.
    """
    if isinstance(fmt, IntFormat):
        return FixedFormat(fmt.bits, 0)
    return fmt


def term_spec(spec):
    """The MAC spec that adds block terms into the accumulator: ``acc := round(acc + T_j * 1)``.

    ``a`` is fp64 (a term is exact there, see :func:`block_terms`), ``b`` the integer 1 (2-bit
    code 1), with ``spec``'s accumulator, rounding, overflow, order and ``acc2``; an integer
    accumulator (and ``acc2``) as the fixed-point grid ``q<W>.0`` (:func:`grid_format`).
    """
    return MacSpec(a=NAMED["fp64"], b=IntFormat(2), acc=grid_format(spec.acc), rounding=spec.rounding,
                   overflow=spec.overflow, sr_bits=spec.sr_bits or None, order=spec.order,
                   acc2=None if spec.acc2 is None else grid_format(spec.acc2))


def _lsb_exp(fmt, values: np.ndarray) -> np.ndarray:
    """Exponent of the last significand bit of each non-zero finite value of ``fmt`` (float64)."""
    if isinstance(fmt, FixedFormat):
        return np.full(values.shape, float(fmt.lsb_exp))
    e = np.frexp(np.where(np.isfinite(values) & (values != 0), values, 1.0))[1] - 1
    return np.maximum(e, fmt.emin).astype(np.float64) - fmt.man_bits


def block_terms(spec, a_scales, a_elems, b_scales, b_elems, *, rand=None) -> np.ndarray:
    """The block terms ``T_j = P_j * Sa_j * Sb_j`` of a block dot product, exact, as float64.

    Parameters
    ----------
    spec : MacSpec or str
        A block-scaled spec (``a`` and ``b`` block formats of one block size).
    a_scales, b_scales : array_like of uint64, shape (..., J)
        Scale codes (broadcast together).
    a_elems, b_elems : array_like of uint64, shape (..., J, k)
        Element codes.
    rand : array_like, optional
        ``spec.bsum`` with ``round=sr``: random integers, shape (..., J, k).

    Returns
    -------
    numpy.ndarray of float64, shape (..., J)
        The exact terms (NaN / inf per the module docstring; an exact zero is +0).

    Raises
    ------
    ValueError
        A spec without block formats; an exact block sum that float64 cannot hold (more than 53
        significant bits: only mxfp8_e5m2 blocks spanning over 2**31 in product magnitude can).

    Notes
    -----
    Exactness: element values and their products are exact in float64 (at most 2 x 7 significand
    bits). Every partial sum of a block is a multiple of the smallest product lsb ``L`` and at most
    the sum of the magnitudes ``U``; when ``U < 2**53 * L`` every partial sum is a float64 number,
    so float64 additions in any order are exact. That bound is checked per block (with one bit of
    margin for the rounded bound itself). A scale product is exact: E8M0 scales are powers of two
    (the exponents stay inside float64's range), E4M3 scales have 4 significand bits.
    """
    spec = MacSpec.parse(spec)
    if not spec.blocked:
        raise ValueError(f"block_terms needs block-scaled operands, not {spec}")
    fa, fb = spec.a, spec.b
    ea = fa.elem.decode(np.asarray(a_elems, dtype=np.uint64))
    eb = fb.elem.decode(np.asarray(b_elems, dtype=np.uint64))
    sa = fa.scale.decode(np.asarray(a_scales, dtype=np.uint64))
    sb = fb.scale.decode(np.asarray(b_scales, dtype=np.uint64))
    with np.errstate(invalid="ignore", over="ignore"):
        prods = ea * eb  # exact (or inf/NaN per IEEE: inf*0 = NaN)
        if spec.bsum is None:
            P = prods.sum(axis=-1)
            finite = np.isfinite(prods)
            nz = finite & (prods != 0)
            lsb = np.where(nz, _lsb_exp(fa.elem, ea) + _lsb_exp(fb.elem, eb), np.inf).min(axis=-1)
            bound = np.abs(np.where(finite, prods, 0.0)).sum(axis=-1)
            bad = np.isfinite(lsb) & (bound >= np.ldexp(1.0, (lsb + 52).astype(np.int32)))
            if bad.any():
                raise ValueError(f"a block sum of {fa} x {fb} needs more than 53 bits; use bsum=FMT "
                                 f"(an intermediate block-sum format) for these operands")
        else:
            P = _bsum(spec, np.asarray(a_elems, dtype=np.uint64), np.asarray(b_elems, dtype=np.uint64), rand)
        T = P * (sa * sb)
        # an exactly zero block sum adds +0 (x + 0.0 maps -0 to +0, leaves everything else)
        return T + 0.0


def _bsum(spec, a_elems, b_elems, rand):
    """Block sums accumulated product by product into ``spec.bsum`` (values, float64 exact)."""
    inner = MacSpec(a=spec.a.elem, b=spec.b.elem, acc=spec.bsum, rounding=spec.rounding,
                    sr_bits=spec.sr_bits or None, overflow="sat" if spec.saturate else None)
    a_elems, b_elems = np.broadcast_arrays(a_elems, b_elems)
    s = np.zeros(a_elems.shape[:-1], dtype=np.uint64)
    for i in range(a_elems.shape[-1]):
        r = None if rand is None else np.asarray(rand)[..., i]
        s = mac_step(inner, s, a_elems[..., i], b_elems[..., i], r)
    return spec.bsum.decode(s)


def block_dot(spec, acc, a_scales, a_elems, b_scales, b_elems, *, rand=None, bsum_rand=None) -> np.ndarray:
    """``acc`` after adding every block term of a block dot product in order (``order=seq``).

    ``acc := round(acc + T_j)`` for ``j = 0 .. J-1`` (:func:`block_terms`, :func:`term_spec`):
    the golden contract of a block-scaled MAC. The other orders run in the network emulation
    (:func:`psum.golden.emulation.mx.block_gemm`), on the same terms.

    Parameters
    ----------
    spec : MacSpec or str
    acc : array_like of uint64, shape (...)
        Accumulator codes.
    a_scales, a_elems, b_scales, b_elems
        As :func:`block_terms`.
    rand : array_like, optional
        ``round=sr``: random integers for the accumulation, shape (..., J).
    bsum_rand : array_like, optional
        ``round=sr`` with ``bsum``: random integers for the block sums, shape (..., J, k).

    Returns
    -------
    numpy.ndarray of uint64
        The accumulator codes.

    Raises
    ------
    ValueError
        A spec whose order is not ``seq``; what :func:`block_terms` raises.
    """
    spec = MacSpec.parse(spec)
    if spec.order.kind != "seq":
        raise ValueError(f"block_dot runs order=seq; order {spec.order} runs in the emulation (block_gemm)")
    T = block_terms(spec, a_scales, a_elems, b_scales, b_elems, rand=bsum_rand)
    ts = term_spec(spec)
    fp64 = ts.a
    acc = np.asarray(acc, dtype=np.uint64)
    acc, T0 = np.broadcast_arrays(acc, T[..., 0])
    acc = acc.copy()
    for j in range(T.shape[-1]):
        r = None if rand is None else np.asarray(rand)[..., j]
        acc = mac_step(ts, acc, fp64.encode(T[..., j]), np.uint64(1), r)
    return acc
