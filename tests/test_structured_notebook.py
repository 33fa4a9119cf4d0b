"""notebooks/structured.ipynb runs end to end in a real Jupyter kernel (nbclient): the sandbox models compared per
capability on the bundled ``tools_and_json`` set, and a routing table by capability exported."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from llmlab._jupyter import execute_notebook
from llmlab.store import Store

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_structured_notebook_compares_capabilities_and_exports_a_routing_table(tmp_path, monkeypatch):
    db = tmp_path / "structured.duckdb"
    for k in ("LLMLAB_SANDBOX_API_BASE", "LLMLAB_MODELS"):
        monkeypatch.delenv(k, raising=False)
    for k, v in {"LLMLAB_DB": str(db), "LLMLAB_REPORTS_DIR": str(tmp_path),
                 "LLMLAB_SANDBOX_LATENCY_SCALE": "0.02"}.items():
        monkeypatch.setenv(k, v)
    nb = execute_notebook(ROOT / "notebooks" / "structured.ipynb", output=tmp_path / "executed.ipynb",
                          timeout_s=300, cwd=str(ROOT / "notebooks"))
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    store = Store(db)
    res = store.results(store.runs().iloc[0]["run_id"])
    assert len(res) == 60 * 4 and (res.status == "ok").all() and res.quality.notna().all()
    assert set(res[res.category == "json"].response_mode) == {"json_schema", "json_tool"}
    cfg = yaml.safe_load((tmp_path / "structured_routing.yaml").read_text())
    tags = {t for d in cfg["model_list"] for t in d["litellm_params"].get("tags", [])}
    assert {"conversation", "json", "tool_call", "default"} <= tags
