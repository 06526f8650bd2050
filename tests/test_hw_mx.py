"""The MX / NVFP4 block dot-product unit (psum.hw.mx) against golden block_dot.

Fast tier: ports, one-line refusals, one small Amaranth-simulator run (directed + random + digits
blocks), the check catching a wrong code, one short Icarus run through ``psum sim``.
Slow tier (``.venv/bin/python -m pytest -q -m slow tests/test_hw_mx.py``): full block sizes
(mxfp4 k=32, nvfp4 k=16, mxfp8_e4m3, mxfp6, mxint8) in the Amaranth simulator with every
rounding mode, saturation and the pipeline cuts, and Icarus runs of the three issue specs.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import psum.hw as hw
from psum.cli.main import main
from psum.golden import MacSpec
from psum.golden.block_dot import block_dot
from psum.golden.reference import block_dot_ref
from psum.hw.verify import amaranth_trace, check_trace, make_stimulus
from psum.hw.verify.model import block_inputs, expected_outputs
from psum.hw.verify.streams import conv_streams_from_digits
from psum.hw.verify.stimulus import input_ports

icarus = pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs Icarus Verilog")

SMALL = "a=mxfp4_k4,b=mxfp4_k4,acc=e8m5"


def test_ports_are_one_block_and_two_scales():
    ports = input_ports("a=nvfp4,b=nvfp4,acc=fp32")
    assert [k for k in ports if k[0] == "a" and k[1:].isdigit()] == [f"a{i}" for i in range(16)]
    assert ports["a0"] == ports["b15"] == 4 and ports["sa"] == ports["sb"] == 8 and ports["init"] == 32
    assert "a" not in ports and "flush" not in ports
    assert hw.check("a=mxfp4,b=mxfp4,acc=e8m5")[1].lanes == 32


@pytest.mark.parametrize("spec, impl, message", [
    ("a=mxfp4,b=mxfp4,acc=e8m5,bsum=e8m5", None,
     "no RTL unit for bsum=e8m5 (block sums rounded into an intermediate format); MxMac sums each block "
     "exactly (bsum unset)"),
    ("a=mxfp4,b=mxfp4,acc=q8.8,round=sr", None,
     "MxMac does not implement round=sr with block-scaled operands (not built)"),
    ("a=mxfp4,b=mxfp4,acc=e8m5,round=sr", None,
     "MxMac does not implement round=sr with block-scaled operands (not built)"),
    ("a=mxfp4,b=mxfp4,acc=e8m5,order=chunk4", None, "MxMac builds order=seq, not order=chunk4"),
    ("a=mxfp4,b=mxfp4,acc=e8m5", "lanes=16",
     "impl lanes=16 does not match the block size k=32 of mxfp4: the block unit takes one block (32 element "
     "pairs) per cycle"),
    ("a=mxfp4,b=mxfp4,acc=binary8p3", None, "no RTL unit for IEEE P3109 formats yet; they run in the golden model"),
])
def test_refusals_are_one_line(spec, impl, message):
    with pytest.raises(ValueError) as exc:
        hw.check(spec, impl)
    assert str(exc.value) == message


def test_element_units_refuse_block_specs():
    from psum.hw.float_mac import FloatMac
    from psum.hw.mx import MxMac

    with pytest.raises(ValueError, match=r"^FloatMac does not take block-scaled operands \(mxfp4\)$"):
        FloatMac("a=mxfp4,b=mxfp4,acc=e8m5")
    with pytest.raises(ValueError, match=r"^MxMac needs block-scaled operands, not a=fp8_e4m3$"):
        MxMac("a=fp8_e4m3,b=fp8_e4m3,acc=e8m5")


def test_sim_cli_refuses_exhaustive_for_blocks(capsys):
    assert main(["sim", SMALL, "--exhaustive"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        "psum sim: error: exhaustive mode does not apply to block-scaled operands (k element pairs per cycle); "
        "their stimulus is directed, recorded and random blocks"), err


def _stim(spec, cycles, seed=0, n_streams=6):
    streams = conv_streams_from_digits(spec, n_streams) if n_streams else None
    return make_stimulus(spec, cycles=cycles, seed=seed, streams=streams)


def test_stimulus_reaches_every_class():
    """The directed blocks drive NaN, inf, zero results and rounding ties (not only finite sums)."""
    spec = MacSpec.parse(SMALL)
    st = _stim(spec, 300, n_streams=0)
    v = spec.acc.decode(expected_outputs(spec, st)["acc"])
    assert np.isnan(v).sum() > 20 and np.isinf(v).sum() > 5 and (v == 0).sum() > 20
    assert st["sa"].max() == 0xff and st["sa"].min() == 0


def test_model_is_golden_block_dot_and_the_fraction_reference():
    """The cycle model's block step equals block_dot and the Fraction block_dot_ref, row by row."""
    spec = MacSpec.parse("a=nvfp4_k4,b=nvfp4_k4,acc=e5m4,round=rtz")
    st = _stim(spec, 120, seed=2, n_streams=0)
    en = np.flatnonzero(st["en"].astype(bool) & ~st["load"].astype(bool) & ~st["rst"].astype(bool))[:60]
    sa, ea, sb, eb = block_inputs(spec, st, en)
    acc = st["init"][en]
    got = block_dot(spec, acc, sa, ea, sb, eb)
    for i in range(len(en)):
        assert int(got[i]) == int(block_dot_ref(spec, int(acc[i]), sa[i], ea[i], sb[i], eb[i]))


