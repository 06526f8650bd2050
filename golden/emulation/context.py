"""Every MAC of a PyTorch forward pass with a MAC spec's arithmetic: the ``accumulator`` context.

``with accumulator("a=fp8_e4m3,b=fp8_e4m3,acc=e5m6"): y = model(x)`` runs each MAC-bearing op
called inside (any model, no copy) through :mod:`psum.golden.emulation.ops`; per-op specs come from
a mapping of names or ``fnmatch`` patterns (``{"layer3.*": s1, "*": s2}``: an exact name first,
then the first matching pattern in the mapping's order; an op no key names stays float, reported
as intended). :func:`psum.golden.emulation.layers.emulate` attaches the same object to its copy.

How: a :class:`torch.overrides.TorchFunctionMode` sees every torch function call. It emulates
``F.linear``, ``F.conv1d/2d/3d``, ``F.conv_transpose1d/2d/3d``, ``torch.matmul`` / ``@`` / ``mm``
/ ``bmm`` / ``baddbmm`` / ``addmm`` (and their Tensor methods), two-operand ``torch.einsum``,
``F.scaled_dot_product_attention`` and ``F.multi_head_attention_forward`` (re-stated here on
emulated ops: the packed input projection ``in_proj``, the score product ``qk``, the weighted sum
``av`` and ``out_proj``; softmax, masks and dropout stay float32). The known MAC-bearing ops it does
not emulate (``mv``, ``dot``, ``addbmm``, ``tensordot``, ``bilinear``, ...) and unsupported
configurations (integer operands, conv padding modes other than zeros reach it as F.pad + conv and
are covered) run in float and are reported (:mod:`.coverage`), or refused under ``strict``.

Op names: a ``Linear``/``Conv*`` module's own op has the module's name (``features.0``); the
``i``-th op of a kind inside another module's forward is ``module.kind<i>`` (``block.matmul0``,
counted per forward); an ``nn.MultiheadAttention`` ``m`` gives ``m.in_proj``, ``m.qk``, ``m.av``,
``m.out_proj``; an op outside any module is ``kind@file:line``. Module names come from the root
module's ``named_modules()`` (the first module called inside the context). Not thread-safe: the
module stack is global while the context is active.
"""

from __future__ import annotations

import fnmatch
import inspect
import math
import os
import sys
import warnings
from typing import Mapping

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.modules import module as _module
from torch.overrides import TorchFunctionMode

from psum.golden.spec import MacSpec
from . import ops
from .coverage import Coverage, CoverageError
from .kernels import BACKENDS

__all__ = ["Accumulator", "accumulator", "resolver"]

_T = torch.Tensor
_CONV = {F.conv1d: "conv1d", F.conv2d: "conv2d", F.conv3d: "conv3d"}
_CONVT = {F.conv_transpose1d: "conv_transpose1d", F.conv_transpose2d: "conv_transpose2d",
          F.conv_transpose3d: "conv_transpose3d"}
_MATMUL = {torch.matmul, _T.matmul, _T.__matmul__, torch.mm, _T.mm, torch.bmm, _T.bmm}
_ADD = {torch.baddbmm: "baddbmm", _T.baddbmm: "baddbmm", torch.addmm: "addmm", _T.addmm: "addmm"}
# The module types whose forward is one MAC op (that op takes the module's name).
_OWN = {"linear": (nn.Linear,), "conv1d": (nn.Conv1d,), "conv2d": (nn.Conv2d,), "conv3d": (nn.Conv3d,),
        "conv_transpose1d": (nn.ConvTranspose1d,), "conv_transpose2d": (nn.ConvTranspose2d,),
        "conv_transpose3d": (nn.ConvTranspose3d,)}
_MHA_SIG = inspect.signature(F.multi_head_attention_forward)
_SDPA_ARGS = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")
_SDPA_DEF = (None, 0.0, False, None, False)


def _n(x):
    return math.prod(x.shape)


