"""What went over the wire during one attempt: the one place that touches LiteLLM's HTTP clients.

llmlab owns retries (backoff, Retry-After, ``max_attempts``, the attempt log), and its accounting promises that
``attempts`` equals the requests a provider served, that ``timeout_s`` counts from the moment a request is sent,
and that a failure is classified from what the provider actually sent. LiteLLM's exception classes cannot carry
that: they change between releases (LiteLLM 1.109 reports an OpenAI-path 403 as a bare ``APIError`` with no
status), and LiteLLM's own httpx handler re-sends a request on a dropped connection whatever ``num_retries`` says.

So every request of an attempt goes through :class:`WireTransport`, an ``httpx`` transport around LiteLLM's own
(``AsyncHTTPHandler.create_async_transport()``), which records in the attempt's :class:`Wire` (found through a
context variable):

- the moment the request is handed to the connection pool (``sent_at``; the ``timeout_s`` clock starts there,
  and an attempt with nothing sent is not a provider request), and refuses a second request in the same attempt
  (LiteLLM's hidden re-send: llmlab retries with backoff instead);
- the response's HTTP status and headers (``Retry-After``, ``retry-after-ms``) when they arrive;
- every body chunk's arrival (``first_byte_at``, ``last_byte_at``, ``body_bytes``), and whether the body ended
  normally (``body_done``) or broke off (``body_error``).

The counting clients (built once per event loop, closed at exit): for the ``anthropic`` provider a LiteLLM
``AsyncHTTPHandler`` built with ``transport=`` (a documented constructor argument), for the ``openai`` provider an
``openai.AsyncOpenAI`` whose ``http_client`` has the transport, pointed at the model's ``api_base``, else
``OPENAI_API_BASE`` / ``OPENAI_BASE_URL``, else OpenAI's own URL, with ``max_retries=0``. Both are passed to
``litellm.acompletion(client=...)``, LiteLLM's documented way to supply a client. Other providers go through
LiteLLM's own clients: their failures are classified from LiteLLM's exception (status code where it has one), and
every attempt counts as one request.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import time
import weakref
from collections.abc import AsyncIterator, Mapping
from typing import Any

from llmlab import _loop
from llmlab._litellm import litellm
from llmlab.models import ModelSpec

log = logging.getLogger(__name__)

__all__ = [
    "PRE_SEND_GRACE_S",
    "Wire",
    "WireTransport",
    "aclose_http_clients",
    "counting_client",
    "keep_anyio_root",
    "with_deadline",
    "warm_up",
]

#: Providers whose requests go through a counting client.
WIRED_PROVIDERS = frozenset({"anthropic", "openai"})
#: Extra seconds a request may take to be *sent* (LiteLLM's first call builds clients and imports modules).
PRE_SEND_GRACE_S = 30.0
#: After the deadline passes on a late event loop, how long (at most) bytes that arrived in time may take to be
#: processed: the loop's own delay is not the provider's.
DRAIN_MAX_S = 5.0
#: ... and how long the wire may stay quiet meanwhile before the answer counts as late after all.
DRAIN_QUIET_S = 0.05


class ResendBlocked(ConnectionError):
    """Raised by :class:`WireTransport` when LiteLLM sends a second request within one attempt (its automatic
    re-send after a dropped connection)."""


class Wire:
    """What the transport saw during one attempt (monotonic seconds)."""

    __slots__ = ("sent", "blocked", "sent_at", "headers_at", "first_byte_at", "last_byte_at", "status", "headers",
                 "body_bytes", "body_done", "body_error", "transport_error", "event")

    def __init__(self) -> None:
        self.sent = 0
        self.blocked = 0
        self.sent_at: float | None = None
        self.headers_at: float | None = None
        self.first_byte_at: float | None = None
        self.last_byte_at: float | None = None
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.body_bytes = 0
        self.body_done = False
        self.body_error: str | None = None
        self.transport_error: str | None = None
        self.event = asyncio.Event()

    @property
    def responded(self) -> bool:
        """A response (status line and headers) arrived."""
        return self.status is not None

    def retry_after_s(self) -> float | None:
        """The response's ``retry-after-ms`` or ``Retry-After`` (delta-seconds form), in seconds, or None."""
        try:
            ms = self.headers.get("retry-after-ms")
            if ms:
                return max(0.0, float(ms) / 1000)
            val = self.headers.get("retry-after")
            if val:
                return max(0.0, float(val))
        except (TypeError, ValueError):
            return None
        return None

    def elapsed_ms(self, at: float | None) -> float | None:
        """Milliseconds from the send to ``at`` (None when either is unknown)."""
        if self.sent_at is None or at is None:
            return None
        return max(0.0, (at - self.sent_at) * 1000)

    def to_log(self) -> dict[str, Any]:
        """The attempt log's view of the wire (what a person debugging a run wants to see)."""
        out: dict[str, Any] = {"sent": self.sent}
        if self.status is not None:
            out["wire_status"] = self.status
        if self.body_bytes:
            out["body_bytes"] = self.body_bytes
        if self.body_error:
            out["body_error"] = self.body_error
        if self.transport_error:
            out["transport_error"] = self.transport_error
        if self.blocked:
            out["resend_blocked"] = self.blocked
        return out


