"""Production recording (issue 13): llmlab.LiteLLMLogger records every call LiteLLM makes, from the SDK, a Router
built from the exported config and the real LiteLLM proxy, without ever getting in the application's way.

Every count is checked against the sandbox's own request counter (one row per provider request: a retry or a
fallback is a request of its own). The store is read back with SQL and, for what must never be stored, as raw
bytes.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml

import llmlab
from llmlab.production.recorder import merge_spilled, spill_dir
from llmlab.routing.litellm_config import litellm_config, router_kwargs, write_litellm_config
from llmlab.store import Store

REPO = Path(__file__).resolve().parent.parent
CANARY_KEY = "sk-llmlab-canary-0123456789abcdefCANARY"
TABLE = pd.DataFrame([
    {"category": "arithmetic", "model": "sandbox/tiny", "fallbacks": ["sandbox/frontier"]},
    {"category": "code", "model": "sandbox/balanced", "fallbacks": ["sandbox/frontier"]},
    {"category": "default", "model": "sandbox/fast", "fallbacks": ["sandbox/frontier"]},
])


def _litellm():
    from llmlab._litellm import litellm

    return litellm()


@pytest.fixture
def use_logger(monkeypatch):
    """Install loggers as LiteLLM callbacks; removes them from every LiteLLM callback list afterwards."""
    ll = _litellm()
    installed = []

    def install(**kw):
        lg = llmlab.LiteLLMLogger(**kw)
        installed.append(lg)
        ll.callbacks = [lg]
        return lg

    yield install
    ll.callbacks = []
    for lg in installed:
        ll.logging_callback_manager.remove_callback_from_all_lists(lg)
        lg.close()


def _msgs(text):
    return [{"role": "user", "content": text}]


def _run(coro):
    return asyncio.run(coro)


def _wait_for(predicate, timeout_s=90.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value is not None and value is not False:
            return value
        time.sleep(0.2)
    return predicate()


def _text_columns_containing(store: Store, needle: str) -> list[str]:
    hits = []
    for table in ("runs", "prompts", "call_records", "scores"):
        cols = store.sql(f"SELECT column_name FROM information_schema.columns WHERE table_name = '{table}' "
                         "AND data_type = 'VARCHAR'")["column_name"]
        for c in cols:
            n = store.sql(f"SELECT count(*) AS n FROM {table} WHERE contains({c}, ?)", [needle])["n"].iloc[0]
            if n:
                hits.append(f"{table}.{c}")
    return hits


# ------------------------------------------------------------------------------------------------ the SDK
def test_an_application_loop_of_acompletion_calls_records_every_call(sandbox, use_logger):
    # max_retries=0: the OpenAI SDK's own retries happen inside one LiteLLM call, which LiteLLM logs once
    lg = use_logger(run_name="app loop")
    ll = _litellm()
    sandbox.inject("500", model="tiny", times=3)

    async def app():
        outcomes = []
        for i in range(12):
            model = ["frontier", "fast", "tiny", "balanced"][i % 4]
            try:
                if i % 3 == 0:
                    stream = await ll.acompletion(model=f"openai/{model}", api_base=sandbox.api_base, api_key="k",
                                                  messages=_msgs(f"Stream number {i}."), stream=True,
                                                  max_retries=0, metadata={"tags": ["summarization"]})
                    async for _ in stream:
                        pass
                else:
                    await ll.acompletion(model=f"openai/{model}", api_base=sandbox.api_base, api_key="k",
                                         messages=_msgs(f"What is {i} + {i}?"), max_retries=0,
                                         metadata={"tags": ["arithmetic"]})
                outcomes.append("ok")
            except Exception as exc:  # noqa: BLE001 - the application sees LiteLLM's error, not the logger's
                outcomes.append(type(exc).__name__)
        await lg.aflush()
        return outcomes

    outcomes = _run(app())
    ll.completion(model="openai/frontier", api_base=sandbox.api_base, api_key="k", messages=_msgs("sync call"))
    assert lg.flush(60)
    served = sandbox.stats()
    # LiteLLM delivers a sync call's success event from its own thread after the call returns: wait for it
    deadline = time.monotonic() + 60
    while len(Store().results(lg.run_id)) < served["requests"] and time.monotonic() < deadline:
        time.sleep(0.2)
        lg.flush(10)
    res = Store().results(lg.run_id)
    assert len(res) == served["requests"] == 13
    assert lg.counters()["callback_errors"] == 0 and lg.dropped == 0
    assert (res["status"] == "error").sum() == served["by_outcome"].get("500", 0) == outcomes.count(
        "InternalServerError") >= 1
    assert set(res.loc[res["status"] == "error", "http_status"]) == {500}
    assert res["litellm_call_id"].notna().all() and res["litellm_call_id"].is_unique
    streamed = res[(res["category"] == "summarization") & (res["status"] == "ok")]
    assert len(streamed) >= 2 and streamed["ttft_ms"].notna().all()
    assert (streamed["ttft_ms"] <= streamed["latency_ms"]).all()
    assert res.loc[res["category"] != "summarization", "ttft_ms"].isna().all()  # TTFT only for streams
    assert set(res["model"]) == {"sandbox/frontier", "sandbox/fast", "sandbox/tiny", "sandbox/balanced"}
    run = Store().run(lg.run_id)
    assert run["source"] == "production" and run["name"] == "app loop"
    assert run["params"]["capture"] == "hash"


def test_request_metadata_feedback_and_llmlab_feedback_become_human_scores(sandbox, use_logger):
    lg = use_logger()
    ll = _litellm()

    async def app():
        a = await ll.acompletion(model="openai/frontier", api_base=sandbox.api_base, api_key="k",
                                 messages=_msgs("first"), metadata={"llmlab_feedback": 0.25})
        b = await ll.acompletion(model="openai/fast", api_base=sandbox.api_base, api_key="k",
                                 messages=_msgs("second"), metadata={"llmlab_feedback": "not a score"})
        c = await ll.acompletion(model="openai/fast", api_base=sandbox.api_base, api_key="k", messages=_msgs("third"))
        await lg.aflush()
        return a, b, c

    _run(app())
    assert lg.flush(60)
    res = Store().results(lg.run_id).set_index("model")
    first_id = Store().results(lg.run_id).query("model == 'sandbox/frontier'")["litellm_call_id"].iloc[0]
    assert res.loc["sandbox/frontier", "quality"] == pytest.approx(0.25)
    assert lg.counters()["feedback_errors"] == 1  # the bad value is counted, the call still recorded
    third = Store().results(lg.run_id)
    third_id = third[third["metadata"] == '{"tags": []}']["litellm_call_id"].iloc[0]
    assert llmlab.feedback(third_id, 4, scale="stars", comment="good") == pytest.approx(0.75)
    assert llmlab.feedback(first_id, 1.0) == 1.0  # the latest human score wins
    q = Store().results(lg.run_id).set_index("litellm_call_id")["quality"]
    assert q[third_id] == pytest.approx(0.75) and q[first_id] == 1.0
    with pytest.raises(KeyError):
        llmlab.feedback("no-such-call", 1.0, wait_s=0.5)
    with pytest.raises(ValueError):
        llmlab.feedback(first_id, 7)


# ------------------------------------------------------------------------------------------------ a Router
def test_a_router_from_the_exported_config_records_every_attempt_and_the_fallback(sandbox, use_logger,
                                                                                   monkeypatch):
    monkeypatch.setenv("LLMLAB_SANDBOX_API_KEY", "sandbox-key")
    lg = use_logger()
    router = _litellm().Router(**router_kwargs(litellm_config(TABLE)))
    sandbox.inject("500", model="tiny", times=100)  # the arithmetic row's primary always fails

    async def app():
        for i in range(4):
            await router.acompletion(model="llmlab-router", messages=_msgs(f"What is {i} * 3?"),
                                     metadata={"tags": ["arithmetic"]})
            await router.acompletion(model="llmlab-router", messages=_msgs(f"Write code {i}."),
                                     metadata={"tags": ["code"]})
        stream = await router.acompletion(model="llmlab-router", messages=_msgs("Summarize this."), stream=True,
                                          stream_options={"include_usage": True})
        async for _ in stream:
            pass
        await lg.aflush()

    _run(app())
    assert lg.flush(60)
    served = sandbox.stats()
    res = Store().results(lg.run_id)
    assert len(res) == served["requests"]
    assert res["model_group"].eq("llmlab-router").all()
    assert res["deployment"].str.startswith("llmlab-router").all()
    tiny = res[res["model"] == "sandbox/tiny"]
    assert len(tiny) == served["by_model"]["tiny"] and (tiny["status"] == "error").all()
    fallback = res[(res["model"] == "sandbox/frontier")]
    assert len(fallback) == 4 and (fallback["fallbacks_taken"] == 1).all() and (fallback["status"] == "ok").all()
    assert (res.loc[res["model"] == "sandbox/balanced", "category"] == "code").all()
    ok = res[res["status"] == "ok"]
    assert (ok["cost_usd"] > 0).all()  # the exported prices, through LiteLLM's response_cost
    assert ok["ttft_ms"].notna().sum() == 1
    # the attempts of one user request share its trace; each arithmetic request ends answered by the fallback
    arithmetic = res[res["category"] == "arithmetic"]
    assert arithmetic["trace_id"].nunique() == 4
    last = arithmetic.sort_values("created_at_utc").groupby("trace_id").tail(1)
    assert (last["model"] == "sandbox/frontier").all() and (last["status"] == "ok").all()


def test_each_http_attempt_is_one_row_grouped_by_request_and_an_error_counts_once(sandbox, use_logger,
                                                                                 monkeypatch):
    """A Router with retries: a request whose three attempts all fail, and one that fails twice then succeeds.
    LiteLLM reports each failed attempt twice (the per-attempt hook and its failure event): one row each, the
    repeat counted in duplicate_events; the comparison counts each user request once."""
    from llmlab.production import production_requests

    monkeypatch.setenv("LLMLAB_SANDBOX_API_KEY", "sandbox-key")
    rows = [json.loads(line) for line in (REPO / "datasets" / "quickstart.jsonl").read_text().splitlines()][:2]
    exp = llmlab.run(pd.DataFrame(rows), ["sandbox/tiny"], progress=False, name="experiment")
    cfg = litellm_config(pd.DataFrame([{"category": "default", "model": "sandbox/tiny", "fallbacks": []}]),
                         public_model_name="tiny", num_retries=2)
    lg = use_logger(run_name="retries")
    router = _litellm().Router(**router_kwargs(cfg))
    sandbox.reset_stats()
    sandbox.inject("500", model="tiny", times=5)
    outcomes = []

    async def app():
        for r in rows:
            try:
                await router.acompletion(model="tiny", messages=_msgs(r["prompt"]), max_tokens=16)
                outcomes.append("ok")
            except Exception as exc:  # noqa: BLE001
                outcomes.append(type(exc).__name__)
        await lg.aflush()

    _run(app())
    assert lg.flush(60)
    served = sandbox.stats()
    res = Store().results(lg.run_id)
    assert outcomes == ["InternalServerError", "ok"]  # three failures, then two and a success
    assert served["requests"] == 6 and served["by_outcome"] == {"500": 5, "ok": 1}
    assert len(res) == res["attempts"].sum() == served["requests"]  # one row per HTTP attempt, none twice
    assert (res["status"] == "error").sum() == 5 and set(res.loc[res["status"] == "error", "http_status"]) == {500}
    counters = lg.counters()
    assert counters["duplicate_events"] == 5 and counters["callback_errors"] == 0
    # every attempt carries its user request's id; the attempts of one request are grouped under it
    assert res["trace_id"].notna().all() and res.groupby("trace_id").size().sort_values().tolist() == [3, 3]
    assert res["litellm_call_id"].is_unique  # outside the proxy, one LiteLLM call per attempt
    requests = production_requests(res).set_index("status")
    assert requests["attempts"].to_dict() == {"ok": 3, "error": 3}
    cmp = llmlab.compare_production(exp.run_id, lg.run_id, by_category=False).set_index("metric")
    assert cmp.loc["error_rate", "production"] == 0.5 and cmp.loc["error_rate", "n_production"] == 2
    assert cmp.loc["fallback_rate", "production"] == 0.0


def test_a_stream_cut_after_the_call_returned_is_still_one_attempt(sandbox, use_logger):
    """A stream that fails mid-way never reaches LiteLLM's per-attempt hook (the call had returned): its failure
    event is the attempt's only report, and is its row; a plain failed call is reported twice and is one row."""
    lg = use_logger()
    ll = _litellm()
    sandbox.inject("cut_stream", model="tiny", times=1)
    sandbox.inject("500", model="fast", times=1)

    async def app():
        with pytest.raises(Exception):  # noqa: B017,PT011 - LiteLLM's mid-stream error class varies by release
            stream = await ll.acompletion(model="openai/tiny", api_base=sandbox.api_base, api_key="k", stream=True,
                                          max_retries=0, messages=_msgs("a long story, please"))
            async for _ in stream:
                pass
        with pytest.raises(Exception):  # noqa: B017,PT011
            await ll.acompletion(model="openai/fast", api_base=sandbox.api_base, api_key="k", max_retries=0,
                                 messages=_msgs("fail once"))
        await lg.aflush()

    _run(app())
    assert lg.flush(60)
    res = Store().results(lg.run_id).set_index("model")
    assert sandbox.stats()["by_outcome"] == {"cut_stream": 1, "500": 1}
    assert len(res) == res["attempts"].sum() == 2 and (res["status"] == "error").all()
    assert res.loc["sandbox/fast", "http_status"] == 500 and lg.counters()["duplicate_events"] == 1


