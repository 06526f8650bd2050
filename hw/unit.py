"""The MAC-unit base component: the port contract and the checks every generator shares.

The contract (documented in :mod:`psum.hw`) is built here and only here: :func:`mac_signature`
derives every port width from the spec's formats, and :class:`MacUnit` validates the spec and the
micro-architecture options before a subclass builds anything.
"""

from __future__ import annotations

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from psum._util import check_int
from psum.golden import MacSpec

__all__ = ["MacUnit", "mac_signature"]


def mac_signature(spec: MacSpec) -> dict:
    """Ports of the unit for ``spec`` (``clk`` and ``rst`` come from the ``sync`` domain)."""
    ports = {
        "a": In(spec.a.width),
        "b": In(spec.b.width),
        "en": In(1),
        "load": In(1),
        "init": In(spec.acc.width),
        "acc": Out(spec.acc.width),
    }
    if spec.sr_bits:  # not "rand": a SystemVerilog keyword
        ports["rnd"] = In(spec.sr_bits)
    return ports


class MacUnit(wiring.Component):
    """Base of the generated units: a validated spec, micro-architecture options, the contract ports.

    Parameters
    ----------
    spec : MacSpec or str
        What the unit computes (``order=seq``).
    pipeline : int
        Pipeline stages in front of the accumulator register; only ``0`` is implemented.

    Raises
    ------
    ValueError
        If the spec's accumulator kind does not suit the subclass, its order is not ``seq``, or
        ``pipeline`` is not 0.
    TypeError
        If ``pipeline`` is not an integer.
    """

    #: ``True`` for integer-accumulator generators, ``False`` for float ones.
    int_acc: bool

    def __new__(cls, spec, *, pipeline: int = 0):
        # Why validate in __new__: Amaranth warns "created but never used" about every
        # Elaboratable collected unelaborated, which includes one whose __init__ raised. Checking
        # before the object exists leaves nothing to warn about, through public Python only (the
        # alternative, setting MustUse's name-mangled _MustUse__silence, is Amaranth-private).
        cls._validate(MacSpec.parse(spec), pipeline)
        # src_loc_at=1: a warning about an unused unit names our caller's line, not this one.
        return super().__new__(cls, src_loc_at=1)

    def __init__(self, spec, *, pipeline: int = 0):
        spec = MacSpec.parse(spec)  # validated by __new__
        self._spec = spec
        self._pipeline = int(pipeline)
        super().__init__(mac_signature(spec))

    @classmethod
    def _validate(cls, spec: MacSpec, pipeline) -> None:
        """Raise ``ValueError``/``TypeError`` if this generator cannot build ``spec`` with ``pipeline``."""
        if spec.int_acc != cls.int_acc:
            kind = "an integer" if cls.int_acc else "a float"
            raise ValueError(f"{cls.__name__} needs {kind} accumulator, not acc={spec.acc}")
        if spec.order.kind != "seq":
            raise ValueError(f"hardware units accumulate sequentially, not order={spec.order}")
        # Why hi=0: 0 is the only implemented depth; the bound grows when pipelines land.
        check_int("pipeline", pipeline, 0, 0)

    @property
    def spec(self) -> MacSpec:
        """The spec this unit implements."""
        return self._spec

    @property
    def pipeline(self) -> int:
        """Pipeline stages between the operands and the accumulator register (0)."""
        return self._pipeline
