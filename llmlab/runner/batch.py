"""Batch mode: a run's calls sent through the providers' batch APIs, recorded so any process can collect them.

``llmlab.run(..., mode="batch")`` plans as usual (aliases, cache, budget), then:

1. cache hits are recorded at once (``cached = true`` rows, as in live mode): they are never resubmitted;
2. the other calls are grouped per model and split into provider batches within the provider's limits
   (:data:`PROVIDER_LIMITS`: requests and bytes per batch; ``batch_max_requests`` lowers the request cap). Each
   batch and its calls are written to the store (tables ``batches`` and ``batch_requests``) *before* it is sent;
3. each batch is submitted: OpenAI through LiteLLM's files and batches API (``litellm.acreate_file`` with
   ``purpose="batch"``, then ``litellm.acreate_batch``); Anthropic with one ``POST /v1/messages/batches`` (LiteLLM
   1.106 reads Anthropic batches, ``aretrieve_batch`` and ``afile_content``, but raises NotImplementedError for
   creating one). The provider's batch id is stored;
4. :func:`collect` polls each batch (``litellm.aretrieve_batch``) every ``batch_poll_s`` seconds and, once it
   ended (completed, expired, cancelled or failed), reads its results (``litellm.afile_content``: the output and
   error files for OpenAI, the results stream for Anthropic) and writes one final row per call into
   ``call_records`` in one transaction with its deterministic scores and the batch's new state.

Rows from a batch: ``latency_ms`` and ``ttft_ms`` are NULL (a batch has no per-call latency) and
``created_at_utc`` is the batch's completion time (also in ``batches.completed_at_utc``); ``attempts = 1``;
``attempt_log`` names the batch. ``cost_usd`` is the provider's batch price: LiteLLM's
``input_cost_per_token_batches`` / ``output_cost_per_token_batches`` when its cost map has them (and the price
was not overridden), else :data:`BATCH_DISCOUNT` (50%) of the normal price (sandbox models included). A row that
failed at the provider is an error row (``error_type`` from its HTTP status, e.g. ``InternalServerError``); a
call a cancelled or expired batch never ran is an error row ``batch_cancelled`` / ``batch_expired``: what
completed is kept. A batch that cannot be submitted makes error rows ``batch_submit_failed``.

Survival: the store is the source of truth. After a kernel or machine restart, :func:`collect` (through
``llmlab.resume(run)``) finds the run's batches in the store and goes on; a batch recorded but never submitted
(the process died in between) is submitted then, from the stored prompts. API keys are read from the environment
at each request and never stored.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from llmlab._litellm import litellm, redact
from llmlab.errors import BatchError, OptionsError
from llmlab.models import ModelSpec, resolve
from llmlab.runner.batch_api import (
    BATCH_DISCOUNT,
    ENDED_STATUSES,
    PROVIDER_LIMITS,
    batch_cost_usd,
    cancel_batch,
    read_results,
    request_line,
    retrieve,
    split,
    status_of,
    submit,
)
from llmlab.runner.fanout import RunStats
from llmlab.runner.options import RunOptions
from llmlab.runner.plan import Plan, build_messages
from llmlab.store import PASS_MARK, Store, new_call_row, new_id, utc_now

__all__ = [
    "BATCH_DISCOUNT",
    "ENDED_STATUSES",
    "PROVIDER_LIMITS",
    "BatchRun",
    "batch_cost_usd",
    "batches",
    "cancel",
    "collect",
    "request_line",
    "stored_stats",
    "split",
]

log = logging.getLogger(__name__)


# -- the store side ----------------------------------------------------------------------------------------
def batches(store: Store, run: str | None = None) -> Any:
    """The provider batches in the store (newest first), of one run when ``run`` is given: a DataFrame with the
    ``batches`` table's columns (``part_id, run_id, model, provider, batch_id, state, provider_status,
    n_requests, n_ok, n_error, ..., created_at_utc, submitted_at_utc, completed_at_utc, collected_at_utc``).
    ``state``: ``submitting`` (recorded, not yet sent), ``sending`` (claimed by a process that is sending it; see
    :func:`_claim`), ``submitted``, ``collected``, ``lost`` (the provider no
    longer knows it). Raises RunNotFoundError for an unknown run."""
    if run is None:
        return store.sql("SELECT * FROM batches ORDER BY created_at_utc DESC, part_id")
    return store.sql("SELECT * FROM batches WHERE run_id = ? ORDER BY created_at_utc, part_id",
                     [store.resolve_run(run)])


#: A claim to send a batch (state ``sending``) older than this many seconds is taken as abandoned: its process
#: died between claiming the batch and recording the provider's batch id, so another resume may send it.
CLAIM_TIMEOUT_S = 600.0


def _claim(store: Store, part_id: str, *, timeout_s: float = CLAIM_TIMEOUT_S) -> bool:
    """Take the right to send a never-sent batch, atomically in the store: ``submitting`` (or an abandoned
    ``sending``) becomes ``sending`` with the claim's time in ``checked_at_utc``. Only one of two processes
    resuming the same run at the same moment gets True (DuckDB serializes the two updates), so a batch is sent
    once, not twice (the provider would charge both)."""
    import datetime as dt

    now = utc_now()
    stale = now - dt.timedelta(seconds=timeout_s)
    with store.connect() as con:
        got = con.execute(
            "UPDATE batches SET state = 'sending', checked_at_utc = ? WHERE part_id = ? AND batch_id IS NULL AND "
            "(state = 'submitting' OR (state = 'sending' AND (checked_at_utc IS NULL OR checked_at_utc < ?))) "
            "RETURNING part_id", [now, part_id, stale]).fetchall()
    return bool(got)


def _update(store: Store, part_id: str, **fields: Any) -> None:
    sets = ", ".join(f"{k} = ?" for k in fields)
    with store.connect() as con:
        con.execute(f"UPDATE batches SET {sets} WHERE part_id = ?", [*fields.values(), part_id])


def _write_rows(store: Store, rows: list[dict[str, Any]], scores: list[dict[str, Any]],
                part_id: str | None = None, **part_fields: Any) -> None:
    """Call rows (idempotent per call_id) and their scores (only for calls not stored before) and the batch's
    new state, in one transaction."""
    import pandas as pd

    from llmlab.store import CALL_COLUMNS, SCORE_COLUMNS

    calls = pd.DataFrame(rows, columns=list(CALL_COLUMNS)).astype(object)
    calls = calls.where(calls.notna(), None)
    sc = pd.DataFrame(scores, columns=list(SCORE_COLUMNS)).astype(object)
    sc = sc.where(sc.notna(), None)
    cols = ", ".join(CALL_COLUMNS)
    scols = ", ".join(SCORE_COLUMNS)
    with store.connect() as con:
        con.register("_llmlab_calls", calls)
        con.register("_llmlab_scores", sc)
        try:
            con.execute("BEGIN TRANSACTION")
            try:
                if len(sc):
                    con.execute(f"INSERT INTO scores ({scols}) SELECT {scols} FROM _llmlab_scores s WHERE NOT EXISTS "
                                "(SELECT 1 FROM call_records t WHERE t.run_id = s.run_id AND t.call_id = s.call_id)")
                if len(calls):
                    con.execute(f"INSERT INTO call_records ({cols}) SELECT {cols} FROM _llmlab_calls r WHERE NOT EXISTS "
                                "(SELECT 1 FROM call_records t WHERE t.run_id = r.run_id AND t.call_id = r.call_id)")
                if part_id is not None:
                    sets = ", ".join(f"{k} = ?" for k in part_fields)
                    con.execute(f"UPDATE batches SET {sets} WHERE part_id = ?", [*part_fields.values(), part_id])
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        finally:
            con.unregister("_llmlab_calls")
            con.unregister("_llmlab_scores")


def _score_rows(row: dict[str, Any], scorer: str | None, reference: str | None) -> list[dict[str, Any]]:
    if not scorer or reference is None:
        return []
    from llmlab.scoring.checks import score, scorer_version

    try:
        value = score(scorer, row["response"] if row["status"] == "ok" else None, reference)
    except Exception:  # noqa: BLE001 - a scorer bug must not lose the row
        log.exception("llmlab: scoring %s failed; the row is kept without a score", row["call_id"])
        return []
    if value is None:
        return []
    return [{"run_id": row["run_id"], "call_id": row["call_id"], "prompt_id": row["prompt_id"], "model": row["model"],
             "kind": "auto", "scorer": scorer, "score": float(value), "raw_value": float(value), "comment": None,
             "created_at_utc": utc_now(), "version": scorer_version(scorer), "passed": bool(value >= PASS_MARK)}]


class _Collector:
    """Turns a batch's results into rows and stats (shared by a run in progress and a resumed one)."""

    def __init__(self, store: Store, run_id: str, stats: RunStats,
                 on_result: Callable[[dict[str, Any]], Any] | None = None) -> None:
        self.store, self.run_id, self.stats, self.on_result = store, run_id, stats, on_result
        frame = store.sql("SELECT prompt_id, scorer, reference FROM prompts WHERE run_id = ?", [run_id])
        self.prompts = {r["prompt_id"]: (r["scorer"], r["reference"]) for r in frame.to_dict("records")}

    def record(self, rows: list[dict[str, Any]], part_id: str | None = None, **part_fields: Any) -> None:
        scores: list[dict[str, Any]] = []
        firsts: dict[str, float] = {}
        for row in rows:
            scorer, reference = self.prompts.get(row["prompt_id"], (None, None))
            got = _score_rows(row, scorer, reference if isinstance(reference, str) else None)
            if got:
                firsts[row["call_id"]] = got[0]["score"]
            scores.extend(got)
        _write_rows(self.store, rows, scores, part_id, **part_fields)
        for row in rows:
            self.stats.count(row)
            if self.on_result is not None:
                try:
                    self.on_result({**row, "auto_score": firsts.get(row["call_id"])})
                except Exception:  # noqa: BLE001 - a display callback must not lose a row
                    log.exception("llmlab: on_result callback failed")


