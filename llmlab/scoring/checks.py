"""Scorers: deterministic checks of a model's answer against a prompt's reference.

A prompt carries a *scorer spec*, a string ``name`` or ``name:arg`` (``numeric:0.01``, ``regex:^\\d+$``,
``keywords:budget|council``). :func:`score` parses the spec, looks the name up in :data:`SCORERS` and returns
a score in ``[0, 1]``. Every scorer here is a pure function of ``(answer, reference, arg)``: no model call,
no randomness, so the same answer always gets the same score.

Built-in scorers (name -> what counts as right):

``exact``
    The normalized answer equals the normalized reference (Unicode NFKC, casefold, whitespace collapsed,
    surrounding whitespace / quotes / ``*`` and trailing periods removed). Also accepted: the answer's last
    non-empty line, or the rest of the first line that starts with ``Answer:`` / ``Final answer:`` /
    ``The answer is``.
``contains``
    The normalized reference is a substring of the normalized answer.
``numeric`` / ``numeric:<rel_tol>``
    The last number in the answer (thousands separators, sign, decimals, exponent, a leading ``$`` and a
    trailing ``%`` accepted) equals the reference's number within relative tolerance ``rel_tol``
    (default 1e-6) or absolute tolerance 1e-9.
``regex:<pattern>``
    ``re.search(pattern, answer, re.DOTALL | re.MULTILINE)`` finds a match (case-sensitive unless the pattern
    says ``(?i)``). The reference is only documentation for this scorer.
``json_fields``
    The reference is a JSON object. The answer is parsed as JSON (whole text, a fenced ```json block, or the
    first ``{...}`` object in it); the score is the share of the reference's fields whose value the answer
    matches (strings normalized as for ``exact``, numbers numerically, lists in any order): partial credit.
``keywords:a|b|c``
    Share of the keywords found in the answer, case-insensitive, on word boundaries (``cat`` does not match
    ``category``). A keyword ending in ``*`` matches any word starting with it (``rate*`` matches ``rates``).
``choice``
    Multiple choice A-D: the letter the answer picks (``B``, ``(B)``, ``B.``, ``B) text``, ``Answer: B``,
    ``The answer is (B)``, ``Option B``) equals the reference letter. An answer naming several letters
    without saying which is its answer scores 0.

``auto``
    What a row with a reference and no scorer gets (:func:`auto_scorer_for`): ``numeric`` when the reference is
    one number, ``choice`` when it is one letter A-D, else ``contains``.

Add a scorer with :func:`register_scorer` (with a ``version`` string, stored with every score it gives, so a
re-scoring with a changed scorer is told apart; built-in checks are version :data:`BUILTIN_VERSION`), or with
:func:`llmlab.scorer` (:mod:`llmlab.scoring.scorers`). Bad specs (unknown name, missing or malformed argument, a
reference the scorer cannot use) raise :class:`~llmlab.errors.PromptSetError`, a ``ValueError``.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
import unicodedata
from collections.abc import Callable
from typing import Any

import pandas as pd

from llmlab.errors import PromptSetError

__all__ = [
    "BUILTIN_VERSION",
    "SCORERS",
    "SCORER_VERSIONS",
    "Scorer",
    "extract_choice",
    "extract_json_object",
    "extract_number",
    "normalize_text",
    "parse_scorer_spec",
    "register_scorer",
    "score",
    "score_frame",
    "scorer_version",
]

logger = logging.getLogger(__name__)

Scorer = Callable[[str, str, "str | None"], float]
"""A scorer: ``fn(answer, reference, arg) -> float in [0, 1]``.

