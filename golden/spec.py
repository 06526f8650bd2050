"""The MAC spec: operand, product and accumulator formats plus the arithmetic rules of one MAC.

A :class:`MacSpec` says *what* a multiply-accumulate unit computes; it is the spine of psum. The
same object drives the golden emulation (:func:`psum.golden.mac_step`), the RTL generators
(``psum.hw``), the cocotb testbenches, the synthesis flow and every report row. *How* a unit is
built (pipelining, multiplier style) is kept apart, in ``psum.hw``.

Text form: comma-separated ``key=value`` pairs, shell-safe, e.g.
``a=fp16,b=fp16,acc=fp16,round=rne`` or ``a=int8,b=int8,acc=int20,overflow=wrap``.

=========  ==================================================================================
key        meaning
=========  ==================================================================================
a, b       operand formats (float or integer)
acc        accumulator format: float; integer when both operands are integers; or fixed point
           ``q<I>.<F>`` with any operands (each exact product rounded onto the ``2**-F`` grid)
prod       product format; absent = exact product. Giving one makes the MAC unfused.
fused      ``yes`` (default): one rounding of ``acc + a*b``; ``no``: the product is rounded to
           ``prod`` (default: the accumulator format), then the sum is rounded.
round      rounding mode: rne, rtz, rup, rdn, rna, rod, sr
srbits     random bits per stochastic rounding (``round=sr`` only; default 8)
overflow   integer or fixed-point accumulator: ``wrap`` (default) or ``sat``; float: ``ieee``
           (default) or ``sat``
order      accumulation order: ``seq`` (default), ``chunk<L>`` (chunks of L products summed,
           chunk sums added into ``acc2``), ``tree`` (pairwise over all products), ``tree<N>`` (pairwise
           over each group of N products, group sums added in turn), ``mta<N>w<W>p<P>[floor]`` (fused
           N-term adder of width W, promoted into ``acc2`` every P terms; aligned terms truncated
           toward zero, or with the ``floor`` suffix toward -inf, as a two's-complement
           sign-fill right shift does) or ``ilv<L>`` (L interleaved partial sums, product k into
           sum k mod L, combined at the end)
acc2       second-level accumulator format for ``chunk`` and ``mta`` orders (default fp32)
bsum       block-scaled operands only: the intermediate format each block's products are summed
           into (product by product, the spec's rounding); absent = exact block sums
=========  ==================================================================================

Block-scaled operands (``a=mxfp4,b=mxfp4``, ``nvfp4``, ``mxfp8_e4m3_k16``, ...;
:mod:`psum.golden.blocks`): both operands block formats of one block size, a float,
fixed-point or signed integer accumulator (an integer one is the grid ``q<W>.0``); each block's sum is scaled by the two block scales and added into
``acc`` as one step of the order (the block dot product of :mod:`psum.golden.block_dot`).
"""

from __future__ import annotations

import dataclasses
import re

from psum._util import check_int

from .blocks import BlockFormat, is_block_format, parse_block_format
from .formats import NAMED, FixedFormat, FloatFormat, Format, IntFormat, Pow2Format, parse_format
from .rounding import Rounding, parse_rounding

__all__ = ["MacSpec", "Order", "add_spec", "ORDER_KINDS", "MTA_TRUNCATIONS", "DEFAULT_OPERANDS", "default_operand", "SPEC_HELP", "SPEC_EXAMPLES",
           "key_value_items", "KEYWORD_ALIASES"]

SPEC_EXAMPLES = (
    "a=fp16,b=fp16,acc=fp16,round=rne",
    "a=int8,b=int8,acc=int20,overflow=wrap",
    "a=bf16,b=bf16,acc=e6m9,prod=bf16,fused=no",
    "a=fp8_e4m3,b=fp8_e4m3,acc=e5m6,round=rtz",
    "a=fp4_e2m1,b=fp4_e2m1,acc=e4m3fn,overflow=sat",
    "a=fp16,b=fp16,acc=e5m10,round=sr,srbits=8",
)

SPEC_HELP = (
    "a MAC spec is comma-separated key=value pairs: a=FMT,b=FMT,acc=FMT[,prod=FMT][,fused=yes|no]"
    "[,round=rne|rtz|rup|rdn|rna|rod|sr][,srbits=K][,overflow=wrap|sat|ieee]"
    "[,order=seq|chunk<L>|tree|tree<N>|mta<N>w<W>p<P>[floor]|ilv<L>][,acc2=FMT][,bsum=FMT]; a and b may be block "
    "formats (mxfp4, nvfp4, mxfp8_e4m3, ...); e.g. " + SPEC_EXAMPLES[0]
)

