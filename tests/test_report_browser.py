"""The HTML report opened in headless Chromium: every chart renders, nothing hostile runs, no console error."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmlab import analysis
from llmlab.views import report

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
REPORTS_DIR = Path(__file__).resolve().parent.parent / "reports"
HOSTILE_ANSWER = "<script>alert(1)</script><img src=x onerror=alert(1)>"
HOSTILE_CATEGORY = "<img src=x onerror=alert(2)>"


def make_results(models=("sandbox/fast", "sandbox/smart", "sandbox/cheap", "openai/gpt-4o"),
                 categories=("math", "code", "qa", "summarize", "extract", HOSTILE_CATEGORY),
                 prompts_per_category=5, seed=0):
    """4 models x 6 categories, with failures of several kinds, a hostile answer and a hostile category."""
    rng = np.random.default_rng(seed)
    error_types = ("RateLimitError", "Timeout", "BadRequestError", "cancelled")
    rows = []
    for m_i, model in enumerate(models):
        for c in categories:
            for p in range(prompts_per_category):
                err = bool(rng.random() < 0.15)
                rows.append({
                    "run_id": "r1", "call_id": f"{model}:{c}:{p}", "prompt_id": f"{c}-{p}", "sample_index": 0,
                    "category": c, "prompt": f"question {c} {p}", "reference": None, "model": model,
                    "answered_by": None if err else model, "status": "error" if err else "ok",
                    "error_type": error_types[int(rng.integers(4))] if err else None,
                    "http_status": 429 if err else None, "error_message": HOSTILE_ANSWER if err else None,
                    "attempts": int(rng.integers(1, 4)), "fallbacks_taken": int(rng.random() < 0.1),
                    "latency_ms": float(rng.gamma(2.0, 100.0 * (m_i + 1))), "ttft_ms": float(rng.gamma(2.0, 20.0)),
                    "input_tokens": int(rng.integers(10, 100)), "output_tokens": int(rng.integers(10, 300)),
                    "cost_usd": math.nan if err else 0.0005 * (m_i + 1) ** 2, "cached": bool(rng.random() < 0.1),
                    "response": None if err else (HOSTILE_ANSWER if p == 0 else f"answer {p}"),
                    "created_at_utc": pd.Timestamp("2025-01-01", tz="UTC"),
                    "quality": math.nan if err else float(rng.random() < 0.4 + 0.15 * m_i), "retry_wait_ms": 0.0,
                })
    frame = pd.DataFrame(rows)
    frame["http_status"] = frame["http_status"].astype("Int64")
    return frame


def open_in_chromium(path: Path, chart_ids: list[str], screenshot: str) -> dict:
    """Open a report file in headless Debian chromium; return what a reader would see and what ran."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    console_errors, page_errors, dialogs, requests = [], [], [], []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: page_errors.append(str(e)))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(path.resolve().as_uri(), wait_until="load")
            for div_id in chart_ids:
                page.wait_for_selector(f"#{div_id} .main-svg", timeout=15_000)
            rendered = page.evaluate(
                """ids => ids.map(id => {
                    const el = document.getElementById(id);
                    return {id, svg: el.querySelectorAll('.main-svg').length,
                            marks: el.querySelectorAll('.trace, .point, .hm, .bars path, .box').length};
                })""",
                chart_ids,
            )
            seen = {
                "rendered": rendered,
                "sandbox_notice": page.inner_text("#sandbox-notice"),
                "answer_text": page.inner_text("#examples"),
                "injected": page.evaluate("document.querySelectorAll('#examples img, #examples script').length"),
            }
            page.wait_for_timeout(300)  # let any injected handler fire before judging
            REPORTS_DIR.mkdir(exist_ok=True)
            page.screenshot(path=str(REPORTS_DIR / screenshot))
        finally:
            browser.close()
    seen.update(console_errors=console_errors, page_errors=page_errors, dialogs=dialogs, requests=requests)
    return seen


