"""The self-contained HTML report of a run.

:func:`render_report` builds one HTML document: plotly.js embedded once inline (so the file opens with no
network), a summary table per model, the comparison charts of :mod:`llmlab.plots`, the routing table with its
projected cost and quality against the best single model, the run's settings, a notice when the figures come
from the sandbox's simulated providers, and a few example answers and errors per model.

Everything taken from the data (model ids, categories, prompts, answers, error messages, run settings) is
escaped with :func:`html.escape` where it is inserted; model answers, prompts and error messages are shown as
plain text inside ``<pre>``. The charts carry model ids and categories only as JSON data (plotly escapes
``<``, ``>`` and ``/`` in it) and never carry answers.
"""

from __future__ import annotations

import datetime as _dt
import html
import logging
import math
import sys
import types
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmlab import analysis
from llmlab.views import comparisons, plots

logger = logging.getLogger(__name__)

__all__ = ["CHART_IDS", "render_report", "write_report"]

#: The ``id`` of each chart's ``<div>`` in the report, by chart. ``comparison`` is present only when a
#: comparison frame is given; ``ranking`` (Bradley-Terry with intervals) is always drawn.
CHART_IDS: dict[str, str] = {
    "latency": "chart-latency",
    "cost": "chart-cost",
    "tokens": "chart-tokens",
    "quality_vs_cost": "chart-quality-vs-cost",
    "quality_heatmap": "chart-quality-heatmap",
    "errors": "chart-errors",
    "comparison": "chart-comparison",
    "ranking": comparisons.RANKING_CHART_ID,
}