def _row(run_id: str, req: dict[str, Any], spec: ModelSpec, part: dict[str, Any], outcome: dict[str, Any] | None,
         ended_at: datetime, missing_type: str) -> dict[str, Any]:
    row = new_call_row(call_id=req["call_id"], run_id=run_id, prompt_id=req["prompt_id"],
                       sample_index=int(req["sample_index"]), model=req["model"], cache_key=req["cache_key"])
    row.update(attempts=1, created_at_utc=ended_at, attempt_log=json.dumps(
        [{"mode": "batch", "model": spec.name, "batch_id": part.get("batch_id"), "part_id": part["part_id"],
          "status": "ok" if outcome and outcome["ok"] else "error"}]))
    if outcome is None:
        row.update(error_type=missing_type, error_message=f"no result for this call in batch {part.get('batch_id')} "
                   f"({missing_type.removeprefix('batch_')})")
    elif outcome["ok"]:
        text = outcome["text"] or ""
        ll = litellm()
        in_tok = outcome["input_tokens"]
        out_tok = outcome["output_tokens"]
        if out_tok is None:
            out_tok = ll.token_counter(model=spec.litellm_model, text=text, count_response_tokens=True)
        row.update(status="ok", answered_by=spec.name, response=redact(text), finish_reason=outcome["finish_reason"],
                   input_tokens=None if in_tok is None else int(in_tok), output_tokens=int(out_tok),
                   cost_usd=batch_cost_usd(spec, None if in_tok is None else int(in_tok), int(out_tok)))
    else:
        row.update(error_type=outcome["error_type"], http_status=outcome["http_status"],
                   error_message=(redact(str(outcome["error_message"] or "")) or outcome["error_type"])[:2000])
    return row


