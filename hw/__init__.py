"""psum.hw: Amaranth generators that turn a :class:`psum.golden.MacSpec` into synthesizable RTL.

Port contract of every generated unit (the same for integer and float units):

=========  =====  =================================================================================
port       dir    meaning
=========  =====  =================================================================================
clk        in     clock; everything happens at its rising edge
rst        in     synchronous reset: ``acc := +0``
a, b       in     operand bit patterns (``spec.a.width``, ``spec.b.width`` bits)
en         in     ``acc := mac_step(spec, acc, a, b)`` at the rising edge
load       in     ``acc := init`` (``load`` wins over ``en``)
init       in     accumulator bit pattern to load
rnd        in     ``spec.sr_bits`` random bits (stochastic rounding only; not ``rand``, a SystemVerilog keyword)
acc        out    the accumulator register (bit pattern, ``spec.acc.width`` bits)
=========  =====  =================================================================================
"""

from __future__ import annotations

__all__ = ["generate", "verilog"]


def generate(spec, **implementation):
    """Return the Amaranth component that implements ``spec`` (a MacSpec or its text form).

    ``implementation`` holds micro-architecture options (kept apart from the spec's arithmetic).
    """
    from psum.golden import MacSpec

    spec = MacSpec.parse(spec)  # the unit itself (psum.hw.unit.MacUnit) validates the rest
    if spec.fixed_acc:
        from .fixed_mac import FixedMac

        return FixedMac(spec, **implementation)
    if spec.int_acc:
        from .int_mac import IntMac

        return IntMac(spec, **implementation)
    from .float_mac import FloatMac

    return FloatMac(spec, **implementation)


def verilog(spec, **implementation) -> str:
    """Deterministic Verilog text of the unit for ``spec``; the module is named ``spec.name``."""
    from .emit import emit_verilog

    return emit_verilog(generate(spec, **implementation), spec)
