"""Paired statistics over results frames: which of two models is better, and how sure we are.

Both models answered the same prompts, so they are compared *prompt by prompt* (a paired design): the
per-prompt difference removes the prompt's own difficulty from the noise, and far fewer prompts are needed
than for two independent samples.

Conventions used by every function here:

- **Quality** is :func:`llmlab.analysis.summary.effective_quality`: the call's score in [0, 1], or 0 for a
  failed call of a prompt that has a scorer (see the summary module); unscored calls (NaN) take no part.
- **Per prompt first.** With several samples of a prompt (``sample_index``), a model's quality on the prompt
  is the mean over its scored samples. Rows of the same ``(model, prompt_id)`` are averaged whatever their
  ``run_id``: pass one run, or runs that share prompt ids.
- **Pairing** is on ``prompt_id``; only prompts that both sides have a quality for are used.
- **diff = quality_a - quality_b** (positive: model ``a`` is better), in quality units (0..1).

Tests: when every per-prompt quality of both models is exactly 0 or 1 the exact McNemar test is used
(``statsmodels.stats.contingency_tables.mcnemar(exact=True)``: a binomial test on the discordant prompts,
McNemar 1947); otherwise the Wilcoxon signed-rank test (``scipy.stats.wilcoxon``) with
``zero_method="zsplit"`` (prompts with no difference are split between the positive and negative ranks, so
they dilute the evidence instead of being dropped; Pratt 1959 / Wilcoxon 1945 variants as documented by
scipy). The interval is a paired percentile bootstrap over prompts (``scipy.stats.bootstrap``; Efron &
Tibshirani 1993). Multiple groups are corrected with Holm's step-down method
(``statsmodels.stats.multitest.multipletests(method="holm")``; Holm 1979).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from llmlab.analysis.summary import _require, effective_quality
from llmlab.errors import AnalysisError

__all__ = [
    "COMPARE_COLUMNS",
    "PER_PROMPT_COLUMNS",
    "compare_models",
    "compare_runs_paired",
    "minimum_detectable_difference",
    "pass_at_k",
    "per_prompt",
    "sample_size",
]

ALL = "(all)"

#: Columns of :func:`compare_models` after the group columns, in order.
COMPARE_COLUMNS: tuple[str, ...] = (
    "model_a", "model_b", "n", "quality_a", "quality_b", "diff", "ci_low", "ci_high", "p_value",
    "p_adjusted", "test", "n_discordant", "wins_a", "wins_b", "significant",
)

#: Columns of :func:`per_prompt`, in order.
PER_PROMPT_COLUMNS: tuple[str, ...] = (
    "model", "prompt_id", "n_samples", "n_correct", "mean_quality", "k", "pass_at_k", "majority",
    "self_disagreement",
)


def _by_cols(by: str | Sequence[str] | None) -> list[str]:
    if by is None:
        return []
    return [by] if isinstance(by, str) else list(by)


def _prompt_quality(results: pd.DataFrame, model_column: str, by_cols: list[str], what: str) -> pd.DataFrame:
    """Per ``(model_column, prompt_id)`` mean effective quality, with the prompt's group values (first seen)."""
    _require(results, ("prompt_id", "status", "quality", model_column, *by_cols), what)
    frame = results.assign(_q=effective_quality(results))
    frame = frame[frame["_q"].notna()]
    agg = frame.groupby([model_column, "prompt_id"], sort=False, observed=True)["_q"].mean().rename("q")
    out = agg.reset_index()
    if by_cols:
        groups = results.drop_duplicates("prompt_id")[["prompt_id", *by_cols]]
        out = out.merge(groups, on="prompt_id", how="left")
    return out


def _paired_table(pq_a: pd.DataFrame, pq_b: pd.DataFrame, by_cols: list[str]) -> pd.DataFrame:
    """Join two per-prompt quality frames on prompt_id: columns prompt_id, by..., qa, qb."""
    left = pq_a[["prompt_id", *by_cols, "q"]].rename(columns={"q": "qa"})
    right = pq_b[["prompt_id", "q"]].rename(columns={"q": "qb"})
    return left.merge(right, on="prompt_id", how="inner")


