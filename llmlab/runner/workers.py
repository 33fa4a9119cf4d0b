"""The fan-out over several processes (``workers=K``): when one core is the limit, each worker process runs its
own event loop and LiteLLM for a share of the plan, and the parent keeps the one store writer and the cache.

- The parent serves the cache hits itself and starts K ``python -m llmlab.runner.workers`` processes (a fresh
  interpreter each, not ``multiprocessing``: nothing of the user's ``__main__`` script or notebook is re-run in
  them). It hands the remaining calls out in plan order, a chunk at a time, to the worker that asks
  (:class:`Dispatch`): each starts with up to twice its concurrency and asks for more when fewer than half its
  concurrency are left unstarted (:class:`Feed`); chunks shrink towards the end of the plan, so a worker that is
  slower (a busier core, slower models) does fewer calls and no worker idles while another still has a queue.
- Each worker runs the ordinary fan-out (:class:`~llmlab.runner.fanout._Fanout`: retries, fallbacks, timeouts,
  the wire accounting) and sends every finished row, scores made, back over its stdout pipe (length-prefixed
  pickles); the parent writes, counts and reports them (``on_result``) exactly as a one-process run does.
- Limits are divided among the workers: worker ``i`` gets ``concurrency // K`` calls in flight (the remainder
  to the first ones), each model's ``per_model_concurrency`` cap and ``rate_limits`` (RPM, TPM) divided by K
  (a cap at least 1), and ``budget_usd / K`` of the budget: a worker whose share is spent asks for no more
  calls, so the rest go to the workers with budget left, and the calls no worker took are recorded as
  ``BudgetExceeded``. ``on_delta`` (live streamed text) is not available
  across processes: a run with ``on_delta`` stays in one process.
- Every planned call ends as exactly one row: a cancellation (Ctrl-C, ``cancel()``) closes the workers' stdin,
  each worker cancels its fan-out, which records its in-flight calls and those never started as ``cancelled``
  rows and sends them; a call whose row never arrived (a worker that died) is recorded by the parent as a
  ``WorkerDied`` (or, when cancelled, ``cancelled``) error row.

``workers=None`` (the default) is automatic: one process, unless the plan has at least
:data:`AUTO_MIN_CALLS` calls to make and the machine more than one core (then ``min(cores, 4)``): starting a
worker costs an interpreter and LiteLLM's import (about 3 s on an idle core), which only a large run earns back.

**Spare workers.** A worker imports LiteLLM (and what its first request needs) while its share of the plan is
still arriving, so a new worker is ready as soon as it can be. After a run in K workers the parent starts K
spares: processes that import LiteLLM at once and then wait for a share. The next run on the same event loop
takes them instead of starting new ones (``RunStats.spare_workers`` counts them), so it pays no start. A spare
is only used by a run whose worker environment (``os.environ``, ``PYTHONPATH`` included) and working directory
are those it was started with (otherwise it is stopped and a new worker started: nothing a spare does can
differ from a new worker's), and it ends by itself after :func:`spare_idle_s` seconds unused
(``LLMLAB_WORKER_SPARE_IDLE_S``, default 300), or when the parent exits (its stdin closes).
``LLMLAB_WORKER_SPARES=0`` turns spares off.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import pickle
import signal
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

from llmlab.runner.options import RunOptions
from llmlab.runner.writer import PeriodicFlush

log = logging.getLogger(__name__)

__all__ = [
    "AUTO_MIN_CALLS",
    "Dispatch",
    "Feed",
    "execute_in_workers",
    "resolve_workers",
    "spare_idle_s",
    "spare_pids",
    "worker_options",
]

#: ``workers=None`` uses more than one process only from this many calls to make (cache hits excluded).
AUTO_MIN_CALLS = 20_000
#: How long a cancelled run waits for its workers' last rows before it stops them, seconds.
STOP_GRACE_S = 15.0
_HEADER = struct.Struct("!I")
#: A spare is handed a share only while it has at least this long left before it ends by itself, seconds.
SPARE_MARGIN_S = 30.0


def spare_idle_s() -> float:
    """How long a spare worker waits for a share before it ends, seconds (``LLMLAB_WORKER_SPARE_IDLE_S``,
    default 300; at least ``2 x SPARE_MARGIN_S``)."""
    try:
        value = float(os.environ.get("LLMLAB_WORKER_SPARE_IDLE_S", "300"))
    except ValueError:
        value = 300.0
    return max(2 * SPARE_MARGIN_S, value)


@dataclasses.dataclass
class _Spare:
    proc: asyncio.subprocess.Process
    loop: asyncio.AbstractEventLoop
    env: dict[str, str]
    cwd: str
    started_s: float


_spares: list[_Spare] = []  # touched only from event-loop threads, each for its own loop's spares


def spare_pids() -> list[int]:
    """The process ids of the spare workers waiting for a share (see the module docstring)."""
    return [s.proc.pid for s in _spares if s.proc.returncode is None]


def resolve_workers(options: RunOptions, calls_to_make: int, *, on_delta: Any = None, completion: Any = None) -> int:
    """How many processes a run uses: ``options.workers``, or the automatic choice (see the module docstring);
    1 whenever the run has ``on_delta`` or a ``completion`` stand-in (tests), or fewer calls than workers."""
    if on_delta is not None or completion is not None or calls_to_make < 2:
        return 1
    k = options.workers
    if k is None:
        cores = os.cpu_count() or 1
        k = min(cores, 4) if calls_to_make >= AUTO_MIN_CALLS and cores > 1 else 1
    return max(1, min(k, calls_to_make))


def _share(n: int, k: int, i: int) -> int:
    return n // k + (1 if i < n % k else 0)


class Dispatch:
    """The parent's side of the hand-out: the calls not sent to a worker yet, given out in plan order.

    ``first(concurrency, i)``: worker ``i``'s first chunk, up to ``2 x concurrency`` calls and at most its even
    share of the plan (a small plan is split evenly at once). ``more(concurrency)``: a later chunk, at most
    ``concurrency`` calls and at most ``1 / (2K)`` of those left (so chunks shrink towards the end), at least one;
    an empty list once every call was handed out. ``left``: the calls not handed out."""

    def __init__(self, calls: list[Any], k: int) -> None:
        self.calls, self.k, self.next = calls, k, 0

    @property
    def left(self) -> int:
        return len(self.calls) - self.next

    def _take(self, n: int) -> list[Any]:
        chunk = self.calls[self.next:self.next + max(0, n)]
        self.next += len(chunk)
        return chunk

    def first(self, concurrency: int, i: int) -> list[Any]:
        return self._take(min(2 * concurrency, _share(len(self.calls), self.k, i)))

    def more(self, concurrency: int) -> list[Any]:
        return self._take(max(1, min(concurrency, -(-self.left // (2 * self.k)))))

    def rest(self) -> list[Any]:
        """The calls never handed out (all of them taken from here)."""
        return self._take(self.left)


class Feed:
    """A worker process's source of calls beyond its first chunk (``_Fanout.feed``): when fewer than
    ``low_water`` calls are left unstarted it asks the parent (``ask()``, once until the answer arrives), and
    :meth:`add` puts the parent's answer in the queue (an empty chunk: the parent has no more). Once
    ``budget_spent()`` is true (the worker's share of ``budget_usd``) it asks for nothing more, so the calls left
    go to the workers with budget left; ``budget_stopped`` says it stopped for that reason."""

    def __init__(self, ask: Any, low_water: int, budget_spent: Any = None) -> None:
        self.ask, self.low_water = ask, max(1, low_water)
        self.budget_spent = budget_spent or (lambda: False)
        self.pending: Any = None
        self.asked = self.ended = self.budget_stopped = False
        self._arrived = asyncio.Event()

    def attach(self, pending: Any) -> None:
        """The fan-out's queue of unstarted calls (a deque), which :meth:`add` extends."""
        self.pending = pending

    def taken(self) -> None:
        """A call was taken from the queue: ask for more if few are left."""
        if len(self.pending) < self.low_water:
            self._ask()

    def _ask(self) -> None:
        if self.asked or self.ended:
            return
        if self.budget_spent():
            self.ended = self.budget_stopped = True
            self._arrived.set()
            return
        self.asked = True
        self.ask()

    def add(self, calls: list[Any]) -> None:
        """The parent's answer (on the event loop's thread)."""
        self.asked = False
        if calls:
            self.pending.extend(calls)
        else:
            self.ended = True
        self._arrived.set()

    async def wait(self) -> bool:
        """Wait until the queue has a call (True) or the parent has no more (False)."""
        while not self.pending and not self.ended:
            self._arrived.clear()
            self._ask()  # may end the feed (the budget is spent) at once
            if not self.ended:
                await self._arrived.wait()
        return bool(self.pending)


def worker_options(options: RunOptions, k: int, i: int) -> RunOptions:
    """Worker ``i`` of ``k``'s options: concurrency, per-model caps, rate limits and budget divided by ``k``."""
    pmc = options.per_model_concurrency
    if isinstance(pmc, dict):
        pmc = {m: max(1, _share(n, k, i)) for m, n in pmc.items()}
    elif pmc is not None:
        pmc = max(1, _share(pmc, k, i))
    limits = {m: {key: v / k for key, v in lim.items()} for m, lim in options.rate_limits.items()}
    budget = options.budget_usd / k if options.budget_usd is not None else None
    return options.model_copy(update={"concurrency": max(1, _share(options.concurrency, k, i)),
                                      "per_model_concurrency": pmc, "rate_limits": limits, "budget_usd": budget,
                                      "workers": 1})


async def execute_in_workers(fan: Any, k: int) -> Any:
    """Run ``fan``'s plan (a :class:`~llmlab.runner.fanout._Fanout`) in ``k`` worker processes; returns its
    :class:`~llmlab.runner.fanout.RunStats`. Raises what a one-process run raises (``CancelledError`` when
    cancelled, after every planned call was recorded and the writer closed)."""
    fan.writer.start()
    todo = []
    for call in fan.plan.calls:
        hit = fan.plan.cached.get(call.cache_key) if fan.opts.cache else None
        if hit is not None:
            fan._finish(call, fan._from_cache(call, hit))
        else:
            todo.append(call)
    waiting = {c.call_id: c for c in todo}  # the calls whose row has not arrived yet
    procs: list[asyncio.subprocess.Process] = []
    lost: list[str] = []
    budget_stopped: list[int] = []  # the workers that stopped asking for calls because their budget was spent
    dispatch = Dispatch(todo, k)
    senders = []
    try:
        for i in range(k):
            options = worker_options(fan.opts, k, i)
            chunk = dispatch.first(options.concurrency, i)
            if chunk:
                procs.append(proc := await _start(fan, chunk, options))
                senders.append(_sender(proc, dispatch, options.concurrency))
        pumps = [asyncio.ensure_future(_pump(fan, proc, waiting, lost, more, budget_stopped))
                 for proc, more in zip(procs, senders)]
        try:
            await asyncio.gather(*pumps)
        except asyncio.CancelledError:
            fan.stats.cancelled = True
            for proc in procs:  # the stop signal: each worker cancels its fan-out and sends what it recorded
                with contextlib.suppress(Exception):
                    proc.stdin.close()  # type: ignore[union-attr]
            await asyncio.shield(asyncio.wait(pumps, timeout=STOP_GRACE_S))
            raise
    finally:
        for proc in procs:
            with contextlib.suppress(Exception):
                proc.stdin.close()  # type: ignore[union-attr]
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                with contextlib.suppress(Exception):
                    await asyncio.shield(proc.wait())
        if not fan.stats.cancelled:
            with contextlib.suppress(Exception):  # an optional speed-up for the next run only
                await asyncio.shield(_replenish(len(procs)))
        if not fan.stats.cancelled and dispatch.left and procs and len(budget_stopped) == len(procs):
            spent = f"budget of ${fan.opts.budget_usd:.4f} spent by the {len(procs)} worker processes; call not issued"
            for call in dispatch.rest():
                waiting.pop(call.call_id, None)
                fan._finish(call, fan._cancelled_row(call, spent, error_type="BudgetExceeded"))
        why = "; ".join(lost)[:1500]
        for call in list(waiting.values()):
            if fan.stats.cancelled:
                row = fan._cancelled_row(call, "cancelled before completion (interrupt or cancel)")
            else:
                row = fan._cancelled_row(call, f"its worker process ended before recording it ({why or 'no reason'})",
                                         error_type="WorkerDied")
            fan._finish(call, row)
        await asyncio.shield(fan.writer.close())
    return fan.stats


def _worker_env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])  # the same llmlab as the parent's
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    return env


