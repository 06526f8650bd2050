"""psum.golden: bit-exact number formats, rounding and the MAC golden model.

The public surface is re-exported here: formats (:class:`FloatFormat`, :class:`IntFormat`, :class:`FixedFormat`,
:func:`parse_format`), rounding modes (:class:`Rounding`), the MAC spec (:class:`MacSpec`, its
accumulation :class:`Order`) and its semantics (:func:`mac_step`), plus the tensor helper
:func:`quantize`; :func:`emulate` (:mod:`psum.golden.emulation.layers`, torch) is loaded on first
access.
"""

from .formats import FORMAT_HELP, NAMED, FixedFormat, FloatFormat, Format, IntFormat, parse_format
from .mac import mac_step
from .numerics import NUMERICS_VERSION
from .quantize import quantize
from .rounding import Rounding, parse_rounding
from .spec import SPEC_HELP, MacSpec, Order

__all__ = [
    "FloatFormat",
    "IntFormat",
    "FixedFormat",
    "Format",
    "NAMED",
    "FORMAT_HELP",
    "parse_format",
    "Rounding",
    "parse_rounding",
    "MacSpec",
    "Order",
    "SPEC_HELP",
    "mac_step",
    "quantize",
    "NUMERICS_VERSION",
]  # emulate (torch) is importable by name but kept out of `import *`, which stays numpy-only


def __getattr__(name):
    # emulate imports torch; keep ``import psum.golden`` light for the CLI and the hw generators.
    # Loaded on first access (PEP 562) and cached in the globals, so ``psum.golden.emulate`` and
    # ``from psum.golden import emulate`` are the function every time, whatever was imported
    # first. (No submodule is named ``emulate``: the emulation package is ``emulation``.)
    if name == "emulate":
        from psum.golden.emulation.layers import emulate

        globals()["emulate"] = emulate
        return emulate
    raise AttributeError(f"module 'psum.golden' has no attribute {name!r}")
