"""Lazy LiteLLM import with the offline cost map, and secret redaction for anything LiteLLM says.

``import litellm`` costs about 2.4 s and, without ``LITELLM_LOCAL_MODEL_COST_MAP=True``, fetches the model cost
map from the network; llmlab sets that variable unless the user already did (DESIGN.md, decision 5).
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from typing import Any

__all__ = [
    "litellm",
    "litellm_version",
    "redact",
]

_SECRET_NAME = re.compile(r"(API_KEY|_KEY|_TOKEN|_SECRET|PASSWORD)$", re.IGNORECASE)


@lru_cache(maxsize=1)
def litellm() -> Any:
    """Import and return the ``litellm`` module, configured for offline, quiet use."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    import litellm as _litellm

    _litellm.suppress_debug_info = True
    _litellm.telemetry = False
    return _litellm


def litellm_version() -> str:
    """The installed LiteLLM version (from package metadata; does not import LiteLLM)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("litellm")
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"


def redact(text: str | None) -> str | None:
    """Replace the value of every secret-looking environment variable (``*_API_KEY``, ``*_TOKEN``, ...) in ``text``.

    Error messages from providers and LiteLLM may echo request details; nothing llmlab stores, logs or shows may
    contain a key value. Values shorter than 8 characters are left alone (too likely to collide with text).
    """
    if not text:
        return text
    for name, value in os.environ.items():
        if value and len(value) >= 8 and _SECRET_NAME.search(name) and value in text:
            text = text.replace(value, f"<{name} redacted>")
    return text
