"""The micro-architecture of a MAC unit: *how* it is built, kept apart from the spec (*what*).

:class:`MacImpl` is to :class:`psum.golden.MacSpec` what cvfpu's ``fpu_implementation_t`` is to
``fpu_features_t``: the same spec can be built several ways, and every way computes the same bits.
An implementation is part of the generated module's name (:func:`module_name`), of the simulation
build directory, of the synthesis cache key and of every report row, through its :attr:`MacImpl.tag`.

Text form (``--impl`` on the command line): comma-separated ``KEY=VALUE`` pairs, e.g.
``pipeline=2`` or ``pipeline=1,lanes=32``; ``MacImpl.parse(str(impl)) == impl``.

========  ======================================================================================
key       meaning
========  ======================================================================================
pipeline  register stages between the operand ports and the accumulate loop, 0..2; each unit
          documents its cuts (:attr:`psum.hw.unit.MacUnit.pipeline_cuts`: float, fixed-point and
          order units 2, integer units 1); every input reaches the loop that many cycles later
          (the latency), ``rst`` acts at once
lanes     products per cycle; fixed by the spec's order (N for ``mta<N>w<W>p<P>`` and
          ``tree<N>``, else 1): absent means that number, a different one is refused
multiplier
          structure of the significand multiplier of float- and fixed-point-accumulator units:
          ``array`` (default: the synthesis tool's ``*``), ``booth`` (radix-4 Booth rows summed
          by a Dadda tree) or ``dadda`` (the AND array summed by a Dadda tree), the last two
          smaller and hungrier (:mod:`psum.hw.multiplier`); integer units multiply signed
          operands with the tool's ``*`` and refuse ``booth`` and ``dadda``
========  ======================================================================================

Pipeline cuts and latency, per unit (``k`` = ``pipeline``; the loop is what reads ``acc``)::

    FloatMac  cut 1 after the exact product, cut 2 after its normalisation
    IntMac    cut 1 after the product (wrapped / saturated into prod when unfused)
    FixedMac  cut 1 after the exact product, cut 2 after its alignment to the register's grid
    ChunkMac, IlvMac
              as FloatMac (the product of the level-1 MAC); flush travels with the inputs
    MtaMac    cut 1 after the N exact products, cut 2 after their normalisation
    TreeMac   cut 1 after the N exact products, cut 2 after the adder tree (the group sum)

Every unit with ``pipeline=k`` behaves as its ``pipeline=0`` unit whose inputs (all but ``rst``)
arrive ``k`` cycles later, except that ``rst`` clears the inputs in flight
(:func:`psum.hw.verify.check.delayed` is that rule, used by every check).
"""

from __future__ import annotations

import dataclasses
import re

from psum._util import check_int
from psum.golden.spec import key_value_items

__all__ = ["MacImpl", "module_name", "IMPL_HELP", "MAX_PIPELINE"]

IMPL_HELP = ("an implementation is comma-separated KEY=VALUE pairs: pipeline=0|1|2[,lanes=N]"
             "[,multiplier=array|booth|dadda] (lanes: the products per cycle the order fixes; multiplier: "
             "the significand multiplier's structure); e.g. pipeline=2")

#: Deepest pipeline any unit implements (each unit's own limit: ``MacUnit.pipeline_cuts``); what
#: follows the last cut reads the accumulator, so it is inside the loop.
MAX_PIPELINE = 2

_KEYS = ("pipeline", "lanes", "multiplier")


