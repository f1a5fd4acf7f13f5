"""The delivery ledger: send each invoice email once, and know what happened to it.

Every delivery has an idempotency key, the SHA-256 of (invoice id, channel, recipient), and
one row in `q2c_ops.delivery_ledger`. `deliver()` looks the key up before it sends: a 'sent'
row means the email went out in an earlier run and is skipped, so rerunning a batch sends
nothing twice. The row is set to 'sending' (attempts + 1) and committed before the channel
is called, and to 'sent' right after, so a crash leaves a visible 'sending' row.

Statuses and what the next run does with them:

- `sent`: delivered; skipped.
- `sending`: the process stopped between handing the message over and recording it. Sent
  again, so delivery is at-least-once for this narrow window (the Message-ID is the same, and
  the `.eml` outbox keeps its existing file, so the receiving side can tell a duplicate).
- `failed`: a transient error outlived the in-run retries; retried.
- `failed_permanent`: the server refused for good (5xx, login, TLS); skipped until someone
  fixes the cause and calls `requeue_permanent_failures`.
- `rejected`: the recipient is not a valid address; skipped. Correcting the billing email
  changes the key, so the corrected address is delivered as a new row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import NamedTuple

import duckdb

from q2c.delivery.addresses import mask_address, validate_recipient
from q2c.delivery.channels import MailChannel, recipient_of
from q2c.delivery.errors import (
    InvalidRecipientError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from q2c.delivery.message import IDEMPOTENCY_HEADER
from q2c.warehouse import ensure_ops_tables

logger = logging.getLogger(__name__)

SENDING = "sending"
SENT = "sent"
ALREADY_SENT = "already_sent"
REJECTED = "rejected"
FAILED = "failed"
FAILED_PERMANENT = "failed_permanent"

MessageSource = EmailMessage | Callable[[str], EmailMessage]


@dataclass(frozen=True)
class DeliveryRequest:
    """One invoice email to deliver.

    Attributes:
        invoice_id: The ERP invoice id (part of the idempotency key).
        invoice_number: The printed invoice number, for logs and the outbox file name.
        document_id: The rendered document's id in the document manifest.
        recipient: The billing email as stored in the source; may be empty or junk.
        message: The finished message, or a callable that builds it from the idempotency
            key (preferred: the message is then only built when it will be sent).
    """

    invoice_id: str
    invoice_number: str
    document_id: str
    recipient: str | None
    message: MessageSource


@dataclass(frozen=True)
class DeliveryOutcome:
    """What happened to one request in this run; ids and statuses only, no contents."""

    invoice_id: str
    invoice_number: str
    document_id: str
    idempotency_key: str
    status: str
    attempts: int
    message_id: str | None = None
    location: str | None = None
    error: str | None = None


@dataclass
class DeliveryReport:
    """The result of one `deliver()` call, counted by outcome."""

    run_id: str
    channel: str
    outcomes: list[DeliveryOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == status)

    @property
    def sent(self) -> int:
        return self.count(SENT)

    @property
    def already_sent(self) -> int:
        return self.count(ALREADY_SENT)

    @property
    def rejected(self) -> int:
        return self.count(REJECTED)

    @property
    def failed(self) -> int:
        return self.count(FAILED)

    @property
    def failed_permanent(self) -> int:
        return self.count(FAILED_PERMANENT)

    def counts(self) -> dict[str, int]:
        """The counts by outcome, e.g. for run metadata."""
        statuses = (SENT, ALREADY_SENT, REJECTED, FAILED, FAILED_PERMANENT)
        return {status: self.count(status) for status in statuses}


class _Retry(NamedTuple):
    max_attempts: int
    backoff_seconds: float
    sleep: Callable[[float], None]


class _LedgerRow(NamedTuple):
    status: str
    message_id: str | None
    location: str | None
    last_error: str | None
    run_id: str | None


def idempotency_key(invoice_id: str, channel: str, recipient: str | None) -> str:
    """Return the stable SHA-256 hex key of one delivery.

    The recipient is part of the key so a rejected address that is corrected in the source
    is tried again. An invoice already sent through a channel is never sent again through it,
    whatever its address has become since (see `deliver`).
    """
    parts = ("q2c-delivery-v1", invoice_id.strip(), channel.strip().lower(),
             (recipient or "").strip().lower())
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def deliver(
    conn: duckdb.DuckDBPyConnection,
    requests: Iterable[DeliveryRequest],
    channel: MailChannel,
    run_id: str,
    *,
    max_attempts: int = 3,
    backoff_seconds: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryReport:
    """Send each request through `channel` unless the ledger says it was sent already.

    Args:
        conn: An open warehouse connection; the ledger rows are written through it.
        requests: The invoice emails to deliver.
        channel: Where to send (an `EmlFolderChannel`, an `SmtpChannel`, ...).
        run_id: The orchestration run id, recorded on every row this call touches.
        max_attempts: Attempts per message within this call on transient errors.
        backoff_seconds: Wait before the second attempt; doubled for each further one.
        sleep: How to wait; tests pass a function that returns at once.

    Returns:
        The report with one outcome per request.

    Raises:
        ValueError: A message does not carry the key it was built for, or goes to another
            address than its request; that is a bug in the caller, not a delivery problem.
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
    ensure_ops_tables(conn)
    retry = _Retry(max_attempts, backoff_seconds, sleep)
    report = DeliveryReport(run_id=run_id, channel=channel.name)
    for request in requests:
        report.outcomes.append(_deliver_one(conn, request, channel, run_id, retry))
    counts = report.counts()
    logger.info(
        "delivery run %s via %s: %d sent, %d already sent, %d rejected, %d failed, "
        "%d failed permanently",
        run_id, channel.name, counts[SENT], counts[ALREADY_SENT], counts[REJECTED],
        counts[FAILED], counts[FAILED_PERMANENT],
    )
    return report


