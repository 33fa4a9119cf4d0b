"""``llmlab.LiteLLMLogger``: a LiteLLM ``CustomLogger`` that records every call into an llmlab store.

Importing this module imports LiteLLM (``import llmlab`` does not: the facade loads it on first use of
``llmlab.LiteLLMLogger``). Three ways in, one row per provider request (a retry or a fallback is a row of its
own; a request's attempts share ``trace_id``)::

    # an application
    litellm.callbacks = [llmlab.LiteLLMLogger()]          # records into LLMLAB_DB (the default store)
    await litellm.acompletion(model=..., messages=..., metadata={"tags": ["arithmetic"], "llmlab_feedback": 1})

    # a Router built from llmlab's exported config (same callbacks list)
    router = litellm.Router(**router_kwargs(yaml.safe_load(open("routing.yaml"))))

    # the LiteLLM proxy: export with llmlab.export_litellm_config(table, path, production_logger=True), which
    # writes  litellm_settings: {callbacks: [llmlab.production.proxy.logger]}  (settings from LLMLAB_* variables)

What is stored, and what never is, is described in :mod:`llmlab.production.rows`; how it stays out of the host's
way (bounded queue, background writer, spill when the store is locked) in :mod:`llmlab.production.recorder`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import weakref
from typing import Any

from llmlab._litellm import litellm as _litellm
from llmlab.production.recorder import Recorder
from llmlab.production.rows import event_rows

_litellm()  # the offline cost map and quiet settings before LiteLLM's classes load
from litellm.integrations.custom_logger import CustomLogger  # noqa: E402

__all__ = ["ENV", "LiteLLMLogger", "active_loggers"]

#: Environment variables read by :meth:`LiteLLMLogger.from_env` (the proxy's logger).
ENV = {
    "db": "LLMLAB_DB", "run_name": "LLMLAB_PRODUCTION_RUN_NAME", "capture": "LLMLAB_PRODUCTION_CAPTURE",
    "queue_size": "LLMLAB_PRODUCTION_QUEUE_SIZE", "batch_size": "LLMLAB_PRODUCTION_BATCH_SIZE",
    "flush_interval_s": "LLMLAB_PRODUCTION_FLUSH_INTERVAL_S", "lock_timeout_s": "LLMLAB_PRODUCTION_LOCK_TIMEOUT_S",
}

log = logging.getLogger(__name__)
_ACTIVE: weakref.WeakSet[LiteLLMLogger] = weakref.WeakSet()


def active_loggers() -> list[LiteLLMLogger]:
    """The loggers alive in this process (``llmlab.feedback`` flushes them before looking a call up)."""
    return list(_ACTIVE)


class LiteLLMLogger(CustomLogger):
    """Record every LiteLLM call (SDK, Router, proxy) as a row of one ``source='production'`` run.

    Args:
        db: the DuckDB file or a :class:`llmlab.Store` (default ``LLMLAB_DB``, else the default store path).
        run_name: the run's name (default ``production <host> pid <pid> <UTC start>``).
        capture: ``"hash"`` (default; SHA-256 of prompt and answer, no text) or ``"full"`` (text, redacted).
        queue_size: events held in memory at most (more are dropped and counted in ``dropped``).
        batch_size, flush_interval_s: write at most this many events at once, at least this often (seconds;
            every write is one DuckDB connection and transaction: about 25 ms of CPU however small).
        lock_timeout_s: wait this long for another process's lock before spilling to ``<db>.spill/``.

    Attributes: ``run_id``; ``dropped``, ``spilled``, ``rows_written``, ``callback_errors`` (counters; all of
    them via :meth:`counters`, and in the run's ``params``). Methods: :meth:`flush`, :meth:`close`.

    Raises OptionsError (a ValueError) for a bad option when constructed; afterwards it never raises into the
    application: every LiteLLM hook catches and counts what goes wrong, and does no I/O on the event loop.
    """

    def __init__(self, db: Any = None, *, run_name: str | None = None, capture: str = "hash",
                 queue_size: int = 10_000, batch_size: int = 5_000, flush_interval_s: float = 2.0,
                 lock_timeout_s: float = 10.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.recorder = Recorder(db, run_name=run_name, capture=capture, queue_size=queue_size,
                                 batch_size=batch_size, flush_interval_s=flush_interval_s,
                                 lock_timeout_s=lock_timeout_s)
        self.capture = capture
        _ACTIVE.add(self)

    @classmethod
    def from_env(cls) -> LiteLLMLogger:
        """A logger configured from the :data:`ENV` variables (unset ones keep their defaults)."""
        kw: dict[str, Any] = {}
        for name, var in ENV.items():
            value = os.environ.get(var)
            if not value:
                continue
            kw[name] = int(value) if name in ("queue_size", "batch_size") else (
                float(value) if name.endswith("_s") else value)
        return cls(**kw)

    def __repr__(self) -> str:
        return f"LiteLLMLogger(run_id={self.run_id!r}, path={str(self.recorder.path)!r}, capture={self.capture!r})"

    # -- counters and control ---------------------------------------------------------------------------------
    @property
    def run_id(self) -> str:
        return self.recorder.run_id

    @property
    def dropped(self) -> int:
        return self.recorder.dropped

    @property
    def spilled(self) -> int:
        return self.recorder.spilled

    @property
    def rows_written(self) -> int:
        return self.recorder.rows_written

    @property
    def callback_errors(self) -> int:
        return self.recorder.callback_errors

    def counters(self) -> dict[str, int]:
        """See :meth:`llmlab.production.recorder.Recorder.counters`."""
        return self.recorder.counters()

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Block until what was logged so far is written or spilled; False after ``timeout_s`` seconds.

        Call it from a thread, not from inside the event loop that makes the LiteLLM calls (it blocks).
        """
        return self.recorder.flush(timeout_s)

    async def aflush(self, timeout_s: float = 30.0) -> bool:
        """From inside the application's event loop: wait for LiteLLM's pending logging tasks (its logging
        worker runs callbacks after the call returns), then for the writer, without blocking the loop.

        Use it before ``asyncio.run(...)`` returns: a loop that closes cancels LiteLLM's logging tasks still
        pending, and those calls are never seen by any callback.
        """
        try:
            from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER

            await asyncio.wait_for(GLOBAL_LOGGING_WORKER.flush(), timeout_s)
        except Exception as exc:  # noqa: BLE001 - LiteLLM internals moved, or the wait timed out
            log.debug("llmlab: could not wait for LiteLLM's logging worker: %s", exc)
        return await asyncio.to_thread(self.recorder.flush, timeout_s)

    def close(self, timeout_s: float = 30.0) -> None:
        """Flush, stop the writer thread and mark the run finished (also done at interpreter exit)."""
        self.recorder.close(timeout_s)
        _ACTIVE.discard(self)

    # -- LiteLLM hooks: no I/O, nothing raised --------------------------------------------------------------
    def _record(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        t0 = time.perf_counter()
        try:
            rows = event_rows(kwargs, response_obj, start_time, end_time, run_id=self.recorder.run_id,
                              capture=self.capture)
            self.recorder.submit(rows)
        except Exception as exc:  # noqa: BLE001 - never raise into the host application
            self.recorder.count_error(exc)
        self.recorder.count_time(time.perf_counter() - t0)

    def log_success_event(self, kwargs, response_obj, start_time, end_time):  # noqa: D102
        self._record(kwargs, response_obj, start_time, end_time)

    def log_failure_event(self, kwargs, response_obj, start_time, end_time):  # noqa: D102
        self._record(kwargs, response_obj, start_time, end_time)

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):  # noqa: D102
        self._record(kwargs, response_obj, start_time, end_time)

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):  # noqa: D102
        self._record(kwargs, response_obj, start_time, end_time)
