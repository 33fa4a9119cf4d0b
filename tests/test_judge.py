"""LLM judge and human ratings: recorded as scores, precedence human > judge > deterministic, judge runs cached."""

from __future__ import annotations

import pytest

import llmlab
from llmlab.scoring.judge import judge_prompt, parse_judge_score
from llmlab.store import Store


@pytest.fixture
def store(sandbox):
    """The session sandbox (tests/conftest.py) and this test's own store."""
    return Store()


def test_judge_prompt_keeps_braces_and_parses_scores():
    text = judge_prompt("Write {json}", 'answer with {"a": 1}', None)
    assert '{"a": 1}' in text and "Write {json}" in text and "(none given)" in text
    assert parse_judge_score("Reasoning...\nScore: 7") == 7.0
    assert parse_judge_score("**Score**: 12") is None or parse_judge_score("Score: 12") == 10.0
    assert parse_judge_score("no score here") is None


def test_judge_scores_recorded_and_cached(store, sandbox):
    ps = llmlab.load_prompts("quickstart").filter(per_category=3)
    res = llmlab.run(ps, ["sandbox/tiny", "sandbox/frontier"], store=store, progress=False)
    judged = llmlab.judge(res.run_id, "sandbox/frontier", store=store)
    assert len(judged) == 36 and judged["raw_value"].between(1, 10).all()
    results = res.refresh().results
    assert results["judge_score"].notna().all()
    # quality prefers the judge over the deterministic scorer
    assert (results["quality"] == results["judge_score"]).all()
    # the judge agrees with the deterministic scorer most of the time on the sandbox
    agree = ((results["auto_score"] > 0.5) == (results["judge_score"] > 0.5)).mean()
    assert agree > 0.75
    served = sandbox.request_count()
    llmlab.judge(res.run_id, "sandbox/frontier", store=store)     # second time: from the cache
    assert sandbox.request_count() == served
    assert store.runs()["name"].str.startswith("judge of").sum() == 2


def test_human_rating_wins(store):
    res = llmlab.run(["SANDBOX_ECHO:hello"], ["sandbox/fast"], store=store, progress=False)
    call_id = res.results.iloc[0]["call_id"]
    assert llmlab.rate(call_id, 4, scale="stars", comment="fine", store=store) == pytest.approx(0.75)
    row = res.refresh().results.iloc[0]
    assert row["quality"] == pytest.approx(0.75) and row["human_comment"] == "fine"
    llmlab.rate(call_id, False, store=store)                     # the latest rating counts
    assert res.refresh().results.iloc[0]["quality"] == 0.0
    with pytest.raises(ValueError, match="1 to 5"):
        llmlab.rate(call_id, 6, scale="stars", store=store)
    with pytest.raises(ValueError, match="no call"):
        llmlab.rate("c-missing", True, store=store)
