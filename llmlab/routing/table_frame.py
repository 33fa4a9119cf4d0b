"""``RoutingTable``: the routing table's DataFrame, printed so a person can read it in a plain Python REPL.

A :func:`llmlab.routing_table` result is a pandas DataFrame (every pandas operation works on it, and it is what
:func:`llmlab.export_litellm_config` reads). pandas' own ``repr`` of its 11 columns in an 80-column terminal is
``[7 rows x 11 columns]`` with the model and the reason hidden behind ``...``; this subclass prints one block per
category instead, wrapped to the terminal's width::

    routing table: 3 categories + default (tolerance 0.02, min_n 5)
    extraction  → sandbox/fast      quality 0.95 [0.90, 0.98]  n 12  p95 310 ms  $0.03 / 1k prompts
                  fallbacks: sandbox/frontier
                  cheapest of 2 meeting quality ≥ best 0.962 − 0.02
    ...

Notebooks keep pandas' HTML table (``_repr_html_``, escaped by pandas). A slice that lost the table's columns
prints as a plain DataFrame.
"""

from __future__ import annotations

import math
import shutil
import textwrap
from typing import Any

import pandas as pd

__all__ = ["RoutingTable", "format_routing_table"]

_NEEDED = ("category", "model", "quality", "n", "reason")


def _plain(value: Any) -> str:
    # Category names, models and reasons come from user data: control characters are shown as visible escapes
    # (an ESC byte as the four characters \\x1b), so printing a table never moves the cursor or changes colours.
    return "".join(ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode() for ch in str(value))


def _num(value: Any, fmt: str) -> str | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else format(f, fmt)


def _usd(value: Any) -> str | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(f):
        return "price unknown"
    if f == 0:
        return "free"
    return f"${f:.4g} / 1k prompts"


def _settings_line(settings: dict[str, Any]) -> str:
    shown = [f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in settings.items() if v is not None]
    return f" ({', '.join(shown)})" if shown else ""


def format_routing_table(table: pd.DataFrame, width: int | None = None) -> str:
    """The text a person reads: a title line, then per row ``category → model`` with quality [95% CI], n, p95
    latency (ms), cost per 1,000 prompts (USD; "free" at price 0), fallbacks and the reason, wrapped to ``width``
    columns (default: the terminal's width, at least 40). Values are printed as text (``str``), never interpreted.
    """
    width = max(40, width or shutil.get_terminal_size((100, 24)).columns)
    rows = table.to_dict("records")
    n_cats = sum(1 for r in rows if str(r.get("category")) != "default")
    has_default = any(str(r.get("category")) == "default" for r in rows)
    title = f"routing table: {n_cats} categor{'y' if n_cats == 1 else 'ies'}{' + default' if has_default else ''}"
    lines = textwrap.wrap(title + _settings_line(dict(table.attrs.get("routing_settings") or {})), width,
                          subsequent_indent="  ")
    cat_w = min(max([len(_plain(r.get("category"))) for r in rows] + [8]), max(8, width // 4))
    indent = " " * (cat_w + 2)
    for r in rows:
        facts = []
        q = _num(r.get("quality"), ".2f")
        if q is not None:
            lo, hi = _num(r.get("quality_ci_low"), ".2f"), _num(r.get("quality_ci_high"), ".2f")
            facts.append(f"quality {q}" + (f" [{lo}, {hi}]" if lo is not None and hi is not None else ""))
        n = _num(r.get("n"), ".0f")
        if n is not None:
            facts.append(f"n {n}")
        p95 = _num(r.get("latency_p95_ms"), ".0f")
        if p95 is not None:
            facts.append(f"p95 {p95} ms")
        cost = _usd(r.get("cost_per_1k_prompts_usd")) if "cost_per_1k_prompts_usd" in r else None
        if cost is not None:
            facts.append(cost)
        err = _num(r.get("error_rate"), ".0%")
        if err is not None and float(r.get("error_rate") or 0) > 0:
            facts.append(f"errors {err}")
        head = f"{_plain(r.get('category')):<{cat_w}}  → {_plain(r.get('model'))}   " + "  ".join(facts)
        lines.extend(textwrap.wrap(head, width, subsequent_indent=indent + "  ", break_on_hyphens=False) or [""])
        fallbacks = r.get("fallbacks")
        if isinstance(fallbacks, (list, tuple)) and fallbacks:
            lines.extend(textwrap.wrap("fallbacks: " + ", ".join(map(_plain, fallbacks)), width,
                                       initial_indent=indent, subsequent_indent=indent + "  "))
        if r.get("reason"):
            lines.extend(textwrap.wrap(_plain(r["reason"]), width, initial_indent=indent, subsequent_indent=indent))
    return "\n".join(lines)


class RoutingTable(pd.DataFrame):
    """A routing table (the DataFrame :func:`llmlab.routing_table` documents) whose ``repr`` is readable text
    (:func:`format_routing_table`). Everything else is pandas: ``to_dict``, filtering, ``attrs``."""

    @property
    def _constructor(self) -> Any:
        return RoutingTable

    def __repr__(self) -> str:
        if not all(c in self.columns for c in _NEEDED) or len(self) == 0:
            return pd.DataFrame.__repr__(self)
        return format_routing_table(self)
