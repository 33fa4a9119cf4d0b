"""``llmlab.compare(run_a, other=run_b)``: two runs side by side (the widgets' compare-two-runs view).

The figures are :func:`llmlab.analysis.compare_runs` (calls matched on ``prompt_id, sample_index`` and model) and,
for each model present in both runs, :func:`llmlab.analysis.paired.compare_runs_paired` (a paired test on the
prompts both runs scored: the difference with its bootstrap interval and p-value). The view shows

- two run pickers (``run_a``, ``run_b``: every run of the store, newest first) and ``swap_button``;
- ``summary_html``: one row per model (pair): matched calls, quality A → B with the paired difference, its
  95 % interval and whether it is significant, median latency (ms), cost per 1,000 prompts (USD), error rates and
  changed answers;
- ``chart_output``: :func:`llmlab.views.plots.run_comparison_chart`;
- ``changed_html``: up to ``max_changed`` prompts per model whose answer changed, A and B side by side.

Everything user- or model-supplied (answers, prompts, run names, model ids) is escaped text, never markup.
"""

from __future__ import annotations

import math
from typing import Any

import ipywidgets as W
import pandas as pd

from llmlab.errors import LLMLabError
from llmlab.widgets.cells import _LH, _NO_MATH, _esc, _figure_output, _fmt_ms, _fmt_usd, _pre, _text_output

__all__ = ["RunDiffView", "compare_two_runs"]


def _q(v: Any) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{float(v):.3f}"


def _pct(v: Any) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{float(v):.0%}"


