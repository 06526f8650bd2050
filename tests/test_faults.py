"""Faults survived (issue 14): kills at random points, torn files, a truncated C kernel, orphans.

Fast tier: the results-file repair rule, the kernel seal, temporary files of dead writers, cache
modes and an unwritable cache, children that die with their parent. Slow tier
(``pytest -m slow tests/test_faults.py``): SIGKILL/SIGTERM of real ``psum sweep``, ``psum train``
and ``psum synth --jobs 2`` runs at random points, then the checks: the rerun completes the work
and its files equal an uninterrupted run's, no process of the killed run is left, no temporary
file or folder is left (``/tmp/psum-synth-*`` removed at once on SIGTERM, by the next run after
SIGKILL), no output is corrupt; and a truncated cached kernel is rebuilt instead of SIGBUS.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path

import pytest

from psum._util import atomic_write, die_with_parent, private_tmpdir, remove_stale_tmpdirs
from psum.resultsfile import ResultsFile

PY = sys.executable


# -- results files: what may be dropped --------------------------------------------------------------
def test_torn_last_row_is_dropped(tmp_path):
    f = tmp_path / "r.jsonl"
    f.write_text('{"k": 1}\n{"k": 2, "v": "to')
    assert [r["k"] for r in ResultsFile(f, ["k"]).rows] == [1]
    assert f.read_text() == '{"k": 1}\n'


def test_a_whole_last_row_without_newline_is_kept(tmp_path):
    f = tmp_path / "r.jsonl"
    f.write_text('{"k": 1}\n{"k": 2}')
    assert len(ResultsFile(f, ["k"])) == 2 and f.read_text() == '{"k": 1}\n{"k": 2}\n'


@pytest.mark.parametrize("text", ["one line of text\n", "one line of text", "# notes\n{\"k\": 1}\n",
                                  '{"k": 1}\nnot json\n', '{"k": 1}\nplain tail', "[1, 2]\n", '"s"\n',
                                  '{"k": 1}\n{"k": 2\n'])
def test_anything_else_is_refused_and_left_untouched(tmp_path, text):
    f = tmp_path / "notes.txt"
    f.write_text(text)
    with pytest.raises(ValueError, match=rf"^{f}:\d+: "):
        ResultsFile(f, ["k"])
    assert f.read_text() == text


def test_row_types_are_checked_with_file_and_line(tmp_path):
    f = tmp_path / "r.jsonl"
    f.write_text('{"k": 1, "accuracy": 98.5}\n{"k": 2, "accuracy": "98"}\n')
    with pytest.raises(ValueError, match=rf"^{f}:2: results field accuracy must be a number, not a string$"):
        ResultsFile(f, ["k"], required={"k": "int", "accuracy": "float"})
    f.write_text('{"k": 1, "accuracy": true}\n')
    with pytest.raises(ValueError, match=rf"^{f}:1: results field accuracy must be a number, not a boolean$"):
        ResultsFile(f, ["k"], required={"k": "int", "accuracy": "float"})
    f.write_text('{"k": 1, "calib": null, "accuracy": 1}\n')
    assert len(ResultsFile(f, ["k"], required={"calib": "str?", "accuracy": "float"})) == 1


# -- the C kernel's seal -----------------------------------------------------------------------------
def test_kernel_seal_rejects_a_truncated_library(tmp_path):
    from psum.golden.emulation.kernels import _digest, _sealed

    lib = tmp_path / "psum_kernels_x.so"
    lib.write_bytes(os.urandom(50_000))
    assert not _sealed(lib)  # no seal: not trusted
    (tmp_path / "psum_kernels_x.so.sha256").write_text(_digest(lib) + "\n")
    assert _sealed(lib)
    with open(lib, "r+b") as fh:  # a crash during the first compile: the file is cut short
        fh.truncate(4096)
    assert not _sealed(lib)


@pytest.mark.slow
def test_truncated_cached_kernel_is_rebuilt_not_sigbus(tmp_path):
    env = dict(os.environ, PSUM_CACHE_DIR=str(tmp_path))
    script = textwrap.dedent("""
        import numpy as np
        from psum.golden import MacSpec
        from psum.golden.emulation.kernels import accumulate, c_kernel_available
        assert c_kernel_available()
        spec = MacSpec.parse("a=fp8_e4m3,b=fp8_e4m3,acc=e5m6")
        print("ok")
    """)
    first = subprocess.run([PY, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    (so,) = (tmp_path / "kernels").glob("psum_kernels_*.so")
    with open(so, "r+b") as fh:
        fh.truncate(so.stat().st_size // 3)
    again = subprocess.run([PY, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and again.stdout.strip() == "ok", again.stderr  # SIGBUS would be -7
    from psum.golden.emulation.kernels import _sealed

    assert _sealed(so)


# -- temporary files and folders of dead processes ---------------------------------------------------
def _dead_pid() -> int:
    p = subprocess.Popen([PY, "-c", "pass"])
    p.wait()
    return p.pid


def test_temporaries_of_dead_writers_are_removed(tmp_path):
    dead = _dead_pid()
    stale = tmp_path / f".out.txt.{dead}.abcd.txt"
    stale.write_text("half")
    live = tmp_path / f".out.txt.{os.getppid()}.efgh.txt"  # a live writer's: kept
    live.write_text("in flight")
    atomic_write(tmp_path / "out.txt", "done")
    assert not stale.exists() and live.exists() and (tmp_path / "out.txt").read_text() == "done"


def test_tmpdirs_of_dead_processes_are_removed():
    dead = _dead_pid()
    stale = Path(tempfile.gettempdir()) / f"psum-test-{dead}-xyz"
    stale.mkdir()
    with private_tmpdir("psum-test-") as mine:
        assert mine.is_dir() and mine.name.startswith(f"psum-test-{os.getpid()}-")
        assert not stale.exists()
    assert not mine.exists()
    assert remove_stale_tmpdirs("psum-test-") == 0


# -- caches ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_cache_entries_get_the_umask_mode(tmp_path, umask):
    from psum.flows import cache

    old = os.umask(umask)
    try:
        path = cache.store(tmp_path, "k", {"x": 1})
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_unwritable_cache_is_a_warning(tmp_path):
    from psum.flows import cache

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.warns(RuntimeWarning, match=r"^psum: cannot write the cache entry .*/file/k\.json: "):
        assert cache.store(blocker, "k", {"x": 1}) is None


def test_cli_warning_is_one_line(tmp_path, capsys):
    from psum.cli.main import main

    def warn_once(args):
        warnings.warn("psum: the cache is read-only\nsecond line", RuntimeWarning, stacklevel=2)
        return 0

    import psum.cli.golden as golden

    real = golden._cmd_formats
    golden._cmd_formats = warn_once
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            assert main(["formats"]) == 0
    finally:
        golden._cmd_formats = real
    assert capsys.readouterr().err == "psum formats: warning: the cache is read-only\n"


# -- children die with their parent ------------------------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (dead, not yet reaped by its new parent) counts as dead.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _wait_dead(pid: int, timeout: float = 10.0) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_a_child_dies_with_its_killed_parent():
    # parent: starts a `sleep 600` child that dies with it, prints the child's pid, sleeps.
    parent = subprocess.Popen([PY, "-c", textwrap.dedent("""
        import subprocess, time
        from psum._util import dies_with_me
        child = subprocess.Popen(["sleep", "600"], preexec_fn=dies_with_me())
        print(child.pid, flush=True)
        time.sleep(600)
    """)], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    assert _alive(child)
    parent.kill()  # SIGKILL: no Python code of the parent runs
    parent.wait()
    assert _wait_dead(child)


def test_die_with_parent_follows_a_parent_already_gone():
    # The race prctl cannot close by itself: the parent died before the call.
    code = subprocess.run([PY, "-c", "from psum._util import die_with_parent\ndie_with_parent(parent=1)\n"
                           "import time; time.sleep(5)"], timeout=60).returncode
    assert code == -signal.SIGKILL
    assert die_with_parent is not None


def test_a_simulator_started_by_cocotbs_runner_dies_with_its_killed_parent():
    # cocotb's runner starts vvp with its own subprocess.run (no preexec_fn) after the
    # SIM_CMD_PREFIX words; the parent here starts `sleep` exactly that way.
    parent = subprocess.Popen([PY, "-c", textwrap.dedent("""
        import os, subprocess, time
        from psum._util import simulator_dies_with_me
        with simulator_dies_with_me():
            cmd = [*os.environ["SIM_CMD_PREFIX"].split(), "sleep", "600"]  # as cocotb_tools.runner
            child = subprocess.Popen(cmd)
            print(child.pid, flush=True)
            time.sleep(600)
    """)], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    deadline = time.time() + 30
    while time.time() < deadline and _comm(child) != "sleep":
        time.sleep(0.02)  # the launcher has exec'd the command (same pid)
    assert _comm(child) == "sleep"
    parent.kill()
    parent.wait()
    assert _wait_dead(child)


def test_simulator_prefix_keeps_the_users_and_is_restored(monkeypatch):
    from psum._util import simulator_dies_with_me

    monkeypatch.setenv("SIM_CMD_PREFIX", "taskset -c 0")
    with simulator_dies_with_me():
        with simulator_dies_with_me():  # nested (or another thread): one setting
            words = os.environ["SIM_CMD_PREFIX"].split()
        assert os.environ["SIM_CMD_PREFIX"].split() == words
    assert words[:3] == [sys.executable, "-S", "-I"] and words[3].endswith("_deathsig.py")
    assert words[4:] == [str(os.getpid()), "taskset", "-c", "0"]
    assert os.environ["SIM_CMD_PREFIX"] == "taskset -c 0"
    monkeypatch.delenv("SIM_CMD_PREFIX")
    with simulator_dies_with_me():
        assert "SIM_CMD_PREFIX" in os.environ
    assert "SIM_CMD_PREFIX" not in os.environ


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:  # gone meanwhile
        return ""


@pytest.mark.slow
def test_psum_sim_killed_takes_vvp_with_it(tmp_path):
    """A real ``psum sim --simulator icarus`` killed by SIGKILL while vvp runs: vvp is gone too."""
    env = dict(os.environ, PSUM_PROGRESS="0")
    p = _psum(["sim", "a=int4,b=int4,acc=int8", "--cycles", "3000000", "--simulator", "icarus", "--build-dir",
               tmp_path], env)
    vvp, deadline = None, time.time() + 600
    while vvp is None and time.time() < deadline and p.poll() is None:
        time.sleep(0.2)
        vvp = next((k for k in _descendants(p.pid) if _comm(k) == "vvp"), None)
    assert vvp is not None, "vvp never started"
    p.kill()
    p.wait()
    assert _wait_dead(vvp)


# -- slow: kill real commands at random points ------------------------------------------------------
def _descendants(pid: int) -> set[int]:
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        for k in map(int, kids):
            if k not in out:
                out.add(k)
                todo.append(k)
    return out


def _psum(args, env, **kw):
    return subprocess.Popen([str(Path(PY).parent / "psum"), *map(str, args)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def _strip(rows):
    """Rows without the fields that differ between any two runs (time taken, time finished)."""
    return [{k: v for k, v in r.items() if k not in ("seconds", "finished")} for r in rows]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_sweep_killed_at_random_points_resumes_identically(tmp_path, sig):
    env = dict(os.environ, PSUM_PROGRESS="0")
    args = ["sweep", "--model", "lenet5", "--acc", "e5m3,e5m4,e5m5,e5m6", "--limit", "64", "--batch-size", "32"]
    ref = tmp_path / "ref.jsonl"
    p = _psum(args + ["--out", ref], env)
    assert p.wait(timeout=1200) == 0, p.stderr.read()
    out = tmp_path / "out.jsonl"
    rng = random.Random(sig)
    for _attempt in range(3):
        p = _psum(args + ["--out", out], env)
        time.sleep(rng.uniform(2.0, 8.0))
        p.send_signal(sig)
        p.wait(timeout=120)
        if out.exists():
            ResultsFile(out, ["spec"])  # every state a kill leaves opens (a torn row at most)
    p = _psum(args + ["--out", out], env)
    assert p.wait(timeout=1200) == 0, p.stderr.read()
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert _strip(rows) and sorted(map(json.dumps, _strip(rows))) == sorted(
        map(json.dumps, _strip(json.loads(line) for line in ref.read_text().splitlines())))
    assert not list(tmp_path.glob(".*"))  # no claims or temporaries left


@pytest.mark.slow
def test_train_killed_leaves_no_partial_checkpoint(tmp_path):
    env = dict(os.environ, PSUM_PROGRESS="0")
    out = tmp_path / "ck.pt"
    args = ["train", "--model", "lenet5", "--epochs", "2", "--limit", "512", "--out", out]
    p = _psum(args, env)
    assert p.wait(timeout=1200) == 0, p.stderr.read()
    good = out.read_bytes()
    for delay in (1.0, 3.0, 6.0):
        p = _psum(args, env)
        time.sleep(delay)
        p.kill()
        p.wait()
        # The old checkpoint or a whole new one, never a partial one; stale temporaries go on
        # the next write.
        import torch

        assert out.read_bytes() == good or "state_dict" in torch.load(out, map_location="cpu", weights_only=True)
    p = _psum(args, env)
    assert p.wait(timeout=1200) == 0
    assert [f.name for f in tmp_path.iterdir()] == ["ck.pt"]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_synth_killed_leaves_no_orphans_and_no_tmpdirs(tmp_path, sig):
    env = dict(os.environ, PSUM_PROGRESS="0", PSUM_CACHE_DIR=str(tmp_path / "cache"))
    specs = ["a=int4,b=int4,acc=int10", "a=int4,b=int4,acc=int11"]
    p = _psum(["synth", "--jobs", "2", "--force", *specs], env)
    # Wait until both workers run a child (yosys), then kill at a random moment after that.
    end = time.time() + 300
    kids: set = set()
    while time.time() < end and len(kids) < 4:
        kids = _descendants(p.pid)
        time.sleep(0.2)
    assert len(kids) >= 4, "the workers did not start yosys"
    time.sleep(random.Random(sig).uniform(0.0, 2.0))
    kids = _descendants(p.pid)
    p.send_signal(sig)
    p.wait(timeout=120)
    assert all(_wait_dead(k, 30) for k in kids), [k for k in kids if _alive(k)]
    mine = list(Path(tempfile.gettempdir()).glob(f"psum-synth-{p.pid}-*"))
    mine += [d for k in kids for d in Path(tempfile.gettempdir()).glob(f"psum-synth-{k}-*")]
    if sig == signal.SIGTERM:
        assert not mine  # unwound: removed at once
    else:
        remove_stale_tmpdirs("psum-synth-")  # what the next run does first
        assert not [d for d in mine if d.exists()]


_REPORT = textwrap.dedent("""
    import json, sys
    from psum.reports.report import ReportConfig, build_report
    cfg = ReportConfig(float_exps=(4,), max_man=3, int_widths=(16, 20), limit=40, per_layer=False,
                       sim_cycles=200, stats_images=8, power_outputs=2, jobs=2)
    data = build_report(cfg, out_dir=sys.argv[1], quiet=True, progress_enabled=False)
    print(json.dumps([[r["design"], r["acc"], r["accuracy"], r["ge"]] for r in data["headline"]]))
