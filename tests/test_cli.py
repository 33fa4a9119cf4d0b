"""The CLI: run, runs, report, route --export, sql, models; bad input exits non-zero with one line, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from llmlab.cli import main
from llmlab.store import Store


@pytest.fixture
def env(sandbox, tmp_path):
    """The session sandbox (tests/conftest.py; LLMLAB_DB is already per test); returns the test's folder."""
    return tmp_path


def test_run_runs_report_route(env, sandbox, capsys):
    assert main(["run", "quickstart", "--models", "sandbox/frontier,@cheap", "--limit", "12", "--name", "cli-test"]) == 0
    out = capsys.readouterr().out
    assert "run_id:" in out
    assert sandbox.request_count() == 24
    store = Store()
    run_id = store.resolve_run("cli-test")
    assert len(store.results(run_id)) == 24
    assert main(["runs"]) == 0
    assert "cli-test" in capsys.readouterr().out
    html = env / "r.html"
    assert main(["report", "cli-test", "-o", str(html)]) == 0
    assert html.exists() and "<html" in html.read_text()[:500].lower()
    cfg_path = env / "routing.yaml"
    assert main(["route", run_id, "--export", str(cfg_path), "--min-n", "1"]) == 0
    cfg = yaml.safe_load(cfg_path.read_text())
    assert any(d["litellm_params"]["tags"] == ["default"] for d in cfg["model_list"])
    assert main(["sql", "SELECT count(*) AS n FROM calls"]) == 0
    assert "24" in capsys.readouterr().out


def test_dry_run_calls_nothing(env, sandbox, capsys):
    assert main(["run", "quickstart", "--models", "@sandbox", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "576 calls" in out and "estimated cost" in out
    assert sandbox.request_count() == 0


def test_models_lists_key_names_only(env, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-SECRET-000000000000")
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "OPENAI_API_KEY set" in out and "SECRET" not in out and "@cheap" in out


@pytest.mark.parametrize("argv, message", [
    (["run", "no-such-prompt-set", "--models", "sandbox/fast"], "no-such-prompt-set"),
    (["run", "quickstart", "--models", "sandbox/nope"], "sandbox/nope"),
    (["run", "quickstart", "--models", "@nope"], "@nope"),
    (["report", "no-such-run"], "no-such-run"),
    (["run", "quickstart", "--models", "sandbox/fast", "--concurrency", "0"], "concurrency"),
])
def test_bad_input_is_one_line_and_exit_2(env, capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("llmlab: error:") and message in err and "\n" not in err


def test_console_script_has_no_traceback(env):
    proc = subprocess.run([sys.executable, "-m", "llmlab.cli", "run", "missing.csv", "--models", "sandbox/fast"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "missing.csv" in proc.stderr


@pytest.mark.parametrize("argv", [["sql", "SELEC nonsense FROM"], ["sql", "SELECT * FROM no_such_table"]])
def test_sql_errors_are_one_line_not_a_traceback(env, capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("llmlab: error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_report_onto_a_directory_is_one_line(env, sandbox, capsys, tmp_path):
    assert main(["run", "quickstart", "-m", "sandbox/tiny", "--limit", "2"]) == 0
    capsys.readouterr()
    assert main(["report", "last", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("llmlab: error: ") and len(err.strip().splitlines()) == 1


def test_debug_shows_the_traceback(env):
    with pytest.raises(Exception):  # noqa: B017 - whatever DuckDB raises, --debug lets it through
        main(["--debug", "sql", "SELEC nonsense"])


def test_a_latin1_prompt_file_is_one_line_and_encoding_reads_it(env, sandbox, capsys, tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("prompt\ncaf\u00e9\n".encode("latin-1"))
    assert main(["run", str(path), "-m", "sandbox/tiny", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "latin.csv:2: not utf-8 text" in err and len(err.strip().splitlines()) == 1
    assert main(["run", str(path), "-m", "sandbox/tiny", "--dry-run", "--encoding", "latin-1"]) == 0


def test_runs_on_an_empty_store_says_so(env, capsys):
    assert main(["runs"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("no runs yet") and "Empty DataFrame" not in out
    assert main(["runs", "--json"]) == 0 and capsys.readouterr().out.strip() == "[]"


def test_runs_and_sql_print_json_and_csv_with_a_limit(env, sandbox, capsys):
    import json

    for _ in range(2):
        assert main(["run", "quickstart", "-m", "sandbox/tiny", "--limit", "1", "--no-cache"]) == 0
    capsys.readouterr()
    assert main(["runs", "--json", "--limit", "1"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert len(runs) == 1 and runs[0]["run_id"].startswith("r")
    assert main(["runs", "--csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("run_id,") and len(lines) == 3
    assert main(["sql", "SELECT count(*) AS n FROM calls", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 2}]


def test_report_compare_adds_the_comparison_of_two_runs(env, sandbox, capsys):
    assert main(["run", "quickstart", "--models", "sandbox/fast,sandbox/tiny", "--limit", "4", "--name", "a"]) == 0
    assert main(["run", "quickstart", "--models", "sandbox/fast,sandbox/tiny", "--limit", "4", "--name", "b",
                 "-t", "0.7"]) == 0
    html = env / "cmp.html"
    assert main(["report", "a", "--compare", "b", "-o", str(html)]) == 0
    text = html.read_text()
    assert "Run comparison" in text
    capsys.readouterr()
    assert main(["report", "a", "--compare", "no-such-run", "-o", str(html)]) == 2
    assert "no-such-run" in capsys.readouterr().err


def test_export_csv_and_json_print_one_row_per_call(env, sandbox, capsys):
    import io
    import json as _json

    import pandas as pd

    assert main(["run", "quickstart", "--models", "sandbox/fast,sandbox/tiny", "--limit", "3", "--name", "ex"]) == 0
    capsys.readouterr()
    assert main(["export", "ex", "--json"]) == 0
    rows = _json.loads(capsys.readouterr().out)
    assert len(rows) == 6 and {"call_id", "model", "response", "quality", "cost_usd"} <= set(rows[0])
    assert main(["export", "ex", "--csv"]) == 0
    frame = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert len(frame) == 6 and set(frame["model"]) == {"sandbox/fast", "sandbox/tiny"}
    out = env / "ex.csv"
    assert main(["export", "ex", "--csv", "-o", str(out)]) == 0
    assert len(pd.read_csv(out)) == 6
