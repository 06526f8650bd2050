"""Hostile inputs (issue 18): files and names from others are read as data, never executed.

Each test plants an input an attacker could hand a researcher (a report row whose layer name holds
HTML and shell metacharacters, a spec text with a Yosys command separator, a results file with a
non-object row or missing fields, a cache entry that is a JSON list, a spec file with a YAML Python
tag) and checks that psum refuses it with one line or renders it inert, and that a marker file the
payload would create does not exist afterwards. The CIFAR-batch and checkpoint payloads are planted
in tests/test_user_models.py.
"""

import ast
import json
import random
import re
from pathlib import Path

import pytest

from psum.flows import cache
from psum.flows.synth import _CACHE_FIELDS, _script
from psum.golden import MacSpec
from psum.hw import MacImpl, module_name
from psum.reports.document import Document, md_cell
from psum.resultsfile import ResultsFile, read_rows
from psum.sweeps.sweep import read_spec_file

ROOT = Path(__file__).resolve().parents[1]
EVIL = "<script>alert(1)</script>|x; rm -rf ~"
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _evil(marker: Path) -> str:
    """The issue's layer name, plus shell forms that would create ``marker`` if ever run."""
    return f"{EVIL}\n$(touch {marker}) `touch {marker}` \"'; touch {marker}"


# -- reports: HTML and Markdown ----------------------------------------------------------------------
def test_report_html_escapes_a_hostile_layer_name(tmp_path):
    marker = tmp_path / "pwned"
    name = _evil(marker)
    doc = Document(f"report of {name}")
    doc.heading(name)
    doc.para(f"worst layer `{name}` and {name}")
    doc.link(name, f"{name}.md")
    doc.table([{"layer": name, "accuracy": 98.5}], headers=[name, "accuracy"])
    doc.write(tmp_path / "out")
    page = (tmp_path / "out" / "index.html").read_text()
    assert "<script" not in page.lower() and "&lt;script&gt;alert(1)&lt;/script&gt;|x; rm -rf ~" in page
    # The only tags are psum's own: no attribute was closed early by a quote in the name.
    assert set(re.findall(r"<([a-z0-9!]+)", page)) <= {"!doctype", "html", "head", "meta", "title", "style", "body",
                                                     "h1", "h2", "p", "code", "a", "table", "thead", "tbody", "tr",
                                                     "th", "td"}
    hrefs = re.findall(r'href="([^"]*)"', page)
    assert len(hrefs) == 1 and re.fullmatch(r"[A-Za-z0-9/._~#%-]+", hrefs[0]) and hrefs[0].startswith("%3Cscript%3E")
    assert not marker.exists()


def test_report_markdown_table_survives_a_hostile_layer_name(tmp_path):
    marker = tmp_path / "pwned"
    name = _evil(marker)
    doc = Document("t")
    doc.table([{"layer": name, "accuracy": 98.5}, {"layer": "conv1", "accuracy": 99.0}])
    doc.para(f"worst `{name}` then {name} and an unpaired ` {name}")
    doc.link(name, f"../{name}).md")
    md = doc.markdown()
    table = [ln for ln in md.splitlines() if ln.startswith("|")]
    assert len(table) == 4  # header, rule, two rows: the newline did not end the row
    for line in table:  # every row has exactly the two cells: each | of the name is escaped
        assert len(re.findall(r"(?<!\\)\|", line)) == 3, line
    assert table[2] == ("| &lt;script>alert(1)&lt;/script>\\|x; rm -rf ~ $(touch {m}) `touch {m}` \"'; touch {m} "
                        "| 98.50 |").format(m=marker)  # one number format per column: 98.50 beside 99.00
    para = next(ln for ln in md.splitlines() if ln.startswith("worst "))
    parts = para.split("`")
    assert "<script" not in "".join(parts[0::2])  # raw HTML only inside code spans, shown literally
    assert not [ln for ln in md.splitlines() if ln.lstrip().startswith("<")]  # no raw HTML block
    assert "](../%3Cscript%3Ealert%281%29%3C/script%3E%7Cx%3B%20rm%20-rf%20~%0A%24%28touch%20" in md
    assert not marker.exists()


