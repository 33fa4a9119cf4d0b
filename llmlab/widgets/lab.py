"""``llmlab.lab()``: pick models, prompts and parameters, run, and watch results arrive."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import ipywidgets as W
import pandas as pd

log = logging.getLogger(__name__)
from llmlab.widgets.cells import (
    _NO_MATH,
    _esc,
    records_from_frame,
)
from llmlab.widgets.compare import (
    CompareView,
    _fmt_int,
)

__all__ = [
    "Lab",
    "ModelPicker",
    "lab",
]


# -------------------------------------------------------------------------------------------------- the lab
class ModelPicker(W.VBox):
    """One checkbox per model or alias, with its whole label (no Ctrl-click listbox, no cut labels).

    ``options``: ``[(label, model), ...]``; ``value``: the tuple of checked models in option order (settable;
    unknown names are ignored); ``checkboxes``: model → ``ipywidgets.Checkbox``.
    """

    def __init__(self, options: Sequence[tuple[str, str]], value: Sequence[str] = ()) -> None:
        self.checkboxes = {m: W.Checkbox(value=m in value, description=label, indent=False,
                                         layout=W.Layout(width="auto")) for label, m in options}
        for m, box in self.checkboxes.items():
            box.add_class("llmlab-model-" + "".join(ch if ch.isalnum() else "-" for ch in m))
        super().__init__([W.HTML("<b>models</b>"), *self.checkboxes.values()],
                         layout=W.Layout(width="330px"))
        self.add_class("llmlab-model-picker")

    @property
    def options(self) -> list[str]:
        return list(self.checkboxes)

    @property
    def value(self) -> tuple[str, ...]:
        return tuple(m for m, box in self.checkboxes.items() if box.value)

    @value.setter
    def value(self, models: Sequence[str]) -> None:
        wanted = set(models)
        for m, box in self.checkboxes.items():
            box.value = m in wanted


class Lab(W.VBox):
    """Pick models, a prompt set and parameters; run with live progress and cancel; compare the results.

    Attributes (widgets): models_select (:class:`ModelPicker`: one checkbox per sandbox model and alias, full
    labels; ``.value`` is the tuple of checked models, settable), models_text (Text: more
    LiteLLM model strings, comma-separated), source_select (Dropdown: bundled sets, namespace DataFrames, a file
    path), path_text (Text), refresh_sources_button, max_prompts (0 = all), temperature, max_tokens, samples,
    concurrency, budget_usd (0 = none), use_cache, run_name; estimate_button, run_button, cancel_button, progress
    (IntProgress: calls done of planned), progress_html, status_html; runs_select, open_run_button,
    refresh_runs_button; results_box (holds :attr:`view`).

    Data attributes: store, view (the current :class:`CompareView` or None), run_id (the current or last run),
    last_stats (the runner's :class:`RunStats`), run_status (``running``, ``finished``, ``cancelled``, ``failed``).
    """

    def __init__(self, *, store: Any = None, namespace: Mapping[str, Any] | None = None, prompts: Any = None,
                 models: Iterable[str] | str | None = None, page_size: int = 10, max_prompts: int = 0,
                 **run_options: Any) -> None:
        super().__init__()
        self.add_class("llmlab-lab")
        from llmlab.models import SANDBOX_MODELS, aliases, default_models
        from llmlab.store import Store

        self.store = store or Store()
        self._namespace = namespace
        self.page_size = page_size
        self.view: CompareView | None = None
        self.run_id: str | None = None
        self.run_status: str | None = None
        self.last_stats: Any = None
        self._future: concurrent.futures.Future[Any] | None = None
        self._task: asyncio.Task[Any] | None = None
        self._cancel_requested = False
        self._given_prompts = None if prompts is None or isinstance(prompts, (str, os.PathLike)) else prompts

        # models
        options = [(f"{m} (sandbox, simulated)", m) for m in SANDBOX_MODELS]
        options += [(f"{a} → {', '.join(t)}", a) for a, t in sorted(aliases().items())]
        known = {v for _, v in options}
        wanted = (list(models) if not isinstance(models, str) else [models]) if models is not None else default_models()
        wanted = [m.strip() for item in wanted for m in str(item).split(",") if m.strip()]
        self.models_select = ModelPicker(options, value=tuple(m for m in wanted if m in known))
        self.models_text = W.Text(value=", ".join(m for m in wanted if m not in known),
                                  placeholder="more LiteLLM models: openai/gpt-4o-mini, …", description="other",
                                  layout=W.Layout(width="330px"))
        # prompts
        self.source_select = W.Dropdown(description="prompts", layout=W.Layout(width="330px"))
        self.path_text = W.Text(placeholder="path to a .csv / .jsonl / .json file", description="file",
                                layout=W.Layout(width="330px"))
        self.refresh_sources_button = W.Button(description="↻ sources", tooltip="rescan the notebook's DataFrames",
                                               layout=W.Layout(width="90px"))
        self.refresh_sources_button.on_click(lambda _b: self.refresh_sources())
        self.max_prompts = W.BoundedIntText(value=int(max_prompts), min=0, max=10**9, description="n prompts",
                                            tooltip="a sample of n prompts spread over the categories (0 = all)",
                                            layout=W.Layout(width="200px"))
        self.refresh_sources()
        if isinstance(prompts, (str, os.PathLike)):
            self._preselect_source(os.fspath(prompts))
        elif self._given_prompts is not None:
            self.source_select.value = ("given", None)
        # parameters
        self.temperature = W.FloatSlider(value=float(run_options.get("temperature", 0.0)), min=0.0, max=2.0,
                                         step=0.1, description="temperature")
        self.max_tokens = W.BoundedIntText(value=int(run_options.get("max_tokens", 512)), min=1, max=1_000_000,
                                           description="max tokens")
        self.samples = W.BoundedIntText(value=int(run_options.get("samples", 1)), min=1, max=1000,
                                        description="samples")
        self.concurrency = W.BoundedIntText(value=int(run_options.get("concurrency", 16)), min=1, max=1024,
                                            description="concurrency")
        self.budget_usd = W.BoundedFloatText(value=float(run_options.get("budget_usd") or 0.0), min=0.0, max=1e9,
                                             step=0.5, description="budget $", tooltip="USD; 0 = no budget")
        self.use_cache = W.Checkbox(value=bool(run_options.get("cache", True)), description="use cache",
                                    indent=False)
        self.run_name = W.Text(placeholder="run name (optional)", description="name")
        for w in (self.temperature, self.max_tokens, self.samples, self.concurrency, self.budget_usd, self.run_name,
                  self.models_text, self.source_select, self.path_text, self.max_prompts):
            w.style.description_width = "80px"
        self.temperature.style.description_width = "initial"
        self._extra_options = {k: v for k, v in run_options.items()
                               if k not in ("temperature", "max_tokens", "samples", "concurrency", "budget_usd",
                                            "cache")}
        # actions
        self.estimate_button = W.Button(description="Estimate", tooltip="plan the run: calls, cache hits, cost")
        self.run_button = W.Button(description="Run", button_style="primary")
        self.cancel_button = W.Button(description="Cancel", button_style="warning", disabled=True)
        self.estimate_button.add_class("llmlab-estimate")
        self.run_button.add_class("llmlab-run-button")
        self.cancel_button.add_class("llmlab-cancel-button")
        self.estimate_button.on_click(lambda _b: self._guard(self.estimate))
        self.run_button.on_click(lambda _b: self._guard(self.start))
        self.cancel_button.on_click(lambda _b: self.cancel())
        self.progress = W.IntProgress(value=0, min=0, max=1, description="calls", layout=W.Layout(width="420px"))
        self.progress_html = W.HTML()
        self.progress_html.add_class("llmlab-progress")
        self.status_html = W.HTML()
        self.status_html.add_class("llmlab-status")
        # past runs
        self.runs_select = W.Dropdown(description="past runs", layout=W.Layout(width="560px"))
        self.runs_select.style.description_width = "80px"
        self.open_run_button = W.Button(description="Open", tooltip="show this run below")
        self.open_run_button.on_click(lambda _b: self._guard(self.open_run))
        self.refresh_runs_button = W.Button(description="↻", tooltip="refresh the list of runs",
                                            layout=W.Layout(width="40px"))
        self.refresh_runs_button.on_click(lambda _b: self.refresh_runs())
        self.refresh_runs()
        self.results_box = W.VBox([W.HTML('<i style="color:#666">Run, or open a past run, to compare answers '
                                          "here.</i>")])
        pick = W.HBox([
            W.VBox([self.models_select, self.models_text]),
            W.VBox([self.source_select, self.path_text, W.HBox([self.max_prompts, self.refresh_sources_button]),
                    self.run_name]),
            W.VBox([self.temperature, self.max_tokens, self.samples, self.concurrency, self.budget_usd,
                    self.use_cache]),
        ], layout=W.Layout(flex_flow="row wrap"))
        self.children = [
            W.HTML('<b style="font-size:14px">llmlab lab</b>'), pick,
            W.HBox([self.estimate_button, self.run_button, self.cancel_button]),
            W.HBox([self.progress, self.progress_html]), self.status_html,
            W.HBox([self.runs_select, self.open_run_button, self.refresh_runs_button]),
            self.results_box,
        ]

    # -- choices --------------------------------------------------------------------------------------
    def _user_namespace(self) -> Mapping[str, Any]:
        if self._namespace is not None:
            return self._namespace
        try:
            from IPython import get_ipython

            ip = get_ipython()
        except Exception:  # noqa: BLE001
            return {}
        return getattr(ip, "user_ns", None) or {}

    def _frames(self) -> list[tuple[str, pd.DataFrame]]:
        ns = self._user_namespace()
        return [(k, v) for k, v in list(ns.items()) if not k.startswith("_") and isinstance(v, pd.DataFrame)]

    def refresh_sources(self) -> None:
        """Rebuild the prompt-set choices: bundled sets, the namespace's DataFrames, a file path."""
        from llmlab.prompts import bundled_prompt_sets

        opts: list[tuple[str, tuple[str, Any]]] = [(f"{n} (bundled)", ("bundled", n)) for n in bundled_prompt_sets()]
        opts += [(f"{k} (DataFrame, {len(v)} rows)", ("frame", k)) for k, v in self._frames()]
        if self._given_prompts is not None:
            opts.append(("prompts given to lab()", ("given", None)))
        opts.append(("file path…", ("path", None)))
        current = self.source_select.value
        self.source_select.options = opts
        values = [v for _, v in opts]
        self.source_select.value = current if current in values else values[0]

    def _preselect_source(self, text: str) -> None:
        if ("bundled", text) in [v for _, v in self.source_select.options]:
            self.source_select.value = ("bundled", text)
        elif ("frame", text) in [v for _, v in self.source_select.options]:
            self.source_select.value = ("frame", text)
        else:
            self.source_select.value = ("path", None)
            self.path_text.value = text

    def selected_models(self) -> list[str]:
        """The models chosen (aliases expanded, repeats dropped). Raises ModelError for an unknown alias or none."""
        from llmlab.errors import ModelError
        from llmlab.models import expand

        chosen = list(self.models_select.value) + [m.strip() for m in self.models_text.value.split(",") if m.strip()]
        names = expand(chosen)
        if not names:
            raise ModelError("choose at least one model")
        return names

    def selected_prompts(self) -> Any:
        """The prompt set chosen, loaded (:class:`llmlab.prompts.PromptSet`), cut to ``max_prompts`` when > 0.

        Raises PromptSetError (bad file, empty set, a DataFrame no longer in the namespace).
        """
        from llmlab.errors import PromptSetError
        from llmlab.prompts import load_prompts

        kind, ref = self.source_select.value or ("path", None)
        if kind == "bundled":
            ps = load_prompts(ref)
        elif kind == "frame":
            frame = self._user_namespace().get(ref)
            if not isinstance(frame, pd.DataFrame):
                raise PromptSetError(f"the DataFrame {ref!r} is no longer in the notebook's namespace")
            ps = load_prompts(frame, name=ref)
        elif kind == "given":
            ps = load_prompts(self._given_prompts)
        else:
            path = self.path_text.value.strip()
            if not path:
                raise PromptSetError("type the path of a prompt file (.csv, .jsonl or .json)")
            ps = load_prompts(path)
        n = int(self.max_prompts.value or 0)
        return ps.sample(n, by_category=True) if n > 0 else ps

    def options(self) -> dict[str, Any]:
        """The :class:`llmlab.runner.RunOptions` fields the parameter widgets give."""
        opts = dict(self._extra_options)
        opts.update(temperature=float(self.temperature.value), max_tokens=int(self.max_tokens.value),
                    samples=int(self.samples.value), concurrency=int(self.concurrency.value),
                    cache=bool(self.use_cache.value))
        if self.budget_usd.value and self.budget_usd.value > 0:
            opts["budget_usd"] = float(self.budget_usd.value)
        return opts

    def _guard(self, fn: Any) -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - a button must report, not raise into the void
            self._status(f"{type(exc).__name__}: {exc}", error=True)

    def _status(self, text: str, *, error: bool = False) -> None:
        color = "#a50e0e" if error else "#333"
        self.status_html.value = (f'<div class="{_NO_MATH}" style="color:{color};white-space:pre-wrap;font-size:12px">'
                                  f"{_esc(text)}</div>")

    def _prepare(self) -> tuple[Any, Any]:
        """Plan the chosen run (blocking: load prompts, resolve models, cache look-ups, budget check)."""
        from llmlab.runner import prepare
        from llmlab.sandbox import SANDBOX_API_BASE_ENV, ensure_sandbox

        models = self.selected_models()
        prompt_set = self.selected_prompts()
        if any(m.startswith("sandbox/") for m in models) and not os.environ.get(SANDBOX_API_BASE_ENV):
            ensure_sandbox()
        the_plan = prepare(prompt_set, models, store=self.store, **self.options())
        return the_plan, the_plan.store

    def estimate(self) -> Any:
        """Plan the chosen run without calling anything; show and return the :class:`llmlab.runner.Plan`.

        Raises PromptSetError, ModelError, MissingKeyError, BudgetError, OptionsError.
        """
        the_plan, _store = self._prepare()
        est = the_plan.estimate_cost_usd()
        est_s = "unknown (a model has no price)" if est is None else f"${est:.4f}"
        self._status(f"{the_plan.n_calls} calls = {len(the_plan.prompt_set)} prompts × {len(the_plan.specs)} models "
                     f"× {the_plan.options.samples} samples; {the_plan.n_cached} from cache; "
                     f"estimated cost {est_s} (an estimate, not a bound)")
        return the_plan

    # -- running --------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._future is not None and not self._future.done()

    def start(self) -> None:
        """Start the chosen run on llmlab's background loop and return at once (the Run button).

        Model and option errors found before planning are shown in the status line (and raised here); problems
        found while planning (prompt file, missing key, budget) are shown in the status line.
        """
        from llmlab import _loop
        from llmlab.store import new_id

        if self.running:
            return
        models = self.selected_models()
        self.options()
        run_id = new_id("r")
        view = CompareView([], models=models, run_id=run_id, store=self.store, page_size=self.page_size)
        self._replace_view(view)
        self.view, self.run_id, self.run_status, self.last_stats = view, run_id, "running", None
        self._cancel_requested = False
        self._task = None
        self.results_box.children = [view]
        self.run_button.disabled = True
        self.cancel_button.disabled = False
        self.progress.value, self.progress.max, self.progress.bar_style = 0, 1, ""
        self.progress_html.value = "planning…"
        self._status("")
        self._future = _loop.submit(self._drive(view, run_id))

    async def _drive(self, view: CompareView, run_id: str) -> str:
        from llmlab.runner import RunHandle

        status = "failed"
        try:
            try:
                the_plan, store = await asyncio.to_thread(self._prepare)
            except Exception as exc:  # noqa: BLE001 - shown to the user, the run never started
                self._status(f"{type(exc).__name__}: {exc}", error=True)
                return status
            if self._cancel_requested:
                status = "cancelled"
                self._status("cancelled before the run started")
                return status
            self.progress.max = max(1, the_plan.n_calls)
            view._begin_live(the_plan, run_id)
            name = self.run_name.value.strip() or None
            handle = RunHandle(the_plan, store=store, name=name, tags=("lab",), run_id=run_id,
                               on_result=view._queue_result)
            self._task = asyncio.ensure_future(handle.coroutine())
            while not self._task.done():
                await asyncio.wait({self._task}, timeout=0.25)
                self._show_progress(handle, the_plan.n_calls)
                view._flush_live()
            try:
                self._task.result()
                status = "finished"
            except asyncio.CancelledError:
                status = "cancelled"
            except Exception as exc:  # noqa: BLE001
                self._status(f"the run failed: {type(exc).__name__}: {exc}", error=True)
            self._show_progress(handle, the_plan.n_calls, final=status)
            view._flush_live(force=True)
            view._end_live()
            try:
                await asyncio.to_thread(view.reload)
            except Exception as exc:  # noqa: BLE001
                log.warning("llmlab: could not reload run %s: %s", run_id, exc)
            if status == "cancelled":
                self._status("cancelled: the calls that completed are recorded (the others as 'cancelled' errors)")
            elif status == "finished":
                self._status(f"finished: run {run_id}")
            return status
        finally:
            self.run_status = status
            self.run_button.disabled = False
            self.cancel_button.disabled = True
            try:
                await asyncio.to_thread(self.refresh_runs)
            except Exception:  # noqa: BLE001
                log.debug("llmlab: could not refresh the run list", exc_info=True)

    def _show_progress(self, handle: Any, planned: int, final: str | None = None) -> None:
        s = handle.stats
        if s is None:
            self.progress_html.value = "starting…" if final is None else _esc(final)
            return
        self.last_stats = s
        self.progress.max = max(1, s.planned)
        self.progress.value = min(s.done, s.planned)
        n_cancelled = int(s.errors_by_type.get("cancelled", 0))
        parts = [f"{s.done}/{s.planned} calls", f"{s.error - n_cancelled} errors", f"{s.cached} cached",
                 f"${s.cost_usd:.4f} so far"]
        if n_cancelled:
            parts.insert(2, f"{n_cancelled} cancelled")
        eta = s.eta_s()
        if final is None and eta is not None:
            parts.append(f"ETA {eta:.0f} s")
        if final is not None:
            parts.append(final)
            self.progress.bar_style = {"finished": "success", "cancelled": "warning"}.get(final, "danger")
        self.progress_html.value = f'<span style="font-size:12px">{_esc(" · ".join(parts))}</span>'

    def cancel(self) -> None:
        """Cancel the running run (the Cancel button): calls in flight stop, completed calls stay recorded."""
        from llmlab import _loop

        if not self.running:
            return
        self._status("cancelling…")
        _loop.get_loop().call_soon_threadsafe(self._cancel_on_loop)

    def _cancel_on_loop(self) -> None:
        self._cancel_requested = True
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def wait(self, timeout_s: float | None = None) -> str | None:
        """Block until the current run (if any) ends; returns its status (``finished``, ``cancelled``, ``failed``).

        Raises TimeoutError when it is still running after ``timeout_s`` seconds. Meant for scripts and tests:
        in a notebook, just watch the progress bar.
        """
        if self._future is None:
            return self.run_status
        try:
            return self._future.result(timeout=timeout_s)
        except concurrent.futures.TimeoutError as exc:
            raise TimeoutError(f"the run is still going after {timeout_s} s") from exc

    # -- past runs ------------------------------------------------------------------------------------
    def refresh_runs(self) -> None:
        """Reload the list of the store's runs (newest first, at most 100)."""
        runs = self.store.runs(limit=100)
        opts = []
        for r in records_from_frame(runs):
            created = str(r.get("created_at_utc") or "")[:16]
            label = (f"{r.get('name') or '(unnamed)'} · {r.get('run_id')} · {r.get('status')} · "
                     f"{_fmt_int(r.get('n_calls'))} calls · {created}")
            opts.append((label, r.get("run_id")))
        current = self.runs_select.value
        self.runs_select.options = opts
        values = [v for _, v in opts]
        if values:
            self.runs_select.value = current if current in values else values[0]

    def _replace_view(self, view: CompareView) -> None:
        """Close the view ``view`` replaces (its widgets and calls freed), unless a run is still filling it."""
        old = self.view
        if old is not None and old is not view and not self.running:
            old.close()

    def open_run(self, run: str | None = None) -> CompareView:
        """Show a past run (default: the one chosen in :attr:`runs_select`) as it was, ratings included."""
        ref = run or self.runs_select.value
        view = CompareView.from_store(ref, self.store, page_size=self.page_size)
        self._replace_view(view)
        self.view = view
        self.results_box.children = [view]
        self._status(f"opened run {view.run_id}")
        return view


def lab(*, store: Any = None, prompts: Any = None, models: Iterable[str] | str | None = None,
        namespace: Mapping[str, Any] | None = None, page_size: int = 10, max_prompts: int = 0,
        **run_options: Any) -> Lab:
    """Open the lab widget (display it as a cell's last expression).

    Args:
        store: the :class:`llmlab.Store` runs are recorded in (default: ``LLMLAB_DB`` / the default path).
        prompts: the prompt set preselected: a bundled name, a file path, or anything
            :func:`llmlab.load_prompts` accepts (a DataFrame, a list, a PromptSet).
        models: models preselected (default: ``LLMLAB_MODELS`` or the sandbox models).
        namespace: where to look for DataFrames (default: the IPython user namespace).
        page_size: prompt rows per page of the results grid.
        max_prompts: preset of "n prompts": a sample spread over the categories (0 = all prompts).
        **run_options: initial values of temperature, max_tokens, samples, concurrency, budget_usd, cache; other
            :class:`llmlab.RunOptions` fields are passed to every run as given.

    Returns a :class:`Lab`.
    """
    return Lab(store=store, namespace=namespace, prompts=prompts, models=models, page_size=page_size,
               max_prompts=max_prompts, **run_options)

