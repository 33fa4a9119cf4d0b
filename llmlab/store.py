"""The DuckDB store: one file, many processes, append-mostly tables, batched writes.

Where the file is: ``LLMLAB_DB`` if set, else ``$XDG_DATA_HOME/llmlab/llmlab.duckdb`` (by default
``~/.local/share/llmlab/llmlab.duckdb``). The demo uses ``reports/llmlab.duckdb``.

Tables and views a user can query with SQL (``Store.sql``, ``%llm sql``, or DuckDB itself when no llmlab process
is writing):

- ``runs``: one row per run (``run_id, name, created_at_utc, finished_at_utc, status, prompt_set, models, params,
  tags, llmlab_version, litellm_version, sandbox, n_prompts, n_calls_planned, pid, source``).
- ``prompts``: the prompts of each run (``run_id, prompt_id, category, prompt, reference, scorer, system,
  source_id, messages, response_format, tools, tool_choice``; the last four JSON text or NULL; ``prompt`` is the
  last user turn of a conversation).
- ``call_records`` and the view ``calls``: one final row per (prompt, model, sample) of a run: ``run_id,
  call_id, prompt_id, sample_index, category, model, answered_by, status, error_type, http_status, error_message,
  attempts, fallbacks_taken, retry_wait_ms, latency_ms, ttft_ms, input_tokens, output_tokens, cost_usd, cached,
  response, finish_reason, created_at_utc, prompt, reference, scorer, cache_key, source_call_id, attempt_log,
  tool_calls`` (JSON list of ``{id, name, arguments}``, NULL when the model called no tool), ``response_mode``
  (how a ``response_format`` reached the provider: ``json_schema``, ``json_tool``, ``output_format``,
  ``json_object``; NULL without one), ``messages, response_format, tools, tool_choice`` (the prompt's), ``litellm_call_id, trace_id, model_group, deployment, metadata, prompt_hash,
  response_hash`` (set by the production logger, :mod:`llmlab.production`).
- ``scores``: one row per score (``kind`` auto / judge / human; ``scorer``, ``version``, ``score`` 0..1,
  ``passed``, ``rationale``) and the view ``call_quality`` (per call and scorer the latest score; then the latest
  human rating, else the mean judge score, else the mean deterministic score, as ``quality`` in 0..1).
- ``pairwise_verdicts``: pairwise judge verdicts on two answers to one prompt, in both orders
  (:mod:`llmlab.scoring.pairwise`).

Concurrency (DESIGN.md, decisions 2 and 3): a DuckDB file is locked by the process that opens it, so every
access here uses a short-lived connection (opened, used, closed) and retries with jittered backoff (5 ms doubling
to 100 ms) while another process holds the lock, for up to ``lock_timeout_s``. Within a process, writes come from
one writer (the runner's batch writer) in bulk inserts from pandas, each one transaction, idempotent per
``call_id``. Figures (``benchmarks/store_writes.py``, the README's reliability section): the bulk insert is two to three
orders of magnitude faster than row-by-row inserts; two processes writing one file at the same time both finish
with every row stored.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llmlab import frames
from llmlab.attach import quote_literal
from llmlab.errors import (
    CallNotFoundError,
    RunNotFoundError,
    SchemaVersionError,
    StoreError,
)

__all__ = [
    "CALL_COLUMNS",
    "CALL_DEFAULTS",
    "new_call_row",
    "PAIRWISE_COLUMNS",
    "PASS_MARK",
    "PROMPT_COLUMNS",
    "ROUTING_DECISION_COLUMNS",
    "RUN_COLUMNS",
    "SCORE_COLUMNS",
    "Store",
    "default_path",
    "new_id",
    "utc_now",
]

log = logging.getLogger(__name__)

CALL_COLUMNS = (
    "call_id", "run_id", "prompt_id", "sample_index", "model", "answered_by", "status", "error_type",
    "http_status", "error_message", "attempts", "fallbacks_taken", "retry_wait_ms", "latency_ms", "ttft_ms",
    "input_tokens", "output_tokens", "cost_usd", "cached", "cache_key", "source_call_id", "response",
    "finish_reason", "attempt_log", "created_at_utc", "tool_calls", "response_mode", "litellm_call_id", "trace_id", "model_group", "deployment",
    "metadata", "prompt_hash", "response_hash",
)
#: The value every call row starts from (a call that never got an answer is an error row).
CALL_DEFAULTS: dict[str, Any] = {
    "answered_by": None, "status": "error", "error_type": None, "http_status": None, "error_message": None,
    "attempts": 0, "fallbacks_taken": 0, "retry_wait_ms": 0.0, "latency_ms": None, "ttft_ms": None,
    "input_tokens": None, "output_tokens": None, "cost_usd": None, "cached": False, "source_call_id": None,
    "response": None, "finish_reason": None, "attempt_log": "[]", "created_at_utc": None,
    "tool_calls": None, "response_mode": None,
    "litellm_call_id": None, "trace_id": None, "model_group": None, "deployment": None, "metadata": None,
    "prompt_hash": None, "response_hash": None,
}


def new_call_row(**fields: Any) -> dict[str, Any]:
    """A call row with every column of :data:`CALL_COLUMNS` (defaults from :data:`CALL_DEFAULTS`); raises
    KeyError naming a field that is not a call column, and one that is required but missing."""
    unknown = set(fields) - set(CALL_COLUMNS)
    if unknown:
        raise KeyError(f"not call columns: {sorted(unknown)}")
    row = {c: fields[c] if c in fields else CALL_DEFAULTS.get(c, KeyError) for c in CALL_COLUMNS}
    missing = [c for c, v in row.items() if v is KeyError]
    if missing:
        raise KeyError(f"call row without {missing}")
    return row


PROMPT_COLUMNS = ("run_id", "prompt_id", "category", "prompt", "reference", "scorer", "system", "source_id",
                  "messages", "response_format", "tools", "tool_choice")
SCORE_COLUMNS = ("run_id", "call_id", "prompt_id", "model", "kind", "scorer", "score", "raw_value", "comment",
                 "created_at_utc", "version", "passed", "rationale")
#: A score at or above this passes when a score row does not say (``passed`` column).
PASS_MARK = 0.5
PAIRWISE_COLUMNS = ("run_id", "prompt_id", "category", "model_a", "model_b", "call_id_a", "call_id_b", "judge",
                    "judge_run_id", "verdict_ab", "verdict_ba", "judge_call_id_ab", "judge_call_id_ba", "winner",
                    "consistent", "source", "created_at_utc")
ROUTING_DECISION_COLUMNS = ("run_id", "prompt_id", "model", "policy_kind", "score", "threshold", "decision", "router",
                            "created_at_utc")
RUN_COLUMNS = ("run_id", "name", "created_at_utc", "finished_at_utc", "status", "prompt_set", "models", "params",
               "tags", "llmlab_version", "litellm_version", "sandbox", "n_prompts", "n_calls_planned", "pid", "source",
               "host")

_migrated: set[str] = set()
_process_lock = threading.RLock()
_open_close_lock = threading.Lock()

#: The name a store file is attached under on its process's DuckDB instance (see :class:`_Instance`).
STORE_DATABASE = "llmlab_store"


class _Instance:
    """One in-memory DuckDB instance per store file and process, kept for the life of the process, on which the
    file is attached while any connection of this process uses it and detached (its lock released, its
    write-ahead log checkpointed) when the last one closes.

    Why not ``duckdb.connect(file)`` per connection: creating a DuckDB instance costs about 13 ms (DuckDB 2.0,
    an in-memory one too; ``benchmarks/store_writes.py --steps``), every time, since the file is closed between
    connections so that other processes can open it. ``ATTACH`` / ``DETACH`` of the same file on a kept instance
    costs about 1.4 ms and takes and releases the same lock. Touched only under ``_open_close_lock``."""

    def __init__(self) -> None:
        import duckdb

        self.base = duckdb.connect(":memory:")
        self.pid = os.getpid()
        self.users = 0


_instances: dict[str, _Instance] = {}


def _open(path: Path) -> Any:
    """A new connection (a cursor of the file's instance, ``USE``-ing the file); call under _open_close_lock.
    Raises what ``ATTACH`` raises (``duckdb.IOException`` for a file another process holds)."""
    key = str(path.resolve())
    inst = _instances.get(key)
    if inst is None or inst.pid != os.getpid():  # a forked child never touches its parent's instance
        inst = _instances[key] = _Instance()
    if inst.users == 0:
        inst.base.execute(f"ATTACH {quote_literal(key)} AS {STORE_DATABASE}")
    inst.users += 1
    con = inst.base.cursor()
    try:
        con.execute(f"USE {STORE_DATABASE}")
    except BaseException:
        _close(path, con)
        raise
    return con


def _close(path: Path, con: Any) -> None:
    """Close a connection from :func:`_open`; the last one detaches the file and what was attached beside it
    (``Store.attach``), which releases their locks. Call under _open_close_lock."""
    inst = _instances[str(path.resolve())]
    with contextlib.suppress(Exception):
        con.close()
    inst.users -= 1
    if inst.users == 0:
        names = [r[0] for r in inst.base.execute(
            "SELECT database_name FROM duckdb_databases() WHERE NOT internal AND database_name <> 'memory'"
        ).fetchall()]
        for name in sorted(names, key=lambda n: n == STORE_DATABASE):  # the store last
            inst.base.execute(f'DETACH DATABASE IF EXISTS "{name}"')


def utc_now() -> datetime:
    """Current UTC time as a naive datetime (DuckDB TIMESTAMP, UTC by convention: columns end in ``_utc``)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def new_id(prefix: str = "") -> str:
    """A short random id (12 hex chars), optionally prefixed."""
    return prefix + uuid.uuid4().hex[:12]


def default_path() -> Path:
    """The store path (:func:`llmlab.settings.default_store_path`)."""
    from llmlab.settings import default_store_path

    return default_store_path()


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc)
    return "Could not set lock" in text or "Conflicting lock" in text or "database is locked" in text.lower()