def test_amaranth_bit_exact_small_block():
    st = _stim(SMALL, 700)
    bad, first, _ = check_trace(SMALL, st, amaranth_trace(SMALL, st))
    assert bad == 0, first


def test_check_catches_a_wrong_code():
    st = _stim(SMALL, 200, n_streams=0)
    exp = expected_outputs(SMALL, st)["acc"].copy()
    t = int(np.flatnonzero(st["en"])[-1])
    exp[t] ^= np.uint64(1)
    bad, first, _ = check_trace(SMALL, st, exp)
    assert bad >= 1 and first == t


GRID = "a=mxfp4_k4,b=mxfp4_k4,acc=int10,overflow=sat,round=rtz"


def test_stimulus_reaches_grid_classes():
    """For integer / fixed-point registers the block stimulus drives NaN terms, rounding ties onto
    the grid, inexact sums and overflow (golden only: the exact acc + T in lsb units)."""
    from psum.golden.block_dot import block_terms, grid_format

    for text in (GRID, "a=nvfp4_k4,b=nvfp4_k4,acc=q8.4,round=rdn"):
        spec = MacSpec.parse(text)
        st = _stim(spec, 500)
        exp = expected_outputs(spec, st)["acc"]
        en = np.flatnonzero(st["en"].astype(bool) & ~st["load"].astype(bool) & ~st["rst"].astype(bool))
        en = en[en > 0]
        sa, ea, sb, eb = block_inputs(spec, st, en)
        T = block_terms(spec, sa, ea, sb, eb).reshape(-1)
        fmt = grid_format(spec.acc)
        with np.errstate(all="ignore"):
            x = (fmt.decode(exp[en - 1]) + T) * 2.0 ** fmt.frac_bits  # exact: few bits here
        fin = np.isfinite(x)
        frac = np.abs(x - np.trunc(x))
        assert np.isnan(T).sum() > 10 and (T == 0).sum() > 5
        assert (fin & (frac == 0.5)).sum() > 5 and (fin & (frac != 0)).sum() > 50
        assert (fin & ((x > fmt.max_int + 1) | (x < fmt.min_int - 1))).sum() > 10


def test_grid_register_pipeline_cuts():
    from psum.hw.mx import MxMac

    assert MxMac.cuts_for(MacSpec.parse(GRID)) == ("the block term", "its alignment to the register's grid")
    assert MxMac.cuts_for(MacSpec.parse(SMALL)) == ("the block term", "its normalisation")


