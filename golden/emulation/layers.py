"""Network-level emulation: every MAC-bearing op of a model computed with a MAC spec's exact arithmetic.

``emulate(model, spec)`` returns a deep copy of ``model`` whose MAC-bearing ops -- ``Linear``,
``Conv1d/2d/3d``, ``ConvTranspose1d/2d/3d``, their functional forms, ``matmul``/``@``/``bmm``/
``baddbmm``/``einsum``, attention (``nn.MultiheadAttention`` with its packed input projection,
``F.scaled_dot_product_attention``) -- all of them, or those a ``{name or pattern: spec}`` mapping
names, compute every output element exactly as a MAC unit running :func:`psum.golden.mac_step`
cycle by cycle would (the copy runs its forward inside a
:class:`~psum.golden.emulation.context.Accumulator`; a bare layer as the root works too). What ran
emulated and what stayed float is in :func:`~psum.golden.emulation.coverage.coverage`:

1. **Operands.** Activations are quantised to ``spec.a`` and weights to ``spec.b``, with round to
   nearest even and saturation (values beyond the scaled range clamp to the largest finite value),
   after division by a scale. Integer formats: ``"tensor"`` ``amax / max_int`` (per tensor, the
   standard symmetric scheme), ``"channel"`` (weights only) the same per output channel,
   ``"pow2"`` ``2**ceil(log2(amax / max_int))``. Float formats: always a power of two (no mantissa
   changes), ``2**floor(log2(amax))`` so the largest magnitude lands in [1, 2) -- per tensor for
   ``"tensor"``/``"pow2"``, per output channel for ``"channel"``; products then lie in [0, 4) and
   the accumulator's range, not the operand scale, decides where partial sums overflow.
   ``"none"``: scale 1. The activation scale is calibrated once: on ``calib`` data when given (a
   float forward), else on the first batch, then kept.
2. **Load.** The accumulator starts from the bias in accumulator units, ``bias / (s_a * s_w)``,
   rounded into ``spec.acc`` (the spec's rounding, rne for sr; integer accumulators saturate;
   no bias: +0).
3. **Steps.** One product ``a*b`` per step, in the reduction order of each op
   (:mod:`psum.golden.emulation.ops`): Linear: input index; Conv1d/2d/3d: the weight's
   ``(in_channel, kernel position)`` order (``torch.nn.functional.unfold`` order); transposed
   convolutions: the equivalent direct convolution's order; matmul: ``k`` ascending. Zero-padded
   input positions are issued as steps with ``a = +0`` (the MAC unit sees them). Stride,
   dilation, groups, ``padding="same"`` and (through the module's own ``F.pad``) every padding
   mode are supported. Activation x activation products (attention scores ``QK^T`` and the
   weighted sum ``PV``) quantise both sides as activations: ``a`` to ``spec.a``, ``b`` to
   ``spec.b``, per-tensor scales calibrated like activations. ``spec.order`` selects chunked,
   tree or multi-term-adder orders (:func:`psum.golden.emulation.kernels.accumulate_order`).
4. **Output.** The final accumulator value times ``s_a * s_w`` is the layer output (float32, or the
   input's dtype if float64). An accumulator that overflowed to inf/NaN propagates.

Stochastic rounding takes its random bits from :func:`psum.golden.emulation.kernels.sr_rand` of the op's
seed (``seed`` mixed with the op name), the output element's global index and the step number.
The global index is ``sample * per_sample + j``: ``sample`` counts the samples the emulated model
has seen since it was created (calibration excluded; ``model.psum_accumulator.next_sample`` resets
it), ``j`` the element's flat index within that sample's output (dimension 0 is the batch). So the
result is reproducible and independent of the backend *and of the batch size*: image 1000 gets the
same random bits in batches of 7 or 256 (before, the index was the position within the batch).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .context import Accumulator
from .ops import ACT_SCALES, WEIGHT_SCALES, Site, compute_scale, quantize_operand
from . import ops

__all__ = ["emulate", "EmulatedConv2d", "EmulatedLinear", "quantize_operand", "compute_scale",
           "WEIGHT_SCALES", "ACT_SCALES", "MAC_MODULES"]

# Module types whose forward is one MAC op (a name in a spec mapping may be one of these).
MAC_MODULES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
               nn.ConvTranspose3d, nn.MultiheadAttention)


class _EmulatedLayer(nn.Module):
    """A standalone emulated layer: the float layer's weights and one :class:`~.ops.Site`."""

    def __init__(self, layer, spec, kind, *, weight_scale="channel", act_scale="tensor", name="", seed=0,
                 backend="auto", stats=False):
        super().__init__()
        self.site = Site(name, kind, spec, weight_scale=weight_scale, act_scale=act_scale, seed=seed,
                         backend=backend, stats=stats)
        self.spec, self.name, self.seed, self.stats = self.site.spec, name, self.site.seed, self.site.stats
        self.weight = nn.Parameter(layer.weight.detach().clone(), requires_grad=False)
        self.bias = None if layer.bias is None else nn.Parameter(layer.bias.detach().clone(), requires_grad=False)

    def calibrate(self, amax) -> None:
        """Fix the activation scale from the max |input| seen in calibration data."""
        self.site.calibrate(amax)

    def extra_repr(self) -> str:
        return f"spec={self.spec}, weight_scale={self.site.weight_scale}, act_scale={self.site.act_scale}"