def _macs_unsupported(func, args, out):
    """MACs of the MAC-bearing ops psum does not emulate (None when not simply known)."""
    try:
        if func in (torch.dot, _T.dot, torch.vdot, _T.vdot, torch.inner, _T.inner, torch.linalg.vecdot):
            return _n(out) * args[0].shape[-1]
        if func in (torch.mv, _T.mv):
            return _n(args[0])
        if func in (torch.addmv, _T.addmv):
            return _n(args[1])
        if func in (torch.addbmm, _T.addbmm):
            b1, b2 = args[1], args[2]
            return b1.shape[0] * b1.shape[1] * b1.shape[2] * b2.shape[2]
        if func is F.bilinear:
            return _n(out) * args[0].shape[-1] * args[1].shape[-1]
    except (AttributeError, IndexError, TypeError):
        pass
    return None


_UNSUPPORTED = {torch.dot: "dot", _T.dot: "dot", torch.vdot: "vdot", _T.vdot: "vdot", torch.inner: "inner",
                _T.inner: "inner", torch.mv: "mv", _T.mv: "mv", torch.addmv: "addmv", _T.addmv: "addmv",
                torch.addbmm: "addbmm", _T.addbmm: "addbmm", torch.tensordot: "tensordot",
                F.bilinear: "bilinear", torch.chain_matmul: "chain_matmul",
                torch.linalg.multi_dot: "multi_dot", torch.linalg.vecdot: "vecdot"}


def resolver(spec):
    """``name -> (MacSpec or None, reason)`` from one spec or a mapping of names/patterns to specs.

    Raises
    ------
    ValueError
        A spec that does not parse (one line).
    """
    if isinstance(spec, Mapping):
        exact, patterns = {}, []
        for key, s in spec.items():
            parsed = None if s is None else MacSpec.parse(s)
            if any(c in key for c in "*?["):
                patterns.append((key, parsed))
            else:
                exact[key] = parsed

        def resolve(name):
            if name in exact:
                hit = exact[name]
                return hit, None if hit is not None else f"spec mapping gives {name!r} None"
            for pat, s in patterns:
                if fnmatch.fnmatchcase(name, pat):
                    return s, None if s is not None else f"spec mapping gives {pat!r} None"
            return None, "not in the spec mapping"

        return resolve
    parsed = MacSpec.parse(spec)
    return lambda name: (parsed, None)


_SKIP = ("psum.golden.emulation", "torch")


def _call_site() -> str:
    """``file:line`` of the innermost caller outside torch and this package (by module name)."""
    f = sys._getframe(2)
    while f is not None:
        mod = f.f_globals.get("__name__", "")
        if not any(mod == p or mod.startswith(p + ".") for p in _SKIP):
            return f"{os.path.basename(f.f_code.co_filename)}:{f.f_lineno}"
        f = f.f_back
    return "?"