def _test(qa: np.ndarray, qb: np.ndarray) -> tuple[str, float, int, int, int]:
    """(test name, two-sided p-value, n_discordant, wins_a, wins_b) for paired per-prompt qualities."""
    from scipy import stats
    from statsmodels.stats.contingency_tables import mcnemar

    d = qa - qb
    wins_a, wins_b = int((d > 0).sum()), int((d < 0).sum())
    binary = bool(np.all(np.isin(qa, (0.0, 1.0))) and np.all(np.isin(qb, (0.0, 1.0))))
    if binary:
        both = int(((qa == 1) & (qb == 1)).sum())
        neither = int(((qa == 0) & (qb == 0)).sum())
        table = [[both, wins_a], [wins_b, neither]]
        p = float(mcnemar(table, exact=True).pvalue) if qa.size else math.nan
        return "mcnemar", p, wins_a + wins_b, wins_a, wins_b
    if wins_a + wins_b == 0:
        return "wilcoxon", 1.0, 0, 0, 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # small-sample / ties notes from scipy
        p = float(stats.wilcoxon(qa, qb, zero_method="zsplit").pvalue)
    return "wilcoxon", p, wins_a + wins_b, wins_a, wins_b


def _bootstrap_ci(d: np.ndarray, n_boot: int, rng: np.random.Generator, alpha: float) -> tuple[float, float]:
    if n_boot <= 0 or d.size == 0:
        return (math.nan, math.nan)
    if d.size == 1 or np.all(d == d[0]):
        return (float(d[0]), float(d[0]))
    from scipy import stats

    res = stats.bootstrap((d,), np.mean, n_resamples=n_boot, method="percentile", confidence_level=1 - alpha,
                          vectorized=True, rng=rng)
    return (float(res.confidence_interval.low), float(res.confidence_interval.high))


def _compare_table(table: pd.DataFrame, a: object, b: object, by_cols: list[str], n_boot: int, seed: int,
                   alpha: float) -> pd.DataFrame:
    from statsmodels.stats.multitest import multipletests

    if table.empty:
        raise AnalysisError(f"no common prompts: {a!r} and {b!r} have no prompt_id scored on both sides")
    rng = np.random.default_rng(seed)
    items: list[tuple[tuple, pd.DataFrame]] = []
    if by_cols:
        for keys, g in table.groupby(by_cols, sort=True, dropna=False, observed=True):
            items.append((keys if isinstance(keys, tuple) else (keys,), g))
        items.append(((ALL,) * len(by_cols), table))
    else:
        items.append(((), table))
    rows = []
    for keys, g in items:
        qa, qb = g["qa"].to_numpy(dtype=float), g["qb"].to_numpy(dtype=float)
        test, p, n_disc, wins_a, wins_b = _test(qa, qb)
        low, high = _bootstrap_ci(qa - qb, n_boot, rng, alpha)
        row = dict(zip(by_cols, keys))
        row.update({
            "model_a": a, "model_b": b, "n": int(qa.size), "quality_a": float(qa.mean()),
            "quality_b": float(qb.mean()), "diff": float(qa.mean() - qb.mean()), "ci_low": low, "ci_high": high,
            "p_value": p, "p_adjusted": p, "test": test, "n_discordant": n_disc, "wins_a": wins_a,
            "wins_b": wins_b,
        })
        rows.append(row)
    out = pd.DataFrame(rows, columns=[*by_cols, *COMPARE_COLUMNS])
    family = np.ones(len(out), dtype=bool)
    if by_cols:
        family[-1] = False  # the (all) row is its own single test
    family &= out["p_value"].notna().to_numpy()
    if family.sum() > 1:
        out.loc[family, "p_adjusted"] = multipletests(out.loc[family, "p_value"].to_numpy(), method="holm")[1]
    out["significant"] = out["p_adjusted"].lt(alpha)
    return out


