"""The production logger's cost: LiteLLM proxy requests/s with and without ``llmlab.LiteLLMLogger``, same run.

    PYTHONPATH=. .venv/bin/python benchmarks/logger_overhead.py [--requests 600] [--concurrency 50] [--rounds 2]
    PYTHONPATH=. .venv/bin/python benchmarks/logger_overhead.py --faults 0.1 --requests 2000 --rounds 1 --only-logged

Starts the sandbox (in this process) and three real LiteLLM proxies (subprocesses, one worker each) serving the
same exported routing config: without callbacks, with a CustomLogger that does nothing (LiteLLM's own cost of
having a callback), and with ``litellm_settings.callbacks: [llmlab.production.proxy.logger]``; sends the same
requests to each in alternating rounds (so drift on a shared machine hits all) and prints each one's requests/s
and the ratios (``--only-logged``: the logged proxy alone, no ratios). Afterwards it checks the logger's
bookkeeping against the sandbox's request counter, exactly: the rows' ``attempts`` (one row per HTTP attempt)
plus the attempts the logger reports dropped equal the provider requests the logged proxy made, and every row
LiteLLM's events gave is stored or a reported drop; it prints how LiteLLM's events relate to the attempts (the
failure events that repeated an attempt, the failures that reached no deployment). With ``--faults R`` a share R
of the sandbox's requests fail with HTTP 500 (the issue's run: 2,000 requests at concurrency 50 with 10 %
faults). Exits 1 when the equality does not hold. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOOP_LOGGER = """
from litellm.integrations.custom_logger import CustomLogger


class Noop(CustomLogger):
    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        pass

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        pass


