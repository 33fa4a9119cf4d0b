"""The fan-out: every planned call issued under the concurrency limits, retried, falling back, recorded."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llmlab._litellm import custom_pricing, litellm, redact
from llmlab.models import ModelSpec
from llmlab.store import Store, new_call_row, utc_now

log = logging.getLogger(__name__)
from llmlab.runner.limits import RateLimiter
from llmlab.runner.plan import Plan, PlannedCall, per_model_cap
from llmlab.runner.retry import (
    MalformedResponseError,
    StreamCutError,
    backoff_s,
    classify_attempt,
    retry_after_s,
)
from llmlab.runner.wire import Wire, attach, counting_client, detach, keep_anyio_root, with_deadline
from llmlab.runner.writer import BatchWriter

__all__ = [
    "RunStats",
]


# -- the fan-out -------------------------------------------------------------------------------------------
@dataclass
class RunStats:
    """Live counters of a run (read by progress displays; written only on the loop thread).

    ``requests``: provider requests sent (the sum of the rows' ``attempts``); ``retries``: requests beyond the
    first of each call (fallback hops included); ``fallbacks``: rows answered (or failed) after at least one
    fallback hop; ``queued_s``: total time calls waited for rate-limit budgets and Retry-After cool-downs;
    ``spare_workers``: worker processes this run took ready-started (:mod:`llmlab.runner.workers`).
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
    #: worker processes (``workers=K``) taken ready-started from the previous run's spares
    spare_workers: int = 0
    #: final rows per planned model (a fallback's answer counts for the model that was planned)
    done_by_model: dict[str, int] = field(default_factory=dict)
    errors_by_model: dict[str, int] = field(default_factory=dict)

    def count(self, row: dict[str, Any]) -> None:
        """Count one final call row (every driver, live or batch, counts through here)."""
        self.done += 1
        model = row["model"]
        self.done_by_model[model] = self.done_by_model.get(model, 0) + 1
        if row["status"] == "ok":
            self.ok += 1
        else:
            self.error += 1
            self.errors_by_model[model] = self.errors_by_model.get(model, 0) + 1
            key = row["error_type"] or "error"
            self.errors_by_type[key] = self.errors_by_type.get(key, 0) + 1
        if row["cached"]:
            self.cached += 1
        elif row["cost_usd"]:
            self.cost_usd += row["cost_usd"]
        attempts = row.get("attempts") or 0
        self.requests += attempts
        self.retries += max(0, attempts - 1)
        self.fallbacks += 1 if row.get("fallbacks_taken") else 0

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



class _Fanout:
    def __init__(self, the_plan: Plan, run_id: str, store: Store, *,
                 on_result: Callable[[dict[str, Any]], Any] | None = None,
                 on_delta: Callable[[str, str], Any] | None = None,
                 completion: Callable[..., Any] | None = None) -> None:
        self.plan, self.run_id, self.store = the_plan, run_id, store
        # the unit seam: a stand-in for ``litellm.acompletion`` (same arguments, same result shapes); when set,
        # no counting client is used and every attempt counts as one request
        self.completion = completion
        self.opts = the_plan.options
        self.on_result, self.on_delta = on_result, on_delta
        self.stats = RunStats(planned=the_plan.n_calls)
        self.writer = BatchWriter(store, interval_s=self.opts.flush_interval_s)
        self.global_sem = asyncio.Semaphore(self.opts.concurrency)
        self.sems: dict[str, asyncio.Semaphore] = {}
        self.limiters: dict[str, RateLimiter] = {}
        self.cooldown_until: dict[str, float] = {}
        self.spent_usd = 0.0
        self.partial: dict[str, str] = {}
        self.t0 = time.monotonic()
        # the secrets to redact from answers, as configured when the run starts (one environment scan per run,
        # not one per answer: issue 11)
        from llmlab.redaction import secrets_in_environment

        self.secrets = secrets_in_environment()
        self._custom_pricing: dict[str, dict[str, float]] = {}
        self._row_template: dict[str, Any] | None = None
        self.feed: Any = None  # a worker process's source of more calls (workers.Feed), or None

    def _sem(self, model: str) -> Any:
        """The model's opt-in concurrency cap (a semaphore), or a no-op when it has none."""
        if model not in self.sems:
            n = per_model_cap(self.opts, model)
            self.sems[model] = asyncio.Semaphore(n) if n is not None else contextlib.nullcontext()
        return self.sems[model]

    def _limiter(self, model: str) -> RateLimiter:
        if model not in self.limiters:
            lim = self.opts.rate_limits.get(model, {})
            self.limiters[model] = RateLimiter(lim.get("rpm"), lim.get("tpm"), window_s=self.opts.rate_limit_window_s)
        return self.limiters[model]

    def _pricing(self, spec: ModelSpec) -> dict[str, float]:
        """LiteLLM's custom-pricing arguments for ``spec`` (:func:`llmlab._litellm.custom_pricing`), once per run."""
        got = self._custom_pricing.get(spec.name)
        if got is None:
            got = self._custom_pricing[spec.name] = custom_pricing(
                spec.litellm_model, spec.input_cost_per_token, spec.output_cost_per_token)
        return got

    def _chain(self, spec: ModelSpec) -> list[ModelSpec]:
        return [spec, *self.plan.fallback_specs.get(spec.name, [])]

    def _base_row(self, call: PlannedCall) -> dict[str, Any]:
        if self._row_template is None:  # checked once per run by new_call_row, then copied (about 0.3 ms a call)
            self._row_template = new_call_row(call_id="", run_id=self.run_id, prompt_id="", sample_index=0,
                                              model="", cache_key=None)
        row = dict(self._row_template)
        row.update(call_id=call.call_id, prompt_id=call.prompt.prompt_id, sample_index=call.sample_index,
                   model=call.spec.name, cache_key=call.cache_key)
        return row

    def _scores_for(self, row: dict[str, Any], call: PlannedCall) -> list[dict[str, Any]]:
        p = call.prompt
        if not p.scorer:
            return []
        from llmlab.scoring.checks import scorer_version
        from llmlab.scoring.structured import score_call

        value, comment = score_call(p, row)
        if value is None:
            return []
        return [{"run_id": self.run_id, "call_id": row["call_id"], "prompt_id": p.prompt_id, "model": row["model"],
                 "kind": "auto", "scorer": p.scorer, "score": float(value), "raw_value": float(value),
                 "comment": comment, "rationale": comment, "created_at_utc": utc_now(),
                 "version": scorer_version(p.scorer)}]

    def _finish(self, call: PlannedCall, row: dict[str, Any]) -> None:
        row["created_at_utc"] = utc_now()
        try:
            scores = self._scores_for(row, call)
        except Exception:  # noqa: BLE001 - a scorer bug must not lose the row
            log.exception("llmlab: scoring %s failed; the row is kept without a score", call.call_id)
            scores = []
        self.partial.pop(call.call_id, None)
        self.record(row, scores)

    def record(self, row: dict[str, Any], scores: list[dict[str, Any]]) -> None:
        """Write, count and report one final row (its scores made): the local fan-out's and the worker
        processes' rows (:mod:`llmlab.runner.workers`) all pass here."""
        self.writer.add(row, scores)
        self.stats.count(row)
        if self.on_result is not None:
            try:
                self.on_result({**row, "auto_score": scores[0]["score"] if scores else None})
            except Exception:  # noqa: BLE001 - a display callback must not lose a row
                log.exception("llmlab: on_result callback failed")

    def _from_cache(self, call: PlannedCall, hit: dict[str, Any]) -> dict[str, Any]:
        row = self._base_row(call)
        for k in ("answered_by", "latency_ms", "ttft_ms", "input_tokens", "output_tokens", "cost_usd", "response",
                  "finish_reason", "tool_calls", "response_mode"):
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
        """One attempt: a provider request, then (multi-step mode: ``tool_steps`` > 0 and the prompt has scripted
        ``tool_results``) up to ``tool_steps`` more, each sending the model's tool calls back with the scripted
        results. Latency, tokens and cost add up over the steps; ``tool_calls`` lists every call (with its
        ``step``); the response is the last step's. A failed step fails the attempt (retried as a whole)."""
        steps = self.opts.tool_steps if call.prompt.tool_results else 0
        total_requests = 0
        try:
            result = await self._request_once(spec, call, entry)
            total_requests += entry.get("http_requests", 1)
            if not steps:
                return result
            calls = _with_step(result["tool_calls"], 0)
            messages = list(call.messages)
            for step in range(1, steps + 1):
                if not result["tool_calls"]:
                    break
                messages += _tool_turns(json.loads(result["tool_calls"]), call.prompt.tool_results, step)
                nxt = await self._request_once(spec, dataclasses.replace(call, messages=messages), entry)
                total_requests += entry.get("http_requests", 1)
                calls += _with_step(nxt["tool_calls"], step)
                for k in ("latency_ms", "input_tokens", "output_tokens"):
                    nxt[k] = result[k] + nxt[k]
                nxt["cost_usd"] = spec.cost_usd(nxt["input_tokens"], nxt["output_tokens"])
                nxt["ttft_ms"] = result["ttft_ms"]
                result = nxt
            result["tool_calls"] = json.dumps(calls, ensure_ascii=False) if calls else None
            return result
        except BaseException:
            total_requests += entry.get("http_requests", 1) if steps else 0
            raise
        finally:
            if steps:
                entry["http_requests"] = total_requests

    async def _request_once(self, spec: ModelSpec, call: PlannedCall, entry: dict[str, Any]) -> dict[str, Any]:
        """One provider request. Returns the result fields of the row; raises the provider's error, or
        StreamCutError / MalformedResponseError for a stream cut mid-way or an unusable body, or TimeoutError.

        Sets ``entry["http_requests"]`` (0 or 1) when the request went through a counting client."""
        ll = litellm()
        kwargs = spec.call_kwargs()
        kwargs.update(self._pricing(spec))
        kwargs.update(self.opts.request_params())
        kwargs.update(call.call_params)
        kwargs.update(messages=call.messages, timeout=self.opts.timeout_s, num_retries=0, max_retries=0)
        wire: Wire | None = None
        token = None
        if "client" not in kwargs and self.completion is None:
            client = counting_client(spec, kwargs)
            if client is not None:
                kwargs["client"] = client
                wire = Wire()
                token = attach(wire)
        entry["_wire"] = wire
        acompletion = self.completion or ll.acompletion
        t0 = time.perf_counter()
        ttft_ms = None
        usage = None
        finish_reason = None
        parts: list[str] = []
        tools = _ToolCalls()
        try:
            if not self.opts.stream:
                resp = await with_deadline(acompletion(**kwargs), self.opts.timeout_s, wire)
                text = resp.choices[0].message.content or ""
                tools.add_message(resp.choices[0].message)
                finish_reason = resp.choices[0].finish_reason
                usage = getattr(resp, "usage", None)
            else:
                kwargs.update(stream=True, stream_options={"include_usage": True})

                async def consume() -> None:
                    nonlocal ttft_ms, usage, finish_reason
                    stream = await acompletion(**kwargs)
                    try:
                        async for chunk in stream:
                            u = getattr(chunk, "usage", None)
                            if u is not None and getattr(u, "completion_tokens", None) is not None:
                                usage = u
                            if not chunk.choices:
                                continue
                            choice = chunk.choices[0]
                            if tools.add_delta(choice.delta) and ttft_ms is None:
                                ttft_ms = (time.perf_counter() - t0) * 1000
                            delta = getattr(choice.delta, "content", None)
                            if delta:
                                if ttft_ms is None:  # when the chunk holding it arrived, where seen
                                    ttft_ms = ((wire.elapsed_ms(wire.last_byte_at) if wire is not None else None)
                                               or (time.perf_counter() - t0) * 1000)
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

                await with_deadline(consume(), self.opts.timeout_s, wire)
                text = "".join(parts)
                if finish_reason is None:
                    raise StreamCutError(f"{spec.name}: the stream ended after {len(text)} characters without a "
                                         "finish reason")
                if not text and usage is None and not tools.calls:
                    raise MalformedResponseError(f"{spec.name}: the stream ended with no content and no usage "
                                                 "(undecodable events?)")
        finally:
            if token is not None:
                detach(token)
            if wire is not None:
                entry["http_requests"] = wire.sent
                entry.update(wire.to_log())
        # send → last byte on the wire where it was seen, else as the caller saw it
        latency_ms = ((wire.elapsed_ms(wire.last_byte_at or wire.headers_at) if wire is not None else None)
                      or (time.perf_counter() - t0) * 1000)
        in_tok = getattr(usage, "prompt_tokens", None) if usage is not None else None
        out_tok = getattr(usage, "completion_tokens", None) if usage is not None else None
        if in_tok is None:
            in_tok = ll.token_counter(model=spec.litellm_model, messages=call.messages)
        if out_tok is None:
            out_tok = ll.token_counter(model=spec.litellm_model, text=text, count_response_tokens=True)
        # a key echoed in an answer is never stored (the token counts above are of the real answer)
        return {"response": redact(text, self.secrets), "latency_ms": latency_ms, "ttft_ms": ttft_ms, "input_tokens": int(in_tok),
                "output_tokens": int(out_tok), "finish_reason": finish_reason,
                "cost_usd": spec.cost_usd(int(in_tok), int(out_tok)), "tool_calls": tools.to_json(self.secrets),
                "response_mode": response_mode(spec, call.call_params.get("response_format"))}

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
                        entry.pop("_wire", None)
                        entry["status"] = "cancelled"
                        raise
                    except Exception as exc:  # noqa: BLE001 - every provider failure becomes data
                        wire = entry.pop("_wire", None)
                        retryable, etype, status = classify_attempt(exc, wire)
                        last_exc = exc
                        ra = wire.retry_after_s() if wire is not None and wire.responded else retry_after_s(exc)
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
                        backoff = backoff_s(attempt, self.opts.backoff_base_s, self.opts.backoff_max_s,
                                            random.random())
                        wait = max(backoff, ra or 0.0)
                        if wait_total_s + wait > self.opts.max_retry_wait_s:
                            entry["gave_up"] = "max_retry_wait_s"
                            break
                        entry["wait_ms"] = round(wait * 1000, 1)
                        await asyncio.sleep(wait)
                        wait_total_s += wait
                        continue
                    entry.pop("_wire", None)
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

    def _cancelled_row(self, call: PlannedCall,
                       message: str = "cancelled before it was sent (interrupt or cancel)",
                       error_type: str = "cancelled") -> dict[str, Any]:
        row = self._base_row(call)
        row.update(error_type=error_type, error_message=message)
        return row

    async def execute(self) -> RunStats:
        """Issue every planned call with a bounded pool of workers (``concurrency`` of them: no per-call task, so
        the cost per call does not grow with the run), record each as one final row, and close the writer.

        In a worker process (``workers=K``) ``self.feed`` is the source of more calls than the plan's first
        chunk (:class:`llmlab.runner.workers.Feed`); otherwise the plan's calls are all there is.

        A cancellation records the calls in flight and those never started as ``cancelled`` rows; an unexpected
        error in llmlab itself cancels the rest the same way and is raised after the writer flushed."""
        self.writer.start()
        keep_anyio_root()
        pending = collections.deque(self.plan.calls)  # one shared queue: each call is taken exactly once
        feed = self.feed
        if feed is not None:
            feed.attach(pending)

        async def worker() -> None:
            while True:
                while pending:
                    call = pending.popleft()
                    if feed is not None:
                        feed.taken()
                    await self._one(call)
                if feed is None or not await feed.wait():
                    return

        n_workers = max(1, self.opts.concurrency if feed is not None else min(self.opts.concurrency, len(pending)))
        try:
            async with asyncio.TaskGroup() as tg:
                for _ in range(n_workers):
                    tg.create_task(worker())
        except asyncio.CancelledError:
            self.stats.cancelled = True
            raise
        except BaseExceptionGroup as group:
            raise group.exceptions[0] from None
        finally:
            while pending:  # never started (cancelled, or a sibling failed)
                call = pending.popleft()
                self._finish(call, self._cancelled_row(call))
            await asyncio.shield(self.writer.close())
        return self.stats


class _ToolCalls:
    """The tool calls of one answer, from a whole message or assembled from stream deltas (by index)."""

    def __init__(self) -> None:
        self.calls: dict[int, dict[str, Any]] = {}

    def add_message(self, message: Any) -> None:
        for i, tc in enumerate(getattr(message, "tool_calls", None) or []):
            fn = getattr(tc, "function", None)
            self.calls[i] = {"id": getattr(tc, "id", None), "name": getattr(fn, "name", None),
                             "arguments": getattr(fn, "arguments", None) or ""}

    def add_delta(self, delta: Any) -> bool:
        """Add a stream delta's tool-call fragments; True when it had any."""
        pieces = getattr(delta, "tool_calls", None) or []
        for k, tc in enumerate(pieces):
            index = getattr(tc, "index", None)
            index = k if index is None else int(index)
            entry = self.calls.setdefault(index, {"id": None, "name": None, "arguments": ""})
            fn = getattr(tc, "function", None)
            if getattr(tc, "id", None):
                entry["id"] = tc.id
            if getattr(fn, "name", None):
                entry["name"] = fn.name
            if getattr(fn, "arguments", None):
                entry["arguments"] += fn.arguments
        return bool(pieces)

    def to_json(self, secrets: tuple[tuple[str, str], ...] | None = None) -> str | None:
        """``[{"id", "name", "arguments"}]`` as JSON (arguments decoded when they are JSON), None for no call."""
        if not self.calls:
            return None
        out = []
        for _, c in sorted(self.calls.items()):
            args: Any = c["arguments"]
            try:
                args = json.loads(args) if isinstance(args, str) and args.strip() else (args or {})
            except ValueError:
                pass  # kept as the raw text the model wrote: a tool_call scorer reports it
            out.append({"id": c["id"], "name": c["name"], "arguments": args})
        return redact(json.dumps(out, ensure_ascii=False), secrets)


def _with_step(tool_calls: str | None, step: int) -> list[dict[str, Any]]:
    return [{**c, "step": step} for c in json.loads(tool_calls)] if tool_calls else []


def _tool_turns(calls: list[dict[str, Any]], results: dict[str, Any], step: int) -> list[dict[str, Any]]:
    """The assistant turn that made ``calls`` and one tool turn per call with its scripted result (a function the
    prompt scripted no result for gets ``{"error": "no scripted result for NAME"}``: no code runs)."""
    assistant = {"role": "assistant", "content": None, "tool_calls": [
        {"id": c.get("id") or f"call_{step}_{i}", "type": "function",
         "function": {"name": c["name"], "arguments": c["arguments"] if isinstance(c["arguments"], str)
                      else json.dumps(c["arguments"])}} for i, c in enumerate(calls)]}
    turns: list[dict[str, Any]] = [assistant]
    for tc, c in zip(assistant["tool_calls"], calls, strict=True):
        value = results.get(c["name"], {"error": f"no scripted result for {c['name']}"})
        turns.append({"role": "tool", "tool_call_id": tc["id"],
                      "content": value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)})
    return turns


def response_mode(spec: ModelSpec, response_format: Any) -> str | None:
    """How LiteLLM delivers a ``response_format`` to the model's provider (recorded as ``response_mode``):
    ``json_schema`` (passed as it is: OpenAI and OpenAI-compatible providers), ``output_format`` (Anthropic's
    native structured output, for the models LiteLLM's model map marks ``supports_native_structured_output``),
    ``json_tool`` (LiteLLM's fallback for other Anthropic models: a forced tool whose input is the schema,
    returned as the answer text), ``json_object`` / ``text`` as asked; None without a response format."""
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind != "json_schema":
        return str(kind)
    if spec.provider == "anthropic":
        try:
            native = bool(litellm().supports_native_structured_output(model=spec.litellm_model,
                                                                      custom_llm_provider="anthropic"))
        except Exception:  # noqa: BLE001 - unknown to LiteLLM's model map: not native
            native = False
        return "output_format" if native else "json_tool"
    return "json_schema"


def _isnan(v: Any) -> bool:
    try:
        return v is None or v != v
    except Exception:  # noqa: BLE001
        return False

