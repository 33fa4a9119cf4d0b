"""Tables a person can read in a terminal: fitted to the width, hostile text inert, nothing dropped silently."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

import llmlab
from llmlab.cli import main
from llmlab.runner.handle import run_name
from llmlab.views.terminal import render_table, summary_for_terminal


def _wide_frame() -> pd.DataFrame:
    return pd.DataFrame({"model": ["sandbox/frontier", "sandbox/tiny"], "n": [12, 12], "quality": [0.91, 0.86],
                         "latency_p50_ms": [467.5, 258.3], "latency_p95_ms": [515.0, 375.1],
                         "cost_per_1k_prompts_usd": [0.03048, 0.006162], "error_rate": [0.0, 0.0],
                         "answer": ["[bold red]x[/] \x1b[31mred\x1b[0m", None]})


@pytest.mark.parametrize("width", [60, 80, 140])
def test_every_line_fits_and_columns_that_do_not_are_named(width):
    text = render_table(_wide_frame(), width=width)
    assert max(len(line) for line in text.splitlines()) <= width      # the footer is wrapped too
    table_part, _, footer_part = text.partition("\n(")
    lines = table_part.splitlines() + (["(" + " ".join(footer_part.split())] if footer_part else [])
    assert "sandbox/frontier" in text and "sandbox/tiny" in text      # the first column is never cut
    rule = next(i for i, line in enumerate(lines) if set(line.strip()) == {"─"})
    header = " ".join(lines[:rule])
    footer = lines[-1] if lines[-1].startswith("(") else ""
    named = footer.split(": ", 1)[1].split(";")[0].split(", ") if footer else []
    cols = list(_wide_frame().columns)
    kept = cols[: len(cols) - len(named)]
    assert named == cols[len(kept):]      # the columns that did not fit are the last ones, all named
    for col in kept:                      # and the others are in the table's header (which may wrap)
        assert col[:8] in header, col
    if footer:
        assert f"not shown at {width} columns" in footer and "--json" in footer
    if width >= 140:
        assert not footer


def test_model_output_in_a_cell_is_shown_as_text_not_as_markup_or_escape_codes():
    text = render_table(_wide_frame(), width=200)
    assert "\x1b" not in text
    assert "[bold red]x[/]" in text and "\\x1b[31mred" in text
    assert "–" in text                                                  # NULL shown as a dash, not "None"


def test_summary_for_terminal_puts_the_interval_beside_the_quality():
    summ = pd.DataFrame([{"model": "a", "n": 10, "quality": 0.9, "quality_ci_low": 0.6, "quality_ci_high": 0.98,
                          "latency_p50_ms": 410.2, "latency_p95_ms": 900.0, "cost_per_1k_prompts_usd": 0.0,
                          "error_rate": 0.1}])
    row = summary_for_terminal(summ).iloc[0]
    assert row["quality [95% CI]"] == "0.900 [0.60, 0.98]"
    assert row["cost_per_1k_usd"] == "free" and row["errors"] == "10.0%" and row["p95_ms"] == "900"


def test_run_names_tell_runs_apart():
    name = run_name("quickstart", ["sandbox/frontier", "sandbox/tiny"])
    assert re.fullmatch(r"quickstart · frontier, tiny · \d{4}-\d\d-\d\d \d\d:\d\d", name)
    assert run_name("gsm8k", [f"m/{i}" for i in range(5)]).startswith("gsm8k · 5 models · ")


def test_show_runs_and_json_outputs(sandbox, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    res = llmlab.run(llmlab.load_prompts("quickstart").filter(limit=3), ["sandbox/fast", "sandbox/tiny"],
                     progress=False)
    capsys.readouterr()
    assert main(["show", res.run_id]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"run {res.run_id}: quickstart · fast, tiny · ")
    assert "quality [95% CI]" in out and "sandbox/fast" in out
    assert max(len(line) for line in out.splitlines()[1:]) <= 80
    assert main(["show", res.run_id, "--by", "model,category", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["model"] for r in rows} == {"sandbox/fast", "sandbox/tiny"} and "quality_ci_low" in rows[0]
    assert main(["runs"]) == 0
    out = capsys.readouterr().out
    assert res.run_id in out and "finished" in out
    assert max(len(line) for line in out.splitlines() if not line.startswith("(")) <= 80
    assert main(["runs", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["run_id"] == res.run_id and "n_prompts" in listed[0]   # every column in JSON


def _routing_results(n: int = 6) -> pd.DataFrame:
    rows = []
    for cat, quality in (("extraction", {"sandbox/frontier": 1.0, "sandbox/tiny": 1.0}),
                         ("reasoning-with-a-long-category-name", {"sandbox/frontier": 1.0, "sandbox/tiny": 0.0}),
                         ("evil\x1b[31m", {"sandbox/frontier": 1.0, "sandbox/tiny": 1.0})):
        for i in range(n):
            for model, cost in (("sandbox/frontier", 0.001), ("sandbox/tiny", 0.0)):
                rows.append({"prompt_id": f"{cat}-{i}", "sample_index": 0, "model": model, "category": cat,
                             "quality": quality[model], "latency_ms": 100.0 + i, "cost_usd": cost, "status": "ok",
                             "cached": False, "ttft_ms": None, "input_tokens": 10, "output_tokens": 5})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("width", [60, 80])
def test_a_routing_table_prints_every_route_and_reason_in_a_plain_repl(width, monkeypatch):
    monkeypatch.setenv("COLUMNS", str(width))
    table = llmlab.routing_table(_routing_results(), min_n=5)
    text = repr(table)
    assert "[4 rows x 11 columns]" not in text and "..." not in text
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width
    assert " ".join(text.split()).startswith("routing table: 3 categories + default (tolerance 0.02, min_n 5")
    for row in table.to_dict("records"):                    # every category's model and reason is visible
        assert f"→ {row['model']}" in text
        assert " ".join(row["reason"].split())[:30] in " ".join(text.split())
    assert "free" in text                                   # price 0 reads as free, not $0
    assert "\x1b" not in text and "evil\\x1b[31m" in text    # a category's escape codes are shown, not obeyed
    assert isinstance(table, pd.DataFrame) and table.attrs["routing_settings"]["min_n"] == 5
    assert "model" in repr(table[["model"]])                # a slice without the table's columns prints as pandas
