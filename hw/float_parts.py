"""Reusable pieces of the float datapaths: unpack/classify, leading-zero count, the shared rounder.

Every piece reads its parameters from a :class:`psum.golden.FloatFormat` or
:class:`psum.golden.IntFormat` (nothing is re-declared here) and mirrors one function of the golden
model, so each can be read side by side with it:

=====================  ======================================================================
piece                  golden counterpart
=====================  ======================================================================
:func:`unpack`         ``psum.golden._vector.unpack_float`` / ``unpack_int`` (sign, mag, exp, cls)
:func:`leading_zeros`  ``psum.golden._vector.bit_length`` (``n - bit_length``)
:class:`FloatRounder`  ``psum.golden._vector.round_float`` (normalise, round, pack, overflow, FTZ)
=====================  ======================================================================

Generation-time specialisation follows HardFloat's ``neverUnderflows`` habit: a class flag that a
format can never raise (inf in an ``fn`` format, a subnormal in a flush-to-zero one) is the Python
constant ``False`` rather than a signal, and the helpers :func:`any_of` / :func:`all_of` drop such
constants, so no gate is emitted for a case the format cannot produce.
"""

from __future__ import annotations

import dataclasses
import re

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, Value, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from psum._util import check_int
from psum.golden import FloatFormat, IntFormat, Rounding
from psum.golden.rounding import round_up

__all__ = ["Unpacked", "unpack", "leading_zeros", "any_of", "all_of", "as_bit", "int_shape", "balanced_tree", "FloatRounder",
           "STAGES", "stage", "stage_of"]


# ---------------------------------------------------------------------------------------------
# Datapath stages as submodules (the breakdown of psum.flows reads them back)
# ---------------------------------------------------------------------------------------------
# The stages of a float MAC in datapath order (STYLE section 4; cvfpu fpnew_fma's banners).
# "control" is logic outside every stage (the accumulator's load/enable muxing, integer units),
# "register" every flip-flop.
STAGES = ("unpack", "multiplier", "normalise", "align", "adder", "round", "specials", "control", "register")


def stage(m: Module, name: str, kind: str) -> Module:
    """A new submodule of ``m`` for one datapath stage; build the stage's logic into it.

    Why submodules: they survive into the generated Verilog as a hierarchy, so the breakdown
    synthesis (:func:`psum.flows.breakdown.breakdown`) can map each stage apart and attribute
    every cell and its energy to one; the normal flow flattens first (``synth -flatten``), so the
    hierarchy costs nothing there. The instance is named ``<name>__<kind>``; :func:`stage_of`
    reads the kind back from a hierarchical cell name.
    """
    if kind not in STAGES:
        raise ValueError(f"stage kind must be one of {', '.join(STAGES)}, not {kind!r}")
    sub = Module()
    m.submodules[f"{name}__{kind}"] = sub
    return sub


def stage_of(path: str) -> str | None:
    """The stage kind in a hierarchical instance path (innermost stage wins), or None."""
    kind = None
    for part in re.split(r"[.\\]", path):
        if "__" in part:
            k = part.rsplit("__", 1)[1]
            if k in STAGES:
                kind = k
    return kind


def balanced_tree(items, combine):
    """Reduce ``items`` pairwise, level by level (a balanced tree: log2 depth, not a chain);
    an odd last item moves up a level unchanged."""
    while len(items) > 1:
        nxt = [combine(items[i], items[i + 1]) for i in range(0, len(items) - 1, 2)]
        if len(items) % 2:
            nxt.append(items[-1])
        items = nxt
    return items[0]


# ---------------------------------------------------------------------------------------------
# Flags that may be Python constants (generation-time specialisation)
# ---------------------------------------------------------------------------------------------
def any_of(*flags):
    """OR of flags, where a flag is a 1-bit Amaranth value or a Python bool.

    ``False`` terms vanish and a ``True`` term makes the result ``True``, so a case that the
    formats rule out at generation time costs no logic.
    """
    terms = [f for f in flags if f is not False]
    if any(f is True for f in terms):
        return True
    if not terms:
        return False
    out = terms[0]
    for f in terms[1:]:
        out = out | f
    return out


def all_of(*flags):
    """AND of flags (1-bit values or Python bools), folding constants like :func:`any_of`."""
    terms = [f for f in flags if f is not True]
    if any(f is False for f in terms):
        return False
    if not terms:
        return True
    out = terms[0]
    for f in terms[1:]:
        out = out & f
    return out


