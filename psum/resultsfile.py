"""Incremental, crash-safe JSON Lines result files with resume.

A long sweep appends one JSON object per finished row. Each append writes the complete line and
``fsync``\\ s the file, so after a crash or Ctrl-C the file holds every finished row and at most one
torn last line. Opening the file again drops such a torn line (a line without its final newline,
or one that is not valid JSON), so resumed runs never see half a row. Rows carry a key built from
chosen fields (model, dataset, spec, layer, ...); a resumed run asks :meth:`ResultsFile.get` before
computing a row and skips it when the key is already there.

Why append + fsync rather than rewrite the whole file per row: the cost stays O(row) per append,
and the only torn state possible (a partial last line) is detected and repaired on open.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["ResultsFile", "read_rows"]


def read_rows(path, required=()) -> list[dict]:
    """Every complete row of a JSON Lines results file, schema-checked; ``[]`` if absent.

    Parameters
    ----------
    path : str or Path
        The file.
    required : sequence of str
        Fields every row must hold (the fields its reader needs).

    Returns
    -------
    list of dict
        The rows of the complete lines, in file order; a torn last line (no final newline, or not
        valid JSON) is ignored, as :class:`ResultsFile` would repair it.

    Raises
    ------
    ValueError
        A complete line that is not a JSON object, lacks a ``required`` field, or is not valid JSON
        before the last line: one line naming the file and line (``FILE:LINE: ...``).
    """
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    rows, good = _parse(data, path, tuple(required))
    _check_tail(data, good, len(rows), path)
    return rows


def _parse(data: bytes, path: Path, required: tuple) -> tuple[list[dict], int]:
    """Rows of the complete lines and the byte length of the good prefix.

    Parsing stops at the first line that is not valid JSON (the caller decides whether it is a torn
    last line or garbage); a complete line that *is* valid JSON but not an object, or an object
    without a ``required`` field, is never a crash's leftover (psum only appends whole objects), so
    it is refused at once with its line number.
    """
    rows, good = [], 0
    pos, lineno = 0, 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        if end < 0:  # torn last line: no newline yet
            break
        lineno += 1
        line = data[pos:end].strip()
        if line:
            try:
                row = json.loads(line)
            # Why ValueError and RecursionError, not only JSONDecodeError: bad UTF-8 and over-long
            # integers raise plain ValueError, deep nesting raises RecursionError; a results file
            # from elsewhere must give a one-line message, never a traceback.
            except (ValueError, RecursionError):
                break  # a torn line followed by nothing valid: keep the prefix only
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{lineno}: a results row must be a JSON object, "
                                 f"not {_json_kind(row)}")
            missing = [k for k in required if k not in row]
            if missing:
                raise ValueError(f"{path}:{lineno}: results row lacks field(s) {', '.join(missing)} "
                                 f"(rows here need {', '.join(required)})")
            rows.append(row)
        pos = end + 1
        good = pos
    return rows, good


def _check_tail(data: bytes, good: int, n_rows: int, path: Path) -> bool:
    """Whether bytes after the good prefix are a torn last line (``True``; ``False`` if none).

    Raises ``ValueError`` when they hold more than one line: garbage, not a crash's leftover.
    """
    tail = data[good:]
    if not tail.strip():
        return False
    if b"\n" in tail.rstrip(b"\n"):
        lineno = data[:good].count(b"\n") + 1  # the bad line starts right after the good prefix
        raise ValueError(f"{path}:{lineno}: not valid JSON; {path} is not a JSON Lines results file "
                         f"(bad line after row {n_rows})")
    return True


def _json_kind(value) -> str:
    """The JSON type name of a decoded value, for messages (``a list``, ``a number``...)."""
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


class ResultsFile:
    """A JSON Lines file of result rows, keyed for resume.

    Parameters
    ----------
    path : str or Path
        The file; created (with its folder) on the first append.
    key_fields : sequence of str
        Row fields whose values identify a row; a row whose key is already present is "done".
    required : sequence of str, optional
        Fields every row read back must hold: the fields its reader indexes (its schema). A row
        without one is refused on open, rather than ending in a ``KeyError`` when it is used.
        Default none (older files may lack newer key fields: such rows key as ``None`` and are
        simply recomputed).

    Raises
    ------
    ValueError
        If the file exists and, before a torn last line, holds a line that is not valid JSON, not
        a JSON object, or an object without a ``required`` field (one line: ``FILE:LINE: ...``).
    """

    def __init__(self, path, key_fields, *, required=None):
        self.path = Path(path)
        self.key_fields = tuple(key_fields)
        if not self.key_fields:
            raise ValueError("key_fields must name at least one field, not ()")
        self.required = tuple(required or ())
        self._rows: dict[tuple, dict] = {}
        if self.path.exists():
            data = self.path.read_bytes()
            rows, good = _parse(data, self.path, self.required)
            if _check_tail(data, good, len(rows), self.path):
                # Why truncate: a crash during an append leaves a partial line; drop it so the next
                # append starts on a fresh line.
                with open(self.path, "r+b") as fh:
                    fh.truncate(good)
                    fh.flush()
                    os.fsync(fh.fileno())
            for row in rows:
                self._rows[self.key(row)] = row

    def key(self, row: dict) -> tuple:
        """The identity of a row: its values of :attr:`key_fields` (JSON-normalised)."""
        return tuple(json.dumps(row.get(k), sort_keys=True) for k in self.key_fields)

    def get(self, **fields) -> dict | None:
        """The finished row with these key values, or ``None``."""
        return self._rows.get(self.key(fields))

    def __contains__(self, row: dict) -> bool:
        return self.key(row) in self._rows

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def rows(self) -> list[dict]:
        """Finished rows, in file order (a re-appended key keeps its latest value)."""
        return list(self._rows.values())

    def append(self, row: dict) -> None:
        """Write one row durably: the whole line, then flush and fsync."""
        line = json.dumps(row, sort_keys=False, allow_nan=True) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as fh:
            fh.write(line.encode())
            fh.flush()
            os.fsync(fh.fileno())
        self._rows[self.key(row)] = row
