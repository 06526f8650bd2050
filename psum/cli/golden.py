"""CLI subcommands of psum.golden: ``formats``, ``quantize`` and ``step``."""

from __future__ import annotations

import json
import re
from fractions import Fraction

import numpy as np

from psum._util import format_table
from psum.golden._vector import int_values
from psum.golden.blocks import (BLOCK_HELP, dequantize_blocks, is_block_format, parse_block_format,
                                quantize_blocks)
from psum.golden.formats import (E4M3_NOTE, NAMED, FORMAT_HELP, FixedFormat, FloatFormat, IntFormat, Pow2Format,
                                 parse_format)
from psum.golden.mac import mac_step
from psum.golden.rounding import ROUNDING_HELP, Rounding, parse_rounding
from psum.golden.spec import SPEC_HELP, MacSpec
from .options import nonneg_int, number, positive_int, sr_bits, text

__all__ = ["register", "format_rows", "quantize_rows", "block_quantize_rows", "parse_operand", "step_result"]


def format_rows(names=None) -> list[dict]:
    """One dict per format: its parameters, range and precision."""
    rows = []
    for name in names or NAMED:
        f = parse_format(name)
        row = {"name": name, "text": f.tag, "width": f.width}
        if isinstance(f, FloatFormat):
            row.update(exp_bits=f.exp_bits, man_bits=f.man_bits, bias=f.bias, specials=f.specials,
                       subnormals=f.subnormals, max=f.max_value, min_normal=f.min_normal,
                       min_subnormal=f.min_subnormal, epsilon=2.0 ** -f.man_bits,
                       decimal_digits=round(f.precision * np.log10(2), 2))
        elif isinstance(f, Pow2Format):  # e8m0: an unsigned power-of-two scale
            row.update(exp_bits=f.exp_bits, man_bits=0, bias=f.bias, specials="pow2 (nan=all ones)",
                       subnormals=False, max=f.max_value, min_normal=f.min_value, min_subnormal=f.min_value,
                       epsilon=1.0, decimal_digits=0.0)
        elif hasattr(f, "frac_bits"):  # fixed point q<I>.<F>: values, not stored integers
            row.update(int_bits=f.int_bits, frac_bits=f.frac_bits, min=f.min_value, max=f.max_value,
                       resolution=f.resolution)
        else:
            row.update(signed=f.signed, min=f.min_int, max=f.max_int)
        rows.append(row)
    return rows


def quantize_rows(fmt_text: str, values, rounding="rne", *, saturate=None, seed=0, sr_bits=8) -> list[dict]:
    """Round each value to the format; report the code, its fields, the result and the error."""
    fmt = parse_format(fmt_text)
    rounding = parse_rounding(rounding).value  # "SR" as "sr": its seed and bit count used to be dropped
    x = np.asarray(values, dtype=np.float64)
    kwargs = {} if saturate is None else {"saturate": saturate}
    if rounding == "sr":
        kwargs.update(seed=seed, sr_bits=sr_bits)
    codes = fmt.encode(x, rounding, **kwargs)
    got = fmt.decode(codes)
    rows = []
    for v, c, g in zip(x, codes, got):
        c = int(c)
        # integer formats: the exact integer (an int64 result may exceed float64's 53 bits)
        result = int(int_values(fmt, [c])[0]) if isinstance(fmt, IntFormat) else float(g)
        row = {"value": float(v), "code": f"0x{c:0{(fmt.width + 3) // 4}x}", "result": result}
        if isinstance(fmt, FloatFormat):
            s, e, m = fmt.fields(c)
            row["fields"] = f"{s} {e:0{fmt.exp_bits}b} {m:0{fmt.man_bits}b}" if fmt.man_bits else f"{s} {e:0{fmt.exp_bits}b}"
        else:
            row["fields"] = f"{c:0{fmt.width}b}"
        with np.errstate(invalid="ignore"):
            row["error"] = float(g - v) if np.isfinite(g) and np.isfinite(v) else float("nan")
            row["rel_error"] = abs(row["error"] / v) if v != 0 and np.isfinite(row["error"]) else (0.0 if g == v else float("nan"))
        rows.append(row)
    return rows


