"""Which sources a deployment reads: the `sources` setting and the dbt vars it turns into."""

from __future__ import annotations

import pytest

from orchestration.resources import dbt_source_vars
from q2c.settings import ConfigError, load_settings
from q2c.sources.schema import DEFAULT_SOURCES, SOURCES


def _empty_config(folder):
    path = folder / "q2c.yaml"
    path.write_text("{}\n")
    return path


def test_only_salesforce_and_quickbooks_are_read_unless_told_otherwise(monkeypatch, tmp_path):
    monkeypatch.delenv("Q2C_SOURCES", raising=False)
    monkeypatch.setenv("Q2C_CONFIG", str(_empty_config(tmp_path)))
    monkeypatch.setenv("Q2C_HOME", str(tmp_path))

    settings = load_settings()

    assert settings.sources == DEFAULT_SOURCES == ("salesforce", "quickbooks")
    assert dbt_source_vars(settings) == {
        "q2c_salesforce_enabled": True, "q2c_hubspot_enabled": False,
        "q2c_quickbooks_enabled": True, "q2c_netsuite_enabled": False,
        "q2c_dynamics365_enabled": False, "q2c_sage_intacct_enabled": False,
        "q2c_stripe_enabled": False,
    }


def test_sources_come_from_the_environment_or_the_config_file(monkeypatch, tmp_path):
    config = tmp_path / "q2c.yaml"
    config.write_text("sources: [hubspot, netsuite, stripe]\n")
    monkeypatch.setenv("Q2C_CONFIG", str(config))
    monkeypatch.setenv("Q2C_HOME", str(tmp_path))
    monkeypatch.delenv("Q2C_SOURCES", raising=False)

    assert load_settings().sources == ("hubspot", "netsuite", "stripe")

    monkeypatch.setenv("Q2C_SOURCES", " Salesforce, sage_intacct ,salesforce")
    settings = load_settings()

    assert settings.sources == ("salesforce", "sage_intacct")
    enabled = {name for name, on in dbt_source_vars(settings).items() if on}
    assert enabled == {"q2c_salesforce_enabled", "q2c_sage_intacct_enabled"}


def test_an_unknown_source_is_refused_with_the_known_ones_named(monkeypatch, tmp_path):
    monkeypatch.setenv("Q2C_CONFIG", str(_empty_config(tmp_path)))
    monkeypatch.setenv("Q2C_SOURCES", "salesforce,zoho")

    with pytest.raises(ConfigError) as error:
        load_settings()

    assert "zoho" in str(error.value)
    for name in SOURCES:
        assert name in str(error.value)


def test_a_sources_setting_that_names_none_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("Q2C_CONFIG", str(_empty_config(tmp_path)))
    monkeypatch.setenv("Q2C_SOURCES", " , ")

    with pytest.raises(ConfigError) as error:
        load_settings()

    assert "names no source" in str(error.value)
