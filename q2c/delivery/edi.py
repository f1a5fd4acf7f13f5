"""E-invoice delivery: drop the document where a Peppol access point or an EDI partner picks it up.

q2c does not speak AS4 itself; an access point (a service provider or a self-hosted one)
watches an outbound folder or S3 prefix. For each delivery two files land there, named by
the idempotency key so a resend after a crash overwrites the same objects instead of
adding a second invoice:

    <target>/<key>.xml  (or .pdf, .x12)   the UBL 2.1 / CII XML, the Factur-X PDF, or an
                                          ANSI X12 810 interchange
    <target>/<key>.json                   the routing sidecar, written last

The sidecar carries what a Standard Business Document Header (SBDH) would: sender and
receiver Peppol participant ids, the document type id and process id (read from the
document itself, so they always match it), the instance identifier (the key) and the
SHA-256 of the payload. An access point should treat the sidecar as the signal that the
pair is complete. Folder writes go through a temporary file and a rename, so the watcher
never sees a half-written file.

X12 trading partners are addressed by their interchange ids, not by Peppol: for an X12
payload the envelope's recipient is `<ISA07 qualifier>:<ISA08 id>` and must be the
receiver the interchange itself names, and the sidecar carries the ISA sender and
receiver and the control numbers (ISA13, GS06, ST02) a 997 will quote back. Such partners
often take files only on their own SFTP server: the target may also be
`sftp://user@host:port/path` (`q2c.delivery.sftp`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from lxml import etree

from q2c.delivery.envelope import EDI, ChannelReceipt, Envelope
from q2c.delivery.errors import (
    DeliveryConfigurationError,
    InvalidRecipientError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from q2c.delivery.ses import aws_transport_error
from q2c.delivery.sftp import DEFAULT_TIMEOUT, SftpClient, is_sftp_target

logger = logging.getLogger(__name__)

PARTICIPANT_SCHEME = "iso6523-actorid-upis"
DOCUMENT_TYPE_SCHEME = "busdox-docid-qns"
PROCESS_SCHEME = "cenbii-procid-ubl"
PEPPOL_BILLING_PROCESS = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"

UBL_INVOICE_NS = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
UBL_CREDIT_NOTE_NS = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
CII_NS = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
_NS = {
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
    "rsm": CII_NS,
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
}
# UNTDID 1001 codes that make a CII document a credit note.
_CII_CREDIT_CODES = frozenset({"81", "83", "381", "396", "532"})
# "<ICD or EAS code>:<identifier>", e.g. 0088:5790000435951 or 9930:DE811907980.
_PARTICIPANT = re.compile(r"(?:iso6523-actorid-upis::)?(\d{4}:[^\s:]{1,50})", re.IGNORECASE)
_KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{12,128}")

X12_ID_SCHEME = "x12-isa"
X12_INVOICE = "810"
# An ISA segment is fixed width: 106 characters up to and including the segment terminator.
_ISA_LENGTH = 106
# "<ISA qualifier>:<ISA id>", e.g. ZZ:ACMEAP or 01:123456789.
_X12_PARTY = re.compile(r"([A-Za-z0-9]{2}):(\S[^:]{0,14})")


@dataclass(frozen=True)
class X12Interchange:
    """The envelope of one X12 810 interchange: who, to whom, and its control numbers."""

    sender_qualifier: str  # ISA05
    sender_id: str  # ISA06
    receiver_qualifier: str  # ISA07
    receiver_id: str  # ISA08
    isa_control: str  # ISA13
    gs_control: str  # GS06
    st_control: str  # ST02
    version: str  # GS08, e.g. 004010 or 005010 plus a partner's suffix

    @property
    def sender(self) -> str:
        return f"{self.sender_qualifier}:{self.sender_id}"

    @property
    def receiver(self) -> str:
        return f"{self.receiver_qualifier}:{self.receiver_id}"


@dataclass(frozen=True)
class EinvoiceDocument:
    """What the drop needs to know about a payload, read from the payload itself."""

    syntax: str  # ubl, cii, factur-x or x12
    kind: str  # invoice or credit_note
    customization_id: str
    document_type_id: str
    process_id: str
    extension: str
    interchange: X12Interchange | None = None  # for x12 only


def participant_id(value: str | None) -> str | None:
    """The participant id as `<scheme>:<id>`, or None when `value` is not one."""
    match = _PARTICIPANT.fullmatch((value or "").strip())
    return match.group(1) if match else None


def is_x12(payload: bytes) -> bool:
    """True for an X12 interchange: the payload starts with ISA after optional whitespace."""
    return payload.lstrip()[:3] == b"ISA"


def x12_party(value: str | None) -> str | None:
    """An X12 interchange id as `<qualifier>:<id>`, or None when `value` is not one."""
    match = _X12_PARTY.fullmatch((value or "").strip())
    return f"{match.group(1).upper()}:{match.group(2).strip()}" if match else None


def describe_document(payload: bytes, invoice_number: str = "") -> EinvoiceDocument:
    """Read syntax, kind, document type id and process id from a UBL, CII or Factur-X file,
    or the envelope of an X12 810 interchange.

    Raises:
        PermanentDeliveryError: The payload is none of these, or lacks its customization
            id (BT-24), or its X12 envelope cannot be read; rendering it again from the
            canonical invoice is the fix.
    """
    label = f"invoice {invoice_number}" if invoice_number else "the e-invoice"
    if is_x12(payload):
        return _describe_x12(payload, label)
    syntax, extension, xml = "ubl", ".xml", payload
    if payload.startswith(b"%PDF-"):
        syntax, extension, xml = "factur-x", ".pdf", _embedded_xml(payload, label)
    try:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
        root = etree.fromstring(xml, parser=parser)
    except etree.XMLSyntaxError as exc:
        raise PermanentDeliveryError(
            f"{label} is not well-formed XML ({exc}): render it again"
        ) from exc
    name = etree.QName(root)
    if name.namespace in (UBL_INVOICE_NS, UBL_CREDIT_NOTE_NS):
        customization = root.findtext("cbc:CustomizationID", namespaces=_NS)
        profile = root.findtext("cbc:ProfileID", namespaces=_NS)
        kind = "credit_note" if name.localname == "CreditNote" else "invoice"
        version = "2.1"
    elif name.namespace == CII_NS:
        syntax = "cii" if syntax == "ubl" else syntax
        context = "rsm:ExchangedDocumentContext/"
        customization = root.findtext(
            context + "ram:GuidelineSpecifiedDocumentContextParameter/ram:ID", namespaces=_NS
        )
        profile = root.findtext(
            context + "ram:BusinessProcessSpecifiedDocumentContextParameter/ram:ID",
            namespaces=_NS,
        )
        type_code = (root.findtext("rsm:ExchangedDocument/ram:TypeCode", namespaces=_NS)
                     or "").strip()
        kind = "credit_note" if type_code in _CII_CREDIT_CODES else "invoice"
        version = "D16B"
    else:
        raise PermanentDeliveryError(
            f"{label} is a {name.localname} document in {name.namespace or 'no namespace'}, "
            "not a UBL Invoice/CreditNote or a CII CrossIndustryInvoice: render it again"
        )
    customization = (customization or "").strip()
    if not customization:
        raise PermanentDeliveryError(
            f"{label} has no customization id (BT-24), so its Peppol document type is "
            "unknown: render it again with the e-invoice builder"
        )
    return EinvoiceDocument(
        syntax=syntax,
        kind=kind,
        customization_id=customization,
        document_type_id=f"{name.namespace}::{name.localname}##{customization}::{version}",
        # A CII or Factur-X file names no Peppol process unless it carries one: it goes to
        # a platform that takes Factur-X, not through the Peppol billing process.
        process_id=(profile or "").strip() or (PEPPOL_BILLING_PROCESS if syntax == "ubl" else ""),
        extension=extension,
    )


def _describe_x12(payload: bytes, label: str) -> EinvoiceDocument:
    """Read the envelope of one X12 810: ISA, GS, ST and BIG07 (CR marks a credit memo).

    Only what routing needs is read here; the X12 validator checks the rest before the
    interchange is queued.
    """
    text = payload.decode("latin-1").lstrip()
    separator = text[3:4]
    parts = text.split(separator, 16) if separator else []
    if len(parts) < 17 or len(parts[16]) < 2:
        raise PermanentDeliveryError(
            f"{label}: the X12 ISA segment has fewer than 16 elements followed by a segment "
            "terminator: generate the 810 again"
        )
    # ISA16 is one character and the segment terminator follows it.
    isa, terminator = [*parts[:16], parts[16][0]], parts[16][1]
    width = len(separator.join(isa)) + 1
    if width != _ISA_LENGTH or terminator.isalnum() or terminator == separator:
        raise PermanentDeliveryError(
            f"{label}: the X12 ISA segment is {width} characters with its terminator "
            f"{terminator!r}, not the fixed {_ISA_LENGTH}: generate the 810 again"
        )
    segments: dict[str, list[list[str]]] = {}
    for raw in text.split(terminator):
        elements = raw.strip("\r\n").split(separator)
        if elements[0]:
            segments.setdefault(elements[0], []).append(elements)

    def first(tag: str, element: int) -> str:
        found = segments.get(tag)
        if not found or len(found[0]) <= element or not found[0][element].strip():
            raise PermanentDeliveryError(
                f"{label}: the X12 interchange has no {tag}{element:02d}: generate the 810 "
                "again"
            )
        return found[0][element].strip()

    transaction_sets = [st[1] if len(st) > 1 else "" for st in segments.get("ST", [])]
    if transaction_sets != [X12_INVOICE]:
        raise PermanentDeliveryError(
            f"{label}: the X12 interchange holds transaction set(s) "
            f"{', '.join(transaction_sets) or 'none'} (ST01), not exactly one 810 invoice: "
            "deliver one 810 per interchange"
        )
    version = first("GS", 8)
    big = segments.get("BIG", [[]])[0]
    kind = "credit_note" if len(big) > 7 and big[7].strip() == "CR" else "invoice"
    return EinvoiceDocument(
        syntax="x12",
        kind=kind,
        customization_id=version,
        document_type_id=f"X12 {X12_INVOICE} {version}",
        process_id="",
        extension=".x12",
        interchange=X12Interchange(
            sender_qualifier=isa[5].strip(), sender_id=isa[6].strip(),
            receiver_qualifier=isa[7].strip(), receiver_id=isa[8].strip(),
            isa_control=isa[13].strip(), gs_control=first("GS", 6),
            st_control=first("ST", 2), version=version,
        ),
    )


class EdiDropChannel:
    """Deliver EDI envelopes to a folder, an `s3://bucket/prefix` or an
    `sftp://user@host:port/path` (Settings.einvoice_target).

    Args:
        target: An outbound folder, `s3://bucket/prefix` or `sftp://user@host:port/path`.
        sender_id: The seller's Peppol participant id, used when an envelope carries none
            (Settings.seller.peppol_id).
        region: The bucket's region, for S3 targets.
        endpoint_url: Another S3-compatible endpoint (MinIO, a test server).
        client: A ready `s3` client; built from the default AWS credential chain when
            omitted.
        key_path: For SFTP targets, the private key file q2c logs in with.
        known_hosts_path: For SFTP targets, the known_hosts file holding the server's
            host key; an unknown or changed host key is refused.
        timeout: For SFTP targets, seconds any one network step may take.

    Raises:
        DeliveryConfigurationError: An SFTP target without a key file or known_hosts file.
    """

    def __init__(
        self,
        target: str,
        *,
        sender_id: str | None = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        client: Any | None = None,
        key_path: str | Path | None = None,
        known_hosts_path: str | Path | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.target = target
        self.sender_id = sender_id
        self.sftp: SftpClient | None = None
        if is_sftp_target(target):
            if not key_path or not known_hosts_path:
                raise DeliveryConfigurationError(
                    f"the EDI target {target} is an SFTP server: set the SFTP key file and "
                    "the known_hosts file holding the server's host key"
                )
            self.sftp = SftpClient(target, key_path=key_path,
                                   known_hosts_path=known_hosts_path, timeout=timeout)
            self.bucket, self.prefix, self.folder = None, "", None
            self.client = None
            self.name = "edi:sftp"
            return
        self.bucket, self.prefix, self.folder = _parse_target(target)
        self.client = client
        if self.bucket and client is None:
            self.client = boto3.client(
                "s3",
                region_name=region,
                endpoint_url=endpoint_url,
                config=Config(
                    retries={"total_max_attempts": 1},
                    connect_timeout=10,
                    read_timeout=60,
                    s3={"addressing_style": "path"} if endpoint_url else {},
                ),
            )
        self.name = "edi:s3" if self.bucket else "edi:folder"

    def send(self, envelope: Envelope) -> ChannelReceipt:
        """Write the payload and its sidecar; return where the payload went."""
        if envelope.channel != EDI:
            raise ValueError(
                f"EdiDropChannel delivers edi envelopes, not {envelope.channel!r} "
                f"(invoice {envelope.invoice_number})"
            )
        document: EinvoiceDocument | None = None
        if is_x12(envelope.payload):
            document = describe_document(envelope.payload, envelope.invoice_number)
            sender, receiver = _x12_parties(envelope, document)
        else:
            sender, receiver = self._peppol_parties(envelope)
        if not _KEY_PATTERN.fullmatch(envelope.key):
            raise ValueError(f"delivery key for invoice {envelope.invoice_number} cannot name "
                             "a file: use the outbox's key")
        document = document or describe_document(envelope.payload, envelope.invoice_number)
        payload_name = f"{envelope.key}{document.extension}"
        sidecar = _sidecar(envelope, document, sender, receiver, payload_name)
        if self.sftp is not None:
            receipt = self._put_sftp(envelope, payload_name, sidecar)
        elif self.bucket:
            receipt = self._put_s3(envelope, payload_name, sidecar)
        else:
            receipt = self._write_folder(envelope, payload_name, sidecar)
        logger.info("invoice %s dropped for the access point at %s (%s, %s)",
                    envelope.invoice_number, receipt.location, document.syntax, document.kind)
        return receipt

    def _peppol_parties(self, envelope: Envelope) -> tuple[str, str]:
        receiver = participant_id(envelope.recipient)
        if receiver is None:
            raise InvalidRecipientError(
                f"invoice {envelope.invoice_number} has no Peppol participant id for the "
                f"buyer ({envelope.recipient!r}; '<scheme>:<id>' such as 0088:5790000435951 "
                "is expected): add it to the account in the CRM, or deliver by email"
            )
        sender = participant_id(envelope.sender_id or self.sender_id)
        if sender is None:
            raise PermanentDeliveryError(
                f"invoice {envelope.invoice_number} has no valid Peppol participant id for "
                "the seller: set seller.peppol_id in q2c.yaml (e.g. 9930:DE811907980)"
            )
        return sender, receiver

    def _put_sftp(self, envelope: Envelope, payload_name: str, sidecar: dict) -> ChannelReceipt:
        assert self.sftp is not None
        self.sftp.upload(
            [(payload_name, envelope.payload), (f"{envelope.key}.json", _json_bytes(sidecar))],
            what=f"upload of invoice {envelope.invoice_number}",
        )
        location = f"{self.sftp.location.url.rstrip('/')}/{payload_name}"
        return ChannelReceipt(location=location, reference=f"sha256:{sidecar['sha256']}")

    def _write_folder(
        self, envelope: Envelope, payload_name: str, sidecar: dict
    ) -> ChannelReceipt:
        folder = Path(self.folder)
        target = folder / payload_name
        try:
            _replace_file(target, envelope.payload)
            _replace_file(folder / f"{envelope.key}.json", _json_bytes(sidecar))
        except PermissionError as exc:
            raise PermanentDeliveryError(
                f"cannot write invoice {envelope.invoice_number} to {folder}: make the "
                "outbound folder writable by this process (Q2C_EINVOICE_OUTBOUND)"
            ) from exc
        except OSError as exc:
            raise TransientDeliveryError(
                f"writing invoice {envelope.invoice_number} to {folder} failed "
                f"({exc.strerror or exc}): check free disk space and the mount"
            ) from exc
        return ChannelReceipt(location=str(target), reference=f"sha256:{sidecar['sha256']}")

    def _put_s3(self, envelope: Envelope, payload_name: str, sidecar: dict) -> ChannelReceipt:
        key = f"{self.prefix}{payload_name}"
        location = f"s3://{self.bucket}/{key}"
        what = f"upload of invoice {envelope.invoice_number} to {location}"
        try:
            reply = self.client.put_object(
                Bucket=self.bucket, Key=key, Body=envelope.payload,
                ContentType=envelope.content_type,
                Metadata={"q2c-key": envelope.key, "sha256": sidecar["sha256"]},
            )
            self.client.put_object(
                Bucket=self.bucket, Key=f"{self.prefix}{envelope.key}.json",
                Body=_json_bytes(sidecar), ContentType="application/json",
            )
        except Exception as exc:  # boto3 raises many types; all are classified here
            raise aws_transport_error(
                exc, what,
                f"check that bucket {self.bucket} exists and this process may write to it "
                "(Q2C_EINVOICE_OUTBOUND)",
            ) from exc
        return ChannelReceipt(location=location, reference=str(reply.get("ETag", "")).strip('"'))


def _x12_parties(envelope: Envelope, document: EinvoiceDocument) -> tuple[str, str]:
    """ISA sender and receiver; the envelope's recipient must be the interchange's receiver."""
    interchange = document.interchange
    assert interchange is not None
    receiver = x12_party(envelope.recipient)
    if receiver is None:
        raise InvalidRecipientError(
            f"invoice {envelope.invoice_number} has no X12 interchange id for the buyer "
            f"({envelope.recipient!r}; '<ISA07 qualifier>:<ISA08 id>' such as ZZ:ACMEAP is "
            "expected): add the trading partner's id to the account, or deliver by email"
        )
    if receiver != interchange.receiver:
        raise PermanentDeliveryError(
            f"invoice {envelope.invoice_number} is addressed to {receiver}, but its X12 "
            f"interchange names receiver {interchange.receiver} (ISA07/ISA08): generate the "
            "810 again with the buyer's trading-partner profile"
        )
    return interchange.sender, receiver


def _sidecar(
    envelope: Envelope, document: EinvoiceDocument, sender: str, receiver: str,
    payload_name: str,
) -> dict:
    if document.interchange is not None:
        interchange = document.interchange
        routing: dict[str, object] = {
            "sender": {"scheme": X12_ID_SCHEME, "value": sender,
                       "qualifier": interchange.sender_qualifier, "id": interchange.sender_id},
            "receiver": {"scheme": X12_ID_SCHEME, "value": receiver,
                         "qualifier": interchange.receiver_qualifier,
                         "id": interchange.receiver_id},
            "document_type": {"scheme": "x12", "value": document.document_type_id},
            "process": None,
            "control_numbers": {"isa13": interchange.isa_control,
                                "gs06": interchange.gs_control,
                                "st02": interchange.st_control},
        }
    else:
        routing = {
            "sender": {"scheme": PARTICIPANT_SCHEME, "value": sender},
            "receiver": {"scheme": PARTICIPANT_SCHEME, "value": receiver},
            "document_type": {"scheme": DOCUMENT_TYPE_SCHEME,
                              "value": document.document_type_id},
            "process": ({"scheme": PROCESS_SCHEME, "value": document.process_id}
                        if document.process_id else None),
        }
    return {
        "instance_identifier": envelope.key,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **routing,
        "file": payload_name,
        "content_type": envelope.content_type,
        "syntax": document.syntax,
        "kind": document.kind,
        "customization_id": document.customization_id,
        "sha256": hashlib.sha256(envelope.payload).hexdigest(),
        "size": len(envelope.payload),
        "invoice_id": envelope.invoice_id,
        "invoice_number": envelope.invoice_number,
        "document_id": envelope.document_id,
    }


def _embedded_xml(pdf: bytes, label: str) -> bytes:
    from facturx import get_facturx_xml_from_pdf

    try:
        _, xml = get_facturx_xml_from_pdf(pdf, check_xsd=False)
    except Exception as exc:  # the library raises plain Exceptions on unreadable PDFs
        raise PermanentDeliveryError(
            f"{label} is a PDF that cannot be read ({exc}): render it again"
        ) from exc
    if not xml:
        raise PermanentDeliveryError(
            f"{label} is a PDF without an embedded Factur-X XML: render it as Factur-X, or "
            "send the UBL file"
        )
    return xml


def _parse_target(target: str) -> tuple[str | None, str, str | None]:
    """Split `s3://bucket/prefix` into bucket and prefix (ending in '/'), or keep a folder."""
    if not target.startswith("s3://"):
        return None, "", target
    bucket, _, prefix = target[len("s3://"):].partition("/")
    if not bucket:
        raise ValueError(f"e-invoice target {target!r} names no bucket: use s3://bucket/prefix")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else "", None


def _json_bytes(data: dict) -> bytes:
    return json.dumps(data, indent=2, sort_keys=True).encode("utf-8")


def _replace_file(target: Path, payload: bytes) -> None:
    """Write `payload` to `target` through a temporary file and an atomic rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        # mkstemp creates the file for its owner only; the access point may run as another
        # user of the same group.
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
