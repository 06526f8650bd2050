"""The ``psum`` command line: one subcommand per user action, each backed by a plain Python API.

Every subcommand is a thin layer in this package (see :data:`COMMANDS`): parse the arguments, call
the Python API, print the result (tables through :func:`psum._util.format_table`). A module exposes
``register(subparsers)``, which adds its parsers and sets ``func`` on each. Behaviour lives in the
APIs (:func:`psum.sweeps.sweep.run_search`, :func:`psum.quant.fake2true.run_stored`,
:meth:`psum.reports.report.ReportConfig.quick`, ...), so everything the CLI does is one call
away from Python. Modules import their heavy dependencies (torch, amaranth, cocotb) inside the
command functions, so ``psum --help`` is fast.

Every error caused by the user's input is a :class:`ValueError`, :class:`FileNotFoundError` or
:class:`psum.errors.PsumError` raised by the API; it is printed as one line on stderr with exit
code 2, never as a traceback. File-system errors (:class:`OSError`: read-only or full disk, a
folder where a file belongs) print ``psum CMD: error: cannot write FILE: reason`` (exit 2).
Ctrl-C at any moment, the imports included, prints ``psum CMD: interrupted`` (exit 130); SIGTERM
unwinds like Ctrl-C, so temporary folders are removed, and exits 143. Warnings print as one line
``psum CMD: warning: ...``.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import re
import signal
import sys
import warnings

from psum.errors import PsumError

__all__ = ["main", "build_parser", "COMMANDS"]

# Modules providing subcommands, in the order ``psum --help`` lists them.
COMMANDS = (
    "psum.cli.golden",  # formats, quantize, step
    "psum.cli.hw",  # verilog, sim
    "psum.cli.flows",  # synth
    "psum.cli.nets",  # train, sweep, eval
    "psum.cli.quant",  # qat, fake2true
    "psum.cli.report",  # report
    "psum.cli.study",  # study deepseek|accumulation-theory|a2q
)

# A token argparse takes for an option although the user meant a value: "-inf", "-nan", "-1e5",
# "-0x80" (argparse only knows "-7" and "-.5" as negative numbers).
_DASH_VALUE = re.compile(r"-(inf(inity)?|nan|\d|\.\d|0x)", re.IGNORECASE)


# The output locations of each command, checked after parsing and before the command runs, so a
# folder where a file belongs or an unwritable place fails in one line before an hour of work
# instead of after it. "file"/"dir": written; "file-or-input": an existing file is read, a
# missing one is written (``fake2true --qat`` trains the checkpoint when it is absent).
_OUTPUTS = {
    "verilog": (("output", "file"),),
    "sim": (("build_dir", "dir"),),
    "synth": (("cache_dir", "dir"),),  # a file there only warned, then synthesised uncached
    "train": (("out", "file"),),
    "sweep": (("out", "file"), ("plot", "file")),
    "qat": (("qat", "file"),),
    "fake2true": (("qat", "file-or-input"), ("out_dir", "dir")),
    "report": (("out", "dir"),),
    "study": (("out_dir", "dir"),),
}


def _check_outputs(args) -> None:
    from psum._util import check_output_dir, check_output_path

    for attr, kind in _OUTPUTS.get(args.command, ()):
        value = getattr(args, attr, None)
        if value is None:
            continue
        if kind == "dir":
            check_output_dir(value)
        elif kind == "file" or not os.path.isfile(value):
            check_output_path(value)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (no usage dump), like every other psum error."""

    argv: list = []

    def error(self, message):
        hint = f" (see {self.prog} --help)"
        dashed = [] if "--" in self.argv else [a for a in self.argv if _DASH_VALUE.match(a) and not a.startswith("--")]
        # Only where argparse took the value for an option (a value missing, a stray option); a
        # value that arrived and was refused (e.g. --tol -5) has its own message.
        taken = any(s in message for s in ("expected one argument", "are required", "unrecognized arguments"))
        if dashed and taken:
            hint = (f" (a value starting with '-' goes after '--': psum {' '.join(self.argv[:1])} ... -- "
                    f"{dashed[0]})")
        self.exit(2, f"{self.prog}: error: {message}{hint}\n")


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread so ``with`` blocks and ``finally`` clauses clean up."""


def _on_sigterm(signum, frame):
    # Why raise instead of exiting: temporary folders (synthesis, simulation) are removed by their
    # context managers only while the stack unwinds.
    raise _Terminated()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="psum",
        description="Co-design low-precision MAC hardware and neural-network accuracy.",
    )
    from psum import __version__

    parser.add_argument("--version", action="version", version=f"psum {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def _command(argv) -> str:
    """The subcommand named in ``argv`` (for messages before parsing finished): :func:`psum._util.command_name`."""
    from psum._util import command_name

    return command_name(argv)


def _os_message(exc: OSError) -> str:
    """``cannot write FILE: reason`` (or ``cannot read``) for a file-system error."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    reason = reason[:1].lower() + reason[1:]
    name = exc.filename
    if not name:
        return reason
    reading = (exc.errno in (errno.EACCES, errno.EPERM) and os.path.isfile(name)
               and not os.access(name, os.R_OK))
    return f"cannot {'read' if reading else 'write'} {name}: {reason}"


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    where = f"psum {_command(argv)}".rstrip()
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (psum called from a worker thread): leave signals alone
        previous = None
    old_showwarning = warnings.showwarning

    def one_line_warning(message, category, filename, lineno, file=None, line=None):
        text = str(message).splitlines()[0] if str(message) else category.__name__
        if text.startswith("Detected pickle protocol"):
            # torch.load's note on an unusual pickle protocol: psum's own one-line error about the
            # file follows, and the note (which depends on the file's bytes) would only add a line.
            return
        print(f"{where}: warning: {text.removeprefix('psum: ')}", file=sys.stderr)

    warnings.showwarning = one_line_warning
    try:
        return _main(argv, where)
    except KeyboardInterrupt:  # also while the commands are imported (before any handler of theirs)
        print(f"{where}: interrupted", file=sys.stderr)
        return 130
    except _Terminated:
        print(f"{where}: terminated", file=sys.stderr)
        return 143
    finally:
        warnings.showwarning = old_showwarning
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(argv, where) -> int:
    _Parser.argv = argv
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        _check_outputs(args)
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `psum ... | head`: the reader left, nothing to report
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - so the exit flush does not fail again
        except OSError:
            pass
        return 0
    except (ValueError, FileNotFoundError, PsumError) as exc:
        if isinstance(exc, FileNotFoundError) and exc.filename and not str(exc).startswith(str(exc.filename)):
            msg = f"{exc.filename}: {(exc.strerror or 'no such file or directory').lower()}"
        else:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"{where}: error: {msg}", file=sys.stderr)
        return 2
    except OSError as exc:  # read-only or full disk, permission denied, a folder where a file belongs
        print(f"{where}: error: {_os_message(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
