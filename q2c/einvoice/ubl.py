"""EN 16931 invoices as UBL 2.1 (Peppol BIS Billing 3.0): writer and reader.

The writer emits elements in the order the OASIS UBL 2.1 schema demands. An Invoice and a
CreditNote differ: a credit note has no header DueDate, so BT-9 goes into the first
PaymentMeans, and no ProjectReference, so BT-11 is an AdditionalDocumentReference with
type code 50.
Every amount carries currencyID. The reader maps the same paths back, so
`read_ubl(write_ubl(x)) == x` for any invoice the model can express.

Conventions both directions share:
- a Note that starts `#AAI#` carries the BT-21 subject code (UBL has no element for it);
- an AdditionalDocumentReference with DocumentTypeCode 130 is the invoiced object (BT-18);
- a seller or payee PartyIdentification with schemeID SEPA is the creditor id (BT-90);
- OrderReference/ID `NA` next to a SalesOrderID means "no purchase order" (BT-13 absent);
- several PaymentMeans are one set of payment instructions with one account each (BG-17).
"""

from __future__ import annotations

import base64
import re
from dataclasses import replace
from decimal import Decimal

from lxml import etree

from q2c.einvoice.model import (
    CREDIT_NOTE,
    INVOICE,
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
from q2c.einvoice.xmlutil import (
    EInvoiceSyntaxError,
    Element,
    Reader,
    leaf,
    local_name,
    parse_xml,
    serialize,
    sub,
)

CAC_NS = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
CBC_NS = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
INVOICE_NS = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
CREDIT_NOTE_NS = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"

_ROOTS = {INVOICE: ("Invoice", INVOICE_NS), CREDIT_NOTE: ("CreditNote", CREDIT_NOTE_NS)}
_NOTE_SUBJECT = re.compile(r"^#([A-Z]{3})#")  # UNTDID 4451 subject code
_INVOICED_OBJECT = "130"
_PROJECT_REFERENCE = "50"
_NO_ORDER = "NA"
_SEPA = "SEPA"

_r = Reader({"cac": CAC_NS, "cbc": CBC_NS})


def cac(name: str) -> str:
    return f"{{{CAC_NS}}}{name}"


def cbc(name: str) -> str:
    return f"{{{CBC_NS}}}{name}"


# ---------------------------------------------------------------------------------------
# Writer
# ---------------------------------------------------------------------------------------


def write_ubl(invoice: EInvoice) -> bytes:
    """The invoice as a UBL 2.1 Invoice, or CreditNote when `invoice.kind` is credit_note."""
    if invoice.kind not in _ROOTS:
        raise ValueError(
            f"invoice {invoice.number}: kind must be {INVOICE!r} or {CREDIT_NOTE!r}, "
            f"not {invoice.kind!r}"
        )
    root_name, root_ns = _ROOTS[invoice.kind]
    root = _root(root_ns, root_name)
    credit = invoice.kind == CREDIT_NOTE
    cur = invoice.currency

    leaf(root, cbc("CustomizationID"), invoice.customization_id)
    leaf(root, cbc("ProfileID"), invoice.profile_id)
    leaf(root, cbc("ID"), invoice.number)
    leaf(root, cbc("IssueDate"), invoice.issue_date)
    if credit:
        leaf(root, cbc("TaxPointDate"), invoice.tax_point_date)
        leaf(root, cbc("CreditNoteTypeCode"), invoice.type_code)
    else:
        leaf(root, cbc("DueDate"), invoice.due_date)
        leaf(root, cbc("InvoiceTypeCode"), invoice.type_code)
    for subject, text in invoice.notes:
        leaf(root, cbc("Note"), f"#{subject}#{text}" if subject else text)
    if not credit:
        leaf(root, cbc("TaxPointDate"), invoice.tax_point_date)
    leaf(root, cbc("DocumentCurrencyCode"), cur)
    leaf(root, cbc("TaxCurrencyCode"), invoice.tax_currency)
    leaf(root, cbc("AccountingCost"), invoice.buyer_accounting_reference)
    leaf(root, cbc("BuyerReference"), invoice.buyer_reference)
    _write_period(root, cac("InvoicePeriod"), invoice.period, invoice.tax_point_code)
    _write_references(root, invoice)
    _write_parties(root, invoice)
    _write_delivery(root, invoice.delivery)
    _write_payment(root, invoice)
    if invoice.payment_terms is not None:
        leaf(sub(root, cac("PaymentTerms")), cbc("Note"), invoice.payment_terms)
    for allowance in invoice.allowances_charges:
        _write_allowance(root, allowance, cur, with_tax=True)
    _write_tax_totals(root, invoice)
    _write_totals(root, invoice.totals, cur)
    for line in invoice.lines:
        _write_line(root, line, cur, credit)
    return serialize(root)


def _root(namespace: str, name: str) -> Element:
    return etree.Element(
        f"{{{namespace}}}{name}", nsmap={None: namespace, "cac": CAC_NS, "cbc": CBC_NS}
    )


def _id_leaf(parent: Element, tag: str, ident: Identifier | None) -> None:
    if ident is not None:
        leaf(parent, tag, ident.value, schemeID=ident.scheme)


def _write_period(
    parent: Element, tag: str, period: Period | None, description_code: str | None = None
) -> None:
    if period is None and description_code is None:
        return
    element = sub(parent, tag)
    if period is not None:
        leaf(element, cbc("StartDate"), period.start)
        leaf(element, cbc("EndDate"), period.end)
    leaf(element, cbc("DescriptionCode"), description_code)


def _write_references(root: Element, invoice: EInvoice) -> None:
    credit = invoice.kind == CREDIT_NOTE
    if invoice.purchase_order_reference is not None or invoice.sales_order_reference:
        order = sub(root, cac("OrderReference"))
        purchase_order = invoice.purchase_order_reference
        leaf(order, cbc("ID"), _NO_ORDER if purchase_order is None else purchase_order)
        leaf(order, cbc("SalesOrderID"), invoice.sales_order_reference)
    for preceding in invoice.preceding_invoices:
        ref = sub(sub(root, cac("BillingReference")), cac("InvoiceDocumentReference"))
        leaf(ref, cbc("ID"), preceding.number)
        leaf(ref, cbc("IssueDate"), preceding.issue_date)
    _doc_ref(root, "DespatchDocumentReference", invoice.despatch_advice_reference)
    _doc_ref(root, "ReceiptDocumentReference", invoice.receiving_advice_reference)
    if not credit:
        _doc_ref(root, "OriginatorDocumentReference", invoice.tender_reference)
    _doc_ref(root, "ContractDocumentReference", invoice.contract_reference)
    if invoice.invoiced_object is not None:
        ref = sub(root, cac("AdditionalDocumentReference"))
        _id_leaf(ref, cbc("ID"), invoice.invoiced_object)
        leaf(ref, cbc("DocumentTypeCode"), _INVOICED_OBJECT)
    if credit and invoice.project_reference is not None:
        ref = sub(root, cac("AdditionalDocumentReference"))
        leaf(ref, cbc("ID"), invoice.project_reference)
        leaf(ref, cbc("DocumentTypeCode"), _PROJECT_REFERENCE)
    for attachment in invoice.attachments:
        _write_attachment(root, attachment)
    if credit:
        _doc_ref(root, "OriginatorDocumentReference", invoice.tender_reference)
    elif invoice.project_reference is not None:
        leaf(sub(root, cac("ProjectReference")), cbc("ID"), invoice.project_reference)


def _doc_ref(root: Element, name: str, value: str | None) -> None:
    if value is not None:
        leaf(sub(root, cac(name)), cbc("ID"), value)


def _write_attachment(root: Element, attachment: Attachment) -> None:
    ref = sub(root, cac("AdditionalDocumentReference"))
    leaf(ref, cbc("ID"), attachment.id)
    leaf(ref, cbc("DocumentTypeCode"), attachment.type_code)
    leaf(ref, cbc("DocumentDescription"), attachment.description)
    if attachment.content is None and attachment.uri is None:
        return
    holder = sub(ref, cac("Attachment"))
    if attachment.content is not None:
        leaf(
            holder,
            cbc("EmbeddedDocumentBinaryObject"),
            base64.b64encode(attachment.content).decode("ascii"),
            mimeCode=attachment.mime_code,
            filename=attachment.filename,
        )
    if attachment.uri is not None:
        leaf(sub(holder, cac("ExternalReference")), cbc("URI"), attachment.uri)


def _write_parties(root: Element, invoice: EInvoice) -> None:
    seller, payee = invoice.seller, invoice.payee
    creditor = invoice.payment.creditor_id if invoice.payment else None
    if creditor is not None:
        # BT-90 travels as a SEPA-scheme party identifier of the payee, else the seller.
        sepa = Identifier(creditor, _SEPA)
        if payee is not None:
            payee = replace(payee, identifiers=(*payee.identifiers, sepa))
        else:
            seller = replace(seller, identifiers=(*seller.identifiers, sepa))
    _write_party(sub(root, cac("AccountingSupplierParty")), seller, legal_name=True)
    _write_party(sub(root, cac("AccountingCustomerParty")), invoice.buyer, legal_name=True)
    if payee is not None:
        _write_party(root, payee, legal_name=False, tag=cac("PayeeParty"))
    if invoice.tax_representative is not None:
        _write_party(
            root, invoice.tax_representative, legal_name=False, tag=cac("TaxRepresentativeParty")
        )


def _write_party(parent: Element, party: Party, legal_name: bool, tag: str | None = None) -> None:
    """Seller and buyer carry their name as RegistrationName (BT-27/44) and the trading
    name in PartyName; payee and tax representative carry their name in PartyName."""
    element = sub(parent, tag or cac("Party"))
    _id_leaf(element, cbc("EndpointID"), party.endpoint)
    for ident in party.identifiers:
        _id_leaf(sub(element, cac("PartyIdentification")), cbc("ID"), ident)
    shown_name = party.trading_name if legal_name else party.name
    if shown_name is not None:
        leaf(sub(element, cac("PartyName")), cbc("Name"), shown_name)
    _write_address(element, cac("PostalAddress"), party.address)
    for company_id, scheme in ((party.vat_id, "VAT"), (party.tax_registration_id, "TAX")):
        if company_id is not None:
            tax = sub(element, cac("PartyTaxScheme"))
            leaf(tax, cbc("CompanyID"), company_id)
            leaf(sub(tax, cac("TaxScheme")), cbc("ID"), scheme)
    if legal_name or party.legal_id is not None or party.legal_form is not None:
        legal = sub(element, cac("PartyLegalEntity"))
        if legal_name:
            leaf(legal, cbc("RegistrationName"), party.name)
        _id_leaf(legal, cbc("CompanyID"), party.legal_id)
        leaf(legal, cbc("CompanyLegalForm"), party.legal_form)
    contact = party.contact
    if contact is not None:
        element_contact = sub(element, cac("Contact"))
        leaf(element_contact, cbc("Name"), contact.name)
        leaf(element_contact, cbc("Telephone"), contact.phone)
        leaf(element_contact, cbc("ElectronicMail"), contact.email)


def _write_address(parent: Element, tag: str, address: Address | None) -> None:
    if address is None:
        return
    element = sub(parent, tag)
    leaf(element, cbc("StreetName"), address.line1)
    leaf(element, cbc("AdditionalStreetName"), address.line2)
    leaf(element, cbc("CityName"), address.city)
    leaf(element, cbc("PostalZone"), address.postal_code)
    leaf(element, cbc("CountrySubentity"), address.subdivision)
    if address.line3 is not None:
        leaf(sub(element, cac("AddressLine")), cbc("Line"), address.line3)
    if address.country is not None:
        leaf(sub(element, cac("Country")), cbc("IdentificationCode"), address.country)


def _write_delivery(root: Element, delivery: Delivery | None) -> None:
    if delivery is None:
        return
    element = sub(root, cac("Delivery"))
    leaf(element, cbc("ActualDeliveryDate"), delivery.actual_date)
    if delivery.location_id is not None or delivery.address is not None:
        location = sub(element, cac("DeliveryLocation"))
        _id_leaf(location, cbc("ID"), delivery.location_id)
        _write_address(location, cac("Address"), delivery.address)
    if delivery.party_name is not None:
        party = sub(element, cac("DeliveryParty"))
        leaf(sub(party, cac("PartyName")), cbc("Name"), delivery.party_name)


def _write_payment(root: Element, invoice: EInvoice) -> None:
    payment = invoice.payment
    if payment is None:
        return
    credit_due = invoice.due_date if invoice.kind == CREDIT_NOTE else None
    accounts: tuple[CreditTransfer | None, ...] = payment.accounts or (None,)
    for index, account in enumerate(accounts):
        means = sub(root, cac("PaymentMeans"))
        # BT-82 may occur once (UBL-SR-46), so only the first means names it.
        name = payment.means_text if index == 0 else None
        leaf(means, cbc("PaymentMeansCode"), payment.means_code, name=name)
        leaf(means, cbc("PaymentDueDate"), credit_due if index == 0 else None)
        leaf(means, cbc("PaymentID"), payment.remittance_information)
        if index == 0 and payment.card_number is not None:
            card = sub(means, cac("CardAccount"))
            leaf(card, cbc("PrimaryAccountNumberID"), payment.card_number)
            leaf(card, cbc("NetworkID"), payment.card_network or "NA")
            leaf(card, cbc("HolderName"), payment.card_holder)
        if account is not None:
            financial = sub(means, cac("PayeeFinancialAccount"))
            leaf(financial, cbc("ID"), account.account_id)
            leaf(financial, cbc("Name"), account.account_name)
            if account.service_provider_id is not None:
                branch = sub(financial, cac("FinancialInstitutionBranch"))
                leaf(branch, cbc("ID"), account.service_provider_id)
        if index == 0 and (payment.mandate_id is not None or payment.debited_account is not None):
            mandate = sub(means, cac("PaymentMandate"))
            leaf(mandate, cbc("ID"), payment.mandate_id)
            if payment.debited_account is not None:
                payer = sub(mandate, cac("PayerFinancialAccount"))
                leaf(payer, cbc("ID"), payment.debited_account)


def _write_allowance(
    parent: Element, allowance: AllowanceCharge, cur: str, with_tax: bool
) -> None:
    element = sub(parent, cac("AllowanceCharge"))
    leaf(element, cbc("ChargeIndicator"), "true" if allowance.is_charge else "false")
    leaf(element, cbc("AllowanceChargeReasonCode"), allowance.reason_code)
    leaf(element, cbc("AllowanceChargeReason"), allowance.reason)
    leaf(element, cbc("MultiplierFactorNumeric"), allowance.percent)
    leaf(element, cbc("Amount"), allowance.amount, currencyID=cur)
    leaf(element, cbc("BaseAmount"), allowance.base_amount, currencyID=cur)
    if with_tax and allowance.vat_category is not None:
        _write_tax_category(element, cac("TaxCategory"), allowance.vat_category, allowance.vat_rate)


def _write_tax_category(
    parent: Element,
    tag: str,
    category: str,
    rate: Decimal | None,
    exemption_code: str | None = None,
    exemption_reason: str | None = None,
) -> None:
    element = sub(parent, tag)
    leaf(element, cbc("ID"), category)
    leaf(element, cbc("Percent"), rate)
    leaf(element, cbc("TaxExemptionReasonCode"), exemption_code)
    leaf(element, cbc("TaxExemptionReason"), exemption_reason)
    leaf(sub(element, cac("TaxScheme")), cbc("ID"), "VAT")


def _write_tax_totals(root: Element, invoice: EInvoice) -> None:
    totals, cur = invoice.totals, invoice.currency
    if totals.tax_total is not None or invoice.vat_breakdown:
        tax_total = totals.tax_total
        if tax_total is None:
            tax_total = sum(vat.tax_amount for vat in invoice.vat_breakdown)
        element = sub(root, cac("TaxTotal"))
        leaf(element, cbc("TaxAmount"), tax_total, currencyID=cur)
        for vat in invoice.vat_breakdown:
            subtotal = sub(element, cac("TaxSubtotal"))
            leaf(subtotal, cbc("TaxableAmount"), vat.taxable_amount, currencyID=cur)
            leaf(subtotal, cbc("TaxAmount"), vat.tax_amount, currencyID=cur)
            _write_tax_category(
                subtotal,
                cac("TaxCategory"),
                vat.category,
                vat.rate,
                vat.exemption_reason_code,
                vat.exemption_reason,
            )
    if totals.tax_total_tax_currency is not None:
        element = sub(root, cac("TaxTotal"))
        leaf(
            element,
            cbc("TaxAmount"),
            totals.tax_total_tax_currency,
            currencyID=invoice.tax_currency or cur,
        )


def _write_totals(root: Element, totals: Totals, cur: str) -> None:
    element = sub(root, cac("LegalMonetaryTotal"))
    for name, value in (
        ("LineExtensionAmount", totals.line_total),
        ("TaxExclusiveAmount", totals.tax_exclusive),
        ("TaxInclusiveAmount", totals.tax_inclusive),
        ("AllowanceTotalAmount", totals.allowance_total),
        ("ChargeTotalAmount", totals.charge_total),
        ("PrepaidAmount", totals.prepaid),
        ("PayableRoundingAmount", totals.rounding),
        ("PayableAmount", totals.payable),
    ):
        leaf(element, cbc(name), value, currencyID=cur)


def _write_line(root: Element, line: InvoiceLine, cur: str, credit: bool) -> None:
    element = sub(root, cac("CreditNoteLine" if credit else "InvoiceLine"))
    leaf(element, cbc("ID"), line.id)
    leaf(element, cbc("Note"), line.note)
    leaf(
        element,
        cbc("CreditedQuantity" if credit else "InvoicedQuantity"),
        line.quantity,
        unitCode=line.unit_code or None,
    )
    leaf(element, cbc("LineExtensionAmount"), line.net_amount, currencyID=cur)
    leaf(element, cbc("AccountingCost"), line.accounting_reference)
    _write_period(element, cac("InvoicePeriod"), line.period)
    if line.order_line_reference is not None:
        leaf(sub(element, cac("OrderLineReference")), cbc("LineID"), line.order_line_reference)
    if line.object_id is not None:
        ref = sub(element, cac("DocumentReference"))
        _id_leaf(ref, cbc("ID"), line.object_id)
        leaf(ref, cbc("DocumentTypeCode"), _INVOICED_OBJECT)
    for allowance in line.allowances_charges:
        _write_allowance(element, allowance, cur, with_tax=False)
    _write_item(element, line)
    price = sub(element, cac("Price"))
    leaf(price, cbc("PriceAmount"), line.net_price, currencyID=cur)
    leaf(price, cbc("BaseQuantity"), line.base_quantity, unitCode=line.base_quantity_unit)
    if line.price_discount is not None or line.gross_price is not None:
        discount = sub(price, cac("AllowanceCharge"))
        leaf(discount, cbc("ChargeIndicator"), "false")
        amount = line.price_discount
        if amount is None:
            amount = line.gross_price - line.net_price
        leaf(discount, cbc("Amount"), amount, currencyID=cur)
        leaf(discount, cbc("BaseAmount"), line.gross_price, currencyID=cur)


def _write_item(parent: Element, line: InvoiceLine) -> None:
    item = line.item
    element = sub(parent, cac("Item"))
    leaf(element, cbc("Description"), item.description)
    leaf(element, cbc("Name"), item.name)
    for tag, value in (
        ("BuyersItemIdentification", item.buyer_id),
        ("SellersItemIdentification", item.seller_id),
    ):
        if value is not None:
            leaf(sub(element, cac(tag)), cbc("ID"), value)
    if item.standard_id is not None:
        _id_leaf(sub(element, cac("StandardItemIdentification")), cbc("ID"), item.standard_id)
    if item.origin_country is not None:
        leaf(sub(element, cac("OriginCountry")), cbc("IdentificationCode"), item.origin_country)
    for classification in item.classifications:
        leaf(
            sub(element, cac("CommodityClassification")),
            cbc("ItemClassificationCode"),
            classification.value,
            listID=classification.scheme,
        )
    _write_tax_category(element, cac("ClassifiedTaxCategory"), line.vat_category, line.vat_rate)
    for name, value in item.attributes:
        prop = sub(element, cac("AdditionalItemProperty"))
        leaf(prop, cbc("Name"), name)
        leaf(prop, cbc("Value"), value)


# ---------------------------------------------------------------------------------------
# Reader
# ---------------------------------------------------------------------------------------


def read_ubl(xml: bytes) -> EInvoice:
    """Parse a UBL 2.1 Invoice or CreditNote into the EN 16931 model."""
    root = parse_xml(xml)
    name = local_name(root)
    kind = {"Invoice": INVOICE, "CreditNote": CREDIT_NOTE}.get(name)
    if kind is None or etree.QName(root).namespace != _ROOTS[kind][1]:
        raise EInvoiceSyntaxError(
            f"expected a UBL 2.1 Invoice or CreditNote root element, found {root.tag}"
        )
    credit = kind == CREDIT_NOTE
    currency = _r.text(root, "cbc:DocumentCurrencyCode") or ""
    tax_currency = _r.text(root, "cbc:TaxCurrencyCode")
    payment = _read_payment(root)
    seller = _read_party(_r.find(root, "cac:AccountingSupplierParty/cac:Party"), True)
    payee = _read_party(_r.find(root, "cac:PayeeParty"), False)
    if payment is not None:
        payment, seller, payee = _take_creditor_id(payment, seller, payee)
    tax_total, tax_total_tax_currency, breakdown = _read_tax_totals(root, currency)
    period_element = _r.find(root, "cac:InvoicePeriod")
    purchase_order = _r.text(root, "cac:OrderReference/cbc:ID")
    sales_order = _r.text(root, "cac:OrderReference/cbc:SalesOrderID")
    if purchase_order == _NO_ORDER and sales_order is not None:
        purchase_order = None
    references = _r.findall(root, "cac:AdditionalDocumentReference")
    invoiced_object = None
    project_reference = _r.text(root, "cac:ProjectReference/cbc:ID")
    attachments = []
    for ref in references:
        type_code = _r.text(ref, "cbc:DocumentTypeCode")
        if type_code == _INVOICED_OBJECT and invoiced_object is None:
            invoiced_object = _read_identifier(_r.find(ref, "cbc:ID"))
        elif credit and type_code == _PROJECT_REFERENCE and project_reference is None:
            project_reference = _r.text(ref, "cbc:ID")
        else:
            attachments.append(_read_attachment(ref))
    due_date = _r.iso_date(root, "cbc:DueDate")
    if credit and due_date is None:
        due_date = _r.iso_date(root, "cac:PaymentMeans/cbc:PaymentDueDate")
    line_tag = "cac:CreditNoteLine" if credit else "cac:InvoiceLine"
    return EInvoice(
        kind=kind,
        number=_r.text(root, "cbc:ID") or "",
        issue_date=_r.iso_date(root, "cbc:IssueDate"),
        type_code=_r.text(root, "cbc:CreditNoteTypeCode" if credit else "cbc:InvoiceTypeCode")
        or "",
        currency=currency,
        seller=seller,
        buyer=_read_party(_r.find(root, "cac:AccountingCustomerParty/cac:Party"), True),
        lines=tuple(_read_line(line) for line in _r.findall(root, line_tag)),
        vat_breakdown=breakdown,
        totals=_read_totals(root, tax_total, tax_total_tax_currency),
        customization_id=_r.text(root, "cbc:CustomizationID") or "",
        profile_id=_r.text(root, "cbc:ProfileID"),
        tax_currency=tax_currency,
        tax_point_date=_r.iso_date(root, "cbc:TaxPointDate"),
        tax_point_code=_r.text(period_element, "cbc:DescriptionCode"),
        due_date=due_date,
        buyer_reference=_r.text(root, "cbc:BuyerReference"),
        project_reference=project_reference,
        contract_reference=_r.text(root, "cac:ContractDocumentReference/cbc:ID"),
        purchase_order_reference=purchase_order,
        sales_order_reference=sales_order,
        receiving_advice_reference=_r.text(root, "cac:ReceiptDocumentReference/cbc:ID"),
        despatch_advice_reference=_r.text(root, "cac:DespatchDocumentReference/cbc:ID"),
        tender_reference=_r.text(root, "cac:OriginatorDocumentReference/cbc:ID"),
        invoiced_object=invoiced_object,
        buyer_accounting_reference=_r.text(root, "cbc:AccountingCost"),
        payment_terms=_r.text(root, "cac:PaymentTerms/cbc:Note"),
        notes=tuple(_read_note(note.text or "") for note in _r.findall(root, "cbc:Note")),
        preceding_invoices=tuple(
            PrecedingInvoice(
                number=_r.text(ref, "cbc:ID") or "", issue_date=_r.iso_date(ref, "cbc:IssueDate")
            )
            for ref in _r.findall(root, "cac:BillingReference/cac:InvoiceDocumentReference")
        ),
        payee=payee,
        tax_representative=_read_party(_r.find(root, "cac:TaxRepresentativeParty"), False),
        delivery=_read_delivery(_r.find(root, "cac:Delivery")),
        period=_read_period(period_element),
        payment=payment,
        allowances_charges=tuple(
            _read_allowance(element) for element in _r.findall(root, "cac:AllowanceCharge")
        ),
        attachments=tuple(attachments),
    )


def _read_note(text: str) -> tuple[str | None, str]:
    match = _NOTE_SUBJECT.match(text)
    if match is None:
        return (None, text)
    return (match.group(1), text[match.end():])


def _read_identifier(element: Element | None) -> Identifier | None:
    if element is None:
        return None
    return Identifier(value=element.text or "", scheme=element.get("schemeID"))


def _read_party(element: Element | None, legal_name: bool) -> Party | None:
    if element is None:
        return None
    vat_id = tax_registration_id = None
    for scheme in _r.findall(element, "cac:PartyTaxScheme"):
        company_id = _r.text(scheme, "cbc:CompanyID")
        if (_r.text(scheme, "cac:TaxScheme/cbc:ID") or "").strip() == "VAT":
            vat_id = vat_id if vat_id is not None else company_id
        elif tax_registration_id is None:
            tax_registration_id = company_id
    party_name = _r.text(element, "cac:PartyName/cbc:Name")
    legal = _r.find(element, "cac:PartyLegalEntity")
    if legal_name:
        name, trading_name = _r.text(legal, "cbc:RegistrationName") or "", party_name
    else:
        name, trading_name = party_name or "", None
    return Party(
        name=name,
        trading_name=trading_name,
        identifiers=tuple(
            _read_identifier(ident)
            for ident in _r.findall(element, "cac:PartyIdentification/cbc:ID")
        ),
        legal_id=_read_identifier(_r.find(legal, "cbc:CompanyID")),
        legal_form=_r.text(legal, "cbc:CompanyLegalForm"),
        vat_id=vat_id,
        tax_registration_id=tax_registration_id,
        endpoint=_read_identifier(_r.find(element, "cbc:EndpointID")),
        address=_read_address(_r.find(element, "cac:PostalAddress")),
        contact=_read_contact(_r.find(element, "cac:Contact")),
    )


def _read_address(element: Element | None) -> Address | None:
    if element is None:
        return None
    return Address(
        line1=_r.text(element, "cbc:StreetName"),
        line2=_r.text(element, "cbc:AdditionalStreetName"),
        line3=_r.text(element, "cac:AddressLine/cbc:Line"),
        city=_r.text(element, "cbc:CityName"),
        postal_code=_r.text(element, "cbc:PostalZone"),
        subdivision=_r.text(element, "cbc:CountrySubentity"),
        country=_r.text(element, "cac:Country/cbc:IdentificationCode"),
    )


def _read_contact(element: Element | None) -> Contact | None:
    if element is None:
        return None
    return Contact(
        name=_r.text(element, "cbc:Name"),
        phone=_r.text(element, "cbc:Telephone"),
        email=_r.text(element, "cbc:ElectronicMail"),
    )


def _take_creditor_id(
    payment: PaymentInstructions, seller: Party, payee: Party | None
) -> tuple[PaymentInstructions, Party, Party | None]:
    """Move a SEPA-scheme party identifier (payee first, then seller) into BT-90."""
    for is_payee, party in ((True, payee), (False, seller)):
        if party is None:
            continue
        for ident in party.identifiers:
            if ident.scheme == _SEPA:
                rest = tuple(i for i in party.identifiers if i is not ident)
                party = replace(party, identifiers=rest)
                payment = replace(payment, creditor_id=ident.value)
                if is_payee:
                    return payment, seller, party
                return payment, party, payee
    return payment, seller, payee


def _read_payment(root: Element) -> PaymentInstructions | None:
    means = _r.findall(root, "cac:PaymentMeans")
    if not means:
        return None
    first = means[0]
    code = _r.find(first, "cbc:PaymentMeansCode")
    card = _r.find(first, "cac:CardAccount")
    mandate = next(
        (m for m in (_r.find(e, "cac:PaymentMandate") for e in means) if m is not None), None
    )
    accounts = []
    for element in means:
        account = _r.find(element, "cac:PayeeFinancialAccount")
        if account is not None:
            accounts.append(
                CreditTransfer(
                    account_id=_r.text(account, "cbc:ID") or "",
                    account_name=_r.text(account, "cbc:Name"),
                    service_provider_id=_r.text(account, "cac:FinancialInstitutionBranch/cbc:ID"),
                )
            )
    remittance = next(
        (text for text in (_r.text(e, "cbc:PaymentID") for e in means) if text is not None), None
    )
    return PaymentInstructions(
        means_code=(code.text or "") if code is not None else "",
        means_text=code.get("name") if code is not None else None,
        remittance_information=remittance,
        accounts=tuple(accounts),
        card_number=_r.text(card, "cbc:PrimaryAccountNumberID"),
        card_holder=_r.text(card, "cbc:HolderName"),
        card_network=_r.text(card, "cbc:NetworkID"),
        mandate_id=_r.text(mandate, "cbc:ID"),
        debited_account=_r.text(mandate, "cac:PayerFinancialAccount/cbc:ID"),
    )


def _read_tax_totals(
    root: Element, currency: str
) -> tuple[Decimal | None, Decimal | None, tuple[VatBreakdown, ...]]:
    """BT-110 is the TaxTotal with the breakdown (or in the document currency); a second
    TaxTotal with only an amount is BT-111 in the tax currency."""
    tax_total = tax_total_tax_currency = None
    breakdown: tuple[VatBreakdown, ...] = ()
    for element in _r.findall(root, "cac:TaxTotal"):
        subtotals = _r.findall(element, "cac:TaxSubtotal")
        amount_currency = _r.attr(element, "cbc:TaxAmount", "currencyID")
        main = subtotals or (amount_currency == currency and tax_total is None)
        if main and tax_total is None:
            tax_total = _r.decimal(element, "cbc:TaxAmount")
            breakdown = tuple(_read_vat(subtotal) for subtotal in subtotals)
        else:
            tax_total_tax_currency = _r.decimal(element, "cbc:TaxAmount")
    return tax_total, tax_total_tax_currency, breakdown


def _read_vat(element: Element) -> VatBreakdown:
    category = _r.find(element, "cac:TaxCategory")
    return VatBreakdown(
        category=_r.text(category, "cbc:ID") or "",
        rate=_r.decimal(category, "cbc:Percent"),
        taxable_amount=_r.decimal(element, "cbc:TaxableAmount"),
        tax_amount=_r.decimal(element, "cbc:TaxAmount"),
        exemption_reason=_r.text(category, "cbc:TaxExemptionReason"),
        exemption_reason_code=_r.text(category, "cbc:TaxExemptionReasonCode"),
    )


def _read_totals(
    root: Element, tax_total: Decimal | None, tax_total_tax_currency: Decimal | None
) -> Totals:
    element = _r.find(root, "cac:LegalMonetaryTotal")
    return Totals(
        line_total=_r.decimal(element, "cbc:LineExtensionAmount"),
        tax_exclusive=_r.decimal(element, "cbc:TaxExclusiveAmount"),
        tax_inclusive=_r.decimal(element, "cbc:TaxInclusiveAmount"),
        payable=_r.decimal(element, "cbc:PayableAmount"),
        allowance_total=_r.decimal(element, "cbc:AllowanceTotalAmount"),
        charge_total=_r.decimal(element, "cbc:ChargeTotalAmount"),
        tax_total=tax_total,
        tax_total_tax_currency=tax_total_tax_currency,
        prepaid=_r.decimal(element, "cbc:PrepaidAmount"),
        rounding=_r.decimal(element, "cbc:PayableRoundingAmount"),
    )


def _read_period(element: Element | None) -> Period | None:
    if element is None:
        return None
    start, end = _r.iso_date(element, "cbc:StartDate"), _r.iso_date(element, "cbc:EndDate")
    if start is None and end is None:
        return None
    return Period(start=start, end=end)


def _read_delivery(element: Element | None) -> Delivery | None:
    if element is None:
        return None
    location = _r.find(element, "cac:DeliveryLocation")
    return Delivery(
        party_name=_r.text(element, "cac:DeliveryParty/cac:PartyName/cbc:Name"),
        location_id=_read_identifier(_r.find(location, "cbc:ID")),
        actual_date=_r.iso_date(element, "cbc:ActualDeliveryDate"),
        address=_read_address(_r.find(location, "cac:Address")),
    )


def _read_attachment(element: Element) -> Attachment:
    binary = _r.find(element, "cac:Attachment/cbc:EmbeddedDocumentBinaryObject")
    return Attachment(
        id=_r.text(element, "cbc:ID") or "",
        description=_r.text(element, "cbc:DocumentDescription"),
        uri=_r.text(element, "cac:Attachment/cac:ExternalReference/cbc:URI"),
        content=None if binary is None else base64.b64decode(binary.text or ""),
        mime_code=None if binary is None else binary.get("mimeCode"),
        filename=None if binary is None else binary.get("filename"),
        type_code=_r.text(element, "cbc:DocumentTypeCode"),
    )


def _read_allowance(element: Element) -> AllowanceCharge:
    indicator = (_r.text(element, "cbc:ChargeIndicator") or "").strip()
    return AllowanceCharge(
        is_charge=indicator == "true",
        amount=_r.decimal(element, "cbc:Amount"),
        base_amount=_r.decimal(element, "cbc:BaseAmount"),
        percent=_r.decimal(element, "cbc:MultiplierFactorNumeric"),
        vat_category=_r.text(element, "cac:TaxCategory/cbc:ID"),
        vat_rate=_r.decimal(element, "cac:TaxCategory/cbc:Percent"),
        reason=_r.text(element, "cbc:AllowanceChargeReason"),
        reason_code=_r.text(element, "cbc:AllowanceChargeReasonCode"),
    )


def _read_line(element: Element) -> InvoiceLine:
    quantity = _r.find(element, "cbc:InvoicedQuantity")
    if quantity is None:
        quantity = _r.find(element, "cbc:CreditedQuantity")
    line_id = _r.text(element, "cbc:ID") or ""
    if quantity is None or not (quantity.text or "").strip():
        raise EInvoiceSyntaxError(f"invoice line {line_id} has no quantity (BT-129)")
    tax = _r.find(element, "cac:Item/cac:ClassifiedTaxCategory")
    price = _r.find(element, "cac:Price")
    discount = _r.find(price, "cac:AllowanceCharge")
    reference = _r.find(element, "cac:DocumentReference/cbc:ID")
    return InvoiceLine(
        id=line_id,
        quantity=_r.decimal(element, f"cbc:{local_name(quantity)}"),
        unit_code=quantity.get("unitCode") or "",
        net_amount=_r.decimal(element, "cbc:LineExtensionAmount"),
        net_price=_r.decimal(price, "cbc:PriceAmount"),
        vat_category=_r.text(tax, "cbc:ID") or "",
        item=_read_item(_r.find(element, "cac:Item")),
        vat_rate=_r.decimal(tax, "cbc:Percent"),
        gross_price=_r.decimal(discount, "cbc:BaseAmount"),
        price_discount=_r.decimal(discount, "cbc:Amount"),
        base_quantity=_r.decimal(price, "cbc:BaseQuantity"),
        base_quantity_unit=_r.attr(price, "cbc:BaseQuantity", "unitCode"),
        note=_r.text(element, "cbc:Note"),
        object_id=_read_identifier(reference),
        order_line_reference=_r.text(element, "cac:OrderLineReference/cbc:LineID"),
        accounting_reference=_r.text(element, "cbc:AccountingCost"),
        period=_read_period(_r.find(element, "cac:InvoicePeriod")),
        allowances_charges=tuple(
            _read_allowance(child) for child in _r.findall(element, "cac:AllowanceCharge")
        ),
    )


def _read_item(element: Element | None) -> Item:
    return Item(
        name=_r.text(element, "cbc:Name") or "",
        description=_r.text(element, "cbc:Description"),
        seller_id=_r.text(element, "cac:SellersItemIdentification/cbc:ID"),
        buyer_id=_r.text(element, "cac:BuyersItemIdentification/cbc:ID"),
        standard_id=_read_identifier(_r.find(element, "cac:StandardItemIdentification/cbc:ID")),
        classifications=tuple(
            Identifier(value=code.text or "", scheme=code.get("listID"))
            for code in _r.findall(
                element, "cac:CommodityClassification/cbc:ItemClassificationCode"
            )
        ),
        origin_country=_r.text(element, "cac:OriginCountry/cbc:IdentificationCode"),
        attributes=tuple(
            (_r.text(prop, "cbc:Name") or "", _r.text(prop, "cbc:Value") or "")
            for prop in _r.findall(element, "cac:AdditionalItemProperty")
        ),
    )
