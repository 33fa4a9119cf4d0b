"""The comparison view keeps a stored run's calls as columns (RecordTable) and builds its grid rows when read
(GridRows): a 10^5-call run opens with one page of records built. What a user sees must not change: these tests
build each view twice, from the frame (columns) and from record dicts (the live path), and compare."""

from __future__ import annotations

import random
from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from llmlab.widgets import CompareView, records_from_frame
from llmlab.widgets.cells import SORTS, STATUS_FILTERS, model_header_figures
from llmlab.widgets.grid import grid_rows
from llmlab.widgets.records import RecordTable, header_figures

MODELS = ["m/a", "m/b", "m/c"]


def _frame(n_prompts: int = 60, seed: int = 3) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for i in range(n_prompts):
        for m in MODELS:
            status = "error" if rng.random() < 0.2 else "ok"
            ok = status == "ok"
            rows.append({
                "run_id": "r1", "call_id": f"c{i}-{m}", "prompt_id": f"p{i:03d}", "sample_index": i % 2,
                "category": ["math", "code", None][i % 3], "model": m, "status": status,
                "error_type": None if ok else "Timeout", "error_message": None if ok else f"timed out {i}",
                "latency_ms": rng.uniform(10, 900) if ok else np.nan, "cost_usd": rng.uniform(0, 1e-3)
                if ok and rng.random() > 0.05 else np.nan, "cached": ok and rng.random() < 0.2,
                "response": f"answer {i} from {m}" if ok else None, "prompt": f"question {i}", "reference": "42",
                "quality": rng.choice([0.0, 1.0, np.nan]) if ok else np.nan,
                "human_score": 1.0 if rng.random() < 0.1 else np.nan, "attempts": rng.randint(1, 3),
                "created_at_utc": datetime(2026, 1, 1, 0, i % 60),
            })
    frame = pd.DataFrame(rows)
    frame["attempts"] = frame["attempts"].astype("int64")
    return frame


def test_record_table_gives_the_records_records_from_frame_gives() -> None:
    frame = _frame()
    table = RecordTable(frame)
    records = records_from_frame(frame)
    assert len(table) == len(records) and list(table) == [r["call_id"] for r in records]
    for rec in records:
        assert table[rec["call_id"]] == rec
        assert table.value(rec["call_id"], "latency_ms") == rec["latency_ms"]
    assert table.column("status") == frame["status"].tolist()
    np.testing.assert_array_equal(table.numeric("cost_usd"), frame["cost_usd"].to_numpy(dtype=float))
    # written records win over the columns; new ones come last; deleted ones are gone
    table["c0-m/a"] = {**table["c0-m/a"], "status": "pending", "cost_usd": 5.0}
    table["new"] = {"call_id": "new", "status": "ok", "cost_usd": 1.0}
    del table["c1-m/b"]
    assert "c1-m/b" not in table and len(table) == len(records)
    assert table.column("status")[0] == "pending" and table.column("status")[-1] == "ok"
    assert table.numeric("cost_usd")[0] == 5.0 and table.numeric("cost_usd")[-1] == 1.0
    with pytest.raises(KeyError):
        table["c1-m/b"]
    # a repeated call id keeps its last row
    twice = RecordTable(pd.concat([frame.iloc[:1].assign(response="first"), frame.iloc[:1].assign(response="last")]))
    assert len(twice) == 1 and twice["c0-m/a"]["response"] == "last"


def test_header_figures_equal_the_per_record_ones() -> None:
    frame = _frame()
    records = records_from_frame(frame)
    overall, per_model = header_figures(RecordTable(frame), MODELS)
    for m in MODELS:
        expected = model_header_figures([r for r in records if r["model"] == m])
        got = per_model[m]
        assert got.keys() == expected.keys()
        for k, v in expected.items():
            assert got[k] == pytest.approx(v) if v is not None else got[k] is None, (m, k)
    assert overall["n"] == len(records) and overall["n_errors"] == sum(r["status"] == "error" for r in records)
    assert overall["n_rated"] == sum(r["human_score"] is not None for r in records)
    assert header_figures({r["call_id"]: r for r in records}, MODELS)[1] == per_model


