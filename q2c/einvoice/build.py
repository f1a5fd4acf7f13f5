"""Build the EN 16931 e-invoice of an issued ERP invoice, and hold it if it cannot comply.

The ERP owns the invoice: its lines, tax and total are what the customer was charged, and
q2c never recomputes or edits them. The EN 16931 calculation (`q2c.einvoice.calc`) is run
next to the ERP's figures to produce the VAT breakdown the standard wants and to CHECK the
ERP: a line amount that is not quantity x price, a tax that is not taxable x rate, or a total
that is not lines + tax beyond what rounding explains is reported under the rule it breaks.
A residual that rounding does explain (the ERP rounded VAT per line, or a VAT-inclusive
price list) goes into the rounding amount BT-114 and nowhere else.

VAT category of each ERP tax rate (the ERP records rates, EN 16931 wants categories):

- rate above 0: S, standard rated, with that rate;
- rate 0 (or no tax line at all), in this order:
  - `zero_rate_category` when the caller names one (Z, E, AE, K, G, O), for example K for an
    intra-community supply of goods or G for exported goods;
  - buyer in another EU member state than the seller: AE, reverse charge. The buyer VAT id
    is then mandatory (BR-AE-02); without it the invoice is held, never sent as S or O;
  - buyer outside the EU: O, not subject to VAT (services whose place of supply is abroad).
    EN 16931 forbids the seller and buyer VAT ids on such an invoice (BR-O-02), so it
    needs another seller identifier (BR-CO-26);
  - buyer in the seller's country: E when an `exemption_reason` is given, else Z.
  Exempt categories carry the VATEX code and the standard reason text (AE "Reverse charge").

Which line has which rate: from `line_vat_rates` (line index to rate) when given, else the
only rate when the invoice has one, else the single assignment of lines to rates whose line
sums match the ERP's taxable amounts. When none of these decides, the invoice is held
(BR-CO-04) and the caller has to pass `line_vat_rates`.

Discount lines (and the ERP's header discount) become document level allowances (BG-20,
reason code 95), one per VAT category and rate; with several rates the ERP's taxable
amounts say how the discount was split, else it is split in proportion to the line nets.

Buyer reference (BT-10, which Peppol requires): `buyer_reference` (the customer's own
reference, for example a Leitweg-ID), else the purchase order number, else the q2c account
key, else the invoice number. The purchase order also goes into BT-13.

Payment: credit transfer to the seller's IBAN and BIC, code 58 (SEPA) for EUR to a SEPA
account, 30 otherwise, with the invoice's payment reference (the invoice number) as
remittance information (BT-83). The paid amount BT-113 is what the ERP records as paid
(credit notes issued against the invoice are separate documents and are not subtracted).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from q2c.documents.model import InvoiceDocument, TaxBreakdown
from q2c.documents.model import InvoiceLine as DocumentLine
from q2c.einvoice import calc
from q2c.einvoice.compliance import (
    RULE_FAMILY,
    ComplianceProblem,
    EInvoiceNotCompliant,
    check_compliance,
)
from q2c.einvoice.model import (
    CREDIT_NOTE,
    EN16931_CUSTOMIZATION_ID,
    INVOICE,
    PEPPOL_CUSTOMIZATION_ID,
    PEPPOL_PROFILE_ID,
    Address,
    AllowanceCharge,
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
from q2c.money import UnknownCurrencyError, minor_units
from q2c.settings import Seller

__all__ = [
    "ComplianceProblem",
    "EInvoiceNotCompliant",
    "build_credit_note",
    "build_einvoice",
    "check_compliance",
    "parse_participant_id",
    "vat_category_for",
]

log = logging.getLogger(__name__)

INVOICE_TYPE = "380"
CREDIT_NOTE_TYPE = "381"
DEFAULT_UNIT = "C62"  # UN/ECE Rec 20 "one": the ERP records no unit of measure
DISCOUNT_REASON_CODE = "95"  # UNCL 5189 Discount

EU_COUNTRIES = frozenset(
    "AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK".split()
)
SEPA_COUNTRIES = EU_COUNTRIES | frozenset("IS LI NO CH GB MC SM VA AD".split())

# Exemption reason (BT-120) and VATEX code (BT-121) per exempt category.
EXEMPTIONS = {
    "AE": ("Reverse charge", "VATEX-EU-AE"),
    "K": ("Intra-community supply", "VATEX-EU-IC"),
    "G": ("Export outside the EU", "VATEX-EU-G"),
    "O": ("Not subject to VAT", "VATEX-EU-O"),
}
REVERSE_CHARGE_NOTE = (
    "Reverse charge: the recipient is liable for the VAT "
    "(Article 196 of Council Directive 2006/112/EC)."
)
INTRA_COMMUNITY_NOTE = (
    "Intra-community supply exempt from VAT (Article 138 of Council Directive 2006/112/EC)."
)

# Largest invoice for which lines are matched to rates by their sums; beyond it the caller
# must say which line has which rate (the search is exponential in the number of lines).
MAX_LINES_TO_MATCH = 12


@dataclass(frozen=True)
class _Options:
    """The keyword arguments of `build_einvoice()`, with the same defaults."""

    buyer_endpoint: str | None = None
    buyer_vat: str | None = None
    buyer_reference: str | None = None
    purchase_order: str | None = None
    buyer_address: Address | None = None
    line_vat_rates: Mapping[int, Decimal] | None = None
    prices_include_vat: bool = False
    zero_rate_category: str | None = None
    exemption_reason: str | None = None
    exemption_reason_code: str | None = None
    delivery_date: dt.date | None = None
    period: Period | None = None
    peppol: bool = True


def build_einvoice(
    doc: InvoiceDocument,
    seller: Seller | None = None,
    *,
    buyer_endpoint: str | None = None,
    buyer_vat: str | None = None,
    buyer_reference: str | None = None,
    purchase_order: str | None = None,
    buyer_address: Address | None = None,
    line_vat_rates: Mapping[int, Decimal] | None = None,
    prices_include_vat: bool = False,
    zero_rate_category: str | None = None,
    exemption_reason: str | None = None,
    exemption_reason_code: str | None = None,
    delivery_date: dt.date | None = None,
    period: Period | None = None,
    peppol: bool = True,
) -> EInvoice:
    """The EN 16931 invoice (type 380) of an issued ERP invoice.

    Args:
        doc: The invoice as the ERP issued it.
        seller: The issuing entity; `doc.seller` when omitted.
        buyer_endpoint: The buyer's Peppol participant id, `<EAS scheme>:<id>` such as
            `0088:5790000435951` or `9930:DE123456789` (BT-49).
        buyer_vat: The buyer VAT id (BT-48); `doc.buyer.vat_id` when omitted.
        buyer_reference: BT-10; see the module docstring for the fallbacks.
        purchase_order: The buyer's order number (BT-13).
        buyer_address: The buyer's structured address; without it the printed address lines
            are used and city and post code stay empty (German buyers need both, DE-R-008).
        line_vat_rates: VAT rate in percent per document line index, when the invoice has
            several rates.
        prices_include_vat: The ERP's unit prices and line amounts include VAT; they are
            converted to net (EN 16931 carries net prices only).
        zero_rate_category: VAT category for rate-0 lines instead of the derived one.
        exemption_reason: Exemption reason text (BT-120) for exempt lines (needed for E).
        exemption_reason_code: VATEX code (BT-121), for example VATEX-EU-132.
        delivery_date: Actual delivery date (BT-72); K needs it or `period`.
        period: Invoicing period (BG-14).
        peppol: Peppol BIS Billing 3.0 ids and rules; False gives a plain EN 16931 invoice
            (Factur-X EN 16931 profile).

    Raises:
        EInvoiceNotCompliant: Naming every rule the invoice breaks; `.einvoice` holds the
            draft for review. Hold the invoice and fix the data the messages name.
    """
    options = _Options(
        buyer_endpoint, buyer_vat, buyer_reference, purchase_order, buyer_address,
        line_vat_rates, prices_include_vat, zero_rate_category, exemption_reason,
        exemption_reason_code, delivery_date, period, peppol,
    )
    return _build(doc, seller or doc.seller, options, INVOICE, INVOICE_TYPE, ())


def build_credit_note(
    doc: InvoiceDocument,
    seller: Seller | None = None,
    *,
    preceding_invoice: str,
    preceding_issue_date: dt.date | None = None,
    **options: object,
) -> EInvoice:
    """The EN 16931 credit note (type 381) of an ERP credit note, citing the invoice it
    corrects (BG-3). `doc` holds the credit note's own number and the credited amounts,
    positive; the other arguments are those of `build_einvoice()`.
    """
    if not preceding_invoice:
        raise ValueError(
            f"credit note {doc.invoice_number}: name the invoice it corrects "
            "(`preceding_invoice`); q2c sends no credit note without its invoice"
        )
    preceding = (PrecedingInvoice(preceding_invoice, preceding_issue_date),)
    return _build(doc, seller or doc.seller, _Options(**options), CREDIT_NOTE,
                  CREDIT_NOTE_TYPE, preceding)


def parse_participant_id(value: str) -> Identifier:
    """A Peppol participant id as an endpoint: `0088:5790000435951` -> (5790000435951, 0088).

    The `iso6523-actorid-upis::` prefix of the SMP form is accepted and dropped.
    """
    text = (value or "").strip()
    if text.lower().startswith("iso6523-actorid-upis::"):
        text = text.split("::", 1)[1]
    scheme, _, identifier = text.partition(":")
    if not (len(scheme) == 4 and scheme.isdigit() and identifier.strip()):
        raise ValueError(
            f"`{value}` is not a Peppol participant id; write it as `<EAS scheme>:<id>`, "
            "for example 0088:5790000435951 or 9930:DE123456789"
        )
    return Identifier(identifier.strip(), scheme)


def vat_category_for(
    rate: Decimal | None,
    seller_country: str | None,
    buyer_country: str | None,
    *,
    zero_rate_category: str | None = None,
    exempt: bool = False,
) -> str:
    """The EN 16931 VAT category of an ERP tax rate (the rules are in the module docstring)."""
    if rate and rate > 0:
        return "S"
    if zero_rate_category:
        return zero_rate_category
    if buyer_country and buyer_country != seller_country:
        if buyer_country in EU_COUNTRIES and seller_country in EU_COUNTRIES:
            return "AE"
        if buyer_country not in EU_COUNTRIES:
            return "O"
    return "E" if exempt else "Z"


# --- the build ----------------------------------------------------------------------------


def _build(
    doc: InvoiceDocument,
    seller: Seller,
    options: _Options,
    kind: str,
    type_code: str,
    preceding: tuple[PrecedingInvoice, ...],
) -> EInvoice:
    problems: list[ComplianceProblem] = []
    currency = doc.currency
    try:
        minor_units(currency)
    except UnknownCurrencyError as exc:
        problem = ComplianceProblem("BR-CL-04", str(exc))
        raise EInvoiceNotCompliant(doc.invoice_number, [problem]) from None

    buyer_vat = _clean_vat(options.buyer_vat or doc.buyer.vat_id)
    buyer_country = _buyer_country(doc, options, buyer_vat)
    items = [line for line in doc.lines if line.kind == "item"]
    rates = _line_rates(doc, items, options, problems)
    if problems:  # without a rate per line every later figure would be noise
        raise EInvoiceNotCompliant(doc.invoice_number, problems)
    exempt = bool(options.exemption_reason or options.exemption_reason_code)

    def category_of(rate: Decimal) -> tuple[str, Decimal | None]:
        """The VAT category of an ERP rate, and the rate the e-invoice states (O has none)."""
        category = vat_category_for(
            rate, seller.country, buyer_country,
            zero_rate_category=options.zero_rate_category, exempt=exempt,
        )
        return category, (None if category == "O" else rate)

    lines = tuple(
        _line(line, *category_of(rates[line.index]), currency, options, problems)
        for line in items
    )
    allowances = _discount_allowances(doc, lines, category_of, options, problems)
    breakdown = _with_exemptions(
        calc.vat_breakdown(lines, allowances, currency), options
    )
    _check_erp_tax(doc, lines, allowances, breakdown, category_of, problems)
    _check_erp_subtotal(doc, items, problems)

    prepaid = doc.amount_paid.amount if kind == INVOICE else Decimal(0)
    totals = calc.document_totals(
        lines, allowances, breakdown, currency, prepaid=prepaid, charged_total=doc.total.amount
    )
    _check_residual(doc, totals, lines, allowances, problems)

    not_subject = any(row.category == "O" for row in breakdown)
    einvoice = EInvoice(
        kind=kind,
        number=doc.invoice_number,
        issue_date=doc.issue_date,
        type_code=type_code,
        currency=currency,
        seller=_seller_party(seller, problems, not_subject),
        buyer=_buyer_party(doc, options, buyer_vat, buyer_country, problems, not_subject),
        lines=tuple(_two_decimal_line(line) for line in lines),
        vat_breakdown=tuple(_two_decimal_row(row) for row in breakdown),
        totals=_two_decimal_totals(totals),
        customization_id=PEPPOL_CUSTOMIZATION_ID if options.peppol else EN16931_CUSTOMIZATION_ID,
        profile_id=PEPPOL_PROFILE_ID if options.peppol else None,
        due_date=doc.due_date,
        buyer_reference=_buyer_reference(doc, options),
        purchase_order_reference=options.purchase_order or None,
        payment_terms=_payment_terms(doc),
        notes=_notes(doc, breakdown),
        preceding_invoices=preceding,
        delivery=_delivery(options, buyer_country, breakdown),
        period=options.period,
        payment=_payment(doc, seller),
        allowances_charges=tuple(_two_decimal_charge(item) for item in allowances),
        source_invoice_id=doc.invoice_id,
    )
    problems.extend(check_compliance(einvoice, peppol=options.peppol))
    if problems:  # the caller decides: hold the invoice, or (X12) use the draft model
        raise EInvoiceNotCompliant(doc.invoice_number, problems, einvoice=einvoice)
    return einvoice


def _rate(tax: TaxBreakdown) -> Decimal:
    return _plain(tax.rate if tax.rate is not None else Decimal(0))


def _plain(value: Decimal) -> Decimal:
    """`value` without trailing zeros and without an exponent: 19.0000 -> 19, 1.500000 -> 1.5.

    The warehouse stores rates, quantities and prices with a fixed scale (19.0000 %); the
    e-invoice states them as a person would.
    """
    value = Decimal(value).normalize()
    return value.quantize(Decimal(1)) if value.as_tuple().exponent > 0 else value


def _clean_vat(vat_id: str | None) -> str | None:
    text = "".join((vat_id or "").split()).upper()
    return text or None


def _buyer_country(doc: InvoiceDocument, options: _Options, vat_id: str | None) -> str | None:
    """The buyer's country: the account's, else the address's, else the VAT id prefix."""
    country = doc.buyer.country or (options.buyer_address and options.buyer_address.country)
    if not country and vat_id and vat_id[:2].isalpha():
        country = "GR" if vat_id[:2] == "EL" else vat_id[:2]
    return country.upper() if country else None


