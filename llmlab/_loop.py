"""One long-lived asyncio event loop in a daemon thread (DESIGN.md, decision 1).

Every synchronous entry point (``llmlab.run``, the magic, the widgets) submits its coroutine here and waits for
the result in short slices, so that a ``KeyboardInterrupt`` (Ctrl-C, the kernel's stop button) reaches the
waiting thread quickly; the coroutine is then cancelled inside the loop, its ``finally`` blocks run (the writer
flushes what completed) and the interrupt is re-raised. The loop is never closed and never re-entered, so it
works whether or not the user applied ``nest_asyncio`` and whatever loop the Jupyter kernel runs; LiteLLM's
per-loop HTTP client cache stays valid across calls.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def get_loop() -> asyncio.AbstractEventLoop:
    """Return the process-wide background event loop, starting its daemon thread on first use."""
    global _loop, _thread
    with _lock:
        if _loop is None or _thread is None or not _thread.is_alive():
            loop = asyncio.new_event_loop()
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


def in_loop_thread() -> bool:
    """True when called from the background loop's own thread."""
    return _thread is not None and threading.current_thread() is _thread


def submit(coro: Awaitable[T]) -> concurrent.futures.Future[T]:
    """Schedule ``coro`` on the background loop; returns a thread-safe future (``cancel()`` cancels the task)."""
    return asyncio.run_coroutine_threadsafe(coro, get_loop())  # type: ignore[arg-type]


def run_sync(
    coro: Awaitable[T],
    *,
    poll_s: float = 0.1,
    on_tick: Callable[[], Any] | None = None,
    cancel_grace_s: float = 10.0,
) -> T:
    """Run ``coro`` on the background loop and block until it finishes.

    Waits in slices of ``poll_s`` seconds, calling ``on_tick()`` from the *calling* thread after each slice (the
    progress display uses this: nothing is displayed from a worker thread). On ``KeyboardInterrupt`` the task is
    cancelled, given up to ``cancel_grace_s`` seconds to record what completed, and the interrupt is re-raised.

    Raises whatever the coroutine raises; ``RuntimeError`` if called from the loop's own thread (that would
    deadlock: use ``await`` there).
    """
    if in_loop_thread():
        raise RuntimeError("llmlab: a synchronous call was made from llmlab's own event loop; use `await` instead")
    fut = submit(coro)
    try:
        while True:
            try:
                result = fut.result(timeout=poll_s)
                break
            except concurrent.futures.TimeoutError:
                if on_tick is not None:
                    on_tick()
    except KeyboardInterrupt:
        fut.cancel()
        try:
            fut.result(timeout=cancel_grace_s)
        except BaseException:  # noqa: BLE001 - cancellation outcome is expected here
            pass
        raise
    if on_tick is not None:
        on_tick()
    return result


async def run_in_background_loop(coro: Awaitable[T], *, poll_s: float = 0.1, on_tick: Callable[[], Any] | None = None) -> T:
    """Await ``coro`` on the background loop from another event loop (the async API, ``await llmlab.arun``).

    Cancelling the awaiting task cancels the work on the background loop too.
    """
    if in_loop_thread():
        return await coro
    fut = submit(coro)
    wrapped = asyncio.wrap_future(fut)
    try:
        while True:
            done, _ = await asyncio.wait({wrapped}, timeout=poll_s)
            if done:
                break
            if on_tick is not None:
                on_tick()
    except asyncio.CancelledError:
        fut.cancel()
        raise
    if on_tick is not None:
        on_tick()
    return wrapped.result()
