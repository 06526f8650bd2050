"""``psum qat`` and ``psum fake2true``: quantisation-aware training and the fake-to-true comparison.

``psum qat --model M --dataset D`` trains (float checkpoint first if missing), folds batch norm,
calibrates and fine-tunes with fake quantisers, and writes ``checkpoints/<model>-<dataset>-qat*.pt``
(relative to the working directory, or ``$PSUM_CHECKPOINT_DIR``): :func:`psum.quant.qat.ensure_qat`.

``psum fake2true --model M --dataset D --formats fp64,fp32,bf16,fp16,e8m10`` runs the QAT
network's fake-quantised graph in each float format and the true integer program, prints the
mismatch table (or ``--json``), appends the result to ``fake2true/results.jsonl`` (resumed: a
setting already there is not recomputed unless ``--force``) and rewrites the report section
(``fake2true/fake2true.md``, ``.png``, ``.svg``) from every stored result:
:func:`psum.quant.fake2true.run_stored`. The folder is relative to the working directory (or
``$PSUM_RESULTS_DIR``), or ``--out-dir``.
"""

from __future__ import annotations

import json
from .options import nonneg_int, positive_float, positive_int, text

__all__ = ["register"]

DEFAULT_FORMATS = "fp64,fp32,bf16,fp16,e8m10"


def _add_model_args(p) -> None:
    p.add_argument("--model", required=True, type=text, help="lenet5, alexnet, resnet18, resnet18-imagenet")
    p.add_argument("--dataset", default="digits", type=text, help="digits (built in), cifar10, cifar100, imagenet")
    p.add_argument("--data-dir", type=text, default=None, help="folder with CIFAR/ImageNet files")
    p.add_argument("--width", type=positive_float, default=None, help="width multiplier (default: the model's for the dataset)")
    p.add_argument("--w-bits", type=int, default=8, choices=(8, 4), help="weight bits (default 8)")
    p.add_argument("--pow2", action="store_true", help="train with power-of-two scales")
    p.add_argument("--epochs", type=positive_int, default=3, help="QAT epochs (default 3)")
    p.add_argument("--float-epochs", type=positive_int, default=None, help="float epochs if no float checkpoint exists")
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--qat", type=text, default=None, help="QAT checkpoint path (default: ./checkpoints/, else the shipped one)")


def _qat_kwargs(args) -> dict:
    return dict(width=args.width, w_bits=args.w_bits, pow2=args.pow2, epochs=args.epochs,
                float_epochs=args.float_epochs, data_dir=args.data_dir, seed=args.seed)


def _cmd_qat(args) -> int:
    """``psum qat``: train and save; print the float and QAT accuracies."""
    from psum.progress import stage
    from psum.quant.qat import ensure_qat

    stage(f"qat: {args.model} on {args.dataset}: float checkpoint, batch-norm folding, calibration, "
          f"{args.epochs} QAT epoch(s)")
    _, info, path = ensure_qat(args.model, args.dataset, path=args.qat, retrain=True, **_qat_kwargs(args))
    if args.json:
        print(json.dumps(dict(info, path=str(path)), indent=1, default=str))
        return 0
    print(f"{info['model']} on {info['dataset']} (width {info['width']:g}, int{info['w_bits']} weights"
          f"{', pow2 scales' if args.pow2 else ''}): float top-1 {info['float_top1']:.2f} %, "
          f"QAT top-1 {info['qat_top1_before']:.2f} % after calibration -> {info['qat_top1']:.2f} % "
          f"after {info['qat_epochs']} epochs")
    print(f"wrote {path}")
    return 0


def _cmd_fake2true(args) -> int:
    """``psum fake2true``: compare, store, write the report section (the API), then print."""
    from psum.quant.fake2true import format_table, run_stored

    if args.overflow is not None and "overflow=" in args.acc.replace(" ", ""):
        # --overflow overrides the spec's own: 'acc=int20,overflow=sat --overflow wrap' ran wrap silently
        raise ValueError(f"give the overflow in --acc ({args.acc}) or in --overflow, not both")
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    if not formats:
        raise ValueError(f"--formats must list float formats such as {DEFAULT_FORMATS}, not {args.formats!r}")
    from psum.progress import stage

    stage(f"fake2true: {args.model} on {args.dataset}, formats {','.join(formats)} (QAT checkpoint first, "
          f"trained when missing)")
    results, paths = run_stored(args.model, args.dataset, formats, remedy_sets=args.remedy or ["none"],
                                acc=args.acc, overflow=args.overflow, ties=args.ties, fused=args.fused,
                                rescale=args.rescale, limit=args.limit, isolated=not args.no_isolated,
                                force=args.force, out_dir=args.out_dir, qat_path=args.qat, **_qat_kwargs(args))
    if args.json:
        print(json.dumps(results if len(results) > 1 else results[0], indent=1))
        return 0
    for r in results:
        rem = ",".join(r["remedies"]) or "none"
        print(f"{r['model']} on {r['dataset']} (width {r['width']:g}, int{r['w_bits']} weights), "
              f"{r['n_images']} images, integer program {r['acc_spec']}, remedies: {rem}")
        print(format_table(r))
        print()
    print(f"report section: {paths['markdown']}")
    return 0


def register(sub) -> None:
    """Add ``qat`` and ``fake2true`` to the ``psum`` subcommands."""
    p = sub.add_parser("qat", help="quantisation-aware training (int8/int4 weights, uint8 PACT activations)",
                       description="Train a model fake-quantised: symmetric per-channel weights, unsigned int8 "
                                   "activations with learned clipping (PACT), batch norm folded; writes a QAT "
                                   "checkpoint used by psum fake2true.")
    _add_model_args(p)
    p.add_argument("--json", action="store_true", help="print the accuracies and the checkpoint path as JSON")
    p.set_defaults(func=_cmd_qat)

    p = sub.add_parser("fake2true", help="fake-quantised graph in float formats vs the true integer program",
                       description="Run the QAT network's fake-quantised graph with its arithmetic in each float "
                                   "format (bit-exact) and the true integer program; print per-layer code "
                                   "mismatch, end-to-end top-1 and prediction differences; write the report "
                                   "section. Trains the QAT checkpoint first when missing.")
    _add_model_args(p)
    p.add_argument("--formats", type=text, default=DEFAULT_FORMATS, help=f"float formats (default {DEFAULT_FORMATS})")
    p.add_argument("--remedy", action="append", type=text, default=None, metavar="LIST",
                   help="remedies: none, pow2, rescale64, fold, zero, all, or a comma list; repeat the option "
                        "for several settings in one run (default none)")
    p.add_argument("--acc", type=text, default="int32", help="integer accumulator: int32, int16, or acc=int20,overflow=sat")
    p.add_argument("--overflow", default=None, choices=("wrap", "sat"), help="integer accumulator overflow")
    p.add_argument("--ties", default="even", choices=("even", "up"), help="requantiser tie rule (default even)")
    p.add_argument("--fused", action="store_true", help="fused multiply-add in the fake graph (not fp64/fp32)")
    p.add_argument("--rescale", type=text, default=None, help="float format of the fake graph's rescale (default: same)")
    p.add_argument("--limit", type=positive_int, default=None, help="first N test images")
    p.add_argument("--no-isolated", action="store_true", help="skip the per-layer isolated comparison")
    p.add_argument("--out-dir", type=text, metavar="DIR",
                   help="report section folder (default ./fake2true, or $PSUM_RESULTS_DIR/fake2true)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--force", action="store_true", help="recompute settings already stored")
    p.set_defaults(func=_cmd_fake2true)