class Accumulator(TorchFunctionMode):
    """The MAC unit for every covered op called while active (see the module docstring).

    Parameters
    ----------
    spec : MacSpec, str, or mapping of op name / fnmatch pattern to MacSpec, str or None
        One unit for every op, or per op (ops no key names stay float).
    weight_scale : {"channel", "tensor", "pow2", "none"}
    act_scale : {"tensor", "pow2", "none"}
        Operand scaling (:mod:`psum.golden.emulation.layers`).
    seed : int
        Stochastic-rounding seed (mixed with each op's name).
    backend : str
        Kernel backend.
    stats : bool
        Collect partial-sum statistics per op.
    strict : bool
        Raise :class:`~psum.golden.emulation.coverage.CoverageError` as soon as a MAC-bearing op
        the spec covers has to run in float (an unsupported op or configuration).
    root : torch.nn.Module, optional
        The module whose ``named_modules()`` name the ops (default: the first module called).

    Attributes
    ----------
    coverage : Coverage
        What ran emulated and what in float.
    sites : dict
        ``{op name: ops.Site}``: spec, calibrated scales, statistics of every emulated op.

    Raises
    ------
    ValueError
        Bad spec, scale choice or backend (one line), before any work.
    """

    def __init__(self, spec, *, weight_scale="channel", act_scale="tensor", seed=0, backend="auto",
                 stats=False, strict=False, root=None):
        super().__init__()
        self.resolve = resolver(spec)
        if weight_scale not in ops.WEIGHT_SCALES:
            raise ValueError(f"weight_scale must be one of {', '.join(ops.WEIGHT_SCALES)}, not {weight_scale!r}")
        if act_scale not in ops.ACT_SCALES:
            raise ValueError(f"act_scale must be one of {', '.join(ops.ACT_SCALES)}, not {act_scale!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        self.options = dict(weight_scale=weight_scale, act_scale=act_scale, seed=seed, backend=backend, stats=stats)
        self.strict = strict
        self.coverage = Coverage()
        self.sites: dict[str, ops.Site] = {}
        self.calibrating = False
        self._root = root
        self._names = None if root is None else {id(m): n for n, m in root.named_modules()}
        self._stack: list = []  # [module, name, {kind: count}]
        self._hooks = []
        self._depth = 0
        self._owner = None
        # Global number of the next sample a forward sees (calibration excluded); stochastic
        # rounding of sample i uses the same random bits whatever the batch size. Set it to 0 to
        # replay a stream of samples with the same bits.
        self.next_sample = 0
        self._offset = 0

    def calibrate(self, model, x) -> None:
        """Fix the activation scales from a float forward of ``model`` on ``x`` (not counted).

        Without it, each op calibrates on its first call. Use one accumulator per model: ops of
        two models with the same names would share their calibration.
        """
        self.calibrating = True
        try:
            with torch.no_grad(), self:
                model(x)
        finally:
            self.calibrating = False

    # -- entering and leaving: the module stack names the ops ----------------------------------
    def __enter__(self):
        if self._depth == 0:
            self._hooks = [_module.register_module_forward_pre_hook(self._pre),
                           _module.register_module_forward_hook(self._post, always_call=True)]
        self._depth += 1
        return super().__enter__()

    def __exit__(self, *exc):
        out = super().__exit__(*exc)
        self._depth -= 1
        if self._depth == 0:
            for h in self._hooks:
                h.remove()
            self._hooks = []
            self._stack = []
        return out

    def _push(self, mod, args=()):
        if not self._stack:
            if self._names is None or id(mod) not in self._names:
                self._names = {id(m): n for n, m in mod.named_modules()}
            first = next((a for a in args if isinstance(a, torch.Tensor)), None)
            batch = (int(first.shape[0]) if first.dim() >= 1 else 1) if first is not None else 0
            if first is not None:
                self.coverage.samples += batch
            if not self.calibrating:
                # Stochastic rounding indexes its random bits by the global sample number, so a
                # result does not depend on how the samples were batched (see next_sample).
                self._offset = self.next_sample
                self.next_sample += batch
                for site in self.sites.values():
                    site.sample_offset = self._offset
        name = self._names.get(id(mod))
        if name is None:
            parent = self._stack[-1][1] if self._stack else ""
            name = f"{parent}.<{type(mod).__name__}>" if parent else f"<{type(mod).__name__}>"
        self._stack.append([mod, name, {}])

    def _pre(self, mod, args):
        self._push(mod, args)

    def _post(self, mod, args, out):
        if self._stack and self._stack[-1][0] is mod:
            self._stack.pop()

    def enter_root(self, mod, args):
        """Forward pre-hook on every module of an emulated model: the outermost one called
        activates the accumulator (so ``qmodel.layer1(x)`` is emulated too)."""
        if self._owner is not None:
            return
        self._owner = mod
        self.__enter__()
        self._push(mod, args)

    def exit_root(self, mod, args, out):
        """Forward hook (always called) on every module of an emulated model."""
        if self._owner is mod:
            self._owner = None
            self._stack.clear()
            self.__exit__(None, None, None)

    def _name(self, kind) -> str:
        """The op's name (see the module docstring)."""
        if not self._stack:
            return f"{kind}@{_call_site()}"
        top = self._stack[-1]
        mod, name, counts = top
        own = _OWN.get(kind)
        if own is not None and isinstance(mod, own) and "_own" not in counts:
            counts["_own"] = 1
            return name
        i = counts.get(kind, 0)
        counts[kind] = i + 1
        return f"{name}.{kind}{i}" if name else f"{kind}{i}"

    def _site(self, name, kind, spec):
        site = self.sites.get(name)
        if site is None or site.spec != spec:
            site = ops.Site(name, kind, spec, **self.options)
            self.sites[name] = site
        site.sample_offset = self._offset
        return site

    # -- one MAC-bearing op ----------------------------------------------------------------------
    def _run(self, name, kind, macs, emulate_fn, float_fn, operands):
        """Emulate (or calibrate, or run in float and report) one op; ``operands``: {which: tensor}."""
        spec, reason = self.resolve(name)
        if spec is None:
            if not self.calibrating:
                self.coverage.record(name, kind, _call_site(), macs, reason=reason, intended=True)
            return float_fn()
        bad = next((t for t in operands.values() if not (t.is_floating_point())), None)
        if bad is not None:
            return self._float(name, kind, macs, f"{bad.dtype} operands", float_fn)
        site = self._site(name, kind, spec)
        if self.calibrating:
            for which, t in operands.items():
                if not isinstance(t, nn.Parameter):
                    site.observe(which, t)
            return float_fn()
        try:
            out = emulate_fn(site)
        except ops.Unsupported as exc:
            return self._float(name, kind, macs, f"unsupported: {exc}", float_fn)
        self.coverage.record(name, kind, _call_site(), macs, spec=spec)
        return out

    def _float(self, name, kind, macs, reason, float_fn):
        if self.calibrating:
            return float_fn()
        if self.strict:
            raise CoverageError(f"op {name or '(root)'!r} ({kind}) would run in float32: {reason} "
                                f"(strict; without it the op runs in float and is reported)")
        self.coverage.record(name, kind, _call_site(), macs, reason=reason, intended=False)
        return float_fn()

    # the primitives (also used by the attention re-statements below)
    def linear(self, name, x, w, b=None):
        M = _n(x) // max(1, x.shape[-1])
        return self._run(name, "linear", M * w.shape[0] * w.shape[1], lambda s: ops.linear(s, x, w, b),
                         lambda: F.linear(x, w, b), {"a": x})

    def matmul(self, name, a, b, kind="matmul", init=None, alpha=1.0, beta=1.0, float_fn=None):
        try:
            a2 = a.shape if a.dim() > 1 else (1,) + tuple(a.shape)
            b2 = b.shape if b.dim() > 1 else tuple(b.shape) + (1,)
            macs = math.prod(torch.broadcast_shapes(a2[:-2], b2[:-2])) * a2[-2] * a2[-1] * b2[-1]
        except (RuntimeError, IndexError):
            macs = None
        if float_fn is None:
            float_fn = lambda: torch.matmul(a, b)  # noqa: E731
        return self._run(name, kind, macs,
                         lambda s: ops.matmul(s, a, b, init=init, alpha=alpha, beta=beta),
                         float_fn, {"a": a, "b": b})

    def sdpa(self, prefix, q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
             enable_gqa=False):
        """``F.scaled_dot_product_attention`` on emulated ``qk`` and ``av`` products."""
        L, S = q.shape[-2], k.shape[-2]
        if enable_gqa and k.shape[-3] != q.shape[-3]:
            rep = q.shape[-3] // k.shape[-3]
            k, v = k.repeat_interleave(rep, -3), v.repeat_interleave(rep, -3)
        sc = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
        s = self.matmul(_join(prefix, "qk"), q, k.transpose(-2, -1)).to(q.dtype) * sc
        if is_causal:
            s = s.masked_fill(~torch.ones(L, S, dtype=torch.bool, device=q.device).tril(), float("-inf"))
        if attn_mask is not None:
            s = s.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else s + attn_mask
        p = torch.softmax(s, dim=-1)
        if dropout_p > 0.0:
            p = F.dropout(p, dropout_p, training=True)
        return self.matmul(_join(prefix, "av"), p, v).to(q.dtype)

    # -- dispatch --------------------------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.linear:
            x, w, b = _bind(args, kwargs, ("input", "weight", "bias"), (None,))
            return self.linear(self._name("linear"), x, w, b)
        kind = _CONV.get(func)
        if kind is not None:
            x, w, b, st, pd, dl, g = _bind(args, kwargs, ("input", "weight", "bias", "stride", "padding",
                                                          "dilation", "groups"), (None, 1, 0, 1, 1))
            name = self._name(kind)
            return self._run(name, kind, _conv_macs(x, w, func, args, kwargs),
                             lambda s: ops.conv(s, x, w, b, st, pd, dl, g),
                             lambda: func(*args, **kwargs), {"a": x})
        kind = _CONVT.get(func)
        if kind is not None:
            x, w, b, st, pd, op, g, dl = _bind(args, kwargs, ("input", "weight", "bias", "stride", "padding",
                                                              "output_padding", "groups", "dilation"),
                                               (None, 1, 0, 0, 1, 1))
            name = self._name(kind)
            return self._run(name, kind, _conv_macs(x, w, func, args, kwargs, transpose=True),
                             lambda s: ops.conv_transpose(s, x, w, b, st, pd, op, g, dl),
                             lambda: func(*args, **kwargs), {"a": x})
        if func in _MATMUL:
            a, b = args[0], args[1] if len(args) > 1 else kwargs.get("other", kwargs.get("mat2"))
            if kwargs.get("out") is not None:
                return self._float(self._name("matmul"), "matmul", None, "out= argument", lambda: func(*args, **kwargs))
            return self.matmul(self._name("matmul"), a, b, float_fn=lambda: func(*args, **kwargs))
        if func is _T.__rmatmul__:
            b, a = args[0], args[1]
            return self.matmul(self._name("matmul"), a, b, float_fn=lambda: func(*args, **kwargs))
        kind = _ADD.get(func)
        if kind is not None:
            inp, a, b = args[0], args[1], args[2]
            beta, alpha = kwargs.get("beta", 1), kwargs.get("alpha", 1)
            return self.matmul(self._name(kind), a, b, kind=kind, init=inp, alpha=alpha, beta=beta,
                               float_fn=lambda: func(*args, **kwargs))
        if func is torch.einsum:
            return self._einsum(func, args, kwargs)
        if func is F.scaled_dot_product_attention:
            vals = _bind(args, kwargs, _SDPA_ARGS, _SDPA_DEF)
            return self.sdpa(self._name("sdpa"), *vals)
        if func is F.multi_head_attention_forward:
            return self._mha(args, kwargs)
        kind = _UNSUPPORTED.get(func)
        if kind is not None:
            out = func(*args, **kwargs)
            name = self._name(kind)
            spec, _ = self.resolve(name)
            if spec is None:
                if not self.calibrating:
                    self.coverage.record(name, kind, _call_site(), _macs_unsupported(func, args, out),
                                         reason="not in the spec mapping")
                return out
            return self._float(name, kind, _macs_unsupported(func, args, out), "op not emulated by psum", lambda: out)
        return func(*args, **kwargs)

    def _einsum(self, func, args, kwargs):
        name = self._name("einsum")
        eq, ops_ = args[0], args[1:]
        if len(ops_) == 1 and isinstance(ops_[0], (list, tuple)):
            ops_ = tuple(ops_[0])
        if not isinstance(eq, str) or len(ops_) != 2:
            return self._float(name, "einsum", None, "unsupported: einsum form", lambda: func(*args, **kwargs))
        a, b = ops_
        try:
            _, _, (sb, sm, sk, sn), _ = ops.einsum_plan(eq, a.shape, b.shape)
            macs = math.prod(sb) * math.prod(sm) * math.prod(sk) * math.prod(sn)
        except ops.Unsupported:
            macs = None
        return self._run(name, "einsum", macs, lambda s: ops.einsum(s, eq, a, b),
                         lambda: func(*args, **kwargs), {"a": a, "b": b})

    def _mha(self, args, kwargs):
        """``F.multi_head_attention_forward`` re-stated on emulated ops (torch's own code, same steps)."""
        top = self._stack[-1] if self._stack else None
        if top is not None and isinstance(top[0], nn.MultiheadAttention) and "_own" not in top[2]:
            top[2]["_own"] = 1
            prefix = top[1]
        else:
            prefix = self._name("mha")
        p = _MHA_SIG.bind(*args, **kwargs)
        p.apply_defaults()
        a = dict(p.arguments)
        if a["static_k"] is not None or a["static_v"] is not None:
            return self._float(prefix, "mha", None, "unsupported: static_k/static_v",
                               lambda: F.multi_head_attention_forward(*args, **kwargs))
        return _mha_forward(self, prefix, **a)


def _join(prefix, leaf):
    return f"{prefix}.{leaf}" if prefix else leaf


def _bind(args, kwargs, names, defaults):
    vals = list(args) + [None] * (len(names) - len(args))
    first_default = len(names) - len(defaults)
    for i, n in enumerate(names):
        if i >= len(args):
            vals[i] = kwargs.get(n, defaults[i - first_default] if i >= first_default else None)
    return vals


def _conv_macs(x, w, func, args, kwargs, transpose=False):
    """Products issued per call: output elements x (in_channels/groups x kernel) (transposed:
    of the equivalent direct convolution, zero steps included)."""
    meta = lambda v: torch.empty(v.shape, device="meta") if isinstance(v, torch.Tensor) else v  # noqa: E731
    try:  # the output shape from torch itself, on meta tensors (no data, no work)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out_shape = func(*map(meta, args), **{k: meta(v) for k, v in kwargs.items()}).shape
    except (RuntimeError, TypeError, ValueError, NotImplementedError):
        return None
    k = math.prod(w.shape[2:])
    per = (w.shape[0] // max(1, _groups(args, kwargs, transpose))) * k if transpose else w.shape[1] * k
    return math.prod(out_shape) * per


def _groups(args, kwargs, transpose):
    # groups is argument 6 of F.conv*d and of F.conv_transpose*d alike
    return int(args[6]) if len(args) > 6 else int(kwargs.get("groups", 1))


def _mha_forward(acc: Accumulator, prefix, *, query, key, value, embed_dim_to_check, num_heads,
                 in_proj_weight, in_proj_bias, bias_k, bias_v, add_zero_attn, dropout_p, out_proj_weight,
                 out_proj_bias, training=True, key_padding_mask=None, need_weights=True, attn_mask=None,
                 use_separate_proj_weight=False, q_proj_weight=None, k_proj_weight=None, v_proj_weight=None,
                 static_k=None, static_v=None, average_attn_weights=True, is_causal=False):
    # The steps of torch.nn.functional.multi_head_attention_forward (torch 2.x), shape checks left
    # to the module; every product through acc.linear / acc.matmul / acc.sdpa.
    is_batched = query.dim() == 3
    if not is_batched:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    tgt_len, bsz, embed_dim = query.shape
    key_padding_mask = F._canonical_mask(mask=key_padding_mask, mask_name="key_padding_mask",
                                         other_type=F._none_or_dtype(attn_mask), other_name="attn_mask",
                                         target_type=query.dtype)
    if is_causal and attn_mask is None:
        raise RuntimeError("Need attn_mask if specifying the is_causal hint.")
    if is_causal and key_padding_mask is None and not need_weights:
        attn_mask = None
    else:
        attn_mask = F._canonical_mask(mask=attn_mask, mask_name="attn_mask", other_type=None, other_name="",
                                      target_type=query.dtype, check_other=False)
        if key_padding_mask is not None:
            is_causal = False
    head_dim = embed_dim // num_heads
    if not use_separate_proj_weight:
        if query is key and key is value:  # self-attention: one packed projection (3E outputs)
            proj = acc.linear(_join(prefix, "in_proj"), query, in_proj_weight, in_proj_bias)
            proj = proj.unflatten(-1, (3, embed_dim)).unsqueeze(0).transpose(0, -2).squeeze(-2).contiguous()
            q, k, v = proj[0], proj[1], proj[2]
        else:
            ws = in_proj_weight.chunk(3)
            bs = (None, None, None) if in_proj_bias is None else in_proj_bias.chunk(3)
            q, k, v = (acc.linear(_join(prefix, f"in_proj.{t}"), x, w, b)
                       for t, x, w, b in zip("qkv", (query, key, value), ws, bs))
    else:
        bs = (None, None, None) if in_proj_bias is None else in_proj_bias.chunk(3)
        q, k, v = (acc.linear(_join(prefix, f"{t}_proj"), x, w, b)
                   for t, x, w, b in zip("qkv", (query, key, value), (q_proj_weight, k_proj_weight, v_proj_weight), bs))
    if attn_mask is not None and attn_mask.dim() == 2:
        attn_mask = attn_mask.unsqueeze(0)
    if bias_k is not None and bias_v is not None:
        k = torch.cat([k, bias_k.repeat(1, bsz, 1)])
        v = torch.cat([v, bias_v.repeat(1, bsz, 1)])
        if attn_mask is not None:
            attn_mask = F.pad(attn_mask, (0, 1))
        if key_padding_mask is not None:
            key_padding_mask = F.pad(key_padding_mask, (0, 1))
    q = q.reshape(tgt_len, bsz * num_heads, head_dim).transpose(0, 1)
    k = k.reshape(k.shape[0], bsz * num_heads, head_dim).transpose(0, 1)
    v = v.reshape(v.shape[0], bsz * num_heads, head_dim).transpose(0, 1)
    if add_zero_attn:
        zero = (bsz * num_heads, 1, head_dim)
        k = torch.cat([k, torch.zeros(zero, dtype=k.dtype, device=k.device)], dim=1)
        v = torch.cat([v, torch.zeros(zero, dtype=v.dtype, device=v.device)], dim=1)
        if attn_mask is not None:
            attn_mask = F.pad(attn_mask, (0, 1))
        if key_padding_mask is not None:
            key_padding_mask = F.pad(key_padding_mask, (0, 1))
    src_len = k.size(1)
    if key_padding_mask is not None:
        key_padding_mask = (key_padding_mask.view(bsz, 1, 1, src_len).expand(-1, num_heads, -1, -1)
                            .reshape(bsz * num_heads, 1, src_len))
        attn_mask = key_padding_mask if attn_mask is None else attn_mask + key_padding_mask
    if not training:
        dropout_p = 0.0
    if need_weights:
        # scores: emulated q_scaled k^T; the (float) mask is added after the product, as in sdpa
        q_scaled = q * math.sqrt(1.0 / float(head_dim))
        w = acc.matmul(_join(prefix, "qk"), q_scaled, k.transpose(-2, -1)).to(q.dtype)
        if attn_mask is not None:
            w = w + attn_mask
        w = torch.softmax(w, dim=-1)
        if dropout_p > 0.0:
            w = F.dropout(w, p=dropout_p)
        out = acc.matmul(_join(prefix, "av"), w, v).to(q.dtype)
        out = out.transpose(0, 1).reshape(tgt_len * bsz, embed_dim)
        out = acc.linear(_join(prefix, "out_proj"), out, out_proj_weight, out_proj_bias)
        out = out.view(tgt_len, bsz, out.size(1))
        w = w.view(bsz, num_heads, tgt_len, src_len)
        if average_attn_weights:
            w = w.mean(dim=1)
        if not is_batched:
            out, w = out.squeeze(1), w.squeeze(0)
        return out, w
    if attn_mask is not None:
        if attn_mask.size(0) == 1 and attn_mask.dim() == 3:
            attn_mask = attn_mask.unsqueeze(0)
        else:
            attn_mask = attn_mask.view(bsz, num_heads, -1, src_len)
    q = q.view(bsz, num_heads, tgt_len, head_dim)
    k = k.view(bsz, num_heads, src_len, head_dim)
    v = v.view(bsz, num_heads, src_len, head_dim)
    out = acc.sdpa(prefix, q, k, v, attn_mask, dropout_p, is_causal)
    out = out.permute(2, 0, 1, 3).reshape(bsz * tgt_len, embed_dim)
    out = acc.linear(_join(prefix, "out_proj"), out, out_proj_weight, out_proj_bias)
    out = out.view(tgt_len, bsz, out.size(1))
    if not is_batched:
        out = out.squeeze(1)
    return out, None


def accumulator(spec, *, weight_scale="channel", act_scale="tensor", seed=0, backend="auto", stats=False,
                strict=False) -> Accumulator:
    """A context in which every covered MAC op runs with ``spec``'s arithmetic (no model copy).

    ``with psum.accumulator("a=fp8_e4m3,b=fp8_e4m3,acc=e5m6") as acc: y = model(x)``; then
    ``acc.coverage.summary()``. Reuse the same object for later batches to keep the calibrated
    activation scales (each op calibrates on its first call). Parameters: :class:`Accumulator`.

    Returns
    -------
    Accumulator
    """
    return Accumulator(spec, weight_scale=weight_scale, act_scale=act_scale, seed=seed, backend=backend,
                       stats=stats, strict=strict)
