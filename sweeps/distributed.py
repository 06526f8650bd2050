"""Sweep evaluations as Ray tasks: (model x spec x layer group x image shard), one writer.

:func:`psum.sweeps.sweep.run_sweep` and :func:`~psum.sweeps.sweep.search_min_acc` (and so
``psum sweep --ray`` and ``psum report --ray``) hand their pending rows to :class:`RayBackend`:
the model, its calibration and the test images are put in Ray's object store once; every row is
split into image shards whose bounds are multiples of the batch size (so each batch, and with it
every emulated partial sum, is the one a serial run computes); each shard is one task that
emulates the network and returns its correct-image counts; the driver adds the counts of a row's
shards, builds the row exactly as the serial path does and is the only writer of the JSON Lines
results file, row by row as rows complete, so an interrupted Ray sweep resumes like a serial one.

Rows whose images must not be regrouped stay one task each: stochastic rounding (its random bits
follow the batch order) and a user ``metric`` (a mean of floats, whose sum in another order may
round differently).

Ray is optional (``pip install 'ray==2.60.0'`` or the ``ray`` extra); :func:`require_ray` says so
in one line.
"""

from __future__ import annotations

import contextlib
import math
import time

from psum.errors import PsumError

__all__ = ["RayBackend", "require_ray", "RAY_HINT", "ray_cluster", "default_ray"]

RAY_HINT = "pip install 'ray==2.60.0' (or pip install -e '.[ray]')"
_DEFAULT: list = [None]  # the address set by ray_cluster(), used when a sweep is given none


def require_ray():
    """The ``ray`` module, or a one-line :class:`PsumError` naming the install command."""
    try:
        import ray
    except ImportError:
        raise PsumError(f"Ray is not installed: {RAY_HINT}") from None
    return ray


@contextlib.contextmanager
def ray_cluster(address):
    """Within the block, sweeps and searches given no ``ray=`` run on ``address`` (``"local"`` or
    a Ray address; ``None``: serial). ``psum report --ray`` wraps the report in it."""
    if address is not None:
        require_ray()
    old, _DEFAULT[0] = _DEFAULT[0], address
    try:
        yield
    finally:
        _DEFAULT[0] = old


def default_ray():
    """The address :func:`ray_cluster` set, else ``None``."""
    return _DEFAULT[0]


def _shard_task(payload, spec_text, layer_names, start, stop):
    """One shard: emulate ``spec_text`` on ``layer_names`` (None: all) and count correct images
    ``start:stop`` of the test set. Returns ``{"top<k>": correct, "n": images, "s": seconds}``."""
    import torch

    from psum.golden import MacSpec
    from psum.golden.emulation.layers import emulate
    from psum.nets.train import evaluate

    t0 = time.perf_counter()
    torch.set_num_threads(1)  # one Ray CPU per task: no oversubscription of the node
    spec = MacSpec.parse(spec_text)
    target = spec if layer_names is None else {name: spec for name in layer_names}
    net = emulate(payload["net"], target, calib=payload["calib"], weight_scale=payload["weight_scale"],
                  act_scale=payload["act_scale"], seed=payload["seed"], device=payload["device"])
    test = payload["test"]
    data = test if (start, stop) == (0, payload["n_images"]) else torch.utils.data.Subset(test, range(start, stop))
    acc = evaluate(net, data, limit=stop - start, batch_size=payload["batch_size"], topk=payload["topk"],
                   device=payload["device"], metric=payload["metric"], progress_bar=_NoBar())
    n = acc["n_images"]
    out = {"n": n, "s": time.perf_counter() - t0, "acc": acc}
    # evaluate reports 100 * correct / n; the count is recovered exactly (n is far below 2**40)
    for k in payload["topk"]:
        out[f"top{k}"] = round(acc[f"top{k}"] * n / 100.0) if f"top{k}" in acc else None
    return out


class _NoBar:
    """A silent progress bar for the workers (the driver shows rows done)."""

    def update(self, n=1):
        pass


