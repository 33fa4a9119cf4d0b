"""Soak test: thousands of calls through faults of every kind, then an exact accounting.

    .venv/bin/python benchmarks/soak.py                 # 1,250 prompts x 4 sandbox models = 5,000 calls
    .venv/bin/python benchmarks/soak.py --prompts 100   # a quick one
    .venv/bin/python benchmarks/soak.py --via-env --cpu-load 3   # openai/<model> through OPENAI_API_BASE, loaded

The sandbox runs in this process with ``fault_rate`` (20 % of requests fail, the kind drawn evenly from all 14
fault kinds: 429 with Retry-After, 500, 502, 503, 504, timeout, reset, malformed, cut_stream, 400, 401, 403, 404,
context_window), tiny simulated latencies, a short ``timeout`` hang and a matching short client timeout.
Fallbacks are configured for two of the four models. The store is a fresh file in a temporary folder.

Invariants checked (exit status 1 when one fails):

- rows stored == calls planned, and no (prompt, model, sample) or call_id appears twice;
- every ok row has an answer, no error row has one;
- requests the sandbox served == attempts recorded (the sum of ``attempts``), in total and per model (from the
  rows' ``attempt_log``): a client-side timeout or a dropped connection is one request on both sides (the
  sandbox counts a request when it has read it; llmlab counts it when it sends it, and blocks LiteLLM's hidden
  re-send of a dropped connection, see runner._count_send);
- no non-retryable error was retried on the same model;
- no answer became a Timeout: attempts recorded as ``Timeout`` <= requests the sandbox deliberately hung.

``--via-env`` reaches the sandbox as a plain OpenAI-compatible server configured through the environment
(``OPENAI_API_BASE``, models ``openai/<name>``), the path the run API, the CLI and the magic offer for such
servers; ``--cpu-load N`` keeps N busy processes running meanwhile (a loaded 2-core machine).

The last line printed is one JSON object with every figure. All figures are simulated (the sandbox).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

NOT_RETRYABLE = {"BadRequestError", "AuthenticationError", "PermissionDeniedError", "NotFoundError",
                 "ContextWindowExceededError"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=1250, help="distinct synthetic prompts (x 4 models)")
    ap.add_argument("--fault-rate", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--db", default=None, help="store file (default: a fresh temporary file)")
    ap.add_argument("--via-env", action="store_true", help="models openai/<name> through OPENAI_API_BASE")
    ap.add_argument("--cpu-load", type=int, default=0, help="busy processes to run meanwhile")
    args = ap.parse_args(argv)

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    tmp = tempfile.mkdtemp(prefix="llmlab-soak-")
    db = Path(args.db) if args.db else Path(tmp) / "soak.duckdb"
    os.environ["LLMLAB_DB"] = str(db)

    import llmlab
    from llmlab.sandbox import FAULT_KINDS, Sandbox
    from llmlab.store import Store

    prefix = "openai/" if args.via_env else "sandbox/"
    models = [prefix + m for m in ("frontier", "balanced", "fast", "tiny")]
    fallbacks = {prefix + "frontier": [prefix + "balanced"], prefix + "fast": [prefix + "tiny"]}
    prompts = [f"Soak prompt {i}: summarise the water cycle in one sentence ({i * 7919 % 1000})."
               for i in range(args.prompts)]
    hang_s, client_timeout_s = 3.0, 2.0
    sb = Sandbox(port=0, seed=args.seed, latency_scale=0.003, fault_rate=args.fault_rate, fault_kinds=FAULT_KINDS,
                 fault_retry_after_s=0.2, fault_hang_s=hang_s).start()
    os.environ["LLMLAB_SANDBOX_API_BASE"] = sb.api_base
    if args.via_env:
        os.environ["OPENAI_API_BASE"] = sb.api_base
        os.environ["OPENAI_API_KEY"] = "sk-soak-not-a-real-key-0000"
        from llmlab.models import set_price

        for m in models:  # these names are not in LiteLLM's price map
            set_price(m, 1.0, 2.0)
    burners = [_burner() for _ in range(args.cpu_load)]
    store = Store(db)
    t0 = time.perf_counter()
    try:
        res = llmlab.run(prompts, models, store=store, progress=False, name="soak", cache=False,
                         concurrency=args.concurrency, per_model_concurrency=args.concurrency // 4,
                         timeout_s=client_timeout_s, max_attempts=4, backoff_base_s=0.02, backoff_max_s=0.2,
                         max_retry_wait_s=5.0, fallbacks=fallbacks, max_tokens=32)
    finally:
        wall_s = time.perf_counter() - t0
        sandbox_stats = sb.stats()
        sb.stop()
        for b in burners:
            b.kill()

    df = store.sql("SELECT * FROM call_records WHERE run_id = ?", [res.run_id])
    planned = res.stats.planned
    stored = len(df)
    dup_calls = stored - df[["prompt_id", "model", "sample_index"]].drop_duplicates().shape[0]
    dup_ids = stored - df["call_id"].nunique()
    ok = df[df["status"] == "ok"]
    err = df[df["status"] == "error"]
    attempts_recorded = int(df["attempts"].sum())
    served = int(sandbox_stats["requests"])
    attempts_by_model: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    retried_non_retryable = 0
    log_mismatch = 0
    for log_json, attempts in zip(df["attempt_log"], df["attempts"]):
        log = json.loads(log_json)
        sent = [e for e in log if e.get("http_requests", 1)]  # entries whose request never left are not counted
        if len(sent) != attempts:
            log_mismatch += 1
        for e in sent:
            attempts_by_model[e["model"].split("/", 1)[1]] += 1  # sandbox counts by bare name
        for i, e in enumerate(log):
            outcomes[e.get("error_type") or e["status"]] += 1
            if e.get("error_type") in NOT_RETRYABLE and i + 1 < len(log) and log[i + 1]["model"] == e["model"]:
                retried_non_retryable += 1
    figures = {
        "calls_planned": planned,
        "rows_stored": stored,
        "ok": len(ok),
        "error": len(err),
        "errors_by_type": dict(Counter(err["error_type"]).most_common()),
        "retries": int((df["attempts"] - 1).clip(lower=0).sum()),
        "rows_with_fallback": int((df["fallbacks_taken"] > 0).sum()),
        "fallback_answers": int((ok["answered_by"] != ok["model"]).sum()),
        "duplicate_rows": int(dup_calls + dup_ids),
        "sandbox_requests_served": served,
        "attempts_recorded": attempts_recorded,
        "served_by_model": dict(sorted(sandbox_stats["by_model"].items())),
        "attempts_by_model": dict(sorted(attempts_by_model.items())),
        "sandbox_outcomes": dict(sorted(sandbox_stats["by_outcome"].items())),
        "attempt_outcomes": dict(sorted(outcomes.items())),
        "non_retryable_retried": retried_non_retryable,
        "attempt_log_length_mismatches": log_mismatch,
        "ok_rows_without_answer": int(ok["response"].isna().sum()),
        "error_rows_with_answer": int(err["response"].notna().sum()),
        "wall_s": round(wall_s, 1),
        "calls_per_s": round(planned / wall_s, 1),
        "store_lock_waits": store.lock_waits,
        "fault_rate": args.fault_rate,
        "fault_kinds": list(FAULT_KINDS),
        "client_timeout_s": client_timeout_s,
        "fault_hang_s": hang_s,
        "via_env": args.via_env,
        "cpu_load_processes": args.cpu_load,
        "simulated": True,
    }
    checks = {
        "rows_stored == calls_planned": stored == planned,
        "duplicate_rows == 0": figures["duplicate_rows"] == 0,
        "sandbox_requests_served == attempts_recorded": served == attempts_recorded,
        "served_by_model == attempts_by_model": figures["served_by_model"] == figures["attempts_by_model"],
        "non_retryable_retried == 0": retried_non_retryable == 0,
        "Timeout attempts <= requests hung": outcomes.get("Timeout", 0) <= sandbox_stats["by_outcome"].get("timeout", 0)
        + sandbox_stats["by_outcome"].get("504", 0),
        "attempt_log matches attempts": log_mismatch == 0,
        "ok rows have answers, error rows none": figures["ok_rows_without_answer"] == 0
        and figures["error_rows_with_answer"] == 0,
    }
    figures["invariants_ok"] = all(checks.values())

    print(f"llmlab soak: {planned} calls = {args.prompts} prompts x {len(models)} models ({prefix}...), "
          f"{args.fault_rate:.0%} injected faults of {len(FAULT_KINDS)} kinds (simulated)")
    print(f"  wall time            {wall_s:8.1f} s   ({figures['calls_per_s']} calls/s)")
    print(f"  calls planned        {planned:8d}")
    print(f"  rows stored          {stored:8d}")
    print(f"  ok                   {len(ok):8d}   ({figures['fallback_answers']} answered by a fallback)")
    print(f"  error                {len(err):8d}")
    for etype, n in figures["errors_by_type"].items():
        print(f"    {etype:26s} {n:6d}")
    print(f"  retries              {figures['retries']:8d}")
    print(f"  fallbacks taken      {figures['rows_with_fallback']:8d}   (rows)")
    print(f"  duplicate rows       {figures['duplicate_rows']:8d}")
    print(f"  requests served      {served:8d}   (sandbox)")
    print(f"  attempts recorded    {attempts_recorded:8d}   (sum of attempts)")
    print(f"  per model served     {figures['served_by_model']}")
    print(f"  per model attempts   {figures['attempts_by_model']}")
    print(f"  sandbox outcomes     {figures['sandbox_outcomes']}")
    print(f"  attempt outcomes     {figures['attempt_outcomes']}")
    for name, passed in checks.items():
        print(f"  [{'ok' if passed else 'FAILED'}] {name}")
    print(json.dumps(figures, sort_keys=True))
    return 0 if figures["invariants_ok"] else 1


def _burner():  # noqa: ANN202
    import subprocess

    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


if __name__ == "__main__":
    sys.exit(main())
