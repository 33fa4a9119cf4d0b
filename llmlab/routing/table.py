"""Cost-aware routing tables and their backtests.

A routing table says, per task category, which model to call: the *cheapest* model whose quality is within
``tolerance`` of the best model's quality in that category (and, when given, at least ``min_quality``), whose p95
latency is at most ``max_latency_p95_ms`` (when given), measured on at least ``min_n`` scored calls; then ordered
fallbacks; plus a ``default`` row chosen the same way over all categories pooled, for categories the table has no
row for. Quality, latency and cost come from :func:`llmlab.analysis.summarize` over a results frame.

:func:`project` replays a table over a results frame (in-sample, or a held-out half: :func:`backtest`), giving the
quality, cost and per-model share the table would have produced on exactly those prompts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from llmlab.errors import RoutingError

__all__ = [
    "DEFAULT_CATEGORY",
    "ROUTING_DEFAULTS",
    "TABLE_COLUMNS",
    "backtest",
    "project",
    "route_for",
    "routing_table",
    "tolerance_curve",
]

DEFAULT_CATEGORY = "default"
TABLE_COLUMNS = ("category", "model", "quality", "quality_ci_low", "quality_ci_high", "n", "latency_p95_ms",
                 "cost_per_1k_prompts_usd", "error_rate", "fallbacks", "reason")


_NO_SCORES = ("no call of these results has a quality score: score the run first "
              "(deterministic scorers need references; or use an LLM judge or human ratings)")


def _summaries(results: Any, source: tuple[Any, str] | None = None,
               models: Iterable[str] | None = None) -> tuple[Any, Any]:
    """The per model x category and per model summaries a table is chosen from: of a results frame, or of a
    stored run ``source = (store, run_id)`` aggregated in DuckDB (the same frames, the rows never loaded)."""
    from llmlab.analysis import summarize

    if source is not None:
        from llmlab.analysis.summary_sql import summarize_run_sets

        by_cat, pooled = summarize_run_sets(source[0], source[1], [("model", "category"), ("model",)], models=models)
        if by_cat.empty:
            raise RoutingError("no results to route from")
        if int(by_cat["n_scored"].sum()) == 0:
            raise RoutingError(_NO_SCORES)
        return by_cat, pooled.assign(category=DEFAULT_CATEGORY)
    if results is None or len(results) == 0:
        raise RoutingError("no results to route from")
    if "category" not in results.columns:
        raise RoutingError("the results have no 'category' column")
    if results["quality"].notna().sum() == 0:
        raise RoutingError(_NO_SCORES)
    by_cat = summarize(results, by=("model", "category"))
    pooled = summarize(results, by=("model",))
    pooled = pooled.assign(category=DEFAULT_CATEGORY)
    return by_cat, pooled


def _choose(rows: Any, *, tolerance: float | None, min_quality: float | None, max_latency_p95_ms: float | None,
            min_n: int, max_fallbacks: int) -> dict[str, Any] | None:
    rows = rows[rows["n_scored"] >= min_n]
    rows = rows[rows["quality"].notna()]
    if rows.empty:
        return None
    best_q = float(rows["quality"].max())
    ok = rows.copy()
    ok["_meets_quality"] = True
    if tolerance is not None:
        ok["_meets_quality"] &= ok["quality"] >= best_q - tolerance - 1e-12
    if min_quality is not None:
        ok["_meets_quality"] &= ok["quality"] >= min_quality
    ok["_meets_latency"] = True
    if max_latency_p95_ms is not None:
        ok["_meets_latency"] = ok["latency_p95_ms"].fillna(math.inf) <= max_latency_p95_ms
    ok["_cost"] = ok["cost_per_1k_prompts_usd"].fillna(math.inf)
    eligible = ok[ok["_meets_quality"] & ok["_meets_latency"]].sort_values(["_cost", "quality"], ascending=[True, False])
    if not eligible.empty:
        chosen = eligible.iloc[0]
        target = []
        if tolerance is not None:
            target.append(f"quality ≥ best {best_q:.3f} − {tolerance:g}")
        if min_quality is not None:
            target.append(f"quality ≥ {min_quality:g}")
        if max_latency_p95_ms is not None:
            target.append(f"p95 ≤ {max_latency_p95_ms:g} ms")
        reason = f"cheapest of {len(eligible)} meeting {' and '.join(target) or 'no target'}"
    else:
        fast = ok[ok["_meets_latency"]]
        if fast.empty:
            pool, reason = ok, "no model meets the latency limit: best quality"
        else:
            pool, reason = fast, "no model meets the quality target: best quality"
        chosen = pool.sort_values(["quality", "_cost"], ascending=[False, True]).iloc[0]
    others = ok[ok["model"] != chosen["model"]]
    elig_others = others[others["_meets_quality"] & others["_meets_latency"]].sort_values(["_cost", "quality"], ascending=[True, False])
    rest = others[~others["model"].isin(elig_others["model"])].sort_values(["quality", "_cost"], ascending=[False, True])
    fallbacks = [*elig_others["model"], *rest["model"]][:max_fallbacks]
    return {
        "category": chosen["category"], "model": chosen["model"], "quality": float(chosen["quality"]),
        "quality_ci_low": float(chosen.get("quality_ci_low", math.nan)),
        "quality_ci_high": float(chosen.get("quality_ci_high", math.nan)), "n": int(chosen["n_scored"]),
        "latency_p95_ms": float(chosen["latency_p95_ms"]) if chosen["latency_p95_ms"] == chosen["latency_p95_ms"] else math.nan,
        "cost_per_1k_prompts_usd": float(chosen["cost_per_1k_prompts_usd"]),
        "error_rate": float(chosen.get("error_rate", math.nan)), "fallbacks": fallbacks, "reason": reason,
    }


#: The routing settings every surface starts from (this function, the report, the widgets' routing tab, the CLI),
#: so one run shows one table wherever it is looked at.
ROUTING_DEFAULTS: dict[str, Any] = {"tolerance": 0.02, "min_quality": None, "max_latency_p95_ms": None, "min_n": 5,
                                    "max_fallbacks": 2}


def routing_table(results: Any, *, tolerance: float | None = ROUTING_DEFAULTS["tolerance"],
                  min_quality: float | None = None, max_latency_p95_ms: float | None = None,
                  min_n: int = ROUTING_DEFAULTS["min_n"], max_fallbacks: int = ROUTING_DEFAULTS["max_fallbacks"],
                  models: Iterable[str] | None = None, min_judge_agreement: float | None = None,
                  store: Any = None) -> Any:
    """Derive a routing table from a results frame (:meth:`Store.results`: needs ``model, category, quality,
    latency_ms, cost_usd, status`` and the other columns :func:`llmlab.analysis.summarize` reads), or from a
    stored run.

    Args:
        results: a results frame; or a stored run (a :class:`~llmlab.runner.handle.RunResult`, or a run
            reference in ``store``), whose summaries are then aggregated in DuckDB without loading its rows
            (with ``min_judge_agreement`` its rows are loaded: the agreement needs every score).
        tolerance: accept models whose quality (0..1) is at least the category's best minus this; None: no
            relative target.
        min_quality: absolute quality target (0..1); None: none. Both targets apply when both are given.
        max_latency_p95_ms: p95 latency limit in ms; None: none.
        min_n: minimum number of scored calls for a model to be considered in a category.
        max_fallbacks: fallbacks per row, ordered: other models meeting the targets by cost, then the rest by
            quality.
        models: restrict to these models.
        min_judge_agreement: trust the LLM judge's scores only when its Cohen's kappa with the human ratings
            (on calls rated by both) is at least this; otherwise quality is the human rating, else the
            deterministic score (:func:`llmlab.analysis.agreement.trusted_quality`). None: always trust it.
        store: the :class:`~llmlab.Store` a run reference is looked up in (default: the default store).

    Returns a :class:`~llmlab.routing.table_frame.RoutingTable` (a DataFrame that prints as readable text in a
    terminal) with columns ``category, model, quality, quality_ci_low, quality_ci_high, n,
    latency_p95_ms, cost_per_1k_prompts_usd (USD), error_rate, fallbacks (list of models), reason``: one row per
    category with enough data, then the ``default`` row. When no model meets the targets in a category, the row
    holds the best-quality model and says so in ``reason``. ``table.attrs["routing_settings"]`` holds the settings
    used (``tolerance, min_quality, max_latency_p95_ms, min_n, max_fallbacks``), which the report states.

    Raises RoutingError when there are no results, no categories or no quality scores.
    """
    import pandas as pd

    from llmlab.routing.table_frame import RoutingTable

    source = None
    if not isinstance(results, pd.DataFrame) and results is not None:
        from llmlab.analysis.summary_sql import run_source

        source = run_source(results, store)
        if source is not None and min_judge_agreement is not None:
            results, source = source[0].results(source[1]), None
    if models is not None and source is None:
        keep = set(models)
        results = results[results["model"].isin(keep)]
    if min_judge_agreement is not None:
        from llmlab.analysis.agreement import trusted_quality

        results = trusted_quality(results, min_judge_agreement)
    if tolerance is None and min_quality is None and max_latency_p95_ms is None:
        tolerance = 0.0
    by_cat, pooled = _summaries(results, source, models)
    kw = {"tolerance": tolerance, "min_quality": min_quality, "max_latency_p95_ms": max_latency_p95_ms,
          "min_n": min_n, "max_fallbacks": max_fallbacks}
    rows = []
    for cat in sorted(by_cat["category"].dropna().unique()):
        if cat == DEFAULT_CATEGORY:
            continue
        chosen = _choose(by_cat[by_cat["category"] == cat], **kw)
        if chosen is not None:
            rows.append(chosen)
    default = _choose(pooled, **kw)
    if default is None:
        default = _choose(pooled, **{**kw, "min_n": 1})
    if default is None:
        raise RoutingError("no model has a scored call: cannot choose a default route")
    rows.append(default)
    table = RoutingTable(rows, columns=list(TABLE_COLUMNS))
    table.attrs["routing_settings"] = dict(kw)
    return table


def route_for(table: Any, category: str | None) -> str:
    """The model the table sends ``category`` to (its row, else the default row)."""
    hit = table[table["category"] == category]
    if hit.empty:
        hit = table[table["category"] == DEFAULT_CATEGORY]
    return str(hit.iloc[0]["model"])


def project(table: Any, results: Any) -> dict[str, Any]:
    """Replay ``table`` over ``results``: for each (prompt, sample), take the routed model's recorded outcome.

    Returns a dict: ``quality`` (mean over routed calls, 0..1; error rows count 0 when scored),
    ``cost_per_1k_prompts_usd``, ``latency_p95_ms``, ``n_prompts``, ``share`` ({model: share of calls}),
    ``baseline_model`` (the single model with the best overall quality on these results),
    ``baseline_quality``, ``baseline_cost_per_1k_prompts_usd``, ``savings_pct`` (cost saved against the baseline,
    in percent), ``per_model`` ({model: {quality, cost_per_1k_prompts_usd}} for every single model).

    Prompts whose routed model has no result are skipped (counted in ``n_missing``).
    """
    import numpy as np

    from llmlab.analysis import effective_quality

    df = results.copy()
    df["quality_f"] = effective_quality(df)
    mapping = {r["category"]: r["model"] for r in table.to_dict("records")}
    default = mapping.get(DEFAULT_CATEGORY)
    df["_routed"] = df["category"].map(lambda c: mapping.get(c, default))
    units = df[["prompt_id", "sample_index"]].drop_duplicates()
    chosen = df[df["model"] == df["_routed"]]
    n_missing = len(units) - len(chosen[["prompt_id", "sample_index"]].drop_duplicates())
    per_model = {}
    for m, g in df.groupby("model"):
        per_model[m] = {"quality": float(g["quality_f"].mean()),
                        "cost_per_1k_prompts_usd": float(g["cost_usd"].sum(min_count=1)) / max(1, len(g)) * 1000}
    base_model = max(per_model, key=lambda m: (per_model[m]["quality"], -per_model[m]["cost_per_1k_prompts_usd"]))
    cost = float(chosen["cost_usd"].sum(min_count=1)) / max(1, len(chosen)) * 1000 if len(chosen) else math.nan
    base_cost = per_model[base_model]["cost_per_1k_prompts_usd"]
    lat = chosen.loc[chosen["status"] == "ok", "latency_ms"].dropna()
    share = chosen["model"].value_counts(normalize=True).to_dict()
    return {
        "quality": float(chosen["quality_f"].mean()) if len(chosen) else math.nan,
        "cost_per_1k_prompts_usd": cost,
        "latency_p95_ms": float(np.percentile(lat, 95)) if len(lat) else math.nan,
        "n_prompts": len(chosen),
        "n_missing": int(n_missing),
        "share": {str(k): float(v) for k, v in share.items()},
        "baseline_model": str(base_model),
        "baseline_quality": per_model[base_model]["quality"],
        "baseline_cost_per_1k_prompts_usd": base_cost,
        "savings_pct": (1 - cost / base_cost) * 100 if base_cost and not math.isnan(base_cost) else math.nan,
        "per_model": per_model,
    }


def backtest(train: Any, test: Any, **table_kwargs: Any) -> tuple[Any, dict[str, Any]]:
    """Fit a routing table on ``train`` results and :func:`project` it on held-out ``test`` results."""
    table = routing_table(train, **table_kwargs)
    return table, project(table, test)


def tolerance_curve(results: Any, tolerances: Sequence[float] | None = None, *, test: Any = None,
                    **table_kwargs: Any) -> Any:
    """Projected quality and cost as the quality tolerance varies.

    Returns a DataFrame ``tolerance, quality, cost_per_1k_prompts_usd, latency_p95_ms, strongest_share`` (the
    share of calls sent to the overall best model), fitted on ``results`` and projected on ``test`` (default: the
    same results, in sample).
    """
    import numpy as np
    import pandas as pd

    if tolerances is None:
        tolerances = [float(x) for x in np.round(np.linspace(0, 0.3, 16), 4)]
    rows = []
    for tol in tolerances:
        table = routing_table(results, tolerance=tol, **table_kwargs)
        proj = project(table, results if test is None else test)
        rows.append({"tolerance": tol, "quality": proj["quality"],
                     "cost_per_1k_prompts_usd": proj["cost_per_1k_prompts_usd"],
                     "latency_p95_ms": proj["latency_p95_ms"],
                     "strongest_share": proj["share"].get(proj["baseline_model"], 0.0)})
    return pd.DataFrame(rows)
