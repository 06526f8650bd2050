"""A user's own model, checkpoint and data through ``psum eval/sweep/report`` and the Python API.

Everything here is made by the test: a model file in a tmp folder (not in psum), an image folder of
PNGs written with PIL, checkpoints in every accepted form, and hostile files (issue 18) that must be
refused without running anything.
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from torch import nn

from psum.cli.main import main
from psum.errors import PsumError
from psum.golden.emulation.layers import emulate
from psum.nets.user import load_weights, model_digest, resolve
from psum.sweeps.sweep import (evaluate_spec, read_spec_file, run_search, run_sweep, search_min_acc, select_layers,
                               spec_map)

SPEC = "a=int8,b=int8,acc=int12"

MODEL_PY = '''
import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self, num_classes=3):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 6, 3), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.head = nn.Linear(24, num_classes)

    def forward(self, x):
        return self.head(self.pool(self.features(x)).flatten(1))


def build(num_classes=3):
    torch.manual_seed(0)
    return Tiny(num_classes)


def two_classes():
    torch.manual_seed(0)
    return Tiny(2)


def not_a_module():
    return 42


def data(split="test"):
    g = torch.Generator().manual_seed(0 if split == "test" else 1)
    x = torch.rand(20, 3, 12, 12, generator=g)
    return torch.utils.data.TensorDataset(x, torch.arange(20) % 3)


def bad_labels():
    return torch.utils.data.TensorDataset(torch.rand(6, 3, 12, 12), torch.tensor([0, 1, 2, 3, 7, 1]))
'''


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    """A model file, its state_dict and a 3-class folder of 12x12 PNGs (4 per class)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("user")
    (root / "mynet.py").write_text(MODEL_PY)
    rng = np.random.default_rng(0)
    for c, name in enumerate(("blue", "green", "red")):
        folder = root / "imgs" / name
        folder.mkdir(parents=True)
        for i in range(4):
            a = rng.integers(0, 80, (12, 12, 3), dtype=np.uint8)
            a[..., c] += 150
            Image.fromarray(a).save(folder / f"{i}.png")
    net = _tiny(root)
    torch.save(net.state_dict(), root / "sd.pt")
    return root


def _tiny(root, classes=3):
    from psum.nets.user import build_user_model

    return build_user_model(f"{root}/mynet.py:build", num_classes=classes)


def _run(argv, capsys):
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code
    out = capsys.readouterr()
    return rc, out.out, out.err


# -- the exact CLI form of the issue ------------------------------------------------------------
def test_eval_user_model_on_image_folder_json(user, capsys):
    rc, out, err = _run(["eval", "--model", f"{user}/mynet.py:build", "--checkpoint", str(user / "sd.pt"),
                         "--dataset", "imagefolder", "--data-dir", str(user / "imgs"), "--spec", SPEC, "--json"],
                        capsys)
    assert rc == 0, err
    row = json.loads(out)
    assert 0 <= row["accuracy"] <= 100 and row["n_images"] == 12
    assert row["model"] == f"{user}/mynet.py:build" and row["checkpoint_kind"] == "state_dict"
    assert set(row["emulated_layers"]) == {"features.0", "features.2", "head"} and row["float_layers"] == []
    # the same number as emulating by hand with the same calibration images
    wl = resolve(f"{user}/mynet.py:build", "imagefolder", checkpoint=user / "sd.pt", data_dir=user / "imgs")
    q = emulate(wl.net, SPEC, calib=wl.calib)
    x = torch.stack([wl.test[i][0] for i in range(12)])
    y = torch.tensor([wl.test[i][1] for i in range(12)])
    with torch.no_grad():
        top1 = 100.0 * float((q(x).argmax(1) == y).double().mean())
    assert row["accuracy"] == pytest.approx(top1)
    assert row["checkpoint"] == model_digest(wl.net)


