"""Prompt sets: loaders, error messages, templates, content-hash ids and the bundled quickstart set."""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from llmlab.errors import LLMLabError, PromptSetError
from llmlab.prompts import (
    Prompt,
    PromptSet,
    bundled_prompt_sets,
    datasets_dir,
    load_prompts,
    prompt_id_for,
    render,
    template_variables,
)
from llmlab.scoring import score

WRONG = "I am not certain; it may be something else"
CATEGORIES = {"extraction", "classification", "arithmetic", "code", "summarization", "reasoning"}
REPO_DATASETS = Path(__file__).resolve().parent.parent / "datasets"


@pytest.fixture(autouse=True)
def _no_datasets_override(monkeypatch):
    monkeypatch.delenv("LLMLAB_DATASETS_DIR", raising=False)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(path: Path, rows: list[dict]) -> Path:
    return write(path, "".join(json.dumps(r) + "\n" for r in rows))


# ---------------------------------------------------------------------------------------------- bundled set


@pytest.fixture(scope="module")
def quickstart() -> PromptSet:
    return load_prompts("quickstart")


def test_quickstart_shape(quickstart):
    assert quickstart.name == "quickstart"
    assert quickstart.source == "bundled:quickstart"
    assert len(quickstart) >= 132
    assert set(quickstart.categories) == CATEGORIES
    counts = Counter(p.category for p in quickstart)
    assert min(counts.values()) >= 22, counts


def test_quickstart_ids_and_texts_unique(quickstart):
    assert len({p.prompt_id for p in quickstart}) == len(quickstart)
    assert len({p.source_id for p in quickstart}) == len(quickstart)
    assert all(p.source_id for p in quickstart)
    texts = [p.text for p in quickstart]
    assert len(set(texts)) == len(texts)
    # the sandbox matches requests to items by substring: no prompt may contain another
    clashes = [(a.source_id, b.source_id) for a in quickstart for b in quickstart if a is not b and a.text in b.text]
    assert clashes == []


def test_quickstart_items_are_complete(quickstart):
    allowed = {
        "extraction": {"json_fields", "exact"},
        "classification": {"exact"},
        "arithmetic": {"numeric"},
        "code": {"regex", "exact"},
        "summarization": {"keywords"},
        "reasoning": {"exact", "choice", "numeric"},
    }
    for p in quickstart:
        assert p.reference and p.reference.strip(), p.source_id
        assert p.scorer, p.source_id
        assert p.scorer.split(":", 1)[0] in allowed[p.category], (p.source_id, p.scorer)
        if p.category != "summarization":
            assert len(p.reference.split()) < 30, p.source_id


@pytest.mark.parametrize("item", load_prompts(REPO_DATASETS / "quickstart.jsonl"), ids=lambda p: p.source_id)
def test_quickstart_reference_scores_one_and_wrong_answer_zero(item):
    assert score(item.scorer, item.reference, item.reference) == 1.0
    assert score(item.scorer, WRONG, item.reference) == 0.0


def test_quickstart_file_is_plain_jsonl_with_the_documented_fields():
    lines = (REPO_DATASETS / "quickstart.jsonl").read_text(encoding="utf-8").splitlines()
    for line in lines:
        row = json.loads(line)
        assert set(row) == {"id", "category", "prompt", "reference", "scorer"}
        assert all(isinstance(v, str) for v in row.values())


def test_bundled_prompt_sets_and_datasets_dir(tmp_path, monkeypatch):
    assert "quickstart" in bundled_prompt_sets()
    assert datasets_dir() == REPO_DATASETS
    monkeypatch.setenv("LLMLAB_DATASETS_DIR", str(tmp_path))
    jsonl(tmp_path / "mine.jsonl", [{"prompt": "Say hi"}])
    write(tmp_path / "notes.txt", "ignored")
    assert datasets_dir() == tmp_path
    assert bundled_prompt_sets() == ["mine"]
    ps = load_prompts("mine")
    assert ps.source == "bundled:mine" and ps.name == "mine" and len(ps) == 1


