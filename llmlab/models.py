"""Model specs: LiteLLM model strings, the sandbox models, ``@aliases``, registered endpoints, key checks (names only) and prices.

A *model* here is what the user names: a LiteLLM model string (``openai/gpt-4o-mini``,
``anthropic/claude-3-5-haiku-20241022``, ``groq/llama-3.1-8b-instant``, ``openai/<name>`` with an ``api_base`` for an
OpenAI-compatible local server), a sandbox model (``sandbox/frontier``, ``sandbox/balanced``, ``sandbox/fast``,
``sandbox/tiny``) or an alias (``@smart``, ``@fast``, ``@cheap``) that expands to one or more models.

Any OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp, a gateway) becomes a model under its own name with
:func:`register_model` (its own ``api_base``, key variable and price; a price of 0 is allowed and shown as free),
or from a YAML models file (:func:`load_models`, or ``LLMLAB_MODELS_FILE`` for the CLI and the magic)::

    models:
      - name: local/llama                 # what llmlab records and you pass to run(models=...)
        model: openai/llama3              # the LiteLLM model string
        api_base: http://localhost:11434/v1
        api_key_env: null                 # a variable NAME, or null when the server needs no key
        price_usd_per_mtok: [0, 0]        # input, output; omit for "unknown" (cost_usd NULL)

Prices: sandbox models carry explicit prices (their profiles in :mod:`llmlab.sandbox`); real models are priced by
LiteLLM's bundled model cost map (``litellm.cost_per_token``); :func:`set_price` overrides either. A model with no
known price gets ``cost_usd = None`` and one warning, never a silent 0 (DESIGN.md, decision 5).
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmlab.errors import MissingKeyError, ModelError

log = logging.getLogger(__name__)

SANDBOX_PREFIX = "sandbox/"
from llmlab.settings import MODELS_FILE_ENV, SANDBOX_API_BASE_ENV, SANDBOX_API_KEY_ENV  # noqa: E402

__all__ = [
    "DEFAULT_ALIASES",
    "NO_KEY_PLACEHOLDER",
    "SANDBOX_MODELS",
    "SANDBOX_PREFIX",
    "ModelSpec",
    "aliases",
    "default_models",
    "expand",
    "key_status",
    "load_models",
    "register_model",
    "registered_models",
    "reset_aliases",
    "resolve",
    "resolve_all",
    "set_alias",
    "set_price",
    "unregister_model",
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
# name -> the registration (see register_model); the models file named by LLMLAB_MODELS_FILE is read once.
_registered: dict[str, dict[str, Any]] = {}
_models_file_loaded: str | None = None
# Sent as the key to a registered endpoint that needs none (the OpenAI client refuses an empty key). Not a secret.
NO_KEY_PLACEHOLDER = "no-key-needed"


@dataclass(frozen=True)
class ModelSpec:
    """One callable model.

    Attributes:
        name: the model as llmlab records it (``sandbox/fast``, ``openai/gpt-4o-mini``, a registered name).
        litellm_model: the string passed to ``litellm.acompletion`` (``openai/fast`` for ``sandbox/fast``).
        api_base: a fixed API base URL, or None (sandbox models read ``LLMLAB_SANDBOX_API_BASE`` at call time).
        key_env: names of the environment variables holding the provider key (names only, never values).
        input_cost_per_token, output_cost_per_token: USD per token, or None when unknown.
        sandbox: True for the local simulated provider.
        provider: LiteLLM's provider name (``openai``, ``anthropic``, ...).
        extra: further keyword arguments for ``litellm.acompletion`` (registered models).
        api_key_env: for a registered model, the variable holding its key (None: the endpoint needs none).
        registered: made by :func:`register_model`.
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
    api_key_env: str | None = None
    registered: bool = False

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
        if self.registered:
            # The key's value is read here, at call time, and handed only to LiteLLM.
            kwargs["api_key"] = (os.environ.get(self.api_key_env) or "") if self.api_key_env else NO_KEY_PLACEHOLDER
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


