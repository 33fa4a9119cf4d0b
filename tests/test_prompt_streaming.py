"""Prompt files too large to hold: read in chunks (llmlab.prompts.streaming) and planned chunk by chunk
(llmlab.runner.plan_stream, what ``llmlab run FILE --dry-run`` uses)."""

from __future__ import annotations

import json

import pytest

import llmlab
from llmlab.cli import main
from llmlab.errors import PromptSetError
from llmlab.prompts.streaming import StreamStats, iter_prompt_sets
from llmlab.runner.options import RunOptions
from llmlab.runner.plan import plan
from llmlab.runner.plan_stream import stream_plan


def _jsonl(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def _rows(n):
    return [{"id": f"q{i}", "prompt": f"What is {i} + {i}?", "category": ["a", "b", "c"][i % 3],
             "reference": str(2 * i)} for i in range(n)]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_chunks_hold_the_same_prompts_as_one_load(tmp_path, suffix):
    path = tmp_path / f"p{suffix}"
    if suffix == ".jsonl":
        _jsonl(path, _rows(10))
    else:
        import pandas as pd

        pd.DataFrame(_rows(10)).to_csv(path, index=False)
    stats = StreamStats()
    chunks = list(iter_prompt_sets(path, chunk_rows=3, stats=stats))
    assert [len(c) for c in chunks] == [3, 3, 3, 1]
    whole = llmlab.load_prompts(path)
    streamed = [p for c in chunks for p in c]
    assert [(p.prompt_id, p.category, p.reference, p.source_id, p.scorer) for p in streamed] == [
        (p.prompt_id, p.category, p.reference, p.source_id, p.scorer) for p in whole]
    assert (stats.rows_read, stats.prompts, stats.chunks, stats.repeats_dropped) == (10, 10, 4, 0)


def test_repeats_across_chunks_follow_load_prompts_rules(tmp_path):
    rows = _rows(4)
    again = dict(rows[0], id="q0")                                 # line 5: line 1 again, same reference
    path = _jsonl(tmp_path / "p.jsonl", [*rows, again])
    stats = StreamStats()
    kept = [p for c in iter_prompt_sets(path, chunk_rows=2, stats=stats) for p in c]
    assert len(kept) == 4 and stats.repeats_dropped == 1 and stats.rows_read == 5
    other_ref = dict(rows[0], id="q9", reference="-1")
    path = _jsonl(tmp_path / "q.jsonl", [*rows, other_ref])
    with pytest.raises(PromptSetError, match=r"q\.jsonl:1 and .*q\.jsonl:5 have the same prompt text with "
                                             r"different references"):
        list(iter_prompt_sets(path, chunk_rows=2))
    same_id = dict(rows[3], id="q0")                               # id q0 names another prompt, 3 chunks later
    path = _jsonl(tmp_path / "r.jsonl", [*rows[:3], *_rows(6)[4:], same_id])
    with pytest.raises(PromptSetError, match=r"r\.jsonl:1 and .*r\.jsonl:6 have the same id 'q0' but different"):
        list(iter_prompt_sets(path, chunk_rows=2))


def test_a_bad_line_in_a_later_chunk_names_its_line(tmp_path):
    path = _jsonl(tmp_path / "p.jsonl", _rows(6))
    with open(path, "a", encoding="utf-8") as f:
        f.write("{not json\n")
    chunks = iter_prompt_sets(path, chunk_rows=2)
    assert len(next(chunks)) == 2                                  # the first chunks arrive before the bad line
    with pytest.raises(PromptSetError, match=r"p\.jsonl:7: invalid JSON"):
        list(chunks)


def test_a_streamed_plan_sums_to_the_whole_plan(tmp_path, sandbox):
    path = _jsonl(tmp_path / "p.jsonl", _rows(25))
    opts = RunOptions(samples=2)
    whole = plan(str(path), ["sandbox/fast", "sandbox/tiny"], options=opts)
    summary = stream_plan(str(path), ["sandbox/fast", "sandbox/tiny"], options=opts, chunk_rows=4)
    assert (summary.n_calls, summary.n_prompts, summary.rows_read, summary.chunks) == (100, 25, 25, 7)
    assert summary.estimate_cost_usd() == pytest.approx(whole.estimate_cost_usd())
    assert summary.to_frame().drop(columns="est_cost_usd").to_dict("records") == (
        whole.to_frame().drop(columns="est_cost_usd").to_dict("records"))


def test_the_cli_dry_run_of_a_file_streams_it_and_says_how_many_rows_it_read(tmp_path, sandbox, capsys,
                                                                                 monkeypatch):
    monkeypatch.setenv("LLMLAB_DB", str(tmp_path / "s.duckdb"))
    path = _jsonl(tmp_path / "p.jsonl", _rows(30))
    assert main(["run", str(path), "--models", "sandbox/fast", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "streamed: 30 rows read from" in out and "30 calls = 30 prompts × 1 models" in out
    assert main(["run", str(path), "--models", "sandbox/fast", "--dry-run", "--budget", "0.0000001"]) == 2
    assert "exceeds --budget" in capsys.readouterr().err
    assert llmlab.Store().runs().empty                             # a dry run records nothing