def _pid_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, TypeError, ValueError, OverflowError):
        return True  # exists (another user's) or unknown: do not guess
    return True


def _arrow_rows(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> Any:
    """``rows`` as a pyarrow Table with ``columns``, built column by column: about 10 x faster than a pandas frame
    of object columns (``benchmarks/store.py``'s write figure). Types are inferred per column (NaN reads as NULL);
    a column whose values mix types Arrow cannot unify (an int and a str) is sent as text, as a pandas object
    column would have been."""
    import pyarrow as pa

    arrays = []
    for c in columns:
        values = [r.get(c) for r in rows]
        try:
            arrays.append(pa.array(values, from_pandas=True))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arrays.append(pa.array([None if v is None else str(v) for v in values], type=pa.string()))
    return pa.Table.from_arrays(arrays, names=list(columns))


def _score_rows(rows: Sequence[dict[str, Any]]) -> Sequence[dict[str, Any]]:
    """Score rows completed in place: ``created_at_utc`` now where missing, ``passed`` = ``score >= PASS_MARK``
    where not given."""
    for r in rows:
        r.setdefault("created_at_utc", utc_now())
        if r.get("passed") is None and r.get("score") is not None:
            r["passed"] = bool(r["score"] >= PASS_MARK)
    return rows


class Store:
    """A handle on one llmlab DuckDB file. Cheap to create; holds no connection between calls.

    Args:
        path: the DuckDB file (created with its folder if missing); default :func:`default_path`.
        lock_timeout_s: how long to retry while another process holds the file's lock.

    Raises:
        StoreError: the file cannot be opened (after ``lock_timeout_s`` of retries, or it is not a DuckDB file).
        SchemaVersionError: the file was written by a newer llmlab.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, lock_timeout_s: float = 60.0) -> None:
        self.path = Path(path).expanduser() if path is not None else default_path()
        self.lock_timeout_s = lock_timeout_s
        self.lock_retries = 0
        self.lock_waits = 0
        self.lock_wait_s = 0.0
        self._stats_lock = threading.Lock()
        self._attached: dict[str, tuple[str, list[str]]] = {}  # alias -> (source, statements): Store.attach
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._migrate()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # -- connections ------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[Any]:
        """A short-lived DuckDB connection, retried while another process holds the file lock.

        The connection is a cursor of this process's DuckDB instance for the file, on which the file is attached
        (as ``llmlab_store``, the connection's default database) while any connection of this process is open;
        the last one to close detaches it, which releases the lock for other processes (see :class:`_Instance`).

        Read-only connections are not used: DuckDB refuses a read-only open while another process writes, and a
        read-write one is the same lock. Yields a ``duckdb.DuckDBPyConnection``; closes it on exit. The time
        spent waiting for the lock is added to ``lock_wait_s`` / ``lock_retries`` (this handle's counters).

        Raises StoreError after ``lock_timeout_s`` seconds of waiting, or when the file is not a DuckDB file.
        """
        import duckdb

        start = time.monotonic()
        deadline = start + self.lock_timeout_s
        delay = 0.005
        retries = 0
        while True:
            try:
                # One instance per file and process (_Instance): attaching while another thread detaches would
                # race, so opening and closing are serialized (using a connection is not).
                with _open_close_lock:
                    con = _open(self.path)
                break
            except duckdb.IOException as exc:
                if not _is_lock_error(exc) or time.monotonic() > deadline:
                    self._count_wait(start, retries)
                    raise StoreError(f"cannot open the llmlab store {self.path}: {exc}") from exc
                retries += 1
                with self._stats_lock:  # counted as it happens (a caller may watch it)
                    self.lock_retries += 1
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.1)
            except duckdb.Error as exc:
                raise StoreError(f"cannot open the llmlab store {self.path}: {exc}") from exc
        if retries:
            self._count_wait(start, retries)
        try:
            self._run_attachments(con)
        except BaseException:
            with _open_close_lock:
                _close(self.path, con)
            raise
        try:
            yield con
        finally:
            with _open_close_lock:
                _close(self.path, con)

    def _run_attachments(self, con: Any) -> None:
        for alias, (source, stmts) in self._attached.items():
            try:
                for stmt in stmts:
                    con.execute(stmt)
            except Exception as exc:  # noqa: BLE001 - duckdb.IOException (locked file), BinderException, ...
                hint = (" (another process is writing it: export its runs with `llmlab export RUN --parquet DIR` "
                        "and attach the folder)" if _is_lock_error(exc) else "")
                raise StoreError(f"cannot attach {source} as {alias}: {exc}{hint}") from exc

    def attach(self, source: str | os.PathLike[str], alias: str) -> str:
        """Query another llmlab store file, or a folder of exported runs, read-only beside this one.

        After ``store.attach("team/runs", "team")``, every query of this handle (``store.sql``) can name
        ``team.runs``, ``team.calls``, ``team.call_records``, ``team.prompts``, ``team.scores`` next to the local
        tables: one SQL query compares both. The attachment lasts as long as this handle (it is re-made on each of
        its short-lived connections); see :mod:`llmlab.attach` for what each kind of source gives. Returns alias.

        Raises ValueError (bad alias, or already used for another source), FileNotFoundError, StoreError (not a
        store, no exported run, or a file another process is writing), SchemaVersionError (a newer llmlab wrote it).
        """
        from llmlab.attach import attach_statements, check_attached

        if alias in self._attached and self._attached[alias][0] != str(source):
            raise ValueError(f"attach alias {alias!r} is already used for {self._attached[alias][0]} (detach it first)")
        self._attached[alias] = (str(source), attach_statements(source, alias))
        try:
            with self.connect() as con:
                check_attached(con, alias, source)
        except BaseException:
            self._attached.pop(alias, None)
            raise
        return alias

    def detach(self, alias: str) -> None:
        """Forget an attachment made with :meth:`attach` (a no-op for an unknown alias)."""
        if self._attached.pop(alias, None) is not None:
            with contextlib.suppress(Exception), self.connect() as con:
                con.execute(f"DETACH DATABASE IF EXISTS {alias}")

    @property
    def attached(self) -> dict[str, str]:
        """alias → source of the current attachments."""
        return {a: src for a, (src, _) in self._attached.items()}

    def _count_wait(self, start: float, retries: int) -> None:
        with self._stats_lock:
            self.lock_wait_s += time.monotonic() - start
            self.lock_waits += 1

    def _migrate(self) -> None:
        from llmlab.migrations import MIGRATIONS

        key = str(self.path.resolve())
        if key in _migrated:
            return
        with _process_lock, self.connect() as con:
            con.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER NOT NULL, name VARCHAR, "
                "applied_at_utc TIMESTAMP NOT NULL)"
            )
            (current,) = con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
            if current > len(MIGRATIONS):
                raise SchemaVersionError(
                    f"{self.path} has schema version {current}, newer than this llmlab knows "
                    f"({len(MIGRATIONS)}): upgrade llmlab to read it (the file was not changed)"
                )
            for version, (name, sql) in enumerate(MIGRATIONS, start=1):
                if version <= current:
                    continue
                con.execute("BEGIN TRANSACTION")
                try:
                    (again,) = con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
                    if again >= version:
                        con.execute("ROLLBACK")
                        continue
                    con.execute(sql)
                    con.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", [version, name, utc_now()])
                    con.execute("COMMIT")
                except Exception:
                    con.execute("ROLLBACK")
                    raise
        _migrated.add(key)

    def schema_version(self) -> int:
        """The highest migration applied to this file."""
        with self.connect() as con:
            return con.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]

    # -- writes ------------------------------------------------------------------------------------------
    @staticmethod
    def _insert(con: Any, table: str, columns: Sequence[str], rows: Sequence[dict[str, Any]],
                unique_by: Sequence[str] = ()) -> None:
        """One bulk insert of ``rows`` on ``con``, from an Arrow table built column by column (NaN and None both
        become NULL). With ``unique_by``, rows whose key is already stored (or repeated within ``rows``: the first
        is kept) are skipped, which makes the insert idempotent."""
        if not rows:
            return
        if unique_by:
            seen: set[tuple[Any, ...]] = set()
            kept = []
            for r in rows:
                key = tuple(r.get(c) for c in unique_by)
                if key not in seen:
                    seen.add(key)
                    kept.append(r)
            rows = kept
        data = _arrow_rows(columns, rows)
        cols = ", ".join(columns)
        if unique_by:
            match = " AND ".join(f"t.{c} = r.{c}" for c in unique_by)
            sql = (f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _llmlab_rows r "
                   f"WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE {match})")
        else:
            sql = f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _llmlab_rows"
        con.register("_llmlab_rows", data)
        try:
            con.execute(sql)
        except Exception:
            # an aborted transaction refuses the unregister too: keep the insert's own error for the caller
            with contextlib.suppress(Exception):
                con.unregister("_llmlab_rows")
            raise
        con.unregister("_llmlab_rows")

    def _append(self, table: str, columns: Sequence[str], rows: Sequence[dict[str, Any]],
                unique_by: Sequence[str] = ()) -> None:
        """One bulk insert (one transaction, one short-lived connection) of ``rows``; see :meth:`_insert`."""
        if not rows:
            return
        with self.connect() as con:
            self._insert(con, table, columns, rows, unique_by)

    @staticmethod
    def _run_row(fields: dict[str, Any]) -> dict[str, Any]:
        row = {c: fields.get(c) for c in RUN_COLUMNS}
        row["run_id"] = row["run_id"] or new_id("r")
        row["created_at_utc"] = row["created_at_utc"] or utc_now()
        row["status"] = row["status"] or "running"
        row["pid"] = row["pid"] or os.getpid()
        row["source"] = row["source"] or "llmlab"
        row["host"] = row["host"] or socket.gethostname()
        for c in ("models", "params", "tags"):
            if row[c] is not None and not isinstance(row[c], str):
                row[c] = json.dumps(row[c], default=str)
        # A run's name, prompt set and parameters can hold user text (an auto name quotes a magic cell's first
        # line; params hold the system prompt and extra_params): no secret reaches the runs table either.
        from llmlab.redaction import redact

        for c in ("name", "prompt_set", "params", "tags"):
            if isinstance(row[c], str):
                row[c] = redact(row[c])
        return row

    def create_run(self, **fields: Any) -> str:
        """Insert a run row (status ``running``) and return its ``run_id``; JSON-encodes list/dict fields."""
        row = self._run_row(fields)
        self._append("runs", RUN_COLUMNS, [row], unique_by=("run_id",))  # idempotent: a re-sent run row is skipped
        return row["run_id"]

    def append_batch(self, *, runs: Sequence[dict[str, Any]] = (), prompts: Sequence[dict[str, Any]] = (),
                     calls: Sequence[dict[str, Any]] = (), scores: Sequence[dict[str, Any]] = (),
                     run_params: dict[str, Any] | None = None) -> None:
        """Runs, prompts, calls and scores in one connection and one transaction (the run writer's and the
        production logger's write).

        Runs are skipped when their ``run_id`` is stored, prompts when their ``(run_id, prompt_id)`` is, calls as
        in :meth:`append_calls`; scores are appended as in :meth:`append_scores`. ``run_params``
        (``{run_id: params dict}``) replaces those runs' ``params``. All or nothing: on an error the transaction
        is rolled back and the error raised. With nothing to write, the file is not opened.
        """
        if not (runs or prompts or calls or scores or run_params):
            return
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                self._insert(con, "runs", RUN_COLUMNS, [self._run_row(r) for r in runs], ("run_id",))
                self._insert(con, "prompts", PROMPT_COLUMNS, prompts, ("run_id", "prompt_id"))
                self._insert(con, "call_records", CALL_COLUMNS, calls, ("run_id", "call_id"))
                self._insert(con, "scores", SCORE_COLUMNS, _score_rows(scores))
                for run_id, params in (run_params or {}).items():
                    con.execute("UPDATE runs SET params = ? WHERE run_id = ?", [json.dumps(params, default=str),
                                                                                 run_id])
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise

    def finish_run(self, run_id: str, status: str = "finished") -> None:
        """Mark a run finished / cancelled / failed and stamp ``finished_at_utc``."""
        with self.connect() as con:
            con.execute("UPDATE runs SET status = ?, finished_at_utc = ? WHERE run_id = ?", [status, utc_now(), run_id])

    def add_prompts(self, rows: Sequence[dict[str, Any]], *, unique: bool = False) -> None:
        """Append prompt rows (``PROMPT_COLUMNS``); with ``unique``, a ``(run_id, prompt_id)`` already stored (or
        repeated within ``rows``) is skipped."""
        self._append("prompts", PROMPT_COLUMNS, rows, unique_by=("run_id", "prompt_id") if unique else ())

    def append_calls(self, rows: Sequence[dict[str, Any]]) -> None:
        """Append final call rows (``CALL_COLUMNS``) in one bulk insert (one transaction).

        Idempotent: a row whose ``(run_id, call_id)`` is already stored is skipped, so re-sending a batch after
        an ambiguous failure (the insert committed, the caller saw an error) cannot create a duplicate. Every
        (prompt, model, sample) of a run has its own ``call_id``.
        """
        self._append("call_records", CALL_COLUMNS, rows, unique_by=("run_id", "call_id"))

    def append_scores(self, rows: Sequence[dict[str, Any]], *, skip_existing: bool = False) -> None:
        """Append score rows (``SCORE_COLUMNS``) in one bulk insert; ``passed`` defaults to ``score >= PASS_MARK``.
        With ``skip_existing``, a row whose (call, kind, scorer, version) is already stored is skipped."""
        self._append("scores", SCORE_COLUMNS, _score_rows(rows),
                     unique_by=("call_id", "kind", "scorer", "version") if skip_existing else ())

    def append_pairwise(self, rows: Sequence[dict[str, Any]]) -> None:
        """Append pairwise judge verdicts (``PAIRWISE_COLUMNS``); a verdict already stored for the same run, judge,
        pair of calls and prompt is skipped (judging twice stores once)."""
        self._append("pairwise_verdicts", PAIRWISE_COLUMNS, rows,
                     unique_by=("run_id", "judge", "prompt_id", "model_a", "model_b", "call_id_a", "call_id_b"))

    def pairwise(self, ref: str | None = None) -> Any:
        """The pairwise judge verdicts on a run's answers (``PAIRWISE_COLUMNS``), oldest first."""
        run_id = self.resolve_run(ref)
        return self.sql("SELECT * FROM pairwise_verdicts WHERE run_id = ? ORDER BY created_at_utc, prompt_id, "
                        "model_a, model_b", [run_id])

    def rate(self, call_id: str, rating: float | bool, *, scale: str = "binary", comment: str | None = None) -> float:
        """Record a human rating of one call as the scorer ``human``; returns the normalized score (0..1).

        Args:
            rating: ``True``/``False`` or 1/0 with ``scale="binary"`` (good / bad); 1 to 5 with ``scale="stars"``.
        Raises:
            ValueError: rating out of range; CallNotFoundError (a KeyError and ValueError): unknown call_id.
        """
        if scale == "binary":
            raw = float(bool(rating))
            score = raw
        elif scale == "stars":
            raw = float(rating)
            if not 1 <= raw <= 5:
                raise ValueError(f"star rating must be 1 to 5, got {rating!r}")
            score = (raw - 1) / 4
        else:
            raise ValueError(f"unknown rating scale {scale!r}: use 'binary' or 'stars'")
        with self.connect() as con:
            found = con.execute("SELECT run_id, prompt_id, model FROM call_records WHERE call_id = ?", [call_id]).fetchone()
        if found is None:
            raise CallNotFoundError(f"no call with call_id {call_id!r} in {self.path}")
        run_id, prompt_id, model = found
        self.append_scores([{
            "run_id": run_id, "call_id": call_id, "prompt_id": prompt_id, "model": model, "kind": "human",
            "scorer": "human", "score": score, "raw_value": raw, "comment": comment, "created_at_utc": utc_now(),
            "rationale": comment,
        }])
        return score

    # -- reads -------------------------------------------------------------------------------------------
    def sql(self, query: str, params: Sequence[Any] | None = None) -> Any:
        """Run any SQL against the store and return a pandas DataFrame."""
        with self.connect() as con:
            return con.execute(query, params or []).df()

    def cached_calls(self, cache_keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """For each cache key that has a successful, *paid* call, that call's row (the earliest one)."""
        keys = sorted(set(cache_keys))
        if not keys:
            return {}
        with self.connect() as con:
            frame = frames.frame(
                con,
                """
                SELECT * FROM call_records
                WHERE status = 'ok' AND NOT cached AND cache_key IN (SELECT unnest(?::VARCHAR[]))
                QUALIFY row_number() OVER (PARTITION BY cache_key ORDER BY created_at_utc) = 1
                """,
                [keys],
            )
        return {r["cache_key"]: r for r in frame.to_dict("records")}

    def runs(self, limit: int | None = None) -> Any:
        """Runs, newest first: a DataFrame ``run_id, name, created_at_utc, status, prompt_set, models, n_prompts,
        n_calls, n_ok, n_error, cost_usd (USD paid: cache hits excluded), sandbox, source, finished_at_utc``.

        ``status`` is ``interrupted`` for a run still marked ``running`` whose process, on this machine, is gone
        (killed, or its kernel died): its completed calls are stored, a re-run makes only the missing ones.
        """
        query = """
            SELECT r.run_id, r.name, r.created_at_utc, r.status, r.prompt_set, r.models, r.n_prompts,
                   count(c.call_id) AS n_calls,
                   count(c.call_id) FILTER (WHERE c.status = 'ok') AS n_ok,
                   count(c.call_id) FILTER (WHERE c.status = 'error') AS n_error,
                   sum(c.cost_usd) FILTER (WHERE NOT c.cached) AS cost_usd,
                   r.sandbox, r.source, r.finished_at_utc, r.pid, r.host
            FROM runs r LEFT JOIN call_records c ON c.run_id = r.run_id
            GROUP BY ALL ORDER BY r.created_at_utc DESC
        """
        if limit:
            query += f" LIMIT {int(limit)}"
        frame = self.sql(query)
        here = socket.gethostname()
        gone = [(s == "running" and h == here and not _pid_alive(p))
                for s, h, p in zip(frame["status"], frame["host"], frame["pid"], strict=True)]
        frame.loc[gone, "status"] = "interrupted"
        return frame.drop(columns=["pid", "host"])

    def resolve_run(self, ref: str | None = None, *, con: Any = None) -> str:
        """Turn a run reference into a ``run_id``: an id, a unique id prefix, a run name (newest), or
        ``last``/None (the newest run), on ``con`` (a connection of this store) or a connection of its own.
        Raises KeyError-compatible StoreError subclass when nothing matches."""
        if con is None:
            with self.connect() as own:
                return self.resolve_run(ref, con=own)

        def first(query: str, params: list[Any]) -> Any:
            # fetchall, not fetchone: DuckDB 2 refuses other work on a connection with an unfinished result
            return next(iter(con.execute(query, params).fetchall()), None)

        if ref in (None, "", "last", "latest"):
            row = first("SELECT run_id FROM runs ORDER BY created_at_utc DESC LIMIT 1", [])
        else:
            row = first("SELECT run_id FROM runs WHERE run_id = ?", [ref])
            if row is None:
                row = first("SELECT run_id FROM runs WHERE name = ? ORDER BY created_at_utc DESC LIMIT 1", [ref])
            if row is None:
                rows = con.execute("SELECT run_id FROM runs WHERE starts_with(run_id, ?)", [ref]).fetchall()
                row = rows[0] if len(rows) == 1 else None
        if row is None:
            raise RunNotFoundError(f"no run {ref!r} in {self.path} (use `llmlab runs` to list them)")
        return row[0]

    def run(self, ref: str | None = None) -> dict[str, Any]:
        """The run's metadata as a dict (``RUN_COLUMNS``; ``models``, ``params``, ``tags`` decoded from JSON)."""
        with self.connect() as con:
            run_id = self.resolve_run(ref, con=con)
            frame = con.execute("SELECT * FROM runs WHERE run_id = ?", [run_id]).df()
        row = frame.to_dict("records")[0]
        for c in ("models", "params", "tags"):
            if isinstance(row.get(c), str):
                row[c] = json.loads(row[c])
        return row

    def results(self, ref: str | None = None) -> Any:
        """One row per final call of the run, with its quality.

        Returns a DataFrame with the ``calls`` view's columns plus ``quality`` (0..1, NaN when unscored),
        ``human_score``, ``human_comment``, ``judge_score``, ``auto_score``; ordered by prompt, model, sample.
        """
        with self.connect() as con:
            run_id = self.resolve_run(ref, con=con)
            frame = frames.frame(
                con,
                """
                SELECT c.*, q.quality, q.human_score, q.human_comment, q.judge_score, q.auto_score
                FROM calls c LEFT JOIN call_quality q ON q.call_id = c.call_id AND q.run_id = c.run_id
                WHERE c.run_id = ?
                ORDER BY c.category, c.prompt_id, c.model, c.sample_index
                """,
                [run_id],
            )
        return frame

    def scores(self, ref: str | None = None) -> Any:
        """All score rows of a run (``SCORE_COLUMNS``)."""
        run_id = self.resolve_run(ref)
        return self.sql("SELECT * FROM scores WHERE run_id = ? ORDER BY created_at_utc", [run_id])

    def prompts(self, ref: str | None = None) -> Any:
        """The run's prompts (``PROMPT_COLUMNS``)."""
        run_id = self.resolve_run(ref)
        return self.sql("SELECT * FROM prompts WHERE run_id = ?", [run_id])

    def add_routing_decisions(self, rows: Sequence[dict[str, Any]]) -> None:
        """Append routing decisions (``ROUTING_DECISION_COLUMNS``; ``decision`` dicts JSON-encoded)."""
        out = []
        for r in rows:
            row = {c: r.get(c) for c in ROUTING_DECISION_COLUMNS}
            row["created_at_utc"] = row["created_at_utc"] or utc_now()
            if row["decision"] is not None and not isinstance(row["decision"], str):
                row["decision"] = json.dumps(row["decision"], default=str)
            out.append(row)
        self._append("routing_decisions", ROUTING_DECISION_COLUMNS, out)

    def routing_decisions(self, ref: str | None = None) -> Any:
        """The routing decisions of a routed run (``ROUTING_DECISION_COLUMNS``; empty for an unrouted run)."""
        run_id = self.resolve_run(ref)
        return self.sql("SELECT * FROM routing_decisions WHERE run_id = ? ORDER BY prompt_id", [run_id])
