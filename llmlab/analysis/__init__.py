"""Analysis: pure functions over result frames (no store, no LiteLLM).

- :mod:`llmlab.analysis.summary`: per-group summaries (quality with intervals, latency percentiles, cost, error
  rates), the Pareto frontier, error breakdowns and run comparison.
- :mod:`llmlab.analysis.paired`: paired model comparison (McNemar / Wilcoxon, bootstrap interval, Holm), samples
  per prompt (pass@k, majority, self-disagreement), sample size and minimum detectable difference.
- :mod:`llmlab.analysis.agreement`: judge-vs-human and judge-vs-judge agreement (Cohen's kappa).
- :mod:`llmlab.analysis.ranking`: Bradley-Terry ranking from pairwise outcomes.
- :mod:`llmlab.analysis.verdicts`: pairwise judge verdicts in both orders: position bias, ranking.
- :mod:`llmlab.analysis.decisions`: per category, best against runner-up, with the minimum detectable difference.

scipy, statsmodels and scikit-learn are imported inside the functions that need them, so importing this package
stays light.
"""

from __future__ import annotations

from llmlab.analysis import agreement, decisions, paired, ranking, summary, verdicts
from llmlab.analysis.agreement import *
from llmlab.analysis.decisions import *
from llmlab.analysis.paired import *
from llmlab.analysis.ranking import *
from llmlab.analysis.summary import *
from llmlab.analysis.summary import _require  # noqa: F401  (used by the views)
from llmlab.analysis.verdicts import *

__all__ = list(summary.__all__)
__all__ += paired.__all__
__all__ += agreement.__all__
__all__ += ranking.__all__
__all__ += decisions.__all__
__all__ += verdicts.__all__
