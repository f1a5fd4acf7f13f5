"""EN 16931 arithmetic: line net amounts, VAT per category and rate, document totals.

The standard fixes the order of the calculation, and the CEN and Peppol validators check
every step of it (PEPPOL-EN16931-R120, BR-CO-10..17, BR-S-08/09 and their siblings):

1. line net amount (BT-131) = quantity x net price / base quantity, less line allowances,
   plus line charges, rounded to the currency;
2. per VAT category and rate, the taxable amount (BT-116) is the sum of the line net amounts
   plus document charges less document allowances of that category and rate, and the tax
   (BT-117) is that sum times the rate, rounded ONCE (never the sum of per-line taxes);
3. the document totals (BT-106..BT-115) are sums of those. A residual between what the ERP
   charged and this result goes into the rounding amount (BT-114) and nowhere else: moving
   it into a line would change an amount the customer can check against its order.

Rounding is half-up and symmetric (away from zero for negative amounts), so a credit note
with the same lines as an invoice gives exactly the negated amounts.

Decimals. EN 16931-1 gives the semantic type Amount at most two decimals (the CEN rules
BR-DEC-01..28 reject a third, fatally) while unit prices (BT-146..148) and quantities are
unlimited. Amounts here are rounded to the currency's ISO 4217 minor units: JPY has none, and
whole yen satisfy "at most two"; EUR has two. A three-decimal currency (KWD, BHD, OMR, TND,
JOD, IQD, LYD) can only be carried while every amount ends in a zero fils:
`exceeds_amount_decimals()` tells the caller when it does not, and q2c then holds the
invoice instead of rounding the ERP's amounts to cents, which would change the invoice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_UP, Decimal

from q2c.einvoice.model import AllowanceCharge, InvoiceLine, Totals, VatBreakdown
from q2c.money import minor_units

EN16931_AMOUNT_DECIMALS = 2
# Net prices derived from VAT-inclusive prices keep six decimals: the ERP's own precision for
# unit prices, and close enough that quantity x price stays within Peppol's 0.02 slack.
NET_PRICE_DECIMALS = 6
HUNDRED = Decimal(100)


def amount_quantum(currency: str) -> Decimal:
    """The smallest amount of `currency` (0.01 EUR, 1 JPY, 0.001 KWD)."""
    return Decimal(1).scaleb(-minor_units(currency))


def round_amount(value: Decimal, currency: str) -> Decimal:
    """`value` rounded half-up to the currency's minor units."""
    return Decimal(value).quantize(amount_quantum(currency), rounding=ROUND_HALF_UP)


def exceeds_amount_decimals(value: Decimal) -> bool:
    """True when `value` has a non-zero digit beyond EN 16931's two amount decimals."""
    return value != value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def as_en16931_amount(value: Decimal) -> Decimal:
    """`value` written with at most two decimals when that loses nothing (12.340 -> 12.34).

    A value with a significant third decimal is returned unchanged; the caller reports it.
    """
    if -value.as_tuple().exponent <= EN16931_AMOUNT_DECIMALS or exceeds_amount_decimals(value):
        return value
    return value.quantize(Decimal("0.01"))


def line_net_amount(
    quantity: Decimal,
    net_price: Decimal,
    currency: str,
    *,
    base_quantity: Decimal | None = None,
    allowances: Iterable[Decimal] = (),
    charges: Iterable[Decimal] = (),
) -> Decimal:
    """BT-131: quantity x net price / base quantity, less allowances, plus charges, rounded.

    Line allowances and charges are amounts already in the currency, so rounding the product
    first and rounding the whole give the same result.
    """
    base = base_quantity if base_quantity else Decimal(1)
    gross = round_amount(quantity * net_price / base, currency)
    return gross - sum(allowances, Decimal(0)) + sum(charges, Decimal(0))


def net_price_from_gross(
    gross_price: Decimal, vat_rate: Decimal, places: int = NET_PRICE_DECIMALS
) -> Decimal:
    """A unit price without VAT from a VAT-inclusive one (11.90 at 19 % -> 10.000000).

    EN 16931 carries net prices only (BT-146); a price list that includes VAT is converted
    here, with `places` decimals, since prices may have more decimals than amounts.
    """
    net = gross_price * HUNDRED / (HUNDRED + vat_rate)
    return net.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def net_amount_from_gross(gross_amount: Decimal, vat_rate: Decimal, currency: str) -> Decimal:
    """A VAT-inclusive line amount without its VAT, rounded to the currency (29.97 -> 25.18)."""
    return round_amount(gross_amount * HUNDRED / (HUNDRED + vat_rate), currency)


