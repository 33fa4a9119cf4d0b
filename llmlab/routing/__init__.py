"""Routing: from recorded results to a policy that LiteLLM serves.

- :mod:`llmlab.routing.table`: the per-category routing table, its projection, backtest and tolerance curve.
- :mod:`llmlab.routing.litellm_config`: the LiteLLM proxy / Router config: writer and reader (fallback chains).
- :mod:`llmlab.routing.routellm`: RouteLLM's recorded results of real models, as llmlab runs.
"""

from __future__ import annotations

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
    "backtest",
    "project",
    "route_for",
    "routing_table",
    "tolerance_curve",
]