# --- lines and their rates ------------------------------------------------------------------


def _line_rates(
    doc: InvoiceDocument,
    items: Sequence[DocumentLine],
    options: _Options,
    problems: list[ComplianceProblem],
) -> dict[int, Decimal]:
    """Line index to VAT rate, by the rules in the module docstring."""
    erp_rates = [_rate(tax) for tax in doc.tax_breakdown] or [Decimal(0)]
    if options.line_vat_rates is not None:
        given = {index: _plain(rate) for index, rate in options.line_vat_rates.items()}
        missing = [line.index for line in items if line.index not in given]
        if missing:
            problems.append(ComplianceProblem(
                "BR-CO-04", f"no VAT rate given for lines {missing} in `line_vat_rates`"
            ))
        return given
    if len(set(erp_rates)) == 1:
        return {line.index: erp_rates[0] for line in items}
    assignment = _match_lines_to_rates(doc, items)
    if assignment is None:
        problems.append(ComplianceProblem(
            "BR-CO-04",
            f"the invoice has VAT rates {sorted(set(erp_rates))} and its lines do not show "
            "which line has which rate; pass `line_vat_rates` (line index to rate)",
        ))
        return {}
    return assignment


def _match_lines_to_rates(
    doc: InvoiceDocument, items: Sequence[DocumentLine]
) -> dict[int, Decimal] | None:
    """The one assignment of lines to rates whose sums equal the ERP's taxable amounts.

    Only tried without discounts (a discount makes the taxable amounts differ from the line
    sums) and for small invoices; None when there is no assignment or more than one.
    """
    if doc.discount.amount or len(items) > MAX_LINES_TO_MATCH:
        return None
    if any(line.kind == "discount" for line in doc.lines):
        return None
    targets = {_rate(tax): tax.taxable.amount for tax in doc.tax_breakdown}
    found: list[dict[int, Decimal]] = []

    def search(position: int, remaining: dict[Decimal, Decimal], chosen: dict) -> None:
        if len(found) > 1:
            return
        if position == len(items):
            if all(value == 0 for value in remaining.values()):
                found.append(dict(chosen))
            return
        line = items[position]
        for rate in remaining:
            remaining[rate] -= line.amount.amount
            chosen[line.index] = rate
            search(position + 1, remaining, chosen)
            remaining[rate] += line.amount.amount
            del chosen[line.index]

    search(0, dict(targets), {})
    return found[0] if len(found) == 1 else None


