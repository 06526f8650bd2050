"""Issue 16: psum against published results (DeepSeek-V3, Sakr et al. 2019, A2Q).

The two's-complement (``floor``) truncation of the multi-term order is checked three ways: the
emulation kernel against a Fraction reference (:func:`psum.golden.reference.mta_sum_ref`, one
group at a time), the cycle model and the Amaranth unit against the emulation. The studies'
formulas are checked against hand-worked values and brute force; their commands on tiny cases.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from psum.golden import MacSpec, Order
from psum.golden.emulation.kernels import accumulate_order
from psum.golden.mac import mac_step
from psum.golden.reference import decode_ref, mta_sum_ref, round_ref
from psum.golden.spec import add_spec


# ---------------------------------------------------------------------------------------------
# The floor variant of order=mta: text, reference, emulation, RTL
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, trunc", [("mta32w14p128", "zero"), ("mta32w14p128floor", "floor"),
                                         ("MTA4w8p8FLOOR", "floor")])
def test_mta_trunc_text_round_trip(text, trunc):
    o = Order.parse(text)
    assert o.trunc == trunc and Order.parse(str(o)) == o
    spec = MacSpec.parse(f"a=fp8_e4m3,b=fp8_e4m3,acc=fp32,order={text}")
    assert MacSpec.parse(str(spec)) == spec
    assert ("floor_" in spec.name) == (trunc == "floor")  # module names tell the variants apart


def test_mta_trunc_defaults_and_refusals():
    assert Order("mta", n=4, w=8, p=8) == Order.parse("mta4w8p8")
    with pytest.raises(ValueError, match=r"^order mta4w8p8: trunc must be zero or floor, not 'up'$"):
        Order("mta", n=4, w=8, p=8, trunc="up")
    with pytest.raises(ValueError, match=r"^order seq takes no trunc \(mta only\)$"):
        Order("seq", trunc="floor")
    with pytest.raises(ValueError, match=r"^order must be seq, tree, tree<N>, chunk<L>, mta<N>w<W>p<P> or ilv<L>, "
                                         r"not 'mta4w8p8ceil'$"):
        Order.parse("mta4w8p8ceil")


def test_mta_sum_ref_by_hand():
    # terms 1, -3/16, -1/64 with W = 3: lsb = 2**(0 - 2) = 1/4
    t = [Fraction(1), Fraction(-3, 16), Fraction(-1, 64)]
    assert mta_sum_ref(t, 3, "zero") == (Fraction(1), Fraction(1, 4))          # both negatives drop
    assert mta_sum_ref(t, 3, "floor") == (Fraction(1, 2), Fraction(1, 4))       # each becomes -1/4
    assert mta_sum_ref([Fraction(0)], 3, "floor") == (0, 0)


def _enc(fmt, v):
    return int(fmt.encode(np.array([v]), "rne", saturate=True)[0])


def mta_floor_reference(spec, a, b, init):
    """Fractions and the reference rounder, one group at a time (fused products, no sr)."""
    fmt, o = spec.acc, spec.order
    K, R, acc2 = len(a), _enc(fmt, init), 0
    for g0 in range(0, K, o.n):
        g1 = min(K, g0 + o.n)
        rs, rv = decode_ref(fmt, R)
        terms = [-rv if rs else rv] + [Fraction(a[k]) * Fraction(b[k]) for k in range(g0, g1)]
        S, _ = mta_sum_ref(terms, o.w, o.trunc)
        if S == 0:
            R = fmt.sign_bit if spec.rounding.value == "rdn" else 0
        else:
            R = round_ref(fmt, S < 0, abs(S), spec.rounding, saturate=spec.saturate)
        if g1 % o.p == 0 or g1 == K:
            acc2 = int(mac_step(add_spec(spec, spec.acc2), acc2, R, 1))
            R = 0
    return float(spec.acc2.decode(np.asarray([acc2], dtype=np.uint64))[0])


@pytest.mark.parametrize("text", ["a=fp8_e4m3,b=fp8_e4m3,acc=fp32,order=mta4w8p8floor,round=rtz",
                                  "a=fp8_e4m3,b=fp8_e4m3,acc=e5m6,order=mta3w6p6floor,acc2=fp16",
                                  "a=fp8_e5m2,b=fp8_e4m3,acc=fp32,order=mta8w5p16floor,round=rdn"])
def test_mta_floor_matches_fraction_reference(text):
    spec = MacSpec.parse(text)
    rng = np.random.default_rng(5)
    M, N, K = 3, 4, 37
    A = spec.a.decode(spec.a.encode(rng.standard_normal((M, K)) * 2, saturate=True))
    B = spec.b.decode(spec.b.encode(rng.standard_normal((K, N)), saturate=True))
    init = spec.acc.decode(spec.acc.encode(rng.standard_normal((M, N)) * 4))
    got = accumulate_order(spec, *(torch.from_numpy(x) for x in (A, B, init))).numpy()
    for m in range(M):
        for n in range(N):
            assert got[m, n] == mta_floor_reference(spec, A[m], B[:, n], init[m, n]), (m, n)
    # and the variant matters here: toward zero gives other results
    zero = accumulate_order(spec.replace(order=str(spec.order).replace("floor", "")),
                            *(torch.from_numpy(x) for x in (A, B, init))).numpy()
    assert (zero != got).any()


@pytest.mark.parametrize("text", ["a=fp8_e5m2,b=fp8_e4m3,acc=e5m4,order=mta3w5p6floor,acc2=e5m7,round=rdn",
                                  pytest.param("a=fp8_e4m3,b=fp8_e4m3,acc=e5m6,order=mta4w8p8floor,acc2=fp16",
                                               marks=pytest.mark.slow)])
def test_mta_floor_unit_equals_emulation_in_amaranth(text):
    """Load, K products, flush: the Amaranth unit and the cycle model give accumulate_order's acc2."""
    from psum.hw.verify import amaranth_trace
    from psum.hw.verify.model import expected_outputs
    from psum.hw.verify.stimulus import concat, stream_cycles

    spec = MacSpec.parse(text)
    rng = np.random.default_rng(7)
    streams, want = [], []
    for K in (0, 1, spec.order.p, spec.order.p + 1, 23):
        a = spec.a.encode(rng.standard_normal(K), "rne", saturate=True)
        b = spec.b.encode(rng.standard_normal(K) * 0.5, "rne", saturate=True)
        init = int(spec.acc.encode([rng.standard_normal()], "rne", saturate=True)[0])
        streams.append((a, b, init))
        A = torch.tensor(spec.a.decode(np.asarray(a, np.uint64))[None, :], dtype=torch.float64)
        B = torch.tensor(spec.b.decode(np.asarray(b, np.uint64))[:, None], dtype=torch.float64)
        I0 = torch.tensor(spec.acc.decode(np.array([[init]], np.uint64)), dtype=torch.float64)
        want.append(int(spec.acc2.encode(accumulate_order(spec, A, B, I0).numpy(), "rne")[0, 0]))
    stim = concat(spec, [stream_cycles(spec, streams)])
    stim["rst"] = np.zeros(len(stim["en"]), np.uint64)
    f = stim["flush"].astype(bool)
    ends = np.flatnonzero(f & ~np.concatenate([f[1:], [False]]))
    model = expected_outputs(spec, stim)
    assert [int(model["acc2"][t]) for t in ends] == want
    obs = amaranth_trace(spec, stim)
    assert [int(obs["acc2"][t]) for t in ends] == want