# Operand formats of a study that names only the accumulator (sweeps, reports), by accumulator
# kind: 8-bit operands for both, so float and integer accumulators are compared at the same
# operand width. Declared once here; sweeps and reports read it.
DEFAULT_OPERANDS: dict[str, Format] = {"float": NAMED["fp8_e4m3"], "int": IntFormat(8, signed=True)}


def default_operand(acc) -> Format:
    """The default operand format (``a`` and ``b``) for an accumulator format or its text.

    Parameters
    ----------
    acc : Format or str
        The accumulator format.

    Returns
    -------
    Format
        ``DEFAULT_OPERANDS["int"]`` (int8) for an integer accumulator, else
        ``DEFAULT_OPERANDS["float"]`` (fp8_e4m3), also for a fixed-point accumulator (the float
        operands a Kulisch-style register accumulates).

    Raises
    ------
    ValueError
        ``acc`` is not a format (the :func:`parse_format` message).
    """
    return DEFAULT_OPERANDS["int" if isinstance(parse_format(acc), IntFormat) else "float"]


_KEYS = ("a", "b", "acc", "prod", "fused", "round", "srbits", "overflow", "order", "acc2", "bsum")

# ---------------------------------------------------------------------------------------------
# Accumulation order
# ---------------------------------------------------------------------------------------------
ORDER_KINDS = ("seq", "tree", "chunk", "mta", "ilv")
# Which integer parameters each kind takes, in text order (``chunk<L>``, ``mta<N>w<W>p<P>``).
# ``tree`` takes N optionally: ``tree`` (one tree over all K products) or ``tree<N>``.
_ORDER_PARAMS = {"seq": (), "tree": ("n",), "chunk": ("length",), "mta": ("n", "w", "p"), "ilv": ("length",)}
_ORDER_LETTER = {"length": "L", "n": "N", "w": "W", "p": "P"}
# The one grammar of the order text; nothing outside this module parses it.
_ORDER_RE = re.compile(r"(seq|tree)|chunk([0-9]+)|mta([0-9]+)w([0-9]+)p([0-9]+)(floor)?|ilv([0-9]+)|tree([0-9]+)")  # ASCII digits only
_ORDER_HELP = "seq, tree, tree<N>, chunk<L>, mta<N>w<W>p<P> or ilv<L>"  # (+ floor suffix: see Order)
# How the mta adder truncates an aligned term below its W-bit window: "zero" (sign-magnitude,
# toward zero) or "floor" (two's complement shifted right with sign fill: toward -inf).
MTA_TRUNCATIONS = ("zero", "floor")
# The mta engine sums W-bit aligned terms of N products plus the register in an int64 with a
# spare bit for the sign: W + bit_length(N + 1) <= 61 keeps that sum exact (no wrap).
_MTA_SUM_BITS = 61


