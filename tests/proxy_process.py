"""Start the real LiteLLM proxy (installed from the lock) on loopback, offline, for tests.

``start_proxy(config_path, env)`` runs ``litellm --config ... --host 127.0.0.1 --port N`` in a subprocess with
``LITELLM_MASTER_KEY`` set and no database, waits until it answers, and returns a :class:`Proxy` (``url``,
``master_key``, ``chat(...)``, ``stop()``). Skips the calling test when the proxy extra is not installed (for
example under ``make test-latest`` with a LiteLLM release whose proxy extra is not on the registry).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

MASTER_KEY = "sk-llmlab-test-master"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proxy_available() -> str | None:
    """None when the proxy can be started here, else why not."""
    if os.environ.get("LLMLAB_SKIP_PROXY"):
        return os.environ["LLMLAB_SKIP_PROXY"]
    try:
        import litellm.proxy.proxy_server  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        return f"the LiteLLM proxy does not import here ({type(exc).__name__}: {exc})"
    return None


class Proxy:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.proc, self.port, self.log_path = proc, port, log_path
        self.url = f"http://127.0.0.1:{port}"
        self.master_key = MASTER_KEY

    def chat(self, body: dict[str, Any], timeout_s: float = 60.0) -> tuple[int, dict[str, Any], dict[str, str]]:
        """POST /v1/chat/completions; returns (status, JSON body, response headers)."""
        req = urllib.request.Request(f"{self.url}/v1/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {self.master_key}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                return resp.status, json.loads(resp.read()), dict(resp.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}"), dict(exc.headers)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def start_proxy(config_path: str | Path, env: dict[str, str], log_dir: Path, timeout_s: float = 120.0) -> Proxy:
    why = proxy_available()
    if why:
        pytest.skip(why)
    exe = shutil.which("litellm", path=str(Path(sys.executable).parent)) or shutil.which("litellm")
    if exe is None:
        pytest.skip("the litellm command is not installed")
    port = _free_port()
    full_env = {**os.environ, **env, "LITELLM_MASTER_KEY": MASTER_KEY, "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                "LITELLM_TELEMETRY": "False", "LITELLM_DONT_SHOW_FEEDBACK_BOX": "True", "NO_PROXY": "*"}
    full_env.pop("DATABASE_URL", None)
    log_path = log_dir / f"proxy-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([exe, "--config", str(config_path), "--host", "127.0.0.1", "--port", str(port),
                                 "--num_workers", "1"], env=full_env, stdout=log, stderr=subprocess.STDOUT)
    proxy = Proxy(proc, port, log_path)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the LiteLLM proxy exited with {proc.returncode}:\n{proxy.log()}")
        try:
            with urllib.request.urlopen(f"{proxy.url}/health/liveliness", timeout=2) as resp:
                if resp.status == 200:
                    return proxy
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.5)
    proxy.stop()
    raise RuntimeError(f"the LiteLLM proxy did not answer within {timeout_s:g} s:\n{proxy.log()}")
