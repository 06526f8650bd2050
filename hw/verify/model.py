"""Cycle models of the MAC units: what ``acc`` (and ``acc2``) hold after every cycle.

The sequential unit's register after a cycle is one :func:`psum.golden.mac_step` of the register
before it: :func:`psum.hw.verify.check.check_trace` evaluates that for all cycles at once from the
register the unit itself held (a recorded trace); the model here (:func:`expected_outputs`,
``order=seq``) chains the steps from the inputs alone, which is the expected stream the harness
compares inside the simulator (:mod:`.harness`, ``stream`` mode). The chunked and interleaved units keep state the ports do not show (the chunk counter,
the partial sums), so their expected trace comes from these models, stepped cycle by cycle in
Python. Every arithmetic operation is a :func:`psum.golden.mac_step` call of the spec (order
``seq``) or of its :func:`psum.golden.spec.add_spec`; the models only sequence them, with the
control rules of :mod:`psum.hw.chunk`, :mod:`psum.hw.ilv`, :mod:`psum.hw.mta` and
:mod:`psum.hw.tree` (rst > load > flush > en).
A scalar model is slow (two scalar ``mac_step`` calls per cycle at most) and obvious, on purpose;
:func:`expected_outputs` runs the lockstep models by default, the same rules vectorised across
the independent segments that ``rst`` and ``load`` start (exact: see the comment above them).
"""

from __future__ import annotations

import numpy as np

from psum.golden import MacSpec, mac_step
from psum.golden import _vector as V
from psum.golden.mac import apply_specials, product_terms
from psum.golden.rounding import exact_zero_sign
from psum.golden.spec import add_spec

__all__ = ["expected_outputs", "block_inputs", "block_step"]


def _step(spec, c: int, a: int, b: int, rand=None) -> int:
    one = lambda v: np.array([v], dtype=np.uint64)  # noqa: E731 - a scalar as mac_step's array
    r = None if rand is None else np.array([int(rand)], dtype=np.int64)
    return int(mac_step(spec, one(c), one(a), one(b), rand=r)[0])


def _cols(stim: dict, *names) -> list:
    """Columns as Python lists (or ``None`` where absent): a Python loop reads a list element
    about ten times faster than a numpy scalar."""
    return [stim[k].tolist() if k in stim else None for k in names]


def _promoted(spec: MacSpec, stim: dict, group: int, step) -> dict:
    """Cycle model of a unit with a second-level accumulator (chunk and mta units): ``rst`` >
    ``load`` > ``flush`` > ``en``; ``step(acc, t)`` is the register's next value for cycle ``t``'s
    operands, and after ``group`` steps the full group goes into ``acc2`` as the next one starts
    from +0 (the RTL's ``psum.hw.chunk.promotion_control``)."""
    s2 = add_spec(spec, spec.acc2)
    n = len(stim["rst"])
    o_acc, o_acc2 = [0] * n, [0] * n
    rst, load, init, flush, en = _cols(stim, "rst", "load", "init", "flush", "en")
    acc = acc2 = cnt = pend = 0
    for t in range(n):
        if rst[t]:
            acc = acc2 = cnt = pend = 0
        elif load[t]:
            acc, acc2, cnt, pend = init[t], 0, 0, 1
        elif flush[t]:
            if pend:
                acc2, acc, cnt, pend = _step(s2, acc2, acc, 1), 0, 0, 0
        elif en[t]:
            if cnt == group:  # promotion due: acc into acc2, the group starts from +0
                acc2, acc, cnt = _step(s2, acc2, acc, 1), step(0, t), 1
            else:
                acc, cnt = step(acc, t), cnt + 1
            pend = 1
        o_acc[t], o_acc2[t] = acc, acc2
    return {"acc": np.array(o_acc, np.uint64), "acc2": np.array(o_acc2, np.uint64)}


