"""Locale-aware Jinja filters for governed templates: money, dates, numbers, countries.

Templates never format a number themselves. Each filter reads the `locale` variable of the
template context (for example `de_DE`) and formats with Babel, so `1190` in EUR prints as
`1.190,00 €` in a German invoice and `€1,190.00` in an American one, and JPY keeps no
decimals while KWD keeps three (ISO 4217 minor units, from `q2c.money`: CLDR's own digits
differ for some currencies, IQD for one, and would round fils away). Digits are Latin in
every locale, as on IBANs, dates and invoice numbers, so one line never mixes two digit
systems.

Right-to-left documents (Arabic, Hebrew) print values from the CRM or ERP inside `<bdi>`
(the `bidi` filter) with a direction taken from the value itself: an amount, date, IBAN or
e-mail address keeps its own order inside a right-to-left line instead of being reordered
by its neighbours.
"""

from __future__ import annotations

import copy
import datetime as dt
import string
import unicodedata
from decimal import Decimal
from functools import lru_cache

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import NumberPattern, format_decimal, format_percent
from jinja2 import pass_context
from markupsafe import Markup, escape

from q2c.money import Money, minor_units, to_decimal

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
        exact: Accepted for templates that ask for unit prices such as 0.0125 explicitly;
            every amount keeps the digits beyond its currency's minor units anyway.
    """
    if isinstance(amount, Money):
        value, code = amount.amount, amount.currency
    else:
        value, code = to_decimal(amount), currency
    if code is None:
        raise ValueError("a plain amount needs a currency to be formatted")
    if not isinstance(locale, Locale):
        locale = _cached_locale(str(locale))
    # At least the currency's minor units, and every further digit the value carries
    # (a unit price of 0.0125, or an amount that was not quantized): never rounded away.
    pattern = _currency_pattern(locale, minor_units(code))
    return pattern.apply(
        _normalized(value), locale, currency=code, currency_digits=False,
        decimal_quantization=False,
    )


@lru_cache(maxsize=256)
def _currency_pattern(locale: Locale, digits: int) -> NumberPattern:
    """The locale's standard currency pattern with exactly `digits` fraction digits.

    Babel prints the `-` of a negative pattern as is; CLDR means the locale's minus sign,
    which in Arabic and Hebrew carries a left-to-right mark so that `-5.500` keeps its
    sign next to the digits in a right-to-left line.
    """
    pattern = copy.copy(locale.currency_formats["standard"])
    pattern.frac_prec = (digits, digits)
    minus = locale.number_symbols.get("latn", {}).get("minusSign", "-")
    pattern.prefix = (pattern.prefix[0], pattern.prefix[1].replace("-", minus))
    pattern.suffix = (pattern.suffix[0], pattern.suffix[1].replace("-", minus))
    return pattern


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


_STRONG_RTL = ("R", "AL")


def text_direction(text: object) -> str | None:
    """`rtl` or `ltr` from the first strong character of `text` (as HTML's `dir=auto`).

    None when the text has no strong character: digits, dates like 2026/03/02, signs.
    """
    for char in str(text):
        kind = unicodedata.bidirectional(char)
        if kind == "L":
            return "ltr"
        if kind in _STRONG_RTL:
            return "rtl"
    return None


def locale_direction(locale: str | Locale | None) -> str:
    """`rtl` for a right-to-left language (Arabic, Hebrew, Persian, Urdu), else `ltr`."""
    if not isinstance(locale, Locale):
        locale = _cached_locale(str(locale or DEFAULT_LOCALE))
    return "rtl" if locale.text_direction == "rtl" else "ltr"


def bidi_filter(value, direction: str | None = None) -> Markup:
    """Print a value isolated from its neighbours, in its own direction.

    `<bdi dir=…>` keeps an amount, date, IBAN, reference or Latin-script name in its own
    order inside a right-to-left line (and an Arabic name inside a left-to-right one).
    Values without a strong character (numbers, numeric dates) are left-to-right.
    """
    if value is None:
        return Markup("")
    chosen = direction if direction in ("ltr", "rtl") else text_direction(value) or "ltr"
    return Markup('<bdi dir="{}">{}</bdi>').format(chosen, value)


def fill_filter(label: str, **values) -> Markup:
    """Fill a label's `{name}` placeholders with values, escaping both.

    Values may be markup already (a `bidi`-isolated amount). Only plain names are
    placeholders: `{amount.__class__}` or `{0}` in a label is refused, so a label text can
    never reach into a value's attributes.
    """
    parts = []
    for literal, name, spec, conversion in string.Formatter().parse(str(label)):
        parts.append(escape(literal))
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise ValueError(
                f"label placeholder `{{{name}}}` in `{label}` is not a plain name; "
                "write placeholders as {amount}, {due_date}"
            )
        if name not in values:
            raise ValueError(f"label `{label}` has a placeholder `{{{name}}}` with no value")
        parts.append(escape(values[name]))
    return Markup("").join(parts)


@pass_context
def locale_direction_filter(context, locale=None) -> str:
    """The direction of a locale (`locale | locale_direction`), for the `dir` attribute."""
    return locale_direction(locale or context.get("locale"))


FILTERS = {
    "money": money_filter,
    "date": date_filter,
    "number": number_filter,
    "percent": percent_filter,
    "country": country_filter,
    "iban": iban_filter,
    "page_of": page_of_filter,
    "bidi": bidi_filter,
    "fill": fill_filter,
    "locale_direction": locale_direction_filter,
}
