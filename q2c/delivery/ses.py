"""Email over Amazon SES (API v2), sending the exact RFC 5322 bytes of the envelope.

The raw form keeps the message as it was approved and queued: the PDF attachment, the
`X-Q2C-Idempotency-Key` header and the bodies go out unchanged, after the same check the
SMTP and `.eml` transports make (`q2c.delivery.mail_transport.check_email_envelope`: the
Message-ID and key header belong to the envelope's key, the To address is the recipient).
SES replaces the Message-ID and Date headers with its own, so the key also travels as an
SES message tag, and the SES MessageId is returned as the receipt reference: a bounce
notification from SES can be matched by the header, by the tag or by that id (see
`q2c.delivery.bounces`).

boto3 retries nothing here; the outbox owns retries and backoff, so a throttled or failed
call is reported at once as a `TransientDeliveryError`.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
)

from q2c.delivery.addresses import mask_address, scrub_address
from q2c.delivery.envelope import ChannelReceipt, Envelope
from q2c.delivery.errors import (
    ChannelUnavailableError,
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from q2c.delivery.mail_transport import check_email_envelope

logger = logging.getLogger(__name__)

# SES tag values allow letters, digits, '_' and '-' only; q2c keys are built from those.
KEY_TAG = "q2c-idempotency-key"
_TAG_VALUE = re.compile(r"[A-Za-z0-9_-]{1,256}")

_THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded",
    "SlowDown", "LimitExceededException", "ServiceUnavailable", "InternalFailure",
    "InternalError", "RequestTimeout", "RequestTimeoutException",
})
_CREDENTIAL_CODES = frozenset({
    "AccessDenied", "AccessDeniedException", "UnrecognizedClientException",
    "InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken", "ExpiredTokenException",
    "InvalidAccessKeyId",
})
_SES_ADVICE = {
    "MessageRejected": (
        "SES rejected the message: verify the sender identity (the From address or its "
        "domain) in SES for this region, and while the account is in the SES sandbox "
        "verify the recipient too"
    ),
    "MailFromDomainNotVerifiedException": (
        "SES cannot use the custom MAIL FROM domain of the sender identity: publish its MX "
        "and SPF records and wait until SES shows it verified"
    ),
    "AccountSuspendedException": (
        "SES has suspended sending for this AWS account: see the reputation dashboard in "
        "the SES console"
    ),
    "SendingPausedException": (
        "sending is paused for this account or configuration set: resume it in the SES "
        "console once the reputation issue is resolved"
    ),
    "AccountSendingPausedException": (
        "sending is paused for this AWS account: resume it in the SES console"
    ),
    "ConfigurationSetSendingPausedException": (
        "sending is paused for the configuration set: resume it in the SES console"
    ),
    "NotFoundException": (
        "a resource named in the request does not exist: check the configuration set name"
    ),
    "ConfigurationSetDoesNotExist": (
        "the configuration set does not exist: create it or fix the configured name"
    ),
}


# Refusals that hold for every message of the account or configuration set.
_CHANNEL_WIDE_CODES = frozenset({
    "MailFromDomainNotVerifiedException", "AccountSuspendedException",
    "SendingPausedException", "AccountSendingPausedException",
    "ConfigurationSetSendingPausedException", "ConfigurationSetDoesNotExist",
    "NotFoundException", "NoSuchBucket",
})


def aws_transport_error(exc: Exception, what: str, advice: str) -> DeliveryError:
    """Turn a boto3 failure into a Transient, ChannelUnavailable or Permanent error.

    Throttling, timeouts, unreachable endpoints and 5xx replies may work later unchanged.
    Bad credentials and account-wide refusals (sending paused, sender domain not verified)
    are faults of the channel, not of the invoice: ChannelUnavailableError keeps the
    invoices queued for a later run instead of failing every one of them over. Other 4xx
    replies are permanent for that message. `what` names the call ("SES send to
    ***@example.com"), `advice` says what to check.
    """
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        text = str(error.get("Message", "")).strip()
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        detail = f"{code}: {text}" if text else code
        if code in _THROTTLING_CODES or status >= 500:
            return TransientDeliveryError(f"{what} failed for now ({detail}); retried later")
        if code in _CREDENTIAL_CODES:
            return ChannelUnavailableError(
                f"{what} was refused ({detail}): check the AWS credentials and the IAM "
                "permissions of this process"
            )
        if code in _CHANNEL_WIDE_CODES:
            return ChannelUnavailableError(
                f"{what} was refused ({detail}): {_SES_ADVICE.get(code, advice)}"
            )
        return PermanentDeliveryError(f"{what} was refused ({detail}): {advice}")
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return ChannelUnavailableError(
            f"{what} has no usable AWS credentials ({exc}): set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, a profile, or an instance role"
        )
    if isinstance(exc, ParamValidationError):
        return PermanentDeliveryError(f"{what} was not a valid request ({exc}): {advice}")
    if isinstance(exc, BotoCoreError):
        return TransientDeliveryError(
            f"{what} could not reach AWS ({exc}); retried later: check the network and the "
            "endpoint URL if one is configured"
        )
    return TransientDeliveryError(f"{what} failed ({exc}); retried later")


def _refuses_the_sender(exc: Exception, sender: str) -> bool:
    """MessageRejected about our From address (not verified, no authority to send from it).

    In the SES sandbox MessageRejected also names an unverified recipient; that one stays a
    refusal of the single message.
    """
    if not isinstance(exc, ClientError):
        return False
    error = exc.response.get("Error", {})
    text = str(error.get("Message", "")).lower()
    return error.get("Code") == "MessageRejected" and (
        "authority to send from" in text or sender.lower() in text
    )


class SesTransport:
    """Send EMAIL envelopes with SES `SendEmail` and `Content.Raw`.

    Args:
        region: The SES region whose verified identities and quotas apply
            (Q2C_SES_REGION).
        endpoint_url: Another SES-compatible endpoint (Q2C_SES_ENDPOINT_URL), e.g. a VPC
            endpoint, or a local test server.
        configuration_set: SES configuration set for event publishing (bounces,
            deliveries) and suppression settings; none when omitted.
        client: A ready `sesv2` client; built from the default AWS credential chain when
            omitted.
    """

    name = "email:ses"

    def __init__(
        self,
        region: str,
        endpoint_url: str | None = None,
        configuration_set: str | None = None,
        client: Any | None = None,
    ) -> None:
        self.region = region
        self.endpoint_url = endpoint_url
        self.configuration_set = configuration_set
        self.client = client or boto3.client(
            "sesv2",
            region_name=region,
            endpoint_url=endpoint_url,
            config=Config(
                retries={"total_max_attempts": 1}, connect_timeout=10, read_timeout=30
            ),
        )

    @property
    def location(self) -> str:
        base = f"ses://{self.region}"
        return f"{base}/{self.configuration_set}" if self.configuration_set else base

    def send(self, envelope: Envelope) -> ChannelReceipt:
        """Hand the message to SES; return the SES MessageId as the receipt reference."""
        checked = check_email_envelope(envelope)
        recipient, sender = checked.recipient, checked.sender
        if not sender:
            raise PermanentDeliveryError(
                f"the email for invoice {envelope.invoice_number} has no From address: "
                "build it with q2c.delivery.message and set Q2C_MAIL_FROM"
            )
        request = self._request(envelope, sender, recipient)
        what = f"SES send of invoice {envelope.invoice_number} to {mask_address(recipient)}"
        try:
            reply = self.client.send_email(**request)
        except Exception as exc:  # boto3 raises many types; all are classified below
            error = aws_transport_error(exc, what, _advice_for(exc))
            if _refuses_the_sender(exc, sender):
                error = ChannelUnavailableError(
                    f"{error}; SES refuses the sender {sender}, so every invoice would fail "
                    "alike: they stay queued for the next run"
                )
            raise type(error)(scrub_address(str(error), recipient)) from exc
        message_id = str(reply["MessageId"])
        logger.info(
            "invoice %s handed to SES in %s for %s (SES MessageId %s)",
            envelope.invoice_number, self.region, mask_address(recipient), message_id,
        )
        return ChannelReceipt(location=self.location, reference=message_id)

    def _request(self, envelope: Envelope, sender: str, recipient: str) -> dict[str, Any]:
        request: dict[str, Any] = {
            "FromEmailAddress": sender,
            "Destination": {"ToAddresses": [recipient]},
            "Content": {"Raw": {"Data": envelope.payload}},
        }
        if _TAG_VALUE.fullmatch(envelope.key):
            request["EmailTags"] = [{"Name": KEY_TAG, "Value": envelope.key}]
        if self.configuration_set:
            request["ConfigurationSetName"] = self.configuration_set
        return request


def _advice_for(exc: Exception) -> str:
    code = ""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
    return _SES_ADVICE.get(
        code,
        "check the message, the sender identity and the SES settings (Q2C_SES_REGION, "
        "Q2C_SES_ENDPOINT_URL)",
    )
