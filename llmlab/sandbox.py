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
- ``POST/DELETE/GET /_sandbox/faults``, ``GET/DELETE /_sandbox/stats``, ``GET /_sandbox/profiles``: control

Every model in :data:`PROFILES` is served on both APIs. The figures (prices, latencies, accuracies) are
**simulated**: they are invented for this sandbox, not measured, and every report built on them must say so.

Answers are deterministic for ``(seed, model, prompt, sample salt)``: the sandbox reads the bundled prompt sets
(``datasets/*.jsonl``, or ``$LLMLAB_DATASETS_DIR``) and, for a prompt it recognises, answers the item's reference
with probability ``profile.accuracy[category]`` and a plausible wrong answer otherwise. Directives in the last
user message: ``SANDBOX_ECHO:`` (answer the rest of the message verbatim) and judge requests (``[llmlab-judge]``
with ``<reference>`` and ``<answer>`` blocks, answered ``Score: N``).

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

import argparse
import asyncio
import dataclasses
import fnmatch
import hashlib
import itertools
import json
import logging
import math
import os
import re
import socket
import struct
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aiohttp import web

from llmlab.errors import FaultSpecError, SandboxError

logger = logging.getLogger(__name__)

__all__ = [
    "CATEGORIES",
    "FAULT_KINDS",
    "PROFILES",
    "FaultSpecError",
    "ModelProfile",
    "RemoteSandbox",
    "Sandbox",
    "SandboxAnswer",
    "default_datasets_dir",
    "ensure_sandbox",
    "estimate_tokens",
    "main",
    "serve_forever",
]

#: The task categories of the bundled prompt sets.
CATEGORIES: tuple[str, ...] = ("extraction", "classification", "arithmetic", "code", "summarization", "reasoning")

#: Every fault kind the sandbox can inject. Retryable: 429, 5xx, timeout, reset, malformed, cut_stream.
#: Not retryable: 400, 401, 403, 404, context_window.
FAULT_KINDS: tuple[str, ...] = (
    "429", "500", "502", "503", "504", "timeout", "reset", "malformed", "cut_stream",
    "400", "401", "403", "404", "context_window",
)

#: Fault kinds used by ``Sandbox(fault_rate=...)`` when ``fault_kinds`` is not given (the retryable ones).
DEFAULT_MIXED_FAULT_KINDS: tuple[str, ...] = ("429", "500", "503", "timeout", "reset", "malformed", "cut_stream")

ECHO_DIRECTIVE = "SANDBOX_ECHO:"
JUDGE_MARKER = "[llmlab-judge]"
SANDBOX_API_BASE_ENV = "LLMLAB_SANDBOX_API_BASE"
DATASETS_DIR_ENV = "LLMLAB_DATASETS_DIR"


@dataclass(frozen=True)
class ModelProfile:
    """One simulated model. All figures are invented for the sandbox (simulated, not measured).

    Attributes:
        name: the bare model name served by the sandbox (``"frontier"``); llmlab calls it ``sandbox/<name>``.
        api: the API LiteLLM reaches it through by default, ``"openai"`` or ``"anthropic"`` (the LiteLLM
            model string is ``f"{api}/{name}"`` with ``api_base``); every model is served on both endpoints.
        input_cost_per_token / output_cost_per_token: simulated prices in USD per token (never 0).
        ttft_ms: median time to first token, milliseconds. tokens_per_s: output speed after the first token.
        jitter: fraction; each latency is scaled by a deterministic factor in ``[1 - jitter, 1 + jitter]``.
        accuracy: probability of answering a bundled item of that category correctly.
        default_accuracy: the same for other categories; the judge's mistake rate is ``(1 - it) / 2``.
        context_window_tokens: larger inputs get a 400 ``context_length_exceeded``.
        max_output_tokens: cap on generated tokens.
    """

    name: str
    api: Literal["openai", "anthropic"]
    input_cost_per_token: float
    output_cost_per_token: float
    ttft_ms: float
    tokens_per_s: float
    jitter: float
    accuracy: dict[str, float] = field(hash=False)
    default_accuracy: float = 0.5
    context_window_tokens: int = 128_000
    max_output_tokens: int = 4096

    @property
    def llmlab_model(self) -> str:
        """The llmlab model id, e.g. ``"sandbox/frontier"``."""
        return f"sandbox/{self.name}"

    @property
    def litellm_model(self) -> str:
        """The LiteLLM model string to use with ``api_base``, e.g. ``"openai/frontier"``."""
        return f"{self.api}/{self.name}"

    def accuracy_for(self, category: str | None) -> float:
        """Probability (0..1) of a correct answer for ``category`` (``default_accuracy`` when unknown)."""
        if category is None:
            return self.default_accuracy
        return float(self.accuracy.get(category, self.default_accuracy))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field plus ``llmlab_model`` and ``litellm_model``."""
        d = dataclasses.asdict(self)
        d["llmlab_model"] = self.llmlab_model
        d["litellm_model"] = self.litellm_model
        return d


#: The simulated models. The accuracies make the best cheap choice differ by category: tiny is nearly as good
#: as frontier on classification, fast is good at extraction and summarization, balanced at code, and only
#: frontier is good at arithmetic and reasoning. All figures are simulated.
PROFILES: dict[str, ModelProfile] = {
    "frontier": ModelProfile(
        name="frontier", api="openai",
        input_cost_per_token=5e-6, output_cost_per_token=15e-6,
        ttft_ms=900.0, tokens_per_s=45.0, jitter=0.25,
        accuracy={"extraction": 0.95, "classification": 0.95, "arithmetic": 0.92, "code": 0.93,
                  "summarization": 0.94, "reasoning": 0.90},
        default_accuracy=0.90, context_window_tokens=200_000, max_output_tokens=8192,
    ),
    "balanced": ModelProfile(
        name="balanced", api="anthropic",
        input_cost_per_token=1e-6, output_cost_per_token=4e-6,
        ttft_ms=550.0, tokens_per_s=80.0, jitter=0.25,
        accuracy={"extraction": 0.86, "classification": 0.90, "arithmetic": 0.62, "code": 0.91,
                  "summarization": 0.85, "reasoning": 0.58},
        default_accuracy=0.80, context_window_tokens=200_000, max_output_tokens=8192,
    ),
    "fast": ModelProfile(
        name="fast", api="openai",
        input_cost_per_token=2.5e-7, output_cost_per_token=1e-6,
        ttft_ms=280.0, tokens_per_s=150.0, jitter=0.3,
        accuracy={"extraction": 0.93, "classification": 0.88, "arithmetic": 0.45, "code": 0.62,
                  "summarization": 0.91, "reasoning": 0.40},
        default_accuracy=0.70, context_window_tokens=128_000, max_output_tokens=4096,
    ),
    "tiny": ModelProfile(
        name="tiny", api="anthropic",
        input_cost_per_token=5e-8, output_cost_per_token=2e-7,
        ttft_ms=130.0, tokens_per_s=320.0, jitter=0.3,
        accuracy={"extraction": 0.60, "classification": 0.93, "arithmetic": 0.20, "code": 0.30,
                  "summarization": 0.55, "reasoning": 0.22},
        default_accuracy=0.50, context_window_tokens=16_384, max_output_tokens=2048,
    ),
}


# --------------------------------------------------------------------------------------------- helpers


def estimate_tokens(text: str) -> int:
    """Simulated token count of ``text``: about one token per 4 characters, at least 1."""
    return max(1, math.ceil(len(text) / 4))


def _unit(*parts: Any) -> float:
    """A deterministic float in [0, 1) from ``parts`` (sha256; not Python's salted ``hash()``)."""
    raw = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False).encode("utf-8")
    return int.from_bytes(hashlib.sha256(raw).digest()[:8], "big") / 2.0**64


def _hexid(*parts: Any, n: int = 24) -> str:
    raw = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(raw).hexdigest()[:n]


_WS = re.compile(r"\s+")


def _norm(text: str) -> str:
    return _WS.sub(" ", text).strip()


def _content_text(content: Any) -> str:
    """Text of an OpenAI or Anthropic message ``content`` (a string or a list of parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        pieces = []
        for part in content:
            if isinstance(part, str):
                pieces.append(part)
            elif isinstance(part, dict):
                if isinstance(part.get("text"), str):
                    pieces.append(part["text"])
                elif "content" in part:  # tool_result blocks
                    pieces.append(_content_text(part["content"]))
        return "\n".join(pieces)
    if isinstance(content, dict) and isinstance(content.get("text"), str):
        return content["text"]
    return str(content)


def default_datasets_dir() -> Path:
    """The directory of bundled prompt sets (:func:`llmlab.prompts.datasets_dir`: ``$LLMLAB_DATASETS_DIR`` or
    ``<repo>/datasets``)."""
    from llmlab.prompts import datasets_dir

    return datasets_dir()


def _bare_model(name: Any) -> str:
    """``"openai/frontier"`` / ``"sandbox/frontier"`` / ``"frontier"`` -> ``"frontier"``."""
    text = str(name or "").strip()
    return text.rsplit("/", 1)[-1] if "/" in text else text


# --------------------------------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class _Item:
    prompt_norm: str
    category: str
    reference: str
    item_id: str


class _Datasets:
    """The bundled prompt sets, reloaded when a ``*.jsonl`` file changes (tolerates a missing directory)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._signature: tuple = ()
        self._items: list[_Item] = []
        self._by_prompt: dict[str, _Item] = {}
        self._refs_by_category: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._checked_at = -1.0

    def _current_signature(self) -> tuple:
        try:
            files = sorted(self.directory.glob("*.jsonl"))
        except OSError:
            return ()
        sig = []
        for f in files:
            try:
                st = f.stat()
            except OSError:
                continue
            sig.append((str(f), st.st_mtime_ns, st.st_size))
        return tuple(sig)

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked_at < 0.5 and self._checked_at >= 0:
            return
        self._checked_at = now
        sig = self._current_signature()
        if sig == self._signature:
            return
        items: list[_Item] = []
        seen: set[str] = set()
        for path_str, _, _ in sig:
            path = Path(path_str)
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                logger.warning("sandbox: cannot read %s: %s", path, exc)
                continue
            for lineno, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    logger.debug("sandbox: %s:%d is not JSON, skipped", path, lineno)
                    continue
                if not isinstance(obj, dict) or not isinstance(obj.get("prompt"), str):
                    continue
                ref = obj.get("reference")
                if ref is None:
                    continue
                if not isinstance(ref, str):
                    ref = json.dumps(ref, ensure_ascii=False)
                prompt_norm = _norm(obj["prompt"])
                if not prompt_norm or prompt_norm in seen:
                    continue
                seen.add(prompt_norm)
                items.append(_Item(prompt_norm, str(obj.get("category") or ""), ref,
                                   str(obj.get("id") or f"{path.stem}:{lineno}")))
        by_prompt = {it.prompt_norm: it for it in items}
        refs: dict[str, list[str]] = {}
        for it in items:
            refs.setdefault(it.category, [])
            if it.reference not in refs[it.category]:
                refs[it.category].append(it.reference)
        # Longest prompts first, so the first contained prompt is the longest match.
        items.sort(key=lambda it: len(it.prompt_norm), reverse=True)
        self._items, self._by_prompt, self._refs_by_category = items, by_prompt, refs
        self._signature = sig
        logger.debug("sandbox: loaded %d bundled items from %s", len(items), self.directory)

    def match(self, text: str) -> _Item | None:
        """The bundled item whose prompt is contained in ``text`` (whitespace-normalised), longest first."""
        with self._lock:
            self._refresh()
            t = _norm(text)
            exact = self._by_prompt.get(t)
            if exact is not None:
                return exact
            for it in self._items:
                if len(it.prompt_norm) <= len(t) and it.prompt_norm in t:
                    return it
            return None

    def other_references(self, category: str) -> list[str]:
        with self._lock:
            return list(self._refs_by_category.get(category, []))

    def __len__(self) -> int:
        with self._lock:
            self._refresh()
            return len(self._items)


# --------------------------------------------------------------------------------------------- answers


def _wrong_number(reference: str, u: float) -> str | None:
    text = reference.strip()
    if not re.fullmatch(r"[-+]?\d+(\.\d+)?", text):
        return None
    deltas = (-3, -2, -1, 1, 2, 3, 10, -10)
    k = deltas[int(u * len(deltas)) % len(deltas)]
    if "." in text:
        decimals = len(text.split(".", 1)[1])
        value = float(text) + k * 10.0**-decimals
        out = f"{value:.{decimals}f}"
    else:
        out = str(int(text) + k)
    return out if out != text else str(int(float(text)) + 7)


def _wrong_json(reference: str, u: float) -> str | None:
    text = reference.strip()
    if not text.startswith("{"):
        return None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or not obj:
        return None
    keys = list(obj)
    key = keys[int(u * len(keys)) % len(keys)]
    value = obj[key]
    if isinstance(value, bool):
        new: Any = not value
    elif isinstance(value, (int, float)):
        new = value + 1
    elif isinstance(value, str):
        new = "unknown" if value.strip().lower() != "unknown" else "n/a"
    elif isinstance(value, list):
        new = value[:-1] if value else ["unknown"]
    elif isinstance(value, dict):
        new = {} if value else {"unknown": True}
    else:
        new = "unknown"
    obj[key] = new
    return json.dumps(obj, ensure_ascii=False)


def _wrong_text(reference: str, others: Sequence[str], u: float) -> str:
    ref_l = reference.strip().lower()
    pool = [o for o in others if o.strip() and o.strip().lower() != ref_l and ref_l not in o.lower()]
    candidates: list[str] = []
    if pool:
        other = pool[int(u * len(pool)) % len(pool)]
        if len(other) > 160:
            other = other[:160].rstrip() + "..."
        candidates.append(f"I am not certain; it may be {other}")
        candidates.append(other)
    candidates += [
        "I am not certain; it may be something else entirely.",
        "I cannot determine the answer from the information given.",
        "Unclear.",
        f"unknown-{_hexid(reference, n=12)}",
    ]
    for c in candidates:
        if not ref_l or ref_l not in c.lower():
            return c
    return "?" if ref_l != "?" else "!"


_FILLER = (
    "This is a simulated response from the llmlab sandbox.",
    "The figures it reports are invented for testing.",
    "A real model would answer the question in more detail.",
    "No external service was contacted to produce it.",
    "It is deterministic for a given seed and request.",
)


def _generic_answer(model: str, prompt: str, max_tokens: int | None, u: float) -> str:
    start = _norm(prompt)[:60]
    head = f'[sandbox/{model}] Simulated answer to: "{start}{"..." if len(_norm(prompt)) > 60 else ""}".'
    target_tokens = 24 + int(u * 48)
    pieces = [head]
    i = int(u * 1000)
    while estimate_tokens(" ".join(pieces)) < target_tokens:
        pieces.append(_FILLER[i % len(_FILLER)])
        i += 1
    return " ".join(pieces)


@dataclass(frozen=True)
class SandboxAnswer:
    """One simulated answer: ``text``; ``finish`` ``"stop"`` or ``"length"`` (cut at max_tokens); ``kind``
    ``"echo"``, ``"judge"``, ``"correct"``, ``"wrong"`` (a bundled item) or ``"generic"`` (unknown prompt)."""

    text: str
    finish: Literal["stop", "length"]
    kind: str


# --------------------------------------------------------------------------------------------- faults


@dataclass
class _FaultRule:
    rule_id: int
    kind: str
    model: str
    times: int | None
    rate: float | None
    retry_after_s: float
    hang_s: float
    fired: int = 0
    seen: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.rule_id, "kind": self.kind, "model": self.model, "times": self.times, "rate": self.rate,
            "retry_after_s": self.retry_after_s, "hang_s": self.hang_s, "fired": self.fired, "seen": self.seen,
        }


@dataclass(frozen=True)
class _Fault:
    kind: str
    retry_after_s: float = 1.0
    hang_s: float = 30.0


def _normalize_kind(kind: Any) -> str:
    k = str(kind).strip().lower()
    if k not in FAULT_KINDS:
        raise FaultSpecError(f"unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
    return k


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
        site = web.TCPSite(runner, self.host, self._requested_port, shutdown_timeout=0.5)
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

    def _record(self, model: str, path: str, stream: bool, outcome: str, http_status: int | None) -> None:
        """Called with the lock held."""
        self._by_model[model] += 1
        self._by_outcome[outcome] += 1
        self._by_model_outcome.setdefault(model, Counter())[outcome] += 1
        self._log.append({
            "model": model, "path": path, "stream": stream, "outcome": outcome, "http_status": http_status,
            "received_at_monotonic_s": time.monotonic(),
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
        ``outcome``, ``http_status`` (None when no HTTP response was sent) and ``received_at_monotonic_s``
        (``time.monotonic()`` in this process)."""
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
        if path.startswith("/_sandbox/") or path.startswith("/v1/_sandbox/"):
            return await self._control(request, path.rsplit("/_sandbox/", 1)[1])
        if path.endswith("/chat/completions") and method == "POST":
            return await self._model_request(request, "openai")
        if path.endswith("/messages") and method == "POST":
            return await self._model_request(request, "anthropic")
        if path.endswith("/models") and method == "GET":
            return self._models_response()
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
                self._record(model or "(none)", path, stream, "unknown_model", 404)
                fault = None
            else:
                fault = self._decide_fault(model)
                if fault is not None:
                    self._record(model, path, stream, fault.kind, _fault_http_status(fault.kind, stream))
                elif input_tokens > profile.context_window_tokens:
                    self._record(model, path, stream, "context_window", 400)
                else:
                    self._record(model, path, stream, "ok", 200)

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
        answers = [self.answer(model, messages, system=system, max_tokens=_int_or_none(max_tokens),
                               temperature=_float_or_none(temperature), seed=seed, choice_index=i)
                   for i in range(n)]
        output_tokens = sum(estimate_tokens(a.text) for a in answers)
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
            return _error_response(api, 401, f"Incorrect API key provided: {key} (simulated).", "invalid_api_key")
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


class _NoResponse(web.StreamResponse):
    """Returned after the connection was closed on purpose: aiohttp must not write anything."""

    async def prepare(self, request: web.BaseRequest) -> None:  # type: ignore[override]
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


@dataclass
class _Ctx:
    api: str
    profile: ModelProfile
    answers: list[SandboxAnswer]
    input_tokens: int
    output_tokens: int
    ttft_s: float
    gen_s: float
    request_id: str
    include_usage: bool


def _fault_http_status(kind: str, stream: bool) -> int | None:
    """The HTTP status a fault answers with (None: the connection is closed with no response)."""
    if kind.isdigit():
        return int(kind)
    return {"malformed": 200, "context_window": 400, "cut_stream": 200 if stream else None}.get(kind)


def _request_seed(body: Mapping[str, Any], headers: Mapping[str, str]) -> str | None:
    """The request's sample seed: ``seed`` (OpenAI), the ``X-Sandbox-Seed`` header (any API; LiteLLM sends it
    with ``extra_headers``), or ``extra_body.seed`` / ``metadata.seed`` as LiteLLM forwards them to Anthropic."""
    candidates = [body.get("seed"), headers.get("x-sandbox-seed")]
    for holder in ("extra_body", "metadata"):
        if isinstance(body.get(holder), dict):
            candidates.append(body[holder].get("seed"))
    for c in candidates:
        if c is not None and str(c).strip() != "":
            return str(c).strip()
    return None


def _int_or_none(v: Any) -> int | None:
    try:
        return None if v is None else int(v)
    except (TypeError, ValueError):
        return None


def _float_or_none(v: Any) -> float | None:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


def _ok_headers(ctx: _Ctx) -> dict[str, str]:
    return {"x-request-id": ctx.request_id, "x-llmlab-sandbox": "simulated",
            "openai-processing-ms": str(int((ctx.ttft_s + ctx.gen_s) * 1000))}


_ANTHROPIC_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                          404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                          500: "api_error", 502: "api_error", 503: "api_error", 504: "api_error"}
_OPENAI_ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "invalid_request_error",
                       404: "invalid_request_error", 429: "rate_limit_exceeded", 500: "server_error",
                       502: "server_error", 503: "server_error", 504: "server_error"}


def _error_response(api: str, status: int, message: str, code: str, *, param: str | None = None,
                    headers: Mapping[str, str] | None = None) -> web.Response:
    """An error in the JSON shape of ``api`` (OpenAI: {"error": {...}}; Anthropic: {"type": "error", ...})."""
    if api == "anthropic":
        body: dict[str, Any] = {"type": "error",
                                "error": {"type": _ANTHROPIC_ERROR_TYPES.get(status, "api_error"), "message": message}}
    else:
        body = {"error": {"message": message, "type": _OPENAI_ERROR_TYPES.get(status, "server_error"),
                          "param": param, "code": code}}
    return web.json_response(body, status=status, headers=dict(headers or {}))


def _context_window_response(api: str, profile: ModelProfile, input_tokens: int) -> web.Response:
    message = (f"This model's maximum context length is {profile.context_window_tokens} tokens. However, your "
               f"messages resulted in {input_tokens} tokens. Please reduce the length of the messages.")
    if api == "anthropic":
        message = f"prompt is too long: {input_tokens} tokens > {profile.context_window_tokens} maximum. " + message
    return _error_response(api, 400, message, "context_length_exceeded", param="messages")


def _split_text(text: str, max_chunks: int = 48) -> list[str]:
    """Split ``text`` into stream pieces (words with their trailing spaces), at most ``max_chunks``."""
    words = re.findall(r"\S+\s*|\s+", text)
    if not words:
        return [text] if text else []
    per = max(1, math.ceil(len(words) / max_chunks))
    return ["".join(words[i:i + per]) for i in range(0, len(words), per)]


def _sse(obj: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return (head + "data: " + json.dumps(obj, ensure_ascii=False) + "\n\n").encode("utf-8")


def _usage_openai(ctx: _Ctx) -> dict[str, Any]:
    return {"prompt_tokens": ctx.input_tokens, "completion_tokens": ctx.output_tokens,
            "total_tokens": ctx.input_tokens + ctx.output_tokens}


def _openai_body(ctx: _Ctx) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{ctx.request_id}", "object": "chat.completion", "created": int(time.time()),
        "model": ctx.profile.name, "system_fingerprint": "fp_llmlab_sandbox",
        "choices": [{"index": i, "message": {"role": "assistant", "content": a.text, "refusal": None},
                     "logprobs": None, "finish_reason": a.finish} for i, a in enumerate(ctx.answers)],
        "usage": _usage_openai(ctx),
    }


def _anthropic_stop(a: SandboxAnswer) -> str:
    return "max_tokens" if a.finish == "length" else "end_turn"


def _anthropic_body(ctx: _Ctx) -> dict[str, Any]:
    a = ctx.answers[0]
    return {
        "id": f"msg_{ctx.request_id}", "type": "message", "role": "assistant", "model": ctx.profile.name,
        "content": [{"type": "text", "text": a.text}], "stop_reason": _anthropic_stop(a), "stop_sequence": None,
        "usage": {"input_tokens": ctx.input_tokens, "output_tokens": ctx.output_tokens},
    }


def _openai_events(ctx: _Ctx) -> list[tuple[str, bytes]]:
    """(kind, bytes) pairs: kind ``content`` marks a paced chunk, ``final`` the chunks a cut stream omits."""
    created = int(time.time())
    base = {"id": f"chatcmpl-{ctx.request_id}", "object": "chat.completion.chunk", "created": created,
            "model": ctx.profile.name, "system_fingerprint": "fp_llmlab_sandbox"}
    extra = {"usage": None} if ctx.include_usage else {}
    out: list[tuple[str, bytes]] = []
    for i, a in enumerate(ctx.answers):
        pieces = _split_text(a.text) or [""]
        for j, piece in enumerate(pieces):
            delta: dict[str, Any] = {"content": piece}
            if j == 0:
                delta = {"role": "assistant", "content": piece, "refusal": None}
            out.append(("content", _sse({**base, "choices": [{"index": i, "delta": delta, "logprobs": None,
                                                               "finish_reason": None}], **extra})))
        out.append(("final", _sse({**base, "choices": [{"index": i, "delta": {}, "logprobs": None,
                                                         "finish_reason": a.finish}], **extra})))
    if ctx.include_usage:
        out.append(("final", _sse({**base, "choices": [], "usage": _usage_openai(ctx)})))
    out.append(("final", b"data: [DONE]\n\n"))
    return out


def _anthropic_events(ctx: _Ctx) -> list[tuple[str, bytes]]:
    a = ctx.answers[0]
    out: list[tuple[str, bytes]] = [
        ("head", _sse({"type": "message_start", "message": {
            "id": f"msg_{ctx.request_id}", "type": "message", "role": "assistant", "model": ctx.profile.name,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": ctx.input_tokens, "output_tokens": 1}}}, "message_start")),
        ("head", _sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                      "content_block_start")),
        ("head", _sse({"type": "ping"}, "ping")),
    ]
    for piece in _split_text(a.text) or [""]:
        out.append(("content", _sse({"type": "content_block_delta", "index": 0,
                                     "delta": {"type": "text_delta", "text": piece}}, "content_block_delta")))
    out += [
        ("final", _sse({"type": "content_block_stop", "index": 0}, "content_block_stop")),
        ("final", _sse({"type": "message_delta", "delta": {"stop_reason": _anthropic_stop(a), "stop_sequence": None},
                        "usage": {"output_tokens": ctx.output_tokens}}, "message_delta")),
        ("final", _sse({"type": "message_stop"}, "message_stop")),
    ]
    return out


# --------------------------------------------------------------------------------------------- remote control


class RemoteSandbox:
    """Control a sandbox running in another process through its ``/_sandbox/*`` HTTP endpoints.

    Args:
        url: the sandbox URL (``http://127.0.0.1:PORT``; a trailing ``/v1`` is accepted).
        timeout_s: per control request, seconds.

    Every method raises :class:`SandboxError` when the sandbox does not answer or refuses the request.
    """

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        url = url.rstrip("/")
        self.url = url[:-3] if url.endswith("/v1") else url
        self.timeout_s = timeout_s

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310 - loopback URL
                return json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            raise SandboxError(f"sandbox refused {method} {path}: HTTP {exc.code}: {detail}") from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise SandboxError(f"sandbox at {self.url} did not answer {method} {path}: {exc}") from exc

    def inject(self, kind: str | int, model: str = "*", times: int | None = None, rate: float | None = None,
               retry_after_s: float = 1.0, hang_s: float = 30.0) -> dict[str, Any]:
        """Same as :meth:`Sandbox.inject`, over HTTP. Returns the rule as a dict."""
        return self._call("POST", "/_sandbox/faults", {"kind": str(kind), "model": model, "times": times,
                                                       "rate": rate, "retry_after_s": retry_after_s,
                                                       "hang_s": hang_s})["fault"]

    def clear_faults(self) -> None:
        """Same as :meth:`Sandbox.clear_faults`, over HTTP."""
        self._call("DELETE", "/_sandbox/faults")

    def faults(self) -> list[dict[str, Any]]:
        """Same as :meth:`Sandbox.faults`, over HTTP."""
        return self._call("GET", "/_sandbox/faults")["faults"]

    def stats(self) -> dict[str, Any]:
        """Same as :meth:`Sandbox.stats`, over HTTP."""
        return self._call("GET", "/_sandbox/stats")

    def reset_stats(self) -> None:
        """Same as :meth:`Sandbox.reset_stats`, over HTTP."""
        self._call("DELETE", "/_sandbox/stats")


# --------------------------------------------------------------------------------------------- entry points


_shared_lock = threading.Lock()
_shared: Sandbox | None = None


def ensure_sandbox(**kw: Any) -> Sandbox:
    """Start the process-wide sandbox if none is running (else reuse it) and return it.

    Sets ``os.environ["LLMLAB_SANDBOX_API_BASE"]`` to its ``api_base`` (the value exported LiteLLM configs read
    through ``os.environ/LLMLAB_SANDBOX_API_BASE``) and, unless set, ``LLMLAB_SANDBOX_API_KEY`` (any value works). ``kw`` goes to :class:`Sandbox` when one is started and is
    ignored (with a debug log) when one is reused.

    Raises:
        SandboxError: it could not start.
    """
    global _shared
    with _shared_lock:
        if _shared is not None and _shared.running:
            if kw:
                logger.debug("ensure_sandbox: reusing the running sandbox, ignoring %s", sorted(kw))
        else:
            _shared = Sandbox(**kw).start()
        os.environ[SANDBOX_API_BASE_ENV] = _shared.api_base
        # Exported configs read the key as os.environ/LLMLAB_SANDBOX_API_KEY; the sandbox accepts any key.
        os.environ.setdefault("LLMLAB_SANDBOX_API_KEY", "sandbox-key")
        return _shared


async def serve_forever(host: str = "127.0.0.1", port: int = 0, *,
                        on_ready: Callable[[Sandbox], None] | None = None, **kw: Any) -> None:
    """Run a sandbox on the current event loop until cancelled (Ctrl-C under ``asyncio.run``).

    Args:
        host, port: where to listen (``port=0``: a free port).
        on_ready: called with the listening :class:`Sandbox` (read ``.url`` from it).
        kw: the other :class:`Sandbox` arguments (seed, latency_scale, fault_rate, ...).
    """
    sb = Sandbox(host=host, port=port, **kw)
    await sb._astart()
    try:
        if on_ready is not None:
            on_ready(sb)
        await asyncio.Event().wait()
    finally:
        await sb._astop()


def main(argv: Sequence[str] | None = None) -> int:
    """``llmlab sandbox``: run the sandbox in the foreground until Ctrl-C; prints one line with its URL.

    Returns the process exit code (0 after Ctrl-C, 2 on bad arguments, 1 when it cannot listen).
    """
    parser = argparse.ArgumentParser(prog="llmlab sandbox",
                                     description="Run the llmlab sandbox: a simulated LLM provider on loopback.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency-scale", type=float, default=1.0, help="multiplies simulated latencies")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of requests that fail (0..1)")
    parser.add_argument("--fault-kinds", default=None, help=f"comma-separated, from: {','.join(FAULT_KINDS)}")
    parser.add_argument("--datasets-dir", default=None)
    args = parser.parse_args(list(argv) if argv is not None else None)
    kinds = [k for k in args.fault_kinds.split(",") if k.strip()] if args.fault_kinds else None

    def ready(sb: Sandbox) -> None:
        print(f"llmlab sandbox (simulated models: {', '.join(sb.profiles)}) listening on {sb.url} "
              f"- api_base {sb.api_base} - Ctrl-C to stop", flush=True)

    try:
        asyncio.run(serve_forever(args.host, args.port, on_ready=ready, seed=args.seed,
                                  latency_scale=args.latency_scale, fault_rate=args.fault_rate,
                                  fault_kinds=kinds, datasets_dir=args.datasets_dir))
    except KeyboardInterrupt:
        return 0
    except FaultSpecError as exc:
        print(f"llmlab sandbox: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"llmlab sandbox: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
