"""The fan-out: every (prompt, model, sample) of a run, concurrently, through LiteLLM.

``run(...)`` (synchronous, for scripts and notebook cells) and ``await arun(...)`` plan the calls, look each one
up in the store's cache, issue the rest under a global concurrency limit, per-model limits and client-side
RPM/TPM budgets, retry retryable errors (429, 5xx, timeouts, connection resets, malformed bodies, streams cut
mid-way) with exponential backoff and jitter honouring ``Retry-After``, never retry 400/401/403/404/context-window
errors, walk a fallback chain, and record every call as exactly one final row (``ok`` or ``error``) through one
batch writer that flushes at least every half second. Scores from the prompt's deterministic scorer are recorded
with the row.

Timing: ``latency_ms`` is the wall time of the successful request (send to last byte), ``ttft_ms`` the time to
the first content token (requests are streamed), ``retry_wait_ms`` the time spent waiting between attempts.
Costs: tokens × the model's price (see :mod:`llmlab.models`); ``None`` when the price is unknown.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from llmlab import _loop
from llmlab._litellm import litellm, litellm_version, redact
from llmlab.errors import BudgetError, LLMLabError
from llmlab.models import ModelSpec, expand, resolve_all
from llmlab.store import Store, new_id, utc_now

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})
NON_RETRYABLE_STATUS = frozenset({400, 401, 402, 403, 404, 413, 422})


class StreamCutError(LLMLabError):
    """A streamed response ended before the provider said it was complete (no finish reason): retryable."""


class RunOptions(BaseModel):
    """Every setting of a run (validated; bad values raise ``pydantic.ValidationError`` naming the field).

    Units: seconds for ``*_s``, USD for ``budget_usd``, requests and tokens per minute for rate limits.
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
    fallbacks: dict[str, list[str]] = Field(default_factory=dict)
    budget_usd: float | None = Field(None, gt=0)
    cache: bool = True
    stream: bool = True
    extra_params: dict[str, Any] = Field(default_factory=dict)

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
    """Client-side RPM and TPM budget for one deployment over a sliding 60 s window (token-aware: each request
    counts its prompt's estimated tokens plus ``max_tokens``). A request larger than the whole TPM budget is let
    through alone when the window is empty, rather than blocking forever."""

    def __init__(self, rpm: float | None = None, tpm: float | None = None, window_s: float = 60.0) -> None:
        self.rpm, self.tpm, self.window_s = rpm, tpm, window_s
        self._events: deque[tuple[float, int]] = deque()
        self._lock = asyncio.Lock()
        self.waited_s = 0.0

    def _prune(self, now: float) -> None:
        while self._events and now - self._events[0][0] >= self.window_s:
            self._events.popleft()

    async def acquire(self, tokens: int) -> None:
        if not self.rpm and not self.tpm:
            return
        async with self._lock:
            while True:
                now = time.monotonic()
                self._prune(now)
                used_tokens = sum(t for _, t in self._events)
                ok_rpm = not self.rpm or len(self._events) < self.rpm
                ok_tpm = not self.tpm or used_tokens + tokens <= self.tpm or not self._events
                if ok_rpm and ok_tpm:
                    self._events.append((now, tokens))
                    return
                wait = self._events[0][0] + self.window_s - now + 0.001
                self.waited_s += wait
                await asyncio.sleep(wait)


# -- error classification ----------------------------------------------------------------------------------
def _status(exc: BaseException) -> int | None:
    code = getattr(exc, "status_code", None)
    try:
        return int(code) if code is not None else None
    except (TypeError, ValueError):
        return None


def retry_after_s(exc: BaseException) -> float | None:
    """The ``Retry-After`` (seconds or ``retry-after-ms``) a provider sent with an error, if any."""
    candidates = []
    resp = getattr(exc, "response", None)
    if resp is not None and getattr(resp, "headers", None) is not None:
        candidates.append(resp.headers)
    for attr in ("litellm_response_headers", "headers"):
        h = getattr(exc, attr, None)
        if h:
            candidates.append(h)
    for headers in candidates:
        try:
            ms = headers.get("retry-after-ms") or headers.get("Retry-After-Ms")
            if ms:
                return float(ms) / 1000
            val = headers.get("retry-after") or headers.get("Retry-After")
            if val:
                return max(0.0, float(val))
        except (TypeError, ValueError, AttributeError):
            continue
    return None


