"""Production against the experiment: per model and category, with intervals and tests; the traffic mix.

A production run (:class:`llmlab.LiteLLMLogger`) holds one row per HTTP request to a deployment (an *attempt*:
``attempts = 1``; a retry or a fallback is a row of its own), plus a row with ``attempts = 0`` for a cache hit or
a Router failure that reached no deployment; all rows of a user request share its request id, ``trace_id``. An
experiment run holds one row per (prompt, model, sample) *after* its retries and fallbacks.
:func:`production_requests` puts production on the experiment's footing (one row per user request, its rows
grouped by ``trace_id``), so that both sides are compared like for like: every rate here counts each user request
once (an error when none of its attempts succeeded, a fallback when it took one), never each attempt. Production requests are matched to the experiment's prompts by content hash
(:func:`llmlab.prompts.prompt_id_for` of the prompt and system text; no text needs to be stored), which gives
them the experiment's category when the request carried none.

Statistics (scipy / statsmodels): rates with Wilson intervals and Fisher's exact test; latency and TTFT
percentiles with percentile-bootstrap intervals (numpy, seeded) and the Mann-Whitney U test; mean cost and
quality with t intervals and Welch's t test. ``significant`` applies Holm's correction over every test in the
frame (statsmodels ``multipletests``) at ``alpha``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from llmlab.errors import AnalysisError
from llmlab.prompts import prompt_id_for

__all__ = ["METRICS", "compare_production", "production_requests", "traffic_mix"]

#: The metrics compared, in order: (name, kind). Kinds: rate, percentile, mean.
METRICS = (
    ("latency_p50_ms", "p50"), ("latency_p95_ms", "p95"), ("ttft_p50_ms", "p50"), ("error_rate", "rate"),
    ("fallback_rate", "rate"), ("cost_per_1k_calls_usd", "mean"), ("quality", "mean"),
)
_ALL = "(all)"


def production_requests(results: pd.DataFrame) -> pd.DataFrame:
    """One row per user request from a production results frame (one row per attempt).

    Rows with the same ``trace_id`` are one request (a row without one is a request of its own). Returns a
    DataFrame with the results frame's columns used by analysis and routing: ``request_id, prompt_id,
    prompt_hash, prompt, category, model`` (the first attempt's: the routed choice; the first row's when no
    deployment was called), ``answered_by`` (the model of the successful attempt), ``status`` (ok when an
    attempt succeeded, else error: one error per request however many attempts failed), ``attempts`` (HTTP
    requests to deployments: the sum of the rows' ``attempts``), ``fallbacks_taken``, ``latency_ms`` (first
    start to last end), ``ttft_ms, input_tokens, output_tokens`` (of the successful
    attempt), ``cost_usd`` (sum over the attempts; NaN when none is priced), ``quality`` (the feedback, NaN
    without), ``sample_index`` (0), ``cached, created_at_utc, run_id``.

    Raises AnalysisError when a column the grouping needs is missing.
    """
    need = {"call_id", "model", "status", "latency_ms", "created_at_utc", "prompt_id"}
    missing = need - set(results.columns)
    if missing:
        raise AnalysisError(f"production results lack column(s) {', '.join(sorted(missing))}")
    df = results.copy()
    for c, default in (("trace_id", None), ("attempts", 1), ("fallbacks_taken", 0), ("quality", math.nan),
                       ("category", None), ("prompt", None), ("prompt_hash", None), ("ttft_ms", math.nan), ("cost_usd", math.nan),
                       ("input_tokens", math.nan), ("output_tokens", math.nan), ("cached", False),
                       ("run_id", None)):
        if c not in df.columns:
            df[c] = default
    df["request_id"] = df["trace_id"].astype(object).where(df["trace_id"].notna(), df["call_id"])
    df["created_at_utc"] = pd.to_datetime(df["created_at_utc"])
    df["_end"] = df["created_at_utc"] + pd.to_timedelta(pd.to_numeric(df["latency_ms"]).fillna(0.0), unit="ms")
    df["_ok"] = df["status"].astype(object).eq("ok")
    df = df.sort_values(["request_id", "created_at_utc"], kind="stable")
    df["_attempts"] = pd.to_numeric(df["attempts"], errors="coerce").fillna(1).astype(int)
    rows = []
    for rid, g in df.groupby("request_id", sort=False):
        called = g[g["_attempts"] > 0]
        first = called.iloc[0] if len(called) else g.iloc[0]
        ok = g[g["_ok"]]
        win = ok.iloc[-1] if len(ok) else g.iloc[-1]
        costs = pd.to_numeric(g["cost_usd"], errors="coerce")
        cat = g["category"].dropna()
        rows.append({
            "request_id": rid, "run_id": first["run_id"], "prompt_id": first["prompt_id"],
            "prompt_hash": first["prompt_hash"], "prompt": first["prompt"],
            "category": cat.iloc[0] if len(cat) else None, "model": first["model"],
            "answered_by": win["model"] if len(ok) else None, "status": "ok" if len(ok) else "error",
            "attempts": int(g["_attempts"].sum()),
            "fallbacks_taken": int(pd.to_numeric(g["fallbacks_taken"]).fillna(0).max()),
            "latency_ms": (g["_end"].max() - g["created_at_utc"].min()).total_seconds() * 1000.0,
            "ttft_ms": win["ttft_ms"] if len(ok) else math.nan,
            "input_tokens": win["input_tokens"], "output_tokens": win["output_tokens"],
            "cost_usd": costs.sum() if costs.notna().any() else math.nan,
            "quality": pd.to_numeric(g["quality"], errors="coerce").dropna().iloc[-1]
            if pd.to_numeric(g["quality"], errors="coerce").notna().any() else math.nan,
            "sample_index": 0, "cached": bool(first["cached"]), "created_at_utc": first["created_at_utc"],
        })
    return pd.DataFrame(rows, columns=["request_id", "run_id", "prompt_id", "prompt_hash", "prompt", "category",
                                       "model", "answered_by", "status", "attempts", "fallbacks_taken", "latency_ms",
                                       "ttft_ms", "input_tokens", "output_tokens", "cost_usd", "quality",
                                       "sample_index", "cached", "created_at_utc"])


# -- statistics ----------------------------------------------------------------------------------------------
def _wilson(k: int, n: int, alpha: float) -> tuple[float, float, float]:
    from statsmodels.stats.proportion import proportion_confint

    if n == 0:
        return math.nan, math.nan, math.nan
    lo, hi = proportion_confint(k, n, alpha=alpha, method="wilson")
    return k / n, float(lo), float(hi)


def _pct_boot(x: np.ndarray, q: float, alpha: float, rng: np.random.Generator, n_boot: int) -> tuple[float, ...]:
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    point = float(np.percentile(x, q))
    if len(x) < 2:
        return point, math.nan, math.nan
    sample = x if len(x) <= 5000 else rng.choice(x, 5000, replace=False)
    boots = np.percentile(rng.choice(sample, (n_boot, len(sample)), replace=True), q, axis=1)
    return point, float(np.quantile(boots, alpha / 2)), float(np.quantile(boots, 1 - alpha / 2))


def _mean_ci(x: np.ndarray, alpha: float, scale: float = 1.0) -> tuple[float, float, float]:
    from scipy import stats

    if len(x) == 0:
        return math.nan, math.nan, math.nan
    m = float(np.mean(x)) * scale
    if len(x) < 2 or float(np.std(x)) == 0.0:
        return m, m if len(x) >= 2 else math.nan, m if len(x) >= 2 else math.nan
    half = stats.t.ppf(1 - alpha / 2, len(x) - 1) * stats.sem(x) * scale
    return m, m - float(half), m + float(half)


def _p_value(kind: str, a: np.ndarray, b: np.ndarray) -> float:
    from scipy import stats

    if len(a) < 2 or len(b) < 2:
        return math.nan
    if kind == "rate":
        table = [[int(a.sum()), int(len(a) - a.sum())], [int(b.sum()), int(len(b) - b.sum())]]
        return float(stats.fisher_exact(table)[1])
    if kind in ("p50", "p95"):
        if np.all(a == a[0]) and np.all(b == a[0]):
            return 1.0
        return float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)
    if np.std(a) == 0 and np.std(b) == 0:
        return 1.0 if a[0] == b[0] else 0.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def _values(frame: pd.DataFrame, metric: str) -> np.ndarray:
    num = lambda c: pd.to_numeric(frame[c], errors="coerce") if c in frame.columns else pd.Series(dtype=float)  # noqa: E731
    if metric.startswith("latency"):
        return num("latency_ms")[frame["status"].eq("ok") & ~frame["cached"].fillna(False).astype(bool)].dropna().to_numpy(float)
    if metric.startswith("ttft"):
        return num("ttft_ms")[frame["status"].eq("ok")].dropna().to_numpy(float)
    if metric == "error_rate":
        return frame["status"].eq("error").to_numpy(float)
    if metric == "fallback_rate":
        return (num("fallbacks_taken").fillna(0) > 0).to_numpy(float)
    if metric.startswith("cost"):
        return num("cost_usd")[~frame["cached"].fillna(False).astype(bool)].dropna().to_numpy(float)
    return num("quality").dropna().to_numpy(float)


def _stat(kind: str, x: np.ndarray, alpha: float, rng: np.random.Generator, n_boot: int,
          metric: str) -> tuple[float, float, float]:
    if kind == "rate":
        return _wilson(int(x.sum()), len(x), alpha)
    if kind == "p50":
        return _pct_boot(x, 50, alpha, rng, n_boot)
    if kind == "p95":
        return _pct_boot(x, 95, alpha, rng, n_boot)
    return _mean_ci(x, alpha, 1000.0 if metric.startswith("cost") else 1.0)


def _experiment_categories(store: Any, run_id: str) -> dict[str, str]:
    """prompt content hash → category, over the experiment's prompts."""
    prompts = store.prompts(run_id)
    out = {}
    for r in prompts.itertuples():
        text = r.prompt if isinstance(r.prompt, str) else ""
        system = r.system if isinstance(r.system, str) and r.system else None
        out[prompt_id_for(text, system)] = r.category
    return out


