"""Accumulator sweeps: network accuracy per MAC spec, network-wide and per layer, with resume.

:func:`run_sweep` evaluates a trained model (see :mod:`psum.nets.train`) with every Conv2d/Linear
computed bit-exactly by :func:`psum.golden.emulation.layers.emulate` under each accumulator format, and
:func:`search_min_acc` finds the smallest accumulator within a tolerance of the float32 baseline.
Both append one JSON object per finished row to a results file (:class:`psum.resultsfile.ResultsFile`)
and skip rows already there, so an interrupted run resumes where it stopped.

Spec construction
-----------------
An accumulator entry is ``FMT[:OVERFLOW]`` (``e5m6``, ``fp16``, ``int16:sat``). The operand formats
default to **fp8_e4m3 × fp8_e4m3 for float accumulators and int8 × int8 for integer ones**: both
are 8-bit operands, so float and integer accumulators are compared at the same operand width,
which is the comparison the trade-off report makes. Operand scaling is emulate's default
(per-output-channel weights, per-tensor activations; powers of two for float operands), with
activation scales calibrated on the first 256 training images (a float forward), so a row does
not depend on the batch size or on ``limit``.

Rows
----
Each row holds ``model`` (a built-in name, the ``FILE.py:FUNC`` text, or the given model name),
``dataset``, ``spec`` (``str(MacSpec)``), ``layer`` (``"all"``, a layer name or a group pattern;
the other layers stay float32; ``layers`` lists a group's members), ``acc`` (format text),
``kind`` (``float``/``int``), ``acc_bits`` (accumulator width), ``exp_bits``/``man_bits`` or
``int_bits``, ``overflow``, ``accuracy`` (top-1 %, or a given metric's mean x 100 with ``metric``
naming it), ``top5`` (ImageNet), ``baseline_accuracy`` (float32 model on the same images),
``n_images``, ``limit``, ``seconds``, ``checkpoint`` (first 12 hex digits of the psum checkpoint
file's SHA-256, or of a user model's state_dict: :func:`psum.nets.user.model_digest`), ``calib``,
``psum_version``, ``numerics`` (:data:`psum.golden.NUMERICS_VERSION`). The baseline itself is a
row with ``spec = "fp32"``. A row's key (:data:`KEY_FIELDS`) is everything its accuracy depends
on: (model, dataset, checkpoint, spec, layer, n_images, calib, weight_scale, act_scale, seed --
for ``round=sr`` specs only --, metric, numerics). The batch size and the device are not in it:
the emulation is bit-exact and stochastic rounding draws its bits per image
(:mod:`psum.golden.emulation.layers`), so rows computed at ``--batch-size 7`` and ``256`` are
identical. Rows of another numerics version are recomputed, never reused.

Search rule
-----------
Accuracy is *not* strictly monotone in accumulator bits (a narrower accumulator can be luckily
better by a few images), so the search states its rule: with ``hi`` passing, bisection over
``[lo, hi]`` (assuming monotonicity) gives a candidate ``m`` where ``m`` passes and ``m - 1`` was
evaluated and fails (or ``m = lo``). The candidate is then confirmed by ``m + 1``: if ``m + 1``
fails, ``m`` passed by chance, and the bisection restarts on ``[m + 2, hi]``. The reported
minimum therefore passes, its neighbour above passes and its neighbour below fails. "Passes" means
``accuracy >= baseline_accuracy - tol`` (percentage points, top-1), or with
``relative_to="operands"`` the accuracy of the same operands with a wide accumulator (fp32 /
int32) minus ``tol``. If ``hi`` fails the result is ``None``.
"""

from __future__ import annotations

import contextlib
import datetime
import sys
import time

from psum import __version__
from psum._util import check_int
from psum.errors import PsumError
from psum.golden.numerics import NUMERICS_VERSION
from psum.progress import progress
from psum.resultsfile import ResultsFile

__all__ = ["run_sweep", "search_min_acc", "min_passing", "make_spec", "parse_acc_list", "KEY_FIELDS",
           "SEARCH_RANGES", "SEARCH_DEFAULT", "parse_search_entry", "search_entry_text", "search_label",
           "run_search", "family", "network_points", "evaluate_spec", "workload", "select_layers", "spec_map",
           "read_spec_file", "check_device"]

CALIB_IMAGES = 256
# Everything a row's accuracy depends on (the batch size and the device do not: emulation is
# bit-exact and stochastic rounding follows the image, not the batch). ``seed`` is keyed only for
# stochastic-rounding specs (None otherwise), ``numerics`` is psum.golden.NUMERICS_VERSION.
# ``early_stop`` is None (absent) for a full measurement and the rule's name for a search candidate
# stopped early (psum.sweeps.earlystop): a full-accuracy lookup never finds a stopped row.
KEY_FIELDS = ("model", "dataset", "checkpoint", "spec", "layer", "n_images", "calib", "weight_scale",
              "act_scale", "seed", "metric", "numerics", "early_stop")
# The schema of a sweep row read back from a results file: the fields readers index, with their
# JSON types, so a foreign or edited row is one line naming its file and line rather than a
# KeyError or TypeError deep in a plot (psum.resultsfile). The key fields added with numerics
# version 2 are not required: rows of version 1 load and are recomputed with a notice.
ROW_SCHEMA = {"model": "str", "dataset": "str", "checkpoint": "str?", "spec": "str", "layer": "str",
              "n_images": "int", "calib": "str?", "accuracy": "float", "baseline_accuracy": "float"}
# Searched parameter ranges (inclusive) per search kind; the format library's limits bound them.
SEARCH_RANGES = {"man": (1, 23), "exp": (2, 8), "int": (4, 32)}
# The format field each search kind varies (a candidate is ``template.replace(field=v)``).
_SEARCH_FIELD = {"man": "man_bits", "exp": "exp_bits", "int": "bits"}
_SEARCH_ENTRY_HELP = "e<E>m?, e?m<M> or int?[:wrap|:sat]"


def parse_search_entry(entry: str) -> tuple[str, dict, str | None]:
    """A search template: ``e5m?`` -> ``("man", {"exp_bits": 5}, None)``, ``e?m7`` -> ``("exp",
    {"man_bits": 7}, None)``, ``int?[:sat]`` -> ``("int", {}, "sat")`` (overflow default wrap).

    The template is read with the format grammar itself (:func:`psum.golden.parse_format`, with
    the ``?`` probed as 2 and 3), so there is no second format grammar here. Only plain IEEE-style
    ``e<E>m<M>`` and signed ``int<N>`` templates are searchable, one field at a time.

    Raises
    ------
    ValueError
        ``search entry must be e<E>m?, e?m<M> or int?[:wrap|:sat], not '...'``.
    """
    from psum.golden import FloatFormat, IntFormat, parse_format

    text, _, overflow = str(entry).partition(":")
    bad = ValueError(f"search entry must be {_SEARCH_ENTRY_HELP}, not {entry!r}")
    if text.count("?") != 1:
        raise bad
    try:
        lo, hi = (parse_format(text.replace("?", str(v))) for v in (2, 3))
    except ValueError:
        raise bad from None
    if isinstance(lo, IntFormat):
        if lo.signed and (lo.bits, hi.bits) == (2, 3):
            return "int", {}, overflow or "wrap"
        raise bad
    if not (isinstance(lo, FloatFormat) and isinstance(hi, FloatFormat)):
        raise bad  # q?.8, uint?: fixed point and unsigned have no search (was an AttributeError traceback)
    if lo != FloatFormat(lo.exp_bits, lo.man_bits) or hi != FloatFormat(hi.exp_bits, hi.man_bits):
        raise bad  # a policy suffix, _ftz or a bias: not a searchable template
    if (lo.man_bits, hi.man_bits) == (2, 3) and lo.exp_bits == hi.exp_bits:
        return "man", {"exp_bits": lo.exp_bits}, overflow or None
    if (lo.exp_bits, hi.exp_bits) == (2, 3) and lo.man_bits == hi.man_bits:
        return "exp", {"man_bits": lo.man_bits}, overflow or None
    raise bad


