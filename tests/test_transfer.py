"""Runs as files: export → import round-trips a run exactly, a second import adds nothing, a newer export is
refused, and ``Store.attach`` compares two stores (or a folder of exported runs) in one SQL query."""

from __future__ import annotations

import json

import pytest

import llmlab
from llmlab.cli import main
from llmlab.errors import SchemaVersionError, StoreError
from llmlab.store import Store
from llmlab.transfer import calls_checksum_sql, export_run, import_run


def _small():
    """18 quickstart prompts, 3 per category: enough for every table of a run, a fraction of the time."""
    return llmlab.load_prompts("quickstart").filter(per_category=3)


def _checksums(store: Store, run_id: str) -> dict:
    """Row counts of every table of the run and checksums of its answers and costs."""
    q = f"(SELECT * FROM call_records WHERE run_id = '{run_id}')"
    (md5,) = store.sql(calls_checksum_sql(q)).iloc[0]
    agg = store.sql(
        "SELECT count(*) AS n, sum(cost_usd) AS cost, string_agg(md5(coalesce(response, '')), '' ORDER BY call_id) "
        "AS answers, count(*) FILTER (WHERE status = 'error') AS n_err FROM call_records WHERE run_id = ?",
        [run_id]).iloc[0]
    n_prompts = int(store.sql("SELECT count(*) AS n FROM prompts WHERE run_id = ?", [run_id])["n"][0])
    n_scores = int(store.sql("SELECT count(*) AS n FROM scores WHERE run_id = ?", [run_id])["n"][0])
    return {"md5": md5, "n": int(agg["n"]), "cost": round(float(agg["cost"]), 12), "answers": agg["answers"],
            "n_err": int(agg["n_err"]), "prompts": n_prompts, "scores": n_scores}


@pytest.fixture
def recorded(sandbox, tmp_path):
    """A recorded run with answers, costs, an error row, auto scores and a human rating."""
    store = Store(tmp_path / "a.duckdb")
    sandbox.inject("500", model="tiny", times=1)
    res = llmlab.run(_small(), ["sandbox/frontier", "sandbox/tiny"], store=store, progress=False, max_attempts=1,
                     name="shared")
    first = res.results["call_id"].iloc[0]
    store.rate(first, 4, scale="stars", comment="fine")
    return store, res.run_id


def test_export_then_import_round_trips_the_run_exactly(recorded, tmp_path):
    store, run_id = recorded
    before = _checksums(store, run_id)
    assert before["n_err"] == 1 and before["scores"] > 0  # the error row and the scores travel too
    folder = export_run(run_id, tmp_path / "shared", store=store)
    assert folder == tmp_path / "shared" / run_id
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["schema_version"] == store.schema_version()
    assert manifest["rows"]["calls"] == before["n"]
    assert sorted(p.name for p in folder.iterdir()) == ["calls.parquet", "manifest.json", "pairwise_verdicts.parquet",
                                                        "prompts.parquet", "routing_decisions.parquet",
                                                        "runs.parquet", "scores.parquet"]

    other = Store(tmp_path / "b.duckdb")
    (report,) = import_run(folder, store=other)
    assert report["verified"] and report["calls_added"] == before["n"] and report["run_added"]
    assert _checksums(other, run_id) == before
    # the run's metadata and its quality view come through as well
    assert other.run(run_id)["name"] == "shared" and other.run(run_id)["models"] == store.run(run_id)["models"]
    # exporting again (after a new rating) replaces the run's folder whole; nothing half-written is left beside it
    store.rate(store.results(run_id)["call_id"].iloc[1], True)
    again = export_run(run_id, tmp_path / "shared", store=store)
    assert again == folder and [p.name for p in (tmp_path / "shared").iterdir()] == [run_id]
    assert json.loads((folder / "manifest.json").read_text())["rows"]["scores"] == before["scores"] + 1
    assert not [p for p in folder.iterdir() if p.suffix not in (".parquet", ".json")]
    import_run(folder, store=other)
    assert _checksums(other, run_id)["scores"] == before["scores"] + 1
    cols = ["call_id", "status", "response", "cost_usd", "quality", "human_score"]
    a = store.results(run_id)[cols].sort_values("call_id").reset_index(drop=True)
    b = other.results(run_id)[cols].sort_values("call_id").reset_index(drop=True)
    assert a.equals(b)


