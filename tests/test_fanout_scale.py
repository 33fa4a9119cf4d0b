"""What the fan-out's speed work must not break (issue 11): ``concurrency`` means what it says at any size,
abandoned async generators are still finalized on llmlab's loop, and a run redacts the secrets configured when it
started. Speed itself is measured by benchmarks/fanout.py and benchmarks/scale.py, never asserted here."""

from __future__ import annotations

import asyncio
import gc
import threading
import time

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


def test_workers_2_records_one_row_per_planned_call_like_one_process_and_honours_the_cache(sandbox):
    prompts = [f"What is {i} + 1?" for i in range(12)]
    models = ["sandbox/fast", "sandbox/frontier"]
    one = llmlab.run(prompts, models, progress=False, cache=False, workers=1, timeout_s=30)
    two = llmlab.run(prompts, models, progress=False, cache=False, workers=2, timeout_s=30)
    assert sandbox.request_count() == 48
    r1, r2 = one.results, two.results
    assert len(r2) == 24 and r2["call_id"].is_unique and (r2["status"] == "ok").all()
    key = ["prompt_id", "model"]
    assert (r1.sort_values(key)[key + ["response", "input_tokens", "output_tokens"]].reset_index(drop=True)
            .equals(r2.sort_values(key)[key + ["response", "input_tokens", "output_tokens"]].reset_index(drop=True)))
    assert two.stats.done == 24 and two.stats.requests == 24
    again = llmlab.run(prompts, models, progress=False, workers=2, timeout_s=30)
    assert sandbox.request_count() == 48, "cache hits were sent again"
    assert len(again.results) == 24 and again.results["cached"].all()


def test_workers_divide_the_limits():
    from llmlab.runner.options import RunOptions
    from llmlab.runner.workers import worker_options

    opts = RunOptions(concurrency=5, per_model_concurrency={"a": 3}, rate_limits={"a": {"rpm": 60}}, budget_usd=1.0)
    shares = [worker_options(opts, 2, i) for i in range(2)]
    assert [s.concurrency for s in shares] == [3, 2]
    assert [s.per_model_concurrency for s in shares] == [{"a": 2}, {"a": 1}]
    assert all(s.rate_limits == {"a": {"rpm": 30.0}} and s.budget_usd == 0.5 for s in shares)


def test_workers_are_handed_the_plan_in_chunks_that_shrink_towards_the_end_and_cover_it_once():
    from llmlab.runner.workers import Dispatch

    calls = list(range(1000))
    dispatch = Dispatch(calls, 2)
    first = [dispatch.first(32, i) for i in range(2)]
    assert [len(c) for c in first] == [64, 64]  # twice the worker's concurrency to start with
    chunks = []
    while dispatch.left:
        chunks.append(dispatch.more(32))
    sizes = [len(c) for c in chunks]
    assert max(sizes) == 32 and sizes == sorted(sizes, reverse=True) and sizes[-1] == 1
    assert dispatch.more(32) == []  # nothing left: the worker's signal to finish
    handed = [c for chunk in first + chunks for c in chunk]
    assert handed == calls  # in plan order, each call exactly once

    small = Dispatch(list(range(24)), 2)
    assert [len(small.first(32, i)) for i in range(2)] == [12, 12]  # a small plan is split evenly at once
    assert small.left == 0


def test_a_workers_feed_asks_once_when_few_calls_are_left_and_ends_on_an_empty_chunk():
    import collections

    from llmlab.runner.workers import Feed

    async def scenario() -> list:
        asks = []
        feed = Feed(lambda: asks.append(1), low_water=2)
        pending = collections.deque([1, 2, 3])
        feed.attach(pending)
        pending.popleft()
        feed.taken()
        assert asks == []  # 2 left: enough
        pending.popleft()
        feed.taken()
        feed.taken()
        assert asks == [1]  # 1 left: one request, not one per call taken
        pending.popleft()
        waiter = asyncio.ensure_future(feed.wait())
        await asyncio.sleep(0)
        assert not waiter.done()
        feed.add([4, 5])
        assert await waiter and list(pending) == [4, 5]
        pending.clear()
        waiter = asyncio.ensure_future(feed.wait())
        await asyncio.sleep(0)
        assert asks == [1, 1]  # an empty queue asks again
        feed.add([])
        assert await waiter is False and feed.ended
        return asks

    assert asyncio.run(scenario()) == [1, 1]

    async def budget_spent() -> None:  # a worker whose budget share is spent asks for nothing more
        asks = []
        feed = Feed(lambda: asks.append(1), low_water=2, budget_spent=lambda: True)
        feed.attach(collections.deque())
        assert await feed.wait() is False
        assert asks == [] and feed.budget_stopped

    asyncio.run(budget_spent())


