"""The MAC spec's typed fields: ``Order`` as a value, its validation in ``MacSpec``, text round trips.

Every rule of an accumulation order is checked when the spec is built (``MacSpec.__post_init__``),
so ``MacSpec.parse`` rejects what the emulation could not run, with one line, tested character for
character. Every spec text round-trips: ``MacSpec.parse(str(s)) == s``.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from psum.golden import MacSpec, Order, parse_format
from psum.golden.spec import ORDER_KINDS

ROOT = Path(__file__).resolve().parent.parent


# -- Order -------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, order", [
    ("seq", Order()),
    ("tree", Order("tree")),
    ("tree8", Order("tree", n=8)),
    ("tree1", Order("tree", n=1)),
    ("chunk32", Order("chunk", length=32)),
    ("mta4w8p8", Order("mta", n=4, w=8, p=8)),
    ("mta1w1p1", Order("mta", n=1, w=1, p=1)),
    ("mta4w58p12", Order("mta", n=4, w=58, p=12)),  # widest W for N=4: 58 + bit_length(5) = 61
    ("ilv3", Order("ilv", length=3)),
    ("ilv1", Order("ilv", length=1)),
])
def test_order_text_round_trip(text, order):
    assert Order.parse(text) == order
    assert str(order) == text
    assert Order.parse(str(order)) == order
    assert Order.parse(order) is order


def test_order_fields_and_case():
    o = Order.parse(" MTA8w14P16 ")
    assert (o.kind, o.length, o.n, o.w, o.p) == ("mta", None, 8, 14, 16)
    assert Order.parse("chunk5").length == 5
    assert Order.parse("chunk5").uses_acc2 and o.uses_acc2
    assert not Order.parse("tree").uses_acc2 and not Order().uses_acc2
    assert set(ORDER_KINDS) == {"seq", "tree", "chunk", "mta", "ilv"}
    assert Order.parse("ilv4").length == 4 and not Order.parse("ilv4").uses_acc2


@pytest.mark.parametrize("text, message", [
    ("mta4w8p6", "order mta4w8p6: P=6 must be a multiple of N=4"),
    ("mta4w70p8", "order mta4w70p8: W must be an integer between 1 and 58, not 70"),
    ("mta4w59p8", "order mta4w59p8: W must be an integer between 1 and 58, not 59"),
    ("mta0w8p8", "order mta0w8p8: N must be an integer between 1 and 1152921504606846974, not 0"),
    ("mta4w0p8", "order mta4w0p8: W must be an integer between 1 and 58, not 0"),
    ("mta4w8p0", "order mta4w8p0: P must be an integer >= 1, not 0"),
    ("chunk0", "order chunk0: L must be an integer >= 1, not 0"),
    ("ilv0", "order ilv0: L must be an integer >= 1, not 0"),
    ("ilv", "order must be seq, tree, tree<N>, chunk<L>, mta<N>w<W>p<P> or ilv<L>, not 'ilv'"),
    ("chunk", "order must be seq, tree, tree<N>, chunk<L>, mta<N>w<W>p<P> or ilv<L>, not 'chunk'"),
    ("mta4w8", "order must be seq, tree, tree<N>, chunk<L>, mta<N>w<W>p<P> or ilv<L>, not 'mta4w8'"),
    ("pairwise", "order must be seq, tree, tree<N>, chunk<L>, mta<N>w<W>p<P> or ilv<L>, not 'pairwise'"),
    ("chunk-4", "order must be seq, tree, tree<N>, chunk<L>, mta<N>w<W>p<P> or ilv<L>, not 'chunk-4'"),
])
def test_order_parse_errors(text, message):
    with pytest.raises(ValueError) as info:
        Order.parse(text)
    assert str(info.value) == message


@pytest.mark.parametrize("kwargs, exc, message", [
    (dict(kind="pairs"), ValueError, "order kind must be one of seq, tree, chunk, mta, ilv, not 'pairs'"),
    (dict(kind="ilv"), ValueError, "order ilv takes L; L is missing"),
    (dict(kind="seq", length=4), ValueError, "order seq takes no parameters; L does not apply"),
    (dict(kind="tree", length=2), ValueError, "order tree takes N; L does not apply"),
    (dict(kind="tree", n=0), ValueError, "order tree0: N must be an integer >= 1, not 0"),
    (dict(kind="chunk"), ValueError, "order chunk takes L; L is missing"),
    (dict(kind="chunk", length=4, p=4), ValueError, "order chunk takes L; P does not apply"),
    (dict(kind="mta", n=4, w=8), ValueError, "order mta takes N, W, P; P is missing"),
    (dict(kind="chunk", length=2.0), TypeError, "order chunk2.0: L must be an integer >= 1, not 2.0"),
    (dict(kind="mta", n=True, w=8, p=8), TypeError,
     "order mtaTruew8p8: N must be an integer between 1 and 1152921504606846974, not True"),
])
def test_order_constructor_errors(kwargs, exc, message):
    with pytest.raises(exc) as info:
        Order(**kwargs)
    assert str(info.value) == message


def test_order_is_a_frozen_value():
    o = Order("chunk", length=8)
    assert hash(o) == hash(Order.parse("chunk8"))
    with pytest.raises(AttributeError):
        o.length = 4  # type: ignore[misc]


# -- MacSpec: the order's rules that need the whole spec ---------------------------------------
@pytest.mark.parametrize("text, message", [
    # the three specs of issue 9: accepted by MacSpec.parse before, rejected only at emulation time
    ("a=fp8_e4m3,b=fp8_e4m3,acc=fp16,order=mta4w8p6", "order mta4w8p6: P=6 must be a multiple of N=4"),
    ("a=int8,b=int8,acc=int16,order=mta4w8p8", "order mta4w8p8 needs a float accumulator, not int16"),
    ("a=fp8_e4m3,b=fp8_e4m3,acc=fp16,order=mta4w70p8",
     "order mta4w70p8: W must be an integer between 1 and 58, not 70"),
    ("a=fp64,b=fp64,acc=fp32,order=mta2w8p2", "order mta2w8p2: products of fp64 and fp64 are too wide"),
    ("a=fp16,b=fp16,acc=fp16,order=chunk4,acc2=int32",
     "an integer acc2 needs an integer acc; acc=fp16 is a float format"),
    ("a=fp16,b=fp16,acc=fp16,order=tree,acc2=fp32", "acc2 applies only to order=chunk<L> or order=mta<N>w<W>p<P>"),
    ("a=fp16,b=fp16,acc=fp16,acc2=fp32", "acc2 applies only to order=chunk<L> or order=mta<N>w<W>p<P>"),
    ("a=fp16,b=fp16,acc=fp16,order=chunk0", "order chunk0: L must be an integer >= 1, not 0"),
    ("a=fp16,b=fp16,acc=fp16,order=zigzag", "order must be seq, tree, tree<N>, chunk<L>, mta<N>w<W>p<P> or ilv<L>, not 'zigzag'"),
])
def test_macspec_rejects_bad_orders(text, message):
    with pytest.raises(ValueError) as info:
        MacSpec.parse(text)
    assert str(info.value) == message
    assert "\n" not in str(info.value)


def test_macspec_order_is_typed():
    s = MacSpec.parse("a=fp8_e4m3,b=fp8_e4m3,acc=e5m6,order=mta3w6p6,acc2=fp16")
    assert s.order == Order("mta", n=3, w=6, p=6)
    assert (s.order.n, s.order.w, s.order.p) == (3, 6, 6)
    assert MacSpec("fp16", "fp16", "fp16").order == Order()
    assert MacSpec("fp16", "fp16", "fp16", order="chunk8") == MacSpec("fp16", "fp16", "fp16",
                                                                      order=Order("chunk", length=8))
    assert s.replace(order="seq", acc2=None).order.kind == "seq"
    # an integer chunk accumulator may add into a float acc2 (and an integer one)
    assert MacSpec.parse("a=int8,b=int8,acc=int12,order=chunk5,acc2=fp32").acc2 == parse_format("fp32")
    assert MacSpec.parse("a=int8,b=int8,acc=int12,order=chunk5,acc2=int16").acc2 == parse_format("int16")


def test_tree_text_and_name():
    """``order=tree`` has no acc2: its text and its name carry none (was ``acc2=None``)."""
    s = MacSpec.parse("a=fp8_e4m3,b=fp8_e4m3,acc=e5m4,order=tree")
    assert str(s) == "a=fp8_e4m3,b=fp8_e4m3,acc=e5m4,round=rne,overflow=ieee,order=tree"
    assert MacSpec.parse(str(s)) == s
    assert s.name == "mac_e4m3fn_e4m3fn_acc_e5m4_rne_tree"
    c = MacSpec.parse("a=fp8_e4m3,b=fp8_e4m3,acc=e5m4,order=chunk8")
    assert str(c) == "a=fp8_e4m3,b=fp8_e4m3,acc=e5m4,round=rne,overflow=ieee,order=chunk8,acc2=fp32"
    assert c.name == "mac_e4m3fn_e4m3fn_acc_e5m4_rne_chunk8_e8m23"


# -- property-style round trip over many generated specs ---------------------------------------
ORDERS = ["seq", "tree", "tree1", "tree4", "ilv1", "ilv3", "chunk1", "chunk7", "chunk64", "mta1w1p1", "mta4w8p8", "mta3w6p12", "mta8w14p16",
          "mta16w56p32"]
FLOAT_OPS = ["fp8_e4m3", "fp16", "bf16", "fp4_e2m1", "e3m4fnuz", "e5m10_ftz"]
FLOAT_ACCS = ["fp32", "e5m6", "e6m9_b20", "e4m3fn", "e5m2fnuz_ftz", "e3m2fin"]
INT_OPS = ["int8", "uint4", "int3"]
INT_ACCS = ["int12", "int20", "uint16", "int64"]
ROUNDINGS = ["rne", "rtz", "rup", "rdn", "rna", "rod", "sr"]


def _generated_specs():
    """Every order x int/float accumulator x rounding/fused/overflow/acc2 option, valid ones only."""
    texts = []
    for i, (order, rounding) in enumerate(itertools.product(ORDERS, ROUNDINGS)):
        a, b = FLOAT_OPS[i % len(FLOAT_OPS)], FLOAT_OPS[(i * 5 + 1) % len(FLOAT_OPS)]
        acc = FLOAT_ACCS[i % len(FLOAT_ACCS)]
        fields = [f"a={a}", f"b={b}", f"acc={acc}", f"round={rounding}"]
        if rounding == "sr":
            fields.append(f"srbits={1 + i % 32}")
        if i % 3 == 0:
            fields += [f"prod={FLOAT_OPS[(i + 2) % len(FLOAT_OPS)]}", "fused=no"]
        if i % 4 == 1:
            fields.append("overflow=sat")
        if order not in ("seq", "tree") and not order.startswith(("ilv", "tree")) and i % 2:
            fields.append(f"acc2={['fp16', 'e6m9', 'bf16'][i % 3]}")
        texts.append(",".join(fields + [f"order={order}"]))
    for i, order in enumerate(o for o in ORDERS if not o.startswith("mta")):  # mta needs a float acc
        for j, acc in enumerate(INT_ACCS):
            fields = [f"a={INT_OPS[j % 3]}", f"b={INT_OPS[(i + j) % 3]}", f"acc={acc}", f"order={order}",
                      f"overflow={'sat' if (i + j) % 2 else 'wrap'}"]
            if (i + j) % 3 == 0:
                fields += ["prod=int16", "fused=no"]
            if order.startswith("chunk"):
                fields.append(f"acc2={['int32', 'fp32', 'e8m10'][(i + j) % 3]}")
            texts.append(",".join(fields))
    return texts


GENERATED = _generated_specs()


def test_generated_specs_cover_every_order_and_kind():
    specs = [MacSpec.parse(t) for t in GENERATED]
    assert {s.order.kind for s in specs} == set(ORDER_KINDS)
    assert {(s.order.kind, s.int_acc) for s in specs} >= {(k, False) for k in ORDER_KINDS} | {
        (k, True) for k in ("seq", "tree", "chunk")}
    assert any(not s.fused for s in specs) and any(s.saturate for s in specs) and any(s.sr_bits for s in specs)
    assert len(specs) >= 80


@pytest.mark.parametrize("text", GENERATED)
def test_every_spec_text_round_trips(text):
    s = MacSpec.parse(text)
    again = MacSpec.parse(str(s))
    assert again == s
    assert str(again) == str(s)
    assert MacSpec.parse(str(s).upper().replace("ORDER=", "order=")) == s  # keys/values case-insensitive
    assert s.name.isidentifier()


def test_committed_result_spec_texts_still_parse():
    """Sweep and simulation rows store ``str(MacSpec)``; the committed ones read back unchanged."""
    files = sorted((ROOT / "results").rglob("*.jsonl"))
    assert files
    seen = 0
    for path in files:
        for line in path.read_text().splitlines():
            row = json.loads(line) if line.strip() else {}
            text = row.get("spec") if isinstance(row, dict) else None
            if isinstance(text, str) and "=" in text:  # "fp32" is the float baseline row, not a spec
                text, _, impl = text.partition(" @")  # the report's sim rows: "SPEC @IMPL" for non-default impls
                assert str(MacSpec.parse(text)) == text, (path.name, text)
                if impl:
                    from psum.hw import MacImpl

                    assert str(MacImpl.parse(impl)) == impl, (path.name, impl)
                seen += 1
    assert seen > 0


# -- formats as objects: replace, default operands, no sliced text ------------------------------
def test_float_replace_is_validated_and_keeps_policies():
    fp16 = parse_format("fp16")
    assert fp16.replace(man_bits=4) == parse_format("e5m4")
    assert fp16.replace(exp_bits=6) == parse_format("e6m10")  # the default bias follows: 31
    assert fp16.replace(exp_bits=6).bias == 31
    assert parse_format("e5m4_b20").replace(man_bits=6) == parse_format("e5m6_b20")  # explicit bias kept
    assert parse_format("e5m4_b20").replace(man_bits=6, bias=None) == parse_format("e5m6")
    assert parse_format("fp8_e4m3").replace(man_bits=2) == parse_format("e4m2fn")
    assert parse_format("e4m3fnuz").replace(specials="fn") == parse_format("fp8_e4m3")
    assert parse_format("e5m10_ftz").replace(man_bits=7).subnormals is False
    assert fp16.replace() == fp16
    with pytest.raises(ValueError) as info:
        fp16.replace(man_bits=0)
    assert str(info.value) == "mantissa bits must be an integer between 1 and 52, not 0"
    with pytest.raises(ValueError) as info:
        fp16.replace(exp_bits=12)
    assert str(info.value) == "exponent bits must be an integer between 2 and 11, not 12"
    with pytest.raises(TypeError):
        fp16.replace(width=16)


def test_int_replace_is_validated():
    int8 = parse_format("int8")
    assert int8.replace(bits=4) == parse_format("int4")
    assert int8.replace(signed=False) == parse_format("uint8")
    with pytest.raises(ValueError) as info:
        int8.replace(bits=1)
    assert str(info.value) == "integer width must be an integer between 2 and 64, not 1"


def test_default_operands_declared_once():
    from psum.golden.spec import DEFAULT_OPERANDS, default_operand
    from psum.reports.report import ReportConfig
    from psum.sweeps.sweep import make_spec

    assert DEFAULT_OPERANDS == {"float": parse_format("fp8_e4m3"), "int": parse_format("int8")}
    assert default_operand("e5m6") == parse_format("fp8_e4m3")
    assert default_operand(parse_format("int16")) == parse_format("int8")
    cfg = ReportConfig()
    assert (cfg.float_operand, cfg.int_operand) == ("fp8_e4m3", "int8")
    assert make_spec("e5m6").a == DEFAULT_OPERANDS["float"] and make_spec("int20:sat").b == DEFAULT_OPERANDS["int"]


@pytest.mark.parametrize("entry, parsed", [
    ("e5m?", ("man", {"exp_bits": 5}, None)),
    ("e?m7", ("exp", {"man_bits": 7}, None)),
    ("E4M?:sat", ("man", {"exp_bits": 4}, "sat")),
    ("int?", ("int", {}, "wrap")),
    ("int?:sat", ("int", {}, "sat")),
])
def test_search_entries_read_with_the_format_grammar(entry, parsed):
    from psum.sweeps.sweep import parse_search_entry

    assert parse_search_entry(entry) == parsed


@pytest.mark.parametrize("entry", ["e5m3", "e5m1?", "e?m?", "e5m?fn", "e5m?_ftz", "uint?", "int1?", "fp?", "?"])
def test_search_entries_rejected(entry):
    from psum.sweeps.sweep import parse_search_entry

    with pytest.raises(ValueError) as info:
        parse_search_entry(entry)
    assert str(info.value) == f"search entry must be e<E>m?, e?m<M> or int?[:wrap|:sat], not {entry!r}"


def test_report_reads_formats_not_text():
    """A sweep row names e5m2 "fp8_e5m2" and e5m10 "fp16"; the report's e5 curve still holds them."""
    from psum.reports.report import ReportConfig, _hardware_points, _sweep_entries

    entries = _sweep_entries(ReportConfig(float_exps=(5,), max_man=10, int_widths=(16,)))
    assert entries[:3] == ["e5m1", "e5m2", "e5m3"] and "e5m10" in entries
    assert entries[-2:] == ["int16:wrap", "int16:sat"]
    sweep = [dict(family="float", acc=str(parse_format(t)), acc_bits=parse_format(t).width, accuracy=90.0, spec=t)
             for t in ("e5m1", "e5m2", "e5m3", "e5m4", "e5m10", "e4m2")]
    assert [r["acc"] for r in sweep][:2] == ["e5m1", "fp8_e5m2"]
    minima = [dict(family="float", search="float e5", acc="e5m3", acc_bits=9, accuracy=90.0, spec="x")]
    points = _hardware_points(ReportConfig(), sweep, minima, 91.0)
    assert [(p["acc"], p["is_min"]) for p in points] == [("e5m1", False), ("fp8_e5m2", False), ("e5m3", True),
                                                         ("e5m4", False)]
    minima = [dict(family="float", search="float e5", acc="e5m10", acc_bits=16, accuracy=90.0, spec="x")]
    points = _hardware_points(ReportConfig(), sweep, minima, 91.0)
    assert [(p["acc"], p["is_min"]) for p in points] == [("fp16", True)]  # one point, not a duplicate


