"""The pairwise judge: both orders, position bias measured (planted in the sandbox), verdicts stored and ranked."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

import llmlab
from llmlab.errors import ModelError
from llmlab.sandbox.pairwise_judge import PairwiseJudgeProfile
from llmlab.scoring.judge import SelfPreferenceWarning
from llmlab.scoring.pairwise import (
    combine_verdicts,
    pairwise_prompt,
    parse_pairwise_verdict,
    position_bias,
)
from llmlab.store import Store

MODELS = ["sandbox/frontier", "sandbox/balanced", "sandbox/fast", "sandbox/tiny"]

pytestmark = pytest.mark.xdist_group("pairwise")  # one worker builds the module fixture once


@pytest.fixture(scope="module")
def judged_run(sandbox_server, tmp_path_factory):
    """One run of the four sandbox models on the categories where their accuracies differ most, in a module store."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMLAB_SANDBOX_API_BASE", sandbox_server.api_base)
        store = Store(tmp_path_factory.mktemp("pairwise") / "llmlab.duckdb")
        ps = llmlab.load_prompts("quickstart").filter(categories=["arithmetic", "reasoning"])
        res = llmlab.run(ps, MODELS, store=store, progress=False, concurrency=32)
        yield store, res


@pytest.fixture
def env(judged_run, sandbox):
    return judged_run


def test_prompt_and_verdict_parsing_and_combination():
    text = pairwise_prompt("Q {x}?", None, "first {a}", "second")
    assert text.startswith("[llmlab-pairwise]") and "Q {x}?" in text and "first {a}" in text and "(none given)" in text
    assert text.index("first {a}") < text.index("second")
    assert parse_pairwise_verdict("Reasoning.\nWinner: 2") == "2"
    assert parse_pairwise_verdict("**Winner**: TIE") is None or parse_pairwise_verdict("Winner: TIE") == "tie"
    assert parse_pairwise_verdict("no verdict") is None
    assert combine_verdicts("1", "2") == ("a", True)      # A first and chosen; B first and A (second) chosen
    assert combine_verdicts("2", "1") == ("b", True)
    assert combine_verdicts("1", "1") == ("tie", False)   # each order picks the first shown: inconsistent -> tie
    assert combine_verdicts("tie", "tie") == ("tie", True)
    assert combine_verdicts(None, "1") == (None, None)


def test_position_bias_on_fixed_verdicts():
    rows = [("1", "2")] * 10 + [("2", "1")] * 10 + [("1", "1")] * 8 + [("2", "2")] * 1 + [("1", "tie")] * 2
    frame = pd.DataFrame(rows, columns=["verdict_ab", "verdict_ba"]).assign(judge="j", source="judge")
    frame = pd.concat([frame, pd.DataFrame([{"judge": "j", "source": "identical", "verdict_ab": None,
                                             "verdict_ba": None}])], ignore_index=True)
    b = position_bias(frame).iloc[0]
    assert b["n_pairs"] == 31 and b["n_judged"] == 31 and b["n_inconsistent"] == 11
    assert b["flip_rate"] == pytest.approx(11 / 31)
    assert (b["lean_first"], b["lean_second"]) == (10, 1)
    from scipy.stats import binomtest
    assert b["p_value"] == pytest.approx(binomtest(10, 11, 0.5).pvalue)
    assert b["first_position_rate"] == pytest.approx((10 + 10 + 16 + 2) / (20 + 20 + 16 + 2 + 2))


def test_planted_position_bias_is_measured_and_unbiased_judge_is_not(env, sandbox, monkeypatch):
    store, res = env
    monkeypatch.setitem(sandbox.pairwise_judges, "balanced", PairwiseJudgeProfile(position_bias=0.35))
    monkeypatch.setitem(sandbox.pairwise_judges, "frontier", PairwiseJudgeProfile(position_bias=0.0))
    with pytest.warns(UserWarning, match="position bias"):
        biased = llmlab.judge_pairwise(res.run_id, judge="sandbox/balanced", store=store, n_boot=50,
                                       concurrency=32)
    b = biased.bias.iloc[0]
    assert b["biased"] and b["p_value"] < 1e-6
    assert 0.2 < b["flip_rate"] < 0.6 and b["first_position_rate"] > 0.6 and b["lean_second"] == 0
    # inconsistent pairs are ties
    flipped = biased.verdicts[biased.verdicts["consistent"] == False]  # noqa: E712 - a pandas mask
    assert len(flipped) == b["n_inconsistent"] and (flipped["winner"] == "tie").all()

    fair = llmlab.judge_pairwise(res.run_id, judge="sandbox/frontier", store=store, n_boot=50, concurrency=32)
    f = fair.bias.iloc[0]
    assert not f["biased"] and f["flip_rate"] == 0 and f["first_position_rate"] == pytest.approx(0.5)
    assert f["n_judged"] > 100


