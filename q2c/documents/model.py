"""What an invoice document shows, independent of where the numbers came from.

An `InvoiceDocument` holds the issued invoice exactly as the ERP recorded it (q2c never
recomputes or renumbers an issued invoice), plus the buyer and seller details and the
language and locale to print it in. It is immutable and has a canonical JSON form, so the
same inputs always hash to the same value and an already rendered invoice can be skipped.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal

from q2c.money import Money
from q2c.settings import Seller


@dataclass(frozen=True)
class Buyer:
    """The billed customer as printed in the address block."""

    name: str
    address_lines: tuple[str, ...] = ()
    country: str | None = None
    vat_id: str | None = None
    email: str | None = None
    contact_name: str | None = None


@dataclass(frozen=True)
class InvoiceLine:
    """One printed line. `kind` is `item` or `discount` (a discount amount is negative).

    The unit price stays a plain Decimal in the invoice currency: prices per unit may carry
    more digits than the currency's minor units (0.0125 EUR per API call).
    """

    index: int
    description: str
    quantity: Decimal | None
    unit_price: Decimal | None
    amount: Money
    kind: str = "item"
    item_name: str | None = None


@dataclass(frozen=True)
class TaxBreakdown:
    """Tax of one rate: `rate` in percent (19 means 19 %), the taxable base and the tax."""

    rate: Decimal | None
    taxable: Money
    tax: Money


@dataclass(frozen=True)
class InvoiceDocument:
    """Everything one invoice PDF prints, in the invoice currency.

    `amount_paid`, `amount_credited` and `balance_due` are the ERP's figures on the data
    date; `payment_reference` is what the customer quotes on the bank transfer (the invoice
    number, so the remittance matches the invoice without a lookup).
    """

    invoice_id: str
    invoice_number: str
    issue_date: dt.date
    due_date: dt.date
    currency: str
    language: str
    locale: str
    seller: Seller
    buyer: Buyer
    lines: tuple[InvoiceLine, ...]
    tax_breakdown: tuple[TaxBreakdown, ...]
    subtotal: Money
    discount: Money
    tax_total: Money
    total: Money
    amount_paid: Money
    amount_credited: Money
    balance_due: Money
    payment_term_days: int | None = None
    payment_reference: str = ""
    memo: str | None = None
    account_key: str | None = None
    # The account's CRM segment and brand: content targeting picks blocks by them.
    segment: str | None = None
    brand: str | None = None

    @property
    def item_lines(self) -> tuple[InvoiceLine, ...]:
        return tuple(line for line in self.lines if line.kind == "item")

    @property
    def is_settled(self) -> bool:
        return self.balance_due.amount <= 0

    def canonical(self) -> dict:
        """The document as plain JSON types, with amounts as strings, for hashing."""
        return _plain(self)

    def canonical_json(self) -> str:
        """Sorted-key, whitespace-free JSON: equal documents give equal text."""
        return canonical_json(self.canonical())

    def digest(self) -> str:
        """sha256 of the canonical JSON of the document alone (no content versions)."""
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()


def canonical_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _plain(value: object) -> object:
    """Convert dataclasses, Money, Decimal and dates into JSON types, losslessly."""
    if isinstance(value, Money):
        return {"amount": str(value.amount), "currency": value.currency}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value
