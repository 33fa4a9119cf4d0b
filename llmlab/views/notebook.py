"""Figures in a notebook with plotly.js sent once per kernel, so an executed notebook stays small.

plotly's ``"notebook"`` renderer embeds the whole plotly.js bundle (about 4.8 MB) with every ``fig.show()`` in a
freshly executed notebook (nbclient, ``make demo``): three charts made a 15 MB ``.ipynb``. :func:`show` embeds it
with the first figure of the kernel only and refers to it afterwards; each output also carries plotly's own
``application/vnd.plotly.v1+json`` bundle, which JupyterLab renders natively when its plotly extension is present.
Nothing is fetched from a CDN (offline by design), and no MathJax script is added.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "reset",
    "show",
]

_state = {"plotlyjs_sent": False}


def show(fig: Any, *, display: bool = True) -> dict[str, Any]:
    """Display a plotly figure in the current notebook (plotly.js embedded only the first time in this kernel).

    Returns the MIME bundle (``text/html``, ``application/vnd.plotly.v1+json``, ``text/plain``); with
    ``display=False`` only returns it.
    """
    html = fig.to_html(full_html=False, include_plotlyjs=not _state["plotlyjs_sent"], include_mathjax=False,
                       config={"displaylogo": False, "responsive": True})
    _state["plotlyjs_sent"] = True
    title = getattr(getattr(fig.layout, "title", None), "text", None) or "figure"
    bundle = {"text/html": html, "application/vnd.plotly.v1+json": fig.to_plotly_json(),
              "text/plain": f"<plotly figure: {title}>"}
    if display:
        from IPython.display import display as ipy_display

        ipy_display(bundle, raw=True)
    return bundle


def reset() -> None:
    """Forget that plotly.js was sent (a new page, e.g. after the notebook's outputs were cleared)."""
    _state["plotlyjs_sent"] = False
