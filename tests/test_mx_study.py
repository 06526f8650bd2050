"""The MX study API (psum.reports.mx): bad input before any evaluation, the per-model report
section, reading a study folder back. The searches themselves run in the slow tier
(``.venv/bin/python -m pytest -q -m slow tests/test_mx_study.py``) and in results/study-mx/."""

from __future__ import annotations

import json

import pytest

from psum.reports.mx import mx_min_acc, mx_study, read_mx_study


@pytest.mark.parametrize("kw, message", [
    (dict(acc_kind="int"), "acc_kind must be 'float' or 'fixed', not 'int'"),
    (dict(relative_to="fp16"), "relative_to must be 'fp32' or 'operands', not 'fp16'"),
    (dict(lo=5, hi=2), "search range must be integers 0 <= lo <= hi, not 5..2"),
    (dict(acc_kind="fixed", hi=80), "format 'q32.80': fixed-point fraction bits must be an integer between 0 and 63, not 80"),
    (dict(operands="fp8_e4m3"), None),
])
def test_mx_min_acc_bad_input_is_one_line(kw, message):
    with pytest.raises(ValueError) as exc:
        mx_min_acc("lenet5", **kw)
    if message is not None:
        assert str(exc.value) == message
    assert "\n" not in str(exc.value)


def test_mx_study_bad_kinds():
    with pytest.raises(ValueError, match=r"^kinds must list float and/or fixed, not 'float,int'$"):
        mx_study("lenet5", operands="mxfp4", kinds=("float", "int"))


def test_read_study_and_render_per_model(tmp_path):
    from psum.reports.document import Document
    from psum.reports.mx import mx_section
    from psum.reports.report import ReportConfig

    rows = [dict(model="vit", operands="mxfp4", acc_kind="float", min_acc="e8m2", accuracy=96.0,
                 baseline_accuracy=99.0, reference_accuracy=96.0, relative_to="operands", n_images=50,
                 evaluated={"2": 96.0, "5": 96.0}, spec="a=mxfp4,b=mxfp4,acc=e8m2"),
            dict(model="resnet18", operands="nvfp4", acc_kind="fixed", min_acc="q32.0", accuracy=90.0,
                 baseline_accuracy=98.0, reference_accuracy=90.0, relative_to="operands", n_images=50,
                 evaluated={"0": 90.0, "8": 90.0}, spec="a=nvfp4,b=nvfp4,acc=q32.0,overflow=sat")]
    (tmp_path / "vit.jsonl").write_text(json.dumps(dict(rows[0], min_acc="e8m3")) + "\n" + json.dumps(rows[0]) + "\n")
    (tmp_path / "resnet18.jsonl").write_text(json.dumps(rows[1]) + "\n")
    (tmp_path / "vit-rows.jsonl").write_text("{}\n")  # the evaluation cache is not a study row
    got = read_mx_study(tmp_path)
    assert sorted(r["model"] for r in got) == ["resnet18", "vit"]
    assert [r["min_acc"] for r in got if r["model"] == "vit"] == ["e8m2"]  # the last row wins
    doc = Document("t")
    mx_section(ReportConfig(), tmp_path, {"mx": got}, doc)
    md = doc.markdown()
    assert "**resnet18**, 50 test images" in md and "**vit**" in md and "q32.0" in md and "2: 96.0, 5: 96.0" in md
    assert "the operands with fp32 acc" in md


@pytest.mark.slow
def test_mx_study_fixed_search_runs_lenet5(tmp_path):
    (row,) = mx_study("lenet5", operands="nvfp4", kinds=("fixed",), limit=20, tol=5.0, fixed_range=(0, 2),
                      out_dir=tmp_path)
    assert row["acc_kind"] == "fixed" and row["min_acc"].startswith("q32.") and row["evaluated"]
    assert read_mx_study(tmp_path)[0]["operands"] == "nvfp4"
