"""notebooks/routing.ipynb runs end to end in a real Jupyter kernel on the real RouteLLM data: out-of-sample
metrics for every policy and benchmark, the export, and LiteLLM's Router serving the exported plugin.

Every cell runs, on 1,000 sampled MMLU prompts instead of 3,000 (``LLMLAB_NOTEBOOK_LIMIT=1000``, read by the
notebook's setup cell; GSM8K and MT-Bench whole, so the calibrated GSM8K policy and its served prompts are the same).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from llmlab._jupyter import execute_notebook
from llmlab.settings import routellm_dir

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.skipif(not (routellm_dir() / "gsm8k").is_dir(), reason="RouteLLM data not available")
def test_routing_notebook_measures_exports_and_serves(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMLAB_REPORTS_DIR", str(tmp_path))
    monkeypatch.setenv("LLMLAB_NOTEBOOK_LIMIT", "1000")
    nb = execute_notebook(ROOT / "notebooks" / "routing.ipynb", output=tmp_path / "executed.ipynb", timeout_s=300,
                          cwd=str(ROOT / "notebooks"))
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    table = next(o["data"]["text/plain"] for c in nb.cells for o in c.get("outputs", [])
                 if "text/plain" in o.get("data", {}) and "APGR 95% low" in o["data"]["text/plain"])
    for bench in ("gsm8k", "mt_bench", "mmlu"):
        assert bench in table
    html = "".join(o.get("data", {}).get("text/html", "") for c in nb.cells for o in c.get("outputs", []))
    assert html.count("Plotly.newPlot(") >= 3  # one figure per benchmark, as text/html (kept by an HTML export)
    cfg = yaml.safe_load((tmp_path / "routing-export" / "config.yaml").read_text())
    assert cfg["router_settings"]["plugins"] == ["llmlab_route.plugin"]
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    served = [line for line in text.splitlines() if "(offline answer from " in line]
    assert len(served) == 4
    # the two lowest-scored prompts went to Mixtral, the two highest to GPT-4, as the policy's threshold says
    assert all("Mixtral" in line for line in served[:2]) and all("gpt-4" in line for line in served[2:])