# -- collecting (any process) ------------------------------------------------------------------------------
def _lines_from_store(store: Store, run_id: str, part_id: str, spec: ModelSpec) -> list[dict]:
    """A recorded-but-unsent batch's request lines, rebuilt from the stored prompts and run options."""
    params = store.run(run_id).get("params") or {}
    opts = RunOptions(**{k: v for k, v in params.items() if k in RunOptions.model_fields})
    frame = store.sql("""SELECT b.call_id, p.* FROM batch_requests b
                         JOIN prompts p ON p.run_id = b.run_id AND p.prompt_id = b.prompt_id
                         WHERE b.part_id = ? ORDER BY b.call_id""", [part_id])
    lines = []
    for r in frame.to_dict("records"):
        stored = r.get("messages")  # a conversation (JSON), where the store has the column
        messages = json.loads(stored) if isinstance(stored, str) and stored else None
        msgs = messages if messages else build_messages(r["prompt"], r["system"] or None)
        lines.append(request_line(spec, r["call_id"], msgs, opts.request_params()))
    return lines


async def _step(store: Store, collector: _Collector, part: dict[str, Any],
                lines_for: Callable[[str], list[dict] | None]) -> bool:
    """Advance one batch: submit it if it was never sent, else check it and collect it once it ended.
    Returns True when the batch is done with (collected or lost)."""
    spec = resolve(part["model"], check_keys=False)
    part_id = part["part_id"]
    reqs = await asyncio.to_thread(store.sql, "SELECT * FROM batch_requests WHERE part_id = ? ORDER BY call_id",
                                   [part_id])
    reqs_list = reqs.to_dict("records")
    if not part.get("batch_id"):
        if not await asyncio.to_thread(_claim, store, part_id):
            return False  # another process is sending it (or just did): check it on the next pass
        lines = lines_for(part_id) or await asyncio.to_thread(_lines_from_store, store, part["run_id"], part_id, spec)
        try:
            sent = await submit(spec, part["run_id"], part_id, lines)
        except Exception as exc:  # noqa: BLE001 - a failed submission is recorded as error rows
            message = redact(str(exc)) or type(exc).__name__
            log.warning("llmlab: batch %s of %s could not be submitted: %s", part_id, spec.name, message)
            now = utc_now()
            rows = [_row(part["run_id"], r, spec, part, None, now, "batch_submit_failed") for r in reqs_list]
            for row in rows:
                row.update(http_status=status_of(exc), error_message=message[:2000], attempts=0)
            await asyncio.to_thread(collector.record, rows, part_id, state="collected",
                                    provider_status="submit_failed", n_ok=0, n_error=len(rows),
                                    collected_at_utc=now, error_message=message[:2000])
            return True
        await asyncio.to_thread(_update, store, part_id, state="submitted", submitted_at_utc=utc_now(), **sent)
        part.update(sent)
        return False
    try:
        state = await retrieve(spec, part["batch_id"])
    except Exception as exc:  # noqa: BLE001
        if status_of(exc) == 404:
            now = utc_now()
            rows = [_row(part["run_id"], r, spec, part, None, now, "batch_lost") for r in reqs_list]
            await asyncio.to_thread(collector.record, rows, part_id, state="lost", provider_status="not_found",
                                    n_ok=0, n_error=len(rows), collected_at_utc=now,
                                    error_message=f"{spec.provider} does not know batch {part['batch_id']}")
            return True
        log.warning("llmlab: checking batch %s failed (%s); will try again", part["batch_id"],
                    redact(str(exc))[:300])
        await asyncio.to_thread(_update, store, part_id, checked_at_utc=utc_now(),
                                error_message=(redact(str(exc)) or type(exc).__name__)[:2000])
        return False
    if state["status"] not in ENDED_STATUSES:
        await asyncio.to_thread(_update, store, part_id, provider_status=state["status"], checked_at_utc=utc_now())
        return False
    found = {} if state["status"] == "failed" else await read_results(spec, part["batch_id"], state)
    ended = state["ended_at_utc"] or utc_now()
    missing = {"expired": "batch_expired", "cancelled": "batch_cancelled", "failed": "batch_failed"}.get(
        state["status"], "batch_missing")
    rows = [_row(part["run_id"], r, spec, part, found.get(r["call_id"]), ended, missing) for r in reqs_list]
    if state["status"] == "failed":
        for row in rows:
            row["error_message"] = (f"the provider refused batch {part['batch_id']}: {state['errors']}")[:2000]
    n_ok = sum(1 for r in rows if r["status"] == "ok")
    await asyncio.to_thread(collector.record, rows, part_id, state="collected", provider_status=state["status"],
                            completed_at_utc=ended, collected_at_utc=utc_now(), n_ok=n_ok, n_error=len(rows) - n_ok,
                            output_file_id=state.get("output_file_id"), error_file_id=state.get("error_file_id"))
    return True


