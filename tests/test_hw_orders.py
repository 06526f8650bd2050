"""Issue 11, second part: the tree<N> order and its adder-tree unit, MacImpl lanes, pipelining of
the integer, fixed-point and order units, stochastic rounding in the interleaved unit.

Checked as the other units are: the emulation against a slow exact reference (the Fraction
``tree_order_ref``), the cycle model's dot products against the emulation, the RTL against the
golden check in Amaranth's simulator (small units) and in Icarus (``simulate`` / ``psum sim``),
with a wrong latency shown to fail (the check has teeth).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from psum.cli.main import main
from psum.golden import MacSpec
from psum.golden.emulation.kernels import accumulate_order, codes, sr_rand
from psum.golden.reference import tree_order_ref
from psum.hw import MacImpl, check, generate
from psum.hw.unit import flush_cycles, mac_signature
from psum.hw.verify import amaranth_trace, check_trace, make_stimulus
from psum.hw.verify.model import expected_outputs
from psum.hw.verify.stimulus import stream_cycles

needs_iverilog = pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs Icarus Verilog")

TREE4 = "a=fp8_e4m3,b=fp8_e4m3,acc=e5m4,order=tree4"
TREE3 = "a=fp8_e4m3,b=fp8_e4m3,acc=e5m3,order=tree3,round=rdn"
TREE8 = "a=fp8_e4m3,b=fp8_e4m3,acc=fp32,order=tree8"


# ---------------------------------------------------------------------------------------------
# tree<N> in the emulation: against the Fraction reference (every rounding a mac_step_ref)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", [TREE4, TREE3, "a=fp8_e4m3,b=fp8_e4m3,acc=e5m4,order=tree4,round=sr,srbits=4",
                                  "a=fp16,b=fp16,acc=fp16,order=tree1",
                                  "a=bf16,b=bf16,acc=e6m5,order=tree5,prod=e6m3,fused=no,round=rtz",
                                  "a=int8,b=int8,acc=int12,order=tree4,overflow=sat",
                                  "a=fp8_e4m3,b=fp8_e4m3,acc=q4.6,order=tree2"])
def test_tree_n_emulation_equals_fraction_reference(text):
    spec = MacSpec.parse(text)
    n, M, N = spec.order.n, 2, 3
    rng = np.random.default_rng(n)
    for K in sorted({0, 1, n - 1, n, n + 1, 3 * n + 2}):
        scale = 8 if spec.int_acc else 2
        A = torch.tensor(spec.a.decode(codes(spec.a, rng.standard_normal((M, K)) * scale)))
        B = torch.tensor(spec.b.decode(codes(spec.b, rng.standard_normal((K, N)) * scale)))
        I0 = torch.tensor(spec.acc.decode(codes(spec.acc, rng.standard_normal((M, N)))))
        got = codes(spec.acc, accumulate_order(spec, A, B, I0, seed=5).numpy())
        ac, bc, ic = codes(spec.a, A.numpy()), codes(spec.b, B.numpy()), codes(spec.acc, I0.numpy())
        for m in range(M):
            for j in range(N):
                idx = np.array([m * N + j])  # the default element index

                def rand(step):
                    return int(sr_rand(5, idx, step, spec.sr_bits)[0])

                want = tree_order_ref(spec, [int(x) for x in ac[m]], [int(x) for x in bc[:, j]], int(ic[m, j]),
                                      rand if spec.sr_bits else None)
                assert int(got[m, j]) == want, (K, m, j)


def test_tree_n_text_lanes_and_name():
    spec = MacSpec.parse(TREE8)
    assert str(spec.order) == "tree8" and spec.order.lanes == 8 and not spec.order.uses_acc2
    assert spec.name == "mac_e4m3fn_e4m3fn_acc_e8m23_rne_tree8"
    assert MacSpec.parse(str(spec)) == spec
    assert MacSpec.parse("a=fp16,b=fp16,acc=fp16,order=tree").order.lanes == 1


def test_tree_n_at_least_k_is_the_plain_tree_for_finite_nonzero_sums():
    """With K <= N one group holds every product: the same tree as ``tree``, the bias added to it
    (``tree`` adds it last, ``tree<N>`` first: one addition either way); the pad leaves are +0."""
    spec = MacSpec.parse("a=fp8_e4m3,b=fp8_e4m3,acc=e5m4,order=tree8")
    rng = np.random.default_rng(0)
    A = torch.tensor(spec.a.decode(codes(spec.a, rng.standard_normal((4, 6)))))
    B = torch.tensor(spec.b.decode(codes(spec.b, rng.standard_normal((6, 5)))))
    I0 = torch.tensor(spec.acc.decode(codes(spec.acc, rng.standard_normal((4, 5)))))
    got = accumulate_order(spec, A, B, I0)
    plain = accumulate_order(spec.replace(order="tree"), A, B, I0)
    assert torch.equal(got, plain)


# ---------------------------------------------------------------------------------------------
# The TreeMac unit: ports, cycle model against the emulation, RTL in Icarus
# ---------------------------------------------------------------------------------------------
def test_tree_unit_ports_and_impl():
    ports = mac_signature(TREE4)
    assert {"a0", "b3", "acc", "en", "load", "init"} <= set(ports) and "flush" not in ports and "a" not in ports
    assert flush_cycles(TREE4) == 0
    spec, impl = check(TREE4, "pipeline=2")
    assert impl == MacImpl(pipeline=2, lanes=4) and str(impl) == "pipeline=2,lanes=4"
    assert generate(TREE4, "lanes=4").impl == MacImpl(lanes=4)


def _streams(spec, lengths, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for K in lengths:
        a = spec.a.encode(rng.standard_normal(K), "rne", saturate=True)
        b = spec.b.encode(rng.standard_normal(K) * 0.5, "rne", saturate=True)
        out.append((a, b, int(spec.acc.encode([rng.standard_normal()], "rne", saturate=True)[0])))
    return out


def _emulated(spec, streams):
    res = []
    for a, b, init in streams:
        A = torch.tensor(spec.a.decode(np.asarray(a, np.uint64))[None, :], dtype=torch.float64)
        B = torch.tensor(spec.b.decode(np.asarray(b, np.uint64))[:, None], dtype=torch.float64)
        I0 = torch.tensor(spec.acc.decode(np.array([[init]], np.uint64)), dtype=torch.float64)
        res.append(int(spec.acc.encode(accumulate_order(spec, A, B, I0).numpy(), "rne")[0, 0]))
    return res


def _stream_ends(stim):
    """The last cycle of each stream (the cycle before the next ``load``, and the last one)."""
    load = np.flatnonzero(stim["load"].astype(bool))
    return [int(t) - 1 for t in load[1:]] + [len(stim["load"]) - 1]


@pytest.mark.parametrize("text", [TREE4, TREE3, TREE8])
def test_tree_cycle_model_equals_accumulate_order(text):
    spec = MacSpec.parse(text)
    n = spec.order.n
    streams = _streams(spec, [0, 1, n - 1, n, n + 1, 3 * n + 2], seed=n)
    stim = stream_cycles(spec, streams)
    stim["rst"] = np.zeros(len(stim["en"]), np.uint64)
    model = expected_outputs(spec, stim)["acc"]
    assert [int(model[t]) for t in _stream_ends(stim)] == _emulated(spec, streams)


@needs_iverilog
@pytest.mark.parametrize("impl", ["pipeline=2", pytest.param(None, marks=pytest.mark.slow)])
def test_tree_unit_icarus_streams_and_random(impl, tmp_path):
    """Icarus: directed specials, random load/en/rst cycles and dot products (the last group
    padded) with zero mismatches; each dot product's result equals accumulate_order's."""
    from psum.hw.verify import simulate

    spec = MacSpec.parse(TREE3)
    streams = _streams(spec, [0, 1, 2, 3, 4, 11], seed=1)
    res = simulate(spec, impl=impl, cycles=400, seed=2, streams=streams, build_dir=tmp_path)
    assert res.mismatches == 0, res.first_mismatch
    stim = stream_cycles(spec, streams)
    stim["rst"] = np.zeros(len(stim["en"]), np.uint64)
    model = expected_outputs(spec, stim)["acc"]
    assert [int(model[t]) for t in _stream_ends(stim)] == _emulated(spec, streams)


# ---------------------------------------------------------------------------------------------
# Pipelining of the integer, fixed-point and order units (Amaranth simulator, small units)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec, k", [
    ("a=int8,b=int8,acc=int16,overflow=sat", 1),
    ("a=int4,b=int4,acc=int8,order=chunk3,acc2=int12,overflow=sat", 1),
    ("a=int4,b=uint4,acc=int7,order=ilv3", 1),
    ("a=int4,b=uint4,acc=int10,prod=int6,fused=no", 1),
    ("a=fp8_e4m3,b=fp8_e4m3,acc=q4.6,round=sr,srbits=3", 2),
    pytest.param("a=fp8_e4m3,b=fp8_e4m3,acc=q8.24", 1, marks=pytest.mark.slow),
    pytest.param("a=fp8_e4m3,b=fp8_e4m3,acc=e5m3,order=chunk4,acc2=e5m6,round=rtz", 2, marks=pytest.mark.slow),
    pytest.param("a=fp8_e4m3,b=fp8_e4m3,acc=e5m4,order=ilv2,round=rdn", 1, marks=pytest.mark.slow),
    pytest.param("a=fp8_e5m2,b=fp8_e4m3,acc=e5m4,order=mta3w5p6,acc2=e5m7,round=rdn,prod=e5m3,fused=no", 2,
                 marks=pytest.mark.slow),
])
def test_pipelined_units_amaranth(spec, k):
    stim = make_stimulus(spec, cycles=150, seed=k)
    obs = amaranth_trace(spec, stim, f"pipeline={k}")
    bad, first, _ = check_trace(spec, stim, obs, f"pipeline={k}")
    assert bad == 0, first
    assert check_trace(spec, stim, obs, f"pipeline={k - 1}")[0] > 0  # the wrong latency fails


@needs_iverilog
@pytest.mark.parametrize("argv", [
    pytest.param(["a=fp8_e4m3,b=fp8_e4m3,acc=e5m3,order=chunk4,acc2=e5m6,round=rtz", "--impl", "pipeline=2"],
                 marks=pytest.mark.slow),
    pytest.param(["a=int8,b=int8,acc=int20", "--impl", "pipeline=1"], marks=pytest.mark.slow),
    pytest.param(["a=fp8_e4m3,b=fp8_e4m3,acc=q8.24", "--impl", "pipeline=2"], marks=pytest.mark.slow),
    pytest.param(["a=fp16,b=fp16,acc=fp16,order=ilv3", "--impl", "pipeline=2"], marks=pytest.mark.slow),
    pytest.param(["a=fp8_e4m3,b=fp8_e4m3,acc=e5m6,order=mta4w8p8,acc2=fp16", "--impl", "pipeline=2"],
                 marks=pytest.mark.slow),
    pytest.param([TREE8, "--impl", "pipeline=1"], marks=pytest.mark.slow),
])
def test_pipelined_units_psum_sim(argv, tmp_path, capsys):
    assert main(["sim", *argv, "--cycles", "600", "--build-dir", str(tmp_path)]) == 0
    assert " 0 mismatches" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# Stochastic rounding in the interleaved unit: one rounding per cycle, that cycle's rnd bits
# ---------------------------------------------------------------------------------------------
def test_ilv_unit_stochastic_rounding_amaranth():
    spec = "a=fp8_e4m3,b=fp8_e4m3,acc=e5m4,order=ilv2,round=sr,srbits=3"
    assert "rnd" in mac_signature(spec)
    stim = make_stimulus(spec, cycles=150, seed=4, directed=False)  # random cycles: flush, en, load, rst
    obs = amaranth_trace(spec, stim)
    bad, first, _ = check_trace(spec, stim, obs)
    assert bad == 0, first
    # the check has teeth: other random bits give other roundings
    stim2 = dict(stim, rnd=(stim["rnd"] + np.uint64(3)) % np.uint64(8))
    assert check_trace(spec, stim2, obs)[0] > 0


# ---------------------------------------------------------------------------------------------
# Integer accumulators in the chunk and interleaved units (IntStep), as the emulation has them
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["a=int4,b=int4,acc=int6,order=ilv2,overflow=sat",
                                  # the mode rounds the e4m3 promotions only; the int8 step takes rne
                                  "a=int4,b=int4,acc=int8,order=chunk3,acc2=e4m3,round=rtz",
                                  pytest.param("a=int8,b=int8,acc=int16,order=chunk4,acc2=fp16",
                                               marks=pytest.mark.slow)])
def test_integer_order_units_amaranth(spec):
    stim = make_stimulus(spec, cycles=200, seed=3)
    bad, first, _ = check_trace(spec, stim, amaranth_trace(spec, stim))
    assert bad == 0, first


def test_integer_chunk_unit_dot_products_equal_accumulate_order():
    spec = MacSpec.parse("a=int4,b=int4,acc=int8,order=chunk3,acc2=int12,overflow=sat")
    rng = np.random.default_rng(0)
    streams = []
    for K in (0, 1, 3, 4, 10):
        streams.append((rng.integers(0, 16, K).astype(np.uint64), rng.integers(0, 16, K).astype(np.uint64),
                        int(rng.integers(0, 256))))
    stim = stream_cycles(spec, streams)
    stim["rst"] = np.zeros(len(stim["en"]), np.uint64)
    obs = amaranth_trace(spec, stim)
    ends = [t - 1 for t in np.flatnonzero(stim["load"].astype(bool))[1:]] + [len(stim["load"]) - 1]
    want = []
    for a, b, init in streams:
        A = torch.tensor(spec.a.decode(a)[None, :], dtype=torch.float64)
        B = torch.tensor(spec.b.decode(b)[:, None], dtype=torch.float64)
        I0 = torch.tensor(spec.acc.decode(np.array([[init]], np.uint64)), dtype=torch.float64)
        want.append(int(codes(spec.acc2, accumulate_order(spec, A, B, I0).numpy())[0, 0]))
    assert [int(obs["acc2"][t]) for t in ends] == want


# ---------------------------------------------------------------------------------------------
# The lockstep cycle models (vectorised across load/rst segments) equal the scalar ones
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["a=fp8_e4m3,b=fp8_e4m3,acc=e5m3,order=chunk4,acc2=e5m6,round=rtz",
                                  "a=fp8_e4m3,b=fp8_e4m3,acc=e5m4,order=ilv3,round=rdn",
                                  "a=fp8_e4m3,b=fp8_e4m3,acc=e5m4,order=ilv2,round=sr,srbits=3", TREE3,
                                  "a=fp8_e5m2,b=fp8_e4m3,acc=e5m4,order=mta3w5p6,acc2=e5m7,prod=e5m3,fused=no",
                                  "a=int4,b=int4,acc=int8,order=chunk3,acc2=int12,overflow=sat",
                                  "a=fp16,b=fp16,acc=fp16,order=ilv1"])
def test_lockstep_models_equal_scalar_models(spec):
    # random cycles only (the directed blocks are thousands of cycles: the scalar model's cost);
    # they hold specials, load/en/rst/flush in every combination and dot products of any length
    stim = make_stimulus(spec, cycles=400, seed=5, directed=False)
    fast, slow = expected_outputs(spec, stim), expected_outputs(spec, stim, scalar=True)
    assert fast.keys() == slow.keys()
    for key in fast:
        assert np.array_equal(fast[key], slow[key]), key


def test_delayed_clears_flush_in_flight():
    from psum.hw.verify.check import delayed

    n = 6
    stim = {k: np.zeros(n, np.uint64) for k in ("rst", "a", "b", "en", "load", "init", "flush")}
    stim["flush"][:] = 1
    stim["rst"][2] = 1
    # the flush issued at cycle 2 (due at 3) is cleared by the reset; the one issued at 1 reaches
    # the loop at 2, where the reset itself wins over it
    assert delayed(stim, 1)["flush"].tolist() == [0, 1, 1, 0, 1, 1]