def int_shape(lo: int, hi: int) -> Shape:
    """The narrowest shape holding every integer of ``[lo, hi]``.

    Like ``Shape.cast(range(lo, hi + 1))``, which cannot take ranges longer than 2**63 (a packed
    fp64 code or a 66-bit int32 x int32 window are).
    """
    if lo >= 0:
        return unsigned(hi.bit_length())
    return signed(max((-lo - 1).bit_length(), hi.bit_length()) + 1)


def as_bit(flag):
    """A flag as an Amaranth value (constants become 1-bit constants)."""
    return Const(int(flag), 1) if isinstance(flag, bool) else flag


# ---------------------------------------------------------------------------------------------
# Unpack / classify
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Unpacked:
    """An operand split as in the golden model: value = (-1)**sign * mag * 2**exp when finite.

    ``zero``, ``inf`` and ``nan`` are 1-bit values or ``False`` when the format cannot hold the
    class. ``mag`` is 0 for a zero. ``exp_lo``/``exp_hi`` bound ``exp``; ``lead`` says how many of
    ``mag``'s top bits can hold the leading one of a non-zero value (1 for a normal-only float),
    which lets the consumer size its leading-zero count.
    """

    sign: Value
    mag: Value
    exp: Value
    zero: object
    inf: object
    nan: object
    exp_lo: int
    exp_hi: int
    lead: int
    #: ``((top_hi, lz), ...)``: every non-zero value falls in one case, whose field top
    #: ``exp + width - 1`` is at most ``top_hi`` and whose ``mag`` has at most ``lz`` leading zeros.
    #: Empty: one case from ``exp_hi`` and ``lead``. Lets a consumer bound the leading zeros of the
    #: values that can reach a given exponent (a float's leading zeros are its subnormals').
    lz_cases: tuple = ()

    @property
    def width(self) -> int:
        """Width of ``mag`` in bits."""
        return len(self.mag)

    @property
    def cases(self) -> tuple:
        """:attr:`lz_cases`, or the one conservative case ``(exp_hi + width - 1, lead - 1)``."""
        return self.lz_cases or ((self.exp_hi + self.width - 1, self.lead - 1),)


def unpack(m: Module, fmt, bits: Value, *, name: str) -> Unpacked:
    """Split the bit pattern ``bits`` of ``fmt`` into sign, magnitude, exponent and class flags.

    Parameters
    ----------
    m : Module
        The module that receives the logic.
    fmt : FloatFormat, IntFormat or FixedFormat
        Format of ``bits``.
    bits : Value
        ``fmt.width`` bits.
    name : str
        Prefix of the generated signal names.

    Returns
    -------
    Unpacked
    """
    if not isinstance(fmt, FloatFormat):  # int<N>, or q<I>.<F>: an integer with exponent -F
        return _unpack_int(m, fmt, bits, name)
    return _unpack_float(m, fmt, bits, name)


def _unpack_int(m: Module, fmt: IntFormat, bits: Value, name: str) -> Unpacked:
    # Why |v| in fmt.bits bits: the most negative two's complement value, -2**(bits-1), has a
    # magnitude of exactly 2**(bits-1), which still fits an unsigned field of the same width.
    sign = Signal(name=f"{name}_sign")
    mag = Signal(fmt.bits, name=f"{name}_mag")
    zero = Signal(name=f"{name}_zero")
    if fmt.signed:
        # Sign-magnitude, as the float datapath wants: the msb is the sign, the negation gives
        # the magnitude (its low fmt.bits bits are exact, see above).
        m.d.comb += sign.eq(bits[fmt.bits - 1])
        m.d.comb += mag.eq(Mux(sign, -bits.as_signed(), bits))
    else:
        m.d.comb += [sign.eq(0), mag.eq(bits)]
    # Integers have one zero; it takes the +0 sign rules of the golden model (sign bit 0).
    m.d.comb += zero.eq(bits == 0)
    # An integer is an exact float with exponent 0 (a fixed-point code k: exponent -F); the
    # leading one can sit anywhere.
    lsb = getattr(fmt, "lsb_exp", 0)
    exp = Const(0, 1) if lsb == 0 else Const(lsb, int_shape(lsb, lsb))
    return Unpacked(sign=sign, mag=mag, exp=exp, zero=zero, inf=False,
                    nan=False, exp_lo=lsb, exp_hi=lsb, lead=fmt.bits)


