"""Email transports for the outbox: an `.eml` folder and SMTP, both sending finished bytes.

The outbox hands over an `Envelope` whose payload is the complete RFC 5322 message, frozen
when the invoice was queued. These transports never rebuild it; they check it and send it
as it is, with `envelope.recipient` as the one RCPT TO. The check refuses a message whose
Message-ID is not derived from the envelope key (`q2c.delivery.message.message_id_for`):
that Message-ID is what lets a receiver recognise a resend after a crash, so a message
without it must not leave.

Build the payload with `email_payload(build_invoice_email(..., idempotency_key=key))`,
where `key = attempt_key(document_key(invoice_id), EMAIL)`.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import smtplib
import ssl
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses, parseaddr
from pathlib import Path

from q2c.delivery.addresses import mask_address, validate_recipient
from q2c.delivery.channels import (
    AUTH,
    CONNECT,
    MAIL_FROM,
    STARTTLS,
    channel_unavailable,
    classify_smtp_error,
    quit_quietly,
    reply_text,
    utc_date_of,
    write_eml_once,
)
from q2c.delivery.envelope import EMAIL, ChannelReceipt, Envelope
from q2c.delivery.errors import (
    ChannelUnavailableError,
    DeliveryConfigurationError,
    InvalidRecipientError,
    PermanentDeliveryError,
)
from q2c.delivery.message import IDEMPOTENCY_HEADER

logger = logging.getLogger(__name__)

_BARE_LF = re.compile(rb"(?<!\r)\n")
# RCPT refusals that say the mailbox itself is wrong: enhanced status 5.1.x (RFC 3463) when
# the server gives one, else reply code 550, 551 or 553 (RFC 5321). A 5.7.x policy refusal
# is about the sender or the message, not the address.
_MAILBOX_CODES = (550, 551, 553)
_ENHANCED_STATUS = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})\b")


def email_payload(message: EmailMessage) -> bytes:
    """The bytes an outbox email payload holds: the message as sent on the wire (CRLF)."""
    return message.as_bytes(policy=policy.SMTP)


@dataclass(frozen=True)
class CheckedEmail:
    """What a transport needs from a checked payload."""

    recipient: str
    message_id: str
    sender: str
    date_header: str | None


def check_email_envelope(envelope: Envelope) -> CheckedEmail:
    """Check an email envelope before it is sent; return its recipient and ids.

    Raises:
        InvalidRecipientError: The envelope recipient is not a deliverable address.
        PermanentDeliveryError: The payload is not the message for this envelope: another
            Message-ID or idempotency key, or another To address. Sending it would break
            resend detection or reach someone else.
    """
    if envelope.channel != EMAIL:
        raise PermanentDeliveryError(
            f"a {envelope.channel} envelope for invoice {envelope.invoice_number} reached an "
            "email transport: map the email channel only to email transports"
        )
    recipient = validate_recipient(envelope.recipient)
    headers = BytesParser(policy=policy.SMTP).parsebytes(envelope.payload, headersonly=True)
    number = envelope.invoice_number
    message_id = str(headers.get("Message-ID") or "").strip()
    if not message_id_matches(message_id, envelope.key):
        raise PermanentDeliveryError(
            f"the email for invoice {number} carries Message-ID {message_id or '(none)'!r}, "
            f"not one derived from its outbox key {envelope.key[:12]}...: build it with "
            "build_invoice_email(idempotency_key=<the attempt key>) before queueing"
        )
    key_header = headers.get(IDEMPOTENCY_HEADER)
    if key_header is not None and str(key_header).strip() != envelope.key:
        raise PermanentDeliveryError(
            f"the email for invoice {number} carries {IDEMPOTENCY_HEADER} of another "
            "delivery: queue the message built for this invoice's attempt key"
        )
    addressed = [address for _, address in getaddresses(headers.get_all("To", []))]
    if len(addressed) != 1 or addressed[0].strip().lower() != recipient.lower():
        raise PermanentDeliveryError(
            f"the email for invoice {number} is addressed to "
            f"{', '.join(mask_address(a) for a in addressed) or 'nobody'}, but queued for "
            f"{mask_address(recipient)}: build the message for the queued recipient"
        )
    sender = parseaddr(str(headers.get("From") or ""))[1]
    date = headers.get("Date")
    return CheckedEmail(recipient, message_id, sender, None if date is None else str(date))


def message_id_matches(message_id: str, key: str) -> bool:
    """True when the Message-ID's left part is the key or ends in `.<key>`."""
    if not (message_id.startswith("<") and message_id.endswith(">") and "@" in message_id):
        return False
    local = message_id[1:-1].rpartition("@")[0]
    return local == key or local.endswith("." + key)


class EmlFolderTransport:
    """Write each email as `<outbox>/<yyyy-mm-dd>/<invoice_number>-<key[:12]>.eml`.

    The embedded default: a folder a mail gateway (or a person) picks up from. The date
    folder is the message's Date in UTC. A file already there for the same invoice and key
    is kept, so a resend after a crash leaves one file.
    """

    name = "email:eml"

    def __init__(self, outbox_dir: Path | str) -> None:
        self.outbox_dir = Path(outbox_dir)

    def send(self, envelope: Envelope) -> ChannelReceipt:
        checked = check_email_envelope(envelope)
        location = write_eml_once(
            self.outbox_dir, envelope.invoice_number, envelope.key,
            utc_date_of(checked.date_header), envelope.payload,
        )
        return ChannelReceipt(location=str(location), reference=checked.message_id)


