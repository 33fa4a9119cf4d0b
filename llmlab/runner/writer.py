"""The one writer of a run: buffered, batched, idempotent inserts (:class:`BatchWriter`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from llmlab.errors import StoreError
from llmlab.store import Store

__all__ = [
    "BatchWriter",
    "PeriodicFlush",
]

log = logging.getLogger(__name__)


class PeriodicFlush:
    """A buffer flushed every ``interval_s`` seconds by a task on the running loop: ``start()`` starts it,
    ``_stop()`` cancels it (waiting for the cancellation); subclasses give ``_flush()``. Shared by
    :class:`BatchWriter` and the worker processes' pipe writer (:mod:`llmlab.runner.workers`)."""

    interval_s: float
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _flush(self) -> Any:
        raise NotImplementedError

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self._flush()

    async def _stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None


class BatchWriter(PeriodicFlush):
    """The one writer of a run: buffers call and score rows and bulk-inserts them at least every ``interval_s``.

    A failed write keeps its rows for the next flush; the store's inserts are idempotent per ``call_id`` (see
    :meth:`llmlab.store.Store.append_calls`), so a write that committed but reported an error cannot leave a
    duplicate. ``close()`` retries the last flush up to ``close_attempts`` times and then raises
    :class:`~llmlab.errors.StoreError`.
    """

    def __init__(self, store: Store, interval_s: float = 0.5, close_attempts: int = 5) -> None:
        self.store, self.interval_s, self.close_attempts = store, interval_s, close_attempts
        self._calls: list[dict[str, Any]] = []
        self._scores: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._inflight: tuple[asyncio.Future[None], list[dict[str, Any]], list[dict[str, Any]]] | None = None
        self.rows_written = 0
        self.flushes = 0
        self.failed_flushes = 0

    def add(self, row: dict[str, Any], scores: Sequence[dict[str, Any]] = ()) -> None:
        self._calls.append(row)
        self._scores.extend(scores)

    @property
    def pending(self) -> int:
        """Rows buffered, not yet written."""
        return len(self._calls)

    async def _flush(self) -> bool:
        calls, scores = self._calls, self._scores
        self._calls, self._scores = [], []
        if not calls and not scores:
            return True
        fut = asyncio.ensure_future(asyncio.to_thread(self._write, calls, scores))
        self._inflight = (fut, calls, scores)
        # shielded: a cancelled run must not abandon a write half-way (its thread goes on anyway); close() waits
        # for it. Never start a second write of the same rows while one is in flight: two concurrent
        # transactions would both pass the idempotency check.
        await asyncio.wait({fut})  # a cancellation stops this wait only (self._inflight stays set), not the write
        return self._settle()

    def _settle(self) -> bool:
        fut, calls, scores = self._inflight  # type: ignore[misc]
        self._inflight = None
        exc = fut.exception()
        if exc is not None:
            self.failed_flushes += 1
            log.error("llmlab: store write failed (%s); %d rows kept for the next flush", exc, len(calls))
            self._calls[:0], self._scores[:0] = calls, scores
            return False
        self.rows_written += len(calls)
        self.flushes += 1
        return True

    def _write(self, calls: list[dict[str, Any]], scores: list[dict[str, Any]]) -> None:
        # one connection and one transaction for both: a flush opens the file once, and a call's row and its
        # scores are stored together or not at all
        self.store.append_batch(calls=calls, scores=scores)

    async def close(self) -> None:
        """Stop the periodic flush and write what is left (raises StoreError after ``close_attempts`` failures)."""
        await self._stop()
        if self._inflight is not None:  # a write interrupted by the cancellation: let it finish first
            await asyncio.wait({self._inflight[0]})
            self._settle()
        for attempt in range(self.close_attempts):
            if await self._flush():
                return
            await asyncio.sleep(min(2.0, 0.1 * 2 ** attempt))
        raise StoreError(f"llmlab: could not write {len(self._calls)} result rows to {self.store.path} "
                         f"after {self.close_attempts} attempts (see the log for the errors)")

