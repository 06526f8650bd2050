"""Cycle models of the order units: what ``acc`` (and ``acc2``) hold after every cycle.

The sequential unit needs no model here: its register after a cycle is one :func:`psum.golden.mac_step`
of the register before it, which :func:`psum.hw.verify.check.check_trace` evaluates for all cycles
at once. The chunked and interleaved units keep state the ports do not show (the chunk counter,
the partial sums), so their expected trace comes from these models, stepped cycle by cycle in
Python. Every arithmetic operation is a :func:`psum.golden.mac_step` call of the spec (order
``seq``) or of its :func:`psum.golden.spec.add_spec`; the models only sequence them, with the
control rules of :mod:`psum.hw.chunk` and :mod:`psum.hw.ilv` (rst > load > flush > en).
A model is slow (two scalar ``mac_step`` calls per cycle at most) and obvious, on purpose.
"""

from __future__ import annotations

import numpy as np

from psum.golden import MacSpec, mac_step
from psum.golden.spec import add_spec

__all__ = ["expected_outputs"]


def _step(spec, c: int, a: int, b: int) -> int:
    one = lambda v: np.array([v], dtype=np.uint64)  # noqa: E731 - a scalar as mac_step's array
    return int(mac_step(spec, one(c), one(a), one(b))[0])


def _chunk(spec: MacSpec, stim: dict) -> dict:
    L = spec.order.length
    seq, s2 = spec.replace(order="seq", acc2=None), add_spec(spec, spec.acc2)
    n = len(stim["rst"])
    out = {"acc": np.zeros(n, np.uint64), "acc2": np.zeros(n, np.uint64)}
    acc = acc2 = cnt = pend = 0
    for t in range(n):
        if stim["rst"][t]:
            acc = acc2 = cnt = pend = 0
        elif stim["load"][t]:
            acc, acc2, cnt, pend = int(stim["init"][t]), 0, 0, 1
        elif stim["flush"][t]:
            if pend:
                acc2, acc, cnt, pend = _step(s2, acc2, acc, 1), 0, 0, 0
        elif stim["en"][t]:
            a, b = int(stim["a"][t]), int(stim["b"][t])
            if cnt == L:  # the full chunk goes into acc2 as the next one starts from +0
                acc2, acc, cnt = _step(s2, acc2, acc, 1), _step(seq, 0, a, b), 1
            else:
                acc, cnt = _step(seq, acc, a, b), cnt + 1
            pend = 1
        out["acc"][t], out["acc2"][t] = acc, acc2
    return out


def _ilv(spec: MacSpec, stim: dict) -> dict:
    L = spec.order.length
    seq, sadd = spec.replace(order="seq"), add_spec(spec, spec.acc)
    n = len(stim["rst"])
    out = {"acc": np.zeros(n, np.uint64)}
    s, k, j = [0] * L, 0, 0
    flush = stim.get("flush", np.zeros(n, np.uint64))
    for t in range(n):
        if stim["rst"][t]:
            s, k, j = [0] * L, 0, 0
        elif stim["load"][t]:
            s, k, j = [int(stim["init"][t])] + [0] * (L - 1), 0, 0
        elif flush[t]:
            if j < L - 1:
                s[0], s[j + 1], j = _step(sadd, s[0], s[j + 1], 1), 0, j + 1
        elif stim["en"][t]:
            s[k] = _step(seq, s[k], int(stim["a"][t]), int(stim["b"][t]))
            k = (k + 1) % L
        out["acc"][t] = s[0]
    return out


def expected_outputs(spec, stim: dict) -> dict:
    """The outputs of the order unit for ``spec`` after every cycle of ``stim``.

    Parameters
    ----------
    spec : MacSpec or str
        ``order=chunk<L>`` or ``ilv<L>``.
    stim : dict
        One uint64 array per input column (:func:`psum.hw.verify.stimulus.columns`).

    Returns
    -------
    dict
        ``{"acc": codes}`` (and ``"acc2"`` for ``chunk``), one uint64 per cycle.

    Raises
    ------
    ValueError
        An order without a cycle model.
    """
    spec = MacSpec.parse(spec)
    if spec.order.kind == "chunk":
        return _chunk(spec, stim)
    if spec.order.kind == "ilv":
        return _ilv(spec, stim)
    raise ValueError(f"no cycle model for order={spec.order}")