def classify_error(exc: BaseException) -> tuple[bool, str, int | None]:
    """(retryable, error_type, http_status) for an exception raised by one provider request."""
    ll = litellm()
    status = _status(exc)
    etype = type(exc).__name__
    if isinstance(exc, ll.ContextWindowExceededError):
        return False, "ContextWindowExceededError", status or 400
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError, ll.Timeout)):
        return True, "Timeout", status or 408
    if isinstance(exc, StreamCutError):
        return True, etype, status
    if status in RETRYABLE_STATUS:
        return True, etype, status
    if status in NON_RETRYABLE_STATUS:
        return False, etype, status
    if isinstance(exc, (ll.APIConnectionError, ll.InternalServerError, ll.ServiceUnavailableError,
                        ll.APIError, ConnectionError, json.JSONDecodeError)):
        return True, etype, status
    if isinstance(exc, ll.BadRequestError):
        return False, etype, status or 400
    return False, etype, status


# -- the fan-out -------------------------------------------------------------------------------------------
@dataclass
class RunStats:
    """Live counters of a run (read by progress displays; written only on the loop thread)."""

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
    """The one writer of a run: buffers call and score rows and bulk-inserts them at least every ``interval_s``."""

    def __init__(self, store: Store, interval_s: float = 0.5) -> None:
        self.store, self.interval_s = store, interval_s
        self._calls: list[dict[str, Any]] = []
        self._scores: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self.rows_written = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    def add(self, row: dict[str, Any], scores: Sequence[dict[str, Any]] = ()) -> None:
        self._calls.append(row)
        self._scores.extend(scores)

    async def _flush(self) -> None:
        calls, scores = self._calls, self._scores
        self._calls, self._scores = [], []
        if not calls and not scores:
            return
        try:
            await asyncio.to_thread(self._write, calls, scores)
            self.rows_written += len(calls)
        except Exception:
            log.exception("llmlab: store write failed; %d rows kept for the next flush", len(calls))
            self._calls[:0], self._scores[:0] = calls, scores

    def _write(self, calls: list[dict[str, Any]], scores: list[dict[str, Any]]) -> None:
        self.store.append_calls(calls)
        self.store.append_scores(scores)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self._flush()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self._flush()
        if self._calls:  # one more try after a failed write
            await asyncio.to_thread(self._write, self._calls, self._scores)
            self.rows_written += len(self._calls)
            self._calls, self._scores = [], []


