"""`q2c pull`: a source's API pulled into the landing folder from the command line."""

from __future__ import annotations

import csv

import pytest
from provider_servers import StripeServer, running

from q2c.cli import main


@pytest.fixture
def stripe_api():
    yield from running(StripeServer(page_size=2))


def _home(monkeypatch, tmp_path, **env: str) -> None:
    config = tmp_path / "q2c.yaml"
    config.write_text("{}\n")
    monkeypatch.setenv("Q2C_CONFIG", str(config))
    monkeypatch.setenv("Q2C_HOME", str(tmp_path / "home"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def test_pull_lands_stripe_customers_and_a_second_pull_starts_from_the_cursor(
    stripe_api, tmp_path, monkeypatch, capsys
):
    _home(monkeypatch, tmp_path, Q2C_STRIPE_URL=stripe_api.url,
          Q2C_STRIPE_API_KEY=stripe_api.token)

    assert main(["pull", "stripe", "--stream", "customer"]) == 0

    landed = tmp_path / "home" / "landing" / "stripe" / "customer.csv"
    with landed.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    expected = len(stripe_api.objects["customer"])
    assert len(rows) == expected > 2
    assert f"customer: {expected} records" in capsys.readouterr().out

    assert main(["pull", "stripe", "--stream", "customer"]) == 0
    assert "customer: 0 records" in capsys.readouterr().out


def test_a_wrong_key_is_a_clear_error_without_the_key(stripe_api, tmp_path, monkeypatch, capsys):
    _home(monkeypatch, tmp_path, Q2C_STRIPE_URL=stripe_api.url,
          Q2C_STRIPE_API_KEY="sk_test_wrong_key_123")

    assert main(["pull", "stripe", "--stream", "customer"]) == 1

    error = capsys.readouterr().err
    assert "Q2C_STRIPE_API_KEY" in error
    assert "sk_test_wrong_key_123" not in error
