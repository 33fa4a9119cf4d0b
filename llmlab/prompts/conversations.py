"""Rows beyond one user string: conversations, structured output, tool calls and images.

A prompt-set row may carry, besides (or instead of) its prompt text:

- ``messages``: a conversation in OpenAI chat format, any number of turns, roles ``system`` / ``user`` /
  ``assistant`` / ``tool``. ``content`` is a string or a list of parts (``{"type": "text", "text": ...}``,
  ``{"type": "image_url", "image_url": {"url": ...}}``); an assistant turn may carry ``tool_calls``; a tool turn
  needs ``tool_call_id``. ``{var}`` placeholders in every text part are filled from the row's other fields (as
  :func:`~llmlab.prompts.templates.render` does: unknown names stay as written). The prompt's readable ``text`` is
  the last user turn.
- ``response_format``: a JSON Schema (wrapped as ``{"type": "json_schema", "json_schema": {"name": "response",
  "schema": ...}}``), an OpenAI ``response_format`` dict (``json_schema`` / ``json_object`` / ``text``), or in
  Python a pydantic model class. The schema is checked with ``jsonschema`` when the row is loaded.
- ``tools``: OpenAI function tools (``{"type": "function", "function": {"name", "description", "parameters"}}``,
  or the bare function object); ``parameters`` must be a valid JSON Schema. ``tool_choice``: ``"auto"``,
  ``"none"``, ``"required"``, a function name, or an OpenAI tool-choice dict.
- ``tool_results``: scripted results for the multi-step mode, ``{function name: result}`` (a string, or JSON).

Images: an ``image_url`` part whose URL is ``http(s)://`` or ``data:`` is sent as it is; anything else is a file
path (relative to the prompt file's folder, or the working directory), read when the prompt set is loaded: the
stored form keeps its path and SHA-256 (``llmlab_image``), never the bytes; :func:`to_wire` turns it into a data
URL when the call is made. Every error is a :class:`~llmlab.errors.PromptSetError` naming the row (file and line,
or row label), the message index and what is wrong.
"""

from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from llmlab.errors import PromptSetError
from llmlab.prompts.templates import render

__all__ = [
    "ROLES",
    "last_user_text",
    "normalize_response_format",
    "normalize_tool_choice",
    "normalize_tools",
    "parse_messages",
    "parse_transcript",
    "structured_prompt_id",
    "system_text",
    "to_wire",
]

ROLES = ("system", "user", "assistant", "tool")
_TOOL_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TRANSCRIPT_RE = re.compile(r"^\s*(system|user|assistant)\s*:\s?(.*)$", re.IGNORECASE)


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and value != value:
        return True
    return isinstance(value, str) and not value.strip()


