"""Scorers of structured answers: JSON Schema validity and tool calls (pure functions, jsonschema does the checks).

``json_schema``
    The answer is one JSON value (the whole text, or a single fenced ```json block) that validates against the
    schema: the prompt's ``response_format`` schema when it has one, else the reference (a JSON Schema). Score 1 or
    0; the score row's ``comment`` names the first violation (``$.age: 'x' is not of type 'integer'``), as
    ``jsonschema.exceptions.best_match`` picks it.
``tool_call`` / ``tool_call:exact`` / ``tool_call:subset`` / ``tool_call:schema``
    The model called the reference's function (reference: ``{"name": ..., "arguments": ...}``) with matching
    arguments: ``subset`` (the default: every expected argument present with an equal value, strings compared as
    :func:`~llmlab.scoring.checks.normalize_text` does, extra arguments allowed), ``exact`` (the arguments equal
    the expected object exactly), ``schema`` (the reference's ``arguments`` is a JSON Schema the arguments
    validate against). Score 1 or 0; ``comment`` says what did not match.
``no_tool_call``
    The model answered without calling a tool (score 1), else 0 and ``comment`` names the call.

In a run these read the call's recorded ``tool_calls`` (:func:`score_call`); through :func:`~llmlab.scoring.score`
and ``score_frame``, which see only answer text, ``tool_call`` / ``no_tool_call`` read the answer as that JSON list.
Errors: a reference or schema these scorers cannot use raises :class:`~llmlab.errors.PromptSetError`.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from llmlab.errors import PromptSetError
from llmlab.scoring.checks import _values_equal, parse_scorer_spec, register_scorer, score

__all__ = [
    "CALL_SCORERS",
    "check_json_schema",
    "score_call",
]

_FENCE_RE = re.compile(r"^\s*```[ \t]*(?:json|JSON)?[ \t]*\n(.*?)\n?```\s*$", re.DOTALL)

Verdict = tuple[float, str | None]
#: Scorers that read the whole call (answer text and tool calls), by name: ``fn(row, prompt, arg) -> (score,
#: comment)``; ``row`` has ``status``, ``response``, ``tool_calls`` (JSON text or None).
CALL_SCORERS: dict[str, Callable[[Mapping[str, Any], Any, str | None], Verdict]] = {}


def _decode(text: str) -> tuple[bool, Any, str | None]:
    """(ok, value, error) for an answer that should be one JSON value (a lone fenced block accepted)."""
    body = text.strip()
    match = _FENCE_RE.match(body)
    if match:
        body = match.group(1).strip()
    try:
        return True, json.loads(body), None
    except ValueError as exc:
        return False, None, f"not JSON: {exc}"


@functools.lru_cache(maxsize=512)
def _validator(schema_json: str) -> Any:
    import jsonschema

    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise PromptSetError(f"scorer json_schema: the schema is not a valid JSON Schema: {exc.message}") from None
    return cls(schema)


def _where(error: Any) -> str:
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return "$" + path


def check_json_schema(value: Any, schema: Mapping[str, Any]) -> str | None:
    """The first violation of ``schema`` by ``value`` (``"$.path: message"``, as ``jsonschema``'s ``best_match``
    picks it), or None when ``value`` is valid. Raises PromptSetError when ``schema`` is not a valid JSON Schema."""
    import jsonschema

    validator = _validator(json.dumps(schema, sort_keys=True))
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    return None if error is None else f"{_where(error)}: {error.message}"[:500]


def _json_schema_verdict(answer: str | None, schema: Any) -> Verdict:
    if not isinstance(schema, Mapping):
        raise PromptSetError("scorer json_schema needs a JSON Schema: the prompt's response_format, or the "
                             "reference as a JSON Schema object")
    if answer is None or not answer.strip():
        return 0.0, "no answer"
    ok, value, error = _decode(answer)
    if not ok:
        return 0.0, error
    violation = check_json_schema(value, schema)
    return (0.0, violation) if violation else (1.0, None)


def _reference_json(reference: str | None, scorer: str) -> Any:
    if reference is None:
        raise PromptSetError(f"scorer {scorer} needs a reference")
    try:
        return json.loads(reference)
    except ValueError as exc:
        raise PromptSetError(f"scorer {scorer} needs a JSON reference; {exc}: {reference[:80]!r}") from None


def _calls_of(tool_calls: Any) -> list[dict[str, Any]]:
    if tool_calls is None or (isinstance(tool_calls, float) and math.isnan(tool_calls)):
        return []
    if isinstance(tool_calls, str):
        try:
            tool_calls = json.loads(tool_calls) if tool_calls.strip() else []
        except ValueError:
            return []
    return [c for c in tool_calls if isinstance(c, Mapping)] if isinstance(tool_calls, list) else []


def _describe(call: Mapping[str, Any]) -> str:
    args = call.get("arguments")
    text = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False, sort_keys=True)
    return f"{call.get('name')}({text[:200]})"


def _tool_call_verdict(calls: list[dict[str, Any]], reference: Any, mode: str | None) -> Verdict:
    mode = (mode or "subset").strip().lower()
    if mode not in ("subset", "exact", "schema"):
        raise PromptSetError(f"scorer tool_call takes exact, subset or schema, got {mode!r}")
    if not isinstance(reference, Mapping) or not isinstance(reference.get("name"), str):
        raise PromptSetError('scorer tool_call needs a reference {"name": ..., "arguments": {...}}')
    name, expected = reference["name"], reference.get("arguments", {})
    if not calls:
        return 0.0, f"no tool call (expected {name})"
    call = next((c for c in calls if c.get("name") == name), None)
    if call is None:
        return 0.0, f"called {', '.join(str(c.get('name')) for c in calls)}, expected {name}"
    args = call.get("arguments")
    if not isinstance(args, Mapping):
        return 0.0, f"{name}: the arguments are not a JSON object: {str(args)[:120]!r}"
    if mode == "schema":
        violation = check_json_schema(dict(args), expected)
        return (0.0, f"{name} arguments: {violation}") if violation else (1.0, None)
    if not isinstance(expected, Mapping):
        raise PromptSetError("scorer tool_call: the reference's arguments must be a JSON object")
    if mode == "exact":
        if json.dumps(args, sort_keys=True) == json.dumps(expected, sort_keys=True):
            return 1.0, None
        extra = sorted(set(args) - set(expected))
        if extra:
            return 0.0, f"{name}: unexpected argument {extra[0]!r}"
    for key, value in expected.items():
        if key not in args:
            return 0.0, f"{name}: missing argument {key!r}"
        same = args[key] == value if mode == "exact" else _values_equal(value, args[key])
        if not same:
            return 0.0, f"{name}: argument {key!r} is {json.dumps(args[key])[:80]}, expected {json.dumps(value)[:80]}"
    return 1.0, None


def _no_tool_call_verdict(calls: list[dict[str, Any]]) -> Verdict:
    if calls:
        return 0.0, "called " + ", ".join(_describe(c) for c in calls)
    return 1.0, None


# -- call-level scorers (a run's rows) --------------------------------------------------------------------


def _call_json_schema(row: Mapping[str, Any], prompt: Any, arg: str | None) -> Verdict:
    from llmlab.prompts.conversations import response_schema

    schema = response_schema(getattr(prompt, "response_format", None))
    if schema is None:
        schema = _reference_json(getattr(prompt, "reference", None), "json_schema")
    return _json_schema_verdict(row.get("response") if row.get("status") == "ok" else None, schema)


def _call_tool_call(row: Mapping[str, Any], prompt: Any, arg: str | None) -> Verdict:
    reference = _reference_json(getattr(prompt, "reference", None), "tool_call")
    if row.get("status") != "ok":
        return 0.0, "no answer (the call failed)"
    return _tool_call_verdict(_calls_of(row.get("tool_calls")), reference, arg)


def _call_no_tool_call(row: Mapping[str, Any], prompt: Any, arg: str | None) -> Verdict:
    if row.get("status") != "ok":
        return 0.0, "no answer (the call failed)"
    return _no_tool_call_verdict(_calls_of(row.get("tool_calls")))


CALL_SCORERS.update(json_schema=_call_json_schema, tool_call=_call_tool_call, no_tool_call=_call_no_tool_call)


def score_call(prompt: Any, row: Mapping[str, Any]) -> tuple[float | None, str | None]:
    """Score one finished call of a run with its prompt's scorer: ``(score in [0, 1] or None, comment)``.

    Scorers of :data:`CALL_SCORERS` see the whole call (``row``: ``status``, ``response``, ``tool_calls``) and the
    prompt (``reference``, ``response_format``); the others are :func:`~llmlab.scoring.checks.score` on the answer
    text (None when the prompt has no reference). ``comment`` is the first violation or mismatch, or None.

    Raises:
        PromptSetError: an unknown scorer, or a reference / schema it cannot use.
    """
    spec = getattr(prompt, "scorer", None)
    if not spec:
        return None, None
    name, arg = parse_scorer_spec(str(spec))
    if name in CALL_SCORERS:
        if name != "no_tool_call" and getattr(prompt, "reference", None) is None \
                and not (name == "json_schema" and getattr(prompt, "response_format", None)):
            return None, None
        value, comment = CALL_SCORERS[name](row, prompt, arg)
        return value, comment
    answer = row.get("response") if row.get("status") == "ok" else None
    return score(spec, answer, getattr(prompt, "reference", None)), None


# -- text-level forms (score(), score_frame()) ------------------------------------------------------------


def _text_json_schema(answer: str, reference: str, arg: str | None) -> float:
    return _json_schema_verdict(answer, _reference_json(reference, "json_schema"))[0]


def _text_tool_call(answer: str, reference: str, arg: str | None) -> float:
    return _tool_call_verdict(_calls_of(answer), _reference_json(reference, "tool_call"), arg)[0]


def _text_no_tool_call(answer: str, reference: str, arg: str | None) -> float:
    return _no_tool_call_verdict(_calls_of(answer) if answer.lstrip().startswith("[") else [])[0]


register_scorer("json_schema", _text_json_schema)
register_scorer("tool_call", _text_tool_call)
register_scorer("no_tool_call", _text_no_tool_call)
