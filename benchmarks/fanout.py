"""Fan-out speed: llmlab against plain LiteLLM on the same local server, in the same process, interleaved.

    .venv/bin/python benchmarks/fanout.py                  # 2,000 calls = 500 prompts x 4 model names
    .venv/bin/python benchmarks/fanout.py --calls 400      # a quick one

A local OpenAI-compatible server (aiohttp, in a thread of this process, loopback) answers every request after a
fixed latency (200 ms by default), as JSON or as SSE (a role chunk, three content chunks, a usage chunk,
``[DONE]``). The concurrency-bound ideal is ``calls / concurrency x latency``. Measured per configuration: wall
time and CPU time of this process (all threads: the server's share is the same in every configuration).

Configurations (``concurrency`` 64 in all):

- ``baseline``: ``asyncio`` + a semaphore over ``litellm.acompletion`` (not streamed): the reference;
- ``baseline_stream``: the same with ``stream=True`` (consumed to the end);
- ``default``: ``llmlab.run`` with its defaults (streams, to record TTFT) and ``concurrency=64``;
- ``no_stream``: ``llmlab.run(..., stream=False)`` (no TTFT).

Workers (target 4): the same server with 0 ms latency, in a process of its own (so that it does not share this
process's core), and ``llmlab.run`` with its defaults, ``concurrency`` 64, ``workers=1`` against ``workers=2``
(``--workers-calls`` calls, interleaved, medians); target: ``workers=2`` >= 1.7 x the calls/s of ``workers=1``.
``workers=2`` is timed cold (new worker processes, ``LLMLAB_WORKER_SPARES=0``) and warm (the spare workers a
run leaves for the next one). Also printed: CPU per call of this process, the worker processes and the server;
what starting two workers costs; and the ceiling this machine allows (its cores, less the CPU time the
hypervisor stole, over the whole system's CPU per call at ``workers=2``).

Each is run ``--repeats`` times, interleaved; the figures are the medians. Ratios are against ``baseline``
(``default`` also against ``baseline_stream``). Targets (issue "Performance"): default <= 1.10 x baseline,
streamed llmlab <= 1.0 x baseline_stream. The last line is one JSON object (keys like
``fanout.default.ratio_wall``). promptfoo is not run here (not installed; say so rather than guess).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def _server(latency_s: float) -> tuple[str, callable]:
    from aiohttp import web

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        await asyncio.sleep(latency_s)
        model = body.get("model", "m")
        if not body.get("stream"):
            return web.json_response({
                "id": "x", "object": "chat.completion", "created": 0, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there, friend."},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 8, "completion_tokens": 4, "total_tokens": 12}})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)

        def chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> bytes:
            obj = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": model,
                   "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]}
            if usage:
                obj["usage"] = usage
            return b"data: " + json.dumps(obj).encode() + b"\n\n"

        await resp.write(chunk({"role": "assistant", "content": ""}))
        for piece in ("Hello ", "there, ", "friend."):
            await resp.write(chunk({"content": piece}))
        await resp.write(chunk({}, "stop"))
        await resp.write(chunk({}, usage={"prompt_tokens": 8, "completion_tokens": 4, "total_tokens": 12}))
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    ready = threading.Event()
    box: dict = {}

    def run() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        box["port"] = site._server.sockets[0].getsockname()[1]  # noqa: SLF001 - the bound port
        box["loop"], box["runner"] = loop, runner
        ready.set()
        loop.run_forever()
        loop.close()

    def stop() -> None:  # close the server's connections and handlers before its loop stops (no pending tasks)
        asyncio.run_coroutine_threadsafe(box["runner"].cleanup(), box["loop"]).result(30)
        box["loop"].call_soon_threadsafe(box["loop"].stop)

    threading.Thread(target=run, daemon=True).start()
    ready.wait(10)
    return f"http://127.0.0.1:{box['port']}/v1", stop


async def _baseline(api_base: str, models: list[str], prompts: list[str], concurrency: int, stream: bool) -> None:
    import litellm

    sem = asyncio.Semaphore(concurrency)

    async def one(model: str, prompt: str) -> None:
        async with sem:
            kw = dict(model=model, messages=[{"role": "user", "content": prompt}], api_base=api_base,
                      api_key="sk-bench", max_tokens=32, temperature=0)
            if stream:
                s = await litellm.acompletion(stream=True, stream_options={"include_usage": True}, **kw)
                async for _ in s:
                    pass
            else:
                await litellm.acompletion(**kw)

    await asyncio.gather(*(one(m, p) for p in prompts for m in models))


class _QuietRebind:
    """Drops asyncio's "Task was destroyed but it is pending" for LiteLLM's logging worker: LiteLLM keeps one
    global worker task and starts a new one when it is called from another event loop; this benchmark alternates
    the baselines' loop and llmlab's, so each switch leaves the old worker to be collected. Nothing is lost (the
    worker only forwards callbacks, and none is registered here)."""

    @staticmethod
    def filter(record) -> bool:  # noqa: ANN001
        message = record.getMessage()
        return not ("Task was destroyed but it is pending" in message and "LoggingWorker._worker_loop" in message)


def _close(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what LiteLLM left running on ``loop`` (its logging worker) and close it, so that nothing is reported
    destroyed while pending at exit."""
    pending = asyncio.all_tasks(loop)
    for t in pending:
        t.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


