"""CLI subcommands of the network side: ``train``, ``eval`` and ``sweep``.

torch and the emulation are imported inside the command functions, so ``psum --help`` stays fast.
"""

from __future__ import annotations

import json

from psum._util import format_table
from .options import nonneg_float, nonneg_int, positive_float, positive_int, text

__all__ = ["register"]

# Model names are checked by the API (one message for every command); the help lists them.
_MODELS_HELP = ("lenet5, alexnet, resnet18, resnet18-imagenet, vit, or FILE.py:FUNCTION / package.module:FUNCTION "
                "(your code, run as given: it returns an nn.Module)")
_DATASET_HELP = ("digits (built in, default), cifar10, cifar100, imagenet, imagefolder (--data-dir DIR/<class>/*.png), "
                 "or FILE.py:FUNCTION (your code: FUNC(split) returns a Dataset or DataLoader)")
_CKPT_HELP = ("weights: a psum checkpoint (default for built-in models: ./checkpoints/<model>-<dataset>.pt, else the "
              "shipped one), a plain state_dict, a torch.export archive, or a whole saved model (with "
              "--trust-checkpoint)")


def _data_options(args) -> dict:
    """The :func:`psum.sweeps.sweep.workload` options of the common data arguments."""
    check_data_args(args)
    return dict(trust=args.trust_checkpoint, image_size=args.image_size, normalize=args.normalize)


def check_data_args(args) -> None:
    """Refuse data options that the chosen ``--dataset`` does not read, before any work.

    Why: each was silently ignored; ``psum eval --model lenet5 --data-dir mydata/`` (no
    ``--dataset``) evaluated the built-in digits and printed their accuracy.

    Raises
    ------
    ValueError
        ``--data-dir applies to ...``, ``--image-size applies to --dataset imagefolder ...``.
    """
    from psum.nets.user import is_user_ref

    ds = getattr(args, "dataset", None)
    if not isinstance(ds, str):
        return
    if getattr(args, "data_dir", None) is not None and (ds == "digits" or is_user_ref(ds)):
        why = "built in" if ds == "digits" else "your function loads its own data"
        raise ValueError(f"--data-dir applies to cifar10, cifar100, imagenet and imagefolder, not --dataset {ds} ({why})")
    for opt, given in (("--image-size", getattr(args, "image_size", None) is not None),
                       ("--normalize", getattr(args, "normalize", "none") != "none")):
        if given and ds != "imagefolder":
            raise ValueError(f"{opt} applies to --dataset imagefolder, not {ds}")


def _checkpoint(args, *, train: bool = False):
    """``--checkpoint``, or with ``--width W`` the width-W checkpoint of the built-in model
    (:func:`psum.nets.train.width_checkpoint`; trained first when ``train``)."""
    if getattr(args, "width", None) is None:
        return args.checkpoint
    if args.checkpoint is not None:
        raise ValueError("give --width or --checkpoint, not both (a psum checkpoint records its width)")
    from psum.nets.train import width_checkpoint

    return str(width_checkpoint(args.model, args.dataset, args.width, train_if_missing=train,
                                data_dir=args.data_dir, device=args.device,
                                progress_enabled=True if args.progress else None))


def _table(rows: list[dict], cols: list[str]) -> str:
    return format_table(rows, cols, floats="{:.2f}", missing="-")


