"""Store at scale: the everyday reads on a synthetic store, each against a raw DuckDB query of the same figures.

    .venv/bin/python benchmarks/store.py                   # a store of 1,000,000 calls (10 runs x 100,000)
    .venv/bin/python benchmarks/store.py --calls 10000000  # issue 18: 10^7 calls (100 runs)

The store is generated inside DuckDB by :func:`benchmarks.store_scale.fill` (no Python loop). Then, on one
10^5-call run, each read is timed ``--repeats`` times (median) next to its baseline in the same process:

- ``writes``: :meth:`Store.append_calls` in batches of ``--batch`` rows (target >= 100,000 rows/s), next to DuckDB's
  own insert of the same rows on one open connection;
- ``summary``: :func:`llmlab.summarize` of the stored run per model x category, aggregated in DuckDB
  (:func:`llmlab.analysis.summary_sql.summarize_run`; target < 1 s);
- ``routing_table``: :func:`llmlab.routing_table` of the stored run (target < 2 s);
- ``results``: :meth:`Store.results` of the run (target < 1 s);
- ``compare``: opening :func:`llmlab.compare` on the run, the widget built, not rendered (target < 3 s); beside
  it ``compare_floor``, the same view of the run's first 4 calls: what its widgets cost whatever the run's size.

The baseline of each is one raw DuckDB ``GROUP BY`` of the run per model x category (n, ok calls, mean score,
p50/p95/p99 latency, cost, error rate) -- for ``results`` a raw ``SELECT`` of the run's rows into pandas -- and
the ratio target is <= 2. Peak RSS from ``resource.getrusage``. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.store_scale import fill  # noqa: E402

RAW_GROUP_BY = """
    SELECT c.model, p.category, count(*) AS n, count(*) FILTER (WHERE c.status = 'ok') AS n_ok,
           avg(s.score) AS quality,
           quantile_cont(c.latency_ms, [0.5, 0.95, 0.99]) FILTER (WHERE c.status = 'ok') AS latency_ms_q,
           sum(c.cost_usd) AS cost_usd, avg(CASE WHEN c.status = 'error' THEN 1 ELSE 0 END) AS error_rate
    FROM call_records c JOIN prompts p ON p.run_id = c.run_id AND p.prompt_id = c.prompt_id
    LEFT JOIN scores s ON s.call_id = c.call_id
    WHERE c.run_id = ? GROUP BY ALL ORDER BY ALL"""
RAW_SELECT = "SELECT * FROM call_records WHERE run_id = ?"
TARGETS_S = {"summary": 1.0, "routing_table": 2.0, "results": 1.0, "compare": 3.0}
TARGET_RATIO = 2.0
TARGET_WRITE_ROWS_S = 100_000


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _median_s(fn, repeats: int, views: list | None = None) -> float:  # noqa: ANN001
    """The median wall time of ``fn()``; the widget views it appended to ``views`` are closed after each timing."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        while views:
            views.pop().close()
    return statistics.median(times)


def writes(tmp: Path, rows: int, batch: int) -> tuple[float, float]:
    """Rows/s of :meth:`Store.append_calls` in batches of ``batch`` rows (the rows built beforehand; one batch
    written first to another run, so that pyarrow's and DuckDB's once-per-process start is not counted), and of
    its floor in the same process: the same rows, batches and columns sent straight to DuckDB (an Arrow table
    per batch, a plain ``INSERT``) on one connection kept open, into a store file of its own."""
    import pyarrow as pa

    from benchmarks.store_writes import _rows
    from llmlab.store import CALL_COLUMNS, Store

    store = Store(tmp / "writes.duckdb")
    data = _rows(rows, "w")
    store.append_calls(_rows(batch, "warm-up"))
    t0 = time.perf_counter()
    for i in range(0, rows, batch):
        store.append_calls(data[i:i + batch])
    llmlab_rows_s = rows / (time.perf_counter() - t0)

    floor = Store(tmp / "writes-floor.duckdb")  # the same schema, migrated
    cols = ", ".join(CALL_COLUMNS)
    with floor.connect() as con:
        t0 = time.perf_counter()
        for i in range(0, rows, batch):
            con.register("_rows", pa.Table.from_pylist(data[i:i + batch]).select(list(CALL_COLUMNS)))
            con.execute(f"INSERT INTO call_records ({cols}) SELECT {cols} FROM _rows")
            con.unregister("_rows")
        raw_rows_s = rows / (time.perf_counter() - t0)
    return llmlab_rows_s, raw_rows_s


