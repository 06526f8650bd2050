"""Datasets: the built-in digits default, CIFAR-10/100 and ImageNet from local folders.

Nothing is ever downloaded. ``digits`` is scikit-learn's copy of the UCI handwritten digits
(1,797 greyscale 8×8 images, 10 classes, shipped inside scikit-learn), resized to 32×32 with
bilinear interpolation, scaled to [0, 1] and normalised with the training split's mean and
standard deviation. The split is fixed: stratified 80/20 with seed 0, giving **1,437 training and
360 test images**. Models with 3 input channels (AlexNet, ResNet18) get the grey channel repeated.

CIFAR and ImageNet are read from ``data_dir``:

============  ==========================================================================================
dataset       expected layout under ``data_dir`` (the folder itself may also be the inner folder)
============  ==========================================================================================
cifar10       ``cifar-10-batches-py/{data_batch_1..5,test_batch}`` (the "python version" tarball, untarred)
cifar100      ``cifar-100-python/{train,test}`` (the "python version" tarball, untarred)
imagenet      ``{train,val}/<wnid>/*.JPEG`` (ImageFolder layout: val sorted into class folders too)
============  ==========================================================================================

When torchvision imports, its ``CIFAR10``/``CIFAR100``/``ImageFolder`` readers are used; otherwise
psum's own readers of the same files (torchvision's PyPI wheels do not import beside the CPU torch
psum pins, so here the fallbacks are what runs). ImageNet images are resized (shorter side 256) and
centre-cropped to 224×224, both splits alike; psum does not do ImageNet training augmentation.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pickle
from pathlib import Path

from psum.errors import PsumError

__all__ = ["DATASETS", "DatasetInfo", "dataset_info", "load_dataset", "input_channels", "expected_layout"]

DATASETS = ("digits", "cifar10", "cifar100", "imagenet")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a dataset.

    Attributes
    ----------
    name : str
    num_classes : int
    channels : int
        Native input channels (1 for digits).
    size : int
        Image side in pixels after preprocessing.
    mean, std : tuple of float
        Per-channel normalisation (digits: measured on its training split).
    topk : tuple of int
        Accuracies reported by sweeps: (1,) or (1, 5) for ImageNet.
    needs_data_dir : bool
        Whether the data must be supplied with ``data_dir``.
    """

    name: str
    num_classes: int
    channels: int
    size: int
    mean: tuple
    std: tuple
    topk: tuple = (1,)
    needs_data_dir: bool = True


_INFO = {
    # digits mean/std: of the 1,437 training images after resizing to 32x32 and scaling to [0, 1]
    # (recomputed and checked by the tests).
    "digits": DatasetInfo("digits", 10, 1, 32, (0.30538,), (0.32365,), needs_data_dir=False),
    "cifar10": DatasetInfo("cifar10", 10, 3, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": DatasetInfo("cifar100", 100, 3, 32, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagenet": DatasetInfo("imagenet", 1000, 3, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), topk=(1, 5)),
}

_LAYOUT = {
    "cifar10": "DIR/cifar-10-batches-py/{data_batch_1..5,test_batch} (CIFAR-10 python version, untarred)",
    "cifar100": "DIR/cifar-100-python/{train,test} (CIFAR-100 python version, untarred)",
    "imagenet": "DIR/{train,val}/<wnid>/*.JPEG (ImageFolder layout, val sorted into class folders)",
}


def _check_name(name: str) -> str:
    if name not in _INFO:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, not {name!r}")
    return name


def dataset_info(name: str) -> DatasetInfo:
    """Classes, channels, image size, normalisation and reported top-k of a dataset.

    Raises
    ------
    ValueError
        Unknown dataset name.
    """
    return _INFO[_check_name(name)]


def expected_layout(name: str) -> str:
    """The folder layout ``data_dir`` must have for ``name`` (one line)."""
    return _LAYOUT.get(_check_name(name), "built in (no data_dir)")


