"""Which rendered invoices are due for email, and their messages.

This sits above `q2c.documents` (the PDF and the governed email bodies) and
`q2c.delivery` (channels and the ledger) and joins them: an invoice is emailed when it has a
rendered document, no quality hold, a customer who takes invoices by email (QuickBooks
`preferred_delivery_method` Email, or none recorded) and the ERP has not emailed it itself
(`email_status` other than EmailSent). The ledger then makes sure it is sent once.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from email.utils import parseaddr
from functools import partial
from pathlib import Path

import duckdb

from q2c.content.registry import ContentRegistry
from q2c.delivery import (
    DeliveryRequest,
    EmlFolderChannel,
    MailChannel,
    SmtpChannel,
    build_invoice_email,
)
from q2c.documents.email import render_invoice_email
from q2c.documents.model import InvoiceDocument
from q2c.settings import Settings
from q2c.warehouse import OPS_SCHEMA

log = logging.getLogger(__name__)

_DUE_SQL = f"""
select
    invoices.invoice_id,
    invoices.invoice_number,
    coalesce(invoices.erp_email_status, '') as erp_email_status,
    coalesce(accounts.delivery_preference, '') as delivery_preference
from core.fct_invoices as invoices
left join core.dim_accounts as accounts on accounts.account_key = invoices.account_key
where exists (
    select 1 from {OPS_SCHEMA}.document_manifest as documents
    where documents.invoice_id = invoices.invoice_id
)
order by invoices.invoice_number
"""

_DOCUMENTS_SQL = f"""
select input_hash, document_id, path
from {OPS_SCHEMA}.document_manifest
where input_hash is not null
qualify row_number() over (partition by input_hash order by rendered_at desc) = 1
"""
_UNSAFE_FILE_CHARS = re.compile(r"[^\w.\-]+")


@dataclass(frozen=True)
class EmailCandidate:
    invoice_id: str
    invoice_number: str


@dataclass(frozen=True)
class StoredDocument:
    document_id: str
    pdf_path: str


@dataclass
class EmailSelection:
    """The invoices to email, and why the others are not emailed, in counts and ids."""

    due: list[EmailCandidate] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)

    def skip(self, reason: str, invoice_number: str) -> None:
        self.skipped.setdefault(reason, []).append(invoice_number)


def select_invoices_to_email(
    conn: duckdb.DuckDBPyConnection, held: dict[str, list[str]]
) -> EmailSelection:
    """Rendered invoices due for email; the others grouped by the reason they are not."""
    selection = EmailSelection()
    for row in conn.execute(_DUE_SQL).fetchall():
        invoice_id, number, erp_status, preference = row
        if invoice_id in held:
            selection.skip("held back by a quality rule", number)
        elif erp_status.strip().lower() == "emailsent":
            selection.skip("already emailed by the ERP (EmailSent)", number)
        elif preference.strip().lower() == "none":
            selection.skip("customer chose to receive no invoices (ERP delivery method None)",
                           number)
        elif preference and preference.lower() != "email":
            selection.skip(f"customer prefers delivery by {preference}", number)
        else:
            selection.due.append(EmailCandidate(invoice_id, number))
    return selection


def stored_documents(conn: duckdb.DuckDBPyConnection) -> dict[str, StoredDocument]:
    """Rendered documents by the hash of their inputs, for those whose PDF is still stored."""
    return {
        input_hash: StoredDocument(document_id, path)
        for input_hash, document_id, path in conn.execute(_DOCUMENTS_SQL).fetchall()
        if Path(path).is_file()
    }


def attachment_name(invoice_number: str) -> str:
    """`2026/0001` -> `2026_0001.pdf`: a file name every mail client accepts."""
    return (_UNSAFE_FILE_CHARS.sub("_", invoice_number).strip("._") or "invoice") + ".pdf"


def _compose(
    key: str, *, doc: InvoiceDocument, pdf_path: Path, content: ContentRegistry,
    sender: str, recipient: str,
):
    email = render_invoice_email(doc, content)
    return build_invoice_email(
        invoice_number=doc.invoice_number,
        recipient=recipient,
        sender=sender,
        subject=email.subject,
        html_body=email.html,
        text_body=email.text,
        pdf_bytes=pdf_path.read_bytes(),
        pdf_filename=attachment_name(doc.invoice_number),
        message_id_domain=parseaddr(sender)[1].rpartition("@")[2] or "q2c.invalid",
        idempotency_key=key,
    )


def delivery_requests(
    documents: list[tuple[InvoiceDocument, StoredDocument]],
    content: ContentRegistry,
    sender: str,
) -> list[DeliveryRequest]:
    """One ledger request per invoice; the message is built only if it will be sent.

    Each invoice travels with the PDF rendered from its current inputs, so the email body
    and the attachment always show the same amounts.
    """
    requests = []
    for doc, stored in documents:
        recipient = doc.buyer.email or ""
        requests.append(DeliveryRequest(
            invoice_id=doc.invoice_id,
            invoice_number=doc.invoice_number,
            document_id=stored.document_id,
            recipient=recipient,
            message=partial(
                _compose, doc=doc, pdf_path=Path(stored.pdf_path), content=content,
                sender=sender, recipient=recipient,
            ),
        ))
    return requests


def mail_channel(settings: Settings) -> MailChannel:
    """The configured mail channel: `.eml` files in the outbox folder, or an SMTP relay."""
    if settings.mail_channel == "eml":
        return EmlFolderChannel(settings.outbox_dir)
    if settings.mail_channel == "smtp":
        return SmtpChannel(
            settings.smtp_host, settings.smtp_port, username=settings.smtp_user,
            password=settings.smtp_password, starttls=settings.smtp_starttls,
        )
    raise ValueError(
        f"mail channel `{settings.mail_channel}` is unknown; set Q2C_MAIL_CHANNEL to eml or smtp"
    )
