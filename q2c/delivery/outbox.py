"""The delivery outbox: every document goes out once, through the first channel that takes it.

One row per document (an invoice, a credit note) holds its ordered channel plan, say EDI
then email then portal, and where it stands. The bytes to send for each channel are fixed
when the document is queued (`outbox_payloads`), so a retry, a resumed run or a second run
started by mistake sends exactly what was approved and rendered.

How a run works (`Outbox.process`):

- It claims one row at a time in a `BEGIN IMMEDIATE` transaction and marks it `claimed`
  with a lease, so two processes never take the same row. The send itself happens outside
  any transaction; the outcome and its audit event commit together afterwards.
- A `TransientDeliveryError` is retried with exponential backoff inside the run; if it
  still fails, the row goes back to `failed_retry` with `next_attempt_at`, for the next
  run. When one channel keeps failing for several invoices in a row, the rest of the run
  stops trying it and defers its rows, so a mail server that is down does not cost a
  backoff per invoice.
- A `PermanentDeliveryError` or `InvalidRecipientError` (or a channel this run has no
  transport for) fails over to the next channel of the plan at once; with no channel left
  the row is a `dead_letter`, listed by `dead_letters()` until someone requeues it.
- A `ChannelUnavailableError` (the server refuses our login or sender, TLS fails, nothing
  answers) is transient but the channel's fault, not the invoice's: it never counts
  towards `RetryPolicy.give_up_after`, so a broken mail setup leaves rows `failed_retry`
  instead of failing every invoice over or into the dead letters.
- A `hold` callback, asked just before each send, can keep a claimed row back (say, an
  invoice a reviewer reopened after it was queued): the row returns to `queued` without
  an attempt counted, and the audit trail records `held` with the reason.
- `pace` (`SendPace`) spaces the sends of a run out, so a backlog or a backfill does not
  flood a mail relay; `invoice_ids` keeps a run to some invoices (a backfill of some issue
  dates delivers only those days).
- `cancel` ends a row that was never sent for good (`cancelled`, say for a rejected
  invoice); no run claims it again.
- A row still `claimed` after its lease expired belongs to a run that died between handing
  the document over and recording it. Nobody knows whether it went out, so it is sent again
  with the same attempt key (the same Message-ID, object key or file name) and the audit
  trail records `resent_in_doubt`.

Exactly once, honestly: the outbox never sends a document twice on its own account, and
never drops one. The one window it cannot close is a process that dies after the receiver
accepted a document and before the outbox recorded it; that document is sent again on
resume with the same idempotency key, so the receiver (a mail server keyed on Message-ID,
an S3 object, the `.eml` folder) can recognise it, but an SMTP server will see it twice.

Keys: the document key is sha256("q2c-outbox-v1", invoice id, document kind); the attempt
key of one channel is sha256(document key, channel). Build an email's Message-ID from the
attempt key (`attempt_key(document_key(invoice_id), EMAIL)`) before queueing it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from q2c.delivery import audit
from q2c.delivery.addresses import mask_address, scrub_address
from q2c.delivery.envelope import CHANNELS, Channel, ChannelReceipt, Envelope
from q2c.delivery.errors import (
    ChannelUnavailableError,
    InvalidRecipientError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from q2c.opsdb import connect, ensure_schema, transaction

logger = logging.getLogger(__name__)

QUEUED = "queued"
CLAIMED = "claimed"
SENT = "sent"
FAILED_RETRY = "failed_retry"
DEAD_LETTER = "dead_letter"
CANCELLED = "cancelled"
STATUSES = (QUEUED, CLAIMED, SENT, FAILED_RETRY, DEAD_LETTER, CANCELLED)
# Outcomes, not statuses: this run sent (or was about to send) a row another run took over;
# the hold callback kept a row back (it is queued again).
LEASE_LOST = "lease_lost"
HELD = "held"

# Functional acknowledgement statuses (X12 AK5-01 / AK9-01) that accept a document:
# accepted, accepted with errors noted.
ACCEPTED_ACK_STATUSES = frozenset({"A", "E"})

KEY_VERSION = "q2c-outbox-v1"
# The kinds of the invoice documents; a reminder's kind is `reminder_<stage>`, sent only
# by the dunning run, which checks right before the send that it is still due.
DOCUMENT_KINDS = frozenset({"invoice", "credit_note"})
DEFAULT_LEASE_SECONDS = 300.0
_ENQUEUE_CHUNK = 200

OUTBOX_TABLE_DDL = f"""
create table if not exists outbox (
    document_key text primary key,
    kind text not null,
    invoice_id text not null,
    invoice_number text not null,
    document_id text not null,
    account_key text,
    plan text not null,
    decision text not null,
    channel_index integer not null default 0,
    status text not null check (status in ({", ".join(f"'{s}'" for s in STATUSES)})),
    attempts integer not null default 0,
    channel_attempts integer not null default 0,
    next_attempt_at text,
    claimed_by text,
    lease_expires_at text,
    last_error text,
    sent_attempt_key text,
    sent_channel text,
    sent_at text,
    receipt_location text,
    receipt_reference text,
    queued_at text not null,
    updated_at text not null,
    run_id text not null
);
"""

OUTBOX_DDL = OUTBOX_TABLE_DDL + f"""
create index if not exists outbox_due on outbox (status, next_attempt_at);

create table if not exists outbox_payloads (
    attempt_key text primary key,
    document_key text not null references outbox (document_key),
    position integer not null,
    channel text not null,
    recipient text not null,
    payload blob not null,
    payload_sha256 text not null,
    payload_bytes integer not null,
    filename text not null,
    content_type text not null,
    notice blob,
    sender_id text,
    headers text not null,
    unique (document_key, position)
);

