"""Networks at a chosen width (issue 13 item 6): checkpoint names, width checks, bfloat16 storage,
``--width`` on the command line.

Fast tests use LeNet5 at width 0.5 (a few hundred images, seconds). The end-to-end run of ResNet18 at
width 1 is slow (a minute or more on 2 cores): ``pytest -m slow tests/test_width.py``.
"""

from __future__ import annotations

import shutil

import pytest
import torch

from psum.cli.main import main
from psum.errors import PsumError
from psum.nets.models import mac_layers
from psum.nets.train import (checkpoint_name, checkpoint_path, evaluate, find_checkpoint, load_checkpoint, train,
                             weights_digest, width_checkpoint)


@pytest.fixture(scope="module")
def half_lenet(tmp_path_factory):
    """LeNet5 at width 0.5, one short epoch, stored in bfloat16 under its default (width-named) path."""
    folder = tmp_path_factory.mktemp("ckpt")
    mp = pytest.MonkeyPatch()
    mp.setenv("PSUM_CHECKPOINT_DIR", str(folder))
    try:
        info = train("lenet5", "digits", epochs=1, limit=256, width=0.5, storage="bfloat16", seed=0)
    finally:
        mp.undo()
    return folder, info


# -- names ----------------------------------------------------------------------------------------
def test_checkpoint_name_default_width_keeps_the_plain_name():
    assert checkpoint_name("resnet18", "digits") == "resnet18-digits.pt"
    assert checkpoint_name("resnet18", "digits", 0.125) == "resnet18-digits.pt"  # the digits default
    assert checkpoint_name("lenet5", "digits", 1) == "lenet5-digits.pt"  # lenet5's default is 1
    assert checkpoint_name("resnet18", "cifar10", 1.0) == "resnet18-cifar10.pt"


def test_checkpoint_name_other_width_is_in_the_name():
    assert checkpoint_name("resnet18", "digits", 1) == "resnet18-w1-digits.pt"
    assert checkpoint_name("alexnet", "digits", 1.0) == "alexnet-w1-digits.pt"
    assert checkpoint_name("lenet5", "digits", 0.5) == "lenet5-w0.5-digits.pt"
    assert checkpoint_name("resnet18", "cifar10", 0.25) == "resnet18-w0.25-cifar10.pt"


@pytest.mark.parametrize("width, message", [
    (0, "width must be a finite positive number, not 0"),
    (-1.0, "width must be a finite positive number, not -1.0"),
    (float("inf"), "width must be a finite positive number, not inf"),
    (True, "width must be a finite positive number, not True"),
])
def test_checkpoint_name_bad_width(width, message):
    with pytest.raises(ValueError) as e:
        checkpoint_name("resnet18", "digits", width)
    assert str(e.value) == message


def test_checkpoint_path_under_checkpoint_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PSUM_CHECKPOINT_DIR", str(tmp_path))
    assert checkpoint_path("resnet18", "digits", width=1) == tmp_path / "resnet18-w1-digits.pt"
    assert checkpoint_path("resnet18", "digits") == tmp_path / "resnet18-digits.pt"


def test_train_storage_is_checked_first():
    with pytest.raises(ValueError) as e:
        train("lenet5", "digits", storage="float16")
    assert str(e.value) == "storage must be 'float32' or 'bfloat16', not 'float16'"


# -- training at a width: default path, bfloat16 storage ----------------------------------------------
def test_train_writes_the_width_named_file(half_lenet):
    folder, info = half_lenet
    assert info["path"] == str(folder / "lenet5-w0.5-digits.pt")
    assert not (folder / "lenet5-digits.pt").exists()  # the default-width checkpoint is not replaced
    assert info["width"] == 0.5 and info["storage"] == "bfloat16"


def test_bfloat16_storage_holds_bfloat16_and_its_own_accuracy(half_lenet):
    folder, info = half_lenet
    raw = torch.load(folder / "lenet5-w0.5-digits.pt", weights_only=True)
    floats = {k: v.dtype for k, v in raw["state_dict"].items() if v.is_floating_point()}
    assert floats and set(floats.values()) == {torch.bfloat16}
    assert raw["weights_sha256"] == weights_digest(raw["state_dict"])
    # the recorded accuracy is the accuracy of the stored (rounded) weights, re-measured from the file
    net, meta = load_checkpoint("lenet5", "digits", path=folder / "lenet5-w0.5-digits.pt")
    from psum.nets.data import load_dataset

    assert evaluate(net, load_dataset("digits", "test"))["top1"] == meta["accuracy"]
    assert net.conv1.out_channels == 3 and net.fc1.out_features == 60  # rebuilt at width 0.5
    assert all(p.dtype == torch.float32 for p in net.parameters())  # bf16 -> fp32 is exact


def test_load_checkpoint_finds_and_checks_the_width(half_lenet, monkeypatch):
    folder, _ = half_lenet
    monkeypatch.setenv("PSUM_CHECKPOINT_DIR", str(folder))
    net, meta = load_checkpoint("lenet5", "digits", width=0.5)
    assert meta["path"] == str(folder / "lenet5-w0.5-digits.pt") and meta["width"] == 0.5
    with pytest.raises(PsumError) as e:
        load_checkpoint("lenet5", "digits", width=0.25, path=folder / "lenet5-w0.5-digits.pt")
    assert str(e.value) == f"{folder / 'lenet5-w0.5-digits.pt'} holds lenet5 at width 0.5, not 0.25"


