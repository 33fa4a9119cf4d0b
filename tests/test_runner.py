"""The fan-out against the sandbox's fault injection: retries, backoff, Retry-After, non-retryable errors,
fallbacks, rate limits, streaming and the one-row-per-call invariant.

Each test asserts three sides of the same story: the final row (status, error_type, http_status, attempts,
attempt_log), the run's counters, and the sandbox's own count of the requests it served.
"""

from __future__ import annotations

import json

import pytest

import llmlab
from llmlab.runner import RateLimiter, RunOptions, classify_error, fallbacks_from_config

# Generous client timeout (the machine is shared and loaded); the ``timeout`` fault gets a short one.
FAST = dict(progress=False, timeout_s=5.0, backoff_base_s=0.01, backoff_max_s=0.05)


def _fast(kind: str) -> dict:
    return {**FAST, "timeout_s": 0.8} if kind == "timeout" else FAST

# fault kind -> (error_type, http_status) recorded for it, whichever API the model speaks
RETRYABLE = {
    "500": ("InternalServerError", 500),
    "502": ("BadGatewayError", 502),
    "503": ("ServiceUnavailableError", 503),
    "504": ("Timeout", 504),
    "timeout": ("Timeout", None),
    "reset": ("APIConnectionError", None),
    "malformed": ("MalformedResponseError", None),
    "cut_stream": ("StreamCutError", None),
    "429": ("RateLimitError", 429),
}
NOT_RETRYABLE = {
    "400": ("BadRequestError", 400),
    "401": ("AuthenticationError", 401),
    "403": ("PermissionDeniedError", 403),
    "404": ("NotFoundError", 404),
    "context_window": ("ContextWindowExceededError", 400),
}
MODELS = ["sandbox/frontier", "sandbox/balanced"]  # LiteLLM's openai and anthropic providers


def _only_row(res):
    df = res.results
    assert len(df) == 1
    row = df.iloc[0].to_dict()
    row["attempt_log"] = json.loads(row["attempt_log"])
    return row


def _na(v):
    return None if v is None or v != v else v


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("kind", list(RETRYABLE))
def test_a_transient_retryable_fault_is_retried_once_and_answered(sandbox, kind, model):
    sandbox.inject(kind, model=model, times=1, retry_after_s=0.05, hang_s=5)
    res = llmlab.run([f"Describe a river delta ({kind})."], [model], **_fast(kind))
    row = _only_row(res)
    etype, status = RETRYABLE[kind]
    assert row["status"] == "ok" and row["response"]
    assert row["attempts"] == 2, json.dumps(row["attempt_log"])
    first, second = row["attempt_log"]
    assert (first["status"], first["error_type"], first.get("http_status")) == ("error", etype, status)
    assert second["status"] == "ok" and second["model"] == model
    assert first["wait_ms"] > 0 and row["retry_wait_ms"] == pytest.approx(first["wait_ms"], abs=1)
    assert row["error_type"] is None and row["answered_by"] == model
    assert sandbox.stats()["by_model_outcome"][model.split("/")[1]] == {kind: 1, "ok": 1}
    assert res.stats.requests == 2 and res.stats.retries == 1


@pytest.mark.parametrize("kind", list(RETRYABLE))
def test_a_persistent_retryable_fault_stops_at_max_attempts(sandbox, kind):
    model = MODELS[list(RETRYABLE).index(kind) % 2]
    sandbox.inject(kind, model=model, retry_after_s=0.02, hang_s=5)
    res = llmlab.run([f"Name three rivers ({kind})."], [model], max_attempts=3, **_fast(kind))
    row = _only_row(res)
    etype, status = RETRYABLE[kind]
    assert (row["status"], row["error_type"], _na(row["http_status"])) == ("error", etype, status)
    assert row["response"] is None, "a failed call never records a (partial) answer"
    assert row["attempts"] == 3 and len(row["attempt_log"]) == 3
    assert row["attempt_log"][-1]["gave_up"] == "max_attempts"
    assert sandbox.stats()["by_model_outcome"][model.split("/")[1]] == {kind: 3}


@pytest.mark.parametrize("kind", list(NOT_RETRYABLE))
def test_non_retryable_errors_are_never_retried(sandbox, kind):
    model = MODELS[list(NOT_RETRYABLE).index(kind) % 2]
    sandbox.inject(kind, model=model)
    res = llmlab.run([f"Hello ({kind})"], [model], max_attempts=5, **FAST)
    row = _only_row(res)
    etype, status = NOT_RETRYABLE[kind]
    assert (row["status"], row["error_type"], row["http_status"]) == ("error", etype, status)
    assert row["attempts"] == 1 and row["retry_wait_ms"] == 0
    assert row["attempt_log"][0]["gave_up"] == "not retryable"
    assert sandbox.request_count(model) == 1