@dataclasses.dataclass(frozen=True)
class Order:
    """The accumulation order of network emulation, as a value: a kind and its integer parameters.

    Text form (``Order.parse`` / ``str``, round trip): ``seq``, ``tree``, ``tree<N>``, ``chunk<L>``,
    ``mta<N>w<W>p<P>`` or ``ilv<L>``; :func:`psum.golden.emulation.kernels.accumulate_order`
    states the semantics.

    Parameters
    ----------
    kind : str
        ``"seq"`` (one product per step), ``"tree"`` (pairwise: over all products, or with ``n``
        over each group of ``n`` products, the group sums added into the register in turn, what
        an ``n``-input adder-tree unit computes), ``"chunk"`` (chunks of
        ``length`` products, chunk sums added into ``acc2``) or ``"mta"`` (a fused ``n``-term
        adder of width ``w``, promoted into ``acc2`` every ``p`` products) or ``"ilv"``
        (``length`` interleaved partial sums, as a float adder with an L-cycle latency keeps).
    length : int, optional
        L, the chunk length (``chunk``) or the number of partial sums (``ilv``), at least 1.
    n, w, p : int, optional
        ``tree``: N products per tree (optional, at least 1). ``mta``: N terms per adder, W bits
        kept below the leading one, promotion every P products: all at least 1, P a multiple
        of N, W + bit_length(N+1) at most 61.
    trunc : {"zero", "floor"}, optional
        ``mta`` only (default ``"zero"``): how an aligned term loses its bits below the W-bit
        window: toward zero (sign and magnitude), or toward -inf (``floor``; the term in two's
        complement shifted right with sign fill, which public discussions of Hopper's FP8
        alignment after DeepSeek-V3 section 3.5.2 suggest). Text: the suffix ``floor`` (``mta32w14p128floor``).

    Raises
    ------
    ValueError
        One line naming the order and the offending parameter.
    TypeError
        A parameter that is not an integer.
    """

    kind: str = "seq"
    length: int | None = None
    n: int | None = None
    w: int | None = None
    p: int | None = None
    trunc: str | None = None

    def __post_init__(self):
        if self.kind not in ORDER_KINDS:
            raise ValueError(f"order kind must be one of {', '.join(ORDER_KINDS)}, not {self.kind!r}")
        wanted = _ORDER_PARAMS[self.kind]
        for name in ("length", "n", "w", "p"):
            given = getattr(self, name) is not None
            if self.kind == "tree" and name == "n" and not given:
                continue  # plain ``tree``: one tree over all products
            if given != (name in wanted):
                letters = ", ".join(_ORDER_LETTER[k] for k in wanted) or "no parameters"
                raise ValueError(f"order {self.kind} takes {letters}; {_ORDER_LETTER[name]} "
                                 f"{'is missing' if not given else 'does not apply'}")
        where = f"order {self}: "
        if self.kind in ("chunk", "ilv"):
            object.__setattr__(self, "length", check_int(where + "L", self.length, 1))
        elif self.kind == "tree" and self.n is not None:
            object.__setattr__(self, "n", check_int(where + "N", self.n, 1))
        elif self.kind == "mta":
            # N + 1 terms must leave room for at least one bit of W in the exact int64 sum.
            n = check_int(where + "N", self.n, 1, (1 << (_MTA_SUM_BITS - 1)) - 2)
            w = check_int(where + "W", self.w, 1, _MTA_SUM_BITS - (n + 1).bit_length())
            p = check_int(where + "P", self.p, 1)
            if p % n:
                raise ValueError(f"{where}P={p} must be a multiple of N={n}")
            for name, value in (("n", n), ("w", w), ("p", p)):
                object.__setattr__(self, name, value)
            trunc = "zero" if self.trunc is None else self.trunc
            if trunc not in MTA_TRUNCATIONS:
                raise ValueError(f"{where}trunc must be zero or floor, not {trunc!r}")
            object.__setattr__(self, "trunc", trunc)
        if self.kind != "mta" and self.trunc is not None:
            raise ValueError(f"order {self.kind} takes no trunc (mta only)")

    def __str__(self) -> str:
        if self.kind == "chunk":
            return f"chunk{self.length}"
        if self.kind == "mta":
            return f"mta{self.n}w{self.w}p{self.p}" + ("floor" if self.trunc == "floor" else "")
        if self.kind == "ilv":
            return f"ilv{self.length}"
        if self.kind == "tree" and self.n is not None:
            return f"tree{self.n}"
        return self.kind

    @property
    def lanes(self) -> int:
        """Products an adder of this order takes at once: N for ``mta<N>w<W>p<P>`` and ``tree<N>``, else 1."""
        return self.n if self.kind in ("mta", "tree") and self.n is not None else 1

    @property
    def uses_acc2(self) -> bool:
        """True for the orders that add partial results into a second accumulator (chunk, mta)."""
        return self.kind in ("chunk", "mta")

    @staticmethod
    def parse(text) -> "Order":
        """Parse ``seq``, ``tree``, ``tree<N>``, ``chunk<L>``, ``mta<N>w<W>p<P>[floor]`` or ``ilv<L>``; ``Order.parse(str(o)) == o``.

        An :class:`Order` is returned unchanged.

        Raises
        ------
        ValueError
            One line: the accepted forms, or the parameter that is out of range.
        """
        if isinstance(text, Order):
            return text
        key = text.strip().lower() if isinstance(text, str) else None
        m = _ORDER_RE.fullmatch(key) if key is not None else None
        if not m:
            raise ValueError(f"order must be {_ORDER_HELP}, not {text!r}")
        if m.group(1):
            return Order(m.group(1))
        if m.group(2):
            return Order("chunk", length=int(m.group(2)))
        if m.group(7):
            return Order("ilv", length=int(m.group(7)))
        if m.group(8):
            return Order("tree", n=int(m.group(8)))
        return Order("mta", n=int(m.group(3)), w=int(m.group(4)), p=int(m.group(5)),
                     trunc="floor" if m.group(6) else "zero")


