"""What a run would do: prompts × models × samples resolved into planned calls, cache hits looked up,
the budget checked (:func:`plan`, :func:`prepare`). Nothing is called."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from llmlab.errors import BudgetError, ModelError
from llmlab.models import ModelSpec, expand, resolve_all
from llmlab.store import Store, new_id

log = logging.getLogger(__name__)
from llmlab.runner.options import RunOptions, options_from

__all__ = [
    "Plan",
    "PlannedCall",
    "build_messages",
    "cache_key",
    "call_params",
    "check_budget",
    "plan",
    "prepare",
    "resolve_fallbacks",
]


@dataclass
class PlannedCall:
    """One (prompt, model, sample) of a run."""

    call_id: str
    prompt: Any  # llmlab.prompts.Prompt
    spec: ModelSpec
    sample_index: int
    messages: list[dict[str, Any]]
    cache_key: str
    est_input_tokens: int
    est_output_tokens: int
    #: per-call request parameters beyond the run's: ``response_format``, ``tools``, ``tool_choice`` (row or run)
    call_params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    """What a run would do. ``calls``: every planned call; ``cached``: cache key → stored row for the hits."""

    prompt_set: Any
    specs: list[ModelSpec]
    options: RunOptions
    calls: list[PlannedCall]
    cached: dict[str, dict[str, Any]] = field(default_factory=dict)
    store: Store | None = None
    #: fallback chains resolved at planning time: model name → [ModelSpec, ...] (the model itself excluded)
    fallback_specs: dict[str, list[ModelSpec]] = field(default_factory=dict)
    #: a stand-in for ``litellm.acompletion`` (tests; see :class:`llmlab.runner.fanout._Fanout`)
    completion: Any = None

    @property
    def n_calls(self) -> int:
        return len(self.calls)

    @property
    def n_cached(self) -> int:
        return sum(1 for c in self.calls if c.cache_key in self.cached)

    def estimate_cost_usd(self) -> float | None:
        """Estimated cost of the calls not served by the cache, in USD (None if a model has no price).

        Input tokens ≈ characters / 4; output tokens ≈ 1.5 × the reference's estimated tokens when there is a
        reference, else min(max_tokens, 256). An estimate, not a bound.
        """
        total = 0.0
        for c in self.calls:
            if c.cache_key in self.cached:
                continue
            cost = c.spec.cost_usd(c.est_input_tokens, c.est_output_tokens)
            if cost is None:
                return None
            total += cost
        return total

    def to_frame(self) -> Any:
        """Per model: ``model, calls, cached, to_call, est_cost_usd`` (a pandas DataFrame)."""
        import pandas as pd

        rows = []
        for spec in self.specs:
            calls = [c for c in self.calls if c.spec.name == spec.name]
            to_call = [c for c in calls if c.cache_key not in self.cached]
            costs = [c.spec.cost_usd(c.est_input_tokens, c.est_output_tokens) for c in to_call]
            rows.append({
                "model": spec.name, "calls": len(calls), "cached": len(calls) - len(to_call), "to_call": len(to_call),
                "est_cost_usd": None if any(x is None for x in costs) else sum(costs),
            })
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        est = self.estimate_cost_usd()
        est_s = "unknown (a model has no price)" if est is None else f"${est:.4f}"
        lines = [
            f"Plan: {self.n_calls} calls = {len(self.prompt_set)} prompts × {len(self.specs)} models × "
            f"{self.options.samples} samples; {self.n_cached} from cache; estimated cost {est_s}",
            *self.option_lines(),
        ]
        lines += ["  " + line for line in self.to_frame().to_string(index=False).splitlines()]
        return "\n".join(lines)

    def option_lines(self) -> list[str]:
        """The lines of ``repr`` that state the run's settings (concurrency, per-model caps), indented."""
        return [f"  concurrency {self.options.concurrency} calls in flight"
                + ("" if self.options.per_model_concurrency is None else "; per-model caps: " + ", ".join(
                    f"{s.name} {per_model_cap(self.options, s.name) or 'none'}" for s in self.specs))]


def per_model_cap(options: RunOptions, model: str) -> int | None:
    """The concurrency cap of one model (None: no cap beyond ``concurrency``)."""
    pmc = options.per_model_concurrency
    n = pmc.get(model) if isinstance(pmc, dict) else pmc
    return None if n is None else max(1, int(n))


