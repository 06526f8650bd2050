"""psum.golden: bit-exact number formats, rounding and the MAC golden model.

The public surface is re-exported here: formats (:class:`FloatFormat`, :class:`IntFormat`,
:func:`parse_format`), rounding modes (:class:`Rounding`), the MAC spec (:class:`MacSpec`, its
accumulation :class:`Order`) and its semantics (:func:`mac_step`), plus the tensor helper
:func:`quantize`.
"""

from .formats import FORMAT_HELP, NAMED, FloatFormat, Format, IntFormat, parse_format
from .mac import mac_step
from .quantize import quantize
from .rounding import Rounding, parse_rounding
from .spec import SPEC_HELP, MacSpec, Order

__all__ = [
    "FloatFormat",
    "IntFormat",
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
    "emulate",
]


def __getattr__(name):
    # emulate imports torch; keep ``import psum.golden`` light for the CLI and the hw generators.
    if name == "emulate":
        from psum.golden.emulation.layers import emulate

        return emulate
    raise AttributeError(f"module 'psum.golden' has no attribute {name!r}")