@pytest.mark.slow
@pytest.mark.skipif(__import__("shutil").which("iverilog") is None, reason="needs Icarus Verilog")
def test_mta_floor_unit_in_icarus(tmp_path, capsys):
    """The emitted Verilog of a floor unit, every cycle against the cycle model in Icarus (slow tier)."""
    from psum.cli.main import main

    assert main(["sim", "a=fp8_e4m3,b=fp8_e4m3,acc=e5m6,order=mta4w8p8floor,acc2=fp16", "--cycles", "400",
                 "--build-dir", str(tmp_path)]) == 0
    assert " 0 mismatches" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# The studies' formulas, against hand-worked values and brute force
# ---------------------------------------------------------------------------------------------
def test_signed_bits_by_brute_force():
    from psum.studies.a2q import signed_bits

    for lo in range(-70, 1):
        for hi in (0, 1, 63, 64, 127, 128):
            p = next(p for p in range(1, 20) if -(1 << (p - 1)) <= lo and hi <= (1 << (p - 1)) - 1)
            assert signed_bits(lo, hi) == p


@pytest.mark.parametrize("l1, n, signed", [(1, 8, True), (127, 8, True), (3000, 8, True), (3000, 4, False), (5, 1, False)])
def test_a2q_bits_is_the_worst_case_width(l1, n, signed):
    """P_A2Q (the paper's alpha + phi(alpha) + 1) equals the width of the worst case l1 * 2**(N - signed)."""
    from psum.studies.a2q import a2q_bits, signed_bits

    worst = l1 * 2 ** (n - (1 if signed else 0))
    assert a2q_bits(l1, n, signed) == signed_bits(-worst, worst)


