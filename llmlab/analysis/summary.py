"""Pure functions over results frames: per-group summaries, confidence intervals, Pareto frontier,
error breakdowns and run-to-run comparisons.

Every function here takes the *results frame* that :meth:`llmlab.Store.results` returns (one row per final
call: ``run_id, call_id, prompt_id, sample_index, category, prompt, reference, model, answered_by, status,
error_type, http_status, error_message, attempts, fallbacks_taken, latency_ms, ttft_ms, input_tokens,
output_tokens, cost_usd, cached, response, created_at_utc, quality, retry_wait_ms``) or a frame derived from
it, and returns a new pandas DataFrame; nothing is mutated, nothing is read from disk or the network.

Figures come from the recorded calls: latencies are wall-clock times measured by the runner, token counts
are those reported by the provider, and costs are those the runner recorded (prices from LiteLLM's model
cost map or a per-model override; ``NaN`` where the price is unknown, never a silent 0).

**How errors count toward quality.** A call that failed has no answer to score. When the prompt it was
asked for *had a scorer* (some call of the same ``prompt_id`` in the frame has a score), the failed call
counts as quality 0: a model that times out on a question has not answered it, and leaving such rows out
would reward models that fail on hard prompts. When no call of that prompt has a score (the prompt has no
scorer, or every call of it failed), the failed call stays unscored. See :func:`effective_quality`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from llmlab.analysis.summary_figures import SUMMARY_COLUMNS, _t975, wilson_interval
from llmlab.errors import AnalysisError

logger = logging.getLogger(__name__)

__all__ = [
    "SUMMARY_COLUMNS",
    "ResultsFrameError",
    "compare_runs",
    "effective_quality",
    "error_breakdown",
    "mean_ci",
    "pareto_frontier",
    "summarize",
    "summarize_models",
    "wilson_interval",
]


ResultsFrameError = AnalysisError  # the name this module's docstrings use


_SUMMARY_NEEDS = ("prompt_id", "sample_index", "status", "latency_ms", "cost_usd", "quality")



def _require(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise ResultsFrameError(f"{what} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ResultsFrameError(f"{what} lacks column(s) {', '.join(missing)}")


def mean_ci(values: Iterable[float]) -> tuple[float, float, float]:
    """Mean and two-sided 95 % t-interval of the mean.

    Args:
        values: numbers; NaN and None are ignored.

    Returns:
        ``(mean, low, high)`` in the unit of ``values`` (not clipped). ``(nan, nan, nan)`` for no values;
        ``(mean, nan, nan)`` for a single value (no spread to estimate).
    """
    arr = pd.to_numeric(pd.Series(list(values), dtype="object"), errors="coerce").to_numpy(dtype=float)
    arr = arr[~np.isnan(arr)]
    n = arr.size
    if n == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(arr.mean())
    if n == 1:
        return (mean, math.nan, math.nan)
    half = _t975(n - 1) * float(arr.std(ddof=1)) / math.sqrt(n)
    return (mean, mean - half, mean + half)


def _numeric(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def effective_quality(results: pd.DataFrame) -> pd.Series:
    """The quality each call counts for in summaries: its score, or 0 for a failed call of a scored prompt.

    A prompt is taken as *scored* when at least one call of its ``prompt_id`` in ``results`` has a quality.
    An error row (``status == 'error'``) of a scored prompt with no quality of its own counts as 0. Every other
    row keeps its ``quality`` (NaN stays NaN: unscored).

    Args:
        results: a results frame with columns ``prompt_id``, ``status`` and ``quality``.

    Returns:
        A float Series aligned with ``results.index``: quality in [0, 1] or NaN.

    Raises:
        ResultsFrameError: a column is missing.
    """
    _require(results, ("prompt_id", "status", "quality"), "results")
    quality = pd.Series(_numeric(results["quality"]), index=results.index, dtype=float)
    scored_prompts = set(results.loc[quality.notna(), "prompt_id"])
    is_error = results["status"].astype("object").eq("error").to_numpy(dtype=bool)
    fill = is_error & quality.isna().to_numpy() & results["prompt_id"].isin(scored_prompts).to_numpy()
    quality[fill] = 0.0
    return quality


def _quality_stats(q: np.ndarray) -> tuple[float, float, float]:
    q = q[~np.isnan(q)]
    if q.size == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(q.mean())
    if np.all((q == 0) | (q == 1)):
        low, high = wilson_interval(float(q.sum()), q.size)
    else:
        _, low, high = mean_ci(q)
        if not math.isnan(low):
            low, high = max(0.0, low), min(1.0, high)
    return (mean, low, high)


def _percentile(values: np.ndarray, pct: float) -> float:
    values = values[~np.isnan(values)]
    if values.size == 0:
        return math.nan
    return float(np.percentile(values, pct))


def _group_metrics(g: pd.DataFrame, q: np.ndarray) -> dict:
    n = len(g)
    ok = g["status"].astype("object").eq("ok").to_numpy(dtype=bool)
    n_ok = int(ok.sum())
    latency = _numeric(g["latency_ms"])[ok]
    ttft = _numeric(g["ttft_ms"])[ok] if "ttft_ms" in g.columns else np.array([], dtype=float)
    cost = _numeric(g["cost_usd"])
    n_cost_unknown = int((np.isnan(cost) & ok).sum())
    n_prompts = len(g[["prompt_id", "sample_index"]].drop_duplicates())
    cost_usd = math.nan if n_cost_unknown else float(np.nansum(cost))
    cost_per_1k = cost_usd / n_prompts * 1000 if n_prompts and not math.isnan(cost_usd) else math.nan
    quality, q_low, q_high = _quality_stats(q)

    def _mean_ok(col: str) -> float:
        if col not in g.columns or n_ok == 0:
            return math.nan
        vals = _numeric(g[col])[ok]
        vals = vals[~np.isnan(vals)]
        return float(vals.mean()) if vals.size else math.nan

    if "attempts" in g.columns:
        attempts = _numeric(g["attempts"])
        retries = int(np.nansum(np.where(attempts >= 1, attempts - 1, 0)))
    else:
        retries = 0
    if "cached" in g.columns:
        cached = g["cached"].astype("boolean").fillna(False).to_numpy(dtype=bool)
        cache_hit_rate = float(cached.mean()) if n else math.nan
    else:
        cache_hit_rate = math.nan
    if "fallbacks_taken" in g.columns:
        fb = np.nan_to_num(_numeric(g["fallbacks_taken"]), nan=0.0)
        fallback_rate = float((fb > 0).mean()) if n else math.nan
    else:
        fallback_rate = math.nan
    return {
        "n": n,
        "n_ok": n_ok,
        "n_scored": int((~np.isnan(q)).sum()),
        "n_prompts": n_prompts,
        "quality": quality,
        "quality_ci_low": q_low,
        "quality_ci_high": q_high,
        "latency_p50_ms": _percentile(latency, 50),
        "latency_p95_ms": _percentile(latency, 95),
        "latency_p99_ms": _percentile(latency, 99),
        "ttft_p50_ms": _percentile(ttft, 50),
        "ttft_p95_ms": _percentile(ttft, 95),
        "cost_usd": cost_usd,
        "n_cost_unknown": n_cost_unknown,
        "cost_per_1k_prompts_usd": cost_per_1k,
        "input_tokens_mean": _mean_ok("input_tokens"),
        "output_tokens_mean": _mean_ok("output_tokens"),
        "error_rate": (n - n_ok) / n if n else math.nan,
        "cache_hit_rate": cache_hit_rate,
        "retries": retries,
        "fallback_rate": fallback_rate,
    }


def summarize(results: Any, by: str | Sequence[str] = ("model", "category"), *, store: Any = None) -> pd.DataFrame:
    """Summarize a results frame per group (by default per model and category).

    Args:
        results: a results frame (one row per final call); or a stored run: a
            :class:`~llmlab.runner.handle.RunResult`, or a run reference (id, name, ``"last"``) in ``store``. A
            stored run is aggregated inside DuckDB (:func:`llmlab.analysis.summary_sql.summarize_run`: the same
            frame, without loading the run's rows into pandas).
        by: the column or columns to group by; each group becomes one row.
        store: the :class:`~llmlab.Store` a run reference is looked up in (default: the default store).

    Returns:
        A DataFrame sorted by the group columns, with the group columns first and then:

        - ``n``: final calls in the group (count).
        - ``n_ok``: calls with ``status == 'ok'`` (count).
        - ``n_scored``: calls counting toward quality, failed calls of scored prompts included (count).
        - ``n_prompts``: distinct ``(prompt_id, sample_index)`` pairs (count).
        - ``quality``: mean quality over scored calls, in [0, 1]; failed calls of a scored prompt count as 0
          (see :func:`effective_quality`); NaN when nothing is scored.
        - ``quality_ci_low``, ``quality_ci_high``: 95 % interval of ``quality``: the Wilson interval when every
          score is 0 or 1, otherwise a Student t-interval on the mean clipped to [0, 1] (NaN for one score).
        - ``latency_p50_ms``, ``latency_p95_ms``, ``latency_p99_ms``: percentiles of total call latency over ok
          calls, in milliseconds (cached calls count with their original latency).
        - ``ttft_p50_ms``, ``ttft_p95_ms``: percentiles of time to first token over ok calls that recorded one
          (streamed calls), in milliseconds.
        - ``cost_usd``: total cost of the group's calls in US dollars; NaN if any ok call has an unknown price.
        - ``n_cost_unknown``: ok calls whose cost is unknown (count); report these, do not read them as free.
        - ``cost_per_1k_prompts_usd``: ``cost_usd / n_prompts * 1000``, US dollars per 1,000 prompts.
        - ``input_tokens_mean``, ``output_tokens_mean``: mean tokens per ok call (tokens, provider-reported).
        - ``error_rate``: share of calls with ``status == 'error'``, in [0, 1].
        - ``cache_hit_rate``: share of calls answered from llmlab's cache, in [0, 1].
        - ``retries``: provider requests beyond the first, summed over calls with ``attempts ≥ 1`` (count).
        - ``fallback_rate``: share of calls for which at least one fallback model was tried, in [0, 1].

    Raises:
        ResultsFrameError: ``results`` lacks a needed column or a ``by`` column (for a stored run: ``by`` is not
            a column of the ``calls`` view).
        RunNotFoundError: ``results`` is a run reference that names no run in ``store``.
    """
    if not isinstance(results, pd.DataFrame):
        from llmlab.analysis.summary_sql import run_source, summarize_run

        source = run_source(results, store)
        if source is not None:
            return summarize_run(source[0], source[1], by=by)
    by_cols = [by] if isinstance(by, str) else list(by)
    _require(results, (*_SUMMARY_NEEDS, *by_cols), "results")
    columns = [*by_cols, *SUMMARY_COLUMNS]
    if results.empty:
        return pd.DataFrame({c: pd.Series(dtype="object" if c in by_cols else float) for c in columns})
    q_all = effective_quality(results).to_numpy(dtype=float)
    rows = []
    if by_cols:
        groups = results.groupby(by_cols, sort=True, dropna=False, observed=True).indices
        items = sorted(groups.items(), key=lambda kv: tuple(str(k) for k in np.atleast_1d(kv[0])))
    else:
        items = [((), np.arange(len(results)))]
    for keys, positions in items:
        keys = keys if isinstance(keys, tuple) else (keys,)
        g = results.iloc[positions]
        row = dict(zip(by_cols, keys))
        row.update(_group_metrics(g, q_all[positions]))
        rows.append(row)
    out = pd.DataFrame(rows, columns=columns)
    for c in ("n", "n_ok", "n_scored", "n_prompts", "n_cost_unknown", "retries"):
        out[c] = out[c].astype("int64")
    return out


def summarize_models(results: Any, *, store: Any = None) -> pd.DataFrame:
    """:func:`summarize` by ``model`` only: one row per model asked for, same metric columns (``results``: a
    results frame or a stored run, as for :func:`summarize`)."""
    return summarize(results, by=("model",), store=store)


def pareto_frontier(
    summary: pd.DataFrame, x: str = "cost_per_1k_prompts_usd", y: str = "quality"
) -> pd.DataFrame:
    """The rows of ``summary`` that no other row dominates (lower or equal ``x`` *and* higher or equal ``y``,
    better in at least one).

    Lower ``x`` is better (cost, latency), higher ``y`` is better (quality). Rows with NaN in ``x`` or ``y``
    (unknown price, no score) take no part. Identical points are all kept.

    Args:
        summary: any frame with columns ``x`` and ``y``, e.g. from :func:`summarize_models`.
        x: the column to minimize (default cost in US dollars per 1,000 prompts).
        y: the column to maximize (default quality in [0, 1]).

    Returns:
        The non-dominated rows (all columns kept, original index kept), sorted by ``x`` ascending.

    Raises:
        ResultsFrameError: a column is missing.
    """
    _require(summary, (x, y), "summary")
    xs = pd.to_numeric(summary[x], errors="coerce")
    ys = pd.to_numeric(summary[y], errors="coerce")
    valid = summary[xs.notna() & ys.notna()]
    if valid.empty:
        return valid.copy()
    xv = pd.to_numeric(valid[x]).to_numpy(dtype=float)
    yv = pd.to_numeric(valid[y]).to_numpy(dtype=float)
    keep = []
    for i in range(len(valid)):
        dominated = np.any((xv <= xv[i]) & (yv >= yv[i]) & ((xv < xv[i]) | (yv > yv[i])))
        keep.append(not dominated)
    front = valid[np.array(keep)]
    order = np.lexsort((-pd.to_numeric(front[y]).to_numpy(dtype=float), pd.to_numeric(front[x]).to_numpy()))
    return front.iloc[order]


def error_breakdown(results: pd.DataFrame) -> pd.DataFrame:
    """Failed calls per model and error type.

    Args:
        results: a results frame (``model``, ``status``, ``error_type`` used).

    Returns:
        One row per (model, error_type) that occurred, sorted by model then ``n`` descending:

        - ``model``: the model asked for.
        - ``error_type``: the recorded error type (``"unknown"`` when none was recorded).
        - ``n``: failed calls of that type (count).
        - ``n_calls``: all final calls of the model (count).
        - ``share``: ``n / n_calls``, the model's error rate due to this type, in [0, 1].
        - ``share_of_errors``: ``n`` over the model's failed calls, in [0, 1].

    Raises:
        ResultsFrameError: a column is missing.
    """
    _require(results, ("model", "status", "error_type"), "results")
    columns = ["model", "error_type", "n", "n_calls", "share", "share_of_errors"]
    if results.empty:
        return pd.DataFrame({c: pd.Series(dtype="object" if c in ("model", "error_type") else float)
                             for c in columns})
    n_calls = results.groupby("model", sort=True).size()
    errors = results[results["status"].astype("object").eq("error")].copy()
    if errors.empty:
        return pd.DataFrame({c: pd.Series(dtype="object" if c in ("model", "error_type") else float)
                             for c in columns})
    errors["error_type"] = errors["error_type"].astype("object").where(errors["error_type"].notna(), "unknown")
    out = errors.groupby(["model", "error_type"], sort=True).size().rename("n").reset_index()
    out["n_calls"] = out["model"].map(n_calls).astype("int64")
    out["share"] = out["n"] / out["n_calls"]
    n_errors = out.groupby("model")["n"].transform("sum")
    out["share_of_errors"] = out["n"] / n_errors
    out = out.sort_values(["model", "n", "error_type"], ascending=[True, False, True], kind="stable")
    return out[columns].reset_index(drop=True)


_COMPARE_COLUMNS = [
    "model", "model_a", "model_b", "n_matched", "n_scored",
    "quality_a", "quality_b", "delta_quality",
    "latency_p50_ms_a", "latency_p50_ms_b", "delta_latency_p50_ms",
    "cost_per_1k_prompts_usd_a", "cost_per_1k_prompts_usd_b", "delta_cost_per_1k_prompts_usd",
    "error_rate_a", "error_rate_b", "n_changed",
]


def _cost_per_1k(cost: np.ndarray, ok: np.ndarray, n: int) -> float:
    if n == 0 or bool((np.isnan(cost) & ok).any()):
        return math.nan
    return float(np.nansum(cost)) / n * 1000


def _dedupe(frame: pd.DataFrame, keys: list[str], label: str) -> pd.DataFrame:
    dup = frame.duplicated(keys, keep="last")
    if dup.any():
        logger.warning("%s has %d duplicate rows for %s; keeping the last of each", label, int(dup.sum()), keys)
        frame = frame[~dup]
    return frame


def compare_runs(results_a: pd.DataFrame, results_b: pd.DataFrame) -> pd.DataFrame:
    """Compare two runs call by call.

    Models present in both runs are matched with themselves on ``(prompt_id, sample_index, model)``. Models
    found in only one run are compared pairwise (each model only in run A against each model only in run B)
    on ``(prompt_id, sample_index)``. Only matched calls enter the figures, so both sides cover the same
    prompts. Quality follows :func:`effective_quality` (computed within each run) and is averaged over the
    matched calls scored on both sides.

    Args:
        results_a: the results frame of the first (reference) run.
        results_b: the results frame of the second run.

    Returns:
        One row per model pair, sorted by ``model``:

        - ``model``: a label, the model id when both sides are the same model, else ``"<a> → <b>"``.
        - ``model_a``, ``model_b``: the model asked for in each run.
        - ``n_matched``: calls present in both runs (count); ``n_scored``: of those, scored on both sides.
        - ``quality_a``, ``quality_b``: mean quality in [0, 1]; ``delta_quality = quality_b - quality_a``.
        - ``latency_p50_ms_a``, ``latency_p50_ms_b``: median latency of matched ok calls, in milliseconds;
          ``delta_latency_p50_ms = b - a``.
        - ``cost_per_1k_prompts_usd_a``, ``cost_per_1k_prompts_usd_b``: cost of the matched calls per 1,000
          prompts in US dollars (NaN when an ok call's price is unknown); ``delta_cost_per_1k_prompts_usd = b - a``.
        - ``error_rate_a``, ``error_rate_b``: share of matched calls that failed, in [0, 1].
        - ``n_changed``: matched calls whose answer differs between the runs (a failure counts as no answer).

    Raises:
        ResultsFrameError: a frame lacks a needed column.
    """
    needs = ("prompt_id", "sample_index", "model", "status", "quality", "latency_ms", "cost_usd", "response")
    _require(results_a, needs, "results_a")
    _require(results_b, needs, "results_b")
    keys = ["prompt_id", "sample_index"]
    cols = ["prompt_id", "sample_index", "model", "status", "latency_ms", "cost_usd", "response", "_q"]

    def prep(frame: pd.DataFrame, label: str) -> pd.DataFrame:
        frame = frame.assign(_q=effective_quality(frame) if not frame.empty else pd.Series(dtype=float))
        return _dedupe(frame[cols], ["prompt_id", "sample_index", "model"], label)

    a = prep(results_a, "results_a")
    b = prep(results_b, "results_b")
    models_a = sorted(set(a["model"].dropna()), key=str)
    models_b = sorted(set(b["model"].dropna()), key=str)
    common = [m for m in models_a if m in set(models_b)]
    only_a = [m for m in models_a if m not in set(common)]
    only_b = [m for m in models_b if m not in set(common)]
    pairs = [(m, m) for m in common] + [(ma, mb) for ma in only_a for mb in only_b]
    rows = []
    for ma, mb in pairs:
        m = a[a["model"] == ma].merge(b[b["model"] == mb], on=keys, suffixes=("_a", "_b"))
        n = len(m)
        qa, qb = m["_q_a"].to_numpy(dtype=float), m["_q_b"].to_numpy(dtype=float)
        both = ~np.isnan(qa) & ~np.isnan(qb)
        ok_a = m["status_a"].astype("object").eq("ok").to_numpy(dtype=bool)
        ok_b = m["status_b"].astype("object").eq("ok").to_numpy(dtype=bool)
        resp_a = m["response_a"].astype("object").where(ok_a & m["response_a"].notna(), None)
        resp_b = m["response_b"].astype("object").where(ok_b & m["response_b"].notna(), None)
        changed = sum(1 for x, y in zip(resp_a, resp_b) if x != y)
        quality_a = float(qa[both].mean()) if both.any() else math.nan
        quality_b = float(qb[both].mean()) if both.any() else math.nan
        lat_a = _percentile(_numeric(m["latency_ms_a"])[ok_a], 50)
        lat_b = _percentile(_numeric(m["latency_ms_b"])[ok_b], 50)
        cost_a = _cost_per_1k(_numeric(m["cost_usd_a"]), ok_a, n)
        cost_b = _cost_per_1k(_numeric(m["cost_usd_b"]), ok_b, n)
        rows.append({
            "model": str(ma) if ma == mb else f"{ma} → {mb}",
            "model_a": ma,
            "model_b": mb,
            "n_matched": n,
            "n_scored": int(both.sum()),
            "quality_a": quality_a,
            "quality_b": quality_b,
            "delta_quality": quality_b - quality_a,
            "latency_p50_ms_a": lat_a,
            "latency_p50_ms_b": lat_b,
            "delta_latency_p50_ms": lat_b - lat_a,
            "cost_per_1k_prompts_usd_a": cost_a,
            "cost_per_1k_prompts_usd_b": cost_b,
            "delta_cost_per_1k_prompts_usd": cost_b - cost_a,
            "error_rate_a": float((~ok_a).mean()) if n else math.nan,
            "error_rate_b": float((~ok_b).mean()) if n else math.nan,
            "n_changed": changed,
        })
    out = pd.DataFrame(rows, columns=_COMPARE_COLUMNS)
    if not out.empty:
        out = out.sort_values("model", key=lambda s: s.astype(str), kind="stable").reset_index(drop=True)
    return out
