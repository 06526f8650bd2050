"""Plots of the trade-off report, each written as PNG, SVG and PDF from plain row dicts.

Every function takes the rows that are also written to the report's data file, so each plot can be
redrawn from ``data.json`` alone.

House rules of these figures (the issue-17 review of the committed report):

* colours from the Okabe-Ito palette (Okabe & Ito, "Color Universal Design", 2008), readable with
  every common colour-vision deficiency, and a distinct marker per family, so the figures survive
  greyscale printing;
* integer ticks on every bit axis (an accumulator has no 7.5 bits);
* the operand formats and the model/data set in every title;
* accuracy plotted twice where it decides: the full 0-100 % range, and the band around the float32
  baseline where the tolerance decides (a 97-99 % band is a few pixels on a 0-100 axis);
* legends outside the data; point labels moved apart with adjustText (its repulsion, not ours).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

# Reproducible SVG and PDF files: fixed element ids (matplotlib salts them randomly by default).
matplotlib.rcParams["svg.hashsalt"] = "psum"

__all__ = ["plot_iso_throughput", "pareto_front", "plot_sweep", "plot_accuracy_vs_bits", "plot_cost_vs_accuracy", "plot_layer_min_bits",
           "plot_exponent_histograms", "plot_delay_vs_bits", "plot_fake2true", "save", "OKABE_ITO",
           "FIGURE_FORMATS", "accuracy_band"]

# Okabe & Ito (2008), in their order: black, orange, sky blue, bluish green, yellow, blue,
# vermillion, reddish purple.
OKABE_ITO = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")

FAMILY_STYLE = {
    "float": dict(color="#0072B2", marker="o"),
    "int-wrap": dict(color="#D55E00", marker="s"),
    "int-sat": dict(color="#E69F00", marker="^"),
}

# Float curves (one per exponent width) in the palette's blues, green and purple, apart from the
# integer vermillion and orange.
FLOAT_COLORS = ["#0072B2", "#009E73", "#CC79A7", "#56B4E9", "#000000"]
FLOAT_MARKERS = ["o", "D", "v", "P", "X"]

FIGURE_FORMATS = ("png", "svg", "pdf")


def save(fig, out_dir: Path, stem: str, formats=FIGURE_FORMATS) -> list[str]:
    """Write ``stem.<ext>`` for each of ``formats`` (PNG at 130 dpi; SVG and PDF as vectors,
    without dates, so reruns give the same files); return the file names."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = []
    for ext in formats:
        path = out_dir / f"{stem}.{ext}"
        meta = {"Date": None} if ext == "svg" else {"CreationDate": None} if ext == "pdf" else None
        fig.savefig(path, dpi=130, bbox_inches="tight", metadata=meta)
        names.append(path.name)
    plt.close(fig)
    return names


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points not dominated in (lower cost, higher accuracy), by increasing cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def accuracy_band(baseline: float, tol: float) -> tuple[float, float]:
    """The accuracy range where the tolerance decides: from ``max(4 tol, 3)`` points below the
    baseline to ``max(tol, 1)`` above it (never past 100 %)."""
    return baseline - max(4 * tol, 3.0), min(100.5, baseline + max(tol, 1.0))


def _label_points(ax, xs, ys, labels, fontsize=7):
    """Label points so the labels neither overlap each other nor the points (adjustText)."""
    texts = [ax.text(x, y, t, fontsize=fontsize) for x, y, t in zip(xs, ys, labels)]
    if not texts:
        return
    try:
        from adjustText import adjust_text
    except ImportError:  # pragma: no cover - adjustText is a dependency; labels still drawn
        return
    adjust_text(texts, x=list(xs), y=list(ys), ax=ax, arrowprops=dict(arrowstyle="-", color="0.5", lw=0.5))


def _groups(rows):
    """Rows by curve: the family, floats split by exponent width (a minimum found between sweep
    points carries no ``exp_bits``: read from its format)."""
    from psum.golden import parse_format

    groups: dict[str, list[dict]] = {}
    for r in rows:
        if r["family"] != "float":
            key = r["family"]
        else:
            key = f"float e{r.get('exp_bits') or parse_format(r['acc']).exp_bits}"
        groups.setdefault(key, []).append(r)
    return groups


