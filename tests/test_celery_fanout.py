"""An invoice batch fanned out over two Celery workers, on a Postgres instance, through Redis.

One module-scoped scenario with real parts on loopback: Redis from Debian's `redis-server`
as broker and result backend, a Postgres holding the Dagster instance (made from
`orchestration/dagster-postgres.yaml`), an SMTP server, and two Celery workers started with
`dagster-celery worker start` and `deploy/celery-worker.yaml`, one process each
(`--concurrency 1`). The warehouse is built from generated demo data by the nightly job's
assets up to the quality holds; then `invoice_batch_fanout` runs the invoices issued from
2026-10-01 to 2026-11-30 in four chunks, and a second time, as a retried run would.

The batch, worked out from the generator's files (seed 11, 14 accounts): ids 1066 to 1083
are issued in the window; 1077 has no id and 1079 is deleted in the ERP, so 16 invoices
reach `core.fct_invoices`; 1074, 1075, 1076 and 1078 carry the generator's bad data and are
held by quality rules, which leaves 12 invoices to render and send, 3 per chunk. The test
data makes every one of them an email invoice that the ERP has not sent.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from conftest import ReceivedMail, _running_server
from postgres_server import running_postgres
from redis_server import running_redis
from test_nightly_job import _current_invoices

from orchestration.celery_jobs import (
    BACKEND_ENV,
    BROKER_ENV,
    FANOUT_JOB_NAME,
    invoice_batch_fanout,
    split_into_chunks,
)
from q2c import opsdb
from q2c.demo import generate
from q2c.warehouse import connect

REPO = Path(__file__).resolve().parents[1]
INSTANCE_YAML = REPO / "orchestration" / "dagster-postgres.yaml"
WORKER_YAML = REPO / "deploy" / "celery-worker.yaml"
VENV_BIN = Path(sys.executable).parent
AS_OF = dt.date(2026, 11, 30)
FIRST, LAST = "2026-10-01", "2026-11-30"
CHUNKS = 4
WORKERS = ("q2c-a", "q2c-b")
HELD_BY_QUALITY = ("invalid_currency", "due_before_issue", "total_mismatch",
                   "unparseable_line_amount")
WORKER_START_SECONDS = 300.0


@dataclass(frozen=True)
class Fanout:
    """The two runs of the batch and what the real servers saw."""

    home: Path
    landing: Path
    summary: object
    instance_home: Path
    server: object
    first: dg.ExecutionResult
    second: dg.ExecutionResult
    mail_after_first: list[ReceivedMail]
    mail_after_second: list[ReceivedMail]


def _rewrite(path: Path, change) -> None:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        fields, rows = reader.fieldnames, list(reader)
    for row in rows:
        change(row)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def _batch_data(landing: Path):
    """Demo data whose batch goes out by email: every customer takes email, and the ERP has
    sent none of the batch's invoices (QuickBooks `NeedToSend`)."""
    summary = generate(landing, seed=11, accounts=14, as_of=AS_OF)
    _rewrite(landing / "quickbooks" / "invoice.csv", lambda row: row.update(
        email_status="NeedToSend") if FIRST <= row["transaction_date"] <= LAST else None)
    _rewrite(landing / "quickbooks" / "customer.csv",
             lambda row: row.update(preferred_delivery_method="Email"))
    _rewrite(landing / "salesforce" / "account.csv", lambda row: row.update(
        invoice_delivery_channel_c="email", einvoice_format_c="", peppol_participant_id_c="",
        x12_partner_c=""))
    return summary


def _review_policy(folder: Path) -> Path:
    """A controller's policy that holds credit notes only, so the batch needs no approval."""
    path = folder / "review_policy.yaml"
    path.write_text(
        'version: "test-1"\nsla_hours: 24\nrules:\n'
        "  - id: credit_note\n    kind: document_kind\n"
        "    description: Every credit note is approved first.\n    kinds: [credit_note]\n"
    )
    return path