def input_channels(model: str, dataset: str) -> int:
    """Input channels a model gets on a dataset: digits is grey, repeated ×3 except for LeNet5."""
    info = dataset_info(dataset)
    if dataset == "digits" and model != "lenet5":
        return 3
    return info.channels


def load_dataset(name: str, split: str, data_dir=None, *, channels: int | None = None):
    """A dataset split as a torch ``Dataset`` of ``(image, label)`` pairs, normalised.

    Parameters
    ----------
    name : {"digits", "cifar10", "cifar100", "imagenet"}
    split : {"train", "test"}
        ``"test"`` is the test set (ImageNet: the ``val`` folder).
    data_dir : str or Path, optional
        Folder with the files (see the module docstring); unused for digits.
    channels : int, optional
        Input channels wanted: the native count (default) or 3 for grey digits (repeated).

    Returns
    -------
    torch.utils.data.Dataset
        A ``TensorDataset`` (float32 images ``N×C×H×W``, int64 labels) for digits and CIFAR; a lazy
        folder dataset for ImageNet. ``len()`` works on both.

    Raises
    ------
    ValueError
        Unknown name, split or channel count.
    FileNotFoundError
        ``data_dir`` missing or without the expected files; the message gives the layout.
    psum.errors.PsumError
        Files present but not in the expected format.
    """
    info = dataset_info(name)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    if channels is None:
        channels = info.channels
    if channels != info.channels and not (info.channels == 1 and channels == 3):
        raise ValueError(f"channels for {name} must be {info.channels}"
                         f"{' or 3' if info.channels == 1 else ''}, not {channels!r}")
    if name == "digits":
        import torch

        x, y = _digits(split)
        if channels == 3:
            x = x.expand(-1, 3, -1, -1).contiguous()
        return torch.utils.data.TensorDataset(x, y)
    root = _require_dir(name, data_dir)
    if name in ("cifar10", "cifar100"):
        return _cifar(name, split, root)
    return _imagenet(split, root)


