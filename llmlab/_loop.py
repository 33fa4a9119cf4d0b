"""One long-lived asyncio event loop in a daemon thread (DESIGN.md, decision 1).

Every synchronous entry point (``llmlab.run``, the magic, the widgets) submits its coroutine here and waits for
the result in short slices, so that a ``KeyboardInterrupt`` (Ctrl-C, the kernel's stop button) reaches the
waiting thread quickly; the task is then cancelled inside the loop, and the waiting thread blocks until the task
has *really* finished (its ``finally`` blocks ran: the writer flushed what completed, the run was marked
cancelled) before the interrupt is re-raised, so that the next cell sees every completed call. The loop is never
closed and never re-entered, so it works whether or not the user applied ``nest_asyncio`` and whatever loop the
Jupyter kernel runs; LiteLLM's per-loop HTTP client cache stays valid across calls.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

__all__ = [
    "TaskHandle",
    "at_exit",
    "get_loop",
    "in_loop_thread",
    "run_in_background_loop",
    "run_sync",
    "start_task",
    "submit",
]

T = TypeVar("T")

log = logging.getLogger(__name__)

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def get_loop() -> asyncio.AbstractEventLoop:
    """Return the process-wide background event loop, starting its daemon thread on first use."""
    global _loop, _thread
    with _lock:
        if _loop is None or _thread is None or not _thread.is_alive():
            loop = asyncio.new_event_loop()
            _cheap_asyncgen_finalizer(loop)
            ready = threading.Event()

            def _run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            thread = threading.Thread(target=_run, name="llmlab-loop", daemon=True)
            thread.start()
            ready.wait()
            _loop, _thread = loop, thread
        return _loop


def _cheap_asyncgen_finalizer(loop: asyncio.AbstractEventLoop) -> None:
    """Finalize abandoned async generators with ``call_soon`` when the garbage collector runs on the loop's own
    thread (it nearly always does), ``call_soon_threadsafe`` otherwise.

    asyncio's hook always uses ``call_soon_threadsafe``, which writes to the loop's self-pipe: a system call per
    generator. A streamed LiteLLM answer leaves about a dozen async generators of openai / httpx suspended after
    ``[DONE]``, so that was a dozen system calls per streamed call (about 10 % of its CPU, issue 11). The one
    private-attribute use of this module: ``BaseEventLoop._asyncgen_finalizer_hook`` is what ``run_forever``
    installs with ``sys.set_asyncgen_hooks`` (CPython 3.11-3.13); without it asyncio's own hook stays.
    """
    original = getattr(loop, "_asyncgen_finalizer_hook", None)
    if original is None:  # pragma: no cover - another asyncio implementation
        return

    def finalize(agen: Any) -> None:
        if threading.get_ident() == getattr(loop, "_thread_id", None):
            loop.call_soon(loop.create_task, agen.aclose())
        else:
            original(agen)

    loop._asyncgen_finalizer_hook = finalize  # type: ignore[attr-defined]


def in_loop_thread() -> bool:
    """True when called from the background loop's own thread."""
    return _thread is not None and threading.current_thread() is _thread


