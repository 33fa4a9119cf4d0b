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
from llmlab.production.lookup import find_call, score_row
from llmlab.production.rows import feedback_score
from llmlab.store import Store

__all__ = ["feedback"]

def feedback(call: Any, score: Any, *, scale: str = "unit", comment: str | None = None,
             store: Store | str | None = None, wait_s: float = 10.0) -> float:
    """Record feedback on one call; returns the normalized score (0..1).

    Args:
        call: the llmlab ``call_id``, LiteLLM's ``litellm_call_id`` (the SDK's
            ``response._hidden_params["litellm_call_id"]``, the proxy's ``x-litellm-call-id`` header) or the
            request's ``trace_id``; or the LiteLLM response object itself.
        score: a number in 0..1 (``scale="unit"``), a bool / 0-1 (``"binary"``) or 1..5 (``"stars"``).
        comment: free text, stored redacted.
        store: a :class:`~llmlab.store.Store` or its path (default ``LLMLAB_DB``).
        wait_s: a call not in the store yet (it may still be in a logger's queue: LiteLLM logs a call after it
            returns) and named by a LiteLLM id (a UUID) is handed to this process's logger for that store, which writes the feedback with the
            call's row or as soon as the row is stored, for at least 60 s (then it is dropped and counted as a
            feedback error). Without such a logger, CallNotFoundError.

    Raises:
        ValueError: score out of range or an unknown scale.
        CallNotFoundError (a KeyError): no such call in the store and no logger of this process to wait for it.
    """
    if not isinstance(call, str):  # a LiteLLM response object: its litellm_call_id
        call = (getattr(call, "_hidden_params", None) or {}).get("litellm_call_id") or call
        if not isinstance(call, str):
            raise CallNotFoundError("a LiteLLM response without a litellm_call_id: pass the call's id instead")
    value, raw, _ = feedback_score({"score": score, "scale": scale})
    st = store if isinstance(store, Store) else Store(store)
    found = find_call(st, call)
    if found is None:
        from llmlab.production.recorder import merge_spilled

        merge_spilled(st)
        found = find_call(st, call)
    if found is None:
        # maybe still on its way through a logger of this process (LiteLLM logs after the call returns): the
        # logger writes the feedback once the call's row is stored
        loggers = [lg for lg in _loggers() if lg.recorder.path.resolve() == st.path.resolve()]
        if loggers and _is_uuid(call):  # LiteLLM's ids are UUIDs; llmlab's call ids are not worth waiting for
            loggers[0].recorder.defer_feedback(call, value, raw, comment, wait_s=max(wait_s, 60.0))
            return value
        raise CallNotFoundError(f"no call {call!r} (call_id, litellm_call_id or trace_id) in {st.path}")
    st.append_scores([score_row(found, value, raw, comment)])
    return value


def _is_uuid(text: str) -> bool:
    import uuid

    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _loggers() -> list[Any]:
    import sys

    mod = sys.modules.get("llmlab.production.logger")  # never import LiteLLM just to look for loggers
    return mod.active_loggers() if mod is not None else []
