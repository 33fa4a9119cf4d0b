"""The comparison widgets without a browser: build them, click, assert traits and the store.

Runs go through the real runner and LiteLLM to the sandbox on a random loopback port (the ``sandbox`` fixture of
tests/conftest.py); every test has its own DuckDB file (LLMLAB_DB in tmp_path). The browser-side rendering is checked by tests/test_lab_browser.py.
"""

from __future__ import annotations

import json
import os
import time
from html.parser import HTMLParser
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import ipywidgets as W  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402

import llmlab  # noqa: E402
from llmlab.routing import project, routing_table  # noqa: E402
from llmlab.sandbox import Sandbox  # noqa: E402
from llmlab.widgets import CompareView, Lab  # noqa: E402
from llmlab.widgets.cells import ALL  # noqa: E402

HOSTILE = ('SANDBOX_ECHO:<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
           '<a href="javascript:window.__pwned=3">x</a>')
HOSTILE_ANSWER = HOSTILE[len("SANDBOX_ECHO:"):]
MODELS = ["sandbox/frontier", "sandbox/fast", "sandbox/tiny"]
# tags our own markup uses; anything else in an HTML widget would come from untrusted text
ALLOWED_TAGS = {"div", "span", "pre", "b", "i", "code", "table", "thead", "tbody", "tr", "td", "th", "br", "details", "summary"}


# -- fixtures ----------------------------------------------------------------------------------------------
# ``sandbox`` (tests/conftest.py): the session's loopback sandbox, faults cleared, LLMLAB_SANDBOX_API_BASE set.
@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox) -> llmlab.Store:
    monkeypatch.setenv("LLMLAB_DB", str(tmp_path / "llmlab.duckdb"))
    monkeypatch.setenv("LLMLAB_SANDBOX_API_BASE", sandbox.api_base)
    monkeypatch.chdir(tmp_path)
    return llmlab.Store()


def _prompt_rows() -> list[dict]:
    ps = llmlab.load_prompts("quickstart").filter(per_category=2)
    rows = [{"prompt": p.text, "category": p.category, "reference": p.reference, "scorer": p.scorer} for p in ps]
    rows.append({"prompt": HOSTILE, "category": "hostile"})
    return rows


@pytest.fixture
def run(store: llmlab.Store, sandbox: Sandbox):
    """13 prompts (12 scored quickstart prompts + one hostile echo) × 3 sandbox models; 2 tiny calls fail (400)."""
    sandbox.inject("400", model="tiny", times=2)
    result = llmlab.run(_prompt_rows(), MODELS, progress=False, name="widget-test", store=store)
    sandbox.clear_faults()
    return result


# -- helpers -----------------------------------------------------------------------------------------------
class _Parsed(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.chunks: list[str] = []

    def handle_starttag(self, tag, attrs):  # noqa: ANN001
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):  # noqa: ANN001
        self.chunks.append(data)


def parse(markup: str) -> _Parsed:
    p = _Parsed()
    p.feed(markup)
    p.close()
    return p


def text_of(markup: str) -> str:
    """What a browser shows for this markup (tags dropped, entities decoded)."""
    return "".join(parse(markup).chunks)


def all_widgets(root: W.Widget):
    seen = set()
    stack = [root]
    while stack:
        w = stack.pop()
        if id(w) in seen:
            continue
        seen.add(id(w))
        yield w
        stack.extend(getattr(w, "children", ()) or ())


def assert_safe(root: W.Widget) -> None:
    """Every HTML widget under ``root`` holds only our own tags, no event handler, no link, no source URL."""
    for w in all_widgets(root):
        if not isinstance(w, W.HTML):
            continue
        for tag, attrs in parse(w.value).tags:
            assert tag in ALLOWED_TAGS, f"unexpected <{tag}> in an HTML widget: {w.value[:300]}"
            assert not [a for a in attrs if a.lower().startswith("on")], f"event handler attribute in <{tag}>"
            assert "href" not in attrs and "src" not in attrs, f"link or source attribute in <{tag}>"


def cell_texts(view: CompareView) -> dict[tuple[int, str], str]:
    """The visible text of each grid cell of the current page, keyed by (row on the page, model)."""
    out = {}
    for r in range(len(view.page_rows)):
        for m in view.visible_models:
            out[(r, m)] = text_of(view.cell_html(r, m).value)
    return out


