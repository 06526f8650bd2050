"""Small helpers shared by every layer: option validation, atomic writes, tool lookup, text tables.

A leaf module: it imports nothing of psum except :mod:`psum.errors`, so any package may use it
(``tests/test_layers.py``). Written once here instead of once per caller (Amaranth keeps the same
kind of helpers in ``amaranth/_utils.py``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import numbers
import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

from .errors import PsumError

__all__ = ["check_int", "atomic_path", "atomic_write", "find_tool", "format_table", "check_output_path",
           "check_output_dir", "file_lock", "json_type_check", "die_with_parent", "dies_with_me",
           "umask_mode", "private_tmpdir", "remove_stale_tmpdirs", "simulator_dies_with_me", "command_name"]


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
    _refuse_special(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(path)
        # Why the pid in the name: a writer killed by SIGKILL cannot remove its temporary file;
        # the next writer of the same path removes those of dead pids.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.",
                                   suffix=suffix or path.suffix or ".tmp")
    except OSError as exc:  # name the user's file, not psum's temporary one
        raise type(exc)(exc.errno, exc.strerror, str(path)) from None
    # Why chmod: mkstemp creates 0600, so a file shared through a common cache or results folder
    # would become unreadable to the other users of that folder; give it the mode a plain open()
    # would (0666 less the umask).
    os.fchmod(fd, umask_mode())
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as fh:  # durable before it becomes visible
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _refuse_special(path: Path) -> None:
    """Refuse an existing output that is not a regular file (a device, FIFO, socket or a link to one).

    Why: :func:`atomic_path` writes beside ``path`` and then renames over it, so ``-o /dev/null``
    run as root replaced the device node with a regular file (and ``/dev/full`` reported
    "wrote"), breaking every other program on the machine.

    Raises
    ------
    OSError
        ``EINVAL`` with ``filename`` set to ``path``: ``cannot write PATH: not a regular file ...``.
    """
    if path.exists() and not path.is_file():
        raise OSError(errno.EINVAL, "not a regular file (psum writes a new file and renames it over the old one)",
                      str(path))


def _remove_stale_temps(path: Path) -> None:
    """Remove ``.<name>.<pid>.*`` temporaries of :func:`atomic_path` left by dead writers."""
    for tmp in path.parent.glob(f".{glob_escape(path.name)}.*.*"):
        pid = tmp.name[len(path.name) + 2:].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            tmp.unlink(missing_ok=True)


def glob_escape(name: str) -> str:
    """``name`` with glob's special characters made literal (``[`` ``*`` ``?``)."""
    import glob

    return glob.escape(name)


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


def umask_mode(base: int = 0o666) -> int:
    """``base`` less the process umask: the mode :func:`open` would give a new file."""
    mask = os.umask(0)
    os.umask(mask)  # why set it back at once: reading the umask is only possible by setting it
    return base & ~mask


def check_output_path(path, what: str = "output") -> Path:
    """Refuse, before any work, an output file that cannot be written; returns it as a Path.

    Checks what can be checked without writing: ``path`` is not a folder, its nearest existing
    ancestor is a folder (not a file) that this process may write and enter, and an existing
    ``path`` is writable. A full disk is only found when writing (the CLI then prints one line).

    Raises
    ------
    PermissionError, IsADirectoryError, NotADirectoryError
        ``OSError`` with ``filename`` set to ``path`` and a short reason, which the CLI prints as
        ``psum CMD: error: cannot write PATH: reason``.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
    _refuse_special(path)
    if path.exists() and not os.access(path, os.W_OK):
        raise PermissionError(errno.EACCES, "permission denied", str(path))
    _check_parent(path, path.parent)
    return path


def check_output_dir(path, what: str = "output folder") -> Path:
    """Refuse, before any work, an output folder that cannot be created or written; returns it.

    Raises
    ------
    NotADirectoryError, PermissionError
        As :func:`check_output_path`.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "exists and is not a directory", str(path))
    if path.is_dir():
        _probe(path, path)
        return path
    _check_parent(path, path.parent)
    return path