def _curves(ax, rows):
    float_i = 0
    for key, rs in sorted(_groups(rows).items()):
        rs = sorted(rs, key=lambda r: r["acc_bits"])
        style = dict(FAMILY_STYLE.get(rs[0]["family"], {}))
        if rs[0]["family"] == "float":  # one curve per exponent width, never in the integer colours
            style.update(color=FLOAT_COLORS[float_i % len(FLOAT_COLORS)],
                         marker=FLOAT_MARKERS[float_i % len(FLOAT_MARKERS)])
            float_i += 1
        ax.plot([r["acc_bits"] for r in rs], [r["accuracy"] for r in rs], label=key, lw=1.4, ms=4, **style)


def plot_accuracy_vs_bits(rows: list[dict], baseline: float, tol: float, out_dir: Path, title: str,
                          stem: str = "accuracy_vs_bits", formats=FIGURE_FORMATS):
    """Accuracy against accumulator width, one curve per family (float: one per exponent width).

    Two panels: the full 0-100 % range (left, narrow) and the band where the tolerance decides
    (:func:`accuracy_band`, right), with integer ticks on the bit axis.

    Parameters
    ----------
    rows : list of dict
        Sweep points (``family``, ``acc_bits``, ``accuracy`` in %, ``exp_bits`` for floats).
    baseline, tol : float
        Float32 top-1 (%) and the tolerance (points).
    out_dir : Path
        Folder of the files.
    title : str
        Figure title (model, data set and operand formats).
    stem : str
        File name without extension.
    formats : tuple of str
        Files to write (``png``, ``svg``, ``pdf``).

    Returns
    -------
    list of str
        The file names written.
    """
    fig, (full, zoom) = plt.subplots(1, 2, figsize=(9.5, 4.2), gridspec_kw=dict(width_ratios=[1, 2.2]))
    for ax in (full, zoom):
        _curves(ax, rows)
        ax.axhline(baseline, color="k", lw=0.8, ls="--", label=f"fp32 baseline {baseline:.2f} %")
        ax.axhspan(baseline - tol, baseline, color="#009E73", alpha=0.12, label=f"within {tol:g} pt")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("accumulator width (bits)")
        ax.grid(alpha=0.3)
    full.set_ylim(0, 100)
    full.set_ylabel("top-1 accuracy (%)")
    full.set_title("full range", fontsize=9)
    lo, hi = accuracy_band(baseline, tol)
    zoom.set_ylim(lo, hi)
    zoom.set_title(f"zoom: {lo:.1f} to {hi:.1f} % (curves below leave the panel)", fontsize=9)
    zoom.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.suptitle(title, fontsize=10)
    return save(fig, out_dir, stem, formats)


def plot_sweep(rows: list[dict], path, *, title: str, tol: float = 1.0) -> list[str]:
    """Accuracy against accumulator bits of a sweep's network-wide rows: ``path`` and its twins.

    Parameters
    ----------
    rows : list of dict
        :func:`psum.sweeps.sweep.run_sweep` rows; the first is the fp32 baseline.
    path : str or Path
        The figure file: ``.png``, ``.svg`` or ``.pdf``; the other two are written beside it.
    title : str
        Plot title.
    tol : float
        Tolerance band below the baseline, points.

    Returns
    -------
    list of str
        The files written.

    Raises
    ------
    ValueError
        No network-wide rows, or a file name that is not .png, .svg or .pdf.
    """
    from psum.sweeps.sweep import network_points

    path = Path(path)
    if path.suffix.lower().lstrip(".") not in FIGURE_FORMATS:
        raise ValueError(f"a plot file must end in .png, .svg or .pdf, not {str(path)!r}")
    points = network_points(rows)
    if not points:
        raise ValueError("a sweep plot needs network-wide rows (drop --layers-only)")
    names = plot_accuracy_vs_bits(points, rows[0]["accuracy"], tol, path.parent, title, stem=path.stem)
    return [str(path.parent / n) for n in names]


