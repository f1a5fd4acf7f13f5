"""The sentences finance reads when an invoice is held.

A suite's `reason` template names frame columns in braces. Amount columns (names ending in
`_amount`) are written the way an invoice prints them: thousands separated, with as many
decimals as the invoice currency has minor units, so a yen difference reads "1" and a
Kuwaiti dinar difference "0.001". An empty value reads "(empty)".
"""

from __future__ import annotations

from decimal import Decimal

from q2c.money import MINOR_UNITS

from .frame import plain

EMPTY = "(empty)"


def render_reason(template: str, row: dict[str, object], currency_column: str) -> str:
    """Fill `template` from `row`, formatting amounts in the row's currency."""
    decimals = _decimals(row.get(currency_column))
    values = {name: _text(name, value, decimals) for name, value in row.items()}
    return template.format_map(values)


def format_amount(amount: Decimal, decimals: int | None) -> str:
    """`1190` in EUR -> `1,190.00`; unknown currency -> the amount as stored, no zeros added."""
    if decimals is None:
        return f"{amount.normalize():,f}"
    return f"{amount:,.{decimals}f}"


def _decimals(currency: object) -> int | None:
    code = plain(currency)
    return MINOR_UNITS.get(str(code).strip().upper()) if code is not None else None


def _text(name: str, value: object, decimals: int | None) -> str:
    if isinstance(value, Decimal) and name.endswith("_amount"):
        return format_amount(value, decimals)
    value = plain(value)
    return EMPTY if value is None or value == "" else str(value)
