"""Model specs: LiteLLM model strings, the sandbox models, ``@aliases``, key checks (names only) and prices.

A *model* here is what the user names: a LiteLLM model string (``openai/gpt-4o-mini``,
``anthropic/claude-3-5-haiku-20241022``, ``groq/llama-3.1-8b-instant``, ``openai/<name>`` with an ``api_base`` for an
OpenAI-compatible local server), a sandbox model (``sandbox/frontier``, ``sandbox/balanced``, ``sandbox/fast``,
``sandbox/tiny``) or an alias (``@smart``, ``@fast``, ``@cheap``) that expands to one or more models.

Prices: sandbox models carry explicit prices (their profiles in :mod:`llmlab.sandbox`); real models are priced by
LiteLLM's bundled model cost map (``litellm.cost_per_token``); :func:`set_price` overrides either. A model with no
known price gets ``cost_usd = None`` and one warning, never a silent 0 (DESIGN.md, decision 5).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmlab.errors import MissingKeyError, ModelError

log = logging.getLogger(__name__)

SANDBOX_PREFIX = "sandbox/"
from llmlab.settings import SANDBOX_API_BASE_ENV, SANDBOX_API_KEY_ENV  # noqa: E402

__all__ = [
    "DEFAULT_ALIASES",
    "SANDBOX_MODELS",
    "SANDBOX_PREFIX",
    "ModelSpec",
    "aliases",
    "default_models",
    "expand",
    "key_status",
    "reset_aliases",
    "resolve",
    "resolve_all",
    "set_alias",
    "set_price",
]

SANDBOX_MODELS = ("sandbox/frontier", "sandbox/balanced", "sandbox/fast", "sandbox/tiny")

DEFAULT_ALIASES: dict[str, tuple[str, ...]] = {
    "@smart": ("sandbox/frontier",),
    "@balanced": ("sandbox/balanced",),
    "@fast": ("sandbox/fast",),
    "@cheap": ("sandbox/tiny",),
    "@sandbox": SANDBOX_MODELS,
}
_aliases: dict[str, tuple[str, ...]] = dict(DEFAULT_ALIASES)
_price_overrides: dict[str, tuple[float, float]] = {}
_warned_unpriced: set[str] = set()


@dataclass(frozen=True)
class ModelSpec:
    """One callable model.

    Attributes:
        name: the model as llmlab records it (``sandbox/fast``, ``openai/gpt-4o-mini``).
        litellm_model: the string passed to ``litellm.acompletion`` (``openai/fast`` for ``sandbox/fast``).
        api_base: a fixed API base URL, or None (sandbox models read ``LLMLAB_SANDBOX_API_BASE`` at call time).
        key_env: names of the environment variables holding the provider key (names only, never values).
        input_cost_per_token, output_cost_per_token: USD per token, or None when unknown.
        sandbox: True for the local simulated provider.
        provider: LiteLLM's provider name (``openai``, ``anthropic``, ...).
    """

    name: str
    litellm_model: str
    provider: str
    api_base: str | None = None
    key_env: tuple[str, ...] = ()
    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None
    sandbox: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def call_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``litellm.acompletion`` that select this model (model, api_base, api_key).

        The key is read from the environment at call time and passed only to LiteLLM; it is never stored.
        """
        kwargs: dict[str, Any] = {"model": self.litellm_model}
        if self.sandbox:
            base = os.environ.get(SANDBOX_API_BASE_ENV)
            if not base:
                raise ModelError(f"{self.name}: no sandbox is running ({SANDBOX_API_BASE_ENV} is not set): call "
                                 "llmlab.ensure_sandbox(), or plan the run with llmlab.runner.plan, which starts it")
            kwargs["api_base"] = base
            kwargs["api_key"] = os.environ.get(SANDBOX_API_KEY_ENV, "sandbox")
        elif self.api_base:
            kwargs["api_base"] = self.api_base
        kwargs.update(self.extra)
        return kwargs

    @property
    def priced(self) -> bool:
        return self.input_cost_per_token is not None and self.output_cost_per_token is not None

    def cost_usd(self, input_tokens: int | None, output_tokens: int | None) -> float | None:
        """Cost of one call in USD from token counts, or None when the price or the counts are unknown."""
        if not self.priced or input_tokens is None or output_tokens is None:
            return None
        return input_tokens * self.input_cost_per_token + output_tokens * self.output_cost_per_token  # type: ignore[operator]