_wire: contextvars.ContextVar[Wire | None] = contextvars.ContextVar("llmlab_wire", default=None)


def _make_transport_class() -> type:
    import httpx

    class _WatchedStream(httpx.AsyncByteStream):
        """The response body, chunk by chunk, recording arrivals in the attempt's :class:`Wire`."""

        def __init__(self, inner: Any, wire: Wire) -> None:
            self._inner, self._wire = inner, wire

        async def __aiter__(self) -> AsyncIterator[bytes]:
            wire = self._wire
            try:
                async for chunk in self._inner:
                    now = time.monotonic()
                    if wire.first_byte_at is None:
                        wire.first_byte_at = now
                    wire.last_byte_at = now
                    wire.body_bytes += len(chunk)
                    yield chunk
            except GeneratorExit:  # the reader stopped early (it had what it needed): not a broken body
                raise
            except BaseException as exc:
                wire.body_error = type(exc).__name__
                raise
            wire.body_done = True

        async def aclose(self) -> None:
            await self._inner.aclose()

    class _Transport(httpx.AsyncBaseTransport):
        def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
            self.inner = inner

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            wire = _wire.get()
            if wire is None:  # not an llmlab attempt (someone else's use of a shared client)
                return await self.inner.handle_async_request(request)
            if wire.sent >= 1:
                wire.blocked += 1
                raise ResendBlocked("llmlab blocked LiteLLM's automatic re-send after a dropped connection "
                                    "(llmlab retries with backoff instead)")
            wire.sent += 1
            wire.sent_at = time.monotonic()
            wire.event.set()
            try:
                response = await self.inner.handle_async_request(request)
            except BaseException as exc:
                wire.transport_error = type(exc).__name__
                raise
            wire.status = response.status_code
            wire.headers = {k.lower(): v for k, v in response.headers.items()}
            wire.headers_at = time.monotonic()
            response.stream = _WatchedStream(response.stream, wire)
            return response

        async def aclose(self) -> None:
            # Not closed by the clients that use it: LiteLLM's AsyncHTTPHandler builds a throw-away httpx client
            # on the same transport for its re-send after a dropped connection and closes it at once, which
            # would close the transport (the connection pool) under every other request in flight. llmlab closes
            # it at exit (aclose_http_clients -> shutdown).
            return None

        async def shutdown(self) -> None:
            await self.inner.aclose()

    return _Transport


_TRANSPORT_CLASS: type | None = None


def WireTransport(inner: Any) -> Any:  # noqa: N802 - a class factory (httpx is imported lazily)
    """An ``httpx.AsyncBaseTransport`` around ``inner`` that records each llmlab attempt in its :class:`Wire`."""
    global _TRANSPORT_CLASS
    if _TRANSPORT_CLASS is None:
        _TRANSPORT_CLASS = _make_transport_class()
    return _TRANSPORT_CLASS(inner)


_http_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Any, Any]] = weakref.WeakKeyDictionary()


def _loop_clients() -> dict[Any, Any]:
    loop = asyncio.get_running_loop()
    clients = _http_clients.get(loop)
    if clients is None:
        clients = _http_clients[loop] = {}
        _loop.at_exit(aclose_http_clients)
    return clients


