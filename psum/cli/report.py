"""CLI subcommand ``psum report``: the trade-off report (the main job)."""

from __future__ import annotations

import json

from psum._util import format_table
from .options import Once, nonneg_float, positive_float, positive_int, text

__all__ = ["register"]


def _cmd_report(args) -> int:
    from psum.reports.report import ReportConfig, build_report, rerender

    if args.rerender:
        # Every study option would be ignored (the figures come from DIR's data.json): say so.
        given = [a.option_strings[-1] for a in args._actions
                 if a.dest not in ("rerender", "out", "json", "help", "func", "_actions") and a.option_strings
                 and getattr(args, a.dest, None) != a.default]
        if given:
            raise ValueError(f"--rerender redraws DIR from its data.json (no study run); {', '.join(given)} would be "
                             f"ignored (rerun the report instead)")
        data = rerender(args.rerender, args.out)  # --out: write the redrawn report elsewhere (was ignored)
        if args.json:
            print(json.dumps({k: data.get(k) for k in ("headline", "ratios", "conclusion", "out_dir")}, indent=1,
                             default=str))
        else:
            print(f"{data['conclusion']}\nreport: {data['out_dir']}/index.html")
        return 0

    from .nets import check_data_args

    check_data_args(args)

    from psum.reports.library import report_library

    report_library(args.liberty)  # a bad Liberty file is one line, before the checkpoint or any work
    if args.per_layer and args.no_per_layer:  # the later one used to win silently
        raise ValueError("give --per-layer or --no-per-layer, not both")
    if args.no_iso and (args.iso_macs is not None or args.iso_clock_ns is not None):
        opt = "--iso-macs" if args.iso_macs is not None else "--iso-clock-ns"
        raise ValueError(f"{opt} sets the iso-throughput comparison, which --no-iso skips")
    out = args.out
    checkpoint = args.checkpoint
    if args.width is not None and checkpoint is not None:
        raise ValueError("give --width or --checkpoint, not both (a psum checkpoint records its width)")
    kw = dict(model=args.model, dataset=args.dataset, tol=args.tol, data_dir=args.data_dir, jobs=args.jobs,
              sim_cycles=args.sim_cycles, checkpoint=checkpoint, groups=tuple(args.layer or ()))
    if args.limit is not None:
        kw["limit"] = args.limit
    if args.no_per_layer:
        kw["per_layer"] = False
    if args.per_layer:
        kw["per_layer"] = True
    # the iso comparison runs at --iso-clock-ns, else at --clock-ns, else at 5 ns (ReportConfig's default)
    kw.update(iso=not args.no_iso, iso_macs=32 if args.iso_macs is None else args.iso_macs,
              iso_clock_ns=args.iso_clock_ns, glitch=not args.no_glitch, liberty=args.liberty, clock_ns=args.clock_ns, breakdown=not args.no_breakdown)
    if args.mx:
        kw["mx"] = args.mx
    cfg = ReportConfig.quick(**kw) if args.quick else ReportConfig(**kw)  # every option checked here
    if args.width is not None:  # the width-W checkpoint (trained first if needed), ./<model>-w<W>-<dataset>/
        # Why after the config: training takes minutes, and a bad option must not wait for it.
        import dataclasses

        from psum.nets.train import width_checkpoint
        from psum.reports.report import default_out_dir

        cfg = dataclasses.replace(cfg, checkpoint=str(width_checkpoint(args.model, args.dataset, args.width,
                                                                       train_if_missing=True, data_dir=args.data_dir)))
        out = out or str(default_out_dir(f"{args.model}-w{args.width:g}", args.dataset))
    from psum.sweeps.distributed import ray_cluster

    with ray_cluster(args.ray):  # the report's sweeps and searches as Ray tasks (None: serial)
        data = build_report(cfg, out_dir=out, force_synth=args.force,
                            data_options=dict(trust=args.trust_checkpoint, image_size=args.image_size,
                                              normalize=args.normalize))
    if args.json:
        print(json.dumps({k: data[k] for k in ("baseline_accuracy", "n_images", "headline", "ratios", "conclusion",
                                               "minima", "library", "out_dir") if k in data}, indent=1, default=str))
        return 0
    print(f"baseline top-1 {data['baseline_accuracy']:.2f}%  (tolerance {args.tol:g} pt)")
    lib = data.get("library") or {}
    if lib.get("kind") == "liberty":
        print(f"cells: Liberty library {lib['name']} ({lib['file']}, sha256 {lib['digest']}; 1 GE = {lib['ge_area']:g} "
              "area units)")
    rows = [{"design": r["design"], "accumulator": r["acc"], "bits": f"{r['bits']:d}",
             "top-1 %": "" if r["accuracy"] is None else f"{r['accuracy']:.2f}", "GE": f"{r['ge']:,.0f}",
             "fJ/MAC": f"{r['energy_per_mac_fj']:.1f}", "delay ns": f"{r['delay_ns']:.2f}"} for r in data["headline"]]
    print(format_table(rows, ["design", "accumulator", "bits", "top-1 %", "GE", "fJ/MAC", "delay ns"]))
    if data.get("conclusion"):
        print(data["conclusion"])
    if data.get("out_dir"):
        print(f"report: {data['out_dir']}/index.html")
    return 0


