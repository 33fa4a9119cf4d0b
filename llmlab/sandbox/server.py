"""The local sandbox: a simulated LLM provider on loopback (DESIGN.md decision 9).

A real aiohttp HTTP server that speaks the OpenAI chat-completions API and the Anthropic messages API, so
LiteLLM's own provider code runs end to end with no network and no API key::

    with Sandbox(latency_scale=0.01) as sb:
        await litellm.acompletion(model="openai/frontier", api_base=sb.api_base, api_key="sandbox-key", ...)
        await litellm.acompletion(model="anthropic/balanced", api_base=sb.api_base, api_key="sandbox-key", ...)

Endpoints (routed by path suffix, so ``api_base`` may be ``sb.url`` or ``sb.api_base`` = ``sb.url + "/v1"``):

- ``POST .../chat/completions``   OpenAI chat completions, JSON or SSE (``stream_options.include_usage`` honoured)
- ``POST .../messages``           Anthropic messages, JSON or SSE (message_start ... message_stop)
- ``GET  .../models``             the model list (OpenAI and Anthropic fields in one shape)
- ``POST .../embeddings``         deterministic OpenAI-format embeddings (:mod:`llmlab.sandbox.embeddings`)
- ``POST/DELETE/GET /_sandbox/faults``, ``GET/DELETE /_sandbox/stats``, ``GET /_sandbox/profiles``: control

Every model in :data:`PROFILES` is served on both APIs. The figures (prices, latencies, accuracies) are
**simulated**: they are invented for this sandbox, not measured, and every report built on them must say so.

Answers are deterministic for ``(seed, model, prompt, sample salt)``: the sandbox reads the bundled prompt sets
(``datasets/*.jsonl``, or ``$LLMLAB_DATASETS_DIR``) and, for a prompt it recognises, answers the item's reference
with probability ``profile.accuracy[category]`` and a plausible wrong answer otherwise. Directives in the last
user message: ``SANDBOX_ECHO:`` (answer the rest of the message verbatim) and judge requests (``[llmlab-judge]``
with ``<reference>`` and ``<answer>`` blocks, answered ``Score: N``) and pairwise judge requests (``[llmlab-pairwise]``,
answered ``Winner: 1|2|tie`` with a configurable position bias: :mod:`llmlab.sandbox.pairwise_judge`).

Faults (:data:`FAULT_KINDS`) are injected with :meth:`Sandbox.inject`, over HTTP (``POST /_sandbox/faults``,
see :class:`RemoteSandbox`), or at random for soak tests (``Sandbox(fault_rate=0.2)``). What a LiteLLM caller
sees for each kind (LiteLLM 1.106.2, ``num_retries=0, max_retries=0``; pinned by ``tests/test_sandbox.py``)::

    kind            HTTP from the sandbox                    openai/ provider            anthropic/ provider
    429             429 + Retry-After, retry-after-ms        RateLimitError              RateLimitError
    500             500                                      InternalServerError         InternalServerError
    502             502                                      BadGatewayError             BadGatewayError
    503             503                                      ServiceUnavailableError     ServiceUnavailableError
    504             504                                      Timeout                     Timeout
    timeout         nothing for hang_s, then a TCP reset     Timeout (client timeout=)   Timeout (client timeout=)
    reset           TCP reset, no response                   InternalServerError (1)     InternalServerError (1, 2)
    malformed       200, body not JSON                       InternalServerError         APIConnectionError
      (stream)      200, SSE data line not JSON              MidStreamFallbackError (3)  no error: empty text (4)
    cut_stream      stream closed mid-body: no final chunk,  MidStreamFallbackError (3)  MidStreamFallbackError (3)
                    no [DONE] / message_stop (non-stream: like reset)
    400             400                                      BadRequestError             BadRequestError
    401             401                                      AuthenticationError         AuthenticationError
    403             403                                      BadRequestError (5)         PermissionDeniedError
    404             404 model_not_found                      NotFoundError               NotFoundError
    context_window  400 context_length_exceeded              ContextWindowExceededError  ContextWindowExceededError

    (1) message "Connection error." / "Connection reset by peer", status_code 500.
    (2) LiteLLM's httpx handler re-sends once on a dropped connection, whatever num_retries says: one reset
        is invisible to the caller (the sandbox counts two requests); two in a row raise.
    (3) ``litellm.exceptions.MidStreamFallbackError`` (not exported as ``litellm.MidStreamFallbackError``), a
        subclass of ``ServiceUnavailableError``, status_code 500, raised while iterating after some chunks.
    (4) LiteLLM skips undecodable SSE data: the stream ends with finish_reason "stop" and no content.
    (5) LiteLLM's OpenAI mapping has no 403 branch; the exception's ``status_code`` is 403.

The Retry-After of a 429 is on ``e.litellm_response_headers`` (an ``httpx.Headers``, case-insensitive:
``e.litellm_response_headers["retry-after"]``); ``e.response.headers`` is empty. See
:func:`llmlab.runner.retry_after_s`. A stream that simply ends early without its final chunk is *not*
detectable through LiteLLM (it synthesises finish_reason "stop" and usage), which is why ``cut_stream`` drops
the connection mid-body instead.

Samples: at temperature > 0 the request's ``seed`` (OpenAI), or an ``X-Sandbox-Seed`` header (any API, through
LiteLLM's ``extra_headers``; LiteLLM refuses ``seed`` for ``anthropic/``), salts the answer.
"""

