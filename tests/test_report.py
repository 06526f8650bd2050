"""``psum report`` end to end on a reduced study: real emulation, cocotb check, Yosys synthesis."""

import dataclasses
import json
import os
import re
from pathlib import Path

import pytest

from psum.cli.main import main
from psum.keys import unify_keys
from psum.reports.plots import pareto_front
from psum.reports.report import ReportConfig, build_report, fake2true_section

from test_paths import git_status

# Small iso-throughput set (integer and fixed-point units synthesise in seconds; the float order
# units of the default set take minutes on a loaded machine): q8.8 needs pipeline=2 at 2 ns. The
# fixed-point design is taken as given here (search=False): its own search costs 6-8 network
# evaluations (tests/test_iso.py checks the search rule; the slow test below runs it).
ISO_SMALL = (("int wrap", "int-wrap", ""), ("int sat", "int-sat", ""), ("fixed q8.8", "q8.8", "", False))
TINY_LIB = Path(__file__).resolve().parent / "data" / "tiny_nldm.lib"


def test_pareto_front_keeps_the_undominated_points():
    pts = [(10, 90.0), (5, 80.0), (7, 95.0), (12, 99.0), (6, 70.0), (12, 98.0)]
    assert pareto_front(pts) == [1, 2, 3]


@pytest.fixture(scope="module")
def small_report(tmp_path_factory):
    """The reduced study run from an empty working directory with the default output folder, a
    ``psum fake2true`` section already beside it (``./fake2true/fake2true.md``)."""
    base = tmp_path_factory.mktemp("results")
    (base / "fake2true").mkdir()
    (base / "fake2true" / "fake2true.md").write_text("# Fake-quantised vs true-integer conversion\n")
    cfg = ReportConfig(float_exps=(4,), max_man=4, int_widths=(16, 20), limit=40, per_layer=False,
                       sim_cycles=200, stats_images=8, power_outputs=2, iso_macs=8, iso_clock_ns=2.0,
                       iso_designs=ISO_SMALL, breakdown=False)  # the breakdown: liberty_report below
    before = git_status()
    cwd = os.getcwd()
    saved = os.environ.pop("PSUM_RESULTS_DIR", None)
    os.chdir(base)
    try:
        data = build_report(cfg, quiet=True, progress_enabled=False)
    finally:
        os.chdir(cwd)
        if saved is not None:
            os.environ["PSUM_RESULTS_DIR"] = saved
    assert git_status() == before, "psum report wrote into the checkout"
    return base / "lenet5-digits", data


def test_report_writes_into_the_working_directory(small_report):
    out, _ = small_report
    assert sorted(p.name for p in out.parent.iterdir()) == ["fake2true", "lenet5-digits"]
    assert not (out.parent / "checkpoints").exists()  # the shipped checkpoint was read, nothing trained


def test_report_links_the_fake2true_section(small_report, tmp_path):
    out, _ = small_report
    md = (out / "report.md").read_text()
    assert "## Fake-quantised vs true-integer conversion" in md
    assert "[../fake2true/fake2true.md](../fake2true/fake2true.md)" in md
    assert '<a href="../fake2true/fake2true.md">' in (out / "index.html").read_text()
    assert fake2true_section(out) == out.parent / "fake2true" / "fake2true.md"
    assert fake2true_section(tmp_path / "lenet5-digits") is None


def test_report_writes_every_artifact(small_report):
    out, data = small_report
    for name in ("index.html", "report.md", "data.json", "sweep.csv", "hardware.csv", "sweep.jsonl", "sim.jsonl",
                 "accuracy_vs_bits.png", "accuracy_vs_bits.svg", "area_vs_accuracy.png", "energy_vs_accuracy.svg"):
        assert (out / name).stat().st_size > 0, name
    html = (out / "index.html").read_text()
    assert "data:image/png;base64," in html and "Headline" in html
    assert json.loads((out / "data.json").read_text())["baseline_accuracy"] == data["baseline_accuracy"]