def test_a_view_from_columns_shows_what_a_view_from_records_shows() -> None:
    frame = _frame()
    by_columns = CompareView(frame, models=MODELS, page_size=7)
    by_records = CompareView(records_from_frame(frame), models=MODELS, page_size=7)
    # opening builds one page of records, not the run's
    assert len(by_columns._records._made) <= 7 * len(MODELS)
    assert by_columns.header.value == by_records.header.value
    assert [h.value for h in by_columns._headers] == [h.value for h in by_records._headers]
    for status in STATUS_FILTERS:
        for _, sort in SORTS:
            for view in (by_columns, by_records):
                view.filter_status.value, view.sort_by.value = status, sort
            assert list(by_columns.grid_rows) == list(by_records.grid_rows), (status, sort)
    for view in (by_columns, by_records):
        view.filter_status.value, view.sort_by.value, view.filter_text.value = "(all)", "order", "timed out 1"
    assert list(by_columns.grid_rows) and list(by_columns.grid_rows) == list(by_records.grid_rows)
    for view in (by_columns, by_records):
        view.filter_text.value = ""
        view.goto_page(2)
    assert [getattr(c, "value", None) for c in by_columns.grid.children] == \
           [getattr(c, "value", None) for c in by_records.grid.children]
    assert by_columns.page_rows == by_records.page_rows
    # selection steps across pages the same way
    first = by_columns.page_rows[0]["cells"]["m/a"]["call_id"]
    by_columns.select(first)
    by_records.select(first)
    for step in ((1, 0), (0, 1), (0, 1), (-1, 0), (0, -1)):
        assert by_columns.step_selection(*step) == by_records.step_selection(*step)
    assert by_columns.page == by_records.page


def test_grid_rows_is_a_sequence_built_when_read() -> None:
    frame = _frame(n_prompts=12)
    records = records_from_frame(frame)
    table = {r["call_id"]: r for r in records}
    index: dict = {}
    order = []
    for r in records:
        key = (r["prompt_id"], r["sample_index"])
        if key not in index:
            index[key] = {}
            order.append(key)
        index[key][r["model"]] = r["call_id"]
    info = {r["prompt_id"]: {"category": r["category"], "prompt": r["prompt"], "reference": r["reference"]}
            for r in records}
    rows = grid_rows(order, index, table, info, ["m/b"], status="error")
    expected = [k for k in order if table[index[k]["m/b"]]["status"] == "error"]
    assert [(r["prompt_id"], r["sample_index"]) for r in rows] == expected and len(rows) == len(expected)
    row = rows[0]
    assert set(row["cells"]) == {"m/b"} and row["cells"]["m/b"] == table[index[expected[0]]["m/b"]]
    row["cells"]["m/b"]["response"] = "edited"  # the cells are copies
    assert table[index[expected[0]]["m/b"]]["response"] != "edited"
    assert rows.locate(index[expected[-1]]["m/b"], ["m/b"]) == (len(expected) - 1, 0)
    assert rows.call_id(0, "m/b") == index[expected[0]]["m/b"] and rows.call_id(0, "m/a") is None


def test_the_views_results_frame_is_the_same_either_way() -> None:
    frame = _frame()
    by_columns = CompareView(frame, models=MODELS)
    by_records = CompareView(records_from_frame(frame), models=MODELS)
    pd.testing.assert_frame_equal(by_columns.results, by_records.results)
    # a rating changes one record in place (as CompareView.rate does); the frame shows it, in the same order
    for view in (by_columns, by_records):
        view._records["c5-m/b"]["human_score"] = 0.25
        view._records["c5-m/b"]["quality"] = 0.25
    pd.testing.assert_frame_equal(by_columns.results, by_records.results)
    assert by_columns.results.set_index("call_id").loc["c5-m/b", "human_score"] == 0.25
    assert list(by_columns.results["call_id"]) == list(frame["call_id"])


def test_closing_a_view_closes_every_widget_it_made_and_drops_its_calls() -> None:
    from ipywidgets.widgets import widget as ipywidget

    before = set(ipywidget._instances)
    view = CompareView(_frame(), models=MODELS, page_size=7)
    made = set(ipywidget._instances) - before
    # the off-screen cells of the pool, and every layout and style, are widgets of their own
    assert len(made) > 7 * len(MODELS) * 3 and view.model_id in made
    view.close()
    assert set(ipywidget._instances) == before and view.comm is None
    assert len(view._records) == 0 and len(view.grid_rows) == 0
    view.close()  # twice: nothing left to close
    assert set(ipywidget._instances) == before
