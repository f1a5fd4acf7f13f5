"""E-invoice delivery: drop the document where a Peppol access point picks it up.

q2c does not speak AS4 itself; an access point (a service provider or a self-hosted one)
watches an outbound folder or S3 prefix. For each delivery two files land there, named by
the idempotency key so a resend after a crash overwrites the same objects instead of
adding a second invoice:

    <target>/<key>.xml  (or .pdf)   the UBL 2.1 / CII XML, or the Factur-X PDF
    <target>/<key>.json             the routing sidecar, written last

The sidecar carries what a Standard Business Document Header (SBDH) would: sender and
receiver Peppol participant ids, the document type id and process id (read from the
document itself, so they always match it), the instance identifier (the key) and the
SHA-256 of the payload. An access point should treat the sidecar as the signal that the
pair is complete. Folder writes go through a temporary file and a rename, so the watcher
never sees a half-written file.
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
    InvalidRecipientError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from q2c.delivery.ses import aws_transport_error

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


@dataclass(frozen=True)
class EinvoiceDocument:
    """What the drop needs to know about a payload, read from the payload itself."""

    syntax: str  # ubl, cii or factur-x
    kind: str  # invoice or credit_note
    customization_id: str
    document_type_id: str
    process_id: str
    extension: str


def participant_id(value: str | None) -> str | None:
    """The participant id as `<scheme>:<id>`, or None when `value` is not one."""
    match = _PARTICIPANT.fullmatch((value or "").strip())
    return match.group(1) if match else None


def describe_document(payload: bytes, invoice_number: str = "") -> EinvoiceDocument:
    """Read syntax, kind, document type id and process id from a UBL, CII or Factur-X file.

    Raises:
        PermanentDeliveryError: The payload is none of these, or lacks its customization
            id (BT-24); rendering it again from the canonical invoice is the fix.
    """
    label = f"invoice {invoice_number}" if invoice_number else "the e-invoice"
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


class EdiDropChannel:
    """Deliver EDI envelopes to a folder or an `s3://bucket/prefix` (Settings.einvoice_target).

    Args:
        target: An outbound folder, or `s3://bucket/prefix`.
        sender_id: The seller's Peppol participant id, used when an envelope carries none
            (Settings.seller.peppol_id).
        region: The bucket's region, for S3 targets.
        endpoint_url: Another S3-compatible endpoint (MinIO, a test server).
        client: A ready `s3` client; built from the default AWS credential chain when
            omitted.
    """

    def __init__(
        self,
        target: str,
        *,
        sender_id: str | None = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        client: Any | None = None,
    ) -> None:
        self.target = target
        self.sender_id = sender_id
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
        if not _KEY_PATTERN.fullmatch(envelope.key):
            raise ValueError(f"delivery key for invoice {envelope.invoice_number} cannot name "
                             "a file: use the outbox's key")
        document = describe_document(envelope.payload, envelope.invoice_number)
        payload_name = f"{envelope.key}{document.extension}"
        sidecar = _sidecar(envelope, document, sender, receiver, payload_name)
        if self.bucket:
            receipt = self._put_s3(envelope, payload_name, sidecar)
        else:
            receipt = self._write_folder(envelope, payload_name, sidecar)
        logger.info("invoice %s dropped for the access point at %s (%s, %s)",
                    envelope.invoice_number, receipt.location, document.syntax, document.kind)
        return receipt

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


def _sidecar(
    envelope: Envelope, document: EinvoiceDocument, sender: str, receiver: str,
    payload_name: str,
) -> dict:
    return {
        "instance_identifier": envelope.key,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "sender": {"scheme": PARTICIPANT_SCHEME, "value": sender},
        "receiver": {"scheme": PARTICIPANT_SCHEME, "value": receiver},
        "document_type": {"scheme": DOCUMENT_TYPE_SCHEME, "value": document.document_type_id},
        "process": ({"scheme": PROCESS_SCHEME, "value": document.process_id}
                    if document.process_id else None),
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
