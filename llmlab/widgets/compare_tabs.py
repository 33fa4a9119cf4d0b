"""The comparison view's Charts and Routing tabs (:class:`llmlab.widgets.compare.CompareView` inherits them):
the charts built on demand from the view's results, the routing table for the tab's settings with its
projection, and the export of that table as a LiteLLM config. The widgets these methods fill (``charts_output``,
``routing_html``, ``projection_html``, ``export_button``, ``export_path``, ``export_status``) and the data they
read (``results``, ``meta``, ``models``, ``run_id``) are built by the view."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import pandas as pd

from llmlab.errors import LLMLabError, RoutingError
from llmlab.widgets.cells import _esc, _figure_output, _text_output
from llmlab.widgets.routing_tab import projection_html, routing_table_html

__all__ = ["ChartsAndRouting"]

log = logging.getLogger("llmlab.widgets.compare")


_warm_started = threading.Event()


def _warm_chart_imports() -> None:
    """Import what the Charts tab needs (plotly, the plots module, scipy.special) in a daemon thread when a view
    opens, so the first tab click does not wait for it. Python's import lock makes a click that arrives first wait
    for the same import, never import twice."""
    if _warm_started.is_set():
        return
    _warm_started.set()

    def _imports() -> None:
        try:
            import plotly.graph_objects as go
            import plotly.subplots  # noqa: F401
            import scipy.special  # noqa: F401

            import llmlab.views.plots  # noqa: F401

            # plotly loads its validators and templates on first use: one throw-away figure loads them
            go.Figure(go.Bar(x=[0], y=[0])).update_layout(template="plotly_white")
        except Exception:  # noqa: BLE001 - a warm-up failing is only a slower first click
            log.debug("chart warm-up failed", exc_info=True)

    threading.Thread(target=_imports, name="llmlab-chart-warmup", daemon=True).start()



class ChartsAndRouting:
    """The Charts and Routing tabs' behaviour (a mixin of :class:`~llmlab.widgets.compare.CompareView`)."""

    def _summary_source(self: Any, results: pd.DataFrame) -> Any:
        """What the tabs summarize: a view opened on a stored run (not live) summarizes that run in DuckDB (its
        ratings are saved there first: the same figures, without aggregating the rows in pandas); any other view
        its results frame."""
        if getattr(self, "_stored_run", False) and not self._live and self.store is not None and self.run_id:
            from llmlab.runner.handle import RunResult

            return RunResult(self.run_id, self.store)
        return results

    # -- charts ---------------------------------------------------------------------------------------
    def render_charts(self: Any) -> dict[str, Any]:
        """Build the comparison charts and put them in :attr:`charts_output`; returns ``{title: Figure}``.

        A chart that cannot be built (for example nothing scored yet) is replaced by a line of text saying why.
        """
        results = self.results
        figs: dict[str, Any] = {}
        outputs: list[dict[str, Any]] = []
        if len(results) == 0:
            outputs.append(_text_output("no results yet"))
        else:
            from llmlab.analysis import summarize
            from llmlab.views import plots

            source = self._summary_source(results)
            projection = self.projection
            if projection is None and self._routing_dirty:
                self.update_routing()
                projection = self.projection
            by_category: list[Any] = []  # the per model x category summary, computed once for the two charts

            def per_category() -> Any:
                if not by_category:
                    by_category.append(summarize(source, by=("model", "category")))
                return by_category[0]

            builders = [
                ("quality vs cost", lambda: plots.quality_vs_cost(summarize(source, by=("model",)),
                                                                  routing_projection=projection)),
                ("quality by category", lambda: plots.quality_heatmap(per_category())),
                ("latency", lambda: plots.latency_distribution(results)),
                ("cost", lambda: plots.cost_chart(per_category())),
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
    def routing_table(self: Any) -> pd.DataFrame | None:
        """The routing table for the current settings (:func:`llmlab.routing.routing_table` columns), or None
        when none can be derived (:attr:`routing_error` says why)."""
        if self._routing_dirty:
            self.update_routing()
        return self._routing_table

    def routing_kwargs(self: Any) -> dict[str, Any]:
        """The :func:`llmlab.routing.routing_table` arguments the routing tab's settings give."""
        limit = float(self.latency_limit.value or 0)
        return {"tolerance": float(self.tolerance.value), "max_latency_p95_ms": limit if limit > 0 else None,
                "min_n": int(self.min_samples.value)}

    def update_routing(self: Any) -> pd.DataFrame | None:
        """Recompute the routing table and its projection from the view's results; redraw the routing tab."""
        from llmlab.routing import project, routing_table

        results = self.results
        try:
            if len(results) == 0:
                raise RoutingError("no results yet")
            table = routing_table(self._summary_source(results), **self.routing_kwargs())
            proj = project(table, results)
        except (LLMLabError, ValueError, KeyError) as exc:
            self._routing_table, self.projection, self.routing_error = None, None, str(exc)
            self.routing_html.value = f'<div style="color:#a50e0e">no routing table: {_esc(exc)}</div>'
            self.projection_html.value = ""
            self.export_button.disabled = True
        else:
            self._routing_table, self.projection, self.routing_error = table, proj, None
            self.routing_html.value = routing_table_html(table)
            self.projection_html.value = projection_html(proj)
            self.export_button.disabled = False
        self._routing_dirty = False
        return self._routing_table

    def export(self: Any, path: str | os.PathLike[str] | None = None) -> Path:
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

    def _on_export(self: Any) -> None:
        try:
            self.export()
        except (LLMLabError, OSError, ValueError) as exc:
            self.export_status.value = f'<span style="color:#a50e0e">not written: {_esc(exc)}</span>'
