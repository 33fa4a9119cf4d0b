"""The Charts tab's first click: how long ``CompareView.render_charts()`` takes in a fresh process.

    .venv/bin/python benchmarks/charts_first_click.py [--repeats 3] [--pause-s 3]

Each repetition starts two fresh Python processes (interleaved): one with the chart warm-up disabled (the
baseline: what a first click cost when everything was imported on the click), one with it (a view starts importing
plotly, the plots module and scipy.special in a daemon thread when it opens). In each, a results frame of 60
prompts x 3 models (synthetic, no provider) is opened with ``llmlab.compare``, the process waits ``--pause-s``
(a user reading the Answers tab), then times ``render_charts()``. The run also times a second click in the same
process (everything warm). Prints each figure, the median ratio warm-up / baseline, and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import textwrap

CHILD = textwrap.dedent('''
    import importlib, json, sys, time
    import pandas as pd
    import llmlab
    compare_module = importlib.import_module("llmlab.widgets.compare_tabs")
    if sys.argv[1] == "off":
        compare_module._warm_started.set()      # the warm-up never starts: everything imports on the click
    rows = [{"run_id": "r1", "call_id": f"c{i}-{m}", "prompt_id": f"p{i}", "sample_index": 0,
             "category": f"cat{i % 4}", "model": m, "status": "ok", "response": "an answer", "latency_ms": 100.0 + i,
             "cost_usd": 0.001 * (k + 1), "quality": float((i + k) % 3 > 0), "cached": False}
            for i in range(60) for k, m in enumerate(("model-a", "model-b", "model-c"))]
    view = llmlab.compare(pd.DataFrame(rows))
    time.sleep(float(sys.argv[2]))
    t = time.perf_counter(); view.render_charts(); first = time.perf_counter() - t
    t = time.perf_counter(); view.render_charts(); second = time.perf_counter() - t
    print(json.dumps({"first_s": first, "second_s": second}))
''')


def _child(mode: str, pause_s: float) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(pause_s)], capture_output=True, text=True,
                         check=True, timeout=600).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--pause-s", type=float, default=3.0)
    args = ap.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    for _ in range(args.repeats):
        for mode in ("off", "on"):
            runs[mode].append(_child(mode, args.pause_s))
    fig = {}
    for mode, label in (("off", "no_warmup"), ("on", "warmup")):
        first = statistics.median(r["first_s"] for r in runs[mode])
        second = statistics.median(r["second_s"] for r in runs[mode])
        fig[f"charts.{label}.first_click_s"] = round(first, 3)
        fig[f"charts.{label}.second_click_s"] = round(second, 3)
        print(f"{label:10s} first click {first:6.2f} s   second click {second:6.2f} s   (median of {args.repeats})")
    ratio = fig["charts.warmup.first_click_s"] / fig["charts.no_warmup.first_click_s"]
    fig["charts.first_click.ratio"] = round(ratio, 3)
    print(f"first click with warm-up / without: {ratio:.2f}")
    print(json.dumps(fig))


if __name__ == "__main__":
    main()