def _unpack_float(m: Module, fmt: FloatFormat, bits: Value, name: str) -> Unpacked:
    E, M = fmt.exp_bits, fmt.man_bits
    # Field split of sign | exponent | mantissa; M may be 0 (e.g. e2m0fin), then mf is empty
    # and every comparison on it is a constant that Amaranth folds away.
    ef = bits[M:M + E]
    mf = bits[:M]
    sign = Signal(name=f"{name}_sign")
    m.d.comb += sign.eq(bits[E + M])

    # -- class: zero (and, without subnormals, every subnormal code: DAZ) -----------------------
    # The zero exponent field is the subnormal binade (or zero); it is the only place a
    # significand lacks its hidden bit.
    sub = Signal(name=f"{name}_sub")
    m.d.comb += sub.eq(ef == 0)
    zero = Signal(name=f"{name}_zero")
    m.d.comb += zero.eq(sub & (mf == 0) if fmt.subnormals else sub)

    # -- class: inf / NaN, only where the special-value policy has them -------------------------
    all_ones = ef == (1 << E) - 1
    inf, nan = False, False
    if fmt.specials == "ieee":
        inf, nan = Signal(name=f"{name}_inf"), Signal(name=f"{name}_nan")
        m.d.comb += [inf.eq(all_ones & (mf == 0)), nan.eq(all_ones & (mf != 0))]
    elif fmt.specials == "fn":  # NaN only at all-ones exponent *and* mantissa
        nan = Signal(name=f"{name}_nan")
        m.d.comb += nan.eq(all_ones & (mf == (1 << M) - 1))
    elif fmt.specials == "fnuz":  # the single NaN is the "negative zero" code
        nan = Signal(name=f"{name}_nan")
        m.d.comb += nan.eq(bits == fmt.sign_bit)

    # -- significand: hidden bit set for normals; a DAZ subnormal must read as magnitude 0 ------
    # Why force DAZ magnitudes to 0: downstream a zero term is recognised by its class flag
    # *and* contributes mag = 0 to the sum, so no later stage needs a special case for it.
    mag = Signal(M + 1, name=f"{name}_mag")
    if fmt.subnormals:
        m.d.comb += mag.eq(Cat(mf, ~sub))
    else:
        m.d.comb += mag.eq(Mux(sub, 0, Cat(mf, Const(1, 1))))

    # -- exponent of the lsb: subnormals share emin with the smallest normal binade -------------
    exp_lo = fmt.emin - M
    exp_hi = ((1 << E) - 1) - fmt.bias - M  # the all-ones field too (its value is then unused)
    # Exponents are plain signed integers sized from the format's range (not a fixed width),
    # so every adder downstream is exactly as wide as the spec needs.
    exp = Signal(int_shape(exp_lo, exp_hi), name=f"{name}_exp")
    m.d.comb += exp.eq(Mux(sub, 1, ef) - (fmt.bias + M))
    # Leading zeros only in the subnormal binade (field top emin); normals have none.
    cases = ((exp_hi + M, 0), (exp_lo + M, M)) if fmt.subnormals else ((exp_hi + M, 0),)
    return Unpacked(sign=sign, mag=mag, exp=exp, zero=zero, inf=inf, nan=nan,
                    exp_lo=exp_lo, exp_hi=exp_hi, lead=M + 1 if fmt.subnormals else 1, lz_cases=cases)


# ---------------------------------------------------------------------------------------------
# Leading-zero count
# ---------------------------------------------------------------------------------------------
def _lzc_tree(v: Value):
    """(count, all_zero) of a power-of-two-wide value (n >= 2), as a balanced tree (cvfpu's lzc shape).

    The count has log2(n) bits and is meaningful only for a non-zero value.
    """
    n = len(v)
    if n == 2:
        return ~v[1], ~v[1] & ~v[0]
    h = n // 2
    c_hi, z_hi = _lzc_tree(v[h:])
    c_lo, z_lo = _lzc_tree(v[:h])
    # Why this is exact: when the upper half is all zero its h bits are all leading zeros and the
    # count continues in the lower half (non-zero, so its count is below h); otherwise the lower
    # half does not matter. h + c_lo with c_lo < h = 2**k is c_lo with bit k set: a multiplexer
    # and a wire, no adder (an all-zero half's count is never read).
    return Cat(Mux(z_hi, c_lo, c_hi), z_hi), z_hi & z_lo


