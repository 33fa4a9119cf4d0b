"""Versioned scorers, semantic similarity through LiteLLM embeddings, and re-scoring without calling the models."""

from __future__ import annotations

import math

import pandas as pd
import pytest

import llmlab
from llmlab.errors import PromptSetError
from llmlab.sandbox.embeddings import embed_text
from llmlab.scoring import checks
from llmlab.store import Store


@pytest.fixture
def store(sandbox):
    return Store()


@pytest.fixture(autouse=True)
def _forget_test_scorers():
    before = (dict(checks.SCORERS), dict(checks.SCORER_VERSIONS))
    yield
    checks.SCORERS.clear(), checks.SCORERS.update(before[0])
    checks.SCORER_VERSIONS.clear(), checks.SCORER_VERSIONS.update(before[1])


def _cos(x, y):
    return sum(a * b for a, b in zip(x, y, strict=True))


def test_sandbox_embeddings_are_deterministic_and_similar_texts_are_close():
    a, b = embed_text("The council approved the new bike lanes"), embed_text("the council approved new bike lanes!")
    c = embed_text("Sourdough needs a long, cold proof")
    assert a == embed_text("The council approved the new bike lanes")
    assert math.isclose(_cos(a, a), 1.0) and _cos(a, b) > 0.85 and abs(_cos(a, c)) < 0.5


def test_litellm_aembedding_reaches_the_sandbox_in_both_encodings(sandbox):
    from llmlab._litellm import litellm
    from llmlab._loop import run_sync

    async def go(fmt):
        kwargs = {"encoding_format": fmt} if fmt else {}
        return await litellm().aembedding(model="openai/embed", input=["one two", "three"], api_base=sandbox.api_base,
                                          api_key="sandbox", **kwargs)

    for fmt in (None, "float"):
        resp = run_sync(go(fmt))
        vectors = [d["embedding"] for d in sorted(resp.data, key=lambda d: d["index"])]
        assert vectors[0] == pytest.approx(embed_text("one two"), abs=1e-6)
        assert vectors[1] == pytest.approx(embed_text("three"), abs=1e-6)
    assert sandbox.request_count("embed") == 2


def test_callable_scorer_versions_rescoring_and_never_calls_the_models(store, sandbox):
    res = llmlab.run(["SANDBOX_ECHO:short", "SANDBOX_ECHO:a much longer answer than the other one"],
                     ["sandbox/fast", "sandbox/tiny"], store=store, progress=False)
    served = sandbox.request_count()

    def brief(answer, reference):
        return len(answer) <= 10, f"{len(answer)} characters"

    v1 = llmlab.scorer(brief, version="1")
    out = llmlab.rescore(res.run_id, v1, store=store)
    assert sandbox.request_count() == served                       # no model was called
    assert list(out.columns) == ["call_id", "prompt_id", "model", "category", "scorer", "version", "score",
                                 "passed", "rationale"]
    assert len(out) == 4 and set(out["scorer"]) == {"brief"} and set(out["version"]) == {"1"}
    by_len = dict(zip(out["rationale"], out["score"], strict=True))
    assert by_len == {"5 characters": 1.0, f"{len('a much longer answer than the other one')} characters": 0.0}
    assert (out["passed"] == (out["score"] == 1.0)).all()
    stored = store.scores(res.run_id)
    assert {"scorer", "version", "score", "passed", "rationale"} <= set(stored.columns)
    llmlab.rescore(res.run_id, v1, store=store)                    # same version again: stored once
    assert len(store.scores(res.run_id)) == 4
    assert (res.refresh().results["auto_score"].sort_values().tolist() == [0.0, 0.0, 1.0, 1.0])

    v2 = llmlab.scorer(lambda answer, reference: 0.25, name="brief", version="2")
    llmlab.rescore(res.run_id, v2, store=store)
    versions = store.scores(res.run_id).groupby("version").size().to_dict()
    assert versions == {"1": 4, "2": 4}                            # both kept: re-scoring is tracked
    assert (res.refresh().results["quality"] == 0.25).all()        # the newest version of a scorer counts
    assert sandbox.request_count() == served


