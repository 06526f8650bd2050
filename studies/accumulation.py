"""Accumulation bit-width theory (Sakr et al., ICLR 2019) against psum's measured minimum mantissa.

Published: C. Sakr, N. Wang, C.-Y. Chen, J. Choi, A. Agrawal, N. Shanbhag, K. Gopalakrishnan,
"Accumulation bit-width scaling for ultra-low precision training of deep networks", ICLR 2019
(arXiv:1901.06588). A floating-point accumulation that is too narrow loses small products to
*swamping*; the loss shows as a smaller variance of the ensemble of computed sums. The paper's
variance retention ratio ``VRR = Var(computed sum) / Var(ideal sum)`` (its Theorem 1, section 3;
chunk-based accumulation in section 4) predicts the minimum accumulator mantissa ``m_acc`` for an
accumulation length ``n``; it models the products as i.i.d. zero-mean terms and the partial sum
``s_i`` after ``i`` of them as Gaussian with variance ``i * sigma**2``.

The formula psum evaluates (:func:`vrr`) is derived here under those assumptions, for the full
swamping that dominates the paper's result (partial swamping, the loss of a product's low bits,
is left out: it is second order in ``2**-m_acc``). A product ``p`` added to ``s_i`` is lost under
round-to-nearest when ``|p| < ulp(s_i) / 2``; with ``ulp(s) = 2**(floor(log2|s|) - m_acc)`` the
threshold is ``c |s_i|`` with ``c`` between ``2**-(m_acc+2)`` and ``2**-(m_acc+1)``, taken at
their geometric mean ``c = 2**-(m_acc + 1.5)``. For independent Gaussian ``p`` (variance
``sigma**2``) and ``s_i`` (variance ``i sigma**2``), in polar coordinates the retained variance of
step ``i`` is exactly

    r_i = E[p**2 ; |p| >= c |s_i|] / sigma**2 = 1 - (2 theta_i - sin(2 theta_i)) / pi,
    theta_i = arctan(c sqrt(i)),

so ``VRR(n, m_acc) = (1 + sum_{i=1}^{n-1} r_i) / n`` (the first product lands on an empty
accumulator). Chunk-based accumulation (chunks of L, chunk sums added in a second accumulator of
the same precision, section 4 of the paper): ``VRR(L) * VRR(ceil(n / L))``, both levels adding
i.i.d. terms of equal variance.

Criterion (the knee of the VRR curve): the predicted minimum is the smallest ``m_acc`` whose lost
variance ``n (1 - VRR)``, in units of one product's variance, is at most ``ln(cutoff)``
(``cutoff = 50`` by default, after the paper's normalised exponential variance lost
``exp(n (1 - VRR))``).

psum measures (:func:`run_accumulation_theory`): per Conv/Linear layer of a trained model with
fp8_e4m3 operands, the smallest ``e8m?`` accumulator mantissa whose accuracy is within ``tol``
points of float32 (that layer alone, :func:`psum.sweeps.sweep.run_search`), sequential and
``order=chunk<L>``; and, on the layer's recorded operand streams sliced to lengths K' <= K, the
VRR the bit-exact accumulation really retains, with the same criterion (the "min bits vs K" curve).
"""

from __future__ import annotations

import math

import numpy as np

from psum._util import check_int

from .common import figure, md_table, save_figure, study_dir, write_csv, write_json, write_section

__all__ = ["vrr", "vrr_chunked", "predicted_min_mantissa", "run_accumulation_theory"]

_OPERANDS = "a=fp8_e4m3,b=fp8_e4m3"
_EXP = 8  # accumulator exponent bits: wide, so only the mantissa limits (as the theory assumes)


def vrr(n: int, m_acc: int) -> float:
    """Variance retention ratio of a sequential accumulation of ``n`` i.i.d. Gaussian terms with an
    ``m_acc``-bit accumulator mantissa (full swamping; module docstring, after Sakr et al. 2019
    Theorem 1).

    Parameters
    ----------
    n : int
        Accumulation length, at least 1.
    m_acc : int
        Accumulator mantissa bits (without the hidden bit), at least 0.

    Returns
    -------
    float
        In ``(0, 1]``; 1 for ``n = 1``.
    """
    n = check_int("n", n, 1)
    check_int("m_acc", m_acc, 0)
    if n == 1:
        return 1.0
    c = 2.0 ** -(m_acc + 1.5)
    theta = np.arctan(c * np.sqrt(np.arange(1, n, dtype=np.float64)))
    r = 1.0 - (2 * theta - np.sin(2 * theta)) / np.pi
    return float((1.0 + r.sum()) / n)


