"""The A2Q bound: the data-free integer accumulator width that can never overflow, per layer.

Published (Colbert, Pappalardo, Petri-Koenig, "A2Q: Accumulator-Aware Quantization with
Guaranteed Overflow Avoidance", ICCV 2023, section 3; A2Q+, Colbert et al. 2024): a dot product of
integer weights ``q`` (one output channel) with N-bit inputs ``x`` cannot overflow a signed P-bit
accumulator when ``||q||_1 * 2**(N - 1_signed(x)) <= 2**(P - 1) - 1``; hence the width

    P_A2Q = ceil(alpha + phi(alpha) + 1),  alpha = log2(||q||_1) + N - 1_signed(x),
    phi(alpha) = log2(1 + 2**-alpha)

(``alpha + phi(alpha) = log2(2**alpha + 1)``). The data-type bound, which knows only K and the
operand widths (N-bit inputs, M-bit weights), is the same rule with ``||q||_1 <= K * 2**(M-1)``.
Their ResNet18 CIFAR-10 W4A4 table: float 95.0 %, 16-bit accumulators 94.2 %, 12-bit 83.9 %
(90.6 % with A2Q+) -- trained *with* the constraint; psum measures networks trained without it.

What psum computes per Conv/Linear layer of a trained model, under ``a=int8,b=int8`` (psum's
default integer operands: symmetric int8, per-channel weights, per-tensor activations):

* ``p_dtype`` (K only), ``p_a2q`` (the trained weights' largest ``||q||_1`` over output channels,
  signed int8 inputs: ``alpha = log2||q||_1 + 7``) and ``p_a2q_bias`` (the same bound plus the
  largest ``|bias|``, since psum loads the bias into the accumulator first);
* ``p_data``: the narrowest signed width that holds every real partial sum (sequential order,
  from the bias) on ``n_images`` inputs, with ``max_ratio`` = max |partial sum| / the A2Q bound
  and the fraction of partial sums above 1/2 and 1/8 of the bound;
* ``min_wrap`` / ``min_sat``: psum's measured minimum accumulator (accuracy within ``tol`` points
  of float32, that layer alone at the candidate, :func:`psum.sweeps.sweep.run_search`).
"""

from __future__ import annotations

import math

import numpy as np

from psum._util import check_int

from .common import figure, md_table, save_figure, study_dir, write_csv, write_json, write_section

__all__ = ["run_a2q", "a2q_bits", "signed_bits", "PUBLISHED"]

PUBLISHED = {"model": "ResNet18", "dataset": "CIFAR-10", "weights_acts": "W4A4", "float": 95.0,
             "acc16": 94.2, "acc12": 83.9, "acc12_a2q_plus": 90.6}
_SPEC = "a=int8,b=int8,acc=int32"


def signed_bits(lo: int, hi: int) -> int:
    """The narrowest two's-complement width P holding every integer in ``[lo, hi]``:
    ``-2**(P-1) <= lo`` and ``hi <= 2**(P-1) - 1`` (at least 1)."""
    p = 1
    while lo < -(1 << (p - 1)) or hi > (1 << (p - 1)) - 1:
        p += 1
    return p


def a2q_bits(l1: float, input_bits: int, input_signed: bool = True) -> int:
    """``P_A2Q = ceil(alpha + phi(alpha) + 1)`` (Colbert et al. 2023, section 3; module docstring).

    Parameters
    ----------
    l1 : float
        ``||q||_1`` of one output channel's integer weights (> 0).
    input_bits : int
        N, the input width.
    input_signed : bool

    Returns
    -------
    int
    """
    if not l1 > 0:
        return 1
    alpha = math.log2(l1) + input_bits - (1 if input_signed else 0)
    return math.ceil(alpha + math.log2(1 + 2.0 ** -alpha) + 1 - 1e-12)