def _check_price(model: str, input_usd_per_mtok: Any, output_usd_per_mtok: Any) -> tuple[float, float]:
    try:
        inp, out = float(input_usd_per_mtok), float(output_usd_per_mtok)
    except (TypeError, ValueError):
        raise ModelError(f"{model}: a price is two numbers, USD per million input and output tokens; got "
                         f"{input_usd_per_mtok!r}, {output_usd_per_mtok!r}") from None
    if not (inp >= 0 and out >= 0) or inp == float("inf") or out == float("inf"):
        raise ModelError(f"{model}: prices must be finite and >= 0 USD per million tokens; got {inp}, {out}")
    return inp / 1e6, out / 1e6


def set_price(model: str, input_usd_per_mtok: float, output_usd_per_mtok: float) -> None:
    """Override a model's price, in USD per million input / output tokens (each >= 0; ``0, 0`` means free).

    Raises ModelError for a negative, infinite or non-numeric price.
    """
    _price_overrides[model] = _check_price(model, input_usd_per_mtok, output_usd_per_mtok)


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def register_model(name: str, litellm_model: str, *, api_base: str | None = None, api_key_env: str | None = None,
                   price: tuple[float, float] | None = None, **litellm_params: Any) -> ModelSpec:
    """Make an endpoint callable under its own name: ``register_model("local/llama", "openai/llama3",
    api_base="http://localhost:11434/v1", price=(0, 0))``.

    Args:
        name: what llmlab records and what you pass as a model (not ``@...``, not ``sandbox/...``).
        litellm_model: the LiteLLM model string sent (``openai/<served name>`` for any OpenAI-compatible server).
        api_base: the endpoint's base URL (``http://`` or ``https://``); per model, unlike ``OPENAI_API_BASE``.
        api_key_env: the NAME of the environment variable holding the key, read at call time; None for a server
            that needs no key (a fixed placeholder is sent, since the OpenAI client refuses an empty one).
        price: ``(input, output)`` in USD per million tokens, each >= 0; ``(0, 0)`` is free. None: unknown
            (``cost_usd`` NULL and ``--budget`` refuses the run).
        litellm_params: further ``litellm.acompletion`` arguments (``extra_headers``, ``timeout``, ...); never a key.

    Returns the model's :class:`ModelSpec`. Registering a name again replaces it.

    Raises ModelError naming the problem (bad name, URL, variable name, price, or a key passed as a value).
    """
    name = str(name or "").strip()
    if not name or name.startswith("@") or name.startswith(SANDBOX_PREFIX) or "," in name:
        raise ModelError(f"register_model: {name!r} cannot be a model name (not empty, no ',', not an @alias, "
                         f"not under {SANDBOX_PREFIX})")
    litellm_model = str(litellm_model or "").strip()
    if "/" not in litellm_model:
        raise ModelError(f"register_model({name!r}): the LiteLLM model must name its provider, e.g. "
                         f"'openai/{litellm_model or 'llama3'}' for an OpenAI-compatible server")
    if api_base is not None and not re.match(r"^https?://\S+$", str(api_base)):
        raise ModelError(f"register_model({name!r}): api_base must be an http:// or https:// URL")
    if api_key_env is not None and not _ENV_NAME.match(str(api_key_env)):
        # Never echo the value: it may be a key pasted by mistake.
        raise ModelError(f"register_model({name!r}): api_key_env is the NAME of an environment variable "
                         "(e.g. 'LOCAL_LLM_KEY'), not the key itself")
    for forbidden in ("api_key", "model", "api_base"):
        if forbidden in litellm_params:
            raise ModelError(f"register_model({name!r}): pass {forbidden!r} as "
                             f"{'api_key_env (a variable name)' if forbidden == 'api_key' else 'an argument'}, "
                             "not in litellm_params")
    prices = None if price is None else _check_price(name, *_pair(name, price))
    _registered[name] = {"litellm_model": litellm_model, "api_base": api_base, "api_key_env": api_key_env,
                         "price": prices, "extra": dict(litellm_params)}
    _warned_unpriced.discard(name)
    return resolve(name, check_keys=False)


