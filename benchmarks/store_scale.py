"""Store scale: a synthetic store of 10^7 calls, and how the everyday reads behave on it.

    .venv/bin/python benchmarks/store_scale.py                  # 10,000,000 calls = 100 runs x 100,000
    .venv/bin/python benchmarks/store_scale.py --calls 1000000  # a quicker one
    .venv/bin/python benchmarks/store_scale.py --store /tmp/llmlab-store-scale-XXXX/big.duckdb  # re-time the reads

The rows are generated inside DuckDB (``range()``, one ``INSERT ... SELECT`` per table, no Python loop): runs of
``--run-calls`` calls each (25,000 prompts x 4 models, 5 categories, 5% error rows, a deterministic score per
call, an answer of about 60 characters). Then, timed:

- ``summary_sql``: the store-wide summary per model x category over the ``calls`` view (n, error rate, p50 /
  p95 latency, cost) in SQL;
- ``results``: :meth:`Store.results` of one 10^5-call run (the ``calls`` view joined with ``call_quality``);
- ``summarize``: :func:`llmlab.summarize` of that run per model x category, aggregated in DuckDB;
- ``routing_table``: :func:`llmlab.routing_table` of that run (its summaries aggregated in DuckDB);
- ``compare``: opening :func:`llmlab.compare` on that run (the widget built, not rendered).

Baseline in the same run: the same reads on a store holding only that one run, so each line prints the ratio
(10^7-call store / one-run store): how much the other 99 runs slow a read of one. Peak RSS from
``resource.getrusage``. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODELS = ["sandbox/frontier", "sandbox/balanced", "sandbox/fast", "sandbox/tiny"]
CATEGORIES = ["math", "code", "extraction", "reasoning", "writing"]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fill(store, n_calls: int, run_calls: int) -> None:  # noqa: ANN001
    """Generate ``n_calls`` synthetic call rows (and their runs, prompts and scores) in DuckDB."""
    n_runs = max(1, n_calls // run_calls)
    per_prompt = len(MODELS)
    models = "['" + "', '".join(MODELS) + "']"
    cats = "['" + "', '".join(CATEGORIES) + "']"
    with store.connect() as con:
        con.execute(f"""INSERT INTO runs (run_id, name, created_at_utc, status, prompt_set, models, n_prompts,
                        n_calls_planned, source, sandbox)
            SELECT 'r' || lpad(i::VARCHAR, 5, '0'), 'synthetic ' || i, TIMESTAMP '2026-01-01' + i * INTERVAL 1 HOUR,
                   'finished', 'synthetic', '{json.dumps(MODELS)}', {run_calls // per_prompt}, {run_calls},
                   'benchmark', true
            FROM range({n_runs}) t(i)""")
        con.execute(f"""INSERT INTO prompts (run_id, prompt_id, category, prompt, reference, scorer)
            SELECT 'r' || lpad((i // {run_calls // per_prompt})::VARCHAR, 5, '0'), 'p' || (i % {run_calls // per_prompt}),
                   {cats}[1 + (i % {run_calls // per_prompt}) % 5], 'Synthetic prompt number ' || i,
                   (i % 97)::VARCHAR, 'exact'
            FROM range({n_runs * (run_calls // per_prompt)}) t(i)""")
        con.execute(f"""INSERT INTO call_records (call_id, run_id, prompt_id, sample_index, model, answered_by, status,
                        error_type, attempts, fallbacks_taken, retry_wait_ms, latency_ms, ttft_ms, input_tokens,
                        output_tokens, cost_usd, cached, response, finish_reason, attempt_log, created_at_utc)
            SELECT 'c' || i, 'r' || lpad((i // {run_calls})::VARCHAR, 5, '0'),
                   'p' || ((i % {run_calls}) // {per_prompt}), 0, {models}[1 + i % {per_prompt}],
                   {models}[1 + i % {per_prompt}], CASE WHEN hash(i) % 20 = 0 THEN 'error' ELSE 'ok' END,
                   CASE WHEN hash(i) % 20 = 0 THEN 'InternalServerError' END, 1, 0, 0.0,
                   100 + (hash(i) % 2000) * (1 + i % {per_prompt}), 50.0, 20 + hash(i) % 50, 30 + hash(i * 7) % 200,
                   (20 + hash(i) % 50) * 1e-6 + (30 + hash(i * 7) % 200) * 4e-6, false,
                   'The synthetic answer to prompt ' || ((i % {run_calls}) // {per_prompt}) || ' is ' || (hash(i) % 97),
                   'stop', '[]', TIMESTAMP '2026-01-01' + i * INTERVAL 1 MILLISECOND
            FROM range({n_runs * run_calls}) t(i)""")
        con.execute("""INSERT INTO scores (run_id, call_id, prompt_id, model, kind, scorer, score, raw_value,
                        created_at_utc)
            SELECT run_id, call_id, prompt_id, model, 'auto', 'exact', CASE WHEN hash(call_id) % 3 = 0 THEN 0 ELSE 1 END,
                   NULL, created_at_utc FROM call_records WHERE status = 'ok'""")


def _timed(fn) -> tuple[float, object]:  # noqa: ANN001
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def reads(store, run_id: str) -> dict[str, float]:  # noqa: ANN001
    import llmlab
    from llmlab.analysis import summarize
    from llmlab.routing import routing_table

    out: dict[str, float] = {}
    out["summary_sql"], _ = _timed(lambda: store.sql("""
        SELECT model, category, count(*) AS n, avg(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS error_rate,
               quantile_cont(latency_ms, 0.5) AS p50_ms, quantile_cont(latency_ms, 0.95) AS p95_ms,
               sum(cost_usd) AS cost_usd
        FROM calls GROUP BY ALL ORDER BY ALL"""))
    out["results"], frame = _timed(lambda: store.results(run_id))
    out["summarize"], _ = _timed(lambda: summarize(run_id, by=("model", "category"), store=store))
    out["routing_table"], _ = _timed(lambda: routing_table(run_id, store=store))
    out["compare"], _ = _timed(lambda: llmlab.compare(run_id, store=store))
    out["rows"] = float(len(frame))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=10_000_000)
    ap.add_argument("--run-calls", type=int, default=100_000)
    ap.add_argument("--store", metavar="PATH", help="time the reads of run r00000 on this existing store (one this "
                    "benchmark generated: it keeps its files in a temporary folder), 3 times, instead of generating")
    args = ap.parse_args(argv)
    from llmlab.store import Store

    if args.store:
        store = Store(args.store)
        reads(store, "r00000")  # warm-up: imports, caches
        times = [reads(store, "r00000") for _ in range(3)]
        n = int(store.sql("SELECT count(*) AS n FROM call_records")["n"][0])
        print(f"store {args.store}: {n:,} calls; load average {os.getloadavg()[0]:.1f}; 3 repeats, median")
        out = {"store_scale.calls": n}
        for key in ("summary_sql", "results", "summarize", "routing_table", "compare"):
            med = sorted(t[key] for t in times)[1]
            print(f"{key:>14}: {med:7.3f} s (each: {', '.join(f'{t[key]:.2f}' for t in times)})")
            out[f"store_scale.{key}_s"] = round(med, 3)
        out["store_scale.peak_rss_mib"] = round(_rss_mb())
        print(f"peak RSS {_rss_mb():.0f} MiB")
        print(json.dumps(out))
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="llmlab-store-scale-"))
    small, big = Store(tmp / "one-run.duckdb"), Store(tmp / "big.duckdb")
    t_small, _ = _timed(lambda: fill(small, args.run_calls, args.run_calls))
    t_big, _ = _timed(lambda: fill(big, args.calls, args.run_calls))
    size_mb = (tmp / "big.duckdb").stat().st_size / 2**20
    run_id = "r00000"
    reads(small, run_id)  # warm-up: imports, caches
    base = reads(small, run_id)
    rss0 = _rss_mb()
    at_scale = reads(big, run_id)
    rss1 = _rss_mb()
    n = int(big.sql("SELECT count(*) AS n FROM call_records")["n"][0])
    print(f"store: {n:,} calls in {n // args.run_calls} runs, {size_mb:,.0f} MiB on disk, generated in {t_big:.0f} s "
          f"(one-run baseline store: {t_small:.1f} s)")
    result = {"store_scale.calls": n, "store_scale.file_mib": round(size_mb), "store_scale.peak_rss_mib": round(rss1)}
    for key in ("summary_sql", "results", "summarize", "routing_table", "compare"):
        ratio = at_scale[key] / base[key] if base[key] else float("nan")
        print(f"{key:>14}: {at_scale[key]:7.3f} s at {n:,} calls; {base[key]:7.3f} s with one run; ratio {ratio:5.2f}")
        result[f"store_scale.{key}_s"] = round(at_scale[key], 3)
        result[f"store_scale.{key}_ratio"] = round(ratio, 2)
    print(f"one run's results: {int(at_scale['rows']):,} rows; peak RSS {rss1:.0f} MiB (before the reads at scale "
          f"{rss0:.0f} MiB)")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