def _check_parent(path: Path, parent: Path) -> None:
    """The nearest existing ancestor of ``path`` must be a writable folder."""
    parent = Path(os.path.abspath(parent))
    while not parent.exists():
        if parent.is_symlink():  # a dangling link: mkdir would fail on it
            raise FileNotFoundError(errno.ENOENT, f"{parent} is a dangling link", str(path))
        parent = parent.parent
    if not parent.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{parent} is not a directory", str(path))
    _probe(parent, path)


def _probe(folder: Path, path: Path) -> None:
    """Create and remove a temporary file in ``folder``: the only test that a read-only mount,
    a pseudo file system or a quota refuses alike, for every user (``os.access`` says yes to root)."""
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".psum-probe-")
    except OSError as exc:
        where = "" if folder == path else f" in {folder}"
        raise type(exc)(exc.errno, f"{(exc.strerror or str(exc)).lower()}{where}", str(path)) from None
    os.close(fd)
    os.unlink(tmp)


@contextlib.contextmanager
def file_lock(path, *, shared: bool = False, blocking: bool = True):
    """Hold an advisory ``flock`` on ``path`` (created if absent) for the body; yields held or not.

    ``flock`` locks belong to the open file and are released by the kernel when the holder dies,
    even by SIGKILL, so a crashed run never leaves a stale lock (unlike a lock *file* whose
    existence is the lock). With ``blocking=False`` the body runs with ``False`` when another
    process holds the lock.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, umask_mode())
    try:
        flags = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if blocking else fcntl.LOCK_NB)
        try:
            fcntl.flock(fd, flags)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the lock


# JSON type checks shared by result rows (psum.resultsfile) and cache entries (psum.flows.cache).
# Why bool is excluded from the numbers: ``True`` is an int in Python, but ``"accuracy": true`` is
# not an accuracy.
_JSON_TYPES = {
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "dict": lambda v: isinstance(v, dict),
    "list": lambda v: isinstance(v, list),
    "any": lambda v: True,
}


def json_type_check(kind):
    """A predicate for a decoded JSON value of type ``kind``.

    ``kind`` is one of ``float`` (an int or float, not a bool), ``int``, ``str``, ``bool``,
    ``dict``, ``list``, ``any``, or the Python type itself; a trailing ``?`` (``"str?"``) also
    accepts ``null``.

    Raises
    ------
    ValueError
        Another type name (a programming error, not bad data).
    """
    name = kind if isinstance(kind, str) else getattr(kind, "__name__", repr(kind))
    nullable = name.endswith("?")
    base = name.rstrip("?")
    if base not in _JSON_TYPES:
        raise ValueError(f"JSON field type must be one of {', '.join(_JSON_TYPES)}, not {name!r}")
    check = _JSON_TYPES[base]
    return (lambda v: v is None or check(v)) if nullable else check


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(parent: int | None = None, sig: int = signal.SIGKILL) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux; else nothing).

    Called in a child right after fork (``subprocess.Popen(preexec_fn=...)``, a process pool's
    ``initializer``), so a tool run or pool worker cannot outlive a parent killed by SIGKILL, which
    no handler in the parent can catch. Why prctl(PR_SET_PDEATHSIG) rather than a watcher thread
    that polls ``os.getppid()``: the kernel delivers it with no polling delay and no thread, and
    it works in programs psum does not control (yosys, vvp). The race where the parent died
    before the call is closed by checking the parent id afterwards: pass ``parent``, the parent's
    pid taken before the fork (``functools.partial(die_with_parent, os.getpid())``).

    The signal follows the parent *thread* that forked, so fork only from long-lived threads
    (the main thread, a pool's own threads).
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if parent is not None and os.getppid() != parent:  # the parent died before prctl: follow it now
        os.kill(os.getpid(), sig)


def dies_with_me():
    """A ``preexec_fn`` for :mod:`subprocess`: the child gets SIGKILL when this process dies.

    ``subprocess.run(cmd, preexec_fn=dies_with_me())``; see :func:`die_with_parent`.
    """
    import functools

    return functools.partial(die_with_parent, os.getpid())


_SIM_PREFIX_LOCK = threading.Lock()
_sim_prefix = {"users": 0, "saved": None}


@contextlib.contextmanager
def simulator_dies_with_me():
    """While active, the simulators cocotb's runner starts get SIGKILL when this process dies.

    cocotb's runner launches ``vvp`` (Icarus) and Verilator's model with its own
    ``subprocess.run``, without a ``preexec_fn``, so :func:`dies_with_me` cannot reach them and a
    psum killed by SIGKILL left its simulator running. The runner puts cocotb's documented
    ``SIM_CMD_PREFIX`` (read from ``os.environ``) in front of the simulator's command; this
    prepends psum's launcher (:mod:`psum._deathsig`), which sets the parent-death signal and execs
    the simulator. A prefix the user set (``valgrind``, ``taskset``) is kept after it.

    Thread-safe: nested or concurrent uses share one setting, restored when the last one ends.
    Nothing happens off Linux or when a path of the launcher contains white space (the runner
    splits the prefix on white space).
    """
    launcher = [sys.executable, "-S", "-I", str(Path(__file__).with_name("_deathsig.py")), str(os.getpid())]
    if not sys.platform.startswith("linux") or any(ch.isspace() for part in launcher for ch in part):
        yield
        return
    with _SIM_PREFIX_LOCK:
        if _sim_prefix["users"] == 0:
            old = os.environ.get("SIM_CMD_PREFIX")
            _sim_prefix["saved"] = old
            os.environ["SIM_CMD_PREFIX"] = " ".join(launcher + ([old] if old else []))
        _sim_prefix["users"] += 1
    try:
        yield
    finally:
        with _SIM_PREFIX_LOCK:
            _sim_prefix["users"] -= 1
            if _sim_prefix["users"] == 0:
                if _sim_prefix["saved"] is None:
                    os.environ.pop("SIM_CMD_PREFIX", None)
                else:
                    os.environ["SIM_CMD_PREFIX"] = _sim_prefix["saved"]


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs; a zombie (dead, not yet reaped) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    try:  # Linux: the state letter follows the command name in parentheses
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def remove_stale_tmpdirs(prefix: str) -> int:
    """Remove ``<tmp>/<prefix><pid>-*`` folders whose process is gone; returns how many.

    The folders of :func:`private_tmpdir`: a process killed by SIGKILL cannot remove its own, so
    the next run removes them (a folder of a live process is never touched).
    """
    root = Path(tempfile.gettempdir())
    removed = 0
    for folder in root.glob(f"{prefix}*-*"):
        pid = folder.name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)) and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


@contextlib.contextmanager
def private_tmpdir(prefix: str):
    """A temporary folder ``<tmp>/<prefix><pid>-XXXX``, removed on exit; stale ones of dead
    processes with the same prefix are removed first (:func:`remove_stale_tmpdirs`)."""
    remove_stale_tmpdirs(prefix)
    with tempfile.TemporaryDirectory(prefix=f"{prefix}{os.getpid()}-") as tmp:
        yield Path(tmp)


def command_name(argv) -> str:
    """The ``psum`` subcommand ``argv`` names (``argv`` without the program): its first item that
    is not an option, or ``""``; for messages before or without a finished parse (``psum sweep:
    error: ...``, ``psum sweep: interrupted``).

    The one rule of :func:`psum.cli.main.main` and of :func:`psum.__main__.entry`, which needs it
    while ``psum.cli.main`` may be half imported (Ctrl-C during its imports): so it lives in this
    leaf module, which imports nothing heavy.
    """
    return next((a for a in argv if not a.startswith("-")), "")
