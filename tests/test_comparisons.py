"""Paired comparisons everywhere: the per-category summary with the minimum detectable difference, the report's
paired table and ranking chart, judges checked against people beside their scores, the routing table's judge
trust level, and the pick-two-models widget."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

import llmlab
from llmlab import analysis
from llmlab.routing import routing_table
from llmlab.scoring.judge import SelfPreferenceWarning
from llmlab.store import Store

MODELS = ["sandbox/frontier", "sandbox/balanced", "sandbox/tiny"]

pytestmark = pytest.mark.xdist_group("comparisons")  # one worker builds the module fixture once


@pytest.fixture(scope="module")
def judged(sandbox_server, tmp_path_factory):
    """A run of three sandbox models on three categories, judged by balanced (a model in the run), a third of its
    tiny answers rated by a person; in a module store."""
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mp.setenv("LLMLAB_SANDBOX_API_BASE", sandbox_server.api_base)
        store = Store(tmp_path_factory.mktemp("comparisons") / "llmlab.duckdb")
        ps = llmlab.load_prompts("quickstart").filter(categories=["arithmetic", "reasoning", "classification"])
        res = llmlab.run(ps, MODELS, store=store, progress=False, concurrency=32)
        yield store, res


def _synthetic(n: int, qa: float, qb: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        for model, q in (("a", qa), ("b", qb)):
            rows.append({"model": model, "category": "c1" if i % 2 else "c2", "prompt_id": f"p{i}", "status": "ok",
                         "quality": float(rng.random() < q)})
    return pd.DataFrame(rows)


def test_paired_summary_finds_a_planted_difference_and_says_when_it_cannot_decide():
    big = analysis.paired_summary(_synthetic(400, 0.9, 0.6, 1), n_boot=200)
    assert list(big.columns) == list(analysis.PAIRED_SUMMARY_COLUMNS)
    assert list(big["category"]) == ["c1", "c2", "(all)"]
    overall = big.iloc[-1]
    assert overall["model_a"] == "a" and overall["decided"] and overall["diff"] == pytest.approx(0.3, abs=0.06)
    assert overall["mdd"] < overall["diff"] and overall["prompts_needed"] < 400
    small = analysis.paired_summary(_synthetic(16, 0.7, 0.6, 2), n_boot=200)
    assert not small["decided"].any()
    # a difference smaller than the smallest detectable needs more prompts than the run has
    undecided = small[small["diff"] > 0]
    assert ((undecided["mdd"] > undecided["diff"]) | undecided["mdd"].isna()).all()
    assert (undecided["prompts_needed"].dropna() > undecided.loc[undecided["prompts_needed"].notna(), "n"]).all()
    with pytest.raises(llmlab.LLMLabError, match="two scored models"):
        analysis.paired_summary(_synthetic(10, 0.5, 0.5, 3).query("model == 'a'"))


def test_judges_beside_human_agreement_and_routing_trust_level(judged, sandbox):
    store, res = judged
    with pytest.warns(SelfPreferenceWarning):
        llmlab.judge(res.run_id, "sandbox/balanced", store=store)
    results = store.results(res.run_id)
    tiny = results[results["model"] == "sandbox/tiny"].head(24)
    for call_id, auto in zip(tiny["call_id"], tiny["auto_score"], strict=True):   # people agree with the checks
        llmlab.rate(call_id, bool(auto >= 0.5), store=store)
    results = store.results(res.run_id)
    overview = analysis.judge_overview(store.scores(res.run_id), models=MODELS)
    row = overview.iloc[0]
    assert row["judge"] == "judge:sandbox/balanced" and row["self_judged"] and row["n_with_human"] == 24
    ref = analysis.judge_agreement(store.scores(res.run_id))
    assert row["kappa"] == pytest.approx(ref[ref["rater"] == "judge:sandbox/balanced"]["kappa"].iloc[0])

    kappa = row["kappa"]
    trusted = analysis.trusted_quality(results, kappa - 0.01)
    assert trusted.attrs["judge_trusted"] and (trusted["quality"].equals(results["quality"]))
    distrusted = analysis.trusted_quality(results, kappa + 0.01)
    assert not distrusted.attrs["judge_trusted"]
    expected = results["human_score"].where(results["human_score"].notna(), results["auto_score"])
    assert np.allclose(distrusted["quality"], expected, equal_nan=True)
    table = routing_table(results, tolerance=0.0, min_n=1, min_judge_agreement=kappa + 0.01)
    assert table.equals(routing_table(distrusted, tolerance=0.0, min_n=1))
    assert routing_table(results, tolerance=0.0, min_n=1, min_judge_agreement=-1.0).equals(
        routing_table(results, tolerance=0.0, min_n=1))
    no_humans = results.assign(human_score=np.nan)
    assert not analysis.trusted_quality(no_humans, 0.0).attrs["judge_trusted"]    # unverifiable: not trusted


def test_report_has_paired_table_ranking_chart_and_judges(judged, sandbox, tmp_path):
    store, res = judged
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pj = llmlab.judge_pairwise(res.run_id, judge="sandbox/frontier", store=store, n_boot=50, concurrency=32)
        llmlab.judge(res.run_id, "sandbox/balanced", store=store)              # cached when the test above ran
        path = llmlab.report(res.run_id, tmp_path / "r.html", store=store)
    html = path.read_text(encoding="utf-8")
    for anchor in ('id="paired"', 'id="paired-summary-table"', 'id="chart-ranking"', 'id="ranking-table"',
                   'id="position-bias-table"'):
        assert anchor in html
    table = html[html.index('id="paired-summary-table"'):]
    table = table[:table.index("</table>")]
    assert table.count("<tr>") == 1 + 3 + 1          # header, three categories, overall
    assert "smallest detectable" in table and "(all)" in table
    ranking = html[html.index('id="ranking-table"'):]
    ranking = ranking[:ranking.index("</table>")]
    order = re.findall(r"<td>(sandbox/\w+)</td>", ranking)
    assert order == list(pj.ranking["model"]) == MODELS
    assert "pairwise judge sandbox/frontier" in html
    judges = html[html.index('id="judges-table"'):]
    assert "judge:sandbox/balanced" in judges[:judges.index("</table>")] and "expect self-preference" in html


def test_report_escapes_model_ids_in_the_new_sections():
    from llmlab.views.comparisons import comparison_sections

    evil = "<img src=x onerror=alert(1)>"
    frame = _synthetic(40, 0.8, 0.5, 4).replace({"model": {"a": evil}})
    html = comparison_sections(frame)
    assert evil not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_pick_two_widget_shows_per_category_differences(judged, sandbox):
    from llmlab.widgets import CompareView

    store, res = judged
    view = CompareView.from_store(res.run_id, store=store)
    assert view.tabs.titles[-1] == "Pick two"
    view.pairs.model_a.value, view.pairs.model_b.value = "sandbox/frontier", "sandbox/tiny"
    view.tabs.selected_index = 3
    got = view.pairs.comparison
    expected = analysis.compare_models(store.results(res.run_id), "sandbox/frontier", "sandbox/tiny", by="category",
                                       n_boot=1000)
    assert got["category"].tolist() == expected["category"].tolist()
    assert np.allclose(got["diff"], expected["diff"]) and np.allclose(got["p_adjusted"], expected["p_adjusted"])
    assert got["mdd"].notna().any()
    assert "arithmetic" in view.pairs.table_html.value and "p (Holm)" in view.pairs.table_html.value
    assert view.pairs.chart_output.outputs[0]["data"]["application/vnd.plotly.v1+json"]["data"]
    view.pairs.model_b.value = "sandbox/frontier"
    assert view.pairs.update() is None and "two different" in view.pairs.error


def test_run_result_paired_summary_is_the_analysis_one(judged):
    store, res = judged
    got = res.refresh().paired_summary(n_boot=100)
    expected = analysis.paired_summary(store.results(res.run_id), n_boot=100)
    pd.testing.assert_frame_equal(got, expected)
    assert list(got["category"]) == ["arithmetic", "classification", "reasoning", "(all)"]
