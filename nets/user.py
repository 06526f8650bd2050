"""A user's own model, checkpoint and data: ``--model FILE.py:FUNC``, ``--checkpoint``, ``--dataset``.

Everything psum runs on a network goes through :func:`resolve`, which turns what the user named
(a built-in name or ``FILE.py:FUNCTION`` / ``package.module:FUNCTION``; a built-in dataset,
``imagefolder`` or ``FILE.py:FUNCTION``) or handed over in Python (an ``nn.Module``, a
``Dataset`` or ``DataLoader``) into one :class:`Workload`: the float model, the test data, the
calibration images, the labels that identify both in result files, and the top-k to report.

Trust
-----
``FILE.py:FUNCTION`` (model or dataset) is **code the user chose to run**: psum imports the file
and calls the function, as ``python FILE.py`` would. Checkpoints are data and are read as data
(issue 18): psum checkpoints and plain ``state_dict`` files load with
``torch.load(weights_only=True)``; a ``torch.export`` archive loads only when every weight and
constant in it is stored as raw tensor data (its JSON configs say so) and its sample inputs load
with ``weights_only=True`` (``torch.export.load`` would otherwise fall back to full unpickling);
a whole pickled model (``torch.save(model)``) can only be loaded by running the code its pickle
names, so it is refused unless the caller opts in (``--trust-checkpoint``, ``trust=True``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import importlib.util
import inspect
import io
import json
import pickle
import re
import sys
import warnings
import zipfile
from pathlib import Path

from torch import nn

from psum.errors import PsumError

__all__ = ["Workload", "resolve", "is_user_ref", "load_function", "build_user_model", "load_weights",
           "load_user_dataset", "model_digest", "output_size", "check_labels", "dataset_labels",
           "calibration_batch", "check_items", "CHECKPOINT_KINDS"]

# What --checkpoint may hold, in the words of every message.
CHECKPOINT_KINDS = "a psum checkpoint, a plain state_dict, a torch.export archive or (with --trust-checkpoint) a whole saved model"

_REF = re.compile(r"^(?P<target>[^:]+\.py|[A-Za-z_][\w.]*):(?P<func>[A-Za-z_]\w*)$")


def is_user_ref(text) -> bool:
    """Whether ``text`` is ``FILE.py:FUNCTION`` or ``package.module:FUNCTION``."""
    return isinstance(text, str) and _REF.match(text) is not None


# ---------------------------------------------------------------------------------------------
# FILE.py:FUNCTION
# ---------------------------------------------------------------------------------------------
def load_function(ref: str, *, what: str = "model"):
    """The function named by ``FILE.py:FUNCTION`` or ``package.module:FUNCTION``.

    This imports (runs) the user's file: it is code the user chose to run.

    Raises
    ------
    ValueError
        Malformed reference; file or module not found; no such function (one line).
    PsumError
        The file raised while being imported (its exception's type and first line).
    """
    m = _REF.match(str(ref))
    if m is None:
        raise ValueError(f"--{what} must be FILE.py:FUNCTION or package.module:FUNCTION, not {ref!r}")
    target, func = m["target"], m["func"]
    try:
        if target.endswith(".py"):
            path = Path(target).expanduser()
            if not path.is_file():
                raise ValueError(f"--{what} {ref}: file {target} does not exist")
            # A private module name per file (and version of it), so two user files named model.py do
            # not collide and one command imports a file once.
            st = path.stat()
            name = "psum_user_" + hashlib.sha256(f"{path.resolve()}|{st.st_mtime_ns}|{st.st_size}".encode()).hexdigest()[:12]
            module = sys.modules.get(name)
            if module is None:
                spec = importlib.util.spec_from_file_location(name, path)
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module  # dataclasses and pickling look the module up by name
                # What the file prints to stderr is held back while it runs: a script that parses
                # psum's command line with argparse at import prints its own usage, then exits; the
                # one line psum prints names that line instead (else passed on unchanged).
                held = io.StringIO()
                try:
                    with contextlib.redirect_stderr(held):
                        spec.loader.exec_module(module)
                except SystemExit as exc:
                    del sys.modules[name]
                    said = [ln for ln in held.getvalue().splitlines() if ln.strip()]
                    after = f" after printing {said[-1].strip()!r}" if said else ""
                    raise PsumError(f"--{what} {ref}: importing {target} called sys.exit({exc.code!r}){after}; psum "
                                    f"imports the file, so keep script code under if __name__ == '__main__':") from None
                except BaseException:
                    del sys.modules[name]
                    sys.stderr.write(held.getvalue())
                    raise
                sys.stderr.write(held.getvalue())
        else:
            try:
                module = importlib.import_module(target)
            except ModuleNotFoundError as exc:
                raise ValueError(f"--{what} {ref}: no module {exc.name or target!r}") from None
    except (ValueError, PsumError):
        raise
    except SystemExit as exc:  # sys.exit() or argparse at the top of a script: psum would exit silently
        raise PsumError(f"--{what} {ref}: importing {target} called sys.exit({exc.code!r}); psum imports the file, "
                        f"so keep script code under if __name__ == '__main__':") from None
    except Exception as exc:  # the user's code failed while importing
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise PsumError(f"--{what} {ref}: importing {target} failed: {type(exc).__name__}: {first}") from None
    fn = getattr(module, func, None)
    if not callable(fn):
        found = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                       and getattr(v, "__module__", None) == module.__name__)
        raise ValueError(f"--{what} {ref}: {target} has no function {func!r}"
                         f" (it defines {', '.join(found[:8]) or 'none'})")
    return fn


def _call(fn, ref, what, **offered):
    """Call ``fn`` with the offered keyword arguments it declares (none required)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    kwargs = {k: v for k, v in offered.items() if k in params and v is not None}
    try:
        return fn(**kwargs)
    except SystemExit as exc:  # else a sys.exit(0) in the function ends psum with success and no result
        raise PsumError(f"--{what} {ref}: the function called sys.exit({exc.code!r})") from None
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise PsumError(f"--{what} {ref}: the function raised {type(exc).__name__}: {first}") from None


def build_user_model(ref: str, *, num_classes: int | None = None):
    """Build the model ``ref`` (``FILE.py:FUNCTION``) names: call the function, check the result.

    ``num_classes`` is passed when the function declares a parameter of that name.

    Raises
    ------
    ValueError
        Bad reference, or the function returned something other than an ``nn.Module``.
    """
    from torch import nn

    net = _call(load_function(ref, what="model"), ref, "model", num_classes=num_classes)
    if not isinstance(net, nn.Module):
        raise ValueError(f"--model {ref} returned {type(net).__name__}, not a torch.nn.Module")
    return net


# ---------------------------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------------------------
def _first(keys, n=4) -> str:
    keys = list(keys)
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def _export_reason(path: Path, names: list[str]) -> str | None:
    """Why the ``torch.export`` archive needs full unpickling (``None``: it is plain data).

    ``torch.export.load`` unpickles (``weights_only=False``) weights and constants flagged
    ``use_pickle``, custom and opaque objects, legacy ``.pt`` payloads, and sample inputs that fail
    a ``weights_only`` load; each is checked here first.
    """
    import torch

    with zipfile.ZipFile(path) as z:
        for n in names:
            if re.search(r"/data/(weights|constants)/[^/]+\.pt$", n):
                return f"legacy pickled payload {n}"
            if n.endswith(("model_weights_config.json", "model_constants_config.json")) or \
                    re.search(r"/data/(weights|constants)/\w+_config\.json$", n):
                config = json.loads(z.read(n)).get("config", {})
                for fqn, meta in config.items():
                    if meta.get("use_pickle") or not str(meta.get("path_name", "")).startswith(("weight_", "tensor_")):
                        return f"pickled entry {fqn}"
            if "/data/sample_inputs/" in n:
                import io

                try:
                    torch.load(io.BytesIO(z.read(n)), weights_only=True)
                except Exception:
                    return f"pickled sample inputs {n}"
    return None


def _read_checkpoint(path: Path, *, trust: bool):
    """(kind, payload): ``("export", module)``, ``("whole", module)`` or ``("dict", dict)``."""
    import torch
    from torch import nn

    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    names = []
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    if any(n.endswith("/archive_format") for n in names) and not any(n.endswith("/data.pkl") for n in names):
        reason = _export_reason(path, names)
        if reason is not None and not trust:
            raise PsumError(f"{path} is a torch.export archive with a {reason}: loading it runs code from the "
                            f"file; pass --trust-checkpoint (trust=True) only if you trust its source")
        try:
            return "export", _Exported(torch.export.load(str(path)).module())
        except Exception as exc:
            raise PsumError(f"{path} is a torch.export archive that does not load ({type(exc).__name__})") from None
    if not names:
        # torch.save writes a zip archive, or (legacy format) a pickle, which starts with the PROTO
        # opcode 0x80: anything else is not a checkpoint, and must not be called "a whole saved model
        # that needs --trust-checkpoint" (random bytes fail torch's weights-only reader that way).
        with open(path, "rb") as fh:
            head = fh.read(1)
        if head != b"\x80":
            what = "it is empty" if not head else "neither a zip archive nor a pickle"
            raise PsumError(f"{path} is not a checkpoint torch can read ({what}); expected {CHECKPOINT_KINDS}")
    try:
        with warnings.catch_warnings():  # torch's note on the pickle protocol: psum says what matters below
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return "dict", torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f"it names {found[1]}" if found else "it holds pickled objects"
        if not trust:
            raise PsumError(f"{path} needs full unpickling ({what}: a whole saved model?), which runs code "
                            f"from the file; pass --trust-checkpoint (trust=True) only if you trust its "
                            f"source, or save model.state_dict() instead") from None
    except Exception as exc:
        raise PsumError(f"{path} is not a checkpoint torch can read ({type(exc).__name__}); expected "
                        f"{CHECKPOINT_KINDS}") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)  # trust=True: the user's choice
    except Exception as exc:  # a damaged pickle fails here too, not only in the weights-only reader
        raise PsumError(f"{path} is not a checkpoint torch can read ({type(exc).__name__}); expected "
                        f"{CHECKPOINT_KINDS}") from None
    if not isinstance(obj, nn.Module):
        raise PsumError(f"{path} holds a pickled {type(obj).__name__}, not a torch.nn.Module; expected "
                        f"{CHECKPOINT_KINDS}")
    return "whole", obj


