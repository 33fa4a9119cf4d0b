"""Model specs: aliases, sandbox prices, LiteLLM price map, key checks by name only, no silent zero price."""

from __future__ import annotations

import pytest

from llmlab import models
from llmlab.errors import MissingKeyError, ModelError


@pytest.fixture(autouse=True)
def _clean_aliases():
    models.reset_aliases()
    yield
    models.reset_aliases()


def test_default_aliases_name_models_by_intent():
    assert models.expand("@smart") == ["sandbox/frontier"]
    assert models.expand(["@cheap", "sandbox/fast", "@fast"]) == ["sandbox/tiny", "sandbox/fast"]
    assert models.expand("sandbox/tiny, @sandbox") == ["sandbox/tiny", "sandbox/frontier", "sandbox/balanced",
                                                         "sandbox/fast"]


def test_users_redefine_aliases():
    models.set_alias("smart", "openai/gpt-4o", "@cheap")
    assert models.expand("@smart") == ["openai/gpt-4o", "sandbox/tiny"]
    with pytest.raises(ModelError, match="unknown alias '@nope'.*@smart"):
        models.expand("@nope")


def test_sandbox_specs_carry_explicit_prices():
    from llmlab.sandbox import PROFILES

    spec = models.resolve("sandbox/frontier")
    assert spec.sandbox and spec.litellm_model == f"{PROFILES['frontier'].api}/frontier"
    assert spec.input_cost_per_token == PROFILES["frontier"].input_cost_per_token > 0
    assert spec.cost_usd(1000, 100) == pytest.approx(1000 * spec.input_cost_per_token + 100 * spec.output_cost_per_token)
    with pytest.raises(ModelError, match="sandbox/frontier"):
        models.resolve("sandbox/nope")


def test_real_model_prices_from_litellm_cost_map(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real-000000000")
    spec = models.resolve("gpt-4-1106-preview")
    assert spec.input_cost_per_token == pytest.approx(10 / 1e6)
    assert spec.output_cost_per_token == pytest.approx(30 / 1e6)


def test_missing_key_names_the_variable_never_a_value(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(MissingKeyError) as err:
        models.resolve_all(["anthropic/claude-3-5-haiku-20241022"])
    assert "ANTHROPIC_API_KEY" in str(err.value)


def test_unknown_model_and_unpriced_model(monkeypatch):
    with pytest.raises(ModelError, match="unknown model 'not-a-provider-model'"):
        models.resolve("not-a-provider-model")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real-000000000")
    with pytest.warns(UserWarning, match="no price known"):
        spec = models.resolve("openai/my-finetune-xyz")
    assert spec.cost_usd(10, 10) is None          # NULL, never a silent 0
    models.set_price("openai/my-finetune-xyz", 1.0, 2.0)
    assert models.resolve("openai/my-finetune-xyz").cost_usd(1_000_000, 1_000_000) == pytest.approx(3.0)
    with pytest.raises(ModelError, match=">= 0"):
        models.set_price("openai/my-finetune-xyz", -1, 1)


def test_all_problems_reported_at_once(monkeypatch):
    monkeypatch.delenv("GROQ_API_KEY", raising=False)
    with pytest.raises(ModelError) as err:
        models.resolve_all(["sandbox/nope", "groq/llama-3.1-8b-instant", "sandbox/fast"])
    assert "sandbox/nope" in str(err.value) and "GROQ_API_KEY" in str(err.value)


def test_key_status_lists_names_only(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-value-should-not-appear")
    status = models.key_status()
    assert {"provider": "openai", "env_var": "OPENAI_API_KEY", "set": True} in status
    assert "sk-test-value" not in repr(status)


def test_default_models_from_environment(monkeypatch):
    monkeypatch.setenv("LLMLAB_MODELS", "openai/gpt-4o-mini, @cheap")
    assert models.default_models() == ["openai/gpt-4o-mini", "sandbox/tiny"]
    monkeypatch.delenv("LLMLAB_MODELS")
    assert models.default_models() == list(models.SANDBOX_MODELS)


def test_importing_llmlab_is_light():
    import subprocess
    import sys

    code = ("import sys, llmlab; heavy = [m for m in ('litellm', 'IPython', 'plotly', 'pandas', 'duckdb') "
            "if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_an_unknown_alias_or_sandbox_model_is_refused_before_litellm_is_imported():
    """The fastest check first: rejecting an alias or a sandbox name needs no LiteLLM (about 2.4 s to import)."""
    import subprocess
    import sys

    code = ("import sys, llmlab\n"
            "for m in ('@nope', 'sandbox/nope'):\n"
            "    try:\n"
            "        llmlab.plan('quickstart', [m])\n"
            "    except llmlab.ModelError as e:\n"
            "        print(m, 'refused', 'litellm' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["@nope refused False", "sandbox/nope refused False"]
