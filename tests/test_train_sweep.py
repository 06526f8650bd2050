"""Training, checkpoints, results files, sweeps (incl. resume) and the minimum-accumulator search."""

from __future__ import annotations

import json

import pytest
import torch

from psum.cli.main import main
from psum.errors import PsumError
from psum.golden import MacSpec
from psum.resultsfile import ResultsFile, read_rows
from psum.sweeps.sweep import make_spec, min_passing, run_sweep, search_min_acc
from psum.nets.train import checkpoint_path, find_checkpoint, load_checkpoint, train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A LeNet5 trained for one quick epoch on 384 digits (enough for mechanics, not accuracy)."""
    path = tmp_path_factory.mktemp("ckpt") / "lenet5-digits.pt"
    info = train("lenet5", "digits", epochs=1, limit=384, out=path, seed=0)
    return path, info


@pytest.fixture(scope="module")
def ckpt(trained):
    """The shipped LeNet5 digits checkpoint (realistic accuracy), else the quick one."""
    committed = find_checkpoint("lenet5", "digits")
    if committed is not None:
        net, meta = load_checkpoint("lenet5", "digits")
        return committed, meta
    return trained


# -- training and checkpoints ------------------------------------------------------------------
def test_train_quick_epoch_writes_checkpoint(trained):
    path, info = trained
    assert path.is_file() and info["path"] == str(path)
    raw = torch.load(path, weights_only=True)
    for key in ("model", "dataset", "num_classes", "in_channels", "width", "state_dict", "accuracy", "seed",
                "epochs", "psum_version"):
        assert key in raw
    assert (raw["model"], raw["dataset"], raw["in_channels"], raw["epochs"], raw["n_train"]) == ("lenet5", "digits", 1, 1, 384)
    assert raw["autocast"] == "bfloat16"
    assert 15.0 < raw["accuracy"] <= 100.0  # above chance (10 %) after one short epoch
    assert not list(path.parent.glob(".*tmp*"))  # the temporary file was renamed away


def test_load_checkpoint_roundtrip(trained):
    path, info = trained
    net, meta = load_checkpoint("lenet5", "digits", path=path)
    assert not net.training and meta["accuracy"] == info["accuracy"] and "state_dict" not in meta
    from psum.nets.data import load_dataset
    from psum.nets.train import evaluate

    assert evaluate(net, load_dataset("digits", "test"))["top1"] == info["accuracy"]


def test_load_checkpoint_missing_message(tmp_path, monkeypatch):
    monkeypatch.setenv("PSUM_CHECKPOINT_DIR", str(tmp_path))
    assert checkpoint_path("lenet5", "cifar10") == tmp_path / "lenet5-cifar10.pt"
    with pytest.raises(PsumError) as e:
        load_checkpoint("lenet5", "cifar10")
    assert str(e.value) == "no checkpoint for lenet5 on cifar10; run psum train --model lenet5 --dataset cifar10"


def test_load_checkpoint_mismatch(trained):
    with pytest.raises(PsumError, match=r"holds lenet5 on digits, not alexnet on digits$"):
        load_checkpoint("alexnet", "digits", path=trained[0])


def test_train_argument_errors():
    with pytest.raises(ValueError, match=r"^epochs must be an integer >= 1, not 0$"):
        train("lenet5", "digits", epochs=0, save=False)
    with pytest.raises(TypeError, match=r"^batch_size must be an integer >= 1, not '64'$"):
        train("lenet5", "digits", batch_size="64", save=False)
    with pytest.raises(ValueError, match=r"^limit must be an integer >= 1, not 0$"):
        train("lenet5", "digits", limit=0, save=False)
    with pytest.raises(ValueError, match=r"^optimizer must be 'adam' or 'sgd', not 'lamb'$"):
        train("lenet5", "digits", optimizer="lamb", save=False)


def test_cli_train_cifar_without_data_is_one_line(capsys):
    assert main(["train", "--model", "lenet5", "--dataset", "cifar10"]) == 2
    err = capsys.readouterr().err
    assert err == ("psum train: error: cifar10 needs --data-dir DIR with DIR/cifar-10-batches-py/"
                   "{data_batch_1..5,test_batch} (CIFAR-10 python version, untarred); psum never downloads\n")


# -- results file ------------------------------------------------------------------------------
def test_results_file_drops_torn_line(tmp_path):
    f = tmp_path / "r.jsonl"
    rf = ResultsFile(f, ["k"])
    rf.append({"k": 1, "v": "a"})
    rf.append({"k": 2, "v": "b"})
    with open(f, "ab") as fh:
        fh.write(b'{"k": 3, "v": "tor')  # a crash mid-append
    rf2 = ResultsFile(f, ["k"])
    assert len(rf2) == 2 and rf2.get(k=2)["v"] == "b" and rf2.get(k=3) is None
    rf2.append({"k": 3, "v": "c"})
    assert [r["k"] for r in read_rows(f)] == [1, 2, 3]


def test_results_file_rejects_garbage(tmp_path):
    f = tmp_path / "r.jsonl"
    f.write_text('{"k": 1}\nnot json\n{"k": 2}\n')
    with pytest.raises(ValueError, match=r"is not a JSON Lines results file \(bad line after row 1\)$"):
        ResultsFile(f, ["k"])


# -- sweeps ------------------------------------------------------------------------------------
def test_make_spec_defaults():
    assert str(make_spec("e5m6")) == str(MacSpec.parse("a=fp8_e4m3,b=fp8_e4m3,acc=e5m6"))
    s = make_spec("int16:sat")
    assert (str(s.a), s.overflow) == ("int8", "sat")
    with pytest.raises(ValueError, match="integer accumulator needs integer operands"):
        make_spec("int16", a="bf16", b="bf16")


def test_sweep_two_formats_with_limit(ckpt, tmp_path):
    out = tmp_path / "sweep.jsonl"
    rows = run_sweep("lenet5", "digits", "fp32,int12", limit=40, out=out, checkpoint=ckpt[0])
    base, wide, narrow = rows
    assert base["spec"] == "fp32" and base["n_images"] == 40 and base["limit"] == 40
    assert wide["spec"] == str(make_spec("fp32")) and wide["layer"] == "all"
    assert narrow["spec"] == "a=int8,b=int8,acc=int12,round=rne,overflow=wrap"
    assert narrow["kind"] == "int" and narrow["acc_bits"] == 12
    for r in (wide, narrow):
        assert r["baseline_accuracy"] == base["accuracy"] and r["n_images"] == 40
        for key in ("model", "dataset", "spec", "layer", "accuracy", "baseline_accuracy", "n_images", "seconds",
                    "psum_version"):
            assert key in r
    # fp8 operands with a float32 accumulator stay near the baseline; a 12-bit wrapping accumulator
    # under int8 x int8 products (16 bits each) cannot
    assert wide["accuracy"] >= base["accuracy"] - 10
    assert narrow["accuracy"] < wide["accuracy"]
    assert [json.loads(line)["spec"] for line in out.read_text().splitlines()] == [r["spec"] for r in rows]


def test_sweep_per_layer_rows(ckpt):
    rows = run_sweep("lenet5", "digits", "int10", per_layer=True, network=False, limit=16, checkpoint=ckpt[0])
    assert [r["layer"] for r in rows[1:]] == ["conv1", "conv2", "fc1", "fc2", "fc3"]


def test_sweep_resume_skips_finished_rows(ckpt, tmp_path):
    out = tmp_path / "resume.jsonl"
    accs = "fp32,int24,int16,int12"

    class Interrupt(Exception):
        pass

    computed = []

    def stop_after_two(row, fresh):
        computed.append((row["acc"], fresh))
        if sum(f for _, f in computed) == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_sweep("lenet5", "digits", accs, limit=24, out=out, checkpoint=ckpt[0], on_row=stop_after_two)
    assert len(read_rows(out)) == 3  # baseline + 2 rows survived the interruption
    seen = []
    rows = run_sweep("lenet5", "digits", accs, limit=24, out=out, checkpoint=ckpt[0],
                     on_row=lambda row, fresh: seen.append((row["acc"], fresh)))
    assert seen == [("fp32", False), ("int24", False), ("int16", True), ("int12", True)]
    assert len(read_rows(out)) == 5 and len(rows) == 5
    # a different --limit is a different row key: recomputed, not mixed up
    again = []
    run_sweep("lenet5", "digits", "int24", limit=8, out=out, checkpoint=ckpt[0],
              on_row=lambda row, fresh: again.append(fresh))
    assert again == [True]


def test_cli_sweep_table(ckpt, tmp_path, capsys):
    out = tmp_path / "cli.jsonl"
    assert main(["sweep", "--model", "lenet5", "--acc", "int20,int14:sat", "--limit", "16",
                 "--checkpoint", str(ckpt[0]), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "fp32 baseline" in text and "acc=int14,round=rne,overflow=sat" in text
    assert len(read_rows(out)) == 3


# -- search ------------------------------------------------------------------------------------
def test_min_passing_rule():
    calls = []

    def make(ok):
        def passes(v):
            calls.append(v)
            return ok(v)
        return passes

    assert min_passing(make(lambda v: v >= 11), 4, 32) == 11
    assert min_passing(make(lambda v: False), 4, 32) is None
    assert min_passing(make(lambda v: True), 4, 32) == 4
    # a lucky blip below the threshold: 7 passes, 8..10 fail, >= 11 pass -> the blip is found by
    # bisection (4..32 -> 18, 11, 7), refuted by 8 failing, and the search resumes above
    calls.clear()
    assert min_passing(make(lambda v: v == 7 or v >= 11), 4, 32) == 11
    assert 8 in calls


def test_search_int_tiny(ckpt, tmp_path):
    out = tmp_path / "search.jsonl"
    res = search_min_acc("lenet5", "digits", kind="int", overflow="sat", lo=8, hi=24, tol=2.0, limit=32,
                         out=out, checkpoint=ckpt[0])
    ev = res["evaluated"]
    m = res["min"]
    assert m is not None and res["acc"] == f"int{m}"
    assert ev[m] >= res["baseline_accuracy"] - 2.0
    if m > 8:  # m - 1 failed: measured, or stopped early below the mark (its upper bound in "stopped")
        assert {**ev, **res["stopped"]}[m - 1] < res["baseline_accuracy"] - 2.0
    assert res["spec"] == f"a=int8,b=int8,acc=int{m},round=rne,overflow=sat"
    # rerunning reuses every row from the file
    fresh = []
    res2 = search_min_acc("lenet5", "digits", kind="int", overflow="sat", lo=8, hi=24, tol=2.0, limit=32,
                          out=out, checkpoint=ckpt[0], on_row=lambda r, f: fresh.append(f))
    assert res2["min"] == m and not any(fresh)


def test_search_argument_errors():
    with pytest.raises(ValueError, match=r"^kind must be 'man', 'exp' or 'int', not 'bits'$"):
        search_min_acc("lenet5", "digits", kind="bits")
    with pytest.raises(TypeError, match=r"^exp_bits must be an integer, not None$"):
        search_min_acc("lenet5", "digits", kind="man")


def test_cli_search_template_error(capsys):
    assert main(["sweep", "--model", "lenet5", "--search", "--acc", "e5m3"]) == 2
    assert capsys.readouterr().err == ("psum sweep: error: search entry must be e<E>m?, e?m<M> or int?[:wrap|:sat], "
                                       "not 'e5m3'\n")


def test_search_relative_to_operands(ckpt):
    res = search_min_acc("lenet5", "digits", kind="int", overflow="wrap", lo=14, hi=20, tol=1.0, limit=16,
                         checkpoint=ckpt[0], relative_to="operands")
    assert res["reference_spec"] == "a=int8,b=int8,acc=int32,round=rne,overflow=wrap"
    assert res["relative_to"] == "operands" and res["min"] is not None
    assert res["accuracy"] >= res["reference_accuracy"] - 1.0
    with pytest.raises(ValueError, match=r"^relative_to must be 'fp32' or 'operands', not 'int8'$"):
        search_min_acc("lenet5", "digits", kind="int", relative_to="int8")


def test_train_validates_before_loading_data(monkeypatch):
    # train's options are checked (nets.train._train_config) before any dataset is read.
    import psum.nets.train as tr

    def no_data(*args, **kwargs):
        raise AssertionError("dataset loaded before validation")

    monkeypatch.setattr(tr, "load_dataset", no_data)
    with pytest.raises(ValueError, match=r"^lr must be a finite positive number, not -1$"):
        tr.train("lenet5", "digits", lr=-1, save=False)
    with pytest.raises(TypeError, match=r"^epochs must be an integer >= 1, not 1.5$"):
        tr.train("lenet5", "digits", epochs=1.5, save=False)


def test_checkpoint_save_is_atomic(tmp_path, monkeypatch):
    # A failed write leaves the previous checkpoint and no temporary file.
    import torch

    import psum.nets.train as tr

    path = tmp_path / "m.pt"
    tr._save_checkpoint({"x": 1}, path)

    def broken(obj, f):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError, match="^disk full$"):
        tr._save_checkpoint({"x": 2}, path)
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]
    assert torch.load(path, weights_only=True) == {"x": 1}
