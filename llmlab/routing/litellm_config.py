"""Export a routing table as a LiteLLM proxy ``config.yaml`` that ``litellm.Router`` also loads.

Shape (DESIGN.md, decision 8)::

    model_list:
      - model_name: llmlab-router            # the one public model name clients call
        litellm_params:
          model: openai/gpt-4o-mini           # the routed deployment
          api_key: os.environ/OPENAI_API_KEY  # keys only as os.environ/VAR, never values
          tags: [arithmetic]                  # the task category ("default" on the catch-all row)
          input_cost_per_token: 1.5e-07       # explicit, non-zero prices (a 0 counts as unset in LiteLLM)
          output_cost_per_token: 6.0e-07
        model_info: {id: ..., llmlab: {run_id, category, quality, n, ...}}   # provenance
      - model_name: llmlab-router-fallback-1  # fallback groups, tagged "default" so tag filtering keeps them
        ...
    router_settings:
      enable_tag_filtering: true
      fallbacks: [{llmlab-router: [llmlab-router-fallback-1, ...]}]
      num_retries: 2
      timeout: 60

Load it with the proxy (``litellm --config routing.yaml``) or in Python::

    cfg = yaml.safe_load(open("routing.yaml"))
    router = litellm.Router(**router_kwargs(cfg))      # = Router(model_list=..., **cfg["router_settings"])
    await router.acompletion(model="llmlab-router", messages=[...], metadata={"tags": ["arithmetic"]})

Known LiteLLM traps (reproduced with 1.106): tag filtering acts only through ``acompletion`` and the proxy (plain
``Router.completion`` ignores tags); LiteLLM's router fallbacks are per model group, so the exported chain is one
global order (the default row's fallbacks first, then those of the other rows); per-category fallbacks are kept in
``model_info`` for provenance. Sandbox deployments use ``api_base: os.environ/LLMLAB_SANDBOX_API_BASE``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llmlab.errors import RoutingError
from llmlab.models import NO_KEY_PLACEHOLDER, SANDBOX_API_BASE_ENV, SANDBOX_API_KEY_ENV, resolve

__all__ = [
    "export_litellm_config",
    "PROVIDER_KEY_ENV",
    "fallbacks_from_config",
    "read_litellm_config",
    "litellm_config",
    "router_kwargs",
    "write_litellm_config",
]

PROVIDER_KEY_ENV = {
    "openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "groq": "GROQ_API_KEY", "gemini": "GEMINI_API_KEY",
    "mistral": "MISTRAL_API_KEY", "together_ai": "TOGETHERAI_API_KEY", "openrouter": "OPENROUTER_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY", "cohere": "COHERE_API_KEY", "fireworks_ai": "FIREWORKS_AI_API_KEY",
    "xai": "XAI_API_KEY", "perplexity": "PERPLEXITYAI_API_KEY", "deepinfra": "DEEPINFRA_API_KEY",
}


def _slug(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9]+", "-", text).strip("-").lower()


def _deployment(model: str, *, public_name: str, tags: list[str], info: dict[str, Any]) -> dict[str, Any]:
    spec = resolve(model, check_keys=False)
    params: dict[str, Any] = {"model": spec.litellm_model}
    if spec.sandbox:
        params["api_base"] = f"os.environ/{SANDBOX_API_BASE_ENV}"
        params["api_key"] = f"os.environ/{SANDBOX_API_KEY_ENV}"
    elif spec.registered:
        # A registered endpoint: its own api_base and key variable (or the no-key placeholder), and its extras.
        if spec.api_base:
            params["api_base"] = spec.api_base
        params["api_key"] = f"os.environ/{spec.api_key_env}" if spec.api_key_env else NO_KEY_PLACEHOLDER
        params.update({k: v for k, v in spec.extra.items() if isinstance(v, (str, int, float, bool))})
    else:
        if spec.api_base:
            params["api_base"] = spec.api_base
        env = PROVIDER_KEY_ENV.get(spec.provider) or (spec.key_env[0] if spec.key_env else None)
        if env:
            params["api_key"] = f"os.environ/{env}"
    params["tags"] = tags
    if not spec.priced:
        raise RoutingError(f"{model}: no price known; set one with llmlab.set_price (or register_model(..., "
                           "price=(0, 0)) for a free model) before exporting")
    if not spec.registered and (not spec.input_cost_per_token or not spec.output_cost_per_token):
        raise RoutingError(f"{model}: a price of 0 for a provider model is refused (LiteLLM treats 0 as unset and "
                           "would bill its own map price); register a free local endpoint with register_model")
    params["input_cost_per_token"] = float(spec.input_cost_per_token)
    params["output_cost_per_token"] = float(spec.output_cost_per_token)
    return {"model_name": public_name, "litellm_params": params,
            "model_info": {"id": f"{public_name}--{_slug('-'.join(tags))}--{_slug(model)}", "llmlab": info}}


def _num(x: Any) -> Any:
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else round(f, 6)


def litellm_config(table: Any, *, public_model_name: str = "llmlab-router", run_id: str | None = None,
                   num_retries: int = 2, timeout_s: float = 60.0, production_logger: bool = False) -> dict[str, Any]:
    """Build the LiteLLM proxy config (a dict ready for ``yaml.safe_dump``) from a routing table.

    Args:
        table: :func:`llmlab.routing.routing_table` output (needs ``category, model, fallbacks``; ``quality, n,
            latency_p95_ms, cost_per_1k_prompts_usd, reason`` go into ``model_info`` when present).
        public_model_name: the model name clients call.
        run_id: the run the table was fitted on (provenance).
        num_retries, timeout_s: LiteLLM router settings (timeout in seconds).
        production_logger: add ``litellm_settings: {callbacks: [llmlab.production.proxy.logger]}``, so the
            LiteLLM proxy records every call into the llmlab store named by ``LLMLAB_DB`` (its other settings
            from ``LLMLAB_PRODUCTION_*``: :data:`llmlab.production.logger.ENV`). ``litellm.Router`` ignores it
            (set ``litellm.callbacks = [llmlab.LiteLLMLogger()]`` there).

    Raises RoutingError for an empty table, a table without a ``default`` row, or a model with no price.
    """
    if table is None or len(table) == 0:
        raise RoutingError("empty routing table: nothing to export")
    rows = table.to_dict("records")
    if not any(r["category"] == "default" for r in rows):
        raise RoutingError("the routing table has no 'default' row (LiteLLM needs it for untagged requests)")
    model_list = []
    for r in rows:
        info = {"run_id": run_id, "category": r["category"], "quality": _num(r.get("quality")),
                "quality_ci_low": _num(r.get("quality_ci_low")), "n": int(r["n"]) if r.get("n") == r.get("n") and r.get("n") is not None else None,
                "latency_p95_ms": _num(r.get("latency_p95_ms")),
                "cost_per_1k_prompts_usd": _num(r.get("cost_per_1k_prompts_usd")),
                "fallbacks": list(r.get("fallbacks") or []), "reason": r.get("reason")}
        model_list.append(_deployment(r["model"], public_name=public_model_name, tags=[str(r["category"])], info=info))
    order: list[str] = []
    default_row = next(r for r in rows if r["category"] == "default")
    for r in [default_row, *rows]:
        for m in r.get("fallbacks") or []:
            if m not in order:
                order.append(m)
    groups = []
    for i, m in enumerate(order, start=1):
        group = f"{public_model_name}-fallback-{i}"
        groups.append(group)
        model_list.append(_deployment(m, public_name=group, tags=["default"],
                                      info={"run_id": run_id, "role": f"fallback {i} of {public_model_name}"}))
    router_settings: dict[str, Any] = {
        "enable_tag_filtering": True,
        "num_retries": int(num_retries),
        "timeout": float(timeout_s),
        "routing_strategy": "simple-shuffle",
    }
    if groups:
        router_settings["fallbacks"] = [{public_model_name: groups}]
    config: dict[str, Any] = {"model_list": model_list, "router_settings": router_settings}
    if production_logger:
        # the module path LiteLLM's proxy imports (llmlab.production.proxy.CALLBACK; not imported here: layers)
        config["litellm_settings"] = {"callbacks": ["llmlab.production.proxy.logger"]}
    return config


def router_kwargs(config: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``litellm.Router`` from a proxy config dict: ``model_list`` plus ``router_settings``."""
    return {"model_list": config["model_list"], **config.get("router_settings", {})}