@pytest.mark.parametrize("entry", ["e5m?", "e?m7", "int?:wrap", "int?:sat", "e4m?:sat"])
def test_search_entry_text_is_the_inverse(entry):
    from psum.sweeps.sweep import parse_search_entry, search_entry_text

    kind, fixed, overflow = parse_search_entry(entry)
    assert search_entry_text(kind, *fixed.values(), overflow=overflow) == entry


# -- bad input the newcomer's pass found (each one line, exact) --------------------------------
@pytest.mark.parametrize("value, message", [
    (5, "MAC spec must be a MacSpec or key=value text, not int 5"),
    (None, "MAC spec must be a MacSpec or key=value text, not NoneType None"),
    (b"a=fp16,b=fp16,acc=fp16", "MAC spec must be a MacSpec or key=value text, not bytes b'a=fp16,b=fp16,acc=fp16'"),
])
def test_parse_names_the_type_of_a_non_string(value, message):
    with pytest.raises(TypeError) as info:
        MacSpec.parse(value)
    assert str(info.value) == message


def test_parse_of_blank_text_still_says_empty():
    with pytest.raises(ValueError) as info:
        MacSpec.parse("  ")
    assert str(info.value).startswith("empty MAC spec; a MAC spec is comma-separated key=value pairs")


@pytest.mark.parametrize("text, message", [
    ("a=int8,b=int8,acc=int16,round=sr", "round=sr has no effect on acc=int16: an integer accumulator adds exact "
     "integer products and never rounds (only a float acc2 of order=chunk<L> would); leave round unset (rne)"),
    ("a=int8,b=int8,acc=int16,round=sr,srbits=4", "round=sr has no effect on acc=int16: an integer accumulator adds "
     "exact integer products and never rounds (only a float acc2 of order=chunk<L> would); leave round unset (rne)"),
    ("a=int8,b=uint8,acc=int20,prod=int12,fused=no,round=rtz,order=tree4",
     "round=rtz has no effect on acc=int20: an integer accumulator adds exact integer products and never rounds "
     "(only a float acc2 of order=chunk<L> would); leave round unset (rne)"),
    ("a=int8,b=int8,acc=int16,order=chunk4,acc2=int32,round=rdn",
     "round=rdn has no effect on acc=int16: an integer accumulator adds exact integer products and never rounds "
     "(nor does acc2=int32); leave round unset (rne)"),
    ("a=int8,b=int8,acc=q16.4,round=rtz", "round=rtz has no effect on acc=q16.4: the products of int8 and int8 lie "
     "on its grid, so it never rounds (only a float acc2 of order=chunk<L> would); leave round unset (rne)"),
    ("a=q4.4,b=q4.4,acc=q8.8,round=rup", "round=rup has no effect on acc=q8.8: the products of q4.4 and q4.4 lie "
     "on its grid, so it never rounds (only a float acc2 of order=chunk<L> would); leave round unset (rne)"),
    ("a=fp8_e4m3,b=fp8_e4m3,acc=q8.24,round=sr", "round=sr has no effect on acc=q8.24: the products of fp8_e4m3 "
     "and fp8_e4m3 lie on its grid, so it never rounds (only a float acc2 of order=chunk<L> would); leave round "
     "unset (rne)"),  # 2**-9 * 2**-9 = 2**-18: a Kulisch-style register holds every product exactly
])
def test_rounding_of_a_unit_that_never_rounds_is_refused(text, message):
    with pytest.raises(ValueError) as info:
        MacSpec.parse(text)
    assert str(info.value) == message