def test_image_folder_reads_classes_and_pixels(user):
    from PIL import Image

    from psum.nets.data import image_folder

    ds = image_folder(user / "imgs")
    assert ds.classes == ["blue", "green", "red"] and len(ds) == 12 and ds.targets == [0] * 4 + [1] * 4 + [2] * 4
    x, y = ds[5]
    raw = np.asarray(Image.open(user / "imgs" / "green" / "1.png"), dtype=np.float32) / 255.0
    assert y == 1 and tuple(x.shape) == (3, 12, 12)
    assert torch.equal(x, torch.from_numpy(raw).permute(2, 0, 1))  # pixels in [0, 1], channel-major
    x8, _ = image_folder(user / "imgs", size=8, normalize="imagenet")[0]
    assert tuple(x8.shape) == (3, 8, 8)


# -- the Python API with an nn.Module and a DataLoader --------------------------------------------
def test_api_module_and_dataloader(user, tmp_path):
    net = _tiny(user)
    data = torch.utils.data.TensorDataset(torch.rand(24, 3, 12, 12, generator=torch.Generator().manual_seed(3)),
                                          torch.arange(24) % 3)
    loader = torch.utils.data.DataLoader(data, batch_size=5)
    out = tmp_path / "rows.jsonl"
    rows = run_sweep(net, loader, "int12,e5m3", groups=["features"], limit=16, out=out,
                     data_options=dict(model_name="tiny", dataset_name="noise"), progress_enabled=False)
    assert [r["layer"] for r in rows] == ["all", "all", "features", "all", "features"]
    assert rows[0]["model"] == "tiny" and rows[0]["dataset"] == "noise" and rows[0]["n_images"] == 16
    assert rows[0]["checkpoint"] == model_digest(net) and rows[2]["layers"] == ["features.0", "features.2"]
    assert rows[0]["calib"] == "test[:256]"
    # rerun: every row read back from the file, none recomputed
    seen = []
    run_sweep(net, loader, "int12,e5m3", groups=["features"], limit=16, out=out, on_row=lambda r, c: seen.append(c),
              data_options=dict(model_name="tiny", dataset_name="noise"), progress_enabled=False)
    assert seen and not any(seen)
    # the DataLoader's accuracy equals a hand loop over the same 16 images
    q = emulate(net, "a=int8,b=int8,acc=int12", calib=data.tensors[0])
    with torch.no_grad():
        hand = 100.0 * float((q(data.tensors[0][:16]).argmax(1) == data.tensors[1][:16]).double().mean())
    assert rows[1]["accuracy"] == pytest.approx(hand)
    # other weights, other key
    net2 = _tiny(user)
    with torch.no_grad():
        net2.head.bias.add_(1.0)
    assert model_digest(net2) != model_digest(net)
    res = search_min_acc(net, loader, kind="int", lo=6, hi=12, limit=16, tol=100.0, progress_enabled=False,
                         metric=lambda out, y: out.argmax(1) == y)
    assert res["min"] == 6 and res["rows"][0]["metric"] == "<lambda>"


def test_run_search_groups_on_user_file(user):
    res = run_search(f"{user}/mynet.py:build", "imagefolder", "int?", groups=["features.*"], lo=8, hi=16,
                     checkpoint=user / "sd.pt", data_dir=user / "imgs", limit=12, tol=50.0, progress_enabled=False)
    assert [r["layer"] for r in res] == ["all", "features.*"] and all(r["min"] is not None for r in res)


def test_sweep_search_cli_on_user_model(user, tmp_path, capsys):
    rc, out, err = _run(["sweep", "--model", f"{user}/mynet.py:build", "--checkpoint", str(user / "sd.pt"),
                         "--dataset", "imagefolder", "--data-dir", str(user / "imgs"), "--search", "--acc", "int?",
                         "--layer", "head", "--limit", "12", "--tol", "50", "--out", str(tmp_path / "s.jsonl")],
                        capsys)
    assert rc == 0, err
    assert f"{user}/mynet.py:build/imagefolder:{user / 'imgs'}: fp32 baseline" in out
    assert "int?:wrap" in out and "head" in out


