"""The nightly landing asset pulls a source's API first (`pull_sources`), then loads it."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from provider_servers import StripeServer, running

from assets.ingest import build_raw_assets, raw_asset_key
from orchestration.resources import Q2CSettings
from q2c.settings import PULL_CONNECTORS, ConfigError, load_settings
from q2c.sources.connectors import CONNECTORS
from q2c.warehouse import connect

WRONG_KEY = "sk_test_wrong_key_4d9e"


@pytest.fixture
def stripe_api():
    yield from running(StripeServer(page_size=2))


def _home(monkeypatch, tmp_path: Path, home: str, **env: str) -> Path:
    config = tmp_path / "q2c.yaml"
    config.write_text("{}\n")
    for name in ("Q2C_LANDING_DIR", "Q2C_WAREHOUSE", "Q2C_OPS_STORE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("Q2C_CONFIG", str(config))
    monkeypatch.setenv("Q2C_HOME", str(tmp_path / home))
    monkeypatch.setenv("Q2C_SOURCES", "salesforce,quickbooks,stripe")
    monkeypatch.setenv("Q2C_PULL_SOURCES", "stripe")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return tmp_path / home


def _materialize(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return dg.materialize(build_raw_assets(("stripe",)), instance=instance,
                          resources={"q2c": Q2CSettings()}, raise_on_error=False)


def _customer_metadata(result: dg.ExecuteInProcessResult) -> dict:
    for materialization in result.asset_materializations_for_node("land_stripe"):
        if materialization.asset_key == raw_asset_key("stripe", "customer"):
            return materialization.metadata
    raise AssertionError("raw_stripe.customer was not materialized")


def _customers_in_warehouse() -> int:
    with connect(load_settings().warehouse_path) as conn:
        return conn.sql("select count(*) from raw_stripe.customer").fetchone()[0]


def _log_text(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> str:
    return "\n".join(entry.user_message for entry in instance.all_logs(result.run_id))


def test_the_landing_asset_pulls_stripe_then_loads_the_last_pull_when_stripe_is_down(
    stripe_api, tmp_path, monkeypatch
):
    _home(monkeypatch, tmp_path, "home", Q2C_STRIPE_URL=stripe_api.url,
          Q2C_STRIPE_API_KEY=stripe_api.token)
    instance = dg.DagsterInstance.ephemeral()

    first = _materialize(instance)

    assert first.success
    metadata = _customer_metadata(first)
    expected = len(stripe_api.objects["customer"])
    assert expected == 5
    assert metadata["pulled_records"].data["customer"] == expected
    assert metadata["pulled_records"].data["invoice"] == 3
    assert metadata["pull_status"].value.startswith("ok")
    assert metadata["dagster/row_count"].value == expected
    assert _customers_in_warehouse() == expected

    # Stripe answers every request with a 503 and asks to come back in an hour; the
    # warehouse is removed so the rows can only come from the files of the first pull.
    stripe_api.fail(503, times=10_000, retry_after="3600")
    load_settings().warehouse_path.unlink()

    second = _materialize(instance)

    assert second.success
    status = _customer_metadata(second)["pull_status"].value
    assert status.startswith("failed, loaded the files of the last pull")
    assert "HTTP 503" in status
    assert _customer_metadata(second)["pulled_records"].data == {}
    assert _customers_in_warehouse() == expected
    warning = next(line for line in _log_text(instance, second).splitlines()
                   if "the pull failed" in line)
    assert warning.startswith("stripe:") and "HTTP 503" in warning
    assert stripe_api.token not in _log_text(instance, first) + _log_text(instance, second)


def test_a_refused_key_without_earlier_files_fails_naming_the_setting_not_the_key(
    stripe_api, tmp_path, monkeypatch
):
    _home(monkeypatch, tmp_path, "fresh", Q2C_STRIPE_URL=stripe_api.url,
          Q2C_STRIPE_API_KEY=WRONG_KEY)
    instance = dg.DagsterInstance.ephemeral()

    result = _materialize(instance)

    assert not result.success
    (failure,) = result.get_step_failure_events()
    message = failure.step_failure_data.user_failure_data.description
    assert "stripe" in message and "HTTP 401" in message
    assert "Q2C_STRIPE_API_KEY" in message
    assert WRONG_KEY not in message
    assert WRONG_KEY not in _log_text(instance, result)
    assert not (tmp_path / "fresh" / "landing" / "stripe" / "customer.csv").exists()


def test_a_down_provider_without_earlier_files_fails_the_asset(
    stripe_api, tmp_path, monkeypatch
):
    _home(monkeypatch, tmp_path, "fresh", Q2C_STRIPE_URL=stripe_api.url,
          Q2C_STRIPE_API_KEY=stripe_api.token)
    stripe_api.fail(503, times=10_000, retry_after="3600")

    result = _materialize(dg.DagsterInstance.ephemeral())

    assert not result.success
    (failure,) = result.get_step_failure_events()
    message = failure.step_failure_data.user_failure_data.description
    assert "no earlier pull landed files" in message and "HTTP 503" in message
    assert "Q2C_PULL_SOURCES" in message


def _settings_with(monkeypatch, tmp_path, sources: str, pull_sources: str):
    config = tmp_path / "q2c.yaml"
    config.write_text("{}\n")
    monkeypatch.setenv("Q2C_CONFIG", str(config))
    monkeypatch.setenv("Q2C_HOME", str(tmp_path))
    monkeypatch.setenv("Q2C_SOURCES", sources)
    monkeypatch.setenv("Q2C_PULL_SOURCES", pull_sources)
    return load_settings()


def test_pull_sources_default_to_none_and_come_from_the_config_file(monkeypatch, tmp_path):
    monkeypatch.delenv("Q2C_PULL_SOURCES", raising=False)
    monkeypatch.delenv("Q2C_SOURCES", raising=False)
    config = tmp_path / "q2c.yaml"
    config.write_text("sources: [hubspot, stripe]\n")
    monkeypatch.setenv("Q2C_CONFIG", str(config))
    monkeypatch.setenv("Q2C_HOME", str(tmp_path))
    assert load_settings().pull_sources == ()

    config.write_text("sources: [hubspot, stripe]\npull_sources: [Stripe, hubspot]\n")
    assert load_settings().pull_sources == ("stripe", "hubspot")
    assert set(PULL_CONNECTORS) == set(CONNECTORS)


def test_a_pull_source_that_is_not_enabled_is_refused(monkeypatch, tmp_path):
    with pytest.raises(ConfigError) as refused:
        _settings_with(monkeypatch, tmp_path, "salesforce,quickbooks", "stripe")
    assert "stripe" in str(refused.value) and "Q2C_PULL_SOURCES" in str(refused.value)
    assert "add it to sources" in str(refused.value)


def test_a_pull_source_without_a_connector_is_refused(monkeypatch, tmp_path):
    with pytest.raises(ConfigError) as refused:
        _settings_with(monkeypatch, tmp_path, "salesforce,netsuite", "salesforce,netsuite")
    assert "no pull connector for netsuite" in str(refused.value)
