"""ANSI X12 810s of the invoices whose US customers take them through a trading partner.

The 810 is written from the same EN 16931 model as the Peppol and Factur-X e-invoices, so
all three agree on amounts, parties and lines. The EN 16931 business rules do not bind an
X12 invoice: an invoice that breaks one of them (a non-EU buyer without a VAT id, say) still
gets its 810 from the draft model. What binds it is the partner's profile and q2c's X12
validator: an 810 that fails the validator is held back with its findings.

Control numbers come from the ops store, one series per partner, allocated for the
outbox's document key so that a 997 coming back finds the invoice it acknowledges.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from q2c.delivery.acks import AckProblem, AckReport, read_acknowledgements
from q2c.delivery.errors import ChannelUnavailableError
from q2c.delivery.outbox import Outbox, document_key
from q2c.delivery.policy import load_policy
from q2c.documents.model import InvoiceDocument
from q2c.einvoice.build import build_einvoice
from q2c.einvoice.compliance import EInvoiceNotCompliant
from q2c.einvoice.model import Address
from q2c.settings import Seller, Settings
from q2c.x12.control import ControlNumbers
from q2c.x12.profiles import TradingPartner, load_partners
from q2c.x12.validate import validate_x12
from q2c.x12.writer import X12ValueError, write_810

log = logging.getLogger(__name__)

X12_810 = "x12_810"


class X12Problem(Exception):
    """The 810 of one invoice cannot be sent; `rule` and the message go on its hold."""

    def __init__(self, rule: str, reason: str):
        super().__init__(reason)
        self.rule = rule


@dataclass(frozen=True)
class X12Invoice:
    payload: bytes
    receiver_id: str  # "<ISA07 qualifier>:<ISA08 id>", the EDI envelope's recipient
    partner: str


def partner_profiles(path: Path | None) -> dict[str, TradingPartner]:
    """The trading-partner profiles, or X12Problem naming the file when they cannot be read."""
    try:
        return load_partners(path)
    except (OSError, ValueError) as exc:
        where = path or "q2c/x12/partners.yaml"
        raise X12Problem(
            "X12-PARTNERS",
            f"the trading-partner profiles in {where} cannot be read ({exc}); fix the file "
            "or point Q2C_X12_PARTNERS at a valid one",
        ) from exc


def build_x12(
    doc: InvoiceDocument,
    *,
    partner_name: str | None,
    partners: dict[str, TradingPartner],
    seller: Seller,
    buyer_vat: str | None,
    buyer_address: Address,
    buyer_reference: str,
    controls: ControlNumbers,
) -> X12Invoice:
    """Write and check the 810 of one invoice for the customer's trading partner.

    Raises:
        X12Problem: No such partner profile, a value the partner's delimiters cannot carry,
            or validator findings; the message says what to fix.
    """
    partner = partners.get((partner_name or "").strip().lower())
    if partner is None:
        known = ", ".join(sorted(partners)) or "none"
        raise X12Problem(
            "X12-PARTNER",
            f"the account's trading partner {partner_name!r} has no profile (known: {known});"
            " correct x12_partner on the CRM account or add the profile",
        )

    try:
        einvoice = build_einvoice(
            doc, seller, buyer_vat=buyer_vat, buyer_address=buyer_address,
            buyer_reference=buyer_reference, peppol=False,
        )
    except EInvoiceNotCompliant as exc:
        einvoice = exc.einvoice
        log.info("invoice %s: EN 16931 rules %s do not apply to its X12 810",
                 doc.invoice_number, ", ".join(exc.rules))

    numbers = controls.allocate(partner, document_key(doc.invoice_id), doc.invoice_number)
    created_at = dt.datetime.now(ZoneInfo(seller.timezone)).replace(tzinfo=None)
    try:
        text = write_810(einvoice, partner, numbers, created_at=created_at)
    except X12ValueError as exc:
        raise X12Problem("X12-VALUE", str(exc)) from exc

    findings = validate_x12(text)
    if findings:
        codes = ",".join(sorted({finding.code for finding in findings}))
        details = "; ".join(
            f"{f.segment} (segment {f.position}{', ' + f.element if f.element else ''}): "
            f"{f.message}" for f in findings[:5]
        )
        raise X12Problem(f"X12-{codes}", details)

    log.info("invoice %s written as X12 810 %s for partner %s (ISA %s, ST %s)",
             doc.invoice_number, partner.version, partner.name, numbers.isa, numbers.st)
    return X12Invoice(
        payload=text.encode("utf-8"),
        receiver_id=f"{partner.receiver_qualifier}:{partner.receiver_id}",
        partner=partner.name,
    )


def read_partner_acknowledgements(settings: Settings, outbox: Outbox, run_id: str) -> AckReport:
    """Read the 997s waiting in the EDI inbound location into the delivery audit trail.

    A rejected 810 fails over to the next channel of its plan, or stays sent and is listed
    for an alert, as the channel policy's `on_edi_rejection` says.
    """
    try:
        partners = partner_profiles(settings.x12_partners_file)
    except X12Problem as exc:
        log.error("997 acknowledgements not read: %s", exc)
        return AckReport(run_id=run_id)
    if settings.edi_inbound is None:  # the default folder is q2c's own: make it
        Path(settings.edi_inbound_source).mkdir(parents=True, exist_ok=True)
    try:
        return read_acknowledgements(
            settings.edi_inbound_source, outbox, ControlNumbers(settings.ops_store), partners,
            load_policy(settings.delivery_policy_file), run_id,
            key_path=settings.sftp_key_file, known_hosts_path=settings.sftp_known_hosts,
            region=settings.ses_region, endpoint_url=settings.s3_endpoint_url,
        )
    except ChannelUnavailableError as exc:
        # Delivery goes on; the unread acknowledgements wait for the next run.
        log.error("997 acknowledgements not read this run: %s", exc)
        report = AckReport(run_id=run_id)
        report.problems.append(AckProblem(source=settings.edi_inbound_source, reason=str(exc)))
        return report
