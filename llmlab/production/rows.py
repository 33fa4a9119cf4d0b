"""LiteLLM's logging events and per-attempt hooks → llmlab call rows (plus prompt rows and feedback scores). Pure: no
LiteLLM import.

A production row is one HTTP request to a deployment (an *attempt*): a retry or a fallback is a row of its own,
and all of a user request's attempts share one ``trace_id`` (the request id: LiteLLM's ``litellm_trace_id``; behind
the proxy every attempt also shares ``litellm_call_id``, the proxy's ``x-litellm-call-id``). LiteLLM reports an
attempt in one of three ways, each turned into the same row shape:

- a success: ``async_log_success_event`` with ``kwargs["standard_logging_object"]`` (LiteLLM's
  ``StandardLoggingPayload``): :func:`event_rows`;
- a failed attempt: ``async_post_call_failure_deployment_hook`` (once per failed deployment call, retries and
  fallbacks included), which carries the attempt's request kwargs, not a payload: :func:`failed_attempt_event`
  shapes them like a failure event for :func:`event_rows`;
- a failure event (``async_log_failure_event``): LiteLLM sends it once per logging object, so for most failures it
  repeats an attempt the hook already reported (the logger skips those); the rest are a stream cut after the
  call returned (an attempt the hook never saw) and a Router failure that reached no deployment (every deployment
  of the group cooling down): a row with ``attempts = 0``.

``attempts`` is the number of HTTP requests the row stands for: 1, or 0 for a cache hit or a failure before any
deployment was called; so ``sum(attempts)`` over a run (plus the attempts the logger reports dropped) is the number
of provider requests made. :func:`event_rows` reads the payload first and LiteLLM's ``litellm_params.metadata`` for
what the payload lacks (fallbacks taken, the caller's metadata outside the proxy).

Columns set (see :data:`llmlab.store.CALL_COLUMNS`): ``model`` is the llmlab name of the deployment that was
called (``sandbox/<name>`` for the sandbox, else ``provider/model``; the model group for a row with no deployment);
``model_group`` the LiteLLM model group asked
for (the original one, before fallbacks); ``deployment`` the router's deployment id (``model_info.id``);
``fallbacks_taken`` LiteLLM's ``attempted_fallbacks``; ``latency_ms`` start to end of this request; ``ttft_ms``
start to first chunk, for streams only; ``cost_usd`` LiteLLM's ``response_cost`` (from its model cost map or the
deployment's prices; NULL when LiteLLM could not price the call, and for failed calls); ``metadata`` a JSON
object ``{"tags": [...], ...the caller's metadata, "routing_decision": {...}}`` with secrets redacted, where
``routing_decision`` (present when llmlab's routing plugin routed the request) is the plugin's decision:
``model, deployment, policy_kind, score, threshold, decide_ms`` (or ``fallback_group, tried`` on a fallback); in
SQL ``metadata->>'$.routing_decision.model'``. ``prompt_id`` / ``prompt_hash`` are
:func:`llmlab.prompts.prompt_id_for` of the last user message (and the system messages), so production calls
match the experiment's prompts by content; text is kept only with ``capture="full"`` (redacted).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import uuid
from datetime import datetime, timezone
from typing import Any

from llmlab.prompts import prompt_id_for
from llmlab.redaction import redact
from llmlab.settings import SANDBOX_API_BASE_ENV
from llmlab.store import new_call_row, utc_now

__all__ = ["CAPTURE_MODES", "FEEDBACK_KEY", "CATEGORY_KEY", "attempt_key", "event_rows", "failed_attempt_event",
           "feedback_score", "prompt_text"]

#: ``hash``: a content hash of prompt and answer, no text (the default); ``full``: the text too (redacted).
CAPTURE_MODES = ("hash", "full")
#: Request metadata key whose value becomes a feedback score of the call's successful attempt (a number 0..1, a
#: bool, or ``{"score": ..., "scale": "unit" | "binary" | "stars", "comment": ...}``).
FEEDBACK_KEY = "llmlab_feedback"
#: Request metadata key naming the task category (else the first request tag that is not ``default``).
CATEGORY_KEY = "llmlab_category"

# LiteLLM's own keys in litellm_params.metadata (router bookkeeping, proxy auth): never the caller's metadata.
_INTERNAL_KEYS = {
    "model_group", "model_group_alias", "attempted_fallbacks", "original_model_group", "model_group_size",
    "attempted_retries", "max_retries", "tag_routing", "api_base", "deployment_model_name", "caching_groups",
    "llm_api_timing_windows", "hidden_params", "previous_models", "request_retry_count", "deployment", "model_info",
    "headers", "endpoint", "requester_metadata", "litellm_api_version", "global_max_parallel_requests",
    "user_api_key", "user_api_end_user_max_budget", "litellm_parent_otel_span", "requester_ip_address",
    "user_agent", "applied_guardrails", "standard_logging_object", "spend_logs_metadata", "previous_model",
    "routing_plugin_signals",  # LiteLLM's routing plugins' signals: llmlab's own is kept as routing_decision
}
_INTERNAL_PREFIXES = ("_", "user_api_key", "litellm", "proxy_", "mcp_")
_METADATA_MAX_CHARS = 4000
_AUTO_TAG_PREFIXES = ("User-Agent:",)  # tags the proxy adds itself: never a task category


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return "" if content is None else str(content)


def prompt_text(messages: Any) -> tuple[str, str | None]:
    """``(text, system)`` of a chat request: the last user message's text and the system messages joined by a
    newline (None without one); for a plain string or another shape, its string form and None."""
    if isinstance(messages, str):
        return messages, None
    if not isinstance(messages, list):
        return ("" if messages is None else json.dumps(messages, sort_keys=True, default=str)), None
    system = [_content_text(m.get("content")) for m in messages if isinstance(m, dict) and m.get("role") == "system"]
    users = [_content_text(m.get("content")) for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    text = users[-1] if users else json.dumps(messages, sort_keys=True, default=str)
    return text, ("\n".join(system) if system else None)


def _response_text(response_obj: Any, slo: dict[str, Any]) -> tuple[str | None, str | None]:
    """``(answer text, finish_reason)`` from the response object, else the payload's response dict."""
    for source in (response_obj, slo.get("response")):
        try:
            choices = source["choices"] if isinstance(source, dict) else getattr(source, "choices", None)
            if not choices:
                continue
            first = choices[0]
            message = first["message"] if isinstance(first, dict) else getattr(first, "message", None)
            content = message.get("content") if isinstance(message, dict) else getattr(message, "content", None)
            finish = first.get("finish_reason") if isinstance(first, dict) else getattr(first, "finish_reason", None)
            return (None if content is None else _content_text(content)), finish
        except (KeyError, IndexError, TypeError, AttributeError):
            continue
    return None, None


