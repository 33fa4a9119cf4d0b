"""Shared fixtures: an isolated store per test, no API keys, and one loopback sandbox for the session.

- every test gets its own ``LLMLAB_DB`` under ``tmp_path`` and no ``*_API_KEY`` variable (autouse);
- ``sandbox``: the session's :class:`llmlab.sandbox.Sandbox` (random loopback port, seed 0, latencies × 0.02)
  with its injected faults cleared and its counters reset for the test, and ``LLMLAB_SANDBOX_API_BASE`` pointing
  at it (so ``sandbox/*`` models reach it).

``make test`` runs the suite on two pytest-xdist workers (``-n 2 --dist loadgroup``): every test gets its own
``tmp_path`` and store, each worker its own sandbox on a free port, and the modules holding a ``slow`` or
``browser`` test are collected first (module order kept otherwise), so the long tests start early instead of
ending one worker's queue while the other idles. A module whose module-scoped fixture is expensive is marked
``pytest.mark.xdist_group`` so that one worker builds it once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


_LONG_MARKS = ("slow", "browser")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Modules with a long (``slow`` or ``browser``) test first; tests keep their order within a module."""
    long_modules = {item.module.__name__ for item in items if getattr(item, "module", None) is not None
                    and any(item.get_closest_marker(m) for m in _LONG_MARKS)}
    items.sort(key=lambda item: getattr(item, "module", None) is None or item.module.__name__ not in long_modules)


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
