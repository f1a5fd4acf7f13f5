"""Why a delivery did not happen, split by what the outbox should do next.

The ledger keys its retry policy on the class: an invalid recipient is rejected and waits
for corrected master data, a transient error is retried (in the same run with backoff, and
again in the next run), a permanent error waits for someone to fix configuration or the
recipient. Messages say what to check and never carry a full email address.
"""

from __future__ import annotations


class DeliveryError(Exception):
    """Base class for every error a mail channel raises on purpose."""


class InvalidRecipientError(DeliveryError, ValueError):
    """The recipient is not a deliverable email address; sending would only bounce."""


class TransientDeliveryError(DeliveryError):
    """The send may work later unchanged: server down, timeout, a 4xx reply."""


class PermanentDeliveryError(DeliveryError):
    """The send will fail again until something changes: a 5xx reply, bad credentials."""
