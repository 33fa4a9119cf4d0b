"""``load_prompts``: any prompt source to a validated :class:`~llmlab.prompts.sets.PromptSet`."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from llmlab.errors import PromptSetError
from llmlab.prompts.conversations import (
    _missing,
    last_user_text,
    normalize_response_format,
    normalize_tool_choice,
    normalize_tool_results,
    normalize_tools,
    parse_messages,
)
from llmlab.prompts.conversations import system_text as conv_system_text
from llmlab.prompts.readers import (
    _bundled_path,
    _Rows,
    _rows_from_frame,
    _rows_from_list,
    _rows_from_path,
    _rows_from_prompt_set,
    bundled_prompt_sets,
)
from llmlab.prompts.sets import (
    CATEGORY_COLUMN,
    ID_COLUMNS,
    PROMPT_COLUMNS,
    REFERENCE_COLUMNS,
    SCORER_COLUMN,
    STRUCTURED_FIELDS,
    SUPPORTED_EXTENSIONS,
    SYSTEM_COLUMN,
    Prompt,
    PromptSet,
)
from llmlab.prompts.templates import _optional_text, _to_text, render, template_variables
from llmlab.settings import datasets_dir

__all__ = [
    "load_prompts",
]

logger = logging.getLogger(__name__)

MESSAGES_COLUMN = "messages"


def _base_dir(source: str) -> Path | None:
    """Where relative image paths of a source are looked up: the prompt file's folder (None: the working dir)."""
    if source.startswith("bundled:"):
        return datasets_dir()
    path = Path(source)
    return path.parent if path.suffix.lower() in SUPPORTED_EXTENSIONS and path.is_file() else None

# --------------------------------------------------------------------------------------------------------
# load_prompts


def load_prompts(
    source: str | os.PathLike[str] | pd.DataFrame | Sequence[str] | Sequence[Mapping[str, Any]] | PromptSet,
    *,
    template: str | None = None,
    prompt_column: str | None = None,
    category_column: str | None = None,
    reference_column: str | None = None,
    scorer_column: str | None = None,
    id_column: str | None = None,
    system: str | None = None,
    name: str | None = None,
    encoding: str | None = None,
    limit: int | None = None,
) -> PromptSet:
    """Load a prompt set.

    Args:
        source: one of
            - a bundled set name (see :func:`bundled_prompt_sets`, e.g. ``"quickstart"``);
            - a path to a ``.csv`` (header row), ``.jsonl`` (one object per line) or ``.json`` (a list of
              objects) file;
            - a pandas DataFrame (one row per prompt);
            - a list of prompt strings, or of dicts (one per prompt, like JSONL rows);
            - a PromptSet: returned as is, or re-rendered when ``template``/``system`` is given (from each
              prompt's original fields, ``vars``).
        template: render each prompt from this template and all the row's fields (``{column}``
            placeholders, see :func:`render`) instead of reading a prompt column.
        prompt_column: column holding the prompt text (default: first of ``prompt, question, input, text``).
        category_column: column holding the category (default ``category`` if present, else every prompt
            is in category ``"default"``).
        reference_column: column holding the reference answer (default: first of
            ``reference, answer, expected, target`` present). Non-string values (numbers, JSON objects) are
            stored as text (objects as JSON).
        scorer_column: column holding the scorer spec (default ``scorer`` if present).
        id_column: column holding the source's own id, kept as ``source_id`` (default ``id`` or ``source_id``).
        system: system prompt for every prompt (may use ``{column}`` placeholders, rendered per row);
            default: a ``system`` column if present, else none.
        name: the set's name (default: bundled name, file stem, ``"dataframe"`` or ``"prompts"``).
        encoding: the text encoding of a CSV / JSONL / JSON file (default UTF-8, a byte-order mark accepted); a file
            that does not decode raises PromptSetError naming the file, line and column.
        limit: read only the first ``limit`` rows (a CSV / JSONL file is read line by line and no further: a limit
            of 5 on a million-row file reads 5 rows); None reads all.

    Returns:
        A :class:`PromptSet` in source order. Rows repeating an earlier prompt (same text and system) with
        the same reference are dropped with a warning in the log.

    Raises:
        PromptSetError: a missing file (its path), an unknown bundled name (the known ones listed), an
            unsupported extension, invalid JSON on a line (``file:line`` and the JSON error), a line that
            is not an object, no prompt column (the columns present listed), an explicitly named column
            that does not exist, a template variable that is not a column of a row (row and columns named),
            an empty prompt text (row and column named), an empty set, or the same prompt text twice with
            different references (both rows named).
    """
    if isinstance(source, PromptSet):
        if template is None and system is None and all(
            arg is None for arg in (prompt_column, category_column, reference_column, scorer_column, id_column, name)
        ):
            return source
        rows = _rows_from_prompt_set(source, name)
        if template is None and prompt_column is None:
            # no new template: re-use each prompt's rendered text
            for (_, row), prompt in zip(rows.rows, source.prompts, strict=True):
                row["__llmlab_text__"] = prompt.text
            prompt_column = "__llmlab_text__"
            rows.columns.append(prompt_column)
    elif isinstance(source, pd.DataFrame):
        rows = _rows_from_frame(source if limit is None else source.head(limit), name)
    elif isinstance(source, (str, os.PathLike)):
        rows = _rows_from_name_or_path(source, name, encoding, limit)
    elif isinstance(source, Sequence) and not isinstance(source, (bytes, bytearray)):
        rows = _rows_from_list(source if limit is None else source[:limit], name)
    else:
        raise PromptSetError(
            f"cannot load prompts from {type(source).__name__}: pass a bundled name, a .csv/.jsonl/.json path, "
            "a DataFrame, a list of strings or dicts, or a PromptSet"
        )
    return _build(
        rows,
        template=template,
        prompt_column=prompt_column,
        category_column=category_column,
        reference_column=reference_column,
        scorer_column=scorer_column,
        id_column=id_column,
        system=system,
    )