def test_importing_the_same_run_twice_adds_nothing(recorded, tmp_path):
    store, run_id = recorded
    folder = export_run(run_id, tmp_path / "shared", store=store)
    other = Store(tmp_path / "b.duckdb")
    import_run(folder, store=other)
    once = _checksums(other, run_id)
    (again,) = import_run(tmp_path / "shared", store=other)  # the parent folder: every run in it
    assert again["calls_added"] == again["prompts_added"] == again["scores_added"] == 0 and not again["run_added"]
    assert again["verified"]
    assert _checksums(other, run_id) == once
    assert int(other.sql("SELECT count(*) AS n FROM runs")["n"][0]) == 1
    # importing into the store it came from is a no-op too
    (home,) = import_run(folder, store=store)
    assert home["calls_added"] == 0 and home["verified"]


def test_a_newer_export_is_refused_and_nothing_is_imported(recorded, tmp_path):
    store, run_id = recorded
    folder = export_run(run_id, tmp_path / "shared", store=store)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["schema_version"] = 10_000
    (folder / "manifest.json").write_text(json.dumps(manifest))
    other = Store(tmp_path / "b.duckdb")
    with pytest.raises(SchemaVersionError, match="newer than this llmlab"):
        import_run(folder, store=other)
    assert int(other.sql("SELECT count(*) AS n FROM call_records")["n"][0]) == 0
    with pytest.raises(SchemaVersionError):
        other.attach(tmp_path / "shared", "team")
    with pytest.raises(StoreError, match="no exported run"):
        import_run(tmp_path, store=other)


def test_attach_compares_two_stores_in_one_query(sandbox, tmp_path):
    mine = Store(tmp_path / "mine.duckdb")
    theirs = Store(tmp_path / "theirs.duckdb")
    llmlab.run(_small(), ["sandbox/frontier"], store=mine, progress=False)
    llmlab.run(_small(), ["sandbox/tiny"], store=theirs, progress=False)
    expected_theirs = float(theirs.sql("SELECT sum(cost_usd) AS c FROM calls")["c"][0])
    assert mine.attach(tmp_path / "theirs.duckdb", "theirs") == "theirs"
    frame = mine.sql("""
        SELECT 'mine' AS store, model, count(*) AS n, sum(cost_usd) AS cost FROM calls GROUP BY model
        UNION ALL
        SELECT 'theirs', model, count(*), sum(cost_usd) FROM theirs.calls GROUP BY model
        ORDER BY store""")
    assert list(frame["store"]) == ["mine", "theirs"]
    assert list(frame["model"]) == ["sandbox/frontier", "sandbox/tiny"]
    assert frame["cost"][1] == pytest.approx(expected_theirs)
    # read-only: the attached store cannot be written through this handle
    with pytest.raises(Exception, match="(?i)read.only"):
        mine.sql("DELETE FROM theirs.call_records")
    mine.detach("theirs")
    with pytest.raises(Exception):
        mine.sql("SELECT * FROM theirs.calls")


