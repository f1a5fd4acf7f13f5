"""Money keeps each currency's ISO 4217 minor units and never passes through float."""

from decimal import Decimal

import pytest

from q2c.money import Money, UnknownCurrencyError, minor_units, money_sum


@pytest.mark.parametrize(("currency", "units"), [("JPY", 0), ("EUR", 2), ("KWD", 3), ("CLF", 4)])
def test_minor_units_follow_iso_4217(currency, units):
    assert minor_units(currency) == units


def test_amounts_are_quantized_half_up_to_the_currency():
    assert Money.of("10.005", "EUR").amount == Decimal("10.01")
    assert Money.of("1234.5", "JPY").amount == Decimal("1235")
    assert Money.of("0.0005", "KWD").amount == Decimal("0.001")


def test_minor_unit_counts_round_trip():
    assert Money.of("12.345", "KWD").minor == 12345
    assert Money.from_minor(1999, "USD") == Money.of("19.99", "USD")


def test_sums_stay_exact_where_float_would_drift():
    total = money_sum([Money.of("0.10", "EUR")] * 3, "EUR")
    assert total.amount == Decimal("0.30")


def test_mixing_currencies_is_refused():
    with pytest.raises(ValueError, match="cannot combine EUR and USD"):
        Money.of("1", "EUR") + Money.of("1", "USD")


def test_an_unknown_currency_says_what_to_fix():
    with pytest.raises(UnknownCurrencyError, match="`US\\$` is not an active ISO 4217"):
        Money.of("1", "US$")