def _line(
    line: DocumentLine,
    category: str,
    rate: Decimal | None,
    currency: str,
    options: _Options,
    problems: list[ComplianceProblem],
) -> InvoiceLine:
    """One EN 16931 line from an ERP line; its net amount is the ERP's (made net if needed)."""
    amount = line.amount.amount
    quantity, price = line.quantity, line.unit_price
    if quantity is None or price is None:
        quantity, price = (Decimal(-1), -amount) if amount < 0 else (Decimal(1), amount)
    quantity, price = _plain(quantity), _plain(price)

    charged = calc.round_amount(quantity * price, currency)
    if abs(charged - amount) > calc.amount_quantum(currency):
        problems.append(ComplianceProblem(
            "PEPPOL-EN16931-R120",
            f"line {line.index}: the ERP's amount {amount} is not quantity {quantity} x unit "
            f"price {price} = {charged}; q2c does not change issued amounts, so correct the "
            "invoice in the ERP (a credit note and a new invoice)",
        ))

    net = amount
    if options.prices_include_vat and rate:
        net = calc.net_amount_from_gross(amount, rate, currency)
        price = calc.net_price_from_gross(price, rate)
    if price < 0:
        quantity, price = -quantity, -price
    base_quantity = None
    if abs(quantity * price - net) > Decimal("0.01"):
        # Peppol allows 0.02 between quantity x price and the line net (R120); a yen line
        # rounded from fractional prices misses that, so its price is stated per the whole
        # quantity instead: quantity x (net / quantity) is the net exactly.
        base_quantity, price = abs(quantity), abs(net)

    name = line.item_name or line.description
    return InvoiceLine(
        id=str(line.index),
        quantity=quantity,
        unit_code=DEFAULT_UNIT,
        net_amount=net,
        net_price=price,
        vat_category=category,
        vat_rate=rate,
        base_quantity=base_quantity,
        base_quantity_unit=DEFAULT_UNIT if base_quantity is not None else None,
        item=Item(
            name=name,
            description=line.description if line.description != name else None,
        ),
    )


