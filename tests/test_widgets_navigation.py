"""The comparison view's keyboard-reachable stepping between calls, its download button and the
compare-two-runs view (``llmlab.compare(run, other=...)``)."""

from __future__ import annotations

import base64
import io
import json
import re

import pandas as pd
import pytest

import llmlab
from llmlab.transfer import results_text
from llmlab.widgets.download import DownloadPanel
from llmlab.widgets.run_diff import RunDiffView
from test_widgets import HOSTILE_ANSWER, MODELS, _prompt_rows, assert_safe, run, store, text_of  # noqa: F401


def _cell_call(view, row, model):
    return view.grid_rows[row]["cells"][model]["call_id"]


def test_stepping_moves_through_models_then_prompts_across_pages(run):
    view = llmlab.compare(run, page_size=4)
    models = view.visible_models
    first = _cell_call(view, 0, models[0])
    view.select(first)
    view.next_call_button.click()                       # the next model's answer to the same prompt
    assert view.selected_call_id == _cell_call(view, 0, models[1])
    view.next_prompt_button.click()                     # the same model, next prompt
    assert view.selected_call_id == _cell_call(view, 1, models[1])
    view.prev_call_button.click()
    view.prev_call_button.click()                       # wraps back to the previous row's last model
    assert view.selected_call_id == _cell_call(view, 0, models[-1])
    for _ in range(4):                                  # stepping down past the page follows the selection
        view.next_prompt_button.click()
    assert view.selected_call_id == _cell_call(view, 4, models[-1]) and view.page == 1
    assert "2px solid" in str(view._slot(0, models[-1])[0].layout.border)   # the selected cell is outlined
    view.select(first)
    assert view.step_selection(0, -1) is None and view.selected_call_id == first   # the top stays put


def test_stepping_follows_the_filters(run):
    view = llmlab.compare(run)
    view.filter_model.value = "sandbox/fast"
    view.select(_cell_call(view, 0, "sandbox/fast"))
    view.next_call_button.click()                       # one column shown: the next call is the next prompt's
    assert view.selected_call_id == _cell_call(view, 1, "sandbox/fast")


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_the_download_button_gives_the_same_file_as_the_cli(run, fmt, capsys):
    view = llmlab.compare(run)
    view.rate(_cell_call(view, 0, MODELS[0]), True)      # a rating made in the view is in the file
    view.download.format.value = fmt
    view.download.button.click()
    link = view.download.link_html.value
    href = re.search(r'href="([^"]+)"', link).group(1)
    prefix = f"data:{'text/csv' if fmt == 'csv' else 'application/json'};charset=utf-8;base64,"
    assert href.startswith(prefix)
    content = base64.b64decode(href[len(prefix):]).decode("utf-8")
    assert re.search(rf'download="{run.run_id}\.{fmt}"', link)
    assert content == results_text(run.store.results(run.run_id), fmt)
    frame = pd.read_csv(io.StringIO(content)) if fmt == "csv" else pd.DataFrame(json.loads(content))
    assert len(frame) == len(run.store.results(run.run_id)) and frame["human_score"].notna().sum() == 1
    assert HOSTILE_ANSWER in set(frame["response"].dropna()) and "<script>" not in link   # only base64 in the page
    assert not [a for a in re.findall(r"<a ([^>]*)>", link)[0].split() if a.lower().startswith("on")]
    from llmlab.cli import main

    assert main(["export", run.run_id, f"--{fmt}"]) == 0
    assert capsys.readouterr().out == content


def test_a_download_too_large_for_the_page_names_the_cli_command(run):
    panel = DownloadPanel(lambda: run.store.results(run.run_id), run.run_id, max_bytes=100)
    panel.prepare()
    assert panel.last_text is None and "href" not in panel.link_html.value
    assert f"llmlab export {run.run_id} --csv -o {run.run_id}.csv" in text_of(panel.link_html.value)


def test_compare_two_runs_shows_paired_differences_and_changed_answers(run, store, sandbox):
    sandbox.inject("400", model="fast", times=3)
    other = llmlab.run(_prompt_rows(), MODELS, progress=False, name="widget-test-2", store=store, cache=False,
                       temperature=0.9)
    sandbox.clear_faults()
    view = llmlab.compare(run, other=other)
    assert isinstance(view, RunDiffView)
    assert (view.run_a.value, view.run_b.value) == (run.run_id, other.run_id)
    comp = view.comparison
    assert sorted(comp["model"]) == sorted(MODELS) and (comp["n_matched"] == 13).all()
    fast = comp.set_index("model").loc["sandbox/fast"]
    assert fast["error_rate_b"] == pytest.approx(3 / 13)
    shown = text_of(view.summary_html.value)
    for model in MODELS:
        assert model in shown
        assert isinstance(view.paired[model], pd.DataFrame)     # a paired test per model in both runs
    p = view.paired["sandbox/fast"].iloc[-1]
    assert f"{-p['diff']:+.3f}" in shown                         # B − A, with its interval
    assert "23%" in shown                                        # fast's error rate in run B
    assert len(view.changed["sandbox/fast"]) >= 3                # the failed calls changed their answers
    assert "(error)" in text_of(view.changed_html.value)
    assert view.chart_output.outputs and "plotly" in json.dumps(view.chart_output.outputs[0]["data"])[:20000]
    assert_safe(view)                                            # the hostile echo is text, not markup
    view.swap_button.click()
    assert (view.run_a.value, view.run_b.value) == (other.run_id, run.run_id)
    assert view.comparison.set_index("model").loc["sandbox/fast", "error_rate_a"] == pytest.approx(3 / 13)


def test_compare_two_runs_refuses_an_unknown_run(run):
    with pytest.raises(llmlab.StoreError, match="no-such-run"):
        llmlab.compare(run, other="no-such-run")


def test_opening_a_view_warms_the_charts_imports_and_charts_need_no_scipy_stats(tmp_path):
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent('''
        import sys, threading
        import pandas as pd
        import llmlab
        rows = [{"run_id": "r1", "call_id": f"c{i}{m}", "prompt_id": f"p{i}", "sample_index": 0, "category": "x",
                 "model": m, "status": "ok", "response": "a", "latency_ms": 100.0 + i, "cost_usd": 0.001,
                 "quality": float(i % 2), "cached": False} for i in range(8) for m in ("a", "b")]
        view = llmlab.compare(pd.DataFrame(rows))
        warm = [t for t in threading.enumerate() if t.name == "llmlab-chart-warmup"]
        for t in warm:
            t.join(120)
        print("warmed", bool(warm) and "plotly.graph_objects" in sys.modules)
        figures = view.render_charts()
        print("charts", sorted(figures))
        print("scipy.stats", "scipy.stats" in sys.modules)
    ''')
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout.splitlines()
    assert "warmed True" in out
    assert any(line.startswith("charts [") and "latency" in line for line in out)
    assert "scipy.stats False" in out      # a t quantile from scipy.special: the first chart waits less
