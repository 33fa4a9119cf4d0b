"""Other stores and exported runs, read-only beside the local store: the SQL behind :meth:`llmlab.Store.attach`.

A source is either

- another llmlab DuckDB file: ``ATTACH '<file>' AS alias (READ_ONLY)``; its tables and views (``alias.runs``,
  ``alias.calls``, ...) are queried as they are. DuckDB locks a file for the process that writes it, so a store
  another process is recording into cannot be attached: export its runs instead;
- a folder of exported runs (:func:`llmlab.transfer.export_run`, one sub-folder per run, or one run's folder):
  an in-memory database named ``alias`` whose views ``runs``, ``prompts``, ``call_records``, ``scores`` read every
  ``<table>.parquet`` under the folder (``read_parquet``, recursive glob, columns united by name) and whose
  ``calls`` view joins calls with their prompts like the local ``calls`` view. Runs exported later into the same
  folder appear at the next query.

Either way the attachment is read-only, and a source written by a newer llmlab (schema version above
``len(MIGRATIONS)``) is refused with :class:`~llmlab.errors.SchemaVersionError`.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from llmlab.errors import SchemaVersionError, StoreError

__all__ = [
    "EXPORT_TABLES",
    "MANIFEST",
    "OPTIONAL_EXPORT_TABLES",
    "attach_statements",
    "check_attached",
    "quote_literal",
]

#: The tables of an exported run: file stem → store table.
EXPORT_TABLES = {"runs": "runs", "prompts": "prompts", "calls": "call_records", "scores": "scores",
                 "pairwise_verdicts": "pairwise_verdicts", "routing_decisions": "routing_decisions"}
#: Tables an export may lack (exports written before they were exported): importing and attaching skip them.
OPTIONAL_EXPORT_TABLES = frozenset({"pairwise_verdicts", "routing_decisions"})
#: The file that describes an exported run (format, schema version, row counts, checksums).
MANIFEST = "manifest.json"

_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_RESERVED = {"main", "memory", "temp", "system", "information_schema", "pg_catalog"}


def quote_literal(text: str | os.PathLike[str]) -> str:
    """``text`` as a SQL string literal (single quotes doubled)."""
    return "'" + str(text).replace("'", "''") + "'"


def _check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not _ALIAS.match(alias) or alias.lower() in _RESERVED:
        raise ValueError(f"attach alias {alias!r}: use a SQL identifier (letters, digits, _; not starting with a "
                         f"digit; not one of {sorted(_RESERVED)})")
    return alias


def _known_schema_version() -> int:
    from llmlab.migrations import MIGRATIONS

    return len(MIGRATIONS)


def _manifests(folder: Path) -> list[Path]:
    return sorted(folder.rglob(MANIFEST))


def _check_manifests(folder: Path) -> None:
    known = _known_schema_version()
    found = _manifests(folder)
    if not found:
        raise StoreError(f"{folder}: no exported run found (no {MANIFEST} in it or below it; write one with "
                         "`llmlab export RUN --parquet DIR`)")
    for path in found:
        try:
            version = int(json.loads(path.read_text(encoding="utf-8"))["schema_version"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"{path}: not an llmlab run manifest ({type(exc).__name__}: {exc})") from exc
        if version > known:
            raise SchemaVersionError(f"{path}: exported with schema version {version}, newer than this llmlab "
                                     f"knows ({known}): upgrade llmlab to read it")


def attach_statements(source: str | os.PathLike[str], alias: str) -> list[str]:
    """The SQL statements that make ``source`` readable as ``alias`` on a connection (idempotent: safe to run on
    every new connection of a process).

    Args:
        source: an llmlab DuckDB file, or a folder holding exported runs (see the module docstring).
        alias: the name to query it by (``SELECT * FROM alias.calls``): a SQL identifier.

    Raises:
        ValueError: a bad alias. FileNotFoundError: no such file or folder. StoreError: a folder with no exported
        run, or an unreadable manifest. SchemaVersionError: an exported run from a newer llmlab.
    """
    alias = _check_alias(alias)
    path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"attach {alias}: no such file or folder: {path}")
    if path.is_file():
        return [f"ATTACH IF NOT EXISTS {quote_literal(path.resolve())} AS {alias} (READ_ONLY)"]
    _check_manifests(path)
    root = path.resolve()
    stmts = [f"ATTACH IF NOT EXISTS ':memory:' AS {alias}"]
    for stem, table in EXPORT_TABLES.items():
        if stem in OPTIONAL_EXPORT_TABLES and not any(root.glob(f"**/{stem}.parquet")):
            continue  # exports written before this table was exported
        files = quote_literal(root / "**" / f"{stem}.parquet")
        stmts.append(f"CREATE OR REPLACE VIEW {alias}.{table} AS SELECT * FROM read_parquet({files}, "
                     "union_by_name = true)")
    stmts.append(
        f"CREATE OR REPLACE VIEW {alias}.calls AS SELECT c.*, p.category, p.prompt, p.reference, p.scorer "
        f"FROM {alias}.call_records c LEFT JOIN {alias}.prompts p ON p.run_id = c.run_id AND p.prompt_id = c.prompt_id"
    )
    return stmts


def check_attached(con: Any, alias: str, source: str | os.PathLike[str]) -> None:
    """After attaching an llmlab DuckDB file: refuse it (SchemaVersionError) when a newer llmlab wrote it, and
    (StoreError) when it is not an llmlab store. Folders were checked by :func:`attach_statements`."""
    if not Path(source).expanduser().is_file():
        return
    try:
        (version,) = con.execute(f"SELECT coalesce(max(version), 0) FROM {alias}.schema_migrations").fetchone()
    except Exception as exc:  # noqa: BLE001 - duckdb.CatalogException and friends
        raise StoreError(f"attach {alias}: {source} is not an llmlab store (no schema_migrations table)") from exc
    known = _known_schema_version()
    if version > known:
        raise SchemaVersionError(f"attach {alias}: {source} has schema version {version}, newer than this llmlab "
                                 f"knows ({known}): upgrade llmlab to read it")
