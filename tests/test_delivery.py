"""The invoice email and its recipient checks, sent through the outbox's email transports.

Messages go to a real SMTP server on loopback (`SmtpTransport`) or into a real `.eml` folder
in tmp_path (`EmlFolderTransport`), each inside an `Envelope` the way the outbox hands them
over. Queueing, retries, failover and resends are tested in test_outbox.py and
test_outbox_faults.py.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter

from q2c.delivery import (
    EmlFolderTransport,
    Envelope,
    InvalidRecipientError,
    PermanentDeliveryError,
    SmtpTransport,
    build_invoice_email,
    email_payload,
    validate_recipient,
)
from q2c.delivery.envelope import EMAIL
from q2c.delivery.errors import (
    ChannelUnavailableError,
    DeliveryConfigurationError,
    TransientDeliveryError,
)
from q2c.delivery.message import message_id_for
from q2c.delivery.outbox import Outbox, OutboxItem, PlannedSend, attempt_key, document_key
from q2c.invoice_mail import attachment_name

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SENDER = "Northwind Billing <billing@northwind.example>"
DOMAIN = "northwind.example"
RECIPIENT = "ap@customer.example"
INVOICE_ID = "129"
INVOICE_NUMBER = "INV-2026-000123"
KEY = attempt_key(document_key(INVOICE_ID), EMAIL)


@pytest.fixture(scope="module")
def pdf_bytes() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    writer.add_metadata({"/Title": INVOICE_NUMBER})
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def make_email(pdf: bytes, key: str = KEY, *, recipient: str = RECIPIENT,
               invoice_number: str = INVOICE_NUMBER, date: dt.datetime | None = None):
    return build_invoice_email(
        invoice_number=invoice_number,
        recipient=recipient,
        sender=SENDER,
        subject=f"Invoice {invoice_number}",
        html_body=f"<p>Please find invoice <b>{invoice_number}</b> attached.</p>",
        text_body=f"Please find invoice {invoice_number} attached.",
        pdf_bytes=pdf,
        pdf_filename=f"{invoice_number}.pdf",
        message_id_domain=DOMAIN,
        idempotency_key=key,
        date=date,
    )


def envelope_of(message, *, recipient: str = RECIPIENT,
                invoice_number: str = INVOICE_NUMBER) -> Envelope:
    """The envelope the outbox hands to an email transport for `message`."""
    return Envelope(
        key=KEY, invoice_id=INVOICE_ID, invoice_number=invoice_number,
        document_id=f"doc-{INVOICE_ID}", channel=EMAIL, recipient=recipient,
        payload=email_payload(message), filename=f"{invoice_number}.eml",
        content_type="message/rfc822",
    )


def smtp(server) -> SmtpTransport:
    return SmtpTransport(server.host, server.port, timeout=10)


# -- recipients --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "canonical"),
    [
        ("ap@customer.example", "ap@customer.example"),
        (" AP.Team+inv@Sub.Customer.EXAMPLE ", "AP.Team+inv@sub.customer.example"),
        ("o'brien@xn--mnchen-3ya.de", "o'brien@xn--mnchen-3ya.de"),
    ],
)
def test_valid_recipients_are_returned_canonical(value, canonical):
    assert validate_recipient(value) == canonical


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "empty"),
        ("   ", "empty"),
        ("ebe31c0498dd42addc9e5fddd2fdabb8", "hex digest"),
        ("accounts payable", "no '@'"),
        ("ap@customer.example, cfo@customer.example", "a list"),
        ("Accounts <ap@customer.example>", "display name"),
        ("ap@@customer.example", "local part"),
        ("ap..x@customer.example", "local part"),
        ("ap@localhost", "no valid domain"),
        ("ap@customer.123", "no valid domain"),
        ("ap@-customer.example", "no valid domain"),
    ],
)
def test_invalid_recipients_are_refused_with_a_reason(value, reason):
    with pytest.raises(InvalidRecipientError, match=reason):
        validate_recipient(value)


def test_billing_emails_of_the_sample_invoices_are_all_rejected():
    with (DATA_DIR / "fivetran-quickbooks" / "invoice_data.csv").open(newline="") as handle:
        emails = [row["billing_email"] for row in csv.DictReader(handle)]

    assert "ebe31c0498dd42addc9e5fddd2fdabb8" in emails
    for email in emails:
        with pytest.raises(InvalidRecipientError, match="hex digest|empty"):
            validate_recipient(email)


# -- the message -------------------------------------------------------------------------


def test_message_has_text_html_pdf_and_a_message_id_derived_from_the_key(pdf_bytes):
    date = dt.datetime(2026, 3, 31, 9, 30, tzinfo=dt.UTC)

    first = make_email(pdf_bytes, date=date)
    again = make_email(pdf_bytes, date=date + dt.timedelta(days=1))

    assert first.get_content_type() == "multipart/mixed"
    alternative, attachment = first.iter_parts()
    assert alternative.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in alternative.iter_parts()] == [
        "text/plain",
        "text/html",
    ]
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == f"{INVOICE_NUMBER}.pdf"
    assert attachment.get_content() == pdf_bytes
    assert first["Message-ID"] == f"<invoice.{KEY}@{DOMAIN}>"
    assert again["Message-ID"] == first["Message-ID"]
    assert first["X-Q2C-Idempotency-Key"] == KEY
    assert first["X-Q2C-Invoice-Number"] == INVOICE_NUMBER
    assert first["Date"] == "Tue, 31 Mar 2026 09:30:00 +0000"
    assert first["To"] == RECIPIENT


def test_message_refuses_bytes_that_are_not_a_pdf():
    with pytest.raises(ValueError, match="not a PDF"):
        make_email(b"<html>invoice</html>")


def test_message_refuses_a_key_that_is_not_an_outbox_key(pdf_bytes):
    with pytest.raises(ValueError, match=r"use q2c\.delivery\.outbox\.attempt_key\(\)"):
        make_email(pdf_bytes, "INV-1 for ap@customer.example")


def test_invoice_numbers_with_slashes_make_a_plain_attachment_name():
    assert attachment_name("2026/0001") == "2026_0001.pdf"
    assert attachment_name("INV\r\nBcc: x") == "INV_Bcc_x.pdf"
    assert attachment_name("../..") == "invoice.pdf"


# -- the SMTP transport ------------------------------------------------------------------


def test_smtp_transport_delivers_the_pdf_and_the_text_body(smtp_server, pdf_bytes):
    receipt = smtp(smtp_server).send(envelope_of(make_email(pdf_bytes)))

    [received] = smtp_server.messages
    assert received.rcpt_tos == [RECIPIENT]
    assert received.mail_from == "billing@northwind.example"
    parsed = received.parsed()
    attachments = list(parsed.iter_attachments())
    assert [part.get_content_type() for part in attachments] == ["application/pdf"]
    assert attachments[0].get_filename() == f"{INVOICE_NUMBER}.pdf"
    assert attachments[0].get_content() == pdf_bytes
    assert len(PdfReader(io.BytesIO(attachments[0].get_content())).pages) == 1
    assert parsed.get_body(preferencelist=("plain",)).get_content().strip() == (
        f"Please find invoice {INVOICE_NUMBER} attached.")
    assert parsed["Message-ID"] == message_id_for(KEY, DOMAIN) == receipt.reference
    assert receipt.location == f"smtp://{smtp_server.host}:{smtp_server.port}"


def test_a_policy_refusal_of_the_message_is_permanent_not_a_bad_address(smtp_server,
                                                                          pdf_bytes):
    smtp_server.handler.data_replies.append("550 5.7.1 Message rejected by policy")

    with pytest.raises(PermanentDeliveryError) as raised:
        smtp(smtp_server).send(envelope_of(make_email(pdf_bytes)))

    assert type(raised.value) is PermanentDeliveryError
    assert "rejected the message (550 5.7.1 Message rejected by policy)" in str(raised.value)
    assert "check the server's log" in str(raised.value)
    assert smtp_server.messages == []


def test_wrong_password_makes_the_channel_unavailable_naming_the_settings(
    smtp_starttls_server, pdf_bytes
):
    """A refused login is our configuration's fault, the same for every invoice: retried
    later (transient), never an invoice's failover or dead letter."""
    server = smtp_starttls_server
    transport = SmtpTransport(server.host, server.port, server.username, "wrong",
                              starttls=True, timeout=10,
                              ssl_context=server.client_ssl_context)

    with pytest.raises(ChannelUnavailableError, match="Q2C_SMTP_PASSWORD") as raised:
        transport.send(envelope_of(make_email(pdf_bytes)))

    assert isinstance(raised.value, TransientDeliveryError)
    assert "535" in str(raised.value)
    assert f"user {server.username!r}" in str(raised.value)
    assert "wrong" not in str(raised.value)
    assert server.messages == []