async def aclose_http_clients() -> None:
    """Close the HTTP clients llmlab made on the running loop (run at interpreter exit on llmlab's loop)."""
    clients = _http_clients.pop(asyncio.get_running_loop(), {})
    for client in clients.values():
        try:
            if hasattr(client, "shutdown"):  # a WireTransport
                await client.shutdown()
                continue
            if hasattr(client, "close") and asyncio.iscoroutinefunction(client.close):
                await client.close()  # AsyncHTTPHandler, openai.AsyncOpenAI
            elif hasattr(client, "aclose"):
                await client.aclose()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


def _openai_base_url(kwargs: Mapping[str, Any]) -> str:
    return str(kwargs.get("api_base") or os.environ.get("OPENAI_API_BASE") or os.environ.get("OPENAI_BASE_URL")
               or "https://api.openai.com/v1")


def counting_client(spec: ModelSpec, kwargs: Mapping[str, Any]) -> Any | None:
    """A client whose requests are recorded on the wire, for ``litellm.acompletion(client=...)`` (cached per
    event loop); None when the provider goes through LiteLLM's own clients."""
    if spec.provider not in WIRED_PROVIDERS:
        return None
    litellm()
    from litellm.llms.custom_httpx.http_handler import AsyncHTTPHandler

    clients = _loop_clients()
    if spec.provider == "anthropic":
        if "anthropic" not in clients:
            transport = clients[("transport", "anthropic")] = WireTransport(AsyncHTTPHandler.create_async_transport())
            clients["anthropic"] = AsyncHTTPHandler(transport=transport)
        return clients["anthropic"]
    api_key = kwargs.get("api_key") or os.environ.get("OPENAI_API_KEY")
    base_url = _openai_base_url(kwargs)
    key = ("openai", base_url, api_key)
    if key not in clients:
        import httpx
        import openai

        transport = clients[("transport",) + key] = WireTransport(AsyncHTTPHandler.create_async_transport())
        http = httpx.AsyncClient(transport=transport, follow_redirects=True)
        clients[key] = openai.AsyncOpenAI(api_key=api_key or "none", base_url=base_url, http_client=http,
                                          max_retries=0)
    return clients[key]


_anyio_roots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[None]] = weakref.WeakKeyDictionary()


def keep_anyio_root() -> None:
    """Give anyio a long-lived root task on the running loop (call on llmlab's loop before a fan-out).

    LiteLLM hands work to threads through ``anyio.to_thread`` (``asyncify``: a streamed answer's
    ``stream_chunk_builder``, at the end of every stream). anyio keeps its worker threads alive for the life of
    the loop's *root task*, which it finds as the task ``run_until_complete`` runs. llmlab's loop runs
    ``run_forever``, so anyio found none: for every streamed call it scanned every task on the loop, took the
    call's own task as the root and started a fresh thread that stopped with it (about 6 % of a streamed call's
    CPU at concurrency 64, issue 11). The one use of anyio's private ``_root_task`` run variable, here; without
    it (another anyio), nothing changes but the speed.
    """
    loop = asyncio.get_running_loop()
    keeper = _anyio_roots.get(loop)
    if keeper is not None and not keeper.done():
        return
    try:
        from anyio._backends._asyncio import _root_task
    except Exception:  # noqa: BLE001 - a speed-up only  # pragma: no cover
        return
    keeper = _anyio_roots[loop] = loop.create_task(asyncio.Event().wait(), name="llmlab-anyio-root")
    try:
        _root_task.set(keeper)
    except Exception:  # noqa: BLE001 - a speed-up only  # pragma: no cover
        keeper.cancel()


def attach(wire: Wire) -> contextvars.Token[Wire | None]:
    """Make ``wire`` the current attempt's record (undo with :func:`detach`)."""
    return _wire.set(wire)


def detach(token: contextvars.Token[Wire | None]) -> None:
    _wire.reset(token)


async def _drain(task: asyncio.Future[Any], wire: Wire, late_by_s: float) -> bool:
    """After the deadline passed: give the loop turns to process what already arrived. Returns ``task.done()``.

    On a CPU-starved loop the deadline's timer and the bytes that arrived before it are handled in the same late
    turn. While the response keeps making progress on the wire (new bytes within ``DRAIN_QUIET_S``), or once its
    body is complete, the attempt is let finish, for at most twice the loop's own lateness (``DRAIN_MAX_S`` at
    most): that delay was ours, not the provider's."""
    start = time.monotonic()
    until = start + min(DRAIN_MAX_S, max(0.05, 2 * late_by_s))
    last = (wire.status, wire.body_bytes)
    progress_at = start
    while not task.done():
        now = time.monotonic()
        if now >= until or (not wire.body_done and now - progress_at > DRAIN_QUIET_S):
            break
        await asyncio.sleep(0)
        state = (wire.status, wire.body_bytes)
        if state != last:
            last, progress_at = state, time.monotonic()
    return task.done()


