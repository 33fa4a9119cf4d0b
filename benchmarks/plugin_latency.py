"""Per-request cost of the LiteLLM routing plugin's decision (the issue's goal: under 1 ms, no network call).

Fits the learned router (``fit_policy(kind="prompt")``) on half of RouteLLM's MMLU prompts, exports it, loads the
plugin from the model file as LiteLLM would, and times ``PolicyPlugin.decide`` (the pure NumPy scorer: what runs in
the Router / proxy per request) on ``--n`` held-out prompts, cold (first pass) and warm (second pass, n-gram memo
filled). Baseline in the same process: the fitted policy scoring one prompt at a time with scikit-learn
(``policy.route``). Also ``PolicyPlugin.run`` on LiteLLM ``RoutingContext`` objects (warm).

Run: PYTHONPATH=. .venv/bin/python benchmarks/plugin_latency.py [--n 2000]
Last line: JSON ``{"decide_ms_cold", "decide_ms_warm", "run_ms_warm", "sklearn_route_ms", "ratio_warm_vs_sklearn", "n"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args(argv)
    from llmlab.routing import fit_policy
    from llmlab.routing.plugin import PolicyPlugin
    from llmlab.routing.routellm import load_benchmarks

    df = load_benchmarks(benchmarks=("mmlu",))["mmlu"]
    ids = df["prompt_id"].drop_duplicates().sample(frac=0.5, random_state=0)
    train, test = df[df["prompt_id"].isin(ids)], df[~df["prompt_id"].isin(ids)]
    policy = fit_policy(train, kind="prompt")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = policy.export(tmp)
        t0 = time.perf_counter()
        plugin = PolicyPlugin.from_file(cfg.parent / "llmlab_route_policy.json")
        load_s = time.perf_counter() - t0
    texts = test.drop_duplicates("prompt_id")["prompt"].tolist()[: args.n]
    timings = []
    for _ in range(2):
        t0 = time.perf_counter()
        for t in texts:
            plugin.decide(t)
        timings.append((time.perf_counter() - t0) / len(texts) * 1000)
    n_base = min(300, len(texts))
    t0 = time.perf_counter()
    for t in texts[:n_base]:
        policy.route(t)
    base = (time.perf_counter() - t0) / n_base * 1000
    from litellm.types.router import RoutingContext

    ctxs = [RoutingContext(raw_messages=[], structured_messages=[{"role": "user", "content": t}],
                           candidate_models=list(plugin.deployments.values()), metadata={"model_group": "llmlab-router"})
            for t in texts[:500]]

    async def runs() -> float:
        t0 = time.perf_counter()
        for c in ctxs:
            await plugin.run(c)
        return (time.perf_counter() - t0) / len(ctxs) * 1000

    run_ms = asyncio.run(runs())
    out = ctxs[0]
    print(f"model file loaded in {load_s * 1000:.0f} ms; {len(texts)} held-out MMLU prompts")
    print(f"PolicyPlugin.decide: {timings[0]:.3f} ms/prompt cold, {timings[1]:.3f} ms/prompt warm")
    print(f"baseline, fitted policy via scikit-learn one prompt at a time: {base:.3f} ms/prompt "
          f"(warm plugin is {base / timings[1]:.1f}x faster)")
    print(f"PolicyPlugin.run on a LiteLLM RoutingContext (warm, {len(ctxs)} prompts): {run_ms:.3f} ms each; first "
          f"-> {out.candidate_models}")
    print(json.dumps({"decide_ms_cold": round(timings[0], 4), "decide_ms_warm": round(timings[1], 4),
                      "run_ms_warm": round(run_ms, 4),
                      "sklearn_route_ms": round(base, 4), "ratio_warm_vs_sklearn": round(base / timings[1], 2),
                      "n": len(texts)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
