"""Issue 11: MacImpl, the pipelined float MAC, the chunk<L>, ilv<L> and mta<N>w<W>p<P> order units, --rtl.

Every unit is checked three ways: in Amaranth's simulator against the golden check (directed
specials, constrained-random load/en/rst/flush, recorded digits streams), its dot-product
results against :func:`psum.golden.emulation.kernels.accumulate_order` (the emulation the unit
must equal), and in Icarus through ``psum sim`` (short runs here; long ones in the slow tier).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from psum.cli.main import main
from psum.golden import MacSpec
from psum.golden.emulation.kernels import accumulate_order
from psum.hw import MacImpl, check, generate, module_name, verilog
from psum.hw.unit import flush_cycles, mac_signature
from psum.hw.verify import amaranth_trace, check_trace, conv_streams_from_digits, make_stimulus
from psum.hw.verify.check import delayed
from psum.hw.verify.model import expected_outputs
from psum.hw.verify.stimulus import concat, stream_cycles

needs_iverilog = pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs Icarus Verilog")

FP16 = "a=fp16,b=fp16,acc=fp16"
CHUNK = "a=fp8_e4m3,b=fp8_e4m3,acc=e5m6,order=chunk16,acc2=fp16"
CHUNK4 = "a=fp8_e4m3,b=fp8_e4m3,acc=e5m3,order=chunk4,acc2=e5m6,round=rtz"
ILV = "a=fp16,b=fp16,acc=fp16,order=ilv3"
ILV2 = "a=fp8_e4m3,b=fp8_e4m3,acc=e5m4,order=ilv2,round=rdn"
MTA = "a=fp8_e4m3,b=fp8_e4m3,acc=fp32,order=mta32w14p128"
MTA4 = "a=fp8_e4m3,b=fp8_e4m3,acc=e5m6,order=mta4w8p8,acc2=fp16"
MTA3 = "a=fp8_e5m2,b=fp8_e4m3,acc=e5m4,order=mta3w5p6,acc2=e5m7,round=rdn,prod=e5m3,fused=no"


# ---------------------------------------------------------------------------------------------
# MacImpl: a typed, validated value with a text form and a tag
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, impl, tag", [
    ("", MacImpl(), ""),
    ("pipeline=0", MacImpl(), ""),
    ("pipeline=2", MacImpl(pipeline=2), "p2"),
    (" PIPELINE=1 , lanes=1", MacImpl(pipeline=1, lanes=1), "p1"),
    ("lanes=32", MacImpl(lanes=32), ""),
])
def test_impl_parse_round_trip_and_tag(text, impl, tag):
    assert MacImpl.parse(text) == impl and impl.tag == tag
    assert MacImpl.parse(str(impl)) == impl and MacImpl.parse(impl) is impl
    assert MacImpl.parse({"pipeline": impl.pipeline, "lanes": impl.lanes}) == impl
    assert impl.is_default == (tag == "")
    if impl.lanes is None:
        assert MacImpl.parse({"pipeline": impl.pipeline}) == impl


@pytest.mark.parametrize("text, exc, message", [
    ("pipeline=3", ValueError, "impl pipeline must be an integer between 0 and 2, not 3"),
    ("lanes=0", ValueError, "impl lanes must be an integer >= 1, not 0"),
    ("pipe=1", ValueError, "unknown impl key 'pipe'; keys are pipeline, lanes, multiplier"),
    ("pipeline", ValueError, "impl item 'pipeline' is not KEY=VALUE; an implementation is"),
    ("pipeline=1,pipeline=2", ValueError, "impl key 'pipeline' given twice"),
    ("pipeline=-1", ValueError, "impl pipeline must be a non-negative integer, not '-1'"),
    (3, TypeError, "impl must be a MacImpl or KEY=VALUE text, not 3"),
])
def test_impl_parse_errors(text, exc, message):
    with pytest.raises(exc) as info:
        MacImpl.parse(text)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_impl_is_keyword_only_and_frozen():
    with pytest.raises(TypeError):
        MacImpl(2)  # noqa - what would 2 be?
    with pytest.raises(TypeError, match=r"^impl pipeline must be an integer between 0 and 2, not 1.0$"):
        MacImpl(pipeline=1.0)
    with pytest.raises(AttributeError):
        MacImpl().pipeline = 1


@pytest.mark.parametrize("spec, impl, message", [
    ("a=int8,b=int8,acc=int32", "pipeline=2", "impl pipeline=2: IntMac has 1 pipeline cut, after the product"),
    ("a=fp16,b=fp16,acc=fp16,order=chunk2,round=sr", None, "ChunkMac does not implement round=sr (two roundings per cycle)"),
    ("a=fp16,b=fp16,acc=fp16,order=tree", None,
     "no hardware unit for order=tree (one tree over all K products); an adder-tree unit computes order=tree<N>, "
     "N products per cycle"),
    ("a=fp16,b=fp16,acc=fp16,order=tree4,round=sr", None, "TreeMac does not implement round=sr (2N roundings per cycle)"),
    ("a=int8,b=int8,acc=int16,order=tree4", None, "TreeMac needs a float accumulator, not acc=int16"),
    ("a=int8,b=int8,acc=int16,order=ilv2", "pipeline=2", "impl pipeline=2: IlvMac has 1 pipeline cut, after the product"),
    ("a=fp8_e4m3,b=fp8_e4m3,acc=q8.24,order=tree4", None,
     "fixed-point accumulators have a sequential unit only, not order=tree4"),
    (CHUNK, "lanes=3", "impl lanes=3 does not divide order=chunk16's chunk length 16"),
    (CHUNK, "lanes=4", "impl lanes=4 does not match order=chunk16: its unit takes 1 product per cycle"),
    (MTA, "lanes=16", "impl lanes=16 does not match order=mta32w14p128: its unit takes 32 products per cycle"),
    (FP16, "lanes=2", "impl lanes=2 does not match order=seq: its unit takes 1 product per cycle"),
    ("a=fp16,b=fp16,acc=fp16,order=mta4w8p8,round=sr", None, "MtaMac does not implement round=sr"),
    ("a=int8,b=int8,acc=int16,order=chunk4,acc2=int32", "pipeline=2",
     "impl pipeline=2: ChunkMac has 1 pipeline cut, after the product"),
])
def test_units_refuse_what_they_do_not_build(spec, impl, message):
    with pytest.raises(ValueError, match="^" + __import__("re").escape(message) + "$"):
        check(spec, impl)


def test_module_names_carry_the_impl_tag():
    assert module_name(FP16) == MacSpec.parse(FP16).name
    assert module_name(FP16, "pipeline=2") == MacSpec.parse(FP16).name + "_p2"
    text = verilog(FP16, "pipeline=2")
    assert f"module {MacSpec.parse(FP16).name}_p2(" in text
    assert verilog(FP16, pipeline=2) == text  # keyword options are the same implementation


def test_port_contract_of_order_units():
    assert set(mac_signature(CHUNK)) == {"a", "b", "en", "load", "init", "acc", "flush", "acc2"}
    assert set(mac_signature(ILV)) == {"a", "b", "en", "load", "init", "acc", "flush"}
    assert "flush" not in mac_signature("a=fp16,b=fp16,acc=fp16,order=ilv1")
    mta = mac_signature(MTA)
    assert {f"a{i}" for i in range(32)} <= set(mta) and "a" not in mta and "b31" in mta and "acc2" in mta
    assert (flush_cycles(CHUNK), flush_cycles(ILV), flush_cycles(FP16)) == (1, 2, 0)
    unit = generate(CHUNK)
    from amaranth.hdl import Fragment

    Fragment.get(unit, None)
    assert len(unit.acc2) == 16 and len(unit.acc) == 12  # e5m6: 1 + 5 + 6 bits


# ---------------------------------------------------------------------------------------------
# Pipelining: the delayed-input check and the Amaranth simulator
# ---------------------------------------------------------------------------------------------
def test_delayed_inputs_and_reset_kills_in_flight():
    n = 8
    stim = {k: np.zeros(n, np.uint64) for k in ("rst", "a", "b", "en", "load", "init")}
    stim["en"][:] = 1
    stim["a"][:] = np.arange(n)
    stim["rst"][3] = 1
    d = delayed(stim, 2)
    assert d["a"].tolist() == [0, 0, 0, 1, 2, 3, 4, 5]
    # rst at cycle 3 clears the pipeline registers at that edge: the inputs issued at cycles 2
    # and 3 (due at 4 and 5) are lost; the one issued at 1 reaches the loop at 3, where the same
    # reset wins over it
    assert d["en"].tolist() == [0, 0, 1, 1, 0, 0, 1, 1]
    assert delayed(stim, 0) is stim


@pytest.mark.parametrize("spec, k", [(FP16, 2), ("a=fp8_e4m3,b=fp8_e4m3,acc=e5m4,round=sr,srbits=3", 1),
                                     ("a=bf16,b=bf16,acc=e6m9,prod=bf16,fused=no,round=rdn", 2)])
def test_pipelined_float_mac_amaranth(spec, k):
    stim = make_stimulus(spec, cycles=400, seed=k)
    obs = amaranth_trace(spec, stim, f"pipeline={k}")
    bad, first, _ = check_trace(spec, stim, obs, f"pipeline={k}")
    assert bad == 0, first
    # the check has teeth: the same trace read with the wrong latency fails
    assert check_trace(spec, stim, obs, f"pipeline={3 - k}")[0] > 0


# ---------------------------------------------------------------------------------------------
# Order units: cycle model, Amaranth simulator, and the emulation's dot products
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", [CHUNK4, ILV2, MTA3, pytest.param(ILV, marks=pytest.mark.slow),
                                  pytest.param(MTA4, marks=pytest.mark.slow)])
def test_order_units_amaranth_random_load_en_rst_flush(spec):
    stim = make_stimulus(spec, cycles=300, seed=3, streams=conv_streams_from_digits(spec, 3))
    assert stim["flush"].any()
    obs = amaranth_trace(spec, stim)
    bad, first, _ = check_trace(spec, stim, obs)
    assert bad == 0, first


def _streams(spec, lengths, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for K in lengths:
        a = spec.a.encode(rng.standard_normal(K), "rne", saturate=True)
        b = spec.b.encode(rng.standard_normal(K) * 0.5, "rne", saturate=True)
        out.append((a, b, int(spec.acc.encode([rng.standard_normal()], "rne", saturate=True)[0])))
    return out


def _emulated(spec, streams, out_fmt):
    """accumulate_order's result per stream (one output element each), as codes of out_fmt."""
    res = []
    for a, b, init in streams:
        A = torch.tensor(spec.a.decode(np.asarray(a, np.uint64))[None, :], dtype=torch.float64)
        B = torch.tensor(spec.b.decode(np.asarray(b, np.uint64))[:, None], dtype=torch.float64)
        I0 = torch.tensor(spec.acc.decode(np.array([[init]], np.uint64)), dtype=torch.float64)
        v = accumulate_order(spec, A, B, I0).numpy()
        res.append(int(out_fmt.encode(v, "rne")[0, 0]))
    return res