_MAX_TEXT_CHARS = 2000

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1200px;
padding:1.5rem;color:#1d1d1f;line-height:1.45}
h1{margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.3rem}
.subtitle{color:#555;margin-top:0}
.notice{border:2px solid #d08700;background:#fff6e0;padding:.8rem 1rem;border-radius:6px;margin:1rem 0}
.warning{border-left:4px solid #c0392b;background:#fdecea;padding:.5rem 1rem;margin:1rem 0}
table{border-collapse:collapse;margin:.6rem 0;font-size:.92rem}
th,td{border:1px solid #ddd;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f4f5f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{white-space:pre-wrap;word-break:break-word;background:#f7f7f9;border:1px solid #e3e3e8;
padding:.5rem .7rem;margin:.3rem 0;max-height:22rem;overflow:auto;font-size:.85rem}
.example{border:1px solid #e3e3e8;border-radius:6px;padding:.5rem .9rem;margin:.7rem 0}
.example h4{margin:.2rem 0}.meta{color:#555;font-size:.85rem}
.status-error{color:#b00020}.chart{margin:1rem 0}
footer{margin-top:3rem;color:#777;font-size:.8rem}
"""


def _e(value: Any) -> str:
    """Escape any value for HTML text or attribute context."""
    if value is None:
        return ""
    return html.escape(str(value), quote=True)


def _isnan(v: Any) -> bool:
    try:
        return v is None or v is pd.NA or (isinstance(v, (float, np.floating)) and math.isnan(v))
    except TypeError:
        return False


def _fmt(v: Any, spec: str, unit: str = "", missing: str = "–") -> str:
    if _isnan(v):
        return missing
    try:
        return format(float(v), spec) + unit
    except (TypeError, ValueError):
        return str(v)


def _fmt_usd(v: Any, missing: str = "unknown price") -> str:
    if _isnan(v):
        return missing
    if float(v) == 0:
        return "free"
    return "$" + format(float(v), ",.4f")


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[bool] | None = None,
           caption: str | None = None) -> str:
    """An HTML table; every header and cell is escaped."""
    parts = ["<table>"]
    if caption:
        parts.append("<caption>" + _e(caption) + "</caption>")
    parts.append("<thead><tr>" + "".join("<th>" + _e(h) + "</th>" for h in headers) + "</tr></thead><tbody>")
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = ' class="num"' if numeric and i < len(numeric) and numeric[i] else ""
            cells.append("<td" + cls + ">" + _e(cell) + "</td>")
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def _pre(text: Any) -> str:
    s = "" if text is None or _isnan(text) else str(text)
    if len(s) > _MAX_TEXT_CHARS:
        s = s[:_MAX_TEXT_CHARS] + f"\n… ({len(s) - _MAX_TEXT_CHARS:,} more characters not shown)"
    return "<pre>" + _e(s) + "</pre>"


def _section(section_id: str, title: str, body: str, intro: str | None = None) -> str:
    intro_html = "<p>" + _e(intro) + "</p>" if intro else ""
    return '<section id="' + _e(section_id) + '"><h2>' + _e(title) + "</h2>" + intro_html + body + "</section>"


def _chart_html(fig, div_id: str) -> str:
    div = fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                      config={"displaylogo": False, "responsive": True})
    return '<div class="chart">' + div + "</div>"


def _summary_section(sm: pd.DataFrame) -> str:
    headers = ["model", "calls", "quality", "95% CI", "p50 latency", "p95 latency", "USD / 1k prompts",
               "error rate", "cache hits"]
    rows = []
    for r in sm.itertuples(index=False):
        ci = ("–" if _isnan(r.quality_ci_low)
              else _fmt(r.quality_ci_low, ".3f") + " – " + _fmt(r.quality_ci_high, ".3f"))
        cost = _fmt_usd(r.cost_per_1k_prompts_usd)
        if r.n_cost_unknown:
            cost += f" ({r.n_cost_unknown} calls without a price)"
        rows.append([r.model, r.n, _fmt(r.quality, ".3f", missing="not scored"), ci,
                     _fmt(r.latency_p50_ms, ",.0f", " ms"), _fmt(r.latency_p95_ms, ",.0f", " ms"), cost,
                     _fmt(r.error_rate, ".1%"), _fmt(r.cache_hit_rate, ".1%")])
    body = _table(headers, rows, numeric=[False, True, True, False, True, True, True, True, True])
    unknown = [str(m) for m, k in zip(sm["model"], sm["n_cost_unknown"]) if k]
    if unknown:
        body += ('<p class="warning">Price unknown for: ' + _e(", ".join(unknown)) +
                 ". Their cost is shown as unknown, not as zero; set a price override to include them.</p>")
    return _section(
        "summary", "Summary per model", body,
        "Quality is the mean score over scored calls (a failed call of a scored prompt counts as 0); the "
        "interval is 95% (Wilson for pass/fail scores, t-interval otherwise). Latencies are over successful "
        "calls. Cost per 1,000 prompts is the recorded cost scaled to 1,000 prompts.",
    )


def _routing_section(table: pd.DataFrame | None, projection: Mapping[str, Any] | None) -> str:
    if table is None and not projection:
        return ""
    body = ""
    if projection:
        rows = [
            ["routing table (projected)", _fmt(projection.get("quality"), ".3f"),
             _fmt_usd(projection.get("cost_per_1k_prompts_usd")),
             _fmt(projection.get("latency_p95_ms"), ",.0f", " ms")],
            ["best single model: " + str(projection.get("baseline_model", "–")),
             _fmt(projection.get("baseline_quality"), ".3f"),
             _fmt_usd(projection.get("baseline_cost_per_1k_prompts_usd")), "–"],
        ]
        body += _table(["", "quality", "USD / 1k prompts", "p95 latency"], rows,
                       numeric=[False, True, True, True])
        savings = projection.get("savings_pct")
        if not _isnan(savings):
            body += ("<p><strong>Projected savings against the best single model: " + _e(_fmt(savings, ".1f", "%")) +
                     "</strong></p>")
    if table is not None and len(table):
        headers = ["category", "model", "quality", "95% CI", "n", "p95 latency", "USD / 1k prompts", "fallbacks",
                   "reason"]
        rows = []
        for _, r in table.iterrows():
            fallbacks = r.get("fallbacks")
            if isinstance(fallbacks, (list, tuple, np.ndarray)):
                fallbacks = ", ".join(str(f) for f in fallbacks)
            ci = ("–" if _isnan(r.get("quality_ci_low"))
                  else _fmt(r.get("quality_ci_low"), ".3f") + " – " + _fmt(r.get("quality_ci_high"), ".3f"))
            rows.append([r.get("category"), r.get("model"), _fmt(r.get("quality"), ".3f"), ci,
                         "" if _isnan(r.get("n")) else r.get("n"), _fmt(r.get("latency_p95_ms"), ",.0f", " ms"),
                         _fmt_usd(r.get("cost_per_1k_prompts_usd")), fallbacks or "", r.get("reason") or ""])
        body += _table(headers, rows, numeric=[False, False, True, False, True, True, True, False, False])
        settings = table.attrs.get("routing_settings")
        if settings:
            shown = ", ".join(f"{k} = {'none' if v is None else v}" for k, v in settings.items())
            body += f'<p class="routing-settings">Settings of this table: {_e(shown)}.</p>'
    return _section("routing", "Routing table", body,
                    "Which model each task category is sent to, and the cost and quality this table would have "
                    "had on this run's prompts, against the best single model.")


def _settings_section(run: Mapping[str, Any]) -> str:
    models = run.get("models") or []
    rows = [
        ["run id", run.get("run_id", "")],
        ["name", run.get("name", "") or ""],
        ["date (UTC)", _fmt_date(run.get("created_at_utc"))],
        ["prompt set", run.get("prompt_set", "") or ""],
        ["prompts", run.get("n_prompts", "")],
        ["models", ", ".join(str(m) for m in models)],
        ["llmlab version", run.get("llmlab_version", "")],
        ["LiteLLM version", run.get("litellm_version", "")],
        ["sandbox (simulated providers)", "yes" if run.get("sandbox") else "no"],
    ]
    tags = run.get("tags")
    if tags:
        rows.append(["tags", ", ".join(str(t) for t in tags) if isinstance(tags, (list, tuple)) else tags])
    body = _table(["setting", "value"], rows)
    params = run.get("params") or {}
    if params:
        body += "<h3>Parameters</h3>" + _table(["parameter", "value"], [[k, params[k]] for k in params])
    return _section("settings", "Run settings", body)


def _fmt_date(value: Any) -> str:
    if value is None or _isnan(value):
        return ""
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        return str(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC")
    return ts.strftime("%Y-%m-%d %H:%M:%S")


def _pick_examples(g: pd.DataFrame, k: int) -> pd.DataFrame:
    """Up to k rows: one failed call when there is one, the rest successful calls from distinct categories."""
    order = [c for c in ("category", "prompt_id", "sample_index") if c in g.columns]
    g = g.sort_values(order, kind="stable") if order else g
    is_err = g["status"].astype("object").eq("error")
    errors, oks = g[is_err], g[~is_err]
    if "category" in oks.columns:
        first = oks.drop_duplicates("category")
        oks = pd.concat([first, oks.drop(first.index)])
    n_err = min(len(errors), 1 if len(oks) >= k - 1 else k - len(oks))
    picked = pd.concat([oks.head(k - n_err), errors.head(n_err)])
    return picked


def _examples_section(results: pd.DataFrame, per_model: int) -> str:
    if per_model <= 0 or results.empty:
        return ""
    parts = []
    for model in sorted(pd.unique(results["model"].dropna()), key=str):
        g = results[results["model"] == model]
        parts.append("<h3>" + _e(model) + "</h3>")
        for _, r in _pick_examples(g, per_model).iterrows():
            status = str(r.get("status"))
            meta = ["category: " + str(r.get("category", "")), "prompt: " + str(r.get("prompt_id", ""))]
            if status == "ok":
                meta.append("quality: " + _fmt(r.get("quality"), ".2f", missing="not scored"))
                meta.append("latency: " + _fmt(r.get("latency_ms"), ",.0f", " ms"))
                answered_by = r.get("answered_by")
                if not _isnan(answered_by) and answered_by and answered_by != model:
                    meta.append("answered by fallback: " + str(answered_by))
            parts.append('<div class="example"><h4 class="status-' + ("error" if status == "error" else "ok") + '">'
                         + _e(model) + " — " + _e(status) + '</h4><div class="meta">' + _e(" · ".join(meta))
                         + "</div><div>Prompt</div>" + _pre(r.get("prompt")))
            if status == "error":
                http_status = r.get("http_status")
                head = str(r.get("error_type") or "error")
                if not _isnan(http_status):
                    head += f" (HTTP {int(http_status)})"
                msg = r.get("error_message")
                parts.append("<div>Error</div>" + _pre(head + ("" if _isnan(msg) else ": " + str(msg))))
            else:
                parts.append("<div>Answer</div>" + _pre(r.get("response")))
            parts.append("</div>")
    return _section("examples", "Example answers and errors", "".join(parts),
                    "A few calls per model, shown as plain text (model output is never rendered as HTML).")


def _chart_sections(results, summary, sm, routing_projection, tolerance_curve, comparison) -> str:
    specs = [
        ("quality_vs_cost", "Quality vs cost",
         "Each model with its 95% interval, the Pareto frontier (no other model is both cheaper and better) and, "
         "when given, the routing table's projected point and its curve as the quality tolerance varies.",
         lambda: plots.quality_vs_cost(sm, routing_projection=routing_projection, tolerance_curve=tolerance_curve)),
        ("quality_heatmap", "Quality by category", "Mean quality per model and category (hover for n and CI).",
         lambda: plots.quality_heatmap(summary)),
        ("latency", "Latency", "Total latency and time to first token of successful calls, with p50/p95/p99.",
         lambda: plots.latency_distribution(results)),
        ("cost", "Cost", "Cost per 1,000 prompts, over all categories and per category.",
         lambda: plots.cost_chart(summary)),
        ("tokens", "Tokens", "Mean input and output tokens per successful call.",
         lambda: plots.tokens_chart(results)),
        ("errors", "Errors and reliability", "Error rate by type, retries, fallbacks and cache hits.",
         lambda: plots.error_chart(results)),
    ]
    if comparison is not None:
        specs.append(("comparison", "Run comparison", "Matched calls of two runs, per model.",
                      lambda: plots.run_comparison_chart(comparison)))
    parts = []
    for key, title, intro, build in specs:
        parts.append(_section("section-" + CHART_IDS[key], title, _chart_html(build(), CHART_IDS[key]), intro))
    return "".join(parts)


def render_report(
    results: pd.DataFrame,
    run: Mapping[str, Any],
    *,
    routing_table: pd.DataFrame | None = None,
    routing_projection: Mapping[str, Any] | None = None,
    tolerance_curve: pd.DataFrame | None = None,
    comparison: pd.DataFrame | None = None,
    examples_per_model: int = 3,
    extras: Mapping[str, Any] | None = None,
) -> str:
    """Render a run's report as one self-contained HTML document.

    Args:
        results: the run's results frame (``Store.results(run_id)``).
        run: the run's metadata dict (``run_id, name, created_at_utc, prompt_set, models, params,
            llmlab_version, litellm_version, sandbox, n_prompts, tags``); missing keys are shown empty.
        routing_table: optional routing table from :mod:`llmlab.routing` (``category, model, quality,
            quality_ci_low, quality_ci_high, n, latency_p95_ms, cost_per_1k_prompts_usd, fallbacks, reason``).
        routing_projection: optional projection dict (``quality, cost_per_1k_prompts_usd, latency_p95_ms,
            baseline_model, baseline_quality, baseline_cost_per_1k_prompts_usd, savings_pct``).
        tolerance_curve: optional frame (``tolerance, quality, cost_per_1k_prompts_usd``).
        comparison: optional :func:`llmlab.analysis.compare_runs` frame, drawn as an extra chart.
        examples_per_model: how many example calls to show per model.
        extras: keyword arguments of :func:`llmlab.views.comparisons.comparison_sections` (a pairwise judge's
            ranking and position bias, the judges checked against people); the paired comparison and the
            ranking sections are always drawn.

    Returns:
        The HTML text (UTF-8 when written). It embeds plotly.js once inline and references no external
        script, stylesheet or image, so it opens with no network. Chart ``<div>`` ids are in
        :data:`CHART_IDS`. When ``run["sandbox"]`` is true a notice says the figures are simulated.

    Raises:
        llmlab.analysis.ResultsFrameError: ``results`` (or an optional frame) lacks a needed column.
    """
    from plotly.offline import get_plotlyjs

    summary = analysis.summarize(results, by=("model", "category"))
    sm = analysis.summarize_models(results)
    title = "llmlab report: " + str(run.get("name") or run.get("run_id") or "run")
    generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    head = ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            "<title>" + _e(title) + "</title><style>" + _CSS + "</style>"
            '<script type="text/javascript">' + get_plotlyjs() + "</script></head><body>")
    n_models = len(sm)
    n_calls = len(results)
    parts = [
        head,
        "<header><h1>" + _e(title) + '</h1><p class="subtitle">' +
        _e(f"run {run.get('run_id', '')} · {n_calls:,} calls · {n_models} models · "
           f"prompt set {run.get('prompt_set', '') or '–'} · {_fmt_date(run.get('created_at_utc'))} UTC")
        + "</p></header>",
    ]
    if run.get("sandbox"):
        parts.append('<div class="notice" id="sandbox-notice" role="note"><strong>Simulated figures.</strong> '
                     "This run used llmlab's sandbox: its providers are simulated on this machine, so every "
                     "latency, price, token count and quality figure in this report is simulated and says nothing "
                     "about the real models.</div>")
    if results.empty:
        parts.append('<p class="warning">This run has no recorded calls.</p>')
    parts.append(_summary_section(sm))
    parts.append(_chart_sections(results, summary, sm, routing_projection, tolerance_curve, comparison))
    parts.append(comparisons.comparison_sections(results, **dict(extras or {})))
    parts.append(_routing_section(routing_table, routing_projection))
    parts.append(_settings_section(run))
    parts.append(_examples_section(results, examples_per_model))
    parts.append("<footer>" + _e(f"Generated by llmlab {run.get('llmlab_version', '')} on {generated}.") +
                 "</footer></body></html>")
    return "".join(parts)


def write_report(
    results: pd.DataFrame,
    run: Mapping[str, Any],
    path: str | Path,
    *,
    routing_table: pd.DataFrame | None = None,
    routing_projection: Mapping[str, Any] | None = None,
    tolerance_curve: pd.DataFrame | None = None,
    comparison: pd.DataFrame | None = None,
    examples_per_model: int = 3,
    extras: Mapping[str, Any] | None = None,
) -> Path:
    """Write :func:`render_report`'s HTML to ``path`` (UTF-8; parent folders are created).

    Returns:
        The path written, as a :class:`pathlib.Path`.

    Raises:
        llmlab.analysis.ResultsFrameError: as :func:`render_report`.
        OSError: the file cannot be written.
    """
    text = render_report(results, run, routing_table=routing_table, routing_projection=routing_projection,
                         tolerance_curve=tolerance_curve, comparison=comparison,
                         examples_per_model=examples_per_model, extras=extras)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    logger.info("wrote report %s (%d bytes)", out, len(text.encode("utf-8")))
    return out


def report_run(run: str | None = None, path: str | Path | None = None, *, store: Any = None,
               tolerance: float | None = None, min_n: int | None = None, max_latency_p95_ms: float | None = None,
               compare_with: str | None = None, examples_per_model: int = 3) -> Path:
    """Write the report of a stored run (``llmlab report RUN [-o PATH]``, ``llmlab.report(run, path)``).

    Loads the run's results from the store, derives its routing table (:func:`llmlab.routing.routing_table` with
    ``tolerance``, ``min_n``, ``max_latency_p95_ms``; None: :data:`llmlab.routing.table.ROUTING_DEFAULTS`, the
    same defaults as the widgets, the CLI and ``routing_table`` itself, and the report states them), the projection and the tolerance curve, and, with
    ``compare_with`` (another run), the run comparison; ``examples_per_model`` example answers per model (a
    failed call first when there is one, then one per category). Default path: ``reports/<run_id>.html`` (relative to the
    working directory). Returns the path written.

    Raises StoreError (unknown run), AnalysisError, OSError.
    """
    from llmlab.errors import RoutingError
    from llmlab.routing import project, routing_table, tolerance_curve
    from llmlab.routing.table import ROUTING_DEFAULTS
    from llmlab.store import Store

    tolerance = ROUTING_DEFAULTS["tolerance"] if tolerance is None else tolerance
    min_n = ROUTING_DEFAULTS["min_n"] if min_n is None else min_n
    store = store or Store()
    run_id = store.resolve_run(run)
    results = store.results(run_id)
    meta = store.run(run_id)
    table = projection = curve = comparison = None
    try:
        table = routing_table(results, tolerance=tolerance, min_n=min_n, max_latency_p95_ms=max_latency_p95_ms)
        projection = project(table, results)
        curve = tolerance_curve(results, min_n=min_n, max_latency_p95_ms=max_latency_p95_ms)
    except RoutingError as exc:
        logger.warning("report %s: no routing table (%s)", run_id, exc)
    if compare_with is not None:
        from llmlab.analysis import compare_runs

        comparison = compare_runs(results, store.results(compare_with))
    out = Path(path) if path is not None else Path("reports") / f"{run_id}.html"
    return write_report(results, meta, out, routing_table=table, routing_projection=projection,
                        tolerance_curve=curve, comparison=comparison, examples_per_model=examples_per_model,
                        extras=comparisons.report_extras(store, run_id, results))


class _CallableModule(types.ModuleType):
    """Makes ``llmlab.report(run, path)`` call :func:`report_run` while ``llmlab.report`` stays this module."""

    def __call__(self, *args: Any, **kwargs: Any) -> Path:
        return report_run(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
