"""Amounts as reviewers read them: in the currency's ISO 4217 minor units.

The warehouse keeps totals with four decimals, so a raw Decimal prints `27417.6000 EUR`;
a reviewer expects `27,417.60 EUR` (and `1,500,000 JPY`, `4,166.167 KWD`). Digits beyond
the minor units are shown only when they are not zeros, so a total a fraction of a cent
above a threshold never reads as equal to it.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from q2c.money import is_iso_currency, minor_units


def format_amount(
    amount: Decimal | None, currency: str | None, *, grouped: bool = False
) -> str:
    """`27417.60 EUR`, or `27,417.60 EUR` when `grouped`; `-` for an unknown amount."""
    if amount is None:
        return "-"
    code = (currency or "").strip().upper()
    return f"{amount_digits(amount, code, grouped=grouped)} {code}".strip()


def amount_digits(amount: Decimal, currency: str | None, *, grouped: bool = False) -> str:
    """The number alone: `27417.60` for EUR, `1500000` for JPY; as given for an unknown
    currency."""
    code = (currency or "").strip().upper()
    shown = _in_minor_units(amount, code) if is_iso_currency(code) else amount
    return f"{shown:,f}" if grouped else f"{shown:f}"


def _in_minor_units(amount: Decimal, currency: str) -> Decimal:
    quantum = Decimal(1).scaleb(-minor_units(currency))
    try:
        rounded = amount.quantize(quantum)
    except InvalidOperation:
        return amount
    if rounded == amount:
        return rounded
    return amount.quantize(Decimal(1).scaleb(amount.normalize().as_tuple().exponent))