def _rows_from_name_or_path(source: str | os.PathLike[str], name: str | None, encoding: str | None = None,
                            limit: int | None = None) -> _Rows:
    text = os.fspath(source)
    path = Path(text).expanduser()
    looks_like_name = (
        isinstance(source, str) and "/" not in text and os.sep not in text and path.suffix.lower() not in SUPPORTED_EXTENSIONS
    )
    if looks_like_name:
        bundled = _bundled_path(text)
        if bundled is not None:
            return _rows_from_path(bundled, name or text, f"bundled:{text}", encoding, limit)
        if not path.exists():
            known = bundled_prompt_sets()
            raise PromptSetError(
                f"unknown bundled prompt set {text!r}; known: {', '.join(known) or '(none)'} "
                f"(in {datasets_dir()}); or pass a .csv/.jsonl/.json path, or a list of prompt strings"
            )
    return _rows_from_path(path, name, str(path), encoding, limit)


def _pick(columns: list[str], explicit: str | None, defaults: Sequence[str], what: str, where: str) -> str | None:
    if explicit is not None:
        if explicit not in columns:
            raise PromptSetError(
                f"{where}: {what} column {explicit!r} not found; columns are: {', '.join(columns) or '(none)'}"
            )
        return explicit
    for candidate in defaults:
        if candidate in columns:
            return candidate
    return None


