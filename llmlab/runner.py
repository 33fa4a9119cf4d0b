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

import asyncio
import contextvars
import hashlib
import json
import logging
import os
import random
import sys
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from llmlab import _loop
from llmlab._litellm import litellm, litellm_version, redact
from llmlab.errors import BudgetError, LLMLabError, RoutingError, StoreError
from llmlab.models import SANDBOX_API_BASE_ENV, ModelSpec, expand, resolve_all
from llmlab.store import Store, new_id, utc_now

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})
NON_RETRYABLE_STATUS = frozenset({400, 401, 402, 403, 404, 413, 422})


class StreamCutError(LLMLabError):
    """A streamed response broke off before the provider said it was complete (no finish reason, or the
    connection dropped after some content): retryable, and never recorded as a (short) answer."""


class RunOptions(BaseModel):
    """Every setting of a run (validated; bad values raise ``pydantic.ValidationError`` naming the field).

    Output-shaping (part of the cache key): ``temperature``, ``max_tokens``, ``samples``, ``system``,
    ``extra_params``.

    Reliability (see the README's reliability section):

    - ``concurrency`` (all models), ``per_model_concurrency`` (an int, or ``{model: int}``, default 8).
    - ``timeout_s``: the most one provider request may take, seconds (a stream included, send to last byte).
    - ``max_attempts``: requests per model of the chain for one call (1 = no retry); ``max_retry_wait_s``: the
      most one call waits between its attempts in total, seconds (a Retry-After that would exceed it ends the
      retries at once); ``backoff_base_s`` / ``backoff_max_s``: exponential backoff ``base × 2^(n-1)`` capped at
      ``max``, times a jitter factor in [0.5, 1.5), and never shorter than the provider's Retry-After.
    - ``rate_limits``: ``{model: {"rpm": n, "tpm": n}}`` enforced client-side per ``rate_limit_window_s``
      (60 s: per minute) at the moment each request is sent; TPM counts prompt tokens + ``max_tokens``.
    - ``fallbacks``: ``{model: [fallback, ...]}`` (aliases allowed), or the path of an exported LiteLLM config
      (read by :func:`fallbacks_from_config`). A model that fails (retries exhausted, or a non-retryable error)
      hands the call to the next model of its chain.
    - ``flush_interval_s``: how often the writer stores finished rows (at most 1 s: what a killed process loses).
    - ``budget_usd``: stop issuing calls once this much was spent (USD); ``cache``: reuse stored answers;
      ``stream``: stream responses (records ``ttft_ms``).
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    temperature: float | None = Field(0.0, ge=0, le=2)
    max_tokens: int | None = Field(512, ge=1)
    samples: int = Field(1, ge=1, le=1000)
    system: str | None = None
    concurrency: int = Field(16, ge=1, le=1024)
    per_model_concurrency: int | dict[str, int] = 8
    timeout_s: float = Field(60.0, gt=0)
    max_attempts: int = Field(4, ge=1, le=20)
    max_retry_wait_s: float = Field(120.0, ge=0)
    backoff_base_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(20.0, ge=0)
    rate_limits: dict[str, dict[str, float]] = Field(default_factory=dict)
    rate_limit_window_s: float = Field(60.0, gt=0)
    fallbacks: dict[str, list[str]] = Field(default_factory=dict)
    flush_interval_s: float = Field(0.5, gt=0, le=1.0)
    budget_usd: float | None = Field(None, gt=0)
    cache: bool = True
    stream: bool = True
    extra_params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("fallbacks", mode="before")
    @classmethod
    def _fallbacks_from_config(cls, v: Any) -> Any:
        if isinstance(v, (str, os.PathLike)):
            return fallbacks_from_config(v)
        return v

    @field_validator("rate_limits")
    @classmethod
    def _check_limits(cls, v: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for model, lim in v.items():
            unknown = set(lim) - {"rpm", "tpm"}
            if unknown:
                raise ValueError(f"rate_limits[{model!r}]: unknown keys {sorted(unknown)} (use rpm, tpm)")
        return v

    def request_params(self) -> dict[str, Any]:
        """The parameters that shape a model's output (part of the cache key)."""
        p: dict[str, Any] = {}
        if self.temperature is not None:
            p["temperature"] = self.temperature
        if self.max_tokens is not None:
            p["max_tokens"] = self.max_tokens
        p.update(self.extra_params)
        return p


@dataclass
class PlannedCall:
    """One (prompt, model, sample) of a run."""

    call_id: str
    prompt: Any  # llmlab.prompts.Prompt
    spec: ModelSpec
    sample_index: int
    messages: list[dict[str, str]]
    cache_key: str
    est_input_tokens: int
    est_output_tokens: int


@dataclass
class Plan:
    """What a run would do. ``calls``: every planned call; ``cached``: cache key → stored row for the hits."""

    prompt_set: Any
    specs: list[ModelSpec]
    options: RunOptions
    calls: list[PlannedCall]
    cached: dict[str, dict[str, Any]] = field(default_factory=dict)
    store: Store | None = None

    @property
    def n_calls(self) -> int:
        return len(self.calls)

    @property
    def n_cached(self) -> int:
        return sum(1 for c in self.calls if c.cache_key in self.cached)

    def estimate_cost_usd(self) -> float | None:
        """Estimated cost of the calls not served by the cache, in USD (None if a model has no price).

        Input tokens ≈ characters / 4; output tokens ≈ 1.5 × the reference's estimated tokens when there is a
        reference, else min(max_tokens, 256). An estimate, not a bound.
        """
        total = 0.0
        for c in self.calls:
            if c.cache_key in self.cached:
                continue
            cost = c.spec.cost_usd(c.est_input_tokens, c.est_output_tokens)
            if cost is None:
                return None
            total += cost
        return total

    def to_frame(self) -> Any:
        """Per model: ``model, calls, cached, to_call, est_cost_usd`` (a pandas DataFrame)."""
        import pandas as pd

        rows = []
        for spec in self.specs:
            calls = [c for c in self.calls if c.spec.name == spec.name]
            to_call = [c for c in calls if c.cache_key not in self.cached]
            costs = [c.spec.cost_usd(c.est_input_tokens, c.est_output_tokens) for c in to_call]
            rows.append({
                "model": spec.name, "calls": len(calls), "cached": len(calls) - len(to_call), "to_call": len(to_call),
                "est_cost_usd": None if any(x is None for x in costs) else sum(costs),
            })
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        est = self.estimate_cost_usd()
        est_s = "unknown (a model has no price)" if est is None else f"${est:.4f}"
        lines = [
            f"Plan: {self.n_calls} calls = {len(self.prompt_set)} prompts × {len(self.specs)} models × "
            f"{self.options.samples} samples; {self.n_cached} from cache; estimated cost {est_s}",
        ]
        lines += ["  " + line for line in self.to_frame().to_string(index=False).splitlines()]
        return "\n".join(lines)


