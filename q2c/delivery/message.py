"""The invoice email: readable text and HTML bodies plus the invoice PDF.

Supporting documents (a contract, a statement of work, an account statement; see
`q2c.attachments`) follow the PDF as further attachments, each under its own file name.

Bodies arrive rendered (from governed templates elsewhere); this module only assembles the
MIME structure and the headers that make a send traceable. The Message-ID is derived from
the outbox attempt key, so a resend after a crash carries the same Message-ID and the
receiving side (and anyone reading the `.eml` folder) can tell it is the same message.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime

from q2c.delivery.addresses import is_valid_domain, validate_recipient

IDEMPOTENCY_HEADER = "X-Q2C-Idempotency-Key"
INVOICE_NUMBER_HEADER = "X-Q2C-Invoice-Number"

_KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{12,128}")
_UNSAFE_FILENAME = re.compile(r"[\x00-\x1f\x7f/\\]")
_MIME_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")


@dataclass(frozen=True)
class MailAttachment:
    """A supporting document attached beside the invoice PDF, byte for byte."""

    filename: str
    content: bytes
    mime_type: str = "application/octet-stream"


def build_invoice_email(
    *,
    invoice_number: str,
    recipient: str,
    sender: str,
    subject: str,
    html_body: str,
    text_body: str,
    pdf_bytes: bytes,
    pdf_filename: str,
    message_id_domain: str,
    idempotency_key: str,
    date: dt.datetime | None = None,
    attachments: Sequence[MailAttachment] = (),
) -> EmailMessage:
    """Assemble the invoice email as multipart/mixed(alternative(text, html), pdf, ...).

    Args:
        invoice_number: The ERP invoice number, shown in logs and the outbox file name.
        recipient: One bare address; checked with `validate_recipient`.
        sender: The From header, e.g. `Northwind Billing <billing@northwind.example>`.
        subject: The rendered subject line (one line).
        html_body: The rendered HTML body.
        text_body: The rendered plain-text body, for clients that do not show HTML.
        pdf_bytes: The rendered invoice PDF.
        pdf_filename: The attachment's file name, e.g. `INV-2026-000123.pdf`.
        message_id_domain: The right-hand side of the Message-ID, usually the sender's domain.
        idempotency_key: The outbox attempt key of the email channel
            (`attempt_key(document_key(invoice_id), EMAIL)` in `q2c.delivery.outbox`);
            it becomes the Message-ID and a header.
        date: The Date header (timezone-aware); now in UTC when omitted.
        attachments: Supporting documents, attached after the PDF in this order; every
            file name must be plain and differ from the others and from `pdf_filename`.

    Raises:
        InvalidRecipientError: The recipient is not a deliverable address.
        ValueError: Another argument cannot make a valid message; the text says which.
    """
    address = validate_recipient(recipient)
    _check_arguments(invoice_number, pdf_bytes, pdf_filename, idempotency_key, date)
    _check_attachments(invoice_number, pdf_filename, attachments)

    message = EmailMessage()
    message["From"] = sender
    message["To"] = address
    message["Subject"] = subject
    message["Date"] = format_datetime(date or dt.datetime.now(dt.UTC))
    message["Message-ID"] = message_id_for(idempotency_key, message_id_domain)
    message[IDEMPOTENCY_HEADER] = idempotency_key
    message[INVOICE_NUMBER_HEADER] = invoice_number
    # RFC 3834: tells vacation responders not to answer an automated invoice.
    message["Auto-Submitted"] = "auto-generated"

    message.set_content(text_body)
    message.add_alternative(html_body, subtype="html")
    message.add_attachment(
        pdf_bytes, maintype="application", subtype="pdf", filename=pdf_filename
    )
    for attachment in attachments:
        maintype, _, subtype = attachment.mime_type.partition("/")
        message.add_attachment(attachment.content, maintype=maintype, subtype=subtype,
                               filename=attachment.filename)
    return message


def _check_attachments(
    invoice_number: str, pdf_filename: str, attachments: Sequence[MailAttachment]
) -> None:
    seen = {pdf_filename.lower()}
    for attachment in attachments:
        name = attachment.filename
        if not name.strip() or _UNSAFE_FILENAME.search(name) or name.lower() in seen:
            raise ValueError(
                f"attachment name {name!r} of invoice {invoice_number} must be a plain file "
                "name that no other attachment of the email has"
            )
        if not _MIME_TYPE.fullmatch(attachment.mime_type):
            raise ValueError(f"attachment {name!r} of invoice {invoice_number} has MIME type "
                             f"{attachment.mime_type!r}; give one such as application/pdf")
        seen.add(name.lower())


def message_id_for(idempotency_key: str, domain: str) -> str:
    """Return the Message-ID for a delivery: the same key always gives the same id."""
    if not is_valid_domain(domain):
        raise ValueError(
            f"message_id_domain {domain!r} is not a host name: pass the sender's domain, "
            "e.g. northwind.example"
        )
    return f"<invoice.{idempotency_key}@{domain.lower()}>"


def _check_arguments(
    invoice_number: str,
    pdf_bytes: bytes,
    pdf_filename: str,
    idempotency_key: str,
    date: dt.datetime | None,
) -> None:
    if not invoice_number or not invoice_number.strip():
        raise ValueError("invoice_number is empty: every invoice email names its invoice")
    if not pdf_bytes.startswith(b"%PDF-"):
        raise ValueError(
            f"pdf_bytes for invoice {invoice_number} is not a PDF (no %PDF- header): "
            "pass the rendered document's bytes, not its path"
        )
    if not pdf_filename.lower().endswith(".pdf") or _UNSAFE_FILENAME.search(pdf_filename):
        raise ValueError(
            f"pdf_filename {pdf_filename!r} for invoice {invoice_number} must be a plain "
            "file name ending in .pdf"
        )
    if not _KEY_PATTERN.fullmatch(idempotency_key):
        raise ValueError(
            f"idempotency_key for invoice {invoice_number} must be 12 to 128 letters, digits, "
            "'-' or '_': use q2c.delivery.outbox.attempt_key()"
        )
    if date is not None and date.utcoffset() is None:
        raise ValueError(f"date for invoice {invoice_number} must carry a timezone")