def _build(
    rows: _Rows,
    *,
    template: str | None,
    prompt_column: str | None,
    category_column: str | None,
    reference_column: str | None,
    scorer_column: str | None,
    id_column: str | None,
    system: str | None,
    labels_out: list[str] | None = None,
) -> PromptSet:
    columns, where = rows.columns, rows.where
    if not rows.rows:
        raise PromptSetError(f"prompt set {rows.name!r} from {where} is empty (no rows)")
    if template is not None:
        if prompt_column is not None:
            raise PromptSetError("give either template= or prompt_column=, not both")
        if not isinstance(template, str) or not template.strip():
            raise PromptSetError("template is empty")
        text_column = None
    else:
        text_column = _pick(columns, prompt_column, PROMPT_COLUMNS, "prompt", where)
        if text_column is None and MESSAGES_COLUMN not in columns:
            raise PromptSetError(
                f"{where}: no prompt column: expected one of {', '.join(PROMPT_COLUMNS)}; "
                f"columns are: {', '.join(columns) or '(none)'} (pass prompt_column= or template=)"
            )
    category_col = _pick(columns, category_column, (CATEGORY_COLUMN,), "category", where)
    reference_col = _pick(columns, reference_column, REFERENCE_COLUMNS, "reference", where)
    scorer_col = _pick(columns, scorer_column, (SCORER_COLUMN,), "scorer", where)
    id_col = _pick(columns, id_column, ID_COLUMNS, "id", where)
    system_col = SYSTEM_COLUMN if system is None and SYSTEM_COLUMN in columns else None
    needed = template_variables(template) if template is not None else []

    prompts: list[Prompt] = []
    first_seen: dict[str, tuple[str, Prompt]] = {}
    ids_seen: dict[str, tuple[str, Prompt]] = {}
    base_dir = _base_dir(rows.source)
    for label, row in rows.rows:
        messages = None
        if not _missing(row.get(MESSAGES_COLUMN)):
            fields = {k: v for k, v in row.items() if k not in STRUCTURED_FIELDS}
            messages = list(parse_messages(row[MESSAGES_COLUMN], label, fields, base_dir))
            text = last_user_text(messages) or "(image)"
        elif template is not None:
            for variable in needed:
                if variable not in row:
                    raise PromptSetError(
                        f"{label}: template variable {variable!r} is not a column; "
                        f"columns are: {', '.join(map(str, row)) or '(none)'}"
                    )
                if _to_text(row[variable]) is None:
                    raise PromptSetError(f"{label}: template variable {variable!r} is empty (null) in this row")
            text = render(template, row)
            if not text.strip():
                raise PromptSetError(f"{label}: the template renders to empty prompt text")
        else:
            if text_column is None or text_column not in row:
                if text_column is None:
                    raise PromptSetError(f"{label}: no prompt text: this row has neither messages nor a prompt column "
                                         f"(its fields: {', '.join(map(str, row)) or '(none)'})")
                raise PromptSetError(
                    f"{label}: no prompt text: this row has no {text_column!r} field "
                    f"(its fields: {', '.join(map(str, row)) or '(none)'})"
                )
            text = _to_text(row.get(text_column))
            if text is None or not text.strip():
                raise PromptSetError(f"{label}: empty prompt text in column {text_column!r}")
        if system is not None:
            system_text: str | None = render(system, row)
        elif system_col is not None:
            system_text = _optional_text(row.get(system_col))
        else:
            system_text = None
        if messages is not None:
            if system_text and not any(m["role"] == "system" for m in messages):
                messages.insert(0, {"role": "system", "content": system_text})
            system_text = conv_system_text(messages)
        response_format = normalize_response_format(row.get("response_format"), label)
        tools = normalize_tools(row.get("tools"), label)
        tool_choice = normalize_tool_choice(row.get("tool_choice"), tools, label)
        tool_results = normalize_tool_results(row.get("tool_results"), label)
        visible_vars = {k: v for k, v in row.items() if k != "__llmlab_text__"}
        prompt = Prompt.create(
            text,
            category=_optional_text(row.get(category_col)) if category_col else None,
            reference=_optional_text(row.get(reference_col)) if reference_col else None,
            scorer=_default_scorer(_optional_text(row.get(scorer_col)) if scorer_col else None,
                                   _optional_text(row.get(reference_col)) if reference_col else None,
                                   response_format or tools),
            system=system_text or None,
            vars=visible_vars,
            source_id=_optional_text(row.get(id_col)) if id_col else None,
            messages=messages,
            response_format=response_format,
            tools=tools,
            tool_choice=tool_choice,
            tool_results=tool_results,
        )
        if prompt.source_id is not None:
            same_id = ids_seen.get(prompt.source_id)
            if same_id is not None and same_id[1].prompt_id != prompt.prompt_id:
                raise PromptSetError(f"{same_id[0]} and {label} have the same id {prompt.source_id!r} but different "
                                     "prompts (ids must name one prompt)")
            ids_seen.setdefault(prompt.source_id, (label, prompt))
        earlier = first_seen.get(prompt.prompt_id)
        if earlier is not None:
            earlier_label, earlier_prompt = earlier
            if earlier_prompt.reference != prompt.reference:
                raise PromptSetError(
                    f"{earlier_label} and {label} have the same prompt text with different references "
                    f"({earlier_prompt.reference!r} vs {prompt.reference!r})"
                )
            logger.warning("%s repeats the prompt of %s; keeping the first", label, earlier_label)
            continue
        first_seen[prompt.prompt_id] = (label, prompt)
        prompts.append(prompt)
        if labels_out is not None:
            labels_out.append(label)
    return PromptSet(rows.name, tuple(prompts), rows.source)


def _default_scorer(scorer: str | None, reference: str | None, structured: Any) -> str | None:
    """A plain row with a reference and no scorer is scored with ``auto`` (numeric, choice or contains: see
    :mod:`llmlab.scoring.checks`), so a DataFrame with a ``reference`` column gets scores without more setup."""
    if scorer or not reference or structured:
        return scorer
    return "auto"