def _estimate_tokens(text: str | None) -> int:
    return max(1, len(text or "") // 4)


def build_messages(text: str, system: str | None) -> list[dict[str, str]]:
    """OpenAI-style chat messages for one prompt."""
    msgs = []
    if system:
        msgs.append({"role": "system", "content": system})
    msgs.append({"role": "user", "content": text})
    return msgs


def cache_key(spec: ModelSpec, messages: list[dict[str, str]], params: Mapping[str, Any], sample_index: int) -> str:
    """SHA-256 over everything that shapes the output: model, API base choice, messages, parameters, sample."""
    payload = {
        "model": spec.name,
        "litellm_model": spec.litellm_model,
        "api_base": spec.api_base,
        "messages": messages,
        "params": dict(sorted(params.items())),
        "sample_index": sample_index,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def plan(prompts: Any, models: Iterable[str] | str | None = None, *, options: RunOptions | None = None,
         store: Store | None = None, template: str | None = None, category_column: str | None = None,
         check_keys: bool = True) -> Plan:
    """Plan a run without calling anything: resolve models (all problems reported at once), load the prompt set,
    build every call and look the calls up in the cache.

    Raises PromptSetError, ModelError, MissingKeyError.
    """
    from llmlab.models import default_models
    from llmlab.prompts import load_prompts

    options = options or RunOptions()
    prompt_set = load_prompts(prompts, template=template, category_column=category_column)
    specs = resolve_all(models if models else default_models(), check_keys=check_keys)
    params = options.request_params()
    calls: list[PlannedCall] = []
    for p in prompt_set:
        system = p.system or options.system
        messages = build_messages(p.text, system)
        est_in = _estimate_tokens(p.text) + _estimate_tokens(system) if system else _estimate_tokens(p.text)
        if p.reference:
            est_out = int(_estimate_tokens(p.reference) * 1.5) + 1
        else:
            est_out = min(options.max_tokens or 256, 256)
        for spec in specs:
            for s in range(options.samples):
                calls.append(PlannedCall(
                    call_id=new_id("c"), prompt=p, spec=spec, sample_index=s, messages=messages,
                    cache_key=cache_key(spec, messages, params, s), est_input_tokens=est_in, est_output_tokens=est_out,
                ))
    cached = (store or Store()).cached_calls(c.cache_key for c in calls) if options.cache else {}
    return Plan(prompt_set=prompt_set, specs=specs, options=options, calls=calls, cached=cached)


# -- rate limits -------------------------------------------------------------------------------------------
class RateLimiter:
    """Client-side RPM and TPM budget for one deployment over a sliding window (60 s by default; shorter in tests
    through ``RunOptions.rate_limit_window_s``).

    Token-aware: each request counts its prompt's estimated tokens plus ``max_tokens`` (the most it can use),
    corrected to the tokens actually used once the answer arrives (:meth:`settle`). A request larger than the
    whole TPM budget is let through alone when the window is empty, rather than blocking forever. ``rpm`` and
    ``tpm`` count per ``window_s`` (a budget "per minute" with the default window).

    The fan-out checks the budget at the moment it sends (after the concurrency slots are held), so the requests
    a provider *receives* respect it, not only the ones llmlab queued.
    """

    def __init__(self, rpm: float | None = None, tpm: float | None = None, window_s: float = 60.0) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s!r}")
        self.rpm, self.tpm, self.window_s = rpm, tpm, window_s
        self._events: deque[list[float]] = deque()  # [monotonic_s, tokens]
        self.waited_s = 0.0
        self.granted = 0

    @property
    def limited(self) -> bool:
        return bool(self.rpm) or bool(self.tpm)

    def _prune(self, now: float) -> None:
        while self._events and now - self._events[0][0] >= self.window_s:
            self._events.popleft()

    def wait_s(self, tokens: int, now: float | None = None) -> float:
        """Seconds until a request of ``tokens`` tokens fits the budget (0.0: it fits now)."""
        if not self.limited:
            return 0.0
        now = time.monotonic() if now is None else now
        self._prune(now)
        if not self._events:
            return 0.0
        wait = 0.0
        if self.rpm and len(self._events) >= self.rpm:
            oldest_that_must_go = self._events[len(self._events) - int(self.rpm)]
            wait = max(wait, oldest_that_must_go[0] + self.window_s - now)
        if self.tpm:
            used = sum(e[1] for e in self._events)
            if used + tokens > self.tpm:
                excess = used + tokens - self.tpm
                freed = 0.0
                expire_at = self._events[-1][0] + self.window_s  # the window empties: always fits then
                for t, tok in self._events:
                    freed += tok
                    if freed >= excess:
                        expire_at = t + self.window_s
                        break
                wait = max(wait, expire_at - now)
        return max(0.0, wait)

    def try_acquire(self, tokens: int, now: float | None = None) -> list[float] | None:
        """Record a request of ``tokens`` tokens now if it fits; returns its ticket (for :meth:`settle`) or None."""
        now = time.monotonic() if now is None else now
        if self.limited and self.wait_s(tokens, now) > 0:
            return None
        ticket = [now, float(tokens)]
        if self.limited:
            self._events.append(ticket)
        self.granted += 1
        return ticket

    def settle(self, ticket: list[float] | None, tokens_used: int | None) -> None:
        """Replace a ticket's reserved tokens by the tokens the request really used (input + output)."""
        if ticket is not None and tokens_used is not None:
            ticket[1] = float(tokens_used)

    async def acquire(self, tokens: int) -> float:
        """Wait until a request of ``tokens`` fits and record it; returns the seconds waited."""
        waited = 0.0
        while True:
            if self.try_acquire(tokens) is not None:
                self.waited_s += waited
                return waited
            wait = self.wait_s(tokens) + 0.001
            await asyncio.sleep(wait)
            waited += wait


# -- error classification ----------------------------------------------------------------------------------
class MalformedResponseError(LLMLabError):
    """The provider answered with a body that cannot be parsed, or a stream that ended with neither content nor
    usage (LiteLLM's Anthropic stream parser skips undecodable events and reports an empty, "complete" answer):
    retryable."""


class _ResendBlocked(ConnectionError):
    """Raised from the HTTP request hook when LiteLLM re-sends a request on its own (see ``_http_client``)."""


_CONNECTION_MARKERS = (
    "connection error", "server disconnected", "connection closed", "connection reset", "connection aborted",
    "connection refused", "remoteprotocolerror", "peer closed connection", "payload is not completed",
    "incomplete chunked read", "clientpayloaderror", "serverdisconnectederror", "llmlab blocked",
)
_MALFORMED_MARKERS = (
    "unterminated string", "expecting value", "expecting property name", "unable to get json response",
    "jsondecodeerror", "extra data", "invalid control character", "expecting ',' delimiter",
)


def _status(exc: BaseException) -> int | None:
    code = getattr(exc, "status_code", None)
    try:
        return int(code) if code is not None else None
    except (TypeError, ValueError):
        return None


def _chain_text(exc: BaseException) -> str:
    """Lower-cased text of an exception and of what it wraps (``__cause__``, ``original_exception``)."""
    parts, seen, todo = [], set(), [exc]
    while todo and len(parts) < 6:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        parts.append(f"{type(e).__name__}: {e}")
        todo += [getattr(e, "original_exception", None), e.__cause__, e.__context__]
    return " | ".join(parts).lower()


def retry_after_s(exc: BaseException) -> float | None:
    """The ``Retry-After`` a provider sent with an error, in seconds (``retry-after-ms`` wins), or None.

    LiteLLM 1.106 keeps the provider's headers on ``exc.litellm_response_headers``; ``exc.response.headers``
    and ``exc.headers`` are read too. Only the delta-seconds form is parsed (an HTTP date gives None).
    """
    candidates = []
    for attr in ("litellm_response_headers", "headers"):
        h = getattr(exc, attr, None)
        if h:
            candidates.append(h)
    resp = getattr(exc, "response", None)
    if resp is not None and getattr(resp, "headers", None):
        candidates.append(resp.headers)
    for headers in candidates:
        try:
            ms = headers.get("retry-after-ms") or headers.get("Retry-After-Ms")
            if ms:
                return max(0.0, float(ms) / 1000)
            val = headers.get("retry-after") or headers.get("Retry-After")
            if val:
                return max(0.0, float(val))
        except (TypeError, ValueError, AttributeError):
            continue
    return None


def classify_error(exc: BaseException) -> tuple[bool, str, int | None]:
    """``(retryable, error_type, http_status)`` for an exception raised by one provider request.

    ``error_type`` is LiteLLM's exception class name (``RateLimitError``, ``InternalServerError``,
    ``BadGatewayError``, ``ServiceUnavailableError``, ``Timeout``, ``BadRequestError``, ``AuthenticationError``,
    ``PermissionDeniedError``, ``NotFoundError``, ``ContextWindowExceededError``), except where LiteLLM's mapping
    hides what happened on the wire: a dropped connection is ``APIConnectionError``, an unparsable body
    ``MalformedResponseError`` and a stream cut mid-way ``StreamCutError``, all with ``http_status = None`` (no
    error status was received; LiteLLM reports them as HTTP 500). A client-side timeout has ``http_status`` None
    (LiteLLM's 408 is its own), a gateway's 504 keeps 504.

    Retryable: 408/409/425/429/5xx/529, timeouts, dropped connections, malformed bodies, cut streams. Never
    retried: 400, 401, 402, 403, 404, 413, 422 and context-window errors.
    """
    ll = litellm()
    status = _status(exc)
    if isinstance(exc, StreamCutError):
        return True, "StreamCutError", None
    if isinstance(exc, MalformedResponseError):
        return True, "MalformedResponseError", None
    if isinstance(exc, ll.ContextWindowExceededError):
        return False, "ContextWindowExceededError", status or 400
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError, ll.Timeout)):
        return True, "Timeout", None if status in (None, 408) else status
    if status == 403:
        return False, "PermissionDeniedError", 403  # LiteLLM's OpenAI mapping reports it as BadRequestError
    if status in NON_RETRYABLE_STATUS:
        return False, type(exc).__name__, status
    if status in (None, 500):
        text = _chain_text(exc)
        if any(m in text for m in _MALFORMED_MARKERS) or isinstance(exc, json.JSONDecodeError):
            return True, "MalformedResponseError", None
        if any(m in text for m in _CONNECTION_MARKERS) or isinstance(exc, ConnectionError):
            return True, "APIConnectionError", None
    if status in RETRYABLE_STATUS:
        return True, type(exc).__name__, status
    if isinstance(exc, (ll.APIConnectionError, ll.InternalServerError, ll.ServiceUnavailableError,
                        ll.APIError, ConnectionError, json.JSONDecodeError)):
        return True, type(exc).__name__, status
    if isinstance(exc, ll.BadRequestError):
        return False, type(exc).__name__, status or 400
    return False, type(exc).__name__, status


