"""Out-of-sample figures for a routing policy fitted on a run: fit on half of the prompts, report on the other half.

What ``llmlab route RUN`` prints by default. The split is by prompt (every model's rows of a prompt land in the same
half), within each category, by a hash of ``(seed, prompt_id)`` (:func:`llmlab.routing.routellm.split_halves`), so
it does not depend on row order. The policy that is exported is then fitted on all prompts; its in-sample figures
are reported beside, labelled as such.
"""

from __future__ import annotations

import math
from typing import Any

from llmlab.errors import RoutingError

__all__ = ["KINDS", "fit_for_export", "holdout_figures"]

KINDS = ("table", "confident", "prompt", "complexity")


def fit_for_export(results: Any, kind: str = "table", **kwargs: Any) -> Any:
    """The routing table (``kind="table"``: :func:`routing_table`; ``"confident"``:
    :func:`llmlab.routing.confident.confident_table`) or the fitted :class:`llmlab.routing.Policy` (``"prompt"``,
    ``"complexity"``: :func:`fit_policy`; ``kwargs`` go there). Raises RoutingError for an unknown kind."""
    from llmlab.routing.policies import fit_policy

    if kind == "table":
        from llmlab.routing.table import routing_table

        return routing_table(results, **kwargs)
    if kind == "confident":
        from llmlab.routing.confident import confident_table

        return confident_table(results, **kwargs)
    if kind in ("prompt", "complexity"):
        return fit_policy(results, kind=kind, **kwargs)
    raise RoutingError(f"unknown routing kind {kind!r}: use one of {', '.join(KINDS)}")


def _figures(fitted: Any, test: Any) -> dict[str, Any]:
    from llmlab.routing.policies import evaluate_policy
    from llmlab.routing.table import project

    if hasattr(fitted, "columns"):  # a table
        p = project(fitted, test)
        return {"quality": p["quality"], "cost_per_1k_usd": p["cost_per_1k_prompts_usd"], "n": p["n_prompts"],
                "share_by_model": p["share"],
                "per_model": {m: {"quality": v["quality"], "cost_per_1k_usd": v["cost_per_1k_prompts_usd"]}
                              for m, v in p["per_model"].items()}}
    return evaluate_policy(fitted, test)


def _with_baseline(fig: dict[str, Any]) -> dict[str, Any]:
    per = fig["per_model"]
    best = max(per, key=lambda m: (per[m]["quality"], -per[m]["cost_per_1k_usd"]))
    base = per[best]["cost_per_1k_usd"]
    savings = (1 - fig["cost_per_1k_usd"] / base) * 100 if base and not math.isnan(base) else math.nan
    return {**fig, "best_single_model": best, "best_single_quality": per[best]["quality"],
            "best_single_cost_per_1k_usd": base, "savings_pct": savings}


def holdout_figures(results: Any, kind: str = "table", *, seed: int = 0, **kwargs: Any) -> dict[str, Any]:
    """Fit on one half of the prompts, evaluate on the other; and fit on all, evaluate in sample.

    Returns ``{"out_of_sample": figures or None (fewer than 4 prompts), "in_sample": figures, "fitted": the table
    or policy fitted on all prompts, "n_fit", "n_eval", "seed", "kind"}``; figures: ``quality`` (0..1),
    ``cost_per_1k_usd`` (USD per 1,000 prompts), ``n``, ``share_by_model``, ``per_model``, ``best_single_model``,
    ``best_single_quality``, ``best_single_cost_per_1k_usd``, ``savings_pct`` (cost saved against the best single
    model on the same prompts, percent). Raises RoutingError as the fitters do.
    """
    from llmlab.routing.routellm import split_halves
    from llmlab.routing.table import DEFAULT_CATEGORY

    cats = results["category"] if "category" in results.columns else None
    frame = results.assign(category=DEFAULT_CATEGORY if cats is None else cats.fillna(DEFAULT_CATEGORY))
    fitted = fit_for_export(frame, kind, **kwargs)
    out: dict[str, Any] = {"kind": kind, "seed": seed, "fitted": fitted, "out_of_sample": None,
                           "in_sample": _with_baseline(_figures(fitted, frame)), "n_fit": 0, "n_eval": 0}
    if frame["prompt_id"].nunique() >= 4:
        train, test = split_halves(frame, seed=seed)
        try:
            out["out_of_sample"] = _with_baseline(_figures(fit_for_export(train, kind, **kwargs), test))
            out["n_fit"], out["n_eval"] = int(train["prompt_id"].nunique()), int(test["prompt_id"].nunique())
        except RoutingError as exc:  # e.g. a learned router whose half never separates the models
            out["out_of_sample_error"] = str(exc)
    return out
