"""The widgets' download button: a run's results as a CSV or JSON file the browser saves.

*Prepare* serializes the results frame with :func:`llmlab.transfer.results_text` (the same bytes as
``llmlab export RUN --csv|--json``) and shows a link ``<a download="<run>.csv" href="data:...;base64,...">``. The
file's content (model answers included) travels base64-encoded inside the link's ``href``: the page never parses
it as markup. Files over ``max_bytes`` are refused with a message naming the CLI command instead (a data link of
hundreds of MB would freeze the page).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

import ipywidgets as W

from llmlab.transfer import RESULTS_FORMATS, results_text
from llmlab.widgets.cells import _esc

__all__ = ["DEFAULT_MAX_BYTES", "DownloadPanel", "download_link_html"]

#: The largest file the button offers (bytes, before base64); larger runs go through ``llmlab export``.
DEFAULT_MAX_BYTES = 25_000_000

_MIME = {"csv": "text/csv", "json": "application/json"}


def _file_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(name)).strip("-.") or "results"


def download_link_html(text: str, fmt: str, stem: str, *, n_calls: int) -> str:
    """The ``<a download>`` link for ``text`` (what :func:`results_text` returned): ``stem`` is sanitized to
    ``[A-Za-z0-9_.-]``, the size is shown in kB. Raises ValueError on an unknown format."""
    if fmt not in RESULTS_FORMATS:
        raise ValueError(f"unknown results format {fmt!r}: use one of {', '.join(RESULTS_FORMATS)}")
    data = text.encode("utf-8")
    filename = _file_stem(stem) + RESULTS_FORMATS[fmt]
    href = f"data:{_MIME[fmt]};charset=utf-8;base64,{base64.b64encode(data).decode('ascii')}"
    return (f'<a class="llmlab-download" download="{_esc(filename)}" href="{href}" '
            f'style="text-decoration:underline">Save {_esc(filename)}</a> '
            f'<span style="color:#5f6368">({n_calls:,} calls, {len(data) / 1000:,.1f} kB)</span>')


class DownloadPanel(W.HBox):
    """A format picker (``format``: "csv" or "json"), a *Prepare download* button (``button``) and the link
    (``link_html``). ``results`` is a callable returning the results frame (read when clicked, so ratings made
    since are in the file); ``stem`` names the file. ``last_text`` holds the last file's text (for tests)."""

    def __init__(self, results: Callable[[], Any], stem: str, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 run_ref: str | None = None) -> None:
        self._results, self.stem, self.max_bytes = results, stem, max_bytes
        self.run_ref = run_ref or stem
        self.format = W.Dropdown(options=[("CSV", "csv"), ("JSON", "json")], value="csv",
                                 layout=W.Layout(width="90px"), description="")
        self.button = W.Button(description="Prepare download", icon="download",
                               tooltip="the run's calls as a file (one row per call)")
        self.link_html = W.HTML("")
        self.last_text: str | None = None
        self.button.on_click(lambda _b: self.prepare())
        self.format.observe(lambda _c: setattr(self.link_html, "value", ""), names="value")
        super().__init__([self.format, self.button, self.link_html])

    def prepare(self) -> str:
        """Build the link for the chosen format and return its HTML (also shown in ``link_html``)."""
        fmt = self.format.value
        frame = self._results()
        text = results_text(frame, fmt)
        size = len(text.encode("utf-8"))
        if size > self.max_bytes:
            self.last_text = None
            self.link_html.value = (
                f'<span style="color:#a50e0e">{size / 1e6:,.0f} MB is too large to download from the page: run '
                f'<code>llmlab export {_esc(self.run_ref)} --{fmt} -o {_esc(_file_stem(self.stem))}'
                f'{RESULTS_FORMATS[fmt]}</code></span>')
            return str(self.link_html.value)
        self.last_text = text
        self.link_html.value = download_link_html(text, fmt, self.stem, n_calls=len(frame))
        return str(self.link_html.value)