def compare_models(results: pd.DataFrame, a: object, b: object, by: str | Sequence[str] | None = "category",
                   n_boot: int = 2000, seed: int = 0, alpha: float = 0.05,
                   model_column: str = "model") -> pd.DataFrame:
    """Paired comparison of models ``a`` and ``b`` on the prompts both answered, per group and overall.

    Args:
        results: a results frame (:meth:`llmlab.Store.results`) with at least ``prompt_id``, ``status``,
            ``quality``, ``model_column`` and the ``by`` columns.
        a, b: the two values of ``model_column`` to compare (model ids by default).
        by: group column(s) (constant within a prompt; the first value seen per prompt is used), or None for
            one overall row.
        n_boot: bootstrap resamples for the interval; 0 skips it (``ci_low``/``ci_high`` NaN).
        seed: seed of the bootstrap generator (results are reproducible for a given seed).
        alpha: significance level; the interval has confidence ``1 - alpha``.
        model_column: the column naming the compared sides, e.g. ``"run_id"`` to compare two runs of a model
            held in one frame.

    Returns:
        One row per group (sorted by the group columns) then, when ``by`` is given, an overall row whose
        group columns are all ``"(all)"``. Columns: the group columns, then

        - ``model_a``, ``model_b``: the compared sides.
        - ``n``: prompts scored for both models in the group (count).
        - ``quality_a``, ``quality_b``: mean per-prompt quality over those prompts, in [0, 1].
        - ``diff``: ``quality_a - quality_b`` (positive: ``a`` is better), quality units.
        - ``ci_low``, ``ci_high``: ``1 - alpha`` paired percentile-bootstrap interval of ``diff``, resampling
          prompts (``scipy.stats.bootstrap``).
        - ``p_value``: two-sided p-value of ``test``.
        - ``p_adjusted``: Holm-adjusted over the group rows (statsmodels ``multipletests``); the overall row
          is not part of the family and keeps its own ``p_value``.
        - ``test``: ``"mcnemar"`` (exact, every per-prompt quality of the row 0 or 1) or ``"wilcoxon"``
          (signed-rank, ``zero_method="zsplit"``, graded or sample-averaged scores); chosen per row, so a group
          of pass/fail prompts and a graded group in the same frame may use different tests. A row with no
          discordant prompt has ``p_value`` 1.
        - ``n_discordant``: prompts on which the two differ (count); ``wins_a``/``wins_b``: prompts on which
          ``a``/``b`` scored higher.
        - ``significant``: ``p_adjusted < alpha``.

    Raises:
        AnalysisError: a column is missing, ``a == b``, ``a`` or ``b`` is not in ``model_column``, or the two
            have no scored prompt in common.
    """
    by_cols = _by_cols(by)
    if model_column in by_cols:
        raise AnalysisError(f"by must not contain the model column {model_column!r}")
    _require(results, ("prompt_id", "status", "quality", model_column, *by_cols), "results")
    if a == b:
        raise AnalysisError(f"compare_models needs two different models; got {a!r} twice")
    present = set(results[model_column].dropna())
    unknown = [m for m in (a, b) if m not in present]
    if unknown:
        known = ", ".join(sorted(map(str, present))) or "none"
        raise AnalysisError(f"unknown model(s) {', '.join(map(repr, unknown))} in column {model_column!r}; "
                            f"known: {known}")
    pq = _prompt_quality(results, model_column, by_cols, "results")
    table = _paired_table(pq[pq[model_column] == a], pq[pq[model_column] == b], by_cols)
    return _compare_table(table, a, b, by_cols, n_boot, seed, alpha)


def _single_model(frame: pd.DataFrame, model: object | None, what: str, model_column: str) -> object:
    models = sorted(set(frame[model_column].dropna()), key=str)
    if model is None:
        if len(models) != 1:
            raise AnalysisError(f"{what} holds {len(models)} models ({', '.join(map(str, models))}); "
                                f"name the one to compare")
        return models[0]
    if model not in models:
        raise AnalysisError(f"unknown model {model!r} in {what}; known: {', '.join(map(str, models)) or 'none'}")
    return model