def stored_stats(store: Store, run_id: str) -> RunStats:
    """A run's :class:`RunStats` from its stored rows (``planned`` from the run's ``n_calls_planned``)."""
    planned = store.sql("SELECT n_calls_planned FROM runs WHERE run_id = ?", [run_id])["n_calls_planned"]
    stats = RunStats(planned=int(planned[0]) if len(planned) and planned[0] == planned[0] else 0)
    done = store.sql("SELECT model, status, cached, count(*) AS n, sum(cost_usd) FILTER (WHERE NOT cached) AS cost "
                     "FROM call_records WHERE run_id = ? GROUP BY ALL", [run_id])
    for r in done.to_dict("records"):
        n = int(r["n"])
        stats.done += n
        stats.done_by_model[r["model"]] = stats.done_by_model.get(r["model"], 0) + n
        if r["status"] != "ok":
            stats.errors_by_model[r["model"]] = stats.errors_by_model.get(r["model"], 0) + n
        stats.ok += n if r["status"] == "ok" else 0
        stats.error += n if r["status"] != "ok" else 0
        stats.cached += n if r["cached"] else 0
        stats.cost_usd += float(r["cost"]) if r["cost"] == r["cost"] and r["cost"] is not None else 0.0
    return stats


async def collect(store: Store, run_id: str, *, wait: bool = True, poll_s: float | None = None,
                  stats: RunStats | None = None, on_result: Callable[[dict[str, Any]], Any] | None = None,
                  lines_for: Callable[[str], list[dict] | None] | None = None) -> RunStats:
    """Submit the run's unsent batches, check the others, collect those that ended; with ``wait``, repeat every
    ``poll_s`` seconds (default: the run's ``batch_poll_s``) until every batch is collected, then mark the run
    ``finished``. Without ``wait``, one pass. Returns the run's :class:`RunStats` (``done`` counts the rows
    written during this call, plus those already stored when ``stats`` is None).

    Cancelling the caller (a kernel interrupt) stops the waiting only: the batches go on at the provider, and
    a later :func:`collect` (``llmlab.resume``) picks them up. Raises RunNotFoundError, ModelError (a sandbox
    run resumed without ``LLMLAB_SANDBOX_API_BASE``)."""
    run = await asyncio.to_thread(store.run, run_id)
    if poll_s is None:
        poll_s = float((run.get("params") or {}).get("batch_poll_s") or 30.0)
    if stats is None:
        stats = await asyncio.to_thread(stored_stats, store, run_id)
    collector = await asyncio.to_thread(_Collector, store, run_id, stats, on_result)
    lines_for = lines_for or (lambda _part_id: None)
    delay_s = min(1.0, poll_s)  # small batches end within seconds: check soon, then every poll_s
    while True:
        parts = (await asyncio.to_thread(store.sql, "SELECT * FROM batches WHERE run_id = ? AND state IN "
                                         "('submitting', 'sending', 'submitted') ORDER BY part_id", [run_id])).to_dict("records")
        for part in parts:
            await _step(store, collector, part, lines_for)
        left = (await asyncio.to_thread(store.sql, "SELECT count(*) AS n FROM batches WHERE run_id = ? AND state IN "
                                        "('submitting', 'sending', 'submitted')", [run_id]))["n"][0]
        if not left:
            await asyncio.to_thread(store.finish_run, run_id, "finished")
            return stats
        if not wait:
            return stats
        await asyncio.sleep(delay_s)
        delay_s = min(poll_s, delay_s * 2)