{audit.AUDIT_DDL}
"""


def document_key(invoice_id: str, kind: str = "invoice") -> str:
    """The outbox key of one document: the same invoice and kind always give the same key."""
    return _digest(KEY_VERSION, invoice_id.strip(), kind.strip().lower())


def attempt_key(doc_key: str, channel: str) -> str:
    """The idempotency key of one document on one channel (Message-ID, object key, file)."""
    return _digest(doc_key, channel.strip().lower())


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class PlannedSend:
    """What to send on one channel of the plan; the envelope key is the outbox's business.

    Attributes:
        channel: One of EMAIL, PORTAL, EDI (`q2c.delivery.envelope`).
        recipient: The address, Peppol participant id or notice address for the channel.
        payload: The exact bytes (for email the RFC 5322 message whose Message-ID comes
            from `attempt_key`).
        filename: The name the payload is stored under.
        content_type: MIME type of the payload.
        notice: For the portal, the notification email.
        sender_id: For EDI, the seller's participant id.
        headers: Extra envelope headers a channel may use.
    """

    channel: str
    recipient: str
    payload: bytes
    filename: str
    content_type: str
    notice: bytes | None = None
    sender_id: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OutboxItem:
    """One approved, rendered document and its ordered channel plan.

    `decision` is the channel policy's record of why this plan (chosen, skipped and why);
    it is stored with the row, and its `skipped` entries become `skipped` audit events.
    """

    invoice_id: str
    invoice_number: str
    document_id: str
    account_key: str | None
    plan: tuple[PlannedSend, ...]
    decision: Mapping[str, object] = field(default_factory=dict)
    kind: str = "invoice"

    @property
    def document_key(self) -> str:
        return document_key(self.invoice_id, self.kind)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one run tries a channel that fails transiently.

    Attributes:
        max_attempts: Sends per row and channel within one run.
        base_seconds: The first wait; each further wait doubles, up to `max_seconds`.
        max_seconds: Cap of one wait, and of the deferral to the next run.
        give_up_after: Transient failures of one row on one channel, across runs, after
            which the channel counts as failed for good and the row fails over. None never
            gives up.
        trip_after: Rows in a row whose channel exhausted its retries before the run stops
            trying that channel and defers its remaining rows to the next run.
        sleep: Waits between attempts; tests pass a recorder.
    """

    max_attempts: int = 3
    base_seconds: float = 2.0
    max_seconds: float = 300.0
    give_up_after: int | None = 20
    trip_after: int = 3
    sleep: Callable[[float], None] = time.sleep

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return min(self.max_seconds, self.base_seconds * 2 ** max(attempt - 1, 0))


class SendPace:
    """At most `per_second` hand-overs per second in one run, for a relay that limits senders.

    A backlog or a backfill of many days would otherwise hand the mail relay (or SES) as
    many messages as it takes, and a relay that throttles senders answers with deferrals
    that cost the run a backoff each. The first send goes at once; each next one waits
    until 1 / `per_second` seconds after the one before.

    Args:
        per_second: Sends per second, above zero.
        clock: Monotonic seconds; tests pass their own.
        sleep: Waits; tests pass a recorder.

    Raises:
        ValueError: `per_second` is not above zero.
    """

    def __init__(self, per_second: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not per_second > 0:
            raise ValueError(f"sends per second must be above zero, got {per_second}: leave "
                             "the pace out to send without a limit")
        self.interval = 1.0 / per_second
        self._clock, self._sleep = clock, sleep
        self._next_at: float | None = None

    def wait(self) -> None:
        """Return when the next send may go, and count it."""
        now = self._clock()
        if self._next_at is not None and now < self._next_at:
            self._sleep(self._next_at - now)
            now = self._next_at
        self._next_at = now + self.interval


@dataclass
class EnqueueReport:
    """Document keys queued now, and those the outbox already had (left untouched)."""

    queued: list[str] = field(default_factory=list)
    already_known: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SendOutcome:
    """What one claimed row ended as in this run."""

    document_key: str
    invoice_number: str
    status: str
    channel: str | None
    attempts: int
    resent_in_doubt: bool = False
    failovers: int = 0
    location: str | None = None
    error: str | None = None


@dataclass
class OutboxReport:
    """One `process` call: an outcome per claimed row, and the audit chain head after it."""

    run_id: str
    worker: str
    outcomes: list[SendOutcome] = field(default_factory=list)
    chain_head: tuple[int, str] = (0, audit.GENESIS_HASH)

    def count(self, status: str) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == status)

    @property
    def sent(self) -> int:
        return self.count(SENT)

    @property
    def failed_retry(self) -> int:
        return self.count(FAILED_RETRY)

    @property
    def dead_letter(self) -> int:
        return self.count(DEAD_LETTER)

    @property
    def held(self) -> int:
        return self.count(HELD)

    @property
    def resent_in_doubt(self) -> int:
        return sum(1 for outcome in self.outcomes if outcome.resent_in_doubt)

    @property
    def failovers(self) -> int:
        return sum(outcome.failovers for outcome in self.outcomes)

    def counts(self) -> dict[str, int]:
        """Counts for run metadata: final statuses plus failovers and in-doubt resends."""
        return {
            SENT: self.sent, FAILED_RETRY: self.failed_retry, DEAD_LETTER: self.dead_letter,
            "lease_lost": self.count(LEASE_LOST), HELD: self.held, "failovers": self.failovers,
            "resent_in_doubt": self.resent_in_doubt,
        }


@dataclass(frozen=True)
class DeadLetter:
    """A document no channel of its plan would take."""

    document_key: str
    invoice_id: str
    invoice_number: str
    account_key: str | None
    plan: tuple[str, ...]
    attempts: int
    last_error: str | None
    updated_at: str


@dataclass(frozen=True)
class _Claim:
    document_key: str
    invoice_id: str
    invoice_number: str
    document_id: str
    plan: tuple[str, ...]
    channel_index: int
    channel_attempts: int
    in_doubt: bool


@dataclass(frozen=True)
class _Stored:
    """One stored payload row, as an envelope plus its integrity check."""

    envelope: Envelope
    position: int
    payload_sha256: str


@dataclass(frozen=True)
class _Result:
    """How one channel ended for a row: sent, retry later, or failed for good."""

    kind: str  # "sent", "retry", "permanent", "lost", "held"
    receipt: ChannelReceipt | None = None
    error: str | None = None
    attempts: int = 0
    # Attempts that failed because the channel was unavailable; they do not count
    # towards giving up on the channel for this row.
    unavailable: int = 0


class _Breaker:
    """Counts rows in a row whose channel exhausted its retries; trips at a threshold."""

    def __init__(self, trip_after: int) -> None:
        self.trip_after = max(trip_after, 1)
        self.failures: dict[str, int] = {}

    def is_open(self, channel: str) -> bool:
        return self.failures.get(channel, 0) >= self.trip_after

    def failed(self, channel: str) -> None:
        self.failures[channel] = self.failures.get(channel, 0) + 1

    def worked(self, channel: str) -> None:
        self.failures[channel] = 0


