"""Versioned scorers and re-scoring: score a recorded run again, with a new scorer, without calling the models.

A scorer here is anything with a ``name``, a ``version`` and ``score_rows(frame)``:

- :class:`CallableScorer` (:func:`scorer`): a Python function ``fn(answer, reference)`` or
  ``fn(answer, reference, arg)`` returning a score in 0..1, a bool, a ``(score, rationale)`` pair or a dict
  ``{"score": ..., "passed": ..., "rationale": ...}``; registered under its name, so a prompt set's ``scorer``
  column can name it too, and the runner stores its version with every score;
- :class:`~llmlab.scoring.semantic.SemanticScorer`: cosine similarity of LiteLLM embeddings;
- a scorer spec string (``"exact"``, ``"numeric:0.01"``): a registered check (:mod:`llmlab.scoring.checks`).

Every score row stores ``scorer``, ``version``, ``score`` (0..1), ``passed`` and ``rationale``
(:data:`llmlab.store.SCORE_COLUMNS`). :func:`rescore` reads the recorded answers from the store, so the models
are never called again; scoring twice with the same scorer and version stores nothing twice, and a new version
supersedes the old one in ``quality`` (the ``call_quality`` view takes each scorer's latest score).
"""

from __future__ import annotations

import hashlib
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from llmlab.errors import PromptSetError
from llmlab.scoring.checks import _is_missing, parse_scorer_spec, register_scorer, score, scorer_version

__all__ = ["RESCORE_COLUMNS", "CallableScorer", "as_scorer", "rescore", "scorer"]

#: Columns of :func:`rescore` and of every scorer's ``score_rows``-based output.
RESCORE_COLUMNS: tuple[str, ...] = ("call_id", "prompt_id", "model", "category", "scorer", "version", "score",
                                    "passed", "rationale")

_PASS_MARK = 0.5


def _source_version(fn: Callable[..., Any]) -> str:
    """``src-<8 hex>``: a hash of the function's source (``unversioned`` when the source is not available)."""
    try:
        text = inspect.getsource(fn)
    except (OSError, TypeError):
        return "unversioned"
    return "src-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


def _normalize(value: Any, threshold: float) -> tuple[float, bool, str | None]:
    """(score, passed, rationale) from a scorer's return value; raises PromptSetError for anything else."""
    rationale = None
    passed = None
    if isinstance(value, dict):
        if "score" not in value:
            raise PromptSetError(f"a scorer's dict must hold 'score'; got keys {sorted(value)}")
        rationale, passed, value = value.get("rationale"), value.get("passed"), value["score"]
    elif isinstance(value, tuple):
        if len(value) != 2:
            raise PromptSetError(f"a scorer's tuple must be (score, rationale); got {len(value)} items")
        value, rationale = value
    if isinstance(value, bool):
        number = 1.0 if value else 0.0
    else:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise PromptSetError(f"a scorer must return a number, a bool, (score, rationale) or a dict; got "
                                 f"{type(value).__name__}") from None
    if math.isnan(number):
        raise PromptSetError("a scorer returned NaN")
    number = min(1.0, max(0.0, number))
    return number, bool(passed) if passed is not None else number >= threshold, (
        None if rationale is None else str(rationale))