async def cancel(store: Store, run: str | None = None) -> list[str]:
    """Ask the providers to cancel the run's batches that are still running; returns their batch ids. What a
    cancelled batch completed is kept: collect it with :func:`collect` (``llmlab.resume``). Raises
    RunNotFoundError, BatchError (a provider refused)."""
    run_id = await asyncio.to_thread(store.resolve_run, run)
    parts = (await asyncio.to_thread(store.sql, "SELECT * FROM batches WHERE run_id = ? AND state = 'submitted'",
                                     [run_id])).to_dict("records")
    for part in parts:
        try:
            await cancel_batch(resolve(part["model"], check_keys=False), part["batch_id"])
        except BatchError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise BatchError(f"run {run_id}: cancelling batch {part['batch_id']} of {part['model']} failed: "
                             f"{redact(str(exc))[:300]}") from exc
    return [p["batch_id"] for p in parts]


# -- a run in batch mode -----------------------------------------------------------------------------------
def _check_batchable(the_plan: Plan) -> None:
    """Refuse, before anything is recorded, what batch mode does not send: a model whose provider has no batch
    API, and calls with tools, a response format, multi-step tool use or non-text message content (images)."""
    bad = [f"{s.name} (provider {s.provider})" for s in the_plan.specs if s.provider not in PROVIDER_LIMITS]
    if bad:
        raise OptionsError(f"mode='batch' needs models whose provider has a batch API ({', '.join(PROVIDER_LIMITS)}); "
                           f"not: {', '.join(bad)} (run them with mode='live')")
    if getattr(the_plan.options, "tool_steps", 0):
        raise OptionsError("mode='batch' does not run multi-step tool use (tool_steps): use mode='live'")
    for c in the_plan.calls:
        extra = sorted(k for k, v in (getattr(c, "call_params", None) or {}).items() if v)
        if extra or any(not isinstance(m.get("content"), str) or m.get("role") not in ("system", "user", "assistant")
                        for m in c.messages):
            what = ", ".join(extra) if extra else "non-text message content or tool turns"
            raise OptionsError(f"mode='batch' sends plain-text conversations only; prompt {c.prompt.prompt_id} "
                               f"uses {what}: run it with mode='live'")


