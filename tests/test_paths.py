"""Where psum reads and writes (psum.paths): one cache root, outputs relative to the working
directory, shipped checkpoints read from the package; commands run from an empty folder write there
and leave the checkout clean."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

from psum import paths

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def clean_env(monkeypatch):
    for var in ("PSUM_CACHE_DIR", "PSUM_RESULTS_DIR", "PSUM_CHECKPOINT_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def git_status() -> str | None:
    """``git status --porcelain`` of the checkout (None outside a git checkout)."""
    try:
        r = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=all"],
                           capture_output=True, text=True, timeout=60)
    except OSError:
        return None
    return r.stdout if r.returncode == 0 else None


def test_cache_dir_one_root(clean_env, tmp_path):
    assert paths.cache_dir("synth") == Path.home() / ".cache" / "psum" / "synth"
    clean_env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert paths.cache_dir("sim") == tmp_path / "xdg" / "psum" / "sim"
    clean_env.setenv("PSUM_CACHE_DIR", str(tmp_path / "c"))
    assert paths.cache_dir("kernels") == tmp_path / "c" / "kernels"
    assert paths.cache_dir() == tmp_path / "c"


def test_every_cache_user_asks_psum_paths(clean_env, tmp_path):
    from psum.flows.cache import default_cache_dir

    clean_env.setenv("PSUM_CACHE_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path / "synth"


def test_results_dir_is_relative_to_the_working_directory(clean_env, tmp_path):
    from psum.reports.report import default_out_dir

    assert paths.results_dir("fake2true") == Path("fake2true")
    assert default_out_dir("lenet5", "digits") == Path("lenet5-digits")
    clean_env.setenv("PSUM_RESULTS_DIR", str(tmp_path))
    assert default_out_dir("lenet5", "digits") == tmp_path / "lenet5-digits"


def test_checkpoint_dir_default_and_env(clean_env, tmp_path):
    from psum.nets.train import checkpoint_path

    assert paths.checkpoint_dir() == Path("checkpoints")
    assert checkpoint_path("lenet5", "digits") == Path("checkpoints") / "lenet5-digits.pt"
    clean_env.setenv("PSUM_CHECKPOINT_DIR", str(tmp_path))
    assert checkpoint_path("lenet5", "digits") == tmp_path / "lenet5-digits.pt"


def test_shipped_checkpoints_are_package_data(clean_env):
    for name in ("lenet5-digits.pt", "lenet5-digits-qat.pt"):
        p = paths.shipped_checkpoint(name)
        assert p is not None and p.is_file() and p.parent.name == "checkpoints", name
    assert paths.shipped_checkpoint("vgg-digits.pt") is None


def test_find_checkpoint_prefers_yours_then_shipped(clean_env, tmp_path):
    clean_env.chdir(tmp_path)
    assert paths.find_checkpoint("lenet5-digits.pt") == paths.shipped_checkpoint("lenet5-digits.pt")
    assert paths.find_checkpoint("lenet5-cifar10.pt") is None
    mine = tmp_path / "checkpoints" / "lenet5-digits.pt"
    mine.parent.mkdir()
    mine.write_bytes(b"x")
    assert paths.find_checkpoint("lenet5-digits.pt") == Path("checkpoints") / "lenet5-digits.pt"


def test_load_checkpoint_from_an_empty_folder_reads_the_shipped_one(clean_env, tmp_path):
    from psum.nets.train import load_checkpoint

    clean_env.chdir(tmp_path)
    _, meta = load_checkpoint("lenet5", "digits")
    assert Path(meta["path"]) == paths.shipped_checkpoint("lenet5-digits.pt")
    assert not any(tmp_path.iterdir())


def test_no_output_path_derives_from_file():
    """``__file__`` only locates inputs shipped beside the code (C source, cell library) and, in
    tests, the checkout itself: never where psum writes."""
    allowed = {"golden/emulation/kernels.py", "flows/cells.py",
               "hw/verify/runner.py",  # the cocotb test module copied into each run folder
               "psum/_util.py", "psum/_deathsig.py"}  # the simulator launcher and its own import path
    found = set()
    for folder in ("psum", "golden", "hw", "flows", "nets", "quant", "sweeps", "reports"):
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text())
            if any(isinstance(n, ast.Name) and n.id == "__file__" for n in ast.walk(tree)):
                found.add(path.relative_to(ROOT).as_posix())
    assert found <= allowed, sorted(found - allowed)


def test_fake2true_from_an_empty_folder_writes_there(clean_env, tmp_path, capsys):
    """``psum fake2true`` with the shipped QAT checkpoint: ./fake2true/ in the working directory."""
    from psum.cli.main import main

    before = git_status()
    clean_env.chdir(tmp_path)
    assert main(["fake2true", "--model", "lenet5", "--formats", "fp32", "--limit", "8", "--no-isolated"]) == 0
    assert "report section: fake2true/fake2true.md" in capsys.readouterr().out
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert written == ["fake2true/fake2true.json", "fake2true/fake2true.md", "fake2true/fake2true.pdf",
                       "fake2true/fake2true.png", "fake2true/fake2true.svg", "fake2true/results.jsonl"]
    assert git_status() == before


def test_fake2true_bad_input_before_any_work(clean_env, tmp_path, capsys):
    from psum.cli.main import main

    clean_env.chdir(tmp_path)
    assert main(["fake2true", "--model", "lenet5", "--formats", ",", "--limit", "8"]) == 2
    assert capsys.readouterr().err == ("psum fake2true: error: --formats must list float formats such as "
                                       "fp64,fp32,bf16,fp16,e8m10, not ','\n")
    with pytest.raises(SystemExit) as exc:  # refused while parsing (psum.cli.options)
        main(["fake2true", "--model", "lenet5", "--formats", "fp32", "--limit", "0"])
    assert exc.value.code == 2
    assert capsys.readouterr().err == ("psum fake2true: error: argument --limit: must be a positive integer, not 0 "
                                       "(see psum fake2true --help)\n")
    assert not any(tmp_path.iterdir())
