"""Warm-up off the critical path: prepare, in a daemon thread started by ``%load_ext llmlab``, what the first
``%%llm`` cell would otherwise do itself before its first card, in the order that cell needs it:

1. ``prompts``: pandas and the prompt loaders (the cell's first step);
2. ``store``: open and migrate the store the magic will use (``%config LLMMagics.store_path`` as configured when
   the extension loads, else ``LLMLAB_DB`` or the default path), with a short lock wait. The connection is closed
   again at once: DuckDB lets one process hold a file, so nothing stays open that would lock out a second
   kernel or the CLI; a ``Store`` of the same path in this process then skips the migrations (done once per
   process and file);
3. ``sandbox``: the embedded sandbox's server code (aiohttp). The server itself is not started (starting it
   costs about 2 ms once imported, and a sandbox started here would make a later ``ensure_sandbox(seed=...)``
   ignore its arguments);
4. ``runner``: the run driver, its writer and worker-process modules, the scorers and the cards' views;
5. ``litellm``: LiteLLM itself (about 2.4 s of CPU), imported with the offline cost map;
6. ``first_call``: what LiteLLM and the openai client import or load on their first request
   (:func:`llmlab.runner.wire.warm_up`: provider modules, the tokenizer LiteLLM's cost calculation loads).

Python's import lock makes a cell that arrives before the warm-up is done wait for the same import, never import
twice. The warm-up makes no network call and no LiteLLM call (so no callback of the user's sees a request), and
starts no server. ``LLMLAB_WARMUP=0`` turns it off (``benchmarks/startup.py`` measures both).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

__all__ = ["STEPS", "WARMUP_ENV", "prepared", "warm_up"]

log = logging.getLogger(__name__)

#: Set to ``0`` to turn the warm-up off.
WARMUP_ENV = "LLMLAB_WARMUP"
#: The warm-up's steps, in the order it takes them (see the module docstring).
STEPS = ("prompts", "store", "sandbox", "runner", "litellm", "first_call")
#: How long the warm-up waits for a store another process holds (the cell then opens it itself).
STORE_LOCK_WAIT_S = 1.0

_lock = threading.Lock()
_thread: threading.Thread | None = None
_prepared: list[str] = []


def prepared() -> tuple[str, ...]:
    """The :data:`STEPS` the warm-up has completed so far, in order (a failed step is left out)."""
    return tuple(_prepared)


def _prompts() -> None:
    import llmlab.prompts  # noqa: F401  (pandas)


def _store(path: str | None) -> None:
    from llmlab.store import Store

    Store(path, lock_timeout_s=STORE_LOCK_WAIT_S)  # migrates; holds no connection afterwards


def _sandbox() -> None:
    import llmlab.sandbox.control  # noqa: F401  (aiohttp: the embedded sandbox the first sandbox/ cell starts)


def _runner() -> None:
    import duckdb  # noqa: F401
    import pandas.core.methods.to_dict  # noqa: F401  (the cards read the run's rows as records)
    import pyarrow.pandas_compat  # noqa: F401  (Store.results: DuckDB to pandas)
    import pyarrow.vendored.version  # noqa: F401

    import llmlab.migrations  # noqa: F401
    import llmlab.redaction  # noqa: F401
    import llmlab.runner.handle  # noqa: F401  (the run driver: plan, fan-out, wire, progress)
    import llmlab.runner.workers  # noqa: F401
    import llmlab.runner.writer  # noqa: F401
    import llmlab.scoring.checks  # noqa: F401  (each answer's deterministic score)
    import llmlab.scoring.structured  # noqa: F401
    import llmlab.views.display  # noqa: F401  (the magic's cards)


def _litellm() -> None:
    from llmlab._litellm import litellm

    litellm()


def _first_call() -> None:
    from llmlab.runner.wire import warm_up as warm_first_call

    warm_first_call()


def _run(store_path: str | None) -> None:
    steps: dict[str, Callable[[], None]] = {
        "prompts": _prompts, "store": lambda: _store(store_path), "sandbox": _sandbox, "runner": _runner,
        "litellm": _litellm, "first_call": _first_call,
    }
    for name in STEPS:
        try:
            steps[name]()
        except Exception:  # noqa: BLE001 - a failed step only means the first cell does it itself
            log.debug("llmlab warm-up: step %s failed", name, exc_info=True)
            continue
        _prepared.append(name)


def warm_up(*, store_path: str | os.PathLike[str] | None = None) -> threading.Thread | None:
    """Start the warm-up thread once per process (later calls return the same thread); None when turned off
    (``LLMLAB_WARMUP=0``).

    ``store_path``: the store to open and migrate (None: ``LLMLAB_DB`` or the default path, as ``Store()``).
    """
    global _thread
    if os.environ.get(WARMUP_ENV, "1").strip() == "0":
        return None
    with _lock:
        if _thread is None:
            path = None if store_path is None else os.fspath(store_path)
            _thread = threading.Thread(target=_run, args=(path,), name="llmlab-warmup", daemon=True)
            _thread.start()
        return _thread