async def _spawn(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "llmlab.runner.workers", env=env,
                                                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)


def _stop_spare(spare: _Spare) -> None:
    # a kill, not closing its stdin: the spare may belong to another loop, whose transports are not ours to touch
    with contextlib.suppress(ProcessLookupError, OSError):
        os.kill(spare.proc.pid, signal.SIGKILL)


def _take_spare(env: dict[str, str]) -> asyncio.subprocess.Process | None:
    """A spare started on this loop with this environment and working directory, with time left; the others
    that cannot serve this loop's runs any more are stopped."""
    loop, cwd, now = asyncio.get_running_loop(), os.getcwd(), time.monotonic()
    for spare in [s for s in _spares if s.loop is loop]:
        _spares.remove(spare)
        if (spare.proc.returncode is None and spare.env == env and spare.cwd == cwd
                and now - spare.started_s < spare_idle_s() - SPARE_MARGIN_S):
            return spare.proc
        _stop_spare(spare)
    return None


async def _replenish(k: int) -> None:
    """Start spares until this loop has ``k`` for the current environment (none with LLMLAB_WORKER_SPARES=0)."""
    if os.environ.get("LLMLAB_WORKER_SPARES", "1").strip() == "0":
        return
    loop, env, cwd = asyncio.get_running_loop(), _worker_env(), os.getcwd()
    for spare in [s for s in _spares if s.loop is loop and (s.env != env or s.cwd != cwd)]:
        _spares.remove(spare)
        _stop_spare(spare)
    while sum(1 for s in _spares if s.loop is loop and s.proc.returncode is None) < k:
        _spares.append(_Spare(await _spawn(env), loop, env, cwd, time.monotonic()))


