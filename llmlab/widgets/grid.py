"""The comparison grid's rows as pure functions: filter by category, status and text, sort by latency or cost.

A *record* is one call's row (the store's results columns plus ``human_score``); the grid has one row per
(prompt_id, sample_index) with one cell per visible model, built when read (:class:`GridRows`). No widget is
imported here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from llmlab.widgets.cells import ALL, _num
from llmlab.widgets.records import field

__all__ = ["GridRows", "grid_rows", "status_match"]


def status_match(rec: Mapping[str, Any], status: str | None) -> bool:
    """Whether one call's record passes the status filter (``(all)``, ok, error, cached, rated, unrated, pending)."""
    return _status_ok(rec.get, status)


def _status_ok(get: Callable[[str], Any], status: str | None) -> bool:
    if status in (ALL, None):
        return True
    if status == "cached":
        return bool(get("cached"))
    if status == "rated":
        return _num(get("human_score")) is not None
    if status == "unrated":
        return _num(get("human_score")) is None and get("status") not in ("pending",)
    return get("status") == status


class GridRows(Sequence[dict[str, Any]]):
    """The grid's rows, built when read: ``len()`` and the row keys are known, a row's dict (with copies of its
    cells' records) is made on indexing, so a 10^5-call run's grid costs one page of records to show.

    Each row is ``{"prompt_id", "sample_index", "category", "prompt", "reference", "cells": {model: record}}``.
    """

    def __init__(self, keys: list[tuple[str, int]], index: Mapping[tuple[str, int], Mapping[str, str]],
                 records: Mapping[str, Mapping[str, Any]], prompt_info: Mapping[str, Mapping[str, Any]],
                 visible: Sequence[str]) -> None:
        self.keys, self._index, self._records = keys, index, records
        self._info, self._visible = prompt_info, list(visible)

    def __len__(self) -> int:
        return len(self.keys)

    def _row(self, key: tuple[str, int]) -> dict[str, Any]:
        by_model = self._index.get(key, {})
        info = self._info.get(key[0], {})
        cells = {m: dict(self._records[by_model[m]]) for m in self._visible if by_model.get(m) in self._records}
        return {"prompt_id": key[0], "sample_index": key[1], "category": info.get("category"),
                "prompt": info.get("prompt"), "reference": info.get("reference"), "cells": cells}

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self._row(k) for k in self.keys[i]]
        return self._row(self.keys[i])

    def call_id(self, row: int, model: str) -> str | None:
        """The call id in row ``row``'s ``model`` cell (None when the cell is empty or ``model`` is not shown); no
        record is built."""
        if model not in self._visible:
            return None
        cid = self._index.get(self.keys[row], {}).get(model)
        return cid if cid in self._records else None

    def locate(self, call_id: str | None, models: Sequence[str]) -> tuple[int, int] | None:
        """``(row, column)`` of ``call_id`` among ``models`` (columns in that order), or None."""
        if call_id is None:
            return None
        for r, key in enumerate(self.keys):
            by_model = self._index.get(key, {})
            for c, m in enumerate(models):
                if by_model.get(m) == call_id:
                    return (r, c)
        return None


def grid_rows(order: Sequence[tuple[str, int]], index: Mapping[tuple[str, int], Mapping[str, str]],
              records: Mapping[str, Mapping[str, Any]], prompt_info: Mapping[str, Mapping[str, Any]],
              visible: Sequence[str], *, category: str | None = ALL, status: str | None = ALL, text: str = "",
              sort: str | None = "order") -> GridRows:
    """The grid's rows after filtering and sorting.

    Args:
        order: the (prompt_id, sample_index) keys in display order; ``index``: key → {model: call_id};
        records: call_id → record (a dict, or a :class:`~llmlab.widgets.records.RecordTable`, whose fields the
        filters read without building records); prompt_info: prompt_id → {category, prompt, reference}; visible:
        the models shown; category / status: filters (``(all)`` for none); text: a case-insensitive substring of
        the prompt, reference, category, answers or errors; sort: ``order``, ``latency_asc|desc`` or
        ``cost_asc|desc`` (mean over the row's cells; rows with no value last).
    Returns:
        A :class:`GridRows` sequence of ``{"prompt_id", "sample_index", "category", "prompt", "reference",
        "cells": {model: record}}``.
    """
    needle = (text or "").strip().lower()
    visible = list(visible)
    kept: list[tuple[str, int]] = []
    cell_ids: list[list[str]] = []
    for key in order:
        by_model = index.get(key, {})
        cids = [by_model[m] for m in visible if by_model.get(m) in records]
        if not cids:
            continue
        info = prompt_info.get(key[0], {})
        if category not in (ALL, None) and info.get("category") != category:
            continue
        if status not in (ALL, None) and not any(
                _status_ok(lambda name, c=cid: field(records, c, name), status) for cid in cids):
            continue
        if needle:
            hay = [str(info.get("prompt") or ""), str(info.get("reference") or ""), str(info.get("category") or "")]
            for cid in cids:
                hay += [str(field(records, cid, name) or "") for name in ("response", "error_message", "error_type")]
            if needle not in "\n".join(hay).lower():
                continue
        kept.append(key)
        cell_ids.append(cids)
    if sort and sort != "order":
        col = "latency_ms" if sort.startswith("latency") else "cost_usd"
        desc = sort.endswith("desc")
        sort_keys = []
        for pos, cids in enumerate(cell_ids):
            vals = [v for v in (_num(field(records, cid, col)) for cid in cids) if v is not None]
            if not vals:
                sort_keys.append((1, 0.0, pos))
            else:
                mean = sum(vals) / len(vals)
                sort_keys.append((0, -mean if desc else mean, pos))
        kept = [kept[k[2]] for k in sorted(sort_keys)]
    return GridRows(kept, index, records, prompt_info, visible)