@pytest.mark.parametrize("text", [
    "a=int8,b=int8,acc=int16",  # the default rne, as str() prints it: round trip
    "a=int8,b=int8,acc=int16,round=rne",
    "a=int8,b=int8,acc=int16,order=chunk4,round=rtz",  # the chunk sums round into the default fp32 acc2
    "a=int8,b=int8,acc=int16,order=chunk4,acc2=e5m6,round=sr,srbits=4",
    "a=q4.4,b=q4.4,acc=q8.4,round=rtz",  # 8 fraction bits of a product onto a 4-bit grid
    "a=fp8_e4m3,b=fp8_e4m3,acc=q8.17,round=rtz",  # 2**-18 products onto a 2**-17 grid
    "a=fp8_e4m3,b=fp8_e4m3,acc=q8.24,round=rtz,order=chunk4",  # the fp32 acc2 rounds
    "a=fp8_e4m3,b=fp8_e4m3,acc=q8.4,round=rtz,order=ilv2",
    "a=int8,b=fp8_e4m3,acc=q8.4,round=rdn",
    "a=mxint8,b=mxint8,acc=int24,round=rtz",  # block scales move the terms off the integer grid
])
def test_rounding_of_a_unit_that_rounds_is_kept(text):
    s = MacSpec.parse(text)
    assert MacSpec.parse(str(s)) == s