def assert_rendered_safely(seen: dict, screenshot: str) -> None:
    for chart in seen["rendered"]:
        assert chart["svg"] >= 1, chart
        assert chart["marks"] >= 1, chart
    assert seen["dialogs"] == []
    assert seen["console_errors"] == [] and seen["page_errors"] == []
    assert all(url.startswith(("file:", "data:", "about:")) for url in seen["requests"]), seen["requests"]
    assert "simulated" in seen["sandbox_notice"].lower()
    assert HOSTILE_ANSWER in seen["answer_text"]  # shown as text
    assert seen["injected"] == 0
    assert (REPORTS_DIR / screenshot).stat().st_size > 0


def test_report_renders_in_chromium(tmp_path):
    results = make_results()
    run = {"run_id": "r1", "name": "browser check", "created_at_utc": pd.Timestamp("2025-01-01", tz="UTC"),
           "prompt_set": "synthetic", "models": sorted(results["model"].unique()),
           "params": {"temperature": 0.0, "max_tokens": 256, "samples": 1, "concurrency": 4},
           "llmlab_version": "0.1.0", "litellm_version": "1.106.2", "sandbox": True, "n_prompts": 30, "tags": []}
    routing_table = pd.DataFrame([
        {"category": "math", "model": "openai/gpt-4o", "quality": 0.9, "quality_ci_low": 0.8,
         "quality_ci_high": 0.95, "n": 5, "latency_p95_ms": 900.0, "cost_per_1k_prompts_usd": 8.0,
         "fallbacks": ["sandbox/smart"], "reason": "best quality"},
        {"category": "default", "model": "sandbox/fast", "quality": 0.6, "quality_ci_low": 0.4,
         "quality_ci_high": 0.75, "n": 25, "latency_p95_ms": 400.0, "cost_per_1k_prompts_usd": 0.5,
         "fallbacks": ["sandbox/smart"], "reason": "cheapest within tolerance"},
    ])
    projection = {"quality": 0.7, "cost_per_1k_prompts_usd": 2.0, "latency_p95_ms": 700.0,
                  "baseline_model": "openai/gpt-4o", "baseline_quality": 0.75,
                  "baseline_cost_per_1k_prompts_usd": 8.0, "savings_pct": 75.0}
    curve = pd.DataFrame({"tolerance": [0.0, 0.05, 0.1], "quality": [0.75, 0.7, 0.62],
                          "cost_per_1k_prompts_usd": [8.0, 2.0, 0.9]})
    comparison = analysis.compare_runs(results, make_results(seed=1))
    path = report.write_report(results, run, tmp_path / "report.html", routing_table=routing_table,
                               routing_projection=projection, tolerance_curve=curve, comparison=comparison)

    seen = open_in_chromium(path, list(report.CHART_IDS.values()), "report_screenshot.png")
    assert_rendered_safely(seen, "report_screenshot.png")


def test_the_report_of_a_sandbox_run_renders_in_chromium(sandbox, tmp_path):
    """The real path: a sandbox run (with a hostile answer) → `llmlab.report` (routing table, projection, tolerance
    curve and a comparison with a second run) → chromium."""
    import llmlab

    prompts = llmlab.load_prompts("quickstart").filter(per_category=3)
    hostile = llmlab.load_prompts([{"prompt": "SANDBOX_ECHO:" + HOSTILE_ANSWER, "category": "safety"}])
    mixed = llmlab.load_prompts([*({"prompt": p.text, "category": p.category, "reference": p.reference,
                                    "scorer": p.scorer} for p in prompts),
                                 {"prompt": hostile.prompts[0].text, "category": "safety"}])
    sandbox.inject("503", model="tiny", times=3)
    first = llmlab.run(mixed, ["sandbox/frontier", "sandbox/balanced", "sandbox/fast", "sandbox/tiny"],
                       progress=False, name="browser report")
    second = llmlab.run(mixed, ["sandbox/frontier", "sandbox/fast"], progress=False, temperature=0.7)
    path = llmlab.report(first.run_id, tmp_path / "sandbox-report.html", min_n=2, compare_with=second.run_id,
                         examples_per_model=8)   # 7 categories: every category's example is shown
    seen = open_in_chromium(path, list(report.CHART_IDS.values()), "report_sandbox_screenshot.png")
    assert_rendered_safely(seen, "report_sandbox_screenshot.png")