def search_entry_text(kind: str, fixed: int | None = None, overflow: str | None = None) -> str:
    """The template text of a search, the inverse of :func:`parse_search_entry` (``e5m?``, ``int?:sat``).

    ``fixed`` is the fixed field (``exp_bits`` for ``"man"``, ``man_bits`` for ``"exp"``), as in
    the ``fixed`` entry of :func:`search_min_acc`'s result.
    """
    text = {"man": f"e{fixed}m?", "exp": f"e?m{fixed}", "int": "int?"}[kind]
    return text + (f":{overflow}" if overflow else "")


def make_spec(acc, *, a=None, b=None, rounding="rne", overflow=None, extra=None):
    """The :class:`~psum.golden.MacSpec` of one sweep row.

    Parameters
    ----------
    acc : str or Format
        Accumulator format text, optionally ``FMT:OVERFLOW`` (``int16:sat``).
    a, b : str or Format, optional
        Operand formats; default :func:`psum.golden.spec.default_operand` of the accumulator
        (``DEFAULT_OPERANDS``: fp8_e4m3 for float accumulators, int8 for integer ones).
    rounding : str
        Rounding mode of the accumulator (and product, if unfused), for a unit that rounds: a
        unit that never rounds (an integer accumulator, :attr:`MacSpec.rounds`) is the ``rne``
        unit its spec text names, so one mode serves a mixed list (``e5m6,int16``);
        :func:`run_sweep` and :func:`run_search` refuse a mode that applies to none of theirs.
    overflow : str, optional
        Overflow policy when ``acc`` has no ``:OVERFLOW`` suffix (default: the spec's default).
    extra : str, optional
        More ``key=value`` spec fields, comma-separated (``order=chunk32,acc2=fp16``).

    Raises
    ------
    ValueError
        Bad format, combination or field (one line, from :class:`MacSpec`).
    """
    from psum.golden import MacSpec
    from psum.golden.spec import default_operand

    text = str(acc)
    if ":" in text:
        text, overflow = text.split(":", 1)
    operand = default_operand(text)
    fields = [f"a={a or operand}", f"b={b or operand}", f"acc={text}", f"round={rounding}"]
    if overflow:
        fields.append(f"overflow={overflow}")
    if extra:
        fields.append(extra)
    try:
        return MacSpec.parse(",".join(fields))
    except ValueError as exc:
        try:  # the same unit without the mode: taken where the mode was its only fault
            plain = MacSpec.parse(",".join(f for f in fields if f != f"round={rounding}"))
        except ValueError:
            raise exc from None
        if plain.rounds:
            raise
        return plain


def _check_mode_applies(rounding, specs, entries) -> None:
    """Refuse a rounding mode that none of ``specs`` can use (:func:`make_spec` leaves it out of
    the units that never round): ``--acc int16 --round rtz`` would run rne and say nothing."""
    from psum.golden.rounding import Rounding, parse_rounding

    mode = parse_rounding(rounding)
    if mode is not Rounding.RNE and not any(s.rounds for s in specs):
        listed = ", ".join(parse_acc_list(entries))
        raise ValueError(f"round={mode.value} has no effect on {listed}: none of these accumulators rounds (an "
                         f"integer one adds exact integer products)")


def parse_acc_list(text) -> list[str]:
    """Split ``"e5m6,e5m8,int16:sat"`` (or a list of such strings) into entries."""
    items = text if isinstance(text, (list, tuple)) else [text]
    out = [t.strip() for item in items for t in str(item).split(",") if t.strip()]
    if not out:
        raise ValueError("acc must list at least one accumulator format, not ''")
    return out


def _fmt_fields(spec) -> dict:
    from psum.golden import IntFormat

    acc = spec.acc
    if isinstance(acc, IntFormat):
        return {"kind": "int", "acc_bits": acc.bits, "int_bits": acc.bits}
    if not acc.is_float:  # fixed point q<I>.<F>
        return {"kind": "fixed", "acc_bits": acc.width, "int_bits": acc.int_bits, "frac_bits": acc.frac_bits}
    return {"kind": "float", "acc_bits": acc.width, "exp_bits": acc.exp_bits, "man_bits": acc.man_bits}


