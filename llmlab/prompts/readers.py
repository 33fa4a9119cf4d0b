"""Readers of prompt sources (bundled names, CSV / JSONL / JSON files, DataFrames, lists, prompt sets): each gives
``(location label, row dict)`` pairs, the label naming the file and line or the row for error messages."""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import json
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from llmlab.errors import PromptSetError
from llmlab.prompts.sets import (
    CATEGORY_COLUMN,
    ID_COLUMNS,
    REFERENCE_COLUMNS,
    SCORER_COLUMN,
    SUPPORTED_EXTENSIONS,
    SYSTEM_COLUMN,
    PromptSet,
)
from llmlab.settings import datasets_dir

__all__ = [
    "bundled_prompt_sets",
]

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


def _lines(path: Path, encoding: str | None) -> Generator[tuple[int, str], None, None]:
    """The file's lines as ``(line number, text)``, decoded one line at a time (memory: one line, not the file),
    with the same errors as :func:`_decoded`. Encodings whose newline is not the byte ``\\n`` (UTF-16, UTF-32) are
    decoded whole."""
    enc = encoding or "utf-8-sig"
    try:
        name = codecs.lookup(enc).name
    except LookupError:
        raise PromptSetError(f"{path}: unknown encoding {enc!r}") from None
    if name.startswith(("utf-16", "utf-32")):
        yield from enumerate(io.StringIO(_decoded(path, encoding), newline=""), start=1)
        return
    line_enc = "utf-8" if name == "utf-8-sig" else enc
    with open(path, "rb") as handle:
        for lineno, raw in enumerate(handle, start=1):
            if lineno == 1 and name == "utf-8-sig" and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]
            try:
                yield lineno, raw.decode(line_enc)
            except UnicodeDecodeError as exc:
                guess = "Latin-1 / Windows-1252" if encoding is None else "another encoding"
                raise PromptSetError(
                    f"{path}:{lineno}: not {enc.replace('-sig', '')} text (byte 0x{raw[exc.start]:02x} at column "
                    f"{exc.start + 1}); it looks like {guess}: pass encoding='latin-1' (or the file's encoding), "
                    "or re-save it as UTF-8") from None


def _iter_jsonl(path: Path, encoding: str | None = None) -> Generator[tuple[str, dict[str, Any]], None, None]:
    """The file's rows one at a time (memory: one line), with the errors of :func:`_read_jsonl`."""
    lines = _lines(path, encoding)
    try:
        for lineno, line in lines:
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PromptSetError(f"{path}:{lineno}: invalid JSON: {exc.msg} (column {exc.colno})") from None
            if not isinstance(value, dict):
                raise PromptSetError(f"{path}:{lineno}: expected a JSON object, got {_json_type(value)}")
            yield f"{path}:{lineno}", value
    finally:
        lines.close()  # the file, when the reader stopped early


def _read_jsonl(path: Path, encoding: str | None = None, limit: int | None = None) -> list[tuple[str, dict[str, Any]]]:
    if limit is not None and limit <= 0:
        return []
    return list(itertools.islice(_iter_jsonl(path, encoding), limit))  # a limit reads only what it needs


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


def _iter_csv(path: Path, encoding: str | None = None) -> Generator[tuple[str, dict[str, Any]], None, None]:
    """The file's rows one at a time (memory: one row), with the errors of :func:`_read_csv`."""
    reader = csv.reader((line for _, line in _lines(path, encoding)), strict=True)  # strict: an unterminated quote is an error, not one huge field
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
        yield label, {h: v for h, v in zip(header, padded, strict=True) if h}


def _read_csv(path: Path, encoding: str | None = None, limit: int | None = None) -> list[tuple[str, dict[str, Any]]]:
    if limit is not None and limit <= 0:
        return []
    return list(itertools.islice(_iter_csv(path, encoding), limit))


def _json_type(value: Any) -> str:
    return {list: "a list", dict: "an object", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__
    )


def _rows_from_path(path: Path, name: str | None, source: str, encoding: str | None = None,
                    limit: int | None = None) -> _Rows:
    if not path.exists():
        raise PromptSetError(f"prompt file not found: {path}")
    if not path.is_file():
        raise PromptSetError(f"not a file: {path}")
    ext = path.suffix.lower()
    if ext in (".jsonl", ".ndjson"):
        rows = _read_jsonl(path, encoding, limit)
    elif ext == ".json":
        rows = _read_json(path, encoding)[:limit] if limit is not None else _read_json(path, encoding)
    elif ext == ".csv":
        rows = _read_csv(path, encoding, limit)
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