@dataclass
class CallableScorer:
    """A Python function as a versioned scorer.

    Attributes:
        fn: ``fn(answer, reference)`` or ``fn(answer, reference, arg)``; ``answer`` is the model's text,
            ``reference`` the prompt's reference (None when it has none), ``arg`` the text after ``name:`` in a
            prompt's scorer spec (None here). Returns a score in 0..1 (clamped), a bool, ``(score, rationale)``
            or ``{"score", "passed", "rationale"}``.
        name: the scorer's name (stored as ``scores.scorer``).
        version: stored as ``scores.version``; change it when the function's behaviour changes.
        threshold: ``passed`` is ``score >= threshold`` unless the function says.
        needs_reference: skip calls without a reference (no score row) instead of passing None.
    """

    fn: Callable[..., Any]
    name: str
    version: str
    threshold: float = _PASS_MARK
    needs_reference: bool = False
    _arity: int = field(default=2, repr=False)

    def __post_init__(self) -> None:
        try:
            params = [p for p in inspect.signature(self.fn).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            varargs = any(p.kind == p.VAR_POSITIONAL for p in inspect.signature(self.fn).parameters.values())
        except (TypeError, ValueError):
            params, varargs = [], True
        self._arity = 3 if varargs or len(params) >= 3 else 2
        if not varargs and len(params) < 2:
            raise PromptSetError(f"scorer {self.name!r}: the function must take (answer, reference) or "
                                 f"(answer, reference, arg); it takes {len(params)} positional argument(s)")

    def __call__(self, answer: str, reference: str | None, arg: str | None = None) -> Any:
        return self.fn(answer, reference, arg) if self._arity == 3 else self.fn(answer, reference)

    def score_one(self, answer: str | None, reference: str | None, arg: str | None = None
                  ) -> tuple[float, bool, str | None] | None:
        """(score, passed, rationale) of one answer; a missing or blank answer scores 0 without a call; None
        when the scorer needs a reference and there is none. Raises PromptSetError naming the scorer."""
        if self.needs_reference and _is_missing(reference):
            return None
        if _is_missing(answer) or not str(answer).strip():
            return 0.0, False, "no answer"
        try:
            return _normalize(self(str(answer), None if _is_missing(reference) else str(reference), arg),
                              self.threshold)
        except PromptSetError as exc:
            raise PromptSetError(f"scorer {self.name!r}: {exc}") from exc

    def score_rows(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Score every row of ``frame`` (``response``, ``reference``, ``status``): a frame ``score, passed,
        rationale`` on the same index (NaN / None where not scored)."""
        out = []
        for answer, reference, status in zip(frame["response"], frame["reference"], frame["status"], strict=True):
            got = self.score_one(answer if status == "ok" else None, reference)
            out.append(got if got is not None else (math.nan, None, None))
        return pd.DataFrame(out, index=frame.index, columns=["score", "passed", "rationale"])


@dataclass
class _SpecScorer:
    """A registered check named by a spec (``"numeric:0.01"``)."""

    spec: str
    name: str = ""
    version: str | None = None

    def __post_init__(self) -> None:
        parse_scorer_spec(self.spec)  # raises PromptSetError for an unknown name
        self.name = self.spec.strip()
        self.version = scorer_version(self.spec)

    def score_rows(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = []
        for answer, reference, status in zip(frame["response"], frame["reference"], frame["status"], strict=True):
            value = score(self.spec, answer if status == "ok" else None,
                          None if _is_missing(reference) else reference)
            out.append((math.nan, None, None) if value is None else (value, value >= _PASS_MARK, None))
        return pd.DataFrame(out, index=frame.index, columns=["score", "passed", "rationale"])


def scorer(fn: Callable[..., Any] | None = None, *, name: str | None = None, version: str | None = None,
           threshold: float = _PASS_MARK, needs_reference: bool = False, register: bool = True) -> Any:
    """Make a Python function a versioned scorer (``llmlab.scorer``); also a decorator (``@llmlab.scorer(...)``).

    Args:
        fn: ``fn(answer, reference)`` or ``fn(answer, reference, arg)``, see :class:`CallableScorer`.
        name: the scorer's name (default ``fn.__name__``): lower-case letters, digits, ``_``, ``-``.
        version: a version string stored with every score; default ``src-<hash>`` of the function's source, so
            editing the function changes the version by itself.
        threshold: pass mark for ``passed``. needs_reference: skip prompts without a reference.
        register: also register it under ``name`` (:func:`llmlab.scoring.checks.register_scorer`), so a prompt
            set's ``scorer`` column can name it and the runner scores new runs with it.

    Returns:
        A :class:`CallableScorer` (or, without ``fn``, a decorator that returns one).

    Raises:
        PromptSetError: an invalid name, a function that does not take (answer, reference).
    """
    def make(f: Callable[..., Any]) -> CallableScorer:
        if not callable(f):
            raise PromptSetError(f"scorer must be callable, got {type(f).__name__}")
        the_name = (name or getattr(f, "__name__", "") or "").strip().lower()
        made = CallableScorer(fn=f, name=the_name, version=str(version) if version is not None else _source_version(f),
                              threshold=float(threshold), needs_reference=needs_reference)
        if register:
            def check(answer: str, reference: str, arg: str | None) -> float:
                got = made.score_one(answer, reference, arg)
                return math.nan if got is None else got[0]

            register_scorer(the_name, check, version=made.version)
        elif not the_name:
            raise PromptSetError("a scorer needs a name")
        return made

    return make(fn) if fn is not None else make


def as_scorer(value: Any) -> Any:
    """A scorer object (``name``, ``version``, ``score_rows``) from a scorer, a spec string or a plain function
    (which becomes an unregistered :class:`CallableScorer` versioned by its source). Raises PromptSetError."""
    if isinstance(value, str):
        return _SpecScorer(value)
    if hasattr(value, "score_rows") and hasattr(value, "name"):
        return value
    if callable(value):
        return scorer(value, register=False)
    raise PromptSetError(f"not a scorer: {type(value).__name__} (give a spec string, a function or llmlab.scorer(...))")


def rescore(run: Any, scorer: Any, *, store: Any = None, models: list[str] | None = None) -> pd.DataFrame:
    """Score a recorded run again with ``scorer``: the recorded answers are read back, no model is called.

    Args:
        run: a run id, name, ``"last"`` or a :class:`~llmlab.runner.RunResult`.
        scorer: a :class:`CallableScorer` (:func:`llmlab.scorer`), a
            :class:`~llmlab.scoring.semantic.SemanticScorer`, a check spec (``"contains"``) or a function.
        models: only these models' calls (default all).

    Returns:
        One row per scored call, columns :data:`RESCORE_COLUMNS` (``score`` 0..1; a failed call scores 0). The
        rows are stored in ``scores`` (``kind = 'auto'``); a (call, scorer, version) already scored is not
        stored twice.

    Raises:
        StoreError: unknown run. PromptSetError: not a scorer, or the scorer failed on a row (the call is named).
    """
    from llmlab.store import Store, utc_now

    the_scorer = as_scorer(scorer)
    store = store or getattr(run, "store", None) or Store()
    run_id = store.resolve_run(getattr(run, "run_id", run))
    results = store.results(run_id)
    if models is not None:
        results = results[results["model"].isin(list(models))]
    scored = the_scorer.score_rows(results)
    frame = results[["call_id", "prompt_id", "model", "category"]].join(scored)
    frame = frame[frame["score"].notna()].assign(scorer=the_scorer.name, version=the_scorer.version)
    now = utc_now()
    rows = [{"run_id": run_id, "call_id": r.call_id, "prompt_id": r.prompt_id, "model": r.model, "kind": "auto",
             "scorer": the_scorer.name, "version": the_scorer.version, "score": float(r.score),
             "raw_value": float(r.score), "passed": bool(r.passed), "rationale": r.rationale, "comment": None,
             "created_at_utc": now} for r in frame.itertuples()]
    store.append_scores(rows, skip_existing=True)
    return frame[list(RESCORE_COLUMNS)].reset_index(drop=True)