class _Exported(nn.Module):
    """A ``torch.export`` graph as a module that takes ``eval()`` (the graph refuses it: an exported
    program has no train/eval switch, it was traced in one mode)."""

    def __init__(self, graph):
        super().__init__()
        self.graph = graph

    def train(self, mode: bool = True):
        self.training = mode  # not passed on to the graph, which raises on it
        return self

    def forward(self, *args, **kwargs):
        return self.graph(*args, **kwargs)


def _state_dict_of(obj, path: Path) -> tuple[str, dict]:
    """(kind, state_dict) of a ``weights_only`` checkpoint: psum's, a plain one, or a wrapped one."""
    import torch

    def tensors(d):
        return isinstance(d, dict) and d and all(isinstance(v, torch.Tensor) for v in d.values())

    if isinstance(obj, dict) and "num_classes" in obj and "model" in obj and tensors(obj.get("state_dict")):
        return "psum checkpoint", obj["state_dict"]
    if tensors(obj):
        return "state_dict", obj
    for key in ("state_dict", "model_state_dict", "model"):  # Lightning / common training scripts
        if isinstance(obj, dict) and tensors(obj.get(key)):
            return f"state_dict (under {key!r})", obj[key]
    found = (("an empty dict" if not obj else f"a dict with keys {_first(map(str, obj))}") if isinstance(obj, dict)
             else f"a {type(obj).__name__}")
    raise PsumError(f"{path} holds {found}; expected {CHECKPOINT_KINDS}")


