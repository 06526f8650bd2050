"""A trained model's layers as the studies need them: K per layer and the quantised GEMM operands."""

from __future__ import annotations

import numpy as np

__all__ = ["layer_gemms", "layer_k"]


def layer_k(net, name: str) -> int:
    """K, the dot-product length of Conv/Linear layer ``name`` (in_channels/groups x kernel, or in_features)."""
    mod = dict(net.named_modules())[name]
    if hasattr(mod, "in_features"):
        return int(mod.in_features)
    return int(mod.in_channels // mod.groups * np.prod(mod.kernel_size))


def layer_gemms(net, spec, name: str, x, *, calib=None, seed: int = 0) -> list[tuple]:
    """The quantised GEMM blocks layer ``name`` computes on input ``x`` under ``spec``.

    Parameters
    ----------
    net : torch.nn.Module
    spec : MacSpec or str
        The unit of that layer (the others stay float32).
    name : str
        A Conv/Linear layer (or a MAC op's coverage name).
    x : torch.Tensor
        Network input.
    calib : torch.Tensor, optional
        Calibration inputs for the activation scales (as :func:`psum.golden.emulation.layers.emulate`).

    Returns
    -------
    list of (A, B, init)
        float64 numpy arrays in the operand formats' units: ``A`` ``[M, K]`` (activations),
        ``B`` ``[K, N]`` (weights, one column per output channel), ``init`` ``[M, N]`` (the bias
        loaded into the accumulator). Integer specs give exact integers.

    Raises
    ------
    ValueError
        The layer did not run.
    """
    import torch

    from psum.golden import MacSpec
    from psum.golden.emulation.layers import emulate
    from psum.golden.emulation.ops import Site

    spec = MacSpec.parse(spec)
    q = emulate(net, {name: spec}, seed=seed, calib=calib)
    acc = q.psum_accumulator
    site = Site(name, "op", spec, **acc.options)
    site.capture = []
    acc.sites[name] = site
    with torch.no_grad():
        q(x)
    if not site.capture:
        raise ValueError(f"op {name!r} did not run in the forward pass")
    out = []
    for A, B, init, *_ in site.capture:
        init = init.detach().cpu().double().numpy()
        A = A.detach().cpu().double().numpy()
        out.append((A, B.detach().cpu().double().numpy(), np.broadcast_to(init, (A.shape[0], B.shape[1]))))
    return out
