"""Two runs sharing outputs and caches (issue 14): no row computed twice, no half-written file read.

Fast tier: real processes on :class:`psum.resultsfile.ResultsFile` (claims, locked appends and
repairs) and on the synthesis cache. Slow tier (``pytest -m slow tests/test_concurrency.py``): two
real ``psum sweep`` runs into one ``--out`` file, two ``psum sim`` runs of one spec, two first
uses of the C kernel in one fresh cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from psum.resultsfile import ResultsFile

PY = sys.executable

# A worker that computes rows 0..N-1 of a shared results file the way run_sweep does: skip rows
# another process holds, come back to them, compute only what is still missing.
_SHARED_WORKER = textwrap.dedent("""
    import json, os, sys, time
    from psum.resultsfile import ResultsFile

    path, n, who = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    rf = ResultsFile(path, ["k"], required={"k": "int", "by": "str"})
    computed = []

    def do(k, wait):
        if rf.get(k=k) is not None:
            return True
        claim = rf.claim(k=k, wait=wait)
        if claim is None:
            return False
        with claim:
            rf.refresh()
            if rf.get(k=k) is None:
                time.sleep(0.05)  # the work
                rf.append({"k": k, "by": who})
                computed.append(k)
        return True

    busy = [k for k in range(n) if not do(k, wait=False)]
    for k in busy:
        do(k, wait=True)
    print(json.dumps(computed))
