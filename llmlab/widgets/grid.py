"""The comparison grid's rows as pure functions: filter by category, status and text, sort by latency or cost.

A *record* is one call's row (the store's results columns plus ``human_score``); the grid has one row per
(prompt_id, sample_index) with one cell per visible model. No widget is imported here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from llmlab.widgets.cells import ALL, _num

__all__ = ["grid_rows", "status_match"]


def status_match(rec: Mapping[str, Any], status: str | None) -> bool:
    """Whether one call's record passes the status filter (``(all)``, ok, error, cached, rated, unrated, pending)."""
    if status in (ALL, None):
        return True
    if status == "cached":
        return bool(rec.get("cached"))
    if status == "rated":
        return _num(rec.get("human_score")) is not None
    if status == "unrated":
        return _num(rec.get("human_score")) is None and rec.get("status") not in ("pending",)
    return rec.get("status") == status


def grid_rows(order: Sequence[tuple[str, int]], index: Mapping[tuple[str, int], Mapping[str, str]],
              records: Mapping[str, Mapping[str, Any]], prompt_info: Mapping[str, Mapping[str, Any]],
              visible: Sequence[str], *, category: str | None = ALL, status: str | None = ALL, text: str = "",
              sort: str | None = "order") -> list[dict[str, Any]]:
    """The grid's rows after filtering and sorting.

    Args:
        order: the (prompt_id, sample_index) keys in display order; ``index``: key → {model: call_id};
        records: call_id → record; prompt_info: prompt_id → {category, prompt, reference}; visible: the models
        shown; category / status: filters (``(all)`` for none); text: a case-insensitive substring of the prompt,
        reference, category, answers or errors; sort: ``order``, ``latency_asc|desc`` or ``cost_asc|desc`` (mean
        over the row's cells; rows with no value last).
    Returns:
        ``[{"prompt_id", "sample_index", "category", "prompt", "reference", "cells": {model: record}}, ...]``.
    """
    needle = (text or "").strip().lower()
    rows = []
    for pos, key in enumerate(order):
        by_model = index.get(key, {})
        cells = {m: dict(records[by_model[m]]) for m in visible if by_model.get(m) in records}
        if not cells:
            continue
        info = prompt_info.get(key[0], {})
        if category not in (ALL, None) and info.get("category") != category:
            continue
        if not any(status_match(rec, status) for rec in cells.values()):
            continue
        if needle:
            hay = [str(info.get("prompt") or ""), str(info.get("reference") or ""), str(info.get("category") or "")]
            for rec in cells.values():
                hay += [str(rec.get("response") or ""), str(rec.get("error_message") or ""),
                        str(rec.get("error_type") or "")]
            if needle not in "\n".join(hay).lower():
                continue
        rows.append({"prompt_id": key[0], "sample_index": key[1], "category": info.get("category"),
                     "prompt": info.get("prompt"), "reference": info.get("reference"), "cells": cells, "_pos": pos})
    if sort and sort != "order":
        col = "latency_ms" if sort.startswith("latency") else "cost_usd"
        desc = sort.endswith("desc")

        def key_of(row: dict[str, Any]) -> tuple[int, float, int]:
            vals = [_num(rec.get(col)) for rec in row["cells"].values()]
            vals = [v for v in vals if v is not None]
            if not vals:
                return (1, 0.0, row["_pos"])
            mean = sum(vals) / len(vals)
            return (0, -mean if desc else mean, row["_pos"])

        rows.sort(key=key_of)
    for row in rows:
        row.pop("_pos", None)
    return rows
