"""Client-side rate limits: RPM and TPM budgets per deployment (:class:`RateLimiter`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

__all__ = [
    "RateLimiter",
]

log = logging.getLogger(__name__)


# -- rate limits -------------------------------------------------------------------------------------------
class RateLimiter:
    """Client-side RPM and TPM budget for one deployment over a sliding window (60 s by default; shorter in tests
    through ``RunOptions.rate_limit_window_s``).

    Token-aware: each request counts its prompt's estimated tokens plus ``max_tokens`` (the most it can use),
    corrected to the tokens actually used once the answer arrives (:meth:`settle`). A request larger than the
    whole TPM budget is let through alone when the window is empty, rather than blocking forever. ``rpm`` and
    ``tpm`` count per ``window_s`` (a budget "per minute" with the default window).

    The fan-out checks the budget at the moment it sends (after the concurrency slots are held), so the requests
    a provider *receives* respect it, not only the ones llmlab queued.
    """

    def __init__(self, rpm: float | None = None, tpm: float | None = None, window_s: float = 60.0) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s!r}")
        self.rpm, self.tpm, self.window_s = rpm, tpm, window_s
        self._events: deque[list[float]] = deque()  # [monotonic_s, tokens]
        self.waited_s = 0.0
        self.granted = 0

    @property
    def limited(self) -> bool:
        return bool(self.rpm) or bool(self.tpm)

    def _prune(self, now: float) -> None:
        while self._events and now - self._events[0][0] >= self.window_s:
            self._events.popleft()

    def wait_s(self, tokens: int, now: float | None = None) -> float:
        """Seconds until a request of ``tokens`` tokens fits the budget (0.0: it fits now)."""
        if not self.limited:
            return 0.0
        now = time.monotonic() if now is None else now
        self._prune(now)
        if not self._events:
            return 0.0
        wait = 0.0
        if self.rpm and len(self._events) >= self.rpm:
            oldest_that_must_go = self._events[len(self._events) - int(self.rpm)]
            wait = max(wait, oldest_that_must_go[0] + self.window_s - now)
        if self.tpm:
            used = sum(e[1] for e in self._events)
            if used + tokens > self.tpm:
                excess = used + tokens - self.tpm
                freed = 0.0
                expire_at = self._events[-1][0] + self.window_s  # the window empties: always fits then
                for t, tok in self._events:
                    freed += tok
                    if freed >= excess:
                        expire_at = t + self.window_s
                        break
                wait = max(wait, expire_at - now)
        return max(0.0, wait)

    def try_acquire(self, tokens: int, now: float | None = None) -> list[float] | None:
        """Record a request of ``tokens`` tokens now if it fits; returns its ticket (for :meth:`settle`) or None."""
        now = time.monotonic() if now is None else now
        if self.limited and self.wait_s(tokens, now) > 0:
            return None
        ticket = [now, float(tokens)]
        if self.limited:
            self._events.append(ticket)
        self.granted += 1
        return ticket

    def settle(self, ticket: list[float] | None, tokens_used: int | None) -> None:
        """Replace a ticket's reserved tokens by the tokens the request really used (input + output)."""
        if ticket is not None and tokens_used is not None:
            ticket[1] = float(tokens_used)

    async def acquire(self, tokens: int) -> float:
        """Wait until a request of ``tokens`` fits and record it; returns the seconds waited."""
        waited = 0.0
        while True:
            if self.try_acquire(tokens) is not None:
                self.waited_s += waited
                return waited
            wait = self.wait_s(tokens) + 0.001
            await asyncio.sleep(wait)
            waited += wait