def test_starttls_against_a_server_without_it_makes_the_channel_unavailable(smtp_server,
                                                                             pdf_bytes):
    transport = SmtpTransport(smtp_server.host, smtp_server.port, starttls=True, timeout=10)

    with pytest.raises(ChannelUnavailableError,
                       match="does not offer STARTTLS: check Q2C_SMTP_STARTTLS"):
        transport.send(envelope_of(make_email(pdf_bytes)))

    assert smtp_server.messages == []


def test_a_refused_sender_makes_the_channel_unavailable_not_the_recipient(smtp_server,
                                                                         pdf_bytes):
    smtp_server.handler.mail_replies.append(
        "550 5.7.1 <billing@northwind.example>: Sender address rejected: not owned by user")

    with pytest.raises(ChannelUnavailableError) as raised:
        smtp(smtp_server).send(envelope_of(make_email(pdf_bytes)))

    message = str(raised.value)
    assert message.startswith(f"SMTP server 127.0.0.1:{smtp_server.port} refused the sender "
                              "***@northwind.example (550 5.7.1 <***@northwind.example>: "
                              "Sender address rejected: not owned by user): check that "
                              "Q2C_MAIL_FROM may send through this server")
    assert smtp_server.handler.mail_replies == []
    assert smtp_server.messages == []


