"""Interruptions, killed processes and two processes on one store file: nothing completed is lost, nothing is
recorded twice, and a re-run requests only what is missing (the sandbox's request counter proves it)."""

from __future__ import annotations

import _thread
import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import llmlab
from llmlab.store import Store

REPO = Path(__file__).resolve().parent.parent


def _hang_after(sandbox, n_ok: int, model: str, on_hang=None):
    """An on_result callback: after ``n_ok`` answers, every further request to ``model`` hangs (in flight)."""
    state = {"ok": 0}

    def on_result(row):
        if row["status"] == "ok":
            state["ok"] += 1
            if state["ok"] == n_ok:
                sandbox.inject("timeout", model=model, hang_s=30)
                if on_hang is not None:
                    on_hang()

    return on_result


def _assert_rerun_requests_only_the_missing(sandbox, prompts, model, n_ok_before, **opts):
    sandbox.clear_faults()
    sandbox.reset_stats()
    again = llmlab.run(prompts, [model], progress=False, **opts)
    df = again.results
    assert len(df) == len(prompts) and (df["status"] == "ok").all()
    assert int(df["cached"].sum()) == n_ok_before
    assert (df.loc[df["cached"], "attempts"] == 0).all()
    assert sandbox.request_count() == len(prompts) - n_ok_before


def test_keyboard_interrupt_keeps_completed_calls_and_a_rerun_requests_only_the_rest(sandbox):
    prompts = [f"Interrupted prompt {i}" for i in range(12)]
    opts = dict(per_model_concurrency=2, timeout_s=30)

    def interrupt_soon():
        threading.Timer(0.3, _thread.interrupt_main).start()

    with pytest.raises(KeyboardInterrupt):
        llmlab.run(prompts, ["sandbox/fast"], progress=False,
                   on_result=_hang_after(sandbox, 4, "fast", interrupt_soon), **opts)
    # no sleep: run() returned only after the cancelled run recorded everything
    store = Store()
    run_id = store.resolve_run("last")
    assert store.run(run_id)["status"] == "cancelled"
    df = store.results(run_id)
    assert len(df) == 12 and df["call_id"].is_unique, df[["call_id", "prompt_id", "status", "error_type"]].to_string()
    ok = df[df["status"] == "ok"]
    assert len(ok) >= 4 and ok["response"].notna().all()
    assert set(df.loc[df["status"] == "error", "error_type"]) == {"cancelled"}
    assert sandbox.stats()["by_outcome"].get("timeout", 0) >= 1, "some calls were in flight when interrupted"
    _assert_rerun_requests_only_the_missing(sandbox, prompts, "sandbox/fast", len(ok), **opts)


async def test_cancelling_arun_keeps_completed_calls(sandbox):
    prompts = [f"Cancelled prompt {i}" for i in range(10)]
    opts = dict(per_model_concurrency=2, timeout_s=30)
    hung = threading.Event()
    task = asyncio.create_task(llmlab.arun(prompts, ["sandbox/tiny"],
                                           on_result=_hang_after(sandbox, 3, "tiny", hung.set), **opts))
    while not hung.is_set():
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    store = Store()
    run_id = store.resolve_run("last")
    assert store.run(run_id)["status"] == "cancelled"
    df = store.results(run_id)
    assert len(df) == 10 and df["call_id"].is_unique
    n_ok = int((df["status"] == "ok").sum())
    assert n_ok >= 3
    await asyncio.to_thread(_assert_rerun_requests_only_the_missing, sandbox, prompts, "sandbox/tiny", n_ok, **opts)


CHILD = textwrap.dedent("""
    import json, os, sys, time
    import llmlab
    from llmlab.store import Store

    prompts, model, log_path, go_path = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    log = open(log_path, "a")

    def on_result(row):
        log.write(json.dumps({"call_id": row["call_id"], "status": row["status"], "t": time.time()}) + "\\n")
        log.flush()

    store = Store()
    open(go_path + "." + str(os.getpid()), "w").close()      # ready (imports done)
    while not os.path.exists(go_path):
        time.sleep(0.01)
    t0 = time.perf_counter()
    res = llmlab.run(prompts, [model], store=store, progress=False, on_result=on_result, per_model_concurrency=4,
                     timeout_s=30, rate_limits={model: {"rpm": 5}}, rate_limit_window_s=0.5)
    print(json.dumps({"run_id": res.run_id, "wall_s": time.perf_counter() - t0, "lock_waits": store.lock_waits,
                      "lock_retries": store.lock_retries, "lock_wait_s": store.lock_wait_s}))
""")


