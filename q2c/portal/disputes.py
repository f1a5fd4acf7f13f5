"""Structured disputes: what a customer says is wrong with an invoice, and what staff decide.

A customer opens a dispute in the portal with a reason code (the codes are data:
`content/portal/dispute_reasons.yaml`), optionally the invoice line at fault, a comment
and one attachment. Staff take it under review and resolve it (`q2c portal disputes
review|resolve`): credited, corrected, or rejected with a reason. A dispute moves one way,
open -> under_review -> resolved (staff may resolve an open dispute directly), and every
step is a portal event written in the same transaction as the change
(`q2c.portal.events`), so the audit log and the KPIs cannot miss a step. Every step also
writes the customer's reply, built from governed texts, into the store in that transaction;
it is sent after the commit (`q2c.portal.dispute_replies`). A resolution by credit writes
one credit-note request for the ERP (`credit_note_requests`), never two for one dispute.

What the customer gives is checked first (`q2c.portal.dispute_inputs`): the comment is
plain text, kept exactly as written and escaped wherever it is shown; the attachment is a
PDF, PNG or JPEG recognised from its bytes, stored here under the ops home with a random
name and downloaded under a name q2c makes.

While a dispute is not resolved, no reminder goes out for its invoice: the reminder run
asks `open_disputed_invoices` right before queueing, and the dunning mart reads the copy
`export_disputes` writes into the warehouse (`q2c_ops.portal_disputes`), beside the
requests the ERP team picks up (`q2c_ops.credit_note_requests`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import secrets
import sqlite3
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Protocol

import duckdb

from q2c.collections.holds import HoldError, check_text
from q2c.money import Money, minor_units
from q2c.opsdb import connect, ensure_schema, transaction
from q2c.portal.dispute_inputs import (
    Attachment,
    DisputedInvoice,
    DisputeError,
    DisputeReason,
    InvoiceLine,
    ReasonCatalog,
    Upload,
    check_comment,
    check_upload,
    download_name,
)
from q2c.portal.events import (
    DISPUTE_OPENED,
    DISPUTE_RESOLVED,
    DISPUTE_UPDATED,
    ensure_events,
    record_event,
)
from q2c.warehouse import OPS_SCHEMA

logger = logging.getLogger(__name__)

DISPUTES_TABLE = "portal_disputes"
REPLIES_TABLE = "portal_dispute_replies"
CREDIT_REQUESTS_TABLE = "credit_note_requests"

OPEN = "open"
UNDER_REVIEW = "under_review"
RESOLVED = "resolved"
STATUSES = (OPEN, UNDER_REVIEW, RESOLVED)
CREDITED = "credited"
CORRECTED = "corrected"
REJECTED = "rejected"
RESOLUTIONS = (CREDITED, CORRECTED, REJECTED)
# The steps a reply is written for.
STEP_OPENED = "opened"
STEP_UNDER_REVIEW = "under_review"
STEP_RESOLVED = "resolved"
# Staff text: a rejection's reason or a note, and who acts.
REASON_LIMIT = 500
NAME_LIMIT = 100


DISPUTES_DDL = f"""
create table if not exists {DISPUTES_TABLE} (
    dispute_number integer primary key autoincrement,
    dispute_id text not null unique,
    account_key text not null,
    invoice_id text not null,
    invoice_key text,
    invoice_number text not null,
    currency text not null,
    invoice_total_minor integer not null,
    line_number integer,
    line_description text,
    line_amount_minor integer,
    reason_code text not null,
    reasons_version integer not null,
    comment text not null,
    attachment_name text,
    attachment_type text,
    attachment_size integer,
    attachment_sha256 text,
    attachment_file text,
    status text not null,
    resolution text,
    resolution_note text,
    credit_amount_minor integer,
    language text not null,
    reply_to text,
    opened_at text not null,
    opened_by text not null,
    reviewed_at text,
    reviewed_by text,
    resolved_at text,
    resolved_by text,
    staff_step_count integer not null default 0,
    updated_at text not null
);
create index if not exists portal_disputes_invoice
    on {DISPUTES_TABLE} (account_key, invoice_id, status);