def leading_zeros(m: Module, value: Value, *, name: str, top: int | None = None):
    """Leading zeros of ``value`` and its all-zero flag.

    Parameters
    ----------
    m : Module
        The module that receives the logic.
    value : Value
        Unsigned value of ``n`` bits.
    name : str
        Prefix of the generated signal names.
    top : int, optional
        Only the top ``top`` bits can hold the leading one of a non-zero value (known at
        generation time); the count then only looks there. Default: all ``n`` bits.

    Returns
    -------
    (Signal, Signal)
        The count in ``range(0, n + 1)`` (``n`` for zero, when ``top == n``; otherwise
        meaningless for zero) and the flag ``value == 0``.
    """
    n = len(value)
    top = n if top is None else min(top, n)
    # Why a count and not a one-hot position: the count is what both consumers need, as the
    # left-shift amount of the normalisation and as the exponent correction.
    count = Signal(range(n + 1), name=f"{name}_lz")
    zero = Signal(name=f"{name}_is0")
    m.d.comb += zero.eq(value == 0)
    if top <= 1:
        m.d.comb += count.eq(0)  # the leading one of a non-zero value is the top bit
        return count, zero
    # Pad the looked-at bits below to a power of two with zeros: padding after the real bits
    # changes no count of a non-zero value, and the all-zero case is handled by the Mux below.
    size = 1 << (top - 1).bit_length()
    padded = Cat(Const(0, size - top), value[n - top:])
    c, _ = _lzc_tree(padded)
    m.d.comb += count.eq(Mux(zero, n, c))
    return count, zero


def _shift_left_top(value: Value, amount: Value, keep: int) -> Value:
    """The top ``keep`` bits of ``(value << amount)[:n]``, as a log shifter pruned to them.

    Why by hand: the stages run from the largest shift to the smallest, so before a stage only
    the bits that the remaining (smaller) shifts can still move into the top ``keep`` are kept
    (``keep`` + the remaining shifts' sum); Yosys' ``$shl`` mapping runs the other way and keeps
    nearly every bit of every stage.
    """
    n = len(value)
    bits = list(value)  # bits[i - lo] is bit i of the current value; lo is the lowest kept
    lo = 0
    order = list(reversed(range(len(amount))))
    for j, b in enumerate(order):
        a = 1 << b
        rest = sum(1 << bb for bb in order[j + 1:])
        new_lo = max(0, n - keep - rest)
        nxt = []
        for i in range(new_lo, n):
            src = bits[i - a - lo] if i - a >= lo else Const(0, 1)
            nxt.append(Mux(amount[b], src, bits[i - lo]))
        bits, lo = nxt, new_lo
    return Cat(*bits[n - keep - lo:])


