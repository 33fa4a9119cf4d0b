"""The local sandbox: a simulated LLM provider on loopback (DESIGN.md decision 9). It imports nothing of the client.

- :mod:`llmlab.sandbox.profiles`: the simulated models (prices, latencies, accuracies); no server imported.
- :mod:`llmlab.sandbox.answers`: deterministic answers from the bundled prompt sets, judge verdicts.
- :mod:`llmlab.sandbox.faults`: injectable faults.
- :mod:`llmlab.sandbox.formats`: the OpenAI and Anthropic wire formats (bodies, SSE events, errors).
- :mod:`llmlab.sandbox.structured`: tool calls, JSON-schema answers, tool results and images in both formats,
  and the request shape kept in the request log.
- :mod:`llmlab.sandbox.server`: the aiohttp server, :class:`Sandbox` (its docstring is the sandbox's manual).
- :mod:`llmlab.sandbox.pairwise_judge`: deterministic pairwise verdicts with a configurable position bias.
- :mod:`llmlab.sandbox.embeddings`: the deterministic ``/embeddings`` endpoint (OpenAI format).
- :mod:`llmlab.sandbox.batches`: OpenAI's files + batches and Anthropic's message batches (delay, failures, expiry).
- :mod:`llmlab.sandbox.control`: :class:`RemoteSandbox`, :func:`ensure_sandbox`, the ``llmlab sandbox`` command.
"""

from __future__ import annotations

from llmlab.errors import FaultSpecError
from llmlab.sandbox.answers import SandboxAnswer, default_datasets_dir
from llmlab.sandbox.batches import BatchService, batch_service
from llmlab.sandbox.control import RemoteSandbox, ensure_sandbox, main, serve_forever
from llmlab.sandbox.pairwise_judge import PAIRWISE_JUDGES, PairwiseJudgeProfile
from llmlab.sandbox.profiles import (
    CATEGORIES,
    DEFAULT_MIXED_FAULT_KINDS,
    FAULT_KINDS,
    PROFILES,
    SANDBOX_API_BASE_ENV,
    ModelProfile,
    estimate_tokens,
)
from llmlab.sandbox.server import Sandbox

__all__ = [
    "BatchService",
    "CATEGORIES",
    "DEFAULT_MIXED_FAULT_KINDS",
    "FAULT_KINDS",
    "PROFILES",
    "SANDBOX_API_BASE_ENV",
    "FaultSpecError",
    "PAIRWISE_JUDGES",
    "PairwiseJudgeProfile",
    "ModelProfile",
    "RemoteSandbox",
    "Sandbox",
    "SandboxAnswer",
    "batch_service",
    "default_datasets_dir",
    "ensure_sandbox",
    "estimate_tokens",
    "main",
    "serve_forever",
]
