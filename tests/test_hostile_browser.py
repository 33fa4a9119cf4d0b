"""Hostile model output stays text on every notebook surface, proved in headless Chromium.

A notebook (built here) runs in a real kernel: the ``%%llm`` magic in each ``-f`` format, the static card view of
a run, ``llmlab.compare(run)`` and the run's summary display, all on answers the sandbox echoes verbatim: a
``<script>``, an ``onerror`` handler, a ``javascript:`` link, Markdown that hides a ``javascript:`` link, an
``ontoggle`` handler, HTML in a model's error message. The executed notebook is exported with nbconvert
(``HTMLExporter``, the "export as HTML" path) and opened in Chromium: no script ran, no dialog opened, no
``javascript:`` link or event-handler attribute exists in the page, and the payloads are visible as text.
(The widgets in live JupyterLab are covered by ``tests/test_lab_browser.py``, the report by
``tests/test_report_browser.py``.)
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

from llmlab._jupyter import execute_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
REPORTS_DIR = Path(__file__).resolve().parent.parent / "reports"
PAYLOADS = [
    "<script>window.__pwned=1;alert(1)</script>",
    '<img src=x onerror="window.__pwned=2;alert(2)">',
    '<a href="javascript:window.__pwned=3">click a</a>',
    "[click md](javascript:window.__pwned=4)",
    '<details open ontoggle="window.__pwned=5;alert(5)">d</details>',
    '<svg onload="window.__pwned=6"></svg>',
]
HOSTILE = "SANDBOX_ECHO:" + " ".join(PAYLOADS)
FORMATS = ("text", "markdown", "json", "code")


def _notebook() -> nbformat.NotebookNode:
    cells = [nbformat.v4.new_code_cell("import llmlab\n%load_ext llmlab")]
    for fmt in FORMATS:
        cells.append(nbformat.v4.new_code_cell(f"%%llm sandbox/fast sandbox/tiny -f {fmt}\n{HOSTILE}"))
    cells.append(nbformat.v4.new_code_cell(
        "res = llmlab.run([" + repr(HOSTILE) + ", 'SANDBOX_ECHO:fine'], ['sandbox/fast', 'sandbox/tiny'])\n"
        "res"))
    cells.append(nbformat.v4.new_code_cell(
        "from IPython.display import display\n"
        "from llmlab.views.display import cards_bundle, cards_from_rows, grid_bundle\n"
        "rows = res.results.to_dict('records')\n"
        "for fmt in " + repr(FORMATS) + ":\n"
        "    display(cards_bundle(cards_from_rows(rows), fmt=fmt), raw=True)\n"
        "    display(grid_bundle(res.results, fmt=fmt), raw=True)"))
    cells.append(nbformat.v4.new_code_cell("llmlab.compare(res.run_id)"))
    return nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3",
                                                                          "display_name": "Python 3"}})


def test_hostile_output_stays_text_in_every_notebook_surface_exported_to_html(tmp_path, monkeypatch):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    from nbconvert import HTMLExporter

    for k in ("LLMLAB_SANDBOX_API_BASE", "LLMLAB_MODELS"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("LLMLAB_DB", str(tmp_path / "hostile.duckdb"))
    src = tmp_path / "hostile.ipynb"
    nbformat.write(_notebook(), str(src))
    nb = execute_notebook(src, output=tmp_path / "hostile.executed.ipynb", timeout_s=240, cwd=str(tmp_path))
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    body, _ = HTMLExporter().from_notebook_node(nb)
    page_path = tmp_path / "hostile.html"
    page_path.write_text(body, encoding="utf-8")

    dialogs, page_errors = [], []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on("pageerror", lambda e: page_errors.append(str(e)))
            # nothing from the network: the exported page's CDN scripts (require.js, MathJax) are not ours
            page.route("http*://**", lambda route: route.abort())
            page.goto(page_path.resolve().as_uri(), wait_until="load")
            page.wait_for_timeout(800)  # let any injected handler fire before judging
            # open every <details> (ours hold the long answers): an ontoggle handler would fire now
            page.evaluate("() => document.querySelectorAll('details').forEach(d => d.open = true)")
            page.wait_for_timeout(300)
            state = page.evaluate("""() => {
                const outputs = [...document.querySelectorAll('.jp-OutputArea-output, .output_area')];
                const inOutputs = sel => outputs.reduce((n, o) => n + o.querySelectorAll(sel).length, 0);
                const handlers = outputs.reduce((n, o) => n + [...o.querySelectorAll('*')].filter(
                    el => [...el.attributes].some(a => a.name.toLowerCase().startsWith('on'))).length, 0);
                return {pwned: typeof window.__pwned, text: document.body.innerText,
                        js_links: inOutputs('a[href^="javascript:"]'), scripts_with_pwned:
                        // executable scripts only: widget state travels as <script type="application/...json">
                        [...document.scripts].filter(s => (!s.type || /javascript|module/.test(s.type))
                                                          && s.textContent.includes('window.__pwned=1')).length,
                        images: inOutputs('img[src="x"]'), svgs: inOutputs('svg[onload]'), handlers};
            }""")
            REPORTS_DIR.mkdir(exist_ok=True)
            page.screenshot(path=str(REPORTS_DIR / "hostile_notebook_screenshot.png"), full_page=False)
        finally:
            browser.close()
    assert state["pwned"] == "undefined"
    assert dialogs == []
    assert state["js_links"] == 0 and state["images"] == 0 and state["svgs"] == 0 and state["handlers"] == 0
    assert state["scripts_with_pwned"] == 0
    # the payloads are shown, as text, by the surfaces
    for payload in ("<script>window.__pwned=1;alert(1)</script>", "onerror=", "javascript:window.__pwned=3"):
        assert payload in state["text"], payload