def test_dataset_function(user, capsys):
    rc, out, err = _run(["eval", "--model", f"{user}/mynet.py:build", "--dataset", f"{user}/mynet.py:data",
                         "--spec", SPEC, "--layer", "head", "--json"], capsys)
    assert rc == 0, err
    row = json.loads(out)
    assert row["n_images"] == 20 and row["calib"] == "train[:256]" and row["float_layers"] == ["features.0", "features.2"]


# -- granularity ------------------------------------------------------------------------------------
def test_select_layers_patterns():
    from psum.nets.models import build_model

    net = build_model("resnet18", 10, 3, width=0.125)
    assert select_layers(net, "layer3") == select_layers(net, "layer3.*")
    assert len(select_layers(net, "layer3")) == 5  # two blocks of two convs, one shortcut conv
    assert select_layers(net, "layer3.0") == ["layer3.0.conv1", "layer3.0.conv2", "layer3.0.downsample.0"]
    assert select_layers(net, "conv1|fc") == ["conv1", "fc"]
    with pytest.raises(ValueError, match=r"^layer 'layer9' selects none of the Conv2d/Linear layers: conv1, "):
        select_layers(net, "layer9")


def test_spec_file_first_match_wins(user, tmp_path, capsys):
    f = tmp_path / "specs.json"
    f.write_text(json.dumps({"features.0": "a=int8,b=int8,acc=int16", "features.*": SPEC}))
    net = _tiny(user)
    target, rest = spec_map(net, read_spec_file(f))
    assert {k: str(v) for k, v in target.items()} == {"features.0": "a=int8,b=int8,acc=int16,round=rne,overflow=wrap",
                                                      "features.2": SPEC + ",round=rne,overflow=wrap"}
    assert rest == ["head"]
    rc, out, err = _run(["eval", "--model", f"{user}/mynet.py:build", "--dataset", "imagefolder", "--data-dir",
                         str(user / "imgs"), "--spec-file", str(f)], capsys)
    assert rc == 0, err
    assert "[per-op]" in out and out.strip().endswith("emulated 2 ops, 99.7 % of MACs; float: head (not in the spec mapping)")
    f.write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"must hold one object mapping layer patterns to spec text$"):
        read_spec_file(f)


# -- checkpoints: every accepted kind, and the refused ones -----------------------------------------
def test_checkpoint_kinds(user, tmp_path):
    net = _tiny(user)
    sd = net.state_dict()
    torch.save({"state_dict": sd, "epoch": 3}, tmp_path / "wrapped.pt")
    torch.save({"module." + k: v for k, v in sd.items()}, tmp_path / "dp.pt")
    for name, kind in (("wrapped.pt", "state_dict (under 'state_dict')"), ("dp.pt", "state_dict")):
        fresh = _tiny(user)
        with torch.no_grad():
            fresh.head.weight.zero_()
        loaded, what = load_weights(fresh, tmp_path / name)
        assert what == kind and torch.equal(loaded.head.weight, sd["head.weight"])
    # torch.export archive: loads without unpickling, the model comes from the file
    ep = torch.export.export(net, (torch.rand(2, 3, 12, 12),), dynamic_shapes=({0: torch.export.Dim("n")},))
    torch.export.save(ep, tmp_path / "net.pt2")
    gm, what = load_weights(None, tmp_path / "net.pt2")
    x = torch.rand(5, 3, 12, 12)
    assert what == "torch.export archive" and torch.allclose(gm(x), net(x))