def test_unknown_bundled_name_lists_known_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PromptSetError) as info:
        load_prompts("quikstart")
    assert "'quikstart'" in str(info.value) and "quickstart" in str(info.value).replace("'quikstart'", "")


# ---------------------------------------------------------------------------------------------- JSONL


def test_load_jsonl(tmp_path):
    path = jsonl(
        tmp_path / "set.jsonl",
        [
            {"id": 7, "question": "What is 2+2?", "answer": 4, "category": "math", "scorer": "numeric", "extra": [1]},
            {"id": "b", "question": "Extract the name.", "answer": {"name": "Ann"}, "scorer": "json_fields"},
        ],
    )
    ps = load_prompts(path)
    assert ps.name == "set" and ps.source == str(path)
    first, second = ps
    assert (first.text, first.reference, first.category, first.scorer, first.source_id) == (
        "What is 2+2?", "4", "math", "numeric", "7")
    assert first.vars == {"id": 7, "question": "What is 2+2?", "answer": 4, "category": "math",
                          "scorer": "numeric", "extra": [1]}
    assert second.category == "default"
    assert json.loads(second.reference) == {"name": "Ann"}
    assert ps.categories == ["default", "math"]


def test_jsonl_skips_blank_lines_and_reports_real_line_numbers(tmp_path):
    path = write(tmp_path / "bad.jsonl", '{"prompt": "a"}\n\n{"prompt": "b"}\n{"prompt": "c",}\n')
    with pytest.raises(PromptSetError) as info:
        load_prompts(path)
    message = str(info.value)
    assert f"{path}:4:" in message and "invalid JSON" in message and "column" in message


def test_jsonl_line_that_is_not_an_object(tmp_path):
    path = write(tmp_path / "list.jsonl", '{"prompt": "a"}\n["b"]\n')
    with pytest.raises(PromptSetError, match=r"list\.jsonl:2: expected a JSON object, got a list"):
        load_prompts(path)


def test_jsonl_empty_prompt_names_line_and_column(tmp_path):
    path = jsonl(tmp_path / "e.jsonl", [{"prompt": "ok"}, {"prompt": "   "}])
    with pytest.raises(PromptSetError, match=r"e\.jsonl:2: empty prompt text in column 'prompt'"):
        load_prompts(path)


def test_jsonl_row_without_the_prompt_field(tmp_path):
    path = jsonl(tmp_path / "m.jsonl", [{"prompt": "ok"}, {"question": "other"}])
    with pytest.raises(PromptSetError, match=r"m\.jsonl:2: no prompt text.*'prompt'.*question"):
        load_prompts(path)


def test_empty_files_are_errors(tmp_path):
    for name, text in (("a.jsonl", "\n\n"), ("b.csv", "prompt,reference\n"), ("c.json", "[]")):
        with pytest.raises(PromptSetError, match="empty"):
            load_prompts(write(tmp_path / name, text))
    with pytest.raises(PromptSetError, match="empty CSV"):
        load_prompts(write(tmp_path / "d.csv", ""))


# ---------------------------------------------------------------------------------------------- CSV


def test_load_csv_with_multiline_fields(tmp_path):
    path = write(
        tmp_path / "set.csv",
        '\ufeffid,input,expected,category\n'
        '1,"First line\nsecond line",yes,a\n'
        '2,Plain,,b\n'
        ',Third,007,\n',
    )
    ps = load_prompts(path)
    assert [p.text for p in ps] == ["First line\nsecond line", "Plain", "Third"]
    assert [p.reference for p in ps] == ["yes", None, "007"]  # empty -> None; text kept as text
    assert [p.category for p in ps] == ["a", "b", "default"]
    assert [p.source_id for p in ps] == ["1", "2", None]


