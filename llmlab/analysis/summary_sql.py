"""The per-group summary of a stored run, computed inside DuckDB.

:func:`summarize_run` returns exactly what :func:`llmlab.analysis.summarize` returns for
``store.results(run)`` (the same columns, values and order; ``tests/test_summary_sql.py`` checks it on runs with
errors, unscored prompts, cache hits and unknown prices), but the aggregation runs as one SQL ``GROUP BY`` over
the store, so a 10^5-call run is never pulled into pandas: the frame that comes back has one row per group.
Only the 95 % quality interval is finished in Python, from the group's count, sum and standard deviation (the
Wilson interval when every score is 0 or 1, else the Student t-interval, as :func:`summarize` does).

Figures: ``benchmarks/store.py`` times it against a raw DuckDB ``GROUP BY`` of the same run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from llmlab.analysis.summary_figures import SUMMARY_COLUMNS, _t975, wilson_interval
from llmlab.errors import AnalysisError

__all__ = ["GROUPABLE", "run_source", "summarize_run", "summarize_run_sets"]

#: Columns of the ``calls`` view a summary may group by.
GROUPABLE = ("model", "category", "answered_by", "status", "error_type", "http_status", "sample_index",
             "prompt_id", "scorer", "model_group", "deployment", "response_mode", "finish_reason", "cached",
             "run_id")


def _clean(col: str) -> str:
    """A DOUBLE column with NaN read as NULL (pandas writes NaN for a missing float)."""
    return f"CASE WHEN isnan(c.{col}) THEN NULL ELSE c.{col} END"


_SQL = """
WITH c AS (
    SELECT c.*, {latency} AS lat, {ttft} AS ttft, {cost} AS cost,
           CASE WHEN isnan(q.quality) THEN NULL ELSE q.quality END AS q_raw
    FROM calls c LEFT JOIN call_quality q ON q.call_id = c.call_id AND q.run_id = c.run_id
    WHERE c.run_id = ? {model_filter}
),
scored AS (SELECT DISTINCT prompt_id FROM c WHERE q_raw IS NOT NULL),
e AS (
    SELECT c.*, CASE WHEN c.q_raw IS NULL AND c.status = 'error' AND s.prompt_id IS NOT NULL THEN 0.0
                     ELSE c.q_raw END AS q
    FROM c LEFT JOIN scored s ON s.prompt_id = c.prompt_id
)
SELECT {group_select}
       {grouping_id} AS _set,
       count(*) AS n,
       count(*) FILTER (WHERE status = 'ok') AS n_ok,
       count(q) AS n_scored,
       count(DISTINCT (prompt_id, sample_index)) AS n_prompts,
       avg(q) AS quality,
       sum(q) AS _q_sum,
       stddev_samp(q) AS _q_sd,
       bool_and(q = 0 OR q = 1) AS _q_binary,
       quantile_cont(lat, [0.5, 0.95, 0.99]) FILTER (WHERE status = 'ok' AND lat IS NOT NULL) AS _lat_q,
       quantile_cont(ttft, [0.5, 0.95]) FILTER (WHERE status = 'ok' AND ttft IS NOT NULL) AS _ttft_q,
       coalesce(sum(cost), 0) AS _cost_sum,
       count(*) FILTER (WHERE status = 'ok' AND cost IS NULL) AS n_cost_unknown,
       avg(input_tokens) FILTER (WHERE status = 'ok') AS input_tokens_mean,
       avg(output_tokens) FILTER (WHERE status = 'ok') AS output_tokens_mean,
       coalesce(sum(CASE WHEN attempts >= 1 THEN attempts - 1 ELSE 0 END), 0) AS retries,
       avg(CASE WHEN coalesce(cached, false) THEN 1.0 ELSE 0.0 END) AS cache_hit_rate,
       avg(CASE WHEN coalesce(fallbacks_taken, 0) > 0 THEN 1.0 ELSE 0.0 END) AS fallback_rate