def reads(store, run_id: str, repeats: int) -> dict[str, float]:  # noqa: ANN001
    import llmlab
    from llmlab.analysis import summarize
    from llmlab.routing import routing_table
    from llmlab.widgets import CompareView

    views: list = []  # each view opened is closed after its timing (CompareView.close), as a replaced view is
    first = store.results(run_id).head(4)
    models = first["model"].unique().tolist()

    def raw_group_by() -> None:
        with store.connect(read_only=True) as con:
            con.execute(RAW_GROUP_BY, [run_id]).df()

    def raw_select() -> None:
        with store.connect(read_only=True) as con:
            con.execute(RAW_SELECT, [run_id]).df()

    out = {
        "raw_group_by": _median_s(raw_group_by, repeats),
        "raw_select": _median_s(raw_select, repeats),
        "summary": _median_s(lambda: summarize(run_id, by=("model", "category"), store=store), repeats),
        "routing_table": _median_s(lambda: routing_table(run_id, store=store), repeats),
        "results": _median_s(lambda: store.results(run_id), repeats),
        "compare": _median_s(lambda: views.append(llmlab.compare(run_id, store=store)), repeats, views),
        "compare_floor": _median_s(lambda: views.append(CompareView(first, models=models)), repeats, views),
    }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=1_000_000, help="calls in the store (default 10^6)")
    ap.add_argument("--run-calls", type=int, default=100_000, help="calls per run (default 10^5)")
    ap.add_argument("--repeats", type=int, default=3, help="repeats of each timing (median reported)")
    ap.add_argument("--write-rows", type=int, default=50_000)
    ap.add_argument("--batch", type=int, default=5_000)
    args = ap.parse_args(argv)
    from llmlab.store import Store

    tmp = Path(tempfile.mkdtemp(prefix="llmlab-store-bench-"))
    write_rows_s, raw_write_rows_s = writes(tmp, args.write_rows, args.batch)
    store = Store(tmp / "store.duckdb")
    t0 = time.perf_counter()
    fill(store, args.calls, args.run_calls)
    t_fill = time.perf_counter() - t0
    n = int(store.sql("SELECT count(*) AS n FROM call_records")["n"][0])
    rss_before = _rss_mib()
    run_id = "r00000"
    reads(store, run_id, 1)  # warm-up: imports, caches
    r = reads(store, run_id, args.repeats)
    rss = _rss_mib()
    ok_w = write_rows_s >= TARGET_WRITE_ROWS_S
    print(f"store: {n:,} calls ({n // args.run_calls} runs of {args.run_calls:,}), generated in {t_fill:.0f} s; "
          f"median of {args.repeats}")
    print(f"{'writes':>14}: {write_rows_s:9,.0f} rows/s in batches of {args.batch:,} (target >= "
          f"{TARGET_WRITE_ROWS_S:,}: {'met' if ok_w else 'MISSED'}); DuckDB's own insert of the same rows on one "
          f"open connection {raw_write_rows_s:,.0f} rows/s (ratio {raw_write_rows_s / write_rows_s:.2f})")
    print(f"{'raw GROUP BY':>14}: {r['raw_group_by']:7.3f} s; raw SELECT of the run: {r['raw_select']:7.3f} s")
    result: dict[str, float] = {"store.calls": n, "store.write_rows_per_s": round(write_rows_s),
                                "store.raw_write_rows_per_s": round(raw_write_rows_s),
                                "store.write_ratio": round(raw_write_rows_s / write_rows_s, 2),
                                "store.raw_group_by_s": round(r["raw_group_by"], 3),
                                "store.raw_select_s": round(r["raw_select"], 3)}
    for key, target in TARGETS_S.items():
        base = r["raw_select"] if key == "results" else r["raw_group_by"]
        ratio = r[key] / base if base else float("nan")
        met = r[key] < target and ratio <= TARGET_RATIO
        print(f"{key:>14}: {r[key]:7.3f} s (target < {target:.0f} s); ratio {ratio:6.1f} against the raw "
              f"{'SELECT' if key == 'results' else 'GROUP BY'} (target <= {TARGET_RATIO:.0f}): "
              f"{'met' if met else 'MISSED'}")
        result[f"store.{key}_s"] = round(r[key], 3)
        result[f"store.{key}_ratio"] = round(ratio, 2)
    floor = r["compare_floor"]
    print(f"{'compare floor':>14}: {floor:7.3f} s (the view of 4 calls: its widgets); with one raw GROUP BY for its "
          f"header that is {(floor + r['raw_group_by']) / r['raw_group_by']:.1f} x the GROUP BY before any row is read")
    result["store.compare_floor_s"] = round(floor, 3)
    print(f"peak RSS {rss:,.0f} MiB (after generating the store: {rss_before:,.0f} MiB)")
    result["store.peak_rss_mib"] = round(rss)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
