"""Fitted routing policies (category table, learned per-prompt router), their JSON model files, import_results."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from llmlab.errors import PromptSetError, RoutingError
from llmlab.routing import Policy, evaluate_policy, fit_policy, import_results
from llmlab.routing.metrics import apgr, pgr_curve
from llmlab.routing.textmodel import analyze, murmurhash3_32

HARD = ["integral", "theorem", "derive", "eigenvalue", "proof", "lemma", "converge"]
EASY = ["capital", "colour", "hello", "weather", "animal", "city", "name"]


def synthetic(n: int = 400, seed: int = 0, models: tuple[str, ...] = ("small", "big")) -> pd.DataFrame:
    """Hard prompts (maths words) only the big model gets right; easy ones both do. Costs: small 1, big 10 mUSD."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        hard = i % 2 == 0
        words = rng.choice(HARD if hard else EASY, 4).tolist() + rng.choice(HARD + EASY, 2).tolist()
        text = " ".join(words) + f" number {i}."
        p_ok = {"small": 0.15 if hard else 0.9, "mid": 0.5 if hard else 0.9, "big": 0.9}
        cost = {"small": 0.001, "mid": 0.004, "big": 0.01}
        for m in models:
            rows.append({"prompt_id": f"p{seed}-{i}", "prompt": text, "model": m, "category": "maths" if hard else "chat",
                         "quality": float(rng.random() < p_ok[m]), "cost_usd": cost[m]})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def data():
    return synthetic(400, seed=0), synthetic(400, seed=1)


def test_fit_on_one_set_evaluate_on_another(data):
    train, test = data
    pol = fit_policy(train, kind="prompt", target_cost_per_1k_usd=6.0)
    assert pol.models == ["small", "big"]                   # cheapest first
    assert set(train["prompt_id"]).isdisjoint(test["prompt_id"])
    ev = evaluate_policy(pol, test)
    assert ev["n"] == 400 and set(ev) >= {"quality", "cost_per_1k_usd", "share_by_model", "n", "per_model"}
    assert sum(ev["share_by_model"].values()) == pytest.approx(1.0)
    per = ev["per_model"]
    assert per["small"]["cost_per_1k_usd"] == pytest.approx(1.0) and per["big"]["cost_per_1k_usd"] == pytest.approx(10)
    # routing the hard prompts to big: close to big's quality at about half its cost
    assert ev["quality"] > per["small"]["quality"] + 0.2
    assert ev["cost_per_1k_usd"] < 0.7 * per["big"]["cost_per_1k_usd"]


def test_learned_router_beats_random_out_of_sample(data):
    train, test = data
    pol = fit_policy(train, kind="prompt")
    wide = test.pivot(index="prompt_id", columns="model", values="quality")
    prompts = test.drop_duplicates("prompt_id").set_index("prompt_id").loc[wide.index].reset_index()
    learned = apgr(pgr_curve(pol.scores(prompts), wide["big"], wide["small"]))
    rand = apgr(pgr_curve(np.random.default_rng(0).random(len(wide)), wide["big"], wide["small"]))
    assert learned > 0.75 and abs(rand - 0.5) < 0.1 and learned > rand + 0.2


def test_target_budget_is_honoured_on_the_training_set(data):
    train, _ = data
    for budget in (2.0, 4.0, 7.0):
        pol = fit_policy(train, kind="prompt", target_cost_per_1k_usd=budget)
        assert pol.calibration["met"] and pol.calibration["cost_per_1k_usd"] <= budget + 1e-9
        assert evaluate_policy(pol, train)["cost_per_1k_usd"] <= budget * 1.1
    cheap, rich = (fit_policy(train, kind="prompt", target_cost_per_1k_usd=b) for b in (2.0, 7.0))
    assert evaluate_policy(rich, train)["quality"] > evaluate_policy(cheap, train)["quality"]


def test_min_quality_picks_the_cheapest_point_reaching_it(data):
    train, _ = data
    pol = fit_policy(train, kind="prompt", min_quality=0.85)
    assert pol.calibration["quality"] >= 0.85 and pol.calibration["cost_per_1k_usd"] < 10.0
    impossible = fit_policy(train, kind="prompt", min_quality=0.999)
    assert not impossible.calibration["met"]                  # best quality instead, and said so


