"""QAT and the integer program take their code formats as format objects (not literal 8-bit widths).

The defaults (int8 weights, uint8 activations) are pinned bit for bit by tests/test_qat_intprog.py
and tests/test_fake2true.py; here another width runs end to end on a tiny model.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from psum.golden import IntFormat, parse_format
from psum.quant.intprog import compile_program
from psum.quant.qat import (DEFAULT_ACT_FMT, DEFAULT_WEIGHT_FMT, calibrate, load_qat, prepare_qat, save_qat,
                            train_qat)


def _tiny_net():
    torch.manual_seed(3)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 2 * 2, 5)).eval()


def test_defaults_are_the_8bit_formats():
    assert DEFAULT_WEIGHT_FMT == parse_format("int8") and DEFAULT_ACT_FMT == parse_format("uint8")
    q = prepare_qat(_tiny_net())
    assert (q.weight_fmt, q.act_fmt, q.w_bits) == (parse_format("int8"), parse_format("uint8"), 8)
    assert prepare_qat(_tiny_net(), w_bits=4).weight_fmt == parse_format("int4")


def test_uint4_activations_int4_weights_end_to_end(tmp_path):
    net = _tiny_net()
    q = prepare_qat(net, weight_fmt=IntFormat(4), act_fmt="uint4")
    assert q.w_bits == 4 and q.act_fmt == IntFormat(4, signed=False)
    x = torch.randn(24, 2, 8, 8)
    calibrate(q, [x])
    ds = torch.utils.data.TensorDataset(x, torch.randint(0, 5, (24,)))
    train_qat(q, ds, epochs=1, batch_size=8, progress_enabled=False)  # the 4-bit quantisers train
    qn = q.export(zero_exact=True)
    assert qn.meta["w_bits"] == 4 and qn.meta["act_fmt"] == "uint4"
    outs = {n.kind: n.out for n in qn.nodes}
    assert (outs["input"].lo, outs["input"].hi) == (0, 15)
    assert (qn.nodes[qn.output].out.lo, qn.nodes[qn.output].out.hi) == (-7, 7)  # logits: symmetric int4
    assert outs["input"].fmt == parse_format("uint4") and qn.nodes[qn.output].out.fmt == parse_format("int4")
    for n in qn.nodes:
        if n.weight is not None:
            assert n.w_bits == 4 and abs(n.weight).max() <= 7
    prog = compile_program(qn)
    macs = [i for i, L in enumerate(prog.layers) if L.kind in ("conv", "linear")]
    assert [str(prog.spec_for(i)) for i in macs] == ["a=uint4,b=int4,acc=int32,round=rne,overflow=wrap"] * 3
    codes = qn.input_codes(x)
    assert int(codes.min()) >= 0 and int(codes.max()) <= 15
    res = prog.run(codes)["codes"]
    for i, c in enumerate(res):
        L = prog.layers[i]
        assert int(c.min()) >= L.lo and int(c.max()) <= L.hi
    # the integer program tracks the fake-quantised graph on the same 4-bit grids
    with torch.no_grad():
        fake = torch.round(q(x) / qn.nodes[qn.output].out.scale).to(torch.int64)
    assert (res[qn.output] - fake).abs().max() <= 2
    # a QAT checkpoint keeps its formats
    save_qat(q, {"model": "tiny"}, tmp_path / "q.pt")
    back, info = load_qat(tmp_path / "q.pt")
    assert (back.weight_fmt, back.act_fmt) == (IntFormat(4), IntFormat(4, signed=False)) and info == {"model": "tiny"}
    with torch.no_grad():
        assert torch.equal(back(x), q.eval()(x))


@pytest.mark.parametrize("kwargs, message", [
    (dict(act_fmt="int8"), "act_fmt must be an unsigned integer format of 2 to 8 bits such as uint8, not int8"),
    (dict(act_fmt="uint16"), "act_fmt must be an unsigned integer format of 2 to 8 bits such as uint8, not uint16"),
    (dict(act_fmt="fp8_e4m3"), "act_fmt must be an unsigned integer format of 2 to 8 bits such as uint8, not fp8_e4m3"),
    (dict(act_fmt="bogus"), "act_fmt must be an unsigned integer format of 2 to 8 bits such as uint8, not bogus"),
    (dict(weight_fmt="uint4"), "weight_fmt must be a signed integer format of 2 to 8 bits such as int8, not uint4"),
    (dict(weight_fmt=IntFormat(12)), "weight_fmt must be a signed integer format of 2 to 8 bits such as int8, not int12"),
    (dict(weight_fmt="int4", w_bits=4), "give weight_fmt or w_bits, not both"),
    (dict(w_bits=9), "w_bits must be an integer between 2 and 8, not 9"),
])
def test_bad_code_formats(kwargs, message):
    with pytest.raises(ValueError) as info:
        prepare_qat(_tiny_net(), **kwargs)
    assert str(info.value) == message


def test_capture_dispatch_matches_subclasses_and_rejects_the_rest():
    class MyReLU(nn.ReLU):
        pass

    q = prepare_qat(nn.Sequential(nn.Linear(3, 4), MyReLU(), nn.Dropout(0.1), nn.Linear(4, 2)))
    assert [op.kind for op in q.ops] == ["input", "linear", "linear"] and q.ops[1].relu
    with pytest.raises(ValueError) as info:
        prepare_qat(nn.Sequential(nn.Linear(3, 2), nn.Sigmoid()))
    assert str(info.value) == "layer 1: Sigmoid is not supported by QAT export"
