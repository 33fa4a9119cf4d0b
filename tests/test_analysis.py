"""llmlab.analysis: summaries, intervals, Pareto frontier, error breakdown and run comparison."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from llmlab import analysis
from llmlab.errors import LLMLabError


def make_results(models=("sandbox/fast", "sandbox/smart"), categories=("math", "code"), prompts_per_category=5,
                 samples=1, seed=0, run_id="run-a", error_share=0.2):
    """A synthetic results frame shaped like Store.results(): one row per (model, prompt, sample)."""
    rng = np.random.default_rng(seed)
    rows = []
    for m_i, model in enumerate(models):
        for c in categories:
            for p in range(prompts_per_category):
                for s in range(samples):
                    err = bool(rng.random() < error_share)
                    rows.append({
                        "run_id": run_id, "call_id": f"{run_id}:{model}:{c}:{p}:{s}", "prompt_id": f"{c}-{p}",
                        "sample_index": s, "category": c, "prompt": f"question {c} {p}", "reference": "42",
                        "model": model, "answered_by": None if err else model,
                        "status": "error" if err else "ok",
                        "error_type": "RateLimitError" if err else None, "http_status": 429 if err else None,
                        "error_message": "rate limited" if err else None, "attempts": 3 if err else 1,
                        "fallbacks_taken": 0, "latency_ms": float(rng.gamma(2.0, 100.0 * (m_i + 1))),
                        "ttft_ms": float(rng.gamma(2.0, 20.0)), "input_tokens": int(rng.integers(10, 100)),
                        "output_tokens": int(rng.integers(10, 300)),
                        "cost_usd": None if err else 0.001 * (m_i + 1), "cached": False,
                        "response": None if err else f"answer {p} from {model}",
                        "created_at_utc": pd.Timestamp("2025-01-01", tz="UTC"),
                        "quality": math.nan if err else float(rng.random() < 0.7), "retry_wait_ms": 0.0,
                    })
    frame = pd.DataFrame(rows)
    frame["http_status"] = frame["http_status"].astype("Int64")
    frame["cost_usd"] = frame["cost_usd"].astype(float)
    return frame


def row(**overrides):
    """One results row with neutral defaults, for hand-built frames."""
    base = {
        "run_id": "r", "call_id": "c", "prompt_id": "p1", "sample_index": 0, "category": "math", "prompt": "q",
        "reference": None, "model": "m", "answered_by": "m", "status": "ok", "error_type": None,
        "http_status": None, "error_message": None, "attempts": 1, "fallbacks_taken": 0, "latency_ms": 100.0,
        "ttft_ms": 10.0, "input_tokens": 10, "output_tokens": 20, "cost_usd": 0.001, "cached": False,
        "response": "a", "created_at_utc": pd.Timestamp("2025-01-01", tz="UTC"), "quality": 1.0,
        "retry_wait_ms": 0.0,
    }
    base.update(overrides)
    return base


def frame(*rows):
    df = pd.DataFrame(list(rows))
    df["cost_usd"] = df["cost_usd"].astype(float)
    df["quality"] = df["quality"].astype(float)
    return df


# --- intervals ---------------------------------------------------------------------------------------------

def test_wilson_interval_matches_published_values():
    # Newcombe (1998), table I: 0/10 -> 0 to 0.2775; 5/10 -> 0.2366 to 0.7634 (95 %, z = 1.96).
    low, high = analysis.wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = analysis.wilson_interval(5, 10)
    assert (low, high) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    assert all(math.isnan(v) for v in analysis.wilson_interval(0, 0))
    with pytest.raises(ValueError):
        analysis.wilson_interval(11, 10)


def test_mean_ci_uses_student_t():
    mean, low, high = analysis.mean_ci([1, 2, 3, 4, 5, None, float("nan")])
    half = 2.776445 * np.std([1, 2, 3, 4, 5], ddof=1) / math.sqrt(5)  # t(0.975, df=4)
    assert mean == 3.0
    assert (low, high) == (pytest.approx(3 - half, rel=1e-5), pytest.approx(3 + half, rel=1e-5))
    # Large samples: t(0.975, df=999) = 1.962341.
    values = np.random.default_rng(1).normal(size=1000)
    _, low, high = analysis.mean_ci(values)
    expected = 1.962341 * values.std(ddof=1) / math.sqrt(1000)
    assert (high - low) / 2 == pytest.approx(expected, rel=1e-4)
    assert math.isnan(analysis.mean_ci([7.0])[1])
    assert all(math.isnan(v) for v in analysis.mean_ci([]))


# --- summarize ----------------------------------------------------------------------------------------------

def test_summarize_counts_match_the_frame():
    results = make_results(models=("a", "b", "c"), categories=("x", "y", "z"), prompts_per_category=6, samples=2)
    summary = analysis.summarize(results)
    assert len(summary) == 9
    assert list(summary.columns[:2]) == ["model", "category"]
    for r in summary.itertuples():
        g = results[(results["model"] == r.model) & (results["category"] == r.category)]
        ok = g[g["status"] == "ok"]
        assert r.n == len(g)
        assert r.n_ok == len(ok)
        assert r.error_rate == pytest.approx((g["status"] == "error").mean())
        assert r.latency_p50_ms == pytest.approx(np.percentile(ok["latency_ms"], 50))
        assert r.latency_p95_ms == pytest.approx(np.percentile(ok["latency_ms"], 95))
        assert r.latency_p99_ms == pytest.approx(np.percentile(ok["latency_ms"], 99))
        assert r.ttft_p95_ms == pytest.approx(np.percentile(ok["ttft_ms"], 95))
        assert r.input_tokens_mean == pytest.approx(ok["input_tokens"].mean())
        assert r.output_tokens_mean == pytest.approx(ok["output_tokens"].mean())
        assert r.retries == int((g["attempts"] - 1).sum())
        # Two samples per prompt: distinct (prompt_id, sample_index) pairs, not prompts, scale the cost.
        assert r.n_prompts == 12
        assert r.cost_per_1k_prompts_usd == pytest.approx(ok["cost_usd"].sum() / 12 * 1000)


def test_failed_calls_of_scored_prompts_count_as_zero():
    results = frame(
        row(model="a", prompt_id="p1", quality=1.0),
        row(model="a", prompt_id="p2", quality=1.0),
        row(model="a", prompt_id="p3", status="error", error_type="Timeout", quality=math.nan, cost_usd=math.nan),
        row(model="b", prompt_id="p3", quality=1.0),
        # p4 has no score anywhere (no scorer): its failed call stays unscored.
        row(model="a", prompt_id="p4", status="error", error_type="Timeout", quality=math.nan, cost_usd=math.nan),
        row(model="b", prompt_id="p4", quality=math.nan),
    )
    sm = analysis.summarize_models(results).set_index("model")
    assert sm.loc["a", "n"] == 4
    assert sm.loc["a", "n_scored"] == 3
    assert sm.loc["a", "quality"] == pytest.approx(2 / 3)
    assert sm.loc["b", "n_scored"] == 1
    eq = analysis.effective_quality(results)
    assert eq.iloc[2] == 0.0 and math.isnan(eq.iloc[4]) and math.isnan(eq.iloc[5])


def test_quality_interval_wilson_for_binary_t_for_graded():
    binary = frame(*[row(prompt_id=f"p{i}", quality=float(i < 7)) for i in range(10)])
    r = analysis.summarize_models(binary).iloc[0]
    assert (r.quality_ci_low, r.quality_ci_high) == pytest.approx(analysis.wilson_interval(7, 10))

    graded = frame(*[row(prompt_id=f"p{i}", quality=q) for i, q in enumerate([0.2, 0.4, 0.6, 0.8, 1.0])])
    r = analysis.summarize_models(graded).iloc[0]
    mean, low, high = analysis.mean_ci([0.2, 0.4, 0.6, 0.8, 1.0])
    assert r.quality == pytest.approx(0.6)
    assert (r.quality_ci_low, r.quality_ci_high) == (pytest.approx(low), pytest.approx(high))

    near_one = frame(*[row(prompt_id=f"p{i}", quality=q) for i, q in enumerate([0.9, 1.0, 1.0, 0.95])])
    r = analysis.summarize_models(near_one).iloc[0]
    assert r.quality_ci_high == 1.0  # t-interval clipped to [0, 1]
    assert analysis.mean_ci([0.9, 1.0, 1.0, 0.95])[2] > 1.0


def test_unknown_price_is_reported_not_zero():
    results = frame(
        row(model="priced", prompt_id="p1", cost_usd=0.002),
        row(model="priced", prompt_id="p2", cost_usd=0.004),
        # An error row with no cost does not make the price unknown.
        row(model="priced", prompt_id="p3", status="error", cost_usd=math.nan, quality=math.nan),
        row(model="unpriced", prompt_id="p1", cost_usd=math.nan),
        row(model="unpriced", prompt_id="p2", cost_usd=0.001),
    )
    sm = analysis.summarize_models(results).set_index("model")
    assert sm.loc["priced", "cost_usd"] == pytest.approx(0.006)
    assert sm.loc["priced", "cost_per_1k_prompts_usd"] == pytest.approx(0.006 / 3 * 1000)
    assert sm.loc["priced", "n_cost_unknown"] == 0
    assert math.isnan(sm.loc["unpriced", "cost_usd"])
    assert math.isnan(sm.loc["unpriced", "cost_per_1k_prompts_usd"])
    assert sm.loc["unpriced", "n_cost_unknown"] == 1


def test_retries_cache_and_fallback_rates():
    results = frame(
        row(prompt_id="p1", attempts=1),
        row(prompt_id="p2", attempts=4, fallbacks_taken=1, answered_by="other"),
        row(prompt_id="p3", attempts=0, cached=True),  # cache hit: no request, no retry
        row(prompt_id="p4", attempts=0, status="error", error_type="cancelled", quality=math.nan),
    )
    r = analysis.summarize_models(results).iloc[0]
    assert r.retries == 3
    assert r.cache_hit_rate == pytest.approx(0.25)
    assert r.fallback_rate == pytest.approx(0.25)
    assert r.error_rate == pytest.approx(0.25)


def test_summarize_groups_and_errors():
    results = make_results()
    by_cat = analysis.summarize(results, by="category")
    assert list(by_cat["category"]) == ["code", "math"]
    assert by_cat["n"].sum() == len(results)
    with pytest.raises(analysis.ResultsFrameError, match="nope"):
        analysis.summarize(results, by=("nope",))
    with pytest.raises(LLMLabError):
        analysis.summarize(results.drop(columns=["latency_ms"]))
    empty = analysis.summarize(results.iloc[:0])
    assert empty.empty and "quality" in empty.columns


# --- Pareto frontier ------------------------------------------------------------------------------------------

def test_pareto_frontier_keeps_exactly_the_non_dominated_rows():
    s = pd.DataFrame({
        "model": ["A", "B", "C", "D", "E", "F"],
        "cost_per_1k_prompts_usd": [1.0, 2.0, 3.0, 0.5, math.nan, 2.0],
        "quality": [0.5, 0.7, 0.6, 0.4, 0.9, 0.65],
    })
    front = analysis.pareto_frontier(s)
    assert list(front["model"]) == ["D", "A", "B"]


def test_pareto_frontier_definition_on_random_points():
    rng = np.random.default_rng(7)
    s = pd.DataFrame({"model": [f"m{i}" for i in range(40)], "cost_per_1k_prompts_usd": rng.random(40),
                      "quality": rng.random(40)})
    front = analysis.pareto_frontier(s)
    x, y = s["cost_per_1k_prompts_usd"].to_numpy(), s["quality"].to_numpy()

    def dominated(i):
        return bool(np.any((x <= x[i]) & (y >= y[i]) & ((x < x[i]) | (y > y[i]))))

    assert set(front.index) == {i for i in range(40) if not dominated(i)}
    assert front["cost_per_1k_prompts_usd"].is_monotonic_increasing


# --- error breakdown ------------------------------------------------------------------------------------------

def test_error_breakdown_counts_and_shares():
    results = frame(
        row(model="a", prompt_id="p1"),
        row(model="a", prompt_id="p2", status="error", error_type="Timeout"),
        row(model="a", prompt_id="p3", status="error", error_type="Timeout"),
        row(model="a", prompt_id="p4", status="error", error_type=None),
        row(model="b", prompt_id="p1", status="error", error_type="RateLimitError", http_status=429),
        row(model="b", prompt_id="p2"),
    )
    eb = analysis.error_breakdown(results)
    got = {(r.model, r.error_type): (r.n, r.share, r.share_of_errors) for r in eb.itertuples()}
    assert got == {
        ("a", "Timeout"): (2, pytest.approx(0.5), pytest.approx(2 / 3)),
        ("a", "unknown"): (1, pytest.approx(0.25), pytest.approx(1 / 3)),
        ("b", "RateLimitError"): (1, pytest.approx(0.5), pytest.approx(1.0)),
    }
    assert analysis.error_breakdown(results[results["status"] == "ok"]).empty


# --- compare_runs ---------------------------------------------------------------------------------------------

def test_compare_runs_same_models():
    a = make_results(models=("m1", "m2"), seed=3)
    b = a.copy()
    changed = b.index[(b["model"] == "m1") & (b["status"] == "ok")][:2]
    b.loc[changed, "response"] = "a different answer"
    b.loc[b["model"] == "m2", "latency_ms"] *= 2
    b = b[~((b["model"] == "m1") & (b["prompt_id"] == "code-0"))]  # a prompt missing from run B
    cmp = analysis.compare_runs(a, b).set_index("model")
    assert list(cmp.index) == ["m1", "m2"]
    assert cmp.loc["m1", "n_matched"] == (a["model"] == "m1").sum() - 1
    assert cmp.loc["m1", "n_changed"] == 2
    assert cmp.loc["m2", "n_changed"] == 0
    assert cmp.loc["m2", "delta_quality"] == 0
    ok2 = a[(a["model"] == "m2") & (a["status"] == "ok")]["latency_ms"]
    assert cmp.loc["m2", "latency_p50_ms_a"] == pytest.approx(np.median(ok2))
    assert cmp.loc["m2", "delta_latency_p50_ms"] == pytest.approx(np.median(ok2))


def test_compare_runs_different_models_pairs_on_prompt_and_sample():
    a = frame(row(model="old", prompt_id="p1", quality=0.0, response="x", latency_ms=100.0, cost_usd=0.001),
              row(model="old", prompt_id="p2", quality=1.0, response="y", latency_ms=300.0, cost_usd=0.001),
              row(model="old", prompt_id="p9", quality=1.0))
    b = frame(row(model="new", prompt_id="p1", quality=1.0, response="x", latency_ms=50.0, cost_usd=0.003),
              row(model="new", prompt_id="p2", quality=1.0, response="z", latency_ms=50.0, cost_usd=0.003))
    cmp = analysis.compare_runs(a, b)
    assert len(cmp) == 1
    r = cmp.iloc[0]
    assert (r.model_a, r.model_b, r.n_matched, r.n_changed) == ("old", "new", 2, 1)
    assert r.quality_a == pytest.approx(0.5) and r.quality_b == pytest.approx(1.0)
    assert r.delta_quality == pytest.approx(0.5)
    assert r.cost_per_1k_prompts_usd_a == pytest.approx(1.0)
    assert r.delta_cost_per_1k_prompts_usd == pytest.approx(2.0)
    assert r.latency_p50_ms_a == pytest.approx(200.0)
    assert "old" in r.model and "new" in r.model