def test_add_step_of_an_exact_sum_takes_the_default_mode():
    """add_spec of a tree/ilv node of a fixed-point accumulator: the add is exact, so it takes rne
    (the spec's rtz is for its float products); into a float acc2 the spec's mode stays."""
    from psum.golden.spec import add_spec

    s = MacSpec.parse("a=fp8_e4m3,b=fp8_e4m3,acc=q8.4,round=rtz,order=ilv2")
    assert add_spec(s, s.acc).rounding.value == "rne"
    c = MacSpec.parse("a=int8,b=int8,acc=int16,order=chunk4,acc2=e5m6,round=sr,srbits=4")
    assert str(add_spec(c, c.acc2)) == "a=int16,b=int2,acc=e5m6,round=sr,srbits=4,overflow=ieee"


@pytest.mark.parametrize("overflow", ["wrap", "sat"])
def test_unsigned_accumulator_of_signed_products_is_exact(overflow):
    """acc=uint12 with int8 operands (kept, documented in MacSpec): the exact signed sum, wrapped
    mod 2**12 or clamped to [0, 4095]; every int8 x int8 pair at accumulator values at both ends
    and in the middle, against Python integers and the Fraction reference."""
    import numpy as np

    from psum.golden import mac_step
    from psum.golden.reference import mac_step_ref

    spec = MacSpec.parse(f"a=int8,b=int8,acc=uint12,overflow={overflow}")
    x = np.arange(256, dtype=np.uint64)
    a, b = (c.ravel() for c in np.meshgrid(x, x))
    signed = lambda c: int(c) - 256 if c >= 128 else int(c)  # noqa: E731 - the int8 code's value
    for acc0 in (0, 1, 2048, 4095):
        got = mac_step(spec, np.full(a.shape, acc0, dtype=np.uint64), a, b)
        for i in range(0, a.size, 97):  # a spread sample for the slow reference, every pair for ints
            assert int(got[i]) == mac_step_ref(spec, acc0, int(a[i]), int(b[i]))
        exact = np.array([acc0 + signed(p) * signed(q) for p, q in zip(a, b)])
        want = exact % 4096 if overflow == "wrap" else np.clip(exact, 0, 4095)
        assert np.array_equal(got.astype(np.int64), want)


