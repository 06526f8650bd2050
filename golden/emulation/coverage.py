"""Which MAC-bearing ops of a model ran with the MAC spec's arithmetic, and which stayed in float.

Filled by :class:`psum.golden.emulation.context.Accumulator` (what :func:`~psum.golden.emulation.layers.emulate`
attaches to the model, and what ``psum.accumulator(...)`` is) during forward passes. An op is
*MAC-bearing* when it reduces products: ``linear``, convolutions, transposed convolutions, the
matmul family, einsum, attention. Elementwise ops (batch norm, layer norm, softmax, activation
functions, pooling, residual additions) are not MAC-bearing: they stay float and are not listed.

Per op: its name (``layer3.0.conv1``; ``self_attn.qk`` for an attention's score product;
``block.matmul0`` for the first ``@`` in ``block``'s forward; ``matmul@net.py:12`` outside any
module), kind, call site (file:line of the caller), spec, calls, MACs, and for a float op the
reason. A float op is *intended* when the spec mapping names no spec for it; otherwise (an
unsupported op or configuration) it is not, and ``strict`` refuses it.

For engineer-facing use::

    q = emulate(model, spec); q(x)
    print(coverage(q).summary())      # "emulated 21 ops, 100.0 % of MACs"
    json.dumps(coverage(q).table())   # one row per op
    coverage(q).check()               # CoverageError when MACs ran in float unintentionally
"""

from __future__ import annotations

import dataclasses
import math

from psum.errors import PsumError

__all__ = ["Coverage", "OpRecord", "CoverageError", "coverage"]


class CoverageError(PsumError):
    """MAC-bearing ops ran in float although the spec covered them (``strict``)."""


@dataclasses.dataclass
class OpRecord:
    """One MAC-bearing op (see the module docstring); ``macs`` is None when unknown."""

    name: str
    kind: str
    call_site: str
    spec: str | None
    emulated: bool
    reason: str | None = None
    intended: bool = True
    calls: int = 0
    macs: int | None = 0

    @property
    def label(self) -> str:
        return self.name or "(root)"


class Coverage:
    """Per-op coverage records over the forward passes since the last :meth:`reset`."""

    def __init__(self):
        self.records: dict[str, OpRecord] = {}
        self.samples = 0  # inputs seen by the root module (leading dimension of its first tensor)

    def reset(self) -> None:
        """Forget every record (e.g. before an evaluation)."""
        self.records.clear()
        self.samples = 0

    def record(self, name, kind, call_site, macs, *, spec=None, reason=None, intended=True) -> OpRecord:
        """Account one call of op ``name`` (``spec`` given: emulated; else float with ``reason``)."""
        rec = self.records.get(name)
        if rec is None:
            rec = OpRecord(name, kind, call_site, None if spec is None else str(spec), spec is not None,
                           reason, intended)
            self.records[name] = rec
        elif spec is None and rec.emulated:  # the same name once emulated, once not: report float
            rec.emulated, rec.spec, rec.reason, rec.intended = False, None, reason, intended
        rec.calls += 1
        rec.macs = None if (macs is None or rec.macs is None) else rec.macs + int(macs)
        return rec

    # -- reading -------------------------------------------------------------------------------
    def unintended(self) -> list[OpRecord]:
        """The float ops that the spec meant to emulate (unsupported ops or configurations)."""
        return [r for r in self.records.values() if not r.emulated and not r.intended]

    def fraction(self) -> float:
        """Emulated MACs / all MACs of the known-size ops (1.0 when no op ran)."""
        tot = sum(r.macs for r in self.records.values() if r.macs is not None)
        emu = sum(r.macs for r in self.records.values() if r.macs is not None and r.emulated)
        return emu / tot if tot else 1.0

    def summary(self) -> str:
        """One line: ``emulated 21 ops, 99.7 % of MACs; float: fc (not in the spec mapping), ...``."""
        if not self.records:
            return "no MAC-bearing op ran"
        emu = [r for r in self.records.values() if r.emulated]
        flt = [r for r in self.records.values() if not r.emulated]
        # floor to 0.1 %: "100.0 %" only when every MAC was emulated
        pct = math.floor(self.fraction() * 1000) / 10
        line = f"emulated {len(emu)} op{'s' * (len(emu) != 1)}, {pct:.1f} % of MACs"
        if flt:
            items = [f"{r.label} ({r.reason}{'' if r.macs is not None else ', MACs unknown'})" for r in flt[:5]]
            more = f", and {len(flt) - 5} more" if len(flt) > 5 else ""
            line += "; float: " + ", ".join(items) + more
        return line

    def table(self) -> list[dict]:
        """JSON-able rows, one per op in first-call order.

        Keys: ``name``, ``kind``, ``call_site``, ``spec`` (None in float), ``emulated``,
        ``reason``, ``intended``, ``calls``, ``macs`` (total since reset, None if unknown),
        ``macs_per_input`` (``macs`` / inputs seen by the root module; None without either).
        """
        rows = []
        for r in self.records.values():
            row = dataclasses.asdict(r)
            row["macs_per_input"] = (r.macs / self.samples) if (r.macs is not None and self.samples) else None
            rows.append(row)
        return rows

    def check(self) -> None:
        """Raise :class:`CoverageError` (one line) if MAC-bearing ops ran in float unintentionally."""
        bad = self.unintended()
        if bad:
            items = ", ".join(f"{r.label} ({r.reason})" for r in bad[:3])
            more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
            raise CoverageError(f"MAC-bearing ops ran in float32: {items}{more}")


def coverage(model) -> Coverage:
    """The :class:`Coverage` of a model from :func:`psum.golden.emulation.layers.emulate`,
    or of a ``psum.accumulator(...)`` object.

    Raises
    ------
    ValueError
        If ``model`` is neither.
    """
    acc = getattr(model, "psum_accumulator", model)
    cov = getattr(acc, "coverage", None)
    if not isinstance(cov, Coverage):
        raise ValueError("no coverage: build the model with emulate(model, spec) or use psum.accumulator(spec)")
    return cov