def _load(experiment_run: Any, production_run: Any, store: Any) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    from llmlab.production.recorder import merge_spilled
    from llmlab.store import Store

    st = store if isinstance(store, Store) else Store(store)
    merge_spilled(st)
    exp_id, prod_id = st.resolve_run(experiment_run), st.resolve_run(production_run)
    exp = st.results(exp_id)
    prod = production_requests(st.results(prod_id))
    cats = _experiment_categories(st, exp_id)
    matched = prod["prompt_id"].map(cats)
    prod["matched"] = matched.notna()
    prod["category"] = prod["category"].astype(object).where(prod["category"].notna(), matched)
    return exp, prod, cats


def compare_production(experiment_run: Any, production_run: Any, *, store: Any = None, confidence: float = 0.95,
                       n_boot: int = 1000, seed: int = 0, by_category: bool = True) -> pd.DataFrame:
    """Compare a production run with the experiment it came from, per model (and per model x category).

    Args:
        experiment_run, production_run: run references (id, unique prefix, name, ``"last"``).
        store: a :class:`~llmlab.store.Store` or its path (default ``LLMLAB_DB``); spilled production segments
            are merged first.
        confidence: of every interval (0.95). n_boot: bootstrap resamples for percentiles. seed: of the bootstrap.
        by_category: add per-category rows beside each model's ``(all)`` row (category from the request's tag,
            else from the matched experiment prompt).

    Returns a long DataFrame, one row per (model, category, metric) with data on at least one side: ``model,
    category, metric`` (:data:`METRICS`: latency_p50_ms, latency_p95_ms, ttft_p50_ms, error_rate,
    fallback_rate, cost_per_1k_calls_usd, quality), ``experiment, experiment_low, experiment_high, production,
    production_low, production_high, difference`` (production - experiment), ``p_value, significant`` (Holm
    over the frame), ``n_experiment, n_production`` (calls / requests used). An experiment row is one (prompt,
    model, sample) after its retries; a production run's row is one HTTP attempt (``attempts = 1``; ``0`` for a
    cache hit or a failure that reached no deployment), grouped here into user requests by ``trace_id``
    (:func:`production_requests`): the model is the request's first attempt's (the routed choice), its error rate
    counts a request once when none of its attempts succeeded, its fallback rate once when it fell back, its cost
    sums its attempts; its quality comes from feedback only. ``frame.attrs["traffic_mix"]`` holds
    :func:`traffic_mix`.

    Raises RunNotFoundError for an unknown run; ValueError for a confidence outside (0, 1).
    """
    from statsmodels.stats.multitest import multipletests

    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    alpha = 1 - confidence
    exp, prod, _ = _load(experiment_run, production_run, store)
    rng = np.random.default_rng(seed)
    rows = []
    models = sorted(set(exp["model"]) | set(prod["model"]))
    for model in models:
        e_m, p_m = exp[exp["model"] == model], prod[prod["model"] == model]
        groups = [(_ALL, e_m, p_m)]
        if by_category:
            cats = sorted({str(c) for c in pd.concat([e_m["category"], p_m["category"]]).dropna()})
            groups += [(c, e_m[e_m["category"].astype(object) == c], p_m[p_m["category"].astype(object) == c])
                       for c in cats]
        for cat, e, p in groups:
            if e.empty and p.empty:
                continue
            for metric, kind in METRICS:
                a, b = _values(e, metric) if len(e) else np.array([]), _values(p, metric) if len(p) else np.array([])
                if len(a) == 0 and len(b) == 0:
                    continue
                ev, elo, ehi = _stat(kind, a, alpha, rng, n_boot, metric)
                pv, plo, phi = _stat(kind, b, alpha, rng, n_boot, metric)
                rows.append({"model": model, "category": cat, "metric": metric, "experiment": ev,
                             "experiment_low": elo, "experiment_high": ehi, "production": pv, "production_low": plo,
                             "production_high": phi, "difference": pv - ev, "p_value": _p_value(kind, a, b),
                             "n_experiment": len(a), "n_production": len(b)})
    out = pd.DataFrame(rows, columns=["model", "category", "metric", "experiment", "experiment_low",
                                      "experiment_high", "production", "production_low", "production_high",
                                      "difference", "p_value", "n_experiment", "n_production"])
    out["significant"] = False
    tested = out["p_value"].notna()
    if tested.any():
        out.loc[tested, "significant"] = multipletests(out.loc[tested, "p_value"], alpha=alpha, method="holm")[0]
    out.attrs["traffic_mix"] = _mix(exp, prod)
    out.attrs["confidence"] = confidence
    return out


