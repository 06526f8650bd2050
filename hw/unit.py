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
    """

    #: ``True`` for integer-accumulator generators, ``False`` for float ones.
    int_acc: bool

    def __init__(self, spec, *, pipeline: int = 0):
        self._MustUse__silence = True  # no "never used" warning when validation fails
        spec = MacSpec.parse(spec)
        name = type(self).__name__
        if spec.int_acc != self.int_acc:
            kind = "an integer" if self.int_acc else "a float"
            raise ValueError(f"{name} needs {kind} accumulator, not acc={spec.acc}")
        if spec.order != "seq":
            raise ValueError(f"hardware units accumulate sequentially, not order={spec.order}")
        # Why hi=0: 0 is the only implemented depth; the bound grows when pipelines land.
        pipeline = check_int("pipeline", pipeline, 0, 0)
        self._MustUse__silence = False
        self._spec = spec
        self._pipeline = pipeline
        super().__init__(mac_signature(spec))

    @property
    def spec(self) -> MacSpec:
        """The spec this unit implements."""
        return self._spec

    @property
    def pipeline(self) -> int:
        """Pipeline stages between the operands and the accumulator register (0)."""
        return self._pipeline
