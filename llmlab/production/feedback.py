"""Feedback: production quality that arrives after the call, stored like a human rating.

``llmlab.feedback(id, score)`` finds the call by llmlab ``call_id``, LiteLLM's ``litellm_call_id`` (the proxy's
``x-litellm-call-id`` response header) or ``trace_id`` (then the request's last successful attempt), and writes a
score row ``kind='human', scorer='feedback'``: it counts as a human rating in ``quality`` (the latest human score
wins over judges and checks). The application can also send it with the request: ``metadata={"llmlab_feedback":
0.8}`` (see :data:`llmlab.production.rows.FEEDBACK_KEY`).
"""

from __future__ import annotations

from typing import Any

from llmlab.errors import CallNotFoundError
from llmlab.production.rows import feedback_score
from llmlab.redaction import redact
from llmlab.store import Store, utc_now

__all__ = ["feedback", "find_call"]

_LOOKUP = """
    SELECT run_id, call_id, prompt_id, model FROM call_records
    WHERE call_id = ? OR litellm_call_id = ? OR trace_id = ?
    ORDER BY (status = 'ok') DESC, created_at_utc DESC LIMIT 1
"""


def find_call(store: Store, ref: str) -> dict[str, Any] | None:
    """``{run_id, call_id, prompt_id, model}`` of the call ``ref`` names (see the module docstring), or None."""
    with store.connect() as con:
        row = con.execute(_LOOKUP, [ref, ref, ref]).fetchone()
    return None if row is None else dict(zip(("run_id", "call_id", "prompt_id", "model"), row, strict=True))


def feedback(call: str, score: Any, *, scale: str = "unit", comment: str | None = None,
             store: Store | str | None = None, wait_s: float = 10.0) -> float:
    """Record feedback on one call; returns the normalized score (0..1).

    Args:
        call: the llmlab ``call_id``, LiteLLM's ``litellm_call_id`` or the request's ``trace_id``.
        score: a number in 0..1 (``scale="unit"``), a bool / 0-1 (``"binary"``) or 1..5 (``"stars"``).
        comment: free text, stored redacted.
        store: a :class:`~llmlab.store.Store` or its path (default ``LLMLAB_DB``).
        wait_s: a call not found yet is looked up again after flushing this process's loggers (at most this
            long: it may still be in a logger's queue) and merging spilled segments.

    Raises:
        ValueError: score out of range or an unknown scale.
        CallNotFoundError (a KeyError): no such call in the store.
    """
    value, raw, _ = feedback_score({"score": score, "scale": scale})
    st = store if isinstance(store, Store) else Store(store)
    found = find_call(st, call)
    if found is None:
        from llmlab.production.recorder import merge_spilled

        for lg in _loggers():
            lg.flush(wait_s)
        merge_spilled(st)
        found = find_call(st, call)
    if found is None:
        raise CallNotFoundError(f"no call {call!r} (call_id, litellm_call_id or trace_id) in {st.path}")
    st.append_scores([{**found, "kind": "human", "scorer": "feedback", "score": value, "raw_value": raw,
                       "comment": redact(comment) if comment else None, "created_at_utc": utc_now()}])
    return value


def _loggers() -> list[Any]:
    import sys

    mod = sys.modules.get("llmlab.production.logger")  # never import LiteLLM just to look for loggers
    return mod.active_loggers() if mod is not None else []