""")


@pytest.mark.slow
def test_report_killed_at_random_points_resumes(tmp_path):
    env = dict(os.environ, PSUM_PROGRESS="0", PSUM_CACHE_DIR=str(tmp_path / "cache"))
    ref = subprocess.run([PY, "-c", _REPORT, tmp_path / "ref"], env=env, capture_output=True, text=True, timeout=3000)
    assert ref.returncode == 0, ref.stderr
    env["PSUM_CACHE_DIR"] = str(tmp_path / "cache2")  # the killed runs start from nothing
    rng = random.Random(14)
    for _attempt in range(3):
        p = subprocess.Popen([PY, "-c", _REPORT, tmp_path / "out"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(3.0, 30.0))
        kids = _descendants(p.pid)
        p.kill()
        p.wait()
        assert all(_wait_dead(k, 30) for k in kids), [k for k in kids if _alive(k)]
        for jsonl in (tmp_path / "out").glob("*.jsonl"):
            ResultsFile(jsonl, ["spec"])  # opens: at most a torn last row
    again = subprocess.run([PY, "-c", _REPORT, tmp_path / "out"], env=env, capture_output=True, text=True,
                           timeout=3000)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == json.loads(ref.stdout)
    remove_stale_tmpdirs("psum-synth-")
    assert not [d for d in Path(tempfile.gettempdir()).glob("psum-synth-*-*")
                if not d.name.split("-")[2].isdigit() or not _alive(int(d.name.split("-")[2]))]


# -- Ctrl-C in the first milliseconds: the entry point catches it before importing anything ----------
# The console script and `python -m psum` run psum.__main__.entry, whose `try` starts before the
# command line is imported. Deterministic: a real SIGINT sent to itself while the child imports
# psum.cli.main (the window that printed a traceback when the script targeted psum.cli.main:main).
_EARLY_SIGINT = """
import builtins, os, runpy, signal, sys
# A shell's background job starts with SIGINT ignored (and Python then keeps it ignored): give
# this child Python's own handler, as an interactive psum has.
signal.signal(signal.SIGINT, signal.default_int_handler)
orig = builtins.__import__
def imp(name, *a, **k):
    if name == "psum.cli.main" and not sys.modules.get("psum.cli.main"):
        try:
            signal.raise_signal(signal.SIGINT)  # the handler runs here, at once
        except KeyboardInterrupt:
            if MODE == "import-error":  # what numpy does when Ctrl-C hits its C extension's import
                raise ImportError("PyCapsule_Import could not import module 'datetime'") from None
            raise
    return orig(name, *a, **k)