def test_report_units_are_checked_and_synthesised(small_report):
    _, data = small_report
    assert data["hardware"], "no unit reached the cost plots"
    for r in data["hardware"]:
        assert r["ge"] > 0 and r["energy_per_mac_fj"] > 0 and r["delay_ns"] > 0
        assert r["sim_cycles"] > 0  # zero mismatches, else build_report raises
    fams = {r["design"] for r in data["headline"]}
    assert fams & {"int-wrap", "int-sat"}


def test_report_rerun_reuses_results(small_report):
    out, data = small_report
    cfg = ReportConfig(float_exps=(4,), max_man=4, int_widths=(16, 20), limit=40, per_layer=False,
                       sim_cycles=200, stats_images=8, power_outputs=2, iso_macs=8, iso_clock_ns=2.0,
                       iso_designs=ISO_SMALL, breakdown=False)
    lines = {n: (out / n).read_text().count("\n") for n in ("sweep.jsonl", "sim.jsonl")}
    again = build_report(cfg, out_dir=out, quiet=True, progress_enabled=False)
    assert again["headline"] == data["headline"] and again["conclusion"] == data["conclusion"]
    # nothing recomputed: no new sweep or simulation rows, synthesis served from its cache
    assert {n: (out / n).read_text().count("\n") for n in lines} == lines


