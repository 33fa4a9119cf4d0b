"""The LiteLLM config export: its shape, no secrets, and that LiteLLM's Router loads it and routes by tag."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from llmlab.errors import RoutingError
from llmlab.routing.litellm_config import litellm_config, router_kwargs, write_litellm_config

TABLE = pd.DataFrame([
    {"category": "classification", "model": "sandbox/tiny", "quality": 0.95, "n": 24, "latency_p95_ms": 400.0,
     "cost_per_1k_prompts_usd": 0.003, "fallbacks": ["sandbox/fast", "sandbox/frontier"], "reason": "cheapest"},
    {"category": "reasoning", "model": "sandbox/frontier", "quality": 0.9, "n": 24, "latency_p95_ms": 900.0,
     "cost_per_1k_prompts_usd": 0.3, "fallbacks": ["sandbox/balanced"], "reason": "cheapest"},
    {"category": "default", "model": "sandbox/balanced", "quality": 0.8, "n": 144, "latency_p95_ms": 700.0,
     "cost_per_1k_prompts_usd": 0.07, "fallbacks": ["sandbox/frontier"], "reason": "cheapest"},
])


@pytest.fixture
def sandbox_env(sandbox, monkeypatch):
    """The session sandbox (tests/conftest.py) plus the key variable exported configs reference."""
    monkeypatch.setenv("LLMLAB_SANDBOX_API_KEY", "sandbox-key")
    return sandbox


def test_config_shape_follows_design_decision_8(tmp_path):
    path = write_litellm_config(TABLE, tmp_path / "routing.yaml", run_id="r123")
    cfg = yaml.safe_load(path.read_text())
    main = [d for d in cfg["model_list"] if d["model_name"] == "llmlab-router"]
    assert [d["litellm_params"]["tags"] for d in main] == [["classification"], ["reasoning"], ["default"]]
    for d in cfg["model_list"]:
        p = d["litellm_params"]
        assert p["api_base"] == "os.environ/LLMLAB_SANDBOX_API_BASE"      # never a literal port
        assert p["api_key"].startswith("os.environ/")
        assert p["input_cost_per_token"] > 0 and p["output_cost_per_token"] > 0
    assert main[0]["model_info"]["llmlab"]["run_id"] == "r123"
    assert main[0]["model_info"]["llmlab"]["quality"] == 0.95 and main[0]["model_info"]["llmlab"]["n"] == 24
    fallback_groups = [d for d in cfg["model_list"] if d["model_name"] != "llmlab-router"]
    # the default row's fallbacks come first, then the others', each once; every fallback target tagged default
    assert [d["litellm_params"]["model"] for d in fallback_groups] == ["openai/frontier", "openai/fast",
                                                                        "anthropic/balanced"]
    assert all(d["litellm_params"]["tags"] == ["default"] for d in fallback_groups)
    rs = cfg["router_settings"]
    assert rs["enable_tag_filtering"] is True and rs["num_retries"] == 2 and rs["timeout"] == 60.0
    assert rs["fallbacks"] == [{"llmlab-router": [d["model_name"] for d in fallback_groups]}]


def test_keys_are_env_references_never_values(tmp_path, monkeypatch):
    secret = "sk-test-SECRET-value-1234567890"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    table = pd.DataFrame([{"category": "default", "model": "openai/gpt-4o-mini", "fallbacks": [], "n": 3,
                           "quality": 0.5}])
    text = write_litellm_config(table, tmp_path / "r.yaml").read_text()
    assert secret not in text
    cfg = yaml.safe_load(text)
    params = cfg["model_list"][0]["litellm_params"]
    assert params["api_key"] == "os.environ/OPENAI_API_KEY"
    # prices from LiteLLM's bundled cost map, written explicitly
    assert params["input_cost_per_token"] == pytest.approx(1.5e-07)
    assert "fallbacks" not in cfg["router_settings"]


def test_export_refuses_bad_tables():
    with pytest.raises(RoutingError, match="default"):
        litellm_config(TABLE[TABLE["category"] != "default"])
    with pytest.raises(RoutingError, match="empty"):
        litellm_config(TABLE.iloc[0:0])
    unpriced = pd.DataFrame([{"category": "default", "model": "openai/not-a-real-model-xyz", "fallbacks": []}])
    with pytest.raises(RoutingError, match="price"):
        litellm_config(unpriced)


async def _ask(router, category):
    return await router.acompletion(model="llmlab-router", messages=[{"role": "user", "content": "Say hello."}],
                                    metadata={"tags": [category]} if category else {})


async def test_router_loads_config_and_routes_by_tag(tmp_path, sandbox_env):
    import litellm

    cfg = yaml.safe_load(write_litellm_config(TABLE, tmp_path / "routing.yaml").read_text())
    router = litellm.Router(**router_kwargs(cfg))
    reply = await _ask(router, "classification")
    assert reply._hidden_params["model_id"] == "llmlab-router--classification--sandbox-tiny"
    assert sandbox_env.request_count("tiny") == 1
    reply = await _ask(router, "reasoning")
    assert reply._hidden_params["model_id"] == "llmlab-router--reasoning--sandbox-frontier"
    assert sandbox_env.request_count("frontier") == 1
    reply = await _ask(router, "a-category-with-no-row")
    assert reply._hidden_params["model_id"] == "llmlab-router--default--sandbox-balanced"
    assert sandbox_env.stats()["requests"] == 3


async def test_failing_primary_falls_back(tmp_path, sandbox_env):
    import litellm

    cfg = yaml.safe_load(write_litellm_config(TABLE, tmp_path / "routing.yaml", num_retries=0).read_text())
    router = litellm.Router(**router_kwargs(cfg))
    sandbox_env.inject("500", model="tiny")
    reply = await _ask(router, "classification")
    # tiny failed; the first fallback group (frontier, tagged default) answered
    assert sandbox_env.request_count("tiny") >= 1
    assert sandbox_env.stats()["by_model_outcome"]["tiny"].get("500", 0) >= 1
    assert reply._hidden_params["model_id"].startswith("llmlab-router-fallback-1--")
    assert sandbox_env.request_count("frontier") == 1
