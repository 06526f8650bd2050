"""Quantisation-aware training (QAT) and export to a :class:`QuantNet`, the quantised network that
both the true integer program (:mod:`psum.quant.intprog`) and the fake-quantised float graph
(:mod:`psum.quant.fake2true`) execute.

Scheme (the common symmetric/unsigned one, as in Jacob et al. 2018 and PACT, Choi et al. 2018):

The code formats are format objects (:class:`psum.golden.IntFormat`): ``weight_fmt`` (default
``int8``, signed, 2..8 bits) and ``act_fmt`` (default ``uint8``, unsigned, 2..8 bits); below,
``qmax(int<N>) = 2**(N-1) - 1`` and ``umax(uint<N>) = 2**N - 1`` (255 and 127 for the defaults).

* **Weights**: symmetric, per output channel, ``weight_fmt`` (``int8``, or ``int4``):
  ``s_w[c] = max|W[c]| / qmax`` (the code ``-2**(bits-1)`` is unused, so the grid is symmetric).
* **Activations after ReLU**: unsigned ``act_fmt`` (``uint8``) on ``[0, alpha]`` with a *learned*
  clipping level ``alpha`` (PACT: ``y = clamp(x, 0, alpha)``, gradient 1 to ``alpha`` where
  ``x > alpha``), initialised by calibration (the maximum seen on a few training batches).
  ``s = alpha / umax``.
* **Activations not followed by ReLU** (a residual branch before the addition, the logits):
  signed symmetric, the signed format of ``act_fmt``'s width (``int8``) on ``[-alpha, alpha]``,
  ``s = alpha / qmax``, alpha learned likewise.
* **Network input**: asymmetric ``act_fmt`` on the calibrated ``[min, max]`` of the training images
  (``s = (max-min)/umax``, real zero point ``z = -min/s``). ``z`` is in general *not* an integer, so
  real zero (the convolution's padding) is not on the input grid; the export switch
  ``zero_exact=True`` nudges ``z`` to an integer (the ETH QuantLib / TFLite convertibility rule).
* **Bias**: fake-quantised to the accumulator grid ``s_in * s_w[c]`` (an int32 code), so the
  exported bias is exactly what the QAT graph used.
* **Rounding** of every fake quantiser: ``torch.round`` (round half to even), with a
  straight-through estimator (gradient 1) for the rounding.
* **Batch norm** is folded into the preceding convolution when QAT starts (``W' = W g/sigma``,
  ``b' = (b - mean) g/sigma + beta`` with the checkpoint's running statistics), so QAT already
  trains the folded weights and the export needs no folding step.
* ``pow2=True`` rounds every scale up to a power of two (straight-through), one of the remedies
  studied in :mod:`psum.quant.fake2true`.

The network is read with ``torch.fx`` (``Conv2d``, ``Linear``, ``BatchNorm2d``, ``ReLU``,
max/average pooling, flatten/view, residual ``+``, ``Dropout``/``Identity``); anything else raises a
one-line ``ValueError``. The reduction order of every layer is the one of :mod:`psum.golden`
emulation: Linear by input index, Conv2d by ``(in_channel, kh, kw)``.
"""

from __future__ import annotations

import dataclasses
import math
import operator

import numpy as np

from psum._util import atomic_path, check_int
from psum.golden import IntFormat, parse_format

__all__ = ["TensorQuant", "QNode", "QuantNet", "QatNet", "prepare_qat", "calibrate", "train_qat",
           "evaluate_qat", "qat", "save_quantnet", "load_quantnet", "save_qat", "load_qat",
           "DEFAULT_WEIGHT_FMT", "DEFAULT_ACT_FMT", "qat_checkpoint_name", "qat_checkpoint_path", "ensure_qat"]

_KINDS = ("input", "conv", "linear", "maxpool", "avgpool", "add", "flatten", "relu")

# The code formats of the common 8-bit scheme: int8 weights, uint8 activations.
DEFAULT_WEIGHT_FMT = IntFormat(8, signed=True)
DEFAULT_ACT_FMT = IntFormat(8, signed=False)
# Widths the export supports; the integer program and fake2true assume codes of at most 8 bits.
_CODE_BITS = (2, 8)


def _code_format(name: str, fmt, signed: bool) -> IntFormat:
    """``fmt`` (an IntFormat or its text) checked to be a ``signed``/unsigned 2..8-bit integer format."""
    want = f"{'a signed' if signed else 'an unsigned'} integer format of {_CODE_BITS[0]} to {_CODE_BITS[1]} bits"
    try:
        parsed = parse_format(fmt)
    except ValueError:
        parsed = None
    if not isinstance(parsed, IntFormat) or parsed.signed != signed or not _CODE_BITS[0] <= parsed.bits <= _CODE_BITS[1]:
        raise ValueError(f"{name} must be {want} such as {'int8' if signed else 'uint8'}, not {fmt!s}")
    return parsed


def _symmetric_max(bits: int) -> int:
    """Largest code of a symmetric signed grid of ``bits`` bits (``-qmax..qmax``; int8: 127)."""
    return IntFormat(bits, signed=True).max_int


