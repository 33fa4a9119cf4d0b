"""The confidence-aware routing table picks a cheaper model only where a paired comparison backs it."""

from __future__ import annotations

import pandas as pd
import pytest

from llmlab.routing import fit_policy, routing_table
from llmlab.routing.confident import confident_table

STRONG, WEAK = "sandbox/frontier", "sandbox/tiny"


def _frame(spec: dict[str, tuple[int, int]]) -> pd.DataFrame:
    """spec: category -> (prompts, prompts the weak model gets wrong); the strong model is always right."""
    rows = []
    for cat, (n, wrong) in spec.items():
        for i in range(n):
            for model, cost in ((STRONG, 0.01), (WEAK, 0.001)):
                q = 0.0 if (model == WEAK and i < wrong) else 1.0
                rows.append({"prompt_id": f"{cat}{i}", "prompt": f"{cat} question {i}", "category": cat,
                             "model": model, "quality": q, "cost_usd": cost, "status": "ok", "latency_ms": 100.0,
                             "sample_index": 0})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def results() -> pd.DataFrame:
    return _frame({"easy": (40, 0), "close": (60, 1), "hard": (40, 20), "tiny": (5, 0)})


def test_a_cheaper_model_needs_a_paired_interval_within_tolerance(results):
    t = confident_table(results, tolerance=0.0, min_n=20, n_boot=500).set_index("category")
    assert t.loc["easy", "model"] == WEAK and "best quality and the cheapest" in t.loc["easy", "reason"]
    assert t.loc["close", "model"] == STRONG and "no cheaper model is within 0" in t.loc["close", "reason"]
    assert t.loc["hard", "model"] == STRONG
    t2 = confident_table(results, tolerance=0.1, min_n=20, n_boot=500).set_index("category")
    assert t2.loc["close", "model"] == WEAK and t2.loc["close", "diff_ci_low"] >= -0.1
    assert t2.loc["hard", "model"] == STRONG  # a loss of 0.5 is never within 0.1
    # a loss of 1/60 passes the plain table's tolerance of 0.02, but its interval does not
    assert routing_table(results, tolerance=0.02, min_n=5).set_index("category").loc["close", "model"] == WEAK
    t3 = confident_table(results, tolerance=0.02, min_n=20, n_boot=500).set_index("category")
    assert t3.loc["close", "model"] == STRONG and t3.loc["close", "diff_ci_low"] == 0.0


def test_too_few_paired_prompts_fall_back_to_the_default_row_and_say_so(results):
    t = confident_table(results, tolerance=0.0, min_n=20, n_boot=500)
    assert "tiny" not in set(t["category"])
    assert "served by this row: tiny" in t.set_index("category").loc["default", "reason"]
    # the plain table picks the cheap model on five samples
    assert routing_table(results, tolerance=0.0, min_n=5).set_index("category").loc["tiny", "model"] == WEAK


def test_a_category_policy_can_be_fitted_confidence_aware(results):
    pol = fit_policy(results, kind="category", alpha=0.05, min_n=20, n_boot=300)
    assert pol.mapping["easy"] == WEAK and pol.mapping["hard"] == STRONG and "tiny" not in pol.mapping
    assert "diff_ci_low" in pol.table.columns


def test_a_category_policy_exports_the_tags_config(results, tmp_path):
    import yaml

    pol = fit_policy(results, kind="category", alpha=0.05, min_n=20, n_boot=300)
    cfg = yaml.safe_load(pol.export(tmp_path).read_text())
    assert cfg["router_settings"]["enable_tag_filtering"] is True and "plugins" not in cfg["router_settings"]
    tags = {d["litellm_params"]["tags"][0]: d["litellm_params"]["model"] for d in cfg["model_list"]
            if d["model_name"] == "llmlab-router"}
    assert tags["easy"] == "anthropic/tiny" and tags["hard"] == "openai/frontier" and "tiny" not in tags


def test_llmlab_route_kind_confident_prints_the_paired_reasons(results, tmp_path, capsys):
    import yaml

    from llmlab import cli
    from llmlab.routing import import_results

    run_id = import_results(results.drop(columns=["status", "latency_ms", "sample_index"]), name="confident")
    out_path = tmp_path / "routing.yaml"
    assert cli.main(["route", run_id, "--kind", "confident", "--tolerance", "0", "--min-n", "20",
                     "--export", str(out_path)]) == 0
    out = capsys.readouterr().out
    assert "out of sample (fitted on " in out and "in sample (fitted and evaluated on all prompts" in out
    cfg = yaml.safe_load(out_path.read_text())
    reasons = {d["litellm_params"]["tags"][0]: d["model_info"]["llmlab"]["reason"] for d in cfg["model_list"]
               if d["model_name"] == "llmlab-router"}
    assert "no cheaper model is within 0 at 95%" in reasons["close"]
    assert "served by this row: tiny" in reasons["default"]