def block_quantize_rows(fmt_text: str, values, *, tensor_scale: float = 1.0) -> tuple[list[dict], int]:
    """Quantise values into blocks of a block format (:func:`psum.golden.blocks.quantize_blocks`).

    Returns one row per value (block, scale code and value, element code and value, result,
    error) and the number of zeros appended to fill the last block.
    """
    bf = parse_block_format(fmt_text)
    x = np.asarray(values, dtype=np.float64)
    padded = (-len(x)) % bf.block
    sc, el = quantize_blocks(x, bf, tensor_scale=tensor_scale, pad=True)
    got = dequantize_blocks(bf, sc, el, tensor_scale=tensor_scale)
    ev = bf.elem.decode(el.reshape(-1))
    rows = []
    for i, v in enumerate(x):
        j = i // bf.block
        s = int(sc[j])
        sval = float(bf.scale.decode(np.uint64(s)))
        c = int(el.reshape(-1)[i])
        g = float(got[i])
        with np.errstate(invalid="ignore"):
            err = g - v if np.isfinite(g) and np.isfinite(v) else float("nan")
        rows.append({"block": j, "scale": f"0x{s:02x}", "scale_value": sval, "value": float(v),
                     "code": f"0x{c:0{(bf.elem.width + 3) // 4}x}", "element": float(ev[i]), "result": g,
                     "error": err, "rel_error": abs(err / v) if v != 0 and np.isfinite(err) else (0.0 if g == v else float("nan"))})
    return rows, padded


def _print_table(rows: list[dict], cols: list[str]) -> None:
    print(format_table(rows, cols))


def _cmd_formats(args) -> int:
    rows = format_rows(args.names or None)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    floats = [r for r in rows if "exp_bits" in r]
    ints = [r for r in rows if "signed" in r]
    if floats:
        _print_table(floats, ["name", "text", "width", "exp_bits", "man_bits", "bias", "specials",
                              "subnormals", "max", "min_normal", "min_subnormal", "decimal_digits"])
    fixed = [r for r in rows if "frac_bits" in r]
    if ints:
        _print_table(ints, ["name", "width", "signed", "min", "max"])
    if fixed:
        _print_table(fixed, ["name", "text", "width", "int_bits", "frac_bits", "min", "max", "resolution"])
    if not args.names:
        print(f"\nAny other format: {FORMAT_HELP}; ml_dtypes and torch dtype names (float8_e4m3fn, "
              f"torch.bfloat16, ...) too.\nNote: {E4M3_NOTE}.")
    elif any("e4m3" in r["text"] for r in floats):
        print(f"\nNote: {E4M3_NOTE}.")
    return 0


def _cmd_quantize(args) -> int:
    args.round = parse_rounding(args.round).value
    if is_block_format(args.format):
        # The element rounding of a block format is fixed (rne with saturation, below): a --round rtz
        # used to be ignored while the table looked like its answer.
        ignored = [o for o, given in (("--round", args.round != "rne"), ("--saturate", args.saturate),
                                      ("--seed", args.seed is not None), ("--sr-bits", args.sr_bits is not None))
                   if given]
        if ignored:
            raise ValueError(f"{', '.join(ignored)} {'does' if len(ignored) == 1 else 'do'} not apply to block format "
                             f"{args.format}: its elements round rne with saturation")
        rows, padded = block_quantize_rows(args.format, args.values, tensor_scale=args.tensor_scale)
        if args.json:
            print(json.dumps(rows, indent=1))
            return 0
        bf = parse_block_format(args.format)
        print(f"block format {bf}: {bf.block} x {bf.elem} elements sharing one {bf.scale} scale, "
              f"{bf.bits_per_element:g} bits per element; elements rne with saturation"
              + (f"; last block padded with {padded} zeros" if padded else ""))
        _print_table(rows, ["block", "scale", "scale_value", "value", "code", "element", "result", "error", "rel_error"])
        return 0
    if args.tensor_scale != 1.0:
        raise ValueError("--tensor-scale applies only to block formats (nvfp4)")
    if args.round != "sr" and (args.seed is not None or args.sr_bits is not None):
        # Else the deterministic result was printed as if the seed or bit count had been used.
        opt = "--seed" if args.seed is not None else "--sr-bits"
        raise ValueError(f"{opt} applies only to --round sr, not --round {args.round}")
    rows = quantize_rows(args.format, args.values, args.round, saturate=True if args.saturate else None,
                         seed=0 if args.seed is None else args.seed, sr_bits=8 if args.sr_bits is None else args.sr_bits)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(f"format {parse_format(args.format)}, rounding {args.round}")
        _print_table(rows, ["value", "code", "fields", "result", "error", "rel_error"])
    return 0