FROM e GROUP BY GROUPING SETS ({sets})
"""


def run_source(obj: Any, store: Any = None) -> tuple[Any, str] | None:
    """``(store, run reference)`` when ``obj`` names a stored run, else None (``obj`` is a results frame).

    A stored run is a :class:`~llmlab.runner.handle.RunResult` (anything with ``run_id`` and ``store``), or a run
    reference (id, id prefix, name, ``"last"``) given with ``store`` (a :class:`~llmlab.Store`; default: the
    default store). The reference is resolved by the query that reads the run (one connection).
    """
    if isinstance(obj, str):
        if store is None:
            from llmlab.store import Store

            store = Store()
        return store, obj
    run_id, run_store = getattr(obj, "run_id", None), getattr(obj, "store", None)
    if isinstance(run_id, str) and run_store is not None and hasattr(run_store, "connect"):
        return run_store, run_id
    return None


def _quality_ci(n_scored: int, q_sum: Any, q_sd: Any, q_binary: Any) -> tuple[float, float]:
    if not n_scored:
        return (math.nan, math.nan)
    if bool(q_binary):
        return wilson_interval(float(q_sum), n_scored)
    if n_scored < 2 or q_sd is None or math.isnan(float(q_sd)):
        return (math.nan, math.nan)
    mean = float(q_sum) / n_scored
    half = _t975(n_scored - 1) * float(q_sd) / math.sqrt(n_scored)
    return (max(0.0, mean - half), min(1.0, mean + half))


def _nth(values: Any, i: int) -> float:
    if values is None:
        return math.nan
    try:
        v = values[i]
    except (IndexError, TypeError):
        return math.nan
    return math.nan if v is None else float(v)


def summarize_run(store: Any, run: str | None = None, by: str | Sequence[str] = ("model", "category"), *,
                  models: Iterable[str] | None = None) -> Any:
    """:func:`llmlab.analysis.summarize` of a stored run, aggregated in DuckDB.

    Args:
        store: the :class:`~llmlab.Store` holding the run.
        run: a run reference (id, id prefix, name, ``"last"``/None for the newest).
        by: the column or columns of the ``calls`` view to group by (see :data:`GROUPABLE`).
        models: keep only these models' calls (before the quality of failed calls is decided, as when the
            results frame is filtered first).

    Returns:
        The DataFrame :func:`~llmlab.analysis.summarize` returns for ``store.results(run)``: the group columns,
        then :data:`~llmlab.analysis.SUMMARY_COLUMNS` (see there for units), one row per group, sorted by the
        group columns.

    Raises:
        AnalysisError: a ``by`` column is not one of :data:`GROUPABLE`.
        RunNotFoundError: ``run`` names no run.
    """
    return summarize_run_sets(store, run, [by], models=models)[0]


def summarize_run_sets(store: Any, run: str | None, bys: Sequence[str | Sequence[str]], *,
                       models: Iterable[str] | None = None) -> list[Any]:
    """Several :func:`summarize_run` groupings of one run in one scan (SQL ``GROUPING SETS``): a routing table
    needs the per model x category and the per model summaries. Returns one frame per entry of ``bys``, in order;
    raises as :func:`summarize_run` does."""
    sets = [[b] if isinstance(b, str) else list(b) for b in bys]
    all_cols = list(dict.fromkeys(c for cols in sets for c in cols))
    bad = [c for c in all_cols if c not in GROUPABLE]
    if bad:
        raise AnalysisError(f"cannot summarize a stored run by {', '.join(map(repr, bad))}: group by "
                            f"{', '.join(GROUPABLE)}")
    params: list[Any] = []
    model_filter = ""
    if models is not None:
        model_filter = "AND c.model IN (SELECT unnest(?::VARCHAR[]))"
        params.append(sorted({str(m) for m in models}))
    quoted = [f'"{c}"' for c in all_cols]
    # GROUPING(a, b, ...) sets bit (k - 1 - i) when column i is *not* grouped in the row's set
    set_ids = [sum(1 << (len(all_cols) - 1 - i) for i, c in enumerate(all_cols) if c not in cols) for cols in sets]
    sql = _SQL.format(latency=_clean("latency_ms"), ttft=_clean("ttft_ms"), cost=_clean("cost_usd"),
                      model_filter=model_filter, group_select="".join(f"{q}, " for q in quoted),
                      grouping_id=f"GROUPING({', '.join(quoted)})" if quoted else "0",
                      sets=", ".join(dict.fromkeys("(" + ", ".join(f'"{c}"' for c in sorted(cols)) + ")"
                                                   for cols in sets)))  # one set per set of columns
    with store.connect() as con:
        agg = con.execute(sql, [store.resolve_run(run, con=con), *params]).df()
    return [_frame(agg[agg["_set"] == set_id] if len(agg) else agg, cols)
            for cols, set_id in zip(sets, set_ids, strict=True)]


def _frame(agg: Any, by_cols: list[str]) -> Any:
    columns = [*by_cols, *SUMMARY_COLUMNS]
    if agg.empty or int(agg["n"].sum()) == 0:
        return pd.DataFrame({c: pd.Series(dtype="object" if c in by_cols else float) for c in columns})
    rows = []
    for rec in agg.to_dict("records"):
        n_scored = int(rec["n_scored"])
        low, high = _quality_ci(n_scored, rec["_q_sum"], rec["_q_sd"], rec["_q_binary"])
        n_prompts = int(rec["n_prompts"])
        n_cost_unknown = int(rec["n_cost_unknown"])
        cost_usd = math.nan if n_cost_unknown else float(rec["_cost_sum"])
        n = int(rec["n"])
        row = {c: rec[c] for c in by_cols}
        row.update({
            "n": n, "n_ok": int(rec["n_ok"]), "n_scored": n_scored, "n_prompts": n_prompts,
            "quality": float(rec["quality"]) if n_scored else math.nan,
            "quality_ci_low": low, "quality_ci_high": high,
            "latency_p50_ms": _nth(rec["_lat_q"], 0), "latency_p95_ms": _nth(rec["_lat_q"], 1),
            "latency_p99_ms": _nth(rec["_lat_q"], 2),
            "ttft_p50_ms": _nth(rec["_ttft_q"], 0), "ttft_p95_ms": _nth(rec["_ttft_q"], 1),
            "cost_usd": cost_usd, "n_cost_unknown": n_cost_unknown,
            "cost_per_1k_prompts_usd": (cost_usd / n_prompts * 1000
                                        if n_prompts and not math.isnan(cost_usd) else math.nan),
            "input_tokens_mean": _float(rec["input_tokens_mean"]),
            "output_tokens_mean": _float(rec["output_tokens_mean"]),
            "error_rate": (n - int(rec["n_ok"])) / n if n else math.nan,
            "cache_hit_rate": float(rec["cache_hit_rate"]), "retries": int(rec["retries"]),
            "fallback_rate": float(rec["fallback_rate"]),
        })
        rows.append(row)
    rows.sort(key=lambda r: tuple(str(r[c]) for c in by_cols))
    out = pd.DataFrame(rows, columns=columns)
    for c in ("n", "n_ok", "n_scored", "n_prompts", "n_cost_unknown", "retries"):
        out[c] = out[c].astype("int64")
    return out


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)
