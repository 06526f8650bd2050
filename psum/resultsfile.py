"""Incremental, crash-safe, shareable JSON Lines result files with resume.

A long sweep appends one JSON object per finished row. Each append writes the complete line and
``fsync``\\ s the file, so after a crash or Ctrl-C the file holds every finished row and at most one
torn last line. Opening the file again drops such a torn line, so resumed runs never see half a
row. Rows carry a key built from chosen fields (model, dataset, spec, layer, ...); a resumed run
asks :meth:`ResultsFile.get` before computing a row and skips it when the key is already there.

What may be dropped, and nothing else: a final line **without** its newline that is the start of a
row psum would write (it begins with ``{`` and is not yet valid JSON). Every other defect (a
complete line that is not JSON, not an object, or lacks a field or has one of the wrong type; a
file that is not UTF-8) is refused with a one-line ``ValueError`` naming the file and line, and
the file is left untouched: ``--out notes.txt`` must never eat someone's notes.

Several processes may share one file. Appends and the torn-line repair hold an exclusive ``flock``
on the file, readers a shared one, so no reader sees (or repairs away) another writer's line in
flight. Concurrent runs share the work through *claims* (:meth:`ResultsFile.claim`): before
computing a row a run takes a lock named after the row's key, re-reads the rows others appended
(:meth:`ResultsFile.refresh`) and computes only when the row is still missing. Claims are
``flock`` s on small files in a hidden folder beside the results file (``.NAME.claims/``), so the
kernel releases them when their holder dies, even by SIGKILL: a crashed run never blocks a row.

Why append + fsync rather than rewrite the whole file per row: the cost stays O(row) per append,
and the only torn state possible (a partial last line) is detected and repaired on open. Why
``flock`` and not ``fcntl`` record locks: record locks are dropped when *any* descriptor of the
file is closed by the process, which would silently release a claim; ``flock`` locks belong to
one open file.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from pathlib import Path

from ._util import json_type_check

__all__ = ["ResultsFile", "read_rows", "Claim"]


def read_rows(path, required=()) -> list[dict]:
    """Every complete row of a JSON Lines results file, schema-checked; ``[]`` if absent.

    Parameters
    ----------
    path : str or Path
        The file.
    required : sequence of str, or mapping of str to type name
        Fields every row must hold (the fields its reader needs); with a mapping, also each
        field's JSON type (:func:`psum._util.json_type_check`: ``"float"``, ``"str?"``, ...).

    Returns
    -------
    list of dict
        The rows of the complete lines, in file order; a torn last line (no final newline, the
        start of a JSON object) is ignored, as :class:`ResultsFile` would repair it.

    Raises
    ------
    ValueError
        A line that is not valid UTF-8 or JSON, not a JSON object, lacks a ``required`` field or
        has one of another type: one line naming the file and line (``FILE:LINE: ...``).
    """
    path = Path(path)
    if not path.exists():
        return []
    with file_lock_of(path, shared=True) as fh:
        data = fh.read()
    rows, _good = _parse(data, path, _schema(required))
    return rows


def file_lock_of(path: Path, *, shared: bool):
    """The open file ``path`` (binary, read/write) holding an ``flock``; a context manager."""
    return _Locked(path, shared)


class _Locked:
    def __init__(self, path: Path, shared: bool):
        self.path, self.shared = path, shared

    def __enter__(self):
        mode = "rb" if self.shared else "r+b"
        self.fh = open(self.path, mode)
        fcntl.flock(self.fh.fileno(), fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX)
        return self.fh

    def __exit__(self, *exc):
        self.fh.close()  # releases the flock
        return False


def _schema(required) -> dict:
    """``{field: predicate}`` from a sequence of names (presence only) or a name->type mapping."""
    if isinstance(required, dict):
        return {name: (json_type_check(kind), str(kind)) for name, kind in required.items()}
    return {name: (json_type_check("any"), "any") for name in required}


def _parse(data: bytes, path: Path, schema: dict) -> tuple[list[dict], int]:
    """Rows of the file and the byte length of the part to keep (all of it, or all but a torn tail).

    A complete line (ending in a newline) must be a valid row; psum only appends whole objects
    with their newline in one write, so any defect there is not a crash's leftover but a foreign
    or edited file, refused at once with its line number. Only a final line without a newline may
    be torn: it is dropped when it is the start of a JSON object that does not parse yet.
    """
    rows, pos, lineno = [], 0, 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        last = end < 0
        line = data[pos:] if last else data[pos:end]
        lineno += 1
        if line.strip():
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not valid UTF-8 (byte {exc.start + 1} of the line); "
                                 f"{path} is not a JSON Lines results file") from None
            try:
                row = json.loads(text)
            # Why ValueError and RecursionError, not only JSONDecodeError: over-long integers raise
            # plain ValueError, deep nesting raises RecursionError; a results file from elsewhere
            # must give a one-line message, never a traceback.
            except (ValueError, RecursionError):
                if last and text.lstrip().startswith("{"):
                    return rows, pos  # a torn last row: keep everything before it
                raise ValueError(f"{path}:{lineno}: not valid JSON; {path} is not a JSON Lines results file "
                                 f"(bad line after row {len(rows)})") from None
            _check_row(row, path, lineno, schema)
            rows.append(row)
        if last:
            break
        pos = end + 1
    return rows, len(data)


def _check_row(row, path: Path, lineno: int, schema: dict) -> None:
    if not isinstance(row, dict):
        raise ValueError(f"{path}:{lineno}: a results row must be a JSON object, not {_json_kind(row)}")
    missing = [k for k in schema if k not in row]
    if missing:
        raise ValueError(f"{path}:{lineno}: results row lacks field(s) {', '.join(missing)} "
                         f"(rows here need {', '.join(schema)})")
    for name, (ok, kind) in schema.items():
        if not ok(row[name]):
            raise ValueError(f"{path}:{lineno}: results field {name} must be {_TYPE_WORDS.get(kind, kind)}, "
                             f"not {_json_kind(row[name])}")


_TYPE_WORDS = {"float": "a number", "int": "an integer", "str": "a string", "bool": "a boolean",
               "dict": "an object", "list": "a list", "float?": "a number or null", "int?": "an integer or null",
               "str?": "a string or null"}


def _json_kind(value) -> str:
    """The JSON type name of a decoded value, for messages (``a list``, ``a number``...)."""
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


class Claim:
    """A held claim on one row (see :meth:`ResultsFile.claim`); :meth:`release` or use ``with``."""

    def __init__(self, fd: int, path: Path):
        self._fd, self.path = fd, path

    def release(self) -> None:
        """Give the claim up (idempotent); its file and, when empty, the claims folder go too."""
        if self._fd is not None:
            # Unlink before unlocking: a waiter that wins the lock on the unlinked file sees that
            # it is stale (ResultsFile.claim compares inodes) and takes a fresh one.
            self.path.unlink(missing_ok=True)
            os.close(self._fd)  # releases the flock
            self._fd = None
            try:
                self.path.parent.rmdir()
            except OSError:  # other claims still held, or already gone
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
        return False


class ResultsFile:
    """A JSON Lines file of result rows, keyed for resume, shareable between processes.

    Parameters
    ----------
    path : str or Path
        The file; created (with its folder) on the first append.
    key_fields : sequence of str
        Row fields whose values identify a row; a row whose key is already present is "done".
    required : sequence of str, or mapping of str to type name, optional
        Fields every row read back must hold: the fields its reader indexes (its schema); with a
        mapping also their JSON types (``{"accuracy": "float", "calib": "str?"}``, see
        :func:`psum._util.json_type_check`). A row without one, or with a value of another type,
        is refused on open, rather than ending in a ``KeyError`` or ``TypeError`` when it is
        used. Default none (older files may lack newer key fields: such rows key as ``None`` and
        are simply recomputed).

    Raises
    ------
    ValueError
        If the file exists and is not a psum results file (see the module docstring): one line,
        ``FILE:LINE: ...``, and the file is not modified.
    IsADirectoryError
        ``path`` is a folder.
    """

    def __init__(self, path, key_fields, *, required=None):
        self.path = Path(path)
        self.key_fields = tuple(key_fields)
        if not self.key_fields:
            raise ValueError("key_fields must name at least one field, not ()")
        self._schema = _schema(required or ())
        self.required = tuple(self._schema)
        self._rows: dict[tuple, dict] = {}
        if self.path.is_dir():
            raise IsADirectoryError(21, "is a directory, not a results file", str(self.path))
        if self.path.exists():
            # Why the exclusive lock: another run may be appending right now; its line in flight
            # must not be mistaken for a torn one and cut off.
            with file_lock_of(self.path, shared=False) as fh:
                data = fh.read()
                rows, good = _parse(data, self.path, self._schema)
                if good < len(data):
                    # Why truncate: a crash during an append left a partial line; drop it so the
                    # next append starts on a fresh line.
                    fh.truncate(good)
                    fh.flush()
                    os.fsync(fh.fileno())
                elif data and not data.endswith(b"\n"):
                    # A whole row whose newline was lost: keep it, and end its line.
                    fh.seek(0, os.SEEK_END)
                    fh.write(b"\n")
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

    def refresh(self) -> int:
        """Read the rows other processes appended since; returns how many keys are new.

        A torn last line is another writer's line in flight (or a crash's leftover): ignored here,
        never repaired (only :class:`ResultsFile` opening the file repairs, under its lock).
        """
        if not self.path.exists():
            return 0
        with file_lock_of(self.path, shared=True) as fh:
            data = fh.read()
        rows, _good = _parse(data, self.path, self._schema)
        before = len(self._rows)
        for row in rows:
            self._rows[self.key(row)] = row
        return len(self._rows) - before

    def claims_dir(self) -> Path:
        """The hidden folder of claim locks beside the file: ``.NAME.claims``."""
        return self.path.parent / f".{self.path.name}.claims"

    def claim(self, *, wait: bool = True, **fields) -> Claim | None:
        """Claim the row with these key values, so that no other run computes it meanwhile.

        Parameters
        ----------
        wait : bool
            Block until the claim is free (then the holder has usually appended the row: call
            :meth:`refresh` and :meth:`get` before computing). ``False``: return ``None`` at once
            when another process holds it, so the caller can do other rows first.
        **fields
            The row's key values.

        Returns
        -------
        Claim or None
            The held claim (release it after appending the row), or ``None`` (busy, ``wait=False``).
        """
        folder = self.claims_dir()
        name = hashlib.sha256("\x1f".join(self.key(fields)).encode()).hexdigest()[:32]
        path = folder / name
        folder.parent.mkdir(parents=True, exist_ok=True)
        while True:
            # Why not Path.mkdir(exist_ok=True): it re-checks is_dir() after EEXIST, and a release
            # that removes the emptied folder in between makes it raise; the open below retries.
            try:
                os.mkdir(folder)
            except FileExistsError:
                pass
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            except FileNotFoundError:  # the folder was tidied away between mkdir and open: again
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
                # Why compare inodes: the previous holder unlinks the claim file on release; a
                # lock won on that unlinked file guards nothing, so take the current one instead.
                if os.fstat(fd).st_ino == os.stat(path).st_ino:
                    return Claim(fd, path)
            except BlockingIOError:
                os.close(fd)
                return None
            except FileNotFoundError:
                pass
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)

    def append(self, row: dict) -> None:
        """Write one row durably: the whole line in one write under the file's lock, then fsync."""
        line = json.dumps(row, sort_keys=False, allow_nan=True) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            data = memoryview(line.encode())
            while data:  # os.write may write less than asked (signals, huge rows)
                data = data[os.write(fd, data):]
            os.fsync(fd)
        finally:
            os.close(fd)
        self._rows[self.key(row)] = row