def test_whole_model_needs_the_opt_in(user, tmp_path, capsys):
    import sys

    sys.path.insert(0, str(user))
    try:
        import mynet  # noqa: F401  (torch.save pickles the class by its module name)

        torch.save(mynet.build(), tmp_path / "whole.pt")
    finally:
        sys.path.remove(str(user))
    with pytest.raises(PsumError, match=r"whole.pt needs full unpickling \(it names mynet.Tiny: a whole saved "
                                        r"model\?\), which runs code from the file; pass --trust-checkpoint"):
        load_weights(None, tmp_path / "whole.pt")
    sys.path.insert(0, str(user))
    try:
        net, what = load_weights(None, tmp_path / "whole.pt", trust=True)
    finally:
        sys.path.remove(str(user))
    assert what == "whole saved model" and isinstance(net, nn.Module)
    rc, _, err = _run(["eval", "--checkpoint", str(tmp_path / "whole.pt"), "--dataset", "imagefolder",
                       "--data-dir", str(user / "imgs")], capsys)
    assert rc == 2 and err.count("\n") == 1 and "--trust-checkpoint" in err


class _Evil:
    """A pickle payload whose loading would create a file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_malicious_checkpoint_runs_nothing(user, tmp_path, capsys):
    marker = tmp_path / "pwned"
    with open(tmp_path / "evil.pt", "wb") as fh:
        pickle.dump({"state_dict": _Evil(marker)}, fh)
    torch.save({"w": _Evil(marker)}, tmp_path / "evil2.pt")
    for name in ("evil.pt", "evil2.pt"):
        rc, _, err = _run(["eval", "--model", f"{user}/mynet.py:build", "--checkpoint", str(tmp_path / name),
                           "--dataset", "imagefolder", "--data-dir", str(user / "imgs")], capsys)
        assert rc == 2 and err.count("\n") == 1, err
    assert not marker.exists()


def test_export_archive_with_pickled_sample_inputs_is_refused(user, tmp_path):
    import zipfile

    net = _tiny(user)
    ep = torch.export.export(net, (torch.rand(2, 3, 12, 12),))
    torch.export.save(ep, tmp_path / "net.pt2")
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt2"
    with zipfile.ZipFile(tmp_path / "net.pt2") as src, zipfile.ZipFile(evil, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if "/data/sample_inputs/" in item.filename:
                import io

                buf = io.BytesIO()
                torch.save(_Evil(marker), buf)
                data = buf.getvalue()
            dst.writestr(item, data)
    with pytest.raises(PsumError, match=r"is a torch.export archive with a pickled sample inputs .*--trust-checkpoint"):
        load_weights(None, evil)
    assert not marker.exists()


def test_crafted_cifar_batch_is_refused(user, tmp_path, capsys):
    marker = tmp_path / "pwned"
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(base / name, "wb") as fh:
            pickle.dump({b"data": _Evil(marker), b"labels": [0]}, fh)
    rc, _, err = _run(["eval", "--model", f"{user}/mynet.py:build", "--dataset", "cifar10", "--data-dir",
                       str(tmp_path)], capsys)
    assert rc == 2 and err.count("\n") == 1
    assert err == (f"psum eval: error: {base}/test_batch tries to load io.open, which a cifar10 batch never "
                   "holds; refused (psum reads pickles as data only: dicts, lists, bytes, ints, numpy arrays)\n")
    assert not marker.exists()


# -- bad input: one line, exit 2, before any work ------------------------------------------------------
def test_bad_user_input_messages(user, tmp_path, capsys):
    imgs = ["--dataset", "imagefolder", "--data-dir", str(user / "imgs")]
    m = f"{user}/mynet.py"
    torch.save({"features.0.weight": torch.zeros(4, 3, 3, 3), "extra.weight": torch.zeros(1)}, tmp_path / "part.pt")
    cases = [
        (["--model", f"{m}:nope"] + imgs,
         f"--model {m}:nope: {m} has no function 'nope' (it defines Tiny, bad_labels, build, data, not_a_module, "
         "two_classes)"),
        (["--model", f"{m}:not_a_module"] + imgs, f"--model {m}:not_a_module returned int, not a torch.nn.Module"),
        (["--model", f"{m}:two_classes"] + imgs,
         f"dataset imagefolder:{user / 'imgs'} has 3 classes (blue, green, red) but the model has 2 outputs"),
        (["--model", f"{m}:build", "--checkpoint", str(tmp_path / "part.pt")] + imgs,
         f"{tmp_path / 'part.pt'} (state_dict) does not fit {m}:build: missing keys features.0.bias, "
         "features.2.weight, features.2.bias, head.weight (+1 more); unexpected keys extra.weight"),
        (["--model", f"{m}:build", "--dataset", f"{m}:bad_labels"],
         f"dataset {m}:bad_labels has labels 0..7 but the model has 3 outputs (classes 0..2)"),
        (["--model", f"{m}:build", "--dataset", f"{m}:nodata"],
         f"--dataset {m}:nodata: {m} has no function 'nodata' (it defines Tiny, bad_labels, build, data, "
         "not_a_module, two_classes)"),
        (["--model", f"{m}:build", "--dataset", "imagefolder", "--data-dir", str(tmp_path / "nowhere")],
         f"imagefolder: {tmp_path / 'nowhere'} is not a folder; expected DIR/<class>/*.png|jpg (one folder per "
         "class), or DIR/{train,val}/<class>/*"),
    ]
    for argv, message in cases:
        rc, out, err = _run(["eval"] + argv, capsys)
        assert (rc, out) == (2, ""), (argv, err)
        assert err == f"psum eval: error: {message}\n", err


# -- the report on a user model, through the API ------------------------------------------------------
@pytest.mark.slow  # ~2 min on 2 cores: five units checked in Icarus and synthesised
def test_report_on_user_model_api(user, tmp_path):
    from psum.reports.report import ReportConfig, build_report

    net = _tiny(user)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(
        torch.rand(12, 3, 12, 12, generator=torch.Generator().manual_seed(5)), torch.arange(12) % 3), batch_size=4)
    cfg = ReportConfig(float_exps=(4,), max_man=3, int_widths=(16,), limit=12, per_layer=False, groups=("features",),
                       sim_cycles=100, stats_images=4, power_outputs=1, tol=99.0)
    data = build_report(cfg, model=net, dataset=loader, out_dir=tmp_path / "rep", quiet=True, progress_enabled=False,
                        data_options=dict(model_name="tiny", dataset_name="noise"))
    assert data["checkpoint"]["model"] == "tiny" and tuple(data["config"]["groups"]) == ("features",)
    assert {r["layer"] for r in data["layer_min"]} == {"features"}
    assert data["power_layer"] == "features.2" and data["hardware"]
    assert (tmp_path / "rep" / "index.html").is_file()


def test_unreadable_labels_are_checked_per_batch(user):
    class Lazy(torch.utils.data.Dataset):  # no .targets: labels are only seen while evaluating
        def __len__(self):
            return 6

        def __getitem__(self, i):
            return torch.rand(3, 12, 12), 5 if i == 4 else 0

    with pytest.raises(ValueError, match=r"^the data has label 5 but the model has 3 outputs \(classes 0..2\)$"):
        evaluate_spec(_tiny(user), Lazy(), batch_size=2, progress_enabled=False)


class _MvNet(torch.nn.Module):
    """A Linear layer and a torch.mv (a MAC op psum does not emulate) side by side."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(16, 3)
        self.v = torch.nn.Parameter(torch.ones(16))

    def forward(self, x):
        x = x.reshape(x.shape[0], -1)[:, :16]
        return self.fc(x) + torch.stack([torch.mv(x, self.v)] * 3, dim=1) * 0


def test_eval_strict_refuses_a_mac_op_left_in_float():
    from torch.utils.data import TensorDataset

    from psum.errors import PsumError
    from psum.sweeps.sweep import evaluate_spec

    data = TensorDataset(torch.rand(8, 1, 4, 4), torch.randint(0, 3, (8,)))
    spec = "a=int8,b=int8,acc=int16"
    row = evaluate_spec(_MvNet(), data, spec)  # the API default reports, with the coverage line
    assert row["coverage"].startswith("emulated 1 op, ") and "mv" in row["coverage"]
    with pytest.raises(PsumError, match="mv"):
        evaluate_spec(_MvNet(), data, spec, strict=True)