def _pair(name: str, price: Any) -> tuple[Any, Any]:
    if isinstance(price, (str, bytes)) or not hasattr(price, "__len__") or len(price) != 2:
        raise ModelError(f"{name}: price is (input, output) USD per million tokens, e.g. (0, 0); got {price!r}")
    return price[0], price[1]


def unregister_model(name: str) -> None:
    """Forget a registered model (no error if it was not registered)."""
    _registered.pop(name, None)


def registered_models() -> list[dict[str, Any]]:
    """The registered models: ``[{"name", "litellm_model", "api_base", "api_key_env", "input_usd_per_mtok",
    "output_usd_per_mtok"}]`` (prices None when unknown). Holds variable names only, never a key."""
    out = []
    for n, r in _registered.items():
        p = r["price"]
        out.append({"name": n, "litellm_model": r["litellm_model"], "api_base": r["api_base"],
                    "api_key_env": r["api_key_env"], "input_usd_per_mtok": None if p is None else p[0] * 1e6,
                    "output_usd_per_mtok": None if p is None else p[1] * 1e6})
    return out


_FILE_KEYS = {"name", "model", "api_base", "api_key_env", "price_usd_per_mtok", "litellm_params"}


def load_models(path: str | os.PathLike[str]) -> list[str]:
    """Register every model of a YAML models file (format in the module docstring); returns their names.

    Raises ModelError naming the file, the entry (1-based) and the problem: unreadable file, not YAML, no
    ``models:`` list, an unknown key, a missing ``name`` / ``model``, or anything :func:`register_model` refuses.
    """
    import yaml

    p = os.fspath(path)
    try:
        with open(p, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
    except OSError as exc:
        raise ModelError(f"models file {p}: cannot read it ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ModelError(f"models file {p}{where}: not valid YAML") from None
    entries = doc.get("models") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise ModelError(f"models file {p}: expected a top-level 'models:' list")
    names: list[str] = []
    for i, entry in enumerate(entries, 1):
        where = f"models file {p}, entry {i}"
        if not isinstance(entry, dict):
            raise ModelError(f"{where}: expected a mapping with 'name' and 'model'")
        unknown = sorted(set(entry) - _FILE_KEYS)
        if unknown:
            raise ModelError(f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                             f"(known: {', '.join(sorted(_FILE_KEYS))})")
        if not entry.get("name") or not entry.get("model"):
            raise ModelError(f"{where}: 'name' and 'model' are required")
        extra = entry.get("litellm_params") or {}
        if not isinstance(extra, dict):
            raise ModelError(f"{where}: litellm_params must be a mapping")
        try:
            register_model(str(entry["name"]), str(entry["model"]), api_base=entry.get("api_base"),
                           api_key_env=entry.get("api_key_env"), price=entry.get("price_usd_per_mtok"), **extra)
        except ModelError as exc:
            raise ModelError(f"{where}: {exc}") from None
        names.append(str(entry["name"]))
    return names


def _load_models_file_from_env() -> None:
    global _models_file_loaded
    path = os.environ.get(MODELS_FILE_ENV)
    if path and path != _models_file_loaded:
        _models_file_loaded = path
        load_models(path)


def _registered_spec(name: str, check_keys: bool) -> ModelSpec:
    r = _registered[name]
    var = r["api_key_env"]
    if check_keys and var and not os.environ.get(var):
        raise MissingKeyError(f"{name}: set the environment variable {var} before calling it (registered model)")
    inp, out = _price_overrides.get(name) or r["price"] or (None, None)
    if inp is None and name not in _warned_unpriced:
        _warned_unpriced.add(name)
        msg = f"llmlab: no price known for {name!r}; its cost_usd will be NULL (register it with price=(in, out))"
        log.warning(msg)
        warnings.warn(msg, stacklevel=3)
    return ModelSpec(name=name, litellm_model=r["litellm_model"], provider=r["litellm_model"].split("/", 1)[0],
                     api_base=r["api_base"], key_env=(var,) if var else (), input_cost_per_token=inp,
                     output_cost_per_token=out, extra=dict(r["extra"]), api_key_env=var, registered=True)


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
    _load_models_file_from_env()
    if model in _registered:
        return _registered_spec(model, check_keys)
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
