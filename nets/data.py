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

CIFAR batches are read by psum's own reader through a *restricted unpickler* (:func:`read_pickle`):
a CIFAR batch is a pickled dict of bytes, lists of ints and one numpy array, and only the classes
needed to rebuild those are admitted, so a crafted batch in a data folder cannot run code (a plain
``pickle.load``, torchvision's reader included, would run whatever the file names). When torchvision
imports, its ``ImageFolder`` reader is used for ImageNet; otherwise psum's own reader of the same
files (torchvision's PyPI wheels do not import beside the CPU torch psum pins). ImageNet images are
resized (shorter side 256) and centre-cropped to 224×224, both splits alike; psum does not do
ImageNet training augmentation.

A user's own image folder (any number of classes, any image size) is :func:`image_folder`
(``psum eval --dataset imagefolder --data-dir DIR``).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pickle
from pathlib import Path

from psum._util import check_int
from psum.errors import PsumError

__all__ = ["DATASETS", "DatasetInfo", "dataset_info", "load_dataset", "input_channels", "expected_layout",
           "read_pickle", "PICKLE_ALLOWED", "image_folder", "ImageFolderDataset", "IMAGEFOLDER_LAYOUT"]

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
# pickles read as data only
# ---------------------------------------------------------------------------------------------
# (module, name) pairs a restricted unpickle may load: what numpy arrays, their dtypes and
# protocol-2 bytes need (CIFAR's files were written by Python 2's numpy: numpy.core; numpy >= 2
# writes numpy._core). Nothing here can run code: _reconstruct builds an empty array, dtype a
# dtype, _codecs.encode turns a str into bytes.
PICKLE_ALLOWED = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
})


class _DataUnpickler(pickle.Unpickler):
    """An unpickler that builds dicts, lists, tuples, str/bytes, numbers and numpy arrays only."""

    def __init__(self, fh, path, what):
        super().__init__(fh, encoding="bytes")
        self._path, self._what = path, what

    def find_class(self, module, name):
        # Why refuse rather than skip: any other global is how a pickle runs code (os.system,
        # builtins.eval, subprocess.Popen through __reduce__).
        if (module, name) not in PICKLE_ALLOWED:
            raise PsumError(f"{self._path} tries to load {module}.{name}, which a {self._what} never holds; "
                            f"refused (psum reads pickles as data only: dicts, lists, bytes, ints, numpy arrays)")
        return super().find_class(module, name)