def _mix(exp: pd.DataFrame, prod: pd.DataFrame) -> pd.DataFrame:
    from scipy import stats

    e = exp.drop_duplicates("prompt_id")["category"].astype(object).fillna("(none)").value_counts()
    p = prod["category"].astype(object).fillna("(none)").value_counts()
    cats = sorted(set(e.index) | set(p.index))
    frame = pd.DataFrame({"category": cats, "n_experiment_prompts": [int(e.get(c, 0)) for c in cats],
                          "n_production_requests": [int(p.get(c, 0)) for c in cats]})
    frame["share_experiment"] = frame["n_experiment_prompts"] / max(1, frame["n_experiment_prompts"].sum())
    frame["share_production"] = frame["n_production_requests"] / max(1, frame["n_production_requests"].sum())
    frame["difference"] = frame["share_production"] - frame["share_experiment"]
    frame["matched_to_experiment"] = [int(prod.loc[prod["category"].astype(object).fillna("(none)") == c,
                                                   "matched"].sum()) if "matched" in prod else 0 for c in cats]
    known = frame["n_experiment_prompts"] > 0
    p_value = math.nan
    if known.sum() >= 2 and frame.loc[known, "n_production_requests"].sum() > 0:
        observed = frame.loc[known, "n_production_requests"].to_numpy(float)
        expected = frame.loc[known, "share_experiment"].to_numpy(float)
        expected = expected / expected.sum() * observed.sum()
        p_value = float(stats.chisquare(observed, expected).pvalue)
    frame.attrs["chi2_p_value"] = p_value
    frame.attrs["unmatched_categories"] = [c for c in cats if not known[cats.index(c)]]
    return frame


def traffic_mix(experiment_run: Any, production_run: Any, *, store: Any = None) -> pd.DataFrame:
    """The production traffic per category against the experiment's prompt set.

    Returns a DataFrame ``category, n_experiment_prompts, n_production_requests, share_experiment,
    share_production, difference, matched_to_experiment`` (requests whose prompt is one of the experiment's, by
    content hash); ``attrs["chi2_p_value"]``: chi-square goodness of fit of production's counts over the
    experiment's categories to the experiment's shares (NaN with fewer than two categories).
    """
    exp, prod, _ = _load(experiment_run, production_run, store)
    return _mix(exp, prod)
