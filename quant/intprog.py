"""The true integer program of a :class:`psum.quant.qat.QuantNet`: integer codes in, integer codes out.

What every layer computes (all integers, no floating point anywhere on the data path):

Convolution / Linear (a MAC layer)
    The accumulator starts from the integer bias ``B[c]`` (the unit's ``load``), then adds one
    product ``a_k * w_k`` per step in the reduction order of :mod:`psum.golden` (Linear: input
    index; Conv2d: ``(in_channel, kh, kw)``), with the arithmetic of a :class:`psum.golden.MacSpec`
    whose operands are the layer's code formats (``a=uint8`` after ReLU, ``b=int8`` weights) and
    whose accumulator is the user's (``int32`` by default; any ``int<N>`` with ``overflow=wrap``
    or ``sat``). The load wraps or saturates the bias into the accumulator like every step.

    * Input zero point ``z`` (only the network input has one): the inputs are the uint8 codes
      ``q``; padding holds ``z``; the bias absorbs the offset, ``B[c] = b[c] - z * sum_k w[c,k]``,
      so ``B + sum q*w = b + sum (q - z)*w`` (TFLite's scheme).
    * ``overflow=wrap`` is associative modulo ``2**N``, so the sum is taken exactly (a float64
      GEMM of integers whose every partial sum is below ``2**53`` is exact, whatever order the BLAS
      uses; otherwise an int64 GEMM) and wrapped once: bit-identical to wrapping after each step.
      ``overflow=sat`` (and an integer ``prod`` format) is not associative: it runs the steps in
      order, vectorised over all output elements. Both run through
      :func:`psum.golden.emulation.kernels.accumulate`, the machinery of every emulated layer.

Requantisation (every op that produces new codes: MAC layers, ``add``, ``avgpool``)
    ``y = clamp(round(acc * m / 2**shift) + z_out, lo, hi)`` with an integer multiplier
    ``m`` (``mult_bits`` bits, default 31, ``2**(mult_bits-1) <= m < 2**mult_bits``) and shift
    such that ``m / 2**shift`` is the real ratio ``M = s_in * s_w[c] / s_out`` rounded to nearest.
    The rounding of ``acc * m / 2**shift`` is **round half to even** by default (``ties="even"``:
    the same rule as ``torch.round`` in the fake-quantised graph, so conversion differences come
    from arithmetic, not from a tie rule); ``ties="up"`` gives gemmlowp/TFLite's round-half-up
    (``(p + 2**(shift-1)) >> shift``). A fused ReLU is the clamp at the zero code (``lo = 0``).

``add`` (residual)
    ``y = requant(q1 * m1 + q2 * m2, shift)``: both inputs rescaled to the output grid with one
    common shift (``m_i / 2**shift ~= s_i / s_out``), summed exactly in int64.
``avgpool``
    exact integer sum of the window, then ``requant`` with ``M = s_in / (n * s_out)``.
``maxpool``, ``flatten``, standalone ``relu``
    act on the codes directly (max commutes with the monotone map code -> value).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from psum._util import check_int
from psum.golden.rounding import Rounding, round_up

__all__ = ["IntLayer", "IntProgram", "compile_program", "quantize_multiplier", "requantize",
           "acc_spec", "TIES"]

TIES = ("even", "up")


def quantize_multiplier(M, mult_bits: int = 31):
    """Integer ``(m, shift)`` with ``m / 2**shift`` the nearest such number to ``M > 0``.

    ``m`` has exactly ``mult_bits`` bits (``2**(mult_bits-1) <= m < 2**mult_bits``); arrays are
    handled elementwise. Raises ``ValueError`` when ``M`` is not positive and finite or so large
    that ``shift`` would be negative.
    """
    M = np.atleast_1d(np.asarray(M, dtype=np.float64))
    if not np.all(np.isfinite(M)) or np.any(M <= 0):
        raise ValueError(f"rescale factors must be positive and finite, not {M[~(np.isfinite(M) & (M > 0))][0]!r}")
    frac, e = np.frexp(M)  # M = frac * 2**e, frac in [0.5, 1)
    shift = (mult_bits - e).astype(np.int64)
    m = np.rint(np.ldexp(frac, mult_bits)).astype(np.int64)  # exact scaling by a power of two
    carry = m == (1 << mult_bits)  # frac rounded up to 1.0
    m = np.where(carry, m >> 1, m)
    shift = np.where(carry, shift - 1, shift)
    if np.any(shift < 1) or np.any(shift > 62):
        raise ValueError(f"rescale factor {M[(shift < 1) | (shift > 62)][0]!r} is outside the range a "
                         f"{mult_bits}-bit multiplier with a right shift can express")
    return m, shift


def requantize(acc, m, shift, *, zero: int = 0, lo: int, hi: int, ties: str = "even"):
    """``clamp(round(acc * m / 2**shift) + zero, lo, hi)`` on int64 arrays (exact integer arithmetic).

    ``acc * m`` must fit in int64 (the caller bounds ``|acc| < 2**(63 - mult_bits)``).
    """
    p = np.asarray(acc, dtype=np.int64) * np.asarray(m, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    q = p >> shift  # floor division by 2**shift (arithmetic shift)
    r = p - (q << shift)  # remainder in [0, 2**shift)
    half = np.int64(1) << (shift - 1)
    if ties not in TIES:
        raise ValueError(f"ties must be one of {', '.join(TIES)}, not {ties!r}")
    # The increment is the rule book's (psum.golden.rounding.round_up) on the floor form q + r/2**shift,
    # whose fraction is never negative: sign=False. "even" is RNE; "up" (round half toward +inf,
    # gemmlowp/TFLite) is RNA applied to that non-negative fraction.
    up = round_up(Rounding.RNE if ties == "even" else Rounding.RNA, lsb=(q & 1) == 1, guard=r >= half,
                  sticky=(r & (half - 1)) != 0, sign=np.zeros(q.shape, dtype=bool))
    return np.clip(q + up + zero, lo, hi)


def acc_spec(acc="int32", *, overflow: str | None = None, a=None, b=None):
    """The :class:`psum.golden.MacSpec` of an integer MAC layer: ``a``/``b`` code formats, ``acc``.

    ``acc`` may be a format name (``"int32"``, ``"int16"``), a MacSpec text (``"acc=int20,overflow=sat"``;
    ``a``/``b`` are then filled in) or a MacSpec.
    """
    from psum.golden import IntFormat, MacSpec, parse_format
    from psum.quant.qat import DEFAULT_ACT_FMT, DEFAULT_WEIGHT_FMT

    a = a if a is not None else DEFAULT_ACT_FMT
    b = b if b is not None else DEFAULT_WEIGHT_FMT
    if isinstance(acc, MacSpec):
        spec = acc.replace(a=a, b=b)
    elif isinstance(acc, str) and "=" in acc:
        text = ",".join(p for p in acc.split(",") if not p.strip().startswith(("a=", "b=")))
        spec = MacSpec.parse(f"a={a},b={b},{text}")
    else:
        fmt = parse_format(acc)
        if not isinstance(fmt, IntFormat):
            raise ValueError(f"the integer program needs an integer accumulator such as int32, not {acc}")
        spec = MacSpec(a=a, b=b, acc=fmt, overflow=overflow)
    if overflow is not None and spec.overflow != overflow:
        spec = spec.replace(overflow=overflow)
    if not spec.int_acc:
        raise ValueError(f"the integer program needs an integer accumulator such as int32, not {spec.acc}")
    if spec.order.kind != "seq":
        raise ValueError(f"the integer program accumulates sequentially (order=seq), not order={spec.order}")
    if spec.acc.bits > 40:
        raise ValueError(f"accumulator {spec.acc} is wider than the 40 bits the requantiser supports")
    return spec


@dataclasses.dataclass(frozen=True, eq=False)
class IntLayer:
    """Integer parameters of one op (see the module docstring for the arithmetic)."""

    kind: str
    name: str
    inputs: tuple
    lo: int
    hi: int
    zero: int = 0
    relu: bool = False
    weight: np.ndarray | None = dataclasses.field(default=None, repr=False)  # (C_out, K) int64
    bias: np.ndarray | None = dataclasses.field(default=None, repr=False)  # zero point folded in
    pad_value: int = 0
    a_fmt: object = None
    b_fmt: object = None
    m: np.ndarray | None = dataclasses.field(default=None, repr=False)  # per channel / per input
    shift: np.ndarray | None = dataclasses.field(default=None, repr=False)
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    kernel: tuple = (1, 1)
    wshape: tuple = ()


def compile_program(qnet, *, mult_bits: int = 31) -> "IntProgram":
    """Integer parameters (bias with zero point, multipliers and shifts) of a :class:`QuantNet`."""
    from psum.golden import IntFormat

    check_int("mult_bits", mult_bits, 8, 31)
    layers = []
    for n in qnet.nodes:
        o = n.out
        common = dict(kind=n.kind, name=n.name, inputs=n.inputs, lo=o.lo, hi=o.hi, zero=o.zero_int, relu=n.relu,
                      stride=n.stride, padding=n.padding, kernel=n.kernel)
        if n.kind in ("conv", "linear"):
            qi = qnet.nodes[n.inputs[0]].out
            w = n.weight.reshape(n.weight.shape[0], -1).astype(np.int64)
            z = qi.zero_int
            bias = n.bias.astype(np.int64) - z * w.sum(axis=1)
            m, sh = quantize_multiplier(qi.scale * n.w_scale / o.scale, mult_bits)
            lo = max(o.lo, o.zero_int) if n.relu else o.lo
            # the operand formats are the code formats the QAT export chose (uint8/int8 by default)
            layers.append(IntLayer(**{**common, "lo": lo}, weight=w, bias=bias, pad_value=z, a_fmt=qi.fmt,
                                   b_fmt=IntFormat(n.w_bits), m=m, shift=sh, wshape=tuple(n.weight.shape)))
        elif n.kind == "add":
            s = np.array([qnet.nodes[j].out.scale for j in n.inputs]) / o.scale
            m, sh = quantize_multiplier(s.max(), mult_bits)
            # why: one common shift, so the two rescaled terms add exactly before one rounding
            ms = np.rint(np.ldexp(s, int(sh[0]))).astype(np.int64)
            lo = max(o.lo, o.zero_int) if n.relu else o.lo
            layers.append(IntLayer(**{**common, "lo": lo}, m=ms, shift=sh))
        elif n.kind == "avgpool":
            qi = qnet.nodes[n.inputs[0]].out
            layers.append(IntLayer(**common, pad_value=qi.zero_int))  # m, shift set per input size
        else:
            layers.append(IntLayer(**common))
    return IntProgram(tuple(layers), qnet.output, qnet, mult_bits)


def _im2col(x, kernel, stride, padding, pad_value):
    """``(N*L, K)`` float64 patches of an ``(N, C, H, W)`` tensor, K ordered ``(c, kh, kw)``."""
    import torch.nn.functional as F

    if padding != (0, 0):
        x = F.pad(x, (padding[1], padding[1], padding[0], padding[0]), value=float(pad_value))
    n = x.shape[0]
    cols = F.unfold(x, kernel, stride=stride)  # (N, K, L): K in (c, kh, kw) order
    ho = (x.shape[2] - kernel[0]) // stride[0] + 1
    wo = (x.shape[3] - kernel[1]) // stride[1] + 1
    return cols.transpose(1, 2).reshape(-1, cols.shape[1]), (n, ho, wo)


def _mac_layer(cols, w, bias, spec):
    """Accumulators ``(R, C)`` int64 of ``bias + sum_k cols[:, k] * w[:, k]`` under ``spec``.

    The same machinery as every emulated layer (:func:`psum.golden.emulation.kernels.accumulate`): the
    accumulator loads the bias, then one product per step in order, bit-identical to ``mac_step``
    (wrapping accumulators take the exact-GEMM-then-wrap path, saturating ones step sequentially).
    """
    import torch

    from psum.golden._vector import fit_int
    from psum.golden.emulation.kernels import accumulate

    start = fit_int(spec.acc, np.asarray(bias, dtype=np.int64), spec.saturate)  # the unit's load
    A = torch.as_tensor(np.asarray(cols), dtype=torch.float64)
    B = torch.as_tensor(np.asarray(w), dtype=torch.float64).T
    init = torch.as_tensor(start, dtype=torch.float64)[None, :].expand(A.shape[0], B.shape[1])
    # Integer codes and accumulators up to 53 bits are exact in float64 (IntFormat <= 32 bits here).
    return accumulate(spec, A, B, init).numpy().astype(np.int64)


@dataclasses.dataclass(frozen=True, eq=False)
class IntProgram:
    """A compiled integer program; :meth:`run` executes it on input codes.

    Attributes
    ----------
    layers : tuple of IntLayer
    output : int
        Index of the logits layer.
    qnet : QuantNet
        Where it came from.
    mult_bits : int
        Requantisation multiplier width.
    """

    layers: tuple
    output: int
    qnet: object
    mult_bits: int = 31

    def spec_for(self, i: int, acc="int32", overflow=None):
        """The MacSpec layer ``i`` runs with under accumulator ``acc`` (a format, spec text or mapping)."""
        L = self.layers[i]
        if isinstance(acc, dict):
            acc = acc.get(L.name, "int32")
        return acc_spec(acc, overflow=overflow, a=L.a_fmt, b=L.b_fmt)

    def run(self, codes, *, acc="int32", overflow=None, ties: str = "even", keep_acc=False, feed=None):
        """Run on input codes ``(N, C, H, W)`` (int64 torch tensor, from :meth:`QuantNet.input_codes`).

        Parameters
        ----------
        acc : str, MacSpec or dict
            Accumulator of every MAC layer (``"int32"``, ``"int16"``, ``"acc=int20,overflow=sat"``), or a
            mapping from layer name to one of those (unnamed layers: int32).
        overflow : {"wrap", "sat"}, optional
            Overrides the accumulator's overflow policy.
        ties : {"even", "up"}
            Tie rule of the requantiser.
        keep_acc : bool
            Also return each MAC layer's accumulators (before requantisation).
        feed : callable, optional
            ``feed(i, layer, input_codes_list)`` may return codes that replace layer ``i``'s
            output (used by :mod:`psum.quant.fake2true` for layer-by-layer comparisons).

        Returns
        -------
        dict
            ``codes``: list of int64 torch tensors (one per layer); ``acc``: dict name -> int64
            array ``(N, C_out, ...)`` when ``keep_acc``.
        """
        import torch
        import torch.nn.functional as F

        if ties not in TIES:
            raise ValueError(f"ties must be one of {', '.join(TIES)}, not {ties!r}")
        out, accs = [], {}
        for i, L in enumerate(self.layers):
            ins = [out[j] for j in L.inputs]
            if L.kind == "input":
                y = codes.to(torch.int64)
            elif L.kind in ("conv", "linear"):
                spec = self.spec_for(i, acc, overflow)
                if spec.acc.bits + self.mult_bits > 63:
                    raise ValueError(f"accumulator {spec.acc} with a {self.mult_bits}-bit multiplier overflows "
                                     "int64 in the requantiser; use a narrower accumulator or mult_bits")
                x = ins[0]
                if L.kind == "conv":
                    cols, (n, ho, wo) = _im2col(x.double(), L.kernel, L.stride, L.padding, L.pad_value)
                else:
                    cols, n = x.double(), x.shape[0]
                a = _mac_layer(cols.numpy(), L.weight, L.bias, spec)
                y = requantize(a, L.m[None, :], L.shift[None, :], zero=L.zero, lo=L.lo, hi=L.hi, ties=ties)
                if L.kind == "conv":
                    a = a.reshape(n, ho, wo, -1).transpose(0, 3, 1, 2)
                    y = y.reshape(n, ho, wo, -1).transpose(0, 3, 1, 2)
                if keep_acc:
                    accs[L.name] = a
                y = torch.from_numpy(np.ascontiguousarray(y))
            elif L.kind == "add":
                za = [self.layers[j].zero for j in L.inputs]
                s = (ins[0] - za[0]).numpy() * L.m[0] + (ins[1] - za[1]).numpy() * L.m[1]
                y = torch.from_numpy(requantize(s, 1, L.shift[0], zero=L.zero, lo=L.lo, hi=L.hi, ties=ties))
            elif L.kind == "avgpool":
                x = ins[0] - L.pad_value
                k = tuple(x.shape[2:]) if L.kernel == (0, 0) else L.kernel
                st = k if L.kernel == (0, 0) else L.stride
                s = (F.avg_pool2d(x.double(), k, st, divisor_override=1)).to(torch.int64)  # exact sum
                qi = self.qnet.nodes[L.inputs[0]].out
                m, sh = quantize_multiplier(qi.scale / (k[0] * k[1] * self.qnet.nodes[i].out.scale), self.mult_bits)
                y = torch.from_numpy(requantize(s.numpy(), m[0], sh[0], zero=L.zero, lo=L.lo, hi=L.hi, ties=ties))
            elif L.kind == "maxpool":
                y = F.max_pool2d(ins[0].double(), L.kernel, L.stride, L.padding).to(torch.int64)
            elif L.kind == "flatten":
                y = torch.flatten(ins[0], 1)
            elif L.kind == "relu":
                y = torch.clamp(ins[0], min=self.layers[L.inputs[0]].zero)
            else:  # pragma: no cover
                raise AssertionError(L.kind)
            if feed is not None:
                repl = feed(i, L, ins)
                if repl is not None:
                    y = repl
            out.append(y)
        return {"codes": out, "acc": accs}

    def predict(self, codes, **kw):
        """Predicted classes (first maximum of the logit codes)."""
        return self.run(codes, **kw)["codes"][self.output].argmax(1)

