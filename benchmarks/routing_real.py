"""Learned per-prompt routing vs the category table vs random, on RouteLLM's real GPT-4 / Mixtral outcomes.

Data: ``../shared/data/routellm`` (MMLU, GSM8K, MT-Bench; see its README). Protocol (RouteLLM's, arXiv 2406.18665,
``routellm/evals/benchmarks.py``): the contaminated prompts listed in ``contaminated/*.jsonl`` (``eval_prompt``) are
dropped; an MT-Bench question (both turns) is one routing unit, routed on its first turn's text, its quality the
mean judge score over its turns / 10. Each benchmark is split ``--splits`` times at random 50/50 by unit: fit on one
half, evaluate on the other. The sweep, APGR and CPT are RouteLLM's (:mod:`llmlab.routing.metrics`): 10 quantile
bins of the router's scores on the evaluated half, APGR = trapezoid area under PGR vs share of GPT-4 calls, CPT(x)
interpolated linearly.

Policies:
- ``learned``: :func:`llmlab.routing.fit_policy` ``kind="prompt"``: prompt text only, no category label.
- ``complexity``: :func:`llmlab.routing.fit_policy` ``kind="complexity"``: the ridge score of 8 prompt features
  (length, code, math, multi-step cues, ...) that its tiers cut; prompt text only.
- ``category``: the category table's score (training gain of GPT-4 over Mixtral in the unit's category); it SEES
  the label (MMLU subject, MT-Bench category; GSM8K has a single category, so it cannot route: APGR 0.5).
- ``random``: uniform random scores (expected APGR 0.5, CPT(50%) 50%).
- ``oracle``: the evaluated half's own outcomes (strong minus weak quality): the ceiling, not a router.
- ``transfer``: learned router fitted on the two other benchmarks (all their units), evaluated on this one (all
  units; spread: 200 bootstrap resamples of the units).

Caveat: RouteLLM's published routers were trained on Chatbot Arena preference data, never on these benchmarks'
outcomes; the within-benchmark splits here are in-distribution supervision, which the ``transfer`` rows are not.

Costs (USD) are not needed for APGR/CPT (shares of calls): rows carry LiteLLM prices times ``len(text) / 4``
tokens, only to order the models. Run time ≈ 1–3 min on 2 cores.

Run: PYTHONPATH=. .venv/bin/python benchmarks/routing_real.py [--splits 20] [--seed 0]
Last line: one JSON object ``{benchmark: {policy: {apgr, apgr_lo, apgr_hi, cpt50, cpt50_lo, ..., n}}}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PUBLISHED = {"mmlu": (0.603, 35.4), "gsm8k": (0.622, 33.6), "mt_bench": (0.802, 13.4)}
TARGETS = {"mmlu": "APGR ≥ 0.68, CPT(50%) ≤ 27%", "gsm8k": "APGR ≥ 0.64", "mt_bench": "APGR ≥ 0.75"}


def load(folder: Path) -> dict[str, pd.DataFrame]:
    """Decontaminated results frames, one row per (unit, model): prompt_id, prompt, category, model, quality,
    cost_usd (:func:`llmlab.routing.routellm.load_benchmarks`)."""
    from llmlab.routing.routellm import load_benchmarks

    out = load_benchmarks(folder)
    for bench, df in out.items():
        print(f"{bench}: {df['prompt_id'].nunique()} units after dropping contaminated prompts")
    return out


def metrics_of(scores: np.ndarray, qs: np.ndarray, qw: np.ndarray) -> dict[str, float]:
    from llmlab.routing.metrics import apgr, cpt, pgr_curve

    c = pgr_curve(scores, qs, qw, n_points=10)
    return {"apgr": apgr(c), "cpt50": cpt(c, 0.5), "cpt80": cpt(c, 0.8)}


def summarise(vals: list[dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {"n": len(vals)}
    for k in ("apgr", "cpt50", "cpt80"):
        a = np.array([v[k] for v in vals])
        out[k], out[f"{k}_lo"], out[f"{k}_hi"] = float(a.mean()), *map(float, np.quantile(a, [0.025, 0.975]))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--splits", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=None)
    args = ap.parse_args(argv)
    from llmlab.routing import routellm as rl
    from llmlab.routing.policies import fit_policy, outcome_matrices
    from llmlab.routing.textmodel import CountCache

    t0 = time.perf_counter()
    data = load(rl.data_dir(args.data))
    caches = {b: CountCache(df["prompt"].drop_duplicates().tolist()) for b, df in data.items()}
    print(f"loaded and hashed in {time.perf_counter() - t0:.1f}s")
    summary: dict[str, dict[str, dict[str, float]]] = {}
    rng = np.random.default_rng(args.seed)
    for bench, df in data.items():
        t1 = time.perf_counter()
        units = df["prompt_id"].unique()
        runs: dict[str, list[dict[str, float]]] = {"learned": [], "complexity": [], "category": [], "random": [],
                                                   "oracle": []}
        for _ in range(args.splits):
            train_ids = set(rng.permutation(units)[: len(units) // 2])
            train, test = df[df["prompt_id"].isin(train_ids)], df[~df["prompt_id"].isin(train_ids)]
            om = outcome_matrices(test, [rl.WEAK, rl.STRONG])
            qw, qs = om["quality"][:, 0], om["quality"][:, 1]
            learned = fit_policy(train, kind="prompt", cache=caches[bench], seed=args.seed)
            runs["learned"].append(metrics_of(learned.scores(om["prompts"], cache=caches[bench]), qs, qw))
            tiers = fit_policy(train, kind="complexity")  # its ridge score, swept like the others' scores
            runs["complexity"].append(metrics_of(tiers.scores(om["prompts"]), qs, qw))
            table = fit_policy(train, kind="category", min_n=5)
            runs["category"].append(metrics_of(table.scores(om["prompts"]), qs, qw))
            runs["random"].append(metrics_of(rng.random(len(qs)), qs, qw))
            runs["oracle"].append(metrics_of(qs - qw + 1e-9 * rng.random(len(qs)), qs, qw))
        summary[bench] = {k: summarise(v) for k, v in runs.items()}
        print(f"{bench}: {args.splits} splits in {time.perf_counter() - t1:.1f}s")
    # transfer: fit on the two other benchmarks, evaluate on all of this one
    for bench, df in data.items():
        t1 = time.perf_counter()
        others = pd.concat([d for b, d in data.items() if b != bench], ignore_index=True)
        cache = CountCache.merge(*(c for b, c in caches.items() if b != bench))
        pol = fit_policy(others, kind="prompt", cache=cache, seed=args.seed)
        om = outcome_matrices(df, [rl.WEAK, rl.STRONG])
        qw, qs = om["quality"][:, 0], om["quality"][:, 1]
        sc = pol.scores(om["prompts"], cache=caches[bench])
        point = metrics_of(sc, qs, qw)
        boots = []
        for _ in range(200):
            i = rng.integers(0, len(sc), len(sc))
            boots.append(metrics_of(sc[i], qs[i], qw[i]))
        s = summarise(boots)
        s.update({k: point[k] for k in ("apgr", "cpt50", "cpt80")})
        s["n"] = len(sc)
        summary[bench]["transfer"] = s
        print(f"{bench}: transfer fit on {others['prompt_id'].nunique()} other prompts in "
              f"{time.perf_counter() - t1:.1f}s")

    print(f"\nAPGR, CPT(50%), CPT(80%) on held-out halves: mean [2.5%, 97.5%] over {args.splits} random 50/50 splits "
          "(transfer: point on the whole benchmark [bootstrap 95%])")
    print(f"{'benchmark':<9} {'policy':<24} {'APGR':>22} {'CPT(50%)':>22} {'CPT(80%)':>22}")
    for bench, pols in summary.items():
        for name, s in pols.items():
            cells = [f"{s[k]:.3f} [{s[k + '_lo']:.3f},{s[k + '_hi']:.3f}]" if k == "apgr" else
                     f"{s[k]:.1f}% [{s[k + '_lo']:.1f},{s[k + '_hi']:.1f}]" for k in ("apgr", "cpt50", "cpt80")]
            label = name + {"category": " (sees label)", "oracle": " (sees outcomes)"}.get(name, "")
            print(f"{bench:<9} {label:<24} {cells[0]:>22} {cells[1]:>22} {cells[2]:>22}")
        pa, pc = PUBLISHED[bench]
        print(f"{'':<9} published best router: APGR {pa:.3f}, CPT(50%) {pc:.1f}%; target for learned: "
              f"{TARGETS[bench]}")
    print(f"total {time.perf_counter() - t0:.1f}s")
    print(json.dumps({b: {p: {k: round(v, 4) for k, v in s.items()} for p, s in pols.items()}
                      for b, pols in summary.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
