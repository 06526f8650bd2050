"""The MAC-unit base component: the port contract and the checks every generator shares.

The contract (documented in :mod:`psum.hw`) is built here and only here: :func:`mac_signature`
derives every port from the spec's formats and order, and :class:`MacUnit` validates the spec and
the micro-architecture (:class:`psum.hw.impl.MacImpl`) before a subclass builds anything.
"""

from __future__ import annotations

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from psum.golden import MacSpec, Rounding

from .impl import MacImpl

__all__ = ["MacUnit", "mac_signature", "flush_cycles", "lanes", "operand_ports"]


def lanes(spec) -> int:
    """Products the unit for ``spec`` takes per cycle: N for ``mta<N>w<W>p<P>`` and ``tree<N>``, else 1.

    A multi-lane unit has operand ports ``a0 .. a{N-1}``, ``b0 .. b{N-1}`` instead of ``a``, ``b``.
    Block-scaled operands (:mod:`psum.hw.mx`): the block size k (one block per cycle).
    """
    spec = MacSpec.parse(spec)
    if spec.blocked:
        return spec.a.block
    return spec.order.lanes


def operand_ports(spec) -> list:
    """``[(a_port, b_port), ...]``, one pair per lane: ``[("a", "b")]`` or ``[("a0", "b0"), ...]``."""
    n = lanes(spec)
    return [("a", "b")] if n == 1 else [(f"a{i}", f"b{i}") for i in range(n)]


def flush_cycles(spec) -> int:
    """Cycles of ``flush`` that end a dot product on the unit for ``spec`` (0: no ``flush`` port).

    ``chunk<L>``, ``mta``: 1 (the last register value is added into ``acc2``); ``ilv<L>``: ``L - 1`` (one
    partial sum is combined per cycle); ``seq``: 0.
    """
    order = MacSpec.parse(spec).order
    if order.kind in ("chunk", "mta"):
        return 1
    if order.kind == "ilv":
        return order.length - 1
    return 0


def mac_signature(spec, impl=None) -> dict:
    """Ports of the unit for ``spec`` and ``impl`` (``clk`` and ``rst`` come from the ``sync`` domain).

    Every unit has ``a``, ``b``, ``en``, ``load``, ``init`` in and ``acc`` out, plus ``rnd`` in for
    stochastic rounding. A multi-lane unit (``mta<N>...``, :func:`lanes`) has ``a0 .. a{N-1}``
    and ``b0 .. b{N-1}`` instead of ``a`` and ``b``. Order units add ``flush`` in (``chunk``,
    ``mta``, ``ilv``: end of a dot product, held for :func:`flush_cycles` cycles) and, with a
    second-level accumulator (``chunk``, ``mta``), ``acc2`` out (``spec.acc2.width`` bits).
    Block-scaled operands (:mod:`psum.hw.mx`): the lanes carry one block's element codes
    (``spec.a.elem.width`` bits each) and ``sa``, ``sb`` its two scale codes.
    ``impl`` does not change the ports today.
    """
    spec = MacSpec.parse(spec)
    MacImpl.parse(impl)
    ports = {}
    fa, fb = (spec.a.elem, spec.b.elem) if spec.blocked else (spec.a, spec.b)
    for pa, pb in operand_ports(spec):
        ports[pa] = In(fa.width)
        ports[pb] = In(fb.width)
    if spec.blocked:
        ports["sa"] = In(spec.a.scale.width)
        ports["sb"] = In(spec.b.scale.width)
    ports.update({
        "en": In(1),
        "load": In(1),
        "init": In(spec.acc.width),
        "acc": Out(spec.acc.width),
    })
    if spec.sr_bits:  # not "rand": a SystemVerilog keyword
        ports["rnd"] = In(spec.sr_bits)
    if flush_cycles(spec):
        ports["flush"] = In(1)
    if spec.order.uses_acc2:
        ports["acc2"] = Out(spec.acc2.width)
    return ports


def _impl_of(impl, options) -> MacImpl:
    if impl is not None and options:
        raise ValueError("give the implementation as impl= or as keyword options, not both")
    return MacImpl.parse(impl if impl is not None else options)


