"""The real LiteLLM proxy serves the config ``llmlab route --export`` wrote, unchanged (DESIGN.md decision 8).

A sandbox run is recorded, ``llmlab route RUN --export`` writes the config, and ``litellm --config`` (the proxy
installed from the lock, offline, on loopback, ``LITELLM_MASTER_KEY`` set, no database) serves it. Each category
tag must reach the deployment the table chose (by the sandbox's request counters), a tag with no row must reach
the default row, and a failing primary must fall back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

import llmlab
from llmlab import cli
from llmlab.routing import routing_table
from proxy_process import start_proxy

REPO = Path(__file__).resolve().parent.parent
MODELS = ["sandbox/frontier", "sandbox/balanced", "sandbox/fast", "sandbox/tiny"]

# One recorded run, one export and one proxy for the module (starting the proxy is most of each test's time);
# both tests stay on one xdist worker. The fallback test comes last: it fails the primary deployment on purpose.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("proxy")]


def _bare(model: str) -> str:
    return model.split("/", 1)[1]


@pytest.fixture(scope="module")
def exported(sandbox_server, tmp_path_factory):
    """A recorded run, its routing table and the config the CLI exported from it (in a module store)."""
    tmp = tmp_path_factory.mktemp("proxy")
    with pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if n.endswith("_API_KEY")]:
            mp.delenv(name)
        mp.setenv("LLMLAB_DB", str(tmp / "llmlab.duckdb"))
        mp.setenv("LLMLAB_SANDBOX_API_BASE", sandbox_server.api_base)
        mp.setenv("LLMLAB_SANDBOX_API_KEY", "sandbox-key")
        sandbox_server.clear_faults()
        rows = [json.loads(line) for line in (REPO / "datasets" / "quickstart.jsonl").read_text().splitlines()]
        frame = pd.DataFrame(rows).groupby("category").head(8)
        res = llmlab.run(frame, MODELS, progress=False, concurrency=32, timeout_s=20)
        path = tmp / "routing.yaml"
        assert cli.main(["route", res.run_id, "--export", str(path), "--tolerance", "0.05"]) == 0
        table = routing_table(res.results, tolerance=0.05, min_n=5)
    return path, table


@pytest.fixture(scope="module")
def proxy(exported, sandbox_server):
    path, _ = exported
    with pytest.MonkeyPatch.context() as mp:  # the proxy inherits no provider key
        for name in [n for n in os.environ if n.endswith("_API_KEY")]:
            mp.delenv(name)
        p = start_proxy(path, {"LLMLAB_SANDBOX_API_BASE": sandbox_server.api_base,
                               "LLMLAB_SANDBOX_API_KEY": "sandbox-key"}, path.parent)
    try:
        yield p
    finally:
        p.stop()


def _ask(proxy, tags):
    body = {"model": "llmlab-router", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16}
    if tags:
        body["tags"] = tags
    return proxy.chat(body)


def test_the_proxy_routes_each_category_to_the_tables_deployment(exported, proxy, sandbox):
    path, table = exported
    cfg = yaml.safe_load(path.read_text())
    assert "os.environ/LLMLAB_SANDBOX_API_BASE" in path.read_text() and sandbox.api_base not in path.read_text()
    assert cfg["router_settings"]["enable_tag_filtering"] is True
    for row in table.itertuples():
        sandbox.reset_stats()
        tags = [] if row.category == "default" else [row.category]
        status, body, _ = _ask(proxy, tags)
        assert status == 200, (row.category, body, proxy.log())
        assert body["choices"][0]["message"]["content"]
        served = sandbox.stats()["by_model"]
        assert served == {_bare(row.model): 1}, (row.category, row.model, served)
    sandbox.reset_stats()
    status, _, _ = _ask(proxy, ["a-category-with-no-row"])
    default_model = table.set_index("category").loc["default", "model"]
    assert status == 200 and sandbox.stats()["by_model"] == {_bare(default_model): 1}


def test_the_proxy_falls_back_when_the_primary_fails(exported, proxy, sandbox):
    _, table = exported
    row = table[table["category"] != "default"].iloc[0]
    primary = _bare(row["model"])
    sandbox.reset_stats()
    sandbox.inject("500", model=primary)
    status, body, _ = _ask(proxy, [row["category"]])
    assert status == 200, (body, proxy.log())
    served = sandbox.stats()["by_model_outcome"]
    assert served[primary].get("500", 0) >= 1 and "ok" not in served[primary]
    answered = [m for m, outcomes in served.items() if outcomes.get("ok")]
    assert len(answered) == 1 and answered[0] != primary
