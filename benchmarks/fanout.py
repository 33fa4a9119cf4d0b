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
        box["loop"] = loop
        ready.set()
        loop.run_forever()

    threading.Thread(target=run, daemon=True).start()
    ready.wait(10)
    return f"http://127.0.0.1:{box['port']}/v1", lambda: box["loop"].call_soon_threadsafe(box["loop"].stop)


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


def _measure(fn) -> tuple[float, float]:  # noqa: ANN001
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def _workers(args: argparse.Namespace, llmlab, models: list[str]) -> dict[str, float]:  # noqa: ANN001
    import subprocess

    server = subprocess.Popen([sys.executable, __file__, "--serve", "--latency-ms", "0"], stdout=subprocess.PIPE,
                              text=True)
    try:
        api_base = server.stdout.readline().strip()
        os.environ["OPENAI_API_BASE"] = api_base
        n_prompts = max(1, args.workers_calls // args.models)
        calls = n_prompts * args.models
        res: dict[int, list[float]] = {1: [], 2: []}
        for rep in range(args.repeats):
            for k in (1, 2):
                prompts = [f"workers {k} {rep} prompt {i}" for i in range(n_prompts)]
                wall, _ = _measure(lambda: llmlab.run(prompts, models, progress=False, cache=False,  # noqa: B023
                                                      concurrency=args.concurrency, max_tokens=32, workers=k,
                                                      timeout_s=60))
                res[k].append(calls / wall)
                print(f"  rep {rep} workers={k}: {calls / wall:7.1f} calls/s", flush=True)
    finally:
        server.kill()
    med = {k: statistics.median(v) for k, v in res.items()}
    ratio = med[2] / med[1]
    print(f"  workers (0 ms latency, {calls} calls, {os.cpu_count()} cores): workers=1 {med[1]:.1f} calls/s, "
          f"workers=2 {med[2]:.1f} calls/s = {ratio:.2f} x (target >= 1.7: {ratio >= 1.7})")
    return {"fanout.workers.calls": calls, "fanout.workers.w1_calls_per_s": round(med[1], 1),
            "fanout.workers.w2_calls_per_s": round(med[2], 1), "fanout.workers.ratio": round(ratio, 3),
            "fanout.target.workers_ge_1_7": ratio >= 1.7}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--models", type=int, default=4)
    ap.add_argument("--latency-ms", type=float, default=200.0)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--workers-calls", type=int, default=2000, help="0: skip the workers measurement")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:  # the workers measurement's server process
        api_base, _ = _server(args.latency_ms / 1000)
        print(api_base, flush=True)
        threading.Event().wait()
    os.environ["LLMLAB_DB"] = str(Path(tempfile.mkdtemp(prefix="llmlab-fanout-")) / "bench.duckdb")

    import litellm

    import llmlab
    from llmlab.models import set_price

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
