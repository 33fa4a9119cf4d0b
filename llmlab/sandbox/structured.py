"""The sandbox's structured side: tool calls, JSON-schema answers, tool results and images, in both wire formats.

What a request asks for is read from its provider-native shape (:func:`request_spec`):

- OpenAI chat completions: ``tools`` (``{"type": "function", "function": {"name", "parameters"}}``),
  ``tool_choice`` (``"auto"`` / ``"none"`` / ``"required"`` / ``{"type": "function", ...}``), ``response_format``
  (``json_schema`` / ``json_object``), ``role: "tool"`` turns and assistant ``tool_calls``;
- Anthropic messages: ``tools`` (``{"name", "input_schema"}``), ``tool_choice`` (``{"type": "auto" | "any" |
  "tool" | "none"}``), LiteLLM's JSON mode (a tool named ``json_tool_call`` that ``tool_choice`` forces) or
  ``output_format``, ``tool_use`` / ``tool_result`` content blocks.

Answers (:func:`answers`) stay deterministic per (seed, model, conversation): a bundled item of category
``json`` is answered with its reference object when the profile's ``accuracy["json"]`` draw says so, else with a
deliberately schema-invalid object (a required field dropped, or a field of the wrong type); an item of category
``tool_call`` (reference ``{"name", "arguments"}``) with that call, else a wrong function, a wrong argument or no
call at all (``accuracy["tool_call"]``); a prompt the sandbox does not know gets a call of the forced (or first)
tool with arguments made from its schema, or a JSON value made from the response schema. A conversation whose
last turn is a tool result gets a text answer. Tool calls go out as OpenAI ``tool_calls`` (streamed as
``delta.tool_calls`` argument fragments) or Anthropic ``tool_use`` blocks (streamed as ``input_json_delta``).
:func:`request_shape` is what the request log keeps of each request's shape, so tests can see what LiteLLM sent.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from llmlab.sandbox.answers import SandboxAnswer, _content_text, _hexid, _unit

__all__ = [
    "JSON_TOOL_NAME",
    "RequestSpec",
    "answers",
    "request_shape",
    "request_spec",
]

#: The tool LiteLLM sends to Anthropic models in its JSON mode (``litellm.constants.RESPONSE_FORMAT_TOOL_NAME``).
JSON_TOOL_NAME = "json_tool_call"


@dataclass(frozen=True)
class RequestSpec:
    """What a request asks for beyond text: ``tools`` as ``(name, schema)`` pairs, the ``forced`` tool name,
    ``choice`` (``auto`` / ``none`` / ``required``), the JSON ``schema`` of the answer (``{}``: any object),
    ``json_via_tool`` (Anthropic JSON mode through LiteLLM's tool) and ``after_tool`` (the last turn is a tool
    result)."""

    tools: tuple[tuple[str, dict[str, Any]], ...] = ()
    forced: str | None = None
    choice: str = "auto"
    schema: dict[str, Any] | None = None
    json_via_tool: bool = False
    after_tool: bool = False


def _blocks(messages: Sequence[Any]) -> list[str]:
    types = []
    for m in messages:
        if not isinstance(m, Mapping):
            continue
        content = m.get("content")
        if isinstance(content, list):
            types += [str(p.get("type")) for p in content if isinstance(p, Mapping)]
        elif isinstance(content, str):
            types.append("text")
        types += ["tool_calls"] * len(m.get("tool_calls") or [])
    return types


def request_shape(api: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """A compact, JSON-ready summary of a request's provider-native shape (kept in the request log): ``roles``,
    ``content_types`` (part / block types, ``tool_calls`` per assistant call), ``tools`` (names), ``tool_format``
    (``openai``: ``{type: function, function}``; ``anthropic``: ``{name, input_schema}``), ``tool_choice``,
    ``response_format`` (its type), ``output_format`` (bool) and ``system`` (bool)."""
    messages = body.get("messages") if isinstance(body.get("messages"), list) else []
    tools = body.get("tools") if isinstance(body.get("tools"), list) else []
    names, fmt = [], None
    for t in tools:
        if not isinstance(t, Mapping):
            continue
        if t.get("type") == "function" and isinstance(t.get("function"), Mapping):
            names.append(t["function"].get("name"))
            fmt = "openai"
        else:
            names.append(t.get("name"))
            fmt = "anthropic" if "input_schema" in t else fmt
    rf = body.get("response_format")
    return {
        "api": api,
        "roles": [m.get("role") for m in messages if isinstance(m, Mapping)],
        "content_types": sorted(set(_blocks(messages))),
        "tools": names,
        "tool_format": fmt,
        "tool_choice": body.get("tool_choice"),
        "response_format": rf.get("type") if isinstance(rf, Mapping) else None,
        "output_format": body.get("output_format") is not None,
        "system": bool(body.get("system")) or any(isinstance(m, Mapping) and m.get("role") == "system"
                                                  for m in messages),
    }


def _is_tool_result(api: str, message: Mapping[str, Any]) -> bool:
    if api == "openai":
        return message.get("role") == "tool"
    content = message.get("content")
    return (message.get("role") == "user" and isinstance(content, list) and bool(content)
            and all(isinstance(p, Mapping) and p.get("type") == "tool_result" for p in content))


def request_spec(api: str, body: Mapping[str, Any], messages: Sequence[Mapping[str, Any]]) -> RequestSpec | None:
    """What ``body`` asks for beyond plain text (None: nothing: the plain answer path applies)."""
    tools: list[tuple[str, dict[str, Any]]] = []
    for t in body.get("tools") or []:
        if not isinstance(t, Mapping):
            continue
        if api == "openai" and isinstance(t.get("function"), Mapping):
            tools.append((str(t["function"].get("name")), dict(t["function"].get("parameters") or {})))
        elif api == "anthropic" and t.get("name"):
            tools.append((str(t["name"]), dict(t.get("input_schema") or {})))
    choice, forced = "auto", None
    tc = body.get("tool_choice")
    if isinstance(tc, str):
        choice = tc
    elif isinstance(tc, Mapping):
        kind = tc.get("type")
        if kind == "function" and isinstance(tc.get("function"), Mapping):
            forced = tc["function"].get("name")
        elif kind == "tool":
            forced = tc.get("name")
        elif kind == "any":
            choice = "required"
        elif kind in ("auto", "none"):
            choice = str(kind)
    schema, via_tool = None, False
    rf = body.get("response_format")
    if isinstance(rf, Mapping) and rf.get("type") == "json_schema":
        schema = dict((rf.get("json_schema") or {}).get("schema") or {})
    elif isinstance(rf, Mapping) and rf.get("type") == "json_object":
        schema = {}
    of = body.get("output_format")
    if isinstance(of, Mapping):
        schema = dict(of.get("schema") or {})
    if forced == JSON_TOOL_NAME:
        schema = dict(next((s for n, s in tools if n == JSON_TOOL_NAME), {}))
        via_tool = True
    tools = [(n, s) for n, s in tools if n != JSON_TOOL_NAME]
    if via_tool:
        forced = None
    after_tool = bool(messages) and _is_tool_result(api, messages[-1])
    if not tools and schema is None and not after_tool:
        return None
    return RequestSpec(tuple(tools), forced, choice, schema, via_tool, after_tool)


# ------------------------------------------------------------------------------------------- JSON from a schema


def instance_for(schema: Mapping[str, Any], u: float = 0.0, depth: int = 0) -> Any:
    """A value valid for the simple JSON Schemas the prompt sets use (types, properties, required, enum, items)."""
    if "enum" in schema and schema["enum"]:
        return schema["enum"][int(u * len(schema["enum"])) % len(schema["enum"])]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties") or {}
        return {k: instance_for(v, u, depth + 1) for k, v in props.items() if depth < 4}
    if kind == "array":
        item = instance_for(schema.get("items") or {"type": "string"}, u, depth + 1)
        return [item] * max(1, int(schema.get("minItems") or 1))
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1.5))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return "example"


def _wrong_type(schema: Mapping[str, Any]) -> Any:
    kind = schema.get("type")
    return "not-a-number" if kind in ("integer", "number") else (
        ["not", "a", "string"] if kind == "string" else 12345)


def break_instance(value: Any, schema: Mapping[str, Any], u: float) -> Any:
    """``value`` made invalid for ``schema`` on purpose: a required field dropped, else a field of the wrong
    type, else a wrong top-level type (deterministic for ``u``)."""
    props = schema.get("properties") or {}
    if isinstance(value, dict):
        broken = dict(value)
        required = [k for k in schema.get("required") or [] if k in broken]
        typed = [k for k in props if k in broken and isinstance(props[k], Mapping) and props[k].get("type")]
        if required and (u < 0.5 or not typed):
            del broken[required[int(u * 7) % len(required)]]
            return broken
        if typed:
            key = typed[int(u * 11) % len(typed)]
            broken[key] = _wrong_type(props[key])
            return broken
        return [broken]
    return {"value": value} if schema.get("type") != "object" else ["not an object"]


# -------------------------------------------------------------------------------------------------- answers


def _call(name: str, arguments: Any, *key: Any) -> dict[str, Any]:
    return {"id": "call_" + _hexid("tool", name, *key, n=20), "name": name, "arguments": arguments}


def _json_reference(text: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


def _filtered(api: str, messages: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The conversation without tool-result turns (so the question is matched, not the tool's output)."""
    return [m for m in messages if not _is_tool_result(api, m)]


