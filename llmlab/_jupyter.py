"""Run notebooks in a real Jupyter kernel of *this* Python (the demo and the notebook tests)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = [
    "KERNEL_NAME",
    "ensure_kernelspec",
    "execute_notebook",
]

KERNEL_NAME = "llmlab-python"


def ensure_kernelspec() -> str:
    """Write a kernelspec named ``llmlab-python`` that starts ``sys.executable -m ipykernel_launcher`` into a
    private folder on ``JUPYTER_PATH`` (nothing in the user's Jupyter folders changes); returns its name."""
    root = Path(tempfile.gettempdir()) / f"llmlab-jupyter-{os.getuid() if hasattr(os, 'getuid') else 'u'}"
    spec_dir = root / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python (llmlab)", "language": "python", "metadata": {"debugger": False}}
    path, text = spec_dir / "kernel.json", json.dumps(spec)
    if not path.is_file() or path.read_text() != text:  # two processes at once: never a half-written spec
        tmp = spec_dir / f".kernel.json.{os.getpid()}"
        tmp.write_text(text)
        os.replace(tmp, path)
    paths = os.environ.get("JUPYTER_PATH", "")
    if str(root) not in paths.split(os.pathsep):
        os.environ["JUPYTER_PATH"] = os.pathsep.join(p for p in (str(root), paths) if p)
    return KERNEL_NAME


def execute_notebook(path: str | os.PathLike[str], *, output: str | os.PathLike[str] | None = None,
                     timeout_s: int = 600, env: dict[str, str] | None = None, cwd: str | None = None,
                     hooks: dict[str, Any] | None = None) -> Any:
    """Execute a notebook in a fresh kernel (nbclient) and return the executed ``nbformat`` node.

    ``env`` entries are set in this process's environment for the kernel to inherit. ``hooks``: nbclient's
    ``on_notebook_start`` / ``on_cell_start`` / ``on_cell_executed`` / ... callables (the demo prints its steps
    with them). Raises ``nbclient.exceptions.CellExecutionError`` when a cell fails (the notebook is written to
    ``output`` first).
    """
    import nbformat
    from nbclient import NotebookClient

    if env:
        os.environ.update(env)
    nb = nbformat.read(str(path), as_version=4)
    client = NotebookClient(nb, timeout=timeout_s, kernel_name=ensure_kernelspec(),
                            resources={"metadata": {"path": cwd or str(Path(path).parent)}}, **(hooks or {}))
    try:
        client.execute()
    finally:
        if output is not None:
            nbformat.write(nb, str(output))
    return nb
