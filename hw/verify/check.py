"""The trace check: the register after every cycle against :func:`psum.golden.mac_step`, in one pass.

Used by both cocotb tests (:mod:`.cocotb_tb`, through :func:`finish`) and usable on any trace
(the Amaranth simulator's, :func:`psum.hw.verify.amaranth_sim.amaranth_trace`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from psum._util import atomic_write
from psum.golden import MacSpec, mac_step

__all__ = ["check_trace", "finish", "UNKNOWN"]

UNKNOWN = (1 << 64) - 1  # stands for a register value with x/z bits: never equal to a golden code


def check_trace(spec, stim: dict, observed) -> tuple[int, int | None, np.ndarray]:
    """Compare the register after every cycle with the golden model, in one vectorised pass.

    ``observed[t]`` is the register after cycle ``t``'s rising edge. The expected value of cycle
    ``t`` is computed from ``observed[t-1]`` (the unit's own previous state; ``+0`` before cycle 0),
    so the sequential dependency disappears and the first mismatch is the first wrong step.

    Parameters
    ----------
    spec : MacSpec or str
    stim : dict
        The stimulus (:func:`psum.hw.verify.stimulus.make_stimulus`).
    observed : array_like
        The register after every cycle (uint64 codes).

    Returns
    -------
    (mismatches, first_cycle or None, expected)

    Raises
    ------
    ValueError
        ``observed`` and the stimulus differ in length.
    """
    spec = MacSpec.parse(spec)
    obs = np.asarray(observed, dtype=np.uint64)
    n = len(stim["rst"])
    if obs.shape != (n,):
        raise ValueError(f"observed trace has {obs.size} cycles, the stimulus {n}")
    prev = np.concatenate([np.zeros(1, np.uint64), obs[:-1]])
    rst, load, en = (stim[k].astype(bool) for k in ("rst", "load", "en"))
    step = en & ~load & ~rst
    expected = np.where(rst, np.uint64(0), np.where(load, stim["init"], prev))
    if step.any():
        rnd = stim["rnd"][step].astype(np.int64) if spec.sr_bits else None
        expected[step] = mac_step(spec, prev[step], stim["a"][step], stim["b"][step], rand=rnd)
    bad = np.flatnonzero(expected != obs)
    return int(bad.size), (int(bad[0]) if bad.size else None), expected


def _describe(spec: MacSpec, stim: dict, observed, expected, t: int) -> dict:
    def hx(fmt, v):
        return f"0x{int(v):0{(fmt.width + 3) // 4}x}"

    prev = int(observed[t - 1]) if t > 0 else 0
    inputs = {k: int(stim[k][t]) for k in ("rst", "load", "en")}
    inputs.update(a=hx(spec.a, stim["a"][t]), b=hx(spec.b, stim["b"][t]), init=hx(spec.acc, stim["init"][t]))
    if spec.sr_bits:
        inputs["rnd"] = int(stim["rnd"][t])
    return {"cycle": int(t), "inputs": inputs, "prev_acc": hx(spec.acc, prev),
            "expected": hx(spec.acc, expected[t]), "got": hx(spec.acc, observed[t])}


def finish(spec, stim: dict, observed, out_dir) -> dict:
    """Check ``observed`` and write ``result.json`` in ``out_dir`` (called by the cocotb test).

    Returns
    -------
    dict
        ``spec``, ``cycles_checked``, ``mismatches`` and ``first_mismatch`` (``{"cycle",
        "inputs", "prev_acc", "expected", "got"}``, codes as hex strings, or ``None``).
    """
    spec = MacSpec.parse(spec)
    observed = np.asarray(observed, dtype=np.uint64)
    bad, first, expected = check_trace(spec, stim, observed)
    res = {"spec": str(spec), "cycles_checked": int(observed.size), "mismatches": bad,
           "first_mismatch": None if first is None else _describe(spec, stim, observed, expected, first)}
    atomic_write(Path(out_dir) / "result.json", json.dumps(res, indent=1))
    return res
