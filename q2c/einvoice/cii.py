"""EN 16931 invoices as UN/CEFACT CII D16B (Factur-X EN 16931 profile): writer and reader.

The writer follows the element order of the Factur-X EN 16931 XSD and the CEN syntax
binding; `invoice.customization_id` becomes the GuidelineSpecifiedDocumentContextParameter
(`urn:cen.eu:en16931:2017` for Factur-X EN 16931). CII has no credit-note root: a credit
note is a CrossIndustryInvoice whose TypeCode is a credit-note code (381 and kin), and that
is how the reader sets `kind`.

Where CII and UBL say the same thing differently, the model holds one form:
- BT-8 is held as the UNTDID 2005 code UBL uses (3, 35, 432); CII writes UNTDID 2475
  (5, 29, 72);
- an additional referenced document with TypeCode 50 is the tender reference (BT-17), with
  130 the invoiced object (BT-18), and any other is a supporting document (BG-24) whose
  `type_code` is None for 916 (or no code), the supporting-document default of both syntaxes;
- each SpecifiedTradeSettlementPaymentMeans carries one account (BG-17) of one set of
  payment instructions (BG-16).
"""

from __future__ import annotations

import base64
import datetime as dt
import re
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
    parse_xml,
    serialize,
    sub,
)

RSM_NS = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
RAM_NS = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
UDT_NS = "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100"
QDT_NS = "urn:un:unece:uncefact:data:standard:QualifiedDataType:100"

