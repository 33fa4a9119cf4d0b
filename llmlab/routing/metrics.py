"""Router metrics: RouteLLM's PGR / APGR / CPT for a strong–weak pair, RouterBench's AIQ for many models.

Pure functions over NumPy arrays / pandas frames; no store, no network.

Two models (RouteLLM, Ong et al. 2024, arXiv 2406.18665; code: lm-sys/RouteLLM ``routellm/evals/evaluate.py`` and
``benchmarks.py``):

- :func:`pgr`: performance gap recovered, ``(q - q_weak) / (q_strong - q_weak)``.
- :func:`pgr_curve`: the threshold sweep RouteLLM evaluates: thresholds are the ``n_points + 1`` bin edges of
  ``pandas.qcut(scores, n_points)``; at edge ``i`` a unit goes to the strong model when its score is ``>=`` the edge
  (``>`` for the last edge, so the sweep ends at 0 % strong calls).
- :func:`apgr`: ``np.trapz`` of PGR over the share of strong calls along the sweep, divided by the share range the
  sweep covers: RouteLLM's ``(AUC - weak_AUC) / (strong_AUC - weak_AUC)``, which is the same number.
- :func:`cpt`: ``np.interp`` of the target PGR over the sweep's PGR (sorted by strong share, as RouteLLM does): the
  share of strong calls needed, interpolated linearly between sweep points (not a step).

Many models (RouterBench, Hu et al. 2024, arXiv 2403.12031, section 3): :func:`nondecreasing_convex_hull` of
quality vs cost (USD), :func:`aiq` (area under that hull over a cost range, divided by the range), and
:func:`gain_over_hull` (a router's quality minus the single-model hull's quality at the same cost).

:func:`bootstrap_ci` resamples prompts (not calls) with replacement for a percentile interval of any statistic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "aiq",
    "apgr",
    "bootstrap_ci",
    "cost_quality_curve",
    "cpt",
    "gain_over_hull",
    "nondecreasing_convex_hull",
    "pgr",
    "pgr_curve",
]

_trapz = np.trapezoid  # numpy >= 2 (RouteLLM uses np.trapz, the same rule)


def pgr(quality: Any, q_weak: float, q_strong: float) -> Any:
    """Performance gap recovered: ``(quality - q_weak) / (q_strong - q_weak)`` (scalar or array, same shape).

    Units: any quality scale, the same for the three arguments. Raises ValueError when ``q_strong == q_weak``.
    """
    if q_strong == q_weak:
        raise ValueError("PGR is undefined when the strong and weak qualities are equal")
    return (np.asarray(quality, dtype=float) - q_weak) / (q_strong - q_weak) if np.ndim(quality) else \
        (float(quality) - q_weak) / (q_strong - q_weak)


def pgr_curve(scores: Sequence[float], q_strong: Sequence[float], q_weak: Sequence[float], *,
              n_points: int = 10, weights: Sequence[float] | None = None) -> Any:
    """RouteLLM's threshold sweep for one router on one benchmark.

    Args:
        scores: shape (n,), the router's score per routing unit (higher = more reason to call the strong model).
        q_strong, q_weak: shape (n,), each unit's recorded quality with the strong / weak model (for MT-Bench a
            unit is a question and its quality the mean over its turns).
        n_points: number of quantile bins (RouteLLM's ``--num-results``, default 10: 11 sweep points).
        weights: optional shape (n,) weights of the units (e.g. number of turns); default equal.

    Returns a DataFrame ``threshold, strong_share (0..1), quality, pgr`` sorted by ``strong_share``; ``pgr`` uses
    the always-strong / always-weak qualities of these same units. Raises ValueError on shape mismatch or
    ``n < 2``.
    """
    import pandas as pd

    s = np.asarray(scores, dtype=float)
    qs, qw = np.asarray(q_strong, dtype=float), np.asarray(q_weak, dtype=float)
    w = np.ones_like(s) if weights is None else np.asarray(weights, dtype=float)
    if not (s.shape == qs.shape == qw.shape == w.shape) or s.ndim != 1 or len(s) < 2:
        raise ValueError("scores, q_strong, q_weak (and weights) must be 1-d arrays of the same length ≥ 2")
    _, edges = pd.qcut(s, n_points, retbins=True, duplicates="drop")
    if len(edges) == 1:  # every score equal: the sweep is all-strong, then none
        edges = np.array([edges[0], edges[0]])
    total = w.sum()
    top_s, top_w = float((w * qs).sum() / total), float((w * qw).sum() / total)
    rows = []
    for i, t in enumerate(edges):
        strong = s >= t if i != len(edges) - 1 else s > t
        q = float((w * np.where(strong, qs, qw)).sum() / total)
        rows.append({"threshold": float(t), "strong_share": float(w[strong].sum() / total), "quality": q,
                     "pgr": (q - top_w) / (top_s - top_w) if top_s != top_w else math.nan})
    return pd.DataFrame(rows).sort_values(["strong_share", "threshold"], ascending=[True, False],
                                          kind="stable").reset_index(drop=True)


def _sorted_curve(curve: Any) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(curve["strong_share"], dtype=float)
    y = np.asarray(curve["pgr"], dtype=float)
    order = np.argsort(x, kind="stable")
    return x[order], y[order]


def apgr(curve: Any) -> float:
    """Average PGR: ``trapz(pgr, strong_share) / (max share - min share)`` over the sweep points.

    ``curve``: a frame (or mapping) with ``strong_share`` (0..1) and ``pgr`` columns, e.g. :func:`pgr_curve`'s.
    Equals RouteLLM's ``apgr_metric``. A sweep from 0 % to 100 % of random routing gives 0.5. NaN when the sweep
    covers a single share.
    """
    x, y = _sorted_curve(curve)
    span = x[-1] - x[0]
    return float(_trapz(y, x) / span) if span > 0 else math.nan


def cpt(curve: Any, pgr_target: float) -> float:
    """Call-performance threshold: percent (0..100) of calls to the strong model needed to reach ``pgr_target``
    (0..1), ``np.interp(pgr_target, pgr, strong_share)`` on the sweep sorted by strong share (RouteLLM's
    ``pct_call_metric``: linear between sweep points; clamped to the sweep's ends). RouteLLM's convention assumes
    PGR rises with the share along the sweep, as it does for a useful router."""
    x, y = _sorted_curve(curve)
    return float(np.interp(pgr_target, y, x) * 100)


def cost_quality_curve(points: Any, *, cost: str = "cost_per_1k_usd", quality: str = "quality") -> Any:
    """The cost–quality curve of a sweep: ``points`` (frame or list of dicts, one per operating point: a budget
    or threshold) sorted by cost (USD), with a ``on_hull`` column marking the points of its
    :func:`nondecreasing_convex_hull`. Columns kept; index reset."""
    import pandas as pd

    df = pd.DataFrame(points).sort_values([cost, quality], ascending=[True, False]).reset_index(drop=True)
    hx, hy = nondecreasing_convex_hull(df[cost], df[quality])
    hull = set(zip(hx.tolist(), hy.tolist(), strict=True))
    df["on_hull"] = [(float(c), float(q)) in hull for c, q in zip(df[cost], df[quality], strict=True)]
    return df


def nondecreasing_convex_hull(cost: Sequence[float], quality: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """RouterBench's non-decreasing convex hull of (cost, quality) points: the upper concave envelope of the points
    that no cheaper-or-equal point beats. Returns ``(hull_cost, hull_quality)``, both increasing; any mixture of two
    hull points is achievable by routing a share of prompts to each (linear in cost and quality)."""
    c, q = np.asarray(cost, dtype=float), np.asarray(quality, dtype=float)
    ok = ~(np.isnan(c) | np.isnan(q))
    order = np.lexsort((-q[ok], c[ok]))
    pts: list[tuple[float, float]] = []
    for x, y in zip(c[ok][order], q[ok][order], strict=True):
        if pts and y <= pts[-1][1]:
            continue  # dominated: not cheaper and not better
        while len(pts) >= 2:
            (x1, y1), (x2, y2) = pts[-2], pts[-1]
            if (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1) >= 0:  # middle point on or under the chord
                pts.pop()
            else:
                break
        pts.append((float(x), float(y)))
    return np.array([p[0] for p in pts]), np.array([p[1] for p in pts])


def _hull_at(hx: np.ndarray, hy: np.ndarray, at: Any) -> np.ndarray:
    """Hull quality at cost ``at``: linear between hull points, flat after the last, NaN before the first."""
    at = np.asarray(at, dtype=float)
    out = np.interp(at, hx, hy)
    return np.where(at < hx[0] - 1e-15, np.nan, out)


def aiq(cost: Sequence[float], quality: Sequence[float], *, cost_range: tuple[float, float] | None = None) -> float:
    """Average improvement in quality (RouterBench eq. 3): ``1/(c_max - c_min) ∫ hull(c) dc`` over
    ``cost_range`` (USD; default: the points' own min and max cost), with ``hull`` the
    :func:`nondecreasing_convex_hull` (flat beyond its last point). Raises ValueError when the range is empty or
    starts below the cheapest point (the hull is undefined there)."""
    hx, hy = nondecreasing_convex_hull(cost, quality)
    if len(hx) == 0:
        raise ValueError("no (cost, quality) point")
    lo, hi = cost_range if cost_range is not None else (float(np.nanmin(cost)), float(np.nanmax(cost)))
    if not hi > lo:
        raise ValueError(f"empty cost range [{lo}, {hi}]")
    if lo < hx[0] - 1e-15:
        raise ValueError(f"cost range starts at {lo} below the cheapest point {hx[0]}")
    xs = np.unique(np.concatenate([[lo, hi], hx[(hx > lo) & (hx < hi)]]))
    return float(_trapz(_hull_at(hx, hy, xs), xs) / (hi - lo))


def gain_over_hull(router_cost: Sequence[float], router_quality: Sequence[float],
                   model_cost: Sequence[float], model_quality: Sequence[float]) -> np.ndarray:
    """Per router point: its quality minus the quality of the single models' non-decreasing convex hull at the same
    cost (the best mixture of single models costing that much). Shape (n_router_points,); NaN where the router is
    cheaper than the cheapest single model. Positive = the router beats every fixed mixture of models."""
    hx, hy = nondecreasing_convex_hull(model_cost, model_quality)
    return np.asarray(router_quality, dtype=float) - _hull_at(hx, hy, router_cost)


def bootstrap_ci(frame: Any, stat: Callable[[Any], float], *, by: str = "prompt_id", n_boot: int = 1000,
                 level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Percentile bootstrap over prompts: resample the distinct values of ``frame[by]`` with replacement (all rows of
    a drawn prompt come along, duplicates repeated), apply ``stat(frame) -> float``.

    Returns ``(estimate on the full frame, low, high)`` at ``level``. Raises ValueError for an empty frame.
    """
    if len(frame) == 0:
        raise ValueError("empty frame")
    rng = np.random.default_rng(seed)
    positions = list(frame.reset_index(drop=True).groupby(by, sort=False).indices.values())
    vals = []
    for _ in range(n_boot):
        draw = rng.integers(0, len(positions), len(positions))
        vals.append(stat(frame.iloc[np.concatenate([positions[i] for i in draw])]))
    a = (1 - level) / 2
    lo, hi = np.nanquantile(vals, [a, 1 - a])
    return float(stat(frame)), float(lo), float(hi)