# --- discounts --------------------------------------------------------------------------------


def _discount_allowances(
    doc: InvoiceDocument,
    lines: Sequence[InvoiceLine],
    category_of,
    options: _Options,
    problems: list[ComplianceProblem],
) -> tuple[AllowanceCharge, ...]:
    """The ERP's discount as document allowances, one per VAT category and rate."""
    discount_lines = [line for line in doc.lines if line.kind == "discount"]
    from_lines = -sum((line.amount.amount for line in discount_lines), Decimal(0))
    discount = doc.discount.amount or from_lines
    if discount_lines and from_lines != discount:
        problems.append(ComplianceProblem(
            "BR-CO-13",
            f"the ERP's discount {discount} differs from its discount lines {from_lines}",
        ))
    if not discount:
        return ()
    reason = next((line.description for line in discount_lines if line.description), "")
    currency = doc.currency

    groups: dict[tuple[str, Decimal | None], Decimal] = {}
    for line in lines:
        key = (line.vat_category, line.vat_rate)
        groups[key] = groups.get(key, Decimal(0)) + line.net_amount
    if not groups:
        problems.append(ComplianceProblem(
            "BR-CO-13", "the invoice has a discount but no line it could reduce"
        ))
        return ()
    # A VAT-inclusive discount is split as it stands and each share made net; the ERP's
    # taxable amounts are net, so they can only tell the split of a net discount.
    split = _split_discount(
        doc, discount, groups, category_of, use_erp=not options.prices_include_vat
    )
    allowances = []
    for (category, rate), amount in split.items():
        if options.prices_include_vat and rate:
            amount = calc.net_amount_from_gross(amount, rate, currency)
        if amount:
            allowances.append(AllowanceCharge(
                is_charge=False,
                amount=amount,
                vat_category=category,
                vat_rate=rate,
                reason=reason or "Discount",
                reason_code=DISCOUNT_REASON_CODE,
            ))
    return tuple(allowances)


