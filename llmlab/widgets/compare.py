"""``llmlab.compare(run)``: the comparison view (prompts × models grid, details, ratings, charts, routing)."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import ipywidgets as W
import pandas as pd

from llmlab.errors import LLMLabError, StoreError
from llmlab.routing.table import ROUTING_DEFAULTS
from llmlab.store import CallNotFoundError

log = logging.getLogger(__name__)
from llmlab.widgets.cells import (
    _LH,
    _NO_MATH,
    _PROMPT_SNIPPET_CHARS,
    ALL,
    SORTS,
    STATUS_FILTERS,
    _badge,
    _cell_badges,
    _cell_html,
    _css_ident,
    _esc,
    _fmt_ms,
    _fmt_usd,
    _num,
    _pre,
    _truncate,
    frame_from_records,
    model_header_html,
    normalized_results,
)
from llmlab.widgets.compare_tabs import ChartsAndRouting, _warm_chart_imports
from llmlab.widgets.download import DownloadPanel
from llmlab.widgets.grid import GridRows, grid_rows
from llmlab.widgets.images import thumbnails
from llmlab.widgets.lifetime import close_tree
from llmlab.widgets.pairs import TAB_TITLES, PairsView
from llmlab.widgets.records import RecordTable, header_figures, index_frame
from llmlab.widgets.routing_tab import _fmt_int, _fmt_score

__all__ = [
    "CompareView",
    "compare",
]


# ------------------------------------------------------------------------------------------------ the view
class CompareView(ChartsAndRouting, W.VBox):
    """The comparison view of one run: answers grid, charts and routing tabs (see the module docstring).

    Build it with :func:`compare` (or :meth:`from_store` / :meth:`from_frame`); the lab builds one per run.

    Attributes (widgets, all public so tests and scripts can drive them):
        filter_category, filter_model, filter_status (Dropdowns), filter_text (Text), sort_by (Dropdown),
        prev_button, next_button, page_label; grid (GridBox); detail_html (HTML), good_button, bad_button,
        star_buttons (1★..5★), rating_comment (Textarea), rating_status (HTML); compare_a, compare_b (Dropdowns),
        side_by_side (HTML); tabs (Tab: Answers, Charts, Routing, Pick two = pairs, a PairsView); charts_output
        (Output), refresh_charts_button; tolerance (FloatSlider, quality 0..1), latency_limit (BoundedFloatText, p95
        in ms, 0 = none), min_samples (BoundedIntText, scored calls), routing_html, projection_html (HTML);
        export_path (Text), export_button, export_status (HTML); header (HTML).

    Data attributes:
        run_id, store, meta (the run's ``runs`` row), models (column order), selected_call_id,
        routing_table (DataFrame or None), routing_error, projection (dict or None, see
        :func:`llmlab.routing.project`), chart_figures ({title: plotly Figure}), exported_path,
        results (the calls as a results frame).
        grid_rows: the rows the filters and the sort keep, all pages, in display order; one dict per (prompt,
        sample): ``prompt_id, sample_index, category, prompt, reference, cells`` where ``cells`` maps each model
        shown to a copy of its call's row (the :meth:`llmlab.store.Store.results` columns: ``call_id, status,
        response, latency_ms`` (ms), ``cost_usd`` (USD), ``cached, error_type, error_message, quality,
        human_score, human_comment``, ...; ``status`` is ``pending`` for a live run's unfinished calls).
        page_rows: the current page's slice of grid_rows.
    """

    def __init__(self, records: Iterable[Mapping[str, Any]] | pd.DataFrame = (), *,
                 models: Sequence[str] | None = None,
                 run_id: str | None = None, store: Any = None, meta: Mapping[str, Any] | None = None,
                 page_size: int = 10, live_refresh_s: float = 0.5, rate_wait_s: float = 3.0) -> None:
        super().__init__()
        _warm_chart_imports()
        self.add_class("llmlab-compare")
        if run_id:
            self.add_class(f"llmlab-run-{_css_ident(run_id)}")
        self.run_id = run_id
        self.store = store
        self.meta: dict[str, Any] = dict(meta or {})
        self.page_size = max(1, int(page_size))
        self.live_refresh_s = float(live_refresh_s)
        self.rate_wait_s = float(rate_wait_s)
        self._lock = threading.RLock()
        self._records: RecordTable = RecordTable()
        self._index: dict[tuple[str, int], dict[str, str]] = {}
        self._order: list[tuple[str, int]] = []
        self._pending_rows: list[dict[str, Any]] = []
        self._prompt_info: dict[str, dict[str, Any]] = {}
        self._last_live = 0.0
        self._live = False
        self._suspend = 0
        self.page = 0
        self.grid_rows: GridRows = GridRows([], {}, {}, {}, [])
        self.selected_call_id: str | None = None
        self._routing_table: Any = None
        self.routing_error: str | None = None
        self.projection: dict[str, Any] | None = None
        self._routing_dirty = True
        self._charts_dirty = True
        self._stored_run = False
        self.chart_figures: dict[str, Any] = {}
        self.exported_path: Path | None = None
        frame = records if isinstance(records, pd.DataFrame) else None
        records = [] if frame is not None else [dict(r) for r in records]
        if models is None:
            found = (frame["model"].dropna().astype(str).unique().tolist() if frame is not None and "model" in frame
                     else [str(r.get("model")) for r in records if r.get("model") is not None])
            models = list(dict.fromkeys(found))
        self.models: list[str] = list(dict.fromkeys(models))
        self._build()
        if frame is not None:
            self._ingest_frame(frame)
        else:
            self._ingest(records, replace=True)
        self._refresh_all()

    # -- construction ---------------------------------------------------------------------------------
    @classmethod
    def from_store(cls, run: str | None = None, store: Any = None, **kwargs: Any) -> CompareView:
        """The view of a recorded run (id, unique id prefix, name, or ``None``/``"last"``) as stored, ratings
        included. Raises StoreError (RunNotFoundError when nothing matches)."""
        from llmlab.store import Store

        store = store or Store()
        meta = store.run(run)
        run_id = meta["run_id"]
        frame = store.results(run_id)
        models = list(meta.get("models") or [])
        for m in frame["model"].dropna().unique().tolist():
            if m not in models:
                models.append(m)
        view = cls(frame, models=models, run_id=run_id, store=store, meta=meta, **kwargs)
        view._stored_run = True  # its tabs summarize the stored run in DuckDB (ChartsAndRouting._summary_source)
        return view

    @classmethod
    def from_frame(cls, results: pd.DataFrame, *, store: Any = None, **kwargs: Any) -> CompareView:
        """A view of a results frame (:meth:`Store.results` columns). Ratings need ``store``."""
        run_ids = set(results["run_id"].dropna().tolist()) if "run_id" in results.columns else set()
        run_id = run_ids.pop() if len(run_ids) == 1 else None
        return cls(results, run_id=run_id, store=store, **kwargs)

    def _build(self) -> None:
        layout_dd = W.Layout(width="230px")
        self.header = W.HTML()
        self.header.add_class("llmlab-header")
        # filters
        self.filter_category = W.Dropdown(options=[ALL], value=ALL, description="category", layout=layout_dd)
        self.filter_model = W.Dropdown(options=[ALL, *self.models], value=ALL, description="model", layout=layout_dd)
        self.filter_status = W.Dropdown(options=list(STATUS_FILTERS), value=ALL, description="status",
                                        layout=layout_dd)
        self.filter_text = W.Text(value="", placeholder="search prompts and answers", description="text",
                                  continuous_update=True, layout=W.Layout(width="260px"))
        self.sort_by = W.Dropdown(options=list(SORTS), value="order", description="sort",
                                  layout=W.Layout(width="260px"))
        for w in (self.filter_category, self.filter_model, self.filter_status, self.filter_text, self.sort_by):
            w.style.description_width = "60px"
            w.observe(self._on_filter, names="value")
        self.prev_button = W.Button(description="◀ prev", layout=W.Layout(width="80px"))
        self.next_button = W.Button(description="next ▶", layout=W.Layout(width="80px"))
        self.page_label = W.Label()
        self.prev_button.on_click(lambda _b: self.goto_page(self.page - 1))
        self.next_button.on_click(lambda _b: self.goto_page(self.page + 1))
        filters = W.HBox([self.filter_category, self.filter_model, self.filter_status, self.filter_text,
                          self.sort_by], layout=W.Layout(flex_flow="row wrap"))
        pager = W.HBox([self.prev_button, self.next_button, self.page_label])
        # grid: a fixed pool of widgets (page_size rows × models) whose traits change; nothing is re-created
        self._corner = W.HTML('<b style="font-size:12px">prompt</b>')
        self._headers = []
        for i, m in enumerate(self.models):
            h = W.HTML(f'<div class="{_NO_MATH}" style="font-weight:bold;font-size:12px;word-break:break-all">'
                       f'{_esc(m)}</div>')
            h.add_class("llmlab-model-header")
            h.add_class(f"llmlab-col-{i}")
            self._headers.append(h)
        self._pool: list[dict[str, Any]] = []
        for r in range(self.page_size):
            prompt_html = W.HTML(layout=W.Layout(overflow="hidden"))
            prompt_html.add_class("llmlab-prompt")
            cells = []
            for i, _m in enumerate(self.models):
                body = W.HTML(layout=W.Layout(overflow="hidden"))
                btn = W.Button(description="details", icon="search", tooltip="open this answer's details",
                               layout=W.Layout(width="fit-content", height="22px", align_self="flex-end"))
                btn.add_class("llmlab-open")
                btn.on_click(lambda _b, r=r, i=i: self._on_open(r, i))
                box = W.VBox([body, btn], layout=W.Layout(border="1px solid #ddd", padding="4px",
                                                          overflow="hidden"))
                box.add_class("llmlab-cell")
                box.add_class(f"llmlab-col-{i}")
                cells.append((box, body, btn))
            self._pool.append({"prompt": prompt_html, "cells": cells})
        self._page_cells: dict[tuple[int, int], str | None] = {}
        self.grid = W.GridBox(layout=W.Layout(grid_gap="4px", width="100%"))
        self.grid.add_class("llmlab-grid")
        # details, rating, side by side
        self.detail_html = W.HTML()
        self.detail_html.add_class("llmlab-detail")
        self.good_button = W.Button(description="good", icon="thumbs-up",
                                    tooltip="rate this answer good (scorer 'human')")
        self.bad_button = W.Button(description="bad", icon="thumbs-down",
                                   tooltip="rate this answer bad (scorer 'human')")
        self.good_button.add_class("llmlab-rate-good")
        self.bad_button.add_class("llmlab-rate-bad")
        self.good_button.on_click(lambda _b: self._on_rate(True, "binary"))
        self.bad_button.on_click(lambda _b: self._on_rate(False, "binary"))
        self.star_buttons = []
        for n in range(1, 6):
            b = W.Button(description=f"{n}★", tooltip=f"rate {n} of 5 (scorer 'human')",
                         layout=W.Layout(width="48px"))
            b.add_class(f"llmlab-rate-star-{n}")
            b.on_click(lambda _b, n=n: self._on_rate(n, "stars"))
            self.star_buttons.append(b)
        self.rating_comment = W.Textarea(placeholder="comment (optional, saved with the rating)",
                                         layout=W.Layout(width="420px", height="48px"))
        self.rating_comment.add_class("llmlab-rating-comment")
        self.rating_status = W.HTML()
        self.rating_status.add_class("llmlab-rating-status")
        rating = W.VBox([W.HBox([W.Label("rate:"), self.good_button, self.bad_button, *self.star_buttons]),
                         self.rating_comment, self.rating_status])
        self.compare_a = W.Dropdown(options=list(self.models) or [""], description="model A", layout=layout_dd)
        self.compare_b = W.Dropdown(options=list(self.models) or [""], description="model B", layout=layout_dd)
        for w in (self.compare_a, self.compare_b):
            w.style.description_width = "60px"
            w.observe(lambda _c: self._render_side_by_side(), names="value")
        self.side_by_side = W.HTML()
        self.side_by_side.add_class("llmlab-side-by-side")
        self.detail_images = W.HBox(layout=W.Layout(flex_flow="row wrap"))  # the prompt's images (thumbnails)
        # Step through calls from the details (buttons are focusable: Tab to them, Enter or Space to press).
        step = W.Layout(width="auto")
        self.prev_call_button = W.Button(description="◀ model", tooltip="the previous model's answer", layout=step)
        self.next_call_button = W.Button(description="model ▶", tooltip="the next model's answer", layout=step)
        self.prev_prompt_button = W.Button(description="▲ prompt", tooltip="the same model, previous prompt",
                                           layout=step)
        self.next_prompt_button = W.Button(description="▼ prompt", tooltip="the same model, next prompt", layout=step)
        for btn, (d_model, d_row) in ((self.prev_call_button, (-1, 0)), (self.next_call_button, (1, 0)),
                                      (self.prev_prompt_button, (0, -1)), (self.next_prompt_button, (0, 1))):
            btn.on_click(lambda _b, dm=d_model, dr=d_row: self.step_selection(dm, dr))
        stepper = W.HBox([self.prev_call_button, self.next_call_button, self.prev_prompt_button,
                          self.next_prompt_button])
        # The download is the stored run (ratings made here included), exactly what `llmlab export` writes;
        # a view of a bare frame downloads that frame.
        self.download = DownloadPanel(
            lambda: self.store.results(self.run_id) if self.store is not None and self.run_id else self.results,
            self.run_id or "results", run_ref=self.run_id)
        self.detail_box = W.VBox([stepper, self.detail_html, self.detail_images, rating, W.HTML("<b>side by side</b>"),
                                  W.HBox([self.compare_a, self.compare_b]), self.side_by_side],
                                 layout=W.Layout(display="none", border="1px solid #bbb", padding="6px",
                                                 margin="8px 0 0 0"))
        self.detail_box.add_class("llmlab-detail-box")
        # The details open beside the grid (a side panel), not a screen below it; on a narrow page they wrap under.
        self.grid.layout.flex = "1 1 560px"
        self.detail_box.layout.flex = "0 1 440px"
        self.detail_box.layout.margin = "0 0 0 8px"
        answers_tab = W.VBox([filters, pager, self.download, W.HBox([self.grid, self.detail_box],
                                                     layout=W.Layout(flex_flow="row wrap", align_items="flex-start"))])
        # charts
        self.charts_output = W.Output()
        self.charts_output.add_class("llmlab-charts")
        self.refresh_charts_button = W.Button(description="refresh charts")
        self.refresh_charts_button.on_click(lambda _b: self.render_charts())
        charts_tab = W.VBox([self.refresh_charts_button, self.charts_output])
        # routing
        self.tolerance = W.FloatSlider(value=ROUTING_DEFAULTS["tolerance"], min=0.0, max=0.3, step=0.005, readout_format=".3f",
                                       description="tolerance", continuous_update=False,
                                       tooltip="accept models within this quality (0..1) of the category's best")
        self.latency_limit = W.BoundedFloatText(value=0.0, min=0.0, max=1e9, step=100.0,
                                                description="p95 ≤ ms", tooltip="p95 latency limit; 0 = none")
        self.min_samples = W.BoundedIntText(value=ROUTING_DEFAULTS["min_n"], min=1, max=10**9, description="min n",
                                            tooltip="minimum scored calls per model and category")
        for w in (self.tolerance, self.latency_limit, self.min_samples):
            w.style.description_width = "80px"
            w.observe(lambda _c: self.update_routing(), names="value")
        self.routing_html = W.HTML()
        self.routing_html.add_class("llmlab-routing")
        self.projection_html = W.HTML()
        self.projection_html.add_class("llmlab-projection")
        default_name = f"llmlab-routing-{_css_ident(self.run_id)}.yaml" if self.run_id else "llmlab-routing.yaml"
        self.export_path = W.Text(value=default_name, description="config file", layout=W.Layout(width="420px"))
        self.export_button = W.Button(description="Export LiteLLM config", button_style="success",
                                      layout=W.Layout(width="auto"))
        self.export_button.add_class("llmlab-export")
        self.export_button.on_click(lambda _b: self._on_export())
        self.export_status = W.HTML()
        self.export_status.add_class("llmlab-export-status")
        routing_tab = W.VBox([W.HBox([self.tolerance, self.latency_limit, self.min_samples],
                                     layout=W.Layout(flex_flow="row wrap")),
                              self.routing_html, self.projection_html,
                              W.HBox([self.export_path, self.export_button]), self.export_status])
        self.pairs = PairsView(lambda: self.results, self.models)  # the "Pick two" tab (widgets/pairs.py)
        self.tabs = W.Tab(children=[answers_tab, charts_tab, routing_tab, self.pairs], titles=TAB_TITLES)
        self.tabs.observe(self._on_tab, names="selected_index")
        self.children = [self.header, self.tabs]

    # -- data -----------------------------------------------------------------------------------------
    def _ingest(self, records: Iterable[Mapping[str, Any]], *, replace: bool = False) -> None:
        with self._lock:
            if replace:
                self._records, self._index, self._order = RecordTable(), {}, []
            for r in records:
                self._put(dict(r))

    def _ingest_frame(self, frame: pd.DataFrame) -> None:
        """Replace the view's calls by a results frame's rows, kept as columns (:func:`index_frame`)."""
        table, index, order, info = index_frame(frame)
        with self._lock:
            self._records, self._index, self._order = table, index, order
            for pid, values in info.items():
                self._prompt_info.setdefault(pid, values)

    def _put(self, rec: dict[str, Any]) -> None:
        call_id = rec.get("call_id")
        if call_id is None:
            return
        pid = str(rec.get("prompt_id"))
        sample = int(_num(rec.get("sample_index")) or 0)
        rec["sample_index"] = sample
        info = self._prompt_info.get(pid)
        if info is None:
            info = {"category": rec.get("category"), "prompt": rec.get("prompt"), "reference": rec.get("reference"),
                    "scorer": rec.get("scorer")}
            self._prompt_info[pid] = info
        for k in ("category", "prompt", "reference", "scorer"):
            if rec.get(k) is None:
                rec[k] = info.get(k)
        model = rec.get("model")
        if model is not None and model not in self.models:
            log.debug("llmlab: model %r is not a column of this view; its calls are kept but not shown", model)
        key = (pid, sample)
        if key not in self._index:
            self._index[key] = {}
            self._order.append(key)
        old = self._index[key].get(model)
        if old is not None and old != call_id:
            self._records.pop(old, None)
        self._index[key][model] = call_id
        self._records[call_id] = rec

    @property
    def results(self) -> pd.DataFrame:
        """The view's calls as a results frame (:data:`RESULT_COLUMNS`; pending calls left out)."""
        with self._lock:
            frame = self._records.frame()
        if frame.empty:
            return frame_from_records([])
        return normalized_results(frame[frame["status"].astype(object) != "pending"])

    def record(self, call_id: str) -> dict[str, Any]:
        """A copy of one call's row (results columns). Raises KeyError for an unknown call."""
        with self._lock:
            if call_id not in self._records:
                raise KeyError(f"no call {call_id!r} in this view")
            return dict(self._records[call_id])

    def reload(self) -> CompareView:
        """Re-read the run from the store (ratings, scores and final rows included) and redraw."""
        if self.store is None or self.run_id is None:
            return self
        frame = self.store.results(self.run_id)
        meta = self.store.run(self.run_id)
        with self._lock:
            self.meta = meta
            self._ingest_frame(frame)
            self._routing_dirty = self._charts_dirty = True
        self._refresh_all()
        return self

    # -- live updates (the lab) -----------------------------------------------------------------------
    def _begin_live(self, the_plan: Any, run_id: str) -> None:
        """Show every planned call as pending (called on the loop thread once the run is planned)."""
        recs = []
        for c in the_plan.calls:
            p = c.prompt
            recs.append({"run_id": run_id, "call_id": c.call_id, "prompt_id": p.prompt_id,
                         "sample_index": c.sample_index, "model": c.spec.name, "status": "pending",
                         "category": p.category, "prompt": p.text, "reference": p.reference, "scorer": p.scorer})
        with self._lock:
            self._live = True
            self._prompt_info = {p.prompt_id: {"category": p.category, "prompt": p.text, "reference": p.reference,
                                               "scorer": p.scorer} for p in the_plan.prompt_set}
            self._ingest(recs, replace=True)
        self._refresh_all()

    def _queue_result(self, row: Mapping[str, Any]) -> None:
        """The runner's ``on_result`` (loop thread): queue the row; the updater merges it."""
        with self._lock:
            self._pending_rows.append(dict(row))

    def _flush_live(self, force: bool = False) -> int:
        """Merge queued rows and redraw, at most every ``live_refresh_s`` seconds. Returns rows merged."""
        now = time.monotonic()
        if not force and now - self._last_live < self.live_refresh_s:
            return 0
        with self._lock:
            rows, self._pending_rows = self._pending_rows, []
            if not rows:
                return 0
            self._last_live = now
            for row in rows:
                info = self._prompt_info.get(str(row.get("prompt_id")), {})
                rec = {**row, **{k: info.get(k) for k in ("category", "prompt", "reference", "scorer")}}
                rec["quality"] = rec.get("auto_score")  # the runner scored the row (on_result carries auto_score)
                self._put(rec)
            self._routing_dirty = self._charts_dirty = True
            selected = self.selected_call_id
        self._refresh_all(keep_page=True)
        if selected is not None and any(r.get("call_id") == selected for r in rows):
            self._render_detail()
        return len(rows)

    def _end_live(self) -> None:
        with self._lock:
            self._live = False

    # -- filtering and the grid -----------------------------------------------------------------------
    def _visible_models(self) -> list[tuple[int, str]]:
        sel = self.filter_model.value
        return [(i, m) for i, m in enumerate(self.models) if sel in (ALL, None) or m == sel]

    def _compute_rows(self) -> list[dict[str, Any]]:
        return grid_rows(self._order, self._index, self._records, self._prompt_info,
                         [m for _, m in self._visible_models()], category=self.filter_category.value,
                         status=self.filter_status.value, text=self.filter_text.value or "", sort=self.sort_by.value)

    @property
    def n_pages(self) -> int:
        return max(1, math.ceil(len(self.grid_rows) / self.page_size))

    @property
    def page_rows(self) -> list[dict[str, Any]]:
        """The rows of the current page (a slice of :attr:`grid_rows`)."""
        start = self.page * self.page_size
        return self.grid_rows[start:start + self.page_size]

    def goto_page(self, page: int) -> None:
        """Show page ``page`` (0-based, clamped)."""
        with self._lock:
            self.page = min(max(0, int(page)), self.n_pages - 1)
            self._render_page()

    def _prompt_html(self, row: Mapping[str, Any]) -> str:
        badges = _badge(str(row.get("category") or "default"), "info")
        if row.get("sample_index"):
            badges += _badge(f"sample {row['sample_index'] + 1}", "info")
        text = _truncate(str(row.get("prompt") or ""), _PROMPT_SNIPPET_CHARS)
        return (f'<div class="{_NO_MATH}" style="{_LH}"><div>{badges}</div><div class="llmlab-prompt-text" style="white-space:'
                f'pre-wrap;word-break:break-word;font-size:12px">{_esc(text)}</div></div>')

    def _render_page(self) -> None:
        with self._lock:
            self.page = min(max(0, self.page), self.n_pages - 1)
            rows = self.page_rows
            visible = self._visible_models()
            children: list[W.Widget] = [self._corner] + [self._headers[i] for i, _ in visible]
            cells_map: dict[tuple[int, int], str | None] = {}
            for r, row in enumerate(rows):
                slot = self._pool[r]
                slot["prompt"].value = self._prompt_html(row)
                children.append(slot["prompt"])
                for i, model in visible:
                    box, body, btn = slot["cells"][i]
                    rec = row["cells"].get(model)
                    body.value = _cell_html(rec)
                    cid = rec.get("call_id") if rec else None
                    cells_map[(r, i)] = cid
                    btn.disabled = rec is None or rec.get("status") == "pending"
                    btn.tooltip = f"details: {model} · prompt {row['prompt_id']}"
                    if cid is not None and cid == self.selected_call_id:
                        box.layout.border = "2px solid #1a73e8"
                    else:
                        box.layout.border = "1px solid #ddd"
                    children.append(box)
            self._page_cells = cells_map
            self.grid.layout.grid_template_columns = (
                f"minmax(160px, 1.1fr) repeat({max(1, len(visible))}, minmax(170px, 1fr))")
            self.grid.children = tuple(children)
            n = len(self.grid_rows)
            self.page_label.value = (f"page {self.page + 1} of {self.n_pages} · {n} row{'s' if n != 1 else ''}"
                                     f" of {len(self._order)}")
            self.prev_button.disabled = self.page <= 0
            self.next_button.disabled = self.page >= self.n_pages - 1

    def _apply(self, keep_page: bool = False) -> None:
        with self._lock:
            self.grid_rows = self._compute_rows()
            if not keep_page:
                self.page = 0
            self._render_page()

    def _refresh_filter_options(self) -> None:
        with self._lock:
            cats = sorted({str(i.get("category")) for i in self._prompt_info.values() if i.get("category") is not None})
            wanted = (ALL, *cats)
            if tuple(self.filter_category.options) != wanted:
                current = self.filter_category.value
                self._suspend += 1
                try:
                    self.filter_category.options = wanted
                    self.filter_category.value = current if current in wanted else ALL
                finally:
                    self._suspend -= 1

    def _render_header(self) -> None:
        with self._lock:
            overall, per_model = header_figures(self._records, self.models)
        n, n_ok, n_err, n_pending, n_rated = (overall[k] for k in ("n", "n_ok", "n_errors", "n_pending", "n_rated"))
        n_known = overall["n_costs"] - overall["n_cost_unknown"]
        cost = _fmt_usd(overall["cost_usd"]) if n_known or not overall["n_costs"] else "price unknown"
        if n_known and overall["n_cost_unknown"]:
            cost += " (some prices unknown)"
        meta = self.meta
        name = meta.get("name") or (f"run {self.run_id}" if self.run_id else "results")
        bits = [f'<b>{_esc(name)}</b>']
        if self.run_id:
            bits.append(f'run <code class="llmlab-run-id">{_esc(self.run_id)}</code>')
        if meta.get("status"):
            bits.append(f"status {_esc(meta.get('status'))}")
        if meta.get("created_at_utc") is not None:
            bits.append(f"created {_esc(str(meta.get('created_at_utc'))[:19])} UTC")
        counts = f"{n} calls: {n_ok} ok, {n_err} errors"
        if n_pending:
            counts += f", {n_pending} pending"
        bits.append(_esc(counts))
        bits.append(f"{_esc(n_rated)} rated")
        bits.append(f"cost {_esc(cost)}")
        sandbox = meta.get("sandbox")
        if sandbox is None:
            sandbox = any(str(m).startswith("sandbox/") for m in self.models)
        note = (' <span style="color:#a15c00">(sandbox: figures are simulated)</span>' if sandbox else "")
        self.header.value = f'<div class="{_NO_MATH}" style="font-size:13px;{_LH}">{" · ".join(bits)}{note}</div>'
        for i, m in enumerate(self.models):  # per-model column headers: quality, p50 latency, cost, errors
            self._headers[i].value = model_header_html(m, figures=per_model[m])

    def _refresh_all(self, keep_page: bool = False) -> None:
        self._refresh_filter_options()
        self._render_header()
        self._apply(keep_page=keep_page)
        if self.tabs.selected_index == 2:
            self.update_routing()
        if self.tabs.selected_index == 1 and not self._live:
            self.render_charts()

    def _on_filter(self, _change: Any) -> None:
        if self._suspend:
            return
        self._apply()

    def _on_tab(self, change: Any) -> None:
        if change["new"] == 1 and self._charts_dirty:
            self.render_charts()
        elif change["new"] == 2 and self._routing_dirty:
            self.update_routing()
        elif change["new"] == 3:  # the Pick two tab
            self.pairs.update()

    # -- details, side by side, ratings ---------------------------------------------------------------
    @property
    def visible_models(self) -> list[str]:
        """The model columns the grid shows (all, or the one :attr:`filter_model` selects)."""
        return [m for _, m in self._visible_models()]

    def _slot(self, row: int, model: str) -> tuple[W.VBox, W.HTML, W.Button]:
        if not 0 <= row < len(self.page_rows):
            raise IndexError(f"page {self.page + 1} has {len(self.page_rows)} rows")
        if model not in self.visible_models:
            raise KeyError(f"no column {model!r} in the grid (columns: {', '.join(self.visible_models)})")
        return self._pool[row]["cells"][self.models.index(model)]

    def cell_html(self, row: int, model: str) -> W.HTML:
        """The HTML widget of the current page's row ``row`` (0-based) and column ``model`` (answer and badges).

        Raises IndexError / KeyError when the page has no such row or the grid no such column.
        """
        return self._slot(row, model)[1]

    def cell_button(self, row: int, model: str) -> W.Button:
        """The *details* button of the current page's row ``row`` (0-based) and column ``model``.

        Raises IndexError / KeyError when the page has no such row or the grid no such column.
        """
        return self._slot(row, model)[2]

    def _on_open(self, r: int, i: int) -> None:
        cid = self._page_cells.get((r, i))
        if cid is not None:
            self.select(cid)

    def close(self) -> None:
        """Close the view: all of its widgets (the off-screen pool, layouts and styles included) leave the kernel's
        widget registry and the page, and its calls are dropped, so that a replaced view's memory is freed
        (:func:`llmlab.widgets.lifetime.close_tree`). Closing twice is harmless."""
        with self._lock:  # the calls go first, so that the walk for widgets does not read through them
            self._records, self._index, self._order, self._prompt_info = RecordTable(), {}, [], {}
            self.grid_rows = GridRows([], {}, {}, {}, [])
            close_tree(self)

    def select(self, call_id: str) -> None:
        """Show one call's full answer, prompt, reference, scores and metadata, and its prompt side by side.

        Raises KeyError for a call not in this view.
        """
        with self._lock:
            if call_id not in self._records:
                raise KeyError(f"no call {call_id!r} in this view")
            rec = self._records[call_id]
            self.selected_call_id = call_id
            key = (str(rec.get("prompt_id")), int(rec.get("sample_index") or 0))
            others = [m for m in self._index.get(key, {}) if m != rec.get("model") and m in self.models]
            self._suspend += 1
            try:
                if rec.get("model") in self.compare_a.options:
                    self.compare_a.value = rec.get("model")
                if others and others[0] in self.compare_b.options:
                    self.compare_b.value = others[0]
            finally:
                self._suspend -= 1
            self.rating_status.value = ""
            self.rating_comment.value = rec.get("human_comment") or ""
            self._render_detail()
            self._render_side_by_side()
            self.detail_box.layout.display = None
            self._render_page()

    def step_selection(self, d_model: int = 0, d_row: int = 0) -> str | None:
        """Select the call ``d_model`` columns and ``d_row`` rows away from the selected one, across pages, in the
        grid as filtered and sorted (the model order wraps to the next or previous row; cells with no call are
        skipped). The page follows the selection. Returns the new call id (None when nothing is selected or the
        step leaves the grid: the selection then stays).
        """
        with self._lock:
            models = self.visible_models
            rows = self.grid_rows
            where = rows.locate(self.selected_call_id, models)
            if where is None or not models:
                return None
            r, c = where
            while True:
                if d_model:
                    flat = r * len(models) + c + d_model
                    r, c = divmod(flat, len(models))
                else:
                    r += d_row
                if not 0 <= r < len(rows):
                    return None
                cid = rows.call_id(r, models[c])
                if cid is not None and self._records.value(cid, "status") != "pending":
                    break
            self.page = r // self.page_size
            call_id = str(cid)
        self.select(call_id)
        return call_id

    def _render_detail(self) -> None:
        with self._lock:
            cid = self.selected_call_id
            rec = dict(self._records.get(cid) or {}) if cid else None
        if not rec:
            self.detail_html.value = ""
            return
        status = rec.get("status")
        head = [f"<b>{_esc(rec.get('model'))}</b>", f'call <code class="llmlab-call-id">{_esc(cid)}</code>',
                f"category {_esc(rec.get('category'))}",
                _badge(str(status), "ok" if status == "ok" else ("error" if status == "error" else "pending"))]
        parts = [f'<div class="{_NO_MATH}" style="{_LH}"><div style="margin-bottom:4px">{" · ".join(head)}</div>',
                 "<div><b>prompt</b></div>", _pre(rec.get("prompt"), "llmlab-full-prompt", "12em")]
        if rec.get("reference") is not None:
            parts += ["<div><b>reference</b></div>", _pre(rec.get("reference"), "llmlab-full-reference", "8em")]
        if status == "error":
            http_status = _num(rec.get("http_status"))
            parts += ["<div><b>error</b> " + _esc(rec.get("error_type") or "error")
                      + (f" (HTTP {int(http_status)})" if http_status is not None else "") + "</div>",
                      _pre(rec.get("error_message") or "", "llmlab-full-error", "10em")]
        else:
            parts += ["<div><b>answer</b></div>", _pre(rec.get("response") or "", "llmlab-full-answer")]
        human = _num(rec.get("human_score"))
        facts = [
            ("latency", _fmt_ms(rec.get("latency_ms"))), ("time to first token", _fmt_ms(rec.get("ttft_ms"))),
            ("tokens in / out", f"{_fmt_int(rec.get('input_tokens'))} / {_fmt_int(rec.get('output_tokens'))}"),
            ("cost", _fmt_usd(rec.get("cost_usd"))), ("cached", "yes" if rec.get("cached") else "no"),
            ("attempts", _fmt_int(rec.get("attempts"))), ("answered by", rec.get("answered_by") or "–"),
            ("quality", _fmt_score(rec.get("quality"))),
            (f"auto score ({rec.get('scorer')})" if rec.get("scorer") else "auto score", _fmt_score(rec.get("auto_score"))),
            ("judge score", _fmt_score(rec.get("judge_score"))),
            ("human rating", "–" if human is None else f"{human:.2f}"),
            ("human comment", rec.get("human_comment") or "–"),
        ]
        per_row = 3
        rows = []
        for start in range(0, len(facts), per_row):
            tds = "".join(f'<td style="padding:1px 6px 1px 0;color:#555">{_esc(k)}</td>'
                          f'<td style="padding:1px 18px 1px 0">{_esc(v)}</td>' for k, v in facts[start:start + per_row])
            rows.append(f"<tr>{tds}</tr>")
        parts.append(f'<table class="llmlab-facts" style="font-size:12px;{_LH}">{"".join(rows)}</table></div>')
        self.detail_html.value = "".join(parts)
        self.detail_images.children = tuple(thumbnails(rec))

    def _render_side_by_side(self) -> None:
        if self._suspend:
            return
        with self._lock:
            cid = self.selected_call_id
            rec = self._records.get(cid) if cid else None
            if rec is None:
                self.side_by_side.value = ""
                return
            key = (str(rec.get("prompt_id")), int(rec.get("sample_index") or 0))
            by_model = self._index.get(key, {})
            cols = []
            for model in (self.compare_a.value, self.compare_b.value):
                other = self._records.get(by_model.get(model, ""))
                if other is None:
                    body = '<div style="color:#888">no answer from this model for this prompt</div>'
                elif other.get("status") == "error":
                    body = _pre(f"{other.get('error_type') or 'error'}: {other.get('error_message') or ''}",
                                "llmlab-sbs-error")
                else:
                    body = _pre(other.get("response") or "", "llmlab-sbs-answer")
                badges = _cell_badges(other) if other is not None else ""
                cols.append(f'<div style="flex:1;min-width:0"><div><b>{_esc(model)}</b></div>'
                            f'<div>{badges}</div>{body}</div>')
        self.side_by_side.value = (f'<div class="{_NO_MATH}" style="display:flex;gap:10px;{_LH}">'
                                   f'{"".join(cols)}</div>')

    def rate(self, call_id: str | None = None, rating: float | bool = True, *, scale: str = "binary",
             comment: str | None = None) -> float:
        """Record a human rating of one answer (default: the selected one) as the scorer ``human``.

        Args:
            call_id: the call rated (default :attr:`selected_call_id`).
            rating: ``True``/``False`` with ``scale="binary"`` (good / bad), 1 to 5 with ``scale="stars"``.
            comment: free text saved with the rating.

        Returns the normalized score in 0..1 (stars: (n − 1) / 4). The view's row then shows it, and its
        ``quality`` becomes that score (as :meth:`Store.results` does).

        Raises:
            ValueError: no call selected, a pending call, a rating out of range, or a call the store does not hold
                (a call of a live run is retried for ``rate_wait_s`` seconds while its row is being written).
            StoreError: the view has no store, or the store cannot be written.
        """
        call_id = call_id or self.selected_call_id
        if call_id is None:
            raise ValueError("no answer selected: pass a call_id or click an answer's 'details' first")
        with self._lock:
            rec = self._records.get(call_id)
        if rec is None:
            raise ValueError(f"no call {call_id!r} in this view")
        if rec.get("status") == "pending":
            raise ValueError("this call has not finished yet")
        if self.store is None:
            raise StoreError("this view has no store to save ratings to (open it with llmlab.compare(run_id))")
        deadline = time.monotonic() + self.rate_wait_s
        while True:
            try:
                score = self.store.rate(call_id, rating, scale=scale, comment=comment)
                break
            except CallNotFoundError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)  # the run's batch writer has not flushed this row yet
        with self._lock:
            rec = self._records.get(call_id)
            if rec is not None:
                rec["human_score"] = score
                rec["human_comment"] = comment
                rec["quality"] = score
            self._routing_dirty = self._charts_dirty = True
        self._render_header()
        self._apply(keep_page=True)
        if self.selected_call_id == call_id:
            self._render_detail()
            self._render_side_by_side()
        if self.tabs.selected_index == 2:
            self.update_routing()
        return score

    def _on_rate(self, rating: float | bool, scale: str) -> None:
        comment = self.rating_comment.value.strip() or None
        try:
            score = self.rate(None, rating, scale=scale, comment=comment)
        except (LLMLabError, ValueError, KeyError) as exc:
            self.rating_status.value = f'<span style="color:#a50e0e">not saved: {_esc(exc)}</span>'
            return
        label = ("good" if rating else "bad") if scale == "binary" else f"{int(rating)} of 5"
        self.rating_status.value = (f'<span class="llmlab-rated" style="color:#137333">saved: {_esc(label)} '
                                    f"(human score {score:.2f})</span>")

