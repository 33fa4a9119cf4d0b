"""Prompt files too large to hold: :func:`iter_prompt_sets` reads a CSV / JSONL file in chunks of rows.

Each chunk is a :class:`PromptSet` built exactly as :func:`llmlab.load_prompts` builds one (same columns, same
errors with ``file:line``), so a plan can be made and summed chunk by chunk with memory bounded by the chunk, not
the file. What a streamed read remembers across chunks is a compact record per prompt kept (about 120 bytes: the
prompt id and source id as 64-bit integers, a CRC-32 of the reference and the line number), enough to apply
:func:`load_prompts`' rules across the whole file: the same prompt text again with the same reference is dropped
(with a warning), with a different reference it is an error naming both lines, and one ``id`` naming two
different prompts is an error naming both lines.

Other sources (bundled names, DataFrames, lists, a ``.json`` list) are small by nature: they are loaded whole and
yielded as one chunk.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmlab.errors import PromptSetError
from llmlab.prompts.loading import _build, _rows_from_name_or_path, load_prompts
from llmlab.prompts.readers import _columns_of, _iter_csv, _iter_jsonl, _Rows
from llmlab.prompts.sets import PromptSet

__all__ = ["StreamStats", "iter_prompt_sets"]

logger = logging.getLogger("llmlab.prompts")

#: Rows per chunk of a streamed read.
DEFAULT_CHUNK_ROWS = 20_000


@dataclass
class StreamStats:
    """What a streamed read has done so far: ``rows_read`` (data rows of the file, blank lines excluded),
    ``prompts`` (kept), ``repeats_dropped`` (the same prompt and reference again), ``chunks``, ``source``."""

    source: str = ""
    rows_read: int = 0
    prompts: int = 0
    repeats_dropped: int = 0
    chunks: int = 0
    _by_prompt: dict[int, int] = field(default_factory=dict, repr=False)  # prompt id → reference CRC << 32 | line
    _by_source_id: dict[int, int] = field(default_factory=dict, repr=False)  # source id hash → prompt id


def _lineno(label: str) -> int:
    tail = label.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _file_source(source: Any) -> Path | None:
    """The path of a CSV / JSONL file source (bundled names resolved), else None (a source loaded whole)."""
    if not isinstance(source, (str, os.PathLike)):
        return None
    rows = _rows_from_name_or_path(source, None, None, 0)  # limit 0: resolves and checks the path, reads no row
    path = Path(rows.where)
    return path if path.suffix.lower() in (".jsonl", ".ndjson", ".csv") else None


def iter_prompt_sets(source: Any, *, chunk_rows: int = DEFAULT_CHUNK_ROWS, stats: StreamStats | None = None,
                     **load_kwargs: Any) -> Iterator[PromptSet]:
    """Yield the prompt set of ``source`` in chunks of at most ``chunk_rows`` rows (see the module docstring).

    Args:
        source: what :func:`llmlab.load_prompts` takes; CSV and JSONL files are streamed.
        chunk_rows: rows per chunk (≥ 1).
        stats: a :class:`StreamStats` updated as the file is read (rows read, prompts kept, repeats dropped).
        load_kwargs: ``template, prompt_column, category_column, reference_column, scorer_column, id_column,
            system, name, encoding`` as for :func:`load_prompts` (``limit`` is not taken: a limited read is small).

    Raises:
        PromptSetError: as :func:`load_prompts`, naming the file and line; across chunks too (a repeated prompt
            with another reference, an id naming two prompts). ValueError: ``chunk_rows`` < 1.
    """
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    stats = stats if stats is not None else StreamStats()
    path = _file_source(source)
    if path is None:
        whole = load_prompts(source, **load_kwargs)
        stats.source, stats.rows_read, stats.prompts, stats.chunks = str(whole.source), len(whole), len(whole), 1
        yield whole
        return
    encoding = load_kwargs.pop("encoding", None)
    name = load_kwargs.pop("name", None) or path.stem
    stats.source = str(path)
    reader = _iter_jsonl(path, encoding) if path.suffix.lower() in (".jsonl", ".ndjson") else _iter_csv(path, encoding)
    empty = True
    while True:
        chunk = list(itertools.islice(reader, chunk_rows))
        if not chunk:
            break
        empty = False
        stats.rows_read += len(chunk)
        labels: list[str] = []
        built = _build(_Rows(chunk, _columns_of(chunk), name, str(path), str(path)), labels_out=labels,
                       **{k: load_kwargs.get(k) for k in ("template", "prompt_column", "category_column",
                                                          "reference_column", "scorer_column", "id_column",
                                                          "system")})
        stats.repeats_dropped += len(chunk) - len(built.prompts)
        kept = []
        for prompt, label in zip(built.prompts, labels, strict=True):
            if _seen_before(prompt, label, path, stats):
                continue
            kept.append(prompt)
        stats.chunks += 1
        stats.prompts += len(kept)
        if kept:
            yield PromptSet(name, tuple(kept), str(path))
    if empty:
        raise PromptSetError(f"prompt set {name!r} from {path} is empty (no rows)")


def _seen_before(prompt: Any, label: str, path: Path, stats: StreamStats) -> bool:
    """Apply load_prompts' repeat and id rules against earlier chunks; True: drop this prompt (a repeat)."""
    pid = int(prompt.prompt_id, 16)
    line = _lineno(label)
    ref_crc = zlib.crc32((prompt.reference or "").encode("utf-8")) if prompt.reference is not None else 0xFFFFFFFF
    if prompt.source_id is not None:
        key = int.from_bytes(hashlib.blake2b(prompt.source_id.encode("utf-8"), digest_size=8).digest(), "big")
        earlier_pid = stats._by_source_id.get(key)
        if earlier_pid is not None and earlier_pid != pid:
            earlier_line = stats._by_prompt.get(earlier_pid, 0) & 0xFFFFFFFF
            raise PromptSetError(f"{path}:{earlier_line} and {label} have the same id {prompt.source_id!r} but "
                                 "different prompts (ids must name one prompt)")
        stats._by_source_id.setdefault(key, pid)
    earlier = stats._by_prompt.get(pid)
    if earlier is None:
        stats._by_prompt[pid] = (ref_crc << 32) | line
        return False
    if earlier >> 32 != ref_crc:
        raise PromptSetError(f"{path}:{earlier & 0xFFFFFFFF} and {label} have the same prompt text with different "
                             "references")
    logger.warning("%s repeats the prompt of %s:%d; keeping the first", label, path, earlier & 0xFFFFFFFF)
    stats.repeats_dropped += 1
    return True