def test_vrr_matches_monte_carlo_of_its_model():
    """The closed form r_i (polar coordinates) against sampling the model it integrates."""
    from psum.studies.accumulation import vrr

    rng = np.random.default_rng(0)
    n, m = 64, 2
    c = 2.0 ** -(m + 1.5)
    s = rng.standard_normal((40_000, 1)) * np.sqrt(np.arange(1, n))
    p = rng.standard_normal((40_000, n - 1))
    mc = (1 + (p ** 2 * (np.abs(p) >= c * np.abs(s))).mean(axis=0).sum()) / n
    assert vrr(n, m) == pytest.approx(mc, abs=4e-3)
    assert vrr(1, 0) == 1.0 and vrr(4096, 3) < vrr(4096, 6) < vrr(4096, 12) <= 1.0


def test_predicted_minimum_grows_with_k_and_chunking_helps():
    from psum.studies.accumulation import predicted_min_mantissa

    seq = [predicted_min_mantissa(k) for k in (16, 256, 4096)]
    assert seq == sorted(seq) and seq[0] < seq[-1]
    assert predicted_min_mantissa(4096, chunk=64) < predicted_min_mantissa(4096)
    with pytest.raises(ValueError, match=r"^cutoff must be a number above 1, not 1$"):
        predicted_min_mantissa(16, cutoff=1)


def test_gemm_errors_exact_order_is_zero():
    """An mta order wide enough to be exact has no error (the reference A @ B is exact)."""
    from psum.studies.deepseek import gemm_errors

    spec = MacSpec.parse("a=fp8_e4m3,b=fp8_e4m3,acc=fp32,order=mta4w40p8")
    rng = np.random.default_rng(1)
    A = spec.a.decode(spec.a.encode(rng.standard_normal((3, 24)), saturate=True))
    B = spec.b.decode(spec.b.encode(rng.standard_normal((24, 2)), saturate=True))
    e = gemm_errors(spec, A, B)
    assert e["max_rel"] == 0 and e["fro_rel"] == 0


# ---------------------------------------------------------------------------------------------
# The studies end to end on tiny cases, and the command line
# ---------------------------------------------------------------------------------------------
def test_deepseek_tiny_run_writes_section_and_resumes(tmp_path):
    from psum.studies import run_deepseek

    kw = dict(ks=(96,), widths=(6, 14), promotions=(None, 32), sources=("random",), size=3)
    res = run_deepseek(tmp_path, progress_enabled=False, **kw)
    assert len(res["rows"]) == 2 * 2 * 2
    for name in ("deepseek.md", "deepseek.json", "deepseek.csv", "rows.jsonl", "error_vs_k_random.png",
                 "error_vs_k_random.svg", "error_vs_w_random.png"):
        assert (tmp_path / name).is_file(), name
    by = {(r["K"], r["W"], r["P"], r["trunc"]): r for r in res["rows"]}
    # fewer bits, larger error; floor drifts down (negative bias) where toward-zero does not
    assert by[(96, 6, "none", "zero")]["max_rel"] > by[(96, 14, "none", "zero")]["max_rel"]
    assert by[(96, 6, "none", "floor")]["bias_rel"] < 0
    again = run_deepseek(tmp_path, progress_enabled=False, **kw)  # resumed: the stored rows come back
    assert [r["seconds"] for r in again["rows"]] == [r["seconds"] for r in res["rows"]]


