"""Routing: from recorded results to a policy that LiteLLM serves.

- :mod:`llmlab.routing.table`: the per-category routing table, its projection, backtest and tolerance curve.
- :mod:`llmlab.routing.litellm_config`: the LiteLLM proxy / Router config: writer and reader (fallback chains).
- :mod:`llmlab.routing.routellm`: RouteLLM's recorded results of real models, as llmlab runs.
- :mod:`llmlab.routing.results_import`: any table of per-call outcomes (DataFrame, CSV, Parquet) as a run.
- :mod:`llmlab.routing.policies`: fitted policies: per-category table or a per-prompt router learned from the text;
  evaluation on held-out results; portable JSON model files (:mod:`llmlab.routing.textmodel` scores them).
- :mod:`llmlab.routing.complexity`: complexity tiers (prompt features → tier → model) as a policy.
- :mod:`llmlab.routing.confident`: the confidence-aware category table (paired comparisons).
- :mod:`llmlab.routing.plugin` / :mod:`llmlab.routing.policy_export`: the LiteLLM routing plugin serving a policy,
  and the export writing its config, model file and plugin module.
- :mod:`llmlab.routing.metrics`: RouteLLM's PGR / APGR / CPT, RouterBench's AIQ and hull gain, bootstrap intervals.

Importing this package loads NumPy only; pandas, scikit-learn and SciPy load when a function needs them.
"""

from __future__ import annotations

from llmlab.routing.complexity import ComplexityPolicy
from llmlab.routing.confident import confident_table
from llmlab.routing.metrics import (
    aiq,
    apgr,
    bootstrap_ci,
    cost_quality_curve,
    cpt,
    gain_over_hull,
    nondecreasing_convex_hull,
    pgr,
    pgr_curve,
)
from llmlab.routing.policies import (
    CategoryPolicy,
    Policy,
    PromptPolicy,
    evaluate_policy,
    fit_policy,
)
from llmlab.routing.results_import import import_results
from llmlab.routing.table import (
    DEFAULT_CATEGORY,
    TABLE_COLUMNS,
    backtest,
    project,
    route_for,
    routing_table,
    tolerance_curve,
)

__all__ = [
    "DEFAULT_CATEGORY",
    "TABLE_COLUMNS",
    "CategoryPolicy",
    "ComplexityPolicy",
    "Policy",
    "PromptPolicy",
    "aiq",
    "apgr",
    "backtest",
    "bootstrap_ci",
    "confident_table",
    "cost_quality_curve",
    "cpt",
    "evaluate_policy",
    "fit_policy",
    "gain_over_hull",
    "import_results",
    "nondecreasing_convex_hull",
    "pgr",
    "pgr_curve",
    "project",
    "route_for",
    "routing_table",
    "tolerance_curve",
]
