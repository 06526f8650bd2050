"""Work the research loop need not repeat (issue 13 item 5): the float prefix cached per batch
(:mod:`psum.sweeps.reuse`), the bisecting minimum search, and early stop (:mod:`psum.sweeps.earlystop`).

Every reuse test compares the rows with and without the cache bit for bit; every early-stop test
compares with a full evaluation (or, for the rule itself, with brute force over all completions).
"""

from __future__ import annotations

import math
import random

import pytest
import torch
from torch import nn

from psum.cli.main import main
from psum.golden.emulation.layers import emulate
from psum.nets.models import ResNet18
from psum.resultsfile import read_rows
from psum.sweeps.earlystop import EarlyStop, parse_early_stop
from psum.sweeps.reuse import PrefixCache, split
from psum.sweeps.sweep import run_search, run_sweep, search_min_acc

_VOLATILE = ("seconds", "finished")


def _same(rows):
    return [{k: v for k, v in r.items() if k not in _VOLATILE} for r in rows]


# -- the cut itself ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    net = ResNet18(num_classes=10, in_channels=1, width=0.125).eval()
    with torch.no_grad():  # non-trivial batch-norm statistics, so the cut's float values matter
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(6, 1, 32, 32)
    return net, x


_GROUP3 = ["layer3.0.conv1", "layer3.0.conv2", "layer3.0.downsample.0", "layer3.1.conv1", "layer3.1.conv2"]


@pytest.mark.parametrize("layers, spec", [
    (["layer2.0.conv2"], "a=fp8_e4m3,b=fp8_e4m3,acc=e5m3"),
    (["layer2.0.downsample.0"], "a=int8,b=int8,acc=int12,overflow=wrap"),
    (_GROUP3, "a=fp8_e4m3,b=fp8_e4m3,acc=e5m4,round=sr"),
    (["fc"], "a=fp8_e4m3,b=fp8_e4m3,acc=e5m4,round=sr"),
], ids=["conv_mid_block", "shortcut_conv", "stage_sr", "head_sr"])
def test_suffix_equals_whole_model_resnet(resnet, layers, spec):
    """The suffix on the cached frontier gives the emulated model's logits bit for bit: shortcut
    values cut mid-block, a whole stage, the head; stochastic rounding keeps its per-image bits."""
    net, x = resnet
    cut = split(net, layers)
    assert cut is not None and cut.frontier
    q1 = emulate(net, {n: spec for n in layers}, calib=x)
    q2 = emulate(net, {n: spec for n in layers}, calib=x)
    suffix = cut.suffix(q2)
    with torch.no_grad():
        for lo in (0, 4):  # two batches: stochastic rounding counts samples across forwards
            xb = x[lo:lo + 4]
            want = q1(xb)
            got = suffix(torch.empty(len(xb), 0), *cut.prefix(xb))
            assert torch.equal(want, got)
    assert sorted(q2.psum_accumulator.sites) == sorted(layers)  # exactly these ops were emulated


def test_split_shortcut_in_frontier(resnet):
    net, _ = resnet
    assert split(net, ["layer2.0.downsample.0"]).frontier == ["layer1_1_relu_1", "layer2_0_bn2"]
    assert split(net, ["layer2.0.conv1"]).frontier == ["layer1_1_relu_1", "layer2_0_downsample_1"]