@dataclasses.dataclass(frozen=True)
class MacImpl:
    """How a MAC unit is built; the arithmetic (:class:`psum.golden.MacSpec`) is unchanged by it.

    Parameters
    ----------
    pipeline : int
        Register stages ahead of the accumulate loop, 0..:data:`MAX_PIPELINE` (the cuts of each
        unit: module docstring). The latency from the operand ports to the register is
        ``pipeline`` cycles; a unit with ``pipeline=k`` behaves exactly as the ``pipeline=0``
        unit whose inputs arrive ``k`` cycles later, except that ``rst`` acts at once and
        discards the inputs in flight.
    lanes : int or None
        Products per cycle. The spec's order fixes it (:attr:`psum.golden.Order.lanes`: N for
        ``mta<N>w<W>p<P>`` and ``tree<N>``, else 1); ``None`` (the default) means that number,
        and :meth:`check` refuses another.
    multiplier : str
        Structure of the unsigned significand multiplier (:data:`psum.hw.multiplier.KINDS`):
        ``"array"`` (the default) is the synthesis tool's ``*``; ``"booth"`` radix-4 Booth rows
        and ``"dadda"`` the AND array, both summed by a Dadda tree: smaller in transistors and
        GE, but more energy per MAC and delay in psum's flow (figures in
        :mod:`psum.hw.multiplier`).

    Raises
    ------
    TypeError
        A field that is not an integer.
    ValueError
        A field out of range, one line (Amaranth's message shape).
    """

    pipeline: int = 0
    lanes: int | None = None
    multiplier: str = "array"

    def __init__(self, *, pipeline: int = 0, lanes: int | None = None, multiplier: str = "array"):
        # Keyword-only (Amaranth's library habit): MacImpl(2) would say nothing about what 2 is.
        from .multiplier import KINDS

        object.__setattr__(self, "pipeline", check_int("impl pipeline", pipeline, 0, MAX_PIPELINE))
        object.__setattr__(self, "lanes", None if lanes is None else check_int("impl lanes", lanes, 1))
        if not isinstance(multiplier, str):
            raise TypeError(f"impl multiplier must be a string, not {multiplier!r}")
        if multiplier not in KINDS:
            raise ValueError(f"impl multiplier must be one of {', '.join(KINDS)}, not {multiplier!r}")
        object.__setattr__(self, "multiplier", multiplier)

    @property
    def is_default(self) -> bool:
        """True for the plain unit (no pipeline, the order's products per cycle, the tool's multiplier)."""
        return self.pipeline == 0 and self.multiplier == "array"

    @property
    def tag(self) -> str:
        """Name part: ``""`` for the default unit, else e.g. ``"p2"`` (``pipeline=2``) or
        ``"p2_mbooth"`` (``pipeline=2,multiplier=booth``).

        Appended to the spec's name by :func:`module_name`, so two implementations of one spec
        never share a module name, a build directory or a cache entry. ``lanes`` is not in it:
        the spec's order fixes it, and the spec's name carries the order.
        """
        parts = ([f"p{self.pipeline}"] if self.pipeline else []) + \
            ([f"m{self.multiplier}"] if self.multiplier != "array" else [])
        return "_".join(parts)

    def __str__(self) -> str:
        return (f"pipeline={self.pipeline}" + ("" if self.lanes is None else f",lanes={self.lanes}")
                + ("" if self.multiplier == "array" else f",multiplier={self.multiplier}"))

    def resolved(self, spec) -> "MacImpl":
        """This implementation with ``lanes`` set to the number the spec's order fixes (checked)."""
        self.check(spec)
        return MacImpl(pipeline=self.pipeline, lanes=spec.a.block if spec.blocked else spec.order.lanes,
                       multiplier=self.multiplier)

    def check(self, spec) -> None:
        """Raise a one-line ``ValueError`` if a unit for ``spec`` cannot be built this way.

        Checked before any work (generation, simulation, synthesis).

        Parameters
        ----------
        spec : MacSpec
            The spec the unit implements.

        Raises
        ------
        ValueError
            ``lanes`` other than the products per cycle of the spec's order (the pipeline depth
            each unit checks itself, :class:`psum.hw.unit.MacUnit`).
        """
        from psum.golden import IntFormat

        if self.multiplier in ("booth", "dadda") and (spec.blocked or isinstance(spec.acc, IntFormat)):
            what = "a block unit's element product" if spec.blocked else "an integer unit's signed product"
            raise ValueError(f"impl multiplier={self.multiplier}: {what} is built by the synthesis tool's *; "
                             f"booth and dadda are built for the unsigned significand products of float and "
                             f"fixed-point accumulators")
        order = spec.order
        want = spec.a.block if spec.blocked else order.lanes
        if self.lanes is None or self.lanes == want:
            return
        if spec.blocked:  # psum.hw.mx: one whole block per cycle
            raise ValueError(f"impl lanes={self.lanes} does not match the block size k={want} of {spec.a}: "
                             f"the block unit takes one block ({want} element pairs) per cycle")
        if order.kind == "chunk" and order.length % self.lanes:
            raise ValueError(f"impl lanes={self.lanes} does not divide order={order}'s chunk length {order.length}")
        raise ValueError(f"impl lanes={self.lanes} does not match order={order}: its unit takes {want} "
                         f"product{'s' if want > 1 else ''} per cycle")

    @staticmethod
    def parse(text) -> "MacImpl":
        """Parse ``KEY=VALUE[,KEY=VALUE]`` (``None`` or ``""``: the default unit).

        A :class:`MacImpl` is returned unchanged; a dict is taken as keyword arguments.

        Raises
        ------
        ValueError
            One line: the item that is not ``KEY=VALUE``, an unknown or repeated key, or a value
            out of range.
        """
        if isinstance(text, MacImpl):
            return text
        if text is None:
            return MacImpl()
        if isinstance(text, dict):
            unknown = sorted(set(text) - set(_KEYS))
            if unknown:
                raise ValueError(f"unknown impl key {unknown[0]!r}; keys are {', '.join(_KEYS)}")
            return MacImpl(**text)
        if not isinstance(text, str):
            raise TypeError(f"impl must be a MacImpl or KEY=VALUE text, not {text!r}")
        kwargs = {}
        for key, value in key_value_items(text, what="impl", keys=_KEYS, form="KEY=VALUE", help_text=IMPL_HELP):
            if key in kwargs:
                raise ValueError(f"impl key {key!r} given twice")
            if key == "multiplier":
                kwargs[key] = value
                continue
            if not re.fullmatch(r"[0-9]+", value):  # ASCII digits only, as in the spec
                raise ValueError(f"impl {key} must be a non-negative integer, not {value!r}")
            kwargs[key] = int(value)
        return MacImpl(**kwargs)


def module_name(spec, impl=None) -> str:
    """Name of the generated module: ``spec.name``, plus ``_`` and the impl's tag if it has one.

    e.g. ``mac_fp16_fp16_acc_fp16_rne`` and ``mac_fp16_fp16_acc_fp16_rne_p2``. Also the name of the
    simulation build directory and the synthesis top.
    """
    from psum.golden import MacSpec

    spec = MacSpec.parse(spec)
    tag = MacImpl.parse(impl).tag
    return spec.name + ("_" + tag if tag else "")