def _results_after_flush(spec, stim, outputs, key):
    """The output ``key`` at the last flush cycle of each stream (the dot product's result)."""
    f = stim["flush"].astype(bool)
    ends = np.flatnonzero(f & ~np.concatenate([f[1:], [False]]))
    return [int(outputs[key][t]) for t in ends]


@pytest.mark.parametrize("spec, key", [(CHUNK4, "acc2"), pytest.param(CHUNK, "acc2", marks=pytest.mark.slow),
                                       (ILV, "acc"), (ILV2, "acc"), (MTA4, "acc2"), (MTA3, "acc2")])
def test_order_units_equal_accumulate_order(spec, key):
    """The unit's dot products (load, K products, flush) are accumulate_order's, bit for bit.

    Stream lengths cover K = 0, K < L, K = L, K = L + 1 and several chunks / wraps of the sums
    (mta: L = P, with groups of N padded by zero operands).
    """
    spec = MacSpec.parse(spec)
    L = spec.order.p if spec.order.kind == "mta" else spec.order.length
    streams = _streams(spec, [0, 1, L - 1, L, L + 1, 2 * L + 3, 37], seed=L)
    stim = concat(spec, [stream_cycles(spec, streams)])
    stim["rst"] = np.zeros(len(stim["en"]), np.uint64)
    out_fmt = spec.acc2 if key == "acc2" else spec.acc
    want = _emulated(spec, streams, out_fmt)
    model = _results_after_flush(spec, stim, expected_outputs(spec, stim), key)
    assert model == want
    obs = amaranth_trace(spec, stim)
    obs = obs if isinstance(obs, dict) else {"acc": obs}
    assert _results_after_flush(spec, stim, obs, key) == want