def _measure(fn) -> tuple[float, float]:  # noqa: ANN001
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def _proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` so far, from ``/proc`` (0.0 where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_ticks() -> tuple[int, int]:
    """(all, steal) ticks of the machine since boot, from ``/proc/stat`` ((0, 0) where there is none)."""
    try:
        parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return 0, 0
    return sum(parts[:8]), parts[7] if len(parts) > 7 else 0


def _children_cpu_s() -> float:
    import resource

    ch = resource.getrusage(resource.RUSAGE_CHILDREN)  # finished (waited-for) children: the worker processes
    return ch.ru_utime + ch.ru_stime


def _wait_idle(pids: list[int], timeout_s: float = 120.0) -> None:
    """Until the processes ``pids`` stop using CPU (spare workers done importing LiteLLM), so that their start
    does not run inside the next timed run."""
    deadline = time.monotonic() + timeout_s
    last = sum(_proc_cpu_s(p) for p in pids)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = sum(_proc_cpu_s(p) for p in pids)
        if now - last < 0.02:
            return
        last = now


def _workers(args: argparse.Namespace, llmlab, models: list[str]) -> dict[str, float]:  # noqa: ANN001
    """``workers=1`` against ``workers=2`` (interleaved, medians), ``workers=2`` twice: *cold* (new worker
    processes: an interpreter and LiteLLM's import each; ``LLMLAB_WORKER_SPARES=0``) and *warm* (the spares the
    run before left, as a notebook's second run gets them). Also where the CPU went: this process, the worker
    processes and the server process, per call; and the machine's ceiling for ``workers=2``: ``cores x (1 -
    steal)`` over the whole system's CPU per call."""
    import subprocess

    from llmlab.runner.workers import spare_pids

    server = subprocess.Popen([sys.executable, __file__, "--serve", "--latency-ms", "0"], stdout=subprocess.PIPE,
                              text=True)
    cores = os.cpu_count() or 1
    try:
        api_base = server.stdout.readline().strip()
        os.environ["OPENAI_API_BASE"] = api_base
        n_prompts = max(1, args.workers_calls // args.models)
        calls = n_prompts * args.models

        def run(k: int, prompts: list[str], spares: bool = True) -> dict[str, float]:
            if spares:
                os.environ.pop("LLMLAB_WORKER_SPARES", None)
            else:
                os.environ["LLMLAB_WORKER_SPARES"] = "0"
            s0, ch0, (all0, st0) = _proc_cpu_s(server.pid), _children_cpu_s(), _cpu_ticks()
            # the spares' start-up CPU so far; what of it is reaped during this run (taken or stopped) is not
            # this run's work
            before = {pid: _proc_cpu_s(pid) for pid in spare_pids()}
            box: dict = {}

            def go() -> None:
                box["res"] = llmlab.run(prompts, models, progress=False, cache=False, concurrency=args.concurrency,
                                        max_tokens=32, workers=k, timeout_s=60)

            wall, own = _measure(go)
            (all1, st1) = _cpu_ticks()
            spent = sum(cpu for pid, cpu in before.items() if not os.path.exists(f"/proc/{pid}"))
            os.environ.pop("LLMLAB_WORKER_SPARES", None)
            return {"wall": wall, "own": own, "workers": _children_cpu_s() - ch0 - spent,
                    "server": _proc_cpu_s(server.pid) - s0, "steal": (st1 - st0) / max(1, all1 - all0),
                    "spares_used": box["res"].stats.spare_workers}

        res: dict[str, list[dict[str, float]]] = {"w1": [], "w2_cold": [], "w2_warm": []}
        for rep in range(args.repeats):
            for name in res:
                if name == "w2_warm":  # leave spares for it, and let them finish starting
                    run(2, [f"spares {rep} {i}" for i in range(2 * args.models)])
                    _wait_idle(spare_pids())
                m = run(1 if name == "w1" else 2, [f"{name} {rep} prompt {i}" for i in range(n_prompts)],
                        spares=name != "w2_cold")
                if name == "w2_warm":
                    _wait_idle(spare_pids())  # the next spares start outside the next timed run
                res[name].append(m)
                print(f"  rep {rep} {name:8s} {calls / m['wall']:7.1f} calls/s; CPU ms/call: this process "
                      f"{m['own'] / calls * 1e3:.1f}, workers {m['workers'] / calls * 1e3:.1f}, server "
                      f"{m['server'] / calls * 1e3:.1f}; steal {m['steal']:.0%}; spares used "
                      f"{m['spares_used']}", flush=True)
    finally:
        server.kill()
        server.wait()
    med = {k: {f: statistics.median(m[f] for m in v) for f in v[0]} for k, v in res.items()}
    rate = {k: calls / med[k]["wall"] for k in med}
    cold, warm = rate["w2_cold"] / rate["w1"], rate["w2_warm"] / rate["w1"]
    start_s = med["w2_cold"]["wall"] - med["w2_warm"]["wall"]
    w = med["w2_warm"]
    cpu_call = (w["own"] + w["workers"] + w["server"]) / calls
    ceiling = cores * (1 - w["steal"]) / cpu_call / rate["w1"]
    print(f"  workers (0 ms latency, {calls} calls, {cores} cores): workers=1 {rate['w1']:.1f} calls/s; workers=2 "
          f"cold {rate['w2_cold']:.1f} calls/s = {cold:.2f} x, warm (spares) {rate['w2_warm']:.1f} calls/s = "
          f"{warm:.2f} x (target >= 1.7: cold {cold >= 1.7}, warm {warm >= 1.7}); starting 2 workers costs "
          f"{start_s:.1f} s; this machine's ceiling for workers=2 (all {cores} cores less {w['steal']:.0%} steal, "
          f"{cpu_call * 1e3:.1f} CPU ms a call, server included): {ceiling:.2f} x")
    return {"fanout.workers.calls": calls, "fanout.workers.w1_calls_per_s": round(rate["w1"], 1),
            "fanout.workers.w2_cold_calls_per_s": round(rate["w2_cold"], 1),
            "fanout.workers.w2_warm_calls_per_s": round(rate["w2_warm"], 1),
            "fanout.workers.ratio": round(cold, 3), "fanout.workers.ratio_warm": round(warm, 3),
            "fanout.workers.start_s": round(start_s, 2), "fanout.workers.ceiling_ratio": round(ceiling, 3),
            "fanout.workers.steal": round(w["steal"], 3),
            **{f"fanout.workers.{k}.cpu_ms_per_call.{f}": round(med[k][f] / calls * 1e3, 2)
               for k in med for f in ("own", "workers", "server")},
            "fanout.target.workers_ge_1_7": cold >= 1.7, "fanout.target.workers_warm_ge_1_7": warm >= 1.7}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--models", type=int, default=4)
    ap.add_argument("--latency-ms", type=float, default=200.0)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--workers-calls", type=int, default=2000, help="0: skip the workers measurement")
    ap.add_argument("--workers-only", action="store_true", help="only the workers measurement")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:  # the workers measurement's server process
        api_base, _ = _server(args.latency_ms / 1000)
        print(api_base, flush=True)
        threading.Event().wait()
    os.environ["LLMLAB_DB"] = str(Path(tempfile.mkdtemp(prefix="llmlab-fanout-")) / "bench.duckdb")

    import logging

    import litellm

    import llmlab
    from llmlab.models import set_price

    logging.getLogger("asyncio").addFilter(_QuietRebind())

    api_base, stop = _server(args.latency_ms / 1000)
    os.environ["OPENAI_API_BASE"] = api_base
    os.environ["OPENAI_API_KEY"] = "sk-bench-not-a-real-key"
    models = [f"openai/bench-{i}" for i in range(args.models)]
    for m in models:
        set_price(m, 1.0, 2.0)  # not in LiteLLM's map
    n_prompts = max(1, args.calls // args.models)
    calls = n_prompts * args.models
    ideal_s = calls / args.concurrency * args.latency_ms / 1000
    loop = asyncio.new_event_loop()
    litellm.suppress_debug_info = True

    def baseline(stream: bool, rep: int):  # noqa: ANN202
        prompts = [f"baseline {stream} {rep} prompt {i}" for i in range(n_prompts)]
        return lambda: loop.run_until_complete(_baseline(api_base, models, prompts, args.concurrency, stream))

    def llm(stream: bool, rep: int):  # noqa: ANN202
        prompts = [f"llmlab {stream} {rep} prompt {i}" for i in range(n_prompts)]
        return lambda: llmlab.run(prompts, models, progress=False, cache=False, concurrency=args.concurrency,
                                  max_tokens=32, stream=stream, timeout_s=60)

    if args.workers_only:
        stop()
        _close(loop)
        out = _workers(args, llmlab, models)
        print(json.dumps(out, sort_keys=True))
        return 0
    configs = {"baseline": lambda r: baseline(False, r), "baseline_stream": lambda r: baseline(True, r),
               "default": lambda r: llm(True, r), "no_stream": lambda r: llm(False, r)}
    # warm both paths once (imports, clients) outside the measurement
    _measure(baseline(False, -1))
    llmlab.run(["warm"], models[:1], progress=False, cache=False)
    results: dict[str, list[tuple[float, float]]] = {k: [] for k in configs}
    for rep in range(args.repeats):
        for name, make in configs.items():
            results[name].append(_measure(make(rep)))
            print(f"  rep {rep} {name:16s} wall {results[name][-1][0]:6.1f} s  cpu {results[name][-1][1]:6.1f} s",
                  flush=True)
    stop()
    _close(loop)
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in results.items()}
    out: dict[str, float] = {"fanout.calls": calls, "fanout.ideal_wall_s": round(ideal_s, 2)}
    print(f"llmlab fan-out benchmark: {calls} calls ({n_prompts} prompts x {args.models} models), latency "
          f"{args.latency_ms:g} ms, concurrency {args.concurrency}; ideal {ideal_s:.1f} s; medians of {args.repeats}")
    for name, (wall, cpu) in med.items():
        out[f"fanout.{name}.wall_s"] = round(wall, 2)
        out[f"fanout.{name}.cpu_ms_per_call"] = round(cpu / calls * 1000, 2)
        out[f"fanout.{name}.ratio_wall"] = round(wall / med["baseline"][0], 3)
        out[f"fanout.{name}.ratio_cpu"] = round(cpu / med["baseline"][1], 3)
        print(f"  {name:16s} wall {wall:6.1f} s ({wall / med['baseline'][0]:.2f} x baseline)   "
              f"CPU {cpu / calls * 1000:5.2f} ms/call ({cpu / med['baseline'][1]:.2f} x)")
    out["fanout.default.ratio_wall_vs_stream_baseline"] = round(med["default"][0] / med["baseline_stream"][0], 3)
    out["fanout.target.default_le_1_10"] = out["fanout.default.ratio_wall"] <= 1.10
    out["fanout.target.stream_le_1_0"] = out["fanout.default.ratio_wall_vs_stream_baseline"] <= 1.0
    print(f"  targets: default <= 1.10 x baseline: {out['fanout.target.default_le_1_10']} "
          f"({out['fanout.default.ratio_wall']}); streamed <= 1.0 x baseline_stream: "
          f"{out['fanout.target.stream_le_1_0']} ({out['fanout.default.ratio_wall_vs_stream_baseline']})")
    print("  promptfoo: not measured (not installed here)")
    if args.workers_calls:
        out.update(_workers(args, llmlab, models))
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