def _json_value(value: Any, label: str, what: str) -> Any:
    """A field that may arrive as JSON text (CSV, DataFrame of strings) decoded; other values as they are."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise PromptSetError(f"{label}: {what} is not valid JSON: {exc}") from None
    if hasattr(value, "tolist") and not isinstance(value, (dict, list)):  # numpy arrays from a DataFrame
        return value.tolist()
    return value


# -------------------------------------------------------------------------------------------------- messages


def parse_messages(value: Any, label: str, variables: Mapping[str, Any] | None = None,
                   base_dir: Path | None = None) -> tuple[dict[str, Any], ...]:
    """Validate a row's ``messages`` and fill ``{var}`` placeholders in every text part.

    Args:
        value: a list of message dicts (or its JSON text).
        label: the row's location for error messages (``file.jsonl:3``, ``row 2``).
        variables: the row's fields, for ``{var}`` placeholders (unknown names stay as written).
        base_dir: where relative image paths are looked up (default: the working directory).

    Returns:
        The messages in their stored form (image files as path + SHA-256, see the module docstring).

    Raises:
        PromptSetError: not a non-empty list, a message that is not an object, an unknown role, missing content,
            a tool turn without ``tool_call_id``, no user turn, an image file that does not exist.
    """
    value = _json_value(value, label, "messages")
    if not isinstance(value, list) or not value:
        raise PromptSetError(f"{label}: messages must be a non-empty list of {{role, content}} objects")
    out = []
    for i, msg in enumerate(value):
        where = f"{label}: messages[{i}]"
        if not isinstance(msg, Mapping):
            raise PromptSetError(f"{where}: expected an object with role and content, got {type(msg).__name__}")
        role = msg.get("role")
        if role not in ROLES:
            raise PromptSetError(f"{where}: unknown role {role!r} (roles are {', '.join(ROLES)})")
        new: dict[str, Any] = {"role": role}
        content = msg.get("content")
        if role == "assistant" and msg.get("tool_calls"):
            new["tool_calls"] = _tool_calls(msg["tool_calls"], where)
            if content is not None:
                new["content"] = _content(content, where, variables, base_dir)
            else:
                new["content"] = None
        else:
            if content is None:
                raise PromptSetError(f"{where}: a {role} turn needs content")
            new["content"] = _content(content, where, variables, base_dir)
        if role == "tool":
            if not isinstance(msg.get("tool_call_id"), str) or not msg["tool_call_id"]:
                raise PromptSetError(f"{where}: a tool turn needs a tool_call_id (the id of the call it answers)")
            new["tool_call_id"] = msg["tool_call_id"]
        if isinstance(msg.get("name"), str):
            new["name"] = msg["name"]
        out.append(new)
    if not any(m["role"] == "user" for m in out):
        raise PromptSetError(f"{label}: messages have no user turn")
    return tuple(out)


def _content(content: Any, where: str, variables: Mapping[str, Any] | None, base_dir: Path | None) -> Any:
    if isinstance(content, str):
        return render(content, variables) if variables else content
    if not isinstance(content, list):
        raise PromptSetError(f"{where}: content must be a string or a list of parts, got {type(content).__name__}")
    parts = []
    for j, part in enumerate(content):
        pwhere = f"{where}.content[{j}]"
        if isinstance(part, str):
            part = {"type": "text", "text": part}
        if not isinstance(part, Mapping):
            raise PromptSetError(f"{pwhere}: a part must be an object, got {type(part).__name__}")
        kind = part.get("type")
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise PromptSetError(f"{pwhere}: a text part needs a 'text' string")
            parts.append({"type": "text", "text": render(part["text"], variables) if variables else part["text"]})
        elif kind == "image_url":
            parts.append(_image_part(part, pwhere, base_dir))
        else:
            raise PromptSetError(f"{pwhere}: unknown part type {kind!r} (text, image_url)")
    return parts


def _image_part(part: Mapping[str, Any], where: str, base_dir: Path | None) -> dict[str, Any]:
    if "llmlab_image" in part:  # already in stored form (a PromptSet re-loaded)
        return dict(part)
    spec = part.get("image_url")
    detail = None
    if isinstance(spec, Mapping):
        url, detail = spec.get("url"), spec.get("detail")
    else:
        url = spec
    if not isinstance(url, str) or not url.strip():
        raise PromptSetError(f"{where}: an image_url part needs a URL or a file path")
    if url.startswith(("https://", "http://", "data:")):
        return {"type": "image_url", "image_url": {"url": url, **({"detail": detail} if detail else {})}}
    path = Path(url.removeprefix("file://")).expanduser()
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    if not path.is_file():
        raise PromptSetError(f"{where}: image file not found: {path}")
    data = path.read_bytes()
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return {"type": "image_url", "image_url": {"url": url, **({"detail": detail} if detail else {})},
            "llmlab_image": {"path": str(path), "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                             "mime": mime}}


def _tool_calls(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise PromptSetError(f"{where}: tool_calls must be a list")
    calls = []
    for k, call in enumerate(value):
        fn = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
            raise PromptSetError(f"{where}.tool_calls[{k}]: expected {{id, type: function, function: {{name, "
                                 "arguments}}}}")
        args = fn.get("arguments", "{}")
        calls.append({"id": str(call.get("id") or f"call_{k}"), "type": "function",
                      "function": {"name": fn["name"],
                                   "arguments": args if isinstance(args, str) else json.dumps(args)}})
    return calls


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p["text"] for p in content if isinstance(p, Mapping) and p.get("type") == "text")
    return ""


def last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The text of the last user turn (its text parts joined by newlines; ``""`` when it has none)."""
    for m in reversed(messages):
        if m.get("role") == "user":
            return _text_of(m.get("content"))
    return ""


def system_text(messages: Sequence[Mapping[str, Any]]) -> str | None:
    """The system turns' text joined by newlines, or None when there is none."""
    texts = [_text_of(m.get("content")) for m in messages if m.get("role") == "system"]
    return "\n".join(texts) if texts else None


