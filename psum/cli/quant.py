"""``psum qat`` and ``psum fake2true``: quantisation-aware training and the fake-to-true comparison.

``psum qat --model M --dataset D`` trains (float checkpoint first if missing), folds batch norm,
calibrates and fine-tunes with fake quantisers, and writes ``checkpoints/<model>-<dataset>-qat*.pt``.

``psum fake2true --model M --dataset D --formats fp64,fp32,bf16,fp16,e8m10`` runs the QAT
network's fake-quantised graph in each float format and the true integer program, prints the
mismatch table (or ``--json``), appends the result to ``results/fake2true/results.jsonl`` (resumed:
a setting already there is not recomputed unless ``--force``) and rewrites the report section
(``results/fake2true/fake2true.md``, ``.png``, ``.svg``) from every stored result.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["register", "qat_path", "cmd_qat", "cmd_fake2true"]

DEFAULT_FORMATS = "fp64,fp32,bf16,fp16,e8m10"
DEFAULT_OUT = Path(__file__).resolve().parents[2] / "results" / "fake2true"


def qat_path(model: str, dataset: str, *, width=None, w_bits: int = 8, pow2: bool = False) -> Path:
    """Default QAT checkpoint path: ``<checkpoint dir>/<model>[-w<width>]-<dataset>-qat[-int4][-pow2].pt``."""
    from psum.nets.train import checkpoint_dir

    name = model + (f"-w{width:g}" if width is not None else "") + f"-{dataset}-qat"
    name += f"-int{w_bits}" if w_bits != 8 else ""
    name += "-pow2" if pow2 else ""
    return checkpoint_dir() / f"{name}.pt"


def _add_model_args(p) -> None:
    p.add_argument("--model", required=True, help="lenet5, alexnet, resnet18, resnet18-imagenet")
    p.add_argument("--dataset", default="digits", help="digits (built in), cifar10, cifar100, imagenet")
    p.add_argument("--data-dir", default=None, help="folder with CIFAR/ImageNet files")
    p.add_argument("--width", type=float, default=None, help="width multiplier (default: the model's for the dataset)")
    p.add_argument("--w-bits", type=int, default=8, choices=(8, 4), help="weight bits (default 8)")
    p.add_argument("--pow2", action="store_true", help="train with power-of-two scales")
    p.add_argument("--epochs", type=int, default=3, help="QAT epochs (default 3)")
    p.add_argument("--float-epochs", type=int, default=None, help="float epochs if no float checkpoint exists")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--qat", default=None, help="QAT checkpoint path (default under checkpoints/)")


def _ensure_qat(args, *, train_if_missing: bool):
    from psum.quant.qat import load_qat, qat, save_qat

    path = Path(args.qat) if args.qat else qat_path(args.model, args.dataset, width=args.width,
                                                     w_bits=args.w_bits, pow2=args.pow2)
    if path.is_file() and not getattr(args, "retrain", False):
        net, info = load_qat(path)
        return net, info, path
    if not train_if_missing and args.qat:
        raise FileNotFoundError(f"no QAT checkpoint at {path}; run psum qat first")
    net, info = qat(args.model, args.dataset, width=args.width, w_bits=args.w_bits, pow2=args.pow2,
                    epochs=args.epochs, float_epochs=args.float_epochs, data_dir=args.data_dir, seed=args.seed)
    save_qat(net, info, path)
    return net, info, path


def cmd_qat(args) -> int:
    """``psum qat``: train and save; print the float and QAT accuracies."""
    args.retrain = True
    net, info, path = _ensure_qat(args, train_if_missing=True)
    print(f"{info['model']} on {info['dataset']} (width {info['width']:g}, int{info['w_bits']} weights"
          f"{', pow2 scales' if args.pow2 else ''}): float top-1 {info['float_top1']:.2f} %, "
          f"QAT top-1 {info['qat_top1_before']:.2f} % after calibration -> {info['qat_top1']:.2f} % "
          f"after {info['qat_epochs']} epochs")
    print(f"wrote {path}")
    return 0


def cmd_fake2true(args) -> int:
    """``psum fake2true``: compare, print, store, write the report section."""
    from psum.golden import parse_format

    from psum.nets.data import input_channels, load_dataset
    from psum.quant.fake2true import format_table, parse_remedies, run_fake2true, write_fake2true_section
    from psum.resultsfile import ResultsFile

    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    if not formats:
        raise ValueError(f"--formats must list float formats such as {DEFAULT_FORMATS}, not {args.formats!r}")
    for f in formats:
        parse_format(f)  # validate early: one-line error before any training
    remedy_sets = [parse_remedies(r) for r in (args.remedy or ["none"])]
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be a positive integer, not {args.limit}")
    net, info, path = _ensure_qat(args, train_if_missing=True)
    ds = load_dataset(args.dataset, "test", args.data_dir, channels=input_channels(args.model, args.dataset))
    images, labels = _first(ds, args.limit)
    store = ResultsFile(Path(args.out_dir) / "results.jsonl",
                        ["model", "dataset", "width", "w_bits", "trained_pow2", "remedies", "acc", "ties",
                         "fused", "rescale", "n_images", "formats_list", "isolated"])
    results = []
    for remedies in remedy_sets:
        key = dict(model=info["model"], dataset=info["dataset"], width=info["width"], w_bits=info["w_bits"],
                   trained_pow2=bool(args.pow2), remedies=list(remedies), acc=args.acc, ties=args.ties,
                   fused=args.fused, rescale=args.rescale, n_images=len(labels), formats_list=formats,
                   isolated=not args.no_isolated)
        row = None if args.force else store.get(**key)
        if row is None:
            row = run_fake2true(net, info, images, labels, formats, remedies=remedies, acc=args.acc,
                                overflow=args.overflow, ties=args.ties, fused=args.fused, rescale=args.rescale,
                                isolated=not args.no_isolated)
            row.update(key)
            row["acc_spec"] = row.pop("acc")
            row["acc"] = args.acc
            row["qat_checkpoint"] = str(path)
            store.append(row)
        results.append(row)
    paths = write_fake2true_section(_section_rows(store.rows), args.out_dir)
    if args.json:
        print(json.dumps(results if len(results) > 1 else results[0], indent=1))
    else:
        for r in results:
            rem = ",".join(r["remedies"]) or "none"
            print(f"{r['model']} on {r['dataset']} (width {r['width']:g}, int{r['w_bits']} weights), "
                  f"{r['n_images']} images, integer program {r['acc_spec']}, remedies: {rem}")
            print(format_table(r))
            print()
        print(f"report section: {paths['markdown']}")
    return 0


def _section_rows(rows):
    """Rows for the section: the stored ``acc`` field holds the CLI text; show the full spec."""
    out = []
    for r in rows:
        r = dict(r)
        r["acc"] = r.get("acc_spec", r.get("acc"))
        out.append(r)
    return out


def _first(ds, limit):
    import torch

    from psum.nets.train import iterate_batches

    xs, ys = [], []
    for x, y in iterate_batches(ds, 256, limit=limit):
        xs.append(x)
        ys.append(y)
    return torch.cat(xs), torch.cat(ys)


def register(sub) -> None:
    """Add ``qat`` and ``fake2true`` to the ``psum`` subcommands."""
    p = sub.add_parser("qat", help="quantisation-aware training (int8/int4 weights, uint8 PACT activations)",
                       description="Train a model fake-quantised: symmetric per-channel weights, unsigned int8 "
                                   "activations with learned clipping (PACT), batch norm folded; writes a QAT "
                                   "checkpoint used by psum fake2true.")
    _add_model_args(p)
    p.set_defaults(func=cmd_qat)

    p = sub.add_parser("fake2true", help="fake-quantised graph in float formats vs the true integer program",
                       description="Run the QAT network's fake-quantised graph with its arithmetic in each float "
                                   "format (bit-exact) and the true integer program; print per-layer code "
                                   "mismatch, end-to-end top-1 and prediction differences; write the report "
                                   "section. Trains the QAT checkpoint first when missing.")
    _add_model_args(p)
    p.add_argument("--formats", default=DEFAULT_FORMATS, help=f"float formats (default {DEFAULT_FORMATS})")
    p.add_argument("--remedy", action="append", default=None, metavar="LIST",
                   help="remedies: none, pow2, rescale64, fold, zero, all, or a comma list; repeat the option "
                        "for several settings in one run (default none)")
    p.add_argument("--acc", default="int32", help="integer accumulator: int32, int16, or acc=int20,overflow=sat")
    p.add_argument("--overflow", default=None, choices=("wrap", "sat"), help="integer accumulator overflow")
    p.add_argument("--ties", default="even", choices=("even", "up"), help="requantiser tie rule (default even)")
    p.add_argument("--fused", action="store_true", help="fused multiply-add in the fake graph (not fp64/fp32)")
    p.add_argument("--rescale", default=None, help="float format of the fake graph's rescale (default: same)")
    p.add_argument("--limit", type=int, default=None, help="first N test images")
    p.add_argument("--no-isolated", action="store_true", help="skip the per-layer isolated comparison")
    p.add_argument("--out-dir", default=str(DEFAULT_OUT), help="report section folder")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--force", action="store_true", help="recompute settings already stored")
    p.set_defaults(func=cmd_fake2true)