# UNTDID 1001 document types that are credit notes (EN 16931 code list for BT-3).
CREDIT_NOTE_TYPE_CODES = frozenset(
    {"81", "83", "261", "262", "296", "308", "381", "396", "420", "458", "532"}
)
# BT-8: UNTDID 2005 (UBL, the model) to UNTDID 2475 (CII) and back.
_TAX_POINT_TO_CII = {"3": "5", "35": "29", "432": "72"}
_TAX_POINT_FROM_CII = {cii: ubl for ubl, cii in _TAX_POINT_TO_CII.items()}
_TENDER = "50"
_INVOICED_OBJECT = "130"
_SUPPORTING_DOCUMENT = "916"
_SEPA_CREDIT_TRANSFER = "58"
_PROJECT_NAME = "Project reference"
_DATE_FORMAT = "102"
_IBAN = re.compile(r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{8,30}$")

_r = Reader({"rsm": RSM_NS, "ram": RAM_NS, "udt": UDT_NS, "qdt": QDT_NS})


def rsm(name: str) -> str:
    return f"{{{RSM_NS}}}{name}"


def ram(name: str) -> str:
    return f"{{{RAM_NS}}}{name}"


def udt(name: str) -> str:
    return f"{{{UDT_NS}}}{name}"


def qdt(name: str) -> str:
    return f"{{{QDT_NS}}}{name}"


# ---------------------------------------------------------------------------------------
# Writer
# ---------------------------------------------------------------------------------------


def write_cii(invoice: EInvoice) -> bytes:
    """The invoice as a CII D16B CrossIndustryInvoice."""
    root = etree.Element(
        rsm("CrossIndustryInvoice"),
        nsmap={"rsm": RSM_NS, "ram": RAM_NS, "udt": UDT_NS, "qdt": QDT_NS},
    )
    context = sub(root, rsm("ExchangedDocumentContext"))
    if invoice.profile_id is not None:
        param = sub(context, ram("BusinessProcessSpecifiedDocumentContextParameter"))
        leaf(param, ram("ID"), invoice.profile_id)
    param = sub(context, ram("GuidelineSpecifiedDocumentContextParameter"))
    leaf(param, ram("ID"), invoice.customization_id)

    document = sub(root, rsm("ExchangedDocument"))
    leaf(document, ram("ID"), invoice.number)
    leaf(document, ram("TypeCode"), invoice.type_code)
    _date_time(document, ram("IssueDateTime"), invoice.issue_date)
    for subject, text in invoice.notes:
        note = sub(document, ram("IncludedNote"))
        leaf(note, ram("Content"), text)
        leaf(note, ram("SubjectCode"), subject)

    transaction = sub(root, rsm("SupplyChainTradeTransaction"))
    for line in invoice.lines:
        _write_line(transaction, line)
    _write_agreement(transaction, invoice)
    _write_delivery(transaction, invoice)
    _write_settlement(transaction, invoice)
    return serialize(root)


def _date_time(parent: Element, tag: str, value: dt.date | None, kind: str = "udt") -> None:
    if value is None:
        return
    holder = sub(parent, tag)
    name = udt("DateTimeString") if kind == "udt" else qdt("DateTimeString")
    leaf(holder, name, value.strftime("%Y%m%d"), format=_DATE_FORMAT)


def _write_period(parent: Element, period: Period | None) -> None:
    if period is None:
        return
    element = sub(parent, ram("BillingSpecifiedPeriod"))
    _date_time(element, ram("StartDateTime"), period.start)
    _date_time(element, ram("EndDateTime"), period.end)


def _identifiers(parent: Element, identifiers) -> None:
    """Unschemed identifiers are ram:ID, schemed ones ram:GlobalID; the XSD wants IDs first."""
    for ident in identifiers:
        if ident.scheme is None:
            leaf(parent, ram("ID"), ident.value)
    for ident in identifiers:
        if ident.scheme is not None:
            leaf(parent, ram("GlobalID"), ident.value, schemeID=ident.scheme)


def _write_party(parent: Element, tag: str, party: Party | None) -> None:
    if party is None:
        return
    element = sub(parent, tag)
    _identifiers(element, party.identifiers)
    leaf(element, ram("Name"), party.name)
    leaf(element, ram("Description"), party.legal_form)
    if party.legal_id is not None or party.trading_name is not None:
        legal = sub(element, ram("SpecifiedLegalOrganization"))
        if party.legal_id is not None:
            leaf(legal, ram("ID"), party.legal_id.value, schemeID=party.legal_id.scheme)
        leaf(legal, ram("TradingBusinessName"), party.trading_name)
    _write_contact(element, party.contact)
    _write_address(element, party.address)
    if party.endpoint is not None:
        uri = sub(element, ram("URIUniversalCommunication"))
        leaf(uri, ram("URIID"), party.endpoint.value, schemeID=party.endpoint.scheme)
    for value, scheme in ((party.vat_id, "VA"), (party.tax_registration_id, "FC")):
        if value is not None:
            leaf(sub(element, ram("SpecifiedTaxRegistration")), ram("ID"), value, schemeID=scheme)


def _write_contact(parent: Element, contact: Contact | None) -> None:
    if contact is None:
        return
    element = sub(parent, ram("DefinedTradeContact"))
    leaf(element, ram("PersonName"), contact.name)
    if contact.phone is not None:
        phone = sub(element, ram("TelephoneUniversalCommunication"))
        leaf(phone, ram("CompleteNumber"), contact.phone)
    if contact.email is not None:
        email = sub(element, ram("EmailURIUniversalCommunication"))
        leaf(email, ram("URIID"), contact.email)


def _write_address(parent: Element, address: Address | None) -> None:
    if address is None:
        return
    element = sub(parent, ram("PostalTradeAddress"))
    leaf(element, ram("PostcodeCode"), address.postal_code)
    leaf(element, ram("LineOne"), address.line1)
    leaf(element, ram("LineTwo"), address.line2)
    leaf(element, ram("LineThree"), address.line3)
    leaf(element, ram("CityName"), address.city)
    leaf(element, ram("CountryID"), address.country)
    leaf(element, ram("CountrySubDivisionName"), address.subdivision)


def _referenced(parent: Element, tag: str, value: str | None) -> None:
    if value is not None:
        leaf(sub(parent, tag), ram("IssuerAssignedID"), value)


def _write_agreement(transaction: Element, invoice: EInvoice) -> None:
    agreement = sub(transaction, ram("ApplicableHeaderTradeAgreement"))
    leaf(agreement, ram("BuyerReference"), invoice.buyer_reference)
    _write_party(agreement, ram("SellerTradeParty"), invoice.seller)
    _write_party(agreement, ram("BuyerTradeParty"), invoice.buyer)
    _write_party(agreement, ram("SellerTaxRepresentativeTradeParty"), invoice.tax_representative)
    _referenced(agreement, ram("SellerOrderReferencedDocument"), invoice.sales_order_reference)
    _referenced(agreement, ram("BuyerOrderReferencedDocument"), invoice.purchase_order_reference)
    _referenced(agreement, ram("ContractReferencedDocument"), invoice.contract_reference)
    for attachment in invoice.attachments:
        _write_attachment(agreement, attachment)
    if invoice.tender_reference is not None:
        ref = sub(agreement, ram("AdditionalReferencedDocument"))
        leaf(ref, ram("IssuerAssignedID"), invoice.tender_reference)
        leaf(ref, ram("TypeCode"), _TENDER)
    if invoice.invoiced_object is not None:
        ref = sub(agreement, ram("AdditionalReferencedDocument"))
        leaf(ref, ram("IssuerAssignedID"), invoice.invoiced_object.value)
        leaf(ref, ram("TypeCode"), _INVOICED_OBJECT)
        leaf(ref, ram("ReferenceTypeCode"), invoice.invoiced_object.scheme)
    if invoice.project_reference is not None:
        project = sub(agreement, ram("SpecifiedProcuringProject"))
        leaf(project, ram("ID"), invoice.project_reference)
        leaf(project, ram("Name"), _PROJECT_NAME)


def _write_attachment(agreement: Element, attachment: Attachment) -> None:
    ref = sub(agreement, ram("AdditionalReferencedDocument"))
    leaf(ref, ram("IssuerAssignedID"), attachment.id)
    leaf(ref, ram("URIID"), attachment.uri)
    leaf(ref, ram("TypeCode"), attachment.type_code or _SUPPORTING_DOCUMENT)
    leaf(ref, ram("Name"), attachment.description)
    if attachment.content is not None:
        leaf(
            ref,
            ram("AttachmentBinaryObject"),
            base64.b64encode(attachment.content).decode("ascii"),
            mimeCode=attachment.mime_code,
            filename=attachment.filename,
        )


def _write_delivery(transaction: Element, invoice: EInvoice) -> None:
    element = sub(transaction, ram("ApplicableHeaderTradeDelivery"))
    delivery = invoice.delivery
    if delivery is not None:
        if (
            delivery.location_id is not None
            or delivery.party_name is not None
            or delivery.address is not None
        ):
            ship_to = sub(element, ram("ShipToTradeParty"))
            if delivery.location_id is not None:
                _identifiers(ship_to, (delivery.location_id,))
            leaf(ship_to, ram("Name"), delivery.party_name)
            _write_address(ship_to, delivery.address)
        if delivery.actual_date is not None:
            event = sub(element, ram("ActualDeliverySupplyChainEvent"))
            _date_time(event, ram("OccurrenceDateTime"), delivery.actual_date)
    _referenced(element, ram("DespatchAdviceReferencedDocument"), invoice.despatch_advice_reference)
    _referenced(
        element, ram("ReceivingAdviceReferencedDocument"), invoice.receiving_advice_reference
    )


def _write_settlement(transaction: Element, invoice: EInvoice) -> None:
    settlement = sub(transaction, ram("ApplicableHeaderTradeSettlement"))
    payment = invoice.payment
    if payment is not None:
        leaf(settlement, ram("CreditorReferenceID"), payment.creditor_id)
        leaf(settlement, ram("PaymentReference"), payment.remittance_information)
    if invoice.tax_currency != invoice.currency:
        # CII rejects a VAT accounting currency equal to the invoice currency (BR-53).
        leaf(settlement, ram("TaxCurrencyCode"), invoice.tax_currency)
    leaf(settlement, ram("InvoiceCurrencyCode"), invoice.currency)
    _write_party(settlement, ram("PayeeTradeParty"), invoice.payee)
    if payment is not None:
        _write_payment_means(settlement, payment)
    for index, vat in enumerate(invoice.vat_breakdown):
        _write_tax(settlement, vat, invoice, tax_point=index == 0)
    _write_period(settlement, invoice.period)
    for allowance in invoice.allowances_charges:
        _write_allowance(settlement, allowance, with_tax=True)
    mandate = payment.mandate_id if payment is not None else None
    if invoice.payment_terms is not None or invoice.due_date is not None or mandate is not None:
        terms = sub(settlement, ram("SpecifiedTradePaymentTerms"))
        leaf(terms, ram("Description"), invoice.payment_terms)
        _date_time(terms, ram("DueDateDateTime"), invoice.due_date)
        leaf(terms, ram("DirectDebitMandateID"), mandate)
    _write_totals(settlement, invoice)
    for preceding in invoice.preceding_invoices:
        ref = sub(settlement, ram("InvoiceReferencedDocument"))
        leaf(ref, ram("IssuerAssignedID"), preceding.number)
        _date_time(ref, ram("FormattedIssueDateTime"), preceding.issue_date, kind="qdt")
    if invoice.buyer_accounting_reference is not None:
        account = sub(settlement, ram("ReceivableSpecifiedTradeAccountingAccount"))
        leaf(account, ram("ID"), invoice.buyer_accounting_reference)


def _write_payment_means(settlement: Element, payment: PaymentInstructions) -> None:
    if not payment.means_code and not payment.accounts:
        return  # references only (creditor id, remittance, mandate): no means was given
    accounts: tuple[CreditTransfer | None, ...] = payment.accounts or (None,)
    for index, account in enumerate(accounts):
        means = sub(settlement, ram("SpecifiedTradeSettlementPaymentMeans"))
        leaf(means, ram("TypeCode"), payment.means_code)
        leaf(means, ram("Information"), payment.means_text)
        if index == 0 and payment.card_number is not None:
            card = sub(means, ram("ApplicableTradeSettlementFinancialCard"))
            leaf(card, ram("ID"), payment.card_number)
            leaf(card, ram("CardholderName"), payment.card_holder)
        if index == 0 and payment.debited_account is not None:
            debtor = sub(means, ram("PayerPartyDebtorFinancialAccount"))
            leaf(debtor, ram("IBANID"), payment.debited_account)
        if account is None:
            continue
        creditor = sub(means, ram("PayeePartyCreditorFinancialAccount"))
        if _is_iban(account.account_id) or payment.means_code == _SEPA_CREDIT_TRANSFER:
            leaf(creditor, ram("IBANID"), account.account_id)
            leaf(creditor, ram("AccountName"), account.account_name)
        else:
            leaf(creditor, ram("AccountName"), account.account_name)
            leaf(creditor, ram("ProprietaryID"), account.account_id)
        if account.service_provider_id is not None:
            bank = sub(means, ram("PayeeSpecifiedCreditorFinancialInstitution"))
            leaf(bank, ram("BICID"), account.service_provider_id)


def _is_iban(account_id: str) -> bool:
    return bool(_IBAN.match(account_id.replace(" ", "").upper()))


def _write_tax(settlement: Element, vat: VatBreakdown, invoice: EInvoice, tax_point: bool):
    """BT-7 and BT-8 are document-level: CII carries them once, in the first tax."""
    tax = sub(settlement, ram("ApplicableTradeTax"))
    leaf(tax, ram("CalculatedAmount"), vat.tax_amount)
    leaf(tax, ram("TypeCode"), "VAT")
    leaf(tax, ram("ExemptionReason"), vat.exemption_reason)
    leaf(tax, ram("BasisAmount"), vat.taxable_amount)
    leaf(tax, ram("CategoryCode"), vat.category)
    leaf(tax, ram("ExemptionReasonCode"), vat.exemption_reason_code)
    if tax_point and invoice.tax_point_date is not None:
        point = sub(tax, ram("TaxPointDate"))
        leaf(point, udt("DateString"), invoice.tax_point_date.strftime("%Y%m%d"), format="102")
    if tax_point and invoice.tax_point_code is not None:
        code = _TAX_POINT_TO_CII.get(invoice.tax_point_code, invoice.tax_point_code)
        leaf(tax, ram("DueDateTypeCode"), code)
    leaf(tax, ram("RateApplicablePercent"), vat.rate)


def _write_allowance(parent: Element, allowance: AllowanceCharge, with_tax: bool) -> None:
    element = sub(parent, ram("SpecifiedTradeAllowanceCharge"))
    indicator = sub(element, ram("ChargeIndicator"))
    leaf(indicator, udt("Indicator"), "true" if allowance.is_charge else "false")
    leaf(element, ram("CalculationPercent"), allowance.percent)
    leaf(element, ram("BasisAmount"), allowance.base_amount)
    leaf(element, ram("ActualAmount"), allowance.amount)
    leaf(element, ram("ReasonCode"), allowance.reason_code)
    leaf(element, ram("Reason"), allowance.reason)
    if with_tax and allowance.vat_category is not None:
        tax = sub(element, ram("CategoryTradeTax"))
        leaf(tax, ram("TypeCode"), "VAT")
        leaf(tax, ram("CategoryCode"), allowance.vat_category)
        leaf(tax, ram("RateApplicablePercent"), allowance.vat_rate)


def _write_totals(settlement: Element, invoice: EInvoice) -> None:
    totals = invoice.totals
    element = sub(settlement, ram("SpecifiedTradeSettlementHeaderMonetarySummation"))
    leaf(element, ram("LineTotalAmount"), totals.line_total)
    leaf(element, ram("ChargeTotalAmount"), totals.charge_total)
    leaf(element, ram("AllowanceTotalAmount"), totals.allowance_total)
    leaf(element, ram("TaxBasisTotalAmount"), totals.tax_exclusive)
    leaf(element, ram("TaxTotalAmount"), totals.tax_total, currencyID=invoice.currency)
    leaf(
        element,
        ram("TaxTotalAmount"),
        totals.tax_total_tax_currency,
        currencyID=invoice.tax_currency or invoice.currency,
    )
    leaf(element, ram("RoundingAmount"), totals.rounding)
    leaf(element, ram("GrandTotalAmount"), totals.tax_inclusive)
    leaf(element, ram("TotalPrepaidAmount"), totals.prepaid)
    leaf(element, ram("DuePayableAmount"), totals.payable)


def _write_line(transaction: Element, line: InvoiceLine) -> None:
    element = sub(transaction, ram("IncludedSupplyChainTradeLineItem"))
    document = sub(element, ram("AssociatedDocumentLineDocument"))
    leaf(document, ram("LineID"), line.id)
    if line.note is not None:
        leaf(sub(document, ram("IncludedNote")), ram("Content"), line.note)
    _write_product(element, line.item)

    agreement = sub(element, ram("SpecifiedLineTradeAgreement"))
    if line.order_line_reference is not None:
        order = sub(agreement, ram("BuyerOrderReferencedDocument"))
        leaf(order, ram("LineID"), line.order_line_reference)
    base_unit = line.base_quantity_unit
    if line.gross_price is not None or line.price_discount is not None:
        gross_price = line.gross_price
        if gross_price is None:
            gross_price = line.net_price + line.price_discount
        gross = sub(agreement, ram("GrossPriceProductTradePrice"))
        leaf(gross, ram("ChargeAmount"), gross_price)
        leaf(gross, ram("BasisQuantity"), line.base_quantity, unitCode=base_unit)
        if line.price_discount is not None:
            discount = sub(gross, ram("AppliedTradeAllowanceCharge"))
            leaf(sub(discount, ram("ChargeIndicator")), udt("Indicator"), "false")
            leaf(discount, ram("ActualAmount"), line.price_discount)
    net = sub(agreement, ram("NetPriceProductTradePrice"))
    leaf(net, ram("ChargeAmount"), line.net_price)
    leaf(net, ram("BasisQuantity"), line.base_quantity, unitCode=base_unit)

    delivery = sub(element, ram("SpecifiedLineTradeDelivery"))
    leaf(delivery, ram("BilledQuantity"), line.quantity, unitCode=line.unit_code or None)

    settlement = sub(element, ram("SpecifiedLineTradeSettlement"))
    tax = sub(settlement, ram("ApplicableTradeTax"))
    leaf(tax, ram("TypeCode"), "VAT")
    leaf(tax, ram("CategoryCode"), line.vat_category)
    leaf(tax, ram("RateApplicablePercent"), line.vat_rate)
    _write_period(settlement, line.period)
    for allowance in line.allowances_charges:
        _write_allowance(settlement, allowance, with_tax=False)
    summation = sub(settlement, ram("SpecifiedTradeSettlementLineMonetarySummation"))
    leaf(summation, ram("LineTotalAmount"), line.net_amount)
    if line.object_id is not None:
        ref = sub(settlement, ram("AdditionalReferencedDocument"))
        leaf(ref, ram("IssuerAssignedID"), line.object_id.value)
        leaf(ref, ram("TypeCode"), _INVOICED_OBJECT)
        leaf(ref, ram("ReferenceTypeCode"), line.object_id.scheme)
    if line.accounting_reference is not None:
        account = sub(settlement, ram("ReceivableSpecifiedTradeAccountingAccount"))
        leaf(account, ram("ID"), line.accounting_reference)


def _write_product(parent: Element, item: Item) -> None:
    element = sub(parent, ram("SpecifiedTradeProduct"))
    if item.standard_id is not None:
        leaf(element, ram("GlobalID"), item.standard_id.value, schemeID=item.standard_id.scheme)
    leaf(element, ram("SellerAssignedID"), item.seller_id)
    leaf(element, ram("BuyerAssignedID"), item.buyer_id)
    leaf(element, ram("Name"), item.name)
    leaf(element, ram("Description"), item.description)
    for name, value in item.attributes:
        characteristic = sub(element, ram("ApplicableProductCharacteristic"))
        leaf(characteristic, ram("Description"), name)
        leaf(characteristic, ram("Value"), value)
    for classification in item.classifications:
        holder = sub(element, ram("DesignatedProductClassification"))
        leaf(holder, ram("ClassCode"), classification.value, listID=classification.scheme)
    if item.origin_country is not None:
        leaf(sub(element, ram("OriginTradeCountry")), ram("ID"), item.origin_country)


# ---------------------------------------------------------------------------------------
# Reader
# ---------------------------------------------------------------------------------------


def read_cii(xml: bytes) -> EInvoice:
    """Parse a CII D16B CrossIndustryInvoice into the EN 16931 model."""
    root = parse_xml(xml)
    if root.tag != rsm("CrossIndustryInvoice"):
        raise EInvoiceSyntaxError(f"expected a CII CrossIndustryInvoice root, found {root.tag}")
    context = _r.find(root, "rsm:ExchangedDocumentContext")
    document = _r.find(root, "rsm:ExchangedDocument")
    transaction = _r.find(root, "rsm:SupplyChainTradeTransaction")
    agreement = _r.find(transaction, "ram:ApplicableHeaderTradeAgreement")
    delivery = _r.find(transaction, "ram:ApplicableHeaderTradeDelivery")
    settlement = _r.find(transaction, "ram:ApplicableHeaderTradeSettlement")
    terms = _r.find(settlement, "ram:SpecifiedTradePaymentTerms")
    currency = _r.text(settlement, "ram:InvoiceCurrencyCode") or ""
    tax_currency = _r.text(settlement, "ram:TaxCurrencyCode")
    type_code = _r.text(document, "ram:TypeCode") or ""
    taxes = _r.findall(settlement, "ram:ApplicableTradeTax")
    tender, invoiced_object, attachments = _read_references(agreement)
    tax_point_code = _first(_r.text(tax, "ram:DueDateTypeCode") for tax in taxes)
    return EInvoice(
        kind=CREDIT_NOTE if type_code.strip() in CREDIT_NOTE_TYPE_CODES else INVOICE,
        number=_r.text(document, "ram:ID") or "",
        issue_date=_date(document, "ram:IssueDateTime/udt:DateTimeString"),
        type_code=type_code,
        currency=currency,
        seller=_read_party(_r.find(agreement, "ram:SellerTradeParty")),
        buyer=_read_party(_r.find(agreement, "ram:BuyerTradeParty")),
        lines=tuple(
            _read_line(line)
            for line in _r.findall(transaction, "ram:IncludedSupplyChainTradeLineItem")
        ),
        vat_breakdown=tuple(_read_tax(tax) for tax in taxes),
        totals=_read_totals(settlement, currency, tax_currency),
        customization_id=_r.text(context, "ram:GuidelineSpecifiedDocumentContextParameter/ram:ID")
        or "",
        profile_id=_r.text(context, "ram:BusinessProcessSpecifiedDocumentContextParameter/ram:ID"),
        tax_currency=tax_currency,
        tax_point_date=_first(_date(tax, "ram:TaxPointDate/udt:DateString") for tax in taxes),
        tax_point_code=_TAX_POINT_FROM_CII.get(tax_point_code, tax_point_code),
        due_date=_date(terms, "ram:DueDateDateTime/udt:DateTimeString"),
        buyer_reference=_r.text(agreement, "ram:BuyerReference"),
        project_reference=_r.text(agreement, "ram:SpecifiedProcuringProject/ram:ID"),
        contract_reference=_r.text(
            agreement, "ram:ContractReferencedDocument/ram:IssuerAssignedID"
        ),
        purchase_order_reference=_r.text(
            agreement, "ram:BuyerOrderReferencedDocument/ram:IssuerAssignedID"
        ),
        sales_order_reference=_r.text(
            agreement, "ram:SellerOrderReferencedDocument/ram:IssuerAssignedID"
        ),
        receiving_advice_reference=_r.text(
            delivery, "ram:ReceivingAdviceReferencedDocument/ram:IssuerAssignedID"
        ),
        despatch_advice_reference=_r.text(
            delivery, "ram:DespatchAdviceReferencedDocument/ram:IssuerAssignedID"
        ),
        tender_reference=tender,
        invoiced_object=invoiced_object,
        buyer_accounting_reference=_r.text(
            settlement, "ram:ReceivableSpecifiedTradeAccountingAccount/ram:ID"
        ),
        payment_terms=_r.text(terms, "ram:Description"),
        notes=tuple(
            (_r.text(note, "ram:SubjectCode"), _r.text(note, "ram:Content") or "")
            for note in _r.findall(document, "ram:IncludedNote")
        ),
        preceding_invoices=tuple(
            PrecedingInvoice(
                number=_r.text(ref, "ram:IssuerAssignedID") or "",
                issue_date=_date(ref, "ram:FormattedIssueDateTime/qdt:DateTimeString"),
            )
            for ref in _r.findall(settlement, "ram:InvoiceReferencedDocument")
        ),
        payee=_read_party(_r.find(settlement, "ram:PayeeTradeParty")),
        tax_representative=_read_party(
            _r.find(agreement, "ram:SellerTaxRepresentativeTradeParty")
        ),
        delivery=_read_delivery(delivery),
        period=_read_period(_r.find(settlement, "ram:BillingSpecifiedPeriod")),
        payment=_read_payment(settlement, terms),
        allowances_charges=tuple(
            _read_allowance(element)
            for element in _r.findall(settlement, "ram:SpecifiedTradeAllowanceCharge")
        ),
        attachments=attachments,
    )


def _first(values):
    return next((value for value in values if value is not None), None)


def _date(element: Element | None, path: str) -> dt.date | None:
    found = _r.find(element, path)
    if found is None or not (found.text or "").strip():
        return None
    text, fmt = found.text.strip(), found.get("format", _DATE_FORMAT)
    if fmt != _DATE_FORMAT:
        raise EInvoiceSyntaxError(
            f"{path}: date format {fmt} is not supported; EN 16931 uses format 102 (YYYYMMDD)"
        )
    try:
        return dt.datetime.strptime(text, "%Y%m%d").date()
    except ValueError as exc:
        raise EInvoiceSyntaxError(f"{path}: `{text}` is not a YYYYMMDD date") from exc


def _read_identifier(element: Element | None) -> Identifier | None:
    if element is None:
        return None
    return Identifier(value=element.text or "", scheme=element.get("schemeID"))


def _party_identifiers(element: Element | None) -> tuple[Identifier, ...]:
    found = _r.findall(element, "ram:ID") + _r.findall(element, "ram:GlobalID")
    return tuple(_read_identifier(ident) for ident in found)


def _read_party(element: Element | None) -> Party | None:
    if element is None:
        return None
    vat_id = tax_registration_id = None
    for registration in _r.findall(element, "ram:SpecifiedTaxRegistration/ram:ID"):
        scheme = (registration.get("schemeID") or "").strip()
        if scheme == "VA" and vat_id is None:
            vat_id = registration.text or ""
        elif scheme != "VA" and tax_registration_id is None:
            tax_registration_id = registration.text or ""
    legal = _r.find(element, "ram:SpecifiedLegalOrganization")
    return Party(
        name=_r.text(element, "ram:Name") or "",
        trading_name=_r.text(legal, "ram:TradingBusinessName"),
        identifiers=_party_identifiers(element),
        legal_id=_read_identifier(_r.find(legal, "ram:ID")),
        legal_form=_r.text(element, "ram:Description"),
        vat_id=vat_id,
        tax_registration_id=tax_registration_id,
        endpoint=_read_identifier(_r.find(element, "ram:URIUniversalCommunication/ram:URIID")),
        address=_read_address(_r.find(element, "ram:PostalTradeAddress")),
        contact=_read_contact(_r.find(element, "ram:DefinedTradeContact")),
    )


def _read_contact(element: Element | None) -> Contact | None:
    if element is None:
        return None
    name = _r.text(element, "ram:PersonName")
    return Contact(
        name=name if name is not None else _r.text(element, "ram:DepartmentName"),
        phone=_r.text(element, "ram:TelephoneUniversalCommunication/ram:CompleteNumber"),
        email=_r.text(element, "ram:EmailURIUniversalCommunication/ram:URIID"),
    )


def _read_address(element: Element | None) -> Address | None:
    if element is None:
        return None
    return Address(
        line1=_r.text(element, "ram:LineOne"),
        line2=_r.text(element, "ram:LineTwo"),
        line3=_r.text(element, "ram:LineThree"),
        city=_r.text(element, "ram:CityName"),
        postal_code=_r.text(element, "ram:PostcodeCode"),
        subdivision=_r.text(element, "ram:CountrySubDivisionName"),
        country=_r.text(element, "ram:CountryID"),
    )


def _read_references(agreement: Element | None):
    tender = invoiced_object = None
    attachments = []
    for ref in _r.findall(agreement, "ram:AdditionalReferencedDocument"):
        type_code = (_r.text(ref, "ram:TypeCode") or "").strip()
        issuer_id = _r.text(ref, "ram:IssuerAssignedID") or ""
        if type_code == _TENDER and tender is None:
            tender = issuer_id
        elif type_code == _INVOICED_OBJECT and invoiced_object is None:
            invoiced_object = Identifier(issuer_id, _r.text(ref, "ram:ReferenceTypeCode"))
        else:
            binary = _r.find(ref, "ram:AttachmentBinaryObject")
            attachments.append(
                Attachment(
                    id=issuer_id,
                    description=_r.text(ref, "ram:Name"),
                    uri=_r.text(ref, "ram:URIID"),
                    content=None if binary is None else base64.b64decode(binary.text or ""),
                    mime_code=None if binary is None else binary.get("mimeCode"),
                    filename=None if binary is None else binary.get("filename"),
                    type_code=None if type_code in ("", _SUPPORTING_DOCUMENT) else type_code,
                )
            )
    return tender, invoiced_object, tuple(attachments)


def _read_delivery(element: Element | None) -> Delivery | None:
    ship_to = _r.find(element, "ram:ShipToTradeParty")
    actual = _date(element, "ram:ActualDeliverySupplyChainEvent/ram:OccurrenceDateTime/"
                   "udt:DateTimeString")
    if ship_to is None and actual is None:
        return None
    identifiers = _party_identifiers(ship_to)
    return Delivery(
        party_name=_r.text(ship_to, "ram:Name"),
        location_id=identifiers[0] if identifiers else None,
        actual_date=actual,
        address=_read_address(_r.find(ship_to, "ram:PostalTradeAddress")),
    )


def _read_period(element: Element | None) -> Period | None:
    if element is None:
        return None
    start = _date(element, "ram:StartDateTime/udt:DateTimeString")
    end = _date(element, "ram:EndDateTime/udt:DateTimeString")
    if start is None and end is None:
        return None
    return Period(start=start, end=end)


def _read_payment(settlement: Element | None, terms: Element | None):
    means = _r.findall(settlement, "ram:SpecifiedTradeSettlementPaymentMeans")
    creditor_id = _r.text(settlement, "ram:CreditorReferenceID")
    remittance = _r.text(settlement, "ram:PaymentReference")
    mandate = _r.text(terms, "ram:DirectDebitMandateID")
    if not means and creditor_id is None and remittance is None and mandate is None:
        return None
    accounts = []
    for element in means:
        account = _r.find(element, "ram:PayeePartyCreditorFinancialAccount")
        if account is None:
            continue
        account_id = _r.text(account, "ram:IBANID")
        if account_id is None:
            account_id = _r.text(account, "ram:ProprietaryID")
        accounts.append(
            CreditTransfer(
                account_id=account_id or "",
                account_name=_r.text(account, "ram:AccountName"),
                service_provider_id=_r.text(
                    element, "ram:PayeeSpecifiedCreditorFinancialInstitution/ram:BICID"
                ),
            )
        )
    card_path = "ram:ApplicableTradeSettlementFinancialCard"
    return PaymentInstructions(
        means_code=_first(_r.text(e, "ram:TypeCode") for e in means) or "",
        means_text=_first(_r.text(e, "ram:Information") for e in means),
        remittance_information=remittance,
        accounts=tuple(accounts),
        card_number=_first(_r.text(e, f"{card_path}/ram:ID") for e in means),
        card_holder=_first(_r.text(e, f"{card_path}/ram:CardholderName") for e in means),
        mandate_id=mandate,
        creditor_id=creditor_id,
        debited_account=_first(
            _r.text(e, "ram:PayerPartyDebtorFinancialAccount/ram:IBANID") for e in means
        ),
    )


def _read_tax(element: Element) -> VatBreakdown:
    return VatBreakdown(
        category=_r.text(element, "ram:CategoryCode") or "",
        rate=_r.decimal(element, "ram:RateApplicablePercent"),
        taxable_amount=_r.decimal(element, "ram:BasisAmount"),
        tax_amount=_r.decimal(element, "ram:CalculatedAmount"),
        exemption_reason=_r.text(element, "ram:ExemptionReason"),
        exemption_reason_code=_r.text(element, "ram:ExemptionReasonCode"),
    )


def _read_totals(settlement: Element | None, currency: str, tax_currency: str | None) -> Totals:
    element = _r.find(settlement, "ram:SpecifiedTradeSettlementHeaderMonetarySummation")
    tax_total: Decimal | None = None
    tax_total_tax_currency: Decimal | None = None
    for amount in _r.findall(element, "ram:TaxTotalAmount"):
        value = _r.decimal(amount, ".")
        in_tax_currency = tax_currency not in (None, currency) and (
            amount.get("currencyID") == tax_currency
        )
        if tax_total is None and not in_tax_currency:
            tax_total = value
        else:
            tax_total_tax_currency = value
    return Totals(
        line_total=_r.decimal(element, "ram:LineTotalAmount"),
        tax_exclusive=_r.decimal(element, "ram:TaxBasisTotalAmount"),
        tax_inclusive=_r.decimal(element, "ram:GrandTotalAmount"),
        payable=_r.decimal(element, "ram:DuePayableAmount"),
        allowance_total=_r.decimal(element, "ram:AllowanceTotalAmount"),
        charge_total=_r.decimal(element, "ram:ChargeTotalAmount"),
        tax_total=tax_total,
        tax_total_tax_currency=tax_total_tax_currency,
        prepaid=_r.decimal(element, "ram:TotalPrepaidAmount"),
        rounding=_r.decimal(element, "ram:RoundingAmount"),
    )


def _read_allowance(element: Element) -> AllowanceCharge:
    indicator = (_r.text(element, "ram:ChargeIndicator/udt:Indicator") or "").strip()
    return AllowanceCharge(
        is_charge=indicator == "true",
        amount=_r.decimal(element, "ram:ActualAmount"),
        base_amount=_r.decimal(element, "ram:BasisAmount"),
        percent=_r.decimal(element, "ram:CalculationPercent"),
        vat_category=_r.text(element, "ram:CategoryTradeTax/ram:CategoryCode"),
        vat_rate=_r.decimal(element, "ram:CategoryTradeTax/ram:RateApplicablePercent"),
        reason=_r.text(element, "ram:Reason"),
        reason_code=_r.text(element, "ram:ReasonCode"),
    )


def _read_line(element: Element) -> InvoiceLine:
    line_id = _r.text(element, "ram:AssociatedDocumentLineDocument/ram:LineID") or ""
    agreement = _r.find(element, "ram:SpecifiedLineTradeAgreement")
    gross = _r.find(agreement, "ram:GrossPriceProductTradePrice")
    net = _r.find(agreement, "ram:NetPriceProductTradePrice")
    quantity = _r.find(element, "ram:SpecifiedLineTradeDelivery/ram:BilledQuantity")
    if quantity is None or not (quantity.text or "").strip():
        raise EInvoiceSyntaxError(f"invoice line {line_id} has no BilledQuantity (BT-129)")
    settlement = _r.find(element, "ram:SpecifiedLineTradeSettlement")
    tax = _r.find(settlement, "ram:ApplicableTradeTax")
    basis = _r.find(net, "ram:BasisQuantity")
    if basis is None:
        basis = _r.find(gross, "ram:BasisQuantity")
    reference = _r.find(settlement, "ram:AdditionalReferencedDocument")
    return InvoiceLine(
        id=line_id,
        quantity=_r.decimal(quantity, "."),
        unit_code=quantity.get("unitCode") or "",
        net_amount=_r.decimal(
            settlement, "ram:SpecifiedTradeSettlementLineMonetarySummation/ram:LineTotalAmount"
        ),
        net_price=_r.decimal(net, "ram:ChargeAmount"),
        vat_category=_r.text(tax, "ram:CategoryCode") or "",
        item=_read_product(_r.find(element, "ram:SpecifiedTradeProduct")),
        vat_rate=_r.decimal(tax, "ram:RateApplicablePercent"),
        gross_price=_r.decimal(gross, "ram:ChargeAmount"),
        price_discount=_r.decimal(gross, "ram:AppliedTradeAllowanceCharge/ram:ActualAmount"),
        base_quantity=None if basis is None else _r.decimal(basis, "."),
        base_quantity_unit=None if basis is None else basis.get("unitCode"),
        note=_r.text(element, "ram:AssociatedDocumentLineDocument/ram:IncludedNote/ram:Content"),
        object_id=None
        if reference is None
        else Identifier(
            _r.text(reference, "ram:IssuerAssignedID") or "",
            _r.text(reference, "ram:ReferenceTypeCode"),
        ),
        order_line_reference=_r.text(agreement, "ram:BuyerOrderReferencedDocument/ram:LineID"),
        accounting_reference=_r.text(
            settlement, "ram:ReceivableSpecifiedTradeAccountingAccount/ram:ID"
        ),
        period=_read_period(_r.find(settlement, "ram:BillingSpecifiedPeriod")),
        allowances_charges=tuple(
            _read_allowance(child)
            for child in _r.findall(settlement, "ram:SpecifiedTradeAllowanceCharge")
        ),
    )


def _read_product(element: Element | None) -> Item:
    return Item(
        name=_r.text(element, "ram:Name") or "",
        description=_r.text(element, "ram:Description"),
        seller_id=_r.text(element, "ram:SellerAssignedID"),
        buyer_id=_r.text(element, "ram:BuyerAssignedID"),
        standard_id=_read_identifier(_r.find(element, "ram:GlobalID")),
        classifications=tuple(
            Identifier(code.text or "", code.get("listID"))
            for code in _r.findall(element, "ram:DesignatedProductClassification/ram:ClassCode")
        ),
        origin_country=_r.text(element, "ram:OriginTradeCountry/ram:ID"),
        attributes=tuple(
            (_r.text(c, "ram:Description") or "", _r.text(c, "ram:Value") or "")
            for c in _r.findall(element, "ram:ApplicableProductCharacteristic")
        ),
    )
