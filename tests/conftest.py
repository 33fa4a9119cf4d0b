"""Shared fixtures: an isolated store per test, no API keys, and one loopback sandbox for the session.

- every test gets its own ``LLMLAB_DB`` under ``tmp_path`` and no ``*_API_KEY`` variable (autouse);
- ``sandbox``: the session's :class:`llmlab.sandbox.Sandbox` (random loopback port, seed 0, latencies × 0.02)
  with its injected faults cleared and its counters reset for the test, and ``LLMLAB_SANDBOX_API_BASE`` pointing
  at it (so ``sandbox/*`` models reach it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """An isolated store file and no provider keys for every test."""
    monkeypatch.setenv("LLMLAB_DB", str(tmp_path / "llmlab.duckdb"))
    for name in list(os.environ):
        if name.endswith("_API_KEY"):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[object]:
    """The session's sandbox server (prefer the function-scoped ``sandbox`` fixture in tests)."""
    from llmlab.sandbox import Sandbox

    sb = Sandbox(port=0, seed=0, latency_scale=0.02).start()
    try:
        yield sb
    finally:
        sb.stop()


@pytest.fixture
def sandbox(sandbox_server, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """The session's sandbox with no injected faults and fresh counters; ``LLMLAB_SANDBOX_API_BASE`` set."""
    sandbox_server.clear_faults()
    sandbox_server.reset_stats()
    monkeypatch.setenv("LLMLAB_SANDBOX_API_BASE", sandbox_server.api_base)
    yield sandbox_server
    sandbox_server.clear_faults()