def _llmlab_model(slo: dict[str, Any], params: dict[str, Any]) -> str:
    """The llmlab name of the deployment called: ``sandbox/<name>`` for the sandbox, else ``provider/model``."""
    model = str(slo.get("model") or params.get("model") or "unknown")
    provider = slo.get("custom_llm_provider")
    api_base = str(slo.get("api_base") or (slo.get("hidden_params") or {}).get("api_base") or params.get("api_base")
                   or (params.get("metadata") or {}).get("api_base") or "").rstrip("/")
    sandbox_base = os.environ.get(SANDBOX_API_BASE_ENV, "").rstrip("/").removesuffix("/v1")
    headers = (slo.get("hidden_params") or {}).get("additional_headers") or {}
    # the sandbox's address (an Anthropic api_base ends in /v1/messages), or its response header
    if (sandbox_base and api_base.startswith(sandbox_base)) or headers.get("llm_provider-x-llmlab-sandbox"):
        return "sandbox/" + model.rsplit("/", 1)[-1]
    if "/" not in model and provider:
        return f"{provider}/{model}"
    return model


def _jsonable(value: Any, depth: int = 0) -> Any:
    if depth > 4:
        return str(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, depth + 1) for v in value]
    return str(value)


def _caller_metadata(slo: dict[str, Any], litellm_metadata: dict[str, Any]) -> dict[str, Any]:
    """The metadata the application set on the request (the proxy's ``requester_metadata``, else the SDK's
    ``metadata`` without LiteLLM's own keys)."""
    requester = (slo.get("metadata") or {}).get("requester_metadata")
    source = requester if isinstance(requester, dict) and requester else litellm_metadata
    return {k: v for k, v in source.items()
            if k not in _INTERNAL_KEYS and not str(k).startswith(_INTERNAL_PREFIXES) and k != "tags"}