# ---------------------------------------------------------------------------------------------
# digits
# ---------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=2)
def _digits(split: str):
    """Normalised 1×32×32 digits of one split (cached: both splits cost ~20 ms)."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    idx = np.arange(len(d.target))
    # Why stratified with a fixed seed: every class keeps its share in both splits and the split is
    # identical on every machine, so accuracies are comparable across runs.
    train_idx, test_idx = train_test_split(idx, test_size=0.2, stratify=d.target, random_state=0)
    pick = train_idx if split == "train" else test_idx
    images = torch.from_numpy(d.images[pick].astype(np.float32) / 16.0).unsqueeze(1)  # [0, 1]
    images = F.interpolate(images, size=(32, 32), mode="bilinear", align_corners=False)
    info = _INFO["digits"]
    images = (images - info.mean[0]) / info.std[0]
    return images.contiguous(), torch.from_numpy(d.target[pick].astype(np.int64))


# ---------------------------------------------------------------------------------------------
# folders: CIFAR and ImageNet
# ---------------------------------------------------------------------------------------------
def _require_dir(name: str, data_dir) -> Path:
    if data_dir is None or str(data_dir) == "":
        raise FileNotFoundError(f"{name} needs --data-dir DIR with {_LAYOUT[name]}; psum never downloads")
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{name}: {root} is not a folder; expected {_LAYOUT[name]}")
    return root


def _torchvision():
    try:
        import torchvision  # noqa: F401

        return torchvision
    except Exception:  # not installed, or installed but built against another torch
        return None


def _cifar_files(name: str, split: str, root: Path) -> tuple[Path, list[Path]]:
    inner = "cifar-10-batches-py" if name == "cifar10" else "cifar-100-python"
    base = root if root.name == inner else root / inner
    if name == "cifar10":
        names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    else:
        names = [split]
    files = [base / n for n in names]
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"{name}: missing {missing[0]}; expected {_LAYOUT[name]}")
    return base, files


def _cifar(name: str, split: str, root: Path):
    import numpy as np
    import torch

    base, files = _cifar_files(name, split, root)
    tv = _torchvision()
    if tv is not None:
        cls = tv.datasets.CIFAR10 if name == "cifar10" else tv.datasets.CIFAR100
        ds = cls(str(base.parent), train=split == "train", download=False)
        data, labels = np.asarray(ds.data), np.asarray(ds.targets)  # N×32×32×3 uint8
    else:
        label_key = b"labels" if name == "cifar10" else b"fine_labels"
        chunks, labels = [], []
        for f in files:
            try:
                with open(f, "rb") as fh:
                    entry = pickle.load(fh, encoding="bytes")
                chunks.append(np.asarray(entry[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
                labels.extend(entry[label_key])
            except (pickle.UnpicklingError, KeyError, EOFError, ValueError, TypeError, AttributeError) as exc:
                raise PsumError(f"{name}: {f} is not a {name} python pickle ({type(exc).__name__}); "
                                f"expected {_LAYOUT[name]}") from None
        data = np.concatenate(chunks).transpose(0, 2, 3, 1)
        labels = np.asarray(labels)
    info = _INFO[name]
    x = torch.from_numpy(np.ascontiguousarray(data)).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(info.mean).view(1, 3, 1, 1)
    std = torch.tensor(info.std).view(1, 3, 1, 1)
    x = ((x - mean) / std).contiguous()
    return torch.utils.data.TensorDataset(x, torch.from_numpy(labels.astype(np.int64)))


_IMAGE_EXT = (".jpeg", ".jpg", ".png", ".bmp", ".ppm", ".webp")


class ImageFolderDataset:
    """A minimal ImageFolder: ``root/<class>/<image>``, classes sorted, resize 256 + centre crop 224.

    Parameters
    ----------
    root : Path
        The split folder.
    classes : list of str
        Class folder names, in label order (taken from ``train`` so both splits agree).
    mean, std : tuple of float
        Per-channel normalisation.
    """

    def __init__(self, root: Path, classes: list[str], mean, std, size: int = 224, resize: int = 256):
        self.root, self.classes, self.size, self.resize = root, classes, size, resize
        self.mean, self.std = mean, std
        self.samples = []
        for label, cls in enumerate(classes):
            folder = root / cls
            if not folder.is_dir():
                continue
            for f in sorted(os.listdir(folder)):
                if f.lower().endswith(_IMAGE_EXT):
                    self.samples.append((folder / f, label))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i):
        import numpy as np
        import torch
        from PIL import Image

        path, label = self.samples[i]
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            s = self.resize / min(w, h)  # shorter side -> 256, aspect kept
            im = im.resize((max(self.resize, round(w * s)), max(self.resize, round(h * s))), Image.BILINEAR)
            w, h = im.size
            left, top = (w - self.size) // 2, (h - self.size) // 2
            im = im.crop((left, top, left + self.size, top + self.size))
            x = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1)
        mean = torch.tensor(self.mean).view(3, 1, 1)
        std = torch.tensor(self.std).view(3, 1, 1)
        return (x - mean) / std, label


def _imagenet(split: str, root: Path):
    folder = root / ("train" if split == "train" else "val")
    if not folder.is_dir():
        raise FileNotFoundError(f"imagenet: missing {folder}; expected {_LAYOUT['imagenet']}")
    class_root = root / "train" if (root / "train").is_dir() else folder
    classes = sorted(e.name for e in os.scandir(class_root) if e.is_dir())
    if not classes:
        raise FileNotFoundError(f"imagenet: no class folders in {class_root}; expected {_LAYOUT['imagenet']}")
    info = _INFO["imagenet"]
    tv = _torchvision()
    if tv is not None:
        from torchvision import transforms as T

        tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(info.mean, info.std)])
        return tv.datasets.ImageFolder(str(folder), transform=tf)
    ds = ImageFolderDataset(folder, classes, info.mean, info.std)
    if len(ds) == 0:
        raise FileNotFoundError(f"imagenet: no images in {folder}/<wnid>/; expected {_LAYOUT['imagenet']}")
    return ds