def _norm(text: str) -> str:
    return " ".join(str(text).split())


# -- the comparison view -----------------------------------------------------------------------------------
def test_grid_shows_every_answer_as_escaped_text(run, store):
    results = store.results(run.run_id)
    view = llmlab.compare(run)
    assert isinstance(view, W.Widget)
    assert len(view.grid_rows) == results["prompt_id"].nunique()
    assert all(set(row["cells"]) == set(MODELS) for row in view.grid_rows)

    shown: dict[str, str] = {}
    for page in range(view.n_pages):
        view.goto_page(page)
        for (r, model), text in cell_texts(view).items():
            shown[view.page_rows[r]["cells"][model]["call_id"]] = text
    assert set(shown) == set(results["call_id"])
    for rec in results.to_dict("records"):
        text = _norm(shown[rec["call_id"]])
        if rec["status"] == "ok":
            assert _norm(rec["response"])[:80] in text, (rec["model"], rec["response"][:80], text[:200])
        else:
            assert "error" in text and _norm(rec["error_type"]) in text

    hostile = results[results["category"] == "hostile"]
    ok_hostile = hostile[hostile["status"] == "ok"]
    assert len(ok_hostile) >= 1
    for cid in ok_hostile["call_id"]:
        assert HOSTILE_ANSWER in shown[cid]  # shown verbatim, as text
    assert view.filter_category.options == (ALL, *sorted(results["category"].unique()))
    assert_safe(view)


def test_error_and_cache_badges(run, store):
    results = store.results(run.run_id)
    errors = results[results["status"] == "error"]
    assert len(errors) == 2  # the two injected 400s
    view = llmlab.compare(run.run_id)
    view.filter_status.value = "error"
    assert {(r["prompt_id"]) for r in view.grid_rows} == set(errors["prompt_id"])
    # the same prompts again: every answer that was ok comes from the cache
    again = llmlab.run(_prompt_rows(), MODELS, progress=False, store=store)
    view2 = llmlab.compare(again)
    view2.filter_status.value = "cached"
    cached = store.results(again.run_id).query("cached")
    assert len(cached) == len(results) - len(errors)
    assert {r["prompt_id"] for r in view2.grid_rows} == set(cached["prompt_id"])
    texts = cell_texts(view2)
    for (r, model), text in texts.items():
        rec = view2.page_rows[r]["cells"][model]
        assert ("cached" in text) == bool(rec["cached"])


