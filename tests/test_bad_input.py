"""Every bad input, one case each: the error class, a message naming the problem, and nothing half-recorded.

Each case is one row of the README's bad-input table (section "Bad input: what llmlab answers"); the last test
checks the table and this file list the same case ids. A case runs a callable against an isolated store and the
session's sandbox; a run refused at planning must leave no run row and make no provider request.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import llmlab
from llmlab import errors
from llmlab.store import Store

ROOT = Path(__file__).resolve().parent.parent


def _write(tmp: Path, name: str, content: str | bytes) -> str:
    path = tmp / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return str(path)


def _run(prompts: Any, models: Any = ("sandbox/fast",), **kw: Any) -> Any:
    return llmlab.run(prompts, list(models) if not isinstance(models, str) else models, progress=False, **kw)


def _few() -> Any:
    return llmlab.load_prompts("quickstart").filter(limit=2)


def _cli(*argv: str) -> int:
    from llmlab.cli import main

    return main(list(argv))


def _seeded_store(tmp: Path) -> Store:
    store = Store(tmp / "seed.duckdb")
    llmlab.run(_few(), ["sandbox/fast"], store=store, progress=False)
    return store


# (id, what is wrong, callable(tmp) -> Any, expected exception, message regex)
CASES: list[tuple[str, str, Callable[[Path], Any], type[BaseException], str]] = [
    # -- prompt sets: files ----------------------------------------------------------------------------------
    ("unknown-bundled-set", "a prompt-set name that is neither bundled nor a file",
     lambda t: llmlab.load_prompts("quikstart"), errors.PromptSetError, r"quikstart.*quickstart"),
    ("missing-file", "a .jsonl path that does not exist",
     lambda t: llmlab.load_prompts(str(t / "nope.jsonl")), errors.PromptSetError, r"nope\.jsonl"),
    ("latin1-file", "a Latin-1 file read as UTF-8",
     lambda t: llmlab.load_prompts(_write(t, "l1.jsonl", '{"prompt": "caf\xe9"}\n'.encode("latin-1"))),
     errors.PromptSetError, r"l1\.jsonl:1: not utf-8.*latin-1"),
    ("bad-json-line", "a JSONL line that is not JSON",
     lambda t: llmlab.load_prompts(_write(t, "b.jsonl", '{"prompt": "a"}\n{"prompt": \n')),
     errors.PromptSetError, r"b\.jsonl:2: invalid JSON"),
    ("jsonl-not-object", "a JSONL line that is a list, not an object",
     lambda t: llmlab.load_prompts(_write(t, "l.jsonl", '["a", "b"]\n')), errors.PromptSetError, r"l\.jsonl:1: expected a JSON object"),
    ("empty-file", "an empty prompt file",
     lambda t: llmlab.load_prompts(_write(t, "e.jsonl", "")), errors.PromptSetError, r"e\.jsonl"),
    ("csv-unterminated-quote", "a CSV with an unterminated quote",
     lambda t: llmlab.load_prompts(_write(t, "q.csv", 'prompt\n"open quote\nnext\n')), errors.PromptSetError,
     r"q\.csv.*(quote|line)"),
    ("csv-no-prompt-column", "a CSV with no prompt column",
     lambda t: llmlab.load_prompts(_write(t, "c.csv", "question_text,answer\nhi,there\n")), errors.PromptSetError,
     r"c\.csv.*question_text"),
    ("duplicate-id", "two rows with one id and different prompts",
     lambda t: llmlab.load_prompts(_write(t, "d.jsonl", '{"id": "x", "prompt": "a"}\n{"id": "x", "prompt": "b"}\n')),
     errors.PromptSetError, r"d\.jsonl.*'x'"),
    ("unsupported-extension", "a file type llmlab does not read",
     lambda t: llmlab.load_prompts(_write(t, "p.xlsx", "x")), errors.PromptSetError, r"p\.xlsx"),
    # -- prompt sets: DataFrames, rows, templates, scorers ----------------------------------------------------
    ("empty-dataframe", "a DataFrame with no rows",
     lambda t: llmlab.load_prompts(pd.DataFrame({"prompt": []})), errors.PromptSetError, r"(empty|no rows)"),
    ("dataframe-unknown-category-column", "category_column naming no column",
     lambda t: llmlab.load_prompts(pd.DataFrame({"prompt": ["a"]}), category_column="kind"), errors.PromptSetError,
     r"kind"),
    ("empty-prompt-row", "a row whose prompt is blank",
     lambda t: llmlab.load_prompts(pd.DataFrame({"prompt": ["ok", "  "]})), errors.PromptSetError,
     r"row 1: empty prompt text in column 'prompt'"),
    ("unknown-scorer", "a scorer name that does not exist",
     lambda t: _run([{"id": "q7", "prompt": "a", "reference": "b", "scorer": "fuzzy"}]), errors.PromptSetError,
     r"prompt q7: unknown scorer 'fuzzy'.*known scorers"),
    ("bad-regex-scorer", "a regex scorer whose pattern does not compile",
     lambda t: _run([{"prompt": "a", "reference": "b", "scorer": "regex:(unclosed"}]),
     errors.PromptSetError, r"invalid regex in scorer spec 'regex:\(unclosed'"),
    ("numeric-scorer-no-number", "a numeric scorer whose reference holds no number",
     lambda t: _run([{"prompt": "a", "reference": "many", "scorer": "numeric"}]), errors.PromptSetError,
     r"numeric"),
    ("unknown-message-role", "a conversation turn with an unknown role",
     lambda t: llmlab.load_prompts([{"messages": [{"role": "wizard", "content": "hi"}]}]), errors.PromptSetError,
     r"wizard"),
    ("invalid-tool-schema", "a tool whose parameters are not valid JSON Schema",
     lambda t: llmlab.load_prompts([{"prompt": "a", "tools": [{"type": "function", "function": {
         "name": "f", "parameters": {"type": "not-a-type"}}}]}]), errors.PromptSetError, r"(schema|parameters)"),
    ("missing-image", "an image part whose file does not exist",
     lambda t: llmlab.load_prompts([{"messages": [{"role": "user", "content": [
         {"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": str(t / "cat.png")}]}]}]),
     errors.PromptSetError, r"cat\.png"),
    ("filter-unknown-category", "filter() with a category the set does not have",
     lambda t: llmlab.load_prompts("quickstart").filter(categories="poetry"), errors.PromptSetError, r"poetry"),
    ("sample-zero", "sample(0)",
     lambda t: llmlab.load_prompts("quickstart").sample(0), errors.PromptSetError, r"at least 1"),
    # -- models, aliases, keys, prices ----------------------------------------------------------------------
    ("unknown-alias", "an @alias that is not defined",
     lambda t: _run(_few(), ["@smartest"]), errors.ModelError, r"@smartest.*@smart"),
    ("unknown-sandbox-model", "a sandbox model that does not exist",
     lambda t: _run(_few(), ["sandbox/huge"]), errors.ModelError, r"sandbox/huge.*sandbox/frontier"),
    ("unknown-provider-model", "a string LiteLLM maps to no provider",
     lambda t: _run(_few(), ["not-a-provider-model"]), errors.ModelError, r"not-a-provider-model"),
    ("missing-key", "a provider model whose key variable is not set",
     lambda t: _run(_few(), ["groq/llama-3.1-8b-instant"]), errors.MissingKeyError, r"GROQ_API_KEY"),
    ("negative-price", "set_price with a negative price",
     lambda t: llmlab.set_price("openai/x", -1, 1), errors.ModelError, r">= 0"),
    ("register-key-as-name", "register_model(api_key_env=<the key itself>)",
     lambda t: llmlab.register_model("a/b", "openai/b", api_key_env="sk-live-abcdefghijklmnop"), errors.ModelError,
     r"NAME of an environment variable"),
    ("models-file-unknown-key", "a models file entry with a misspelt key",
     lambda t: llmlab.load_models(_write(t, "m.yaml", "models:\n  - {name: a/b, model: openai/b, api_bse: x}\n")),
     errors.ModelError, r"m\.yaml, entry 1: unknown key api_bse"),
    # -- run options -------------------------------------------------------------------------------------------
    ("unknown-option", "a misspelt run option",
     lambda t: _run(_few(), temprature=0.3), errors.OptionsError, r"unknown option 'temprature' \(did you mean"),
    ("option-out-of-range", "temperature 3",
     lambda t: _run(_few(), temperature=3), errors.OptionsError, r"temperature: .*less than or equal to 2"),
    ("rate-limit-unknown-key", "rate_limits with rps instead of rpm",
     lambda t: _run(_few(), rate_limits={"sandbox/fast": {"rps": 3}}), errors.OptionsError, r"unknown keys"),
    ("fallbacks-config-missing", "fallbacks= naming a config file that does not exist",
     lambda t: _run(_few(), fallbacks=str(t / "none.yaml")), errors.LLMLabError, r"none\.yaml"),
    ("fallbacks-config-not-litellm", "fallbacks= naming a YAML file that is not a LiteLLM config",
     lambda t: _run(_few(), fallbacks=_write(t, "x.yaml", "hello: world\n")), errors.LLMLabError, r"model_list"),
    ("budget-exceeded", "a budget below the plan's estimated cost",
     lambda t: _run(llmlab.load_prompts("quickstart"), ["sandbox/frontier"], budget_usd=1e-9), errors.BudgetError,
     r"budget"),
    # -- the store ---------------------------------------------------------------------------------------------
    ("store-is-directory", "a store path that is a directory",
     lambda t: Store(t).runs(), errors.StoreError, r"pytest"),
    ("store-not-duckdb", "a store path holding a file that is not DuckDB",
     lambda t: Store(_write(t, "notes.duckdb", "just text")).runs(), errors.StoreError, r"notes\.duckdb"),
    ("unknown-run", "a run id that is not in the store",
     lambda t: Store(t / "s.duckdb").results("r_nope"), errors.RunNotFoundError, r"r_nope"),
    ("rate-unknown-call", "a rating for a call id that does not exist",
     lambda t: _seeded_store(t).rate("c_nope", True), errors.CallNotFoundError, r"c_nope"),
    ("rating-out-of-range", "a 7-star rating",
     lambda t: (lambda s: s.rate(s.results(None)["call_id"].iloc[0], 7, scale="stars"))(_seeded_store(t)),
     ValueError, r"(1|one).*5"),
    # -- routing and exported configs ------------------------------------------------------------------------
    ("routing-no-scores", "a routing table from results without any quality score",
     lambda t: llmlab.routing_table(_run(["SANDBOX_ECHO:hi"]).results), errors.RoutingError, r"(score|quality)"),
    ("export-unpriced-model", "exporting a table whose model has no price",
     lambda t: llmlab.export_litellm_config(pd.DataFrame([{"category": "default", "model": "openai/my-ft-xyz",
                                                           "fallbacks": []}]), t / "c.yaml"),
     errors.RoutingError, r"openai/my-ft-xyz.*price"),
    # -- the CLI (one line on stderr, exit 2) ----------------------------------------------------------------
    ("cli-sql-syntax", "llmlab sql with a syntax error",
     lambda t: _cli("sql", "SELEC 1"), SystemExit, r"2"),
    ("cli-fallback-format", "llmlab run --fallback without '='",
     lambda t: _cli("run", "quickstart", "--models", "sandbox/fast", "--fallback", "sandbox/tiny"), SystemExit, r"2"),
    ("cli-report-to-directory", "llmlab report -o <an existing directory>",
     lambda t: (_seeded_store(t), _cli("--db", str(t / "seed.duckdb"), "report", "last", "-o", str(t))),
     SystemExit, r"2"),
]

CASE_IDS = [c[0] for c in CASES]


@pytest.mark.parametrize("case_id, what, fn, exc_type, pattern", CASES, ids=CASE_IDS)
def test_bad_input_gets_a_clear_error_and_records_nothing(case_id, what, fn, exc_type, pattern, tmp_path, sandbox,
                                                          capsys, monkeypatch):
    from llmlab import models

    monkeypatch.setattr(models, "_registered", dict(models._registered))
    monkeypatch.setattr(models, "_price_overrides", dict(models._price_overrides))
    db = Path(tmp_path / "llmlab.duckdb")
    if exc_type is SystemExit:
        # the CLI returns its exit status; one line on stderr says what is wrong (no traceback)
        out = fn(tmp_path)
        code = out[-1] if isinstance(out, tuple) else out
        err = capsys.readouterr().err.strip().splitlines()
        assert str(code) == pattern, (case_id, code, err)
        assert len(err) == 1 and err[0].startswith("llmlab: error: "), err
        assert "Traceback" not in err[0]
    else:
        with pytest.raises(exc_type) as info:
            fn(tmp_path)
        message = str(info.value)
        assert re.search(pattern, message, re.IGNORECASE | re.DOTALL), (case_id, message)
        assert "Traceback" not in message and "pydantic" not in message.lower()
    # nothing half-recorded: a refused run leaves no run row and sent no request
    if db.exists() and case_id not in ("routing-no-scores",):
        assert len(Store(db).runs()) == 0, case_id
    if case_id not in ("routing-no-scores", "rate-unknown-call", "rating-out-of-range", "cli-report-to-directory"):
        assert sandbox.request_count() == 0, case_id


def test_the_readme_table_lists_every_case():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Bad input: what llmlab answers", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `([a-z0-9-]+)` \|", section, re.MULTILINE)
    assert listed == CASE_IDS
    assert len(CASE_IDS) >= 40
