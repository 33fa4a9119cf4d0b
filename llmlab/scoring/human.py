"""Human ratings: a person's good/bad or 1-5 stars on one call, stored as scorer ``human`` (wins over judges and
checks in ``quality``)."""

from __future__ import annotations

from typing import Any

__all__ = ["rate"]


def rate(call_id: str, rating: float | bool, *, scale: str = "binary", comment: str | None = None,
         store: Any = None) -> float:
    """Record a human rating (scorer ``human``): good/bad (``scale="binary"``) or 1..5 stars (``scale="stars"``).

    Returns the normalized score (0..1). See :meth:`llmlab.store.Store.rate`.
    """
    from llmlab.store import Store

    return (store or Store()).rate(call_id, rating, scale=scale, comment=comment)