async def _start(fan: Any, share: list[Any], options: RunOptions) -> asyncio.subprocess.Process:
    plan = dataclasses.replace(fan.plan, calls=share, cached={}, options=options, store=None, completion=None,
                               prompt_set=None)
    payload = pickle.dumps({"plan": plan, "run_id": fan.run_id}, protocol=pickle.HIGHEST_PROTOCOL)
    message = _HEADER.pack(len(payload)) + payload
    env = _worker_env()
    proc = _take_spare(env)
    if proc is not None:
        try:
            proc.stdin.write(message)  # type: ignore[union-attr]
            await proc.stdin.drain()  # type: ignore[union-attr]
            fan.stats.spare_workers += 1
            return proc
        except (BrokenPipeError, ConnectionResetError):  # it ended in the meantime: start a new one
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
    proc = await _spawn(env)
    assert proc.stdin is not None
    proc.stdin.write(message)
    await proc.stdin.drain()
    return proc


def _sender(proc: asyncio.subprocess.Process, dispatch: Dispatch, concurrency: int) -> Any:
    """What answers the worker's ``more``: its next chunk (``[]``: no more), written to its stdin."""

    def more() -> None:
        stdin = proc.stdin
        if stdin is None or stdin.is_closing():  # stopped (cancelled): it needs nothing more
            return
        payload = pickle.dumps(dispatch.more(concurrency) if dispatch.left else [], protocol=pickle.HIGHEST_PROTOCOL)
        with contextlib.suppress(Exception):  # it ended: its pump records what it did not send
            stdin.write(_HEADER.pack(len(payload)) + payload)

    return more


