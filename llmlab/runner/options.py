"""Every setting of a run, validated, with each default written once (:class:`RunOptions`)."""

from __future__ import annotations

import difflib
import logging
import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from llmlab.errors import OptionsError

log = logging.getLogger(__name__)
from llmlab.routing.litellm_config import fallbacks_from_config

__all__ = [
    "RunOptions",
    "options_from",
]


class RunOptions(BaseModel):
    """Every setting of a run (validated; bad values raise ``pydantic.ValidationError`` naming the field).

    Output-shaping (part of the cache key): ``temperature``, ``max_tokens``, ``samples``, ``system``,
    ``extra_params``, and for every prompt whose row does not set its own: ``response_format`` (a JSON Schema dict,
    an OpenAI ``response_format`` dict, or a pydantic model class), ``tools`` (OpenAI function tools) and
    ``tool_choice`` (see :mod:`llmlab.prompts.conversations`; checked when the run is planned); ``tool_steps``:
    the multi-step mode, how many times at most a call's tool calls are answered with the prompt's scripted
    ``tool_results`` and sent back (0: off; only prompts with ``tool_results``; no code runs).

    Reliability (see the README's reliability section):

    - ``concurrency``: calls in flight, all models together (default 16): it means what it says.
      ``per_model_concurrency``: an opt-in cap per model (an int, or ``{model: int}``; default None: no cap;
      models missing from a dict are not capped). :class:`~llmlab.runner.plan.Plan` shows the caps.
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
    - ``budget_usd``: stop issuing calls once this much was spent (USD); ``cache``: reuse stored answers.
    - ``stream``: stream responses (default True), which is what records ``ttft_ms`` (time to first token).
      Its price is LiteLLM's streaming path: on a local server, 200 ms latency, concurrency 64, a streamed call
      costs about 2.5-3 x the CPU of a non-streamed one (benchmarks/fanout.py: plain
      ``litellm.acompletion(stream=True)`` against ``stream=False``), so a CPU-bound fan-out takes about twice
      as long. ``stream=False`` gives the non-streamed speed (1.00 x plain ``litellm.acompletion``'s wall time and
      1.09 x its CPU at 2,000 calls on an idle 2-core machine; up to 1.4 x under heavy load) and leaves
      ``ttft_ms`` empty.
    - ``workers``: processes for the fan-out (default None: automatic, one process below 20,000 calls to make;
      see :mod:`llmlab.runner.workers`). ``workers=K`` runs K worker processes, each with its own event loop
      and a K-th of ``concurrency``, ``per_model_concurrency``, ``rate_limits`` and ``budget_usd``; the parent
      keeps the store writer and the cache, and every planned call is still exactly one row. The calls are
      handed out in chunks to the worker that asks, so a slower worker does fewer of them. Not with
      ``on_delta`` (live text stays in one process). A run in workers leaves as many spare workers (LiteLLM
      imported, waiting) for the next run in the same environment, which then starts at once; they end after
      300 s unused (``LLMLAB_WORKER_SPARE_IDLE_S``) or with the process; ``LLMLAB_WORKER_SPARES=0`` turns that off.

    Batch mode (:mod:`llmlab.runner.batch`, the README's "Scale" section): ``mode="batch"`` sends the calls
    through the providers' batch APIs (OpenAI, Anthropic: about half the price, results within 24 h) instead of
    live requests; ``batch_max_requests`` caps the requests of one provider batch (default: the provider's
    limit; larger plans are split); ``batch_poll_s``: seconds between status checks; ``batch_wait``: block
    until every batch is collected (False: submit, record, return; ``llmlab.resume(run)`` collects later).
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    temperature: float | None = Field(0.0, ge=0, le=2)
    max_tokens: int | None = Field(512, ge=1)
    samples: int = Field(1, ge=1, le=1000)
    system: str | None = None
    concurrency: int = Field(16, ge=1, le=1024)
    per_model_concurrency: int | dict[str, int] | None = None
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
    response_format: Any = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    tool_steps: int = Field(0, ge=0, le=10)
    mode: Literal["live", "batch"] = "live"
    batch_max_requests: int | None = Field(None, ge=1)
    batch_poll_s: float = Field(30.0, gt=0)
    batch_wait: bool = True
    workers: int | None = Field(None, ge=1, le=64)

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



def options_from(_flags: dict[str, str] | None = None, **options: Any) -> RunOptions:
    """Validate run options into :class:`RunOptions`, with errors in llmlab's one voice.

    ``_flags`` maps an option to the name the user typed (``{"timeout_s": "--timeout"}`` for the CLI and the
    magic), so every surface reports the same mistake with the same one-line message.

    Raises :class:`~llmlab.errors.OptionsError` (a ``ValueError``) naming every bad option: an unknown name with
    the closest known one (``unknown option 'temprature' (did you mean 'temperature'?)``), or a bad value with
    what is accepted and what was given. ``exc.problems`` holds ``[(option, message)]``.
    """
    try:
        return RunOptions(**options)
    except ValidationError as exc:
        raise _translate(exc, _flags or {}) from None


def _translate(exc: ValidationError, flags: dict[str, str]) -> OptionsError:
    known = sorted(RunOptions.model_fields)
    problems: list[tuple[str, str]] = []
    for e in exc.errors():
        loc = [str(x) for x in e.get("loc", ()) if not str(x).startswith("function-")]
        field = loc[0] if loc else "?"
        shown = flags.get(field, field)
        if e.get("type") == "extra_forbidden":
            close = difflib.get_close_matches(field, known, n=1)
            hint = f" (did you mean {flags.get(close[0], close[0])!r}?)" if close else ""
            problems.append((field, f"unknown option {shown!r}{hint}; run options: {', '.join(known)}"))
            continue
        msg = str(e.get("msg", "invalid value")).removeprefix("Value error, ")
        where = ".".join([shown, *loc[1:]]) if len(loc) > 1 else shown
        got = e.get("input")
        got_text = "" if isinstance(got, dict) or repr(got) in msg else f" (got {got!r})"
        # a validator's own message may already name the option (rate_limits['m']: ...)
        problems.append((field, f"{msg}{got_text}" if msg.startswith(field) else f"{where}: {msg}{got_text}"))
    err = OptionsError("; ".join(m for _, m in problems))
    err.problems = problems  # type: ignore[attr-defined]
    return err
