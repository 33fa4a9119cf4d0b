"""Routing tables: choice rules, fallbacks, default row, projection and backtest (pure, synthetic results)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from llmlab.errors import RoutingError
from llmlab.routing import DEFAULT_CATEGORY, backtest, project, route_for, routing_table, tolerance_curve

# model: (cost per call USD, latency ms, accuracy per category)
MODELS = {
    "big": (0.010, 900.0, {"math": 0.95, "labels": 0.95}),
    "mid": (0.002, 400.0, {"math": 0.80, "labels": 0.94}),
    "small": (0.0005, 150.0, {"math": 0.40, "labels": 0.93}),
}


def make_results(n_per_cat: int = 100, seed: int = 0, models=MODELS) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for cat, i in itertools.product(("math", "labels"), range(n_per_cat)):
        pid = f"{cat}-{i}"
        for m, (cost, lat, acc) in models.items():
            # exact share of correct answers: the first round(acc*n) prompts are right
            correct = i < round(acc[cat] * n_per_cat)
            rows.append({"run_id": "r1", "call_id": f"{pid}-{m}", "prompt_id": pid, "sample_index": 0,
                         "category": cat, "model": m, "status": "ok", "error_type": None, "attempts": 1,
                         "fallbacks_taken": 0, "latency_ms": lat * (0.8 + 0.4 * rng.random()), "ttft_ms": lat / 3,
                         "input_tokens": 10, "output_tokens": 5, "cost_usd": cost, "cached": False,
                         "quality": 1.0 if correct else 0.0, "scorer": "exact", "answered_by": m,
                         "retry_wait_ms": 0.0, "response": "x"})
    return pd.DataFrame(rows)


def test_cheapest_model_within_tolerance_per_category():
    table = routing_table(make_results(), tolerance=0.03)
    assert route_for(table, "labels") == "small"      # 0.93 ≥ 0.95 − 0.03 and cheapest
    assert route_for(table, "math") == "big"          # only big is within 0.03 of 0.95
    assert list(table["category"]) == ["labels", "math", DEFAULT_CATEGORY]


def test_wider_tolerance_picks_cheaper_models():
    table = routing_table(make_results(), tolerance=0.20)
    assert route_for(table, "math") == "mid"          # 0.80 ≥ 0.95 − 0.20


def test_absolute_quality_target():
    table = routing_table(make_results(), tolerance=None, min_quality=0.79)
    assert route_for(table, "math") == "mid"
    assert route_for(table, "labels") == "small"


def test_latency_limit_excludes_slow_models():
    table = routing_table(make_results(), tolerance=0.03, max_latency_p95_ms=600)
    row = table[table["category"] == "math"].iloc[0]
    # nobody within tolerance is fast enough: best quality within the limit, said so in the reason
    assert row["model"] == "mid"
    assert "quality target" in row["reason"]
    assert row["latency_p95_ms"] <= 600


def test_fallbacks_are_ordered_and_exclude_primary():
    table = routing_table(make_results(), tolerance=0.03, max_fallbacks=2)
    for row in table.to_dict("records"):
        assert row["model"] not in row["fallbacks"]
        assert len(row["fallbacks"]) == 2
    labels = table[table["category"] == "labels"].iloc[0]
    assert labels["fallbacks"] == ["mid", "big"]      # both meet the target, cheapest first


def test_unknown_category_uses_default_row():
    table = routing_table(make_results(), tolerance=0.03)
    assert route_for(table, "never-seen") == table[table["category"] == DEFAULT_CATEGORY].iloc[0]["model"]


def test_min_n_drops_thin_categories():
    df = make_results(n_per_cat=4)
    table = routing_table(df, tolerance=0.03, min_n=5)
    assert list(table["category"]) == [DEFAULT_CATEGORY]


def test_unpriced_model_is_never_cheapest():
    df = make_results()
    df.loc[df["model"] == "small", "cost_usd"] = np.nan
    table = routing_table(df, tolerance=0.03)
    assert route_for(table, "labels") == "mid"


def test_errors_without_scores_raise_routing_error():
    df = make_results().assign(quality=np.nan)
    with pytest.raises(RoutingError, match="quality score"):
        routing_table(df)
    with pytest.raises(RoutingError):
        routing_table(make_results().iloc[0:0])


def test_projection_replays_the_table():
    df = make_results()
    table = routing_table(df, tolerance=0.03)
    proj = project(table, df)
    # labels → small (0.93), math → big (0.95): mean over equal-size categories
    assert proj["quality"] == pytest.approx((0.93 + 0.95) / 2)
    assert proj["cost_per_1k_prompts_usd"] == pytest.approx((0.0005 + 0.010) / 2 * 1000)
    assert proj["share"] == {"big": 0.5, "small": 0.5}
    assert proj["baseline_model"] == "big"
    assert proj["savings_pct"] == pytest.approx((1 - 5.25 / 10) * 100)
    assert proj["n_missing"] == 0


def test_backtest_on_held_out_half_and_tolerance_curve():
    train, test = make_results(seed=1), make_results(seed=2)
    table, proj = backtest(train, test, tolerance=0.03)
    assert set(proj["share"]) <= set(MODELS)
    curve = tolerance_curve(train, [0.0, 0.2, 1.0], test=test)
    assert list(curve["tolerance"]) == [0.0, 0.2, 1.0]
    # more tolerance never costs more, and at tolerance 1 everything goes to the cheapest model
    assert curve["cost_per_1k_prompts_usd"].is_monotonic_decreasing
    assert curve["cost_per_1k_prompts_usd"].iloc[-1] == pytest.approx(0.5)
    assert math.isclose(curve["strongest_share"].iloc[0], 1.0)
