"""Where psum reads and writes: one cache root, outputs relative to the caller, shipped data.

* **Cache** (compiled C kernel, RTL simulation builds, synthesis results): ``$PSUM_CACHE_DIR``,
  else the platform's user cache directory (``$XDG_CACHE_HOME/psum``, default ``~/.cache/psum``).
  Each user gets a subfolder: :func:`cache_dir` ``("kernels")``, ``("sim")``, ``("synth")``.
* **Outputs** (reports, checkpoints you train, result files) go where the caller says, by default
  relative to the current working directory: never into the installed package.
* **Shipped data** (the digits checkpoints) is package data, read from the installed package.

A leaf module: it imports nothing of psum.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "checkpoint_dir", "shipped_checkpoint"]


def cache_dir(*parts: str) -> Path:
    """``$PSUM_CACHE_DIR/<parts>`` or ``<user cache dir>/psum/<parts>`` (not created here)."""
    env = os.environ.get("PSUM_CACHE_DIR")
    if env:
        root = Path(env)
    else:
        base = os.environ.get("XDG_CACHE_HOME")
        root = (Path(base) if base else Path.home() / ".cache") / "psum"
    return root.joinpath(*parts)


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
