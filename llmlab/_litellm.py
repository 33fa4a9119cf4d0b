"""Lazy LiteLLM import with the offline cost map, and secret redaction for anything LiteLLM says.

``import litellm`` costs about 2.4 s and, without ``LITELLM_LOCAL_MODEL_COST_MAP=True``, fetches the model cost
map from the network; llmlab sets that variable unless the user already did (DESIGN.md, decision 5).
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from typing import Any

__all__ = [
    "custom_pricing",
    "litellm",
    "litellm_version",
    "redact",
]

_configure_lock = threading.Lock()


@lru_cache(maxsize=1)
def litellm() -> Any:
    """Import and return the ``litellm`` module, configured for offline, quiet use. Thread-safe: the warm-up
    thread (:mod:`llmlab.warmup`) and a cell may call it at once; one imports and configures, the other waits."""
    with _configure_lock:
        return _import_litellm()


def _import_litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    import litellm as _litellm

    _litellm.suppress_debug_info = True
    _litellm.telemetry = False
    from llmlab.logs import capture_litellm_logging

    capture_litellm_logging()  # LiteLLM's warnings go to llmlab's log, not into the user's cell (llmlab.logs)
    return _litellm


def custom_pricing(model: str, input_cost_per_token: float | None,
                   output_cost_per_token: float | None) -> dict[str, float]:
    """LiteLLM's documented custom-pricing arguments for a call of ``model`` at llmlab's price (USD per token):
    ``{"input_cost_per_token": ..., "output_cost_per_token": ...}`` when that price is not the one LiteLLM's cost
    map gives (a model it does not map, a sandbox model, a price set with ``llmlab.set_price``), else ``{}``
    (also when llmlab has no price).

    Passed to ``litellm.acompletion``, they make LiteLLM price its own record of the call (what its callbacks
    and ``_hidden_params`` see) as llmlab records it, and spare LiteLLM its cost-map search for a model it does
    not know, which ends in a formatted traceback: about 0.6 ms of CPU, twice per call, against 0.1 ms at a given
    price (LiteLLM 1.106; issue 11). Asks LiteLLM's map once: call it once per model and run.
    """
    if input_cost_per_token is None or output_cost_per_token is None:
        return {}
    import math

    try:
        inp, out = litellm().cost_per_token(model=model, prompt_tokens=1_000_000, completion_tokens=1_000_000)
        if math.isclose(inp / 1e6, input_cost_per_token) and math.isclose(out / 1e6, output_cost_per_token):
            return {}
    except Exception:  # noqa: BLE001 - LiteLLM raises several types for a model its map does not know
        pass
    return {"input_cost_per_token": input_cost_per_token, "output_cost_per_token": output_cost_per_token}


def litellm_version() -> str:
    """The installed LiteLLM version (from package metadata; does not import LiteLLM)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("litellm")
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"


def redact(text: str | None, secrets: tuple[tuple[str, str], ...] | None = None) -> str | None:
    """See :func:`llmlab.redaction.redact` (secrets, their fragments and encodings, key-shaped tokens)."""
    from llmlab.redaction import redact as _redact

    return _redact(text, secrets)
