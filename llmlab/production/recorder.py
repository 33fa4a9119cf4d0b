"""The production recorder: a bounded queue in the host process, one background writer thread, spill and merge.

:class:`Recorder` is what :class:`llmlab.LiteLLMLogger` feeds; it holds no LiteLLM import. Its promises
(DESIGN.md, decision 12):

- ``submit`` never blocks and never raises: it puts the rows on a bounded ``queue.Queue`` (``queue_size``); when
  the queue is full the event is dropped and *counted* (``dropped``, a warning in the log on the first drop and
  every 1,000th, and ``dropped_rows`` in the run's ``params``; ``dropped_attempts`` counts the provider requests
  those rows stood for, the sum of their ``attempts``).
- One daemon thread drains the queue into its buffer every 50 ms and writes the buffer in one transaction every
  ``flush_interval_s`` seconds (2 s; sooner when it holds ``batch_size`` events or on ``flush()``) through
  :class:`llmlab.store.Store` (a short-lived connection, retried while another process holds the file for
  ``lock_timeout_s`` seconds; inserts idempotent per ``call_id``). A DuckDB open + close costs about 25 ms of
  CPU whatever the batch size, which is why writes are few.
- A batch that still cannot be written is *spilled*: appended as JSON lines to a new segment in
  ``<db>.spill/`` beside the DuckDB file. The writer merges segments (its own and any other process's) when it
  starts and before each later batch once it has spilled; :func:`merge_spilled` does it on demand. A segment is
  claimed by an atomic rename, so two processes never merge the same one.
- ``flush()`` waits until everything submitted before it is written or spilled; ``close()`` (also run at
  interpreter exit) stops the thread after a last flush and marks the run finished.

The run: one per recorder, ``source = 'production'``, created with the first batch, named ``production <host>
pid <pid> <UTC start>`` unless ``run_name`` is given; its ``params`` hold the capture mode, the queue bound and the
counters (``events_seen, rows_written, dropped_rows, dropped_attempts, spilled_rows, callback_errors,
feedback_errors, duplicate_events``). Rows written plus rows dropped is ``events_seen``; the ``attempts`` of the
rows written plus ``dropped_attempts`` is the number of provider requests recorded.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import socket
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from llmlab.errors import OptionsError
from llmlab.production.rows import CAPTURE_MODES
from llmlab.store import Store, new_id, utc_now

__all__ = ["Recorder", "merge_spilled", "spill_dir"]

log = logging.getLogger(__name__)

_TABLE_ORDER = ("runs", "prompts", "call_records", "scores")
_TIME_FIELDS = ("created_at_utc", "finished_at_utc")


def spill_dir(db_path: str | os.PathLike[str]) -> Path:
    """Where spilled segments of the store ``db_path`` go: ``<db_path>.spill/`` beside the file."""
    p = Path(db_path).expanduser()
    return p.with_name(p.name + ".spill")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _decode(table: str, row: dict[str, Any]) -> dict[str, Any]:
    for c in _TIME_FIELDS:
        if isinstance(row.get(c), str):
            try:
                row[c] = datetime.fromisoformat(row[c])
            except ValueError:
                row[c] = None
    return row


def _attempts(events: list[dict[str, Any]]) -> int:
    """Provider requests the events' call rows stand for (their ``attempts``: 1, or 0 without an HTTP request)."""
    return sum(int((ev.get("call") or {}).get("attempts") or 0) for ev in events)


def _write_tables(store: Store, tables: dict[str, list[dict[str, Any]]],
                  run_params: dict[str, Any] | None = None) -> None:
    """Write grouped rows in one connection and one transaction (:meth:`llmlab.store.Store.append_batch`)."""
    store.append_batch(runs=tables.get("runs", []), prompts=tables.get("prompts", []),
                       calls=tables.get("call_records", []), scores=tables.get("scores", []), run_params=run_params)


def merge_spilled(store: Store) -> int:
    """Merge every spilled segment beside ``store``'s file into it; returns the number of rows merged.

    A segment that cannot be merged now (the store is locked past its timeout) is left for the next attempt.
    Raises nothing for a locked store; a segment that is not valid JSON lines is renamed ``*.bad`` and logged.
    """
    folder = spill_dir(store.path)
    if not folder.is_dir():
        return 0
    merged = 0
    for seg in sorted(folder.glob("*.jsonl")):
        claimed = seg.with_name(f"{seg.name}.merging-{os.getpid()}-{uuid.uuid4().hex[:6]}")
        try:
            seg.rename(claimed)  # atomic: another process merging the folder skips this one
        except OSError:
            continue
        tables: dict[str, list[dict[str, Any]]] = {}
        try:
            for line in claimed.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    item = json.loads(line)
                    tables.setdefault(item["table"], []).append(_decode(item["table"], item["row"]))
        except (ValueError, KeyError, OSError) as exc:
            log.error("llmlab: spilled segment %s is unreadable (%s); kept as .bad", seg, exc)
            claimed.rename(seg.with_suffix(".bad"))
            continue
        try:
            _write_tables(store, tables)
        except Exception as exc:  # noqa: BLE001 - locked or failing store: keep the segment for later
            log.warning("llmlab: could not merge spilled segment %s yet (%s)", seg.name, exc)
            claimed.rename(seg)
            continue
        claimed.unlink(missing_ok=True)
        merged += sum(len(rows) for t, rows in tables.items() if t == "call_records")
    return merged


