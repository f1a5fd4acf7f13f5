"""The emails a customer gets about a portal dispute: governed texts, written once, sent once.

Each step of a dispute (opened, under review, resolved) writes one reply into the
operational store in the transaction of the step (`q2c.portal.disputes`). The message is
built then, complete, in the customer's language from the approved texts
`portal_dispute_messages` (language chain `de-AT -> de -> en`), and records the texts
version it used. Its key derives from the dispute and the step, so the Message-ID of a
resend after a crash is the same one and the step can never write a second reply.

`deliver_replies` sends what is not sent yet through the configured mail transport (the
`.eml` folder, SMTP or SES) after the commit: a reply that cannot go now (the mail server is
down) waits for the next call, one refused for good (a bad address) is given up with the
reason. Staff text (a rejection reason, a note) and invoice numbers are escaped in the HTML
part like every value; the customer's own comment is never repeated in a reply.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import logging
import string
from collections.abc import Callable, Mapping
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Any

from q2c.content.formatting import money
from q2c.content.registry import ContentError, ContentRegistry
from q2c.delivery.addresses import mask_address, validate_recipient
from q2c.delivery.envelope import EMAIL, Channel, Envelope
from q2c.delivery.errors import (
    ChannelUnavailableError,
    InvalidRecipientError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from q2c.delivery.mail_transport import email_payload
from q2c.delivery.message import IDEMPOTENCY_HEADER, INVOICE_NUMBER_HEADER
from q2c.opsdb import connect, transaction
from q2c.portal.dispute_inputs import load_reasons
from q2c.portal.disputes import (
    CORRECTED,
    CREDITED,
    REJECTED,
    REPLIES_TABLE,
    STEP_OPENED,
    STEP_RESOLVED,
    STEP_UNDER_REVIEW,
    Dispute,
    DisputeBook,
    ReasonCatalog,
    ensure_store,
)
from q2c.settings import Settings

logger = logging.getLogger(__name__)

TEXTS_ID = "portal_dispute_messages"
DISPUTE_HEADER = "X-Q2C-Dispute"
DISPUTE_PATH = "/disputes/"
# Locale of each language the texts are shipped in, for amounts in the reply.
_LOCALES = {"de": "de_DE", "en": "en_GB"}


class DisputeReplies:
    """Writes the customer's reply for each step of a dispute.

    Args:
        content: The content registry; only approved texts in force are used.
        reasons: The reason codes, for the reason's label in the customer's language.
        seller_name: Who signs.
        sender: The From address (`Settings.mail_from`).
        portal_base_url: Where the portal is reached; the reply links the dispute's page.
        today: The day whose content is in force (default: today, UTC).
        clock: The Date header's time (default: now).
    """

    def __init__(self, content: ContentRegistry, reasons: ReasonCatalog, *,
                 seller_name: str, sender: str, portal_base_url: str,
                 today: Callable[[], dt.date] | None = None,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self.content = content
        self.reasons = reasons
        self.seller_name = seller_name
        self.sender = sender
        self.portal_base_url = portal_base_url.rstrip("/")
        self.domain = parseaddr(sender)[1].rpartition("@")[2].lower() or "q2c.invalid"
        self._today = today or (lambda: dt.datetime.now(dt.UTC).date())
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))

    def write(self, dispute: Dispute, step: str) -> Mapping[str, Any] | None:
        """The reply of `step` as the store keeps it; None without an address to reply to.

        Raises:
            ContentError: No approved version of the texts is in force.
        """
        try:
            recipient = validate_recipient(dispute.reply_to)
        except InvalidRecipientError:
            return None
        labels, entry = self.content.labels(dispute.language, TEXTS_ID, on=self._today())
        values = self._values(dispute)
        subject_key = {STEP_OPENED: "dispute_subject_opened",
                       STEP_UNDER_REVIEW: "dispute_subject_under_review",
                       STEP_RESOLVED: "dispute_subject_resolved"}[step]
        subject = fill(_label(labels, subject_key), values)
        paragraphs = self._paragraphs(dispute, step, labels, values)
        key = reply_key(dispute.dispute_id, step)
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = recipient
        message["Subject"] = subject
        message["Date"] = format_datetime(self._clock())
        message["Message-ID"] = f"<dispute.{key}@{self.domain}>"
        message[IDEMPOTENCY_HEADER] = key
        message[INVOICE_NUMBER_HEADER] = dispute.invoice_number
        message[DISPUTE_HEADER] = dispute.reference
        # RFC 3834: an automated message; vacation responders do not answer it.
        message["Auto-Submitted"] = "auto-generated"
        message.set_content("\n\n".join(paragraphs) + "\n")
        message.add_alternative(_html(paragraphs), subtype="html")
        return {"reply_key": key, "language": dispute.language, "texts": entry.ref,
                "recipient": recipient, "subject": subject,
                "payload": email_payload(message)}

    def _values(self, dispute: Dispute) -> dict[str, str]:
        language = (dispute.language or "en").split("-")[0].lower()
        locale = _LOCALES.get(language, _LOCALES["en"])
        credit = dispute.credit_amount
        return {
            "number": dispute.invoice_number, "reference": dispute.reference,
            "reason": (dispute.resolution_note or "") if dispute.resolution == REJECTED
            else self.reasons.get(dispute.reason_code).label(dispute.language),
            "amount": money(credit, locale) if credit is not None else "",
            "note": dispute.resolution_note or "", "seller": self.seller_name,
            "link": f"{self.portal_base_url}{DISPUTE_PATH}{dispute.dispute_id}",
        }

    def _paragraphs(self, dispute: Dispute, step: str, labels: Mapping[str, str],
                    values: Mapping[str, str]) -> list[str]:
        body_key = {STEP_OPENED: "dispute_body_opened",
                    STEP_UNDER_REVIEW: "dispute_body_under_review"}.get(step)
        if body_key is None:
            body_key = {CREDITED: "dispute_body_credited", CORRECTED: "dispute_body_corrected",
                        REJECTED: "dispute_body_rejected"}[dispute.resolution or ""]
        paragraphs = [_label(labels, "dispute_greeting"), fill(_label(labels, body_key), values)]
        if step == STEP_RESOLVED and dispute.resolution == REJECTED:
            paragraphs.append(_label(labels, "dispute_still_due"))
        elif step == STEP_RESOLVED and dispute.resolution_note:
            paragraphs.append(fill(_label(labels, "dispute_note"), values))
        paragraphs += [
            fill(_label(labels, "dispute_status_link"), values),
            _label(labels, "dispute_closing") + "\n"
            + fill(_label(labels, "dispute_signature"), values),
            "-- \n" + fill(_label(labels, "dispute_footer"), values),
        ]
        return paragraphs


def dispute_book(settings: Settings, content: ContentRegistry | None = None,
                 clock: Callable[[], dt.datetime] | None = None) -> DisputeBook:
    """The disputes of the operational store, each step replying through governed texts.

    Attachments are kept in `portal_attachments` under the ops home (beside the store).
    """
    from q2c.content.registry import load_registry

    content = content or load_registry(settings.content_dir)
    reasons = load_reasons(settings.content_dir)
    replies = DisputeReplies(content, reasons, seller_name=settings.seller.name,
                             sender=settings.mail_from,
                             portal_base_url=settings.portal_base_url,
                             today=lambda: settings.run_date, clock=clock)
    return DisputeBook(settings.ops_store, reasons, replies=replies, clock=clock)


def send_replies(settings: Settings) -> dict[str, int]:
    """Send the replies waiting in the store through the configured mail transport."""
    from q2c.invoice_delivery import mail_transport

    return deliver_replies(settings.ops_store, mail_transport(settings))


def reply_key(dispute_id: str, step: str) -> str:
    """The reply's idempotency key: one per dispute and step."""
    return hashlib.sha256(f"portal-dispute-reply\0{dispute_id}\0{step}".encode()
                          ).hexdigest()[:40]


