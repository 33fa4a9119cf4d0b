"""Interactive model comparison in Jupyter (ipywidgets 8): ``llmlab.lab()`` and ``llmlab.compare(run)``.

``compare(run)`` returns a :class:`CompareView`, a widget with three tabs:

- **Answers**: a grid of prompts (rows: one per prompt and sample) × models (columns). Each cell shows the
  answer's first characters, its latency (ms), cost (USD), and badges for cached, error, quality and human
  ratings. Filters (category, model, status, text) and a sort (latency or cost, per row the mean over the models
  shown) narrow the grid; a cell's *details* button shows the full answer, the prompt, the reference, the scores
  and the call's metadata, with rating buttons (good / bad, or 1 to 5 stars, with a comment) saved through
  :meth:`llmlab.store.Store.rate` as the scorer ``human`` (the store's ``quality`` column then takes the latest
  human rating, so the charts and the routing table use it like any other score), and two models' answers to the
  same prompt side by side.
- **Charts**: the comparison charts of :mod:`llmlab.plots` (quality vs cost with the routing projection, quality
  per category, latency, cost, errors), rendered when the tab is opened. Figures are those of the recorded calls;
  runs on the sandbox are simulated (the header says so).
- **Routing**: a quality-tolerance slider, a p95 latency limit and a minimum number of scored calls; the routing
  table (:func:`llmlab.routing.routing_table`) and its in-sample projection (:func:`llmlab.routing.project`)
  update live; *Export* writes the LiteLLM config (:func:`llmlab.routing.litellm_config.write_litellm_config`) and shows the path.

``lab()`` returns a :class:`Lab`: pick models (sandbox models, ``@aliases``, any LiteLLM model string), a prompt
set (bundled sets, a DataFrame of the notebook's namespace, a file path) and parameters; *Run* starts the run on
llmlab's background event loop and returns at once (the kernel stays responsive); a progress bar shows calls done,
errors, cost so far and the ETA; *Cancel* stops it, keeping what completed; the results view below fills in live
and re-opens any past run of the store.

Python-side API (what tests and scripts drive)::

    view = llmlab.compare(run)                  # a RunResult, run id / name / prefix, "last", or a results frame
    view.grid_rows                               # the rows shown (all pages), see CompareView.grid_rows
    view.filter_category.value = "arithmetic"    # also filter_model, filter_status, filter_text, sort_by
    view.select(call_id); view.detail_html.value # the full answer, prompt, reference and scores (escaped)
    view.rate(call_id, True); view.good_button.click(); view.star_buttons[3].click()   # saved as 'human'
    view.tolerance.value = 0.05; view.routing_table; view.projection
    view.export_path.value = "routing.yaml"; view.export_button.click(); view.exported_path
    lab = llmlab.lab(); lab.run_button.click(); lab.wait(); lab.view   # or lab.start() / lab.cancel()

Safety (DESIGN.md, decision 6): model answers, prompts, references, model ids, comments and error text are
untrusted. They reach the browser only as text: escaped with :func:`html.escape` inside the HTML widgets' own
markup, or as the text of buttons, dropdown options, tooltips and Output streams (which the frontend sets as
text). An answer holding ``<script>``, ``<img onerror=...>`` or a ``javascript:`` link shows those characters and
runs nothing.

Threads (DESIGN.md, decision 2): a lab run executes on llmlab's background loop; rows arrive through the runner's
``on_result`` callback on that loop's thread, are queued, and a periodic updater on the same loop merges them and
changes widget traits at most every ``live_refresh_s`` seconds. Nothing here prints or displays from a worker
thread (charts go into an ``Output`` widget by setting its ``outputs`` trait).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import html
import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import ipywidgets as W
import pandas as pd

from llmlab.errors import LLMLabError, RoutingError, StoreError
from llmlab.display import fmt_usd
from llmlab.store import CallNotFoundError

log = logging.getLogger(__name__)

ALL = "(all)"

#: Columns of the frames this module builds (:attr:`CompareView.results`): the store's results columns.
RESULT_COLUMNS: tuple[str, ...] = (
    "run_id", "call_id", "prompt_id", "sample_index", "category", "model", "answered_by", "status", "error_type",
    "http_status", "error_message", "attempts", "fallbacks_taken", "retry_wait_ms", "latency_ms", "ttft_ms",
    "input_tokens", "output_tokens", "cost_usd", "cached", "response", "finish_reason", "created_at_utc", "prompt",
    "reference", "scorer", "cache_key", "source_call_id", "attempt_log", "quality", "human_score", "human_comment",
    "judge_score", "auto_score",
)
_NUMERIC = ("sample_index", "http_status", "attempts", "fallbacks_taken", "retry_wait_ms", "latency_ms", "ttft_ms",
            "input_tokens", "output_tokens", "cost_usd", "quality", "human_score", "judge_score", "auto_score")

STATUS_FILTERS: tuple[str, ...] = (ALL, "ok", "error", "cached", "rated", "unrated", "pending")
SORTS: tuple[tuple[str, str], ...] = (
    ("prompt order", "order"),
    ("latency, slowest first", "latency_desc"),
    ("latency, fastest first", "latency_asc"),
    ("cost, highest first", "cost_desc"),
    ("cost, lowest first", "cost_asc"),
)

_SNIPPET_CHARS = 280
_PROMPT_SNIPPET_CHARS = 240
_NO_MATH = "tex2jax_ignore mathjax_ignore"  # keep MathJax from typesetting "$...$" in answers
_LH = "line-height:1.4"  # ipywidgets' HTML widget inherits a 28 px line height

_BADGE_COLORS = {
    "ok": ("#e6f4ea", "#137333"),
    "error": ("#fce8e6", "#a50e0e"),
    "cached": ("#e8f0fe", "#174ea6"),
    "human": ("#fef7e0", "#7a4f00"),
    "quality": ("#f3e8fd", "#681da8"),
    "pending": ("#f1f3f4", "#5f6368"),
    "info": ("#f1f3f4", "#3c4043"),
}


# ---------------------------------------------------------------------------------------------------- helpers
def _esc(value: Any) -> str:
    """``value`` as HTML-escaped text ('' for None)."""
    return "" if value is None else html.escape(str(value), quote=True)


def _clean(value: Any) -> Any:
    """NaN/NA → None; numpy scalars → Python scalars."""
    if value is None:
        return None
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if hasattr(value, "item") and not isinstance(value, (str, bytes)) and getattr(value, "ndim", 1) == 0:
        try:
            value = value.item()
        except (ValueError, TypeError):
            pass
        if isinstance(value, float) and math.isnan(value):
            return None
    try:
        if value is pd.NA or value is pd.NaT:
            return None
    except Exception:  # noqa: BLE001
        pass
    return value


def _num(value: Any) -> float | None:
    value = _clean(value)
    if value is None or isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _fmt_ms(value: Any) -> str:
    v = _num(value)
    if v is None:
        return "–"
    return f"{v:,.0f} ms" if v >= 10 else f"{v:.1f} ms"


_fmt_usd = fmt_usd  # one dollar format for the magic's cards and the widgets


def _truncate(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n].rstrip() + " …"


def _badge(text: str, kind: str = "info", *, title: str | None = None) -> str:
    bg, fg = _BADGE_COLORS.get(kind, _BADGE_COLORS["info"])
    tip = f' title="{_esc(title)}"' if title else ""
    return (f'<span class="llmlab-badge llmlab-badge-{kind}"{tip} style="background:{bg};color:{fg};'
            f'border-radius:3px;padding:0 4px;margin:0 3px 2px 0;font-size:11px;white-space:nowrap;'
            f'display:inline-block">{_esc(text)}</span>')


def _css_ident(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", str(text))


def _pre(text: Any, cls: str = "", max_height: str = "22em") -> str:
    return (f'<pre class="llmlab-text {cls}" style="white-space:pre-wrap;word-break:break-word;margin:2px 0 8px 0;'
            f'padding:6px;background:var(--jp-layout-color2,#f7f7f7);max-height:{max_height};overflow:auto;'
            f'font-size:12px">{_esc(text)}</pre>')


def _is_ok(rec: Mapping[str, Any]) -> bool:
    return rec.get("status") == "ok"


def _cell_badges(rec: Mapping[str, Any]) -> str:
    parts = []
    status = rec.get("status")
    if status == "pending":
        return _badge("pending", "pending")
    if status == "error":
        etype = rec.get("error_type") or "error"
        http_status = _num(rec.get("http_status"))
        label = f"error: {etype}" + (f" ({int(http_status)})" if http_status is not None else "")
        parts.append(_badge(label, "error"))
    parts.append(_badge(_fmt_ms(rec.get("latency_ms")), "info", title="latency (send to last byte)"))
    parts.append(_badge(_fmt_usd(rec.get("cost_usd")), "info", title="cost of this call (USD)"))
    if rec.get("cached"):
        parts.append(_badge("cached", "cached", title="answered from llmlab's cache (no provider call)"))
    human = _num(rec.get("human_score"))
    if human is not None:
        parts.append(_badge(f"human {human:.2f}", "human", title="latest human rating (0..1)"))
    q = _num(rec.get("quality"))
    if q is not None and human is None:
        parts.append(_badge(f"q {q:.2f}", "quality", title="quality score (0..1)"))
    return "".join(parts)


def _cell_html(rec: Mapping[str, Any] | None) -> str:
    if rec is None:
        return f'<div class="llmlab-cell-body {_NO_MATH}" style="color:#888;font-size:12px;{_LH}">no call</div>'
    status = rec.get("status")
    if status == "pending":
        text, style = "…", "color:#888"
    elif status == "error":
        msg = rec.get("error_message") or rec.get("error_type") or "error"
        text, style = _truncate(str(msg), _SNIPPET_CHARS), "color:#a50e0e"
    else:
        text, style = _truncate(str(rec.get("response") or ""), _SNIPPET_CHARS), ""
    return (f'<div class="llmlab-cell-body {_NO_MATH}" style="{_LH}">'
            f'<div class="llmlab-answer" style="white-space:pre-wrap;word-break:break-word;font-size:12px;'
            f'font-family:var(--jp-code-font-family,monospace);max-height:11em;overflow:auto;{style}">{_esc(text)}</div>'
            f'<div style="margin-top:3px;line-height:1.6">{_cell_badges(rec)}</div></div>')


def _figure_output(fig: Any, title: str) -> dict[str, Any]:
    """An nbformat display_data output holding a plotly figure (plotly's own Jupyter mimetype)."""
    import plotly.io as pio

    fig_json = json.loads(pio.to_json(fig, validate=False, remove_uids=False))
    fig_json["config"] = {"displaylogo": False}
    return {"output_type": "display_data", "metadata": {},
            "data": {"application/vnd.plotly.v1+json": fig_json, "text/plain": f"<plotly figure: {title}>"}}


def _text_output(text: str) -> dict[str, Any]:
    """An nbformat stream output: shown as plain text by the frontend."""
    return {"output_type": "stream", "name": "stdout", "text": text + "\n"}


def records_from_frame(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of a results frame as dicts with Python values (missing values as None)."""
    if frame is None or len(frame) == 0:
        return []
    clean = frame.astype(object).where(frame.notna(), None)
    return [{k: _clean(v) for k, v in row.items()} for row in clean.to_dict("records")]


def frame_from_records(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """A results frame (:data:`RESULT_COLUMNS` first, numeric columns as floats) from row dicts."""
    rows = [dict(r) for r in records]
    extra = sorted({k for r in rows for k in r} - set(RESULT_COLUMNS))
    frame = pd.DataFrame(rows, columns=[*RESULT_COLUMNS, *extra])
    for c in _NUMERIC:
        frame[c] = pd.to_numeric(frame[c], errors="coerce").astype(float)
    frame["cached"] = frame["cached"].map(lambda v: bool(v) if v is not None and v == v else False).astype(bool)
    return frame


# ------------------------------------------------------------------------------------------------ the view
class CompareView(W.VBox):
    """The comparison view of one run: answers grid, charts and routing tabs (see the module docstring).

    Build it with :func:`compare` (or :meth:`from_store` / :meth:`from_frame`); the lab builds one per run.

    Attributes (widgets, all public so tests and scripts can drive them):
        filter_category, filter_model, filter_status (Dropdowns), filter_text (Text), sort_by (Dropdown),
        prev_button, next_button, page_label; grid (GridBox); detail_html (HTML), good_button, bad_button,
        star_buttons (1★..5★), rating_comment (Textarea), rating_status (HTML); compare_a, compare_b (Dropdowns),
        side_by_side (HTML); tabs (Tab: Answers, Charts, Routing); charts_output (Output), refresh_charts_button;
        tolerance (FloatSlider, quality 0..1), latency_limit (BoundedFloatText, p95 in ms, 0 = none),
        min_samples (BoundedIntText, scored calls), routing_html, projection_html (HTML); export_path (Text),
        export_button, export_status (HTML); header (HTML).

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

    def __init__(self, records: Iterable[Mapping[str, Any]] = (), *, models: Sequence[str] | None = None,
                 run_id: str | None = None, store: Any = None, meta: Mapping[str, Any] | None = None,
                 page_size: int = 10, live_refresh_s: float = 0.5, rate_wait_s: float = 3.0) -> None:
        super().__init__()
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
        self._records: dict[str, dict[str, Any]] = {}
        self._index: dict[tuple[str, int], dict[str, str]] = {}
        self._order: list[tuple[str, int]] = []
        self._pending_rows: list[dict[str, Any]] = []
        self._prompt_info: dict[str, dict[str, Any]] = {}
        self._last_live = 0.0
        self._live = False
        self._suspend = 0
        self.page = 0
        self.grid_rows: list[dict[str, Any]] = []
        self.selected_call_id: str | None = None
        self._routing_table: Any = None
        self.routing_error: str | None = None
        self.projection: dict[str, Any] | None = None
        self._routing_dirty = True
        self._charts_dirty = True
        self.chart_figures: dict[str, Any] = {}
        self.exported_path: Path | None = None
        records = [dict(r) for r in records]
        if models is None:
            models = list(dict.fromkeys(str(r.get("model")) for r in records if r.get("model") is not None))
        self.models: list[str] = list(dict.fromkeys(models))
        self._build()
        self._ingest(records, replace=True)
        self._refresh_all()

    # -- construction ---------------------------------------------------------------------------------
    @classmethod
    def from_store(cls, run: str | None = None, store: Any = None, **kwargs: Any) -> CompareView:
        """The view of a recorded run (id, unique id prefix, name, or ``None``/``"last"``) as stored, ratings
        included. Raises StoreError (RunNotFoundError when nothing matches)."""
        from llmlab.store import Store

        store = store or Store()
        run_id = store.resolve_run(run)
        meta = store.run(run_id)
        records = records_from_frame(store.results(run_id))
        models = list(meta.get("models") or [])
        for r in records:
            if r.get("model") not in models:
                models.append(r["model"])
        return cls(records, models=models, run_id=run_id, store=store, meta=meta, **kwargs)

    @classmethod
    def from_frame(cls, results: pd.DataFrame, *, store: Any = None, **kwargs: Any) -> CompareView:
        """A view of a results frame (:meth:`Store.results` columns). Ratings need ``store``."""
        records = records_from_frame(results)
        run_ids = {r.get("run_id") for r in records} - {None}
        run_id = run_ids.pop() if len(run_ids) == 1 else None
        return cls(records, run_id=run_id, store=store, **kwargs)

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
                btn = W.Button(description="details", layout=W.Layout(width="auto", height="24px"))
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
        self.detail_box = W.VBox([self.detail_html, rating, W.HTML("<b>side by side</b>"),
                                  W.HBox([self.compare_a, self.compare_b]), self.side_by_side],
                                 layout=W.Layout(display="none", border="1px solid #bbb", padding="6px",
                                                 margin="8px 0 0 0"))
        self.detail_box.add_class("llmlab-detail-box")
        answers_tab = W.VBox([filters, pager, self.grid, self.detail_box])
        # charts
        self.charts_output = W.Output()
        self.charts_output.add_class("llmlab-charts")
        self.refresh_charts_button = W.Button(description="refresh charts")
        self.refresh_charts_button.on_click(lambda _b: self.render_charts())
        charts_tab = W.VBox([self.refresh_charts_button, self.charts_output])
        # routing
        self.tolerance = W.FloatSlider(value=0.02, min=0.0, max=0.3, step=0.005, readout_format=".3f",
                                       description="tolerance", continuous_update=False,
                                       tooltip="accept models within this quality (0..1) of the category's best")
        self.latency_limit = W.BoundedFloatText(value=0.0, min=0.0, max=1e9, step=100.0,
                                                description="p95 ≤ ms", tooltip="p95 latency limit; 0 = none")
        self.min_samples = W.BoundedIntText(value=5, min=1, max=10**9, description="min n",
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
        self.tabs = W.Tab(children=[answers_tab, charts_tab, routing_tab], titles=("Answers", "Charts", "Routing"))
        self.tabs.observe(self._on_tab, names="selected_index")
        self.children = [self.header, self.tabs]

    # -- data -----------------------------------------------------------------------------------------
    def _ingest(self, records: Iterable[Mapping[str, Any]], *, replace: bool = False) -> None:
        with self._lock:
            if replace:
                self._records, self._index, self._order = {}, {}, []
            for r in records:
                self._put(dict(r))

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
            rows = [dict(r) for r in self._records.values() if r.get("status") != "pending"]
        return frame_from_records(rows)

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
        records = records_from_frame(frame)
        with self._lock:
            self.meta = meta
            self._ingest(records, replace=True)
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

    @staticmethod
    def _status_match(rec: Mapping[str, Any], status: str) -> bool:
        if status in (ALL, None):
            return True
        if status == "cached":
            return bool(rec.get("cached"))
        if status == "rated":
            return _num(rec.get("human_score")) is not None
        if status == "unrated":
            return _num(rec.get("human_score")) is None and rec.get("status") not in ("pending",)
        return rec.get("status") == status

    def _compute_rows(self) -> list[dict[str, Any]]:
        visible = [m for _, m in self._visible_models()]
        cat = self.filter_category.value
        status = self.filter_status.value
        needle = (self.filter_text.value or "").strip().lower()
        rows = []
        for pos, key in enumerate(self._order):
            by_model = self._index.get(key, {})
            cells = {m: dict(self._records[by_model[m]]) for m in visible if by_model.get(m) in self._records}
            if not cells:
                continue
            info = self._prompt_info.get(key[0], {})
            if cat not in (ALL, None) and info.get("category") != cat:
                continue
            if not any(self._status_match(rec, status) for rec in cells.values()):
                continue
            if needle:
                hay = [str(info.get("prompt") or ""), str(info.get("reference") or ""), str(info.get("category") or "")]
                for rec in cells.values():
                    hay += [str(rec.get("response") or ""), str(rec.get("error_message") or ""),
                            str(rec.get("error_type") or "")]
                if needle not in "\n".join(hay).lower():
                    continue
            rows.append({"prompt_id": key[0], "sample_index": key[1], "category": info.get("category"),
                         "prompt": info.get("prompt"), "reference": info.get("reference"), "cells": cells,
                         "_pos": pos})
        sort = self.sort_by.value
        if sort and sort != "order":
            col = "latency_ms" if sort.startswith("latency") else "cost_usd"
            desc = sort.endswith("desc")

            def key_of(row: dict[str, Any]) -> tuple[int, float, int]:
                vals = [_num(rec.get(col)) for rec in row["cells"].values()]
                vals = [v for v in vals if v is not None]
                if not vals:
                    return (1, 0.0, row["_pos"])
                mean = sum(vals) / len(vals)
                return (0, -mean if desc else mean, row["_pos"])

            rows.sort(key=key_of)
        for row in rows:
            row.pop("_pos", None)
        return rows

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
            recs = [r for r in self._records.values()]
        n = len(recs)
        n_ok = sum(1 for r in recs if r.get("status") == "ok")
        n_err = sum(1 for r in recs if r.get("status") == "error")
        n_pending = sum(1 for r in recs if r.get("status") == "pending")
        n_rated = sum(1 for r in recs if _num(r.get("human_score")) is not None)
        costs = [_num(r.get("cost_usd")) for r in recs if r.get("status") == "ok" and not r.get("cached")]
        known = [c for c in costs if c is not None]
        cost = _fmt_usd(sum(known)) if known or not costs else "price unknown"
        if known and len(known) < len(costs):
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

    # -- charts ---------------------------------------------------------------------------------------
    def render_charts(self) -> dict[str, Any]:
        """Build the comparison charts and put them in :attr:`charts_output`; returns ``{title: Figure}``.

        A chart that cannot be built (for example nothing scored yet) is replaced by a line of text saying why.
        """
        results = self.results
        figs: dict[str, Any] = {}
        outputs: list[dict[str, Any]] = []
        if len(results) == 0:
            outputs.append(_text_output("no results yet"))
        else:
            from llmlab import plots
            from llmlab.analysis import summarize

            projection = self.projection
            if projection is None and self._routing_dirty:
                self.update_routing()
                projection = self.projection
            builders = [
                ("quality vs cost", lambda: plots.quality_vs_cost(summarize(results, by=("model",)),
                                                                  routing_projection=projection)),
                ("quality by category", lambda: plots.quality_heatmap(summarize(results, by=("model", "category")))),
                ("latency", lambda: plots.latency_distribution(results)),
                ("cost", lambda: plots.cost_chart(summarize(results, by=("model", "category")))),
                ("errors", lambda: plots.error_chart(results)),
            ]
            for title, build in builders:
                try:
                    fig = build()
                except Exception as exc:  # noqa: BLE001 - one chart failing must not hide the others
                    log.info("llmlab: chart %r unavailable: %s", title, exc)
                    outputs.append(_text_output(f"{title}: unavailable ({type(exc).__name__}: {exc})"))
                    continue
                figs[title] = fig
                outputs.append(_figure_output(fig, title))
            if self.meta.get("sandbox") or any(str(m).startswith("sandbox/") for m in self.models):
                outputs.append(_text_output("sandbox models: these figures are simulated, not measured."))
        self.chart_figures = figs
        self.charts_output.outputs = tuple(outputs)
        self._charts_dirty = False
        return figs

    # -- routing --------------------------------------------------------------------------------------
    @property
    def routing_table(self) -> pd.DataFrame | None:
        """The routing table for the current settings (:func:`llmlab.routing.routing_table` columns), or None
        when none can be derived (:attr:`routing_error` says why)."""
        if self._routing_dirty:
            self.update_routing()
        return self._routing_table

    def routing_kwargs(self) -> dict[str, Any]:
        """The :func:`llmlab.routing.routing_table` arguments the routing tab's settings give."""
        limit = float(self.latency_limit.value or 0)
        return {"tolerance": float(self.tolerance.value), "max_latency_p95_ms": limit if limit > 0 else None,
                "min_n": int(self.min_samples.value)}

    def update_routing(self) -> pd.DataFrame | None:
        """Recompute the routing table and its projection from the view's results; redraw the routing tab."""
        from llmlab.routing import project, routing_table

        results = self.results
        try:
            if len(results) == 0:
                raise RoutingError("no results yet")
            table = routing_table(results, **self.routing_kwargs())
            proj = project(table, results)
        except (LLMLabError, ValueError, KeyError) as exc:
            self._routing_table, self.projection, self.routing_error = None, None, str(exc)
            self.routing_html.value = f'<div style="color:#a50e0e">no routing table: {_esc(exc)}</div>'
            self.projection_html.value = ""
            self.export_button.disabled = True
        else:
            self._routing_table, self.projection, self.routing_error = table, proj, None
            self.routing_html.value = _routing_table_html(table)
            self.projection_html.value = _projection_html(proj)
            self.export_button.disabled = False
        self._routing_dirty = False
        return self._routing_table

    def export(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the current routing table as a LiteLLM config (:func:`llmlab.routing.litellm_config.write_litellm_config`) to
        ``path`` (default :attr:`export_path`'s value, relative to the working directory); returns the absolute
        path. Raises RoutingError when there is no table (or a routed model has no price)."""
        from llmlab.routing.litellm_config import write_litellm_config

        table = self.routing_table
        if table is None:
            raise RoutingError(self.routing_error or "no routing table")
        target = Path(path if path is not None else self.export_path.value).expanduser()
        written = Path(write_litellm_config(table, target, run_id=self.run_id)).resolve()
        self.exported_path = written
        self.export_status.value = (f'<span style="color:#137333">written: <code class="llmlab-export-path">'
                                    f"{_esc(written)}</code></span>")
        return written

    def _on_export(self) -> None:
        try:
            self.export()
        except (LLMLabError, OSError, ValueError) as exc:
            self.export_status.value = f'<span style="color:#a50e0e">not written: {_esc(exc)}</span>'


def _fmt_int(value: Any) -> str:
    v = _num(value)
    return "–" if v is None else f"{int(v):,}"


def _fmt_score(value: Any) -> str:
    v = _num(value)
    return "–" if v is None else f"{v:.2f}"


def _routing_table_html(table: pd.DataFrame) -> str:
    cols = [("category", "category"), ("model", "model"), ("quality", "quality"), ("n", "n"),
            ("latency_p95_ms", "p95 latency"), ("cost_per_1k_prompts_usd", "cost / 1k prompts"),
            ("error_rate", "error rate"), ("fallbacks", "fallbacks"), ("reason", "reason")]
    head = "".join(f'<th style="text-align:left;padding:2px 8px">{_esc(label)}</th>' for _, label in cols)
    body = []
    for r in table.to_dict("records"):
        q, lo, hi = _num(r.get("quality")), _num(r.get("quality_ci_low")), _num(r.get("quality_ci_high"))
        cells = {
            "category": r.get("category"), "model": r.get("model"),
            "quality": "–" if q is None else (f"{q:.3f}" + (f" [{lo:.2f}, {hi:.2f}]" if lo is not None and hi is not None else "")),
            "n": _fmt_int(r.get("n")), "latency_p95_ms": _fmt_ms(r.get("latency_p95_ms")),
            "cost_per_1k_prompts_usd": _fmt_usd(r.get("cost_per_1k_prompts_usd")),
            "error_rate": _fmt_score(r.get("error_rate")),
            "fallbacks": ", ".join(str(m) for m in (r.get("fallbacks") or [])) or "–", "reason": r.get("reason"),
        }
        body.append("<tr>" + "".join(f'<td style="padding:2px 8px">{_esc(cells[c])}</td>' for c, _ in cols) + "</tr>")
    return (f'<table class="llmlab-routing-table {_NO_MATH}" style="font-size:12px;border-collapse:collapse;{_LH}">'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")


def _projection_html(proj: Mapping[str, Any]) -> str:
    share = ", ".join(f"{m} {s * 100:.0f}%" for m, s in sorted((proj.get("share") or {}).items(), key=lambda kv: -kv[1]))
    savings = _num(proj.get("savings_pct"))
    lines = [
        f"routed: quality {_fmt_score(proj.get('quality'))}, cost {_fmt_usd(proj.get('cost_per_1k_prompts_usd'))} "
        f"per 1k prompts, p95 {_fmt_ms(proj.get('latency_p95_ms'))}",
        f"best single model {proj.get('baseline_model')}: quality {_fmt_score(proj.get('baseline_quality'))}, cost "
        f"{_fmt_usd(proj.get('baseline_cost_per_1k_prompts_usd'))} per 1k prompts"
        + ("" if savings is None else f" (routing saves {savings:.0f}%)"),
        f"share of calls: {share or '–'}",
        f"projected in sample over this run's {_fmt_int(proj.get('n_prompts'))} routed calls "
        "(replaying the recorded outcomes)",
    ]
    return (f'<div class="llmlab-projection-text {_NO_MATH}" style="font-size:12px;margin-top:6px">'
            + "<br>".join(_esc(x) for x in lines) + "</div>")


def compare(run: Any = None, *, store: Any = None, page_size: int = 10) -> CompareView:
    """Open the comparison view of a run (display it as a cell's last expression).

    Args:
        run: a :class:`llmlab.RunResult`, a run id / unique id prefix / run name, ``None`` or ``"last"`` (the newest
            run), or a results frame (:meth:`Store.results` columns; ratings then need ``store``).
        store: the :class:`llmlab.Store` (default: the run's store, else ``LLMLAB_DB`` / the default path).
        page_size: prompt rows per page of the answers grid.

    Returns a :class:`CompareView`. Raises StoreError (RunNotFoundError when nothing matches).
    """
    if isinstance(run, pd.DataFrame):
        return CompareView.from_frame(run, store=store, page_size=page_size)
    if hasattr(run, "run_id") and hasattr(run, "store"):
        return CompareView.from_store(run.run_id, store or run.store, page_size=page_size)
    return CompareView.from_store(run, store, page_size=page_size)


# -------------------------------------------------------------------------------------------------- the lab
class Lab(W.VBox):
    """Pick models, a prompt set and parameters; run with live progress and cancel; compare the results.

    Attributes (widgets): models_select (SelectMultiple: sandbox models and aliases), models_text (Text: more
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
        self.models_select = W.SelectMultiple(options=options, value=tuple(m for m in wanted if m in known),
                                              rows=min(9, len(options)), description="models",
                                              layout=W.Layout(width="330px"))
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
        self.max_prompts = W.BoundedIntText(value=int(max_prompts), min=0, max=10**9, description="first n",
                                            tooltip="use only the first n prompts (0 = all)",
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
                  self.models_select, self.models_text, self.source_select, self.path_text, self.max_prompts):
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
        return ps.filter(limit=n) if n > 0 else ps

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

        Raises PromptSetError, ModelError, MissingKeyError, BudgetError, pydantic.ValidationError.
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

    def open_run(self, run: str | None = None) -> CompareView:
        """Show a past run (default: the one chosen in :attr:`runs_select`) as it was, ratings included."""
        ref = run or self.runs_select.value
        view = CompareView.from_store(ref, self.store, page_size=self.page_size)
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
        max_prompts: preset of "first n" (0 = all prompts).
        **run_options: initial values of temperature, max_tokens, samples, concurrency, budget_usd, cache; other
            :class:`llmlab.RunOptions` fields are passed to every run as given.

    Returns a :class:`Lab`.
    """
    return Lab(store=store, namespace=namespace, prompts=prompts, models=models, page_size=page_size,
               max_prompts=max_prompts, **run_options)


__all__ = ["CompareView", "Lab", "compare", "lab", "records_from_frame", "frame_from_records", "RESULT_COLUMNS"]
