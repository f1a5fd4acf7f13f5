"""SES, portal and e-invoice drop channels against moto on loopback and real folders."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import re
import socket
import stat
from email import policy
from email.parser import BytesParser
from pathlib import Path

import facturx
import pytest
from aws_server import AwsTestServer, aws, aws_server  # noqa: F401 (pytest fixtures)
from botocore.stub import Stubber
from pypdf import PdfWriter

from q2c.delivery.channels import eml_file_name, write_eml_once
from q2c.delivery.edi import EdiDropChannel, describe_document
from q2c.delivery.envelope import EDI, EMAIL, PORTAL, Envelope
from q2c.delivery.errors import (
    ChannelUnavailableError,
    InvalidRecipientError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from q2c.delivery.mail_transport import EmlFolderTransport
from q2c.delivery.message import IDEMPOTENCY_HEADER, build_invoice_email, message_id_for
from q2c.delivery.portal import (
    ACCOUNT_HEADER,
    PortalChannel,
    PortalStore,
    notice_key,
    portal_key_of,
    portal_notice_message,
)
from q2c.delivery.ses import KEY_TAG, SesTransport

EXAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "einvoice-examples"
SENDER = "Northwind Billing <billing@northwind.example>"
DOMAIN = "northwind.example"
RECIPIENT = "ap@customer.example"
INVOICE_NUMBER = "INV-2026-000123"
ACCOUNT = "acc_7f3a9c"
PORTAL_URL = "https://portal.northwind.example"
SELLER_PEPPOL = "9930:DE811907980"
BUYER_PEPPOL = "0088:5790000435951"
UBL_INVOICE_TYPE = (
    "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2::Invoice##urn:cen.eu:en16931:2017"
    "#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0::2.1"
)
UBL_CREDIT_NOTE_TYPE = (
    "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2::CreditNote##"
    "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0::2.1"
)
CII_EN16931_TYPE = (
    "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100::CrossIndustryInvoice##"
    "urn:cen.eu:en16931:2017::D16B"
)
PEPPOL_PROCESS = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"


def key_of(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


@pytest.fixture(scope="module")
def pdf_bytes() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def email_envelope(pdf: bytes, key: str, recipient: str = RECIPIENT) -> Envelope:
    message = build_invoice_email(
        invoice_number=INVOICE_NUMBER, recipient=RECIPIENT, sender=SENDER,
        subject=f"Invoice {INVOICE_NUMBER}", html_body="<p>Your invoice.</p>",
        text_body="Your invoice.", pdf_bytes=pdf, pdf_filename=f"{INVOICE_NUMBER}.pdf",
        message_id_domain=DOMAIN, idempotency_key=key,
        date=dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.UTC),
    )
    return Envelope(
        key=key, invoice_id="129", invoice_number=INVOICE_NUMBER, document_id="doc-1",
        channel=EMAIL, recipient=recipient, payload=message.as_bytes(policy=policy.SMTP),
        filename=f"{INVOICE_NUMBER}.eml", content_type="message/rfc822",
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ses(aws: AwsTestServer, endpoint: str | None = None) -> SesTransport:  # noqa: F811
    return SesTransport(aws.region, endpoint_url=endpoint or aws.endpoint_url)


# --- SES -------------------------------------------------------------------------------


def test_ses_sends_the_raw_message_and_moto_records_it(aws, pdf_bytes):  # noqa: F811
    aws.client("sesv2").create_email_identity(EmailIdentity=DOMAIN)
    key = key_of("ses-ok")
    envelope = email_envelope(pdf_bytes, key)

    receipt = ses(aws).send(envelope)

    sent = aws.sent_emails()
    assert len(sent) == 1
    assert sent[0]["id"] == receipt.reference
    assert receipt.location == "ses://eu-central-1"
    assert sent[0]["source"] == "billing@northwind.example"
    assert set(sent[0]["destinations"]) == {RECIPIENT}
    received = BytesParser(policy=policy.default).parsebytes(sent[0]["raw_data"].encode())
    assert received[IDEMPOTENCY_HEADER].strip() == key
    assert received["Message-ID"] == message_id_for(key, DOMAIN)
    attachment = next(received.iter_attachments())
    assert attachment.get_filename() == f"{INVOICE_NUMBER}.pdf"
    assert attachment.get_content() == pdf_bytes


def test_ses_tags_the_message_with_the_key_of_the_header(aws, pdf_bytes):  # noqa: F811
    transport = ses(aws)
    stubber = Stubber(transport.client)
    key = key_of("ses-tag")
    envelope = email_envelope(pdf_bytes, key)
    stubber.add_response(
        "send_email", {"MessageId": "0100-abc"},
        expected_params={
            "FromEmailAddress": "billing@northwind.example",
            "Destination": {"ToAddresses": [RECIPIENT]},
            "Content": {"Raw": {"Data": envelope.payload}},
            "EmailTags": [{"Name": KEY_TAG, "Value": key}],
        },
    )
    with stubber:
        receipt = transport.send(envelope)
    stubber.assert_no_pending_responses()
    assert receipt.reference == "0100-abc"


def test_ses_unverified_sender_keeps_the_batch_queued_and_says_to_verify(
    aws, pdf_bytes  # noqa: F811
):
    """Every invoice would fail alike, so none is failed over: the channel is unavailable."""
    with pytest.raises(ChannelUnavailableError) as caught:
        ses(aws).send(email_envelope(pdf_bytes, key_of("ses-unverified")))
    message = str(caught.value)
    assert "MessageRejected" in message
    assert "verify the sender identity" in message
    assert INVOICE_NUMBER in message
    assert RECIPIENT not in message and "***@customer.example" in message
    assert aws.sent_emails() == []


@pytest.mark.parametrize(
    ("code", "status", "expected", "advice"),
    [
        ("TooManyRequestsException", 429, TransientDeliveryError, "retried later"),
        ("InternalFailure", 500, TransientDeliveryError, "retried later"),
        ("LimitExceededException", 400, TransientDeliveryError, "retried later"),
        ("MailFromDomainNotVerifiedException", 400, ChannelUnavailableError, "MX and SPF"),
        ("AccountSuspendedException", 400, ChannelUnavailableError, "reputation dashboard"),
        ("SendingPausedException", 400, ChannelUnavailableError, "resume it"),
        ("UnrecognizedClientException", 403, ChannelUnavailableError, "AWS credentials"),
    ],
)
def test_ses_error_codes_are_classified(aws, pdf_bytes, code, status, expected,  # noqa: F811
                                        advice):
    transport = ses(aws)
    stubber = Stubber(transport.client)
    stubber.add_client_error("send_email", service_error_code=code,
                             service_message="from SES", http_status_code=status)
    with stubber, pytest.raises(expected) as caught:
        transport.send(email_envelope(pdf_bytes, key_of(code)))
    assert type(caught.value) is expected
    assert code in str(caught.value) and advice in str(caught.value)


def test_ses_refuses_a_message_built_for_another_key(aws, pdf_bytes):  # noqa: F811
    aws.client("sesv2").create_email_identity(EmailIdentity=DOMAIN)
    envelope = email_envelope(pdf_bytes, key_of("ses-one"))
    other = Envelope(**{**envelope.__dict__, "key": key_of("ses-other")})
    with pytest.raises(PermanentDeliveryError, match="not one derived from its outbox key"):
        ses(aws).send(other)
    assert aws.sent_emails() == []


def test_ses_unreachable_endpoint_is_transient(aws, pdf_bytes):  # noqa: F811
    transport = ses(aws, endpoint=f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(TransientDeliveryError, match="could not reach AWS"):
        transport.send(email_envelope(pdf_bytes, key_of("ses-down")))


def test_ses_refuses_a_hashed_recipient_before_calling_aws(aws, pdf_bytes):  # noqa: F811
    aws.client("sesv2").create_email_identity(EmailIdentity=DOMAIN)
    envelope = email_envelope(pdf_bytes, key_of("ses-hash"),
                              recipient="ebe31c0498dd42addc9e5fddd2fdabb8")
    with pytest.raises(InvalidRecipientError, match="hex digest"):
        ses(aws).send(envelope)
    assert aws.sent_emails() == []


# --- Portal ----------------------------------------------------------------------------


def portal_envelope(channel: PortalChannel, pdf: bytes, key: str, *,
                    link: str | None = None, account: str = ACCOUNT) -> Envelope:
    notice = portal_notice_message(
        invoice_number=INVOICE_NUMBER, account_key=account, recipient=RECIPIENT,
        sender=SENDER, link=link or channel.link_for(key), key=key, message_id_domain=DOMAIN,
        customer_name="Contoso Ltd", seller_name="Northwind Analytics GmbH",
    )
    return Envelope(
        key=key, invoice_id="129", invoice_number=INVOICE_NUMBER, document_id="doc-1",
        channel=PORTAL, recipient=RECIPIENT, payload=pdf, filename=f"{INVOICE_NUMBER}.pdf",
        content_type="application/pdf", notice=notice.as_bytes(policy=policy.SMTP),
    )


def test_portal_publishes_the_document_and_mails_the_link(aws, tmp_path,  # noqa: F811
                                                          pdf_bytes):
    aws.client("sesv2").create_email_identity(EmailIdentity=DOMAIN)
    store = PortalStore(tmp_path / "portal")
    channel = PortalChannel(store, PORTAL_URL + "/", ses(aws))
    key = key_of("portal-ok")

    receipt = channel.send(portal_envelope(channel, pdf_bytes, key))

    document = tmp_path / "portal" / ACCOUNT / INVOICE_NUMBER / f"{INVOICE_NUMBER}.pdf"
    assert document.read_bytes() == pdf_bytes
    token = receipt.location.rsplit("/", 1)[1]
    assert receipt.location == f"{PORTAL_URL}/documents/{token}"
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)
    assert key[:12] not in token and INVOICE_NUMBER not in token

    sent = aws.sent_emails()
    assert len(sent) == 1 and receipt.reference == sent[0]["id"]
    assert set(sent[0]["destinations"]) == {RECIPIENT}
    notice = BytesParser(policy=policy.default).parsebytes(sent[0]["raw_data"].encode())
    assert notice[IDEMPOTENCY_HEADER].strip() == notice_key(key) == f"{key}-notice"
    assert notice["Message-ID"] == message_id_for(notice_key(key), DOMAIN)
    assert notice[ACCOUNT_HEADER] == ACCOUNT
    text = notice.get_body(("plain",)).get_content()
    html = notice.get_body(("html",)).get_content()
    assert receipt.location in text
    assert f'href="{receipt.location}"' in html

    [listed] = store.list_documents(ACCOUNT)
    assert listed.invoice_number == INVOICE_NUMBER and listed.key == key
    assert listed.sha256 == hashlib.sha256(pdf_bytes).hexdigest()
    assert listed.size == len(pdf_bytes) and listed.path == document
    assert listed.token == token
    assert store.find(token) == listed
    assert store.find("A" * 43) is None


def test_portal_notice_passes_the_eml_transport_check(tmp_path, pdf_bytes):
    store = PortalStore(tmp_path / "portal")
    channel = PortalChannel(store, PORTAL_URL, EmlFolderTransport(tmp_path / "outbox"))
    key = key_of("portal-eml")

    receipt = channel.send(portal_envelope(channel, pdf_bytes, key))

    assert receipt.reference == message_id_for(notice_key(key), DOMAIN)
    [eml] = (tmp_path / "outbox").glob("*/*.eml")
    assert eml.name.startswith(INVOICE_NUMBER)
    written = BytesParser(policy=policy.default).parsebytes(eml.read_bytes())
    assert receipt.location in written.get_body(("plain",)).get_content()


def test_portal_publishing_is_idempotent_and_never_replaces_a_document(tmp_path, pdf_bytes):
    store = PortalStore(tmp_path / "portal")
    key = key_of("portal-twice")
    first = store.publish(ACCOUNT, INVOICE_NUMBER, pdf_bytes, "INV.pdf", key)
    again = store.publish(ACCOUNT, INVOICE_NUMBER, pdf_bytes, "INV.pdf", key)

    assert first.new and not again.new
    assert (again.token, again.published_at, again.path) == (
        first.token, first.published_at, first.path)
    invoice_dir = tmp_path / "portal" / ACCOUNT / INVOICE_NUMBER
    assert sorted(p.name for p in invoice_dir.iterdir()) == ["INV.pdf"]
    assert len(store.list_documents(ACCOUNT)) == 1

    # A second delivery of the same document (say to a corrected address) reuses the file.
    other = store.publish(ACCOUNT, INVOICE_NUMBER, pdf_bytes, "INV.pdf", key_of("portal-2nd"))
    assert other.token != first.token and other.path == first.path
    assert sorted(p.name for p in invoice_dir.iterdir()) == ["INV.pdf"]
    assert len(store.list_documents(ACCOUNT)) == 2

    with pytest.raises(PermanentDeliveryError, match="credit note"):
        store.publish(ACCOUNT, INVOICE_NUMBER, pdf_bytes + b"\n% changed", "INV.pdf",
                      key_of("portal-3rd"))
    assert (invoice_dir / "INV.pdf").read_bytes() == pdf_bytes


def test_portal_tokens_are_stable_per_store_and_secret(tmp_path):
    key = key_of("portal-token")
    store = PortalStore(tmp_path / "portal")
    token = store.token_for(key)
    assert PortalStore(tmp_path / "portal").token_for(key) == token
    assert PortalStore(tmp_path / "elsewhere").token_for(key) != token
    assert PortalStore(tmp_path / "x", secret=b"k" * 32).token_for(key) != token
    secret = tmp_path / "portal" / ".link-secret"
    assert len(secret.read_bytes()) == 32
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600


def test_portal_keeps_the_publication_when_the_notice_fails(aws, tmp_path,  # noqa: F811
                                                            pdf_bytes):
    aws.client("sesv2").create_email_identity(EmailIdentity=DOMAIN)
    store = PortalStore(tmp_path / "portal")
    down = PortalChannel(store, PORTAL_URL, ses(aws, f"http://127.0.0.1:{closed_port()}"))
    key = key_of("portal-retry")
    envelope = portal_envelope(down, pdf_bytes, key)

    with pytest.raises(TransientDeliveryError):
        down.send(envelope)
    [published] = store.list_documents(ACCOUNT)

    receipt = PortalChannel(store, PORTAL_URL, ses(aws)).send(envelope)
    assert store.list_documents(ACCOUNT) == [published]
    assert receipt.location.endswith(published.token)
    assert len(aws.sent_emails()) == 1


def test_portal_refuses_a_notice_with_another_link(tmp_path, pdf_bytes):
    store = PortalStore(tmp_path / "portal")
    channel = PortalChannel(store, PORTAL_URL, mail=SesTransport("eu-central-1", client=object()))
    envelope = portal_envelope(channel, pdf_bytes, key_of("portal-stale"),
                               link=f"{PORTAL_URL}/documents/stale-token-from-another-secret")
    with pytest.raises(PermanentDeliveryError, match="does not carry the link"):
        channel.send(envelope)
    assert store.list_documents(ACCOUNT) == []


def test_notice_key_leads_back_to_the_portal_delivery():
    key = key_of("portal-derived")
    assert notice_key(key) == key + "-notice"
    assert portal_key_of(notice_key(key)) == key
    assert portal_key_of(key) is None
    with pytest.raises(ValueError, match="too long"):
        notice_key("k" * 122)


# --- EDI -------------------------------------------------------------------------------


def edi_envelope(payload: bytes, key: str, *, recipient: str = BUYER_PEPPOL,
                 content_type: str = "application/xml", filename: str = "INV.xml") -> Envelope:
    return Envelope(
        key=key, invoice_id="129", invoice_number=INVOICE_NUMBER, document_id="doc-1",
        channel=EDI, recipient=recipient, payload=payload, filename=filename,
        content_type=content_type, sender_id=SELLER_PEPPOL,
    )


def peppol_example(name: str) -> bytes:
    return (EXAMPLES / "peppol-bis3-examples" / name).read_bytes()


def test_edi_folder_drop_writes_payload_and_sidecar(tmp_path):
    payload = peppol_example("base-example.xml")
    key = key_of("edi-folder")
    outbound = tmp_path / "edi-outbound"

    receipt = EdiDropChannel(str(outbound)).send(edi_envelope(payload, key))

    assert sorted(p.name for p in outbound.iterdir()) == [f"{key}.json", f"{key}.xml"]
    assert (outbound / f"{key}.xml").read_bytes() == payload
    assert receipt.location == str(outbound / f"{key}.xml")
    sha256 = hashlib.sha256(payload).hexdigest()
    assert receipt.reference == f"sha256:{sha256}"
    sidecar = json.loads((outbound / f"{key}.json").read_text())
    assert sidecar["sender"] == {"scheme": "iso6523-actorid-upis", "value": SELLER_PEPPOL}
    assert sidecar["receiver"] == {"scheme": "iso6523-actorid-upis", "value": BUYER_PEPPOL}
    assert sidecar["document_type"] == {"scheme": "busdox-docid-qns",
                                        "value": UBL_INVOICE_TYPE}
    assert sidecar["process"] == {"scheme": "cenbii-procid-ubl", "value": PEPPOL_PROCESS}
    assert sidecar["instance_identifier"] == key
    assert (sidecar["sha256"], sidecar["size"]) == (sha256, len(payload))
    assert (sidecar["syntax"], sidecar["kind"], sidecar["file"]) == ("ubl", "invoice",
                                                                     f"{key}.xml")
    assert sidecar["invoice_number"] == INVOICE_NUMBER


def test_edi_resend_overwrites_the_same_files(tmp_path):
    outbound = tmp_path / "edi-outbound"
    channel = EdiDropChannel(str(outbound))
    key = key_of("edi-resend")
    channel.send(edi_envelope(peppol_example("base-example.xml"), key))
    corrected = peppol_example("vat-category-Z.xml")
    channel.send(edi_envelope(corrected, key))
    assert sorted(p.name for p in outbound.iterdir()) == [f"{key}.json", f"{key}.xml"]
    assert (outbound / f"{key}.xml").read_bytes() == corrected
    assert json.loads((outbound / f"{key}.json").read_text())["sha256"] == (
        hashlib.sha256(corrected).hexdigest())


def test_edi_names_the_credit_note_document_type(tmp_path):
    document = describe_document(peppol_example("base-creditnote-correction.xml"))
    assert document.document_type_id == UBL_CREDIT_NOTE_TYPE
    assert (document.syntax, document.kind, document.extension) == ("ubl", "credit_note",
                                                                    ".xml")


def test_edi_drops_a_facturx_pdf_with_its_cii_document_type(tmp_path, pdf_bytes):
    cii = (EXAMPLES / "en16931-cii-examples" / "CII_example1.xml").read_bytes()
    facturx_pdf = facturx.generate_from_binary(pdf_bytes, cii, check_xsd=False)
    key = key_of("edi-facturx")
    outbound = tmp_path / "edi-outbound"

    EdiDropChannel(str(outbound), sender_id=SELLER_PEPPOL).send(Envelope(
        key=key, invoice_id="129", invoice_number=INVOICE_NUMBER, document_id="doc-1",
        channel=EDI, recipient="9930:DE123456789", payload=facturx_pdf, filename="INV.pdf",
        content_type="application/pdf",
    ))

    assert (outbound / f"{key}.pdf").read_bytes() == facturx_pdf
    sidecar = json.loads((outbound / f"{key}.json").read_text())
    assert sidecar["document_type"]["value"] == CII_EN16931_TYPE
    assert (sidecar["syntax"], sidecar["kind"]) == ("factur-x", "invoice")
    assert sidecar["receiver"]["value"] == "9930:DE123456789"
    assert sidecar["process"] is None  # not claimed for the Peppol billing process


@pytest.mark.parametrize("recipient", ["", "   ", "DE123456789", "0088:"])
def test_edi_without_a_receiver_participant_id_is_an_invalid_recipient(tmp_path, recipient):
    outbound = tmp_path / "edi-outbound"
    with pytest.raises(InvalidRecipientError, match="Peppol participant id"):
        EdiDropChannel(str(outbound)).send(
            edi_envelope(peppol_example("base-example.xml"), key_of("edi-none"),
                         recipient=recipient))
    assert not outbound.exists() or list(outbound.iterdir()) == []


def test_edi_refuses_a_payload_that_is_not_an_einvoice(tmp_path, pdf_bytes):
    with pytest.raises(PermanentDeliveryError, match="without an embedded Factur-X XML"):
        EdiDropChannel(str(tmp_path)).send(
            edi_envelope(pdf_bytes, key_of("edi-plain-pdf"), content_type="application/pdf"))


def test_edi_s3_drop_on_moto(aws):  # noqa: F811
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="edi-out",
                     CreateBucketConfiguration={"LocationConstraint": aws.region})
    channel = EdiDropChannel("s3://edi-out/peppol/outbound/", region=aws.region,
                             endpoint_url=aws.endpoint_url)
    payload = peppol_example("base-example.xml")
    key = key_of("edi-s3")

    receipt = channel.send(edi_envelope(payload, key))
    channel.send(edi_envelope(payload, key))

    listed = s3.list_objects_v2(Bucket="edi-out")["Contents"]
    assert sorted(item["Key"] for item in listed) == [
        f"peppol/outbound/{key}.json", f"peppol/outbound/{key}.xml"]
    assert receipt.location == f"s3://edi-out/peppol/outbound/{key}.xml"
    stored = s3.get_object(Bucket="edi-out", Key=f"peppol/outbound/{key}.xml")
    assert stored["Body"].read() == payload
    assert receipt.reference == stored["ETag"].strip('"')
    sidecar = json.loads(
        s3.get_object(Bucket="edi-out", Key=f"peppol/outbound/{key}.json")["Body"].read())
    assert sidecar["document_type"]["value"] == UBL_INVOICE_TYPE
    assert sidecar["sha256"] == hashlib.sha256(payload).hexdigest()


def test_edi_s3_missing_bucket_keeps_the_invoices_queued(aws):  # noqa: F811
    """A missing bucket is a fault of the setup, not of the invoice: nothing fails over."""
    channel = EdiDropChannel("s3://no-such-bucket/out", region=aws.region,
                             endpoint_url=aws.endpoint_url)
    with pytest.raises(ChannelUnavailableError, match="NoSuchBucket.*no-such-bucket exists"):
        channel.send(edi_envelope(peppol_example("base-example.xml"), key_of("edi-nobucket")))


def test_messages_whose_keys_share_a_readable_prefix_get_files_of_their_own(tmp_path):
    day = dt.date(2026, 12, 5)
    first = write_eml_once(tmp_path, "portal sign-in", "portal-signin-" + "a" * 32, day, b"1")
    second = write_eml_once(tmp_path, "portal sign-in", "portal-signin-" + "b" * 32, day, b"2")
    again = write_eml_once(tmp_path, "portal sign-in", "portal-signin-" + "a" * 32, day, b"1")

    assert first != second
    assert (first.read_bytes(), second.read_bytes()) == (b"1", b"2")
    assert again == first
    digest = hashlib.sha256(("portal-signin-" + "a" * 32).encode()).hexdigest()[:12]
    assert first.name == f"portal_sign-in-{digest}.eml"


def test_an_outbox_key_keeps_its_first_twelve_characters_in_the_file_name():
    key = hashlib.sha256(b"invoice").hexdigest()
    assert eml_file_name("INV-1", key) == f"INV-1-{key[:12]}.eml"
    assert eml_file_name("INV-1", key + "-notice") == f"INV-1-{key[:12]}.eml"
