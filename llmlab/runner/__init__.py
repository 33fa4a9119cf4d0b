"""The fan-out: every (prompt, model, sample) of a run, concurrently, through LiteLLM.

``run(...)`` (synchronous, for scripts and notebook cells) and ``await arun(...)`` plan the calls, look each one
up in the store's cache, and issue the rest under a global concurrency limit, per-model limits and client-side
RPM/TPM budgets (checked at the moment of sending). Retryable errors (429, 5xx, timeouts, dropped connections,
malformed bodies, streams cut mid-way) are retried with exponential backoff and jitter, never before a 429's
``Retry-After`` has passed for that deployment; 400/401/403/404/context-window errors are never retried. A model
that keeps failing hands the call to the next model of its fallback chain. Every call ends as exactly one final
row (``ok`` or ``error``: error type, HTTP status, attempts, the attempt log) written by one batch writer that
flushes at least every ``flush_interval_s`` (0.5 s). An interrupt or a cancellation stops the calls in flight
and keeps every completed one. Scores from the prompt's deterministic scorer are recorded with the row.
The README's reliability table maps each fault to what happens and to the test that shows it.

Timing: ``latency_ms`` is the wall time of the successful request (send to last byte), ``ttft_ms`` the time to
the first content token (requests are streamed), ``retry_wait_ms`` the time spent waiting between attempts.
``attempts`` counts provider requests (including those of fallback models). Costs: tokens × the model's price
(see :mod:`llmlab.models`); ``None`` when the price is unknown.
"""

from __future__ import annotations

from llmlab.routing.litellm_config import fallbacks_from_config
from llmlab.runner.fanout import RunStats
from llmlab.runner.handle import RunHandle, RunResult, arun, execute, run, start
from llmlab.runner.limits import RateLimiter
from llmlab.runner.options import RunOptions, options_from
from llmlab.runner.plan import (
    Plan,
    PlannedCall,
    build_messages,
    cache_key,
    check_budget,
    plan,
    prepare,
)
from llmlab.runner.retry import (
    NON_RETRYABLE_STATUS,
    RETRYABLE_STATUS,
    MalformedResponseError,
    StreamCutError,
    classify_error,
    retry_after_s,
)
from llmlab.runner.wire import aclose_http_clients
from llmlab.runner.writer import BatchWriter

__all__ = [
    "NON_RETRYABLE_STATUS", "RETRYABLE_STATUS", "BatchWriter", "MalformedResponseError", "Plan", "PlannedCall",
    "RateLimiter", "RunHandle", "RunOptions", "RunResult", "RunStats", "StreamCutError", "aclose_http_clients", "options_from",
    "arun", "build_messages", "cache_key", "check_budget", "classify_error", "execute", "fallbacks_from_config", "plan", "prepare",
    "retry_after_s", "run", "start",
]