def test_filters_and_sorting(run, store):
    results = store.results(run.run_id)
    view = llmlab.compare(run)
    n_rows = len(view.grid_rows)

    view.filter_category.value = "arithmetic"
    assert {r["category"] for r in view.grid_rows} == {"arithmetic"}
    assert len(view.grid_rows) == results.loc[results["category"] == "arithmetic", "prompt_id"].nunique()
    view.filter_category.value = ALL

    view.filter_model.value = "sandbox/tiny"
    assert view.grid_rows and all(set(r["cells"]) == {"sandbox/tiny"} for r in view.grid_rows)
    # grid: corner + one header, then per row the prompt and one cell
    assert len(view.grid.children) == 2 + 2 * len(view.page_rows)
    view.filter_model.value = ALL

    view.filter_text.value = "__PWNED"  # case-insensitive, over prompts and answers
    assert [r["category"] for r in view.grid_rows] == ["hostile"]
    view.filter_text.value = ""
    assert len(view.grid_rows) == n_rows

    def means(col):
        out = []
        for r in view.grid_rows:
            vals = [c[col] for c in r["cells"].values() if c.get(col) is not None]
            out.append(sum(vals) / len(vals) if vals else None)
        return out

    view.sort_by.value = "latency_desc"
    lat = [v for v in means("latency_ms") if v is not None]
    assert lat == sorted(lat, reverse=True) and len(lat) == n_rows
    view.sort_by.value = "cost_asc"
    cost = means("cost_usd")
    known = [v for v in cost if v is not None]
    assert known == sorted(known)
    assert cost[: len(known)] == known  # rows without a cost come last
    view.sort_by.value = "order"

    small = llmlab.compare(run, page_size=5)
    assert small.n_pages == -(-n_rows // 5)
    small.next_button.click()
    assert small.page == 1 and small.page_rows == small.grid_rows[5:10]
    small.prev_button.click()
    assert small.page == 0


def test_details_show_full_answer_prompt_reference_and_scores(run, store):
    results = store.results(run.run_id)
    view = llmlab.compare(run)
    view.filter_category.value = "arithmetic"
    view.cell_button(0, "sandbox/frontier").click()
    row = view.page_rows[0]
    rec = results.set_index("call_id").loc[view.selected_call_id]
    assert rec["model"] == "sandbox/frontier" and rec["prompt_id"] == row["prompt_id"]
    assert view.detail_box.layout.display != "none"
    detail = text_of(view.detail_html.value)
    assert rec["prompt"] in detail and rec["reference"] in detail and rec["response"] in detail
    assert f"{rec['auto_score']:.2f}" in detail
    assert view.selected_call_id in detail

    # side by side: model A is the selected one, model B another model's answer to the same prompt
    view.compare_b.value = "sandbox/tiny"
    other = results[(results["prompt_id"] == rec["prompt_id"]) & (results["model"] == "sandbox/tiny")].iloc[0]
    sbs = text_of(view.side_by_side.value)
    assert "sandbox/frontier" in sbs and "sandbox/tiny" in sbs
    assert rec["response"] in sbs
    assert (other["response"] if other["status"] == "ok" else other["error_type"]) in sbs

    hostile = results[(results["category"] == "hostile") & (results["status"] == "ok")].iloc[0]
    view.select(hostile["call_id"])
    assert HOSTILE_ANSWER in text_of(view.detail_html.value)
    assert HOSTILE in text_of(view.detail_html.value)  # the prompt, as text
    assert_safe(view)
    with pytest.raises(KeyError):
        view.select("no-such-call")


def test_rating_buttons_save_human_scores_used_as_quality(run, store):
    view = llmlab.compare(run)
    view.good_button.click()  # nothing selected yet: reported, nothing saved
    assert "not saved" in text_of(view.rating_status.value)
    assert store.scores(run.run_id).query("kind == 'human'").empty

    view.filter_category.value = "code"
    view.cell_button(0, "sandbox/fast").click()
    cid = view.selected_call_id
    view.rating_comment.value = 'clear <b>answer</b> & "short"'
    view.good_button.click()
    human = store.scores(run.run_id).query("kind == 'human'")
    assert human[["call_id", "scorer", "score", "comment"]].values.tolist() == [
        [cid, "human", 1.0, 'clear <b>answer</b> & "short"']]
    assert store.results(run.run_id).set_index("call_id").loc[cid, "quality"] == 1.0
    assert "human 1.00" in text_of(view.cell_html(0, "sandbox/fast").value)
    assert 'clear <b>answer</b> & "short"' in text_of(view.detail_html.value)
    assert_safe(view)

    view.rating_comment.value = ""
    view.star_buttons[1].click()  # 2 of 5 → (2 - 1) / 4
    assert store.results(run.run_id).set_index("call_id").loc[cid, "quality"] == pytest.approx(0.25)
    assert view.record(cid)["quality"] == pytest.approx(0.25)
    view.bad_button.click()
    assert store.results(run.run_id).set_index("call_id").loc[cid, "human_score"] == 0.0
    assert len(store.scores(run.run_id).query("kind == 'human'")) == 3
    view.filter_status.value = "rated"
    assert [r["prompt_id"] for r in view.grid_rows] == [view.record(cid)["prompt_id"]]

    with pytest.raises(ValueError):
        view.rate(cid, 9, scale="stars")


def test_reopening_a_run_shows_it_with_its_ratings(run, store):
    first = llmlab.compare(run)
    target = store.results(run.run_id).query("status == 'ok'").iloc[3]
    first.rate(target["call_id"], 4, scale="stars", comment="mostly right")

    again = llmlab.compare(run.run_id, store=store)  # a fresh view, from the store only
    rec = again.record(target["call_id"])
    assert rec["human_score"] == pytest.approx(0.75) and rec["human_comment"] == "mostly right"
    assert rec["quality"] == pytest.approx(0.75)
    assert rec["response"] == target["response"]
    again.filter_status.value = "rated"
    assert [r["prompt_id"] for r in again.grid_rows] == [target["prompt_id"]]
    again.select(target["call_id"])
    assert "mostly right" in text_of(again.detail_html.value)
    assert "widget-test" in text_of(again.header.value) and "1 rated" in text_of(again.header.value)
    assert llmlab.compare("last", store=store).run_id == run.run_id


def test_routing_tab_updates_live_and_exports(run, store, tmp_path):
    results = store.results(run.run_id)
    view = llmlab.compare(run)
    view.tabs.selected_index = 2
    view.min_samples.value = 1
    for tol in (0.0, 0.3):
        view.tolerance.value = tol
        expected = routing_table(results, tolerance=tol, min_n=1)
        got = view.routing_table
        assert got[["category", "model"]].values.tolist() == expected[["category", "model"]].values.tolist()
        assert view.projection["quality"] == pytest.approx(project(expected, results)["quality"])
        shown = text_of(view.routing_html.value)
        assert all(m in shown for m in expected["model"])
    p95 = float(results.query("status == 'ok'")["latency_ms"].median())
    view.latency_limit.value = p95
    assert view.routing_kwargs()["max_latency_p95_ms"] == p95
    expected = routing_table(results, tolerance=0.3, min_n=1, max_latency_p95_ms=p95)
    assert view.routing_table["model"].tolist() == expected["model"].tolist()
    assert "per 1k prompts" in text_of(view.projection_html.value)

    # a human rating changes the quality the table is fitted on
    view.latency_limit.value = 0
    view.tolerance.value = 0.0
    for cid in results.query("model == 'sandbox/frontier'")["call_id"]:
        view.rate(cid, False)
    assert view.routing_table.set_index("category").loc["default", "model"] != "sandbox/frontier"

    target = tmp_path / "configs" / "routing.yaml"
    view.export_path.value = str(target)
    view.export_button.click()
    assert target.is_file() and view.exported_path == target.resolve()
    cfg = yaml.safe_load(target.read_text())
    tags = sorted(t for d in cfg["model_list"] if d["model_name"] == "llmlab-router" for t in d["litellm_params"]["tags"])
    assert tags == sorted(view.routing_table["category"])
    assert str(target.resolve()) in text_of(view.export_status.value)


def test_routing_tab_explains_when_nothing_is_scored(store):
    res = llmlab.run(["Say hello.", "Name a colour."], ["sandbox/fast", "sandbox/tiny"], progress=False, store=store)
    view = llmlab.compare(res)
    view.tabs.selected_index = 2
    assert view.routing_table is None and "quality" in view.routing_error
    assert view.export_button.disabled
    assert "no routing table" in text_of(view.routing_html.value)


def test_charts_tab_holds_plotly_figures_without_answers(run):
    view = llmlab.compare(run)
    assert view.charts_output.outputs == ()  # built when the tab is opened
    view.tabs.selected_index = 1
    figures = [o for o in view.charts_output.outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(figures) == len(view.chart_figures) >= 3
    dumped = json.dumps(view.charts_output.outputs)
    assert "__pwned" not in dumped  # answers never go into charts
    assert "simulated" in dumped


def test_compare_a_results_frame_without_store(run, store):
    view = llmlab.compare(store.results(run.run_id))
    assert view.run_id == run.run_id and len(view.grid_rows) == 13
    view.select(view.grid_rows[0]["cells"]["sandbox/frontier"]["call_id"])
    view.good_button.click()
    assert "no store" in text_of(view.rating_status.value)


# -- the lab -----------------------------------------------------------------------------------------------
def test_lab_runs_a_namespace_dataframe_and_fills_the_view(store):
    frame = pd.DataFrame({"question": ["What is 2 + 2? Reply with the number only.", "Say hi."],
                          "category": ["math", "chat"]})
    lab = llmlab.lab(store=store, namespace={"my_prompts": frame, "_hidden": frame, "x": 1})
    values = [v for _, v in lab.source_select.options]
    assert ("frame", "my_prompts") in values and ("bundled", "quickstart") in values
    assert ("frame", "_hidden") not in values
    lab.source_select.value = ("frame", "my_prompts")
    lab.models_select.value = ("sandbox/frontier", "@cheap")
    lab.temperature.value = 0.5
    lab.samples.value = 2
    lab.run_name.value = "from the lab"
    lab.estimate_button.click()
    assert "8 calls = 2 prompts × 2 models × 2 samples" in text_of(lab.status_html.value)

    lab.run_button.click()
    assert lab.wait(60) == "finished", text_of(lab.status_html.value)
    view = lab.view
    assert isinstance(view, CompareView) and view in lab.results_box.children
    assert view.models == ["sandbox/frontier", "sandbox/tiny"]
    assert len(view.grid_rows) == 4  # 2 prompts × 2 samples
    assert all(c["status"] == "ok" for r in view.grid_rows for c in r["cells"].values())
    meta = store.run(lab.run_id)
    assert meta["status"] == "finished" and meta["name"] == "from the lab"
    assert meta["params"]["temperature"] == 0.5 and meta["params"]["samples"] == 2
    assert lab.progress.value == lab.progress.max == 8
    assert "8/8 calls" in text_of(lab.progress_html.value)
    assert lab.runs_select.options[0][1] == lab.run_id
    assert not lab.run_button.disabled and lab.cancel_button.disabled


def test_lab_finds_dataframes_in_the_ipython_namespace(store, monkeypatch):
    import types

    import IPython

    user_ns = {"evals": pd.DataFrame({"prompt": ["Say hi."]}), "n": 3}
    monkeypatch.setattr(IPython, "get_ipython", lambda: types.SimpleNamespace(user_ns=user_ns))
    lab = llmlab.lab(store=store)
    assert ("frame", "evals") in [v for _, v in lab.source_select.options]
    user_ns["later"] = pd.DataFrame({"prompt": ["Say bye.", "Say hello."]})
    lab.refresh_sources_button.click()
    labels = dict((v, label) for label, v in lab.source_select.options)
    assert labels[("frame", "later")] == "later (DataFrame, 2 rows)"
    lab.source_select.value = ("frame", "later")
    assert [p.text for p in lab.selected_prompts()] == ["Say bye.", "Say hello."]


def test_lab_results_fill_in_live_and_cancel_keeps_what_completed(tmp_path, monkeypatch):
    slow = Sandbox(port=0, latency_scale=1.0).start()  # real-time latencies: seconds per call
    try:
        monkeypatch.setenv("LLMLAB_DB", str(tmp_path / "llmlab.duckdb"))
        monkeypatch.setenv("LLMLAB_SANDBOX_API_BASE", slow.api_base)
        lab = llmlab.lab(prompts="quickstart", models=["sandbox/frontier", "sandbox/balanced"], max_prompts=6,
                         concurrency=1)
        lab.run_button.click()
        assert lab.running and lab.run_button.disabled and not lab.cancel_button.disabled
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until the grid shows some answers while others are pending
            statuses = [c["status"] for r in lab.view.grid_rows for c in r["cells"].values()]
            if "ok" in statuses and "pending" in statuses:
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"the grid never showed a partly finished run: {statuses}")
        lab.cancel_button.click()
        assert lab.wait(30) == "cancelled"
        store = llmlab.Store()
        assert store.run(lab.run_id)["status"] == "cancelled"
        rows = store.results(lab.run_id)
        assert len(rows) == 12  # every planned call ends as one row
        assert (rows["status"] == "ok").sum() >= 1
        assert set(rows.loc[rows["status"] == "error", "error_type"]) == {"cancelled"}
        shown = [c["status"] for r in lab.view.grid_rows for c in r["cells"].values()]
        assert sorted(shown) == sorted(rows["status"])  # the view was reloaded from the store
        assert "cancelled" in text_of(lab.progress_html.value)
        assert not lab.run_button.disabled and lab.cancel_button.disabled
    finally:
        slow.stop()


def test_lab_reports_bad_input_as_text(store, tmp_path):
    lab = llmlab.lab(store=store, namespace={})
    lab.models_select.value = ()
    lab.models_text.value = "<img src=x onerror=alert(1)>"
    lab.run_button.click()
    assert lab.wait(30) == "failed"
    status = text_of(lab.status_html.value)
    assert "<img src=x onerror=alert(1)>" in status and "ModelError" in status
    assert_safe(lab)

    lab.models_text.value = "@no-such-alias"
    lab.run_button.click()  # expanded before starting: reported at once
    assert "no-such-alias" in text_of(lab.status_html.value) and not lab.running

    lab.models_text.value = "sandbox/fast"
    lab.source_select.value = ("path", None)
    lab.path_text.value = str(tmp_path / "missing.csv")
    lab.run_button.click()
    assert lab.wait(30) == "failed"
    assert "missing.csv" in text_of(lab.status_html.value)
    assert store.runs().empty


def test_lab_reopens_a_past_run(run, store):
    lab = llmlab.lab(store=store)
    assert run.run_id in [v for _, v in lab.runs_select.options]
    lab.runs_select.value = run.run_id
    lab.open_run_button.click()
    assert isinstance(lab.view, CompareView) and lab.view.run_id == run.run_id
    assert lab.results_box.children == (lab.view,)
    assert len(lab.view.grid_rows) == 13
    assert isinstance(lab, Lab)
    # opening it again replaces the view, and the replaced one is closed: its widgets and calls are freed
    first = lab.view
    lab.open_run_button.click()
    assert lab.view is not first and len(lab.view.grid_rows) == 13 and lab.view.comm is not None
    assert first.comm is None and first.grid.comm is None and len(first._records) == 0


def test_grid_rows_filter_and_sort_as_pure_functions():
    from llmlab.widgets.grid import grid_rows, status_match

    order = [("p1", 0), ("p2", 0), ("p3", 0)]
    index = {("p1", 0): {"a": "c1", "b": "c2"}, ("p2", 0): {"a": "c3"}, ("p3", 0): {"a": "c4"}}
    records = {"c1": {"status": "ok", "latency_ms": 300.0, "response": "Paris"},
               "c2": {"status": "error", "latency_ms": None, "error_type": "Timeout"},
               "c3": {"status": "ok", "latency_ms": 100.0, "cached": True, "response": "Rome"},
               "c4": {"status": "ok", "latency_ms": None, "human_score": 1.0, "response": "Oslo"}}
    info = {"p1": {"category": "geo", "prompt": "Capital of France?"}, "p2": {"category": "geo", "prompt": "Italy?"},
            "p3": {"category": "misc", "prompt": "Norway?"}}
    ids = lambda rows: [r["prompt_id"] for r in rows]  # noqa: E731
    assert ids(grid_rows(order, index, records, info, ["a", "b"])) == ["p1", "p2", "p3"]
    assert ids(grid_rows(order, index, records, info, ["a", "b"], category="geo")) == ["p1", "p2"]
    assert ids(grid_rows(order, index, records, info, ["a", "b"], status="error")) == ["p1"]
    assert ids(grid_rows(order, index, records, info, ["a"], status="cached")) == ["p2"]
    assert ids(grid_rows(order, index, records, info, ["a"], status="rated")) == ["p3"]
    assert ids(grid_rows(order, index, records, info, ["a"], text="ROME")) == ["p2"]
    assert ids(grid_rows(order, index, records, info, ["a"], text="timeout")) == []
    assert ids(grid_rows(order, index, records, info, ["a", "b"], text="timeout")) == ["p1"]
    # sorted by mean latency, rows without a latency last
    assert ids(grid_rows(order, index, records, info, ["a"], sort="latency_asc")) == ["p2", "p1", "p3"]
    assert ids(grid_rows(order, index, records, info, ["a"], sort="latency_desc")) == ["p1", "p2", "p3"]
    assert ids(grid_rows(order, index, records, info, ["b"])) == ["p1"]  # only rows with a visible cell
    assert status_match({"status": "pending"}, "unrated") is False


def test_lab_samples_prompts_across_categories_and_picks_models_with_checkboxes(store):
    from llmlab.widgets.lab import ModelPicker

    lab = llmlab.lab(store=store, prompts="quickstart", models=["sandbox/frontier", "sandbox/tiny"], max_prompts=12)
    assert isinstance(lab.models_select, ModelPicker)
    assert lab.models_select.value == ("sandbox/frontier", "sandbox/tiny")
    labels = [box.description for box in lab.models_select.checkboxes.values()]
    assert any(label.startswith("@sandbox → sandbox/frontier, sandbox/balanced") for label in labels)  # whole label
    lab.models_select.checkboxes["sandbox/tiny"].value = False
    lab.models_select.checkboxes["@cheap"].value = True
    assert lab.selected_models() == ["sandbox/frontier", "sandbox/tiny"]          # @cheap is sandbox/tiny
    ps = lab.selected_prompts()
    counts = ps.to_frame().groupby("category").size()
    assert len(ps) == 12 and len(counts) == 6 and set(counts) == {2}              # 2 of each of the 6 categories
    full = llmlab.load_prompts("quickstart")
    assert ps.sample(12, by_category=True) == full.sample(12, by_category=True)   # deterministic for a seed
    assert len(full.sample(500, by_category=True)) == len(full)


def test_compare_view_headers_colours_side_panel_and_expandable_answers(store, sandbox):
    from llmlab.widgets.cells import _cell_html, model_header_html, quality_color

    long_hostile = "SANDBOX_ECHO:" + "<b>bold?</b> " * 60 + "<script>window.__pwned=1</script>END"
    rows = [*_prompt_rows()[:6], {"prompt": long_hostile, "category": "hostile"}]
    res = llmlab.run(rows, ["sandbox/frontier", "sandbox/tiny"], progress=False, store=store)
    view = llmlab.compare(res.run_id, store=store)
    # per-model header: name, coloured quality with n, p50 latency, cost
    header = view._headers[0].value
    assert "sandbox/frontier" in text_of(header) and "quality " in text_of(header) and "p50 " in text_of(header)
    assert "hsl(" in header
    # quality on a red-to-green scale
    assert quality_color(0.0)[0].startswith("hsl(0,") and quality_color(1.0)[0].startswith("hsl(120,")
    assert quality_color(0.5)[0].startswith("hsl(60,")
    # a long answer opens in place, still escaped: the whole text is there, no live tag
    rec = next(r for r in view.results.to_dict("records") if str(r["response"] or "").endswith("END"))
    cell = _cell_html(rec)
    assert "<details" in cell and "more (" in cell and "<script>" not in cell and "&lt;script&gt;" in cell
    import re

    shown = re.sub(r"… more \([\d,]+ chars\)", "", text_of(cell))   # the "more" toggle's own label
    assert shown.count("<b>bold?</b>") == 60 and "<script>window.__pwned=1</script>END" in shown
    assert_safe(view)
    # the details open beside the grid: the grid and the detail box share one row container
    answers = view.tabs.children[0]
    row = [c for c in answers.children if isinstance(c, W.HBox) and view.grid in c.children]
    assert row and view.detail_box in row[0].children
    view.select(rec["call_id"])
    assert view.detail_box.layout.display != "none"
    assert model_header_html("m", []).count("llmlab-badge") == 0   # nothing to say yet: just the name


def test_compare_view_shows_a_prompts_image_as_a_thumbnail_widget_not_html(store, sandbox, tmp_path):
    import base64

    png = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
    img = tmp_path / "dot.png"
    img.write_bytes(png)
    rows = [{"messages": [{"role": "user", "content": [
        {"type": "text", "text": "What colour is this pixel?"}, {"type": "image_url", "image_url": {"url": str(img)}}]}]}]
    res = llmlab.run(rows, ["sandbox/fast"], progress=False, store=store)
    view = llmlab.compare(res.run_id, store=store)
    call_id = res.results["call_id"].iloc[0]
    view.select(call_id)
    (thumb,) = view.detail_images.children
    image = thumb.children[0]
    assert isinstance(image, W.Image) and image.value == png and image.format == "png"
    assert "dot.png" in thumb.children[1].value
    assert_safe(view)                                   # no <img src=...> in any HTML widget
    img.write_bytes(png + b"changed")                   # the file changed since the run: not shown as if it were
    view.select(call_id)
    (note,) = view.detail_images.children
    assert isinstance(note, W.Label) and "changed since the run" in note.value
    img.unlink()
    view.select(call_id)
    assert "not found" in view.detail_images.children[0].value