# ---------------------------------------------------------------------------------------------
# The exported network
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class TensorQuant:
    """How one activation tensor is quantised: ``value = (code - zero) * scale``.

    Attributes
    ----------
    scale : float
        Step of the grid (float64).
    zero : float
        Zero point; an integer except for the network input without ``zero_exact``.
    lo, hi : int
        Range of the codes (``0..255`` for uint8, ``-127..127`` for a symmetric int8).
    """

    scale: float
    zero: float
    lo: int
    hi: int

    @property
    def signed(self) -> bool:
        return self.lo < 0

    @property
    def bits(self) -> int:
        return max(int(self.hi - self.lo).bit_length(), 1)

    @property
    def fmt(self) -> IntFormat:
        """The integer format that holds the codes (``uint8``, ``int8``, ``uint4``, ...)."""
        return IntFormat(self.bits, signed=self.signed)

    @property
    def zero_int(self) -> int:
        """The integer zero point the integer program must use (``round(zero)``)."""
        return int(np.rint(self.zero))


@dataclasses.dataclass(frozen=True, eq=False)
class QNode:
    """One operation of a :class:`QuantNet`.

    Attributes
    ----------
    kind : str
        ``input``, ``conv``, ``linear``, ``maxpool``, ``avgpool``, ``add``, ``flatten`` or ``relu``.
    name : str
        Layer name (the module path, e.g. ``layer1.0.conv1``).
    inputs : tuple of int
        Indices of the input nodes.
    out : TensorQuant
        Quantisation of the output (pass-through ops copy their input's).
    relu : bool
        A ReLU is fused into this op (its output codes are clamped at the zero point).
    weight : numpy.ndarray or None
        Integer weight codes (int64), ``(C_out, C_in, kh, kw)`` or ``(C_out, C_in)``.
    w_scale : numpy.ndarray or None
        Per-output-channel weight scales (float64).
    w_bits : int
        Weight code width.
    bias : numpy.ndarray or None
        Integer bias codes (int64) in accumulator units ``s_in * w_scale[c]``.
    stride, padding, kernel : tuple of int
        Convolution / pooling geometry (``kernel=(0, 0)``: global average pooling).
    """

    kind: str
    name: str
    inputs: tuple
    out: TensorQuant
    relu: bool = False
    weight: np.ndarray | None = None
    w_scale: np.ndarray | None = None
    w_bits: int = 8
    bias: np.ndarray | None = None
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    kernel: tuple = (1, 1)

    @property
    def quantising(self) -> bool:
        """Whether this op computes new values and requantises them (the layers compared)."""
        return self.kind in ("conv", "linear", "add", "avgpool")


@dataclasses.dataclass(frozen=True, eq=False)
class QuantNet:
    """A quantised network as a list of :class:`QNode` in execution order (node 0 is the input).

    Attributes
    ----------
    nodes : tuple of QNode
    output : int
        Index of the node whose codes are the logits.
    meta : dict
        Where it came from (model, dataset, bits, remedies applied, QAT accuracy).
    """

    nodes: tuple
    output: int
    meta: dict = dataclasses.field(default_factory=dict)

    def input_codes(self, x):
        """Input codes of float images ``x`` (torch tensor): ``clamp(round(x/s + z), lo, hi)``, int64."""
        import torch

        q = self.nodes[0].out
        v = torch.round(x.double() / q.scale + q.zero)
        return v.clamp(q.lo, q.hi).to(torch.int64)

    def layer_names(self) -> list[str]:
        return [n.name for n in self.nodes if n.quantising]


def save_quantnet(qnet: QuantNet, path) -> None:
    """Write ``qnet`` to ``path`` (``torch.save`` of plain tensors and dicts; atomic)."""
    import torch

    rows = []
    for n in qnet.nodes:
        d = dataclasses.asdict(n)
        d["out"] = dataclasses.asdict(n.out)
        for k in ("weight", "w_scale", "bias"):
            if d[k] is not None:
                d[k] = torch.from_numpy(np.ascontiguousarray(d[k]))
        rows.append(d)
    with atomic_path(path) as tmp:
        torch.save({"format": "psum-quantnet/1", "nodes": rows, "output": qnet.output, "meta": qnet.meta}, tmp)


def _load_blob(path, fmt: str, what: str) -> dict:
    """``torch.load`` of a psum file whose ``format`` field is ``fmt``; one-line errors otherwise."""
    import torch

    from psum.errors import PsumError

    try:
        blob = torch.load(path, weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"no {what} at {path}; run psum qat first") from None
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise PsumError(f"{path} is not a psum {what} ({type(exc).__name__})") from None
    if not isinstance(blob, dict) or blob.get("format") != fmt:
        raise PsumError(f"{path} is not a psum {what}; rerun psum qat")
    return blob


def load_quantnet(path) -> QuantNet:
    """Read a :class:`QuantNet` written by :func:`save_quantnet`.

    Raises
    ------
    FileNotFoundError
        No such file.
    psum.errors.PsumError
        Not a psum quantised network.
    """
    blob = _load_blob(path, "psum-quantnet/1", "quantised network")
    nodes = []
    for d in blob["nodes"]:
        d = dict(d)
        d["out"] = TensorQuant(**d["out"])
        for k in ("weight", "w_scale", "bias"):
            if d[k] is not None:
                d[k] = d[k].numpy()
        for k in ("inputs", "stride", "padding", "kernel"):
            d[k] = tuple(d[k])
        nodes.append(QNode(**d))
    return QuantNet(tuple(nodes), blob["output"], blob["meta"])