def test_a_failure_event_delivered_twice_or_reaching_no_deployment_is_not_an_attempt(use_logger):
    """Under load LiteLLM can deliver one failure event twice (its sync and its async path): one row. A Router
    failure that called no deployment (tag filtering while the tagged deployment cools down) is ``attempts = 0``."""
    lg = use_logger()
    exc = ValueError("Not allowed to access model due to tags configuration. Passed model=llmlab-router")
    now = time.time()
    kwargs = {"litellm_call_id": "c-1", "exception": exc, "messages": _msgs("tagged"),
              "litellm_params": {"acompletion": True, "metadata": {"model_group": "llmlab-router"}},
              "standard_logging_object": {"status": "failure", "litellm_call_id": "c-1", "trace_id": "t-1",
                                          "model": "llmlab-router", "startTime": now - 0.4, "endTime": now,
                                          "error_str": str(exc), "error_information": {"error_class": "ValueError"},
                                          "messages": _msgs("tagged")}}
    lg.log_failure_event(kwargs, None, None, None)
    _run(lg.async_log_failure_event(kwargs, None, None, None))
    assert lg.flush(30)
    res = Store().results(lg.run_id)
    assert len(res) == 1 and res["attempts"].tolist() == [0] and res["trace_id"].tolist() == ["t-1"]
    assert lg.counters()["duplicate_events"] == 1