def vat_amount(taxable: Decimal, vat_rate: Decimal | None, currency: str) -> Decimal:
    """BT-117: taxable amount x rate / 100, rounded once; no rate (category O) means no tax."""
    if not vat_rate:
        return round_amount(Decimal(0), currency)
    return round_amount(taxable * vat_rate / HUNDRED, currency)


def vat_key(category: str, rate: Decimal | None) -> tuple[str, Decimal | None]:
    """The grouping key of a VAT breakdown: category code and rate (19 and 19.00 are one)."""
    return category, (None if rate is None else Decimal(rate).normalize())


def vat_breakdown(
    lines: Sequence[InvoiceLine],
    allowances_charges: Sequence[AllowanceCharge],
    currency: str,
) -> tuple[VatBreakdown, ...]:
    """BG-23: one row per VAT category and rate, in the order they first appear.

    Document allowances and charges without a category cannot be placed in any row; the
    builder always sets one (BR-32/BR-37 require it), so they are an error here.
    """
    taxable: dict[tuple[str, Decimal | None], Decimal] = {}
    rates: dict[tuple[str, Decimal | None], Decimal | None] = {}

    def add(category: str, rate: Decimal | None, amount: Decimal) -> None:
        key = vat_key(category, rate)
        taxable[key] = taxable.get(key, Decimal(0)) + amount
        rates.setdefault(key, rate)

    for line in lines:
        add(line.vat_category, line.vat_rate, line.net_amount)
    for item in allowances_charges:
        if not item.vat_category:
            raise ValueError(
                f"document {'charge' if item.is_charge else 'allowance'} `{item.reason}` has "
                "no VAT category; give every allowance and charge the category and rate of "
                "the lines it reduces or adds to"
            )
        add(item.vat_category, item.vat_rate, item.amount if item.is_charge else -item.amount)

    return tuple(
        VatBreakdown(
            category=key[0],
            rate=rates[key],
            taxable_amount=round_amount(amount, currency),
            tax_amount=vat_amount(amount, rates[key], currency),
        )
        for key, amount in taxable.items()
    )


def document_totals(
    lines: Sequence[InvoiceLine],
    allowances_charges: Sequence[AllowanceCharge],
    breakdown: Sequence[VatBreakdown],
    currency: str,
    *,
    prepaid: Decimal = Decimal(0),
    charged_total: Decimal | None = None,
) -> Totals:
    """BG-22 from the lines, the document allowances and charges, and the VAT breakdown.

    Args:
        prepaid: BT-113, amounts paid before this invoice was issued.
        charged_total: The total including VAT that the seller actually charged (the ERP's
            figure). Its difference from the EN 16931 result becomes the rounding amount
            BT-114; None means there is no such figure and no rounding.
    """
    allowances = [item.amount for item in allowances_charges if not item.is_charge]
    charges = [item.amount for item in allowances_charges if item.is_charge]
    line_total = sum((line.net_amount for line in lines), Decimal(0))
    allowance_total = sum(allowances, Decimal(0))
    charge_total = sum(charges, Decimal(0))
    tax_exclusive = line_total - allowance_total + charge_total
    tax_total = sum((row.tax_amount for row in breakdown), Decimal(0))
    tax_inclusive = tax_exclusive + tax_total
    rounding = Decimal(0) if charged_total is None else charged_total - tax_inclusive
    return Totals(
        line_total=round_amount(line_total, currency),
        tax_exclusive=round_amount(tax_exclusive, currency),
        tax_inclusive=round_amount(tax_inclusive, currency),
        payable=round_amount(tax_inclusive - prepaid + rounding, currency),
        allowance_total=round_amount(allowance_total, currency) if allowances else None,
        charge_total=round_amount(charge_total, currency) if charges else None,
        tax_total=round_amount(tax_total, currency),
        prepaid=round_amount(prepaid, currency) if prepaid else None,
        rounding=round_amount(rounding, currency) if rounding else None,
    )
