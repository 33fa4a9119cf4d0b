"""Which failed attempts are retried: one table, read from what the provider sent.

Every failed attempt is classified into ``(retryable, error_type, http_status)`` by :func:`classify_attempt`:

1. **A response arrived** (the :class:`~llmlab.runner.wire.Wire` saw a status line): its HTTP status decides,
   through :data:`STATUS_TABLE`, whatever exception class LiteLLM turned it into. A 400 whose body says the
   context window was exceeded is ``ContextWindowExceededError``. A 2xx whose body broke off is a cut stream
   (``StreamCutError``) or a dropped connection (``APIConnectionError``); a 2xx body that arrived whole but could
   not be used is ``MalformedResponseError``.
2. **The request was sent, no response came**: our own deadline is ``Timeout``; anything else is a dropped
   connection, ``APIConnectionError``.
3. **Nothing reached the wire** (or the provider goes through LiteLLM's own clients, see
   :mod:`llmlab.runner.wire`): LiteLLM's exception class and ``status_code`` decide (:func:`classify_error`).

The retry table (also in the README's reliability section)::

    retried      408 409 425 429 500 502 503 504 529, Timeout, APIConnectionError, MalformedResponseError,
                 StreamCutError
    never        400 401 402 403 404 413 422, ContextWindowExceededError, any other 4xx

``Retry-After`` / ``retry-after-ms`` come from the response headers on the wire (:func:`retry_after_s` reads
LiteLLM's exception where nothing was seen on the wire).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, NamedTuple

from llmlab._litellm import litellm
from llmlab.errors import MalformedResponseError, StreamCutError

log = logging.getLogger(__name__)

__all__ = [
    "NON_RETRYABLE_STATUS",
    "RETRYABLE_STATUS",
    "STATUS_TABLE",
    "Classified",
    "MalformedResponseError",
    "StreamCutError",
    "backoff_s",
    "classify_attempt",
    "classify_error",
    "retry_after_s",
]

#: HTTP status → (error_type, retryable). The one retry table; statuses not listed: 5xx retry, 4xx do not.
STATUS_TABLE: dict[int, tuple[str, bool]] = {
    400: ("BadRequestError", False),
    401: ("AuthenticationError", False),
    402: ("PaymentRequiredError", False),
    403: ("PermissionDeniedError", False),
    404: ("NotFoundError", False),
    408: ("Timeout", True),
    409: ("ConflictError", True),
    413: ("RequestTooLargeError", False),
    422: ("UnprocessableEntityError", False),
    425: ("TooEarlyError", True),
    429: ("RateLimitError", True),
    500: ("InternalServerError", True),
    502: ("BadGatewayError", True),
    503: ("ServiceUnavailableError", True),
    504: ("Timeout", True),
    529: ("OverloadedError", True),
}
RETRYABLE_STATUS = frozenset(s for s, (_, retry) in STATUS_TABLE.items() if retry)
NON_RETRYABLE_STATUS = frozenset(s for s, (_, retry) in STATUS_TABLE.items() if not retry)


class Classified(NamedTuple):
    retryable: bool
    error_type: str
    http_status: int | None


def status_class(status: int) -> tuple[str, bool]:
    """``(error_type, retryable)`` for an HTTP error status (the table, then 5xx retry / 4xx not)."""
    if status in STATUS_TABLE:
        return STATUS_TABLE[status]
    if status >= 500:
        return "InternalServerError", True
    return "BadRequestError", False


_CONNECTION_MARKERS = (
    "connection error", "server disconnected", "connection closed", "connection reset", "connection aborted",
    "connection refused", "remoteprotocolerror", "peer closed connection", "payload is not completed",
    "incomplete chunked read", "clientpayloaderror", "serverdisconnectederror", "llmlab blocked",
)
_MALFORMED_MARKERS = (
    "unterminated string", "expecting value", "expecting property name", "unable to get json response",
    "jsondecodeerror", "extra data", "invalid control character", "expecting ',' delimiter",
)
_CONTEXT_MARKERS = (
    "context_length_exceeded", "context window", "context length", "maximum context", "prompt is too long",
    "too many tokens",
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

    Read from LiteLLM's exception, for requests not seen on the wire: LiteLLM keeps the provider's headers on
    ``exc.litellm_response_headers``; ``exc.response.headers`` and ``exc.headers`` are read too. Only the
    delta-seconds form is parsed (an HTTP date gives None).
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


def classify_attempt(exc: BaseException, wire: Any | None) -> Classified:
    """Classify one failed attempt from the wire (``wire``: the attempt's :class:`~llmlab.runner.wire.Wire`, or
    None where nothing was watched). See the module docstring for the rules."""
    if isinstance(exc, StreamCutError):
        return Classified(True, "StreamCutError", None)
    if wire is None or not wire.sent:
        return classify_error(exc)
    if wire.status is not None and wire.status >= 400:
        etype, retryable = status_class(wire.status)
        if wire.status in (400, 413, 422) and _is_context_window(exc):
            return Classified(False, "ContextWindowExceededError", wire.status)
        return Classified(retryable, etype, wire.status)
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return Classified(True, "Timeout", None)
    if wire.status is not None:  # a 2xx (or 3xx) answer that could not be used
        if wire.body_error:  # the connection broke while the body was arriving
            return Classified(True, "StreamCutError" if wire.body_bytes else "APIConnectionError", None)
        text = _chain_text(exc)
        if isinstance(exc, (MalformedResponseError, json.JSONDecodeError)) or any(m in text for m in _MALFORMED_MARKERS):
            return Classified(True, "MalformedResponseError", None)
        if not wire.body_done and any(m in text for m in _CONNECTION_MARKERS):
            return Classified(True, "APIConnectionError", None)
        return Classified(True, "MalformedResponseError", None)
    # sent, no response
    if _is_timeout(exc):
        return Classified(True, "Timeout", None)
    return Classified(True, "APIConnectionError", None)


def _is_timeout(exc: BaseException) -> bool:
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return True
    try:
        return isinstance(exc, litellm().Timeout)
    except Exception:  # noqa: BLE001
        return False


def _is_context_window(exc: BaseException) -> bool:
    ll = litellm()
    if isinstance(exc, ll.ContextWindowExceededError):
        return True
    text = _chain_text(exc)
    return any(m in text for m in _CONTEXT_MARKERS)


def classify_error(exc: BaseException) -> Classified:
    """``(retryable, error_type, http_status)`` from an exception alone (nothing was seen on the wire).

    ``error_type`` is LiteLLM's exception class name (``RateLimitError``, ``InternalServerError``, ...), except
    where LiteLLM's mapping hides what happened: a dropped connection is ``APIConnectionError``, an unparsable
    body ``MalformedResponseError`` and a stream cut mid-way ``StreamCutError``, all with ``http_status = None``.
    A status code on the exception is classified through :data:`STATUS_TABLE`.
    """
    ll = litellm()
    status = _status(exc)
    if isinstance(exc, StreamCutError):
        return Classified(True, "StreamCutError", None)
    if isinstance(exc, MalformedResponseError):
        return Classified(True, "MalformedResponseError", None)
    if isinstance(exc, ll.ContextWindowExceededError):
        return Classified(False, "ContextWindowExceededError", status or 400)
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError, ll.Timeout)):
        return Classified(True, "Timeout", None if status in (None, 408) else status)
    if status in (None, 500):
        text = _chain_text(exc)
        if any(m in text for m in _MALFORMED_MARKERS) or isinstance(exc, json.JSONDecodeError):
            return Classified(True, "MalformedResponseError", None)
        if any(m in text for m in _CONNECTION_MARKERS) or isinstance(exc, ConnectionError):
            return Classified(True, "APIConnectionError", None)
    if status is not None and status >= 400:
        _, retryable = status_class(status)  # LiteLLM's OpenAI mapping reports a 403 as BadRequestError
        return Classified(retryable, "PermissionDeniedError" if status == 403 else type(exc).__name__, status)
    if isinstance(exc, (ll.APIConnectionError, ll.InternalServerError, ll.ServiceUnavailableError,
                        ll.APIError, ConnectionError, json.JSONDecodeError)):
        return Classified(True, type(exc).__name__, status)
    if isinstance(exc, ll.BadRequestError):
        return Classified(False, type(exc).__name__, status or 400)
    return Classified(False, type(exc).__name__, status)


def backoff_s(attempt: int, base_s: float, max_s: float, jitter: float) -> float:
    """Exponential backoff before retry number ``attempt`` (1-based): ``base × 2^(attempt-1)`` capped at ``max``,
    times ``0.5 + jitter`` (``jitter`` in [0, 1): a factor in [0.5, 1.5))."""
    return min(max_s, base_s * 2 ** (attempt - 1)) * (0.5 + jitter)
