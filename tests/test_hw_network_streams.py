"""RTL against golden on operand streams recorded from a real network layer.

LeNet5 (the committed digits checkpoint) is emulated with each spec; ``record_streams`` captures
the operand codes and bias load of real conv2 / fc1 output elements; the generated Verilog replays
them in Icarus and every cycle must match ``mac_step`` (zero mismatches). (``record_streams``'s own
tests show the same ``mac_step`` sequence ends at the emulated layer's accumulator.)
"""

import pytest
import torch

from psum.nets.data import input_channels, load_dataset
from psum.golden.emulation.record import as_streams, record_streams
from psum.hw.verify import simulate
from psum.nets.train import load_checkpoint


@pytest.fixture(scope="module")
def lenet5_and_images():
    net, _ = load_checkpoint("lenet5", "digits")
    ds = load_dataset("digits", "test", channels=input_channels("lenet5", "digits"))
    return net, torch.stack([ds[i][0] for i in range(8)])


@pytest.mark.parametrize("spec, layer", [
    ("a=int8,b=int8,acc=int18,overflow=sat", "conv2"),
    ("a=fp8_e4m3,b=fp8_e4m3,acc=e4m4", "conv2"),
    ("a=fp8_e4m3,b=fp8_e4m3,acc=e5m3,round=rtz", "fc1"),
], ids=["int18sat-conv2", "e4m4-conv2", "e5m3rtz-fc1"])
def test_recorded_layer_streams_bit_exact_in_icarus(lenet5_and_images, spec, layer, tmp_path):
    net, x = lenet5_and_images
    rec = record_streams(net, spec, layer, x, n_outputs=6, seed=1)
    res = simulate(spec, cycles=1, streams=as_streams(rec), build_dir=tmp_path / "build")
    assert res.mismatches == 0, res.first_mismatch
    assert res.cycles_checked >= rec["a"].size
