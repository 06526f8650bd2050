"""Tensor-level quantisation: round values to a format and return them as values again."""

from __future__ import annotations

import numpy as np

from .formats import parse_format

__all__ = ["quantize"]


def quantize(x, fmt, rounding="rne", *, saturate=None, sr_bits=0, seed=None, rand=None):
    """Round ``x`` to ``fmt`` and return the represented values, same type and shape as ``x``.

    ``x`` may be a numpy array or a torch tensor (returned on its device, in its dtype when that
    dtype holds every value of ``fmt`` exactly, else float64). ``saturate`` defaults to ``False``
    for float formats and ``True`` for integer formats.
    """
    fmt = parse_format(fmt)
    kwargs = dict(sr_bits=sr_bits, seed=seed, rand=rand)
    if saturate is not None:
        kwargs["saturate"] = saturate
    values = fmt.decode(fmt.encode(x, rounding, **kwargs))
    if hasattr(x, "detach"):
        import torch

        out = torch.from_numpy(values)
        return out.to(device=x.device, dtype=x.dtype if x.dtype == torch.float64 else torch.float64)
    return values.reshape(np.shape(x))