""")


def _spawn(script, *args, env=None):
    return subprocess.Popen([PY, "-c", script, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def test_two_processes_share_the_rows_of_one_file(tmp_path):
    f = tmp_path / "rows.jsonl"
    n = 40
    procs = [_spawn(_SHARED_WORKER, f, n, who) for who in ("p1", "p2")]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        outs.append(json.loads(out))
    rows = [json.loads(line) for line in f.read_text().splitlines()]
    keys = [r["k"] for r in rows]
    assert sorted(keys) == list(range(n))  # every row once: none computed twice, none lost
    assert sorted(outs[0] + outs[1]) == list(range(n))
    # Both did part of the work (each started at row 0; the claims send the second elsewhere).
    assert outs[0] and outs[1]
    assert not (tmp_path / ".rows.jsonl.claims").exists()  # claims tidied away


def test_a_claim_dies_with_its_holder(tmp_path):
    f = tmp_path / "rows.jsonl"
    holder = _spawn("import sys, time\nfrom psum.resultsfile import ResultsFile\n"
                    "c = ResultsFile(sys.argv[1], ['k']).claim(k=1)\nprint('held', flush=True)\ntime.sleep(600)\n", f)
    assert holder.stdout.readline().strip() == "held"
    rf = ResultsFile(f, ["k"])
    assert rf.claim(k=1, wait=False) is None  # held by the other process
    holder.kill()  # SIGKILL: no handler runs, the kernel drops the flock
    holder.wait()
    claim = rf.claim(k=1, wait=False)
    assert claim is not None
    claim.release()


def test_opening_never_cuts_another_writers_line(tmp_path):
    # One process appends large rows while this one keeps opening the file (which repairs torn
    # lines): the repair holds the writers' lock, so a line in flight is never mistaken for torn.
    f = tmp_path / "rows.jsonl"
    writer = _spawn("import sys\nfrom psum.resultsfile import ResultsFile\nrf = ResultsFile(sys.argv[1], ['k'])\n"
                    "for k in range(300):\n    rf.append({'k': k, 'pad': 'x' * 20000})\n", f)
    while writer.poll() is None:
        ResultsFile(f, ["k"])
    assert writer.returncode == 0, writer.stderr.read()
    rows = ResultsFile(f, ["k"]).rows
    assert [r["k"] for r in rows] == list(range(300))


def test_synth_cache_shared_by_two_writers(tmp_path):
    # Entries written concurrently by two processes (atomic rename) are always whole, and readable
    # by others: the umask's mode, not mkstemp's 0600.
    script = textwrap.dedent("""
        import sys
        from psum.flows import cache
        for i in range(200):
            cache.store(sys.argv[1], f"k{i % 7}", {"i": i, "who": sys.argv[2], "pad": "y" * 5000})
    """)
    procs = [_spawn(script, tmp_path, w) for w in ("a", "b")]
    from psum.flows import cache

    while any(p.poll() is None for p in procs):
        for i in range(7):
            entry = cache.load(tmp_path, f"k{i}", fields={"i": "int", "who": "str"})
            assert entry is None or len(entry["pad"]) == 5000
    assert all(p.returncode == 0 for p in procs)
    for i in range(7):
        assert (tmp_path / f"k{i}.json").stat().st_mode & 0o044 == 0o044 & ~_umask()
    assert not list(tmp_path.glob(".*"))  # no temporary files left


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# -- slow: real commands ----------------------------------------------------------------------------
def _psum(*args, env=None):
    return subprocess.Popen([str(Path(PY).parent / "psum"), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


@pytest.mark.slow
def test_two_sweeps_into_one_file_compute_each_row_once(tmp_path):
    out = tmp_path / "rows.jsonl"
    env = dict(os.environ, PSUM_PROGRESS="0")
    accs = "e5m2,e5m3,e5m4,e5m5,e5m6,e5m7"
    procs = [_psum("sweep", "--model", "lenet5", "--acc", accs, "--limit", "64", "--batch-size", "64",
                   "--out", out, "--json", env=env) for _ in range(2)]
    results = []
    for p in procs:
        stdout, err = p.communicate(timeout=1200)
        assert p.returncode == 0, err
        results.append(json.loads(stdout))
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    specs = [r["spec"] for r in lines]
    assert len(specs) == len(set(specs)) == 7  # fp32 baseline + 6 formats, each appended once
    # Both runs return the same, complete table.
    assert [r["spec"] for r in results[0]] == [r["spec"] for r in results[1]]
    assert [r["accuracy"] for r in results[0]] == [r["accuracy"] for r in results[1]]


@pytest.mark.slow
def test_two_sims_of_one_spec_share_the_build_folder(tmp_path):
    env = dict(os.environ, PSUM_CACHE_DIR=str(tmp_path / "cache"))
    procs = [_psum("sim", "a=int4,b=int4,acc=int12", "--cycles", "200", "--json", env=env) for _ in range(3)]
    for p in procs:
        stdout, err = p.communicate(timeout=1200)
        assert p.returncode == 0, err
        assert json.loads(stdout)["mismatches"] == 0
    build = Path(tmp_path / "cache" / "sim")
    assert not list(build.glob("*/run-*"))  # passed runs leave no run folder


@pytest.mark.slow
def test_two_first_uses_of_the_c_kernel_build_it_once(tmp_path):
    env = dict(os.environ, PSUM_CACHE_DIR=str(tmp_path))
    script = "from psum.golden.emulation.kernels import c_kernel_available as ok\nprint(ok())\n"
    procs = [_spawn(script, env=env) for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0 and out.strip() == "True", err
    sos = list((tmp_path / "kernels").glob("psum_kernels_*.so"))
    assert len(sos) == 1 and not list((tmp_path / "kernels").glob(".psum_kernels_*.so"))


def test_claims_race_the_tidying_of_their_folder(tmp_path):
    """Claims taken and released at once by 8 threads: each release may remove the emptied claims
    folder while another claim is creating it. Before the fix ``Path.mkdir(exist_ok=True)`` raised
    ``FileExistsError`` here in 3-6 of 8 threads (CI failure of stop 23)."""
    import threading

    errors = []

    def work(who):
        try:
            rf = ResultsFile(tmp_path / "rows.jsonl", ["k"])
            for i in range(300):
                rf.claim(k=f"{who}-{i}").release()
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert not (tmp_path / ".rows.jsonl.claims").exists()  # the last release tidied it away