def test_json_model_file_reproduces_sklearn_predictions(data, tmp_path):
    train, test = data
    pol = fit_policy(train, kind="prompt", target_cost_per_1k_usd=5.0)
    path = pol.to_json(tmp_path / "router.json")
    d = json.loads(path.read_text())                          # plain JSON
    assert d["kind"] == "prompt" and d["models"] == ["small", "big"] and d["pairs"][0]["coef"]
    assert {"columns", "idf", "blocks", "shape_mean"} <= set(d["features"])
    loaded = Policy.from_json(path)
    prompts = test.drop_duplicates("prompt_id").head(60)
    np.testing.assert_allclose(loaded.scores(prompts), pol.scores(prompts), atol=1e-9)
    assert loaded.route_many(prompts) == pol.route_many(prompts)
    assert loaded.route("integral theorem derive eigenvalue") == pol.route("integral theorem derive eigenvalue")
    assert Policy.from_json(loaded.to_json(tmp_path / "again.json")).threshold == pol.threshold


def test_pure_hash_and_analyzers_match_sklearn():
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.utils import murmurhash3_32 as sk_hash

    for s in ["", "a", "ab", "abc", "abcd", "abcde", "héllo wörld", "整数 ∫ dx", " th"]:
        assert murmurhash3_32(s.encode("utf-8")) == sk_hash(s.encode("utf-8"), seed=0, positive=False)
    text = "What is  the\nIntegral of x^2? It's 3.5, or 4!  Ünïcode too."
    for analyzer, rng in (("word", (1, 2)), ("char_wb", (3, 5))):
        ref = CountVectorizer(analyzer=analyzer, ngram_range=rng).build_analyzer()(text)
        assert analyze(text, analyzer, rng) == ref


def test_three_models_cascade(tmp_path):
    train = synthetic(300, seed=2, models=("small", "mid", "big"))
    test = synthetic(300, seed=3, models=("small", "mid", "big"))
    pol = fit_policy(train, kind="prompt", target_cost_per_1k_usd=5.0)
    assert pol.models == ["small", "mid", "big"] and len(pol.pairs) == 3
    ev = evaluate_policy(pol, test)
    assert sum(ev["share_by_model"].values()) == pytest.approx(1.0)
    assert ev["quality"] > ev["per_model"]["small"]["quality"]
    loaded = Policy.from_json(pol.to_json(tmp_path / "three.json"))
    assert loaded.route_many(test.drop_duplicates("prompt_id")) == pol.route_many(test.drop_duplicates("prompt_id"))


def test_category_policy_wraps_the_routing_table(data, tmp_path):
    train, test = data
    pol = fit_policy(train, kind="category", min_n=5)
    assert pol.route("anything", "maths") == "big" and pol.route("anything", "chat") == "small"
    assert pol.route("anything", "unseen") == pol.default
    assert pol.scores(pd.DataFrame({"category": ["maths", "chat"]})).tolist() == [
        pytest.approx(pol.gains["maths"]), pytest.approx(pol.gains["chat"])]
    ev = evaluate_policy(pol, test)
    assert ev["share_by_model"]["big"] == pytest.approx(0.5)
    budget = fit_policy(train, kind="category", target_cost_per_1k_usd=2.0)
    assert evaluate_policy(budget, train)["cost_per_1k_usd"] <= 2.0
    loaded = Policy.from_json(pol.to_json(tmp_path / "cat.json"))
    assert loaded.route_many(test.drop_duplicates("prompt_id")) == pol.route_many(test.drop_duplicates("prompt_id"))


def test_fit_policy_errors(data, tmp_path):
    train, _ = data
    with pytest.raises(RoutingError, match="kind"):
        fit_policy(train, kind="magic")
    with pytest.raises(RoutingError, match="two models"):
        fit_policy(train[train["model"] == "big"], kind="prompt")
    with pytest.raises(RoutingError, match="cost_usd"):
        fit_policy(train.drop(columns="cost_usd"), kind="prompt")
    same = train.copy()
    same["quality"] = 1.0
    with pytest.raises(RoutingError, match="nothing to learn"):
        fit_policy(same, kind="prompt")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "other"}))
    with pytest.raises(RoutingError, match="not an llmlab policy"):
        Policy.from_json(bad)


# -- import_results ---------------------------------------------------------------------------------------------

@pytest.fixture()
def store(tmp_path):
    from llmlab.store import Store

    return Store(tmp_path / "imp.duckdb")


