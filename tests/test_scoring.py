"""Deterministic scorers: accept/reject cases per scorer, spec parsing, the registry and score_frame."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from llmlab import scoring
from llmlab.errors import LLMLabError, PromptSetError
from llmlab.scoring import (
    SCORERS,
    extract_choice,
    extract_json_object,
    extract_number,
    normalize_text,
    parse_scorer_spec,
    register_scorer,
    score,
    score_frame,
)

WRONG = "I am not certain; it may be something else"


# ---------------------------------------------------------------------------------------------- score()


def test_missing_scorer_or_reference_gives_none():
    assert score(None, "42", "42") is None
    assert score("exact", "42", None) is None
    assert score("   ", "42", "42") is None


@pytest.mark.parametrize("answer", [None, "", "   \n"])
def test_missing_or_blank_answer_scores_zero(answer):
    assert score("exact", answer, "42") == 0.0
    assert score("numeric", answer, "42") == 0.0


def test_unknown_scorer_lists_known_ones():
    with pytest.raises(PromptSetError) as info:
        score("fuzzy", "a", "a")
    message = str(info.value)
    assert "'fuzzy'" in message
    for name in ("exact", "numeric", "regex", "json_fields", "keywords", "choice", "contains"):
        assert name in message
    assert isinstance(info.value, ValueError) and isinstance(info.value, LLMLabError)


def test_parse_scorer_spec():
    assert parse_scorer_spec("exact") == ("exact", None)
    assert parse_scorer_spec(" Numeric:0.01 ") == ("numeric", "0.01")
    assert parse_scorer_spec("numeric:") == ("numeric", None)
    # only the first colon separates: patterns may contain colons
    assert parse_scorer_spec(r"regex:^\d{2}:\d{2}$") == ("regex", r"^\d{2}:\d{2}$")
    with pytest.raises(PromptSetError, match="empty scorer spec"):
        parse_scorer_spec("")


def test_register_scorer_is_used_by_score(monkeypatch):
    monkeypatch.setattr(scoring, "SCORERS", dict(SCORERS))

    def length_ratio(answer: str, reference: str, arg: str | None) -> float:
        return len(answer) / len(reference)

    assert register_scorer("length-ratio", length_ratio) is length_ratio
    assert score("length-ratio", "ab", "abcd") == 0.5
    assert score("length-ratio", "abcdefgh", "abcd") == 1.0  # clamped to [0, 1]
    assert "length-ratio" in str(pytest.raises(PromptSetError, score, "nope", "a", "a").value)


@pytest.mark.parametrize("name", ["", "Has Space", "with:colon", "1abc"])
def test_register_scorer_rejects_bad_names(name):
    with pytest.raises(PromptSetError, match="invalid scorer name"):
        register_scorer(name, lambda a, r, g: 1.0)


def test_register_scorer_rejects_non_callable():
    with pytest.raises(PromptSetError, match="callable"):
        register_scorer("not-callable", 3)  # type: ignore[arg-type]


def test_scorer_returning_nan_is_an_error(monkeypatch):
    monkeypatch.setattr(scoring, "SCORERS", dict(SCORERS))
    register_scorer("broken", lambda a, r, g: math.nan)
    with pytest.raises(PromptSetError, match="NaN"):
        score("broken", "a", "a")


@pytest.mark.parametrize("spec", ["exact:x", "choice:x", "json_fields:x", "contains:x"])
def test_argument_given_to_scorer_without_one_is_an_error(spec):
    with pytest.raises(PromptSetError, match="takes no argument"):
        score(spec, "a", "a")


# ---------------------------------------------------------------------------------------------- exact


def test_normalize_text():
    assert normalize_text('  "Hello   World."  ') == "hello world"
    assert normalize_text("ＡＢＣ") == "abc"  # NFKC folds full-width letters
    assert normalize_text("**`Straße`**") == "strasse"


@pytest.mark.parametrize(
    "answer",
    [
        "Paris",
        "paris",
        " PARIS. ",
        '"Paris"',
        "`Paris`",
        "**Paris**",
        "Let me think.\nThe capital is in the north.\n\nParis\n",
        "Answer: Paris\nIt has been the capital for centuries.",
        "**Answer:** Paris",
        "Final answer: Paris.",
        "The answer is Paris",
    ],
)
def test_exact_accepts(answer):
    assert score("exact", answer, "Paris") == 1.0


@pytest.mark.parametrize("answer", ["Lyon", "Paris is the capital", "Paris, France", "Not Paris", WRONG])
def test_exact_rejects(answer):
    assert score("exact", answer, "Paris") == 0.0


def test_exact_counts_only_the_first_answer_line():
    hedged = "Answer: Lyon\nAnswer: Paris\nOr maybe Marseille"
    assert score("exact", hedged, "Paris") == 0.0
    assert score("exact", hedged, "Lyon") == 1.0


def test_exact_collapses_inner_whitespace():
    assert score("exact", "technical_support", "technical_support") == 1.0
    assert score("exact", "New   York\tCity", "new york city") == 1.0
    assert score("exact", "NewYork City", "new york city") == 0.0


# ---------------------------------------------------------------------------------------------- contains


def test_contains():
    assert score("contains", "The capital of France is Paris.", "paris") == 1.0
    assert score("contains", "The capital of France is Lyon.", "paris") == 0.0
    with pytest.raises(PromptSetError, match="non-empty reference"):
        score("contains", "x", "  ")


# ---------------------------------------------------------------------------------------------- numeric


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("42", 42.0),
        ("The total is 1,234,567.", 1234567.0),
        ("-17", -17.0),
        ("it is −3.5 degrees", -3.5),  # Unicode minus
        ("costs $1,250.50 in all", 1250.5),
        ("-$5", -5.0),
        ("$-5", -5.0),
        ("a rise of 15%", 15.0),
        (".5", 0.5),
        ("1e-3", 0.001),
        ("first 3, then 4, finally 5", 5.0),
        ("5-3", 3.0),  # a hyphen between numbers is not a sign
        ("12,3456", 3456.0),  # not a thousands separator
        ("no digits here", None),
    ],
)
def test_extract_number(text, expected):
    assert extract_number(text) == expected


@pytest.mark.parametrize(
    ("answer", "reference"),
    [
        ("936", "936"),
        ("The result is 936.", "936"),
        ("It comes to 1,081", "1081"),
        ("$30", "30"),
        ("15%", "15"),
        ("-8", "-8"),
        ("0.875", "0.875"),
        ("37.0", "37"),
        ("Step 1: 12*3 = 36. Step 2: 36+6 = 42\nAnswer: 42", "42"),
    ],
)
def test_numeric_accepts(answer, reference):
    assert score("numeric", answer, reference) == 1.0


@pytest.mark.parametrize(("answer", "reference"), [("937", "936"), ("8", "-8"), ("42 apples, not 41", "42"), (WRONG, "3")])
def test_numeric_rejects(answer, reference):
    assert score("numeric", answer, reference) == 0.0


def test_numeric_tolerance_is_relative():
    assert score("numeric", "3.1428", "3.14") == 0.0
    assert score("numeric:0.01", "3.1428", "3.14") == 1.0
    assert score("numeric:0.01", "3.2", "3.14") == 0.0
    assert score("numeric", "0.1", str(0.1 + 0.2 - 0.2)) == 1.0  # float noise within the default 1e-6


@pytest.mark.parametrize("spec", ["numeric:abc", "numeric:-1", "numeric:inf"])
def test_numeric_bad_tolerance_is_an_error(spec):
    with pytest.raises(PromptSetError, match="tolerance"):
        score(spec, "1", "1")


def test_numeric_reference_without_number_is_an_error():
    with pytest.raises(PromptSetError, match="number in the reference"):
        score("numeric", "1", "many")


# ---------------------------------------------------------------------------------------------- regex


def test_regex_search_with_dotall_and_multiline():
    assert score(r"regex:^11$", "The output is:\n11\n", "11") == 1.0  # MULTILINE: ^ and $ per line
    assert score(r"regex:start.*end", "start\nmiddle\nend", "x") == 1.0  # DOTALL: . spans lines
    assert score(r"regex:(?<![\w.-])11(?!\w|\.\d)", "`11`", "11") == 1.0
    assert score(r"regex:(?<![\w.-])11(?!\w|\.\d)", "110 or 11.5", "11") == 0.0


def test_regex_is_case_sensitive_unless_the_pattern_says_otherwise():
    assert score(r"regex:select \*", "SELECT * FROM t", "x") == 0.0
    assert score(r"regex:(?i)select \*", "SELECT * FROM t", "x") == 1.0


def test_regex_errors():
    with pytest.raises(PromptSetError, match="needs a pattern"):
        score("regex", "a", "a")
    with pytest.raises(PromptSetError, match="invalid regex"):
        score("regex:(unclosed", "a", "a")


# ---------------------------------------------------------------------------------------------- json_fields

REF = '{"name": "Maria Lopez", "age": 34}'


@pytest.mark.parametrize(
    "answer",
    [
        '{"name": "Maria Lopez", "age": 34}',
        '{"age": 34.0, "name": "maria lopez", "city": "Madrid"}',  # order, case, extra fields, 34.0
        '```json\n{"name": "Maria Lopez", "age": 34}\n```',
        'Here you go:\n{"name": "Maria Lopez", "age": "34"}\nAnything else?',
        '{"Name": "Maria Lopez", "AGE": 34}',
    ],
)
def test_json_fields_accepts(answer):
    assert score("json_fields", answer, REF) == 1.0


def test_json_fields_gives_partial_credit():
    assert score("json_fields", '{"name": "Maria Lopez", "age": 43}', REF) == 0.5
    assert score("json_fields", '{"name": "Maria"}', REF) == 0.0


@pytest.mark.parametrize("answer", ["name: Maria Lopez, age: 34", "[1, 2]", '{"name": "Maria Lopez", ', WRONG])
def test_json_fields_without_an_object_scores_zero(answer):
    assert score("json_fields", answer, REF) == 0.0


def test_json_fields_values():
    ref = '{"colors": ["black", "silver"], "ok": true, "missing": null, "zip": "97403", "dim": {"w": 2}}'
    good = '{"colors": ["Silver", "black"], "ok": true, "missing": null, "zip": 97403, "dim": {"w": 2.0, "h": 1}}'
    assert score("json_fields", good, ref) == 1.0
    assert score("json_fields", good.replace('"black"', '"white"'), ref) == 0.8
    assert score("json_fields", good.replace("true", "false"), ref) == 0.8
    assert score("json_fields", good.replace("true", "1"), ref) == 0.8  # 1 is not true


def test_extract_json_object_prefers_the_first_object():
    assert extract_json_object('a {"x": 1} b {"x": 2}') == {"x": 1}
    assert extract_json_object("no braces") is None


@pytest.mark.parametrize("reference", ["not json", "[1, 2]", "{}"])
def test_json_fields_bad_reference_is_an_error(reference):
    with pytest.raises(PromptSetError, match="json_fields"):
        score("json_fields", "{}", reference)


# ---------------------------------------------------------------------------------------------- keywords


def test_keywords_share_and_case():
    spec = "keywords:council|bike|budget"
    assert score(spec, "The COUNCIL approved the bike budget.", "x") == 1.0
    assert score(spec, "The council approved the bike plan.", "x") == pytest.approx(2 / 3)
    assert score(spec, WRONG, "x") == 0.0


def test_keywords_respect_word_boundaries():
    assert score("keywords:cat", "a category of things", "x") == 0.0
    assert score("keywords:cat", "the cat, sleeping", "x") == 1.0
    assert score("keywords:lane", "new bike lanes", "x") == 0.0
    assert score("keywords:lane*", "new bike lanes", "x") == 1.0
    assert score("keywords:71", "turnout hit 71%", "x") == 1.0
    assert score("keywords:71", "turnout hit 171%", "x") == 0.0


def test_keywords_multiword_and_punctuation():
    assert score("keywords:snow leopard*|Helios-7", "Snow\nleopards and the Helios-7 probe", "x") == 1.0
    assert score("keywords:Helios-7", "Helios-70", "x") == 0.0


def test_keywords_need_words():
    for spec in ("keywords", "keywords:|", "keywords: | * "):
        with pytest.raises(PromptSetError, match="keywords"):
            score(spec, "a", "a")


# ---------------------------------------------------------------------------------------------- choice


@pytest.mark.parametrize(
    "answer",
    ["C", "c", "(C)", "C.", "C)", "[C]", "**C**", "Answer: C", "answer: c", "The answer is (C).",
     "I think the correct answer is C because 29 is prime.", "C) 29", "C. 29 is prime.", "Option C",
     "Let me check each.\n21 = 3*7, 27 = 3^3, 33 = 3*11.\nC"],
)
def test_choice_accepts(answer):
    assert score("choice", answer, "C") == 1.0


@pytest.mark.parametrize(
    "answer",
    ["B", "Answer: D", "The answer is a tricky one", "A) 21\nB) 27\nC) 29\nD) 33", "29", WRONG, "E"],
)
def test_choice_rejects(answer):
    assert score("choice", answer, "C") == 0.0


def test_extract_choice_takes_the_last_answer_phrase():
    assert extract_choice("Answer: A... wait, no. The answer is B") == "B"
    assert extract_choice("A) 21\nB) 27") is None


def test_choice_reference_must_be_a_letter():
    with pytest.raises(PromptSetError, match="letter A-D"):
        score("choice", "A", "banana")


# ---------------------------------------------------------------------------------------------- score_frame


def test_score_frame():
    frame = pd.DataFrame(
        {
            "response": ["42", "Paris", None, "B", "x", "x"],
            "reference": ["42", "Lyon", "7", "B", None, "y"],
            "scorer": ["numeric", "exact", "numeric", "choice", "exact", None],
            "model": ["m"] * 6,
        },
        index=[10, 11, 12, 13, 14, 15],
    )
    result = score_frame(frame)
    assert result.dtype == "float64"
    assert list(result.index) == [10, 11, 12, 13, 14, 15]
    assert result.loc[10] == 1.0 and result.loc[11] == 0.0 and result.loc[12] == 0.0 and result.loc[13] == 1.0
    assert math.isnan(result.loc[14]) and math.isnan(result.loc[15])


def test_score_frame_handles_pandas_missing_values():
    frame = pd.DataFrame({"response": ["42", pd.NA], "reference": [pd.NA, "1"], "scorer": ["numeric", "numeric"]})
    frame = frame.astype("string")
    result = score_frame(frame)
    assert math.isnan(result.iloc[0]) and result.iloc[1] == 0.0


def test_score_frame_errors_name_the_row_and_columns():
    with pytest.raises(PromptSetError, match="missing: scorer"):
        score_frame(pd.DataFrame({"response": ["a"], "reference": ["a"]}))
    frame = pd.DataFrame({"response": ["a"], "reference": ["a"], "scorer": ["nope"]}, index=["row-x"])
    with pytest.raises(PromptSetError, match="row row-x: unknown scorer 'nope'"):
        score_frame(frame)


def test_auto_scorer_picks_by_the_reference_and_a_plain_reference_column_gets_scores(sandbox):
    import pandas as pd

    import llmlab
    from llmlab.scoring.checks import auto_scorer_for, score

    assert [auto_scorer_for(r) for r in ("42", "-3.5", "1,200", "B", "(c)", "Paris", "4 apples")] == \
        ["numeric", "numeric", "numeric", "choice", "choice", "contains", "contains"]
    assert score("auto", "The answer is 42.", "42") == 1.0 and score("auto", "41", "42") == 0.0
    assert score("auto", "It is Paris.", "Paris") == 1.0 and score("auto", "Answer: (B)", "B") == 1.0
    frame = pd.DataFrame({"prompt": ["SANDBOX_ECHO:the capital is Paris", "SANDBOX_ECHO:Lyon"],
                          "reference": ["Paris", "Paris"]})
    ps = llmlab.load_prompts(frame)
    assert [p.scorer for p in ps] == ["auto", "auto"]
    assert llmlab.load_prompts(frame.assign(scorer="exact"))[0].scorer == "exact"     # an explicit scorer wins
    res = llmlab.run(ps, ["sandbox/fast"], progress=False)
    assert sorted(res.results["quality"].tolist()) == [0.0, 1.0]