def _seq(spec: MacSpec, stim: dict) -> dict:
    """The sequential unit (:mod:`psum.hw.unit`): ``rst`` > ``load`` > ``en``; an ``en`` cycle is one
    :func:`psum.golden.mac_step` of the register (with that cycle's ``rnd`` bits under ``sr``)."""
    n = len(stim["rst"])
    out = [0] * n
    rst, load, init, en, a, b, rnd = _cols(stim, "rst", "load", "init", "en", "a", "b", "rnd")
    rnd = rnd if spec.sr_bits else None
    acc = 0
    for t in range(n):
        if rst[t]:
            acc = 0
        elif load[t]:
            acc = init[t]
        elif en[t]:
            acc = _step(spec, acc, a[t], b[t], None if rnd is None else rnd[t])
        out[t] = acc
    return {"acc": np.array(out, np.uint64)}


def _chunk(spec: MacSpec, stim: dict) -> dict:
    seq = spec.replace(order="seq", acc2=None)
    a, b = _cols(stim, "a", "b")
    return _promoted(spec, stim, spec.order.length, lambda acc, t: _step(seq, acc, a[t], b[t]))


def _ilv(spec: MacSpec, stim: dict) -> dict:
    L = spec.order.length
    seq, sadd = spec.replace(order="seq"), add_spec(spec, spec.acc)
    n = len(stim["rst"])
    out = [0] * n
    s, k, j = [0] * L, 0, 0
    rst, load, init, en, a, b, flush, rnd = _cols(stim, "rst", "load", "init", "en", "a", "b", "flush", "rnd")
    flush = flush or [0] * n
    rnd = rnd if spec.sr_bits else None  # one rounding per cycle: that cycle's bits
    for t in range(n):
        r = None if rnd is None else rnd[t]
        if rst[t]:
            s, k, j = [0] * L, 0, 0
        elif load[t]:
            s, k, j = [init[t]] + [0] * (L - 1), 0, 0
        elif flush[t]:
            if j < L - 1:
                s[0], s[j + 1], j = _step(sadd, s[0], s[j + 1], 1, r), 0, j + 1
        elif en[t]:
            s[k] = _step(seq, s[k], a[t], b[t], r)
            k = (k + 1) % L
        out[t] = s[0]
    return {"acc": np.array(out, np.uint64)}


def _mta_group(spec: MacSpec, R: int, a, b) -> int:
    """One group of the mta order, in Python integers: the register R and the lanes' products.

    A scalar transcription of ``accumulate_order``'s ``mta`` semantics (which lives in
    ``psum.golden.emulation``, a layer this one may not import); the tests pin the two together.
    """
    fmt, W = spec.acc, spec.order.w
    sp, mp, ep, cp = product_terms(spec.replace(order="seq", acc2=None),
                                   np.asarray(a, np.uint64), np.asarray(b, np.uint64))
    rs, rm, re_, rc = V.unpack_float(fmt, np.array([R], np.uint64))
    terms = [(bool(rs[0]), int(rm[0]), int(re_[0]), int(rc[0]))]
    terms += [(bool(s_), int(m_), int(e_), int(c_)) for s_, m_, e_, c_ in zip(sp, mp, ep, cp)]
    finite = [(s_, m_, e_) for s_, m_, e_, c_ in terms if c_ == V.FINITE and m_ > 0]
    total, lsb = 0, 0
    if finite:
        lsb = max(e_ + m_.bit_length() - 1 for _, m_, e_ in finite) - W + 1
        floor = spec.order.trunc == "floor"
        for s_, m_, e_ in finite:  # toward zero: the magnitude's low bits drop
            if floor:  # two's complement with sign fill: Python's >> floors negative ints
                sv = -m_ if s_ else m_
                total += sv << (e_ - lsb) if e_ >= lsb else sv >> (lsb - e_)
                continue
            v = m_ << (e_ - lsb) if e_ >= lsb else m_ >> (lsb - e_)
            total += -v if s_ else v
    if total == 0:
        no = np.zeros(1, dtype=bool)
        neg = bool(exact_zero_sign(spec.rounding, both_zero=no, sp=no, sc=no)[0]) and fmt.has_neg_zero
        code = np.array([fmt.sign_bit if neg else 0], np.uint64)
    else:
        code = V.round_float(fmt, np.array([total < 0]), np.array([abs(total)], np.int64), np.array([lsb], np.int64),
                             spec.rounding, saturate=spec.saturate)
    infs = [s_ for s_, _, _, c_ in terms if c_ == V.INF]
    nan = any(c_ == V.NAN for *_, c_ in terms) or (any(infs) and not all(infs))
    inf = bool(infs) and not nan
    return int(apply_specials(fmt, spec.saturate, code, np.array([nan]), np.array([inf]), np.array([any(infs)]))[0])