def _kind(fmt) -> str:
    """``"float"``, ``"int"`` or ``"fixed"``: the kind of a format, as messages name it."""
    return "fixed" if isinstance(fmt, FixedFormat) else "int" if isinstance(fmt, IntFormat) else "float"


_KIND_TEXT = {"float": "a float", "int": "an integer", "fixed": "a fixed-point"}


def _lsb_exp(fmt) -> int | None:
    """Exponent of the finest bit a value of ``fmt`` can have: 0 for an integer, ``-F`` for
    ``q<I>.<F>``, ``emin - man_bits`` for a float (its smallest subnormal; an ftz format's normal
    values have their last bit there too); None for a block format."""
    if isinstance(fmt, FixedFormat):
        return -fmt.frac_bits
    if isinstance(fmt, IntFormat):
        return 0
    if isinstance(fmt, FloatFormat):
        return fmt.emin - fmt.man_bits
    return None


def _exact_on(a, b, acc) -> bool:
    """True when every product of ``a`` and ``b`` lies on the grid of an integer or fixed-point ``acc``.

    Then ``acc + a*b`` is a multiple of the accumulator's lsb and only overflow (wrap or sat)
    applies: a product's last bit lies no finer than the sum of the operands' finest bits
    (``2**-Fa * 2**-Fb``; fp8_e4m3's ``2**-9`` squared is on the grid of ``q8.24``). NaN and
    infinite products take fixed codes that no rounding decides (:mod:`psum.golden.mac`).
    """
    if not isinstance(acc, (IntFormat, FixedFormat)):
        return False
    lsbs = [_lsb_exp(f) for f in (a, b, acc)]
    return None not in lsbs and lsbs[0] + lsbs[1] >= lsbs[2]


def _yes_no(key: str, text: str) -> bool:
    if text in ("yes", "true", "1", "on"):
        return True
    if text in ("no", "false", "0", "off"):
        return False
    raise ValueError(f"{key} must be yes or no, not {text!r}")