def test_import_results_round_trip_and_pricing(store, tmp_path):
    df = pd.DataFrame({
        "prompt_id": ["a", "a", "b", "b"], "prompt": ["2+2?", "2+2?", "capital of France?", "capital of France?"],
        "model": ["gpt-4-1106-preview", "together_ai/mistralai/Mixtral-8x7B-Instruct-v0.1"] * 2,
        "quality": [1.0, 0.0, 1.0, 1.0], "input_tokens": [10, 10, 20, 20], "output_tokens": [5, 5, 3, 3],
        "category": ["maths", "maths", "geo", "geo"], "latency_ms": [900.0, 300.0, 800.0, 250.0],
        "response": ["4", "5", "Paris", "Paris"],
    })
    run_id = import_results(df, name="mine", store=store)
    res = store.results(run_id)
    assert len(res) == 4 and res["quality"].notna().all()
    r = res[(res["prompt_id"] == "a") & (res["model"] == "gpt-4-1106-preview")].iloc[0]
    assert r["cost_usd"] == pytest.approx(10 * 10e-6 + 5 * 30e-6)    # LiteLLM map: 10 / 30 USD per M tokens
    assert r["category"] == "maths" and r["latency_ms"] == pytest.approx(900.0) and r["response"] == "4"
    run = store.runs().set_index("run_id").loc[run_id]
    assert run["source"] == "import" and run["name"] == "mine"
    # the imported run feeds fit_policy / evaluate_policy directly
    pol = fit_policy(res, kind="category", min_n=1)
    assert pol.route("x", "geo").startswith("together_ai/")
    # CSV and Parquet paths, given costs, unknown-but-costed models
    given = df.drop(columns=["input_tokens", "output_tokens"]).assign(cost_usd=[0.01, 0.001] * 2,
                                                                      model=["house/a", "house/b"] * 2)
    given.to_csv(tmp_path / "r.csv", index=False)
    given.to_parquet(tmp_path / "r.parquet")
    for p in (tmp_path / "r.csv", tmp_path / "r.parquet"):
        res2 = store.results(import_results(p, store=store))
        assert sorted(res2["cost_usd"].round(6).tolist()) == [0.001, 0.001, 0.01, 0.01]


def test_import_results_errors(store, tmp_path):
    ok = pd.DataFrame({"prompt_id": ["a", "a"], "prompt": ["q", "q"], "model": ["m1", "m2"], "quality": [1, 0],
                       "cost_usd": [0.1, 0.2]})
    with pytest.raises(PromptSetError, match="missing column"):
        import_results(ok.drop(columns="quality"), store=store)
    with pytest.raises(PromptSetError, match="cost_usd"):
        import_results(ok.drop(columns="cost_usd"), store=store)
    with pytest.raises(PromptSetError, match="repeat"):
        import_results(pd.concat([ok, ok.iloc[:1]]), store=store)
    with pytest.raises(PromptSetError, match="0..1"):
        import_results(ok.assign(quality=[1.5, 0]), store=store)
    with pytest.raises(PromptSetError, match="different prompt texts"):
        import_results(ok.assign(prompt=["q", "other"]), store=store)
    with pytest.raises(PromptSetError, match="price|unknown model"):
        import_results(ok.drop(columns="cost_usd").assign(input_tokens=1, output_tokens=1,
                                                          model=["nosuchprovider/x", "nosuchprovider/y"]), store=store)
    with pytest.raises(PromptSetError, match="not found"):
        import_results(tmp_path / "nope.csv", store=store)
    with pytest.raises(PromptSetError, match="unsupported"):
        (tmp_path / "r.txt").write_text("x")
        import_results(tmp_path / "r.txt", store=store)


def test_learned_router_on_a_slice_of_real_gsm8k():
    """Real outcomes (RouteLLM's GSM8K file), 600 prompts: fit on half, beat random on the other half."""
    from llmlab.routing import routellm

    try:
        df = routellm.load_gsm8k()
    except PromptSetError:
        pytest.skip("../shared/data/routellm is not beside the repository")
    ids = df["prompt_id"].drop_duplicates().sample(600, random_state=0)
    df = df[df["prompt_id"].isin(ids)].assign(quality=lambda f: f["correct"].astype(float),
                                              cost_usd=lambda f: np.where(f["model"] == routellm.STRONG, 0.01, 0.001))
    train_ids = set(ids.iloc[:300])
    train, test = df[df["prompt_id"].isin(train_ids)], df[~df["prompt_id"].isin(train_ids)]
    pol = fit_policy(train, kind="prompt")
    wide = test.pivot(index="prompt_id", columns="model", values="quality")
    prompts = test.drop_duplicates("prompt_id").set_index("prompt_id").loc[wide.index].reset_index()
    a = apgr(pgr_curve(pol.scores(prompts), wide[routellm.STRONG], wide[routellm.WEAK]))
    assert 0.5 < a < 1.0


def test_facade_and_light_import():
    import subprocess
    import sys

    import llmlab

    assert llmlab.fit_policy is fit_policy and llmlab.evaluate_policy is evaluate_policy
    assert llmlab.import_results is import_results
    code = ("import sys, llmlab.routing; print(','.join(m for m in ('pandas', 'sklearn', 'scipy', 'litellm') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
