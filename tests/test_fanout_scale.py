"""What the fan-out's speed work must not break (issue 11): ``concurrency`` means what it says at any size,
abandoned async generators are still finalized on llmlab's loop, and a run redacts the secrets configured when it
started. Speed itself is measured by benchmarks/fanout.py and benchmarks/scale.py, never asserted here."""

from __future__ import annotations

import asyncio
import gc
import threading

import llmlab
from llmlab import _loop

FAST = dict(progress=False, backoff_base_s=0.01, backoff_max_s=0.05, stream=False, cache=False)


class _Resp:
    def __init__(self, text: str) -> None:
        from types import SimpleNamespace as NS

        self.choices = [NS(message=NS(content=text), finish_reason="stop")]
        self.usage = NS(prompt_tokens=5, completion_tokens=2)


def test_concurrency_1000_puts_1000_calls_in_flight_at_once():
    in_flight, peak = 0, 0
    release = asyncio.Event()

    async def fake(**kwargs):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if peak >= 1000:
            release.set()
        try:
            await asyncio.wait_for(release.wait(), 20)
        finally:
            in_flight -= 1
        return _Resp("ok")

    res = llmlab.run([f"p{i}" for i in range(1200)], ["sandbox/fast"], completion=fake, concurrency=1000,
                     timeout_s=30, **FAST)
    assert peak == 1000, f"concurrency=1000 held {peak} calls in flight"
    assert len(res.results) == 1200 and (res.results["status"] == "ok").all()


def test_an_abandoned_async_generator_is_still_finalized_on_llmlabs_loop():
    closed: list[str] = []

    async def gen(tag: str):
        try:
            yield 1
            yield 2
        finally:
            closed.append(tag)

    async def abandon(tag: str) -> None:
        g = gen(tag)
        await g.__anext__()
        del g
        gc.collect()
        await asyncio.sleep(0.05)

    _loop.submit(abandon("loop thread")).result(10)
    # collected on another thread: the thread-safe path
    holder: list = []

    async def start_one() -> None:
        g = gen("other thread")
        await g.__anext__()
        holder.append(g)

    _loop.submit(start_one()).result(10)
    t = threading.Thread(target=lambda: (holder.clear(), gc.collect()))
    t.start()
    t.join()
    _loop.submit(asyncio.sleep(0.1)).result(10)
    assert closed == ["loop thread", "other thread"]


def test_a_run_redacts_the_secret_configured_when_it_started(monkeypatch):
    secret = "zq-" + "k3y" * 8
    monkeypatch.setenv("ACME_API_KEY", secret)

    async def fake(**kwargs):
        return _Resp(f"the key is {secret}")

    res = llmlab.run(["Hi", "Ho"], ["sandbox/fast"], completion=fake, **FAST)
    assert all(secret not in r and "ACME_API_KEY redacted" in r for r in res.results["response"])


def test_litellms_thread_hand_offs_keep_one_root_task_on_llmlabs_loop(sandbox):
    from anyio._backends._asyncio import find_root_task

    async def root() -> object:
        return find_root_task()

    llmlab.run(["Hi"], ["sandbox/fast"], progress=False, cache=False)
    first = _loop.submit(root()).result(10)
    llmlab.run(["Ho"], ["sandbox/fast"], progress=False, cache=False)
    assert _loop.submit(root()).result(10) is first and not first.done()
