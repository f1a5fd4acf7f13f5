"""The nightly reconciliation's run summary, and the email that brings it to finance.

dbt finds the differences (`core.mart_reconciliation_exceptions`, one row per exception
with its reason code, and `core.mart_reconciliation_summary`, what was compared). This
module reads both marts, adds them up per reason and currency, renders the result as a
Markdown table (for the Dagster asset's metadata) and as a plain-text email with every
exception attached as CSV, and mails it to the finance address through the mail channel
the invoices use.

A summary is mailed once: its key is made of the day, the recipient and the exceptions
found, and the keys already sent are kept in the operational store. A second run the same
night with the same findings sends nothing; a run that finds something else sends the new
summary.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import logging
import sqlite3
from collections import Counter, defaultdict
from dataclasses import dataclass
from decimal import Decimal
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path

import duckdb

from q2c import opsdb
from q2c.delivery.addresses import validate_recipient
from q2c.delivery.envelope import EMAIL, ChannelReceipt, Envelope
from q2c.delivery.errors import DeliveryError
from q2c.delivery.mail_transport import EmlFolderTransport, email_payload
from q2c.delivery.message import IDEMPOTENCY_HEADER
from q2c.money import Money, is_iso_currency
from q2c.settings import Settings

logger = logging.getLogger(__name__)

REASON_CODES = (
    "missing_in_erp", "missing_at_gateway", "amount_mismatch", "currency_mismatch",
    "duplicate",
)
REASON_LABELS = {
    "missing_in_erp": "Missing in the ERP",
    "missing_at_gateway": "Missing at the gateway",
    "amount_mismatch": "Amount mismatch",
    "currency_mismatch": "Currency mismatch",
    "duplicate": "Duplicate",
}
EXCEPTIONS_RELATION = "core.mart_reconciliation_exceptions"
SUMMARY_RELATION = "core.mart_reconciliation_summary"
# The email lists this many exceptions in its body; the CSV attachment has all of them.
EMAIL_LISTED = 50

_EXCEPTIONS_SQL = """
    select exception_key, reason_code, check_name, invoice_number, payment_id,
           gateway_charge_id, payout_id, duplicate_of_id, currency, compared_currency,
           erp_amount, q2c_amount, gateway_amount, difference_amount, event_date,
           what_to_check
    from core.mart_reconciliation_exceptions
    order by reason_code, check_name, currency, exception_key
"""
_COMPARED_SQL = """
    select check_name, outcome, sum(item_count)
    from core.mart_reconciliation_summary
    group by check_name, outcome
    order by check_name, outcome
