"""The dunning email as sent: text and HTML bodies, the statement PDF, traceable headers.

Like the invoice email (`q2c.delivery.message`), the Message-ID is derived from the outbox
attempt key, so the transports accept it and a resend after a crash carries the same id.
A reminder also says which stage it is (`X-Q2C-Dunning-Stage`), and a portal notice which
account it belongs to, as the portal channel requires.
"""

from __future__ import annotations

import datetime as dt
from email.message import EmailMessage
from email.utils import format_datetime

from q2c.delivery.addresses import validate_recipient
from q2c.delivery.message import IDEMPOTENCY_HEADER, INVOICE_NUMBER_HEADER, message_id_for

STAGE_HEADER = "X-Q2C-Dunning-Stage"


def reminder_message(
    *,
    invoice_number: str,
    stage: str,
    recipient: str,
    sender: str,
    subject: str,
    html_body: str,
    text_body: str,
    key: str,
    message_id_domain: str,
    attachment: tuple[str, bytes] | None = None,
    headers: dict[str, str] | None = None,
    date: dt.datetime | None = None,
) -> EmailMessage:
    """Assemble a dunning email: alternative(text, html), then the statement PDF if any.

    Args:
        invoice_number: The overdue invoice, in the `X-Q2C-Invoice-Number` header.
        stage: The dunning stage, in the `X-Q2C-Dunning-Stage` header.
        recipient: One bare address; checked with `validate_recipient`.
        sender: The From header.
        subject: The rendered subject line.
        html_body: The rendered HTML body.
        text_body: The rendered plain-text body.
        key: The outbox attempt key (or the portal notice key); it becomes the Message-ID.
        message_id_domain: The right-hand side of the Message-ID.
        attachment: (file name, PDF bytes) of the statement of open items.
        headers: Further headers, e.g. the portal's account header.
        date: The Date header; now when omitted.

    Raises:
        InvalidRecipientError: The recipient is not a deliverable address.
        ValueError: The attachment is not a PDF.
    """
    address = validate_recipient(recipient)
    message = EmailMessage()
    message["From"] = sender
    message["To"] = address
    message["Subject"] = subject
    message["Date"] = format_datetime(date or dt.datetime.now(dt.UTC))
    message["Message-ID"] = message_id_for(key, message_id_domain)
    message[IDEMPOTENCY_HEADER] = key
    message[INVOICE_NUMBER_HEADER] = invoice_number
    message[STAGE_HEADER] = stage
    for name, value in (headers or {}).items():
        message[name] = value
    # RFC 3834: an automated message; vacation responders do not answer it.
    message["Auto-Submitted"] = "auto-generated"

    message.set_content(text_body)
    message.add_alternative(html_body, subtype="html")
    if attachment is not None:
        name, pdf = attachment
        if not pdf.startswith(b"%PDF-"):
            raise ValueError(f"the statement attached to the reminder of invoice "
                             f"{invoice_number} is not a PDF; render it with "
                             "q2c.attachments.statement")
        message.add_attachment(pdf, maintype="application", subtype="pdf", filename=name)
    return message