def aliases() -> dict[str, tuple[str, ...]]:
    """The current alias table: ``{"@smart": ("sandbox/frontier",), ...}``."""
    return dict(_aliases)


def set_alias(name: str, *models: str) -> None:
    """Define or redefine ``@name`` as one or more models (``set_alias("@smart", "openai/gpt-4o")``).

    Raises ModelError when no model is given or a target is itself an unknown alias.
    """
    if not name.startswith("@"):
        name = "@" + name
    if not models:
        raise ModelError(f"alias {name}: give at least one model")
    expanded: list[str] = []
    for m in models:
        expanded.extend(expand([m]))
    _aliases[name] = tuple(expanded)


def reset_aliases() -> None:
    """Restore the default aliases (over the sandbox models)."""
    _aliases.clear()
    _aliases.update(DEFAULT_ALIASES)


def set_price(model: str, input_usd_per_mtok: float, output_usd_per_mtok: float) -> None:
    """Override a model's price, in USD per million input / output tokens (both must be > 0)."""
    if input_usd_per_mtok <= 0 or output_usd_per_mtok <= 0:
        raise ModelError(f"{model}: prices must be > 0 USD per million tokens (a price of 0 counts as unset)")
    _price_overrides[model] = (input_usd_per_mtok / 1e6, output_usd_per_mtok / 1e6)


def expand(models: Iterable[str] | str) -> list[str]:
    """Expand aliases and comma-separated lists into model names, keeping order and dropping repeats.

    Raises ModelError naming an unknown alias and listing the known ones.
    """
    if isinstance(models, str):
        models = [models]
    out: list[str] = []
    for item in models:
        for m in (s.strip() for s in str(item).split(",")):
            if not m:
                continue
            if m.startswith("@"):
                if m not in _aliases:
                    raise ModelError(f"unknown alias {m!r}; known aliases: {', '.join(sorted(_aliases))}")
                targets: Sequence[str] = _aliases[m]
            else:
                targets = (m,)
            for t in targets:
                if t not in out:
                    out.append(t)
    return out


def _sandbox_spec(name: str) -> ModelSpec:
    from llmlab.sandbox.profiles import PROFILES

    short = name[len(SANDBOX_PREFIX):]
    if short not in PROFILES:
        known = ", ".join(SANDBOX_PREFIX + p for p in PROFILES)
        raise ModelError(f"unknown sandbox model {name!r}; sandbox models: {known}")
    prof = PROFILES[short]
    api = getattr(prof, "api", "openai")
    inp, out = _price_overrides.get(name, (prof.input_cost_per_token, prof.output_cost_per_token))
    return ModelSpec(
        name=name,
        litellm_model=f"{api}/{short}",
        provider=api,
        key_env=(SANDBOX_API_KEY_ENV,),
        input_cost_per_token=inp,
        output_cost_per_token=out,
        sandbox=True,
    )


def _litellm_prices(litellm_model: str) -> tuple[float | None, float | None]:
    from llmlab._litellm import litellm

    ll = litellm()
    try:
        inp, out = ll.cost_per_token(model=litellm_model, prompt_tokens=1_000_000, completion_tokens=1_000_000)
    except Exception:  # noqa: BLE001 - LiteLLM raises several types for unmapped models
        return None, None
    if not inp and not out:
        return None, None
    return inp / 1e6, out / 1e6


