"""The production Dagster instance: the nightly job's run, events and pools on a real Postgres.

One module-scoped night: a Postgres is started here with two databases, `dagster` for the
instance and `q2c_warehouse` for the warehouse. The instance is made from
`orchestration/dagster-postgres.yaml` in a private DAGSTER_HOME, its connection taken from
the Q2C_DAGSTER_PG_* variables, and the nightly job runs on small generated demo data the
way `q2c run` runs it (`orchestration.run.run_nightly`). The tests read everything back
through a second instance object made from the same file, and by plain SQL, so nothing is
read from memory the run left behind.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage
from postgres_server import PostgresServer, running_postgres
from test_nightly_job import AS_OF, _environment

from orchestration.jobs import DELIVERY_POOL, DELIVERY_TAG, NIGHTLY_JOB_NAME
from orchestration.run import run_nightly
from q2c import opsdb
from q2c.demo import generate
from q2c.warehouse import connect
from q2c.warehouse_postgres import push_to_postgres

REPO = Path(__file__).resolve().parents[1]
INSTANCE_YAML = REPO / "orchestration" / "dagster-postgres.yaml"
DAGSTER_DB = "dagster"
WAREHOUSE_DB = "q2c_warehouse"
DOCUMENTS = dg.AssetKey(["documents", "invoice_pdfs"])
OUTBOX = dg.AssetKey(["q2c_ops", "outbox"])


@dataclass(frozen=True)
class Night:
    """The nightly run on the Postgres instance and where its files are."""

    server: PostgresServer
    dagster_home: Path
    home: Path
    run_id: str
    success: bool
    summary: str


def _instance_environment(monkeypatch: pytest.MonkeyPatch, server: PostgresServer) -> None:
    """The variables dagster-postgres.yaml reads: the server of the tests, its own database."""
    monkeypatch.setenv("Q2C_DAGSTER_PG_HOST", server.host)
    monkeypatch.setenv("Q2C_DAGSTER_PG_PORT", str(server.port))
    monkeypatch.setenv("Q2C_DAGSTER_PG_USER", server.user)
    monkeypatch.setenv("Q2C_DAGSTER_PG_PASSWORD", server.password)
    monkeypatch.setenv("Q2C_DAGSTER_PG_DB", DAGSTER_DB)


@pytest.fixture(scope="module")
def night(tmp_path_factory) -> Iterator[Night]:
    folder = tmp_path_factory.mktemp("dagster-postgres")
    dagster_home = folder / "dagster"
    dagster_home.mkdir()
    shutil.copy(INSTANCE_YAML, dagster_home / "dagster.yaml")
    generate(folder / "landing", seed=11, accounts=8, as_of=AS_OF)
    with running_postgres() as server, pytest.MonkeyPatch.context() as monkeypatch:
        server.create_database(DAGSTER_DB)
        server.create_database(WAREHOUSE_DB)
        _environment(monkeypatch, folder / "var", folder / "landing", AS_OF)
        _instance_environment(monkeypatch, server)
        monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
        with dg.DagsterInstance.get() as instance:
            result = run_nightly(instance=instance)
        yield Night(server, dagster_home, folder / "var", result.run_id, result.success,
                    result.summary)


@pytest.fixture
def fresh(night: Night, monkeypatch: pytest.MonkeyPatch) -> Iterator[dg.DagsterInstance]:
    """A new instance object from the same file: it knows the run only through Postgres."""
    _instance_environment(monkeypatch, night.server)
    with dg.DagsterInstance.from_config(str(night.dagster_home)) as instance:
        yield instance


def _materializations(instance: dg.DagsterInstance, run_id: str) -> list[dg.EventLogEntry]:
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=10_000
    ).records
    return [record.event_log_entry for record in records]


def _dagster_sql(night: Night, query: str, *params) -> list[tuple]:
    with closing(night.server.connect(DAGSTER_DB)) as conn, conn.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchall()


def test_the_nightly_job_succeeds_on_the_postgres_instance(night):
    assert night.success, night.summary


def test_runs_events_and_schedules_are_stored_in_postgres_with_telemetry_off(fresh):
    assert isinstance(fresh.run_storage, PostgresRunStorage)
    assert isinstance(fresh.event_log_storage, PostgresEventLogStorage)
    assert isinstance(fresh.schedule_storage, PostgresScheduleStorage)
    assert fresh.telemetry_enabled is False


def test_a_fresh_instance_reads_the_run_back_as_a_success(night, fresh):
    run = fresh.get_run_by_id(night.run_id)

    assert run is not None
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert run.job_name == NIGHTLY_JOB_NAME
    assert run.tags[DELIVERY_TAG] == "outbox"
    # The same row, read with SQL from the `dagster` database.
    assert _dagster_sql(night, "select status from runs where run_id = %s", night.run_id) == [
        ("SUCCESS",)]


def test_the_run_materialized_the_documents_and_the_outbox(night, fresh):
    keys = {entry.dagster_event.asset_key for entry in _materializations(fresh, night.run_id)}

    assert {DOCUMENTS, OUTBOX, dg.AssetKey(["q2c_ops", "delivery_events"]),
            dg.AssetKey(["documents", "einvoices"]), dg.AssetKey(["q2c_ops", "review_queue"]),
            dg.AssetKey(["core", "fct_invoices"]),
            dg.AssetKey(["raw_quickbooks", "invoice"])} <= keys


def test_materialization_metadata_read_back_matches_the_stores(night, fresh):
    """The counts in Postgres equal the rows q2c wrote: the manifest and the audit trail.

    The run's own materialization of each asset is the one without a partition; the
    documents asset adds one per issue date it rendered PDFs for.
    """
    entries = _materializations(fresh, night.run_id)
    documents, outbox = (
        next(entry.asset_materialization for entry in entries
             if entry.dagster_event.asset_key == key and entry.dagster_event.partition is None)
        for key in (DOCUMENTS, OUTBOX)
    )
    with connect(night.home / "warehouse.duckdb", read_only=True) as conn:
        rendered = conn.execute(
            "select count(*) from q2c_ops.document_manifest where run_id = ?", [night.run_id]
        ).fetchone()[0]
    with opsdb.connect(night.home / "ops.sqlite") as store:
        sent = store.execute(
            "select count(*) from delivery_events where event = 'sent' and run_id = ?",
            (night.run_id,),
        ).fetchone()[0]

    assert documents.metadata["rendered"].value == rendered > 0
    assert outbox.metadata["sent"].value == sent > 0


def test_the_event_log_is_in_postgres_and_the_instance_reads_the_same_events(night, fresh):
    [(stored,)] = _dagster_sql(night, "select count(*) from event_logs where run_id = %s",
                               night.run_id)

    assert stored > 0
    assert len(fresh.all_logs(night.run_id)) == stored


def test_the_outbox_step_took_its_slot_in_the_delivery_pool_and_gave_it_back(fresh):
    """The pool limit is 1 (`pools: default_limit`); the step's claim created the pool."""
    pool = fresh.event_log_storage.get_concurrency_info(DELIVERY_POOL)

    assert pool.slot_count == 1
    assert pool.claimed_slots == [] and pool.pending_steps == []