# A code is an unsigned integer literal with a base prefix: 0x3c00, 0b1011, 0o17 (underscores allowed).
# Why a prefix is required: "2" used to be read as the code 0x0002 (a subnormal in fp16), whereas
# `psum quantize fp16 2` reads it as the value 2; a bare number is now always a value, as there.
_CODE_RE = re.compile(r"\+?(0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+)")
_DECIMAL_RE = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def _exact_value(fmt, code: int) -> Fraction:
    """The exact value of a finite code: stored integer times the lsb (integer and fixed point),
    or the float64 decode (exact: every float format psum accepts fits float64)."""
    if isinstance(fmt, (IntFormat, FixedFormat)):
        return Fraction(int(int_values(fmt, [code])[0])) * Fraction(2) ** getattr(fmt, "lsb_exp", 0)
    return Fraction(float(fmt.decode(np.asarray([code], dtype=np.uint64))[0]))


def parse_operand(text: str, fmt, what: str) -> int:
    """A bit pattern of ``fmt`` from ``text``: a code written with a base prefix (``0x3e00``,
    ``0b1011``, ``0o17``) or a value (``2``, ``1.5``, ``-3``, ``-2e-3``, ``inf``, ``nan``: anything
    else, read as ``psum quantize`` reads it). A bare decimal integer is a value: ``2`` in fp16 is
    2.0 (code ``0x4000``), not the code ``0x0002``.

    A value must be exactly representable: the MAC step is the golden contract on bit patterns,
    so rounding an input silently would hide a second rounding; the error names the nearest code.
    Exactness is decided on the decimal text itself (:class:`fractions.Fraction`), not on its
    float64 rounding, so ``1.0000000000000000001`` is not taken for 1 and the integer values of
    64-bit integer and fixed-point formats stay exact.

    Raises
    ------
    ValueError
        Neither a code nor a number, a code wider than the format, or an inexact value.
    """
    text = text.strip()
    if _CODE_RE.fullmatch(text):
        code = int(text, 0)
        if not 0 <= code < (1 << fmt.width):
            raise ValueError(f"{what}={text} is not a code of {fmt} ({fmt.width} bits: 0 .. {(1 << fmt.width) - 1:#x})")
        return code
    if isinstance(fmt, IntFormat) and re.fullmatch(r"[+-]?[0-9]+", text):  # exact: int64 exceeds float64
        value = int(text)
        if not fmt.min_int <= value <= fmt.max_int:
            raise ValueError(f"{what}={text} is outside {fmt} ({fmt.min_int} .. {fmt.max_int})")
        return value & ((1 << fmt.width) - 1)
    decimal = text.replace("_", "") if _DECIMAL_RE.fullmatch(text.replace("_", "")) else None
    if decimal is not None and isinstance(fmt, FixedFormat):  # exact: q64.0 holds integers float64 rounds
        k = Fraction(decimal) * Fraction(2) ** fmt.frac_bits
        if k.denominator == 1 and fmt.min_int <= k <= fmt.max_int:
            return int(k) & ((1 << fmt.width) - 1)
    try:
        value = float(text) if text.isascii() else None  # float() reads non-ASCII digits too
    except ValueError:
        value = None
    if value is None:
        raise ValueError(f"{what} must be a bit pattern such as 0x3c00 or a value such as 1.5, not {text!r}")
    saturate = {} if isinstance(fmt, FloatFormat) else {"saturate": True}  # "nearest" of 300 in int8 is 127
    code = int(np.asarray(fmt.encode(np.asarray([value]), "rne", **saturate))[0])
    got = float(fmt.decode(np.asarray([code], dtype=np.uint64))[0])
    if np.isnan(value) or np.isinf(value):
        exact = got == value or (np.isnan(got) and np.isnan(value))
    else:  # the typed decimal against the code's exact value (float() may have rounded the text)
        wanted = Fraction(decimal) if decimal is not None else Fraction(value)
        exact = np.isfinite(got) and _exact_value(fmt, code) == wanted
    if not exact:
        raise ValueError(f"{what}={text} is not exactly representable in {fmt} (nearest {got:.9g} = {code:#x})")
    return code


