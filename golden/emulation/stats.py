"""Partial-sum statistics of emulated layers: why an accumulator format fails.

Collected per layer when :func:`psum.golden.emulation.layers.emulate` runs with ``stats=True`` (sequential
order; every step goes through ``mac_step``, so it is slower). For every MAC step
``acc' = round(acc + p)`` of every output element (``p`` the exact product, in accumulator units):

``steps``
    number of steps observed.
``max_abs``
    largest finite ``|acc'|`` (in accumulator units; multiply by the layer's scales for real units).
``exp_hist``
    histogram of ``floor(log2 |acc'|)`` over non-zero finite partial sums (dict exponent -> count).
``overflow``
    fraction of steps whose rounder raised its overflow flag (:func:`psum.golden.mac_step`
    ``flags=True``): the sum (or an unfused product) rounded with an unbounded exponent exceeds the
    largest finite value, or an integer sum / product left its range. The unit's own decision, so
    a sum just above the largest finite value that rounds back to it is *not* an overflow.
``swamp``
    fraction of steps whose rounder flagged ``swamped``: the sum was inexact and the accumulator
    did not change (the product was below half an ulp of the accumulator, or rounded away).
``cancel``
    fraction of steps where ``p`` and ``acc`` are non-zero with opposite signs and
    ``|acc'| < |acc| / 2**CANCEL_BITS`` (at least ``CANCEL_BITS`` = 4 leading bits cancelled).
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np

__all__ = ["PartialSumStats", "collect_stats", "CANCEL_BITS"]

CANCEL_BITS = 4


@dataclasses.dataclass
class PartialSumStats:
    """Running statistics of one layer's partial sums (see the module docstring)."""

    spec: object
    steps: int = 0
    max_abs: float = 0.0
    n_overflow: int = 0
    n_swamp: int = 0
    n_cancel: int = 0
    exp_hist: Counter = dataclasses.field(default_factory=Counter)

    def observe(self, spec, old_codes, products, new_codes, flags) -> None:
        """Account one step for all outputs.

        Parameters
        ----------
        spec : MacSpec
        old_codes, new_codes : numpy.ndarray of uint64
            Accumulator codes before and after the step.
        products : numpy.ndarray
            The exact products (values).
        flags : dict
            The rounder's flags of the step (``overflow``, ``swamped``, ...; see
            :func:`psum.golden.mac_step`).
        """
        fmt = spec.acc
        old = fmt.decode(old_codes)
        new = fmt.decode(new_codes)
        p = np.broadcast_to(products, old.shape)
        self.steps += old.size
        fin = np.isfinite(new)
        if fin.any():
            self.max_abs = max(self.max_abs, float(np.abs(new[fin]).max()))
        nz = fin & (new != 0)
        if nz.any():
            e = np.floor(np.log2(np.abs(new[nz]))).astype(np.int64)
            vals, counts = np.unique(e, return_counts=True)
            self.exp_hist.update(dict(zip(vals.tolist(), counts.tolist())))
        # Overflow and swamping are the rounder's flags, not re-decided here.
        self.n_overflow += int(np.count_nonzero(np.broadcast_to(flags["overflow"], old.shape)))
        self.n_swamp += int(np.count_nonzero(np.broadcast_to(flags["swamped"], old.shape)))
        live = np.isfinite(old) & (old != 0) & (p != 0)
        opp = live & (np.sign(old) != np.sign(p))
        self.n_cancel += int(np.count_nonzero(opp & (np.abs(new) < np.abs(old) / 2.0**CANCEL_BITS)))

    def as_dict(self) -> dict:
        n = max(self.steps, 1)
        return {"spec": str(self.spec), "steps": self.steps, "max_abs": self.max_abs,
                "overflow": self.n_overflow / n, "swamp": self.n_swamp / n, "cancel": self.n_cancel / n,
                "exp_hist": dict(sorted(self.exp_hist.items()))}


def collect_stats(model) -> dict:
    """Per-layer statistics dicts (see the module docstring) of a model from ``emulate(..., stats=True)``.

    Returns
    -------
    dict
        ``{op_name: {"steps", "max_abs", "overflow", "swamp", "cancel", "exp_hist", "spec"}}``
        for every emulated op that collected statistics (in first-call order), and for
        standalone emulated layers (``EmulatedLinear``, ...) in ``named_modules`` order.

    Raises
    ------
    ValueError
        If no layer collected statistics.
    """
    out = {}
    acc = getattr(model, "psum_accumulator", None)
    for name, site in (acc.sites.items() if acc is not None else ()):
        if isinstance(site.stats, PartialSumStats):
            out[name] = site.stats.as_dict()
    for name, mod in model.named_modules():
        st = getattr(mod, "stats", None)
        if isinstance(st, PartialSumStats):
            out[name] = st.as_dict()
    if not out:
        raise ValueError("no partial-sum statistics: build the model with emulate(..., stats=True) and run a forward")
    return out