def _utc(ts: Any) -> datetime:
    if isinstance(ts, datetime):
        return ts.astimezone(timezone.utc).replace(tzinfo=None) if ts.tzinfo else ts
    try:
        return datetime.fromtimestamp(float(ts), timezone.utc).replace(tzinfo=None)
    except (TypeError, ValueError, OverflowError, OSError):
        return utc_now()


def _ms(a: Any, b: Any) -> float | None:
    try:
        value = (float(b) - float(a)) * 1000.0
    except (TypeError, ValueError):
        return None
    return round(value, 3) if math.isfinite(value) and value >= 0 else None


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def feedback_score(value: Any) -> tuple[float, float, str | None]:
    """``(score 0..1, raw value, comment)`` from a feedback value: a number in 0..1, a bool, or a dict
    ``{"score": x, "scale": "unit" | "binary" | "stars", "comment": "..."}`` (stars: 1..5).

    Raises ValueError naming the problem (out of range, unknown scale, not a number)."""
    comment = None
    scale = "unit"
    if isinstance(value, dict):
        comment = value.get("comment")
        scale = str(value.get("scale") or "unit")
        value = value.get("score")
    if isinstance(value, bool):
        return float(value), float(value), comment
    try:
        raw = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"feedback score must be a number or a bool, got {value!r}") from None
    if scale == "binary":
        return float(bool(raw)), raw, comment
    if scale == "stars":
        if not 1 <= raw <= 5:
            raise ValueError(f"star feedback must be 1 to 5, got {raw!r}")
        return (raw - 1) / 4, raw, comment
    if scale != "unit":
        raise ValueError(f"unknown feedback scale {scale!r}: use 'unit', 'binary' or 'stars'")
    if not 0 <= raw <= 1:
        raise ValueError(f"feedback score must be in 0..1 (or give scale='stars'), got {raw!r}")
    return raw, raw, comment


def _deployment_id(kwargs: dict[str, Any], metadata: dict[str, Any]) -> str | None:
    info = kwargs.get("model_info") or metadata.get("model_info") or {}
    return (info.get("id") if isinstance(info, dict) else None) or None


def attempt_key(kwargs: Any) -> tuple[str | None, str | None]:
    """``(litellm_call_id, error class name)`` of a LiteLLM failure event or of a failed-attempt hook's (shaped)
    request data: what both report alike of the same failed attempt, so the logger can skip the event repeating
    an attempt the hook recorded. Not the deployment: behind the proxy LiteLLM builds the event's payload later,
    from request metadata a fallback may have pointed at the next deployment since; a Router failure that
    reached no deployment has an error class of its own (``RouterRateLimitError``, ``ValueError``)."""
    slo = kwargs.get("standard_logging_object") or {}
    call_id = slo.get("litellm_call_id") or kwargs.get("litellm_call_id")
    exc = kwargs.get("exception")
    error_class = type(exc).__name__ if exc is not None else (slo.get("error_information") or {}).get("error_class")
    return (str(call_id) if call_id else None), (str(error_class) if error_class else None)


