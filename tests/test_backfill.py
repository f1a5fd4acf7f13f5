"""A backfill of invoice issue dates sends only what the outbox has not sent, once each.

One module-scoped scenario on generated demo data (seed 11, 8 accounts, as of 2026-11-30),
every email going to a real SMTP server on loopback:

1. the nightly job runs once. Among the invoices due, INV-2026-000053 (issued 2026-11-16)
   and INV-2026-000055 (11-21) go out; INV-2026-000054 (11-19), INV-2026-000057 (11-24)
   and INV-2026-000058 (11-28) wait for review, each its customer's first invoice;
2. a controller approves INV-2026-000054 and INV-2026-000058, and the stored PDF of
   INV-2026-000053 is lost;
3. an operator backfills the issue dates 2026-11-16 to 2026-11-24 with `dagster asset
   materialize --partition-range`, the command docs/production.md gives;
4. the delivery steps run once more without a partition, as the next night runs them.

The backfill may send INV-2026-000054 only: the other invoices of its days were sent or
still wait, and INV-2026-000058 was issued after its last day; the next night sends that
one. Every invoice reaches the SMTP server exactly once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from conftest import SmtpTestServer, _running_server
from outbox_support import invoice_id, item
from test_nightly_job import AS_OF, _environment

from assets.delivery import outbox, review_queue
from assets.documents import DOCUMENTS_KEY
from orchestration.jobs import DELIVERY_POOL, DELIVERY_TAG, NETWORK_RETRY
from orchestration.resources import Q2CSettings
from orchestration.run import NightlyResult, run_nightly
from q2c import opsdb
from q2c.cli import main as cli_main
from q2c.delivery.mail_transport import SmtpTransport
from q2c.delivery.message import IDEMPOTENCY_HEADER
from q2c.delivery.outbox import Outbox, SendPace
from q2c.delivery.portal import notice_key
from q2c.demo import generate
from q2c.warehouse import connect

REPO = Path(__file__).resolve().parents[1]
DAGSTER = Path(sys.executable).parent / "dagster"
FIRST_DAY, LAST_DAY = "2026-11-16", "2026-11-24"
SENT_BY_THE_NIGHT_IN_RANGE = ["INV-2026-000053", "INV-2026-000055"]
WAITING = ["INV-2026-000054", "INV-2026-000057", "INV-2026-000058"]
APPROVED_IN_RANGE, STILL_WAITING, APPROVED_AFTER_RANGE = WAITING
LOST_PDF = "INV-2026-000053"
# The documents asset and every asset of its backfill run: the e-invoices, the review gate
# and the outbox, each multi-asset with all of its keys.
BACKFILL_SELECTION = ",".join([
    "documents/invoice_pdfs", "documents/einvoices", "q2c_ops/review_queue",
    "q2c_ops/review_decisions", "q2c_ops/outbox", "q2c_ops/outbox_payloads",
    "q2c_ops/delivery_events",
])
OUTBOX_KEY = dg.AssetKey(["q2c_ops", "outbox"])


@dataclass(frozen=True)
class Scenario:
    home: Path
    night: NightlyResult
    backfill: subprocess.CompletedProcess
    backfill_run: dg.DagsterRun | None
    instance: dg.DagsterInstance
    lost_pdf: tuple[Path, str]
    waiting_after_night: list[str]
    after_night: list[str]
    after_backfill: list[str]
    after_next_night: list[str]


def _received(smtp: SmtpTestServer, home: Path) -> list[str]:
    """The invoice number of every message the SMTP server accepted, in order.

    Read through each message's idempotency key, which the outbox stored with the invoice:
    an invoice email carries its attempt key, a portal notice the notice key of its own.
    """
    with opsdb.connect(home / "ops.sqlite") as store:
        rows = store.execute(
            "select payloads.attempt_key, payloads.channel, outbox.invoice_number "
            "from outbox_payloads as payloads join outbox using (document_key)"
        ).fetchall()
    numbers = {key: number for key, channel, number in rows if channel == "email"}
    numbers |= {notice_key(key): number for key, channel, number in rows if channel == "portal"}
    return [numbers[str(message.parsed()[IDEMPOTENCY_HEADER]).strip()]
            for message in smtp.messages]


def _waiting(home: Path) -> list[str]:
    with opsdb.connect(home / "ops.sqlite") as store:
        return [row[0] for row in store.execute(
            "select invoice_number from review_queue where status = 'pending' order by 1")]


def _backfill() -> subprocess.CompletedProcess:
    """The backfill as docs/production.md launches it: one run for the whole range."""
    return subprocess.run(
        [str(DAGSTER), "asset", "materialize", "-m", "orchestration.definitions",
         "--select", BACKFILL_SELECTION, "--partition-range", f"{FIRST_DAY}...{LAST_DAY}"],
        cwd=REPO, env=os.environ.copy(), capture_output=True, text=True, check=False,
    )


def _lose_the_pdf(home: Path, number: str) -> tuple[Path, str]:
    """Delete the stored PDF of an invoice; its path and the sha256 the manifest holds."""
    with connect(home / "warehouse.duckdb", read_only=True) as conn:
        path, content_hash = conn.execute(
            "select path, content_hash from q2c_ops.document_manifest where invoice_number = ?",
            [number],
        ).fetchone()
    Path(path).unlink()
    return Path(path), content_hash


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> Iterator[Scenario]:
    folder = tmp_path_factory.mktemp("backfill")
    home, landing, dagster_home = folder / "var", folder / "landing", folder / "dagster"
    generate(landing, seed=11, accounts=8, as_of=AS_OF)
    dagster_home.mkdir()
    shutil.copy(REPO / "orchestration" / "dagster.yaml", dagster_home / "dagster.yaml")
    smtp = _running_server()
    try:
        with pytest.MonkeyPatch.context() as monkeypatch, \
                dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            _environment(monkeypatch, home, landing, AS_OF)
            monkeypatch.setenv("Q2C_MAIL_CHANNEL", "smtp")
            monkeypatch.setenv("Q2C_SMTP_HOST", smtp.host)
            monkeypatch.setenv("Q2C_SMTP_PORT", str(smtp.port))
            monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))

            night = run_nightly(instance=instance)
            after_night, waiting = _received(smtp, home), _waiting(home)
            for number in (APPROVED_IN_RANGE, APPROVED_AFTER_RANGE):
                assert cli_main(["review", "approve", number, "--by", "controller"]) == 0
            lost_pdf = _lose_the_pdf(home, LOST_PDF)

            backfill = _backfill()
            after_backfill = _received(smtp, home)
            runs = instance.get_runs(dg.RunsFilter(tags={
                "dagster/asset_partition_range_start": FIRST_DAY,
                "dagster/asset_partition_range_end": LAST_DAY,
            }))

            next_night = dg.materialize([review_queue, outbox], instance=instance,
                                        resources={"q2c": Q2CSettings()})
            assert next_night.success
            yield Scenario(home, night, backfill, runs[0] if len(runs) == 1 else None,
                           instance, lost_pdf, waiting, after_night, after_backfill,
                           _received(smtp, home))
    finally:
        smtp.stop()


def test_the_night_and_the_backfill_succeed(scenario):
    assert scenario.night.success, scenario.night.summary
    assert scenario.backfill.returncode == 0, scenario.backfill.stderr[-6000:]


def test_the_night_sent_the_invoices_of_the_range_that_needed_no_review(scenario):
    """The starting point the rest relies on, stated from the generated data."""
    assert set(SENT_BY_THE_NIGHT_IN_RANGE) <= set(scenario.after_night)
    assert set(WAITING) <= set(scenario.waiting_after_night)
    assert not set(WAITING) & set(scenario.after_night)


def test_the_backfill_sent_only_the_approved_invoice_of_its_days(scenario):
    sent_by_backfill = scenario.after_backfill[len(scenario.after_night):]

    assert scenario.after_backfill[:len(scenario.after_night)] == scenario.after_night
    assert sent_by_backfill == [APPROVED_IN_RANGE]


def test_the_next_night_sends_the_invoice_approved_outside_the_backfill_days(scenario):
    sent_next = scenario.after_next_night[len(scenario.after_backfill):]

    assert sent_next == [APPROVED_AFTER_RANGE]
    assert STILL_WAITING not in scenario.after_next_night


def test_each_invoice_reached_the_smtp_server_exactly_once(scenario):
    counts = Counter(scenario.after_next_night)
    with opsdb.connect(scenario.home / "ops.sqlite") as store:
        by_mail = {row[0] for row in store.execute(
            "select invoice_number from outbox where status = 'sent' "
            "and sent_channel in ('email', 'portal')")}

    assert {number for number, count in counts.items() if count > 1} == set()
    assert set(counts) == by_mail
    # The two the night sent in the range, the one the backfill sent, the one the next
    # night sent: each once.
    assert [counts[number] for number in (*SENT_BY_THE_NIGHT_IN_RANGE, APPROVED_IN_RANGE,
                                          APPROVED_AFTER_RANGE)] == [1, 1, 1, 1]


def test_the_backfill_rendered_the_lost_pdf_again_without_sending_it(scenario):
    """Of the days' rendered invoices only the lost PDF was missing: one rendering, byte for
    byte the document that was sent (the same sha256, so the same manifest row)."""
    path, content_hash = scenario.lost_pdf
    documents = [entry.asset_materialization
                 for entry in _materializations(scenario, scenario.backfill_run)
                 if entry.dagster_event.asset_key == DOCUMENTS_KEY]

    assert {m.metadata["rendered"].value for m in documents} == {1}
    assert hashlib.sha256(path.read_bytes()).hexdigest() == content_hash
    assert Counter(scenario.after_next_night)[LOST_PDF] == 1


def _materializations(scenario: Scenario, run: dg.DagsterRun) -> list[dg.EventLogEntry]:
    records = scenario.instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=10_000
    ).records
    return [record.event_log_entry for record in records]


def test_the_backfill_was_one_run_that_materialized_each_of_its_days(scenario):
    """2026-11-16 to 2026-11-24 are nine days; the documents asset got each one once."""
    run = scenario.backfill_run
    assert run is not None, "the backfill should be exactly one run tagged with its range"
    entries = _materializations(scenario, run)
    days = sorted(entry.dagster_event.partition for entry in entries
                  if entry.dagster_event.asset_key == DOCUMENTS_KEY)
    outbox_runs = [entry.asset_materialization for entry in entries
                   if entry.dagster_event.asset_key == OUTBOX_KEY]

    first = dt.date.fromisoformat(FIRST_DAY)
    assert days == [(first + dt.timedelta(days=n)).isoformat() for n in range(9)]
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert [m.metadata["issue_dates"].value for m in outbox_runs] == [
        f"{FIRST_DAY} to {LAST_DAY}"]
    assert scenario.instance.get_materialized_partitions(DOCUMENTS_KEY) >= set(days)


# ---------------------------------------------------------------------------------------
# What keeps a backfill from flooding the mail relay
# ---------------------------------------------------------------------------------------
def test_delivery_is_one_pool_and_one_tagged_run_at_a_time_and_retried_as_network():
    from orchestration.definitions import defs

    step = defs.resolve_assets_def(OUTBOX_KEY).op
    night = defs.resolve_job_def("nightly_quote_to_cash")

    assert step.pool == DELIVERY_POOL
    assert step.tags[DELIVERY_TAG] == "outbox"
    assert step.retry_policy == NETWORK_RETRY
    assert night.tags[DELIVERY_TAG] == "outbox"
    # Rendering touches no network: it is not retried blindly.
    assert defs.resolve_assets_def(DOCUMENTS_KEY).op.retry_policy is None


def test_network_steps_retry_with_exponential_backoff_and_jitter():
    """Retry n waits (2^n - 1) x 20 s, give or take 20 s: 0-40, 40-80 and 120-160 s."""
    from assets.content import build_cms_assets
    from assets.ingest import build_raw_assets

    pulled, landed = build_raw_assets(("stripe", "quickbooks"), pull_sources=("stripe",))
    (cms,) = build_cms_assets(("wordpress",))

    assert pulled.op.retry_policy == cms.op.retry_policy == NETWORK_RETRY
    assert landed.op.retry_policy is None
    assert NETWORK_RETRY.backoff == dg.Backoff.EXPONENTIAL
    assert NETWORK_RETRY.jitter == dg.Jitter.PLUS_MINUS
    for attempt, (low, high) in enumerate([(0, 40), (40, 80), (120, 160)], start=1):
        assert low <= NETWORK_RETRY.calculate_delay(attempt) <= high


def test_the_outbox_paces_its_sends_and_keeps_to_the_invoices_it_is_given(
    smtp_server, tmp_path
):
    """Four sends a second: after the first, each waits 0.25 s on a clock that moves only
    while waiting. Invoices 1 and 3 of three are given, so two messages arrive."""
    now, waits = [100.0], []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    box = Outbox(tmp_path / "ops.sqlite")
    box.enqueue([item(1), item(2), item(3)], "night-1")
    report = box.process(
        {"email": SmtpTransport(smtp_server.host, smtp_server.port, timeout=10)}, "backfill-1",
        invoice_ids=[invoice_id(1), invoice_id(3)],
        pace=SendPace(4.0, clock=lambda: now[0], sleep=sleep),
    )

    assert report.sent == 2 and waits == [0.25]
    assert sorted(m.parsed()["X-Q2C-Invoice-Number"] for m in smtp_server.messages) == [
        "INV-2026-0001", "INV-2026-0003"]
    assert box.status_counts()["queued"] == 1


def test_a_pace_of_zero_is_refused_with_the_way_out():
    with pytest.raises(ValueError, match="above zero.*leave the pace out"):
        SendPace(0)
