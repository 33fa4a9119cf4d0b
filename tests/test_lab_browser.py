"""The widgets in a real browser: JupyterLab on loopback, headless Chromium driven by Playwright.

A copy of notebooks/widgets.ipynb (sandbox run with a hostile answer, ``llmlab.lab()``, ``llmlab.compare(run)``) is
executed in JupyterLab; the test checks that the grid shows every model's answer, that a rating clicked in the
browser reaches the DuckDB store, that the hostile answer shows as text and runs nothing, that the lab's Run
button fills its results view, and saves a screenshot to reports/lab_screenshot.png.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
REPORTS = REPO / "reports"
NOTEBOOK = REPO / "notebooks" / "widgets.ipynb"
CHROMIUM = Path("/usr/bin/chromium")
HOSTILE_ANSWER = ('<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
                  '<a href="javascript:window.__pwned=3">x</a>')
MODELS = ["sandbox/frontier", "sandbox/fast", "sandbox/tiny"]
RUN_NAME = "widgets-demo"


def _missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not found (install Debian's chromium)"
    for module, package in (("playwright", "playwright"), ("jupyterlab", "jupyterlab"),
                            ("jupyterlab_widgets", "jupyterlab_widgets"), ("ipykernel", "ipykernel")):
        if importlib.util.find_spec(module) is None:
            return f"the Python package {package} is not installed"
    return None


pytestmark = [pytest.mark.browser, pytest.mark.skipif(_missing() is not None, reason=str(_missing()))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


class JupyterLab:
    """JupyterLab started on 127.0.0.1 with its config, data and runtime folders (and the kernelspec) in tmp."""

    def __init__(self, tmp: Path, db_path: Path) -> None:
        self.root = tmp / "root"
        self.root.mkdir()
        shutil.copy(NOTEBOOK, self.root / "widgets.ipynb")
        config, data, runtime = tmp / "jupyter-config", tmp / "jupyter-data", tmp / "jupyter-runtime"
        _write_json(data / "kernels" / "python3" / "kernel.json", {
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (llmlab test)", "language": "python", "metadata": {"debugger": False}})
        settings = config / "lab" / "user-settings" / "@jupyterlab"
        _write_json(settings / "apputils-extension" / "notification.jupyterlab-settings",
                    {"fetchNews": "false", "checkForUpdates": False})
        _write_json(settings / "notebook-extension" / "tracker.jupyterlab-settings", {"windowingMode": "none"})
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("LLMLAB_SANDBOX_API_BASE", "LLMLAB_MODELS", "JUPYTER_PATH")}
        self.env.update(JUPYTER_CONFIG_DIR=str(config), JUPYTER_DATA_DIR=str(data), JUPYTER_RUNTIME_DIR=str(runtime),
                        IPYTHONDIR=str(tmp / "ipython"), LLMLAB_DB=str(db_path),
                        LITELLM_LOCAL_MODEL_COST_MAP="True", PYTHONUNBUFFERED="1")
        self.port = _free_port()
        self.token = secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / "jupyterlab.log"
        self.proc: subprocess.Popen | None = None

    def labextensions(self) -> str:
        out = subprocess.run([sys.executable, "-m", "jupyter", "labextension", "list"], env=self.env,
                             capture_output=True, text=True, timeout=60)
        return out.stdout + out.stderr

    def start(self, timeout_s: float = 90.0) -> None:
        cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
               f"--ServerApp.root_dir={self.root}", "--LabApp.news_url=None", "--ServerApp.disable_check_xsrf=True",
               "--LabApp.expose_app_in_browser=True"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers: JupyterLab refuses root without this
            cmd.append("--allow-root")
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True, cwd=self.root)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"JupyterLab exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.base}/api/status?token={self.token}", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        raise AssertionError(f"JupyterLab did not answer within {timeout_s:.0f} s:\n{self.log_tail()}")

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:  # shuts the kernels down too
                req = urllib.request.Request(f"{self.base}/api/shutdown?token={self.token}", method="POST")
                urllib.request.urlopen(req, timeout=10).close()
            except (urllib.error.URLError, OSError):
                pass
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(timeout=10)
        self._log.close()


def _norm(text: str) -> str:
    return " ".join(str(text).split())


def _wait_for(predicate, timeout_s: float, what: str, interval_s: float = 0.25):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what} (last value: {last!r})")


def test_widgets_in_jupyterlab(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    REPORTS.mkdir(exist_ok=True)
    db_path = tmp_path / "llmlab.duckdb"
    server = JupyterLab(tmp_path, db_path)
    extensions = server.labextensions()
    assert "@jupyter-widgets/jupyterlab-manager" in extensions, (
        "ipywidgets' JupyterLab extension is missing: install jupyterlab_widgets in this venv\n" + extensions)
    dialogs: list[str] = []
    page = None
    try:
        server.start()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            try:
                page = browser.new_page(viewport={"width": 1500, "height": 1300})
                page.on("dialog", lambda d: (dialogs.append(f"{d.type}: {d.message}"), d.dismiss()))
                page.set_default_timeout(30_000)
                _drive(page, server, db_path, dialogs)
            except BaseException as exc:
                shot = REPORTS / "lab_screenshot_failure.png"
                try:
                    page.screenshot(path=str(shot)) if page is not None else None
                    where = f"screenshot: {shot}"
                except Exception as shot_exc:  # noqa: BLE001
                    where = f"(no screenshot: {shot_exc})"
                raise AssertionError(f"{exc}\n{where}\nJupyterLab log (tail):\n{server.log_tail()}") from exc
            finally:
                browser.close()
    finally:
        server.stop()


def _drive(page, server: JupyterLab, db_path: Path, dialogs: list[str]) -> None:  # noqa: ANN001
    import llmlab

    page.goto(f"{server.base}/lab/tree/widgets.ipynb?token={server.token}", wait_until="domcontentloaded",
              timeout=90_000)
    page.wait_for_function("() => window.jupyterapp && document.querySelector('.jp-Notebook .jp-Cell')",
                           timeout=90_000)
    page.wait_for_function(
        """() => { const w = window.jupyterapp.shell.currentWidget;
                   const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
                   return !!k && k.status === 'idle'; }""", timeout=90_000)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")

    # wait for the compare view of the notebook's run (the lab's own view appears only after its Run click)
    def compare_ready():  # noqa: ANN202
        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'], "
                              ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']")
        for i in range(errors.count()):
            text = errors.nth(i).inner_text()
            if "Traceback" in text or "Error" in text:
                raise AssertionError(f"a notebook cell failed:\n{text[-3000:]}")
        views = page.locator(".llmlab-compare:not(.llmlab-lab .llmlab-compare)")
        return views.count() > 0 and views.first.locator(".llmlab-cell").count() >= len(MODELS)

    _wait_for(compare_ready, 120, "the compare view to render")
    view = page.locator(".llmlab-compare:not(.llmlab-lab .llmlab-compare)").first
    run_id = re.search(r"llmlab-run-(\S+)", view.get_attribute("class") or "").group(1)
    store = llmlab.Store(db_path)
    meta = store.run(run_id)
    assert meta["name"] == RUN_NAME
    results = store.results(run_id)
    n_prompts = results["prompt_id"].nunique()
    assert len(results) == n_prompts * len(MODELS) and (results["status"] == "ok").all()

    # every model's answer is in the grid, in that model's column
    headers = [_norm(t) for t in view.locator(".llmlab-model-header .llmlab-model-name").all_inner_texts()]
    assert headers == MODELS, headers
    summaries = [_norm(t) for t in view.locator(".llmlab-model-header").all_inner_texts()]
    assert all("quality " in t and "p50 " in t for t in summaries), summaries   # the per-model header
    for i, model in enumerate(MODELS):
        cells = [_norm(t) for t in view.locator(f".llmlab-cell.llmlab-col-{i} .llmlab-answer").all_inner_texts()]
        assert len(cells) == n_prompts, f"{model}: {len(cells)} cells shown for {n_prompts} prompts"
        for answer in results.loc[results["model"] == model, "response"]:
            snippet = _norm(answer)[:60]
            assert any(snippet in c for c in cells), f"{model}'s answer {snippet!r} not in the grid: {cells}"

    # the hostile answer is visible as text, and nothing ran
    hostile = view.locator(".llmlab-answer", has_text="<script>window.__pwned=1</script>")
    assert hostile.count() == len(MODELS)
    assert HOSTILE_ANSWER in _norm(hostile.first.inner_text())
    assert hostile.first.is_visible()
    assert page.evaluate("() => typeof window.__pwned") == "undefined"
    assert page.locator("img[src='x']").count() == 0
    assert page.locator("a[href^='javascript']").count() == 0
    assert view.locator("script").count() == 0

    # a rating clicked in the browser reaches the store
    view.locator(".llmlab-cell.llmlab-col-0 .llmlab-open").first.click()
    call_id = _norm(view.locator(".llmlab-detail .llmlab-call-id").inner_text(timeout=30_000))
    assert call_id in set(results["call_id"]), call_id
    view.locator(".llmlab-rating-comment textarea").fill("clear <b>answer</b>")
    view.locator(".llmlab-rate-good").click()
    view.locator(".llmlab-rated").wait_for(timeout=30_000)

    def human_rows():  # noqa: ANN202
        rows = store.sql("SELECT call_id, scorer, score, comment FROM scores WHERE kind = 'human' AND run_id = ?",
                         [run_id])
        return rows.values.tolist() or None

    assert _wait_for(human_rows, 30, "the rating in the store") == [[call_id, "human", 1.0, "clear <b>answer</b>"]]
    assert store.results(run_id).set_index("call_id").loc[call_id, "quality"] == 1.0

    # show the hostile answer's details and keep the picture
    view.locator(".llmlab-cell.llmlab-col-1", has_text="window.__pwned=1").locator(".llmlab-open").click()
    view.locator(".llmlab-detail .llmlab-full-answer", has_text="window.__pwned=1").wait_for(timeout=30_000)
    assert page.evaluate("() => typeof window.__pwned") == "undefined"
    view.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.screenshot(path=str(REPORTS / "lab_screenshot.png"))

    # the lab: Run fills its own results view from the background loop while the kernel stays free
    lab = page.locator(".llmlab-lab").first
    lab.locator(".llmlab-run-button").click()
    lab.locator(".llmlab-progress", has_text="finished").wait_for(timeout=90_000)
    lab_answers = lab.locator(".llmlab-compare .llmlab-answer")
    _wait_for(lambda: lab_answers.count() == 3 * 2, 30, "the lab's grid (3 prompts × 2 models)")
    assert lab.locator(".llmlab-compare .llmlab-badge-pending").count() == 0
    lab_run = re.search(r"llmlab-run-(\S+)", lab.locator(".llmlab-compare").first.get_attribute("class")).group(1)
    assert store.run(lab_run)["status"] == "finished"
    assert page.evaluate("() => typeof window.__pwned") == "undefined"
    assert dialogs == [], dialogs
