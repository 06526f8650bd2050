"""Tensor-level quantisation: round values to a format and return them as values again."""

from __future__ import annotations

import numpy as np

from .formats import parse_format

__all__ = ["quantize"]


def quantize(x, fmt, rounding="rne", *, saturate=None, sr_bits=0, seed=None, rand=None):
    """Round ``x`` to ``fmt`` and return the represented values, same type and shape as ``x``.

    ``x`` may be a numpy array or a torch tensor (returned on its device, in its dtype when that
    dtype holds every result exactly, else float64). ``saturate`` defaults to ``False`` for float
    formats and ``True`` for integer formats.
    """
    fmt = parse_format(fmt)
    kwargs = dict(sr_bits=sr_bits, seed=seed, rand=rand)
    if saturate is not None:
        kwargs["saturate"] = saturate
    values = fmt.decode(fmt.encode(x, rounding, **kwargs))
    if hasattr(x, "detach"):
        import torch

        out = torch.from_numpy(values)
        if x.dtype.is_floating_point and x.dtype != torch.float64:
            # Keep the input's dtype when it holds every result exactly (fp16 into fp32, ...).
            cast = out.to(x.dtype)
            if torch.equal(torch.nan_to_num(cast.double(), nan=0.5), torch.nan_to_num(out, nan=0.5)):
                out = cast
        return out.to(device=x.device)
    return values.reshape(np.shape(x))
