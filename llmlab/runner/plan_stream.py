"""A plan of a prompt file too large to hold: :func:`stream_plan` plans it chunk by chunk and keeps only the sums.

``llmlab run big.jsonl --dry-run`` uses it: the file is read in chunks (:func:`llmlab.prompts.streaming.
iter_prompt_sets`), each chunk is planned exactly as :func:`llmlab.runner.plan.plan` plans a prompt set (models
resolved, messages built, the cache looked up in the store) and dropped; what remains is a :class:`PlanSummary`
(calls, cache hits and estimated cost per model, rows read). Memory is bounded by the chunk (plus about 120 bytes
per prompt for the cross-chunk repeat check), not by the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llmlab.runner.options import RunOptions

__all__ = ["PlanSummary", "stream_plan"]


@dataclass
class PlanSummary:
    """The sums of a streamed plan. ``per_model``: model → ``{"calls", "cached", "est_cost_usd"}`` (USD, None when
    the model has no price); ``rows_read``, ``n_prompts``, ``repeats_dropped``, ``chunks``, ``source`` from the read.
    Duck-types the parts of :class:`~llmlab.runner.plan.Plan` that :func:`~llmlab.runner.plan.check_budget` reads
    (``options``, ``n_calls``, ``n_cached``, ``estimate_cost_usd()``)."""

    options: RunOptions
    models: list[str]
    source: str = ""
    rows_read: int = 0
    n_prompts: int = 0
    repeats_dropped: int = 0
    chunks: int = 0
    per_model: dict[str, dict[str, Any]] = field(default_factory=dict)
    option_lines: list[str] = field(default_factory=list)

    @property
    def n_calls(self) -> int:
        return sum(int(m["calls"]) for m in self.per_model.values())

    @property
    def n_cached(self) -> int:
        return sum(int(m["cached"]) for m in self.per_model.values())

    def estimate_cost_usd(self) -> float | None:
        """Estimated USD of the calls the cache does not serve (None if a model has no price); as Plan's."""
        costs = [m["est_cost_usd"] for m in self.per_model.values()]
        return None if any(c is None for c in costs) else float(sum(costs))

    def to_frame(self) -> Any:
        """Per model: ``model, calls, cached, to_call, est_cost_usd`` (USD), as :meth:`Plan.to_frame`."""
        import pandas as pd

        return pd.DataFrame([{"model": m, "calls": v["calls"], "cached": v["cached"],
                              "to_call": v["calls"] - v["cached"], "est_cost_usd": v["est_cost_usd"]}
                             for m, v in self.per_model.items()])

    def __repr__(self) -> str:
        est = self.estimate_cost_usd()
        est_s = "unknown (a model has no price)" if est is None else f"${est:.4f}"
        lines = [f"Plan (streamed: {self.rows_read:,} rows read from {self.source} in {self.chunks} chunks, "
                 f"{self.repeats_dropped:,} repeats dropped): {self.n_calls:,} calls = {self.n_prompts:,} prompts × "
                 f"{len(self.models)} models × {self.options.samples} samples; {self.n_cached:,} from cache; "
                 f"estimated cost {est_s}", *self.option_lines]
        lines += ["  " + line for line in self.to_frame().to_string(index=False).splitlines()]
        return "\n".join(lines)


def stream_plan(source: Any, models: Any = None, *, options: RunOptions | None = None, store: Any = None,
                chunk_rows: int | None = None, **load_kwargs: Any) -> PlanSummary:
    """Plan ``source`` chunk by chunk (see the module docstring) and return the sums.

    Args:
        source: what :func:`llmlab.load_prompts` takes (CSV / JSONL files are streamed; others load whole).
        models: as for :func:`llmlab.runner.plan.plan`.
        options: the run's options (default ``RunOptions()``).
        store: the store whose cache is looked up (None: no cache lookup).
        chunk_rows: rows per chunk (default :data:`llmlab.prompts.streaming.DEFAULT_CHUNK_ROWS`).
        load_kwargs: ``template``, ``category_column``, ``encoding`` and the other column options of load_prompts.

    Raises PromptSetError (with file and line), ModelError, MissingKeyError, as planning the whole file would.
    """
    from llmlab.prompts.streaming import DEFAULT_CHUNK_ROWS, StreamStats, iter_prompt_sets
    from llmlab.runner.plan import plan

    options = options or RunOptions()
    stats = StreamStats()
    summary: PlanSummary | None = None
    for chunk in iter_prompt_sets(source, chunk_rows=chunk_rows or DEFAULT_CHUNK_ROWS, stats=stats, **load_kwargs):
        part = plan(chunk, models, options=options, store=store)  # the chunk is rendered already (template applied)
        if summary is None:
            summary = PlanSummary(options=options, models=[s.name for s in part.specs])
            summary.option_lines = part.option_lines()
        for row in part.to_frame().to_dict("records"):
            acc = summary.per_model.setdefault(row["model"], {"calls": 0, "cached": 0, "est_cost_usd": 0.0})
            acc["calls"] += int(row["calls"])
            acc["cached"] += int(row["cached"])
            cost = row["est_cost_usd"]
            acc["est_cost_usd"] = None if acc["est_cost_usd"] is None or cost is None or cost != cost else (
                acc["est_cost_usd"] + float(cost))
        del part, chunk
    assert summary is not None  # iter_prompt_sets raises on an empty source
    summary.source, summary.rows_read, summary.n_prompts = stats.source, stats.rows_read, stats.prompts
    summary.repeats_dropped, summary.chunks = stats.repeats_dropped, stats.chunks
    return summary