def _split_discount(
    doc: InvoiceDocument,
    discount: Decimal,
    groups: dict[tuple[str, Decimal | None], Decimal],
    category_of,
    use_erp: bool,
) -> dict[tuple[str, Decimal | None], Decimal]:
    """How much of the discount falls on each VAT group.

    One group takes it all. With several, the ERP's taxable amounts tell (line sum less
    taxable) when they add up to the discount; else the split follows the line nets, with
    the cent left by rounding on the largest group.
    """
    if len(groups) == 1:
        return {next(iter(groups)): discount}
    erp_split = {}
    for tax in doc.tax_breakdown:
        key = category_of(_rate(tax))
        if key in groups:
            erp_split[key] = groups[key] - tax.taxable.amount
    if use_erp and set(erp_split) == set(groups) and sum(erp_split.values()) == discount:
        return erp_split
    base = sum(groups.values(), Decimal(0))
    split = {
        key: calc.round_amount(discount * value / base, doc.currency)
        for key, value in groups.items()
    }
    largest = max(groups, key=lambda key: abs(groups[key]))
    split[largest] += discount - sum(split.values(), Decimal(0))
    return split


def _with_exemptions(
    breakdown: Sequence[VatBreakdown], options: _Options
) -> tuple[VatBreakdown, ...]:
    rows = []
    for row in breakdown:
        reason, code = EXEMPTIONS.get(row.category, (None, None))
        if row.category in {"E", *EXEMPTIONS}:
            reason = options.exemption_reason or reason
            code = options.exemption_reason_code or code
        rows.append(dataclasses.replace(row, exemption_reason=reason, exemption_reason_code=code))
    return tuple(rows)


