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


def read_rows(path) -> list[dict]:
    """Every complete row of a JSON Lines file (a torn last line is ignored); ``[]`` if absent."""
    path = Path(path)
    if not path.exists():
        return []
    rows, _ = _parse(path.read_bytes())
    return rows


def _parse(data: bytes) -> tuple[list[dict], int]:
    """Rows of the complete lines and the byte length of the good prefix."""
    rows, good = [], 0
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        if end < 0:  # torn last line: no newline yet
            break
        line = data[pos:end].strip()
        if line:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                break  # a torn line followed by nothing valid: keep the prefix only
            if not isinstance(row, dict):
                break
            rows.append(row)
        pos = end + 1
        good = pos
    return rows, good


class ResultsFile:
    """A JSON Lines file of result rows, keyed for resume.

    Parameters
    ----------
    path : str or Path
        The file; created (with its folder) on the first append.
    key_fields : sequence of str
        Row fields whose values identify a row; a row whose key is already present is "done".

    Raises
    ------
    ValueError
        If the file exists but its content before a torn last line is not JSON Lines of objects.
    """

    def __init__(self, path, key_fields):
        self.path = Path(path)
        self.key_fields = tuple(key_fields)
        if not self.key_fields:
            raise ValueError("key_fields must name at least one field, not ()")
        self._rows: dict[tuple, dict] = {}
        if self.path.exists():
            data = self.path.read_bytes()
            rows, good = _parse(data)
            tail = data[good:]
            if tail.strip():
                if b"\n" in tail.rstrip(b"\n"):
                    raise ValueError(f"{self.path} is not a JSON Lines results file (bad line after row {len(rows)})")
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