async def _pump(fan: Any, proc: asyncio.subprocess.Process, waiting: dict[str, Any], lost: list[str],
                more: Any, budget_stopped: list[int]) -> None:
    """Receive one worker's rows until it ends; answer its requests for more calls with ``more()``."""
    assert proc.stdout is not None
    while True:
        try:
            size = _HEADER.unpack(await proc.stdout.readexactly(_HEADER.size))[0]
            kind, body = pickle.loads(await proc.stdout.readexactly(size))
        except asyncio.IncompleteReadError:
            code = await proc.wait()
            if code:
                lost.append(f"worker pid {proc.pid} exited with code {code}")
            return
        if kind == "rows":
            for row, scores in body:
                if waiting.pop(row["call_id"], None) is not None:  # exactly one row per planned call
                    fan.record(row, scores)
        elif kind == "more":
            more()
        elif kind == "done":
            fan.stats.queued_s += body.get("queued_s", 0.0)
            if body.get("budget_stopped"):
                budget_stopped.append(proc.pid)
        elif kind == "error":
            lost.append(body)
            log.error("llmlab: a worker process failed: %s", body)


# -- the worker process ------------------------------------------------------------------------------------
class _PipeWriter(PeriodicFlush):
    """The worker's stand-in for :class:`~llmlab.runner.writer.BatchWriter`: finished rows go to the parent."""

    def __init__(self, send: Any, interval_s: float) -> None:
        self.send, self.interval_s = send, interval_s
        self._rows: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
        self._task: asyncio.Task[None] | None = None
        self._sending: asyncio.Future[None] | None = None

    def add(self, row: dict[str, Any], scores: Any = ()) -> None:
        self._rows.append((row, list(scores)))

    async def _flush(self) -> None:
        rows, self._rows = self._rows, []
        if rows:
            # a cancellation (close() stopping the periodic flush) stops this wait only, never the send: its
            # thread goes on, and close() waits for it; otherwise the process could exit with those rows unsent
            self._sending = asyncio.ensure_future(asyncio.to_thread(self.send, "rows", rows))
            await asyncio.wait({self._sending})
            self._sending.result()

    async def close(self) -> None:
        """Stop the periodic flush, wait for a send it had begun, and send what is left."""
        await self._stop()
        if self._sending is not None:
            await asyncio.wait({self._sending})
            self._sending.result()
        await self._flush()