def failed_attempt_event(request_data: Any, exception: BaseException, end_time: float) -> dict[str, Any]:
    """Kwargs shaped like a LiteLLM failure event for one failed deployment attempt, from what
    ``CustomLogger.async_post_call_failure_deployment_hook`` receives (the attempt's ``litellm.acompletion``
    kwargs and the exception); :func:`event_rows` turns them into the attempt's row.

    ``end_time``: the failure, seconds since the epoch. The start is LiteLLM's ``api_call_start_time`` of the
    attempt (else the logging object's start). The request id (``trace_id``) is the logging object's
    ``litellm_trace_id``, the one LiteLLM's payloads carry for the same request (behind the proxy the attempt's
    own ``litellm_trace_id`` kwarg differs from it).
    """
    data = dict(request_data or {})
    metadata = data.get("metadata") or data.get("litellm_metadata") or {}
    if not isinstance(metadata, dict):
        metadata = {}
    logging_obj = data.get("litellm_logging_obj")
    details = getattr(logging_obj, "model_call_details", None)
    details = details if isinstance(details, dict) else {}
    start = details.get("api_call_start_time") or getattr(logging_obj, "start_time", None)
    start_s = start.timestamp() if isinstance(start, datetime) else end_time
    model = str(data.get("model") or details.get("model") or "unknown")
    slo = {
        "status": "failure", "messages": data.get("messages"), "model": model,
        "custom_llm_provider": details.get("custom_llm_provider"), "api_base": data.get("api_base"),
        "model_id": _deployment_id(data, metadata), "model_group": metadata.get("model_group"),
        "trace_id": getattr(logging_obj, "litellm_trace_id", None) or data.get("litellm_trace_id"),
        "litellm_call_id": data.get("litellm_call_id"), "request_tags": metadata.get("tags") or data.get("tags"),
        "stream": bool(data.get("stream")), "startTime": min(start_s, end_time), "endTime": end_time,
        "error_str": str(exception), "error_information": {"error_class": type(exception).__name__},
        "metadata": {"requester_metadata": metadata.get("requester_metadata")},
    }
    return {"standard_logging_object": slo, "litellm_params": {"metadata": metadata}, "exception": exception,
            "litellm_call_id": data.get("litellm_call_id")}