def _estimate_tokens(text: str | None) -> int:
    return max(1, len(text or "") // 4)


def build_messages(text: str, system: str | None, messages: Any = None) -> list[dict[str, Any]]:
    """OpenAI-style chat messages for one prompt: its conversation (image files as data URLs, the run's ``system``
    first when the conversation has no system turn), or ``system`` + one user turn. Raises PromptSetError for an
    image file that is gone or changed since the prompt set was loaded."""
    if messages:
        from llmlab.prompts.conversations import to_wire

        msgs = to_wire(messages)
        if system and not any(m.get("role") == "system" for m in msgs):
            msgs.insert(0, {"role": "system", "content": system})
        return msgs
    msgs = []
    if system:
        msgs.append({"role": "system", "content": system})
    msgs.append({"role": "user", "content": text})
    return msgs


def call_params(prompt: Any, options: RunOptions) -> dict[str, Any]:
    """The structured-output and tool parameters of one prompt's calls: the row's ``response_format`` / ``tools``
    / ``tool_choice``, else the run's (normalized by :mod:`llmlab.prompts.conversations`; PromptSetError names
    the run option when it is not valid)."""
    from llmlab.prompts.conversations import normalize_response_format, normalize_tool_choice, normalize_tools

    out: dict[str, Any] = {}
    rf = prompt.response_format
    if rf is None and options.response_format is not None:
        rf = normalize_response_format(options.response_format, "run option response_format")
    if rf is not None:
        out["response_format"] = rf
    tools = prompt.tools
    choice = prompt.tool_choice
    if tools is None and options.tools is not None:
        tools = normalize_tools(options.tools, "run option tools")
    if choice is None and options.tool_choice is not None:
        choice = normalize_tool_choice(options.tool_choice, tools, "run option tool_choice")
    if tools is not None:
        out["tools"] = [dict(t) for t in tools]
        if choice is not None:
            out["tool_choice"] = choice
    return out


def cache_key(spec: ModelSpec, messages: list[dict[str, str]], params: Mapping[str, Any], sample_index: int) -> str:
    """SHA-256 over everything that shapes the output: model, API base choice, messages, parameters, sample."""
    payload = {
        "model": spec.name,
        "litellm_model": spec.litellm_model,
        "api_base": spec.api_base,
        "messages": messages,
        "params": dict(sorted(params.items())),
        "sample_index": sample_index,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def check_scorers(prompt_set: Any) -> None:
    """Refuse a plan whose scorer specs cannot score (before any call, so nothing is spent or half-recorded).

    Every distinct ``(scorer, reference)`` of a plain prompt is tried once on a dummy answer; structured prompts
    (response format, tools) have their scorer name checked. Raises PromptSetError naming the prompt (its id in
    the file, or its content id) and the problem: unknown scorer, bad argument (a regex that does not compile),
    or a reference the scorer cannot use (``numeric`` with no number).
    """
    from llmlab.errors import PromptSetError
    from llmlab.scoring.checks import parse_scorer_spec, score

    seen: set[tuple[str, str | None, bool]] = set()
    for p in prompt_set:
        if not p.scorer:
            continue
        structured = p.response_format is not None or bool(p.tools)
        key = (p.scorer, None if structured else p.reference, structured)
        if key in seen:
            continue
        seen.add(key)
        try:
            if structured or p.reference is None:
                parse_scorer_spec(p.scorer)
            else:
                score(p.scorer, "llmlab scorer check", p.reference)
        except PromptSetError as exc:
            raise PromptSetError(f"prompt {p.source_id or p.prompt_id}: {exc}") from None


def plan(prompts: Any, models: Iterable[str] | str | None = None, *, options: RunOptions | None = None,
         store: Store | None = None, template: str | None = None, category_column: str | None = None,
         check_keys: bool = True) -> Plan:
    """Plan a run without calling anything: resolve models (all problems reported at once), load the prompt set,
    build every call and look the calls up in the cache.

    Raises PromptSetError, ModelError, MissingKeyError.
    """
    from llmlab.models import default_models
    from llmlab.prompts import load_prompts

    options = options or RunOptions()
    prompt_set = load_prompts(prompts, template=template, category_column=category_column)
    check_scorers(prompt_set)
    specs = resolve_all(models if models else default_models(), check_keys=check_keys)
    params = options.request_params()
    calls: list[PlannedCall] = []
    for p in prompt_set:
        system = p.system or options.system
        messages = build_messages(p.text, system, p.messages)
        extra = call_params(p, options)
        # the key sees image files by their hash (the stored form), never their bytes
        key_messages = build_messages(p.text, system) if p.messages is None else [
            *([{"role": "system", "content": system}] if system and not p.system else []), *p.messages]
        key_params = {**params, **extra}
        if options.tool_steps and p.tool_results:
            key_params.update(llmlab_tool_steps=options.tool_steps, llmlab_tool_results=p.tool_results)
        if p.messages is None:
            est_in = _estimate_tokens(p.text) + _estimate_tokens(system) if system else _estimate_tokens(p.text)
        else:
            est_in = sum(_estimate_tokens(json.dumps(m.get("content"), default=str)) for m in key_messages)
        if p.reference:
            est_out = int(_estimate_tokens(p.reference) * 1.5) + 1
        else:
            est_out = min(options.max_tokens or 256, 256)
        for spec in specs:
            for s in range(options.samples):
                calls.append(PlannedCall(
                    call_id=new_id("c"), prompt=p, spec=spec, sample_index=s, messages=messages,
                    cache_key=cache_key(spec, key_messages, key_params, s), est_input_tokens=est_in,
                    est_output_tokens=est_out, call_params=extra,
                ))
    fallback_specs = resolve_fallbacks(specs, options)
    _ensure_sandbox_for([*specs, *(f for chain in fallback_specs.values() for f in chain)])
    store = store or Store()
    cached = store.cached_calls(c.cache_key for c in calls) if options.cache else {}
    return Plan(prompt_set=prompt_set, specs=specs, options=options, calls=calls, cached=cached, store=store,
                fallback_specs=fallback_specs)


def _ensure_sandbox_for(specs: Iterable[ModelSpec]) -> None:
    """Start the process-wide sandbox now, on the planning thread, when a sandbox model is planned and none is
    configured (never later, on the event loop's thread, inside a request's timeout)."""
    import os

    from llmlab.models import SANDBOX_API_BASE_ENV

    if any(s.sandbox for s in specs) and not os.environ.get(SANDBOX_API_BASE_ENV):
        from llmlab.sandbox import ensure_sandbox

        ensure_sandbox()


def resolve_fallbacks(specs: Iterable[ModelSpec], options: RunOptions) -> dict[str, list[ModelSpec]]:
    """Each planned model's fallback chain (``options.fallbacks``; aliases expanded), resolved before any call:
    a bad fallback model string raises here (ModelError), never inside the fan-out. Keys of fallback models are
    checked when they are needed (a fallback is tried only after its primary failed)."""
    chains: dict[str, list[ModelSpec]] = {}
    for spec in specs:
        names = [n for n in expand(options.fallbacks.get(spec.name, [])) if n != spec.name]
        try:
            chains[spec.name] = resolve_all(names, check_keys=False) if names else []
        except ModelError as exc:
            raise ModelError(f"fallbacks for {spec.name}: {exc}") from exc
    return chains



def prepare(prompts: Any, models: Iterable[str] | str | None = None, *, store: Store | None = None,
            template: str | None = None, category_column: str | None = None, completion: Any = None,
            **options: Any) -> Plan:
    """Plan a run and check its budget, calling nothing (:func:`plan` plus the ``budget_usd`` check).

    The returned :class:`Plan` carries its store; give it to :func:`execute` (blocking) or :func:`start`
    (non-blocking). ``completion``: a stand-in for ``litellm.acompletion`` (the fan-out's unit seam, for tests).
    Raises PromptSetError, ModelError, MissingKeyError, BudgetError, OptionsError (a bad or unknown option).
    """
    store = store or Store()
    opts = options_from(**options)
    the_plan = plan(prompts, models, options=opts, store=store, template=template, category_column=category_column)
    the_plan.completion = completion
    check_budget(the_plan)
    return the_plan


def check_budget(the_plan: Plan, option: str = "budget_usd") -> None:
    """Refuse a plan whose estimated cost exceeds ``options.budget_usd`` (the one budget check; the surfaces name
    the option as their users type it: ``--budget`` in the CLI and the magic). Raises BudgetError. A plan with an
    unpriced model cannot be checked: a warning says so and the run stops issuing calls once the priced ones
    spent the budget."""
    budget = the_plan.options.budget_usd
    if budget is None:
        return
    est = the_plan.estimate_cost_usd()
    if est is None:
        log.warning("llmlab: a model has no price: %s can only count the priced calls", option)
        return
    if est > budget:
        raise BudgetError(
            f"estimated cost ${est:.4f} exceeds {option} ${budget:.4f} "
            f"({the_plan.n_calls - the_plan.n_cached} calls to make); nothing was called "
            f"(raise {option}, or ask fewer models/prompts; a dry run shows the plan)")