def read_pickle(path, *, what: str = "data pickle"):
    """Unpickle ``path`` admitting only plain data (the CIFAR "python version" files are pickles).

    Parameters
    ----------
    path : str or Path
    what : str
        What the file should be, for the message (``"cifar10 batch"``).

    Returns
    -------
    object
        Dicts, lists, tuples, str, bytes, numbers and numpy arrays (``encoding="bytes"``: Python 2
        strings come back as bytes, as CIFAR's keys ``b"data"``, ``b"labels"``).

    Raises
    ------
    psum.errors.PsumError
        The pickle names any class outside :data:`PICKLE_ALLOWED` (one line: the file and the
        class); nothing of it is executed.
    pickle.UnpicklingError, EOFError
        Not a pickle.
    """
    with open(path, "rb") as fh:
        return _DataUnpickler(fh, path, what).load()


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
    # Why not torchvision's CIFAR reader: it calls a plain pickle.load, which runs whatever a crafted
    # batch names; read_pickle admits only the classes a CIFAR batch needs.
    label_key = b"labels" if name == "cifar10" else b"fine_labels"
    chunks, labels = [], []
    for f in files:
        try:
            entry = read_pickle(f, what=f"{name} batch")
            chunks.append(np.asarray(entry[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.extend(entry[label_key])
            if len(labels) != sum(len(c) for c in chunks):  # else an AssertionError deep in torch
                raise PsumError(f"{name}: {f} holds {len(chunks[-1])} images but "
                                f"{len(entry[label_key])} labels; expected {_LAYOUT[name]}")
        except (pickle.UnpicklingError, KeyError, EOFError, ValueError, TypeError, AttributeError) as exc:
            raise PsumError(f"{name}: {f} is not a {name} python pickle ({type(exc).__name__}); "
                            f"expected {_LAYOUT[name]}") from None
    data = np.concatenate(chunks).transpose(0, 2, 3, 1)
    info = _INFO[name]
    # Labels checked on load (never silently wrong): labels >= the class count used to evaluate
    # at a few % with no warning, and a short label list failed later in an assert.
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise PsumError(f"{name}: the {split} labels are not integers; expected {_LAYOUT[name]}") from None
    if labels.ndim != 1 or len(labels) != len(data):
        raise PsumError(f"{name}: the {split} split has {len(data)} images but {labels.size} labels")
    bad = (labels < 0) | (labels >= info.num_classes)
    if bad.any():
        raise PsumError(f"{name}: the {split} split has label {int(labels[bad][0])}, outside the "
                        f"{info.num_classes} classes 0..{info.num_classes - 1}")
    x = torch.from_numpy(np.ascontiguousarray(data)).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(info.mean).view(1, 3, 1, 1)
    std = torch.tensor(info.std).view(1, 3, 1, 1)
    x = ((x - mean) / std).contiguous()
    return torch.utils.data.TensorDataset(x, torch.from_numpy(labels.astype(np.int64)))


_IMAGE_EXT = (".jpeg", ".jpg", ".png", ".bmp", ".ppm", ".webp")


class ImageFolderDataset:
    """A minimal ImageFolder: ``root/<class>/<image>``, classes in label order.

    Parameters
    ----------
    root : Path
        The split folder.
    classes : list of str
        Class folder names, in label order (taken from ``train`` so both splits agree).
    mean, std : tuple of float, optional
        Per-channel normalisation of the [0, 1] pixels (``None``: none).
    size : int, optional
        Side of the square centre crop (``None``: no crop; every image is resized to the first
        image's width × height, so a batch stacks).
    resize : int, optional
        Shorter side before the crop (default ``size * 8 / 7``, ImageNet's 256 for 224).
    channels : int, optional
        1 (grey) or 3 (RGB); default from the first image's mode (grey modes give 1).

    Attributes
    ----------
    samples : list of (Path, int)
    targets : list of int
        The label of every sample (read without opening an image).
    """

    def __init__(self, root: Path, classes: list[str], mean=None, std=None, size: int | None = 224,
                 resize: int | None = None, channels: int | None = None):
        self.root, self.classes, self.size = root, list(classes), size
        self.resize = resize if resize is not None or size is None else round(size * 256 / 224)
        self.mean, self.std = mean, std
        self.samples = []
        for label, cls in enumerate(classes):
            folder = root / cls
            if not folder.is_dir():
                continue
            for f in sorted(os.listdir(folder)):
                if f.lower().endswith(_IMAGE_EXT):
                    self.samples.append((folder / f, label))
        self.targets = [label for _, label in self.samples]
        self.channels, self.native = channels, None
        if self.samples and (channels is None or size is None):
            from PIL import Image

            with Image.open(self.samples[0][0]) as im:
                self.native = im.size
                if channels is None:
                    self.channels = 1 if im.mode in ("1", "L", "LA", "I", "I;16", "F") else 3
        self.channels = self.channels or 3

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i):
        import numpy as np
        import torch
        from PIL import Image

        path, label = self.samples[i]
        with Image.open(path) as im:
            im = im.convert("L" if self.channels == 1 else "RGB")
            w, h = im.size
            if self.size is None:
                if (w, h) != self.native:
                    im = im.resize(self.native, Image.BILINEAR)
            else:
                s = self.resize / min(w, h)  # shorter side -> resize, aspect kept
                im = im.resize((max(self.resize, round(w * s)), max(self.resize, round(h * s))), Image.BILINEAR)
                w, h = im.size
                left, top = (w - self.size) // 2, (h - self.size) // 2
                im = im.crop((left, top, left + self.size, top + self.size))
            arr = np.asarray(im, dtype=np.float32) / 255.0
            x = torch.from_numpy(arr.reshape(arr.shape[0], arr.shape[1], -1)).permute(2, 0, 1).contiguous()
        if self.mean is not None:
            mean = torch.tensor(self.mean, dtype=torch.float32).view(-1, 1, 1)
            std = torch.tensor(self.std, dtype=torch.float32).view(-1, 1, 1)
            x = (x - mean) / std
        return x, label


IMAGEFOLDER_LAYOUT = "DIR/<class>/*.png|jpg (one folder per class), or DIR/{train,val}/<class>/*"
_NORMALIZE = {"none": (None, None), "imagenet": (_INFO["imagenet"].mean, _INFO["imagenet"].std)}


def image_folder(data_dir, split: str = "test", *, size: int | None = None, normalize="none",
                 channels: int | None = None) -> ImageFolderDataset:
    """A user's image folder as a dataset: classes are the sub-folder names, sorted.

    Parameters
    ----------
    data_dir : str or Path
        ``DIR/<class>/<image>`` (one split, used for testing and for calibration), or
        ``DIR/{train,val}/<class>/<image>`` (``test`` may stand for ``val``); classes are read from
        ``train`` when it exists, so both splits number them alike.
    split : {"test", "train"}
        ``"train"`` falls back to the single folder when there is no ``train`` sub-folder.
    size : int, optional
        Square centre crop after resizing the shorter side to ``size * 256 / 224`` (the ImageNet
        recipe); default ``None``: images keep their size (the first image's size for all).
    normalize : {"none", "imagenet"} or (mean, std)
        ``"none"``: pixels in [0, 1] (what ``ToTensor()`` gives); ``"imagenet"``: torchvision's
        ImageNet mean/std; or explicit per-channel tuples.
    channels : int, optional
        1 or 3; default from the first image (grey images give 1).

    Returns
    -------
    ImageFolderDataset
        ``(C×H×W float32, int label)`` items; ``.classes``, ``.targets``.

    Raises
    ------
    FileNotFoundError
        No folder, no class folders or no images (the message gives the layout).
    ValueError
        Bad split, size, normalisation or channel count.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    if size is not None:
        check_int("image size", size, 1)
    if channels is not None and channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, not {channels!r}")
    if isinstance(normalize, str):
        if normalize not in _NORMALIZE:
            raise ValueError(f"normalize must be one of {', '.join(_NORMALIZE)} or (mean, std), not {normalize!r}")
        mean, std = _NORMALIZE[normalize]
    else:
        mean, std = (tuple(float(v) for v in t) for t in normalize)
    if data_dir is None or str(data_dir) == "":
        raise FileNotFoundError(f"imagefolder needs --data-dir DIR with {IMAGEFOLDER_LAYOUT}")
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"imagefolder: {root} is not a folder; expected {IMAGEFOLDER_LAYOUT}")
    names = ("train",) if split == "train" else ("val", "test")
    folder = next((root / n for n in names if (root / n).is_dir()), None)
    if folder is None:
        has_splits = any((root / n).is_dir() for n in ("train", "val", "test"))
        if has_splits and split == "test":
            raise FileNotFoundError(f"imagefolder: missing {root / 'val'}; expected {IMAGEFOLDER_LAYOUT}")
        folder = root / "train" if has_splits else root
    class_root = root / "train" if (root / "train").is_dir() else folder
    classes = sorted(e.name for e in os.scandir(class_root) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise FileNotFoundError(f"imagefolder: no class folders in {class_root}; expected {IMAGEFOLDER_LAYOUT}")
    ds = ImageFolderDataset(folder, classes, mean, std, size=size, channels=channels)
    if len(ds) == 0:
        raise FileNotFoundError(f"imagefolder: no images in {folder}/<class>/; expected {IMAGEFOLDER_LAYOUT}")
    if mean is not None and len(mean) not in (1, ds.channels):
        raise ValueError(f"normalize has {len(mean)} channel means but the images have {ds.channels} channels")
    return ds


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
    ds = ImageFolderDataset(folder, classes, info.mean, info.std, size=224, resize=256, channels=3)
    if len(ds) == 0:
        raise FileNotFoundError(f"imagenet: no images in {folder}/<wnid>/; expected {_LAYOUT['imagenet']}")
    return ds
