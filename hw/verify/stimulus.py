"""Per-cycle stimulus of a MAC unit: one uint64 array per input port, one entry per clock cycle.

The columns are the unit's input ports, generated from the port contract
(:func:`psum.hw.unit.mac_signature`): ``rst`` (the ``sync`` domain's reset), then every ``In``
member in the contract's order (``a, b, en, load, init`` and, for stochastic rounding, ``rnd``).
So the stimulus, the Verilog harness (:mod:`.harness`), the cocotb drive mode, the Amaranth
simulator driver and the power proxy (:mod:`psum.flows.power`) all name a port the way the unit
does, and a port added to the contract reaches all of them.
"""

from __future__ import annotations

import numpy as np

from psum._util import check_int
from psum.golden import FloatFormat, MacSpec
from psum.golden.stimulus import adversarial_triples, random_codes, special_codes
from psum.hw.unit import flush_cycles, mac_signature, operand_ports

__all__ = ["input_ports", "columns", "make_stimulus", "stream_cycles", "held_cycles", "concat"]


def input_ports(spec) -> dict:
    """``{port: width}`` of every input of the unit for ``spec``, in stimulus-column order.

    ``rst`` first (it comes from the ``sync`` domain, not the signature), then the ``In`` members
    of :func:`psum.hw.unit.mac_signature`; ``clk`` is not a column (every row is one cycle).
    """
    from amaranth.hdl import Shape
    from amaranth.lib.wiring import In

    spec = MacSpec.parse(spec)
    ports = {"rst": 1}
    for name, member in mac_signature(spec).items():
        if member.flow is In:
            ports[name] = Shape.cast(member.shape).width
    return ports


def columns(spec) -> tuple:
    """The stimulus columns of ``spec``: the names of :func:`input_ports`."""
    return tuple(input_ports(spec))


def _scalar_columns(spec) -> tuple:
    """:func:`columns` with one ``a``, ``b`` pair in place of the lanes of a multi-lane unit."""
    cols = columns(spec)
    if "a" in cols:
        return cols
    return ("rst", "a", "b", *[k for k in cols if k != "rst" and not (k[0] in "ab" and k[1:].isdigit())])


def _to_lanes(spec, s: dict, rng: np.random.Generator | None) -> dict:
    """A stimulus block in the single-lane view (``a``, ``b``) as the unit's lane columns.

    Lane 0 takes ``a``, ``b``; the other lanes take zero operands (``rng`` None: directed and
    exhaustive blocks, so each case meets the register alone) or random operands: mostly random
    finite codes, 5 % zeros and 1 % adversarial triples' operands (special values, ties). Why so
    few specials: with N lanes a few per cent each would make nearly every group's sum a NaN.
    """
    lanes = operand_ports(spec)
    if lanes == [("a", "b")]:
        return s
    n = len(s["rst"])
    out = {k: v for k, v in s.items() if k not in ("a", "b")}
    for i, (pa, pb) in enumerate(lanes):
        if i == 0:
            out[pa], out[pb] = s["a"], s["b"]
        elif rng is None or n == 0:
            out[pa], out[pb] = np.zeros(n, np.uint64), np.zeros(n, np.uint64)
        else:
            _, adv_a, adv_b = adversarial_triples(spec, n, rng)
            u = rng.random(n)
            zero = np.uint64(0)
            out[pa] = np.where(u < 0.01, adv_a, np.where(u < 0.06, zero, random_codes(spec.a, n, rng, finite_only=True)))
            out[pb] = np.where(u < 0.01, adv_b, np.where(u < 0.06, zero, random_codes(spec.b, n, rng, finite_only=True)))
    return {k: out[k] for k in columns(spec)}


def _empty(cols, n: int) -> dict:
    return {k: np.zeros(n, dtype=np.uint64) for k in cols}


def concat(spec, parts: list) -> dict:
    """Stimulus blocks of ``spec`` one after the other."""
    cols = columns(spec)
    return {k: np.concatenate([p[k] for p in parts]) if parts else np.zeros(0, np.uint64) for k in cols}


