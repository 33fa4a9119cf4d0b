"""The logger instance the LiteLLM proxy loads: ``litellm_settings: {callbacks: [llmlab.production.proxy.logger]}``.

LiteLLM imports this module (``importlib.import_module``) and reads its ``logger`` attribute, a
:class:`~llmlab.production.logger.LiteLLMLogger` configured from the environment (``LLMLAB_DB``,
``LLMLAB_PRODUCTION_*``: see :data:`llmlab.production.logger.ENV`), one production run per proxy process.
"""

from __future__ import annotations

from llmlab.production.logger import LiteLLMLogger

__all__ = ["CALLBACK", "logger"]

#: What an exported config lists under ``litellm_settings.callbacks``.
CALLBACK = "llmlab.production.proxy.logger"

logger = LiteLLMLogger.from_env()