# ---------------------------------------------------------------------------------------------
# Icarus through the command line (short runs; the long ones are in the slow tier)
# ---------------------------------------------------------------------------------------------
@needs_iverilog
@pytest.mark.parametrize("argv", [
    [FP16, "--impl", "pipeline=2"],
    pytest.param([CHUNK], marks=pytest.mark.slow),
    pytest.param([ILV], marks=pytest.mark.slow),
    pytest.param([MTA], marks=pytest.mark.slow),
])
def test_psum_sim_units_zero_mismatches(argv, tmp_path, capsys):
    assert main(["sim", *argv, "--cycles", "1500", "--build-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "1500 cycles checked" not in out and " 0 mismatches" in out


@needs_iverilog
def test_rtl_user_file_and_planted_fault(tmp_path, capsys):
    """A user's file with psum's unit passes; the same file with one wrong bit fails, exit 1."""
    spec = MacSpec.parse(FP16)
    text = verilog(spec, "pipeline=1").replace(f"module {spec.name}_p1(", "module my_mac(")
    good, bad = tmp_path / "good.v", tmp_path / "bad.v"
    good.write_text(text)
    # the fault: the accumulator's subnormal test ignores the exponent's top bit
    assert "assign c_sub = ! acc[14:10];" in text
    bad.write_text(text.replace("assign c_sub = ! acc[14:10];", "assign c_sub = ! acc[13:10];"))
    args = ["sim", FP16, "--impl", "pipeline=1", "--top", "my_mac", "--cycles", "1500"]
    assert main([*args, "--rtl", str(good), "--build-dir", str(tmp_path / "g")]) == 0
    assert "my_mac: " in capsys.readouterr().out
    assert main([*args, "--rtl", str(bad), "--build-dir", str(tmp_path / "b")]) == 1
    out = capsys.readouterr().out
    assert "first mismatch at cycle" in out and "(inputs of cycle" in out


# ---------------------------------------------------------------------------------------------
# Bad input on the command line: one line, exit 2, before any work
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["verilog", FP16, "--impl", "pipeline=9"], "psum verilog: error: impl pipeline must be an integer between 0 and 2, not 9"),
    (["verilog", FP16, "--impl", "depth=1"], "psum verilog: error: unknown impl key 'depth'; keys are pipeline, lanes, multiplier"),
    (["verilog", FP16, "--impl", "multiplier=wallace"],
     "psum verilog: error: impl multiplier must be one of array, booth, dadda, not 'wallace'"),
    (["synth", "a=int8,b=int8,acc=int32", "--impl", "multiplier=booth"],
     "psum synth: error: impl multiplier=booth: an integer unit's signed product is built by the synthesis tool's *; "
     "booth and dadda are built for the unsigned significand products of float and fixed-point accumulators"),
    (["sim", "a=mxfp4_k2,b=mxfp4_k2,acc=e5m3", "--impl", "multiplier=dadda"],  # was "element products is built"
     "psum sim: error: impl multiplier=dadda: a block unit's element product is built by the synthesis tool's *; "
     "booth and dadda are built for the unsigned significand products of float and fixed-point accumulators"),
    (["sim", "a=int8,b=int8,acc=int16", "--impl", "pipeline=2"],
     "psum sim: error: impl pipeline=2: IntMac has 1 pipeline cut, after the product"),
    (["synth", FP16, "--impl", "lanes=2"],
     "psum synth: error: impl lanes=2 does not match order=seq: its unit takes 1 product per cycle"),
    (["synth", CHUNK, "--impl", "lanes=3"],
     "psum synth: error: impl lanes=3 does not divide order=chunk16's chunk length 16"),
    (["sim", MTA, "--impl", "lanes=8"],
     "psum sim: error: impl lanes=8 does not match order=mta32w14p128: its unit takes 32 products per cycle"),
    (["verilog", "a=fp16,b=fp16,acc=fp16,order=tree4", "--impl", "lanes=0"],
     "psum verilog: error: impl lanes must be an integer >= 1, not 0"),
    (["sim", FP16, "--top", "x"], "psum sim: error: --top names a module of --rtl FILE.v; give --rtl too"),
    (["sim", FP16, "--rtl", "/nonexistent/unit.v"], "psum sim: error: RTL file /nonexistent/unit.v not found"),
    (["verilog", "a=fp16,b=fp16,acc=fp16,order=tree"],
     "psum verilog: error: no hardware unit for order=tree (one tree over all K products); an adder-tree unit "
     "computes order=tree<N>, N products per cycle"),
    (["sim", "a=fp16,b=fp16,acc=fp16,order=tree4,round=sr"],
     "psum sim: error: TreeMac does not implement round=sr (2N roundings per cycle)"),
])
def test_bad_input_is_one_line_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == message + "\n"


