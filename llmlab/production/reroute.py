"""Re-route from production: fit a routing policy on a production run (with its feedback) and project the change
against the config that is serving now.

A production run is fitted exactly like an experiment (:func:`llmlab.routing.policies.fit_policy`) once it is one
row per user request (:func:`llmlab.production.compare.production_requests`): ``model`` is the routed model,
``quality`` the request's feedback (a failed request of a prompt that has feedback counts 0). Fitting needs
prompts answered by more than one model (exploration traffic, shadow calls or an A/B split): a prompt without a
quality for every model is left out, as in an experiment.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmlab.errors import RoutingError

__all__ = ["policy_from_config", "refit_from_production"]


def policy_from_config(config: Mapping[str, Any] | str, *, public_model_name: str = "llmlab-router") -> Any:
    """The category policy a LiteLLM config exported by llmlab serves: ``{tag: model}`` of the deployments under
    ``public_model_name`` (the ``default``-tagged one is the default), models named as llmlab names them
    (``sandbox/<name>`` for sandbox deployments).

    Raises RoutingError when the config cannot be read or has no deployment of ``public_model_name`` with a
    ``default`` tag.
    """
    from llmlab.routing.litellm_config import read_litellm_config
    from llmlab.routing.policies import CategoryPolicy

    config = read_litellm_config(config)  # RoutingError for a file that cannot be read or is no LiteLLM config
    mapping: dict[str, str] = {}
    default = None
    for dep in config.get("model_list") or []:
        if not isinstance(dep, Mapping) or dep.get("model_name") != public_model_name:
            continue
        params = dep.get("litellm_params") or {}
        model = str(params.get("model") or "")
        if str(params.get("api_base") or "") == "os.environ/LLMLAB_SANDBOX_API_BASE":
            model = "sandbox/" + model.rsplit("/", 1)[-1]
        for tag in params.get("tags") or []:
            if tag == "default":
                default = model
            else:
                mapping.setdefault(str(tag), model)
    if default is None:
        raise RoutingError(f"the config has no 'default' deployment of {public_model_name!r}")
    models = sorted({default, *mapping.values()})
    return CategoryPolicy(models, mapping, default, gains={}, pooled_gain=0.0)


def refit_from_production(production_run: Any, *, store: Any = None, current: Any = None, kind: str = "category",
                          **fit_kwargs: Any) -> tuple[Any, dict[str, Any]]:
    """Fit a routing policy on a production run and project it against the current config.

    Args:
        production_run: run reference. store: a Store or its path (default ``LLMLAB_DB``).
        current: the policy serving now (a :class:`~llmlab.routing.policies.Policy`, a LiteLLM config dict or
            the path of an exported config), or None for no projection.
        kind, fit_kwargs: as :func:`llmlab.routing.policies.fit_policy`.

    Returns ``(policy, projection)``: ``projection`` is ``{"refit": evaluate_policy(policy), "current":
    evaluate_policy(current) or None, "quality_change", "cost_per_1k_change_usd"}`` replayed over the production
    outcomes (in sample: a projection, not a held-out estimate).

    Raises RoutingError as :func:`~llmlab.routing.policies.fit_policy` (for example: no prompt answered by every
    model).
    """
    from llmlab.production.compare import production_requests
    from llmlab.production.recorder import merge_spilled
    from llmlab.routing.policies import Policy, evaluate_policy, fit_policy
    from llmlab.store import Store

    st = store if isinstance(store, Store) else Store(store)
    merge_spilled(st)
    requests = production_requests(st.results(st.resolve_run(production_run)))
    policy = fit_policy(requests, kind=kind, **fit_kwargs)
    refit = evaluate_policy(policy, requests)
    projection: dict[str, Any] = {"refit": refit, "current": None, "quality_change": None,
                                  "cost_per_1k_change_usd": None}
    if current is not None:
        cur = current if isinstance(current, Policy) else policy_from_config(current)
        now = evaluate_policy(cur, requests)
        projection.update(current=now, quality_change=refit["quality"] - now["quality"],
                          cost_per_1k_change_usd=refit["cost_per_1k_usd"] - now["cost_per_1k_usd"])
    return policy, projection
