"""Invoice email delivery: message assembly, mail channels and the delivery ledger."""

from q2c.delivery.addresses import mask_address, validate_recipient
from q2c.delivery.channels import EmlFolderChannel, MailChannel, SendResult, SmtpChannel
from q2c.delivery.errors import (
    DeliveryError,
    InvalidRecipientError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from q2c.delivery.ledger import (
    DeliveryOutcome,
    DeliveryReport,
    DeliveryRequest,
    deliver,
    idempotency_key,
    requeue_permanent_failures,
)
from q2c.delivery.message import build_invoice_email

__all__ = [
    "DeliveryError",
    "DeliveryOutcome",
    "DeliveryReport",
    "DeliveryRequest",
    "EmlFolderChannel",
    "InvalidRecipientError",
    "MailChannel",
    "PermanentDeliveryError",
    "SendResult",
    "SmtpChannel",
    "TransientDeliveryError",
    "build_invoice_email",
    "deliver",
    "idempotency_key",
    "mask_address",
    "requeue_permanent_failures",
    "validate_recipient",
]