``answer`` is a non-empty string (empty and missing answers score 0.0 before a scorer is called),
``reference`` is a string, ``arg`` is the text after the first ``:`` of the spec, or ``None``.
A scorer raises :class:`~llmlab.errors.PromptSetError` when the spec or reference is unusable.
"""

SCORERS: dict[str, Scorer] = {}
"""Registry of scorers by name. Use :func:`register_scorer` to add one."""

#: The version of the built-in checks (bump when one changes what it accepts).
BUILTIN_VERSION = "1"

SCORER_VERSIONS: dict[str, str] = {}
"""The version string of each registered scorer (``register_scorer(..., version=)``)."""

_NAME_RE = re.compile(r"^[a-z][a-z0-9_\-]*$")


def register_scorer(name: str, fn: Scorer, version: str | None = None) -> Scorer:
    """Register ``fn`` as the scorer called ``name`` (lower case letters, digits, ``_`` and ``-``).

    ``version`` (default :data:`BUILTIN_VERSION`) is stored with every score the scorer gives (``scores.version``).

    Re-registering a name replaces the previous scorer (notebook cells get re-run), with a log message.
    Returns ``fn``, so it also works as ``register_scorer("name", fn)`` in an expression.

    Raises:
        PromptSetError: the name is not a valid scorer name, or ``fn`` is not callable.
    """
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise PromptSetError(
            f"invalid scorer name {name!r}: use lower-case letters, digits, '_' or '-', starting with a letter"
        )
    if not callable(fn):
        raise PromptSetError(f"scorer {name!r} must be callable, got {type(fn).__name__}")
    if name in SCORERS and SCORERS[name] is not fn:
        logger.info("replacing scorer %r", name)
    SCORERS[name] = fn
    SCORER_VERSIONS[name] = str(version) if version is not None else BUILTIN_VERSION
    return fn


def scorer_version(spec: str | None) -> str | None:
    """The version of the scorer a spec names (``"numeric:0.01"`` -> the ``numeric`` scorer's), or None for an
    empty or unknown spec."""
    if _is_missing(spec) or not str(spec).strip():
        return None
    name, _ = _split_spec(str(spec))
    return SCORER_VERSIONS.get(name)


def parse_scorer_spec(spec: str) -> tuple[str, str | None]:
    """Split a scorer spec ``"name"`` or ``"name:arg"`` into ``(name, arg)``.

    The name is matched case-insensitively and must be registered; ``arg`` is everything after the first
    ``:`` (so regex patterns may contain ``:``), or ``None`` when there is no ``:`` or nothing after it.

    Raises:
        PromptSetError: empty spec, or unknown scorer name (the message lists the known ones).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise PromptSetError(f"empty scorer spec {spec!r}; known scorers: {', '.join(sorted(SCORERS))}")
    name, arg = _split_spec(spec)
    if name not in SCORERS:
        raise PromptSetError(f"unknown scorer {name!r} in spec {spec!r}; known scorers: {', '.join(sorted(SCORERS))}")
    return name, arg


@functools.lru_cache(maxsize=1024)
def _split_spec(spec: str) -> tuple[str, str | None]:
    name, sep, arg = spec.strip().partition(":")
    return name.strip().lower(), (arg if sep and arg != "" else None)


def score(scorer_spec: str | None, answer: str | None, reference: str | None) -> float | None:
    """Score one answer against its reference with the scorer named by ``scorer_spec``.

    Args:
        scorer_spec: ``"name"`` or ``"name:arg"`` (see the module docstring); ``None`` or blank means no scorer.
        answer: the model's response text; ``None`` (a failed call) or blank scores 0.0.
        reference: the prompt's reference answer; ``None`` means nothing to score against.

    Returns:
        A float in ``[0, 1]``, or ``None`` when ``scorer_spec`` or ``reference`` is missing.

    Raises:
        PromptSetError: unknown scorer, bad argument, or a reference the scorer cannot use
        (e.g. ``numeric`` with a reference holding no number).
    """
    if _is_missing(scorer_spec) or _is_missing(reference):
        return None
    if isinstance(scorer_spec, str) and not scorer_spec.strip():
        return None
    name, arg = parse_scorer_spec(str(scorer_spec))
    if _is_missing(answer) or not str(answer).strip():
        return 0.0
    value = float(SCORERS[name](str(answer), str(reference), arg))
    if math.isnan(value):
        raise PromptSetError(f"scorer {name!r} returned NaN")
    return min(1.0, max(0.0, value))


def score_frame(frame: pd.DataFrame) -> pd.Series:
    """Score every row of ``frame`` (columns ``response``, ``reference``, ``scorer``; others ignored).

    Returns:
        A float64 Series named ``score`` on ``frame``'s index: values in ``[0, 1]``, NaN where the row has no
        scorer or no reference. A missing/empty response scores 0.0.

    Raises:
        PromptSetError: a required column is missing, or a row's scorer spec/reference is unusable
        (the message names the row's index label).
    """
    missing = [c for c in ("response", "reference", "scorer") if c not in frame.columns]
    if missing:
        raise PromptSetError(
            f"score_frame needs columns response, reference, scorer; missing: {', '.join(missing)}; "
            f"columns are: {', '.join(map(str, frame.columns))}"
        )
    values: list[float] = []
    for label, spec, answer, reference in zip(
        frame.index, frame["scorer"], frame["response"], frame["reference"], strict=True
    ):
        try:
            result = score(
                None if _is_missing(spec) else spec,
                None if _is_missing(answer) else answer,
                None if _is_missing(reference) else reference,
            )
        except PromptSetError as exc:
            raise PromptSetError(f"row {label}: {exc}") from exc
        values.append(math.nan if result is None else result)
    return pd.Series(values, index=frame.index, dtype="float64", name="score")


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, (str, bytes, list, tuple, dict)):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