def step_result(spec_text: str, acc: str, a: str, b: str, rand=None) -> dict:
    """One MAC step of :func:`psum.golden.mac.mac_step` on codes or values; what ``psum step`` prints.

    Returns
    -------
    dict
        ``spec``, and ``acc``, ``a``, ``b``, ``result`` each as ``{"code": "0x..", "value": float}``.
    """
    spec = MacSpec.parse(spec_text)
    if spec.blocked:  # the same refusal as mac_step's, before the operands are read as codes
        raise ValueError(f"mac_step takes element operands; block-scaled {spec} runs in psum.golden.block_dot.block_dot")
    if rand is not None and spec.rounding is not Rounding.SR:  # mac_step ignores it: the result would not use it
        raise ValueError(f"--rand applies only to round=sr, not round={spec.rounding.value}")
    codes = {k: parse_operand(t, f, k) for k, t, f in (("acc", acc, spec.acc), ("a", a, spec.a), ("b", b, spec.b))}
    r = None if rand is None else np.asarray([rand])
    out = int(mac_step(spec, np.asarray([codes["acc"]]), np.asarray([codes["a"]]), np.asarray([codes["b"]]), r)[0])
    def dec(fmt, c):  # integer values exactly (int64 exceeds float64's 53 bits)
        if isinstance(fmt, IntFormat):
            return int(int_values(fmt, [c])[0])
        return float(fmt.decode(np.asarray([c], dtype=np.uint64))[0])

    res = {"spec": str(spec)}
    for k, fmt, c in (("acc", spec.acc, codes["acc"]), ("a", spec.a, codes["a"]), ("b", spec.b, codes["b"]),
                      ("result", spec.acc, out)):
        res[k] = {"code": f"{c:#x}", "value": dec(fmt, c)}
    return res


def _value_text(fmt, code: int) -> str:
    """The value of one code as text: exact for integer formats (int64 values exceed float64's
    53 bits), 9 significant digits for float and fixed point."""
    if isinstance(fmt, IntFormat):
        return str(int(int_values(fmt, [code])[0]))
    return f"{float(fmt.decode([code])[0]):.9g}"


def _cmd_step(args) -> int:
    res = step_result(args.spec, args.acc, args.a, args.b, args.rand)
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    f = {k: f"{v['code']} ({v['value'] if isinstance(v['value'], int) else format(v['value'], '.9g')})"
         for k, v in res.items() if k != "spec"}
    print(f"{res['spec']}\n  acc {f['acc']} + a {f['a']} * b {f['b']}\n  -> {f['result']}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("formats", help="list the named number formats with their range and precision",
                       description="List named formats (or the ones given) with parameters, range and precision.")
    p.add_argument("names", nargs="*", metavar="FORMAT", help=f"formats to show: {FORMAT_HELP}")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_formats)

    p = sub.add_parser("quantize", help="round values to a format and show bits and error",
                       description="Round values to a format; show the code, its fields, the result and the error.")
    p.add_argument("format", metavar="FORMAT", help=FORMAT_HELP + "; or " + BLOCK_HELP)
    p.add_argument("values", nargs="+", type=number, metavar="VALUE")
    p.add_argument("--round", type=text, default="rne", metavar="MODE", help=f"rounding mode: {ROUNDING_HELP} (default rne)")
    p.add_argument("--saturate", action="store_true", help="overflow to the largest finite value")
    p.add_argument("--seed", type=nonneg_int, help="seed for --round sr (default 0)")
    p.add_argument("--sr-bits", type=sr_bits, help="random bits for --round sr (default 8)")
    p.add_argument("--tensor-scale", type=float, default=1.0, metavar="G",
                   help="block formats (nvfp4): the per-tensor fp32 scale (default 1)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_quantize)

    p = sub.add_parser("step", help="one MAC cycle on bit patterns or values (the golden contract)",
                       description="Compute acc := round(acc + a*b) for one MAC cycle. ACC, A and B are bit "
                                   "patterns (with a base prefix: 0x3e00, 0b1011, 0o17) or values (2, 1.5, -2e-3, inf; "
                                   "exactly representable in their format; a bare number is a value, as in psum "
                                   "quantize). " + SPEC_HELP)
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("acc", metavar="ACC")
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    p.add_argument("--rand", type=nonneg_int, help="random bits for round=sr")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_step)
