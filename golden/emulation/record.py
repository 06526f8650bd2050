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

from .layers import EmulatedConv2d, EmulatedLinear, emulate
from .kernels import codes, sr_rand
from psum.golden.mac import mac_step
from psum.golden.rounding import Rounding
from psum.golden.spec import MacSpec
from psum._util import check_int

__all__ = ["record_streams", "as_streams"]


class _Stop(Exception):
    pass


def record_streams(model, spec, layer_name: str, x, n_outputs: int, seed: int = 0, **emulate_kw) -> dict:
    """Operand streams of ``n_outputs`` real output elements of one layer.

    Parameters
    ----------
    model : torch.nn.Module
    spec : MacSpec or str
        The unit (applied to every Conv2d/Linear layer, as ``emulate(model, spec)``).
    layer_name : str
        A Conv2d/Linear layer name from ``model.named_modules()``.
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
        Unknown layer, or ``n_outputs`` not a positive integer.
    """
    spec = MacSpec.parse(spec)
    check_int("n_outputs", n_outputs, 1)
    q = emulate(model, {layer_name: spec}, seed=seed, **emulate_kw)
    layer = q.get_submodule(layer_name)
    assert isinstance(layer, (EmulatedConv2d, EmulatedLinear))
    seen = {}

    def hook(mod, inp):
        seen["x"] = inp[0].detach()
        raise _Stop

    h = layer.register_forward_pre_hook(hook)
    try:
        with torch.no_grad():
            q(x)
    except _Stop:
        pass
    finally:
        h.remove()
    As = []
    for A, B, init, rb, cs, _, _, _ in layer.operands(seen["x"]):
        As.append((A, B, init, np.asarray(rb), cs))
    # element list over all GEMM blocks: (block, row, col)
    sizes = [a.shape[0] * b.shape[1] for a, b, *_ in As]
    total = sum(sizes)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(total, size=min(n_outputs, total), replace=False))
    a_rows, b_rows, init_c, index = [], [], [], []
    start = 0
    for (A, B, init, rb, cs), size in zip(As, sizes):
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
            rand[:, k] = sr_rand(layer.seed, index, k, spec.sr_bits)
        acc = mac_step(seq, acc, a[:, k], b[:, k], rand=rand[:, k] if spec.rounding is Rounding.SR else None)
    return {"a": a, "b": b, "init": init, "out": acc, "rand": rand, "index": index, "spec": str(spec)}


def as_streams(record: dict) -> list:
    """The ``(a_codes, b_codes, init_code)`` list that :func:`psum.hw.verify.simulate` (``streams=``)
    and :func:`psum.flows.synth.synthesize` (``streams=``) take, from a :func:`record_streams` dict."""
    return [(record["a"][i], record["b"][i], int(record["init"][i])) for i in range(len(record["init"]))]
