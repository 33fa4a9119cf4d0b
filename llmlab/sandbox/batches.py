"""The sandbox's batch endpoints: OpenAI's Files + Batch API and Anthropic's Message Batches API, offline.

Routes (matched by path suffix, like the rest of the sandbox, so any ``api_base`` ending works)::

    OpenAI     POST .../files (multipart: purpose, file)     GET .../files/{id}    GET .../files/{id}/content
               POST .../batches    GET .../batches    GET .../batches/{id}    POST .../batches/{id}/cancel
    Anthropic  POST .../messages/batches    GET .../messages/batches/{id}    GET .../messages/batches/{id}/results
               POST .../messages/batches/{id}/cancel
    control    GET/POST/DELETE /_sandbox/batches   (the settings below, as JSON; DELETE restores the defaults)

Each request row is answered with :meth:`Sandbox.answer` (the same deterministic answers, tokens and finish
reasons as the chat endpoints) and counted in the sandbox's stats (path ``batch:<id>``). Simulated behaviour, set
with :func:`batch_service` ``(sandbox).configure(...)`` or ``POST /_sandbox/batches``:

- ``delay_s``: how long a batch takes; its rows complete evenly over that time (0: done at once). A cancel keeps
  the rows completed so far (the rest are ``canceled`` / ``batch_cancelled``).
- ``expire_after_s``: the completion window; a batch not done by then ends ``expired`` with the rows completed
  so far (the rest ``expired`` / ``batch_expired``).
- ``row_failure_rate``: the fraction of rows that fail (a 500 ``server_error`` / Anthropic ``api_error``),
  decided by a hash of (sandbox seed, custom_id): the same rows fail every time.

Rows naming a model the sandbox does not serve fail with 404. A batch whose input is not valid (a line that is
not JSON, no ``custom_id``, a repeated ``custom_id``, a ``url`` other than the batch's endpoint) is ``failed``
(OpenAI, with ``errors``) or refused with a 400 (Anthropic), as the providers do. Everything is in memory.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from llmlab.sandbox.answers import _bare_model, _content_text, _unit
from llmlab.sandbox.formats import _anthropic_body, _Ctx, _error_response, _float_or_none, _int_or_none, _openai_body
from llmlab.sandbox.profiles import estimate_tokens

__all__ = [
    "BatchService",
    "batch_route",
    "batch_service",
]

DEFAULTS = {"delay_s": 0.0, "expire_after_s": 24 * 3600.0, "row_failure_rate": 0.0}

_ROUTES = [
    ("anthropic", "create", "POST", re.compile(r"/messages/batches$")),
    ("anthropic", "results", "GET", re.compile(r"/messages/batches/(?P<id>[^/]+)/results$")),
    ("anthropic", "cancel", "POST", re.compile(r"/messages/batches/(?P<id>[^/]+)/cancel$")),
    ("anthropic", "get", "GET", re.compile(r"/messages/batches/(?P<id>[^/]+)$")),
    ("openai", "upload", "POST", re.compile(r"/files$")),
    ("openai", "content", "GET", re.compile(r"/files/(?P<id>[^/]+)/content$")),
    ("openai", "file", "GET", re.compile(r"/files/(?P<id>[^/]+)$")),
    ("openai", "create", "POST", re.compile(r"/batches$")),
    ("openai", "list", "GET", re.compile(r"/batches$")),
    ("openai", "cancel", "POST", re.compile(r"/batches/(?P<id>[^/]+)/cancel$")),
    ("openai", "get", "GET", re.compile(r"/batches/(?P<id>[^/]+)$")),
]


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


class BatchService:
    """The batches of one sandbox: files, batches and their simulated progress (thread-safe)."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.lock = threading.Lock()
        self.write_lock = threading.Lock()
        self.settings: dict[str, float] = dict(DEFAULTS)
        #: the service's clock (Unix seconds): a test may replace it to move batches forward without sleeping
        self.clock = time.time
        self.files: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, dict[str, Any]] = {}

    def configure(self, **settings: Any) -> dict[str, float]:
        """Change ``delay_s``, ``expire_after_s``, ``row_failure_rate`` (for batches created from now on);
        returns the settings. Raises ValueError for an unknown name or a value out of range."""
        unknown = set(settings) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"unknown batch settings {sorted(unknown)} (known: {sorted(DEFAULTS)})")
        new = {**self.settings, **{k: float(v) for k, v in settings.items()}}
        if new["delay_s"] < 0 or new["expire_after_s"] <= 0 or not 0 <= new["row_failure_rate"] <= 1:
            raise ValueError("delay_s must be >= 0, expire_after_s > 0, row_failure_rate within 0..1")
        with self.lock:
            self.settings = new
            return dict(new)

    def reset(self) -> None:
        """Default settings; every file and batch forgotten."""
        with self.lock:
            self.settings = dict(DEFAULTS)
            self.clock = time.time
            self.files.clear()
            self.batches.clear()

    # -- the simulation -------------------------------------------------------------------------------
    def _new_batch(self, api: str, rows: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        now = self.clock()
        prefix = "msgbatch_" if api == "anthropic" else "batch_"
        b = {"id": prefix + uuid.uuid4().hex[:24], "api": api, "rows": rows, "results": [], "created": now,
             "delay_s": self.settings["delay_s"], "expire_after_s": self.settings["expire_after_s"],
             "fail_rate": self.settings["row_failure_rate"], "state": "in_progress", "ended": None,
             "cancel_at": None, **extra}
        with self.lock:
            self.batches[b["id"]] = b
        return b

    def _advance(self, b: dict[str, Any], now: float | None = None) -> None:
        """Complete the rows due by ``now``; end the batch when all are done, it expired or it was cancelled."""
        now = self.clock() if now is None else now
        with self.lock:
            if b["state"] != "in_progress":
                return
            n = len(b["rows"])
            deadline = b["created"] + b["expire_after_s"]
            if b["cancel_at"] is not None:
                until, stop = b["cancel_at"], "cancelled"
            elif now >= deadline:
                until, stop = deadline, "expired"
            else:
                until, stop = now, None
            due = n if b["delay_s"] <= 0 else min(n, int(n * (until - b["created"]) / b["delay_s"]))
            if due >= n:
                end_state, ended = "completed", min(until, b["created"] + b["delay_s"])
            else:
                end_state, ended = stop, until
            todo = b["rows"][len(b["results"]):due]
        results = [self._answer(b, row) for row in todo]
        with self.lock:
            if b["state"] != "in_progress":
                return
            b["results"].extend(results)
            if end_state is not None:
                b["state"], b["ended"] = end_state, ended

    def _answer(self, b: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
        """One row's outcome: ``{"custom_id", "status", "body"}`` in the batch's API format."""
        sb, api = self.sandbox, b["api"]
        cid = row["custom_id"]
        body = row["body"]
        model = _bare_model(body.get("model"))
        messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        if api == "anthropic":
            system = _content_text(body.get("system"))
            max_tokens = body.get("max_tokens")
        else:
            system = "\n".join(_content_text(m.get("content")) for m in messages
                               if m.get("role") in ("system", "developer"))
            max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        messages = [m for m in messages if m.get("role") not in ("system", "developer")]
        path = f"batch:{b['id']}"
        profile = sb.profiles.get(model)
        if profile is None:
            with sb._lock:
                sb._record(model or "(none)", path, False, "unknown_model", 404)
            return {"custom_id": cid, "status": 404, "body": _error_body(
                api, 404, f"The model `{model}` does not exist or you do not have access to it.", "model_not_found")}
        if _unit(sb.seed, "batch-fail", cid) < b["fail_rate"]:
            with sb._lock:
                sb._record(model, path, False, "500", 500)
            return {"custom_id": cid, "status": 500, "body": _error_body(
                api, 500, "The server had an error processing this batch request (simulated).", "server_error")}
        answer = sb.answer(model, messages, system=system, max_tokens=_int_or_none(max_tokens),
                           temperature=_float_or_none(body.get("temperature")),
                           seed=body.get("seed") if body.get("seed") is not None else (body.get("metadata") or {}).get(
                               "seed"))
        input_text = "\n".join([system] + [_content_text(m.get("content")) for m in messages])
        ctx = _Ctx(api=api, profile=profile, answers=[answer], input_tokens=estimate_tokens(input_text),
                   output_tokens=estimate_tokens(answer.text), ttft_s=0.0, gen_s=0.0,
                   request_id=uuid.uuid4().hex[:24], include_usage=False)
        with sb._lock:
            sb._record(model, path, False, "ok", 200)
        return {"custom_id": cid, "status": 200, "body": _openai_body(ctx) if api == "openai" else _anthropic_body(ctx)}

    # -- OpenAI shapes ----------------------------------------------------------------------------------
    def _openai_batch(self, b: dict[str, Any]) -> dict[str, Any]:
        self._advance(b)
        done = b["results"]
        failed = sum(1 for r in done if r["status"] != 200)
        state = b["state"]
        ended = b["ended"]
        out = {
            "id": b["id"], "object": "batch", "endpoint": b["endpoint"], "errors": b.get("errors"),
            "input_file_id": b["input_file_id"], "completion_window": "24h", "status": state,
            "output_file_id": b.get("output_file_id"), "error_file_id": b.get("error_file_id"),
            "created_at": int(b["created"]), "in_progress_at": int(b["created"]),
            "expires_at": int(b["created"] + b["expire_after_s"]), "finalizing_at": None,
            "completed_at": int(ended) if state == "completed" else None,
            "failed_at": int(b["created"]) if state == "failed" else None,
            "expired_at": int(ended) if state == "expired" else None,
            "cancelling_at": int(b["cancel_at"]) if b["cancel_at"] else None,
            "cancelled_at": int(ended) if state == "cancelled" else None,
            "request_counts": {"total": len(b["rows"]), "completed": len(done) - failed, "failed": failed},
            "metadata": b.get("metadata") or {},
        }
        if state in ("completed", "expired", "cancelled"):
            with self.write_lock:  # once, whoever asks first
                if "output_file_id" not in b:
                    self._write_openai_files(b)
            out["output_file_id"], out["error_file_id"] = b["output_file_id"], b["error_file_id"]
        return out

    def _write_openai_files(self, b: dict[str, Any]) -> None:
        ok, bad = [], []
        for r in b["results"]:
            line = {"id": "batch_req_" + uuid.uuid4().hex[:16], "custom_id": r["custom_id"],
                    "response": {"status_code": r["status"], "request_id": uuid.uuid4().hex[:16], "body": r["body"]},
                    "error": None}
            (ok if r["status"] == 200 else bad).append(line)
        code = {"expired": "batch_expired", "cancelled": "batch_cancelled"}.get(b["state"])
        if code is not None:
            for row in b["rows"][len(b["results"]):]:
                bad.append({"id": "batch_req_" + uuid.uuid4().hex[:16], "custom_id": row["custom_id"],
                            "response": None, "error": {"code": code, "message": (
                                "This request could not be executed before the completion window expired."
                                if code == "batch_expired" else "The batch was cancelled before this request ran.")}})
        b["output_file_id"] = self._add_file(_jsonl(ok), "batch_output", f"{b['id']}_output.jsonl") if ok else None
        b["error_file_id"] = self._add_file(_jsonl(bad), "batch_output", f"{b['id']}_error.jsonl") if bad else None

    def _add_file(self, data: bytes, purpose: str, filename: str) -> str:
        fid = "file-" + uuid.uuid4().hex[:24]
        with self.lock:
            self.files[fid] = {"id": fid, "object": "file", "bytes": len(data), "created_at": int(self.clock()),
                               "filename": filename, "purpose": purpose, "status": "processed",
                               "status_details": None, "expires_at": None, "data": data}
        return fid

    def _openai_create(self, payload: dict[str, Any]) -> dict[str, Any]:
        fid = payload.get("input_file_id")
        f = self.files.get(fid or "")
        if f is None:
            raise _Refused(404, f"No file found with id '{fid}'.")
        endpoint = payload.get("endpoint") or "/v1/chat/completions"
        rows, errors = [], []
        seen: set[str] = set()
        for n, raw in enumerate(f["data"].decode("utf-8", errors="replace").splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
                cid = line["custom_id"]
                if cid in seen:
                    raise ValueError(f"custom_id {cid!r} is repeated")
                if line.get("url") != endpoint:
                    raise ValueError(f"url {line.get('url')!r} is not the batch's endpoint {endpoint!r}")
                if not isinstance(line.get("body"), dict):
                    raise ValueError("no request body")
                seen.add(cid)
                rows.append({"custom_id": cid, "body": line["body"]})
            except (ValueError, KeyError, TypeError) as exc:
                errors.append({"code": "invalid_request", "line": n, "message": str(exc), "param": None})
        b = self._new_batch("openai", rows, endpoint=endpoint, input_file_id=fid, metadata=payload.get("metadata"))
        if errors or not rows:
            with self.lock:
                b["state"] = "failed"
                b["ended"] = b["created"]
                b["errors"] = {"object": "list", "data": errors or [
                    {"code": "empty_file", "line": None, "message": "The input file has no requests.", "param": None}]}
        return self._openai_batch(b)

    # -- Anthropic shapes -------------------------------------------------------------------------------
    def _anthropic_batch(self, b: dict[str, Any]) -> dict[str, Any]:
        self._advance(b)
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        for r in b["results"]:
            counts["succeeded" if r["status"] == 200 else "errored"] += 1
        rest = len(b["rows"]) - len(b["results"])
        key = {"in_progress": "processing", "cancelled": "canceled", "expired": "expired"}.get(b["state"], "processing")
        counts[key] += rest
        ended = b["state"] != "in_progress"
        return {"id": b["id"], "type": "message_batch",
                "processing_status": "ended" if ended else ("canceling" if b["cancel_at"] else "in_progress"),
                "request_counts": counts, "ended_at": _iso(b["ended"]) if ended else None,
                "created_at": _iso(b["created"]), "expires_at": _iso(b["created"] + b["expire_after_s"]),
                "archived_at": None, "cancel_initiated_at": _iso(b["cancel_at"]),
                "results_url": f"/v1/messages/batches/{b['id']}/results" if ended else None}

    def _anthropic_results(self, b: dict[str, Any]) -> bytes:
        lines = []
        for r in b["results"]:
            if r["status"] == 200:
                lines.append({"custom_id": r["custom_id"], "result": {"type": "succeeded", "message": r["body"]}})
            else:
                lines.append({"custom_id": r["custom_id"], "result": {"type": "errored", "error": r["body"]}})
        kind = {"cancelled": "canceled", "expired": "expired"}.get(b["state"])
        if kind:
            lines += [{"custom_id": row["custom_id"], "result": {"type": kind}} for row in b["rows"][len(b["results"]):]]
        return _jsonl(lines)

    def _anthropic_create(self, payload: dict[str, Any]) -> dict[str, Any]:
        requests = payload.get("requests")
        if not isinstance(requests, list) or not requests:
            raise _Refused(400, "requests: a non-empty list is required")
        rows, seen = [], set()
        for i, req in enumerate(requests):
            cid = req.get("custom_id") if isinstance(req, dict) else None
            if not isinstance(cid, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", cid):
                raise _Refused(400, f"requests.{i}.custom_id: 1 to 64 letters, digits, '_' or '-' required")
            if cid in seen:
                raise _Refused(400, f"requests.{i}.custom_id: {cid!r} is repeated")
            if not isinstance(req.get("params"), dict):
                raise _Refused(400, f"requests.{i}.params: an object is required")
            seen.add(cid)
            rows.append({"custom_id": cid, "body": req["params"]})
        return self._anthropic_batch(self._new_batch("anthropic", rows))

    # -- HTTP -------------------------------------------------------------------------------------------
    async def handle(self, request: web.Request, path: str) -> web.StreamResponse | None:
        if path.endswith("/_sandbox/batches"):
            return await self._control(request)
        for api, action, method, pattern in _ROUTES:
            m = pattern.search(path)
            if m is None or request.method != method:
                continue
            try:
                return await self._act(api, action, request, m.groupdict().get("id"))
            except _Refused as exc:
                return _error_response(api, exc.status, exc.message,
                                       "not_found" if exc.status == 404 else "invalid_request_error")
        return None

    async def _act(self, api: str, action: str, request: web.Request, ident: str | None) -> web.StreamResponse:
        import asyncio

        if action == "upload":
            form = await request.post()
            upload = form.get("file")
            if upload is None or not hasattr(upload, "file"):
                raise _Refused(400, "file: a multipart file field is required")
            data = upload.file.read()
            fid = self._add_file(data, str(form.get("purpose") or "batch"), getattr(upload, "filename", "input.jsonl"))
            return web.json_response({k: v for k, v in self.files[fid].items() if k != "data"})
        if action == "list":
            with self.lock:
                found = [b for b in self.batches.values() if b["api"] == "openai"]
            data = [await asyncio.to_thread(self._openai_batch, b) for b in found]
            return web.json_response({"object": "list", "data": data, "has_more": False})
        if action in ("create",):
            try:
                payload = await request.json()
            except ValueError as exc:
                raise _Refused(400, f"invalid JSON body: {exc}") from exc
            if not isinstance(payload, dict):
                raise _Refused(400, "the body must be a JSON object")
            make = self._openai_create if api == "openai" else self._anthropic_create
            return web.json_response(await asyncio.to_thread(make, payload))
        if action in ("file", "content"):
            f = self.files.get(ident or "")
            if f is None:
                raise _Refused(404, f"No file found with id '{ident}'.")
            if action == "content":
                return web.Response(body=f["data"], content_type="application/octet-stream")
            return web.json_response({k: v for k, v in f.items() if k != "data"})
        b = self.batches.get(ident or "")
        if b is None or b["api"] != api:
            raise _Refused(404, f"No batch found with id '{ident}'.")
        if action == "cancel":
            with self.lock:
                if b["state"] == "in_progress" and b["cancel_at"] is None:
                    b["cancel_at"] = self.clock()
        shape = self._openai_batch if api == "openai" else self._anthropic_batch
        if action == "results":
            await asyncio.to_thread(self._advance, b)
            if b["state"] == "in_progress":
                raise _Refused(400, f"Batch {ident} has not ended yet: its results are not available.")
            return web.Response(body=await asyncio.to_thread(self._anthropic_results, b),
                                content_type="application/binary")
        return web.json_response(await asyncio.to_thread(shape, b))

    async def _control(self, request: web.Request) -> web.Response:
        if request.method == "DELETE":
            self.reset()
        elif request.method == "POST":
            try:
                self.configure(**(await request.json()))
            except (ValueError, TypeError) as exc:
                return _error_response("openai", 400, str(exc), "invalid_request_error")
        with self.lock:
            counts = {"files": len(self.files), "batches": len(self.batches)}
        return web.json_response({"settings": dict(self.settings), **counts})


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _error_body(api: str, status: int, message: str, code: str) -> dict[str, Any]:
    if api == "anthropic":
        kind = {404: "not_found_error", 500: "api_error"}.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, "type": "server_error" if status >= 500 else "invalid_request_error",
                      "param": None, "code": code}}


def _jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(x, ensure_ascii=False).encode("utf-8") + b"\n" for x in lines)


_services_lock = threading.Lock()


def batch_service(sandbox: Any) -> BatchService:
    """The :class:`BatchService` of ``sandbox`` (made on first use; one per sandbox)."""
    with _services_lock:
        svc = getattr(sandbox, "_batch_service", None)
        if svc is None:
            svc = BatchService(sandbox)
            sandbox._batch_service = svc
        return svc


async def batch_route(sandbox: Any, request: web.Request, path: str) -> web.StreamResponse | None:
    """The response to a batch request, or None when ``path`` is not a batch route (the server goes on)."""
    return await batch_service(sandbox).handle(request, path)