def _tool_result_text(api: str, messages: Sequence[Mapping[str, Any]]) -> str:
    return _content_text(messages[-1].get("content")) if messages else ""


def answers(sandbox: Any, api: str, model: str, body: Mapping[str, Any], messages: Sequence[Mapping[str, Any]], *,
            system: str, max_tokens: int | None, temperature: float | None, seed: Any,
            n: int) -> list[SandboxAnswer] | None:
    """The answers to a request that asks for tools or JSON, or continues after a tool result (None when it does
    none of that: the plain path answers). ``sandbox``: the :class:`~llmlab.sandbox.server.Sandbox`."""
    spec = request_spec(api, body, messages)
    if spec is None:
        return None
    profile = sandbox.profiles[model]
    question = _filtered(api, messages)
    out = []
    for i in range(n):
        base: SandboxAnswer = sandbox.answer(model, question, system=system, max_tokens=max_tokens,
                                             temperature=temperature, seed=seed, choice_index=i)
        key = (sandbox.seed, model, base.text, i, json.dumps(spec.tools, sort_keys=True, default=str))
        out.append(_refine(spec, profile, base, key, api, messages))
    return out


def _refine(spec: RequestSpec, profile: Any, base: SandboxAnswer, key: tuple, api: str,
            messages: Sequence[Mapping[str, Any]]) -> SandboxAnswer:
    if spec.after_tool:
        reference = _json_reference(base.text)
        if base.kind in ("correct", "wrong") and not (isinstance(reference, dict) and "name" in reference):
            return base  # an item whose answer is text: the tool result was what it needed
        result = _tool_result_text(api, messages)[:200]
        return SandboxAnswer(f"Based on the tool result: {result}", "stop", "after_tool")
    if spec.schema is not None:
        return _json_answer(spec, profile, base, key)
    if spec.tools:
        return _tool_answer(spec, profile, base, key)
    return base


