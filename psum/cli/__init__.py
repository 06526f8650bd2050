"""psum.cli: the ``psum`` command line, the only package that knows argparse.

One thin module per command group (parse, call the API, print); :mod:`.main` builds the parser.
"""

from .main import main

__all__ = ["main"]
