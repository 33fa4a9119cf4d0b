"""llmlab: evaluate and choose LLMs from Jupyter notebooks.

The loop: prompt set → plan → runner (LiteLLM, async, cache) → store (DuckDB) → scores → analysis → plots / report
→ routing table → LiteLLM config. The public facade below imports lazily: ``import llmlab`` loads neither LiteLLM,
IPython, pandas nor plotly.

Python API (see each function's docstring)::

    import llmlab
    res = llmlab.run("quickstart", ["sandbox/frontier", "@cheap"])   # or: await llmlab.arun(...)
    res.summary(); res.results                                       # pandas DataFrames
    table = llmlab.routing_table(res.results, tolerance=0.03)
    llmlab.export_litellm_config(table, "routing.yaml")
    llmlab.report(res.run_id, "report.html")

In a notebook: ``%load_ext llmlab`` for the ``%%llm`` magic; ``llmlab.lab()`` and ``llmlab.compare(run)`` for the
widgets.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from llmlab._version import __version__  # noqa: E402
from llmlab.errors import (  # noqa: E402  (tiny module, no heavy imports)
    BudgetError,
    LLMLabError,
    MissingKeyError,
    ModelError,
    OptionsError,
    PromptSetError,
    RoutingError,
    SandboxError,
    SchemaVersionError,
    StoreError,
)

_LAZY = {
    "run": ("llmlab.runner", "run"),
    "arun": ("llmlab.runner", "arun"),
    "plan": ("llmlab.runner", "plan"),
    "resume": ("llmlab.runner.resume", "resume"),
    "batches": ("llmlab.runner.resume", "batches"),
    "cancel_batches": ("llmlab.runner.resume", "cancel_batches"),
    "RunResult": ("llmlab.runner", "RunResult"),
    "RunOptions": ("llmlab.runner", "RunOptions"),
    "Store": ("llmlab.store", "Store"),
    "export_run": ("llmlab.transfer", "export_run"),
    "import_run": ("llmlab.transfer", "import_run"),
    "load_prompts": ("llmlab.prompts", "load_prompts"),
    "PromptSet": ("llmlab.prompts", "PromptSet"),
    "summarize": ("llmlab.analysis", "summarize"),
    "compare_models": ("llmlab.analysis.paired", "compare_models"),
    "sample_size": ("llmlab.analysis.paired", "sample_size"),
    "judge_agreement": ("llmlab.analysis.agreement", "judge_agreement"),
    "bradley_terry": ("llmlab.analysis.ranking", "bradley_terry"),
    "routing_table": ("llmlab.routing.table", "routing_table"),
    "fit_policy": ("llmlab.routing.policies", "fit_policy"),
    "evaluate_policy": ("llmlab.routing.policies", "evaluate_policy"),
    "import_results": ("llmlab.routing.results_import", "import_results"),
    "export_litellm_config": ("llmlab.routing.policy_export", "export_litellm_config"),
    "litellm_config": ("llmlab.routing.litellm_config", "litellm_config"),
    "replay_through_router": ("llmlab.routing.router_replay", "replay_through_router"),
    "set_alias": ("llmlab.models", "set_alias"),
    "set_price": ("llmlab.models", "set_price"),
    "register_model": ("llmlab.models", "register_model"),
    "set_log_level": ("llmlab.logs", "set_log_level"),
    "load_models": ("llmlab.models", "load_models"),
    "registered_models": ("llmlab.models", "registered_models"),
    "aliases": ("llmlab.models", "aliases"),
    "Sandbox": ("llmlab.sandbox", "Sandbox"),
    "ensure_sandbox": ("llmlab.sandbox", "ensure_sandbox"),
    "lab": ("llmlab.widgets", "lab"),
    "compare": ("llmlab.widgets", "compare"),
    "judge": ("llmlab.scoring.judge", "judge"),
    "judge_pairwise": ("llmlab.scoring.pairwise", "judge_pairwise"),
    "rate": ("llmlab.scoring.human", "rate"),
    "scorer": ("llmlab.scoring.scorers", "scorer"),
    "rescore": ("llmlab.scoring.scorers", "rescore"),
    "semantic_scorer": ("llmlab.scoring.semantic", "semantic_scorer"),
    "LiteLLMLogger": ("llmlab.production.logger", "LiteLLMLogger"),
    "feedback": ("llmlab.production.feedback", "feedback"),
    "compare_production": ("llmlab.production.compare", "compare_production"),
    "refit_from_production": ("llmlab.production.reroute", "refit_from_production"),
}

# llmlab.report is a module you can call: llmlab.report(run, path)
_LAZY_MODULES = {"report": "llmlab.views.report"}

__all__ = sorted([*_LAZY, *_LAZY_MODULES, "__version__", "LLMLabError", "PromptSetError", "ModelError", "MissingKeyError", "OptionsError",
                  "StoreError", "SchemaVersionError", "BudgetError", "RoutingError", "SandboxError",
                  "load_ipython_extension", "unload_ipython_extension"])


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        return importlib.import_module(_LAZY_MODULES[name])
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'llmlab' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext llmlab``: registers the ``%%llm`` / ``%llm`` magics (loading twice is harmless)."""
    from llmlab.magic import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from llmlab.magic import unload_ipython_extension as _unload

    _unload(ipython)