def vrr_chunked(n: int, chunk: int, m_acc: int) -> float:
    """VRR of chunk-based accumulation: chunks of ``chunk`` terms, then the ``ceil(n / chunk)`` chunk
    sums, both with ``m_acc`` mantissa bits (Sakr et al. 2019, section 4): the product of the levels."""
    chunk = check_int("chunk", chunk, 1)
    return vrr(min(n, chunk), m_acc) * vrr(-(-n // chunk), m_acc)


def predicted_min_mantissa(n: int, *, chunk: int | None = None, cutoff: float = 50.0, max_bits: int = 30) -> int:
    """Smallest ``m_acc`` with ``n (1 - VRR) <= ln(cutoff)`` (the module's criterion).

    Parameters
    ----------
    n : int
        Accumulation length.
    chunk : int, optional
        Chunk length (chunk-based accumulation); ``None`` is sequential.
    cutoff : float
        Bound on ``exp(n (1 - VRR))``, above 1.
    max_bits : int
        Search ceiling.

    Returns
    -------
    int
    """
    if not cutoff > 1:
        raise ValueError(f"cutoff must be a number above 1, not {cutoff!r}")
    for m in range(0, max_bits + 1):
        v = vrr(n, m) if chunk is None else vrr_chunked(n, chunk, m)
        if n * (1 - v) <= math.log(cutoff):
            return m
    return max_bits


def _measured_vrr_curve(net, name, calib, slices, mantissas, n_outputs, seed):
    """Measured VRR of layer ``name``'s real streams, sequential ``e8m<m>`` from +0, at each slice length."""
    from psum.golden import MacSpec
    from psum.golden.emulation.record import record_streams
    from psum.golden.mac import mac_step

    spec = MacSpec.parse(f"{_OPERANDS},acc=fp32")
    rec = record_streams(net, spec, name, calib[:64], n_outputs, seed=seed, calib=calib)
    a, b = rec["a"], rec["b"]
    K = a.shape[1]
    va, vb = spec.a.decode(a), spec.b.decode(b)
    exact = np.cumsum(va * vb, axis=1)  # exact in float64: fp8 products, K <= 2**10 terms (module doc)
    ks = [k for k in slices if k <= K] + ([K] if K not in slices else [])
    out = {}
    for m in mantissas:
        s = MacSpec.parse(f"{_OPERANDS},acc=e{_EXP}m{m}")
        acc = np.zeros(a.shape[0], dtype=np.uint64)
        snap = {}
        for k in range(K):
            acc = mac_step(s, acc, a[:, k], b[:, k])
            if k + 1 in ks:
                snap[k + 1] = s.acc.decode(acc)
        for k in ks:
            ref = exact[:, k - 1]
            out[(k, m)] = float(np.var(snap[k]) / np.var(ref)) if np.var(ref) > 0 else 1.0
    return K, ks, out


def run_accumulation_theory(model="lenet5", dataset="digits", *, out_dir=None, checkpoint=None, data_dir=None,
                            layer=None, chunk: int = 16, cutoff: float = 50.0, search: bool = True, tol: float = 1.0,
                            limit=None, n_outputs: int = 256, seed: int = 0, progress_enabled=None, data_options=None) -> dict:
    """Predicted (VRR) against measured minimum accumulator mantissa, per layer and against K.

    Parameters
    ----------
    model, dataset, checkpoint, data_dir
        As :func:`psum.sweeps.sweep.workload` (built-in names, ``FILE.py:FUNC``, objects).
    out_dir : str or Path, optional
        Default ``./study-accumulation-theory``.
    layer : str, optional
        Layer selection; default every MAC layer.
    chunk : int
        L of the chunked order (``order=chunk<L>``, ``acc2`` of the same format).
    cutoff : float
        The criterion's bound on ``exp(n (1 - VRR))``.
    search : bool
        Also search the accuracy-based minimum per layer (seq and chunk; minutes on LeNet5).
    tol : float
        Accuracy tolerance, percentage points.
    limit : int, optional
        Test images of the search.
    n_outputs : int
        Recorded output elements per layer for the measured VRR curve.

    data_options : dict, optional
        More :func:`psum.sweeps.sweep.workload` options (``trust``, ``image_size``, ``normalize``).

    Returns
    -------
    dict
        ``rows`` (per layer: ``K``, ``pred_seq``, ``pred_chunk``, ``meas_vrr_seq`` (variance
        criterion on the real streams), ``min_seq``, ``min_chunk`` (accuracy search)), ``curve``
        (per layer and slice K': predicted and measured minimum), ``paths``.

    Raises
    ------
    ValueError
        Bad chunk, cutoff, tol or layer selection (one line, before any evaluation).
    """
    from psum.nets.models import mac_layers
    from psum.sweeps.sweep import run_search, select_layers, workload

    from ._layers import layer_k

    chunk = check_int("chunk", chunk, 1)
    check_int("n_outputs", n_outputs, 1)
    if isinstance(cutoff, bool) or not isinstance(cutoff, (int, float)) or not cutoff > 1:
        raise ValueError(f"cutoff must be a number above 1, not {cutoff!r}")
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol >= 0:
        raise ValueError(f"tol must be a non-negative number of percentage points, not {tol!r}")
    wl = workload(model, dataset, checkpoint=checkpoint, data_dir=data_dir, data_options=data_options)
    names = select_layers(wl.net, layer) if layer else mac_layers(wl.net)
    out = study_dir("accumulation-theory", out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mantissas = list(range(1, 14))  # e8m0 is not a format: the curve starts at one bit
    slices = [2 ** j for j in range(2, 16)]
    rows, curve = [], []
    for name in names:
        K = layer_k(wl.net, name)
        Kr, ks, meas = _measured_vrr_curve(wl.net, name, wl.calib, slices, mantissas, n_outputs, seed)

        def meas_min(k):
            for m in mantissas:
                if k * (1 - meas[(k, m)]) <= math.log(cutoff):
                    return m
            return None

        for k in ks:
            curve.append({"layer": name, "K": k, "pred_seq": predicted_min_mantissa(k, cutoff=cutoff),
                          "pred_chunk": predicted_min_mantissa(k, chunk=chunk, cutoff=cutoff),
                          "meas_vrr_seq": meas_min(k),
                          **{f"vrr_m{m}": round(meas[(k, m)], 6) for m in mantissas}})
        rows.append({"layer": name, "K": K, "pred_seq": predicted_min_mantissa(K, cutoff=cutoff),
                     "pred_chunk": predicted_min_mantissa(K, chunk=chunk, cutoff=cutoff),
                     "meas_vrr_seq": meas_min(Kr), "min_seq": None, "min_chunk": None})
    if search:
        common = dict(groups=names, tol=tol, limit=limit, out=out / "search.jsonl", progress_enabled=progress_enabled)
        for key, extra in (("min_seq", None), ("min_chunk", f"order=chunk{chunk},acc2=e{_EXP}m?")):
            for r in _search(run_search, wl, dataset, extra, common):
                for row in rows:
                    if row["layer"] == r["layer"]:
                        row[key] = r["min"]
    setup = dict(model=wl.model, dataset=wl.dataset, chunk=chunk, cutoff=cutoff, tol=tol, exp_bits=_EXP,
                 operands=_OPERANDS, search=search)
    paths = _write(out, rows, curve, setup)
    return {"rows": rows, "curve": curve, "setup": setup, "paths": paths}


def _search(run_search, wl, dataset, extra, common):
    """The accuracy search: ``e8m?``; for the chunked order ``acc2`` follows the candidate's mantissa
    (the theory's second level has the same precision), so one search per candidate format."""
    if extra is None:
        return run_search(wl, dataset, f"e{_EXP}m?", per_layer=False, **common)
    # acc2 must equal the candidate: search_min_acc varies only acc, so search by hand over m
    from psum.sweeps.sweep import search_min_acc

    res = []
    for g in common["groups"]:
        found = None
        for m in range(1, 24):
            r = search_min_acc(wl, dataset, kind="man", exp_bits=_EXP, lo=m, hi=m, layer=g, tol=common["tol"],
                               limit=common["limit"], out=common["out"], progress_enabled=common["progress_enabled"],
                               extra=extra.replace("?", str(m)))
            if r["min"] is not None:
                found = m
                break
        res.append({"layer": g, "min": found})
    return res


def _write(out, rows, curve, setup) -> dict:
    paths = {"json": write_json(out / "accumulation.json", {"setup": setup, "rows": rows, "curve": curve}),
             "csv": write_csv(out / "accumulation.csv", rows), "curve_csv": write_csv(out / "accumulation_curve.csv", curve)}
    figs = []
    fig, ax = figure()
    for key, label, marker in (("min_seq", "sequential", "o"), ("min_chunk", f"chunk{setup['chunk']}", "s")):
        pred = "pred_seq" if key == "min_seq" else "pred_chunk"
        pts = [(r[pred], r[key]) for r in rows if r[key] is not None]
        if pts:
            ax.scatter(*zip(*pts), marker=marker, label=f"{label} (accuracy search)")
            for r in rows:
                if r[key] is not None:
                    ax.annotate(r["layer"], (r[pred], r[key]), fontsize=6)
    pts = [(r["pred_seq"], r["meas_vrr_seq"]) for r in rows if r["meas_vrr_seq"] is not None]
    if pts:
        ax.scatter(*zip(*pts), marker="^", label="sequential (measured VRR)")
    lim = [0, max([r[k] or 0 for r in rows for k in ("pred_seq", "min_seq", "meas_vrr_seq", "min_chunk")] + [4]) + 1]
    ax.plot(lim, lim, "k:", lw=0.8, label="predicted = measured")
    ax.set_xlabel("predicted minimum mantissa (VRR)")
    ax.set_ylabel("measured minimum mantissa")
    ax.set_title(f"Sakr et al. 2019 vs psum, {setup['model']} on {setup['dataset']}")
    ax.legend(fontsize=7)
    figs += save_figure(fig, out, "predicted_vs_measured")
    fig, ax = figure()
    kk = np.unique(np.round(np.logspace(0.5, 4.2, 40)).astype(int))
    ax.plot(kk, [predicted_min_mantissa(int(k), cutoff=setup["cutoff"]) for k in kk], "k-", label="predicted, sequential")
    ax.plot(kk, [predicted_min_mantissa(int(k), chunk=setup["chunk"], cutoff=setup["cutoff"]) for k in kk], "k--",
            label=f"predicted, chunk{setup['chunk']}")
    for name in sorted({c["layer"] for c in curve}, key=[r["layer"] for r in rows].index):
        pts = [(c["K"], c["meas_vrr_seq"]) for c in curve if c["layer"] == name and c["meas_vrr_seq"] is not None]
        if pts:
            ax.plot(*zip(*pts), marker="o", ms=3, lw=0.8, label=f"{name} (measured, K sliced)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("K (accumulation length)")
    ax.set_ylabel("minimum accumulator mantissa bits")
    ax.set_title("Minimum mantissa against K")
    ax.legend(fontsize=6)
    figs += save_figure(fig, out, "min_bits_vs_k")
    paths["plots"] = figs
    cols = ["layer", "K", "pred_seq", "meas_vrr_seq", "min_seq", "pred_chunk", "min_chunk"]
    heads = ["layer", "K", "predicted seq", "measured VRR seq", "psum min seq (accuracy)",
             f"predicted chunk{setup['chunk']}", f"psum min chunk{setup['chunk']}"]
    text = ["# Accumulation bit-width theory (`psum study accumulation-theory`)\n\n",
            "Published (Sakr et al., ICLR 2019): the variance retention ratio VRR of a length-n accumulation with "
            "an m_acc-bit mantissa predicts the minimum accumulator precision; chunk-based accumulation needs fewer "
            "bits.\n\n",
            f"psum: {setup['model']} on {setup['dataset']}, {setup['operands']} operands, accumulator "
            f"e{setup['exp_bits']}m? (exponent wide enough that only the mantissa limits). Predicted: smallest "
            f"m_acc with n(1 - VRR) <= ln {setup['cutoff']:g} (VRR from the paper's full-swamping model, derived in "
            "`psum.studies.accumulation`). Measured two ways: the same criterion on the VRR the bit-exact sequential "
            "accumulation of the layer's real operand streams retains, and the accuracy search (within "
            f"{setup['tol']} points of float32, that layer alone).\n\n",
            md_table(rows, cols, heads),
            "\n![predicted vs measured](predicted_vs_measured.png)\n\n![minimum bits vs K](min_bits_vs_k.png)\n",
            "\nThe theory assumes i.i.d. zero-mean products; real layers have post-ReLU (non-negative) "
            "activations, so partial sums drift and swamping starts earlier than the model predicts; the accuracy "
            "criterion tolerates losses the variance criterion counts. See docs/studies.md.\n",
            "\nData: `accumulation.json`, `accumulation.csv`, `accumulation_curve.csv` (measured VRR per slice and "
            "mantissa); search rows in `search.jsonl` (a rerun resumes).\n"]
    paths["markdown"] = write_section(out, "accumulation", "".join(text))
    return paths