def _load_then_step(cols, acc, a, b, flush: int = 0) -> dict:
    """``2 + flush`` cycles per triple: ``load init=acc``, ``en`` with ``(a, b)``, ``flush`` cycles.

    ``flush`` (:func:`psum.hw.unit.flush_cycles`) ends the one-product dot product on an order
    unit, so its promotion or combine sees every special value too.
    """
    n, c = len(acc), 2 + flush
    s = _empty(cols, c * n)
    s["load"][0::c] = 1
    s["init"][0::c] = acc
    s["en"][1::c] = 1
    s["a"][1::c] = a
    s["b"][1::c] = b
    for i in range(flush):
        s["flush"][2 + i::c] = 1
    return s


def _acc_states(spec: MacSpec, rng: np.random.Generator, k: int) -> np.ndarray:
    """``k`` accumulator codes from the format's special values, always including +0."""
    sp = special_codes(spec.acc)
    pick = rng.choice(sp, size=min(k - 1, len(sp)), replace=False) if k > 1 else sp[:0]
    return np.unique(np.concatenate([np.zeros(1, np.uint64), pick.astype(np.uint64)]))


def _directed(spec: MacSpec, rng: np.random.Generator, states: int = 4) -> dict:
    """Every pair of special operand codes from a few loaded accumulator states."""
    sa, sb = special_codes(spec.a), special_codes(spec.b)
    acc = _acc_states(spec, rng, states)
    A, B, C = np.meshgrid(sa, sb, acc, indexing="ij")
    return _to_lanes(spec, _load_then_step(_scalar_columns(spec), C.ravel(), A.ravel(), B.ravel(),
                                           flush_cycles(spec)), None)


def _exhaustive(spec: MacSpec, rng: np.random.Generator, states: int = 4) -> dict:
    """Every ``(a, b)`` code pair from a few loaded accumulator states (operands of at most 8 bits)."""
    for key in ("a", "b"):
        if getattr(spec, key).width > 8:
            raise ValueError(
                f"exhaustive mode needs operands of at most 8 bits, not {key}={getattr(spec, key)}"
            )
    acc = _acc_states(spec, rng, states)
    A, B, C = np.meshgrid(np.arange(1 << spec.a.width, dtype=np.uint64),
                          np.arange(1 << spec.b.width, dtype=np.uint64), acc, indexing="ij")
    return _to_lanes(spec, _load_then_step(_scalar_columns(spec), C.ravel(), A.ravel(), B.ravel(),
                                           flush_cycles(spec)), None)


def stream_cycles(spec, streams, *, hold: bool = False) -> dict:
    """Recorded operand streams: per stream, one ``load init`` cycle, one ``en`` cycle per (a, b),
    then :func:`psum.hw.unit.flush_cycles` ``flush`` cycles (order units: the dot product's end).

    Parameters
    ----------
    spec : MacSpec or str
    streams : iterable of (a_codes, b_codes, init_code)
    hold : bool
        ``False``: inputs a cycle does not use are 0. ``True``: they keep their last value, as the
        operand registers of a real array would (the power proxy's stimulus: no spurious toggles).

    Raises
    ------
    ValueError
        A stream's operand arrays differ in length.
    """
    spec = MacSpec.parse(spec)
    cols = columns(spec)
    if spec.blocked:
        return _stream_blocks(spec, streams, hold)
    nf = flush_cycles(spec)
    lanes = operand_ports(spec)
    if len(lanes) > 1:
        return _stream_lanes(spec, streams, lanes, nf, hold)
    parts = []
    a_last = b_last = 0
    for a, b, init in streams:
        a = np.asarray(a, dtype=np.uint64).ravel()
        b = np.asarray(b, dtype=np.uint64).ravel()
        if a.shape != b.shape:
            raise ValueError(f"stream operands must have the same length, not {a.size} and {b.size}")
        s = _empty(cols, a.size + 1 + nf)
        s["load"][0] = 1
        s["en"][1:a.size + 1] = 1
        s["a"][1:a.size + 1] = a
        s["b"][1:a.size + 1] = b
        if nf:
            s["flush"][a.size + 1:] = 1
        if hold:
            s["a"][0], s["b"][0] = a_last, b_last
            s["a"][a.size + 1:], s["b"][a.size + 1:] = (a[-1], b[-1]) if a.size else (a_last, b_last)
            s["init"][:] = np.uint64(init)
            if a.size:
                a_last, b_last = a[-1], b[-1]
        else:
            s["init"][0] = np.uint64(init)
        parts.append(s)
    return concat(spec, parts)