async def _work(payload: dict[str, Any], send: Any) -> None:
    from llmlab.runner.fanout import _Fanout
    from llmlab.runner.wire import warm_up

    await asyncio.to_thread(warm_up)  # done already in main() unless it failed there
    fan = _Fanout(payload["plan"], payload["run_id"], None)  # type: ignore[arg-type]
    fan.writer = _PipeWriter(send, min(0.2, fan.opts.flush_interval_s))  # type: ignore[assignment]
    loop = asyncio.get_running_loop()
    # asked off the loop's thread: the pipe is shared with the row batches, whose writes may wait on the parent
    budget = fan.opts.budget_usd
    fan.feed = Feed(lambda: loop.run_in_executor(None, send, "more", None), fan.opts.concurrency // 2,
                    budget_spent=lambda: budget is not None and fan.spent_usd >= budget)
    task = asyncio.ensure_future(fan.execute())

    def read_parent() -> None:  # more calls, then the parent closes our stdin: the end, or the stop signal
        stdin = sys.stdin.buffer
        with contextlib.suppress(Exception):
            while len(head := stdin.read(_HEADER.size)) == _HEADER.size:
                data = stdin.read(_HEADER.unpack(head)[0])
                loop.call_soon_threadsafe(lambda data=data: fan.feed.add(pickle.loads(data)))
        with contextlib.suppress(RuntimeError):  # the loop is closed: the run ended before the stop
            loop.call_soon_threadsafe(task.cancel)

    threading.Thread(target=read_parent, daemon=True).start()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    send("done", {"queued_s": fan.stats.queued_s, "budget_stopped": fan.feed.budget_stopped})


def main() -> int:
    """The worker process: read the share of the plan from stdin, send rows on stdout."""

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us through stdin
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to stderr, never into the row stream
    lock = threading.Lock()

    def send(kind: str, body: Any) -> None:
        data = pickle.dumps((kind, body), protocol=pickle.HIGHEST_PROTOCOL)
        with lock:
            out.write(_HEADER.pack(len(data)) + data)
            out.flush()

    stdin = sys.stdin.buffer
    message: dict[str, bytes] = {}
    arrived = threading.Event()

    def read_share() -> None:  # bytes only: unpickling imports modules, which stays on the main thread
        try:
            head = stdin.read(_HEADER.size)
            if len(head) == _HEADER.size:
                message["payload"] = stdin.read(_HEADER.unpack(head)[0])
        finally:
            arrived.set()

    threading.Thread(target=read_share, daemon=True).start()
    with contextlib.suppress(Exception):  # LiteLLM imported while the share arrives (a spare: before it does)
        from llmlab.runner import fanout  # noqa: F401
        from llmlab.runner.wire import warm_up

        warm_up()
    if not arrived.wait(spare_idle_s()) or "payload" not in message:
        return 0  # a spare nobody took, or the parent ended
    payload = pickle.loads(message["payload"])
    try:
        from llmlab import _loop

        loop = asyncio.new_event_loop()
        _loop._cheap_asyncgen_finalizer(loop)
        loop.run_until_complete(_work(payload, send))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which records the missing rows
        import traceback

        with contextlib.suppress(Exception):
            send("error", "".join(traceback.format_exception_only(type(exc), exc)).strip()[:1000])
        return 1
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # no interpreter teardown (LiteLLM's idle executor threads): every row was sent