class _Context:
    """Model, data, baseline and results file shared by the rows of one sweep or search."""

    def __init__(self, model, dataset, *, data_dir, limit, out, checkpoint, batch_size, device,
                 progress_enabled, weight_scale, act_scale, seed, train_if_missing, metric=None, data_options=None,
                 ray=None, reuse=True):
        import torch

        from .distributed import default_ray, require_ray

        from .reuse import PrefixCache

        if not isinstance(reuse, (bool, PrefixCache)):  # before the model loads
            raise ValueError(f"reuse must be True, False or a PrefixCache, not {reuse!r}")
        ray = default_ray() if ray is None else ray
        if ray is not None:
            if not isinstance(ray, str) or not ray:
                raise ValueError(f"ray must be 'local' or a Ray cluster address, not {ray!r}")
            require_ray()  # one line before the model loads

        if limit is not None:
            check_int("limit", limit, 1)
        check_int("batch_size", batch_size, 1)
        from psum.nets.train import resolve_device

        self.device = resolve_device(device)  # a bad --device, before the model and data load
        # Opened (and checked: a foreign file is refused untouched) before the model and data load.
        self.results = ResultsFile(out, KEY_FIELDS, required=ROW_SCHEMA) if out is not None else None
        wl = workload(model, dataset, checkpoint=checkpoint, data_dir=data_dir, metric=metric,
                      train_if_missing=train_if_missing, data_options=data_options)
        self.wl = wl
        self.net, self.meta, self.test = wl.net, wl.meta, wl.test
        self.model, self.dataset, self.topk, self.metric = wl.model, wl.dataset, wl.topk, wl.metric
        from psum.nets.train import dataset_size

        size = dataset_size(self.test)
        self.n_images = size if limit is None else min(limit, size)
        self.limit = limit
        self.batch_size = batch_size
        self.progress_enabled = progress_enabled
        self.weight_scale, self.act_scale, self.seed = weight_scale, act_scale, seed
        self.checkpoint = wl.checkpoint
        self.calib_name = wl.calib_name
        self.calib = wl.calib
        self.memory: dict = {}
        self.bar_images = None
        self.ray_address = ray
        self._ray = None
        # the float prefix of per-layer / per-group rows, computed once per batch (psum.sweeps.reuse)
        self.prefix_cache = (PrefixCache() if reuse is True else reuse) or None
        if self.results is not None:
            old = [r for r in self.results.rows if r.get("numerics") != NUMERICS_VERSION]
            if old:  # never mixed silently: say once that they are recomputed, not reused
                versions = sorted({str(r.get("numerics", 1)) for r in old})
                print(f"psum: {out}: {len(old)} rows of numerics version {', '.join(versions)} are "
                      f"recomputed (this psum computes version {NUMERICS_VERSION})", file=sys.stderr)

    def ray_backend(self):
        """The :class:`psum.sweeps.distributed.RayBackend` of a Ray sweep (made on first use), else None."""
        if self.ray_address is None:
            return None
        if self._ray is None:
            from .distributed import RayBackend

            self._ray = RayBackend(self, self.ray_address, select_layers)
        return self._ray

    def key(self, spec_text: str, layer: str, early_stop: str | None = None) -> dict:
        return {"model": self.model, "dataset": self.dataset, "checkpoint": self.checkpoint, "spec": spec_text,
                "layer": layer, "n_images": self.n_images, "calib": self.calib_name,
                "weight_scale": self.weight_scale, "act_scale": self.act_scale,
                "seed": self.seed if "round=sr" in spec_text else None,
                "metric": getattr(self.metric, "__name__", None) if self.metric is not None else None,
                "numerics": NUMERICS_VERSION, "early_stop": early_stop}

    def lookup(self, spec_text, layer, early_stop=None):
        k = self.key(spec_text, layer, early_stop)
        if self.results is not None:
            row = self.results.get(**k)
            if row is not None:
                return row
        return self.memory.get(tuple(sorted((a, str(b)) for a, b in k.items())))

    @contextlib.contextmanager
    def _claimed(self, spec_text, layer, wait):
        """Hold the results file's claim on a row (yields False when busy and not ``wait``).

        Why: two runs into one ``--out`` file share the work. A run that wins the claim re-reads
        the file first (the other may have just finished the row); one that does not, skips the
        row and comes back to it after its other rows (:func:`run_sweep`).
        """
        if self.results is None:
            yield True
            return
        claim = self.results.claim(wait=wait, **self.key(spec_text, layer))
        if claim is None:
            yield False
            return
        with claim:
            self.results.refresh()
            yield True

    def store(self, row):
        if self.results is not None:
            self.results.append(row)
        k = self.key(row["spec"], row["layer"], row.get("early_stop"))
        self.memory[tuple(sorted((a, str(b)) for a, b in k.items()))] = row

    def _eval(self, net, desc):
        from psum.nets.train import evaluate

        if self.bar_images is not None:
            self.bar_images.reset(total=self.n_images)
            self.bar_images.set_description_str(desc)
        return evaluate(net, self.test, limit=self.n_images, batch_size=self.batch_size, topk=self.topk,
                        device=self.device, progress_bar=self.bar_images, desc=desc, metric=self.metric)

    def baseline(self) -> dict:
        row = self.lookup("fp32", "all")
        if row is not None:
            return row
        with self._claimed("fp32", "all", True):
            row = self.lookup("fp32", "all")
            if row is None:
                t0 = time.perf_counter()
                acc = self._eval(self.net, "fp32 baseline")
                row = self._row("fp32", "all", acc, time.perf_counter() - t0, None, acc)
                self.store(row)
        return row

    def _row(self, spec_text, layer, acc, seconds, spec, base) -> dict:
        row = self.key(spec_text, layer)
        del row["early_stop"]  # a full measurement: no early_stop field (rows as before this field)
        if spec is not None:
            row.update(acc=str(spec.acc), a=str(spec.a), b=str(spec.b), rounding=spec.rounding.value,
                       overflow=spec.overflow, **_fmt_fields(spec))
        row["accuracy"] = acc["top1"]
        if "metric" in acc:
            row["metric"] = acc["metric"]
        if layer != "all":
            row["layers"] = select_layers(self.net, layer)
        if "top5" in acc:
            row["top5"] = acc["top5"]
        row["baseline_accuracy"] = base["top1"] if "top1" in base else base["accuracy"]
        if "top5" in acc:
            row["baseline_top5"] = base.get("top5")
        row.update(limit=self.limit, seconds=round(seconds, 3), weight_scale=self.weight_scale,
                   act_scale=self.act_scale, psum_version=__version__,
                   finished=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
        return row

    def stopper(self, early_stop: str, threshold: float):
        """The :class:`psum.sweeps.earlystop.EarlyStop` of a search candidate, or None (``"off"``, a
        user metric: a float mean is never stopped early)."""
        import math

        from .earlystop import EarlyStop, parse_early_stop

        if parse_early_stop(early_stop)[0] == "off" or self.metric is not None:
            return None
        return EarlyStop(early_stop, threshold, self.n_images, math.ceil(self.n_images / self.batch_size))

    def evaluate_spec(self, spec, layer="all", *, wait=True, stop=None) -> tuple[dict | None, bool]:
        """The row of ``spec`` applied to ``layer`` ("all", a name or a pattern); (row, computed_now).

        ``wait=False``: ``(None, False)`` at once when another run holds the row's claim.
        ``stop`` (an :class:`~psum.sweeps.earlystop.EarlyStop`): the evaluation may end early,
        giving a row marked ``early_stop``; a full row found in the results is used as it is, a
        stopped row of the same rule only when it proves a failure at ``stop``'s threshold.
        """
        spec_text = str(spec)

        def known():
            row = self.lookup(spec_text, layer)
            if row is None and stop is not None:
                early = self.lookup(spec_text, layer, stop.rule)
                if early is not None and stop.proves_fail(early):
                    row = early
            return row

        row = known()
        if row is not None:
            return row, False
        if self.ray_backend() is not None:  # the row's image shards in parallel (full rows: no early stop)
            return self.ray_backend().run([(spec, layer)])[0], True
        base = self.baseline()
        with self._claimed(spec_text, layer, wait) as held:
            if not held:
                return None, False
            row = known()  # another run may have appended it meanwhile
            if row is not None:
                return row, False
            return self._compute(spec, spec_text, layer, base, stop), True

    def _compute(self, spec, spec_text, layer, base, stop=None) -> dict:
        from psum.golden.emulation.layers import emulate

        names = None if layer == "all" else select_layers(self.net, layer)
        target = spec if names is None else {name: spec for name in names}
        t0 = time.perf_counter()
        desc = f"{spec.acc}" + ("" if layer == "all" else f" @{layer}")
        cut = None
        if names is not None and self.prefix_cache is not None and self.calib is not None:
            cut = self.prefix_cache.split_for(self.net, names, (self.test, self.batch_size, self.n_images,
                                                                 str(self.device)))
        opts = dict(weight_scale=self.weight_scale, act_scale=self.act_scale, seed=self.seed, device=self.device)
        if cut is None:
            qnet = emulate(self.net, target, calib=self.calib, **opts)
            forward = None
        else:
            qnet = emulate(self.net, target, **opts)
            forward = cut.suffix(qnet)
            self._calibrate_suffix(qnet, cut, forward)
        if cut is None and stop is None:
            acc, stopped = self._eval(qnet, desc), None
        else:
            acc, stopped = self._eval_rows(qnet, cut, desc, stop, forward)
        row = self._row(spec_text, layer, acc, time.perf_counter() - t0, spec, base)
        if stopped is not None:
            row.pop("top5", None)  # a partial count, not an accuracy
            row.update(stop.fields(*stopped))
        self.store(row)
        return row

    def _calibrate_suffix(self, qnet, cut, forward) -> None:
        """Calibrate the emulated copy as ``emulate(..., calib=self.calib)`` would, running only
        the suffix on the cached frontier of the calibration images.

        Why it is the same: calibration is a float forward in which each emulated op records its
        inputs' max |value| (:meth:`psum.golden.emulation.context.Accumulator.calibrate`); every
        emulated op is in the suffix, and the suffix's inputs are the float values the whole
        forward computes. The rows with and without the cut are compared bit for bit in the tests.
        """
        import torch

        acc = qnet.psum_accumulator
        cut.prefix.to(self.device)
        calib = self.calib.to(self.device)
        values = self.prefix_cache.frontier("calib", calib)
        acc.calibrating = True
        try:
            with torch.no_grad():
                forward(torch.empty(len(calib), 0), *values)
        finally:
            acc.calibrating = False

    def _eval_rows(self, qnet, cut, desc, stop, forward=None):
        """:func:`psum.nets.train.evaluate` of an emulated copy, from the cached float prefix
        (``cut``, :mod:`psum.sweeps.reuse`) and/or with an early stop; the same counts and
        formulas, so a full row equals evaluate's bit for bit (tested).

        Returns ``(acc, None)`` for a full evaluation, ``(acc, (images, correct))`` when ``stop`` ended it.
        """
        import torch

        from psum.nets.train import iterate_batches

        dev = self.device
        qnet = qnet.to(dev).eval()
        if cut is not None:
            cut.prefix.to(dev)
            forward = forward if forward is not None else cut.suffix(qnet)
        n = self.n_images
        if self.bar_images is not None:
            self.bar_images.reset(total=n)
            self.bar_images.set_description_str(desc)
        correct = {k: 0 for k in self.topk}
        score, done, stopped = 0.0, 0, None
        with torch.no_grad():
            for i, (x, y) in enumerate(iterate_batches(self.test, self.batch_size, limit=n)):
                x, y = x.to(dev), y.to(dev)
                if cut is None:
                    logits = qnet(x).float()
                else:  # the marker's dimension 0 is the batch: the accumulator counts samples from it
                    logits = forward(torch.empty(len(x), 0), *self.prefix_cache.frontier(i, x)).float()
                done += len(y)
                if self.bar_images is not None:
                    self.bar_images.update(len(y))
                if self.metric is not None:
                    score += float(torch.as_tensor(self.metric(logits, y)).double().sum())
                    continue
                if len(y) and (int(y.min()) < 0 or int(y.max()) >= logits.shape[1]):
                    raise ValueError(f"the data has label {int(y.max()) if int(y.max()) >= 0 else int(y.min())} "
                                     f"but the model has {logits.shape[1]} outputs (classes 0..{logits.shape[1] - 1})")
                kmax = min(max(self.topk), logits.shape[1])
                hit = logits.topk(kmax, dim=1).indices == y.unsqueeze(1)
                for k in self.topk:
                    correct[k] += int(hit[:, :k].any(dim=1).sum())
                if stop is not None and stop.check(done, correct[1]):
                    stopped = (done, correct[1])
                    break
        if self.metric is not None:
            return {"top1": 100.0 * score / max(n, 1), "n_images": n,
                    "metric": getattr(self.metric, "__name__", "metric")}, None
        out = {f"top{k}": 100.0 * correct[k] / max(n, 1) for k in self.topk}
        out["n_images"] = n
        return out, stopped


def check_device(device) -> None:
    """Refuse, in one line and before any work, a device this machine does not have.

    One rule for every command: :func:`psum.nets.train.resolve_device`.

    Raises
    ------
    ValueError
        e.g. ``--device cuda: CUDA is not available on this machine (use --device cpu)``.
    """
    from psum.nets.train import resolve_device

    resolve_device(device)


def _context(model, dataset, kw) -> _Context:
    return _Context(model, dataset, **kw)


def workload(model, dataset="digits", *, checkpoint=None, data_dir=None, metric=None, train_if_missing=False,
             data_options=None):
    """The :class:`psum.nets.user.Workload` of ``model`` on ``dataset`` (a Workload is returned as it is).

    Parameters
    ----------
    model : str, torch.nn.Module, Workload or None
        A built-in name, ``FILE.py:FUNCTION`` / ``package.module:FUNCTION`` (code you chose to run),
        an ``nn.Module``; ``None`` when ``checkpoint`` holds a whole model.
    dataset : str, Dataset or DataLoader
        A built-in name, ``"imagefolder"`` (with ``data_dir``), ``FILE.py:FUNCTION``, or data.
    checkpoint, data_dir, metric, train_if_missing
        See :func:`psum.nets.user.resolve`.
    data_options : dict, optional
        More :func:`psum.nets.user.resolve` options: ``trust``, ``image_size``, ``normalize``,
        ``calib``, ``model_name``, ``dataset_name``.

    Raises
    ------
    ValueError, FileNotFoundError, psum.errors.PsumError
        As :func:`psum.nets.user.resolve` (one line, before any evaluation).
    """
    from psum.nets.user import Workload, resolve

    if isinstance(model, Workload):
        return model
    opts = dict(data_options or {})
    unknown = sorted(set(opts) - {"trust", "image_size", "normalize", "calib", "model_name", "dataset_name"})
    if unknown:
        raise ValueError(f"data_options accepts trust, image_size, normalize, calib, model_name, dataset_name, "
                         f"not {unknown[0]!r}")
    return resolve(model, dataset, checkpoint=checkpoint, data_dir=data_dir, metric=metric,
                   train_if_missing=train_if_missing, calib_images=CALIB_IMAGES, **opts)


def select_layers(net, pattern: str) -> list[str]:
    """The MAC layers (:func:`psum.nets.models.mac_layers`) a layer selection names, in model order.

    ``pattern`` is a layer name, a module name that holds layers (``layer3``: the whole stage,
    ``layer3.0``: one block), a shell pattern (``layer3.*``, ``fc?``), or several of those
    separated by ``|``. ``"all"`` selects every layer.

    Raises
    ------
    ValueError
        The pattern selects no MAC layer (the message lists the first layers).
    """
    import fnmatch

    from psum.nets.models import mac_layers

    layers = mac_layers(net)
    if pattern == "all":
        return layers
    pats = [p.strip() for p in str(pattern).split("|") if p.strip()]

    def hits(n, p):
        return fnmatch.fnmatchcase(n, p) or n.startswith(p + ".")

    picked = [n for n in layers if any(hits(n, p) for p in pats)]
    shown = ", ".join(layers[:8]) + (f" (+{len(layers) - 8} more)" if len(layers) > 8 else "")
    if not picked:
        raise ValueError(f"layer {pattern!r} selects none of the Conv2d/Linear layers: {shown or 'none'}")
    # Each alternative must name a layer too: a typo in 'fc1|fc9' used to be dropped silently,
    # while the same typo alone is refused.
    for p in pats:
        if not any(hits(n, p) for n in layers):
            raise ValueError(f"layer {p!r} (in {pattern!r}) selects none of the Conv2d/Linear layers: {shown}")
    return picked


def spec_map(net, mapping) -> tuple[dict, list[str]]:
    """Per-layer specs from a ``{pattern: spec}`` mapping (a per-op spec file); first match wins.

    Parameters
    ----------
    net : torch.nn.Module
    mapping : dict
        Patterns as :func:`select_layers` reads them (``"*"`` for the rest), to spec text or
        :class:`~psum.golden.MacSpec`, in priority order.

    Returns
    -------
    (dict, list of str)
        ``{layer: MacSpec}`` for :func:`psum.golden.emulation.layers.emulate`, and the MAC layers
        no pattern names (they stay float32, and are reported).

    Raises
    ------
    ValueError
        A bad spec, or a pattern that selects no layer (one line, naming the pattern).
    """
    from psum.golden import MacSpec
    from psum.nets.models import mac_layers

    if not isinstance(mapping, dict) or not mapping:
        raise ValueError("a spec file must map layer patterns to MAC specs, e.g. {\"conv*\": \"a=int8,b=int8,acc=int16\"}")
    out: dict = {}
    for pattern, text in mapping.items():
        if not isinstance(pattern, str) or not isinstance(text, (str, MacSpec)):
            raise ValueError(f"a spec file maps pattern text to spec text, not {pattern!r}: {text!r}")
        try:
            spec = MacSpec.parse(text)
        except ValueError as exc:
            raise ValueError(f"spec of {pattern!r}: {exc}") from None
        names = select_layers(net, pattern)
        # First match wins: a pattern whose every layer an earlier one already took would never
        # apply ({"*": A, "conv1": B} ran conv1 with A and said nothing).
        if all(name in out for name in names):
            raise ValueError(f"spec file pattern {pattern!r} never applies: every layer it selects ({_first(names)}) "
                             f"is taken by an earlier pattern (the first match wins; put specific patterns first)")
        for name in names:
            out.setdefault(name, spec)
    return out, [n for n in mac_layers(net) if n not in out]


def _first(names, n=4) -> str:
    """The first ``n`` names, joined, and how many more."""
    return ", ".join(names[:n]) + (f" (+{len(names) - n} more)" if len(names) > n else "")


def read_spec_file(path) -> dict:
    """A per-op spec file: a JSON object ``{"pattern": "spec", ...}`` (YAML when PyYAML is installed
    and the file ends in ``.yaml``/``.yml``), read as data only.

    JSON is parsed with :func:`json.loads` and YAML with ``yaml.safe_load`` (plain data: a
    ``!!python/...`` tag is refused, never constructed); nothing in the file is evaluated. The spec
    texts themselves are checked later by :meth:`psum.golden.MacSpec.parse`.

    Parameters
    ----------
    path : str or Path
        The file.

    Returns
    -------
    dict of str to str
        Layer pattern -> spec text, in file order.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not UTF-8 text, not valid JSON (YAML), or not one object mapping strings to strings: one
        line naming the file (and the first entry that is not a string pair).
    """
    import json
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"spec file {p} does not exist")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"spec file {p} is not UTF-8 text") from None
    if p.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ValueError(f"spec file {p}: YAML needs PyYAML, which is not installed; write JSON") from None
        try:
            data = yaml.safe_load(text)  # safe_load: data only, no Python objects
        except (yaml.YAMLError, RecursionError) as exc:
            raise ValueError(f"spec file {p} is not valid YAML ({type(exc).__name__})") from None
    else:
        def pairs(items):  # json keeps the last of two equal keys: which spec did the user mean?
            seen = set()
            for k, _ in items:
                if k in seen:
                    raise ValueError(f"spec file {p} gives pattern {k[:40]!r} twice")
                seen.add(k)
            return dict(items)

        try:
            data = json.loads(text, object_pairs_hook=pairs)
        except json.JSONDecodeError as exc:
            raise ValueError(f"spec file {p} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
        # Why these too: an over-long integer raises a plain ValueError and deep nesting a
        # RecursionError; a file from elsewhere must still give one line, not a traceback.
        except (ValueError, RecursionError) as exc:
            if str(exc).startswith(f"spec file {p} gives pattern "):
                raise
            raise ValueError(f"spec file {p} is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise ValueError(f"spec file {p} must hold one object mapping layer patterns to spec text")
    for k, v in data.items():
        if not (isinstance(k, str) and isinstance(v, str)):
            raise ValueError(f"spec file {p} must hold one object mapping layer patterns to spec text; "
                             f"entry {str(k)[:40]!r} maps to {type(v).__name__}")
    return data


def run_sweep(model, dataset="digits", accs="e5m6", *, a=None, b=None, rounding: str = "rne", overflow=None,
              extra=None, per_layer: bool = False, network: bool = True, groups=(), limit: int | None = None,
              out=None, data_dir=None, checkpoint=None, batch_size: int = 256, device=None,
              progress_enabled: bool | None = None, weight_scale: str = "channel", act_scale: str = "tensor",
              seed: int = 0, train_if_missing: bool = False, on_row=None, metric=None,
              data_options=None, ray=None, reuse=True) -> list[dict]:
    """Accuracy of a trained model per accumulator format, network-wide, per group and/or per layer.

    Parameters
    ----------
    model : str, torch.nn.Module or Workload
        A built-in name (its psum checkpoint), ``FILE.py:FUNCTION``, or a float model
        (:func:`workload`). Rows of a user's model are keyed by its label (the ``FILE:FUNC`` text,
        or ``data_options["model_name"]``, default the class name) and the digest of its
        state_dict.
    dataset : str, Dataset or DataLoader
        A built-in name, ``"imagefolder"``, ``FILE.py:FUNCTION``, or data (:func:`workload`).
    accs : str or list of str
        Accumulator entries ``FMT[:OVERFLOW]`` (a comma-separated string or a list).
    a, b : str, optional
        Operand formats (default :func:`psum.golden.spec.default_operand` per accumulator).
    rounding, overflow, extra
        See :func:`make_spec`.
    per_layer : bool
        Also one row per (spec, Conv2d/Linear layer): that layer emulated, the others float32.
    network : bool
        The network-wide row per spec (every layer emulated).
    groups : sequence of str
        Layer groups, one row per (spec, group): the group's layers emulated, the others float32
        (:func:`select_layers` patterns: ``layer3``, ``layer3.*``, ``conv*|fc1``).
    limit : int, optional
        Evaluate on the first ``limit`` test images (recorded in each row).
    out : str or Path, optional
        JSON Lines results file: rows found there are reused, new ones appended as they finish.
    data_dir, checkpoint : optional
        Dataset folder and checkpoint path (default ``checkpoints/<model>-<dataset>.pt``).
    batch_size : int
        Images per emulated forward pass.
    device : str, optional
        Default CUDA when present, else CPU.
    progress_enabled : bool, optional
        Force bars on/off (default: when stderr is a TTY).
    weight_scale, act_scale : str
        Operand scaling, passed to :func:`psum.golden.emulation.layers.emulate`.
    seed : int
        Stochastic-rounding seed.
    train_if_missing : bool
        Train the checkpoint first when there is none (else a one-line error).
    on_row : callable, optional
        Called as ``on_row(row, computed)`` after each row (``computed`` False when reused).
    metric : callable, optional
        Per-sample score instead of top-1 (:func:`psum.nets.train.evaluate`).
    data_options : dict, optional
        See :func:`workload`.
    ray : str, optional
        ``"local"`` or a Ray cluster address: the pending rows run as Ray tasks, one per (spec,
        layer, image shard), and this process appends each row as it completes
        (:mod:`psum.sweeps.distributed`); the rows equal a serial run's. Default: serial (or the
        address of an enclosing :func:`psum.sweeps.distributed.ray_cluster`).
    reuse : bool or PrefixCache
        Per-layer and per-group rows: compute the float activations in front of the emulated
        layers once per batch and start every format from them (:mod:`psum.sweeps.reuse`; the rows
        are bit-identical, memory at most :data:`psum.sweeps.reuse.MAX_BYTES`). The rows of one
        layer selection are then computed together. ``False``: every row runs the whole model.

    Returns
    -------
    list of dict
        The baseline row, then one row per (spec, layer), in order.

    Raises
    ------
    ValueError, FileNotFoundError, psum.errors.PsumError
        Bad format, missing data or checkpoint (one line).
    """
    from psum.nets.models import mac_layers

    specs = [make_spec(acc, a=a, b=b, rounding=rounding, overflow=overflow, extra=extra) for acc in parse_acc_list(accs)]
    # one row per distinct unit, first-mention order ('e5m6,e5m6' or 'fp16,e5m10' printed a row twice)
    specs = list(dict.fromkeys(specs))
    _check_mode_applies(rounding, specs, accs)
    groups = [groups] if isinstance(groups, str) else list(groups)
    if not (network or per_layer or groups):
        raise ValueError("network and per_layer cannot both be False: nothing to evaluate")
    ctx = _context(model, dataset, dict(data_dir=data_dir, limit=limit, out=out, checkpoint=checkpoint,
                                        batch_size=batch_size, device=device, progress_enabled=progress_enabled,
                                        weight_scale=weight_scale, act_scale=act_scale, seed=seed,
                                        train_if_missing=train_if_missing, metric=metric,
                                        data_options=data_options, ray=ray, reuse=reuse))
    for g in groups:
        select_layers(ctx.net, g)  # every group selects something, before any evaluation
    _require_mac_layers(ctx)
    layers = (["all"] if network else []) + groups + (mac_layers(ctx.net) if per_layer else [])
    jobs = [(s, layer) for s in specs for layer in layers]
    # Computed layer selection by layer selection (rows still returned spec by spec): the formats
    # of one selection share its cached float prefix, which holds one selection at a time.
    order = sorted(range(len(jobs)), key=lambda i: layers.index(jobs[i][1])) if ctx.prefix_cache else range(len(jobs))
    with progress(total=len(jobs) + 1, desc=f"sweep {ctx.model}/{ctx.dataset}", unit="row", enabled=progress_enabled) as bar, \
            progress(total=ctx.n_images, desc="images", unit="img", enabled=progress_enabled, leave=False) as ibar:
        ctx.bar_images = ibar
        base = ctx.baseline()
        bar.update(1)
        done: dict = {}
        # Two passes: rows another run is computing right now (its claim is held) are skipped at
        # first and collected afterwards, by then usually read back from the shared file.
        busy = []
        for i in order:
            spec, layer = jobs[i]
            row, computed = ctx.evaluate_spec(spec, layer, wait=ctx.results is None)
            if row is None:
                busy.append(i)
                continue
            done[i] = row
            _report_row(bar, spec, layer, row, computed, on_row)
        for i in busy:
            spec, layer = jobs[i]
            done[i], computed = ctx.evaluate_spec(spec, layer)
            _report_row(bar, spec, layer, done[i], computed, on_row)
    return [base] + [done[i] for i in range(len(jobs))]


def _report_row(bar, spec, layer, row, computed, on_row) -> None:
    bar.update(1)
    bar.set_postfix_str(f"{spec.acc} {layer}: {row['accuracy']:.2f}%")
    if on_row is not None:
        on_row(row, computed)


def min_passing(passes, lo: int, hi: int) -> int | None:
    """The search rule of the module docstring on a predicate ``passes(v) -> bool``.

    Returns the smallest ``m`` in ``[lo, hi]`` found by bisection such that ``passes(m)`` and
    ``passes(m + 1)`` (or ``m == hi``) and ``m - 1`` failed when evaluated (or ``m`` is the bottom
    of the last bisection); ``None`` when ``passes(hi)`` is false. Each value is evaluated at most
    once if ``passes`` caches.
    """
    if not passes(hi):
        return None
    start = lo
    while True:
        # bisection: invariant hi_ passes; values below start are known (or assumed) to fail
        lo_, hi_ = start, hi
        while lo_ < hi_:
            mid = (lo_ + hi_) // 2
            if passes(mid):
                hi_ = mid
            else:
                lo_ = mid + 1
        m = hi_
        # confirmation: m + 1 must pass too, else m passed by chance; search again above m + 1
        if m == hi or passes(m + 1):
            return m
        start = m + 2


def search_min_acc(model, dataset="digits", *, kind: str, exp_bits: int | None = None, man_bits: int | None = None,
                   overflow: str | None = None, lo: int | None = None, hi: int | None = None, tol: float = 1.0,
                   layer: str = "all", a=None, b=None, rounding: str = "rne", extra=None, limit: int | None = None,
                   out=None, data_dir=None, checkpoint=None, batch_size: int = 256, device=None,
                   progress_enabled: bool | None = None, weight_scale: str = "channel", act_scale: str = "tensor",
                   seed: int = 0, train_if_missing: bool = False, relative_to: str = "fp32",
                   on_row=None, metric=None, data_options=None, ray=None, early_stop: str = "exact",
                   reuse=True) -> dict:
    """Smallest accumulator whose accuracy is within ``tol`` points of the float32 baseline.

    Parameters
    ----------
    kind : {"man", "exp", "int"}
        ``"man"``: mantissa bits of ``e<exp_bits>m?``; ``"exp"``: exponent bits of ``e?m<man_bits>``;
        ``"int"``: width of ``int?`` with ``overflow`` (``"wrap"`` default, or ``"sat"``).
    exp_bits, man_bits : int
        The fixed field for ``"man"`` / ``"exp"``.
    overflow : str, optional
        Overflow policy (int: wrap/sat; float: ieee/sat).
    lo, hi : int, optional
        Searched range, inclusive (default :data:`SEARCH_RANGES`).
    tol : float
        Allowed drop in top-1 accuracy, percentage points.
    relative_to : {"fp32", "operands"}
        What the drop is measured from: the float32 network (default), or the same operand
        formats with a wide accumulator (fp32 for float searches, int32 wrap for integer ones),
        which isolates the accumulator's effect when the operand quantisation alone already
        costs more than ``tol``.
    layer : str
        ``"all"`` (every layer uses the candidate), one layer name, or a group of layers
        (:func:`select_layers`: ``layer3``, ``layer3.*``); the others stay float32.
    ray : str, optional
        ``"local"`` or a Ray cluster address: each candidate's images are evaluated as parallel
        Ray tasks (image shards); the bisection itself stays sequential. Ray rows are full
        evaluations (no early stop; with the exact rule the minimum is the same).
    early_stop : str
        ``"exact"`` (default): a candidate stops as soon as it cannot pass even with every
        remaining image right (never changes the result); ``"stat:ALPHA"``: also when a Hoeffding
        upper confidence bound is below the pass mark (wrongly failing a candidate with
        probability at most ALPHA, if the test order is random); ``"off"``: every candidate runs
        to the end. See :mod:`psum.sweeps.earlystop`; stopped rows are marked ``early_stop``.
    reuse : bool or PrefixCache
        As for :func:`run_sweep` (``layer != "all"``: the float prefix once per batch).
    Other parameters
        As :func:`run_sweep` (``model`` and ``dataset`` may be objects, see :func:`workload`).

    Returns
    -------
    dict
        ``kind``, ``fixed`` (the fixed field), ``layer``, ``overflow``, ``tol``, ``min`` (the
        searched value or ``None``), ``acc`` (its format text), ``spec``, ``accuracy``,
        ``baseline_accuracy``, ``evaluated`` (searched value -> accuracy, full evaluations only),
        ``stopped`` (searched value -> upper bound of its accuracy, for candidates stopped early),
        ``early_stopped`` (their values, sorted), ``early_stop`` (the rule), ``rows``, ``rule``.

    Raises
    ------
    ValueError
        Bad kind, bounds or tolerance.
    """
    if kind not in SEARCH_RANGES:
        raise ValueError(f"kind must be 'man', 'exp' or 'int', not {kind!r}")
    if relative_to not in ("fp32", "operands"):
        raise ValueError(f"relative_to must be 'fp32' or 'operands', not {relative_to!r}")
    from .earlystop import parse_early_stop

    parse_early_stop(early_stop)
    if kind == "man":
        check_int("exp_bits", exp_bits)
    if kind == "exp":
        check_int("man_bits", man_bits)
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 <= tol < float("inf"):
        raise ValueError(f"tol must be a finite non-negative number of percentage points, not {tol!r}")
    lo = SEARCH_RANGES[kind][0] if lo is None else lo
    hi = SEARCH_RANGES[kind][1] if hi is None else hi
    if not (isinstance(lo, int) and isinstance(hi, int) and lo <= hi):
        raise ValueError(f"search range must be integers lo <= hi, not {lo!r}..{hi!r}")
    if kind == "int" and overflow is None:
        overflow = "wrap"
    from psum.golden import FloatFormat, IntFormat

    # Candidates are built from a template format object, one field varied (never from text);
    # the template's searched field is a placeholder, replaced before use.
    fixed = {"man": {"exp_bits": exp_bits}, "exp": {"man_bits": man_bits}, "int": {}}[kind]
    template = {"man": lambda: FloatFormat(exp_bits, 1), "exp": lambda: FloatFormat(2, man_bits),
                "int": lambda: IntFormat(2)}[kind]()

    def acc_text(v: int) -> str:
        # the tag (e5m10, not the name fp16), as the search has always reported it
        return template.replace(**{_SEARCH_FIELD[kind]: v}).tag

    # validate both ends before loading anything
    ends = [make_spec(acc_text(v), a=a, b=b, rounding=rounding, overflow=overflow, extra=extra) for v in (lo, hi)]
    _check_mode_applies(rounding, ends, search_entry_text(kind, *fixed.values()))
    ctx = _context(model, dataset, dict(data_dir=data_dir, limit=limit, out=out, checkpoint=checkpoint,
                                        batch_size=batch_size, device=device, progress_enabled=progress_enabled,
                                        weight_scale=weight_scale, act_scale=act_scale, seed=seed,
                                        train_if_missing=train_if_missing, metric=metric,
                                        data_options=data_options, ray=ray, reuse=reuse))
    select_layers(ctx.net, layer)  # before any evaluation
    _require_mac_layers(ctx)
    evaluated: dict[int, dict] = {}
    label = f"search {kind} {search_entry_text(kind, *fixed.values())}" + ("" if layer == "all" else f" @{layer}")
    with progress(total=None, desc=label, unit="row", enabled=progress_enabled) as bar, \
            progress(total=ctx.n_images, desc="images", unit="img", enabled=progress_enabled, leave=False) as ibar:
        ctx.bar_images = ibar
        base = ctx.baseline()
        reference = base
        if relative_to == "operands":
            wide = make_spec("int32:wrap" if kind == "int" else "fp32", a=a, b=b, rounding=rounding, extra=extra)
            reference, computed = ctx.evaluate_spec(wide, layer)
            if on_row is not None:
                on_row(reference, computed)
        threshold = reference["accuracy"] - tol
        stop = ctx.stopper(early_stop, threshold)

        def passes(v: int) -> bool:
            if v not in evaluated:
                spec = make_spec(acc_text(v), a=a, b=b, rounding=rounding, overflow=overflow, extra=extra)
                row, computed = ctx.evaluate_spec(spec, layer, stop=stop)
                evaluated[v] = row
                bar.update(1)
                shown = (f"<={row['accuracy']:.2f}% (stopped after {row['images_evaluated']} images)"
                         if row.get("early_stop") else f"{row['accuracy']:.2f}%")
                bar.set_postfix_str(f"{acc_text(v)}: {shown}")
                if on_row is not None:
                    on_row(row, computed)
            # a stopped candidate fails: its rule proved (exact) or bounded (stat) it below threshold
            return not evaluated[v].get("early_stop") and evaluated[v]["accuracy"] >= threshold

        found = min_passing(passes, lo, hi)
    result = {
        "model": ctx.model, "dataset": ctx.dataset, "kind": kind,
        "fixed": {"man": exp_bits, "exp": man_bits, "int": None}[kind], "layer": layer, "overflow": overflow,
        "tol": tol, "range": [lo, hi], "min": found, "acc": acc_text(found) if found is not None else None,
        "spec": evaluated[found]["spec"] if found is not None else None,
        "accuracy": evaluated[found]["accuracy"] if found is not None else None,
        "baseline_accuracy": base["accuracy"], "relative_to": relative_to,
        "reference_spec": reference["spec"], "reference_accuracy": reference["accuracy"], "n_images": ctx.n_images,
        # full measurements only: a stopped candidate's number is a bound, kept apart under "stopped"
        "evaluated": {v: evaluated[v]["accuracy"] for v in sorted(evaluated) if not evaluated[v].get("early_stop")},
        "stopped": {v: evaluated[v]["accuracy"] for v in sorted(evaluated) if evaluated[v].get("early_stop")},
        "early_stopped": [v for v in sorted(evaluated) if evaluated[v].get("early_stop")],
        "early_stop": early_stop if stop is not None else "off",
        "rows": [evaluated[v] for v in sorted(evaluated)],
        "rule": "min passes, min+1 passes, min-1 fails (bisection with confirmation); "
                f"pass = top-1 >= {'fp32 baseline' if relative_to == 'fp32' else reference['spec']} - {tol} points"
                + (f"; early stop: {early_stop}" if stop is not None else ""),
    }
    return result


# ---------------------------------------------------------------------------------------------
# Searches over templates x layers, and rows as plot points (the API behind ``psum sweep``)
# ---------------------------------------------------------------------------------------------
SEARCH_DEFAULT = "e5m?,e?m7,int?:wrap,int?:sat"


def search_label(result: dict) -> str:
    """The template a :func:`search_min_acc` result answers: ``e5m?``, ``e?m7``, ``int?:sat``."""
    return search_entry_text(result["kind"], result.get("fixed"),
                             result["overflow"] if result["kind"] == "int" else None)


def run_search(model, dataset="digits", entries=SEARCH_DEFAULT, *, per_layer: bool = False, groups=(),
               overflow=None, tol: float = 1.0, relative_to: str = "fp32", checkpoint=None, data_dir=None,
               metric=None, train_if_missing: bool = False, data_options=None, reuse=True,
               **kwargs) -> list[dict]:
    """:func:`search_min_acc` for every template in ``entries``, network-wide, for each group of
    layers (``groups``) and (``per_layer``) for each MAC layer alone.

    Parameters
    ----------
    model, dataset
        As for :func:`run_sweep`: names or objects (the model and data are resolved once).
    entries : str or list of str
        Templates ``e<E>m?``, ``e?m<M>``, ``int?[:wrap|:sat]`` (:func:`parse_search_entry`),
        comma-separated or a list.
    per_layer : bool
        Also search each Conv2d/Linear alone (the rest float32).
    groups : sequence of str
        Also search each group of layers (:func:`select_layers` patterns), the rest float32.
    overflow : str, optional
        Overflow policy of templates without a ``:suffix``.
    reuse : bool or PrefixCache
        One float-prefix cache (:mod:`psum.sweeps.reuse`) shared by every search of the run; the
        searches are then run layer selection by layer selection (results still in the order
        below).
    tol, relative_to, checkpoint, **kwargs
        As for :func:`search_min_acc` (operands, rounding, limit, out, early_stop, ...).

    Returns
    -------
    list of dict
        One :func:`search_min_acc` result per (template, layer), templates outermost; network-wide
        (``layer == "all"``) first within each template.

    Raises
    ------
    ValueError
        A bad template (before any evaluation), or as :func:`search_min_acc`.
    """
    from psum.nets.models import mac_layers

    from .earlystop import parse_early_stop

    parsed = [parse_search_entry(e) for e in parse_acc_list(entries)]
    parsed = [p for i, p in enumerate(parsed) if p not in parsed[:i]]  # 'int?,int?' searched twice
    # a rounding mode applies to the entries whose units round (float ones; an integer search only
    # with a float acc2 in extra): the others search rne units, and a mode none uses is refused
    probes = {kind: make_spec("int16" if kind == "int" else "e5m6", a=kwargs.get("a"), b=kwargs.get("b"),
                              rounding=kwargs.get("rounding", "rne"), extra=kwargs.get("extra"))
              for kind in {k for k, _, _ in parsed}}
    _check_mode_applies(kwargs.get("rounding", "rne"), probes.values(), entries)
    parse_early_stop(kwargs.get("early_stop", "exact"))  # before the model loads
    groups = [groups] if isinstance(groups, str) else list(groups)
    # resolved once: a user's model file runs once, its weights load once
    wl = workload(model, dataset, checkpoint=checkpoint, data_dir=data_dir, metric=metric,
                  train_if_missing=train_if_missing, data_options=data_options)
    for g in groups:
        select_layers(wl.net, g)
    layers = ["all"] + groups + (mac_layers(wl.net) if per_layer else [])
    from .reuse import PrefixCache

    if reuse is True:
        reuse = PrefixCache()  # one cache for the whole run
    elif not isinstance(reuse, (bool, PrefixCache)):
        raise ValueError(f"reuse must be True, False or a PrefixCache, not {reuse!r}")
    done = {}
    # layer selection outermost while computing: the templates of one selection share its prefix
    for li, layer in enumerate(layers):
        for ti, (kind, fixed, entry_overflow) in enumerate(parsed):
            own = kwargs if probes[kind].rounds else {**kwargs, "rounding": "rne"}
            done[ti, li] = search_min_acc(wl, dataset, kind=kind, overflow=entry_overflow or overflow, tol=tol,
                                          layer=layer, relative_to=relative_to, reuse=reuse, **fixed, **own)
    return [done[ti, li] for ti in range(len(parsed)) for li in range(len(layers))]


def family(row: dict) -> str:
    """The curve a sweep row belongs to: ``float``, ``int-wrap`` or ``int-sat``."""
    if row.get("kind") == "int":
        return f"int-{row.get('overflow') or 'wrap'}"
    return "float"


def network_points(rows: list[dict]) -> list[dict]:
    """The network-wide rows of a sweep (the fp32 baseline aside) as accuracy-vs-bits points:
    ``family``, ``acc``, ``acc_bits``, ``exp_bits``, ``man_bits``, ``accuracy``, ``spec``."""
    return [dict(family=family(r), acc=r.get("acc"), acc_bits=r["acc_bits"], exp_bits=r.get("exp_bits"),
                 man_bits=r.get("man_bits"), accuracy=r["accuracy"], spec=r["spec"])
            for r in rows if r["spec"] != "fp32" and r["layer"] == "all"]


def _require_mac_layers(ctx) -> None:
    """Refuse to emulate a model in which psum finds no MAC layer: every MAC would stay float32."""
    from psum.nets.models import mac_layers

    if not mac_layers(ctx.net):
        raise PsumError(f"{ctx.model} has no Conv2d/Linear module psum can emulate (a torch.export graph calls "
                        f"functional ops); every MAC would stay float32")


def evaluate_spec(model, dataset="digits", spec=None, *, layer: str = "all", spec_file=None, checkpoint=None,
                  data_dir=None, limit: int | None = None, device=None, progress_enabled=None,
                  batch_size: int = 256, metric=None, data_options=None, strict: bool = False) -> dict:
    """Test accuracy of a model, in float32 or with its MAC layers emulated under ``spec``
    (the API behind ``psum eval``).

    Parameters
    ----------
    model, dataset
        Names or objects, as for :func:`run_sweep` (:func:`workload`): a built-in model with its
        psum checkpoint (yours, else the shipped one), ``FILE.py:FUNCTION``, an ``nn.Module``;
        a built-in dataset, ``"imagefolder"``, ``FILE.py:FUNCTION``, a Dataset or DataLoader.
    spec : MacSpec or str, optional
        MAC spec to emulate (default: none, float32). Calibrated on the first
        :data:`CALIB_IMAGES` training images (else test images), as the sweeps are.
    layer : str
        Emulate only these layers (:func:`select_layers`: a name, ``layer3``, ``layer3.*``);
        default ``"all"``.
    spec_file : str, Path or dict, optional
        Per-op specs instead of ``spec``: a file :func:`read_spec_file` reads, or its mapping
        ``{pattern: spec}`` (first match wins; layers no pattern names stay float32 and are listed
        in ``float_layers``).
    checkpoint, data_dir, limit, device, progress_enabled, batch_size, metric, data_options
        Checkpoint, dataset folder, first ``limit`` test images, torch device, progress bar,
        images per batch, per-sample metric, :func:`workload` options.
    strict : bool
        Refuse to report an accuracy when a MAC-bearing op ran in float32 unintentionally (an op
        psum cannot emulate; :meth:`psum.golden.emulation.coverage.Coverage.check`). ``psum eval``
        sets it unless ``--no-strict``.

    Returns
    -------
    dict
        ``model``, ``dataset``, ``checkpoint`` (weights digest), ``spec`` (text; ``"fp32"``
        without one, ``"per-op"`` with a spec file), ``layer``, ``top1`` (``top5`` on ImageNet),
        ``n_images``, ``emulated_layers`` (``{layer: spec}``), ``float_layers``,
        ``checkpoint_accuracy`` (psum checkpoints), and with a spec ``coverage`` (the one-line
        summary: ops and share of MACs emulated, what stayed float and why) and ``coverage_table``
        (one dict per op: name, kind, call site, spec, MACs, reason).

    Raises
    ------
    ValueError, psum.errors.PsumError
        Bad spec or spec file (before loading anything), model, data set, checkpoint or layer;
        :class:`psum.golden.emulation.coverage.CoverageError` with ``strict`` when a MAC-bearing op
        stayed float unintentionally.
    """
    from psum.golden import MacSpec
    from psum.nets.models import mac_layers
    from psum.nets.train import evaluate

    if spec is not None and spec_file is not None:
        raise ValueError("give --spec or --spec-file, not both")
    if spec_file is not None and layer != "all":
        raise ValueError("--layer selects layers for --spec; a spec file names its layers itself")
    if spec is None and spec_file is None and layer != "all":  # else it would evaluate float32 silently
        raise ValueError("--layer selects layers for --spec; give --spec too")
    spec = None if spec is None else MacSpec.parse(spec)
    mapping = None
    if spec_file is not None:
        mapping = spec_file if isinstance(spec_file, dict) else read_spec_file(spec_file)
        for text in mapping.values():
            MacSpec.parse(text)  # every spec valid before anything loads
    check_int("batch_size", batch_size, 1)
    if limit is not None:
        check_int("limit", limit, 1)
    check_device(device)
    wl = workload(model, dataset, checkpoint=checkpoint, data_dir=data_dir, metric=metric,
                  data_options=data_options)
    net = wl.net
    emulated: dict = {}
    if spec is not None or mapping is not None:
        from psum.golden.emulation.layers import emulate

        if not mac_layers(net):
            _require_mac_layers(wl)
        if mapping is not None:
            target, _ = spec_map(net, mapping)
        else:
            target = {name: spec for name in select_layers(net, layer)}
        emulated = {k: str(v) for k, v in target.items()}
        # Network-wide: the spec itself, so every MAC-bearing op (functional calls, attention
        # matmuls) is emulated, not only the Conv2d/Linear modules named in a mapping.
        net = emulate(net, spec if mapping is None and layer == "all" else target, calib=wl.calib, strict=strict)
        from psum.golden.emulation.coverage import coverage

        coverage(net).reset()  # count the evaluation's inputs and MACs only, not the calibration's
    float_layers = [n for n in mac_layers(wl.net) if n not in emulated]
    from psum.nets.train import dataset_size

    n = dataset_size(wl.test) if limit is None else min(limit, dataset_size(wl.test))
    with progress(total=n, desc="eval", unit="img", enabled=progress_enabled) as bar:
        res = evaluate(net, wl.test, limit=limit, topk=wl.topk, device=device, progress_bar=bar,
                       batch_size=batch_size, metric=wl.metric)
    if emulated:
        cov = coverage(net)
        res = {**res, "coverage": cov.summary(), "coverage_table": cov.table()}
    return {"model": wl.model, "dataset": wl.dataset, "checkpoint": wl.checkpoint,
            "spec": "fp32" if spec is None and mapping is None else ("per-op" if mapping is not None else str(spec)),
            "layer": layer, **res, "emulated_layers": emulated, "float_layers": float_layers,
            "checkpoint_accuracy": wl.meta.get("accuracy"), "checkpoint_kind": wl.meta.get("checkpoint_kind"),
            "calib": wl.calib_name}
