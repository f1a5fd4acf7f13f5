"""Money as Decimal in a currency's ISO 4217 minor units.

Floats never hold money here: every amount is a Decimal quantized to the number of minor
units ISO 4217 gives its currency (JPY 0, EUR 2, KWD 3). Rounding is half-up, the rule most
tax authorities prescribe for invoice totals (for example EN 16931 BR-DEC rules).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

# ISO 4217 active codes whose minor unit is not 2 (list published by SIX, amendment 179).
_MINOR_UNITS_NOT_TWO = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0,
    "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    "CLF": 4, "UYW": 4,
}

# ISO 4217 active codes with two minor units.
_TWO_MINOR_UNITS = """
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP
BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD
FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD
KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD
NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP
SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED
VES WST XCD XCG YER ZAR ZMW ZWG
""".split()

MINOR_UNITS: dict[str, int] = {code: 2 for code in _TWO_MINOR_UNITS} | _MINOR_UNITS_NOT_TWO


class UnknownCurrencyError(ValueError):
    """A currency code that is not an active ISO 4217 code."""


class InvalidAmountError(ValueError):
    """A text that does not parse as a decimal amount."""


def minor_units(currency: str) -> int:
    """Return the ISO 4217 minor units of `currency` (JPY 0, EUR 2, KWD 3)."""
    code = (currency or "").strip().upper()
    if code not in MINOR_UNITS:
        raise UnknownCurrencyError(
            f"`{currency}` is not an active ISO 4217 currency code; "
            "fix the currency on the source record (for example USD, EUR, JPY)."
        )
    return MINOR_UNITS[code]


def is_iso_currency(currency: str | None) -> bool:
    return (currency or "").strip().upper() in MINOR_UNITS


def to_decimal(value: object) -> Decimal:
    """Parse a source value into a Decimal without passing through float."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    text = str(value).strip().replace(",", "")
    try:
        return Decimal(text)
    except InvalidOperation as exc:
        raise InvalidAmountError(f"`{value}` is not a decimal amount") from exc


@dataclass(frozen=True, order=True)
class Money:
    """An amount in one currency, always quantized to that currency's minor units."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        code = self.currency.strip().upper()
        quantum = Decimal(1).scaleb(-minor_units(code))
        object.__setattr__(self, "currency", code)
        object.__setattr__(
            self, "amount", to_decimal(self.amount).quantize(quantum, rounding=ROUND_HALF_UP)
        )

    @classmethod
    def of(cls, value: object, currency: str) -> Money:
        return cls(to_decimal(value), currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(Decimal(0), currency)

    @classmethod
    def from_minor(cls, minor: int, currency: str) -> Money:
        return cls(Decimal(minor).scaleb(-minor_units(currency)), currency)

    @property
    def minor(self) -> int:
        """The amount as an integer count of minor units (cents, fils, yen)."""
        return int(self.amount.scaleb(minor_units(self.currency)))

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValueError(f"cannot combine {self.currency} and {other.currency} amounts")

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


def money_sum(amounts: list[Money], currency: str) -> Money:
    total = Money.zero(currency)
    for amount in amounts:
        total = total + amount
    return total
