"""Prompt sets: loading, validation, ``{var}`` templates, categories, references and content-hash ids.

A :class:`PromptSet` is an immutable, ordered collection of :class:`Prompt` items. Build one with
:func:`load_prompts` from a bundled set name (``"quickstart"``), a ``.csv`` / ``.jsonl`` / ``.json`` file,
a pandas DataFrame, a list of strings or dicts, or another PromptSet::

    ps = load_prompts("quickstart")                                   # bundled, 6 categories
    ps = load_prompts("my.csv", template="Summarize:\\n{doc}")          # rendered per row
    ps = load_prompts(["What is 2+2?", "Name a prime above 100."])   # quick ad-hoc set

Every prompt's id is a content hash (:func:`prompt_id_for`), so the same text gets the same id in every
run, file and process: results recorded under it can be joined across runs.

Errors are :class:`~llmlab.errors.PromptSetError` (a ``ValueError``) whose message names the file, the line
or row, and the column or template variable at fault.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import random
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from llmlab.errors import PromptSetError
from llmlab.settings import datasets_dir

__all__ = [
    "Prompt",
    "PromptSet",
    "bundled_prompt_sets",
    "datasets_dir",
    "load_prompts",
    "prompt_id_for",
    "render",
    "template_variables",
]

logger = logging.getLogger(__name__)

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
    """

    prompt_id: str
    text: str
    category: str = DEFAULT_CATEGORY
    reference: str | None = None
    scorer: str | None = None
    system: str | None = None
    vars: Mapping[str, Any] = field(default_factory=dict, hash=False, repr=False)
    source_id: str | None = None

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
    ) -> Prompt:
        """Build a prompt, computing its content-hash id. Raises PromptSetError for empty text."""
        if not isinstance(text, str) or not text.strip():
            raise PromptSetError("empty prompt text")
        return cls(
            prompt_id=prompt_id_for(text, system),
            text=text,
            category=category or DEFAULT_CATEGORY,
            reference=reference,
            scorer=scorer,
            system=system,
            vars=dict(vars or {}),
            source_id=source_id,
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
        system, source_id`` (strings; missing values are None). :func:`load_prompts` accepts it back."""
        return pd.DataFrame(
            [
                {
                    "prompt_id": p.prompt_id,
                    "category": p.category,
                    "prompt": p.text,
                    "reference": p.reference,
                    "scorer": p.scorer,
                    "system": p.system,
                    "source_id": p.source_id,
                }
                for p in self.prompts
            ],
            columns=["prompt_id", "category", "prompt", "reference", "scorer", "system", "source_id"],
            dtype=object,
        )

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


# --------------------------------------------------------------------------------------------------------
# bundled sets


def bundled_prompt_sets() -> list[str]:
    """Names of the bundled prompt sets (file stems of .jsonl/.csv/.json files in :func:`datasets_dir`), sorted."""
    directory = datasets_dir()
    if not directory.is_dir():
        return []
    return sorted(
        {p.stem for p in directory.iterdir() if p.is_file() and p.suffix.lower() in SUPPORTED_EXTENSIONS}
    )


def _bundled_path(name: str) -> Path | None:
    directory = datasets_dir()
    for ext in (".jsonl", ".ndjson", ".csv", ".json"):
        candidate = directory / f"{name}{ext}"
        if candidate.is_file():
            return candidate
    return None


# --------------------------------------------------------------------------------------------------------
# readers: each yields (location label, row dict)


@dataclass
class _Rows:
    rows: list[tuple[str, dict[str, Any]]]
    columns: list[str]
    name: str
    source: str
    where: str  # how to name the source in messages


def _columns_of(rows: Sequence[tuple[str, Mapping[str, Any]]]) -> list[str]:
    seen: dict[str, None] = {}
    for _, row in rows:
        for key in row:
            seen.setdefault(str(key), None)
    return list(seen)


def _decoded(path: Path, encoding: str | None) -> str:
    """The file's text in ``encoding`` (default UTF-8, a byte-order mark accepted). Raises PromptSetError naming the
    file, the line and the column of the first byte that does not decode, and the encoding it looks like."""
    raw = path.read_bytes()
    enc = encoding or "utf-8-sig"
    try:
        return raw.decode(enc)
    except LookupError:
        raise PromptSetError(f"{path}: unknown encoding {enc!r}") from None
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        guess = "Latin-1 / Windows-1252" if encoding is None else "another encoding"
        raise PromptSetError(
            f"{path}:{line}: not {enc.replace('-sig', '')} text (byte 0x{raw[exc.start]:02x} at column {column}); "
            f"it looks like {guess}: pass encoding='latin-1' (or the file's encoding), or re-save it as UTF-8"
        ) from None


def _read_jsonl(path: Path, encoding: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    rows = []
    with io.StringIO(_decoded(path, encoding)) as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PromptSetError(f"{path}:{lineno}: invalid JSON: {exc.msg} (column {exc.colno})") from None
            if not isinstance(value, dict):
                raise PromptSetError(f"{path}:{lineno}: expected a JSON object, got {_json_type(value)}")
            rows.append((f"{path}:{lineno}", value))
    return rows


def _read_json(path: Path, encoding: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    try:
        value = json.loads(_decoded(path, encoding))
    except json.JSONDecodeError as exc:
        raise PromptSetError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg} (column {exc.colno})") from None
    if isinstance(value, dict) and isinstance(value.get("prompts"), list):
        value = value["prompts"]
    if not isinstance(value, list):
        raise PromptSetError(f"{path}: expected a JSON list of objects, got {_json_type(value)}")
    rows = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise PromptSetError(f"{path}: item {index}: expected a JSON object, got {_json_type(item)}")
        rows.append((f"{path}: item {index}", item))
    return rows


def _read_csv(path: Path, encoding: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    rows = []
    with io.StringIO(_decoded(path, encoding), newline="") as handle:
        reader = csv.reader(handle, strict=True)  # strict: an unterminated quote is an error, not one huge field
        try:
            header = next(reader)
        except StopIteration:
            raise PromptSetError(f"{path}: empty CSV file (no header row)") from None
        except csv.Error as exc:
            raise PromptSetError(f"{path}:1: bad CSV: {exc}") from None
        header = [h.strip() for h in header]
        if not any(header):
            raise PromptSetError(f"{path}:1: empty CSV header")
        duplicates = sorted({h for h in header if header.count(h) > 1})
        if duplicates:
            raise PromptSetError(f"{path}:1: duplicate column name(s): {', '.join(duplicates)}")
        start = reader.line_num + 1
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                if "unexpected end of data" in str(exc):
                    raise PromptSetError(f"{path}:{start}: a quoted field that starts in this row is never closed "
                                         "(an unterminated \" quote: the rest of the file would become one field)"
                                         ) from None
                raise PromptSetError(f"{path}:{start}: bad CSV: {exc}") from None
            label = f"{path}:{start}"
            start = reader.line_num + 1
            if not fields or not any(f.strip() for f in fields):
                continue
            if len(fields) > len(header):
                raise PromptSetError(
                    f"{label}: {len(fields)} fields but the header has {len(header)} columns ({', '.join(header)})"
                )
            padded = list(fields) + [None] * (len(header) - len(fields))  # short rows: missing fields are None
            row = {h: v for h, v in zip(header, padded, strict=True) if h}
            rows.append((label, row))
    return rows


def _json_type(value: Any) -> str:
    return {list: "a list", dict: "an object", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__
    )


def _rows_from_path(path: Path, name: str | None, source: str, encoding: str | None = None) -> _Rows:
    if not path.exists():
        raise PromptSetError(f"prompt file not found: {path}")
    if not path.is_file():
        raise PromptSetError(f"not a file: {path}")
    ext = path.suffix.lower()
    if ext in (".jsonl", ".ndjson"):
        rows = _read_jsonl(path, encoding)
    elif ext == ".json":
        rows = _read_json(path, encoding)
    elif ext == ".csv":
        rows = _read_csv(path, encoding)
    else:
        raise PromptSetError(
            f"unsupported prompt file extension {path.suffix!r} ({path}); supported: {', '.join(SUPPORTED_EXTENSIONS)}"
        )
    return _Rows(rows, _columns_of(rows), name or path.stem, source, str(path))


def _rows_from_frame(frame: pd.DataFrame, name: str | None) -> _Rows:
    columns = [str(c) for c in frame.columns]
    if len(set(columns)) != len(columns):
        raise PromptSetError(f"DataFrame has duplicate column names: {', '.join(columns)}")
    rows = []
    for label, record in zip(frame.index, frame.to_dict("records"), strict=True):
        rows.append((f"row {label}", {str(k): v for k, v in record.items()}))
    return _Rows(rows, columns, name or "dataframe", "dataframe", "DataFrame")


def _rows_from_list(items: Sequence[Any], name: str | None) -> _Rows:
    rows: list[tuple[str, dict[str, Any]]] = []
    for index, item in enumerate(items):
        if isinstance(item, str):
            rows.append((f"item {index}", {"prompt": item}))
        elif isinstance(item, Mapping):
            rows.append((f"item {index}", {str(k): v for k, v in item.items()}))
        else:
            raise PromptSetError(f"item {index}: expected a string or a dict, got {type(item).__name__}")
    return _Rows(rows, _columns_of(rows), name or "prompts", "list", "list")


def _rows_from_prompt_set(prompt_set: PromptSet, name: str | None) -> _Rows:
    rows = []
    for index, p in enumerate(prompt_set.prompts):
        row = dict(p.vars)
        # keep what the prompt already knows when its original row did not carry it
        for key, value in (
            (CATEGORY_COLUMN, p.category),
            ("reference", p.reference),
            (SCORER_COLUMN, p.scorer),
            ("id", p.source_id),
            (SYSTEM_COLUMN, p.system),
        ):
            if value is not None and not any(k in row for k in _aliases(key)):
                row[key] = value
        rows.append((f"prompt {index} ({p.prompt_id})", row))
    return _Rows(rows, _columns_of(rows), name or prompt_set.name, prompt_set.source, f"prompt set {prompt_set.name!r}")


def _aliases(key: str) -> tuple[str, ...]:
    return {"reference": REFERENCE_COLUMNS, "id": ID_COLUMNS}.get(key, (key,))


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
        rows = _rows_from_frame(source, name)
    elif isinstance(source, (str, os.PathLike)):
        rows = _rows_from_name_or_path(source, name, encoding)
    elif isinstance(source, Sequence) and not isinstance(source, (bytes, bytearray)):
        rows = _rows_from_list(source, name)
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


def _rows_from_name_or_path(source: str | os.PathLike[str], name: str | None, encoding: str | None = None) -> _Rows:
    text = os.fspath(source)
    path = Path(text).expanduser()
    looks_like_name = (
        isinstance(source, str) and "/" not in text and os.sep not in text and path.suffix.lower() not in SUPPORTED_EXTENSIONS
    )
    if looks_like_name:
        bundled = _bundled_path(text)
        if bundled is not None:
            return _rows_from_path(bundled, name or text, f"bundled:{text}", encoding)
        if not path.exists():
            known = bundled_prompt_sets()
            raise PromptSetError(
                f"unknown bundled prompt set {text!r}; known: {', '.join(known) or '(none)'} "
                f"(in {datasets_dir()}); or pass a .csv/.jsonl/.json path, or a list of prompt strings"
            )
    return _rows_from_path(path, name, str(path), encoding)


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
        if text_column is None:
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
    for label, row in rows.rows:
        if template is not None:
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
            assert text_column is not None
            if text_column not in row:
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
        visible_vars = {k: v for k, v in row.items() if k != "__llmlab_text__"}
        prompt = Prompt.create(
            text,
            category=_optional_text(row.get(category_col)) if category_col else None,
            reference=_optional_text(row.get(reference_col)) if reference_col else None,
            scorer=_optional_text(row.get(scorer_col)) if scorer_col else None,
            system=system_text or None,
            vars=visible_vars,
            source_id=_optional_text(row.get(id_col)) if id_col else None,
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
    return PromptSet(rows.name, tuple(prompts), rows.source)