def test_retry_after_is_honoured_for_the_whole_deployment(sandbox):
    ra = 0.5
    sandbox.inject("429", model="fast", times=1, retry_after_s=ra)
    res = llmlab.run([f"Count to {i}." for i in range(3)], ["sandbox/fast"], per_model_concurrency=1, **FAST)
    assert (res.results["status"] == "ok").all()
    log = [e for e in sandbox.request_log if e["model"] == "fast"]
    (t429,) = [e["received_at_monotonic_s"] for e in log if e["outcome"] == "429"]
    later = [e["received_at_monotonic_s"] for e in log if e["received_at_monotonic_s"] > t429]
    assert len(later) == 3, "the rate-limited call and the two others were all sent afterwards"
    assert min(later) - t429 >= ra, "no request reached the deployment before its Retry-After passed"
    limited = [json.loads(a)[0] for a in res.results["attempt_log"] if json.loads(a)[0]["status"] == "error"]
    assert limited[0]["retry_after_s"] == ra and limited[0]["wait_ms"] >= ra * 1000


def test_a_retry_after_beyond_max_retry_wait_ends_the_retries(sandbox):
    sandbox.inject("429", model="tiny", retry_after_s=5)
    res = llmlab.run(["Hello"], ["sandbox/tiny"], max_retry_wait_s=1.0, **FAST)
    row = _only_row(res)
    assert (row["status"], row["error_type"], row["http_status"], row["attempts"]) == ("error", "RateLimitError", 429, 1)
    assert row["attempt_log"][0]["gave_up"] == "max_retry_wait_s"
    assert sandbox.request_count("tiny") == 1


def test_backoff_is_exponential_with_jitter(sandbox):
    sandbox.inject("500", model="fast")
    base = 0.02
    res = llmlab.run(["Hello"], ["sandbox/fast"], max_attempts=4, backoff_base_s=base, backoff_max_s=10,
                     progress=False)
    waits = [e["wait_ms"] / 1000 for e in _only_row(res)["attempt_log"][:-1]]
    assert len(waits) == 3
    for n, w in enumerate(waits, start=1):
        nominal = base * 2 ** (n - 1)
        assert 0.5 * nominal <= w < 1.5 * nominal


def test_backoff_is_capped(sandbox):
    sandbox.inject("503", model="fast")
    res = llmlab.run(["Hello"], ["sandbox/fast"], max_attempts=4, backoff_base_s=0.03, backoff_max_s=0.03,
                     progress=False)
    waits = [e["wait_ms"] / 1000 for e in _only_row(res)["attempt_log"][:-1]]
    assert all(0.015 <= w < 0.045 for w in waits)


# -- streaming -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", MODELS)
def test_streaming_records_ttft_and_the_whole_answer(sandbox, model):
    deltas: list[tuple[str, str]] = []
    streamed = llmlab.run(["Write a paragraph about rivers."], [model], on_delta=lambda cid, d: deltas.append((cid, d)),
                          **FAST)
    row = _only_row(streamed)
    assert 0 < row["ttft_ms"] <= row["latency_ms"]
    assert "".join(d for _, d in deltas) == row["response"]
    assert {cid for cid, _ in deltas} == {row["call_id"]}
    plain = _only_row(llmlab.run(["Write a paragraph about rivers."], [model], stream=False, cache=False, **FAST))
    assert plain["response"] == row["response"] and _na(plain["ttft_ms"]) is None


def test_a_cut_stream_is_never_recorded_as_a_short_answer(sandbox):
    sandbox.inject("cut_stream", model="frontier")
    row = _only_row(llmlab.run(["Write a paragraph about rivers."], ["sandbox/frontier"], max_attempts=2, **FAST))
    assert (row["status"], row["error_type"], row["response"]) == ("error", "StreamCutError", None)
    assert "stream broke" in row["error_message"]