def test_amaranth_bit_exact_int_register_small_block():
    st = _stim(GRID, 300, n_streams=2)
    bad, first, _ = check_trace(GRID, st, amaranth_trace(GRID, st))
    assert bad == 0, first


def _e5m2_stimulus(spec, cycles, seed=3):
    """Random e5m2 blocks whose exact sums fit golden's 53 bits: finite non-zero element codes
    moved into the binades 2**-6 .. 2**7 (products 2**-16 .. 2**16, sums under 2**21), NaN / inf
    codes, zeros and the edge scales kept; every 50th block all largest elements (57344)."""
    st = make_stimulus(spec, cycles=cycles, seed=seed, directed=False)
    for key in st:
        if key[0] in "ab" and key[1:].isdigit():
            c = st[key]
            e = (c >> np.uint64(2)) & np.uint64(31)
            keep = (e == 31) | ((c & np.uint64(0x7F)) == 0)
            moved = (c & ~np.uint64(0x7C)) | (np.clip(e, 9, 22) << np.uint64(2))
            c = np.where(keep, c, moved)
            c[::50] = 0x7B  # 57344, the largest finite e5m2
            st[key] = c.astype(np.uint64)
    return st


@pytest.mark.slow
@pytest.mark.parametrize("impl", [None, "pipeline=2"])
def test_amaranth_mxfp8_e5m2_k32(impl):
    spec = "a=mxfp8_e5m2,b=mxfp8_e5m2,acc=fp32"
    st = _e5m2_stimulus(spec, 600)
    bad, first, _ = check_trace(spec, st, amaranth_trace(spec, st, impl), impl)
    assert bad == 0, first


@icarus
@pytest.mark.slow
def test_icarus_mxfp8_e5m2_k32(tmp_path):
    from psum.hw.verify.runner import simulate

    spec = "a=mxfp8_e5m2,b=mxfp8_e5m2,acc=fp32"
    res = simulate(spec, stimulus=_e5m2_stimulus(spec, 1500), build_dir=tmp_path, simulator="icarus")
    assert res.ok and res.mismatches == 0


