"""The summary of a stored run aggregated in DuckDB equals the pandas summary of its results frame.

``llmlab.summarize(run)`` / ``RunResult.summary()`` / ``routing_table(run)`` no longer load the run's rows; a
user relies on them giving the same figures as ``summarize(store.results(run))`` did.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pandas as pd
import pytest

import llmlab
from llmlab.analysis import summarize
from llmlab.analysis.summary_sql import summarize_run, summarize_run_sets
from llmlab.errors import AnalysisError, RoutingError, RunNotFoundError
from llmlab.routing import routing_table
from llmlab.runner.handle import RunResult
from llmlab.store import Store, new_call_row, utc_now

MODELS = ("m-cheap", "m-mid", "m-best")
CATEGORIES = ("code", "math", "chat", None)


def _fill(store: Store, seed: int, *, n_prompts: int = 40, samples: int = 2, graded: bool = True,
          binary: bool = True) -> str:
    """A run with errors, unscored prompts, cache hits, unknown prices, retries, fallbacks and TTFT gaps."""
    rng = random.Random(seed)
    run_id = store.create_run(name=f"fixture-{seed}", models=list(MODELS), n_prompts=n_prompts)
    prompts = [{"run_id": run_id, "prompt_id": f"p{i:03d}", "category": CATEGORIES[i % len(CATEGORIES)],
                "prompt": f"question {i}", "reference": None} for i in range(n_prompts)]
    store.add_prompts(prompts)
    calls, scores = [], []
    for i in range(n_prompts):
        scored_prompt = graded and i % 5 != 0          # every fifth prompt has no scorer
        for model in MODELS:
            for s in range(samples):
                status = "error" if rng.random() < 0.15 else "ok"
                call_id = f"{run_id}-{i}-{model}-{s}"
                ok = status == "ok"
                calls.append(new_call_row(
                    call_id=call_id, run_id=run_id, prompt_id=f"p{i:03d}", sample_index=s, model=model,
                    status=status, error_type=None if ok else "RateLimitError",
                    attempts=rng.choice([0, 1, 1, 2, 3]), fallbacks_taken=rng.choice([0, 0, 0, 1]),
                    latency_ms=rng.uniform(50, 900) if ok or rng.random() < 0.5 else None,
                    ttft_ms=rng.uniform(10, 100) if ok and rng.random() < 0.7 else None,
                    input_tokens=rng.randint(5, 50) if ok else None,
                    output_tokens=rng.randint(5, 200) if ok and rng.random() < 0.9 else None,
                    cost_usd=(None if (model == "m-mid" and rng.random() < 0.05) else rng.uniform(0, 1e-3))
                    if ok else None,
                    cached=ok and rng.random() < 0.1, response="answer" if ok else None, cache_key=call_id,
                    created_at_utc=utc_now()))
                if scored_prompt and ok:
                    score = float(rng.random() < 0.6) if binary else round(rng.random(), 3)
                    scores.append({"run_id": run_id, "call_id": call_id, "prompt_id": f"p{i:03d}",
                                   "model": model, "kind": "auto", "scorer": "check", "score": score})
    # a prompt whose every call failed: its errors stay unscored
    store.append_calls(calls)
    if scores:
        store.append_scores(scores)
    return run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    return Store(tmp_path_factory.mktemp("sumsql") / "s.duckdb")


def _assert_same(sql: pd.DataFrame, frame: pd.DataFrame) -> None:
    assert list(sql.columns) == list(frame.columns)
    assert len(sql) == len(frame) > 0
    for col in frame.columns:
        a, b = sql[col].tolist(), frame[col].tolist()
        if pd.api.types.is_float_dtype(frame[col]):
            np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=1e-9,
                                       atol=1e-12, equal_nan=True, err_msg=col)
        else:
            assert [None if (isinstance(x, float) and math.isnan(x)) else x for x in a] == \
                   [None if (isinstance(x, float) and math.isnan(x)) else x for x in b], col
    for col in ("n", "n_ok", "n_scored", "n_prompts", "n_cost_unknown", "retries"):
        assert sql[col].dtype == "int64", col


@pytest.mark.parametrize("seed,binary", [(1, True), (2, False), (3, True)])
def test_stored_summary_equals_the_frame_summary(store: Store, seed: int, binary: bool) -> None:
    run_id = _fill(store, seed, binary=binary)
    results = store.results(run_id)
    for by in (("model", "category"), ("model",), ("category",), ("model", "sample_index"), ()):
        frame = summarize(results, by=by)
        _assert_same(summarize_run(store, run_id, by=by), frame)
    # several groupings in one scan (GROUPING SETS): each equals its own summary
    sets = [("model", "category"), ("model",), ("category", "model"), ()]
    for got, by in zip(summarize_run_sets(store, run_id, sets), sets, strict=True):
        _assert_same(got, summarize(results, by=by))
    # the public entry points take the run: a RunResult, or a reference with its store
    frame = summarize(results)
    _assert_same(summarize(RunResult(run_id, store)), frame)
    _assert_same(llmlab.summarize(run_id, store=store), frame)
    _assert_same(RunResult(run_id, store).summary(by=("model", "category")), frame)


def test_the_figures_are_the_documented_ones(store: Store) -> None:
    run_id = _fill(store, 7)
    out = summarize_run(store, run_id, by=("model",))
    res = store.results(run_id)
    for row in out.to_dict("records"):
        g = res[res["model"] == row["model"]]
        ok = g[g["status"] == "ok"]
        assert row["n"] == len(g) and row["n_ok"] == len(ok)
        assert row["latency_p95_ms"] == pytest.approx(np.percentile(ok["latency_ms"].dropna(), 95))
        assert row["error_rate"] == pytest.approx((g["status"] != "ok").mean())
        assert row["cache_hit_rate"] == pytest.approx(g["cached"].mean())
        assert row["retries"] == int((g["attempts"].clip(lower=1) - 1).sum())
        unknown = int((ok["cost_usd"].isna()).sum())
        assert row["n_cost_unknown"] == unknown
        assert math.isnan(row["cost_usd"]) if unknown else row["cost_usd"] == pytest.approx(g["cost_usd"].sum())
    # failed calls of a scored prompt count as 0; the errors of prompts without a scorer stay unscored
    scored_prompts = set(res.loc[res["quality"].notna(), "prompt_id"])
    expected = int(res["quality"].notna().sum() + ((res["status"] == "error") & res["quality"].isna()
                                                  & res["prompt_id"].isin(scored_prompts)).sum())
    assert int(out["n_scored"].sum()) == expected


def test_model_filter_and_empty_and_bad_input(store: Store) -> None:
    run_id = _fill(store, 11)
    res = store.results(run_id)
    keep = ["m-cheap", "m-best"]
    _assert_same(summarize_run(store, run_id, models=keep),
                 summarize(res[res["model"].isin(keep)], by=("model", "category")))
    empty = summarize_run(store, run_id, models=["nobody"])
    assert empty.empty and list(empty.columns) == ["model", "category", *llmlab.analysis.SUMMARY_COLUMNS]
    with pytest.raises(AnalysisError, match="'prompt; DROP'"):
        summarize_run(store, run_id, by=("prompt; DROP",))
    with pytest.raises(RunNotFoundError):
        summarize("no-such-run", store=store)


def test_routing_table_of_a_stored_run_equals_the_frame_one(store: Store) -> None:
    run_id = _fill(store, 5, n_prompts=80, binary=False)
    res = store.results(run_id)
    for kwargs in ({}, {"tolerance": 0.1}, {"max_latency_p95_ms": 850.0, "min_n": 3},
                   {"models": ["m-cheap", "m-mid"]}):
        from_frame = routing_table(res, **kwargs)
        from_store = routing_table(run_id, store=store, **kwargs)
        pd.testing.assert_frame_equal(pd.DataFrame(from_store), pd.DataFrame(from_frame))
        assert from_store.attrs["routing_settings"] == from_frame.attrs["routing_settings"]
    pd.testing.assert_frame_equal(pd.DataFrame(RunResult(run_id, store).route()), pd.DataFrame(routing_table(res)))
    unscored = _fill(store, 6, graded=False)
    with pytest.raises(RoutingError, match="no call of these results has a quality score"):
        routing_table(unscored, store=store)