# -- HTTP clients that count what they send ------------------------------------------------------------------
# llmlab owns retries (backoff, Retry-After, max_attempts, the attempt log), and ``attempts`` must equal the
# requests a provider served. Two things stand in the way, both handled with an httpx request hook that sees
# every request of one attempt (through a context variable):
#
# - LiteLLM's own httpx handler (the ``anthropic`` provider and most non-OpenAI ones) re-sends a request once on
#   a dropped connection whatever ``num_retries`` says (for a stream it even closes the second connection before
#   the stream is read): the hook refuses that hidden second request, so one attempt is one request.
# - A request that never left (LiteLLM's first call imports and builds clients for a while; a loaded event loop
#   delays the send) is not a provider request: the hook records the moment the request is sent, the
#   ``timeout_s`` clock starts there, and an attempt with nothing sent is not counted in ``attempts``.
#
# The hooked clients are used for the ``anthropic`` provider, and for the ``openai`` provider when the model has
# an explicit ``api_base`` (the sandbox, OpenAI-compatible servers); other requests go through LiteLLM's own
# clients (one request per attempt, counted as sent).
_HOOKED_PROVIDERS = frozenset({"anthropic"})
PRE_SEND_GRACE_S = 30.0


class _Wire:
    """What the HTTP hook saw during one attempt."""

    __slots__ = ("sent", "blocked", "sent_at", "event")

    def __init__(self) -> None:
        self.sent = 0
        self.blocked = 0
        self.sent_at: float | None = None
        self.event = asyncio.Event()


_wire: contextvars.ContextVar[_Wire | None] = contextvars.ContextVar("llmlab_wire", default=None)
_http_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Any, Any]] = weakref.WeakKeyDictionary()


async def _count_send(request: Any) -> None:
    wire = _wire.get()
    if wire is None:
        return
    if wire.sent >= 1:
        wire.blocked += 1
        raise _ResendBlocked("llmlab blocked LiteLLM's automatic re-send after a dropped connection "
                             "(llmlab retries with backoff instead)")
    wire.sent += 1
    wire.sent_at = time.monotonic()
    wire.event.set()


def _loop_clients() -> dict[Any, Any]:
    loop = asyncio.get_running_loop()
    clients = _http_clients.get(loop)
    if clients is None:
        clients = _http_clients[loop] = {}
    return clients


async def aclose_http_clients() -> None:
    """Close the HTTP clients llmlab made on the running loop (called at interpreter exit by :mod:`llmlab._loop`)."""
    clients = _http_clients.pop(asyncio.get_running_loop(), {})
    for client in clients.values():
        try:
            if hasattr(client, "close") and asyncio.iscoroutinefunction(client.close):
                await client.close()  # AsyncHTTPHandler, openai.AsyncOpenAI
            elif hasattr(client, "aclose"):
                await client.aclose()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


def _hooked_client(spec: ModelSpec, kwargs: Mapping[str, Any]) -> Any | None:
    """A counting client for this request (cached per loop), or None to let LiteLLM use its own."""
    if spec.provider in _HOOKED_PROVIDERS:
        clients = _loop_clients()
        if "httpx" not in clients:
            litellm()
            from litellm.llms.custom_httpx.http_handler import AsyncHTTPHandler

            clients["httpx"] = AsyncHTTPHandler(event_hooks={"request": [_count_send]})
        return clients["httpx"]
    if spec.provider == "openai" and kwargs.get("api_base"):
        key = ("openai", kwargs["api_base"], kwargs.get("api_key"))
        clients = _loop_clients()
        if key not in clients:
            import httpx
            import openai

            litellm()
            from litellm.llms.custom_httpx.http_handler import AsyncHTTPHandler

            http = httpx.AsyncClient(transport=AsyncHTTPHandler.create_async_transport(), follow_redirects=True,
                                     event_hooks={"request": [_count_send]})
            clients[key] = openai.AsyncOpenAI(api_key=kwargs.get("api_key") or "none", base_url=kwargs["api_base"],
                                              http_client=http, max_retries=0)
        return clients[key]
    return None