class _Shared(nn.Module):
    """An in-place op on a value another op also reads: the cut order would be observable."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)

    def forward(self, x):
        h = self.a(x)
        y = self.b(h)
        h.mul_(2)
        return y + h


class _Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)

    def forward(self, x):
        h = self.a(x)
        if h.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
            h = -h
        return self.b(h)


def test_split_refuses_unsafe_or_useless_cuts(resnet):
    net, _ = resnet
    assert split(net, ["conv1"]) is None  # the first layer reads the input: nothing to reuse
    assert split(_Shared(), ["b"]) is None
    assert split(_Branchy(), ["b"]) is None
    assert split(net, ["nosuch"]) is None


# -- sweeps: rows with the cache equal rows without -----------------------------------------------
def test_sweep_reuse_rows_equal_lenet5():
    cache = PrefixCache()
    kw = dict(groups=["conv2", "fc1|fc2"], network=False, limit=32, batch_size=16, progress_enabled=False)
    for accs, rounding in (("e5m3,int12", "rne"), ("e5m3", "sr")):
        off = run_sweep("lenet5", "digits", accs, rounding=rounding, reuse=False, **kw)
        on = run_sweep("lenet5", "digits", accs, rounding=rounding, reuse=cache, **kw)
        assert _same(on) == _same(off)
    # 2 selections x 3 formats x 2 batches; the second rne format of each selection hits
    assert cache.hits >= 2 * 2 and cache.misses >= 2 * 2


def test_sweep_reuse_memory_bound():
    """A budget too small for one batch caches nothing and changes nothing."""
    cache = PrefixCache(max_bytes=0)
    rows = run_sweep("lenet5", "digits", "e5m3", groups=["fc*"], network=False, limit=24, batch_size=8,
                     progress_enabled=False, reuse=cache)
    ref = run_sweep("lenet5", "digits", "e5m3", groups=["fc*"], network=False, limit=24, batch_size=8,
                    progress_enabled=False, reuse=False)
    assert _same(rows) == _same(ref) and cache.hits == 0 and cache.bytes == 0
    assert cache.misses == 3 + 1  # 3 batches and the calibration images


def test_prefix_cache_one_selection_at_a_time(resnet):
    net, x = resnet
    cache = PrefixCache()
    cache.split_for(net, ["fc"])
    cache.frontier(0, x)
    assert cache.bytes == x.shape[0] * 64 * 4  # (6, 64) float32: the flattened pooled features
    cache.split_for(net, ["layer4.1.conv2"])
    assert cache.bytes == 0
    data = object()
    cache.split_for(net, ["fc"], (data, 16, 6, "cpu"))
    cache.frontier(0, x)
    assert cache.split_for(net, ["fc"], (data, 16, 6, "c" + "pu")) and cache.bytes > 0  # same data: kept
    cache.split_for(net, ["fc"], (data, 8, 6, "cpu"))  # other batches: dropped
    assert cache.bytes == 0
    with pytest.raises(ValueError, match=r"^max_bytes must be an integer >= 0, not -1$"):
        PrefixCache(max_bytes=-1)


# -- early stop -----------------------------------------------------------------------------------
def test_parse_early_stop():
    assert parse_early_stop("exact") == ("exact", None) and parse_early_stop("off") == ("off", None)
    assert parse_early_stop("stat:0.01") == ("stat", 0.01)
    for bad in ("stat:0", "stat:1", "stat:x", "hoeffding", "", None):
        with pytest.raises(ValueError, match=r"^early_stop must be 'exact', 'off' or 'stat:ALPHA' "
                                             r"\(0 < ALPHA < 1\), not "):
            parse_early_stop(bad)


def test_exact_rule_brute_force():
    """Stop only when no completion of the remaining images passes; never when one does."""
    n = 13
    for thr_count in range(0, n + 1):
        threshold = 100.0 * thr_count / n - 1e-9
        rule = EarlyStop("exact", threshold, n, looks=n)
        for done in range(0, n):
            for correct in range(0, done + 1):
                can_pass = any(100.0 * (correct + r) / n >= threshold for r in range(n - done + 1))
                assert rule.check(done, correct) == (not can_pass)
    assert not EarlyStop("exact", 100.0, 5, 1).check(5, 0)  # a finished evaluation is never "stopped"


def test_stat_rule_error_rate():
    """Monte Carlo: on random orders of a 0/1 vector whose full accuracy passes, the stat rule
    stops at most ALPHA of the time (Hoeffding + union bound over the looks)."""
    rng = random.Random(0)
    n, batch, alpha = 200, 10, 0.1
    ones = [1] * 150 + [0] * 50  # 75 % right; pass mark 75 %: it passes, just
    stopped = 0
    trials = 400
    for _ in range(trials):
        rng.shuffle(ones)
        rule = EarlyStop(f"stat:{alpha}", 75.0, n, math.ceil(n / batch))
        c = 0
        for done in range(batch, n + 1, batch):
            c += sum(ones[done - batch:done])
            if rule.check(done, c):
                stopped += 1
                break
    assert stopped / trials <= alpha
    # and it does stop a hopeless candidate early
    rule = EarlyStop(f"stat:{alpha}", 75.0, n, math.ceil(n / batch))
    assert rule.check(60, 20) and not EarlyStop("exact", 75.0, n, 20).check(60, 20)


@pytest.fixture(scope="module")
def searches():
    kw = dict(kind="int", overflow="wrap", lo=4, hi=20, tol=1.0, limit=64, batch_size=16, layer="fc1",
              progress_enabled=False)
    return {rule: search_min_acc("lenet5", "digits", early_stop=rule, **kw) for rule in ("off", "exact")}, kw


def test_exact_early_stop_same_minimum(searches):
    res, _ = searches
    off, exact = res["off"], res["exact"]
    assert exact["min"] == off["min"] is not None and exact["early_stop"] == "exact" and off["early_stopped"] == []
    assert sorted({**exact["evaluated"], **exact["stopped"]}) == sorted(off["evaluated"])  # the same bisection path
    assert sorted(exact["stopped"]) == exact["early_stopped"] and not set(exact["stopped"]) & set(exact["evaluated"])
    assert exact["early_stopped"]  # int4.. fail at once
    threshold = off["baseline_accuracy"] - 1.0
    for row in exact["rows"]:
        v = row["int_bits"]
        if v in exact["early_stopped"]:
            assert row["early_stop"] == "exact" and row["accuracy_bound"] == "upper"
            assert row["images_evaluated"] < 64 and "top5" not in row
            assert off["evaluated"][v] <= row["accuracy"] < threshold  # a true bound, below the mark
        else:
            assert "early_stop" not in row and row["accuracy"] == off["evaluated"][v]


def test_stopped_rows_never_reused_as_full(searches, tmp_path):
    res, kw = searches
    out = tmp_path / "r.jsonl"
    first = search_min_acc("lenet5", "digits", early_stop="exact", out=out, **kw)
    stopped = first["early_stopped"][0]
    spec = next(r["spec"] for r in first["rows"] if r["int_bits"] == stopped)
    assert any(r.get("early_stop") == "exact" and r["spec"] == spec for r in read_rows(out))
    # the same search again reuses everything, stopped rows included (they prove the failure)
    fresh = []
    again = search_min_acc("lenet5", "digits", early_stop="exact", out=out, on_row=lambda r, c: fresh.append(c), **kw)
    assert again["min"] == first["min"] and not any(fresh)
    # a sweep of that spec computes the full row: a stopped row is not a measurement
    computed = []
    rows = run_sweep("lenet5", "digits", f"int{stopped}:wrap", groups=["fc1"], network=False, limit=64,
                     batch_size=16, out=out, progress_enabled=False, on_row=lambda r, c: computed.append(c))
    assert computed == [True] and "early_stop" not in rows[1]
    assert rows[1]["accuracy"] == res["off"]["evaluated"][stopped]
    # a search without early stop finds the full row now, and needs no stopped one
    off = search_min_acc("lenet5", "digits", early_stop="off", out=out, **kw)
    assert off["evaluated"][stopped] == rows[1]["accuracy"] and off["stopped"] == {}


def test_search_rejects_bad_early_stop_before_loading():
    with pytest.raises(ValueError, match=r"^early_stop must be .* not 'maybe'$"):
        search_min_acc("nosuchmodel", "digits", kind="int", early_stop="maybe")
    with pytest.raises(ValueError, match=r"^early_stop must be .* not 'maybe'$"):
        run_search("nosuchmodel", "digits", "int?", early_stop="maybe")


def test_run_search_per_layer_order_and_reuse():
    """run_search computes layer by layer (one shared cache) but returns templates outermost."""
    cache = PrefixCache()
    res = run_search("lenet5", "digits", "int?:wrap,int?:sat", groups=["fc2|fc3"], limit=16, batch_size=8,
                     lo=10, hi=14, progress_enabled=False, reuse=cache)
    assert [(r["overflow"], r["layer"]) for r in res] == [("wrap", "all"), ("wrap", "fc2|fc3"),
                                                         ("sat", "all"), ("sat", "fc2|fc3")]
    assert cache.hits > 0


def test_cli_sweep_early_stop_needs_search(capsys):
    assert main(["sweep", "--model", "lenet5", "--acc", "e5m3", "--early-stop", "exact"]) == 2
    assert capsys.readouterr().err == ("psum sweep: error: --early-stop applies to --search (a sweep row has no "
                                       "pass mark)\n")


@pytest.mark.slow
def test_cli_search_early_stop_and_no_reuse(capsys):
    argv = ["sweep", "--model", "lenet5", "--search", "--acc", "int?", "--layer", "fc1", "--limit", "16",
            "--batch-size", "8"]
    assert main(argv + ["--early-stop", "exact"]) == 0
    text = capsys.readouterr().out
    assert "<=" in text and "candidates stopped early (exact rule: they cannot pass)" in text
    assert main(argv + ["--early-stop", "off", "--no-reuse", "--json"]) == 0
    assert '"early_stopped": []' in capsys.readouterr().out
