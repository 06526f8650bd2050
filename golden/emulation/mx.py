"""The block-scaled (OCP MX / NVFP4) GEMM of the network emulation.

A MAC op with block-scaled operands (``a=mxfp4,b=mxfp4,...``) reaches :func:`block_gemm` with
its operands divided by their per-tensor scales but not yet quantised: blocks run along the
reduction dimension (Linear: the input features; Conv: the unfolded ``(in_channel, kernel
position)`` order; matmul: ``k``), so a convolution's activation is block-quantised per unfolded
row, and a reduction length that is not a multiple of the block size ``k`` is padded with zeros
at its end (the padding elements are zeros of the last block: they change its scale never, its
sum never). Then, per output element:

1. every block of ``a``'s row and ``b``'s column is quantised (:func:`psum.golden.blocks.quantize_blocks`);
2. the block terms ``T_j = P_j * Sa_j * Sb_j`` are formed exactly (`psum.golden.block_dot.block_terms`'
   rule; the exact block sums here in float64 matmuls, certified exact block by block);
3. the terms go through :func:`psum.golden.emulation.kernels.accumulate_order` as the steps of the
   spec's order (``acc := round(acc + T_j * 1)``, :func:`psum.golden.block_dot.term_spec`), from the
   bias. Stochastic rounding numbers the steps by block.
"""

from __future__ import annotations

import numpy as np
import torch

from psum.golden.block_dot import _lsb_exp, block_terms, term_spec
from psum.golden.blocks import pad_blocks, quantize_blocks

from .kernels import accumulate_order

__all__ = ["block_gemm", "block_sums_exact"]

_TERMS_PER_CHUNK = 1 << 21  # rows x N x J x k products held at once by the bsum path


def block_sums_exact(spec, ea: torch.Tensor, eb: torch.Tensor) -> torch.Tensor:
    """Exact block sums ``P[m, n, j] = sum_i ea[m, j, i] * eb[n, j, i]`` in float64.

    Exact by the argument of `psum.golden.block_dot.block_terms` (every partial sum a float64
    number), checked per ``(m, n, j)`` with the bound ``|ea| @ |eb| < 2**52 * L_a * L_b`` of the
    smallest product lsb.

    Raises
    ------
    ValueError
        A block sum that needs more than 53 bits (the message of ``block_terms``).
    """
    P = torch.einsum("mji,nji->mnj", ea, eb)
    U = torch.einsum("mji,nji->mnj", ea.abs(), eb.abs())
    la = _min_lsb(spec.a.elem, ea)
    lb = _min_lsb(spec.b.elem, eb)
    lim = torch.ldexp(torch.ones((), dtype=torch.float64), torch.tensor(52)) * la[:, None, :] * lb[None, :, :]
    if bool((U >= lim).any()):
        raise ValueError(f"a block sum of {spec.a} x {spec.b} needs more than 53 bits; use bsum=FMT "
                         f"(an intermediate block-sum format) for these operands")
    return P


def _min_lsb(fmt, e: torch.Tensor) -> torch.Tensor:
    """Per block, the smallest lsb value ``2**lsb_exp`` of its non-zero elements (inf if none)."""
    x = e.detach().cpu().numpy()
    lsb = np.where((x != 0) & np.isfinite(x), np.exp2(_lsb_exp(fmt, x)), np.inf).min(axis=-1)
    return torch.from_numpy(lsb)


def block_gemm(spec, A, B, init, *, row_base, col_stride, seed, backend="auto"):
    """``out[m, n]`` = the block dot product of row ``m`` of ``A`` and column ``n`` of ``B``.

    Parameters
    ----------
    spec : MacSpec
        Block-scaled spec.
    A : torch.Tensor, (M, K) float64
        Activation values (per-tensor scaled, not quantised).
    B : torch.Tensor, (K, N) float64
        Weight values (per-channel/tensor scaled, not quantised).
    init : torch.Tensor, (M, N)
        Accumulator start values (the loaded bias).
    row_base, col_stride, seed, backend
        As :func:`~psum.golden.emulation.kernels.accumulate_order` (the flat output index of
        ``(m, n)`` is ``row_base[m] + n * col_stride``; it seeds stochastic rounding).

    Returns
    -------
    torch.Tensor, (M, N) float64
        Accumulator values.
    """
    k = spec.a.block
    An = pad_blocks(A.detach().cpu().double().numpy(), k)
    Bn = pad_blocks(B.detach().cpu().double().numpy().T, k)  # (N, Kp): columns as rows
    M, N, J = An.shape[0], Bn.shape[0], An.shape[1] // k
    sa, qa = quantize_blocks(An, spec.a)
    sb, qb = quantize_blocks(Bn, spec.b)
    if spec.bsum is None:
        ea = torch.from_numpy(spec.a.elem.decode(qa))
        eb = torch.from_numpy(spec.b.elem.decode(qb))
        P = block_sums_exact(spec, ea, eb)
        S = torch.from_numpy(spec.a.scale.decode(sa))[:, None, :] * torch.from_numpy(spec.b.scale.decode(sb))[None]
        T = P * S + 0.0  # exact (see block_terms); an exact zero term is +0
    else:  # block sums rounded product by product: the golden rule, in row chunks
        T = torch.empty((M, N, J), dtype=torch.float64)
        step = max(1, _TERMS_PER_CHUNK // max(1, N * J * k))
        for r0 in range(0, M, step):
            r1 = min(M, r0 + step)
            T[r0:r1] = torch.from_numpy(block_terms(spec, sa[r0:r1, None], qa[r0:r1, None], sb[None], qb[None]))
    ts = term_spec(spec)
    rows = (np.asarray(row_base, dtype=np.int64)[:, None] + np.arange(N, dtype=np.int64) * col_stride).reshape(-1)
    ones = torch.ones((J, 1), dtype=torch.float64)
    start = init.detach().double().cpu().expand(M, N).reshape(M * N, 1)
    out = accumulate_order(ts, T.reshape(M * N, J), ones, start, row_base=rows, col_stride=1, seed=seed,
                           backend=backend)
    return out.reshape(M, N).to(A.device)
