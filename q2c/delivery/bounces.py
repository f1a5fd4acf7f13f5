"""Read bounces back: delivery status notifications from a Maildir, SES notifications from SQS.

A mail server that accepted an invoice may still fail to deliver it later and say so by
mail (RFC 3464: multipart/report with a message/delivery-status part, sent to the
Return-Path, which is this Maildir); SES says so through SNS, usually into an SQS queue. A
bounce names the delivery attempt it belongs to by the key in the returned headers
(`X-Q2C-Idempotency-Key`, else the Message-ID q2c gave the message), so the outbox can fail
over to the next channel: `Outbox.record_bounce(bounce.attempt_key, bounce.diagnostic,
run_id)`. A bounced portal notice (key `<portal key>-notice`) is a bounce of the portal
delivery: the customer never learned where the invoice is.

Only a permanent failure is a bounce: a recipient with `Action: failed` (the MTA has given
up; normally Status 5.x.x, sometimes 4.x.x after the queue lifetime ran out), or an SES
bounce of type Permanent. Delay notices (`Action: delayed`, 4.x.x), successful delivery
reports and SES transient bounces are read and ignored. A notice that cannot be read, or
that names no q2c delivery, is reported with the reason and left where it is for a person.

Read once: a Maildir message that was read (a bounce or ignored) moves from new/ to cur/
with the Seen flag; an SQS message is deleted. Pass `on_bounce` to record each bounce
before its message is marked read: if recording fails, the message stays and is read again
by the next run, so recording must accept a bounce it has seen before.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser, HeaderParser, Parser
from pathlib import Path
from typing import Any

from q2c.delivery.addresses import mask_address, scrub_address
from q2c.delivery.errors import DeliveryError
from q2c.delivery.message import IDEMPOTENCY_HEADER
from q2c.delivery.portal import portal_key_of
from q2c.delivery.ses import KEY_TAG, aws_transport_error

logger = logging.getLogger(__name__)

FAILED = "failed"
_KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{12,128}")
_STATUS = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")
_STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")
_HEADER_TYPES = ("text/rfc822-headers", "message/global-headers")
_MESSAGE_TYPES = ("message/rfc822", "message/global")
_MAX_DIAGNOSTIC = 500


@dataclass(frozen=True)
class Bounce:
    """A permanent delivery failure of one attempt.

    Attributes:
        attempt_key: The outbox attempt (Envelope.key) the failed message belonged to.
        recipient: The address that failed, as the report names it.
        action: The DSN action, `failed`.
        status: The enhanced status code (`5.1.1`); empty when the report gives none.
        diagnostic: What the remote side said, with the recipient masked; for the audit
            trail and the failover reason.
        source: Where the notice was read: `maildir:<file name>` or `sqs:<message id>`.
    """

    attempt_key: str
    recipient: str
    action: str
    status: str
    diagnostic: str
    source: str


@dataclass(frozen=True)
class SkippedNotice:
    """A notice that produced no bounce, and why."""

    source: str
    reason: str


@dataclass(frozen=True)
class BounceBatch:
    """What one read found: bounces, notices read and ignored, and notices left unread."""

    bounces: tuple[Bounce, ...] = ()
    ignored: tuple[SkippedNotice, ...] = ()
    unreadable: tuple[SkippedNotice, ...] = ()

    def __add__(self, other: BounceBatch) -> BounceBatch:
        return BounceBatch(self.bounces + other.bounces, self.ignored + other.ignored,
                           self.unreadable + other.unreadable)


@dataclass(frozen=True)
class NoticeReading:
    """One notice, understood: its bounces, or why it holds none."""

    bounces: tuple[Bounce, ...] = ()
    ignored_because: str = ""


class UnreadableNotice(ValueError):
    """The notice cannot be read or matched to a delivery; the text says why."""


BounceRecorder = Callable[[Bounce], object]
MessageIdLookup = Callable[[str], str | None]


@dataclass
class _Collector:
    on_bounce: BounceRecorder | None
    bounces: list[Bounce] = field(default_factory=list)
    ignored: list[SkippedNotice] = field(default_factory=list)
    unreadable: list[SkippedNotice] = field(default_factory=list)

    def take(self, source: str, read: Callable[[], NoticeReading]) -> bool:
        """Read one notice and record its bounces; True when it may be marked read."""
        reading: NoticeReading | None = None
        try:
            reading = read()
        except UnreadableNotice as exc:
            reason = str(exc) or "unreadable"
        except Exception as exc:  # a malformed notice must not stop the others being read
            reason = f"could not be parsed ({type(exc).__name__}: {exc})"
        if reading is None:
            logger.warning("bounce notice %s left unread: %s", source, reason)
            self.unreadable.append(SkippedNotice(source, reason))
            return False
        for bounce in reading.bounces:
            if self.on_bounce is not None:
                self.on_bounce(bounce)
            logger.info("bounce of delivery %s for %s (%s) read from %s", bounce.attempt_key,
                        mask_address(bounce.recipient), bounce.status or bounce.action, source)
        self.bounces.extend(reading.bounces)
        if not reading.bounces:
            self.ignored.append(SkippedNotice(source, reading.ignored_because))
        return True

    def batch(self) -> BounceBatch:
        return BounceBatch(tuple(self.bounces), tuple(self.ignored), tuple(self.unreadable))


def read_bounces(
    *,
    maildir: Path | str | None = None,
    sqs_queue_url: str | None = None,
    sqs_client: Any | None = None,
    region: str | None = None,
    endpoint_url: str | None = None,
    on_bounce: BounceRecorder | None = None,
    key_for_message_id: MessageIdLookup | None = None,
) -> BounceBatch:
    """Read every new notice from the Maildir and/or the SQS queue that are given.

    Args:
        maildir: The bounce mailbox (Settings.bounce_maildir), with new/ and cur/.
        sqs_queue_url: The queue SES bounce notifications arrive in (through SNS).
        sqs_client: A ready `sqs` client; built from region/endpoint_url when omitted.
        on_bounce: Records one bounce; called before its notice is marked read.
        key_for_message_id: Finds the attempt key for an SES MessageId (the receipt
            reference SesTransport returned), for notifications without q2c headers.
    """
    batch = BounceBatch()
    if maildir is not None:
        batch += read_maildir(maildir, on_bounce=on_bounce)
    if sqs_queue_url is not None:
        if sqs_client is None:
            import boto3

            sqs_client = boto3.client("sqs", region_name=region, endpoint_url=endpoint_url)
        batch += read_sqs(sqs_queue_url, sqs_client, on_bounce=on_bounce,
                          key_for_message_id=key_for_message_id)
    return batch


def read_maildir(maildir: Path | str, *, on_bounce: BounceRecorder | None = None) -> BounceBatch:
    """Read the messages in `maildir/new`; move each one read to cur/ with the Seen flag."""
    root = Path(maildir)
    if not (root / "new").is_dir() or not (root / "cur").is_dir():
        raise FileNotFoundError(
            f"{root} is not a Maildir (it needs new/ and cur/ folders): check "
            "Q2C_BOUNCE_MAILDIR and the mail server's delivery of bounces"
        )
    collector = _Collector(on_bounce)
    for path in _new_messages(root):
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            continue  # another reader took it
        source = f"maildir:{path.name}"
        if collector.take(source, lambda raw=raw, source=source: parse_dsn(raw, source)):
            _mark_seen(root, path)
    return collector.batch()


def read_sqs(
    queue_url: str,
    client: Any,
    *,
    on_bounce: BounceRecorder | None = None,
    key_for_message_id: MessageIdLookup | None = None,
    max_messages: int = 1000,
    wait_seconds: int = 1,
    visibility_timeout: int = 300,
) -> BounceBatch:
    """Receive SES notifications until the queue is empty; delete each one read.

    An unreadable message is left in the queue; it becomes visible again after
    `visibility_timeout` seconds (a redrive policy on the queue moves it aside for good).
    """
    collector = _Collector(on_bounce)
    received = 0
    while received < max_messages:
        messages = _receive(client, queue_url, wait_seconds, visibility_timeout)
        if not messages:
            break
        received += len(messages)
        for message in messages:
            source = f"sqs:{message.get('MessageId', '?')}"
            body = message.get("Body", "")
            if collector.take(source, lambda body=body, source=source: parse_ses_notification(
                    body, source, key_for_message_id)):
                _delete(client, queue_url, message["ReceiptHandle"])
    return collector.batch()


def parse_dsn(raw: bytes, source: str = "") -> NoticeReading:
    """Read an RFC 3464 delivery status notification.

    Raises:
        UnreadableNotice: Not an email, not a delivery status notification, or a failure
            whose returned headers name no q2c delivery.
    """
    message = BytesParser(policy=policy.default).parsebytes(raw)
    if not message.keys():
        raise UnreadableNotice(
            "not an email message (no header fields): look at the file and delete it"
        )
    report_type = str(message.get_param("report-type", "")).lower()
    if message.get_content_type() != "multipart/report" or "delivery-status" not in report_type:
        raise UnreadableNotice(
            f"not a delivery status notification ({message.get_content_type()} from "
            f"{mask_address(_address(str(message.get('From', ''))))}): a mail server that "
            "does not send RFC 3464 reports; read it and record any bounce by hand"
        )
    parts = [part for part in message.iter_parts()]
    status_part = next((p for p in parts if p.get_content_type() in _STATUS_TYPES), None)
    if status_part is None:
        raise UnreadableNotice("a multipart/report without a message/delivery-status part")
    blocks = _status_blocks(status_part)
    reporting_mta = _after_semicolon(str(blocks[0].get("Reporting-MTA", ""))) if blocks else ""
    recipients = [block for block in blocks[1:] if block.get("Final-Recipient")
                  or block.get("Original-Recipient") or block.get("Action")]
    if not recipients:
        raise UnreadableNotice("the delivery status names no recipient")

    failed = [block for block in recipients if _is_failure(block)]
    if not failed:
        return NoticeReading(ignored_because="; ".join(
            _not_a_bounce(block) for block in recipients))
    key, label = _delivery_of(_attempt_key(_original_headers(parts)))
    bounces = []
    for block in failed:
        recipient = _address(str(block.get("Final-Recipient") or block.get("Original-Recipient")
                                 or ""))
        status = _status(block)
        if key is None:
            raise UnreadableNotice(
                f"a {status or 'permanent'} failure for {mask_address(recipient)}, but the "
                f"returned headers name no q2c delivery (no {IDEMPOTENCY_HEADER} or q2c "
                "Message-ID): record the bounce by hand, then delete the file"
            )
        diagnostic = " ".join(filter(None, [
            label, status, str(block.get("Diagnostic-Code", "")),
            f"(reported by {reporting_mta})" if reporting_mta else "",
        ]))
        bounces.append(Bounce(
            attempt_key=key, recipient=recipient, action=FAILED, status=status,
            diagnostic=_clean(diagnostic, recipient), source=source,
        ))
    return NoticeReading(bounces=tuple(bounces))


def parse_ses_notification(
    body: str, source: str = "", key_for_message_id: MessageIdLookup | None = None
) -> NoticeReading:
    """Read an SES notification: raw, or wrapped in the SNS envelope as SQS receives it.

    Both the identity notification format (`notificationType`) and the configuration-set
    event format (`eventType`) are read.

    Raises:
        UnreadableNotice: Not JSON, not an SES notification, or a permanent bounce that
            names no q2c delivery.
    """
    data = _json(body)
    if data.get("Type") == "Notification" and isinstance(data.get("Message"), str):
        data = _json(data["Message"])
    elif data.get("Type") in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
        return NoticeReading(ignored_because=f"SNS {data['Type']}, not a notification")
    kind = data.get("notificationType") or data.get("eventType")
    if not kind:
        raise UnreadableNotice("JSON without notificationType or eventType: not from SES")
    if kind != "Bounce":
        return NoticeReading(ignored_because=f"SES {kind} notification, not a bounce")
    bounce, mail = data.get("bounce"), data.get("mail")
    if not isinstance(bounce, dict) or not isinstance(mail, dict):
        raise UnreadableNotice("SES bounce notification without its bounce or mail object")
    bounce_type = str(bounce.get("bounceType", ""))
    sub_type = str(bounce.get("bounceSubType", ""))
    if bounce_type == "Transient":
        return NoticeReading(ignored_because=(
            f"SES transient bounce ({sub_type}): SES may still deliver it, not a bounce"))

    failed = [r for r in bounce.get("bouncedRecipients") or []
              if isinstance(r, dict) and (bounce_type == "Permanent"
                                          or str(r.get("action", "")).lower() == FAILED)]
    if not failed:
        return NoticeReading(ignored_because=(
            f"SES {bounce_type or 'unknown'} bounce ({sub_type}) without a failed recipient"))
    key, label = _delivery_of(_ses_attempt_key(mail, key_for_message_id))
    bounces = []
    for item in failed:
        recipient = str(item.get("emailAddress", ""))
        status = _STATUS.search(str(item.get("status", "")))
        if key is None:
            raise UnreadableNotice(
                f"an SES {bounce_type} bounce for {mask_address(recipient)} (SES MessageId "
                f"{mail.get('messageId')}) names no q2c delivery: enable original headers in "
                "the identity's bounce notifications, or record the bounce by hand"
            )
        diagnostic = " ".join(filter(None, [
            label, status.group(0) if status else "", f"SES {bounce_type}/{sub_type}",
            str(item.get("diagnosticCode", "")),
        ]))
        bounces.append(Bounce(
            attempt_key=key, recipient=recipient, action=FAILED,
            status=status.group(0) if status else "", diagnostic=_clean(diagnostic, recipient),
            source=source,
        ))
    return NoticeReading(bounces=tuple(bounces))


def attempt_key_from_headers(headers: Message) -> str | None:
    """The outbox attempt a sent message's headers name (a notice's: its portal delivery)."""
    return _delivery_of(_attempt_key(headers))[0]


def _delivery_of(key: str | None) -> tuple[str | None, str]:
    """The attempt a key belongs to: a portal notice's bounce is the portal delivery's."""
    portal_key = portal_key_of(key) if key else None
    return (portal_key, "portal notice:") if portal_key else (key, "")


def _attempt_key(headers: Message | None) -> str | None:
    if headers is None:
        return None
    value = str(headers.get(IDEMPOTENCY_HEADER, "") or "").strip()
    if _KEY_PATTERN.fullmatch(value):
        return value
    return _key_from_message_id(str(headers.get("Message-ID", "") or ""))


def _key_from_message_id(message_id: str) -> str | None:
    """`<invoice.KEY@domain>` (see `q2c.delivery.message.message_id_for`) gives KEY."""
    local = message_id.strip().strip("<>").rpartition("@")[0]
    if not local.startswith("invoice."):
        return None  # another program's message, whatever its id looks like
    key = local.removeprefix("invoice.")
    return key if _KEY_PATTERN.fullmatch(key) else None


def _ses_attempt_key(mail: dict, key_for_message_id: MessageIdLookup | None) -> str | None:
    headers = Message()
    for header in mail.get("headers") or []:
        if isinstance(header, dict) and header.get("name"):
            headers[str(header["name"])] = str(header.get("value", ""))
    from_headers = headers.get(IDEMPOTENCY_HEADER, "").strip()
    if _KEY_PATTERN.fullmatch(from_headers):
        return from_headers
    tags = (mail.get("tags") or {}).get(KEY_TAG) or []
    if tags and _KEY_PATTERN.fullmatch(str(tags[0])):
        return str(tags[0])
    if key_for_message_id is not None and mail.get("messageId"):
        found = key_for_message_id(str(mail["messageId"]))
        if found:
            return found
    # SES replaces the Message-ID it sends with; this matches only relayed copies.
    common = mail.get("commonHeaders") or {}
    return _key_from_message_id(str(common.get("messageId", "")))


def _status_blocks(part: EmailMessage) -> list[Message]:
    """The per-message block and the per-recipient blocks of a delivery-status part."""
    payload = part.get_payload()
    if part.get_content_type() == "message/delivery-status" and isinstance(payload, list):
        return list(payload)
    if isinstance(payload, list):
        payload = "".join(item.as_string() for item in payload)
    text = str(payload).replace("\r\n", "\n")
    chunks = [chunk for chunk in re.split(r"\n[ \t]*\n", text) if chunk.strip()]
    return [Parser(policy=policy.default).parsestr(chunk + "\n", headersonly=True)
            for chunk in chunks]


def _original_headers(parts: Iterable[EmailMessage]) -> Message | None:
    for part in parts:
        content_type = part.get_content_type()
        if content_type in _HEADER_TYPES:
            text = part.get_payload()
            if isinstance(text, list):
                return text[0] if text else None
            return HeaderParser(policy=policy.default).parsestr(
                part.get_content() if content_type.startswith("text/") else str(text))
        if content_type in _MESSAGE_TYPES:
            inner = part.get_payload()
            if isinstance(inner, list) and inner:
                return inner[0]
    return None


def _is_failure(block: Message) -> bool:
    action = str(block.get("Action", "")).strip().lower()
    return action == FAILED or (not action and _status(block).startswith("5."))


def _not_a_bounce(block: Message) -> str:
    action = str(block.get("Action", "")).strip().lower() or "no action"
    recipient = mask_address(_address(str(block.get("Final-Recipient", ""))))
    status = _status(block) or "no status"
    if action == "delayed":
        return f"delayed ({status}) for {recipient}: the mail server is still trying"
    return f"{action} ({status}) for {recipient}: not a failure"


def _status(block: Message) -> str:
    match = _STATUS.search(str(block.get("Status", "")))
    return match.group(0) if match else ""


def _address(value: str) -> str:
    """`rfc822; <ap@example.com>` or `Name <ap@example.com>` gives `ap@example.com`."""
    text = _after_semicolon(value)
    match = re.search(r"<([^<>]+)>", text)
    return (match.group(1) if match else text).strip()


def _after_semicolon(value: str) -> str:
    return value.split(";", 1)[1].strip() if ";" in value else value.strip()


def _clean(text: str, recipient: str) -> str:
    text = scrub_address(" ".join(text.split()), recipient)
    return text if len(text) <= _MAX_DIAGNOSTIC else text[: _MAX_DIAGNOSTIC - 3] + "..."


def _json(text: str) -> dict:
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise UnreadableNotice(f"not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise UnreadableNotice(f"JSON {type(data).__name__}, not an object: not from SES")
    return data


def _new_messages(root: Path) -> list[Path]:
    entries = [entry for entry in os.scandir(root / "new")
               if entry.is_file() and not entry.name.startswith(".")]
    return [Path(entry.path) for entry in sorted(entries, key=lambda entry: entry.name)]


def _mark_seen(root: Path, path: Path) -> None:
    """Move a message to cur/ with the Seen flag, as a mail client marks it read."""
    unique = path.name.split(":", 1)[0]
    try:
        os.rename(path, root / "cur" / f"{unique}:2,S")
    except FileNotFoundError:
        logger.info("bounce notice %s was moved by another reader", path.name)


def _receive(client: Any, queue_url: str, wait: int, visibility: int) -> list[dict]:
    try:
        reply = client.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait,
            VisibilityTimeout=visibility,
        )
    except Exception as exc:  # boto3 raises many types; classified here
        raise _queue_error(exc, queue_url) from exc
    return list(reply.get("Messages") or [])


def _delete(client: Any, queue_url: str, receipt_handle: str) -> None:
    try:
        client.delete_message(QueueUrl=queue_url, ReceiptHandle=receipt_handle)
    except Exception as exc:  # boto3 raises many types; classified here
        raise _queue_error(exc, queue_url) from exc


def _queue_error(exc: Exception, queue_url: str) -> DeliveryError:
    return aws_transport_error(
        exc, f"reading SES bounces from {queue_url}",
        "check the queue URL and that this process may receive and delete its messages",
    )
