"""The pick-two-models view: is A better than B, per category, and how sure are we (a tab of ``llmlab.compare``).

Pick two models; the view shows :func:`llmlab.analysis.compare_models` per category (difference with a 95%
paired bootstrap interval, McNemar / Wilcoxon p-value, Holm-adjusted), the smallest difference those prompts
detect, and a chart of the differences. The state is data: :attr:`PairsView.comparison` is the frame shown.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as W
import pandas as pd

from llmlab.errors import LLMLabError
from llmlab.views.comparisons import mdd_text
from llmlab.widgets.cells import _esc, _figure_output, _text_output

log = logging.getLogger(__name__)

__all__ = ["TAB_TITLES", "PairsView", "pairs_table_html"]

#: The titles of the comparison view's tabs (``llmlab.compare``); the last one is this view.
TAB_TITLES: tuple[str, ...] = ("Answers", "Charts", "Routing", "Pick two")


def _f(value: Any, spec: str) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "–"
    return "–" if math.isnan(v) else format(v, spec)


def pairs_table_html(comparison: pd.DataFrame) -> str:
    """An escaped HTML table of a :func:`~llmlab.analysis.compare_models` frame (plus ``mdd`` when present)."""
    head = ["category", "n", "quality A", "quality B", "A − B", "95% CI", "p", "p (Holm)", "discordant",
            "smallest detectable", "verdict"]
    rows = []
    for r in comparison.to_dict("records"):
        verdict = (("A better" if r["diff"] > 0 else "B better") if r.get("significant") else "cannot tell apart")
        cells = [r["category"], r["n"], _f(r["quality_a"], ".3f"), _f(r["quality_b"], ".3f"), _f(r["diff"], "+.3f"),
                 f"{_f(r['ci_low'], '+.3f')} … {_f(r['ci_high'], '+.3f')}", _f(r["p_value"], ".3g"),
                 _f(r["p_adjusted"], ".3g"), r["n_discordant"], mdd_text(r.get("mdd"), r["n_discordant"]), verdict]
        rows.append("<tr>" + "".join(f'<td style="padding:2px 8px">{_esc(c)}</td>' for c in cells) + "</tr>")
    return ('<table class="llmlab-pairs" style="border-collapse:collapse;font-size:12px">'
            + "<tr>" + "".join(f'<th style="padding:2px 8px;text-align:left">{_esc(h)}</th>' for h in head) + "</tr>"
            + "".join(rows) + "</table>")


class PairsView(W.VBox):
    """Pick two models, see their paired comparison per category.

    Args:
        results: a callable returning the current results frame (the comparison view's), or a frame.
        models: the models to offer (default: those in the results).

    Attributes (widgets and state): model_a, model_b (Dropdowns), compare_button (Button), table_html (HTML),
    chart_output (Output), comparison (DataFrame or None: :func:`llmlab.analysis.compare_models` per category
    and ``(all)``, plus ``mdd``), error (str or None).
    """

    def __init__(self, results: Callable[[], pd.DataFrame] | pd.DataFrame, models: Sequence[str] | None = None,
                 ) -> None:
        super().__init__()
        self._results = results if callable(results) else (lambda: results)
        self.comparison: pd.DataFrame | None = None
        self.error: str | None = None
        options = list(models) if models is not None else self._models()
        self.model_a = W.Dropdown(options=options, value=options[0] if options else None, description="model A")
        self.model_b = W.Dropdown(options=options, value=options[1] if len(options) > 1 else None,
                                  description="model B")
        self.compare_button = W.Button(description="Compare", button_style="primary", layout=W.Layout(width="auto"))
        self.compare_button.on_click(lambda _b: self.update())
        self.table_html = W.HTML()
        self.chart_output = W.Output()
        self.children = [W.HBox([self.model_a, self.model_b, self.compare_button]), self.table_html,
                         self.chart_output]

    def _models(self) -> list[str]:
        frame = self._results()
        if frame is None or len(frame) == 0 or "model" not in frame:
            return []
        return list(dict.fromkeys(str(m) for m in frame["model"].dropna()))

    def refresh_models(self) -> None:
        """Offer the models now in the results (keeps the picks that are still there)."""
        options = self._models()
        a, b = self.model_a.value, self.model_b.value
        self.model_a.options, self.model_b.options = options, options
        self.model_a.value = a if a in options else (options[0] if options else None)
        self.model_b.value = b if b in options else (options[1] if len(options) > 1 else None)

    def update(self) -> pd.DataFrame | None:
        """Compare the picked models and redraw; returns :attr:`comparison` (None with :attr:`error` set when the
        two cannot be compared: the same model, or no prompt scored for both)."""
        from llmlab.analysis import compare_models, minimum_detectable_difference
        from llmlab.views.comparisons import paired_chart  # plotly is imported on first use only

        self.refresh_models()
        a, b = self.model_a.value, self.model_b.value
        results = self._results()
        try:
            if a is None or b is None:
                raise LLMLabError("pick two models")
            comparison = compare_models(results, a, b, by="category", n_boot=1000)
            mdd = []
            for category in comparison["category"]:
                part = results if category == "(all)" else results[results["category"] == category]
                try:
                    mdd.append(minimum_detectable_difference(part, a, b))
                except LLMLabError:
                    mdd.append(math.nan)
            comparison["mdd"] = mdd
        except LLMLabError as exc:
            self.comparison, self.error = None, str(exc)
            self.table_html.value = f'<div style="color:#a50e0e">{_esc(exc)}</div>'
            self.chart_output.outputs = (_text_output(f"no comparison: {exc}"),)
            return None
        self.comparison, self.error = comparison, None
        self.table_html.value = pairs_table_html(comparison)
        self.chart_output.outputs = (_figure_output(paired_chart(comparison), f"{a} vs {b}"),)
        return comparison