# ---------------------------------------------------------------------------------------------
# Graph capture: torch.fx -> a flat list of ops with BN folded and ReLUs fused
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class _Op:
    kind: str
    name: str
    inputs: list
    relu: bool = False
    weight: object = None  # float64 torch tensors while building
    bias: object = None
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    kernel: tuple = (1, 1)


def _pair(v) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (int(v), int(v))


class _Capture:
    """Builds the flat op list of one traced model: one handler per module type or function.

    ``where`` maps each fx node to the index of the op that holds its value (``None``: not a
    tensor, e.g. ``x.size(0)``). Handlers add ops, or alias a node to an existing op (BatchNorm
    folded into its convolution, a ReLU fused, Identity/Dropout).
    """

    def __init__(self):
        self.ops: list[_Op] = []
        self.where: dict = {}

    def add(self, op: _Op, fn) -> None:
        self.ops.append(op)
        self.where[fn] = len(self.ops) - 1

    def src(self, fn, i: int = 0) -> int:
        s = self.where[fn.args[i]]
        if s is None:
            raise ValueError(f"layer {fn.name}: its input is not a tensor psum can quantise")
        return s

    # -- modules (call_module), dispatched on the module's type ---------------------------------
    def conv(self, fn, name, m):
        import torch

        if m.groups != 1 or _pair(m.dilation) != (1, 1) or m.padding_mode != "zeros" or isinstance(m.padding, str):
            raise ValueError(f"layer {name}: only groups=1, dilation=1, numeric zero padding "
                             "convolutions are supported")
        b = m.bias.detach().double() if m.bias is not None else torch.zeros(m.out_channels, dtype=torch.float64)
        self.add(_Op("conv", name, [self.src(fn)], weight=m.weight.detach().double().clone(), bias=b.clone(),
                     stride=_pair(m.stride), padding=_pair(m.padding), kernel=_pair(m.kernel_size)), fn)

    def linear(self, fn, name, m):
        import torch

        b = m.bias.detach().double() if m.bias is not None else torch.zeros(m.out_features, dtype=torch.float64)
        self.add(_Op("linear", name, [self.src(fn)], weight=m.weight.detach().double().clone(), bias=b.clone()), fn)

    def batchnorm(self, fn, name, m):
        import torch

        s = self.src(fn)
        op = self.ops[s]
        if op.kind != "conv" or op.relu or len(fn.args[0].users) != 1:
            raise ValueError(f"layer {name}: batch norm must directly follow a convolution to be folded")
        # why: fold y = g (conv(x) + b - mean) / sqrt(var + eps) + beta into the conv
        g = m.weight.detach().double() if m.affine else torch.ones_like(m.running_var, dtype=torch.float64)
        beta = m.bias.detach().double() if m.affine else torch.zeros_like(m.running_var, dtype=torch.float64)
        k = g / torch.sqrt(m.running_var.double() + m.eps)
        op.weight = op.weight * k.view(-1, 1, 1, 1)
        op.bias = (op.bias - m.running_mean.double()) * k + beta
        self.where[fn] = s

    def relu(self, fn, name=None, m=None):
        s = self.src(fn)
        producer = fn.args[0]
        if self.ops[s].kind in ("conv", "linear", "add") and not self.ops[s].relu and len(producer.users) == 1:
            self.ops[s].relu = True  # why: the ReLU clamps the requantised codes; no separate pass
            self.where[fn] = s
        else:
            self.add(_Op("relu", fn.name, [s]), fn)

    def maxpool(self, fn, name, m):
        if _pair(m.dilation) != (1, 1) or m.ceil_mode:
            raise ValueError(f"layer {name}: max pooling with dilation or ceil_mode is not supported")
        self.add(_Op("maxpool", name, [self.src(fn)], kernel=_pair(m.kernel_size),
                     stride=_pair(m.stride if m.stride is not None else m.kernel_size), padding=_pair(m.padding)), fn)

    def adaptive_avgpool(self, fn, name, m):
        if _pair(m.output_size) != (1, 1):
            raise ValueError(f"layer {name}: only global average pooling (output size 1) is supported")
        self.add(_Op("avgpool", name, [self.src(fn)], kernel=(0, 0)), fn)

    def avgpool(self, fn, name, m):
        if _pair(m.padding) != (0, 0) or m.ceil_mode:
            raise ValueError(f"layer {name}: average pooling with padding or ceil_mode is not supported")
        self.add(_Op("avgpool", name, [self.src(fn)], kernel=_pair(m.kernel_size),
                     stride=_pair(m.stride if m.stride is not None else m.kernel_size)), fn)

    def flatten(self, fn, name=None, m=None):
        self.add(_Op("flatten", name or fn.name, [self.src(fn)]), fn)

    def add_op(self, fn):
        self.add(_Op("add", fn.name, [self.src(fn, 0), self.src(fn, 1)]), fn)

    def passthrough(self, fn, name=None, m=None):
        self.where[fn] = self.src(fn)

    def not_a_tensor(self, fn):
        self.where[fn] = None


