"""A confidence-aware routing table: a cheaper model is chosen for a category only when a paired comparison on
the same prompts shows its quality loss against the category's best model is within the tolerance.

Rule, per category (and for the ``default`` row, over all prompts): the models with at least ``min_n`` prompts
scored for both them and the best model are the candidates; the *best* is the one with the highest mean quality.
Walking the cheaper candidates from the cheapest, the first whose paired comparison with the best
(:func:`llmlab.analysis.paired.compare_models`: a ``1 - alpha`` paired bootstrap interval of the quality difference,
resampling prompts, with McNemar's exact test or Wilcoxon's signed-rank test beside it) has its interval's lower
bound at or above ``-tolerance`` is chosen: the data support "it loses at most ``tolerance``" at that confidence
(non-inferiority), not merely "no loss was detected". Otherwise the best model is chosen and the reason says
which cheaper model came closest. A category with fewer than ``min_n`` paired prompts gets no row (the ``default``
row serves it), and the reason of the default row lists those categories.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from llmlab.errors import RoutingError

__all__ = ["CONFIDENT_COLUMNS", "confident_table"]

CONFIDENT_COLUMNS = ("diff_ci_low", "diff_ci_high", "p_value", "n_paired")


def _pairs(results: Any, models: list[str], n_boot: int, seed: int, alpha: float) -> dict[tuple[str, str], Any]:
    from llmlab.analysis.paired import compare_models

    out = {}
    for a in models:
        for b in models:
            if a != b:
                try:
                    out[(a, b)] = compare_models(results, a, b, by="category", n_boot=n_boot, seed=seed,
                                                 alpha=alpha).set_index("category")
                except Exception as exc:  # noqa: BLE001 - no common scored prompt: that pair is not comparable
                    if type(exc).__name__ != "AnalysisError":
                        raise
    return out


def confident_table(results: Any, *, tolerance: float = 0.0, alpha: float = 0.05, min_n: int = 20,
                    n_boot: int = 2000, seed: int = 0, max_fallbacks: int = 2,
                    models: Iterable[str] | None = None) -> Any:
    """A routing table whose cheaper choices are backed by paired comparisons (see the module docstring).

    Args:
        results: a results frame (:meth:`llmlab.Store.results`: ``prompt_id, model, category, status, quality,
            latency_ms, cost_usd``, ...).
        tolerance: the quality loss (0..1) accepted against the category's best model.
        alpha: ``1 - alpha`` is the interval's confidence.
        min_n: paired prompts a category needs for its own row.
        n_boot: bootstrap resamples per comparison. seed: their seed.
        max_fallbacks: fallbacks per row (other candidates: those within tolerance by cost, then by quality).
        models: restrict to these models.

    Returns the :func:`llmlab.routing.routing_table` columns (``category, model, quality, quality_ci_low,
    quality_ci_high, n, latency_p95_ms, cost_per_1k_prompts_usd, error_rate, fallbacks, reason``) plus
    ``diff_ci_low, diff_ci_high`` (interval of chosen minus best, quality units; 0 when the best is chosen),
    ``p_value`` and ``n_paired``; one row per category with enough paired prompts, then ``default``. It exports
    like any routing table (:func:`llmlab.routing.litellm_config.write_litellm_config`).

    Raises RoutingError when there are no results, no categories or no quality scores.
    """
    import pandas as pd

    from llmlab.routing.table import DEFAULT_CATEGORY, TABLE_COLUMNS, _summaries

    if models is not None:
        results = results[results["model"].isin(set(models))]
    by_cat, pooled = _summaries(results)
    names = sorted(results["model"].dropna().unique())
    pairs = _pairs(results, names, n_boot, seed, alpha)
    groups = [(c, by_cat[by_cat["category"] == c], c) for c in sorted(by_cat["category"].dropna().unique())
              if c != DEFAULT_CATEGORY]
    groups.append((DEFAULT_CATEGORY, pooled, "(all)"))
    rows, thin = [], []
    for cat, summ, key in groups:
        summ = summ[summ["quality"].notna()]
        if summ.empty:
            continue
        best = summ.sort_values(["quality", "cost_per_1k_prompts_usd"], ascending=[False, True]).iloc[0]

        def paired(m: str, best_model: str = str(best["model"]), key: str = key) -> Any:
            tab = pairs.get((m, best_model))
            return None if tab is None or key not in tab.index else tab.loc[key]

        cands = [r for r in summ.to_dict("records") if r["model"] == best["model"]
                 or (paired(r["model"]) is not None and paired(r["model"])["n"] >= min_n)]
        n_best = max([int(paired(r["model"])["n"]) for r in cands if r["model"] != best["model"]] or [0])
        if cat != DEFAULT_CATEGORY and (len(cands) < 2 or n_best < min_n):
            thin.append(str(cat))
            continue
        cost = {r["model"]: r["cost_per_1k_prompts_usd"] if r["cost_per_1k_prompts_usd"] == r["cost_per_1k_prompts_usd"]
                else math.inf for r in cands}
        cheaper = sorted([r for r in cands if cost[r["model"]] < cost[best["model"]]], key=lambda r: cost[r["model"]])
        ok = [r for r in cheaper if paired(r["model"])["ci_low"] >= -tolerance - 1e-12]
        level = f"{100 * (1 - alpha):g}%"
        if ok:
            chosen, cmp_ = ok[0], paired(ok[0]["model"])
            reason = (f"cheapest whose paired loss vs {best['model']} is within {tolerance:g} at {level}: diff "
                      f"{cmp_['diff']:+.3f} [{cmp_['ci_low']:+.3f}, {cmp_['ci_high']:+.3f}], n={int(cmp_['n'])}, "
                      f"{cmp_['test']} p={cmp_['p_value']:.3g}")
        else:
            chosen, cmp_ = next(r for r in cands if r["model"] == best["model"]), None
            if cheaper:
                near = max(cheaper, key=lambda r: paired(r["model"])["ci_low"])
                c = paired(near["model"])
                reason = (f"best quality: no cheaper model is within {tolerance:g} at {level} (closest "
                          f"{near['model']}: diff {c['diff']:+.3f} [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}], "
                          f"n={int(c['n'])})")
            else:
                reason = (f"best quality and the cheapest of {len(cands)} models with at least {min_n} paired prompts"
                          if len(cands) > 1 else "best quality; no other model has enough paired prompts")
        if cat == DEFAULT_CATEGORY and thin:
            reason += f"; fewer than {min_n} paired prompts, served by this row: {', '.join(thin)}"
        within = [r["model"] for r in ok if r["model"] != chosen["model"]]
        rest = [r["model"] for r in sorted(cands, key=lambda r: -r["quality"])
                if r["model"] not in within and r["model"] != chosen["model"]]
        rows.append({
            "category": cat, "model": chosen["model"], "quality": float(chosen["quality"]),
            "quality_ci_low": float(chosen.get("quality_ci_low", math.nan)),
            "quality_ci_high": float(chosen.get("quality_ci_high", math.nan)), "n": int(chosen["n_scored"]),
            "latency_p95_ms": float(chosen["latency_p95_ms"]), "cost_per_1k_prompts_usd": cost[chosen["model"]],
            "error_rate": float(chosen.get("error_rate", math.nan)), "fallbacks": [*within, *rest][:max_fallbacks],
            "reason": reason, "diff_ci_low": float(cmp_["ci_low"]) if cmp_ is not None else 0.0,
            "diff_ci_high": float(cmp_["ci_high"]) if cmp_ is not None else 0.0,
            "p_value": float(cmp_["p_value"]) if cmp_ is not None else math.nan,
            "n_paired": int(cmp_["n"]) if cmp_ is not None else n_best,
        })
    if not rows or rows[-1]["category"] != DEFAULT_CATEGORY:
        raise RoutingError("no model has a scored call: cannot choose a default route")
    return pd.DataFrame(rows, columns=[*TABLE_COLUMNS, *CONFIDENT_COLUMNS])
