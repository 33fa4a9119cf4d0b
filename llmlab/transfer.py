"""Runs as files: export a run as Parquet, import it into any store (:func:`export_run`, :func:`import_run`).

A team shares results without shipping a locked DuckDB file around: each run is written, through DuckDB's
``COPY ... TO ... (FORMAT parquet)``, as one folder ``DIR/<run_id>/`` holding

- ``runs.parquet`` (the run's metadata row), ``prompts.parquet``, ``calls.parquet`` (the run's ``call_records``
  rows, every column) and ``scores.parquet`` (deterministic, judge and human scores), plus the run's
  ``pairwise_verdicts.parquet`` (a pairwise judge's verdicts on its answers) and ``routing_decisions.parquet`` (a
  routed run's per-prompt choices). Exports written before those two were added lack them and still import and
  attach. A batch-mode run's ``batches`` rows are not exported: they are one process's work queue with the
  provider (a batch not yet sent would be sent again by a resume in the importing store), and its results are
  already its calls;
- ``manifest.json``: ``format``, ``format_version``, ``schema_version`` (the store's migration level, see
  :mod:`llmlab.migrations`), ``llmlab_version``, ``run_id``, ``exported_at_utc``, the row count of each table
  and a checksum of the calls (``calls_md5``: MD5 over the rows' ``call_id, status, response, cost_usd,
  input_tokens, output_tokens`` in ``call_id`` order).

The folder is written beside its final place (its files named ``*.part`` until complete) and renamed into it, so
a reader of shared storage never reads half a file; exporting the same run again replaces its folder (new scores
and ratings included). Put the folders on
shared storage and :meth:`llmlab.Store.attach` the parent folder to compare every run in it in one SQL query, or
import them.

Importing is idempotent: a row already in the target store (same ``run_id`` and ``call_id`` for calls, same
``run_id`` and ``prompt_id`` for prompts, same run for the run row, same ``(call_id, kind, scorer,
created_at_utc)`` for scores) is skipped, so importing the same run twice is a no-op, never a duplicate. A run
exported by a newer llmlab (schema or format version unknown here) is refused with
:class:`~llmlab.errors.SchemaVersionError`; columns that one side has and the other lacks are left NULL.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from llmlab.attach import EXPORT_TABLES, MANIFEST, OPTIONAL_EXPORT_TABLES, quote_literal
from llmlab.errors import SchemaVersionError, StoreError
from llmlab.store import Store, utc_now

__all__ = [
    "FORMAT_VERSION",
    "RESULTS_FORMATS",
    "calls_checksum_sql",
    "export_run",
    "results_text",
    "import_run",
]

log = logging.getLogger(__name__)

#: The version of the exported folder's layout (``manifest.json`` ``format_version``).
FORMAT_VERSION = 1

#: The identity of a row of each table (what an import checks before inserting it).
_KEYS = {
    "runs": ("run_id",),
    "prompts": ("run_id", "prompt_id"),
    "call_records": ("run_id", "call_id"),
    "scores": ("run_id", "call_id", "kind", "scorer", "created_at_utc"),
    "pairwise_verdicts": ("run_id", "prompt_id", "model_a", "model_b", "judge"),
    "routing_decisions": ("run_id", "prompt_id", "model", "created_at_utc"),
}
#: The row order of each exported file (stable files for the same rows).
_ORDER = {"runs": "run_id", "prompts": "prompt_id", "call_records": "call_id", "scores": "call_id, created_at_utc",
          "pairwise_verdicts": "prompt_id, model_a, model_b, judge", "routing_decisions": "prompt_id, created_at_utc"}


#: The text formats of :func:`results_text` and their file suffixes.
RESULTS_FORMATS = {"csv": ".csv", "json": ".json"}


def results_text(results: Any, fmt: str) -> str:
    """A results frame (:meth:`Store.results` columns, one row per call) as the text a user downloads: ``"csv"``
    (a header row, then one line per call; pandas quoting) or ``"json"`` (a list of objects, one per call, times in
    ISO 8601, values that JSON lacks as strings). The ``llmlab export RUN --csv|--json`` command and the widgets'
    download button both write exactly this. Raises ValueError on another format.
    """
    if fmt == "csv":
        return str(results.to_csv(index=False))
    if fmt == "json":
        return str(results.to_json(orient="records", date_format="iso", default_handler=str)) + "\n"
    raise ValueError(f"unknown results format {fmt!r}: use one of {', '.join(RESULTS_FORMATS)}")


def calls_checksum_sql(relation: str) -> str:
    """SQL giving one MD5 (a hex string) over ``relation``'s call rows (``call_id``, ``status``, ``response``,
    ``cost_usd``, ``input_tokens``, ``output_tokens``) in ``call_id`` order: equal for equal rows."""
    parts = ", ".join(f"coalesce(CAST({c} AS VARCHAR), '<null>')"
                      for c in ("call_id", "status", "response", "cost_usd", "input_tokens", "output_tokens"))
    return (f"SELECT coalesce(md5(string_agg(md5(concat_ws('|', {parts})), '' ORDER BY call_id)), '') "
            f"FROM {relation}")


def export_run(run: Any = None, directory: str | os.PathLike[str] = ".", *, store: Store | None = None) -> Path:
    """Write one run as Parquet files plus a manifest into ``directory/<run_id>/`` and return that folder.

    Args:
        run: a run reference (id, unique id prefix, name, ``"last"``/None) or a :class:`~llmlab.runner.RunResult`.
        directory: the parent folder (created if missing), e.g. a team's shared folder.
        store: the store to read (default: the run's own store, else :class:`Store()`).

    Raises RunNotFoundError (no such run), StoreError (the store cannot be read). The module docstring gives
    the folder's layout.
    """
    if store is None:
        store = getattr(run, "store", None) or Store()
    run_id = store.resolve_run(getattr(run, "run_id", run))
    parent = Path(directory).expanduser()
    parent.mkdir(parents=True, exist_ok=True)
    final = parent / run_id
    staging = parent / f".{run_id}.tmp-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    rid = quote_literal(run_id)
    try:
        counts: dict[str, int] = {}
        with store.connect() as con:
            (schema_version,) = con.execute("SELECT max(version) FROM schema_migrations").fetchone()
            for stem, table in EXPORT_TABLES.items():
                order = _ORDER[table]
                query = f"SELECT * FROM {table} WHERE run_id = {rid} ORDER BY {order}"
                target = staging / f"{stem}.parquet{_PART}"
                con.execute(f"COPY ({query}) TO {quote_literal(target)} (FORMAT parquet)")
                (counts[stem],) = con.execute(f"SELECT count(*) FROM {table} WHERE run_id = {rid}").fetchone()
            (checksum,) = con.execute(calls_checksum_sql(f"(SELECT * FROM call_records WHERE run_id = {rid})")).fetchone()
        from llmlab._version import __version__

        manifest = {
            "format": "llmlab-run", "format_version": FORMAT_VERSION, "schema_version": int(schema_version),
            "llmlab_version": __version__, "run_id": run_id, "exported_at_utc": utc_now().isoformat(),
            "rows": counts, "calls_md5": checksum,
        }
        (staging / (MANIFEST + _PART)).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        _publish(staging, final, parent, run_id)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("llmlab: exported run %s (%d calls) to %s", run_id, counts["calls"], final)
    return final


#: Files being written carry this suffix: readers of the folder (``**/calls.parquet``) never match them.
_PART = ".part"


def _publish(staging: Path, final: Path, parent: Path, run_id: str) -> None:
    """Move a written export into place. Readers glob ``**/<table>.parquet`` (hidden folders included), so a
    file only gets its name once complete and in its final folder, and a replaced export's files lose theirs
    before its folder is moved away: a reader sees each table of a run at most once, never half a file."""
    old = None
    if final.exists():
        for f in final.iterdir():
            if f.suffix == ".parquet" or f.name == MANIFEST:
                f.rename(f.with_name(f.name + ".old"))
        old = parent / f".{run_id}.old-{uuid.uuid4().hex[:8]}"
        final.rename(old)
    staging.rename(final)
    for stem in [*(s for s in EXPORT_TABLES if s != "calls"), "calls"]:  # the calls last
        (final / f"{stem}.parquet{_PART}").rename(final / f"{stem}.parquet")
    (final / (MANIFEST + _PART)).rename(final / MANIFEST)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if manifest.get("format") != "llmlab-run":
            raise ValueError("format is not 'llmlab-run'")
        int(manifest["schema_version"])
        str(manifest["run_id"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"{path}: not an llmlab run manifest ({type(exc).__name__}: {exc})") from exc
    from llmlab.migrations import MIGRATIONS

    if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
        raise SchemaVersionError(f"{path}: export format version {manifest['format_version']} is newer than this "
                                 f"llmlab reads ({FORMAT_VERSION}): upgrade llmlab to import it")
    if int(manifest["schema_version"]) > len(MIGRATIONS):
        raise SchemaVersionError(f"{path}: exported with schema version {manifest['schema_version']}, newer than "
                                 f"this llmlab knows ({len(MIGRATIONS)}): upgrade llmlab to import it (nothing was "
                                 "imported)")
    return manifest


def _run_folders(directory: Path) -> list[Path]:
    if (directory / MANIFEST).is_file():
        return [directory]
    found = sorted(p.parent for p in directory.glob(f"*/{MANIFEST}") if not p.parent.name.startswith("."))
    if not found:
        raise StoreError(f"{directory}: no exported run ({MANIFEST} in it or in its sub-folders); write one with "
                         "`llmlab export RUN --parquet DIR`")
    return found


def _columns(con: Any, relation: str) -> list[str]:
    return [row[0] for row in con.execute(f"DESCRIBE {relation}").fetchall()]


def _import_one(folder: Path, store: Store) -> dict[str, Any]:
    manifest = _read_manifest(folder)
    run_id = manifest["run_id"]
    added: dict[str, int] = {}
    with store.connect() as con:
        con.execute("BEGIN TRANSACTION")
        try:
            for stem, table in EXPORT_TABLES.items():
                if stem in OPTIONAL_EXPORT_TABLES and not (folder / f"{stem}.parquet").exists():
                    added[stem] = 0  # an export written before this table was exported
                    continue
                src = f"read_parquet({quote_literal(folder / (stem + '.parquet'))})"
                theirs = set(_columns(con, f"SELECT * FROM {src}"))
                cols = [c for c in _columns(con, table) if c in theirs]
                col_list = ", ".join(cols)
                match = " AND ".join(f"t.{k} IS NOT DISTINCT FROM s.{k}" for k in _KEYS[table])
                result = con.execute(
                    f"INSERT INTO {table} ({col_list}) SELECT {', '.join('s.' + c for c in cols)} FROM {src} s "
                    f"WHERE s.run_id = {quote_literal(run_id)} "
                    f"AND NOT EXISTS (SELECT 1 FROM {table} t WHERE {match})").fetchone()
                added[stem] = int(result[0]) if result else 0
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        (checksum,) = con.execute(
            calls_checksum_sql(f"(SELECT * FROM call_records WHERE run_id = {quote_literal(run_id)})")).fetchone()
    verified = checksum == manifest.get("calls_md5")
    if not verified:
        log.warning("llmlab: run %s in %s differs from the export in %s (calls checksum): the store already held "
                    "other rows of that run", run_id, store.path, folder)
    return {"run_id": run_id, "folder": str(folder), "calls_added": added["calls"],
            "prompts_added": added["prompts"], "scores_added": added["scores"], "run_added": bool(added["runs"]),
            "verified": verified}


def import_run(directory: str | os.PathLike[str], *, store: Store | None = None) -> list[dict[str, Any]]:
    """Read exported runs into ``store``: ``directory`` is one run's folder (it holds ``manifest.json``) or a
    folder of such folders (each imported).

    Returns one dict per run: ``run_id, folder, calls_added, prompts_added, scores_added, run_added`` (counts of
    rows inserted; all zero when the run was already there) and ``verified`` (the store's calls of that run have
    the export's checksum). Each run is imported in one transaction.

    Raises FileNotFoundError (no such folder), StoreError (no manifest, an unreadable one, a file missing),
    SchemaVersionError (exported by a newer llmlab; nothing of that run is imported).
    """
    folder = Path(directory).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"import: no such folder: {folder}")
    store = store or Store()
    folders = _run_folders(folder)
    for f in folders:  # refuse before importing anything
        _read_manifest(f)
    import duckdb

    out = []
    for f in folders:
        try:
            out.append(_import_one(f, store))
        except duckdb.Error as exc:
            raise StoreError(f"import {f}: {exc}") from exc
    return out