def _module_handlers() -> dict:
    """Module type -> :class:`_Capture` handler (subclasses match through their MRO)."""
    from torch import nn

    return {nn.Conv2d: _Capture.conv, nn.Linear: _Capture.linear, nn.BatchNorm2d: _Capture.batchnorm,
            nn.ReLU: _Capture.relu, nn.MaxPool2d: _Capture.maxpool, nn.AdaptiveAvgPool2d: _Capture.adaptive_avgpool,
            nn.AvgPool2d: _Capture.avgpool, nn.Flatten: _Capture.flatten, nn.Identity: _Capture.passthrough,
            nn.Dropout: _Capture.passthrough}


def _function_handlers() -> list:
    """(targets, handler) for call_function / call_method nodes, matched by equality of the target."""
    import torch
    import torch.nn.functional as F

    return [((F.relu, torch.relu, "relu", "relu_"), _Capture.relu),
            ((operator.add, torch.add, "add", operator.iadd), _Capture.add_op),
            ((torch.flatten, "flatten", "view", "reshape"), _Capture.flatten),
            (("size",), _Capture.not_a_tensor),
            ((F.dropout, "contiguous"), _Capture.passthrough)]


def _capture(model) -> tuple[list[_Op], int]:
    """Trace ``model`` with torch.fx; fold BatchNorm into convolutions and fuse ReLUs."""
    from torch import fx

    model = model.eval()
    gm = fx.symbolic_trace(model)
    modules = dict(gm.named_modules())
    by_type, by_target = _module_handlers(), _function_handlers()
    cap = _Capture()
    output = None
    for fn in gm.graph.nodes:
        if fn.op == "placeholder":
            if cap.ops:
                raise ValueError("a model for QAT must take exactly one input tensor")
            cap.add(_Op("input", "input", []), fn)
        elif fn.op == "output":
            output = cap.where[fn.args[0]]
        elif fn.op == "get_attr":
            raise ValueError(f"layer {fn.target}: parameters used outside a layer are not supported")
        elif fn.op == "call_module":
            m = modules[fn.target]
            handler = next((by_type[c] for c in type(m).__mro__ if c in by_type), None)
            if handler is None:
                raise ValueError(f"layer {fn.target}: {type(m).__name__} is not supported by QAT export")
            handler(cap, fn, str(fn.target), m)
        elif fn.op in ("call_function", "call_method"):
            t = fn.target
            handler = next((h for targets, h in by_target if t in targets), None)
            if handler is None:
                raise ValueError(f"operation {fn.name} ({getattr(t, '__name__', t)}) is not supported by QAT export")
            handler(cap, fn)
    if output is None or cap.ops[output].kind in ("input",):
        raise ValueError("the model's output must be computed by a layer")
    return cap.ops, output


# ---------------------------------------------------------------------------------------------
# Fake quantisers (straight-through)
# ---------------------------------------------------------------------------------------------
def _round_ste(x):
    return x + (x.round() - x).detach()


def _pow2_ste(s):
    """Round a scale up to a power of two, gradient straight through."""
    import torch

    p = torch.exp2(torch.ceil(torch.log2(s.detach())))
    return s + (p - s).detach()


def _weight_codes(w, bits: int, pow2: bool):
    """Symmetric per-output-channel codes and scales of float weights ``w`` (any float dtype)."""
    import torch

    qmax = _symmetric_max(bits)
    amax = w.detach().abs().reshape(w.shape[0], -1).amax(dim=1).clamp_min(1e-12)
    s = amax / qmax
    if pow2:
        s = torch.exp2(torch.ceil(torch.log2(s)))
    shape = (-1,) + (1,) * (w.dim() - 1)
    q = torch.clamp(_round_ste(w / s.view(shape)), -qmax, qmax)
    return q, s


# ---------------------------------------------------------------------------------------------
# The QAT module
# ---------------------------------------------------------------------------------------------
def _torch_module_base():
    from torch import nn

    return nn.Module


