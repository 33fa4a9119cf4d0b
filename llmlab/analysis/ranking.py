"""Ranking many models from pairwise outcomes: the Bradley-Terry model.

Bradley & Terry (1952): model ``i`` beats model ``j`` with probability ``1 / (1 + exp(-(s_i - s_j)))`` for
strengths ``s`` on the log-odds scale. Strengths are fitted by maximum likelihood (``scipy.optimize.minimize``,
BFGS) with a weak Gaussian prior that keeps unbeaten models finite; ties count as half a win for each
side (as in the Chatbot Arena leaderboard, Chiang et al. 2024). Intervals come from a percentile bootstrap
over the pairwise outcomes (Efron & Tibshirani 1993).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd

from llmlab.analysis.summary import _require, effective_quality
from llmlab.errors import AnalysisError

__all__ = ["BT_COLUMNS", "bradley_terry", "pairs_from_results"]

#: Columns of :func:`bradley_terry`, in order.
BT_COLUMNS: tuple[str, ...] = ("model", "score", "ci_low", "ci_high", "rank", "n_games", "wins")

_WIN_A = {"a": 1.0, "b": 0.0, "tie": 0.5}


def _wins_matrix(i: np.ndarray, j: np.ndarray, w: np.ndarray, m: int) -> np.ndarray:
    """W[x, y] = (half-)wins of model x over model y."""
    wins = np.zeros((m, m))
    np.add.at(wins, (i, j), w)
    np.add.at(wins, (j, i), 1.0 - w)
    return wins


def _fit(wins: np.ndarray, prior: float, start: np.ndarray | None = None) -> np.ndarray:
    from scipy.optimize import minimize
    from scipy.special import expit

    m = wins.shape[0]

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        diff = theta[None, :] - theta[:, None]  # diff[x, y] = s_y - s_x
        nll = float((wins * np.logaddexp(0.0, diff)).sum()) + 0.5 * prior * float(theta @ theta)
        p_lose = expit(diff) * wins  # d/ds_x of W[x,y] log(1 + e^{s_y - s_x}) = -W[x,y] sigma(s_y - s_x)
        grad = -p_lose.sum(axis=1) + p_lose.sum(axis=0) + prior * theta
        return nll, grad

    x0 = np.zeros(m) if start is None else start
    res = minimize(loss, x0, jac=True, method="BFGS")  # L-BFGS-B: same optimum, ~10x slower with scipy 1.17
    theta = res.x
    return theta - theta.mean()


def bradley_terry(pairs: pd.DataFrame, n_boot: int = 200, seed: int = 0, alpha: float = 0.05,
                  prior: float = 0.01) -> pd.DataFrame:
    """Fit Bradley-Terry strengths to pairwise outcomes, with bootstrap intervals.

    Args:
        pairs: one row per comparison with columns ``model_a``, ``model_b`` and ``winner`` in
            ``{"a", "b", "tie"}`` (e.g. from :func:`pairs_from_results` or judge preferences).
        n_boot: bootstrap resamples of the rows; 0 skips the intervals (NaN).
        seed: seed of the bootstrap generator.
        alpha: the intervals have confidence ``1 - alpha``.
        prior: precision of the zero-mean Gaussian prior on the strengths (0 is pure MLE, which diverges for
            a model that never loses or never wins).

    Returns:
        One row per model, best first. Columns:

        - ``model``; ``score``: strength on the log-odds scale, centred to mean 0 (``score_i - score_j`` is the
          log-odds that ``i`` beats ``j``).
        - ``ci_low``, ``ci_high``: percentile-bootstrap interval of ``score``.
        - ``rank``: 1 is best (ties share the smaller rank).
        - ``n_games``: comparisons the model took part in (count); ``wins``: wins, ties counting one half.

    Raises:
        AnalysisError: a column is missing, no rows, a model compared with itself, or a ``winner`` value
            outside ``{"a", "b", "tie"}``.
    """
    _require(pairs, ("model_a", "model_b", "winner"), "pairs")
    frame = pairs.dropna(subset=["model_a", "model_b"])
    if frame.empty:
        raise AnalysisError("pairs holds no comparison")
    winner = frame["winner"].astype("object").map(lambda v: str(v).strip().lower() if v is not None else v)
    bad = sorted(set(map(str, frame["winner"][~winner.isin(list(_WIN_A))])))
    if bad:
        raise AnalysisError(f"winner must be one of 'a', 'b', 'tie'; got {', '.join(map(repr, bad))}")
    if (frame["model_a"] == frame["model_b"]).any():
        raise AnalysisError("pairs compares a model with itself (model_a == model_b)")
    models = sorted(set(frame["model_a"]) | set(frame["model_b"]), key=str)
    index = {m: k for k, m in enumerate(models)}
    i = frame["model_a"].map(index).to_numpy(dtype=int)
    j = frame["model_b"].map(index).to_numpy(dtype=int)
    w = winner.map(_WIN_A).to_numpy(dtype=float)
    m = len(models)
    wins = _wins_matrix(i, j, w, m)
    theta = _fit(wins, prior)
    low = high = np.full(m, np.nan)
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        boots = np.empty((n_boot, m))
        for r in range(n_boot):
            take = rng.integers(0, len(w), len(w))
            boots[r] = _fit(_wins_matrix(i[take], j[take], w[take], m), prior, start=theta)
        low = np.percentile(boots, 100 * alpha / 2, axis=0)
        high = np.percentile(boots, 100 * (1 - alpha / 2), axis=0)
    games = np.bincount(i, minlength=m) + np.bincount(j, minlength=m)
    out = pd.DataFrame({
        "model": models, "score": theta, "ci_low": low, "ci_high": high,
        "rank": pd.Series(-theta).rank(method="min").astype("int64").to_numpy(),
        "n_games": games.astype("int64"), "wins": wins.sum(axis=1),
    }, columns=list(BT_COLUMNS))
    return out.sort_values(["rank", "model"], kind="stable").reset_index(drop=True)


def pairs_from_results(results: pd.DataFrame, models: Sequence[object] | None = None) -> pd.DataFrame:
    """Pairwise outcomes from a results frame: on every prompt, each pair of models, the higher quality wins.

    Quality is the per-prompt mean of :func:`~llmlab.analysis.summary.effective_quality` over samples; equal
    qualities are a tie; prompts a model has no quality for are skipped for its pairs.

    Returns:
        Columns ``prompt_id``, ``model_a``, ``model_b`` (``model_a`` sorts first), ``winner`` in
        ``{"a", "b", "tie"}``; ready for :func:`bradley_terry`.

    Raises:
        AnalysisError: a column is missing or fewer than two models.
    """
    _require(results, ("model", "prompt_id", "status", "quality"), "results")
    frame = results.assign(_q=effective_quality(results))
    frame = frame[frame["_q"].notna()]
    wide = frame.groupby(["prompt_id", "model"], observed=True)["_q"].mean().unstack("model")
    names = sorted(wide.columns, key=str) if models is None else list(models)
    missing = [m for m in names if m not in wide.columns]
    if missing:
        raise AnalysisError(f"no scored call of model(s) {', '.join(map(repr, missing))} in results")
    if len(names) < 2:
        raise AnalysisError(f"pairs_from_results needs at least two scored models; got {len(names)}")
    parts = []
    for ma, mb in combinations(names, 2):
        both = wide[[ma, mb]].dropna()
        qa, qb = both[ma].to_numpy(), both[mb].to_numpy()
        parts.append(pd.DataFrame({
            "prompt_id": both.index.to_numpy(), "model_a": ma, "model_b": mb,
            "winner": np.where(qa > qb, "a", np.where(qa < qb, "b", "tie")),
        }))
    return pd.concat(parts, ignore_index=True)
