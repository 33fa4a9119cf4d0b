"""The LiteLLM routing plugin that serves an llmlab policy: LiteLLM's own Router and proxy route each request by its
prompt text, with no llmlab server and no change to LiteLLM.

Extension point: LiteLLM's ``RoutingPlugin`` interface (``litellm.types.router.RoutingPlugin``: an object with an
``async run(context) -> context`` method). ``litellm.Router(plugins=[...])`` runs every plugin before it picks a
deployment; the proxy builds the same list from ``router_settings.plugins`` (dotted paths, resolved at start-up as
``litellm_settings.callbacks`` are: a module file beside ``config.yaml``, else an installed module). The context
carries the request's messages (``structured_messages``, OpenAI shape) and the model group's deployment models
(``candidate_models``); a plugin narrows ``candidate_models`` and LiteLLM then picks only among those, with its
usual retries, cooldowns and fallbacks. Chosen over the alternatives because it is the one interface that both the
in-process Router and the proxy config load unchanged: a proxy ``CustomLogger.async_pre_call_hook`` rewriting
``data["model"]`` runs in the proxy only (a Router never calls it); ``Router.set_custom_routing_strategy`` is
Router-only and replaces LiteLLM's deployment selection (no proxy config key); the complexity router's
``classifier_plugin`` maps requests to tiers, which suits tiers but not a per-pair score and threshold.

:class:`PolicyPlugin` scores the last user message with the policy's pure NumPy scorer (no scikit-learn, no
network call; about 1 ms per prompt for the learned router, see the README), keeps the chosen model's deployment in
``candidate_models`` and records the decision as the plugin signal ``llmlab_route``; LiteLLM copies the signals to
the request metadata, so a logger (``CustomLogger``) reads it at ``metadata["routing_plugin_signals"]["llmlab_route"]``
(:func:`route_decision`): ``{"model", "deployment", "policy_kind", "score", "threshold", ...}``. Requests for other
model groups (the fallback groups included) pass through untouched.

Files (written by :func:`llmlab.routing.policy_export.write_policy_config`): ``config.yaml``, the policy model file
``llmlab_route_policy.json`` (:meth:`llmlab.routing.Policy.to_json` plus a ``"litellm"`` section naming the model
group and each model's deployment) and the three-line module ``llmlab_route.py`` whose ``plugin`` the config names.
The model file is read when that module is imported, i.e. at Router / proxy start-up: a missing or corrupt file
raises :class:`~llmlab.errors.RoutingError` there, never a silent route-everything-to-one-model. The path is the
file beside the module, or ``$LLMLAB_ROUTING_POLICY`` when set.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from llmlab.errors import RoutingError
from llmlab.settings import ROUTING_POLICY_ENV

__all__ = ["POLICY_ENV", "SIGNAL", "PolicyPlugin", "TierClassifier", "load_classifier", "load_plugin", "load_router",
           "prompt_text", "route_decision"]

POLICY_ENV = ROUTING_POLICY_ENV
SIGNAL = "llmlab_route"


def prompt_text(messages: Any) -> str:
    """The text a policy routes on: the last user message's text (text parts of a list content joined by newlines);
    the last message of any role when there is no user message; ``""`` for no messages."""
    msgs = [m for m in (messages or []) if isinstance(m, Mapping)]
    users = [m for m in msgs if m.get("role") == "user"] or msgs
    if not users:
        return ""
    content = users[-1].get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping) and p.get("type") == "text")
    return "" if content is None else str(content)


class PolicyPlugin:
    """A LiteLLM ``RoutingPlugin`` serving ``policy`` on the model group ``model_group``.

    Args:
        policy: a :class:`llmlab.routing.Policy` (fitted or loaded; it is converted to its portable JSON form, so
            the plugin scores exactly as the exported file does).
        deployments: ``{policy model: litellm_params.model of its deployment}``, one per policy model, distinct.
        model_group: the public model name the policy routes; requests for other groups pass through.
        source: where the policy came from (for messages).

    Raises RoutingError when a policy model has no deployment or two models share one.
    """

    def __init__(self, policy: Any, deployments: Mapping[str, str], *, model_group: str = "llmlab-router",
                 fallback_groups: Sequence[str] = (), source: str = "policy") -> None:
        from llmlab.routing.policies import PromptPolicy

        self.policy = policy.portable() if isinstance(policy, PromptPolicy) and policy._pure is None else policy
        missing = [m for m in self.policy.models if m not in deployments]
        if missing:
            raise RoutingError(f"{source}: no deployment for policy model(s) {', '.join(missing)}")
        self.deployments = {m: str(deployments[m]) for m in self.policy.models}
        if len(set(self.deployments.values())) != len(self.deployments):
            raise RoutingError(f"{source}: two policy models share one deployment model ({self.deployments}); "
                               "LiteLLM's plugin pipeline tells deployments apart by litellm_params.model")
        self.model_group, self.fallback_groups, self.source = model_group, list(fallback_groups), source

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> PolicyPlugin:
        """Load a policy model file written by the exporter (policy JSON plus its ``"litellm"`` section).

        Raises RoutingError naming the file for a missing or unreadable file, invalid JSON (line and column), an
        unknown format or kind, malformed arrays, or a missing ``"litellm"`` section.
        """
        from llmlab.routing.policies import Policy

        p = Path(path)
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise RoutingError(f"routing policy file {p} not found (write it with policy.export(directory), or set "
                               f"{POLICY_ENV})") from exc
        except OSError as exc:
            raise RoutingError(f"cannot read the routing policy file {p}: {exc.strerror or exc}") from exc
        except json.JSONDecodeError as exc:
            raise RoutingError(f"{p}, line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg})") from exc
        except UnicodeDecodeError as exc:
            raise RoutingError(f"{p}: not UTF-8 text (byte {exc.start})") from exc
        policy = Policy.from_dict(d, source=str(p))
        serve = d.get("litellm")
        if not isinstance(serve, Mapping) or not isinstance(serve.get("deployments"), Mapping):
            raise RoutingError(f"{p}: no 'litellm' section with 'deployments' (write it with policy.export)")
        return cls(policy, serve["deployments"], model_group=str(serve.get("model_group") or "llmlab-router"),
                   fallback_groups=[str(g) for g in serve.get("fallback_groups") or []], source=str(p))

    def decide(self, prompt: str, category: str | None = None) -> dict[str, Any]:
        """The routing decision for one prompt: ``{"model", "deployment", "policy_kind", "score", "threshold",
        "decide_ms", ...}`` (``score`` / ``threshold`` where the policy has them; ``decide_ms``: scoring time)."""
        t0 = time.perf_counter()
        i, details = self.policy.decide(prompt, category)
        model = self.policy.models[i]
        return {"model": model, "deployment": self.deployments[model], "policy_kind": self.policy.kind,
                "score": details.pop("score", None), "threshold": details.pop("threshold", None), **details,
                "decide_ms": round((time.perf_counter() - t0) * 1000, 3)}

    def fallback(self, previous: Mapping[str, Any] | None, group: str) -> dict[str, Any]:
        """The decision on a fallback group: the dearest model not tried yet on this request (``previous``: the
        decision recorded by the last attempt), else the dearest model."""
        tried = [*(previous or {}).get("tried", []), *([previous["model"]] if previous and previous.get("model") else [])]
        order = [m for m in reversed(self.policy.models) if m not in tried] or list(reversed(self.policy.models))
        return {"model": order[0], "deployment": self.deployments[order[0]], "policy_kind": self.policy.kind,
                "score": None, "threshold": None, "fallback_group": group, "tried": tried}

    async def run(self, context: Any) -> Any:
        """LiteLLM's ``RoutingPlugin.run``: narrow ``context.candidate_models`` to the policy's choice.

        On the config's fallback groups (each holds every policy deployment) the dearest model not tried yet on
        this request is chosen. Raises RoutingError when a request for this plugin's model group lacks one of the
        policy's deployments (an edited config): failing the request beats LiteLLM spreading it over what is left.
        """
        candidates = list(context.candidate_models)
        wanted = set(self.deployments.values())
        meta = context.metadata if isinstance(context.metadata, Mapping) else {}
        group = meta.get("model_group")
        if not wanted <= set(candidates):
            if group == self.model_group or group in self.fallback_groups:
                raise RoutingError(f"model group {group!r} serves {candidates}, but the policy ({self.source}) "
                                   f"routes to {sorted(wanted)}: re-export the config")
            return context  # another model group: not ours to route
        if group in self.fallback_groups:
            decision = self.fallback(route_decision(meta), str(group))
        else:
            tags = meta.get("tags") or []
            category = next((str(t) for t in tags if t in getattr(self.policy, "mapping", {})), None)
            decision = self.decide(prompt_text(context.structured_messages or context.raw_messages), category)
        context.candidate_models = [decision["deployment"]]
        context.signals[SIGNAL] = decision
        return context


class TierClassifier:
    """A LiteLLM ``ClassifierPlugin`` (``litellm.types.router.ClassifierPlugin``: ``async classify(context) -> tier
    name``) for the complexity router's ``classifier_type: custom``: the tier of a complexity policy
    (:class:`llmlab.routing.complexity.ComplexityPolicy`) for the request's last user message. LiteLLM's complexity
    router then routes to the model group the config's ``tiers`` names for it, and records the tier in the request
    metadata (``metadata["routing_decision"]["tier"]``, ``cause: "classifier_plugin"``) and the
    ``x-litellm-complexity-router-tier`` response header.

    Raises RoutingError for a policy without tiers.
    """

    def __init__(self, policy: Any, *, source: str = "policy") -> None:
        if not getattr(policy, "tiers", None):
            raise RoutingError(f"{source}: a {policy.kind} policy has no tiers; LiteLLM's complexity router needs a "
                               "complexity policy (fit_policy(..., kind='complexity'))")
        self.policy, self.source = policy, source

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> TierClassifier:
        """Load the model file written beside the config. Raises RoutingError as :meth:`PolicyPlugin.from_file`."""
        plugin = PolicyPlugin.from_file(path)
        return cls(plugin.policy, source=plugin.source)

    def tier(self, prompt: str) -> str:
        """The tier name of one prompt (a ``tier_definitions`` name of the exported config)."""
        return str(self.policy.decide(prompt)[1]["tier"])

    async def classify(self, context: Any) -> str:
        """LiteLLM's ``ClassifierPlugin.classify``: the tier of the last user message of ``context``."""
        return self.tier(prompt_text(context.structured_messages or context.raw_messages))


