"""The EN 16931 invoice, independent of its syntax.

One `EInvoice` is what the European standard calls the semantic model: the business terms
(BT-n) and groups (BG-n) that both UBL 2.1 and UN/CEFACT CII D16B carry. Writers turn it
into XML, parsers read XML back into it, so a UBL file and a CII file of the same invoice
compare equal field by field. Amounts are Decimal exactly as written (EN 16931 allows at
most two decimals on amounts; prices and quantities may carry more), in the document
currency unless the field says otherwise.

Field comments name the business term, so a reader of a validator finding (BR-CO-15 speaks
of BT-112) can find the field.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

INVOICE = "invoice"
CREDIT_NOTE = "credit_note"

PEPPOL_CUSTOMIZATION_ID = (
    "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
)
PEPPOL_PROFILE_ID = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
EN16931_CUSTOMIZATION_ID = "urn:cen.eu:en16931:2017"


@dataclass(frozen=True)
class Identifier:
    """An identifier with its optional scheme (ISO 6523 ICD or EAS code), e.g. 0088."""

    value: str
    scheme: str | None = None


@dataclass(frozen=True)
class Address:
    """BG-5 / BG-8 / BG-12 / BG-15: postal address."""

    line1: str | None = None  # BT-35
    line2: str | None = None  # BT-36
    line3: str | None = None  # BT-162
    city: str | None = None  # BT-37
    postal_code: str | None = None  # BT-38
    subdivision: str | None = None  # BT-39
    country: str | None = None  # BT-40, ISO 3166-1 alpha-2


@dataclass(frozen=True)
class Contact:
    """BG-6 / BG-9: contact point."""

    name: str | None = None  # BT-41
    phone: str | None = None  # BT-42
    email: str | None = None  # BT-43


@dataclass(frozen=True)
class Party:
    """Seller (BG-4), buyer (BG-7), payee (BG-10) or tax representative (BG-11)."""

    name: str  # BT-27 / BT-44
    trading_name: str | None = None  # BT-28 / BT-45
    identifiers: tuple[Identifier, ...] = ()  # BT-29 / BT-46
    legal_id: Identifier | None = None  # BT-30 / BT-47
    legal_form: str | None = None  # BT-33 (seller only)
    vat_id: str | None = None  # BT-31 / BT-48 / BT-63
    tax_registration_id: str | None = None  # BT-32 (seller, scheme FC)
    endpoint: Identifier | None = None  # BT-34 / BT-49, electronic address + EAS scheme
    address: Address | None = None
    contact: Contact | None = None


@dataclass(frozen=True)
class Attachment:
    """BG-24: an additional supporting document, referenced or embedded."""

    id: str  # BT-122
    description: str | None = None  # BT-123
    uri: str | None = None  # BT-124
    content: bytes | None = None  # BT-125
    mime_code: str | None = None  # BT-125 attribute
    filename: str | None = None  # BT-125 attribute
    # UBL DocumentTypeCode / CII TypeCode. None is a plain supporting document (no code in
    # UBL, 916 in CII); the invoiced object (130, BT-18) and the tender reference (CII 50,
    # BT-17) are not attachments but `EInvoice.invoiced_object` / `tender_reference`.
    type_code: str | None = None


@dataclass(frozen=True)
class AllowanceCharge:
    """BG-20 / BG-21 (document level) and BG-27 / BG-28 (line level)."""

    is_charge: bool
    amount: Decimal  # BT-92 / BT-99 / BT-136 / BT-141
    base_amount: Decimal | None = None  # BT-93 / BT-100 / BT-137 / BT-142
    percent: Decimal | None = None  # BT-94 / BT-101 / BT-138 / BT-143
    vat_category: str | None = None  # BT-95 / BT-102 (document level only)
    vat_rate: Decimal | None = None  # BT-96 / BT-103 (document level only)
    reason: str | None = None  # BT-97 / BT-104 / BT-139 / BT-144
    reason_code: str | None = None  # BT-98 / BT-105 / BT-140 / BT-145


@dataclass(frozen=True)
class VatBreakdown:
    """BG-23: one VAT category and rate, with its taxable base and tax."""

    category: str  # BT-118: S, Z, E, AE, K, G, O, L, M
    rate: Decimal | None  # BT-119 (None for category O)
    taxable_amount: Decimal  # BT-116
    tax_amount: Decimal  # BT-117
    exemption_reason: str | None = None  # BT-120
    exemption_reason_code: str | None = None  # BT-121 (VATEX code list)


@dataclass(frozen=True)
class Period:
    """BG-14 / BG-26: invoicing period."""

    start: dt.date | None = None
    end: dt.date | None = None


@dataclass(frozen=True)
class Delivery:
    """BG-13: where and when the goods or services were delivered."""

    party_name: str | None = None  # BT-70
    location_id: Identifier | None = None  # BT-71
    actual_date: dt.date | None = None  # BT-72
    address: Address | None = None  # BG-15


@dataclass(frozen=True)
class PaymentInstructions:
    """BG-16: how the buyer pays."""

    # BT-81, UNCL 4461 (30 credit transfer, 58 SEPA, 59 direct debit); "" only when a CII
    # invoice carried payment references (BT-83, BT-89, BT-90) without any payment means.
    means_code: str
    means_text: str | None = None  # BT-82
    remittance_information: str | None = None  # BT-83
    accounts: tuple[CreditTransfer, ...] = ()  # BG-17
    card_number: str | None = None  # BT-87 (last digits only)
    card_holder: str | None = None  # BT-88
    card_network: str | None = None  # UBL CardAccount/NetworkID (mandatory there), e.g. VISA
    mandate_id: str | None = None  # BT-89
    creditor_id: str | None = None  # BT-90
    debited_account: str | None = None  # BT-91


@dataclass(frozen=True)
class CreditTransfer:
    """BG-17: an account the buyer pays into."""

    account_id: str  # BT-84 (IBAN for SEPA)
    account_name: str | None = None  # BT-85
    service_provider_id: str | None = None  # BT-86 (BIC)


@dataclass(frozen=True)
class PrecedingInvoice:
    """BG-3: the invoice a credit note or corrective invoice refers to."""

    number: str  # BT-25
    issue_date: dt.date | None = None  # BT-26


@dataclass(frozen=True)
class Item:
    """BG-31: what a line sells."""

    name: str  # BT-153
    description: str | None = None  # BT-154
    seller_id: str | None = None  # BT-155
    buyer_id: str | None = None  # BT-156
    standard_id: Identifier | None = None  # BT-157
    classifications: tuple[Identifier, ...] = ()  # BT-158 (scheme = list id, e.g. STI)
    origin_country: str | None = None  # BT-159
    attributes: tuple[tuple[str, str], ...] = ()  # BG-32: (BT-160 name, BT-161 value)


@dataclass(frozen=True)
class InvoiceLine:
    """BG-25: one invoice line. `net_amount` is quantity x net price / base quantity,
    less line allowances, plus line charges, rounded to the currency (BT-131)."""

    id: str  # BT-126
    quantity: Decimal  # BT-129
    unit_code: str  # BT-130, UN/ECE Rec 20 (C62 one, HUR hour, EA each)
    net_amount: Decimal  # BT-131
    net_price: Decimal  # BT-146
    vat_category: str  # BT-151
    item: Item
    vat_rate: Decimal | None = None  # BT-152
    gross_price: Decimal | None = None  # BT-148
    price_discount: Decimal | None = None  # BT-147
    base_quantity: Decimal | None = None  # BT-149
    base_quantity_unit: str | None = None  # BT-150
    note: str | None = None  # BT-127
    object_id: Identifier | None = None  # BT-128
    order_line_reference: str | None = None  # BT-132
    accounting_reference: str | None = None  # BT-133
    period: Period | None = None  # BG-26
    allowances_charges: tuple[AllowanceCharge, ...] = ()  # BG-27 / BG-28


@dataclass(frozen=True)
class Totals:
    """BG-22: document totals."""

    line_total: Decimal  # BT-106
    tax_exclusive: Decimal  # BT-109
    tax_inclusive: Decimal  # BT-112
    payable: Decimal  # BT-115
    allowance_total: Decimal | None = None  # BT-107
    charge_total: Decimal | None = None  # BT-108
    tax_total: Decimal | None = None  # BT-110, in the document currency
    tax_total_tax_currency: Decimal | None = None  # BT-111, in BT-6
    prepaid: Decimal | None = None  # BT-113
    rounding: Decimal | None = None  # BT-114


@dataclass(frozen=True)
class EInvoice:
    """One EN 16931 invoice or credit note (BT-3 381 and `kind` credit_note)."""

    kind: str  # INVOICE or CREDIT_NOTE: the UBL root element and the document family
    number: str  # BT-1
    issue_date: dt.date  # BT-2
    type_code: str  # BT-3, UNCL 1001 (380 invoice, 381 credit note, 384 corrective)
    currency: str  # BT-5
    seller: Party  # BG-4
    buyer: Party  # BG-7
    lines: tuple[InvoiceLine, ...]  # BG-25
    vat_breakdown: tuple[VatBreakdown, ...]  # BG-23
    totals: Totals  # BG-22
    customization_id: str = PEPPOL_CUSTOMIZATION_ID  # BT-24
    profile_id: str | None = PEPPOL_PROFILE_ID  # BT-23
    tax_currency: str | None = None  # BT-6
    tax_point_date: dt.date | None = None  # BT-7
    tax_point_code: str | None = None  # BT-8, UNCL 2005
    due_date: dt.date | None = None  # BT-9
    buyer_reference: str | None = None  # BT-10
    project_reference: str | None = None  # BT-11
    contract_reference: str | None = None  # BT-12
    purchase_order_reference: str | None = None  # BT-13
    sales_order_reference: str | None = None  # BT-14
    receiving_advice_reference: str | None = None  # BT-15
    despatch_advice_reference: str | None = None  # BT-16
    tender_reference: str | None = None  # BT-17
    invoiced_object: Identifier | None = None  # BT-18
    buyer_accounting_reference: str | None = None  # BT-19
    payment_terms: str | None = None  # BT-20
    notes: tuple[tuple[str | None, str], ...] = ()  # BG-1: (BT-21 subject code, BT-22 text)
    preceding_invoices: tuple[PrecedingInvoice, ...] = ()  # BG-3
    payee: Party | None = None  # BG-10
    tax_representative: Party | None = None  # BG-11
    delivery: Delivery | None = None  # BG-13
    period: Period | None = None  # BG-14
    payment: PaymentInstructions | None = None  # BG-16
    allowances_charges: tuple[AllowanceCharge, ...] = ()  # BG-20 / BG-21
    attachments: tuple[Attachment, ...] = ()  # BG-24
    # q2c's own lineage, never written into the XML: which ERP invoice this came from.
    source_invoice_id: str | None = field(default=None, compare=False)

    @property
    def is_credit_note(self) -> bool:
        return self.kind == CREDIT_NOTE
