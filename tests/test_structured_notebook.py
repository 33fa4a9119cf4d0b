"""notebooks/structured.ipynb runs end to end in a real Jupyter kernel (nbclient): the sandbox models compared per
capability on the bundled ``tools_and_json`` set, and a routing table by capability exported.

Every cell runs, on the first 8 prompts of each of the three capabilities (``LLMLAB_NOTEBOOK_LIMIT=8``, read by the
notebook's setup cell: 24 prompts x 4 models instead of 60 x 4; 8 >= the notebook's ``min_n`` of 5, so every
capability still gets its own routing row).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from llmlab._jupyter import execute_notebook
from llmlab.store import Store

ROOT = Path(__file__).resolve().parent.parent
PER_CATEGORY = 8


@pytest.mark.slow
def test_structured_notebook_compares_capabilities_and_exports_a_routing_table(tmp_path, monkeypatch):
    db = tmp_path / "structured.duckdb"
    for k in ("LLMLAB_SANDBOX_API_BASE", "LLMLAB_MODELS"):
        monkeypatch.delenv(k, raising=False)
    for k, v in {"LLMLAB_DB": str(db), "LLMLAB_REPORTS_DIR": str(tmp_path),
                 "LLMLAB_SANDBOX_LATENCY_SCALE": "0.02", "LLMLAB_NOTEBOOK_LIMIT": str(PER_CATEGORY)}.items():
        monkeypatch.setenv(k, v)
    nb = execute_notebook(ROOT / "notebooks" / "structured.ipynb", output=tmp_path / "executed.ipynb",
                          timeout_s=300, cwd=str(ROOT / "notebooks"))
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    store = Store(db)
    res = store.results(store.runs().iloc[0]["run_id"])
    assert len(res) == 3 * PER_CATEGORY * 4 and (res.status == "ok").all() and res.quality.notna().all()
    assert (res.groupby("category")["prompt_id"].nunique() == PER_CATEGORY).all()      # 3 capabilities
    assert set(res[res.category == "json"].response_mode) == {"json_schema", "json_tool"}
    cfg = yaml.safe_load((tmp_path / "structured_routing.yaml").read_text())
    tags = {t for d in cfg["model_list"] for t in d["litellm_params"].get("tags", [])}
    assert {"conversation", "json", "tool_call", "default"} <= tags