@dataclasses.dataclass(frozen=True)
class MacSpec:
    """What one multiply-accumulate unit computes.

    ``MacSpec("a=fp16,b=fp16,acc=fp16,round=rtz")`` takes the text form too (:meth:`parse`;
    keywords given with it change fields of it), and ``round=`` / ``srbits=`` are aliases of
    ``rounding=`` / ``sr_bits=``, so the Python keywords and the text keys agree.

    Parameters
    ----------
    a, b : Format or str
        Operand formats.
    acc : Format or str
        Accumulator format. An integer accumulator needs integer operands; a fixed-point one
        (``q<I>.<F>``) takes float, integer or fixed-point operands and the exact product only
        (no ``prod``). An unsigned accumulator may take signed operands: each step forms the
        exact signed sum ``acc + a*b`` and wraps it modulo ``2**N`` (the bits a two's-complement
        register of that width holds, read as unsigned) or, with ``overflow=sat``, clamps it to
        ``[0, 2**N - 1]`` (a negative sum gives 0); every engine and the RTL compute exactly this
        (:func:`psum.golden.mac_step`).
    prod : Format or str, optional
        Product format. ``None`` keeps the product exact (fused MAC). A product format makes the MAC
        unfused: the product is rounded to it (with ``rounding``; ``sr`` rounds the product to
        nearest-even and only the accumulation stochastically), then the sum is rounded.
    fused : bool
        ``True``: one rounding of ``acc + a*b``. ``False``: unfused, ``prod`` defaults to ``acc``.
    rounding : Rounding or str
        Rounding mode of every rounding step. A unit that never rounds (:attr:`rounds`) takes
        only the default ``rne``: an integer accumulator, or a fixed-point one whose every
        product lies on its grid (the operands' finest bits multiply to at most ``2**-F``:
        ``a=int8,b=int8,acc=q16.4``, ``a=fp8_e4m3,b=fp8_e4m3,acc=q8.24``), unless block-scaled
        operands or a float ``acc2`` (``chunk``) round; another mode, ``sr`` and ``srbits``
        included, would be ignored by every engine, so it is refused.
    overflow : str, optional
        ``"wrap"`` (default) or ``"sat"`` for an integer or fixed-point accumulator; ``"ieee"`` (default) or
        ``"sat"`` for a float one (see :func:`psum.golden.round_float` for the exact rule).
    sr_bits : int, optional
        Random bits per stochastic rounding, 1..32; default 8 with ``rounding="sr"``, else 0.
    order : Order or str
        Accumulation order (:class:`Order`, or its text): of network emulation and of the unit
        that implements it (``psum.hw``). ``mta`` needs a float accumulator and products of at most 61 bits.
    acc2 : Format or str, optional
        Second-level accumulator for the ``chunk`` and ``mta`` orders (default fp32). An integer
        ``acc2`` needs an integer ``acc``.
    bsum : Format or str, optional
        Block-scaled operands only: the format each block's products are summed into; ``None``
        (default) sums them exactly (:mod:`psum.golden.blocks`).

    Raises
    ------
    ValueError
        One line naming the offending field.
    """

    a: Format
    b: Format
    acc: Format
    prod: Format | None = None
    fused: bool = True
    rounding: Rounding = Rounding.RNE
    overflow: str = None  # type: ignore[assignment]
    sr_bits: int = None  # type: ignore[assignment]
    order: Order = Order()
    acc2: Format | None = None
    bsum: Format | None = None

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 - frozen dataclass
        for key in ("a", "b"):
            v = getattr(self, key)
            set_(key, parse_block_format(v) if is_block_format(v) else parse_format(v))
        set_("acc", parse_format(self.acc))
        for key in ("a", "b", "acc"):
            if isinstance(getattr(self, key), Pow2Format):
                raise ValueError(f"{key}={getattr(self, key)} is a scale format; it names the scale of a "
                                 f"block format (mxfp4, ...), not a MAC {'accumulator' if key == 'acc' else 'operand'}")
        if self.bsum is not None:
            set_("bsum", parse_format(self.bsum))
        self._check_blocks()
        if self.prod is not None:
            set_("prod", parse_format(self.prod))
        set_("rounding", parse_rounding(self.rounding))
        if not isinstance(self.fused, bool):
            raise ValueError(f"fused must be True or False, not {self.fused!r}")
        int_acc = isinstance(self.acc, IntFormat)
        acc_kind = _kind(self.acc)
        if int_acc and not self.blocked:  # block operands: an int acc is the grid q<W>.0 (block_dot)
            for key in ("a", "b"):
                if _kind(getattr(self, key)) != "int":
                    raise ValueError(
                        f"an integer accumulator needs integer operands; {key}={getattr(self, key)} "
                        f"is {_KIND_TEXT[_kind(getattr(self, key))]} format"
                    )
        if acc_kind == "fixed" and (self.prod is not None or not self.fused):
            # Why: a fixed-point register adds the exact product on its grid (FloPoCo's
            # FPLargeAcc, Kulisch); a rounded product format would be a second rounding no
            # generator or kernel implements.
            raise ValueError(f"a fixed-point accumulator takes the exact product (fused=yes); "
                             f"acc={self.acc} with prod/fused=no is not supported")
        if self.prod is not None and self.fused:
            raise ValueError(
                f"prod={self.prod} rounds the product, which makes the MAC unfused; add fused=no"
            )
        if not self.fused and self.prod is None:
            set_("prod", self.acc)
        if self.prod is not None and _kind(self.prod) != acc_kind:
            raise ValueError(
                f"prod={self.prod} must be {_KIND_TEXT[acc_kind]} format like acc={self.acc}"
            )
        allowed = ("ieee", "sat") if acc_kind == "float" else ("wrap", "sat")
        if self.overflow is None:
            set_("overflow", allowed[0])
        if self.overflow not in allowed:
            raise ValueError(
                f"overflow for {_KIND_TEXT[acc_kind]} accumulator must be "
                f"{' or '.join(allowed)}, not {self.overflow!r}"
            )
        if self.sr_bits is None:
            set_("sr_bits", 8 if self.rounding is Rounding.SR else 0)
        if self.rounding is Rounding.SR:
            set_("sr_bits", check_int("srbits", self.sr_bits, 1, 32))
        elif self.sr_bits != 0:
            raise ValueError("srbits applies only to stochastic rounding (round=sr)")
        set_("order", Order.parse(self.order))
        order = self.order
        if order.kind == "mta":
            if acc_kind != "float":
                raise ValueError(f"order {order} needs a float accumulator, not {self.acc}")
            # the exact product of the widest terms must fit the int64 alignment datapath
            # (block specs: the terms are fp64 values times the integer 1, 55 bits)
            if not self.blocked and self.a.precision + self.b.precision > _MTA_SUM_BITS:
                raise ValueError(f"order {order}: products of {self.a} and {self.b} are too wide")
        if order.uses_acc2:
            set_("acc2", parse_format(self.acc2 if self.acc2 is not None else "fp32"))
            # acc values are added into acc2 as one MAC step (acc2 := acc2 + acc*1): an integer acc2
            # can only take integer operands.
            if isinstance(self.acc2, IntFormat) and not int_acc:
                raise ValueError(f"an integer acc2 needs an integer acc; acc={self.acc} is a float format")
        elif self.acc2 is not None:
            raise ValueError("acc2 applies only to order=chunk<L> or order=mta<N>w<W>p<P>")
        if self.rounding is not Rounding.RNE and not self.rounds:
            # Why refuse: the unit's name, its RTL and every engine ignore the mode, so a study
            # of round=rtz on such a unit would silently be a study of nothing. rne is the
            # default, which str() prints, so it stays accepted (round trip).
            raise ValueError(f"round={self.rounding.value} has no effect on acc={self.acc}: {self._exact_reason()}; "
                             f"leave round unset (rne)")

    def _check_blocks(self) -> None:
        """Block-scaled operands: both or neither, one block size, a float, fixed or signed int accumulator."""
        ba, bb = isinstance(self.a, BlockFormat), isinstance(self.b, BlockFormat)
        if not (ba or bb):
            if self.bsum is not None:
                raise ValueError("bsum applies only to block-scaled operands (a=mxfp4,b=mxfp4, ...)")
            return
        if not (ba and bb):
            plain = "a" if not ba else "b"
            raise ValueError(f"block-scaled operands come in pairs; {plain}={getattr(self, plain)} is not a block format")
        if self.a.block != self.b.block:
            raise ValueError(f"block-scaled operands need one block size; a={self.a} has {self.a.block}, "
                             f"b={self.b} has {self.b.block}")
        if isinstance(self.acc, IntFormat) and not self.acc.signed:
            # an integer accumulator is the fixed-point grid q<W>.0 (psum.golden.block_dot); block
            # terms carry a sign, so an unsigned register has no defined meaning here
            raise ValueError(f"block-scaled operands need a float, fixed-point or signed integer accumulator, "
                             f"not {self.acc}")
        if self.prod is not None or not self.fused:
            raise ValueError("prod/fused=no do not apply to block-scaled operands; bsum=FMT names the "
                             "block-sum format")
        if self.bsum is not None and not isinstance(self.bsum, FloatFormat):
            raise ValueError(f"bsum must be a float format, not {self.bsum}")

    @property
    def rounds(self) -> bool:
        """False when no step of this unit can round: ``round=`` and ``srbits=`` would be ignored
        (such a spec takes only the default ``rne``).

        That is an integer or fixed-point accumulator whose every product lies on its grid
        (:func:`_exact_on`), and, for the chunk order, an
        ``acc2`` that takes the accumulator's values exactly. Block-scaled operands always may
        round (their block scales move the terms off the grid), and so does every float format.
        """
        if self.blocked or not _exact_on(self.a, self.b, self.acc):
            return True
        return self.acc2 is not None and not _exact_on(self.acc, _ONE, self.acc2)

    def _exact_reason(self) -> str:
        """Why :attr:`rounds` is False, as the refusal names it (one clause)."""
        if isinstance(self.acc, IntFormat):
            what = "an integer accumulator adds exact integer products and never rounds"
        else:
            what = f"the products of {self.a} and {self.b} lie on its grid, so it never rounds"
        if self.order.uses_acc2:
            return what + f" (nor does acc2={self.acc2})"
        return what + " (only a float acc2 of order=chunk<L> would)"

    # -- derived -------------------------------------------------------------------------------
    @property
    def blocked(self) -> bool:
        """True when the operands are block formats (:mod:`psum.golden.blocks`)."""
        return isinstance(self.a, BlockFormat)

    @property
    def int_acc(self) -> bool:
        """True when the accumulator is an integer format."""
        return isinstance(self.acc, IntFormat)

    @property
    def fixed_acc(self) -> bool:
        """True when the accumulator is a fixed-point format (``q<I>.<F>``)."""
        return isinstance(self.acc, FixedFormat)

    @property
    def saturate(self) -> bool:
        return self.overflow == "sat"

    @property
    def name(self) -> str:
        """Identifier naming the unit, e.g. ``mac_e4m3fn_e4m3fn_acc_e6m9_rne``."""
        parts = ["mac", self.a.tag, self.b.tag, "acc", self.acc.tag]
        if not self.fused:
            parts += ["p", self.prod.tag]
        if not self.int_acc or self.rounds:  # an integer chunk unit's float acc2 rounds: rtz and rne differ
            parts.append(self.rounding.value + (str(self.sr_bits) if self.sr_bits else ""))
        if self.overflow == "sat" or not isinstance(self.acc, FloatFormat):
            parts.append(self.overflow)  # integer and fixed-point units always say wrap or sat
        if self.order.kind != "seq":
            parts.append(str(self.order))
        if self.acc2 is not None:
            parts.append(self.acc2.tag)
        if self.bsum is not None:
            parts += ["bs", self.bsum.tag]
        return "_".join(parts)

    def __str__(self) -> str:
        fields = [f"a={self.a}", f"b={self.b}", f"acc={self.acc}"]
        if not self.fused:
            fields += [f"prod={self.prod}", "fused=no"]
        fields.append(f"round={self.rounding.value}")
        if self.sr_bits:
            fields.append(f"srbits={self.sr_bits}")
        fields.append(f"overflow={self.overflow}")
        if self.order.kind != "seq":
            fields.append(f"order={self.order}")
        if self.acc2 is not None:  # only the chunk and mta orders have one (tree has none)
            fields.append(f"acc2={self.acc2}")
        if self.bsum is not None:
            fields.append(f"bsum={self.bsum}")
        return ",".join(fields)

    def replace(self, **changes) -> "MacSpec":
        """A copy with some fields changed (re-validated).

        Changing ``order`` to one without a second-level accumulator (``seq``, ``tree``) drops
        ``acc2`` unless ``acc2`` is given too; an order that needs one gets its default. A copy
        that never rounds (:attr:`rounds`: an integer chunk unit's sequential step) takes ``rne``
        unless ``rounding`` is given too.
        """
        if "order" in changes and "acc2" not in changes and not Order.parse(changes["order"]).uses_acc2:
            changes["acc2"] = None
        if self.rounding is not Rounding.RNE and not {"rounding", "round"} & set(changes):
            # the sequential step of an int16 chunk unit with round=rtz (its fp32 acc2 rounds, the
            # step does not): a copy that never rounds takes rne, as such a spec must
            plain = {k: v for k, v in changes.items() if k not in ("sr_bits", "srbits")}
            plain = dataclasses.replace(self, **plain, rounding=Rounding.RNE, sr_bits=None)
            if not plain.rounds:
                return plain
        return dataclasses.replace(self, **changes)

    @staticmethod
    def parse(text) -> "MacSpec":
        """Parse the ``key=value,...`` text form; ``MacSpec.parse(str(s)) == s``.

        Raises
        ------
        ValueError
            One line saying which key or value is wrong.
        TypeError
            ``text`` is neither a :class:`MacSpec` nor a string (one line naming its type).
        """
        if isinstance(text, MacSpec):
            return text
        if not isinstance(text, str):  # as MacImpl.parse: the type, not "empty" (issue: MacSpec.parse(5))
            raise TypeError(f"MAC spec must be a MacSpec or key=value text, not {type(text).__name__} {text!r}")
        if not text.strip():
            raise ValueError(f"empty MAC spec; {SPEC_HELP}")
        kwargs: dict = {}
        for key, value in key_value_items(text, what="MAC spec", keys=_KEYS, form="key=value", help_text=SPEC_HELP):
            if key in kwargs or (key == "round" and "rounding" in kwargs) or (key == "srbits" and "sr_bits" in kwargs):
                raise ValueError(f"MAC spec key {key!r} given twice")
            if key == "fused":
                kwargs["fused"] = _yes_no("fused", value.lower())
            elif key == "round":
                kwargs["rounding"] = value
            elif key == "srbits":
                if not re.fullmatch(r"[0-9]+", value):
                    raise ValueError(f"srbits must be an integer between 1 and 32, not {value!r}")
                kwargs["sr_bits"] = int(value)
            elif key in ("overflow", "order"):
                kwargs[key] = value.lower()
            else:
                kwargs[key] = value
        missing = [k for k in ("a", "b", "acc") if k not in kwargs]
        if missing:
            raise ValueError(f"MAC spec needs {', '.join(k + '=FMT' for k in missing)}; {SPEC_HELP}")
        return MacSpec(**kwargs)


