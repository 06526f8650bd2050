"""The synthesis result cache: one JSON file per (spec, flow version, library, stimulus) key.

Files are written atomically (temporary file + rename), so parallel workers and interrupted runs
never leave a half-written entry; a corrupt entry, or one that is not a JSON object with the
fields (and types) its reader asks for, reads as a miss.

The default directory is ``synth`` under psum's one cache root (:func:`psum.paths.cache_dir`:
``$PSUM_CACHE_DIR``, else ``~/.cache/psum``): results outlive a checkout and are shared by every
command.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from psum import paths
from psum._util import atomic_write

__all__ = ["default_cache_dir", "cache_key", "load", "store"]


def default_cache_dir() -> Path:
    """``$PSUM_CACHE_DIR/synth``, else ``~/.cache/psum/synth`` (:func:`psum.paths.cache_dir`)."""
    return paths.cache_dir("synth")


def cache_key(*parts) -> str:
    """A stable hex key of ``parts`` (strings and numbers)."""
    text = "\x1f".join(str(p) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def load(cache_dir, key: str, *, fields=None) -> dict | None:
    """The stored entry for ``key``, or ``None`` (a miss).

    Entries are parsed as JSON data only (never pickled or evaluated), and their schema is checked:
    anything but a JSON object holding ``fields`` is a miss, so a corrupt, foreign or hand-edited
    entry is recomputed rather than crashing the reader or being silently used.

    Parameters
    ----------
    cache_dir : str or Path
        The cache folder.
    key : str
        The entry's key (:func:`cache_key`).
    fields : mapping of str to str or type, optional
        Fields the entry must hold, each with its type: ``"float"`` (an int or float), ``"int"``,
        ``"str"``, ``"bool"``, ``"dict"``, ``"list"`` (a name, or the Python type itself).

    Returns
    -------
    dict or None
        The entry; ``None`` when missing, unreadable, not valid JSON, not an object, or without a
        field of ``fields`` (or with a value of another type).

    Raises
    ------
    ValueError
        ``fields`` names a type other than those above (a programming error, not a bad entry).
    """
    checks = {name: _type_check(kind) for name, kind in (fields or {}).items()}
    path = Path(cache_dir) / f"{key}.json"
    try:
        data = json.loads(path.read_text())
    # Why RecursionError too: deeply nested JSON raises it, not ValueError.
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    if not all(name in data and ok(data[name]) for name, ok in checks.items()):
        return None
    return data


# JSON type checks for :func:`load`. Why bool is excluded from the numbers: ``True`` is an int in
# Python, but a cache entry with ``"ge": true`` is not an area.
_TYPE_CHECKS = {
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "dict": lambda v: isinstance(v, dict),
    "list": lambda v: isinstance(v, list),
}


def _type_check(kind):
    name = kind if isinstance(kind, str) else getattr(kind, "__name__", repr(kind))
    if name not in _TYPE_CHECKS:
        raise ValueError(f"cache field type must be one of {', '.join(_TYPE_CHECKS)}, not {name!r}")
    return _TYPE_CHECKS[name]


def store(cache_dir, key: str, data: dict) -> Path:
    """Write ``data`` for ``key`` atomically; returns the file's path."""
    return atomic_write(Path(cache_dir) / f"{key}.json", json.dumps(data, indent=1, sort_keys=True))