def event_rows(kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any, *, run_id: str,
               capture: str = "hash", attempts: int | None = None) -> dict[str, Any]:
    """Rows for one LiteLLM logging event: ``{"call": call row, "prompt": prompt row, "scores": [score rows]}``.

    ``attempts``: the HTTP requests the event stands for, when the caller knows it (the logger does: a failure
    event no per-attempt hook reported reached no deployment, unless it is a stream's); None: 0 for a cache hit or
    a Router failure whose payload names no deployment, else 1.

    Never reads a key: the stored metadata is the caller's, redacted (:func:`llmlab.redaction.redact`), at most
    4,000 characters. A malformed feedback value in the request metadata is skipped; its problem is returned as
    ``"feedback_error"`` (None when fine) so the caller can count it.
    """
    slo = kwargs.get("standard_logging_object") or {}
    params = kwargs.get("litellm_params") or {}
    litellm_metadata = params.get("metadata") or kwargs.get("metadata") or {}
    if not isinstance(litellm_metadata, dict):
        litellm_metadata = {}
    ok = slo.get("status") == "success" if slo else kwargs.get("exception") is None
    text, system = prompt_text(slo.get("messages") if slo.get("messages") is not None else kwargs.get("messages"))
    prompt_hash = _sha256(text if system is None else f"{system}\x00{text}")
    prompt_id = prompt_id_for(text, system)
    answer, finish = _response_text(response_obj, slo) if ok else (None, None)
    tags = [str(t) for t in (slo.get("request_tags") or litellm_metadata.get("tags") or [])]
    caller = _caller_metadata(slo, litellm_metadata)
    category = caller.get(CATEGORY_KEY) or next((t for t in tags if t != "default" and not t.startswith(
        _AUTO_TAG_PREFIXES)), None)
    # The llmlab routing plugin's decision (which model the policy chose, its score and threshold, or the fallback
    # group it served), recorded by LiteLLM in the request metadata (llmlab.routing.plugin.route_decision).
    from llmlab.routing.plugin import route_decision

    decision = route_decision(litellm_metadata)
    extra = {"routing_decision": decision} if decision else {}
    meta_json = redact(json.dumps(_jsonable({"tags": tags, **caller, **extra}), sort_keys=True))
    if meta_json and len(meta_json) > _METADATA_MAX_CHARS:
        meta_json = json.dumps({"tags": tags[:20], "truncated": True})
    start = slo.get("startTime", start_time.timestamp() if isinstance(start_time, datetime) else start_time)
    end = slo.get("endTime", end_time.timestamp() if isinstance(end_time, datetime) else end_time)
    stream = bool(slo.get("stream") or kwargs.get("stream"))
    model = _llmlab_model(slo, params)
    in_tokens = _int_or_none(slo.get("prompt_tokens"))
    out_tokens = _int_or_none(slo.get("completion_tokens"))
    usage = getattr(response_obj, "usage", None)
    if ok and not out_tokens and usage is not None:  # a stream without usage chunks: LiteLLM's own count
        in_tokens = _int_or_none(getattr(usage, "prompt_tokens", None)) or in_tokens
        out_tokens = _int_or_none(getattr(usage, "completion_tokens", None)) or out_tokens
    if not ok:
        in_tokens = out_tokens = None
    elif not out_tokens and answer:  # a stream without usage chunks: unknown, not zero
        in_tokens, out_tokens = in_tokens or None, None
    cost = slo.get("response_cost")
    if (not ok or out_tokens is None or slo.get("response_cost_failure_debug_info")
            or not isinstance(cost, (int, float))):  # unpriced, or priced on unknown usage: unknown, not 0
        cost = None
    error = slo.get("error_information") or {}
    exc = kwargs.get("exception")
    # behind the proxy a success's payload still holds an earlier attempt's exception: a status only for a failure
    http_status = _int_or_none(getattr(exc, "status_code", None)) if exc is not None and not ok else None
    error_message = None
    if not ok:
        error_message = redact(str(slo.get("error_str") or exc or "")[:500])
        if capture != "full" and text and len(text) >= 8 and text in error_message:
            error_message = error_message.replace(text, "<prompt>")
    litellm_call_id = slo.get("litellm_call_id") or kwargs.get("litellm_call_id")
    cached = bool(slo.get("cache_hit"))
    if attempts is None:
        # a Router failure before any deployment was picked (the tagged deployments cooling down, say): no HTTP
        # request. Behind the proxy the payload is built later, from metadata a fallback may have filled since.
        no_deployment = (not ok and bool(litellm_metadata.get("model_group")) and not slo.get("model_id")
                         and not litellm_metadata.get("deployment"))
        attempts = 0 if cached or no_deployment else 1
    call = new_call_row(
        # LiteLLM's id is not one per attempt (the proxy keeps it across a request's retries): a fresh id each
        call_id=f"p{uuid.uuid4().hex}", run_id=run_id, prompt_id=prompt_id, sample_index=0,
        model=model, answered_by=model if ok else None, status="ok" if ok else "error",
        error_type=None if ok else (error.get("error_class") or (type(exc).__name__ if exc is not None else "error")),
        http_status=http_status, error_message=error_message,
        attempts=attempts,
        fallbacks_taken=_int_or_none(litellm_metadata.get("attempted_fallbacks")) or 0,
        latency_ms=_ms(start, end), ttft_ms=_ms(start, slo.get("completionStartTime")) if stream and ok else None,
        input_tokens=in_tokens, output_tokens=out_tokens, cost_usd=None if cost is None else float(cost),
        cached=cached, cache_key=None, response=redact(answer) if capture == "full" else None,
        finish_reason=finish, created_at_utc=_utc(start), litellm_call_id=litellm_call_id,
        trace_id=slo.get("trace_id"),
        model_group=litellm_metadata.get("original_model_group") or slo.get("model_group") or None,
        deployment=slo.get("model_id") or None, metadata=meta_json,
        prompt_hash=prompt_hash, response_hash=_sha256(answer) if answer is not None else None,
    )
    prompt = {"run_id": run_id, "prompt_id": prompt_id, "category": None if category is None else str(category),
              "prompt": redact(text) if capture == "full" else None,
              "system": redact(system) if capture == "full" and system else None,
              "reference": None, "scorer": None, "source_id": None}
    scores, feedback_error = [], None
    # on the successful attempt only: a request's metadata travels with each of its retries and fallbacks
    if FEEDBACK_KEY in caller and ok:
        try:
            score, raw, comment = feedback_score(caller[FEEDBACK_KEY])
        except ValueError as exc:  # the call is still recorded; the bad feedback is reported by the caller
            feedback_error = str(exc)
        else:
            scores.append({"run_id": run_id, "call_id": call["call_id"], "prompt_id": prompt_id, "model": model,
                           "kind": "human", "scorer": "feedback:metadata", "score": score, "raw_value": raw,
                           "comment": redact(comment) if comment else None, "created_at_utc": utc_now()})
    return {"call": call, "prompt": prompt, "scores": scores, "feedback_error": feedback_error}
