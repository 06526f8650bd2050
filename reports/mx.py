"""The report's MX section: the minimum accumulator per block-scaled operand format (issue 15).

For each operand format (``mxfp4``, ``nvfp4``, ...; both operands the same) the smallest
``e8m<M>`` accumulator whose top-1 stays within the report's tolerance of the float32 network,
every Conv/Linear emulated (:func:`psum.sweeps.sweep.search_min_acc`, a binary search over M).
Eight exponent bits because NVFP4's NVIDIA scaling puts accumulator values up to ~10^8
(``docs/mx.md``). The rows are cached in ``mx.jsonl`` beside the report (a rerun reads them back
in seconds) and stored in ``data.json`` under ``"mx"``, so ``psum report --rerender`` does not
evaluate again.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["MX_OPERANDS", "mx_min_acc", "mx_section", "check_mx_operands"]

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


def mx_min_acc(model="lenet5", dataset="digits", *, operands=MX_OPERANDS, exp_bits: int = 8, lo: int = 1,
               hi: int = 8, tol: float = 1.0, limit: int | None = None, out=None, data_dir=None,
               checkpoint=None) -> list:
    """Smallest ``e<exp_bits>m<M>`` accumulator per block-scaled operand format.

    Parameters
    ----------
    model, dataset
        As :func:`psum.sweeps.sweep.search_min_acc`.
    operands : sequence of str or str
        Block formats (both operands), or ``"all"`` / a comma-separated text.
    exp_bits, lo, hi : int
        The accumulator's exponent bits and the searched mantissa range (inclusive).
    tol : float
        Allowed top-1 drop from the float32 network, percentage points.
    limit : int, optional
        Evaluate on the first ``limit`` test images.
    out : str or Path, optional
        Results file (JSON Lines) caching every evaluated row.

    Returns
    -------
    list of dict
        One per operand format: ``operands``, ``min_acc`` (format text or ``None`` when even
        ``m<hi>`` fails), ``accuracy`` there, ``baseline_accuracy``, ``evaluated`` ({M: top-1}),
        ``spec``.

    Raises
    ------
    ValueError
        A name that is not a block format, before any evaluation.
    """
    from psum.sweeps.sweep import search_min_acc

    operands = check_mx_operands(operands)
    rows = []
    for op in operands:
        res = search_min_acc(model, dataset, kind="man", exp_bits=exp_bits, lo=lo, hi=hi, tol=tol, a=op, b=op,
                             limit=limit, out=out, data_dir=data_dir, checkpoint=checkpoint)
        rows.append(dict(operands=op, min_acc=res["acc"] if res["min"] is not None else None,
                         accuracy=res["accuracy"], baseline_accuracy=res["baseline_accuracy"],
                         evaluated={int(k): v for k, v in res["evaluated"].items()}, spec=res["spec"]))
    return rows


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
    doc.para(f"Smallest e8m(M) accumulator (M = 1..8, binary search) whose top-1 stays within {cfg.tol:g} "
             f"points of the float32 network with both operands in each block format, every Conv/Linear "
             f"emulated (exact block sums, one rounding per block: `psum.golden.block_dot`). The RTL of these "
             f"units is `psum.hw.mx.MxMac` (docs/mx.md).")

    def fmt_eval(ev):
        return ", ".join(f"{m}: {a:.1f}" for m, a in sorted((int(k), v) for k, v in ev.items()))

    doc.table([{"operands": r["operands"], "min acc": r["min_acc"] or f"none up to e8m8",
                "top-1 % there": "" if r["accuracy"] is None else f"{r['accuracy']:.1f}",
                "float32 top-1 %": f"{r['baseline_accuracy']:.1f}",
                "evaluated (M: top-1 %)": fmt_eval(r["evaluated"])} for r in rows])