class _Fanout:
    def __init__(self, the_plan: Plan, run_id: str, store: Store, *,
                 on_result: Callable[[dict[str, Any]], Any] | None = None,
                 on_delta: Callable[[str, str], Any] | None = None) -> None:
        self.plan, self.run_id, self.store = the_plan, run_id, store
        self.opts = the_plan.options
        self.on_result, self.on_delta = on_result, on_delta
        self.stats = RunStats(planned=the_plan.n_calls)
        self.writer = BatchWriter(store)
        self.global_sem = asyncio.Semaphore(self.opts.concurrency)
        self.sems: dict[str, asyncio.Semaphore] = {}
        self.limiters: dict[str, RateLimiter] = {}
        self.cooldown_until: dict[str, float] = {}
        self.spent_usd = 0.0
        self._fallback_specs: dict[str, list[ModelSpec]] = {}
        self.partial: dict[str, str] = {}

    def _sem(self, model: str) -> asyncio.Semaphore:
        if model not in self.sems:
            pmc = self.opts.per_model_concurrency
            n = pmc.get(model, 8) if isinstance(pmc, dict) else pmc
            self.sems[model] = asyncio.Semaphore(max(1, int(n)))
        return self.sems[model]

    def _limiter(self, model: str) -> RateLimiter:
        if model not in self.limiters:
            lim = self.opts.rate_limits.get(model, {})
            self.limiters[model] = RateLimiter(lim.get("rpm"), lim.get("tpm"))
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
        self.writer.add(row, self._scores_for(row, call))
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
        s.retries += max(0, row["attempts"] - 1)
        s.fallbacks += 1 if row["fallbacks_taken"] else 0
        self.partial.pop(call.call_id, None)
        if self.on_result is not None:
            try:
                self.on_result(dict(row))
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

    async def _request(self, spec: ModelSpec, call: PlannedCall) -> dict[str, Any]:
        ll = litellm()
        kwargs = spec.call_kwargs()
        kwargs.update(self.opts.request_params())
        kwargs.update(messages=call.messages, timeout=self.opts.timeout_s, num_retries=0, max_retries=0)
        t0 = time.perf_counter()
        ttft_ms = None
        usage = None
        finish_reason = None
        if not self.opts.stream:
            resp = await asyncio.wait_for(ll.acompletion(**kwargs), self.opts.timeout_s)
            text = resp.choices[0].message.content or ""
            finish_reason = resp.choices[0].finish_reason
            usage = getattr(resp, "usage", None)
        else:
            kwargs.update(stream=True, stream_options={"include_usage": True})
            parts: list[str] = []

            async def consume() -> None:
                nonlocal ttft_ms, usage, finish_reason
                stream = await ll.acompletion(**kwargs)
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
                        if self.on_delta is not None:
                            self.partial[call.call_id] = "".join(parts)
                    if choice.finish_reason:
                        finish_reason = choice.finish_reason

            await asyncio.wait_for(consume(), self.opts.timeout_s)
            text = "".join(parts)
            if finish_reason is None:
                raise StreamCutError(f"{spec.name}: the stream ended after {len(text)} characters without a finish reason")
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

    async def _wait_cooldown(self, model: str) -> float:
        waited = 0.0
        while True:
            until = self.cooldown_until.get(model, 0.0)
            now = time.monotonic()
            if until <= now:
                return waited
            await asyncio.sleep(until - now)
            waited += until - now

    async def _one(self, call: PlannedCall) -> None:
        hit = self.plan.cached.get(call.cache_key) if self.opts.cache else None
        if hit is not None:
            self._finish(call, self._from_cache(call, hit))
            return
        row = self._base_row(call)
        log_entries: list[dict[str, Any]] = []
        wait_total_s = 0.0
        last_exc: BaseException | None = None
        try:
            for hop, spec in enumerate(self._chain(call.spec)):
                for attempt in range(1, self.opts.max_attempts + 1):
                    if self.opts.budget_usd is not None and self.spent_usd >= self.opts.budget_usd:
                        row.update(error_type="BudgetExceeded", error_message=(
                            f"budget of ${self.opts.budget_usd:.4f} spent (${self.spent_usd:.4f}); call not issued"))
                        return
                    wait_total_s += await self._wait_cooldown(spec.name)
                    await self._limiter(spec.name).acquire(call.est_input_tokens + (self.opts.max_tokens or 0))
                    row["attempts"] += 1
                    entry: dict[str, Any] = {"model": spec.name, "attempt": attempt}
                    try:
                        async with self.global_sem, self._sem(spec.name):
                            wait_total_s += await self._wait_cooldown(spec.name)
                            result = await self._request(spec, call)
                    except asyncio.CancelledError:
                        entry.update(status="cancelled")
                        log_entries.append(entry)
                        raise
                    except Exception as exc:  # noqa: BLE001 - every provider failure becomes data
                        retryable, etype, status = classify_error(exc)
                        last_exc = exc
                        ra = retry_after_s(exc)
                        entry.update(status="error", error_type=etype, http_status=status, retry_after_s=ra)
                        log_entries.append(entry)
                        row.update(error_type=etype, http_status=status,
                                   error_message=(redact(str(exc)) or etype)[:2000])
                        if ra is not None:
                            self.cooldown_until[spec.name] = max(self.cooldown_until.get(spec.name, 0.0),
                                                                 time.monotonic() + ra)
                        if not retryable or attempt >= self.opts.max_attempts:
                            break
                        backoff = min(self.opts.backoff_max_s, self.opts.backoff_base_s * 2 ** (attempt - 1))
                        backoff *= 0.5 + random.random()
                        wait = max(backoff, ra or 0.0)
                        if wait_total_s + wait > self.opts.max_retry_wait_s:
                            entry["gave_up"] = "max_retry_wait_s"
                            break
                        entry["wait_ms"] = wait * 1000
                        await asyncio.sleep(wait)
                        wait_total_s += wait
                        continue
                    entry.update(status="ok", latency_ms=result["latency_ms"])
                    log_entries.append(entry)
                    row.update(result)
                    row.update(status="ok", answered_by=spec.name, fallbacks_taken=hop, error_type=None,
                               http_status=None, error_message=None)
                    if result["cost_usd"]:
                        self.spent_usd += result["cost_usd"]
                    return
                if hop + 1 < len(self._chain(call.spec)):
                    log.info("llmlab: %s failed (%s); falling back", spec.name, row["error_type"])
        except asyncio.CancelledError:
            row.update(status="error", error_type="cancelled",
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


def _prepare(prompts: Any, models: Any, store: Store | None, template: str | None, category_column: str | None,
             opts: dict[str, Any]) -> tuple[Plan, Store]:
    store = store or Store()
    options = RunOptions(**opts)
    the_plan = plan(prompts, models, options=options, store=store, template=template, category_column=category_column)
    est = the_plan.estimate_cost_usd()
    if options.budget_usd is not None and est is not None and est > options.budget_usd:
        raise BudgetError(
            f"estimated cost ${est:.4f} exceeds the budget ${options.budget_usd:.4f} "
            f"({the_plan.n_calls - the_plan.n_cached} calls to make); raise the budget or run fewer prompts/models"
        )
    return the_plan, store


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
            print or display). on_tick(stats, partial_texts): called on the calling thread about every 0.1 s.
        **options: :class:`RunOptions` fields (temperature, max_tokens, samples, system, concurrency,
            per_model_concurrency, timeout_s, max_attempts, max_retry_wait_s, rate_limits, fallbacks, budget_usd,
            cache, stream, extra_params).

    Returns a :class:`RunResult`. On ``KeyboardInterrupt`` the calls in flight are cancelled, finished calls stay
    recorded (cancelled ones as ``error_type = 'cancelled'`` rows), the run is marked cancelled and the interrupt
    propagates.

    Raises PromptSetError, ModelError, MissingKeyError, BudgetError, pydantic.ValidationError (bad option).
    """
    the_plan, store = _prepare(prompts, models, store, template, category_column, options)
    holder: dict[str, Any] = {}
    prog = _Progress(progress)

    def tick() -> None:
        fan = holder.get("fanout")
        if fan is None:
            return
        prog.update(fan.stats)
        if on_tick is not None:
            on_tick(fan.stats, dict(fan.partial))

    result = _loop.run_sync(
        _arun_impl(the_plan, store, name=name, tags=tags, on_result=on_result, on_delta=on_delta, holder=holder),
        on_tick=tick,
    )
    if result.stats is not None:
        prog.update(result.stats, final=True)
    return result


async def arun(prompts: Any, models: Iterable[str] | str | None = None, *, name: str | None = None,
               tags: Sequence[str] = (), template: str | None = None, category_column: str | None = None,
               store: Store | None = None, progress: bool = False,
               on_result: Callable[[dict[str, Any]], Any] | None = None,
               on_delta: Callable[[str, str], Any] | None = None, **options: Any) -> RunResult:
    """The async form of :func:`run` (``await llmlab.arun(...)`` in a notebook cell or an async program).

    The work runs on llmlab's background loop; cancelling the awaiting task cancels it (completed calls stay).
    Same arguments, result and errors as :func:`run`.
    """
    the_plan, store = await asyncio.to_thread(_prepare, prompts, models, store, template, category_column, options)
    holder: dict[str, Any] = {}
    prog = _Progress(progress)

    def tick() -> None:
        fan = holder.get("fanout")
        if fan is not None:
            prog.update(fan.stats)

    return await _loop.run_in_background_loop(
        _arun_impl(the_plan, store, name=name, tags=tags, on_result=on_result, on_delta=on_delta, holder=holder),
        on_tick=tick,
    )