def requeue_permanent_failures(
    conn: duckdb.DuckDBPyConnection, invoice_ids: Iterable[str] | None = None
) -> int:
    """Mark 'failed_permanent' rows as 'failed' so the next run tries them again.

    Call it once the cause is fixed (credentials, sender policy, a mailbox restored).

    Args:
        conn: An open warehouse connection.
        invoice_ids: Only these invoices; all permanently failed rows when None.

    Returns:
        How many rows were requeued.
    """
    ensure_ops_tables(conn)
    ids = None if invoice_ids is None else list(invoice_ids)
    rows = conn.execute(
        """
        update q2c_ops.delivery_ledger
        set status = ?
        where status = ?
          and (?::varchar[] is null or list_contains(?::varchar[], invoice_id))
        returning idempotency_key
        """,
        [FAILED, FAILED_PERMANENT, ids, ids],
    ).fetchall()
    logger.info("requeued %d permanently failed deliveries", len(rows))
    return len(rows)


def _deliver_one(
    conn: duckdb.DuckDBPyConnection,
    request: DeliveryRequest,
    channel: MailChannel,
    run_id: str,
    retry: _Retry,
) -> DeliveryOutcome:
    key = idempotency_key(request.invoice_id, channel.name, request.recipient)
    previous = _ledger_row(conn, key) or _sent_to_another_address(conn, request, channel.name)
    if previous is not None and previous.status == SENT:
        logger.debug("invoice %s already emailed via %s; skipped", request.invoice_number,
                     channel.name)
        return _outcome(request, key, ALREADY_SENT, 0, previous.message_id, previous.location)
    if previous is not None and previous.status in (REJECTED, FAILED_PERMANENT):
        logger.info("invoice %s stays %s from run %s; not retried", request.invoice_number,
                    previous.status, previous.run_id)
        return _outcome(request, key, previous.status, 0, error=previous.last_error)
    if previous is not None and previous.status == SENDING:
        logger.warning(
            "invoice %s was left 'sending' by run %s; sending again (at-least-once)",
            request.invoice_number, previous.run_id,
        )

    try:
        recipient = validate_recipient(request.recipient)
    except InvalidRecipientError as exc:
        _record_rejected(conn, key, request, channel.name, run_id, str(exc))
        logger.warning("invoice %s not emailed: %s", request.invoice_number, exc)
        return _outcome(request, key, REJECTED, 0, error=str(exc))

    try:
        message = request.message(key) if callable(request.message) else request.message
    except (OSError, ValueError) as exc:
        reason = f"the message could not be built: {exc}"
        _record_rejected(conn, key, request, channel.name, run_id, reason, status=FAILED)
        logger.error("invoice %s not emailed: %s", request.invoice_number, reason)
        return _outcome(request, key, FAILED, 0, error=reason)
    _check_message_key(message, request, key)
    if _addressed_to(message).lower() != recipient.lower():
        reason = (f"the mail library reads the address {mask_address(recipient)} differently "
                  "from the source; correct the billing email in the ERP or CRM")
        _record_rejected(conn, key, request, channel.name, run_id, reason)
        logger.warning("invoice %s not emailed: %s", request.invoice_number, reason)
        return _outcome(request, key, REJECTED, 0, error=reason)
    return _send_with_retries(conn, key, request, recipient, message, channel, run_id, retry)


