"""Scoring: deterministic checks (:mod:`~llmlab.scoring.checks`, pure), the LLM judge (:mod:`~llmlab.scoring.judge`,
a client of the runner) and human ratings (:mod:`~llmlab.scoring.human`).

This package re-exports the checks and the judge's pure helpers; ``judge_run`` / ``rate`` import the runner and
the store only when called.
"""

from __future__ import annotations

from llmlab.scoring import checks
from llmlab.scoring.checks import *  # noqa: F403  (the checks' __all__)
from llmlab.scoring.human import rate
from llmlab.scoring.judge import (
    JUDGE_TEMPLATE,
    judge,
    judge_prompt,
    judge_run,
    parse_judge_score,
)

__all__ = [*checks.__all__, "JUDGE_TEMPLATE", "judge", "judge_prompt", "judge_run", "parse_judge_score", "rate"]
