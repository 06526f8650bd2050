"""Network-level emulation: Conv2d and Linear layers computed with a MAC spec's exact arithmetic.

``emulate(model, spec)`` returns a deep copy of ``model`` whose ``Conv2d``/``Linear`` layers (all
of them, or those named in a ``{layer_name: spec}`` mapping) compute every output element exactly
as a MAC unit running :func:`psum.golden.mac_step` cycle by cycle would:

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
3. **Steps.** One product ``a*b`` per step, in the reduction order: Linear: input index; Conv2d:
   the weight's ``(in_channel, kh, kw)`` order (``torch.nn.functional.unfold`` order). Zero-padded
   input positions are issued as steps with ``a = +0`` (the MAC unit sees them). Stride,
   dilation and groups are supported (each group is its own GEMM); padding modes other than
   zeros and string padding other than "valid" are rejected. ``spec.order`` selects chunked,
   tree or multi-term-adder orders (:func:`psum.golden.emulation.kernels.accumulate_order`).
4. **Output.** The final accumulator value times ``s_a * s_w`` is the layer output (float32, or the
   input's dtype if float64). An accumulator that overflowed to inf/NaN propagates.

Stochastic rounding takes its random bits from :func:`psum.golden.emulation.kernels.sr_rand` of the layer's
seed (``seed`` mixed with the layer name), the output element's flat index in the layer's output
tensor of that forward call, and the step number; the result is reproducible and independent of
the backend.
"""

from __future__ import annotations

import copy
import zlib
from typing import Mapping

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from psum.golden.formats import FloatFormat, IntFormat
from .kernels import BACKENDS, accumulate_order, fmix32
from psum.golden.rounding import Rounding
from psum.golden.spec import MacSpec

__all__ = ["emulate", "EmulatedConv2d", "EmulatedLinear", "quantize_operand", "compute_scale",
           "WEIGHT_SCALES", "ACT_SCALES"]

WEIGHT_SCALES = ("channel", "tensor", "pow2", "none")
ACT_SCALES = ("tensor", "pow2", "none")
_ROWS_PER_BLOCK = 1 << 22  # elements of one unfolded block (rows x K); bounds memory


def _fmt_max(fmt) -> float:
    return float(fmt.max_int) if isinstance(fmt, IntFormat) else fmt.max_value


def compute_scale(amax: torch.Tensor, fmt, how: str) -> torch.Tensor:
    """Scale(s) ``s`` so that ``x / s`` uses ``fmt``'s range (``amax`` = max |x|, per tensor or channel)."""
    amax = amax.double()
    if how == "none":
        return torch.ones_like(amax)
    if isinstance(fmt, FloatFormat):
        # floats: a power of two putting max |x| in [1, 2) -- mantissas untouched, products in
        # [0, 4), so the accumulator's range (not the operand scale) decides where sums overflow
        s = torch.exp2(torch.floor(torch.log2(amax)))
        return torch.where(amax > 0, s, torch.ones_like(s))
    s = amax / _fmt_max(fmt)
    if how == "pow2":
        s = torch.exp2(torch.ceil(torch.log2(s)))
    return torch.where(amax > 0, s, torch.ones_like(s))


def quantize_operand(x: torch.Tensor, fmt, scale) -> torch.Tensor:
    """Values of ``fmt`` (float64, x's device) nearest to ``x / scale``: rne, saturating."""
    v = (x.double() / scale).detach().cpu().numpy()
    v = np.nan_to_num(v, nan=0.0)
    q = fmt.decode(fmt.encode(v, "rne", saturate=True))
    return torch.from_numpy(q).to(x.device)


def _layer_seed(seed: int, name: str) -> int:
    return int(fmix32(np.uint64((seed ^ zlib.crc32(name.encode())) & 0xFFFFFFFF)))