def _json_answer(spec: RequestSpec, profile: Any, base: SandboxAnswer, key: tuple) -> SandboxAnswer:
    schema = spec.schema or {}
    u = _unit("json-break", *key)
    if base.kind in ("correct", "wrong"):
        value = _json_reference(base.text)
        if value is None:
            value = instance_for(schema, u)
        if base.kind == "wrong":
            value = break_instance(value, schema, u)
    else:
        value = instance_for(schema, u)
        if _unit("json-adherence", *key) >= profile.accuracy_for("json"):
            value = break_instance(value, schema, u)
    if spec.json_via_tool:
        if not isinstance(value, dict):
            value = {"value": value}
        return SandboxAnswer("", "stop", f"json_{base.kind}", (_call(JSON_TOOL_NAME, value, *key),))
    return SandboxAnswer(json.dumps(value, ensure_ascii=False), "stop", f"json_{base.kind}")


def _tool_answer(spec: RequestSpec, profile: Any, base: SandboxAnswer, key: tuple) -> SandboxAnswer:
    names = [n for n, _ in spec.tools]
    schemas = dict(spec.tools)
    if spec.choice == "none":
        return base
    reference = _json_reference(base.text) if base.kind in ("correct", "wrong") else None
    u = _unit("tool-wrong", *key)
    if isinstance(reference, dict) and reference.get("name") in names and base.kind == "correct":
        return _with_call(base, reference["name"], reference.get("arguments") or {}, key)
    if base.kind == "wrong":
        expected = _reference_for_wrong(base, names)
        if expected is not None and spec.choice != "required" and spec.forced is None and u < 0.34:
            return replace(base, text="I can answer that without a tool: " + base.text[:80], tool_calls=())
        if expected is not None:
            return _wrong_call(expected, names, schemas, u, key, base)
        if spec.forced is None and spec.choice == "auto":
            # a question that needs no tool, answered with a needless call
            name = names[int(u * len(names)) % len(names)]
            return _with_call(base, name, instance_for(schemas[name], u), key)
        return base
    if base.kind == "correct" and spec.forced is None and spec.choice == "auto":
        return base  # a question that needs no tool, answered in text
    name = spec.forced if spec.forced in schemas else names[0]
    adheres = _unit("tool-adherence", *key) < profile.accuracy_for("tool_call")
    args = instance_for(schemas[name], u)
    if not adheres:
        args = break_instance(args, schemas[name], u)
    return _with_call(base, name, args, key)


