"""Batch mode end to end on the sandbox: OpenAI and Anthropic batch APIs through LiteLLM, per-row failures, a
restart between submit and collect (a new process resumes from the store), cache hits not resubmitted, a
cancelled or expired batch keeping what completed, the CLI and the magic flag."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import llmlab
from llmlab.cli import main
from llmlab.errors import OptionsError
from llmlab.models import resolve
from llmlab.runner.batch import PROVIDER_LIMITS, request_line, split
from llmlab.sandbox import batch_service
from llmlab.store import Store

ROOT = Path(__file__).resolve().parent.parent
MODELS = ["sandbox/frontier", "sandbox/tiny"]  # frontier speaks OpenAI, tiny Anthropic


@pytest.fixture
def batches(sandbox):
    """The session sandbox's batch service, reset before and after the test."""
    svc = batch_service(sandbox)
    svc.reset()
    yield svc
    svc.reset()


class FakeClock:
    """The sandbox batch service's clock, moved by the test (no sleeping)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _sub(code: str, env: dict, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=str(ROOT))


def test_a_batch_run_of_both_providers_records_every_call_with_batch_prices(batches, sandbox):
    batches.configure(row_failure_rate=0.15)
    store = Store()
    res = llmlab.run("quickstart", MODELS, mode="batch", batch_max_requests=50, batch_poll_s=0.05, store=store,
                     progress=False)
    df = res.results
    n_prompts = len(llmlab.load_prompts("quickstart"))
    assert len(df) == 2 * n_prompts and df["call_id"].is_unique  # one final row per planned call
    # split within the limit: one batch per model per 50 calls; every batch collected
    parts = llmlab.batches(res, store=store)
    assert sorted(parts["provider"].unique()) == ["anthropic", "openai"]
    assert (parts.groupby("model").size() == math.ceil(n_prompts / 50)).all()
    assert (parts["n_requests"] <= 50).all() and parts["n_requests"].sum() == len(df)
    assert set(parts["state"]) == {"collected"} and set(parts["provider_status"]) == {"completed"}
    # per-row failures: exactly the rows the sandbox failed, as error rows with their status
    failed_at_sandbox = sandbox.stats()["by_outcome"].get("500", 0)
    errors = df[df["status"] == "error"]
    assert failed_at_sandbox > 0 and len(errors) == failed_at_sandbox
    assert set(errors["error_type"]) == {"InternalServerError"} and set(errors["http_status"]) == {500}
    ok = df[df["status"] == "ok"]
    # no per-call latency in a batch; the row's time is the batch's completion time
    assert df["latency_ms"].isna().all() and df["ttft_ms"].isna().all()
    done_at = dict(zip(parts["part_id"], parts["completed_at_utc"], strict=True))
    part_of = store.sql("SELECT call_id, part_id FROM batch_requests WHERE run_id = ?", [res.run_id])
    when = dict(zip(part_of["call_id"], part_of["part_id"].map(done_at), strict=True))
    assert all(df["created_at_utc"][i] == when[c] for i, c in enumerate(df["call_id"]))
    # tokens from the provider; cost at half the normal price
    assert ok["input_tokens"].notna().all() and (ok["output_tokens"] > 0).all()
    for model in MODELS:
        spec = resolve(model)
        sub = ok[ok["model"] == model]
        normal = [spec.cost_usd(int(i), int(o)) for i, o in zip(sub["input_tokens"], sub["output_tokens"],
                                                                 strict=True)]
        assert list(sub["cost_usd"]) == pytest.approx([0.5 * x for x in normal])
    # the answers are the live endpoints' answers (the same deterministic sandbox)
    live = llmlab.run("quickstart", MODELS, store=Store(Path(store.path).with_name("live.duckdb")), progress=False,
                      cache=False).results
    want = {(p, m): r for p, m, r in zip(live["prompt_id"], live["model"], live["response"], strict=True)}
    assert all(want[(p, m)] == r for p, m, r in zip(ok["prompt_id"], ok["model"], ok["response"], strict=True))
    # scored like a live run, and the run is finished
    assert ok["auto_score"].notna().any()
    scores = store.scores(res.run_id)
    assert scores["version"].notna().all() and scores["passed"].notna().all() and scores["call_id"].is_unique
    assert res.meta["status"] == "finished" and res.stats.done == len(df)


def test_restart_between_submit_and_collect_a_new_process_resumes(batches, sandbox, tmp_path):
    batches.configure(delay_s=3600, row_failure_rate=0.2)  # nothing completes until the clock says so
    clock = batches.clock = FakeClock()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    submit = _sub("import llmlab\n"
                  "res = llmlab.run('quickstart', ['sandbox/frontier', 'sandbox/tiny'], mode='batch', "
                  "batch_wait=False, progress=False)\n"
                  "print('RUN', res.run_id)\n", env)
    assert submit.returncode == 0, submit.stderr[-2000:]
    run_id = submit.stdout.split("RUN ")[1].split()[0]
    store = Store()
    assert store.run(run_id)["status"] == "submitted"
    parts = llmlab.batches(run_id, store=store)
    assert set(parts["state"]) == {"submitted"} and parts["batch_id"].notna().all()
    assert len(store.results(run_id)) == 0  # nothing collected yet
    # the provider finishes the batches while no llmlab process runs
    clock.now += 3600
    resumed = _sub("import llmlab\n"
                   f"res = llmlab.resume({run_id!r}, poll_s=0.05, progress=False)\n"
                   "df = res.results\n"
                   "print('DONE', len(df), int((df.status == 'ok').sum()), res.meta['status'])\n", env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    n, n_ok, status = resumed.stdout.split("DONE ")[1].split()
    n_prompts = len(llmlab.load_prompts("quickstart"))
    assert int(n) == 2 * n_prompts and status == "finished"
    df = store.results(run_id)
    assert df["call_id"].is_unique and len(df) == 2 * n_prompts
    assert int(n_ok) == int((df["status"] == "ok").sum()) == 2 * n_prompts - sandbox.stats()["by_outcome"]["500"]
    assert set(llmlab.batches(run_id, store=store)["state"]) == {"collected"}
    # resuming again changes nothing
    again = llmlab.resume(run_id, store=store, poll_s=0.05, progress=False)
    assert len(again.results) == len(df)


def test_a_batch_recorded_but_never_sent_is_submitted_on_resume(batches, sandbox):
    """The process died after recording a batch and before sending it: resume sends it from the store."""
    from llmlab.runner.batch import BatchRun
    from llmlab.runner.plan import prepare

    store = Store()
    the_plan = prepare(["What is 2+2?", "Name a colour."], ["sandbox/frontier", "sandbox/balanced"], store=store,
                       mode="batch")
    run_id = store.create_run(name="died", n_calls_planned=the_plan.n_calls, params=the_plan.options.model_dump())
    store.add_prompts([{"run_id": run_id, "prompt_id": p.prompt_id, "category": p.category, "prompt": p.text,
                        "reference": p.reference, "scorer": p.scorer, "system": p.system, "source_id": p.source_id}
                       for p in the_plan.prompt_set])
    BatchRun(the_plan, run_id, store)._record_plan()  # recorded, then the process "died"
    assert set(llmlab.batches(run_id, store=store)["state"]) == {"submitting"}
    assert sandbox.request_count() == 0
    res = llmlab.resume(run_id, store=store, poll_s=0.05, progress=False)
    assert (res.results["status"] == "ok").all() and len(res.results) == 4
    assert sandbox.request_count() == 4


def test_cached_calls_are_not_resubmitted(batches, sandbox):
    batches.configure(row_failure_rate=0.2)
    store = Store()
    first = llmlab.run("quickstart", MODELS, mode="batch", batch_poll_s=0.05, store=store, progress=False)
    n_failed = int((first.results["status"] == "error").sum())
    assert n_failed > 0
    sandbox.reset_stats()
    batches.configure(row_failure_rate=0.0)
    second = llmlab.run("quickstart", MODELS, mode="batch", batch_poll_s=0.05, store=store, progress=False)
    df = second.results
    assert sandbox.request_count() == n_failed  # only the calls that had failed went out again
    assert int(df["cached"].sum()) == len(df) - n_failed and (df["status"] == "ok").all()
    assert int(llmlab.batches(second, store=store)["n_requests"].sum()) == n_failed
    assert df.loc[df["cached"], "source_call_id"].notna().all()


def test_a_cancelled_batch_keeps_what_completed_and_an_expired_one_too(batches, sandbox):
    store = Store()
    prompts = [f"Say the number {i}." for i in range(20)]
    batches.configure(delay_s=100, expire_after_s=1000)
    clock = batches.clock = FakeClock()
    res = llmlab.run(prompts, ["sandbox/frontier", "sandbox/tiny"], mode="batch", batch_wait=False, store=store,
                     progress=False)
    clock.now += 25  # a quarter of every batch is done
    assert len(llmlab.cancel_batches(res, store=store)) == 2
    clock.now += 1000
    df = llmlab.resume(res, store=store, poll_s=0.05, progress=False).results
    for model in ("sandbox/frontier", "sandbox/tiny"):
        sub = df[df["model"] == model]
        assert len(sub) == 20
        assert int((sub["status"] == "ok").sum()) == 5  # what completed before the cancel is kept
        assert set(sub.loc[sub["status"] == "error", "error_type"]) == {"batch_cancelled"}
    # expiry: a batch still running when its window closes ends with the rows done by then
    batches.configure(delay_s=100, expire_after_s=50)
    res2 = llmlab.run(prompts, ["sandbox/fast", "sandbox/balanced"], mode="batch", batch_wait=False, store=store,
                      progress=False)
    clock.now += 60
    df2 = llmlab.resume(res2, store=store, poll_s=0.05, progress=False).results
    for model in ("sandbox/fast", "sandbox/balanced"):
        sub = df2[df2["model"] == model]
        assert int((sub["status"] == "ok").sum()) == 10
        assert set(sub.loc[sub["status"] == "error", "error_type"]) == {"batch_expired"}
    assert set(llmlab.batches(res2, store=store)["provider_status"]) <= {"expired", "completed"}


def test_what_batch_mode_cannot_send_is_refused_before_anything_is_recorded(monkeypatch, sandbox):
    monkeypatch.setenv("GROQ_API_KEY", "gsk-not-used")
    store = Store()
    with pytest.raises(OptionsError, match="groq"):
        llmlab.run(["hi"], ["groq/llama-3.1-8b-instant"], mode="batch", store=store, progress=False)
    tool = {"type": "function", "function": {"name": "lookup", "description": "Look a word up.",
                                             "parameters": {"type": "object", "properties": {}}}}
    with pytest.raises(OptionsError, match="tools"):
        llmlab.run(["hi"], ["sandbox/frontier"], mode="batch", tools=[tool], store=store, progress=False)
    assert len(store.runs()) == 0


def test_split_respects_the_request_and_byte_limits():
    spec = resolve("sandbox/frontier")
    lines = [request_line(spec, f"c{i:03d}", [{"role": "user", "content": "x" * 100}], {"max_tokens": 5})
             for i in range(25)]
    assert [len(b) for b in split(lines, "openai", max_requests=10)] == [10, 10, 5]
    size = len(json.dumps(lines[0]).encode()) + 1
    limits = dict(PROVIDER_LIMITS)
    try:
        PROVIDER_LIMITS["openai"] = (50_000, size * 4)
        assert [len(b) for b in split(lines, "openai")] == [4] * 6 + [1]
    finally:
        PROVIDER_LIMITS.update(limits)
    anthropic = request_line(resolve("sandbox/tiny"), "c1", [{"role": "system", "content": "be brief"},
                                                               {"role": "user", "content": "hi"}], {"temperature": 0})
    assert anthropic["params"]["system"] == "be brief" and anthropic["params"]["max_tokens"] == 1024
    assert [m["role"] for m in anthropic["params"]["messages"]] == ["user"]


def test_cli_run_batch_lists_and_resumes(batches, sandbox, capsys):
    batches.configure(delay_s=3600)
    clock = batches.clock = FakeClock()
    assert main(["run", "quickstart", "--models", "sandbox/frontier,sandbox/tiny", "--limit", "6", "--batch",
                 "--no-wait", "--name", "cli-batch"]) == 0
    capsys.readouterr()
    assert main(["batches", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) == 2 and {b["state"] for b in listed} == {"submitted"}
    clock.now += 3600
    assert main(["batches", "cli-batch", "--resume", "--poll", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "finished" in out and "collected" in out
    assert main(["batches", "--resume"]) == 2  # a run is needed
    assert "need a RUN" in capsys.readouterr().err


def test_magic_batch_flag_runs_in_batch_mode(batches, sandbox, monkeypatch, tmp_path):
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    sh = InteractiveShell.instance()
    sh.reset(new_session=False)
    sh.run_line_magic("load_ext", "llmlab")
    magics = sh.magics_manager.registry["LLMMagics"]
    magics.live_updates = None
    magics.store_path = None
    with capture_output():
        result = sh.run_cell("%%llm sandbox/frontier sandbox/tiny --batch -o res\nWhat is 2+2?", store_history=False)
    assert result.error_in_exec is None, result.error_in_exec
    res = sh.user_ns["res"]
    assert len(res.results) == 2 and res.meta["params"]["mode"] == "batch"
    assert len(llmlab.batches(res, store=res.store)) == 2


def test_batch_prices_come_from_litellm_where_it_has_them_else_half_price(monkeypatch):
    from llmlab import models
    from llmlab.runner.batch import batch_cost_usd
    from llmlab.runner.batch_api import BATCH_DISCOUNT

    spec = resolve("openai/gpt-4o-mini", check_keys=False)  # LiteLLM's bundled cost map has its batch price
    assert batch_cost_usd(spec, 1000, 1000) == pytest.approx(1000 * 7.5e-08 + 1000 * 3e-07)
    assert batch_cost_usd(spec, 1000, 1000) < spec.cost_usd(1000, 1000)
    monkeypatch.setattr(models, "_price_overrides", {})  # restored after the test
    models.set_price("openai/gpt-4o-mini", 1.0, 2.0)  # an overridden price: half of it
    over = resolve("openai/gpt-4o-mini", check_keys=False)
    assert batch_cost_usd(over, 1000, 1000) == pytest.approx(BATCH_DISCOUNT * (1000 * 1e-6 + 1000 * 2e-6))
    sandbox_spec = resolve("sandbox/tiny")
    assert batch_cost_usd(sandbox_spec, 10, 20) == pytest.approx(0.5 * sandbox_spec.cost_usd(10, 20))
    assert batch_cost_usd(sandbox_spec, None, 20) is None


def test_two_resumes_at_once_send_a_never_sent_batch_once(batches, sandbox):
    """Two processes resuming the same run at the same moment: only one claims each unsent batch (the provider
    would charge twice); a claim whose process died is taken over after CLAIM_TIMEOUT_S."""
    import datetime as dt

    from llmlab.runner.batch import BatchRun, _claim
    from llmlab.runner.plan import prepare

    store = Store()
    the_plan = prepare(["What is 2+2?", "Name a colour."], ["sandbox/frontier"], store=store, mode="batch")
    run_id = store.create_run(name="twice", n_calls_planned=the_plan.n_calls, params=the_plan.options.model_dump())
    store.add_prompts([{"run_id": run_id, "prompt_id": p.prompt_id, "category": p.category, "prompt": p.text,
                        "reference": p.reference, "scorer": p.scorer, "system": p.system, "source_id": p.source_id}
                       for p in the_plan.prompt_set])
    BatchRun(the_plan, run_id, store)._record_plan()
    (part_id,) = llmlab.batches(run_id, store=store)["part_id"]
    assert _claim(store, part_id) is True            # the first resume takes it
    assert _claim(store, part_id) is False           # the second, at the same moment, does not
    # the second process's resume pass leaves the claimed batch alone: nothing is sent twice
    llmlab.resume(run_id, store=store, poll_s=0.05, progress=False, wait=False)
    assert sandbox.request_count() == 0 and set(llmlab.batches(run_id, store=store)["state"]) == {"sending"}
    # the first process died before sending: once the claim is stale, a resume sends the batch, once
    old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    with store.connect() as con:
        con.execute("UPDATE batches SET checked_at_utc = ? WHERE part_id = ?", [old, part_id])
    res = llmlab.resume(run_id, store=store, poll_s=0.05, progress=False)
    assert (res.results["status"] == "ok").all() and len(res.results) == 2
    assert sandbox.request_count() == 2 and len(batches.batches) == 1      # one batch created, not two