def _environment(folder: Path, landing: Path, server, redis, smtp) -> dict[str, str]:
    """What the test process and both workers run with: one warehouse, stores and instance."""
    return {
        "Q2C_HOME": str(folder / "var"), "Q2C_LANDING_DIR": str(landing),
        "Q2C_AS_OF": AS_OF.isoformat(), "Q2C_DELIVER_FROM": FIRST,
        "Q2C_REVIEW_POLICY": str(_review_policy(folder)),
        "Q2C_MAIL_CHANNEL": "smtp", "Q2C_SMTP_HOST": smtp.host, "Q2C_SMTP_PORT": str(smtp.port),
        "DAGSTER_HOME": str(folder / "dagster"),
        "Q2C_DAGSTER_PG_HOST": server.host, "Q2C_DAGSTER_PG_PORT": str(server.port),
        "Q2C_DAGSTER_PG_USER": server.user, "Q2C_DAGSTER_PG_PASSWORD": server.password,
        "Q2C_DAGSTER_PG_DB": "dagster",
        BROKER_ENV: redis.url(0), BACKEND_ENV: redis.url(1),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "False", "GX_ANALYTICS_ENABLED": "False",
    }


@contextmanager
def _celery_worker(name: str, env: dict[str, str], logs: Path) -> Iterator[subprocess.Popen]:
    """`dagster-celery worker start` in its own process group, ended with the group."""
    log = (logs / f"{name}.log").open("wb")
    worker = subprocess.Popen(
        [str(VENV_BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
         "-y", str(WORKER_YAML), "-n", name, "--", "--concurrency", "1",
         "--without-gossip", "--without-mingle"],
        env={**env, "PATH": f"{VENV_BIN}{os.pathsep}{env['PATH']}"}, cwd=REPO,
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        yield worker
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        log.close()


def _wait_for_workers(broker: str, backend: str, logs: Path) -> None:
    """Return once both workers answer a Celery ping; fail with their logs if they do not."""
    from celery import Celery

    app = Celery(broker=broker, backend=backend)
    try:
        deadline = time.monotonic() + WORKER_START_SECONDS
        answered: set[str] = set()
        while time.monotonic() < deadline:
            answered = {name.split("@")[0] for reply in app.control.ping(timeout=1.0)
                        for name in reply}
            if answered >= set(WORKERS):
                return
    finally:
        app.close()
    tails = {path.name: path.read_text(errors="replace")[-1500:]
             for path in sorted(logs.glob("*.log"))}
    pytest.fail(f"Celery workers answering: {sorted(answered)} of {WORKERS}; logs: {tails}")


def _build_warehouse(instance: dg.DagsterInstance) -> None:
    """Run the nightly job's assets up to the quality holds: ingest, dbt, the quality gate.

    Without the asset checks (dbt tests, freshness): the holds asset runs the quality suites
    that hold invoices back itself, and the dbt build is then models and seeds only.
    """
    from assets.documents import DOCUMENTS_KEY
    from orchestration.definitions import defs
    from orchestration.jobs import NIGHTLY_JOB_NAME

    documents = dg.AssetSelection.assets(DOCUMENTS_KEY)
    upstream = (documents.upstream() - documents).required_multi_asset_neighbors()
    keys = upstream.resolve(defs.resolve_asset_graph())
    job = defs.resolve_job_def(NIGHTLY_JOB_NAME).get_subset(
        asset_selection=keys, asset_check_selection=set())
    result = job.execute_in_process(instance=instance, raise_on_error=False)
    assert result.success, "building the warehouse for the batch failed"


def _run_batch(instance: dg.DagsterInstance) -> dg.ExecutionResult:
    return dg.execute_job(
        dg.reconstructable(invoice_batch_fanout), instance=instance,
        run_config={"ops": {"plan_invoice_chunks": {"config": {"chunks": CHUNKS}}}},
        tags={"dagster/asset_partition_range_start": FIRST,
              "dagster/asset_partition_range_end": LAST},
    )


@pytest.fixture(scope="module")
def fanout(tmp_path_factory) -> Iterator[Fanout]:
    folder = tmp_path_factory.mktemp("celery-fanout")
    (folder / "dagster").mkdir()
    shutil.copy(INSTANCE_YAML, folder / "dagster" / "dagster.yaml")
    landing = folder / "landing"
    summary = _batch_data(landing)
    logs = folder / "logs"
    logs.mkdir()

    with ExitStack() as stack:
        server = stack.enter_context(running_postgres())
        server.create_database("dagster")
        redis = stack.enter_context(running_redis())
        smtp = _running_server()
        stack.callback(smtp.stop)
        env = _environment(folder, landing, server, redis, smtp)
        monkeypatch = stack.enter_context(pytest.MonkeyPatch.context())
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        for name in ("Q2C_WAREHOUSE", "Q2C_DOCUMENTS_DIR", "Q2C_OUTBOX_DIR", "Q2C_CONFIG"):
            monkeypatch.delenv(name, raising=False)
        for name in WORKERS:
            stack.enter_context(_celery_worker(name, dict(os.environ), logs))
        instance = stack.enter_context(dg.DagsterInstance.get())

        _build_warehouse(instance)
        _wait_for_workers(env[BROKER_ENV], env[BACKEND_ENV], logs)
        first = _run_batch(instance)
        mail_after_first = list(smtp.messages)
        second = _run_batch(instance)
        yield Fanout(folder / "var", landing, summary, folder / "dagster", server, first,
                     second, mail_after_first, list(smtp.messages))


def _expected_batch(fanout: Fanout) -> dict[str, str]:
    """Invoice id -> number of the batch, from the landed ERP file and the generator's bad
    rows: issued in the window, current in the ERP, and not held by a quality rule."""
    held = {row.invoice_id for kind in HELD_BY_QUALITY
            for row in fanout.summary.bad_rows[kind]}
    return {invoice_id: row["doc_number"] for invoice_id, row in
            _current_invoices(fanout.landing / "quickbooks" / "invoice.csv").items()
            if FIRST <= row["transaction_date"] <= LAST and invoice_id not in held}


def _celery_workers_by_step(fanout: Fanout, run_id: str) -> dict[str, str]:
    """Step key -> the Celery worker (`name@host`) that ran it, read back from Postgres."""
    with dg.DagsterInstance.from_config(str(fanout.instance_home)) as instance:
        events = instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
    found = {}
    for event in events:
        # dagster-celery's "[CeleryExecutor] Executing steps ... in celery worker" event.
        metadata = event.dagster_event.engine_event_data.metadata
        if "Celery worker" in metadata:
            found[event.step_key] = metadata["Celery worker"].value
    return found


def test_both_runs_succeed(fanout):
    assert fanout.first.success
    assert fanout.second.success


def test_the_batch_is_the_twelve_invoices_worked_out_by_hand(fanout):
    """16 current invoices issued in the window, 4 of them held: 12 (ids in the docstring)."""
    assert sorted(_expected_batch(fanout)) == [
        "1066", "1067", "1068", "1069", "1070", "1071", "1072", "1073",
        "1080", "1081", "1082", "1083"]


def test_every_invoice_of_the_batch_is_rendered_once(fanout):
    expected = _expected_batch(fanout)
    with connect(fanout.home / "warehouse.duckdb", read_only=True) as conn:
        rows = conn.execute(
            "select invoice_id, path, run_id from q2c_ops.document_manifest").fetchall()

    stored = sorted(path.resolve() for path in (fanout.home / "documents").rglob("*.pdf"))

    assert Counter(invoice_id for invoice_id, _, _ in rows) == Counter(list(expected))
    assert {run_id for _, _, run_id in rows} == {fanout.first.run_id}
    # One file per invoice in the store, each the one its manifest row names.
    assert stored == sorted(Path(path).resolve() for _, path, _ in rows)
    assert len(stored) == 12


def test_every_invoice_of_the_batch_reaches_the_smtp_server_once(fanout):
    """One message per invoice, each with its own PDF; the second run sent nothing."""
    expected = _expected_batch(fanout)
    messages = [mail.parsed() for mail in fanout.mail_after_first]
    numbers = Counter(str(message["X-Q2C-Invoice-Number"]) for message in messages)

    assert numbers == Counter(expected.values())
    for message in messages:
        [attachment] = [part for part in message.iter_attachments()
                        if part.get_content_type() == "application/pdf"]
        assert attachment.get_filename() == f"{message['X-Q2C-Invoice-Number']}.pdf"
    assert len(fanout.mail_after_second) == len(fanout.mail_after_first) == 12


def test_the_outbox_holds_each_invoice_once_and_sent(fanout):
    with opsdb.connect(fanout.home / "ops.sqlite") as store:
        rows = store.execute("select invoice_id, status, run_id from outbox").fetchall()

    assert sorted(row[0] for row in rows) == sorted(_expected_batch(fanout))
    assert {(row[1], row[2]) for row in rows} == {("sent", fanout.first.run_id)}


def test_both_workers_took_steps_and_each_rendered_a_chunk(fanout):
    """Four render chunks of three invoices each; each worker took at least one of them."""
    workers = _celery_workers_by_step(fanout, fanout.first.run_id)
    render_steps = {step: worker for step, worker in workers.items()
                    if step.startswith("render_chunk[")}

    assert sorted(render_steps) == [f"render_chunk[chunk_{i}]" for i in range(CHUNKS)]
    assert {worker.split("@")[0] for worker in render_steps.values()} == set(WORKERS)
    assert {worker.split("@")[0] for worker in workers.values()} == set(WORKERS)
    assert {"plan_invoice_chunks", "queue_for_delivery", "record_deliveries"} <= set(workers)


def test_the_second_run_renders_and_queues_nothing(fanout):
    """A retried or repeated run of the same days finds every PDF stored and sent."""
    with dg.DagsterInstance.from_config(str(fanout.instance_home)) as instance:
        run = instance.get_run_by_id(fanout.second.run_id)
        planned = [record.event_log_entry for record in instance.get_records_for_run(
            fanout.second.run_id, of_type=dg.DagsterEventType.STEP_OUTPUT).records
            if record.event_log_entry.step_key in {"plan_invoice_chunks", "queue_for_delivery"}]

    metadata = {entry.dagster_event.step_output_data.output_name:
                entry.dagster_event.step_output_data.metadata for entry in planned}
    assert run.status == dg.DagsterRunStatus.SUCCESS and run.job_name == FANOUT_JOB_NAME
    assert metadata["batch"]["to_render"].value == 0
    assert metadata["batch"]["unchanged_not_rendered"].value == 12
    assert metadata["queued"]["queued_now"].value == 0
    assert metadata["queued"]["delivery_chunks"].value == 0


def test_the_runs_and_their_events_are_stored_in_postgres(fanout):
    with closing(fanout.server.connect("dagster")) as conn, conn.cursor() as cur:
        cur.execute("select run_id, status from runs where pipeline_name = %s order by 1",
                    (FANOUT_JOB_NAME,))
        runs = cur.fetchall()

    assert sorted(runs) == sorted([(fanout.first.run_id, "SUCCESS"),
                                   (fanout.second.run_id, "SUCCESS")])


def test_chunks_are_dealt_round_robin_and_never_empty():
    """Seven items in three chunks: 3, 2, 2; two items in four chunks: two chunks of one."""
    assert split_into_chunks(list("abcdefg"), 3) == [["a", "d", "g"], ["b", "e"], ["c", "f"]]
    assert split_into_chunks(["a", "b"], 4) == [["a"], ["b"]]
    assert split_into_chunks([], 4) == []
