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
import warnings

from psum._util import atomic_write, json_type_check

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


def _type_check(kind):
    try:
        return json_type_check(kind)  # psum's one table of JSON field types, shared with result rows
    except ValueError:
        name = kind if isinstance(kind, str) else getattr(kind, "__name__", repr(kind))
        raise ValueError(f"cache field type must be one of float, int, str, bool, dict, list, not {name!r}") from None


def store(cache_dir, key: str, data: dict) -> Path | None:
    """Write ``data`` for ``key`` atomically; returns the file's path, or ``None`` if it cannot.

    The entry gets the mode a plain ``open`` would give (0666 less the umask, not ``mkstemp``'s
    0600), so a cache folder shared by a group stays readable to all of them. An unwritable cache
    (read-only, full, permission denied) is a warning, not a failure: the result was computed and
    is returned to the caller anyway; only its reuse is lost.
    """
    path = Path(cache_dir) / f"{key}.json"
    try:
        return atomic_write(path, json.dumps(data, indent=1, sort_keys=True))
    except OSError as exc:
        warnings.warn(f"psum: cannot write the cache entry {path}: {exc.strerror or exc}; the result is not "
                      "cached", RuntimeWarning, stacklevel=2)
        return None