def resolve(model: str, *, api_base: str | None = None, check_keys: bool = True) -> ModelSpec:
    """Resolve one model name (not an alias) to a :class:`ModelSpec`.

    Raises:
        ModelError: the string names no LiteLLM provider (message lists the form expected).
        MissingKeyError: the provider's key variable is not set (names the variable; never reads out a value).
    """
    model = model.strip()
    if not model:
        raise ModelError("empty model name")
    if model.startswith("@"):
        raise ModelError(f"{model!r} is an alias: expand it first (llmlab.models.expand)")
    if model.startswith(SANDBOX_PREFIX):
        return _sandbox_spec(model)
    from llmlab._litellm import litellm

    ll = litellm()
    try:
        _, provider, _, _ = ll.get_llm_provider(model, api_base=api_base)
    except Exception as exc:  # noqa: BLE001
        raise ModelError(
            f"unknown model {model!r}: use a LiteLLM model string such as 'openai/gpt-4o-mini', "
            f"'anthropic/claude-3-5-haiku-20241022', a sandbox model ({', '.join(SANDBOX_MODELS)}) "
            f"or an alias ({', '.join(sorted(_aliases))})"
        ) from exc
    key_env: tuple[str, ...] = ()
    env_check = ll.validate_environment(model=model, api_base=api_base)
    missing = [k for k in env_check.get("missing_keys", []) if k]
    key_env = tuple(missing)
    if check_keys and missing and not api_base:
        raise MissingKeyError(
            f"{model}: set the environment variable{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"(provider {provider}) before calling it"
        )
    if model in _price_overrides:
        inp, out = _price_overrides[model]
    else:
        inp, out = _litellm_prices(model)
    if inp is None and model not in _warned_unpriced:
        _warned_unpriced.add(model)
        msg = f"llmlab: no price known for {model!r}; its cost_usd will be NULL (set one with llmlab.set_price)"
        log.warning(msg)
        warnings.warn(msg, stacklevel=2)
    return ModelSpec(
        name=model,
        litellm_model=model,
        provider=provider,
        api_base=api_base,
        key_env=key_env,
        input_cost_per_token=inp,
        output_cost_per_token=out,
    )


def resolve_all(models: Iterable[str] | str, *, check_keys: bool = True) -> list[ModelSpec]:
    """Expand aliases and resolve every model; all problems are reported before any call is made.

    Raises ModelError / MissingKeyError listing every unusable model at once.
    """
    names = expand(models)
    if not names:
        raise ModelError("no models given")
    specs, problems = [], []
    missing_key = False
    for n in names:
        try:
            specs.append(resolve(n, check_keys=check_keys))
        except MissingKeyError as exc:
            missing_key = True
            problems.append(str(exc))
        except ModelError as exc:
            problems.append(str(exc))
    if problems:
        cls = MissingKeyError if missing_key and len(problems) == sum(1 for p in problems if "set the environment" in p) else ModelError
        raise cls("; ".join(problems))
    return specs


def key_status() -> list[dict[str, Any]]:
    """For common providers, whether their key variable is set: ``[{"provider", "env_var", "set"}]`` (names only)."""
    providers = {
        "openai": "OPENAI_API_KEY",
        "anthropic": "ANTHROPIC_API_KEY",
        "groq": "GROQ_API_KEY",
        "gemini": "GEMINI_API_KEY",
        "mistral": "MISTRAL_API_KEY",
        "together_ai": "TOGETHERAI_API_KEY",
        "openrouter": "OPENROUTER_API_KEY",
        "deepseek": "DEEPSEEK_API_KEY",
    }
    return [{"provider": p, "env_var": v, "set": bool(os.environ.get(v))} for p, v in providers.items()]


def default_models() -> list[str]:
    """Models used when none are given: ``LLMLAB_MODELS`` (comma-separated) if set, else the four sandbox models."""
    env = os.environ.get("LLMLAB_MODELS", "").strip()
    return expand(env) if env else list(SANDBOX_MODELS)
