"""DeepSeek-V3's 14-bit FP8 accumulation, reproduced with the multi-term order ``mta<N>w<W>p<P>``.

The published figure (DeepSeek-AI, "DeepSeek-V3 Technical Report", arXiv:2412.19437, 2024,
sections 3.3.2 "Increasing Accumulation Precision" and 3.5.2): FP8 GEMM on Hopper tensor cores keeps about
14 bits after aligning the products to the largest exponent; with K = 4096 the maximum relative
error reaches nearly 2 %; promoting the partial sums to FP32 CUDA-core registers every
N_C = 128 elements fixes it. The report does not define its "relative error" nor its operands.

What psum measures: ``C = A @ B`` with fp8_e4m3 operands (``size x K`` times ``K x size``), each
output computed bit-exactly by :func:`psum.golden.emulation.kernels.accumulate_order` under
``a=fp8_e4m3,b=fp8_e4m3,acc=fp32,order=mta<N>w<W>p<P>[floor]`` (``acc2`` fp32: the promoted
register), against the exact product ``C*`` (float64 is exact here: an e4m3 product is a multiple
of ``2**-18`` below ``448**2 < 2**18``, so any sum of at most 2**16 of them has fewer than 53
significant bits). Errors:

* ``max_rel = max|C - C*| / max|C*|``, the headline "maximum relative error" (normalised by the
  largest output: an element-wise ratio is unbounded where a dot product cancels to ~0);
* ``fro_rel = ||C - C*||_F / ||C*||_F``;
* ``bias_rel = mean(C - C*) / max|C*|``, the systematic part (toward -inf truncation drifts).

Operands: ``random`` (standard normal values rounded to e4m3), and ``layer``: the fp8 operands a
real layer of a trained model sees (recorded with :func:`psum.golden.emulation.record.record_streams`),
resampled i.i.d. from the layer's recorded activations and weights to reach K (a real layer of the
built-in models has K <= 1,152; resampling keeps the value distributions, not the correlations).
Promotion "none" is ``P`` = K rounded up to a multiple of N: one promotion at the end.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from psum._util import check_int
from psum.progress import progress
from psum.resultsfile import ResultsFile

from .common import (BOUNDS, SOURCES, TRUNCS, figure, md_table, save_figure, study_dir, write_csv, write_json,
                     write_section)

__all__ = ["run_deepseek", "DEEPSEEK_KS", "DEEPSEEK_WIDTHS", "DEEPSEEK_PROMOTIONS", "gemm_errors",
           "PUBLISHED"]

DEEPSEEK_KS = (256, 512, 1024, 2048, 4096, 8192, 16384)
DEEPSEEK_WIDTHS = (12, 13, 14, 16, 20, 24)
DEEPSEEK_PROMOTIONS = (None, 32, 128, 512)
# The published figures (arXiv:2412.19437, sections 3.3.2 and 3.5.2).
PUBLISHED = {"K": 4096, "W": 14, "max_rel_no_promotion": 0.02, "promotion": 128}
_KEY = ("source", "K", "W", "P", "trunc", "size", "lanes", "seed", "operands")
_SPEC = "a=fp8_e4m3,b=fp8_e4m3,acc=fp32,acc2=fp32"


def gemm_errors(spec, A, B) -> dict:
    """Errors of ``A @ B`` computed under ``spec`` against the exact product.

    Parameters
    ----------
    spec : MacSpec or str
        Any spec whose operand formats hold ``A`` and ``B`` exactly.
    A, B : numpy.ndarray
        ``[M, K]`` and ``[K, N]`` float64 values of the operand formats.

    Returns
    -------
    dict
        ``max_rel``, ``fro_rel``, ``bias_rel`` (see the module docstring), ``max_abs_ref``.
    """
    import torch

    from psum.golden.emulation.kernels import accumulate_order

    ref = A @ B  # exact for fp8 operands (module docstring)
    y = accumulate_order(spec, torch.from_numpy(A), torch.from_numpy(B),
                         torch.zeros(ref.shape, dtype=torch.float64)).numpy()
    e = y - ref
    top = float(np.abs(ref).max()) or 1.0
    return {"max_rel": float(np.abs(e).max()) / top,
            "fro_rel": float(np.linalg.norm(e) / (np.linalg.norm(ref) or 1.0)),
            "bias_rel": float(e.mean()) / top, "max_abs_ref": top}


def _layer_pools(model, dataset, layer, checkpoint, data_dir, seed, data_options=None):
    """The fp8_e4m3 activation and weight values one real layer sees (decoded), and its name."""
    from psum.golden import MacSpec
    from psum.golden.emulation.record import record_streams
    from psum.nets.models import mac_layers
    from psum.sweeps.sweep import select_layers, workload

    wl = workload(model, dataset, checkpoint=checkpoint, data_dir=data_dir, data_options=data_options)
    names = select_layers(wl.net, layer) if layer else mac_layers(wl.net)
    if not names:
        raise ValueError(f"model {wl.model} has no Conv/Linear layer to record")
    spec = MacSpec.parse(_SPEC.replace(",acc2=fp32", ""))
    best = None
    for name in names:  # the layer with the longest dot products (the most K to resample from)
        rec = record_streams(wl.net, spec, name, wl.calib[:32], 64, seed=seed, calib=wl.calib)
        if best is None or rec["a"].shape[1] > best[1]["a"].shape[1]:
            best = (name, rec)
    name, rec = best
    a = spec.a.decode(rec["a"]).ravel()
    b = spec.b.decode(rec["b"]).ravel()
    return a, b, f"{wl.model}:{name}", int(rec["a"].shape[1])


def run_deepseek(out_dir=None, *, ks=DEEPSEEK_KS, widths=DEEPSEEK_WIDTHS, promotions=DEEPSEEK_PROMOTIONS,
                 truncs=("zero", "floor"), sources=("random", "layer"), size: int = 16, lanes: int = 32,
                 seed: int = 0, model="lenet5", dataset="digits", layer=None, checkpoint=None, data_dir=None,
                 progress_enabled=None, data_options=None) -> dict:
    """Error of FP8 GEMM under the multi-term order against K, W, promotion and truncation.

    Parameters
    ----------
    out_dir : str or Path, optional
        The study's folder (default ``./study-deepseek``, see :func:`psum.studies.study_dir`).
    ks : sequence of int
        Dot-product lengths K (default 256 ... 16,384).
    widths : sequence of int
        W, bits the adder keeps from the largest term's leading one (default 12, 13, 14, 16, 20, 24).
    promotions : sequence of int or None
        Promotion intervals P into the fp32 register (``None``: only at the end); each a
        multiple of ``lanes``.
    truncs : sequence of {"zero", "floor"}
        Truncation of the aligned terms: toward zero, or two's complement toward -inf.
    sources : sequence of {"random", "layer"}
        Operands: standard normal values in e4m3, and/or a real layer's recorded fp8 operands.
    size : int
        Rows of A and columns of B (``size x size`` outputs per setting).
    lanes : int
        N, products per adder (32 as Hopper's FP8 wgmma per DeepSeek's description).
    seed : int
    model, dataset, layer, checkpoint, data_dir
        The model whose layer the ``layer`` source records (default LeNet5 on digits, the layer
        with the longest dot products); as :func:`psum.sweeps.sweep.workload` (user models
        ``FILE.py:FUNC`` too).
    progress_enabled : bool, optional
    data_options : dict, optional
        More :func:`psum.sweeps.sweep.workload` options (``trust``, ``image_size``, ``normalize``).

    Returns
    -------
    dict
        ``rows`` (one per setting: ``source``, ``K``, ``W``, ``P``, ``trunc``, ``spec`` and the
        errors of :func:`gemm_errors`), ``headline`` (K = 4096, W = 14 rows beside the published
        figure and which truncation reproduces it), ``paths``.

    Raises
    ------
    ValueError
        A bad K, W, promotion, truncation, source, size or lanes (one line, before any work).
    """
    from psum.golden import MacSpec

    ks = [check_int("K", k, *BOUNDS["K"]) for k in ks]
    widths = [check_int("W", w, *BOUNDS["W"]) for w in widths]
    lanes = check_int("lanes", lanes, *BOUNDS["lanes"])
    size = check_int("size", size, *BOUNDS["size"])
    for p in promotions:
        if p is not None and (check_int("promotion", p, 1) % lanes):
            raise ValueError(f"promotion {p} must be a multiple of lanes={lanes}")
    for t in truncs:
        if t not in TRUNCS:
            raise ValueError(f"trunc must be zero or floor, not {t!r}")
    for s in sources:
        if s not in SOURCES:
            raise ValueError(f"source must be random or layer, not {s!r}")
    if not (ks and widths and promotions and truncs and sources):
        raise ValueError("every study axis (K, W, promotion, trunc, source) needs at least one value")
    out = study_dir("deepseek", out_dir)
    pools = {}
    operands = {"random": "normal(0,1) in fp8_e4m3"}
    if "layer" in sources:
        a_pool, b_pool, label, k_layer = _layer_pools(model, dataset, layer, checkpoint, data_dir, seed, data_options)
        pools["layer"] = (a_pool, b_pool)
        operands["layer"] = f"{label} (K={k_layer}) resampled"
    out.mkdir(parents=True, exist_ok=True)  # after the model resolved: bad input leaves nothing behind
    store = ResultsFile(out / "rows.jsonl", _KEY, required=_KEY + ("max_rel",))
    a_fmt = MacSpec.parse("a=fp8_e4m3,b=fp8_e4m3,acc=fp32").a
    todo = [(s, k, w, p, t) for s in sources for k in ks for w in widths for p in promotions for t in truncs]
    rows = []
    with progress(total=len(todo), desc="deepseek", unit="gemm", enabled=progress_enabled) as bar:
        cache = {}
        for s, k, w, p, t in todo:
            P = p if p is not None else -(-k // lanes) * lanes
            key = dict(source=s, K=k, W=w, P=p if p is not None else "none", trunc=t, size=size, lanes=lanes,
                       seed=seed, operands=operands[s])
            row = store.get(**key)
            if row is None:
                if (s, k) not in cache:
                    cache.clear()
                    rng = np.random.default_rng([seed, k, ("random", "layer").index(s)])
                    if s == "random":
                        A = a_fmt.decode(a_fmt.encode(rng.standard_normal((size, k)), "rne", saturate=True))
                        B = a_fmt.decode(a_fmt.encode(rng.standard_normal((k, size)), "rne", saturate=True))
                    else:
                        A = rng.choice(pools[s][0], size=(size, k))
                        B = rng.choice(pools[s][1], size=(k, size))
                    cache[(s, k)] = (A, B)
                spec = MacSpec.parse(f"{_SPEC},order=mta{lanes}w{w}p{P}" + ("floor" if t == "floor" else ""))
                t0 = time.perf_counter()
                row = dict(key, spec=str(spec), **gemm_errors(spec, *cache[(s, k)]),
                           seconds=round(time.perf_counter() - t0, 3))
                store.append(row)
            rows.append(row)
            bar.update(1)
    headline = _headline(rows)
    paths = _write(out, rows, headline, operands, dict(size=size, lanes=lanes, seed=seed))
    return {"rows": rows, "headline": headline, "operands": operands, "paths": paths}


def _headline(rows) -> dict:
    """The K = 4096, W = 14 rows next to the published figures; which truncation reproduces them."""
    K, W = PUBLISHED["K"], PUBLISHED["W"]
    sel = [r for r in rows if r["K"] == K and r["W"] == W and r["P"] in ("none", PUBLISHED["promotion"])]
    out = {"published": PUBLISHED, "rows": sel, "verdict": {}}
    for source in sorted({r["source"] for r in sel}):
        verdict = {}
        for t in ("zero", "floor"):
            none = [r for r in sel if r["source"] == source and r["trunc"] == t and r["P"] == "none"]
            p128 = [r for r in sel if r["source"] == source and r["trunc"] == t and r["P"] == PUBLISHED["promotion"]]
            if none:
                verdict[t] = {"max_rel": none[0]["max_rel"], "max_rel_p128": p128[0]["max_rel"] if p128 else None,
                              "in_1_to_3_percent": 0.01 <= none[0]["max_rel"] <= 0.03,
                              "p128_below_0.1_percent": (p128[0]["max_rel"] < 0.001) if p128 else None}
        if verdict:
            # the variant whose error is closest to 2 % on a log scale
            best = min(verdict, key=lambda t: abs(np.log(max(verdict[t]["max_rel"], 1e-12) / PUBLISHED["max_rel_no_promotion"])))
            verdict["closest"] = best
        out["verdict"][source] = verdict
    return out


def _pct(x):
    return None if x is None else round(100 * x, 4)


def _write(out: Path, rows, headline, operands, setup) -> dict:
    paths = {"json": write_json(out / "deepseek.json", {"setup": setup, "operands": operands, "headline": headline,
                                                          "rows": rows}),
             "csv": write_csv(out / "deepseek.csv", rows)}
    figs = []
    for source in sorted({r["source"] for r in rows}):
        fig, ax = figure()
        w_plot = 14 if any(r["W"] == 14 for r in rows) else rows[0]["W"]
        for t, style in (("zero", "-"), ("floor", "--")):
            for p in sorted({r["P"] for r in rows}, key=lambda v: (v != "none", v if v != "none" else 0)):
                pts = sorted((r["K"], r["max_rel"]) for r in rows
                             if r["source"] == source and r["W"] == w_plot and r["trunc"] == t and r["P"] == p)
                if pts:
                    ax.plot(*zip(*pts), style, marker="o", ms=3, label=f"{t}, P={p}")
        ax.axhline(PUBLISHED["max_rel_no_promotion"], color="k", lw=0.8, ls=":", label="DeepSeek-V3: ~2 % at K=4096")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("K (dot-product length)")
        ax.set_ylabel("max |C - C*| / max |C*|")
        ax.set_title(f"FP8 GEMM, mta{setup['lanes']}w{w_plot}, {source} operands")
        ax.legend(fontsize=7, ncol=2)
        figs += save_figure(fig, out, f"error_vs_k_{source}")
        fig, ax = figure()
        for t, style in (("zero", "-"), ("floor", "--")):
            kk = 4096 if any(r["K"] == 4096 for r in rows) else max(r["K"] for r in rows)
            for p in ("none", 128):
                pts = sorted((r["W"], r["max_rel"]) for r in rows
                             if r["source"] == source and r["K"] == kk and r["trunc"] == t and r["P"] == p)
                if pts:
                    ax.plot(*zip(*pts), style, marker="o", ms=3, label=f"{t}, P={p}")
        ax.axhline(PUBLISHED["max_rel_no_promotion"], color="k", lw=0.8, ls=":", label="~2 % (published)")
        ax.set_yscale("log")
        ax.set_xlabel("W (bits kept after alignment)")
        ax.set_ylabel("max |C - C*| / max |C*|")
        ax.set_title(f"FP8 GEMM at K={kk}, {source} operands")
        ax.legend(fontsize=7)
        figs += save_figure(fig, out, f"error_vs_w_{source}")
    paths["plots"] = figs
    # -- the section -----------------------------------------------------------------------------
    lines = ["# DeepSeek-V3's 14-bit FP8 accumulation (`psum study deepseek`)\n\n",
             "Published (DeepSeek-V3 technical report, arXiv:2412.19437, sections 3.3.2 and 3.5.2): FP8 GEMM on Hopper keeps "
             "about 14 bits after aligning products to the largest exponent; at K = 4096 the maximum relative error "
             "is nearly 2 %; promoting to FP32 every 128 elements fixes it.\n\n",
             f"psum: `C = A @ B`, {setup['size']}x{setup['size']} outputs, fp8_e4m3 operands, every output bit-exact "
             f"under `order=mta{setup['lanes']}w<W>p<P>[floor]` (acc and acc2 fp32) against the exact product. "
             "Error = max|C - C*| / max|C*|. `zero`: aligned terms truncated toward zero; `floor`: two's complement, "
             "sign-fill right shift (toward -inf). Operands: "
             + "; ".join(f"`{k}`: {v}" for k, v in operands.items()) + ".\n\n",
             "## At K = 4096, W = 14\n\n"]
    hr = [dict(source=r["source"], trunc=r["trunc"], P=r["P"], max_rel=_pct(r["max_rel"]), fro_rel=_pct(r["fro_rel"]),
               bias_rel=_pct(r["bias_rel"])) for r in headline["rows"]]
    lines.append(md_table(hr, ["source", "trunc", "P", "max_rel", "fro_rel", "bias_rel"],
                          ["operands", "truncation", "promotion P", "max rel. error %", "Frobenius rel. error %",
                           "bias % of max"], floats="{:.4g}"))
    for source, v in headline["verdict"].items():
        if "closest" in v:
            c = v["closest"]
            lines.append(f"\n{source} operands: the `{c}` variant is closest to the published ~2 % "
                         f"({100 * v[c]['max_rel']:.2f} %"
                         + (f"; {100 * v[c]['max_rel_p128']:.3f} % with P = 128" if v[c]["max_rel_p128"] is not None else "")
                         + "); within [1 %, 3 %]: "
                         + ", ".join(f"{t} {'yes' if v[t]['in_1_to_3_percent'] else 'no'}" for t in ("zero", "floor") if t in v)
                         + ".\n")
    for source in sorted({r["source"] for r in rows}):
        lines.append(f"\n![error vs K, {source}](error_vs_k_{source}.png)\n\n![error vs W, {source}](error_vs_w_{source}.png)\n")
    lines.append("\n## Every setting (max relative error, %)\n\n")
    for source in sorted({r["source"] for r in rows}):
        for t in sorted({r["trunc"] for r in rows}, reverse=True):
            sub = [r for r in rows if r["source"] == source and r["trunc"] == t]
            ks = sorted({r["K"] for r in sub})
            table = []
            for w in sorted({r["W"] for r in sub}):
                for p in sorted({r["P"] for r in sub}, key=lambda v: (v != "none", v if v != "none" else 0)):
                    cells = {str(r["K"]): _pct(r["max_rel"]) for r in sub if r["W"] == w and r["P"] == p}
                    table.append(dict(W=w, P=p, **cells))
            lines.append(f"\n{source} operands, truncation {t}:\n\n")
            lines.append(md_table(table, ["W", "P", *map(str, ks)], ["W", "P", *(f"K={k}" for k in ks)], floats="{:.3g}"))
    lines.append("\nData: `deepseek.json`, `deepseek.csv`; finished settings in `rows.jsonl` (a rerun resumes). "
                 "Comparison with the published figure: docs/studies.md.\n")
    paths["markdown"] = write_section(out, "deepseek", "".join(lines))
    return paths