# ------------------------------------------------------------------------------------------------ safety
def test_a_full_queue_drops_and_counts_exactly_never_blocks_or_raises(sandbox, use_logger):
    lg = use_logger(queue_size=2, flush_interval_s=2.0, batch_size=1)
    ll = _litellm()

    async def app():
        await asyncio.gather(*[ll.acompletion(model="openai/fast", api_base=sandbox.api_base, api_key="k",
                                              messages=_msgs(f"burst {i}")) for i in range(40)])
        await lg.aflush()

    _run(app())
    assert lg.flush(60)
    stored = len(Store().results(lg.run_id))
    assert lg.dropped > 0 and stored + lg.dropped == sandbox.stats()["requests"] == 40
    params = _wait_for(lambda: p if (p := Store().run(lg.run_id)["params"]).get("dropped_rows") == lg.dropped else None)
    assert params["dropped_rows"] == lg.dropped and params["queue_size"] == 2


_HOLDER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("CREATE TABLE IF NOT EXISTS holder (x INTEGER)")
print("locked", flush=True)
sys.stdin.readline()
con.close()
"""


def test_a_store_locked_by_another_process_loses_nothing(sandbox, use_logger, tmp_path):
    db = tmp_path / "locked.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(db)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        lg = use_logger(db=db, lock_timeout_s=0.3, flush_interval_s=0.2)
        ll = _litellm()

        async def app():
            for i in range(6):
                await ll.acompletion(model="openai/balanced", api_base=sandbox.api_base, api_key="k",
                                     messages=_msgs(f"while locked {i}"))
            await lg.aflush()

        _run(app())
        assert lg.flush(60)
        assert lg.spilled == 6 and lg.rows_written == 0
        assert list(spill_dir(db).glob("*.jsonl"))
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    # the writer merges the spilled segments once the store opens again
    assert _wait_for(lambda: lg.counters()["merged_rows"] == 6 or None, timeout_s=60)
    store = Store(db)
    assert len(store.results(lg.run_id)) == 6 == sandbox.stats()["requests"]
    assert not list(spill_dir(db).glob("*.jsonl"))
    assert merge_spilled(store) == 0  # nothing left, nothing merged twice
    assert len(store.results(lg.run_id)) == 6


@pytest.mark.parametrize("capture", ["hash", "full"])
def test_no_prompt_text_unless_asked_and_never_a_key(sandbox, use_logger, monkeypatch, tmp_path, capture):
    monkeypatch.setenv("LLMLAB_SANDBOX_API_KEY", CANARY_KEY)
    db = tmp_path / f"{capture}.duckdb"
    prompt = "Private customer question 7f3a9-PROMPT-CANARY: my account number is 0042."
    lg = use_logger(db=db, capture=capture)
    ll = _litellm()

    async def app():
        await ll.acompletion(model="openai/frontier", api_base=sandbox.api_base, api_key=CANARY_KEY,
                             messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": prompt}],
                             metadata={"tags": ["extraction"], "note": f"called with {CANARY_KEY}"})
        sandbox.inject("401", model="fast", times=1)
        try:
            await ll.acompletion(model="openai/fast", api_base=sandbox.api_base, api_key=CANARY_KEY,
                                 messages=_msgs(prompt), max_retries=0)
        except Exception:  # noqa: BLE001
            pass
        await lg.aflush()

    _run(app())
    lg.close()
    store = Store(db)
    res = store.results(lg.run_id)
    assert len(res) == 2 == sandbox.stats()["requests"]
    from llmlab.prompts import prompt_id_for

    assert prompt_id_for(prompt, "Be brief.") in set(res["prompt_id"])  # matchable with the experiment's ids
    assert res["prompt_hash"].str.len().eq(64).all()
    assert _text_columns_containing(store, CANARY_KEY) == []
    assert _text_columns_containing(store, CANARY_KEY[3:15]) == []  # not even a fragment
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file() and p.name.startswith(capture))
    assert CANARY_KEY.encode() not in raw
    if capture == "hash":
        assert _text_columns_containing(store, "7f3a9-PROMPT-CANARY") == []
        assert b"7f3a9-PROMPT-CANARY" not in raw and b"Simulated answer" not in raw
        assert res["response"].isna().all() and res.loc[res["status"] == "ok", "response_hash"].notna().all()
    else:  # the control: the same search finds the text when it is asked for
        assert "prompts.prompt" in _text_columns_containing(store, "7f3a9-PROMPT-CANARY")
        assert res.loc[res["status"] == "ok", "response"].str.len().gt(0).all()


def test_importing_llmlab_does_not_import_litellm():
    code = ("import sys, llmlab, llmlab.production, llmlab.production.feedback; "
            "print('litellm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.stdout.strip() == "False", out.stderr


# ------------------------------------------------------------------------------------------------ the proxy
def _proxy_chat(proxy, body, timeout_s=120.0):
    req = urllib.request.Request(f"{proxy.url}/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {proxy.master_key}",
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


@pytest.fixture
def proxy_with_logger(sandbox, tmp_path, monkeypatch):
    """The real LiteLLM proxy serving the exported config with the llmlab callback; yields (proxy, db, start)."""
    from proxy_process import start_proxy

    procs = []

    def start(**env):
        monkeypatch.setenv("LLMLAB_SANDBOX_API_KEY", "sandbox-key")
        path = write_litellm_config(TABLE, tmp_path / "routing.yaml", production_logger=True)
        cfg = yaml.safe_load(path.read_text())
        assert cfg["litellm_settings"]["callbacks"] == ["llmlab.production.proxy.logger"]
        db = tmp_path / "proxy.duckdb"
        full = {"LLMLAB_SANDBOX_API_BASE": sandbox.api_base, "LLMLAB_SANDBOX_API_KEY": "sandbox-key",
                "LLMLAB_DB": str(db), "LLMLAB_PRODUCTION_RUN_NAME": "proxy",
                "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), **env}
        p = start_proxy(path, full, tmp_path)
        procs.append(p)
        return p, db

    yield start
    for p in procs:
        p.stop()


def _production_rows(db) -> pd.DataFrame:
    if not Path(db).exists():
        return pd.DataFrame()
    store = Store(db)
    runs = store.sql("SELECT run_id FROM runs WHERE source = 'production'")
    if runs.empty:
        return pd.DataFrame()
    return store.results(runs["run_id"].iloc[0])


@pytest.mark.slow
def test_the_real_proxy_records_every_call_with_a_streamed_ttft_and_feedback_by_header(proxy_with_logger, sandbox):
    proxy, db = proxy_with_logger()
    sandbox.reset_stats()
    headers = []
    for i, tags in enumerate([["arithmetic"], ["code"], [], ["code"]]):
        status, _, h = _proxy_chat(proxy, {"model": "llmlab-router", "messages": _msgs(f"q {i}"), "tags": tags,
                                           "metadata": {"app_version": "1.2"}})
        assert status == 200
        headers.append(h)
    status, body, _ = _proxy_chat(proxy, {"model": "llmlab-router", "messages": _msgs("stream it"), "stream": True})
    assert status == 200 and b"data:" in body
    rows = _wait_for(lambda: r if len(r := _production_rows(db)) >= sandbox.stats()["requests"] else None)
    assert rows is not None and len(rows) == sandbox.stats()["requests"] == 5, proxy.log()
    assert rows["ttft_ms"].notna().sum() == 1
    assert (rows["model_group"] == "llmlab-router").all()
    assert set(rows["model"]) == {"sandbox/tiny", "sandbox/balanced", "sandbox/fast"}
    tagged = rows[rows["ttft_ms"].isna()]
    assert tagged["metadata"].str.contains('"app_version": "1.2"').all()
    assert set(rows["category"].dropna()) == {"arithmetic", "code"}  # the proxy's User-Agent tag is not one
    call_id = headers[0].get("x-litellm-call-id")
    assert call_id
    assert llmlab.feedback(call_id, 1.0, store=Store(db)) == 1.0
    assert _production_rows(db)["quality"].notna().sum() == 1
    assert Store(db).run(rows["run_id"].iloc[0])["name"] == "proxy"


@pytest.mark.slow
@pytest.mark.parametrize("queue_size", [10_000, 4])
def test_faults_through_the_proxy_at_concurrency_lose_no_row_or_report_exactly_what_was_dropped(
        proxy_with_logger, sandbox, queue_size):
    """Rows (their ``attempts``) plus the attempts reported dropped equal the sandbox's request counter, exactly:
    one row per HTTP attempt, each with its user request's id. Behind the proxy LiteLLM sends a failure event only
    for a request's first failure, and also for a Router failure that reached no deployment, so its events are
    not the attempts; the per-attempt hook is.

    benchmarks/logger_overhead.py --faults 0.1 --only-logged checks the same equality at the issue's full size
    (2,000 requests, concurrency 50: about two minutes here, too long for the suite)."""
    from llmlab.production import production_requests

    n, concurrency = 150, 25
    proxy, db = proxy_with_logger(LLMLAB_PRODUCTION_QUEUE_SIZE=str(queue_size),
                                  LLMLAB_PRODUCTION_FLUSH_INTERVAL_S="1.0", LLMLAB_PRODUCTION_LOCK_TIMEOUT_S="300")
    sandbox.reset_stats()
    sandbox.inject("500", rate=0.1)
    tags = [["arithmetic"], ["code"], []]

    def send(pool, first, count):
        return list(pool.map(lambda i: _proxy_chat(proxy, {"model": "llmlab-router", "tags": tags[i % 3],
                                                           "messages": _msgs(f"load {i}")})[0],
                             range(first, first + count)))

    with ThreadPoolExecutor(concurrency) as pool:
        if queue_size == 10_000:
            statuses = send(pool, 0, n)
        else:
            # force the drops instead of hoping for them: this process holds the store's file lock, so the
            # proxy's writer waits for it and stops draining the queue of 4; traffic goes on until the proxy logs
            # its first drop (and at least n requests have gone, so that some met the injected 500), then the lock
            # is released and the writer catches up
            statuses = []
            with duckdb.connect(str(db)):
                while (("production logger queue full" not in proxy.log() or len(statuses) < n)
                       and len(statuses) < 40 * concurrency):
                    statuses += send(pool, len(statuses), concurrency)
            assert "production logger queue full" in proxy.log(), proxy.log()[-2000:]
            n = len(statuses)
    assert len(statuses) == n
    served = sandbox.stats()
    assert served["by_outcome"].get("500", 0) > 0

    def settled():
        rows = _production_rows(db)
        if rows.empty:
            return None
        params = Store(db).run(rows["run_id"].iloc[0])["params"] or {}
        # LiteLLM logs a success after answering: wait until every provider request is a row or a counted drop
        recorded = int(rows["attempts"].sum()) + params.get("dropped_attempts", 0)
        done = recorded >= served["requests"] and len(rows) + params.get("dropped_rows", 0) == params["events_seen"]
        return (rows, params) if done else None

    got = _wait_for(settled, timeout_s=120)
    assert got, (served, proxy.log()[-2000:])
    rows, params = got
    assert params["callback_errors"] == 0
    assert len(rows) + params["dropped_rows"] == params["events_seen"]
    assert rows["attempts"].sum() + params["dropped_attempts"] == served["requests"]  # exactly
    assert set(rows["attempts"]) <= {0, 1}
    if queue_size == 10_000:
        assert params["dropped_rows"] == 0
        attempts = rows[rows["attempts"] == 1]
        assert len(attempts) == served["requests"]
        assert (attempts["status"] == "ok").sum() == served["by_outcome"]["ok"]
        assert (attempts["status"] == "error").sum() == served["by_outcome"]["500"]
        assert set(attempts.loc[attempts["status"] == "error", "http_status"]) == {500}
        assert attempts.loc[attempts["status"] == "ok", "http_status"].isna().all()  # not a retried 500's
        # LiteLLM's failure event repeated a failed attempt the hook had recorded: skipped, not a second row
        assert params["duplicate_events"] > 0
        # every row carries its user request's id, and all of a request's rows share it (and the proxy's call id)
        assert rows["trace_id"].notna().all() and rows["trace_id"].nunique() == n
        assert (rows.groupby("trace_id")["litellm_call_id"].nunique() == 1).all()
        requests = production_requests(rows)
        assert len(requests) == n and requests["attempts"].sum() == served["requests"]
        # a request is an error once, when the client got one, however many of its attempts failed
        assert (requests["status"] == "error").sum() == sum(s != 200 for s in statuses)
    else:
        assert params["dropped_rows"] > 0 and params["dropped_attempts"] > 0 and params["queue_size"] == 4


# ------------------------------------------------------------------------------------------------ back to the lab
def _experiment(models):
    rows = [json.loads(line) for line in (REPO / "datasets" / "quickstart.jsonl").read_text().splitlines()]
    frame = pd.DataFrame(rows).groupby("category").head(4)
    return llmlab.run(frame, models, progress=False, concurrency=16, timeout_s=20, name="experiment")


def test_compare_production_and_refit_from_production_feedback(sandbox, use_logger, monkeypatch):
    """Experiment → production traffic (every prompt to every model, feedback in the metadata) in which the
    model the experiment's table uses most fails every request → the comparison flags its error rate, and the
    policy re-fitted from production routes around it."""
    from llmlab.production import production_requests, refit_from_production, traffic_mix
    from llmlab.routing import routing_table

    monkeypatch.setenv("LLMLAB_SANDBOX_API_KEY", "sandbox-key")
    models = ["sandbox/frontier", "sandbox/fast", "sandbox/tiny"]
    res = _experiment(models)
    exp = res.results
    table = routing_table(exp, tolerance=0.05, min_n=2)
    current_cfg = litellm_config(table)
    broken = table["model"].value_counts().index[0]
    assert set(table["model"]) != {broken}, "the experiment's table must use more than one model"
    quality = exp.set_index(["prompt_id", "model"])["quality"].to_dict()
    prompts = Store().prompts(res.run_id)
    # one model group per model (exploration traffic), no retries or fallbacks: every failure is visible
    cfg = {"model_list": [d for m in models for d in litellm_config(
        pd.DataFrame([{"category": "default", "model": m, "fallbacks": []}]), public_model_name=m)["model_list"]],
        "router_settings": {"num_retries": 0}}
    lg = use_logger(run_name="production")
    router = _litellm().Router(**router_kwargs(cfg))
    sandbox.reset_stats()
    sandbox.inject("500", model=broken.split("/")[1], times=10_000)

    async def traffic():
        for p in prompts.itertuples():
            for m in models:
                msgs = ([{"role": "system", "content": p.system}] if isinstance(p.system, str) and p.system else [])
                msgs.append({"role": "user", "content": p.prompt})
                meta = {"tags": [p.category], "llmlab_feedback": float(quality[(p.prompt_id, m)])}
                try:
                    await router.acompletion(model=m, messages=msgs, metadata=meta, max_tokens=64)
                except Exception:  # noqa: BLE001 - the broken model's requests fail; the logger records them
                    pass
        await lg.aflush()

    _run(traffic())
    n_requests = len(prompts) * len(models)
    prod = Store().results(lg.run_id)
    assert len(prod) == sandbox.stats()["requests"] == n_requests
    requests = production_requests(prod)
    assert len(requests) == n_requests and (requests.loc[requests["model"] == broken, "status"] == "error").all()
    # every production prompt matched an experiment prompt by content hash (no text stored)
    assert prod["prompt"].isna().all()
    mix = traffic_mix(res.run_id, lg.run_id)
    assert mix["matched_to_experiment"].sum() == n_requests
    assert (mix["share_production"] - mix["share_experiment"]).abs().max() < 1e-9
    cmp = llmlab.compare_production(res.run_id, lg.run_id, by_category=False)
    err = cmp[(cmp["metric"] == "error_rate") & (cmp["category"] == "(all)")].set_index("model")
    assert err.loc[broken, "production"] == 1.0 and err.loc[broken, "experiment"] == 0.0
    assert bool(err.loc[broken, "significant"]) and err.loc[broken, "p_value"] < 1e-6
    others = [m for m in models if m != broken]
    assert not err.loc[others, "significant"].any()
    q = cmp[(cmp["metric"] == "quality")].set_index("model")
    for m in others:  # quality from feedback: equal to the experiment's (the feedback was its scores)
        assert q.loc[m, "production"] == pytest.approx(q.loc[m, "experiment"])
        assert q.loc[m, "production_low"] <= q.loc[m, "production"] <= q.loc[m, "production_high"]
    lat = cmp[cmp["metric"] == "latency_p95_ms"]
    assert (lat["experiment_low"] <= lat["experiment"]).all() and (lat["experiment"] <= lat["experiment_high"]).all()
    # re-route: fit exactly as from an experiment, and project against the config serving now
    policy, projection = refit_from_production(lg.run_id, current=current_cfg, tolerance=0.05, min_n=2)
    assert broken not in set(policy.mapping.values()) | {policy.default}
    assert projection["current"]["share_by_model"].get(broken, 0) > 0
    assert projection["quality_change"] > 0


@pytest.mark.slow
def test_the_production_notebook_runs_experiment_export_traffic_comparison_refit(tmp_path, monkeypatch):
    from llmlab._jupyter import execute_notebook

    db = tmp_path / "notebook.duckdb"
    for k, v in {"LLMLAB_DB": str(db), "LLMLAB_REPORTS_DIR": str(tmp_path),
                 "LLMLAB_SANDBOX_LATENCY_SCALE": "0.02"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("LLMLAB_SANDBOX_API_BASE", raising=False)
    nb = execute_notebook(REPO / "notebooks" / "production.ipynb", output=tmp_path / "executed.ipynb",
                          timeout_s=300, cwd=str(REPO / "notebooks"))
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    store = Store(db)
    runs = store.runs().set_index("name")
    assert runs.loc["production (simulated)", "source"] == "production"
    prod = store.results(runs.loc["production (simulated)", "run_id"])
    exp_prompts = store.prompts(runs.loc["experiment", "run_id"])
    from llmlab.production import production_requests

    # every prompt to the routed group and to each of three models; the routed group's fallbacks add attempts
    assert len(production_requests(prod)) == len(exp_prompts) * 4 <= len(prod)
    assert prod["prompt"].isna().all() and prod["quality"].notna().sum() > 0
    cfg = yaml.safe_load((tmp_path / "production-refit.yaml").read_text())
    assert cfg["litellm_settings"]["callbacks"] == ["llmlab.production.proxy.logger"]
    texts = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "projected quality change:" in texts


def test_the_routing_plugins_decision_is_recorded_on_each_production_row(sandbox, use_logger, tmp_path,
                                                                          monkeypatch):
    """A litellm.Router served by llmlab's routing plugin (an exported per-prompt policy) with the production
    logger: each row holds the policy's decision (model, score, threshold) in metadata.routing_decision, and the
    deployment the row records is the one the decision chose."""
    from test_routing_plugin import EASY, HARD, NEW_WORDS, WORDS, _prompts, _results

    from llmlab.routing import fit_policy
    from llmlab.routing.plugin import PolicyPlugin, load_router

    monkeypatch.setenv("LLMLAB_SANDBOX_API_KEY", "sandbox-key")
    policy = fit_policy(_results(_prompts(HARD, WORDS, 45), _prompts(EASY, WORDS, 45)), kind="prompt", min_df=1,
                        target_cost_per_1k_usd=6.0)
    config = policy.export(tmp_path / "serve")
    plugin = PolicyPlugin.from_file(config.parent / "llmlab_route_policy.json")
    router = load_router(config)
    db = tmp_path / "prod.duckdb"
    lg = use_logger(db=db)
    prompts = _prompts(HARD, NEW_WORDS, 3) + _prompts(EASY, NEW_WORDS, 3)

    async def app():
        for prompt in prompts:
            await router.acompletion(model="llmlab-router", messages=[{"role": "user", "content": prompt}],
                                     max_tokens=8)
        await lg.aflush()

    _run(app())
    lg.close()
    store = Store(db)
    rows = store.sql("SELECT prompt_id, model, metadata->>'$.routing_decision.model' AS chosen, "
                     "CAST(metadata->>'$.routing_decision.threshold' AS DOUBLE) AS threshold, "
                     "metadata->>'$.routing_decision.policy_kind' AS kind FROM calls WHERE run_id = ?", [lg.run_id])
    assert len(rows) == len(prompts) == sandbox.stats()["requests"]
    from llmlab.prompts import prompt_id_for

    want = {prompt_id_for(p, None): plugin.decide(p) for p in prompts}
    for r in rows.to_dict("records"):
        assert r["chosen"] == want[r["prompt_id"]]["model"] == r["model"]       # recorded, and what was called
        assert r["threshold"] == pytest.approx(want[r["prompt_id"]]["threshold"]) and r["kind"] == "prompt"
    assert set(rows["model"]) == {"sandbox/frontier", "sandbox/tiny"}
    assert "routing_plugin_signals" not in "".join(store.sql("SELECT metadata FROM calls")["metadata"])


@pytest.mark.slow
def test_the_real_proxy_records_the_routing_plugins_decision(sandbox, tmp_path):
    """The real LiteLLM proxy serving an exported per-prompt policy (llmlab's routing plugin) with the production
    logger as its callback: each row holds the decision, and the row's model is the one the policy chose."""
    from proxy_process import start_proxy
    from test_routing_plugin import EASY, HARD, NEW_WORDS, WORDS, _prompts, _results

    from llmlab.prompts import prompt_id_for
    from llmlab.routing import fit_policy
    from llmlab.routing.plugin import PolicyPlugin

    policy = fit_policy(_results(_prompts(HARD, WORDS, 45), _prompts(EASY, WORDS, 45)), kind="prompt", min_df=1,
                        target_cost_per_1k_usd=6.0)
    config = policy.export(tmp_path / "serve")
    cfg = yaml.safe_load(config.read_text())
    cfg.setdefault("litellm_settings", {})["callbacks"] = ["llmlab.production.proxy.logger"]
    config.write_text(yaml.safe_dump(cfg))
    plugin = PolicyPlugin.from_file(config.parent / "llmlab_route_policy.json")
    db = tmp_path / "proxy.duckdb"
    env = {"LLMLAB_SANDBOX_API_BASE": sandbox.api_base, "LLMLAB_SANDBOX_API_KEY": "sandbox-key",
           "LLMLAB_DB": str(db), "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proxy = start_proxy(config, env, tmp_path)
    prompts = _prompts(HARD, NEW_WORDS, 2) + _prompts(EASY, NEW_WORDS, 2)
    try:
        sandbox.reset_stats()
        for prompt in prompts:
            status, body, _ = proxy.chat({"model": "llmlab-router", "max_tokens": 8,
                                          "messages": [{"role": "user", "content": prompt}]})
            assert status == 200, (body, proxy.log())
        rows = _wait_for(lambda: r if len(r := _production_rows(db)) >= len(prompts) else None)
    finally:
        proxy.stop()
    assert rows is not None and len(rows) == len(prompts) == sandbox.stats()["requests"], proxy.log()
    want = {prompt_id_for(p, None): plugin.decide(p)["model"] for p in prompts}
    for r in rows.to_dict("records"):
        decision = json.loads(r["metadata"])["routing_decision"]
        assert decision["model"] == want[r["prompt_id"]] == r["model"]
        assert decision["policy_kind"] == "prompt" and decision["threshold"] is not None
    assert set(rows["model"]) == {"sandbox/frontier", "sandbox/tiny"}
