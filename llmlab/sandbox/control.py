"""Using a sandbox from outside: over HTTP (:class:`RemoteSandbox`), the process-wide one
(:func:`ensure_sandbox`), and the ``llmlab sandbox`` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

from llmlab.errors import FaultSpecError, SandboxError

logger = logging.getLogger(__name__)
from llmlab.sandbox.profiles import (
    FAULT_KINDS,
    SANDBOX_API_BASE_ENV,
)
from llmlab.sandbox.server import (
    Sandbox,
)

__all__ = [
    "RemoteSandbox",
    "ensure_sandbox",
    "main",
    "serve_forever",
]

# --------------------------------------------------------------------------------------------- remote control


class RemoteSandbox:
    """Control a sandbox running in another process through its ``/_sandbox/*`` HTTP endpoints.

    Args:
        url: the sandbox URL (``http://127.0.0.1:PORT``; a trailing ``/v1`` is accepted).
        timeout_s: per control request, seconds.

    Every method raises :class:`SandboxError` when the sandbox does not answer or refuses the request.
    """

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        url = url.rstrip("/")
        self.url = url[:-3] if url.endswith("/v1") else url
        self.timeout_s = timeout_s

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310 - loopback URL
                return json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            raise SandboxError(f"sandbox refused {method} {path}: HTTP {exc.code}: {detail}") from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise SandboxError(f"sandbox at {self.url} did not answer {method} {path}: {exc}") from exc

    def inject(self, kind: str | int, model: str = "*", times: int | None = None, rate: float | None = None,
               retry_after_s: float = 1.0, hang_s: float = 30.0) -> dict[str, Any]:
        """Same as :meth:`Sandbox.inject`, over HTTP. Returns the rule as a dict."""
        return self._call("POST", "/_sandbox/faults", {"kind": str(kind), "model": model, "times": times,
                                                       "rate": rate, "retry_after_s": retry_after_s,
                                                       "hang_s": hang_s})["fault"]

    def clear_faults(self) -> None:
        """Same as :meth:`Sandbox.clear_faults`, over HTTP."""
        self._call("DELETE", "/_sandbox/faults")

    def faults(self) -> list[dict[str, Any]]:
        """Same as :meth:`Sandbox.faults`, over HTTP."""
        return self._call("GET", "/_sandbox/faults")["faults"]

    def stats(self) -> dict[str, Any]:
        """Same as :meth:`Sandbox.stats`, over HTTP."""
        return self._call("GET", "/_sandbox/stats")

    def reset_stats(self) -> None:
        """Same as :meth:`Sandbox.reset_stats`, over HTTP."""
        self._call("DELETE", "/_sandbox/stats")

    def set_pairwise_judge(self, model: str, position_bias: float = 0.0,
                           mistake_rate: float | None = None) -> dict[str, Any]:
        """Set how ``model`` judges pairs (:mod:`llmlab.sandbox.pairwise_judge`), over HTTP; returns every
        pairwise judge profile as dicts."""
        return self._call("POST", "/_sandbox/pairwise_judges", {"model": model, "position_bias": position_bias,
                                                                "mistake_rate": mistake_rate})["pairwise_judges"]


# --------------------------------------------------------------------------------------------- entry points


_shared_lock = threading.Lock()
_shared: Sandbox | None = None


def ensure_sandbox(**kw: Any) -> Sandbox:
    """Start the process-wide sandbox if none is running (else reuse it) and return it.

    Sets ``os.environ["LLMLAB_SANDBOX_API_BASE"]`` to its ``api_base`` (the value exported LiteLLM configs read
    through ``os.environ/LLMLAB_SANDBOX_API_BASE``) and, unless set, ``LLMLAB_SANDBOX_API_KEY`` (any value works). ``kw`` goes to :class:`Sandbox` when one is started and is
    ignored (with a debug log) when one is reused.

    Raises:
        SandboxError: it could not start.
    """
    global _shared
    with _shared_lock:
        if _shared is not None and _shared.running:
            if kw:
                logger.debug("ensure_sandbox: reusing the running sandbox, ignoring %s", sorted(kw))
        else:
            _shared = Sandbox(**kw).start()
        os.environ[SANDBOX_API_BASE_ENV] = _shared.api_base
        # Exported configs read the key as os.environ/LLMLAB_SANDBOX_API_KEY; the sandbox accepts any key.
        os.environ.setdefault("LLMLAB_SANDBOX_API_KEY", "sandbox-key")
        return _shared


async def serve_forever(host: str = "127.0.0.1", port: int = 0, *,
                        on_ready: Callable[[Sandbox], None] | None = None, **kw: Any) -> None:
    """Run a sandbox on the current event loop until cancelled (Ctrl-C under ``asyncio.run``).

    Args:
        host, port: where to listen (``port=0``: a free port).
        on_ready: called with the listening :class:`Sandbox` (read ``.url`` from it).
        kw: the other :class:`Sandbox` arguments (seed, latency_scale, fault_rate, ...).
    """
    sb = Sandbox(host=host, port=port, **kw)
    await sb._astart()
    try:
        if on_ready is not None:
            on_ready(sb)
        await asyncio.Event().wait()
    finally:
        await sb._astop()


def main(argv: Sequence[str] | None = None) -> int:
    """``llmlab sandbox``: run the sandbox in the foreground until Ctrl-C; prints one line with its URL.

    Returns the process exit code (0 after Ctrl-C, 2 on bad arguments, 1 when it cannot listen).
    """
    parser = argparse.ArgumentParser(prog="llmlab sandbox",
                                     description="Run the llmlab sandbox: a simulated LLM provider on loopback.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency-scale", type=float, default=1.0, help="multiplies simulated latencies")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of requests that fail (0..1)")
    parser.add_argument("--fault-kinds", default=None, help=f"comma-separated, from: {','.join(FAULT_KINDS)}")
    parser.add_argument("--datasets-dir", default=None)
    args = parser.parse_args(list(argv) if argv is not None else None)
    kinds = [k for k in args.fault_kinds.split(",") if k.strip()] if args.fault_kinds else None

    def ready(sb: Sandbox) -> None:
        print(f"llmlab sandbox (simulated models: {', '.join(sb.profiles)}) listening on {sb.url} "
              f"- api_base {sb.api_base} - Ctrl-C to stop", flush=True)

    try:
        asyncio.run(serve_forever(args.host, args.port, on_ready=ready, seed=args.seed,
                                  latency_scale=args.latency_scale, fault_rate=args.fault_rate,
                                  fault_kinds=kinds, datasets_dir=args.datasets_dir))
    except KeyboardInterrupt:
        return 0
    except FaultSpecError as exc:
        print(f"llmlab sandbox: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"llmlab sandbox: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

