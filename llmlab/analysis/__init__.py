"""Analysis: pure functions over result frames (no store, no LiteLLM).

- :mod:`llmlab.analysis.summary`: per-group summaries (quality with intervals, latency percentiles, cost, error
  rates), the Pareto frontier, error breakdowns and run comparison.
"""

from __future__ import annotations

from llmlab.analysis import summary
from llmlab.analysis.summary import *
from llmlab.analysis.summary import _require  # noqa: F401  (used by the views)

__all__ = list(summary.__all__)
