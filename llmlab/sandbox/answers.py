"""Deterministic answers: the bundled prompt sets, right and plausible wrong answers, judge verdicts."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

logger = logging.getLogger(__name__)
from llmlab.sandbox.profiles import (
    estimate_tokens,
)

__all__ = [
    "SandboxAnswer",
    "default_datasets_dir",
]


def _unit(*parts: Any) -> float:
    """A deterministic float in [0, 1) from ``parts`` (sha256; not Python's salted ``hash()``)."""
    raw = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False).encode("utf-8")
    return int.from_bytes(hashlib.sha256(raw).digest()[:8], "big") / 2.0**64


def _hexid(*parts: Any, n: int = 24) -> str:
    raw = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(raw).hexdigest()[:n]


_WS = re.compile(r"\s+")


def _norm(text: str) -> str:
    return _WS.sub(" ", text).strip()


def _content_text(content: Any) -> str:
    """Text of an OpenAI or Anthropic message ``content`` (a string or a list of parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        pieces = []
        for part in content:
            if isinstance(part, str):
                pieces.append(part)
            elif isinstance(part, dict):
                if isinstance(part.get("text"), str):
                    pieces.append(part["text"])
                elif "content" in part:  # tool_result blocks
                    pieces.append(_content_text(part["content"]))
        return "\n".join(pieces)
    if isinstance(content, dict) and isinstance(content.get("text"), str):
        return content["text"]
    return str(content)


def _last_user_text(messages: list[Any]) -> str | None:
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") == "user":
            return _content_text(m.get("content"))
    return None


def default_datasets_dir() -> Path:
    """The directory of bundled prompt sets (:func:`llmlab.prompts.datasets_dir`: ``$LLMLAB_DATASETS_DIR`` or
    ``<repo>/datasets``)."""
    from llmlab.settings import datasets_dir

    return datasets_dir()


def _bare_model(name: Any) -> str:
    """``"openai/frontier"`` / ``"sandbox/frontier"`` / ``"frontier"`` -> ``"frontier"``."""
    text = str(name or "").strip()
    return text.rsplit("/", 1)[-1] if "/" in text else text


# --------------------------------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class _Item:
    prompt_norm: str
    category: str
    reference: str
    item_id: str


class _Datasets:
    """The bundled prompt sets, reloaded when a ``*.jsonl`` file changes (tolerates a missing directory)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._signature: tuple = ()
        self._items: list[_Item] = []
        self._by_prompt: dict[str, _Item] = {}
        self._refs_by_category: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._checked_at = -1.0

    def _current_signature(self) -> tuple:
        try:
            files = sorted(self.directory.glob("*.jsonl"))
        except OSError:
            return ()
        sig = []
        for f in files:
            try:
                st = f.stat()
            except OSError:
                continue
            sig.append((str(f), st.st_mtime_ns, st.st_size))
        return tuple(sig)

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked_at < 0.5 and self._checked_at >= 0:
            return
        self._checked_at = now
        sig = self._current_signature()
        if sig == self._signature:
            return
        items: list[_Item] = []
        seen: set[str] = set()
        for path_str, _, _ in sig:
            path = Path(path_str)
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                logger.warning("sandbox: cannot read %s: %s", path, exc)
                continue
            for lineno, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    logger.debug("sandbox: %s:%d is not JSON, skipped", path, lineno)
                    continue
                if isinstance(obj, dict) and not isinstance(obj.get("prompt"), str) and isinstance(
                        obj.get("messages"), list):  # a conversation row: matched by its last user turn
                    obj = {**obj, "prompt": _last_user_text(obj["messages"])}
                if not isinstance(obj, dict) or not isinstance(obj.get("prompt"), str):
                    continue
                ref = obj.get("reference")
                if ref is None:
                    continue
                if not isinstance(ref, str):
                    ref = json.dumps(ref, ensure_ascii=False)
                prompt_norm = _norm(obj["prompt"])
                if not prompt_norm or prompt_norm in seen:
                    continue
                seen.add(prompt_norm)
                items.append(_Item(prompt_norm, str(obj.get("category") or ""), ref,
                                   str(obj.get("id") or f"{path.stem}:{lineno}")))
        by_prompt = {it.prompt_norm: it for it in items}
        refs: dict[str, list[str]] = {}
        for it in items:
            refs.setdefault(it.category, [])
            if it.reference not in refs[it.category]:
                refs[it.category].append(it.reference)
        # Longest prompts first, so the first contained prompt is the longest match.
        items.sort(key=lambda it: len(it.prompt_norm), reverse=True)
        self._items, self._by_prompt, self._refs_by_category = items, by_prompt, refs
        self._signature = sig
        logger.debug("sandbox: loaded %d bundled items from %s", len(items), self.directory)

    def match(self, text: str) -> _Item | None:
        """The bundled item whose prompt is contained in ``text`` (whitespace-normalised), longest first."""
        with self._lock:
            self._refresh()
            t = _norm(text)
            exact = self._by_prompt.get(t)
            if exact is not None:
                return exact
            for it in self._items:
                if len(it.prompt_norm) <= len(t) and it.prompt_norm in t:
                    return it
            return None

    def other_references(self, category: str) -> list[str]:
        with self._lock:
            return list(self._refs_by_category.get(category, []))

    def __len__(self) -> int:
        with self._lock:
            self._refresh()
            return len(self._items)


