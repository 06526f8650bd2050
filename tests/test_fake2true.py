"""The fake-quantised graph's float arithmetic is bit-exact (checked against psum.golden's
encode/decode and mac_step), and the comparison / report section work end to end on a tiny net."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from psum.quant.fake2true import FakeGraph, FloatArith, compare, format_table, parse_remedies, run_fake2true, \
    write_fake2true_section
from psum.golden import MacSpec, mac_step, parse_format
from psum.golden.stimulus import random_codes
from psum.quant.intprog import compile_program
from psum.quant.qat import calibrate, prepare_qat

FORMATS = ["bf16", "fp16", "e8m10", "e5m2", "e4m3_ftz", "tf32"]


def _values(fmt, n, seed):
    """Finite values of ``fmt``: random codes plus near-midpoint-heavy small integers times 2**k."""
    rng = np.random.default_rng(seed)
    codes = random_codes(fmt, n, rng, finite_only=True)
    v = fmt.decode(codes)
    return torch.from_numpy(v)


@pytest.mark.parametrize("name", FORMATS + ["fp32"])
def test_round_matches_golden_encode(name):
    fmt = parse_format(name)
    ar = FloatArith(fmt)
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(4000) * 2.0 ** rng.integers(-30, 30, 4000),
                        fmt.decode(random_codes(fmt, 500, rng, finite_only=True)) * (1 + 2.0 ** -(fmt.man_bits + 1)),
                        [fmt.max_value * 1.5, -fmt.max_value * 3, 0.0]])
    want = fmt.decode(fmt.encode(x))
    got = ar.q(torch.from_numpy(x)).double().numpy()
    assert np.array_equal(got, want, equal_nan=True)


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("fused", [False, True])
def test_mac_arith_equals_mac_step(name, fused):
    fmt = parse_format(name)
    ar = FloatArith(fmt)
    spec = MacSpec(a=fmt, b=fmt, acc=fmt) if fused else MacSpec(a=fmt, b=fmt, acc=fmt, prod=fmt, fused=False)
    a, b, c = (_values(fmt, 3000, s) for s in (1, 2, 3))
    # add cases where the product and accumulator nearly cancel or tie
    c[:500] = -ar.q(a[:500] * b[:500]).double()
    c[500:1000] = ar.q(a[500:1000] * b[500:1000] * (1 + 2.0 ** -(fmt.man_bits + 1))).double()
    got = (ar.fma(c, a, b) if fused else ar.add(c, ar.mul(a, b))).double().numpy()
    codes = mac_step(spec, fmt.encode(c.numpy()), fmt.encode(a.numpy()), fmt.encode(b.numpy()))
    want = fmt.decode(codes)
    finite = np.isfinite(want)
    assert np.array_equal(got[finite], want[finite])
    assert np.array_equal(np.isinf(got), np.isinf(want))


@pytest.mark.parametrize("name", ["fp32", "bf16", "fp16", "e8m10", "e8m3", "e5m2"])
def test_layer_accumulation_equals_mac_step_sequence(name):
    """The vectorised layer loop (native binary32, the binary32 fast path, or the exact float64 path)
    equals a scalar run of mac_step per output element (unfused: prod=F, fused=no)."""
    fmt = parse_format(name)
    spec = MacSpec(a=fmt, b=fmt, acc=fmt, prod=fmt, fused=False)
    rng = np.random.default_rng(5)
    ar = FloatArith(fmt)
    mk = lambda *shape: ar.q(torch.from_numpy(rng.standard_normal(shape) * 0.3)).double()  # noqa: E731
    cols, w, bias = mk(7, 30), mk(3, 30), mk(3)
    g = FakeGraph.__new__(FakeGraph)
    g.ar, g.fused = ar, False
    assert ar.fast_ok(cols, w, bias) == (name in ("bf16", "fp16", "e8m10", "e8m3"))
    got = g.accumulate(cols, w, bias).numpy()
    for r in range(7):
        for c in range(3):
            acc = fmt.encode(bias[c].item())
            for k in range(30):
                acc = mac_step(spec, acc, fmt.encode(cols[r, k].item()), fmt.encode(w[c, k].item()))
            assert fmt.decode(acc) == got[r, c]


@pytest.mark.parametrize("name", ["bf16", "e8m10", "e5m2", "e4m3_ftz"])
def test_overflow_follows_the_formats_policy(name):
    """The fake graph's overflow is the rule book's (FloatFormat.overflow_codes for rne)."""
    fmt = parse_format(name)
    ar = FloatArith(fmt)
    pos, neg = fmt.decode(np.array(fmt.overflow_codes("rne", False), dtype=np.uint64))
    big = torch.tensor([fmt.max_value * 4, -fmt.max_value * 4], dtype=torch.float64)
    assert ar.q(big).tolist() == [pos, neg]
    one = torch.ones(2, dtype=torch.float64)
    assert ar.add(big, one).tolist() == [pos, neg]


def test_float_arith_errors():
    with pytest.raises(ValueError, match="the fake-quantised graph needs a float format, not int8"):
        FloatArith("int8")
    with pytest.raises(ValueError, match="format e8m30: the fake-graph emulation supports fp64, fp32"):
        FloatArith("e8m30")
    with pytest.raises(ValueError, match="a fused fake graph in fp32 is not supported; use the unfused one"):
        FloatArith("fp32").fma(torch.zeros(1), torch.zeros(1), torch.zeros(1))


def test_parse_remedies():
    assert parse_remedies("none") == ()
    assert parse_remedies("fold,pow2") == ("pow2", "fold")
    assert parse_remedies("all") == ("pow2", "rescale64", "fold", "zero")
    with pytest.raises(ValueError, match="remedy must be one of none, pow2, rescale64, fold, zero, all, not 'magic'"):
        parse_remedies("magic")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3), nn.ReLU(),
                        nn.Flatten(), nn.Linear(6 * 2 * 2, 5)).eval()
    x = torch.randn(24, 1, 8, 8)
    y = net(x).argmax(1)
    q = prepare_qat(net)
    calibrate(q, [x])
    return q, x, y


def test_compare_structure_and_fp64_exact_with_zero_and_fold(tiny):
    q, x, y = tiny
    res = run_fake2true(q, {"model": "tiny", "dataset": "rand"}, x, y, ["fp64", "fp32", "bf16"],
                        remedies="fold,rescale64,zero")
    assert res["n_images"] == 24 and res["remedies"] == ["rescale64", "fold", "zero"]
    for f in ("fp64", "fp32"):  # integer codes, exact sums, the integer program's own multiplier
        r = res["formats"][f]
        assert r["mismatch_all"] == 0 and r["pred_diff"] == 0 and r["top1_fake"] == r["top1_int"]
    assert [L["name"] for L in res["formats"]["bf16"]["layers"]] == ["0", "3", "6"]
    assert "fp64" in format_table(res)


def test_bf16_fake_graph_mismatches_more_than_fp32(tiny):
    q, x, y = tiny
    res = compare(q.export(), x, y, ["fp32", "bf16"])
    assert res["formats"]["bf16"]["mismatch_all"] > res["formats"]["fp32"]["mismatch_all"]
    hist = res["formats"]["bf16"]["layers"][1]["hist"]
    assert sum(hist.values()) > 0 and all(k != "0" for k in hist)


def test_fused_bf16_runs_and_differs_from_unfused(tiny):
    q, x, _ = tiny
    prog = compile_program(q.export())
    codes = q.export().input_codes(x)
    a = FakeGraph(prog, "bf16", fused=True).run(codes)
    b = FakeGraph(prog, "bf16", fused=False).run(codes)
    assert a[-1].shape == b[-1].shape == (24, 5)
    # the name's promise: one rounding per step instead of two changes some output code
    assert any(bool((x != y).any()) for x, y in zip(a, b))


def test_write_section(tiny, tmp_path):
    q, x, y = tiny
    res = run_fake2true(q, {"model": "tiny", "dataset": "rand"}, x[:8], y[:8], ["fp32", "fp16"])
    paths = write_fake2true_section([res], tmp_path / "sec")
    md = open(paths["markdown"]).read()
    assert "| format | top1 fake % |" in md and "fake2true.png" in md
    assert json.loads(open(paths["json"]).read())[0]["model"] == "tiny"
    assert (tmp_path / "sec" / "fake2true.png").stat().st_size > 1000
    assert (tmp_path / "sec" / "fake2true.svg").is_file()