class QatNet(_torch_module_base()):
    """A network with fake quantisers, trainable (straight-through), built by :func:`prepare_qat`.

    Parameters
    ----------
    ops : list
        The captured ops (internal).
    output : int
        Index of the logits op.
    weight_fmt : IntFormat
        Weight code format (signed, 2..8 bits; default int8).
    act_fmt : IntFormat
        Activation code format (unsigned, 2..8 bits; default uint8); tensors not clamped by a ReLU
        use the signed symmetric grid of the same width.
    pow2 : bool
        Power-of-two scales everywhere.
    """

    def __init__(self, ops, output, *, weight_fmt: IntFormat = DEFAULT_WEIGHT_FMT,
                 act_fmt: IntFormat = DEFAULT_ACT_FMT, pow2: bool = False):
        import torch
        from torch import nn

        super().__init__()
        self.ops = ops
        self.output = output
        self.weight_fmt = _code_format("weight_fmt", weight_fmt, signed=True)
        self.act_fmt = _code_format("act_fmt", act_fmt, signed=False)
        self.pow2 = pow2
        self.weights = nn.ParameterDict()
        self.biases = nn.ParameterDict()
        self.alphas = nn.ParameterDict()
        self.signed = {}
        self.calibrating = False
        self.register_buffer("in_lo", torch.tensor(0.0))
        self.register_buffer("in_hi", torch.tensor(1.0))
        # Which outputs are unsigned: ReLU-fused ops, and pooling/flatten/relu of unsigned tensors.
        unsigned = {}
        for i, op in enumerate(ops):
            if op.kind == "input":
                unsigned[i] = True  # asymmetric uint8
            elif op.kind in ("conv", "linear", "add"):
                unsigned[i] = op.relu
            elif op.kind == "relu":
                unsigned[i] = unsigned[op.inputs[0]]
            else:
                unsigned[i] = unsigned[op.inputs[0]]
            key = self._key(i)
            if op.kind in ("conv", "linear"):
                self.weights[key] = nn.Parameter(op.weight.float())
                self.biases[key] = nn.Parameter(op.bias.float())
            if op.kind in ("conv", "linear", "add", "avgpool"):
                self.alphas[key] = nn.Parameter(torch.tensor(1.0))
                self.signed[i] = not unsigned[i]
        self.unsigned = unsigned
        self._amax = {}

    @property
    def w_bits(self) -> int:
        """Weight code width (``weight_fmt.bits``)."""
        return self.weight_fmt.bits

    @property
    def _umax(self) -> int:
        """Largest unsigned activation code (uint8: 255)."""
        return self.act_fmt.max_int

    @property
    def _qmax(self) -> int:
        """Largest code of the signed symmetric activation grid of the same width (int8: 127)."""
        return _symmetric_max(self.act_fmt.bits)

    @staticmethod
    def _key(i: int) -> str:
        return f"op{i}"

    def _act(self, i, x):
        """PACT / learned-clip fake quantiser of op ``i``'s output; returns (values, scale)."""
        import torch

        alpha = self.alphas[self._key(i)]
        if self.calibrating:
            m = x.detach().abs().max()
            self._amax[i] = torch.maximum(self._amax.get(i, m), m)
            return x, None
        alpha = alpha.abs() + 1e-8
        if self.signed[i]:
            qmax = self._qmax
            s = alpha / qmax
            if self.pow2:
                s = _pow2_ste(s)
            lim = s * qmax
            y = torch.minimum(torch.maximum(x, -lim), lim)
            return _round_ste(y / s) * s, s
        umax = self._umax
        s = alpha / umax
        if self.pow2:
            s = _pow2_ste(s)
        lim = s * umax
        y = torch.minimum(torch.relu(x), lim)  # PACT: d/d alpha = 1 where x > alpha
        return _round_ste(y / s) * s, s

    def input_quant(self, zero_exact: bool = False):
        """``(scale, zero)`` of the input quantiser (float64)."""
        lo, hi = float(self.in_lo), float(self.in_hi)
        lo, hi = min(lo, 0.0), max(hi, 0.0)  # why: the grid must cover real zero (padding)
        s = max(hi - lo, 1e-12) / self._umax
        if self.pow2:
            s = 2.0 ** math.ceil(math.log2(s))
        z = -lo / s
        if zero_exact:
            z = float(np.rint(z))
        return s, z

    def forward(self, x):
        import torch
        import torch.nn.functional as F

        vals, scales = {}, {}
        for i, op in enumerate(self.ops):
            key = self._key(i)
            if op.kind == "input":
                if self.calibrating:
                    self.in_lo.fill_(min(float(self.in_lo), float(x.min())))
                    self.in_hi.fill_(max(float(self.in_hi), float(x.max())))
                    vals[i], scales[i] = x, None
                    continue
                s, z = self.input_quant()
                q = torch.clamp(torch.round(x / s + z), 0, self._umax)
                vals[i], scales[i] = (q - z) * s, torch.tensor(s, dtype=x.dtype)
                continue
            xin = [vals[j] for j in op.inputs]
            if op.kind in ("conv", "linear"):
                w = self.weights[key]
                if self.calibrating:
                    wq, b = w, self.biases[key]
                else:
                    q, s_w = _weight_codes(w, self.w_bits, self.pow2)
                    shape = (-1,) + (1,) * (w.dim() - 1)
                    wq = q * s_w.view(shape)
                    acc_scale = scales[op.inputs[0]] * s_w  # why: the bias lives on the accumulator grid
                    b = _round_ste(self.biases[key] / acc_scale) * acc_scale
                if op.kind == "conv":
                    y = F.conv2d(xin[0], wq, b, stride=op.stride, padding=op.padding)
                else:
                    y = F.linear(xin[0], wq, b)
            elif op.kind == "add":
                y = xin[0] + xin[1]
            elif op.kind == "avgpool":
                if op.kernel == (0, 0):
                    y = F.adaptive_avg_pool2d(xin[0], 1)
                else:
                    y = F.avg_pool2d(xin[0], op.kernel, op.stride)
            elif op.kind == "maxpool":
                vals[i], scales[i] = F.max_pool2d(xin[0], op.kernel, op.stride, op.padding), scales[op.inputs[0]]
                continue
            elif op.kind == "flatten":
                vals[i], scales[i] = torch.flatten(xin[0], 1), scales[op.inputs[0]]
                continue
            elif op.kind == "relu":
                vals[i], scales[i] = torch.relu(xin[0]), scales[op.inputs[0]]
                continue
            else:  # pragma: no cover - _capture only produces the kinds above
                raise AssertionError(op.kind)
            if op.relu:
                y = torch.relu(y)
            vals[i], scales[i] = self._act(i, y)
        return vals[self.output]

    # -- export --------------------------------------------------------------------------------
    def export(self, *, zero_exact: bool = False, pow2: bool | None = None, meta: dict | None = None) -> QuantNet:
        """The quantised network as integer codes and float64 scales.

        Parameters
        ----------
        zero_exact : bool
            Nudge the input zero point to an integer (QuantLib's convertibility rule).
        pow2 : bool, optional
            Round every scale up to a power of two (default: as trained). Weights and biases are
            re-quantised from the float parameters with the new scales.
        meta : dict, optional
            Extra metadata stored in the result.
        """
        import torch

        pow2 = self.pow2 if pow2 is None else bool(pow2)
        p2 = (lambda s: 2.0 ** math.ceil(math.log2(s))) if pow2 else (lambda s: s)
        saved = self.pow2
        self.pow2 = pow2
        try:
            s_in, z_in = self.input_quant(zero_exact)
        finally:
            self.pow2 = saved
        quants: dict[int, TensorQuant] = {}
        nodes = []
        for i, op in enumerate(self.ops):
            key = self._key(i)
            if op.kind == "input":
                quants[i] = TensorQuant(float(s_in), float(z_in), 0, self._umax)
                nodes.append(QNode("input", "input", (), quants[i]))
                continue
            if op.kind in ("maxpool", "flatten", "relu"):
                quants[i] = quants[op.inputs[0]]
                nodes.append(QNode(op.kind, op.name, tuple(op.inputs), quants[i], stride=op.stride,
                                   padding=op.padding, kernel=op.kernel))
                continue
            alpha = abs(float(self.alphas[key].detach())) + 1e-8
            if self.signed[i]:
                quants[i] = TensorQuant(p2(alpha / self._qmax), 0.0, -self._qmax, self._qmax)
            else:
                quants[i] = TensorQuant(p2(alpha / self._umax), 0.0, 0, self._umax)
            kw = {}
            if op.kind in ("conv", "linear"):
                w = self.weights[key].detach().double()
                q, s_w = _weight_codes(w, self.w_bits, pow2)
                s_w = s_w.numpy().astype(np.float64)
                acc_scale = quants[op.inputs[0]].scale * s_w
                b = np.rint(self.biases[key].detach().double().numpy() / acc_scale).astype(np.int64)
                kw = dict(weight=q.to(torch.int64).numpy(), w_scale=s_w, w_bits=self.w_bits, bias=b)
            nodes.append(QNode(op.kind, op.name, tuple(op.inputs), quants[i], relu=op.relu,
                               stride=op.stride, padding=op.padding, kernel=op.kernel, **kw))
        info = dict(meta or {})
        info.update(w_bits=self.w_bits, pow2=pow2, zero_exact=zero_exact, trained_pow2=self.pow2)
        if self.act_fmt != DEFAULT_ACT_FMT:  # default metadata unchanged
            info["act_fmt"] = str(self.act_fmt)
        return QuantNet(tuple(nodes), self.output, info)


