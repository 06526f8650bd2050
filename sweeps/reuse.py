"""Float work a per-layer or per-group sweep need not repeat: the float prefix, cached per batch.

When a sweep or search emulates only some layers (one layer, or a group), every value of the
forward pass that does not depend on an emulated layer's output is float32 and the same for every
accumulator format. :func:`split` cuts the model's ``torch.fx`` graph in two:

- the **prefix**: every node that does not depend (transitively) on an emulated layer, run once per
  batch on the float model; its **frontier** values (prefix values that a later node reads: the
  input of the first emulated layer, and in a ResNet also the shortcut of a later block) are kept
  in a :class:`PrefixCache`;
- the **suffix**: every node that depends on an emulated layer, run per format on the emulated
  copy, its inputs the cached frontier values.

Why it is exact: the suffix calls the same torch functions and modules, in the same order, on the
same tensor values (bit for bit: the prefix ran the same float kernels on the same batch), and the
emulated copy is calibrated by running the suffix on the frontier of the calibration images
(calibration is a float forward in which each emulated op records its inputs' max |value|; every
emulated op is in the suffix, so it records the same values as a whole-model calibration). The tests compare every row with and without the
cache bit for bit, stochastic rounding included (the suffix's first argument carries the batch
size, so each image keeps its random bits).

When there is no cut, :func:`split` returns ``None`` and the caller evaluates the whole model as
before (same rows, no reuse): the model does not trace with ``torch.fx`` (data-dependent control
flow), takes more than one input, an emulated layer is not called as a module (its weight used
through a functional call), the first emulated layer reads the model input itself (nothing to
reuse), or an in-place op could make the cut order observable (an in-place op whose input another
op also reads; ``nn.ReLU(inplace=True)`` after a convolution or a sum is fine).

Memory rule
-----------
A :class:`PrefixCache` holds the frontier of **one** layer selection at a time (a new selection
replaces it; sweeps and searches run the formats of one selection together), its batches and
the calibration images' frontier, at most
``max_bytes`` bytes of tensors (default :data:`MAX_BYTES`, 512 MiB): batches are cached in order
while they fit, later batches are recomputed from the images for each format (still exact, just not
reused). Each use hands the suffix a copy of the cached tensors, so an in-place op in the suffix
never alters the cache.
"""

from __future__ import annotations

import operator

__all__ = ["split", "Split", "PrefixCache", "MAX_BYTES"]

MAX_BYTES = 512 * 2**20
# in-place Python operators (``x += y`` traces to operator.iadd)
_INPLACE_OPS = {operator.iadd, operator.isub, operator.imul, operator.itruediv, operator.ifloordiv,
                operator.imod, operator.ipow, operator.iand, operator.ior, operator.ixor, operator.ilshift,
                operator.irshift, operator.imatmul}


class Split:
    """The cut of a model for one set of emulated layers (see the module docstring).

    Attributes
    ----------
    layers : tuple of str
        The emulated layers (module names).
    prefix : torch.fx.GraphModule
        ``prefix(x) -> tuple`` of frontier values, on the float model's modules.
    frontier : list of str
        Names of the frontier nodes (for messages and tests).
    """

    def __init__(self, layers, prefix, suffix_graph, frontier):
        self.layers = tuple(layers)
        self.prefix = prefix
        self._suffix_graph = suffix_graph
        self.frontier = frontier

    def suffix(self, qnet):
        """The suffix as a module on the emulated copy ``qnet``: ``suffix(marker, *frontier) -> output``.

        ``marker`` is any tensor whose dimension 0 is the batch size (the accumulator counts
        samples from a forward's first tensor argument, for stochastic rounding). The module runs
        inside ``qnet``'s accumulator, as ``qnet(x)`` would.
        """
        from torch import fx

        mod = fx.GraphModule(qnet, self._suffix_graph)  # shares qnet's (emulated) submodules
        acc = qnet.psum_accumulator
        mod.register_forward_pre_hook(acc.enter_root)
        mod.register_forward_hook(acc.exit_root, always_call=True)
        return mod.eval()


def _inplace(node, modules) -> bool:
    if node.kwargs.get("inplace") is True:
        return True
    if node.op == "call_module":
        return getattr(modules.get(node.target), "inplace", False) is True
    if node.op == "call_function":
        name = getattr(node.target, "__name__", "")
        return node.target in _INPLACE_OPS or (name.endswith("_") and not name.endswith("__"))
    if node.op == "call_method":
        return node.target.endswith("_") and not node.target.endswith("__")
    return False


