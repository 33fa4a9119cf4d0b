"""Pairwise judges on the sandbox: is a planted position bias measured, and does the ranking recover the models?

    .venv/bin/python benchmarks/pairwise_judges.py                       # arithmetic, reasoning, code: 72 prompts
    .venv/bin/python benchmarks/pairwise_judges.py --categories reasoning

Runs the four sandbox models on the chosen categories of the bundled ``quickstart`` set (their simulated
accuracies there order frontier > balanced > fast > tiny), then judges every pair of answers in both orders with
each sandbox judge at its default position bias (frontier and balanced 0, fast 0.15, tiny 0.4:
:data:`llmlab.sandbox.pairwise_judge.PAIRWISE_JUDGES`). Prints, per judge, the measured flip rate, the share of
verdicts for the answer shown first, the sign-test p-value, the Bradley-Terry order and the judge calls made. A
fresh store in a temporary folder; the sandbox in this process. Every figure is simulated. Not a timing benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import warnings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--categories", default="arithmetic,reasoning,code")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    os.environ["LLMLAB_DB"] = os.path.join(tempfile.mkdtemp(prefix="llmlab-pairwise-"), "llmlab.duckdb")
    import llmlab
    from llmlab.sandbox import Sandbox

    sb = Sandbox(port=0, seed=0, latency_scale=0.02).start()
    os.environ["LLMLAB_SANDBOX_API_BASE"] = sb.api_base
    try:
        prompts = llmlab.load_prompts("quickstart").filter(categories=args.categories.split(","))
        res = llmlab.run(prompts, ["@sandbox"], progress=False, concurrency=32)
        figures = {}
        print(f"{len(prompts)} prompts x 4 models; judge: flip rate, first-shown share, sign test p, ranking")
        for judge in ("sandbox/frontier", "sandbox/balanced", "sandbox/fast", "sandbox/tiny"):
            before = sb.request_count()
            out = llmlab.judge_pairwise(res.run_id, judge=judge, concurrency=32)
            b = out.bias.iloc[0]
            order = " > ".join(m.split("/")[-1] for m in out.ranking["model"])
            calls = sb.request_count() - before
            print(f"  {judge:17} flip {b['flip_rate']:.3f}  first {b['first_position_rate']:.3f}  "
                  f"p {b['p_value']:.2g}  biased {bool(b['biased'])!s:5}  {order}  ({calls} judge calls)")
            figures[judge] = {"flip_rate": round(float(b["flip_rate"]), 4), "biased": bool(b["biased"]),
                              "ranking": list(out.ranking["model"]), "judge_calls": calls}
        print(json.dumps({"pairwise_judges": figures}))
    finally:
        sb.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