"""
_SENT_DDL = """
create table if not exists reconciliation_summaries_sent (
    summary_key text primary key,
    reconciled_on text not null,
    recipient text not null,
    exceptions integer not null,
    location text not null,
    sent_at text not null
);
"""


class ReconciliationError(RuntimeError):
    """The reconciliation marts cannot be read or the summary cannot be mailed."""


@dataclass(frozen=True)
class ReconciliationException:
    """One row of `core.mart_reconciliation_exceptions`."""

    exception_key: str
    reason_code: str
    check_name: str
    invoice_number: str | None
    payment_id: str | None
    gateway_charge_id: str | None
    payout_id: str | None
    duplicate_of_id: str | None
    currency: str | None
    compared_currency: str | None
    erp_amount: Decimal | None
    q2c_amount: Decimal | None
    gateway_amount: Decimal | None
    difference_amount: Decimal | None
    event_date: dt.date | None
    what_to_check: str


@dataclass(frozen=True)
class ReconciliationSummary:
    """What one night's reconciliation compared and found.

    Attributes:
        reconciled_on: The reconciliation day (the run's as-of date).
        compared: Items compared per check and outcome ('reconciled' or a reason code).
        exceptions: Every exception, ordered by reason, check and currency.
    """

    reconciled_on: dt.date
    compared: dict[tuple[str, str], int]
    exceptions: tuple[ReconciliationException, ...]

    @property
    def items_compared(self) -> int:
        return sum(self.compared.values())

    @property
    def items_reconciled(self) -> int:
        return sum(n for (_, outcome), n in self.compared.items() if outcome == "reconciled")

    def counts_by_reason(self) -> dict[str, int]:
        """Exceptions per reason code, every code present (0 when none)."""
        found = Counter(item.reason_code for item in self.exceptions)
        return {code: found.get(code, 0) for code in REASON_CODES}

    def amounts_by_reason(self) -> dict[str, dict[str, Decimal]]:
        """Per reason code and currency, the sum of the absolute differences.

        A currency mismatch has no difference (two currencies cannot be subtracted); its
        gateway amount is counted instead, so the table shows what is at stake.
        """
        totals: dict[str, dict[str, Decimal]] = defaultdict(dict)
        for item in self.exceptions:
            amount = item.difference_amount
            if amount is None:
                amount = item.gateway_amount if item.gateway_amount is not None else Decimal(0)
            currency = item.currency or "?"
            by_currency = totals[item.reason_code]
            by_currency[currency] = by_currency.get(currency, Decimal(0)) + abs(amount)
        return {code: dict(sorted(totals[code].items())) for code in REASON_CODES
                if code in totals}

    def headline(self) -> str:
        """One line: the day and what was found."""
        if not self.exceptions:
            return (f"Reconciliation {self.reconciled_on}: all {self.items_compared} items "
                    "reconciled")
        found = ", ".join(f"{code} {count}" for code, count in self.counts_by_reason().items()
                          if count)
        count = len(self.exceptions)
        return (f"Reconciliation {self.reconciled_on}: {count} "
                f"exception{'s' if count != 1 else ''} ({found})")

    def markdown(self) -> str:
        """The summary as Markdown tables: exceptions by reason, then items by check."""
        amounts = self.amounts_by_reason()
        lines = [f"**{self.headline()}**", "",
                 "| reason | exceptions | amount at stake |", "|---|---:|---|"]
        for code, count in self.counts_by_reason().items():
            lines.append(f"| {code} | {count} | {_amounts_text(amounts.get(code, {}))} |")
        lines += ["", "| check | compared | reconciled | exceptions |", "|---|---:|---:|---:|"]
        for check, compared, reconciled in self._by_check():
            lines.append(f"| {check} | {compared} | {reconciled} | {compared - reconciled} |")
        return "\n".join(lines)

    def text(self, limit: int = EMAIL_LISTED) -> str:
        """The summary as plain text, with the first `limit` exceptions and what to check."""
        amounts = self.amounts_by_reason()
        lines = [self.headline(), "",
                 f"Items compared: {self.items_compared}, reconciled: "
                 f"{self.items_reconciled}, exceptions: {len(self.exceptions)}.", "",
                 "Exceptions by reason:"]
        for code, count in self.counts_by_reason().items():
            stake = _amounts_text(amounts.get(code, {}))
            lines.append(f"  {REASON_LABELS[code]} ({code}): {count}"
                         + (f", {stake}" if count else ""))
        lines += ["", "Items compared by check:"]
        for check, compared, reconciled in self._by_check():
            lines.append(f"  {check}: {compared} compared, {reconciled} reconciled")
        if self.exceptions:
            lines += ["", "What to check:"]
            for item in self.exceptions[:limit]:
                lines.append(f"- [{item.reason_code}] {_subject_of(item)}: "
                             f"{item.what_to_check}")
            if len(self.exceptions) > limit:
                lines.append(f"- ... {len(self.exceptions) - limit} more in the attached CSV")
        return "\n".join(lines)

    def csv_bytes(self) -> bytes:
        """Every exception as CSV (UTF-8), for the email attachment."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(["exception_key", "reason_code", "check_name", "invoice_number",
                         "payment_id", "gateway_charge_id", "payout_id", "duplicate_of_id",
                         "currency", "compared_currency", "erp_amount", "q2c_amount",
                         "gateway_amount", "difference_amount", "event_date",
                         "what_to_check"])
        for item in self.exceptions:
            writer.writerow(["" if value is None else value for value in (
                item.exception_key, item.reason_code, item.check_name, item.invoice_number,
                item.payment_id, item.gateway_charge_id, item.payout_id, item.duplicate_of_id,
                item.currency, item.compared_currency,
                *(amount_text(amount, item.currency) for amount in (
                    item.erp_amount, item.q2c_amount, item.gateway_amount,
                    item.difference_amount)),
                item.event_date,
                item.what_to_check,
            )])
        return out.getvalue().encode("utf-8")

    def fingerprint(self) -> str:
        """A digest of the findings: the same exceptions and amounts give the same text."""
        digest = hashlib.sha256(str(self.reconciled_on).encode())
        for item in sorted(self.exceptions, key=lambda e: e.exception_key):
            digest.update(f"\n{item.exception_key}|{item.difference_amount}".encode())
        return digest.hexdigest()

    def _by_check(self) -> list[tuple[str, int, int]]:
        checks: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for (check, outcome), count in self.compared.items():
            checks[check][0] += count
            if outcome == "reconciled":
                checks[check][1] += count
        return [(check, total, reconciled) for check, (total, reconciled)
                in sorted(checks.items())]


