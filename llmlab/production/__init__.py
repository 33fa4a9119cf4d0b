"""Production: record real LiteLLM traffic into the store, compare it with the experiment, re-fit the routing.

- :mod:`llmlab.production.rows`: one LiteLLM logging event → a call row (what is stored, what never is).
- :mod:`llmlab.production.recorder`: the bounded queue, the background writer, spill and merge.
- :mod:`llmlab.production.logger`: :class:`LiteLLMLogger`, the LiteLLM ``CustomLogger`` (imports LiteLLM).
- :mod:`llmlab.production.proxy`: the instance the LiteLLM proxy loads from an exported config.
- :mod:`llmlab.production.feedback`: :func:`feedback`, quality that arrives after the call (:mod:`~llmlab.production.lookup`
  finds the call).
- :mod:`llmlab.production.compare`: :func:`compare_production`, production against the experiment.
- :mod:`llmlab.production.reroute`: :func:`refit_from_production`, a policy fitted on production outcomes.

This package's ``__init__`` imports neither LiteLLM nor pandas: ``LiteLLMLogger`` is loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["LiteLLMLogger", "compare_production", "feedback", "policy_from_config", "production_requests",
           "refit_from_production", "traffic_mix"]

_LAZY = {
    "LiteLLMLogger": "llmlab.production.logger",
    "feedback": "llmlab.production.feedback",
    "compare_production": "llmlab.production.compare",
    "production_requests": "llmlab.production.compare",
    "traffic_mix": "llmlab.production.compare",
    "policy_from_config": "llmlab.production.reroute",
    "refit_from_production": "llmlab.production.reroute",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'llmlab.production' has no attribute {name!r}")