def test_rtl_without_the_module_is_one_line(tmp_path, capsys):
    f = tmp_path / "u.v"
    f.write_text("module other(input clk); endmodule\n")
    assert main(["sim", FP16, "--rtl", str(f)]) == 2
    assert capsys.readouterr().err == (f"psum sim: error: {f} declares no module {MacSpec.parse(FP16).name}; "
                                       "name the unit's module with --top MODULE\n")


# ---------------------------------------------------------------------------------------------
# Slow tier: long runs, drive mode, exhaustive fp8 operand pairs
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
@needs_iverilog
@pytest.mark.parametrize("spec, impl", [(FP16, "pipeline=2"), (FP16, "pipeline=1"), (CHUNK, None), (ILV, None),
                                        (CHUNK4, None), (ILV2, None), (MTA, None), (MTA4, None), (MTA3, None)])
def test_units_long_and_drive(spec, impl, tmp_path):
    from psum.hw.verify import simulate

    for mode, cycles in (("stream", 20_000), ("drive", 3000)):
        res = simulate(spec, impl=impl, cycles=cycles, seed=7, mode=mode, streams=conv_streams_from_digits(spec),
                       build_dir=tmp_path / mode)
        assert res.mismatches == 0, res.first_mismatch


@pytest.mark.slow
@needs_iverilog
@pytest.mark.parametrize("spec, impl", [("a=fp8_e4m3,b=fp8_e4m3,acc=e5m6", "pipeline=2"), (CHUNK, None),
                                        ("a=fp8_e4m3,b=fp8_e4m3,acc=e5m6,order=ilv3", None)])