def test_registered_scorer_is_used_by_the_runner_with_its_version(store):
    llmlab.scorer(lambda answer, reference, arg: 1.0 if answer.strip() == reference else 0.0, name="same-text",
                  version="7")
    frame = pd.DataFrame({"prompt": ["SANDBOX_ECHO:yes", "SANDBOX_ECHO:no"], "reference": ["yes", "yes"],
                          "scorer": ["same-text", "same-text"]})
    res = llmlab.run(frame, ["sandbox/fast"], store=store, progress=False)
    scores = store.scores(res.run_id)
    assert set(scores["version"]) == {"7"} and sorted(scores["score"]) == [0.0, 1.0]
    assert sorted(scores["passed"]) == [False, True]
    # built-in checks carry the built-in version
    res2 = llmlab.run(llmlab.load_prompts("quickstart").filter(per_category=1), ["sandbox/fast"], store=store,
                      progress=False)
    assert set(store.scores(res2.run_id)["version"]) == {checks.BUILTIN_VERSION}


def test_spec_and_plain_function_scorers_and_bad_scorers(store):
    res = llmlab.run(llmlab.load_prompts("quickstart").filter(per_category=2), ["sandbox/frontier"], store=store,
                     progress=False)
    out = llmlab.rescore(res.run_id, "contains", store=store)
    assert set(out["scorer"]) == {"contains"} and out["score"].between(0, 1).all() and len(out) == 12

    def plain(answer, reference):
        return 1.0

    out = llmlab.rescore(res.run_id, plain, store=store)
    assert set(out["version"]) == {out["version"].iloc[0]} and out["version"].iloc[0].startswith("src-")
    with pytest.raises(PromptSetError, match="answer, reference"):
        llmlab.scorer(lambda answer: 1.0, name="one-arg")
    with pytest.raises(PromptSetError, match="returns-text.*must return a number"):
        llmlab.rescore(res.run_id, llmlab.scorer(lambda a, r: "good", name="returns-text"), store=store)
    with pytest.raises(PromptSetError, match="not a scorer"):
        llmlab.rescore(res.run_id, 42, store=store)
    with pytest.raises(PromptSetError, match="unknown scorer"):
        llmlab.rescore(res.run_id, "no-such-check", store=store)


def test_semantic_similarity_rescoring_uses_embeddings_only(store, sandbox):
    ps = llmlab.load_prompts("quickstart").filter(categories=["summarization", "extraction"])
    res = llmlab.run(ps, ["sandbox/frontier", "sandbox/tiny"], store=store, progress=False)
    chat = {m: sandbox.request_count(m) for m in ("frontier", "tiny")}
    sem = llmlab.semantic_scorer("sandbox/embed", threshold=0.8)
    out = llmlab.rescore(res.run_id, sem, store=store)
    assert {m: sandbox.request_count(m) for m in ("frontier", "tiny")} == chat    # the models were not called
    assert sandbox.request_count("embed") == sem.requests == 1                   # one batch of embeddings
    assert len(out) == 96 and out["score"].between(0, 1).all() and set(out["scorer"]) == {"semantic:sandbox/embed"}
    assert out["rationale"].str.contains("cosine similarity").all()
    mean = out.groupby("model")["score"].mean()
    assert mean["sandbox/frontier"] > mean["sandbox/tiny"] + 0.1               # the more accurate model is closer
    exact = res.results.set_index("call_id")["auto_score"]
    right = out[out["call_id"].map(exact) == 1.0]
    assert (right["score"] > 0.99).all() and right["passed"].all()             # a correct answer is the reference


def test_old_score_rows_stay_valid_after_the_migration(tmp_path):
    import duckdb

    from llmlab import migrations
    from llmlab import store as store_module

    path = tmp_path / "old.duckdb"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:2])         # a file from before the scorers
        Store(path)
    with duckdb.connect(str(path)) as con:
        con.execute("INSERT INTO scores (run_id, call_id, kind, scorer, score, raw_value, created_at_utc) VALUES "
                    "('r1', 'c1', 'auto', 'exact', 1.0, 1.0, now()), ('r1', 'c2', 'auto', 'exact', 0.0, 0.0, now())")
    store_module._migrated.discard(str(path.resolve()))
    new = Store(path)
    rows = new.sql("SELECT call_id, score, passed, version, rationale FROM scores ORDER BY call_id")
    assert rows["passed"].tolist() == [True, False] and rows["version"].isna().all() and rows["rationale"].isna().all()
    quality = new.sql("SELECT call_id, quality FROM call_quality ORDER BY call_id")
    assert quality["quality"].tolist() == [1.0, 0.0]
    assert new.sql("SELECT count(*) AS n FROM pairwise_verdicts")["n"].iloc[0] == 0
