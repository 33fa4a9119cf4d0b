"""Prompts and prompt sets: the immutable :class:`Prompt` and :class:`PromptSet`, and content-hash ids."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from llmlab.errors import PromptSetError

__all__ = [
    "Prompt",
    "PromptSet",
    "prompt_id_for",
]

PROMPT_COLUMNS = ("prompt", "question", "input", "text")
"""Columns tried, in order, for the prompt text when neither ``prompt_column`` nor ``template`` is given."""
REFERENCE_COLUMNS = ("reference", "answer", "expected", "target")
"""Columns tried, in order, for the reference answer."""
CATEGORY_COLUMN = "category"
SCORER_COLUMN = "scorer"
ID_COLUMNS = ("id", "source_id")
SYSTEM_COLUMN = "system"
DEFAULT_CATEGORY = "default"
SUPPORTED_EXTENSIONS = (".csv", ".jsonl", ".ndjson", ".json")
STRUCTURED_FIELDS = ("messages", "response_format", "tools", "tool_choice", "tool_results")
"""Row fields of conversations, structured output and tools (see :mod:`llmlab.prompts.conversations`)."""

# --------------------------------------------------------------------------------------------------------
# prompts and prompt sets


def prompt_id_for(text: str, system: str | None = None) -> str:
    """Content-hash id of a prompt: the first 16 hex digits of SHA-256 over the UTF-8 text, or over
    ``system + "\\x00" + text`` when there is a system prompt. Stable across runs, files and processes."""
    payload = text if system is None else f"{system}\x00{text}"
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Prompt:
    """One prompt of a prompt set.

    Attributes:
        prompt_id: content hash of ``text`` and ``system`` (see :func:`prompt_id_for`).
        text: the rendered prompt text sent as the user message.
        category: task category used to group results and route (``"default"`` when the source has none).
        reference: the reference answer, or ``None``.
        scorer: scorer spec (``"exact"``, ``"numeric:0.01"``, ... see :mod:`llmlab.scoring`), or ``None``.
        system: system prompt, or ``None``.
        vars: the source row's original fields (values as read: strings from CSV, JSON values from JSON).
        source_id: the source's own id column value, or ``None``.
        messages: the conversation (OpenAI chat format, stored form: see :mod:`llmlab.prompts.conversations`),
            or ``None`` for a one-turn prompt (``text`` and ``system`` then make the messages).
        response_format: OpenAI ``response_format`` dict (JSON Schema output), or ``None``.
        tools: OpenAI function tools, or ``None``; tool_choice: ``"auto"`` / ``"none"`` / ``"required"`` / a dict.
        tool_results: scripted results ``{function name: result}`` for the multi-step mode, or ``None``.
    """

    prompt_id: str
    text: str
    category: str = DEFAULT_CATEGORY
    reference: str | None = None
    scorer: str | None = None
    system: str | None = None
    vars: Mapping[str, Any] = field(default_factory=dict, hash=False, repr=False)
    source_id: str | None = None
    messages: tuple[dict[str, Any], ...] | None = field(default=None, hash=False, repr=False)
    response_format: dict[str, Any] | None = field(default=None, hash=False, repr=False)
    tools: tuple[dict[str, Any], ...] | None = field(default=None, hash=False, repr=False)
    tool_choice: Any = field(default=None, hash=False, repr=False)
    tool_results: dict[str, Any] | None = field(default=None, hash=False, repr=False)

    @property
    def structured(self) -> bool:
        """True when the prompt carries a conversation, a response format or tools."""
        return any(v is not None for v in (self.messages, self.response_format, self.tools))

    @classmethod
    def create(
        cls,
        text: str,
        *,
        category: str | None = None,
        reference: str | None = None,
        scorer: str | None = None,
        system: str | None = None,
        vars: Mapping[str, Any] | None = None,
        source_id: str | None = None,
        messages: Any = None,
        response_format: dict[str, Any] | None = None,
        tools: Any = None,
        tool_choice: Any = None,
        tool_results: dict[str, Any] | None = None,
    ) -> Prompt:
        """Build a prompt, computing its content-hash id (over the conversation, response format and tools too,
        when it has them). Raises PromptSetError for empty text."""
        if not isinstance(text, str) or not text.strip():
            raise PromptSetError("empty prompt text")
        messages = tuple(messages) if messages is not None else None
        tools = tuple(tools) if tools is not None else None
        if messages is None and response_format is None and tools is None:
            pid = prompt_id_for(text, system)
        else:
            from llmlab.prompts.conversations import structured_prompt_id

            pid = structured_prompt_id(text, system, messages, response_format, tools, tool_choice)
        return cls(
            prompt_id=pid,
            text=text,
            category=category or DEFAULT_CATEGORY,
            reference=reference,
            scorer=scorer,
            system=system,
            vars=dict(vars or {}),
            source_id=source_id,
            messages=messages,
            response_format=response_format,
            tools=tools,
            tool_choice=tool_choice,
            tool_results=tool_results,
        )


@dataclass(frozen=True)
class PromptSet:
    """An immutable, ordered set of prompts.

    Attributes:
        name: a short name (bundled set name, file stem, ``"dataframe"``, ``"prompts"``).
        prompts: the prompts, in source order, ids unique.
        source: where it came from: a file path, ``"bundled:<name>"``, ``"dataframe"`` or ``"list"``.
    """

    name: str
    prompts: tuple[Prompt, ...]
    source: str = "list"

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompts", tuple(self.prompts))

    def __len__(self) -> int:
        return len(self.prompts)

    def __iter__(self) -> Iterator[Prompt]:
        return iter(self.prompts)

    def __getitem__(self, index: int) -> Prompt:
        return self.prompts[index]

    def __repr__(self) -> str:
        return (
            f"PromptSet(name={self.name!r}, prompts={len(self)}, categories={self.categories!r}, "
            f"source={self.source!r})"
        )

    @property
    def categories(self) -> list[str]:
        """The distinct categories, sorted."""
        return sorted({p.category for p in self.prompts})

    def by_id(self, prompt_id: str) -> Prompt:
        """The prompt with this content-hash id. Raises KeyError when there is none."""
        for prompt in self.prompts:
            if prompt.prompt_id == prompt_id:
                return prompt
        raise KeyError(prompt_id)

    def to_frame(self) -> pd.DataFrame:
        """One row per prompt, in order, with columns ``prompt_id, category, prompt, reference, scorer,
        system, source_id`` (strings; missing values are None), plus ``messages, response_format, tools,
        tool_choice, tool_results`` (JSON text) when any prompt has them. :func:`load_prompts` accepts it back."""
        columns = ["prompt_id", "category", "prompt", "reference", "scorer", "system", "source_id"]
        extra = [c for c in STRUCTURED_FIELDS if any(getattr(p, c) is not None for p in self.prompts)]
        rows = []
        for p in self.prompts:
            row = {"prompt_id": p.prompt_id, "category": p.category, "prompt": p.text, "reference": p.reference,
                   "scorer": p.scorer, "system": p.system, "source_id": p.source_id}
            for c in extra:
                value = getattr(p, c)
                row[c] = None if value is None else json.dumps(value, ensure_ascii=False)
            rows.append(row)
        return pd.DataFrame(rows, columns=columns + extra, dtype=object)

    def filter(
        self,
        categories: str | Iterable[str] | None = None,
        limit: int | None = None,
        per_category: int | None = None,
    ) -> PromptSet:
        """A new set keeping source order: only ``categories`` (a name or names), at most ``per_category``
        prompts of each category (the first ones), then at most ``limit`` prompts in all.

        Raises:
            PromptSetError: an unknown category (the known ones are listed), a negative limit, or an empty result.
        """
        prompts = list(self.prompts)
        if categories is not None:
            wanted = {categories} if isinstance(categories, str) else set(categories)
            unknown = sorted(wanted - set(self.categories))
            if unknown:
                raise PromptSetError(
                    f"unknown categor{'y' if len(unknown) == 1 else 'ies'} {', '.join(map(repr, unknown))} "
                    f"in prompt set {self.name!r}; categories are: {', '.join(self.categories)}"
                )
            prompts = [p for p in prompts if p.category in wanted]
        if per_category is not None:
            _check_count("per_category", per_category)
            counts: dict[str, int] = {}
            kept = []
            for p in prompts:
                if counts.get(p.category, 0) < per_category:
                    counts[p.category] = counts.get(p.category, 0) + 1
                    kept.append(p)
            prompts = kept
        if limit is not None:
            _check_count("limit", limit)
            prompts = prompts[:limit]
        if not prompts:
            raise PromptSetError(f"filter left prompt set {self.name!r} empty")
        return PromptSet(self.name, tuple(prompts), self.source)

    def sample(self, n: int, seed: int = 0, *, by_category: bool = False) -> PromptSet:
        """A new set of ``n`` prompts drawn at random without replacement (all of them when ``n >= len``),
        kept in source order. The same ``seed`` gives the same sample. ``by_category=True`` spreads the sample
        over the categories: each gets ``n // k`` (k categories; the remainder to the first categories in
        order), fewer only when a category has fewer prompts, the spare places going to the others.

        Raises:
            PromptSetError: ``n`` is not a positive integer.
        """
        _check_count("n", n)
        if n == 0:
            raise PromptSetError("sample size n must be at least 1")
        rng = random.Random(seed)
        if by_category and n < len(self.prompts):
            groups: dict[str, list[int]] = {}
            for i, p in enumerate(self.prompts):
                groups.setdefault(p.category, []).append(i)
            for members in groups.values():
                rng.shuffle(members)
            picked: list[int] = []
            while len(picked) < n:  # round-robin over categories, in order: as even as the sizes allow
                for members in groups.values():
                    if members and len(picked) < n:
                        picked.append(members.pop())
            return PromptSet(self.name, tuple(self.prompts[i] for i in sorted(picked)), self.source)
        indices = sorted(rng.sample(range(len(self.prompts)), min(n, len(self.prompts))))
        return PromptSet(self.name, tuple(self.prompts[i] for i in indices), self.source)


def _check_count(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PromptSetError(f"{name} must be a non-negative integer, got {value!r}")