def _mta(spec: MacSpec, stim: dict) -> dict:
    from psum.hw.unit import operand_ports

    lanes = operand_ports(spec)

    def step(acc, t):
        return _mta_group(spec, acc, [int(stim[ka][t]) for ka, _ in lanes], [int(stim[kb][t]) for _, kb in lanes])

    return _promoted(spec, stim, spec.order.p // spec.order.n, step)


def _tree(spec: MacSpec, stim: dict) -> dict:
    """The ``tree<N>`` unit (:mod:`psum.hw.tree`): ``rst`` > ``load`` > ``en``; an ``en`` cycle adds
    the pairwise sum of its N leaves (each product rounded alone from +0) into ``acc``."""
    from psum.hw.unit import operand_ports

    lanes = operand_ports(spec)
    seq, sadd = spec.replace(order="seq"), add_spec(spec, spec.acc)
    n = len(stim["rst"])
    out = {"acc": np.zeros(n, np.uint64)}
    acc = 0
    for t in range(n):
        if stim["rst"][t]:
            acc = 0
        elif stim["load"][t]:
            acc = int(stim["init"][t])
        elif stim["en"][t]:
            level = [_step(seq, 0, int(stim[ka][t]), int(stim[kb][t])) for ka, kb in lanes]
            while len(level) > 1:  # pairwise, left to right; an odd last node moves up
                level = [_step(sadd, level[i], level[i + 1], 1) for i in range(0, len(level) - 1, 2)] + \
                        (level[-1:] if len(level) % 2 else [])
            acc = _step(sadd, acc, level[0], 1)
        out["acc"][t] = acc
    return out


# ---------------------------------------------------------------------------------------------
# Block-scaled operands (psum.hw.mx): one block per en cycle, acc := round(acc + T)
# ---------------------------------------------------------------------------------------------
def block_inputs(spec, stim: dict, rows=slice(None)) -> tuple:
    """``(a_scales, a_elems, b_scales, b_elems)`` of the given cycles in :func:`block_dot`'s shapes.

    Scales ``(n, 1)`` (one block per cycle), elements ``(n, 1, k)`` from lanes ``a0 .. a{k-1}``.
    """
    from psum.hw.unit import operand_ports

    lanes = operand_ports(spec)
    ea = np.stack([np.asarray(stim[pa])[rows] for pa, _ in lanes], axis=-1)[:, None, :]
    eb = np.stack([np.asarray(stim[pb])[rows] for _, pb in lanes], axis=-1)[:, None, :]
    return (np.asarray(stim["sa"])[rows][:, None], ea, np.asarray(stim["sb"])[rows][:, None], eb)


def block_step(spec, acc, stim: dict, rows) -> np.ndarray:
    """The register after an ``en`` cycle of the block unit: golden :func:`block_dot` of one block.

    ``acc`` (uint64, one per row) is the register before the cycles ``rows`` (an index array).
    """
    from psum.golden.block_dot import block_dot

    sa, ea, sb, eb = block_inputs(spec, stim, rows)
    return block_dot(spec, np.asarray(acc, np.uint64), sa, ea, sb, eb)


def _block(spec: MacSpec, stim: dict) -> dict:
    """The block unit cycle by cycle (``rst`` > ``load`` > ``en``): the golden :func:`block_dot`
    of each enabled cycle's block from the register before it. The terms do not read the
    register, so they are formed once for all cycles; the register then steps in Python."""
    from psum.golden.block_dot import block_terms, term_spec

    n = len(stim["rst"])
    out = np.zeros(n, np.uint64)
    en = np.flatnonzero(stim["en"].astype(bool) & ~stim["load"].astype(bool) & ~stim["rst"].astype(bool))
    T = np.zeros(n)
    if en.size:
        T[en] = block_terms(spec, *block_inputs(spec, stim, en))[:, 0]
    ts = term_spec(spec)
    codes = ts.a.encode(T)
    acc = 0
    rst, load, init, e = _cols(stim, "rst", "load", "init", "en")
    for t in range(n):
        if rst[t]:
            acc = 0
        elif load[t]:
            acc = init[t]
        elif e[t]:
            acc = _step(ts, acc, int(codes[t]), 1)
        out[t] = acc
    return {"acc": out}


# ---------------------------------------------------------------------------------------------
# Lockstep models: the same rules, vectorised across independent segments
# ---------------------------------------------------------------------------------------------
# Why these are exact: every unit's whole state is set by rst and by load (registers, counters,
# partial sums), so the cycles from one rst/load to the next form a segment whose outputs depend
# on its own inputs only; the segments start from the reset state (a trace's first cycles before
# any rst/load start from it too). Cycle p of every segment is stepped at once, with one
# vectorised mac_step call per rule, instead of one scalar call per cycle: the exhaustive
# stimulus (hundreds of thousands of three-cycle segments) takes a few vectorised steps.
# The scalar models above stay as the obvious statement; the tests pin the two together.

def _lockstep(stim: dict):
    """``(segment of every cycle, position in it, number of segments, cycles at each position)``."""
    n = len(stim["rst"])
    start = (stim["rst"].astype(bool) | stim["load"].astype(bool))
    start[0] = True
    first = np.flatnonzero(start)
    seg = np.cumsum(start) - 1
    pos = np.arange(n) - first[seg]
    order = np.argsort(pos, kind="stable")
    bounds = np.searchsorted(pos[order], np.arange(pos.max() + 2 if n else 1))
    at = [order[bounds[p]:bounds[p + 1]] for p in range(len(bounds) - 1)]
    return seg, len(first), at


def _vstep(spec, c, a, b, rand=None):
    """``mac_step`` on arrays (``b`` may be a scalar); nothing to do for empty arrays."""
    c = np.asarray(c, np.uint64)
    if c.size == 0:
        return c
    a = np.broadcast_to(np.asarray(a, np.uint64), c.shape)
    b = np.broadcast_to(np.asarray(b, np.uint64), c.shape)
    return mac_step(spec, c, a, b, rand=None if rand is None else np.asarray(rand, np.int64))


def _col(stim, name, n):
    return stim[name] if name in stim else np.zeros(n, np.uint64)


def _promoted_fast(spec: MacSpec, stim: dict, group: int, step) -> dict:
    """:func:`_promoted` in lockstep; ``step(acc, cycles)`` takes arrays."""
    s2 = add_spec(spec, spec.acc2)
    n = len(stim["rst"])
    seg, S, at = _lockstep(stim)
    acc, acc2 = np.zeros(S, np.uint64), np.zeros(S, np.uint64)
    cnt, pend = np.zeros(S, np.int64), np.zeros(S, bool)
    o_acc, o_acc2 = np.zeros(n, np.uint64), np.zeros(n, np.uint64)
    rst, load, flush, en = (_col(stim, k, n).astype(bool) for k in ("rst", "load", "flush", "en"))
    for t in at:
        g = seg[t]
        r = rst[t]
        ld = load[t] & ~r
        f = flush[t] & ~r & ~ld & pend[g]
        e = en[t] & ~r & ~ld & ~flush[t]
        ep = e & (cnt[g] == group)  # promotion due: acc into acc2, the group starts from +0
        en_ = e & ~ep
        # -- every right-hand side from the state before the cycle ----------------------------
        prom = f | ep
        new2 = _vstep(s2, acc2[g[prom]], acc[g[prom]], 1)
        step_p = step(np.zeros(int(ep.sum()), np.uint64), t[ep])
        step_e = step(acc[g[en_]], t[en_])
        # -- then the writes -------------------------------------------------------------------
        acc[g[r]], acc2[g[r]], cnt[g[r]], pend[g[r]] = 0, 0, 0, False
        acc[g[ld]], acc2[g[ld]], cnt[g[ld]], pend[g[ld]] = stim["init"][t[ld]], 0, 0, True
        acc2[g[prom]] = new2
        acc[g[f]], cnt[g[f]], pend[g[f]] = 0, 0, False
        acc[g[ep]], cnt[g[ep]], pend[g[ep]] = step_p, 1, True
        acc[g[en_]], pend[g[en_]] = step_e, True
        cnt[g[en_]] += 1
        o_acc[t], o_acc2[t] = acc[g], acc2[g]
    return {"acc": o_acc, "acc2": o_acc2}


def _chunk_fast(spec: MacSpec, stim: dict) -> dict:
    seq = spec.replace(order="seq", acc2=None)
    return _promoted_fast(spec, stim, spec.order.length, lambda acc, t: _vstep(seq, acc, stim["a"][t], stim["b"][t]))


def _mta_fast(spec: MacSpec, stim: dict) -> dict:
    from psum.hw.unit import operand_ports

    lanes = operand_ports(spec)

    def step(acc, ts):  # the group rule stays scalar (one call per group); the control is vectorised
        return np.array([_mta_group(spec, int(r), [int(stim[ka][t]) for ka, _ in lanes],
                                    [int(stim[kb][t]) for _, kb in lanes]) for r, t in zip(acc, ts)], np.uint64)

    return _promoted_fast(spec, stim, spec.order.p // spec.order.n, step)


def _ilv_fast(spec: MacSpec, stim: dict) -> dict:
    """:func:`_ilv` in lockstep."""
    L = spec.order.length
    seq, sadd = spec.replace(order="seq"), add_spec(spec, spec.acc)
    n = len(stim["rst"])
    seg, S, at = _lockstep(stim)
    s = np.zeros((S, L), np.uint64)
    k, j = np.zeros(S, np.int64), np.zeros(S, np.int64)
    out = np.zeros(n, np.uint64)
    rst, load, flush, en = (_col(stim, c, n).astype(bool) for c in ("rst", "load", "flush", "en"))
    rnd = stim["rnd"] if spec.sr_bits else None
    for t in at:
        g = seg[t]
        r = rst[t]
        ld = load[t] & ~r
        f = flush[t] & ~r & ~ld
        fc = f & (j[g] < L - 1)
        e = en[t] & ~r & ~ld & ~f
        gf, ge = g[fc], g[e]
        comb = _vstep(sadd, s[gf, 0], s[gf, j[gf] + 1], 1, None if rnd is None else rnd[t[fc]])
        mac = _vstep(seq, s[ge, k[ge]], stim["a"][t[e]], stim["b"][t[e]], None if rnd is None else rnd[t[e]])
        s[g[r]], k[g[r]], j[g[r]] = 0, 0, 0
        s[g[ld]] = 0
        s[g[ld], 0], k[g[ld]], j[g[ld]] = stim["init"][t[ld]], 0, 0
        s[gf, j[gf] + 1] = 0
        s[gf, 0] = comb
        j[gf] += 1
        s[ge, k[ge]] = mac
        k[ge] = (k[ge] + 1) % L
        out[t] = s[g, 0]
    return {"acc": out}


def _tree_fast(spec: MacSpec, stim: dict) -> dict:
    """:func:`_tree` with the group sums of every cycle computed at once (they do not read the
    register) and the register stepped in lockstep."""
    from psum.hw.unit import operand_ports

    seq, sadd = spec.replace(order="seq"), add_spec(spec, spec.acc)
    n = len(stim["rst"])
    level = [_vstep(seq, np.zeros(n, np.uint64), stim[ka], stim[kb]) for ka, kb in operand_ports(spec)]
    while len(level) > 1:  # pairwise, left to right; an odd last node moves up
        level = [_vstep(sadd, level[i], level[i + 1], 1) for i in range(0, len(level) - 1, 2)] + \
                (level[-1:] if len(level) % 2 else [])
    group = level[0]
    return _seq_fast(spec, stim, step=lambda acc, t: _vstep(sadd, acc, group[t], 1))


def _seq_fast(spec: MacSpec, stim: dict, step=None) -> dict:
    """:func:`_seq` (and, with ``step``, :func:`_block`) in lockstep; ``step(acc, cycles)`` takes
    arrays (default: one vectorised :func:`psum.golden.mac_step` with the cycles' ``rnd`` bits)."""
    n = len(stim["rst"])
    if step is None:
        rnd = stim["rnd"] if spec.sr_bits else None

        def step(acc, t):
            return _vstep(spec, acc, stim["a"][t], stim["b"][t], None if rnd is None else rnd[t])

    seg, S, at = _lockstep(stim)
    acc = np.zeros(S, np.uint64)
    out = np.zeros(n, np.uint64)
    rst, load, en = (stim[c].astype(bool) for c in ("rst", "load", "en"))
    for t in at:
        g = seg[t]
        r = rst[t]
        ld = load[t] & ~r
        e = en[t] & ~r & ~ld
        new = step(acc[g[e]], t[e])
        acc[g[r]] = 0
        acc[g[ld]] = stim["init"][t[ld]]
        acc[g[e]] = new
        out[t] = acc[g]
    return {"acc": out}


def _block_fast(spec: MacSpec, stim: dict) -> dict:
    """:func:`_block` in lockstep: the block terms of every ``en`` cycle at once, then the register."""
    from psum.golden.block_dot import block_terms, term_spec

    n = len(stim["rst"])
    en = np.flatnonzero(stim["en"].astype(bool) & ~stim["load"].astype(bool) & ~stim["rst"].astype(bool))
    T = np.zeros(n)
    if en.size:
        T[en] = block_terms(spec, *block_inputs(spec, stim, en))[:, 0]
    ts = term_spec(spec)
    codes = ts.a.encode(T)
    return _seq_fast(ts, stim, lambda acc, t: _vstep(ts, acc, codes[t], 1))


def expected_outputs(spec, stim: dict, *, scalar: bool = False) -> dict:
    """The outputs of the order unit for ``spec`` after every cycle of ``stim``.

    Parameters
    ----------
    spec : MacSpec or str
        ``order=seq`` (the sequential unit, from its inputs alone: the expected stream that the
        harness compares in the simulator, :mod:`.harness`), ``chunk<L>``, ``ilv<L>``,
        ``mta<N>w<W>p<P>`` or ``tree<N>``, or block-scaled operands (:mod:`psum.hw.mx`,
        ``order=seq``).
    stim : dict
        One uint64 array per input column (:func:`psum.hw.verify.stimulus.columns`).
    scalar : bool
        Step the obvious scalar models cycle by cycle instead of the lockstep ones (same
        results, about a thousand times slower on the exhaustive stimulus).

    Returns
    -------
    dict
        ``{"acc": codes}`` (and ``"acc2"`` for ``chunk`` and ``mta``), one uint64 per cycle.

    Raises
    ------
    ValueError
        An order without a cycle model.
    """
    spec = MacSpec.parse(spec)
    if spec.blocked:
        return (_block if scalar else _block_fast)(spec, stim)
    kind = "tree_n" if spec.order.kind == "tree" and spec.order.n is not None else spec.order.kind
    models = {"seq": (_seq, _seq_fast), "chunk": (_chunk, _chunk_fast), "ilv": (_ilv, _ilv_fast),
              "mta": (_mta, _mta_fast), "tree_n": (_tree, _tree_fast)}
    if kind in models:
        return models[kind][0 if scalar else 1](spec, stim)
    raise ValueError(f"no cycle model for order={spec.order}")
