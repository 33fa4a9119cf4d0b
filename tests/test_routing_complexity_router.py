"""A complexity policy exports to LiteLLM's own complexity router (``auto_router/complexity_router``,
``complexity_router_config``), its tiers decided by llmlab's ``ClassifierPlugin``: ``litellm.Router`` in process and
the real proxy route each held-out prompt to the model of the tier the policy chose (the sandbox's counters and
LiteLLM's recorded routing decision prove it); a corrupt model file fails at start-up; a failing tier model falls
back to another policy model.

Synthetic training results (as in ``test_routing_plugin``): proof-style prompts only the dearer sandbox model
answers, look-ups both answer; held-out prompts use words the training prompts never saw.
"""

from __future__ import annotations

import asyncio
import json
import os

import pytest
import yaml
from test_routing_plugin import EASY, HARD, NEW_WORDS, REPO, STRONG, WEAK, WORDS, _bare, _prompts, _results

from llmlab.errors import RoutingError
from llmlab.routing import fit_policy
from llmlab.routing.plugin import TierClassifier, load_router


@pytest.fixture(scope="module")
def policy():
    return fit_policy(_results(_prompts(HARD, WORDS, 45), _prompts(EASY, WORDS, 45)), kind="complexity")


@pytest.fixture(scope="module")
def held_out() -> list[str]:
    return _prompts(HARD, NEW_WORDS, 6) + _prompts(EASY, NEW_WORDS, 6)


@pytest.fixture
def exported(policy, tmp_path):
    return policy.export(tmp_path / "serve")


def _tier_model(policy, prompt: str) -> tuple[str, str]:
    i, details = policy.decide(prompt)
    return details["tier"], policy.models[i]


def test_the_export_is_litellms_complexity_router_config(exported, policy, held_out):
    cfg = yaml.safe_load(exported.read_text())
    router_dep = cfg["model_list"][0]
    assert router_dep["model_name"] == "llmlab-router"
    assert router_dep["litellm_params"]["model"] == "auto_router/complexity_router"
    crc = router_dep["litellm_params"]["complexity_router_config"]
    assert crc["classifier_type"] == "custom" and crc["classifier_plugin"] == "llmlab_tiers.classifier"
    assert [d["name"] for d in crc["tier_definitions"]] == policy.tiers == list(crc["tiers"])
    groups = {d["model_name"]: d for d in cfg["model_list"][1:]}
    # each tier names the model group of the policy's model for it
    for t, name in enumerate(policy.tiers):
        dep = groups[crc["tiers"][name]]
        assert dep["model_info"]["llmlab"]["policy_model"] == policy.models[policy.tier_models[t]]
    assert groups[crc["tiers"][crc["fallback_tier"]]]["model_info"]["llmlab"]["policy_model"] == STRONG
    assert "plugins" not in cfg["router_settings"] and cfg["router_settings"]["num_retries"] == 2
    # LiteLLM's own schema accepts the config as written (the classifier resolved as the proxy resolves it)
    from litellm.router_strategy.complexity_router.config import ComplexityRouterConfig

    clf = TierClassifier.from_file(exported.parent / "llmlab_route_policy.json")
    ComplexityRouterConfig.model_validate({**crc, "classifier_plugin": clf})
    assert "pickle" not in (exported.parent / "llmlab_tiers.py").read_text()
    assert [clf.tier(p) for p in held_out] == [_tier_model(policy, p)[0] for p in held_out]


def test_litellm_router_routes_each_prompt_to_the_tier_the_policy_chose(exported, policy, held_out, sandbox,
                                                                       monkeypatch):
    monkeypatch.setenv("LLMLAB_SANDBOX_API_KEY", "sandbox-key")
    router = load_router(exported)

    async def ask(prompt: str) -> tuple[dict, dict]:
        meta: dict = {}
        resp = await router.acompletion(model="llmlab-router", messages=[{"role": "user", "content": prompt}],
                                        max_tokens=8, metadata=meta)
        assert resp.choices[0].message.content
        return meta, resp._hidden_params.get("additional_headers") or {}

    served = set()
    for prompt in held_out:
        tier, model = _tier_model(policy, prompt)
        sandbox.reset_stats()
        meta, headers = asyncio.run(ask(prompt))
        assert sandbox.stats()["by_model"] == {_bare(model): 1}, prompt
        decision = meta["routing_decision"]
        assert decision["router_type"] == "complexity" and decision["cause"] == "classifier_plugin"
        assert decision["tier"] == tier and headers["x-litellm-complexity-router-tier"] == tier
        served.add(model)
    assert served == {STRONG, WEAK}