async def _with_deadline(coro: Any, timeout_s: float, wire: _Wire | None) -> Any:
    """Await ``coro`` for at most ``timeout_s`` seconds after its request is sent (after it starts when the send
    cannot be seen; ``PRE_SEND_GRACE_S`` more for the client to send it). Raises ``TimeoutError``."""
    task = asyncio.ensure_future(coro)
    start = time.monotonic()
    try:
        while True:
            if wire is None:
                deadline = start + timeout_s
            elif wire.sent_at is None:
                deadline = start + timeout_s + PRE_SEND_GRACE_S
            else:
                deadline = wire.sent_at + timeout_s
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no complete answer within {timeout_s:g} s of sending the request"
                                   if wire is None or wire.sent_at is not None
                                   else f"the request was not sent within {timeout_s + PRE_SEND_GRACE_S:g} s")
            waiters: set[Any] = {task}
            sent_waiter = None
            if wire is not None and wire.sent_at is None:
                sent_waiter = asyncio.ensure_future(wire.event.wait())
                waiters.add(sent_waiter)
            try:
                await asyncio.wait(waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if sent_waiter is not None and not sent_waiter.done():
                    sent_waiter.cancel()
            if task.done():
                return task.result()
    finally:
        if not task.done():
            task.cancel()
            try:
                await task
            except BaseException:  # noqa: BLE001 - the task's own outcome no longer matters
                pass


# -- the fan-out -------------------------------------------------------------------------------------------
@dataclass
class RunStats:
    """Live counters of a run (read by progress displays; written only on the loop thread).

    ``requests``: provider requests sent (the sum of the rows' ``attempts``); ``retries``: requests beyond the
    first of each call (fallback hops included); ``fallbacks``: rows answered (or failed) after at least one
    fallback hop; ``queued_s``: total time calls waited for rate-limit budgets and Retry-After cool-downs.
    """

    planned: int = 0
    done: int = 0
    ok: int = 0
    error: int = 0
    cached: int = 0
    retries: int = 0
    fallbacks: int = 0
    cost_usd: float = 0.0
    started_monotonic_s: float = field(default_factory=time.monotonic)
    errors_by_type: dict[str, int] = field(default_factory=dict)
    cancelled: bool = False
    requests: int = 0
    queued_s: float = 0.0

    def eta_s(self) -> float | None:
        issued = self.done - self.cached
        if issued <= 0 or self.done >= self.planned:
            return None
        elapsed = time.monotonic() - self.started_monotonic_s
        return elapsed / issued * (self.planned - self.done)

    def line(self) -> str:
        eta = self.eta_s()
        eta_s = f", ETA {eta:.0f}s" if eta is not None else ""
        return (f"llmlab: {self.done}/{self.planned} calls ({self.cached} cached, {self.error} errors), "
                f"${self.cost_usd:.4f} spent{eta_s}")


class BatchWriter:
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

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

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
        self.store.append_calls(calls)
        self.store.append_scores(scores)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self._flush()

    async def close(self) -> None:
        """Stop the periodic flush and write what is left (raises StoreError after ``close_attempts`` failures)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._inflight is not None:  # a write interrupted by the cancellation: let it finish first
            await asyncio.wait({self._inflight[0]})
            self._settle()
        for attempt in range(self.close_attempts):
            if await self._flush():
                return
            await asyncio.sleep(min(2.0, 0.1 * 2 ** attempt))
        raise StoreError(f"llmlab: could not write {len(self._calls)} result rows to {self.store.path} "
                         f"after {self.close_attempts} attempts (see the log for the errors)")


class _Fanout:
    def __init__(self, the_plan: Plan, run_id: str, store: Store, *,
                 on_result: Callable[[dict[str, Any]], Any] | None = None,
                 on_delta: Callable[[str, str], Any] | None = None) -> None:
        self.plan, self.run_id, self.store = the_plan, run_id, store
        self.opts = the_plan.options
        self.on_result, self.on_delta = on_result, on_delta
        self.stats = RunStats(planned=the_plan.n_calls)
        self.writer = BatchWriter(store, interval_s=self.opts.flush_interval_s)
        self.global_sem = asyncio.Semaphore(self.opts.concurrency)
        self.sems: dict[str, asyncio.Semaphore] = {}
        self.limiters: dict[str, RateLimiter] = {}
        self.cooldown_until: dict[str, float] = {}
        self.spent_usd = 0.0
        self._fallback_specs: dict[str, list[ModelSpec]] = {}
        self.partial: dict[str, str] = {}
        self.t0 = time.monotonic()

    def _sem(self, model: str) -> asyncio.Semaphore:
        if model not in self.sems:
            pmc = self.opts.per_model_concurrency
            n = pmc.get(model, 8) if isinstance(pmc, dict) else pmc
            self.sems[model] = asyncio.Semaphore(max(1, int(n)))
        return self.sems[model]

    def _limiter(self, model: str) -> RateLimiter:
        if model not in self.limiters:
            lim = self.opts.rate_limits.get(model, {})
            self.limiters[model] = RateLimiter(lim.get("rpm"), lim.get("tpm"), window_s=self.opts.rate_limit_window_s)
        return self.limiters[model]

    def _chain(self, spec: ModelSpec) -> list[ModelSpec]:
        if spec.name not in self._fallback_specs:
            names = [n for n in expand(self.opts.fallbacks.get(spec.name, [])) if n != spec.name]
            self._fallback_specs[spec.name] = resolve_all(names, check_keys=False) if names else []
        return [spec, *self._fallback_specs[spec.name]]

    def _base_row(self, call: PlannedCall) -> dict[str, Any]:
        return {
            "call_id": call.call_id, "run_id": self.run_id, "prompt_id": call.prompt.prompt_id,
            "sample_index": call.sample_index, "model": call.spec.name, "answered_by": None, "status": "error",
            "error_type": None, "http_status": None, "error_message": None, "attempts": 0, "fallbacks_taken": 0,
            "retry_wait_ms": 0.0, "latency_ms": None, "ttft_ms": None, "input_tokens": None, "output_tokens": None,
            "cost_usd": None, "cached": False, "cache_key": call.cache_key, "source_call_id": None, "response": None,
            "finish_reason": None, "attempt_log": "[]", "created_at_utc": None,
        }

    def _scores_for(self, row: dict[str, Any], call: PlannedCall) -> list[dict[str, Any]]:
        p = call.prompt
        if not p.scorer or p.reference is None:
            return []
        from llmlab.scoring import score

        value = score(p.scorer, row["response"] if row["status"] == "ok" else None, p.reference)
        if value is None:
            return []
        return [{"run_id": self.run_id, "call_id": row["call_id"], "prompt_id": p.prompt_id, "model": row["model"],
                 "kind": "auto", "scorer": p.scorer, "score": float(value), "raw_value": float(value),
                 "comment": None, "created_at_utc": utc_now()}]

    def _finish(self, call: PlannedCall, row: dict[str, Any]) -> None:
        row["created_at_utc"] = utc_now()
        try:
            scores = self._scores_for(row, call)
        except Exception:  # noqa: BLE001 - a scorer bug must not lose the row
            log.exception("llmlab: scoring %s failed; the row is kept without a score", call.call_id)
            scores = []
        self.writer.add(row, scores)
        s = self.stats
        s.done += 1
        if row["status"] == "ok":
            s.ok += 1
        else:
            s.error += 1
            key = row["error_type"] or "error"
            s.errors_by_type[key] = s.errors_by_type.get(key, 0) + 1
        if row["cached"]:
            s.cached += 1
        elif row["cost_usd"]:
            s.cost_usd += row["cost_usd"]
        s.requests += row["attempts"]
        s.retries += max(0, row["attempts"] - 1)
        s.fallbacks += 1 if row["fallbacks_taken"] else 0
        self.partial.pop(call.call_id, None)
        if self.on_result is not None:
            try:
                self.on_result({**row, "auto_score": scores[0]["score"] if scores else None})
            except Exception:  # noqa: BLE001 - a display callback must not lose a row
                log.exception("llmlab: on_result callback failed")

    def _from_cache(self, call: PlannedCall, hit: dict[str, Any]) -> dict[str, Any]:
        row = self._base_row(call)
        for k in ("answered_by", "latency_ms", "ttft_ms", "input_tokens", "output_tokens", "cost_usd", "response",
                  "finish_reason"):
            v = hit.get(k)
            row[k] = None if _isnan(v) else v
        row.update(status="ok", cached=True, attempts=0, source_call_id=hit["call_id"])
        return row

    def _delta(self, call: PlannedCall, parts: list[str], delta: str) -> None:
        if self.on_delta is None:
            return
        self.partial[call.call_id] = "".join(parts)
        try:
            self.on_delta(call.call_id, delta)
        except Exception:  # noqa: BLE001 - a display callback must not break the call
            log.exception("llmlab: on_delta callback failed")
            self.on_delta = None

    async def _request(self, spec: ModelSpec, call: PlannedCall, entry: dict[str, Any]) -> dict[str, Any]:
        """One provider request. Returns the result fields of the row; raises the provider's error, or
        StreamCutError / MalformedResponseError for a stream cut mid-way or an unusable body, or TimeoutError.

        Sets ``entry["http_requests"]`` (0 or 1) when the request went through a counting client."""
        ll = litellm()
        kwargs = spec.call_kwargs()
        kwargs.update(self.opts.request_params())
        kwargs.update(messages=call.messages, timeout=self.opts.timeout_s, num_retries=0, max_retries=0)
        wire: _Wire | None = None
        token = None
        if "client" not in kwargs:
            client = _hooked_client(spec, kwargs)
            if client is not None:
                kwargs["client"] = client
                wire = _Wire()
                token = _wire.set(wire)
        t0 = time.perf_counter()
        ttft_ms = None
        usage = None
        finish_reason = None
        parts: list[str] = []
        try:
            if not self.opts.stream:
                resp = await _with_deadline(ll.acompletion(**kwargs), self.opts.timeout_s, wire)
                text = resp.choices[0].message.content or ""
                finish_reason = resp.choices[0].finish_reason
                usage = getattr(resp, "usage", None)
            else:
                kwargs.update(stream=True, stream_options={"include_usage": True})

                async def consume() -> None:
                    nonlocal ttft_ms, usage, finish_reason
                    stream = await ll.acompletion(**kwargs)
                    try:
                        async for chunk in stream:
                            u = getattr(chunk, "usage", None)
                            if u is not None and getattr(u, "completion_tokens", None) is not None:
                                usage = u
                            if not chunk.choices:
                                continue
                            choice = chunk.choices[0]
                            delta = getattr(choice.delta, "content", None)
                            if delta:
                                if ttft_ms is None:
                                    ttft_ms = (time.perf_counter() - t0) * 1000
                                parts.append(delta)
                                self._delta(call, parts, delta)
                            if choice.finish_reason:
                                finish_reason = choice.finish_reason
                    except (asyncio.CancelledError, StreamCutError, MalformedResponseError):
                        raise
                    except Exception as exc:  # noqa: BLE001 - classified below
                        if parts:
                            raise StreamCutError(
                                f"{spec.name}: the stream broke after {len(''.join(parts))} characters "
                                f"({type(exc).__name__}: {redact(str(exc))[:300]})") from exc
                        raise

                await _with_deadline(consume(), self.opts.timeout_s, wire)
                text = "".join(parts)
                if finish_reason is None:
                    raise StreamCutError(f"{spec.name}: the stream ended after {len(text)} characters without a "
                                         "finish reason")
                if not text and usage is None:
                    raise MalformedResponseError(f"{spec.name}: the stream ended with no content and no usage "
                                                 "(undecodable events?)")
        finally:
            if token is not None:
                _wire.reset(token)
            if wire is not None:
                entry["http_requests"] = wire.sent
                if wire.blocked:
                    entry["resend_blocked"] = wire.blocked
        latency_ms = (time.perf_counter() - t0) * 1000
        in_tok = getattr(usage, "prompt_tokens", None) if usage is not None else None
        out_tok = getattr(usage, "completion_tokens", None) if usage is not None else None
        if in_tok is None:
            in_tok = ll.token_counter(model=spec.litellm_model, messages=call.messages)
        if out_tok is None:
            out_tok = ll.token_counter(model=spec.litellm_model, text=text, count_response_tokens=True)
        return {"response": text, "latency_ms": latency_ms, "ttft_ms": ttft_ms, "input_tokens": int(in_tok),
                "output_tokens": int(out_tok), "finish_reason": finish_reason,
                "cost_usd": spec.cost_usd(int(in_tok), int(out_tok))}

    async def _admit(self, spec: ModelSpec, tokens: int) -> tuple[float, list[float] | None]:
        """With the model's slot held: wait out the model's Retry-After cool-down and rate-limit budget, take a
        global slot and record the request in the budget at that very moment. Returns (seconds queued, ticket);
        the caller releases ``global_sem`` after the request."""
        limiter = self._limiter(spec.name)
        queued = 0.0
        while True:
            now = time.monotonic()
            wait = max(self.cooldown_until.get(spec.name, 0.0) - now, limiter.wait_s(tokens, now))
            if wait > 0:
                wait += 0.001
                await asyncio.sleep(wait)
                queued += wait
                continue
            await self.global_sem.acquire()
            now = time.monotonic()
            if self.cooldown_until.get(spec.name, 0.0) <= now:
                ticket = limiter.try_acquire(tokens, now)
                if ticket is not None:
                    limiter.waited_s += queued
                    return queued, ticket
            self.global_sem.release()

    async def _one(self, call: PlannedCall) -> None:
        hit = self.plan.cached.get(call.cache_key) if self.opts.cache else None
        if hit is not None:
            self._finish(call, self._from_cache(call, hit))
            return
        row = self._base_row(call)
        log_entries: list[dict[str, Any]] = []
        wait_total_s = 0.0
        last_exc: BaseException | None = None
        tokens = call.est_input_tokens + (self.opts.max_tokens or call.est_output_tokens)
        try:
            chain = self._chain(call.spec)
            for hop, spec in enumerate(chain):
                row["fallbacks_taken"] = hop
                for attempt in range(1, self.opts.max_attempts + 1):
                    if self.opts.budget_usd is not None and self.spent_usd >= self.opts.budget_usd:
                        row.update(error_type="BudgetExceeded", http_status=None, error_message=(
                            f"budget of ${self.opts.budget_usd:.4f} spent (${self.spent_usd:.4f}); call not issued"))
                        return
                    entry: dict[str, Any] = {"model": spec.name, "hop": hop, "attempt": attempt}
                    try:
                        async with self._sem(spec.name):
                            queued, ticket = await self._admit(spec, tokens)
                            try:
                                log_entries.append(entry)
                                entry["sent_s"] = round(time.monotonic() - self.t0, 4)
                                if queued:
                                    entry["queued_ms"] = round(queued * 1000, 1)
                                    self.stats.queued_s += queued
                                result = await self._request(spec, call, entry)
                            finally:
                                self.global_sem.release()
                                # a provider request, unless a counting client saw nothing leave
                                row["attempts"] += entry.get("http_requests", 1)
                    except asyncio.CancelledError:
                        entry["status"] = "cancelled"
                        raise
                    except Exception as exc:  # noqa: BLE001 - every provider failure becomes data
                        retryable, etype, status = classify_error(exc)
                        last_exc = exc
                        ra = retry_after_s(exc)
                        entry.update(status="error", error_type=etype, http_status=status)
                        if ra is not None:
                            entry["retry_after_s"] = ra
                            self.cooldown_until[spec.name] = max(self.cooldown_until.get(spec.name, 0.0),
                                                                 time.monotonic() + ra)
                        row.update(error_type=etype, http_status=status,
                                   error_message=(redact(str(exc)) or etype)[:2000])
                        if not retryable:
                            entry["gave_up"] = "not retryable"
                            break
                        if attempt >= self.opts.max_attempts:
                            entry["gave_up"] = "max_attempts"
                            break
                        backoff = min(self.opts.backoff_max_s, self.opts.backoff_base_s * 2 ** (attempt - 1))
                        backoff *= 0.5 + random.random()
                        wait = max(backoff, ra or 0.0)
                        if wait_total_s + wait > self.opts.max_retry_wait_s:
                            entry["gave_up"] = "max_retry_wait_s"
                            break
                        entry["wait_ms"] = round(wait * 1000, 1)
                        await asyncio.sleep(wait)
                        wait_total_s += wait
                        continue
                    self._limiter(spec.name).settle(ticket, result["input_tokens"] + result["output_tokens"])
                    entry.update(status="ok", latency_ms=round(result["latency_ms"], 1))
                    row.update(result)
                    row.update(status="ok", answered_by=spec.name, error_type=None, http_status=None,
                               error_message=None)
                    if result["cost_usd"]:
                        self.spent_usd += result["cost_usd"]
                    return
                if hop + 1 < len(chain):
                    log.info("llmlab: %s failed (%s); falling back to %s", spec.name, row["error_type"],
                             chain[hop + 1].name)
        except asyncio.CancelledError:
            row.update(status="error", error_type="cancelled", http_status=None,
                       error_message="cancelled before completion (interrupt or cancel)")
            raise
        finally:
            row["retry_wait_ms"] = wait_total_s * 1000
            row["attempt_log"] = json.dumps(log_entries, default=str)
            if row["status"] != "ok" and row["error_type"] is None:
                row["error_type"] = type(last_exc).__name__ if last_exc else "error"
            self._finish(call, row)

    async def execute(self) -> RunStats:
        self.writer.start()
        tasks = [asyncio.ensure_future(self._one(c)) for c in self.plan.calls]
        try:
            await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            self.stats.cancelled = True
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            await asyncio.shield(self.writer.close())
        return self.stats


def _isnan(v: Any) -> bool:
    try:
        return v is None or v != v
    except Exception:  # noqa: BLE001
        return False


_WARM_UP_MODULES = ("openai.resources", "litellm.litellm_core_utils.streaming_handler",
                    "litellm.llms.anthropic.chat.handler", "litellm.llms.custom_httpx.http_handler")


def _warm_up() -> None:
    """Import, in a worker thread, the modules LiteLLM imports lazily on its first request (about 0.4 s of
    ``openai.resources``): done on the loop thread, inside the first request's timeout, that import would stall
    every call in flight and can time a request out before it is sent."""
    import importlib

    litellm()
    for name in _WARM_UP_MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - an optional speed-up only
            log.debug("llmlab: warm-up import of %s failed", name, exc_info=True)


# -- fallbacks from an exported routing config -------------------------------------------------------------
def _config_model_name(params: Mapping[str, Any]) -> str | None:
    """The llmlab model name of one LiteLLM deployment (``litellm_params``)."""
    model = params.get("model")
    if not model:
        return None
    base = str(params.get("api_base") or "")
    if base == f"os.environ/{SANDBOX_API_BASE_ENV}":
        return "sandbox/" + str(model).rsplit("/", 1)[-1]
    return str(model)


def fallbacks_from_config(config: Mapping[str, Any] | str | os.PathLike[str]) -> dict[str, list[str]]:
    """Fallback chains, per routed model, from a LiteLLM proxy config (as written by
    :func:`llmlab.export.write_litellm_config`, or any LiteLLM config with ``router_settings.fallbacks``).

    Every model deployed under a model group that has fallbacks gets the models of those fallback groups, in
    order (each group's deployments in file order, repeats and the model itself dropped), then the
    ``default_fallbacks`` groups. Sandbox deployments (``api_base: os.environ/LLMLAB_SANDBOX_API_BASE``) are
    named ``sandbox/<name>``; others by their LiteLLM model string. Use the result as ``run(...,
    fallbacks=...)``.

    Args:
        config: the config as a dict, or the path of its YAML file.
    Returns:
        ``{"sandbox/fast": ["sandbox/frontier", "sandbox/balanced"], ...}`` (models without fallbacks omitted).
    Raises:
        RoutingError: the file cannot be read or parsed, or it has no ``model_list``.
    """
    if not isinstance(config, Mapping):
        import yaml

        try:
            with open(config, encoding="utf-8") as fh:
                config = yaml.safe_load(fh)
        except (OSError, yaml.YAMLError) as exc:
            raise RoutingError(f"cannot read the LiteLLM config {config}: {exc}") from exc
    if not isinstance(config, Mapping) or not isinstance(config.get("model_list"), list):
        raise RoutingError("not a LiteLLM config: no model_list")
    groups: dict[str, list[str]] = {}
    for dep in config["model_list"]:
        if not isinstance(dep, Mapping):
            continue
        name = _config_model_name(dep.get("litellm_params") or {})
        if name and dep.get("model_name"):
            groups.setdefault(str(dep["model_name"]), [])
            if name not in groups[str(dep["model_name"])]:
                groups[str(dep["model_name"])].append(name)
    settings = config.get("router_settings") or {}
    chains: dict[str, list[str]] = {}
    for item in settings.get("fallbacks") or []:
        if not isinstance(item, Mapping):
            continue
        for group, targets in item.items():
            for model in groups.get(str(group), []):
                chain = chains.setdefault(model, [])
                for target in targets or []:
                    for m in groups.get(str(target), []):
                        if m != model and m not in chain:
                            chain.append(m)
    default_groups = settings.get("default_fallbacks") or []
    if default_groups:
        for group, models in groups.items():
            if group in default_groups:
                continue
            for model in models:
                chain = chains.setdefault(model, [])
                for target in default_groups:
                    for m in groups.get(str(target), []):
                        if m != model and m not in chain:
                            chain.append(m)
    return {m: c for m, c in chains.items() if c}


# -- the public API ----------------------------------------------------------------------------------------
class RunResult:
    """A finished (or cancelled) run: its id, its store, its counters, and the frames behind it.

    ``results`` is :meth:`Store.results` (one row per call, see there for the columns); ``summary()`` is
    :func:`llmlab.analysis.summarize` over it.
    """

    def __init__(self, run_id: str, store: Store, stats: RunStats | None = None, plan: Plan | None = None) -> None:
        self.run_id, self.store, self.stats, self.plan = run_id, store, stats, plan
        self._results: Any = None

    @property
    def results(self) -> Any:
        if self._results is None:
            self._results = self.store.results(self.run_id)
        return self._results

    def refresh(self) -> RunResult:
        """Drop the cached results frame (after new scores or ratings)."""
        self._results = None
        return self

    @property
    def meta(self) -> dict[str, Any]:
        return self.store.run(self.run_id)

    def to_frame(self) -> Any:
        return self.results

    def __len__(self) -> int:
        return len(self.results)

    def summary(self, by: Sequence[str] = ("model",)) -> Any:
        from llmlab.analysis import summarize

        return summarize(self.results, by=tuple(by))

    def route(self, **kwargs: Any) -> Any:
        from llmlab.routing import routing_table

        return routing_table(self.results, **kwargs)

    def report(self, path: str | None = None, **kwargs: Any) -> Any:
        from llmlab.report import report_run

        return report_run(self.run_id, path, store=self.store, **kwargs)

    def __repr__(self) -> str:
        df = self.results
        n_ok = int((df["status"] == "ok").sum()) if len(df) else 0
        head = f"<llmlab run {self.run_id}: {len(df)} calls, {n_ok} ok, {len(df) - n_ok} errors, store {self.store.path}>"
        if not len(df):
            return head
        try:
            summ = self.summary()
            cols = [c for c in ("model", "n", "quality", "latency_p50_ms", "latency_p95_ms", "cost_per_1k_prompts_usd",
                                "error_rate") if c in summ.columns]
            return head + "\n" + summ[cols].to_string(index=False, float_format=lambda x: f"{x:.4g}")
        except Exception:  # noqa: BLE001 - a repr must not fail
            return head

    def _repr_html_(self) -> str:
        import html

        return f"<pre>{html.escape(repr(self))}</pre>"


class _Progress:
    """Progress from the *waiting* thread: a display handle in Jupyter, a carriage-return line on a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.handle: Any = None
        self.last = 0.0
        self.kernel = False
        if enabled:
            try:
                from IPython import get_ipython

                ip = get_ipython()
                self.kernel = ip is not None and getattr(ip, "kernel", None) is not None
            except Exception:  # noqa: BLE001
                self.kernel = False

    def update(self, stats: RunStats, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not final and now - self.last < 0.25:
            return
        self.last = now
        text = stats.line()
        if self.kernel:
            import html

            from IPython.display import display

            pct = 100 * stats.done / max(1, stats.planned)
            bundle = {"text/plain": text, "text/html": (
                f'<div><progress value="{pct:.0f}" max="100" style="width:40%"></progress> '
                f"<code>{html.escape(text)}</code></div>")}
            if self.handle is None:
                self.handle = display(bundle, raw=True, display_id=True)
            else:
                self.handle.update(bundle, raw=True)
        elif sys.stderr.isatty():
            sys.stderr.write("\r" + text + ("\n" if final else ""))
            sys.stderr.flush()
        elif final:
            log.info(text)


async def _arun_impl(the_plan: Plan, store: Store, *, name: str | None, tags: Sequence[str],
                     on_result: Callable[[dict[str, Any]], Any] | None, on_delta: Callable[[str, str], Any] | None,
                     holder: dict[str, Any], run_id: str | None = None) -> RunResult:
    opts = the_plan.options
    ps = the_plan.prompt_set
    from llmlab import __version__

    run_id = run_id or new_id("r")
    await asyncio.to_thread(
        store.create_run, run_id=run_id, name=name or f"{ps.name} × {len(the_plan.specs)} models", prompt_set=ps.name,
        models=[s.name for s in the_plan.specs], params=opts.model_dump(), tags=list(tags),
        llmlab_version=__version__, litellm_version=litellm_version(), sandbox=any(s.sandbox for s in the_plan.specs),
        n_prompts=len(ps), n_calls_planned=the_plan.n_calls,
    )
    await asyncio.to_thread(store.add_prompts, [
        {"run_id": run_id, "prompt_id": p.prompt_id, "category": p.category, "prompt": p.text,
         "reference": p.reference, "scorer": p.scorer, "system": p.system or opts.system, "source_id": p.source_id}
        for p in ps
    ])
    await asyncio.to_thread(_warm_up)
    fan = _Fanout(the_plan, run_id, store, on_result=on_result, on_delta=on_delta)
    holder["fanout"] = fan
    status = "finished"
    try:
        await fan.execute()
    except asyncio.CancelledError:
        status = "cancelled"
        raise
    except BaseException:
        status = "failed"
        raise
    finally:
        await asyncio.shield(asyncio.to_thread(store.finish_run, run_id, status))
    return RunResult(run_id, store, fan.stats, the_plan)


def prepare(prompts: Any, models: Iterable[str] | str | None = None, *, store: Store | None = None,
            template: str | None = None, category_column: str | None = None, **options: Any) -> Plan:
    """Plan a run and check its budget, calling nothing (:func:`plan` plus the ``budget_usd`` check).

    The returned :class:`Plan` carries its store; give it to :func:`execute` (blocking) or :func:`start`
    (non-blocking). Raises PromptSetError, ModelError, MissingKeyError, BudgetError, pydantic.ValidationError.
    """
    store = store or Store()
    opts = RunOptions(**options)
    the_plan = plan(prompts, models, options=opts, store=store, template=template, category_column=category_column)
    the_plan.store = store
    est = the_plan.estimate_cost_usd()
    if opts.budget_usd is not None and est is not None and est > opts.budget_usd:
        raise BudgetError(
            f"estimated cost ${est:.4f} exceeds the budget ${opts.budget_usd:.4f} "
            f"({the_plan.n_calls - the_plan.n_cached} calls to make); raise the budget or run fewer prompts/models"
        )
    return the_plan


class RunHandle:
    """One run of a :class:`Plan` on llmlab's background loop, observable while it runs.

    ``stats`` (:class:`RunStats`, None until the fan-out begins) and ``partial`` (call_id → streamed text so far,
    kept only when ``on_delta`` is given) are live; ``done()``, ``cancel()`` (completed calls stay recorded; the
    rest become ``cancelled`` rows) and ``result(timeout_s)`` (the :class:`RunResult`) work from any thread.
    ``coroutine()`` gives the run itself, to await on llmlab's loop (the widgets do); ``start()`` schedules it.
    """

    def __init__(self, the_plan: Plan, *, store: Store | None = None, name: str | None = None,
                 tags: Sequence[str] = (), run_id: str | None = None,
                 on_result: Callable[[dict[str, Any]], Any] | None = None,
                 on_delta: Callable[[str, str], Any] | None = None) -> None:
        self.plan = the_plan
        self.store = store or the_plan.store or Store()
        self.run_id = run_id or new_id("r")
        self.name, self.tags = name, tuple(tags)
        self.on_result, self.on_delta = on_result, on_delta
        self._holder: dict[str, Any] = {}
        self._task: _loop.TaskHandle | None = None

    @property
    def stats(self) -> RunStats | None:
        fan = self._holder.get("fanout")
        return fan.stats if fan is not None else None

    @property
    def partial(self) -> dict[str, str]:
        fan = self._holder.get("fanout")
        return dict(fan.partial) if fan is not None else {}

    def coroutine(self) -> Any:
        """The run as a coroutine (await it on llmlab's loop); returns a :class:`RunResult`."""
        return _arun_impl(self.plan, self.store, name=self.name, tags=self.tags, on_result=self.on_result,
                          on_delta=self.on_delta, holder=self._holder, run_id=self.run_id)

    def start(self) -> RunHandle:
        """Schedule the run on llmlab's background loop and return at once."""
        if self._task is None:
            self._task = _loop.start_task(self.coroutine())
        return self

    def done(self) -> bool:
        return self._task is not None and self._task.finished.is_set()

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def result(self, timeout_s: float | None = None) -> RunResult:
        """Wait for the run (``timeout_s`` seconds at most) and return its :class:`RunResult`; a cancelled run
        returns the result of what was recorded. Raises TimeoutError, or the run's own exception."""
        import concurrent.futures

        if self._task is None:
            raise RuntimeError("the run was not started: call start()")
        try:
            return self._task.future.result(timeout=timeout_s)
        except concurrent.futures.CancelledError:
            return RunResult(self.run_id, self.store, self.stats, self.plan)
        except concurrent.futures.TimeoutError as exc:
            raise TimeoutError(f"run {self.run_id} still running after {timeout_s} s") from exc


def start(the_plan: Plan, *, store: Store | None = None, name: str | None = None, tags: Sequence[str] = (),
          run_id: str | None = None, on_result: Callable[[dict[str, Any]], Any] | None = None,
          on_delta: Callable[[str, str], Any] | None = None) -> RunHandle:
    """Start a prepared run without blocking (widgets, long runs): returns a started :class:`RunHandle`."""
    return RunHandle(the_plan, store=store, name=name, tags=tags, run_id=run_id, on_result=on_result,
                     on_delta=on_delta).start()


def execute(the_plan: Plan, *, store: Store | None = None, name: str | None = None, tags: Sequence[str] = (),
            run_id: str | None = None, progress: bool = True,
            on_result: Callable[[dict[str, Any]], Any] | None = None,
            on_delta: Callable[[str, str], Any] | None = None,
            on_tick: Callable[[RunStats, dict[str, str]], Any] | None = None) -> RunResult:
    """Run a prepared :class:`Plan` and block until done (what :func:`run` does after planning).

    Callbacks and interrupt behaviour as in :func:`run`; ``run_id`` may be chosen by the caller (so it is known
    even when the run is interrupted).
    """
    handle = RunHandle(the_plan, store=store, name=name, tags=tags, run_id=run_id, on_result=on_result,
                       on_delta=on_delta)
    prog = _Progress(progress)

    def tick() -> None:
        stats = handle.stats
        if stats is None:
            return
        prog.update(stats)
        if on_tick is not None:
            on_tick(stats, handle.partial)

    result = _loop.run_sync(handle.coroutine(), on_tick=tick)
    if result.stats is not None:
        prog.update(result.stats, final=True)
    return result


def run(prompts: Any, models: Iterable[str] | str | None = None, *, name: str | None = None,
        tags: Sequence[str] = (), template: str | None = None, category_column: str | None = None,
        store: Store | None = None, progress: bool = True,
        on_result: Callable[[dict[str, Any]], Any] | None = None,
        on_delta: Callable[[str, str], Any] | None = None,
        on_tick: Callable[[RunStats, dict[str, str]], Any] | None = None, **options: Any) -> RunResult:
    """Fan ``prompts`` out over ``models`` and record every call; blocks until done (works inside Jupyter).

    Args:
        prompts: anything :func:`llmlab.prompts.load_prompts` accepts (a bundled prompt-set name such as
            ``"quickstart"``, a CSV/JSONL path, a DataFrame, a list of strings, a PromptSet).
        models: LiteLLM model strings, sandbox models and ``@aliases`` (default: ``LLMLAB_MODELS`` or the sandbox).
        name, tags: labels for the run.
        template, category_column: fill ``template`` per row; take categories from that column.
        progress: show a progress line (a display in Jupyter) updated from the calling thread.
        on_result(row): called on llmlab's loop thread with each final row (change widget traits there; do not
            print or display); the row carries ``auto_score`` (the deterministic score, or None).
            on_delta(call_id, text_piece): called on the loop thread with each new piece of a
            streamed answer (the pieces of a call that then fails are not an answer: wait for on_result).
            on_tick(stats, partial_texts): called on the calling thread about every 0.1 s (``partial_texts``:
            call_id → text so far, filled only when ``on_delta`` is given).
        **options: :class:`RunOptions` fields (temperature, max_tokens, samples, system, concurrency,
            per_model_concurrency, timeout_s, max_attempts, max_retry_wait_s, rate_limits, fallbacks, budget_usd,
            cache, stream, extra_params).

    Returns a :class:`RunResult`. On ``KeyboardInterrupt`` the calls in flight are cancelled, finished calls stay
    recorded (cancelled ones as ``error_type = 'cancelled'`` rows), the run is marked cancelled and the interrupt
    propagates.

    Raises PromptSetError, ModelError, MissingKeyError, BudgetError, pydantic.ValidationError (bad option).
    """
    the_plan = prepare(prompts, models, store=store, template=template, category_column=category_column, **options)
    return execute(the_plan, name=name, tags=tags, progress=progress, on_result=on_result, on_delta=on_delta,
                   on_tick=on_tick)


async def arun(prompts: Any, models: Iterable[str] | str | None = None, *, name: str | None = None,
               tags: Sequence[str] = (), template: str | None = None, category_column: str | None = None,
               store: Store | None = None, progress: bool = False,
               on_result: Callable[[dict[str, Any]], Any] | None = None,
               on_delta: Callable[[str, str], Any] | None = None, **options: Any) -> RunResult:
    """The async form of :func:`run` (``await llmlab.arun(...)`` in a notebook cell or an async program).

    The work runs on llmlab's background loop; cancelling the awaiting task cancels it (completed calls stay).
    Same arguments, result and errors as :func:`run`.
    """
    the_plan = await asyncio.to_thread(prepare, prompts, models, store=store, template=template,
                                       category_column=category_column, **options)
    handle = RunHandle(the_plan, name=name, tags=tags, on_result=on_result, on_delta=on_delta)
    prog = _Progress(progress)

    def tick() -> None:
        if handle.stats is not None:
            prog.update(handle.stats)

    return await _loop.run_in_background_loop(handle.coroutine(), on_tick=tick)