# Python keywords spelt as the text keys (``round=``, ``srbits=``): either spelling works.
KEYWORD_ALIASES = {"round": "rounding", "srbits": "sr_bits"}

_fields_init = MacSpec.__init__  # the dataclass's own __init__ (keyword per field, then __post_init__)


def _macspec_init(self, *args, **kwargs):
    """``MacSpec(a, b, acc, ...)`` as the dataclass, plus ``MacSpec("a=...,acc=...")`` (the text
    form, :meth:`MacSpec.parse`; further keywords then change fields of it) and the text keys as
    keyword aliases (``round=`` for ``rounding=``, ``srbits=`` for ``sr_bits=``)."""
    for alias, name in KEYWORD_ALIASES.items():
        if alias in kwargs:
            if name in kwargs:
                raise TypeError(f"MacSpec got both {name}= and its alias {alias}=")
            kwargs[name] = kwargs.pop(alias)
    if len(args) == 1 and isinstance(args[0], str) and "=" in args[0]:
        parsed = MacSpec.parse(args[0])
        if kwargs:
            parsed = parsed.replace(**kwargs)
        for f in dataclasses.fields(MacSpec):  # already validated by parse / replace
            object.__setattr__(self, f.name, getattr(parsed, f.name))
        return
    _fields_init(self, *args, **kwargs)