@pytest.mark.parametrize("text, cell", [("a|b", "a\\|b"), ("a\nb", "a b"), ("a\\|b", "a\\\\\\|b"),
                                        ("<b>&amp;", "&lt;b>&amp;amp;"), ("plain", "plain")])
def test_markdown_cell_escapes(text, cell):
    assert md_cell(text) == cell


def test_link_href_has_no_scheme():
    doc = Document("t")
    doc.link("x", "javascript:alert(1)")
    assert "(javascript%3Aalert%281%29)" in doc.markdown()
    assert 'href="javascript%3Aalert%281%29"' in doc.html(Path("."))


# -- spec texts: Verilog identifiers and Yosys scripts -------------------------------------------------
@pytest.mark.parametrize("text", [
    "a=fp8_e4m3,b=fp8_e4m3,acc=e5m6;shell touch pwned",
    "a=fp8_e4m3,b=fp8_e4m3,acc=e5m6\nshell touch pwned",
    "a=fp8_e4m3,b=fp8_e4m3,acc=e5m6,round=rne;tee -o x",
    "a=fp8_e4m3;x,b=fp8_e4m3,acc=e5m6",
    "a=fp8_e4m3,b=fp8_e4m3,acc='e5m6'",
    'a=fp8_e4m3,b=fp8_e4m3,acc="e5m6"',
    "a=fp8_e4m3,b=fp8_e4m3,acc=e5 m6",
    "a=fp8_e4m3,b=fp8_e4m3,acc=e5m6,order=chunk4;",
    "a=fp8_e4m3,b=fp8_e4m3,acc=e5m6,overflow=sat\nx",
])
def test_spec_with_command_separator_is_refused(text, tmp_path):
    with pytest.raises(ValueError):
        MacSpec.parse(text)


_SPECS = ["a=fp8_e4m3,b=fp8_e4m3,acc=e5m6", "a=int8,b=int8,acc=int16,overflow=sat", "a=fp16,b=fp16,acc=fp16,round=rtz",
          "a=e5m2,b=e4m3fn,acc=e6m9_ftz,prod=e6m7,fused=no,round=sr,srbits=4", "a=q3.4,b=q3.4,acc=q8.8,overflow=sat",
          "a=fp8_e4m3,b=fp8_e4m3,acc=e5m6,order=chunk8,acc2=fp32", "a=fp8_e4m3,b=fp8_e4m3,acc=e5m6,order=tree",
          "a=fp8_e4m3,b=fp8_e4m3,acc=e5m6,order=ilv4", "a=e4m3fnuz,b=e5m2fnuz,acc=e8m10_b12,round=rna",
          "a=uint8,b=int8,acc=int24"]
_NOISE = [";", "\n", " ", "'", '"', "\t", "\r", "`", "$", "|", "#", "\\", "/", "(", ")", "{", "}", "=", ",", "_",
          "-", ".", "0", "9", "x", "\x00", "\u0663"]


def _accepted_names(texts):
    """Module names of every text that parses (with and without an impl), and the count refused."""
    names, refused = [], 0
    for text in texts:
        try:
            spec = MacSpec.parse(text)
        except ValueError:
            refused += 1
            continue
        names += [spec.name, module_name(spec), module_name(spec, MacImpl.parse("pipeline=2"))]
    return names, refused


def test_module_names_are_identifiers_for_every_accepted_spec_text():
    """Insert every metacharacter at every position of each sample spec (and random pairs): what the
    parser accepts always names a plain Verilog/Yosys identifier, so the name cannot carry a ``;``,
    newline, space or quote into the generated Verilog or the synthesis script."""
    texts = [t[:i] + c + t[i:] for t in _SPECS for i in range(len(t) + 1) for c in _NOISE]
    rng = random.Random(18)
    for _ in range(3000):
        t = rng.choice(_SPECS)
        for _ in range(2):
            i = rng.randrange(len(t) + 1)
            t = t[:i] + rng.choice(_NOISE) + t[i:]
        texts.append(t)
    names, refused = _accepted_names(texts)
    assert names and refused  # both outcomes happen: the check is not vacuous
    bad = [n for n in names if not IDENT.fullmatch(n)]
    assert not bad, bad[:5]


