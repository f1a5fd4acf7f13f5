"""E-invoices of the invoices whose customers take them: Peppol UBL, Factur-X or X12 810.

This joins the warehouse (which customers want an e-invoice, and their Peppol ids and
addresses), the invoice documents, and `q2c.einvoice` (build, compliance, syntax,
validation). Every e-invoice is validated before it is stored: UBL and Factur-X against the
official rules in the configured rules folder, X12 810s by q2c's X12 validator
(`q2c.x12_invoices`); one that breaks a rule, or cannot be built compliant (a reverse
charge without the buyer's VAT id), is held back with the rule named, like a quality hold,
so the invoice goes nowhere until the data is fixed.

Files go to `<documents>/einvoices/` named by invoice number and content hash, and each gets
a row in `q2c_ops.einvoice_manifest`; an invoice whose document and format did not change
since its last e-invoice is not built again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from q2c.content.registry import ContentRegistry
from q2c.content.selection import selection_of
from q2c.delivery.edi import participant_id
from q2c.delivery.envelope import EDI
from q2c.delivery.policy import AccountDelivery, ChannelPolicy, resolve_channels
from q2c.documents.load import load_invoice_batch
from q2c.documents.model import InvoiceDocument
from q2c.documents.pool import document_file_name
from q2c.documents.render import UsedContent, render_html
from q2c.einvoice.build import build_einvoice
from q2c.einvoice.cii import write_cii
from q2c.einvoice.compliance import EInvoiceNotCompliant
from q2c.einvoice.facturx import render_facturx
from q2c.einvoice.model import EN16931_CUSTOMIZATION_ID, Address
from q2c.einvoice.ubl import write_ubl
from q2c.einvoice.validate import RulesNotFoundError, ValidationReport, validator_for
from q2c.settings import Settings
from q2c.warehouse import OPS_SCHEMA
from q2c.x12.control import ControlNumbers
from q2c.x12_invoices import X12_810, X12Problem, build_x12, partner_profiles

log = logging.getLogger(__name__)

PEPPOL_UBL = "peppol_ubl"
FACTURX = "facturx"
FORMATS = (PEPPOL_UBL, FACTURX, X12_810)
HOLD_SUITE = "einvoice"
RULES_MISSING = "rules-missing"
HOLD_PREFIX = "e-invoice: "

_TARGETS_SQL = """
select
    invoices.invoice_id, invoices.invoice_number, accounts.account_key,
    coalesce(accounts.erp_customer_id, accounts.account_key) as customer_reference,
    coalesce(accounts.einvoice_format, 'peppol_ubl') as einvoice_format,
    accounts.peppol_participant_id, accounts.vat_id, accounts.billing_street,
    accounts.billing_city, accounts.billing_postal_code, accounts.billing_region,
    accounts.billing_country_code,
    accounts.segment, accounts.country_code, accounts.billing_email,
    accounts.delivery_preference, accounts.invoice_delivery_channel, accounts.email_consent,
    accounts.x12_partner
