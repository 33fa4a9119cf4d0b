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