def test_yosys_script_has_one_command_per_line(tmp_path):
    top = module_name("a=fp8_e4m3,b=fp8_e4m3,acc=e5m6,order=chunk8,acc2=fp32", "pipeline=1")
    script = _script(tmp_path, top)
    assert f"synth -flatten -top {top}\n" in script and ";" not in script


# -- results files ------------------------------------------------------------------------------------
def test_results_row_that_is_not_an_object_is_refused(tmp_path):
    f = tmp_path / "r.jsonl"
    f.write_text('{"k": 1}\n["k", 2]\n{"k": 3}\n')
    with pytest.raises(ValueError, match=rf"^{re.escape(str(f))}:2: a results row must be a JSON object, not a list$"):
        ResultsFile(f, ["k"])
    with pytest.raises(ValueError, match=r":2: a results row must be a JSON object, not a list$"):
        read_rows(f)


def test_results_last_complete_row_not_an_object_is_refused_not_dropped(tmp_path):
    f = tmp_path / "r.jsonl"
    f.write_text('{"k": 1}\n"x; rm -rf ~"\n')
    before = f.read_bytes()
    with pytest.raises(ValueError, match=r":2: a results row must be a JSON object, not a string$"):
        ResultsFile(f, ["k"])
    assert f.read_bytes() == before  # refused, not "repaired" as if it were a torn line


def test_results_row_missing_fields_is_refused(tmp_path):
    f = tmp_path / "r.jsonl"
    f.write_text('{"spec": "e5m6", "cycles": 10, "seed": 0, "checked": 10, "mismatches": 0, "first_mismatch": null}\n'
                 '{"spec": "e5m6", "cycles": 20}\n')
    need = ("spec", "cycles", "seed", "checked", "mismatches", "first_mismatch")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(f))}:2: results row lacks field\(s\) seed, checked, "
                                         r"mismatches, first_mismatch \(rows here need spec, cycles, seed, checked, "
                                         r"mismatches, first_mismatch\)$"):
        ResultsFile(f, ("spec", "cycles", "seed"), required=need)
    assert len(ResultsFile(f, ("spec", "cycles", "seed"))) == 2  # without a schema: read, keyed as None


def test_results_garbage_names_its_line(tmp_path):
    f = tmp_path / "r.jsonl"
    f.write_text('{"k": 1}\n\n' + "[" * 100_000 + "\n{\"k\": 2}\n")  # deep nesting: RecursionError in json
    with pytest.raises(ValueError, match=r":3: not valid JSON; .* is not a JSON Lines results file "
                                         r"\(bad line after row 1\)$"):
        ResultsFile(f, ["k"])


def test_results_torn_last_line_still_repaired(tmp_path):
    f = tmp_path / "r.jsonl"
    f.write_text('{"k": 1}\n{"k": 2, "v": "to')
    assert len(ResultsFile(f, ["k"], required=["k"])) == 1 and f.read_text() == '{"k": 1}\n'


def test_sweep_cli_refuses_a_hostile_results_file(tmp_path, capsys):
    from psum.cli.main import main

    f = tmp_path / "sweep.jsonl"
    f.write_text('[1, 2]\n')
    assert main(["sweep", "--model", "lenet5", "--acc", "e5m3", "--limit", "4", "--out", str(f)]) == 2
    err = capsys.readouterr().err
    assert err == f"psum sweep: error: {f}:1: a results row must be a JSON object, not a list\n"