def test_a_workers_pipe_writer_closes_only_after_the_rows_it_was_sending_are_sent():
    # the lost-row race: close() cancelled the periodic flush while its send was still in a thread, and the worker
    # process exited (os._exit) before that send wrote: a call with no row, recorded by the parent as WorkerDied
    from llmlab.runner.workers import _PipeWriter

    sent: list[tuple[str, list]] = []
    calls = []

    def send(kind: str, body: list) -> None:
        calls.append(kind)
        if len(calls) == 1:
            time.sleep(0.5)  # the first send is slow (the parent is busy reading another worker's rows)
        sent.append((kind, body))

    async def scenario() -> None:
        writer = _PipeWriter(send, interval_s=0.01)
        writer.start()
        writer.add({"call_id": "c1"})
        while not calls:  # the periodic flush took c1 and is sending it
            await asyncio.sleep(0.01)
        writer.add({"call_id": "c2"})
        await writer.close()
        # what the worker does next is send "done" and exit: every row must be out by now
        assert sorted(row["call_id"] for _, rows in sent for row, _scores in rows) == ["c1", "c2"]

    asyncio.run(scenario())


def _worker_children() -> list[int]:
    """The live worker processes this process started, spares excluded."""
    import os
    from pathlib import Path

    from llmlab.runner.workers import spare_pids

    mine, spares = os.getpid(), set(spare_pids())
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmd = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        pid = int(stat.parent.name)
        if int(fields[1]) == mine and b"llmlab.runner.workers" in cmd and pid not in spares and _alive(pid):
            found.append(pid)
    return found


def test_a_stalled_worker_holds_back_only_its_chunk_the_other_worker_does_the_rest(sandbox):
    import os
    import signal

    from llmlab.runner import prepare, start

    n = 240
    # flush_interval_s: a worker sends its finished rows every 0.02 s, so few finished rows wait in it unsent
    the_plan = prepare([f"Count {i}." for i in range(n)], ["sandbox/fast"], cache=False, workers=2, concurrency=4,
                       timeout_s=60, flush_interval_s=0.02)
    handle = start(the_plan, on_result=lambda row: None)
    deadline = time.monotonic() + 120
    while (handle.stats is None or handle.stats.done < 4) and time.monotonic() < deadline:
        time.sleep(0.02)
    workers = _worker_children()
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGSTOP)
    # each worker has concurrency 2: the stalled one holds at most 2 in flight, 2 x 2 unstarted (its first chunk)
    # or one more chunk of at most 2, and the rows it finished in its last flush interval, unsent; the running
    # worker takes everything else (before the chunked hand-out it stopped at its fixed half: 120 of 240)
    held = 12
    try:
        deadline, last, still_since = time.monotonic() + 120, -1, time.monotonic()
        while handle.stats.done < n - held and time.monotonic() < deadline:
            if handle.stats.done != last:
                last, still_since = handle.stats.done, time.monotonic()
            elif time.monotonic() - still_since > 10:  # nothing more arrives: the running worker has no calls left
                break
            time.sleep(0.05)
        done_while_stalled = handle.stats.done
    finally:
        os.kill(workers[0], signal.SIGCONT)
    res = handle.result(120)
    assert done_while_stalled >= n - held, f"only {done_while_stalled} of {n} calls done while one worker was stalled"
    assert len(res.results) == n and res.results["call_id"].is_unique and (res.results["status"] == "ok").all()