def _stream_blocks(spec, streams, hold: bool) -> dict:
    """:func:`stream_cycles` of the block unit: per :class:`~psum.hw.verify.block_streams.BlockStream`
    one ``load`` cycle, then one ``en`` cycle per block (its k element pairs and two scales)."""
    lanes = operand_ports(spec)
    parts = []
    names = [p for pair in lanes for p in pair] + ["sa", "sb"]
    last = {k: np.uint64(0) for k in names}
    for st in streams:
        J = len(st.a_scales)
        s = _empty(columns(spec), 1 + J)
        s["load"][0] = 1
        s["en"][1:] = 1
        vals = {"sa": np.asarray(st.a_scales, np.uint64), "sb": np.asarray(st.b_scales, np.uint64)}
        for i, (pa, pb) in enumerate(lanes):
            vals[pa] = np.asarray(st.a_elems, np.uint64)[:, i]
            vals[pb] = np.asarray(st.b_elems, np.uint64)[:, i]
        for k in names:
            s[k][1:] = vals[k]
            if hold:
                s[k][0] = last[k]
                if J:
                    last[k] = vals[k][-1]
        if hold:
            s["init"][:] = np.uint64(st.init)
        else:
            s["init"][0] = np.uint64(st.init)
        parts.append(s)
    return concat(spec, parts)