# -- fallbacks -----------------------------------------------------------------------------------------------
def test_fallback_after_retries_records_who_answered(sandbox):
    sandbox.inject("503", model="frontier")
    res = llmlab.run(["What is 2+2?"], ["sandbox/frontier"], max_attempts=2,
                     fallbacks={"sandbox/frontier": ["sandbox/balanced", "sandbox/fast"]}, **FAST)
    row = _only_row(res)
    assert (row["status"], row["model"], row["answered_by"], row["fallbacks_taken"]) == (
        "ok", "sandbox/frontier", "sandbox/balanced", 1)
    assert [e["model"] for e in row["attempt_log"]] == ["sandbox/frontier"] * 2 + ["sandbox/balanced"]
    assert row["attempts"] == 3
    assert sandbox.stats()["by_model"] == {"frontier": 2, "balanced": 1}
    assert res.stats.fallbacks == 1


def test_a_non_retryable_error_falls_back_at_once(sandbox):
    sandbox.inject("401", model="frontier")
    row = _only_row(llmlab.run(["What is 2+2?"], ["sandbox/frontier"], fallbacks={"sandbox/frontier": ["@cheap"]},
                               **FAST))
    assert (row["status"], row["answered_by"], row["attempts"], row["fallbacks_taken"]) == (
        "ok", "sandbox/tiny", 2, 1)
    assert sandbox.stats()["by_model"] == {"frontier": 1, "tiny": 1}


def test_when_the_whole_chain_fails_the_row_says_so(sandbox):
    sandbox.inject("500", model="*")
    row = _only_row(llmlab.run(["What is 2+2?"], ["sandbox/frontier"], max_attempts=2,
                               fallbacks={"sandbox/frontier": ["sandbox/balanced", "sandbox/fast"]}, **FAST))
    assert (row["status"], row["error_type"], row["answered_by"], row["fallbacks_taken"]) == (
        "error", "InternalServerError", None, 2)
    assert row["attempts"] == 6 == sandbox.request_count()


def test_fallbacks_from_an_exported_routing_config(sandbox, tmp_path):
    import pandas as pd

    from llmlab.routing.litellm_config import write_litellm_config

    table = pd.DataFrame([
        {"category": "arithmetic", "model": "sandbox/frontier", "fallbacks": ["sandbox/balanced"]},
        {"category": "classification", "model": "sandbox/tiny", "fallbacks": ["sandbox/fast"]},
        {"category": "default", "model": "sandbox/fast", "fallbacks": ["sandbox/frontier", "sandbox/balanced"]},
    ])
    path = write_litellm_config(table, tmp_path / "routing.yaml")
    chains = fallbacks_from_config(path)
    # LiteLLM applies one global chain (the default row's fallbacks first, then the others'), minus the model
    assert chains == {
        "sandbox/frontier": ["sandbox/balanced", "sandbox/fast"],
        "sandbox/tiny": ["sandbox/frontier", "sandbox/balanced", "sandbox/fast"],
        "sandbox/fast": ["sandbox/frontier", "sandbox/balanced"],
    }
    import yaml

    assert fallbacks_from_config(yaml.safe_load(path.read_text())) == chains
    sandbox.inject("404", model="tiny")
    row = _only_row(llmlab.run(["Is this spam?"], ["sandbox/tiny"], fallbacks=str(path), **FAST))
    assert (row["status"], row["answered_by"]) == ("ok", "sandbox/frontier")


def test_fallbacks_from_config_rejects_what_is_not_a_config(tmp_path):
    bad = tmp_path / "x.yaml"
    bad.write_text("just: text\n")
    with pytest.raises(llmlab.RoutingError):
        fallbacks_from_config(bad)
    with pytest.raises(llmlab.RoutingError):
        fallbacks_from_config(tmp_path / "missing.yaml")


# -- rate limits ---------------------------------------------------------------------------------------------
def test_rpm_budget_queues_requests_instead_of_bursting(sandbox):
    rpm, window_s = 3, 0.5
    res = llmlab.run([f"Fact {i} about rivers." for i in range(9)], ["sandbox/fast"],
                     rate_limits={"sandbox/fast": {"rpm": rpm}}, rate_limit_window_s=window_s, **FAST)
    assert (res.results["status"] == "ok").all()
    times = sorted(e["received_at_monotonic_s"] for e in sandbox.request_log)
    assert len(times) == 9
    # a little slack for the time between llmlab's budget check and the sandbox receiving the request
    span = window_s - 0.05
    worst = max(sum(1 for u in times if t <= u < t + span) for t in times)
    assert worst <= rpm
    assert res.stats.queued_s > 0


