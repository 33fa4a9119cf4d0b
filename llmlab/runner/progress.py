"""Live progress of a run, drawn from the *waiting* thread (never from the loop thread: DESIGN.md decision 2).

One :class:`Progress` serves every surface; it picks its form from where it runs:

- ``"jupyter"`` (an IPython kernel): one display, updated in place (an HTML ``<progress>`` bar and the line);
- ``"terminal"`` (the stream is a TTY): a `rich <https://rich.readthedocs.io>`_ live display on stderr, fitted to
  the terminal's width: one bar for the whole run (calls done / planned, errors, cost so far, ETA) and one line
  per model (done / planned, errors);
- ``"lines"`` (anything else: CI logs, a pipe, a file): a plain one-line update every ``interval_s`` seconds
  (``LLMLAB_PROGRESS_INTERVAL_S``, default 10) and a final line; no carriage returns or escape codes;
- ``"off"``.

The figures come from :class:`llmlab.runner.fanout.RunStats`, which the fan-out updates on its loop thread.
"""

from __future__ import annotations

import html
import os
import sys
import time
from collections.abc import Sequence
from typing import IO, Any

from llmlab.runner.fanout import RunStats
from llmlab.settings import PROGRESS_INTERVAL_ENV

__all__ = [
    "Progress",
    "progress_mode",
]

_MODES = ("jupyter", "terminal", "lines", "off")


def _in_kernel() -> bool:
    if "IPython" not in sys.modules:
        return False
    try:
        from IPython import get_ipython

        ip = get_ipython()
        return ip is not None and getattr(ip, "kernel", None) is not None
    except Exception:  # noqa: BLE001
        return False


def progress_mode(enabled: bool | str = True, stream: IO[str] | None = None) -> str:
    """The form progress takes here: ``"jupyter"``, ``"terminal"``, ``"lines"`` or ``"off"`` (see the module).

    ``enabled`` may name a mode; True picks one from the environment. Raises ValueError for an unknown mode.
    """
    if enabled is False or enabled is None:
        return "off"
    if isinstance(enabled, str):
        if enabled not in _MODES:
            raise ValueError(f"progress={enabled!r}: use True, False or one of {', '.join(_MODES)}")
        return enabled
    if _in_kernel():
        return "jupyter"
    stream = stream if stream is not None else sys.stderr
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return "terminal" if tty else "lines"


def _eta_text(stats: RunStats) -> str:
    eta = stats.eta_s()
    if eta is None:
        return ""
    return f"ETA {eta:.0f}s" if eta < 120 else f"ETA {eta / 60:.0f} min"


def summary_line(stats: RunStats, *, final: bool = False) -> str:
    """``llmlab: 120/480 calls (25%), 3 errors, 40 cached, $0.0123 spent, ETA 40s`` (plain text)."""
    pct = 100 * stats.done / max(1, stats.planned)
    parts = [f"llmlab: {stats.done}/{stats.planned} calls ({pct:.0f}%)", f"{stats.error} errors",
             f"{stats.cached} cached", f"${stats.cost_usd:.4f} spent"]
    if final:
        parts.append(f"{time.monotonic() - stats.started_monotonic_s:.1f}s")
    else:
        eta = _eta_text(stats)
        if eta:
            parts.append(eta)
    return ", ".join(parts)


class Progress:
    """Progress of one run. ``update(stats)`` is cheap to call often (the waiting thread calls it every tick).

    Args:
        enabled: True (pick the form from the environment), False, or a mode name (see :func:`progress_mode`).
        models: the run's model names, in order (the terminal form draws one line per model).
        planned_by_model: calls planned per model (for the per-model lines).
        stream: where the terminal and line forms write (default ``sys.stderr``).
        interval_s: seconds between lines in the ``"lines"`` form (default ``$LLMLAB_PROGRESS_INTERVAL_S`` or 10).
    """

    def __init__(self, enabled: bool | str = True, *, models: Sequence[str] = (),
                 planned_by_model: dict[str, int] | None = None, stream: IO[str] | None = None,
                 interval_s: float | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.mode = progress_mode(enabled, self.stream)
        self.models = list(models)
        self.planned_by_model = dict(planned_by_model or {})
        if interval_s is None:
            try:
                interval_s = float(os.environ.get(PROGRESS_INTERVAL_ENV, "10"))
            except ValueError:
                interval_s = 10.0
        self.interval_s = max(0.0, interval_s)
        self.last = 0.0
        self.lines_written = 0
        self._handle: Any = None
        self._rich: Any = None
        self._tasks: dict[str, Any] = {}
        self.closed = False

    # -- forms ---------------------------------------------------------------------------------------------
    def _jupyter(self, stats: RunStats) -> None:
        from IPython.display import display

        text = summary_line(stats)
        pct = 100 * stats.done / max(1, stats.planned)
        bundle = {"text/plain": text, "text/html": (
            f'<div><progress value="{pct:.0f}" max="100" style="width:40%"></progress> '
            f"<code>{html.escape(text)}</code></div>")}
        if self._handle is None:
            self._handle = display(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)

    def _terminal_start(self, stats: RunStats) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
        from rich.progress import Progress as RichProgress

        console = Console(file=self.stream, highlight=False)
        self._rich = RichProgress(
            TextColumn("{task.description}", justify="left"),
            BarColumn(bar_width=None),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            console=console, auto_refresh=False, transient=False, expand=True,
        )
        self._rich.start()
        self._tasks["__all__"] = self._rich.add_task("all models", total=max(1, stats.planned), detail="")
        for m in self.models:
            self._tasks[m] = self._rich.add_task(f"  {m}", total=max(1, self.planned_by_model.get(m, 1)), detail="")

    def _terminal(self, stats: RunStats, final: bool) -> None:
        if self._rich is None:
            self._terminal_start(stats)
        detail = f"{stats.error} err  ${stats.cost_usd:.4f}  {_eta_text(stats) if not final else ''}".rstrip()
        self._rich.update(self._tasks["__all__"], completed=stats.done, detail=detail)
        for m in self.models:
            done = stats.done_by_model.get(m, 0)
            err = stats.errors_by_model.get(m, 0)
            self._rich.update(self._tasks[m], completed=done, detail=f"{err} err" if err else "")
        self._rich.refresh()
        if final:
            self._rich.stop()
            self._rich.console.print(summary_line(stats, final=True), markup=False)

    def _lines(self, stats: RunStats, final: bool) -> None:
        self.stream.write(summary_line(stats, final=final) + "\n")
        self.stream.flush()
        self.lines_written += 1

    # -- the one entry point -------------------------------------------------------------------------------
    def update(self, stats: RunStats, final: bool = False) -> None:
        """Redraw (throttled: 4 per second on a terminal or in Jupyter, every ``interval_s`` as lines)."""
        if self.mode == "off" or self.closed:
            return
        now = time.monotonic()
        wait = self.interval_s if self.mode == "lines" else 0.25
        if not final and now - self.last < wait:
            return
        if self.mode == "lines" and not final and self.last == 0.0 and self.interval_s > 0:
            self.last = now  # the first line after one interval, not at once
            return
        self.last = now
        if self.mode == "jupyter":
            self._jupyter(stats)
        elif self.mode == "terminal":
            self._terminal(stats, final)
        else:
            self._lines(stats, final)
        if final:
            self.closed = True