# -- synthesis cache ------------------------------------------------------------------------------------
def _good_entry():
    return {name: {"str": "x", "float": 1.5, "int": 3, "dict": {}}[kind] for name, kind in _CACHE_FIELDS.items()}


@pytest.mark.parametrize("entry", [
    [1, 2, 3], "x; rm -rf ~", 7, None,
    {"ge": 1.0},  # lacks fields
    dict(_good_entry(), ge="<script>"),  # wrong type
    dict(_good_entry(), ffs=True),  # a bool is not a count
])
def test_cache_entry_not_an_object_with_its_fields_is_a_miss(tmp_path, entry):
    (tmp_path / "k.json").write_text(json.dumps(entry))
    assert cache.load(tmp_path, "k", fields=_CACHE_FIELDS) is None


def test_cache_entry_hostile_json_is_a_miss(tmp_path):
    (tmp_path / "k.json").write_text("[" * 100_000)
    assert cache.load(tmp_path, "k") is None
    (tmp_path / "k.json").write_text("[1, 2]")
    assert cache.load(tmp_path, "k") is None  # no schema asked: still only an object is an entry
    cache.store(tmp_path, "k", _good_entry())
    assert cache.load(tmp_path, "k", fields=_CACHE_FIELDS) == _good_entry()


def test_cache_field_type_is_checked():
    with pytest.raises(ValueError, match=r"^cache field type must be one of float, int, str, bool, dict, list, "
                                         r"not 'set'$"):
        cache.load("/nonexistent", "k", fields={"x": set})


# -- spec files -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, message", [
    ('["a=int8,b=int8,acc=int16"]', "must hold one object mapping layer patterns to spec text"),
    ('{"conv1": {"__class__": "os.system"}}', "must hold one object mapping layer patterns to spec text; "
                                              "entry 'conv1' maps to dict"),
    ("[" * 100_000, "is not valid JSON (RecursionError)"),
    ('{"conv1": ' + "9" * 5000 + "}", "is not valid JSON (ValueError)"),
])
def test_spec_file_is_data_only(tmp_path, text, message):
    f = tmp_path / "specs.json"
    f.write_text(text)
    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        read_spec_file(f)


def test_spec_file_binary_is_refused(tmp_path):
    f = tmp_path / "specs.json"
    f.write_bytes(b"\x80\x04\x95pickle")
    with pytest.raises(ValueError, match=rf"^spec file {re.escape(str(f))} is not UTF-8 text$"):
        read_spec_file(f)


def test_spec_file_yaml_python_tag_is_not_constructed(tmp_path):
    yaml = pytest.importorskip("yaml")
    marker = tmp_path / "pwned"
    f = tmp_path / "specs.yaml"
    f.write_text(f'conv1: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(ValueError, match=r"is not valid YAML \(ConstructorError\)$"):
        read_spec_file(f)
    assert not marker.exists() and yaml


# -- no shell anywhere -------------------------------------------------------------------------------------
def test_no_shell_commands_in_psum():
    """No ``shell=True``, ``os.system``, ``os.popen``, ``eval``/``exec`` or pickle in psum's sources:
    a name from a file can never reach a shell or an interpreter. Commands are argument lists."""
    found = []
    sources = [p for d in ("psum", "golden", "hw", "flows", "nets", "quant", "reports", "sweeps")
               for p in (ROOT / d).rglob("*.py")]
    assert len(sources) > 40
    for path in sources:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "shell":
                found.append(f"{path.name}:{node.value.lineno} shell=")
            if isinstance(node, ast.Call):
                f = node.func
                if isinstance(f, ast.Name):
                    owner, name = "", f.id
                elif isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
                    owner, name = f.value.id, f.attr  # os.system, not net.eval()
                else:
                    continue
                if (owner, name) in {("os", "system"), ("os", "popen"), ("", "eval"), ("", "exec"),
                                     ("pickle", "load"), ("pickle", "loads"), ("marshal", "loads")}:
                    found.append(f"{path.name}:{node.lineno} {owner}.{name}")
    assert not found, found