def write_litellm_config(table: Any, path: str | Path, **kwargs: Any) -> Path:
    """Write :func:`litellm_config` as YAML to ``path`` (folders created); returns the path.

    The file holds no secret: keys and sandbox addresses appear only as ``os.environ/VAR`` references.
    """
    import yaml

    cfg = litellm_config(table, **kwargs)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = ("# LiteLLM proxy config written by llmlab (routing table export).\n"
              "# Load: `litellm --config THIS_FILE`, or litellm.Router(model_list=cfg['model_list'], "
              "**cfg['router_settings']).\n"
              "# Call model 'llmlab-router' with metadata={'tags': ['<category>']} (acompletion / proxy only).\n")
    path.write_text(header + yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    return path


# -- fallbacks from an exported routing config -------------------------------------------------------------
def _config_model_name(params: Mapping[str, Any]) -> str | None:
    """The llmlab model name of one LiteLLM deployment (``litellm_params``)."""
    model = params.get("model")
    if not model:
        return None
    base = str(params.get("api_base") or "")
    if base == f"os.environ/{SANDBOX_API_BASE_ENV}":
        return "sandbox/" + str(model).rsplit("/", 1)[-1]
    return str(model)


def read_litellm_config(config: Mapping[str, Any] | str | os.PathLike[str]) -> Mapping[str, Any]:
    """A LiteLLM config as a mapping: ``config`` itself, or its YAML file read. Raises RoutingError when the file
    cannot be read or parsed, or the config has no ``model_list``."""
    if not isinstance(config, Mapping):
        import yaml

        try:
            with open(config, encoding="utf-8") as fh:
                config = yaml.safe_load(fh)
        except (OSError, yaml.YAMLError) as exc:
            raise RoutingError(f"cannot read the LiteLLM config {config}: {exc}") from exc
    if not isinstance(config, Mapping) or not isinstance(config.get("model_list"), list):
        raise RoutingError("not a LiteLLM config: no model_list")
    return config


def fallbacks_from_config(config: Mapping[str, Any] | str | os.PathLike[str]) -> dict[str, list[str]]:
    """Fallback chains, per routed model, from a LiteLLM proxy config (as written by
    :func:`llmlab.routing.litellm_config.write_litellm_config`, or any LiteLLM config with ``router_settings.fallbacks``).

    Every model deployed under a model group that has fallbacks gets the models of those fallback groups, in
    order (each group's deployments in file order, repeats and the model itself dropped), then the
    ``default_fallbacks`` groups. Sandbox deployments (``api_base: os.environ/LLMLAB_SANDBOX_API_BASE``) are
    named ``sandbox/<name>``; others by their LiteLLM model string. Use the result as ``run(...,
    fallbacks=...)``.

    Args:
        config: the config as a dict, or the path of its YAML file.
    Returns:
        ``{"sandbox/fast": ["sandbox/frontier", "sandbox/balanced"], ...}`` (models without fallbacks omitted).
    Raises:
        RoutingError: the file cannot be read or parsed, or it has no ``model_list``.
    """
    config = read_litellm_config(config)
    groups: dict[str, list[str]] = {}
    for dep in config["model_list"]:
        if not isinstance(dep, Mapping):
            continue
        name = _config_model_name(dep.get("litellm_params") or {})
        if name and dep.get("model_name"):
            groups.setdefault(str(dep["model_name"]), [])
            if name not in groups[str(dep["model_name"])]:
                groups[str(dep["model_name"])].append(name)
    settings = config.get("router_settings") or {}
    chains: dict[str, list[str]] = {}
    for item in settings.get("fallbacks") or []:
        if not isinstance(item, Mapping):
            continue
        for group, targets in item.items():
            for model in groups.get(str(group), []):
                chain = chains.setdefault(model, [])
                for target in targets or []:
                    for m in groups.get(str(target), []):
                        if m != model and m not in chain:
                            chain.append(m)
    default_groups = settings.get("default_fallbacks") or []
    if default_groups:
        for group, models in groups.items():
            if group in default_groups:
                continue
            for model in models:
                chain = chains.setdefault(model, [])
                for target in default_groups:
                    for m in groups.get(str(target), []):
                        if m != model and m not in chain:
                            chain.append(m)
    return {m: c for m, c in chains.items() if c}


#: The public name (``llmlab.export_litellm_config``).
export_litellm_config = write_litellm_config
