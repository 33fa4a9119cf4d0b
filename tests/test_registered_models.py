"""Any OpenAI-compatible endpoint as a model: register_model, the models file, free prices, keys by name only."""

from __future__ import annotations

import pytest
import yaml

import llmlab
from llmlab import models
from llmlab.errors import MissingKeyError, ModelError
from llmlab.views.display import fmt_usd

CANARY = "sk-canary-registered-0123456789abcdef"


def _few(n):
    return llmlab.load_prompts("quickstart").filter(limit=n)


@pytest.fixture(autouse=True)
def _clean_registry(monkeypatch):
    monkeypatch.setattr(models, "_registered", {})
    monkeypatch.setattr(models, "_models_file_loaded", None)
    monkeypatch.setattr(models, "_price_overrides", dict(models._price_overrides))
    yield


def test_a_registered_local_endpoint_runs_through_the_runner_and_is_free(sandbox):
    # The sandbox is an OpenAI-compatible server: the same path as vLLM / Ollama / llama.cpp.
    spec = llmlab.register_model("local/llama", "openai/fast", api_base=sandbox.api_base, price=(0, 0))
    assert spec.registered and spec.priced and spec.cost_usd(1000, 1000) == 0.0
    res = llmlab.run(_few(4), ["local/llama"])
    rows = res.results
    assert len(rows) == 4 and set(rows["model"]) == {"local/llama"}
    assert (rows["status"] == "ok").all()
    assert (rows["cost_usd"] == 0).all()          # free, not NULL
    assert sandbox.request_count("fast") == 4     # it really went to the endpoint's api_base
    assert fmt_usd(0.0) == "free" and fmt_usd(None) == "price unknown"


def test_free_model_passes_a_budget_check_and_unknown_price_does_not(sandbox):
    llmlab.register_model("local/free", "openai/fast", api_base=sandbox.api_base, price=(0, 0))
    res = llmlab.run(_few(2), ["local/free"], budget_usd=0.0001)
    assert (res.results["status"] == "ok").all()
    with pytest.warns(UserWarning, match="no price known for 'local/unpriced'"):
        spec = llmlab.register_model("local/unpriced", "openai/fast", api_base=sandbox.api_base)
    assert not spec.priced and spec.cost_usd(10, 10) is None


def test_key_is_read_by_name_at_call_time_and_never_echoed(monkeypatch, sandbox):
    llmlab.register_model("gw/model", "openai/fast", api_base=sandbox.api_base, api_key_env="GW_TOKEN",
                          price=(1, 2))
    with pytest.raises(MissingKeyError, match="GW_TOKEN"):
        models.resolve("gw/model")
    monkeypatch.setenv("GW_TOKEN", CANARY)
    spec = models.resolve("gw/model")
    assert spec.call_kwargs()["api_key"] == CANARY and spec.call_kwargs()["api_base"] == sandbox.api_base
    assert CANARY not in repr(spec) and CANARY not in str(models.registered_models())
    # A key pasted where the variable name goes is refused without being repeated.
    with pytest.raises(ModelError) as err:
        llmlab.register_model("gw/bad", "openai/fast", api_key_env=CANARY)
    assert CANARY not in str(err.value) and "NAME of an environment variable" in str(err.value)
    with pytest.raises(ModelError, match="api_key_env"):
        llmlab.register_model("gw/bad", "openai/fast", api_key=CANARY)


def test_no_key_endpoint_gets_a_placeholder_not_the_openai_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    spec = llmlab.register_model("local/nokey", "openai/llama3", api_base="http://127.0.0.1:9/v1", price=(0, 0))
    assert spec.call_kwargs()["api_key"] == models.NO_KEY_PLACEHOLDER


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "@smart", "litellm_model": "openai/x"}, "cannot be a model name"),
    ({"name": "sandbox/x", "litellm_model": "openai/x"}, "cannot be a model name"),
    ({"name": "local/x", "litellm_model": "llama3"}, "must name its provider"),
    ({"name": "local/x", "litellm_model": "openai/x", "api_base": "localhost:8000"}, "http:// or https://"),
    ({"name": "local/x", "litellm_model": "openai/x", "price": (-1, 0)}, ">= 0"),
    ({"name": "local/x", "litellm_model": "openai/x", "price": (1,)}, r"\(input, output\)"),
    ({"name": "local/x", "litellm_model": "openai/x", "price": ("a", 1)}, "two numbers"),
])
def test_bad_registrations_name_the_problem(kwargs, message):
    with pytest.raises(ModelError, match=message):
        llmlab.register_model(**kwargs)