def load_weights(net, path, *, trust: bool = False, label: str = "the model"):
    """Load the checkpoint ``path`` into ``net`` (or, for a whole model or export archive, return it).

    Parameters
    ----------
    net : torch.nn.Module or None
        The model built from ``--model``; ``None`` when the checkpoint must hold the model itself.
    path : str or Path
        :data:`CHECKPOINT_KINDS`.
    trust : bool
        Allow full unpickling (a whole saved model), which runs code named by the file.
    label : str
        How messages name the model (``"model.py:build"``).

    Returns
    -------
    (torch.nn.Module, str)
        The model in eval mode and what the file was (``"state_dict"``, ``"psum checkpoint"``,
        ``"torch.export archive"``, ``"whole saved model"``).

    Raises
    ------
    PsumError
        The file is none of the accepted kinds, needs unpickling without ``trust``, or does not fit
        ``net``: missing / unexpected keys (the first few) and shape mismatches, one line.
    """
    path = Path(path).expanduser()
    kind, obj = _read_checkpoint(path, trust=trust)
    if kind in ("export", "whole"):
        return obj.eval(), "torch.export archive" if kind == "export" else "whole saved model"
    what, sd = _state_dict_of(obj, path)
    if net is None:
        raise ValueError(f"--model is required: {path} holds a {what}, not a whole model")
    own = net.state_dict()
    if sd and all(k.startswith("module.") for k in sd) and not any(k.startswith("module.") for k in own):
        sd = {k[len("module."):]: v for k, v in sd.items()}  # saved from DataParallel
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [f"{k} {tuple(sd[k].shape)} in the file, {tuple(own[k].shape)} in the model"
              for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = ([f"missing keys {_first(missing)}"] if missing else []) + \
                ([f"unexpected keys {_first(unexpected)}"] if unexpected else []) + \
                ([f"shape {_first(shapes, 2)}"] if shapes else [])
        raise PsumError(f"{path} ({what}) does not fit {label}: {'; '.join(parts)}")
    net.load_state_dict(sd)
    return net.eval(), what


def model_digest(net) -> str:
    """First 12 hex digits of the SHA-256 of a model's state_dict (names, dtypes, shapes, values):
    what identifies a user's model in result files."""
    from .train import weights_digest  # one byte stream for both digests

    return weights_digest(net.state_dict())[:12]


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------
def load_user_dataset(ref: str, split: str):
    """The ``Dataset``/``DataLoader`` ``FILE.py:FUNCTION`` returns for ``split``.

    The function is called as ``FUNC(split="test")`` / ``FUNC(split="train")`` when it declares a
    ``split`` parameter, else ``FUNC()`` (then the test data is also used for calibration).

    Raises
    ------
    ValueError
        Bad reference, or the result is neither a ``Dataset`` nor a ``DataLoader``.
    """
    from torch.utils.data import DataLoader, Dataset

    fn = load_function(ref, what="dataset")
    ds = _call(fn, ref, "dataset", split=split)
    if not isinstance(ds, (Dataset, DataLoader)):
        raise ValueError(f"--dataset {ref} returned {type(ds).__name__}, not a torch Dataset or DataLoader")
    return ds


def _takes_split(ref: str) -> bool:
    try:
        return "split" in inspect.signature(load_function(ref, what="dataset")).parameters
    except (TypeError, ValueError):
        return False


def dataset_labels(ds):
    """Every label of ``ds`` when it can be read without loading the inputs (``None`` otherwise):
    a ``TensorDataset``'s last tensor, a ``.targets`` attribute, or the same of a loader's dataset."""
    import torch

    inner = getattr(ds, "dataset", ds) if isinstance(ds, torch.utils.data.DataLoader) else ds
    if isinstance(inner, torch.utils.data.TensorDataset) and len(inner.tensors) >= 2:
        return torch.as_tensor(inner.tensors[-1])
    targets = getattr(inner, "targets", None)
    if targets is not None:
        return torch.as_tensor(targets)
    return None


def _first_batch(ds, n: int):
    """The first ``n`` inputs and labels of a Dataset or DataLoader, stacked."""
    import torch

    if isinstance(ds, torch.utils.data.DataLoader):
        xs, ys, got = [], [], 0
        for batch in ds:
            x, y = batch[0], batch[1]
            xs.append(x)
            ys.append(torch.as_tensor(y))
            got += len(x)
            if got >= n:
                break
        return torch.cat(xs)[:n], torch.cat(ys)[:n]
    if isinstance(ds, torch.utils.data.TensorDataset):
        return ds.tensors[0][:n], ds.tensors[-1][:n]
    items = [ds[i] for i in range(min(n, len(ds)))]
    return torch.stack([torch.as_tensor(it[0]) for it in items]), torch.as_tensor([int(it[1]) for it in items])


def calibration_batch(ds, n: int):
    """The first ``n`` inputs of ``ds`` (the activation-scale calibration images)."""
    return _first_batch(ds, n)[0]


def output_size(net, ds) -> int:
    """Outputs per sample of ``net`` on ``ds``'s first input (one float forward).

    Raises
    ------
    PsumError
        The forward fails (the model does not take the data), the output is not ``N×K``, or it holds
        NaN or inf.
    """
    import torch

    x = _first_batch(ds, 1)[0]
    try:
        with torch.no_grad():
            out = net.eval()(x)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise PsumError(f"the model does not take the data's inputs of shape {tuple(x.shape[1:])}: "
                        f"{type(exc).__name__}: {first}") from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise PsumError(f"the model's output must be N x classes logits, not {shape}")
    if out.is_floating_point() and not bool(torch.isfinite(out).all()):
        # NaN logits argmax to class 0: every accuracy measured on them would be silently wrong.
        bad = "NaN" if bool(torch.isnan(out).any()) else "inf"
        raise PsumError(f"the model's float32 output on the data's first input holds {bad}; check the model "
                        f"and the data (their accuracy would be meaningless)")
    return int(out.shape[1])


def check_labels(ds, n_outputs: int, label: str, *, exact: bool = False) -> None:
    """Refuse a dataset whose labels fall outside the model's ``n_outputs`` classes.

    With ``exact`` (a user's image folder) the class folders must match the outputs one to one;
    otherwise every readable label must lie in ``[0, n_outputs)`` (labels that cannot be read up front are checked batch by batch by
    :func:`psum.nets.train.evaluate`).

    Raises
    ------
    ValueError
        One line naming the classes and the outputs.
    """
    classes = getattr(getattr(ds, "dataset", ds), "classes", None)
    if exact and classes is not None and len(classes) != n_outputs:
        raise ValueError(f"dataset {label} has {len(classes)} classes ({_first(classes)}) but the model has "
                         f"{n_outputs} outputs")
    y = dataset_labels(ds)
    if y is not None and len(y) and (int(y.min()) < 0 or int(y.max()) >= n_outputs):
        raise ValueError(f"dataset {label} has labels {int(y.min())}..{int(y.max())} but the model has "
                         f"{n_outputs} outputs (classes 0..{n_outputs - 1})")


def check_items(ds, label: str) -> None:
    """Refuse data that cannot be scored, before any evaluation: no items, items that are not
    ``(input, label)`` pairs, or labels that are not integer class indices.

    Why: an empty data set scored "top-1 0.00 % on 0 test images" with exit 0, float labels
    (``0.7``) were compared with class indices and scored 0 %, and a ``TensorDataset`` of inputs
    alone ended in an ``IndexError`` traceback.

    Parameters
    ----------
    ds : Dataset or DataLoader
        The user's test data (map-style, as everywhere in psum).
    label : str
        The data set's name in the message.

    Raises
    ------
    ValueError
        One line naming the data set and what is wrong.
    """
    import numbers

    import torch

    inner = ds.dataset if isinstance(ds, torch.utils.data.DataLoader) else ds
    try:
        n = len(inner)
    except TypeError:
        n = None  # no length: the first item below still has to be a pair
    if n == 0:
        raise ValueError(f"dataset {label} is empty (no test images)")
    if isinstance(ds, torch.utils.data.DataLoader):
        item = next(iter(ds), None)
    elif isinstance(inner, torch.utils.data.TensorDataset):
        item = tuple(t[0] for t in inner.tensors)
    else:
        item = inner[0]
    if not isinstance(item, (tuple, list)) or len(item) < 2:
        what = (f"a {type(item).__name__} of {len(item)}" if isinstance(item, (tuple, list))
                else f"a {type(item).__name__}")
        raise ValueError(f"dataset {label} must give (input, label) pairs; its first item is {what}")
    y = dataset_labels(ds)
    if y is None:
        y = item[1]
    if isinstance(y, torch.Tensor):
        integral = not (y.is_floating_point() or y.is_complex() or y.dtype == torch.bool)
    elif hasattr(y, "dtype"):  # numpy arrays and scalars
        integral = getattr(y.dtype, "kind", "") in ("i", "u")
    else:
        integral = isinstance(y, numbers.Integral) and not isinstance(y, bool)
    if not integral:
        kind = str(y.dtype).replace("torch.", "") if hasattr(y, "dtype") else type(y).__name__
        raise ValueError(f"dataset {label} has labels of type {kind}; labels must be integer class indices")


# ---------------------------------------------------------------------------------------------
# the workload
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Workload:
    """A float model and its data, resolved from names or objects (:func:`resolve`).

    Attributes
    ----------
    net : torch.nn.Module
        The float model, eval mode.
    test : Dataset or DataLoader
        What accuracy is measured on.
    calib : torch.Tensor
        Calibration inputs (activation scales).
    calib_name : str
        Where they come from (``"train[:256]"``, ``"test[:256]"``), part of every row's key.
    model, dataset : str
        Labels in rows and messages (``"lenet5"``, ``"nets/my.py:build"``, ``"imagefolder:/data/x"``).
    checkpoint : str
        What identifies the weights in result files: the checkpoint file's digest for psum's
        checkpoints, else :func:`model_digest`.
    topk : tuple of int
    meta : dict
        Checkpoint metadata (``accuracy`` when psum trained it), ``checkpoint_kind``.
    metric : callable, optional
        ``metric(outputs, labels) -> per-sample scores`` (see :func:`psum.nets.train.evaluate`).
    """

    net: object
    test: object
    calib: object
    calib_name: str
    model: str
    dataset: str
    checkpoint: str
    topk: tuple = (1,)
    meta: dict = dataclasses.field(default_factory=dict)
    metric: object = None


def _file_digest(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


def _builtin_data(dataset, split, data_dir, chans):
    from .data import load_dataset

    return load_dataset(dataset, split, data_dir, channels=chans)


def resolve(model, dataset="digits", *, checkpoint=None, data_dir=None, trust: bool = False,
            image_size: int | None = None, normalize="none", calib=None, calib_images: int = 256,
            model_name: str | None = None, dataset_name: str | None = None, metric=None,
            train_if_missing: bool = False) -> Workload:
    """Turn a model and a dataset, named or given, into a :class:`Workload`; check they fit.

    Parameters
    ----------
    model : str, torch.nn.Module or None
        A built-in name (:data:`psum.nets.models.MODELS`), ``FILE.py:FUNCTION`` /
        ``package.module:FUNCTION`` (code the user chose to run), an ``nn.Module``, or ``None``
        when ``checkpoint`` holds a whole model or a ``torch.export`` archive.
    dataset : str, Dataset or DataLoader
        A built-in name (:data:`psum.nets.data.DATASETS`), ``"imagefolder"`` (with ``data_dir``),
        ``FILE.py:FUNCTION``, or a ``Dataset`` / ``DataLoader`` of ``(input, label)``.
    checkpoint : str or Path, optional
        :data:`CHECKPOINT_KINDS`. Built-in models default to psum's checkpoint (yours, else the
        shipped one); user models without one keep the weights their function gave them.
    data_dir : str or Path, optional
        Folder of CIFAR / ImageNet / ``imagefolder``.
    trust : bool
        Allow a checkpoint that needs full unpickling (it runs code named by the file).
    image_size, normalize
        ``imagefolder`` preprocessing (:func:`psum.nets.data.image_folder`).
    calib : torch.Tensor, Dataset or DataLoader, optional
        Calibration inputs; default the first ``calib_images`` training images (built-in data, an
        image folder with ``train/``, or ``FUNC(split="train")``), else the first test images.
    model_name, dataset_name : str, optional
        Labels for rows of objects handed over in Python (default the class names).
    metric : callable, optional
        Per-sample score instead of top-1 (see :func:`psum.nets.train.evaluate`).
    train_if_missing : bool
        Built-in models: train the psum checkpoint when there is none.

    Raises
    ------
    ValueError, FileNotFoundError, psum.errors.PsumError
        Unknown model/dataset text, a function that returns no module / no data, a checkpoint
        that does not fit, labels outside the model's classes (one line, before any evaluation).
    """
    import torch
    from torch import nn

    from .data import DATASETS, dataset_info, image_folder, input_channels
    from .models import MODELS, build_model, default_width
    from .train import ensure_checkpoint, load_checkpoint

    # -- validate the names before anything is built ------------------------------------------
    if isinstance(model, str) and model not in MODELS and not is_user_ref(model):
        raise ValueError(f"model must be one of {', '.join(MODELS)}, FILE.py:FUNCTION or "
                         f"package.module:FUNCTION, not {model!r}")
    if model is not None and not isinstance(model, (str, nn.Module)):
        raise TypeError(f"model must be a name, FILE.py:FUNCTION or a torch.nn.Module, not {type(model).__name__}")
    named_data = isinstance(dataset, str)
    if named_data and dataset not in DATASETS and dataset != "imagefolder" and not is_user_ref(dataset):
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, imagefolder or FILE.py:FUNCTION, "
                         f"not {dataset!r}")
    if not named_data and not isinstance(dataset, (torch.utils.data.Dataset, torch.utils.data.DataLoader)):
        raise TypeError(f"dataset must be a name, a torch Dataset or a DataLoader, not {type(dataset).__name__}")
    if model is None and checkpoint is None:
        raise ValueError("--model is required (a built-in name or FILE.py:FUNCTION) unless --checkpoint holds "
                         "a whole model or a torch.export archive")
    builtin_data = named_data and dataset in DATASETS
    builtin_model = isinstance(model, str) and model in MODELS
    if isinstance(model, str) and not builtin_model:
        load_function(model, what="model")  # a missing file or function fails before any data loads
    if named_data and is_user_ref(dataset) and not builtin_data:
        load_function(dataset, what="dataset")

    # -- the psum path: a built-in model on a built-in dataset with psum's checkpoint -----------
    if builtin_model and builtin_data and (checkpoint is None or _is_psum_checkpoint(checkpoint)):
        loader = ensure_checkpoint if train_if_missing else load_checkpoint
        kw = dict(data_dir=data_dir) if train_if_missing else {}
        net, meta = loader(model, dataset, path=checkpoint, **kw)
        chans = meta["in_channels"]
        test = _builtin_data(dataset, "test", data_dir, chans)
        calib_t = calib if calib is not None else calibration_batch(_builtin_data(dataset, "train", data_dir, chans),
                                                                     calib_images)
        meta["checkpoint_kind"] = "psum checkpoint"
        return Workload(net=net, test=test, calib=_calib_tensor(calib_t, calib_images),
                        calib_name=f"train[:{calib_images}]" if calib is None else "given",
                        model=model, dataset=dataset, checkpoint=_file_digest(meta["path"]),
                        topk=dataset_info(dataset).topk, meta=meta, metric=metric)

    # -- data first (an image folder's class count feeds the model function) -------------------
    if builtin_data:
        chans = input_channels(model, dataset) if builtin_model else None
        info = dataset_info(dataset)
        if chans is None:
            chans = info.channels
        test = _builtin_data(dataset, "test", data_dir, chans)
        train = lambda: _builtin_data(dataset, "train", data_dir, chans)  # noqa: E731
        data_label, topk, n_classes = dataset, info.topk, info.num_classes
    elif named_data and dataset == "imagefolder":
        test = image_folder(data_dir, "test", size=image_size, normalize=normalize)
        root = Path(data_dir).expanduser()
        train = (lambda: image_folder(data_dir, "train", size=image_size, normalize=normalize)) \
            if (root / "train").is_dir() else None
        data_label, topk, n_classes = f"imagefolder:{root}", (1,), len(test.classes)
    elif named_data:
        test = load_user_dataset(dataset, "test")
        train = (lambda: load_user_dataset(dataset, "train")) if _takes_split(dataset) else None
        data_label, topk, n_classes = dataset, (1,), None
    else:
        test, train = dataset, None
        data_label, topk, n_classes = dataset_name or type(dataset).__name__, (1,), None

    # -- the model, then its weights ------------------------------------------------------------
    meta: dict = {}
    if builtin_model:
        net = build_model(model, n_classes or 10, chans if builtin_data else _channels_of(test),
                          width=default_width(model, dataset if builtin_data else "imagenet"))
        label = model
        if checkpoint is None:
            raise PsumError(f"{model} has no psum checkpoint for {data_label}; give --checkpoint FILE "
                            f"({CHECKPOINT_KINDS})")
    elif isinstance(model, str):
        net, label = build_user_model(model, num_classes=n_classes), model
    elif isinstance(model, nn.Module):
        net, label = model, model_name or type(model).__name__
    else:
        net, label = None, None
    if checkpoint is not None:
        net, kind = load_weights(net, checkpoint, trust=trust, label=label or "the model")
        meta.update(checkpoint_kind=kind, path=str(checkpoint))
        label = label or f"{Path(checkpoint).name}"
    else:
        meta["checkpoint_kind"] = "none (the model's own weights)"
    net = net.eval()

    # -- fit: outputs against classes -------------------------------------------------------------
    if not builtin_data:
        check_items(test, data_label)
    n_out = output_size(net, test)
    check_labels(test, n_out, data_label, exact=named_data and dataset == "imagefolder")
    calib_src = calib if calib is not None else (train() if train is not None else test)
    calib_name = "given" if calib is not None else (f"train[:{calib_images}]" if train is not None
                                                    else f"test[:{calib_images}]")
    return Workload(net=net, test=test, calib=_calib_tensor(calib_src, calib_images), calib_name=calib_name,
                    model=label, dataset=data_label, checkpoint=model_digest(net), topk=topk if n_out >= 5 else (1,),
                    meta=meta, metric=metric)


def _calib_tensor(src, n):
    import torch

    if isinstance(src, torch.Tensor):
        return src[:n]
    return calibration_batch(src, n)


def _channels_of(ds) -> int:
    return int(_first_batch(ds, 1)[0].shape[1])


def _is_psum_checkpoint(path) -> bool:
    """Whether ``path`` is a psum checkpoint (read with ``weights_only=True``, as always)."""
    import torch

    p = Path(path)
    if not p.is_file():
        return True  # let load_checkpoint give its message
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception:
        return False
    return isinstance(obj, dict) and "state_dict" in obj and "model" in obj and "num_classes" in obj
