"""Routed runs: ``llmlab.run(prompts, router=...)`` sends each prompt to the one model a routing policy chooses and
records the decision beside the calls, so a policy is checked on live calls as it would be served.

``router`` is any of: a fitted or loaded :class:`llmlab.routing.Policy`; a :class:`llmlab.routing.plugin.PolicyPlugin`;
the directory or ``config.yaml`` written by ``policy.export(directory)`` (the plugin it names is loaded exactly as
LiteLLM loads it); a policy model file (``.json``); or a tags config written from a routing table (a category is
routed by its tag, an unknown category by the ``default`` row). The decision is the one the exported plugin makes
(the same code). Each prompt becomes one planned call (per sample) to the chosen model; with a config, when the
run gives no ``fallbacks``, the config's fallbacks apply and ``max_attempts`` is LiteLLM's ``num_retries + 1`` and
``timeout_s`` its ``timeout`` (calls still go through llmlab's fan-out, not ``litellm.Router``).

Decisions are stored in the ``routing_decisions`` table (:meth:`llmlab.store.Store.routing_decisions`): ``run_id,
prompt_id, model, policy_kind, score, threshold, decision (JSON), router, created_at_utc``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from llmlab.errors import RoutingError

__all__ = ["Decider", "load_decider", "prepare_routed"]


class Decider:
    """``decide(prompt, category) -> {"model", "policy_kind", "score", "threshold", ...}`` over ``models``;
    ``config``: the LiteLLM config dict it came from, when any; ``source``: a label for the decisions table."""

    def __init__(self, decide: Any, models: list[str], *, source: str, config: dict[str, Any] | None = None) -> None:
        self.decide, self.models, self.source, self.config = decide, models, source, config


def _policy_decider(policy: Any, source: str) -> Decider:
    def decide(prompt: str, category: str | None) -> dict[str, Any]:
        i, details = policy.decide(prompt, category)
        return {"model": policy.models[i], "policy_kind": policy.kind, **details}

    return Decider(decide, list(policy.models), source=source)


def _tags_decider(cfg: dict[str, Any], source: str) -> Decider:
    from llmlab.routing.litellm_config import _config_model_name

    groups = [g for item in (cfg.get("router_settings") or {}).get("fallbacks") or [] for g in item]
    public = groups[0] if groups else cfg["model_list"][0]["model_name"]
    mapping: dict[str, str] = {}
    for dep in cfg["model_list"]:
        if dep.get("model_name") != public:
            continue
        model = _config_model_name(dep.get("litellm_params") or {})
        for tag in (dep.get("litellm_params") or {}).get("tags") or []:
            mapping.setdefault(str(tag), str(model))
    if "default" not in mapping:
        raise RoutingError(f"{source}: no deployment of {public!r} carries the 'default' tag")

    def decide(prompt: str, category: str | None) -> dict[str, Any]:
        return {"model": mapping.get(str(category), mapping["default"]), "policy_kind": "category",
                "category": category, "score": None, "threshold": None}

    return Decider(decide, list(dict.fromkeys(mapping.values())), source=source, config=cfg)


def load_decider(router: Any) -> Decider:
    """A :class:`Decider` for any ``router`` form listed in the module docstring. Raises RoutingError for a path
    that is neither a config, a config directory nor a policy file, and as the loaders do."""
    from llmlab.routing.plugin import PolicyPlugin, _resolve
    from llmlab.routing.policies import Policy

    if isinstance(router, Policy):
        return _policy_decider(router, f"{router.kind} policy (in memory)")
    if isinstance(router, PolicyPlugin):
        return Decider(lambda p, c: router.decide(p, c), list(router.policy.models), source=router.source)
    if not isinstance(router, (str, os.PathLike)):
        raise RoutingError(f"router must be a Policy, a PolicyPlugin or a path, not {type(router).__name__}")
    path = Path(router)
    if path.is_dir():
        path = path / "config.yaml"
    if path.suffix == ".json":
        import json

        try:
            has_serve = "litellm" in json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            has_serve = True  # let the plugin loader name the problem
        if has_serve:
            plugin = PolicyPlugin.from_file(path)
            return Decider(plugin.decide, list(plugin.policy.models), source=str(path))
        return _policy_decider(Policy.from_json(path), str(path))
    import yaml

    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RoutingError(f"cannot read the routing config {path}: {exc}") from exc
    if not isinstance(cfg, dict) or not isinstance(cfg.get("model_list"), list):
        raise RoutingError(f"{path}: not a LiteLLM config (no model_list)")
    plugins = [_resolve(e, path.parent) for e in (cfg.get("router_settings") or {}).get("plugins") or []]
    ours = [p for p in plugins if isinstance(p, PolicyPlugin)]
    if ours:
        return Decider(ours[0].decide, list(ours[0].policy.models), source=str(path), config=cfg)
    # a complexity policy served by LiteLLM's own complexity router: its model file is written beside the config
    complexity = [d for d in cfg["model_list"] if str((d.get("litellm_params") or {}).get("model", "")).startswith(
        "auto_router/complexity_router")]
    if complexity:
        model_file = path.parent / "llmlab_route_policy.json"
        if not model_file.exists():
            raise RoutingError(f"{path}: serves a complexity router but its model file {model_file} is missing")
        plugin = PolicyPlugin.from_file(model_file)
        return Decider(plugin.decide, list(plugin.policy.models), source=str(path), config=cfg)
    return _tags_decider(cfg, str(path))


def prepare_routed(router: Any, prompts: Any, models: Any = None, **kwargs: Any) -> tuple[Any, list[dict[str, Any]]]:
    """Plan a routed run: :func:`llmlab.runner.plan.prepare` over the router's models (or ``models``), then keep,
    per prompt, only the calls to the chosen model; the budget is checked on what is left.

    Returns ``(plan, decisions)``; ``decisions``: one dict per prompt (``prompt_id, model, policy_kind, score,
    threshold, decision, router``; no ``run_id`` yet). Raises RoutingError when the policy chooses a model the run
    does not plan, and what ``prepare`` raises.
    """
    from llmlab.runner.plan import check_budget, prepare

    dec = load_decider(router)
    cfg = dec.config or {}
    settings = cfg.get("router_settings") or {}
    if cfg and not kwargs.get("fallbacks"):
        if settings.get("fallbacks"):
            dearest_first = list(reversed(dec.models))
            kwargs["fallbacks"] = {m: [x for x in dearest_first if x != m] for m in dec.models}
        if "max_attempts" not in kwargs and settings.get("num_retries") is not None:
            kwargs["max_attempts"] = int(settings["num_retries"]) + 1
        if "timeout_s" not in kwargs and settings.get("timeout"):
            kwargs["timeout_s"] = float(settings["timeout"])
    budget = kwargs.pop("budget_usd", None)
    the_plan = prepare(prompts, models or dec.models, **kwargs)
    planned = {s.name for s in the_plan.specs}
    decisions: dict[str, dict[str, Any]] = {}
    for p in the_plan.prompt_set:
        d = dec.decide(p.text, p.category)
        if d["model"] not in planned:
            raise RoutingError(f"the policy routes prompt {p.prompt_id} to {d['model']}, which the run does not plan "
                               f"(models: {', '.join(sorted(planned))})")
        decisions[p.prompt_id] = d
    the_plan.calls = [c for c in the_plan.calls if decisions[c.prompt.prompt_id]["model"] == c.spec.name]
    if budget is not None:
        the_plan.options = the_plan.options.model_copy(update={"budget_usd": budget})
        check_budget(the_plan)
    rows = [{"prompt_id": pid, "model": d["model"], "policy_kind": d.get("policy_kind"),
             "score": d.get("score"), "threshold": d.get("threshold"), "decision": d, "router": dec.source}
            for pid, d in decisions.items()]
    return the_plan, rows