class RunDiffView(W.VBox):
    """Two recorded runs compared (see the module docstring).

    Data attributes: ``store``, ``comparison`` (the :func:`compare_runs` frame), ``paired`` ({model: the one-row
    :func:`compare_runs_paired` frame, or an error message}), ``results_a`` / ``results_b`` (results frames),
    ``changed`` ({model label: [(prompt_id, prompt, answer A, answer B), ...]}).
    """

    def __init__(self, run_a: str, run_b: str, *, store: Any, max_changed: int = 5) -> None:
        self.store, self.max_changed = store, max_changed
        runs = store.runs()
        options = [(f"{name or rid} · {rid}", rid) for rid, name in zip(runs["run_id"], runs["name"], strict=True)]
        dd = W.Layout(width="420px")
        self.run_a = W.Dropdown(options=options, value=run_a, description="run A", layout=dd)
        self.run_b = W.Dropdown(options=options, value=run_b, description="run B", layout=dd)
        self.swap_button = W.Button(description="⇄ swap", layout=W.Layout(width="80px"))
        self.summary_html = W.HTML()
        self.chart_output = W.Output()
        self.changed_html = W.HTML()
        self.comparison: pd.DataFrame | None = None
        self.paired: dict[str, Any] = {}
        self.changed: dict[str, list[tuple[Any, Any, Any, Any]]] = {}
        self._holding = False
        self.swap_button.on_click(lambda _b: self.swap())
        for w in (self.run_a, self.run_b):
            w.observe(self._on_pick, names="value")
        super().__init__([W.HBox([self.run_a, self.run_b, self.swap_button]), self.summary_html, self.chart_output,
                          self.changed_html])
        self.refresh()

    def swap(self) -> None:
        """Run A becomes run B and the other way round (one refresh)."""
        self._holding = True
        try:
            self.run_a.value, self.run_b.value = self.run_b.value, self.run_a.value
        finally:
            self._holding = False
        self.refresh()

    def _on_pick(self, _change: Any) -> None:
        if not self._holding:
            self.refresh()

    def refresh(self) -> None:
        """Recompute every figure for the picked runs."""
        from llmlab.analysis import compare_runs
        from llmlab.analysis.paired import compare_runs_paired
        from llmlab.views.plots import run_comparison_chart

        self.results_a = self.store.results(self.run_a.value)
        self.results_b = self.store.results(self.run_b.value)
        self.comparison = comparison = compare_runs(self.results_a, self.results_b)
        self.paired = {}
        for row in comparison.to_dict("records"):
            try:
                self.paired[row["model"]] = compare_runs_paired(
                    self.results_a, self.results_b, by=None, model_a=row["model_a"], model_b=row["model_b"],
                    n_boot=1000)
            except LLMLabError as exc:
                self.paired[row["model"]] = str(exc)
        self.summary_html.value = self._summary()
        fig = run_comparison_chart(comparison, label_a="run A", label_b="run B")
        self.chart_output.outputs = (_figure_output(fig, "Run comparison"),) if len(comparison) else (
            _text_output("no calls matched between the two runs\n"),)
        self.changed = self._changed_answers()
        self.changed_html.value = self._changed()

    def _summary(self) -> str:
        assert self.comparison is not None
        head = ("model", "matched", "quality A → B", "B − A [95% CI]", "p50 A → B", "cost / 1k A → B",
                "errors A → B", "changed")
        out = [f'<div class="llmlab-run-diff {_NO_MATH}" style="{_LH}">',
               f"<b>run A</b> {_esc(self.run_a.value)} · <b>run B</b> {_esc(self.run_b.value)}",
               '<table style="border-collapse:collapse;font-size:12px"><tr>'
               + "".join(f'<th style="text-align:left;padding:2px 8px">{h}</th>' for h in head) + "</tr>"]
        for row in self.comparison.to_dict("records"):
            paired = self.paired.get(row["model"])
            if isinstance(paired, pd.DataFrame) and len(paired):
                p = paired.iloc[-1]
                diff = -float(p["diff"])  # compare_runs_paired gives A − B; the view reads B − A
                sig = " ✱" if bool(p["significant"]) else ""
                delta = f"{diff:+.3f} [{-float(p['ci_high']):+.3f}, {-float(p['ci_low']):+.3f}] p={float(p['p_value']):.2g}{sig}"
            else:
                delta = _esc(paired) if isinstance(paired, str) else "–"
            cells = (_esc(row["model"]), f"{int(row['n_matched']):,}",
                     f"{_q(row['quality_a'])} → {_q(row['quality_b'])}", delta,
                     f"{_fmt_ms(row['latency_p50_ms_a'])} → {_fmt_ms(row['latency_p50_ms_b'])}",
                     f"{_fmt_usd(row['cost_per_1k_prompts_usd_a'])} → {_fmt_usd(row['cost_per_1k_prompts_usd_b'])}",
                     f"{_pct(row['error_rate_a'])} → {_pct(row['error_rate_b'])}", f"{int(row['n_changed']):,}")
            out.append("<tr>" + "".join(f'<td style="padding:2px 8px">{c}</td>' for c in cells) + "</tr>")
        out.append("</table>")
        out.append('<div style="color:#5f6368;font-size:11px">paired on the prompts both runs scored; ✱ significant '
                   "at 5 % (McNemar for pass/fail, Wilcoxon for graded scores)</div></div>")
        return "".join(out)

    def _changed_answers(self) -> dict[str, list[tuple[Any, Any, Any, Any]]]:
        assert self.comparison is not None
        keys = ["prompt_id", "sample_index"]
        cols = [*keys, "model", "prompt", "response", "status"]
        a = self.results_a[[c for c in cols if c in self.results_a.columns]]
        b = self.results_b[[c for c in cols if c in self.results_b.columns]]
        out: dict[str, list[tuple[Any, Any, Any, Any]]] = {}
        for row in self.comparison.to_dict("records"):
            m = a[a["model"] == row["model_a"]].merge(b[b["model"] == row["model_b"]], on=keys, suffixes=("_a", "_b"))
            ra = m["response_a"].where(m["status_a"] == "ok")
            rb = m["response_b"].where(m["status_b"] == "ok")
            diff = m[(ra.fillna("\0none") != rb.fillna("\0none"))]
            out[row["model"]] = [(r["prompt_id"], r.get("prompt_a"), r["response_a"] if r["status_a"] == "ok" else
                                  f"(error) {r['response_a'] or ''}", r["response_b"] if r["status_b"] == "ok" else
                                  f"(error) {r['response_b'] or ''}")
                                 for r in diff.head(self.max_changed).to_dict("records")]
        return out

    def _changed(self) -> str:
        parts = [f'<div class="{_NO_MATH}" style="{_LH}">']
        for model, items in self.changed.items():
            if not items:
                continue
            parts.append(f"<div style=\"margin:8px 0 2px 0\"><b>{_esc(model)}: answers that changed (first "
                         f"{len(items)})</b></div>")
            for pid, prompt, ans_a, ans_b in items:
                parts.append(f"<div><b>{_esc(pid)}</b> {_esc(prompt)}</div>"
                             '<div style="display:grid;grid-template-columns:1fr 1fr;gap:6px">'
                             f"<div>A{_pre(ans_a, max_height='10em')}</div><div>B{_pre(ans_b, max_height='10em')}</div></div>")
        parts.append("</div>")
        return "".join(parts)


def compare_two_runs(run_a: Any, run_b: Any, *, store: Any = None, max_changed: int = 5) -> RunDiffView:
    """The compare-two-runs view. ``run_a`` / ``run_b``: RunResults, run ids, unique id prefixes or names (``"last"``
    for the newest). Raises StoreError (RunNotFoundError when a run is not in the store)."""
    from llmlab.store import Store

    store = store or getattr(run_a, "store", None) or Store()
    ids = [store.resolve_run(getattr(r, "run_id", r)) for r in (run_a, run_b)]
    return RunDiffView(ids[0], ids[1], store=store, max_changed=max_changed)
