"""Per-layer minimum searches before and after the work they need not repeat (issue 13 item 5).

For each model (default: ResNet18 at width 0.125 and LeNet5, their shipped digits checkpoints),
one :func:`psum.sweeps.sweep.run_search` with ``per_layer=True`` (network-wide, then each
Conv2d/Linear alone) is timed twice in this run, on the same images, with no results file (every
row computed):

* ``before`` -- ``reuse=False, early_stop="off"``: every candidate runs the whole emulated model on
  every image (psum before this change); run first, so a busy machine shows in the baseline;
* ``after``  -- the defaults: the float prefix in front of the emulated layer computed once per
  batch and shared by every candidate of that layer (:mod:`psum.sweeps.reuse`), and the exact
  early stop (:mod:`psum.sweeps.earlystop`).

The benchmark checks that both give the same minimum for every (template, layer), and that every
candidate the ``after`` run evaluated in full has the ``before`` row's accuracy exactly (the rows
are bit-identical); stopped candidates must lie below the pass mark in both. ``--ablate`` also
times reuse alone and early stop alone. Wall and CPU seconds are printed (on a shared machine the
wall time includes waiting for a core).

Run: ``.venv/bin/python benchmarks/bench_search.py [--models resnet18,lenet5] [--acc 'int?:wrap']
[--limit N] [--ablate] [--layers a,b]``.
"""

from __future__ import annotations

import argparse
import time

MODES = {"before": dict(reuse=False, early_stop="off"), "after": dict(reuse=True, early_stop="exact")}
ABLATE = {"reuse only": dict(reuse=True, early_stop="off"), "early stop only": dict(reuse=False, early_stop="exact")}


def _run(model, acc, limit, batch_size, options, layers=None):
    from psum.sweeps.reuse import PrefixCache
    from psum.sweeps.sweep import run_search

    cache = PrefixCache() if options["reuse"] else False
    t0, c0 = time.perf_counter(), time.process_time()
    res = run_search(model, "digits", acc, per_layer=layers is None, groups=layers or (), limit=limit,
                     batch_size=batch_size, tol=1.0, progress_enabled=False, reuse=cache,
                     early_stop=options["early_stop"])
    return res, time.perf_counter() - t0, time.process_time() - c0, cache


def _check(before, after) -> tuple[int, int, int]:
    """Same minima, same full rows; returns (candidates, stopped early, images not evaluated)."""
    cands = stopped = saved = 0
    for b, a in zip(before, after, strict=True):
        assert (b["layer"], b["kind"], b["min"]) == (a["layer"], a["kind"], a["min"]), (b["layer"], b["min"], a["min"])
        threshold = b["reference_accuracy"] - b["tol"]
        full_b = {r["spec"]: r for r in b["rows"]}
        for row in a["rows"]:
            cands += 1
            if row.get("early_stop"):
                stopped += 1
                saved += row["n_images"] - row["images_evaluated"]
                assert row["accuracy"] < threshold
                if row["spec"] in full_b:
                    assert full_b[row["spec"]]["accuracy"] <= row["accuracy"]
            elif row["spec"] in full_b:
                assert row["accuracy"] == full_b[row["spec"]]["accuracy"], row["spec"]
    return cands, stopped, saved


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="resnet18,lenet5", help="comma-separated built-in models (digits)")
    ap.add_argument("--acc", default="int?:wrap", help="search templates (default int?:wrap)")
    ap.add_argument("--limit", type=int, default=None, help="first N test images (default all 360)")
    ap.add_argument("--batch-size", type=int, default=64, help="images per batch (default 64)")
    ap.add_argument("--ablate", action="store_true", help="also time reuse alone and early stop alone")
    ap.add_argument("--layers", help="only these layers (comma-separated names), not every layer (a quick run)")
    args = ap.parse_args(argv)
    modes = dict(MODES, **(ABLATE if args.ablate else {}))
    print(f"per-layer search, templates {args.acc}, digits, {args.limit or 'all'} test images, batch {args.batch_size}")
    print(f"{'model':10} {'mode':16} {'wall s':>8} {'CPU s':>8} {'speed-up':>8}  notes")
    for model in args.models.split(","):
        results = {}
        for name, options in modes.items():
            layers = args.layers.split(",") if args.layers else None
            res, wall, cpu, cache = _run(model, args.acc, args.limit, args.batch_size, options, layers)
            results[name] = (res, wall, cpu)
            note = ""
            if name != "before":
                cands, stopped, saved = _check(results["before"][0], res)
                note = (f"same minima and rows; {stopped}/{cands} candidates stopped early "
                        f"({saved} images skipped)")
                if cache:
                    note += f"; prefix cache {cache.hits} batch hits, {cache.misses} computed"
            else:
                note = "minima " + ", ".join(f"{r['layer']}:{r['acc']}" for r in res)
            speed = results["before"][1] / wall
            print(f"{model:10} {name:16} {wall:8.1f} {cpu:8.1f} {speed:7.2f}x  {note}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
