"""Batch mode at scale: 10^5 planned calls submitted as provider batches and collected, on the sandbox.

    .venv/bin/python benchmarks/batch_scale.py                    # 100,000 calls = 50,000 prompts x 2 models
    .venv/bin/python benchmarks/batch_scale.py --calls 4000       # a quick one

The sandbox runs in its own process (``python -m llmlab.sandbox``, loopback, ``--latency-scale 0``, batch
``delay_s`` 0), so this process's memory is llmlab's alone. The two models are ``sandbox/frontier`` (OpenAI Batch
API: a JSONL file through ``litellm.acreate_file`` + ``acreate_batch``) and ``sandbox/tiny`` (Anthropic Message
Batches); each model's calls are split at ``--max-requests`` per batch (default: the providers' limits, 50,000 and
100,000). Measured: the wall time of ``llmlab.run(..., mode="batch")`` from planning to the last row stored, split
into plan / submit+collect, and this process's peak RSS (``resource.getrusage``) before the run (LiteLLM imported)
and after it.

Baseline, in the same run: a live run (``mode="live"``, ``concurrency`` 64, not streamed) of ``--live-calls`` calls on the same
sandbox, so the printed ratio is the batch path's stored calls per second over the live path's. Simulated: the
sandbox answers at once, so neither figure is a provider's speed; the batch path's point is price and rate limits,
not speed (the README's "Scale" section). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _start_sandbox() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "llmlab.sandbox", "--port", "0", "--latency-scale", "0"],
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    line = proc.stdout.readline()
    if "api_base " not in line:
        proc.kill()
        raise SystemExit(f"the sandbox did not start: {line!r}")
    return proc, line.split("api_base ")[1].split()[0]


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=100_000, help="planned calls (half per model)")
    ap.add_argument("--live-calls", type=int, default=2_000, help="calls of the live baseline")
    ap.add_argument("--max-requests", type=int, default=None, help="requests per provider batch")
    ap.add_argument("--poll", type=float, default=0.5, help="seconds between batch checks")
    args = ap.parse_args(argv)

    proc, api_base = _start_sandbox()
    os.environ["LLMLAB_SANDBOX_API_BASE"] = api_base
    tmp = Path(tempfile.mkdtemp(prefix="llmlab-batch-scale-"))
    try:
        _post(api_base.rsplit("/v1", 1)[0] + "/_sandbox/batches", {"delay_s": 0})
        import llmlab
        from llmlab.runner.handle import execute
        from llmlab.runner.plan import prepare
        from llmlab.store import Store

        models = ["sandbox/frontier", "sandbox/tiny"]
        n_prompts = args.calls // len(models)
        prompts = [f"Question {i}: what is {i} plus {i % 97}?" for i in range(n_prompts)]
        from llmlab._litellm import litellm
        from llmlab.runner.wire import warm_up

        litellm()
        warm_up()  # LiteLLM's import (about 200 MiB) is not the run's memory
        store = Store(tmp / "batch.duckdb")
        rss0 = _rss_mb()
        t0 = time.perf_counter()
        the_plan = prepare(prompts, models, store=store, mode="batch", batch_poll_s=args.poll,
                           batch_max_requests=args.max_requests)
        t_plan = time.perf_counter() - t0
        res = execute(the_plan, store=store, progress=False)
        wall = time.perf_counter() - t0
        rss1 = _rss_mb()
        counts = store.sql("SELECT count(*) AS n, count(*) FILTER (WHERE status = 'ok') AS ok, sum(cost_usd) AS cost "
                           "FROM call_records WHERE run_id = ?", [res.run_id]).iloc[0]
        parts = llmlab.batches(res.run_id, store=store)
        assert int(counts["n"]) == the_plan.n_calls, (int(counts["n"]), the_plan.n_calls)

        live_prompts = [f"Live question {i}: what is {i} times 3?" for i in range(args.live_calls // len(models))]
        live_store = Store(tmp / "live.duckdb")
        t1 = time.perf_counter()
        live = llmlab.run(live_prompts, models, store=live_store, progress=False, concurrency=64, stream=False)
        live_wall = time.perf_counter() - t1
        n_live = len(live.results)
    finally:
        proc.terminate()
        proc.wait(10)

    batch_rate = int(counts["n"]) / wall
    live_rate = n_live / live_wall
    print(f"batch: {int(counts['n'])} calls ({int(counts['ok'])} ok) in {len(parts)} provider batches "
          f"({', '.join(f'{m} {n}' for m, n in parts.groupby('model').size().items())}); "
          f"wall {wall:.1f} s (plan {t_plan:.1f} s, submit+collect {wall - t_plan:.1f} s); {batch_rate:.0f} calls/s")
    print(f"memory: peak RSS {rss1:.0f} MiB (before the run {rss0:.0f} MiB: +{rss1 - rss0:.0f} MiB)")
    print(f"live baseline: {n_live} calls in {live_wall:.1f} s = {live_rate:.0f} calls/s; "
          f"batch / live throughput ratio {batch_rate / live_rate:.2f}")
    print(f"batch cost {float(counts['cost']):.4f} USD (simulated prices, 50% of the normal price)")
    print(json.dumps({"batch_scale.calls": int(counts["n"]), "batch_scale.batches": len(parts),
                      "batch_scale.wall_s": round(wall, 2), "batch_scale.plan_s": round(t_plan, 2),
                      "batch_scale.peak_rss_mib": round(rss1), "batch_scale.rss_before_mib": round(rss0),
                      "batch_scale.calls_per_s": round(batch_rate), "batch_scale.live_calls_per_s": round(live_rate),
                      "batch_scale.ratio_throughput_vs_live": round(batch_rate / live_rate, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