@icarus
def test_icarus_short_run_through_psum_sim(tmp_path, capsys):
    assert main(["sim", SMALL, "--cycles", "600", "--simulator", "icarus", "--build-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert ", 0 mismatches," in out and "icarus" in out


# ---------------------------------------------------------------------------------------------
# Slow tier
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("spec, impl", [
    ("a=mxfp4,b=mxfp4,acc=e8m5", None),
    ("a=nvfp4,b=nvfp4,acc=e8m5", None),
    ("a=mxfp8_e4m3_k8,b=mxfp8_e4m3_k8,acc=fp32", None),
    ("a=mxfp6_e3m2_k8,b=mxfp6_e3m2_k8,acc=e5m6,round=rna", None),
    ("a=mxfp6_e2m3_k8,b=mxfp6_e2m3_k8,acc=fp16,overflow=sat,round=rup", None),
    ("a=mxint8_k8,b=mxint8_k8,acc=e6m7,round=rdn", None),
    ("a=mxfp4_k8,b=mxfp4_k8,acc=e4m3fn,round=rod", None),
    ("a=mxfp4_k8,b=mxfp4_k8,acc=e8m5", "pipeline=1"),
    ("a=nvfp4_k4,b=nvfp4_k4,acc=e8m5_ftz,round=rtz", "pipeline=2"),
    # integer and fixed-point registers (the grid q<W>.0 / q<I>.<F>)
    ("a=mxfp4,b=mxfp4,acc=int16", None),
    ("a=mxfp4_k4,b=mxfp4_k4,acc=q8.4", None),
    ("a=nvfp4_k8,b=nvfp4_k8,acc=int12,round=rdn", "pipeline=2"),
    ("a=mxint8_k8,b=mxint8_k8,acc=q6.6,round=rna", "pipeline=1"),
    ("a=mxfp8_e4m3_k8,b=mxfp8_e4m3_k8,acc=int16,overflow=sat,round=rup", None),
    ("a=mxfp6_e2m3_k8,b=mxfp6_e2m3_k8,acc=q4.8,round=rod", None),
])
def test_amaranth_bit_exact_full(spec, impl):
    st = _stim(spec, 1500, seed=5, n_streams=16)
    bad, first, _ = check_trace(spec, st, amaranth_trace(spec, st, impl), impl)
    assert bad == 0, first


@icarus
@pytest.mark.slow
@pytest.mark.parametrize("spec", ["a=mxfp4,b=mxfp4,acc=e8m5", "a=nvfp4,b=nvfp4,acc=fp32",
                                  "a=mxfp8_e4m3,b=mxfp8_e4m3,acc=fp32", "a=mxfp4,b=mxfp4,acc=int16",
                                  "a=nvfp4,b=nvfp4,acc=q24.4,overflow=sat"])
def test_icarus_issue_specs(spec, tmp_path, capsys):
    assert main(["sim", spec, "--cycles", "3000", "--simulator", "icarus", "--build-dir", str(tmp_path)]) == 0
    assert ", 0 mismatches," in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# The report's MX section (psum.reports.mx)
# ---------------------------------------------------------------------------------------------
def test_report_config_mx_operands():
    from psum.reports.mx import MX_OPERANDS
    from psum.reports.report import ReportConfig

    assert ReportConfig(mx="mxfp4,nvfp4").mx == ("mxfp4", "nvfp4")
    assert ReportConfig(mx="all").mx == MX_OPERANDS and ReportConfig().mx == ()
    with pytest.raises(ValueError, match=r"^unknown block format 'fp8_e4m3'; use a block format: "):
        ReportConfig(mx="fp8_e4m3")


def test_mx_section_renders_stored_rows(tmp_path):
    """A rerender reads data["mx"] and evaluates nothing; no rows and no --mx: no section."""
    from psum.reports.document import Document
    from psum.reports.mx import mx_section
    from psum.reports.report import ReportConfig

    doc = Document("t")
    mx_section(ReportConfig(), tmp_path, {}, doc)
    assert doc.blocks == []
    rows = [dict(operands="mxfp4", min_acc="e8m5", accuracy=98.0, baseline_accuracy=99.0,
                 evaluated={"4": 97.5, "5": 98.0}, spec="a=mxfp4,b=mxfp4,acc=e8m5"),
            dict(operands="nvfp4", min_acc=None, accuracy=None, baseline_accuracy=99.0, evaluated={"8": 90.0},
                 spec=None)]
    mx_section(ReportConfig(), tmp_path, {"mx": rows}, doc)
    md = doc.markdown()
    assert "Block-scaled operands (OCP MX, NVFP4)" in md and "e8m5" in md and "4: 97.5, 5: 98.0" in md
    assert "none in the range" in md


@pytest.mark.slow
def test_mx_min_acc_runs_lenet5(tmp_path):
    from psum.reports.mx import mx_min_acc

    (row,) = mx_min_acc(operands="nvfp4", limit=20, lo=6, hi=8, out=tmp_path / "mx.jsonl")
    assert row["operands"] == "nvfp4" and row["evaluated"] and row["baseline_accuracy"] > 50


@pytest.mark.slow
def test_synthesize_many_mixes_block_and_sequential_units(tmp_path):
    """Each spec gets its own resolved impl (lanes): a block unit beside a sequential MAC."""
    from psum.flows.synth import synthesize_many

    seq, blk = synthesize_many(["a=fp4_e2m1,b=fp4_e2m1,acc=e5m3", "a=mxfp4_k2,b=mxfp4_k2,acc=e5m3"], jobs=1,
                               n_outputs=2, cache_dir=tmp_path)
    assert seq.macs_per_cycle == 1 and blk.macs_per_cycle == 2 and blk.ge > seq.ge > 0
    assert blk.impl == "pipeline=0,lanes=2"