def run_a2q(model="lenet5", dataset="digits", *, out_dir=None, checkpoint=None, data_dir=None, layer=None,
            n_images: int = 32, search: bool = True, tol: float = 1.0, limit=None, progress_enabled=None, data_options=None) -> dict:
    """The A2Q bound next to psum's measured minimum and the real partial sums, per layer.

    Parameters
    ----------
    model, dataset, checkpoint, data_dir
        As :func:`psum.sweeps.sweep.workload` (built-in names, ``FILE.py:FUNC``, objects).
    out_dir : str or Path, optional
        Default ``./study-a2q``.
    layer : str, optional
        A layer selection (:func:`psum.sweeps.sweep.select_layers`); default every MAC layer.
    n_images : int
        Inputs whose partial sums are recorded (the first calibration images).
    search : bool
        Also search the measured minimum (wrap and sat) per layer (minutes on LeNet5).
    tol : float
        Accuracy tolerance of the search, percentage points.
    limit : int, optional
        Test images of the search.

    data_options : dict, optional
        More :func:`psum.sweeps.sweep.workload` options (``trust``, ``image_size``, ``normalize``).

    Returns
    -------
    dict
        ``rows`` (one per layer, module docstring), ``published``, ``paths``.

    Raises
    ------
    ValueError
        Bad ``n_images``, ``tol`` or layer selection (one line, before any evaluation).
    """
    from psum.nets.models import mac_layers
    from psum.sweeps.sweep import run_search, select_layers, workload

    from ._layers import layer_gemms, layer_k

    check_int("n_images", n_images, 1)
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol >= 0:
        raise ValueError(f"tol must be a non-negative number of percentage points, not {tol!r}")
    wl = workload(model, dataset, checkpoint=checkpoint, data_dir=data_dir, data_options=data_options)
    names = select_layers(wl.net, layer) if layer else mac_layers(wl.net)
    out = study_dir("a2q", out_dir)
    out.mkdir(parents=True, exist_ok=True)
    x = wl.calib[:n_images]
    rows = []
    for name in names:
        K = layer_k(wl.net, name)
        gemms = layer_gemms(wl.net, _SPEC, name, x, calib=wl.calib)
        B = gemms[0][1]  # the same weights in every block
        l1 = np.abs(B).sum(axis=0)  # per output channel
        bias = max(float(np.abs(g[2]).max()) for g in gemms)
        p_a2q = a2q_bits(float(l1.max()), 8, True)
        bound = float(l1.max()) * 2 ** 7  # |x| <= 2**7 for signed int8 inputs
        lo = hi = 0
        n_ps = above_half = above_eighth = 0
        for A, Bm, init in gemms:
            # every prefix sum of every output: init + a_0 b_0 + ... + a_k b_k, exactly in int64
            ps = init[:, None, :].astype(np.int64) + np.cumsum(
                A.astype(np.int64)[:, :, None] * Bm.astype(np.int64)[None, :, :], axis=1)
            lo, hi = min(lo, int(ps.min())), max(hi, int(ps.max()))
            mag = np.abs(ps)
            n_ps += mag.size
            above_half += int((mag > bound / 2).sum())
            above_eighth += int((mag > bound / 8).sum())
        rows.append({
            "layer": name, "K": K, "l1_max": float(l1.max()), "l1_median": float(np.median(l1)),
            "p_dtype": a2q_bits(K * 127.0, 8, True), "p_a2q": p_a2q,
            "p_a2q_bias": signed_bits(-int(bound + bias), int(bound + bias)),
            "p_data": signed_bits(lo, hi), "max_ratio": max(abs(lo), hi) / bound,
            "frac_above_half": above_half / n_ps, "frac_above_eighth": above_eighth / n_ps,
            "n_partial_sums": n_ps, "min_wrap": None, "min_sat": None})
    if search:
        res = run_search(wl, dataset, "int?:wrap,int?:sat", per_layer=False, groups=names, tol=tol,
                         limit=limit, out=out / "search.jsonl", progress_enabled=progress_enabled)
        for r in res:
            for row in rows:
                if r["layer"] == row["layer"]:
                    row["min_" + r["overflow"]] = r["min"]
    for row in rows:
        for key in ("wrap", "sat"):
            m = row["min_" + key]
            row[f"slack_{key}"] = None if m is None else row["p_a2q"] - m
    paths = _write(out, rows, dict(model=wl.model, dataset=wl.dataset, n_images=int(x.shape[0]), tol=tol,
                                   search=search))
    return {"rows": rows, "published": PUBLISHED, "model": wl.model, "dataset": wl.dataset, "paths": paths}