class BatchRun:
    """One run of a :class:`Plan` in batch mode (see the module docstring); ``stats`` and ``partial`` are live
    like the fan-out's, so the run handle and progress displays read it the same way."""

    def __init__(self, the_plan: Plan, run_id: str, store: Store,
                 on_result: Callable[[dict[str, Any]], Any] | None = None) -> None:
        _check_batchable(the_plan)
        self.plan, self.run_id, self.store, self.on_result = the_plan, run_id, store, on_result
        self.stats = RunStats(planned=the_plan.n_calls)
        self.partial: dict[str, str] = {}
        self.parts: list[str] = []

    def _record_plan(self) -> dict[str, list[dict]]:
        """Write the cache hits as rows and every batch with its calls (state ``submitting``); returns the
        request lines of each part."""
        opts = self.plan.options
        params = opts.request_params()
        cached_rows: list[dict[str, Any]] = []
        by_model: dict[str, list] = defaultdict(list)
        for c in self.plan.calls:
            hit = self.plan.cached.get(c.cache_key) if opts.cache else None
            if hit is None:
                by_model[c.spec.name].append(c)
                continue
            row = new_call_row(call_id=c.call_id, run_id=self.run_id, prompt_id=c.prompt.prompt_id,
                               sample_index=c.sample_index, model=c.spec.name, cache_key=c.cache_key)
            for k in ("answered_by", "latency_ms", "ttft_ms", "input_tokens", "output_tokens", "cost_usd", "response",
                      "finish_reason"):
                v = hit.get(k)
                row[k] = None if v is None or v != v else v
            row.update(status="ok", cached=True, attempts=0, source_call_id=hit["call_id"], created_at_utc=utc_now())
            cached_rows.append(row)
        collector = _Collector(self.store, self.run_id, self.stats, self.on_result)
        if cached_rows:
            collector.record(cached_rows)
        lines_by_part: dict[str, list[dict]] = {}
        part_rows, req_rows = [], []
        now = utc_now()
        for spec in self.plan.specs:
            calls = by_model.get(spec.name, [])
            if not calls:
                continue
            lines = [request_line(spec, c.call_id, c.messages, params) for c in calls]
            by_id = {c.call_id: c for c in calls}
            for chunk in split(lines, spec.provider, opts.batch_max_requests):
                part_id = new_id("b")
                lines_by_part[part_id] = chunk
                part_rows.append({"part_id": part_id, "run_id": self.run_id, "model": spec.name,
                                  "provider": spec.provider, "state": "submitting", "n_requests": len(chunk),
                                  "created_at_utc": now})
                for line in chunk:
                    c = by_id[line["custom_id"]]
                    req_rows.append({"run_id": self.run_id, "part_id": part_id, "call_id": c.call_id,
                                     "prompt_id": c.prompt.prompt_id, "sample_index": c.sample_index,
                                     "model": spec.name, "cache_key": c.cache_key})
        _record_parts(self.store, part_rows, req_rows)
        self.parts = list(lines_by_part)
        return lines_by_part

    async def execute(self) -> RunStats:
        """Record, submit and (with ``batch_wait``) collect every batch; returns the stats. An interrupt while
        waiting leaves the run ``submitted`` (resume it later); the batches go on at the provider."""
        lines_by_part = await asyncio.to_thread(self._record_plan)
        opts = self.plan.options
        collector_stats = self.stats
        try:
            await collect(self.store, self.run_id, wait=opts.batch_wait, poll_s=opts.batch_poll_s,
                          stats=collector_stats, on_result=self.on_result,
                          lines_for=lambda part_id: lines_by_part.pop(part_id, None))
        except asyncio.CancelledError:
            self.stats.cancelled = True
            await asyncio.shield(asyncio.to_thread(_mark_submitted, self.store, self.run_id))
            raise
        if self.store.sql("SELECT status FROM runs WHERE run_id = ?", [self.run_id])["status"][0] == "running":
            await asyncio.to_thread(_mark_submitted, self.store, self.run_id)
        return self.stats


def _mark_submitted(store: Store, run_id: str) -> None:
    with store.connect() as con:
        con.execute("UPDATE runs SET status = 'submitted' WHERE run_id = ? AND status = 'running'", [run_id])


def _record_parts(store: Store, part_rows: list[dict[str, Any]], req_rows: list[dict[str, Any]]) -> None:
    if not part_rows:
        return
    import pandas as pd

    parts = pd.DataFrame(part_rows)
    reqs = pd.DataFrame(req_rows)
    with store.connect() as con:
        con.register("_llmlab_parts", parts)
        con.register("_llmlab_reqs", reqs)
        try:
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(f"INSERT INTO batches ({', '.join(parts.columns)}) SELECT * FROM _llmlab_parts")
                con.execute(f"INSERT INTO batch_requests ({', '.join(reqs.columns)}) SELECT * FROM _llmlab_reqs")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        finally:
            con.unregister("_llmlab_parts")
            con.unregister("_llmlab_reqs")