def test_attach_a_folder_of_exported_runs_beside_the_local_store(sandbox, tmp_path):
    team = tmp_path / "team"
    for name, model in (("alice", "sandbox/frontier"), ("bob", "sandbox/fast")):
        s = Store(tmp_path / f"{name}.duckdb")
        res = llmlab.run(_small(), [model], store=s, progress=False, name=name)
        export_run(res, team)
    mine = Store(tmp_path / "mine.duckdb")
    llmlab.run(_small(), ["sandbox/tiny"], store=mine, progress=False)
    mine.attach(team, "team")
    frame = mine.sql("""
        SELECT model, avg(q.quality) AS quality, count(*) AS n FROM (
            SELECT c.model, c.call_id, c.run_id FROM calls c UNION ALL SELECT model, call_id, run_id FROM team.calls
        ) c JOIN (SELECT * FROM call_quality UNION ALL
                  SELECT call_id, run_id, avg(score), NULL, NULL, NULL, avg(score) FROM team.scores GROUP BY ALL) q
          USING (call_id, run_id)
        GROUP BY model ORDER BY model""")
    assert list(frame["model"]) == ["sandbox/fast", "sandbox/frontier", "sandbox/tiny"]
    assert len(set(frame["n"])) == 1  # the same prompts everywhere
    assert sorted(mine.sql("SELECT name FROM team.runs")["name"]) == ["alice", "bob"]


def test_cli_export_import_and_sql_attach(recorded, tmp_path, capsys, monkeypatch):
    store, run_id = recorded
    assert main(["--db", str(store.path), "export", run_id, "--parquet", str(tmp_path / "out")]) == 0
    assert str(tmp_path / "out" / run_id) in capsys.readouterr().out
    target = tmp_path / "target.duckdb"
    assert main(["--db", str(target), "import", str(tmp_path / "out")]) == 0
    assert f"{run_id}: " in capsys.readouterr().out
    assert main(["--db", str(target), "import", str(tmp_path / "out")]) == 0
    assert "already in the store" in capsys.readouterr().out
    assert _checksums(Store(target), run_id) == _checksums(store, run_id)
    assert main(["--db", str(target), "sql", "--attach", f"src={tmp_path / 'out'}", "--json",
                 "SELECT count(*) AS n FROM src.calls"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": _checksums(store, run_id)["n"]}]
    assert main(["--db", str(target), "import", str(tmp_path / "nowhere")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_pairwise_verdicts_and_routing_decisions_travel_with_the_run(recorded, tmp_path):
    from llmlab.store import utc_now

    store, run_id = recorded
    res = store.results(run_id)
    prompt = res["prompt_id"].iloc[0]
    store.append_pairwise([{"run_id": run_id, "prompt_id": prompt, "category": "x", "model_a": "sandbox/frontier",
                            "model_b": "sandbox/tiny", "judge": "sandbox/frontier", "verdict_ab": "1",
                            "verdict_ba": "2", "winner": "a", "consistent": True, "source": "judge",
                            "created_at_utc": utc_now()}])
    store.add_routing_decisions([{"run_id": run_id, "prompt_id": prompt, "model": "sandbox/tiny",
                                  "policy_kind": "prompt", "score": 0.3, "threshold": 0.5,
                                  "decision": {"why": "cheap enough"}, "router": "policy.json",
                                  "created_at_utc": utc_now()}])
    folder = export_run(run_id, tmp_path / "shared", store=store)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["rows"]["pairwise_verdicts"] == 1 and manifest["rows"]["routing_decisions"] == 1
    other = Store(tmp_path / "b.duckdb")
    import_run(folder, store=other)
    import_run(folder, store=other)                               # twice: still one row each
    assert other.pairwise(run_id)[["winner", "model_a"]].values.tolist() == [["a", "sandbox/frontier"]]
    decisions = other.routing_decisions(run_id)
    assert len(decisions) == 1 and decisions["model"].iloc[0] == "sandbox/tiny"
    # an export written before these two tables were exported imports and attaches as before
    for stem in ("pairwise_verdicts", "routing_decisions"):
        (folder / f"{stem}.parquet").unlink()
    third = Store(tmp_path / "c.duckdb")
    (report,) = import_run(folder, store=third)
    assert report["verified"] and third.pairwise(run_id).empty
    third.attach(tmp_path / "shared", "team")
    n = third.sql(f"SELECT count(*) AS n FROM team.calls WHERE run_id = '{run_id}'")["n"][0]
    assert n == len(res)
