"""Agreement between scorers: how far an LLM judge can stand in for human ratings.

Input is a *scores frame*: one row per score, at least ``call_id``, ``scorer`` and ``score`` (0..1), optionally
``kind`` (``auto`` / ``judge`` / ``human``) as in the store's ``scores`` table (:mod:`llmlab.store`).

Statistics come from scikit-learn: Cohen's kappa (Cohen 1960) on pass/fail labels and quadratically weighted
kappa (Cohen 1968) on graded labels, both ``sklearn.metrics.cohen_kappa_score``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd

from llmlab.analysis.summary import _require
from llmlab.errors import AnalysisError

__all__ = ["AGREEMENT_COLUMNS", "JUDGE_OVERVIEW_COLUMNS", "judge_agreement", "judge_overview", "trusted_quality"]

#: Columns of :func:`judge_agreement`, in order.
AGREEMENT_COLUMNS: tuple[str, ...] = (
    "comparison", "rater", "reference", "n", "kappa", "weighted_kappa", "accuracy", "mean_rater",
    "mean_reference",
)


def _kappa(x: np.ndarray, y: np.ndarray, labels: list[int], weights: str | None) -> float:
    from sklearn.metrics import cohen_kappa_score

    if x.size == 0:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined kappa (a single label in common) comes back as NaN
        return float(cohen_kappa_score(x, y, labels=labels, weights=weights))


def _pair_row(comparison: str, rater: str, reference: str, r: pd.Series, ref: pd.Series, threshold: float,
              levels: int) -> dict:
    joined = pd.concat([r.rename("r"), ref.rename("ref")], axis=1, join="inner").dropna()
    x, y = joined["r"].to_numpy(dtype=float), joined["ref"].to_numpy(dtype=float)
    pass_x, pass_y = (x >= threshold).astype(int), (y >= threshold).astype(int)
    grade_x = np.rint(np.clip(x, 0, 1) * (levels - 1)).astype(int)
    grade_y = np.rint(np.clip(y, 0, 1) * (levels - 1)).astype(int)
    return {
        "comparison": comparison,
        "rater": rater,
        "reference": reference,
        "n": int(x.size),
        "kappa": _kappa(pass_x, pass_y, [0, 1], None),
        "weighted_kappa": _kappa(grade_x, grade_y, list(range(levels)), "quadratic"),
        "accuracy": float((pass_x == pass_y).mean()) if x.size else math.nan,
        "mean_rater": float(x.mean()) if x.size else math.nan,
        "mean_reference": float(y.mean()) if x.size else math.nan,
    }


def judge_agreement(scores: pd.DataFrame, human: str = "human", judges: Sequence[str] | None = None,
                    threshold: float = 0.5, levels: int = 5) -> pd.DataFrame:
    """Agreement of each judge with the human ratings, and of each pair of judges with each other.

    Human scores are the rows with ``kind == "human"`` when a ``kind`` column is present, else the rows whose
    ``scorer`` equals ``human``; several human scores of one call are averaged. Judges are the given
    ``judges``, else every other scorer (auto scorers included: their agreement with people is worth knowing
    too). A judge's repeated scores of one call are averaged. Only calls scored by both sides of a comparison
    count.

    Args:
        scores: a scores frame with ``call_id``, ``scorer``, ``score`` (0..1) and optionally ``kind``.
        human: the scorer name of human ratings (used when there is no ``kind`` column), and the ``reference``
            label of the human side in the output.
        judges: the scorers to assess; None for every non-human scorer.
        threshold: pass mark: a score ``>= threshold`` is a pass.
        levels: number of grades for the weighted kappa: a score ``s`` becomes grade ``round(s * (levels - 1))``
            (5 levels map 0, .25, .5, .75, 1 to 0..4; a 1-5 rating normalized to 0..1 keeps its grades).

    Returns:
        One row per judge against the humans (``comparison == "judge-human"``, sorted by judge), then one row
        per unordered pair of judges (``"judge-judge"``). Columns:

        - ``comparison``, ``rater`` (the judge), ``reference`` (``human`` or the other judge).
        - ``n``: calls scored by both (count).
        - ``kappa``: Cohen's kappa of the pass/fail labels, in [-1, 1]; NaN when undefined (e.g. both sides
          give one label only) or ``n == 0``.
        - ``weighted_kappa``: quadratically weighted Cohen's kappa of the grades, in [-1, 1].
        - ``accuracy``: share of calls with the same pass/fail label, in [0, 1].
        - ``mean_rater``, ``mean_reference``: mean score of each side over those calls (0..1): a judge more
          lenient than people shows a higher ``mean_rater``.

    Raises:
        AnalysisError: a column is missing, there is no human score, no judge, an unknown judge, or
            ``levels < 2``.
    """
    _require(scores, ("call_id", "scorer", "score"), "scores")
    if levels < 2:
        raise AnalysisError(f"levels must be >= 2, got {levels}")
    frame = scores.assign(score=pd.to_numeric(scores["score"], errors="coerce"))
    frame = frame[frame["score"].notna()]
    is_human = frame["kind"].eq("human") if "kind" in frame.columns else frame["scorer"].eq(human)
    humans = frame[is_human]
    if humans.empty:
        how = "kind == 'human'" if "kind" in frame.columns else f"scorer == {human!r}"
        raise AnalysisError(f"scores holds no human score ({how}) to compare judges with")
    others = frame[~is_human]
    available = sorted(set(others["scorer"].dropna().astype(str)))
    if judges is None:
        names = available
    else:
        names = [str(j) for j in judges]
        unknown = [j for j in names if j not in available]
        if unknown:
            raise AnalysisError(f"unknown judge(s) {', '.join(map(repr, unknown))}; scorers: "
                                f"{', '.join(available) or 'none'}")
    if not names:
        raise AnalysisError("scores holds no judge score (every score is a human one)")
    ref = humans.groupby("call_id")["score"].mean()
    per_judge = {j: others[others["scorer"].astype(str) == j].groupby("call_id")["score"].mean() for j in names}
    rows = [_pair_row("judge-human", j, human, per_judge[j], ref, threshold, levels) for j in names]
    rows += [_pair_row("judge-judge", j1, j2, per_judge[j1], per_judge[j2], threshold, levels)
             for j1, j2 in combinations(names, 2)]
    out = pd.DataFrame(rows, columns=list(AGREEMENT_COLUMNS))
    out["n"] = out["n"].astype("int64")
    return out


#: Columns of :func:`judge_overview`, in order.
JUDGE_OVERVIEW_COLUMNS: tuple[str, ...] = (
    "judge", "n_scored", "mean_score", "n_with_human", "kappa", "weighted_kappa", "accuracy", "self_judged",
)


def judge_overview(scores: pd.DataFrame, models: Sequence[str] | None = None, threshold: float = 0.5,
                   levels: int = 5) -> pd.DataFrame:
    """Each LLM judge's scores with its agreement with the humans beside them.

    Args:
        scores: a scores frame (``call_id``, ``scorer``, ``score``, ``kind``; e.g. ``Store().scores(run)``).
        models: the judged models, to flag a judge that judged itself (scorer ``judge:<model>``).
        threshold, levels: as in :func:`judge_agreement`.

    Returns:
        One row per judge scorer (``kind == "judge"``), columns :data:`JUDGE_OVERVIEW_COLUMNS`: ``n_scored``
        calls, ``mean_score`` (0..1), ``n_with_human`` calls also rated by a person, ``kappa``,
        ``weighted_kappa``, ``accuracy`` against the humans (NaN without human ratings), ``self_judged``: the
        judge is one of ``models`` (expect self-preference). Empty when there is no judge score.

    Raises:
        AnalysisError: a column is missing.
    """
    _require(scores, ("call_id", "scorer", "score", "kind"), "scores")
    judged = scores[scores["kind"] == "judge"]
    rows = []
    has_human = bool((scores["kind"] == "human").any())
    agreement = (judge_agreement(scores[scores["kind"].isin(["judge", "human"])], threshold=threshold,
                                 levels=levels) if has_human and not judged.empty else None)
    for judge, g in judged.groupby("scorer", sort=True):
        row = {"judge": judge, "n_scored": int(g["call_id"].nunique()),
               "mean_score": float(pd.to_numeric(g["score"], errors="coerce").mean()), "n_with_human": 0,
               "kappa": math.nan, "weighted_kappa": math.nan, "accuracy": math.nan,
               "self_judged": bool(models is not None and str(judge).split(":", 1)[-1] in set(map(str, models)))}
        if agreement is not None:
            hit = agreement[(agreement["comparison"] == "judge-human") & (agreement["rater"] == judge)]
            if len(hit):
                h = hit.iloc[0]
                row.update(n_with_human=int(h["n"]), kappa=h["kappa"], weighted_kappa=h["weighted_kappa"],
                           accuracy=h["accuracy"])
        rows.append(row)
    return pd.DataFrame(rows, columns=list(JUDGE_OVERVIEW_COLUMNS))


def trusted_quality(results: pd.DataFrame, min_agreement: float, metric: str = "kappa",
                    threshold: float = 0.5, levels: int = 5) -> pd.DataFrame:
    """``results`` with the LLM judge dropped from ``quality`` unless it agrees with the humans well enough.

    Agreement is measured on the calls of ``results`` that have both a ``judge_score`` (the mean of the call's
    judge scores) and a ``human_score``. When it is below ``min_agreement``, or cannot be measured (no call
    rated by both), ``quality`` becomes the human rating, else the deterministic score (``auto_score``): the
    judge is not trusted.

    Args:
        results: a results frame with ``call_id, quality, judge_score, human_score, auto_score``.
        min_agreement: the level ``metric`` must reach (Cohen's kappa in [-1, 1], accuracy in [0, 1]).
        metric: ``"kappa"``, ``"weighted_kappa"`` or ``"accuracy"`` (see :func:`judge_agreement`).

    Returns:
        A copy of ``results``; ``attrs["judge_agreement"]`` holds the measured value (NaN when unmeasured) and
        ``attrs["judge_trusted"]`` whether the judge was kept.

    Raises:
        AnalysisError: a column is missing or an unknown metric.
    """
    if metric not in ("kappa", "weighted_kappa", "accuracy"):
        raise AnalysisError(f"metric must be 'kappa', 'weighted_kappa' or 'accuracy', got {metric!r}")
    _require(results, ("call_id", "quality", "judge_score", "human_score", "auto_score"), "results")
    out = results.copy()
    judge = pd.to_numeric(out["judge_score"], errors="coerce")
    human = pd.to_numeric(out["human_score"], errors="coerce")
    value = math.nan
    both = judge.notna() & human.notna()
    if both.any():
        ids = out.loc[both, "call_id"]
        frame = pd.concat([
            pd.DataFrame({"call_id": ids, "scorer": "judge", "kind": "judge", "score": judge[both]}),
            pd.DataFrame({"call_id": ids, "scorer": "human", "kind": "human", "score": human[both]}),
        ], ignore_index=True)
        value = float(judge_agreement(frame, threshold=threshold, levels=levels).iloc[0][metric])
    trusted = bool(value >= min_agreement) if not math.isnan(value) else False
    if not trusted and judge.notna().any():
        out["quality"] = human.where(human.notna(), pd.to_numeric(out["auto_score"], errors="coerce"))
    out.attrs["judge_agreement"] = value
    out.attrs["judge_trusted"] = trusted
    return out