logger = Noop()
"""
sys.path.insert(0, str(ROOT / "tests"))


async def _load(url: str, key: str, n: int, concurrency: int, offset: int) -> tuple[float, dict[int, int]]:
    import aiohttp

    tags = [["arithmetic"], ["code"], []]
    statuses: dict[int, int] = {}
    sem = asyncio.Semaphore(concurrency)
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=300)) as session:
        async def one(i: int) -> None:
            body = {"model": "llmlab-router", "tags": tags[i % 3], "max_tokens": 32,
                    "messages": [{"role": "user", "content": f"Request {offset + i}: what is {i} + 1?"}]}
            async with sem:
                try:
                    async with session.post(f"{url}/v1/chat/completions", json=body,
                                            headers={"Authorization": f"Bearer {key}"}) as resp:
                        await resp.read()
                        statuses[resp.status] = statuses.get(resp.status, 0) + 1
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    statuses[-1] = statuses.get(-1, 0) + 1

        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return time.perf_counter() - start, statuses


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=600, help="per proxy and round")
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--faults", type=float, default=0.0, help="share of sandbox requests answered with HTTP 500")
    ap.add_argument("--queue-size", type=int, default=10_000, help="the logger's queue bound")
    ap.add_argument("--latency-scale", type=float, default=0.02)
    ap.add_argument("--only-logged", action="store_true", help="only the proxy with the logger: the bookkeeping")
    args = ap.parse_args(argv)

    import pandas as pd
    import yaml
    from proxy_process import start_proxy

    from llmlab.routing.litellm_config import write_litellm_config
    from llmlab.sandbox import Sandbox

    table = pd.DataFrame([
        {"category": "arithmetic", "model": "sandbox/tiny", "fallbacks": ["sandbox/frontier"]},
        {"category": "code", "model": "sandbox/balanced", "fallbacks": ["sandbox/frontier"]},
        {"category": "default", "model": "sandbox/fast", "fallbacks": ["sandbox/frontier"]},
    ])
    tmp = Path(tempfile.mkdtemp(prefix="llmlab-logger-bench-"))
    db = tmp / "production.duckdb"
    sb = Sandbox(port=0, seed=0, latency_scale=args.latency_scale).start()
    env = {"LLMLAB_SANDBOX_API_BASE": sb.api_base, "LLMLAB_SANDBOX_API_KEY": "sandbox-key", "LLMLAB_DB": str(db),
           "LLMLAB_PRODUCTION_QUEUE_SIZE": str(args.queue_size), "LLMLAB_PRODUCTION_RUN_NAME": "benchmark",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    os.environ["LLMLAB_SANDBOX_API_KEY"] = "sandbox-key"
    logged = start_proxy(write_litellm_config(table, tmp / "logged.yaml", production_logger=True), env, tmp)
    proxies = {"with": logged}
    if not args.only_logged:
        plain = start_proxy(write_litellm_config(table, tmp / "plain.yaml"), env, tmp)
        # a CustomLogger that does nothing: what LiteLLM's callback machinery costs by itself
        (tmp / "noop_logger.py").write_text(NOOP_LOGGER)
        noop_cfg = yaml.safe_load((tmp / "plain.yaml").read_text())
        noop_cfg["litellm_settings"] = {"callbacks": ["noop_logger.logger"]}
        (tmp / "noop.yaml").write_text(yaml.safe_dump(noop_cfg))
        noop = start_proxy(tmp / "noop.yaml", env, tmp)
        proxies = {"without": plain, "noop": noop, "with": logged}
    result: dict = {"requests_per_round": args.requests, "concurrency": args.concurrency, "rounds": args.rounds,
                    "faults": args.faults, "queue_size": args.queue_size}
    try:
        times = dict.fromkeys(proxies, 0.0)
        statuses: dict[str, dict[int, int]] = {k: {} for k in proxies}
        outcomes: dict[str, int] = {"ok": 20}  # the logged proxy's warm-up: 20 successful provider requests
        for i, proxy in enumerate(proxies.values()):  # warm-up
            asyncio.run(_load(proxy.url, proxy.master_key, 20, 10, -100 * (i + 1)))
        if args.faults:
            sb.inject("500", rate=args.faults)
        order = list(proxies)
        for r in range(args.rounds):
            for name in order if r % 2 == 0 else order[::-1]:
                proxy = proxies[name]
                before = sb.stats()["by_outcome"]
                elapsed, st = asyncio.run(_load(proxy.url, proxy.master_key, args.requests, args.concurrency,
                                                r * args.requests))
                if name == "with":
                    after = sb.stats()["by_outcome"]
                    for k, v in after.items():
                        outcomes[k] = outcomes.get(k, 0) + v - before.get(k, 0)
                times[name] += elapsed
                for k, v in st.items():
                    statuses[name][k] = statuses[name].get(k, 0) + v
        n = args.requests * args.rounds
        rps = {k: n / v for k, v in times.items()}
        result.update(rps_with_logger=round(rps["with"], 1),
                      http_status={k: {str(c): v for c, v in st.items()} for k, st in statuses.items()})
        if not args.only_logged:
            result.update(rps_without_logger=round(rps["without"], 1), rps_noop_logger=round(rps["noop"], 1),
                          ratio_with_over_without=round(rps["with"] / rps["without"], 3),
                          ratio_with_over_noop=round(rps["with"] / rps["noop"], 3))
            print(f"proxy with a no-op CustomLogger: {rps['noop']:.1f} requests/s")
            print(f"proxy without the logger: {rps['without']:.1f} requests/s")
        print(f"proxy with the logger:    {rps['with']:.1f} requests/s")
        if not args.only_logged:
            print(f"ratio with / without:     {rps['with'] / rps['without']:.3f}")
            print(f"ratio with / no-op:       {rps['with'] / rps['noop']:.3f}  (llmlab's own share of the cost)")
        result.update(_bookkeeping(db, outcomes, user_requests=n + 20))
    finally:
        for proxy in proxies.values():
            proxy.stop()
        sb.stop()
    print(json.dumps(result))
    return 0 if result.get("accounted") else 1


def _bookkeeping(db: Path, outcomes: dict[str, int], user_requests: int) -> dict:
    """Wait until LiteLLM delivered its events (it logs a success after answering: under load, seconds later), then
    check ``sum(attempts) + dropped_attempts == the sandbox's request count`` (and, without drops, one request id
    per request sent) and print it."""
    from llmlab.store import Store


    requests, expected_ok = sum(outcomes.values()), outcomes.get("ok", 0)
    deadline = time.monotonic() + 120
    counts: dict = {}
    params: dict = {}
    while time.monotonic() < deadline:
        store = Store(db)
        runs = store.sql("SELECT run_id, params FROM runs WHERE source = 'production'")
        if len(runs):
            counts = store.sql(
                "SELECT count(*) AS n, coalesce(sum(attempts), 0) AS attempts, "
                "count(*) FILTER (WHERE status = 'ok') AS ok, count(*) FILTER (WHERE attempts = 0) AS no_attempt, "
                "count(*) FILTER (WHERE status = 'error' AND attempts = 1) AS failed, "
                "count(DISTINCT trace_id) AS user_requests FROM call_records WHERE run_id = ?",
                [runs["run_id"].iloc[0]]).iloc[0].to_dict()
            params = json.loads(runs["params"].iloc[0] or "{}")
            if (int(counts["attempts"]) + params.get("dropped_attempts", 0) >= requests
                    and int(counts["n"]) + params.get("dropped_rows", 0) == params.get("events_seen", -1)):
                break
        time.sleep(0.5)
    stored, attempts = int(counts.get("n", -1)), int(counts.get("attempts", -1))
    dropped_rows, dropped_attempts = int(params.get("dropped_rows", 0)), int(params.get("dropped_attempts", 0))
    no_attempt, duplicates = int(counts.get("no_attempt", 0)), int(params.get("duplicate_events", 0))
    grouped = int(counts.get("user_requests", 0)) == user_requests or dropped_rows > 0
    accounted = (attempts + dropped_attempts == requests and grouped
                 and stored + dropped_rows == params.get("events_seen", -1))
    # what one row per LiteLLM logging event (successes and failure events) would have given
    events = int(counts.get("ok", 0)) + duplicates + no_attempt + dropped_rows
    out = {"callback_ms_per_row": round(params.get("callback_ms", 0) / max(1, stored), 3),
           "writer_cpu_ms_per_row": round(params.get("writer_cpu_ms", 0) / max(1, stored), 3),
           "provider_requests": requests, "provider_ok": expected_ok, "rows_stored": stored,
           "attempts_stored": attempts, "ok_rows": int(counts.get("ok", 0)),
           "failed_attempt_rows": int(counts.get("failed", 0)), "no_deployment_rows": no_attempt,
           "user_requests": int(counts.get("user_requests", 0)), "rows_dropped_reported": dropped_rows,
           "attempts_dropped_reported": dropped_attempts, "duplicate_failure_events": duplicates,
           "rows_if_one_per_litellm_event": events, "accounted": accounted}
    print(f"logger cost per row: {out['callback_ms_per_row']} ms in callbacks (the proxy's event loop), "
          f"{out['writer_cpu_ms_per_row']} ms CPU in the writer thread (as of the last batch)")
    print(f"logged proxy: {requests} provider requests (the sandbox's counter; {expected_ok} ok); rows: {stored} "
          f"for {out['user_requests']} request ids ({user_requests} requests sent; {attempts} HTTP attempts: {out['ok_rows']} ok, "
          f"{out['failed_attempt_rows']} failed; {no_attempt} Router failures that reached no deployment); "
          f"{dropped_attempts} attempts reported dropped")
    print(f"rows' attempts + reported drops = {attempts} + {dropped_attempts} = {attempts + dropped_attempts} "
          f"{'==' if attempts + dropped_attempts == requests else '!='} {requests} sandbox requests: "
          f"{'OK' if accounted else 'MISMATCH'}")
    print(f"LiteLLM's events: {duplicates} failure events repeated an attempt already recorded (skipped); one row "
          f"per LiteLLM event would have given {events} rows for {requests} provider requests")
    return out


if __name__ == "__main__":
    sys.exit(main())
