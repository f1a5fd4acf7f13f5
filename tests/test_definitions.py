"""The Dagster definitions load and show the whole lineage, from raw tables to sent email."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from orchestration.definitions import defs
from orchestration.jobs import NIGHTLY_JOB_NAME

RAW_INVOICE = dg.AssetKey(["raw_quickbooks", "invoice"])
FCT_INVOICES = dg.AssetKey(["core", "fct_invoices"])
DELIVERIES = dg.AssetKey(["delivery", "fct_deliveries"])


@pytest.fixture(scope="module")
def graph():
    return defs.resolve_asset_graph()


def _specs(graph) -> dict[dg.AssetKey, dg.AssetSpec]:
    return {spec.key: spec for spec in defs.resolve_all_asset_specs()}


def test_every_layer_is_a_group(graph):
    groups = {spec.group_name for spec in _specs(graph).values()}
    assert groups == {"ingest", "staging", "intermediate", "core", "kpi", "quality",
                      "documents", "delivery", "reporting"}


def test_every_asset_has_a_description_and_owners(graph):
    missing = [key.to_user_string() for key, spec in _specs(graph).items()
               if not spec.description or not spec.owners]
    assert missing == []


def test_lineage_runs_from_raw_invoices_and_crm_accounts_to_the_delivery_mart(graph):
    upstream = graph.get(DELIVERIES).parent_keys
    seen, pending = set(), list(upstream)
    while pending:
        key = pending.pop()
        if key not in seen:
            seen.add(key)
            pending.extend(graph.get(key).parent_keys)

    for key in (RAW_INVOICE, dg.AssetKey(["raw_salesforce", "account"]), FCT_INVOICES,
                dg.AssetKey(["core", "dim_accounts"]), dg.AssetKey(["q2c_ops", "invoice_holds"]),
                dg.AssetKey(["documents", "invoice_pdfs"]), dg.AssetKey(["documents", "einvoices"]),
                dg.AssetKey(["q2c_ops", "review_queue"]), dg.AssetKey(["q2c_ops", "outbox"]),
                dg.AssetKey(["q2c_ops", "delivery_events"])):
        assert key in seen, key.to_user_string()


def test_quality_rules_and_dbt_tests_are_checks_on_the_tables_they_read(graph):
    checks = {(key.asset_key, key.name) for key in graph.asset_check_keys}

    assert (RAW_INVOICE, "currency_is_iso_4217") in checks
    assert any(asset == FCT_INVOICES and name.startswith("unique_") for asset, name in checks)
    assert any(asset == FCT_INVOICES and "total" in name for asset, name in checks)
    assert any(asset == RAW_INVOICE and name.startswith("source_unique") for asset, name in checks)
    assert (dg.AssetKey(["q2c_ops", "outbox"]), "no_dead_letters") in checks
    assert (dg.AssetKey(["q2c_ops", "delivery_events"]), "audit_chain_intact") in checks


def test_the_nightly_job_and_its_schedule_are_defined():
    job = defs.resolve_job_def(NIGHTLY_JOB_NAME)
    schedule = defs.resolve_schedule_def("nightly_quote_to_cash_schedule")

    assert job.name == NIGHTLY_JOB_NAME
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == "Europe/Berlin"


def test_the_workspace_loads_the_way_dagster_dev_loads_it(tmp_path):
    """`dagster dev` reads workspace.yaml; the same loader must find the q2c location."""
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate",
         "-w", str(root / "workspace.yaml")],
        cwd=root, env=os.environ | {"DAGSTER_HOME": str(tmp_path)},
        capture_output=True, text=True, check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation successful for code location q2c" in result.stdout + result.stderr