def test_report_bad_model_is_one_line_error(capsys):
    assert main(["report", "--model", "vgg", "--out", "/tmp/psum-none"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("psum report: error: model must be one of lenet5, alexnet, resnet18, "
                       "resnet18-imagenet, vit, FILE.py:FUNCTION or package.module:FUNCTION, not 'vgg'")


def test_report_data_keeps_the_committed_shape(small_report):
    """The stages return records, but ``data.json`` keeps the shape of the committed example."""
    _, data = small_report
    committed = Path(__file__).resolve().parent.parent / "results" / "lenet5-digits" / "data.json"
    if not committed.is_file():
        pytest.skip("no committed example report")
    ref = json.loads(committed.read_text())
    # keys added since (ratios apart from the headline, the conclusion, the reduced-run banner)
    # come after the committed ones; rows written under old key names read the same (psum.keys)
    optional = {"mx"}  # sections an option adds (the committed report ran with --mx)
    assert [k for k in data if k in ref] == [k for k in ref if k not in optional or k in data]
    assert set(data) - set(ref) <= {"ratios", "conclusion", "reduced", "out_dir", "iso", "glitch", "library",
                                    "breakdown"}
    newer = ("iso_s", "breakdown_s")
    assert [k for k in data["timings"] if k not in newer] == [k for k in ref["timings"] if k not in newer]
    assert set(data["sweep"][0]) == set(ref["sweep"][0])
    assert set(data["hardware"][0]) == set(unify_keys(ref["hardware"][0]))
    assert {r["family"] for r in data["sweep"]} == {"float", "int-wrap", "int-sat"}


def test_report_reads_first_the_conclusion_and_the_banner(small_report):
    """What a reader sees first: the reduced-run banner, the generated conclusion, the contents."""
    out, data = small_report
    md = (out / "report.md").read_text().splitlines()
    assert md[2].startswith("> **Reduced run: accuracy on the first 40 test images only; 4 float and 4 integer")
    assert md[4].startswith("**Conclusion.** At 8 MACs per cycle and a 2 ns clock")
    assert "Per MAC: within 1 point(s) of the float32 baseline" in md[4]
    assert md[6].startswith("[Headline: every design family at 8 MACs per cycle, 2 ns clock]"
                            "(#headline-every-design-family-at-8-macs-per-cycle-2-ns-clock) · "
                            "[Per MAC: cheapest float vs cheapest integer accumulator within tolerance]")
    assert data["conclusion"] in "\n".join(md) and data["reduced"] in "\n".join(md)
    for stem in ("accuracy_vs_bits", "area_vs_accuracy", "energy_vs_accuracy", "area_delay_vs_accuracy",
                 "delay_vs_bits"):
        assert (out / f"{stem}.pdf").read_bytes().startswith(b"%PDF"), stem
        assert f"({stem}.png)" in "\n".join(md)


def test_report_tables_align_and_format_per_column(small_report):
    out, data = small_report
    md = (out / "report.md").read_text()
    head = md[md.index("| design | accumulator | bits |"):].splitlines()
    assert head[1] == "|:---|:---|---:|---:|---:|---:|---:|"  # text left, numbers right
    cells = [row.split(" | ") for row in head[2:2 + len(data["headline"])]]
    assert all(re.fullmatch(r"[0-9,]+", c[4]) for c in cells)  # area: whole GE, thousands separated
    assert all(re.fullmatch(r"[0-9]+\.[0-9]{2}", c[6].rstrip(" |")) for c in cells)  # delay: two decimals
    html = (out / "index.html").read_text()
    assert '<td class="num">' in html and "<td>float</td>" in html  # numbers right-aligned, text not


def test_fresh_report_reads_in_chromium(small_report, tmp_path):
    """The report just written, in headless Chromium: every image loads, no section is empty."""
    from test_browser import assert_report_reads, check_in_browser

    out, _ = small_report
    assert_report_reads(check_in_browser(out / "index.html", tmp_path))


def test_report_ratios_have_their_own_table(small_report):
    _, data = small_report
    assert all(r["spec"] != "ratio" for r in data["headline"])
    if data["ratios"]:
        r = {x["quantity"]: x for x in data["ratios"]}
        assert r["area"]["unit"] == "GE" and r["area"]["ratio"] == pytest.approx(r["area"]["float"] / r["area"]["integer"])


@pytest.mark.slow
def test_report_rerender_from_old_data(tmp_path):
    """A data.json written before the unified keys (energy_fj, a ratio row in the headline) renders."""
    from psum.reports.report import rerender

    committed = Path(__file__).resolve().parent.parent / "results" / "lenet5-digits" / "data.json"
    if not committed.is_file():
        pytest.skip("no committed example report")
    old = json.loads(committed.read_text())
    for r in old["hardware"] + old["headline"]:
        if "energy_per_mac_fj" in r:
            r["energy_fj"] = r.pop("energy_per_mac_fj")
    src = tmp_path / "old" / "data.json"
    src.parent.mkdir()
    src.write_text(json.dumps(old))
    data = rerender(src, tmp_path / "new")
    assert all("energy_per_mac_fj" in r for r in data["hardware"]) and data["conclusion"].startswith(("Within", "At "))  # iso verdict first since 13bfa91
    assert (tmp_path / "new" / "index.html").stat().st_size > 0


def test_report_rerender_refuses_other_json(tmp_path):
    from psum.reports.report import rerender

    (tmp_path / "data.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="is not a psum report's data.json$"):
        rerender(tmp_path)


@pytest.mark.slow
def test_report_cli_rerender_json(tmp_path, capsys):
    """``psum report --rerender DIR --json`` on a copy of the committed report."""
    import shutil

    committed = Path(__file__).resolve().parent.parent / "results" / "lenet5-digits"
    if not (committed / "data.json").is_file():
        pytest.skip("no committed example report")
    shutil.copy(committed / "data.json", tmp_path / "data.json")
    assert main(["report", "--rerender", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["conclusion"].startswith(("Within", "At ")) and out["out_dir"] == str(tmp_path)
    assert "out_dir" not in json.loads((tmp_path / "data.json").read_text())


def test_report_headline_is_the_iso_throughput_comparison(small_report):
    out, data = small_report
    iso = data["iso"]
    assert (iso["macs_per_cycle"], iso["clock_ns"]) == (8, 2.0)
    rows = {r["family"]: r for r in iso["rows"]}
    assert set(rows) == {"int wrap", "int sat", "fixed q8.8"}
    for r in rows.values():
        assert r["met_clock"] and r["slack_ns"] >= 0 and r["sim_cycles"] > 0  # checked in Icarus
        # sustained rate: one load cycle per dot product (K >= 25 in LeNet5), so 8 MACs/cycle need 9 units
        assert 0.9 < r["unit_macs"] < 1 and r["copies"] == 9 and r["ge"] == pytest.approx(9 * r["unit_ge"])
    assert rows["fixed q8.8"]["impl"].startswith("pipeline=2")  # pipelined to meet the clock
    v = iso["verdict"]
    assert v["float"]["family"] == "fixed q8.8" and v["int"]["family"] in ("int wrap", "int sat")
    assert data["conclusion"].startswith("At 8 MACs per cycle and a 2 ns clock (500 MHz), the cheapest float-product")
    md = (out / "report.md").read_text()
    assert md.index("## Headline: every design family at 8 MACs per cycle, 2 ns clock") < md.index("## Per MAC:")
    assert (out / "iso_throughput.png").stat().st_size > 0 and (out / "iso.csv").stat().st_size > 0


def test_report_states_the_glitch_share_of_its_headline_units(small_report):
    out, data = small_report
    assert {g["design"] for g in data["glitch"]} == {r["design"] for r in data["headline"]}
    for g in data["glitch"]:
        assert g["timed_fj_per_mac"] >= g["zero_delay_fj_per_mac"] > 0 and 0 <= g["glitch_share"] < 1
    assert "Glitches (timed gate simulation with psum45 cell delays" in (out / "report.md").read_text()


def test_report_names_its_library(small_report):
    out, data = small_report
    assert data["library"]["kind"] == "psum45" and len(data["library"]["digest"]) == 16
    md = (out / "report.md").read_text()
    assert "synthesised with Yosys+ABC onto psum45" in md
    # no --clock-ns: no clock columns; breakdown=False: no section
    assert "slack (ns)" not in md.split("## Area, energy and delay vs accuracy")[1]
    assert data["breakdown"] == [] and "## Where area, delay and energy go" not in md


@pytest.fixture(scope="module")
def liberty_report(small_report, tmp_path_factory):
    """The small report again on tests/data/tiny_nldm.lib with a 2 ns clock: its network rows and
    RTL verdicts are copied from the psum45 report (same RTL), so only the synthesis, the glitch
    simulation and the breakdown run again, onto the Liberty file."""
    import shutil

    src, _ = small_report
    out = tmp_path_factory.mktemp("liberty") / "lenet5-digits"
    out.mkdir()
    for name in ("sweep.jsonl", "sim.jsonl"):
        shutil.copy(src / name, out / name)
    before = (out / "sim.jsonl").read_text().splitlines()
    cfg = ReportConfig(float_exps=(4,), max_man=4, int_widths=(16, 20), limit=40, per_layer=False,
                       sim_cycles=200, stats_images=8, power_outputs=2, iso_macs=8, iso_clock_ns=2.0,
                       iso_designs=ISO_SMALL[1:2], liberty=str(TINY_LIB), clock_ns=2.0)
    data = build_report(cfg, out_dir=out, quiet=True, progress_enabled=False)
    # The per-MAC units' verdicts are reused (same RTL); only an iso unit that the slower cells
    # push to a deeper pipeline (other RTL) is simulated anew.
    new = [json.loads(line) for line in (out / "sim.jsonl").read_text().splitlines()[len(before):]]
    assert all(r["layer"] == "random" and r["impl"] != "pipeline=0" and r["mismatches"] == 0 for r in new)
    return out, data


def test_liberty_report_computes_every_silicon_figure_on_the_file(liberty_report, small_report):
    out, data = liberty_report
    _, ref = small_report
    from psum.flows.liberty import read_liberty

    lib = read_liberty(TINY_LIB)
    assert data["library"] == dict(kind="liberty", name="tiny_nldm", file="tiny_nldm.lib", digest=lib.digest,
                                   ge_area=0.8, nand2=True, delay=data["library"]["delay"],
                                   power=data["library"]["power"])
    assert data["config"]["liberty"] == str(TINY_LIB) and data["config"]["clock_ns"] == 2.0
    for r in data["hardware"]:
        # area in the file's unit and as GE of its NAND2 (0.8 units); leakage from the file
        assert r["ge"] == pytest.approx(r["area"] / 0.8, rel=1e-3) and r["leakage_nw"] > 0
        # at the 2 ns clock: slack, fastest clock, power with the leakage
        assert r["slack_ns"] == pytest.approx(2.0 - r["delay_ns"], abs=1e-3)
        assert r["power_uw"] > r["leakage_nw"] * 1e-3 and r["met_clock"] == (r["slack_ns"] >= 0)
    # different cells, different figures: the same units, not psum45's numbers
    assert [r["spec"] for r in data["hardware"]] == [r["spec"] for r in ref["hardware"]]
    assert [r["ge"] for r in data["hardware"]] != [r["ge"] for r in ref["hardware"]]
    # the breakdown section: the headline units by stage, on the file
    assert {b["design"] for b in data["breakdown"]} == {r["design"] for r in data["headline"]}
    for b in data["breakdown"]:
        assert b["library"] == f"tiny_nldm:{lib.digest}" and any("leakage_nw" in st for st in b["stages"])
        assert b["ge"] == pytest.approx(sum(st["ge"] for st in b["stages"]), rel=1e-3)
        assert b["delay_ns"] == pytest.approx(sum(p["delay_ns"] for p in b["path"]), abs=1e-3)
    assert "## Where area, delay and energy go: the headline units by datapath stage" in (out / "report.md").read_text()
    assert data["glitch"] and all(g["timed_fj_per_mac"] >= g["zero_delay_fj_per_mac"] > 0 for g in data["glitch"])
    for r in data["iso"]["rows"]:  # replicated area in GE and in the file's unit
        assert r["ge"] == pytest.approx(r["area"] / 0.8, rel=1e-3) and r["copies"] * r["unit_ge"] == r["ge"]
    md = (out / "report.md").read_text()
    assert f"onto the Liberty library tiny_nldm (`tiny_nldm.lib`, sha256 {lib.digest})" in md
    assert "Glitches (timed gate simulation with the NLDM rise/fall cell delays of tiny_nldm" in md
    assert "| copies | area (GE) | area (tiny_nldm units) | energy/MAC (fJ) |" in md  # iso table
    assert "| area (tiny_nldm units) | leakage (nW) |" in md and "| slack (ns) | fastest clock (MHz) |" in md
    assert "At a 2 ns clock (500 MHz): slack = 2 ns - delay" in md


def test_liberty_report_rerenders_without_the_file(liberty_report, tmp_path):
    """data.json keeps the library's path; re-rendering elsewhere needs only the data."""
    from psum.reports.report import rerender

    out, data = liberty_report
    data2 = rerender(out / "data.json", tmp_path / "again")
    assert data2["library"] == data["library"]
    assert "onto the Liberty library tiny_nldm" in (tmp_path / "again" / "report.md").read_text()


@pytest.mark.slow
def test_report_searches_the_fixed_point_accumulator(tmp_path):
    """The iso stage's fixed-point design searched around q8.8 on the real network (40 images):
    fraction bits, then integer bits, each by the report's rule; the chosen unit checked in Icarus.
    ``pytest -m slow tests/test_report.py -k fixed_point`` (several minutes on a loaded machine)."""
    cfg = ReportConfig(float_exps=(4,), max_man=4, int_widths=(16, 20), limit=40, per_layer=False,
                       sim_cycles=200, stats_images=8, power_outputs=2, iso_macs=8, iso_clock_ns=2.0,
                       iso_designs=(("fixed", "q8.8", ""),), glitch=False, breakdown=False)
    data = build_report(cfg, out_dir=tmp_path / "r", quiet=True, progress_enabled=False)
    row = data["iso"]["rows"][0]
    assert row["family"] == "fixed" and list(row["candidates"])[:1] == ["q8.9"]
    assert row["rule"].startswith("fraction bits 5..9 at I=8") and row["sim_cycles"] > 0
    acc = row["spec"].split("acc=", 1)[1].split(",")[0]
    assert row["candidates"][acc] >= data["baseline_accuracy"] - 1.0


# -- the config's fields are type-checked at construction (ReportConfig(model=5) was accepted) ----
@pytest.mark.parametrize("field, value, message", [
    ("model", 5, "model must be a built-in model name or FILE.py:FUNCTION, not 5"),
    ("model", "", "model must be a built-in model name or FILE.py:FUNCTION, not ''"),
    ("dataset", None, "dataset must be a data set name or FILE.py:FUNCTION, not None"),
    ("float_operand", 8, "float_operand must be a format name such as 'fp8_e4m3', not 8"),
    ("checkpoint", 3, "checkpoint must be a path or None, not 3"),
    ("data_dir", "", "data_dir must be a path or None, not ''"),
    ("per_layer", 1, "per_layer must be True or False, not 1"),
    ("glitch", "no", "glitch must be True or False, not 'no'"),
    ("float_exps", 5, "float_exps must be a tuple of integers, not 5"),
    ("int_widths", "16", "int_widths must be a tuple of integers, not '16'"),
    ("groups", "layer3", "groups must be a tuple of layer selections, not 'layer3'"),
    ("groups", ("layer3", 3), "groups must hold layer selections (text such as 'layer3.*'), not 3"),
    ("iso_designs", "float", "iso_designs must be a tuple of (family, base, extra) designs, not 'float'"),
])
def test_config_fields_are_type_checked(field, value, message):
    with pytest.raises(TypeError) as info:
        ReportConfig(**{field: value})
    assert str(info.value) == message


def test_config_bounds_the_glitch_stimulus():
    with pytest.raises(ValueError) as info:
        ReportConfig(power_outputs=5000)
    assert str(info.value) == ("power_outputs must be at most 4096 with glitch=True (the timed gate simulation's "
                               "bound), not 5000")
    assert ReportConfig(power_outputs=5000, glitch=False).power_outputs == 5000


def test_config_takes_lists_and_paths():
    cfg = ReportConfig(float_exps=[5], groups=["conv1"], checkpoint=Path("x.pt"))
    assert cfg.float_exps == (5,) and cfg.groups == ("conv1",) and cfg.checkpoint == "x.pt"
    json.dumps(dataclasses.asdict(cfg))  # the config goes into data.json


@pytest.mark.parametrize("config, message", [
    ({"model": 5}, "config: model must be a built-in model name or FILE.py:FUNCTION, not 5"),
    ([1, 2], "config is not a JSON object"),
])
def test_rerender_of_a_bad_config_is_one_value_error(tmp_path, config, message):
    """A data.json whose config fails ReportConfig's checks: a ValueError (one CLI line), not a TypeError."""
    from psum.reports.report import rerender

    src = Path(__file__).resolve().parents[1] / "results" / "lenet5-digits" / "data.json"
    data = json.loads(src.read_text())
    data["config"] = {**data["config"], **config} if isinstance(config, dict) else config
    (tmp_path / "data.json").write_text(json.dumps(data))
    with pytest.raises(ValueError) as info:
        rerender(tmp_path / "data.json")
    assert str(info.value) == f"{tmp_path / 'data.json'}: {message}"