class RayBackend:
    """Runs a sweep context's pending rows as Ray tasks (see the module docstring).

    Parameters
    ----------
    ctx : psum.sweeps.sweep._Context
        The sweep's model, data, calibration and results file.
    address : str
        ``"local"``: a Ray instance on this machine (started here unless one is already
        initialised in this process); else the address of a running cluster (``ray://...`` or
        ``HOST:PORT``).
    select : callable
        ``select(net, pattern) -> layer names`` (:func:`psum.sweeps.sweep.select_layers`; passed
        in, so this module does not import the sweep module that imports it).
    """

    def __init__(self, ctx, address: str, select):
        ray = require_ray()
        if not isinstance(address, str) or not address:
            raise ValueError(f"ray must be 'local' or a Ray cluster address, not {address!r}")
        if not ray.is_initialized():
            ray.init(address=None if address == "local" else address, include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
        self.ray = ray
        self.ctx = ctx
        self.select = select
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.workers = max(cpus, 1)
        self.payload = ray.put(dict(net=ctx.net, calib=ctx.calib, test=ctx.test, weight_scale=ctx.weight_scale,
                                    act_scale=ctx.act_scale, seed=ctx.seed, device=str(ctx.device),
                                    batch_size=ctx.batch_size, topk=tuple(ctx.topk), metric=ctx.metric,
                                    n_images=ctx.n_images))
        self.task = ray.remote(num_cpus=1)(_shard_task)

    def shards(self, spec) -> list[tuple[int, int]]:
        """Image ranges of one row: about one per worker, bounds on multiples of the batch size."""
        import torch

        n, bs = self.ctx.n_images, self.ctx.batch_size
        whole = [(0, n)]
        if (spec.rounding.value == "sr" or self.ctx.metric is not None
                or not isinstance(self.ctx.test, torch.utils.data.Dataset)):
            return whole
        batches = math.ceil(n / bs)
        per = max(1, math.ceil(batches / self.workers)) * bs
        return [(s, min(s + per, n)) for s in range(0, n, per)] or whole

    def run(self, jobs) -> list[dict]:
        """Rows of ``jobs`` (``(spec, layer)`` pairs) in order; pending ones computed as tasks.

        Each row is stored (appended to the results file) by this process as soon as its last
        shard returns.
        """
        ctx = self.ctx
        base = ctx.baseline()
        rows: dict[int, dict] = {}
        waiting: dict = {}  # task ref -> job index
        parts: dict[int, list] = {}
        for i, (spec, layer) in enumerate(jobs):
            row = ctx.lookup(str(spec), layer)
            if row is not None:
                rows[i] = row
                continue
            names = None if layer == "all" else self.select(ctx.net, layer)
            ranges = self.shards(spec)
            parts[i] = [None] * len(ranges)
            for j, (a, b) in enumerate(ranges):
                waiting[self.task.remote(self.payload, str(spec), names, a, b)] = (i, j)
        while waiting:
            done, _ = self.ray.wait(list(waiting), num_returns=1)
            for ref in done:
                i, j = waiting.pop(ref)
                parts[i][j] = self.ray.get(ref)
                if all(p is not None for p in parts[i]):
                    spec, layer = jobs[i]
                    rows[i] = self._store(spec, layer, parts.pop(i), base)
        return [rows[i] for i in range(len(jobs))]

    def _store(self, spec, layer, parts, base) -> dict:
        ctx = self.ctx
        if len(parts) == 1:
            acc = parts[0]["acc"]
        else:
            n = sum(p["n"] for p in parts)
            # as evaluate computes it from the whole set's counts
            acc = {f"top{k}": 100.0 * sum(p[f"top{k}"] for p in parts) / max(n, 1)
                   for k in ctx.topk if parts[0][f"top{k}"] is not None}
            acc["n_images"] = n
        row = ctx._row(str(spec), layer, acc, sum(p["s"] for p in parts), spec, base)
        ctx.store(row)
        return row
