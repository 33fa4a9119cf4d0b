"""Routing on real recorded results: RouteLLM's GPT-4 / Mixtral outcomes (../shared/data/routellm).

Imports MMLU (57 subjects), GSM8K and MT-Bench into a temporary store, fits llmlab's per-category routing table on
one half of each category (subject) and evaluates it on the other half, over a sweep of quality tolerances. Prints
per tolerance: the share of calls sent to GPT-4, cost per 1,000 prompts (USD, LiteLLM price map), and quality,
against always-GPT-4 and always-Mixtral on the same held-out half; then RouteLLM's metrics (APGR, CPT(50%),
CPT(80%)) for comparison with the published routers (README of the data). Last line: one JSON object.

Run: .venv/bin/python benchmarks/routellm_backtest.py [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=None)
    args = ap.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="llmlab-routellm-")
    os.environ["LLMLAB_DB"] = str(Path(tmp) / "routellm.duckdb")
    from llmlab.routing.routellm import STRONG, WEAK, import_routellm, pgr_metrics, split_halves
    from llmlab.routing import project, routing_table
    from llmlab.store import Store

    t0 = time.perf_counter()
    store = Store()
    ids = import_routellm(args.data, store=store)
    print(f"imported {ids} in {time.perf_counter() - t0:.1f}s")
    summary: dict[str, object] = {}
    for bench in ("mmlu", "mt_bench", "gsm8k"):
        res = store.results(ids[bench])
        train, test = split_halves(res, seed=args.seed)
        strong = test[test["model"] == STRONG]
        weak = test[test["model"] == WEAK]
        q_s, q_w = strong["quality"].mean(), weak["quality"].mean()
        c_s = strong["cost_usd"].sum() / len(strong) * 1000
        c_w = weak["cost_usd"].sum() / len(weak) * 1000
        print(f"\n== {bench}: {res['prompt_id'].nunique()} prompts, {res['category'].nunique()} categories; "
              f"held-out half: {test['prompt_id'].nunique()} prompts")
        print(f"always GPT-4:   quality {q_s:.4f}  cost/1k ${c_s:.4f}")
        print(f"always Mixtral: quality {q_w:.4f}  cost/1k ${c_w:.4f}")
        print(f"{'tolerance':>9} {'GPT-4 share':>11} {'cost/1k USD':>11} {'quality':>8} {'PGR':>6} {'savings':>8}")
        rows = []
        for tol in (0.0, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 1.0):
            table = routing_table(train, tolerance=tol, min_n=5)
            p = project(table, test)
            share = p["share"].get(STRONG, 0.0)
            pgr = (p["quality"] - q_w) / (q_s - q_w)
            rows.append({"tolerance": tol, "strongest_share": share, "quality": p["quality"],
                         "cost_per_1k_prompts_usd": p["cost_per_1k_prompts_usd"], "pgr": pgr})
            print(f"{tol:>9.3f} {share:>11.3f} {p['cost_per_1k_prompts_usd']:>11.4f} {p['quality']:>8.4f} "
                  f"{pgr:>6.3f} {100 * (1 - p['cost_per_1k_prompts_usd'] / c_s):>7.1f}%")
        import pandas as pd

        m = pgr_metrics(pd.DataFrame(rows), q_w, q_s)
        print(f"APGR {m['apgr']:.3f}  CPT(50%) {m['cpt_50_pct']:.1f}%  CPT(80%) {m['cpt_80_pct']:.1f}%  "
              "(random routing: APGR 0.5, CPT(50%) 50%)")
        summary[bench] = {"always_strong_quality": q_s, "always_weak_quality": q_w,
                          "always_strong_cost_per_1k_usd": c_s, "always_weak_cost_per_1k_usd": c_w,
                          "sweep": rows, **m}
    print(json.dumps(summary, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
