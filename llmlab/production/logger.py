"""``llmlab.LiteLLMLogger``: a LiteLLM ``CustomLogger`` that records every call into an llmlab store.

Importing this module imports LiteLLM (``import llmlab`` does not: the facade loads it on first use of
``llmlab.LiteLLMLogger``). Three ways in, one row per HTTP request to a deployment (an *attempt*: a retry or a
fallback is a row of its own; a user request's attempts share ``trace_id``)::

    # an application
    litellm.callbacks = [llmlab.LiteLLMLogger()]          # records into LLMLAB_DB (the default store)
    await litellm.acompletion(model=..., messages=..., metadata={"tags": ["arithmetic"], "llmlab_feedback": 1})

    # a Router built from llmlab's exported config (same callbacks list)
    router = litellm.Router(**router_kwargs(yaml.safe_load(open("routing.yaml"))))

    # the LiteLLM proxy: export with llmlab.export_litellm_config(table, path, production_logger=True), which
    # writes  litellm_settings: {callbacks: [llmlab.production.proxy.logger]}  (settings from LLMLAB_* variables)

Which LiteLLM hook gives which row: a success comes from ``async_log_success_event``; a failed attempt from
``async_post_call_failure_deployment_hook`` (LiteLLM calls it once per failed deployment call). LiteLLM's
``async_log_failure_event`` fires once per *logging object*: in the SDK and a Router that is once per attempt
(the same attempt the hook reported: skipped, counted in ``duplicate_events``); behind the proxy, whose one
logging object serves all of a request's retries and fallbacks, it is the request's first failure only (a
second failed attempt reaches no failure event, only the hook). Under load LiteLLM may also deliver one failure
event twice (through its sync and its async path): skipped too. A failure event the hook did not report is
recorded too: a Router failure before any deployment was called (``attempts = 0``: "No deployments available"
or "Not allowed to access model due to tags configuration" while the group's deployments cool down after
failures, after which the Router falls back), or a stream that failed after the call had returned (an attempt).
Which of the two is decided by the hook, not by the payload: behind the proxy LiteLLM builds the payload later,
from request metadata that the fallback has by then filled with the next deployment. (Not covered: a failure
raised after a provider answered, by a LiteLLM post-call check; a sync ``completion()`` call, which has no such
hook, is recorded from its events as before.) So a count of LiteLLM's events is not a count of provider requests
(through the proxy under faults it is above it or below it, run to run); ``sum(attempts)`` of the rows plus the
``dropped_attempts`` counter is (benchmarks/logger_overhead.py checks it against the sandbox's counter).

What is stored, and what never is, is described in :mod:`llmlab.production.rows`; how it stays out of the host's
way (bounded queue, background writer, spill when the store is locked) in :mod:`llmlab.production.recorder`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from llmlab._litellm import litellm as _litellm
from llmlab.production.recorder import Recorder
from llmlab.production.rows import attempt_key, event_rows, failed_attempt_event

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
#: Failed attempts remembered (by litellm_call_id and error class) until LiteLLM's failure event for the same
#: attempt arrives (behind the proxy a request's later failed attempts never get one: the oldest are forgotten),
#: and the request id given to a failed call's rows, so that its later rows get the same one.
_FAILED_ATTEMPTS_MAX = 20_000
_ACTIVE: weakref.WeakSet[LiteLLMLogger] = weakref.WeakSet()
#: This LiteLLM reports every failed deployment call of an async entry point to
#: ``async_post_call_failure_deployment_hook`` (1.106+; a sync ``completion()`` reaches no such hook).
_PER_ATTEMPT_HOOK = "async_post_call_failure_deployment_hook" in vars(CustomLogger)
#: ``litellm_params`` flags of LiteLLM's async entry points (its ``CallTypes`` values).
_ASYNC_CALLS = ("acompletion", "atext_completion", "aembedding", "aresponses", "aanthropic_messages",
                "aimage_generation", "atranscription", "aspeech", "arerank", "agenerate_content",
                "agenerate_content_stream")


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
    them, ``dropped_attempts`` and ``duplicate_events`` too, via :meth:`counters`, and in the run's ``params``).
    Methods: :meth:`flush`, :meth:`close`.

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
        self._failed_attempts: OrderedDict[tuple[str | None, str | None], int] = OrderedDict()
        self._request_ids: OrderedDict[str, str] = OrderedDict()  # litellm_call_id -> trace_id, failed calls
        self._failure_events: OrderedDict[tuple[Any, ...], None] = OrderedDict()  # failure events recorded
        self._failed_lock = threading.Lock()
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
    def _request_id(self, call: dict[str, Any]) -> None:
        """One request id (``trace_id``) for every row of one LiteLLM call id. Behind the proxy all of a request's
        attempts share its call id, but the trace id LiteLLM's success payload carries is not always the one its
        logging object held when an earlier attempt failed; outside the proxy each attempt has its own call id."""
        cid = call.get("litellm_call_id")
        if not cid:
            return
        with self._failed_lock:
            known = self._request_ids.get(cid)
            if known is not None:
                call["trace_id"] = known
            elif call.get("status") != "ok" and call.get("trace_id"):
                self._request_ids[cid] = call["trace_id"]
                while len(self._request_ids) > _FAILED_ATTEMPTS_MAX:
                    self._request_ids.popitem(last=False)

    def _record(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any,
                attempts: int | None = None) -> None:
        t0 = time.perf_counter()
        try:
            rows = event_rows(kwargs, response_obj, start_time, end_time, run_id=self.recorder.run_id,
                              capture=self.capture, attempts=attempts)
            self._request_id(rows["call"])
            self.recorder.submit(rows)
        except Exception as exc:  # noqa: BLE001 - never raise into the host application
            self.recorder.count_error(exc)
        self.recorder.count_time(time.perf_counter() - t0)

    def _record_failed_attempt(self, request_data: Any, exception: BaseException) -> None:
        t0 = time.perf_counter()
        try:
            kwargs = failed_attempt_event(request_data, exception, time.time())
            key = attempt_key(kwargs)
            with self._failed_lock:
                self._failed_attempts[key] = self._failed_attempts.get(key, 0) + 1
                self._failed_attempts.move_to_end(key)
                while len(self._failed_attempts) > _FAILED_ATTEMPTS_MAX:
                    self._failed_attempts.popitem(last=False)
        except Exception as exc:  # noqa: BLE001
            self.recorder.count_error(exc)
            return
        self.recorder.count_time(time.perf_counter() - t0)
        self._record(kwargs, None, None, None)

    def _already_recorded(self, kwargs: Any, start_time: Any, end_time: Any) -> bool:
        """True when the failure event repeats an attempt the hook recorded (that attempt is then forgotten), or a
        failure event already recorded (LiteLLM sometimes delivers one twice, through its sync and async paths)."""
        try:
            key = attempt_key(kwargs)
            slo = kwargs.get("standard_logging_object") or {}
            event = (*key, str(slo.get("startTime", start_time)), str(slo.get("endTime", end_time)))
            with self._failed_lock:
                if event not in self._failure_events:  # else: this very event, delivered again
                    self._failure_events[event] = None
                    while len(self._failure_events) > _FAILED_ATTEMPTS_MAX:
                        self._failure_events.popitem(last=False)
                    n = self._failed_attempts.get(key, 0)
                    if n == 0:
                        return False
                    if n == 1:
                        del self._failed_attempts[key]
                    else:
                        self._failed_attempts[key] = n - 1
        except Exception as exc:  # noqa: BLE001
            self.recorder.count_error(exc)
            return False
        self.recorder.count_duplicate()
        return True

    def _record_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        if self._already_recorded(kwargs, start_time, end_time):
            return
        # not a failed deployment call (the hook saw none): a Router failure before any deployment was called,
        # or a stream that failed after the call returned (an attempt; told apart by what the payload names)
        try:
            params = kwargs.get("litellm_params") or {}
            stream = bool((kwargs.get("standard_logging_object") or {}).get("stream") or kwargs.get("stream"))
            hooked = _PER_ATTEMPT_HOOK and any(params.get(name) is True for name in _ASYNC_CALLS)
        except Exception:  # noqa: BLE001
            stream, hooked = True, False
        self._record(kwargs, response_obj, start_time, end_time, attempts=0 if hooked and not stream else None)

    def log_success_event(self, kwargs, response_obj, start_time, end_time):  # noqa: D102
        self._record(kwargs, response_obj, start_time, end_time)

    def log_failure_event(self, kwargs, response_obj, start_time, end_time):  # noqa: D102
        self._record_failure_event(kwargs, response_obj, start_time, end_time)

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):  # noqa: D102
        self._record(kwargs, response_obj, start_time, end_time)

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):  # noqa: D102
        self._record_failure_event(kwargs, response_obj, start_time, end_time)

    async def async_post_call_failure_deployment_hook(  # noqa: D102 - one row per failed deployment attempt
            self, request_data: Mapping[str, object], exception: Exception, call_type: Any,
            fallback_depth: int | None = None) -> None:
        self._record_failed_attempt(request_data, exception)
