"""Checks an e-invoice against the EN 16931 and Peppol rules before any XML is written.

The official validators (`q2c.einvoice.validate`) are the last word, but they speak XPath:
"[BR-AE-02] An Invoice that contains an Invoice line where the VAT category code is Reverse
charge shall contain ... the Buyer VAT identifier". These checks run on the semantic model,
name the same rule, and say what to fix in q2c's data (the account's VAT id, its Peppol
participant id, the seller settings), so an invoice that cannot be made compliant is held
back with a reason a person can act on, instead of failing at the access point.

Every problem here is blocking; nothing is a warning.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal

from q2c.einvoice import calc
from q2c.einvoice.model import EInvoice, Party

# The rule family of each VAT category in the CEN rules (K is BR-IC, L/M are BR-AF/BR-AG).
RULE_FAMILY = {
    "S": "BR-S", "Z": "BR-Z", "E": "BR-E", "AE": "BR-AE", "K": "BR-IC", "G": "BR-G",
    "O": "BR-O", "L": "BR-AF", "M": "BR-AG",
}
# Categories whose rate is zero and whose breakdown needs an exemption reason (BR-x-10).
EXEMPT_CATEGORIES = {"E", "AE", "K", "G", "O"}
ZERO_RATE_CATEGORIES = {"Z", "E", "AE", "K", "G"}
# Categories for which the seller must state a VAT id (BR-x-02); G and K accept only a VAT id.
SELLER_VAT_CATEGORIES = {"S", "Z", "E", "AE", "K", "G", "L", "M"}
CREDIT_TRANSFER_MEANS = {"30", "58"}
_CATEGORY_NAMES = {"AE": "a reverse-charge invoice", "K": "an intra-community supply"}

# BR-DEC rule per business term: every amount carries at most two decimals.
_DEC_RULES = {
    "BT-92": "BR-DEC-01", "BT-93": "BR-DEC-02", "BT-99": "BR-DEC-05", "BT-100": "BR-DEC-06",
    "BT-106": "BR-DEC-09", "BT-107": "BR-DEC-10", "BT-108": "BR-DEC-11",
    "BT-109": "BR-DEC-12", "BT-110": "BR-DEC-13", "BT-112": "BR-DEC-14",
    "BT-111": "BR-DEC-15", "BT-113": "BR-DEC-16", "BT-114": "BR-DEC-17",
    "BT-115": "BR-DEC-18", "BT-116": "BR-DEC-19", "BT-117": "BR-DEC-20",
    "BT-131": "BR-DEC-23", "BT-136": "BR-DEC-24", "BT-137": "BR-DEC-25",
    "BT-141": "BR-DEC-27", "BT-142": "BR-DEC-28",
}


@dataclass(frozen=True)
class ComplianceProblem:
    """One rule the e-invoice breaks: the official rule id and what to do about it."""

    rule: str
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.message}"


class EInvoiceNotCompliant(ValueError):
    """An invoice that cannot be sent as an EN 16931 e-invoice; hold it and fix the data."""

    def __init__(
        self,
        invoice_number: str,
        problems: Iterable[ComplianceProblem],
        einvoice: EInvoice | None = None,
    ):
        self.invoice_number = invoice_number
        self.problems = tuple(problems)
        self.einvoice = einvoice  # the draft, for a reviewer; never send it
        listed = "; ".join(str(problem) for problem in self.problems)
        super().__init__(f"invoice {invoice_number} is not a compliant e-invoice: {listed}")

    def __reduce__(self):
        """Picklable with its problems, so a render worker can hand the hold to its parent."""
        return type(self), (self.invoice_number, self.problems, self.einvoice)

    @property
    def rules(self) -> tuple[str, ...]:
        """The rule ids, in the order found (for the hold reason and the run report)."""
        return tuple(problem.rule for problem in self.problems)


def check_compliance(einvoice: EInvoice, *, peppol: bool = True) -> list[ComplianceProblem]:
    """Every EN 16931 (and, with `peppol`, Peppol BIS 3) rule the invoice visibly breaks.

    The checks cover what q2c's data can get wrong: parties and their VAT ids, endpoints,
    VAT categories with their rates and exemption reasons, the totals against a fresh
    calculation, and the two-decimal limit on amounts. An empty list means "send it to the
    validators", not "valid": the XSD and schematron still run on the written XML.
    """
    problems = [
        *_basics(einvoice),
        *_vat_categories(einvoice),
        *_totals(einvoice),
        *_decimals(einvoice),
        *_payment(einvoice),
    ]
    if peppol:
        problems.extend(_peppol(einvoice))
    return problems


def _basics(inv: EInvoice) -> Iterator[ComplianceProblem]:
    if not inv.number:
        yield ComplianceProblem("BR-02", "the invoice has no number (BT-1)")
    if not inv.seller.name:
        yield ComplianceProblem("BR-06", "the seller has no name; set `seller.name`")
    if not inv.buyer.name:
        yield ComplianceProblem("BR-07", "the buyer has no name; fix the account name")
    if not (inv.seller.address and inv.seller.address.country):
        yield ComplianceProblem(
            "BR-09", "the seller address has no country code; set `seller.country`"
        )
    if not (inv.buyer.address and inv.buyer.address.country):
        yield ComplianceProblem(
            "BR-11",
            f"buyer `{inv.buyer.name}` has no country code; fill the account's billing "
            "country in the CRM or ERP",
        )
    if not inv.lines:
        yield ComplianceProblem("BR-16", "the invoice has no line")
    for line in inv.lines:
        if not line.item.name:
            yield ComplianceProblem("BR-25", f"line {line.id} has no item name (BT-153)")
        if line.net_price < 0:
            yield ComplianceProblem(
                "BR-27", f"line {line.id} has a negative net price; negate the quantity instead"
            )
    if not (inv.seller.vat_id or inv.seller.identifiers or inv.seller.legal_id):
        yield ComplianceProblem(
            "BR-CO-26",
            "the seller has no VAT id, identifier or legal registration id; set "
            "`seller.vat_id` in the settings",
        )


def _categories(inv: EInvoice) -> dict[str, list[str]]:
    """Category code to the places it is used: `line`, `allowance`, `charge`."""
    used: dict[str, list[str]] = {}
    for line in inv.lines:
        used.setdefault(line.vat_category, []).append("line")
    for item in inv.allowances_charges:
        used.setdefault(item.vat_category or "", []).append(
            "charge" if item.is_charge else "allowance"
        )
    return used


def _has_seller_tax_id(inv: EInvoice, vat_only: bool = False) -> bool:
    representative = inv.tax_representative.vat_id if inv.tax_representative else None
    if vat_only:
        return bool(inv.seller.vat_id or representative)
    return bool(inv.seller.vat_id or inv.seller.tax_registration_id or representative)


def _vat_categories(inv: EInvoice) -> Iterator[ComplianceProblem]:
    used = _categories(inv)
    if "" in used:
        yield ComplianceProblem(
            "BR-32", "a document allowance or charge has no VAT category (BT-95/BT-102)"
        )
    for category, places in used.items():
        family = RULE_FAMILY.get(category)
        if not family:
            if category:
                yield ComplianceProblem(
                    "BR-CL-17", f"`{category}` is not a VAT category code (UNCL 5305 subset)"
                )
            continue
        if category in SELLER_VAT_CATEGORIES and not _has_seller_tax_id(
            inv, vat_only=category in {"K", "G"}
        ):
            yield ComplianceProblem(
                _placed_rule(family, places),
                f"VAT category {category} needs the seller VAT id (BT-31); set "
                "`seller.vat_id` in the settings",
            )
        if category in {"AE", "K"} and not inv.buyer.vat_id:
            yield ComplianceProblem(
                _placed_rule(family, places),
                f"{_CATEGORY_NAMES[category]} (category {category}) needs the buyer VAT id "
                f"(BT-48); article 226 of the VAT directive asks for it too. Fill the VAT id "
                f"of account `{inv.buyer.name}`, or invoice with VAT",
            )
        if category == "O" and (inv.seller.vat_id or inv.buyer.vat_id):
            yield ComplianceProblem(
                _placed_rule(family, places),
                "an invoice not subject to VAT (category O) must not state the seller or "
                "buyer VAT id",
            )
    yield from _rates(inv)
    yield from _breakdown_reasons(inv)
    if "K" in used:
        delivery = inv.delivery
        if not ((delivery and delivery.actual_date) or inv.period):
            yield ComplianceProblem(
                "BR-IC-11",
                "an intra-community supply needs the actual delivery date (BT-72) or the "
                "invoicing period (BG-14); pass `delivery_date` or `period`",
            )
        if not (delivery and delivery.address and delivery.address.country):
            yield ComplianceProblem(
                "BR-IC-12", "an intra-community supply needs the deliver-to country (BT-80)"
            )
    if "O" in used and len(used) > 1:
        yield ComplianceProblem(
            "BR-O-11",
            "an invoice with lines not subject to VAT (O) cannot have other VAT categories; "
            "issue them on separate invoices",
        )



def _placed_rule(family: str, places: list[str]) -> str:
    """BR-x-02 for lines, -03 for allowances, -04 for charges (the first place used)."""
    suffix = {"line": "02", "allowance": "03", "charge": "04"}[places[0]]
    return f"{family}-{suffix}"


def _rates(inv: EInvoice) -> Iterator[ComplianceProblem]:
    for line in inv.lines:
        family = RULE_FAMILY.get(line.vat_category)
        rate = line.vat_rate
        if line.vat_category == "S" and not (rate and rate > 0):
            yield ComplianceProblem(
                f"{family}-05", f"line {line.id} is standard rated but has no rate above 0"
            )
        elif line.vat_category in ZERO_RATE_CATEGORIES and rate != 0:
            yield ComplianceProblem(
                f"{family}-05",
                f"line {line.id} has category {line.vat_category}, whose rate must be 0",
            )
        elif line.vat_category == "O" and rate is not None:
            yield ComplianceProblem(
                "BR-O-05", f"line {line.id} is not subject to VAT and must not have a rate"
            )


def _breakdown_reasons(inv: EInvoice) -> Iterator[ComplianceProblem]:
    if not inv.vat_breakdown:
        yield ComplianceProblem("BR-CO-18", "the invoice has no VAT breakdown (BG-23)")
    for row in inv.vat_breakdown:
        family = RULE_FAMILY.get(row.category)
        has_reason = bool(row.exemption_reason or row.exemption_reason_code)
        if row.category in EXEMPT_CATEGORIES and not has_reason:
            yield ComplianceProblem(
                f"{family}-10",
                f"the VAT breakdown of category {row.category} needs an exemption reason "
                "(BT-120) or code (BT-121); pass `exemption_reason` for exempt supplies",
            )
        if row.category in {"S", "Z", "L", "M"} and has_reason:
            yield ComplianceProblem(
                f"{family}-10",
                f"the VAT breakdown of category {row.category} must not have an exemption "
                "reason",
            )


def _totals(inv: EInvoice) -> Iterator[ComplianceProblem]:
    """The totals against a fresh EN 16931 calculation from the lines (BR-CO-10..17)."""
    try:
        expected_rows = calc.vat_breakdown(inv.lines, inv.allowances_charges, inv.currency)
    except ValueError:
        return  # reported by _vat_categories as BR-32
    totals = inv.totals
    expected = calc.document_totals(
        inv.lines,
        inv.allowances_charges,
        expected_rows,
        inv.currency,
        prepaid=totals.prepaid or Decimal(0),
        charged_total=totals.tax_inclusive + (totals.rounding or Decimal(0)),
    )
    pairs = (
        ("BR-CO-10", "sum of line net amounts (BT-106)", totals.line_total, expected.line_total),
        ("BR-CO-11", "sum of allowances (BT-107)", totals.allowance_total or 0,
         expected.allowance_total or 0),
        ("BR-CO-12", "sum of charges (BT-108)", totals.charge_total or 0,
         expected.charge_total or 0),
        ("BR-CO-13", "total without VAT (BT-109)", totals.tax_exclusive, expected.tax_exclusive),
        ("BR-CO-14", "total VAT (BT-110)", totals.tax_total or 0,
         sum((row.tax_amount for row in inv.vat_breakdown), Decimal(0))),
        ("BR-CO-15", "total with VAT (BT-112)", totals.tax_inclusive, expected.tax_inclusive),
        ("BR-CO-16", "amount due (BT-115)", totals.payable, expected.payable),
    )
    for rule, name, actual, wanted in pairs:
        if Decimal(actual) != Decimal(wanted):
            yield ComplianceProblem(rule, f"{name} is {actual}, its parts give {wanted}")

    written = {calc.vat_key(row.category, row.rate): row for row in inv.vat_breakdown}
    for row in expected_rows:
        key = calc.vat_key(row.category, row.rate)
        family = RULE_FAMILY.get(row.category, "BR-CO")
        actual = written.get(key)
        if actual is None:
            yield ComplianceProblem(
                "BR-CO-18" if not written else f"{family}-08",
                f"no VAT breakdown for category {row.category} at {row.rate} %",
            )
            continue
        if actual.taxable_amount != row.taxable_amount:
            yield ComplianceProblem(
                f"{family}-08",
                f"VAT category {row.category} {row.rate} %: taxable amount is "
                f"{actual.taxable_amount}, the lines give {row.taxable_amount}",
            )
        if actual.tax_amount != row.tax_amount:
            yield ComplianceProblem(
                f"{family}-09",
                f"VAT category {row.category} {row.rate} %: tax is {actual.tax_amount}, "
                f"taxable x rate gives {row.tax_amount}",
            )
    for key, row in written.items():
        if key not in {calc.vat_key(r.category, r.rate) for r in expected_rows}:
            yield ComplianceProblem(
                f"{RULE_FAMILY.get(row.category, 'BR-CO')}-08",
                f"VAT breakdown for category {row.category} at {row.rate} % has no line",
            )


def _amounts(inv: EInvoice) -> Iterator[tuple[str, str, Decimal | None]]:
    """(business term, where, amount) for every amount of the invoice."""
    t = inv.totals
    for term, value in (
        ("BT-106", t.line_total), ("BT-107", t.allowance_total), ("BT-108", t.charge_total),
        ("BT-109", t.tax_exclusive), ("BT-110", t.tax_total),
        ("BT-111", t.tax_total_tax_currency), ("BT-112", t.tax_inclusive),
        ("BT-113", t.prepaid), ("BT-114", t.rounding), ("BT-115", t.payable),
    ):
        yield term, "totals", value
    for item in inv.allowances_charges:
        amount_term, base_term = ("BT-99", "BT-100") if item.is_charge else ("BT-92", "BT-93")
        yield amount_term, "document allowance/charge", item.amount
        yield base_term, "document allowance/charge", item.base_amount
    for row in inv.vat_breakdown:
        yield "BT-116", f"VAT {row.category}", row.taxable_amount
        yield "BT-117", f"VAT {row.category}", row.tax_amount
    for line in inv.lines:
        yield "BT-131", f"line {line.id}", line.net_amount
        for item in line.allowances_charges:
            amount_term, base_term = (
                ("BT-141", "BT-142") if item.is_charge else ("BT-136", "BT-137")
            )
            yield amount_term, f"line {line.id}", item.amount
            yield base_term, f"line {line.id}", item.base_amount


def _decimals(inv: EInvoice) -> Iterator[ComplianceProblem]:
    seen: set[str] = set()
    for term, where, value in _amounts(inv):
        if value is None or not calc.exceeds_amount_decimals(Decimal(value)):
            continue
        rule = _DEC_RULES[term]
        if rule in seen:
            continue
        seen.add(rule)
        yield ComplianceProblem(
            rule,
            f"{term} ({where}) is {value} {inv.currency}: EN 16931 amounts carry at most two "
            f"decimals, so an amount in {inv.currency} with a non-zero third decimal cannot "
            "be sent as an EN 16931 e-invoice; send the PDF instead",
        )


def _payment(inv: EInvoice) -> Iterator[ComplianceProblem]:
    payment = inv.payment
    if payment and payment.means_code in CREDIT_TRANSFER_MEANS and not payment.accounts:
        yield ComplianceProblem(
            "BR-61", "a credit transfer needs the seller's account (BT-84); set `seller.iban`"
        )
    if inv.totals.payable > 0 and not (inv.due_date or inv.payment_terms):
        yield ComplianceProblem(
            "BR-CO-25", "an amount is due but there is neither a due date nor payment terms"
        )


def _peppol(inv: EInvoice) -> Iterator[ComplianceProblem]:
    if not inv.buyer.endpoint:
        yield ComplianceProblem(
            "PEPPOL-EN16931-R010",
            f"buyer `{inv.buyer.name}` has no Peppol participant id (BT-49); fill the "
            "account's Peppol id (for example 0088:5790000435951) or send by email",
        )
    if not inv.seller.endpoint:
        yield ComplianceProblem(
            "PEPPOL-EN16931-R020",
            "the seller has no Peppol participant id (BT-34); set `seller.peppol_id`",
        )
    if not (inv.buyer_reference or inv.purchase_order_reference):
        yield ComplianceProblem(
            "PEPPOL-EN16931-R003", "a buyer reference (BT-10) or purchase order is required"
        )
    both_german = _country(inv.seller) == "DE" and _country(inv.buyer) == "DE"
    if len(inv.notes) > 1 and not both_german:
        yield ComplianceProblem(
            "PEPPOL-EN16931-R002", "no more than one note is allowed on document level"
        )
    if both_german:
        yield from _german(inv)


def _country(party: Party) -> str | None:
    return party.address.country if party.address else None


def _german(inv: EInvoice) -> Iterator[ComplianceProblem]:
    """The German national rules Peppol applies when seller and buyer are both in Germany."""
    seller, buyer = inv.seller, inv.buyer
    if not inv.payment:
        yield ComplianceProblem("DE-R-001", "payment instructions (BG-16) are required")
    contact = seller.contact
    for rule, value, what in (
        ("DE-R-003", seller.address and seller.address.city, "seller city (`seller.city`)"),
        ("DE-R-004", seller.address and seller.address.postal_code,
         "seller post code (`seller.postal_code`)"),
        ("DE-R-005", contact and contact.name, "seller contact point"),
        ("DE-R-006", contact and contact.phone, "seller phone (`seller.phone`)"),
        ("DE-R-007", contact and contact.email, "seller email (`seller.email`)"),
        ("DE-R-008", buyer.address and buyer.address.city,
         f"city of buyer `{buyer.name}` (pass `buyer_address`)"),
        ("DE-R-009", buyer.address and buyer.address.postal_code,
         f"post code of buyer `{buyer.name}` (pass `buyer_address`)"),
        ("DE-R-015", inv.buyer_reference, "buyer reference (BT-10)"),
    ):
        if not value:
            yield ComplianceProblem(
                rule, f"seller and buyer are in Germany, so the {what} is required"
            )
