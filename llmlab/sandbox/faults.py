"""Injectable faults: rules, and the decision for one request."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from llmlab.errors import FaultSpecError

logger = logging.getLogger(__name__)
from llmlab.sandbox.profiles import (
    FAULT_KINDS,
)

__all__: list[str] = []

# --------------------------------------------------------------------------------------------- faults


@dataclass
class _FaultRule:
    rule_id: int
    kind: str
    model: str
    times: int | None
    rate: float | None
    retry_after_s: float
    hang_s: float
    fired: int = 0
    seen: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.rule_id, "kind": self.kind, "model": self.model, "times": self.times, "rate": self.rate,
            "retry_after_s": self.retry_after_s, "hang_s": self.hang_s, "fired": self.fired, "seen": self.seen,
        }


@dataclass(frozen=True)
class _Fault:
    kind: str
    retry_after_s: float = 1.0
    hang_s: float = 30.0


def _normalize_kind(kind: Any) -> str:
    k = str(kind).strip().lower()
    if k not in FAULT_KINDS:
        raise FaultSpecError(f"unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
    return k




def _fault_http_status(kind: str, stream: bool) -> int | None:
    """The HTTP status a fault answers with (None: the connection is closed with no response)."""
    if kind.isdigit():
        return int(kind)
    return {"malformed": 200, "context_window": 400, "cut_stream": 200 if stream else None}.get(kind)