def fill(label: str, values: Mapping[str, str]) -> str:
    """A label with its `{name}` placeholders filled in; plain text, nothing escaped.

    Only plain names are placeholders: `{amount.__class__}` or `{0}` in a label is refused,
    so a label can never reach into a value's attributes.

    Raises:
        ContentError: The label names a placeholder that is not given.
    """
    parts = []
    for literal, name, spec, conversion in string.Formatter().parse(label):
        parts.append(literal)
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion or name not in values:
            raise ContentError(f"label placeholder {{{name}}} is not one q2c fills in "
                               f"({', '.join(sorted(values))}); fix the texts")
        parts.append(str(values[name]))
    return "".join(parts)


def _label(labels: Mapping[str, str], key: str) -> str:
    if key not in labels:
        raise ContentError(f"the texts {TEXTS_ID} have no `{key}`: add it to the English file "
                           "of a new version")
    return labels[key]


def _html(paragraphs: list[str]) -> str:
    body = "\n".join("<p>" + html.escape(text).replace("\n", "<br>\n") + "</p>"
                     for text in paragraphs)
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head>\n<body>\n"
            f"{body}\n</body></html>\n")


def deliver_replies(store_path: Path, transport: Channel) -> dict[str, int]:
    """Send every reply not sent yet, oldest first; return sent, waiting and given-up counts.

    A transport that cannot take mail now stops the round: the rest wait for the next call.
    """
    ensure_store(store_path)
    with connect(store_path) as conn:
        rows = conn.execute(
            f"select r.*, d.invoice_id, d.invoice_number, d.dispute_number"
            f" from {REPLIES_TABLE} as r join portal_disputes as d using (dispute_id)"
            " where r.sent_at is null and r.given_up_at is null order by r.rowid"
            ).fetchall()
    counts = {"sent": 0, "waiting": 0, "given_up": 0}
    for number, row in enumerate(rows):
        envelope = Envelope(
            key=row["reply_key"], invoice_id=row["invoice_id"],
            invoice_number=row["invoice_number"],
            document_id=f"dispute-{row['dispute_number']}-{row['step']}", channel=EMAIL,
            recipient=row["recipient"], payload=bytes(row["payload"]),
            filename=f"dispute-{row['dispute_number']}-{row['step']}.eml",
            content_type="message/rfc822",
        )
        try:
            transport.send(envelope)
        except ChannelUnavailableError as exc:
            _failed(store_path, row["reply_key"], str(exc), give_up=False)
            counts["waiting"] += len(rows) - number
            logger.warning("dispute replies wait: the mail transport is unavailable (%s)", exc)
            break
        except TransientDeliveryError as exc:
            _failed(store_path, row["reply_key"], str(exc), give_up=False)
            counts["waiting"] += 1
            continue
        except (PermanentDeliveryError, InvalidRecipientError) as exc:
            _failed(store_path, row["reply_key"], str(exc), give_up=True)
            counts["given_up"] += 1
            logger.error("reply %s to dispute D-%s (invoice %s) to %s given up: %s",
                         row["step"], row["dispute_number"], row["invoice_number"],
                         mask_address(row["recipient"]), exc)
            continue
        _sent(store_path, row["reply_key"])
        counts["sent"] += 1
        logger.info("reply %s to dispute D-%s (invoice %s) sent to %s", row["step"],
                    row["dispute_number"], row["invoice_number"],
                    mask_address(row["recipient"]))
    return counts


def _sent(store_path: Path, key: str) -> None:
    with connect(store_path) as conn, transaction(conn):
        conn.execute(f"update {REPLIES_TABLE} set sent_at = ?, attempts = attempts + 1,"
                     " last_error = null where reply_key = ?", (_stamp(), key))


def _failed(store_path: Path, key: str, error: str, give_up: bool) -> None:
    with connect(store_path) as conn, transaction(conn):
        conn.execute(f"update {REPLIES_TABLE} set attempts = attempts + 1, last_error = ?,"
                     " given_up_at = ? where reply_key = ?",
                     (error[:500], _stamp() if give_up else None, key))


def _stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