def compare_runs_paired(results_a: pd.DataFrame, results_b: pd.DataFrame, by: str | Sequence[str] | None = "category",
                        model_a: object | None = None, model_b: object | None = None, n_boot: int = 2000,
                        seed: int = 0, alpha: float = 0.05) -> pd.DataFrame:
    """:func:`compare_models` across two runs: one model of run A against one model of run B, paired on
    ``prompt_id`` (so both runs must use the same prompt ids).

    Quality is computed within each run (:func:`~llmlab.analysis.summary.effective_quality`). ``model_a`` /
    ``model_b`` pick the model in each run; they may be omitted when a run holds a single model.

    Returns:
        The :func:`compare_models` frame; ``diff = quality_a - quality_b`` is run A minus run B, and
        ``model_a``/``model_b`` name the models compared.

    Raises:
        AnalysisError: a column is missing, a model is unknown or ambiguous, or no prompt is scored in both.
    """
    by_cols = _by_cols(by)
    for frame, what in ((results_a, "results_a"), (results_b, "results_b")):
        _require(frame, ("prompt_id", "status", "quality", "model", *by_cols), what)
    ma = _single_model(results_a, model_a, "results_a", "model")
    mb = _single_model(results_b, model_b, "results_b", "model")
    pqa = _prompt_quality(results_a[results_a["model"] == ma], "model", by_cols, "results_a")
    pqb = _prompt_quality(results_b[results_b["model"] == mb], "model", [], "results_b")
    table = _paired_table(pqa, pqb, by_cols)
    return _compare_table(table, ma, mb, by_cols, n_boot, seed, alpha)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples of which ``c`` are correct: ``1 - C(n - c, k) / C(n, k)``.

    The probability that at least one of ``k`` samples drawn without replacement from the ``n`` is correct
    (Chen et al. 2021, "Evaluating Large Language Models Trained on Code", eq. 1, computed as their stable
    product ``1 - prod(1 - k / i for i in n-c+1..n)``). NaN when ``n < k``.

    Raises:
        AnalysisError: ``k < 1`` or ``c`` outside ``[0, n]``.
    """
    if k < 1 or c < 0 or c > n:
        raise AnalysisError(f"pass_at_k needs k >= 1 and 0 <= c <= n; got n={n}, c={c}, k={k}")
    if n < k:
        return math.nan
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def per_prompt(results: pd.DataFrame, k: int | None = None, threshold: float = 0.5) -> pd.DataFrame:
    """Per ``(model, prompt_id)`` statistics over the samples of each prompt.

    A sample is *correct* when its effective quality is ``>= threshold``; unscored samples are left out.

    Args:
        results: a results frame with ``model``, ``prompt_id``, ``status``, ``quality`` (``category`` is carried
            along when present).
        k: the k of pass@k; None uses each row's own number of scored samples (pass@n: any sample correct).
        threshold: pass mark on the 0..1 quality scale.

    Returns:
        One row per (model, prompt) with a scored sample, sorted by model and prompt_id; columns ``model``,
        ``prompt_id``, (``category``), then

        - ``n_samples``: scored samples (count); ``n_correct``: of those, correct (count).
        - ``mean_quality``: mean quality of the samples, in [0, 1].
        - ``k``: the k used; ``pass_at_k``: unbiased pass@k (:func:`pass_at_k`), NaN when ``n_samples < k``.
        - ``majority``: 1.0 when more than half of the samples are correct, 0.0 when fewer, 0.5 on a tie.
        - ``self_disagreement``: share of the ``C(n, 2)`` unordered sample pairs whose pass/fail differ,
          ``c (n - c) / C(n, 2)`` in [0, 1]; NaN for a single sample.

    Raises:
        AnalysisError: a column is missing or ``k < 1``.
    """
    _require(results, ("model", "prompt_id", "status", "quality"), "results")
    if k is not None and k < 1:
        raise AnalysisError(f"k must be >= 1, got {k}")
    extra = ["category"] if "category" in results.columns else []
    frame = results.assign(_q=effective_quality(results))
    frame = frame[frame["_q"].notna()].assign(_ok=lambda f: (f["_q"] >= threshold).astype(int))
    columns = ["model", "prompt_id", *extra, *PER_PROMPT_COLUMNS[2:]]
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in columns})
    agg = {"n_samples": ("_q", "size"), "n_correct": ("_ok", "sum"), "mean_quality": ("_q", "mean")}
    if extra:
        agg["category"] = ("category", "first")
    out = frame.groupby(["model", "prompt_id"], sort=True, observed=True).agg(**agg).reset_index()
    n = out["n_samples"].to_numpy(dtype=int)
    c = out["n_correct"].to_numpy(dtype=int)
    ks = n if k is None else np.full(n.size, k)
    out["k"] = ks
    out["pass_at_k"] = [pass_at_k(int(ni), int(ci), int(ki)) for ni, ci, ki in zip(n, c, ks)]
    out["majority"] = np.where(2 * c > n, 1.0, np.where(2 * c < n, 0.0, 0.5))
    pairs = n * (n - 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        out["self_disagreement"] = np.where(n > 1, c * (n - c) / np.where(pairs > 0, pairs, 1), np.nan)
    return out[columns]


def _z(p: float) -> float:
    from scipy import stats

    return float(stats.norm.ppf(p))


def _check_level(alpha: float, power: float) -> None:
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise AnalysisError(f"alpha and power must lie in (0, 1); got alpha={alpha}, power={power}")


def sample_size(baseline_quality: float, difference: float, power: float = 0.8, alpha: float = 0.05,
                paired: bool = True, discordance: float | None = None) -> int:
    """Number of prompts needed to detect a quality ``difference`` with a two-sided test at level ``alpha``.

    Paired (both models answer the same prompts, pass/fail scores, McNemar test), Connor (1987, "Sample size
    for testing differences in proportions for the paired-sample design", Biometrics 43:207-211)::

        n = (z(1 - alpha/2) * sqrt(psi) + z(power) * sqrt(psi - delta**2))**2 / delta**2

    where ``delta = difference`` and ``psi`` is the discordance rate (share of prompts on which the two models
    disagree). When ``discordance`` is not given it is estimated as if the models failed independently:
    ``psi = p1 (1 - p2) + p2 (1 - p1)`` with ``p1 = baseline_quality``, ``p2 = p1 + difference``. Real models
    tend to fail on the same hard prompts, so the true ``psi`` is usually lower and fewer prompts suffice;
    pass ``discordance`` from a pilot run (see :func:`minimum_detectable_difference`) when you have one.

    Unpaired (two independent sets of prompts): Cohen's h from ``statsmodels.stats.proportion.
    proportion_effectsize`` and ``statsmodels.stats.power.NormalIndPower``; the result is per model.

    Args:
        baseline_quality: pass rate of the reference model, in (0, 1).
        difference: the difference to detect, in quality units (sign ignored); ``p1 + difference`` in [0, 1].
        power: probability of detecting the difference when it is real.
        alpha: two-sided significance level.
        paired: paired design (default) or two independent samples.
        discordance: the discordance rate ``psi`` in ``[|difference|, 1]`` (paired only).

    Returns:
        Prompts needed (rounded up), per model for the unpaired design.

    Raises:
        AnalysisError: a value is out of range (the message names it).
    """
    _check_level(alpha, power)
    p1 = float(baseline_quality)
    p2 = p1 + float(difference)
    delta = abs(float(difference))
    if not 0 < p1 < 1 or not 0 <= p2 <= 1:
        raise AnalysisError(f"baseline_quality must lie in (0, 1) and baseline_quality + difference in [0, 1]; "
                            f"got {p1} and {p2}")
    if delta == 0:
        raise AnalysisError("difference must not be 0 (no sample is large enough to detect no difference)")
    if not paired:
        from statsmodels.stats.power import NormalIndPower
        from statsmodels.stats.proportion import proportion_effectsize

        es = abs(float(proportion_effectsize(p2, p1)))
        n = NormalIndPower().solve_power(effect_size=es, alpha=alpha, power=power, ratio=1.0,
                                         alternative="two-sided")
        return math.ceil(float(n))
    psi = p1 * (1 - p2) + p2 * (1 - p1) if discordance is None else float(discordance)
    if not delta <= psi <= 1:
        raise AnalysisError(f"discordance must lie in [|difference|, 1] = [{delta}, 1]; got {psi}")
    n = (_z(1 - alpha / 2) * math.sqrt(psi) + _z(power) * math.sqrt(psi - delta**2)) ** 2 / delta**2
    return math.ceil(n)


def minimum_detectable_difference(results: pd.DataFrame, a: object, b: object, power: float = 0.8,
                                  alpha: float = 0.05, model_column: str = "model") -> float:
    """The smallest quality difference the prompts both models answered would detect with ``power``.

    Uses the observed paired data. Pass/fail scores: Connor's formula (see :func:`sample_size`) solved for
    ``delta`` at the observed ``n`` and discordance rate (``scipy.optimize.brentq``). Graded scores: the
    paired normal approximation ``statsmodels.stats.power.NormalIndPower`` with ``ratio=0`` (one sample)
    giving the effect size in standard deviations of the per-prompt differences, times that standard
    deviation.

    Returns:
        The difference in quality units (0..1); NaN when the two never disagree (no spread to estimate).

    Raises:
        AnalysisError: as :func:`compare_models`.
    """
    _check_level(alpha, power)
    res = compare_models(results, a, b, by=None, n_boot=0, model_column=model_column)
    pq = _prompt_quality(results, model_column, [], "results")
    table = _paired_table(pq[pq[model_column] == a], pq[pq[model_column] == b], [])
    qa, qb = table["qa"].to_numpy(dtype=float), table["qb"].to_numpy(dtype=float)
    n = qa.size
    if int(res["n_discordant"].iloc[0]) == 0:
        return math.nan
    if res["test"].iloc[0] == "mcnemar":
        from scipy.optimize import brentq

        psi = float(res["n_discordant"].iloc[0]) / n
        za, zb = _z(1 - alpha / 2), _z(power)

        def gap(delta: float) -> float:
            return n * delta**2 - (za * math.sqrt(psi) + zb * math.sqrt(max(psi - delta**2, 0.0))) ** 2

        if gap(psi) < 0:
            return math.nan  # even the largest difference possible at this discordance is not detectable
        return float(brentq(gap, 1e-12, psi))
    from statsmodels.stats.power import NormalIndPower

    sd = float(np.std(qa - qb, ddof=1))
    es = NormalIndPower().solve_power(nobs1=n, alpha=alpha, power=power, ratio=0.0, alternative="two-sided")
    return float(es) * sd
