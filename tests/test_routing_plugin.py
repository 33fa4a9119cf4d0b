"""A fitted per-prompt policy, exported, is served by LiteLLM itself: ``litellm.Router`` in process and the real
LiteLLM proxy route each held-out prompt to the deployment the policy chose (the sandbox's counters prove it),
through LiteLLM's ``RoutingPlugin`` interface; a missing or corrupt model file fails at start-up.

The training results are synthetic: proof-style prompts only the dearer sandbox model answers, look-up prompts
both answer; the held-out prompts use words the training prompts never saw.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

import llmlab
from llmlab.errors import RoutingError
from llmlab.routing import Policy, fit_policy
from llmlab.routing.plugin import PolicyPlugin, load_router, prompt_text, route_decision

REPO = Path(__file__).resolve().parent.parent
STRONG, WEAK = "sandbox/frontier", "sandbox/tiny"

HARD = ["Prove that every {x} {y} is {z}, giving a rigorous step by step argument.",
        "Derive a closed form for the {x} {y} sequence and prove it by induction on {z}.",
        "Show that the {x} {y} theorem fails for {z} spaces; justify each step of the proof."]
EASY = ["What is the capital of {x}?", "Translate the word {y} into {z}.", "Say hello to {x} in one word."]
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo",
         "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango"]
NEW_WORDS = ["umbra", "vortex", "willow", "xenon", "yonder", "zephyr"]


def _prompts(templates: list[str], words: list[str], n: int) -> list[str]:
    out = []
    for k in range(n):
        t = templates[k % len(templates)]
        out.append(t.format(x=words[k % len(words)], y=words[(3 * k + 1) % len(words)], z=words[(7 * k + 2) % len(words)]))
    return list(dict.fromkeys(out))


def _results(hard: list[str], easy: list[str]) -> pd.DataFrame:
    rows = []
    for i, p in enumerate(hard + easy):
        is_hard = i < len(hard)
        for model, cost in ((STRONG, 0.01), (WEAK, 0.0001)):
            q = 0.0 if (is_hard and model == WEAK) else 1.0
            rows.append({"prompt_id": f"p{i}", "prompt": p, "model": model, "quality": q, "cost_usd": cost})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def policy() -> Policy:
    return fit_policy(_results(_prompts(HARD, WORDS, 45), _prompts(EASY, WORDS, 45)), kind="prompt", min_df=1,
                      target_cost_per_1k_usd=6.0)


@pytest.fixture(scope="module")
def held_out() -> list[str]:
    return _prompts(HARD, NEW_WORDS, 6) + _prompts(EASY, NEW_WORDS, 6)


@pytest.fixture
def exported(policy, tmp_path) -> Path:
    return policy.export(tmp_path / "serve")


def _bare(model: str) -> str:
    return model.split("/", 1)[1]


def test_the_export_writes_a_plugin_config_and_a_portable_model_file(exported, policy, held_out):
    cfg = yaml.safe_load(exported.read_text())
    assert cfg["router_settings"]["plugins"] == ["llmlab_route.plugin"]
    routed = [d for d in cfg["model_list"] if d["model_name"] == "llmlab-router"]
    assert sorted(d["litellm_params"]["model"] for d in routed) == ["anthropic/tiny", "openai/frontier"]
    assert all(d["litellm_params"]["api_base"] == "os.environ/LLMLAB_SANDBOX_API_BASE" for d in cfg["model_list"])
    assert cfg["router_settings"]["fallbacks"] == [{"llmlab-router": ["llmlab-router-fallback-1"]}]
    model_file = exported.parent / "llmlab_route_policy.json"
    assert "pickle" not in (exported.parent / "llmlab_route.py").read_text()
    json.loads(model_file.read_text())  # plain JSON
    plugin = PolicyPlugin.from_file(model_file)
    # the loaded plugin decides as the fitted policy does, on prompts neither saw
    assert [plugin.decide(p)["model"] for p in held_out] == [policy.route(p) for p in held_out]
    # and the policy separates them: hard prompts to the strong model, look-ups to the weak one
    assert {plugin.decide(p)["model"] for p in held_out[:3]} == {STRONG}
    assert {plugin.decide(p)["model"] for p in held_out[-3:]} == {WEAK}


def test_export_litellm_config_takes_a_policy_and_keeps_the_table_form(policy, tmp_path):
    path = llmlab.export_litellm_config(policy=policy, path=tmp_path / "a")
    assert yaml.safe_load(path.read_text())["router_settings"]["plugins"] == ["llmlab_route.plugin"]
    with pytest.raises(RoutingError, match="exactly one"):
        llmlab.export_litellm_config(path=tmp_path / "b")
    from llmlab.routing import routing_table
    from llmlab.routing.litellm_config import write_litellm_config

    results = _results(_prompts(HARD, WORDS, 9), _prompts(EASY, WORDS, 9)).assign(
        category="default", status="ok", latency_ms=1.0, sample_index=0)
    table = routing_table(results, min_n=1)
    a = llmlab.export_litellm_config(table, tmp_path / "t1.yaml", run_id="r1")
    b = write_litellm_config(table, tmp_path / "t2.yaml", run_id="r1")
    assert a.read_text() == b.read_text()  # the table form is unchanged


def test_litellm_router_routes_each_prompt_where_the_policy_says(exported, held_out, sandbox, monkeypatch):
    monkeypatch.setenv("LLMLAB_SANDBOX_API_KEY", "sandbox-key")
    plugin = PolicyPlugin.from_file(exported.parent / "llmlab_route_policy.json")
    router = load_router(exported)

    async def ask(prompt: str) -> dict:
        meta: dict = {}
        resp = await router.acompletion(model="llmlab-router", messages=[{"role": "user", "content": prompt}],
                                        max_tokens=8, metadata=meta)
        assert resp.choices[0].message.content
        return meta

    served = []
    for prompt in held_out:
        sandbox.reset_stats()
        meta = asyncio.run(ask(prompt))
        want = plugin.decide(prompt)
        assert sandbox.stats()["by_model"] == {_bare(want["model"]): 1}, prompt
        decision = route_decision(meta)
        assert decision is not None and decision["model"] == want["model"]
        assert decision["score"] == want["score"] and decision["threshold"] == want["threshold"]
        served.append(want["model"])
    assert set(served) == {STRONG, WEAK}


def test_the_router_falls_back_when_the_chosen_model_fails(exported, held_out, sandbox, monkeypatch):
    monkeypatch.setenv("LLMLAB_SANDBOX_API_KEY", "sandbox-key")
    router = load_router(exported, num_retries=0)
    prompt = held_out[-1]  # a look-up: the policy sends it to the weak model
    assert PolicyPlugin.from_file(exported.parent / "llmlab_route_policy.json").decide(prompt)["model"] == WEAK
    sandbox.inject("500", model=_bare(WEAK))
    resp = asyncio.run(router.acompletion(model="llmlab-router", messages=[{"role": "user", "content": prompt}],
                                          max_tokens=8))
    assert resp.choices[0].message.content
    outcomes = sandbox.stats()["by_model_outcome"]
    assert outcomes[_bare(WEAK)].get("500", 0) >= 1 and outcomes[_bare(STRONG)].get("ok") == 1


def test_a_missing_or_corrupt_model_file_fails_when_the_router_starts(exported, monkeypatch):
    model_file = exported.parent / "llmlab_route_policy.json"
    text = model_file.read_text()
    model_file.write_text(text[: len(text) // 2])
    with pytest.raises(RoutingError, match=r"llmlab_route_policy.json, line 1, column \d+: not valid JSON"):
        load_router(exported)
    d = json.loads(text)
    d["pairs"][0]["coef"] = [d["pairs"][0]["coef"][0][:-3]]
    model_file.write_text(json.dumps(d))
    with pytest.raises(RoutingError, match="coefficients of shape"):
        load_router(exported)
    model_file.unlink()
    with pytest.raises(RoutingError, match="not found"):
        load_router(exported)
    monkeypatch.setenv("LLMLAB_ROUTING_POLICY", str(exported.parent / "elsewhere.json"))
    with pytest.raises(RoutingError, match="elsewhere.json not found"):
        load_router(exported)


def test_prompt_text_is_the_last_user_message():
    assert prompt_text([{"role": "system", "content": "be brief"}, {"role": "user", "content": "first"},
                        {"role": "assistant", "content": "ok"},
                        {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "image_url"}]}]) \
        == "second"
    assert prompt_text([]) == ""


@pytest.mark.slow
def test_the_real_proxy_routes_each_prompt_where_the_policy_says(exported, held_out, sandbox, tmp_path):
    from proxy_process import start_proxy

    plugin = PolicyPlugin.from_file(exported.parent / "llmlab_route_policy.json")
    env = {"LLMLAB_SANDBOX_API_BASE": sandbox.api_base, "LLMLAB_SANDBOX_API_KEY": "sandbox-key",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proxy = start_proxy(exported, env, tmp_path)
    try:
        served = []
        for prompt in held_out:
            sandbox.reset_stats()
            status, body, _ = proxy.chat({"model": "llmlab-router", "max_tokens": 8,
                                          "messages": [{"role": "user", "content": prompt}]})
            assert status == 200, (body, proxy.log())
            want = plugin.decide(prompt)["model"]
            assert sandbox.stats()["by_model"] == {_bare(want): 1}, (prompt, proxy.log())
            served.append(want)
        assert set(served) == {STRONG, WEAK}
    finally:
        proxy.stop()


@pytest.mark.slow
def test_the_real_proxy_refuses_to_start_on_a_corrupt_model_file(exported, sandbox, tmp_path):
    from proxy_process import start_proxy

    model_file = exported.parent / "llmlab_route_policy.json"
    model_file.write_text(model_file.read_text()[:100])
    env = {"LLMLAB_SANDBOX_API_BASE": sandbox.api_base, "LLMLAB_SANDBOX_API_KEY": "sandbox-key",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    with pytest.raises(RuntimeError, match="exited") as err:
        start_proxy(exported, env, tmp_path).stop()
    assert "not valid JSON" in str(err.value) and "llmlab_route_policy.json" in str(err.value)


def test_a_routed_run_calls_only_the_chosen_model_per_prompt_and_records_why(exported, held_out, sandbox):
    plugin = PolicyPlugin.from_file(exported.parent / "llmlab_route_policy.json")
    res = llmlab.run(held_out, router=exported.parent, progress=False, max_tokens=8)
    calls = res.results
    assert len(calls) == len(held_out) and (calls["status"] == "ok").all()
    by_prompt = dict(zip(calls["prompt"], calls["model"], strict=True))
    assert by_prompt == {p: plugin.decide(p)["model"] for p in held_out}
    assert sandbox.stats()["by_model"] == {_bare(m): n for m, n in calls["model"].value_counts().items()}
    dec = res.store.routing_decisions(res.run_id)
    assert len(dec) == len(held_out) and set(dec["router"]) == {str(exported)}
    merged = dec.merge(calls[["prompt_id", "model"]], on="prompt_id", suffixes=("", "_called"))
    assert (merged["model"] == merged["model_called"]).all()
    assert merged["score"].notna().all() and (merged["threshold"] == plugin.policy.threshold).all()


def test_a_routed_run_takes_the_configs_fallback_when_the_chosen_model_fails(exported, held_out, sandbox):
    easy = held_out[-2:]
    sandbox.inject("500", model=_bare(WEAK))
    res = llmlab.run(easy, router=exported, progress=False, max_tokens=8)
    calls = res.results
    assert list(calls["model"]) == [WEAK, WEAK]  # the decision stands; the answer came from the fallback
    assert list(calls["answered_by"]) == [STRONG, STRONG] and (calls["status"] == "ok").all()
    assert (calls["fallbacks_taken"] >= 1).all() and (calls["attempts"] >= 3).all()  # num_retries 2, then fallback


def test_a_routed_run_accepts_a_policy_object(policy, held_out, sandbox):
    res = llmlab.run(held_out[:2], router=policy, progress=False, max_tokens=8)
    assert list(res.results.sort_values("prompt")["model"]) == [policy.route(p) for p in sorted(held_out[:2])]
    res2 = asyncio.run(llmlab.arun(held_out[-2:], router=policy, max_tokens=8))
    assert list(res2.results.sort_values("prompt")["model"]) == [policy.route(p) for p in sorted(held_out[-2:])]
    assert len(res2.store.routing_decisions(res2.run_id)) == 2


def test_a_complexity_policy_tiers_prompts_and_can_be_served_by_the_same_plugin(tmp_path, held_out, sandbox,
                                                                            monkeypatch):
    from llmlab.routing import ComplexityPolicy, evaluate_policy
    from llmlab.routing.complexity import complexity_features

    hard = _prompts(HARD, WORDS, 45)
    easy = _prompts(EASY, WORDS, 45)
    results = _results(hard, easy)
    pol = fit_policy(results, kind="complexity")
    assert isinstance(pol, ComplexityPolicy) and pol.tiers == ["simple", "medium", "complex"]
    assert complexity_features(["Prove it, step by step: 2 + 2 = 4?"]).shape == (1, 8)
    ev = evaluate_policy(pol, _results(_prompts(HARD, NEW_WORDS, 6), _prompts(EASY, NEW_WORDS, 6)))
    assert ev["quality"] == 1.0 and 0 < ev["share_by_model"][WEAK] < 1  # cheap where it can, strong where needed
    loaded = Policy.from_json(pol.to_json(tmp_path / "c.json"))
    assert [loaded.route(p) for p in held_out] == [pol.route(p) for p in held_out]
    monkeypatch.setenv("LLMLAB_SANDBOX_API_KEY", "sandbox-key")
    # the plugin form (serve="plugin"); the default export is LiteLLM's complexity router
    # (tests/test_routing_complexity_router.py)
    router = load_router(pol.export(tmp_path / "serve", serve="plugin"))
    for prompt in (held_out[0], held_out[-1]):
        sandbox.reset_stats()
        meta: dict = {}
        asyncio.run(router.acompletion(model="llmlab-router", messages=[{"role": "user", "content": prompt}],
                                       max_tokens=8, metadata=meta))
        assert sandbox.stats()["by_model"] == {_bare(pol.route(prompt)): 1}
        assert route_decision(meta)["tier"] in pol.tiers


def test_the_route_cli_reports_out_of_sample_figures_and_exports_a_policy(policy, tmp_path, capsys):
    from llmlab import cli
    from llmlab.routing import import_results

    frame = _results(_prompts(HARD, WORDS, 45), _prompts(EASY, WORDS, 45))
    run_id = import_results(frame, name="synthetic")
    assert cli.main(["route", run_id, "--kind", "prompt", "--budget-per-1k", "6", "--export",
                     str(tmp_path / "serve")]) == 0
    out = capsys.readouterr().out
    oos = next(line for line in out.splitlines() if line.startswith("out of sample (fitted on "))
    assert "evaluated on the" in oos and "prompts over" in oos
    assert "in sample (fitted and evaluated on all prompts" in out
    cfg = yaml.safe_load((tmp_path / "serve" / "config.yaml").read_text())
    assert cfg["router_settings"]["plugins"] == ["llmlab_route.plugin"]
    assert cli.main(["route", run_id]) == 0  # the category table, out of sample by default
    assert "out of sample (fitted on " in capsys.readouterr().out


def test_a_replay_through_litellm_router_records_the_deployed_path_fallbacks_included(exported, held_out, sandbox,
                                                                                        monkeypatch):
    from llmlab.routing.router_replay import replay_through_router
    from llmlab.store import Store

    monkeypatch.setenv("LLMLAB_SANDBOX_API_KEY", "sandbox-key")
    plugin = PolicyPlugin.from_file(exported.parent / "llmlab_route_policy.json")
    store = Store()
    run_id = replay_through_router(exported.parent, held_out, store=store, max_tokens=8)
    calls = store.results(run_id)
    assert len(calls) == len(held_out) and (calls["status"] == "ok").all()
    want = {p: plugin.decide(p)["model"] for p in held_out}
    assert dict(zip(calls["prompt"], calls["model"], strict=True)) == want
    assert (calls["answered_by"] == calls["model"]).all() and (calls["fallbacks_taken"] == 0).all()
    assert sandbox.stats()["by_model"] == {_bare(m): n for m, n in calls["model"].value_counts().items()}
    assert len(store.routing_decisions(run_id)) == len(held_out)
    # the fallback path as deployed: the chosen (weak) model fails, LiteLLM retries it, then falls back
    sandbox.reset_stats()
    sandbox.inject("500", model=_bare(WEAK))
    easy = [p for p in held_out if want[p] == WEAK]
    run2 = replay_through_router(exported, easy, store=store, max_tokens=8)
    calls2 = store.results(run2)
    assert (calls2["status"] == "ok").all() and set(calls2["model"]) == {WEAK}
    assert set(calls2["answered_by"]) == {STRONG} and (calls2["fallbacks_taken"] >= 1).all()
    assert sandbox.stats()["by_model_outcome"][_bare(WEAK)].get("500", 0) >= len(easy)
    assert store.run(run2)["source"] == "replay:litellm-router"


def test_serving_a_decision_loads_neither_scikit_learn_nor_pandas(exported, held_out):
    import subprocess
    import sys

    code = ("import sys; from llmlab.routing.plugin import load_plugin; "
            f"p = load_plugin({str(exported.parent / 'llmlab_route.py')!r}); "
            f"print(p.decide({held_out[0]!r})['model']); "
            "print(sorted(m for m in ('sklearn', 'pandas', 'scipy', 'litellm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, check=True).stdout.splitlines()
    assert out == [STRONG, "[]"]