from core.fct_invoices as invoices
inner join core.dim_accounts as accounts on accounts.account_key = invoices.account_key
where invoices.issue_date <= ?
order by invoices.invoice_number
"""


@dataclass(frozen=True)
class EInvoiceTarget:
    """An invoice whose customer takes e-invoices, with what the e-invoice needs of it."""

    invoice_id: str
    invoice_number: str
    account_key: str
    customer_reference: str  # the ERP's customer number: BT-10 when there is no PO
    format: str
    peppol_id: str | None
    vat_id: str | None
    address: Address
    x12_partner: str | None = None


@dataclass(frozen=True)
class StoredEInvoice:
    document_id: str
    invoice_id: str
    invoice_number: str
    format: str
    path: Path
    sha256: str
    receiver_id: str | None


@dataclass
class EInvoiceRun:
    """What the step did: files written, unchanged, and holds with the rules they broke."""

    written: list[StoredEInvoice] = field(default_factory=list)
    unchanged: int = 0
    holds: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # id -> num, rule, why

    def hold(self, invoice_id: str, number: str, rule: str, reason: str) -> None:
        log.warning("e-invoice of invoice %s held back: %s %s", number, rule, reason)
        self.holds[invoice_id] = (number, rule, reason)


def einvoice_targets(
    conn: duckdb.DuckDBPyConnection, run_date: dt.date, held: dict[str, list[str]],
    policy: ChannelPolicy,
) -> list[EInvoiceTarget]:
    """Issued invoices whose customer's channel plan starts with or includes EDI.

    The plan comes from the channel policy, as at delivery, so a rule that puts EDI first
    (a country's Peppol mandate, large customers) gets its e-invoices built too. `held`
    are the invoices other checks hold; the e-invoice step's own holds of the last run are
    not in it, so a held e-invoice is tried (and held) again rather than forgotten.
    """
    targets = []
    cursor = conn.execute(_TARGETS_SQL, [run_date])
    names = [column[0] for column in cursor.description]
    for values in cursor.fetchall():
        row = dict(zip(names, values, strict=True))
        if row["invoice_id"] in held:
            continue
        if EDI not in resolve_channels(AccountDelivery.from_row(row), policy).channels:
            continue
        (invoice_id, number, account_key, customer_reference, fmt, peppol_id, vat_id, street,
         city, postal, region, country) = values[:12]
        targets.append(EInvoiceTarget(
            invoice_id, number, account_key, customer_reference,
            fmt if fmt in FORMATS else PEPPOL_UBL,
            peppol_id, vat_id,
            Address(line1=street, city=city, postal_code=postal, subdivision=region,
                    country=country),
            row["x12_partner"],
        ))
    return targets


def produce_einvoices(
    conn: duckdb.DuckDBPyConnection,
    targets: list[EInvoiceTarget],
    settings: Settings,
    content: ContentRegistry,
    used: UsedContent,
    run_id: str,
) -> EInvoiceRun:
    """Build, validate and store the e-invoice of every target; hold the ones that fail."""
    run = EInvoiceRun()
    if not targets:
        return run
    by_id = {target.invoice_id: target for target in targets}
    batch = load_invoice_batch(conn, list(by_id), settings.seller)
    for rejected in batch.rejected:
        run.hold(rejected.invoice_id, rejected.invoice_number or "?", "q2c-document",
                 f"{rejected.table}.{rejected.field}: {rejected.reason}")

    tools = _Tools(settings)
    rules_missing = None
    if any(target.format != X12_810 for target in targets):
        try:
            tools.validator()
        except RulesNotFoundError as exc:  # stored UBL and Factur-X files are not sent either
            rules_missing = _rules_missing(exc, settings.einvoice_rules_dir)
    known = _known_hashes(conn)
    for doc in batch.documents:
        target = by_id[doc.invoice_id]
        if rules_missing and target.format != X12_810:
            run.hold(doc.invoice_id, doc.invoice_number, RULES_MISSING, rules_missing)
            continue
        digest = _input_hash(doc, target, used)
        if digest in known:
            run.unchanged += 1
            continue
        try:
            if target.format == X12_810:
                stored = _produce_x12(doc, target, settings, tools, digest, run)
            else:
                stored = _produce_one(doc, target, settings, content, used, tools.validator(),
                                      digest, run)
        except RulesNotFoundError as exc:
            run.hold(doc.invoice_id, doc.invoice_number, RULES_MISSING,
                     _rules_missing(exc, settings.einvoice_rules_dir))
        except Exception as exc:  # one invoice's bad data must not stop the others
            log.exception("e-invoice of invoice %s could not be produced", doc.invoice_number)
            run.hold(doc.invoice_id, doc.invoice_number, "q2c-einvoice",
                     f"the e-invoice could not be written ({type(exc).__name__}: {exc}); "
                     "fix the data the message names (control characters in a name, "
                     "memo or address are a common cause)")
        else:
            if stored is not None:
                run.written.append(stored)
    record_einvoices(conn, run, run_id)
    return run


class _Tools:
    """What one run needs, loaded on first use: the EN 16931 rules are not read for a run of
    X12 810s only, and the partner profiles not for a run without them."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._validator = None
        self._partners = None
        self.controls = ControlNumbers(settings.ops_store)

    def validator(self):
        if self._validator is None:
            self._validator = validator_for(self.settings.einvoice_rules_dir)
        return self._validator

    def partners(self):
        if self._partners is None:
            self._partners = partner_profiles(self.settings.x12_partners_file)
        return self._partners


def _produce_x12(doc, target, settings, tools, digest, run):
    try:
        built = build_x12(
            doc, partner_name=target.x12_partner, partners=tools.partners(),
            seller=settings.seller, buyer_vat=target.vat_id, buyer_address=target.address,
            buyer_reference=target.customer_reference, controls=tools.controls,
        )
    except X12Problem as exc:
        run.hold(doc.invoice_id, doc.invoice_number, exc.rule, str(exc))
        return None
    return _store(doc, target, built.payload, ".x12", digest, built.receiver_id, settings)


def _store(doc, target, payload, suffix, digest, receiver_id, settings):
    content_hash = hashlib.sha256(payload).hexdigest()
    name = Path(document_file_name(doc.invoice_number, content_hash)).stem + suffix
    path = settings.documents_dir / "einvoices" / target.format / name
    _write_once(path, payload)
    return StoredEInvoice(
        document_id=f"{target.format}:{content_hash[:32]}:{digest}", invoice_id=doc.invoice_id,
        invoice_number=doc.invoice_number, format=target.format, path=path,
        sha256=content_hash, receiver_id=receiver_id,
    )


def _produce_one(doc, target, settings, content, used, validator, digest, run):
    peppol = target.format == PEPPOL_UBL
    if peppol and participant_id(target.peppol_id) is None:
        run.hold(doc.invoice_id, doc.invoice_number, "PEPPOL-EN16931-R010",
                 f"the buyer's Peppol participant id {target.peppol_id!r} is missing or not "
                 "'<scheme>:<id>' (e.g. 9930:DE123456789); correct it in the CRM account")
        return None
    try:
        einvoice = build_einvoice(
            doc, settings.seller, buyer_endpoint=target.peppol_id, buyer_vat=target.vat_id,
            buyer_address=target.address, buyer_reference=target.customer_reference,
            peppol=peppol,
        )
    except EInvoiceNotCompliant as exc:
        run.hold(doc.invoice_id, doc.invoice_number, ",".join(exc.rules), str(exc))
        return None

    if peppol:
        payload = write_ubl(einvoice)
        report = validator.validate_ubl(payload, peppol=True)
        suffix = ".xml"
    else:
        einvoice = _as_plain_en16931(einvoice)
        xml = write_cii(einvoice)
        report = validator.validate_cii(xml)
        if report.ok:
            html, _ = render_html(doc, content, used=used)
            payload = render_facturx(html, xml, settings.content_dir)
        suffix = ".pdf"
    if not report.ok:
        run.hold(doc.invoice_id, doc.invoice_number, _rules(report), _why(report))
        return None
    return _store(doc, target, payload, suffix, digest, target.peppol_id, settings)


def held_elsewhere(held: dict[str, list[str]]) -> dict[str, list[str]]:
    """The holds of other checks: an invoice held only by this step is built again."""
    return {invoice_id: reasons for invoice_id, reasons in held.items()
            if any(not reason.startswith(HOLD_PREFIX) for reason in reasons)}


def record_einvoices(conn: duckdb.DuckDBPyConnection, run: EInvoiceRun, run_id: str) -> None:
    """Manifest rows for new files; holds for the rest (replacing the last run's holds)."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for stored in run.written:
        input_hash = stored.document_id.rsplit(":", 1)[1]
        conn.execute(
            f"insert or replace into {OPS_SCHEMA}.einvoice_manifest values "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [stored.document_id, stored.invoice_id, stored.invoice_number, stored.format,
             input_hash, str(stored.path), stored.sha256, stored.receiver_id, now, run_id],
        )
    conn.execute(f"delete from {OPS_SCHEMA}.invoice_holds where suite = ?", [HOLD_SUITE])
    for invoice_id, (number, rule, reason) in run.holds.items():
        conn.execute(
            f"insert into {OPS_SCHEMA}.invoice_holds (run_id, invoice_id, invoice_number, "
            "suite, expectation, reason, held_at) values (?, ?, ?, ?, ?, ?, ?)",
            [run_id, invoice_id, number, HOLD_SUITE, rule, f"{HOLD_PREFIX}{rule}: {reason}",
             now],
        )
    conn.execute(
        f"insert into {OPS_SCHEMA}.quality_results (run_id, suite, asset, expectation, "
        "column_name, severity, success, element_count, unexpected_count, unexpected_ids, "
        "validated_at) values (?, ?, 'documents.einvoices', 'einvoice_complies', null, "
        "'error', ?, ?, ?, ?, ?)",
        [run_id, HOLD_SUITE, not run.holds, len(run.written) + len(run.holds),
         len(run.holds), json.dumps(sorted(run.holds)), now],
    )


def stored_einvoices(conn: duckdb.DuckDBPyConnection) -> dict[str, StoredEInvoice]:
    """The newest stored e-invoice per invoice whose file is still there."""
    rows = conn.execute(
        f"""
        select document_id, invoice_id, invoice_number, format, path, sha256, receiver_id
        from {OPS_SCHEMA}.einvoice_manifest
        qualify row_number() over (partition by invoice_id order by created_at desc) = 1
        """
    ).fetchall()
    found = {}
    for document_id, invoice_id, number, fmt, path, sha256, receiver in rows:
        if Path(path).is_file():
            found[invoice_id] = StoredEInvoice(document_id, invoice_id, number, fmt,
                                               Path(path), sha256, receiver)
    return found


def _as_plain_en16931(einvoice):
    """Factur-X EN 16931 profile: the CEN customization id, no Peppol profile."""
    from dataclasses import replace

    return replace(einvoice, customization_id=EN16931_CUSTOMIZATION_ID, profile_id=None)


def _input_hash(doc: InvoiceDocument, target: EInvoiceTarget, used: UsedContent) -> str:
    parts = {
        "document": doc.digest(), "format": target.format, "peppol_id": target.peppol_id,
        "reference": target.customer_reference,
        "vat_id": target.vat_id, "address": str(target.address),
    }
    if target.format == FACTURX:  # only the Factur-X PDF prints governed content
        parts["content"] = selection_of(doc, used).hash_payload()
    if target.x12_partner:
        parts["x12_partner"] = target.x12_partner
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _known_hashes(conn: duckdb.DuckDBPyConnection) -> set[str]:
    rows = conn.execute(
        f"select input_hash, path from {OPS_SCHEMA}.einvoice_manifest"
    ).fetchall()
    return {digest for digest, path in rows if Path(path).is_file()}


def _rules_missing(exc: RulesNotFoundError, rules_dir: Path) -> str:
    """The short hold reason of each invoice; the full instructions are logged once."""
    if not getattr(exc, "logged", False):
        log.error("e-invoices held: %s", exc)
        exc.logged = True
    return (f"the e-invoice rules in {rules_dir} are missing or incomplete; point "
            "Q2C_EINVOICE_RULES at the official rules (README, E-invoices)")


def _rules(report: ValidationReport) -> str:
    return ",".join(sorted({finding.rule for finding in report.fatal}))


def _why(report: ValidationReport) -> str:
    return "; ".join(f"{f.rule}: {f.message}" for f in report.fatal[:5])


def _write_once(path: Path, payload: bytes) -> None:
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_bytes(payload)
    temporary.replace(path)
