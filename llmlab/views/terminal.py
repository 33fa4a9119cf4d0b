"""Tables for a terminal: a DataFrame rendered to the terminal's width (rich), every cell as plain text.

Cells are given to rich as :class:`rich.text.Text`, never as markup, so a model's answer such as ``[bold]`` or an
escape sequence is shown as the characters it is (model output is untrusted); control characters are printed as
visible escapes (an ESC byte as the four characters ``\\x1b``), so a table never moves the cursor.
"""

from __future__ import annotations

import io
import math
import shutil
from typing import Any

__all__ = [
    "render_table",
    "summary_for_terminal",
    "terminal_width",
]


def terminal_width(default: int = 100) -> int:
    """Columns of the terminal on stdout (``COLUMNS`` honoured), or ``default`` when there is none."""
    return shutil.get_terminal_size((default, 24)).columns


def _cell(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        return f"{v:.4g}"
    if hasattr(v, "strftime") and not isinstance(v, str):
        try:
            return v.strftime("%Y-%m-%d %H:%M:%S")
        except (ValueError, TypeError):  # NaT
            return "–"
    if isinstance(v, (list, tuple)):
        return ", ".join(_cell(x) for x in v)
    text = str(v)
    # Visible escapes for control characters: a table never moves the cursor or changes colours.
    return "".join(ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode() for ch in text)


def render_table(frame: Any, *, width: int | None = None, title: str | None = None,
                 max_cell_chars: int = 200) -> str:
    """A DataFrame as a plain-text table that fits ``width`` columns (default: the terminal's).

    Numeric columns are right-aligned and shown with 4 significant digits; NULL / NaN as ``–``; lists joined with
    commas; cells longer than ``max_cell_chars`` are cut with ``…``. Columns are kept in their order while they
    fit (long headers wrap); the ones that do not are named in a last line, never dropped silently. Returns the
    text (ends with a newline).
    """
    import pandas as pd
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    width = width or terminal_width()
    texts = {str(c): [_cut(_cell(v), max_cell_chars) for v in frame[c].tolist()] for c in frame.columns}
    # Greedy fit: keep columns in their order while their natural width fits; name the rest in a footer.
    kept: list[Any] = []
    used = 0
    for col in frame.columns:
        cells = texts[str(col)]
        natural = max([min(len(str(col)), 12), *(len(t) for t in cells[:500])]) if cells else len(str(col))
        need = natural + (3 if kept else 0)  # rich pads one space each side of a column separator
        if kept and used + need > width:
            break
        kept.append(col)
        used += need
    dropped = [str(c) for c in frame.columns if c not in kept]

    buf = io.StringIO()
    console = Console(file=buf, width=width, color_system=None, highlight=False, emoji=False, markup=False,
                      force_terminal=False, legacy_windows=False)
    table = Table(box=box.SIMPLE_HEAD, title=title, show_edge=False, pad_edge=False, expand=False)
    for i, col in enumerate(kept):
        numeric = pd.api.types.is_numeric_dtype(frame[col]) and not pd.api.types.is_bool_dtype(frame[col])
        table.add_column(Text(str(col)), justify="right" if numeric else "left", overflow="fold", no_wrap=i == 0)
    for i in range(len(frame)):
        table.add_row(*(Text(texts[str(c)][i]) for c in kept))
    console.print(table)
    out = "\n".join(line.rstrip() for line in buf.getvalue().splitlines()) + "\n"
    if dropped:
        import textwrap

        note = (f"({len(dropped)} more column{'s' if len(dropped) > 1 else ''} not shown at {width} columns: "
                f"{', '.join(dropped)}; --json or --csv prints all)")
        out += textwrap.fill(note, width=width, break_on_hyphens=False) + "\n"
    return out


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summary_for_terminal(summary: Any) -> Any:
    """A :func:`llmlab.analysis.summarize` frame as a person reads it: the group columns, ``n``, ``quality`` with
    its 95 % interval as one text column (``0.910 [0.86, 0.95]``), latency p50 / p95 (ms), cost per 1,000 prompts
    (USD, ``free`` for 0) and the error rate. Returns a new DataFrame (text cells)."""
    import pandas as pd

    from llmlab.views.display import fmt_usd

    def num(v: Any) -> float | None:
        try:
            f = float(v)
        except (TypeError, ValueError):
            return None
        return None if math.isnan(f) else f

    groups = [c for c in ("model", "category", "answered_by") if c in summary.columns]
    rows = []
    for r in summary.to_dict("records"):
        q, lo, hi = num(r.get("quality")), num(r.get("quality_ci_low")), num(r.get("quality_ci_high"))
        quality = "–" if q is None else f"{q:.3f}" + (f" [{lo:.2f}, {hi:.2f}]" if lo is not None and hi is not None else "")
        out = {g: r.get(g) for g in groups}
        p50, p95 = num(r.get("latency_p50_ms")), num(r.get("latency_p95_ms"))
        err = num(r.get("error_rate"))
        out.update({"n": r.get("n"), "quality [95% CI]": quality,
                    "p50_ms": "–" if p50 is None else f"{p50:.0f}", "p95_ms": "–" if p95 is None else f"{p95:.0f}",
                    "cost_per_1k_usd": fmt_usd(r.get("cost_per_1k_prompts_usd")),
                    "errors": "–" if err is None else f"{100 * err:.1f}%"})
        rows.append(out)
    return pd.DataFrame(rows)