def test_units_exhaustive_fp8_pairs(spec, impl, tmp_path):
    from psum.hw.verify import simulate

    res = simulate(spec, impl=impl, cycles=1, exhaustive=True, build_dir=tmp_path)
    assert res.mismatches == 0, res.first_mismatch


# ---------------------------------------------------------------------------------------------
# Operand streams recorded from a real network layer (LeNet5 conv2 on digits)
# ---------------------------------------------------------------------------------------------
@needs_iverilog
@pytest.mark.parametrize("spec", [CHUNK, pytest.param(ILV, marks=pytest.mark.slow),
                                  pytest.param(MTA, marks=pytest.mark.slow)])
def test_recorded_layer_streams_order_units(spec, tmp_path):
    """Recorded conv2 streams (K = 150) in Icarus: zero mismatches, and every dot product's
    result after flush equals accumulate_order's for the same operands."""
    from psum.golden.emulation.record import as_streams, record_streams
    from psum.hw.verify import simulate
    from psum.nets.data import input_channels, load_dataset
    from psum.nets.train import load_checkpoint

    net, _ = load_checkpoint("lenet5", "digits")
    ds = load_dataset("digits", "test", channels=input_channels("lenet5", "digits"))
    x = torch.stack([ds[i][0] for i in range(4)])
    streams = as_streams(record_streams(net, spec, "conv2", x, n_outputs=4, seed=1))
    res = simulate(spec, cycles=1, streams=streams, build_dir=tmp_path / "build")
    assert res.mismatches == 0, res.first_mismatch
    spec = MacSpec.parse(spec)
    stim = stream_cycles(spec, streams)
    stim["rst"] = np.zeros(len(stim["en"]), np.uint64)
    key = "acc" if spec.order.kind == "ilv" else "acc2"
    want = _emulated(spec, streams, spec.acc if key == "acc" else spec.acc2)
    assert _results_after_flush(spec, stim, expected_outputs(spec, stim), key) == want


