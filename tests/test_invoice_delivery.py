"""The delivery start day, and the settings that protect real invoices from demo values."""

from __future__ import annotations

import datetime as dt

import pytest

from q2c.invoice_delivery import delivery_start
from q2c.settings import load_settings

SELLER = {
    "name": "Acme Ltd", "street": "1 Long Lane", "postal_code": "EC1A 1BB", "city": "London",
    "country": "GB", "vat_id": "GB123456789", "email": "billing@acme.example",
    "iban": "GB33BUKB20201555555555", "bic": "BUKBGB22", "timezone": "Europe/London",
    "peppol_id": "9932:GB123456789", "phone": "+44 20 7946 0000",
}


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("Q2C_HOME", str(tmp_path))
    (tmp_path / "q2c.yaml").write_text("")
    monkeypatch.setenv("Q2C_CONFIG", str(tmp_path / "q2c.yaml"))
    for name in ("Q2C_DELIVER_FROM", "Q2C_DELIVERY_LOOKBACK_DAYS", "Q2C_OPS_STORE"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_the_first_run_fixes_the_delivery_start_and_later_runs_keep_it(home, monkeypatch):
    monkeypatch.setenv("Q2C_AS_OF", "2026-12-04")
    assert delivery_start(load_settings()) == dt.date(2026, 10, 20)  # 45 days before

    monkeypatch.setenv("Q2C_AS_OF", "2027-03-01")
    assert delivery_start(load_settings()) == dt.date(2026, 10, 20)

    monkeypatch.setenv("Q2C_DELIVER_FROM", "2026-01-01")
    assert delivery_start(load_settings()) == dt.date(2026, 1, 1)


@pytest.mark.parametrize("value", ["-1", "ten"])
def test_a_negative_or_unreadable_lookback_is_refused(home, monkeypatch, value):
    monkeypatch.setenv("Q2C_DELIVERY_LOOKBACK_DAYS", value)
    with pytest.raises(ValueError, match="Q2C_DELIVERY_LOOKBACK_DAYS"):
        load_settings()


def test_a_complete_seller_block_is_used(home):
    (home / "q2c.yaml").write_text(
        "seller:\n" + "".join(f"  {k}: \"{v}\"\n" for k, v in SELLER.items()))
    seller = load_settings().seller
    assert (seller.name, seller.iban, seller.peppol_id) == (
        "Acme Ltd", "GB33BUKB20201555555555", "9932:GB123456789")


@pytest.mark.parametrize(("change", "message"), [
    ({"iban": None}, "missing or empty keys iban"),
    ({"vat_id": "  "}, "missing or empty keys vat_id"),
    ({"address": "1 Long Lane"}, "unknown keys address"),
])
def test_a_partial_or_misspelled_seller_block_is_refused(home, change, message):
    values = {**SELLER, **change}
    lines = "".join(
        f"  {k}:\n" if v is None else f"  {k}: \"{v}\"\n" for k, v in values.items()
    )
    (home / "q2c.yaml").write_text("seller:\n" + lines)
    with pytest.raises(ValueError, match=message):
        load_settings()


@pytest.mark.parametrize(("change", "message"), [
    ({"iban": "GB00BUKB20201555555555"}, "iban 'GB00BUKB20201555555555' fails its check"),
    ({"country": "Netherlands"}, "country 'Netherlands' is not an ISO 3166 code"),
    ({"peppol_id": "abc"}, "peppol_id 'abc' is not '<scheme>:<id>'"),
    ({"timezone": "Mars/Base"}, "timezone 'Mars/Base' is not an IANA zone"),
])
def test_a_seller_value_that_cannot_be_right_is_refused(home, change, message):
    values = {**SELLER, **change}
    (home / "q2c.yaml").write_text(
        "seller:\n" + "".join(f"  {k}: \"{v}\"\n" for k, v in values.items()))
    with pytest.raises(ValueError, match=message):
        load_settings()


def test_a_misspelled_key_or_a_missing_named_file_is_a_clear_cli_error(home, capsys,
                                                                       monkeypatch):
    from q2c.cli import main

    (home / "q2c.yaml").write_text("seler:\n  name: Acme BV\n")
    assert main(["outbox", "status"]) == 2
    assert "has unknown keys seler" in capsys.readouterr().err

    monkeypatch.setenv("Q2C_CONFIG", str(home / "missing.yaml"))
    assert main(["outbox", "status"]) == 2
    assert "Q2C_CONFIG names" in capsys.readouterr().err