class MacUnit(wiring.Component):
    """Base of the generated units: a validated spec and implementation, the contract ports.

    Parameters
    ----------
    spec : MacSpec or str
        What the unit computes.
    impl : MacImpl or str, optional
        How it is built (default: ``MacImpl()``).
    **options
        The implementation as keyword options instead (``pipeline=2``).

    Raises
    ------
    ValueError
        If the spec's accumulator kind or order does not suit the subclass, or ``impl`` cannot
        build it (:meth:`psum.hw.impl.MacImpl.check`).
    TypeError
        If an implementation option is not an integer.
    """

    #: ``True`` for integer-accumulator generators, ``False`` for float ones, ``None``: both.
    int_acc: bool | None
    #: The order kinds this generator builds.
    orders: tuple = ("seq",)
    #: ``None`` when the generator implements ``round=sr``; else the reason it does not (text after
    #: "does not implement round=sr", may be empty).
    sr_refused: str | None = None
    #: ``True`` for the generator of block-scaled operands (:class:`psum.hw.mx.MxMac`).
    block_unit: bool = False
    #: Where the pipeline cuts of ``MacImpl(pipeline=k)`` fall, in order (``k`` at most their
    #: number): what the k-th register stage holds.
    pipeline_cuts: tuple = ("the exact product", "its normalisation")

    def __new__(cls, spec, *, impl=None, **options):
        # Why validate in __new__: Amaranth warns "created but never used" about every
        # Elaboratable collected unelaborated, which includes one whose __init__ raised. Checking
        # before the object exists leaves nothing to warn about, through public Python only (the
        # alternative, setting MustUse's name-mangled _MustUse__silence, is Amaranth-private).
        cls._validate(MacSpec.parse(spec), _impl_of(impl, options))
        # src_loc_at=1: a warning about an unused unit names our caller's line, not this one.
        return super().__new__(cls, src_loc_at=1)

    def __init__(self, spec, *, impl=None, **options):
        spec = MacSpec.parse(spec)  # validated by __new__
        self._spec = spec
        self._impl = _impl_of(impl, options).resolved(spec)
        super().__init__(mac_signature(spec, self._impl))

    @classmethod
    def _validate(cls, spec: MacSpec, impl: MacImpl) -> None:
        """Raise ``ValueError`` if this generator cannot build ``spec`` with ``impl``."""
        if spec.blocked != cls.block_unit:
            if spec.blocked:
                raise ValueError(f"{cls.__name__} does not take block-scaled operands ({spec.a})")
            raise ValueError(f"{cls.__name__} needs block-scaled operands, not a={spec.a}")
        if any(getattr(f, "specials", None) == "p3109" for f in (spec.a, spec.b, spec.acc, spec.prod, spec.acc2)):
            raise ValueError("no RTL unit for IEEE P3109 formats yet; they run in the golden model")
        if cls.int_acc is not None and spec.int_acc != cls.int_acc:
            kind = "an integer" if cls.int_acc else "a float"
            raise ValueError(f"{cls.__name__} needs {kind} accumulator, not acc={spec.acc}")
        if spec.order.kind not in cls.orders:
            raise ValueError(f"{cls.__name__} builds order={'|'.join(cls.orders)}, not order={spec.order}")
        if cls.sr_refused is not None and spec.rounding is Rounding.SR:
            raise ValueError(f"{cls.__name__} does not implement round=sr{cls.sr_refused}")
        cuts = cls.cuts_for(spec)
        if impl.pipeline > len(cuts):
            raise ValueError(f"impl pipeline={impl.pipeline}: {cls.__name__} has {len(cuts)} pipeline "
                             f"cut{'s' if len(cuts) > 1 else ''}, after {' and after '.join(cuts)}")
        impl.check(spec)

    @classmethod
    def cuts_for(cls, spec: MacSpec) -> tuple:
        """The pipeline cuts of this generator's unit for ``spec`` (default :attr:`pipeline_cuts`)."""
        return cls.pipeline_cuts

    @property
    def spec(self) -> MacSpec:
        """The spec this unit implements."""
        return self._spec

    @property
    def impl(self) -> MacImpl:
        """How this unit is built."""
        return self._impl

    @property
    def pipeline(self) -> int:
        """Pipeline stages between the operand ports and the accumulate loop (the latency)."""
        return self._impl.pipeline