create table if not exists {REPLIES_TABLE} (
    reply_key text primary key,
    dispute_id text not null references {DISPUTES_TABLE} (dispute_id),
    step text not null,
    language text not null,
    texts text not null,
    recipient text not null,
    subject text not null,
    payload blob not null,
    written_at text not null,
    sent_at text,
    attempts integer not null default 0,
    last_error text,
    given_up_at text
);
create table if not exists {CREDIT_REQUESTS_TABLE} (
    request_id text primary key,
    dispute_id text not null unique references {DISPUTES_TABLE} (dispute_id),
    dispute_number integer not null,
    account_key text not null,
    invoice_id text not null,
    invoice_key text,
    invoice_number text not null,
    line_number integer,
    currency text not null,
    amount_minor integer not null,
    reason_code text not null,
    reason text not null,
    requested_at text not null,
    requested_by text not null
);
"""

# (column, warehouse type) of the warehouse copies. The comment, the reply address and the
# attachment's stored name stay in the store: the warehouse gets facts, not customer text.
_DISPUTE_COLUMNS = (
    ("dispute_id", "varchar"), ("dispute_number", "bigint"), ("account_key", "varchar"),
    ("invoice_id", "varchar"), ("invoice_key", "varchar"), ("invoice_number", "varchar"),
    ("currency", "varchar"), ("invoice_total_minor", "bigint"), ("line_number", "integer"),
    ("line_amount_minor", "bigint"), ("reason_code", "varchar"),
    ("reasons_version", "integer"), ("has_comment", "boolean"),
    ("has_attachment", "boolean"), ("status", "varchar"), ("resolution", "varchar"),
    ("credit_amount_minor", "bigint"), ("language", "varchar"), ("opened_at", "timestamp"),
    ("opened_by", "varchar"), ("reviewed_at", "timestamp"), ("reviewed_by", "varchar"),
    ("resolved_at", "timestamp"), ("resolved_by", "varchar"),
    ("staff_step_count", "integer"), ("updated_at", "timestamp"),
)
_REQUEST_COLUMNS = (
    ("request_id", "varchar"), ("dispute_id", "varchar"), ("dispute_number", "bigint"),
    ("account_key", "varchar"), ("invoice_id", "varchar"), ("invoice_key", "varchar"),
    ("invoice_number", "varchar"), ("line_number", "integer"), ("currency", "varchar"),
    ("amount_minor", "bigint"), ("minor_units", "integer"), ("amount", "decimal(20, 4)"),
    ("reason_code", "varchar"), ("reason", "varchar"), ("requested_at", "timestamp"),
    ("requested_by", "varchar"),
)


def _warehouse_ddl(table: str, columns: tuple[tuple[str, str], ...]) -> str:
    return (f"create schema if not exists {OPS_SCHEMA};\n"
            f"create table if not exists {OPS_SCHEMA}.{table} (\n    "
            + ",\n    ".join(f"{name} {kind}" for name, kind in columns) + "\n);")


WAREHOUSE_DDL = (_warehouse_ddl(DISPUTES_TABLE, _DISPUTE_COLUMNS) + "\n"
                 + _warehouse_ddl(CREDIT_REQUESTS_TABLE, _REQUEST_COLUMNS))


# --- disputes ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Dispute:
    """One dispute as the store holds it."""

    dispute_id: str
    dispute_number: int
    account_key: str
    invoice_id: str
    invoice_key: str | None
    invoice_number: str
    currency: str
    invoice_total_minor: int
    line_number: int | None
    line_description: str | None
    line_amount_minor: int | None
    reason_code: str
    comment: str
    attachment: Attachment | None
    status: str
    resolution: str | None
    resolution_note: str | None
    credit_amount_minor: int | None
    language: str
    reply_to: str | None
    opened_at: dt.datetime
    opened_by: str
    reviewed_at: dt.datetime | None
    reviewed_by: str | None
    resolved_at: dt.datetime | None
    resolved_by: str | None
    staff_step_count: int

    @property
    def reference(self) -> str:
        """What the customer and staff call it: `D-1042`."""
        return f"D-{self.dispute_number}"

    @property
    def is_open(self) -> bool:
        """Not resolved yet: reminders for its invoice pause."""
        return self.status != RESOLVED

    @property
    def credit_amount(self) -> Money | None:
        if self.credit_amount_minor is None:
            return None
        return Money.from_minor(self.credit_amount_minor, self.currency)

    @property
    def disputed_amount(self) -> Money:
        """The line's amount when a line is named, else the invoice total."""
        minor = (self.line_amount_minor if self.line_amount_minor is not None
                 else self.invoice_total_minor)
        return Money.from_minor(minor, self.currency)


