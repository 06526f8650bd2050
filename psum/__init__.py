"""psum: co-design low-precision multiply-accumulate hardware and neural-network accuracy.

Subpackages: :mod:`psum.golden` (bit-exact formats and MAC model), :mod:`psum.hw` (Amaranth RTL
generators), :mod:`psum.flows` (Yosys synthesis), :mod:`psum.reports` (trade-off reports).
"""

__version__ = "0.1.0"
