"""Fault tests of the outbox, counted at a real SMTP server (aiosmtpd on 127.0.0.1).

Each test queues 20 invoice emails and counts what the server accepted, by Message-ID: the
server stopping mid-batch, the sending process killed mid-batch and resumed, two runs at
the same time, a permanent refusal and a bounce failing over to the portal, and the audit
trail's hash chain.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from outbox_support import (
    PortalStub,
    email_send,
    invoice_id,
    invoice_number,
    item,
    message_id,
    portal_send,
    recipient,
    tiny_retry,
)

from q2c.delivery import audit
from q2c.delivery.envelope import EMAIL, PORTAL
from q2c.delivery.mail_transport import SmtpTransport
from q2c.delivery.outbox import Outbox, RetryPolicy, attempt_key, document_key
from q2c.opsdb import connect

HOST = "127.0.0.1"
COUNT = 20
WORKER = Path(__file__).resolve().parent / "outbox_support.py"
REPO = Path(__file__).resolve().parents[1]


@dataclass
class CountingHandler:
    """Accepts mail and counts it, and plays the faults a test asks for.

    Attributes:
        reject: RCPT reply per recipient address, e.g. a 550 for one mailbox.
        stop_after: Close the listening socket after this many accepted messages, so the
            next connection is refused, as when the server goes down.
        kill_before: SIGKILL `victim` when this message (1-based) reaches DATA, then refuse
            it: a client that died mid-transaction has delivered nothing.
        rendezvous: Hold each of the first messages at DATA until this many have arrived,
            so that two concurrent senders are both mid-send at once.
    """

    reject: dict[str, str] = field(default_factory=dict)
    stop_after: int | None = None
    kill_before: int | None = None
    victim: subprocess.Popen | None = None
    rendezvous: int = 0
    accepted: list[bytes] = field(default_factory=list)
    killed_message_id: str | None = None
    controller: Controller | None = None
    _arrived: int = 0
    _gathered: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.reject:
            return self.reject[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        content = bytes(envelope.content)
        if self.kill_before is not None and len(self.accepted) + 1 == self.kill_before:
            os.kill(self.victim.pid, signal.SIGKILL)
            self.kill_before = None
            self.killed_message_id = _message_id(content)
            return "451 4.3.0 sender went away"
        if self._arrived < self.rendezvous:
            self._arrived += 1
            if self._arrived == self.rendezvous:
                self._gathered.set()
            try:
                await asyncio.wait_for(self._gathered.wait(), timeout=20)
            except TimeoutError:
                pass  # the test's assertion on both senders names the problem
        self.accepted.append(content)
        if self.stop_after is not None and len(self.accepted) == self.stop_after:
            self.controller.server.close()
        return "250 Message accepted for delivery"

    def message_ids(self) -> Counter:
        return Counter(_message_id(content) for content in self.accepted)


class _LoopbackController(Controller):
    """Binds port 0 and learns the port before its own start-up check."""

    def _trigger_server(self) -> None:
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@dataclass
class MailServer:
    handler: CountingHandler
    port: int = 0
    controller: Controller | None = None

    def start(self) -> None:
        self.controller = _LoopbackController(self.handler, hostname=HOST, port=self.port)
        self.controller.start()
        self.port = self.controller.port
        self.handler.controller = self.controller

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def mail_server():
    server = MailServer(CountingHandler())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _message_id(content: bytes) -> str:
    parsed = BytesParser(policy=policy.default).parsebytes(content, headersonly=True)
    return str(parsed["Message-ID"])


def every_invoice_once() -> Counter:
    return Counter({message_id(n): 1 for n in range(1, COUNT + 1)})


def smtp(server: MailServer) -> SmtpTransport:
    return SmtpTransport(HOST, server.port, timeout=10)


def run_worker(store: Path, port: int, run_id: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(WORKER), "--store", str(store), "--port", str(port),
         "--run-id", run_id, *extra],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def finished(process: subprocess.Popen) -> dict:
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-3000:]
    return json.loads(stdout.strip().splitlines()[-1])


def events_of(outbox: Outbox, n: int) -> list[tuple[str, str | None]]:
    return [(e.event, e.channel) for e in outbox.events(document_key(invoice_id(n)))]


def test_server_stopping_mid_batch_leaves_the_rest_for_the_next_run(tmp_path, mail_server):
    mail_server.handler.stop_after = 7
    outbox = Outbox(tmp_path / "ops.sqlite")
    outbox.enqueue([item(n) for n in range(1, COUNT + 1)], "run-1")
    retry = tiny_retry(max_seconds=0)

    first = outbox.process({EMAIL: smtp(mail_server)}, "run-1", retry=retry)
    after_first = outbox.status_counts()
    mail_server.stop()
    mail_server.start()  # the same port again
    second = outbox.process({EMAIL: smtp(mail_server)}, "run-2", retry=retry)

    assert (first.sent, first.failed_retry, first.dead_letter) == (7, 13, 0)
    assert after_first == {"queued": 0, "claimed": 0, "sent": 7, "failed_retry": 13,
                           "dead_letter": 0, "cancelled": 0}
    assert (second.sent, second.failed_retry, second.dead_letter) == (13, 0, 0)
    assert mail_server.handler.message_ids() == every_invoice_once()
    assert len(mail_server.handler.accepted) == COUNT
    eighth = outbox.events(document_key(invoice_id(8)))
    assert [e.event for e in eighth] == [
        "queued", "claimed", "retry_scheduled", "retry_scheduled", "claimed", "sent"]
    assert "refused the connection" in eighth[2].detail
    assert outbox.verify() == []


def test_process_killed_mid_batch_and_resumed_sends_each_invoice_once(tmp_path, mail_server):
    store = tmp_path / "ops.sqlite"
    outbox = Outbox(store)
    outbox.enqueue([item(n) for n in range(1, COUNT + 1)], "queue-run")

    victim = run_worker(store, mail_server.port, "run-killed", "--lease", "1.5")
    mail_server.handler.victim, mail_server.handler.kill_before = victim, 9
    victim.communicate(timeout=120)
    _wait_for_leases_to_expire(store)
    resumed = finished(run_worker(store, mail_server.port, "run-resumed", "--lease", "1.5"))

    assert victim.returncode == -signal.SIGKILL
    assert mail_server.handler.killed_message_id == message_id(9)
    assert resumed["counts"]["sent"] == COUNT - 8
    assert resumed["counts"]["resent_in_doubt"] == 1
    assert mail_server.handler.message_ids() == every_invoice_once()
    assert len(mail_server.handler.accepted) == COUNT
    in_doubt = [e for e in outbox.events() if e.event == "resent_in_doubt"]
    assert [(e.invoice_number, e.run_id) for e in in_doubt] == [(invoice_number(9),
                                                                 "run-resumed")]
    assert "run-killed/" in in_doubt[0].detail
    assert events_of(outbox, 9) == [("queued", None), ("claimed", "email"),
                                    ("resent_in_doubt", "email"), ("sent", "email")]
    assert outbox.status_counts()["sent"] == COUNT
    assert outbox.verify() == []


def _wait_for_leases_to_expire(store: Path) -> None:
    with connect(store) as conn:
        [latest] = conn.execute(
            "select max(lease_expires_at) from outbox where status = 'claimed'").fetchone()
    assert latest is not None, "the killed run left no claimed row"
    expires = time.mktime(time.strptime(latest[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    time.sleep(max(0.0, expires + 1.05 - time.time()))


def test_two_concurrent_runs_send_each_invoice_once(tmp_path, mail_server):
    store = tmp_path / "ops.sqlite"
    outbox = Outbox(store)
    outbox.enqueue([item(n) for n in range(1, COUNT + 1)], "queue-run")
    mail_server.handler.rendezvous = 2
    go = tmp_path / "go"

    workers = [
        run_worker(store, mail_server.port, f"run-{name}", "--ready",
                   str(tmp_path / f"ready-{name}"), "--go", str(go))
        for name in ("a", "b")
    ]
    while not all((tmp_path / f"ready-{name}").exists() for name in ("a", "b")):
        time.sleep(0.01)
    go.touch()
    reports = [finished(worker) for worker in workers]

    sent_a, sent_b = (set(report["sent"]) for report in reports)
    assert sent_a and sent_b, "both runs must have sent: the rendezvous holds the first send"
    assert sent_a.isdisjoint(sent_b)
    assert sent_a | sent_b == {invoice_number(n) for n in range(1, COUNT + 1)}
    assert mail_server.handler.message_ids() == every_invoice_once()
    assert len(mail_server.handler.accepted) == COUNT
    assert outbox.status_counts()["sent"] == COUNT
    assert [e.event for e in outbox.events()].count("sent") == COUNT
    assert outbox.verify() == []


def test_a_refused_mailbox_fails_over_to_the_portal_or_dead_letters_alone(
    tmp_path, mail_server
):
    mail_server.handler.reject[recipient(7)] = (
        f"550 5.1.1 <{recipient(7)}>: Recipient address rejected: mailbox unavailable")
    portal = PortalStub(tmp_path / "portal")
    with_portal = Outbox(tmp_path / "with-portal.sqlite")
    with_portal.enqueue([item(n, (email_send(n), portal_send(n)))
                         for n in range(1, COUNT + 1)], "run-1")
    email_only = Outbox(tmp_path / "email-only.sqlite")
    email_only.enqueue([item(n) for n in range(1, COUNT + 1)], "run-1")

    failover = with_portal.process({EMAIL: smtp(mail_server), PORTAL: portal}, "run-1",
                                   retry=tiny_retry())
    after_failover = Counter(mail_server.handler.message_ids())
    dead = email_only.process({EMAIL: smtp(mail_server)}, "run-2", retry=tiny_retry())

    expected = every_invoice_once() - Counter({message_id(7): 1})
    assert after_failover == expected
    assert (failover.sent, failover.failovers, failover.dead_letter) == (COUNT, 1, 0)
    assert portal.files() == [
        f"{attempt_key(document_key(invoice_id(7)), PORTAL)[:12]}-INV-2026-0007.pdf"]
    seventh = with_portal.events(document_key(invoice_id(7)))
    assert [(e.event, e.channel) for e in seventh] == [
        ("queued", None), ("claimed", "email"), ("failed_over", "email"), ("sent", "portal")]
    assert seventh[2].detail.startswith("email -> portal: SMTP server 127.0.0.1:")
    assert "550 5.1.1 <***@customer7.example>" in seventh[2].detail
    assert recipient(7) not in " ".join(e.detail for e in seventh)

    assert (dead.sent, dead.dead_letter) == (COUNT - 1, 1)
    assert [d.invoice_number for d in email_only.dead_letters()] == [invoice_number(7)]
    assert email_only.status_counts() == {"queued": 0, "claimed": 0, "sent": COUNT - 1,
                                          "failed_retry": 0, "dead_letter": 1,
                                          "cancelled": 0}
    assert events_of(email_only, 7) == [("queued", None), ("claimed", "email"),
                                        ("dead_letter", "email")]
    assert mail_server.handler.message_ids() == expected + expected


def test_a_bounce_after_sending_fails_over_to_the_next_channel(tmp_path, mail_server):
    outbox = Outbox(tmp_path / "ops.sqlite")
    outbox.enqueue([item(n, (email_send(n), portal_send(n))) for n in range(1, COUNT + 1)],
                   "run-1")
    portal = PortalStub(tmp_path / "portal")
    channels = {EMAIL: smtp(mail_server), PORTAL: portal}
    first = outbox.process(channels, "run-1", retry=tiny_retry())
    bounced_key = attempt_key(document_key(invoice_id(3)), EMAIL)
    diagnostic = f"smtp; 550 5.1.1 <{recipient(3)}>: user unknown"

    recorded = outbox.record_bounce(bounced_key, diagnostic, "bounces-1")
    repeated = outbox.record_bounce(bounced_key, diagnostic, "bounces-2")
    unknown = outbox.record_bounce("f" * 64, diagnostic, "bounces-2")
    second = outbox.process(channels, "run-2", retry=tiny_retry())

    assert (first.sent, recorded, repeated, unknown) == (COUNT, True, True, False)
    assert [(o.invoice_number, o.status, o.channel) for o in second.outcomes] == [
        (invoice_number(3), "sent", "portal")]
    assert mail_server.handler.message_ids() == every_invoice_once()
    assert len(portal.files()) == 1
    third = outbox.events(document_key(invoice_id(3)))
    assert [(e.event, e.channel, e.run_id) for e in third] == [
        ("queued", None, "run-1"), ("claimed", "email", "run-1"), ("sent", "email", "run-1"),
        ("bounced", "email", "bounces-1"), ("failed_over", "email", "bounces-1"),
        ("claimed", "portal", "run-2"), ("sent", "portal", "run-2")]
    assert third[3].detail == "smtp; 550 5.1.1 <***@customer3.example>: user unknown"
    assert third[3].attempt_key == bounced_key
    assert third[6].attempt_key == attempt_key(document_key(invoice_id(3)), PORTAL)
    assert outbox.status_counts()["sent"] == COUNT


def test_the_audit_chain_verifies_and_shows_any_edit(tmp_path, mail_server):
    store = tmp_path / "ops.sqlite"
    outbox = Outbox(store)
    outbox.enqueue([item(n) for n in range(1, COUNT + 1)], "run-1")
    report = outbox.process({EMAIL: smtp(mail_server)}, "run-1", retry=tiny_retry())
    head = report.chain_head

    assert len(mail_server.handler.accepted) == COUNT
    assert head[0] == 3 * COUNT  # queued, claimed and sent per invoice
    assert outbox.verify(known_head=head) == []
    with connect(store) as conn:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("update delivery_events set detail = 'edited' where seq = 5")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("delete from delivery_events where seq = 5")
    assert outbox.verify(known_head=head) == []

    raw = sqlite3.connect(store)
    raw.executescript("""
        drop trigger delivery_events_no_update;
        drop trigger delivery_events_no_delete;
        update delivery_events set detail = 'via email to someone else' where seq = 22;
        delete from delivery_events where seq = 40;
    """)
    raw.commit()
    edited = outbox.events()[21]
    problems = outbox.verify(known_head=head)

    assert (edited.seq, edited.event) == (22, "sent")
    assert problems == [
        f"event 22 (sent, invoice {edited.invoice_number}) does not match its hash: it was "
        "changed after it was recorded",
        "events 40 to 40 are missing: the trail was cut",
        f"event 41 ({outbox.events()[39].event}, invoice {outbox.events()[39].invoice_number})"
        " does not link to the event before it: an event before it was changed or deleted",
    ]

    raw.execute(f"delete from delivery_events where seq > {head[0] - 2}")
    raw.commit()
    raw.close()
    assert outbox.verify(known_head=head)[-1] == f"event {head[0]}, recorded earlier as the "\
        "head, is gone"
    assert audit.GENESIS_HASH == "0" * 64


# -- the channel itself out of order: our login or sender refused ----------------------

SENDER_REFUSED = ("550 5.7.1 <billing@northwind.example>: Sender address rejected: "
                  "not owned by user")


def test_a_refused_sender_keeps_every_invoice_for_a_later_run_not_dead_letters(
    tmp_path, smtp_server
):
    """MAIL FROM refused with 550 5.7.1: the server would refuse every invoice the same
    way. The run stops trying email after `trip_after` rows, no row fails over to the
    portal or becomes a dead letter, and no row moves closer to giving up on email."""
    smtp_server.handler.mail_replies.extend([SENDER_REFUSED] * 10)
    outbox = Outbox(tmp_path / "ops.sqlite")
    outbox.enqueue([item(n, (email_send(n), portal_send(n))) for n in range(1, 4)]
                   + [item(n) for n in range(4, 6)], "run-1")
    portal = PortalStub(tmp_path / "portal")
    waits: list[float] = []
    # A plain transient failure would give up on email after 2 failures and fail over.
    retry = RetryPolicy(max_attempts=2, base_seconds=1, give_up_after=2, trip_after=2,
                        sleep=waits.append)

    report = outbox.process({EMAIL: SmtpTransport(smtp_server.host, smtp_server.port,
                                                  timeout=10), PORTAL: portal},
                            "run-1", retry=retry)

    assert [(o.invoice_number, o.status, o.attempts) for o in report.outcomes] == [
        (invoice_number(1), "failed_retry", 2), (invoice_number(2), "failed_retry", 2),
        (invoice_number(3), "failed_retry", 0), (invoice_number(4), "failed_retry", 0),
        (invoice_number(5), "failed_retry", 0)]
    assert len(smtp_server.handler.mail_replies) == 10 - 4  # 2 rows x 2 attempts tried
    assert waits == [1, 1]
    assert (report.failovers, report.dead_letter, outbox.dead_letters()) == (0, 0, [])
    assert portal.files() == [] and smtp_server.messages == []
    assert outbox.status_counts()["failed_retry"] == 5
    with connect(outbox.store_path) as conn:
        rows = conn.execute("select invoice_number, attempts, channel_attempts, channel_index "
                            "from outbox order by invoice_number").fetchall()
    assert [tuple(row) for row in rows] == [
        (invoice_number(1), 2, 0, 0), (invoice_number(2), 2, 0, 0),
        (invoice_number(3), 0, 0, 0), (invoice_number(4), 0, 0, 0),
        (invoice_number(5), 0, 0, 0)]
    first = outbox.events(document_key(invoice_id(1)))[-1]
    assert first.event == "retry_scheduled"
    assert (f"SMTP server 127.0.0.1:{smtp_server.port} refused the sender "
            "***@northwind.example (550 5.7.1") in first.detail
    assert "check that Q2C_MAIL_FROM may send through this server" in first.detail
    assert outbox.events(document_key(invoice_id(3)))[-1].detail.startswith(
        "not tried: channel email (email:smtp) failed for 2 invoices in a row in this run")


def test_a_refused_login_keeps_the_batch_for_a_later_run(tmp_path, smtp_starttls_server):
    server = smtp_starttls_server
    outbox = Outbox(tmp_path / "ops.sqlite")
    outbox.enqueue([item(n) for n in range(1, 4)], "run-1")
    wrong = SmtpTransport(server.host, server.port, server.username, "wrong", starttls=True,
                          timeout=10, ssl_context=server.client_ssl_context)

    report = outbox.process({EMAIL: wrong}, "run-1",
                            retry=tiny_retry(give_up_after=1, trip_after=1))

    assert [(o.status, o.attempts) for o in report.outcomes] == [
        ("failed_retry", 2), ("failed_retry", 0), ("failed_retry", 0)]
    assert outbox.dead_letters() == [] and server.messages == []
    detail = outbox.events(document_key(invoice_id(1)))[-1].detail
    assert "rejected the login of user 'billing' (535" in detail
    assert "check Q2C_SMTP_USER and Q2C_SMTP_PASSWORD" in detail

    time.sleep(0.02)  # past the tiny deferral
    right = SmtpTransport(server.host, server.port, server.username, server.password,
                          starttls=True, timeout=10, ssl_context=server.client_ssl_context)
    fixed = outbox.process({EMAIL: right}, "run-2", retry=tiny_retry())
    assert fixed.sent == 3
    assert sorted(str(m.parsed()["Message-ID"]) for m in server.messages) == sorted(
        message_id(n) for n in range(1, 4))
