"""Finding the call a feedback names, and the score row it becomes (used by :func:`llmlab.feedback` and by the
logger's writer for feedback that arrived before its call's row)."""

from __future__ import annotations

from typing import Any

from llmlab.redaction import redact
from llmlab.store import Store, utc_now

__all__ = ["find_call", "find_calls", "score_row"]

_LOOKUP = """
    SELECT run_id, call_id, prompt_id, model FROM call_records
    WHERE call_id = ? OR litellm_call_id = ? OR trace_id = ?
    ORDER BY (status = 'ok') DESC, created_at_utc DESC LIMIT 1
"""


def find_call(store: Store, ref: str) -> dict[str, Any] | None:
    """``{run_id, call_id, prompt_id, model}`` of the call named by ``ref`` (a ``call_id``, ``litellm_call_id``
    or ``trace_id``; of several attempts, the successful then the latest one), or None."""
    return find_calls(store, [ref]).get(ref)


def find_calls(store: Store, refs: list[str]) -> dict[str, dict[str, Any]]:
    """:func:`find_call` for many references in one connection; references not found are left out."""
    out: dict[str, dict[str, Any]] = {}
    with store.connect() as con:
        for ref in refs:
            row = con.execute(_LOOKUP, [ref, ref, ref]).fetchone()
            if row is not None:
                out[ref] = dict(zip(("run_id", "call_id", "prompt_id", "model"), row, strict=True))
    return out


def score_row(found: dict[str, Any], value: float, raw: float, comment: str | None) -> dict[str, Any]:
    """The score row of one feedback (``kind='human', scorer='feedback'``)."""
    return {**found, "kind": "human", "scorer": "feedback", "score": value, "raw_value": raw,
            "comment": redact(comment) if comment else None, "created_at_utc": utc_now()}
