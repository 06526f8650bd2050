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
code 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

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


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (no usage dump), like every other psum error."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="psum",
        description="Co-design low-precision MAC hardware and neural-network accuracy.",
    )
    from psum import __version__

    parser.add_argument("--version", action="version", version=f"psum {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, PsumError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"psum {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path that is a directory, unwritable, a full disk: one line, not a traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"psum {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"psum {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
