"""The integer MAC generator: ``acc := fit(acc + fit_prod(a * b))`` in one cycle.

Built from a :class:`psum.golden.MacSpec` only: every width and signedness is read from the spec's
:class:`psum.golden.IntFormat` objects. The arithmetic is exactly :func:`psum.golden.mac_step`'s
``_mac_int``: the exact product, wrapped or saturated into ``spec.prod`` when the MAC is unfused,
added exactly to the accumulator and wrapped (two's complement) or saturated into ``spec.acc``.

The combinational step lives in :class:`IntStep` (``product``, ``accumulate``; the same three-part
interface as :class:`psum.hw.float_mac.FloatStep`, ``normalise`` being the identity), so the chunk
and interleaved units build integer accumulators from it too.

Generation-time specialisation (no logic a spec cannot use): a wrapping unit adds only the
accumulator's low bits, and a clamp is emitted only where the exact value range can leave the
target format's range.
"""

from __future__ import annotations

import dataclasses

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from psum.golden import IntFormat

from .float_mac import register_stage
from .unit import MacUnit

__all__ = ["IntMac", "IntStep", "IntProduct"]


def _shape(fmt: IntFormat):
    return signed(fmt.bits) if fmt.signed else unsigned(fmt.bits)


def _product_range(a: IntFormat, b: IntFormat) -> tuple[int, int]:
    """Exact (min, max) of ``a * b`` over both operand ranges (extremes lie at the corners)."""
    corners = [x * y for x in (a.min_int, a.max_int) for y in (b.min_int, b.max_int)]
    return min(corners), max(corners)


def _range_shape(lo: int, hi: int):
    """Smallest Amaranth shape holding every integer in ``[lo, hi]``.

    Why not ``range(lo, hi + 1)``: Amaranth takes ``len()`` of the range, which overflows
    ``ssize_t`` for 64-bit accumulators (``acc=int64,overflow=sat`` raised OverflowError).
    """
    if lo >= 0:
        return unsigned(max(hi.bit_length(), 1))
    mag = max((~lo).bit_length(), hi.bit_length() if hi >= 0 else (~hi).bit_length())
    return signed(mag + 1)


def _fit(value, lo: int, hi: int, fmt: IntFormat, saturate: bool):
    """Wrap or saturate ``value`` (exact range ``[lo, hi]``) into ``fmt``.

    Returns ``(fitted, lo, hi)``: the fitted value in ``fmt``'s shape and its exact range.
    Why the range: a clamp whose bound the value can never cross is dead logic; skipping it keeps
    the netlist to what the spec can use (e.g. an int4 x int4 product never saturates an int12).
    """
    if fmt.min_int <= lo and hi <= fmt.max_int:
        low = value[:fmt.bits]  # already in range: the low bits are the exact value
        return (low.as_signed() if fmt.signed else low), lo, hi
    if not saturate:
        # Wrap: two's complement keeps the low bits; the format's signedness reinterprets them.
        low = value[:fmt.bits]
        return (low.as_signed() if fmt.signed else low), fmt.min_int, fmt.max_int
    clamped = value
    if hi > fmt.max_int:
        clamped = Mux(value > fmt.max_int, fmt.max_int, clamped)
    if lo < fmt.min_int:
        clamped = Mux(value < fmt.min_int, fmt.min_int, clamped)
    low = clamped[:fmt.bits]  # now in range: the low bits are the exact value
    return (low.as_signed() if fmt.signed else low), max(lo, fmt.min_int), min(hi, fmt.max_int)


@dataclasses.dataclass(frozen=True)
class IntProduct:
    """A product as the accumulate step reads it: its value and its exact range (Python ints)."""

    value: object
    lo: int
    hi: int