class ReplyWriter(Protocol):
    """Builds the customer's email for a step of a dispute (`q2c.portal.dispute_replies`)."""

    def write(self, dispute: Dispute, step: str) -> Mapping[str, Any] | None:
        """The reply row's values (reply_key, recipient, subject, payload, ...), or None
        when the dispute has no address to reply to."""


class DisputeBook:
    """The disputes of the operational store at `store_path` (`Settings.ops_store`).

    Args:
        store_path: The SQLite file; its tables are created when missing.
        reasons: The reason codes in force (`load_reasons`).
        attachments_dir: Where attachments are kept (default: `portal_attachments` beside
            the store, under the ops home).
        replies: Writes the customer's reply for each step; None writes none (tests of the
            rules alone).
        clock: Returns the current time (timezone-aware); tests pin it.
    """

    def __init__(self, store_path: Path, reasons: ReasonCatalog, *,
                 attachments_dir: Path | None = None, replies: ReplyWriter | None = None,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self.store_path = Path(store_path)
        self.reasons = reasons
        self.attachments_dir = Path(attachments_dir or
                                    self.store_path.parent / "portal_attachments")
        self.replies = replies
        self._clock = clock or _now
        ensure_store(self.store_path)

    # -- the customer's side --

    def open(self, invoice: DisputedInvoice, *, reason_code: str, comment: str = "",
             line_number: int | None = None, upload: Upload | None = None, actor: str,
             language: str, reply_to: str | None = None,
             client: str | None = None) -> Dispute:
        """Open a dispute of `invoice` for its account; return it.

        Raises:
            DisputeError: The reason is unknown or retired, the line is not the invoice's
                (or the reason names none), the comment or the attachment is refused, or
                the invoice (that line, or the whole invoice) already has a dispute that is
                not resolved.
        """
        reason = self.reasons.get(reason_code)
        if reason.retired:
            raise DisputeError(f"dispute reason {reason_code!r} is no longer offered: choose "
                               "another", key="dispute_error_reason")
        comment = check_comment(comment, reason.comment_required)
        line = self._line(invoice, reason, line_number)
        kind = check_upload(upload) if upload is not None else None
        stored_as = self._keep(upload.data) if upload is not None else None
        now = self._clock()
        try:
            with connect(self.store_path) as conn, transaction(conn):
                self._refuse_second_dispute(conn, invoice, line_number)
                number = self._insert(conn, invoice, reason, comment, line, upload, kind,
                                      stored_as, actor, language, reply_to, now)
                dispute = self._dispute(conn, number)
                record_event(conn, DISPUTE_OPENED, actor=actor,
                             account_key=invoice.account_key, invoice_id=invoice.invoice_id,
                             object_id=dispute.dispute_id, client=client, at=now,
                             detail={"dispute": dispute.reference, "reason": reason.code,
                                     "line": line_number, "attachment": kind is not None})
                self._write_reply(conn, dispute, STEP_OPENED, now)
        except BaseException:
            if stored_as is not None:
                (self.attachments_dir / stored_as).unlink(missing_ok=True)
            raise
        logger.info("invoice %s: dispute %s opened (%s) by %s", invoice.invoice_number,
                    dispute.reference, reason.code, actor)
        return dispute

    def for_customer(self, dispute_id: str, account_key: str,
                     invoice_id: str | None = None) -> Dispute | None:
        """The dispute when it belongs to the account (and to the invoice, for a customer
        signed in for one invoice); None otherwise, whoever's it is."""
        with connect(self.store_path) as conn:
            row = conn.execute(
                f"select * from {DISPUTES_TABLE} where dispute_id = ? and account_key = ?"
                " and (? is null or invoice_id = ?)",
                (dispute_id, account_key, invoice_id, invoice_id),
            ).fetchone()
        return _dispute_of(row) if row is not None else None

    def of_invoice(self, account_key: str, invoice_id: str) -> list[Dispute]:
        """The account's disputes of one invoice, newest first."""
        with connect(self.store_path) as conn:
            rows = conn.execute(
                f"select * from {DISPUTES_TABLE} where account_key = ? and invoice_id = ?"
                " order by dispute_number desc", (account_key, invoice_id),
            ).fetchall()
        return [_dispute_of(row) for row in rows]

    def attachment_bytes(self, dispute: Dispute) -> bytes:
        """The attachment's bytes, checked against the hash taken when it was stored.

        Raises:
            LookupError: The dispute has no attachment, or its file is missing or changed.
        """
        if dispute.attachment is None:
            raise LookupError(f"dispute {dispute.reference} has no attachment")
        path = self.attachments_dir / dispute.attachment.stored_as
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise LookupError(f"the attachment of dispute {dispute.reference} is missing "
                              f"from {self.attachments_dir}: restore it from the backup"
                              ) from exc
        if hashlib.sha256(data).hexdigest() != dispute.attachment.sha256:
            raise LookupError(f"the attachment of dispute {dispute.reference} changed since "
                              "it was stored; it is not served")
        return data

    # -- the staff's side --

    def by_number(self, number: int) -> Dispute:
        """The dispute staff name by its number (`D-12` or `12`).

        Raises:
            LookupError: No dispute has that number.
        """
        with connect(self.store_path) as conn:
            row = conn.execute(f"select * from {DISPUTES_TABLE} where dispute_number = ?",
                               (number,)).fetchone()
        if row is None:
            raise LookupError(f"no dispute D-{number}: `q2c portal disputes list --all` "
                              "lists them")
        return _dispute_of(row)

    def listing(self, statuses: tuple[str, ...] = (OPEN, UNDER_REVIEW)) -> list[Dispute]:
        """The disputes with one of `statuses`, oldest first."""
        marks = ", ".join("?" for _ in statuses)
        with connect(self.store_path) as conn:
            rows = conn.execute(
                f"select * from {DISPUTES_TABLE} where status in ({marks})"
                " order by dispute_number", statuses,
            ).fetchall()
        return [_dispute_of(row) for row in rows]

    def review(self, number: int, by: str, client: str | None = None) -> Dispute:
        """Take an open dispute under review; the customer is told.

        Raises:
            DisputeError: It is under review already or resolved, or `by` is no name.
            LookupError: No dispute has that number.
        """
        by = _one_line(by, "--by", NAME_LIMIT)
        now = self._clock()
        with connect(self.store_path) as conn, transaction(conn):
            dispute = self._dispute(conn, number)
            if dispute.status != OPEN:
                raise DisputeError(f"dispute {dispute.reference} is {dispute.status}, not "
                                   "open: only an open dispute is taken under review")
            conn.execute(
                f"update {DISPUTES_TABLE} set status = ?, reviewed_at = ?, reviewed_by = ?,"
                " staff_step_count = staff_step_count + 1, updated_at = ?"
                " where dispute_number = ?",
                (UNDER_REVIEW, _stamp(now), by, _stamp(now), number),
            )
            dispute = self._dispute(conn, number)
            record_event(conn, DISPUTE_UPDATED, actor=f"staff:{by}",
                         account_key=dispute.account_key, invoice_id=dispute.invoice_id,
                         object_id=dispute.dispute_id, client=client, at=now,
                         detail={"dispute": dispute.reference, "status": UNDER_REVIEW})
            self._write_reply(conn, dispute, STEP_UNDER_REVIEW, now)
        logger.info("invoice %s: dispute %s under review by %s", dispute.invoice_number,
                    dispute.reference, by)
        return dispute

    def resolve(self, number: int, by: str, resolution: str, *,
                amount: Decimal | str | None = None, reason: str | None = None,
                client: str | None = None) -> Dispute:
        """Resolve a dispute: credited (with the amount to credit), corrected, or rejected
        (with the reason the customer reads). The customer is told; a credit writes the
        dispute's credit-note request.

        Resolving a resolved dispute again the same way (a retried command) changes
        nothing and returns it; resolving it another way is refused.

        Raises:
            DisputeError: The resolution is unknown, a credit has no amount (or one that
                is not above 0, has more decimals than the currency, or exceeds the
                disputed amount), a rejection has no reason, or the dispute was resolved
                another way.
            LookupError: No dispute has that number.
        """
        by = _one_line(by, "--by", NAME_LIMIT)
        if resolution not in RESOLUTIONS:
            raise DisputeError(f"resolution {resolution!r} is unknown: use "
                               f"{', '.join(RESOLUTIONS)}")
        if reason is not None and reason.strip():
            reason = _one_line(reason, "--reason", REASON_LIMIT)
        elif resolution == REJECTED:
            raise DisputeError("a rejection needs the reason the customer reads (--reason)")
        else:
            reason = None
        now = self._clock()
        with connect(self.store_path) as conn, transaction(conn):
            dispute = self._dispute(conn, number)
            credit = (_credit_minor(dispute, amount) if resolution == CREDITED else None)
            if dispute.status == RESOLVED:
                return _resolved_again(dispute, resolution, credit)
            conn.execute(
                f"update {DISPUTES_TABLE} set status = ?, resolution = ?,"
                " resolution_note = ?, credit_amount_minor = ?, resolved_at = ?,"
                " resolved_by = ?, staff_step_count = staff_step_count + 1, updated_at = ?"
                " where dispute_number = ?",
                (RESOLVED, resolution, reason, credit, _stamp(now), by, _stamp(now), number),
            )
            dispute = self._dispute(conn, number)
            record_event(conn, DISPUTE_RESOLVED, actor=f"staff:{by}",
                         account_key=dispute.account_key, invoice_id=dispute.invoice_id,
                         object_id=dispute.dispute_id, client=client, at=now,
                         detail={"dispute": dispute.reference, "resolution": resolution,
                                 "credit_amount_minor": credit})
            if credit is not None:
                _request_credit_note(conn, dispute, self.reasons, by, now)
            self._write_reply(conn, dispute, STEP_RESOLVED, now)
        logger.info("invoice %s: dispute %s resolved (%s) by %s", dispute.invoice_number,
                    dispute.reference, resolution, by)
        return dispute

    def credit_note_requests(self) -> list[dict[str, Any]]:
        """Every credit-note request written, oldest first."""
        with connect(self.store_path) as conn:
            rows = conn.execute(f"select * from {CREDIT_REQUESTS_TABLE}"
                                " order by requested_at, request_id").fetchall()
        return [dict(row) for row in rows]

    # -- helpers --

    def _line(self, invoice: DisputedInvoice, reason: DisputeReason,
              line_number: int | None) -> InvoiceLine | None:
        if line_number is None:
            return None
        if not reason.names_line:
            raise DisputeError(f"the reason {reason.code!r} concerns the whole invoice: "
                               "name no line", key="dispute_error_line")
        line = invoice.line(line_number)
        if line is None:
            raise DisputeError(f"invoice {invoice.invoice_number} has no line "
                               f"{line_number}: choose one of its lines or none",
                               key="dispute_error_line")
        return line

    def _keep(self, data: bytes) -> str:
        """Write the bytes under a random name; return the name."""
        self.attachments_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = secrets.token_hex(16)
        path = self.attachments_dir / name
        with open(path, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        return name

    def _refuse_second_dispute(self, conn: sqlite3.Connection, invoice: DisputedInvoice,
                               line_number: int | None) -> None:
        row = conn.execute(
            f"select dispute_number from {DISPUTES_TABLE} where account_key = ?"
            " and invoice_id = ? and status <> ? and (line_number is ? or line_number is null"
            " or ? is null) order by dispute_number limit 1",
            (invoice.account_key, invoice.invoice_id, RESOLVED, line_number, line_number),
        ).fetchone()
        if row is not None:
            raise DisputeError(f"invoice {invoice.invoice_number} already has dispute "
                               f"D-{row[0]}, which is not resolved yet: add to it by "
                               "replying to our message instead",
                               key="dispute_error_already_open")

    def _insert(self, conn, invoice, reason, comment, line, upload, kind, stored_as, actor,
                language, reply_to, now) -> int:
        data = upload.data if upload is not None else None
        cursor = conn.execute(
            f"""
            insert into {DISPUTES_TABLE} (dispute_id, account_key, invoice_id, invoice_key,
                invoice_number, currency, invoice_total_minor, line_number, line_description,
                line_amount_minor, reason_code, reasons_version, comment, attachment_type,
                attachment_size, attachment_sha256, attachment_file, status, language,
                reply_to, opened_at, opened_by, updated_at)
            values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            (secrets.token_urlsafe(16), invoice.account_key, invoice.invoice_id,
             invoice.invoice_key, invoice.invoice_number, invoice.currency,
             Money.of(invoice.total_amount, invoice.currency).minor,
             line.line_number if line else None, line.description if line else None,
             Money.of(line.amount, invoice.currency).minor if line else None,
             reason.code, self.reasons.version, comment, kind[0] if kind else None,
             len(data) if data is not None else None,
             hashlib.sha256(data).hexdigest() if data is not None else None, stored_as,
             OPEN, language, reply_to, _stamp(now), actor, _stamp(now)),
        )
        number = int(cursor.lastrowid)
        if upload is not None and kind is not None:
            conn.execute(f"update {DISPUTES_TABLE} set attachment_name = ?"
                         " where dispute_number = ?",
                         (download_name(upload.filename, kind[1], number), number))
        return number

    def _dispute(self, conn: sqlite3.Connection, number: int) -> Dispute:
        row = conn.execute(f"select * from {DISPUTES_TABLE} where dispute_number = ?",
                           (number,)).fetchone()
        if row is None:
            raise LookupError(f"no dispute D-{number}: `q2c portal disputes list --all` "
                              "lists them")
        return _dispute_of(row)

    def _write_reply(self, conn: sqlite3.Connection, dispute: Dispute, step: str,
                     now: dt.datetime) -> None:
        if self.replies is None:
            return
        reply = self.replies.write(dispute, step)
        if reply is None:
            logger.warning("dispute %s of invoice %s: no address to reply to; the customer "
                           "reads the %s step in the portal only", dispute.reference,
                           dispute.invoice_number, step)
            return
        conn.execute(
            f"insert into {REPLIES_TABLE} (reply_key, dispute_id, step, language, texts,"
            " recipient, subject, payload, written_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " on conflict (reply_key) do nothing",
            (reply["reply_key"], dispute.dispute_id, step, reply["language"], reply["texts"],
             reply["recipient"], reply["subject"], reply["payload"], _stamp(now)),
        )


def _one_line(value: str, option: str, limit: int) -> str:
    """Staff text as a dispute keeps it: one line of plain text within `limit`."""
    try:
        return check_text(value, option, limit)
    except HoldError as exc:
        raise DisputeError(str(exc)) from None


def _credit_minor(dispute: Dispute, amount: Decimal | str | None) -> int:
    """The credit in minor units, checked against the currency and the disputed amount."""
    if amount is None or str(amount).strip() == "":
        raise DisputeError("a credit needs the amount to credit (--amount, in "
                           f"{dispute.currency})")
    try:
        value = Decimal(str(amount).strip())
    except InvalidOperation as exc:
        raise DisputeError(f"--amount {amount!r} is not an amount like 120.50") from exc
    digits = minor_units(dispute.currency)
    if not value.is_finite() or value != value.quantize(Decimal(1).scaleb(-digits)):
        raise DisputeError(f"--amount {amount} has more decimals than {dispute.currency} "
                           f"has ({digits})")
    credit = Money(value, dispute.currency)
    if credit.minor <= 0:
        raise DisputeError(f"--amount {amount} is not above 0: a credit gives money back")
    if credit.minor > dispute.disputed_amount.minor:
        what = (f"line {dispute.line_number}" if dispute.line_number is not None
                else "the invoice")
        raise DisputeError(f"--amount {credit} is more than {what} of dispute "
                           f"{dispute.reference} ({dispute.disputed_amount})")
    return credit.minor


def _resolved_again(dispute: Dispute, resolution: str, credit: int | None) -> Dispute:
    if dispute.resolution == resolution and dispute.credit_amount_minor == credit:
        logger.info("dispute %s was already resolved (%s); nothing changed",
                    dispute.reference, resolution)
        return dispute
    raise DisputeError(f"dispute {dispute.reference} was resolved ({dispute.resolution}) "
                       f"by {dispute.resolved_by}; a resolved dispute does not change: the "
                       "customer may open a new one")


def _request_credit_note(conn: sqlite3.Connection, dispute: Dispute,
                         reasons: ReasonCatalog, by: str, now: dt.datetime) -> None:
    """One request per dispute: a second resolution by credit writes none."""
    text = dispute.resolution_note or _reason_label(reasons, dispute.reason_code)
    conn.execute(
        f"""
        insert into {CREDIT_REQUESTS_TABLE} (request_id, dispute_id, dispute_number,
            account_key, invoice_id, invoice_key, invoice_number, line_number, currency,
            amount_minor, reason_code, reason, requested_at, requested_by)
        values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        on conflict (dispute_id) do nothing
        """,
        (uuid.uuid4().hex, dispute.dispute_id, dispute.dispute_number, dispute.account_key,
         dispute.invoice_id, dispute.invoice_key, dispute.invoice_number, dispute.line_number,
         dispute.currency, dispute.credit_amount_minor, dispute.reason_code, text,
         _stamp(now), by),
    )


def _reason_label(reasons: ReasonCatalog, code: str) -> str:
    try:
        return reasons.get(code).label("en")
    except DisputeError:
        return code


def open_disputed_invoices(store_path: Path) -> set[tuple[str, str]]:
    """(account key, invoice id) of every invoice with a dispute that is not resolved.

    Read right before reminders are queued, so a dispute opened after the marts were
    built still stops the reminder. A store without disputes gives an empty set.
    """
    with connect(store_path) as conn:
        present = conn.execute("select 1 from sqlite_master where type = 'table'"
                               " and name = ?", (DISPUTES_TABLE,)).fetchone()
        if present is None:
            return set()
        rows = conn.execute(f"select distinct account_key, invoice_id from {DISPUTES_TABLE}"
                            " where status <> ?", (RESOLVED,)).fetchall()
    return {(row[0], row[1]) for row in rows}


def ensure_store(store_path: Path) -> None:
    """Create the dispute tables and the events table in the store when missing."""
    with connect(store_path) as conn:
        ensure_tables(conn)


def ensure_tables(conn: sqlite3.Connection) -> None:
    """The same on an open store connection (the portal app does it at startup)."""
    ensure_events(conn)
    ensure_schema(conn, DISPUTES_DDL)


def export_disputes(store_conn: sqlite3.Connection,
                    duck_conn: duckdb.DuckDBPyConnection) -> int:
    """Replace the warehouse copies of the disputes and the credit-note requests with the
    store's, in one transaction; return the disputes copied."""
    ensure_schema(store_conn, DISPUTES_DDL)
    disputes = [_dispute_values(row) for row in store_conn.execute(
        f"select * from {DISPUTES_TABLE} order by dispute_number").fetchall()]
    requests = [_request_values(row) for row in store_conn.execute(
        f"select * from {CREDIT_REQUESTS_TABLE} order by requested_at, request_id").fetchall()]
    duck_conn.execute(WAREHOUSE_DDL)
    duck_conn.execute("begin transaction")
    try:
        for table, columns, values in ((DISPUTES_TABLE, _DISPUTE_COLUMNS, disputes),
                                       (CREDIT_REQUESTS_TABLE, _REQUEST_COLUMNS, requests)):
            duck_conn.execute(f"delete from {OPS_SCHEMA}.{table}")
            if values:
                names = ", ".join(name for name, _ in columns)
                marks = ", ".join("?" for _ in columns)
                duck_conn.executemany(
                    f"insert into {OPS_SCHEMA}.{table} ({names}) values ({marks})", values)
    except BaseException:
        duck_conn.execute("rollback")
        raise
    duck_conn.execute("commit")
    logger.info("portal disputes copied to the warehouse: %d disputes, %d credit-note "
                "requests", len(disputes), len(requests))
    return len(disputes)


def _dispute_values(row: sqlite3.Row) -> tuple:
    values = dict(row) | {"has_comment": bool((row["comment"] or "").strip()),
                          "has_attachment": row["attachment_file"] is not None}
    return tuple(_warehouse_value(kind, values[name]) for name, kind in _DISPUTE_COLUMNS)


def _request_values(row: sqlite3.Row) -> tuple:
    digits = minor_units(row["currency"])
    values = dict(row) | {"minor_units": digits,
                          "amount": Decimal(row["amount_minor"]).scaleb(-digits)}
    return tuple(_warehouse_value(kind, values[name]) for name, kind in _REQUEST_COLUMNS)


def _warehouse_value(kind: str, value: object) -> object:
    if value is None:
        return None
    if kind == "timestamp":
        return _moment(str(value)).replace(tzinfo=None)
    return value


def _dispute_of(row: sqlite3.Row) -> Dispute:
    attachment = None
    if row["attachment_file"]:
        attachment = Attachment(name=row["attachment_name"],
                                content_type=row["attachment_type"],
                                size=int(row["attachment_size"]),
                                sha256=row["attachment_sha256"],
                                stored_as=row["attachment_file"])
    return Dispute(
        dispute_id=row["dispute_id"], dispute_number=int(row["dispute_number"]),
        account_key=row["account_key"], invoice_id=row["invoice_id"],
        invoice_key=row["invoice_key"], invoice_number=row["invoice_number"],
        currency=row["currency"], invoice_total_minor=int(row["invoice_total_minor"]),
        line_number=row["line_number"], line_description=row["line_description"],
        line_amount_minor=row["line_amount_minor"], reason_code=row["reason_code"],
        comment=row["comment"], attachment=attachment, status=row["status"],
        resolution=row["resolution"], resolution_note=row["resolution_note"],
        credit_amount_minor=row["credit_amount_minor"], language=row["language"],
        reply_to=row["reply_to"], opened_at=_moment(row["opened_at"]),
        opened_by=row["opened_by"], reviewed_at=_optional_moment(row["reviewed_at"]),
        reviewed_by=row["reviewed_by"], resolved_at=_optional_moment(row["resolved_at"]),
        resolved_by=row["resolved_by"], staff_step_count=int(row["staff_step_count"]),
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _moment(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC)


def _optional_moment(text: str | None) -> dt.datetime | None:
    return _moment(text) if text else None