def _send_with_retries(
    conn: duckdb.DuckDBPyConnection,
    key: str,
    request: DeliveryRequest,
    recipient: str,
    message: EmailMessage,
    channel: MailChannel,
    run_id: str,
    retry: _Retry,
) -> DeliveryOutcome:
    attempt = 0
    while True:
        attempt += 1
        _mark_sending(conn, key, request, channel.name, recipient, run_id)
        try:
            result = channel.send(message)
        except InvalidRecipientError as exc:
            _finish(conn, key, REJECTED, error=str(exc))
            logger.warning("invoice %s not emailed: %s", request.invoice_number, exc)
            return _outcome(request, key, REJECTED, attempt, error=str(exc))
        except PermanentDeliveryError as exc:
            _finish(conn, key, FAILED_PERMANENT, error=str(exc))
            logger.error("invoice %s not emailed via %s, not retried: %s",
                         request.invoice_number, channel.name, exc)
            return _outcome(request, key, FAILED_PERMANENT, attempt, error=str(exc))
        except TransientDeliveryError as exc:
            if attempt >= retry.max_attempts:
                _finish(conn, key, FAILED, error=str(exc))
                logger.error("invoice %s not emailed via %s after %d attempts, retried next "
                             "run: %s", request.invoice_number, channel.name, attempt, exc)
                return _outcome(request, key, FAILED, attempt, error=str(exc))
            delay = retry.backoff_seconds * 2 ** (attempt - 1)
            logger.warning("invoice %s: attempt %d of %d via %s failed, next in %gs: %s",
                           request.invoice_number, attempt, retry.max_attempts, channel.name,
                           delay, exc)
            retry.sleep(delay)
            continue
        _finish(conn, key, SENT, message_id=result.message_id, location=result.location)
        logger.info("invoice %s emailed to %s via %s", request.invoice_number,
                    mask_address(recipient), channel.name)
        return _outcome(request, key, SENT, attempt, result.message_id, result.location)


def _addressed_to(message: EmailMessage) -> str:
    """The one address the message goes to, or '' when the header does not read as one."""
    try:
        return recipient_of(message)
    except InvalidRecipientError:
        return ""


def _check_message_key(message: EmailMessage, request: DeliveryRequest, key: str) -> None:
    """A message built for another key is a caller bug: stop, do not send."""
    if message.get(IDEMPOTENCY_HEADER) != key:
        raise ValueError(
            f"the message for invoice {request.invoice_number} carries idempotency key "
            f"{message.get(IDEMPOTENCY_HEADER)!r}, expected {key!r}: build it with the key "
            "deliver() passes to the builder, or with ledger.idempotency_key()"
        )


