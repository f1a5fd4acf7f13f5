"""Invoice email delivery against a real SMTP server on loopback and a real DuckDB ledger."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import logging
from email import policy
from email.parser import BytesParser
from pathlib import Path

import duckdb
import pytest
from pypdf import PdfReader, PdfWriter

from q2c.delivery import (
    DeliveryRequest,
    EmlFolderChannel,
    InvalidRecipientError,
    PermanentDeliveryError,
    SmtpChannel,
    TransientDeliveryError,
    build_invoice_email,
    deliver,
    idempotency_key,
    requeue_permanent_failures,
    validate_recipient,
)
from q2c.delivery.message import message_id_for
from q2c.warehouse import ensure_ops_tables

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SENDER = "Northwind Billing <billing@northwind.example>"
DOMAIN = "northwind.example"
RECIPIENT = "ap@customer.example"
INVOICE_NUMBER = "INV-2026-000123"


@pytest.fixture(scope="module")
def pdf_bytes() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    writer.add_metadata({"/Title": INVOICE_NUMBER})
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


@pytest.fixture
def conn(tmp_path: Path):
    connection = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    ensure_ops_tables(connection)
    yield connection
    connection.close()


def make_email(pdf: bytes, key: str, *, recipient: str = RECIPIENT,
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


def make_request(pdf: bytes, *, invoice_id: str = "129", recipient: str | None = RECIPIENT,
                 invoice_number: str = INVOICE_NUMBER, built: list[str] | None = None):
    def builder(key: str):
        if built is not None:
            built.append(key)
        return make_email(pdf, key, recipient=recipient or "", invoice_number=invoice_number)

    return DeliveryRequest(
        invoice_id=invoice_id,
        invoice_number=invoice_number,
        document_id=f"doc-{invoice_id}",
        recipient=recipient,
        message=builder,
    )


def ledger_rows(conn) -> list[dict]:
    cursor = conn.execute(
        "select * from q2c_ops.delivery_ledger order by invoice_id, idempotency_key"
    )
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def no_wait(seconds: float) -> None:
    """Stands in for time.sleep so retries run without waiting."""


def smtp_channel(server) -> SmtpChannel:
    return SmtpChannel(server.host, server.port, timeout=10)


def test_idempotency_key_is_sha256_of_normalised_parts():
    expected = hashlib.sha256(
        "\x1f".join(["q2c-delivery-v1", "129", "smtp", "ap@customer.example"]).encode()
    ).hexdigest()

    assert idempotency_key("129", "smtp", "ap@customer.example") == expected
    assert idempotency_key(" 129 ", "SMTP", " AP@Customer.Example ") == expected
    assert idempotency_key("129", "eml", "ap@customer.example") != expected
    assert idempotency_key("129", "smtp", "billing@customer.example") != expected
    assert idempotency_key("130", "smtp", "ap@customer.example") != expected


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


def test_message_has_text_html_pdf_and_a_message_id_derived_from_the_key(pdf_bytes):
    key = idempotency_key("129", "smtp", RECIPIENT)
    date = dt.datetime(2026, 3, 31, 9, 30, tzinfo=dt.UTC)

    first = make_email(pdf_bytes, key, date=date)
    again = make_email(pdf_bytes, key, date=date + dt.timedelta(days=1))

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
    assert first["Message-ID"] == f"<invoice.{key}@{DOMAIN}>"
    assert again["Message-ID"] == first["Message-ID"]
    assert first["X-Q2C-Idempotency-Key"] == key
    assert first["Date"] == "Tue, 31 Mar 2026 09:30:00 +0000"
    assert first["To"] == RECIPIENT


def test_message_refuses_bytes_that_are_not_a_pdf():
    with pytest.raises(ValueError, match="not a PDF"):
        make_email(b"<html>invoice</html>", idempotency_key("129", "smtp", RECIPIENT))


def test_smtp_channel_delivers_the_pdf_and_the_text_body(smtp_server, pdf_bytes):
    key = idempotency_key("129", "smtp", RECIPIENT)
    message = make_email(pdf_bytes, key)

    result = smtp_channel(smtp_server).send(message)

    assert len(smtp_server.messages) == 1
    received = smtp_server.messages[0]
    assert received.rcpt_tos == [RECIPIENT]
    assert received.mail_from == "billing@northwind.example"
    parsed = received.parsed()
    attachments = list(parsed.iter_attachments())
    assert [part.get_content_type() for part in attachments] == ["application/pdf"]
    assert attachments[0].get_content() == pdf_bytes
    assert len(PdfReader(io.BytesIO(attachments[0].get_content())).pages) == 1
    assert INVOICE_NUMBER in parsed.get_body(preferencelist=("plain",)).get_content()
    assert parsed["Message-ID"] == message_id_for(key, DOMAIN) == result.message_id
    assert result.location == f"smtp://{smtp_server.host}:{smtp_server.port}"


def test_eml_folder_channel_writes_a_parseable_file_once(tmp_path, pdf_bytes):
    key = idempotency_key("129", "eml", RECIPIENT)
    # 23:30 at UTC-2 is already the next day in UTC: the folder follows UTC.
    date = dt.datetime(2026, 3, 31, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-2)))
    channel = EmlFolderChannel(tmp_path / "outbox")

    result = channel.send(make_email(pdf_bytes, key, date=date))

    expected = tmp_path / "outbox" / "2026-04-01" / f"{INVOICE_NUMBER}-{key[:12]}.eml"
    assert result.location == str(expected)
    assert [path.name for path in expected.parent.iterdir()] == [expected.name]
    parsed = BytesParser(policy=policy.default).parsebytes(expected.read_bytes())
    assert parsed["To"] == RECIPIENT
    assert parsed["Message-ID"] == result.message_id == message_id_for(key, DOMAIN)
    attachment = next(parsed.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == pdf_bytes

    written = expected.read_bytes()
    resend = channel.send(make_email(pdf_bytes, key, date=date + dt.timedelta(days=2)))
    assert resend.location == str(expected)
    assert expected.read_bytes() == written
    assert sorted(path.name for path in (tmp_path / "outbox").iterdir()) == ["2026-04-01"]


def test_deliver_twice_sends_once(conn, smtp_server, pdf_bytes):
    channel = smtp_channel(smtp_server)
    built: list[str] = []

    first = deliver(conn, [make_request(pdf_bytes, built=built)], channel, "run-1",
                    sleep=no_wait)
    second = deliver(conn, [make_request(pdf_bytes, built=built)], channel, "run-2",
                     sleep=no_wait)

    key = idempotency_key("129", "smtp", RECIPIENT)
    assert first.counts() == {"sent": 1, "already_sent": 0, "rejected": 0, "failed": 0,
                              "failed_permanent": 0}
    assert (second.sent, second.already_sent) == (0, 1)
    assert built == [key]
    assert len(smtp_server.messages) == 1
    received_id = smtp_server.messages[0].parsed()["Message-ID"]
    assert second.outcomes[0].message_id == received_id
    [row] = ledger_rows(conn)
    assert row["idempotency_key"] == key
    assert (row["status"], row["attempts"], row["run_id"]) == ("sent", 1, "run-1")
    assert row["message_id"] == received_id
    assert row["document_id"] == "doc-129"
    assert row["sent_at"] is not None and row["last_error"] is None


def test_invalid_recipients_are_rejected_recorded_and_not_retried(conn, smtp_server, pdf_bytes):
    channel = smtp_channel(smtp_server)
    built: list[str] = []
    requests = [
        make_request(pdf_bytes, invoice_id="27", recipient="ebe31c0498dd42addc9e5fddd2fdabb8",
                     built=built),
        make_request(pdf_bytes, invoice_id="28", recipient=None, built=built),
    ]

    report = deliver(conn, requests, channel, "run-1", sleep=no_wait)
    rerun = deliver(conn, requests, channel, "run-2", sleep=no_wait)

    assert (report.rejected, report.sent) == (2, 0)
    assert (rerun.rejected, rerun.sent) == (2, 0)
    assert built == []
    assert smtp_server.messages == []
    rows = ledger_rows(conn)
    assert [(row["invoice_id"], row["status"], row["attempts"]) for row in rows] == [
        ("27", "rejected", 0),
        ("28", "rejected", 0),
    ]
    assert "hex digest" in rows[0]["last_error"]
    assert "empty" in rows[1]["last_error"]
    assert rows[0]["run_id"] == "run-1"

    fixed = deliver(conn, [make_request(pdf_bytes, invoice_id="27")], channel, "run-3",
                    sleep=no_wait)
    assert fixed.sent == 1
    assert len(smtp_server.messages) == 1


def test_transient_451_is_retried_with_backoff_then_failed_then_sent_next_run(
    conn, smtp_server, pdf_bytes
):
    smtp_server.handler.data_replies.extend(["451 4.3.0 Try again later"] * 3)
    waits: list[float] = []
    channel = smtp_channel(smtp_server)

    report = deliver(conn, [make_request(pdf_bytes)], channel, "run-1",
                     backoff_seconds=0.5, sleep=waits.append)

    [outcome] = report.outcomes
    assert (outcome.status, outcome.attempts) == ("failed", 3)
    assert waits == [0.5, 1.0]
    assert smtp_server.messages == []
    [row] = ledger_rows(conn)
    assert (row["status"], row["attempts"]) == ("failed", 3)
    assert "451" in row["last_error"]

    later = deliver(conn, [make_request(pdf_bytes)], channel, "run-2", sleep=no_wait)

    assert (later.sent, later.outcomes[0].attempts) == (1, 1)
    assert len(smtp_server.messages) == 1
    [row] = ledger_rows(conn)
    assert (row["status"], row["attempts"], row["last_error"]) == ("sent", 4, None)


def test_one_transient_reply_is_absorbed_within_the_run(conn, smtp_server, pdf_bytes):
    smtp_server.handler.data_replies.append("421 4.7.0 Too busy, come back later")

    report = deliver(conn, [make_request(pdf_bytes)], smtp_channel(smtp_server), "run-1",
                     sleep=no_wait)

    assert (report.sent, report.outcomes[0].attempts) == (1, 2)
    assert len(smtp_server.messages) == 1


def test_stopped_server_fails_the_run_and_the_next_run_delivers(conn, smtp_server, pdf_bytes):
    channel = smtp_channel(smtp_server)
    smtp_server.stop()

    with pytest.raises(TransientDeliveryError, match="refused the connection"):
        channel.send(make_email(pdf_bytes, idempotency_key("129", "smtp", RECIPIENT)))
    report = deliver(conn, [make_request(pdf_bytes)], channel, "run-1", sleep=no_wait)
    assert (report.failed, report.outcomes[0].attempts) == (1, 3)

    smtp_server.start()
    later = deliver(conn, [make_request(pdf_bytes)], channel, "run-2", sleep=no_wait)

    assert later.sent == 1
    assert len(smtp_server.messages) == 1
    [row] = ledger_rows(conn)
    assert (row["status"], row["attempts"], row["run_id"]) == ("sent", 4, "run-2")


def test_permanent_550_is_not_retried_until_requeued(conn, smtp_server, pdf_bytes):
    smtp_server.handler.data_replies.append("550 5.7.1 Message rejected by policy")
    channel = smtp_channel(smtp_server)

    report = deliver(conn, [make_request(pdf_bytes)], channel, "run-1", sleep=no_wait)
    rerun = deliver(conn, [make_request(pdf_bytes)], channel, "run-2", sleep=no_wait)

    assert (report.failed_permanent, report.outcomes[0].attempts) == (1, 1)
    assert (rerun.failed_permanent, rerun.outcomes[0].attempts) == (1, 0)
    assert smtp_server.messages == []
    [row] = ledger_rows(conn)
    assert (row["status"], row["attempts"]) == ("failed_permanent", 1)
    assert "550" in row["last_error"]

    assert requeue_permanent_failures(conn, invoice_ids=["129"]) == 1
    fixed = deliver(conn, [make_request(pdf_bytes)], channel, "run-3", sleep=no_wait)

    assert fixed.sent == 1
    assert len(smtp_server.messages) == 1


def test_refused_recipient_is_permanent_and_its_address_is_masked(smtp_server, pdf_bytes):
    smtp_server.handler.rcpt_replies.append(f"550 5.1.1 <{RECIPIENT}>: Mailbox unavailable")
    message = make_email(pdf_bytes, idempotency_key("129", "smtp", RECIPIENT))

    with pytest.raises(PermanentDeliveryError, match="refused recipient") as raised:
        smtp_channel(smtp_server).send(message)

    assert RECIPIENT not in str(raised.value)
    assert "***@customer.example" in str(raised.value)


def test_crash_between_sending_and_sent_is_sent_again_next_run(conn, smtp_server, pdf_bytes):
    """A row left 'sending' means the process stopped after marking it, maybe after the
    server accepted the message. The next run sends it again: delivery is at-least-once for
    that narrow window, and the resend carries the same Message-ID.
    """
    key = idempotency_key("129", "smtp", RECIPIENT)
    conn.execute(
        """
        insert into q2c_ops.delivery_ledger (idempotency_key, invoice_id, invoice_number,
            document_id, channel, recipient, status, attempts, first_attempt_at, run_id)
        values (?, '129', ?, 'doc-129', 'smtp', ?, 'sending', 1, ?, 'run-crashed')
        """,
        [key, INVOICE_NUMBER, RECIPIENT, dt.datetime(2026, 4, 1, 2, 0)],
    )

    report = deliver(conn, [make_request(pdf_bytes)], smtp_channel(smtp_server), "run-2",
                     sleep=no_wait)

    assert report.sent == 1
    assert len(smtp_server.messages) == 1
    assert smtp_server.messages[0].parsed()["Message-ID"] == message_id_for(key, DOMAIN)
    [row] = ledger_rows(conn)
    assert (row["status"], row["attempts"], row["run_id"]) == ("sent", 2, "run-2")
    assert row["first_attempt_at"] == dt.datetime(2026, 4, 1, 2, 0)


def test_deliver_through_the_eml_outbox_writes_one_file_per_invoice(conn, tmp_path, pdf_bytes):
    channel = EmlFolderChannel(tmp_path / "outbox")
    requests = [
        make_request(pdf_bytes, invoice_id="129"),
        make_request(pdf_bytes, invoice_id="130", invoice_number="INV-2026-000124"),
    ]

    first = deliver(conn, requests, channel, "run-1", sleep=no_wait)
    second = deliver(conn, requests, channel, "run-2", sleep=no_wait)

    assert (first.sent, second.already_sent) == (2, 2)
    files = sorted(path.name for path in (tmp_path / "outbox").glob("*/*.eml"))
    assert files == sorted(
        f"{number}-{idempotency_key(invoice_id, 'eml', RECIPIENT)[:12]}.eml"
        for invoice_id, number in [("129", INVOICE_NUMBER), ("130", "INV-2026-000124")]
    )
    assert [row["location"] for row in ledger_rows(conn)] == [
        outcome.location for outcome in first.outcomes
    ]


def test_logs_name_the_invoice_and_only_the_recipient_domain(conn, smtp_server, pdf_bytes,
                                                             caplog):
    with caplog.at_level(logging.DEBUG, logger="q2c.delivery"):
        deliver(conn, [make_request(pdf_bytes)], smtp_channel(smtp_server), "run-1",
                sleep=no_wait)

    assert f"invoice {INVOICE_NUMBER} emailed to ***@customer.example via smtp" in caplog.text
    assert RECIPIENT not in caplog.text


def test_a_message_built_for_another_key_is_refused(conn, smtp_server, pdf_bytes):
    wrong = make_email(pdf_bytes, idempotency_key("129", "eml", RECIPIENT))
    request = DeliveryRequest("129", INVOICE_NUMBER, "doc-129", RECIPIENT, wrong)

    with pytest.raises(ValueError, match="carries idempotency key"):
        deliver(conn, [request], smtp_channel(smtp_server), "run-1", sleep=no_wait)

    assert smtp_server.messages == []


def test_starttls_and_login_deliver_over_tls(smtp_starttls_server, pdf_bytes):
    server = smtp_starttls_server
    channel = SmtpChannel(server.host, server.port, server.username, server.password,
                          starttls=True, timeout=10, ssl_context=server.client_ssl_context)

    channel.send(make_email(pdf_bytes, idempotency_key("129", "smtp", RECIPIENT)))

    assert len(server.messages) == 1
    assert next(server.messages[0].parsed().iter_attachments()).get_content() == pdf_bytes


def test_wrong_password_is_a_permanent_error_naming_the_settings(smtp_starttls_server,
                                                                 pdf_bytes):
    server = smtp_starttls_server
    channel = SmtpChannel(server.host, server.port, server.username, "wrong", starttls=True,
                          timeout=10, ssl_context=server.client_ssl_context)

    with pytest.raises(PermanentDeliveryError, match="Q2C_SMTP_PASSWORD") as raised:
        channel.send(make_email(pdf_bytes, idempotency_key("129", "smtp", RECIPIENT)))

    assert "535" in str(raised.value)
    assert "wrong" not in str(raised.value)
    assert server.messages == []


def test_starttls_against_a_server_without_it_is_permanent(smtp_server, pdf_bytes):
    channel = SmtpChannel(smtp_server.host, smtp_server.port, starttls=True, timeout=10)

    with pytest.raises(PermanentDeliveryError, match="Q2C_SMTP_STARTTLS"):
        channel.send(make_email(pdf_bytes, idempotency_key("129", "smtp", RECIPIENT)))

    assert smtp_server.messages == []


def test_an_invoice_whose_message_cannot_be_built_fails_alone(conn, smtp_server, pdf_bytes):
    """Regression: a missing PDF once stopped every email after it in the batch."""

    def lost_pdf(key: str):
        raise FileNotFoundError("var/documents/2026/11/INV-1-abc.pdf")

    broken = DeliveryRequest(invoice_id="1", invoice_number="INV-1", document_id="doc-1",
                             recipient=RECIPIENT, message=lost_pdf)
    good = make_request(pdf_bytes, invoice_id="2", invoice_number="INV-2")

    report = deliver(conn, [broken, good], smtp_channel(smtp_server), "run-1", sleep=no_wait)

    assert [(o.invoice_number, o.status) for o in report.outcomes] == [
        ("INV-1", "failed"), ("INV-2", "sent")]
    assert "could not be built" in report.outcomes[0].error
    assert len(smtp_server.messages) == 1
    statuses = {row["invoice_id"]: row["status"] for row in ledger_rows(conn)}
    assert statuses == {"1": "failed", "2": "sent"}


def test_invoice_numbers_with_slashes_make_a_plain_attachment_name():
    from q2c.invoice_mail import attachment_name

    assert attachment_name("2026/0001") == "2026_0001.pdf"
    assert attachment_name("INV\r\nBcc: x") == "INV_Bcc_x.pdf"
    assert attachment_name("../..") == "invoice.pdf"


def test_a_changed_billing_address_does_not_send_an_invoice_again(conn, smtp_server,
                                                                  pdf_bytes):
    """Regression: a new billing address once re-sent old, already paid invoices."""
    channel = smtp_channel(smtp_server)
    deliver(conn, [make_request(pdf_bytes)], channel, "run-1", sleep=no_wait)

    moved = make_request(pdf_bytes, recipient="new-ap@customer.example")
    report = deliver(conn, [moved], channel, "run-2", sleep=no_wait)

    assert (report.sent, report.already_sent) == (0, 1)
    assert len(smtp_server.messages) == 1


def test_a_corrected_address_after_a_rejection_is_sent(conn, smtp_server, pdf_bytes):
    channel = smtp_channel(smtp_server)
    deliver(conn, [make_request(pdf_bytes, recipient="ebe31c0498dd42addc9e5fddd2fdabb8")],
            channel, "run-1", sleep=no_wait)

    report = deliver(conn, [make_request(pdf_bytes)], channel, "run-2", sleep=no_wait)

    assert report.sent == 1
    assert len(smtp_server.messages) == 1


def test_an_address_the_mail_library_reads_differently_is_rejected_alone(conn, smtp_server,
                                                                         pdf_bytes):
    """Regression: an encoded-word billing email once stopped every email of the night."""
    odd = make_request(pdf_bytes, invoice_id="1", invoice_number="INV-1",
                       recipient="=?utf-8?q?x?=@example.com")
    good = make_request(pdf_bytes, invoice_id="2", invoice_number="INV-2")

    report = deliver(conn, [odd, good], smtp_channel(smtp_server), "run-1", sleep=no_wait)

    assert [(o.invoice_number, o.status) for o in report.outcomes] == [
        ("INV-1", "rejected"), ("INV-2", "sent")]
    assert len(smtp_server.messages) == 1


def test_a_very_long_invoice_number_still_gets_an_outbox_file(conn, tmp_path, pdf_bytes):
    number = "INV-" + "9" * 296
    request = make_request(pdf_bytes, invoice_number=number)

    report = deliver(conn, [request], EmlFolderChannel(tmp_path / "outbox"), "run-1",
                     sleep=no_wait)

    assert report.sent == 1
    [path] = (tmp_path / "outbox").rglob("*.eml")
    assert len(path.name) < 120
