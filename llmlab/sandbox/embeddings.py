"""The sandbox's ``POST .../embeddings`` endpoint (OpenAI format): deterministic text embeddings.

An embedding is a hashed bag of words: each lower-cased word (letters and digits) adds ``±1`` to one of
:data:`EMBEDDING_DIMENSIONS` coordinates chosen by its sha256 (feature hashing, Weinberger et al. 2009), and the
vector is L2-normalized. Texts sharing words have a high cosine similarity, unrelated texts one near 0, and a
text is always embedded the same way, with no model and no network. Any model name is accepted (``embed``,
``text-embedding-3-small``); requests are counted in the sandbox's stats under that name. Prices: none (LiteLLM
finds no cost for these names). Every figure is simulated.

Request: ``{"model": str, "input": str | [str], "encoding_format": "float" | "base64"}`` (the OpenAI SDK asks
for base64 unless told otherwise: little-endian float32). Response: ``{"object": "list", "data": [{"object":
"embedding", "index": i, "embedding": [...] | "<base64>"}], "model": str, "usage": {"prompt_tokens": n,
"total_tokens": n}}``.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import struct
from typing import Any

from aiohttp import web

from llmlab.sandbox.answers import _bare_model
from llmlab.sandbox.profiles import estimate_tokens

__all__ = ["EMBEDDING_DIMENSIONS", "embed_text", "embeddings_response"]

#: Length of every sandbox embedding.
EMBEDDING_DIMENSIONS = 256

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def embed_text(text: str, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """The sandbox embedding of ``text``: a list of ``dimensions`` floats with L2 norm 1 (a fixed unit vector
    for a text without words)."""
    vector = [0.0] * dimensions
    words = _WORD.findall(str(text).lower()) or [""]
    for word in words:
        digest = hashlib.sha256(word.encode("utf-8")).digest()
        index = int.from_bytes(digest[:4], "big") % dimensions
        vector[index] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"message": message, "type": "invalid_request_error", "param": None,
                                        "code": None}}, status=status)


async def embeddings_response(sandbox: Any, request: web.Request) -> web.Response:
    """Answer one embeddings request for ``sandbox`` (a :class:`~llmlab.sandbox.server.Sandbox`; the request is
    counted in its stats)."""
    try:
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError("the body is not a JSON object")
    except (ValueError, UnicodeDecodeError) as exc:
        return _error(400, f"invalid JSON body: {exc}")
    model = _bare_model(body.get("model")) or "embed"
    inputs = body.get("input")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) for t in inputs):
        with sandbox._lock:
            sandbox._record(model, request.path, False, "invalid_request", 400)
        return _error(400, "'input' must be a non-empty string or list of strings")
    with sandbox._lock:
        sandbox._record(model, request.path, False, "ok", 200)
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for i, text in enumerate(inputs):
        vector = embed_text(text)
        value: Any = (base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii") if as_base64
                      else vector)
        data.append({"object": "embedding", "index": i, "embedding": value})
    tokens = sum(estimate_tokens(t) for t in inputs)
    return web.json_response({"object": "list", "data": data, "model": model,
                              "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
