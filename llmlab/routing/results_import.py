"""Import per-call outcomes recorded elsewhere (a DataFrame, CSV or Parquet file) as a run in the llmlab store.

One row per (prompt, model) call. Required columns: ``prompt_id``, ``prompt`` (text), ``model`` (a LiteLLM model
string), ``quality`` (0..1), and either ``cost_usd`` (USD per call) or ``input_tokens`` and ``output_tokens``
(priced with LiteLLM's bundled model cost map through :func:`llmlab.models.resolve`, or a price set with
:func:`llmlab.set_price`). Optional: ``category``, ``latency_ms``, ``response``, ``raw_value`` (the score before
scaling to 0..1), ``reference``.

The run gets ``runs.source = source`` (default ``'import'``), its prompts, one call per row (``status 'ok'``) and one
score per row (``kind`` / ``scorer`` as given). :func:`llmlab.routing.routellm.import_routellm` writes through here.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from llmlab.errors import ModelError, PromptSetError

__all__ = ["REQUIRED_COLUMNS", "import_results", "read_table"]

REQUIRED_COLUMNS = ("prompt_id", "prompt", "model", "quality")


def read_table(table: Any) -> Any:
    """A pandas DataFrame from a DataFrame (copied), or a ``.csv`` / ``.parquet`` path. Raises PromptSetError for a
    missing file or another suffix."""
    import pandas as pd

    if isinstance(table, pd.DataFrame):
        return table.copy()
    if isinstance(table, (str, os.PathLike)):
        p = Path(table)
        if not p.exists():
            raise PromptSetError(f"results file not found: {p}")
        if p.suffix.lower() == ".csv":
            return pd.read_csv(p)
        if p.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(p)
        raise PromptSetError(f"{p}: unsupported results file type {p.suffix!r} (use .csv or .parquet)")
    raise PromptSetError(f"results must be a DataFrame or a .csv / .parquet path, not {type(table).__name__}")


def _validate(df: Any, where: str) -> Any:
    import pandas as pd

    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    has_cost = "cost_usd" in df.columns
    has_tokens = {"input_tokens", "output_tokens"} <= set(df.columns)
    if not has_cost and not has_tokens:
        missing.append("cost_usd (or input_tokens and output_tokens)")
    if missing:
        raise PromptSetError(f"{where}: missing column(s) {', '.join(missing)}; columns are {', '.join(map(str, df.columns))}")
    if df.empty:
        raise PromptSetError(f"{where}: no rows")
    df = df.copy()
    df["prompt_id"] = df["prompt_id"].astype(str)
    df["model"] = df["model"].astype(str)
    dup = df.duplicated(["prompt_id", "model"], keep=False)
    if dup.any():
        ex = df.loc[dup, ["prompt_id", "model"]].drop_duplicates().head(3).to_records(index=False).tolist()
        raise PromptSetError(f"{where}: {int(dup.sum())} rows repeat a (prompt_id, model) pair, e.g. {ex}")
    q = pd.to_numeric(df["quality"], errors="coerce")
    bad = q.isna() | (q < 0) | (q > 1)
    if bad.any():
        raise PromptSetError(f"{where}: quality must be a number in 0..1; {int(bad.sum())} rows are not "
                             f"(first at prompt_id {df.loc[bad, 'prompt_id'].iloc[0]!r})")
    df["quality"] = q.astype(float)
    texts = df.groupby("prompt_id")["prompt"].nunique()
    if (texts > 1).any():
        raise PromptSetError(f"{where}: prompt_id {texts[texts > 1].index[0]!r} has different prompt texts")
    return df


def _costs(df: Any, where: str) -> list[float]:
    from llmlab.models import resolve

    specs: dict[str, Any] = {}
    out = []
    given = df["cost_usd"] if "cost_usd" in df.columns else [math.nan] * len(df)
    tin = df["input_tokens"] if "input_tokens" in df.columns else [None] * len(df)
    tout = df["output_tokens"] if "output_tokens" in df.columns else [None] * len(df)
    for m, c, i, o in zip(df["model"], given, tin, tout, strict=True):
        if c is not None and not (isinstance(c, float) and math.isnan(c)):
            out.append(float(c))
            continue
        if i is None or o is None or (isinstance(i, float) and math.isnan(i)) or (isinstance(o, float) and math.isnan(o)):
            raise PromptSetError(f"{where}: a {m!r} row has neither cost_usd nor input_tokens/output_tokens")
        if m not in specs:
            try:
                specs[m] = resolve(m, check_keys=False)
            except ModelError as e:
                raise PromptSetError(f"{where}: unknown model {m!r} ({e}); give a cost_usd column or "
                                     "llmlab.set_price") from e
            if not specs[m].priced:
                raise PromptSetError(f"{where}: no price for model {m!r} in LiteLLM's cost map: give a cost_usd "
                                     f"column or call llmlab.set_price({m!r}, ...)")
        out.append(float(specs[m].cost_usd(int(i), int(o))))
    return out


def import_results(table: Any, name: str | None = None, store: Any = None, *, source: str = "import",
                   kind: str = "auto", scorer: str = "import:quality", prompt_set: str | None = None,
                   tags: Iterable[str] = ("import",), params: dict[str, Any] | None = None) -> str:
    """Record a table of per-call outcomes as one finished run; returns its ``run_id``.

    Args:
        table: DataFrame, or path to a ``.csv`` / ``.parquet`` file (columns: see the module docstring).
        name: the run's name (default: the file name, else ``"imported results"``).
        store: a :class:`llmlab.store.Store` (default: ``Store()``, the usual database).
        source: ``runs.source``. kind, scorer: the scores' kind (``auto``, ``judge``, ``human``) and scorer name.
        prompt_set, tags, params: recorded on the run.

    Raises PromptSetError for an unreadable table, a missing column, an empty table, a repeated (prompt_id, model)
    pair, a quality outside 0..1 or not a number, one prompt_id with two texts, or a row that cannot be priced
    (no ``cost_usd`` and a model without a price).
    """
    from llmlab._litellm import litellm_version
    from llmlab._version import __version__
    from llmlab.store import Store, new_id, utc_now

    where = str(table) if isinstance(table, (str, os.PathLike)) else "results table"
    df = _validate(read_table(table), where)
    costs = _costs(df, where)
    store = store or Store()
    name = name or (Path(table).stem if isinstance(table, (str, os.PathLike)) else "imported results")
    models = list(dict.fromkeys(df["model"]))
    prompts = df.drop_duplicates("prompt_id")

    def col(c: str, r: Any) -> Any:
        v = getattr(r, c, None)
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else v

    run_id = store.create_run(
        run_id=new_id("r"), name=name, prompt_set=prompt_set or f"import:{name}", models=models,
        params=params or {"source": where}, tags=list(tags), llmlab_version=__version__,
        litellm_version=litellm_version(), sandbox=False, n_prompts=len(prompts), n_calls_planned=len(df),
        source=source,
    )
    store.add_prompts([{"run_id": run_id, "prompt_id": r.prompt_id, "category": col("category", r),
                        "prompt": str(r.prompt), "reference": col("reference", r), "scorer": scorer, "system": None,
                        "source_id": None} for r in prompts.itertuples()])
    now = utc_now()
    calls, scores = [], []
    for r, cost in zip(df.itertuples(), costs, strict=True):
        call_id = new_id("c")
        itok, otok, lat, resp = col("input_tokens", r), col("output_tokens", r), col("latency_ms", r), col("response", r)
        calls.append({
            "call_id": call_id, "run_id": run_id, "prompt_id": r.prompt_id, "sample_index": 0, "model": r.model,
            "answered_by": r.model, "status": "ok", "attempts": 1, "fallbacks_taken": 0, "retry_wait_ms": 0.0,
            "latency_ms": None if lat is None else float(lat), "ttft_ms": None,
            "input_tokens": None if itok is None else int(itok), "output_tokens": None if otok is None else int(otok),
            "cost_usd": cost, "cached": False, "cache_key": None, "response": None if resp is None else str(resp),
            "finish_reason": "stop", "attempt_log": json.dumps([{"source": source}]), "created_at_utc": now,
        })
        raw = col("raw_value", r)
        scores.append({"run_id": run_id, "call_id": call_id, "prompt_id": r.prompt_id, "model": r.model,
                       "kind": kind, "scorer": scorer, "score": float(r.quality),
                       "raw_value": float(r.quality) if raw is None else float(raw), "comment": None,
                       "created_at_utc": now})
    store.append_calls(calls)
    store.append_scores(scores)
    store.finish_run(run_id, "finished")
    return run_id