def test_csv_errors_name_the_line(tmp_path):
    path = write(tmp_path / "e.csv", 'prompt,reference\n"multi\nline",x\n"",y\n')
    with pytest.raises(PromptSetError, match=r"e\.csv:4: empty prompt text in column 'prompt'"):
        load_prompts(path)
    path = write(tmp_path / "wide.csv", "prompt,reference\na,b\nc,d,e\n")
    with pytest.raises(PromptSetError, match=r"wide\.csv:3: 3 fields but the header has 2 columns"):
        load_prompts(path)
    path = write(tmp_path / "dup.csv", "prompt,prompt\na,b\n")
    with pytest.raises(PromptSetError, match=r"dup\.csv:1: duplicate column"):
        load_prompts(path)


def test_csv_without_prompt_column_lists_columns(tmp_path):
    path = write(tmp_path / "nocol.csv", "doc,label\nhello,x\n")
    with pytest.raises(PromptSetError) as info:
        load_prompts(path)
    message = str(info.value)
    assert str(path) in message and "no prompt column" in message and "doc, label" in message


def test_explicit_columns(tmp_path):
    path = write(tmp_path / "cols.csv", "doc,label,kind,check,key\nhello,greeting,t1,exact,k1\n")
    ps = load_prompts(path, prompt_column="doc", reference_column="label", category_column="kind",
                      scorer_column="check", id_column="key")
    p = ps[0]
    assert (p.text, p.reference, p.category, p.scorer, p.source_id) == ("hello", "greeting", "t1", "exact", "k1")
    with pytest.raises(PromptSetError, match=r"reference column 'gold' not found; columns are: doc, label"):
        load_prompts(path, prompt_column="doc", reference_column="gold")


# ---------------------------------------------------------------------------------------------- JSON, paths


def test_load_json_list(tmp_path):
    path = write(tmp_path / "set.json", json.dumps([{"text": "One"}, {"text": "Two", "target": 2}]))
    ps = load_prompts(path)
    assert [p.text for p in ps] == ["One", "Two"] and ps[1].reference == "2"


def test_json_errors(tmp_path):
    with pytest.raises(PromptSetError, match=r"bad\.json:2: invalid JSON"):
        load_prompts(write(tmp_path / "bad.json", '[\n{"text": }]'))
    with pytest.raises(PromptSetError, match="expected a JSON list of objects"):
        load_prompts(write(tmp_path / "obj.json", '{"text": "a"}'))
    with pytest.raises(PromptSetError, match=r"item 1: expected a JSON object, got a string"):
        load_prompts(write(tmp_path / "mixed.json", '[{"text": "a"}, "b"]'))


