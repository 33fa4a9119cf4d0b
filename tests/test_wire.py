"""Wire truth: failures are classified from what the provider sent, on every configurable path, and a late event
loop never turns an answer that arrived into a Timeout. Plus the fan-out's unit seam (a stand-in completion)."""

from __future__ import annotations

import json
import time

import pytest

import llmlab
from llmlab import _loop
from llmlab.errors import ModelError
from llmlab.runner import prepare, start
from llmlab.runner.retry import STATUS_TABLE, classify_attempt
from llmlab.runner.wire import Wire
from llmlab.sandbox import Sandbox

FAST = dict(progress=False, backoff_base_s=0.01, backoff_max_s=0.05)


# -- classification from the wire (no network) ------------------------------------------------------------
def _wire(status=None, headers=None, body_bytes=0, body_done=False, body_error=None, sent=1):
    w = Wire()
    w.sent, w.sent_at = sent, time.monotonic() if sent else None
    w.status, w.headers = status, headers or {}
    w.body_bytes, w.body_done, w.body_error = body_bytes, body_done, body_error
    return w


@pytest.mark.parametrize("status", sorted(STATUS_TABLE))
def test_the_status_on_the_wire_decides_whatever_the_exception_says(status):
    etype, retryable = STATUS_TABLE[status]
    got = classify_attempt(Exception("litellm.APIError: something went wrong"), _wire(status))
    assert tuple(got) == (retryable, etype, status)


def test_a_403_that_litellm_reports_as_a_bare_api_error_is_never_retried():
    got = classify_attempt(RuntimeError("APIError: no status"), _wire(403))
    assert tuple(got) == (False, "PermissionDeniedError", 403)


def test_a_context_window_400_is_named_as_such():
    got = classify_attempt(Exception("This model's maximum context length is 16384 tokens"), _wire(400))
    assert tuple(got) == (False, "ContextWindowExceededError", 400)


def test_retry_after_comes_from_the_response_headers():
    assert _wire(429, {"retry-after-ms": "250", "retry-after": "1"}).retry_after_s() == 0.25
    assert _wire(429, {"retry-after": "3"}).retry_after_s() == 3.0
    assert _wire(429, {"retry-after": "Wed, 21 Oct 2026 07:28:00 GMT"}).retry_after_s() is None


def test_what_arrived_decides_between_cut_stream_malformed_and_connection_errors():
    assert classify_attempt(Exception("x"), _wire(200, body_bytes=120, body_error="ReadError")).error_type == \
        "StreamCutError"
    assert classify_attempt(Exception("x"), _wire(200, body_error="ReadError")).error_type == "APIConnectionError"
    assert classify_attempt(Exception("Expecting value: line 1"), _wire(200, body_bytes=9, body_done=True)) \
        .error_type == "MalformedResponseError"
    assert tuple(classify_attempt(TimeoutError(), _wire(None))) == (True, "Timeout", None)
    assert tuple(classify_attempt(ConnectionResetError("reset"), _wire(None))) == (True, "APIConnectionError", None)


def test_nothing_on_the_wire_falls_back_to_the_exception():
    got = classify_attempt(ConnectionError("Connection error."), _wire(None, sent=0))
    assert got.error_type == "APIConnectionError" and got.retryable


# -- an OpenAI-compatible server through OPENAI_API_BASE ---------------------------------------------------
def test_an_environment_api_base_is_counted_and_classified_on_the_wire(sandbox, monkeypatch):
    monkeypatch.setenv("OPENAI_API_BASE", sandbox.api_base)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key-000")
    sandbox.inject("reset", model="fast", times=1)
    res = llmlab.run(["Name a river."], ["openai/fast"], timeout_s=10, **FAST)
    row = res.results.iloc[0]
    assert row["status"] == "ok" and row["attempts"] == 2
    assert json.loads(row["attempt_log"])[0]["error_type"] == "APIConnectionError"
    assert sandbox.stats()["by_model_outcome"]["fast"] == {"reset": 1, "ok": 1}

    sandbox.reset_stats()
    sandbox.inject("403", model="fast")
    res = llmlab.run(["Name a lake."], ["openai/fast"], timeout_s=10, max_attempts=4, **FAST)
    row = res.results.iloc[0]
    assert (row["status"], row["error_type"], row["http_status"], row["attempts"]) == \
        ("error", "PermissionDeniedError", 403, 1)
    assert sandbox.request_count() == 1, "a permission error is never retried"


