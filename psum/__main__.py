"""The entry point of ``python -m psum`` and of the ``psum`` console script (:func:`entry`).

Why a separate entry instead of ``psum.cli.main:main`` directly: the console script imports its
target before calling it, and :func:`psum.cli.main.main` catches Ctrl-C only once it runs, so a
Ctrl-C during the imports before it (argparse, pathlib, psum.cli: about 50 ms) printed a
``KeyboardInterrupt`` traceback. :func:`entry` enters its ``try`` before importing anything of the
command line. What stays unguarded is what runs before any psum code: the interpreter's start-up
(``site``, which also runs the editable install's import hook) and ``psum/__init__.py`` (a few ms,
lazy by design).
"""

import sys

__all__ = ["entry"]

_interrupted = False


def _on_sigint(signum, frame):
    """Python's own SIGINT behaviour (raise :class:`KeyboardInterrupt`), remembering that it came.

    Why remember: an extension module interrupted while it imports may turn the
    ``KeyboardInterrupt`` into an ``ImportError`` (numpy: "PyCapsule_Import could not import module
    'datetime'"), which would otherwise end in a traceback about a broken numpy.
    """
    global _interrupted
    _interrupted = True
    raise KeyboardInterrupt


def entry() -> None:
    """Run the ``psum`` command line and exit with its status.

    Ctrl-C at any moment after this function starts ends in one line on stderr,
    ``psum CMD: interrupted``, and exit status 130 (128 + SIGINT, the shell's convention), never a
    traceback; :func:`psum.cli.main.main` prints the same once it runs.
    """
    try:
        import signal

        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where SIGINT is ignored (nohup, &)
            signal.signal(signal.SIGINT, _on_sigint)
        from psum.cli.main import main

        code = main()
    except BaseException as exc:  # noqa: BLE001 - re-raised unless Ctrl-C caused it
        if not (_interrupted or isinstance(exc, KeyboardInterrupt)):
            raise
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the message
        # the subcommand as psum.cli.main names it, by the same function: psum.cli.main may be half
        # imported here, psum._util is a leaf that imports nothing heavy
        from psum._util import command_name

        command = command_name(sys.argv[1:])
        print(f"psum {command}".rstrip() + ": interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    entry()