def compare(run: Any = None, *, other: Any = None, store: Any = None, page_size: int = 10) -> Any:
    """Open the comparison view of a run (display it as a cell's last expression).

    Args:
        run: a :class:`llmlab.RunResult`, a run id / unique id prefix / run name, ``None`` or ``"last"`` (the newest
            run), or a results frame (:meth:`Store.results` columns; ratings then need ``store``).
        other: a second run (same forms, not a frame): the compare-two-runs view instead
            (:class:`llmlab.widgets.run_diff.RunDiffView`: per model matched calls, quality with the paired
            difference and its interval, latency, cost, errors, changed answers).
        store: the :class:`llmlab.Store` (default: the run's store, else ``LLMLAB_DB`` / the default path).
        page_size: prompt rows per page of the answers grid.

    Returns a :class:`CompareView` (a ``RunDiffView`` with ``other``). Raises StoreError (RunNotFoundError when
    nothing matches).
    """
    if other is not None:
        from llmlab.widgets.run_diff import compare_two_runs

        return compare_two_runs(run, other, store=store)
    if isinstance(run, pd.DataFrame):
        return CompareView.from_frame(run, store=store, page_size=page_size)
    if hasattr(run, "run_id") and hasattr(run, "store"):
        return CompareView.from_store(run.run_id, store or run.store, page_size=page_size)
    return CompareView.from_store(run, store, page_size=page_size)