# --------------------------------------------------------------------------------------------------------
# normalization helpers

_STRIP_CHARS = " \t\r\n\"'`“”‘’«»„‚*"


def normalize_text(text: str) -> str:
    """Normalize text for comparison: NFKC, casefold, collapse whitespace, strip surrounding whitespace,
    quotes, backticks and ``*``, and trailing periods. Returns the normalized string."""
    s = unicodedata.normalize("NFKC", str(text)).casefold()
    s = " ".join(s.split())
    previous = None
    while s != previous:
        previous = s
        s = s.strip(_STRIP_CHARS)
        s = s.rstrip(".").rstrip()
    return s


_ANSWER_LINE_RE = re.compile(
    r"^\W*(?:the\s+)?(?:final\s+|correct\s+)?answer\s*(?:is\b\s*:?|[:：])\s*(?P<rest>.*)$", re.IGNORECASE
)


def _answer_candidates(answer: str) -> list[str]:
    """The texts of ``answer`` that may hold its final answer: the whole, the last non-empty line, and the
    rest of the first ``Answer:`` line."""
    candidates = [answer]
    lines = [line for line in answer.splitlines() if line.strip()]
    if lines:
        candidates.append(lines[-1])
    for line in lines:
        match = _ANSWER_LINE_RE.match(line.strip())
        if match and match.group("rest").strip():
            candidates.append(match.group("rest"))
            break  # only the first answer line counts: hedging over several lines earns nothing extra
    return candidates


# --------------------------------------------------------------------------------------------------------
# exact / contains


def _no_arg(name: str, arg: str | None) -> None:
    if arg is not None:
        raise PromptSetError(f"scorer {name!r} takes no argument, got {arg!r}")


def _score_exact(answer: str, reference: str, arg: str | None) -> float:
    _no_arg("exact", arg)
    target = normalize_text(reference)
    return 1.0 if any(normalize_text(c) == target for c in _answer_candidates(answer)) else 0.0


def _score_contains(answer: str, reference: str, arg: str | None) -> float:
    _no_arg("contains", arg)
    target = normalize_text(reference)
    if not target:
        raise PromptSetError("scorer 'contains' needs a non-empty reference")
    return 1.0 if target in normalize_text(answer) else 0.0


# --------------------------------------------------------------------------------------------------------
# numeric

_NUMBER_RE = re.compile(
    r"""
    (?:(?<![\w)\].])(?P<sign>[-−])\s?)?      # a minus sign, unless it reads as subtraction ("5-3")
    (?:\$\s?(?P<sign2>-)?)?                  # "$5", "$-5"
    (?P<num>\d{1,3}(?:,\d{3})+(?!\d)(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)
    (?P<exp>[eE][-+]?\d+)?
    (?P<pct>\s?%)?
    """,
    re.VERBOSE,
)


def extract_number(text: str) -> float | None:
    """The last number in ``text`` as a float, or ``None`` when there is none.

    Accepts thousands separators (``1,234.5``), a sign (``-3``, ``−3``), decimals, exponents (``1e-3``),
    a leading ``$`` and a trailing ``%`` (``25%`` is 25). A hyphen between two numbers is read as a
    dash/subtraction, not a sign (``5-3`` ends with 3).
    """
    last = None
    for last in _NUMBER_RE.finditer(unicodedata.normalize("NFKC", str(text))):
        pass
    if last is None:
        return None
    value = float(last.group("num").replace(",", "") + (last.group("exp") or ""))
    if last.group("sign") or last.group("sign2"):
        value = -value
    return value


def _score_numeric(answer: str, reference: str, arg: str | None) -> float:
    rel_tol = 1e-6
    if arg is not None:
        try:
            rel_tol = float(arg)
        except ValueError:
            raise PromptSetError(f"scorer 'numeric' takes a relative tolerance like 'numeric:0.01', got {arg!r}") from None
        if not (rel_tol >= 0 and math.isfinite(rel_tol)):
            raise PromptSetError(f"numeric tolerance must be a finite number >= 0, got {arg!r}")
    expected = extract_number(reference)
    if expected is None:
        raise PromptSetError(f"scorer 'numeric' needs a number in the reference, got {reference!r}")
    got = extract_number(answer)
    if got is None:
        return 0.0
    return 1.0 if math.isclose(got, expected, rel_tol=rel_tol, abs_tol=1e-9) else 0.0


