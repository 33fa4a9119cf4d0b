"""Fan-out at scale: CPU per call and peak memory for 1k, 10k and 100k calls (issue 11, target 5).

    .venv/bin/python benchmarks/scale.py                          # 1,000 / 10,000 / 100,000 calls
    .venv/bin/python benchmarks/scale.py --sizes 1000,10000       # a shorter one
    .venv/bin/python benchmarks/scale.py --no-stream              # stream=False (no TTFT)

The local OpenAI-compatible server of benchmarks/fanout.py (aiohttp, SSE when asked) runs in *this* process
with a fixed latency (20 ms by default); every size runs ``llmlab.run`` with its defaults (streamed, so TTFT is
recorded), 4 model names, ``concurrency`` 64, ``cache=False``, ``workers=1`` (``--workers``; CPU then counts the
worker processes too, peak RSS is the largest process), in a fresh child process of its own, so that each
size's CPU time (``time.process_time`` around the run) and peak RSS (``ru_maxrss``, the whole child: Python,
LiteLLM, DuckDB) are its own. The child checks that every planned call is one stored row.

Targets: CPU per call at the largest size within 10 % of the smallest; peak RSS below 1 GB at 100k calls (answers
are streamed to the store, not held). The last line is one JSON object (keys like ``scale.100000.cpu_ms_per_call``).
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
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
HERE = Path(__file__).resolve().parent


def _cpu_s() -> float:
    """CPU seconds of this process and of its finished children (worker processes, when ``--workers`` > 1)."""
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ch.ru_utime + ch.ru_stime


def _one(calls: int, models: int, concurrency: int, stream: bool, workers: int) -> dict[str, float]:
    """In the child: one run of ``calls`` calls; returns its figures."""
    import llmlab
    from llmlab.models import set_price

    names = [f"openai/bench-{i}" for i in range(models)]
    for m in names:
        set_price(m, 1.0, 2.0)
    n_prompts = max(1, calls // models)
    llmlab.run(["warm"], names[:1], progress=False, cache=False)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    prompts = [f"scale prompt {i}" for i in range(n_prompts)]
    c0, t0 = _cpu_s(), time.perf_counter()
    res = llmlab.run(prompts, names, progress=False, cache=False, concurrency=concurrency, max_tokens=32,
                     stream=stream, timeout_s=120, workers=workers)
    wall, cpu = time.perf_counter() - t0, _cpu_s() - c0
    rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    n_rows = int(res.store.sql("SELECT count(*) AS n FROM calls WHERE run_id = ?", [res.run_id]).iloc[0, 0])
    planned = n_prompts * models
    return {"calls": planned, "rows": n_rows, "wall_s": wall, "cpu_s": cpu, "cpu_ms_per_call": cpu / planned * 1000,
            "peak_rss_mb": rss, "rss_after_warmup_mb": rss0, "ok": int(res.stats.ok)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--models", type=int, default=4)
    ap.add_argument("--latency-ms", type=float, default=20.0)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--no-stream", action="store_true")
    ap.add_argument("--workers", type=int, default=1, help="llmlab.run(workers=...); 1 keeps CPU comparable")
    ap.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    stream = not args.no_stream
    if args.child:
        print(json.dumps(_one(args.child, args.models, args.concurrency, stream, args.workers)), flush=True)
        return 0

    sys.path.insert(0, str(HERE))
    from fanout import _server  # the same local server

    api_base, stop = _server(args.latency_ms / 1000)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    out: dict[str, object] = {"scale.latency_ms": args.latency_ms, "scale.stream": stream}
    print(f"llmlab scale benchmark: sizes {sizes}, {args.models} models, latency {args.latency_ms:g} ms, "
          f"concurrency {args.concurrency}, stream={stream}", flush=True)
    figures = {}
    for n in sizes:
        env = dict(os.environ, OPENAI_API_BASE=api_base, OPENAI_API_KEY="sk-bench-not-a-real-key",
                   LLMLAB_DB=str(Path(tempfile.mkdtemp(prefix="llmlab-scale-")) / "scale.duckdb"))
        cmd = [sys.executable, __file__, "--child", str(n), "--models", str(args.models), "--concurrency",
               str(args.concurrency), "--latency-ms", str(args.latency_ms), "--workers", str(args.workers)] + (["--no-stream"] if not stream else [])
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        if proc.returncode or not lines:
            print(f"  {n}: failed ({proc.returncode}): {proc.stderr[-2000:]}", flush=True)
            continue
        f = json.loads(lines[-1])
        figures[n] = f
        for k in ("wall_s", "cpu_ms_per_call", "peak_rss_mb", "rows", "calls", "ok"):
            out[f"scale.{n}.{k}"] = round(f[k], 2) if isinstance(f[k], float) else f[k]
        print(f"  {f['calls']:>7} calls: wall {f['wall_s']:7.1f} s, CPU {f['cpu_ms_per_call']:5.2f} ms/call, "
              f"peak RSS {f['peak_rss_mb']:6.0f} MB (after warm-up {f['rss_after_warmup_mb']:.0f} MB), "
              f"{f['rows']} rows stored, {f['ok']} ok", flush=True)
    stop()
    if len(figures) >= 2:
        small, large = figures[min(figures)], figures[max(figures)]
        ratio = large["cpu_ms_per_call"] / small["cpu_ms_per_call"]
        out["scale.cpu_per_call_ratio_largest_vs_smallest"] = round(ratio, 3)
        out["scale.target.cpu_flat_within_10pct"] = abs(ratio - 1) <= 0.10
        print(f"  CPU per call, {max(figures)} vs {min(figures)} calls: {ratio:.2f} x (target within 10 %: "
              f"{out['scale.target.cpu_flat_within_10pct']})")
    if figures:
        big = figures[max(figures)]
        out["scale.target.rss_below_1gb_at_largest"] = big["peak_rss_mb"] < 1024
        out["scale.target.one_row_per_call"] = all(f["rows"] == f["calls"] for f in figures.values())
        print(f"  peak RSS at {max(figures)} calls: {big['peak_rss_mb']:.0f} MB (target < 1024 MB at 100k: "
              f"{out['scale.target.rss_below_1gb_at_largest']}); one row per planned call: "
              f"{out['scale.target.one_row_per_call']}")
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