# ---------------------------------------------------------------------------------------------
# The shared rounder: normalise -> round (mode + guard/sticky -> increment) -> pack
# ---------------------------------------------------------------------------------------------
class FloatRounder(wiring.Component):
    """Round an exact ``(-1)**sign * mag * 2**exp`` to a code of ``fmt`` (golden ``round_float``).

    The one rounder of psum's float units: the unfused product rounding and the accumulation
    rounding are two instances of it, parameterised by their target format.

    Ports: ``sign`` (1), ``mag`` (``mag_width``), ``exp`` (signed, ``exp_range``), ``rand``
    (``sr_bits``, stochastic rounding only) in; ``code`` (``fmt.width``) out.

    Parameters
    ----------
    fmt : FloatFormat
        Target format.
    rounding : Rounding
        Rounding mode (fixed at generation time).
    saturate : bool
        Overflow to the largest finite number instead of inf / NaN.
    mag_width : int
        Width of the unnormalised magnitude ``mag`` (any position of its leading one).
    exp_range : (int, int)
        Inclusive bounds of ``exp``, the exponent of ``mag``'s lsb.
    sr_bits : int
        Random bits of stochastic rounding (``rounding`` is ``SR``), else 0.
    lead : int, optional
        How many top bits of ``mag`` can hold the leading one (default: all).
    exp_offset : int, optional
        The exponent of ``mag``'s lsb is ``exp + exp_offset`` (default 0; ``exp_range`` bounds
        ``exp`` itself). Why: a caller passes the exponent it has (the float MAC: its window's
        top) and the offset folds into the rounder's own constant additions, where an adder of
        the caller's would feed two of them and be kept apart.

    Raises
    ------
    ValueError
        If a parameter is out of range.
    """

    def __init__(self, fmt: FloatFormat, *, rounding: Rounding, saturate: bool, mag_width: int,
                 exp_range: tuple[int, int], sr_bits: int = 0, lead: int | None = None,
                 exp_offset: int = 0):
        if not isinstance(fmt, FloatFormat):
            raise ValueError(f"the rounder's target must be a float format, not {fmt!r}")
        check_int("mag_width", mag_width, 1)
        lo, hi = exp_range
        if lo > hi:
            raise ValueError(f"exp_range must be (low, high) with low <= high, not {exp_range!r}")
        if (rounding is Rounding.SR) != (sr_bits > 0):
            raise ValueError(f"sr_bits must be positive exactly for stochastic rounding, not {sr_bits!r}")
        self._fmt = fmt
        self._rounding = rounding
        self._saturate = bool(saturate)
        self._mag_width = mag_width
        self._port_range = (lo, hi)
        self._off = int(exp_offset)
        # The exponent range of mag's lsb, which every bound below reads.
        self._exp_range = (lo + self._off, hi + self._off)
        self._sr_bits = sr_bits
        self._lead = mag_width if lead is None else lead
        ports = {
            "sign": In(1),
            "mag": In(mag_width),
            "exp": In(int_shape(lo, hi)),
            "code": Out(fmt.width),
        }
        if sr_bits:
            ports["rnd"] = In(sr_bits)
        super().__init__(ports)

    @property
    def fmt(self) -> FloatFormat:
        """Target format."""
        return self._fmt

    @property
    def rounding(self) -> Rounding:
        """Rounding mode."""
        return self._rounding

    @property
    def saturate(self) -> bool:
        """Whether overflow saturates."""
        return self._saturate

    @property
    def mag_width(self) -> int:
        """Width of the ``mag`` input."""
        return self._mag_width

    @property
    def exp_range(self) -> tuple[int, int]:
        """Inclusive bounds of the ``exp`` input."""
        return self._port_range

    @property
    def exp_offset(self) -> int:
        """``exp + exp_offset`` is the exponent of ``mag``'s lsb."""
        return self._off

    @property
    def sr_bits(self) -> int:
        """Random bits per stochastic rounding (0 for other modes)."""
        return self._sr_bits

    @property
    def _merged(self) -> bool:
        """Whether gradual underflow is a limit on the normalising shift (no denormalising shifter).

        True for a format with subnormals when ``exp_range`` puts ``mag``'s top bit at or above
        ``emin`` for every input (``lo + mag_width - 1 >= emin``): a subnormal result then never
        needs a right shift, only a shorter left one. The float MAC places its window so (see
        :meth:`psum.hw.float_mac.FloatStep._add`).
        """
        return self._fmt.subnormals and self._exp_range[0] + self._mag_width - 1 >= self._fmt.emin

    def elaborate(self, platform):
        m = Module()
        # The stages below are the banners of cvfpu's / HardFloat's rounder, one method each (and
        # the future pipeline cut points): normalise -> denormalise -> round -> pack -> overflow.
        # Two datapath stages for the breakdown: the normalisation (LZC + shift) and the rest.
        n = stage(m, "n", "normalise")
        r = stage(m, "r", "round")
        if self._merged:
            y, Eb, field_hi, is_zero = self._normalise_merged(n)
            code, code_lo, code_hi = self._round_pack(r, y, Eb, field_hi)
        else:
            norm, E, is_zero = self._normalise(n)
            y, e_eff, e_eff_lo, e_eff_hi = self._denormalise(r, norm, E)
            q_r = self._round(r, y)
            code, code_lo, code_hi = self._pack(r, q_r, e_eff, e_eff_lo, e_eff_hi)
        r.d.comb += self.code.eq(self._overflow(r, code, code_lo, code_hi, is_zero))
        return m

    # ====================================================================================
    # Normalise: move the leading one to the top, exponent E of the leading one.
    # ====================================================================================
    def _normalise(self, m: Module):
        """``(norm, E, is_zero)``: ``mag`` shifted so its leading one is the top bit, and E."""
        N = self._mag_width
        lo, hi = self._exp_range
        # The input is unnormalised on purpose: the sum of an effective subtraction can lose
        # any number of leading bits, and an unfused product of subnormals or integers has
        # leading zeros; one LZC + left shift here serves every caller.
        lz, is_zero = leading_zeros(m, self.mag, name="n", top=self._lead)
        norm = Signal(N)
        m.d.comb += norm.eq((self.mag << lz)[:N])
        # E = exp + bit_length(mag) - 1, as in the golden rounder.
        E = Signal(int_shape(lo - 1, hi + N - 1))
        m.d.comb += E.eq(self.exp + (N - 1 + self._off) - lz)
        return norm, E, is_zero

    # ====================================================================================
    # Normalise and denormalise in one left shift (cvfpu fpnew_fma's normalisation, which caps
    # its shift at the minimum exponent). The top bit of mag has exponent T = exp + N - 1 >= emin
    # (the condition of _merged), the leading one E = T - lz. Shifting left by
    # s = min(lz, T - emin) puts the leading one at the top when E >= emin and otherwise stops
    # with the top at emin, i.e. the value sits at the ulp of the subnormal binade (gradual
    # underflow): both cases give the top's exponent e_eff = max(E, emin), golden's. A left
    # shift by s <= lz loses no bit, so y holds mag exactly (the old path's clamp at dmax is
    # not needed).
    # ====================================================================================
    def _normalise_merged(self, m: Module):
        """``(y, Eb, Eb_hi, is_zero)``: mag shifted to the ulp of exponent e_eff = max(E, emin), and
        the biased exponent Eb = E + bias of its leading one (meaningless for a zero).

        ``y``'s top M + 2 + k bits are those of the shifted value; below them, ``y`` holds either
        the rest of it or (wide inputs) one bit, the OR of the rest: the round step reads the
        significand, the guard and the k stochastic-rounding bits one by one and everything
        below only as a sticky OR, which either form gives unchanged.
        """
        fmt = self._fmt
        N, M, k = self._mag_width, fmt.man_bits, self._sr_bits
        lo, hi = self._exp_range
        lz, is_zero = leading_zeros(m, self.mag, name="n", top=self._lead)
        # room = T - emin >= 0: how far the top may move left before it passes emin.
        room_lo, room_hi = lo + N - 1 - fmt.emin, hi + N - 1 - fmt.emin
        room = Signal(int_shape(room_lo, room_hi))
        m.d.comb += room.eq(self.exp + (N - 1 - fmt.emin + self._off))
        # Eb = E + bias, the biased exponent of the leading one (E = exp + N - 1 - lz, the golden
        # rounder's): computed biased, it is the packed exponent field of a normal result as
        # it stands, with no second adder for the bias.
        Eb = Signal(int_shape(lo - 1 + fmt.bias, hi + N - 1 + fmt.bias))
        m.d.comb += Eb.eq(self.exp + (N - 1 + fmt.bias + self._off) - lz)
        normal = Signal()
        m.d.comb += normal.eq(Eb >= fmt.emin + fmt.bias)  # E >= emin, i.e. lz <= room
        s = Signal(range(N + 1))
        m.d.comb += s.eq(Mux(normal, lz, room))
        # Why pad below to M + 2 + k bits: the round step reads the significand, the guard and the
        # k stochastic-rounding bits from y's top; zeros below change none of them.
        keep = M + 2 + k
        if N <= keep + 1:
            pad = max(0, keep - N)
            y = Signal(N + pad)
            m.d.comb += y.eq(Cat(Const(0, pad), (self.mag << s)[:N]))
        else:
            # Only the top `keep` bits of the shifted value are read one by one; everything below
            # is read as its OR (sticky). So the shifter keeps just those bits (_shift_left_top)
            # and the sticky is the OR of the input bits that land below them, selected by a
            # comparison of s with constants; y is that sticky bit under the kept bits, which the
            # round step reads exactly as it would read the full shifted value.
            top = _shift_left_top(self.mag, s, keep)
            below = [self.mag[i] & (s < N - keep - i) for i in range(N - keep)]
            y = Signal(keep + 1)
            m.d.comb += y.eq(Cat(any_of(*below), top))
        return y, Eb, max(hi + N - 1, fmt.emin) + fmt.bias, is_zero

    # ====================================================================================
    # Denormalise: below emin the ulp stays at emin - M (gradual underflow), so the value
    # moves right by ds = emin - E. Clamped at dmax: further right the leading one lies
    # below the guard bit and the top sr_bits residual bits, which then read 0 0..0 with a
    # sticky 1 whatever the exact shift -- the same rounding decision.
    # ====================================================================================
    def _denormalise(self, m: Module, norm, E):
        """``(y, e_eff, e_eff_lo, e_eff_hi)``: the value aligned at the ulp of exponent e_eff."""
        fmt = self._fmt
        N, M, k = self._mag_width, fmt.man_bits, self._sr_bits
        lo, hi = self._exp_range
        dmax = M + 2 + max(k, 1)
        if fmt.subnormals and lo - 1 < fmt.emin:
            ds = Signal(range(dmax + 1))
            under = fmt.emin - E
            m.d.comb += ds.eq(Mux(E >= fmt.emin, 0, Mux(under > dmax, dmax, under)))
            e_eff = Mux(E >= fmt.emin, E, fmt.emin)
            e_eff_lo = fmt.emin
        else:
            # Flush-to-zero formats round with an unbounded exponent (the flush comes after).
            ds = 0
            e_eff = E
            e_eff_lo = lo - 1
        e_eff_hi = max(hi + N - 1, e_eff_lo)

        # Why append dmax zero bits: every right shift up to dmax then keeps all bits of the
        # value, so guard, sticky and the stochastic-rounding bits are read without loss.
        y = Signal(N + dmax)
        m.d.comb += y.eq(Cat(Const(0, dmax), norm) >> ds)
        return y, e_eff, e_eff_lo, e_eff_hi

    # ====================================================================================
    # Round: the kept significand q (M+1 bits), guard bit, sticky bit -> increment.
    # ====================================================================================
    def _round(self, m: Module, y):
        """The rounded significand ``q_r`` (M+2 bits: a carry out is kept for the pack)."""
        q, up = self._round_up(y)
        q_r = Signal(self._fmt.man_bits + 2)
        if self._rounding is Rounding.ROD:
            # Round to odd increments only an even q, which never carries: the increment is an OR
            # into the lsb, and no adder is generated (generation-time specialisation).
            m.d.comb += q_r.eq(Cat(q[0] | up, q[1:]))
        else:
            m.d.comb += q_r.eq(q + up)
        return q_r

    # ====================================================================================
    # Round and pack in one increment (cvfpu's fpnew_rounding: the increment is added to the
    # packed exponent and mantissa, so a mantissa carry moves into the exponent field by the
    # same adder). After the merged normalisation q's top bit is the hidden bit: 1 when the
    # leading one reached the top (E >= emin; the field is then E + bias), 0 for a subnormal
    # (the field is emin + bias - 1, i.e. 0); _normalise_merged supplies that field. A
    # subnormal that rounds up to 2**M becomes the smallest normal (field 1), and a
    # significand that rounds up to 2**(M+1) moves to the next binade with mantissa 0, both
    # by the carry.
    # ====================================================================================
    def _round_pack(self, m: Module, y, Eb, field_hi):
        """``(code, code_lo, code_hi)`` of the merged path: rounded and packed by one increment."""
        fmt, M = self._fmt, self._fmt.man_bits
        q, up = self._round_up(y)
        # The exponent field before rounding, the upper part of ((e_eff + bias) << M) + q - 2**M:
        # Eb when q's top (hidden) bit is 1, emin + bias - 1 (0) for a subnormal or zero (q's
        # top bit 0; a zero's Eb is meaningless, and its code must stay below the overflow
        # threshold, as it does here).
        field = Signal(range(field_hi + 1))
        m.d.comb += field.eq(Mux(q[M], Eb, fmt.emin + fmt.bias - 1))
        code_hi = (field_hi + 1) << M
        code = Signal(int_shape(0, max(code_hi, fmt.max_code + 1)))
        if self._rounding is Rounding.ROD:
            # Round to odd increments only an even q, which never carries: an OR into the lsb
            # (M = 0: an inexact subnormal zero becomes the smallest normal, field 1).
            m.d.comb += code.eq(Cat(q[:M], field) | up)
        else:
            m.d.comb += code.eq(Cat(q[:M], field) + up)
        return code, 0, code_hi

    def _round_up(self, y):
        """``(q, up)``: the kept significand (M+1 bits at y's top) and the round-up decision."""
        mode, M, k = self._rounding, self._fmt.man_bits, self._sr_bits
        L = len(y)
        # The bit at y's top has exponent e_eff, so the top M+1 bits are the significand at
        # ulp = e_eff - M, exactly golden round_to_ulp's q; the next bit is the half-ulp guard
        # and the OR of everything below is the sticky bit.
        q = y[L - M - 1:]
        guard = y[L - M - 2]
        sticky = y[:L - M - 2].any()
        carry = None
        if mode is Rounding.SR:
            # The top k residual bits (truncated below) plus k random bits: a carry out rounds
            # up, so P(up) equals the residual to k bits of resolution.
            carry = (y[L - M - 1 - k:L - M - 1] + self.rnd)[k]
        # The decision is the rule book's, the same body that golden and the torch kernel run.
        up = round_up(mode, lsb=q[0], guard=guard, sticky=sticky, sign=self.sign, sr_carry=carry)
        return q, up

    # ====================================================================================
    # Pack: ((e_eff + bias) << M) + q - 2**M. A carry out of the significand (q = 2**(M+1),
    # or a subnormal reaching 2**M) moves into the exponent field by the plain addition.
    # ====================================================================================
    def _pack(self, m: Module, q_r, e_eff, e_eff_lo, e_eff_hi):
        """``(code, code_lo, code_hi)``: the packed magnitude code and its signed range."""
        fmt, M = self._fmt, self._fmt.man_bits
        # The signed range of the packed value: negative only for a flush-to-zero format (an
        # unbounded exponent below the smallest field), above max_code only if overflow can
        # happen; both bounds decide below whether that logic exists at all.
        code_lo = ((e_eff_lo + fmt.bias) << M) - (1 << M)
        code_hi = ((e_eff_hi + fmt.bias) << M) + (1 << M)
        code = Signal(int_shape(min(code_lo, 0), max(code_hi, fmt.max_code + 1)))
        m.d.comb += code.eq(((e_eff + fmt.bias) << M) + q_r - (1 << M))
        return code, code_lo, code_hi

    # ====================================================================================
    # Overflow and the final code: flush, sign, fnuz's missing -0, the overflow table.
    # ====================================================================================
    def _overflow(self, m: Module, code, code_lo, code_hi, is_zero):
        """The output code: in-range codes signed, overflow from ``FloatFormat.overflow_codes``."""
        fmt, M, sign = self._fmt, self._fmt.man_bits, self.sign
        # -- exact zero input, and flush-to-zero below the smallest normal --------------------
        small = is_zero
        if not fmt.subnormals and code_lo < (1 << M):
            # The magnitude rounded with an unbounded exponent is below min normal: flush.
            small = small | (code < (1 << M))
        mag_code = Signal(fmt.width - 1)
        m.d.comb += mag_code.eq(Mux(small, 0, code))
        signed_code = Cat(mag_code, sign)
        if fmt.specials == "fnuz":
            signed_code = Mux(mag_code == 0, 0, signed_code)
        out = Signal(fmt.width)
        if code_hi <= fmt.max_code:  # the exponent range cannot reach overflow: no logic
            m.d.comb += out.eq(signed_code)
            return out
        # -- overflow: the rule book's codes, constants chosen at generation time ---------------
        pos, neg = fmt.overflow_codes(self._rounding, self._saturate)
        # Why the NaN test first: fnuz's one NaN is the sign bit alone (pos == neg == sign_bit),
        # which also passes the same-magnitude test below, whose fmt.width - 1 bit constant
        # would drop it and write +0 for an overflow.
        if neg == pos:  # the canonical NaN, whatever the sign
            ovf = Const(pos, fmt.width)
        elif neg == pos | fmt.sign_bit:  # the same magnitude either way: only the sign is live
            ovf = Cat(Const(pos, fmt.width - 1), sign)
        else:
            ovf = Mux(sign, Const(neg, fmt.width), Const(pos, fmt.width))
        m.d.comb += out.eq(Mux(code > fmt.max_code, ovf, signed_code))
        return out
