"""``{var}`` templates: placeholders, single-pass rendering, and field values as text."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import pandas as pd

from llmlab.errors import PromptSetError

__all__ = [
    "render",
    "template_variables",
]

_PLACEHOLDER_RE = re.compile(r"(?<!\{)\{([^\W\d]\w*)\}(?!\})")


# --------------------------------------------------------------------------------------------------------
# templates


def template_variables(template: str) -> list[str]:
    """Names in ``template`` that look like placeholders: an identifier inside single braces (``{doc}``).

    Doubled braces (``{{doc}}``), braces with spaces (``{ x }``), digits (``{0}``) and JSON (``{"a": 1}``) are
    not placeholders. Returns the names in order of first appearance, without duplicates.
    """
    seen: dict[str, None] = {}
    for match in _PLACEHOLDER_RE.finditer(template):
        seen.setdefault(match.group(1), None)
    return list(seen)


def render(template: str, variables: Mapping[str, Any], *, strict: bool = False) -> str:
    """Fill ``{name}`` placeholders in ``template`` from ``variables`` in a single pass.

    Only placeholders that name a key of ``variables`` are replaced; every other brace is kept exactly as
    written: code, JSON (``{"a": 1}``), LaTeX (``\\frac{a}{b}`` when ``a``/``b`` are not variables),
    ``{ x }``, ``{0}``, and doubled braces ``{{`` / ``}}`` (this is not ``str.format``). Substituted values are
    not rendered again, so braces inside values are safe. Values are converted with ``str`` (dicts and
    lists as JSON; ``None`` as the empty string).

    Args:
        template: the text with ``{name}`` placeholders.
        variables: values by name.
        strict: if true, a placeholder that names no variable is an error instead of being kept.

    Returns:
        The rendered text.

    Raises:
        PromptSetError: ``strict`` is true and a placeholder names no variable (the message names it).
    """
    if strict:
        missing = [name for name in template_variables(template) if name not in variables]
        if missing:
            raise PromptSetError(
                f"template variable {missing[0]!r} is not given; available: {', '.join(map(str, variables)) or '(none)'}"
            )

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            return match.group(0)
        return _to_text(variables[name]) or ""

    return _PLACEHOLDER_RE.sub(substitute, template)



def _to_text(value: Any) -> str | None:
    """A field value as text: None/NaN/NA -> None; dict/list -> JSON; bool -> "true"/"false"; else str()."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, ensure_ascii=False)
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if hasattr(value, "item") and not isinstance(value, (int, float)):
        try:
            value = value.item()  # numpy scalar -> python scalar
        except (TypeError, ValueError):
            pass
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))  # 34.0 (an int column with gaps, read as float) -> "34"
    return str(value)


def _optional_text(value: Any) -> str | None:
    text = _to_text(value)
    if text is None:
        return None
    text = text.strip()
    return text or None


