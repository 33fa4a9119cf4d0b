"""Batch runs after a restart: :func:`resume` collects a run's provider batches from any process;
:func:`batches` lists them; :func:`cancel_batches` stops them (what completed is kept). See
:mod:`llmlab.runner.batch`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmlab import _loop
from llmlab.runner import batch as _batch
from llmlab.runner.handle import RunResult
from llmlab.runner.progress import Progress
from llmlab.store import Store

__all__ = [
    "batches",
    "cancel_batches",
    "resume",
]


def resume(run: Any = None, *, store: Store | None = None, wait: bool = True, poll_s: float | None = None,
           progress: bool = True, on_result: Callable[[dict[str, Any]], Any] | None = None) -> RunResult:
    """Pick a batch-mode run up where it was left (another kernel, another process, after a machine restart):
    submit its batches recorded but never sent, check the others, collect every batch that ended into the
    run's ``calls`` rows. Blocks until every batch is collected (``wait=False``: one pass, then return).

    Args:
        run: a run reference (id, unique prefix, name, ``"last"``/None) or a RunResult.
        store: the store the run is in (default: the run's own, else ``Store()``).
        poll_s: seconds between checks (default: the run's ``batch_poll_s``).

    Returns the run's :class:`RunResult` (its ``stats`` count every stored row of the run). A run with nothing
    left to collect returns at once. Raises RunNotFoundError, ModelError (a sandbox run resumed without
    ``LLMLAB_SANDBOX_API_BASE`` pointing at the sandbox that holds its batches).
    """
    store = store or getattr(run, "store", None) or Store()
    run_id = store.resolve_run(getattr(run, "run_id", run))
    stats = _batch.stored_stats(store, run_id)
    planned = store.sql("SELECT model, count(*) AS n FROM batch_requests WHERE run_id = ? GROUP BY model "
                        "UNION ALL SELECT model, count(*) FROM call_records WHERE run_id = ? AND cached GROUP BY model",
                        [run_id, run_id]).groupby("model")["n"].sum()
    prog = Progress(progress, models=list(planned.index), planned_by_model={m: int(n) for m, n in planned.items()})
    _loop.run_sync(_batch.collect(store, run_id, wait=wait, poll_s=poll_s, stats=stats, on_result=on_result),
                   on_tick=lambda: prog.update(stats))
    prog.update(stats, final=True)
    return RunResult(run_id, store, stats)


def batches(run: Any = None, *, store: Store | None = None) -> Any:
    """The provider batches recorded in the store, newest first (all runs when ``run`` is None): see
    :func:`llmlab.runner.batch.batches` for the columns."""
    store = store or getattr(run, "store", None) or Store()
    return _batch.batches(store, getattr(run, "run_id", run))


def cancel_batches(run: Any = None, *, store: Store | None = None) -> list[str]:
    """Ask the providers to cancel a run's running batches; returns their batch ids. Then :func:`resume`
    collects what they completed (the rest become ``batch_cancelled`` error rows). Raises RunNotFoundError,
    BatchError."""
    store = store or getattr(run, "store", None) or Store()
    return _loop.run_sync(_batch.cancel(store, getattr(run, "run_id", run)))