def test_a_budget_in_workers_is_spent_in_full_and_the_calls_it_does_not_cover_are_recorded(sandbox):
    one = llmlab.run(["Say 0."], ["sandbox/fast"], progress=False, cache=False)
    per_call_usd = float(one.results["cost_usd"].iloc[0])
    assert per_call_usd > 0
    budget = 10 * per_call_usd
    from llmlab.runner import prepare, start

    the_plan = prepare([f"Say {i}." for i in range(1, 61)], ["sandbox/fast"], cache=False, workers=2, concurrency=2,
                       timeout_s=30)
    # the run-time budget, which holds when the plan's estimate was too low: set below what the calls cost
    the_plan.options = the_plan.options.model_copy(update={"budget_usd": budget})
    rows = start(the_plan, on_result=lambda row: None).result(120).results
    assert len(rows) == 60 and rows["call_id"].is_unique
    ok, stopped = rows[rows["status"] == "ok"], rows[rows["status"] != "ok"]
    assert set(stopped["error_type"]) == {"BudgetExceeded"} and len(stopped) >= 40
    spent = float(ok["cost_usd"].sum())
    # each worker spends its half before it stops (one call in flight each may overshoot); a worker that ran out
    # does not take the other's calls and skip them
    assert 0.9 * budget <= spent <= budget + 3 * per_call_usd, (spent, budget)


def test_a_cancelled_run_in_workers_still_records_every_planned_call(sandbox):
    import time

    from llmlab.runner import prepare, start

    the_plan = prepare([f"Say {i}." for i in range(300)], ["sandbox/frontier"], cache=False, workers=2,
                       concurrency=2, timeout_s=30)
    handle = start(the_plan, on_result=lambda row: None)
    deadline = time.monotonic() + 90
    while (handle.stats is None or handle.stats.done < 4) and time.monotonic() < deadline:
        time.sleep(0.05)
    handle.cancel()
    res = handle.result(120)
    rows = res.results
    assert len(rows) == 300 and rows["call_id"].is_unique
    assert (rows["status"] == "ok").sum() >= 4 and (rows["error_type"] == "cancelled").sum() > 0
    assert set(rows["status"]) <= {"ok", "error"}


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, ended but not reaped, counts as ended)."""
    from pathlib import Path

    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def test_a_run_in_workers_leaves_spares_that_the_next_run_takes_unless_the_environment_changed(sandbox, monkeypatch):
    from llmlab.runner.workers import spare_pids

    monkeypatch.delenv("LLMLAB_WORKER_SPARES", raising=False)
    prompts = [f"Spare {i}?" for i in range(8)]
    kw = dict(progress=False, cache=False, workers=2, timeout_s=30)
    llmlab.run(prompts, ["sandbox/fast"], **kw)
    spares = spare_pids()
    assert len(spares) == 2 and all(_alive(p) for p in spares)

    second = llmlab.run([p + " again" for p in prompts], ["sandbox/fast"], **kw)
    assert second.stats.spare_workers == 2  # no new interpreter, no LiteLLM import: the spares ran it
    assert len(second.results) == 8 and (second.results["status"] == "ok").all()
    assert not set(spare_pids()) & set(spares) and len(spare_pids()) == 2  # used ones replaced by new spares

    monkeypatch.setenv("LLMLAB_SPARE_TEST_MARKER", "a setting changed between runs")
    before = spare_pids()
    third = llmlab.run([p + " once more" for p in prompts], ["sandbox/fast"], **kw)
    assert third.stats.spare_workers == 0  # started with the old environment: never used
    assert len(third.results) == 8 and (third.results["status"] == "ok").all()
    deadline = time.monotonic() + 30
    while any(_alive(p) for p in before) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in before), "the stale spares were stopped"

    monkeypatch.setenv("LLMLAB_WORKER_SPARES", "0")
    llmlab.run([p + " last" for p in prompts], ["sandbox/fast"], **kw)
    assert spare_pids() == []


def test_spare_workers_end_when_their_parent_process_ends(sandbox, tmp_path):
    import json
    import os
    import subprocess
    import sys

    script = (
        "import json, llmlab\n"
        "from llmlab.runner.workers import spare_pids\n"
        "llmlab.run(['Hi?', 'Ho?', 'Ha?', 'He?'], ['sandbox/fast'], progress=False, cache=False, workers=2,"
        " timeout_s=30)\n"
        "print(json.dumps(spare_pids()))\n"
    )
    env = {**os.environ, "LLMLAB_DB": str(tmp_path / "child.duckdb"), "LLMLAB_SANDBOX_API_BASE": sandbox.api_base}
    env.pop("LLMLAB_WORKER_SPARES", None)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    pids = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(pids) == 2
    deadline = time.monotonic() + 90  # a spare still importing LiteLLM finishes that first, then sees its stdin end
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(p) for p in pids), "no worker process outlives the kernel that started it"
