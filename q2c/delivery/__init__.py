"""Invoice delivery: message assembly, recipient checks, the error classes every channel
raises, and the email transports the outbox sends through (`q2c.delivery.outbox`)."""

from q2c.delivery.addresses import mask_address, validate_recipient
from q2c.delivery.envelope import ChannelReceipt, Envelope
from q2c.delivery.errors import (
    DeliveryError,
    InvalidRecipientError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from q2c.delivery.mail_transport import EmlFolderTransport, SmtpTransport, email_payload
from q2c.delivery.message import build_invoice_email

__all__ = [
    "ChannelReceipt",
    "DeliveryError",
    "EmlFolderTransport",
    "Envelope",
    "InvalidRecipientError",
    "PermanentDeliveryError",
    "SmtpTransport",
    "TransientDeliveryError",
    "build_invoice_email",
    "email_payload",
    "mask_address",
    "validate_recipient",
]
