"""The DuckDB store: schema history, idempotent call inserts, and the file lock shared with other processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import duckdb
import pytest

from llmlab.errors import SchemaVersionError, StoreError
from llmlab.migrations import MIGRATIONS
from llmlab.store import CALL_COLUMNS, Store, utc_now


def _call(call_id: str, run_id: str = "r1", **kw) -> dict:
    row = {c: None for c in CALL_COLUMNS}
    row.update(call_id=call_id, run_id=run_id, prompt_id="p1", sample_index=0, model="sandbox/fast", status="ok",
               attempts=1, fallbacks_taken=0, cached=False, created_at_utc=utc_now(), response="4")
    row.update(kw)
    return row


def test_a_new_file_gets_every_migration_and_a_newer_file_is_refused_untouched(tmp_path):
    import llmlab.store as store_mod

    path = tmp_path / "s.duckdb"
    assert Store(path).schema_version() == len(MIGRATIONS)
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO schema_migrations VALUES (999, 'from the future', now())")
    con.close()
    store_mod._migrated.discard(str(path.resolve()))
    with pytest.raises(SchemaVersionError, match="newer"):
        Store(path)
    con = duckdb.connect(str(path))
    assert con.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == 999
    con.close()


def test_appending_calls_is_idempotent_per_run_and_call_id(tmp_path):
    store = Store(tmp_path / "s.duckdb")
    batch = [_call("c1"), _call("c2"), _call("c2", response="a second copy in the same batch")]
    store.append_calls(batch)
    store.append_calls(batch)  # the whole batch again, as after an ambiguous failure
    store.append_calls([_call("c1", run_id="r2")])  # the same call id in another run is another row
    df = store.sql("SELECT run_id, call_id, response FROM call_records ORDER BY run_id, call_id")
    assert df.values.tolist() == [["r1", "c1", "4"], ["r1", "c2", "4"], ["r2", "c1", "4"]]


def test_a_file_that_is_not_duckdb_is_a_store_error(tmp_path):
    path = tmp_path / "notes.duckdb"
    path.write_text("not a database\n" * 100)
    with pytest.raises(StoreError, match=str(path.name)):
        Store(path)


HOLDER = textwrap.dedent("""
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    con.close()
""")


def test_another_process_holding_the_file_is_waited_for_then_given_up_on(tmp_path):
    path = tmp_path / "s.duckdb"
    store = Store(path, lock_timeout_s=0.3)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), "1.5"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreError, match="cannot open"):
            store.sql("SELECT 1")
        assert store.lock_retries > 0, "it retried before giving up"
        patient = Store(path, lock_timeout_s=30)
        assert patient.sql("SELECT 42 AS x")["x"][0] == 42  # succeeds once the other process lets go
        assert patient.lock_retries > 0 and patient.lock_wait_s > 0
    finally:
        holder.kill()
        holder.wait()


OPENER = textwrap.dedent("""
    import sys, duckdb
    try:
        duckdb.connect(sys.argv[1]).close()
        print("opened")
    except duckdb.IOException as exc:
        print("refused" if "lock" in str(exc).lower() else f"error {exc}")
""")


def _other_process_opens(path) -> str:
    return subprocess.run([sys.executable, "-c", OPENER, str(path)], capture_output=True, text=True,
                          timeout=60).stdout.strip()


def test_the_file_is_held_only_while_a_connection_of_this_process_is_open(tmp_path):
    # the store keeps one DuckDB instance per file for the process and attaches the file per connection: the
    # lock must still be released when the last connection closes, for other processes (another kernel, the CLI)
    store = Store(tmp_path / "s.duckdb")
    team = Store(tmp_path / "team.duckdb")
    team.append_calls([_call("t1", run_id="rt")])
    store.attach(tmp_path / "team.duckdb", "team")
    store.append_calls([_call("c1")])
    assert _other_process_opens(store.path) == "opened"
    assert _other_process_opens(team.path) == "opened"  # what was attached beside it is released too
    with store.connect() as held:
        assert _other_process_opens(store.path) == "refused"
        assert _other_process_opens(team.path) == "refused"  # attached read-only: still a lock
        with store.connect() as second:  # another thread's connection opening and closing meanwhile
            second.execute("SELECT 1")
        assert held.execute("SELECT count(*) FROM call_records").fetchone()[0] == 1  # the first one still works
        assert held.execute("SELECT count(*) FROM team.call_records").fetchone()[0] == 1
    assert _other_process_opens(store.path) == "opened"
    assert store.sql("SELECT count(*) AS n FROM team.calls")["n"][0] == 1  # the attachment is made again


def test_threads_opening_and_closing_connections_never_conflict(tmp_path):
    """DuckDB shares one database instance per file in a process; open/close races used to raise
    'Unique file handle conflict' (27 of 1,200 calls with 4 threads before the fix)."""
    import threading

    store = Store(tmp_path / "threads.duckdb")
    failures: list[str] = []

    def work() -> None:
        for _ in range(150):
            try:
                store.sql("SELECT 1")
            except Exception as exc:  # noqa: BLE001
                failures.append(str(exc))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_rating_an_unknown_call_raises_call_not_found(tmp_path):
    from llmlab.store import CallNotFoundError

    store = Store(tmp_path / "r.duckdb")
    with pytest.raises(CallNotFoundError, match="c-missing"):
        store.rate("c-missing", True)


def test_a_run_whose_process_died_is_listed_as_interrupted(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store = Store(tmp_path / "runs.duckdb")
    store.create_run(run_id="r-dead", name="killed", status="running", pid=dead.pid)
    store.create_run(run_id="r-alive", name="live", status="running")          # this process
    status = store.runs().set_index("run_id")["status"]
    assert status["r-dead"] == "interrupted" and status["r-alive"] == "running"


def test_opening_a_version_1_file_adds_the_host_column_and_keeps_rows(tmp_path):
    path = tmp_path / "v1.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_migrations (version INTEGER NOT NULL, name VARCHAR, applied_at_utc TIMESTAMP NOT NULL)")
    con.execute(MIGRATIONS[0][1])
    con.execute("INSERT INTO schema_migrations VALUES (1, 'initial', now())")
    con.execute("INSERT INTO runs (run_id, created_at_utc, status) VALUES ('r-old', now(), 'finished')")
    con.close()
    store = Store(path)
    assert store.schema_version() == len(MIGRATIONS) >= 2
    assert store.sql("SELECT run_id, host FROM runs").to_dict("records") == [{"run_id": "r-old", "host": None}]