def _weight_format(w_bits, weight_fmt) -> IntFormat:
    """The weight format from ``weight_fmt`` or the ``w_bits`` shorthand (not both)."""
    if weight_fmt is not None:
        if w_bits is not None:
            raise ValueError("give weight_fmt or w_bits, not both")
        return _code_format("weight_fmt", weight_fmt, signed=True)
    if w_bits is None:
        return DEFAULT_WEIGHT_FMT
    return IntFormat(check_int("w_bits", w_bits, *_CODE_BITS), signed=True)


def prepare_qat(model, *, w_bits: int | None = None, pow2: bool = False, weight_fmt=None,
                act_fmt=DEFAULT_ACT_FMT) -> QatNet:
    """A :class:`QatNet` from a float model (its BatchNorms folded with their running statistics).

    Parameters
    ----------
    model : torch.nn.Module
        The float network (traced with ``torch.fx``).
    w_bits : int, optional
        Shorthand for ``weight_fmt=IntFormat(w_bits)``.
    pow2 : bool
        Power-of-two scales everywhere.
    weight_fmt : IntFormat or str, optional
        Weight code format, signed, 2..8 bits (default int8).
    act_fmt : IntFormat or str
        Activation code format, unsigned, 2..8 bits (default uint8).

    Raises
    ------
    ValueError
        A format that is not a signed (weights) / unsigned (activations) 2..8-bit integer format,
        ``w_bits`` not 2..8, both ``w_bits`` and ``weight_fmt``, or a layer the export does not
        support.
    """
    weight_fmt = _weight_format(w_bits, weight_fmt)
    act_fmt = _code_format("act_fmt", act_fmt, signed=False)
    ops, output = _capture(model)
    return QatNet(ops, output, weight_fmt=weight_fmt, act_fmt=act_fmt, pow2=pow2)