def _start_child(tmp_path, sandbox, name, prompts, model, go):
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(LLMLAB_SANDBOX_API_BASE=sandbox.api_base, PYTHONPATH=str(REPO))
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    log = tmp_path / f"{name}.jsonl"
    proc = subprocess.Popen([sys.executable, str(script), json.dumps(prompts), model, str(log), str(go)],
                            env=env, cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, log


def _wait_ready(tmp_path, go, procs, timeout_s=60):
    deadline = time.monotonic() + timeout_s
    while len(list(tmp_path.glob(go.name + ".*"))) < len(procs):
        assert time.monotonic() < deadline, "children did not start"
        for p in procs:
            assert p.poll() is None, p.communicate()[1][-2000:]
        time.sleep(0.05)
    go.touch()


def test_a_process_killed_mid_run_leaves_a_store_that_opens_with_completed_rows(sandbox, tmp_path):
    prompts = [f"Killed prompt {i}" for i in range(40)]  # paced at 10 requests/s: about 4 s of work
    go = tmp_path / "go"
    proc, log = _start_child(tmp_path, sandbox, "killed", prompts, "sandbox/fast", go)
    try:
        _wait_ready(tmp_path, go, [proc])
        store = Store(lock_timeout_s=10)
        deadline = time.monotonic() + 60
        while store.sql("SELECT count(*) AS n FROM call_records")["n"][0] < 8:  # read while the child writes
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-2000:]
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
        killed_at = time.time()
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    reopened = Store()  # opens (DuckDB replays its write-ahead log)
    rows = reopened.sql("SELECT * FROM call_records")
    assert rows["call_id"].is_unique and (rows["status"] == "ok").all() and rows["response"].notna().all()
    completed = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert len(completed) < len(prompts), "killed before the end"
    older = {c["call_id"] for c in completed if c["t"] < killed_at - 1.0}
    assert older <= set(rows["call_id"]), "at most the last second of completed calls is missing"
    killed_run = reopened.resolve_run("last")
    assert reopened.run(killed_run)["status"] == "running"  # it never got to say otherwise...
    assert reopened.runs().set_index("run_id").loc[killed_run, "status"] == "interrupted"  # ...but its pid is gone
    _assert_rerun_requests_only_the_missing(sandbox, prompts, "sandbox/fast", len(rows), timeout_s=30)


def test_two_processes_recording_into_one_file_both_keep_every_row(sandbox, tmp_path):
    go = tmp_path / "go"
    children = [
        _start_child(tmp_path, sandbox, f"p{i}", [f"Process {i} prompt {j}" for j in range(30)], model, go)
        for i, model in enumerate(["sandbox/fast", "sandbox/tiny"])
    ]
    procs = [p for p, _ in children]
    try:
        _wait_ready(tmp_path, go, procs)
        outs = []
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err[-3000:]
            outs.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    store = Store()
    runs = store.runs()
    assert len(runs) == 2 and set(runs["status"]) == {"finished"}
    for o in outs:
        df = store.results(o["run_id"])
        assert len(df) == 30 and df["call_id"].is_unique and (df["status"] == "ok").all()
    assert sandbox.request_count() == 60


HOLDER = textwrap.dedent("""
    import os, sys, time
    import duckdb
    con = duckdb.connect(sys.argv[1])          # holds the file's lock
    open(sys.argv[2], "w").close()             # held
    while not os.path.exists(sys.argv[3]):     # until told to let go
        time.sleep(0.01)
    con.close()
""")