def test_units_that_differ_in_rounding_have_different_names():
    """An integer chunk unit with a float acc2 rounds its promotions: rtz and rne are two units
    (they shared one name, hence one module and one build folder); one that never rounds names none."""
    a = MacSpec.parse("a=int8,b=int8,acc=int12,order=chunk4,acc2=e5m6")
    assert a.name == "mac_int8_int8_acc_int12_rne_wrap_chunk4_e5m6"
    assert a.replace(rounding="rtz").name == "mac_int8_int8_acc_int12_rtz_wrap_chunk4_e5m6"
    assert MacSpec.parse("a=int8,b=int8,acc=int12,order=chunk4,acc2=int20").name == \
        "mac_int8_int8_acc_int12_wrap_chunk4_int20"
    assert MacSpec.parse("a=int8,b=int8,acc=q16.4").name == "mac_int8_int8_acc_q16_4_rne_wrap"  # unchanged


def test_replace_into_a_unit_that_never_rounds_takes_rne():
    """The sequential step of an int chunk unit with round=sr (what the kernels and hw/chunk.py
    derive): its mode belongs to the acc2 promotions, the step takes rne; an explicit mode is refused."""
    s = MacSpec.parse("a=int8,b=int8,acc=int16,round=sr,srbits=4,order=chunk4")
    assert str(s.replace(order="seq")) == "a=int8,b=int8,acc=int16,round=rne,overflow=wrap"
    assert s.replace(order="chunk8").rounding.value == "sr"
    with pytest.raises(ValueError, match="^round=sr has no effect on acc=int16"):
        s.replace(order="seq", rounding="sr")
