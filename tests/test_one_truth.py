"""One run, one routing table: the Python API, the report, the widgets' routing tab, the CLI and the exported
config all start from ROUTING_DEFAULTS, and the report states the settings it used."""

from __future__ import annotations

import re

import yaml

import llmlab
from llmlab.cli import main
from llmlab.routing import routing_table
from llmlab.routing.table import ROUTING_DEFAULTS


def _pairs(table):
    return [(r["category"], r["model"]) for _, r in table.iterrows()]


def test_every_surface_shows_the_same_table_for_one_run(sandbox, tmp_path, capsys):
    prompts = llmlab.load_prompts("quickstart").filter(per_category=6)
    res = llmlab.run(prompts, ["sandbox/frontier", "sandbox/fast", "sandbox/tiny"], progress=False)
    api = routing_table(res.results)
    assert api.attrs["routing_settings"]["tolerance"] == ROUTING_DEFAULTS["tolerance"]

    from llmlab.widgets import compare

    view = compare(res.run_id)
    assert _pairs(view.routing_table) == _pairs(api)
    assert view.tolerance.value == ROUTING_DEFAULTS["tolerance"] and view.min_samples.value == ROUTING_DEFAULTS["min_n"]

    path = llmlab.report(res.run_id, tmp_path / "r.html")
    html = path.read_text()
    for category, model in _pairs(api):
        assert re.search(rf"<td>{re.escape(category)}</td>\s*<td>{re.escape(model)}</td>", html), (category, model)
    assert f"tolerance = {ROUTING_DEFAULTS['tolerance']}" in html and f"min_n = {ROUTING_DEFAULTS['min_n']}" in html

    cfg_path = tmp_path / "routing.yaml"
    capsys.readouterr()
    assert main(["route", res.run_id, "--export", str(cfg_path)]) == 0
    cfg = yaml.safe_load(cfg_path.read_text())
    ids = {d["model_info"]["id"] for d in cfg["model_list"]}
    for category, model in _pairs(api):  # the deployment serving each category is the table's model
        assert f"llmlab-router--{_slug(category)}--{_slug(model)}" in ids, (category, model)


def _slug(text):
    return re.sub(r"[^a-zA-Z0-9]+", "-", text).strip("-").lower()