def register(sub) -> None:
    p = sub.add_parser("report", help="the trade-off report: accuracy vs area/energy per accumulator format",
                       description="Run the whole study (train if needed, sweep, search, RTL check, synthesis) "
                                   "and write ./<model>-<dataset>/ (index.html, report.md, plots, data), relative to the "
                                   "working directory (or $PSUM_RESULTS_DIR, or --out).")
    p.add_argument("--model", type=text, default="lenet5",
                   help="lenet5 (default), alexnet, resnet18, resnet18-imagenet, vit, or FILE.py:FUNCTION / "
                        "package.module:FUNCTION (your code, run as given: it returns an nn.Module)")
    p.add_argument("--dataset", type=text, default="digits",
                   help="digits (built in, default), cifar10, cifar100, imagenet, imagefolder (--data-dir "
                        "DIR/<class>/*.png), or FILE.py:FUNCTION (your code: returns a Dataset or DataLoader)")
    p.add_argument("--data-dir", type=text, help="folder holding CIFAR / ImageNet / imagefolder (no downloads)")
    p.add_argument("--checkpoint", type=text, metavar="FILE",
                   help="weights: a psum checkpoint, a plain state_dict, a torch.export archive, or a whole saved "
                        "model (with --trust-checkpoint)")
    p.add_argument("--width", type=positive_float,
                   help="built-in models: the checkpoint at this channel multiplier (<model>-w<W>-<dataset>.pt, "
                        "trained first if missing); default folder ./<model>-w<W>-<dataset>/")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="allow a checkpoint that needs full unpickling: it runs code named by the file")
    p.add_argument("--image-size", type=positive_int, metavar="N", help="imagefolder: centre crop NxN (default: own size)")
    p.add_argument("--normalize", choices=("none", "imagenet"), default="none",
                   help="imagefolder: pixels in [0, 1] (default) or ImageNet mean/std")
    p.add_argument("--layer", action="append", type=text, metavar="PATTERN",
                   help="also search this group of layers alone (layer3, 'layer3.*', a|b); repeatable")
    p.add_argument("--tol", type=nonneg_float, default=1.0, help="allowed top-1 drop in points (default 1.0)")
    p.add_argument("--limit", type=positive_int, help="evaluate on the first N test images")
    p.add_argument("--jobs", type=positive_int, default=2, help="parallel synthesis processes (default 2)")
    p.add_argument("--sim-cycles", type=positive_int, default=3000, help="cocotb cycles checked per unit (default 3000)")
    p.add_argument("--no-per-layer", action="store_true", help="skip the per-layer minimum searches")
    p.add_argument("--per-layer", action="store_true", help="with --quick: do the per-layer minimum searches")
    p.add_argument("--iso-macs", type=positive_int, action=Once, metavar="N",
                   help="iso-throughput comparison: MACs per cycle every design is replicated to (default 32)")
    p.add_argument("--iso-clock-ns", type=positive_float, action=Once, default=None, metavar="T",
                   help="iso-throughput comparison: common clock period in ns (default --clock-ns, else 5.0)")
    p.add_argument("--clock-ns", type=positive_float, action=Once, default=None, metavar="T",
                   help="also give every synthesised unit's slack, fastest clock, energy per MAC and power at "
                        "this clock period (ns)")
    p.add_argument("--liberty", type=text, action=Once, metavar="FILE.lib",
                   help="compute every silicon figure (hardware table, iso-throughput, breakdown, glitches) on "
                        "this NLDM Liberty library instead of psum45")
    p.add_argument("--no-breakdown", action="store_true",
                   help="skip the area/delay/energy breakdown by datapath stage of the headline's units")
    p.add_argument("--no-iso", action="store_true", help="skip the iso-throughput comparison")
    p.add_argument("--no-glitch", action="store_true",
                   help="skip the timed gate simulation (glitch share) of the headline's units")
    p.add_argument("--mx", type=text, metavar="FORMATS",
                   help="add the MX section: minimum e8m? accumulator per block-scaled operand format "
                        "(comma-separated, e.g. mxfp4,nvfp4, or all)")
    p.add_argument("--quick", action="store_true", help="a smaller study for a first look")
    p.add_argument("--force", action="store_true", help="recompute synthesis instead of using the cache")
    p.add_argument("--out", type=text, help="output folder (default ./<model>-<dataset>)")
    p.add_argument("--rerender", type=text, metavar="DIR",
                   help="write DIR's document and figures again from its data.json (no study rerun), e.g. after "
                        "a psum upgrade; into --out when given, else into DIR")
    p.add_argument("--json", action="store_true",
                   help="print the headline, ratios, conclusion and minima as JSON (the whole data: data.json)")
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="run the sweeps' and searches' evaluations as Ray tasks, on this machine (no ADDRESS) or "
                        "on the cluster at ADDRESS (needs: pip install ray)")
    p.set_defaults(func=_cmd_report, _actions=p._actions)  # --rerender names the study options it would ignore