def to_wire(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The messages as sent to LiteLLM: image files read and sent as ``data:`` URLs.

    Raises:
        PromptSetError: an image file is gone or changed since the prompt set was loaded (its path named).
    """
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list) and any(isinstance(p, Mapping) and "llmlab_image" in p for p in content):
            parts = []
            for p in content:
                image = p.get("llmlab_image") if isinstance(p, Mapping) else None
                if image is None:
                    parts.append(dict(p))
                    continue
                try:
                    data = Path(image["path"]).read_bytes()
                except OSError as exc:
                    raise PromptSetError(f"image file {image['path']} cannot be read: {exc}") from None
                if hashlib.sha256(data).hexdigest() != image["sha256"]:
                    raise PromptSetError(f"image file {image['path']} changed since the prompt set was loaded")
                url = f"data:{image['mime']};base64,{base64.b64encode(data).decode('ascii')}"
                parts.append({"type": "image_url", "image_url": {**p["image_url"], "url": url}})
            m = {**m, "content": parts}
        out.append(dict(m))
    return out


# ------------------------------------------------------------------------------------- structured output, tools


def _check_schema(schema: Any, where: str) -> None:
    import jsonschema

    if not isinstance(schema, Mapping):
        raise PromptSetError(f"{where} must be a JSON Schema object, got {type(schema).__name__}")
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        path = "/".join(map(str, exc.absolute_path))
        raise PromptSetError(f"{where} is not a valid JSON Schema: {exc.message}"
                             + (f" (at {path})" if path else "")) from None


def normalize_response_format(value: Any, label: str) -> dict[str, Any] | None:
    """A row's or run's ``response_format`` in OpenAI's shape (None when missing).

    Accepts a JSON Schema (wrapped as ``json_schema`` named ``response``), an OpenAI ``response_format`` dict, or a
    pydantic model class (its ``model_json_schema()``, named after the class). Raises PromptSetError naming
    ``label`` for an unknown ``type`` or a schema that is not valid JSON Schema."""
    if _missing(value):
        return None
    if isinstance(value, type):
        try:
            from pydantic import BaseModel
        except ImportError:  # pragma: no cover - pydantic is a dependency
            BaseModel = None  # type: ignore[assignment,misc]  # noqa: N806
        if BaseModel is None or not issubclass(value, BaseModel):
            raise PromptSetError(f"{label}: response_format class {value.__name__} is not a pydantic model")
        schema = value.model_json_schema()
        return {"type": "json_schema", "json_schema": {"name": value.__name__, "schema": schema}}
    value = _json_value(value, label, "response_format")
    if not isinstance(value, Mapping):
        raise PromptSetError(f"{label}: response_format must be a JSON Schema object, got {type(value).__name__}")
    kind = value.get("type")
    if kind in ("text", "json_object"):
        return {"type": kind}
    if kind == "json_schema" and isinstance(value.get("json_schema"), Mapping):
        spec = dict(value["json_schema"])
        _check_schema(spec.get("schema"), f"{label}: response_format.json_schema.schema")
        spec.setdefault("name", "response")
        return {"type": "json_schema", "json_schema": spec}
    _check_schema(value, f"{label}: response_format")
    return {"type": "json_schema", "json_schema": {"name": "response", "schema": dict(value)}}


def response_schema(response_format: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The JSON Schema inside a normalized ``response_format`` (None for ``text`` / ``json_object`` / None)."""
    if not response_format or response_format.get("type") != "json_schema":
        return None
    return response_format.get("json_schema", {}).get("schema")


def normalize_tools(value: Any, label: str) -> tuple[dict[str, Any], ...] | None:
    """A row's or run's ``tools`` as OpenAI function tools (None when missing).

    Raises PromptSetError naming ``label`` and the tool: not a list, a tool without a valid name (letters, digits,
    ``_``, ``-``; at most 64), two tools with one name, ``parameters`` that is not a valid JSON Schema."""
    if _missing(value):
        return None
    value = _json_value(value, label, "tools")
    if not isinstance(value, list) or not value:
        raise PromptSetError(f"{label}: tools must be a non-empty list of function tools")
    tools, names = [], set()
    for i, tool in enumerate(value):
        if not isinstance(tool, Mapping):
            raise PromptSetError(f"{label}: tools[{i}] must be an object")
        fn = tool.get("function") if tool.get("type") == "function" else tool
        if not isinstance(fn, Mapping):
            raise PromptSetError(f"{label}: tools[{i}]: expected {{type: function, function: {{name, parameters}}}}")
        name = fn.get("name")
        if not isinstance(name, str) or not _TOOL_NAME_RE.match(name):
            raise PromptSetError(f"{label}: tools[{i}]: invalid function name {name!r} (letters, digits, _ or -)")
        if name in names:
            raise PromptSetError(f"{label}: tools[{i}]: a second function named {name!r}")
        names.add(name)
        params = fn.get("parameters", {"type": "object", "properties": {}})
        _check_schema(params, f"{label}: tools[{i}] ({name}): parameters")
        out = {"name": name, "parameters": dict(params)}
        if isinstance(fn.get("description"), str):
            out["description"] = fn["description"]
        tools.append({"type": "function", "function": out})
    return tuple(tools)


def normalize_tool_choice(value: Any, tools: Sequence[Mapping[str, Any]] | None, label: str) -> Any:
    """``tool_choice`` as OpenAI takes it: ``"auto"``, ``"none"``, ``"required"`` or
    ``{"type": "function", "function": {"name": ...}}`` (a bare function name is turned into the latter).
    Raises PromptSetError naming ``label`` for a choice without tools or naming a function that is not a tool."""
    if _missing(value):
        return None
    if isinstance(value, str) and value.strip().startswith("{"):
        value = _json_value(value, label, "tool_choice")
    names = {t["function"]["name"] for t in tools or ()}
    if isinstance(value, str):
        if value in ("auto", "none", "required"):
            if not tools:
                raise PromptSetError(f"{label}: tool_choice {value!r} needs tools")
            return value
        value = {"type": "function", "function": {"name": value}}
    if not isinstance(value, Mapping) or not isinstance((value.get("function") or {}).get("name"), str):
        raise PromptSetError(f"{label}: tool_choice must be auto, none, required, a function name or "
                             "{type: function, function: {name}}")
    if value["function"]["name"] not in names:
        raise PromptSetError(f"{label}: tool_choice names {value['function']['name']!r}, which is not among the "
                             f"tools ({', '.join(sorted(names)) or 'none'})")
    return {"type": "function", "function": {"name": value["function"]["name"]}}


def normalize_tool_results(value: Any, label: str) -> dict[str, Any] | None:
    """Scripted tool results ``{function name: result}`` for the multi-step mode (None when missing)."""
    if _missing(value):
        return None
    value = _json_value(value, label, "tool_results")
    if not isinstance(value, Mapping):
        raise PromptSetError(f"{label}: tool_results must be an object {{function name: result}}")
    return {str(k): v for k, v in value.items()}


def structured_prompt_id(text: str, system: str | None, messages: Any, response_format: Any, tools: Any,
                         tool_choice: Any) -> str:
    """Content-hash id of a structured prompt: the first 16 hex digits of SHA-256 over the canonical JSON of its
    conversation (images by hash), ``response_format``, ``tools`` and ``tool_choice``."""
    def strip(obj: Any) -> Any:
        if isinstance(obj, Mapping):
            if "llmlab_image" in obj:
                return {"image_sha256": obj["llmlab_image"]["sha256"]}
            return {k: strip(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [strip(v) for v in obj]
        return obj

    payload = {"text": text, "system": system, "messages": strip(messages), "response_format": response_format,
               "tools": strip(tools), "tool_choice": tool_choice}
    raw = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")
    return hashlib.sha256(raw).hexdigest()[:16]


# ------------------------------------------------------------------------------------------------- transcripts


def parse_transcript(text: str) -> list[dict[str, str]]:
    """A short chat transcript to ``messages``: lines starting ``user:``, ``assistant:`` or ``system:`` (any case)
    start a turn; the lines after it, up to the next such line, continue it.

    Example: ``"user: Hi\\nassistant: Hello!\\nuser: What is 2+2?"`` gives three messages.

    Raises:
        PromptSetError: text before the first ``role:`` line (its line number), an empty turn, or no user turn.
    """
    messages: list[dict[str, str]] = []
    lines: list[str] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        match = _TRANSCRIPT_RE.match(line)
        if match:
            if messages:
                messages[-1]["content"] = "\n".join(lines).strip()
            messages.append({"role": match.group(1).lower(), "content": ""})
            lines = [match.group(2)]
        elif messages:
            lines.append(line)
        elif line.strip():
            raise PromptSetError(f"transcript line {lineno}: text before the first 'user:' / 'assistant:' / "
                                 f"'system:' line: {line.strip()[:60]!r}")
    if messages:
        messages[-1]["content"] = "\n".join(lines).strip()
    for i, m in enumerate(messages):
        if not m["content"]:
            raise PromptSetError(f"transcript turn {i + 1} ({m['role']}:) is empty")
    if not any(m["role"] == "user" for m in messages):
        raise PromptSetError("the transcript has no 'user:' turn")
    return messages