def _early_stop(value: str) -> str:
    """``--early-stop`` checked while parsing (:func:`psum.sweeps.earlystop.parse_early_stop`)."""
    import argparse

    from psum.sweeps.earlystop import EARLY_STOP_HELP, parse_early_stop

    try:
        parse_early_stop(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {EARLY_STOP_HELP}, not {value!r}") from None
    return value


def _cmd_train(args) -> int:
    from psum.nets.train import train

    check_data_args(args)
    ckpt = train(args.model, args.dataset, epochs=args.epochs, seed=args.seed, data_dir=args.data_dir, out=args.out,
                 width=args.width, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
                 limit=args.limit, autocast=not args.no_autocast, device=args.device,
                 progress_enabled=True if args.progress else None, storage=args.storage)
    meta = {k: v for k, v in ckpt.items() if k != "state_dict"}
    if args.json:
        print(json.dumps(meta, indent=1))
    else:
        extra = f", top-5 {meta['top5']:.2f} %" if meta.get("top5") is not None else ""
        print(f"{meta['model']} (width {meta['width']:g}) on {meta['dataset']}: test top-1 {meta['accuracy']:.2f} %"
              f"{extra} on {meta['n_test']} images (fp32 eval) after {meta['epochs']} epochs in "
              f"{meta['train_seconds']:.1f} s (bf16 autocast: {meta['autocast']}, seed {meta['seed']})")
        print(f"checkpoint: {meta['path']}")
    return 0


def _cmd_eval(args) -> int:
    from psum.sweeps.sweep import evaluate_spec

    check_data_args(args)
    row = evaluate_spec(args.model, args.dataset, args.spec, layer=args.layer, spec_file=args.spec_file,
                        checkpoint=_checkpoint(args), data_dir=args.data_dir, limit=args.limit, device=args.device,
                        progress_enabled=True if args.progress else None, batch_size=args.batch_size,
                        data_options=_data_options(args), strict=args.strict)
    if args.json:
        from psum.keys import unify_keys

        print(json.dumps(unify_keys(row), indent=1))  # "accuracy", as every other psum output
    else:
        top5 = f", top-5 {row['top5']:.2f} %" if "top5" in row else ""
        print(f"{row['model']}/{row['dataset']} [{row['spec']}{'' if args.layer == 'all' else ' @' + args.layer}]: "
              f"top-1 {row['top1']:.2f} %{top5} on {row['n_images']} test images")
        if "coverage" in row:  # never silently wrong: which MAC-bearing ops ran emulated, which in float
            print(row["coverage"])
    return 0


_SWEEP_DEFAULT = ("fp32,fp16,bf16,e5m6,e5m4,e5m3,e5m2,e4m3,e4m2,e3m3,"
                  "int24,int20,int18,int16,int18:sat,int16:sat")


def _cmd_sweep(args) -> int:
    from psum.sweeps.sweep import SEARCH_DEFAULT, run_search, run_sweep, search_label

    prog = True if args.progress else None
    check_data_args(args)
    if args.plot:
        _plot_path(args.plot)  # before any work
    common = dict(a=args.a, b=args.b, rounding=args.round, extra=args.extra, limit=args.limit, out=args.out,
                  data_dir=args.data_dir, checkpoint=_checkpoint(args, train=args.train), batch_size=args.batch_size,
                  device=args.device,
                  progress_enabled=prog, train_if_missing=args.train, overflow=args.overflow,
                  groups=args.layer or (), data_options=_data_options(args))
    if args.ray is not None:
        common["ray"] = args.ray
    if args.no_reuse:
        common["reuse"] = False
    # Options of the other mode are refused, not ignored: 'sweep --acc int16 --tol 5' printed rows as if
    # a tolerance had been applied, and 'sweep --search --plot p.png' wrote no plot.
    for opt, given in (("--early-stop", args.early_stop is not None), ("--tol", args.tol is not None),
                       ("--relative-to", args.relative_to is not None)):
        if given and not args.search:
            raise ValueError(f"{opt} applies to --search (a sweep row has no pass mark)")
    if args.search and args.plot:
        raise ValueError("--plot draws sweep rows; --search has no plot (sweep the formats with --acc LIST --plot)")
    if args.search and args.layers_only:
        raise ValueError("--layers-only applies to a sweep; --search always finds the network-wide minimum too")
    if args.layers_only and not (args.per_layer or args.layer):
        raise ValueError("--layers-only needs --per-layer or --layer (it skips the network-wide rows)")
    tol = 1.0 if args.tol is None else args.tol
    relative_to = args.relative_to or "fp32"
    if args.search:
        results = run_search(args.model, args.dataset, args.acc or SEARCH_DEFAULT, per_layer=args.per_layer,
                             tol=tol, relative_to=relative_to, early_stop=args.early_stop or "exact",
                             **common)
        if args.json:
            print(json.dumps([{k: v for k, v in r.items() if k != "rows"} for r in results], indent=1))
            return 0
        base = results[0]["baseline_accuracy"] if results else None
        rel = "the fp32 baseline" if relative_to == "fp32" else "the same operands with an fp32/int32 accumulator"
        print(f"{results[0]['model']}/{results[0]['dataset']}: fp32 baseline {base:.2f} % on "
              f"{results[0]['n_images']} test images; "
              f"tolerance {tol:g} percentage points below {rel}")
        # a candidate stopped early shows its upper bound as "<=x" (never as a measured accuracy)
        table = [{"search": search_label(r), "layer": r["layer"], "min": r["acc"] or "none", "accuracy": r["accuracy"],
                  "reference": r["reference_accuracy"],
                  "tried (value:acc%)": " ".join(f"{v}:{'<=' if v in r['stopped'] else ''}{a:.1f}"
                                                 for v, a in sorted({**r["evaluated"], **r["stopped"]}.items()))}
                 for r in results]
        print(_table(table, ["search", "layer", "min", "accuracy", "reference", "tried (value:acc%)"]))
        stopped = sum(len(r.get("early_stopped", ())) for r in results)
        if stopped:
            print(f"{stopped} candidates stopped early ({results[0]['early_stop']} rule: they cannot pass); "
                  f"'<=x' is the most their full accuracy could be")
        return 0
    rows = run_sweep(args.model, args.dataset, args.acc or _SWEEP_DEFAULT, per_layer=args.per_layer,
                     network=not args.layers_only, **common)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    base = rows[0]
    print(f"{base['model']}/{base['dataset']}: fp32 baseline {base['accuracy']:.2f} % on {base['n_images']} test images")
    cols = ["spec", "layer", "accuracy", "seconds"] + (["top5"] if "top5" in base else [])
    print(_table(rows[1:], cols))
    if args.out:
        print(f"results: {args.out}")
    if args.plot:
        from psum.reports.plots import plot_sweep

        written = plot_sweep(rows, args.plot, title=f"{base['model']}/{base['dataset']}: {_operand_text(rows)}")
        print(f"plot: {', '.join(written)}")
    return 0


def _plot_path(path):
    from pathlib import Path

    path = Path(path)
    if path.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise ValueError(f"--plot needs a .png, .svg or .pdf file name (the other two are written beside it), "
                         f"not {str(path)!r}")
    return path


def _operand_text(rows) -> str:
    """``"operands fp8_e4m3 x fp8_e4m3 (float), int8 x int8 (int)"``: what a sweep plot's title must say."""
    from psum.golden import MacSpec

    pairs = {}
    for r in rows[1:]:
        try:
            s = MacSpec.parse(r["spec"])
        except ValueError:
            continue
        pairs.setdefault(f"{s.a} x {s.b}", "int" if s.int_acc else "float")
    return "operands " + ", ".join(f"{k} ({v} acc.)" for k, v in pairs.items()) if pairs else "accumulator sweep"


def register(sub) -> None:
    from psum.golden import FORMAT_HELP, SPEC_HELP  # light: no torch
    from psum.nets.data import DATASETS  # light: no torch
    from psum.sweeps.sweep import SEARCH_DEFAULT  # light: torch is imported inside the functions

    def common(p, *, data=True, user=True):
        if user:
            p.add_argument("--model", type=text, help=f"network: {_MODELS_HELP}; may be omitted when --checkpoint holds a "
                                           "whole model")
            p.add_argument("--dataset", default="digits", type=text, metavar="DATASET", help=_DATASET_HELP)
            p.add_argument("--checkpoint", type=text, metavar="FILE", help=_CKPT_HELP)
            p.add_argument("--width", type=positive_float,
                           help="built-in models: the checkpoint trained at this channel multiplier "
                                "(./checkpoints/<model>-w<W>-<dataset>.pt, e.g. resnet18-w1-digits.pt; "
                                "default: the model's default width)")
            p.add_argument("--trust-checkpoint", action="store_true",
                           help="allow a checkpoint that needs full unpickling (a whole saved model): it runs code "
                                "named by the file; only for files you trust")
            p.add_argument("--image-size", type=positive_int, metavar="N",
                           help="imagefolder: resize the shorter side to N*256/224 and centre-crop NxN "
                                "(default: the images' own size)")
            p.add_argument("--normalize", choices=("none", "imagenet"), default="none",
                           help="imagefolder: pixels in [0, 1] (none, default) or ImageNet mean/std")
        else:
            # train takes built-in models and data only (the API refuses FILE.py:FUNCTION): its help
            # used to offer FILE.py:FUNCTION and imagefolder.
            p.add_argument("--model", required=True, type=text,
                           help="network: lenet5, alexnet, resnet18, resnet18-imagenet or vit (built-in models only; "
                                "train your own with your own script and give eval/sweep/report its weights with "
                                "--checkpoint)")
            p.add_argument("--dataset", default="digits", choices=DATASETS, help="dataset (default digits, built in)")
        if data:
            p.add_argument("--data-dir", type=text, metavar="DIR",
                           help=("folder with CIFAR/ImageNet/imagefolder files" if user else "folder with CIFAR/ImageNet "
                                 "files") + " (never downloaded)")
        p.add_argument("--device", type=text, help="cpu, cuda, cuda:N or auto (default auto: cuda when present)")
        p.add_argument("--progress", action="store_true", help="show progress bars even when stderr is not a TTY")
        p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("train", help="train a model in bfloat16 autocast and write its checkpoint",
                       description="Train a model (forward pass in bfloat16 autocast), evaluate it in float32 and "
                                   "write ./checkpoints/<model>-<dataset>.pt atomically (or $PSUM_CHECKPOINT_DIR).")
    common(p, user=False)
    p.add_argument("--epochs", type=positive_int, help="epochs (default: 15 on digits (4 for resnet18), 30 on cifar10)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed for init, shuffling, augmentation (default 0)")
    p.add_argument("--width", type=positive_float, help="channel multiplier (default 1; 0.125 for alexnet and resnet18 on digits)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="default 64")
    p.add_argument("--lr", type=positive_float, help="learning rate (default adam 3e-3 lenet5, 1e-4 alexnet at width >= 0.5, 1e-3 others; sgd 0.05; cosine schedule)")
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam", help="default adam")
    p.add_argument("--limit", type=positive_int, help="train on the first N training images only")
    p.add_argument("--no-autocast", action="store_true", help="train in plain float32")
    p.add_argument("--storage", choices=("float32", "bfloat16"), default="float32",
                   help="dtype of the stored weights (default float32; bfloat16 halves the file, and the "
                        "recorded accuracy is that of the rounded weights)")
    p.add_argument("--out", type=text, metavar="FILE",
                   help="checkpoint path (default ./checkpoints/<model>-<dataset>.pt; a non-default --width is "
                        "in the name: <model>-w<W>-<dataset>.pt)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("eval", help="test accuracy of a checkpoint, float32 or emulated with a MAC spec",
                       description="Evaluate a model on the test split; with --spec every Conv2d/Linear "
                                   "(or the --layer group) computes bit-exactly with that MAC spec; --spec-file gives "
                                   "per-layer specs. FILE.py:FUNCTION for --model/--dataset is your code, run as "
                                   "given. " + SPEC_HELP)
    common(p)
    p.add_argument("--spec", type=text, metavar="SPEC", help="MAC spec to emulate (default: none, float32)")
    p.add_argument("--spec-file", type=text, metavar="FILE",
                   help='per-layer specs: a JSON object {"PATTERN": "SPEC", ...}, first match wins '
                        '(patterns as --layer); unnamed layers stay float32 and are listed')
    p.add_argument("--layer", default="all", type=text, metavar="PATTERN",
                   help="emulate only these layers: a name, a module holding layers (layer3), a pattern "
                        "('layer3.*'), or several joined by | (default all)")
    p.add_argument("--limit", type=positive_int, help="first N test images only")
    p.add_argument("--batch-size", type=positive_int, default=256, help="images per batch (default 256)")
    p.add_argument("--no-strict", dest="strict", action="store_false",
                   help="report an accuracy even when a MAC-bearing op psum cannot emulate ran in float32 "
                        "(by default that is an error; the coverage line lists such ops)")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("sweep", help="accuracy per accumulator format (network-wide, per layer) or minimum search",
                       description="Evaluate a trained model with every Conv2d/Linear computed bit-exactly per "
                                   "accumulator format; rows are appended to --out as they finish and reused on rerun.")
    common(p)
    p.add_argument("--acc", type=text, metavar="LIST",
                   help="accumulators FMT[:wrap|:sat], comma-separated (default: a dozen float and int formats); "
                        "with --search: templates e<E>m?, e?m<M>, int?[:wrap|:sat] (quote them; default "
                        f"{SEARCH_DEFAULT}). {FORMAT_HELP}")
    p.add_argument("--a", type=text, metavar="FMT", help="activation format (default fp8_e4m3; int8 for int accumulators)")
    p.add_argument("--b", type=text, metavar="FMT", help="weight format (default fp8_e4m3; int8 for int accumulators)")
    p.add_argument("--round", type=text, default="rne", metavar="MODE",
                   help="accumulator rounding mode (default rne), for the accumulators that round: an integer "
                        "one never does and stays rne; refused when none of --acc rounds")
    p.add_argument("--overflow", type=text, help="overflow policy when an entry has no :suffix (int: wrap/sat, float: ieee/sat)")
    p.add_argument("--extra", type=text, metavar="KEY=VAL,...", help="more spec fields, e.g. order=chunk32,acc2=fp16")
    p.add_argument("--per-layer", action="store_true", help="also each Conv2d/Linear alone (the rest float32)")
    p.add_argument("--layer", action="append", type=text, metavar="PATTERN",
                   help="also this group of layers alone (the rest float32): a module (layer3), a pattern "
                        "('layer3.*') or names joined by |; repeatable")
    p.add_argument("--layers-only", action="store_true", help="with --per-layer: skip the network-wide rows")
    p.add_argument("--search", action="store_true", help="find the smallest accumulator within --tol of the baseline")
    p.add_argument("--tol", type=nonneg_float, help="--search: allowed top-1 drop in percentage points (default 1.0)")
    p.add_argument("--early-stop", type=_early_stop, metavar="RULE",
                   help="--search: stop a candidate early when it cannot pass: 'exact' (default: even with every "
                        "remaining image right it fails; never changes the result), 'stat:ALPHA' (also when a "
                        "Hoeffding bound says it fails, wrong with probability <= ALPHA), or 'off'")
    p.add_argument("--no-reuse", action="store_true",
                   help="per-layer/group rows: run the whole model per format instead of reusing the float "
                        "activations in front of the emulated layers (same rows, slower; for benchmarks)")
    p.add_argument("--relative-to", choices=("fp32", "operands"),
                   help="--search: measure the drop from the fp32 network (default) or from the same operands "
                        "with a wide fp32/int32 accumulator")
    p.add_argument("--limit", type=positive_int, help="evaluate on the first N test images (recorded in each row)")
    p.add_argument("--batch-size", type=positive_int, default=256, help="images per emulated batch (default 256)")
    p.add_argument("--out", type=text, metavar="FILE", help="JSON Lines results file; finished rows there are not recomputed")
    p.add_argument("--plot", type=text, metavar="FILE.png",
                   help="plot accuracy against accumulator bits: FILE.png, .svg or .pdf (all three are written)")
    p.add_argument("--train", action="store_true", help="built-in models: train the checkpoint first if there is none")
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="run the rows as Ray tasks (spec x layer x image shard): on this machine (no ADDRESS, or "
                        "'local') or on the cluster at ADDRESS; this process writes --out (needs: pip install ray)")
    p.set_defaults(func=_cmd_sweep)
