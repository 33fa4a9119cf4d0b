"""The providers' batch APIs as batch mode uses them (:mod:`llmlab.runner.batch` has the whole story): request
lines, splitting within the providers' limits, batch prices, result parsing, and the calls that submit, check,
read and cancel a batch (LiteLLM's files and batches API; Anthropic batch creation and cancellation over HTTP,
which LiteLLM 1.106 does not implement)."""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone
from typing import Any

from llmlab._litellm import litellm, redact
from llmlab.errors import BatchError
from llmlab.models import ModelSpec

__all__ = [
    "BATCH_DISCOUNT",
    "ENDED_STATUSES",
    "PROVIDER_LIMITS",
    "batch_cost_usd",
    "cancel_batch",
    "parse_results",
    "read_results",
    "request_line",
    "retrieve",
    "split",
    "status_of",
    "submit",
]

log = logging.getLogger(__name__)

#: Providers with a batch API, and the most one batch may hold: (requests, bytes of its JSONL input).
#: OpenAI: 50,000 requests and 200 MB per input file; Anthropic: 100,000 requests and 256 MB per batch.
PROVIDER_LIMITS: dict[str, tuple[int, int]] = {"openai": (50_000, 200 * 1024 * 1024),
                                               "anthropic": (100_000, 256 * 1024 * 1024)}
#: Batch price as a fraction of the normal price, where LiteLLM's cost map has no batch price.
BATCH_DISCOUNT = 0.5
#: Batch states (OpenAI's vocabulary, which LiteLLM maps Anthropic's onto) after which results can be read.
ENDED_STATUSES = {"completed", "expired", "cancelled", "failed"}
_STATUS_ERRORS = {400: "BadRequestError", 401: "AuthenticationError", 403: "PermissionDeniedError",
                  404: "NotFoundError", 408: "Timeout", 413: "BadRequestError", 429: "RateLimitError",
                  500: "InternalServerError", 502: "BadGatewayError", 503: "ServiceUnavailableError",
                  504: "Timeout", 529: "ServiceUnavailableError"}


# -- pure parts: request lines, splitting, prices, result parsing ------------------------------------------
def _bare(spec: ModelSpec) -> str:
    return spec.litellm_model.split("/", 1)[1] if "/" in spec.litellm_model else spec.litellm_model