class TaskHandle:
    """A coroutine running as a task on the background loop, seen from another thread.

    ``future`` (a ``concurrent.futures.Future``) resolves only once the task has finished, cancelled ones
    included: unlike ``asyncio.run_coroutine_threadsafe``, cancelling does not resolve it early, so a caller can
    wait for the task's cleanup. ``cancel()`` asks the task to stop (thread-safe).
    """

    def __init__(self, coro: Coroutine[Any, Any, Any], loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._task: asyncio.Task[Any] | None = None
        self._cancel_requested = False
        self.finished = threading.Event()  # set once the task is done and ``future`` resolved
        loop.call_soon_threadsafe(self._create, coro)

    def _create(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = self.loop.create_task(coro)
        self._task = task
        task.add_done_callback(self._done)
        if self._cancel_requested:
            task.cancel()

    def _done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            self.future.cancel()  # never marked running, so this resolves it as cancelled
        elif task.exception() is not None:
            self.future.set_exception(task.exception())  # type: ignore[arg-type]
        else:
            self.future.set_result(task.result())
        self.finished.set()

    def cancel(self) -> None:
        """Request cancellation of the task (it finishes its cleanup; ``future`` resolves afterwards)."""
        self._cancel_requested = True

        def _do() -> None:
            if self._task is not None and not self._task.done():
                self._task.cancel()

        self.loop.call_soon_threadsafe(_do)


def submit(coro: Awaitable[T]) -> concurrent.futures.Future[T]:
    """Schedule ``coro`` on the background loop; returns a thread-safe future (``cancel()`` cancels the task)."""
    return asyncio.run_coroutine_threadsafe(coro, get_loop())  # type: ignore[arg-type]


def start_task(coro: Coroutine[Any, Any, T]) -> TaskHandle:
    """Run ``coro`` as a task on the background loop; see :class:`TaskHandle`."""
    return TaskHandle(coro, get_loop())


def run_sync(
    coro: Awaitable[T],
    *,
    poll_s: float = 0.1,
    on_tick: Callable[[], Any] | None = None,
    cancel_grace_s: float = 30.0,
) -> T:
    """Run ``coro`` on the background loop and block until it finishes.

    Waits in slices of ``poll_s`` seconds, calling ``on_tick()`` from the *calling* thread after each slice (the
    progress display uses this: nothing is displayed from a worker thread). On ``KeyboardInterrupt`` the task is
    cancelled and the calling thread waits up to ``cancel_grace_s`` seconds for it to finish its cleanup (record
    what completed); a second interrupt stops that wait. Then the interrupt is re-raised.

    Raises whatever the coroutine raises; ``RuntimeError`` if called from the loop's own thread (that would
    deadlock: use ``await`` there).
    """
    if in_loop_thread():
        if asyncio.iscoroutine(coro):
            coro.close()
        raise RuntimeError("llmlab: a synchronous call was made from llmlab's own event loop; use `await` instead")
    handle = start_task(coro)  # type: ignore[arg-type]
    fut = handle.future
    try:
        while True:
            try:
                result = fut.result(timeout=poll_s)
                break
            except concurrent.futures.TimeoutError:
                if on_tick is not None:
                    on_tick()
    except KeyboardInterrupt:
        handle.cancel()
        try:
            handle.finished.wait(cancel_grace_s)
        except KeyboardInterrupt:  # a second interrupt: stop waiting for the cleanup
            log.warning("llmlab: second interrupt; not waiting for the cancelled run to record its last calls")
        if not fut.done():
            log.warning("llmlab: the cancelled run did not finish its cleanup within %.0f s", cancel_grace_s)
        raise
    if on_tick is not None:
        on_tick()
    return result


async def run_in_background_loop(coro: Awaitable[T], *, poll_s: float = 0.1, on_tick: Callable[[], Any] | None = None,
                                 cancel_grace_s: float = 30.0) -> T:
    """Await ``coro`` on the background loop from another event loop (the async API, ``await llmlab.arun``).

    Cancelling the awaiting task cancels the work on the background loop too, and waits (up to
    ``cancel_grace_s`` seconds) until that work has finished its cleanup before re-raising ``CancelledError``.
    """
    if in_loop_thread():
        return await coro
    handle = start_task(coro)  # type: ignore[arg-type]
    wrapped = asyncio.wrap_future(handle.future)
    try:
        while True:
            done, _ = await asyncio.wait({wrapped}, timeout=poll_s)
            if done:
                break
            if on_tick is not None:
                on_tick()
    except asyncio.CancelledError:
        handle.cancel()
        try:
            await asyncio.wait({wrapped}, timeout=cancel_grace_s)
        except asyncio.CancelledError:
            pass
        raise
    if on_tick is not None:
        on_tick()
    return wrapped.result()


def _close_http_clients_at_exit() -> None:
    """At interpreter exit, close LiteLLM's cached async HTTP clients on the loop that created them (otherwise
    aiohttp complains about unclosed connectors while Python shuts down)."""
    import sys

    loop = _loop
    if loop is None or not loop.is_running() or "litellm" not in sys.modules:
        return
    # Sessions LiteLLM does not track are collected after logging is torn down: report nothing at exit.
    loop.set_exception_handler(lambda _loop, _context: None)
    try:
        from litellm.llms.custom_httpx.async_client_cleanup import close_litellm_async_clients

        asyncio.run_coroutine_threadsafe(close_litellm_async_clients(), loop).result(timeout=2)
        for closer in list(_EXIT_COROUTINES):
            asyncio.run_coroutine_threadsafe(closer(), loop).result(timeout=2)
    except Exception:  # noqa: BLE001 - best effort at exit
        pass


_EXIT_COROUTINES: list[Any] = []


def at_exit(closer: Any) -> None:
    """Run ``await closer()`` on llmlab's loop at interpreter exit (for clients made on it; registered once)."""
    if closer not in _EXIT_COROUTINES:
        _EXIT_COROUTINES.append(closer)


atexit.register(_close_http_clients_at_exit)
