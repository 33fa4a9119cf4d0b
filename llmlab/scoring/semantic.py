"""Semantic similarity scoring through LiteLLM embeddings only (no bundled model).

``SemanticScorer(model)`` embeds each answer and its reference with ``litellm.aembedding`` and scores their
cosine similarity (clipped to 0..1); ``passed`` is ``cosine >= threshold``. Any LiteLLM embedding model works
(``openai/text-embedding-3-small``, ...; its key from the environment); ``sandbox/<name>`` uses the local
sandbox's deterministic ``/embeddings`` endpoint (:mod:`llmlab.sandbox.embeddings`, simulated: a hashed bag of
words). Texts are sent in batches of ``batch_size`` and each distinct text is embedded once per scorer.
Use it with :func:`llmlab.rescore` (it calls a provider, so it is not a per-call check of the runner).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from llmlab.errors import LLMLabError, ModelError

__all__ = ["SemanticScorer", "semantic_scorer"]


@dataclass
class SemanticScorer:
    """Cosine similarity of LiteLLM embeddings of the answer and the reference.

    Attributes:
        model: a LiteLLM embedding model string, or ``sandbox/<name>`` for the sandbox's endpoint.
        threshold: ``passed`` when the cosine similarity is at least this.
        version: stored with every score (``scores.version``).
        batch_size: texts per embedding request.
        name: the stored scorer name (default ``semantic:<model>``).
        requests: embedding requests made so far; tokens: input tokens they reported.
    """

    model: str = "sandbox/embed"
    threshold: float = 0.8
    version: str = "1"
    batch_size: int = 128
    name: str = ""
    requests: int = 0
    tokens: int = 0
    _cache: dict[str, list[float]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.model or not isinstance(self.model, str):
            raise ModelError(f"give an embedding model, got {self.model!r}")
        self.name = self.name or f"semantic:{self.model}"

    def _call_kwargs(self) -> dict[str, Any]:
        from llmlab.models import SANDBOX_PREFIX
        from llmlab.settings import SANDBOX_API_BASE_ENV, SANDBOX_API_KEY_ENV

        if self.model.startswith(SANDBOX_PREFIX):
            base = os.environ.get(SANDBOX_API_BASE_ENV)
            if not base:
                raise ModelError(f"{self.model}: no sandbox is running ({SANDBOX_API_BASE_ENV} is not set): call "
                                 "llmlab.ensure_sandbox()")
            return {"model": "openai/" + self.model[len(SANDBOX_PREFIX):], "api_base": base,
                    "api_key": os.environ.get(SANDBOX_API_KEY_ENV, "sandbox")}
        return {"model": self.model}

    async def aembed(self, texts: list[str]) -> list[list[float]]:
        """Embeddings of ``texts`` (one list of floats each), through ``litellm.aembedding``.

        Raises ModelError (no sandbox) or LLMLabError naming the model when the provider call fails (the message
        is redacted of keys)."""
        from llmlab._litellm import litellm, redact

        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        kwargs = self._call_kwargs()
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start:start + self.batch_size]
            try:
                response = await litellm().aembedding(input=batch, **kwargs)
            except Exception as exc:  # noqa: BLE001 - LiteLLM raises many types; one clear error here
                raise LLMLabError(f"embedding call to {self.model} failed: {redact(str(exc))}") from None
            self.requests += 1
            usage = getattr(response, "usage", None)
            self.tokens += int(getattr(usage, "prompt_tokens", 0) or 0)
            for item in sorted(response.data, key=lambda d: d["index"]):
                self._cache[batch[item["index"]]] = list(item["embedding"])
        return [self._cache[t] for t in texts]

    async def ascore_rows(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``score, passed, rationale`` for every row of ``frame`` (``response``, ``reference``, ``status``):
        NaN where there is no reference, 0 for a failed call or an empty answer."""
        rows: list[tuple[float, bool | None, str | None]] = []
        wanted: list[str] = []
        for answer, reference, status in zip(frame["response"], frame["reference"], frame["status"], strict=True):
            if not isinstance(reference, str) or not reference.strip():
                continue
            if status == "ok" and isinstance(answer, str) and answer.strip():
                wanted += [answer, reference]
        vectors = dict(zip(wanted, await self.aembed(wanted), strict=True)) if wanted else {}
        for answer, reference, status in zip(frame["response"], frame["reference"], frame["status"], strict=True):
            if not isinstance(reference, str) or not reference.strip():
                rows.append((math.nan, None, None))
            elif status != "ok" or not isinstance(answer, str) or not answer.strip():
                rows.append((0.0, False, "no answer"))
            else:
                cos = _cosine(vectors[answer], vectors[reference])
                rows.append((min(1.0, max(0.0, cos)), cos >= self.threshold,
                             f"cosine similarity {cos:.3f} to the reference ({self.model} embeddings)"))
        return pd.DataFrame(rows, index=frame.index, columns=["score", "passed", "rationale"])

    def score_rows(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The blocking form of :meth:`ascore_rows` (runs on llmlab's background loop; works inside Jupyter)."""
        from llmlab._loop import run_sync

        return run_sync(self.ascore_rows(frame))


def _cosine(x: list[float], y: list[float]) -> float:
    dot = sum(a * b for a, b in zip(x, y, strict=True))
    nx, ny = math.sqrt(sum(a * a for a in x)), math.sqrt(sum(b * b for b in y))
    return dot / (nx * ny) if nx and ny else 0.0


def semantic_scorer(model: str = "sandbox/embed", threshold: float = 0.8, version: str = "1") -> SemanticScorer:
    """A :class:`SemanticScorer` (``llmlab.semantic_scorer``): cosine similarity of LiteLLM embeddings."""
    return SemanticScorer(model=model, threshold=threshold, version=version)