def test_a_run_waits_for_a_store_another_process_holds_and_loses_nothing(sandbox, tmp_path):
    """Deterministic overlap: another process holds the file until this run has been refused the lock at least
    once; then it lets go and the run records every row, once."""
    store = Store()
    store.runs()  # the file exists (migrated) before the other process takes it
    held, release = tmp_path / "held", tmp_path / "release"
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    holder = subprocess.Popen([sys.executable, str(script), str(store.path), str(held), str(release)],
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not held.exists():
            assert holder.poll() is None and time.monotonic() < deadline, holder.communicate()[1][-2000:]
            time.sleep(0.01)
        from llmlab.runner import prepare, start

        handle = None
        import threading

        planned: dict = {}
        t = threading.Thread(target=lambda: planned.setdefault("plan", prepare(
            [f"Held prompt {i}" for i in range(12)], ["sandbox/fast"], store=store, timeout_s=30)))
        t.start()
        while store.lock_retries == 0:  # the run was refused the lock: the two processes overlap
            assert time.monotonic() < deadline and t.is_alive()
            time.sleep(0.01)
        release.touch()
        t.join(60)
        handle = start(planned["plan"], store=store)
        res = handle.result(timeout_s=120)
    finally:
        release.touch()
        holder.wait(30)
    df = store.results(res.run_id)
    assert len(df) == 12 and df["call_id"].is_unique and (df["status"] == "ok").all()
    assert sandbox.request_count() == 12


def test_a_key_quoted_back_in_an_error_never_reaches_the_store(sandbox, monkeypatch):
    """The sandbox's 401 quotes the key it was sent (as some providers do): the recorded row must not hold it."""
    secret = "sk-llmlab-test-SECRET-7c1e9a0b55d2"
    monkeypatch.setenv("LLMLAB_SANDBOX_API_KEY", secret)
    sandbox.inject("401", model="fast")
    for model in ("sandbox/fast",):
        res = llmlab.run(["SANDBOX_ECHO:hi"], [model], progress=False, cache=False)
        row = res.results.iloc[0]
        assert row["status"] == "error" and row["http_status"] == 401
        assert secret not in (row["error_message"] or "")
        assert "LLMLAB_SANDBOX_API_KEY redacted" in row["error_message"]
    dump = llmlab.Store().sql("SELECT * FROM calls").to_csv()
    assert secret not in dump


# -- secrets: altered, encoded and key-shaped forms never reach the store ----------------------------------
CANARY = "sk-llmlab-canary-7f3b9c1d2e4a5b6c8d0e"


@pytest.mark.parametrize("form", [
    CANARY,                                           # verbatim
    CANARY[:-1],                                      # without its last character
    CANARY[3:],                                       # without the sk- prefix
    CANARY[:14] + " " + CANARY[14:],                  # cut in two (each half still 12+ characters)
    __import__("base64").b64encode(CANARY.encode()).decode(),
    __import__("urllib.parse", fromlist=["quote"]).quote(CANARY, safe=""),
])
def test_redact_removes_a_configured_key_in_any_common_form(monkeypatch, form):
    from llmlab.redaction import redact

    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    out = redact(f"error: invalid key {form!r} for this project")
    assert "redacted" in out
    for i in range(len(CANARY) - 11):
        assert CANARY[i:i + 12] not in out
    assert "error: invalid key" in out and "for this project" in out


def test_key_shaped_tokens_are_redacted_even_when_not_configured():
    from llmlab.redaction import redact

    out = redact("auth header Bearer abcdefghijklmnop1234 and sk-ant-api03-ABCDEFGHIJKLMNOPQRST leaked")
    assert "abcdefghijklmnop1234" not in out and "ABCDEFGHIJKLMNOPQRST" not in out
    assert out.count("<key redacted>") == 2 and out.startswith("auth header ")


def test_a_key_quoted_in_an_answer_is_never_stored(sandbox, monkeypatch):
    monkeypatch.setenv("LLMLAB_SANDBOX_API_KEY", CANARY)
    res = llmlab.run([f"SANDBOX_ECHO:my key is {CANARY[:-1]} and {CANARY}"], ["sandbox/fast"], progress=False,
                     cache=False)
    row = res.results.iloc[0]
    assert row["status"] == "ok" and "my key is" in row["response"]
    dump = llmlab.Store().sql("SELECT * FROM calls").to_csv()
    for i in range(len(CANARY) - 11):
        assert CANARY[i:i + 12] not in dump