# -- a starved event loop ----------------------------------------------------------------------------------
@pytest.fixture
def slow_sandbox(monkeypatch, datasets_dir=None):
    sb = Sandbox(port=0, seed=0, latency_scale=0.5).start()
    monkeypatch.setenv("LLMLAB_SANDBOX_API_BASE", sb.api_base)
    try:
        yield sb
    finally:
        sb.stop()


@pytest.mark.parametrize("stream", [False, True])
def test_an_answer_that_arrived_while_the_loop_was_blocked_is_not_a_timeout(slow_sandbox, stream):
    the_plan = prepare(["Say hi."], ["sandbox/fast"], timeout_s=1.5, max_attempts=1, max_tokens=8, stream=stream,
                       cache=False)
    handle = start(the_plan)
    deadline = time.monotonic() + 30
    while slow_sandbox.request_count() < 1 and time.monotonic() < deadline:
        time.sleep(0.002)
    assert slow_sandbox.request_count() == 1
    # block llmlab's loop past the request's deadline; the sandbox (its own thread) answers meanwhile
    _loop.get_loop().call_soon_threadsafe(time.sleep, 2.5)
    res = handle.result(timeout_s=60)
    row = res.results.iloc[0]
    assert row["status"] == "ok", (row["error_type"], row["attempt_log"])
    assert slow_sandbox.request_count() == 1


# -- the unit seam -----------------------------------------------------------------------------------------
class _Resp:
    def __init__(self, text):
        from types import SimpleNamespace as NS

        self.choices = [NS(message=NS(content=text), finish_reason="stop")]
        self.usage = NS(prompt_tokens=5, completion_tokens=2)


def test_the_completion_seam_drives_retries_without_a_server():
    import litellm

    calls = []

    async def fake(**kwargs):
        calls.append(kwargs["model"])
        if len(calls) < 3:
            raise litellm.RateLimitError("slow down", llm_provider="openai", model=kwargs["model"])
        return _Resp("hello")

    res = llmlab.run(["Hi"], ["sandbox/fast"], stream=False, completion=fake, cache=False, **FAST)
    row = res.results.iloc[0]
    assert row["status"] == "ok" and row["response"] == "hello" and row["attempts"] == 3
    assert [e["error_type"] for e in json.loads(row["attempt_log"])[:2]] == ["RateLimitError"] * 2


def test_a_bad_fallback_model_fails_at_planning_and_records_nothing():
    store = llmlab.Store()
    before = len(store.runs())
    with pytest.raises(ModelError, match="fallbacks for sandbox/fast"):
        llmlab.run(["Hi"], ["sandbox/fast"], fallbacks={"sandbox/fast": ["nosuchprovider/xyz"]}, **FAST)
    assert len(store.runs()) == before


def test_a_plan_keeps_its_store(tmp_path):
    from llmlab.runner import execute, plan

    other = llmlab.Store(tmp_path / "other.duckdb")

    async def fake(**kwargs):
        return _Resp("ok")

    p = plan(["Hi"], ["sandbox/fast"], store=other)
    p.completion = fake
    p.options.stream = False
    res = execute(p, progress=False)
    assert res.store.path == other.path and len(other.results(res.run_id)) == 1


@pytest.mark.parametrize("model", ["sandbox/tiny", "sandbox/fast"])  # anthropic and openai wire formats
def test_dropped_connections_never_disturb_the_other_requests_in_flight(sandbox, model):
    """LiteLLM's handler closes a throw-away client after its (blocked) re-send; that must not close the shared
    connection pool under the other requests in flight (they would fail or hang without reaching the server)."""
    sandbox.inject("reset", rate=0.3)
    res = llmlab.run([f"Tell me about lake {i}." for i in range(16)], [model], samples=2, temperature=0.7,
                     max_attempts=2, concurrency=32, timeout_s=20, **FAST)
    df = res.results
    assert int(df["attempts"].sum()) == sandbox.request_count()
    assert set(df["error_type"].dropna()) <= {"APIConnectionError"}
    log_types = {e.get("error_type") for a in df["attempt_log"] for e in json.loads(a)}
    assert log_types <= {None, "APIConnectionError"}, log_types
