# amaranth: UnusedElaboratable=no
"""Fast tests of the float MAC generator in Amaranth's Python simulator, against ``mac_step``.

The register is compared with a deliberately naive sequential model (one :func:`mac_step` call
per cycle, load/en/rst applied in Python) after every clock edge. Stimulus per unit: loaded
accumulator states followed by one MAC step, for directed special-value triples and the
adversarial triples of :mod:`psum.golden.stimulus` (ties, cancellation, exponent gaps, overflow),
then a constrained-random chain with ``load``, ``en`` and ``rst`` interleaved.

The bit-exact claim on the generated Verilog is made by ``tests/test_hw_float_cocotb.py``
(Icarus); this file keeps the generator honest on every run in a few seconds per unit.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Fragment, Shape
from amaranth.sim import Simulator

from psum.golden import MacSpec, Rounding, mac_step
from psum.golden import _vector as V
from psum.golden.stimulus import adversarial_triples, random_codes, special_codes
from psum.hw import generate
from psum.hw.float_mac import FloatMac
from psum.hw.float_parts import FloatRounder
from psum.hw.verify import amaranth_trace

from specs import CORNERS, MATRIX

CTRL = ("rst", "load", "en")


# ---------------------------------------------------------------------------------------------
# Stimulus and the naive model
# ---------------------------------------------------------------------------------------------
def _stimulus(spec: MacSpec, rng: np.random.Generator, *, directed: int, adversarial: int,
              chain: int) -> dict:
    """Rows of ``rst, load, en, a, b, init, rnd``, one per cycle."""
    rows = {k: [] for k in (*CTRL, "a", "b", "init", "rnd")}

    def add(rst=0, load=0, en=0, a=0, b=0, init=0):
        for k, v in zip((*CTRL, "a", "b", "init"), (rst, load, en, a, b, init)):
            rows[k].append(int(v))
        rows["rnd"].append(int(rng.integers(0, 1 << spec.sr_bits)) if spec.sr_bits else 0)

    # Directed: special operand codes against special accumulator states (load, then step).
    sa, sb, sc = special_codes(spec.a), special_codes(spec.b), special_codes(spec.acc)
    for _ in range(directed):
        add(load=1, init=rng.choice(sc))
        add(en=1, a=rng.choice(sa), b=rng.choice(sb))
    # Adversarial triples: ties, near-ties, cancellation, exponent gaps, overflow.
    acc, a, b = adversarial_triples(spec, adversarial, rng)
    for i in range(adversarial):
        add(load=1, init=acc[i])
        add(en=1, a=a[i], b=b[i])
    # Constrained-random chain: mostly en, sometimes load (also together with en: load wins),
    # en low (hold) and a rare reset.
    ca = random_codes(spec.a, chain, rng, finite_only=True)
    cb = random_codes(spec.b, chain, rng, finite_only=True)
    ci = random_codes(spec.acc, chain, rng, finite_only=True)
    for i in range(chain):
        u = rng.random()
        add(rst=u < 0.02, load=0.02 <= u < 0.1, en=rng.random() < 0.85, a=ca[i], b=cb[i], init=ci[i])
    return {k: np.asarray(v, dtype=np.uint64) for k, v in rows.items()}


def _expected(spec: MacSpec, stim: dict) -> list[int]:
    """The register after every cycle, by the port contract and one mac_step per step."""
    acc, out = 0, []
    for t in range(len(stim["en"])):
        if stim["rst"][t]:
            acc = 0
        elif stim["load"][t]:
            acc = int(stim["init"][t])
        elif stim["en"][t]:
            rand = int(stim["rnd"][t]) if spec.sr_bits else None
            acc = int(mac_step(spec, acc, stim["a"][t], stim["b"][t], rand=rand))
        out.append(acc)
    return out


def _check(text: str, *, seed: int, directed: int, adversarial: int, chain: int) -> int:
    spec = MacSpec.parse(text)
    stim = _stimulus(spec, np.random.default_rng(seed), directed=directed,
                     adversarial=adversarial, chain=chain)
    got, want = [int(v) for v in amaranth_trace(spec, stim)], _expected(spec, stim)
    bad = [t for t in range(len(want)) if got[t] != want[t]]
    if bad:
        t = bad[0]
        row = {k: hex(int(stim[k][t])) for k in stim}
        prev = hex(want[t - 1]) if t else "0x0"
        pytest.fail(f"{len(bad)} mismatches of {len(want)}; first at cycle {t}: inputs {row}, "
                    f"acc before {prev}, expected {hex(want[t])}, got {hex(got[t])}")
    return len(want)


# ---------------------------------------------------------------------------------------------
# The matrix
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", list(MATRIX.values()), ids=list(MATRIX))
def test_matrix_bit_exact(text):
    cycles = _check(text, seed=3, directed=30, adversarial=45, chain=60)
    assert cycles == 2 * 30 + 2 * 45 + 60


@pytest.mark.slow
@pytest.mark.parametrize("text", list(MATRIX.values()), ids=list(MATRIX))
def test_matrix_bit_exact_long(text):
    _check(text, seed=11, directed=500, adversarial=1500, chain=2000)


@pytest.mark.parametrize("text", list(CORNERS.values()), ids=list(CORNERS))
def test_corner_specs_bit_exact(text):
    _check(text, seed=5, directed=10, adversarial=20, chain=16)


@pytest.mark.slow
@pytest.mark.parametrize("text", list(CORNERS.values()), ids=list(CORNERS))
def test_corner_specs_bit_exact_long(text):
    _check(text, seed=13, directed=500, adversarial=1500, chain=1000)


# ---------------------------------------------------------------------------------------------
# The shared rounder on its own, against the golden rounder
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt_text,mode,sat", [
    ("fp16", "rne", False), ("e4m3fn", "rup", False), ("e5m2fnuz", "rdn", False),
    ("e3m2fin", "rna", False), ("e5m4_ftz", "rod", False), ("bf16", "rtz", True),
    ("e4m3", "sr", False),
    # merged: the top of mag never below emin (lo + width - 1 >= emin), gradual underflow as a
    # cap on the normalising shift and one increment for round and pack (FloatRounder._merged)
    ("fp16", "rne", "merged"), ("e4m3", "sr", "merged"), ("e3m2", "rod", "merged"),
    ("e3m2fin", "rup", "merged"),
])
def test_rounder_matches_round_float(fmt_text, mode, sat):
    from psum.golden import parse_format

    fmt, mode = parse_format(fmt_text), Rounding(mode)
    sr_bits = 5 if mode is Rounding.SR else 0
    n, width, lo, hi = 150, 12, fmt.emin - fmt.man_bits - 16, fmt.emax + 2
    merged = sat == "merged"
    if merged:
        sat, lo = False, fmt.emin - 11
    n = 400 if merged else n
    rng = np.random.default_rng(0)
    sign = rng.random(n) < 0.5
    mag = rng.integers(0, 1 << width, size=n) >> rng.integers(0, width, size=n)
    exp = rng.integers(lo, hi + 1, size=n)
    rand = rng.integers(0, 1 << sr_bits, size=n) if sr_bits else None
    want = V.round_float(fmt, sign, mag, exp, mode, saturate=sat, rand=rand, sr_bits=sr_bits)
    dut = FloatRounder(fmt, rounding=mode, saturate=sat, mag_width=width, exp_range=(lo, hi),
                       sr_bits=sr_bits)
    got = []

    async def bench(ctx):
        for i in range(n):
            ctx.set(dut.sign, int(sign[i]))
            ctx.set(dut.mag, int(mag[i]))
            ctx.set(dut.exp, int(exp[i]))
            if sr_bits:
                ctx.set(dut.rnd, int(rand[i]))
            got.append(ctx.get(dut.code))

    assert dut._merged == merged
    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    assert [hex(g) for g in got] == [hex(int(w)) for w in want]


# ---------------------------------------------------------------------------------------------
# Ports, dispatch and validation
# ---------------------------------------------------------------------------------------------
def test_ports_follow_the_contract():
    members = set(FloatMac("a=fp16,b=fp16,acc=fp16").signature.members)
    assert members == {"a", "b", "en", "load", "init", "acc"}
    sr = FloatMac("a=fp16,b=fp16,acc=fp16,round=sr,srbits=6")
    assert set(sr.signature.members) == members | {"rnd"}
    assert Shape.cast(sr.signature.members["rnd"].shape).width == 6
    unit = FloatMac("a=int8,b=fp8_e4m3,acc=e6m9")
    widths = [Shape.cast(unit.signature.members[k].shape).width for k in ("a", "b", "init", "acc")]
    assert widths == [8, 8, 16, 16]


def test_generate_dispatches_float_specs():
    unit = generate("a=bf16,b=bf16,acc=e6m9,prod=bf16,fused=no")
    Fragment.get(unit, None)  # elaborates (and so uses) the unit
    assert isinstance(unit, FloatMac)
    assert unit.spec == MacSpec.parse("a=bf16,b=bf16,acc=e6m9,prod=bf16,fused=no")
    assert unit.pipeline == 0
    assert unit.window == 14  # max(10 + 0 + 4, max(8, 10) + 2)


def test_rejects_integer_accumulator():
    with pytest.raises(ValueError, match=r"^FloatMac needs a float accumulator, not acc=int32$"):
        FloatMac("a=int8,b=int8,acc=int32")


def test_rejects_non_sequential_order():
    with pytest.raises(ValueError, match=r"^FloatMac builds order=seq, not order=tree$"):
        FloatMac("a=fp16,b=fp16,acc=fp32,order=tree")
    with pytest.raises(ValueError, match=r"^no hardware unit for order=tree \(one tree over all K products\); an adder-tree unit computes order=tree<N>, N products per cycle$"):
        generate("a=fp16,b=fp16,acc=fp32,order=tree")


def test_rejects_pipeline_depth():
    with pytest.raises(ValueError, match=r"^impl pipeline must be an integer between 0 and 2, not 3$"):
        FloatMac("a=fp16,b=fp16,acc=fp32", pipeline=3)
    with pytest.raises(ValueError, match=r"^give the implementation as impl= or as keyword options, not both$"):
        FloatMac("a=fp16,b=fp16,acc=fp32", impl="pipeline=1", pipeline=1)
