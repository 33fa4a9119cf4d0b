"""Plotly comparison charts built from results frames and the frames of :mod:`llmlab.analysis`.

Each function returns a ``plotly.graph_objects.Figure`` and leaves display to the caller (``fig.show()``,
a notebook cell's last expression, or :mod:`llmlab.report`). plotly is imported inside the functions, so
importing this module stays cheap.

Model ids and category names enter the figures only as data (trace names, axis categories, ``customdata``);
hover templates refer to them through ``%{...}`` placeholders, never by pasting them into template text, and
no model answer (``response``) is ever put into a chart. Annotation text that names models is escaped with
:func:`html.escape` (plotly reads annotation text as a small subset of HTML).

Figures are those of the recorded calls (see :mod:`llmlab.analysis` for their sources); when a run came from
the sandbox they are simulated, and :mod:`llmlab.report` says so.
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from llmlab import analysis

if TYPE_CHECKING:  # pragma: no cover
    import plotly.graph_objects as go

logger = logging.getLogger(__name__)

__all__ = [
    "cost_chart",
    "error_chart",
    "latency_distribution",
    "quality_heatmap",
    "quality_vs_cost",
    "run_comparison_chart",
    "tokens_chart",
]

_TEMPLATE = "plotly_white"
_PERCENTILE_SYMBOLS = {50: "circle", 95: "diamond", 99: "x"}


def _go():
    import plotly.graph_objects as go

    return go


def _subplots(**kwargs):
    from plotly.subplots import make_subplots

    return make_subplots(**kwargs)


def _num(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _models(frame: pd.DataFrame) -> list:
    return sorted(pd.unique(frame["model"].dropna()), key=str)


def _nan_to_none(values) -> list:
    return [None if (v is None or (isinstance(v, float) and math.isnan(v))) else v for v in values]


def _empty_note(fig: go.Figure, text: str) -> go.Figure:
    fig.add_annotation(text=html.escape(text), x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font={"size": 14, "color": "#666"})
    return fig


def _ok(results: pd.DataFrame) -> pd.DataFrame:
    return results[results["status"].astype("object").eq("ok")]


def latency_distribution(results: pd.DataFrame, *, max_box_points: int = 5000) -> go.Figure:
    """Latency per model: total call latency and time to first token side by side.

    Left panel: one box per model over the ok calls' ``latency_ms``; right panel: one box per model over the
    ok calls' ``ttft_ms`` (streamed calls only). In each panel three marker traces named ``p50``, ``p95`` and
    ``p99`` mark those percentiles per model (hover gives the value in ms and the number of calls).

    Args:
        results: a results frame (``model``, ``status``, ``latency_ms``, ``ttft_ms`` used).
        max_box_points: a model with more values than this gets a box drawn from its quartiles and Tukey fences
            (``q1, median, q3, lowerfence, upperfence``: the figures plotly would compute, linear quartiles, whiskers
            to the furthest value within 1.5 IQR) instead of every value: a 10^5-call run's chart stays small
            and quick; its outliers are then not drawn.

    Returns:
        A Figure. Box traces carry ``meta = {"panel": "latency"|"ttft", "model": <model>}`` (plus
        ``"summarized": True`` for a box drawn from its quartiles); percentile traces
        ``meta = {"panel": ..., "percentile": 50|95|99}``. Units: milliseconds.

    Raises:
        llmlab.analysis.ResultsFrameError: a column is missing.
    """
    analysis._require(results, ("model", "status", "latency_ms"), "results")
    go = _go()
    fig = _subplots(rows=1, cols=2, subplot_titles=("Total latency (ms)", "Time to first token (ms)"),
                    horizontal_spacing=0.08)
    ok = _ok(results)
    models = _models(results)
    panels = [("latency", "latency_ms", 1)]
    if "ttft_ms" in results.columns:
        panels.append(("ttft", "ttft_ms", 2))
    palette = _palette(models)
    for panel, col, c in panels:
        pct_x: dict[int, list] = {p: [] for p in _PERCENTILE_SYMBOLS}
        pct_y: dict[int, list] = {p: [] for p in _PERCENTILE_SYMBOLS}
        pct_n: dict[int, list] = {p: [] for p in _PERCENTILE_SYMBOLS}
        for model in models:
            values = _num(ok.loc[ok["model"] == model, col])
            values = values[~np.isnan(values)]
            if values.size == 0:
                continue
            common = {"name": str(model), "legendgroup": str(model), "showlegend": panel == "latency",
                      "marker_color": palette[model]}
            if values.size > max_box_points:
                q1, median, q3 = (float(v) for v in np.percentile(values, [25, 50, 75]))
                iqr = q3 - q1
                inside = values[(values >= q1 - 1.5 * iqr) & (values <= q3 + 1.5 * iqr)]
                box = go.Box(x=[model], q1=[q1], median=[median], q3=[q3], lowerfence=[float(inside.min())],
                             upperfence=[float(inside.max())], boxpoints=False,
                             meta={"panel": panel, "model": model, "summarized": True}, **common)
            else:
                box = go.Box(x=[model] * values.size, y=values, boxpoints="outliers",
                             meta={"panel": panel, "model": model}, **common)
            fig.add_trace(box, row=1, col=c)
            for p in _PERCENTILE_SYMBOLS:
                pct_x[p].append(model)
                pct_y[p].append(float(np.percentile(values, p)))
                pct_n[p].append(int(values.size))
        for p, symbol in _PERCENTILE_SYMBOLS.items():
            if not pct_x[p]:
                continue
            fig.add_trace(
                go.Scatter(
                    x=pct_x[p], y=pct_y[p], mode="markers", name=f"p{p}", legendgroup=f"p{p}",
                    showlegend=(panel == panels[0][0]),
                    marker={"symbol": symbol, "size": 10, "color": "#222",
                            "line": {"width": 1, "color": "#fff"}},
                    customdata=np.array(pct_n[p]).reshape(-1, 1),
                    hovertemplate=(f"p{p}: " + "%{y:,.0f} ms<br>model: %{x}<br>ok calls: %{customdata[0]}"
                                   "<extra></extra>"),
                    meta={"panel": panel, "percentile": p},
                ),
                row=1, col=c,
            )
        if panel == "ttft" and not pct_x[50]:
            fig.add_annotation(text="no time-to-first-token recorded (streaming off)", xref="x2 domain",
                               yref="y2 domain", x=0.5, y=0.5, showarrow=False, font={"color": "#666"})
    if not any(isinstance(t, go.Box) for t in fig.data):
        _empty_note(fig, "no successful calls to show")
    fig.update_yaxes(title_text="ms", rangemode="tozero")
    fig.update_layout(template=_TEMPLATE, title="Latency by model (successful calls)", boxmode="overlay",
                      height=460, legend={"title": {"text": "model / percentile"}})
    return fig


def _palette(models: list) -> dict:
    import plotly.express as px

    colors = px.colors.qualitative.Plotly + px.colors.qualitative.D3
    return {m: colors[i % len(colors)] for i, m in enumerate(models)}


def _overall_cost(summary: pd.DataFrame) -> pd.DataFrame:
    """Per-model cost per 1,000 prompts from a (model, category) summary (categories partition prompts)."""
    rows = []
    for model, g in summary.groupby("model", sort=False):
        cost = _num(g["cost_usd"])
        n_prompts = _num(g["n_prompts"]) if "n_prompts" in g.columns else _num(g["n"])
        total = float(cost.sum()) if not np.isnan(cost).any() else math.nan
        n = float(np.nansum(n_prompts))
        rows.append({"model": model, "cost_per_1k_prompts_usd": total / n * 1000 if n else math.nan,
                     "cost_usd": total, "n_prompts": n})
    return pd.DataFrame(rows, columns=["model", "cost_per_1k_prompts_usd", "cost_usd", "n_prompts"])


def cost_chart(summary: pd.DataFrame) -> go.Figure:
    """Cost per 1,000 prompts, per model and per category.

    Args:
        summary: a :func:`llmlab.analysis.summarize` frame. By (model, category): the left panel shows each
            model over all categories (total cost over total prompts) and the right panel one bar group per
            category. By model only: a single panel.

    Returns:
        A Figure of bar traces in US dollars per 1,000 prompts. The per-model trace has
        ``meta = {"panel": "model"}``; per-category traces have ``meta = {"panel": "category", "model": m}``
        with x = categories. Models whose price is unknown get no bar, and an annotation names them.

    Raises:
        llmlab.analysis.ResultsFrameError: a column is missing.
    """
    analysis._require(summary, ("model", "cost_per_1k_prompts_usd"), "summary")
    go = _go()
    by_category = "category" in summary.columns
    models = _models(summary)
    palette = _palette(models)
    if by_category:
        analysis._require(summary, ("cost_usd",), "summary")
        overall = _overall_cost(summary)
        fig = _subplots(rows=1, cols=2, column_widths=[0.3, 0.7], horizontal_spacing=0.1,
                        subplot_titles=("All categories", "Per category"))
    else:
        overall = summary[["model", "cost_per_1k_prompts_usd"]]
        fig = _subplots(rows=1, cols=1)
    overall = overall.set_index("model").reindex(models).reset_index()
    fig.add_trace(
        go.Bar(
            x=overall["model"].tolist(),
            y=_nan_to_none(_num(overall["cost_per_1k_prompts_usd"]).tolist()),
            name="all categories",
            marker_color=[palette[m] for m in overall["model"]],
            showlegend=False,
            hovertemplate="model: %{x}<br>$%{y:,.4f} per 1,000 prompts<extra></extra>",
            meta={"panel": "model"},
        ),
        row=1, col=1,
    )
    if by_category:
        categories = sorted(pd.unique(summary["category"].dropna()), key=str)
        for model in models:
            g = summary[summary["model"] == model].set_index("category").reindex(categories)
            n = _num(g["n"]) if "n" in g.columns else np.full(len(categories), np.nan)
            fig.add_trace(
                go.Bar(
                    x=list(categories),
                    y=_nan_to_none(_num(g["cost_per_1k_prompts_usd"]).tolist()),
                    name=str(model),
                    legendgroup=str(model),
                    marker_color=palette[model],
                    customdata=np.column_stack([np.full(len(categories), str(model), dtype=object), n]),
                    hovertemplate=("model: %{customdata[0]}<br>category: %{x}<br>$%{y:,.4f} per 1,000 prompts"
                                   "<br>calls: %{customdata[1]}<extra></extra>"),
                    meta={"panel": "category", "model": model},
                ),
                row=1, col=2,
            )
    unknown = [m for m, v in zip(overall["model"], _num(overall["cost_per_1k_prompts_usd"])) if np.isnan(v)]
    if unknown:
        fig.add_annotation(
            text="price unknown (no bar): " + html.escape(", ".join(map(str, unknown))),
            xref="paper", yref="paper", x=0, y=-0.38, showarrow=False, xanchor="left",
            font={"color": "#a15c00"},
        )
    fig.update_yaxes(title_text="USD per 1,000 prompts", rangemode="tozero")
    fig.update_layout(template=_TEMPLATE, title="Cost per 1,000 prompts", barmode="group", height=480,
                      margin={"b": 140})
    return fig


def tokens_chart(results: pd.DataFrame) -> go.Figure:
    """Mean input and output tokens per ok call, per model.

    Args:
        results: a results frame (``model``, ``status``, ``input_tokens``, ``output_tokens`` used).

    Returns:
        A Figure with two bar traces, ``"input tokens"`` and ``"output tokens"`` (``meta = "input_tokens"`` /
        ``"output_tokens"``), x = models, y = mean tokens per ok call (provider-reported counts); hover adds
        the median and the total.

    Raises:
        llmlab.analysis.ResultsFrameError: a column is missing.
    """
    analysis._require(results, ("model", "status", "input_tokens", "output_tokens"), "results")
    go = _go()
    fig = go.Figure()
    ok = _ok(results)
    models = _models(results)
    for col, label, color in (("input_tokens", "input tokens", "#636efa"),
                              ("output_tokens", "output tokens", "#ef553b")):
        means, medians, totals = [], [], []
        for model in models:
            v = _num(ok.loc[ok["model"] == model, col])
            v = v[~np.isnan(v)]
            means.append(float(v.mean()) if v.size else None)
            medians.append(float(np.median(v)) if v.size else None)
            totals.append(float(v.sum()) if v.size else None)
        fig.add_trace(go.Bar(
            x=list(models), y=means, name=label, marker_color=color,
            customdata=np.column_stack([medians, totals]) if models else None,
            hovertemplate=(f"{label}<br>" + "model: %{x}<br>mean: %{y:,.1f}<br>median: %{customdata[0]:,.0f}"
                           "<br>total: %{customdata[1]:,.0f}<extra></extra>"),
            meta=col,
        ))
    if ok.empty:
        _empty_note(fig, "no successful calls to show")
    fig.update_layout(template=_TEMPLATE, title="Tokens per successful call (mean)", barmode="group",
                      yaxis_title="tokens", height=420)
    return fig


def quality_vs_cost(
    summary_models: pd.DataFrame,
    routing_projection: Mapping[str, Any] | None = None,
    tolerance_curve: pd.DataFrame | None = None,
) -> go.Figure:
    """Quality against cost per 1,000 prompts: each model, the Pareto frontier and the routing table.

    Args:
        summary_models: a :func:`llmlab.analysis.summarize_models` frame (``model``, ``quality``,
            ``quality_ci_low``, ``quality_ci_high``, ``cost_per_1k_prompts_usd``).
        routing_projection: optional dict from :mod:`llmlab.routing` with ``quality`` and
            ``cost_per_1k_prompts_usd`` (and optionally ``latency_p95_ms``, ``baseline_model``,
            ``savings_pct``): drawn as one star.
        tolerance_curve: optional frame with ``tolerance``, ``quality``, ``cost_per_1k_prompts_usd``: the
            routing table's projection as the quality tolerance varies, drawn as a line.

    Returns:
        A Figure whose traces carry ``meta``: ``"models"`` (one point per model with a known price and quality,
        error bars = 95 % CI), ``"frontier"`` (the non-dominated models, sorted by cost), ``"routing"`` and
        ``"tolerance"``. x: US dollars per 1,000 prompts (log scale when costs span 10× or more), y: quality
        in [0, 1]. Models left out for an unknown price or no score are named in an annotation.

    Raises:
        llmlab.analysis.ResultsFrameError: a column is missing.
    """
    analysis._require(summary_models, ("model", "quality", "cost_per_1k_prompts_usd"), "summary_models")
    go = _go()
    fig = go.Figure()
    s = summary_models.copy()
    x = _num(s["cost_per_1k_prompts_usd"])
    y = _num(s["quality"])
    placed = ~np.isnan(x) & ~np.isnan(y)
    pts = s[placed]
    if not pts.empty:
        q = _num(pts["quality"])
        low = _num(pts["quality_ci_low"]) if "quality_ci_low" in pts.columns else np.full(len(pts), np.nan)
        high = _num(pts["quality_ci_high"]) if "quality_ci_high" in pts.columns else np.full(len(pts), np.nan)
        n = _num(pts["n_scored"]) if "n_scored" in pts.columns else np.full(len(pts), np.nan)
        lat = _num(pts["latency_p95_ms"]) if "latency_p95_ms" in pts.columns else np.full(len(pts), np.nan)
        fig.add_trace(go.Scatter(
            x=_num(pts["cost_per_1k_prompts_usd"]).tolist(),
            y=q.tolist(),
            mode="markers+text",
            text=[str(m) for m in pts["model"]],
            textposition=_label_positions(_num(pts["cost_per_1k_prompts_usd"])),
            cliponaxis=False,  # a label near the edge runs into the margin instead of being cut
            name="models",
            marker={"size": 12, "color": "#636efa"},
            error_y={"type": "data", "symmetric": False, "array": _nan_to_none((high - q).tolist()),
                     "arrayminus": _nan_to_none((q - low).tolist()), "thickness": 1.2},
            customdata=np.column_stack([low, high, n, lat]),
            hovertemplate=("model: %{text}<br>quality: %{y:.3f} (95% CI %{customdata[0]:.3f}–%{customdata[1]:.3f},"
                           " n=%{customdata[2]})<br>cost: $%{x:,.4f} per 1,000 prompts"
                           "<br>p95 latency: %{customdata[3]:,.0f} ms<extra></extra>"),
            meta="models",
        ))
        front = analysis.pareto_frontier(pts)
        fig.add_trace(go.Scatter(
            x=_num(front["cost_per_1k_prompts_usd"]).tolist(), y=_num(front["quality"]).tolist(),
            mode="lines", name="Pareto frontier", line={"dash": "dot", "color": "#444"},
            text=[str(m) for m in front["model"]],
            hovertemplate="frontier: %{text}<br>quality %{y:.3f}<br>$%{x:,.4f} per 1,000 prompts<extra></extra>",
            meta="frontier",
        ))
    if tolerance_curve is not None and len(tolerance_curve):
        analysis._require(tolerance_curve, ("tolerance", "quality", "cost_per_1k_prompts_usd"), "tolerance_curve")
        tc = tolerance_curve.sort_values("tolerance")
        fig.add_trace(go.Scatter(
            x=_num(tc["cost_per_1k_prompts_usd"]).tolist(), y=_num(tc["quality"]).tolist(),
            mode="lines+markers", name="routing as tolerance varies", line={"color": "#00a07a"},
            marker={"size": 6}, customdata=_num(tc["tolerance"]).reshape(-1, 1),
            hovertemplate=("tolerance: %{customdata[0]:.3f}<br>quality %{y:.3f}<br>$%{x:,.4f} per 1,000 prompts"
                           "<extra></extra>"),
            meta="tolerance",
        ))
    if routing_projection:
        rq = routing_projection.get("quality")
        rc = routing_projection.get("cost_per_1k_prompts_usd")
        if rq is not None and rc is not None and not (math.isnan(float(rq)) or math.isnan(float(rc))):
            savings = routing_projection.get("savings_pct")
            lat = routing_projection.get("latency_p95_ms")
            fig.add_trace(go.Scatter(
                x=[float(rc)], y=[float(rq)], mode="markers+text", name="routing table (projected)",
                # below and away from the centre: the models' labels sit above their points
                text=["routing table"], cliponaxis=False,
                textposition=("bottom left" if not pts.empty and float(rc) > float(np.nanmedian(
                    _num(pts["cost_per_1k_prompts_usd"]))) else "bottom right"),
                marker={"symbol": "star", "size": 18, "color": "#00a07a", "line": {"width": 1, "color": "#fff"}},
                customdata=[[_float_or_nan(savings), _float_or_nan(lat)]],
                hovertemplate=("routing table (projected)<br>quality %{y:.3f}<br>$%{x:,.4f} per 1,000 prompts"
                               "<br>savings vs best single model: %{customdata[0]:.1f}%"
                               "<br>p95 latency: %{customdata[1]:,.0f} ms<extra></extra>"),
                meta="routing",
            ))
    left_out = [str(m) for m in s.loc[~placed, "model"]]
    if left_out:
        fig.add_annotation(text="not placed (unknown price or no quality score): " + html.escape(", ".join(left_out)),
                           xref="paper", yref="paper", x=0, y=-0.2, xanchor="left", showarrow=False,
                           font={"color": "#a15c00"})
    if pts.empty:
        _empty_note(fig, "no model has both a quality score and a known price")
    xs = _num(pts["cost_per_1k_prompts_usd"]) if not pts.empty else np.array([])
    if xs.size and xs.min() > 0 and xs.max() / xs.min() >= 10:
        lo, hi = math.log10(float(xs.min())), math.log10(float(xs.max()))
        pad = max(0.1, 0.12 * (hi - lo))
        fig.update_xaxes(type="log", range=[lo - pad, hi + pad])  # room for the end points' labels
    elif xs.size:
        lo, hi = float(xs.min()), float(xs.max())
        pad = 0.12 * (hi - lo) if hi > lo else max(abs(hi) * 0.2, 1e-6)
        fig.update_xaxes(range=[lo - pad, hi + pad])
    fig.update_layout(template=_TEMPLATE, title="Quality vs cost", height=500, margin={"b": 110, "r": 40},
                      xaxis_title="USD per 1,000 prompts", yaxis_title="quality (95% CI)",
                      yaxis={"range": [-0.05, 1.08]})
    return fig


def _label_positions(xs: np.ndarray) -> list[str]:
    """Text positions for point labels: the left-most point's label to its right, the right-most to its left (so
    neither runs off the plot), the others centred above."""
    if xs.size <= 1:
        return ["top center"] * int(xs.size)
    order = np.argsort(xs)
    pos = ["top center"] * xs.size
    pos[int(order[0])] = "top right"
    pos[int(order[-1])] = "top left"
    return pos


def _float_or_nan(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def quality_heatmap(summary: pd.DataFrame) -> go.Figure:
    """Quality per model (rows) and category (columns).

    Args:
        summary: a :func:`llmlab.analysis.summarize` frame by (model, category).

    Returns:
        A Figure with one heatmap trace: ``z`` = ``summary.pivot(index="model", columns="category",
        values="quality")`` (rows and columns sorted; NaN = unscored), quality in [0, 1]; hover gives the 95 %
        interval and the number of scored calls (``n_scored``).

    Raises:
        llmlab.analysis.ResultsFrameError: a column is missing.
    """
    analysis._require(summary, ("model", "category", "quality"), "summary")
    go = _go()
    fig = go.Figure()
    if summary.empty:
        return _empty_note(fig.update_layout(template=_TEMPLATE, title="Quality by model and category"),
                           "no results")

    def pivot(col: str) -> pd.DataFrame:
        values = summary[col] if col in summary.columns else pd.Series(np.nan, index=summary.index)
        frame = summary[["model", "category"]].assign(_v=pd.to_numeric(values, errors="coerce"))
        p = frame.pivot(index="model", columns="category", values="_v")
        return p.reindex(index=sorted(p.index, key=str), columns=sorted(p.columns, key=str))

    z = pivot("quality")
    low, high = pivot("quality_ci_low"), pivot("quality_ci_high")
    n = pivot("n_scored" if "n_scored" in summary.columns else "n")
    custom = np.dstack([n.to_numpy(dtype=float), low.to_numpy(dtype=float), high.to_numpy(dtype=float)])
    fig.add_trace(go.Heatmap(
        z=z.to_numpy(dtype=float),
        x=[str(c) for c in z.columns],
        y=[str(m) for m in z.index],
        zmin=0, zmax=1, colorscale="Viridis", colorbar={"title": {"text": "quality"}},
        customdata=custom,
        texttemplate="%{z:.2f}",
        hovertemplate=("model: %{y}<br>category: %{x}<br>quality: %{z:.3f}"
                       "<br>95% CI: %{customdata[1]:.3f}–%{customdata[2]:.3f}<br>n: %{customdata[0]}<extra></extra>"),
        hoverongaps=False,
    ))
    if z.isna().all().all():
        _empty_note(fig, "no quality scores in this run")
    fig.update_layout(template=_TEMPLATE, title="Quality by model and category", height=120 + 40 * len(z.index) + 80,
                      xaxis={"title": "category", "type": "category"},
                      yaxis={"title": "model", "type": "category", "autorange": "reversed"})
    return fig


def error_chart(results: pd.DataFrame) -> go.Figure:
    """Reliability per model: error rate by error type, retries, fallbacks and cache hits.

    Args:
        results: a results frame.

    Returns:
        When no call failed, retried, fell back or hit the cache: a short Figure with one line saying so (no
        traces). Otherwise a Figure with three panels. Left: stacked bars, one trace per error type (``meta = {"panel":
        "errors", "error_type": t}``), x = models, y = share of the model's calls that failed with that type
        (stacked through ``base``).
        Middle: ``retries`` per model (``meta = {"panel": "retries"}``, provider requests beyond the first,
        count). Right: ``fallback_rate`` and ``cache_hit_rate`` per model (``meta = {"panel": "rates",
        "metric": ...}``), shares in [0, 1].

    Raises:
        llmlab.analysis.ResultsFrameError: a column is missing.
    """
    go = _go()
    breakdown = analysis.error_breakdown(results)
    sm = analysis.summarize_models(results)
    models = [m for m in sm["model"]]
    quiet = (breakdown.empty and not _num(sm["retries"]).any()
             and not np.nan_to_num(_num(sm["fallback_rate"])).any() and not np.nan_to_num(_num(sm["cache_hit_rate"])).any())
    if quiet:  # nothing to draw: one line instead of three empty panels
        fig = go.Figure()
        fig.add_annotation(text=f"no failed calls, retries, fallbacks or cache hits in {int(_num(sm['n']).sum())} calls",
                           xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False, font={"color": "#444", "size": 14},
                           name="nothing-failed")
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        fig.update_layout(template=_TEMPLATE, title="Errors, retries, fallbacks and cache", height=160)
        return fig
    fig = _subplots(rows=1, cols=3, column_widths=[0.4, 0.3, 0.3], horizontal_spacing=0.08,
                    subplot_titles=("Error rate by type", "Retries (extra requests)", "Fallback and cache-hit rate"))
    base = np.zeros(len(models))
    for error_type in sorted(pd.unique(breakdown["error_type"]), key=str):
        b = breakdown[breakdown["error_type"] == error_type].set_index("model").reindex(models)
        share = _num(b["share"].fillna(0))
        fig.add_trace(go.Bar(
            x=list(models), y=share.tolist(), base=base.tolist(), name=str(error_type), offsetgroup="errors",
            customdata=np.column_stack([
                np.full(len(models), str(error_type), dtype=object),
                _num(b["n"].fillna(0)), _num(b["n_calls"].fillna(0))]),
            hovertemplate=("model: %{x}<br>error: %{customdata[0]}<br>%{customdata[1]} of %{customdata[2]} calls"
                           " (%{y:.1%})<extra></extra>"),
            meta={"panel": "errors", "error_type": error_type},
        ), row=1, col=1)
        base = base + share
    if breakdown.empty:
        fig.add_annotation(text="no failed calls", xref="x domain", yref="y domain", x=0.5, y=0.5,
                           showarrow=False, font={"color": "#666"})
    fig.add_trace(go.Bar(
        x=list(models), y=_num(sm["retries"]).tolist(), name="retries", marker_color="#7f7f7f",
        customdata=_num(sm["n"]).reshape(-1, 1),
        hovertemplate="model: %{x}<br>retries: %{y} over %{customdata[0]} calls<extra></extra>",
        meta={"panel": "retries"},
    ), row=1, col=2)
    for metric, label, color in (("fallback_rate", "fallback rate", "#ff7f0e"),
                                 ("cache_hit_rate", "cache-hit rate", "#17becf")):
        fig.add_trace(go.Bar(
            x=list(models), y=_nan_to_none(_num(sm[metric]).tolist()), name=label, marker_color=color,
            hovertemplate=f"{label}" + "<br>model: %{x}<br>%{y:.1%}<extra></extra>",
            meta={"panel": "rates", "metric": metric},
        ), row=1, col=3)
    fig.update_yaxes(tickformat=".0%", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(rangemode="tozero", row=1, col=2)
    fig.update_yaxes(tickformat=".0%", range=[0, 1], row=1, col=3)
    fig.update_layout(template=_TEMPLATE, title="Errors, retries, fallbacks and cache", barmode="group",
                      height=460)
    return fig


def run_comparison_chart(comparison: pd.DataFrame, label_a: str = "run A", label_b: str = "run B") -> go.Figure:
    """Two runs side by side per model: quality, median latency and cost per 1,000 prompts.

    Args:
        comparison: a :func:`llmlab.analysis.compare_runs` frame.
        label_a, label_b: legend names of the two runs.

    Returns:
        A Figure with three panels (quality in [0, 1], p50 latency in ms, USD per 1,000 prompts), each with
        two bar traces (``meta = {"panel": "quality"|"latency"|"cost", "run": "a"|"b"}``), x = the
        comparison's ``model`` labels; hover adds the delta (b - a), matched calls and changed answers.

    Raises:
        llmlab.analysis.ResultsFrameError: a column is missing.
    """
    analysis._require(comparison, ("model", "quality_a", "quality_b", "latency_p50_ms_a", "latency_p50_ms_b",
                                   "cost_per_1k_prompts_usd_a", "cost_per_1k_prompts_usd_b"), "comparison")
    go = _go()
    fig = _subplots(rows=1, cols=3, horizontal_spacing=0.08,
                    subplot_titles=("Quality", "Median latency (ms)", "USD per 1,000 prompts"))
    labels = [str(m) for m in comparison["model"]]
    n_matched = _num(comparison["n_matched"]) if "n_matched" in comparison.columns else np.full(len(labels), np.nan)
    n_changed = _num(comparison["n_changed"]) if "n_changed" in comparison.columns else np.full(len(labels), np.nan)
    panels = (("quality", "quality", 1, ".3f"), ("latency", "latency_p50_ms", 2, ",.0f"),
              ("cost", "cost_per_1k_prompts_usd", 3, ",.4f"))
    for panel, base, col, fmt in panels:
        a, b = _num(comparison[f"{base}_a"]), _num(comparison[f"{base}_b"])
        delta = b - a
        for run, values, label, color in (("a", a, label_a, "#9aa5ff"), ("b", b, label_b, "#ef553b")):
            fig.add_trace(go.Bar(
                x=labels, y=_nan_to_none(values.tolist()), name=str(label), legendgroup=run,
                showlegend=(panel == "quality"), marker_color=color,
                customdata=np.column_stack([delta, n_matched, n_changed]) if labels else None,
                hovertemplate=(f"%{{x}}<br>%{{y:{fmt}}}<br>delta (b - a): %{{customdata[0]:+{fmt}}}"
                               "<br>matched calls: %{customdata[1]}<br>changed answers: %{customdata[2]}"
                               "<extra>%{fullData.name}</extra>"),
                meta={"panel": panel, "run": run},
            ), row=1, col=col)
    if comparison.empty:
        _empty_note(fig, "no calls matched between the two runs")
    fig.update_yaxes(range=[0, 1.05], row=1, col=1)
    fig.update_layout(template=_TEMPLATE, title="Run comparison", barmode="group", height=460)
    return fig
