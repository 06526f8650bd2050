"""QAT export and the true integer program: exact requantiser, and the integer program equals a
cycle-by-cycle ``mac_step`` run of the integer MAC's semantics on a real LeNet5 layer."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
from torch import nn

from psum.golden import IntFormat, MacSpec, mac_step
from psum.golden._vector import fit_int, int_to_code
from psum.quant.intprog import _mac_layer, acc_spec, compile_program, quantize_multiplier, requantize
from psum.quant.qat import calibrate, load_quantnet, prepare_qat, save_quantnet


def _round_frac(x: Fraction, ties: str) -> int:
    f = x.numerator // x.denominator
    r = x - f
    if r > Fraction(1, 2) or (r == Fraction(1, 2) and (ties == "up" or f % 2 == 1)):
        return f + 1
    return f


@pytest.mark.parametrize("ties", ["even", "up"])
def test_requantize_matches_fraction_reference(ties):
    rng = np.random.default_rng(1)
    M = np.exp(rng.uniform(np.log(1e-6), np.log(0.9), size=200))
    m, sh = quantize_multiplier(M)
    assert np.all((m >= 2**30) & (m < 2**31))
    assert np.all(np.abs(m / 2.0**sh - M) <= 2.0**-sh)  # nearest dyadic with 31 bits
    acc = rng.integers(-(2**31), 2**31, size=200)
    # exact ties: m = 2**30 and acc odd * 2**(shift-31) give acc*m/2**shift = odd/2
    m[:20], sh[:20] = 2**30, 40
    acc[:20] = (2 * rng.integers(-1000, 1000, size=20) + 1) << 9
    y = requantize(acc, m, sh, lo=-(2**40), hi=2**40, ties=ties)
    ref = [_round_frac(Fraction(int(a) * int(mm), 2**int(s)), ties) for a, mm, s in zip(acc, m, sh)]
    assert y.tolist() == ref


def test_requantize_ties_differ_on_a_half():
    # 3 * 2**30 / 2**31 = 1.5: half-even gives 2, half-up gives 2; 5 * 2**30 / 2**31 = 2.5: 2 vs 3
    assert requantize(5, 2**30, 31, lo=-9, hi=9, ties="even") == 2
    assert requantize(5, 2**30, 31, lo=-9, hi=9, ties="up") == 3
    assert requantize(-5, 2**30, 31, lo=-9, hi=9, ties="up") == -2  # half-up rounds toward +inf


def test_quantize_multiplier_errors():
    with pytest.raises(ValueError, match="rescale factors must be positive and finite, not"):
        quantize_multiplier(-1.0)


def test_acc_spec_errors():
    with pytest.raises(ValueError, match="the integer program needs an integer accumulator such as int32, not fp32"):
        acc_spec("fp32")
    with pytest.raises(ValueError, match=r"the integer program accumulates sequentially \(order=seq\), not order=tree"):
        acc_spec("acc=int32,order=tree")
    spec = acc_spec("acc=int16,overflow=sat")
    assert str(spec) == "a=uint8,b=int8,acc=int16,round=rne,overflow=sat"


def test_prepare_qat_errors():
    with pytest.raises(ValueError, match="w_bits must be an integer between 2 and 8, not 9"):
        prepare_qat(nn.Sequential(nn.Linear(3, 2)), w_bits=9)
    with pytest.raises(ValueError, match="layer 1: Sigmoid is not supported by QAT export"):
        prepare_qat(nn.Sequential(nn.Linear(3, 2), nn.Sigmoid()))


def _tiny_bn_net():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(4, 5, 3, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(5 * 2 * 2, 3))
    with torch.no_grad():  # non-trivial running statistics
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].running_var.uniform_(0.5, 2.0)
        net[1].weight.uniform_(0.5, 1.5)
        net[1].bias.uniform_(-0.2, 0.2)
    return net.eval()


def test_bn_folding_preserves_the_float_function():
    net = _tiny_bn_net()
    q = prepare_qat(net)
    assert [op.kind for op in q.ops] == ["input", "conv", "maxpool", "conv", "flatten", "linear"]
    assert q.ops[1].relu and q.ops[3].relu and not q.ops[5].relu
    x = torch.randn(7, 2, 8, 8)
    q.calibrating = True  # quantisers off: the folded float network
    with torch.no_grad():
        assert torch.allclose(q(x), net(x), atol=1e-5)


def test_quantnet_save_load_roundtrip(tmp_path):
    net = _tiny_bn_net()
    q = prepare_qat(net)
    calibrate(q, [torch.randn(16, 2, 8, 8)])
    qn = q.export(meta={"model": "tiny"})
    save_quantnet(qn, tmp_path / "q.pt")
    back = load_quantnet(tmp_path / "q.pt")
    x = torch.randn(4, 2, 8, 8)
    c = qn.input_codes(x)
    a = compile_program(qn).run(c)["codes"][qn.output]
    b = compile_program(back).run(c)["codes"][back.output]
    assert torch.equal(a, b) and back.meta["model"] == "tiny"
    with pytest.raises(FileNotFoundError, match="no quantised network at"):
        load_quantnet(tmp_path / "missing.pt")


def test_integer_program_tracks_the_fake_quantised_qat_graph():
    # The float32 QAT forward and the integer program agree up to a few codes.
    net = _tiny_bn_net()
    q = prepare_qat(net)
    x = torch.randn(32, 2, 8, 8)
    calibrate(q, [x])
    qn = q.export(zero_exact=True)
    logits = compile_program(qn).run(qn.input_codes(x))["codes"][qn.output]
    with torch.no_grad():
        fake = torch.round(q(x) / qn.nodes[qn.output].out.scale).to(torch.int64)
    # differences come from float32 vs integer arithmetic and the nudged zero point, a few codes
    assert (logits - fake).abs().max() <= 3
    assert (logits.argmax(1) == fake.argmax(1)).double().mean() > 0.8


@pytest.fixture(scope="module")
def lenet():
    """LeNet5 (psum.nets.models) with weights from a short fit, calibrated on digits images, exported."""
    from psum.nets.data import load_dataset
    from psum.nets.models import build_model

    torch.manual_seed(0)
    net = build_model("lenet5", 10, 1).eval()
    x = load_dataset("digits", "train").tensors[0][:64]
    q = prepare_qat(net)
    calibrate(q, [x])
    qn = q.export()
    return qn, compile_program(qn), qn.input_codes(x[:3])


@pytest.mark.parametrize("acc", ["int32", "acc=int14,overflow=wrap", "acc=int14,overflow=sat"])
@pytest.mark.parametrize("layer", ["conv1", "conv2", "fc1"])
def test_integer_program_equals_mac_step_cycle_by_cycle(lenet, acc, layer):
    """Load the bias code, then one ``mac_step`` per product in the reduction order (Conv2d:
    (in_channel, kh, kw); Linear: input index), for a few output elements of a real layer."""
    qn, prog, codes = lenet
    res = prog.run(codes, acc=acc, keep_acc=True)
    i = [L.name for L in prog.layers].index(layer)
    L = prog.layers[i]
    spec = prog.spec_for(i, acc)
    assert isinstance(spec, MacSpec) and spec.a == IntFormat(8, signed=False) and spec.b == IntFormat(8)
    x = res["codes"][L.inputs[0]]
    got = res["acc"][layer]
    rng = np.random.default_rng(0)
    wrapped = 0
    for _ in range(6):
        n = int(rng.integers(x.shape[0]))
        c = int(rng.integers(L.weight.shape[0]))
        if L.kind == "conv":
            oh, ow = (int(rng.integers(s)) for s in got.shape[2:])
            xp = torch.nn.functional.pad(x[n].double(), (L.padding[1],) * 2 + (L.padding[0],) * 2,
                                         value=float(L.pad_value)).long()
            kh, kw = L.kernel
            patch = xp[:, oh * L.stride[0]:oh * L.stride[0] + kh, ow * L.stride[1]:ow * L.stride[1] + kw]
            a_seq = patch.reshape(-1).numpy()  # (in_channel, kh, kw) order
            want = int(got[n, c, oh, ow])
        else:
            a_seq = x[n].numpy()
            want = int(got[n, c])
        w_seq = L.weight[c]
        accc = int_to_code(spec.acc, fit_int(spec.acc, np.array(L.bias[c]), spec.saturate))  # load
        exact = int(L.bias[c])
        for a_k, w_k in zip(a_seq, w_seq):
            accc = mac_step(spec, accc, int_to_code(spec.a, np.array(a_k)), int_to_code(spec.b, np.array(w_k)))
            exact += int(a_k) * int(w_k)
        value = int(IntFormat.decode(spec.acc, accc))
        wrapped += value != exact
        assert value == want
    if "int14" in acc and layer == "conv2":
        assert wrapped  # the narrow accumulator really overflows here


def test_wrap_fast_path_equals_sequential_loop():
    rng = np.random.default_rng(3)
    cols = rng.integers(0, 256, size=(50, 40))
    w = rng.integers(-127, 128, size=(6, 40))
    b = rng.integers(-5000, 5000, size=6)
    fast = _mac_layer(cols, w, b, acc_spec("int12"))
    # an integer product format wide enough to be exact forces the step-by-step loop
    slow = _mac_layer(cols, w, b, acc_spec("acc=int12,prod=int32,fused=no"))
    assert np.array_equal(fast, slow)
