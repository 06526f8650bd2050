"""Early stop of a search candidate whose accuracy cannot (or almost surely will not) pass.

A minimum search (:func:`psum.sweeps.sweep.search_min_acc`) only needs to know whether a candidate
accumulator passes, ``accuracy >= threshold`` (percent, top-1, on ``n`` test images). After
``m`` images with ``c`` correct:

``exact`` (the default)
    Stop when even with every remaining image right the candidate cannot pass:
    ``100 * (c + n - m) / n < threshold``. The full evaluation would have failed too, so this rule
    never changes a decision, and a search finds the same minimum with or without it; it only
    saves the images after the point of no return. Error risk: none.
``stat:ALPHA`` (opt-in)
    Also stop when a one-sided upper confidence bound on the full-set accuracy is below the
    threshold: ``100 * (c/m + t) < threshold`` with ``t = sqrt(ln(L / ALPHA) / (2 m))``, where ``L``
    is the number of looks (one per batch, ``ceil(n / batch_size)``). Hoeffding's inequality
    (Hoeffding 1963, Theorem 1; by his Section 6 it holds for sampling without replacement, so for
    the first ``m`` of ``n`` images) bounds ``P(p - c/m >= t) <= exp(-2 m t^2) = ALPHA / L`` for
    the full-set accuracy ``p``, and a union bound over the ``L`` looks gives: **the probability that
    a candidate whose full accuracy would pass is stopped is at most ALPHA**, *if the test images
    are in random order with respect to the model's errors* (the bound is about a random subset;
    a test set sorted by class breaks it). A search makes several decisions, so its chance of one
    wrong "fails" is at most ALPHA times the number of candidates stopped by this rule.

An early-stopped row is never a measurement: its ``early_stop`` field names the rule (it is part
of the row's key, so a full-accuracy lookup never finds it), ``accuracy`` holds the exact upper
bound ``100 * (c + n - m) / n`` (so a reader comparing it with the threshold that stopped it still
sees a failure under the exact rule), ``accuracy_bound`` is ``"upper"``, ``images_evaluated`` is
``m``, ``correct`` is ``c``, ``partial_accuracy`` is ``100 c / m``, and under ``stat`` also
``accuracy_ucb`` (the confidence bound). Only top-1 counts are stopped early: rows with a user
metric (a float mean whose running sum may round) always run to the end.
"""

from __future__ import annotations

import math

__all__ = ["parse_early_stop", "EarlyStop", "EARLY_STOP_HELP"]

EARLY_STOP_HELP = "'exact', 'off' or 'stat:ALPHA' (0 < ALPHA < 1)"


def parse_early_stop(text) -> tuple[str, float | None]:
    """``"exact"`` -> ``("exact", None)``, ``"off"`` -> ``("off", None)``, ``"stat:0.01"`` -> ``("stat", 0.01)``.

    Raises
    ------
    ValueError
        ``early_stop must be 'exact', 'off' or 'stat:ALPHA' (0 < ALPHA < 1), not '...'``.
    """
    bad = ValueError(f"early_stop must be {EARLY_STOP_HELP}, not {text!r}")
    if text in ("exact", "off"):
        return text, None
    if not isinstance(text, str) or not text.startswith("stat:"):
        raise bad
    try:
        alpha = float(text[5:])
    except ValueError:
        raise bad from None
    if not 0 < alpha < 1:
        raise bad
    return "stat", alpha


class EarlyStop:
    """The stop rule of one candidate evaluation (see the module docstring).

    Parameters
    ----------
    rule : str
        ``"exact"`` or ``"stat:ALPHA"`` (:func:`parse_early_stop`; ``"off"`` means no object).
    threshold : float
        Pass mark, percent top-1 (the candidate passes when ``accuracy >= threshold``).
    n : int
        Images of the full evaluation.
    looks : int
        Checks made (batches), for the union bound of ``stat``.
    """

    def __init__(self, rule: str, threshold: float, n: int, looks: int):
        self.kind, self.alpha = parse_early_stop(rule)
        if self.kind == "off":
            raise ValueError("early_stop 'off' has no rule object")
        self.rule = rule
        self.threshold, self.n, self.looks = float(threshold), int(n), max(1, int(looks))

    def upper(self, done: int, correct: int) -> float:
        """The most the full-set accuracy can be: every remaining image right (percent).

        Written as :func:`psum.nets.train.evaluate` computes an accuracy, ``100.0 * count / n``,
        which is monotone in ``count``: the full evaluation's accuracy is at most this value.
        """
        return 100.0 * (correct + self.n - done) / max(self.n, 1)

    def ucb(self, done: int, correct: int) -> float:
        """Hoeffding upper confidence bound on the full-set accuracy (percent), ``stat`` only."""
        t = math.sqrt(math.log(self.looks / self.alpha) / (2 * done))
        return 100.0 * min(1.0, correct / done + t)

    def check(self, done: int, correct: int) -> bool:
        """True when the candidate stops (fails) after ``done`` images with ``correct`` right."""
        if done >= self.n:
            return False  # finished: a full measurement, never marked
        if self.upper(done, correct) < self.threshold:
            return True
        return self.kind == "stat" and done > 0 and self.ucb(done, correct) < self.threshold

    def fields(self, done: int, correct: int) -> dict:
        """The row fields of an early stop (module docstring)."""
        out = {"early_stop": self.rule, "accuracy": self.upper(done, correct), "accuracy_bound": "upper",
               "images_evaluated": done, "correct": correct, "partial_accuracy": 100.0 * correct / max(done, 1),
               "stop_threshold": self.threshold}
        if self.kind == "stat":
            out["accuracy_ucb"] = self.ucb(done, correct)
        return out

    def proves_fail(self, row: dict) -> bool:
        """Whether a stored early-stopped row of this rule answers "fails" at this threshold."""
        if row.get("early_stop") != self.rule:
            return False
        if self.kind == "stat" and row.get("accuracy_ucb") is not None and row["accuracy_ucb"] < self.threshold:
            return True
        return row["accuracy"] < self.threshold
