"""llmlab.report: the self-contained HTML report (escaping, no external references, every section)."""

from __future__ import annotations

import html
import math
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from llmlab import analysis
from llmlab.views import report

HOSTILE_ANSWER = "<script>alert(1)</script> <img src=x onerror=alert(1)>"
HOSTILE_MODEL = "evil/<img src=x onerror=alert(3)>"
HOSTILE_PROMPT = "What is <iframe src=javascript:alert(4)>?"
HOSTILE_ERROR = "upstream said <svg onload=alert(5)>"


def make_results(models=("sandbox/fast", "sandbox/smart", HOSTILE_MODEL), categories=("math", "code"),
                 prompts_per_category=4, seed=0):
    """A synthetic results frame shaped like Store.results(), with hostile text in answers, prompts, errors."""
    rng = np.random.default_rng(seed)
    rows = []
    for m_i, model in enumerate(models):
        for c in categories:
            for p in range(prompts_per_category):
                err = p == prompts_per_category - 1  # the last prompt of each category fails
                rows.append({
                    "run_id": "r1", "call_id": f"{model}:{c}:{p}", "prompt_id": f"{c}-{p}", "sample_index": 0,
                    "category": c, "prompt": HOSTILE_PROMPT if p == 0 else f"question {c} {p}",
                    "reference": None, "model": model, "answered_by": None if err else model,
                    "status": "error" if err else "ok", "error_type": "RateLimitError" if err else None,
                    "http_status": 429 if err else None, "error_message": HOSTILE_ERROR if err else None,
                    "attempts": 3 if err else 1, "fallbacks_taken": 0,
                    "latency_ms": float(rng.gamma(2.0, 100.0)), "ttft_ms": float(rng.gamma(2.0, 20.0)),
                    "input_tokens": 20, "output_tokens": 40,
                    "cost_usd": math.nan if err else 0.001 * (m_i + 1), "cached": False,
                    "response": None if err else (HOSTILE_ANSWER if p == 0 else f"answer {p}"),
                    "created_at_utc": pd.Timestamp("2025-01-01", tz="UTC"),
                    "quality": math.nan if err else float(p % 2 == 0), "retry_wait_ms": 0.0,
                })
    frame = pd.DataFrame(rows)
    frame["http_status"] = frame["http_status"].astype("Int64")
    return frame


def make_run(sandbox=True, models=()):
    return {
        "run_id": "run-123", "name": "nightly <eval>", "created_at_utc": pd.Timestamp("2025-03-04 05:06:07", tz="UTC"),
        "prompt_set": "bundled:mixed", "models": list(models),
        "params": {"temperature": 0.0, "max_tokens": 256, "samples": 1, "concurrency": 8, "note": "<b>x</b>"},
        "llmlab_version": "0.1.0", "litellm_version": "1.106.2", "sandbox": sandbox, "n_prompts": 8, "tags": ["ci"],
    }


ROUTING_TABLE = pd.DataFrame([
    {"category": "math", "model": "sandbox/smart", "quality": 0.9, "quality_ci_low": 0.8, "quality_ci_high": 0.95,
     "n": 40, "latency_p95_ms": 800.0, "cost_per_1k_prompts_usd": 2.0, "fallbacks": ["sandbox/fast"],
     "reason": "best quality"},
    {"category": "default", "model": "sandbox/fast", "quality": 0.7, "quality_ci_low": 0.6, "quality_ci_high": 0.8,
     "n": 40, "latency_p95_ms": 300.0, "cost_per_1k_prompts_usd": 0.5, "fallbacks": ["sandbox/smart"],
     "reason": "cheapest within tolerance"},
])
PROJECTION = {"quality": 0.81, "cost_per_1k_prompts_usd": 1.25, "latency_p95_ms": 650.0,
              "baseline_model": "sandbox/smart", "baseline_quality": 0.83,
              "baseline_cost_per_1k_prompts_usd": 2.0, "savings_pct": 37.5}
CURVE = pd.DataFrame({"tolerance": [0.0, 0.05], "quality": [0.83, 0.81], "cost_per_1k_prompts_usd": [2.0, 1.25]})


class Tables(HTMLParser):
    """Collects every <table> as rows of cell texts, the ids, tag names and attribute names of all elements."""

    def __init__(self):
        super().__init__()
        self.tables, self.ids, self._cell = [], set(), None
        self.tags, self.attrs, self.scripts = set(), set(), 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        self.attrs.update(attrs)
        self.scripts += tag == "script"
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse(html_text):
    p = Tables()
    p.feed(html_text)
    return p


@pytest.fixture(scope="module")
def plotlyjs():
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


@pytest.fixture(scope="module")
def full_report(plotlyjs):
    results = make_results()
    comparison = analysis.compare_runs(results, make_results(seed=1))
    text = report.render_report(results, make_run(models=results["model"].unique()), routing_table=ROUTING_TABLE,
                                routing_projection=PROJECTION, tolerance_curve=CURVE, comparison=comparison,
                                examples_per_model=10)
    assert text.count(plotlyjs) == 1  # plotly.js embedded once, inline
    return results, text, text.replace(plotlyjs, "")  # the rest of the page, without the plotly.js bundle


