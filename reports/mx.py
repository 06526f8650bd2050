"""The report's MX section: the minimum accumulator per block-scaled operand format (issue 15).

For each operand format (``mxfp4``, ``nvfp4``, ...; both operands the same) the smallest
``e8m<M>`` accumulator whose top-1 stays within the report's tolerance of the float32 network,
every Conv/Linear emulated (:func:`psum.sweeps.sweep.search_min_acc`, a binary search over M);
:func:`mx_min_acc` also searches saturating fixed-point accumulators ``q<I>.<F>`` (an integer
accumulator is ``q<W>.0``) and :func:`mx_study` runs both kinds per model (``docs/mx.md``'s study,
``results/study-mx/``); the section shows one table per model.
Eight exponent bits because NVFP4's NVIDIA scaling puts accumulator values up to ~10^8
(``docs/mx.md``). The rows are cached in ``mx.jsonl`` beside the report (a rerun reads them back
in seconds) and stored in ``data.json`` under ``"mx"``, so ``psum report --rerender`` does not
evaluate again.
"""

from __future__ import annotations

from pathlib import Path

from psum._util import check_int

__all__ = ["MX_OPERANDS", "ACC_KINDS", "mx_min_acc", "mx_study", "read_mx_study", "mx_section", "check_mx_operands"]

