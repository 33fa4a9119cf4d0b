"""Shared pieces of the widgets: escaped HTML cells and badges, value cleaning, record/frame conversion."""

from __future__ import annotations

import html
import json
import logging
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from llmlab.views.display import fmt_usd

__all__ = [
    "ALL",
    "RESULT_COLUMNS",
    "SORTS",
    "STATUS_FILTERS",
    "frame_from_records",
    "normalized_results",
    "model_header_figures",
    "model_header_html",
    "quality_badge",
    "quality_color",
    "records_from_frame",
]

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
        parts.append(quality_badge(q))
    return "".join(parts)


def quality_color(q: float) -> tuple[str, str]:
    """Background and text colour for a quality in [0, 1]: red (0) through amber (0.5) to green (1)."""
    q = min(1.0, max(0.0, float(q)))
    hue = round(120 * q)  # HSL hue: 0 red, 60 yellow, 120 green
    return f"hsl({hue}, 70%, 88%)", f"hsl({hue}, 80%, 22%)"


def quality_badge(q: float, *, label: str | None = None) -> str:
    """A quality badge coloured on the red-to-green scale of :func:`quality_color` (escaped text)."""
    bg, fg = quality_color(q)
    text = label if label is not None else f"quality {q:.2f}"
    return (f'<span class="llmlab-badge llmlab-badge-quality" title="quality score (0..1)" style="background:{bg};'
            f'color:{fg};border-radius:3px;padding:0 4px;margin:0 3px 2px 0;font-size:11px;font-weight:600;'
            f'white-space:nowrap;display:inline-block">{_esc(text)}</span>')


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
        text, style = str(rec.get("response") or ""), ""
    answer = _esc(text)
    if len(text) > _SNIPPET_CHARS:
        # Long answers open in place (a <details> element: no script); both parts are escaped text.
        cut = text[:_SNIPPET_CHARS].rstrip()
        answer = (f'{_esc(cut)}<details class="llmlab-more" style="display:inline"><summary style="cursor:pointer;'
                  f'color:#1a73e8;display:inline">… more ({len(text) - len(cut):,} chars)</summary>'
                  f'{_esc(text[len(cut):])}</details>')
    return (f'<div class="llmlab-cell-body {_NO_MATH}" style="{_LH}">'
            f'<div class="llmlab-answer" style="white-space:pre-wrap;word-break:break-word;font-size:12px;'
            f'font-family:var(--jp-code-font-family,monospace);max-height:16em;overflow:auto;{style}">{answer}</div>'
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
    # Column by column (issue 11: row-wise to_dict + _clean per cell took ~18 s on a 10^5-row run): numpy
    # numeric columns convert in one tolist() (Python scalars, NaN -> None); the rest keep the per-cell _clean.
    names = [str(c) for c in frame.columns]
    columns: list[list[Any]] = []
    for i in range(frame.shape[1]):
        col = frame.iloc[:, i]
        if isinstance(col.dtype, np.dtype) and col.dtype.kind in "iub":
            columns.append(col.tolist())
        elif isinstance(col.dtype, np.dtype) and col.dtype.kind == "f":
            columns.append([None if v != v else v for v in col.tolist()])
        elif isinstance(col.dtype, pd.StringDtype):  # values are str; missing ones NaN or pd.NA
            columns.append([v if type(v) is str else None for v in col.tolist()])
        else:
            obj = col.astype(object)
            columns.append([v if type(v) is str else _clean(v) for v in obj.where(col.notna(), None).tolist()])
    return [dict(zip(names, row)) for row in zip(*columns)]


def frame_from_records(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """A results frame (:data:`RESULT_COLUMNS` first, numeric columns as floats) from row dicts."""
    rows = [dict(r) for r in records]
    extra = sorted({k for r in rows for k in r} - set(RESULT_COLUMNS))
    return normalized_results(pd.DataFrame(rows, columns=[*RESULT_COLUMNS, *extra]))


def normalized_results(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with :data:`RESULT_COLUMNS` first (missing ones added, empty), then its other columns sorted;
    numeric columns as floats, ``cached`` as bool: the frame :func:`frame_from_records` gives."""
    extra = sorted(set(frame.columns) - set(RESULT_COLUMNS))
    frame = frame.reindex(columns=[*RESULT_COLUMNS, *extra])
    for c in _NUMERIC:
        frame[c] = pd.to_numeric(frame[c], errors="coerce").astype(float)
    frame["cached"] = frame["cached"].map(lambda v: bool(v) if v is not None and v == v else False).astype(bool)
    return frame



def model_header_figures(recs: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The figures of a model's column header from that model's records (pending calls left out):
    ``quality`` (mean of the human rating, else the quality, over scored calls; None when none), ``n_quality``,
    ``latency_p50_ms`` (median over ok calls; None), ``n_costs`` (ok calls not served from the cache),
    ``cost_usd`` (their total in USD; None when a price is unknown), ``n_errors``."""
    import statistics

    recs = [r for r in recs if r.get("status") != "pending"]
    quality = [q for q in (_num(r.get("human_score")) if _num(r.get("human_score")) is not None else
                           _num(r.get("quality")) for r in recs) if q is not None]
    lat = [v for v in (_num(r.get("latency_ms")) for r in recs if _is_ok(r)) if v is not None]
    costs = [_num(r.get("cost_usd")) for r in recs if _is_ok(r) and not r.get("cached")]
    known = [c for c in costs if c is not None]
    return {"quality": sum(quality) / len(quality) if quality else None, "n_quality": len(quality),
            "latency_p50_ms": statistics.median(lat) if lat else None, "n_costs": len(costs),
            "cost_usd": sum(known) if len(known) == len(costs) else None,
            "n_errors": sum(1 for r in recs if r.get("status") == "error")}


def model_header_html(model: str, recs: Iterable[Mapping[str, Any]] | None = None, *,
                      figures: Mapping[str, Any] | None = None) -> str:
    """A model's column header: its name, then quality (mean over scored calls, coloured), p50 latency of ok
    calls, cost of the non-cached calls (USD) and errors: the :func:`model_header_figures` of ``recs`` (that
    model's records), or ``figures`` computed elsewhere (:func:`llmlab.widgets.records.header_figures`)."""
    fig = figures if figures is not None else model_header_figures(recs or ())
    bits = []
    if fig["quality"] is not None:
        q = fig["quality"]
        bits.append(quality_badge(q, label=f"quality {q:.2f} (n={fig['n_quality']})"))
    if fig["latency_p50_ms"] is not None:
        bits.append(_badge(f"p50 {_fmt_ms(fig['latency_p50_ms'])}", "info", title="median latency of ok calls"))
    if fig["n_costs"]:
        bits.append(_badge(_fmt_usd(fig["cost_usd"]) if fig["cost_usd"] is not None else "price unknown", "info",
                           title="cost of this model's calls (USD, cache hits excluded)"))
    if fig["n_errors"]:
        n_err = fig["n_errors"]
        bits.append(_badge(f"{n_err} error{'s' if n_err != 1 else ''}", "error"))
    return (f'<div class="{_NO_MATH}" style="font-size:12px;{_LH}"><div class="llmlab-model-name" '
            f'style="font-weight:bold;word-break:break-all">{_esc(model)}</div><div style="line-height:1.6">{"".join(bits)}</div></div>')
