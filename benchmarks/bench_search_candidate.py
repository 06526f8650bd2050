"""Per-row CPU seconds of per-layer rows on ResNet18 w0.125 digits: whole model against the cached
float prefix (:mod:`psum.sweeps.reuse`), two formats per layer, same accuracy asserted.

Run: ``.venv/bin/python benchmarks/bench_search_candidate.py`` (a few minutes on a loaded 2-core machine).
"""
import time
from psum.sweeps.sweep import _Context, make_spec
from psum.sweeps.reuse import PrefixCache
kw = dict(data_dir=None, limit=120, out=None, checkpoint=None, batch_size=64, device="cpu", progress_enabled=False,
          weight_scale="channel", act_scale="tensor", seed=0, train_if_missing=False)
off = _Context("resnet18", "digits", reuse=False, **kw)
on = _Context("resnet18", "digits", reuse=PrefixCache(), **kw)
base = off.baseline(); on.baseline()
for layer in ("layer2.0.conv1", "layer4.1.conv2", "fc"):
    for acc in ("int14:wrap", "int16:wrap"):
        spec = make_spec(acc)
        c0 = time.process_time(); r1 = off._compute(spec, str(spec), layer, base); c1 = time.process_time()
        r2 = on._compute(spec, str(spec), layer, base); c2 = time.process_time()
        assert r1["accuracy"] == r2["accuracy"]
        print(f"{layer:16} {acc:11} whole model {c1-c0:6.2f} CPU s   cached prefix {c2-c1:6.2f} CPU s   "
              f"{(c1-c0)/(c2-c1):5.2f}x  acc {r1['accuracy']:.2f} == {r2['accuracy']:.2f}", flush=True)