# --- checks of the ERP's figures --------------------------------------------------------------


def _tolerance(count: int, currency: str) -> Decimal:
    """How far a figure rounded per line may drift from one rounded once: half a minor unit
    per line, at least one minor unit (half-even against half-up)."""
    return max(1, (count + 1) // 2) * calc.amount_quantum(currency)


def _check_erp_tax(
    doc: InvoiceDocument,
    lines: Sequence[InvoiceLine],
    allowances: Sequence[AllowanceCharge],
    breakdown: Sequence[VatBreakdown],
    category_of,
    problems: list[ComplianceProblem],
) -> None:
    """The ERP's tax per rate against the EN 16931 result (BR-S-08/09 and siblings)."""
    computed = {calc.vat_key(row.category, row.rate): row for row in breakdown}
    counts: dict[tuple, int] = {}
    for key in [calc.vat_key(line.vat_category, line.vat_rate) for line in lines] + [
        calc.vat_key(item.vat_category or "", item.vat_rate) for item in allowances
    ]:
        counts[key] = counts.get(key, 0) + 1

    erp_tax = Decimal(0)
    for tax in doc.tax_breakdown:
        erp_tax += tax.tax.amount
        category, rate = category_of(_rate(tax))
        key = calc.vat_key(category, rate)
        family = RULE_FAMILY.get(category, "BR-CO")
        row = computed.get(key)
        if row is None:
            if tax.tax.amount or tax.taxable.amount:
                problems.append(ComplianceProblem(
                    f"{family}-08",
                    f"the ERP charged {tax.tax} VAT at {_rate(tax)} % on {tax.taxable} but no "
                    "line of the invoice has that rate",
                ))
            continue
        tolerance = _tolerance(counts.get(key, 1), doc.currency)
        taxable_reported = tax.taxable.amount or not tax.tax.amount
        if taxable_reported and abs(tax.taxable.amount - row.taxable_amount) > tolerance:
            problems.append(ComplianceProblem(
                f"{family}-08",
                f"VAT {category} {_rate(tax)} %: the ERP's taxable amount {tax.taxable} is not "
                f"the lines less discounts, {row.taxable_amount}",
            ))
        if abs(tax.tax.amount - row.tax_amount) > tolerance:
            problems.append(ComplianceProblem(
                f"{family}-09",
                f"VAT {category} {_rate(tax)} %: the ERP charged {tax.tax} but "
                f"{row.taxable_amount} x {_rate(tax)} % is {row.tax_amount}, more than "
                "rounding explains; correct the tax in the ERP",
            ))
    if erp_tax != doc.tax_total.amount:
        problems.append(ComplianceProblem(
            "BR-CO-14",
            f"the ERP's total tax {doc.tax_total} is not the sum of its tax lines "
            f"{erp_tax} {doc.currency}",
        ))


def _check_erp_subtotal(
    doc: InvoiceDocument, items: Sequence[DocumentLine], problems: list[ComplianceProblem]
) -> None:
    lines_sum = sum((line.amount.amount for line in items), Decimal(0))
    if doc.subtotal.amount != lines_sum:
        problems.append(ComplianceProblem(
            "BR-CO-10",
            f"the ERP's subtotal {doc.subtotal} is not the sum of its lines "
            f"{lines_sum} {doc.currency}",
        ))


def _check_residual(
    doc: InvoiceDocument,
    totals: Totals,
    lines: Sequence[InvoiceLine],
    allowances: Sequence[AllowanceCharge],
    problems: list[ComplianceProblem],
) -> None:
    """The rounding amount may only hold what rounding explains."""
    residual = totals.rounding or Decimal(0)
    if abs(residual) > _tolerance(len(lines) + len(allowances), doc.currency):
        problems.append(ComplianceProblem(
            "BR-CO-15",
            f"the ERP's total {doc.total} differs from lines less discounts plus VAT, "
            f"{totals.tax_inclusive} {doc.currency}, by {residual}: more than rounding; "
            "correct the invoice in the ERP",
        ))


# --- parties, payment, references -------------------------------------------------------------


def _endpoint(value: str | None, rule: str, problems: list[ComplianceProblem]):
    if not value:
        return None
    try:
        return parse_participant_id(value)
    except ValueError as exc:
        problems.append(ComplianceProblem(rule, str(exc)))
        return None


def _seller_party(
    seller: Seller, problems: list[ComplianceProblem], not_subject: bool
) -> Party:
    return Party(
        name=seller.name,
        vat_id=None if not_subject else (seller.vat_id or None),
        endpoint=_endpoint(seller.peppol_id, "PEPPOL-EN16931-CL008", problems),
        address=Address(
            line1=seller.street or None,
            city=seller.city or None,
            postal_code=seller.postal_code or None,
            country=seller.country or None,
        ),
        contact=Contact(
            name=seller.name, phone=seller.phone or None, email=seller.email or None
        ),
    )


def _buyer_party(
    doc: InvoiceDocument,
    options: _Options,
    vat_id: str | None,
    country: str | None,
    problems: list[ComplianceProblem],
    not_subject: bool,
) -> Party:
    address = options.buyer_address
    if address is None:
        printed = list(doc.buyer.address_lines)
        streets, city_line = (printed[:-1], printed[-1]) if len(printed) > 1 else (printed, None)
        streets += [None, None]
        address = Address(line1=streets[0], line2=streets[1], city=city_line, country=country)
    elif not address.country:
        address = dataclasses.replace(address, country=country)
    contact = None
    if doc.buyer.contact_name or doc.buyer.email:
        contact = Contact(name=doc.buyer.contact_name, email=doc.buyer.email)
    return Party(
        name=doc.buyer.name,
        vat_id=None if not_subject else vat_id,
        endpoint=_endpoint(options.buyer_endpoint, "PEPPOL-EN16931-CL008", problems),
        address=address,
        contact=contact,
    )


def _buyer_reference(doc: InvoiceDocument, options: _Options) -> str:
    return (
        options.buyer_reference
        or options.purchase_order
        or doc.account_key
        or doc.invoice_number
    )


def _payment(doc: InvoiceDocument, seller: Seller) -> PaymentInstructions | None:
    if not seller.iban:
        return None
    iban = "".join(seller.iban.split()).upper()
    sepa = doc.currency == "EUR" and iban[:2] in SEPA_COUNTRIES
    return PaymentInstructions(
        means_code="58" if sepa else "30",
        remittance_information=doc.payment_reference or doc.invoice_number,
        accounts=(
            CreditTransfer(account_id=iban, account_name=seller.name,
                           service_provider_id=seller.bic or None),
        ),
    )


def _payment_terms(doc: InvoiceDocument) -> str:
    if doc.payment_term_days:
        return (
            f"Payable within {doc.payment_term_days} days of the invoice date, by "
            f"{doc.due_date.isoformat()}."
        )
    return f"Payable by {doc.due_date.isoformat()}."


def _notes(
    doc: InvoiceDocument, breakdown: Sequence[VatBreakdown]
) -> tuple[tuple[str | None, str], ...]:
    """One note (Peppol allows one): the legal VAT statement, then the customer memo."""
    parts = []
    categories = {row.category for row in breakdown}
    if "AE" in categories:
        parts.append(REVERSE_CHARGE_NOTE)
    if "K" in categories:
        parts.append(INTRA_COMMUNITY_NOTE)
    if doc.memo:
        parts.append(doc.memo.strip())
    text = "\n".join(part for part in parts if part)
    return ((None, text),) if text else ()


def _delivery(
    options: _Options, buyer_country: str | None, breakdown: Sequence[VatBreakdown]
) -> Delivery | None:
    if any(row.category == "K" for row in breakdown):
        return Delivery(
            actual_date=options.delivery_date,
            address=Address(country=buyer_country) if buyer_country else None,
        )
    if options.delivery_date:
        return Delivery(actual_date=options.delivery_date)
    return None


# --- at most two decimals -------------------------------------------------------------------


def _two(value: Decimal | None) -> Decimal | None:
    return None if value is None else calc.as_en16931_amount(value)


def _two_decimal_line(line: InvoiceLine) -> InvoiceLine:
    return dataclasses.replace(line, net_amount=_two(line.net_amount))


def _two_decimal_row(row: VatBreakdown) -> VatBreakdown:
    return dataclasses.replace(
        row, taxable_amount=_two(row.taxable_amount), tax_amount=_two(row.tax_amount)
    )


def _two_decimal_charge(item: AllowanceCharge) -> AllowanceCharge:
    return dataclasses.replace(item, amount=_two(item.amount), base_amount=_two(item.base_amount))


def _two_decimal_totals(totals: Totals) -> Totals:
    return Totals(**{
        field.name: _two(getattr(totals, field.name)) for field in dataclasses.fields(Totals)
    })

