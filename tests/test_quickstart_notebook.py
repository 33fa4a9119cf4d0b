"""notebooks/quickstart.ipynb runs end to end in a real Jupyter kernel (nbclient), as `make demo` runs it.

Every cell runs, on the first 6 prompts of each of the six categories (``LLMLAB_NOTEBOOK_LIMIT=6``, read by the
notebook's setup cell: 36 prompts x 4 models, a quarter of the calls; 6 >= the routing table's ``min_n`` of 5, so
every category still gets its own row). ``make demo`` runs the whole set.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from llmlab._jupyter import execute_notebook
from llmlab.store import Store

ROOT = Path(__file__).resolve().parent.parent
PER_CATEGORY = 6


@pytest.mark.slow
def test_quickstart_notebook_writes_report_config_and_one_row_per_call(tmp_path, monkeypatch):
    db = tmp_path / "demo.duckdb"
    for k in ("LLMLAB_SANDBOX_API_BASE", "LLMLAB_MODELS"):
        monkeypatch.delenv(k, raising=False)
    env = {"LLMLAB_DB": str(db), "LLMLAB_REPORTS_DIR": str(tmp_path), "LLMLAB_SANDBOX_LATENCY_SCALE": "0.05",
           "LLMLAB_NOTEBOOK_LIMIT": str(PER_CATEGORY)}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    nb = execute_notebook(ROOT / "notebooks" / "quickstart.ipynb", output=tmp_path / "executed.ipynb",
                          timeout_s=300, cwd=str(ROOT / "notebooks"))
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    store = Store(db)
    runs = store.runs()
    assert len(runs) == 1
    res = store.results(runs.iloc[0]["run_id"])
    assert len(res) == 6 * PER_CATEGORY * 4                                # 6 categories x 4 models
    assert (res.groupby("category")["prompt_id"].nunique() == PER_CATEGORY).all()
    assert not res.duplicated(["prompt_id", "model", "sample_index"]).any()
    assert (res["status"] == "ok").all() and res["quality"].notna().all()
    report = (tmp_path / "quickstart.html").read_text()
    assert "simulated" in report.lower()
    assert 'src="http' not in report and "src='http" not in report        # plotly.js embedded: opens offline
    assert 'id="paired-summary-table"' in report and 'id="chart-ranking"' in report    # paired table, ranking
    cfg = yaml.safe_load((tmp_path / "routing.yaml").read_text())
    assert cfg["router_settings"]["enable_tag_filtering"] is True
    # figures survive export: plotly output carries text/html, not only plotly's own mimetype
    fig_outputs = [o for c in nb.cells for o in c.get("outputs", []) if "text/html" in o.get("data", {})
                   and "plotly" in o["data"]["text/html"]]
    assert len(fig_outputs) >= 4                                        # the ranking chart among them
    # plotly.js travels once (not once per figure), from no CDN: the executed notebook stays small
    bundles = [o["data"]["text/html"] for o in fig_outputs if "PlotlyConfig" in o["data"]["text/html"]]
    assert len(bundles) == 1
    assert all('<script src="http' not in o["data"]["text/html"] for o in fig_outputs)
    size_mb = (tmp_path / "executed.ipynb").stat().st_size / 1e6
    assert size_mb < 7, f"executed notebook {size_mb:.1f} MB"
    # the Router cell reached the routed deployment
    texts = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "→ llmlab-router--" in texts
