"""The comparison view's calls as a column-backed table: a 10^5-call run opens without 10^5 dicts.

:class:`RecordTable` maps ``call_id`` to the call's *record* (a dict of the results frame's columns with Python
values, missing values as None, as :func:`llmlab.widgets.cells.records_from_frame` makes them), but keeps the
frame's columns and builds a record only when it is read: opening a view reads the records of one page. Records
written later (live results, ratings) are kept as dicts beside the columns. :meth:`RecordTable.value` reads one
field without building the record (the grid's filters and sorts), :meth:`RecordTable.column` one column over all
records (the headers' figures).

Figures: ``benchmarks/store.py`` (``compare``: opening :func:`llmlab.compare` on a 10^5-call run).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

import numpy as np
import pandas as pd

from llmlab.widgets.cells import _clean

__all__ = ["PROMPT_FIELDS", "RecordTable", "field", "header_figures", "index_frame"]


def _py(value: Any) -> Any:
    """One cell as records_from_frame gives it: str as is, NaN/NA/NaT as None, numpy scalars as Python ones."""
    kind = type(value)
    if kind is str:
        return value
    if kind is float or kind is np.float64:  # np.float64 is a float: _clean would keep the numpy type
        return None if value != value else float(value)
    return _clean(value)


class RecordTable(MutableMapping[str, dict[str, Any]]):
    """``call_id`` → record, backed by a results frame's columns (see the module docstring).

    Args:
        frame: a results frame (:meth:`llmlab.Store.results` columns; ``call_id`` required), or None for an
            empty table. Rows with a missing ``call_id`` are left out; of two rows with one ``call_id`` the last is
            kept (as inserting the records one by one would).
    """

    def __init__(self, frame: pd.DataFrame | None = None) -> None:
        self._frame: pd.DataFrame | None = None
        self._columns: dict[str, Any] = {}  # name -> the column's array (indexable by position, values as stored)
        self._pos: dict[str, int] = {}  # call_id -> its row in the frame
        self._made: dict[str, dict[str, Any]] = {}  # records built or written; they win over the columns
        if frame is not None and len(frame) and "call_id" in frame.columns:
            frame = self._frame = frame.reset_index(drop=True)
            self._columns = {str(c): frame[c].array for c in frame.columns}
            self._pos = {cid: i for i, cid in enumerate(frame["call_id"].tolist()) if isinstance(cid, str)}

    # -- the mapping ----------------------------------------------------------------------------------
    def __getitem__(self, call_id: str) -> dict[str, Any]:
        rec = self._made.get(call_id)
        if rec is not None:
            return rec
        pos = self._pos[call_id]  # KeyError for an unknown call
        rec = {name: _py(col[pos]) for name, col in self._columns.items()}
        self._made[call_id] = rec
        return rec

    def __setitem__(self, call_id: str, record: dict[str, Any]) -> None:
        self._made[call_id] = record

    def __delitem__(self, call_id: str) -> None:
        found = self._made.pop(call_id, None) is not None
        found = self._pos.pop(call_id, None) is not None or found
        if not found:
            raise KeyError(call_id)

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._made or call_id in self._pos

    def __iter__(self) -> Iterator[str]:
        yield from self._pos
        for cid in self._made:
            if cid not in self._pos:
                yield cid

    def __len__(self) -> int:
        return len(self._pos) + sum(1 for cid in self._made if cid not in self._pos)

    # -- column reads -----------------------------------------------------------------------------------
    def value(self, call_id: str, name: str) -> Any:
        """One field of one call's record without building the record (None when the column is missing).
        Raises KeyError for an unknown call."""
        rec = self._made.get(call_id)
        if rec is not None:
            return rec.get(name)
        pos = self._pos[call_id]
        col = self._columns.get(name)
        return None if col is None else _py(col[pos])

    def frame(self) -> pd.DataFrame:
        """Every record as one DataFrame (the frame's columns, then any others a written record has), in iteration
        order: the stored rows as columns, the records built or written since as rows."""
        parts = []
        if self._frame is not None:
            base = self._frame
            if len(self._pos) != len(base):
                base = base.iloc[list(self._pos.values())]
            if self._made:
                base = base[~base["call_id"].isin(list(self._made))]
            parts.append(base)
        if self._made:
            parts.append(pd.DataFrame(list(self._made.values())))
        if not parts:
            return pd.DataFrame()
        out = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
        if self._made and self._frame is not None:
            order = {cid: i for i, cid in enumerate(self)}
            out = out.iloc[np.argsort(out["call_id"].map(order).to_numpy(), kind="stable")]
        return out.reset_index(drop=True)

    def _series(self, name: str) -> pd.Series | None:
        return None if self._frame is None or name not in self._frame.columns else self._frame[name]

    def _patched(self, base: list[Any] | np.ndarray, name: str, convert: Any) -> Any:
        """``base`` (one value per stored row, in row order) reduced to the current records in iteration order,
        with the values of records built or written since."""
        n_rows = 0 if self._frame is None else len(self._frame)
        if len(self._pos) != n_rows:  # rows were dropped (no call_id, a repeated one, deleted)
            idx = list(self._pos.values())
            base = base[idx] if isinstance(base, np.ndarray) else [base[i] for i in idx]
        if not self._made:
            return base
        where = {cid: i for i, cid in enumerate(self._pos)}
        extra = []
        for cid, rec in self._made.items():
            i = where.get(cid)
            if i is None:
                extra.append(convert(rec.get(name)))
            else:
                base[i] = convert(rec.get(name))
        if extra:
            base = np.concatenate([base, np.asarray(extra, dtype=base.dtype)]) if isinstance(base, np.ndarray) \
                else [*base, *extra]
        return base

    def column(self, name: str) -> list[Any]:
        """Column ``name`` over every record, in iteration order (raw values: NaN and None both mean missing)."""
        series = self._series(name)
        base = series.tolist() if series is not None else [None] * (0 if self._frame is None else len(self._frame))
        return list(self._patched(base, name, lambda v: v))

    def numeric(self, name: str) -> np.ndarray:
        """Column ``name`` over every record as floats (NaN for missing or non-numeric values; booleans are not
        numbers here), in iteration order."""
        series = self._series(name)
        if series is None:
            base = np.full(0 if self._frame is None else len(self._frame), np.nan)
        elif series.dtype.kind in "iuf":
            base = series.to_numpy(dtype=float, na_value=np.nan).copy()
        else:
            base = _floats(series.tolist())
        return self._patched(base, name, _float_or_nan)


def _float_or_nan(value: Any) -> float:
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _floats(values: list[Any]) -> np.ndarray:
    return np.fromiter((_float_or_nan(v) for v in values), dtype=float, count=len(values))


#: The prompt's fields every record carries (the view fills them from the prompt when a row lacks them).
PROMPT_FIELDS = ("category", "prompt", "reference", "scorer")


def index_frame(frame: pd.DataFrame) -> tuple[RecordTable, dict[tuple[str, int], dict[str, str]],
                                               list[tuple[str, int]], dict[str, dict[str, Any]]]:
    """A results frame as the comparison view holds it, without a dict per call.

    Returns ``(records, index, order, prompt_info)``: the :class:`RecordTable` of the frame (every record has the
    :data:`PROMPT_FIELDS`), ``(prompt_id, sample_index)`` → ``{model: call_id}``, those keys in first-seen order,
    and ``prompt_id`` → its first row's prompt fields. Of two rows for one (prompt, sample, model) the later wins
    and the earlier call leaves the table, as adding the records one by one does (``CompareView._put``).
    """
    from llmlab.widgets.cells import _num

    missing = [f for f in PROMPT_FIELDS if f not in frame.columns]
    if missing:
        frame = frame.assign(**dict.fromkeys(missing))
    table = RecordTable(frame)
    index: dict[tuple[str, int], dict[str, str]] = {}
    order: list[tuple[str, int]] = []
    info: dict[str, dict[str, Any]] = {}
    n = len(frame)

    def col(name: str) -> list[Any]:
        return frame[name].tolist() if name in frame.columns else [None] * n

    rows = zip(col("call_id"), col("prompt_id"), col("sample_index"), col("model"), *(col(f) for f in PROMPT_FIELDS))
    for call_id, prompt_id, sample, model, *values in rows:
        if not isinstance(call_id, str):
            continue
        pid = str(prompt_id)
        if pid not in info:
            info[pid] = {f: _py(v) for f, v in zip(PROMPT_FIELDS, values, strict=True)}
        key = (pid, sample if type(sample) is int else int(_num(sample) or 0))
        by_model = index.get(key)
        if by_model is None:
            by_model = index[key] = {}
            order.append(key)
        old = by_model.get(model)
        if old is not None and old != call_id:
            table.pop(old, None)
        by_model[model] = call_id
    return table, index, order, info


def field(records: Mapping[str, Mapping[str, Any]], call_id: str, name: str) -> Any:
    """One field of ``records[call_id]``: through :meth:`RecordTable.value` when ``records`` is one (no record
    built), else the dict's ``get``."""
    if isinstance(records, RecordTable):
        return records.value(call_id, name)
    return records[call_id].get(name)


def header_figures(records: Mapping[str, Mapping[str, Any]], models: list[str]) -> tuple[dict[str, Any],
                                                                                        dict[str, dict[str, Any]]]:
    """The view's header counts and each model's :func:`~llmlab.widgets.cells.model_header_figures`, computed
    column-wise (no record built).

    Returns ``(overall, per_model)``: ``overall`` has ``n, n_ok, n_errors, n_pending, n_rated`` (counts),
    ``n_costs`` (ok calls not served from the cache) and ``cost_usd`` (the sum of their known prices, USD) with
    ``n_cost_unknown``; ``per_model`` maps each model of ``models`` to its header figures.
    """
    if isinstance(records, RecordTable):
        col, num = records.column, records.numeric
    else:
        recs = list(records.values())

        def col(name: str) -> list[Any]:
            return [r.get(name) for r in recs]

        def num(name: str) -> np.ndarray:
            return _floats(col(name))
    status = np.asarray([str(v) if v is not None else "" for v in col("status")], dtype=object)
    model = np.asarray([str(v) for v in col("model")], dtype=object)
    cached = np.asarray([bool(v) if v is not None and v == v else False for v in col("cached")], dtype=bool)
    human = num("human_score")
    quality = np.where(np.isnan(human), num("quality"), human)
    latency = num("latency_ms")
    cost = num("cost_usd")
    ok, err, pending = status == "ok", status == "error", status == "pending"
    paid = ok & ~cached
    overall = {"n": int(status.size), "n_ok": int(ok.sum()), "n_errors": int(err.sum()),
               "n_pending": int(pending.sum()), "n_rated": int((~np.isnan(human)).sum()),
               "n_costs": int(paid.sum()), "cost_usd": float(np.nansum(cost[paid])),
               "n_cost_unknown": int((paid & np.isnan(cost)).sum())}
    per_model = {}
    for m in models:
        mine = (model == m) & ~pending
        q = quality[mine & ~np.isnan(quality)]
        lat = latency[mine & ok & ~np.isnan(latency)]
        mine_paid = mine & paid
        per_model[m] = {"quality": float(q.sum() / q.size) if q.size else None, "n_quality": int(q.size),
                        "latency_p50_ms": float(np.median(lat)) if lat.size else None,
                        "n_costs": int(mine_paid.sum()),
                        "cost_usd": None if np.isnan(cost[mine_paid]).any() else float(cost[mine_paid].sum()),
                        "n_errors": int((mine & err).sum())}
    return overall, per_model
