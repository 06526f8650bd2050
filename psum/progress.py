"""One progress-bar helper for every long-running psum command (training, sweeps, reports).

Bars go to stderr, so stdout stays clean for tables and JSON. They show only when stderr is a
terminal, unless asked for: ``enabled=True`` or the environment variable ``PSUM_PROGRESS=1``
(``PSUM_PROGRESS=0`` silences them everywhere).
"""

from __future__ import annotations

import os
import sys

__all__ = ["progress", "progress_enabled"]


def progress_enabled(enabled: bool | None = None) -> bool:
    """Resolve whether bars show: an explicit choice, else ``PSUM_PROGRESS``, else "stderr is a TTY"."""
    if enabled is not None:
        return bool(enabled)
    env = os.environ.get("PSUM_PROGRESS", "").strip().lower()
    if env in ("1", "yes", "true", "on"):
        return True
    if env in ("0", "no", "false", "off"):
        return False
    return sys.stderr.isatty()


def progress(iterable=None, *, total: int | None = None, desc: str | None = None, unit: str = "it",
             enabled: bool | None = None, leave: bool = True, position: int | None = None):
    """A :class:`tqdm.tqdm` bar on stderr (a silent one when disabled).

    Parameters
    ----------
    iterable : iterable, optional
        What to iterate over; omit it and call ``update(n)`` yourself.
    total : int, optional
        Number of steps (taken from ``len(iterable)`` when possible).
    desc, unit : str
        Label and unit shown by tqdm.
    enabled : bool, optional
        Force the bar on or off; default: see :func:`progress_enabled`.
    leave : bool
        Keep the finished bar on screen (inner bars pass ``False``).
    position : int, optional
        tqdm line for nested bars.

    Returns
    -------
    tqdm.tqdm
        Usable as an iterator and as a context manager; ``update``/``set_postfix_str`` work when
        disabled too.
    """
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, leave=leave,
                position=position, disable=not progress_enabled(enabled), dynamic_ncols=True)