def _write(out, rows, setup) -> dict:
    paths = {"json": write_json(out / "a2q.json", {"setup": setup, "published": PUBLISHED, "rows": rows}),
             "csv": write_csv(out / "a2q.csv", rows)}
    fig, ax = figure()
    xs = np.arange(len(rows))
    series = [("p_dtype", "data-type bound (K only)", "s"), ("p_a2q", "A2Q bound (trained l1)", "o"),
              ("p_data", "real partial sums need", "^"), ("min_wrap", "psum min, wrap", "v"),
              ("min_sat", "psum min, sat", "D")]
    for key, label, marker in series:
        pts = [(i, r[key]) for i, r in zip(xs, rows) if r[key] is not None]
        if pts:
            ax.plot(*zip(*pts), marker=marker, ls="-", label=label)
    ax.set_xticks(xs, [r["layer"] for r in rows], rotation=30)
    ax.set_ylabel("signed accumulator bits")
    ax.set_title(f"A2Q bound vs measured, {setup['model']} on {setup['dataset']}")
    ax.legend(fontsize=7)
    paths["plots"] = save_figure(fig, out, "a2q_bits")
    cols = ["layer", "K", "l1_max", "p_dtype", "p_a2q", "p_a2q_bias", "p_data", "min_wrap", "min_sat", "max_ratio",
            "frac_above_half", "frac_above_eighth"]
    heads = ["layer", "K", "max ‖q‖₁", "K-only bound", "A2Q bound", "A2Q + bias", "real sums need", "psum min wrap",
             "psum min sat", "max abs sum / bound", "frac > bound/2", "frac > bound/8"]
    slack = [r["slack_wrap"] for r in rows if r["slack_wrap"] is not None]
    data_gap = [r["p_a2q"] - r["p_data"] for r in rows]
    text = ["# The A2Q accumulator bound (`psum study a2q`)\n\n",
            "Published (Colbert et al., ICCV 2023, section 3): a signed P-bit accumulator never overflows when "
            "P >= alpha + phi(alpha) + 1, alpha = log2(||q||_1) + N - 1_signed(x). Their ResNet18 CIFAR-10 W4A4: "
            "float 95.0 %, 16-bit accumulators 94.2 %, 12-bit 83.9 % (A2Q+: 90.6 %), networks trained with the "
            "constraint.\n\n",
            f"psum: {setup['model']} on {setup['dataset']}, int8 x int8 operands, weights as trained (no A2Q "
            f"constraint); partial sums of {setup['n_images']} inputs; measured minimum = narrowest int accumulator "
            f"within {setup['tol']} points of float32 with only that layer at the candidate.\n\n",
            md_table(rows, cols, heads, floats="{:.3g}"),
            "\n![A2Q bound vs measured](a2q_bits.png)\n\n",
            f"How conservative: the A2Q bound exceeds what the real partial sums need by "
            f"{min(data_gap)}-{max(data_gap)} bits"
            + (f", and psum's measured minimum (wrap) by {min(slack)}-{max(slack)} bits" if slack else "")
            + "; the largest real partial sum reaches "
            f"{100 * max(r['max_ratio'] for r in rows):.2g} % of the bound. The bound is a worst case over every "
            "input of the format (all inputs at +-2^(N-1) with the weights' signs); real activations are "
            "non-negative, mostly small and uncorrelated with the weight signs. With wrapping, an intermediate "
            "overflow that the final sum undoes is harmless, so the accuracy-based minimum can sit below "
            "even the real partial sums' width.\n",
            "\nData: `a2q.json`, `a2q.csv`; search rows in `search.jsonl` (a rerun resumes).\n"]
    paths["markdown"] = write_section(out, "a2q", "".join(text))
    return paths