def _reference_for_wrong(base: SandboxAnswer, names: list[str]) -> dict[str, Any] | None:
    """For a wrong answer to a tool item: the expected call, recovered from the plain path's wrong variant (a
    JSON object with one field changed), or None when the item is not a tool item."""
    value = _json_reference(base.text)
    if isinstance(value, dict) and ("name" in value or "arguments" in value):
        return value
    return None


def _wrong_call(expected: dict[str, Any], names: list[str], schemas: Mapping[str, Any], u: float, key: tuple,
                base: SandboxAnswer) -> SandboxAnswer:
    name = expected.get("name") if expected.get("name") in names else None
    args = expected.get("arguments") if isinstance(expected.get("arguments"), dict) else None
    others = [n for n in names if n != name]
    if name is None or args is None or (others and u < 0.67):
        pick = others[int(u * 13) % len(others)] if others else names[0]
        return _with_call(base, pick, instance_for(schemas[pick], u), key)
    broken = dict(args)
    if broken:
        k = sorted(broken)[int(u * 17) % len(broken)]
        v = broken[k]
        broken[k] = (v + 7) if isinstance(v, (int, float)) and not isinstance(v, bool) else f"{v}-not"
    return _with_call(base, name, broken, key)


def _with_call(base: SandboxAnswer, name: str, arguments: Any, key: tuple) -> SandboxAnswer:
    return SandboxAnswer("", "stop", f"tool_{base.kind}", (_call(name, arguments, *key),))


# --------------------------------------------------------------------------------------------------- bodies


