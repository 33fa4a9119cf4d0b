"""Interactive model comparison in Jupyter (ipywidgets 8): ``llmlab.lab()`` and ``llmlab.compare(run)``.

``compare(run)`` returns a :class:`CompareView`, a widget with three tabs:

- **Answers**: a grid of prompts (rows: one per prompt and sample) × models (columns). Each cell shows the
  answer's first characters, its latency (ms), cost (USD), and badges for cached, error, quality and human
  ratings. Filters (category, model, status, text) and a sort (latency or cost, per row the mean over the models
  shown) narrow the grid; a cell's *details* button shows the full answer, the prompt, the reference, the scores
  and the call's metadata, with rating buttons (good / bad, or 1 to 5 stars, with a comment) saved through
  :meth:`llmlab.store.Store.rate` as the scorer ``human`` (the store's ``quality`` column then takes the latest
  human rating, so the charts and the routing table use it like any other score), and two models' answers to the
  same prompt side by side.
- **Charts**: the comparison charts of :mod:`llmlab.views.plots` (quality vs cost with the routing projection, quality
  per category, latency, cost, errors), rendered when the tab is opened. Figures are those of the recorded calls;
  runs on the sandbox are simulated (the header says so).
- **Routing**: a quality-tolerance slider, a p95 latency limit and a minimum number of scored calls; the routing
  table (:func:`llmlab.routing.routing_table`) and its in-sample projection (:func:`llmlab.routing.project`)
  update live; *Export* writes the LiteLLM config (:func:`llmlab.routing.litellm_config.write_litellm_config`) and shows the path.

The Answers tab also has a *Prepare download* button (the run's calls as CSV or JSON, the same bytes as ``llmlab
export RUN --csv|--json``; :mod:`llmlab.widgets.download`), and the details panel steps between calls (◀ model /
model ▶ / ▲ prompt / ▼ prompt, reachable with Tab and pressed with Enter or Space; :meth:`CompareView.step_selection`).
``compare(run, other=run_b)`` opens the compare-two-runs view instead (:mod:`llmlab.widgets.run_diff`).

``lab()`` returns a :class:`Lab`: pick models (sandbox models, ``@aliases``, any LiteLLM model string), a prompt
set (bundled sets, a DataFrame of the notebook's namespace, a file path) and parameters; *Run* starts the run on
llmlab's background event loop and returns at once (the kernel stays responsive); a progress bar shows calls done,
errors, cost so far and the ETA; *Cancel* stops it, keeping what completed; the results view below fills in live
and re-opens any past run of the store.

Python-side API (what tests and scripts drive)::

    view = llmlab.compare(run)                  # a RunResult, run id / name / prefix, "last", or a results frame
    view.grid_rows                               # the rows shown (all pages), see CompareView.grid_rows
    view.filter_category.value = "arithmetic"    # also filter_model, filter_status, filter_text, sort_by
    view.select(call_id); view.detail_html.value # the full answer, prompt, reference and scores (escaped)
    view.rate(call_id, True); view.good_button.click(); view.star_buttons[3].click()   # saved as 'human'
    view.tolerance.value = 0.05; view.routing_table; view.projection
    view.export_path.value = "routing.yaml"; view.export_button.click(); view.exported_path
    view.next_call_button.click(); view.step_selection(0, 1)   # the next model's answer; the next prompt
    view.download.format.value = "json"; view.download.prepare()   # a data: link in view.download.link_html
    llmlab.compare(run, other="last")             # two runs: paired differences per model, changed answers
    lab = llmlab.lab(); lab.run_button.click(); lab.wait(); lab.view   # or lab.start() / lab.cancel()

Safety (DESIGN.md, decision 6): model answers, prompts, references, model ids, comments and error text are
untrusted. They reach the browser only as text: escaped with :func:`html.escape` inside the HTML widgets' own
markup, or as the text of buttons, dropdown options, tooltips and Output streams (which the frontend sets as
text). An answer holding ``<script>``, ``<img onerror=...>`` or a ``javascript:`` link shows those characters and
runs nothing.

Threads (DESIGN.md, decision 2): a lab run executes on llmlab's background loop; rows arrive through the runner's
``on_result`` callback on that loop's thread, are queued, and a periodic updater on the same loop merges them and
changes widget traits at most every ``live_refresh_s`` seconds. Nothing here prints or displays from a worker
thread (charts go into an ``Output`` widget by setting its ``outputs`` trait).
"""

from __future__ import annotations

from llmlab.widgets.cells import RESULT_COLUMNS, frame_from_records, records_from_frame
from llmlab.widgets.compare import CompareView, compare
from llmlab.widgets.grid import grid_rows, status_match
from llmlab.widgets.lab import Lab, lab

__all__ = ["CompareView", "Lab", "compare", "lab", "records_from_frame", "frame_from_records", "RESULT_COLUMNS",
           "grid_rows", "status_match"]
