"""Fake-quantised graph in a chosen float format versus the true integer program.

A QAT network is trained "fake-quantised": every tensor is an integer code times a scale, but the
arithmetic is floating point. Deployed, it runs as the integer program of :mod:`psum.quant.intprog`.
This module runs the fake-quantised graph with *all* of its arithmetic carried out in a float
format ``F`` (fp64, fp32, tf32, bf16, fp16 or any ``e<E>m<M>``), bit-exactly, and compares the
output codes of every layer with the integer program's.

The fake graph, op by op (``round_F`` = round to nearest even into ``F``):

MAC layer (Conv2d / Linear)
    operands ``x = round_F((q - z) * s_in)`` and ``w = round_F(q_w * s_w[c])``, bias
    ``round_F(B * s_in * s_w[c])``; the accumulator starts at the bias and adds one product per
    step in the reduction order of :mod:`psum.golden` (Linear: input index; Conv2d:
    ``(in_channel, kh, kw)``). Unfused (default, ``fused=False``): ``acc = round_F(acc +
    round_F(x*w))`` -- MacSpec ``a=F,b=F,acc=F,prod=F,fused=no``; fused: ``acc = round_F(acc +
    x*w)`` -- ``a=F,b=F,acc=F`` (fused=yes).
Rescale ("fake-quantise the output", as ``torch.fake_quantize_per_tensor_affine`` does it)
    ``y = round_R(acc * round_R(1 / s_out))``, code ``= clamp(rint(y) + z_out, lo, hi)`` with
    ``rint`` round half to even (``torch.round``). ``R`` is ``F`` unless the *rescale in higher
    precision* remedy gives another format (``rescale="fp64"``).
``add``: ``round_F(v1 + v2)``, then the rescale. ``avgpool``: the window summed in ``F`` row by
row, ``round_F(sum / n)``, then the rescale. ``maxpool``/``flatten``/``relu``: on the codes
(exact: ``code -> round_F(code*s)`` is monotone).

Remedies (switches; each measured by :func:`compare`):

``pow2``
    power-of-two scales (re-exported from the QAT weights; see :meth:`psum.quant.qat.QatNet.export`).
``rescale64`` (or ``rescale=FMT``)
    the rescale in fp64 instead of ``F``.
``fold``
    the rescale folded into the integer multiplier and shift in the fake graph too: operands are
    the codes themselves (``round_F(q - z)``, ``round_F(q_w)``, bias ``round_F(B)``), the
    accumulation runs in ``F`` on integers, and the rescale multiplies by ``round_R(m / 2**shift)``
    -- the integer program's own factor (QuantLib's "integerised" graph).
``zero``
    zero exactly representable: the input zero point nudged to an integer (ETH QuantLib's
    convertibility rule; the other tensors already have zero point 0).

How the arithmetic is made exact (no host-float shortcut without a proof):

* ``F = fp64`` and ``F = fp32`` (unfused): the host's own IEEE 754 binary64/binary32 operations
  (torch CPU, round to nearest even, no flush-to-zero) *are* the format; the sequential order is
  kept by looping over the reduction index with every output element vectorised (a BLAS GEMM
  would reorder the sum).
* every other format (precision <= 25 bits, exponent <= 10 bits, IEEE specials): values are held
  in float64. A product of two such values is exact in float64 (<= 50 significant bits). A sum
  ``a + b`` is computed with Knuth's TwoSum (``s = fl(a+b)`` and the exact error ``e``; exact in
  binary64 with RNE); ``s`` is rounded to ``F`` and, only when ``s`` is exactly halfway between
  two ``F`` numbers and ``e != 0``, moved to the neighbour on ``e``'s side -- a midpoint of ``F``
  is a binary64 number, so ``fl(a+b)`` cannot cross one, and this gives the correctly rounded sum.
  The fused ``acc + x*w`` uses the same TwoSum on the exact product. Division (``avgpool``) is
  ``round_F(fl64(sum / n))``, correct because double rounding is innocuous when 53 >= 2p + 2
  (Figueroa 1995). The tests check all of this against :func:`psum.golden.mac_step`.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
from pathlib import Path

import numpy as np

from psum._util import atomic_path, atomic_write

__all__ = ["FloatArith", "FakeGraph", "compare", "REMEDIES", "parse_remedies", "format_table",
           "write_fake2true_section", "run_fake2true", "run_stored", "SECTION_MD", "RESULTS_FILE",
           "DEFAULT_FORMATS", "plot_top1"]

REMEDIES = ("pow2", "rescale64", "fold", "zero")


# ---------------------------------------------------------------------------------------------
# Exact float-format arithmetic on float64 tensors
# ---------------------------------------------------------------------------------------------
class FloatArith:
    """Round-to-nearest-even arithmetic of one float format on torch float64 tensors.

    Parameters
    ----------
    fmt : FloatFormat or str
        ``fp64``, ``fp32``, or any IEEE-special format with at most 25 significand bits and 10
        exponent bits.

    Raises
    ------
    ValueError
        A format outside that range.
    """

    def __init__(self, fmt):
        import torch

        from psum.golden import FloatFormat, parse_format

        fmt = parse_format(fmt)
        if not isinstance(fmt, FloatFormat):
            raise ValueError(f"the fake-quantised graph needs a float format, not {fmt}")
        self.fmt = fmt
        self.native = None
        if fmt == parse_format("fp64"):
            self.native = torch.float64
        elif fmt == parse_format("fp32"):
            self.native = torch.float32
        elif fmt.specials != "ieee" or fmt.precision > 25 or fmt.exp_bits > 10:
            raise ValueError(f"format {fmt}: the fake-graph emulation supports fp64, fp32 and IEEE-style "
                             "formats with at most 24 mantissa and 10 exponent bits")
        # Formats of at most 11 significant bits whose range lies inside binary32's (fp16, bf16,
        # tf32, e8m10, ...) compute in binary32 and round to F after each operation: a product of
        # two such values is exact in binary32 (<= 22 bits; operands are checked to be >= 2**-60 so
        # no product underflows), and a binary32 sum rounded again to F is the correctly rounded
        # sum because double rounding is innocuous when 24 >= 2p + 2 (Figueroa 1995).
        self.via32 = (self.native is None and fmt.precision <= 11 and fmt.subnormals
                      and fmt.exp_bits in (5, 8) and (fmt.exp_bits == 8 or fmt.man_bits == 10)
                      and fmt.bias == (1 << (fmt.exp_bits - 1)) - 1)
        self.name = str(fmt)
        self._M = fmt.man_bits

    # -- rounding: the rule book's (golden encode: round_up, overflow_codes, FTZ) -------------------
    def q(self, v):
        """Round float64 values to the format (RNE, overflow per the format's policy); float64 out
        (or the native dtype). The rounding is :func:`psum.golden.quantize`'s, i.e. the rule book's."""
        import torch

        if self.native is not None:
            return v.to(self.native)
        x = v.detach().double().cpu().numpy()
        return torch.from_numpy(np.asarray(self.fmt.decode(self.fmt.encode(x, "rne"))))

    def _round_sum(self, s, err):
        """Correctly rounded ``s + err`` where ``s = fl64(exact)``, ``err`` the exact remainder.

        Round to odd at 53 bits first (step ``s`` one binary64 ulp toward ``err`` when ``err != 0``
        and ``s`` is even), then one rounding into F: exact because 53 >= p + 2 (Boldo & Melquiond
        2008; the C kernel's argument), and F's grid is coarser than binary64's even below its
        normal range, so the step never crosses an F number or midpoint.
        """
        import torch

        sb = s.view(torch.int64)
        adj = (err != 0) & ((sb & 1) == 0) & torch.isfinite(s)  # inf/NaN stay as they are
        sb = sb + torch.where((sb ^ err.view(torch.int64)) < 0, -1, 1) * adj.long()
        return self.q(sb.view(torch.float64))

    @staticmethod
    def _two_sum(a, b):
        s = a + b
        bb = s - a
        return s, (a - (s - bb)) + (b - bb)

    def _r32(self, v):
        """Round binary32 values to F (RNE): torch's own casts for fp16/bf16, else a bit trick."""
        import torch

        # torch's own IEEE casts for fp16 / bf16 (an independent implementation of the same RNE,
        # overflow to inf); every other e8m<M> through the rule book (exact: binary32 -> float64).
        if self.fmt.exp_bits == 5:
            return v.to(torch.float16).to(torch.float32)
        if self._M == 7:
            return v.to(torch.bfloat16).to(torch.float32)
        return self.q(v.double()).to(torch.float32)

    def fast_ok(self, *tensors) -> bool:
        """Whether the binary32 path is exact for these operands (no product can underflow)."""
        if not self.via32:
            return False
        for t in tensors:
            a = t.abs()
            nz = a[a > 0]
            if nz.numel() and float(nz.min()) < 2.0 ** -60:
                return False
        return True

    def mul(self, a, b):
        """``round(a * b)``."""
        import torch

        if self.native is not None:
            return a.to(self.native) * b.to(self.native)
        if a.dtype == b.dtype and a.dtype != torch.float64:
            return self._r32(a * b)  # binary32 operands: see __init__
        return self.q(a * b)  # exact product in float64 (<= 50 bits), one rounding

    def add(self, a, b):
        """``round(a + b)``."""
        import torch

        if self.native is not None:
            return a.to(self.native) + b.to(self.native)
        if a.dtype == b.dtype and a.dtype != torch.float64:
            return self._r32(a + b)
        s, e = self._two_sum(a, b)
        return self._round_sum(s, e)

    def fma(self, c, a, b):
        """``round(c + a*b)`` with one rounding."""
        if self.native is not None:
            raise ValueError(f"a fused fake graph in {self.name} is not supported; use the unfused one")
        s, e = self._two_sum(c, a * b)
        return self._round_sum(s, e)

    def div(self, a, n: float):
        """``round(a / n)``."""
        if self.native is not None:
            return a.to(self.native) / n
        return self.q(a / n)  # double rounding innocuous: 53 >= 2*25 + 2 (Figueroa 1995)


# ---------------------------------------------------------------------------------------------
# The fake-quantised graph
# ---------------------------------------------------------------------------------------------
class FakeGraph:
    """The fake-quantised graph of a QuantNet with its arithmetic in one float format.

    Parameters
    ----------
    prog : psum.quant.intprog.IntProgram
        The compiled integer program (gives the QuantNet and, for ``fold``, the multipliers).
    fmt : str or FloatFormat
        Format of products and accumulation.
    fused : bool
        Fused multiply-add accumulation instead of rounded products.
    rescale : str or FloatFormat, optional
        Format of the rescale (default ``fmt``); must be at least as precise as ``fmt``.
    fold : bool
        The ``fold`` remedy (see the module docstring).
    """

    def __init__(self, prog, fmt, *, fused: bool = False, rescale=None, fold: bool = False):
        import torch

        self.prog = prog
        self.qnet = prog.qnet
        self.ar = FloatArith(fmt)
        self.rs = FloatArith(rescale) if rescale is not None else self.ar
        if self.rs.fmt.precision < self.ar.fmt.precision:
            raise ValueError(f"rescale format {self.rs.fmt} must be at least as precise as {self.ar.fmt}")
        if fused and self.ar.native is not None:
            raise ValueError(f"a fused fake graph in {self.ar.name} is not supported; use the unfused one")
        self.fused = fused
        self.fold = fold
        self._w, self._b, self._k = {}, {}, {}
        for i, (n, L) in enumerate(zip(self.qnet.nodes, prog.layers)):
            if n.kind in ("conv", "linear"):
                w = torch.from_numpy(n.weight.reshape(n.weight.shape[0], -1).astype(np.float64))
                s_in = self.qnet.nodes[n.inputs[0]].out.scale
                sw = torch.from_numpy(n.w_scale)
                b = torch.from_numpy(n.bias.astype(np.float64))
                if fold:
                    self._w[i] = self.ar.q(w).double()
                    self._b[i] = self.ar.q(b).double()
                    self._k[i] = self.rs.q(torch.from_numpy(np.ldexp(L.m.astype(np.float64), -L.shift)))
                else:
                    self._w[i] = self.ar.q(w * sw[:, None]).double()
                    self._b[i] = self.ar.q(b * (s_in * sw)).double()
                    self._k[i] = self.rs.q(torch.full((len(sw),), 1.0 / n.out.scale, dtype=torch.float64))

    def accumulate(self, cols, w, bias):
        """Accumulators ``(R, C)`` (float64 holding F values): bias, then one product per step.

        ``cols`` ``(R, K)`` and ``w`` ``(C, K)``, ``bias`` ``(C,)`` must already be values of F.
        """
        import torch

        dt = self.ar.native or torch.float64
        if not self.fused and self.ar.fast_ok(cols, w, bias):
            dt = torch.float32  # exact binary32 path (see FloatArith)
        cols, w = cols.to(dt), w.to(dt)
        acc = bias.to(dt)[None, :].expand(cols.shape[0], -1).contiguous()
        # why: one step per product in the reduction order; outputs are vectorised, K is not
        for k in range(cols.shape[1]):
            xk, wk = cols[:, k:k + 1], w[None, :, k]
            acc = self.ar.fma(acc, xk, wk) if self.fused else self.ar.add(acc, self.ar.mul(xk, wk))
        return acc.double()

    def _values(self, j, codes):
        """Values of node ``j``'s codes as held in F."""
        o = self.qnet.nodes[j].out
        c = codes.double() - o.zero
        return self.ar.q(c if self.fold else c * o.scale).double()

    def _requant(self, acc, k, node):
        import torch

        y = self.rs.mul(acc, k).double()
        o = node.out
        lo = max(o.lo, o.zero_int) if node.relu else o.lo
        return torch.clamp(torch.round(y) + o.zero_int, lo, o.hi).to(torch.int64)

    def op(self, i, ins):
        """Output codes of op ``i`` from its input codes (list of int64 tensors)."""
        import torch
        import torch.nn.functional as F

        from .intprog import _im2col

        n = self.qnet.nodes[i]
        L = self.prog.layers[i]
        if n.kind in ("conv", "linear"):
            x = self._values(n.inputs[0], ins[0])
            if n.kind == "conv":
                # why: padding is real zero in the fake graph (value 0, not the code z)
                cols, (nb, ho, wo) = _im2col(x, L.kernel, L.stride, L.padding, 0.0)
            else:
                cols = x
            acc = self.accumulate(cols, self._w[i], self._b[i])
            y = self._requant(acc, self._k[i][None, :].double(), n)
            if n.kind == "conv":
                y = y.reshape(nb, ho, wo, -1).permute(0, 3, 1, 2).contiguous()
            return y
        if n.kind == "add":
            o = n.out
            if self.fold:
                terms = [self.ar.q(ins[t].double() - self.qnet.nodes[j].out.zero).double()
                         for t, j in enumerate(n.inputs)]
                ks = [self.rs.q(torch.tensor(math.ldexp(float(L.m[t]), -int(L.shift[0])), dtype=torch.float64))
                      for t in range(2)]
                y = self.rs.add(self.rs.mul(terms[0], ks[0]), self.rs.mul(terms[1], ks[1])).double()
                return torch.clamp(torch.round(y) + o.zero_int, max(o.lo, o.zero_int) if n.relu else o.lo,
                                   o.hi).to(torch.int64)
            s = self.ar.add(self._values(n.inputs[0], ins[0]), self._values(n.inputs[1], ins[1])).double()
            return self._requant(s, self.rs.q(torch.tensor(1.0 / o.scale, dtype=torch.float64)).double(), n)
        if n.kind == "avgpool":
            x = self._values(n.inputs[0], ins[0])
            kh, kw = tuple(x.shape[2:]) if n.kernel == (0, 0) else n.kernel
            st = (kh, kw) if n.kernel == (0, 0) else n.stride
            c = x.shape[1]
            cols, (nb, ho, wo) = _im2col(x.reshape(-1, 1, *x.shape[2:]), (kh, kw), st, (0, 0), 0.0)
            cols = cols.to(self.ar.native or torch.float64)
            s = cols[:, 0]
            for k in range(1, cols.shape[1]):  # row-major window order
                s = self.ar.add(s, cols[:, k])
            qi = self.qnet.nodes[n.inputs[0]].out
            if self.fold:
                from .intprog import quantize_multiplier

                m, sh = quantize_multiplier(qi.scale / (kh * kw * n.out.scale), self.prog.mult_bits)
                k = self.rs.q(torch.tensor(math.ldexp(float(m[0]), -int(sh[0])), dtype=torch.float64))
            else:
                s = self.ar.div(s, float(kh * kw))
                k = self.rs.q(torch.tensor(1.0 / n.out.scale, dtype=torch.float64))
            y = self._requant(s.double(), k.double(), n)
            return y.reshape(-1, c, ho, wo)
        if n.kind == "maxpool":
            return F.max_pool2d(ins[0].double(), n.kernel, n.stride, n.padding).to(torch.int64)
        if n.kind == "flatten":
            return torch.flatten(ins[0], 1)
        if n.kind == "relu":
            return torch.clamp(ins[0], min=self.prog.layers[n.inputs[0]].zero)
        raise AssertionError(n.kind)  # pragma: no cover

    def run(self, codes):
        """End-to-end run on input codes; list of codes per op."""
        out = []
        for i, n in enumerate(self.qnet.nodes):
            out.append(codes if n.kind == "input" else self.op(i, [out[j] for j in n.inputs]))
        return out


# ---------------------------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------------------------
def parse_remedies(text) -> tuple:
    """``"pow2,fold"`` -> ``("pow2", "fold")``; ``"none"``/empty -> ``()``; ``"all"`` -> every remedy."""
    if text is None:
        return ()
    items = text if isinstance(text, (list, tuple)) else [t for t in str(text).split(",")]
    out = []
    for t in items:
        t = t.strip().lower()
        if t in ("", "none"):
            continue
        if t == "all":
            out.extend(REMEDIES)
            continue
        if t not in REMEDIES:
            raise ValueError(f"remedy must be one of none, {', '.join(REMEDIES)}, all, not {t!r}")
        out.append(t)
    return tuple(r for r in REMEDIES if r in out)


@dataclasses.dataclass
class _LayerStat:
    total: int = 0
    diff: int = 0
    max_diff: int = 0
    hist: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    e2e_diff: int = 0

    def add(self, a, b, e2e=None):
        d = (a - b).reshape(-1)
        nz = d[d != 0]
        self.total += d.numel()
        self.diff += nz.numel()
        if nz.numel():
            self.max_diff = max(self.max_diff, int(nz.abs().max()))
            vals, counts = np.unique(nz.numpy(), return_counts=True)
            self.hist.update(dict(zip(vals.tolist(), counts.tolist())))
        if e2e is not None:
            self.e2e_diff += int((e2e - b).ne(0).sum())


def compare(qnet, images, labels, formats, *, acc="int32", overflow=None, ties: str = "even",
            fused: bool = False, rescale=None, fold: bool = False, batch_size: int = 60,
            isolated: bool = True, progress_enabled=None) -> dict:
    """Compare the fake graph in each format with the integer program on a set of images.

    Parameters
    ----------
    qnet : psum.quant.qat.QuantNet
        The exported network (remedies ``pow2``/``zero`` are applied at export).
    images : torch.Tensor
        Float images ``(N, C, H, W)``; they are quantised by the network's input quantiser.
    labels : torch.Tensor
        Classes, for top-1.
    formats : list of str
        Float formats of the fake graph.
    acc, overflow, ties
        Integer program accumulator and requantiser tie rule (see :meth:`IntProgram.run`).
    fused, rescale, fold
        Fake-graph switches (see :class:`FakeGraph`).
    isolated : bool
        Also compare each layer fed with the integer program's inputs (the layer's own conversion
        error, without propagation); the end-to-end comparison always runs.

    Returns
    -------
    dict
        JSON-ready: ``int_top1``, ``n_images``, and per format ``layers`` (name, codes,
        mismatch = fraction of differing output codes (isolated), mismatch_e2e, max_diff,
        hist {delta: count}), ``top1_fake``, ``top1_int``, ``pred_diff`` (fraction of images whose
        predicted class differs).
    """

    from .intprog import compile_program
    from psum.progress import progress

    prog = compile_program(qnet)
    graphs = {f: FakeGraph(prog, f, fused=fused, rescale=rescale, fold=fold) for f in formats}
    names = [n.name for n in qnet.nodes]
    qidx = [i for i, n in enumerate(qnet.nodes) if n.quantising]
    stats = {f: {i: _LayerStat() for i in qidx} for f in formats}
    correct_int, correct_fake, pred_diff = 0, collections.Counter(), collections.Counter()
    N = len(labels)
    with progress(total=N * len(formats), desc="fake2true", unit="img", enabled=progress_enabled) as bar:
        for start in range(0, N, batch_size):
            x = images[start:start + batch_size]
            y = labels[start:start + batch_size]
            codes = qnet.input_codes(x)
            ref = prog.run(codes, acc=acc, overflow=overflow, ties=ties)["codes"]
            p_int = ref[qnet.output].argmax(1)
            correct_int += int((p_int == y).sum())
            for f, g in graphs.items():
                e2e = g.run(codes)
                for i in qidx:
                    iso = g.op(i, [ref[j] for j in qnet.nodes[i].inputs]) if isolated else e2e[i]
                    stats[f][i].add(iso, ref[i], e2e[i])
                p_fake = e2e[qnet.output].argmax(1)
                correct_fake[f] += int((p_fake == y).sum())
                pred_diff[f] += int((p_fake != p_int).sum())
                bar.update(len(y))
    res = {"n_images": N, "acc": str(prog.spec_for(qidx[0], acc, overflow)) if any(
        qnet.nodes[i].kind in ("conv", "linear") for i in qidx) else str(acc),
        "ties": ties, "fused": fused, "rescale": str(rescale) if rescale is not None else None, "fold": fold,
        "isolated": isolated, "int_top1": 100.0 * correct_int / max(N, 1), "formats": {}}
    for f in formats:
        layers = []
        for i in qidx:
            s = stats[f][i]
            layers.append({"name": names[i], "kind": qnet.nodes[i].kind, "codes": s.total,
                           "mismatch": s.diff / max(s.total, 1), "mismatch_e2e": s.e2e_diff / max(s.total, 1),
                           "max_diff": s.max_diff, "hist": {str(k): v for k, v in sorted(s.hist.items())}})
        res["formats"][f] = {"layers": layers, "top1_fake": 100.0 * correct_fake[f] / max(N, 1),
                             "top1_int": res["int_top1"], "pred_diff": pred_diff[f] / max(N, 1),
                             "mismatch_all": sum(s.diff for s in stats[f].values())
                             / max(sum(s.total for s in stats[f].values()), 1)}
    return res


# ---------------------------------------------------------------------------------------------
# Tables, report section
# ---------------------------------------------------------------------------------------------
def _hist_text(hist: dict, top: int = 4) -> str:
    items = sorted(((int(k), v) for k, v in hist.items()), key=lambda kv: -kv[1])[:top]
    return " ".join(f"{k:+d}:{v}" for k, v in sorted(items)) or "-"


def format_table(res: dict, *, markdown: bool = False) -> str:
    """Text (or markdown) tables of one :func:`compare` result: a summary and a per-layer table."""
    fmts = list(res["formats"])
    lines = []
    head = ["format", "top1 fake %", "top1 int %", "pred differs %", "codes differ %", "max |diff|"]
    rows = []
    for f in fmts:
        r = res["formats"][f]
        rows.append([f, f"{r['top1_fake']:.2f}", f"{r['top1_int']:.2f}", f"{100 * r['pred_diff']:.2f}",
                     f"{100 * r['mismatch_all']:.3f}", str(max((L['max_diff'] for L in r['layers']), default=0))])
    lines += _render(head, rows, markdown)
    lines.append("")
    layer_names = [L["name"] for L in res["formats"][fmts[0]]["layers"]] if fmts else []
    head2 = ["layer"] + [f"{f} %" for f in fmts] + [f"{f} max" for f in fmts]
    rows2 = []
    for j, name in enumerate(layer_names):
        Ls = [res["formats"][f]["layers"][j] for f in fmts]
        rows2.append([name] + [f"{100 * L['mismatch']:.3f}" for L in Ls] + [str(L["max_diff"]) for L in Ls])
    lines += _render(head2, rows2, markdown)
    return "\n".join(lines)


def _render(head, rows, markdown):
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        return out + ["| " + " | ".join(r) + " |" for r in rows]
    w = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    fmt = lambda r: "  ".join(str(x).rjust(n) if k else str(x).ljust(n) for k, (x, n) in enumerate(zip(r, w)))  # noqa: E731
    return [fmt(head)] + [fmt(r) for r in rows]


# The section's files: the report (psum.reports.report) links SECTION_MD when it finds it in the
# ``fake2true/`` folder beside the report's own folder (psum.paths.results_dir lays them out so).
SECTION_MD = "fake2true.md"
RESULTS_FILE = "results.jsonl"
DEFAULT_FORMATS = ("fp64", "fp32", "bf16", "fp16", "e8m10")


# Okabe & Ito (2008) colour-blind-safe palette: blue, vermillion, reddish purple, black, orange,
# sky blue, bluish green (one per remedy setting), as the report's figures (psum.reports.plots).
_SETTING_COLORS = ("#0072B2", "#D55E00", "#CC79A7", "#000000", "#E69F00", "#56B4E9", "#009E73")


def plot_top1(results, out_dir, stem: str = "fake2true", formats=("png", "svg", "pdf")) -> list[str]:
    """Top-1 of the fake-quantised graph per float format beside the true integer program's: one
    panel per model, formats side by side, one bar per remedy setting.

    Why this figure (issue 17): what decides is end-to-end top-1 (fp16 with every remedy drops
    LeNet5 to 46 %), not the per-layer code mismatch (in the section's tables). A linear 0-100 %
    axis keeps 0 % visible; every bar that departs from its integer program by more than half a
    point carries its value; a setting not run for a format is labelled "not run", never an
    empty slot; legends sit outside the bars.

    Parameters
    ----------
    results : list of dict
        :func:`run_fake2true` results (``model``, ``dataset``, ``remedies``, ``int_top1``,
        ``formats: {fmt: {"top1_fake": %}}``), as ``fake2true.json`` stores them.
    out_dir : str or Path
        Folder of the figure files.
    stem : str
        File name without extension.
    formats : tuple of str
        Files written: ``png``, ``svg``, ``pdf`` (vector files without dates: reproducible).

    Returns
    -------
    list of str
        Paths written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matplotlib.rcParams["svg.hashsalt"] = "psum"
    results = [results] if isinstance(results, dict) else list(results)
    models = list(dict.fromkeys((r.get("model", "?"), r.get("dataset", "?")) for r in results))
    fig, axes = plt.subplots(len(models), 1, figsize=(9, 3.4 * len(models)), squeeze=False)
    for ax, (model, dataset) in zip(axes[:, 0], models):
        rs = [r for r in results if (r.get("model", "?"), r.get("dataset", "?")) == (model, dataset)]
        fmts = list(dict.fromkeys(f for r in rs for f in r["formats"]))
        width = 0.8 / max(1, len(rs))
        for k, r in enumerate(rs):
            name = ",".join(r.get("remedies", ())) or "none"
            xs = [i + (k - (len(rs) - 1) / 2) * width for i in range(len(fmts))]
            vals = [r["formats"][f]["top1_fake"] if f in r["formats"] else 0.0 for f in fmts]
            bars = ax.bar(xs, vals, width, label=f"fake graph, remedies: {name}",
                          color=_SETTING_COLORS[k % len(_SETTING_COLORS)], edgecolor="white")
            ref = r.get("int_top1")
            ax.bar_label(bars, labels=["not run" if f not in r["formats"] else
                                       f"{v:.1f}" if ref is None or abs(v - ref) > 0.5 else ""
                                       for f, v in zip(fmts, vals)], fontsize=7, padding=1)
        ints = sorted({round(r["int_top1"], 2) for r in rs if r.get("int_top1") is not None})
        for j, v in enumerate(ints):
            ax.axhline(v, color="k", lw=1, ls=(0, (4, 2 + 2 * j)), label=f"true integer program {v:.2f} %")
        ax.set_xticks(range(len(fmts)), fmts)
        ax.set_ylim(0, 108)
        ax.set_ylabel("top-1 (%)")
        ax.set_title(f"{model} / {dataset}: fake-quantised graph per float format vs the integer program", fontsize=9)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    written = []
    for ext in formats:
        path = os.path.join(out_dir, f"{stem}.{ext}")
        meta = {"Date": None} if ext == "svg" else {"CreationDate": None} if ext == "pdf" else None
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight", metadata=meta, format=ext)
        written.append(path)
    plt.close(fig)
    return written



def write_fake2true_section(results, out_dir) -> dict:
    """Write the report section: ``fake2true.md`` (tables), ``fake2true.json`` and a plot.

    Parameters
    ----------
    results : dict or list of dict
        :func:`run_fake2true` results (one per model / remedy setting); each has ``model``,
        ``dataset``, ``remedies`` and the :func:`compare` fields.
    out_dir : str or Path
        Folder (created).

    Returns
    -------
    dict
        Paths written: ``markdown``, ``json``, ``png``, ``svg``.
    """
    os.makedirs(out_dir, exist_ok=True)
    results = [results] if isinstance(results, dict) else list(results)
    md = ["# Fake-quantised vs true-integer conversion", "",
          "Fraction of output codes that differ between the fake-quantised graph (arithmetic in the "
          "named float format, bit-exact) and the true integer program, per layer (each layer fed the "
          "integer program's inputs), and end to end. Produced by `psum fake2true`.", ""]
    for r in results:
        rem = ",".join(r.get("remedies", ())) or "none"
        md += [f"## {r.get('model', '?')} on {r.get('dataset', '?')} — remedies: {rem}", "",
               f"{r['n_images']} test images; integer program `{r['acc']}`, requantiser ties "
               f"{r['ties']}; fake graph {'fused' if r['fused'] else 'unfused'}"
               f"{', rescale in ' + r['rescale'] if r.get('rescale') else ''}{', folded rescale' if r['fold'] else ''}.",
               "", format_table(r, markdown=True), ""]
        md += ["Code-difference histograms (fake - int: count), per layer and format:", ""]
        for f, fr in r["formats"].items():
            md.append(f"- **{f}**: " + "; ".join(f"{L['name']} {_hist_text(L['hist'])}" for L in fr["layers"]))
        md.append("")
    stem = os.path.splitext(SECTION_MD)[0]
    paths = {k: os.path.join(out_dir, f"{stem}.{ext}") for k, ext in
             (("markdown", "md"), ("json", "json"), ("png", "png"), ("svg", "svg"))}
    md += [f"![top-1 of the fake graph per float format beside the integer program]"
           f"({os.path.basename(paths['png'])})", ""]
    plot_top1(results, out_dir, stem)
    atomic_write(paths["markdown"], "\n".join(md))
    atomic_write(paths["json"], json.dumps(results, indent=1))
    return paths


def run_fake2true(qatnet, info: dict, images, labels, formats, *, remedies=(), acc="int32", overflow=None,
                  ties: str = "even", fused: bool = False, rescale=None, batch_size: int = 60,
                  isolated: bool = True, progress_enabled=None) -> dict:
    """Export ``qatnet`` with the chosen remedies and :func:`compare`; adds model metadata.

    ``remedies`` (see :data:`REMEDIES`): ``pow2`` and ``zero`` change the export, ``rescale64``
    sets ``rescale="fp64"`` (unless ``rescale`` is given), ``fold`` folds the rescale.
    """
    remedies = parse_remedies(remedies)
    qnet = qatnet.export(zero_exact="zero" in remedies, pow2=True if "pow2" in remedies else None, meta=info)
    if "rescale64" in remedies and rescale is None:
        rescale = "fp64"
    res = compare(qnet, images, labels, formats, acc=acc, overflow=overflow, ties=ties, fused=fused,
                  rescale=rescale, fold="fold" in remedies, batch_size=batch_size, isolated=isolated,
                  progress_enabled=progress_enabled)
    res.update(model=info.get("model"), dataset=info.get("dataset"), width=info.get("width"),
               w_bits=info.get("w_bits"), qat_top1=info.get("qat_top1"), remedies=list(remedies))
    return res


# ---------------------------------------------------------------------------------------------
# Stored runs: ``psum fake2true``'s API (QAT checkpoint, results file, report section)
# ---------------------------------------------------------------------------------------------
# The key of a stored result: every setting that changes the numbers.
_STORE_KEY = ("model", "dataset", "width", "w_bits", "trained_pow2", "remedies", "acc", "ties", "fused", "rescale",
              "n_images", "formats_list", "isolated")


def run_stored(model: str, dataset: str = "digits", formats=DEFAULT_FORMATS, *, remedy_sets=("none",),
               acc: str = "int32", overflow=None, ties: str = "even", fused: bool = False, rescale=None,
               limit: int | None = None, isolated: bool = True, force: bool = False, out_dir=None,
               qat_path=None, width=None, w_bits: int = 8, pow2: bool = False, epochs: int = 3,
               float_epochs=None, data_dir=None, seed: int = 0) -> tuple[list[dict], dict]:
    """Compare per remedy setting, store each result, rewrite the report section from all stored.

    The QAT network comes from :func:`psum.quant.qat.ensure_qat` (trained first when there is
    none). Each result is appended to ``<out_dir>/results.jsonl`` under its settings; a setting
    already stored is read back instead of recomputed unless ``force``. The section
    (:func:`write_fake2true_section`) is rewritten from every stored result.

    Parameters
    ----------
    model, dataset : str
        The network (as for ``psum qat``).
    formats : sequence of str
        Float formats of the fake-quantised graph.
    remedy_sets : sequence
        One :func:`parse_remedies` argument per setting to compare (``"none"``, ``"pow2,fold"``).
    acc, overflow, ties, fused, rescale, isolated
        As for :func:`run_fake2true`.
    limit : int, optional
        First ``limit`` test images.
    force : bool
        Recompute settings already stored.
    out_dir : str or Path, optional
        Section folder (default :func:`psum.paths.results_dir` ``("fake2true")``: ``./fake2true``).
    qat_path, width, w_bits, pow2, epochs, float_epochs, data_dir, seed
        The QAT checkpoint and its training setting (:func:`psum.quant.qat.ensure_qat`).

    Returns
    -------
    (list of dict, dict)
        One result per remedy setting (``acc`` holds the text asked for, ``acc_spec`` the full
        spec of the integer program), and the section's paths (``markdown``, ``json``, ``png``,
        ``svg``).

    Raises
    ------
    ValueError
        Empty or unknown formats, bad remedies or limit: before any training or loading.
    """
    from psum._util import check_int
    from psum.golden import parse_format
    from psum.nets.data import input_channels, load_dataset
    from psum.paths import results_dir
    from psum.quant.qat import ensure_qat
    from psum.resultsfile import ResultsFile

    formats = list(formats)
    if not formats:
        raise ValueError(f"formats must list float formats such as {','.join(DEFAULT_FORMATS)}, not {formats!r}")
    for f in formats:
        parse_format(f)  # validate early: one-line error before any training
    remedy_sets = [parse_remedies(r) for r in remedy_sets]
    if limit is not None:
        check_int("--limit", limit, 1)
    out_dir = Path(out_dir) if out_dir is not None else results_dir("fake2true")
    net, info, path = ensure_qat(model, dataset, path=qat_path, width=width, w_bits=w_bits, pow2=pow2,
                                 epochs=epochs, float_epochs=float_epochs, data_dir=data_dir, seed=seed)
    ds = load_dataset(dataset, "test", data_dir, channels=input_channels(model, dataset))
    images, labels = _first_images(ds, limit)
    store = ResultsFile(out_dir / RESULTS_FILE, list(_STORE_KEY), required=(*_STORE_KEY, "formats"))
    results = []
    for remedies in remedy_sets:
        key = dict(model=info["model"], dataset=info["dataset"], width=info["width"], w_bits=info["w_bits"],
                   trained_pow2=bool(pow2), remedies=list(remedies), acc=acc, ties=ties, fused=fused,
                   rescale=rescale, n_images=len(labels), formats_list=formats, isolated=isolated)
        row = None if force else store.get(**key)
        if row is None:
            row = run_fake2true(net, info, images, labels, formats, remedies=remedies, acc=acc, overflow=overflow,
                                ties=ties, fused=fused, rescale=rescale, isolated=isolated)
            row.update(key)
            # The key keeps the text asked for (``int32``); the full spec of the program is kept too.
            row["acc_spec"] = row.pop("acc")
            row["acc"] = acc
            row["qat_checkpoint"] = str(path)
            store.append(row)
        results.append(row)
    paths = write_fake2true_section([dict(r, acc=r.get("acc_spec", r.get("acc"))) for r in store.rows], out_dir)
    return results, paths


def _first_images(ds, limit):
    """The first ``limit`` images and labels of ``ds`` as two tensors."""
    import torch

    from psum.nets.train import iterate_batches

    xs, ys = [], []
    for x, y in iterate_batches(ds, 256, limit=limit):
        xs.append(x)
        ys.append(y)
    return torch.cat(xs), torch.cat(ys)