#: Operand formats of ``psum report --mx all``: the OCP MX element kinds and NVFP4.
MX_OPERANDS = ("mxfp4", "nvfp4", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp8_e4m3", "mxfp8_e5m2", "mxint8")


def check_mx_operands(operands) -> tuple:
    """``operands`` as a tuple of block-format names (``"all"``: :data:`MX_OPERANDS`).

    Raises
    ------
    ValueError
        A name that is not a block format (:func:`psum.golden.blocks.parse_block_format`'s message).
    """
    from psum.golden.blocks import parse_block_format

    if isinstance(operands, str):
        operands = MX_OPERANDS if operands.strip() == "all" else tuple(p for p in operands.split(","))
    return tuple(str(parse_block_format(p)) for p in operands)


#: Accumulator kinds of :func:`mx_min_acc`.
ACC_KINDS = ("float", "fixed")


def mx_min_acc(model="lenet5", dataset="digits", *, operands=MX_OPERANDS, acc_kind: str = "float",
               exp_bits: int = 8, lo: int | None = None, hi: int | None = None, int_bits: int = 32,
               tol: float = 1.0, relative_to: str = "fp32", limit: int | None = None, out=None, data_dir=None,
               checkpoint=None, on_result=None) -> list:
    """Smallest accumulator per block-scaled operand format: ``e<exp_bits>m<M>`` or ``q<I>.<F>``.

    Parameters
    ----------
    model, dataset
        As :func:`psum.sweeps.sweep.search_min_acc` (a name or a
        :func:`psum.sweeps.sweep.workload`; a name is loaded once for every format).
    operands : sequence of str or str
        Block formats (both operands), or ``"all"`` / a comma-separated text.
    acc_kind : {"float", "fixed"}
        ``"float"``: the mantissa bits M of ``e<exp_bits>m<M>`` (default range 1..8).
        ``"fixed"``: the fraction bits F of a saturating ``q<int_bits>.<F>`` (default range
        0..16): the grid a block term is rounded onto (:func:`psum.golden.block_dot.grid_format`),
        with ``int_bits`` integer bits chosen wide enough not to decide the result.
    exp_bits, lo, hi, int_bits : int
        The fixed fields and the searched range (inclusive).
    tol : float
        Allowed top-1 drop, percentage points.
    relative_to : {"fp32", "operands"}
        Measured from the float32 network, or from the same operands with an fp32 accumulator
        (isolates the accumulator when the operand quantisation alone costs more than ``tol``).
    limit : int, optional
        Evaluate on the first ``limit`` test images.
    out : str or Path, optional
        Results file (JSON Lines) caching every evaluated row.
    on_result : callable, optional
        Called with each format's row as soon as its search ends (a long study keeps what it has).

    Returns
    -------
    list of dict
        One per operand format: ``operands``, ``acc_kind``, ``min_acc`` (format text or ``None``
        when even the top of the range fails), ``accuracy`` there, ``baseline_accuracy`` (float32),
        ``reference_accuracy`` (what ``tol`` is measured from), ``relative_to``, ``evaluated``
        ({searched value: top-1}), ``spec``, ``n_images``.

    Raises
    ------
    ValueError
        A name that is not a block format, a bad kind, range or ``relative_to``, before any
        evaluation.

    Notes
    -----
    The search is :func:`psum.sweeps.sweep.min_passing` (bisection with confirmation: the minimum
    passes, so does the value above it). With a few hundred images one image is worth 0.5..1
    point, so the accuracy is not monotone in the searched field and the minimum is a sample
    estimate (``docs/mx.md``).
    """
    from psum.sweeps.sweep import make_spec, min_passing, run_sweep, search_min_acc, workload

    operands = check_mx_operands(operands)
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 <= tol < float("inf"):
        raise ValueError(f"tol must be a finite non-negative number of percentage points, not {tol!r}")
    if limit is not None:
        check_int("limit", limit, 1)
    if acc_kind not in ACC_KINDS:
        raise ValueError(f"acc_kind must be 'float' or 'fixed', not {acc_kind!r}")
    if relative_to not in ("fp32", "operands"):
        raise ValueError(f"relative_to must be 'fp32' or 'operands', not {relative_to!r}")
    lo = (1 if acc_kind == "float" else 0) if lo is None else lo
    hi = (8 if acc_kind == "float" else 16) if hi is None else hi
    if not (isinstance(lo, int) and isinstance(hi, int) and 0 <= lo <= hi):
        raise ValueError(f"search range must be integers 0 <= lo <= hi, not {lo!r}..{hi!r}")
    for v in (lo, hi):  # validate the formats before loading anything
        acc = f"q{int_bits}.{v}" if acc_kind == "fixed" else f"e{exp_bits}m{v}"
        make_spec(acc, a=operands[0], b=operands[0], overflow="sat" if acc_kind == "fixed" else None)
    wl = workload(model, dataset, checkpoint=checkpoint, data_dir=data_dir)
    rows = []
    for op in operands:
        if acc_kind == "float":
            res = search_min_acc(wl, dataset, kind="man", exp_bits=exp_bits, lo=lo, hi=hi, tol=tol, a=op, b=op,
                                 limit=limit, out=out, relative_to=relative_to)
            row = dict(operands=op, acc_kind="float", min_acc=res["acc"] if res["min"] is not None else None,
                       accuracy=res["accuracy"], baseline_accuracy=res["baseline_accuracy"],
                       reference_accuracy=res["reference_accuracy"], relative_to=relative_to,
                       evaluated={int(k): v for k, v in res["evaluated"].items()}, spec=res["spec"],
                       n_images=res["n_images"])
        else:
            def sweep(acc):  # fp32 (the reference) with its own default overflow, as the float search's
                base, r = run_sweep(wl, dataset, [acc], a=op, b=op, overflow=None if acc == "fp32" else "sat",
                                    limit=limit, out=out)
                return base, r

            base, ref = sweep("fp32") if relative_to == "operands" else (None, None)
            evaluated: dict = {}

            def passes(f):
                if f not in evaluated:
                    b_, r_ = sweep(f"q{int_bits}.{f}")
                    evaluated[f] = (b_, r_)
                b_, r_ = evaluated[f]
                threshold = (ref if ref is not None else b_)["accuracy"] - tol
                return r_["accuracy"] >= threshold

            found = min_passing(passes, lo, hi)
            b_any = evaluated[hi][0]
            row = dict(operands=op, acc_kind="fixed",
                       min_acc=f"q{int_bits}.{found}" if found is not None else None,
                       accuracy=evaluated[found][1]["accuracy"] if found is not None else None,
                       baseline_accuracy=b_any["accuracy"],
                       reference_accuracy=(ref if ref is not None else b_any)["accuracy"], relative_to=relative_to,
                       evaluated={f: evaluated[f][1]["accuracy"] for f in sorted(evaluated)},
                       spec=evaluated[found][1]["spec"] if found is not None else None,
                       n_images=b_any["n_images"])
        rows.append(row)
        if on_result is not None:
            on_result(row)
    return rows


def mx_study(model, dataset="digits", *, operands=MX_OPERANDS, kinds=ACC_KINDS, limit: int | None = None,
             tol: float = 1.0, relative_to: str = "operands", float_range=(1, 5), fixed_range=(0, 8),
             int_bits: int = 32, out_dir=None) -> list:
    """The MX study of ``docs/mx.md``: per operand format, the smallest accumulator of each kind.

    Runs :func:`mx_min_acc` one operand format at a time, each ``kind`` in turn, so every format's
    rows are complete as soon as its searches end; with ``out_dir`` each finished row is appended
    to ``out_dir/<model>.jsonl`` (with ``model`` and ``tol``) and every evaluated network row is
    cached in ``out_dir/<model>-rows.jsonl`` (a rerun reuses them).

    Parameters
    ----------
    model, dataset, operands, limit, tol, relative_to, int_bits
        As :func:`mx_min_acc` (here ``relative_to`` defaults to ``"operands"``: the accumulator's
        own cost, measured from the same operands with an fp32 accumulator).
    kinds : sequence of {"float", "fixed"}
    float_range, fixed_range : (int, int)
        Searched M of ``e8m<M>`` and F of ``q<int_bits>.<F>``.
    out_dir : str or Path, optional

    Returns
    -------
    list of dict
        :func:`mx_min_acc`'s rows, with ``model`` and ``tol``.
    """
    import json

    operands = check_mx_operands(operands)
    kinds = tuple(kinds)
    bad = [k for k in kinds if k not in ACC_KINDS]
    if bad or not kinds:
        raise ValueError(f"kinds must list float and/or fixed, not {','.join(kinds)!r}")
    out_dir = None if out_dir is None else Path(out_dir)
    name = model if isinstance(model, str) else type(model).__name__
    rows = []
    for op in operands:
        for kind in kinds:
            lo, hi = float_range if kind == "float" else fixed_range
            (row,) = mx_min_acc(model, dataset, operands=[op], acc_kind=kind, lo=lo, hi=hi, int_bits=int_bits,
                                tol=tol, relative_to=relative_to, limit=limit,
                                out=None if out_dir is None else out_dir / f"{name}-rows.jsonl")
            row = dict(row, model=name, tol=tol)
            rows.append(row)
            if out_dir is not None:
                out_dir.mkdir(parents=True, exist_ok=True)
                with (out_dir / f"{name}.jsonl").open("a") as f:
                    f.write(json.dumps(row) + "\n")
    return rows


def read_mx_study(folder) -> list:
    """The rows :func:`mx_study` wrote into ``folder`` (every ``<model>.jsonl``; the last row per
    (model, operands, kind) wins)."""
    import json

    found: dict = {}
    for path in sorted(Path(folder).glob("*.jsonl")):
        if path.stem.endswith("-rows"):
            continue
        for line in path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                found[(r.get("model"), r["operands"], r.get("acc_kind", "float"))] = r
    return list(found.values())


def mx_section(cfg, out: Path, data: dict, doc) -> None:
    """The report's optional MX section (:data:`psum.reports.report.OPTIONAL_SECTIONS`).

    Nothing unless ``cfg.mx`` names operand formats (``psum report --mx``) or ``data`` already
    holds the rows (a rerender). Computes the rows once (cached in ``out/mx.jsonl``) and keeps
    them in ``data["mx"]``.
    """
    rows = data.get("mx")
    operands = getattr(cfg, "mx", ())
    if rows is None and not operands:
        return
    if rows is None:
        rows = mx_min_acc(cfg.model, cfg.dataset, operands=operands, tol=cfg.tol, limit=cfg.limit,
                          out=Path(out) / "mx.jsonl", data_dir=cfg.data_dir, checkpoint=cfg.checkpoint)
        data["mx"] = rows
    if not rows:
        return
    doc.heading("Block-scaled operands (OCP MX, NVFP4)")
    doc.para(f"Smallest accumulator whose top-1 stays within the tolerance with both operands in each block "
             f"format, every Conv/Linear emulated (exact block sums, one rounding per block: "
             f"`psum.golden.block_dot`): a float e8m(M) (binary search over M) or a saturating fixed-point "
             f"q(I).(F) (search over F; an integer accumulator is q(W).0). Measured from the float32 network "
             f"or from the same operands with an fp32 accumulator, as each table says. One table per model. "
             f"The RTL of these units is `psum.hw.mx.MxMac` (docs/mx.md).")

    def fmt_eval(ev):
        return ", ".join(f"{m}: {a:.1f}" for m, a in sorted((int(k), v) for k, v in ev.items()))

    default_model = getattr(cfg, "model", None)
    groups: dict = {}
    for r in rows:
        groups.setdefault(r.get("model", default_model), []).append(r)
    for model, rs in groups.items():
        ref = {r.get("relative_to", "fp32") for r in rs}
        n = {r.get("n_images") for r in rs if r.get("n_images")}
        doc.para(f"**{model}**" + (f", {', '.join(str(x) for x in sorted(n))} test images" if n else "")
                 + f"; drop measured from {' / '.join(sorted('the float32 network' if x == 'fp32' else 'the operands with fp32 acc' for x in ref))}.")
        doc.table([{"operands": r["operands"], "kind": r.get("acc_kind", "float"),
                    "min acc": r["min_acc"] or "none in the range",
                    "top-1 % there": "" if r["accuracy"] is None else f"{r['accuracy']:.1f}",
                    "operands + fp32 acc top-1 %": "" if r.get("reference_accuracy") is None or
                    r.get("relative_to", "fp32") == "fp32" else f"{r['reference_accuracy']:.1f}",
                    "float32 top-1 %": f"{r['baseline_accuracy']:.1f}",
                    "evaluated (M or F: top-1 %)": fmt_eval(r["evaluated"])} for r in rs])
