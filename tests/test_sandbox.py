"""The sandbox provider, end to end through LiteLLM's real provider code (loopback only, no API key).

The fault tests also pin what LiteLLM 1.106 does with each fault, because the runner relies on it:

- 429: ``litellm.RateLimitError``; Retry-After is on ``e.litellm_response_headers`` (``e.response.headers`` is
  empty), read it with ``retry_after_s_from_exception``.
- a stream cut mid-body: ``litellm.exceptions.MidStreamFallbackError`` (a ``ServiceUnavailableError``, status
  500) raised while iterating, after some content chunks, for both the ``openai/`` and ``anthropic/`` provider.
- streaming usage: with ``stream_options={"include_usage": True}`` the last chunk carries ``usage`` for both.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from llmlab.errors import SandboxError  # noqa: E402
from llmlab.sandbox import (  # noqa: E402
    CATEGORIES,
    PROFILES,
    FaultSpecError,
    ModelProfile,
    RemoteSandbox,
    Sandbox,
    ensure_sandbox,
    estimate_tokens,

)
from llmlab.runner import retry_after_s as retry_after_s_from_exception

SCALE = 0.002  # latency_scale: real sleeps, but short
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def litellm():
    import litellm as _litellm

    _litellm.suppress_debug_info = True
    return _litellm


def _write_items(directory: Path, items: list[dict], name: str = "items.jsonl") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("".join(json.dumps(it) + "\n" for it in items), encoding="utf-8")
    return path


BUNDLED = [
    {"id": "a1", "prompt": "What is 17 + 25? Answer with the number only.", "category": "arithmetic",
     "reference": "42"},
    {"id": "c1", "prompt": "Classify the sentiment of: 'I loved this film.'", "category": "classification",
     "reference": "positive"},
    {"id": "c2", "prompt": "Classify the sentiment of: 'Dull and far too long.'", "category": "classification",
     "reference": "negative"},
    {"id": "e1", "prompt": "Extract name and age as JSON from: Ada, 36.", "category": "extraction",
     "reference": '{"name": "Ada", "age": 36}'},
    {"id": "s1", "prompt": "Summarize: The meeting moved to Friday because the room was booked.",
     "category": "summarization", "reference": "The meeting moved to Friday."},
]


@pytest.fixture
def datasets_dir(tmp_path: Path) -> Path:
    d = tmp_path / "datasets"
    _write_items(d, BUNDLED)
    return d


@pytest.fixture
def sb(datasets_dir: Path):
    with Sandbox(seed=0, latency_scale=SCALE, datasets_dir=datasets_dir) as s:
        yield s


def _oracle(name: str, acc: float, **kw) -> ModelProfile:
    return ModelProfile(name=name, api="openai", input_cost_per_token=1e-6, output_cost_per_token=2e-6,
                        ttft_ms=10.0, tokens_per_s=1000.0, jitter=0.1, accuracy={c: acc for c in CATEGORIES},
                        default_accuracy=acc, **kw)


def _user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


async def _call(litellm, sb: Sandbox, model: str, text: str, **kw):
    return await litellm.acompletion(model=model, api_base=sb.api_base, api_key="sandbox-key",
                                     messages=_user(text), num_retries=0, max_retries=0, **kw)


async def _stream_text(litellm, sb: Sandbox, model: str, text: str, **kw):
    stream = await _call(litellm, sb, model, text, stream=True, **kw)
    chunks = [c async for c in stream]
    content = "".join((c.choices[0].delta.content or "") for c in chunks if c.choices)
    return content, chunks


# ------------------------------------------------------------------------------------------- profiles


def test_profiles_are_priced_and_the_best_cheap_model_differs_by_category():
    assert set(PROFILES) == {"frontier", "balanced", "fast", "tiny"}
    assert {p.api for p in PROFILES.values()} == {"openai", "anthropic"}
    assert PROFILES["balanced"].api == PROFILES["tiny"].api == "anthropic"
    for p in PROFILES.values():
        assert p.input_cost_per_token > 0 and p.output_cost_per_token > 0
        assert set(p.accuracy) == set(CATEGORIES)
        assert p.litellm_model == f"{p.api}/{p.name}" and p.llmlab_model == f"sandbox/{p.name}"

    def cheapest_good(category: str) -> str:
        best = max(p.accuracy[category] for p in PROFILES.values())
        good = [p for p in PROFILES.values() if p.accuracy[category] >= best - 0.05]
        return min(good, key=lambda p: p.input_cost_per_token + p.output_cost_per_token).name

    assert cheapest_good("classification") == "tiny"
    assert cheapest_good("extraction") == cheapest_good("summarization") == "fast"
    assert cheapest_good("code") == "balanced"
    assert cheapest_good("reasoning") == cheapest_good("arithmetic") == "frontier"
    assert cheapest_good("conversation") == "fast" and cheapest_good("json") == "balanced"
    assert cheapest_good("tool_call") == "frontier"
    json.dumps(PROFILES["fast"].to_dict())  # JSON-ready


# ------------------------------------------------------------------------------------------- through LiteLLM


@pytest.mark.parametrize("model", ["openai/frontier", "anthropic/balanced", "anthropic/fast", "openai/tiny"])
async def test_litellm_completion_answers_with_usage(litellm, sb, model):
    prompt = "Please write two words about the sea."
    r = await _call(litellm, sb, model, prompt)
    text = r.choices[0].message.content
    assert f"sandbox/{model.split('/')[1]}" in text  # generic answer names the model and quotes the prompt
    assert "Please write two words" in text
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens == estimate_tokens(prompt)
    assert r.usage.completion_tokens == estimate_tokens(text)
    assert sb.request_count(model.split("/")[1]) == 1
    assert sb.request_log[-1]["outcome"] == "ok"


@pytest.mark.parametrize("model", ["openai/frontier", "anthropic/balanced"])
async def test_litellm_streaming_matches_the_non_streamed_answer_and_ends_with_usage(litellm, sb, model):
    prompt = "Describe a lighthouse at night in a few sentences."
    whole = (await _call(litellm, sb, model, prompt)).choices[0].message.content
    content, chunks = await _stream_text(litellm, sb, model, prompt, stream_options={"include_usage": True})
    assert content == whole
    assert len(chunks) > 3
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    usage = getattr(chunks[-1], "usage", None)
    assert usage is not None, "the last chunk carries usage when include_usage is set"
    assert usage.prompt_tokens == estimate_tokens(prompt)
    assert usage.completion_tokens == estimate_tokens(whole)
    log = sb.request_log
    assert [e["stream"] for e in log] == [False, True]


async def test_max_tokens_truncates_with_finish_reason_length(litellm, sb):
    for model in ("openai/fast", "anthropic/tiny"):
        r = await _call(litellm, sb, model, "Tell me a long story about a dragon.", max_tokens=5)
        assert r.choices[0].finish_reason == "length"
        assert r.usage.completion_tokens <= 5


async def test_echo_directive_returns_hostile_text_verbatim(litellm, sb):
    hostile = '<script>alert(1)</script> **bold** <img src=x onerror="alert(2)">'
    for model in ("openai/frontier", "anthropic/tiny"):
        r = await _call(litellm, sb, model, "SANDBOX_ECHO: " + hostile)
        assert r.choices[0].message.content == hostile
        content, _ = await _stream_text(litellm, sb, model, "SANDBOX_ECHO: " + hostile)
        assert content == hostile


# ------------------------------------------------------------------------------------------- answers


async def test_bundled_prompt_answers_are_deterministic_for_a_seed(litellm, datasets_dir):
    prompts = [it["prompt"] for it in BUNDLED]
    async def answers(seed: int) -> list[str]:
        with Sandbox(seed=seed, latency_scale=0, datasets_dir=datasets_dir) as s:
            out = []
            for p in prompts:
                r = await _call(litellm, s, "openai/tiny", "Context: none.\n" + p, temperature=0)
                out.append(r.choices[0].message.content)
            return out

    first, again = await answers(7), await answers(7)
    assert first == again
    assert not any("sandbox/" in a for a in first)  # every bundled prompt was recognised (no generic answer)


def test_temperature_and_seed_salt_the_samples(datasets_dir):
    items = [{"prompt": f"[reasoning #{i:03d}] Which box holds the key?", "category": "reasoning",
              "reference": f"box {i}"} for i in range(60)]
    _write_items(datasets_dir, items, "reasoning.jsonl")
    s = Sandbox(seed=0, datasets_dir=datasets_dir)  # answer() needs no running server

    def run(**kw) -> list[str]:
        return [s.answer("balanced", _user(it["prompt"]), **kw).text for it in items]

    assert run(temperature=0, seed=1) == run(temperature=0, seed=2)  # greedy ignores the seed
    assert run(temperature=0.8, seed=1) == run(temperature=0.8, seed=1)  # same request, same answer
    assert run(temperature=0.8, seed=1) != run(temperature=0.8, seed=2)  # samples can differ


def test_accuracy_matches_the_profile_over_many_items(tmp_path):
    d = tmp_path / "ds"
    items = [{"prompt": f"[{cat} #{i:04d}] Solve this synthetic task.", "category": cat, "reference": f"ans-{i}"}
             for cat in ("classification", "arithmetic") for i in range(400)]
    _write_items(d, items)
    s = Sandbox(seed=3, datasets_dir=d)
    for model in ("tiny", "frontier"):
        for cat in ("classification", "arithmetic"):
            subset = [it for it in items if it["category"] == cat]
            correct = sum(s.answer(model, _user(it["prompt"]), temperature=0).text == it["reference"]
                          for it in subset)
            expected = PROFILES[model].accuracy[cat]
            assert abs(correct / len(subset) - expected) < 0.07, (model, cat, correct / len(subset), expected)


def test_wrong_answers_keep_the_reference_shape_but_differ(datasets_dir):
    never = Sandbox(seed=0, datasets_dir=datasets_dir, profiles={"dunce": _oracle("dunce", 0.0)})
    always = Sandbox(seed=0, datasets_dir=datasets_dir, profiles={"oracle": _oracle("oracle", 1.0)})
    for it in BUNDLED:
        assert always.answer("oracle", _user(it["prompt"])).text == it["reference"]
        wrong = never.answer("dunce", _user(it["prompt"])).text
        assert it["reference"].lower() not in wrong.lower()
        if it["reference"] == "42":
            assert float(wrong) != 42 and abs(float(wrong) - 42) <= 10
        if it["category"] == "extraction":
            obj, ref = json.loads(wrong), json.loads(it["reference"])
            assert obj.keys() == ref.keys()
            assert sum(obj[k] != ref[k] for k in ref) == 1


def test_the_longest_contained_prompt_wins(tmp_path):
    d = tmp_path / "ds"
    _write_items(d, [
        {"prompt": "What is 2+2?", "category": "arithmetic", "reference": "4"},
        {"prompt": "Twice over: What is 2+2? Then double it.", "category": "arithmetic", "reference": "8"},
    ])
    s = Sandbox(datasets_dir=d, profiles={"oracle": _oracle("oracle", 1.0)})
    assert s.answer("oracle", _user("Q:  Twice over: What is 2+2?\nThen double it.")).text == "8"
    assert s.answer("oracle", _user("Please: What is 2+2?")).text == "4"


def test_missing_datasets_dir_gives_generic_answers(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMLAB_DATASETS_DIR", str(tmp_path / "does-not-exist"))
    s = Sandbox()
    a = s.answer("fast", _user(BUNDLED[0]["prompt"]), max_tokens=200)
    assert a.kind == "generic" and "sandbox/fast" in a.text


def test_judge_scores_high_for_matching_answers_and_low_otherwise(tmp_path):
    s = Sandbox(seed=1, datasets_dir=tmp_path)

    def judge(model: str, ref: str, ans: str, i: int) -> int:
        msg = (f"[llmlab-judge] Case {i}. Grade the answer against the reference from 1 to 10.\n"
               f"<reference>{ref}</reference>\n<answer>{ans}</answer>\nReply 'Score: N'.")
        text = s.answer(model, [{"role": "system", "content": "You are a strict grader."},
                                {"role": "user", "content": msg}]).text
        assert text.startswith("Score: ")
        return int(text.split(":")[1])

    good = [judge("frontier", f"Paris {i}", f"  the answer is PARIS   {i}. ", i) for i in range(300)]
    bad = [judge("frontier", f"Paris {i}", f"Lyon {i}", i) for i in range(300)]
    assert all(1 <= x <= 10 for x in good + bad)
    mistakes = sum(x <= 3 for x in good) + sum(x >= 9 for x in bad)
    expected = (1 - PROFILES["frontier"].default_accuracy) / 2
    assert 0 < mistakes / 600 < expected + 0.04
    assert sum(x >= 9 for x in good) / 300 > 0.9 and sum(x <= 3 for x in bad) / 300 > 0.9


async def test_judge_through_litellm(litellm, sb):
    msg = "[llmlab-judge]\n<reference>blue</reference>\n<answer>The sky is blue.</answer>"
    r = await _call(litellm, sb, "anthropic/balanced", msg, temperature=0)
    assert r.choices[0].message.content.startswith("Score: ")


# ------------------------------------------------------------------------------------------- faults


def _exc(litellm, name: str):
    return getattr(litellm, name)


def _litellm_at_least(version: str) -> bool:
    from importlib.metadata import version as installed

    from packaging.version import Version

    return Version(installed("litellm")) >= Version(version)


# What LiteLLM itself does changed between the locked 1.106.2 and 1.109.3 (the newest the range allows; `make
# test-latest`). These tests pin LiteLLM's raw behaviour so that a change is seen; llmlab does not depend on it:
# the runner classifies from the wire and blocks hidden re-sends (tests/test_runner.py, tests/test_wire.py).
#   - an OpenAI-path 403: 1.106 BadRequestError(status_code=403); 1.109 a bare APIError, no status
#   - a dropped Anthropic connection: 1.106 re-sends once on its own (the server sees two requests); 1.109 does not
NEW_LITELLM = _litellm_at_least("1.109")

# kind -> {provider: LiteLLM exception class name} (num_retries=0, max_retries=0)
FAULT_TO_EXCEPTION = {
    "429": {"openai": "RateLimitError", "anthropic": "RateLimitError"},
    "500": {"openai": "InternalServerError", "anthropic": "InternalServerError"},
    "502": {"openai": "BadGatewayError", "anthropic": "BadGatewayError"},
    "503": {"openai": "ServiceUnavailableError", "anthropic": "ServiceUnavailableError"},
    "504": {"openai": "Timeout", "anthropic": "Timeout"},
    "reset": {"openai": "InternalServerError", "anthropic": "InternalServerError"},
    "malformed": {"openai": "InternalServerError", "anthropic": "APIConnectionError"},
    "cut_stream": {"openai": "InternalServerError", "anthropic": "InternalServerError"},
    "400": {"openai": "BadRequestError", "anthropic": "BadRequestError"},
    "401": {"openai": "AuthenticationError", "anthropic": "AuthenticationError"},
    # LiteLLM's OpenAI mapping has no 403 branch: BadRequestError with status_code 403.
    "403": {"openai": "APIError" if NEW_LITELLM else "BadRequestError", "anthropic": "PermissionDeniedError"},
    "404": {"openai": "NotFoundError", "anthropic": "NotFoundError"},
    "context_window": {"openai": "ContextWindowExceededError", "anthropic": "ContextWindowExceededError"},
}


@pytest.mark.parametrize("provider,model", [("openai", "frontier"), ("anthropic", "balanced")])
@pytest.mark.parametrize("kind", list(FAULT_TO_EXCEPTION))
async def test_each_fault_reaches_litellm_as_the_right_exception(litellm, sb, kind, provider, model):
    sb.inject(kind, model=model, retry_after_s=3)
    with pytest.raises(_exc(litellm, FAULT_TO_EXCEPTION[kind][provider])) as info:
        await _call(litellm, sb, f"{provider}/{model}", "Hello")
    if kind in ("400", "401", "403", "404", "429", "500", "502", "503") and not (
            NEW_LITELLM and kind == "403" and provider == "openai"):
        assert info.value.status_code == int(kind)
    if kind == "429":
        assert retry_after_s_from_exception(info.value) == 3.0
        assert info.value.litellm_response_headers["retry-after"] == "3"
    # LiteLLM's own httpx handler (the anthropic provider) retries a dropped connection once, whatever
    # num_retries says: the server sees two requests for one call.
    expected_requests = 2 if provider == "anthropic" and kind in ("reset", "cut_stream") and not NEW_LITELLM else 1
    assert sb.stats()["by_model_outcome"][model] == {kind: expected_requests}


@pytest.mark.skipif(NEW_LITELLM, reason="LiteLLM 1.109 no longer re-sends a request on a dropped connection")
async def test_a_dropped_connection_once_is_hidden_by_litellm_for_anthropic_only(litellm, sb):
    sb.inject("reset", times=1)
    r = await _call(litellm, sb, "anthropic/balanced", "Hello")  # LiteLLM re-sent it on a fresh connection
    assert r.choices[0].message.content
    assert sb.stats()["by_outcome"] == {"reset": 1, "ok": 1}
    sb.inject("reset", times=1)
    with pytest.raises(litellm.InternalServerError):
        await _call(litellm, sb, "openai/frontier", "Hello")


@pytest.mark.parametrize("model", ["openai/frontier", "anthropic/balanced"])
async def test_a_cut_stream_raises_mid_stream(litellm, sb, model):
    sb.inject("cut_stream", times=1)
    stream = await _call(litellm, sb, model, "Write a paragraph about rivers and their deltas.", stream=True)
    received = []
    with pytest.raises(litellm.exceptions.MidStreamFallbackError) as info:
        async for chunk in stream:
            received.append(chunk)
    assert isinstance(info.value, litellm.ServiceUnavailableError)
    assert any(c.choices and c.choices[0].delta.content for c in received), "some content arrived first"
    assert not any(c.choices and c.choices[0].finish_reason for c in received)


async def test_malformed_streams(litellm, sb):
    sb.inject("malformed", times=1)
    with pytest.raises(litellm.exceptions.MidStreamFallbackError):
        await _stream_text(litellm, sb, "openai/frontier", "Hello")
    # Pinned LiteLLM 1.106 behaviour: the anthropic provider skips undecodable SSE data and ends the stream
    # with finish_reason "stop" and no content. The runner must treat an empty streamed answer as suspect.
    sb.inject("malformed", times=1)
    content, chunks = await _stream_text(litellm, sb, "anthropic/balanced", "Hello")
    assert content == ""


@pytest.mark.parametrize("model", ["openai/fast", "anthropic/tiny"])
async def test_timeout_fault_hits_the_client_timeout(litellm, sb, model):
    sb.inject("timeout", hang_s=20)
    with pytest.raises(litellm.Timeout):
        await _call(litellm, sb, model, "Hello", timeout=0.3)
    assert sb.stats()["by_outcome"] == {"timeout": 1}


async def test_stop_releases_a_hung_request(datasets_dir):
    s = Sandbox(latency_scale=0, datasets_dir=datasets_dir).start()
    s.inject("timeout", hang_s=60)
    async with aiohttp.ClientSession() as session:
        task = asyncio.create_task(session.post(s.api_base + "/chat/completions",
                                                json={"model": "fast", "messages": _user("hi")}))
        while s.request_count() == 0:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(s.stop)
        with pytest.raises(aiohttp.ClientError):
            await asyncio.wait_for(task, 10)


async def test_context_window_of_the_profile_is_enforced(litellm, sb):
    too_long = "word " * (PROFILES["tiny"].context_window_tokens * 4 // 5 + 100)
    with pytest.raises(litellm.ContextWindowExceededError):
        await _call(litellm, sb, "anthropic/tiny", too_long)
    assert sb.stats()["by_outcome"] == {"context_window": 1}


async def test_unknown_model_is_a_counted_404(litellm, sb):
    with pytest.raises(litellm.NotFoundError):
        await _call(litellm, sb, "openai/gigantic", "Hello")
    with pytest.raises(litellm.NotFoundError):
        await _call(litellm, sb, "anthropic/gigantic", "Hello")
    assert sb.stats()["by_model_outcome"] == {"gigantic": {"unknown_model": 2}}


def test_inject_rejects_bad_specs(sb):
    with pytest.raises(FaultSpecError):
        sb.inject("418")
    with pytest.raises(FaultSpecError):
        sb.inject("500", rate=1.5)
    with pytest.raises(ValueError):
        Sandbox(fault_rate=0.1, fault_kinds=("boom",))
    assert sb.faults() == []


async def _raw_outcomes(s: Sandbox, model: str, n: int) -> list[int]:
    statuses = []
    async with aiohttp.ClientSession() as session:
        for i in range(n):
            async with session.post(s.url + "/chat/completions",
                                    json={"model": model, "messages": _user(f"req {i}")}) as resp:
                await resp.read()
                statuses.append(resp.status)
    return statuses


async def test_times_rate_and_model_filters(datasets_dir):
    with Sandbox(latency_scale=0, datasets_dir=datasets_dir) as s:
        s.inject("503", model="sandbox/tiny", times=2)
        assert await _raw_outcomes(s, "fast", 2) == [200, 200]
        assert await _raw_outcomes(s, "tiny", 4) == [503, 503, 200, 200]
        s.clear_faults()
        s.inject(500, model="fast", rate=0.5)
        pattern = await _raw_outcomes(s, "fast", 120)
        assert set(pattern) == {200, 500}
        assert 0.35 < pattern.count(500) / 120 < 0.65
        assert s.faults()[0]["fired"] == pattern.count(500)
    with Sandbox(latency_scale=0, datasets_dir=datasets_dir) as s2:  # same seed: same decisions, in order
        s2.inject(500, model="fast", rate=0.5)
        assert await _raw_outcomes(s2, "fast", 120) == pattern


async def test_global_fault_rate_mode_is_deterministic(datasets_dir):
    async def run(seed: int) -> list[str]:
        with Sandbox(seed=seed, latency_scale=0, fault_rate=0.3, fault_kinds=("500", "429", "malformed"),
                     datasets_dir=datasets_dir) as s:
            await _raw_outcomes(s, "frontier", 100)
            return [e["outcome"] for e in s.request_log]

    a = await run(1)
    assert a == await run(1)
    assert set(a) == {"ok", "500", "429", "malformed"}
    assert 0.18 < (100 - a.count("ok")) / 100 < 0.42
    assert a != await run(2)


# ------------------------------------------------------------------------------------------- counting


async def test_counters_and_request_log(litellm, sb):
    await _call(litellm, sb, "openai/frontier", "one")
    await _call(litellm, sb, "anthropic/tiny", "two")
    sb.inject("429", model="tiny", times=1)
    with pytest.raises(litellm.RateLimitError):
        await _call(litellm, sb, "anthropic/tiny", "three")
    async with aiohttp.ClientSession() as session:  # not counted: model list and control endpoints
        async with session.get(sb.url + "/v1/models") as resp:
            assert resp.status == 200
        async with session.get(sb.url + "/_sandbox/stats") as resp:
            assert (await resp.json())["requests"] == 3
    st = sb.stats()
    assert st == {"requests": 3, "by_model": {"frontier": 1, "tiny": 2}, "by_outcome": {"ok": 2, "429": 1},
                  "by_model_outcome": {"frontier": {"ok": 1}, "tiny": {"ok": 1, "429": 1}}}
    assert sb.request_count() == 3 and sb.request_count("sandbox/tiny") == 2 and sb.request_count("fast") == 0
    log = sb.request_log
    assert [e["outcome"] for e in log] == ["ok", "ok", "429"]
    assert [e["path"].endswith("/messages") for e in log] == [False, True, True]
    assert log[0]["received_at_monotonic_s"] <= log[1]["received_at_monotonic_s"]
    assert set(log[0]) >= {"model", "path", "stream", "outcome", "received_at_monotonic_s"}
    sb.reset_stats()
    assert sb.stats()["requests"] == 0 and sb.request_log == []


# ------------------------------------------------------------------------------------------- HTTP surface


async def test_http_control_endpoints(litellm, sb):
    remote = RemoteSandbox(sb.api_base)  # a trailing /v1 is accepted
    rule = await asyncio.to_thread(remote.inject, "401", model="frontier", times=1)
    assert rule["kind"] == "401" and rule["times"] == 1
    assert [f["kind"] for f in sb.faults()] == ["401"]
    with pytest.raises(litellm.AuthenticationError):
        await _call(litellm, sb, "openai/frontier", "hi")
    stats = await asyncio.to_thread(remote.stats)
    assert stats["by_outcome"] == {"401": 1}
    with pytest.raises(SandboxError, match="418"):
        await asyncio.to_thread(remote.inject, "418")
    await asyncio.to_thread(remote.inject, "500")
    await asyncio.to_thread(remote.clear_faults)
    assert sb.faults() == [] and await asyncio.to_thread(remote.faults) == []
    await asyncio.to_thread(remote.reset_stats)
    assert sb.request_count() == 0
    async with aiohttp.ClientSession() as session:
        async with session.post(sb.url + "/_sandbox/faults", json={"kind": "503", "rate": 1.0}) as resp:
            assert resp.status == 200
        async with session.delete(sb.url + "/_sandbox/faults") as resp:
            assert resp.status == 200
        async with session.post(sb.url + "/_sandbox/faults", json={"kind": "503", "bogus": 1}) as resp:
            assert resp.status == 400
    assert sb.faults() == []


async def test_models_listing_and_error_shapes(sb):
    async with aiohttp.ClientSession() as session:
        for path in ("/models", "/v1/models"):
            async with session.get(sb.url + path) as resp:
                assert [m["id"] for m in (await resp.json())["data"]] == list(PROFILES)
        async with session.post(sb.url + "/v1/messages", json={"model": "nope", "messages": _user("x")}) as resp:
            body = await resp.json()
            assert resp.status == 404 and body["type"] == "error" and body["error"]["type"] == "not_found_error"
        async with session.post(sb.url + "/v1/chat/completions", data=b"{not json") as resp:
            body = await resp.json()
            assert resp.status == 400 and body["error"]["type"] == "invalid_request_error"


# ------------------------------------------------------------------------------------------- lifecycle


def test_lifecycle_and_port_in_use(datasets_dir):
    s = Sandbox(datasets_dir=datasets_dir)
    with pytest.raises(SandboxError):
        _ = s.url
    s.start()
    try:
        assert s.url == f"http://127.0.0.1:{s.port}" and s.api_base == s.url + "/v1"
        with pytest.raises(SandboxError):
            Sandbox(port=s.port).start()
    finally:
        s.stop()
    s.stop()  # idempotent
    assert not s.running
    with socket.socket() as probe:  # the port is free again
        probe.bind(("127.0.0.1", 0))


def test_ensure_sandbox_reuses_one_server_and_exports_the_api_base(monkeypatch, datasets_dir):
    monkeypatch.delenv("LLMLAB_SANDBOX_API_BASE", raising=False)
    first = ensure_sandbox(latency_scale=0, datasets_dir=datasets_dir)
    try:
        assert ensure_sandbox() is first
        assert os.environ["LLMLAB_SANDBOX_API_BASE"] == first.api_base
    finally:
        first.stop()


def test_cli_main_prints_the_url_and_stops_on_ctrl_c(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "LLMLAB_DATASETS_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from llmlab.sandbox import main; "
                             "sys.exit(main(sys.argv[1:]))", "--port", "0", "--latency-scale", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        url = next(w for w in line.split() if w.startswith("http://"))
        with socket.create_connection((url.split("//")[1].split(":")[0], int(url.rsplit(":", 1)[1])), timeout=5):
            pass
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_anthropic_samples_are_salted_by_the_seed_header(litellm, sb):
    """LiteLLM refuses ``seed`` for anthropic/ models; ``extra_headers={"X-Sandbox-Seed": ...}`` salts samples."""
    async def answers(seed: str) -> list[str]:
        out = []
        for it in BUNDLED:
            r = await _call(litellm, sb, "anthropic/tiny", it["prompt"], temperature=1.0,
                            extra_headers={"X-Sandbox-Seed": seed})
            out.append(r.choices[0].message.content)
        return out

    first = await answers("1")
    assert first == await answers("1")
    assert any([first != await answers(str(seed)) for seed in range(2, 6)])