MacSpec.__init__ = _macspec_init


def key_value_items(text: str, *, what: str, keys, form: str, help_text: str) -> list[tuple[str, str]]:
    """The ``(key, value)`` pairs of ``key=value,...`` text (keys lower-cased, both stripped; empty
    items skipped): the one reader of psum's comma-separated texts (:meth:`MacSpec.parse`,
    :meth:`psum.hw.impl.MacImpl.parse`). Repeated keys are the caller's to judge (aliases).

    Raises
    ------
    ValueError
        ``"<what> item '<item>' is not <form>; <help_text>"`` or
        ``"unknown <what> key '<key>'; keys are ..."``.
    """
    items = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        key, eq, value = item.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not eq or not value:
            raise ValueError(f"{what} item {item!r} is not {form}; {help_text}")
        if key not in keys:
            raise ValueError(f"unknown {what} key {key!r}; keys are {', '.join(keys)}")
        items.append((key, value))
    return items


# The operand b = 1 of an "add" step: acc := round(acc + x*1), exact product (2-bit signed: 1 fits).
_ONE = IntFormat(2)


def add_spec(spec: MacSpec, target) -> MacSpec:
    """The unit that adds a value of ``spec.acc`` into ``target``: ``mac_step(s, t, x, 1)``.

    The one definition of an order's "add" step (chunk and mta promotions into ``acc2``, tree
    nodes, the ilv combine), shared by the emulation kernels and the order units of ``psum.hw``:
    ``a`` is ``spec.acc``, ``b`` the integer 1 (code 1 of a 2-bit integer), the accumulator
    ``target``, with the spec's rounding and, where ``target`` takes it, its overflow rule.

    Parameters
    ----------
    spec : MacSpec
        The unit whose accumulator values are added.
    target : Format
        Format of the sum (``spec.acc2`` or ``spec.acc``).

    Returns
    -------
    MacSpec
    """
    target_float = isinstance(target, FloatFormat)  # integer and fixed point: wrap or sat
    overflow = spec.overflow if spec.overflow in (("ieee", "sat") if target_float else ("wrap", "sat")) else None
    if _exact_on(spec.acc, _ONE, target):
        # the add cannot round (an int acc's values into an int acc2, a tree node of a fixed-point
        # acc), so it takes the default mode, as MacSpec requires: the spec's mode may be one
        # that only its products use
        return MacSpec(a=spec.acc, b=_ONE, acc=target, overflow=overflow)
    return MacSpec(a=spec.acc, b=_ONE, acc=target, rounding=spec.rounding,
                   sr_bits=spec.sr_bits if spec.sr_bits else None, overflow=overflow)
