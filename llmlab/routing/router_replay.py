"""Replay a prompt set through ``litellm.Router`` built from an exported config: the policy verified as deployed.

:func:`replay_through_router` sends every prompt once to the config's public model (``llmlab-router``) through
LiteLLM's own Router (the exported plugin, ``num_retries``, fallbacks and timeout: LiteLLM's policy, not llmlab's
fan-out and retry policy) and records each request as a call row of a new run (``runs.source =
'replay:litellm-router'``): ``model`` is the model the policy chose, ``answered_by`` the deployment that answered
(from the response's ``model_id``), ``fallbacks_taken`` / ``attempts`` from LiteLLM's ``x-litellm-attempted-*``
headers, a failed request an error row. Prompts with a reference and a scorer are scored as in any run, so the
run's quality is what the deployed policy gives, fallback path included; the routing decisions go to the
``routing_decisions`` table. Tags configs (category tables) are replayed with the prompt's category as the tag;
LiteLLM complexity-router configs (complexity policies) record the tier LiteLLM's router chose.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from llmlab.errors import RoutingError

__all__ = ["replay_through_router"]


def _served_by(cfg: dict[str, Any]) -> dict[str, str]:
    from llmlab.routing.litellm_config import _config_model_name

    out = {}
    for dep in cfg["model_list"]:
        info, params = dep.get("model_info") or {}, dep.get("litellm_params") or {}
        name = (info.get("llmlab") or {}).get("policy_model") or _config_model_name(params)
        if info.get("id") and name:
            out[str(info["id"])] = str(name)
    return out


def _complexity_tiers(cfg: dict[str, Any]) -> tuple[str, dict[str, str]] | None:
    """For a LiteLLM complexity-router config (``policy.export`` of a complexity policy): ``(public model name,
    {model group: llmlab model})``; None for any other config."""
    for dep in cfg["model_list"]:
        params = dep.get("litellm_params") or {}
        if str(params.get("model", "")).startswith("auto_router/complexity_router"):
            groups = {str(d.get("model_name")): str(((d.get("model_info") or {}).get("llmlab") or {}).get("policy_model")
                                                  or d.get("model_name")) for d in cfg["model_list"] if d is not dep}
            return str(dep["model_name"]), groups
    return None


def _tier_decision(meta: dict[str, Any], groups: dict[str, str]) -> dict[str, Any] | None:
    """The decision LiteLLM's complexity router recorded (``metadata["routing_decision"]``), in llmlab's shape."""
    rd = meta.get("routing_decision")
    if not isinstance(rd, dict) or rd.get("router_type") != "complexity":
        return None
    routed = str(rd.get("routed_model"))
    return {"model": groups.get(routed, routed), "policy_kind": "complexity", "tier": rd.get("tier"),
            "cause": rd.get("cause"), "model_group": routed, "score": rd.get("score"), "threshold": None}


async def _one(router: Any, public: str, p: Any, messages: list[dict[str, str]], params: dict[str, Any],
               tags_mode: bool, served: dict[str, str], tag_models: dict[str, str],
               tier_groups: dict[str, str] | None = None) -> tuple[dict[str, Any], Any]:
    from llmlab._litellm import redact
    from llmlab.models import resolve
    from llmlab.routing.plugin import route_decision

    meta: dict[str, Any] = {"tags": [p.category or "default"]} if tags_mode else {}
    t0 = time.perf_counter()
    row: dict[str, Any] = {"attempts": 1}
    try:
        resp = await router.acompletion(model=public, messages=messages, metadata=meta, **params)
        hidden = getattr(resp, "_hidden_params", {}) or {}
        headers = hidden.get("additional_headers") or {}
        fb = int(headers.get("x-litellm-attempted-fallbacks") or 0)
        retries = int(headers.get("x-litellm-attempted-retries") or 0)
        usage = getattr(resp, "usage", None)
        answered = served.get(str(hidden.get("model_id")), str(hidden.get("model_id")))
        in_tok, out_tok = getattr(usage, "prompt_tokens", None), getattr(usage, "completion_tokens", None)
        cost = None
        try:
            if in_tok is not None and out_tok is not None:
                cost = resolve(answered, check_keys=False).cost_usd(int(in_tok), int(out_tok))
        except Exception:  # noqa: BLE001 - an unknown served model: cost unknown, never a silent 0
            cost = None
        row.update(status="ok", response=redact(resp.choices[0].message.content or ""), answered_by=answered,
                   finish_reason=resp.choices[0].finish_reason, input_tokens=in_tok, output_tokens=out_tok,
                   cost_usd=cost, fallbacks_taken=fb, attempts=1 + retries + fb)
    except Exception as exc:  # noqa: BLE001 - a failed request is a recorded row, never a missing one
        row.update(status="error", error_type=type(exc).__name__, http_status=getattr(exc, "status_code", None),
                   error_message=(redact(str(exc)) or "")[:500])
    row["latency_ms"] = (time.perf_counter() - t0) * 1000
    decision = route_decision(meta)
    if decision is None and tier_groups is not None:
        decision = _tier_decision(meta, tier_groups)
    if decision is None and tags_mode:
        decision = {"model": tag_models.get(p.category or "default", tag_models.get("default")),
                    "policy_kind": "category", "category": p.category}
    return row, decision


def replay_through_router(config: str | os.PathLike[str], prompts: Any, *, store: Any = None, name: str | None = None,
                          concurrency: int = 8, template: str | None = None, category_column: str | None = None,
                          system: str | None = None, **params: Any) -> str:
    """Send ``prompts`` through ``litellm.Router`` built from ``config`` (an exported ``config.yaml`` or its
    directory) and record the calls as a run; returns its ``run_id``.

    Args:
        prompts: anything :func:`llmlab.prompts.load_prompts` accepts. template, category_column: as in ``run``.
        store: the store (default ``Store()``). name: the run's name.
        concurrency: requests in flight. system: a system message for every prompt.
        **params: request parameters for ``Router.acompletion`` (``max_tokens``, ``temperature``, ...).

    Raises RoutingError for an unreadable config or a plugin that fails to load, PromptSetError for bad prompts.
    Provider errors are recorded as error rows.
    """
    import yaml

    from llmlab._litellm import litellm, litellm_version, redact
    from llmlab._loop import run_sync
    from llmlab._version import __version__
    from llmlab.prompts import load_prompts
    from llmlab.routing.litellm_config import router_kwargs
    from llmlab.routing.plugin import load_router
    from llmlab.runner.plan import build_messages
    from llmlab.scoring.checks import score
    from llmlab.store import Store, new_call_row, new_id, utc_now

    path = Path(config)
    path = path / "config.yaml" if path.is_dir() else path
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RoutingError(f"cannot read the LiteLLM config {path}: {exc}") from exc
    if not isinstance(cfg, dict) or not isinstance(cfg.get("model_list"), list) or not cfg["model_list"]:
        raise RoutingError(f"{path}: not a LiteLLM config (no model_list)")
    settings = cfg.get("router_settings") or {}
    tiers = _complexity_tiers(cfg)
    tags_mode = not settings.get("plugins") and tiers is None
    public = next(iter((settings.get("fallbacks") or [{}])[0]), None) or cfg["model_list"][0]["model_name"]
    if tiers is not None:
        public = tiers[0]
    if tags_mode:
        from llmlab.routing.litellm_config import _config_model_name

        router = litellm().Router(**router_kwargs(cfg))
        tag_models = {str(t): str(_config_model_name(d["litellm_params"])) for d in cfg["model_list"]
                      if d.get("model_name") == public for t in d["litellm_params"].get("tags") or []}
    else:
        router, tag_models = load_router(path), {}
    ps = load_prompts(prompts, template=template, category_column=category_column)
    served = _served_by(cfg)
    store = store or Store()
    run_id = new_id("r")
    models = sorted(set(served.values()))
    store.create_run(run_id=run_id, name=name or f"{ps.name} through litellm.Router ({path.name})", prompt_set=ps.name,
                     models=models, params={"router_config": str(path), **params}, tags=["replay"],
                     llmlab_version=__version__, litellm_version=litellm_version(), n_prompts=len(ps),
                     n_calls_planned=len(ps), source="replay:litellm-router",
                     sandbox=any(m.startswith("sandbox/") for m in models))
    store.add_prompts([{"run_id": run_id, "prompt_id": p.prompt_id, "category": p.category, "prompt": redact(p.text),
                        "reference": redact(p.reference), "scorer": p.scorer, "system": redact(p.system or system),
                        "source_id": p.source_id} for p in ps])

    async def all_calls() -> list[tuple[dict[str, Any], Any]]:
        sem = asyncio.Semaphore(max(1, int(concurrency)))

        async def bounded(p: Any) -> tuple[dict[str, Any], Any]:
            async with sem:
                return await _one(router, public, p, build_messages(p.text, p.system or system), params, tags_mode,
                                  served, tag_models, tiers[1] if tiers else None)

        return await asyncio.gather(*(bounded(p) for p in ps))

    status = "failed"
    try:
        results = run_sync(all_calls())
        calls, scores, decisions = [], [], []
        for p, (row, decision) in zip(ps, results, strict=True):
            model = (decision or {}).get("model") or row.get("answered_by") or "unknown"
            call = new_call_row(call_id=new_id("c"), run_id=run_id, prompt_id=p.prompt_id, sample_index=0,
                                model=model, cache_key=None, created_at_utc=utc_now(), **row)
            calls.append(call)
            value = score(p.scorer, call["response"] if call["status"] == "ok" else None, p.reference) \
                if p.scorer and p.reference is not None else None
            if value is not None:
                scores.append({"run_id": run_id, "call_id": call["call_id"], "prompt_id": p.prompt_id, "model": model,
                               "kind": "auto", "scorer": p.scorer, "score": float(value), "raw_value": float(value),
                               "comment": None, "created_at_utc": utc_now()})
            if decision is not None:
                decisions.append({"run_id": run_id, "prompt_id": p.prompt_id, "model": model,
                                  "policy_kind": decision.get("policy_kind"), "score": decision.get("score"),
                                  "threshold": decision.get("threshold"), "decision": decision, "router": str(path)})
        store.append_calls(calls)
        if scores:
            store.append_scores(scores)
        if decisions:
            store.add_routing_decisions(decisions)
        status = "finished"
    finally:
        store.finish_run(run_id, status)
    return run_id