class EmulatedLinear(_EmulatedLayer):
    """A ``Linear`` layer computed with a MAC spec's arithmetic (see the module docstring).

    Parameters
    ----------
    layer : torch.nn.Linear
        The float layer (weights copied).
    spec : MacSpec or str
    weight_scale : {"channel", "tensor", "pow2", "none"}
    act_scale : {"tensor", "pow2", "none"}
    name : str
        Layer name (seeds stochastic rounding, labels statistics).
    seed : int
    backend : str
        Kernel backend (:data:`psum.golden.emulation.kernels.BACKENDS`).
    stats : bool
        Collect partial-sum statistics (:mod:`psum.golden.emulation.stats`; sequential order, slower).
    """

    def __init__(self, layer: nn.Linear, spec, **kw):
        super().__init__(layer, spec, "linear", **kw)
        self.in_features, self.out_features = layer.in_features, layer.out_features

    def forward(self, x):
        return ops.linear(self.site, x, self.weight, self.bias)


class EmulatedConv2d(_EmulatedLayer):
    """A ``Conv2d`` layer computed with a MAC spec's arithmetic (see the module docstring).

    Parameters are those of :class:`EmulatedLinear`, with ``layer`` a ``torch.nn.Conv2d``
    (stride, dilation, groups and every padding mode supported).
    """

    def __init__(self, layer: nn.Conv2d, spec, **kw):
        super().__init__(layer, spec, "conv2d", **kw)
        self.layer = copy.deepcopy(layer)  # its padding handling (F.pad for non-zero modes)

    def forward(self, x):
        ly = self.layer
        if ly.padding_mode != "zeros":
            x = torch.nn.functional.pad(x, ly._reversed_padding_repeated_twice, mode=ly.padding_mode)
            padding = 0
        else:
            padding = ly.padding
        return ops.conv(self.site, x, self.weight, self.bias, ly.stride, padding, ly.dilation, ly.groups)


def _check_names(model: nn.Module, spec) -> None:
    """A name without wildcards must be a module of the model or an op inside one (``m.kind0``)."""
    if not isinstance(spec, dict) and not hasattr(spec, "items"):
        return
    modules = dict(model.named_modules())
    for name in spec:
        if any(c in name for c in "*?[") or name in modules:
            continue
        parent = name.rpartition(".")[0]
        while parent and parent not in modules:
            parent = parent.rpartition(".")[0]
        if parent:
            continue
        known = ", ".join(n for n, m in modules.items() if isinstance(m, MAC_MODULES) and n) or "none"
        raise ValueError(f"layer {name!r} is not a module of the model nor an op inside one; MAC layers: {known}")


def emulate(model: nn.Module, spec, *, weight_scale="channel", act_scale="tensor", calib=None,
            stats=False, device=None, seed=0, backend="auto", strict=False) -> nn.Module:
    """A deep copy of ``model`` whose MAC-bearing ops compute with ``spec``'s exact arithmetic.

    Parameters
    ----------
    model : torch.nn.Module
        The float model (left untouched); a bare layer (``nn.Linear(300, 7)``) works.
    spec : MacSpec, str, or mapping of op name or fnmatch pattern to MacSpec/str/None
        One spec for every MAC-bearing op, or per op: exact names first (a ``Linear``/``Conv``
        module's name, ``attn.qk``, ``block.matmul0``), then the first matching pattern in the
        mapping's order (``{"layer3.*": s, "*": t}``); ops no key names (or named with None) keep
        full precision and are reported as intended.
    weight_scale : {"channel", "tensor", "pow2", "none"}
    act_scale : {"tensor", "pow2", "none"}
        Operand scaling (see the module docstring).
    calib : torch.Tensor, optional
        Calibration inputs: activation scales come from a float forward over them. Without it,
        each op calibrates on its first call.
    stats : bool
        Collect partial-sum statistics (read them with :func:`psum.golden.emulation.stats.collect_stats`).
    device : torch.device or str, optional
        Move the copy there.
    seed : int
        Stochastic-rounding seed.
    backend : str
        Kernel backend, default ``"auto"`` (fastest exact one).
    strict : bool
        Raise :class:`~psum.golden.emulation.coverage.CoverageError` during a forward when a
        MAC-bearing op the spec covers cannot be emulated (instead of running it in float and
        reporting it in the coverage).

    Returns
    -------
    torch.nn.Module
        The emulated copy, in eval mode, of the same class as ``model``; its accumulator is
        ``copy.psum_accumulator`` and its coverage ``coverage(copy)``.

    Raises
    ------
    ValueError
        Bad spec, layer name, scale choice, backend or ``$PSUM_EMULATE_PATH`` (one line).
    TypeError
        ``model`` is not a ``torch.nn.Module`` (one line naming its type).
    """
    if not isinstance(model, nn.Module):  # emulate("lenet5", spec) was an AttributeError on .eval
        hint = (": load a built-in one with psum.load_checkpoint(name, dataset)[0]"
                if isinstance(model, str) else "")
        raise TypeError(f"model must be a torch.nn.Module (a network or a bare layer such as nn.Linear), "
                        f"not {type(model).__name__}{hint}")
    ops.emulation_path()  # a bad $PSUM_EMULATE_PATH fails here, before any copy or calibration
    acc = Accumulator(spec, weight_scale=weight_scale, act_scale=act_scale, seed=seed, backend=backend,
                      stats=stats, strict=strict)
    _check_names(model, spec)
    q = copy.deepcopy(model).eval()
    acc._names = {id(m): n for n, m in q.named_modules()}
    q.psum_accumulator = acc
    for m in q.modules():  # the outermost module called runs the forward inside the accumulator
        m.register_forward_pre_hook(acc.enter_root)
        m.register_forward_hook(acc.exit_root, always_call=True)
    if device is not None:
        q = q.to(device)
    if calib is not None:
        params = list(q.parameters())
        acc.calibrate(q, calib.to(params[0].device) if params else calib)
    return q
