"""Operand streams of real layer outputs, for the RTL testbenches.

``record_streams(model, spec, layer_name, x, n_outputs, seed)`` emulates ``model`` with ``spec``,
captures the quantised operands of one Conv2d/Linear layer on input ``x``, picks ``n_outputs``
output elements at random (``seed``) and returns, per element, the bit patterns a MAC unit sees:
the loaded bias (``init``) and the K operand pairs in the reduction order, plus the final
accumulator code (``out``) computed by stepping :func:`psum.golden.mac_step` (sequential order).
"""

from __future__ import annotations

import numpy as np
import torch

from .layers import emulate
from .ops import Site
from .kernels import codes, sr_rand
from psum.golden.mac import mac_step
from psum.golden.rounding import Rounding
from psum.golden.spec import MacSpec
from psum._util import check_int

__all__ = ["record_streams", "as_streams"]


def record_streams(model, spec, layer_name: str, x, n_outputs: int, seed: int = 0, **emulate_kw) -> dict:
    """Operand streams of ``n_outputs`` real output elements of one layer.

    Parameters
    ----------
    model : torch.nn.Module
    spec : MacSpec or str
        The unit (applied to every Conv2d/Linear layer, as ``emulate(model, spec)``).
    layer_name : str
        A MAC op's name (a Conv/Linear module's name from ``model.named_modules()``, or an op
        name from the coverage table such as ``attn.qk``).
    x : torch.Tensor
        Network input.
    n_outputs : int
        Number of output elements to record (at most the layer's output size).
    seed : int
        Chooses the elements (and seeds stochastic rounding).

    Returns
    -------
    dict
        ``a``, ``b``: uint64 arrays ``[n, K]`` of operand codes; ``init``: uint64 ``[n]`` loaded
        accumulator codes; ``out``: uint64 ``[n]`` final accumulator codes; ``rand``: int64
        ``[n, K]`` stochastic-rounding bits (zeros unless ``round=sr``); ``index``: int64 ``[n]``
        flat output indices; ``spec``: the spec text.

    Raises
    ------
    ValueError
        Unknown layer, an op that did not run, or ``n_outputs`` not a positive integer.
    """
    spec = MacSpec.parse(spec)
    check_int("n_outputs", n_outputs, 1)
    q = emulate(model, {layer_name: spec}, seed=seed, **emulate_kw)
    acc = q.psum_accumulator
    site = Site(layer_name, "op", spec, **acc.options)  # the op's site, recording its GEMM blocks
    site.capture = []
    acc.sites[layer_name] = site
    with torch.no_grad():
        q(x)
    if not site.capture:
        raise ValueError(f"op {layer_name!r} did not run in the forward pass")
    As = site.capture
    # element list over all GEMM blocks: (block, row, col)
    sizes = [blk[0].shape[0] * blk[1].shape[1] for blk in As]
    total = sum(sizes)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(total, size=min(n_outputs, total), replace=False))
    a_rows, b_rows, init_c, index, scale = [], [], [], [], []
    start = 0
    for (A, B, init, rb, cs, out_scale), size in zip(As, sizes):
        sel = pick[(pick >= start) & (pick < start + size)] - start
        start += size
        if not len(sel):
            continue
        N = B.shape[1]
        m, n = sel // N, sel % N
        An = A.detach().cpu().double().numpy()
        Bn = B.detach().cpu().double().numpy()
        a_rows.append(codes(spec.a, An[m]))
        b_rows.append(codes(spec.b, Bn[:, n].T))
        init_c.append(codes(spec.acc, init.detach().cpu().double().numpy()[m, n]))
        index.append(rb[m] + n * cs)
        scale.append(out_scale.detach().cpu().double().numpy()[n])
    a = np.concatenate(a_rows)
    b = np.concatenate(b_rows)
    init = np.concatenate(init_c)
    index = np.concatenate(index)
    K = a.shape[1]
    rand = np.zeros(a.shape, dtype=np.int64)
    acc = init.copy()
    seq = spec.replace(order="seq", acc2=None)
    for k in range(K):
        if spec.rounding is Rounding.SR:
            rand[:, k] = sr_rand(site.seed, index, k, spec.sr_bits)
        acc = mac_step(seq, acc, a[:, k], b[:, k], rand=rand[:, k] if spec.rounding is Rounding.SR else None)
    return {"a": a, "b": b, "init": init, "out": acc, "rand": rand, "index": index,
            "scale": np.concatenate(scale), "spec": str(spec)}


def as_streams(record: dict) -> list:
    """The ``(a_codes, b_codes, init_code)`` list that :func:`psum.hw.verify.simulate` (``streams=``)
    and :func:`psum.flows.synth.synthesize` (``streams=``) take, from a :func:`record_streams` dict."""
    return [(record["a"][i], record["b"][i], int(record["init"][i])) for i in range(len(record["init"]))]