def test_rate_limiter_counts_requests_and_tokens_over_a_sliding_window():
    lim = RateLimiter(rpm=2, tpm=1000, window_s=10)
    assert lim.try_acquire(100, now=0.0) is not None
    assert lim.try_acquire(100, now=1.0) is not None
    assert lim.try_acquire(100, now=2.0) is None          # a third request inside the window
    assert lim.wait_s(100, now=2.0) == pytest.approx(8.0)  # the first leaves the window at t=10
    assert lim.try_acquire(100, now=10.0) is not None

    tok = RateLimiter(tpm=1000, window_s=10)
    t1 = tok.try_acquire(600, now=0.0)
    assert tok.try_acquire(600, now=1.0) is None           # 1200 tokens > 1000
    assert tok.wait_s(600, now=1.0) == pytest.approx(9.0)
    tok.settle(t1, 300)                                    # the first request used only 300 tokens
    assert tok.try_acquire(600, now=1.0) is not None
    big = RateLimiter(tpm=100, window_s=10)
    assert big.try_acquire(500, now=0.0) is not None       # larger than the budget: alone in an empty window
    assert big.try_acquire(1, now=5.0) is None


def test_rate_limit_options_are_validated():
    with pytest.raises(ValueError, match="unknown keys"):
        RunOptions(rate_limits={"sandbox/fast": {"rps": 3}})
    with pytest.raises(ValueError):
        RunOptions(rate_limit_window_s=0)


# -- one final row per call ----------------------------------------------------------------------------------
def test_every_call_ends_as_exactly_one_row_whatever_fails(sandbox):
    for kind in ("500", "reset", "cut_stream", "malformed", "401", "429"):
        sandbox.inject(kind, rate=0.15, retry_after_s=0.02)
    res = llmlab.run([f"Tell me about lake {i}." for i in range(8)], ["sandbox/frontier", "sandbox/tiny"], samples=2,
                     temperature=0.7, max_attempts=2, fallbacks={"sandbox/frontier": ["sandbox/fast"]}, **FAST)
    df = res.results
    assert len(df) == 8 * 2 * 2 == res.stats.planned
    assert df.groupby(["prompt_id", "model", "sample_index"]).size().eq(1).all()
    assert df["call_id"].is_unique
    assert set(df["status"]) <= {"ok", "error"}
    assert int(df["attempts"].sum()) == sandbox.request_count() == res.stats.requests


def test_a_batch_written_twice_after_an_ambiguous_failure_leaves_no_duplicate(sandbox, monkeypatch):
    from llmlab.store import Store

    real = Store.append_batch
    failures = []

    def commit_then_fail(self, **tables):
        real(self, **tables)
        if not failures:
            failures.append(len(tables["calls"]))
            raise OSError("simulated: the insert committed but the caller saw an error")

    monkeypatch.setattr(Store, "append_batch", commit_then_fail)  # the run writer's one write per flush
    res = llmlab.run([f"Question {i}" for i in range(6)], ["sandbox/fast"], **FAST)
    assert failures, "the failure was exercised"
    df = res.results
    assert len(df) == 6 and df["call_id"].is_unique


async def test_closing_the_writer_during_a_write_never_writes_a_row_twice(tmp_path, monkeypatch):
    import asyncio
    import time

    from llmlab.runner import BatchWriter
    from llmlab.store import CALL_COLUMNS, Store, utc_now

    store = Store(tmp_path / "w.duckdb")
    real = Store.append_batch

    def slow_append(self, **tables):
        time.sleep(0.3)
        real(self, **tables)

    monkeypatch.setattr(Store, "append_batch", slow_append)
    writer = BatchWriter(store, interval_s=0.05)
    writer.start()
    for i in range(3):
        row = dict.fromkeys(CALL_COLUMNS)
        row.update(call_id=f"c{i}", run_id="r", prompt_id="p", sample_index=i, model="m", status="ok", attempts=1,
                   fallbacks_taken=0, cached=False, created_at_utc=utc_now())
        writer.add(row)
    await asyncio.sleep(0.15)  # the periodic flush is inside its (slow) write now
    await writer.close()       # cancels the periodic flush mid-write, then writes what is left
    df = store.sql("SELECT call_id FROM call_records")
    assert sorted(df["call_id"]) == ["c0", "c1", "c2"]
    assert writer.rows_written == 3


