"""Sweeps on Ray (issue 13): rows equal a serial run's, one writer, resume; a local Ray with 2 CPUs.

Real Ray (``pip install 'ray==2.60.0'``), real LeNet5 on the built-in digits; skipped where Ray is
not installed, except the one-line error for that case. The Ray runs take minutes on a loaded
2-core machine (Ray's start-up, one model copy per worker): slow tier,
``.venv/bin/python -m pytest -q -m slow tests/test_ray.py``.
"""

from __future__ import annotations

import json
import sys

import pytest

from psum.errors import PsumError
from psum.sweeps.sweep import run_sweep, search_min_acc

try:
    import ray
except ImportError:  # pragma: no cover - the optional dependency
    ray = None

needs_ray = pytest.mark.skipif(ray is None, reason="needs ray (pip install 'ray==2.60.0')")
# Fields that differ between any two runs (time taken, time finished).
_VOLATILE = ("seconds", "finished")
_KW = dict(limit=48, batch_size=16, progress_enabled=False)


def _same(row):
    return {k: v for k, v in row.items() if k not in _VOLATILE}


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_missing_ray_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(PsumError, match=r"^Ray is not installed: pip install 'ray==2\.60\.0' "
                                        r"\(or pip install -e '\.\[ray\]'\)$"):
        run_sweep("lenet5", "digits", "e5m3", ray="local", **_KW)


def test_bad_ray_address_is_refused():
    with pytest.raises(ValueError, match=r"^ray must be 'local' or a Ray cluster address, not 3$"):
        run_sweep("lenet5", "digits", "e5m3", ray=3, **_KW)


@pytest.mark.slow
@needs_ray
def test_ray_rows_equal_serial_and_resume(local_ray, tmp_path):
    accs = "e5m3,int18:sat,e4m2"
    serial = run_sweep("lenet5", "digits", accs, groups=["conv*"], **_KW)
    out = tmp_path / "rows.jsonl"
    # a first Ray run stops after one spec (as an interrupted sweep leaves its file) ...
    first = run_sweep("lenet5", "digits", "e5m3", groups=["conv*"], out=out, ray="local", **_KW)
    assert [_same(r) for r in first] == [_same(r) for r in serial[:1] + serial[1:3]]
    computed = []
    # ... the rerun reuses those rows and computes the rest, as shards on 2 workers
    rows = run_sweep("lenet5", "digits", accs, groups=["conv*"], out=out, ray="local",
                     on_row=lambda row, now: computed.append(now), **_KW)
    assert [_same(r) for r in rows] == [_same(r) for r in serial]
    assert computed == [False, False, True, True, True, True]
    lines = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    assert len(lines) == len(serial)  # one writer, no row twice
    assert sorted(json.dumps(_same(r), sort_keys=True) for r in lines) == \
        sorted(json.dumps(_same(r), sort_keys=True) for r in serial)


@pytest.mark.slow
@needs_ray
def test_ray_search_equals_serial(local_ray):
    kw = dict(kind="man", exp_bits=4, lo=1, hi=6, tol=2.0, **_KW)
    serial = search_min_acc("lenet5", "digits", early_stop="off", **kw)
    on_ray = search_min_acc("lenet5", "digits", ray="local", **kw)
    # Ray evaluates every candidate in full: equal to a serial search without early stop
    assert on_ray["min"] == serial["min"] and on_ray["evaluated"] == serial["evaluated"]
    assert search_min_acc("lenet5", "digits", **kw)["min"] == serial["min"]  # the exact stop changes no decision