def plot_cost_vs_accuracy(rows: list[dict], cost_key: str, cost_label: str, out_dir: Path, stem: str, title: str,
                          baseline: float | None = None, tol: float | None = None, formats=FIGURE_FORMATS):
    """Cost (area, energy, area x delay, ...) against accuracy per synthesised unit, Pareto front marked.

    With ``baseline``, the accuracy axis zooms to :func:`accuracy_band`; units below it are drawn on
    the lower edge as downward triangles. Every unit is labelled with its accumulator format,
    the labels moved apart so none overlaps (adjustText).
    """
    rows = [r for r in rows if r.get(cost_key) is not None]
    floor = None if baseline is None else accuracy_band(baseline, tol or 0.0)[0]
    shown = (lambda acc: acc) if floor is None else (lambda acc: max(acc, floor))  # noqa: E731
    fig, ax = plt.subplots(figsize=(8, 4.6))
    for fam, style in FAMILY_STYLE.items():
        rs = [r for r in rows if r["family"] == fam]
        inside = [r for r in rs if floor is None or r["accuracy"] >= floor]
        below = [r for r in rs if floor is not None and r["accuracy"] < floor]
        if inside:
            ax.scatter([r[cost_key] for r in inside], [r["accuracy"] for r in inside], label=fam, s=30,
                       color=style["color"], marker=style["marker"], zorder=3)
        if below:
            ax.scatter([r[cost_key] for r in below], [floor] * len(below), s=30, color=style["color"],
                       marker="v", zorder=3, label=f"{fam} (below {floor:.1f} %)")
    front = pareto_front([(r[cost_key], r["accuracy"]) for r in rows])
    if front:
        ax.step([rows[i][cost_key] for i in front], [shown(rows[i]["accuracy"]) for i in front], where="post",
                color="k", lw=1, ls=":", label="Pareto front")
    _label_points(ax, [r[cost_key] for r in rows], [shown(r["accuracy"]) for r in rows], [r["acc"] for r in rows])
    if baseline is not None:
        ax.axhline(baseline, color="k", lw=0.8, ls="--", label=f"fp32 baseline {baseline:.2f} %")
        if tol is not None:
            ax.axhspan(baseline - tol, baseline, color="#009E73", alpha=0.12, label=f"within {tol:g} pt")
        ax.set_ylim(floor - 0.3, accuracy_band(baseline, tol or 0.0)[1])
    ax.set_xlabel(cost_label)
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return save(fig, out_dir, stem, formats)