async def test_a_flush_stores_a_call_and_its_scores_together_or_not_at_all(tmp_path, monkeypatch):
    import asyncio

    from llmlab.runner import BatchWriter
    from llmlab.store import CALL_COLUMNS, Store, utc_now

    store = Store(tmp_path / "w.duckdb")
    real = Store._insert
    failed = []

    def scores_fail_once(con, table, columns, rows, unique_by=()):
        if table == "scores" and rows and not failed:
            failed.append(len(rows))
            raise OSError("simulated: the scores insert failed")
        return real(con, table, columns, rows, unique_by)

    monkeypatch.setattr(Store, "_insert", staticmethod(scores_fail_once))
    writer = BatchWriter(store, interval_s=10)
    row = dict.fromkeys(CALL_COLUMNS)
    row.update(call_id="c0", run_id="r", prompt_id="p", sample_index=0, model="m", status="ok", attempts=1,
               fallbacks_taken=0, cached=False, created_at_utc=utc_now())
    writer.add(row, [{"run_id": "r", "call_id": "c0", "prompt_id": "p", "model": "m", "kind": "check",
                      "scorer": "exact", "score": 1.0}])
    assert await writer._flush() is False  # the scores failed: the call row was rolled back with them
    assert store.sql("SELECT count(*) AS n FROM call_records")["n"][0] == 0
    assert writer.pending == 1
    await asyncio.wait_for(writer.close(), 10)  # the retry stores both, once
    assert list(store.sql("SELECT call_id FROM call_records")["call_id"]) == ["c0"]
    scores = store.sql("SELECT call_id, passed FROM scores")
    assert list(scores["call_id"]) == ["c0"] and bool(scores["passed"][0]) is True
    assert failed == [1] and writer.failed_flushes == 1 and writer.rows_written == 1


def test_the_cache_serves_repeated_runs_without_requests(sandbox):
    first = llmlab.run(["What is 2+2?", "Name a prime."], ["sandbox/fast"], **FAST)
    assert sandbox.request_count() == 2
    again = llmlab.run(["What is 2+2?", "Name a prime."], ["sandbox/fast"], **FAST)
    assert sandbox.request_count() == 2
    df = again.results
    assert df["cached"].all() and (df["attempts"] == 0).all()
    assert set(df["source_call_id"]) == set(first.results["call_id"])


def test_classify_error_on_plain_exceptions():
    assert classify_error(TimeoutError())[:2] == (True, "Timeout")
    assert classify_error(ConnectionResetError("Connection reset by peer")) == (True, "APIConnectionError", None)
    assert classify_error(json.JSONDecodeError("Expecting value", "x", 0)) == (True, "MalformedResponseError", None)
    assert classify_error(ValueError("mine"))[0] is False


def test_a_prepared_plan_runs_without_blocking_and_can_be_cancelled(sandbox):
    """The non-blocking API the widgets use: prepare → start → live stats → cancel → what completed is kept."""
    from llmlab import runner

    prompts = [f"SANDBOX_ECHO:item {i}" for i in range(12)]
    the_plan = runner.prepare(prompts, ["sandbox/fast"], concurrency=1, per_model_concurrency=1, cache=False)
    sandbox.inject("timeout", model="fast", rate=None, times=None, hang_s=5.0)
    seen: list[dict] = []
    handle = runner.start(the_plan, name="handle-test", on_result=seen.append)
    assert not handle.done()
    import time

    deadline = time.monotonic() + 20
    while handle.stats is None and time.monotonic() < deadline:   # the fan-out has begun: every call is planned
        time.sleep(0.05)
    assert handle.stats is not None and handle.stats.planned == 12
    handle.cancel()
    res = handle.result(timeout_s=30)
    assert handle.done() and res.run_id == handle.run_id
    rows = res.results
    assert len(rows) == 12 and (rows["error_type"] == "cancelled").all()   # one row per call, none lost
    assert len(seen) == 12 and all("auto_score" in r for r in seen)
    assert res.meta["status"] == "cancelled"


def test_execute_runs_a_plan_and_reports_auto_scores(sandbox):
    from llmlab import runner

    ps = llmlab.load_prompts("quickstart").filter(per_category=1)
    the_plan = runner.prepare(ps, ["sandbox/frontier"])
    rows: list[dict] = []
    res = runner.execute(the_plan, progress=False, on_result=rows.append, run_id="r-chosen-id")
    assert res.run_id == "r-chosen-id" and len(res.results) == 6
    by_call = res.results.set_index("call_id")["auto_score"]
    assert {r["call_id"]: r["auto_score"] for r in rows} == by_call.to_dict()
