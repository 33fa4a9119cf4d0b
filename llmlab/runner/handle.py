"""The one run driver every surface uses: :class:`RunHandle`, and :func:`run`, :func:`arun`, :func:`start`,
:func:`execute` over it; :class:`RunResult`."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from llmlab import _loop
from llmlab._litellm import litellm_version, redact
from llmlab.redaction import secrets_in_environment
from llmlab.store import Store, new_id, utc_now

log = logging.getLogger(__name__)
from llmlab.runner.fanout import RunStats, _Fanout
from llmlab.runner.plan import Plan, prepare
from llmlab.runner.progress import Progress
from llmlab.runner.wire import warm_up

__all__ = [
    "RunHandle",
    "RunResult",
    "arun",
    "execute",
    "run",
    "start",
]


# -- the public API ----------------------------------------------------------------------------------------
class RunResult:
    """A finished (or cancelled) run: its id, its store, its counters, and the frames behind it.

    ``results`` is :meth:`Store.results` (one row per call, see there for the columns; loaded once, until
    :meth:`refresh`); ``summary()`` and ``route()`` are :func:`llmlab.analysis.summarize` and
    :func:`llmlab.routing_table` of the stored run, aggregated in DuckDB as the store holds it now (the rows are
    not loaded, so they stay fast on a 10^5-call run).
    """

    def __init__(self, run_id: str, store: Store, stats: RunStats | None = None, plan: Plan | None = None) -> None:
        self.run_id, self.store, self.stats, self.plan = run_id, store, stats, plan
        self._results: Any = None

    @property
    def results(self) -> Any:
        if self._results is None:
            self._results = self.store.results(self.run_id)
        return self._results

    def refresh(self) -> RunResult:
        """Drop the cached results frame (after new scores or ratings)."""
        self._results = None
        return self

    @property
    def meta(self) -> dict[str, Any]:
        return self.store.run(self.run_id)

    def to_frame(self) -> Any:
        return self.results

    def __len__(self) -> int:
        return len(self.results)

    def summary(self, by: Sequence[str] = ("model",)) -> Any:
        from llmlab.analysis import summarize

        return summarize(self, by=tuple(by))

    def paired_summary(self, **kwargs: Any) -> Any:
        """Per category, best against runner-up with the smallest detectable difference
        (:func:`llmlab.analysis.paired_summary`)."""
        from llmlab.analysis import paired_summary

        return paired_summary(self.results, **kwargs)

    def route(self, **kwargs: Any) -> Any:
        from llmlab.routing.table import routing_table

        return routing_table(self, **kwargs)

    def report(self, path: str | None = None, **kwargs: Any) -> Any:
        from llmlab.views.report import report_run

        return report_run(self.run_id, path, store=self.store, **kwargs)

    def headline(self, *, store: bool = True) -> str:
        """``<llmlab run ID: N calls, K ok, E errors, store PATH>`` (without the store when ``store=False``)."""
        df = self.results
        n_ok = int((df["status"] == "ok").sum()) if len(df) else 0
        where = f", store {self.store.path}" if store else ""
        return f"<llmlab run {self.run_id}: {len(df)} calls, {n_ok} ok, {len(df) - n_ok} errors{where}>"

    #: the summary columns a plain-text view shows (repr, the CLI)
    BRIEF_COLUMNS = ("model", "n", "quality", "latency_p50_ms", "latency_p95_ms", "cost_per_1k_prompts_usd",
                     "error_rate")

    def brief_summary(self) -> Any:
        """The per-model summary restricted to :attr:`BRIEF_COLUMNS` (a DataFrame)."""
        summ = self.summary()
        return summ[[c for c in self.BRIEF_COLUMNS if c in summ.columns]]

    def __repr__(self) -> str:
        import shutil

        head = self.headline()
        if not len(self.results):
            return head
        try:
            width = shutil.get_terminal_size((120, 24)).columns
            return head + "\n" + self.brief_summary().to_string(index=False, float_format=lambda x: f"{x:.4g}",
                                                                line_width=width)
        except Exception:  # noqa: BLE001 - a repr must not fail
            return head

    def _repr_html_(self) -> str:
        import html

        return f"<pre>{html.escape(repr(self))}</pre>"


def _progress(enabled: bool | str, the_plan: Plan) -> Progress:
    planned: dict[str, int] = {}
    for c in the_plan.calls:
        planned[c.spec.name] = planned.get(c.spec.name, 0) + 1
    return Progress(enabled, models=[s.name for s in the_plan.specs], planned_by_model=planned)


def run_name(prompt_set: str, models: Sequence[str]) -> str:
    """A run's automatic name, telling runs apart: ``quickstart · frontier, tiny · 2026-12-02 15:51`` (up to
    three model short names, else ``N models``; the UTC minute the run started)."""
    short = [m.rsplit("/", 1)[-1] for m in models]
    who = ", ".join(short) if 0 < len(short) <= 3 else f"{len(short)} models"
    return f"{prompt_set} · {who} · {utc_now():%Y-%m-%d %H:%M}"


def _structured_fields(prompt: Any, extra: dict[str, Any], secrets: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """The prompt row's JSON columns: its conversation (images as path + hash), and the response format / tools
    its calls were made with (``extra``: the row's, else the run's); redacted of ``secrets``."""
    out: dict[str, Any] = {}
    for column, value in (("messages", prompt.messages), ("response_format", extra.get("response_format")),
                          ("tools", extra.get("tools")), ("tool_choice", extra.get("tool_choice"))):
        out[column] = None if value is None else redact(json.dumps(value, ensure_ascii=False, default=str), secrets)
    return out


async def _arun_impl(the_plan: Plan, store: Store, *, name: str | None, tags: Sequence[str],
                     on_result: Callable[[dict[str, Any]], Any] | None, on_delta: Callable[[str, str], Any] | None,
                     holder: dict[str, Any], run_id: str | None = None) -> RunResult:
    opts = the_plan.options
    ps = the_plan.prompt_set
    from llmlab._version import __version__

    run_id = run_id or new_id("r")
    job = None
    if opts.mode == "batch":  # the providers' batch APIs (llmlab.runner.batch): submit, record, collect
        from llmlab.runner.batch import BatchRun

        job = BatchRun(the_plan, run_id, store, on_result=on_result)  # refuses a model with no batch API
    await asyncio.to_thread(
        store.create_run, run_id=run_id, name=name or run_name(ps.name, [s.name for s in the_plan.specs]), prompt_set=ps.name,
        models=[s.name for s in the_plan.specs], params=opts.model_dump(), tags=list(tags),
        llmlab_version=__version__, litellm_version=litellm_version(), sandbox=any(s.sandbox for s in the_plan.specs),
        n_prompts=len(ps), n_calls_planned=the_plan.n_calls,
    )
    params_by_prompt = {c.prompt.prompt_id: c.call_params for c in the_plan.calls}
    secrets = secrets_in_environment()  # one scan of the environment for the run's prompts, not one per text
    await asyncio.to_thread(store.add_prompts, [
        {"run_id": run_id, "prompt_id": p.prompt_id, "category": p.category, "prompt": redact(p.text, secrets),
         "reference": redact(p.reference, secrets), "scorer": p.scorer,
         "system": redact(p.system or opts.system, secrets), "source_id": p.source_id,
         **_structured_fields(p, params_by_prompt.get(p.prompt_id, {}), secrets)}
        for p in ps
    ])
    if job is not None:
        holder["fanout"] = job
        return RunResult(run_id, store, await job.execute(), the_plan)
    if the_plan.completion is None:
        await asyncio.to_thread(warm_up)
    fan = _Fanout(the_plan, run_id, store, on_result=on_result, on_delta=on_delta, completion=the_plan.completion)
    holder["fanout"] = fan
    status = "finished"
    from llmlab.runner.workers import execute_in_workers, resolve_workers

    to_make = sum(1 for c in the_plan.calls if not (opts.cache and c.cache_key in the_plan.cached))
    k = resolve_workers(opts, to_make, on_delta=on_delta, completion=the_plan.completion)
    try:
        await (execute_in_workers(fan, k) if k > 1 else fan.execute())
    except asyncio.CancelledError:
        status = "cancelled"
        raise
    except BaseException:
        status = "failed"
        raise
    finally:
        await asyncio.shield(asyncio.to_thread(store.finish_run, run_id, status))
    return RunResult(run_id, store, fan.stats, the_plan)





class RunHandle:
    """One run of a :class:`Plan` on llmlab's background loop, observable while it runs.

    ``stats`` (:class:`RunStats`, None until the fan-out begins) and ``partial`` (call_id → streamed text so far,
    kept only when ``on_delta`` is given) are live; ``done()``, ``cancel()`` (completed calls stay recorded; the
    rest become ``cancelled`` rows) and ``result(timeout_s)`` (the :class:`RunResult`) work from any thread.
    ``coroutine()`` gives the run itself, to await on llmlab's loop (the widgets do); ``start()`` schedules it.
    """

    def __init__(self, the_plan: Plan, *, store: Store | None = None, name: str | None = None,
                 tags: Sequence[str] = (), run_id: str | None = None,
                 on_result: Callable[[dict[str, Any]], Any] | None = None,
                 on_delta: Callable[[str, str], Any] | None = None) -> None:
        self.plan = the_plan
        self.store = store or the_plan.store or Store()
        self.run_id = run_id or new_id("r")
        self.name, self.tags = name, tuple(tags)
        self.on_result, self.on_delta = on_result, on_delta
        self._holder: dict[str, Any] = {}
        self._task: _loop.TaskHandle | None = None

    @property
    def stats(self) -> RunStats | None:
        fan = self._holder.get("fanout")
        return fan.stats if fan is not None else None

    @property
    def partial(self) -> dict[str, str]:
        fan = self._holder.get("fanout")
        return dict(fan.partial) if fan is not None else {}

    def coroutine(self) -> Any:
        """The run as a coroutine (await it on llmlab's loop); returns a :class:`RunResult`."""
        return _arun_impl(self.plan, self.store, name=self.name, tags=self.tags, on_result=self.on_result,
                          on_delta=self.on_delta, holder=self._holder, run_id=self.run_id)

    def start(self) -> RunHandle:
        """Schedule the run on llmlab's background loop and return at once."""
        if self._task is None:
            self._task = _loop.start_task(self.coroutine())
        return self

    def done(self) -> bool:
        return self._task is not None and self._task.finished.is_set()

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def result(self, timeout_s: float | None = None) -> RunResult:
        """Wait for the run (``timeout_s`` seconds at most) and return its :class:`RunResult`; a cancelled run
        returns the result of what was recorded. Raises TimeoutError, or the run's own exception."""
        import concurrent.futures

        if self._task is None:
            raise RuntimeError("the run was not started: call start()")
        try:
            return self._task.future.result(timeout=timeout_s)
        except concurrent.futures.CancelledError:
            return RunResult(self.run_id, self.store, self.stats, self.plan)
        except concurrent.futures.TimeoutError as exc:
            raise TimeoutError(f"run {self.run_id} still running after {timeout_s} s") from exc


def start(the_plan: Plan, *, store: Store | None = None, name: str | None = None, tags: Sequence[str] = (),
          run_id: str | None = None, on_result: Callable[[dict[str, Any]], Any] | None = None,
          on_delta: Callable[[str, str], Any] | None = None) -> RunHandle:
    """Start a prepared run without blocking (widgets, long runs): returns a started :class:`RunHandle`."""
    return RunHandle(the_plan, store=store, name=name, tags=tags, run_id=run_id, on_result=on_result,
                     on_delta=on_delta).start()


def execute(the_plan: Plan, *, store: Store | None = None, name: str | None = None, tags: Sequence[str] = (),
            run_id: str | None = None, progress: bool = True,
            on_result: Callable[[dict[str, Any]], Any] | None = None,
            on_delta: Callable[[str, str], Any] | None = None,
            on_tick: Callable[[RunStats, dict[str, str]], Any] | None = None) -> RunResult:
    """Run a prepared :class:`Plan` and block until done (what :func:`run` does after planning).

    Callbacks and interrupt behaviour as in :func:`run`; ``run_id`` may be chosen by the caller (so it is known
    even when the run is interrupted).
    """
    handle = RunHandle(the_plan, store=store, name=name, tags=tags, run_id=run_id, on_result=on_result,
                       on_delta=on_delta)
    prog = _progress(progress, the_plan)

    def tick() -> None:
        stats = handle.stats
        if stats is None:
            return
        prog.update(stats)
        if on_tick is not None:
            on_tick(stats, handle.partial)

    try:
        result = _loop.run_sync(handle.coroutine(), on_tick=tick)
    except BaseException:
        if handle.stats is not None:  # an interrupt: close the display with what was done
            prog.update(handle.stats, final=True)
        raise
    if result.stats is not None:
        prog.update(result.stats, final=True)
    return result


def run(prompts: Any, models: Iterable[str] | str | None = None, *, name: str | None = None,
        tags: Sequence[str] = (), template: str | None = None, category_column: str | None = None,
        store: Store | None = None, progress: bool = True,
        on_result: Callable[[dict[str, Any]], Any] | None = None,
        on_delta: Callable[[str, str], Any] | None = None,
        on_tick: Callable[[RunStats, dict[str, str]], Any] | None = None, router: Any = None,
        **options: Any) -> RunResult:
    """Fan ``prompts`` out over ``models`` and record every call; blocks until done (works inside Jupyter).

    Args:
        prompts: anything :func:`llmlab.prompts.load_prompts` accepts (a bundled prompt-set name such as
            ``"quickstart"``, a CSV/JSONL path, a DataFrame, a list of strings, a PromptSet).
        models: LiteLLM model strings, sandbox models and ``@aliases`` (default: ``LLMLAB_MODELS`` or the sandbox).
        name, tags: labels for the run.
        template, category_column: fill ``template`` per row; take categories from that column.
        progress: show live progress from the calling thread (:class:`llmlab.runner.progress.Progress`: a display
            in Jupyter, a rich bar per model on a terminal, periodic plain lines otherwise); or a mode name.
        on_result(row): called on llmlab's loop thread with each final row (change widget traits there; do not
            print or display); the row carries ``auto_score`` (the deterministic score, or None).
            on_delta(call_id, text_piece): called on the loop thread with each new piece of a
            streamed answer (the pieces of a call that then fails are not an answer: wait for on_result).
            on_tick(stats, partial_texts): called on the calling thread about every 0.1 s (``partial_texts``:
            call_id → text so far, filled only when ``on_delta`` is given).
        router: route instead of fanning out: each prompt goes only to the model this policy chooses (a Policy,
            a PolicyPlugin, an exported config or its directory, a policy file); the decisions are recorded
            (``store.routing_decisions(run_id)``). See :mod:`llmlab.runner.replay`. Raises RoutingError.
        **options: :class:`RunOptions` fields (temperature, max_tokens, samples, system, concurrency,
            per_model_concurrency, timeout_s, max_attempts, max_retry_wait_s, rate_limits, fallbacks, budget_usd,
            cache, stream, extra_params; ``mode="batch"`` with batch_max_requests, batch_poll_s, batch_wait: the
            providers' batch APIs, see :mod:`llmlab.runner.batch` and :func:`llmlab.resume`).

    Returns a :class:`RunResult`. On ``KeyboardInterrupt`` the calls in flight are cancelled, finished calls stay
    recorded (cancelled ones as ``error_type = 'cancelled'`` rows), the run is marked cancelled and the interrupt
    propagates.

    Raises PromptSetError, ModelError, MissingKeyError, BudgetError, OptionsError (a bad or unknown option).
    """
    run_id = None
    if router is not None:
        from llmlab.runner.replay import prepare_routed

        the_plan, decisions = prepare_routed(router, prompts, models, store=store, template=template,
                                             category_column=category_column, **options)
        run_id = new_id("r")
        the_plan.store.add_routing_decisions([{**d, "run_id": run_id} for d in decisions])
    else:
        the_plan = prepare(prompts, models, store=store, template=template, category_column=category_column,
                           **options)
    return execute(the_plan, name=name, tags=tags, progress=progress, on_result=on_result, on_delta=on_delta,
                   on_tick=on_tick, run_id=run_id)


async def arun(prompts: Any, models: Iterable[str] | str | None = None, *, name: str | None = None,
               tags: Sequence[str] = (), template: str | None = None, category_column: str | None = None,
               store: Store | None = None, progress: bool = False,
               on_result: Callable[[dict[str, Any]], Any] | None = None,
               on_delta: Callable[[str, str], Any] | None = None, router: Any = None,
               **options: Any) -> RunResult:
    """The async form of :func:`run` (``await llmlab.arun(...)`` in a notebook cell or an async program).

    The work runs on llmlab's background loop; cancelling the awaiting task cancels it (completed calls stay).
    Same arguments, result and errors as :func:`run`.
    """
    run_id = None
    if router is not None:
        from llmlab.runner.replay import prepare_routed

        the_plan, decisions = await asyncio.to_thread(prepare_routed, router, prompts, models, store=store,
                                                      template=template, category_column=category_column, **options)
        run_id = new_id("r")
        await asyncio.to_thread(the_plan.store.add_routing_decisions, [{**d, "run_id": run_id} for d in decisions])
    else:
        the_plan = await asyncio.to_thread(prepare, prompts, models, store=store, template=template,
                                           category_column=category_column, **options)
    handle = RunHandle(the_plan, name=name, tags=tags, on_result=on_result, on_delta=on_delta, run_id=run_id)
    prog = _progress(progress, the_plan)

    def tick() -> None:
        if handle.stats is not None:
            prog.update(handle.stats)

    return await _loop.run_in_background_loop(handle.coroutine(), on_tick=tick)
