"""The delivery outbox in a real SQLite store, with real transports: retries and backoff,
failover, dead letters, leases, the email transports, and the warehouse copy read by dbt.

The fault tests counted at an SMTP server (server stops, process killed, two runs at once)
are in test_outbox_faults.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import sqlite3
import subprocess
import sys
from email import policy
from email.parser import BytesParser
from pathlib import Path

import duckdb
import pytest
from outbox_support import (
    DOMAIN,
    PDF,
    SENDER,
    PortalStub,
    email_send,
    invoice_id,
    invoice_number,
    item,
    message_id,
    portal_send,
    recipient,
)

from q2c.delivery.envelope import EDI, EMAIL, PORTAL, Envelope
from q2c.delivery.errors import (
    ChannelUnavailableError,
    InvalidRecipientError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from q2c.delivery.export import export_deliveries
from q2c.delivery.mail_transport import EmlFolderTransport, SmtpTransport, email_payload
from q2c.delivery.message import build_invoice_email
from q2c.delivery.outbox import (
    OUTBOX_TABLE_DDL,
    Outbox,
    OutboxItem,
    PlannedSend,
    RetryPolicy,
    attempt_key,
    document_key,
)
from q2c.opsdb import connect

REPO = Path(__file__).resolve().parents[1]
DBT = Path(sys.executable).parent / "dbt"
START = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: dt.datetime = START) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


class SleepRecorder:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class Crash(BaseException):
    """Stands for the process dying inside a send: nothing after it runs."""


class CrashingChannel:
    name = "email:crash"

    def send(self, envelope: Envelope):
        raise Crash(envelope.invoice_number)


def doc(n: int) -> str:
    return document_key(invoice_id(n))


def events_of(outbox: Outbox, n: int) -> list[tuple[str, str | None]]:
    return [(event.event, event.channel) for event in outbox.events(doc(n))]


def smtp(server) -> SmtpTransport:
    return SmtpTransport(server.host, server.port, timeout=10)


# -- keys and queueing -------------------------------------------------------------------


def test_keys_are_sha256_of_the_versioned_parts():
    expected_doc = hashlib.sha256(b"q2c-outbox-v1\x00inv-001\x00invoice").hexdigest()
    expected_attempt = hashlib.sha256(f"{expected_doc}\x00email".encode()).hexdigest()

    assert document_key("inv-001") == expected_doc
    assert document_key(" inv-001 ", "Invoice") == expected_doc
    assert document_key("inv-001", "credit_note") != expected_doc
    assert attempt_key(expected_doc, "email") == expected_attempt
    assert attempt_key(expected_doc, "portal") != expected_attempt
    assert message_id(1) == f"<invoice.{expected_attempt}@{DOMAIN}>"


def test_enqueue_is_idempotent_and_never_replaces_the_queued_payload(tmp_path):
    outbox = Outbox(tmp_path / "ops.sqlite")
    original = item(1)
    first = outbox.enqueue([original, item(2)], "run-1")
    changed = email_send(1, address="new-ap@customer1.example")
    again = outbox.enqueue([item(1, (changed,)), item(3)], "run-2")

    assert first.queued == [doc(1), doc(2)]
    assert (again.queued, again.already_known) == ([doc(3)], [doc(1)])
    outbox.process({EMAIL: EmlFolderTransport(tmp_path / "eml")}, "run-2")
    [written] = (tmp_path / "eml").glob("*/INV-2026-0001-*.eml")
    assert written.read_bytes() == original.plan[0].payload
    assert b"new-ap@" not in written.read_bytes()
    assert events_of(outbox, 1) == [("queued", None), ("claimed", "email"), ("sent", "email")]


def test_the_outbox_lists_known_documents_and_what_is_not_sent_yet(tmp_path):
    outbox = Outbox(tmp_path / "ops.sqlite")
    assert outbox.document_keys_known() == set() and outbox.unsent_invoice_ids() == []

    outbox.enqueue([item(1), item(2), item(3)], "run-1")
    outbox.process({EMAIL: EmlFolderTransport(tmp_path / "eml")}, "run-1", limit=1)

    assert outbox.document_keys_known() == {doc(1), doc(2), doc(3)}
    assert sorted(outbox.unsent_invoice_ids()) == [item(2).invoice_id, item(3).invoice_id]


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ((), "empty channel plan"),
        ((PlannedSend("fax", "x", b"x", "a", "b"),), "unknown channel(s) fax"),
        ((portal_send(1), portal_send(1)), "plans a channel twice (portal -> portal)"),
        ((PlannedSend(PORTAL, "x", b"", "a", "b"),), "empty portal payload"),
    ],
)
def test_enqueue_refuses_a_broken_plan_and_stores_nothing(tmp_path, plan, message):
    outbox = Outbox(tmp_path / "ops.sqlite")
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        outbox.enqueue([item(2), item(1, plan)], "run-1")
    assert outbox.status_counts()["queued"] == 0
    assert outbox.events() == []


def test_the_policy_decision_is_stored_and_its_skipped_channels_are_events(tmp_path):
    outbox = Outbox(tmp_path / "ops.sqlite")
    decided = OutboxItem(
        invoice_id(1), invoice_number(1), "doc-001", "acct-1", (email_send(1),),
        decision={"chosen": ["email"],
                  "skipped": [{"channel": "edi", "reason": "no Peppol id on the account"},
                              {"channel": "portal", "reason": "no portal consent"}]},
    )
    outbox.enqueue([decided], "run-1")

    assert [(e.event, e.channel, e.detail) for e in outbox.events(doc(1))] == [
        ("queued", None, "plan email"),
        ("skipped", "edi", "no Peppol id on the account"),
        ("skipped", "portal", "no portal consent"),
    ]
    with connect(outbox.store_path) as conn:
        stored = conn.execute("select decision from outbox").fetchone()[0]
    assert '"skipped"' in stored and '"chosen": ["email"]' in stored


# -- retries, failover, dead letters ----------------------------------------------------


def test_transient_replies_are_retried_with_doubling_backoff(tmp_path, smtp_server):
    smtp_server.handler.data_replies.extend(["451 4.3.0 busy", "421 4.4.2 timeout"])
    sleep = SleepRecorder()
    outbox = Outbox(tmp_path / "ops.sqlite")
    outbox.enqueue([item(1)], "run-1")

    report = outbox.process({EMAIL: smtp(smtp_server)}, "run-1",
                            retry=RetryPolicy(max_attempts=3, base_seconds=1.5, sleep=sleep))

    assert sleep.waits == [1.5, 3.0]
    assert (report.sent, report.outcomes[0].attempts) == (1, 3)
    assert [m.parsed()["Message-ID"] for m in smtp_server.messages] == [message_id(1)]
    assert [e.event for e in outbox.events(doc(1))] == [
        "queued", "claimed", "retry_scheduled", "retry_scheduled", "sent"]


def test_a_row_out_of_retries_waits_for_a_later_run_then_goes_out(tmp_path, smtp_server):
    smtp_server.handler.data_replies.extend(["451 4.3.0 busy"] * 2)
    clock = Clock()
    outbox = Outbox(tmp_path / "ops.sqlite", clock=clock)
    outbox.enqueue([item(1)], "run-1")
    retry = RetryPolicy(max_attempts=2, base_seconds=10, max_seconds=60, sleep=SleepRecorder())

    first = outbox.process({EMAIL: smtp(smtp_server)}, "run-1", retry=retry)
    too_early = outbox.process({EMAIL: smtp(smtp_server)}, "run-2", retry=retry)
    clock.advance(seconds=20)
    later = outbox.process({EMAIL: smtp(smtp_server)}, "run-3", retry=retry)

    assert first.failed_retry == 1
    assert "451 4.3.0 busy" in first.outcomes[0].error
    assert too_early.outcomes == []
    assert later.sent == 1
    assert len(smtp_server.messages) == 1
    with connect(outbox.store_path) as conn:
        row = conn.execute("select status, attempts, next_attempt_at from outbox").fetchone()
    # Two failed attempts, then a wait of base x 2^(2-1) = 20 s before the next run may try.
    assert tuple(row) == ("sent", 3, None)
    deferred = [e.detail for e in outbox.events(doc(1)) if e.event == "retry_scheduled"][-1]
    assert "after 2026-03-02T08:00:20.000000Z" in deferred


def test_a_channel_failing_for_good_after_give_up_fails_over(tmp_path, smtp_server):
    smtp_server.handler.data_replies.extend(["452 4.3.1 mailbox full"] * 2)
    outbox = Outbox(tmp_path / "ops.sqlite")
    outbox.enqueue([item(1, (email_send(1), portal_send(1)))], "run-1")
    portal = PortalStub(tmp_path / "portal")
    retry = RetryPolicy(max_attempts=1, base_seconds=0, give_up_after=2)
    channels = {EMAIL: smtp(smtp_server), PORTAL: portal}

    first = outbox.process(channels, "run-1", retry=retry)
    second = outbox.process(channels, "run-2", retry=retry)

    assert (first.failed_retry, second.sent, second.failovers) == (1, 1, 1)
    assert smtp_server.messages == []
    assert portal.files() == [f"{attempt_key(doc(1), PORTAL)[:12]}-INV-2026-0001.pdf"]
    failover = next(e for e in outbox.events(doc(1)) if e.event == "failed_over")
    assert failover.detail.startswith("email -> portal: gave up on email after 2 transient")


def test_a_channel_down_for_several_invoices_is_not_tried_for_the_rest_of_the_run(
    tmp_path, smtp_server
):
    smtp_server.stop()
    outbox = Outbox(tmp_path / "ops.sqlite")
    outbox.enqueue([item(n) for n in range(1, 6)], "run-1")
    sleep = SleepRecorder()

    report = outbox.process({EMAIL: smtp(smtp_server)}, "run-1",
                            retry=RetryPolicy(max_attempts=2, base_seconds=1, trip_after=2,
                                              sleep=sleep))

    assert [o.attempts for o in report.outcomes] == [2, 2, 0, 0, 0]
    assert sleep.waits == [1, 1]
    assert outbox.status_counts() == {"queued": 0, "claimed": 0, "sent": 0,
                                      "failed_retry": 5, "dead_letter": 0,
                                      "cancelled": 0}
    untried = [e.detail for e in outbox.events(doc(3)) if e.event == "retry_scheduled"]
    assert untried[0].startswith("not tried: channel email (email:smtp) failed for 2 "
                                 "invoices in a row in this run")


def test_a_plan_channel_without_a_transport_fails_over_with_the_reason(tmp_path):
    outbox = Outbox(tmp_path / "ops.sqlite")
    edi = PlannedSend(EDI, "0088:5790000435951", b"<Invoice/>", "INV-2026-0001.xml",
                      "application/xml", sender_id="9930:DE811907980")
    outbox.enqueue([item(1, (edi, email_send(1)))], "run-1")

    report = outbox.process({EMAIL: EmlFolderTransport(tmp_path / "eml")}, "run-1")

    assert (report.sent, report.failovers, report.outcomes[0].channel) == (1, 1, "email")
    failover = next(e for e in outbox.events(doc(1)) if e.event == "failed_over")
    assert (failover.channel, failover.attempt_key) == ("edi", attempt_key(doc(1), EDI))
    assert failover.detail.startswith(
        "edi -> email: no transport for channel 'edi' is configured in this run")


def test_a_dead_letter_is_listed_and_requeued_only_with_who_and_why(tmp_path):
    outbox = Outbox(tmp_path / "ops.sqlite")
    outbox.enqueue([item(1, (portal_send(1),)), item(2, (portal_send(2),))], "run-1")
    refusing = PortalStub(tmp_path / "portal", refuse={recipient(1)})

    outbox.process({PORTAL: refusing}, "run-1")

    [dead] = outbox.dead_letters()
    assert (dead.invoice_number, dead.plan, dead.attempts) == (invoice_number(1), ("portal",), 1)
    assert dead.last_error == "no portal account for invoice INV-2026-0001"
    with pytest.raises(ValueError, match="needs who"):
        outbox.requeue_dead_letter(doc(1), "ar.clerk", " ")
    with pytest.raises(LookupError, match="no document"):
        outbox.requeue_dead_letter("0" * 64, "ar.clerk", "fixed")
    with pytest.raises(ValueError, match="is sent, not a dead letter"):
        outbox.requeue_dead_letter(doc(2), "ar.clerk", "fixed")

    outbox.requeue_dead_letter(doc(1), "ar.clerk", "portal account created")
    report = outbox.process({PORTAL: PortalStub(tmp_path / "portal")}, "run-2")

    assert report.sent == 1 and outbox.dead_letters() == []
    assert [(e.event, e.detail) for e in outbox.events(doc(1))][-3:] == [
        ("requeued", "by ar.clerk: portal account created"),
        ("claimed", f"by {report.worker}"),
        ("sent", "via portal to ***@customer1.example"),
    ]


# -- review decisions after queueing: hold and cancel -----------------------------------


def test_a_hold_keeps_a_queued_invoice_back_without_counting_an_attempt(tmp_path, smtp_server):
    """Approved, queued, a transient failure, then reopened in review: the next run asks
    the hold, which names the reason; nothing is sent and the row waits in the queue."""
    smtp_server.handler.data_replies.append("451 4.3.0 busy")
    clock = Clock()
    outbox = Outbox(tmp_path / "ops.sqlite", clock=clock)
    outbox.enqueue([item(1)], "run-1")
    retry = RetryPolicy(max_attempts=1, base_seconds=10, sleep=SleepRecorder())
    asked: list[str] = []

    def reopened(invoice: str) -> str | None:
        asked.append(invoice)
        return "waiting for review: reopened by ana" if invoice == invoice_id(1) else None

    first = outbox.process({EMAIL: smtp(smtp_server)}, "run-1", retry=retry)
    clock.advance(seconds=30)
    outbox.enqueue([item(2)], "run-2")
    held = outbox.process({EMAIL: smtp(smtp_server)}, "run-2", retry=retry, hold=reopened)

    assert [(o.invoice_number, o.status) for o in first.outcomes] == [
        (invoice_number(1), "failed_retry")]
    # Asked once per row: the held row is not claimed again in the same run.
    assert sorted(asked) == [invoice_id(1), invoice_id(2)]
    assert sorted((o.invoice_number, o.status, o.attempts, o.error)
                  for o in held.outcomes) == [
        (invoice_number(1), "held", 0, "waiting for review: reopened by ana"),
        (invoice_number(2), "sent", 1, None)]
    assert (held.held, held.counts()["held"], held.sent) == (1, 1, 1)
    assert [m.parsed()["Message-ID"] for m in smtp_server.messages] == [message_id(2)]
    with connect(outbox.store_path) as conn:
        row = conn.execute("select status, attempts, channel_attempts, lease_expires_at "
                           "from outbox where invoice_id = ?", (invoice_id(1),)).fetchone()
    assert tuple(row) == ("queued", 1, 1, None)
    trail = [(e.event, e.channel, e.run_id, e.detail) for e in outbox.events(doc(1))][-2:]
    assert trail == [
        ("claimed", "email", "run-2", f"by {held.worker}"),
        ("held", "email", "run-2", "not sent: waiting for review: reopened by ana")]
    assert outbox.events(doc(1))[-1].attempt_key == attempt_key(doc(1), EMAIL)

    released = outbox.process({EMAIL: smtp(smtp_server)}, "run-3", hold=lambda _: None)
    assert [(o.invoice_number, o.status) for o in released.outcomes] == [
        (invoice_number(1), "sent")]
    assert [m.parsed()["Message-ID"] for m in smtp_server.messages] == [
        message_id(2), message_id(1)]
    assert outbox.verify() == []


def test_a_hold_that_fails_keeps_the_row_back(tmp_path):
    outbox = Outbox(tmp_path / "ops.sqlite")
    outbox.enqueue([item(1)], "run-1")

    def broken(invoice: str) -> str | None:
        raise RuntimeError("review store locked")

    report = outbox.process({EMAIL: EmlFolderTransport(tmp_path / "eml")}, "run-1",
                            hold=broken)

    assert [(o.status, o.attempts) for o in report.outcomes] == [("held", 0)]
    assert outbox.events(doc(1))[-1].detail == (
        "not sent: the hold check failed (RuntimeError: review store locked); not sent "
        "until it works")
    assert not (tmp_path / "eml").exists()
    assert outbox.status_counts()["queued"] == 1


def test_a_hold_is_asked_again_before_a_retry_within_the_run(tmp_path, smtp_server):
    """A decision taken during the backoff of a transient failure still stops the send."""
    smtp_server.handler.data_replies.append("451 4.3.0 busy")
    outbox = Outbox(tmp_path / "ops.sqlite")
    outbox.enqueue([item(1)], "run-1")
    decisions = iter([None, "rejected in review by ana: wrong VAT rate"])

    report = outbox.process({EMAIL: smtp(smtp_server)}, "run-1",
                            retry=RetryPolicy(max_attempts=3, sleep=SleepRecorder()),
                            hold=lambda _: next(decisions))

    assert [(o.status, o.attempts) for o in report.outcomes] == [("held", 1)]
    assert smtp_server.messages == []
    assert [e.event for e in outbox.events(doc(1))] == [
        "queued", "claimed", "retry_scheduled", "held"]


def test_cancel_ends_an_unsent_row_for_good(tmp_path, smtp_server):
    smtp_server.handler.data_replies.append("451 4.3.0 busy")
    clock = Clock()
    outbox = Outbox(tmp_path / "ops.sqlite", clock=clock)
    channels = {EMAIL: smtp(smtp_server),
                PORTAL: PortalStub(tmp_path / "p", refuse={recipient(3)})}
    retry = RetryPolicy(max_attempts=1, base_seconds=1)
    outbox.enqueue([item(1)], "run-1")
    outbox.process(channels, "run-1", retry=retry)
    outbox.enqueue([item(2), item(3, (portal_send(3),))], "run-1b")
    outbox.process(channels, "run-1b", retry=retry)

    assert outbox.status_counts() == {"queued": 0, "claimed": 0, "sent": 1,
                                      "failed_retry": 1, "dead_letter": 1, "cancelled": 0}
    with pytest.raises(ValueError, match="needs who"):
        outbox.cancel(doc(1), "", "rejected")
    with pytest.raises(LookupError, match="no document"):
        outbox.cancel("0" * 64, "ana", "rejected")
    with pytest.raises(ValueError, match="already sent via email .*correct it with a credit"):
        outbox.cancel(doc(2), "ana", "rejected")

    assert outbox.cancel(doc(1), "ana", "rejected in review: wrong VAT rate") is True
    assert outbox.cancel(doc(3), "ana", "rejected in review") is True
    assert outbox.cancel(doc(1), "ana", "rejected again") is False
    clock.advance(hours=1)
    later = outbox.process({EMAIL: smtp(smtp_server), PORTAL: PortalStub(tmp_path / "p")},
                           "run-2")
    again = outbox.enqueue([item(1)], "run-3")

    assert later.outcomes == [] and again.already_known == [doc(1)]
    assert [m.parsed()["Message-ID"] for m in smtp_server.messages] == [message_id(2)]
    assert outbox.status_counts() == {"queued": 0, "claimed": 0, "sent": 1,
                                      "failed_retry": 0, "dead_letter": 0, "cancelled": 2}
    assert outbox.dead_letters() == []
    cancelled = outbox.events(doc(1))[-1]
    assert (cancelled.event, cancelled.channel, cancelled.attempt_key, cancelled.run_id,
            cancelled.detail) == ("cancelled", None, None, "manual:ana",
                                  "by ana: rejected in review: wrong VAT rate (was "
                                  "failed_retry)")
    assert [e.event for e in outbox.events(doc(1))].count("cancelled") == 1
    with pytest.raises(ValueError, match="is cancelled, not a dead letter"):
        outbox.requeue_dead_letter(doc(1), "ana", "changed my mind")
    assert outbox.verify() == []


def test_cancel_refuses_a_row_a_run_is_sending(tmp_path):
    outbox = Outbox(tmp_path / "ops.sqlite")
    outbox.enqueue([item(1)], "run-1")
    eml = EmlFolderTransport(tmp_path / "eml")
    refusals: list[str] = []

    class CancelledMidSend:
        name = "email:eml"

        def send(self, envelope):
            try:
                outbox.cancel(doc(1), "ana", "rejected")
            except ValueError as exc:
                refusals.append(str(exc))
            return eml.send(envelope)

    report = outbox.process({EMAIL: CancelledMidSend()}, "run-1")

    assert report.sent == 1
    [refusal] = refusals
    assert refusal.startswith(f"invoice INV-2026-0001 is being sent by {report.worker}")
    assert "cancel it after that run" in refusal


def test_an_outbox_made_before_cancelled_existed_is_rebuilt_to_accept_it(tmp_path):
    store = tmp_path / "ops.sqlite"
    Outbox(store).enqueue([item(1), item(2)], "run-1")
    old_table = OUTBOX_TABLE_DDL.replace(", 'cancelled'", "").replace(
        "create table if not exists outbox (", "create table outbox_old (")
    with connect(store) as conn:
        conn.execute("pragma foreign_keys=off")
        conn.executescript(f"""
            begin;
            {old_table};
            insert into outbox_old select * from outbox;
            drop table outbox;
            alter table outbox_old rename to outbox;
            update outbox set status = 'dead_letter' where invoice_id = '{invoice_id(2)}';
            commit;
        """)
        with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint"):
            conn.execute("update outbox set status = 'cancelled'")

    outbox = Outbox(store)
    with connect(store) as conn:
        table_sql = conn.execute("select sql from sqlite_master where name = 'outbox'"
                                 ).fetchone()[0]
        indexes = [row[0] for row in conn.execute(
            "select name from sqlite_master where type = 'index' and tbl_name = 'outbox'")]
        payloads = conn.execute("select count(*) from outbox_payloads").fetchone()[0]
        orphans = conn.execute("pragma foreign_key_check").fetchall()

    assert "'cancelled'" in table_sql and "outbox_due" in indexes
    assert (payloads, orphans) == (2, [])
    assert outbox.cancel(doc(1), "ana", "rejected") is True
    assert outbox.status_counts() == {"queued": 0, "claimed": 0, "sent": 0,
                                      "failed_retry": 0, "dead_letter": 1, "cancelled": 1}
    outbox.requeue_dead_letter(doc(2), "ana", "fixed")
    sent = outbox.process({EMAIL: EmlFolderTransport(tmp_path / "eml")}, "run-2")
    assert [(o.invoice_number, o.status) for o in sent.outcomes] == [
        (invoice_number(2), "sent")]
    assert outbox.verify() == []


# -- leases ------------------------------------------------------------------------------


def test_a_claim_left_by_a_dead_run_is_resent_with_the_same_key_after_its_lease(tmp_path):
    clock = Clock()
    outbox = Outbox(tmp_path / "ops.sqlite", lease_seconds=60, clock=clock)
    outbox.enqueue([item(1)], "run-1")
    with pytest.raises(Crash):
        outbox.process({EMAIL: CrashingChannel()}, "run-1")
    eml = EmlFolderTransport(tmp_path / "eml")

    clock.advance(seconds=59)
    within_lease = outbox.process({EMAIL: eml}, "run-2")
    clock.advance(seconds=1)
    after_lease = outbox.process({EMAIL: eml}, "run-3")

    assert within_lease.outcomes == []
    assert (after_lease.sent, after_lease.resent_in_doubt) == (1, 1)
    [written] = (tmp_path / "eml").glob("*/*.eml")
    parsed = BytesParser(policy=policy.default).parsebytes(written.read_bytes())
    assert parsed["Message-ID"] == message_id(1)
    in_doubt = outbox.events(doc(1))[2]
    assert (in_doubt.event, in_doubt.run_id) == ("resent_in_doubt", "run-3")
    assert "stopped before recording the outcome (lease expired 2026-03-02T08:01:00" in (
        in_doubt.detail)


def test_a_run_that_outlived_its_lease_records_the_send_but_not_the_row(tmp_path):
    """A send that took longer than the lease: another run takes the row over and sends it
    too. Both sends are in the audit trail; the late run reports lease_lost."""
    clock = Clock()
    outbox = Outbox(tmp_path / "ops.sqlite", lease_seconds=30, clock=clock)
    outbox.enqueue([item(1)], "run-1")
    eml = EmlFolderTransport(tmp_path / "eml")

    class SlowChannel:
        name = "email:slow"

        def send(self, envelope):
            clock.advance(seconds=31)
            outbox.process({EMAIL: eml}, "run-2")
            return eml.send(envelope)

    report = outbox.process({EMAIL: SlowChannel()}, "run-1")

    assert report.counts()["lease_lost"] == 1
    assert [(e.event, e.run_id) for e in outbox.events(doc(1))] == [
        ("queued", "run-1"), ("claimed", "run-1"), ("resent_in_doubt", "run-2"),
        ("sent", "run-2"), ("sent", "run-1")]
    assert "another run took the row over" in outbox.events(doc(1))[-1].detail
    assert len(list((tmp_path / "eml").glob("*/*.eml"))) == 1
    assert outbox.status_counts()["sent"] == 1


# -- email transports --------------------------------------------------------------------


def envelope_for(send: PlannedSend, n: int = 1, key: str | None = None) -> Envelope:
    return Envelope(
        key=key or attempt_key(doc(n), send.channel), invoice_id=invoice_id(n),
        invoice_number=invoice_number(n), document_id=f"doc-{n:03d}", channel=send.channel,
        recipient=send.recipient, payload=send.payload, filename=send.filename,
        content_type=send.content_type,
    )


def test_smtp_transport_sends_the_queued_bytes_to_the_envelope_recipient(smtp_server):
    send = email_send(1)
    receipt = smtp(smtp_server).send(envelope_for(send))

    [received] = smtp_server.messages
    assert received.rcpt_tos == [recipient(1)]
    assert received.mail_from == "billing@northwind.example"
    assert received.parsed()["Message-ID"] == message_id(1)
    assert (receipt.location, receipt.reference) == (
        f"smtp://127.0.0.1:{smtp_server.port}", message_id(1))


def test_smtp_transport_delivers_an_8bit_body_intact(smtp_server):
    key = attempt_key(doc(1), EMAIL)
    message = build_invoice_email(
        invoice_number=invoice_number(1), recipient=recipient(1), sender=SENDER,
        subject="Rechnung für Müller", html_body="<p>Grüße aus Köln</p>",
        text_body="Grüße aus Köln", pdf_bytes=PDF, pdf_filename="INV-2026-0001.pdf",
        message_id_domain=DOMAIN, idempotency_key=key,
    )
    payload = email_payload(message)
    send = PlannedSend(EMAIL, recipient(1), payload, "INV-2026-0001.eml", "message/rfc822")

    smtp(smtp_server).send(envelope_for(send))

    assert not payload.isascii()
    [received] = smtp_server.messages
    parsed = received.parsed()
    assert parsed["Subject"] == "Rechnung für Müller"
    assert parsed.get_body(("plain",)).get_content().strip() == "Grüße aus Köln"


def test_smtp_transport_refuses_a_message_not_built_for_its_envelope(smtp_server):
    transport = smtp(smtp_server)
    other_key = attempt_key(doc(2), EMAIL)
    with pytest.raises(PermanentDeliveryError, match="not one derived from its outbox key"):
        transport.send(envelope_for(email_send(1), key=other_key))
    redirected = PlannedSend(EMAIL, "someone@else.example", email_send(1).payload, "a", "b")
    with pytest.raises(PermanentDeliveryError,
                       match=r"addressed to \*\*\*@customer1.example, but queued for "
                             r"\*\*\*@else.example"):
        transport.send(envelope_for(redirected))
    with pytest.raises(InvalidRecipientError, match="hex digest"):
        transport.send(envelope_for(PlannedSend(EMAIL, "ebe31c0498dd42addc9e5fddd2fdabb8",
                                                email_send(1).payload, "a", "b")))
    assert smtp_server.messages == []


@pytest.mark.parametrize(
    ("rcpt_reply", "error"),
    [
        ("550 5.1.1 <ap1@customer1.example>: mailbox unavailable", InvalidRecipientError),
        ("553 mailbox name not allowed", InvalidRecipientError),
        ("550 5.7.1 relaying denied", ChannelUnavailableError),
        ("550 5.7.1 message refused by policy", PermanentDeliveryError),
        ("450 4.2.1 try later", TransientDeliveryError),
    ],
)
def test_smtp_recipient_refusals_are_classified_by_reply(smtp_server, rcpt_reply, error):
    smtp_server.handler.rcpt_replies.append(rcpt_reply)
    with pytest.raises(error) as caught:
        smtp(smtp_server).send(envelope_for(email_send(1)))
    assert type(caught.value) is error
    assert recipient(1) not in str(caught.value)


def test_smtp_transport_uses_starttls_and_login_when_configured(smtp_starttls_server):
    server = smtp_starttls_server
    transport = SmtpTransport(server.host, server.port, server.username, server.password,
                              starttls=True, timeout=10, ssl_context=server.client_ssl_context,
                              mail_from="Bounces <bounces@northwind.example>")
    transport.send(envelope_for(email_send(1)))

    [received] = server.messages
    assert (received.mail_from, received.parsed()["Message-ID"]) == (
        "bounces@northwind.example", message_id(1))


def test_eml_transport_writes_the_exact_bytes_once(tmp_path):
    transport = EmlFolderTransport(tmp_path / "eml")
    envelope = envelope_for(email_send(1))

    first = transport.send(envelope)
    second = transport.send(envelope)

    assert first == second
    target = Path(first.location)
    assert target.parent.name == "2026-03-02"
    assert target.name == f"INV-2026-0001-{envelope.key[:12]}.eml"
    assert target.read_bytes() == envelope.payload
    assert first.reference == message_id(1)


def test_email_payload_is_the_wire_form_of_the_message():
    message = build_invoice_email(
        invoice_number="INV-1", recipient="ap@customer.example", sender=SENDER,
        subject="Invoice INV-1", html_body="<p>x</p>", text_body="x", pdf_bytes=PDF,
        pdf_filename="INV-1.pdf", message_id_domain=DOMAIN, idempotency_key="k" * 64,
    )
    payload = email_payload(message)
    assert b"\r\n" in payload and b"\n" not in payload.replace(b"\r\n", b"")
    assert BytesParser(policy=policy.SMTP).parsebytes(payload)["Message-ID"] == (
        f"<invoice.{'k' * 64}@{DOMAIN}>")


# -- the warehouse copy and the marts ------------------------------------------------


def scenario(tmp_path: Path) -> Outbox:
    """Seven invoices with known outcomes (see test_export_feeds_the_delivery_marts)."""
    clock = Clock(dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC))
    outbox = Outbox(tmp_path / "ops.sqlite", clock=clock)
    edi = PlannedSend(EDI, "0088:5790000435951", b"<Invoice/>", "INV-2026-0002.xml",
                      "application/xml", sender_id="9930:DE811907980")
    outbox.enqueue([
        item(1, (email_send(1), portal_send(1))),
        item(2, (edi, email_send(2))),
        item(3, (email_send(3),)),
        item(4, (email_send(4), portal_send(4))),
        item(6, (email_send(6),)),
        item(7, (email_send(7),)),
    ], "run-1")
    channels = {EMAIL: EmlFolderTransport(tmp_path / "eml"),
                PORTAL: PortalStub(tmp_path / "portal")}
    in_review = {invoice_id(6), invoice_id(7)}

    def hold(invoice: str) -> str | None:
        return "waiting for review" if invoice in in_review else None

    outbox.process(channels, "run-1", hold=hold)
    clock.now = dt.datetime(2026, 3, 3, 7, 0, tzinfo=dt.UTC)
    for n in (3, 4):
        assert outbox.record_bounce(attempt_key(doc(n), EMAIL),
                                    f"550 5.1.1 <{recipient(n)}>: user unknown", "bounces-1")
    assert outbox.cancel(doc(6), "ana", "rejected in review")
    clock.now = dt.datetime(2026, 3, 3, 9, 0, tzinfo=dt.UTC)
    outbox.process(channels, "run-2", hold=hold)
    clock.now = dt.datetime(2026, 3, 3, 9, 30, tzinfo=dt.UTC)
    outbox.enqueue([item(5, (email_send(5), portal_send(5)))], "run-2")
    return outbox


def test_export_feeds_the_delivery_marts(tmp_path):
    outbox = scenario(tmp_path)
    warehouse = tmp_path / "warehouse.duckdb"
    with connect(outbox.store_path) as store, duckdb.connect(str(warehouse)) as duck:
        first = export_deliveries(store, duck)
        again = export_deliveries(store, duck)
        duck.execute("""
            create schema core;
            create table core.fct_invoices as select * from (values
                ('inv-001', 'INV-2026-0001', date '2026-03-01', date '2026-03-31', 'acct-1'),
                ('inv-002', 'INV-2026-0002', date '2026-03-01', date '2026-03-31', 'acct-2'),
                ('inv-003', 'INV-2026-0003', date '2026-02-27', date '2026-03-29', 'acct-0'),
                ('inv-004', 'INV-2026-0004', date '2026-03-01', date '2026-03-31', 'acct-1'),
                ('inv-005', 'INV-2026-0005', date '2026-03-02', date '2026-04-01', 'acct-2'),
                ('inv-006', 'INV-2026-0006', date '2026-03-01', date '2026-03-31', 'acct-0'),
                ('inv-007', 'INV-2026-0007', date '2026-03-02', date '2026-04-01', 'acct-1')
            ) as t (invoice_id, invoice_number, issue_date, due_date, account_key)
        """)
        copied = duck.sql("select column_name from information_schema.columns "
                          "where table_schema = 'q2c_ops' and column_name like '%payload%'"
                          ).fetchall()
        recipients = duck.sql("select distinct recipient from q2c_ops.outbox_payloads "
                              "order by 1").fetchall()

    # Events: 7 queued; run 1: claimed + sent for INV-1, INV-3, INV-4, claimed +
    # failed_over + sent for INV-2, claimed + held for INV-6 and INV-7 (13); bounces:
    # bounced + dead_letter (INV-3), bounced + failed_over (INV-4); cancelled (INV-6);
    # run 2: claimed + sent (INV-4), claimed + held (INV-7). 7 + 13 + 4 + 1 + 4 = 29.
    assert first == again == {"outbox": 7, "outbox_payloads": 11, "delivery_events": 29}
    assert sorted(copied) == [("payload_bytes",), ("payload_sha256",)]
    assert [r[0] for r in recipients] == [
        *(f"***@customer{n}.example" for n in range(1, 8)), "0088:5790000435951"]

    result = _dbt_build(tmp_path, warehouse, as_of="2026-03-03")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]

    with duckdb.connect(str(warehouse), read_only=True) as duck:
        deliveries = duck.sql("""
            select invoice_number, channel, plan_position, channel_status, is_delivered,
                   document_status, send_count, cast(sent_at as varchar),
                   cast(bounced_at as varchar), cast(failed_over_at as varchar)
            from delivery.fct_deliveries order by invoice_number, plan_position
        """).fetchall()
        dead = duck.sql("""
            select invoice_number, plan, channels_tried, attempts,
                   cast(dead_lettered_at as varchar), last_error
            from delivery.mart_delivery_dead_letters
        """).fetchall()
        kpi = duck.sql("""
            select cast(issue_month as varchar), invoices_on_time, invoices_late,
                   invoices_pending, invoices_measured, on_time_delivery_rate
            from delivery.kpi_on_time_delivery order by issue_month
        """).fetchall()

    day1, bounce, day2 = "2026-03-02 08:00:00", "2026-03-03 07:00:00", "2026-03-03 09:00:00"
    assert deliveries == [
        ("INV-2026-0001", "email", 0, "sent", True, "sent", 1, day1, None, None),
        ("INV-2026-0002", "edi", 0, "failed_over", False, "sent", 0, None, None, day1),
        ("INV-2026-0002", "email", 1, "sent", True, "sent", 1, day1, None, None),
        ("INV-2026-0003", "email", 0, "dead_letter", False, "dead_letter", 1, day1, bounce,
         None),
        ("INV-2026-0004", "email", 0, "failed_over", False, "sent", 1, day1, bounce, bounce),
        ("INV-2026-0004", "portal", 1, "sent", True, "sent", 1, day2, None, None),
        ("INV-2026-0006", "email", 0, "cancelled", False, "cancelled", 0, None, None, None),
        ("INV-2026-0007", "email", 0, "pending", False, "queued", 0, None, None, None),
    ]
    assert dead == [("INV-2026-0003", "email", 1, 1, bounce,
                     "bounced: 550 5.1.1 <***@customer3.example>: user unknown")]
    # As of 2026-03-03 with N = 1. February: INV-3 (issued 02-27) never delivered, overdue
    # since 02-28: late, 0 / 1. March: INV-1 and INV-2 sent 03-02, due by 03-02: on time;
    # INV-4's email bounced, the portal took it 03-03, after its deadline: late; INV-5
    # (issued 03-02, due by 03-03) not sent yet: pending, and so is INV-7 (held for review).
    # INV-6 (issued 03-01) was cancelled: not measured, or it would be late. 2 / 3 = 0.6667.
    assert [(m, on, late, pending, measured, float(rate)) for m, on, late, pending, measured,
            rate in kpi] == [
        ("2026-02-01", 0, 1, 0, 1, 0.0),
        ("2026-03-01", 2, 1, 2, 3, 0.6667),
    ]


def _dbt_build(tmp_path: Path, warehouse: Path, as_of: str) -> subprocess.CompletedProcess:
    """One dbt build of the delivery marts (with their tests and the KPI's unit test)."""
    env = os.environ | {"Q2C_WAREHOUSE": str(warehouse),
                        "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"}
    command = [
        str(DBT), "build", "--project-dir", str(REPO / "dbt_project"),
        "--profiles-dir", str(REPO / "dbt_project"),
        "--target-path", str(tmp_path / "dbt-target"), "--log-path", str(tmp_path / "dbt-logs"),
        "--select", "source:q2c_delivery", "fct_deliveries", "mart_delivery_dead_letters",
        "kpi_on_time_delivery", "--vars", f"{{as_of_date: '{as_of}'}}",
    ]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)