# --------------------------------------------------------------------------------------------- answers


def _wrong_number(reference: str, u: float) -> str | None:
    text = reference.strip()
    if not re.fullmatch(r"[-+]?\d+(\.\d+)?", text):
        return None
    deltas = (-3, -2, -1, 1, 2, 3, 10, -10)
    k = deltas[int(u * len(deltas)) % len(deltas)]
    if "." in text:
        decimals = len(text.split(".", 1)[1])
        value = float(text) + k * 10.0**-decimals
        out = f"{value:.{decimals}f}"
    else:
        out = str(int(text) + k)
    return out if out != text else str(int(float(text)) + 7)


def _wrong_json(reference: str, u: float) -> str | None:
    text = reference.strip()
    if not text.startswith("{"):
        return None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or not obj:
        return None
    keys = list(obj)
    key = keys[int(u * len(keys)) % len(keys)]
    value = obj[key]
    if isinstance(value, bool):
        new: Any = not value
    elif isinstance(value, (int, float)):
        new = value + 1
    elif isinstance(value, str):
        new = "unknown" if value.strip().lower() != "unknown" else "n/a"
    elif isinstance(value, list):
        new = value[:-1] if value else ["unknown"]
    elif isinstance(value, dict):
        new = {} if value else {"unknown": True}
    else:
        new = "unknown"
    obj[key] = new
    return json.dumps(obj, ensure_ascii=False)


def _wrong_text(reference: str, others: Sequence[str], u: float) -> str:
    ref_l = reference.strip().lower()
    pool = [o for o in others if o.strip() and o.strip().lower() != ref_l and ref_l not in o.lower()]
    candidates: list[str] = []
    if pool:
        other = pool[int(u * len(pool)) % len(pool)]
        if len(other) > 160:
            other = other[:160].rstrip() + "..."
        candidates.append(f"I am not certain; it may be {other}")
        candidates.append(other)
    candidates += [
        "I am not certain; it may be something else entirely.",
        "I cannot determine the answer from the information given.",
        "Unclear.",
        f"unknown-{_hexid(reference, n=12)}",
    ]
    for c in candidates:
        if not ref_l or ref_l not in c.lower():
            return c
    return "?" if ref_l != "?" else "!"


_FILLER = (
    "This is a simulated response from the llmlab sandbox.",
    "The figures it reports are invented for testing.",
    "A real model would answer the question in more detail.",
    "No external service was contacted to produce it.",
    "It is deterministic for a given seed and request.",
)


def _generic_answer(model: str, prompt: str, max_tokens: int | None, u: float) -> str:
    start = _norm(prompt)[:60]
    head = f'[sandbox/{model}] Simulated answer to: "{start}{"..." if len(_norm(prompt)) > 60 else ""}".'
    target_tokens = 24 + int(u * 48)
    pieces = [head]
    i = int(u * 1000)
    while estimate_tokens(" ".join(pieces)) < target_tokens:
        pieces.append(_FILLER[i % len(_FILLER)])
        i += 1
    return " ".join(pieces)


@dataclass(frozen=True)
class SandboxAnswer:
    """One simulated answer: ``text``; ``finish`` ``"stop"`` or ``"length"`` (cut at max_tokens); ``kind``
    ``"echo"``, ``"judge"``, ``"correct"``, ``"wrong"`` (a bundled item) or ``"generic"`` (unknown prompt), prefixed
    ``json_`` / ``tool_`` by :mod:`llmlab.sandbox.structured`; ``tool_calls``: ``({"id", "name", "arguments"},
    ...)`` when the answer calls tools."""

    text: str
    finish: Literal["stop", "length"]
    kind: str
    tool_calls: tuple[dict[str, Any], ...] = ()


