"""The sandbox's pairwise judge: deterministic verdicts on two answers, with a deliberate position bias.

A request whose text holds :data:`PAIRWISE_MARKER` and the blocks ``<reference>``, ``<answer_1>`` and
``<answer_2>`` (the prompt of :func:`llmlab.scoring.pairwise.pairwise_prompt`) is answered ``Winner: 1``,
``Winner: 2`` or ``Winner: tie``:

1. the true verdict: the answer that matches the reference (as the sandbox's single-answer judge decides a
   match: equal or containing it, whitespace- and case-normalized) wins; both or neither match is a tie;
2. a *mistake* with probability ``mistake_rate`` (decided by a hash of the unordered pair, so both orders make
   the same mistake): a win becomes a loss, a tie goes to one answer;
3. a *position bias* with probability ``position_bias`` (decided by a hash of the ordered request, so each order
   is biased independently): the answer shown first wins, whatever 1 and 2 said.

A judge with ``position_bias = 0`` is therefore perfectly consistent across orders; one with ``position_bias = p``
flips a share of its verdicts when the order is swapped. Every figure is simulated.

Configure per sandbox (``sb.pairwise_judges["frontier"] = PairwiseJudgeProfile(position_bias=0.3)``, or
:func:`set_pairwise_judge`), or over HTTP: ``GET /_sandbox/pairwise_judges``, ``POST /_sandbox/pairwise_judges``
with ``{"model": "frontier", "position_bias": 0.3, "mistake_rate": 0.05}``.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web

from llmlab.errors import FaultSpecError
from llmlab.sandbox.answers import SandboxAnswer, _norm, _unit

__all__ = [
    "PAIRWISE_JUDGES",
    "PAIRWISE_MARKER",
    "PairwiseJudgeProfile",
    "pairwise_answer",
    "pairwise_control",
    "set_pairwise_judge",
]

#: The directive that makes a request a pairwise judgement (first line of llmlab's pairwise prompt).
PAIRWISE_MARKER = "[llmlab-pairwise]"


@dataclass(frozen=True)
class PairwiseJudgeProfile:
    """How one sandbox model judges pairs (simulated).

    Attributes:
        position_bias: probability (0..1) that a verdict goes to the answer shown first, whatever the answers.
        mistake_rate: probability (0..1) of a wrong verdict, the same in both orders; None takes the model's
            single-answer judge mistake rate, ``(1 - default_accuracy) / 2``.
    """

    position_bias: float = 0.0
    mistake_rate: float | None = None

    def __post_init__(self) -> None:
        for name in ("position_bias", "mistake_rate"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= float(value) <= 1.0:
                raise FaultSpecError(f"pairwise judge {name} must be within 0..1, got {value!r}")


#: The default pairwise judges: frontier and balanced judge without position bias; fast has a slight one and tiny
#: a strong one (it prefers the first answer 40 % of the time), on purpose, so the bias measurement has
#: something to find. Models not listed judge without bias.
PAIRWISE_JUDGES: dict[str, PairwiseJudgeProfile] = {
    "frontier": PairwiseJudgeProfile(position_bias=0.0),
    "balanced": PairwiseJudgeProfile(position_bias=0.0),
    "fast": PairwiseJudgeProfile(position_bias=0.15),
    "tiny": PairwiseJudgeProfile(position_bias=0.4),
}

_BLOCK = {name: re.compile(rf"<{name}>(.*?)</{name}>", re.S) for name in ("question", "reference", "answer_1",
                                                                          "answer_2")}


def _last_block(name: str, text: str) -> str | None:
    found = _BLOCK[name].findall(text)
    return found[-1] if found else None


def _matches(reference: str, answer: str) -> bool:
    ref_n, ans_n = _norm(reference).lower(), _norm(answer).lower()
    return bool(ref_n) and ref_n != "(none given)" and (ans_n == ref_n or ref_n in ans_n)


def pairwise_answer(judges: dict[str, PairwiseJudgeProfile], model: str, default_accuracy: float, text: str,
                    seed: int, salt: tuple) -> SandboxAnswer | None:
    """The verdict of sandbox ``model`` on a pairwise request ``text`` (None when ``text`` is not one).

    ``judges`` maps bare model names to their :class:`PairwiseJudgeProfile` (a model missing from it judges
    without bias); ``default_accuracy`` is the model's, for the default mistake rate.
    """
    if PAIRWISE_MARKER not in text:
        return None
    a1, a2 = _last_block("answer_1", text), _last_block("answer_2", text)
    if a1 is None or a2 is None:
        return None
    reference = _last_block("reference", text) or ""
    question = _norm(_last_block("question", text) or "")
    profile = judges.get(model, PairwiseJudgeProfile())
    mistake = profile.mistake_rate if profile.mistake_rate is not None else (1.0 - default_accuracy) / 2.0
    c1, c2 = _matches(reference, a1), _matches(reference, a2)
    first, second = sorted([_norm(a1), _norm(a2)])
    pair_key = (seed, model, question, first, second, salt)
    if c1 != c2:
        winner = "1" if c1 else "2"
        if _unit("pairwise-mistake", *pair_key) < mistake:
            winner = "2" if winner == "1" else "1"
    else:
        winner = "tie"
        if _unit("pairwise-mistake", *pair_key) < mistake:  # a tie given to one answer, the same in both orders
            winner = "1" if _norm(a1) == first else "2"
    if _unit("pairwise-position", seed, model, question, _norm(a1), _norm(a2), salt) < profile.position_bias:
        winner = "1"
    return SandboxAnswer(f"Winner: {winner}", "stop", "judge")


def set_pairwise_judge(judges: dict[str, PairwiseJudgeProfile], model: str, *, position_bias: float = 0.0,
                       mistake_rate: float | None = None) -> PairwiseJudgeProfile:
    """Set how bare sandbox ``model`` judges pairs (``judges`` is a sandbox's ``pairwise_judges``); returns the
    profile. Raises FaultSpecError for a rate outside 0..1."""
    profile = PairwiseJudgeProfile(position_bias=float(position_bias),
                                   mistake_rate=None if mistake_rate is None else float(mistake_rate))
    judges[str(model).rsplit("/", 1)[-1]] = profile
    return profile


async def pairwise_control(judges: dict[str, PairwiseJudgeProfile], request: web.Request) -> web.Response:
    """``GET`` / ``POST /_sandbox/pairwise_judges``: read or set the pairwise judge profiles."""
    if request.method == "POST":
        try:
            body: Any = await request.json()
            if not isinstance(body, dict) or "model" not in body:
                raise FaultSpecError("the body must be a JSON object with 'model'")
            unknown = set(body) - {"model", "position_bias", "mistake_rate"}
            if unknown:
                raise FaultSpecError(f"unknown fields: {', '.join(sorted(unknown))}")
            set_pairwise_judge(judges, body["model"], position_bias=body.get("position_bias", 0.0),
                               mistake_rate=body.get("mistake_rate"))
        except (FaultSpecError, ValueError, TypeError) as exc:
            return web.json_response({"error": {"message": str(exc), "type": "invalid_request_error"}}, status=400)
    elif request.method != "GET":
        return web.json_response({"error": {"message": f"no {request.method} here", "type": "not_found"}},
                                 status=404)
    return web.json_response({"pairwise_judges": {m: asdict(p) for m, p in judges.items()}})