def test_a_failing_tier_model_falls_back_and_a_corrupt_model_file_fails_at_start_up(exported, policy, held_out,
                                                                                   sandbox, monkeypatch):
    monkeypatch.setenv("LLMLAB_SANDBOX_API_KEY", "sandbox-key")
    router = load_router(exported, num_retries=0)
    prompt = next(p for p in held_out if _tier_model(policy, p)[1] == WEAK)
    sandbox.inject("500", model=_bare(WEAK))
    resp = asyncio.run(router.acompletion(model="llmlab-router", messages=[{"role": "user", "content": prompt}],
                                          max_tokens=8))
    assert resp.choices[0].message.content
    outcomes = sandbox.stats()["by_model_outcome"]
    assert outcomes[_bare(WEAK)].get("500", 0) >= 1 and outcomes[_bare(STRONG)].get("ok") == 1
    model_file = exported.parent / "llmlab_route_policy.json"
    text = model_file.read_text()
    model_file.write_text(text[:50])
    with pytest.raises(RoutingError, match="llmlab_route_policy.json, line 1, column"):
        load_router(exported)
    d = json.loads(text)
    d["weights"] = d["weights"][:-1]
    model_file.write_text(json.dumps(d))
    with pytest.raises(RoutingError, match="weights, mean and std need 8"):
        load_router(exported)


def test_a_prompt_policy_has_no_tiers_and_the_plugin_form_stays_available(policy, tmp_path):
    from llmlab.routing.policy_export import complexity_router_config

    cfg = yaml.safe_load(policy.export(tmp_path / "plugin", serve="plugin").read_text())
    assert cfg["router_settings"]["plugins"] == ["llmlab_route.plugin"]
    prompt_policy = fit_policy(_results(_prompts(HARD, WORDS, 30), _prompts(EASY, WORDS, 30)), kind="prompt",
                               min_df=1)
    with pytest.raises(RoutingError, match="serves complexity policies"):
        complexity_router_config(prompt_policy)
    with pytest.raises(RoutingError, match="no tiers"):
        TierClassifier(prompt_policy)
    with pytest.raises(RoutingError, match="serve='nope'"):
        policy.export(tmp_path / "x", serve="nope")


def test_a_replay_through_the_complexity_router_records_the_tier_and_model(exported, policy, held_out, sandbox,
                                                                          monkeypatch):
    from llmlab.routing.router_replay import replay_through_router
    from llmlab.store import Store

    monkeypatch.setenv("LLMLAB_SANDBOX_API_KEY", "sandbox-key")
    store = Store()
    run_id = replay_through_router(exported.parent, held_out, store=store, max_tokens=8)
    calls = store.results(run_id)
    assert (calls["status"] == "ok").all()
    assert dict(zip(calls["prompt"], calls["model"], strict=True)) == {p: _tier_model(policy, p)[1] for p in held_out}
    assert (calls["answered_by"] == calls["model"]).all()
    dec = store.routing_decisions(run_id)
    assert len(dec) == len(held_out) and set(dec["policy_kind"]) == {"complexity"}
    # llmlab's own fan-out routes by the same model file
    import llmlab

    want = [_tier_model(policy, p)[1] for p in sorted(held_out[-2:])]
    res = llmlab.run(held_out[-2:], router=exported.parent / "llmlab_route_policy.json", progress=False, max_tokens=8)
    assert list(res.results.sort_values("prompt")["model"]) == want
    # and by the export itself: the config directory (LiteLLM's complexity router config and its model file)
    res = llmlab.run(held_out[-2:], router=exported.parent, progress=False, max_tokens=8, cache=False)
    assert list(res.results.sort_values("prompt")["model"]) == want


@pytest.mark.slow
def test_the_real_proxy_routes_each_prompt_to_the_tier_the_policy_chose(exported, policy, held_out, sandbox,
                                                                       tmp_path):
    from proxy_process import start_proxy

    env = {"LLMLAB_SANDBOX_API_BASE": sandbox.api_base, "LLMLAB_SANDBOX_API_KEY": "sandbox-key",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proxy = start_proxy(exported, env, tmp_path)
    try:
        served = set()
        for prompt in held_out:
            tier, model = _tier_model(policy, prompt)
            sandbox.reset_stats()
            status, body, headers = proxy.chat({"model": "llmlab-router", "max_tokens": 8,
                                                "messages": [{"role": "user", "content": prompt}]})
            assert status == 200, (body, proxy.log())
            assert sandbox.stats()["by_model"] == {_bare(model): 1}, (prompt, proxy.log())
            assert {k.lower(): v for k, v in headers.items()}.get("x-litellm-complexity-router-tier") == tier
            served.add(model)
        assert served == {STRONG, WEAK}
    finally:
        proxy.stop()
    (exported.parent / "llmlab_route_policy.json").write_text("{")
    with pytest.raises(RuntimeError, match="exited") as err:
        start_proxy(exported, env, tmp_path).stop()
    assert "not valid JSON" in str(err.value)
