"""Which model is better, and how sure are we: the report's paired comparison, ranking and judge sections, and
their plotly figures (also used by the pick-two-models widget).

Every value taken from the data (model ids, categories, judge names) is escaped with
:func:`llmlab.views.display.escape`; the figures carry model ids and categories only as JSON data.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from llmlab.views.display import escape

__all__ = [
    "RANKING_CHART_ID",
    "comparison_sections",
    "mdd_text",
    "paired_chart",
    "paired_summary_table",
    "ranking_chart",
    "report_extras",
]


#: The ``id`` of the ranking chart's ``<div>`` in the report.
RANKING_CHART_ID = "chart-ranking"


def _f(value: Any, spec: str, missing: str = "–") -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return missing
    return missing if math.isnan(v) else format(v, spec)


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[bool], table_id: str) -> str:
    parts = [f'<table id="{escape(table_id)}"><thead><tr>' + "".join(f"<th>{escape(h)}</th>" for h in headers)
             + "</tr></thead><tbody>"]
    for row in rows:
        parts.append("<tr>" + "".join(
            ('<td class="num">' if numeric[i] else "<td>") + escape(c) + "</td>" for i, c in enumerate(row))
            + "</tr>")
    return "".join(parts) + "</tbody></table>"


def _section(section_id: str, title: str, body: str, intro: str) -> str:
    return (f'<section id="{escape(section_id)}"><h2>{escape(title)}</h2><p>{escape(intro)}</p>' + body
            + "</section>")


def _chart(fig: Any, div_id: str) -> str:
    return '<div class="chart">' + fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                                               config={"displaylogo": False, "responsive": True}) + "</div>"


def ranking_chart(ranking: pd.DataFrame, title: str = "Ranking (Bradley-Terry)") -> Any:
    """A plotly figure of a Bradley-Terry ranking (``model, score, ci_low, ci_high``; best on top) with the
    intervals as error bars. Scores are log-odds strengths (a difference of 1 means odds of 2.7 to 1)."""
    import plotly.graph_objects as go

    frame = ranking.sort_values("score", ascending=True, kind="stable")
    score = frame["score"].astype(float)
    fig = go.Figure(go.Scatter(
        x=score, y=frame["model"].astype(str), mode="markers", marker={"size": 11},
        error_x={"type": "data", "symmetric": False, "array": (frame["ci_high"].astype(float) - score).tolist(),
                 "arrayminus": (score - frame["ci_low"].astype(float)).tolist()},
        hovertemplate="%{y}<br>strength %{x:.2f}<extra></extra>", name="strength"))
    fig.update_layout(title=title, xaxis_title="strength (log-odds, 95% bootstrap interval)", yaxis_title=None,
                      height=max(260, 60 * len(frame) + 120), margin={"l": 140}, showlegend=False)
    fig.add_vline(x=0, line_dash="dot", line_color="#999")
    if frame.empty:
        fig.add_annotation(text="no ranking: it needs two models with scored calls", showarrow=False,
                           xref="paper", yref="paper", x=0.5, y=0.5)
    return fig


def paired_chart(comparison: pd.DataFrame) -> Any:
    """A plotly figure of :func:`llmlab.analysis.compare_models`'s rows: ``diff`` per group with its interval,
    filled markers where ``significant``."""
    import plotly.graph_objects as go

    group = comparison.columns[0]
    labels = comparison[group].astype(str)
    diff = comparison["diff"].astype(float)
    sig = comparison["significant"].astype(bool) if "significant" in comparison else pd.Series(False,
                                                                                               index=comparison.index)
    a, b = str(comparison["model_a"].iloc[0]), str(comparison["model_b"].iloc[0])
    fig = go.Figure(go.Scatter(
        x=diff, y=labels, mode="markers",
        marker={"size": 11, "symbol": ["circle" if s else "circle-open" for s in sig]},
        error_x={"type": "data", "symmetric": False, "array": (comparison["ci_high"].astype(float) - diff).tolist(),
                 "arrayminus": (diff - comparison["ci_low"].astype(float)).tolist()},
        customdata=comparison[["p_value", "p_adjusted", "n"]].to_numpy(),
        hovertemplate="%{y}: %{x:+.3f}<br>p %{customdata[0]:.3g}, Holm %{customdata[1]:.3g}, n %{customdata[2]}"
                      "<extra></extra>"))
    fig.add_vline(x=0, line_dash="dot", line_color="#999")
    fig.update_layout(title=f"{a} − {b}: quality difference (filled: significant after Holm)",
                      xaxis_title="difference in quality (95% paired bootstrap interval)", yaxis_title=None,
                      height=max(260, 40 * len(labels) + 140), margin={"l": 140}, showlegend=False)
    return fig


def mdd_text(mdd: Any, n_discordant: Any) -> str:
    """The smallest detectable difference as shown: a number, ``none at this n`` when even the largest
    difference the observed disagreements allow would go undetected, ``–`` when the two never disagree."""
    text = _f(mdd, ".3f")
    if text == "–":
        return "none at this n" if _f(n_discordant, ".0f") not in ("–", "0") else "– (never disagree)"
    return text


def paired_summary_table(ps: pd.DataFrame) -> str:
    """The HTML table of :func:`llmlab.analysis.paired_summary` (escaped)."""
    headers = ["category", "best", "runner-up", "n", "quality", "difference", "95% CI", "p (Holm)",
               "smallest detectable", "prompts needed", "decided"]
    rows = []
    for r in ps.itertuples(index=False):
        rows.append([r.category, r.model_a, r.model_b, r.n, f"{_f(r.quality_a, '.3f')} vs {_f(r.quality_b, '.3f')}",
                     _f(r.diff, "+.3f"), f"{_f(r.ci_low, '+.3f')} … {_f(r.ci_high, '+.3f')}",
                     _f(r.p_adjusted, ".3g"), mdd_text(r.mdd, r.n_discordant), _f(r.prompts_needed, ",.0f"),
                     "yes" if r.decided else "no: cannot tell apart"])
    return _table(headers, rows, [False, False, False, True, True, True, True, True, True, True, False],
                  "paired-summary-table")


def comparison_sections(results: pd.DataFrame, *, ranking: pd.DataFrame | None = None,
                        ranking_source: str = "per-prompt quality", judges: pd.DataFrame | None = None,
                        bias: pd.DataFrame | None = None) -> str:
    """The report's sections: paired comparison per category, ranking chart, judges beside their human agreement.

    Args:
        results: the run's results frame.
        ranking: a Bradley-Terry frame (default: from per-prompt quality, :func:`llmlab.analysis.pairs_from_results`).
        ranking_source: what the ranking was fitted on (shown in the text).
        judges: :func:`llmlab.analysis.judge_overview` (omitted when None or empty).
        bias: :func:`llmlab.analysis.verdicts.position_bias` rows of the pairwise judges (omitted when None).

    Returns:
        HTML: sections ``paired`` (left out with fewer than two scored models), ``ranking`` (always: its chart
        says when there is nothing to rank) and, with judges, ``judges``.
    """
    from llmlab import analysis
    from llmlab.errors import AnalysisError

    parts = []
    try:
        ps = analysis.paired_summary(results, n_boot=500)
    except AnalysisError:
        ps = None
    if ps is not None and len(ps):
        parts.append(_section(
            "paired", "Paired comparison: best against runner-up", paired_summary_table(ps),
            "Per category, the best model against the runner-up on the same prompts: the difference with a 95% "
            "paired bootstrap interval, exact McNemar (pass/fail) or Wilcoxon (graded) p-values Holm-adjusted "
            "across categories, the smallest difference these prompts would detect with 80% power, and the "
            "prompts a paired test would need to detect the observed difference."))
    if ranking is None:
        try:
            ranking = analysis.bradley_terry(analysis.pairs_from_results(results), n_boot=200)
        except AnalysisError:
            ranking = None
    if ranking is None:
        ranking = pd.DataFrame(columns=["model", "score", "ci_low", "ci_high", "rank", "n_games", "wins"])
    # the ranking chart is always drawn (an empty one says why), like the report's other charts
    rows = [[int(r.rank), r.model, _f(r.score, "+.2f"), f"{_f(r.ci_low, '+.2f')} … {_f(r.ci_high, '+.2f')}",
             int(r.n_games), _f(r.wins, ",.1f")] for r in ranking.itertuples(index=False)]
    body = _chart(ranking_chart(ranking), RANKING_CHART_ID) + _table(
        ["rank", "model", "strength", "95% CI", "comparisons", "wins"], rows,
        [True, False, True, True, True, True], "ranking-table")
    if bias is not None and len(bias):
        brow = [[b.judge, int(b.n_judged), _f(b.flip_rate, ".1%"), _f(b.first_position_rate, ".1%"),
                 _f(b.p_value, ".3g"), "yes" if b.biased else "no"] for b in bias.itertuples(index=False)]
        body += "<h3>Position bias of the pairwise judge</h3>" + _table(
            ["judge", "pairs judged in both orders", "verdicts that flip with the order", "first shown wins",
             "sign test p", "biased"], brow, [False, True, True, True, True, False], "position-bias-table")
    parts.append(_section(
        "ranking", "Ranking with intervals", body,
        f"Bradley-Terry strengths fitted on {ranking_source} (ties count half), with 95% percentile-bootstrap "
        "intervals; overlapping intervals mean the order is not settled."))
    if judges is not None and len(judges):
        rows = [[j.judge, int(j.n_scored), _f(j.mean_score, ".3f"), int(j.n_with_human), _f(j.kappa, ".2f"),
                 _f(j.weighted_kappa, ".2f"), _f(j.accuracy, ".1%"),
                 "yes: expect self-preference" if j.self_judged else "no"] for j in judges.itertuples(index=False)]
        body = _table(["judge", "calls scored", "mean score", "calls also rated by people", "kappa vs people",
                       "weighted kappa", "pass/fail agreement", "judges itself"], rows,
                      [False, True, True, True, True, True, True, False], "judges-table")
        if judges["self_judged"].any():
            body += ('<p class="warning">A judge is also one of the models it judged: LLM judges tend to favour '
                     "their own answers, so its scores of itself are suspect.</p>")
        parts.append(_section(
            "judges", "LLM judges checked against people", body,
            "Each judge's scores beside its agreement with the human ratings of the same calls (Cohen's kappa "
            "on pass/fail, quadratically weighted kappa on grades; scikit-learn). No human rating: no check."))
    return "".join(parts)


def report_extras(store: Any, run_id: str, results: pd.DataFrame) -> dict[str, Any]:
    """The keyword arguments :func:`comparison_sections` takes, read from the store for a run: the pairwise
    judge's ranking and position bias when the run was judged pairwise (its latest judge), else none (the
    ranking then comes from per-prompt quality), and the judge overview when the run has judge scores."""
    from llmlab.analysis import judge_overview

    extras: dict[str, Any] = {}
    verdicts = store.pairwise(run_id)
    if len(verdicts):
        from llmlab.analysis.verdicts import pairwise_ranking, position_bias

        judge = verdicts.sort_values("created_at_utc")["judge"].iloc[-1]
        mine = verdicts[verdicts["judge"] == judge]
        if mine["winner"].notna().any():
            extras["ranking"] = pairwise_ranking(mine, n_boot=200)
            extras["ranking_source"] = f"the pairwise judge {judge}'s verdicts (both orders)"
        extras["bias"] = position_bias(mine)
    scores = store.scores(run_id)
    if len(scores) and (scores["kind"] == "judge").any():
        extras["judges"] = judge_overview(scores, models=sorted(set(results["model"].astype(str))))
    return extras
