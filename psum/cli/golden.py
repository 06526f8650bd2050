"""CLI subcommands of psum.golden: ``formats``, ``quantize`` and ``step``."""

from __future__ import annotations

import json

import numpy as np

from psum._util import format_table
from psum.golden._vector import int_values
from psum.golden.formats import NAMED, FORMAT_HELP, FloatFormat, IntFormat, parse_format
from psum.golden.mac import mac_step
from psum.golden.rounding import ROUNDING_HELP
from psum.golden.spec import SPEC_HELP, MacSpec
from .options import nonneg_int, positive_int, text

__all__ = ["register", "format_rows", "quantize_rows"]


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
            row["fields"] = f"{c:0{fmt.bits}b}"
        with np.errstate(invalid="ignore"):
            row["error"] = float(g - v) if np.isfinite(g) and np.isfinite(v) else float("nan")
            row["rel_error"] = abs(row["error"] / v) if v != 0 and np.isfinite(row["error"]) else (0.0 if g == v else float("nan"))
        rows.append(row)
    return rows


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
        print(f"\nAny other format: {FORMAT_HELP}.")
    return 0


def _cmd_quantize(args) -> int:
    rows = quantize_rows(args.format, args.values, args.round, saturate=True if args.saturate else None,
                         seed=args.seed, sr_bits=args.sr_bits)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(f"format {parse_format(args.format)}, rounding {args.round}")
        _print_table(rows, ["value", "code", "fields", "result", "error", "rel_error"])
    return 0


def _parse_code(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise ValueError(f"bit pattern must be an integer such as 0x3c00 or 15360, not {text!r}") from None


def _value_text(fmt, code: int) -> str:
    """The value of one code as text: exact for integer formats (int64 values exceed float64's
    53 bits), 9 significant digits for float and fixed point."""
    if isinstance(fmt, IntFormat):
        return str(int(int_values(fmt, [code])[0]))
    return f"{float(fmt.decode([code])[0]):.9g}"


def _cmd_step(args) -> int:
    spec = MacSpec.parse(args.spec)
    acc, a, b = (_parse_code(t) for t in (args.acc, args.a, args.b))
    rand = None if args.rand is None else np.asarray([args.rand])
    for fmt, code, name in ((spec.acc, acc, "ACC"), (spec.a, a, "A"), (spec.b, b, "B")):
        if not 0 <= code < 1 << fmt.width:  # wider, negative or huge: never masked silently
            raise ValueError(f"{name} must be a code of {fmt}, between 0 and {(1 << fmt.width) - 1:#x}, "
                             f"not {code:#x}" if code >= 0 else f"{name} must be a code of {fmt}, "
                             f"between 0 and {(1 << fmt.width) - 1:#x}, not {code}")
    out = int(mac_step(spec, [acc], [a], [b], rand)[0])
    print(f"{spec}\n  acc {acc:#x} ({_value_text(spec.acc, acc)}) + a {a:#x} ({_value_text(spec.a, a)}) "
          f"* b {b:#x} ({_value_text(spec.b, b)})\n  -> {out:#x} ({_value_text(spec.acc, out)})")
    return 0


def register(sub) -> None:
    p = sub.add_parser("formats", help="list the named number formats with their range and precision",
                       description="List named formats (or the ones given) with parameters, range and precision.")
    p.add_argument("names", nargs="*", metavar="FORMAT", help=f"formats to show: {FORMAT_HELP}")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_formats)

    p = sub.add_parser("quantize", help="round values to a format and show bits and error",
                       description="Round values to a format; show the code, its fields, the result and the error.")
    p.add_argument("format", metavar="FORMAT", help=FORMAT_HELP)
    p.add_argument("values", nargs="+", type=float, metavar="VALUE")
    p.add_argument("--round", type=text, default="rne", metavar="MODE", help=f"rounding mode: {ROUNDING_HELP} (default rne)")
    p.add_argument("--saturate", action="store_true", help="overflow to the largest finite value")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed for --round sr (default 0)")
    p.add_argument("--sr-bits", type=positive_int, default=8, help="random bits for --round sr (default 8)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_quantize)

    p = sub.add_parser("step", help="one MAC cycle on bit patterns (the golden contract)",
                       description="Compute acc := round(acc + a*b) for one MAC cycle. " + SPEC_HELP)
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("acc", metavar="ACC")
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    p.add_argument("--rand", type=nonneg_int, help="random bits for round=sr")
    p.set_defaults(func=_cmd_step)
