"""Scoring: deterministic checks (:mod:`~llmlab.scoring.checks`, pure), the LLM judge (:mod:`~llmlab.scoring.judge`,
a client of the runner), the pairwise judge (:mod:`~llmlab.scoring.pairwise`, both orders), versioned scorers and
re-scoring (:mod:`~llmlab.scoring.scorers`), semantic similarity through LiteLLM embeddings
(:mod:`~llmlab.scoring.semantic`) and human ratings (:mod:`~llmlab.scoring.human`); structured answers (JSON Schema,
tool calls: :mod:`~llmlab.scoring.structured`) are registered among the checks when this package is imported.

This package re-exports only the checks, so that the runner, which scores each finished call with them, does not
import the judge (which imports the runner): no cycle, even through a function-level import.
"""

from __future__ import annotations

from llmlab.scoring import checks
from llmlab.scoring import structured as structured  # registers json_schema, tool_call, no_tool_call
from llmlab.scoring.checks import *  # noqa: F403  (the checks' __all__)

__all__ = list(checks.__all__)
