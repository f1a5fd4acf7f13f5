"""Which rendered invoices are due for email, and their messages.

This sits above `q2c.documents` (the PDF and the governed email bodies) and
`q2c.delivery` (channels and the ledger) and joins them: an invoice is emailed when it has a
rendered document, no quality hold, a customer who takes invoices by email (QuickBooks
`preferred_delivery_method` Email, or none recorded) and the ERP has not emailed it itself
(`email_status` other than EmailSent). The ledger then makes sure it is sent once.
"""

from __future__ import annotations

import logging
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
with latest_documents as (
    select invoice_id, document_id, path
    from {OPS_SCHEMA}.document_manifest
    qualify row_number() over (partition by invoice_id order by rendered_at desc) = 1
)
select
    invoices.invoice_id,
    invoices.invoice_number,
    latest_documents.document_id,
    latest_documents.path,
    coalesce(invoices.erp_email_status, '') as erp_email_status,
    coalesce(accounts.delivery_preference, '') as delivery_preference
from core.fct_invoices as invoices
inner join latest_documents on latest_documents.invoice_id = invoices.invoice_id
left join core.dim_accounts as accounts on accounts.account_key = invoices.account_key
order by invoices.invoice_number
"""


@dataclass(frozen=True)
class EmailCandidate:
    invoice_id: str
    invoice_number: str
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
        invoice_id, number, document_id, path, erp_status, preference = row
        if invoice_id in held:
            selection.skip("held back by a quality rule", number)
        elif erp_status.lower() == "emailsent":
            selection.skip("already emailed by the ERP (EmailSent)", number)
        elif preference.lower() == "none":
            selection.skip("customer chose to receive no invoices (ERP delivery method None)",
                           number)
        elif preference and preference.lower() != "email":
            selection.skip(f"customer prefers delivery by {preference}", number)
        else:
            selection.due.append(EmailCandidate(invoice_id, number, document_id, path))
    return selection


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
        pdf_filename=f"{doc.invoice_number}.pdf",
        message_id_domain=parseaddr(sender)[1].rpartition("@")[2] or "q2c.invalid",
        idempotency_key=key,
    )


def delivery_requests(
    candidates: list[EmailCandidate],
    documents: dict[str, InvoiceDocument],
    content: ContentRegistry,
    sender: str,
) -> list[DeliveryRequest]:
    """One ledger request per invoice; the message is built only if it will be sent."""
    requests = []
    for candidate in candidates:
        doc = documents[candidate.invoice_id]
        recipient = doc.buyer.email or ""
        requests.append(DeliveryRequest(
            invoice_id=candidate.invoice_id,
            invoice_number=candidate.invoice_number,
            document_id=candidate.document_id,
            recipient=recipient,
            message=partial(
                _compose, doc=doc, pdf_path=Path(candidate.pdf_path), content=content,
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