async def with_deadline(coro: Any, timeout_s: float, wire: Wire | None) -> Any:
    """Await ``coro`` for at most ``timeout_s`` seconds after its request is sent (after it starts when the send
    cannot be seen; ``PRE_SEND_GRACE_S`` more for the client to send it). Raises ``TimeoutError``."""
    task = asyncio.ensure_future(coro)
    start = time.monotonic()
    try:
        while True:
            if wire is None:
                deadline = start + timeout_s
            elif wire.sent_at is None:
                deadline = start + timeout_s + PRE_SEND_GRACE_S
            else:
                deadline = wire.sent_at + timeout_s
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if wire is not None and wire.sent_at is not None and await _drain(task, wire, -remaining):
                    return task.result()
                raise TimeoutError(f"no complete answer within {timeout_s:g} s of sending the request"
                                   if wire is None or wire.sent_at is not None
                                   else f"the request was not sent within {timeout_s + PRE_SEND_GRACE_S:g} s")
            waiters: set[Any] = {task}
            sent_waiter = None
            if wire is not None and wire.sent_at is None:
                sent_waiter = asyncio.ensure_future(wire.event.wait())
                waiters.add(sent_waiter)
            try:
                await asyncio.wait(waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if sent_waiter is not None and not sent_waiter.done():
                    sent_waiter.cancel()
            if task.done():
                return task.result()
    finally:
        if not task.done():
            task.cancel()
            try:
                await task
            except BaseException:  # noqa: BLE001 - the task's own outcome no longer matters
                pass


#: What LiteLLM (1.106) and the openai client import on their first request through the ``openai`` and
#: ``anthropic`` providers (found by comparing ``sys.modules`` before and after a first sandbox call of each;
#: ``tests/test_warmup.py`` checks that a first call after :func:`warm_up` imports none of LiteLLM's modules).
#: ``default_encoding`` loads the tokenizer LiteLLM's cost calculation counts with (cl100k, bundled: offline).
_WARM_UP_MODULES = (
    "openai.resources", "anyio._backends._asyncio",
    "litellm.litellm_core_utils.streaming_handler", "litellm.llms.anthropic.chat.handler",
    "litellm.llms.custom_httpx.http_handler", "litellm.litellm_core_utils.default_encoding",
    "litellm._service_logger", "litellm.integrations.prometheus_services",
    "litellm.proxy.openai_files_endpoints.common_utils", "litellm.llms.litellm_proxy.chat.transformation",
    "litellm.llms.openai.chat.gpt_audio_transformation", "litellm.llms.openai_like.dynamic_config",
    "litellm.llms.vertex_ai.vertex_ai_partner_models.anthropic.transformation",
    "litellm.llms.anthropic.completion.transformation", "litellm.llms.edenai.chat.transformation",
    "litellm.llms.fal_ai.chat.transformation", "litellm.llms.fal_ai.image_generation",
    "litellm.types.litellm_core_utils.streaming_chunk_builder_utils", "litellm.types.proxy.carried_budget_state",
    "litellm.types.proxy.control_plane_endpoints", "litellm.types.proxy.spend_capture_rate",
    "litellm.types.integrations.compression_interception", "litellm.types.integrations.prometheus",
    "litellm.types.object_permission",
)
_warmed = False


def warm_up() -> None:
    """Import, in a worker thread, what LiteLLM imports lazily on its first request (about 0.4 s of
    ``openai.resources``, LiteLLM's provider modules, the tokenizer its cost calculation loads): done on the loop
    thread, inside the first request's timeout, that work would stall every call in flight and can time a request
    out before it is sent. Does the work once per process (later calls return at once); makes no request."""
    global _warmed
    if _warmed:
        return
    import importlib

    litellm()
    for name in _WARM_UP_MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - an optional speed-up only
            log.debug("llmlab: warm-up import of %s failed", name, exc_info=True)
    _warmed = True