def load_classifier(module_file: str | os.PathLike[str], name: str = "llmlab_route_policy.json") -> TierClassifier:
    """The classifier for the module ``llmlab_tiers.py`` written beside ``config.yaml``: the model file ``name``
    beside ``module_file``, or ``$LLMLAB_ROUTING_POLICY``. Raises RoutingError as :meth:`PolicyPlugin.from_file`."""
    override = os.environ.get(POLICY_ENV)
    return TierClassifier.from_file(Path(override).expanduser() if override else Path(module_file).parent / name)


def route_decision(metadata: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The plugin's decision recorded in a request's metadata (``kwargs["litellm_params"]["metadata"]`` in a
    ``CustomLogger``), or None when no llmlab plugin routed it."""
    if not isinstance(metadata, Mapping):
        return None
    signals = metadata.get("routing_plugin_signals")
    hit = signals.get(SIGNAL) if isinstance(signals, Mapping) else None
    return dict(hit) if isinstance(hit, Mapping) else None


def load_plugin(module_file: str | os.PathLike[str], name: str = "llmlab_route_policy.json") -> PolicyPlugin:
    """The plugin for the module ``llmlab_route.py`` written beside ``config.yaml``: the model file ``name`` beside
    ``module_file``, or ``$LLMLAB_ROUTING_POLICY`` when set. Raises RoutingError as :meth:`PolicyPlugin.from_file`."""
    override = os.environ.get(POLICY_ENV)
    return PolicyPlugin.from_file(Path(override).expanduser() if override else Path(module_file).parent / name)


def _resolve(entry: Any, config_dir: Path) -> Any:
    """One ``router_settings.plugins`` entry as the proxy resolves it: ``module.attr`` from ``module.py`` beside the
    config when that file exists, else from an importable module; non-strings pass through."""
    import importlib
    import importlib.util

    if not isinstance(entry, str):
        return entry
    module_name, _, attr = entry.rpartition(".")
    if not module_name:
        raise RoutingError(f"router_settings.plugins entry {entry!r}: expected 'module.attribute'")
    file = config_dir.joinpath(*module_name.split(".")).with_suffix(".py")
    if file.exists():
        spec = importlib.util.spec_from_file_location(module_name, file)
        if spec is None or spec.loader is None:
            raise RoutingError(f"cannot load the plugin module {file}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise RoutingError(f"router_settings.plugins entry {entry!r}: {module_name} has no {attr!r}") from exc


def load_router(config: str | os.PathLike[str], **overrides: Any) -> Any:
    """A ``litellm.Router`` from an exported ``config.yaml``, its ``router_settings.plugins`` resolved as the proxy
    resolves them (so the Router routes exactly as ``litellm --config`` does). ``overrides`` go to ``Router``.

    Use ``await router.acompletion(...)``: LiteLLM runs routing plugins on its async path only (a plugin on the
    sync path raises). Raises RoutingError for an unreadable config or a plugin that fails to load.
    """
    import yaml

    from llmlab._litellm import litellm
    from llmlab.routing.litellm_config import router_kwargs

    path = Path(config)
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RoutingError(f"cannot read the LiteLLM config {path}: {exc}") from exc
    if not isinstance(cfg, Mapping) or not isinstance(cfg.get("model_list"), list):
        raise RoutingError(f"{path}: not a LiteLLM config (no model_list)")
    kwargs = router_kwargs(dict(cfg))
    if kwargs.get("plugins"):
        kwargs["plugins"] = [_resolve(e, path.parent) for e in kwargs["plugins"]]
    model_list = []
    for dep in kwargs["model_list"]:
        # the proxy resolves complexity_router_config.classifier_plugin / .plugins dotted paths at start-up
        # (proxy_server.resolve_complexity_router_plugins); an in-process Router needs the live objects
        crc = ((dep or {}).get("litellm_params") or {}).get("complexity_router_config") if isinstance(dep, Mapping) \
            else None
        if isinstance(crc, Mapping) and (isinstance(crc.get("classifier_plugin"), str) or crc.get("plugins")):
            crc = dict(crc)
            if isinstance(crc.get("classifier_plugin"), str):
                crc["classifier_plugin"] = _resolve(crc["classifier_plugin"], path.parent)
            if crc.get("plugins"):
                crc["plugins"] = [_resolve(e, path.parent) for e in crc["plugins"]]
            dep = {**dep, "litellm_params": {**dep["litellm_params"], "complexity_router_config": crc}}
        model_list.append(dep)
    kwargs["model_list"] = model_list
    return litellm().Router(**{**kwargs, **overrides})
