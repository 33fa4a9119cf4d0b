"""Can this run decide? Per category, the best model against the runner-up, paired, with the smallest
difference the run could detect and the prompts a decision would take.

Built on :mod:`llmlab.analysis.paired` (paired bootstrap interval, exact McNemar / Wilcoxon, Holm across
categories, Connor's sample size): a pure function over a results frame.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from llmlab.analysis.paired import ALL, compare_models, minimum_detectable_difference, sample_size
from llmlab.analysis.summary import _require, effective_quality
from llmlab.errors import AnalysisError

__all__ = ["PAIRED_SUMMARY_COLUMNS", "paired_summary"]

#: Columns of :func:`paired_summary`, in order.
PAIRED_SUMMARY_COLUMNS: tuple[str, ...] = (
    "category", "model_a", "model_b", "n", "quality_a", "quality_b", "diff", "ci_low", "ci_high", "p_value",
    "p_adjusted", "n_discordant", "mdd", "prompts_needed", "decided",
)


def _prompts_needed(qb: float, diff: float, n: int, n_discordant: int, power: float, alpha: float) -> float:
    if not diff > 0 or not 0 < qb < 1 or qb + diff > 1 or n == 0:
        return math.nan
    psi = n_discordant / n
    try:
        return float(sample_size(qb, diff, power=power, alpha=alpha, discordance=psi if psi >= diff else None))
    except AnalysisError:
        return math.nan


def paired_summary(results: pd.DataFrame, power: float = 0.8, alpha: float = 0.05, n_boot: int = 1000,
                   seed: int = 0) -> pd.DataFrame:
    """Per category (and overall), the best model against the runner-up on the prompts both answered.

    Args:
        results: a results frame (``model, category, prompt_id, status, quality``).
        power, alpha: for the minimum detectable difference and the prompts needed.
        n_boot, seed: the paired bootstrap of the interval.

    Returns:
        One row per category with at least two scored models, then ``category == "(all)"``. Columns
        :data:`PAIRED_SUMMARY_COLUMNS`: ``model_a`` the best model by mean quality, ``model_b`` the runner-up;
        ``n, quality_a, quality_b, diff, ci_low, ci_high, p_value, n_discordant`` as in
        :func:`~llmlab.analysis.paired.compare_models`; ``p_adjusted`` Holm over the category rows (the
        overall row keeps its own p-value); ``mdd``: the smallest difference these prompts detect with
        ``power`` (:func:`~llmlab.analysis.paired.minimum_detectable_difference`, quality units; NaN when the
        two never disagree); ``prompts_needed``: prompts a paired test needs to detect the observed ``diff``
        with ``power`` (Connor 1987 with the observed discordance; NaN for graded or equal scores);
        ``decided``: ``p_adjusted < alpha``.

    Raises:
        AnalysisError: a column is missing, or fewer than two scored models.
    """
    from statsmodels.stats.multitest import multipletests

    _require(results, ("model", "category", "prompt_id", "status", "quality"), "results")
    frame = results.assign(_q=effective_quality(results))
    frame = frame[frame["_q"].notna()]
    if frame["model"].nunique() < 2:
        raise AnalysisError("paired_summary needs at least two scored models")
    rows = []
    groups = [(str(c), g) for c, g in frame.groupby("category", sort=True)] + [(ALL, frame)]
    for category, g in groups:
        means = g.groupby("model")["_q"].mean().sort_values(ascending=False, kind="stable")
        if len(means) < 2:
            continue
        a, b = means.index[0], means.index[1]
        cmp = compare_models(g, a, b, by=None, n_boot=n_boot, seed=seed, alpha=alpha).iloc[0]
        try:
            mdd = minimum_detectable_difference(g, a, b, power=power, alpha=alpha)
        except AnalysisError:
            mdd = math.nan
        rows.append({
            "category": category, "model_a": a, "model_b": b, "n": int(cmp["n"]), "quality_a": cmp["quality_a"],
            "quality_b": cmp["quality_b"], "diff": cmp["diff"], "ci_low": cmp["ci_low"], "ci_high": cmp["ci_high"],
            "p_value": cmp["p_value"], "p_adjusted": cmp["p_value"], "n_discordant": int(cmp["n_discordant"]),
            "mdd": mdd,
            "prompts_needed": _prompts_needed(float(cmp["quality_b"]), float(cmp["diff"]), int(cmp["n"]),
                                              int(cmp["n_discordant"]), power, alpha),
        })
    out = pd.DataFrame(rows, columns=list(PAIRED_SUMMARY_COLUMNS))
    family = (out["category"] != ALL).to_numpy()
    if family.sum():
        p = out.loc[family, "p_value"].to_numpy(dtype=float)
        out.loc[family, "p_adjusted"] = multipletests(np.nan_to_num(p, nan=1.0), method="holm")[1]
    out["decided"] = out["p_adjusted"].astype(float) < alpha
    return out
