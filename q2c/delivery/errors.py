"""Why a delivery did not happen, split by what the outbox should do next.

The outbox (`q2c.delivery.outbox`) keys its handling on the class: a transient error is
retried with backoff (in the same run, and again in a later run); a permanent error or an
invalid recipient fails over to the next channel of the invoice's plan at once, and with
no channel left the invoice is a dead letter until someone fixes the configuration or the
recipient and requeues it. A `ChannelUnavailableError` (transient) says the channel itself
is out of order, so it never costs an invoice its channel. Messages say what to check and
never carry a full email address.
"""

from __future__ import annotations


class DeliveryError(Exception):
    """Base class for every error a delivery channel raises on purpose."""


class InvalidRecipientError(DeliveryError, ValueError):
    """The recipient is not a deliverable email address; sending would only bounce."""


class TransientDeliveryError(DeliveryError):
    """The send may work later unchanged: server down, timeout, a 4xx reply."""


class PermanentDeliveryError(DeliveryError):
    """The send will fail again until something changes: a 5xx reply, bad credentials."""


class ChannelUnavailableError(TransientDeliveryError):
    """The channel cannot take any document now, whatever the document: the server is
    down, refuses our login or our sender address, or TLS fails.

    The fault is on our side (configuration, credentials, the server), not the invoice's,
    so the outbox retries the row in a later run and never fails it over or dead-letters
    it for this; after a few rows the run stops trying the channel. The message names the
    setting to check.
    """


class DeliveryConfigurationError(PermanentDeliveryError):
    """The channel is configured in a way q2c refuses to use (a login sent in clear text).

    Raised when the transport is built, so a run stops before it sends anything.
    """
