"""Warm-up off the critical path: begin importing LiteLLM (about 2.4 s of CPU) in a daemon thread as soon as the
notebook says it will need it (``%load_ext llmlab``), so that the first ``%%llm`` cell does not wait for it.

Python's import lock makes a cell that arrives before the warm-up is done wait for the same import, never import
twice. ``LLMLAB_WARMUP=0`` turns it off (``benchmarks/startup.py`` measures both). The warm-up only imports: it
starts no server, opens no store and makes no network call (LiteLLM is imported with the offline cost map).
"""

from __future__ import annotations

import logging
import os
import threading

__all__ = ["WARMUP_ENV", "warm_up"]

log = logging.getLogger(__name__)

#: Set to ``0`` to turn the warm-up off.
WARMUP_ENV = "LLMLAB_WARMUP"

_lock = threading.Lock()
_thread: threading.Thread | None = None


def _imports() -> None:
    try:
        from llmlab._litellm import litellm

        litellm()
        import duckdb  # noqa: F401  (the store)

        import llmlab.prompts  # noqa: F401  (pandas)
        import llmlab.runner.fanout  # noqa: F401  (the run driver)
        import llmlab.runner.plan  # noqa: F401
        import llmlab.sandbox.server  # noqa: F401  (aiohttp: the embedded sandbox the first sandbox/ cell starts)
        import llmlab.store  # noqa: F401
        import llmlab.views.display  # noqa: F401  (the magic's cards)
    except Exception:  # noqa: BLE001 - a failed warm-up only means the first cell imports it itself
        log.debug("llmlab warm-up failed", exc_info=True)


def warm_up() -> threading.Thread | None:
    """Start the warm-up thread once per process (later calls return the same thread); None when turned off."""
    global _thread
    if os.environ.get(WARMUP_ENV, "1").strip() == "0":
        return None
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=_imports, name="llmlab-warmup", daemon=True)
            _thread.start()
        return _thread
