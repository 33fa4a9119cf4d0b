"""Secrets never leave: redact configured keys, their fragments and encodings, and key-shaped tokens from text.

A *secret* is the value (8 characters or more) of an environment variable whose name looks like one
(``*_API_KEY``, ``*_KEY``, ``*_TOKEN``, ``*_SECRET``, ``*PASSWORD``). :func:`redact` replaces, in any text:

- any run of 12 or more characters that is a substring of a secret (a key echoed whole, without its last
  character, without its ``sk-`` prefix, cut in two), or of its base64 (standard and URL-safe) or URL-encoded form
  (shorter secrets: the whole value only), with ``<NAME redacted>``;
- key-shaped tokens, configured or not: ``sk-...`` / ``sk-ant-...`` (16+ characters after the prefix) and
  ``Bearer <token>``, with ``<key redacted>``.

Used on error messages, answers, logs and CLI output (DESIGN.md: keys never reach DuckDB, reports, configs, logs
or error messages).
"""

from __future__ import annotations

import base64
import os
import re
import urllib.parse
from functools import lru_cache

__all__ = ["FRAGMENT_CHARS", "redact", "secrets_in_environment"]

#: A shared run of this many characters with a secret (or its encodings) is redacted.
FRAGMENT_CHARS = 12
_SECRET_NAME = re.compile(r"(API_KEY|_KEY|_TOKEN|_SECRET|PASSWORD)$", re.IGNORECASE)
_KEY_SHAPED = re.compile(r"\b(?:sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{16,}|Bearer\s+[A-Za-z0-9._~+/=\-]{16,})")


def secrets_in_environment() -> tuple[tuple[str, str], ...]:
    """``(variable name, value)`` of every secret-looking environment variable with a value of 8+ characters."""
    return tuple(sorted((name, value) for name, value in os.environ.items()
                        if value and len(value) >= 8 and _SECRET_NAME.search(name)))


def _forms(value: str) -> list[str]:
    raw = value.encode()
    forms = [value, base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode(),
             urllib.parse.quote(value, safe="")]
    return list(dict.fromkeys(f.rstrip("=") for f in forms if f))


@lru_cache(maxsize=8)
def _index(secrets: tuple[tuple[str, str], ...]) -> tuple[dict[str, str], tuple[tuple[str, str], ...]]:
    """Every FRAGMENT_CHARS-long window of every form of every secret → its variable name; and the short ones."""
    windows: dict[str, str] = {}
    short: list[tuple[str, str]] = []
    for name, value in secrets:
        for form in _forms(value):
            if len(form) < FRAGMENT_CHARS:
                short.append((form, name))
                continue
            for i in range(len(form) - FRAGMENT_CHARS + 1):
                windows.setdefault(form[i:i + FRAGMENT_CHARS], name)
    return windows, tuple(short)


def redact(text: str | None, secrets: tuple[tuple[str, str], ...] | None = None) -> str | None:
    """``text`` with every configured secret (whole, a 12+ character fragment, base64 or URL-encoded) and every
    key-shaped token replaced; None and "" pass through.

    ``secrets``: a snapshot from :func:`secrets_in_environment` (a run takes one when it starts: scanning the
    environment costs about 0.5 ms, once per answer otherwise); default: the environment now."""
    if not text:
        return text
    if secrets is None:
        secrets = secrets_in_environment()
    if secrets:
        windows, short = _index(secrets)
        for form, name in short:
            text = text.replace(form, f"<{name} redacted>")
        if windows and len(text) >= FRAGMENT_CHARS:
            out, i, n = [], 0, len(text)
            while i <= n - FRAGMENT_CHARS:
                name = windows.get(text[i:i + FRAGMENT_CHARS])
                if name is None:
                    out.append(text[i])
                    i += 1
                    continue
                j = i + FRAGMENT_CHARS  # extend while the run still overlaps a secret's windows
                while j < n and text[j - FRAGMENT_CHARS + 1:j + 1] in windows:
                    j += 1
                out.append(f"<{name} redacted>")
                i = j
            out.append(text[i:])
            text = "".join(out)
    return _KEY_SHAPED.sub("<key redacted>", text)