def read_summary(conn: duckdb.DuckDBPyConnection, reconciled_on: dt.date
                 ) -> ReconciliationSummary:
    """Read the two reconciliation marts into a summary.

    Raises:
        ReconciliationError: A mart is missing: dbt has not built it in this warehouse.
    """
    try:
        exception_rows = conn.execute(_EXCEPTIONS_SQL).fetchall()
        compared_rows = conn.execute(_COMPARED_SQL).fetchall()
    except duckdb.CatalogException as exc:
        raise ReconciliationError(
            f"the reconciliation marts ({EXCEPTIONS_RELATION}, {SUMMARY_RELATION}) are not "
            "in the warehouse: run the dbt step (`q2c run`, or `dbt build --select "
            f"+mart_reconciliation_exceptions +mart_reconciliation_summary`) first ({exc})"
        ) from exc
    exceptions = tuple(ReconciliationException(*row) for row in exception_rows)
    compared = {(check, outcome): int(count) for check, outcome, count in compared_rows}
    return ReconciliationSummary(reconciled_on, compared, exceptions)


def summary_email(summary: ReconciliationSummary, sender: str, recipient: str,
                  now: dt.datetime | None = None) -> EmailMessage:
    """The summary as a plain-text email with the exceptions attached as CSV.

    The Message-ID and the idempotency header carry `summary_key`, so a copy of the same
    summary is recognisable as such.
    """
    address = validate_recipient(recipient)
    key = summary_key(summary, address)
    message = EmailMessage()
    message["From"] = sender
    message["To"] = address
    message["Subject"] = summary.headline()
    message["Date"] = format_datetime((now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC))
    message["Message-ID"] = f"<reconciliation.{key}@{_domain(sender)}>"
    message[IDEMPOTENCY_HEADER] = key
    # RFC 3834: an automated report; vacation responders should not answer it.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(summary.text())
    if summary.exceptions:
        message.add_attachment(
            summary.csv_bytes(), maintype="text", subtype="csv",
            filename=f"reconciliation-exceptions-{summary.reconciled_on}.csv",
        )
    return message


