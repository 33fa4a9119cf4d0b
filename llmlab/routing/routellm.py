"""Import RouteLLM's published results (real outcomes of two real models) into the store as runs.

Source: ``../shared/data/routellm`` (lm-sys/RouteLLM evaluation files, Apache-2.0; see its README), or the folder in
``LLMLAB_ROUTELLM_DIR``. Two models: ``gpt-4-1106-preview`` (strong) and Mixtral-8x7B-Instruct-v0.1 (weak), recorded
here under the LiteLLM model strings :data:`STRONG` and :data:`WEAK` so that prices come from LiteLLM's bundled model
cost map (10 / 30 USD and 0.6 / 0.6 USD per million input / output tokens).

What each benchmark becomes (one run per benchmark, ``runs.source = 'import:routellm'``):

- ``mmlu``: 14,042 prompts, category = the subject (57); quality = the recorded correctness (1/0, scorer
  ``routellm:correct``). The files hold no responses: output tokens are taken as 1 (the answer letter).
- ``gsm8k``: 1,319 prompts, category ``gsm8k``; quality = recorded correctness; responses and their tokens kept.
- ``mt_bench``: 80 questions × 2 turns, category = the MT-Bench category; quality = the recorded GPT-4 judge score
  / 10 (scorer ``judge:gpt-4 (recorded)``, kind ``judge``); the answer is taken from the judged conversation.

Token counts: LiteLLM's ``token_counter`` (its default tokenizer) on the prompt and response text, the same count for
both models (Mixtral's own tokenizer differs by a few percent). Latencies were not recorded: ``latency_ms`` is NULL.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from llmlab.errors import PromptSetError

__all__ = [
    "STRONG",
    "WEAK",
    "data_dir",
    "import_routellm",
    "load_benchmarks",
    "load_gsm8k",
    "load_mmlu",
    "load_mt_bench",
    "pgr_metrics",
    "split_halves",
]

STRONG = "gpt-4-1106-preview"
WEAK = "together_ai/mistralai/Mixtral-8x7B-Instruct-v0.1"
_FILE_COLUMNS = {STRONG: "gpt-4-1106-preview", WEAK: "mistralai/Mixtral-8x7B-Instruct-v0.1"}
_MT_MODELS = {"gpt-4-1106-preview": STRONG, "mistralai/Mixtral-8x7B-Instruct-v0.1": WEAK}


def data_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """The RouteLLM data folder: ``path``, ``LLMLAB_ROUTELLM_DIR``, or ``../shared/data/routellm`` beside the repo."""
    from llmlab.settings import routellm_dir

    p = Path(path) if path else routellm_dir()
    if not p.is_dir():
        raise PromptSetError(f"RouteLLM data folder not found: {p} (set LLMLAB_ROUTELLM_DIR)")
    return p


def _pid(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


def _tokens(texts: Iterable[str | None]) -> list[int]:
    from llmlab._litellm import litellm

    ll = litellm()
    return [max(1, ll.token_counter(model="gpt-4", text=t)) if isinstance(t, str) and t else 1 for t in texts]


def load_mmlu(path: str | os.PathLike[str] | None = None, subjects: Iterable[str] | None = None) -> Any:
    """MMLU outcomes as a long frame: ``prompt_id, category, prompt, model, correct`` (one row per prompt × model).

    Read with DuckDB's CSV reader (fields hold newlines and quotes). Raises PromptSetError for a missing file.
    """
    import duckdb
    import pandas as pd

    folder = data_dir(path) / "mmlu"
    files = sorted(folder.glob("mmlu_*.csv"))
    if subjects is not None:
        wanted = set(subjects)
        files = [f for f in files if f.stem[len("mmlu_"):] in wanted]
    if not files:
        raise PromptSetError(f"no MMLU files in {folder}")
    frames = []
    con = duckdb.connect()
    for f in files:
        subject = f.stem[len("mmlu_"):]
        df = con.execute("SELECT * FROM read_csv(?, header=true, sample_size=-1, all_varchar=true)", [str(f)]).df()
        for model, col in _FILE_COLUMNS.items():
            if col not in df.columns:
                raise PromptSetError(f"{f}: column {col!r} missing; columns are {', '.join(df.columns)}")
            frames.append(pd.DataFrame({
                "prompt_id": [_pid("mmlu", subject, p) for p in df["prompt"]], "category": subject,
                "prompt": df["prompt"], "model": model, "correct": df[col].str.strip().str.lower() == "true",
                "response": None,
            }))
    con.close()
    out = pd.concat(frames, ignore_index=True)
    return out.drop_duplicates(["prompt_id", "model"], keep="first")


def load_gsm8k(path: str | os.PathLike[str] | None = None) -> Any:
    """GSM8K outcomes: ``prompt_id, category ('gsm8k'), prompt, model, correct, response``."""
    import duckdb
    import pandas as pd

    f = data_dir(path) / "gsm8k" / "gsm8k_responses.csv"
    if not f.exists():
        raise PromptSetError(f"GSM8K file not found: {f}")
    con = duckdb.connect()
    df = con.execute("SELECT * FROM read_csv(?, header=true, sample_size=-1, all_varchar=true)", [str(f)]).df()
    con.close()
    frames = []
    for model, col in _FILE_COLUMNS.items():
        frames.append(pd.DataFrame({
            "prompt_id": [_pid("gsm8k", p) for p in df["prompt"]], "category": "gsm8k", "prompt": df["prompt"],
            "model": model, "correct": df[col].str.strip().str.lower() == "true", "response": df[f"{col}_response"],
        }))
    return pd.concat(frames, ignore_index=True).drop_duplicates(["prompt_id", "model"], keep="first")


_ANSWER = re.compile(r"### Assistant A:\n(.*?)(?:\n\n### User:|\n\n<\|The End of Assistant A's Conversation)", re.DOTALL)


def load_mt_bench(path: str | os.PathLike[str] | None = None) -> Any:
    """MT-Bench judgements: ``prompt_id, category, prompt, model, score (1..10), response, judgment``."""
    import pandas as pd

    folder = data_dir(path) / "mt_bench"
    questions = pd.read_json(folder / "question.jsonl", lines=True)
    judgements = pd.read_json(folder / "judgements.jsonl", lines=True)
    qmap = {int(r.question_id): r for r in questions.itertuples()}
    rows = []
    for j in judgements.itertuples():
        q = qmap[int(j.question_id)]
        turn = int(j.turn)
        prompt = q.turns[turn - 1]
        answers = _ANSWER.findall(j.user_prompt)
        response = answers[turn - 1] if len(answers) >= turn else (answers[-1] if answers else None)
        rows.append({"prompt_id": _pid("mt_bench", str(q.question_id), str(turn)), "category": q.category,
                     "prompt": prompt, "model": _MT_MODELS[j.model], "score": float(j.score), "response": response,
                     "judgment": j.judgment})
    return pd.DataFrame(rows).drop_duplicates(["prompt_id", "model"], keep="first")


def _contaminated(folder: Path, bench: str) -> set[str]:
    import pandas as pd

    f = folder / "contaminated" / f"contaminated_{bench}.jsonl"
    if not f.exists():
        raise PromptSetError(f"RouteLLM contaminated-prompt list not found: {f}")
    return set(pd.read_json(f, lines=True)["eval_prompt"])


def _price(frame: Any) -> Any:
    from llmlab.models import resolve

    spec = {m: resolve(m, check_keys=False) for m in frame["model"].unique()}
    tok = (frame["prompt"].str.len() // 4 + 1).astype(int)
    frame["cost_usd"] = [spec[m].cost_usd(int(t), 1) for m, t in zip(frame["model"], tok, strict=True)]
    return frame


def load_benchmarks(path: str | os.PathLike[str] | None = None,
                    benchmarks: Iterable[str] = ("mmlu", "gsm8k", "mt_bench")) -> dict[str, Any]:
    """RouteLLM's protocol (``routellm/evals/benchmarks.py``): results frames per benchmark, one row per (routing
    unit, model), columns ``prompt_id, prompt, category, model, quality (0..1), cost_usd``.

    The contaminated prompts (``contaminated/*.jsonl``, ``eval_prompt``) are dropped; an MT-Bench question (both
    turns) is one unit, routed on its first turn's text, its quality the mean judge score over its turns / 10.
    ``cost_usd``: LiteLLM prices times ``len(prompt) / 4`` input tokens and 1 output token (enough to order the
    models; APGR and CPT use shares of calls). Raises PromptSetError for a missing file.
    """
    import pandas as pd

    folder = data_dir(path)
    out: dict[str, Any] = {}
    for bench in benchmarks:
        if bench in ("mmlu", "gsm8k"):
            df = (load_mmlu if bench == "mmlu" else load_gsm8k)(folder)
            df = df[~df["prompt"].isin(_contaminated(folder, bench))]
            out[bench] = _price(df.assign(quality=df["correct"].astype(float))[
                ["prompt_id", "prompt", "category", "model", "quality"]].reset_index(drop=True))
        elif bench == "mt_bench":
            q = pd.read_json(folder / "mt_bench" / "question.jsonl", lines=True)
            bad = _contaminated(folder, "mt_bench")
            keep = q[~q["turns"].map(lambda t: t[0] in bad or t[1] in bad)]
            j = pd.read_json(folder / "mt_bench" / "judgements.jsonl", lines=True)
            j = j[j["question_id"].isin(keep["question_id"])]
            sc = j.groupby(["question_id", "model"], as_index=False)["score"].mean()  # mean over the two turns
            sc["model"] = sc["model"].map(_MT_MODELS)
            meta = keep.set_index("question_id")
            out[bench] = _price(pd.DataFrame({
                "prompt_id": "mt" + sc["question_id"].astype(str),
                "prompt": sc["question_id"].map(meta["turns"].map(lambda t: t[0])),
                "category": sc["question_id"].map(meta["category"]), "model": sc["model"],
                "quality": sc["score"] / 10}))
        else:
            raise PromptSetError(f"unknown RouteLLM benchmark {bench!r}: use mmlu, gsm8k or mt_bench")
    return out


def _record(frame: Any, benchmark: str, store: Any, quality_kind: str) -> str:
    """Write one benchmark's frame as a run through :func:`llmlab.routing.results_import.import_results`."""
    from llmlab.routing.results_import import import_results

    prompts = frame.drop_duplicates("prompt_id")[["prompt_id", "prompt"]]
    in_tok = dict(zip(prompts["prompt_id"], _tokens(prompts["prompt"]), strict=True))
    out = frame.copy()
    out["input_tokens"] = out["prompt_id"].map(in_tok)
    out["output_tokens"] = _tokens(frame["response"]) if frame["response"].notna().any() else 1
    if quality_kind == "auto":
        out["quality"] = out["correct"].astype(float)
        out["raw_value"] = out["quality"]
        kind, scorer = "auto", "routellm:correct"
    else:
        out["quality"] = out["score"] / 10
        out["raw_value"] = out["score"]
        kind, scorer = "judge", "judge:gpt-4 (recorded)"
    out["response"] = [r if isinstance(r, str) else None for r in out["response"]]
    cols = ["prompt_id", "category", "prompt", "model", "quality", "raw_value", "input_tokens", "output_tokens",
            "response"]
    return import_results(out[cols], name=f"routellm {benchmark}", store=store, source="import:routellm",
                          kind=kind, scorer=scorer, prompt_set=f"routellm:{benchmark}", tags=("routellm", "real"),
                          params={"source": "RouteLLM published results", "benchmark": benchmark})


def import_routellm(path: str | os.PathLike[str] | None = None, *, store: Any = None,
                    benchmarks: Iterable[str] = ("mmlu", "gsm8k", "mt_bench"),
                    mmlu_subjects: Iterable[str] | None = None) -> dict[str, str]:
    """Record RouteLLM's results as runs; returns ``{benchmark: run_id}``.

    Raises PromptSetError for a missing folder/file or an unknown benchmark name.
    """
    from llmlab.store import Store

    store = store or Store()
    out = {}
    for b in benchmarks:
        if b == "mmlu":
            out[b] = _record(load_mmlu(path, mmlu_subjects), b, store, "auto")
        elif b == "gsm8k":
            out[b] = _record(load_gsm8k(path), b, store, "auto")
        elif b == "mt_bench":
            out[b] = _record(load_mt_bench(path), b, store, "judge")
        else:
            raise PromptSetError(f"unknown RouteLLM benchmark {b!r}: use mmlu, gsm8k, mt_bench")
    return out


def split_halves(results: Any, *, seed: int = 0) -> tuple[Any, Any]:
    """Split a results frame into two halves *within each category* by a hash of (seed, prompt_id): every prompt's
    rows (all models) land in the same half. Returns ``(train, test)``."""
    import numpy as np

    prompts = results[["prompt_id", "category"]].drop_duplicates().copy()
    prompts["_h"] = [int(hashlib.sha256(f"{seed}:{p}".encode()).hexdigest()[:12], 16) for p in prompts["prompt_id"]]
    prompts["_rank"] = prompts.groupby("category")["_h"].rank(method="first")
    prompts["_size"] = prompts.groupby("category")["prompt_id"].transform("count")
    train_ids = set(prompts.loc[prompts["_rank"] <= np.ceil(prompts["_size"] / 2), "prompt_id"])
    mask = results["prompt_id"].isin(train_ids)
    return results[mask], results[~mask]


def pgr_metrics(curve: Any, q_weak: float, q_strong: float) -> dict[str, float]:
    """RouteLLM's metrics from a curve of ``strongest_share`` (share of calls to the strong model) and ``quality``.

    PGR = (q − q_weak) / (q_strong − q_weak); APGR is the area under PGR against the strong share over [0, 1]
    (curve points plus the end points (0, 0) and (1, 1), interpolated as steps from below); CPT(x) is the smallest
    strong share whose PGR reaches x. Returns ``{"apgr", "cpt_50_pct", "cpt_80_pct"}`` (shares in percent).

    This is a conservative step variant for sweeps of a few tolerance points; RouteLLM's own definitions (trapezoid
    APGR over the sweep's range, linearly interpolated CPT) are :func:`llmlab.routing.metrics.apgr` / ``cpt``.
    """
    import numpy as np

    pts = sorted({(0.0, 0.0), (1.0, 1.0), *(
        (float(s), float((q - q_weak) / (q_strong - q_weak))) for s, q in zip(curve["strongest_share"], curve["quality"], strict=True)
    )})
    xs = np.array([p[0] for p in pts])
    ys = np.maximum.accumulate(np.array([p[1] for p in pts]))
    apgr = float(np.trapezoid(ys, xs))  # numpy >= 2 (np.trapz is gone in 2.4)

    def cpt(x: float) -> float:
        for s, y in zip(xs, ys, strict=True):
            if y >= x:
                return float(s * 100)
        return 100.0

    return {"apgr": apgr, "cpt_50_pct": cpt(0.5), "cpt_80_pct": cpt(0.8)}