from __future__ import annotations

import asyncio
import base64
import fnmatch
import itertools
import json
import logging
import os
import re
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from llmlab.errors import FaultSpecError, SandboxError
from llmlab.sandbox import structured

logger = logging.getLogger(__name__)
from llmlab.sandbox.answers import (
    SandboxAnswer,
    _bare_model,
    _content_text,
    _Datasets,
    _generic_answer,
    _hexid,
    _norm,
    _unit,
    _wrong_json,
    _wrong_number,
    _wrong_text,
    default_datasets_dir,
)
from llmlab.sandbox.batches import batch_route
from llmlab.sandbox.embeddings import embeddings_response
from llmlab.sandbox.faults import (
    _Fault,
    _fault_http_status,
    _FaultRule,
    _normalize_kind,
)
from llmlab.sandbox.formats import (
    _anthropic_body,
    _anthropic_events,
    _context_window_response,
    _Ctx,
    _error_response,
    _float_or_none,
    _int_or_none,
    _NoResponse,
    _ok_headers,
    _openai_body,
    _openai_events,
    _request_seed,
)
from llmlab.sandbox.pairwise_judge import PAIRWISE_JUDGES, pairwise_answer, pairwise_control
from llmlab.sandbox.profiles import (
    DEFAULT_MIXED_FAULT_KINDS,
    ECHO_DIRECTIVE,
    JUDGE_MARKER,
    PROFILES,
    ModelProfile,
    estimate_tokens,
)

__all__ = [
    "Sandbox",
]

# --------------------------------------------------------------------------------------------- the server