# --------------------------------------------------------------------------------------------------------
# regex


@functools.lru_cache(maxsize=1024)
def _compile_regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.DOTALL | re.MULTILINE)
    except re.error as exc:
        raise PromptSetError(f"invalid regex in scorer spec 'regex:{pattern}': {exc}") from None


def _score_regex(answer: str, reference: str, arg: str | None) -> float:
    if not arg:
        raise PromptSetError("scorer 'regex' needs a pattern: 'regex:<pattern>'")
    return 1.0 if _compile_regex(arg).search(answer) else 0.0


# --------------------------------------------------------------------------------------------------------
# json_fields

_FENCE_RE = re.compile(r"```[ \t]*(?:json|JSON|javascript)?[ \t]*\n?(.*?)```", re.DOTALL)
_MAX_BRACE_TRIES = 64


def extract_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text``: the whole text, else a fenced ```json block, else the first
    ``{...}`` that parses. Returns a dict, or ``None`` when no object is found."""
    stripped = text.strip()
    try:
        value = json.loads(stripped)
        if isinstance(value, dict):
            return value
    except ValueError:
        pass
    for match in _FENCE_RE.finditer(text):
        try:
            value = json.loads(match.group(1).strip())
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    decoder = json.JSONDecoder()
    start = text.find("{")
    tries = 0
    while start != -1 and tries < _MAX_BRACE_TRIES:
        tries += 1
        try:
            value, _ = decoder.raw_decode(text, start)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    return None


_FULL_NUMBER_RE = re.compile(r"^\s*[-−]?\s?\$?\s?-?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][-+]?\d+)?\s?%?\s*$")


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and any(ch.isdigit() for ch in value):
        text = normalize_text(value)
        if _FULL_NUMBER_RE.match(text):
            return extract_number(text)
    return None


def _values_equal(expected: Any, got: Any) -> bool:
    if isinstance(expected, bool):
        if isinstance(got, bool):
            return expected is got
        return isinstance(got, str) and normalize_text(got) == ("true" if expected else "false")
    if expected is None:
        return got is None or (isinstance(got, str) and normalize_text(got) in ("null", "none", ""))
    if isinstance(expected, (int, float)):
        number = _as_number(got)
        return number is not None and math.isclose(number, float(expected), rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(expected, str):
        if isinstance(got, (int, float)) and not isinstance(got, bool):
            number = _as_number(expected)
            return number is not None and math.isclose(number, float(got), rel_tol=1e-6, abs_tol=1e-9)
        if not isinstance(got, str):
            return False
        if normalize_text(got) == normalize_text(expected):
            return True
        left, right = _as_number(expected), _as_number(got)
        return left is not None and right is not None and math.isclose(left, right, rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(expected, list):
        if not isinstance(got, list) or len(got) != len(expected):
            return False
        if all(_values_equal(e, g) for e, g in zip(expected, got, strict=True)):
            return True
        remaining = list(got)  # any order: match each expected item to a distinct answer item
        for item in expected:
            for i, candidate in enumerate(remaining):
                if _values_equal(item, candidate):
                    del remaining[i]
                    break
            else:
                return False
        return True
    if isinstance(expected, dict):
        return isinstance(got, dict) and _field_share(expected, got) == 1.0
    return expected == got


def _lookup_field(obj: dict[str, Any], key: str) -> tuple[bool, Any]:
    if key in obj:
        return True, obj[key]
    folded = key.casefold()
    for other, value in obj.items():
        if isinstance(other, str) and other.casefold() == folded:
            return True, value
    return False, None


def _field_share(expected: dict[str, Any], got: dict[str, Any]) -> float:
    matched = 0
    for key, value in expected.items():
        found, candidate = _lookup_field(got, key)
        if found and _values_equal(value, candidate):
            matched += 1
    return matched / len(expected)


@functools.lru_cache(maxsize=4096)
def _reference_object(reference: str) -> dict[str, Any]:
    try:
        value = json.loads(reference)
    except ValueError as exc:
        raise PromptSetError(f"scorer 'json_fields' needs a JSON object as reference; {exc}: {reference!r}") from None
    if not isinstance(value, dict) or not value:
        raise PromptSetError(f"scorer 'json_fields' needs a non-empty JSON object as reference, got {reference!r}")
    return value


def _score_json_fields(answer: str, reference: str, arg: str | None) -> float:
    _no_arg("json_fields", arg)
    expected = _reference_object(reference)
    got = extract_json_object(answer)
    if got is None:
        return 0.0
    return _field_share(expected, got)


# --------------------------------------------------------------------------------------------------------
# keywords


@functools.lru_cache(maxsize=1024)
def _keyword_patterns(arg: str) -> tuple[re.Pattern[str], ...]:
    words = [unicodedata.normalize("NFKC", w).strip() for w in arg.split("|")]
    words = [w for w in words if w and w != "*"]
    if not words:
        raise PromptSetError(f"scorer 'keywords' needs keywords: 'keywords:word1|word2', got {arg!r}")
    patterns = []
    for word in words:
        prefix = word.endswith("*")
        core = word.rstrip("*").strip()
        body = r"\s+".join(re.escape(part) for part in core.split())
        patterns.append(re.compile(r"(?<!\w)" + body + (r"\w*" if prefix else r"(?!\w)"), re.IGNORECASE))
    return tuple(patterns)


def _score_keywords(answer: str, reference: str, arg: str | None) -> float:
    if not arg:
        raise PromptSetError("scorer 'keywords' needs keywords: 'keywords:word1|word2|word3'")
    patterns = _keyword_patterns(arg)
    text = unicodedata.normalize("NFKC", answer)
    return sum(1 for p in patterns if p.search(text)) / len(patterns)


# --------------------------------------------------------------------------------------------------------
# choice

_LONE_LETTER_RE = re.compile(r"^(?:option\s+)?[(\[]?([a-d])[)\].:]?$", re.IGNORECASE)
_ANSWER_LETTER_RE = re.compile(
    r"(?i:answer|option|choice)(?:\s+is)?\s*[:：\-]?\s*(?:\*\*)?\s*(?:[(\[]([A-Da-d])[)\]]|([A-D])(?![\w'’]))"
)
_LINE_LETTER_RE = re.compile(r"^\W{0,4}?[(\[]?([A-D])(?:[)\].:]|\*\*)(?:\s|$)", re.MULTILINE)


def extract_choice(text: str) -> str | None:
    """The letter A-D that ``text`` picks, upper-cased, or ``None`` when it picks none or is ambiguous.

    Tried in order: the whole text, its last line or its first ``Answer:`` line being a lone letter (``B``,
    ``(B)``, ``B.``); the last ``Answer: B`` / ``answer is (B)`` / ``Option B`` phrase; a single distinct
    letter starting lines (``B) 42``, ``B. 42``).
    """
    for candidate in _answer_candidates(text):
        match = _LONE_LETTER_RE.match(normalize_text(candidate))
        if match:
            return match.group(1).upper()
    answer_matches = list(_ANSWER_LETTER_RE.finditer(text))
    if answer_matches:
        last = answer_matches[-1]
        return (last.group(1) or last.group(2)).upper()
    letters = {m.group(1) for m in _LINE_LETTER_RE.finditer(text)}
    if len(letters) == 1:
        return letters.pop()
    return None


def _score_choice(answer: str, reference: str, arg: str | None) -> float:
    _no_arg("choice", arg)
    expected = extract_choice(reference)
    if expected is None:
        raise PromptSetError(f"scorer 'choice' needs a letter A-D as reference, got {reference!r}")
    return 1.0 if extract_choice(answer) == expected else 0.0


def _score_auto(answer: str, reference: str, arg: str | None) -> float:
    """What a row with a reference but no scorer gets: ``numeric`` for a number, ``choice`` for one letter A-D,
    else ``contains``."""
    _no_arg("auto", arg)
    return SCORERS[auto_scorer_for(reference)](answer, reference, None)


def auto_scorer_for(reference: str) -> str:
    """The scorer ``auto`` uses for ``reference``: ``numeric`` (the reference is one number, ``42``, ``-3.5``,
    ``1,200``), ``choice`` (one letter A-D, optionally in parentheses), else ``contains``."""
    ref = str(reference).strip()
    if re.fullmatch(r"[-+]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?", ref):
        return "numeric"
    if re.fullmatch(r"\(?[A-Da-d]\)?", ref):
        return "choice"
    return "contains"


for _name, _fn in (
    ("auto", _score_auto),
    ("exact", _score_exact),
    ("contains", _score_contains),
    ("numeric", _score_numeric),
    ("regex", _score_regex),
    ("json_fields", _score_json_fields),
    ("keywords", _score_keywords),
    ("choice", _score_choice),
):
    register_scorer(_name, _fn)
del _name, _fn
