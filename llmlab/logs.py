"""llmlab's log, and LiteLLM's output captured into it (quiet by default).

LiteLLM logs to its own loggers (``LiteLLM``, ``LiteLLM Router``, ``LiteLLM Proxy``) with a stderr handler of its
own, so its warnings land in a user's cell or terminal (``register_model: ... custom pricing ...`` on every Router
built from an exported config). Once llmlab imports LiteLLM (:func:`llmlab._litellm.litellm`), those loggers
write only into llmlab's log instead:

- always into a bounded ring buffer (:func:`litellm_messages`: the last 500 records, secrets redacted), so a
  problem can be looked at after the fact;
- to stderr only after :func:`set_log_level` (``llmlab.set_log_level("DEBUG")``; the CLI's ``--verbose``), through
  the ``llmlab.litellm`` logger.

Python warnings raised from LiteLLM's own modules are ignored the same way (a filter on ``module="litellm.*"``);
llmlab's own warnings are unchanged.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections import deque
from typing import Any

__all__ = [
    "LITELLM_LOGGERS",
    "capture_litellm_logging",
    "litellm_messages",
    "set_log_level",
]

LITELLM_LOGGERS = ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy")
_RECENT: deque[dict[str, Any]] = deque(maxlen=500)
_state: dict[str, Any] = {"verbose": False, "litellm_level": logging.WARNING}


class _IntoLlmlab(logging.Handler):
    """Replaces LiteLLM's stderr handler: keeps the record (redacted) and, when verbose, hands it to llmlab's log."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from llmlab.redaction import redact

            message = redact(record.getMessage()) or ""
            _RECENT.append({"logger": record.name, "level": record.levelname, "message": message,
                            "created_s": record.created})
            if _state["verbose"]:
                out = logging.getLogger("llmlab.litellm")
                out.log(record.levelno, "%s: %s", record.name, message)
        except Exception:  # noqa: BLE001 - logging must never raise into LiteLLM's call path
            pass


def capture_litellm_logging() -> None:
    """Point LiteLLM's loggers at llmlab's log (idempotent; called when llmlab imports LiteLLM)."""
    for name in LITELLM_LOGGERS:
        lg = logging.getLogger(name)
        lg.handlers = [h for h in lg.handlers if isinstance(h, _IntoLlmlab)] or [_IntoLlmlab()]
        lg.propagate = False
        lg.setLevel(_state["litellm_level"])
    warnings.filterwarnings("ignore", module=r"litellm(\.|$)")


def litellm_messages(level: str | int = "DEBUG") -> list[dict[str, Any]]:
    """LiteLLM's recent log records at ``level`` or above: ``[{"logger", "level", "message", "created_s"}]``
    (oldest first, at most 500, secrets redacted; ``created_s`` is a Unix time in seconds)."""
    threshold = logging.getLevelName(level) if isinstance(level, str) else level
    if not isinstance(threshold, int):
        raise ValueError(f"unknown log level {level!r}")
    return [r for r in _RECENT if logging.getLevelName(r["level"]) >= threshold]


def set_log_level(level: str | int = "INFO", *, litellm: bool = True) -> None:
    """Show llmlab's log (and, with ``litellm=True``, LiteLLM's captured output) on stderr from ``level`` up.

    ``set_log_level("WARNING")`` is the default behaviour for llmlab's own messages; LiteLLM's stay quiet until this
    is called. Raises ValueError for an unknown level name.
    """
    lvl = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(lvl, int):
        raise ValueError(f"unknown log level {level!r}: use DEBUG, INFO, WARNING or ERROR")
    root = logging.getLogger("llmlab")
    root.setLevel(lvl)
    if not any(getattr(h, "_llmlab", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("llmlab: %(name)s: %(message)s"))
        handler._llmlab = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        root.propagate = False
    _state["verbose"] = bool(litellm)
    _state["litellm_level"] = lvl if litellm else logging.WARNING
    if any(name in logging.Logger.manager.loggerDict for name in LITELLM_LOGGERS):
        capture_litellm_logging()
