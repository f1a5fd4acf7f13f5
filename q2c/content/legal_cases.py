"""Which legal cases an invoice falls under, so the matching legal texts print on it.

The cases follow the VAT rules the e-invoice builder uses for its categories
(`q2c.einvoice.build.vat_category_for`), so the PDF and the e-invoice never disagree:

- `reverse_charge_eu`: seller and buyer in two different EU member states, the buyer has a
  VAT id, and the invoice charges no VAT. The buyer accounts for the VAT (Art. 196 of
  Council Directive 2006/112/EC) and the invoice must say "Reverse charge" (Art. 226(11a)).
  An invoice that does charge VAT is a domestic-rule invoice; the note would contradict it.
- `tax_exemption`: the invoice charges no VAT on a positive amount and the buyer is outside
  the EU: the place of supply of the services is the buyer's country (Art. 44), and the
  invoice states why no VAT is charged.
- `late_payment`: every invoice with a positive total states the terms for late payment
  (Directive 2011/7/EU; in France a mandatory mention on every invoice, Art. L441-10 Code
  de commerce), paid or not: the printed invoice is the same record either way.

The document is read by attribute (seller, buyer, tax_total, total), so this module needs
nothing of `q2c.documents`.
"""

from __future__ import annotations

from decimal import Decimal

REVERSE_CHARGE_EU = "reverse_charge_eu"
TAX_EXEMPTION = "tax_exemption"
LATE_PAYMENT = "late_payment"
# The order legal texts print in.
CASES = (REVERSE_CHARGE_EU, TAX_EXEMPTION, LATE_PAYMENT)

EU_COUNTRIES = frozenset(
    "AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK".split()
)


def legal_cases(doc: object) -> tuple[str, ...]:
    """The legal cases of one document, in print order (see the module docstring)."""
    seller_country = _country(getattr(getattr(doc, "seller", None), "country", None))
    buyer = getattr(doc, "buyer", None)
    buyer_country = _country(getattr(buyer, "country", None))
    buyer_vat_id = str(getattr(buyer, "vat_id", None) or "").strip()
    no_vat = _amount(getattr(doc, "tax_total", None)) == 0
    total = _amount(getattr(doc, "total", None))

    cases = []
    intra_eu = (
        seller_country in EU_COUNTRIES
        and buyer_country in EU_COUNTRIES
        and seller_country != buyer_country
    )
    if intra_eu and buyer_vat_id and no_vat:
        cases.append(REVERSE_CHARGE_EU)
    elif no_vat and total > 0 and buyer_country and buyer_country not in EU_COUNTRIES:
        cases.append(TAX_EXEMPTION)
    if total > 0:
        cases.append(LATE_PAYMENT)
    return tuple(cases)


def _country(value: object) -> str:
    return str(value or "").strip().upper()


def _amount(value: object) -> Decimal:
    """The Decimal of a Money (or a plain number); zero when there is none."""
    amount = getattr(value, "amount", value)
    return Decimal(str(amount)) if amount is not None else Decimal(0)