class _Emulated(nn.Module):
    """Shared machinery of the emulated layers (not public)."""

    def __init__(self, layer, spec, *, weight_scale, act_scale, name, seed, backend, stats):
        super().__init__()
        spec = MacSpec.parse(spec)  # validates the order too
        if weight_scale not in WEIGHT_SCALES:
            raise ValueError(f"weight_scale must be one of {', '.join(WEIGHT_SCALES)}, not {weight_scale!r}")
        if act_scale not in ACT_SCALES:
            raise ValueError(f"act_scale must be one of {', '.join(ACT_SCALES)}, not {act_scale!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        self.spec = spec
        self.name = name
        self.weight_scale = weight_scale
        self.act_scale = act_scale
        self.seed = _layer_seed(seed, name)
        self.backend = backend
        self.stats = None
        if stats:
            from .stats import PartialSumStats

            self.stats = PartialSumStats(spec)
        self.weight = nn.Parameter(layer.weight.detach().clone(), requires_grad=False)
        self.bias = None if layer.bias is None else nn.Parameter(layer.bias.detach().clone(), requires_grad=False)
        self.register_buffer("act_amax", None)
        self._wq = None

    # -- operands ------------------------------------------------------------------------------
    def calibrate(self, amax) -> None:
        """Fix the activation scale from the max |input| seen in calibration data."""
        self.act_amax = torch.as_tensor(float(amax), dtype=torch.float64)

    def _weights(self):
        """(quantised weight matrix (N, K) values, per-channel scales (N,)), cached."""
        if self._wq is None or self._wq[0].device != self.weight.device:
            w = self.weight.detach().reshape(self.weight.shape[0], -1).double()
            if self.weight_scale == "channel":
                s = compute_scale(w.abs().amax(dim=1), self.spec.b, "tensor")
            else:
                s = compute_scale(w.abs().max().expand(w.shape[0]), self.spec.b, self.weight_scale)
            self._wq = (quantize_operand(w, self.spec.b, s[:, None]), s)
        return self._wq

    def _act_scale(self, x):
        if self.act_amax is None:
            self.calibrate(x.detach().abs().max() if x.numel() else 0.0)
        return float(compute_scale(self.act_amax.reshape(1), self.spec.a, self.act_scale)[0])

    def _init(self, s_a, s_w, cols):
        """Bias in accumulator units rounded into acc (the unit's load), float64 (N,)."""
        acc = self.spec.acc
        if self.bias is None:
            return torch.zeros(self.weight.shape[0], dtype=torch.float64)[cols]
        b = (self.bias.detach().double().cpu()[cols] / (s_a * s_w[cols].cpu())).numpy()
        mode = Rounding.RNE if self.spec.rounding is Rounding.SR else self.spec.rounding
        if not acc.is_float:  # integer and fixed point: the load saturates, never wraps
            codes = acc.encode(b, mode, saturate=True)
        else:
            codes = acc.encode(b, mode, saturate=self.spec.saturate)
        return torch.from_numpy(acc.decode(codes))

    def _gemm(self, A, B, init, row_base, col_stride):
        stats = self.stats.observe if self.stats is not None else None
        return accumulate_order(self.spec, A, B, init, row_base=row_base, col_stride=col_stride,
                                seed=self.seed, backend=self.backend, stats=stats)

    def extra_repr(self) -> str:
        return f"spec={self.spec}, weight_scale={self.weight_scale}, act_scale={self.act_scale}"


class EmulatedLinear(_Emulated):
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

    def __init__(self, layer: nn.Linear, spec, *, weight_scale="channel", act_scale="tensor",
                 name="", seed=0, backend="auto", stats=False):
        super().__init__(layer, spec, weight_scale=weight_scale, act_scale=act_scale, name=name,
                         seed=seed, backend=backend, stats=stats)
        self.in_features, self.out_features = layer.in_features, layer.out_features

    def operands(self, x):
        """Yield ``(A (M, K), B (K, N), init (M, N), row_base, col_stride, rows)`` blocks for input x."""
        s_a = self._act_scale(x)
        wq, s_w = self._weights()
        xa = quantize_operand(x.reshape(-1, self.in_features), self.spec.a, s_a)
        M, N = xa.shape[0], self.out_features
        init = self._init(s_a, s_w, slice(None)).to(x.device)
        step = max(1, _ROWS_PER_BLOCK // max(1, self.in_features))
        for r0 in range(0, M, step):
            r1 = min(M, r0 + step)
            rb = np.arange(r0, r1, dtype=np.int64) * N
            yield xa[r0:r1], wq.T, init.expand(r1 - r0, N), rb, 1, (r0, r1), s_a, s_w

    def forward(self, x):
        M = x.numel() // self.in_features
        out = torch.empty((M, self.out_features), dtype=torch.float64, device=x.device)
        for A, B, init, rb, cs, (r0, r1), s_a, s_w in self.operands(x):
            acc = self._gemm(A, B, init, rb, cs)
            out[r0:r1] = acc * (s_a * s_w.to(acc.device))[None, :]
        dtype = x.dtype if x.dtype == torch.float64 else torch.float32
        return out.to(dtype).reshape(*x.shape[:-1], self.out_features)


class EmulatedConv2d(_Emulated):
    """A ``Conv2d`` layer computed with a MAC spec's arithmetic (see the module docstring).

    Parameters are those of :class:`EmulatedLinear`, with ``layer`` a ``torch.nn.Conv2d``
    (zero padding; stride, dilation and groups supported).
    """

    def __init__(self, layer: nn.Conv2d, spec, *, weight_scale="channel", act_scale="tensor",
                 name="", seed=0, backend="auto", stats=False):
        if layer.padding_mode != "zeros":
            raise ValueError(f"Conv2d layer {name!r}: padding_mode={layer.padding_mode!r} is not supported; use 'zeros'")
        padding = layer.padding
        if isinstance(padding, str):
            if padding != "valid":
                raise ValueError(f"Conv2d layer {name!r}: padding={padding!r} is not supported; give explicit integers")
            padding = (0, 0)
        super().__init__(layer, spec, weight_scale=weight_scale, act_scale=act_scale, name=name,
                         seed=seed, backend=backend, stats=stats)
        self.kernel_size, self.stride, self.dilation = layer.kernel_size, layer.stride, layer.dilation
        self.padding, self.groups = padding, layer.groups
        self.in_channels, self.out_channels = layer.in_channels, layer.out_channels

    def _geometry(self, x):
        H, W = x.shape[-2:]
        ho = (H + 2 * self.padding[0] - self.dilation[0] * (self.kernel_size[0] - 1) - 1) // self.stride[0] + 1
        wo = (W + 2 * self.padding[1] - self.dilation[1] * (self.kernel_size[1] - 1) - 1) // self.stride[1] + 1
        return ho, wo

    def operands(self, x):
        """Yield GEMM blocks ``(A, B, init, row_base, col_stride, (b0, b1, group), s_a, s_w)``."""
        s_a = self._act_scale(x)
        wq, s_w = self._weights()
        xq = quantize_operand(x, self.spec.a, s_a)  # each activation once; padding adds exact +0
        Bsz = x.shape[0]
        ho, wo = self._geometry(x)
        L = ho * wo
        G = self.groups
        cin, cout = self.in_channels // G, self.out_channels // G
        K = cin * self.kernel_size[0] * self.kernel_size[1]
        per = max(1, _ROWS_PER_BLOCK // max(1, K * L))  # images per unfolded block
        for b0 in range(0, Bsz, per):
            b1 = min(Bsz, b0 + per)
            for g in range(G):
                xs = xq[b0:b1, g * cin:(g + 1) * cin]
                cols = F.unfold(xs, self.kernel_size, dilation=self.dilation, padding=self.padding,
                                stride=self.stride)  # (b, K, L): rows in (c, kh, kw) order
                A = cols.transpose(1, 2).reshape(-1, K)
                chans = slice(g * cout, (g + 1) * cout)
                B = wq[chans].T
                init = self._init(s_a, s_w, chans).to(x.device).expand(A.shape[0], cout)
                # flat NCHW index of output (b, c, l) = b*Cout*L + c*L + l
                bb = np.repeat(np.arange(b0, b1, dtype=np.int64), L)
                ll = np.tile(np.arange(L, dtype=np.int64), b1 - b0)
                rb = bb * self.out_channels * L + g * cout * L + ll
                yield A, B, init, rb, L, (b0, b1, g), s_a, s_w[chans]

    def forward(self, x):
        ho, wo = self._geometry(x)
        L = ho * wo
        out = torch.empty((x.shape[0], self.out_channels, L), dtype=torch.float64, device=x.device)
        cout = self.out_channels // self.groups
        for A, B, init, rb, cs, (b0, b1, g), s_a, s_w in self.operands(x):
            acc = self._gemm(A, B, init, rb, cs) * (s_a * s_w.to(A.device))[None, :]
            out[b0:b1, g * cout:(g + 1) * cout] = acc.reshape(b1 - b0, L, cout).transpose(1, 2)
        dtype = x.dtype if x.dtype == torch.float64 else torch.float32
        return out.reshape(x.shape[0], self.out_channels, ho, wo).to(dtype)


def _resolve(model: nn.Module, spec) -> dict:
    layers = {n: m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    if isinstance(spec, Mapping):
        out = {}
        for name, s in spec.items():
            if name not in layers:
                known = ", ".join(layers) or "none"
                raise ValueError(f"layer {name!r} is not a Conv2d or Linear layer of the model; layers: {known}")
            out[name] = MacSpec.parse(s)
        return out
    s = MacSpec.parse(spec)
    return {n: s for n in layers}


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, module)


def emulate(model: nn.Module, spec, *, weight_scale="channel", act_scale="tensor", calib=None,
            stats=False, device=None, seed=0, backend="auto") -> nn.Module:
    """A deep copy of ``model`` whose Conv2d/Linear layers compute with ``spec``'s exact arithmetic.

    Parameters
    ----------
    model : torch.nn.Module
        The float model (left untouched).
    spec : MacSpec, str, or mapping of layer name to MacSpec/str
        One spec for every Conv2d/Linear layer, or per layer (names from
        ``model.named_modules()``); layers not named keep full precision.
    weight_scale : {"channel", "tensor", "pow2", "none"}
    act_scale : {"tensor", "pow2", "none"}
        Operand scaling (see the module docstring).
    calib : torch.Tensor, optional
        Calibration inputs: activation scales come from a float forward over them. Without it,
        each layer calibrates on its first batch.
    stats : bool
        Collect partial-sum statistics (read them with :func:`psum.golden.emulation.stats.collect_stats`).
    device : torch.device or str, optional
        Move the copy there.
    seed : int
        Stochastic-rounding seed.
    backend : str
        Kernel backend, default ``"auto"`` (fastest exact one).

    Returns
    -------
    torch.nn.Module
        The emulated copy, in eval mode.

    Raises
    ------
    ValueError
        Bad spec, layer name, scale choice or unsupported layer configuration (one line).
    """
    specs = _resolve(model, spec)
    q = copy.deepcopy(model).eval()
    amax = {}
    if calib is not None:
        hooks = []
        for name in specs:
            def hook(mod, inp, _name=name):
                amax[_name] = max(amax.get(_name, 0.0), float(inp[0].detach().abs().max()))
            hooks.append(q.get_submodule(name).register_forward_pre_hook(hook))
        with torch.no_grad():
            q(calib.to(next(q.parameters()).device) if any(True for _ in q.parameters()) else calib)
        for h in hooks:
            h.remove()
    for name, s in specs.items():
        layer = q.get_submodule(name)
        cls = EmulatedConv2d if isinstance(layer, nn.Conv2d) else EmulatedLinear
        em = cls(layer, s, weight_scale=weight_scale, act_scale=act_scale, name=name, seed=seed,
                 backend=backend, stats=stats)
        if name in amax:
            em.calibrate(amax[name])
        _set(q, name, em)
    if device is not None:
        q = q.to(device)
    return q
