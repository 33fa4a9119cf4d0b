"""llmlab.analysis.paired (and agreement / ranking): paired tests, intervals, power, pass@k, kappa, Bradley-Terry.

Fast and offline: synthetic frames only, no store, no LiteLLM.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from llmlab.analysis import paired
from llmlab.errors import AnalysisError


def frame_from(qa, qb, categories=None, models=("a", "b")):
    """A minimal results frame: one call per (model, prompt), qualities given per prompt."""
    rows = []
    for i, (x, y) in enumerate(zip(qa, qb)):
        cat = categories[i] if categories is not None else "c"
        for model, q in zip(models, (x, y)):
            rows.append({"run_id": "r", "call_id": f"{model}:{i}", "prompt_id": f"p{i}", "sample_index": 0,
                         "model": model, "category": cat, "status": "ok", "quality": float(q),
                         "latency_ms": 1.0, "cost_usd": 0.0})
    return pd.DataFrame(rows)


def binary_pair(both, a_only, b_only, neither):
    qa = [1] * both + [1] * a_only + [0] * b_only + [0] * neither
    qb = [1] * both + [0] * a_only + [1] * b_only + [0] * neither
    return qa, qb


# --- tests and p-values ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("table", [(10, 8, 2, 5), (30, 3, 12, 20), (4, 0, 0, 6), (1, 7, 6, 0)])
def test_mcnemar_p_value_equals_statsmodels(table):
    both, a_only, b_only, neither = table
    qa, qb = binary_pair(*table)
    out = paired.compare_models(frame_from(qa, qb), "a", "b", by=None, n_boot=0)
    assert len(out) == 1
    row = out.iloc[0]
    assert row["test"] == "mcnemar"
    expected = mcnemar([[both, a_only], [b_only, neither]], exact=True).pvalue
    assert row["p_value"] == pytest.approx(expected, abs=1e-12)
    assert row["n_discordant"] == a_only + b_only
    assert (row["wins_a"], row["wins_b"]) == (a_only, b_only)
    assert row["n"] == sum(table)
    assert row["diff"] == pytest.approx((a_only - b_only) / sum(table))


def test_wilcoxon_p_value_equals_scipy_zsplit():
    rng = np.random.default_rng(3)
    qa = np.round(rng.uniform(0, 1, 40), 2)
    qb = np.clip(np.round(qa - rng.normal(0.1, 0.2, 40), 2), 0, 1)
    qb[:5] = qa[:5]  # a few ties (zero differences) exercise zero_method
    out = paired.compare_models(frame_from(qa, qb), "a", "b", by=None, n_boot=0).iloc[0]
    assert out["test"] == "wilcoxon"
    assert out["p_value"] == pytest.approx(stats.wilcoxon(qa, qb, zero_method="zsplit").pvalue, abs=1e-12)
    assert out["diff"] == pytest.approx(qa.mean() - qb.mean())
    assert out["n_discordant"] == int((qa != qb).sum())


def test_samples_are_averaged_per_prompt_before_pairing():
    # two samples per prompt: a scores (1, 0) -> 0.5 per prompt, b scores (0, 0) -> 0; graded -> wilcoxon
    rows = []
    for p in range(6):
        for s in range(2):
            rows.append({"prompt_id": f"p{p}", "sample_index": s, "model": "a", "category": "c", "status": "ok",
                         "quality": float(s == 0)})
            rows.append({"prompt_id": f"p{p}", "sample_index": s, "model": "b", "category": "c", "status": "ok",
                         "quality": 0.0})
    out = paired.compare_models(pd.DataFrame(rows), "a", "b", by=None, n_boot=0).iloc[0]
    assert out["n"] == 6
    assert out["quality_a"] == pytest.approx(0.5)
    assert out["test"] == "wilcoxon"


def test_only_prompts_both_answered_and_failures_count_as_zero():
    qa, qb = binary_pair(5, 3, 1, 3)
    frame = frame_from(qa, qb)
    extra = pd.DataFrame([{"prompt_id": "only-a", "sample_index": 0, "model": "a", "category": "c",
                           "status": "ok", "quality": 1.0}])
    frame = pd.concat([frame, extra], ignore_index=True)
    # b fails on p0 (a scored prompt): counts as 0, like summarize()
    frame.loc[(frame["model"] == "b") & (frame["prompt_id"] == "p0"), ["status", "quality"]] = ["error", math.nan]
    out = paired.compare_models(frame, "a", "b", by=None, n_boot=0).iloc[0]
    assert out["n"] == 12
    assert out["wins_a"] == 4


def test_groups_overall_row_and_holm_match_statsmodels():
    cats = ["x"] * 30 + ["y"] * 30 + ["z"] * 30
    rng = np.random.default_rng(7)
    qa = (rng.random(90) < np.repeat([0.8, 0.6, 0.5], 30)).astype(float)
    qb = (rng.random(90) < 0.5).astype(float)
    out = paired.compare_models(frame_from(qa, qb, cats), "a", "b", by="category", n_boot=200, seed=1)
    assert list(out["category"]) == ["x", "y", "z", "(all)"]
    assert list(out.columns[:1]) == ["category"]
    assert set(paired.COMPARE_COLUMNS) <= set(out.columns)
    groups = out.iloc[:3]
    expected = multipletests(groups["p_value"].to_numpy(), method="holm")[1]
    np.testing.assert_allclose(groups["p_adjusted"].to_numpy(), expected)
    overall = out.iloc[3]
    assert overall["n"] == 90
    assert overall["p_adjusted"] == overall["p_value"]
    assert (out["significant"] == (out["p_adjusted"] < 0.05)).all()
    assert ((out["ci_low"] <= out["diff"]) & (out["diff"] <= out["ci_high"])).all()
    again = paired.compare_models(frame_from(qa, qb, cats), "a", "b", by="category", n_boot=200, seed=1)
    pd.testing.assert_frame_equal(out, again)  # seeded bootstrap is reproducible


def test_bootstrap_interval_is_percentile_over_prompts():
    rng = np.random.default_rng(11)
    qa = (rng.random(200) < 0.7).astype(float)
    qb = (rng.random(200) < 0.5).astype(float)
    row = paired.compare_models(frame_from(qa, qb), "a", "b", by=None, n_boot=2000, seed=0).iloc[0]
    d = qa - qb
    se = d.std(ddof=1) / math.sqrt(d.size)
    # the percentile interval of a mean is close to the normal one for n = 200
    assert row["ci_low"] == pytest.approx(d.mean() - 1.96 * se, abs=0.02)
    assert row["ci_high"] == pytest.approx(d.mean() + 1.96 * se, abs=0.02)


def test_compare_runs_paired_pairs_on_prompt_id():
    qa, qb = binary_pair(10, 9, 1, 10)
    both = frame_from(qa, qb, models=("m1", "m2"))
    run_a = both[both["model"] == "m1"].assign(run_id="ra")
    run_b = both[both["model"] == "m2"].assign(run_id="rb")
    out = paired.compare_runs_paired(run_a, run_b, by=None, n_boot=0).iloc[0]
    expected = paired.compare_models(both, "m1", "m2", by=None, n_boot=0).iloc[0]
    assert out["p_value"] == pytest.approx(expected["p_value"])
    assert (out["model_a"], out["model_b"], out["n"]) == ("m1", "m2", 30)
    # the same comparison through model_column on one frame
    stacked = pd.concat([run_a, run_b.assign(model="m1")], ignore_index=True)
    via_column = paired.compare_models(stacked, "ra", "rb", by=None, n_boot=0, model_column="run_id").iloc[0]
    assert via_column["p_value"] == pytest.approx(expected["p_value"])


# --- errors ------------------------------------------------------------------------------------------------------

def test_bad_input_raises_analysis_error_naming_the_problem():
    frame = frame_from(*binary_pair(3, 2, 1, 3))
    with pytest.raises(AnalysisError, match="quality"):
        paired.compare_models(frame.drop(columns="quality"), "a", "b")
    with pytest.raises(AnalysisError, match="category"):
        paired.compare_models(frame.drop(columns="category"), "a", "b")
    with pytest.raises(AnalysisError, match="'zzz'"):
        paired.compare_models(frame, "a", "zzz")
    with pytest.raises(AnalysisError, match="two different"):
        paired.compare_models(frame, "a", "a")
    disjoint = frame.copy()
    disjoint.loc[disjoint["model"] == "b", "prompt_id"] += "-other"
    with pytest.raises(AnalysisError, match="no common prompts"):
        paired.compare_models(disjoint, "a", "b")
    with pytest.raises(AnalysisError, match="DataFrame"):
        paired.compare_models([1, 2], "a", "b")
    with pytest.raises(AnalysisError, match="name the one"):
        paired.compare_runs_paired(frame, frame, by=None)
    with pytest.raises(AnalysisError, match="discordance"):
        paired.sample_size(0.6, 0.15, discordance=0.1)
    with pytest.raises(AnalysisError, match="baseline_quality"):
        paired.sample_size(1.2, 0.1)
    with pytest.raises(AnalysisError, match="difference"):
        paired.sample_size(0.5, 0.0)
    with pytest.raises(AnalysisError, match="k must be"):
        paired.per_prompt(frame, k=0)


# --- samples: pass@k, majority, self-disagreement ----------------------------------------------------------------

def test_pass_at_k_hand_computed():
    assert paired.pass_at_k(5, 0, 1) == 0.0
    assert paired.pass_at_k(5, 5, 3) == 1.0
    assert paired.pass_at_k(5, 2, 1) == pytest.approx(2 / 5)
    assert paired.pass_at_k(4, 1, 2) == pytest.approx(1 - 3 / 6)  # 1 - C(3,2)/C(4,2)
    assert paired.pass_at_k(10, 3, 5) == pytest.approx(1 - math.comb(7, 5) / math.comb(10, 5))
    assert paired.pass_at_k(3, 2, 2) == 1.0  # n - c < k: every draw of 2 holds a correct one
    assert math.isnan(paired.pass_at_k(2, 1, 3))


def test_per_prompt_columns_and_values():
    rows = []
    for s, (qa, qb) in enumerate([(1, 0), (0, 0), (1, 0), (1, 1)]):
        rows.append({"prompt_id": "p", "sample_index": s, "model": "a", "category": "c", "status": "ok",
                     "quality": float(qa)})
        rows.append({"prompt_id": "p", "sample_index": s, "model": "b", "category": "c", "status": "ok",
                     "quality": float(qb)})
    rows.append({"prompt_id": "q", "sample_index": 0, "model": "a", "category": "c", "status": "ok", "quality": 1.0})
    out = paired.per_prompt(pd.DataFrame(rows), k=2)
    assert list(out.columns) == ["model", "prompt_id", "category", *paired.PER_PROMPT_COLUMNS[2:]]
    a = out[(out["model"] == "a") & (out["prompt_id"] == "p")].iloc[0]
    assert (a["n_samples"], a["n_correct"]) == (4, 3)
    assert a["mean_quality"] == pytest.approx(0.75)
    assert a["pass_at_k"] == pytest.approx(1.0)  # n - c = 1 < k = 2
    assert a["majority"] == 1.0
    assert a["self_disagreement"] == pytest.approx(3 * 1 / 6)
    b = out[(out["model"] == "b") & (out["prompt_id"] == "p")].iloc[0]
    assert b["pass_at_k"] == pytest.approx(1 - math.comb(3, 2) / math.comb(4, 2))
    assert b["majority"] == 0.0
    q = out[out["prompt_id"] == "q"].iloc[0]
    assert math.isnan(q["pass_at_k"]) and math.isnan(q["self_disagreement"])
    default_k = paired.per_prompt(pd.DataFrame(rows))
    assert list(default_k["k"]) == [4, 1, 4]
    tie = paired.per_prompt(pd.DataFrame(rows[:4]))
    assert tie[tie["model"] == "b"]["majority"].iloc[0] == 0.0
    assert tie[tie["model"] == "a"]["majority"].iloc[0] == 0.5


# --- power: sample_size and simulations --------------------------------------------------------------------------

def test_sample_size_formulas():
    # Connor (1987) by hand for p1 = 0.6, p2 = 0.75, independent discordance 0.45
    za, zb = stats.norm.ppf(0.975), stats.norm.ppf(0.8)
    psi = 0.6 * 0.25 + 0.75 * 0.4
    expected = (za * math.sqrt(psi) + zb * math.sqrt(psi - 0.15**2)) ** 2 / 0.15**2
    assert paired.sample_size(0.6, 0.15) == math.ceil(expected)
    assert paired.sample_size(0.6, 0.15, discordance=0.2) < paired.sample_size(0.6, 0.15)
    assert paired.sample_size(0.6, -0.15, discordance=0.45) == paired.sample_size(0.75, 0.15, discordance=0.45)
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize
    n_ind = NormalIndPower().solve_power(abs(proportion_effectsize(0.75, 0.6)), alpha=0.05, power=0.8, ratio=1)
    assert paired.sample_size(0.6, 0.15, paired=False) == math.ceil(n_ind)


def simulated_rejections(p_a, p_b, n, reps, seed):
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(reps):
        qa = (rng.random(n) < p_a).astype(float)
        qb = (rng.random(n) < p_b).astype(float)
        row = paired.compare_models(frame_from(qa, qb), "a", "b", by=None, n_boot=0).iloc[0]
        hits += bool(row["significant"])
    return hits / reps


def test_planted_difference_found_with_the_planned_power():
    n = paired.sample_size(0.6, 0.15, power=0.8)
    power = simulated_rejections(0.75, 0.6, n, reps=300, seed=2024)
    assert power == pytest.approx(0.8, abs=0.08)


def test_equal_models_called_different_at_most_alpha():
    rate = simulated_rejections(0.6, 0.6, 150, reps=300, seed=99)
    assert rate <= 0.05 + 0.03


def test_minimum_detectable_difference_inverts_sample_size():
    rng = np.random.default_rng(5)
    qa = (rng.random(400) < 0.75).astype(float)
    qb = (rng.random(400) < 0.6).astype(float)
    frame = frame_from(qa, qb)
    mdd = paired.minimum_detectable_difference(frame, "a", "b")
    psi = float((qa != qb).mean())
    assert 0 < mdd < psi
    # sample_size at that difference and the observed discordance gives back n (up to rounding)
    assert paired.sample_size(0.5, mdd, discordance=psi) == pytest.approx(400, abs=1)
    graded = frame_from(np.clip(qa * 0.9 + 0.05, 0, 1), qb * 0.8)
    assert 0 < paired.minimum_detectable_difference(graded, "a", "b") < 1
    same = frame_from(qa, qa)
    assert math.isnan(paired.minimum_detectable_difference(same, "a", "b"))


def test_importing_the_statistics_stays_light():
    code = ("import sys, llmlab.analysis.paired, llmlab.analysis.agreement, llmlab.analysis.ranking; "
            "import llmlab; assert 'litellm' not in sys.modules, 'litellm imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- judge agreement ---------------------------------------------------------------------------------------------

def scores_frame():
    human = [1.0, 0.75, 0.0, 0.25, 1.0, 0.5, 0.0, 1.0, 0.75, 0.25]
    lenient = [1.0, 1.0, 0.25, 0.5, 1.0, 0.75, 0.0, 1.0, 1.0, 0.5]
    strict = [0.75, 0.5, 0.0, 0.0, 1.0, 0.25, 0.0, 0.75, 0.5, 0.0]
    rows = []
    for scorer, kind, values in (("human", "human", human), ("judge:big", "judge", lenient),
                                 ("judge:small", "judge", strict)):
        rows += [{"call_id": f"c{i}", "scorer": scorer, "kind": kind, "score": v} for i, v in enumerate(values)]
    return pd.DataFrame(rows), human, lenient, strict


def test_judge_agreement_matches_sklearn():
    from sklearn.metrics import cohen_kappa_score

    from llmlab.analysis.agreement import AGREEMENT_COLUMNS, judge_agreement

    frame, human, lenient, strict = scores_frame()
    out = judge_agreement(frame)
    assert list(out.columns) == list(AGREEMENT_COLUMNS)
    assert list(zip(out["comparison"], out["rater"], out["reference"])) == [
        ("judge-human", "judge:big", "human"), ("judge-human", "judge:small", "human"),
        ("judge-judge", "judge:big", "judge:small")]
    h, big, small = (np.array(v) for v in (human, lenient, strict))

    def check(row, x, y):
        assert row["n"] == 10
        assert row["kappa"] == pytest.approx(cohen_kappa_score(x >= 0.5, y >= 0.5))
        assert row["weighted_kappa"] == pytest.approx(
            cohen_kappa_score(np.rint(x * 4).astype(int), np.rint(y * 4).astype(int), weights="quadratic",
                              labels=[0, 1, 2, 3, 4]))
        assert row["accuracy"] == pytest.approx(((x >= 0.5) == (y >= 0.5)).mean())
        assert row["mean_rater"] == pytest.approx(x.mean())

    check(out.iloc[0], big, h)
    check(out.iloc[1], small, h)
    check(out.iloc[2], big, small)
    # no kind column: human found by scorer name; judges restricted
    only = judge_agreement(frame.drop(columns="kind"), judges=["judge:small"])
    assert list(only["rater"]) == ["judge:small"]
    assert only["kappa"].iloc[0] == pytest.approx(out["kappa"].iloc[1])


def test_judge_agreement_bad_input():
    from llmlab.analysis.agreement import judge_agreement

    frame, *_ = scores_frame()
    with pytest.raises(AnalysisError, match="score"):
        judge_agreement(frame.drop(columns="score"))
    with pytest.raises(AnalysisError, match="no human score"):
        judge_agreement(frame[frame["kind"] != "human"])
    with pytest.raises(AnalysisError, match="no judge"):
        judge_agreement(frame[frame["kind"] == "human"])
    with pytest.raises(AnalysisError, match="'judge:nope'"):
        judge_agreement(frame, judges=["judge:nope"])


# --- Bradley-Terry -----------------------------------------------------------------------------------------------

def planted_pairs(strengths, games_per_pair, seed, tie_share=0.0):
    rng = np.random.default_rng(seed)
    rows = []
    names = list(strengths)
    for x in range(len(names)):
        for y in range(x + 1, len(names)):
            a, b = names[x], names[y]
            p = 1 / (1 + math.exp(-(strengths[a] - strengths[b])))
            for _ in range(games_per_pair):
                u = rng.random()
                winner = "tie" if u < tie_share else ("a" if rng.random() < p else "b")
                rows.append({"model_a": a, "model_b": b, "winner": winner})
    return pd.DataFrame(rows)


def test_bradley_terry_recovers_planted_order():
    from llmlab.analysis.ranking import BT_COLUMNS, bradley_terry

    strengths = {"m-weak": -1.0, "m-mid": 0.0, "m-good": 0.7, "m-best": 1.5}
    out = bradley_terry(planted_pairs(strengths, 150, seed=1, tie_share=0.1), n_boot=100, seed=0)
    assert list(out.columns) == list(BT_COLUMNS)
    assert list(out["model"]) == ["m-best", "m-good", "m-mid", "m-weak"]
    assert list(out["rank"]) == [1, 2, 3, 4]
    assert out["score"].sum() == pytest.approx(0, abs=1e-6)
    centred = {k: v - np.mean(list(strengths.values())) for k, v in strengths.items()}
    for _, row in out.iterrows():
        assert row["score"] == pytest.approx(centred[row["model"]], abs=0.25)
        assert row["ci_low"] <= row["score"] <= row["ci_high"]
    assert (out["n_games"] == 450).all()


def test_bradley_terry_ties_and_unbeaten_models_stay_finite():
    from llmlab.analysis.ranking import bradley_terry

    pairs = pd.DataFrame({"model_a": ["x", "x", "y"], "model_b": ["y", "z", "z"], "winner": ["a", "a", "tie"]})
    out = bradley_terry(pairs, n_boot=0)
    assert out["model"].iloc[0] == "x" and np.isfinite(out["score"]).all()
    assert out["ci_low"].isna().all()
    assert out.set_index("model").loc["y", "wins"] == 0.5


def test_pairs_from_results_feed_bradley_terry():
    from llmlab.analysis.ranking import bradley_terry, pairs_from_results

    rng = np.random.default_rng(4)
    rows = []
    for p in range(80):
        for model, rate in (("low", 0.3), ("high", 0.8), ("mid", 0.55)):
            rows.append({"prompt_id": f"p{p}", "model": model, "status": "ok",
                         "quality": float(rng.random() < rate)})
    pairs = pairs_from_results(pd.DataFrame(rows))
    assert set(pairs["winner"]) <= {"a", "b", "tie"} and len(pairs) == 3 * 80
    assert list(bradley_terry(pairs, n_boot=0)["model"]) == ["high", "mid", "low"]


def test_bradley_terry_bad_input():
    from llmlab.analysis.ranking import bradley_terry, pairs_from_results

    good = pd.DataFrame({"model_a": ["x"], "model_b": ["y"], "winner": ["a"]})
    with pytest.raises(AnalysisError, match="winner"):
        bradley_terry(good.drop(columns="winner"))
    with pytest.raises(AnalysisError, match="'draw'"):
        bradley_terry(good.assign(winner="draw"))
    with pytest.raises(AnalysisError, match="itself"):
        bradley_terry(good.assign(model_b="x"))
    with pytest.raises(AnalysisError, match="no comparison"):
        bradley_terry(good.iloc[:0])
    with pytest.raises(AnalysisError, match="two scored models"):
        pairs_from_results(pd.DataFrame({"prompt_id": ["p"], "model": ["m"], "status": ["ok"], "quality": [1.0]}))


def test_public_names_are_exported_lazily():
    import llmlab
    from llmlab import analysis

    for name in ("compare_models", "compare_runs_paired", "per_prompt", "pass_at_k", "sample_size",
                 "minimum_detectable_difference", "judge_agreement", "bradley_terry", "pairs_from_results"):
        assert name in analysis.__all__ and callable(getattr(analysis, name))
    for name in ("compare_models", "sample_size", "judge_agreement", "bradley_terry"):
        assert name in llmlab.__all__
        assert getattr(llmlab, name) is getattr(analysis, name)
    code = "import sys, llmlab; assert not {'pandas', 'scipy', 'statsmodels', 'sklearn'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)