class SmtpTransport:
    """Send the queued bytes through an SMTP server, one connection per message.

    STARTTLS and AUTH happen only when configured, and a login without TLS only to a
    server on this machine. Where the session fails decides the error: at the connection,
    STARTTLS, AUTH or MAIL FROM the channel is out of order (`ChannelUnavailableError`,
    retried later; the invoice keeps its channel); at RCPT TO a refusal that names the
    mailbox (550, 551, 553, or status 5.1.x) is an invalid recipient, another 5xx at RCPT
    TO or DATA is permanent and a 4xx transient. After the server accepted the message,
    trouble while saying goodbye is ignored: the message is delivered.

    Args:
        mail_from: The envelope sender (where bounces go); the message's From address
            when omitted.

    Raises:
        DeliveryConfigurationError: A user is set, STARTTLS is off and the host is not a
            loopback address: the password would cross the network in clear text.
    """

    name = "email:smtp"

    def __init__(
        self,
        host: str,
        port: int = 25,
        user: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = 30.0,
        *,
        ssl_context: ssl.SSLContext | None = None,
        mail_from: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.starttls = starttls
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.mail_from = mail_from
        self._refuse_clear_text_login()

    @property
    def location(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def send(self, envelope: Envelope) -> ChannelReceipt:
        checked = check_email_envelope(envelope)
        sender = parseaddr(self.mail_from or "")[1] or checked.sender
        if not sender:
            raise PermanentDeliveryError(
                f"the email for invoice {envelope.invoice_number} has no sender address: "
                "set Q2C_MAIL_FROM"
            )
        self._refuse_clear_text_login()
        data = _BARE_LF.sub(b"\r\n", envelope.payload)
        smtp = self._open_session()
        try:
            self._transfer(smtp, sender, checked.recipient, data)
        finally:
            quit_quietly(smtp)
        logger.debug("invoice %s handed to %s", envelope.invoice_number, self.location)
        return ChannelReceipt(location=self.location, reference=checked.message_id)

    def _refuse_clear_text_login(self) -> None:
        if self.user and not self.starttls and not is_loopback_host(self.host):
            raise DeliveryConfigurationError(
                f"refusing to log in to SMTP server {self.host}:{self.port} as "
                f"{self.user!r} without TLS: the password would cross the network in clear "
                "text; set Q2C_SMTP_STARTTLS=true (or unset Q2C_SMTP_USER for a relay that "
                "needs no login)"
            )

    def _open_session(self) -> smtplib.SMTP:
        """Connect, STARTTLS and log in as configured; any failure is the channel's."""
        stage, smtp = CONNECT, None
        try:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            smtp.ehlo_or_helo_if_needed()
            if self.starttls:
                stage = STARTTLS
                smtp.starttls(context=self.ssl_context or ssl.create_default_context())
                smtp.ehlo()
            if self.user:
                stage = AUTH
                smtp.login(self.user, self.password or "")
        except (smtplib.SMTPException, OSError) as exc:
            if smtp is not None:
                quit_quietly(smtp)
            raise channel_unavailable(
                exc, stage=stage, host=self.host, port=self.port, username=self.user,
                timeout=self.timeout,
            ) from exc
        return smtp

    def _transfer(self, smtp: smtplib.SMTP, sender: str, recipient: str, data: bytes) -> None:
        """MAIL FROM, RCPT TO and DATA: a refused sender is the channel's fault, a refused
        recipient or message the invoice's."""
        try:
            smtp.sendmail(sender, [recipient], data, mail_options=_body_options(smtp, data))
        except smtplib.SMTPSenderRefused as exc:
            raise channel_unavailable(
                exc, stage=MAIL_FROM, host=self.host, port=self.port, username=self.user,
                timeout=self.timeout, sender=sender,
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise self._classify(exc, recipient) from exc

    def _classify(self, exc: Exception, recipient: str) -> Exception:
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            code, reply = next(iter(exc.recipients.values()), (550, b""))
            if _refuses_us(code, reply):
                return ChannelUnavailableError(
                    f"SMTP server {self.host}:{self.port} will not relay for q2c "
                    f"({reply_text(code, reply, recipient)}): allow this host to relay, or "
                    "set Q2C_SMTP_USER, Q2C_SMTP_PASSWORD and Q2C_SMTP_STARTTLS; the "
                    "invoices stay queued for the next run"
                )
            if _names_the_mailbox(code, reply):
                return InvalidRecipientError(
                    f"SMTP server {self.host}:{self.port} refused recipient "
                    f"{mask_address(recipient)} ({reply_text(code, reply, recipient)}): "
                    "correct the billing email on the customer record"
                )
        return classify_smtp_error(
            exc, host=self.host, port=self.port, recipient=recipient, timeout=self.timeout,
        )


def is_loopback_host(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1); no name lookup."""
    name = host.strip().strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def _body_options(smtp: smtplib.SMTP, data: bytes) -> list[str]:
    """Declare an 8-bit body (RFC 6152) when the message has one and the server takes it."""
    smtp.ehlo_or_helo_if_needed()
    if smtp.has_extn("8bitmime") and not data.isascii():
        return ["BODY=8BITMIME"]
    return []


def _refuses_us(code: int, reply: bytes | str) -> bool:
    """A RCPT refusal that holds for every recipient: relaying denied, login required."""
    text = (reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply))
    text = text.lower()
    return code == 530 or "relay" in text or "authentication required" in text


def _names_the_mailbox(code: int, reply: bytes | str) -> bool:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    status = _ENHANCED_STATUS.match(text.strip())
    if status is not None:
        return code >= 500 and status.group(1) == "5" and status.group(2) == "1"
    return code in _MAILBOX_CODES
