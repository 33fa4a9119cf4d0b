"""Start-up and the first answer: ``import llmlab``, ``%load_ext llmlab``, and a fresh kernel's first ``%%llm``.

    .venv/bin/python benchmarks/startup.py [--repeats 3] [--pause-s 3] [--pauses 0,3]

Figures (medians over ``--repeats`` fresh processes; baselines measured in the same run, interleaved):

- ``import``: wall time of ``python -c "import llmlab"`` minus ``python -c "pass"`` (target < 0.3 s over it);
- ``load_ext``: ``%load_ext llmlab`` in a fresh IPython shell, timed inside the process (target < 0.3 s);
- ``first_answer``: a fresh Jupyter kernel (jupyter_client) runs ``%load_ext llmlab``, waits (a user typing:
  ``--pause-s``, and 0 for cells run back to back), then ``%%llm sandbox/fast`` on one prompt; the figure is that
  cell's wall time until the kernel is idle again (its card displayed), with the warm-up on and off
  (``LLMLAB_WARMUP=0``: the state before the warm-up existed). Target: on ≤ 0.5 × off. Also the kernel's CPU
  seconds during that cell (less noisy on a shared machine), each repeat's figures, the median of the repeats'
  own on/off ratios (each pair run back to back) and the load average before and after.

The sandbox is the kernel's own (started by the cell; no network). Prints each figure and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def _wall(code: str, env: dict[str, str] | None = None) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True)
    return time.perf_counter() - t


LOAD_EXT = """
import time
from IPython.core.interactiveshell import InteractiveShell
sh = InteractiveShell.instance()
t = time.perf_counter(); sh.run_line_magic('load_ext', 'llmlab'); print(time.perf_counter() - t)
"""


def _load_ext_s(env: dict[str, str]) -> float:
    out = subprocess.run([sys.executable, "-c", LOAD_EXT], check=True, env=env, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux ``/proc``; 0.0 where it cannot be read)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _first_answer_s(warmup: str, pause_s: float, db: str) -> tuple[float, float]:
    """(wall seconds, kernel CPU seconds) of a fresh kernel's first ``%%llm`` cell."""
    from jupyter_client.manager import start_new_kernel

    env = {**os.environ, "LLMLAB_WARMUP": warmup, "LLMLAB_DB": db}
    env.pop("LLMLAB_SANDBOX_API_BASE", None)
    km, kc = start_new_kernel(kernel_name="python3", env=env)
    try:
        kc.execute_interactive("%load_ext llmlab", timeout=120)
        time.sleep(pause_s)
        pid = km.provisioner.process.pid  # type: ignore[union-attr]
        t, cpu = time.perf_counter(), _cpu_s(pid)
        reply = kc.execute_interactive(f"%%llm sandbox/fast --no-cache\nSay hello ({time.time_ns()}).",
                                       timeout=300, output_hook=lambda _msg: None)
        elapsed, cpu = time.perf_counter() - t, _cpu_s(pid) - cpu
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"the %%llm cell failed: {reply['content']}")
        return elapsed, cpu
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--pause-s", type=float, default=3.0)
    ap.add_argument("--pauses", default=None, help="comma-separated pauses in seconds (default: 0 and --pause-s)")
    args = ap.parse_args()
    pauses = sorted({float(p) for p in args.pauses.split(",")} if args.pauses else {0.0, args.pause_s})
    load_before = os.getloadavg()
    env_off = {**os.environ, "LLMLAB_WARMUP": "0"}
    base, imp, ext = [], [], []
    for _ in range(args.repeats):
        base.append(_wall("pass"))
        imp.append(_wall("import llmlab"))
        ext.append(_load_ext_s(env_off))  # load_ext's own time (the warm-up thread, when on, runs after it)
    fig: dict[str, float] = {
        "startup.import.over_baseline_s": round(statistics.median(imp) - statistics.median(base), 3),
        "startup.load_ext_s": round(statistics.median(ext), 3),
    }
    samples: dict[float, dict[str, list[tuple[float, float]]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for pause in pauses:
            runs: dict[str, list[tuple[float, float]]] = {"off": [], "on": []}
            for i in range(args.repeats):
                runs["off"].append(_first_answer_s("0", pause, os.path.join(tmp, f"off{pause}-{i}.duckdb")))
                runs["on"].append(_first_answer_s("1", pause, os.path.join(tmp, f"on{pause}-{i}.duckdb")))
            samples[pause] = runs
            key = f"startup.first_answer.pause_{pause:g}s"
            for which in ("off", "on"):
                fig[f"{key}.{which}_s"] = round(statistics.median(w for w, _ in runs[which]), 3)
                fig[f"{key}.{which}_cpu_s"] = round(statistics.median(c for _, c in runs[which]), 3)
            fig[f"{key}.ratio"] = round(fig[f"{key}.on_s"] / fig[f"{key}.off_s"], 3)
            fig[f"{key}.ratio_cpu"] = round(fig[f"{key}.on_cpu_s"] / max(fig[f"{key}.off_cpu_s"], 1e-9), 3)
            fig[f"{key}.pair_ratio"] = round(statistics.median(
                on[0] / off[0] for on, off in zip(runs["on"], runs["off"], strict=True)), 3)
    fig["startup.load_avg_1m_before"] = round(load_before[0], 2)
    fig["startup.load_avg_1m_after"] = round(os.getloadavg()[0], 2)
    print(f"import llmlab: {fig['startup.import.over_baseline_s']:.3f} s over `python -c pass` (target < 0.3 s)")
    print(f"%load_ext llmlab: {fig['startup.load_ext_s']:.3f} s (target < 0.3 s)")
    for pause in pauses:
        key = f"startup.first_answer.pause_{pause:g}s"
        print(f"first %%llm answer after {pause:g} s: warm-up off {fig[f'{key}.off_s']:.2f} s "
              f"({fig[f'{key}.off_cpu_s']:.2f} CPU s), on {fig[f'{key}.on_s']:.2f} s ({fig[f'{key}.on_cpu_s']:.2f} "
              f"CPU s), ratio {fig[f'{key}.ratio']:.2f} (target <= 0.5; per pair {fig[f'{key}.pair_ratio']:.2f}, "
              f"CPU {fig[f'{key}.ratio_cpu']:.2f})")
        for which in ("off", "on"):
            print(f"    {which}: " + ", ".join(f"{w:.2f} s / {c:.2f} CPU s" for w, c in samples[pause][which]))
    print(f"load average (1 min): {fig['startup.load_avg_1m_before']} before, {fig['startup.load_avg_1m_after']} after")
    print(json.dumps(fig))


if __name__ == "__main__":
    main()
