"""Export a fitted routing policy as files that LiteLLM's Router and proxy load unchanged.

- ``kind="category"``: the tags config of :mod:`llmlab.routing.litellm_config` (DESIGN.md decision 8): one
  deployment per category row, the category in ``litellm_params.tags``; no plugin.
- ``kind="prompt"`` (and ``"complexity"`` with ``serve="plugin"``): the plugin config below, served by
  :class:`llmlab.routing.plugin.PolicyPlugin`.
- ``kind="complexity"`` (default ``serve="complexity_router"``): LiteLLM's own complexity-router config (below),
  the tiers decided by :class:`llmlab.routing.plugin.TierClassifier` as its ``classifier_plugin``.

Plugin config, in ``directory`` (three files)::

    config.yaml                   # litellm --config config.yaml, or llmlab.routing.plugin.load_router(...)
      model_list:
        - model_name: llmlab-router           # one deployment per policy model, one model group
          litellm_params: {model: openai/frontier, api_base: os.environ/..., api_key: os.environ/..., prices}
          model_info: {id: ..., llmlab: {policy_kind, policy_model, run_id}}
        - model_name: llmlab-router-fallback-1   # fallback groups, each with every policy deployment: the
          ...                                    # plugin sends a fallback to the dearest model not tried yet
      router_settings:
        plugins: [llmlab_route.plugin]        # LiteLLM's RoutingPlugin list (resolved beside the config)
        fallbacks: [{llmlab-router: [llmlab-router-fallback-1, ...]}]
        num_retries: 2
        timeout: 60.0
        routing_strategy: simple-shuffle
    llmlab_route.py               # plugin = llmlab.routing.plugin.load_plugin(__file__)
    llmlab_route_policy.json      # the policy model file (JSON arrays, never pickle) + its "litellm" section

Complexity-router config, in ``directory`` (three files)::

    config.yaml
      model_list:
        - model_name: llmlab-router           # LiteLLM's complexity router (auto_router/complexity_router)
          litellm_params:
            model: auto_router/complexity_router
            complexity_router_config:
              classifier_type: custom           # LiteLLM's ClassifierPlugin interface
              classifier_plugin: llmlab_tiers.classifier
              tier_definitions: [{name: simple, description: ...}, {name: medium, ...}, {name: complex, ...}]
              tiers: {simple: llmlab-router--sandbox-tiny, medium: ..., complex: llmlab-router--sandbox-frontier}
              fallback_tier: complex            # a failing classifier routes to the dearest tier, never the cheapest
        - model_name: llmlab-router--sandbox-tiny   # one model group per policy model
          litellm_params: {model: anthropic/tiny, api_base: os.environ/..., prices}
      router_settings:
        fallbacks: [{llmlab-router--sandbox-tiny: [llmlab-router--sandbox-frontier]}, ...]   # dearest first
        num_retries: 2
        timeout: 60.0
    llmlab_tiers.py               # classifier = llmlab.routing.plugin.load_classifier(__file__)
    llmlab_route_policy.json      # the complexity policy (weights, cuts, tiers) + its "litellm" section

The proxy's Python must import llmlab (the plugin module imports :mod:`llmlab.routing.plugin`; NumPy, no
scikit-learn). Keys and sandbox addresses appear only as ``os.environ/VAR``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from llmlab.errors import RoutingError

__all__ = ["CLASSIFIER_MODULE", "CONFIG_FILE", "PLUGIN_MODULE", "POLICY_FILE", "complexity_router_config",
           "export_litellm_config", "policy_config", "write_policy_config"]

CONFIG_FILE = "config.yaml"
PLUGIN_MODULE = "llmlab_route"
POLICY_FILE = "llmlab_route_policy.json"
CLASSIFIER_MODULE = "llmlab_tiers"

_MODULE_TEXT = '''"""Written by llmlab: the LiteLLM routing plugin that config.yaml names (router_settings.plugins).

Loads {policy_file} beside this file (or $LLMLAB_ROUTING_POLICY) when LiteLLM starts; a missing or corrupt
file stops the start-up with an llmlab RoutingError.
"""

from llmlab.routing.plugin import load_plugin

plugin = load_plugin(__file__, {policy_file!r})
'''

_CLASSIFIER_TEXT = '''"""Written by llmlab: the classifier plugin of LiteLLM's complexity router that config.yaml names
(complexity_router_config.classifier_plugin): it returns the tier of the llmlab complexity policy.

