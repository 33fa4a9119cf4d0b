"""The simulated models: prices, latency models and per-category accuracy (no server imported here).

Every figure is simulated: invented for the sandbox, not measured; reports built on them say so.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "CATEGORIES",
    "DATASETS_DIR_ENV",
    "DEFAULT_MIXED_FAULT_KINDS",
    "ECHO_DIRECTIVE",
    "FAULT_KINDS",
    "JUDGE_MARKER",
    "PROFILES",
    "SANDBOX_API_BASE_ENV",
    "ModelProfile",
    "estimate_tokens",
]

logger = logging.getLogger(__name__)


#: The task categories of the bundled prompt sets (``quickstart``: the first six; ``tools_and_json``: the
#: capabilities conversation, json, tool_call).
CATEGORIES: tuple[str, ...] = ("extraction", "classification", "arithmetic", "code", "summarization", "reasoning",
                               "conversation", "json", "tool_call")

#: Every fault kind the sandbox can inject. Retryable: 429, 5xx, timeout, reset, malformed, cut_stream.
#: Not retryable: 400, 401, 403, 404, context_window.
FAULT_KINDS: tuple[str, ...] = (
    "429", "500", "502", "503", "504", "timeout", "reset", "malformed", "cut_stream",
    "400", "401", "403", "404", "context_window",
)

#: Fault kinds used by ``Sandbox(fault_rate=...)`` when ``fault_kinds`` is not given (the retryable ones).
DEFAULT_MIXED_FAULT_KINDS: tuple[str, ...] = ("429", "500", "503", "timeout", "reset", "malformed", "cut_stream")

ECHO_DIRECTIVE = "SANDBOX_ECHO:"
JUDGE_MARKER = "[llmlab-judge]"
SANDBOX_API_BASE_ENV = "LLMLAB_SANDBOX_API_BASE"
DATASETS_DIR_ENV = "LLMLAB_DATASETS_DIR"


@dataclass(frozen=True)
class ModelProfile:
    """One simulated model. All figures are invented for the sandbox (simulated, not measured).

    Attributes:
        name: the bare model name served by the sandbox (``"frontier"``); llmlab calls it ``sandbox/<name>``.
        api: the API LiteLLM reaches it through by default, ``"openai"`` or ``"anthropic"`` (the LiteLLM
            model string is ``f"{api}/{name}"`` with ``api_base``); every model is served on both endpoints.
        input_cost_per_token / output_cost_per_token: simulated prices in USD per token (never 0).
        ttft_ms: median time to first token, milliseconds. tokens_per_s: output speed after the first token.
        jitter: fraction; each latency is scaled by a deterministic factor in ``[1 - jitter, 1 + jitter]``.
        accuracy: probability of answering a bundled item of that category correctly.
        default_accuracy: the same for other categories; the judge's mistake rate is ``(1 - it) / 2``.
        context_window_tokens: larger inputs get a 400 ``context_length_exceeded``.
        max_output_tokens: cap on generated tokens.
    """

    name: str
    api: Literal["openai", "anthropic"]
    input_cost_per_token: float
    output_cost_per_token: float
    ttft_ms: float
    tokens_per_s: float
    jitter: float
    accuracy: dict[str, float] = field(hash=False)
    default_accuracy: float = 0.5
    context_window_tokens: int = 128_000
    max_output_tokens: int = 4096

    @property
    def llmlab_model(self) -> str:
        """The llmlab model id, e.g. ``"sandbox/frontier"``."""
        return f"sandbox/{self.name}"

    @property
    def litellm_model(self) -> str:
        """The LiteLLM model string to use with ``api_base``, e.g. ``"openai/frontier"``."""
        return f"{self.api}/{self.name}"

    def accuracy_for(self, category: str | None) -> float:
        """Probability (0..1) of a correct answer for ``category`` (``default_accuracy`` when unknown)."""
        if category is None:
            return self.default_accuracy
        return float(self.accuracy.get(category, self.default_accuracy))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field plus ``llmlab_model`` and ``litellm_model``."""
        d = dataclasses.asdict(self)
        d["llmlab_model"] = self.llmlab_model
        d["litellm_model"] = self.litellm_model
        return d


#: The simulated models. The accuracies make the best cheap choice differ by category: tiny is nearly as good
#: as frontier on classification, fast is good at extraction and summarization, balanced at code, and only
#: frontier is good at arithmetic and reasoning. On the structured capabilities (``datasets/tools_and_json.jsonl``):
#: fast holds a conversation nearly as well as frontier, balanced keeps to a JSON Schema, only frontier calls tools
#: reliably, and tiny does none of it well. All figures are simulated.
PROFILES: dict[str, ModelProfile] = {
    "frontier": ModelProfile(
        name="frontier", api="openai",
        input_cost_per_token=5e-6, output_cost_per_token=15e-6,
        ttft_ms=900.0, tokens_per_s=45.0, jitter=0.25,
        accuracy={"extraction": 0.95, "classification": 0.95, "arithmetic": 0.92, "code": 0.93,
                  "summarization": 0.94, "reasoning": 0.90,
                  "conversation": 0.92, "json": 0.96, "tool_call": 0.95},
        default_accuracy=0.90, context_window_tokens=200_000, max_output_tokens=8192,
    ),
    "balanced": ModelProfile(
        name="balanced", api="anthropic",
        input_cost_per_token=1e-6, output_cost_per_token=4e-6,
        ttft_ms=550.0, tokens_per_s=80.0, jitter=0.25,
        accuracy={"extraction": 0.86, "classification": 0.90, "arithmetic": 0.62, "code": 0.91,
                  "summarization": 0.85, "reasoning": 0.58,
                  "conversation": 0.86, "json": 0.95, "tool_call": 0.70},
        default_accuracy=0.80, context_window_tokens=200_000, max_output_tokens=8192,
    ),
    "fast": ModelProfile(
        name="fast", api="openai",
        input_cost_per_token=2.5e-7, output_cost_per_token=1e-6,
        ttft_ms=280.0, tokens_per_s=150.0, jitter=0.3,
        accuracy={"extraction": 0.93, "classification": 0.88, "arithmetic": 0.45, "code": 0.62,
                  "summarization": 0.91, "reasoning": 0.40,
                  "conversation": 0.91, "json": 0.55, "tool_call": 0.62},
        default_accuracy=0.70, context_window_tokens=128_000, max_output_tokens=4096,
    ),
    "tiny": ModelProfile(
        name="tiny", api="anthropic",
        input_cost_per_token=5e-8, output_cost_per_token=2e-7,
        ttft_ms=130.0, tokens_per_s=320.0, jitter=0.3,
        accuracy={"extraction": 0.60, "classification": 0.93, "arithmetic": 0.20, "code": 0.30,
                  "summarization": 0.55, "reasoning": 0.22,
                  "conversation": 0.70, "json": 0.30, "tool_call": 0.35},
        default_accuracy=0.50, context_window_tokens=16_384, max_output_tokens=2048,
    ),
}


# --------------------------------------------------------------------------------------------- helpers


def estimate_tokens(text: str) -> int:
    """Simulated token count of ``text``: about one token per 4 characters, at least 1."""
    return max(1, math.ceil(len(text) / 4))