def _sent_to_another_address(
    conn: duckdb.DuckDBPyConnection, request: DeliveryRequest, channel: str
) -> _LedgerRow | None:
    """A send of this invoice through this channel to an address it no longer has.

    A billing address changed after the invoice went out must not send it a second time.
    """
    row = conn.execute(
        """
        select status, message_id, location, last_error, run_id
        from q2c_ops.delivery_ledger
        where invoice_id = ? and channel = ? and status = ?
        order by sent_at desc
        limit 1
        """,
        [request.invoice_id, channel, SENT],
    ).fetchone()
    return None if row is None else _LedgerRow(*row)


def _ledger_row(conn: duckdb.DuckDBPyConnection, key: str) -> _LedgerRow | None:
    row = conn.execute(
        """
        select status, message_id, location, last_error, run_id
        from q2c_ops.delivery_ledger
        where idempotency_key = ?
        """,
        [key],
    ).fetchone()
    return None if row is None else _LedgerRow(*row)


def _mark_sending(
    conn: duckdb.DuckDBPyConnection,
    key: str,
    request: DeliveryRequest,
    channel: str,
    recipient: str,
    run_id: str,
) -> None:
    conn.execute(
        """
        insert into q2c_ops.delivery_ledger as ledger (
            idempotency_key, invoice_id, invoice_number, document_id, channel, recipient,
            status, attempts, first_attempt_at, run_id
        )
        values (?, ?, ?, ?, ?, ?, ?, 1, ?, ?)
        on conflict (idempotency_key) do update set
            status = excluded.status,
            attempts = coalesce(ledger.attempts, 0) + 1,
            invoice_number = excluded.invoice_number,
            document_id = excluded.document_id,
            first_attempt_at = coalesce(ledger.first_attempt_at, excluded.first_attempt_at),
            run_id = excluded.run_id
        """,
        [key, request.invoice_id, request.invoice_number, request.document_id, channel,
         recipient, SENDING, _utc_now(), run_id],
    )


def _record_rejected(
    conn: duckdb.DuckDBPyConnection,
    key: str,
    request: DeliveryRequest,
    channel: str,
    run_id: str,
    reason: str,
    status: str = REJECTED,
) -> None:
    """Record a request that was not sent: rejected (bad address) or failed (retried)."""
    conn.execute(
        """
        insert into q2c_ops.delivery_ledger as ledger (
            idempotency_key, invoice_id, invoice_number, document_id, channel, recipient,
            status, attempts, last_error, run_id
        )
        values (?, ?, ?, ?, ?, ?, ?, 0, ?, ?)
        on conflict (idempotency_key) do update set
            status = excluded.status,
            last_error = excluded.last_error,
            document_id = excluded.document_id,
            run_id = excluded.run_id
        """,
        [key, request.invoice_id, request.invoice_number, request.document_id, channel,
         request.recipient, status, reason, run_id],
    )


def _finish(
    conn: duckdb.DuckDBPyConnection,
    key: str,
    status: str,
    *,
    error: str | None = None,
    message_id: str | None = None,
    location: str | None = None,
) -> None:
    conn.execute(
        """
        update q2c_ops.delivery_ledger
        set status = ?,
            last_error = ?,
            message_id = coalesce(?, message_id),
            location = coalesce(?, location),
            sent_at = ?
        where idempotency_key = ?
        """,
        [status, error, message_id, location, _utc_now() if status == SENT else None, key],
    )


def _outcome(
    request: DeliveryRequest,
    key: str,
    status: str,
    attempts: int,
    message_id: str | None = None,
    location: str | None = None,
    error: str | None = None,
) -> DeliveryOutcome:
    return DeliveryOutcome(
        invoice_id=request.invoice_id,
        invoice_number=request.invoice_number,
        document_id=request.document_id,
        idempotency_key=key,
        status=status,
        attempts=attempts,
        message_id=message_id,
        location=location,
        error=error,
    )


def _utc_now() -> dt.datetime:
    """Now in UTC as a naive timestamp, the warehouse's convention for `timestamp` columns."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)
