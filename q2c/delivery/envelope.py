"""What the outbox hands to a channel, and what a channel hands back.

Every channel (email over SMTP or SES, the portal, the e-invoice drop) implements
`Channel.send(envelope)`. The envelope carries the exact bytes to deliver, fixed when the
item was queued, so a retry or a resumed run sends what was approved and rendered, never a
version rebuilt later. A channel either returns a `ChannelReceipt` or raises one of the
errors in `q2c.delivery.errors`: `TransientDeliveryError` is retried with backoff,
`PermanentDeliveryError` and `InvalidRecipientError` fail over to the next channel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

EMAIL = "email"
PORTAL = "portal"
EDI = "edi"
CHANNELS = (EDI, EMAIL, PORTAL)


@dataclass(frozen=True)
class Envelope:
    """One document for one channel.

    Attributes:
        key: The idempotency key of this (document, channel) pair. Channels use it as the
            Message-ID, object key or file name, so a resend after a crash is recognisable
            (or overwrites the same object) at the receiving end.
        invoice_id: The ERP invoice id.
        invoice_number: The printed invoice number, for logs and file names.
        document_id: The rendered document in the document manifest.
        channel: One of CHANNELS.
        recipient: An email address (email), a Peppol participant id such as
            `0088:5790000435951` (edi), or the billing email the portal notice goes to.
        payload: The exact bytes: an RFC 5322 message for email, the UBL XML or the
            Factur-X PDF for edi, the invoice PDF for the portal.
        filename: The name the payload is stored under (`INV-1001.xml`).
        content_type: MIME type of the payload.
        notice: For the portal, the RFC 5322 notification message carrying the link.
        sender_id: For edi, the seller's Peppol participant id.
    """

    key: str
    invoice_id: str
    invoice_number: str
    document_id: str
    channel: str
    recipient: str
    payload: bytes
    filename: str
    content_type: str
    notice: bytes | None = None
    sender_id: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ChannelReceipt:
    """Proof of hand-over: where it went (path, s3:// URL, smtp:// URL, portal link) and the
    provider's id for it (Message-ID, SES MessageId, object ETag)."""

    location: str
    reference: str


class Channel(Protocol):
    """A delivery channel. `name` is one of CHANNELS plus the transport, e.g. `email:smtp`."""

    name: str

    def send(self, envelope: Envelope) -> ChannelReceipt: ...