class Sandbox:
    """The sandbox server. Run it in a background thread (``start``/``stop``, or ``with Sandbox() as sb``) or on
    the current event loop (:func:`serve_forever`).

    Args:
        host, port: where to listen (``port=0``: a free port, read it from ``.port``).
        seed: seeds every answer, latency jitter and random fault decision.
        latency_scale: multiplies every simulated latency sleep (``0.01`` in tests, ``0`` for none); fault
            ``hang_s`` and ``Retry-After`` values are not scaled.
        fault_rate: probability (0..1) that any model request fails with a kind drawn from ``fault_kinds``
            (soak tests). Decided by a hash of (seed, request number): deterministic by request order.
        fault_kinds: the kinds for ``fault_rate`` (default :data:`DEFAULT_MIXED_FAULT_KINDS`).
        datasets_dir: the directory of bundled ``*.jsonl`` prompt sets (default :func:`default_datasets_dir`).
        fault_retry_after_s, fault_hang_s: Retry-After and hang time of the ``fault_rate`` faults (seconds).
        profiles: the model profiles to serve (default :data:`PROFILES`).

    Raises:
        FaultSpecError: an invalid ``fault_rate`` or ``fault_kinds``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
        latency_scale: float = 1.0,
        fault_rate: float = 0.0,
        fault_kinds: Iterable[str] | None = None,
        datasets_dir: str | os.PathLike[str] | None = None,
        *,
        fault_retry_after_s: float = 1.0,
        fault_hang_s: float = 30.0,
        profiles: Mapping[str, ModelProfile] | None = None,
    ) -> None:
        if not 0.0 <= float(fault_rate) <= 1.0:
            raise FaultSpecError(f"fault_rate must be within 0..1, got {fault_rate!r}")
        self.host = host
        self._requested_port = int(port)
        self.seed = int(seed)
        self.latency_scale = max(0.0, float(latency_scale))
        self.fault_rate = float(fault_rate)
        self.fault_kinds: tuple[str, ...] = tuple(
            _normalize_kind(k) for k in (fault_kinds if fault_kinds is not None else DEFAULT_MIXED_FAULT_KINDS)
        )
        if self.fault_rate > 0 and not self.fault_kinds:
            raise FaultSpecError("fault_rate > 0 needs at least one fault kind")
        self.fault_retry_after_s = float(fault_retry_after_s)
        self.fault_hang_s = float(fault_hang_s)
        self.profiles: dict[str, ModelProfile] = dict(profiles if profiles is not None else PROFILES)
        self.datasets = _Datasets(Path(datasets_dir) if datasets_dir is not None else default_datasets_dir())
        self.pairwise_judges = dict(PAIRWISE_JUDGES)  # bare model -> PairwiseJudgeProfile (pairwise_judge.py)

        self._lock = threading.Lock()
        self._rules: list[_FaultRule] = []
        self._rule_ids = itertools.count()
        self._request_counter = 0
        self._log: list[dict[str, Any]] = []
        self._by_model: Counter[str] = Counter()
        self._by_outcome: Counter[str] = Counter()
        self._by_model_outcome: dict[str, Counter[str]] = {}

        self._port: int | None = None
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        """The TCP port it listens on. Raises SandboxError when not started."""
        if self._port is None:
            raise SandboxError("the sandbox is not running: call start() first")
        return self._port

    @property
    def url(self) -> str:
        """``http://host:port`` (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    @property
    def api_base(self) -> str:
        """``url + "/v1"``: the ``api_base`` for LiteLLM (both ``openai/`` and ``anthropic/`` models)."""
        return self.url + "/v1"

    @property
    def running(self) -> bool:
        """True while the server listens."""
        return self._port is not None

    def _make_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    async def _astart(self) -> None:
        self._stopping = asyncio.Event()
        runner = web.AppRunner(self._make_app(), access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._requested_port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        addresses = runner.addresses  # [(host, port, ...)] of the listening sockets
        port = addresses[0][1] if addresses else None
        if port is None:
            await runner.cleanup()
            raise SandboxError("the sandbox started but its port is unknown")
        self._runner = runner
        self._port = int(port)
        logger.info("sandbox listening on http://%s:%d", self.host, self._port)

    async def _astop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        self._port = None

    def start(self, timeout_s: float = 10.0) -> Sandbox:
        """Start the server on its own event loop in a daemon thread; return once it listens (``self``).

        Raises:
            SandboxError: it could not listen (port in use, bad host) within ``timeout_s`` seconds.
        """
        if self._thread is not None and self._thread.is_alive():
            return self
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._astart())
            except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                try:
                    loop.run_until_complete(self._astop())
                    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                    for t in pending:
                        t.cancel()
                    if pending:
                        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                finally:
                    loop.close()

        thread = threading.Thread(target=run, name="llmlab-sandbox", daemon=True)
        self._loop, self._thread = loop, thread
        thread.start()
        if not ready.wait(timeout_s):
            raise SandboxError(f"the sandbox did not start within {timeout_s} s")
        if failure:
            self._thread = self._loop = None
            raise SandboxError(f"the sandbox could not listen on {self.host}:{self._requested_port}: {failure[0]}") \
                from failure[0]
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the server (hung and streaming requests are cut) and join its thread. Idempotent."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if thread.is_alive():
            fut = asyncio.run_coroutine_threadsafe(self._astop(), loop)
            try:
                fut.result(timeout_s)
            except Exception as exc:  # noqa: BLE001
                logger.warning("sandbox: error while stopping: %s", exc)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout_s)
        self._loop = self._thread = None
        self._port = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self.running else "stopped"
        return f"<Sandbox {where} seed={self.seed} latency_scale={self.latency_scale}>"

    # ------------------------------------------------------------------ faults

    def inject(
        self,
        kind: str | int,
        model: str = "*",
        times: int | None = None,
        rate: float | None = None,
        retry_after_s: float = 1.0,
        hang_s: float = 30.0,
    ) -> dict[str, Any]:
        """Make matching model requests fail with ``kind`` (one of :data:`FAULT_KINDS`).

        Args:
            kind: the fault kind, e.g. ``"429"``, ``503``, ``"timeout"``, ``"cut_stream"``.
            model: the model it applies to: a bare name (``"frontier"``), ``"sandbox/frontier"``, a glob, or
                ``"*"`` for every model.
            times: only the next ``times`` matching requests fail (None: no limit).
            rate: each matching request fails with this probability, decided by a hash of (seed, rule, its
                matching-request number): deterministic by request order. None: every matching request fails.
                With ``times`` too, at most ``times`` requests fail.
            retry_after_s: the ``Retry-After`` of a ``429``, seconds (not scaled by latency_scale).
            hang_s: how long a ``timeout`` holds the request before closing the connection, seconds (real
                time, not scaled); cut short when the client disconnects or the server stops.

        Rules are tried in the order they were added; the first that fires decides. Returns the rule as a dict.

        Raises:
            FaultSpecError: unknown kind, ``rate`` outside 0..1, negative ``times``.
        """
        k = _normalize_kind(kind)
        if times is not None and int(times) < 0:
            raise FaultSpecError(f"times must be >= 0, got {times!r}")
        if rate is not None and not 0.0 <= float(rate) <= 1.0:
            raise FaultSpecError(f"rate must be within 0..1, got {rate!r}")
        if float(retry_after_s) < 0 or float(hang_s) < 0:
            raise FaultSpecError("retry_after_s and hang_s must be >= 0")
        pattern = str(model or "*")
        if pattern != "*" and "/" in pattern:
            pattern = _bare_model(pattern)
        with self._lock:
            rule = _FaultRule(next(self._rule_ids), k, pattern, None if times is None else int(times),
                              None if rate is None else float(rate), float(retry_after_s), float(hang_s))
            self._rules.append(rule)
            return rule.to_dict()

    def clear_faults(self) -> None:
        """Remove every injected fault rule (the ``fault_rate`` mode stays)."""
        with self._lock:
            self._rules.clear()
            self._rule_ids = itertools.count()

    def faults(self) -> list[dict[str, Any]]:
        """The injected rules as dicts (id, kind, model, times, rate, retry_after_s, hang_s, fired, seen)."""
        with self._lock:
            return [r.to_dict() for r in self._rules]

    def _decide_fault(self, model: str) -> _Fault | None:
        """Called with the lock held, once per model request."""
        for rule in list(self._rules):
            if rule.times is not None and rule.fired >= rule.times:
                continue
            if not fnmatch.fnmatchcase(model, rule.model):
                continue
            n = rule.seen
            rule.seen += 1
            if rule.rate is not None and _unit(self.seed, "rule", rule.rule_id, n) >= rule.rate:
                continue
            rule.fired += 1
            return _Fault(rule.kind, rule.retry_after_s, rule.hang_s)
        if self.fault_rate > 0:
            n = self._request_counter
            if _unit(self.seed, "mixed", n) < self.fault_rate:
                kinds = self.fault_kinds
                kind = kinds[int(_unit(self.seed, "mixed-kind", n) * len(kinds)) % len(kinds)]
                return _Fault(kind, self.fault_retry_after_s, self.fault_hang_s)
        return None

    # ------------------------------------------------------------------ stats

    def _record(self, model: str, path: str, stream: bool, outcome: str, http_status: int | None,
                shape: dict[str, Any] | None = None) -> None:
        """Called with the lock held. ``shape``: :func:`llmlab.sandbox.structured.request_shape` of the body."""
        self._by_model[model] += 1
        self._by_outcome[outcome] += 1
        self._by_model_outcome.setdefault(model, Counter())[outcome] += 1
        self._log.append({
            "model": model, "path": path, "stream": stream, "outcome": outcome, "http_status": http_status,
            "received_at_monotonic_s": time.monotonic(), "request": shape,
        })

    def stats(self) -> dict[str, Any]:
        """Counts of the model requests served (failed ones included), as plain dicts::

            {"requests": int, "by_model": {"frontier": int, ...}, "by_outcome": {"ok": int, "429": int, ...},
             "by_model_outcome": {"frontier": {"ok": int, ...}, ...}}

        Outcomes: ``"ok"``, a fault kind, ``"unknown_model"`` (404), ``"context_window"`` (input too long) or
        ``"invalid_request"`` (unparsable body). ``/models`` and ``/_sandbox/*`` requests are not counted.
        """
        with self._lock:
            return {
                "requests": len(self._log),
                "by_model": dict(self._by_model),
                "by_outcome": dict(self._by_outcome),
                "by_model_outcome": {m: dict(c) for m, c in self._by_model_outcome.items()},
            }

    def request_count(self, model: str | None = None) -> int:
        """Model requests served so far (failed ones included); only those for ``model`` when given
        (``"frontier"``, ``"sandbox/frontier"`` or ``"openai/frontier"``)."""
        with self._lock:
            if model is None:
                return len(self._log)
            return self._by_model.get(_bare_model(model), 0)

    @property
    def request_log(self) -> list[dict[str, Any]]:
        """A copy of the request log: one dict per model request with ``model``, ``path``, ``stream``,
        ``outcome``, ``http_status`` (None when no HTTP response was sent), ``received_at_monotonic_s``
        (``time.monotonic()`` in this process) and ``request`` (the body's provider-native shape: roles, content
        types, tool names and format, tool_choice, response_format; see
        :func:`llmlab.sandbox.structured.request_shape`; None for an unparsable body)."""
        with self._lock:
            return [dict(e) for e in self._log]

    def reset_stats(self) -> None:
        """Forget every count and the request log (the request numbering of ``fault_rate`` restarts too)."""
        with self._lock:
            self._log.clear()
            self._by_model.clear()
            self._by_outcome.clear()
            self._by_model_outcome.clear()
            self._request_counter = 0

    # ------------------------------------------------------------------ answering

    def answer(self, model: str, messages: Sequence[Mapping[str, Any]], *, system: str = "",
               max_tokens: int | None = None, temperature: float | None = None, seed: Any = None,
               choice_index: int = 0) -> SandboxAnswer:
        """The deterministic answer of ``model`` to a chat, as both endpoints give it (no HTTP, no latency).

        Args:
            model: a bare profile name (``"tiny"``). messages: OpenAI/Anthropic-style dicts with ``role`` and
                ``content`` (a string or a list of text parts). system: the system text (Anthropic ``system``).
            max_tokens: cap on the answer's simulated tokens (longer answers are cut, ``finish="length"``).
            temperature, seed, choice_index: the sample salt ``(temperature, seed, choice_index)`` applies when
                temperature > 0 (None counts as 1.0, the APIs' default); at temperature 0 answers never vary.

        Returns a :class:`SandboxAnswer`. Raises KeyError for a model that is not in ``self.profiles``.
        """
        profile = self.profiles[model]
        last_user = ""
        for m in reversed(messages):
            if m.get("role") == "user":
                last_user = _content_text(m.get("content"))
                break
        t = 1.0 if temperature is None else float(temperature)
        salt: tuple = ("t", round(t, 4), seed, choice_index) if t > 0 else ("greedy",)
        cap = min(int(max_tokens), profile.max_output_tokens) if max_tokens else profile.max_output_tokens
        cap = max(1, cap)

        idx = last_user.find(ECHO_DIRECTIVE)
        if idx >= 0:
            rest = last_user[idx + len(ECHO_DIRECTIVE):]
            if rest.startswith(" "):
                rest = rest[1:]
            return SandboxAnswer(rest, "stop", "echo")

        all_text = "\n".join([system] + [_content_text(m.get("content")) for m in messages])
        pairwise = pairwise_answer(self.pairwise_judges, model, profile.default_accuracy, all_text, self.seed, salt)
        if pairwise is not None:
            return pairwise
        if JUDGE_MARKER in all_text:
            judged = self._judge(profile, all_text, salt)
            if judged is not None:
                return judged

        item = self.datasets.match(last_user)
        if item is not None:
            key = (self.seed, model, item.prompt_norm, salt)
            if _unit("correct", *key) < profile.accuracy_for(item.category):
                text, kind = item.reference, "correct"
            else:
                u = _unit("wrong", *key)
                text = (_wrong_number(item.reference, u) or _wrong_json(item.reference, u)
                        or _wrong_text(item.reference, self.datasets.other_references(item.category), u))
                kind = "wrong"
        else:
            text = _generic_answer(model, last_user or all_text, cap, _unit("generic", self.seed, model,
                                                                            _norm(all_text), salt))
            kind = "generic"
        if estimate_tokens(text) > cap:
            return SandboxAnswer(text[: cap * 4], "length", kind)
        return SandboxAnswer(text, "stop", kind)

    def _judge(self, profile: ModelProfile, text: str, salt: tuple) -> SandboxAnswer | None:
        refs = re.findall(r"<reference>(.*?)</reference>", text, flags=re.S)
        if not refs:
            return None
        reference = refs[-1]
        after = text.rfind("</reference>")
        start = text.find("<answer>", after)
        if start < 0:
            start = text.find("<answer>")
        end = text.rfind("</answer>")
        if start < 0 or end < start:
            return None
        answer = text[start + len("<answer>"):end]
        ref_n, ans_n = _norm(reference).lower(), _norm(answer).lower()
        match = bool(ref_n) and (ans_n == ref_n or ref_n in ans_n)
        key = (self.seed, profile.name, _norm(text), salt)
        if _unit("judge-mistake", *key) < (1.0 - profile.default_accuracy) / 2.0:
            match = not match
        u = _unit("judge-score", *key)
        score = (9 + int(u * 2)) if match else (1 + int(u * 3))
        return SandboxAnswer(f"Score: {score}", "stop", "judge")

    def _latency_s(self, profile: ModelProfile, output_tokens: int, key: tuple) -> tuple[float, float]:
        j = profile.jitter
        f1 = 1.0 + j * (2.0 * _unit("ttft", *key) - 1.0)
        f2 = 1.0 + j * (2.0 * _unit("gen", *key) - 1.0)
        ttft_s = profile.ttft_ms / 1000.0 * f1 * self.latency_scale
        gen_s = output_tokens / profile.tokens_per_s * f2 * self.latency_scale
        return max(0.0, ttft_s), max(0.0, gen_s)

    # ------------------------------------------------------------------ HTTP

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/")
        method = request.method
        batch = await batch_route(self, request, path)  # llmlab.sandbox.batches: files, batches, message batches
        if batch is not None:
            return batch
        if path.startswith("/_sandbox/") or path.startswith("/v1/_sandbox/"):
            return await self._control(request, path.rsplit("/_sandbox/", 1)[1])
        if path.endswith("/chat/completions") and method == "POST":
            return await self._model_request(request, "openai")
        if path.endswith("/messages") and method == "POST":
            return await self._model_request(request, "anthropic")
        if path.endswith("/models") and method == "GET":
            return self._models_response()
        if path.endswith("/embeddings") and method == "POST":
            return await embeddings_response(self, request)
        api = "anthropic" if path.endswith("/messages") else "openai"
        return _error_response(api, 404, f"no route for {method} {request.path}", "not_found")

    def _models_response(self) -> web.Response:
        data = [{
            "id": p.name, "object": "model", "created": 0, "owned_by": "llmlab-sandbox",
            "type": "model", "display_name": f"sandbox/{p.name} (simulated)", "created_at": "2024-01-01T00:00:00Z",
        } for p in self.profiles.values()]
        return web.json_response({
            "object": "list", "data": data, "has_more": False,
            "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None,
        })

    async def _control(self, request: web.Request, what: str) -> web.Response:
        method = request.method
        if what == "faults":
            if method == "GET":
                return web.json_response({"faults": self.faults()})
            if method == "DELETE":
                self.clear_faults()
                return web.json_response({"faults": []})
            if method == "POST":
                try:
                    body = await request.json()
                    if not isinstance(body, dict) or "kind" not in body:
                        raise FaultSpecError("the body must be a JSON object with at least 'kind'")
                    allowed = {"kind", "model", "times", "rate", "retry_after_s", "hang_s"}
                    unknown = set(body) - allowed
                    if unknown:
                        raise FaultSpecError(f"unknown fields: {', '.join(sorted(unknown))}")
                    rule = self.inject(**body)
                except (FaultSpecError, ValueError, TypeError) as exc:
                    return _error_response("openai", 400, str(exc), "invalid_request_error")
                return web.json_response({"fault": rule, "faults": self.faults()})
        elif what == "stats":
            if method == "GET":
                return web.json_response(self.stats())
            if method == "DELETE":
                self.reset_stats()
                return web.json_response(self.stats())
        elif what == "pairwise_judges":
            return await pairwise_control(self.pairwise_judges, request)
        elif what == "profiles" and method == "GET":
            return web.json_response({"profiles": {n: p.to_dict() for n, p in self.profiles.items()}})
        return _error_response("openai", 404, f"no control route for {method} /_sandbox/{what}", "not_found")

    async def _model_request(self, request: web.Request, api: str) -> web.StreamResponse:
        path = request.path
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("the body is not a JSON object")
        except (ValueError, UnicodeDecodeError) as exc:
            with self._lock:
                self._record("(unparsed)", path, False, "invalid_request", 400)
            return _error_response(api, 400, f"invalid JSON body: {exc}", "invalid_request_error")
        model = _bare_model(body.get("model"))
        stream = bool(body.get("stream"))
        shape = structured.request_shape(api, body)
        messages = body.get("messages") if isinstance(body.get("messages"), list) else []
        if api == "anthropic":
            system = _content_text(body.get("system"))
            max_tokens = body.get("max_tokens")
        else:
            sys_parts = [m for m in messages if isinstance(m, dict) and m.get("role") in ("system", "developer")]
            system = "\n".join(_content_text(m.get("content")) for m in sys_parts)
            max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        messages = [m for m in messages if isinstance(m, dict) and m.get("role") not in ("system", "developer")]
        input_text = "\n".join([system] + [_content_text(m.get("content")) for m in messages])
        input_tokens = estimate_tokens(input_text)

        with self._lock:
            self._request_counter += 1
            profile = self.profiles.get(model)
            if profile is None:
                self._record(model or "(none)", path, stream, "unknown_model", 404, shape)
                fault = None
            else:
                fault = self._decide_fault(model)
                if fault is not None:
                    self._record(model, path, stream, fault.kind, _fault_http_status(fault.kind, stream), shape)
                elif input_tokens > profile.context_window_tokens:
                    self._record(model, path, stream, "context_window", 400, shape)
                else:
                    self._record(model, path, stream, "ok", 200, shape)

        if profile is None:
            return _error_response(api, 404, f"The model `{model}` does not exist or you do not have access to it.",
                                   "model_not_found", param="model")
        if fault is None and input_tokens > profile.context_window_tokens:
            return _context_window_response(api, profile, input_tokens)

        temperature = body.get("temperature")
        seed = _request_seed(body, request.headers)
        n = 1
        if api == "openai":
            try:
                n = max(1, min(int(body.get("n") or 1), 16))
            except (TypeError, ValueError):
                n = 1
        answers = structured.answers(self, api, model, body, messages, system=system,
                                     max_tokens=_int_or_none(max_tokens), temperature=_float_or_none(temperature),
                                     seed=seed, n=n) or [
            self.answer(model, messages, system=system, max_tokens=_int_or_none(max_tokens),
                        temperature=_float_or_none(temperature), seed=seed, choice_index=i) for i in range(n)]
        output_tokens = sum(estimate_tokens(a.text + (json.dumps(a.tool_calls) if a.tool_calls else ""))
                            for a in answers)
        key = (self.seed, model, _norm(input_text), seed, temperature, n)
        ttft_s, gen_s = self._latency_s(profile, output_tokens, key)
        ctx = _Ctx(api=api, profile=profile, answers=answers, input_tokens=input_tokens,
                   output_tokens=output_tokens, ttft_s=ttft_s, gen_s=gen_s,
                   request_id=_hexid("req", self.seed, model, input_text, seed, temperature, time.monotonic_ns()),
                   include_usage=bool((body.get("stream_options") or {}).get("include_usage")))

        if fault is not None:
            return await self._fault_response(request, ctx, fault, stream)
        if not stream:
            if not await self._sleep(ttft_s + gen_s, request):
                return await self._reset(request)
            return web.json_response(_openai_body(ctx) if api == "openai" else _anthropic_body(ctx),
                                     headers=_ok_headers(ctx))
        return await self._stream(request, ctx, cut=False)

    async def _sleep(self, seconds: float, request: web.Request | None = None) -> bool:
        """Sleep; False when the server is stopping or the client went away (then stop answering)."""
        stopping = self._stopping
        deadline = time.monotonic() + seconds
        while True:
            if stopping is not None and stopping.is_set():
                return False
            if request is not None and (request.transport is None or request.transport.is_closing()):
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            await asyncio.sleep(min(remaining, 0.05))

    async def _reset(self, request: web.Request) -> web.StreamResponse:
        """Abort the connection with a TCP RST and no response."""
        transport = request.transport
        if transport is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
            transport.abort()
        return _NoResponse()

    async def _fault_response(self, request: web.Request, ctx: _Ctx, fault: _Fault,
                              stream: bool) -> web.StreamResponse:
        kind, api = fault.kind, ctx.api
        if kind == "429":
            ra = fault.retry_after_s
            ra_text = str(int(ra)) if float(ra).is_integer() else f"{ra:g}"
            return _error_response(api, 429, "Rate limit reached for requests (simulated by the llmlab sandbox). "
                                   f"Please retry after {ra_text} seconds.", "rate_limit_exceeded",
                                   headers={"Retry-After": ra_text, "retry-after-ms": str(int(round(ra * 1000)))})
        if kind in ("500", "502", "503", "504"):
            msg = {"500": "The server had an error while processing your request (simulated).",
                   "502": "Bad gateway (simulated).",
                   "503": "The engine is currently overloaded, please try again later (simulated).",
                   "504": "Gateway timeout (simulated)."}[kind]
            return _error_response(api, int(kind), msg, "server_error")
        if kind == "400":
            return _error_response(api, 400, "Invalid request (simulated by the llmlab sandbox).",
                                   "invalid_request_error")
        if kind == "401":
            # Like providers that quote the key back, the worst case: the message holds the key it was sent, so
            # tests can prove that llmlab redacts it before recording the error.
            auth = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            key = auth or request.headers.get("x-api-key", "")
            # Also altered, as real error pages do: without its last character, without its prefix, base64.
            altered = (f" Did you mean {key[:-1]}? Fingerprint {key[3:]}, "
                       f"{base64.b64encode(key.encode()).decode()}." if len(key) > 12 else "")
            return _error_response(api, 401, f"Incorrect API key provided: {key} (simulated).{altered}",
                                   "invalid_api_key")
        if kind == "403":
            return _error_response(api, 403, "You are not allowed to use this model (simulated).",
                                   "permission_denied")
        if kind == "404":
            return _error_response(api, 404, f"The model `{ctx.profile.name}` does not exist (simulated).",
                                   "model_not_found", param="model")
        if kind == "context_window":
            return _context_window_response(api, ctx.profile, max(ctx.input_tokens,
                                                                  ctx.profile.context_window_tokens + 1))
        if kind == "timeout":
            await self._sleep(fault.hang_s, request)
            return await self._reset(request)
        if kind == "reset" or (kind == "cut_stream" and not stream):
            return await self._reset(request)
        if kind == "malformed":
            if stream:
                resp = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream",
                                                               "Cache-Control": "no-cache"})
                await resp.prepare(request)
                await resp.write(b'data: {"id": "chatcmpl-broken", "choices": [{"delta": {"content": "par\n\n')
                await resp.write(b"data: [DONE]\n\n" if api == "openai" else b"event: message_stop\ndata: {\n\n")
                await resp.write_eof()
                return resp
            return web.Response(status=200, body=b'{"id": "chatcmpl-broken", "object": "chat.completion", '
                                b'"choices": [{"index": 0, "message": {"role": "assistant", "content": "par',
                                content_type="application/json")
        if kind == "cut_stream":
            return await self._stream(request, ctx, cut=True)
        raise AssertionError(f"unhandled fault kind {kind}")  # pragma: no cover

    async def _stream(self, request: web.Request, ctx: _Ctx, *, cut: bool) -> web.StreamResponse:
        resp = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream",
                                                       "Cache-Control": "no-cache", **_ok_headers(ctx)})
        await resp.prepare(request)
        events = _openai_events(ctx) if ctx.api == "openai" else _anthropic_events(ctx)
        n_content = sum(1 for e in events if e[0] == "content")
        per_chunk_s = ctx.gen_s / max(1, n_content)
        if cut:  # stop after about half of the content, before any final event
            limit = max(1, n_content // 2)
        first = True
        sent_content = 0
        try:
            for what, payload in events:
                if what == "content":
                    if cut and sent_content >= limit:
                        break
                    delay = ctx.ttft_s if first else per_chunk_s
                    first = False
                    if delay > 0 and not await self._sleep(delay, request):
                        return await self._reset(request)
                    sent_content += 1
                elif cut and sent_content >= limit:
                    break
                elif what == "final" and cut:
                    break
                await resp.write(payload)
            if cut:
                # End the connection mid-body: no final chunk, no [DONE] / message_stop, no chunked terminator.
                await asyncio.sleep(0)
                transport = request.transport
                if transport is not None:
                    transport.close()
                return _NoResponse()
            await resp.write_eof()
        except (ConnectionError, RuntimeError) as exc:
            logger.debug("sandbox: client went away during a stream: %s", exc)
        return resp