def calibrate(qnet: QatNet, batches) -> None:
    """Initialise the clipping levels: the input range and each alpha = the maximum seen."""
    import torch

    qnet.eval()
    qnet.calibrating = True
    qnet._amax = {}
    qnet.in_lo.fill_(float("inf"))
    qnet.in_hi.fill_(float("-inf"))
    try:
        with torch.no_grad():
            for x in batches:
                qnet(x)
    finally:
        qnet.calibrating = False
    with torch.no_grad():
        for i, m in qnet._amax.items():
            qnet.alphas[qnet._key(i)].fill_(max(float(m), 1e-6))


def evaluate_qat(qnet, ds, *, limit=None, batch_size: int = 256) -> float:
    """Top-1 accuracy (%) of the fake-quantised network in float32."""
    import torch

    from psum.nets.train import iterate_batches

    qnet.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in iterate_batches(ds, batch_size, limit=limit):
            correct += int((qnet(x).argmax(1) == y).sum())
            total += len(y)
    return 100.0 * correct / max(total, 1)


def train_qat(qnet: QatNet, ds, *, epochs: int = 3, lr: float = 5e-4, batch_size: int = 64, seed: int = 0,
              limit: int | None = None, progress_enabled=None) -> None:
    """Fine-tune ``qnet`` (weights, biases and clipping levels) with Adam and straight-through gradients."""
    import torch
    import torch.nn.functional as F

    from psum.progress import progress
    from psum.nets.train import iterate_batches

    check_int("epochs", epochs, 0)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(qnet.parameters(), lr=lr)
    n = len(ds) if limit is None else min(limit, len(ds))
    steps = epochs * math.ceil(n / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    with progress(total=steps, desc="qat", unit="batch", enabled=progress_enabled) as bar:
        for _ in range(epochs):
            qnet.train()
            for x, y in iterate_batches(ds, batch_size, limit=limit, shuffle=True, generator=gen):
                loss = F.cross_entropy(qnet(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                bar.update(1)
                bar.set_postfix_str(f"loss {float(loss.detach()):.3f}")


def qat(model: str, dataset: str, *, width: float | None = None, w_bits: int | None = None, pow2: bool = False,
        epochs: int = 3, float_epochs: int | None = None, data_dir=None, seed: int = 0, limit: int | None = None,
        checkpoint=None, progress_enabled=None, weight_fmt=None, act_fmt=DEFAULT_ACT_FMT) -> tuple[QatNet, dict]:
    """Float checkpoint (trained first if missing) -> BN folding -> calibration -> QAT.

    Parameters
    ----------
    model, dataset : str
        As for ``psum train``.
    width : float, optional
        Width multiplier; a width other than the default uses its own float checkpoint
        (``<model>-w<width>-<dataset>.pt`` in :func:`psum.paths.checkpoint_dir`).
    w_bits : int, optional
        Weight bits (8 or 4): shorthand for ``weight_fmt=IntFormat(w_bits)``.
    pow2 : bool
        Train with power-of-two scales.
    weight_fmt, act_fmt : IntFormat or str, optional
        Code formats, as :func:`prepare_qat` (default int8 weights, uint8 activations).
    epochs : int
        QAT epochs.
    float_epochs : int, optional
        Epochs of float training when no checkpoint exists (default: ``psum train``'s).
    checkpoint : path, optional
        Float checkpoint to start from.

    Returns
    -------
    (QatNet, dict)
        The trained QAT network and metadata (float and QAT top-1, widths, bits).
    """
    import torch

    from psum.nets.data import input_channels, load_dataset
    from psum.nets.models import default_width
    from psum.nets.train import checkpoint_path, ensure_checkpoint, find_checkpoint, iterate_batches

    weight_fmt = _weight_format(w_bits, weight_fmt)  # before any training: a bad format fails fast
    act_fmt = _code_format("act_fmt", act_fmt, signed=False)
    torch.manual_seed(seed)
    w = default_width(model, dataset) if width is None else width
    path = checkpoint
    if path is None:
        # Yours (checkpoint_dir()) first, then the shipped one; a missing one is trained into
        # checkpoint_dir(), never into the package.
        name = f"{model}-{dataset}.pt"
        if width is not None and width != default_width(model, dataset):
            name = f"{model}-w{width:g}-{dataset}.pt"
        path = find_checkpoint(model, dataset, name) or checkpoint_path(model, dataset).with_name(name)
    kwargs = dict(width=w, seed=seed, progress_enabled=progress_enabled)
    if float_epochs is not None:
        kwargs["epochs"] = float_epochs
    net, meta = ensure_checkpoint(model, dataset, data_dir=data_dir, path=path, **kwargs)
    ch = input_channels(model, dataset)
    train_ds = load_dataset(dataset, "train", data_dir, channels=ch)
    test_ds = load_dataset(dataset, "test", data_dir, channels=ch)
    qnet = prepare_qat(net, weight_fmt=weight_fmt, act_fmt=act_fmt, pow2=pow2)
    calibrate(qnet, (x for x, _ in iterate_batches(train_ds, 256, limit=1024)))
    before = evaluate_qat(qnet, test_ds, limit=limit)
    train_qat(qnet, train_ds, epochs=epochs, seed=seed, progress_enabled=progress_enabled)
    after = evaluate_qat(qnet, test_ds, limit=limit)
    info = dict(model=model, dataset=dataset, width=meta.get("width", w), float_top1=meta.get("accuracy"),
                qat_top1_before=before, qat_top1=after, qat_epochs=epochs, w_bits=weight_fmt.bits, seed=seed,
                float_checkpoint=meta.get("path"))
    if act_fmt != DEFAULT_ACT_FMT:  # only when it differs, so default infos (and their keys) are unchanged
        info["act_fmt"] = str(act_fmt)
    return qnet, info


# ---------------------------------------------------------------------------------------------
# QAT checkpoints
# ---------------------------------------------------------------------------------------------
def qat_checkpoint_name(model: str, dataset: str, *, width=None, w_bits: int = 8, pow2: bool = False) -> str:
    """``<model>[-w<width>]-<dataset>-qat[-int4][-pow2].pt``: one name per QAT setting."""
    name = model + (f"-w{width:g}" if width is not None else "") + f"-{dataset}-qat"
    name += f"-int{w_bits}" if w_bits != 8 else ""
    name += "-pow2" if pow2 else ""
    return f"{name}.pt"


def qat_checkpoint_path(model: str, dataset: str, *, width=None, w_bits: int = 8, pow2: bool = False):
    """Where :func:`ensure_qat` writes a QAT checkpoint: :func:`qat_checkpoint_name` in
    :func:`psum.paths.checkpoint_dir` (``./checkpoints``)."""
    from psum.paths import checkpoint_dir

    return checkpoint_dir() / qat_checkpoint_name(model, dataset, width=width, w_bits=w_bits, pow2=pow2)


def ensure_qat(model: str, dataset: str, *, path=None, retrain: bool = False, width=None, w_bits: int = 8,
               pow2: bool = False, epochs: int = 3, float_epochs=None, data_dir=None, seed: int = 0):
    """A QAT network for the setting: loaded when stored, else trained with :func:`qat` and saved.

    Parameters
    ----------
    model, dataset, width, w_bits, pow2, epochs, float_epochs, data_dir, seed
        As for :func:`qat`.
    path : str or Path, optional
        The QAT checkpoint. Default: yours (:func:`qat_checkpoint_path`) when it exists, else the
        one shipped with psum, else a new one trained into :func:`qat_checkpoint_path`.
    retrain : bool
        Train (and overwrite ``path``) even when a checkpoint exists.

    Returns
    -------
    (QatNet, dict, pathlib.Path)
        The network, its metadata and the checkpoint it came from (or was saved to).
    """
    from pathlib import Path

    from psum.paths import find_checkpoint

    kw = dict(width=width, w_bits=w_bits, pow2=pow2)
    if path is not None:
        path = Path(path)
    elif retrain:
        path = qat_checkpoint_path(model, dataset, **kw)
    else:
        path = find_checkpoint(qat_checkpoint_name(model, dataset, **kw)) or qat_checkpoint_path(model, dataset, **kw)
    if path.is_file() and not retrain:
        net, info = load_qat(path)
        return net, info, path
    net, info = qat(model, dataset, width=width, w_bits=w_bits, pow2=pow2, epochs=epochs, float_epochs=float_epochs,
                    data_dir=data_dir, seed=seed)
    save_qat(net, info, path)
    return net, info, path


def save_qat(qnet: QatNet, info: dict, path) -> None:
    """Write a trained :class:`QatNet` and its metadata (atomic; loadable with weights_only)."""
    import os

    import torch

    ops = [{k: v for k, v in dataclasses.asdict(op).items()} for op in qnet.ops]
    blob = {"format": "psum-qat/1", "ops": ops, "output": qnet.output, "w_bits": qnet.w_bits, "pow2": qnet.pow2,
            "act_fmt": str(qnet.act_fmt), "state_dict": qnet.state_dict(), "info": dict(info)}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)


def load_qat(path) -> tuple[QatNet, dict]:
    """Read a checkpoint written by :func:`save_qat`.

    Raises
    ------
    FileNotFoundError
        No file (the message gives the command that makes one).
    psum.errors.PsumError
        Not a psum QAT checkpoint.
    """
    blob = _load_blob(path, "psum-qat/1", "QAT checkpoint")
    ops = []
    for d in blob["ops"]:
        d = dict(d)
        for k in ("stride", "padding", "kernel"):
            d[k] = tuple(d[k])
        d["inputs"] = list(d["inputs"])
        ops.append(_Op(**d))
    # files written before act_fmt existed hold uint8 activations
    qnet = QatNet(ops, blob["output"], weight_fmt=IntFormat(blob["w_bits"]), act_fmt=blob.get("act_fmt", "uint8"),
                  pow2=blob["pow2"])
    qnet.load_state_dict(blob["state_dict"])
    return qnet.eval(), blob["info"]