def test_the_run_queue_allows_one_delivering_run_and_one_backfill_at_a_time(fresh):
    config = fresh.get_concurrency_config()
    limits = {(limit["key"], limit.get("value")): limit["limit"]
              for limit in config.run_queue_config.tag_concurrency_limits}

    assert type(fresh.run_coordinator).__name__ == "QueuedRunCoordinator"
    assert limits == {(DELIVERY_TAG, None): 1, ("dagster/backfill", None): 1}
    assert config.pool_config.default_pool_limit == 1
    assert config.pool_config.pool_granularity.value == "op"


def test_the_warehouse_lives_beside_the_instance_in_its_own_database(night):
    """push-postgres fills `q2c_warehouse`; Dagster's tables stay in `dagster`, and neither
    database holds the other's tables."""
    with closing(night.server.connect(WAREHOUSE_DB)) as pg_conn:
        copied = {table.relation: table.rows
                  for table in push_to_postgres(night.home / "warehouse.duckdb", pg_conn)}
    with connect(night.home / "warehouse.duckdb", read_only=True) as conn:
        landed = conn.execute("select count(*) from raw_quickbooks.invoice").fetchone()[0]
    with closing(night.server.connect(WAREHOUSE_DB)) as conn, conn.cursor() as cur:
        cur.execute("select count(*) from raw_quickbooks.invoice")
        in_warehouse = cur.fetchone()[0]
        cur.execute("select to_regclass('public.runs'), to_regclass('public.event_logs')")
        dagster_tables_there = cur.fetchone()

    assert copied["raw_quickbooks.invoice"] == in_warehouse == landed > 0
    assert dagster_tables_there == (None, None)
    assert _dagster_sql(night, "select to_regclass('raw_quickbooks.invoice')") == [(None,)]
