"""Beyond one-line prompts: conversations, structured output, tool calls and images, through the runner on both
wire formats (``sandbox/frontier`` goes through LiteLLM's ``openai`` provider, ``sandbox/balanced`` through its
``anthropic`` provider), the store, the scorers, the sandbox's request log and the magic's ``--chat`` form."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic import BaseModel

import llmlab
from llmlab.errors import PromptSetError
from llmlab.prompts import load_prompts, parse_transcript
from llmlab.scoring import score
from llmlab.scoring.structured import check_json_schema, score_call

OPENAI, ANTHROPIC = "sandbox/frontier", "sandbox/balanced"
FAST = dict(progress=False, timeout_s=20.0, backoff_base_s=0.01, backoff_max_s=0.05)
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                           "required": ["city"]}}}
PERSON = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"]}
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _requests(sandbox, model: str) -> list[dict]:
    return [e["request"] for e in sandbox.request_log if e["model"] == model.split("/")[1]]


# -- loading -----------------------------------------------------------------------------------------------


def test_a_conversation_row_fills_vars_in_every_text_part_and_reads_as_its_last_user_turn(tmp_path):
    path = _write_jsonl(tmp_path / "chat.jsonl", [{
        "messages": [{"role": "system", "content": "You help {name}."},
                     {"role": "user", "content": [{"type": "text", "text": "I live in {city}."}]},
                     {"role": "assistant", "content": "Noted, {name}."},
                     {"role": "user", "content": "Where do I live? {json_kept}"}],
        "name": "Ann", "city": "Oslo", "json_kept": '{"a": 1}', "reference": "Oslo", "scorer": "exact"}])
    (p,) = load_prompts(path)
    assert p.text == 'Where do I live? {"a": 1}'
    assert p.system == "You help Ann."
    assert p.messages[1]["content"] == [{"type": "text", "text": "I live in Oslo."}]
    assert p.messages[2]["content"] == "Noted, Ann."
    other = load_prompts([{"messages": [{"role": "user", "content": "Where do I live? x"}]}])[0]
    assert other.prompt_id != p.prompt_id


@pytest.mark.parametrize("bad, needle", [
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "robot", "content": "beep"}]},
     "messages[1]: unknown role 'robot'"),
    ({"prompt": "hi", "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "objekt"}}}]},
     "tools[0] (f): parameters is not a valid JSON Schema"),
    ({"prompt": "hi", "response_format": {"type": "object", "required": "name"}},
     "response_format is not a valid JSON Schema"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "missing.png"}}]}]},
     "image file not found"),
    ({"messages": [{"role": "tool", "content": "42"}, {"role": "user", "content": "and?"}]}, "needs a tool_call_id"),
])
def test_a_bad_row_is_an_error_naming_the_file_and_line(tmp_path, bad, needle):
    path = _write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "fine"}, bad])
    with pytest.raises(PromptSetError) as err:
        load_prompts(path)
    assert f"{path}:2" in str(err.value) and needle in str(err.value)


def test_a_bad_dataframe_row_names_the_row():
    import pandas as pd

    frame = pd.DataFrame({"messages": [json.dumps([{"role": "user", "content": "ok"}]),
                                       json.dumps([{"role": "narrator", "content": "no"}])]})
    with pytest.raises(PromptSetError, match=r"row 1: messages\[0\]: unknown role 'narrator'"):
        load_prompts(frame)


def test_an_image_file_is_kept_as_path_and_hash_and_sent_as_a_data_url(tmp_path):
    (tmp_path / "dot.png").write_bytes(PNG)
    path = _write_jsonl(tmp_path / "img.jsonl", [{"messages": [{"role": "user", "content": [
        {"type": "text", "text": "What colour is this pixel?"}, {"type": "image_url", "image_url": {"url": "dot.png"}}]}]}])
    (p,) = load_prompts(path)
    image = p.messages[0]["content"][1]["llmlab_image"]
    assert image["path"] == str(tmp_path / "dot.png") and len(image["sha256"]) == 64 and image["mime"] == "image/png"
    from llmlab.runner.plan import build_messages

    wire = build_messages(p.text, None, p.messages)
    assert wire[0]["content"][1]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(PNG).decode()


def test_parse_transcript_and_its_errors():
    assert parse_transcript("user: Hi\nthere\nAssistant: Hello!\nuser: Bye") == [
        {"role": "user", "content": "Hi\nthere"}, {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Bye"}]
    with pytest.raises(PromptSetError, match="line 1: text before the first"):
        parse_transcript("hello\nuser: hi")
    with pytest.raises(PromptSetError, match="no 'user:' turn"):
        parse_transcript("assistant: hi")


# -- scorers -----------------------------------------------------------------------------------------------


def _prompt(**kw):
    return SimpleNamespace(**{"scorer": None, "reference": None, "response_format": None, **kw})


def test_json_schema_scorer_passes_valid_and_names_the_first_violation():
    rf = {"type": "json_schema", "json_schema": {"name": "p", "schema": PERSON}}
    p = _prompt(scorer="json_schema", reference="{}", response_format=rf)
    assert score_call(p, {"status": "ok", "response": '{"name": "Ann", "age": 31}'}) == (1.0, None)
    assert score_call(p, {"status": "ok", "response": '```json\n{"name": "Ann", "age": 31}\n```'})[0] == 1.0
    value, comment = score_call(p, {"status": "ok", "response": '{"name": "Ann", "age": "old"}'})
    assert value == 0.0 and comment.startswith("$.age: 'old' is not of type 'integer'")
    assert score_call(p, {"status": "ok", "response": '{"name": "Ann"}'}) == (0.0, "$: 'age' is a required property")
    assert score_call(p, {"status": "ok", "response": "Sure! Here it is"})[1].startswith("not JSON")
    assert score("json_schema", '{"name": "A", "age": 3}', json.dumps(PERSON)) == 1.0  # text form: the reference
    assert check_json_schema([1], {"type": "array", "items": {"type": "string"}}) == "$[0]: 1 is not of type 'string'"


@pytest.mark.parametrize("spec, calls, expected", [
    ("tool_call", [{"name": "get_weather", "arguments": {"city": "oslo", "unit": "c"}}], (1.0, None)),
    ("tool_call:exact", [{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "c"}}],
     (0.0, "get_weather: unexpected argument 'unit'")),
    ("tool_call:exact", [{"name": "get_weather", "arguments": {"city": "Oslo"}}], (1.0, None)),
    ("tool_call", [{"name": "get_weather", "arguments": {"city": "Bergen"}}],
     (0.0, 'get_weather: argument \'city\' is "Bergen", expected "Oslo"')),
    ("tool_call", [{"name": "get_time", "arguments": {}}], (0.0, "called get_time, expected get_weather")),
    ("tool_call", None, (0.0, "no tool call (expected get_weather)")),
    ("tool_call", [{"name": "get_weather", "arguments": "{city: Oslo"}],
     (0.0, "get_weather: the arguments are not a JSON object: '{city: Oslo'")),
])
def test_tool_call_scorer_modes(spec, calls, expected):
    p = _prompt(scorer=spec, reference=json.dumps({"name": "get_weather", "arguments": {"city": "Oslo"}}))
    row = {"status": "ok", "response": "", "tool_calls": None if calls is None else json.dumps(calls)}
    assert score_call(p, row) == expected


def test_tool_call_schema_mode_and_no_tool_call():
    schema_ref = json.dumps({"name": "get_weather", "arguments": {"type": "object", "required": ["city"]}})
    p = _prompt(scorer="tool_call:schema", reference=schema_ref)
    ok = {"status": "ok", "tool_calls": json.dumps([{"name": "get_weather", "arguments": {"city": "X"}}])}
    assert score_call(p, ok) == (1.0, None)
    bad = {"status": "ok", "tool_calls": json.dumps([{"name": "get_weather", "arguments": {}}])}
    assert score_call(p, bad) == (0.0, "get_weather arguments: $: 'city' is a required property")
    none = _prompt(scorer="no_tool_call")
    assert score_call(none, {"status": "ok", "response": "56", "tool_calls": None}) == (1.0, None)
    assert score_call(none, ok) == (0.0, 'called get_weather({"city": "X"})')
    assert score_call(none, {"status": "error", "response": None}) == (0.0, "no answer (the call failed)")


# -- through the runner, both wire formats -----------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
def test_a_conversation_runs_on_both_wire_formats_and_the_store_keeps_it(sandbox, tmp_path, stream):
    rows = [{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "My code is K-{n}."},
                          {"role": "assistant", "content": "Noted."}, {"role": "user", "content": "Say my code."}],
             "n": 7}]
    res = llmlab.run(rows, [OPENAI, ANTHROPIC], stream=stream, **FAST)
    df = res.results
    assert list(df.status) == ["ok", "ok"]
    assert set(df.prompt) == {"Say my code."}
    stored = json.loads(df.messages.iloc[0])
    assert [m["role"] for m in stored] == ["system", "user", "assistant", "user"]
    assert stored[1]["content"] == "My code is K-7."
    assert _requests(sandbox, OPENAI)[0]["roles"] == ["system", "user", "assistant", "user"]
    anthropic = _requests(sandbox, ANTHROPIC)[0]
    assert anthropic["roles"] == ["user", "assistant", "user"] and anthropic["system"] is True
    again = llmlab.run(rows, [OPENAI, ANTHROPIC], stream=stream, **FAST)
    assert again.results.cached.all() and sandbox.request_count() == 2


@pytest.mark.parametrize("stream", [True, False])
def test_response_format_goes_native_to_openai_and_as_litellms_json_tool_to_anthropic(sandbox, stream):
    rows = [{"prompt": "Describe a person.", "response_format": PERSON, "scorer": "json_schema"}]
    df = llmlab.run(rows, [OPENAI, ANTHROPIC], stream=stream, **FAST).results.set_index("model")
    assert df.loc[OPENAI, "response_mode"] == "json_schema" and df.loc[ANTHROPIC, "response_mode"] == "json_tool"
    for model in (OPENAI, ANTHROPIC):
        assert set(json.loads(df.loc[model, "response"])) == {"name", "age"}
        assert df.loc[model, "quality"] == 1.0  # the scorer read the row's schema (no reference needed)
    assert _requests(sandbox, OPENAI)[0]["response_format"] == "json_schema"
    shape = _requests(sandbox, ANTHROPIC)[0]
    assert shape["tools"] == ["json_tool_call"] and shape["tool_format"] == "anthropic"
    assert shape["tool_choice"] == {"type": "tool", "name": "json_tool_call"}


def test_a_pydantic_model_as_run_option_and_invalid_answers_are_scored_with_the_violation(sandbox):
    class Person(BaseModel):
        name: str
        age: int

    res = llmlab.run("tools_and_json", ["sandbox/tiny"], **FAST)
    scores = llmlab.Store().scores(res.run_id).merge(res.results[["call_id", "category"]], on="call_id")
    json_scores = scores[scores.category == "json"]
    assert set(json_scores.score) == {0.0, 1.0}  # tiny keeps to the schema only sometimes (simulated)
    assert json_scores[json_scores.score == 0].comment.str.startswith("$").all()
    df = llmlab.run(["Describe someone."], [OPENAI], response_format=Person, **FAST).results
    assert json.loads(df.response_format.iloc[0])["json_schema"]["name"] == "Person"
    assert set(json.loads(df.response.iloc[0])) == {"name", "age"}


@pytest.mark.parametrize("stream", [True, False])
def test_tool_calls_in_each_providers_native_format_are_recorded(sandbox, stream):
    rows = [{"prompt": "What's the weather in Bergen?", "tools": [WEATHER], "tool_choice": "get_weather",
             "reference": json.dumps({"name": "get_weather", "arguments": {"city": "example"}}),
             "scorer": "tool_call"}]
    df = llmlab.run(rows, [OPENAI, ANTHROPIC], stream=stream, **FAST).results.set_index("model")
    for model in (OPENAI, ANTHROPIC):
        (call,) = json.loads(df.loc[model, "tool_calls"])
        assert call["name"] == "get_weather" and set(call["arguments"]) == {"city"}
        assert df.loc[model, "status"] == "ok"
        assert json.loads(df.loc[model, "tools"])[0]["function"]["name"] == "get_weather"
    openai_shape, anthropic_shape = _requests(sandbox, OPENAI)[0], _requests(sandbox, ANTHROPIC)[0]
    assert openai_shape["tool_format"] == "openai"
    assert openai_shape["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert anthropic_shape["tool_format"] == "anthropic"
    assert anthropic_shape["tool_choice"] == {"type": "tool", "name": "get_weather"}


def test_a_conversation_with_a_tool_turn_reaches_each_provider_in_its_own_blocks(sandbox):
    rows = [{"messages": [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "call_1", "type": "function",
                         "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "11 C, light rain"}], "tools": [WEATHER]}]
    df = llmlab.run(rows, [OPENAI, ANTHROPIC], **FAST).results
    assert list(df.status) == ["ok", "ok"] and df.tool_calls.isna().all()
    assert all("11 C, light rain" in r for r in df.response)
    openai_shape, anthropic_shape = _requests(sandbox, OPENAI)[0], _requests(sandbox, ANTHROPIC)[0]
    assert openai_shape["roles"] == ["user", "assistant", "tool"] and "tool_calls" in openai_shape["content_types"]
    assert {"tool_use", "tool_result"} <= set(anthropic_shape["content_types"])


def test_an_image_reaches_both_providers_and_the_store_keeps_no_bytes(sandbox, tmp_path):
    (tmp_path / "dot.png").write_bytes(PNG)
    path = _write_jsonl(tmp_path / "img.jsonl", [{"messages": [{"role": "user", "content": [
        {"type": "text", "text": "Describe this image."}, {"type": "image_url", "image_url": {"url": "dot.png"}}]}]}])
    df = llmlab.run(path, [OPENAI, ANTHROPIC], **FAST).results
    assert list(df.status) == ["ok", "ok"]
    stored = df.messages.iloc[0]
    assert "base64" not in stored and json.loads(stored)[0]["content"][1]["llmlab_image"]["sha256"]
    assert "image_url" in _requests(sandbox, OPENAI)[0]["content_types"]
    assert "image" in _requests(sandbox, ANTHROPIC)[0]["content_types"]


def test_the_bundled_set_compares_models_by_capability(sandbox):
    ps = load_prompts("tools_and_json")
    assert len(ps) >= 60 and ps.categories == ["conversation", "json", "tool_call"]
    res = llmlab.run(ps, [OPENAI, "sandbox/tiny"], **FAST)
    q = res.results.groupby(["category", "model"]).quality.mean()
    for category in ps.categories:
        assert q[(category, OPENAI)] > q[(category, "sandbox/tiny")]  # simulated profiles: frontier adheres more


# -- the magic -----------------------------------------------------------------------------------------------


def test_the_magic_chat_form_sends_the_transcript_as_a_conversation(sandbox, tmp_path, monkeypatch):
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.setenv("LLMLAB_DB", str(tmp_path / "magic.duckdb"))
    sh = InteractiveShell.instance()
    sh.reset(new_session=False)
    sh.run_line_magic("load_ext", "llmlab")
    sh.user_ns["who"] = "Priya"
    sh.run_cell_magic("llm", f"{OPENAI} {ANTHROPIC} --chat -o chat",
                      "system: Be brief.\nuser: My name is {who}.\nassistant: Hello!\nuser: What is my name?\n")
    df = sh.user_ns["chat"].results
    assert set(df.prompt) == {"What is my name?"}
    assert json.loads(df.messages.iloc[0])[1] == {"role": "user", "content": "My name is Priya."}
    assert _requests(sandbox, OPENAI)[0]["roles"] == ["system", "user", "assistant", "user"]
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="text before the first"):
        sh.run_cell_magic("llm", f"{OPENAI} --chat", "hello\nuser: hi\n")


@pytest.mark.parametrize("model", [OPENAI, ANTHROPIC])
def test_the_multi_step_mode_feeds_scripted_tool_results_back(sandbox, model):
    rows = [{"prompt": "What's the weather in Bergen?", "tools": [WEATHER], "tool_choice": "auto",
             "tool_results": {"get_weather": {"city": "Bergen", "temp_c": 11, "conditions": "light rain"}}}]
    one = llmlab.run(rows, [model], **FAST).results.iloc[0]
    assert one.response == "" and len(json.loads(one.tool_calls)) == 1 and one.attempts == 1
    res = llmlab.run(rows, [model], tool_steps=2, **FAST)
    row = res.results.iloc[0]
    assert row.status == "ok" and row.attempts == 2 and res.stats.requests == 2
    assert "light rain" in row.response  # the sandbox read the scripted result sent back as a tool turn
    (call,) = json.loads(row.tool_calls)
    assert call["name"] == "get_weather" and call["step"] == 0
    assert row.cache_key != one.cache_key
    shapes = _requests(sandbox, model)
    assert len(shapes) == 3
    if model == OPENAI:
        assert shapes[-1]["roles"] == ["user", "assistant", "tool"]
    else:
        assert {"tool_use", "tool_result"} <= set(shapes[-1]["content_types"])


def test_cards_show_the_tool_calls_escaped():
    from llmlab.views.display import cards_bundle, cards_from_rows

    row = {"model": OPENAI, "status": "ok", "response": "", "sample_index": 0,
           "tool_calls": json.dumps([{"name": "get_weather", "arguments": {"city": "<script>alert(1)</script>"}}])}
    (card,) = cards_from_rows([row])
    assert card.text == '→ get_weather({"city": "<script>alert(1)</script>"})'
    html = cards_bundle([card])["text/html"]
    assert "<script>" not in html and "get_weather" in html


@pytest.mark.parametrize("model", [OPENAI, ANTHROPIC])
def test_tool_choice_required_and_none_reach_each_provider(sandbox, model):
    rows = [{"prompt": "Tell me something about Bergen.", "tools": [WEATHER], "tool_choice": choice}
            for choice in ("required", "none")]
    df = llmlab.run(rows, [model], **FAST).results.set_index("prompt_id")
    by_choice = {json.loads(r.tool_choice): r for r in df.itertuples()}
    assert json.loads(by_choice["required"].tool_calls)[0]["name"] == "get_weather"
    assert not isinstance(by_choice["none"].tool_calls, str) and by_choice["none"].response
    sent = [s["tool_choice"] for s in _requests(sandbox, model)]
    assert ("required" in sent) if model == OPENAI else ({"type": "any"} in sent)


def test_bad_run_options_name_the_option_and_tools_change_the_cache_key(sandbox):
    with pytest.raises(PromptSetError, match=r"run option tools: tools\[0\] \(f\): parameters is not a valid JSON"):
        llmlab.run(["hi"], [OPENAI], tools=[{"name": "f", "parameters": {"type": 3}}], **FAST)
    with pytest.raises(PromptSetError, match="run option response_format: response_format class int is not a"):
        llmlab.run(["hi"], [OPENAI], response_format=int, **FAST)
    assert sandbox.request_count() == 0
    from llmlab.runner import plan

    plain = plan(["hi"], [OPENAI]).calls[0].cache_key
    tooled = plan(["hi"], [OPENAI], options=llmlab.RunOptions(tools=[WEATHER])).calls[0].cache_key
    chosen = plan(["hi"], [OPENAI], options=llmlab.RunOptions(tools=[WEATHER], tool_choice="none")).calls[0].cache_key
    assert len({plain, tooled, chosen}) == 3