# ---------------------------------------------------------------------------------------------
# The ilv<L> order in the emulation, against a scalar mac_step loop (the semantics as written)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["a=fp16,b=fp16,acc=fp16,order=ilv3",
                                  "a=fp8_e4m3,b=fp8_e4m3,acc=e5m3,order=ilv4,round=rtz",
                                  "a=fp8_e4m3,b=fp8_e4m3,acc=e5m4,order=ilv2,round=sr,srbits=4",
                                  "a=int8,b=int8,acc=int12,order=ilv3,overflow=sat",
                                  "a=fp8_e4m3,b=fp8_e4m3,acc=e5m4,order=ilv1"])
def test_ilv_emulation_equals_scalar_steps(text):
    from psum.golden import mac_step
    from psum.golden.emulation.kernels import codes, sr_rand
    from psum.golden.spec import add_spec

    spec = MacSpec.parse(text)
    L, M, N = spec.order.length, 3, 4
    seq, sadd = spec.replace(order="seq"), add_spec(spec, spec.acc)
    rng = np.random.default_rng(L)
    one = lambda v: np.array([v], np.uint64)  # noqa: E731

    def rand(k, idx):
        return sr_rand(5, idx, k, spec.sr_bits) if spec.sr_bits else None

    for K in (0, 1, L - 1, L + 1, 2 * L + 3):
        scale = 8 if spec.int_acc else 2
        A = torch.tensor(spec.a.decode(codes(spec.a, rng.standard_normal((M, K)) * scale)))
        B = torch.tensor(spec.b.decode(codes(spec.b, rng.standard_normal((K, N)) * scale)))
        I0 = torch.tensor(spec.acc.decode(codes(spec.acc, rng.standard_normal((M, N)))))
        got = codes(spec.acc, accumulate_order(spec, A, B, I0, seed=5).numpy())
        ac, bc, ic = codes(spec.a, A.numpy()), codes(spec.b, B.numpy()), codes(spec.acc, I0.numpy())
        for m in range(M):
            for n in range(N):
                idx = m * N + n  # the default row_base / col_stride element index
                s = [int(ic[m, n])] + [0] * (L - 1)
                for k in range(K):
                    r = rand(k, idx)
                    s[k % L] = int(mac_step(seq, one(s[k % L]), ac[m, k:k + 1], bc[k:k + 1, n],
                                            rand=None if r is None else np.atleast_1d(r))[0])
                out = s[0]
                for j in range(1, L):
                    r = rand(K + j - 1, idx)
                    out = int(mac_step(sadd, one(out), one(s[j]), one(1), rand=None if r is None else np.atleast_1d(r))[0])
                assert int(got[m, n]) == out, (K, m, n)
