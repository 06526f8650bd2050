"""Small helpers shared by every layer: option validation, atomic writes, tool lookup, text tables.

A leaf module: it imports nothing of psum except :mod:`psum.errors`, so any package may use it
(``tests/test_layers.py``). Written once here instead of once per caller (Amaranth keeps the same
kind of helpers in ``amaranth/_utils.py``).
"""

from __future__ import annotations

import contextlib
import errno
import numbers
import os
import shutil
import sys
import tempfile
from pathlib import Path

from .errors import PsumError

__all__ = ["check_int", "atomic_path", "atomic_write", "find_tool", "format_table"]


def check_int(name: str, value, lo: int | None = None, hi: int | None = None) -> int:
    """Return ``value`` as a Python int, or raise with psum's one message shape.

    The message is ``"<name> must be an integer between <lo> and <hi>, not <value!r>"`` (or
    ``">= <lo>"`` / ``"<= <hi>"`` when only one bound is given, plain ``"an integer"`` with none).

    Parameters
    ----------
    name : str
        What the value is, as the user knows it (``"exponent bits"``, ``"--limit"``).
    value : object
        The value to check. Any :class:`numbers.Integral` except ``bool`` is accepted.
    lo, hi : int, optional
        Inclusive bounds.

    Raises
    ------
    TypeError
        If ``value`` is not an integer (``bool`` and ``3.0`` included), as Amaranth does.
    ValueError
        If it lies outside ``[lo, hi]``.
    """
    if lo is not None and hi is not None:
        want = f"an integer between {lo} and {hi}"
    elif lo is not None:
        want = f"an integer >= {lo}"
    elif hi is not None:
        want = f"an integer <= {hi}"
    else:
        want = "an integer"
    message = f"{name} must be {want}, not {value!r}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(message)
    value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(message)
    return value


@contextlib.contextmanager
def atomic_path(path, *, suffix: str | None = None):
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one step.

    Readers see the old file or the new one, never half of one, and an interrupted writer leaves
    no temporary file behind. ``suffix`` (default: ``path``'s own) is kept so that writers that
    choose the format from the extension (matplotlib, ``torch.save``) still work.

    Raises
    ------
    Whatever the body raises; the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    if path.is_dir():  # checked first: else the error would name the temporary file, not the user's path
        raise IsADirectoryError(errno.EISDIR, "is a directory, not a file", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix or path.suffix or ".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as fh:  # durable before it becomes visible
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path, data) -> Path:
    """Write ``data`` (``str`` as UTF-8, or ``bytes``) to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
    return Path(path)


def find_tool(name: str, hint: str) -> str:
    """Path of the program ``name``: the one beside this interpreter (the venv's), else on PATH.

    Raises
    ------
    PsumError
        ``"<name> not found: <hint>"`` when neither exists.
    """
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if found is None:
        raise PsumError(f"{name} not found: {hint}")
    return found


def format_table(rows, cols, *, floats: str = "{:.6g}", missing: str = "") -> str:
    """Rows of dicts as a plain text table, one column per name in ``cols``, left-aligned.

    ``floats`` formats float cells; ``None`` and absent cells print as ``missing``. No trailing
    spaces; the header counts towards each column's width.
    """
    def cell(v):
        if v is None:
            return missing
        if isinstance(v, float):
            return floats.format(v)
        return str(v)

    table = [[cell(r.get(c)) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(t[i]) for t in table]) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(t, widths)).rstrip() for t in table]
    return "\n".join(lines)
