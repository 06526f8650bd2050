"""Tensor-level quantisation: round values to a format and return them as values (``quantize``)
or as bit patterns (``encode``, and back with ``decode``), numpy or torch in, the same kind out.

torch is never imported here unless the caller passed a tensor (``hasattr(x, "detach")``): the
numeric core stays numpy-only.
"""

from __future__ import annotations

import numpy as np

from .formats import parse_format
from .rounding import Rounding, parse_rounding

__all__ = ["quantize", "encode", "decode", "DEFAULT_SR_BITS"]

# Random bits per stochastic rounding when none are given: the CLI's and MacSpec's default.
DEFAULT_SR_BITS = 8


def _round_kwargs(rounding, saturate, sr_bits, seed, rand) -> dict:
    """Keywords of ``Format.encode``: ``sr_bits`` defaults to :data:`DEFAULT_SR_BITS` with ``sr``."""
    if sr_bits is None:
        sr_bits = DEFAULT_SR_BITS if parse_rounding(rounding) is Rounding.SR else 0
    kwargs = dict(sr_bits=sr_bits, seed=seed, rand=rand)
    if saturate is not None:
        kwargs["saturate"] = saturate
    return kwargs


def _alias(rounding, round_, sr_bits, srbits):
    """The text keys ``round=`` / ``srbits=`` as aliases of ``rounding=`` / ``sr_bits=``."""
    if round_ is not None:
        if rounding is not None:
            raise TypeError("got both rounding= and its alias round=")
        rounding = round_
    if srbits is not None:
        if sr_bits is not None:
            raise TypeError("got both sr_bits= and its alias srbits=")
        sr_bits = srbits
    return ("rne" if rounding is None else rounding), sr_bits


def encode(x, fmt, rounding=None, *, saturate=None, sr_bits=None, seed=None, rand=None, round=None,
           srbits=None):
    """Round ``x`` to ``fmt`` and return its bit patterns, numpy or torch as ``x`` is.

    Parameters
    ----------
    x : array_like or torch.Tensor
        Real values.
    fmt : Format or str
        Target format (:func:`psum.golden.parse_format`).
    rounding : Rounding or str
        Rounding mode (default ``rne``); ``round=`` is an alias (the MAC spec's text key).
    saturate : bool, optional
        Overflow to the largest finite value; default ``False`` for floats, ``True`` for integers.
    sr_bits : int, optional
        Random bits for ``sr`` (default 8, as ``psum quantize --sr-bits`` and ``MacSpec``);
        ``srbits=`` is an alias.
    seed, rand
        Randomness for ``sr`` (see :meth:`psum.golden.FloatFormat.encode`).

    Returns
    -------
    numpy.ndarray of uint64, or torch.Tensor of int64
        Codes of ``x``'s shape; a tensor input gives an int64 tensor on its device (torch has no
        uint64 arithmetic; every psum code is below 2**63 except 64-bit formats' sign bit, which
        wraps to a negative int64 as a two's-complement reinterpretation).
    """
    rounding, sr_bits = _alias(rounding, round, sr_bits, srbits)
    f = parse_format(fmt)
    codes = np.asarray(f.encode(x, rounding, **_round_kwargs(rounding, saturate, sr_bits, seed, rand)))
    codes = codes.reshape(np.shape(x))
    if hasattr(x, "detach"):
        import torch

        return torch.from_numpy(codes.view(np.int64).copy()).to(device=x.device)
    return codes


def decode(codes, fmt):
    """Values of bit patterns ``codes`` of ``fmt``: float64, numpy or torch as ``codes`` is.

    Parameters
    ----------
    codes : array_like or torch.Tensor
        Bit patterns (as :func:`encode` returns them).
    fmt : Format or str
        Their format.

    Returns
    -------
    numpy.ndarray or torch.Tensor of float64
        Exact values (every code of every psum format fits a float64).
    """
    f = parse_format(fmt)
    if hasattr(codes, "detach"):
        import torch

        arr = codes.detach().cpu().numpy().astype(np.int64).view(np.uint64)
        return torch.from_numpy(np.asarray(f.decode(arr)).reshape(arr.shape)).to(device=codes.device)
    arr = np.asarray(codes)
    return np.asarray(f.decode(arr)).reshape(arr.shape)


def quantize(x, fmt, rounding=None, *, saturate=None, sr_bits=None, seed=None, rand=None, round=None, srbits=None):
    """Round ``x`` to ``fmt`` and return the represented values, same type and shape as ``x``.

    ``x`` may be a numpy array or a torch tensor (returned on its device, in its dtype when that
    dtype holds every result exactly, else float64). ``saturate`` defaults to ``False`` for float
    formats and ``True`` for integer formats; ``rounding`` to ``rne``; ``sr_bits`` to 8 with
    ``rounding="sr"`` (as the CLI and ``MacSpec``). ``round=`` and ``srbits=`` are aliases of
    ``rounding=`` and ``sr_bits=`` (the MAC spec's text keys).
    """
    rounding, sr_bits = _alias(rounding, round, sr_bits, srbits)
    fmt = parse_format(fmt)
    values = fmt.decode(fmt.encode(x, rounding, **_round_kwargs(rounding, saturate, sr_bits, seed, rand)))
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