def plot_iso_throughput(rows: list[dict], out_dir: Path, title: str, stem: str = "iso_throughput",
                        formats=FIGURE_FORMATS):
    """Total area against energy per MAC, one labelled point per design at iso-throughput.

    ``rows``: :func:`psum.reports.iso.iso_row` records (``family``, ``ge``, ``energy_per_mac_fj``,
    ``meets_accuracy``, ``met_clock``); integer designs as squares, float-product ones as circles;
    hollow: the design misses the tolerance or the clock.
    """
    fig, ax = plt.subplots(figsize=(7, 4.6))
    for r in rows:
        ok = r.get("meets_accuracy") and r.get("met_clock")
        color = "#0072B2" if r.get("side") == "int" else "#D55E00"
        ax.scatter([r["energy_per_mac_fj"]], [r["ge"]], s=36, marker="s" if r.get("side") == "int" else "o",
                   facecolors=color if ok else "none", edgecolors=color, zorder=3)
    _label_points(ax, [r["energy_per_mac_fj"] for r in rows], [r["ge"] for r in rows],
                  [r["family"] + ("" if r.get("meets_accuracy") and r.get("met_clock") else " (x)") for r in rows])
    ax.set_xlabel("energy per MAC (fJ)")
    ax.set_ylabel("area at iso-throughput (GE)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    return save(fig, out_dir, stem, formats)


def plot_delay_vs_bits(rows: list[dict], out_dir: Path, title: str, stem: str = "delay_vs_bits",
                       formats=FIGURE_FORMATS):
    """Critical-path delay (ns, left axis) and the clock it allows (MHz = 1000 / delay, right
    axis) against accumulator width, per family (float: per exponent width), for every synthesised unit."""
    fig, ax = plt.subplots(figsize=(8, 4.2))
    _curves(ax, [dict(r, accuracy=r["delay_ns"]) for r in rows if r.get("delay_ns")])  # a curve per family/exponent
    _label_points(ax, [r["acc_bits"] for r in rows if r.get("delay_ns")],
                  [r["delay_ns"] for r in rows if r.get("delay_ns")], [r["acc"] for r in rows if r.get("delay_ns")])
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("accumulator width (bits)")
    ax.set_ylabel("critical-path delay (ns)")
    lo, hi = ax.get_ylim()
    lo = max(lo, 1e-3)
    ax.set_ylim(lo, hi)
    mhz = ax.twinx()
    # the same axis read as frequency: f = 1000 / delay, ticks placed at the delays of round MHz
    mhz.set_ylim(lo, hi)
    ticks = [t for t in (50, 100, 150, 200, 250, 300, 400, 500, 750, 1000, 1500, 2000) if lo <= 1000 / t <= hi]
    mhz.set_yticks([1000 / t for t in ticks], [str(t) for t in ticks])
    mhz.set_ylabel("maximum clock (MHz)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.12, 1.0), borderaxespad=0)
    return save(fig, out_dir, stem, formats)


def plot_layer_min_bits(rows: list[dict], out_dir: Path, title: str, formats=FIGURE_FORMATS):
    """Per-layer minimum accumulator bits (bars per family), integer ticks."""
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    fams = [f for f in FAMILY_STYLE if any(r["family"] == f for r in rows)]
    fig, ax = plt.subplots(figsize=(8, 3.8))
    width = 0.8 / max(1, len(fams))
    hatches = {"float": "", "int-wrap": "//", "int-sat": ".."}
    for j, fam in enumerate(fams):
        vals = {r["layer"]: r["min_bits"] for r in rows if r["family"] == fam}
        xs = [i + j * width for i in range(len(layers))]
        bars = ax.bar(xs, [vals.get(layer) or 0 for layer in layers], width, label=fam,
                      color=FAMILY_STYLE[fam]["color"], hatch=hatches.get(fam, ""), edgecolor="white")
        ax.bar_label(bars, labels=[str(vals.get(layer)) if vals.get(layer) else "none" for layer in layers],
                     fontsize=6, padding=1)
    ax.set_xticks([i + width * (len(fams) - 1) / 2 for i in range(len(layers))], layers, rotation=30, fontsize=8)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("minimum accumulator bits")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return save(fig, out_dir, "layer_min_bits", formats)


def plot_exponent_histograms(hists: dict[str, dict], out_dir: Path, title: str, formats=FIGURE_FORMATS):
    """Histograms of partial-sum exponents, one panel per accumulator format, for one layer.

    What differs between a passing and a failing format is where its range ends, so the
    exponents it cannot hold are shaded (above ``emax``: overflow; below ``emin``: subnormal or
    lost) and each panel's title gives the share of swamped and overflowed steps.
    """
    n = max(1, len(hists))
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.2), squeeze=False, sharey=True)
    for ax, (label, h) in zip(axes[0], hists.items()):
        ax.bar(h["exponents"], h["counts"], width=0.9, color="#0072B2")
        xs = h["exponents"] or [0]
        if h.get("emax") is not None:
            ax.axvspan(h["emax"] + 0.5, max(max(xs), h["emax"]) + 1.5, color="#D55E00", alpha=0.15, label="overflows")
        if h.get("emin") is not None:
            ax.axvspan(min(min(xs), h["emin"]) - 1.5, h["emin"] - 0.5, color="0.6", alpha=0.25, label="below emin")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        parts = [f"{k} {100 * h[k]:.1f} %" for k in ("swamp", "overflow") if isinstance(h.get(k), (int, float))]
        ax.set_title(label + ("\n" + ", ".join(parts) if parts else ""), fontsize=8)
        ax.set_xlabel("partial-sum exponent")
        ax.set_yscale("log")
        ax.legend(fontsize=6, loc="upper left")
    axes[0][0].set_ylabel("count")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save(fig, out_dir, "psum_exponents", formats)


def plot_fake2true(results: list[dict], out_dir: Path, stem: str = "fake2true_top1", formats=FIGURE_FORMATS):
    """The fake-to-true top-1 figure (:func:`psum.quant.fake2true.plot_top1`, its one home: the
    ``psum fake2true`` section draws the same figure) in the report's folder; file names written."""
    from psum.quant.fake2true import plot_top1

    return [Path(p).name for p in plot_top1(results, out_dir, stem, formats)]