class Recorder:
    """Queue + background writer for production call rows (see the module docstring).

    Args:
        db: the DuckDB file (default: ``LLMLAB_DB`` / :func:`llmlab.settings.default_store_path`), or a
            :class:`~llmlab.store.Store`.
        run_name: the production run's name.
        capture: ``"hash"`` (default: content hashes, no text) or ``"full"`` (prompt and answer text, redacted).
        queue_size: events held in memory at most; more are dropped and counted.
        batch_size: events per write at most. flush_interval_s: a write at least this often (seconds).
        lock_timeout_s: how long a write waits for another process's lock before spilling.

    Raises OptionsError for an unknown ``capture`` or a non-positive size (nothing else, ever).
    """

    def __init__(self, db: Any = None, *, run_name: str | None = None, capture: str = "hash",
                 queue_size: int = 10_000, batch_size: int = 5_000, flush_interval_s: float = 2.0,
                 lock_timeout_s: float = 10.0) -> None:
        if capture not in CAPTURE_MODES:
            raise OptionsError(f"capture={capture!r}: use one of {', '.join(CAPTURE_MODES)}")
        for name, value in (("queue_size", queue_size), ("batch_size", batch_size),
                            ("flush_interval_s", flush_interval_s), ("lock_timeout_s", lock_timeout_s)):
            if not value or value <= 0:
                raise OptionsError(f"{name} must be positive, got {value!r}")
        if isinstance(db, Store):
            self._store: Store | None = db
            self.path = db.path
        else:
            from llmlab.settings import default_store_path

            self._store = None
            self.path = Path(db).expanduser() if db is not None else default_store_path()
        self.capture, self.queue_size, self.batch_size = capture, int(queue_size), int(batch_size)
        self.flush_interval_s, self.lock_timeout_s = float(flush_interval_s), float(lock_timeout_s)
        self.run_id = new_id("r")
        started = utc_now()
        self.run_name = run_name or f"production {socket.gethostname()} pid {os.getpid()} {started:%Y-%m-%d %H:%M:%S}"
        self._run_row: dict[str, Any] | None = {
            "run_id": self.run_id, "name": self.run_name, "created_at_utc": started, "status": "running",
            "source": "production", "tags": ["production"], "pid": os.getpid(), "host": socket.gethostname(),
            "params": {"capture": capture, "queue_size": self.queue_size},
        }
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=self.queue_size)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._flush_now = threading.Event()
        self._pending_feedback: list[tuple[str, float, float, str | None, float]] = []
        self.submitted = self.processed = 0
        self.rows_written = self.dropped = self.dropped_attempts = self.spilled = self.merged = 0
        self.duplicate_events = 0  # LiteLLM failure events of an attempt already recorded (not rows)
        self.callback_errors = self.feedback_errors = self.write_failures = 0
        self.callback_ms = 0.0  # time spent inside LiteLLM's callbacks (the host's event loop), milliseconds
        self.writer_cpu_ms = 0.0  # CPU time of the writer thread, milliseconds
        self._reported: tuple[int, ...] = ()
        self._spill_seq = 0
        self._has_spill = True  # merge what earlier processes left, once the store opens
        self._thread = threading.Thread(target=self._run, name=f"llmlab-production-{self.run_id}", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # -- the host's side: never blocks, never raises ---------------------------------------------------------
    def submit(self, rows: dict[str, Any]) -> bool:
        """Queue one event's rows; False (and ``dropped`` + 1) when the queue is full or the recorder closed."""
        try:
            if self._stop.is_set():
                raise queue.Full
            self._queue.put_nowait(rows)
        except queue.Full:
            with self._cond:
                self.dropped += 1
                self.dropped_attempts += _attempts([rows])
                self.submitted += 1
                self.processed += 1
                n = self.dropped
            if n == 1 or n % 1000 == 0:
                log.warning("llmlab: production logger queue full (bound %d): %d call row(s) dropped so far",
                            self.queue_size, n)
            return False
        with self._cond:
            self.submitted += 1
        return True

    def defer_feedback(self, ref: str, score: float, raw: float, comment: str | None, wait_s: float) -> None:
        """Write feedback on ``ref`` once its call is stored (looked up after each write, for ``wait_s``)."""
        with self._cond:
            self._pending_feedback.append((ref, score, raw, comment, time.monotonic() + wait_s))

    def _resolve_feedback(self, store: Store) -> None:
        from llmlab.production.lookup import find_calls, score_row

        with self._cond:
            pending, self._pending_feedback = self._pending_feedback, []
        if not pending:
            return
        found = find_calls(store, [p[0] for p in pending])
        rows, keep = [], []
        now = time.monotonic()
        for ref, score, raw, comment, deadline in pending:
            if ref in found:
                rows.append(score_row(found[ref], score, raw, comment))
            elif now < deadline:
                keep.append((ref, score, raw, comment, deadline))
            else:
                log.warning("llmlab: feedback on %r dropped: no such call was recorded", ref)
                with self._cond:
                    self.feedback_errors += 1
        if rows:
            store.append_scores(rows)
        with self._cond:
            self._pending_feedback[:0] = keep

    def count_duplicate(self) -> None:
        """Count a LiteLLM event skipped because its attempt is already recorded (no row)."""
        with self._cond:
            self.duplicate_events += 1

    def count_time(self, seconds: float) -> None:
        """Add the time one callback took (no lock: a float add; the figure is a statistic)."""
        self.callback_ms += seconds * 1000.0

    def count_error(self, exc: BaseException) -> None:
        """Count an exception caught in a LiteLLM callback (logged at debug level, never raised)."""
        with self._cond:
            self.callback_errors += 1
            n = self.callback_errors
        if n == 1 or n % 1000 == 0:
            log.warning("llmlab: production logger could not record a call (%s: %s); %d so far",
                        type(exc).__name__, exc, n)

    @property
    def pending(self) -> int:
        """Events submitted and not yet written, spilled or dropped."""
        with self._cond:
            return self.submitted - self.processed

    def counters(self) -> dict[str, float]:
        """``events_seen`` (call rows submitted: written, spilled, pending or dropped), ``rows_written,
        dropped_rows, dropped_attempts`` (the provider requests the dropped rows stood for), ``spilled_rows,
        merged_rows, callback_errors, feedback_errors, duplicate_events`` (LiteLLM events skipped: their attempt was
        already a row), ``write_failures, callback_ms`` (time spent in LiteLLM's callbacks, on the host's event
        loop), ``writer_cpu_ms`` (the writer thread's CPU time), ``pending`` (rows = call rows)."""
        with self._cond:
            return {"events_seen": self.submitted, "rows_written": self.rows_written, "dropped_rows": self.dropped,
                    "dropped_attempts": self.dropped_attempts, "duplicate_events": self.duplicate_events,
                    "spilled_rows": self.spilled,
                    "merged_rows": self.merged, "callback_errors": self.callback_errors,
                    "feedback_errors": self.feedback_errors, "write_failures": self.write_failures,
                    "callback_ms": round(self.callback_ms, 1), "writer_cpu_ms": round(self.writer_cpu_ms, 1),
                    "pending": self.submitted - self.processed}

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Block until every event submitted before this call is written or spilled (True), or ``timeout_s``
        passed (False). Safe from any thread except the writer's own."""
        deadline = time.monotonic() + timeout_s
        self._flush_now.set()
        with self._cond:
            target = self.submitted
            while self.processed < target:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return self.processed >= target
                self._cond.wait(min(left, 0.05))
        return True

    def close(self, timeout_s: float = 30.0) -> None:
        """Write what is queued, stop the writer and mark the run finished (idempotent; run at exit)."""
        if self._stop.is_set():
            return
        self.flush(timeout_s)
        self._stop.set()
        self._thread.join(timeout_s)
        try:
            atexit.unregister(self.close)
        except Exception:  # noqa: BLE001
            pass

    # -- the writer thread --------------------------------------------------------------------------------------
    def _open(self) -> Store:
        if self._store is None:
            self._store = Store(self.path, lock_timeout_s=self.lock_timeout_s)
        return self._store

    def _run(self) -> None:
        buffer: list[dict[str, Any]] = []
        next_write = time.monotonic()  # the first pass opens the store (and merges old spills) at once
        while True:
            try:  # drain the bounded queue into the writer's buffer often, write it seldom (one transaction each)
                buffer.append(self._queue.get(timeout=0.05))
                while len(buffer) < self.batch_size:
                    buffer.append(self._queue.get_nowait())
            except queue.Empty:
                pass
            stopping = self._stop.is_set() and self._queue.empty()
            due = time.monotonic() >= next_write or self._flush_now.is_set() or len(buffer) >= self.batch_size
            if not (due or stopping):
                continue
            self._flush_now.clear()
            next_write = time.monotonic() + self.flush_interval_s
            batch, buffer = buffer, []
            cpu = time.thread_time()
            try:
                self._write(batch)
            except Exception as exc:  # noqa: BLE001 - the writer must survive anything
                log.error("llmlab: production writer error: %s", exc)
            self.writer_cpu_ms += (time.thread_time() - cpu) * 1000.0
            with self._cond:
                self.processed += len(batch)
                self._cond.notify_all()
            if stopping and not buffer:
                self._finish()
                return

    def _tables(self, batch: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        tables: dict[str, list[dict[str, Any]]] = {"runs": [], "prompts": [], "call_records": [], "scores": []}
        if self._run_row is not None and batch:
            tables["runs"].append(self._run_row)
        for ev in batch:
            tables["call_records"].append(ev["call"])
            tables["prompts"].append(ev["prompt"])
            tables["scores"].extend(ev.get("scores") or [])
            if ev.get("feedback_error"):
                with self._cond:
                    self.feedback_errors += 1
        return tables

    def _write(self, batch: list[dict[str, Any]]) -> None:
        tables = self._tables(batch)
        try:
            store = self._open()
            if self._has_spill:
                self._has_spill = False
                n = merge_spilled(store)
                with self._cond:
                    self.merged += n
                if spill_dir(store.path).is_dir() and any(spill_dir(store.path).glob("*.jsonl")):
                    self._has_spill = True
            if batch:  # the rows and the run's counters in one transaction
                params = self._params(written_now=len(batch))
                _write_tables(store, tables, {self.run_id: params})
                self._run_row = None
                self._reported = self._key(params)
                with self._cond:
                    self.rows_written += len(batch)
            else:
                self._report(store)
            if self._pending_feedback:
                self._resolve_feedback(store)
        except Exception as exc:  # noqa: BLE001 - locked past the timeout, disk full, ...: spill, never lose
            with self._cond:
                self.write_failures += 1
            if batch:
                self._spill(tables, exc)

    def _spill(self, tables: dict[str, list[dict[str, Any]]], exc: BaseException) -> None:
        folder = spill_dir(self.path)
        self._spill_seq += 1
        name = f"{self.run_id}-{os.getpid()}-{self._spill_seq:06d}-{uuid.uuid4().hex[:6]}.jsonl"
        n_calls = len(tables["call_records"])
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / (name + ".tmp")
            with open(tmp, "w", encoding="utf-8") as fh:
                for table in _TABLE_ORDER:
                    for row in tables.get(table, []):
                        fh.write(json.dumps({"table": table, "row": row}, default=_json_default) + "\n")
            tmp.rename(folder / name)
        except OSError as spill_exc:
            log.error("llmlab: store write failed (%s) and spilling failed (%s): %d call row(s) lost",
                      exc, spill_exc, n_calls)
            with self._cond:
                self.dropped += n_calls
                self.dropped_attempts += sum(int(r.get("attempts") or 0) for r in tables["call_records"])
            return
        self._run_row = None  # the run row travels with the first spilled segment
        self._has_spill = True
        with self._cond:
            self.spilled += n_calls
        log.warning("llmlab: store %s not writable (%s); %d call row(s) spilled to %s (merged on the next write)",
                    self.path, exc, n_calls, folder / name)

    def _params(self, written_now: int = 0) -> dict[str, Any]:
        c = self.counters()
        c["rows_written"] += written_now
        c.pop("pending")
        return {"capture": self.capture, "queue_size": self.queue_size, **c}

    @staticmethod
    def _key(params: dict[str, Any]) -> tuple[int, ...]:
        return tuple(params[k] for k in ("events_seen", "rows_written", "dropped_rows", "dropped_attempts",
                                         "duplicate_events", "spilled_rows", "merged_rows", "callback_errors",
                                         "feedback_errors"))  # not the timings: no churn

    def _report(self, store: Store, status: str | None = None) -> None:
        """Keep the run's params current with the counters between batches (only when they changed)."""
        params = self._params()
        key = self._key(params)
        if key == self._reported and status is None:
            return
        if self._run_row is not None:  # no run row yet: nothing recorded so far
            return
        with store.connect() as con:
            if status is None:
                con.execute("UPDATE runs SET params = ? WHERE run_id = ?", [json.dumps(params), self.run_id])
            else:
                con.execute("UPDATE runs SET params = ?, status = ?, finished_at_utc = ? WHERE run_id = ?",
                            [json.dumps(params), status, utc_now(), self.run_id])
        self._reported = key

    def _finish(self) -> None:
        try:
            self._report(self._open(), status="finished")
        except Exception as exc:  # noqa: BLE001 - best effort at exit
            log.debug("llmlab: could not mark the production run finished: %s", exc)
