"""Locale-aware Jinja filters for governed templates: money, dates, numbers, countries.

Templates never format a number themselves. Each filter reads the `locale` variable of the
template context (for example `de_DE`) and formats with Babel, so `1190` in EUR prints as
`1.190,00 €` in a German invoice and `€1,190.00` in an American one, and JPY keeps no
decimals while KWD keeps three (ISO 4217 minor units).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from functools import lru_cache

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal, format_percent
from jinja2 import pass_context
from markupsafe import Markup, escape

from q2c.money import Money, to_decimal

DEFAULT_LOCALE = "en_US"


def parse_locale(value: str | None, fallback: str = DEFAULT_LOCALE) -> Locale:
    """Parse `de_DE`, `de-DE` or `de` into a Babel locale; else `fallback`, else en_US."""
    for candidate in (value, fallback, DEFAULT_LOCALE):
        if not candidate:
            continue
        try:
            return Locale.parse(str(candidate).replace("-", "_"))
        except (UnknownLocaleError, ValueError, TypeError):
            continue
    return Locale.parse(DEFAULT_LOCALE)


def money(
    amount: Money | Decimal, locale: str | Locale, currency: str | None = None, exact: bool = False
) -> str:
    """Format an amount in its currency for a locale, with the currency's ISO 4217 digits.

    Args:
        amount: A Money, or a Decimal together with `currency`.
        locale: Babel locale name such as `de_DE`.
        currency: ISO 4217 code when `amount` is a plain Decimal.
        exact: Keep digits beyond the currency's minor units (unit prices such as 0.0125).
    """
    if isinstance(amount, Money):
        value, code = amount.amount, amount.currency
    else:
        value, code = to_decimal(amount), currency
    if code is None:
        raise ValueError("a plain amount needs a currency to be formatted")
    if exact:
        return format_currency(
            _normalized(value),
            code,
            locale=locale,
            currency_digits=True,
            decimal_quantization=False,
        )
    return format_currency(value, code, locale=locale, currency_digits=True)


def _normalized(value: Decimal) -> Decimal:
    """Drop trailing zeros (`12.5000` to `12.5`) without switching to exponent form."""
    normalized = value.normalize()
    return normalized.quantize(Decimal(1)) if normalized == normalized.to_integral() else normalized


@lru_cache(maxsize=256)
def _cached_locale(name: str) -> Locale:
    return parse_locale(name)


def _locale(context) -> Locale:
    """The context's `locale` as a Babel locale; an unknown one falls back to en_US."""
    return _cached_locale(str(context.get("locale") or DEFAULT_LOCALE))


@pass_context
def money_filter(context, amount, currency: str | None = None, exact: bool = False) -> str:
    if amount is None:
        return ""
    return money(amount, _locale(context), currency=currency, exact=exact)


@pass_context
def date_filter(context, value: dt.date | None, style: str = "medium") -> str:
    if value is None:
        return ""
    return format_date(value, format=style, locale=_locale(context))


@pass_context
def number_filter(context, value) -> str:
    if value is None:
        return ""
    return format_decimal(
        _normalized(to_decimal(value)), locale=_locale(context), decimal_quantization=False
    )


@pass_context
def percent_filter(context, rate) -> str:
    """Format a rate given in percent (`19` or `7.5`) as the locale writes percentages."""
    if rate is None:
        return ""
    fraction = _normalized(to_decimal(rate)) / 100
    return format_percent(fraction, locale=_locale(context), decimal_quantization=False)


@pass_context
def country_filter(context, code: str | None) -> str:
    """The country's name in the document's language (`DE` is `Deutschland` in German)."""
    if not code:
        return ""
    return _locale(context).territories.get(code.upper(), code)


def iban_filter(value: str | None) -> str:
    """Print an IBAN in groups of four, as banks and EPC guidelines show it."""
    compact = "".join((value or "").split()).upper()
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def page_of_filter(label: str) -> Markup:
    """Turn `Page {page} of {pages}` into markup whose numbers the PDF renderer fills in."""
    text = str(escape(label))
    text = text.replace("{pages}", '<span class="page-count"></span>')
    text = text.replace("{page}", '<span class="page-number"></span>')
    return Markup(text)


FILTERS = {
    "money": money_filter,
    "date": date_filter,
    "number": number_filter,
    "percent": percent_filter,
    "country": country_filter,
    "iban": iban_filter,
    "page_of": page_of_filter,
}