def test_report_links_study_sections(tmp_path):
    from psum.studies import section_path

    assert section_path("a2q", tmp_path) is None
    (tmp_path / "study-a2q").mkdir()
    (tmp_path / "study-a2q" / "a2q.md").write_text("# x\n")
    assert section_path("a2q", tmp_path) == tmp_path / "study-a2q" / "a2q.md"


def test_api_names():
    import psum

    from psum.studies.a2q import run_a2q
    from psum.studies.accumulation import run_accumulation_theory
    from psum.studies.deepseek import run_deepseek

    assert psum.run_deepseek is run_deepseek and psum.run_a2q is run_a2q
    assert psum.run_accumulation_theory is run_accumulation_theory


@pytest.mark.parametrize("argv, message", [
    (["study"], "psum study: error: the following arguments are required: STUDY"),
    (["study", "deepseek", "--k", "4096,x"], "psum study deepseek: error: argument --k: must be comma-separated integers between 1 and 65536, not '4096,x'"),
    (["study", "deepseek", "--k", "0"], "psum study deepseek: error: argument --k: must be comma-separated integers between 1 and 65536, not '0'"),
    (["study", "deepseek", "--w", "30"], "psum study deepseek: error: argument --w: must be comma-separated integers between 1 and 24, not '30'"),
    (["study", "deepseek", "--promotion", "100"], "psum study: error: promotion 100 must be a multiple of lanes=32"),
    (["study", "deepseek", "--promotion", "never"],
     "psum study deepseek: error: argument --promotion: must be comma-separated integers >= 1 or none, "
     "not 'never'"),
    (["study", "deepseek", "--trunc", "up"], "psum study deepseek: error: argument --trunc: must list zero and/or floor, not 'up'"),
    (["study", "deepseek", "--source", "file"], "psum study deepseek: error: argument --source: must list random and/or layer, not 'file'"),
    (["study", "deepseek", "--size", "0"], "psum study deepseek: error: argument --size: must be an integer between 1 and 4096, not 0"),
    (["study", "deepseek", "--lanes", "0"], "psum study deepseek: error: argument --lanes: must be an integer between 1 and 1024, not 0"),
    (["study", "deepseek", "--source", "layer", "--model", "nofile.py:build"],
     "psum study: error: --model nofile.py:build: file nofile.py does not exist"),
    (["study", "a2q", "--n-images", "0"], "psum study a2q: error: argument --n-images: must be a positive integer, not 0"),
    (["study", "a2q", "--tol", "-1"], "psum study a2q: error: argument --tol: must be a finite number of at least 0, not -1"),
    (["study", "a2q", "--layer", "fc9"],
     "psum study: error: layer 'fc9' selects none of the Conv2d/Linear layers: conv1, conv2, fc1, fc2, fc3"),
    (["study", "accumulation-theory", "--chunk", "0"], "psum study accumulation-theory: error: argument --chunk: must be a positive integer, not 0"),
    (["study", "accumulation-theory", "--cutoff", "1"], "psum study accumulation-theory: error: argument --cutoff: must be a finite number greater than 1, not 1"),
    (["study", "accumulation-theory", "--tol", "-2"],
     "psum study accumulation-theory: error: argument --tol: must be a finite number of at least 0, not -2"),
    (["study", "accumulation-theory", "--model", "nofile.py:build"],
     "psum study: error: --model nofile.py:build: file nofile.py does not exist"),
])
def test_study_bad_input_is_one_line(argv, message, capsys, tmp_path):
    from psum.cli.main import main

    try:
        rc = main([*argv, "--out-dir", str(tmp_path)] if len(argv) > 1 else argv)
    except SystemExit as exc:
        rc = exc.code
    assert rc == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(message), err
    assert not any(tmp_path.iterdir())  # refused before any work


@pytest.mark.slow
def test_study_deepseek_cli_tiny(tmp_path, capsys):
    from psum.cli.main import main

    assert main(["study", "deepseek", "--k", "4096", "--w", "14", "--promotion", "none,128", "--source", "random",
                 "--size", "1", "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "random: closest to ~2 %: trunc=" in out and "section: " in out