def test_hostile_text_is_escaped_never_markup(full_report):
    _, _, page = full_report
    for hostile in (HOSTILE_ANSWER, HOSTILE_MODEL, HOSTILE_PROMPT, HOSTILE_ERROR):
        assert hostile not in page
    parsed = parse(page)
    assert not {"img", "iframe", "svg"} & parsed.tags
    assert not [a for a in parsed.attrs if a.startswith("on")]
    assert parsed.scripts == 1 + len(report.CHART_IDS)  # the plotly.js bundle and one per chart, nothing else
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &lt;img src=x onerror=alert(1)&gt;" in page
    assert "upstream said &lt;svg onload=alert(5)&gt;" in page
    # Every answer shown sits inside <pre>, escaped.
    assert re.search(r"<pre>[^<]*&lt;script&gt;alert\(1\)", page)
    assert "nightly &lt;eval&gt;" in page and "&lt;b&gt;x&lt;/b&gt;" in page


def test_no_external_references(full_report):
    _, _, page = full_report
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.I)
    assert not re.search(r"<link\b", page, re.I)
    assert not re.search(r"""\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, re.I)
    assert "@import" not in page


def test_every_chart_is_present(full_report):
    _, text, _ = full_report
    ids = parse(text).ids
    for div_id in report.CHART_IDS.values():
        assert div_id in ids
        assert re.search(r'Plotly\.newPlot\(\s*"' + re.escape(div_id) + '"', text), div_id


def test_summary_table_per_model(full_report):
    results, text, _ = full_report
    sm = analysis.summarize_models(results).set_index("model")
    summary_table = next(t for t in parse(text).tables if t[0][:3] == ["model", "calls", "quality"])
    body = {r[0]: r for r in summary_table[1:]}
    assert set(body) == set(sm.index)  # the hostile model id, unescaped by the parser, is a row like the others
    for model, r in body.items():
        assert r[1] == str(sm.loc[model, "n"])
        assert r[2] == f"{sm.loc[model, 'quality']:.3f}"
        assert r[3] == f"{sm.loc[model, 'quality_ci_low']:.3f} – {sm.loc[model, 'quality_ci_high']:.3f}"
        assert r[4] == f"{sm.loc[model, 'latency_p50_ms']:,.0f} ms"
        assert r[6] == f"${sm.loc[model, 'cost_per_1k_prompts_usd']:,.4f}"
        assert r[7] == f"{sm.loc[model, 'error_rate']:.1%}"


def test_routing_and_settings_sections(full_report):
    _, text, _ = full_report
    tables = parse(text).tables
    routing = next(t for t in tables if t[0][:2] == ["category", "model"])
    assert [r[0] for r in routing[1:]] == ["math", "default"]
    assert routing[1][7] == "sandbox/fast" and routing[1][8] == "best quality"
    projection = next(t for t in tables if t[0][1:3] == ["quality", "USD / 1k prompts"])
    assert projection[1][1:3] == ["0.810", "$1.2500"]
    assert projection[2][0].endswith("sandbox/smart") and projection[2][1:3] == ["0.830", "$2.0000"]
    assert "37.5%" in text
    settings = dict(r for r in next(t for t in tables if t[0] == ["setting", "value"])[1:])
    assert settings["LiteLLM version"] == "1.106.2"
    assert settings["llmlab version"] == "0.1.0"
    assert settings["prompt set"] == "bundled:mixed"
    assert settings["date (UTC)"] == "2025-03-04 05:06:07"
    assert HOSTILE_MODEL in settings["models"]  # parsed text: shown as text, escaped in the source
    params = dict(r for r in next(t for t in tables if t[0] == ["parameter", "value"])[1:])
    assert params["temperature"] == "0.0" and params["max_tokens"] == "256"


def test_examples_show_answers_and_errors_per_model(full_report):
    results, text, _ = full_report
    section = text[text.index('<section id="examples"'):]
    blocks = {}
    for chunk in section.split("<h3>")[1:]:
        title, _, body = chunk.partition("</h3>")
        blocks[title] = body
    assert set(blocks) == {html.escape(m) for m in results["model"].unique()}
    for body in blocks.values():
        assert "<div>Answer</div><pre>" in body
        assert "<div>Error</div><pre>RateLimitError (HTTP 429): upstream said &lt;svg" in body


def test_sandbox_notice_only_for_sandbox_runs():
    results = make_results(models=("sandbox/fast",), prompts_per_category=2)
    with_notice = report.render_report(results, make_run(sandbox=True), examples_per_model=1)
    without = report.render_report(results, make_run(sandbox=False), examples_per_model=1)
    assert 'id="sandbox-notice"' in with_notice and "simulated" in with_notice.lower()
    assert 'id="sandbox-notice"' not in without


def test_unknown_price_is_shown_as_unknown(tmp_path):
    results = make_results(models=("priced", "unpriced"), prompts_per_category=2)
    results.loc[results["model"] == "unpriced", "cost_usd"] = math.nan
    path = report.write_report(results, make_run(sandbox=False), tmp_path / "sub" / "report.html",
                               examples_per_model=1)
    assert path == tmp_path / "sub" / "report.html" and path.is_file()
    text = path.read_text(encoding="utf-8")
    summary_table = next(t for t in parse(text).tables if t[0][:2] == ["model", "calls"])
    row = next(r for r in summary_table if r[0] == "unpriced")
    assert row[6].startswith("unknown price") and "$0" not in row[6]
    assert "Price unknown for: unpriced" in text
    assert 'id="chart-comparison"' not in text  # no comparison given


def test_report_of_an_empty_run_still_renders():
    results = make_results().iloc[:0]
    text = report.render_report(results, {"run_id": "empty"})
    assert "no recorded calls" in text
    for key, div_id in report.CHART_IDS.items():
        assert (f'id="{div_id}"' in text) == (key != "comparison")


def test_missing_column_raises():
    with pytest.raises(analysis.ResultsFrameError):
        report.render_report(make_results().drop(columns=["status"]), make_run())
