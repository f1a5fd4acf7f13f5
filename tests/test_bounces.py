"""Reading bounces: RFC 3464 reports in a real Maildir, SES notifications on moto SQS/SNS."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import mailbox
from email import policy
from email.message import EmailMessage, Message
from email.mime.base import MIMEBase
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.parser import BytesParser
from email.utils import format_datetime
from pathlib import Path

import pytest
from aws_server import aws, aws_server  # noqa: F401 (pytest fixtures)

from q2c.delivery.bounces import (
    Bounce,
    parse_dsn,
    parse_ses_notification,
    read_bounces,
    read_sqs,
)
from q2c.delivery.envelope import EMAIL, Envelope
from q2c.delivery.message import build_invoice_email
from q2c.delivery.portal import portal_notice_message
from q2c.delivery.ses import KEY_TAG, SesTransport

RECIPIENT = "ap@customer.example"
DOMAIN = "northwind.example"
MINIMAL_PDF = b"%PDF-1.4\n%%EOF\n"


def key_of(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def invoice_email(key: str, recipient: str = RECIPIENT) -> EmailMessage:
    return build_invoice_email(
        invoice_number="INV-2026-000123", recipient=recipient,
        sender="Northwind Billing <billing@northwind.example>", subject="Invoice",
        html_body="<p>Invoice</p>", text_body="Invoice", pdf_bytes=MINIMAL_PDF,
        pdf_filename="INV-2026-000123.pdf", message_id_domain=DOMAIN, idempotency_key=key,
        date=dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.UTC),
    )


def dsn(original: EmailMessage, *, action: str, status: str, diagnostic: str,
        recipient: str = RECIPIENT, whole_message: bool = False) -> bytes:
    """A delivery status notification as Postfix writes one (RFC 3464, RFC 6522)."""
    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = "MAILER-DAEMON@mx.customer.example (Mail Delivery System)"
    report["To"] = "bounces@northwind.example"
    report["Subject"] = ("Undelivered Mail Returned to Sender" if action == "failed"
                         else "Delayed Mail (still being retried)")
    report["Date"] = format_datetime(dt.datetime(2026, 6, 1, 9, 5, tzinfo=dt.UTC))
    report["Auto-Submitted"] = "auto-replied"
    report.attach(MIMEText(
        "This is the mail system at host mx.customer.example.\n\n"
        f"I'm sorry to have to inform you that your message could not\nbe delivered to "
        f"one or more recipients.\n\n<{recipient}>: {diagnostic}\n"))
    per_message = Message()
    per_message["Reporting-MTA"] = "dns; mx.customer.example"
    per_message["X-Postfix-Queue-ID"] = "4FqXyZ1abcz9"
    per_message["Arrival-Date"] = "Mon,  1 Jun 2026 09:00:01 +0000 (UTC)"
    per_recipient = Message()
    per_recipient["Final-Recipient"] = f"rfc822; {recipient}"
    per_recipient["Original-Recipient"] = f"rfc822;{recipient}"
    per_recipient["Action"] = action
    per_recipient["Status"] = status
    per_recipient["Remote-MTA"] = "dns; mail.customer.example"
    per_recipient["Diagnostic-Code"] = f"smtp; {diagnostic}"
    status_part = MIMEBase("message", "delivery-status")
    status_part.set_payload([per_message, per_recipient])
    report.attach(status_part)
    if whole_message:
        report.attach(MIMEMessage(original))
    else:
        headers = "".join(f"{name}: {value}\n" for name, value in original.items())
        report.attach(MIMEText(headers, "rfc822-headers"))
    return report.as_bytes()


@pytest.fixture
def maildir(tmp_path: Path) -> tuple[Path, mailbox.Maildir]:
    path = tmp_path / "bounces"
    return path, mailbox.Maildir(path, create=True)


def names_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_maildir_bounce_delay_and_garbage(maildir):
    path, box = maildir
    bounced_key = key_of("bounced")
    bounce_id = box.add(dsn(
        invoice_email(bounced_key), action="failed", status="5.1.1",
        diagnostic=f"550 5.1.1 <{RECIPIENT}>: Recipient address rejected: User unknown"))
    delay_id = box.add(dsn(
        invoice_email(key_of("delayed")), action="delayed", status="4.2.2",
        diagnostic="452 4.2.2 Mailbox full"))
    garbage = path / "new" / "1780000000.M1P1.mx"
    garbage.write_bytes(bytes(range(256)) * 4)
    recorded: list[Bounce] = []

    batch = read_bounces(maildir=path, on_bounce=recorded.append)

    [bounce] = batch.bounces
    assert recorded == [bounce]
    assert bounce.attempt_key == bounced_key
    assert (bounce.recipient, bounce.action, bounce.status) == (RECIPIENT, "failed", "5.1.1")
    assert bounce.diagnostic == (
        "5.1.1 smtp; 550 5.1.1 <***@customer.example>: Recipient address rejected: "
        "User unknown (reported by mx.customer.example)")
    assert bounce.source == f"maildir:{bounce_id}"
    [ignored] = batch.ignored
    assert ignored.source == f"maildir:{delay_id}"
    assert ignored.reason == (
        "delayed (4.2.2) for ***@customer.example: the mail server is still trying")
    [unreadable] = batch.unreadable
    assert unreadable.source == f"maildir:{garbage.name}"
    assert "no header fields" in unreadable.reason

    assert names_in(path / "new") == [garbage.name]
    assert names_in(path / "cur") == sorted([f"{bounce_id}:2,S", f"{delay_id}:2,S"])
    again = read_bounces(maildir=path)
    assert (again.bounces, again.ignored) == ((), ())
    assert [u.source for u in again.unreadable] == [f"maildir:{garbage.name}"]


def test_key_comes_from_the_message_id_when_the_header_is_gone():
    key = key_of("by-message-id")
    original = invoice_email(key)
    del original["X-Q2C-Idempotency-Key"]
    raw = dsn(original, action="failed", status="5.7.1", whole_message=True,
              diagnostic="550 5.7.1 Message rejected due to content restrictions")
    [bounce] = parse_dsn(raw, "test").bounces
    assert bounce.attempt_key == key
    assert bounce.status == "5.7.1"


def test_a_failure_that_names_no_q2c_delivery_is_left_for_a_person(maildir):
    path, box = maildir
    original = EmailMessage()
    original["From"] = "someone@northwind.example"
    original["To"] = RECIPIENT
    original["Message-ID"] = "<CAFq2c0123456789abcdef@mail.northwind.example>"
    box.add(dsn(original, action="failed", status="5.1.1", diagnostic="550 5.1.1 unknown"))
    batch = read_bounces(maildir=path)
    [unreadable] = batch.unreadable
    assert "name no q2c delivery" in unreadable.reason
    assert "***@customer.example" in unreadable.reason and RECIPIENT not in unreadable.reason
    assert len(names_in(path / "new")) == 1 and names_in(path / "cur") == []


def test_a_plain_auto_reply_is_not_a_report(maildir):
    path, box = maildir
    reply = EmailMessage()
    reply["From"] = "ap@customer.example"
    reply["Subject"] = "Out of office"
    reply.set_content("Back on Monday.")
    box.add(bytes(reply))
    [unreadable] = read_bounces(maildir=path).unreadable
    assert "not a delivery status notification (text/plain" in unreadable.reason


def test_a_bounce_stays_unread_when_recording_it_fails(maildir):
    path, box = maildir
    box.add(dsn(invoice_email(key_of("record-fails")), action="failed", status="5.1.1",
                diagnostic="550 5.1.1 unknown"))

    def failing(bounce: Bounce) -> None:
        raise RuntimeError("ops store is locked")

    with pytest.raises(RuntimeError, match="locked"):
        read_bounces(maildir=path, on_bounce=failing)
    assert len(names_in(path / "new")) == 1
    [bounce] = read_bounces(maildir=path).bounces
    assert bounce.attempt_key == key_of("record-fails")


def test_missing_maildir_says_what_to_check(tmp_path):
    with pytest.raises(FileNotFoundError, match="Q2C_BOUNCE_MAILDIR"):
        read_bounces(maildir=tmp_path / "nowhere")


# --- SES through SNS and SQS -----------------------------------------------------------


def ses_bounce(*, key: str | None, ses_message_id: str, bounce_type: str = "Permanent",
               tags: bool = False) -> dict:
    """An SES bounce notification in the documented format, with original headers."""
    headers = [
        {"name": "From", "value": "Northwind Billing <billing@northwind.example>"},
        {"name": "To", "value": RECIPIENT},
        {"name": "Subject", "value": "Invoice INV-2026-000123"},
    ]
    if key and not tags:
        headers.append({"name": "X-Q2C-Idempotency-Key", "value": key})
    mail = {
        "timestamp": "2026-06-01T09:00:01.000Z",
        "source": "billing@northwind.example",
        "sourceArn": "arn:aws:ses:eu-central-1:123456789012:identity/northwind.example",
        "messageId": ses_message_id,
        "destination": [RECIPIENT],
        "headersTruncated": False,
        "headers": headers,
        "commonHeaders": {"from": ["billing@northwind.example"], "to": [RECIPIENT],
                          "messageId": f"<{ses_message_id}@eu-central-1.amazonses.com>"},
    }
    if tags and key:
        mail["tags"] = {KEY_TAG: [key], "ses:configuration-set": ["q2c"]}
    recipient = {"emailAddress": RECIPIENT, "action": "failed", "status": "5.1.1",
                 "diagnosticCode": f"smtp; 550 5.1.1 <{RECIPIENT}>: user unknown"}
    if bounce_type == "Transient":
        recipient = {"emailAddress": RECIPIENT}
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": bounce_type,
            "bounceSubType": "General",
            "bouncedRecipients": [recipient],
            "timestamp": "2026-06-01T09:00:03.000Z",
            "feedbackId": "0102017-feedback",
            "reportingMTA": "dsn; a1-2.smtp-out.eu-central-1.amazonses.com",
        },
        "mail": mail,
    }


def sns_to_sqs(aws):  # noqa: F811
    """A queue subscribed to a topic, as SES bounce notifications are usually wired."""
    sqs, sns = aws.client("sqs"), aws.client("sns")
    queue_url = sqs.create_queue(QueueName="q2c-ses-bounces")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    topic_arn = sns.create_topic(Name="q2c-ses-bounces")["TopicArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return sqs, sns, queue_url, topic_arn


def queue_depth(sqs, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def test_ses_bounce_through_sns_and_sqs(aws):  # noqa: F811
    sqs, sns, queue_url, topic_arn = sns_to_sqs(aws)
    key = key_of("ses-bounced")
    sns.publish(TopicArn=topic_arn,
                Message=json.dumps(ses_bounce(key=key, ses_message_id="0107-bounced")))
    sns.publish(TopicArn=topic_arn, Message=json.dumps(
        {"notificationType": "Delivery", "mail": {"messageId": "0107-delivered"},
         "delivery": {"recipients": ["ok@customer.example"]}}))
    sqs.send_message(QueueUrl=queue_url, MessageBody="this is not json")
    recorded: list[Bounce] = []

    batch = read_bounces(sqs_queue_url=queue_url, sqs_client=sqs, on_bounce=recorded.append)

    [bounce] = batch.bounces
    assert recorded == [bounce]
    assert (bounce.attempt_key, bounce.recipient, bounce.status) == (key, RECIPIENT, "5.1.1")
    assert bounce.diagnostic == (
        "5.1.1 SES Permanent/General smtp; 550 5.1.1 <***@customer.example>: user unknown")
    assert bounce.source.startswith("sqs:")
    assert [i.reason for i in batch.ignored] == ["SES Delivery notification, not a bounce"]
    [unreadable] = batch.unreadable
    assert unreadable.reason.startswith("not JSON")
    assert queue_depth(sqs, queue_url) == 1  # only the unreadable one is left


def test_ses_bounce_matched_by_tag_or_by_the_ses_message_id(aws):  # noqa: F811
    """SES replaces the Message-ID, so without headers the tag or the receipt must match."""
    aws.client("sesv2").create_email_identity(EmailIdentity=DOMAIN)
    key = key_of("ses-lookup")
    message = invoice_email(key)
    receipt = SesTransport(aws.region, endpoint_url=aws.endpoint_url).send(Envelope(
        key=key, invoice_id="129", invoice_number="INV-2026-000123", document_id="d",
        channel=EMAIL, recipient=RECIPIENT, payload=message.as_bytes(policy=policy.SMTP),
        filename="INV.eml", content_type="message/rfc822"))
    sqs = aws.client("sqs")
    queue_url = sqs.create_queue(QueueName="raw-delivery")["QueueUrl"]
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(
        ses_bounce(key=None, ses_message_id=receipt.reference)))
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(
        {**ses_bounce(key=key_of("tagged"), ses_message_id="0107-other", tags=True),
         "eventType": "Bounce"}))

    batch = read_sqs(queue_url, sqs,
                     key_for_message_id={receipt.reference: key}.get, wait_seconds=0)

    assert sorted(b.attempt_key for b in batch.bounces) == sorted([key, key_of("tagged")])
    assert batch.unreadable == () and queue_depth(sqs, queue_url) == 0


def test_ses_transient_bounce_is_ignored_and_unmatched_permanent_is_unreadable():
    transient = parse_ses_notification(json.dumps(
        ses_bounce(key=key_of("t"), ses_message_id="1", bounce_type="Transient")))
    assert transient.bounces == ()
    assert transient.ignored_because.startswith("SES transient bounce (General)")
    with pytest.raises(ValueError, match="names no q2c delivery"):
        parse_ses_notification(json.dumps(ses_bounce(key=None, ses_message_id="2")))


def test_a_dsn_message_parses_with_the_standard_library_as_sent():
    raw = dsn(invoice_email(key_of("shape")), action="failed", status="5.1.1",
              diagnostic="550 5.1.1 unknown")
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    assert parsed.get_content_type() == "multipart/report"
    assert [p.get_content_type() for p in parsed.iter_parts()] == [
        "text/plain", "message/delivery-status", "text/rfc822-headers"]


def test_a_message_given_up_after_its_queue_lifetime_is_a_bounce():
    """Postfix reports `Action: failed` with a 4.x.x status when it stops retrying."""
    raw = dsn(invoice_email(key_of("expired")), action="failed", status="4.4.1",
              diagnostic="connect to mail.customer.example[192.0.2.1]:25: Connection timed out")
    [bounce] = parse_dsn(raw, "test").bounces
    assert (bounce.attempt_key, bounce.status) == (key_of("expired"), "4.4.1")
    assert bounce.diagnostic.startswith("4.4.1 smtp; connect to mail.customer.example")


def test_a_bounced_portal_notice_is_a_bounce_of_the_portal_delivery():
    portal_key = key_of("portal-delivery")
    notice = portal_notice_message(
        invoice_number="INV-2026-000123", account_key="acc_1", recipient=RECIPIENT,
        sender="billing@northwind.example", link="https://portal.example/documents/abc",
        key=portal_key, message_id_domain=DOMAIN)
    raw = dsn(notice, action="failed", status="5.1.1", diagnostic="550 5.1.1 unknown")
    [bounce] = parse_dsn(raw, "test").bounces
    assert bounce.attempt_key == portal_key
    assert bounce.diagnostic.startswith("portal notice: 5.1.1 smtp; 550 5.1.1 unknown")
