"""Complexity tiers as a routing policy (``fit_policy(kind="complexity")``): prompt features → tier → model.

Features (:func:`complexity_features`, pure Python, 8 per prompt, each ``ln(1 + count)``): characters, words, code
cues (fences, ``def``/``class``/``function``/``import``/``return``, braces and semicolons, language names), math cues
(numbers, operators, words such as *calculate, solve, equation, probability*), multi-step cues (*step, first, then,
explain, why, compare, prove, derive, justify*, numbered lines), question marks, line breaks and constraint words
(*must, exactly, at least, without, only*). The score is a ridge regression (NumPy, L2 ``ridge``) of the quality gain
of the dearest model over the cheapest on the standardised features, fitted on the training prompts: a higher score
means the dearer model is expected to matter more. Tiers are the score's training quantiles (``n_tiers`` equal
shares, named ``simple``, ``medium``, ``complex`` for three, ``tier0..`` otherwise). Each tier is then routed like
a category of the table: the cheapest model whose mean quality on the tier's training prompts is at least the tier's
best minus ``tolerance``; with a budget (``target_cost_per_1k_usd``) or a floor (``min_quality``) the tolerance is
swept and the best operating point on the training prompts chosen, as for the category policy.

Unlike LiteLLM's ``auto_router/complexity_router`` (fixed keyword rules), the weights and cuts come from recorded
outcomes; the policy is served by the same plugin as the learned router (:mod:`llmlab.routing.plugin`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from llmlab.errors import RoutingError
from llmlab.routing.policies import FORMAT, Policy, _pick, register_kind

__all__ = ["FEATURE_NAMES", "ComplexityPolicy", "complexity_features", "fit_complexity"]

FEATURE_NAMES = ("chars", "words", "code", "math", "steps", "questions", "lines", "constraints")
_CODE = re.compile(r"```|\bdef |\bclass |\bfunction\b|\bimport |\breturn\b|[{};]|\b(?:python|javascript|java|c\+\+|"
                   r"sql|regex|code|program|compile|bug)\b", re.I)
_MATH = re.compile(r"\d+(?:\.\d+)?|[+*/=^<>%]|\b(?:calculate|compute|solve|equation|integral|derivative|probability|"
                   r"sum|product|how many|how much|percent|average|ratio|proof)\b", re.I)
_STEPS = re.compile(r"\b(?:step|steps|first|then|finally|next|explain|why|compare|analy[sz]e|prove|derive|justify|"
                    r"evaluate|plan|reason)\b|^\s*\d+[.)]", re.I | re.M)
_CONSTRAINTS = re.compile(r"\b(?:must|exactly|at least|at most|without|only|should|no more than)\b", re.I)


def complexity_features(texts: Sequence[str]) -> np.ndarray:
    """The 8 features of :data:`FEATURE_NAMES` per text, shape (n, 8), each ``ln(1 + count)``."""
    rows = []
    for t in texts:
        t = str(t)
        rows.append([math.log1p(len(t)), math.log1p(len(t.split())), math.log1p(len(_CODE.findall(t))),
                     math.log1p(len(_MATH.findall(t))), math.log1p(len(_STEPS.findall(t))),
                     math.log1p(t.count("?")), math.log1p(t.count("\n")), math.log1p(len(_CONSTRAINTS.findall(t)))])
    return np.asarray(rows, dtype=float).reshape(len(rows), len(FEATURE_NAMES))


def _tier_names(n: int) -> list[str]:
    return ["simple", "medium", "complex"] if n == 3 else [f"tier{i}" for i in range(n)]


class ComplexityPolicy(Policy):
    """Tiers of a fitted complexity score (see the module docstring). ``weights`` (8,), ``intercept``, ``mean`` /
    ``std`` (8,) standardise the features; ``cuts`` (n_tiers - 1,) ascending; ``tier_models[t]``: index into
    ``models`` for tier ``t``; ``tiers``: their names."""

    kind = "complexity"

    def __init__(self, models: Sequence[str], weights: Sequence[float], intercept: float, mean: Sequence[float],
                 std: Sequence[float], cuts: Sequence[float], tier_models: Sequence[int], tiers: Sequence[str],
                 calibration: dict[str, Any] | None = None) -> None:
        super().__init__(models)
        self.weights, self.mean, self.std = (np.asarray(x, dtype=float) for x in (weights, mean, std))
        self.intercept, self.cuts = float(intercept), np.asarray(cuts, dtype=float)
        self.tier_models, self.tiers, self.calibration = [int(i) for i in tier_models], list(tiers), calibration
        n = len(FEATURE_NAMES)
        if self.weights.shape != (n,) or self.mean.shape != (n,) or self.std.shape != (n,):
            raise RoutingError(f"complexity weights, mean and std need {n} values each")
        if len(self.tier_models) != len(self.cuts) + 1 or len(self.tiers) != len(self.tier_models):
            raise RoutingError("complexity policy: need one model and one name per tier (cuts + 1)")
        if any(not 0 <= i < len(self.models) for i in self.tier_models):
            raise RoutingError("complexity policy: a tier routes to a model index outside models")

    def scores(self, frame: Any, *, cache: Any = None) -> np.ndarray:
        """The complexity score per row of ``frame`` (column ``prompt``), shape (n,)."""
        x = complexity_features([str(t) for t in frame["prompt"]])
        return (x - self.mean) / self.std @ self.weights + self.intercept

    def tier_of(self, scores: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.cuts, scores, side="right")

    def choose(self, frame: Any, *, cache: Any = None) -> np.ndarray:
        return np.asarray(self.tier_models, dtype=int)[self.tier_of(self.scores(frame))]

    def decide(self, prompt: str, category: str | None = None) -> tuple[int, dict[str, Any]]:
        x = complexity_features([prompt])[0]
        s = float((x - self.mean) / self.std @ self.weights + self.intercept)
        t = int(self.tier_of(np.asarray([s]))[0])
        return self.tier_models[t], {"score": round(s, 6), "tier": self.tiers[t],
                                     "threshold": float(self.cuts[t - 1]) if t > 0 else None}

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "kind": self.kind, "models": self.models, "features": list(FEATURE_NAMES),
                "weights": self.weights.tolist(), "intercept": self.intercept, "mean": self.mean.tolist(),
                "std": self.std.tolist(), "cuts": self.cuts.tolist(), "tier_models": self.tier_models,
                "tiers": self.tiers, "calibration": self.calibration}

    @classmethod
    def _from_dict(cls, d: dict[str, Any]) -> ComplexityPolicy:
        if list(d.get("features", [])) != list(FEATURE_NAMES):
            raise RoutingError(f"complexity features {d.get('features')!r}: this llmlab computes {list(FEATURE_NAMES)}")
        return cls(d["models"], d["weights"], d["intercept"], d["mean"], d["std"], d["cuts"], d["tier_models"],
                   d["tiers"], d.get("calibration"))


def fit_complexity(om: dict[str, Any], *, budget: float | None = None, min_quality: float | None = None,
                   tolerance: float = 0.0, n_tiers: int = 3, ridge: float = 1.0) -> ComplexityPolicy:
    """Fit a :class:`ComplexityPolicy` on outcome matrices (:func:`llmlab.routing.policies.outcome_matrices`, models
    ordered cheapest first). Raises RoutingError for fewer prompts than tiers or ``n_tiers < 1``."""
    texts = [str(t) for t in om["prompts"]["prompt"]]
    q = om["quality"]
    n, k = q.shape
    if n_tiers < 1 or n < n_tiers:
        raise RoutingError(f"complexity tiers need n_tiers >= 1 and at least that many prompts (got {n_tiers}, {n})")
    x = complexity_features(texts)
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = (x - mean) / std
    gain = q[:, -1] - q[:, 0]
    w = np.linalg.solve(z.T @ z + ridge * np.eye(z.shape[1]), z.T @ (gain - gain.mean()))
    score = z @ w + gain.mean()
    cuts = np.quantile(score, np.linspace(0, 1, n_tiers + 1)[1:-1]) if n_tiers > 1 else np.array([])
    tier = np.searchsorted(cuts, score, side="right")
    cost = om["cost"]

    def table(tol: float) -> list[int]:
        out = []
        for t in range(n_tiers):
            m = tier == t
            if not m.any():
                out.append(k - 1)
                continue
            qt = q[m].mean(axis=0)
            ok = [j for j in range(k) if qt[j] >= qt.max() - tol - 1e-12]
            out.append(min(ok, key=lambda j: (cost[m, j].mean(), -qt[j])))
        return out

    tols = [tolerance] if budget is None and min_quality is None else \
        [0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0]
    cands = []
    for tol in tols:
        tm = table(tol)
        qq, cc = _pick(np.asarray(tm)[tier], om)
        cands.append((qq, cc, tm, tol))
    ok = [c for c in cands if budget is None or c[1] <= budget + 1e-12] or [min(cands, key=lambda c: c[1])]
    meet = [c for c in ok if min_quality is None or c[0] >= min_quality - 1e-12]
    best = min(meet, key=lambda c: (c[1], -c[0])) if (meet and min_quality is not None) else \
        max(ok, key=lambda c: (c[0], -c[1]))
    calib = {"quality": best[0], "cost_per_1k_usd": best[1], "tolerance": best[3], "in_sample": True}
    return ComplexityPolicy(om["models"], w, float(gain.mean()), mean, std, cuts, best[2], _tier_names(n_tiers), calib)


register_kind("complexity", ComplexityPolicy, fit_complexity)
