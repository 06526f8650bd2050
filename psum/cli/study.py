"""``psum study deepseek|accumulation-theory|a2q|mx``: psum against published results (issue 16; mx: issue 15).

Each subcommand parses, calls its API in :mod:`psum.studies` and prints the headline table; the
study writes its section (``<name>.md``), data (JSON, CSV) and plots (PNG, SVG) into
``./study-<name>/`` (or ``$PSUM_RESULTS_DIR``, or ``--out-dir``), which ``psum report`` links.
"""

from __future__ import annotations

import argparse
import json

from psum._util import format_table
from psum.studies.common import BOUNDS, SOURCES, TRUNCS

from .options import nonneg_float, nonneg_int, number, positive_int

__all__ = ["register"]

_MODELS_HELP = "lenet5 (default), alexnet, resnet18, resnet18-imagenet, vit, or FILE.py:FUNCTION (your code)"


# -- parse-time validators (argparse ``type=``), in psum.cli.options' message shape -----------------
# Why here and not in the study APIs alone: a bad value must fail while the command line is parsed,
# as ``psum CMD: error: argument --k: must be ...`` like every other subcommand, before a model is
# loaded. The APIs keep their own checks for Python callers; the bounds come from one table
# (psum.studies.common.BOUNDS).
def _int_between(name: str):
    """An integer within ``BOUNDS[name]`` (``--size``, ``--lanes``)."""
    lo, hi = BOUNDS[name]

    def parse(value: str) -> int:
        try:
            n = int(value, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, not {value!r}") from None
        if not lo <= n <= hi:
            raise argparse.ArgumentTypeError(f"must be an integer between {lo} and {hi}, not {value}")
        return n

    return parse


def _int_list(name: str | None, *, none_ok: bool = False):
    """``"256,512"`` -> ``[256, 512]``, each within ``BOUNDS[name]`` (or >= 1 when ``name`` is None);
    ``none`` is an item where ``none_ok`` (a promotion only at the end)."""
    lo, hi = BOUNDS[name] if name else (1, None)
    want = (f"comma-separated integers between {lo} and {hi}" if hi is not None
            else f"comma-separated integers >= {lo}") + (" or none" if none_ok else "")

    def parse(value: str) -> list:
        out = []
        for item in value.split(","):
            item = item.strip().lower()
            if none_ok and item == "none":
                out.append(None)
            elif item.isascii() and item.isdigit() and lo <= int(item) and (hi is None or int(item) <= hi):
                out.append(int(item))
            else:
                raise argparse.ArgumentTypeError(f"must be {want}, not {value!r}")
        return out

    return parse


def _words(allowed: tuple):
    """A comma-separated subset of ``allowed`` (``--trunc zero,floor``)."""
    def parse(value: str) -> list:
        items = [t.strip().lower() for t in value.split(",") if t.strip()]
        if not items or any(t not in allowed for t in items):
            raise argparse.ArgumentTypeError(f"must list {' and/or '.join(allowed)}, not {value!r}")
        return items

    return parse


def _block_formats(value: str) -> tuple:
    """``--operands``: block-format names, comma-separated, or ``all`` (checked while parsing)."""
    from psum.reports.mx import check_mx_operands

    try:
        return check_mx_operands(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _above_one(value: str) -> float:
    """A finite number > 1 (``--cutoff``: the VRR criterion ``exp(n (1 - VRR)) <= cutoff``)."""
    x = number(value)
    if not (x > 1 and x != float("inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number greater than 1, not {value}")
    return x


def _data_options(args) -> dict:
    from .nets import check_data_args

    check_data_args(args)  # --data-dir with digits or FILE.py:FUNCTION data was ignored
    if getattr(args, "no_search", False):  # the search's own options would be ignored
        given = [o for o, v in (("--tol", args.tol), ("--limit", args.limit)) if v is not None]
        if given:
            raise ValueError(f"{', '.join(given)} {'sets' if len(given) == 1 else 'set'} the accuracy search, which "
                             f"--no-search skips")
    return dict(trust=args.trust_checkpoint)


def _tol(args) -> float:
    """``--tol``, default 1 point (None in the parser, so that --no-search can refuse a given one)."""
    return 1.0 if args.tol is None else args.tol


def _cmd_deepseek(args) -> int:
    from psum.studies.deepseek import run_deepseek

    res = run_deepseek(args.out_dir, ks=args.k, widths=args.w, promotions=args.promotion, truncs=args.trunc,
                       sources=args.source, size=args.size,
                       lanes=args.lanes, seed=args.seed, model=args.model, dataset=args.dataset, layer=args.layer,
                       checkpoint=args.checkpoint, data_dir=args.data_dir, progress_enabled=args.progress or None,
                       data_options=_data_options(args))
    if args.json:
        print(json.dumps(res["headline"], indent=1, default=str))
        return 0
    rows = [dict(r, max_rel=100 * r["max_rel"], fro_rel=100 * r["fro_rel"]) for r in res["headline"]["rows"]]
    if rows:
        print("FP8 GEMM at K=4096, W=14 (DeepSeek-V3: ~2 % without promotion, fixed by P=128):")
        print(format_table(rows, ["source", "trunc", "P", "max_rel", "fro_rel"], floats="{:.4g}"))
        for source, v in res["headline"]["verdict"].items():
            if "closest" in v:
                print(f"{source}: closest to ~2 %: trunc={v['closest']} ({100 * v[v['closest']]['max_rel']:.2f} %)")
    print(f"{len(res['rows'])} settings; section: {res['paths']['markdown']}")
    return 0


def _cmd_accumulation(args) -> int:
    from psum.studies.accumulation import run_accumulation_theory

    res = run_accumulation_theory(args.model, args.dataset, out_dir=args.out_dir, checkpoint=args.checkpoint,
                                  data_dir=args.data_dir, layer=args.layer, chunk=args.chunk, cutoff=args.cutoff,
                                  search=not args.no_search, tol=_tol(args), limit=args.limit,
                                  progress_enabled=args.progress or None, data_options=_data_options(args))
    if args.json:
        print(json.dumps(res["rows"], indent=1))
        return 0
    print(f"minimum accumulator mantissa (e8m?), predicted by the VRR (Sakr et al. 2019) and measured "
          f"(chunk = {args.chunk}):")
    print(format_table(res["rows"], ["layer", "K", "pred_seq", "meas_vrr_seq", "min_seq", "pred_chunk", "min_chunk"],
                       missing="-"))
    print(f"section: {res['paths']['markdown']}")
    return 0


def _cmd_a2q(args) -> int:
    from psum.studies.a2q import run_a2q

    res = run_a2q(args.model, args.dataset, out_dir=args.out_dir, checkpoint=args.checkpoint, data_dir=args.data_dir,
                  layer=args.layer, n_images=args.n_images, search=not args.no_search, tol=_tol(args), limit=args.limit,
                  progress_enabled=args.progress or None, data_options=_data_options(args))
    if args.json:
        print(json.dumps(res["rows"], indent=1))
        return 0
    print("signed integer accumulator bits per layer (int8 x int8): A2Q bound (Colbert et al. 2023) vs measured:")
    print(format_table(res["rows"], ["layer", "K", "p_dtype", "p_a2q", "p_data", "min_wrap", "min_sat", "max_ratio"],
                       floats="{:.3g}", missing="-"))
    print(f"section: {res['paths']['markdown']}")
    return 0


def _cmd_mx(args) -> int:
    from psum.reports.mx import mx_study  # issue 15: minimum accumulator per MX operand format

    # mx_study takes none of these: each was accepted and silently ignored (a --checkpoint was not
    # loaded, --no-search still searched for minutes).
    given = [opt for opt, v in (("--checkpoint", args.checkpoint), ("--trust-checkpoint", args.trust_checkpoint),
                                ("--data-dir", args.data_dir), ("--layer", args.layer), ("--no-search", args.no_search))
             if v]
    if given:
        raise ValueError(f"psum study mx does not take {', '.join(given)} (it searches every layer of the model's "
                         f"psum checkpoint, or of FILE.py:FUNCTION's own weights)")
    rows = mx_study(args.model, args.dataset, operands=args.operands, kinds=args.kinds, limit=args.limit,
                    tol=_tol(args), out_dir=args.out_dir or "study-mx")
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(format_table([{k: r[k] for k in ("model", "operands", "acc_kind", "min_acc", "accuracy",
                                            "reference_accuracy", "baseline_accuracy")} for r in rows],
                       floats="{:.1f}", missing="-"))
    return 0


def register(sub) -> None:
    """Add ``study`` with its four subcommands to the ``psum`` subcommands."""
    p = sub.add_parser("study", help="psum against published results: deepseek, accumulation-theory, a2q, mx",
                       description="Reproduce or test a published result with psum's bit-exact machinery; each "
                                   "study writes a report section, JSON/CSV and PNG/SVG plots under ./study-<name>/ "
                                   "(psum report links them). Comparison with the papers: docs/studies.md.")
    studies = p.add_subparsers(dest="study", metavar="STUDY", required=True)

    def common(q, *, search=True):
        q.add_argument("--model", default="lenet5", help=f"network: {_MODELS_HELP}")
        q.add_argument("--dataset", default="digits", metavar="DATASET", help="digits (built in, default), cifar10, "
                       "cifar100, imagenet, imagefolder or FILE.py:FUNCTION")
        q.add_argument("--checkpoint", metavar="FILE", help="weights (default: the model's psum checkpoint)")
        q.add_argument("--trust-checkpoint", action="store_true", help="allow a whole pickled model (runs its code)")
        q.add_argument("--data-dir", metavar="DIR", help="folder with CIFAR/ImageNet/imagefolder files")
        q.add_argument("--layer", help="layer selection: a name, a module, a pattern or a|b (default every layer)")
        if search:
            q.add_argument("--tol", type=nonneg_float, help="accuracy tolerance of the search, points (default 1)")
            q.add_argument("--limit", type=positive_int, help="first N test images in the search")
            q.add_argument("--no-search", action="store_true", help="skip the accuracy search (seconds instead of minutes)")
        q.add_argument("--out-dir", metavar="DIR", help="output folder (default ./study-<name>)")
        q.add_argument("--progress", action="store_true", help="show progress bars")
        q.add_argument("--json", action="store_true", help="print JSON")

    q = studies.add_parser("deepseek", help="DeepSeek-V3's 14-bit FP8 accumulation: error vs K, W, promotion",
                           description="Error of FP8 GEMM under order=mta<N>w<W>p<P>[floor] against K, W, promotion "
                                       "interval and truncation (toward zero / two's complement), on random and real "
                                       "layer fp8 operands; resumes from study-deepseek/rows.jsonl.")
    common(q, search=False)
    # argparse applies type= to a string default too, so the defaults are validated like typed values.
    q.add_argument("--k", type=_int_list("K"), default="256,512,1024,2048,4096,8192,16384",
                   help="dot-product lengths K (default 256,...,16384)")
    q.add_argument("--w", type=_int_list("W"), default="12,13,14,16,20,24", help="bits W kept after alignment")
    q.add_argument("--promotion", type=_int_list(None, none_ok=True), default="none,32,128,512",
                   help="promotion intervals P, multiples of --lanes (none: only at the end)")
    q.add_argument("--trunc", type=_words(TRUNCS), default="zero,floor", help="truncations: zero and/or floor")
    q.add_argument("--source", type=_words(SOURCES), default="random,layer", help="operands: random and/or layer")
    q.add_argument("--size", type=_int_between("size"), default=16, help="rows of A and columns of B (default 16)")
    q.add_argument("--lanes", type=_int_between("lanes"), default=32, help="N, products per adder (default 32)")
    q.add_argument("--seed", type=nonneg_int, default=0)
    q.set_defaults(func=_cmd_deepseek)

    q = studies.add_parser("accumulation-theory", help="Sakr et al. 2019: VRR-predicted vs measured minimum mantissa",
                           description="Per layer, the minimum accumulator mantissa predicted by the variance "
                                       "retention ratio (sequential and chunked) next to psum's measured minimum, and "
                                       "minimum bits against K on sliced real layers.")
    common(q)
    q.add_argument("--chunk", type=positive_int, default=16, help="chunk length L of the chunked order (default 16)")
    q.add_argument("--cutoff", type=_above_one, default=50.0, help="criterion: exp(n (1 - VRR)) <= cutoff (default 50)")
    q.set_defaults(func=_cmd_accumulation)

    q = studies.add_parser("a2q", help="A2Q (Colbert et al. 2023): l1-norm accumulator bound vs measured",
                           description="Per layer, the data-free A2Q integer accumulator width from the trained "
                                       "weights' l1 norm and int8 inputs, next to psum's measured minimum (wrap, sat) "
                                       "and the real partial sums' distance to the bound.")
    common(q)
    q.add_argument("--n-images", type=positive_int, default=32, help="inputs whose partial sums are recorded (default 32)")
    q.set_defaults(func=_cmd_a2q)

    q = studies.add_parser("mx", help="OCP MX / NVFP4 operands: minimum float and fixed-point accumulator per format",
                           description="Per block-scaled operand format, the smallest e8m<M> and saturating q32.<F> "
                                       "accumulator within --tol of the same operands with an fp32 accumulator "
                                       "(docs/mx.md); rows appended to <out-dir>/<model>.jsonl as each search ends.")
    common(q)
    q.add_argument("--operands", type=_block_formats, default="all",
                   help="block formats, comma-separated, or all (default)")
    q.add_argument("--kinds", type=_words(("float", "fixed")), default=["float", "fixed"],
                   help="accumulator kinds: float and/or fixed (default both)")
    q.set_defaults(func=_cmd_mx)