def summary_key(summary: ReconciliationSummary, recipient: str) -> str:
    """One key per day, recipient and set of findings (40 hex characters)."""
    text = f"{summary.reconciled_on}\n{recipient.lower()}\n{summary.fingerprint()}"
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def send_summary(summary: ReconciliationSummary, settings: Settings, recipient: str,
                 transport=None) -> ChannelReceipt | None:
    """Mail the summary to `recipient` unless this very summary went to them already.

    The mail channel is the invoices' (`Q2C_MAIL_CHANNEL`); with the embedded `.eml`
    channel the message lands in `$Q2C_HOME/reconciliation/<day>/`, apart from the
    customers' invoices. Returns the receipt, or None when it had been sent before.

    Raises:
        ReconciliationError: The message could not be handed over; the text says why.
    """
    try:
        message = summary_email(summary, settings.mail_from, recipient)
    except DeliveryError as exc:
        raise ReconciliationError(
            f"the reconciliation summary of {summary.reconciled_on} cannot be addressed: "
            f"{exc}. Fix Q2C_FINANCE_EMAIL"
        ) from exc
    key = str(message[IDEMPOTENCY_HEADER])
    with opsdb.connect(settings.ops_store) as store:
        opsdb.ensure_schema(store, _SENT_DDL)
        if _already_sent(store, key):
            logger.info("reconciliation summary of %s already sent to finance (key %s)",
                        summary.reconciled_on, key[:12])
            return None
        receipt = _hand_over(summary, settings, message, key, transport)
        with opsdb.transaction(store):
            store.execute(
                "insert or ignore into reconciliation_summaries_sent values (?, ?, ?, ?, ?, ?)",
                [key, str(summary.reconciled_on), str(message["To"]), len(summary.exceptions),
                 receipt.location, dt.datetime.now(dt.UTC).isoformat(timespec="seconds")],
            )
    logger.info("reconciliation summary of %s (%d exceptions) mailed to finance via %s",
                summary.reconciled_on, len(summary.exceptions), receipt.location)
    return receipt


def summary_mail_transport(settings: Settings):
    """The invoices' mail channel; its `.eml` variant writes to `$Q2C_HOME/reconciliation`."""
    from q2c.invoice_delivery import mail_transport

    if settings.mail_channel == "eml":
        return EmlFolderTransport(Path(settings.home) / "reconciliation")
    return mail_transport(settings)


def _hand_over(summary: ReconciliationSummary, settings: Settings, message: EmailMessage,
               key: str, transport) -> ChannelReceipt:
    name = f"reconciliation-{summary.reconciled_on}"
    envelope = Envelope(
        key=key, invoice_id=name, invoice_number=name, document_id=summary.fingerprint(),
        channel=EMAIL, recipient=str(message["To"]), payload=email_payload(message),
        filename=f"{name}.eml", content_type="message/rfc822",
    )
    try:
        transport = transport or summary_mail_transport(settings)
        return transport.send(envelope)
    except (DeliveryError, ValueError) as exc:
        raise ReconciliationError(
            f"the reconciliation summary of {summary.reconciled_on} could not be mailed to "
            f"finance: {exc}. Check Q2C_FINANCE_EMAIL and the mail settings "
            "(Q2C_MAIL_CHANNEL, Q2C_SMTP_*); the next run tries again"
        ) from exc


def _already_sent(store: sqlite3.Connection, key: str) -> bool:
    row = store.execute(
        "select 1 from reconciliation_summaries_sent where summary_key = ?", [key]
    ).fetchone()
    return row is not None


def _domain(sender: str) -> str:
    address = parseaddr(sender)[1]
    return address.rpartition("@")[2].lower() or "q2c.invalid"


def amount_text(amount: Decimal | None, currency: str | None) -> str:
    """An amount in its currency's minor units (19.99 EUR, 5000 JPY, 12.345 KWD)."""
    if amount is None:
        return ""
    if is_iso_currency(currency):
        return str(Money(amount, str(currency)).amount)
    return format(amount.normalize(), "f")


def _amounts_text(by_currency: dict[str, Decimal]) -> str:
    if not by_currency:
        return "-"
    return ", ".join(f"{amount_text(amount, currency)} {currency}"
                     for currency, amount in by_currency.items())


def _subject_of(item: ReconciliationException) -> str:
    """What the exception is about, in the order finance looks things up."""
    parts = [("invoice", item.invoice_number), ("payment", item.payment_id),
             ("charge", item.gateway_charge_id), ("payout", item.payout_id)]
    named = [f"{label} {value}" for label, value in parts if value]
    return ", ".join(named) or item.check_name
