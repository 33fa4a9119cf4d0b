"""The ``%%llm`` / ``%llm`` magics, run through IPython's InteractiveShell against the local sandbox.

Each test gets its own DuckDB store (tmp dir) and a clean user namespace; the sandbox (loopback, random port,
the ``sandbox`` fixture of conftest.py) is shared by the session and its request counter proves what was and was
not called.
"""

from __future__ import annotations

import _thread
import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from IPython.core.error import UsageError  # noqa: E402
from IPython.core.interactiveshell import InteractiveShell  # noqa: E402
from IPython.utils.capture import capture_output  # noqa: E402

import llmlab  # noqa: E402
from llmlab.views import display as lldisplay  # noqa: E402
from llmlab.errors import BudgetError, MissingKeyError, ModelError, PromptSetError  # noqa: E402
from llmlab.models import reset_aliases  # noqa: E402
from llmlab.sandbox import Sandbox  # noqa: E402

KEY_VARS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GROQ_API_KEY", "GEMINI_API_KEY", "MISTRAL_API_KEY",
            "TOGETHERAI_API_KEY", "OPENROUTER_API_KEY", "DEEPSEEK_API_KEY")
SCRIPT = "<script>alert(1)</script>"


@pytest.fixture
def shell(sandbox, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMLAB_DB", str(tmp_path / "llmlab.duckdb"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("LLMLAB_SANDBOX_API_BASE", sandbox.api_base)
    monkeypatch.delenv("LLMLAB_MODELS", raising=False)
    for var in KEY_VARS:
        monkeypatch.delenv(var, raising=False)
    sandbox.clear_faults()
    reset_aliases()
    sh = InteractiveShell.instance()
    sh.reset(new_session=False)
    sh.run_line_magic("load_ext", "llmlab")
    magics = sh.magics_manager.registry["LLMMagics"]
    magics.default_models = ["sandbox/fast", "sandbox/tiny"]
    magics.live_updates = None
    magics.store_path = None
    yield sh
    sandbox.clear_faults()
    reset_aliases()


def run(sh, cell):
    """Run a cell; return (ExecutionResult, captured output with .outputs [RichOutput] and .stdout)."""
    with capture_output() as cap:
        result = sh.run_cell(cell, store_history=False)
    return result, cap


def htmls(cap) -> list[str]:
    return [o.data["text/html"] for o in cap.outputs if "text/html" in o.data]


def texts(cap) -> list[str]:
    return [o.data["text/plain"] for o in cap.outputs if "text/plain" in o.data]


def assert_usage_error(result, *words):
    err = result.error_in_exec
    assert err is not None and type(err) is UsageError, f"expected a UsageError, got {err!r}"
    msg = str(err)
    assert "\n" not in msg
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"
    return err


# -- the two main forms --------------------------------------------------------------------------------------
def test_cell_asks_each_model_once_and_shows_one_card_per_model(shell, sandbox):
    shell.user_ns["doc"] = "a report about cats and dogs"
    before = {m: sandbox.request_count(m) for m in ("frontier", "fast")}
    result, cap = run(shell, "%%llm sandbox/frontier sandbox/fast -o answers\nSummarize {doc} in three bullet points.")
    assert result.success, result.error_in_exec
    assert {m: sandbox.request_count(m) - before[m] for m in before} == {"frontier": 1, "fast": 1}

    answers = shell.user_ns["answers"]
    assert isinstance(answers, llmlab.RunResult)
    frame = answers.results
    assert sorted(frame["model"]) == ["sandbox/fast", "sandbox/frontier"]
    assert set(frame["status"]) == {"ok"}
    assert set(frame["prompt"]) == {"Summarize a report about cats and dogs in three bullet points."}
    assert answers.run_id in repr(answers) and "sandbox/frontier" in repr(answers)

    (html,) = htmls(cap)
    assert html.count('class="llmlab-card"') == 2
    assert html.index("sandbox/frontier") < html.index("sandbox/fast")  # the order the user gave
    for needle in ("latency", "TTFT", "tokens", "$"):
        assert needle in html
    (text,) = texts(cap)
    for _, row in frame.iterrows():
        assert row["response"].splitlines()[0] in text


def test_prompts_dataframe_template_per_row_with_category_and_options(shell, sandbox):
    import pandas as pd

    shell.user_ns["questions_df"] = pd.DataFrame({
        "question": ["What is 2+2?", "Name the capital of France.", "Which planet is largest?"],
        "topic": ["math", "geography", "astronomy"],
    })
    shell.user_ns["question"] = "THIS NAMESPACE VALUE MUST NOT BE USED"  # the row's column wins
    shell.user_ns["tone"] = "politely"  # not a column: filled from the namespace
    before = sandbox.request_count()
    result, cap = run(shell, "%%llm @cheap sandbox/balanced --prompts questions_df --category topic -t 0 "
                             "--max-tokens 256 -o run\nAnswer concisely and {tone}: {question}")
    assert result.success, result.error_in_exec
    assert sandbox.request_count() - before == 6

    run_result = shell.user_ns["run"]
    frame = run_result.results
    assert sorted(frame["model"].unique()) == ["sandbox/balanced", "sandbox/tiny"]  # @cheap is sandbox/tiny
    assert sorted(frame["category"].unique()) == ["astronomy", "geography", "math"]
    assert "Answer concisely and politely: What is 2+2?" in set(frame["prompt"])
    assert not frame["prompt"].str.contains("NAMESPACE").any()
    params = run_result.meta["params"]
    assert params["temperature"] == 0 and params["max_tokens"] == 256

    (html,) = htmls(cap)
    assert 'class="llmlab-grid"' in html
    assert html.count("<tr>") == 1 + 3  # header + one row per prompt
    (text,) = texts(cap)
    summary = [line for line in text.splitlines() if line.startswith(("sandbox/tiny:", "sandbox/balanced:"))]
    assert len(summary) == 2 and all("3 calls" in line for line in summary)


def test_prompts_from_a_jsonl_path_and_route_export(shell, sandbox, tmp_path):
    import yaml

    from llmlab.prompts import datasets_dir

    rows = [json.loads(line) for line in (datasets_dir() / "quickstart.jsonl").read_text().splitlines() if line.strip()]
    picked = [r for r in rows if r["category"] == "classification"][:4] + \
             [r for r in rows if r["category"] == "arithmetic"][:4]
    path = tmp_path / "mini.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in picked) + "\n")
    result, cap = run(shell, f"%%llm sandbox/frontier sandbox/tiny --prompts {path} -o scored\n{{prompt}};")
    assert result.success, result.error_in_exec
    assert cap.outputs == []  # the trailing ';' hides the display
    frame = shell.user_ns["scored"].results
    assert len(frame) == 16 and frame["quality"].notna().all()

    out = tmp_path / "routing.yaml"
    result, _ = run(shell, f"table = %llm route scored --export {out} --min-n 2")
    assert result.success, result.error_in_exec
    table = shell.user_ns["table"]
    assert "default" in set(table["category"])
    config = yaml.safe_load(out.read_text())
    assert {d["model_name"] for d in config["model_list"]} >= {"llmlab-router"}


# -- interpolation --------------------------------------------------------------------------------------------
def test_braces_that_name_no_variable_are_kept_and_no_interpolate_sends_verbatim(shell):
    shell.user_ns["doc"] = "DOC-VALUE"
    cell = ('SANDBOX_ECHO: explain {doc}: def f(x): return {k: v for k, v in x.items()}\n'
            'json {"a": {"b": 1}} latex \\frac{a}{b} {undefined_name} {{doubled}}')
    result, _ = run(shell, "%%llm sandbox/fast -o r\n" + cell)
    assert result.success, result.error_in_exec
    answer = shell.user_ns["r"].results["response"].iloc[0]
    assert answer == cell[len("SANDBOX_ECHO: "):].replace("{doc}", "DOC-VALUE")

    result, _ = run(shell, "%%llm sandbox/fast --no-interpolate -o r2\n" + cell)
    assert result.success, result.error_in_exec
    assert shell.user_ns["r2"].results["response"].iloc[0] == cell[len("SANDBOX_ECHO: "):]


def test_the_brace_cases_jupyter_ai_fails_on_are_sent_as_written(shell):
    """jupyter-ai's %%ai raises ValueError on these (its issues #27 and #967: str.format_map on the cell)."""
    shell.user_ns["TEXT"] = "code with {dict_comprehension}"
    shell.user_ns["dic"] = {"a": 1}
    cell = "SANDBOX_ECHO:{TEXT}\n{v:k for k,v in dic.items()}\nprint({'foo': 'bar'})\nrepeat the above"
    result, _ = run(shell, "%%llm sandbox/fast -o r\n" + cell)
    assert result.success, result.error_in_exec
    assert shell.user_ns["r"].results["response"].iloc[0] == (
        "code with {dict_comprehension}\n{v:k for k,v in dic.items()}\nprint({'foo': 'bar'})\nrepeat the above")


def test_magic_line_is_not_expanded_by_ipython(shell):
    shell.user_ns["who"] = "EXPANDED"
    result, _ = run(shell, '%%llm sandbox/fast -s "You are {who} and $who" -o r\nSANDBOX_ECHO: hi')
    assert result.success, result.error_in_exec
    prompts = shell.user_ns["r"].store.prompts(shell.user_ns["r"].run_id)
    # the system prompt is filled like the cell ({who}), but IPython's own $var expansion of the line is off
    assert prompts["system"].iloc[0] == "You are EXPANDED and $who"


# -- display safety ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["text", "markdown", "json", "code"])
def test_model_output_is_escaped_in_every_format(shell, fmt):
    result, cap = run(shell, f"%%llm sandbox/fast -f {fmt}\nSANDBOX_ECHO: {SCRIPT} <img src=x onerror=alert(2)> **b**")
    assert result.success, result.error_in_exec
    (html,) = htmls(cap)
    assert "<script" not in html.lower() and "<img" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    (text,) = texts(cap)
    assert SCRIPT in text  # the plain-text form shows the answer as it is


def test_markdown_format_renders_sanitized_markdown():
    html = lldisplay.answer_html("# Title\n\n**bold** [x](javascript:alert(1)) " + SCRIPT, "markdown")
    assert "<strong>bold</strong>" in html or "<pre" in html  # rendered, or escaped text without a Markdown library
    assert "javascript:" not in html and "<script" not in html


def test_cards_escape_model_ids_and_error_text():
    card = lldisplay.Card(model='<img src=x onerror="alert(1)">', status="error", error_type="<b>Bad</b>",
                          error_message=SCRIPT, http_status=500)
    bundle = lldisplay.cards_bundle([card], header="<i>h</i>", footer="<u>f</u>")
    html = bundle["text/html"]
    for raw in ("<img", "<script", "<b>Bad", "<i>h", "<u>f"):
        assert raw not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html and "HTTP 500" in html
    assert SCRIPT in bundle["text/plain"]


def test_format_json_pretty_prints_and_code_extracts_blocks(shell):
    result, cap = run(shell, '%%llm sandbox/fast -f json\nSANDBOX_ECHO: {"name": "Ada", "age": 36}')
    assert result.success, result.error_in_exec
    assert '{\n    "name": "Ada",\n    "age": 36\n  }' in texts(cap)[0]  # indented inside the card
    cell = "%%llm sandbox/fast -f code --no-interpolate\nSANDBOX_ECHO: Here:\n```python\nx = {1: 2}\n```\nbye"
    result, cap = run(shell, cell)
    assert result.success, result.error_in_exec
    (text,) = texts(cap)
    assert "x = {1: 2}" in text and "Here:" not in text and "bye" not in text


def test_failed_call_is_shown_as_an_error_card_not_raised(shell, sandbox):
    sandbox.inject("400", model="fast", times=1)
    result, cap = run(shell, "%%llm sandbox/fast sandbox/tiny -o r\nHello")
    assert result.success, result.error_in_exec
    frame = shell.user_ns["r"].results.set_index("model")
    assert frame.loc["sandbox/fast", "status"] == "error" and frame.loc["sandbox/tiny", "status"] == "ok"
    (html,) = htmls(cap)
    assert "HTTP 400" in html and html.count('class="llmlab-card"') == 2


# -- errors before any call ------------------------------------------------------------------------------------
def test_unknown_model_is_a_usage_error_before_any_call(shell, sandbox):
    before = sandbox.request_count()
    result, _ = run(shell, "%%llm sandbox/fast no-such-provider-model-xyz\nHello")
    err = assert_usage_error(result, "no-such-provider-model-xyz")
    assert isinstance(err.__cause__, ModelError)
    result, _ = run(shell, "%%llm sandbox/nope\nHello")
    assert_usage_error(result, "sandbox/nope")
    result, _ = run(shell, "%%llm @nosuchalias\nHello")
    assert_usage_error(result, "@nosuchalias")
    assert sandbox.request_count() == before


def test_missing_key_names_the_variable_before_any_call(shell, sandbox):
    before = sandbox.request_count()
    result, _ = run(shell, "%%llm sandbox/fast openai/gpt-4o-mini\nHello")
    err = assert_usage_error(result, "OPENAI_API_KEY")
    assert isinstance(err.__cause__, MissingKeyError)
    assert sandbox.request_count() == before


@pytest.mark.parametrize("line, words", [
    ("--bogus", ["--bogus"]),
    ("-t abc", ["temperature"]),
    ("-t 5", ["temperature"]),
    ("--max-tokens 0", ["--max-tokens"]),
    ("-n 0", ["samples"]),
    ("-o 1bad", ["1bad"]),
    ("-f html", ["format"]),
    ("--category topic", ["--prompts"]),
    ("--prompts no_such_variable_or_file", ["no_such_variable_or_file"]),
    ('-s "unbalanced', ["parse"]),
])
def test_bad_arguments_give_a_one_line_usage_error(shell, sandbox, line, words):
    before = sandbox.request_count()
    result, _ = run(shell, f"%%llm sandbox/fast {line}\nHello")
    assert_usage_error(result, *words)
    assert sandbox.request_count() == before


def test_prompt_template_naming_no_column_or_variable_fails(shell):
    import pandas as pd

    shell.user_ns["df"] = pd.DataFrame({"question": ["a?", "b?"]})
    result, _ = run(shell, "%%llm sandbox/fast --prompts df\n{question} {nowhere}")
    err = assert_usage_error(result, "nowhere")
    assert isinstance(err.__cause__, PromptSetError)


def test_empty_cell_and_usage_of_line_magic(shell):
    result, _ = run(shell, "%%llm sandbox/fast\n   \n")
    assert result.error_in_exec is not None and isinstance(result.error_in_exec, UsageError)
    result, _ = run(shell, "%llm")
    assert_usage_error(result, "subcommand")
    result, _ = run(shell, "%llm frobnicate")
    assert_usage_error(result, "frobnicate")


def test_budget_refuses_to_start_when_the_estimate_exceeds_it(shell, sandbox):
    before = sandbox.request_count()
    result, _ = run(shell, "%%llm sandbox/frontier --budget 0.000001\nWrite a long essay.")
    err = assert_usage_error(result, "budget")
    assert isinstance(err.__cause__, BudgetError)
    assert sandbox.request_count() == before
    result, _ = run(shell, "%%llm sandbox/tiny --budget 5 -o r\nHi")
    assert result.success, result.error_in_exec
    assert shell.user_ns["r"].meta["params"]["budget_usd"] == 5


def test_dry_run_shows_the_plan_and_calls_nothing(shell, sandbox):
    before = sandbox.request_count()
    result, cap = run(shell, "%%llm @sandbox -n 2 --dry-run -o p\nHello there")
    assert result.success, result.error_in_exec
    assert sandbox.request_count() == before
    (text,) = texts(cap)
    assert "nothing was called" in text and "8 calls" in text and "estimated cost $" in text
    for m in ("sandbox/frontier", "sandbox/balanced", "sandbox/fast", "sandbox/tiny"):
        assert m in text
    plan = shell.user_ns["p"]
    assert plan.n_calls == 8 and plan.estimate_cost_usd() > 0
    assert "<table" in htmls(cap)[0]


# -- cache, samples, config ------------------------------------------------------------------------------------
def test_second_run_comes_from_the_cache_unless_no_cache(shell, sandbox):
    cell = "%%llm sandbox/fast sandbox/tiny -o r\nName three colours."
    run(shell, cell)
    before = sandbox.request_count()
    result, cap = run(shell, cell)
    assert result.success and sandbox.request_count() == before
    assert shell.user_ns["r"].results["cached"].all()
    assert "cache hit" in texts(cap)[0]
    result, _ = run(shell, cell.replace("-o r", "-o r --no-cache"))
    assert result.success and sandbox.request_count() - before == 2


def test_samples_give_one_card_each(shell, sandbox):
    before = sandbox.request_count()
    result, cap = run(shell, "%%llm sandbox/fast -n 3 -t 0.7 -o r\nTell me a number.")
    assert result.success, result.error_in_exec
    assert sandbox.request_count() - before == 3
    assert htmls(cap)[0].count('class="llmlab-card"') == 3


def test_default_models_come_from_config(shell, sandbox):
    result, _ = run(shell, "%config LLMMagics.default_models = ['sandbox/balanced']")
    assert result.success, result.error_in_exec
    before = {m: sandbox.request_count(m) for m in ("balanced", "fast", "tiny")}
    result, _ = run(shell, "%%llm -o r\nHello config")
    assert result.success, result.error_in_exec
    assert {m: sandbox.request_count(m) - before[m] for m in before} == {"balanced": 1, "fast": 0, "tiny": 0}


def test_trailing_semicolon_hides_the_display_and_is_not_sent(shell):
    result, cap = run(shell, "%%llm sandbox/fast -o r\nSANDBOX_ECHO: quiet please;")
    assert result.success, result.error_in_exec
    assert cap.outputs == [] and cap.stdout == ""
    assert shell.user_ns["r"].results["response"].iloc[0] == "quiet please"


def test_name_and_tags_are_recorded(shell):
    result, _ = run(shell, "%%llm sandbox/tiny --name my-check --tag a --tag b -o r\nHi")
    assert result.success, result.error_in_exec
    meta = shell.user_ns["r"].meta
    assert meta["name"] == "my-check" and {"a", "b"} <= set(meta["tags"])


# -- live display ------------------------------------------------------------------------------------------------
def test_stream_updates_the_display_live_from_the_cell_thread(shell, monkeypatch):
    slow = Sandbox(port=0, latency_scale=0.25).start()
    try:
        monkeypatch.setenv("LLMLAB_SANDBOX_API_BASE", slow.api_base)
        shell.magics_manager.registry["LLMMagics"].live_updates = True
        words = " ".join(f"word{i}" for i in range(160))
        publishers: list[threading.Thread] = []
        with capture_output() as cap:
            pub = shell.display_pub
            original = pub.publish

            def recording(*a, **kw):
                publishers.append(threading.current_thread())
                return original(*a, **kw)

            pub.publish = recording
            result = shell.run_cell(f"%%llm sandbox/frontier sandbox/tiny --stream -o r\nSANDBOX_ECHO: {words}",
                                    store_history=False)
        assert result.success, result.error_in_exec
        assert slow.request_count() == 2
    finally:
        slow.stop()
    assert publishers and all(t is threading.main_thread() for t in publishers)
    outs = cap.outputs
    assert len(outs) >= 3 and all(o.update for o in outs[1:])
    ids = {o.transient.get("display_id") for o in outs}
    assert len(ids) == 1 and None not in ids  # one display, updated in place
    final = outs[-1].data["text/plain"]
    assert words in final and "streaming" not in final
    partial = [o.data["text/plain"] for o in outs if "streaming" in o.data["text/plain"]]
    assert any("word0 word1" in p and words not in p for p in partial), "no partial answer was shown"


def test_no_live_display_outside_a_kernel_by_default(shell):
    result, cap = run(shell, "%%llm sandbox/fast --stream\nHello")
    assert result.success, result.error_in_exec
    assert len(cap.outputs) == 1 and not cap.outputs[0].update


# -- interrupt ---------------------------------------------------------------------------------------------------
def test_interrupt_keeps_completed_calls_and_rerun_makes_only_the_missing_ones(shell, sandbox):
    # frontier holds its request (no answer) for hang_s; the interrupt comes well before that. (hang_s is kept
    # short because cancelling a streamed request that has no response headers yet currently waits for the
    # server to give up: reported to the runner's owner.)
    sandbox.inject("timeout", model="frontier", times=1, hang_s=6)
    cell = "%%llm sandbox/frontier sandbox/fast sandbox/tiny -o partial\nWrite a haiku about the sea."

    def interrupt_when_two_completed():
        # fast and tiny answer in milliseconds (latency_scale 0.02); frontier hangs until cancelled
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not all(
                sandbox.request_count(m) > before_counts[m] for m in before_counts):
            time.sleep(0.02)
        time.sleep(1.0)
        _thread.interrupt_main()

    before_counts = {m: sandbox.request_count(m) for m in ("frontier", "fast", "tiny")}
    t = threading.Thread(target=interrupt_when_two_completed, daemon=True)
    t.start()
    result, cap = run(shell, cell)
    t.join()
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    partial = shell.user_ns["partial"]
    status = partial.results.set_index("model")["status"].to_dict()
    assert status == {"sandbox/frontier": "error", "sandbox/fast": "ok", "sandbox/tiny": "ok"}
    assert partial.results.set_index("model").loc["sandbox/frontier", "error_type"] == "cancelled"
    assert partial.meta["status"] == "cancelled"
    assert any("interrupted" in t for t in texts(cap))

    sandbox.clear_faults()
    before = {m: sandbox.request_count(m) for m in ("frontier", "fast", "tiny")}
    result, _ = run(shell, cell.replace("-o partial", "-o done"))
    assert result.success, result.error_in_exec
    assert {m: sandbox.request_count(m) - before[m] for m in before} == {"frontier": 1, "fast": 0, "tiny": 0}
    done = shell.user_ns["done"].results.set_index("model")
    assert set(done["status"]) == {"ok"}
    assert done["cached"].to_dict() == {"sandbox/frontier": False, "sandbox/fast": True, "sandbox/tiny": True}


def test_works_inside_a_running_event_loop(shell, sandbox):
    """A Jupyter kernel runs cells inside its event loop: the magic must not need that loop."""
    async def main():
        cell = "%%llm sandbox/fast -o r\nHello from a loop"
        return await shell.run_cell_async(cell, store_history=False, transformed_cell=shell.transform_cell(cell))

    with capture_output():
        result = asyncio.run(main())
    assert result.success, result.error_in_exec
    assert shell.user_ns["r"].results["status"].iloc[0] == "ok"


def test_works_when_nest_asyncio_was_applied(tmp_path, sandbox):
    pytest.importorskip("nest_asyncio")
    code = f"""
import asyncio, nest_asyncio, os
nest_asyncio.apply()
os.environ['LLMLAB_DB'] = {str(tmp_path / 'db.duckdb')!r}
os.environ['LLMLAB_SANDBOX_API_BASE'] = {sandbox.api_base!r}
from IPython.core.interactiveshell import InteractiveShell
sh = InteractiveShell.instance()
sh.run_line_magic('load_ext', 'llmlab')
async def main():
    cell = '%%llm sandbox/fast -o r\\nHello nested'
    return await sh.run_cell_async(cell, store_history=False, transformed_cell=sh.transform_cell(cell))
r = asyncio.run(main())
assert r.success, r.error_in_exec
assert sh.user_ns['r'].results['status'].iloc[0] == 'ok'
print('OK')
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "OK" in out.stdout, out.stderr[-2000:]


# -- line magics ---------------------------------------------------------------------------------------------
def test_models_lists_models_aliases_and_key_names_never_values(shell, monkeypatch):
    secret = "sk-test-secret-value-0123456789"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    result, _ = run(shell, "out = %llm models")
    assert result.success, result.error_in_exec
    bundle = shell.user_ns["out"]._repr_mimebundle_()
    for part in bundle.values():
        assert secret not in part
    text = bundle["text/plain"]
    assert "sandbox/frontier" in text and "@cheap" in text
    openai_line = next(line for line in text.splitlines() if "OPENAI_API_KEY" in line)
    anthropic_line = next(line for line in text.splitlines() if "ANTHROPIC_API_KEY" in line)
    assert openai_line.rstrip().endswith("yes") and anthropic_line.rstrip().endswith("no")


def test_alias_defines_a_usable_alias(shell, sandbox):
    result, _ = run(shell, "%llm alias duo sandbox/fast sandbox/tiny")
    assert result.success, result.error_in_exec
    before = sandbox.request_count()
    result, _ = run(shell, "%%llm @duo -o r\nHi alias")
    assert result.success, result.error_in_exec
    assert sandbox.request_count() - before == 2
    result, _ = run(shell, "%llm alias lonely")
    assert_usage_error(result, "alias")


def test_runs_show_sql_and_compare(shell):
    run(shell, "%%llm sandbox/fast sandbox/tiny --name first-run -o first\nSANDBOX_ECHO: " + SCRIPT)
    run(shell, "%%llm sandbox/tiny --name second-run\nHi")

    result, _ = run(shell, "runs = %llm runs")
    assert result.success, result.error_in_exec
    assert list(shell.user_ns["runs"]["name"])[:2] == ["second-run", "first-run"]

    result, _ = run(shell, "shown = %llm show first-run")
    assert result.success, result.error_in_exec
    html = shell.user_ns["shown"]._repr_mimebundle_()["text/html"]
    assert html.count('class="llmlab-card"') == 2 and "<script" not in html and "&lt;script&gt;" in html
    result, _ = run(shell, "shown2 = %llm show first")  # a variable holding a RunResult
    assert result.success and "first-run" in repr(shell.user_ns["shown2"])
    result, _ = run(shell, "%llm show no-such-run")
    assert_usage_error(result, "no-such-run")

    result, _ = run(shell, "df = %llm sql \"SELECT model, count(*) AS n FROM calls GROUP BY model ORDER BY model\"")
    assert result.success, result.error_in_exec
    assert shell.user_ns["df"].to_dict("records") == [{"model": "sandbox/fast", "n": 1},
                                                      {"model": "sandbox/tiny", "n": 2}]
    result, _ = run(shell, "%llm sql SELEC nonsense")
    assert_usage_error(result, "SQL")

    result, _ = run(shell, "cmp = %llm compare first-run")
    assert result.success, result.error_in_exec
    cmp = shell.user_ns["cmp"]
    if importlib.util.find_spec("llmlab.widgets") is None:
        text = repr(cmp)
        assert "sandbox/fast" in text and "sandbox/tiny" in text and "latency_p50_ms" in text
    else:
        assert cmp is not None


def test_help(shell):
    result, cap = run(shell, "%%llm?")
    assert result.success, result.error_in_exec
    for needle in ("--dry-run", "--prompts", "%llm models", "{name}"):
        assert needle in cap.stdout
    result, _ = run(shell, "h = %llm help")
    assert result.success and "--budget" in repr(shell.user_ns["h"])


# -- loading -----------------------------------------------------------------------------------------------------
def test_loading_is_light_and_idempotent():
    code = """
import sys, json
from IPython.core.interactiveshell import InteractiveShell
sh = InteractiveShell.instance()
sh.run_line_magic('load_ext', 'llmlab')
sh.run_cell("%config LLMMagics.default_models = ['sandbox/tiny']")
import llmlab
llmlab.load_ipython_extension(sh)
sh.run_line_magic('load_ext', 'llmlab')
from llmlab.magic import LLMMagics
print(json.dumps({
    "heavy": sorted(m for m in ('litellm', 'plotly', 'pandas', 'duckdb') if m in sys.modules),
    "instances": sum(isinstance(c, LLMMagics) for c in sh.configurables),
    "defaults": sh.magics_manager.registry['LLMMagics'].default_models,
    "cell": 'llm' in sh.magics_manager.magics['cell'], "line": 'llm' in sh.magics_manager.magics['line'],
}))
"""
    env = {**os.environ, "LLMLAB_WARMUP": "0"}  # the warm-up (below) imports LiteLLM on purpose, in a thread
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parent.parent, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info == {"heavy": [], "instances": 1, "defaults": ["sandbox/tiny"], "cell": True, "line": True}


@pytest.mark.parametrize("warmup", ["1", "0"])
def test_load_ext_warms_litellm_in_a_daemon_thread_unless_turned_off(warmup):
    code = """
import sys, threading, json
from IPython.core.interactiveshell import InteractiveShell
sh = InteractiveShell.instance()
sh.run_line_magic('load_ext', 'llmlab')
sh.run_line_magic('load_ext', 'llmlab')
threads = [t for t in threading.enumerate() if t.name == 'llmlab-warmup']
daemon = all(t.daemon for t in threads)
for t in threads:
    t.join(120)
print(json.dumps({"threads": len(threads), "daemon": daemon, "litellm": 'litellm' in sys.modules}))
"""
    env = {**os.environ, "LLMLAB_WARMUP": warmup}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180,
                         cwd=Path(__file__).resolve().parent.parent, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    info = json.loads(out.stdout.strip().splitlines()[-1])
    if warmup == "1":   # one thread however often the extension loads; LiteLLM imported by it, not by the cell
        assert info == {"threads": 1, "daemon": True, "litellm": True}
    else:
        assert info == {"threads": 0, "daemon": True, "litellm": False}
