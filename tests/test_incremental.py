"""Reruns do only the work their changed inputs need, and a changed input is always redone.

Three layers are checked on their own first: ingest keeps a table whose file did not change
(`q2c.sources.changes`), the dbt plan picks what is downstream of the changed sources
(`q2c.dbt_changes`, on a hand-made manifest), and relation fingerprints follow content, not
load times (`q2c.changes`). Then the nightly job runs three times on the same generated
data through ingest, dbt, the quality checks and the documents: on fresh data, unchanged,
and with one invoice's dates corrected in the landed ERP file.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from q2c import changes
from q2c.dbt_changes import FULL, PARTIAL, SKIP, plan_build, record_build
from q2c.demo import generate
from q2c.sources.changes import UNCHANGED, load_changed_source
from q2c.warehouse import connect

AS_OF = dt.date(2026, 11, 30)


def _rewrite_invoice(landing: Path, invoice_id: str) -> None:
    """Move one invoice's issue and due date a day earlier, as an ERP correction would
    (in every row of it: an older version of a row may be in the file too)."""
    path = landing / "quickbooks" / "invoice.csv"
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    header = rows[0]
    issued, due, key = (header.index(name) for name in ("transaction_date", "due_date", "id"))
    for row in rows[1:]:
        if row[key] != invoice_id:
            continue
        for column in (issued, due):
            row[column] = str(dt.date.fromisoformat(row[column]) - dt.timedelta(days=1))
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    path.write_text(out.getvalue(), encoding="utf-8")


# --- ingest ---------------------------------------------------------------------------------


@pytest.fixture
def landed(tmp_path):
    landing = tmp_path / "landing"
    generate(landing, seed=3, accounts=3, as_of=AS_OF)
    with connect(tmp_path / "warehouse.duckdb") as conn:
        yield landing, conn


def _by_table(loads) -> dict:
    return {load.table.name: load for load in loads}


def test_an_unchanged_file_is_not_loaded_again(landed):
    landing, conn = landed
    first = _by_table(load_changed_source(conn, landing, "quickbooks", "run-1"))
    loaded_at = conn.sql("select max(_q2c_loaded_at) from raw_quickbooks.invoice").fetchone()

    second = _by_table(load_changed_source(conn, landing, "quickbooks", "run-2"))

    assert {load.status for load in second.values()} == {UNCHANGED}
    # The kept load reports the counts of the load it keeps, and its table is untouched.
    for name, load in second.items():
        assert (load.rows_read, load.rows_loaded, load.rows_quarantined) == (
            first[name].rows_read, first[name].rows_loaded, first[name].rows_quarantined)
    assert conn.sql("select max(_q2c_loaded_at) from raw_quickbooks.invoice").fetchone() == (
        loaded_at)
    report = conn.sql("select table_name, status, rows_loaded from q2c_ops.ingest_report "
                      "where run_id = 'run-2' and table_name = 'invoice'").fetchall()
    assert report == [("invoice", UNCHANGED, first["invoice"].rows_loaded)]


def test_quarantined_rows_of_a_kept_load_are_recorded_for_the_new_run(landed):
    """The invoice holds for unreadable rows read the quarantine of the current run."""
    landing, conn = landed

    def quarantined(run_id: str) -> list[tuple]:
        return conn.execute(
            "select table_name, row_number, reason from q2c_ops.quarantine "
            "where stage = 'ingest' and run_id = ? order by 1, 2", [run_id]).fetchall()

    first = _by_table(load_changed_source(conn, landing, "quickbooks", "run-1"))
    after_first = quarantined("run-1")
    load_changed_source(conn, landing, "quickbooks", "run-2")

    # The demo data always quarantines an invoice without a key and a duplicated one.
    assert first["invoice"].rows_quarantined >= 2
    assert len(after_first) == sum(load.rows_quarantined for load in first.values())
    assert quarantined("run-2") == after_first
    assert quarantined("run-1") == []  # replaced, as a reload would have done


def test_a_changed_file_is_loaded_again_and_only_that_one(landed):
    landing, conn = landed
    load_changed_source(conn, landing, "quickbooks", "run-1")
    invoice_id = conn.sql(
        "select id from raw_quickbooks.invoice where regexp_full_match(transaction_date, "
        "'\\d{4}-\\d{2}-\\d{2}') and regexp_full_match(due_date, '\\d{4}-\\d{2}-\\d{2}') "
        "order by id limit 1").fetchone()[0]
    issued = conn.execute("select transaction_date from raw_quickbooks.invoice where id = ?",
                          [invoice_id]).fetchone()[0]
    _rewrite_invoice(landing, invoice_id)

    second = _by_table(load_changed_source(conn, landing, "quickbooks", "run-2"))

    assert second["invoice"].status != UNCHANGED
    assert {load.status for name, load in second.items() if name != "invoice"} == {UNCHANGED}
    moved = conn.execute("select transaction_date from raw_quickbooks.invoice where id = ?",
                         [invoice_id]).fetchone()[0]
    assert dt.date.fromisoformat(moved) == dt.date.fromisoformat(issued) - dt.timedelta(days=1)


def test_a_table_changed_in_the_warehouse_is_loaded_again(landed):
    landing, conn = landed
    first = _by_table(load_changed_source(conn, landing, "quickbooks", "run-1"))
    conn.execute("delete from raw_quickbooks.term where id = (select min(id) from "
                 "raw_quickbooks.term)")

    second = _by_table(load_changed_source(conn, landing, "quickbooks", "run-2"))

    assert second["term"].status != UNCHANGED
    count = conn.sql("select count(*) from raw_quickbooks.term").fetchone()[0]
    assert count == first["term"].rows_loaded


def test_a_failed_load_is_tried_again_once_the_file_is_back(landed):
    landing, conn = landed
    path = landing / "quickbooks" / "term.csv"
    good = path.read_bytes()
    load_changed_source(conn, landing, "quickbooks", "run-1")
    path.write_bytes(good.decode().encode("utf-16"))
    failed = _by_table(load_changed_source(conn, landing, "quickbooks", "run-2"))
    path.write_bytes(good)

    again = _by_table(load_changed_source(conn, landing, "quickbooks", "run-3"))

    assert failed["term"].status == "failed"
    assert again["term"].status in ("loaded", "loaded_with_warnings")


# --- fingerprints ---------------------------------------------------------------------------


def test_a_relation_fingerprint_follows_rows_not_order_or_load_time():
    conn = duckdb.connect()
    conn.execute("create schema raw; create table raw.t (id varchar, amount varchar, "
                 "_q2c_loaded_at timestamp)")
    conn.execute("insert into raw.t values ('1', '10.00', now()), ('2', '5.50', now())")
    before = changes.relation_fingerprint(conn, "raw", "t")

    conn.execute("create or replace table raw.t as select id, amount, "
                 "now() + interval 1 day as _q2c_loaded_at from raw.t order by id desc")
    reloaded = changes.relation_fingerprint(conn, "raw", "t")
    conn.execute("insert into raw.t values ('2', '5.50', now())")
    duplicated = changes.relation_fingerprint(conn, "raw", "t")

    assert reloaded == before
    assert duplicated != before
    assert changes.relation_fingerprint(conn, "raw", "absent") == "missing"


def test_relations_read_by_a_query_are_the_qualified_names_that_exist():
    known = {("core", "fct_invoices"), ("core", "fct_invoice_lines"), ("raw", "x")}
    sql = ("with invoices as (select * from core.fct_invoices), lines as (select * from "
           "CORE.fct_invoice_lines) select invoices.invoice_id from invoices join lines "
           "on lines.invoice_id = invoices.invoice_id")

    assert changes.relations_read_by(sql, known) == [
        ("core", "fct_invoice_lines"), ("core", "fct_invoices")]


# --- the dbt plan ---------------------------------------------------------------------------

# Two sources; a_model reads a, b_model reads b, both_model reads a_model and b_model,
# b_only reads b_model and the as-of date (through a macro). A change of source a reaches
# a_model and both_model only; a new as-of date reaches b_only only.
_NODES = {
    "model.p.a_model": ["source.p.s.a"],
    "model.p.b_model": ["source.p.s.b"],
    "model.p.both_model": ["model.p.a_model", "model.p.b_model"],
    "model.p.b_only": ["model.p.b_model"],
}
# Tests: one on b_model, one relating b_only to a_model, one on source b.
_TESTS = {
    "test.p.unique_b": ["model.p.b_model"],
    "test.p.relation_b_only_a": ["model.p.b_only", "model.p.a_model"],
    "test.p.source_b_not_null": ["source.p.s.b"],
}
_DAY = {"as_of_date": "2026-11-30", "reporting_currency": "EUR"}


def _manifest(clock_model: str | None = None) -> dict:
    """The graph above; `clock_model` also reads the time the dbt run started."""
    parent_map = {**_NODES, **_TESTS, "source.p.s.a": [], "source.p.s.b": []}
    children: dict[str, list[str]] = {uid: [] for uid in parent_map}
    for node, parents in parent_map.items():
        for parent in parents:
            children[parent].append(node)
    nodes = {uid: {"resource_type": "model", "schema": "marts", "name": uid.rsplit(".", 1)[1],
                   "alias": uid.rsplit(".", 1)[1], "fqn": ["p", uid.rsplit(".", 1)[1]],
                   "config": {"materialized": "table"}, "raw_code": "select 1",
                   "depends_on": {"macros": []}} for uid in _NODES}
    nodes |= {uid: {"resource_type": "test", "config": {}} for uid in _TESTS}
    nodes["model.p.b_only"]["depends_on"]["macros"] = ["macro.p.days_overdue"]
    if clock_model:
        nodes[clock_model]["raw_code"] = "select {{ run_started_at }} as computed_at"
    macros = {
        "macro.p.as_of": {"macro_sql": "{{ var('as_of_date') }}", "depends_on": {"macros": []}},
        "macro.p.days_overdue": {"macro_sql": "{{ as_of() }} - due_date",
                                 "depends_on": {"macros": ["macro.p.as_of"]}},
    }
    return {
        "sources": {f"source.p.s.{name}": {"schema": "raw", "identifier": name, "name": name,
                                           "source_name": "s"} for name in ("a", "b")},
        "nodes": nodes, "macros": macros, "parent_map": parent_map, "child_map": children,
    }


def _plan(conn, project: str = "project-1", manifest: dict | None = None, **dbt_vars):
    return plan_build(conn, manifest or _manifest(), _NODES, "build", project,
                      {**_DAY, **dbt_vars})


@pytest.fixture
def built():
    conn = duckdb.connect()
    conn.execute("create schema raw; create schema marts")
    conn.execute("create table raw.a as select 1 as id; create table raw.b as select 2 as id")
    for uid in _NODES:
        conn.execute(f"create table marts.{uid.rsplit('.', 1)[1]} as select 1 as id")
    return conn


def test_a_first_build_builds_everything(built):
    plan = _plan(built)

    assert plan.action == FULL
    assert plan.build == set(_NODES)


def test_nothing_changed_runs_no_dbt(built):
    record_build(built, "build", _plan(built), "r1")

    plan = _plan(built)

    assert plan.action == SKIP
    assert plan.reason == "nothing these models read changed since run r1"
    assert set(plan.keep) == set(_NODES)


def test_a_changed_source_builds_what_is_downstream_of_it(built):
    record_build(built, "build", _plan(built), "r1")
    built.execute("insert into raw.a values (3)")

    plan = _plan(built)

    assert plan.action == PARTIAL
    assert plan.changed_sources == ["s.a"]
    assert plan.build == {"model.p.a_model", "model.p.both_model"}
    assert plan.keep == ["model.p.b_model", "model.p.b_only"]  # parents before children
    assert plan.exclude == ["fqn:p.b_model", "fqn:p.b_only", "source:s.b"]


def test_a_new_as_of_date_builds_the_models_that_read_it(built):
    record_build(built, "build", _plan(built), "r1")

    plan = _plan(built, as_of_date="2026-12-01")

    assert plan.action == PARTIAL
    assert plan.build == {"model.p.b_only"}
    assert "as_of_date moved from 2026-11-30 to 2026-12-01" in plan.reason


def test_a_model_that_reads_the_clock_is_built_every_time(built):
    manifest = _manifest(clock_model="model.p.b_model")
    record_build(built, "build", _plan(built, manifest=manifest), "r1")

    plan = _plan(built, manifest=manifest)

    assert plan.action == PARTIAL
    assert plan.build == {"model.p.b_model", "model.p.both_model", "model.p.b_only"}


def test_only_tests_whose_every_parent_was_kept_keep_their_last_result(built):
    passed = {"passed": True, "severity": "ERROR", "run_id": "r1"}
    record_build(built, "build", _plan(built), "r1", {uid: passed for uid in _TESTS})
    built.execute("insert into raw.a values (3)")

    plan = _plan(built)
    record_build(built, "build", plan, "r2", {})
    after = _plan(built)

    # b_model and source b are kept; the relation test also reads the rebuilt a_model.
    assert plan.still_valid_tests == {"test.p.unique_b", "test.p.source_b_not_null"}
    assert set(after.tests) == {"test.p.unique_b", "test.p.source_b_not_null"}
    assert after.tests["test.p.unique_b"] == passed


def test_changed_project_or_vars_and_missing_models_build_everything(built):
    record_build(built, "build", _plan(built), "r1")

    other_project = _plan(built, project="project-2")
    other_vars = _plan(built, reporting_currency="USD")
    built.execute("drop table marts.b_only")
    dropped = _plan(built)

    assert (other_project.action, other_vars.action, dropped.action) == (FULL, FULL, FULL)
    assert other_project.reason == "the dbt project or dbt's version changed since run r1"
    assert other_vars.reason == "the vars reporting_currency changed since run r1"
    assert dropped.reason == "1 models are missing from the warehouse (marts.b_only)"


def test_a_failed_build_records_nothing_so_the_next_one_rebuilds(built):
    record_build(built, "build", _plan(built), "r1")
    built.execute("insert into raw.b values (4)")
    _plan(built)  # dbt failed: nothing recorded

    again = _plan(built)

    assert again.action == PARTIAL
    assert again.build == {"model.p.b_model", "model.p.both_model", "model.p.b_only"}


# --- the nightly job, three times -----------------------------------------------------------


def _selection() -> list[dg.AssetKey]:
    from assets.documents import DOCUMENTS_KEY
    from assets.ingest import raw_assets
    from assets.quality import HOLDS_KEY
    from assets.transform import q2c_dbt_models

    keys = [key for asset in raw_assets for key in asset.keys]
    return [*keys, *q2c_dbt_models.keys, HOLDS_KEY, DOCUMENTS_KEY]


def _execute(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    from orchestration.definitions import defs
    from orchestration.jobs import NIGHTLY_JOB_NAME

    job = defs.resolve_job_def(NIGHTLY_JOB_NAME)
    return job.execute_in_process(instance=instance, asset_selection=_selection(),
                                  raise_on_error=False)


@pytest.fixture(scope="module")
def reruns(tmp_path_factory):
    home = tmp_path_factory.mktemp("incremental")
    landing = home / "landing"
    generate(landing, seed=5, accounts=4, as_of=AS_OF)
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("Q2C_HOME", str(home / "var"))
        monkeypatch.setenv("Q2C_LANDING_DIR", str(landing))
        monkeypatch.setenv("Q2C_AS_OF", AS_OF.isoformat())
        monkeypatch.setenv("Q2C_RENDER_WORKERS", "2")
        for name in ("Q2C_WAREHOUSE", "Q2C_DOCUMENTS_DIR", "Q2C_CONFIG"):
            monkeypatch.delenv(name, raising=False)
        instance = dg.DagsterInstance.ephemeral()
        first = _execute(instance)
        second = _execute(instance)
        with connect(home / "var" / "warehouse.duckdb", read_only=True) as conn:
            changed = conn.execute(
                "select invoice_id from q2c_ops.document_manifest where run_id = ? "
                "order by invoice_id limit 1", [first.run_id]).fetchone()[0]
        _rewrite_invoice(landing, changed)
        third = _execute(instance)
        yield {"home": home / "var", "first": first, "second": second, "third": third,
               "changed": changed}


def _metadata(result, node: str) -> dict[dg.AssetKey, dict]:
    return {event.asset_key: {name: value.value for name, value in event.metadata.items()}
            for event in result.asset_materializations_for_node(node)}


def test_the_three_runs_succeed(reruns):
    for name in ("first", "second", "third"):
        assert reruns[name].success, name


def test_unchanged_landing_runs_no_dbt_and_says_so(reruns):
    first, second, home = reruns["first"], reruns["second"], reruns["home"]
    raw = {**_metadata(second, "land_quickbooks"), **_metadata(second, "land_salesforce")}
    models = _metadata(second, "q2c_dbt_models")

    assert {meta["reloaded"] for meta in raw.values()} == {False}
    # Only the models other steps read are reported, so those steps run as every night.
    assert dg.AssetKey(["core", "fct_invoices"]) in models
    assert set(models) < set(_metadata(first, "q2c_dbt_models"))
    assert {meta["rebuilt"] for meta in models.values()} == {False}
    assert {meta["why_not_rebuilt"] for meta in models.values()} == {
        f"nothing these models read changed since run {first.run_id}"}
    # The tests gating later steps report their result on the same rows in the first run.
    reported = [evaluation for evaluation in second.get_asset_check_evaluations()
                if "tested_in_run" in evaluation.metadata]
    assert dg.AssetKey(["core", "fct_invoices"]) in {e.asset_key for e in reported}
    assert {e.metadata["tested_in_run"].value for e in reported} == {first.run_id}
    # dbt ran in the first run only: each run of it leaves its log.
    assert (home / "logs" / f"dbt-build-{first.run_id}-build.log").is_file()
    assert not (home / "logs" / f"dbt-build-{second.run_id}-build.log").exists()


def test_unchanged_inputs_reuse_the_quality_results(reruns):
    first, second = reruns["first"], reruns["second"]
    holds = _metadata(second, "q2c_ops__invoice_holds")[dg.AssetKey(["q2c_ops",
                                                                     "invoice_holds"])]
    checks = [evaluation for evaluation in second.get_asset_check_evaluations()
              if "validated_in_run" in evaluation.metadata]

    assert set(holds["suites_unchanged_since"].values()) == {first.run_id}
    assert holds["held_invoices"] == _metadata(first, "q2c_ops__invoice_holds")[
        dg.AssetKey(["q2c_ops", "invoice_holds"])]["held_invoices"]
    assert checks
    assert {check.metadata["validated_in_run"].value for check in checks} == {first.run_id}


def test_one_changed_table_builds_only_what_is_downstream_of_it(reruns):
    from orchestration.dbt_project import q2c_dbt_project

    third = reruns["third"]
    raw = {**_metadata(third, "land_quickbooks"), **_metadata(third, "land_salesforce")}
    models = _metadata(reruns["first"], "q2c_dbt_models")
    rebuilt = {key for key, meta in _metadata(third, "q2c_dbt_models").items()
               if meta.get("rebuilt", True)}

    reloaded = {key.path[1] for key, meta in raw.items() if meta["reloaded"]}
    assert reloaded == {"invoice"}
    # Every model that reads raw_quickbooks.invoice, directly or through other models.
    manifest = json.loads(q2c_dbt_project().manifest_path.read_text())
    downstream, pending = set(), ["source.q2c.quickbooks.invoice"]
    while pending:
        for child in manifest["child_map"][pending.pop()]:
            if child not in downstream:
                downstream.add(child)
                pending.append(child)
    expected = {key for key in models
                if _unique_id(key, manifest) in downstream}
    assert rebuilt == expected
    assert dg.AssetKey(["core", "fct_invoices"]) in rebuilt
    assert dg.AssetKey(["staging", "stg_salesforce__accounts"]) not in rebuilt


def _unique_id(key: dg.AssetKey, manifest: dict) -> str:
    schema, name = key.path
    return next(uid for uid, node in manifest["nodes"].items()
                if node.get("alias") == name and (node["config"].get("schema") or "main")
                == schema and node["resource_type"] in ("model", "seed", "snapshot"))


def test_a_changed_invoice_is_the_only_one_rendered_again(reruns):
    first, second, third = reruns["first"], reruns["second"], reruns["third"]
    # The step's own materialization comes first; one per issue date with new PDFs follows.
    documents = {
        name: {key: value.value for key, value in reruns[name].asset_materializations_for_node(
            "documents__invoice_pdfs")[0].metadata.items()}
        for name in ("first", "second", "third")
    }
    with connect(reruns["home"] / "warehouse.duckdb", read_only=True) as conn:
        rendered_third = conn.execute(
            "select invoice_id from q2c_ops.document_manifest where run_id = ?",
            [third.run_id]).fetchall()
        rendered_second = conn.execute(
            "select count(*) from q2c_ops.document_manifest where run_id = ?",
            [second.run_id]).fetchone()[0]

    assert documents["first"]["rendered"] > 1
    assert (documents["second"]["rendered"], rendered_second) == (0, 0)
    assert documents["third"]["rendered"] == 1
    assert rendered_third == [(reruns["changed"],)]
    assert documents["third"]["unchanged_not_rendered"] == documents["first"]["rendered"] - 1
    assert first.run_id != third.run_id
