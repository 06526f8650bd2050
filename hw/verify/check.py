"""The trace check: the unit's outputs after every cycle against the golden model.

Used by both cocotb tests (:mod:`.cocotb_tb`, through :func:`finish`) and usable on any trace
(the Amaranth simulator's, :func:`psum.hw.verify.amaranth_sim.amaranth_trace`).

Sequential units (``order=seq``) are checked in one vectorised :func:`psum.golden.mac_step` pass
from the register the unit itself held before each cycle; a pipelined one (``MacImpl(pipeline=k)``)
the same way on its inputs delayed by k cycles (:func:`delayed`). Order units (``chunk``, ``ilv``)
hold state their ports do not show; their expected outputs come from the cycle models of
:mod:`.model` (on the delayed inputs too), so after a first mismatch later cycles may differ as a
consequence.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from psum._util import atomic_write
from psum.golden import MacSpec, mac_step
from psum.hw.impl import MacImpl

from .model import block_step, expected_outputs

__all__ = ["check_trace", "expected_trace", "finish", "finish_records", "delayed", "UNKNOWN"]

UNKNOWN = (1 << 64) - 1  # stands for a register value with x/z bits: never equal to a golden code


_CONTROL = ("rst", "load", "en", "flush")


def delayed(stim: dict, k: int) -> dict:
    """The inputs as the accumulate loop of a ``pipeline=k`` unit sees them.

    Every column but ``rst`` arrives k cycles late (zeros before cycle k); ``rst`` acts at once,
    and an input in flight during a reset is discarded: the delayed ``en``/``load`` of cycle t
    are cleared when ``rst`` was high in any of the cycles ``t-k .. t-1`` (the pipeline registers
    take their reset value). ``k = 0`` returns ``stim``.
    """
    if k == 0:
        return stim
    n = len(stim["rst"])
    out = {}
    for name, col in stim.items():
        if name == "rst":
            out[name] = col
            continue
        d = np.zeros_like(col)
        d[k:] = col[:n - k]
        out[name] = d
    rst = stim["rst"].astype(bool)
    # killed[t]: a reset in cycles t-k .. t-1 (a sliding-window OR, as a difference of counts).
    c = np.concatenate([[0], np.cumsum(rst)])
    t = np.arange(n)
    killed = (c[t] - c[np.maximum(t - k, 0)]) > 0
    for name in ("en", "load", "flush"):
        if name in out:
            out[name] = np.where(killed, np.uint64(0), out[name])
    return out


def _as_outputs(observed) -> dict:
    if isinstance(observed, dict):
        return {k: np.asarray(v, dtype=np.uint64) for k, v in observed.items()}
    return {"acc": np.asarray(observed, dtype=np.uint64)}


def check_trace(spec, stim: dict, observed, impl=None) -> tuple[int, int | None, dict]:
    """Compare the unit's outputs after every cycle with the golden model.

    For ``order=seq``, ``observed["acc"][t]`` is checked against ``mac_step`` of
    ``observed["acc"][t-1]`` (the unit's own previous state; ``+0`` before cycle 0), so the
    sequential dependency disappears and the first mismatch is the first wrong step. For order
    units, against the cycle model's outputs (:func:`psum.hw.verify.model.expected_outputs`).

    Parameters
    ----------
    spec : MacSpec or str
    stim : dict
        The stimulus (:func:`psum.hw.verify.stimulus.make_stimulus`).
    observed : array_like or dict
        The register ``acc`` after every cycle (uint64 codes), or ``{output port: codes}``.
    impl : MacImpl or str, optional
        The implementation (its pipeline latency shifts the inputs, :func:`delayed`).

    Returns
    -------
    (mismatches, first_cycle or None, expected)
        ``expected`` is ``{output port: codes}``; a cycle counts once however many outputs differ.

    Raises
    ------
    ValueError
        ``observed`` and the stimulus differ in length, or an output is missing.
    """
    spec = MacSpec.parse(spec)
    impl = MacImpl.parse(impl)
    obs = _as_outputs(observed)
    n = len(stim["rst"])
    for name, v in obs.items():
        if v.shape != (n,):
            raise ValueError(f"observed trace has {v.size} cycles, the stimulus {n}")
    if spec.order.kind == "seq":  # block-scaled operands too: one golden block_dot per en cycle
        st = delayed(stim, impl.pipeline)
        prev = np.concatenate([np.zeros(1, np.uint64), obs["acc"][:-1]])
        rst, load, en = (st[k].astype(bool) for k in ("rst", "load", "en"))
        step = en & ~load & ~rst
        acc = np.where(rst, np.uint64(0), np.where(load, st["init"], prev))
        if step.any():
            rnd = st["rnd"][step].astype(np.int64) if spec.sr_bits else None
            if spec.blocked:
                acc[step] = block_step(spec, prev[step], st, np.flatnonzero(step))
            else:
                acc[step] = mac_step(spec, prev[step], st["a"][step], st["b"][step], rand=rnd)
        expected = {"acc": acc}
    else:
        expected = expected_outputs(spec, delayed(stim, impl.pipeline))
    missing = sorted(set(expected) - set(obs))
    if missing:
        raise ValueError(f"observed trace lacks output {missing[0]!r}")
    bad = np.zeros(n, dtype=bool)
    for name, e in expected.items():
        bad |= e != obs[name]
    bad = np.flatnonzero(bad)
    return int(bad.size), (int(bad[0]) if bad.size else None), expected


def expected_trace(spec, stim: dict, impl=None) -> dict:
    """The unit's expected outputs after every cycle, from the stimulus alone.

    The stream the harness compares inside the simulator (:mod:`.harness`, ``stream`` mode): the
    cycle model of :func:`psum.hw.verify.model.expected_outputs` (for ``order=seq``: one golden
    :func:`psum.golden.mac_step` per ``en`` cycle, chained from each ``rst``/``load``) on the
    inputs as the accumulate loop sees them (:func:`delayed` by the pipeline latency). Where the
    unit is right it equals the trace :func:`check_trace` checks; after a first wrong cycle a
    sequential unit's later cycles may differ as a consequence (the first one is the same).

    Parameters
    ----------
    spec : MacSpec or str
    stim : dict
        The stimulus (:func:`psum.hw.verify.stimulus.make_stimulus`).
    impl : MacImpl or str, optional

    Returns
    -------
    dict
        ``{output port: uint64 codes}``, one per cycle.
    """
    spec = MacSpec.parse(spec)
    return expected_outputs(spec, delayed(stim, MacImpl.parse(impl).pipeline))


def _describe(spec: MacSpec, impl: MacImpl, stim: dict, observed: dict, expected: dict, t: int) -> dict:
    def hx(fmt, v):
        return f"0x{int(v):0{(fmt.width + 3) // 4}x}"

    fmts = {"acc": spec.acc, "acc2": spec.acc2}
    st = delayed(stim, impl.pipeline)
    inputs = {k: int(st[k][t]) for k in _CONTROL if k in st}
    if "a" in st:
        inputs.update(a=hx(spec.a, st["a"][t]), b=hx(spec.b, st["b"][t]))
    else:  # a multi-lane unit: every lane's operands, lane 0 first
        lanes = sorted((k for k in st if k[0] in "ab" and k[1:].isdigit()), key=lambda k: (k[0], int(k[1:])))
        for p in ("a", "b"):
            fmt = getattr(spec, p).elem if spec.blocked else getattr(spec, p)
            inputs[p] = " ".join(hx(fmt, st[k][t]) for k in lanes if k[0] == p)
        if spec.blocked:
            inputs.update(sa=hx(spec.a.scale, st["sa"][t]), sb=hx(spec.b.scale, st["sb"][t]))
    inputs["init"] = hx(spec.acc, st["init"][t])
    if spec.sr_bits:
        inputs["rnd"] = int(st["rnd"][t])
    res = {"cycle": int(t), "inputs": inputs}
    if impl.pipeline:
        res["latency"] = impl.pipeline  # the inputs shown are those issued at cycle t - latency
    prev = {k: int(v[t - 1]) if t > 0 else 0 for k, v in observed.items()}
    res["prev_acc"] = hx(spec.acc, prev["acc"])
    res["expected"] = hx(spec.acc, expected["acc"][t])
    res["got"] = hx(spec.acc, observed["acc"][t])
    for k in sorted(set(expected) - {"acc"}):
        res[f"prev_{k}"] = hx(fmts[k], prev[k])
        res[f"expected_{k}"] = hx(fmts[k], expected[k][t])
        res[f"got_{k}"] = hx(fmts[k], observed[k][t])
    return res


def finish(spec, stim: dict, observed, out_dir, impl=None) -> dict:
    """Check ``observed`` and write ``result.json`` in ``out_dir`` (called by the cocotb test).

    Returns
    -------
    dict
        ``spec``, ``impl``, ``cycles_checked``, ``mismatches`` and ``first_mismatch`` (``{"cycle",
        "inputs", "prev_acc", "expected", "got"}`` and, for a ``chunk`` unit, the same of
        ``acc2``; codes as hex strings, or ``None``).
    """
    spec = MacSpec.parse(spec)
    impl = MacImpl.parse(impl)
    obs = _as_outputs(observed)
    bad, first, expected = check_trace(spec, stim, obs, impl)
    res = {"spec": str(spec), "impl": str(impl), "cycles_checked": int(obs["acc"].size), "mismatches": bad,
           "first_mismatch": None if first is None else _describe(spec, impl, stim, obs, expected, first)}
    atomic_write(Path(out_dir) / "result.json", json.dumps(res, indent=1))
    return res


def finish_records(spec, stim: dict, expected: dict, cycles: int, mismatches: int, records: list,
                   out_dir=None, impl=None) -> dict:
    """The result of an in-simulator check (:func:`psum.hw.verify.harness.read_check`), in the shape
    of :func:`finish`'s, written to ``result.json`` in ``out_dir`` when given.

    The first mismatch is described from the records: the outputs of every recorded cycle, and
    of the cycle before it (the expected outputs where that cycle matched, its record where not),
    so ``prev_acc`` is the register the unit held before the first wrong step, as in :func:`finish`.

    Parameters
    ----------
    spec : MacSpec or str
    stim, expected : dict
        The stimulus and :func:`expected_trace` of it.
    cycles, mismatches : int
        Cycles the harness checked and those that differed.
    records : list of (cycle, got, expected)
        The first mismatches the harness recorded.
    out_dir : path, optional
    impl : MacImpl or str, optional

    Raises
    ------
    ValueError
        A record's expected outputs differ from ``expected`` (the harness read other files than
        the ones written for this run).
    """
    spec = MacSpec.parse(spec)
    impl = MacImpl.parse(impl)
    first = None
    if records:
        obs = {k: v.copy() for k, v in expected.items()}
        for t, got, want in records:
            for k, v in want.items():
                if int(expected[k][t]) != v:
                    raise ValueError(f"the harness expected {k}=0x{v:x} at cycle {t}, psum 0x{int(expected[k][t]):x}")
            for k, v in got.items():
                obs[k][t] = v
        first = _describe(spec, impl, stim, obs, expected, records[0][0])
    res = {"spec": str(spec), "impl": str(impl), "cycles_checked": int(cycles), "mismatches": int(mismatches),
           "first_mismatch": first}
    if out_dir is not None:
        atomic_write(Path(out_dir) / "result.json", json.dumps(res, indent=1))
    return res
