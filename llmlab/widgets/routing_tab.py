"""The comparison view's routing tab as HTML: the routing table and its projection (escaped text only)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from llmlab.widgets.cells import _LH, _NO_MATH, _esc, _fmt_ms, _fmt_usd, _num

__all__ = [
    "projection_html",
    "routing_table_html",
]


def _fmt_int(value: Any) -> str:
    v = _num(value)
    return "–" if v is None else f"{int(v):,}"


def _fmt_score(value: Any) -> str:
    v = _num(value)
    return "–" if v is None else f"{v:.2f}"


def routing_table_html(table: pd.DataFrame) -> str:
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


def projection_html(proj: Mapping[str, Any]) -> str:
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