def request_line(spec: ModelSpec, call_id: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> dict:
    """One request of a provider batch (``custom_id`` = the call's ``call_id``): OpenAI's batch input line
    (``custom_id, method, url, body``) or an Anthropic Message Batches request (``custom_id, params``)."""
    if spec.provider == "openai":
        return {"custom_id": call_id, "method": "POST", "url": "/v1/chat/completions",
                "body": {"model": _bare(spec), "messages": messages, **params}}
    system = "\n".join(str(m.get("content") or "") for m in messages if m.get("role") == "system")
    body: dict[str, Any] = {"model": _bare(spec), "max_tokens": params.get("max_tokens") or 1024,
                            "messages": [m for m in messages if m.get("role") != "system"]}
    body.update({k: v for k, v in params.items() if k != "max_tokens"})
    if system:
        body["system"] = system
    return {"custom_id": call_id, "params": body}


def split(lines: list[dict[str, Any]], provider: str, max_requests: int | None = None) -> list[list[dict]]:
    """Cut a model's request lines into batches within the provider's limits (:data:`PROVIDER_LIMITS`;
    ``max_requests`` lowers the request cap). Every batch holds at least one line."""
    cap_n, cap_bytes = PROVIDER_LIMITS[provider]
    if max_requests is not None:
        cap_n = min(cap_n, max_requests)
    out: list[list[dict]] = []
    cur: list[dict] = []
    size = 0
    for line in lines:
        n = len(json.dumps(line, ensure_ascii=False).encode("utf-8")) + 1
        if cur and (len(cur) >= cap_n or size + n > cap_bytes):
            out.append(cur)
            cur, size = [], 0
        cur.append(line)
        size += n
    if cur:
        out.append(cur)
    return out


def batch_cost_usd(spec: ModelSpec, input_tokens: int | None, output_tokens: int | None) -> float | None:
    """The cost of one batch call in USD: LiteLLM's batch prices for the model when its cost map has them and
    the model's price is LiteLLM's own, else :data:`BATCH_DISCOUNT` × the normal price; None when unpriced."""
    normal = spec.cost_usd(input_tokens, output_tokens)
    if normal is None:
        return None
    if not spec.sandbox:
        entry = litellm().model_cost.get(spec.litellm_model) or litellm().model_cost.get(_bare(spec)) or {}
        inp, out = entry.get("input_cost_per_token_batches"), entry.get("output_cost_per_token_batches")
        if inp and out and entry.get("input_cost_per_token") == spec.input_cost_per_token:
            return input_tokens * inp + output_tokens * out
    return normal * BATCH_DISCOUNT


def _parse_line(raw: dict[str, Any]) -> dict[str, Any]:
    """A result line (OpenAI output/error file, or Anthropic results, raw or as LiteLLM converts them) as
    ``{"custom_id", "ok", "text", "finish_reason", "input_tokens", "output_tokens", "http_status", "error_type",
    "error_message"}``."""
    out: dict[str, Any] = {"custom_id": raw.get("custom_id"), "ok": False, "text": None, "finish_reason": None,
                           "input_tokens": None, "output_tokens": None, "http_status": None, "error_type": None,
                           "error_message": None}
    if "result" in raw:  # Anthropic
        res = raw.get("result") or {}
        kind = res.get("type")
        if kind == "succeeded":
            msg = res.get("message") or {}
            usage = msg.get("usage") or {}
            stop = msg.get("stop_reason")
            out.update(ok=True, text="".join(b.get("text", "") for b in msg.get("content") or []
                                             if isinstance(b, dict) and b.get("type") == "text"),
                       finish_reason={"end_turn": "stop", "max_tokens": "length", "stop_sequence": "stop"}.get(
                           stop, stop),
                       input_tokens=usage.get("input_tokens"), output_tokens=usage.get("output_tokens"))
        elif kind == "errored":
            err = ((res.get("error") or {}).get("error") or res.get("error") or {})
            status = {"invalid_request_error": 400, "authentication_error": 401, "permission_error": 403,
                      "not_found_error": 404, "rate_limit_error": 429, "overloaded_error": 529}.get(
                err.get("type"), 500)
            out.update(http_status=status, error_type=_STATUS_ERRORS.get(status, "APIError"),
                       error_message=err.get("message") or err.get("type"))
        else:
            out.update(error_type=f"batch_{'cancelled' if kind == 'canceled' else kind}",
                       error_message=f"the batch ended before this request ran ({kind})")
        return out
    resp = raw.get("response") or {}
    status = resp.get("status_code")
    body = resp.get("body") or {}
    if status == 200 and body.get("choices"):
        choice = body["choices"][0]
        usage = body.get("usage") or {}
        out.update(ok=True, text=(choice.get("message") or {}).get("content") or "",
                   finish_reason=choice.get("finish_reason"), input_tokens=usage.get("prompt_tokens"),
                   output_tokens=usage.get("completion_tokens"))
    elif raw.get("error") and not resp:
        err = raw["error"]
        code = err.get("code") or "batch_error"
        out.update(error_type=code if str(code).startswith("batch_") else f"batch_{code}",
                   error_message=err.get("message"))
    else:
        err = (body.get("error") or {}) if isinstance(body, dict) else {}
        if status == 200:  # LiteLLM's Anthropic conversion of an unusable message, or an empty body
            status = None
        out.update(http_status=status, error_type=_STATUS_ERRORS.get(status, "MalformedResponseError"),
                   error_message=err.get("message") or f"no usable answer in the batch result (status {status})")
    return out


def parse_results(data: bytes) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for raw in data.splitlines():
        if not raw.strip():
            continue
        try:
            parsed = _parse_line(json.loads(raw))
        except (ValueError, AttributeError, TypeError):
            log.warning("llmlab: an unreadable batch result line was skipped (%d bytes)", len(raw))
            continue
        if parsed["custom_id"]:
            found[parsed["custom_id"]] = parsed
    return found


# -- talking to providers ----------------------------------------------------------------------------------
def _creds(spec: ModelSpec) -> dict[str, Any]:
    kwargs = spec.call_kwargs()
    return {k: kwargs[k] for k in ("api_base", "api_key") if kwargs.get(k)}


def status_of(exc: BaseException) -> int | None:
    for holder in (exc, getattr(exc, "response", None)):
        code = getattr(holder, "status_code", None)
        if isinstance(code, int):
            return code
    return None


def _anthropic_url(creds: dict[str, Any], tail: str = "") -> str:
    base = (creds.get("api_base") or os.environ.get("ANTHROPIC_API_BASE") or os.environ.get("ANTHROPIC_BASE_URL")
            or "https://api.anthropic.com").rstrip("/")
    if not base.endswith("/v1/messages/batches"):
        base += "/v1/messages/batches"
    return base + tail


async def _anthropic_post(creds: dict[str, Any], tail: str, payload: dict[str, Any] | None) -> dict[str, Any]:
    import httpx

    key = creds.get("api_key") or os.environ.get("ANTHROPIC_API_KEY") or ""
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01", "content-type": "application/json",
               "anthropic-beta": "message-batches-2024-09-24"}
    async with httpx.AsyncClient(timeout=600.0) as client:
        resp = await client.post(_anthropic_url(creds, tail), headers=headers, json=payload or {})
    if resp.status_code >= 400:
        exc = BatchError(f"Anthropic answered {resp.status_code}: {redact(resp.text)[:500]}")
        exc.status_code = resp.status_code  # type: ignore[attr-defined]
        raise exc
    return resp.json()