def split(net, layers) -> Split | None:
    """The prefix/suffix cut of ``net`` when ``layers`` (module names) are emulated, or ``None``.

    Parameters
    ----------
    net : torch.nn.Module
        The float model (its modules are shared, not copied).
    layers : sequence of str
        The emulated layers (:func:`psum.sweeps.sweep.select_layers`).

    Returns
    -------
    Split or None
        ``None`` when there is no safe cut with something to reuse (module docstring).
    """
    from torch import fx

    try:
        gm = fx.symbolic_trace(net)
    except Exception:  # noqa: BLE001 -- any tracing failure means: no cut, evaluate as before
        return None
    graph = gm.graph
    nodes = list(graph.nodes)
    modules = dict(gm.named_modules())
    targets = set(layers)
    if not targets or not targets <= {n.target for n in nodes if n.op == "call_module"}:
        return None
    placeholders = [n for n in nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        return None
    for n in nodes:  # an in-place op is safe only when nothing else reads what it overwrites
        if _inplace(n, modules) and (not n.args or not hasattr(n.args[0], "users") or len(n.args[0].users) != 1):
            return None
    tainted = set()
    for n in nodes:
        if (n.op == "call_module" and n.target in targets) or any(a in tainted for a in n.all_input_nodes):
            tainted.add(n)
    out = next(n for n in nodes if n.op == "output")
    if out not in tainted:
        return None
    frontier = [n for n in nodes if n not in tainted and n.op != "get_attr" and any(u in tainted for u in n.users)]
    if any(n.op == "placeholder" for n in frontier):
        return None  # the first emulated layer reads the input: nothing to reuse

    pre = fx.Graph()
    env: dict = {}
    for n in nodes:
        if n not in tainted and n.op != "output":
            env[n] = pre.node_copy(n, lambda m: env[m])
    pre.output(tuple(env[n] for n in frontier))
    prefix = fx.GraphModule(gm, pre).eval()

    suf = fx.Graph()
    env = {}
    suf.placeholder("psum_batch")
    for i, n in enumerate(frontier):
        env[n] = suf.placeholder(f"frontier_{i}")
    for n in nodes:
        if n in tainted or (n.op == "get_attr" and any(u in tainted for u in n.users)):
            env[n] = suf.node_copy(n, lambda m: env[m])
    return Split(layers, prefix, suf, [n.name for n in frontier])


def _nbytes(values) -> int:
    import torch

    return sum(v.numel() * v.element_size() for v in values if isinstance(v, torch.Tensor))


def _same_key(a, b) -> bool:
    (net_a, layers_a, data_a), (net_b, layers_b, data_b) = a, b
    return (net_a is net_b and layers_a == layers_b and len(data_a) == len(data_b)
            and all(x is y or (isinstance(x, (int, float, str)) and x == y) for x, y in zip(data_a, data_b)))


def _copy(values):
    import torch

    return tuple(v.clone() if isinstance(v, torch.Tensor) else v for v in values)


class PrefixCache:
    """Frontier values per batch for one layer selection at a time (the module's memory rule).

    Parameters
    ----------
    max_bytes : int
        Most bytes of cached tensors (default :data:`MAX_BYTES`).

    Attributes
    ----------
    hits, misses : int
        Batches served from the cache, and prefixes computed (for the benchmark and tests).
    """

    def __init__(self, max_bytes: int = MAX_BYTES):
        from psum._util import check_int

        check_int("max_bytes", max_bytes, 0)
        self.max_bytes = max_bytes
        self._key = None
        self._split = None
        self._batches: dict[int, tuple] = {}
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def split_for(self, net, layers, data=()) -> Split | None:
        """The :func:`split` of ``net`` for ``layers`` (computed once per selection; a new
        selection drops the cached batches of the previous one).

        ``data`` identifies the batches (the sweep passes its test set, batch size, image count
        and device): batch ``i`` is only reused for the same model object, layers and data.
        """
        key = (net, tuple(layers), tuple(data))  # objects held, compared by identity: no id() reuse
        if self._key is None or not _same_key(key, self._key):
            self._key, self._split = key, split(net, layers)
            self._batches, self.bytes = {}, 0
        return self._split

    def frontier(self, index, x) -> tuple:
        """Frontier values of batch ``index`` (an int, or ``"calib"`` for the calibration images
        ``x``): a copy of the cached ones, or computed (and cached when they fit)."""
        import torch

        hit = self._batches.get(index)
        if hit is not None:
            self.hits += 1
            return _copy(hit)
        self.misses += 1
        with torch.no_grad():
            values = tuple(self._split.prefix(x))
        size = _nbytes(values)
        if self.bytes + size <= self.max_bytes:
            self._batches[index] = values
            self.bytes += size
            return _copy(values)
        return values