def _pieces(text: str, n: int = 4) -> list[str]:
    size = max(1, -(-len(text) // n))
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def openai_message(a: SandboxAnswer) -> dict[str, Any]:
    """The OpenAI ``message`` of an answer with tool calls (``content`` null when it has no text)."""
    return {"role": "assistant", "content": a.text or None, "refusal": None,
            "tool_calls": [{"id": c["id"], "type": "function",
                            "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
                           for c in a.tool_calls]}


def anthropic_content(a: SandboxAnswer) -> list[dict[str, Any]]:
    """The Anthropic content blocks of an answer with tool calls (a text block first when it has text)."""
    blocks: list[dict[str, Any]] = [{"type": "text", "text": a.text}] if a.text else []
    blocks += [{"type": "tool_use", "id": "toolu_" + c["id"][5:], "name": c["name"], "input": c["arguments"]}
               for c in a.tool_calls]
    return blocks


def _sse(obj: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return (head + "data: " + json.dumps(obj, ensure_ascii=False) + "\n\n").encode("utf-8")


def openai_events(ctx: Any, usage: Mapping[str, Any]) -> list[tuple[str, bytes]]:
    """SSE chunks of answers with tool calls: text deltas, then per call a head delta (id, name) and argument
    fragments, then the ``tool_calls`` finish and the usage chunk."""
    base = {"id": f"chatcmpl-{ctx.request_id}", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": ctx.profile.name, "system_fingerprint": "fp_llmlab_sandbox"}
    extra = {"usage": None} if ctx.include_usage else {}
    out: list[tuple[str, bytes]] = []

    def chunk(i: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return _sse({**base, "choices": [{"index": i, "delta": delta, "logprobs": None, "finish_reason": finish}],
                     **extra})

    for i, a in enumerate(ctx.answers):
        out.append(("content", chunk(i, {"role": "assistant", "content": a.text or None, "refusal": None})))
        for k, c in enumerate(a.tool_calls):
            out.append(("content", chunk(i, {"tool_calls": [{"index": k, "id": c["id"], "type": "function",
                                                             "function": {"name": c["name"], "arguments": ""}}]})))
            for piece in _pieces(json.dumps(c["arguments"])):
                out.append(("content", chunk(i, {"tool_calls": [{"index": k, "function": {"arguments": piece}}]})))
        out.append(("final", chunk(i, {}, "tool_calls" if a.tool_calls else a.finish)))
    if ctx.include_usage:
        out.append(("final", _sse({**base, "choices": [], "usage": dict(usage)})))
    out.append(("final", b"data: [DONE]\n\n"))
    return out


def anthropic_events(ctx: Any) -> list[tuple[str, bytes]]:
    """SSE events of an answer with tool calls: ``tool_use`` blocks streamed as ``input_json_delta`` fragments,
    ``stop_reason`` ``tool_use``."""
    a = ctx.answers[0]
    out: list[tuple[str, bytes]] = [("head", _sse({"type": "message_start", "message": {
        "id": f"msg_{ctx.request_id}", "type": "message", "role": "assistant", "model": ctx.profile.name,
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": ctx.input_tokens, "output_tokens": 1}}}, "message_start"))]
    for index, block in enumerate(anthropic_content(a)):
        if block["type"] == "text":
            out.append(("head", _sse({"type": "content_block_start", "index": index,
                                      "content_block": {"type": "text", "text": ""}}, "content_block_start")))
            out.append(("content", _sse({"type": "content_block_delta", "index": index,
                                         "delta": {"type": "text_delta", "text": block["text"]}},
                                        "content_block_delta")))
        else:
            out.append(("head", _sse({"type": "content_block_start", "index": index, "content_block": {
                **{k: block[k] for k in ("type", "id", "name")}, "input": {}}}, "content_block_start")))
            for piece in _pieces(json.dumps(block["input"])):
                out.append(("content", _sse({"type": "content_block_delta", "index": index,
                                             "delta": {"type": "input_json_delta", "partial_json": piece}},
                                            "content_block_delta")))
        out.append(("content", _sse({"type": "content_block_stop", "index": index}, "content_block_stop")))
    out += [
        ("final", _sse({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                        "usage": {"output_tokens": ctx.output_tokens}}, "message_delta")),
        ("final", _sse({"type": "message_stop"}, "message_stop")),
    ]
    return out
