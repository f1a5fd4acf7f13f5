"""X12 810 interchanges through the EDI drop: folder, S3 (moto) and SFTP (asyncssh).

The interchanges here are written out by hand, segment by segment, so the expected
control numbers, ids and kinds are read off the text, not computed by q2c.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from aws_server import aws, aws_server  # noqa: F401 (pytest fixtures)
from sftp_server import sftp_server_fixture  # noqa: F401 (pytest fixture)

from q2c.delivery.edi import EdiDropChannel, describe_document, is_x12, x12_party
from q2c.delivery.envelope import EDI, Envelope
from q2c.delivery.errors import InvalidRecipientError, PermanentDeliveryError

INVOICE_NUMBER = "INV-2026-0001"
KEY = hashlib.sha256(b"x12-delivery").hexdigest()


def isa(sender: str = "NORTHWIND", receiver: str = "ACMEAP", control: str = "000000017",
        *, element: str = "*", version: str = "00401", repetition: str = "U") -> str:
    """An ISA segment without its terminator: 105 characters, every element at its width."""
    return element.join([
        "ISA", "00", " " * 10, "00", " " * 10, "ZZ", f"{sender:<15}", "ZZ",
        f"{receiver:<15}", "260302", "0900", repetition, version, control, "0", "P", ">",
    ])


def interchange(*, big07: str = "DI", transaction: str = "810", version: str = "004010",
                element: str = "*", terminator: str = "~\n", receiver: str = "ACMEAP",
                lead: str = "") -> bytes:
    """Interchange 17, group 17, transaction set 0017: one small 810 from NORTHWIND."""
    segments = [
        f"GS*IN*NORTHWIND*{receiver}*20260302*0900*17*X*{version}",
        f"ST*{transaction}*0017",
        f"BIG*20260302*{INVOICE_NUMBER}**PO-77***{big07}",
        "N1*BT*Acme Stores*92*ACME-01",
        "IT1*1*10*EA*9.5**VN*SEAT-M",
        "TDS*9500",
        "CTT*1",
        "SE*7*0017",
        "GE*1*17",
        "IEA*1*000000017",
    ]
    isa_version = "00501" if version.startswith("005") else "00401"
    head = isa(receiver=receiver, element=element, version=isa_version,
               repetition="^" if isa_version == "00501" else "U")
    body = [segment.replace("*", element) for segment in segments]
    return (lead + terminator.join([head, *body]) + terminator).encode("ascii")


def envelope(payload: bytes, recipient: str = "ZZ:ACMEAP") -> Envelope:
    return Envelope(
        key=KEY, invoice_id="inv-1", invoice_number=INVOICE_NUMBER, document_id="doc-1",
        channel=EDI, recipient=recipient, payload=payload, filename=f"{INVOICE_NUMBER}.x12",
        content_type="application/edi-x12",
    )


def test_the_hand_written_isa_is_106_characters_with_its_terminator():
    assert len(isa()) + 1 == 106
    assert interchange()[105:106] == b"~"


def test_describe_reads_an_x12_810_invoice():
    document = describe_document(interchange(), INVOICE_NUMBER)

    assert (document.syntax, document.kind, document.extension) == ("x12", "invoice", ".x12")
    assert document.document_type_id == "X12 810 004010"
    assert document.process_id == ""
    ids = document.interchange
    assert (ids.sender, ids.receiver) == ("ZZ:NORTHWIND", "ZZ:ACMEAP")
    assert (ids.isa_control, ids.gs_control, ids.st_control) == ("000000017", "17", "0017")


def test_describe_reads_a_credit_memo_from_big07_in_5010_with_other_delimiters():
    payload = interchange(big07="CR", version="005010VICS", element="|", terminator="\r\n",
                          lead="\n  ")
    assert is_x12(payload)

    document = describe_document(payload, INVOICE_NUMBER)

    assert (document.syntax, document.kind) == ("x12", "credit_note")
    assert document.document_type_id == "X12 810 005010VICS"
    assert document.interchange.st_control == "0017"


@pytest.mark.parametrize(("payload", "message"), [
    (interchange(transaction="850"), r"transaction set\(s\) 850 \(ST01\), not exactly one 810"),
    (isa().encode()[:80], "ISA segment has fewer than 16 elements"),
    (isa().replace("*00401*", "*0401*").encode() + b"~GS*IN~",
     "ISA segment is 105 characters with its terminator '~', not the fixed 106"),
])
def test_describe_refuses_an_interchange_it_cannot_route(payload, message):
    with pytest.raises(PermanentDeliveryError, match=f"invoice {INVOICE_NUMBER}: .*{message}"):
        describe_document(payload, INVOICE_NUMBER)


def test_x12_party_ids():
    assert x12_party("ZZ:ACMEAP") == "ZZ:ACMEAP"
    assert x12_party(" zz:ACMEAP ") == "ZZ:ACMEAP"
    assert x12_party("01:123456789") == "01:123456789"
    assert x12_party("0088:5790000435951") is None  # a Peppol participant id
    assert x12_party("ZZ:" + "X" * 16) is None  # ISA08 holds 15 characters
    assert x12_party("") is None


def test_x12_folder_drop_names_the_isa_parties_and_control_numbers(tmp_path):
    payload = interchange()
    outbound = tmp_path / "outbound"

    receipt = EdiDropChannel(str(outbound)).send(envelope(payload))

    assert sorted(p.name for p in outbound.iterdir()) == [f"{KEY}.json", f"{KEY}.x12"]
    assert (outbound / f"{KEY}.x12").read_bytes() == payload
    assert receipt.location == str(outbound / f"{KEY}.x12")
    sidecar = json.loads((outbound / f"{KEY}.json").read_text())
    assert sidecar["sender"] == {"scheme": "x12-isa", "value": "ZZ:NORTHWIND",
                                 "qualifier": "ZZ", "id": "NORTHWIND"}
    assert sidecar["receiver"] == {"scheme": "x12-isa", "value": "ZZ:ACMEAP",
                                   "qualifier": "ZZ", "id": "ACMEAP"}
    assert sidecar["control_numbers"] == {"isa13": "000000017", "gs06": "17", "st02": "0017"}
    assert sidecar["document_type"] == {"scheme": "x12", "value": "X12 810 004010"}
    assert sidecar["process"] is None
    assert (sidecar["syntax"], sidecar["kind"], sidecar["file"]) == ("x12", "invoice",
                                                                     f"{KEY}.x12")
    assert sidecar["sha256"] == hashlib.sha256(payload).hexdigest()
    assert sidecar["invoice_number"] == INVOICE_NUMBER


def test_x12_drop_refuses_a_recipient_other_than_the_isa_receiver(tmp_path):
    outbound = tmp_path / "outbound"
    with pytest.raises(PermanentDeliveryError,
                       match="addressed to ZZ:OTHERCO, but its X12 interchange names receiver "
                             r"ZZ:ACMEAP \(ISA07/ISA08\)"):
        EdiDropChannel(str(outbound)).send(envelope(interchange(), recipient="ZZ:OTHERCO"))
    assert not outbound.exists()


@pytest.mark.parametrize("recipient", ["", "0088:5790000435951", "ACMEAP"])
def test_x12_drop_without_an_isa_receiver_id_is_an_invalid_recipient(tmp_path, recipient):
    outbound = tmp_path / "outbound"
    with pytest.raises(InvalidRecipientError, match="no X12 interchange id for the buyer"):
        EdiDropChannel(str(outbound)).send(envelope(interchange(), recipient=recipient))
    assert not outbound.exists()


def test_x12_s3_drop_on_moto(aws):  # noqa: F811
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="x12-out",
                     CreateBucketConfiguration={"LocationConstraint": aws.region})
    payload = interchange(big07="CR")

    receipt = EdiDropChannel("s3://x12-out/acme/", region=aws.region,
                             endpoint_url=aws.endpoint_url).send(envelope(payload))

    assert receipt.location == f"s3://x12-out/acme/{KEY}.x12"
    assert s3.get_object(Bucket="x12-out", Key=f"acme/{KEY}.x12")["Body"].read() == payload
    sidecar = json.loads(s3.get_object(Bucket="x12-out", Key=f"acme/{KEY}.json")["Body"].read())
    assert (sidecar["kind"], sidecar["control_numbers"]["st02"]) == ("credit_note", "0017")


def test_x12_sftp_drop_lands_the_interchange_and_its_sidecar(sftp_server):
    payload = interchange()
    drop = EdiDropChannel(sftp_server.url("/outbound"), key_path=sftp_server.key_path,
                          known_hosts_path=sftp_server.known_hosts_path, timeout=10)

    receipt = drop.send(envelope(payload))

    outbound = sftp_server.root / "outbound"
    assert sorted(p.name for p in outbound.iterdir()) == [f"{KEY}.json", f"{KEY}.x12"]
    assert (outbound / f"{KEY}.x12").read_bytes() == payload
    assert receipt.location == f"{sftp_server.url('/outbound')}/{KEY}.x12"
    sidecar = json.loads((outbound / f"{KEY}.json").read_text())
    assert sidecar["receiver"]["value"] == "ZZ:ACMEAP"
    assert sidecar["control_numbers"] == {"isa13": "000000017", "gs06": "17", "st02": "0017"}
