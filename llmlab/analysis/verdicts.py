"""Pairwise verdicts in both orders: combining them, measuring a judge's position bias, ranking the models.

A verdict pair is the judge's answer with A shown first (``verdict_ab``: ``"1"`` means A) and with B shown first
(``verdict_ba``: ``"1"`` means B). Disagreeing orders count as a tie. Position bias: the share of pairs whose
verdict changes with the order (``flip_rate``) and a sign test (``scipy.stats.binomtest``) of the pairs leaning to
the answer shown first against those leaning to the second (Zheng et al. 2023, "Judging LLM-as-a-judge", 3.3).
Pure functions over the frames of :mod:`llmlab.scoring.pairwise` (table ``pairwise_verdicts``).
"""

from __future__ import annotations

import pandas as pd

from llmlab.analysis.ranking import bradley_terry
from llmlab.errors import AnalysisError

__all__ = ["BIAS_COLUMNS", "combine_verdicts", "pairwise_ranking", "position_bias"]

#: Columns of :func:`position_bias`.
BIAS_COLUMNS: tuple[str, ...] = (
    "judge", "n_pairs", "n_judged", "n_inconsistent", "flip_rate", "first_position_rate", "lean_first",
    "lean_second", "p_value", "biased",
)


def combine_verdicts(verdict_ab: str | None, verdict_ba: str | None) -> tuple[str | None, bool | None]:
    """The winner (``"a"``, ``"b"``, ``"tie"``) and whether the orders agreed, from the two position verdicts.

    ``verdict_ab`` is the verdict with A shown first (``"1"`` means A), ``verdict_ba`` with B shown first
    (``"1"`` means B). Disagreeing orders give ``("tie", False)``; a missing verdict gives ``(None, None)``.
    """
    if verdict_ab is None or verdict_ba is None:
        return None, None
    ab = {"1": "a", "2": "b", "tie": "tie"}[verdict_ab]
    ba = {"1": "b", "2": "a", "tie": "tie"}[verdict_ba]
    return (ab, True) if ab == ba else ("tie", False)


def _lean(verdict: str | None) -> int:
    return {"1": 1, "2": -1}.get(verdict or "", 0)


def position_bias(verdicts: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """How much each judge's verdicts depend on the order the answers are shown in.

    Args:
        verdicts: rows of :data:`VERDICT_COLUMNS` (at least ``judge``, ``verdict_ab``, ``verdict_ba``, ``source``);
            only rows with ``source == "judge"`` count.
        alpha: significance level of ``biased``.

    Returns:
        One row per judge, columns :data:`BIAS_COLUMNS`:

        - ``n_pairs``: pairs sent to the judge; ``n_judged``: those with a verdict in both orders (count).
        - ``n_inconsistent``: judged pairs whose verdict changed with the order; ``flip_rate`` = it / ``n_judged``
          (0..1; 0 for a judge with no position effect).
        - ``first_position_rate``: share of the decisive verdicts (not ties) that chose the answer shown first
          (0.5 without bias).
        - ``lean_first`` / ``lean_second``: inconsistent pairs that lean to the first / second shown answer
          (their two verdicts together pick the first-shown position more / less often than the second).
        - ``p_value``: two-sided sign test (``scipy.stats.binomtest``) of ``lean_first`` against ``lean_second``
          (NaN when no pair leans); ``biased``: ``p_value < alpha``.

    Raises:
        AnalysisError: a column is missing.
    """
    from scipy.stats import binomtest

    missing = [c for c in ("judge", "verdict_ab", "verdict_ba", "source") if c not in verdicts.columns]
    if missing:
        raise AnalysisError(f"verdicts lacks column(s) {', '.join(missing)}")
    rows = []
    judged_rows = verdicts[verdicts["source"] == "judge"]
    for judge, frame in judged_rows.groupby("judge", sort=True):
        ab = frame["verdict_ab"].where(frame["verdict_ab"].notna(), None)
        ba = frame["verdict_ba"].where(frame["verdict_ba"].notna(), None)
        both = ab.notna() & ba.notna()
        combined = [combine_verdicts(x, y) for x, y in zip(ab[both], ba[both], strict=True)]
        inconsistent = sum(1 for _, ok in combined if ok is False)
        leans = [_lean(x) + _lean(y) for x, y in zip(ab[both], ba[both], strict=True)]
        first = int(sum(1 for v in leans if v > 0))
        second = int(sum(1 for v in leans if v < 0))
        picks = pd.concat([ab[both], ba[both]])
        decisive = int(picks.isin(["1", "2"]).sum())
        p = float(binomtest(first, first + second, 0.5).pvalue) if first + second else float("nan")
        n_judged = int(both.sum())
        rows.append({
            "judge": judge, "n_pairs": len(frame), "n_judged": n_judged, "n_inconsistent": inconsistent,
            "flip_rate": inconsistent / n_judged if n_judged else float("nan"),
            "first_position_rate": float((picks == "1").sum() / decisive) if decisive else float("nan"),
            "lean_first": first, "lean_second": second, "p_value": p, "biased": bool(p < alpha),
        })
    return pd.DataFrame(rows, columns=list(BIAS_COLUMNS))


def pairwise_ranking(verdicts: pd.DataFrame, n_boot: int = 200, seed: int = 0, alpha: float = 0.05) -> pd.DataFrame:
    """Bradley-Terry ranking of the models in ``verdicts`` (rows with a ``winner``; ties count half).

    Returns :func:`llmlab.analysis.ranking.bradley_terry`'s frame (``model, score, ci_low, ci_high, rank, n_games,
    wins``; score on the log-odds scale, percentile-bootstrap interval). Raises AnalysisError when no verdict has
    a winner.
    """
    decided = verdicts[verdicts["winner"].notna()]
    if decided.empty:
        raise AnalysisError("no pairwise verdict with a winner to rank")
    return bradley_terry(decided[["model_a", "model_b", "winner"]], n_boot=n_boot, seed=seed, alpha=alpha)
