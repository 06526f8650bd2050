"""Datasets (digits split, CIFAR/ImageNet folder readers and their error messages) and models."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from psum.nets.data import DATASETS, dataset_info, input_channels, load_dataset
from psum.errors import PsumError
from psum.nets.models import MODELS, build_model, default_width, mac_layers


# -- digits ------------------------------------------------------------------------------------
def test_digits_split_sizes_and_shapes():
    train = load_dataset("digits", "train")
    test = load_dataset("digits", "test")
    assert len(train) == 1437 and len(test) == 360
    x, y = test.tensors
    assert x.shape == (360, 1, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    # stratified: every class has 35-37 test images
    counts = torch.bincount(y, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37


def test_digits_normalisation_matches_info():
    x = load_dataset("digits", "train").tensors[0]
    assert abs(float(x.mean())) < 1e-3 and abs(float(x.std()) - 1) < 1e-3


def test_digits_three_channels_repeat_grey():
    x1 = load_dataset("digits", "test").tensors[0]
    x3 = load_dataset("digits", "test", channels=3).tensors[0]
    assert x3.shape == (360, 3, 32, 32)
    assert torch.equal(x3[:, 2], x1[:, 0])


def test_digits_split_is_fixed():
    a = load_dataset("digits", "test").tensors[1]
    b = load_dataset("digits", "test").tensors[1]
    assert torch.equal(a, b)
    assert a[:10].tolist() == load_dataset("digits", "test").tensors[1][:10].tolist()


def test_input_channels():
    assert input_channels("lenet5", "digits") == 1
    assert input_channels("resnet18", "digits") == 3
    assert input_channels("lenet5", "cifar10") == 3


def test_dataset_info_and_bad_names():
    assert dataset_info("imagenet").topk == (1, 5)
    assert dataset_info("cifar100").num_classes == 100
    assert set(DATASETS) == {"digits", "cifar10", "cifar100", "imagenet"}
    with pytest.raises(ValueError, match=r"^dataset must be one of digits, cifar10, cifar100, imagenet, not 'mnist'$"):
        dataset_info("mnist")
    with pytest.raises(ValueError, match=r"^split must be 'train' or 'test', not 'val'$"):
        load_dataset("digits", "val")
    with pytest.raises(ValueError, match=r"^channels for digits must be 1 or 3, not 2$"):
        load_dataset("digits", "test", channels=2)


# -- CIFAR -------------------------------------------------------------------------------------
def test_cifar10_needs_data_dir():
    with pytest.raises(FileNotFoundError) as e:
        load_dataset("cifar10", "test")
    assert str(e.value) == ("cifar10 needs --data-dir DIR with DIR/cifar-10-batches-py/{data_batch_1..5,test_batch} "
                            "(CIFAR-10 python version, untarred); psum never downloads")


def test_cifar10_missing_folder_message(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        load_dataset("cifar10", "train", tmp_path)
    assert str(e.value) == (f"cifar10: missing {tmp_path}/cifar-10-batches-py/data_batch_1; expected "
                            "DIR/cifar-10-batches-py/{data_batch_1..5,test_batch} (CIFAR-10 python version, untarred)")
    with pytest.raises(FileNotFoundError, match=r"^cifar100: .*nowhere is not a folder; expected DIR/cifar-100-python/"):
        load_dataset("cifar100", "test", tmp_path / "nowhere")


def _write_cifar10(root, n=4):
    base = root / "cifar-10-batches-py"
    base.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(range(n))}
        with open(base / name, "wb") as fh:
            pickle.dump(entry, fh)
    return base


def test_cifar10_pickle_reader(tmp_path):
    base = _write_cifar10(tmp_path)
    train = load_dataset("cifar10", "train", tmp_path)
    test = load_dataset("cifar10", "test", base)  # the inner folder works too
    assert len(train) == 20 and len(test) == 4
    x, y = test.tensors
    assert x.shape == (4, 3, 32, 32) and y.tolist() == [0, 1, 2, 3]
    with open(base / "test_batch", "rb") as fh:
        raw = pickle.load(fh, encoding="bytes")[b"data"][1].reshape(3, 32, 32)
    info = dataset_info("cifar10")
    expect = (raw[0, 5, 7] / 255.0 - info.mean[0]) / info.std[0]
    assert abs(float(x[1, 0, 5, 7]) - expect) < 1e-6  # channel-major rows, like the CIFAR files


def test_cifar10_malformed_pickle(tmp_path):
    base = _write_cifar10(tmp_path)
    (base / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(PsumError, match=r"^cifar10: .*test_batch is not a cifar10 python pickle \(UnpicklingError\); "
                                        r"expected DIR/cifar-10-batches-py/"):
        load_dataset("cifar10", "test", tmp_path)


# -- ImageNet folders --------------------------------------------------------------------------
def test_imagenet_folder_reader(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(1)
    for split in ("train", "val"):
        for wnid in ("n01440764", "n01443537"):
            (tmp_path / split / wnid).mkdir(parents=True)
            Image.fromarray(rng.integers(0, 256, (300, 260, 3), dtype=np.uint8)).save(tmp_path / split / wnid / "a.JPEG")
    ds = load_dataset("imagenet", "test", tmp_path)
    assert len(ds) == 2
    x, y = ds[1]
    assert tuple(x.shape) == (3, 224, 224) and y == 1


def test_imagenet_missing_val_message(tmp_path):
    (tmp_path / "train" / "n0").mkdir(parents=True)
    with pytest.raises(FileNotFoundError) as e:
        load_dataset("imagenet", "test", tmp_path)
    assert str(e.value) == (f"imagenet: missing {tmp_path}/val; expected DIR/{{train,val}}/<wnid>/*.JPEG "
                            "(ImageFolder layout, val sorted into class folders)")


# -- models ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,chans,size,width", [
    ("lenet5", 1, 32, 1.0), ("lenet5", 3, 32, 1.0), ("alexnet", 3, 32, 0.125), ("alexnet", 3, 32, 1.0),
    ("resnet18", 3, 32, 0.25), ("resnet18-imagenet", 3, 224, 0.125),
])
def test_model_forward_shape(name, chans, size, width):
    torch.manual_seed(0)
    net = build_model(name, 10, chans, width=width).eval()
    with torch.no_grad():
        out = net(torch.randn(2, chans, size, size))
    assert out.shape == (2, 10)


def test_model_mac_layers_and_sizes():
    assert mac_layers(build_model("lenet5", 10, 1)) == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    assert sum(p.numel() for p in build_model("lenet5", 10, 1).parameters()) == 61706
    alex = build_model("alexnet", 10, 3)
    assert len(mac_layers(alex)) == 8  # 5 conv + 3 fc
    r = build_model("resnet18", 10, 3)
    assert len(mac_layers(r)) == 21 and sum(p.numel() for p in r.parameters()) == 11173962
    # only Conv2d / Linear do MACs
    kinds = {type(m).__name__ for m in r.modules() if list(m.parameters(recurse=False))}
    assert kinds == {"Conv2d", "Linear", "BatchNorm2d"}


def test_default_width():
    assert default_width("lenet5", "digits") == 1.0
    assert default_width("resnet18", "digits") == 0.125
    assert default_width("resnet18", "cifar10") == 1.0


def test_build_model_errors():
    assert set(MODELS) == {"lenet5", "alexnet", "resnet18", "resnet18-imagenet", "vit"}
    with pytest.raises(ValueError, match=r"^model must be one of lenet5, alexnet, resnet18, resnet18-imagenet, vit, not 'vgg'$"):
        build_model("vgg", 10, 3)
    with pytest.raises(ValueError, match=r"^num_classes must be an integer >= 2, not 1$"):
        build_model("lenet5", 1, 3)
    with pytest.raises(TypeError, match=r"^in_channels must be an integer >= 1, not 3.0$"):
        build_model("lenet5", 10, 3.0)
    with pytest.raises(ValueError, match=r"^width must be a number in \(0, 16\], not 0$"):
        build_model("lenet5", 10, 3, width=0)