def test_ranking_recovers_the_accuracy_order_and_verdicts_are_stored(env, sandbox):
    store, res = env
    before = sandbox.request_count()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = llmlab.judge_pairwise(res.run_id, judge="sandbox/frontier", store=store, n_boot=100, concurrency=32)
    assert list(out.ranking["model"]) == MODELS          # the sandbox's accuracy order on these categories
    top, bottom = out.ranking.iloc[0], out.ranking.iloc[-1]
    assert top["ci_low"] > bottom["ci_high"]
    assert (out.ranking["ci_low"] <= out.ranking["score"]).all() and (out.ranking["score"] <= out.ranking["ci_high"]).all()
    # every pair of the four models, on every prompt; each judged pair cost two judge calls (both orders)
    assert set(zip(out.verdicts["model_a"], out.verdicts["model_b"], strict=True)) == {
        (a, b) for i, a in enumerate(sorted(MODELS)) for b in sorted(MODELS)[i + 1:]}
    judged = out.verdicts[out.verdicts["source"] == "judge"]
    assert judged["judge_call_id_ab"].notna().all() and judged["judge_call_id_ba"].notna().all()
    assert (judged["judge_call_id_ab"] != judged["judge_call_id_ba"]).all()
    identical = out.verdicts[out.verdicts["source"] == "identical"]
    assert (identical["winner"] == "tie").all() and identical["judge_call_id_ab"].isna().all()
    # the judge's calls are a recorded run, with their cost
    jrun = store.results(out.judge_run_id)
    assert len(jrun) >= len(judged) and out.cost_usd is not None
    spent = sandbox.request_count() - before
    # judged again: from the cache (no new request), nothing stored twice
    again = llmlab.judge_pairwise(res.run_id, judge="sandbox/frontier", store=store, n_boot=0, concurrency=32)
    assert sandbox.request_count() == before + spent
    stored = store.pairwise(res.run_id)
    assert len(stored[stored["judge"] == "sandbox/frontier"]) == len(out.verdicts)
    assert list(again.ranking["model"]) == MODELS


def test_two_models_self_preference_and_bad_input(env, sandbox):
    store, res = env
    with pytest.warns(SelfPreferenceWarning, match="self-preference"):
        out = llmlab.judge_pairwise(res.run_id, "sandbox/fast", "sandbox/tiny", judge="sandbox/fast", store=store,
                                    n_boot=20)
    assert out.warnings and set(out.verdicts["model_a"]) == {"sandbox/fast"}
    assert list(out.ranking["model"]) == ["sandbox/fast", "sandbox/tiny"]
    with pytest.raises(ModelError, match="both a and b"):
        llmlab.judge_pairwise(res.run_id, "sandbox/fast", judge="sandbox/frontier", store=store)
    with pytest.raises(ModelError, match="not in run"):
        llmlab.judge_pairwise(res.run_id, "sandbox/fast", "openai/gpt-4o", judge="sandbox/frontier", store=store)
    with pytest.raises(ModelError, match="exactly one judge"):
        llmlab.judge_pairwise(res.run_id, judge="@sandbox", store=store)


def test_pairwise_judge_is_configurable_over_http(sandbox, monkeypatch):
    import json
    import urllib.request

    monkeypatch.setattr(sandbox, "pairwise_judges", dict(sandbox.pairwise_judges))
    req = urllib.request.Request(sandbox.url + "/_sandbox/pairwise_judges", method="POST",
                                 data=json.dumps({"model": "fast", "position_bias": 0.9}).encode())
    with urllib.request.urlopen(req, timeout=30) as r:
        body = json.loads(r.read())
    assert body["pairwise_judges"]["fast"] == {"position_bias": 0.9, "mistake_rate": None}
    assert sandbox.pairwise_judges["fast"].position_bias == 0.9
    bad = urllib.request.Request(sandbox.url + "/_sandbox/pairwise_judges", method="POST",
                                 data=json.dumps({"model": "fast", "position_bias": 2}).encode())
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(bad, timeout=30)
    assert err.value.code == 400
    from llmlab.sandbox import RemoteSandbox

    profiles = RemoteSandbox(sandbox.url).set_pairwise_judge("tiny", position_bias=0.0, mistake_rate=0.1)
    assert profiles["tiny"] == {"position_bias": 0.0, "mistake_rate": 0.1}
    assert sandbox.pairwise_judges["tiny"] == PairwiseJudgeProfile(position_bias=0.0, mistake_rate=0.1)


def test_failed_answers_lose_without_a_call_and_failed_judge_calls_give_no_verdict(sandbox):
    store = Store()
    ps = llmlab.load_prompts("quickstart").filter(categories=["arithmetic"], limit=8)
    sandbox.inject("400", model="tiny", times=3)                  # three of tiny's answers fail (not retried)
    res = llmlab.run(ps, ["sandbox/frontier", "sandbox/tiny"], store=store, progress=False)
    failed = set(res.results[(res.results["model"] == "sandbox/tiny") & (res.results["status"] == "error")]
                 ["prompt_id"])
    assert len(failed) == 3
    sandbox.inject("400", model="balanced", times=2)              # two judge calls fail
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = llmlab.judge_pairwise(res.run_id, "sandbox/frontier", "sandbox/tiny", judge="sandbox/balanced",
                                    store=store, n_boot=0)
    v = out.verdicts.set_index("prompt_id")
    assert (v.loc[sorted(failed), "source"] == "error").all() and (v.loc[sorted(failed), "winner"] == "a").all()
    assert v.loc[sorted(failed), "judge_call_id_ab"].isna().all()
    judged = v[v["source"] == "judge"]
    no_verdict = judged[judged["verdict_ab"].isna() | judged["verdict_ba"].isna()]
    assert 1 <= len(no_verdict) <= 2 and no_verdict["winner"].isna().all()
    assert out.bias.iloc[0]["n_judged"] == len(judged) - len(no_verdict)
    assert out.ranking["n_games"].sum() == 2 * int(v["winner"].notna().sum())   # undecided pairs are not ranked