def test_load_checkpoint_missing_width_names_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("PSUM_CHECKPOINT_DIR", str(tmp_path))
    with pytest.raises(PsumError) as e:
        load_checkpoint("lenet5", "cifar10", width=0.5)
    assert str(e.value) == ("no checkpoint for lenet5 at width 0.5 on cifar10; run psum train --model lenet5 "
                            "--dataset cifar10 --width 0.5")


# -- width_checkpoint (--width) ---------------------------------------------------------------------
def test_width_checkpoint_finds_yours(half_lenet, monkeypatch):
    folder, _ = half_lenet
    monkeypatch.setenv("PSUM_CHECKPOINT_DIR", str(folder))
    assert width_checkpoint("lenet5", "digits", 0.5) == folder / "lenet5-w0.5-digits.pt"
    assert find_checkpoint("lenet5", "digits", width=0.5) == folder / "lenet5-w0.5-digits.pt"


def test_width_checkpoint_refuses_a_file_of_another_width(half_lenet, tmp_path, monkeypatch):
    folder, _ = half_lenet
    shutil.copy(folder / "lenet5-w0.5-digits.pt", tmp_path / "lenet5-w0.25-digits.pt")
    monkeypatch.setenv("PSUM_CHECKPOINT_DIR", str(tmp_path))
    with pytest.raises(PsumError) as e:
        width_checkpoint("lenet5", "digits", 0.25)
    assert str(e.value) == f"{tmp_path / 'lenet5-w0.25-digits.pt'} holds lenet5 at width 0.5, not 0.25"


@pytest.mark.parametrize("model, dataset, width, message", [
    ("my.py:build", "digits", 1, "--width needs a built-in model (lenet5, alexnet, resnet18, resnet18-imagenet, "
                                 "vit), not 'my.py:build'"),
    ("resnet18", "imagefolder", 1, "--width needs a built-in dataset (digits, cifar10, cifar100, imagenet), "
                                   "not 'imagefolder'"),
    ("resnet18", "digits", 0, "width must be a finite positive number, not 0"),
])
def test_width_checkpoint_bad_input(model, dataset, width, message):
    with pytest.raises(ValueError) as e:
        width_checkpoint(model, dataset, width)
    assert str(e.value) == message


def test_width_checkpoint_missing_names_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("PSUM_CHECKPOINT_DIR", str(tmp_path))
    with pytest.raises(PsumError) as e:
        width_checkpoint("lenet5", "digits", 0.5)
    assert str(e.value) == ("no checkpoint for lenet5 at width 0.5 on digits; run psum train --model lenet5 "
                            "--dataset digits --width 0.5")


# -- the command line ------------------------------------------------------------------------------
def test_cli_eval_with_width(half_lenet, monkeypatch, capsys):
    folder, info = half_lenet
    monkeypatch.setenv("PSUM_CHECKPOINT_DIR", str(folder))
    assert main(["eval", "--model", "lenet5", "--width", "0.5", "--json"]) == 0
    import json

    row = json.loads(capsys.readouterr().out)
    assert row["accuracy"] == info["accuracy"]  # the width-0.5 weights, not the shipped width-1 ones


def test_cli_sweep_with_width_rows_carry_the_checkpoint(half_lenet, monkeypatch, tmp_path, capsys):
    folder, _ = half_lenet
    monkeypatch.setenv("PSUM_CHECKPOINT_DIR", str(folder))
    out = tmp_path / "rows.jsonl"
    assert main(["sweep", "--model", "lenet5", "--width", "0.5", "--acc", "int16:sat", "--limit", "8",
                 "--out", str(out), "--json"]) == 0
    import json

    rows = json.loads(capsys.readouterr().out)
    assert {r["model"] for r in rows} == {"lenet5"} and len({r["checkpoint"] for r in rows}) == 1
    from psum.nets.user import _file_digest

    assert rows[0]["checkpoint"] == _file_digest(folder / "lenet5-w0.5-digits.pt")


def test_mac_layers_do_not_depend_on_width():
    """Per-layer results of two widths line up: the same layer names at every width."""
    from psum.nets.models import build_model

    assert mac_layers(build_model("resnet18", 10, 3, width=1)) == mac_layers(build_model("resnet18", 10, 3,
                                                                                          width=0.125))


# -- slow: ResNet18 at width 1, end to end on a few images ------------------------------------------
@pytest.mark.slow
def test_resnet18_width1_end_to_end(tmp_path, monkeypatch, capsys):
    """Train ResNet18 at width 1 (64 images, one epoch, bfloat16 storage), then sweep it emulated on
    2 test images through ``--width 1``: the rows come from the width-1 file, rebuilt at width 1."""
    monkeypatch.setenv("PSUM_CHECKPOINT_DIR", str(tmp_path))
    assert main(["train", "--model", "resnet18", "--width", "1", "--epochs", "1", "--limit", "64",
                 "--storage", "bfloat16", "--device", "cpu"]) == 0
    path = tmp_path / "resnet18-w1-digits.pt"
    assert path.is_file() and 20e6 < path.stat().st_size < 25e6  # 11.2 M bfloat16 weights
    net, meta = load_checkpoint("resnet18", "digits", width=1)
    assert net.conv1.out_channels == 64 and net.fc.in_features == 512
    capsys.readouterr()
    assert main(["sweep", "--model", "resnet18", "--width", "1", "--acc", "int24:sat", "--limit", "2",
                 "--layer", "layer4", "--layers-only", "--device", "cpu", "--json"]) == 0
    import json

    from psum.nets.user import _file_digest

    rows = json.loads(capsys.readouterr().out)
    assert rows and all(r["checkpoint"] == _file_digest(path) for r in rows)