@pytest.mark.parametrize("reply", [
    "554 5.7.1 <ap@customer.example>: Relay access denied",
    "550 5.7.1 Unable to relay",
    "530 5.7.0 Authentication required",
])
def test_a_relay_refusal_makes_the_channel_unavailable_not_the_recipient(smtp_server,
                                                                        pdf_bytes, reply):
    smtp_server.handler.rcpt_replies.append(reply)

    with pytest.raises(ChannelUnavailableError, match="will not relay for q2c"):
        smtp(smtp_server).send(envelope_of(make_email(pdf_bytes)))

    assert smtp_server.messages == []


def test_a_server_that_is_down_makes_the_channel_unavailable(smtp_server, pdf_bytes):
    smtp_server.stop()

    with pytest.raises(ChannelUnavailableError,
                       match="refused the connection: check that it is running and "
                             "Q2C_SMTP_HOST/Q2C_SMTP_PORT"):
        smtp(smtp_server).send(envelope_of(make_email(pdf_bytes)))


@pytest.mark.parametrize("host", ["mail.example.com", "10.0.0.25", "192.0.2.7", "::2",
                                  "localhost.example.com", "128.0.0.1"])
def test_a_login_without_tls_to_another_host_is_refused_before_connecting(host):
    with pytest.raises(DeliveryConfigurationError) as raised:
        SmtpTransport(host, 587, user="billing", password="pw", starttls=False)

    assert isinstance(raised.value, PermanentDeliveryError)
    assert "set Q2C_SMTP_STARTTLS=true" in str(raised.value)
    assert f"SMTP server {host}:587 as 'billing' without TLS" in str(raised.value)
    assert "pw" not in str(raised.value).replace("password", "")


@pytest.mark.parametrize(
    ("host", "user", "starttls"),
    [("127.0.0.1", "billing", False), ("127.8.9.10", "billing", False),
     ("::1", "billing", False), ("[::1]", "billing", False),
     ("localhost", "billing", False), ("LocalHost.", "billing", False),
     ("::ffff:127.0.0.1", "billing", False),
     ("mail.example.com", "billing", True), ("mail.example.com", None, False)],
)
def test_a_login_over_tls_or_to_this_machine_is_allowed(host, user, starttls):
    transport = SmtpTransport(host, 587, user=user, password="pw", starttls=starttls)
    assert (transport.host, transport.user, transport.starttls) == (host, user, starttls)