builtins.__import__ = imp
sys.argv = ["psum", "formats", "fp16"]
if SCRIPT:
    runpy.run_path(SCRIPT, run_name="__main__")
else:
    runpy.run_module("psum", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("mode", ["keyboard-interrupt", "import-error"])
@pytest.mark.parametrize("how", ["console-script", "python -m psum"])
def test_ctrl_c_before_the_command_line_is_imported_is_one_line(how, mode):
    script = str(Path(PY).parent / "psum") if how == "console-script" else ""
    code = f"MODE = {mode!r}\nSCRIPT = {script!r}\n" + _EARLY_SIGINT
    proc = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stderr, proc.stdout) == (130, "psum formats: interrupted\n", ""), proc.stderr


def test_console_script_targets_the_guarded_entry():
    # pyproject's [project.scripts] as installed: the script imports psum.__main__.entry, so a
    # stale install (psum.cli.main:main) is caught here rather than by a user's Ctrl-C.
    text = (Path(PY).parent / "psum").read_text()
    assert "from psum.__main__ import entry" in text, f"stale console script, run `pip install -e .`:\n{text}"


@pytest.mark.slow
def test_real_ctrl_c_at_every_moment_of_start_up():
    """SIGINT to a real ``psum formats`` at moments spread over its whole run: once psum's entry
    runs, the outcome is always ``psum formats: interrupted`` and exit 130. Earlier (interpreter
    start-up, ``site``, ``psum/__init__``) Python's own behaviour remains: killed by the signal, or
    a traceback that never passes through psum's entry."""
    script = [str(Path(PY).parent / "psum"), "formats"]
    t0 = time.perf_counter()
    subprocess.run(script, capture_output=True, timeout=120, check=True)
    full = time.perf_counter() - t0
    caught = 0
    for i in range(24):
        p = subprocess.Popen(script, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(full * i / 24)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=120)
        if p.returncode == 130:
            assert err == "psum formats: interrupted\n", err
            caught += 1
        elif p.returncode == 0:
            assert not err  # finished before the signal
        else:
            assert "in entry" not in err and "psum/cli" not in err, err
    assert caught >= 6, caught  # most of the run lies after the entry started
