"""``notebooks/magic.ipynb`` executed in a real IPython kernel (ipykernel, via nbclient), the interrupt included.

The kernel runs this venv's Python (a kernel spec written under a tmp ``JUPYTER_PATH``), starts its own sandbox
with ``llmlab.ensure_sandbox`` and records into this test's tmp store. The cell tagged ``interrupt`` is stopped
with the kernel manager's ``interrupt_kernel()`` (SIGINT, the stop button) from a thread while it waits on a
model; the notebook itself then asserts that re-running the cell made only the missing call.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "magic.ipynb"
KERNEL_NAME = "llmlab-test-python"
INTERRUPT_AFTER_S = 3.0  # fast and tiny answer in milliseconds; frontier holds its request for 15 s


def _kernel_spec(root: Path) -> None:
    spec = root / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "llmlab test (this venv)", "language": "python",
    }))


def _outputs(cell) -> list:
    return list(cell.get("outputs", []))


def _html(cell) -> str:
    return "".join(o.get("data", {}).get("text/html", "") for o in _outputs(cell))


def _text(cell) -> str:
    parts = []
    for o in _outputs(cell):
        if o.get("output_type") == "stream":
            parts.append(o.get("text", ""))
        parts.append(o.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def _errors(cell) -> list[str]:
    return [o.get("ename") for o in _outputs(cell) if o.get("output_type") == "error"]


def _usage_error(cell) -> str:
    """The one-line message IPython prints for a UsageError (on stderr: no traceback, the cell fails)."""
    return "".join(o.get("text", "") for o in _outputs(cell) if o.get("output_type") == "stream"
                   and o.get("name") == "stderr" and "UsageError:" in o.get("text", ""))


def _find(nb, start: str):
    return next(c for c in nb.cells if c.cell_type == "code" and c.source.startswith(start))


@pytest.mark.slow
def test_magic_notebook_runs_in_a_real_kernel(tmp_path, monkeypatch):
    jupyter = tmp_path / "jupyter"
    _kernel_spec(jupyter)
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(jupyter))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.delenv("LLMLAB_SANDBOX_API_BASE", raising=False)
    monkeypatch.delenv("LLMLAB_MODELS", raising=False)
    work = tmp_path / "work"
    work.mkdir()

    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name=KERNEL_NAME, timeout=90, startup_timeout=60,
                                     resources={"metadata": {"path": str(work)}})
    interrupted = []

    def interrupt() -> None:
        asyncio.run(client.km.interrupt_kernel())
        interrupted.append(True)

    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            timer = None
            if "interrupt" in cell.metadata.get("tags", []):
                timer = threading.Timer(INTERRUPT_AFTER_S, interrupt)
                timer.start()
            client.execute_cell(cell, index)  # raises CellExecutionError unless tagged raises-exception
            if timer is not None:
                timer.join()
    assert interrupted == [True]

    # the two forms of the issue
    answers = _find(nb, "%%llm sandbox/frontier sandbox/fast -o answers")
    assert _html(answers).count('class="llmlab-card"') == 2 and not _errors(answers)
    grid = _find(nb, "%%llm @cheap sandbox/balanced --prompts questions_df")
    assert 'class="llmlab-grid"' in _html(grid)
    assert "sandbox/tiny: 3 calls" in _text(grid) and "sandbox/balanced: 3 calls" in _text(grid)

    # model output shown as text: escaped in HTML, wherever it appears in the notebook
    echo = _find(nb, "%%llm sandbox/fast sandbox/tiny -f markdown --stream")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in _html(echo)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert "<script" not in _html(cell).lower(), cell.source

    # plans and errors
    dry = _find(nb, "%%llm @sandbox -n 2 --dry-run")
    assert "8 calls" in _text(dry) and "nothing was called" in _text(dry)
    budget = _usage_error(_find(nb, "%%llm sandbox/frontier --budget"))
    assert "exceeds --budget" in budget and len(budget.strip().splitlines()) == 1
    unknown = _usage_error(_find(nb, "%%llm sandbox/fast no-such-model"))
    assert "no-such-model" in unknown and len(unknown.strip().splitlines()) == 1

    # line magics
    assert "OPENAI_API_KEY" in _text(_find(nb, "%llm models"))
    assert "sandbox/fast" in _text(_find(nb, "%llm alias duo"))
    assert "interrupt-demo" not in _text(_find(nb, "%llm runs 5"))  # listed before that run existed
    assert 'class="llmlab-card"' in _html(_find(nb, "%llm show answers"))
    assert "sandbox/balanced" in _text(_find(nb, '%llm sql "SELECT model'))
    assert (work / "routing.yaml").exists()

    # the interrupt: cancelled in flight, completed answers kept, re-run made only the missing call
    stopped = _find(nb, "%%llm sandbox/frontier sandbox/fast sandbox/tiny --name interrupt-demo -o partial")
    assert _errors(stopped) == ["KeyboardInterrupt"]
    assert "interrupted" in _text(stopped)
    final = _find(nb, "made = sb.request_count()")
    assert not _errors(final)
    assert "the re-run made 1 call(s); 2 answer(s) came from the cache" in _text(final)