class IntStep:
    """``mac_step(spec, c, a, b)`` of an integer spec as combinational logic, in two parts.

    ``product`` (exact; unfused: wrapped or saturated into ``spec.prod``) and ``accumulate`` (the
    exact sum wrapped or saturated into ``spec.acc``); a pipeline cut may fall between them.
    """

    def __init__(self, spec, *, name: str = ""):
        self._spec = spec
        self._name = name

    def _n(self, s: str) -> str:
        return f"{self._name}_{s}" if self._name else s

    def __call__(self, m: Module, c_bits, a_bits, b_bits, rnd=None) -> Signal:
        """The next accumulator code for accumulator ``c_bits`` and operands ``a_bits``, ``b_bits``."""
        return self.accumulate(m, self.product(m, a_bits, b_bits), c_bits)

    def product(self, m: Module, a_bits, b_bits) -> IntProduct:
        """The operands' bit patterns read as integers, their exact product (unfused: fitted)."""
        spec = self._spec
        # -- unpack: the operands' bit patterns read as integers of their formats ----------------
        a = Signal(_shape(spec.a), name=self._n("a"))
        b = Signal(_shape(spec.b), name=self._n("b"))
        m.d.comb += [a.eq(a_bits), b.eq(b_bits)]

        # -- product: exact (Amaranth widens to hold every product, mixed signedness included) ---
        p_lo, p_hi = _product_range(spec.a, spec.b)
        prod = Signal(_range_shape(p_lo, p_hi), name=self._n("prod"))
        m.d.comb += prod.eq(a * b)

        # -- unfused: the product is wrapped or saturated into its own format first -------------
        if spec.prod is not None:
            fitted, p_lo, p_hi = _fit(prod, p_lo, p_hi, spec.prod, spec.saturate)
            prod = Signal(_shape(spec.prod), name=self._n("prod_fit"))
            m.d.comb += prod.eq(fitted)
        return IntProduct(prod, p_lo, p_hi)

    def normalise(self, m: Module, p: IntProduct, which: str = "p") -> IntProduct:
        """The identity (an integer product needs no alignment); :class:`FloatStep`'s interface."""
        return p

    def accumulate(self, m: Module, p: IntProduct, c_bits, rnd=None) -> Signal:
        """The next accumulator code: the exact ``c + p``, wrapped or saturated into ``spec.acc``."""
        spec = self._spec
        acc = Signal(_shape(spec.acc), name=self._n("c"))
        m.d.comb += acc.eq(c_bits)
        nxt = Signal(spec.acc.width, name=self._n("nxt"))
        if spec.saturate:
            s_lo, s_hi = spec.acc.min_int + p.lo, spec.acc.max_int + p.hi
            total = Signal(_range_shape(s_lo, s_hi), name=self._n("total"))
            m.d.comb += total.eq(acc + p.value)
            m.d.comb += nxt.eq(_fit(total, s_lo, s_hi, spec.acc, True)[0])
        else:
            # Why only the low bits: wrapping is arithmetic mod 2**bits, so the carry out of the
            # accumulator's width can never matter.
            m.d.comb += nxt.eq(acc + p.value)
        return nxt


class IntMac(MacUnit):
    """Integer multiply-accumulate unit with one registered accumulator.

    Ports follow the contract in :mod:`psum.hw` (``clk`` and ``rst`` come from the ``sync`` domain):
    ``a``, ``b``, ``en``, ``load``, ``init`` in; ``acc`` out. Integer units have no ``rand`` port.

    Parameters
    ----------
    spec : MacSpec or str
        An integer-accumulator spec (``spec.int_acc``); integer operands of any width and
        signedness, any accumulator width, ``overflow=wrap`` or ``sat``, optional unfused ``prod``.
    impl : MacImpl or str, optional
        Micro-architecture, kept apart from the spec: ``pipeline`` 0 or 1 (one cut, after the
        product, wrapped or saturated into ``prod`` when unfused; latency 1). Why no second cut:
        what follows the product is one adder that reads the accumulator, the loop itself.

    Raises
    ------
    ValueError
        If the spec is not an integer-accumulator spec, its order is not ``seq``, or
        ``pipeline`` is more than 1.
    """

    int_acc = True
    pipeline_cuts = ("the product",)

    def elaborate(self, platform):
        m = Module()
        step = IntStep(self._spec)
        prod = step.product(m, self.a, self.b)
        # -- cut 1 (pipeline = 1): the product, with the controls that travel with it ---------
        ctl = {"en": self.en, "load": self.load, "init": self.init}
        if self.pipeline:
            prod = register_stage(m, prod, "s1_p")
            ctl = register_stage(m, ctl, "s1")
        # -- accumulate: exact sum, then wrap or saturate into the accumulator ------------------
        nxt = step.accumulate(m, prod, self.acc)
        # -- register: load wins over en; the sync domain's reset gives acc = +0 (and clears the
        #    pipeline's en/load registers) ------------------------------------------------------
        with m.If(ctl["load"]):
            m.d.sync += self.acc.eq(ctl["init"])
        with m.Elif(ctl["en"]):
            m.d.sync += self.acc.eq(nxt)
        return m
