"""Store write throughput: the batch writer's bulk insert against row-by-row inserts, in this process.

    .venv/bin/python benchmarks/store_writes.py [--rows 20000] [--row-by-row 2000]

Prints rows/s of each and their ratio (the figure to compare between machines: absolute times are noisy), plus
the cost of one short-lived connection (open + close) and of the idempotent insert (anti-join on call_id) on a
store that already holds ``--rows`` rows, and, with ``--two-processes``, what two processes writing batches to
one file at the same time see (every row stored, lock waits). ``--steps 5000`` also times the steps of
:meth:`Store.append_calls` on batches of that many rows (open, Arrow table, idempotent insert, close: DuckDB's
checkpoint), as the store does it (the file attached to the process's kept DuckDB instance) and with a new DuckDB
instance per batch, with and without the checkpoint on close (``PRAGMA disable_checkpoint_on_shutdown``: the next
open replays the write-ahead log instead). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path


def _rows(n: int, run_id: str, start: int = 0) -> list[dict]:
    from llmlab.store import CALL_COLUMNS, utc_now

    now = utc_now()
    out = []
    for i in range(start, start + n):
        r = dict.fromkeys(CALL_COLUMNS)
        r.update(call_id=f"c{i:08d}", run_id=run_id, prompt_id=f"p{i % 997}", sample_index=0,
                 model=f"sandbox/m{i % 4}", answered_by=f"sandbox/m{i % 4}", status="ok", attempts=1,
                 fallbacks_taken=0, retry_wait_ms=0.0, latency_ms=123.4, ttft_ms=45.6, input_tokens=20,
                 output_tokens=60, cost_usd=1e-5, cached=False, cache_key=f"k{i}", response="an answer " * 20,
                 finish_reason="stop", attempt_log='[{"model": "sandbox/m0", "status": "ok"}]', created_at_utc=now)
        out.append(r)
    return out


WRITER = textwrap.dedent("""
    import json, sys, time
    sys.path.insert(0, sys.argv[5])
    from benchmarks.store_writes import _rows
    from llmlab.store import Store
    path, run_id, batches, batch_rows = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    store = Store(path)
    t0 = time.perf_counter()
    write_s = []
    for b in range(batches):
        t = time.perf_counter()
        store.append_calls(_rows(batch_rows, run_id, start=b * batch_rows))
        write_s.append(time.perf_counter() - t)
        time.sleep(0.05)
    print(json.dumps({"wall_s": time.perf_counter() - t0, "write_s_max": max(write_s),
                      "write_s_mean": sum(write_s) / len(write_s), "lock_waits": store.lock_waits,
                      "lock_retries": store.lock_retries, "lock_wait_s": store.lock_wait_s}))