async def submit(spec: ModelSpec, run_id: str, part_id: str, lines: list[dict]) -> dict[str, Any]:
    """Send one batch; returns ``batch_id, input_file_id, provider_status``."""
    creds = _creds(spec)
    if spec.provider == "anthropic":
        made = await _anthropic_post(creds, "", {"requests": lines})
        return {"batch_id": made["id"], "input_file_id": None, "provider_status": made.get("processing_status")}
    ll = litellm()
    data = b"".join(json.dumps(x, ensure_ascii=False).encode("utf-8") + b"\n" for x in lines)
    f = await ll.acreate_file(file=(f"llmlab-{part_id}.jsonl", data), purpose="batch", custom_llm_provider="openai",
                              **creds)
    b = await ll.acreate_batch(completion_window="24h", endpoint="/v1/chat/completions", input_file_id=f.id,
                               custom_llm_provider="openai",
                               metadata={"llmlab_run_id": run_id, "llmlab_part_id": part_id}, **creds)
    return {"batch_id": b.id, "input_file_id": f.id, "provider_status": b.status}


def _ts(value: Any) -> datetime | None:
    if value in (None, 0, ""):
        return None
    return datetime.fromtimestamp(float(value), timezone.utc).replace(tzinfo=None)


async def retrieve(spec: ModelSpec, batch_id: str) -> dict[str, Any]:
    """The batch's state: ``status`` (OpenAI's vocabulary), ``ended_at_utc``, ``output_file_id``,
    ``error_file_id``, ``errors``."""
    # batch_ignore_default_logging: LiteLLM's success logging would otherwise download and price the whole output
    # file again on every check of an ended batch (the flag LiteLLM's own proxy sets for its polling)
    b = await litellm().aretrieve_batch(batch_id=batch_id, custom_llm_provider=spec.provider,
                                        litellm_metadata={"batch_ignore_default_logging": True}, **_creds(spec))
    ended = (getattr(b, "completed_at", None) or getattr(b, "expired_at", None) or getattr(b, "cancelled_at", None)
             or getattr(b, "failed_at", None))
    errors = getattr(b, "errors", None)
    return {"status": b.status, "ended_at_utc": _ts(ended), "output_file_id": getattr(b, "output_file_id", None),
            "error_file_id": getattr(b, "error_file_id", None),
            "errors": "; ".join(str(getattr(e, "message", e)) for e in (getattr(errors, "data", None) or []))}


async def read_results(spec: ModelSpec, batch_id: str, state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    ll = litellm()
    creds = _creds(spec)
    if spec.provider == "anthropic":
        content = await ll.afile_content(file_id=batch_id, custom_llm_provider="anthropic", **creds)
        return parse_results(content.content)
    found: dict[str, dict[str, Any]] = {}
    for fid in (state.get("error_file_id"), state.get("output_file_id")):  # output last: it wins
        if fid and fid != "None":
            content = await ll.afile_content(file_id=fid, custom_llm_provider="openai", **creds)
            found.update(parse_results(content.content))
    return found


async def cancel_batch(spec: ModelSpec, batch_id: str) -> None:
    creds = _creds(spec)
    if spec.provider == "anthropic":
        await _anthropic_post(creds, f"/{batch_id}/cancel", None)
    else:
        await litellm().acancel_batch(batch_id=batch_id, custom_llm_provider="openai", **creds)
