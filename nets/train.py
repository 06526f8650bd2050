"""Training in bfloat16 autocast, fp32 evaluation, and checkpoints that later commands reuse.

``psum train --model M --dataset D`` trains with the forward pass under
``torch.autocast(dtype=torch.bfloat16)`` (as the research proposal specifies: the weights stay
float32, matmuls and convolutions run in bfloat16), evaluates the test split in float32 and writes
a checkpoint atomically (temporary file + ``os.replace``) to ``checkpoints/<model>-<dataset>.pt``
relative to the working directory (or ``$PSUM_CHECKPOINT_DIR``; see :mod:`psum.paths`); a width
other than the model's default one is part of the name (``checkpoints/resnet18-w1-digits.pt``,
:func:`checkpoint_name`), so a full-width network never replaces the narrow default.
:func:`load_checkpoint` rebuilds the model from the checkpoint you trained when there is one, else
from the one shipped with psum (package data: LeNet5, AlexNet and ResNet18 on digits).

Checkpoint contents (a plain dict, loadable with ``torch.load(weights_only=True)``): ``model``,
``dataset``, ``num_classes``, ``in_channels``, ``width``, ``options``, ``state_dict``,
``accuracy`` (top-1 %, fp32 eval of the test split), ``top5`` (ImageNet), ``seed``, ``epochs``,
``optimizer``, ``lr``, ``batch_size``, ``n_train``, ``n_test``, ``train_seconds``, ``storage``
(``"float32"`` or ``"bfloat16"``: the dtype of the stored floating weights; absent = float32),
``psum_version``, ``torch_version``, ``weights_sha256`` (:func:`weights_digest` of ``state_dict``:
checked on every load, so a file with flipped bytes is refused with "checkpoint FILE is corrupt:
digest mismatch" instead of evaluating at a wrong accuracy; a checkpoint without it -- written by
an older psum -- loads unchecked).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path

from psum import __version__
from .data import DATASETS, DatasetInfo, dataset_info, input_channels, load_dataset
from psum._util import atomic_path, check_int, check_output_path
from psum.errors import PsumError
from .models import MODELS, build_model, default_width
from psum.paths import checkpoint_dir
from psum.paths import find_checkpoint as _find
from psum.progress import progress

__all__ = ["train", "resolve_device", "evaluate", "load_checkpoint", "ensure_checkpoint", "checkpoint_path",
           "find_checkpoint", "weights_digest", "check_weights_digest", "checkpoint_dir", "default_epochs",
           "iterate_batches", "dataset_size", "checkpoint_name", "width_checkpoint", "round_weights", "STORAGE"]

# Weight storage dtypes of a checkpoint (``train(storage=...)``): float32, or bfloat16 (half the file;
# ResNet18 at width 1 is 22 MB instead of 45 MB).
STORAGE = ("float32", "bfloat16")

# Epochs used when none is given: enough on digits to converge (seconds to a minute on 2 cores).
_DEFAULT_EPOCHS = {"digits": 15, "cifar10": 30, "cifar100": 60, "imagenet": 90}


def default_epochs(model: str, dataset: str) -> int:
    """Epochs used by :func:`train` when none is given.

    ResNet18 on digits: 4 (its bf16-autocast convolutions take PyTorch's slow path on CPUs
    without native bf16, ~40x slower than LeNet5 per image; 4 epochs reach ~97 %). The vision
    transformer on digits: 30 (15 reach only ~90 %; a transformer learns slower from 1,437 images).
    """
    dataset_info(dataset)
    if (model, dataset) == ("resnet18", "digits"):
        return 4
    if (model, dataset) == ("vit", "digits"):
        return 30
    return _DEFAULT_EPOCHS[dataset]


def _check_width(width) -> float:
    if isinstance(width, bool) or not (isinstance(width, (int, float)) and math.isfinite(width) and width > 0):
        raise ValueError(f"width must be a finite positive number, not {width!r}")
    return float(width)


def checkpoint_name(model: str, dataset: str, width: float | None = None) -> str:
    """The file name of ``model`` on ``dataset`` at ``width``: ``<model>-<dataset>.pt`` at the
    default width (:func:`psum.nets.models.default_width`, or ``width=None``), else
    ``<model>-w<width>-<dataset>.pt`` (``resnet18-w1-digits.pt``, ``alexnet-w0.5-digits.pt``).

    Why a width in the name: the digits defaults of AlexNet and ResNet18 are width 0.125, so a
    full-width checkpoint under the default name would replace the shipped one that every other
    command (and the fast tests) reads.
    """
    if width is None or _check_width(width) == default_width(model, dataset):
        return f"{model}-{dataset}.pt"
    return f"{model}-w{width:g}-{dataset}.pt"


def checkpoint_path(model: str, dataset: str, directory=None, *, width: float | None = None) -> Path:
    """Where :func:`train` writes: ``<directory>/<name>`` with :func:`checkpoint_name`'s name
    (directory default: :func:`psum.paths.checkpoint_dir`, ``./checkpoints``)."""
    return Path(directory if directory is not None else checkpoint_dir()) / checkpoint_name(model, dataset, width)


def find_checkpoint(model: str, dataset: str, name: str | None = None, *, width: float | None = None) -> Path | None:
    """The checkpoint to read for ``model`` on ``dataset`` (at ``width``, see :func:`checkpoint_name`):
    yours (:func:`checkpoint_path`) when it exists, else the shipped one, else ``None``. ``name``
    overrides the file name."""
    return _find(name or checkpoint_name(model, dataset, width))


def _check_model(model: str) -> None:
    if model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}, not {model!r}")


def resolve_device(device):
    """The torch device for a ``--device`` text (``None``/``"auto"``: CUDA when present, else CPU).

    Raises
    ------
    ValueError
        An unknown device text, or a CUDA/MPS device this machine does not have (one line, before
        any work, instead of torch's parse error or its assertion deep in the first transfer).
    """
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, torch.device):
        return device
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(f"--device must be cpu, cuda, cuda:N or auto, not {device!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device}: CUDA is not available on this machine (use --device cpu)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"--device {device}: MPS is not available on this machine (use --device cpu)")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"--device must be cpu, cuda, cuda:N or auto, not {device!r}")
    return dev


_device = resolve_device  # the name used inside this module


def iterate_batches(ds, batch_size: int, *, limit: int | None = None, shuffle: bool = False, generator=None):
    """Yield ``(images, labels)`` batches of a dataset; tensor datasets are sliced, not collated.

    ``limit`` keeps the first ``limit`` items (before shuffling). A ``DataLoader`` is iterated as
    it is (its own batch size and order), its last batch cut at ``limit``.
    """
    import torch

    if isinstance(ds, torch.utils.data.DataLoader):
        done = 0
        for batch in ds:
            x, y = batch[0], torch.as_tensor(batch[1])
            if limit is not None and done + len(x) > limit:
                x, y = x[:limit - done], y[:limit - done]
            if len(x):
                yield x, y
            done += len(x)
            if limit is not None and done >= limit:
                return
        return
    n = len(ds) if limit is None else min(limit, len(ds))
    tensors = getattr(ds, "tensors", None)
    if tensors is not None:
        x, y = tensors[0][:n], tensors[1][:n]
        order = torch.randperm(n, generator=generator) if shuffle else None
        for start in range(0, n, batch_size):
            if order is None:
                yield x[start:start + batch_size], y[start:start + batch_size]
            else:
                idx = order[start:start + batch_size]
                yield x[idx], y[idx]
        return
    subset = ds if n == len(ds) else torch.utils.data.Subset(ds, range(n))
    workers = min(4, os.cpu_count() or 1)
    loader = torch.utils.data.DataLoader(subset, batch_size=batch_size, shuffle=shuffle, generator=generator,
                                         num_workers=workers)
    for x, y in loader:
        yield x, torch.as_tensor(y)


def dataset_size(ds) -> int:
    """Items in a Dataset, or in a DataLoader's dataset (``len(loader)`` counts batches)."""
    import torch

    if isinstance(ds, torch.utils.data.DataLoader):
        try:
            return len(ds.dataset)
        except TypeError:  # an IterableDataset without a length
            raise ValueError("a DataLoader over a dataset without len() cannot be evaluated with a known "
                             "image count; give its dataset a __len__") from None
    return len(ds)


def evaluate(model, ds, *, limit: int | None = None, batch_size: int = 256, topk=(1,), device=None,
             progress_bar=None, desc: str = "eval", metric=None) -> dict:
    """Top-k accuracy (in %) of ``model`` on the first ``limit`` items of ``ds``, in float32.

    Parameters
    ----------
    model : torch.nn.Module
        Put in eval mode here.
    ds : torch Dataset or DataLoader
        ``(input, label)`` items; a DataLoader is iterated with its own batching.
    limit : int, optional
        Evaluate only the first ``limit`` items.
    batch_size : int
    topk : tuple of int
        Which accuracies to compute.
    device : str or torch.device, optional
        Default: CUDA when present, else CPU.
    progress_bar : tqdm, optional
        An existing bar to advance by the images done (else a bar of its own, shown per
        :func:`psum.progress.progress_enabled`).
    desc : str
        Label of the own bar.
    metric : callable, optional
        ``metric(outputs, labels) -> per-sample scores`` (a tensor of ``N`` values in [0, 1], e.g.
        ``(outputs.argmax(1) == labels)``); its mean × 100 is reported as ``top1`` (so sweeps and
        searches read it unchanged), its ``__name__`` as ``metric``.

    Returns
    -------
    dict
        ``{"top1": %, ["top5": %,] "n_images": int[, "metric": name]}``.

    Raises
    ------
    ValueError
        A label outside the model's outputs (checked per batch, before any accuracy is reported).
    """
    import torch

    dev = _device(device)
    model = model.to(dev).eval()
    size = dataset_size(ds)
    n = size if limit is None else min(limit, size)
    correct = {k: 0 for k in topk}
    score = 0.0
    own = progress_bar is None
    bar = progress(total=n, desc=desc, unit="img", leave=False) if own else progress_bar
    try:
        with torch.no_grad():
            for x, y in iterate_batches(ds, batch_size, limit=n):
                x, y = x.to(dev), y.to(dev)
                logits = model(x).float()
                if metric is not None:
                    score += float(torch.as_tensor(metric(logits, y)).double().sum())
                    bar.update(len(y))
                    continue
                # never silently wrong: a label the model cannot output would just count as a miss
                if len(y) and (int(y.min()) < 0 or int(y.max()) >= logits.shape[1]):
                    raise ValueError(f"the data has label {int(y.max()) if int(y.max()) >= 0 else int(y.min())} "
                                     f"but the model has {logits.shape[1]} outputs (classes 0..{logits.shape[1] - 1})")
                kmax = min(max(topk), logits.shape[1])
                pred = logits.topk(kmax, dim=1).indices
                hit = pred == y.unsqueeze(1)
                for k in topk:
                    correct[k] += int(hit[:, :k].any(dim=1).sum())
                bar.update(len(y))
    finally:
        if own:
            bar.close()
    if metric is not None:
        return {"top1": 100.0 * score / max(n, 1), "n_images": n, "metric": getattr(metric, "__name__", "metric")}
    out = {f"top{k}": 100.0 * correct[k] / max(n, 1) for k in topk}
    out["n_images"] = n
    return out


def _augment(x, generator, *, pad: int, flip: bool):
    """Random horizontal flip (optional) and a random crop of the ``pad``-padded image (a shift)."""
    import torch
    import torch.nn.functional as F

    n, _, h, w = x.shape
    if flip:
        mirror = torch.rand(n, generator=generator) < 0.5
        x = torch.where(mirror.view(-1, 1, 1, 1), x.flip(3), x)
    # Why pad with the minimum: that is the normalised background value (0 for CIFAR's mean-free
    # images is also fine, but digits' background is the most negative value).
    padded = F.pad(x, (pad, pad, pad, pad), value=float(x.min()))
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = (dy.view(-1, 1) + torch.arange(h).view(1, -1))  # n×h
    cols = (dx.view(-1, 1) + torch.arange(w).view(1, -1))  # n×w
    idx = torch.arange(n).view(-1, 1, 1)
    return padded.permute(0, 2, 3, 1)[idx, rows.view(n, h, 1), cols.view(n, 1, w)].permute(0, 3, 1, 2).contiguous()


def train(model: str, dataset: str, *, epochs: int | None = None, seed: int = 0, data_dir=None, out=None,
          width: float | None = None, batch_size: int = 64, lr: float | None = None, optimizer: str = "adam",
          limit: int | None = None, autocast: bool = True, device=None, save: bool = True,
          progress_enabled: bool | None = None, storage: str = "float32") -> dict:
    """Train ``model`` on ``dataset`` and write its checkpoint.

    Parameters
    ----------
    model : str
        One of :data:`psum.nets.models.MODELS`.
    dataset : str
        One of :data:`psum.nets.data.DATASETS`.
    epochs : int, optional
        Default :func:`default_epochs`.
    seed : int
        Seeds initialisation, shuffling and augmentation (bit-reproducible on one machine).
    data_dir : str or Path, optional
        For CIFAR/ImageNet.
    out : str or Path, optional
        Checkpoint path; default :func:`checkpoint_path` (its name carries a non-default width:
        ``resnet18-w1-digits.pt``).
    width : float, optional
        Width multiplier; default :func:`psum.nets.models.default_width`.
    batch_size : int
    lr : float, optional
        Default for Adam 3e-3 (LeNet5), 1e-4 (AlexNet at width >= 0.5) or 1e-3, for SGD 0.05 (momentum 0.9, weight decay 5e-4); cosine schedule.
    optimizer : {"adam", "sgd"}
    limit : int, optional
        Train on the first ``limit`` training images only (quick tests).
    autocast : bool
        Forward pass in bfloat16 autocast (default) or plain float32.
    device : str, optional
        Default CUDA when present, else CPU.
    save : bool
        Write the checkpoint (``False``: only return it).
    progress_enabled : bool, optional
        Force the progress bars on/off.
    storage : {"float32", "bfloat16"}
        dtype of the stored weights. ``"bfloat16"`` rounds every floating weight and buffer to
        bfloat16 (round to nearest even, torch's conversion) *before* the test evaluation, so the
        recorded accuracy is that of the weights in the file; half the file size.

    Returns
    -------
    dict
        The checkpoint dict (with ``state_dict``) plus ``"path"`` when saved.

    Raises
    ------
    TypeError, ValueError
        Invalid argument (checked before any data is loaded).
    FileNotFoundError
        Dataset files missing.
    """
    import torch

    cfg = _train_config(model, dataset, epochs=epochs, seed=seed, width=width, batch_size=batch_size,
                        lr=lr, optimizer=optimizer, limit=limit, autocast=autocast)
    if storage not in STORAGE:
        raise ValueError(f"storage must be 'float32' or 'bfloat16', not {storage!r}")
    # Validated before anything is loaded; the order below (seed, model, generator) fixes every
    # random draw, so a run is bit-reproducible on one machine.
    dev = _device(device)
    path = Path(out) if out is not None else checkpoint_path(model, dataset, width=cfg.width)
    if save:  # where the checkpoint goes, checked before the training it would otherwise lose
        check_output_path(path)
    chans = input_channels(model, dataset)
    train_ds = load_dataset(dataset, "train", data_dir, channels=chans)
    test_ds = load_dataset(dataset, "test", data_dir, channels=chans)
    torch.manual_seed(seed)
    net = build_model(model, cfg.info.num_classes, chans, width=cfg.width).to(dev)
    n_train, train_seconds = _fit(net, train_ds, cfg, dev, progress_enabled)
    if storage == "bfloat16":
        round_weights(net, torch.bfloat16)  # evaluate the weights the file will hold
    acc = evaluate(net, test_ds, topk=cfg.info.topk, device=dev, desc="test")
    ckpt = _checkpoint_dict(net, cfg, chans, acc, n_train, train_seconds, storage=storage)
    if save:
        _save_checkpoint(ckpt, path)
        ckpt["path"] = str(path)
    return ckpt


@dataclasses.dataclass(frozen=True)
class _TrainConfig:
    """The validated options of one :func:`train` run (defaults filled in)."""

    model: str
    dataset: str
    info: DatasetInfo
    epochs: int
    seed: int
    width: float
    batch_size: int
    lr: float
    optimizer: str
    limit: int | None
    autocast: bool


def _train_config(model, dataset, *, epochs, seed, width, batch_size, lr, optimizer, limit,
                  autocast) -> _TrainConfig:
    """Check :func:`train`'s options and fill in the defaults (no data is touched).

    Raises
    ------
    TypeError, ValueError
        An invalid option, with a one-line message.
    """
    _check_model(model)
    info = dataset_info(dataset)
    if epochs is None:
        epochs = default_epochs(model, dataset)
    epochs = check_int("epochs", epochs, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', not {optimizer!r}")
    if limit is not None:
        limit = check_int("limit", limit, 1)
    if width is None:
        width = default_width(model, dataset)
    width = _check_width(width)
    if lr is None:
        # Why 1e-4 for a wide AlexNet: Adam at 1e-3 leaves the CIFAR AlexNet (no batch norm, dropout
        # before two 4096-wide layers) at chance on digits at width 1 (epoch-1 loss 2.316), at 1e-4 it
        # trains (8 epochs: 87.78 %); docs/fullwidth.md. Width 0.125 trains at 1e-3 (91.94 %).
        wide_alexnet = model == "alexnet" and width >= 0.5
        lr = (3e-3 if model == "lenet5" else 1e-4 if wide_alexnet else 1e-3) if optimizer == "adam" else 0.05
    # math.isfinite: lr=inf passed "lr > 0", trained NaN weights and wrote them as a checkpoint
    if isinstance(lr, bool) or not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite positive number, not {lr!r}")
    seed = check_int("seed", seed, 0)
    return _TrainConfig(model=model, dataset=dataset, info=info, epochs=epochs, seed=seed, width=width,
                        batch_size=batch_size, lr=lr, optimizer=optimizer, limit=limit, autocast=autocast)


def _fit(net, train_ds, cfg: _TrainConfig, dev, progress_enabled) -> tuple[int, float]:
    """The training loop: ``cfg.epochs`` epochs over the first ``cfg.limit`` images of ``train_ds``.

    Returns
    -------
    (n_train, seconds)
        Training images per epoch, and the wall time of the loop.
    """
    import torch
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(cfg.seed)
    n_train = len(train_ds) if cfg.limit is None else min(cfg.limit, len(train_ds))
    steps_per_epoch = math.ceil(n_train / cfg.batch_size)
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    else:
        opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps_per_epoch)
    # Augmentation: CIFAR's usual flip + 4-pixel shifts; digits get 2-pixel shifts (no flip: digits
    # are not mirror-symmetric); ImageNet none (centre crops only).
    augment = {"cifar10": (4, True), "cifar100": (4, True), "digits": (2, False)}.get(cfg.dataset)

    t0 = time.perf_counter()
    bar = progress(total=cfg.epochs * n_train, desc=f"train {cfg.model}/{cfg.dataset}", unit="img",
                   enabled=progress_enabled)
    try:
        for epoch in range(cfg.epochs):
            net.train()
            total_loss, seen = 0.0, 0
            for x, y in iterate_batches(train_ds, cfg.batch_size, limit=n_train, shuffle=True, generator=gen):
                if augment:
                    x = _augment(x, gen, pad=augment[0], flip=augment[1])
                x, y = x.to(dev), y.to(dev)
                # Why autocast: the proposal trains in bfloat16; weights and optimiser state stay fp32.
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cfg.autocast):
                    loss = F.cross_entropy(net(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total_loss += float(loss.detach()) * len(y)
                seen += len(y)
                bar.update(len(y))
            bar.set_postfix_str(f"epoch {epoch + 1}/{cfg.epochs} loss {total_loss / max(seen, 1):.4f}")
    finally:
        bar.close()
    return n_train, time.perf_counter() - t0


def round_weights(net, dtype) -> None:
    """Round every floating parameter and buffer of ``net`` to ``dtype`` and back, in place.

    What a checkpoint stored in ``dtype`` holds: loading it copies the rounded values back into
    the float32 model exactly (bfloat16 -> float32 is exact), so the accuracy measured after this
    call is the accuracy of the stored file.
    """
    import torch

    with torch.no_grad():
        for t in list(net.parameters()) + list(net.buffers()):
            if t.is_floating_point():
                t.copy_(t.to(dtype))


def _stored(v, storage: str):
    """A state_dict entry as the checkpoint stores it (floating tensors in ``storage``)."""
    import torch

    v = v.detach().to("cpu")
    return v.to(torch.bfloat16) if storage == "bfloat16" and v.is_floating_point() else v


def _checkpoint_dict(net, cfg: _TrainConfig, chans: int, acc: dict, n_train: int, train_seconds: float, *,
                     storage: str = "float32") -> dict:
    """The checkpoint of a trained ``net`` (the layout in this module's docstring)."""
    import torch

    state = {k: _stored(v, storage) for k, v in net.state_dict().items()}
    return {
        "format": "psum-checkpoint/1",
        "model": cfg.model,
        "dataset": cfg.dataset,
        "num_classes": cfg.info.num_classes,
        "in_channels": chans,
        "width": float(cfg.width),
        "options": {},
        "state_dict": state,
        "storage": storage,
        "accuracy": acc["top1"],
        "top5": acc.get("top5"),
        "seed": cfg.seed,
        "epochs": cfg.epochs,
        "optimizer": cfg.optimizer,
        "lr": float(cfg.lr),
        "batch_size": cfg.batch_size,
        "autocast": "bfloat16" if cfg.autocast else "none",
        "n_train": n_train,
        "n_test": acc["n_images"],
        "train_seconds": round(train_seconds, 3),
        "psum_version": __version__,
        "torch_version": str(torch.__version__),
        "weights_sha256": weights_digest(state),
    }


def weights_digest(state_dict) -> str:
    """SHA-256 (hex) of a state_dict: every entry's name, dtype, shape and raw bytes, in order.

    Over the tensors, not the file: the digest survives re-serialisation (another torch version
    writing the same weights) but not a single flipped weight bit.
    """
    import hashlib

    import torch

    h = hashlib.sha256()
    for k, v in state_dict.items():
        t = v.detach().to("cpu").contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def check_weights_digest(ckpt: dict, path) -> None:
    """Refuse a checkpoint whose weights do not match its stored ``weights_sha256``.

    Raises
    ------
    psum.errors.PsumError
        ``checkpoint FILE is corrupt: digest mismatch``. No check without a stored digest.
    """
    want = ckpt.get("weights_sha256")
    if want is None:
        return
    state = ckpt.get("state_dict")
    if not isinstance(want, str) or not isinstance(state, dict) or weights_digest(state) != want:
        raise PsumError(f"checkpoint {path} is corrupt: digest mismatch")


def _save_checkpoint(ckpt: dict, path) -> None:
    """``torch.save`` ``ckpt`` to ``path`` atomically: readers see the old or the new file, never half."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def load_checkpoint(model: str, dataset: str, *, path=None, device="cpu", width: float | None = None):
    """Rebuild a trained model from its checkpoint, at the width the checkpoint records.

    Parameters
    ----------
    model, dataset : str
        What to load; the checkpoint must match.
    path : str or Path, optional
        Default: :func:`find_checkpoint` (yours, else the shipped one) at ``width``.
    device : str
        Where to put the model.
    width : float, optional
        The width the checkpoint must have (default: any; the file name follows
        :func:`checkpoint_name`).

    Returns
    -------
    (torch.nn.Module, dict)
        The model in eval mode, and the checkpoint's metadata (everything but ``state_dict``,
        plus ``"path"``).

    Raises
    ------
    psum.errors.PsumError
        No checkpoint (the message gives the ``psum train`` command), or an unreadable or
        mismatching one (other model, data set or width).
    """
    import torch

    _check_model(model)
    dataset_info(dataset)
    p = Path(path) if path is not None else (find_checkpoint(model, dataset, width=width)
                                             or checkpoint_path(model, dataset, width=width))
    if not p.is_file():
        where = "" if path is None else f" at {p}"
        at = "" if checkpoint_name(model, dataset, width) == checkpoint_name(model, dataset) else f" at width {width:g}"
        raise PsumError(f"no checkpoint for {model}{at} on {dataset}{where}; run psum train --model {model} "
                        f"--dataset {dataset}" + (f" --width {width:g}" if at else "")
                        + ("" if path is None else f" --out {p}"))
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except OSError as exc:  # unreadable (permissions, I/O error): say so, retraining would not help
        raise PsumError(f"cannot read checkpoint {p}: {(exc.strerror or str(exc)).lower()}") from None
    except Exception as exc:  # corrupt or foreign file
        raise PsumError(f"{p} is not a psum checkpoint ({type(exc).__name__}); retrain with psum train "
                        f"--model {model} --dataset {dataset}") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise PsumError(f"{p} is not a psum checkpoint (no state_dict)")
    if (ckpt.get("model"), ckpt.get("dataset")) != (model, dataset):
        raise PsumError(f"{p} holds {ckpt.get('model')} on {ckpt.get('dataset')}, not {model} on {dataset}")
    if width is not None and float(ckpt.get("width", 1.0)) != float(width):
        raise PsumError(f"{p} holds {model} at width {float(ckpt.get('width', 1.0)):g}, not {float(width):g}")
    try:
        check_weights_digest(ckpt, p)
    except (TypeError, AttributeError, RuntimeError):  # a state_dict entry that is not a tensor
        raise PsumError(f"checkpoint {p} is corrupt: digest mismatch") from None
    net = build_model(model, ckpt["num_classes"], ckpt["in_channels"], width=ckpt.get("width", 1.0),
                      **ckpt.get("options", {}))
    net.load_state_dict(ckpt["state_dict"])
    meta = {k: v for k, v in ckpt.items() if k != "state_dict"}
    meta["path"] = str(p)
    return net.to(device).eval(), meta


def ensure_checkpoint(model: str, dataset: str, *, data_dir=None, path=None, device="cpu", width: float | None = None,
                      **train_kwargs):
    """:func:`load_checkpoint`, training first (with ``width`` and ``train_kwargs``) when there is none.

    Returns
    -------
    (torch.nn.Module, dict)
        As :func:`load_checkpoint`; ``meta["trained_now"]`` says whether training ran.
    """
    # Read yours, else the shipped one; train into checkpoint_dir() only when neither exists.
    p = Path(path) if path is not None else (find_checkpoint(model, dataset, width=width)
                                             or checkpoint_path(model, dataset, width=width))
    trained = False
    if not p.is_file():
        train(model, dataset, data_dir=data_dir, out=p, width=width, **train_kwargs)
        trained = True
    net, meta = load_checkpoint(model, dataset, path=p, device=device, width=width)
    meta["trained_now"] = trained
    return net, meta


def width_checkpoint(model: str, dataset: str, width: float, *, train_if_missing: bool = False, data_dir=None,
                     device=None, progress_enabled: bool | None = None, storage: str = "float32") -> Path:
    """The checkpoint file of built-in ``model`` on built-in ``dataset`` at ``width`` (``--width``).

    Yours (``./checkpoints/<name>``), else the shipped one, with :func:`checkpoint_name`'s name
    (``resnet18-w1-digits.pt``); trained first when there is none and ``train_if_missing``
    (default epochs and options of :func:`train`, progress bar on a terminal). The file's
    recorded width is checked, so the model is rebuilt at the width asked for.

    Parameters
    ----------
    model, dataset : str
        A built-in model and data set.
    width : float
        Width multiplier (finite, > 0).
    train_if_missing : bool
        Train when there is no such checkpoint (else a one-line error naming the command).
    data_dir, device, progress_enabled, storage
        For the training (:func:`train`).

    Returns
    -------
    Path
        The checkpoint (pass it on as ``checkpoint=``).

    Raises
    ------
    ValueError
        Not a built-in model or data set, or a bad width (before anything is loaded).
    psum.errors.PsumError
        No checkpoint at that width (without ``train_if_missing``), or a file of another width.
    """
    import torch

    if not isinstance(model, str) or model not in MODELS:
        raise ValueError(f"--width needs a built-in model ({', '.join(MODELS)}), not {model!r}")
    if not isinstance(dataset, str) or dataset not in DATASETS:
        raise ValueError(f"--width needs a built-in dataset ({', '.join(DATASETS)}), not {dataset!r}")
    width = _check_width(width)
    p = find_checkpoint(model, dataset, width=width) or checkpoint_path(model, dataset, width=width)
    if not p.is_file():
        if not train_if_missing:
            raise PsumError(f"no checkpoint for {model} at width {width:g} on {dataset}; run psum train --model "
                            f"{model} --dataset {dataset} --width {width:g}")
        train(model, dataset, width=width, out=p, data_dir=data_dir, device=device,
              progress_enabled=progress_enabled, storage=storage)
    try:
        have = torch.load(p, map_location="cpu", weights_only=True).get("width", 1.0)
    except Exception:  # unreadable or foreign: load_checkpoint gives the full message later
        return p
    if float(have) != width:
        raise PsumError(f"{p} holds {model} at width {float(have):g}, not {width:g}")
    return p