""")


def two_processes(path: Path, batches: int = 40, batch_rows: int = 200) -> dict:
    """Two processes append ``batches`` × ``batch_rows`` rows each to one file at the same time."""
    from llmlab.store import Store

    Store(path)  # migrate first
    repo = str(Path(__file__).resolve().parent.parent)
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), f"run{i}", str(batches), str(batch_rows), repo],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=repo)
             for i in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        if p.returncode:
            raise SystemExit(f"writer failed: {err[-2000:]}")
        outs.append(json.loads(out.strip().splitlines()[-1]))
    counts = Store(path).sql("SELECT run_id, count(*) AS n, count(DISTINCT call_id) AS d FROM call_records "
                             "GROUP BY run_id ORDER BY run_id")
    return {"expected_rows_per_process": batches * batch_rows, "rows": counts["n"].tolist(),
            "distinct": counts["d"].tolist(), "writers": outs}


def steps(tmp: Path, batch: int, batches: int = 10) -> dict:
    """Milliseconds per ``batch``-row batch of each step of :meth:`Store.append_calls` (the steps of
    ``Store._insert`` on a connection of its own), and rows/s, for three ways to open the file per batch:

    - ``attach``: what the store does, attach the file to the process's kept DuckDB instance, detach it after
      (the detach checkpoints);
    - ``checkpoint_on_close``: a new DuckDB instance per batch (``duckdb.connect(file)``, the store before stop 26);
    - ``no_checkpoint_on_close``: the same with ``PRAGMA disable_checkpoint_on_shutdown``."""
    import duckdb

    from llmlab import store as store_module
    from llmlab.store import CALL_COLUMNS, Store, _arrow_rows

    cols = ", ".join(CALL_COLUMNS)
    sql = (f"INSERT INTO call_records ({cols}) SELECT {cols} FROM _r r WHERE NOT EXISTS "
           "(SELECT 1 FROM call_records t WHERE t.run_id = r.run_id AND t.call_id = r.call_id)")
    out: dict = {"batch_rows": batch}
    for variant in ("attach", "checkpoint_on_close", "no_checkpoint_on_close"):
        store = Store(tmp / f"steps-{variant}.duckdb")
        store.append_calls(_rows(batch, "warm-up"))
        data = _rows(batch * batches, variant)
        ms = {"open": 0.0, "arrow": 0.0, "insert": 0.0, "close": 0.0}
        t0 = time.perf_counter()
        for i in range(0, len(data), batch):
            t = time.perf_counter()
            if variant == "attach":
                con = store_module._open(store.path)
            else:
                con = duckdb.connect(str(store.path))
                if variant == "no_checkpoint_on_close":
                    con.execute("PRAGMA disable_checkpoint_on_shutdown")
            ms["open"] += time.perf_counter() - t
            t = time.perf_counter()
            table = _arrow_rows(CALL_COLUMNS, data[i:i + batch])
            ms["arrow"] += time.perf_counter() - t
            t = time.perf_counter()
            con.register("_r", table)
            con.execute(sql)
            con.unregister("_r")
            ms["insert"] += time.perf_counter() - t
            t = time.perf_counter()
            if variant == "attach":
                store_module._close(store.path, con)
            else:
                con.close()
            ms["close"] += time.perf_counter() - t
        out[variant] = {"rows_per_s": round(len(data) / (time.perf_counter() - t0)),
                        **{f"{k}_ms": round(v / batches * 1000, 1) for k, v in ms.items()}}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20000, help="rows for the bulk insert")
    ap.add_argument("--row-by-row", type=int, default=2000, help="rows for the row-by-row baseline")
    ap.add_argument("--two-processes", action="store_true", help="also measure two writer processes")
    ap.add_argument("--steps", type=int, default=0, help="also time the steps of batches of this many rows")
    args = ap.parse_args(argv)
    from llmlab.store import CALL_COLUMNS, Store

    tmp = Path(tempfile.mkdtemp(prefix="llmlab-bench-"))
    store = Store(tmp / "bulk.duckdb")

    bulk_rows = _rows(args.rows, "bulk")
    t = time.perf_counter()
    store.append_calls(bulk_rows)
    bulk_s = time.perf_counter() - t
    bulk_rate = args.rows / bulk_s

    single = Store(tmp / "single.duckdb")
    rows = _rows(args.row_by_row, "single")
    placeholders = ", ".join("?" for _ in CALL_COLUMNS)
    with single.connect() as con:
        t = time.perf_counter()
        for r in rows:
            con.execute(f"INSERT INTO call_records ({', '.join(CALL_COLUMNS)}) VALUES ({placeholders})",
                        [r[c] for c in CALL_COLUMNS])
        single_s = time.perf_counter() - t
    single_rate = args.row_by_row / single_s

    t = time.perf_counter()
    for _ in range(20):
        with store.connect():
            pass
    connect_ms = (time.perf_counter() - t) / 20 * 1000

    batch = _rows(500, "bulk", start=args.rows)  # 500 new rows into a store that holds --rows rows
    t = time.perf_counter()
    store._append("call_records", CALL_COLUMNS, batch)
    plain_ms = (time.perf_counter() - t) * 1000
    batch2 = _rows(500, "bulk", start=args.rows + 500)
    t = time.perf_counter()
    store.append_calls(batch2)
    idem_ms = (time.perf_counter() - t) * 1000

    figures = {"bulk_rows": args.rows, "bulk_rows_per_s": round(bulk_rate), "row_by_row_rows": args.row_by_row,
               "row_by_row_rows_per_s": round(single_rate), "ratio_bulk_over_row_by_row": round(bulk_rate / single_rate, 1),
               "short_lived_connection_ms": round(connect_ms, 1), "insert_500_plain_ms": round(plain_ms, 1),
               "insert_500_idempotent_ms": round(idem_ms, 1)}
    print(f"bulk insert (one transaction, from pandas): {args.rows} rows in {bulk_s:.3f} s = {bulk_rate:,.0f} rows/s")
    print(f"row by row (one connection, one INSERT each): {args.row_by_row} rows in {single_s:.3f} s = "
          f"{single_rate:,.0f} rows/s")
    print(f"ratio bulk / row-by-row: {bulk_rate / single_rate:,.1f}x")
    print(f"short-lived connection (open + close): {connect_ms:.1f} ms")
    print(f"500-row batch into a {args.rows}-row store: plain {plain_ms:.1f} ms, idempotent (anti-join) {idem_ms:.1f} ms")
    if args.steps:
        figures["steps"] = st = steps(tmp, args.steps)
        for variant in ("attach", "checkpoint_on_close", "no_checkpoint_on_close"):
            v = st[variant]
            print(f"{args.steps}-row batches, {variant.replace('_', ' ')}: {v['rows_per_s']:,} rows/s; per batch: "
                  f"open {v['open_ms']} ms, Arrow table {v['arrow_ms']} ms, idempotent insert {v['insert_ms']} ms, "
                  f"close {v['close_ms']} ms")
    if args.two_processes:
        two = two_processes(tmp / "two.duckdb")
        figures["two_processes"] = two
        ok = two["rows"] == [two["expected_rows_per_process"]] * 2 == two["distinct"]
        print(f"two processes x {two['expected_rows_per_process']} rows in batches of 200 every 50 ms: rows stored "
              f"{two['rows']} ({'all' if ok else 'MISSING ROWS'}); per writer: " + "; ".join(
                  f"wall {w['wall_s']:.1f} s, write mean {w['write_s_mean'] * 1000:.0f} ms max "
                  f"{w['write_s_max'] * 1000:.0f} ms, lock waits {w['lock_waits']} ({w['lock_wait_s']:.2f} s)"
                  for w in two["writers"]))
        if not ok:
            print(json.dumps(figures))
            return 1
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    sys.exit(main())