def test_set_price_accepts_zero_as_free_and_refuses_negative(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real-000000000")
    models.set_price("openai/my-free-finetune", 0, 0)
    assert models.resolve("openai/my-free-finetune").cost_usd(1000, 1000) == 0.0
    with pytest.raises(ModelError, match=">= 0"):
        models.set_price("openai/my-free-finetune", -0.5, 1)


def test_models_file_registers_models_and_errors_name_file_and_entry(tmp_path, monkeypatch, sandbox):
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump({"models": [
        {"name": "local/a", "model": "openai/fast", "api_base": sandbox.api_base, "price_usd_per_mtok": [0, 0]},
        {"name": "local/b", "model": "openai/tiny", "api_base": sandbox.api_base, "api_key_env": "LOCAL_B_KEY",
         "price_usd_per_mtok": [0.1, 0.2], "litellm_params": {"timeout": 30}},
    ]}))
    assert llmlab.load_models(path) == ["local/a", "local/b"]
    spec = models.resolve("local/b", check_keys=False)
    assert spec.call_kwargs()["timeout"] == 30 and spec.cost_usd(1_000_000, 0) == pytest.approx(0.1)

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"models": [{"name": "x/ok", "model": "openai/x"}, {"name": "x/y", "modle": "z"}]}))
    with pytest.raises(ModelError, match=r"bad.yaml, entry 2: unknown key modle"):
        llmlab.load_models(bad)
    bad.write_text("models: [\n  {name: x")
    with pytest.raises(ModelError, match=r"bad.yaml line \d+: not valid YAML"):
        llmlab.load_models(bad)
    with pytest.raises(ModelError, match="cannot read it"):
        llmlab.load_models(tmp_path / "missing.yaml")
    bad.write_text(yaml.safe_dump({"models": [{"name": "x/p", "model": "openai/x", "price_usd_per_mtok": [-1, 0]}]}))
    with pytest.raises(ModelError, match=r"entry 1: .*>= 0"):
        llmlab.load_models(bad)


def test_models_file_from_the_environment_reaches_the_cli(tmp_path, monkeypatch, sandbox, capsys):
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump({"models": [
        {"name": "local/cli", "model": "openai/balanced", "api_base": sandbox.api_base,
         "price_usd_per_mtok": [0, 0]}]}))
    monkeypatch.setenv("LLMLAB_MODELS_FILE", str(path))
    from llmlab.cli import main

    assert main(["run", "quickstart", "--models", "local/cli", "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert "local/cli" in out
    assert sandbox.request_count("balanced") == 2


def test_exported_config_keeps_the_endpoint_and_the_key_by_name(sandbox, tmp_path):
    import pandas as pd

    from llmlab.routing.litellm_config import litellm_config

    llmlab.register_model("local/free", "openai/fast", api_base=sandbox.api_base, price=(0, 0))
    llmlab.register_model("gw/paid", "openai/frontier", api_base=sandbox.api_base, api_key_env="GW_TOKEN",
                          price=(1, 2))
    table = pd.DataFrame([{"category": "default", "model": "gw/paid", "fallbacks": ["local/free"]},
                          {"category": "math", "model": "local/free", "fallbacks": []}])
    cfg = litellm_config(table)
    params = {d["litellm_params"]["model"]: d["litellm_params"] for d in cfg["model_list"]}
    assert params["openai/frontier"]["api_key"] == "os.environ/GW_TOKEN"
    assert params["openai/fast"]["api_key"] == models.NO_KEY_PLACEHOLDER
    assert params["openai/fast"]["api_base"] == sandbox.api_base
    assert params["openai/fast"]["input_cost_per_token"] == 0.0


# -- errors in one voice: the same mistake, the same one-line message, on every surface ---------------------
def test_python_api_option_typos_are_one_line_errors_with_a_suggestion(sandbox):
    from llmlab.errors import OptionsError

    with pytest.raises(OptionsError) as err:
        llmlab.run(_few(1), ["sandbox/fast"], temprature=0.5)
    msg = str(err.value)
    assert "unknown option 'temprature' (did you mean 'temperature'?)" in msg
    assert "\n" not in msg and "pydantic" not in msg and "https://" not in msg
    with pytest.raises(OptionsError, match=r"temperature: Input should be less than or equal to 2 \(got 3\.0\)"):
        llmlab.run(_few(1), ["sandbox/fast"], temperature=3.0)
    assert isinstance(err.value, ValueError)
    assert sandbox.request_count() == 0


def test_cli_and_magic_name_their_own_flags_for_the_same_mistake(sandbox, capsys):
    from IPython.core.error import UsageError

    from llmlab.cli import main
    from llmlab.magic import LLMMagics

    assert main(["run", "quickstart", "--models", "sandbox/fast", "--temperature", "3"]) != 0
    cli_err = capsys.readouterr().err.strip().splitlines()
    assert len(cli_err) == 1 and "--temperature: Input should be less than or equal to 2 (got 3.0)" in cli_err[0]

    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.register_magics(LLMMagics)
    with pytest.raises(UsageError, match=r"-t/--temperature: Input should be less than or equal to 2 \(got 3\.0\)"):
        ip.run_cell_magic("llm", "sandbox/fast -t 3", "hello")
    assert sandbox.request_count() == 0
