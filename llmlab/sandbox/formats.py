"""The two wire formats the sandbox speaks: OpenAI chat completions and Anthropic messages (bodies, SSE
events, errors)."""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

logger = logging.getLogger(__name__)
from llmlab.sandbox import structured
from llmlab.sandbox.answers import (
    SandboxAnswer,
)
from llmlab.sandbox.profiles import (
    ModelProfile,
)

__all__: list[str] = []


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
    if any(a.tool_calls for a in ctx.answers):
        return {
            "id": f"chatcmpl-{ctx.request_id}", "object": "chat.completion", "created": int(time.time()),
            "model": ctx.profile.name, "system_fingerprint": "fp_llmlab_sandbox",
            "choices": [{"index": i, "message": structured.openai_message(a) if a.tool_calls else {
                "role": "assistant", "content": a.text, "refusal": None}, "logprobs": None,
                "finish_reason": "tool_calls" if a.tool_calls else a.finish} for i, a in enumerate(ctx.answers)],
            "usage": _usage_openai(ctx),
        }
    return {
        "id": f"chatcmpl-{ctx.request_id}", "object": "chat.completion", "created": int(time.time()),
        "model": ctx.profile.name, "system_fingerprint": "fp_llmlab_sandbox",
        "choices": [{"index": i, "message": {"role": "assistant", "content": a.text, "refusal": None},
                     "logprobs": None, "finish_reason": a.finish} for i, a in enumerate(ctx.answers)],
        "usage": _usage_openai(ctx),
    }


def _anthropic_stop(a: SandboxAnswer) -> str:
    if a.tool_calls:
        return "tool_use"
    return "max_tokens" if a.finish == "length" else "end_turn"


def _anthropic_body(ctx: _Ctx) -> dict[str, Any]:
    a = ctx.answers[0]
    return {
        "id": f"msg_{ctx.request_id}", "type": "message", "role": "assistant", "model": ctx.profile.name,
        "content": structured.anthropic_content(a) if a.tool_calls else [{"type": "text", "text": a.text}],
        "stop_reason": _anthropic_stop(a), "stop_sequence": None,
        "usage": {"input_tokens": ctx.input_tokens, "output_tokens": ctx.output_tokens},
    }


def _openai_events(ctx: _Ctx) -> list[tuple[str, bytes]]:
    """(kind, bytes) pairs: kind ``content`` marks a paced chunk, ``final`` the chunks a cut stream omits."""
    if any(a.tool_calls for a in ctx.answers):
        return structured.openai_events(ctx, _usage_openai(ctx))
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
    if a.tool_calls:
        return structured.anthropic_events(ctx)
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