class Outbox:
    """The outbox in the operational store at `store_path` (`Settings.ops_store`).

    Args:
        store_path: The SQLite file; created with its tables when missing.
        lease_seconds: How long a claim lasts without being renewed (each attempt renews
            it). Keep it well above the slowest send plus the in-run backoff: a run that
            outlives its lease can be taken over and the document sent twice.
        clock: Returns the current time (timezone-aware); tests pin it.
    """

    def __init__(
        self,
        store_path: Path,
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.store_path = Path(store_path)
        self.lease_seconds = lease_seconds
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        with connect(self.store_path) as conn:
            ensure_schema(conn, OUTBOX_DDL)
            _allow_new_statuses(conn)

    # -- queueing ---------------------------------------------------------------------

    def enqueue(self, items: Iterable[OutboxItem], run_id: str) -> EnqueueReport:
        """Queue documents; a document already in the outbox is left exactly as it is.

        The payload of a known document is never replaced: what was approved and rendered
        first is what goes out. A changed document is a new document (a credit note and a
        new invoice), never an edit of a queued one.

        Raises:
            ValueError: An item's plan is empty, names an unknown channel or one twice.
        """
        items = list(items)
        for item in items:
            _check_item(item)
        report = EnqueueReport()
        with connect(self.store_path) as conn:
            for start in range(0, len(items), _ENQUEUE_CHUNK):
                with transaction(conn):
                    for item in items[start:start + _ENQUEUE_CHUNK]:
                        if self._insert_item(conn, item, run_id):
                            report.queued.append(item.document_key)
                        else:
                            report.already_known.append(item.document_key)
        logger.info("outbox: %d documents queued, %d already known", len(report.queued),
                    len(report.already_known))
        return report

    def _insert_item(self, conn: sqlite3.Connection, item: OutboxItem, run_id: str) -> bool:
        key = item.document_key
        if conn.execute("select 1 from outbox where document_key = ?", (key,)).fetchone():
            logger.debug("invoice %s already in the outbox; not queued again",
                         item.invoice_number)
            return False
        now = self._stamp()
        plan = [send.channel for send in item.plan]
        conn.execute(
            """
            insert into outbox (document_key, kind, invoice_id, invoice_number, document_id,
                account_key, plan, decision, status, queued_at, updated_at, run_id)
            values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            (key, item.kind, item.invoice_id, item.invoice_number, item.document_id,
             item.account_key, json.dumps(plan),
             json.dumps(item.decision, sort_keys=True, default=str), QUEUED, now, now, run_id),
        )
        for position, send in enumerate(item.plan):
            conn.execute(
                """
                insert into outbox_payloads (attempt_key, document_key, position, channel,
                    recipient, payload, payload_sha256, payload_bytes, filename,
                    content_type, notice, sender_id, headers)
                values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                (attempt_key(key, send.channel), key, position, send.channel, send.recipient,
                 send.payload, hashlib.sha256(send.payload).hexdigest(), len(send.payload),
                 send.filename, send.content_type, send.notice, send.sender_id,
                 json.dumps(dict(send.headers), sort_keys=True)),
            )
        event = _EventWriter(conn, key, item.invoice_id, item.invoice_number, run_id, now)
        event(audit.QUEUED, f"plan {' -> '.join(plan)}")
        for channel, reason in _skipped_channels(item.decision):
            event(audit.SKIPPED, reason, channel=channel)
        return True

    # -- sending ----------------------------------------------------------------------

    def process(
        self,
        channels: Mapping[str, Channel],
        run_id: str,
        *,
        retry: RetryPolicy | None = None,
        limit: int | None = None,
        hold: Callable[[str], str | None] | None = None,
        invoice_ids: Collection[str] | None = None,
        pace: SendPace | None = None,
        kinds: Collection[str] = DOCUMENT_KINDS,
    ) -> OutboxReport:
        """Deliver due rows until none is left (or `limit` rows were claimed).

        Args:
            channels: The transport for each plan channel, e.g. {"email": SmtpTransport}.
                A plan channel missing here fails over, with a message saying so.
            run_id: Recorded on every event (the Dagster run id).
            retry: Backoff and give-up rules; RetryPolicy() when omitted.
            limit: Claim at most this many rows.
            hold: Asked with the invoice id of a claimed row just before each send. A
                returned reason keeps the row back: it goes back to `queued` (no attempt
                counted, lease released, not claimed again in this run) and the audit
                trail records `held` with the reason. None lets the send go ahead. A hold
                that raises keeps the row back too: when in doubt, nothing goes out.
            invoice_ids: Claim only rows of these invoices (a backfill of some issue dates
                delivers those days); None claims every due row.
            pace: Spaces the sends out (`SendPace`); None sends as fast as the channels
                take them.
            kinds: Claim only rows of these kinds; the invoice documents by default, so an
                invoice run never sends a reminder the dunning run has not checked.
        """
        retry = retry or RetryPolicy()
        only = None if invoice_ids is None else json.dumps(sorted(set(invoice_ids)))
        of_kinds = json.dumps(sorted(set(kinds)))
        worker = f"{run_id}/{os.getpid()}/{secrets.token_hex(4)}"
        report = OutboxReport(run_id=run_id, worker=worker)
        breaker = _Breaker(retry.trip_after)
        with connect(self.store_path) as conn:
            while limit is None or len(report.outcomes) < limit:
                claim = self._claim(conn, worker, run_id, only, of_kinds)
                if claim is None:
                    break
                outcome = self._deliver(conn, claim, channels, worker, run_id, retry, breaker,
                                        hold, pace)
                report.outcomes.append(outcome)
            report.chain_head = audit.chain_head(conn)
        logger.info("outbox run %s: %s", run_id, report.counts())
        return report

    def _claim(self, conn: sqlite3.Connection, worker: str, run_id: str,
               only: str | None = None, of_kinds: str | None = None) -> _Claim | None:
        """Take the next due row under a lease, or None when nothing is due.

        Due: queued or failed_retry whose next attempt time has come, and not already
        handled by this worker (a row deferred in this run waits for the next run); or
        claimed by someone whose lease has expired (in doubt). With `only` (a JSON list of
        invoice ids), rows of other invoices are left to other runs; with `of_kinds` (a
        JSON list of kinds), so are rows of other kinds.
        """
        now = self._stamp()
        with transaction(conn):
            row = conn.execute(
                """
                select * from outbox
                where ((status in (?, ?) and coalesce(next_attempt_at, '') <= ?
                        and coalesce(claimed_by, '') <> ?)
                    or (status = ? and lease_expires_at <= ? and claimed_by <> ?))
                  and (? is null or invoice_id in (select value from json_each(?)))
                  and (? is null or kind in (select value from json_each(?)))
                order by coalesce(next_attempt_at, queued_at), queued_at, document_key
                limit 1
                """,
                (QUEUED, FAILED_RETRY, now, worker, CLAIMED, now, worker, only, only,
                 of_kinds, of_kinds),
            ).fetchone()
            if row is None:
                return None
            claim = replace(_claim_of(row), in_doubt=row["status"] == CLAIMED)
            conn.execute(
                """
                update outbox set status = ?, claimed_by = ?, lease_expires_at = ?,
                    updated_at = ?, run_id = ?
                where document_key = ?
                """,
                (CLAIMED, worker, self._stamp(self.lease_seconds), now, run_id,
                 claim.document_key),
            )
            channel = claim.plan[claim.channel_index]
            event = self._events(conn, claim, run_id)
            if claim.in_doubt:
                event(audit.RESENT_IN_DOUBT,
                      f"run {row['claimed_by']} claimed it and stopped before recording the "
                      f"outcome (lease expired {row['lease_expires_at']}); sending again "
                      "with the same key", channel=channel)
                logger.warning("invoice %s was left in doubt by %s; sending again with the "
                               "same key", claim.invoice_number, row["claimed_by"])
            else:
                event(audit.CLAIMED, f"by {worker}", channel=channel)
        return claim

    def _deliver(
        self,
        conn: sqlite3.Connection,
        claim: _Claim,
        channels: Mapping[str, Channel],
        worker: str,
        run_id: str,
        retry: RetryPolicy,
        breaker: _Breaker,
        hold: Callable[[str], str | None] | None,
        pace: SendPace | None = None,
    ) -> SendOutcome:
        """Walk the plan from the row's current channel until one takes the document."""
        index, channel_attempts, attempts, failovers = (
            claim.channel_index, claim.channel_attempts, 0, 0,
        )
        while True:
            stored = self._stored(conn, claim.document_key, index)
            result = self._try_channel(
                conn, claim, stored, channels.get(stored.envelope.channel), worker, run_id,
                retry, breaker, channel_attempts, hold, pace,
            )
            attempts += result.attempts
            outcome = _outcome_factory(claim, stored, attempts, failovers)
            if result.kind == "lost":
                return outcome(LEASE_LOST, error=result.error)
            if result.kind == "sent":
                owned = self._record_sent(conn, claim, stored, result.receipt, worker, run_id)
                location = result.receipt.location if result.receipt else None
                return outcome(SENT if owned else LEASE_LOST, location=location)
            counted = channel_attempts + result.attempts - result.unavailable
            if result.kind == "held":
                owned = self._record_held(conn, claim, stored, result.error, worker, run_id,
                                          counted)
                return outcome(HELD if owned else LEASE_LOST, error=result.error)
            if result.kind == "retry":
                owned = self._record_retry(conn, claim, stored, result.error, worker, run_id,
                                           retry, counted)
                return outcome(FAILED_RETRY if owned else LEASE_LOST, error=result.error)
            if index + 1 < len(claim.plan):
                if not self._record_failover(conn, claim, stored, index + 1, result.error,
                                             worker, run_id):
                    return outcome(LEASE_LOST, error=result.error)
                index, channel_attempts, failovers = index + 1, 0, failovers + 1
                continue
            owned = self._record_dead_letter(conn, claim, stored, result.error, worker, run_id)
            return outcome(DEAD_LETTER if owned else LEASE_LOST, error=result.error)

    def _try_channel(
        self,
        conn: sqlite3.Connection,
        claim: _Claim,
        stored: _Stored,
        channel: Channel | None,
        worker: str,
        run_id: str,
        retry: RetryPolicy,
        breaker: _Breaker,
        channel_attempts: int,
        hold: Callable[[str], str | None] | None,
        pace: SendPace | None = None,
    ) -> _Result:
        """Send on one channel with in-run retries; say how it ended."""
        envelope = stored.envelope
        if channel is None:
            return _Result("permanent", error=(
                f"no transport for channel '{envelope.channel}' is configured in this run: "
                "configure it (see the delivery settings) or take it out of the customer's "
                "channel policy"
            ))
        if hashlib.sha256(envelope.payload).hexdigest() != stored.payload_sha256:
            return _Result("permanent", error=(
                f"the stored {envelope.channel} payload of invoice {envelope.invoice_number} "
                "no longer matches its sha256: the store was changed outside q2c; render "
                "and queue the document again as a new document"
            ))
        if breaker.is_open(envelope.channel):
            return _Result("retry", error=(
                f"not tried: channel {envelope.channel} ({channel.name}) failed for "
                f"{breaker.trip_after} invoices in a row in this run"
            ))
        attempt, unavailable = 0, 0
        while True:
            attempt += 1
            reason = _hold_reason(hold, claim)
            if reason is not None:
                return _Result("held", attempts=attempt - 1, unavailable=unavailable,
                               error=reason)
            if pace is not None:
                pace.wait()
            if not self._renew_lease(conn, claim.document_key, worker):
                return _Result("lost", attempts=attempt - 1, unavailable=unavailable, error=(
                    "the lease expired and another run took the row over before sending"
                ))
            try:
                receipt = channel.send(envelope)
            except TransientDeliveryError as exc:
                error = _scrubbed(exc, envelope)
                if isinstance(exc, ChannelUnavailableError):
                    unavailable += 1
                failures = channel_attempts + attempt - unavailable
                if (retry.give_up_after is not None and failures >= retry.give_up_after
                        and not isinstance(exc, ChannelUnavailableError)):
                    breaker.failed(envelope.channel)
                    return _Result("permanent", attempts=attempt, unavailable=unavailable,
                                   error=(f"gave up on {envelope.channel} after {failures} "
                                          f"transient failures: {error}"))
                if attempt >= retry.max_attempts:
                    breaker.failed(envelope.channel)
                    return _Result("retry", attempts=attempt, unavailable=unavailable,
                                   error=error)
                delay = retry.delay(attempt)
                self._event_now(conn, claim, run_id, audit.RETRY_SCHEDULED,
                                f"attempt {attempt} of {retry.max_attempts} via "
                                f"{channel.name} failed, next in {delay:g}s: {error}",
                                channel=envelope.channel)
                logger.warning("invoice %s: attempt %d of %d via %s failed, next in %gs: %s",
                               envelope.invoice_number, attempt, retry.max_attempts,
                               channel.name, delay, error)
                retry.sleep(delay)
                continue
            except (PermanentDeliveryError, InvalidRecipientError) as exc:
                return _Result("permanent", attempts=attempt, error=_scrubbed(exc, envelope))
            except Exception as exc:  # a channel bug must not stop the other invoices
                logger.exception("invoice %s: channel %s raised an unexpected error",
                                 envelope.invoice_number, channel.name)
                breaker.failed(envelope.channel)
                return _Result("retry", attempts=attempt, unavailable=unavailable, error=(
                    f"unexpected {type(exc).__name__} from {channel.name}: "
                    f"{_scrubbed(exc, envelope)}; report it with the run log"
                ))
            breaker.worked(envelope.channel)
            return _Result("sent", receipt=receipt, attempts=attempt)

    def _renew_lease(self, conn: sqlite3.Connection, doc_key: str, worker: str) -> bool:
        """Extend our lease and count an attempt; False when another run holds the row."""
        with transaction(conn):
            cursor = conn.execute(
                """
                update outbox set lease_expires_at = ?, attempts = attempts + 1,
                    channel_attempts = channel_attempts + 1, updated_at = ?
                where document_key = ? and status = ? and claimed_by = ?
                """,
                (self._stamp(self.lease_seconds), self._stamp(), doc_key, CLAIMED, worker),
            )
        return cursor.rowcount == 1

    # -- recording outcomes ---------------------------------------------------------

    def _update_claimed(
        self, conn: sqlite3.Connection, claim: _Claim, worker: str, **columns: object
    ) -> bool:
        """Set `columns` on a row this worker holds claimed, inside the caller's transaction.

        False when another run took the row over (its lease ran out): the caller then
        leaves the row to that run.
        """
        assignments = ", ".join(f"{name} = ?" for name in [*columns, "updated_at"])
        cursor = conn.execute(
            f"update outbox set {assignments} "
            "where document_key = ? and status = ? and claimed_by = ?",
            (*columns.values(), self._stamp(), claim.document_key, CLAIMED, worker),
        )
        return cursor.rowcount == 1

    def _record_sent(
        self,
        conn: sqlite3.Connection,
        claim: _Claim,
        stored: _Stored,
        receipt: ChannelReceipt | None,
        worker: str,
        run_id: str,
    ) -> bool:
        """Mark the row sent; False when another run took it over meanwhile.

        The `sent` event is recorded either way: the document did go out.
        """
        envelope = stored.envelope
        location = receipt.location if receipt else ""
        reference = receipt.reference if receipt else ""
        now = self._stamp()
        with transaction(conn):
            owned = self._update_claimed(
                conn, claim, worker, status=SENT, sent_attempt_key=envelope.key,
                sent_channel=envelope.channel, sent_at=now, receipt_location=location,
                receipt_reference=reference, lease_expires_at=None, next_attempt_at=None,
                last_error=None, channel_index=stored.position,
            )
            event = self._events(conn, claim, run_id)
            event(audit.SENT,
                  f"via {envelope.channel} to {_masked(envelope)}" + (
                      "" if owned else "; recorded after another run took the row over "
                      "because this run's lease had expired"),
                  channel=envelope.channel, location=location, reference=reference)
        if not owned:
            logger.error("invoice %s was sent after this run lost its lease; another run may "
                         "send it too: raise the outbox lease", claim.invoice_number)
            return False
        logger.info("invoice %s sent via %s to %s", claim.invoice_number, envelope.channel,
                    _masked(envelope))
        return True

    def _record_retry(
        self,
        conn: sqlite3.Connection,
        claim: _Claim,
        stored: _Stored,
        error: str | None,
        worker: str,
        run_id: str,
        retry: RetryPolicy,
        failures: int,
    ) -> bool:
        """Hand the row back for a later run; False when another run took it over.

        `failures` becomes the row's count on this channel: transient failures that were
        not the channel being unavailable.
        """
        delay = retry.delay(max(failures, 1))
        next_at = self._stamp(delay)
        with transaction(conn):
            if not self._update_claimed(
                conn, claim, worker, status=FAILED_RETRY, next_attempt_at=next_at,
                lease_expires_at=None, last_error=error, channel_attempts=failures,
            ):
                return False
            self._events(conn, claim, run_id)(
                audit.RETRY_SCHEDULED, f"{error}; next try in a run after {next_at}",
                channel=stored.envelope.channel,
            )
        logger.warning("invoice %s not delivered via %s in this run, retried by a later "
                       "run: %s", claim.invoice_number, stored.envelope.channel, error)
        return True

    def _record_held(
        self,
        conn: sqlite3.Connection,
        claim: _Claim,
        stored: _Stored,
        reason: str | None,
        worker: str,
        run_id: str,
        failures: int,
    ) -> bool:
        """Put a held row back in the queue; False when another run took it over.

        It keeps `claimed_by` (this worker), so this run does not claim it again; the next
        run asks the hold again.
        """
        with transaction(conn):
            if not self._update_claimed(
                conn, claim, worker, status=QUEUED, lease_expires_at=None,
                channel_attempts=failures,
            ):
                return False
            self._events(conn, claim, run_id)(
                audit.HELD, f"not sent: {reason}", channel=stored.envelope.channel,
            )
        logger.warning("invoice %s held back, not sent via %s: %s; it stays queued",
                       claim.invoice_number, stored.envelope.channel, reason)
        return True

    def _record_failover(
        self,
        conn: sqlite3.Connection,
        claim: _Claim,
        stored: _Stored,
        next_index: int,
        error: str | None,
        worker: str,
        run_id: str,
    ) -> bool:
        next_channel = claim.plan[next_index]
        with transaction(conn):
            if not self._update_claimed(
                conn, claim, worker, channel_index=next_index, channel_attempts=0,
                last_error=error, lease_expires_at=self._stamp(self.lease_seconds),
            ):
                return False
            self._events(conn, claim, run_id)(
                audit.FAILED_OVER, f"{stored.envelope.channel} -> {next_channel}: {error}",
                channel=stored.envelope.channel,
            )
        logger.warning("invoice %s failed over from %s to %s: %s", claim.invoice_number,
                       stored.envelope.channel, next_channel, error)
        return True

    def _record_dead_letter(
        self,
        conn: sqlite3.Connection,
        claim: _Claim,
        stored: _Stored,
        error: str | None,
        worker: str,
        run_id: str,
    ) -> bool:
        """Park the row as a dead letter; False when another run took it over."""
        with transaction(conn):
            if not self._update_claimed(
                conn, claim, worker, status=DEAD_LETTER, lease_expires_at=None,
                last_error=error,
            ):
                return False
            self._events(conn, claim, run_id)(
                audit.DEAD_LETTER,
                f"every channel of the plan ({' -> '.join(claim.plan)}) failed; last: {error}",
                channel=stored.envelope.channel,
            )
        logger.error("invoice %s is a dead letter: no channel of %s took it; last error: %s",
                     claim.invoice_number, " -> ".join(claim.plan), error)
        return True

    # -- bounces and dead letters ------------------------------------------------

    def record_bounce(self, attempt_key: str, diagnostic: str, run_id: str) -> bool:
        """Record a bounce (a DSN, a rejected e-invoice) for a sent attempt.

        The row re-opens on the next channel of its plan (events `bounced`, `failed_over`)
        or becomes a dead letter. A bounce already recorded for the same send is ignored,
        so reading the same notification twice changes nothing.

        Returns:
            False when the attempt key is unknown; True otherwise.
        """
        with connect(self.store_path) as conn, transaction(conn):
            send = conn.execute(
                "select document_key, position, channel, recipient from outbox_payloads "
                "where attempt_key = ?", (attempt_key,),
            ).fetchone()
            if send is None:
                logger.warning("bounce for unknown outbox attempt %s ignored", attempt_key)
                return False
            row = conn.execute("select * from outbox where document_key = ?",
                               (send["document_key"],)).fetchone()
            last = conn.execute(
                "select event from delivery_events where attempt_key = ? and event in (?, ?) "
                "order by seq desc limit 1", (attempt_key, audit.SENT, audit.BOUNCED),
            ).fetchone()
            if last is not None and last["event"] == audit.BOUNCED:
                logger.info("bounce for invoice %s via %s already recorded",
                            row["invoice_number"], send["channel"])
                return True
            claim = _claim_of(row)
            event = self._events(conn, claim, run_id, attempt=attempt_key)
            text = scrub_address(diagnostic.strip(), send["recipient"]) or "no diagnostic"
            event(audit.BOUNCED, text, channel=send["channel"])
            if last is None or row["status"] != SENT or row["sent_attempt_key"] != attempt_key:
                logger.warning("bounce for invoice %s via %s recorded; the row is %s, so "
                               "nothing else changes", row["invoice_number"], send["channel"],
                               row["status"])
                return True
            self._reopen_after_bounce(conn, claim, send, text, run_id)
        return True

    def record_acknowledgement(
        self, attempt_key: str, status: str, detail: str, run_id: str, *,
        reference: str | None = None, location: str | None = None,
    ) -> bool:
        """Record a functional acknowledgement (an X12 997) of a sent EDI attempt.

        Status A or E (accepted, accepted with errors) is an `acknowledged` event, any other
        status `ack_rejected`. The row does not change: a rejection that should fail over is
        then recorded as a bounce (`record_bounce`). The event belongs to the document and
        names the channel but carries no attempt key, so it never reads as the attempt's
        latest delivery state. With a `reference` (say the 997 file's hash and the control
        numbers), an acknowledgement already recorded under it is not recorded again, so
        reading the same 997 twice changes nothing.

        Returns:
            True when recorded now; False when it was recorded before.

        Raises:
            LookupError: No outbox send has this attempt key.
        """
        code = status.strip().upper()
        event = audit.ACKNOWLEDGED if code in ACCEPTED_ACK_STATUSES else audit.ACK_REJECTED
        with connect(self.store_path) as conn, transaction(conn):
            send = conn.execute(
                "select payloads.channel, outbox.* from outbox_payloads as payloads "
                "join outbox on outbox.document_key = payloads.document_key "
                "where payloads.attempt_key = ?", (attempt_key,),
            ).fetchone()
            if send is None:
                raise LookupError(f"no outbox send has attempt key {attempt_key}: the "
                                  "acknowledged document was not delivered through this outbox")
            if reference is not None and conn.execute(
                "select 1 from delivery_events where document_key = ? and event = ? "
                "and reference = ?", (send["document_key"], event, reference),
            ).fetchone():
                logger.info("%s for invoice %s (%s) already recorded", event,
                            send["invoice_number"], reference)
                return False
            audit.append_event(
                conn, document_key=send["document_key"], invoice_id=send["invoice_id"],
                invoice_number=send["invoice_number"], event=event, run_id=run_id,
                occurred_at=self._stamp(), detail=detail.strip() or f"status {code}",
                channel=send["channel"], location=location, reference=reference,
            )
        log = logger.info if event == audit.ACKNOWLEDGED else logger.warning
        log("invoice %s: %s via %s (status %s)", send["invoice_number"], event,
            send["channel"], code)
        return True

    def _reopen_after_bounce(
        self, conn: sqlite3.Connection, claim: _Claim, send: sqlite3.Row, text: str,
        run_id: str,
    ) -> None:
        next_index = send["position"] + 1
        error = f"bounced: {text}"
        event = self._events(conn, claim, run_id)
        clear_sent = """sent_attempt_key = null, sent_channel = null, sent_at = null,
            receipt_location = null, receipt_reference = null, claimed_by = null,
            next_attempt_at = null, lease_expires_at = null"""
        if next_index < len(claim.plan):
            conn.execute(
                f"""
                update outbox set status = ?, channel_index = ?, channel_attempts = 0,
                    last_error = ?, updated_at = ?, {clear_sent}
                where document_key = ?
                """,
                (QUEUED, next_index, error, self._stamp(), claim.document_key),
            )
            event(audit.FAILED_OVER, f"{send['channel']} -> {claim.plan[next_index]}: {error}",
                  channel=send["channel"])
            logger.warning("invoice %s bounced on %s; it goes out via %s next",
                           claim.invoice_number, send["channel"], claim.plan[next_index])
            return
        conn.execute(
            f"""
            update outbox set status = ?, last_error = ?, updated_at = ?, {clear_sent}
            where document_key = ?
            """,
            (DEAD_LETTER, error, self._stamp(), claim.document_key),
        )
        event(audit.DEAD_LETTER,
              f"bounced on the last channel of the plan ({' -> '.join(claim.plan)}): {text}",
              channel=send["channel"])
        logger.error("invoice %s bounced on its last channel %s; it is a dead letter",
                     claim.invoice_number, send["channel"])

    def dead_letters(self) -> list[DeadLetter]:
        """Documents no channel took, oldest first."""
        with connect(self.store_path) as conn:
            rows = conn.execute(
                "select * from outbox where status = ? order by updated_at, invoice_number",
                (DEAD_LETTER,),
            ).fetchall()
        return [
            DeadLetter(
                document_key=row["document_key"], invoice_id=row["invoice_id"],
                invoice_number=row["invoice_number"], account_key=row["account_key"],
                plan=tuple(json.loads(row["plan"])), attempts=row["attempts"],
                last_error=row["last_error"], updated_at=row["updated_at"],
            )
            for row in rows
        ]

    def requeue_dead_letter(self, doc_key: str, by: str, reason: str) -> None:
        """Send a dead letter again from the first channel of its plan, after a fix.

        The payloads stay as queued; fix what made the channels refuse (a relay setting, a
        receiver's access point), not the document.

        Raises:
            ValueError: `by` or `reason` is empty, or the document is not a dead letter.
            LookupError: No document has this key.
        """
        if not by.strip() or not reason.strip():
            raise ValueError("requeueing a dead letter needs who (by) and why (reason)")
        with connect(self.store_path) as conn, transaction(conn):
            row = conn.execute("select * from outbox where document_key = ?",
                               (doc_key,)).fetchone()
            if row is None:
                raise LookupError(f"no document {doc_key} in the outbox: list dead letters "
                                  "to find the key")
            if row["status"] != DEAD_LETTER:
                raise ValueError(f"invoice {row['invoice_number']} is {row['status']}, not a "
                                 "dead letter; only dead letters are requeued")
            claim = _claim_of(row)
            conn.execute(
                """
                update outbox set status = ?, channel_index = 0, channel_attempts = 0,
                    next_attempt_at = null, claimed_by = null, lease_expires_at = null,
                    updated_at = ?
                where document_key = ?
                """,
                (QUEUED, self._stamp(), doc_key),
            )
            self._events(conn, claim, f"manual:{by.strip()}")(
                audit.REQUEUED, f"by {by.strip()}: {reason.strip()}", channel=claim.plan[0],
            )
        logger.info("invoice %s requeued by %s: %s", row["invoice_number"], by, reason)

    def cancel(self, doc_key: str, by: str, reason: str) -> bool:
        """End a document that was never sent, for good (status `cancelled`).

        For a document that must not go out any more, such as a rejected invoice. A
        cancelled row is never claimed again, and queueing the same document again leaves
        it cancelled: a corrected invoice is a new document.

        Returns:
            True when cancelled now; False when it already was (nothing recorded again).

        Raises:
            ValueError: `by` or `reason` is empty; the document was sent (correct it with a
                credit note); or a run holds it right now (cancel again after that run).
            LookupError: No document has this key.
        """
        if not by.strip() or not reason.strip():
            raise ValueError("cancelling a delivery needs who (by) and why (reason)")
        with connect(self.store_path) as conn, transaction(conn):
            row = conn.execute("select * from outbox where document_key = ?",
                               (doc_key,)).fetchone()
            if row is None:
                raise LookupError(f"no document {doc_key} in the outbox: list it with "
                                  "`q2c outbox status` or check the key")
            if row["status"] == CANCELLED:
                logger.info("invoice %s was already cancelled", row["invoice_number"])
                return False
            if row["status"] == SENT:
                raise ValueError(
                    f"invoice {row['invoice_number']} was already sent via "
                    f"{row['sent_channel']} at {row['sent_at']}: it cannot be cancelled; "
                    "correct it with a credit note"
                )
            if row["status"] == CLAIMED:
                raise ValueError(
                    f"invoice {row['invoice_number']} is being sent by {row['claimed_by']} "
                    f"(lease until {row['lease_expires_at']}): cancel it after that run; "
                    "a hold keeps it from being sent meanwhile"
                )
            claim = _claim_of(row)
            conn.execute(
                """
                update outbox set status = ?, next_attempt_at = null, claimed_by = null,
                    lease_expires_at = null, last_error = ?, updated_at = ?
                where document_key = ?
                """,
                (CANCELLED, f"cancelled by {by.strip()}: {reason.strip()}", self._stamp(),
                 doc_key),
            )
            self._events(conn, claim, f"manual:{by.strip()}")(
                audit.CANCELLED, f"by {by.strip()}: {reason.strip()} (was {row['status']})",
            )
        logger.warning("invoice %s cancelled by %s: %s; it will not be delivered",
                       row["invoice_number"], by, reason)
        return True

    def document_keys(self, reference: str) -> list[str]:
        """Keys of the documents a person may mean: a document key, an invoice number or
        an invoice id, oldest first."""
        text = reference.strip()
        with connect(self.store_path) as conn:
            rows = conn.execute(
                """
                select document_key from outbox
                where document_key = lower(?) or invoice_number = ? or invoice_id = ?
                order by queued_at, document_key
                """,
                (text, text, text),
            ).fetchall()
        return [row[0] for row in rows]

    # -- reading ----------------------------------------------------------------------

    def document_keys_known(self) -> set[str]:
        """Every document ever queued: such a document is never queued again."""
        with connect(self.store_path) as conn:
            return {row[0] for row in conn.execute("select document_key from outbox")}

    def unsent_invoice_ids(self) -> list[str]:
        """Invoices queued but not sent: what a later review decision can still stop."""
        with connect(self.store_path) as conn:
            rows = conn.execute(
                "select invoice_id from outbox where status in (?, ?, ?) order by queued_at",
                (QUEUED, FAILED_RETRY, DEAD_LETTER),
            )
            return [row[0] for row in rows]

    def status_counts(self) -> dict[str, int]:
        """Rows per status, every status present."""
        with connect(self.store_path) as conn:
            rows = conn.execute("select status, count(*) from outbox group by status")
            counts = dict(rows.fetchall())
        return {status: counts.get(status, 0) for status in STATUSES}

    def events(self, doc_key: str | None = None) -> list[audit.AuditEvent]:
        """The audit trail in order, or one document's part of it."""
        with connect(self.store_path) as conn:
            return audit.read_events(conn, doc_key)

    def verify(self, known_head: tuple[int, str] | None = None) -> list[str]:
        """Problems in the audit chain (empty when intact); see `audit.verify_chain`."""
        with connect(self.store_path) as conn:
            return audit.verify_chain(conn, known_head)

    # -- helpers ------------------------------------------------------------------------

    def _stored(self, conn: sqlite3.Connection, doc_key: str, position: int) -> _Stored:
        row = conn.execute(
            """
            select payloads.*, outbox.invoice_id, outbox.invoice_number, outbox.document_id
            from outbox_payloads as payloads
            join outbox on outbox.document_key = payloads.document_key
            where payloads.document_key = ? and payloads.position = ?
            """,
            (doc_key, position),
        ).fetchone()
        envelope = Envelope(
            key=row["attempt_key"], invoice_id=row["invoice_id"],
            invoice_number=row["invoice_number"], document_id=row["document_id"],
            channel=row["channel"], recipient=row["recipient"], payload=bytes(row["payload"]),
            filename=row["filename"], content_type=row["content_type"],
            notice=None if row["notice"] is None else bytes(row["notice"]),
            sender_id=row["sender_id"], headers=json.loads(row["headers"]),
        )
        return _Stored(envelope, row["position"], row["payload_sha256"])

    def _events(
        self, conn: sqlite3.Connection, claim: _Claim, run_id: str, attempt: str | None = None
    ) -> _EventWriter:
        return _EventWriter(conn, claim.document_key, claim.invoice_id, claim.invoice_number,
                            run_id, self._stamp(), attempt)

    def _event_now(self, conn: sqlite3.Connection, claim: _Claim, run_id: str, event: str,
                   detail: str, *, channel: str) -> None:
        with transaction(conn):
            self._events(conn, claim, run_id)(event, detail, channel=channel)

    def _stamp(self, plus_seconds: float = 0.0) -> str:
        """Now (plus an offset) as sortable UTC text, the store's timestamp format."""
        moment = self._clock() + dt.timedelta(seconds=plus_seconds)
        return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _EventWriter:
    """Appends events of one document; the attempt key follows the channel by default."""

    def __init__(self, conn: sqlite3.Connection, doc_key: str, invoice_id: str,
                 invoice_number: str, run_id: str, occurred_at: str,
                 attempt: str | None = None) -> None:
        self.conn, self.doc_key, self.attempt = conn, doc_key, attempt
        self.invoice_id, self.invoice_number = invoice_id, invoice_number
        self.run_id, self.occurred_at = run_id, occurred_at

    def __call__(self, event: str, detail: str, *, channel: str | None = None,
                 attempt: str | None = None, location: str | None = None,
                 reference: str | None = None) -> None:
        key = attempt or self.attempt or (attempt_key(self.doc_key, channel)
                                          if channel and event != audit.SKIPPED else None)
        audit.append_event(
            self.conn, document_key=self.doc_key, invoice_id=self.invoice_id,
            invoice_number=self.invoice_number, event=event, run_id=self.run_id,
            occurred_at=self.occurred_at, detail=detail, attempt_key=key, channel=channel,
            location=location, reference=reference,
        )


def _check_item(item: OutboxItem) -> None:
    channels = [send.channel for send in item.plan]
    if not channels:
        raise ValueError(f"invoice {item.invoice_number} has an empty channel plan: the "
                         "channel policy must name at least one channel")
    unknown = sorted(set(channels) - set(CHANNELS))
    if unknown:
        raise ValueError(f"invoice {item.invoice_number} plans unknown channel(s) "
                         f"{', '.join(unknown)}: use {', '.join(CHANNELS)}")
    if len(set(channels)) != len(channels):
        raise ValueError(f"invoice {item.invoice_number} plans a channel twice "
                         f"({' -> '.join(channels)}): each channel once, in failover order")
    for send in item.plan:
        if not send.payload:
            raise ValueError(f"invoice {item.invoice_number} has an empty {send.channel} "
                             "payload: queue the rendered document's bytes")


def _skipped_channels(decision: Mapping[str, object]) -> list[tuple[str, str]]:
    """The policy's skipped channels as (channel, reason): a mapping or a list of either
    {"channel", "reason"} mappings or bare channel names."""
    skipped = decision.get("skipped") if isinstance(decision, Mapping) else None
    if isinstance(skipped, Mapping):
        return [(str(channel), str(reason)) for channel, reason in skipped.items()]
    if isinstance(skipped, list | tuple):
        pairs = []
        for entry in skipped:
            if isinstance(entry, Mapping):
                pairs.append((str(entry.get("channel", "")), str(entry.get("reason", ""))))
            else:
                pairs.append((str(entry), ""))
        return pairs
    return []


def _claim_of(row: sqlite3.Row) -> _Claim:
    return _Claim(
        document_key=row["document_key"], invoice_id=row["invoice_id"],
        invoice_number=row["invoice_number"], document_id=row["document_id"],
        plan=tuple(json.loads(row["plan"])), channel_index=row["channel_index"],
        channel_attempts=row["channel_attempts"], in_doubt=False,
    )


def _outcome_factory(claim: _Claim, stored: _Stored, attempts: int, failovers: int):
    def outcome(status: str, *, location: str | None = None,
                error: str | None = None) -> SendOutcome:
        return SendOutcome(
            document_key=claim.document_key, invoice_number=claim.invoice_number,
            status=status, channel=stored.envelope.channel, attempts=attempts,
            resent_in_doubt=claim.in_doubt, failovers=failovers, location=location,
            error=error,
        )
    return outcome


def _scrubbed(exc: BaseException, envelope: Envelope) -> str:
    return scrub_address(str(exc), envelope.recipient)


def _masked(envelope: Envelope) -> str:
    """Email addresses masked for logs and events; participant ids are not personal."""
    return mask_address(envelope.recipient) if "@" in envelope.recipient else envelope.recipient


def _hold_reason(hold: Callable[[str], str | None] | None, claim: _Claim) -> str | None:
    """Ask the hold about a claimed row; a hold that fails keeps the row back."""
    if hold is None:
        return None
    try:
        reason = hold(claim.invoice_id)
    except Exception as exc:
        logger.exception("invoice %s: the hold check failed; not sent in this run",
                         claim.invoice_number)
        return f"the hold check failed ({type(exc).__name__}: {exc}); not sent until it works"
    if reason is None:
        return None
    return str(reason).strip() or "held (no reason given)"


def _allow_new_statuses(conn: sqlite3.Connection) -> None:
    """Rebuild an outbox table made before `cancelled` existed, whose status check refuses it.

    SQLite cannot change a check constraint in place: copy the rows into a table made with
    the current DDL and swap it in, with foreign keys off (the payloads refer to the outbox
    by name), all in one write transaction. Another process doing the same waits and then
    finds nothing to do.
    """
    if _status_check_is_current(conn):
        return
    conn.execute("pragma foreign_keys=off")
    try:
        with transaction(conn):
            if _status_check_is_current(conn):
                return
            columns = ", ".join(row["name"] for row in conn.execute("pragma table_info(outbox)"))
            conn.execute(OUTBOX_TABLE_DDL.replace(
                "create table if not exists outbox (", "create table outbox_rebuilt ("))
            conn.execute(f"insert into outbox_rebuilt ({columns}) select {columns} from outbox")
            conn.execute("drop table outbox")
            conn.execute("alter table outbox_rebuilt rename to outbox")
            conn.execute("create index if not exists outbox_due on outbox "
                         "(status, next_attempt_at)")
            broken = conn.execute("pragma foreign_key_check").fetchall()
            if broken:
                raise sqlite3.IntegrityError(
                    f"rebuilding the outbox table left {len(broken)} payloads without their "
                    "document; the store is unchanged: check it with `pragma foreign_key_check`"
                )
    finally:
        conn.execute("pragma foreign_keys=on")
    logger.info("outbox table rebuilt to accept the statuses %s", ", ".join(STATUSES))


def _status_check_is_current(conn: sqlite3.Connection) -> bool:
    row = conn.execute("select sql from sqlite_master where type = 'table' and name = 'outbox'"
                       ).fetchone()
    return row is None or all(f"'{status}'" in row[0] for status in STATUSES)
