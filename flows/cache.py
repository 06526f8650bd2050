"""The synthesis result cache: one JSON file per (spec, flow version, library, stimulus) key.

Files are written atomically (temporary file + rename), so parallel workers and interrupted runs
never leave a half-written entry; a corrupt entry reads as a miss.

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


def load(cache_dir, key: str) -> dict | None:
    """The stored entry for ``key``, or ``None`` (missing or unreadable)."""
    path = Path(cache_dir) / f"{key}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def store(cache_dir, key: str, data: dict) -> Path:
    """Write ``data`` for ``key`` atomically; returns the file's path."""
    return atomic_write(Path(cache_dir) / f"{key}.json", json.dumps(data, indent=1, sort_keys=True))