def test_missing_file_and_unsupported_extension(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(PromptSetError, match="prompt file not found") as info:
        load_prompts(missing)
    assert str(missing) in str(info.value)
    with pytest.raises(PromptSetError, match="not found"):
        load_prompts(str(missing))
    with pytest.raises(PromptSetError, match=r"unsupported prompt file extension '\.txt'.*\.csv"):
        load_prompts(write(tmp_path / "p.txt", "hello"))


def test_unsupported_source_type():
    with pytest.raises(PromptSetError, match="cannot load prompts from int"):
        load_prompts(42)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- DataFrame, lists


def test_load_dataframe():
    frame = pd.DataFrame(
        {"question": ["Q1", "Q2"], "answer": [34.0, math.nan], "category": ["x", None]}, index=["a", "b"]
    )
    ps = load_prompts(frame)
    assert ps.source == "dataframe" and ps.name == "dataframe"
    assert [p.reference for p in ps] == ["34", None]  # an int column with gaps comes back as 34.0
    assert [p.category for p in ps] == ["x", "default"]
    flags = load_prompts(pd.DataFrame({"prompt": ["Is it?"], "answer": [True]}))
    assert flags[0].reference == "true"  # numpy bool -> JSON spelling


def test_dataframe_errors_name_the_row():
    with pytest.raises(PromptSetError, match=r"no prompt column.*columns are: doc, gold"):
        load_prompts(pd.DataFrame({"doc": ["a"], "gold": ["b"]}))
    with pytest.raises(PromptSetError, match=r"row r2: empty prompt text in column 'prompt'"):
        load_prompts(pd.DataFrame({"prompt": ["a", None]}, index=["r1", "r2"]))


def test_load_lists():
    ps = load_prompts(["What is 2+2?", {"prompt": "Capital of France?", "answer": "Paris", "category": "geo"}])
    assert ps.source == "list" and ps.name == "prompts"
    assert [p.text for p in ps] == ["What is 2+2?", "Capital of France?"]
    assert ps[1].reference == "Paris" and ps[1].category == "geo" and ps[0].category == "default"
    with pytest.raises(PromptSetError, match="item 1: expected a string or a dict, got int"):
        load_prompts(["a", 3])
    with pytest.raises(PromptSetError, match="empty"):
        load_prompts([])


def test_prompt_set_is_returned_as_is_without_changes():
    ps = load_prompts(["a", "b"])
    assert load_prompts(ps) is ps


# ---------------------------------------------------------------------------------------------- templates


@pytest.mark.parametrize(
    "template",
    [
        'Reply as JSON like {"a": 1, "b": [2]}',
        r"Simplify \frac{a}{b} + \sqrt{x^2}",
        "if (x) { return y; }",
        "{ spaced }",
        "positional {0} and {1}",
        "double {{name}} and }} and {{",
        "{not-an-identifier} {a.b}",
        "",
    ],
)
def test_render_leaves_non_variable_braces_alone(template):
    assert render(template, {"name": "N", "x": "X"}) == template


def test_render_fills_known_variables_once():
    assert render("Q: {question}\nDoc: {doc}", {"question": "Why?", "doc": "{doc} stays"}) == "Q: Why?\nDoc: {doc} stays"
    assert render(r"\frac{a}{b}", {"a": 1, "b": 2}) == r"\frac12"
    assert render("{x}{x}", {"x": None}) == ""
    assert render("{data}", {"data": {"k": [1, 2]}}) == '{"k": [1, 2]}'
    assert render("{unknown} {0}", {}) == "{unknown} {0}"


def test_render_strict():
    with pytest.raises(PromptSetError, match="template variable 'doc' is not given; available: q"):
        render("{q} {doc}", {"q": 1}, strict=True)
    assert render('{q} {"json": 1}', {"q": 1}, strict=True) == '1 {"json": 1}'


def test_template_variables():
    assert template_variables('{a} {b} {a} {{c}} { d } {0} {"e": 1} {_f2} {é}') == ["a", "b", "_f2", "é"]


def test_load_with_template_uses_all_fields(tmp_path):
    path = jsonl(tmp_path / "t.jsonl", [{"doc": "Cats sleep a lot.", "n": 5, "answer": "cats"},
                                        {"doc": "Dogs bark.", "n": 3, "answer": "dogs"}])
    ps = load_prompts(path, template='Summarize in {n} words: {doc}\nReply as {"summary": "..."}')
    assert ps[0].text == 'Summarize in 5 words: Cats sleep a lot.\nReply as {"summary": "..."}'
    assert ps[1].reference == "dogs"
    assert ps[0].vars["doc"] == "Cats sleep a lot."


def test_template_missing_variable_names_row_variable_and_columns(tmp_path):
    path = jsonl(tmp_path / "t.jsonl", [{"a": 1, "doc": "x"}, {"a": 2, "b": 3}])
    with pytest.raises(PromptSetError) as info:
        load_prompts(path, template="Read {doc}")
    assert str(info.value) == f"{path}:2: template variable 'doc' is not a column; columns are: a, b"
    frame = pd.DataFrame({"doc": ["x", None]})
    with pytest.raises(PromptSetError, match=r"row 1: template variable 'doc' is empty"):
        load_prompts(frame, template="Read {doc}")


def test_template_errors():
    with pytest.raises(PromptSetError, match="not both"):
        load_prompts(["a"], template="{prompt}", prompt_column="prompt")
    with pytest.raises(PromptSetError, match="renders to empty"):
        load_prompts([{"x": " "}], template="{x}")


def test_retemplating_a_prompt_set_keeps_references_and_ids_follow_text():
    base = load_prompts([{"question": "2+2?", "answer": "4", "category": "math", "scorer": "numeric"}])
    again = load_prompts(base, template="Answer briefly. {question}")
    assert again[0].text == "Answer briefly. 2+2?"
    assert (again[0].reference, again[0].category, again[0].scorer) == ("4", "math", "numeric")
    assert again[0].prompt_id != base[0].prompt_id
    with_system = load_prompts(base, system="Be terse.")
    assert with_system[0].text == base[0].text and with_system[0].system == "Be terse."


def test_system_prompt_argument_and_column():
    ps = load_prompts([{"prompt": "Hi", "lang": "French"}], system="Answer in {lang}.")
    assert ps[0].system == "Answer in French."
    ps = load_prompts(pd.DataFrame({"prompt": ["Hi"], "system": ["You are terse."]}))
    assert ps[0].system == "You are terse."


# ---------------------------------------------------------------------------------------------- ids


def test_prompt_ids_are_content_hashes():
    assert prompt_id_for("Hello") == hashlib.sha256(b"Hello").hexdigest()[:16]
    assert prompt_id_for("Hello", "Sys") == hashlib.sha256(b"Sys\x00Hello").hexdigest()[:16]
    assert prompt_id_for("Hello") != prompt_id_for("Hello ")
    assert prompt_id_for("Hello") != prompt_id_for("Hello", "Sys")


def test_prompt_ids_are_stable_across_sources(tmp_path):
    from_list = load_prompts(["What is 2+2?", "Name a prime."])
    from_csv = load_prompts(write(tmp_path / "p.csv", "prompt,category\nWhat is 2+2?,x\nName a prime.,y\n"))
    from_frame = load_prompts(from_csv.to_frame())
    ids = [p.prompt_id for p in from_list]
    assert ids == [p.prompt_id for p in from_csv] == [p.prompt_id for p in from_frame]
    assert len(set(ids)) == 2


def test_prompt_create_and_hashability():
    p = Prompt.create("Hello", category=None, vars={"k": [1]})
    assert p.category == "default" and p.prompt_id == prompt_id_for("Hello")
    assert hash(p) == hash(Prompt.create("Hello", vars={"k": [2]}))
    with pytest.raises(PromptSetError, match="empty prompt text"):
        Prompt.create("  ")


# ---------------------------------------------------------------------------------------------- duplicates


def test_duplicate_texts_with_different_references_name_both_lines(tmp_path):
    path = jsonl(tmp_path / "d.jsonl", [{"prompt": "Q", "reference": "a"}, {"prompt": "R"}, {"prompt": "Q", "reference": "b"}])
    with pytest.raises(PromptSetError) as info:
        load_prompts(path)
    message = str(info.value)
    assert f"{path}:1 and {path}:3" in message and "different references" in message


def test_exact_duplicates_are_dropped_with_a_warning(tmp_path, caplog):
    path = jsonl(tmp_path / "d.jsonl", [{"prompt": "Q", "reference": "a"}, {"prompt": "Q", "reference": "a"}])
    with caplog.at_level(logging.WARNING, logger="llmlab.prompts"):
        ps = load_prompts(path)
    assert len(ps) == 1
    assert f"{path}:2" in caplog.text


# ---------------------------------------------------------------------------------------------- PromptSet API


@pytest.fixture
def small() -> PromptSet:
    rows = [{"prompt": f"{cat} question {i}", "category": cat, "answer": str(i)} for cat in "abc" for i in range(4)]
    return load_prompts(rows, name="small")


def test_prompt_set_basics(small):
    assert len(small) == 12 and small.categories == ["a", "b", "c"]
    assert [p.text for p in small][:2] == ["a question 0", "a question 1"]
    assert small.by_id(small[5].prompt_id) is small[5]
    with pytest.raises(KeyError):
        small.by_id("0" * 16)
    assert "small" in repr(small) and "12" in repr(small)


def test_to_frame(small):
    frame = small.to_frame()
    assert list(frame.columns) == ["prompt_id", "category", "prompt", "reference", "scorer", "system", "source_id"]
    assert len(frame) == 12 and frame["prompt"].iloc[4] == "b question 0" and frame["reference"].iloc[4] == "0"


def test_filter(small):
    assert [p.category for p in small.filter(categories="b")] == ["b"] * 4
    assert len(small.filter(categories=["a", "c"])) == 8
    per = small.filter(per_category=2)
    assert [p.text for p in per] == ["a question 0", "a question 1", "b question 0", "b question 1",
                                      "c question 0", "c question 1"]
    assert [p.text for p in small.filter(per_category=2, limit=3)] == [p.text for p in per][:3]
    assert small.filter(limit=100) == small
    with pytest.raises(PromptSetError, match=r"unknown category 'z'.*categories are: a, b, c"):
        small.filter(categories=["a", "z"])
    with pytest.raises(PromptSetError, match="non-negative integer"):
        small.filter(limit=-1)
    with pytest.raises(PromptSetError, match="empty"):
        small.filter(limit=0)


def test_sample_is_seeded_and_keeps_order(small):
    first = small.sample(5, seed=1)
    assert first == small.sample(5, seed=1)
    assert len(first) == 5 and len({p.prompt_id for p in first}) == 5
    positions = [small.prompts.index(p) for p in first]
    assert positions == sorted(positions)
    assert [p.prompt_id for p in small.sample(5, seed=2)] != [p.prompt_id for p in first]  # the seed matters
    assert len(small.sample(50)) == 12
    with pytest.raises(PromptSetError):
        small.sample(0)


def test_errors_are_value_errors():
    with pytest.raises(ValueError):
        load_prompts([])
    assert issubclass(PromptSetError, LLMLabError)


# -- encodings, duplicate ids, unterminated quotes (one error naming the file and line) --------------------------
def test_a_latin1_file_names_the_file_line_and_encoding(tmp_path):
    from llmlab.errors import PromptSetError
    from llmlab.prompts import load_prompts

    for ext, body in ((".jsonl", '{"prompt": "ok"}\n{"prompt": "caf\u00e9 au lait"}\n'),
                      (".csv", 'prompt\nok\ncaf\u00e9 au lait\n')):
        path = tmp_path / f"latin{ext}"
        path.write_bytes(body.encode("latin-1"))
        with pytest.raises(PromptSetError, match=rf"latin\{ext}:\d: not utf-8 text .*Latin-1.*encoding='latin-1'"):
            load_prompts(path)
        ps = load_prompts(path, encoding="latin-1")
        assert [p.text for p in ps] == ["ok", "caf\u00e9 au lait"]


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    from llmlab.prompts import load_prompts

    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffprompt\nhello\n".encode())
    assert [p.text for p in load_prompts(path)] == ["hello"]


def test_two_rows_with_the_same_id_and_different_prompts_are_refused(tmp_path):
    from llmlab.errors import PromptSetError
    from llmlab.prompts import load_prompts

    path = tmp_path / "ids.jsonl"
    path.write_text('{"id": "q1", "prompt": "first"}\n{"id": "q2", "prompt": "x"}\n{"id": "q1", "prompt": "other"}\n')
    with pytest.raises(PromptSetError, match=r"ids.jsonl:1 and .*ids.jsonl:3 have the same id 'q1'"):
        load_prompts(path)


def test_an_unterminated_csv_quote_is_an_error_naming_its_line(tmp_path):
    from llmlab.errors import PromptSetError
    from llmlab.prompts import load_prompts

    path = tmp_path / "quote.csv"
    path.write_text('prompt,category\nfine,a\n"never closed,b\nthird,c\nfourth,d\n')
    with pytest.raises(PromptSetError, match=r"quote.csv:3: a quoted field .* never closed"):
        load_prompts(path)


# -- conversations, structured output, tools (see also tests/test_structured.py) -----------------------------


def test_a_plain_prompt_keeps_its_id_and_a_structured_one_round_trips_through_to_frame():
    plain = load_prompts(["What is 2+2?"])[0]
    assert plain.prompt_id == prompt_id_for("What is 2+2?") and not plain.structured
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    rows = [{"messages": [{"role": "user", "content": "Count to {n}."}], "n": 3, "response_format": schema,
             "tools": [{"name": "count", "parameters": {"type": "object"}}], "tool_choice": "count"}]
    ps = load_prompts(rows)
    p = ps[0]
    assert p.structured and p.text == "Count to 3."
    assert p.response_format == {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}
    assert p.tools[0] == {"type": "function", "function": {"name": "count", "parameters": {"type": "object"}}}
    assert p.tool_choice == {"type": "function", "function": {"name": "count"}}
    again = load_prompts(ps.to_frame())[0]
    assert again.prompt_id == p.prompt_id and again.messages == p.messages


def test_a_tool_choice_naming_no_tool_and_a_row_with_neither_prompt_nor_messages_are_errors():
    with pytest.raises(PromptSetError, match=r"item 0: tool_choice names 'other'"):
        load_prompts([{"prompt": "x", "tools": [{"name": "f"}], "tool_choice": "other"}])
    with pytest.raises(PromptSetError, match=r"item 1: no prompt text: this row has neither messages nor"):
        load_prompts([{"messages": [{"role": "user", "content": "a"}]}, {"reference": "b"}])


def test_messages_rows_load_from_json_files_and_dataframes_alike(tmp_path):
    messages = [{"role": "user", "content": "Hi {who}"}, {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": "Bye {who}"}]
    path = tmp_path / "chat.json"
    path.write_text(json.dumps([{"messages": messages, "who": "Ann"}]), encoding="utf-8")
    from_json = load_prompts(path)[0]
    from_frame = load_prompts(pd.DataFrame({"messages": [messages], "who": ["Ann"]}))[0]
    from_text = load_prompts(pd.DataFrame({"messages": [json.dumps(messages)], "who": ["Ann"]}))[0]
    assert from_json.text == from_frame.text == from_text.text == "Bye Ann"
    assert from_json.prompt_id == from_frame.prompt_id == from_text.prompt_id


def test_no_bundled_prompt_is_contained_in_another_across_sets():
    texts = []
    for name in bundled_prompt_sets():
        texts += [" ".join(p.text.split()) for p in load_prompts(name)]
    assert len(texts) >= 144 + 60
    assert not [(a, b) for a in texts for b in texts if a != b and a in b]  # the sandbox matches by substring


def test_a_limit_reads_only_the_rows_it_needs(tmp_path):
    # the rows after the limit are not even read: a broken line there does not matter
    path = tmp_path / "big.jsonl"
    path.write_text("".join(f'{{"prompt": "q{i}"}}\n' for i in range(3)) + "{not json\n", encoding="utf-8")
    ps = load_prompts(path, limit=2)
    assert [p.text for p in ps] == ["q0", "q1"]
    with pytest.raises(PromptSetError, match=r"big\.jsonl:4: invalid JSON"):
        load_prompts(path)
    csv_path = tmp_path / "big.csv"
    csv_path.write_text('prompt\nq0\nq1\n"never closed\n', encoding="utf-8")
    assert len(load_prompts(csv_path, limit=2)) == 2
    with pytest.raises(PromptSetError, match=r"big\.csv:4: a quoted field"):
        load_prompts(csv_path)
    # line-by-line decoding keeps the file, line and column of a bad byte, and a BOM on line 1
    bad = tmp_path / "l1.jsonl"
    bad.write_bytes(b'\xef\xbb\xbf{"prompt": "ok"}\n{"prompt": "caf\xe9"}\n')
    assert load_prompts(bad, limit=1)[0].text == "ok"
    with pytest.raises(PromptSetError, match=r"l1\.jsonl:2: not utf-8 text \(byte 0xe9 at column 16\)"):
        load_prompts(bad)
    bad.write_bytes(b'{"prompt": "ok"}\n{"prompt": "caf\xe9"}\n')
    assert [p.text for p in load_prompts(bad, encoding="latin-1", limit=5)][1] == "café"
    assert len(load_prompts(pd.DataFrame({"prompt": ["a", "b", "c"]}), limit=2)) == 2
    assert len(load_prompts(["a", "b", "c"], limit=1)) == 1
