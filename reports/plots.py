"""Plots of the trade-off report, each written as PNG and SVG from plain row dicts.

Every function takes the rows that are also written to the report's data file, so each plot can be
redrawn from ``data.json`` alone.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# Reproducible SVG files: fixed element ids (matplotlib salts them randomly by default).
matplotlib.rcParams["svg.hashsalt"] = "psum"

__all__ = ["pareto_front", "plot_sweep", "plot_accuracy_vs_bits", "plot_cost_vs_accuracy", "plot_layer_min_bits",
           "plot_exponent_histograms", "save"]

FAMILY_STYLE = {
    "float": dict(color="#1f77b4", marker="o"),
    "int-wrap": dict(color="#d62728", marker="s"),
    "int-sat": dict(color="#ff7f0e", marker="^"),
}


# Float curves (one per exponent width) in blues/greens/purples, apart from the integer reds.
FLOAT_COLORS = ["#1f77b4", "#2ca02c", "#9467bd", "#17becf", "#8c564b", "#7f7f7f"]


def save(fig, out_dir: Path, stem: str) -> list[str]:
    """Write ``stem.png`` and ``stem.svg``; return the file names."""
    out_dir.mkdir(parents=True, exist_ok=True)
    names = []
    for ext in ("png", "svg"):
        path = out_dir / f"{stem}.{ext}"
        fig.savefig(path, dpi=130, bbox_inches="tight", metadata={"Date": None} if ext == "svg" else None)
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


def plot_accuracy_vs_bits(rows: list[dict], baseline: float, tol: float, out_dir: Path, title: str,
                          stem: str = "accuracy_vs_bits"):
    """Accuracy against accumulator width, one curve per family (float: one per exponent width)."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    groups: dict[str, list[dict]] = {}
    for r in rows:
        key = r["family"] if r["family"] != "float" else f"float e{r['exp_bits']}"
        groups.setdefault(key, []).append(r)
    float_colors = iter(FLOAT_COLORS * 4)
    for key, rs in sorted(groups.items()):
        rs = sorted(rs, key=lambda r: r["acc_bits"])
        style = dict(FAMILY_STYLE.get(rs[0]["family"], {}))
        if rs[0]["family"] == "float":  # one curve per exponent width, never in the integer colours
            style["color"] = next(float_colors)
        ax.plot([r["acc_bits"] for r in rs], [r["accuracy"] for r in rs], label=key, lw=1.4, ms=4, **style)
    ax.axhline(baseline, color="k", lw=0.8, ls="--", label=f"fp32 baseline {baseline:.1f}%")
    ax.axhspan(baseline - tol, baseline, color="green", alpha=0.08, label=f"within {tol:g} pt")
    ax.set_xlabel("accumulator width (bits)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    return save(fig, out_dir, stem)


def plot_sweep(rows: list[dict], path, *, title: str, tol: float = 1.0) -> list[str]:
    """Accuracy against accumulator bits of a sweep's network-wide rows: ``path`` (PNG) and its SVG twin.

    Parameters
    ----------
    rows : list of dict
        :func:`psum.sweeps.sweep.run_sweep` rows; the first is the fp32 baseline.
    path : str or Path
        The PNG file (the SVG is written beside it).
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
        No network-wide rows.
    """
    from psum.sweeps.sweep import network_points

    path = Path(path)
    points = network_points(rows)
    if not points:
        raise ValueError("a sweep plot needs network-wide rows (drop --layers-only)")
    names = plot_accuracy_vs_bits(points, rows[0]["accuracy"], tol, path.parent, title, stem=path.stem)
    return [str(path.parent / n) for n in names]


def plot_cost_vs_accuracy(rows: list[dict], cost_key: str, cost_label: str, out_dir: Path, stem: str, title: str,
                          baseline: float | None = None, tol: float | None = None):
    """Cost (area or energy) against accuracy per synthesised unit, Pareto front marked.

    With ``baseline``, the accuracy axis zooms to the interesting band (down to 15 points below the
    baseline); units below it are drawn on the lower edge as downward triangles. Only the Pareto
    points are labelled, so the labels stay readable.
    """
    rows = [r for r in rows if r.get(cost_key) is not None]
    floor = None if baseline is None else max(0.0, baseline - 15.0)
    shown = (lambda acc: acc) if floor is None else (lambda acc: max(acc, floor))  # noqa: E731
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for fam, style in FAMILY_STYLE.items():
        rs = [r for r in rows if r["family"] == fam]
        inside = [r for r in rs if floor is None or r["accuracy"] >= floor]
        below = [r for r in rs if floor is not None and r["accuracy"] < floor]
        if inside:
            ax.scatter([r[cost_key] for r in inside], [r["accuracy"] for r in inside], label=fam, s=28,
                       color=style["color"], marker=style["marker"], zorder=3)
        if below:
            ax.scatter([r[cost_key] for r in below], [floor] * len(below), s=28, color=style["color"],
                       marker="v", zorder=3, label=f"{fam} (below {floor:.0f} %)")
    front = pareto_front([(r[cost_key], r["accuracy"]) for r in rows])
    if front:
        ax.step([rows[i][cost_key] for i in front], [shown(rows[i]["accuracy"]) for i in front], where="post",
                color="k", lw=1, ls=":", label="Pareto front")
        for i in front:
            ax.annotate(rows[i]["acc"], (rows[i][cost_key], shown(rows[i]["accuracy"])), fontsize=7,
                        xytext=(3, -9), textcoords="offset points")
    if baseline is not None:
        ax.axhline(baseline, color="k", lw=0.8, ls="--")
        if tol is not None:
            ax.axhspan(baseline - tol, baseline, color="green", alpha=0.08)
        ax.set_ylim(floor - 1, 100.5)
    ax.set_xlabel(cost_label)
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return save(fig, out_dir, stem)


def plot_layer_min_bits(rows: list[dict], out_dir: Path, title: str):
    """Per-layer minimum accumulator bits (bars per family)."""
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    fams = [f for f in FAMILY_STYLE if any(r["family"] == f for r in rows)]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    width = 0.8 / max(1, len(fams))
    for j, fam in enumerate(fams):
        vals = {r["layer"]: r["min_bits"] for r in rows if r["family"] == fam}
        xs = [i + j * width for i in range(len(layers))]
        ax.bar(xs, [vals.get(layer) or 0 for layer in layers], width, label=fam, color=FAMILY_STYLE[fam]["color"])
    ax.set_xticks([i + width * (len(fams) - 1) / 2 for i in range(len(layers))], layers, rotation=30, fontsize=8)
    ax.set_ylabel("minimum accumulator bits")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    return save(fig, out_dir, "layer_min_bits")


def plot_exponent_histograms(hists: dict[str, dict], out_dir: Path, title: str):
    """Histograms of partial-sum exponents, one panel per accumulator format, for one layer."""
    n = max(1, len(hists))
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3), squeeze=False)
    for ax, (label, h) in zip(axes[0], hists.items()):
        ax.bar(h["exponents"], h["counts"], width=0.9, color="#1f77b4")
        for key, color in (("emax", "r"), ("emin", "g")):
            if h.get(key) is not None:
                ax.axvline(h[key] + (0.5 if key == "emax" else -0.5), color=color, lw=1, ls="--",
                           label=f"format {key}")
        ax.set_title(label, fontsize=8)
        ax.set_xlabel("partial-sum exponent")
        ax.set_yscale("log")
        ax.legend(fontsize=6)
    axes[0][0].set_ylabel("count")
    fig.suptitle(title, fontsize=9)
    return save(fig, out_dir, "psum_exponents")
