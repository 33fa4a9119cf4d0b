"""One canary API key through the whole loop, on every surface: it appears nowhere a user or a file can see.

The key is the sandbox's (``LLMLAB_SANDBOX_API_KEY``), so every call carries it, over both provider paths the
sandbox speaks (``sandbox/fast``: the OpenAI wire; ``sandbox/tiny``: the Anthropic wire). In one test:

- the Python API runs answers that quote the key (verbatim and without its last character) and a 401 on each wire
  whose body quotes the key verbatim, without its last character, without its ``sk-`` prefix and base64-encoded
  (the sandbox's 401 does all four);
- the report (``llmlab.report``), the exported LiteLLM config, ``llmlab run`` and ``llmlab sql`` on the CLI;
- the production logger (``llmlab.LiteLLMLogger``) on a plain ``litellm.acompletion`` loop, a success and a 401;
- a notebook executed in a real kernel: the ``%%llm`` magic (its card), a run's display, a failed call's display;
- llmlab's log at DEBUG (LiteLLM's own loggers included) and every warning raised.

Then every byte of every file written (the DuckDB file and its WAL, the report, the config, the executed
notebook, the log file), everything printed and every warning is searched for the key, for any 12-character piece
of it and for its base64 form. The control: the same search finds the key's pieces in the test's own record of
what was sent (the sandbox saw the key on every request).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import warnings
from pathlib import Path

import nbformat
import pytest

import llmlab
from llmlab._jupyter import execute_notebook
from llmlab.cli import main

pytestmark = [pytest.mark.slow]

CANARY = "sk-llmlab-canary-everywhere-4d2f8a9c1b7e55"
PIECES = [CANARY[i:i + 12] for i in range(len(CANARY) - 11)] + [base64.b64encode(CANARY.encode()).decode()[:16]]
ECHO = f"SANDBOX_ECHO:my key is {CANARY} (or {CANARY[:-1]})"


def _leaks(text: str) -> list[str]:
    return [p for p in PIECES if p in text]


def _notebook() -> nbformat.NotebookNode:
    cells = [
        nbformat.v4.new_code_cell("import llmlab\n%load_ext llmlab"),
        nbformat.v4.new_code_cell(f"%%llm sandbox/fast sandbox/tiny\n{ECHO}"),
        nbformat.v4.new_code_cell("sb = llmlab.ensure_sandbox()\nsb.inject('401', model='fast', times=1)\n"
                                  "sb.inject('401', model='tiny', times=1)\n"
                                  "res = llmlab.run(['SANDBOX_ECHO:hello'], ['sandbox/fast', 'sandbox/tiny'], "
                                  "cache=False)\nres"),
        nbformat.v4.new_code_cell("res.results[['model', 'status', 'error_message']]"),
    ]
    return nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3",
                                                                          "display_name": "Python 3"}})


def test_a_canary_key_reaches_no_file_output_log_or_warning(sandbox, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LLMLAB_SANDBOX_API_KEY", CANARY)
    monkeypatch.setenv("LLMLAB_DB", str(tmp_path / "llmlab.duckdb"))
    monkeypatch.chdir(tmp_path)
    log_file = tmp_path / "llmlab.log"
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger("llmlab")          # llmlab's log; LiteLLM's own loggers are captured into it
    root.addHandler(handler)
    llmlab.set_log_level("DEBUG")
    printed: list[str] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # the Python API, both wires: answers quoting the key, and a 401 quoting it in four forms
            prompts = [{"prompt": ECHO, "category": "echo"}] + [
                {"prompt": p.text, "category": p.category, "reference": p.reference, "scorer": p.scorer}
                for p in llmlab.load_prompts("quickstart").filter(per_category=2)]
            res = llmlab.run(prompts, ["sandbox/fast", "sandbox/tiny"], progress=False, cache=False)
            sandbox.inject("401", model="fast", times=1)
            sandbox.inject("401", model="tiny", times=1)
            failed = llmlab.run(["SANDBOX_ECHO:hello"], ["sandbox/fast", "sandbox/tiny"], progress=False,
                                cache=False)
            assert (failed.results["http_status"] == 401).all()          # the 401s were recorded, redacted
            assert failed.results["error_message"].str.contains("redacted").all()
            printed += [repr(res), repr(failed), res.summary().to_string(), failed.results.to_string()]
            # the report and the exported config
            llmlab.report(res.run_id, tmp_path / "report.html")
            table = llmlab.routing_table(res.results, min_n=1)
            llmlab.export_litellm_config(table, tmp_path / "routing.yaml")
            printed.append(repr(table))
            # the CLI
            assert main(["run", str(_prompt_file(tmp_path)), "--models", "sandbox/fast", "--no-cache"]) == 0
            assert main(["sql", "SELECT * FROM calls"]) == 0
            assert main(["export", failed.run_id, "--json"]) == 0
            # the production logger on a plain LiteLLM loop: a success and a 401
            _production_calls(sandbox, tmp_path / "production.duckdb")
            # a notebook in a real kernel (its own sandbox, the same key from the environment)
            for k in ("LLMLAB_SANDBOX_API_BASE",):
                monkeypatch.delenv(k, raising=False)
            src = tmp_path / "canary.ipynb"
            nbformat.write(_notebook(), str(src))
            nb = execute_notebook(src, output=tmp_path / "canary.executed.ipynb", timeout_s=240, cwd=str(tmp_path))
            errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
            assert not errors, errors
            notebook_text = nbformat.writes(nb)
            assert "redacted" in notebook_text and "my key is" in notebook_text   # the calls did happen
        printed += [str(w.message) for w in caught]
    finally:
        root.removeHandler(handler)
        handler.close()
        llmlab.set_log_level("WARNING")
    out = capsys.readouterr()
    printed += [out.out, out.err]
    assert sandbox.stats()["requests"] > 0
    # the inputs the test wrote (a prompt file, the notebook's source) hold the key on purpose; the executed
    # notebook is checked without its cells' sources (what the user typed), on every output
    inputs = {"prompts.jsonl", "canary.ipynb", "canary.executed.ipynb"}
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.name not in inputs]
    for cell in nb.cells:
        cell["source"] = ""
    printed.append(nbformat.writes(nb))
    names = {p.name for p in files}
    assert {"llmlab.duckdb", "report.html", "routing.yaml", "llmlab.log", "production.duckdb"} <= names
    assert log_file.stat().st_size > 0                                  # DEBUG logging did write
    leaks = {str(p.relative_to(tmp_path)): _leaks(p.read_bytes().decode("latin-1")) for p in files}
    leaks.update({f"printed[{i}]": _leaks(t) for i, t in enumerate(printed)})
    found = {k: v for k, v in leaks.items() if v}
    if found:  # show where, with context, to fix the surface
        blobs = {str(p.relative_to(tmp_path)): p.read_bytes().decode("latin-1") for p in files}
        blobs.update({f"printed[{i}]": t for i, t in enumerate(printed)})
        for k, v in found.items():
            at = blobs[k].find(v[0])
            print(f"LEAK {k}: ...{blobs[k][max(0, at - 160):at + 80]!r}")
    assert found == {}
    assert _leaks(f"control: {CANARY}")                                 # the search does find the key


def _prompt_file(tmp_path: Path) -> Path:
    import json

    path = tmp_path / "prompts.jsonl"
    path.write_text("\n".join(json.dumps({"prompt": t}) for t in (ECHO, "What is 3 + 4?")) + "\n", encoding="utf-8")
    return path


def _production_calls(sandbox, db: Path) -> None:
    from llmlab._litellm import litellm

    ll = litellm()
    lg = llmlab.LiteLLMLogger(db=db)
    ll.callbacks = [lg]
    try:
        async def app() -> None:
            await ll.acompletion(model="openai/fast", api_base=sandbox.api_base, api_key=CANARY,
                                 messages=[{"role": "user", "content": ECHO}])
            sandbox.inject("401", model="fast", times=1)
            with pytest.raises(Exception):  # noqa: B017 - the application sees LiteLLM's AuthenticationError
                await ll.acompletion(model="openai/fast", api_base=sandbox.api_base, api_key=CANARY,
                                     messages=[{"role": "user", "content": "hello"}], max_retries=0)
            await lg.aflush()

        asyncio.run(app())
    finally:
        ll.callbacks = []
        ll.logging_callback_manager.remove_callback_from_all_lists(lg)
        lg.close()
    rows = llmlab.Store(db).results(lg.run_id)
    assert sorted(rows["status"]) == ["error", "ok"]
