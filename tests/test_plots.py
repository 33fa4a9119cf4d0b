"""llmlab.plots: each figure's data is checked against the frame it was built from."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmlab import analysis
from llmlab.views import plots

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(1)>"


def make_results(models=("sandbox/fast", "sandbox/smart", "openai/gpt-4o"), categories=("math", "code", "qa"),
                 prompts_per_category=6, seed=0, error_share=0.2):
    """A synthetic results frame shaped like Store.results()."""
    rng = np.random.default_rng(seed)
    error_types = ("RateLimitError", "Timeout", "BadRequestError")
    rows = []
    for m_i, model in enumerate(models):
        for c in categories:
            for p in range(prompts_per_category):
                err = bool(rng.random() < error_share)
                rows.append({
                    "run_id": "r1", "call_id": f"{model}:{c}:{p}", "prompt_id": f"{c}-{p}", "sample_index": 0,
                    "category": c, "prompt": f"question {c} {p}", "reference": None, "model": model,
                    "answered_by": None if err else model, "status": "error" if err else "ok",
                    "error_type": error_types[int(rng.integers(3))] if err else None,
                    "http_status": 429 if err else None, "error_message": "boom" if err else None,
                    "attempts": int(rng.integers(1, 4)), "fallbacks_taken": int(rng.random() < 0.1),
                    "latency_ms": float(rng.gamma(2.0, 100.0 * (m_i + 1))), "ttft_ms": float(rng.gamma(2.0, 20.0)),
                    "input_tokens": int(rng.integers(10, 100)), "output_tokens": int(rng.integers(10, 300)),
                    "cost_usd": math.nan if err else 0.001 * (m_i + 1) * (1 + p % 3),
                    "cached": bool(rng.random() < 0.1),
                    "response": None if err else f"{HOSTILE} answer {p}",
                    "created_at_utc": pd.Timestamp("2025-01-01", tz="UTC"),
                    "quality": math.nan if err else float(rng.random() < 0.3 + 0.2 * m_i), "retry_wait_ms": 0.0,
                })
    frame = pd.DataFrame(rows)
    frame["http_status"] = frame["http_status"].astype("Int64")
    return frame


def traces(fig, **meta):
    """Traces whose meta dict contains every given key/value (or whose meta equals meta['value'])."""
    out = []
    for t in fig.data:
        m = t.meta
        if "value" in meta:
            if m == meta["value"]:
                out.append(t)
        elif isinstance(m, dict) and all(m.get(k) == v for k, v in meta.items()):
            out.append(t)
    return out


def as_float(values):
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def test_importing_plots_does_not_import_plotly():
    code = ("import sys; import llmlab.views.plots, llmlab.views.report, llmlab.analysis; "
            "bad = [m for m in ('plotly', 'litellm') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


def test_latency_distribution_boxes_hold_each_models_latencies():
    results = make_results()
    fig = plots.latency_distribution(results)
    ok = results[results["status"] == "ok"]
    for model in results["model"].unique():
        mine = ok[ok["model"] == model]
        (box,) = traces(fig, panel="latency", model=model)
        assert sorted(box.y) == pytest.approx(sorted(mine["latency_ms"]))
        (ttft,) = traces(fig, panel="ttft", model=model)
        assert sorted(ttft.y) == pytest.approx(sorted(mine["ttft_ms"]))
    for p in (50, 95, 99):
        (marks,) = traces(fig, panel="latency", percentile=p)
        for model, y in zip(marks.x, marks.y):
            assert y == pytest.approx(np.percentile(ok.loc[ok["model"] == model, "latency_ms"], p))


def test_a_large_runs_latency_boxes_are_drawn_from_their_quartiles():
    results = make_results()
    ok = results[results["status"] == "ok"]
    fig = plots.latency_distribution(results, max_box_points=3)
    for model in results["model"].unique():
        values = ok.loc[ok["model"] == model, "latency_ms"].to_numpy(dtype=float)
        (box,) = traces(fig, panel="latency", model=model)
        assert box.meta["summarized"] is True and box.y is None and not box.boxpoints
        q1, median, q3 = np.percentile(values, [25, 50, 75])
        assert (box.q1[0], box.median[0], box.q3[0]) == pytest.approx((q1, median, q3))
        inside = values[(values >= q1 - 1.5 * (q3 - q1)) & (values <= q3 + 1.5 * (q3 - q1))]
        assert (box.lowerfence[0], box.upperfence[0]) == pytest.approx((inside.min(), inside.max()))
    # the percentile marks are the same either way
    full = plots.latency_distribution(results)
    for p in (50, 95, 99):
        assert traces(fig, panel="latency", percentile=p)[0].y == traces(full, panel="latency", percentile=p)[0].y


def test_cost_chart_matches_summaries():
    results = make_results()
    summary = analysis.summarize(results)
    fig = plots.cost_chart(summary)
    sm = analysis.summarize_models(results).set_index("model")
    (overall,) = traces(fig, panel="model")
    for model, y in zip(overall.x, overall.y):
        assert y == pytest.approx(sm.loc[model, "cost_per_1k_prompts_usd"])
    for model in sm.index:
        (bars,) = traces(fig, panel="category", model=model)
        expected = summary[summary["model"] == model].set_index("category")["cost_per_1k_prompts_usd"]
        assert dict(zip(bars.x, bars.y)) == pytest.approx(expected.to_dict())


def test_cost_chart_names_models_without_a_price():
    results = make_results()
    results.loc[results["model"] == "openai/gpt-4o", "cost_usd"] = math.nan
    fig = plots.cost_chart(analysis.summarize(results))
    (overall,) = traces(fig, panel="model")
    y = dict(zip(overall.x, overall.y))
    assert y["openai/gpt-4o"] is None and y["sandbox/fast"] > 0
    assert any("openai/gpt-4o" in a.text and "unknown" in a.text for a in fig.layout.annotations)


def test_tokens_chart_means():
    results = make_results()
    fig = plots.tokens_chart(results)
    ok = results[results["status"] == "ok"]
    for col in ("input_tokens", "output_tokens"):
        (bars,) = traces(fig, value=col)
        for model, y in zip(bars.x, bars.y):
            assert y == pytest.approx(ok.loc[ok["model"] == model, col].mean())


def _summary_models(rows):
    return pd.DataFrame(rows, columns=["model", "quality", "quality_ci_low", "quality_ci_high",
                                       "cost_per_1k_prompts_usd", "n_scored", "latency_p95_ms"])


def test_quality_vs_cost_points_frontier_and_routing():
    sm = _summary_models([
        ["cheap", 0.50, 0.40, 0.60, 0.10, 100, 300.0],
        ["mid", 0.70, 0.60, 0.80, 1.00, 100, 400.0],
        ["pricey-but-worse", 0.60, 0.50, 0.70, 3.00, 100, 500.0],
        ["best", 0.85, 0.80, 0.90, 5.00, 100, 900.0],
        ["no-price", 0.90, 0.85, 0.95, math.nan, 100, 200.0],
    ])
    projection = {"quality": 0.8, "cost_per_1k_prompts_usd": 1.5, "latency_p95_ms": 500.0,
                  "baseline_model": "best", "baseline_quality": 0.85, "baseline_cost_per_1k_prompts_usd": 5.0,
                  "savings_pct": 70.0}
    curve = pd.DataFrame({"tolerance": [0.1, 0.0, 0.05], "quality": [0.7, 0.85, 0.8],
                          "cost_per_1k_prompts_usd": [1.0, 5.0, 1.5]})
    fig = plots.quality_vs_cost(sm, routing_projection=projection, tolerance_curve=curve)

    (points,) = traces(fig, value="models")
    placed = sm[sm["model"] != "no-price"]
    assert list(points.text) == list(placed["model"])
    assert list(points.x) == pytest.approx(list(placed["cost_per_1k_prompts_usd"]))
    assert list(points.y) == pytest.approx(list(placed["quality"]))
    assert list(points.error_y.array) == pytest.approx(list(placed["quality_ci_high"] - placed["quality"]))
    assert list(points.error_y.arrayminus) == pytest.approx(list(placed["quality"] - placed["quality_ci_low"]))

    (front,) = traces(fig, value="frontier")
    assert list(front.text) == ["cheap", "mid", "best"]
    assert list(front.text) == list(analysis.pareto_frontier(placed)["model"])

    (route,) = traces(fig, value="routing")
    assert (route.x[0], route.y[0]) == (1.5, 0.8)
    (tol,) = traces(fig, value="tolerance")
    assert list(tol.x) == [5.0, 1.5, 1.0]  # sorted by tolerance
    assert list(np.ravel(tol.customdata)) == [0.0, 0.05, 0.1]
    assert any("no-price" in a.text for a in fig.layout.annotations)
    assert fig.layout.xaxis.type == "log"  # costs span 50x


def test_quality_heatmap_z_is_the_quality_pivot():
    results = make_results()
    summary = analysis.summarize(results)
    fig = plots.quality_heatmap(summary)
    (hm,) = fig.data
    pivot = summary.pivot(index="model", columns="category", values="quality")
    pivot = pivot.loc[list(hm.y), list(hm.x)]
    np.testing.assert_allclose(as_float(np.ravel(hm.z)), pivot.to_numpy(dtype=float).ravel())
    n = summary.pivot(index="model", columns="category", values="n_scored").loc[list(hm.y), list(hm.x)]
    np.testing.assert_allclose(np.asarray(hm.customdata)[:, :, 0], n.to_numpy(dtype=float))
    assert sorted(hm.y) == sorted(results["model"].unique())
    assert sorted(hm.x) == sorted(results["category"].unique())


def test_error_chart_rates_by_type_and_reliability_panels():
    results = make_results(error_share=0.35)
    fig = plots.error_chart(results)
    calls = results.groupby("model").size()
    errors = results[results["status"] == "error"]
    for error_type in errors["error_type"].unique():
        (bars,) = traces(fig, panel="errors", error_type=error_type)
        for model, y in zip(bars.x, bars.y):
            expected = ((errors["model"] == model) & (errors["error_type"] == error_type)).sum() / calls[model]
            assert y == pytest.approx(expected)
    (retries,) = traces(fig, panel="retries")
    for model, y in zip(retries.x, retries.y):
        assert y == (results.loc[results["model"] == model, "attempts"] - 1).sum()
    (cache,) = traces(fig, panel="rates", metric="cache_hit_rate")
    for model, y in zip(cache.x, cache.y):
        assert y == pytest.approx(results.loc[results["model"] == model, "cached"].mean())


def test_run_comparison_chart_bars_equal_the_comparison():
    a, b = make_results(seed=1), make_results(seed=2)
    cmp = analysis.compare_runs(a, b)
    fig = plots.run_comparison_chart(cmp)
    for panel, base in (("quality", "quality"), ("latency", "latency_p50_ms"), ("cost", "cost_per_1k_prompts_usd")):
        for run in ("a", "b"):
            (bars,) = traces(fig, panel=panel, run=run)
            assert list(bars.x) == list(cmp["model"])
            np.testing.assert_allclose(as_float(bars.y), cmp[f"{base}_{run}"].to_numpy(dtype=float))


def test_model_text_is_data_only():
    hostile_model = '<b onmouseover="alert(1)">evil</b>'
    results = make_results(models=("sandbox/fast", hostile_model), categories=("math", HOSTILE))
    summary = analysis.summarize(results)
    figs = [
        plots.latency_distribution(results), plots.cost_chart(summary), plots.tokens_chart(results),
        plots.quality_vs_cost(analysis.summarize_models(results)), plots.quality_heatmap(summary),
        plots.error_chart(results), plots.run_comparison_chart(analysis.compare_runs(results, results)),
    ]
    for fig in figs:
        for t in fig.data:
            template = t.hovertemplate or ""
            assert hostile_model not in template and HOSTILE not in template and "alert" not in template
        payload = fig.to_json()
        assert "answer 0" not in payload  # no response text in any chart
        html_div = fig.to_html(full_html=False, include_plotlyjs=False)
        assert "<script>alert" not in html_div and "<b onmouseover" not in html_div


def test_charts_handle_empty_and_unscored_results():
    results = make_results()
    empty = results.iloc[:0]
    unscored = results.assign(quality=math.nan, ttft_ms=math.nan)
    for frame in (empty, unscored):
        summary = analysis.summarize(frame)
        plots.latency_distribution(frame)
        plots.cost_chart(summary)
        plots.tokens_chart(frame)
        plots.error_chart(frame)
        fig = plots.quality_vs_cost(analysis.summarize_models(frame))
        assert not traces(fig, value="models")
        hm = plots.quality_heatmap(summary)
        assert len(hm.layout.annotations) >= 1


def test_error_chart_says_nothing_failed_in_one_line_instead_of_empty_panels():
    import pandas as pd

    frame = pd.DataFrame([{"run_id": "r", "call_id": f"c{i}", "prompt_id": f"p{i}", "sample_index": 0,
                           "category": "a", "model": m, "status": "ok", "error_type": None, "attempts": 1,
                           "fallbacks_taken": 0, "latency_ms": 100.0, "ttft_ms": 50.0, "input_tokens": 5,
                           "output_tokens": 5, "cost_usd": 0.001, "cached": False, "quality": 1.0}
                          for i in range(4) for m in ("x", "y")])
    fig = plots.error_chart(frame)
    assert len(fig.data) == 0 and fig.layout.height == 160
    assert [a.text for a in fig.layout.annotations] == ["no failed calls, retries, fallbacks or cache hits in 8 calls"]


def test_quality_vs_cost_keeps_end_labels_inside_and_the_star_label_away_from_the_models():
    import pandas as pd

    summary = pd.DataFrame({"model": ["a", "b", "c"], "quality": [0.5, 0.7, 0.9],
                            "quality_ci_low": [0.4, 0.6, 0.8], "quality_ci_high": [0.6, 0.8, 1.0],
                            "n_scored": [10, 10, 10], "latency_p95_ms": [100.0, 200.0, 300.0],
                            "cost_per_1k_prompts_usd": [0.01, 0.5, 2.0]})
    fig = plots.quality_vs_cost(summary, routing_projection={"quality": 0.85, "cost_per_1k_prompts_usd": 0.8,
                                                              "savings_pct": 60.0, "latency_p95_ms": 250.0})
    models = next(t for t in fig.data if t.meta == "models")
    assert list(models.textposition) == ["top right", "top center", "top left"]
    assert models.cliponaxis is False
    star = next(t for t in fig.data if t.meta == "routing")
    assert star.textposition.startswith("bottom") and star.textposition != "bottom center"
    lo, hi = fig.layout.xaxis.range                      # log axis, padded beyond both end points
    assert fig.layout.xaxis.type == "log" and 10 ** lo < 0.01 and 10 ** hi > 2.0
