"""One progress-bar helper for every long-running psum command (training, sweeps, reports).

Bars go to stderr, so stdout stays clean for tables and JSON. One policy for every command
(training, sweeps, ``psum synth``, ``qat``, ``fake2true``, ``sim``, reports):

* ``PSUM_PROGRESS=0`` silences every bar and stage message, whatever the caller asked for;
* ``PSUM_PROGRESS=1`` (or ``enabled=True``, ``--progress``) shows them even into a pipe or log;
* otherwise they show only when stderr is a terminal.

Into a log (stderr not a terminal) a bar is plain ASCII text updated at most every 5 s, with no
cursor-movement escape codes, and inner bars of nested loops (``leave=False``) stay silent, because tqdm can only
erase them with ``ESC[A`` sequences, which a log keeps as garbage.
"""

from __future__ import annotations

import os
import sys

__all__ = ["progress", "progress_enabled", "stage"]


def progress_enabled(enabled: bool | None = None) -> bool:
    """Resolve whether bars show: an explicit choice, else ``PSUM_PROGRESS``, else "stderr is a TTY"."""
    env = os.environ.get("PSUM_PROGRESS", "").strip().lower()
    if env in ("0", "no", "false", "off"):  # the user's "never" beats any caller's "on"
        return False
    if enabled is not None:
        return bool(enabled)
    if env in ("1", "yes", "true", "on"):
        return True
    return sys.stderr.isatty()


def stage(message: str, *, enabled: bool | None = None) -> None:
    """One line ``psum: <message>`` on stderr under the same policy as the bars: for a step that
    has no count to show (building and simulating a unit, calibrating), so a command is never
    silent for seconds on a terminal."""
    if progress_enabled(enabled):
        print(f"psum: {message}", file=sys.stderr, flush=True)


def progress(iterable=None, *, total: int | None = None, desc: str | None = None, unit: str = "it",
             enabled: bool | None = None, leave: bool = True, position: int | None = None, initial: int = 0):
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
    initial : int
        Steps already done (e.g. results read from a cache).

    Returns
    -------
    tqdm.tqdm
        Usable as an iterator and as a context manager; ``update``/``set_postfix_str`` work when
        disabled too.
    """
    from tqdm import tqdm

    on = progress_enabled(enabled)
    tty = sys.stderr.isatty()
    if on and not tty and (not leave or position):
        on = False  # an inner bar in a log: only erasable with escape codes (see the module doc)
    log = dict(position=None, dynamic_ncols=False, ncols=100, ascii=True, mininterval=5.0) if not tty else \
        dict(position=position, dynamic_ncols=True)
    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, leave=leave, initial=initial,
                disable=not on, **log)