def _stream_lanes(spec, streams, lanes, nf: int, hold: bool) -> dict:
    """:func:`stream_cycles` of a multi-lane unit: N products per ``en`` cycle, the last group
    padded with zero operands (exact for the mta unit, see :mod:`psum.hw.mta`; the tree<N> order
    pads the same way, see :mod:`psum.hw.tree`)."""
    N = len(lanes)
    parts = []
    last = np.zeros(2 * N, np.uint64)
    for a, b, init in streams:
        a = np.asarray(a, dtype=np.uint64).ravel()
        b = np.asarray(b, dtype=np.uint64).ravel()
        if a.shape != b.shape:
            raise ValueError(f"stream operands must have the same length, not {a.size} and {b.size}")
        g = -(-a.size // N)
        pa = np.zeros(g * N, np.uint64)
        pb = np.zeros(g * N, np.uint64)
        pa[:a.size], pb[:b.size] = a, b
        pa, pb = pa.reshape(g, N), pb.reshape(g, N)
        s = _empty(columns(spec), 1 + g + nf)
        s["load"][0] = 1
        s["en"][1:g + 1] = 1
        if nf:
            s["flush"][g + 1:] = 1
        for i, (ka, kb) in enumerate(lanes):
            s[ka][1:g + 1], s[kb][1:g + 1] = pa[:, i], pb[:, i]
            if hold:
                s[ka][0], s[kb][0] = last[2 * i], last[2 * i + 1]
                s[ka][g + 1:], s[kb][g + 1:] = (pa[-1, i], pb[-1, i]) if g else (last[2 * i], last[2 * i + 1])
        if hold:
            s["init"][:] = np.uint64(init)
            if g:
                last = np.stack([pa[-1], pb[-1]], axis=1).ravel()
        else:
            s["init"][0] = np.uint64(init)
        parts.append(s)
    return concat(spec, parts)


def held_cycles(spec, n: int, after: dict | None = None) -> dict:
    """``n`` idle cycles (``rst``, ``load``, ``en`` low) with every other input held at its value in
    the last row of ``after`` (0 when ``after`` is empty or missing)."""
    cols = columns(spec)
    s = _empty(cols, n)
    if after is not None and len(after["rst"]):
        for k in cols:
            if k not in ("rst", "load", "en"):
                s[k][:] = after[k][-1]
    return s


def _random(spec: MacSpec, n: int, rng: np.random.Generator) -> dict:
    """Constrained-random cycles: ``en`` mostly high, occasional ``load`` and ``rst``.

    Half of the operands come from :func:`adversarial_triples` (special values, rounding ties,
    cancellation, exponent gaps relative to a loaded accumulator), half are uniformly random finite
    codes; loads bring the accumulator back from NaN/inf and into adversarial states.
    """
    s = _empty(_scalar_columns(spec), n)
    if n == 0:
        return _to_lanes(spec, s, rng)
    adv_acc, adv_a, adv_b = adversarial_triples(spec, n, rng)
    use_adv = rng.random(n) < 0.5
    s["a"] = np.where(use_adv, adv_a, random_codes(spec.a, n, rng, finite_only=True))
    s["b"] = np.where(use_adv, adv_b, random_codes(spec.b, n, rng, finite_only=True))
    u = rng.random(n)
    s["rst"] = (u < 0.003).astype(np.uint64)
    s["load"] = ((u >= 0.003) & (u < 0.06)).astype(np.uint64)
    s["init"] = adv_acc
    # en is independent of load, so "load wins over en" is exercised on about 5% of cycles.
    s["en"] = (rng.random(n) < 0.85).astype(np.uint64)
    if "flush" in s:
        # Order units: dot products of random length end in flush runs; flush also meets en
        # (flush wins) and load (load wins), and runs past the last combine step.
        s["flush"] = (rng.random(n) < 0.08).astype(np.uint64)
    return _to_lanes(spec, s, rng)


# ---------------------------------------------------------------------------------------------
# Block-scaled operands (psum.hw.mx): one block (k element pairs, two scales) per en cycle
# ---------------------------------------------------------------------------------------------
def _scale_codes(fmt, n: int, rng: np.random.Generator, spread: int = 6) -> np.ndarray:
    """Scale codes near 1 (within ``2**+-spread``): E8M0 ``127 + d``; FP8 positive finite codes."""
    from psum.golden.formats import Pow2Format

    if isinstance(fmt, Pow2Format):
        return (fmt.bias + rng.integers(-spread, spread + 1, n)).astype(np.uint64)
    one = int(fmt.encode(np.array([1.0]))[0])
    step = 1 << fmt.man_bits  # one binade of codes
    return np.clip(one + rng.integers(-spread * step, spread * step + 1, n), 0, fmt.max_code).astype(np.uint64)


def _scale_specials(fmt) -> np.ndarray:
    """The edge scale codes: smallest, one, largest, NaN (E8M0); FP8: also zero, -0 and negatives."""
    from psum.golden.formats import Pow2Format

    if isinstance(fmt, Pow2Format):
        return np.array([0, 1, fmt.bias, fmt.nan_code - 1, fmt.nan_code], np.uint64)
    # FP8 (NVFP4's E4M3): +-0, the smallest subnormal, one, -1, the largest, the code above it
    # (NaN in E4M3), a few codes rather than every special pair (the pairs are squared).
    one = int(fmt.encode(np.array([1.0]))[0])
    return np.array([0, 1, one, fmt.max_code, fmt.max_code + 1, fmt.sign_bit, fmt.sign_bit | one], np.uint64)


def _block_rows(spec: MacSpec, acc, sa, sb, ea, eb) -> dict:
    """Two cycles per block: ``load init=acc``, then ``en`` with the block (``ea``, ``eb``: (n, k))."""
    lanes = operand_ports(spec)
    n = len(acc)
    s = _empty(columns(spec), 2 * n)
    s["load"][0::2] = 1
    s["init"][0::2] = acc
    s["en"][1::2] = 1
    s["sa"][1::2], s["sb"][1::2] = sa, sb
    for i, (pa, pb) in enumerate(lanes):
        s[pa][1::2], s[pb][1::2] = ea[:, i], eb[:, i]
    return s


def _random_elems(fmt, n: int, k: int, rng: np.random.Generator, p_zero=0.1, p_special=0.0) -> np.ndarray:
    """``(n, k)`` element codes: random finite, some zeros, a fraction of special codes."""
    e = random_codes(fmt, n * k, rng, finite_only=True).reshape(n, k)
    u = rng.random((n, k))
    e = np.where(u < p_zero, np.uint64(0), e)
    if p_special:
        sp = special_codes(fmt)
        e = np.where(u > 1 - p_special, sp[rng.integers(0, sp.size, (n, k))], e)
    return e.astype(np.uint64)


def _block_directed(spec: MacSpec, rng: np.random.Generator) -> dict:
    """Directed blocks from several accumulator states: every edge scale pair (NaN, smallest,
    largest, zero for FP8 scales) on random and largest-element blocks; blocks holding each
    special element code (NaN, inf, -0, largest, smallest subnormal); all-zero blocks; and
    rounding ties: a block whose term is half an ulp of the loaded accumulator (both signs,
    even and odd accumulator codes)."""
    fa, fb, k = spec.a.elem, spec.b.elem, spec.a.block
    acc_fmt = spec.acc
    states = _acc_states(spec, rng, 3)
    rows = []  # (acc, sa, sb, ea, eb)
    sA, sB = _scale_specials(spec.a.scale), _scale_specials(spec.b.scale)
    big_a = np.full(k, fa.encode(np.array([fa.max_value]))[0], np.uint64)
    big_b = np.full(k, fb.encode(np.array([fb.max_value]))[0], np.uint64)
    for x in sA:
        for y in sB:
            for ea, eb in ((_random_elems(fa, 1, k, rng)[0], _random_elems(fb, 1, k, rng)[0]), (big_a, big_b)):
                for c in states:
                    rows.append((c, x, y, ea, eb))
    one_a, one_b = _scale_codes(spec.a.scale, 1, rng, 0)[0], _scale_codes(spec.b.scale, 1, rng, 0)[0]
    for fmt, side in ((fa, "a"), (fb, "b")):
        for code in special_codes(fmt):
            ea, eb = _random_elems(fa, 1, k, rng)[0], _random_elems(fb, 1, k, rng)[0]
            (ea if side == "a" else eb)[rng.integers(0, k)] = code
            for c in states:
                rows.append((c, one_a, one_b, ea, eb))
    zero = np.zeros(k, np.uint64)
    for c in states:
        rows.append((c, one_a, one_b, zero, zero))
    # Ties: lane 0 holds 1 * 1 (the rest zero), the scales 2**e, so T = 2**(2e) exactly; the
    # accumulator X = (2**M + j) * 2 T (M stored mantissa bits) has ulp 2 T: X + T is a midpoint.
    if isinstance(acc_fmt, FloatFormat):
        one_ea = fa.encode(np.array([1.0]))[0]
        one_eb = fb.encode(np.array([1.0]))[0]
        for e in (-3, 0, 2):
            try:
                sa_c = spec.a.scale.encode(np.array([2.0 ** e]))[0]
                sb_c = spec.b.scale.encode(np.array([2.0 ** e]))[0]
            except (ValueError, OverflowError):
                continue
            T = 2.0 ** (2 * e)
            for j in (0, 1, 2, 3):
                X = (2.0 ** acc_fmt.man_bits + j) * 2 * T
                if not X <= acc_fmt.max_value:
                    continue
                ea, eb = zero.copy(), zero.copy()
                ea[0], eb[0] = one_ea, one_eb
                for sgn in (1.0, -1.0):
                    rows.append((acc_fmt.encode(np.array([sgn * X]))[0], sa_c, sb_c, ea, eb))
    acc, sa, sb, ea, eb = zip(*rows)
    return _block_rows(spec, np.array(acc, np.uint64), np.array(sa, np.uint64), np.array(sb, np.uint64),
                       np.stack(ea), np.stack(eb))


def _block_random(spec: MacSpec, n: int, rng: np.random.Generator) -> dict:
    """Constrained-random blocks: ``en`` mostly high, occasional ``load`` (adversarial accumulator
    states) and ``rst``; scales within ``2**+-6`` of 1, 2 % edge scales; 0.5 % special elements."""
    cols = columns(spec)
    s = _empty(cols, n)
    if n == 0:
        return s
    k = spec.a.block
    ea = _random_elems(spec.a.elem, n, k, rng, p_special=0.005)
    eb = _random_elems(spec.b.elem, n, k, rng, p_special=0.005)
    for i, (pa, pb) in enumerate(operand_ports(spec)):
        s[pa], s[pb] = ea[:, i], eb[:, i]
    for key, fmt in (("sa", spec.a.scale), ("sb", spec.b.scale)):
        edge = _scale_specials(fmt)
        s[key] = np.where(rng.random(n) < 0.02, edge[rng.integers(0, edge.size, n)], _scale_codes(fmt, n, rng))
    u = rng.random(n)
    s["rst"] = (u < 0.003).astype(np.uint64)
    s["load"] = ((u >= 0.003) & (u < 0.06)).astype(np.uint64)
    s["init"] = np.where(rng.random(n) < 0.5, random_codes(spec.acc, n, rng, finite_only=True),
                         special_codes(spec.acc)[rng.integers(0, special_codes(spec.acc).size, n)]).astype(np.uint64)
    s["en"] = (rng.random(n) < 0.85).astype(np.uint64)
    return s


def make_stimulus(spec, *, cycles: int = 10_000, seed: int = 0, streams=None,
                  exhaustive: bool = False, directed: bool = True) -> dict:
    """Per-cycle stimulus for ``spec``: a dict of uint64 arrays keyed by :func:`columns`.

    Layout: a reset cycle; the directed special-value pairs (or, with ``exhaustive``, every operand
    pair) from several loaded accumulator states; the recorded ``streams``; then constrained-random
    cycles up to ``cycles`` in total (the directed part and the streams always run in full, so the
    total may exceed ``cycles``). Stochastic rounding specs get ``rnd`` drawn per cycle.

    Parameters
    ----------
    spec : MacSpec or str
    cycles : int
        Minimum number of cycles in total.
    seed : int
        Seed of every random choice (the stimulus is a pure function of its arguments).
    streams : iterable of (a_codes, b_codes, init_code), optional
        Operand sequences recorded from a network layer (see
        :func:`psum.hw.verify.streams.conv_streams_from_digits`).
    exhaustive : bool
        Every ``(a, b)`` code pair (operands of at most 8 bits) instead of the directed pairs.
    directed : bool
        Include the directed special-value pairs.

    Raises
    ------
    TypeError
        ``cycles`` or ``seed`` is not an integer.
    ValueError
        ``cycles`` < 1 or ``seed`` < 0, or ``exhaustive`` with operands wider than 8 bits.
    """
    spec = MacSpec.parse(spec)
    cycles = check_int("cycles", cycles, 1)
    seed = check_int("seed", seed, 0)
    rng = np.random.default_rng(seed)
    if spec.blocked:
        if exhaustive:
            raise ValueError("exhaustive mode does not apply to block-scaled operands (k element pairs "
                             "per cycle); their stimulus is directed, recorded and random blocks")
        head = _empty(columns(spec), 1)
        head["rst"][0] = 1
        parts = [head] + ([_block_directed(spec, rng)] if directed else [])
        if streams is not None:
            parts.append(stream_cycles(spec, streams))
        used = sum(len(p["rst"]) for p in parts)
        return concat(spec, parts + [_block_random(spec, max(0, cycles - used), rng)])
    head = _empty(columns(spec), 1)
    head["rst"][0] = 1  # never rely on the register's power-up value
    parts = [head]
    if exhaustive:
        parts.append(_exhaustive(spec, rng))
    elif directed:
        parts.append(_directed(spec, rng))
    if streams is not None:
        parts.append(stream_cycles(spec, streams))
    used = sum(len(p["rst"]) for p in parts)
    parts.append(_random(spec, max(0, cycles - used), rng))
    stim = concat(spec, parts)
    if spec.sr_bits:
        stim["rnd"] = rng.integers(0, 1 << spec.sr_bits, size=len(stim["rst"]), dtype=np.uint64)
    return stim
