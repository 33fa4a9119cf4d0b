"""``make demo``: the main job on the sandbox, with no API key and no network.

Executes ``notebooks/quickstart.ipynb`` in a real Jupyter kernel (nbclient): the bundled prompt set is fanned out
over the four sandbox models, every call is recorded in ``reports/llmlab.duckdb`` (started afresh each time), the
comparison report is written to ``reports/quickstart.html`` and the routing table is exported as a LiteLLM proxy
config to ``reports/routing.yaml``; the executed notebook is kept as ``reports/quickstart.executed.ipynb``.
With ``LLMLAB_MODELS`` set (comma-separated LiteLLM model strings) and their keys in the environment, the same
notebook runs on real providers.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

__all__ = [
    "ROOT",
    "main",
]

ROOT = Path(__file__).resolve().parent.parent


class _Steps:
    """Prints the demo's steps as they happen: the kernel start, then each section of the notebook (its markdown
    heading) with the seconds its cells took."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.section = "set-up"
        self.section_t0: float | None = None
        self.timings: list[tuple[str, float]] = []

    def _close_section(self) -> None:
        if self.section_t0 is not None:
            took = time.perf_counter() - self.section_t0
            self.timings.append((self.section, took))
            print(f"  {self.section:<40} {took:6.1f} s", flush=True)
        self.section_t0 = None

    def on_notebook_start(self, notebook: object = None, **_: object) -> None:
        print(f"  {'Jupyter kernel started':<40} {time.perf_counter() - self.t0:6.1f} s", flush=True)

    def on_cell_start(self, cell: object = None, cell_index: int = 0, **_: object) -> None:
        source = str(getattr(cell, "source", "") or "")
        if getattr(cell, "cell_type", "") == "markdown":
            heading = next((ln.lstrip("#").strip() for ln in source.splitlines() if ln.startswith("#")), None)
            if heading:
                self._close_section()
                self.section = heading[:40]
        elif self.section_t0 is None:
            self.section_t0 = time.perf_counter()

    def on_notebook_complete(self, notebook: object = None, **_: object) -> None:
        self._close_section()

    def hooks(self) -> dict[str, object]:
        return {"on_notebook_start": self.on_notebook_start, "on_cell_start": self.on_cell_start,
                "on_notebook_complete": self.on_notebook_complete}


def main() -> int:
    from llmlab._jupyter import execute_notebook

    reports = ROOT / "reports"
    reports.mkdir(exist_ok=True)
    db = reports / "llmlab.duckdb"
    for f in (db, db.with_name(db.name + ".wal")):
        if f.exists():
            f.unlink()
    t0 = time.perf_counter()
    env = {"LLMLAB_DB": str(db), "LLMLAB_REPORTS_DIR": str(reports)}
    print(f"llmlab demo: executing notebooks/quickstart.ipynb in a Jupyter kernel (store: {db})", flush=True)
    steps = _Steps()
    execute_notebook(ROOT / "notebooks" / "quickstart.ipynb", output=reports / "quickstart.executed.ipynb", env=env,
                     timeout_s=900, hooks=steps.hooks())
    from llmlab.store import Store

    store = Store(db)
    run = store.runs().iloc[0]
    print(f"llmlab demo finished in {time.perf_counter() - t0:.0f}s: run {run['run_id']} ({run['n_calls']} calls, "
          f"{run['n_ok']} ok, {run['n_error']} errors; simulated sandbox figures)")
    print(f"  report:          {reports / 'quickstart.html'}")
    print(f"  LiteLLM config:  {reports / 'routing.yaml'}")
    print(f"  database:        {db}   (try: .venv/bin/llmlab --db {db.relative_to(ROOT)} runs)")
    print(f"  executed notebook: {reports / 'quickstart.executed.ipynb'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
