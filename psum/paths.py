"""Where psum reads and writes: one cache root, outputs relative to the caller, shipped data.

* **Cache** (compiled C kernel, RTL simulation builds, synthesis results): ``$PSUM_CACHE_DIR``,
  else the platform's user cache directory (``$XDG_CACHE_HOME/psum``, default ``~/.cache/psum``).
  Each user gets a subfolder: :func:`cache_dir` ``("kernels")``, ``("sim")``, ``("synth")``.
* **Outputs** go where the caller says, by default relative to the current working directory,
  never into the installed package: reports and report sections under :func:`results_dir`
  (``$PSUM_RESULTS_DIR``, else the working directory: ``psum report`` writes
  ``./<model>-<dataset>/``, ``psum fake2true`` writes ``./fake2true/``), checkpoints you train
  under :func:`checkpoint_dir` (``$PSUM_CHECKPOINT_DIR``, else ``./checkpoints/``).
* **Shipped data** (the digits checkpoints) is package data, read from the installed package;
  :func:`find_checkpoint` looks in :func:`checkpoint_dir` first, then there.

A leaf module: it imports nothing of psum.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "results_dir", "checkpoint_dir", "shipped_checkpoint", "find_checkpoint"]


def cache_dir(*parts: str) -> Path:
    """``$PSUM_CACHE_DIR/<parts>`` or ``<user cache dir>/psum/<parts>`` (not created here)."""
    env = os.environ.get("PSUM_CACHE_DIR")
    if env:
        root = Path(env)
    else:
        base = os.environ.get("XDG_CACHE_HOME")
        root = (Path(base) if base else Path.home() / ".cache") / "psum"
    return root.joinpath(*parts)


def results_dir(*parts: str) -> Path:
    """``$PSUM_RESULTS_DIR/<parts>``, else ``<parts>`` relative to the working directory (not created).

    The default home of generated outputs: ``psum report`` writes ``results_dir("<model>-<dataset>")``
    and ``psum fake2true`` ``results_dir("fake2true")``, side by side, so the report links the
    section (``../fake2true/fake2true.md``) when both are there.
    """
    env = os.environ.get("PSUM_RESULTS_DIR")
    return (Path(env) if env else Path(".")).joinpath(*parts)


def checkpoint_dir() -> Path:
    """Where checkpoints are written and looked up first: ``$PSUM_CHECKPOINT_DIR``, else
    ``./checkpoints`` in the current working directory."""
    env = os.environ.get("PSUM_CHECKPOINT_DIR")
    return Path(env) if env else Path("checkpoints")


def shipped_checkpoint(name: str) -> Path | None:
    """The checkpoint ``name`` (e.g. ``"lenet5-digits.pt"``) shipped with psum, or ``None``.

    Read from the installed package (``psum.nets`` package data), editable or not.
    """
    from importlib import resources

    ref = resources.files("psum.nets").joinpath("checkpoints", name)
    return Path(str(ref)) if ref.is_file() else None


def find_checkpoint(name: str) -> Path | None:
    """The checkpoint file ``name`` to read: ``checkpoint_dir() / name`` when it exists (a network
    you trained wins), else the shipped one, else ``None``."""
    mine = checkpoint_dir() / name
    if mine.is_file():
        return mine
    return shipped_checkpoint(name)