def test_a_clear_text_login_to_loopback_is_tried(smtp_server, pdf_bytes):
    """Loopback is exempt from the TLS rule: the login goes to the server, which here
    offers no AUTH at all."""
    transport = SmtpTransport(smtp_server.host, smtp_server.port, user="billing",
                              password="pw", timeout=10)

    with pytest.raises(ChannelUnavailableError,
                       match=r"offers no login \(AUTH\): unset Q2C_SMTP_USER"):
        transport.send(envelope_of(make_email(pdf_bytes)))
    assert smtp_server.messages == []


def test_an_address_the_mail_library_reads_differently_is_refused_before_sending(
    smtp_server, pdf_bytes
):
    """Regression: an encoded-word billing email once stopped every email of the night.
    It passes the address check, but the To header reads back as another address, so the
    transport refuses it for good (the outbox then fails over) and sends nothing."""
    odd = "=?utf-8?q?x?=@example.com"
    assert validate_recipient(odd) == odd

    with pytest.raises(PermanentDeliveryError, match="but queued for"):
        smtp(smtp_server).send(envelope_of(make_email(pdf_bytes, recipient=odd),
                                           recipient=odd))

    assert smtp_server.messages == []


# -- the .eml folder transport -----------------------------------------------------------


def test_eml_transport_files_by_utc_day_and_keeps_the_first_file(tmp_path, pdf_bytes):
    # 23:30 at UTC-2 is already the next day in UTC: the folder follows UTC.
    date = dt.datetime(2026, 3, 31, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-2)))
    transport = EmlFolderTransport(tmp_path / "outbox")

    receipt = transport.send(envelope_of(make_email(pdf_bytes, date=date)))

    expected = tmp_path / "outbox" / "2026-04-01" / f"{INVOICE_NUMBER}-{KEY[:12]}.eml"
    assert receipt.location == str(expected)
    assert [path.name for path in expected.parent.iterdir()] == [expected.name]
    parsed = BytesParser(policy=policy.default).parsebytes(expected.read_bytes())
    assert parsed["To"] == RECIPIENT
    assert parsed["Message-ID"] == receipt.reference == message_id_for(KEY, DOMAIN)
    attachment = next(parsed.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == pdf_bytes

    written = expected.read_bytes()
    later = make_email(pdf_bytes, date=date + dt.timedelta(days=2))
    resend = transport.send(envelope_of(later))
    assert resend.location == str(expected)
    assert expected.read_bytes() == written
    assert sorted(path.name for path in (tmp_path / "outbox").iterdir()) == ["2026-04-01"]


def test_a_very_long_invoice_number_still_gets_an_eml_file(tmp_path, pdf_bytes):
    number = "INV-" + "9" * 296

    receipt = EmlFolderTransport(tmp_path / "outbox").send(
        envelope_of(make_email(pdf_bytes, invoice_number=number), invoice_number=number))

    [path] = (tmp_path / "outbox").rglob("*.eml")
    assert receipt.location == str(path)
    assert path.name == f"INV-{'9' * 76}-{KEY[:12]}.eml"
    assert len(path.name) < 120


# -- logs --------------------------------------------------------------------------------


def test_logs_name_the_invoice_and_only_the_recipient_domain(tmp_path, smtp_server,
                                                             pdf_bytes, caplog):
    send = PlannedSend(EMAIL, RECIPIENT, email_payload(make_email(pdf_bytes)),
                       f"{INVOICE_NUMBER}.eml", "message/rfc822")
    outbox = Outbox(tmp_path / "ops.sqlite")
    outbox.enqueue([OutboxItem(INVOICE_ID, INVOICE_NUMBER, f"doc-{INVOICE_ID}", "acct-1",
                               (send,), decision={"chosen": [EMAIL]})], "run-1")

    with caplog.at_level(logging.DEBUG, logger="q2c.delivery"):
        report = outbox.process({EMAIL: smtp(smtp_server)}, "run-1")

    assert report.sent == 1
    assert f"invoice {INVOICE_NUMBER} sent via email to ***@customer.example" in caplog.text
    assert RECIPIENT not in caplog.text
