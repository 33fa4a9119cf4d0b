"""Router metrics against hand-computed cases and RouteLLM's / RouterBench's definitions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmlab.routing import metrics as M


def test_pgr_scalar_and_array():
    assert M.pgr(0.75, 0.5, 1.0) == pytest.approx(0.5)
    np.testing.assert_allclose(M.pgr([0.5, 1.0, 1.25], 0.5, 1.0), [0.0, 1.0, 1.5])
    with pytest.raises(ValueError):
        M.pgr(0.5, 0.7, 0.7)


def test_apgr_is_routellm_auc_ratio():
    # RouteLLM: (trapz(acc, pct) - trapz(weak)) / (trapz(strong) - trapz(weak)) over the sweep's share range
    share = np.array([0.0, 0.1, 0.5, 1.0])
    acc = np.array([60.0, 70.0, 76.0, 80.0])
    weak, strong = 60.0, 80.0
    auc = np.trapezoid(acc, share)
    ref = (auc - np.trapezoid(np.full(4, weak), share)) / (np.trapezoid(np.full(4, strong), share)
                                                            - np.trapezoid(np.full(4, weak), share))
    curve = pd.DataFrame({"strong_share": share, "pgr": M.pgr(acc, weak, strong)})
    assert M.apgr(curve) == pytest.approx(ref)
    # by hand: pgr 0, .5, .8, 1 → 0.1*(0+.5)/2 + 0.4*(.5+.8)/2 + 0.5*(.8+1)/2 = .025 + .26 + .45
    assert M.apgr(curve) == pytest.approx(0.735)


def test_apgr_normalises_by_the_covered_range_and_ignores_row_order():
    curve = pd.DataFrame({"strong_share": [0.5, 0.2], "pgr": [0.8, 0.2]})
    assert M.apgr(curve) == pytest.approx((0.2 + 0.8) / 2)


def test_cpt_interpolates_linearly_not_a_step():
    curve = pd.DataFrame({"strong_share": [0.0, 0.2, 0.6, 1.0], "pgr": [0.0, 0.4, 0.9, 1.0]})
    # PGR 0.5 lies between (0.2, 0.4) and (0.6, 0.9): share = 0.2 + 0.4 * (0.1 / 0.5) = 0.28 → 28 %
    assert M.cpt(curve, 0.5) == pytest.approx(28.0)
    assert M.cpt(curve, 0.8) == pytest.approx(100 * (0.2 + 0.4 * 0.4 / 0.5))
    assert M.cpt(curve, 1.0) == pytest.approx(100.0)
    assert M.cpt(curve, 0.0) == pytest.approx(0.0)


def test_random_routing_sweep_has_apgr_near_half_and_perfect_router_high():
    rng = np.random.default_rng(0)
    n = 4000
    qs = (rng.random(n) < 0.8).astype(float)
    qw = (rng.random(n) < 0.6).astype(float)
    rand = M.pgr_curve(rng.random(n), qs, qw)
    assert len(rand) == 11 and rand["strong_share"].iloc[0] == 0.0 and rand["strong_share"].iloc[-1] == 1.0
    assert rand["pgr"].iloc[0] == pytest.approx(0.0) and rand["pgr"].iloc[-1] == pytest.approx(1.0)
    assert M.apgr(rand) == pytest.approx(0.5, abs=0.05)
    oracle = M.pgr_curve(qs - qw + 1e-6 * rng.random(n), qs, qw)
    assert M.apgr(oracle) > 0.8 and M.cpt(oracle, 0.5) < 20


def test_pgr_curve_thresholds_follow_routellm_qcut_rule():
    # 4 units, 2 bins: edges = min, median, max; >= for all but the last edge, > for the last
    scores = [0.1, 0.2, 0.3, 0.4]
    qs, qw = [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]
    c = M.pgr_curve(scores, qs, qw, n_points=2)
    assert c["strong_share"].tolist() == [0.0, 0.5, 1.0]
    assert c["quality"].tolist() == [0.0, 0.5, 1.0]
    # equal scores: the sweep still has both ends
    c = M.pgr_curve([0.3] * 4, qs, qw)
    assert c["strong_share"].tolist() == [0.0, 1.0] and M.apgr(c) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        M.pgr_curve([0.1], [1.0], [0.0])


def test_pgr_curve_weights_units():
    # MT-Bench style: a question is a unit; weights count its turns
    c = M.pgr_curve([0.9, 0.1], [1.0, 1.0], [0.0, 0.0], n_points=1, weights=[3, 1])
    assert c["strong_share"].tolist() == [0.0, 1.0]
    assert c["quality"].tolist() == [0.0, 1.0]


def test_nondecreasing_convex_hull_by_hand():
    cost = [1.0, 2.0, 3.0, 4.0, 2.5]
    qual = [0.5, 0.6, 0.9, 0.85, 0.55]
    hx, hy = M.nondecreasing_convex_hull(cost, qual)
    # (2, 0.6) lies under the chord (1, .5)–(3, .9) → dropped; (4, .85) and (2.5, .55) are dominated
    assert hx.tolist() == [1.0, 3.0] and hy.tolist() == [0.5, 0.9]


def test_aiq_by_hand():
    # hull (1, .5)–(3, .9), flat at .9 up to 5: area = 2*(.5+.9)/2 + 2*.9 = 1.4 + 1.8 = 3.2, range 4 → 0.8
    assert M.aiq([1, 3, 5], [0.5, 0.9, 0.7]) == pytest.approx(0.8)
    assert M.aiq([1, 3], [0.5, 0.9], cost_range=(1, 2)) == pytest.approx((0.5 + 0.7) / 2)
    with pytest.raises(ValueError):
        M.aiq([1, 3], [0.5, 0.9], cost_range=(0.5, 2))
    with pytest.raises(ValueError):
        M.aiq([1, 1], [0.5, 0.9])


def test_gain_over_hull_at_equal_cost():
    g = M.gain_over_hull([2.0, 0.5, 4.0], [0.8, 0.9, 0.95], [1.0, 3.0], [0.5, 0.9])
    assert g[0] == pytest.approx(0.8 - 0.7)          # hull at cost 2 = 0.7
    assert np.isnan(g[1])                            # cheaper than every single model
    assert g[2] == pytest.approx(0.05)               # flat after the dearest model


def test_cost_quality_curve_marks_hull_points():
    pts = [{"cost_per_1k_usd": 3.0, "quality": 0.9}, {"cost_per_1k_usd": 1.0, "quality": 0.5},
           {"cost_per_1k_usd": 2.0, "quality": 0.6}]
    df = M.cost_quality_curve(pts)
    assert df["cost_per_1k_usd"].tolist() == [1.0, 2.0, 3.0]
    assert df["on_hull"].tolist() == [True, False, True]


def test_bootstrap_ci_resamples_prompts():
    df = pd.DataFrame({"prompt_id": np.repeat(np.arange(200), 2), "quality": np.tile([0.0, 1.0], 200)})
    est, lo, hi = M.bootstrap_ci(df, lambda f: float(f["quality"].mean()), n_boot=200)
    assert est == pytest.approx(0.5) and lo == pytest.approx(0.5) and hi == pytest.approx(0.5)  # within-prompt only
    df2 = pd.DataFrame({"prompt_id": np.arange(400), "quality": (np.arange(400) % 2).astype(float)})
    est, lo, hi = M.bootstrap_ci(df2, lambda f: float(f["quality"].mean()), n_boot=300, seed=1)
    assert lo < 0.5 < hi and hi - lo == pytest.approx(2 * 1.96 * 0.025, rel=0.3)
    with pytest.raises(ValueError):
        M.bootstrap_ci(df2.iloc[:0], lambda f: 0.0)