Loads {policy_file} beside this file (or $LLMLAB_ROUTING_POLICY) when LiteLLM starts; a missing or corrupt
file stops the start-up with an llmlab RoutingError.
"""

from llmlab.routing.plugin import load_classifier

classifier = load_classifier(__file__, {policy_file!r})
'''


def _category_table(policy: Any) -> Any:
    import pandas as pd

    from llmlab.routing.table import DEFAULT_CATEGORY, TABLE_COLUMNS

    if getattr(policy, "table", None) is not None:
        return policy.table
    rows = [{"category": c, "model": m, "fallbacks": []} for c, m in policy.mapping.items()]
    rows.append({"category": DEFAULT_CATEGORY, "model": policy.default, "fallbacks": []})
    return pd.DataFrame(rows).reindex(columns=list(TABLE_COLUMNS))


def _deployments(policy: Any) -> dict[str, str]:
    from llmlab.models import resolve

    return {m: resolve(m, check_keys=False).litellm_model for m in policy.models}


def policy_config(policy: Any, *, public_model_name: str = "llmlab-router", run_id: str | None = None,
                  num_retries: int = 2, timeout_s: float = 60.0, max_fallbacks: int = 2,
                  plugin_module: str = PLUGIN_MODULE) -> dict[str, Any]:
    """The LiteLLM config (a dict for ``yaml.safe_dump``) serving ``policy`` (see the module docstring).

    Args:
        policy: a fitted or loaded :class:`llmlab.routing.Policy`.
        public_model_name: the model name clients call. run_id: provenance.
        num_retries, timeout_s: LiteLLM router settings (seconds). max_fallbacks: fallback groups (dearest
            models first; LiteLLM falls back per model group, so the order is one global order).
        plugin_module: the module name of the plugin file beside the config.

    Raises RoutingError for a model with no non-zero price, or two models on one LiteLLM model string.
    """
    from llmlab.routing.litellm_config import _deployment, _slug, litellm_config

    if policy.kind == "category":
        return litellm_config(_category_table(policy), public_model_name=public_model_name, run_id=run_id,
                              num_retries=num_retries, timeout_s=timeout_s)
    deps = _deployments(policy)
    if len(set(deps.values())) != len(deps):
        raise RoutingError(f"two policy models map to one LiteLLM model ({deps}): the plugin cannot tell them apart")
    model_list = []
    for m in policy.models:
        dep = _deployment(m, public_name=public_model_name, tags=[],
                          info={"run_id": run_id, "policy_kind": policy.kind, "policy_model": m,
                                "role": f"routed by {plugin_module}.plugin"})
        dep["litellm_params"].pop("tags", None)
        dep["model_info"]["id"] = f"{public_model_name}--{_slug(m)}"
        model_list.append(dep)
    groups = []
    for i in range(1, min(max_fallbacks, len(policy.models) - 1) + 1):
        # every fallback group holds every policy deployment: the plugin picks the dearest model not tried yet
        # (LiteLLM keeps the primary's narrowed candidate list on the request, so a one-model group would be empty)
        group = f"{public_model_name}-fallback-{i}"
        for m in policy.models:
            dep = _deployment(m, public_name=group, tags=[],
                              info={"run_id": run_id, "role": f"fallback {i} of {public_model_name}",
                                    "policy_model": m})
            dep["litellm_params"].pop("tags", None)
            dep["model_info"]["id"] = f"{group}--{_slug(m)}"
            model_list.append(dep)
        groups.append(group)
    settings: dict[str, Any] = {"plugins": [f"{plugin_module}.plugin"], "num_retries": int(num_retries),
                                "timeout": float(timeout_s), "routing_strategy": "simple-shuffle"}
    if groups:
        settings["fallbacks"] = [{public_model_name: groups}]
    return {"model_list": model_list, "router_settings": settings}


def complexity_router_config(policy: Any, *, public_model_name: str = "llmlab-router", run_id: str | None = None,
                             num_retries: int = 2, timeout_s: float = 60.0,
                             classifier_module: str = CLASSIFIER_MODULE) -> dict[str, Any]:
    """LiteLLM's complexity-router config (a dict for ``yaml.safe_dump``) serving a complexity policy (see the module
    docstring): the public model is an ``auto_router/complexity_router`` deployment whose ``classifier_plugin``
    (``classifier_module.classifier``, LiteLLM's ``ClassifierPlugin``) names the policy's tier; each tier routes to
    the model group of the policy's model for it; every model group falls back to the dearer ones, dearest first.

    Raises RoutingError for a policy that is not a complexity policy, more than 8 tiers (LiteLLM's limit on
    ``tier_definitions``), a model with no non-zero price, or two models on one LiteLLM model string.
    """
    from llmlab.routing.litellm_config import _deployment, _slug

    if policy.kind != "complexity":
        raise RoutingError(f"LiteLLM's complexity router serves complexity policies, not {policy.kind!r} ones")
    if len(policy.tiers) > 8:
        raise RoutingError(f"{len(policy.tiers)} tiers: LiteLLM's complexity router takes at most 8 tier_definitions")
    deps = _deployments(policy)
    if len(set(deps.values())) != len(deps):
        raise RoutingError(f"two policy models map to one LiteLLM model ({deps}): LiteLLM cannot tell them apart")
    group = {m: f"{public_model_name}--{_slug(m)}" for m in policy.models}
    cuts = [float(c) for c in policy.cuts]
    definitions = []
    for t, name in enumerate(policy.tiers):
        lo = f"{cuts[t - 1]:.6g}" if t > 0 else "-inf"
        hi = f"{cuts[t]:.6g}" if t < len(cuts) else "+inf"
        definitions.append({"name": name, "description": f"llmlab complexity score in [{lo}, {hi}): routed to "
                                                         f"{policy.models[policy.tier_models[t]]}"})
    tiers = {name: group[policy.models[policy.tier_models[t]]] for t, name in enumerate(policy.tiers)}
    dearest_tier = max(range(len(policy.tiers)), key=lambda t: (policy.tier_models[t], t))
    router_dep = {"model_name": public_model_name,
                  "litellm_params": {"model": "auto_router/complexity_router",
                                     "complexity_router_config": {
                                         "classifier_type": "custom",
                                         "classifier_plugin": f"{classifier_module}.classifier",
                                         "tier_definitions": definitions, "tiers": tiers,
                                         "fallback_tier": policy.tiers[dearest_tier]}},
                  "model_info": {"id": f"{public_model_name}--complexity-router",
                                 "llmlab": {"run_id": run_id, "policy_kind": policy.kind,
                                            "role": f"tiers by {classifier_module}.classifier"}}}
    model_list = [router_dep]
    for m in policy.models:
        dep = _deployment(m, public_name=group[m], tags=[],
                          info={"run_id": run_id, "policy_kind": policy.kind, "policy_model": m,
                                "tiers": [n for t, n in enumerate(policy.tiers)
                                          if policy.models[policy.tier_models[t]] == m]})
        dep["litellm_params"].pop("tags", None)
        dep["model_info"]["id"] = group[m]
        model_list.append(dep)
    fallbacks = [{group[m]: [group[d] for d in reversed(policy.models) if d != m]} for m in policy.models
                 if len(policy.models) > 1]
    settings: dict[str, Any] = {"num_retries": int(num_retries), "timeout": float(timeout_s),
                                "routing_strategy": "simple-shuffle"}
    if fallbacks:
        settings["fallbacks"] = fallbacks
    return {"model_list": model_list, "router_settings": settings}


def write_policy_config(policy: Any, directory: str | os.PathLike[str], *, config_name: str = CONFIG_FILE,
                        public_model_name: str = "llmlab-router", serve: str | None = None, **kwargs: Any) -> Path:
    """Write the files serving ``policy`` into ``directory`` (created); returns the config's path.

    Category policies: the tags config only. Complexity policies (``serve="complexity_router"``, the default for
    them): LiteLLM's complexity-router config (:func:`complexity_router_config`), ``llmlab_tiers.py`` and
    ``llmlab_route_policy.json``. Prompt policies (and complexity ones with ``serve="plugin"``): ``config.yaml``,
    ``llmlab_route.py`` and ``llmlab_route_policy.json``. The model file is loaded back as the plugin loads it before
    returning, so a file the plugin cannot serve fails here. ``kwargs`` go to :func:`policy_config` /
    :func:`complexity_router_config`. Raises RoutingError as they do, and for an unknown ``serve``.
    """
    import yaml

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    serve = serve or ("complexity_router" if policy.kind == "complexity" else "plugin")
    if serve not in ("plugin", "complexity_router"):
        raise RoutingError(f"serve={serve!r}: expected 'plugin' or 'complexity_router'")
    path = out / config_name
    header = "# LiteLLM config written by llmlab (policy export).\n"
    if serve == "complexity_router" and policy.kind != "category":
        cfg = complexity_router_config(policy, public_model_name=public_model_name, **kwargs)
        payload = {**policy.to_dict(), "litellm": {"model_group": public_model_name, "serve": "complexity_router",
                                                   "deployments": _deployments(policy)}}
        (out / POLICY_FILE).write_text(json.dumps(payload, separators=(",", ":")), encoding="utf-8")
        (out / f"{CLASSIFIER_MODULE}.py").write_text(_CLASSIFIER_TEXT.format(policy_file=POLICY_FILE),
                                                     encoding="utf-8")
        policy.portable()
        header += (f"# LiteLLM's complexity router: the complexity policy in {POLICY_FILE} names each request's tier "
                   f"({CLASSIFIER_MODULE}.py, LiteLLM's ClassifierPlugin).\n# Load: `litellm --config {config_name}` "
                   "(llmlab importable), or llmlab.routing.plugin.load_router(path); async calls only.\n")
        path.write_text(header + yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True), encoding="utf-8")
        return path
    cfg = policy_config(policy, public_model_name=public_model_name, **kwargs)
    if policy.kind == "category":
        header += "# Call model '%s' with metadata={'tags': ['<category>']} (acompletion / proxy only).\n" % (
            public_model_name)
    else:
        module = cfg["router_settings"]["plugins"][0].rsplit(".", 1)[0]
        fallbacks = [g for item in cfg["router_settings"].get("fallbacks", []) for gs in item.values() for g in gs]
        payload = {**policy.to_dict(), "litellm": {"model_group": public_model_name, "fallback_groups": fallbacks,
                                                   "deployments": _deployments(policy)}}
        (out / POLICY_FILE).write_text(json.dumps(payload, separators=(",", ":")), encoding="utf-8")
        (out / f"{module}.py").write_text(_MODULE_TEXT.format(policy_file=POLICY_FILE), encoding="utf-8")
        policy.portable()  # the plugin loads the file as this does: a policy it cannot serve fails here
        header += (f"# The {policy.kind} policy in {POLICY_FILE} routes model '{public_model_name}' by the prompt "
                   f"text ({module}.py, LiteLLM's RoutingPlugin).\n# Load: `litellm --config {config_name}` "
                   "(llmlab importable), or llmlab.routing.plugin.load_router(path); async calls only.\n")
    path.write_text(header + yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def export_litellm_config(table: Any = None, path: str | os.PathLike[str] | None = None, *, policy: Any = None,
                          **kwargs: Any) -> Path:
    """The public export (``llmlab.export_litellm_config``).

    ``export_litellm_config(table, "routing.yaml")`` writes a routing table's tags config
    (:func:`llmlab.routing.litellm_config.write_litellm_config`, unchanged); ``export_litellm_config(policy=policy,
    path=directory)`` writes the files serving a fitted policy (:func:`write_policy_config`). ``kwargs`` go to the
    writer. Returns the config's path. Raises RoutingError for neither or both of ``table`` and ``policy``, for no
    path, and as the writers do.
    """
    from llmlab.routing.litellm_config import write_litellm_config

    if (table is None) == (policy is None) or path is None:
        raise RoutingError("export_litellm_config needs a path and exactly one of a routing table or policy=")
    if policy is not None:
        return write_policy_config(policy, path, **kwargs)
    return write_litellm_config(table, path, **kwargs)
