"""Every source at once, from landed files to the core and KPI marts, in one dbt build.

A deployment rarely runs one CRM and one ERP only: here Salesforce and HubSpot, QuickBooks,
NetSuite, Dynamics 365 Finance, Sage Intacct and Stripe are all enabled together. The shared
real-shaped Fivetran exports (Salesforce, HubSpot, QuickBooks, Stripe) and the hand-made
exports of the three ERPs without shared data are landed through the ingest, and the whole
project is built. The values checked below are worked out in the source modules' own tests
(tests/erp_fixtures.py states them); here they must survive the unions into the core marts,
next to the other sources, with every row naming its source system and source id.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import erp_fixtures
import hubspot_support
import pytest
from test_source_stripe import _write_landing as write_stripe_landing

from q2c.delivery.export import WAREHOUSE_DDL as DELIVERY_WAREHOUSE_DDL
from q2c.review import ensure_review_warehouse_tables
from q2c.sources.landing import load_source
from q2c.sources.schema import SOURCES
from q2c.warehouse import connect

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
DBT_PROJECT = REPO / "dbt_project"
DBT = Path(sys.executable).parent / "dbt"
ERPS = ("netsuite", "dynamics365", "sage_intacct")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Land all seven sources, build the whole project once, return what happened."""
    tmp = tmp_path_factory.mktemp("all-sources")
    landing = tmp / "landing"
    hubspot_support.write_landing(landing)
    write_stripe_landing(landing / "stripe")
    for source in ERPS:
        erp_fixtures.write_landing(landing, source)

    path = tmp / "warehouse.duckdb"
    loads = {}
    with connect(path) as conn:
        for source in ("salesforce", "quickbooks"):
            loads[source] = load_source(conn, SHARED_DATA, source, "run-all")
        for source in ("hubspot", "stripe", *ERPS):
            loads[source] = load_source(conn, landing, source, "run-all")
        conn.execute(DELIVERY_WAREHOUSE_DDL)
        ensure_review_warehouse_tables(conn)

    dbt_vars = {"as_of_date": "2024-06-30"} | {f"q2c_{s}_enabled": True for s in SOURCES}
    command = [
        str(DBT), "build",
        "--project-dir", str(DBT_PROJECT), "--profiles-dir", str(DBT_PROJECT),
        "--target-path", str(tmp / "target"), "--log-path", str(tmp / "logs"),
        "--vars", json.dumps(dbt_vars),
    ]
    env = os.environ | {"Q2C_WAREHOUSE": str(path), "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    results = json.loads((tmp / "target" / "run_results.json").read_text())["results"]
    return {"path": path, "loads": loads, "result": result, "results": results}


def _query(built: dict, sql: str) -> list[tuple]:
    with duckdb.connect(str(built["path"]), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def _systems(built: dict, relation: str, column: str = "source_system") -> set[str]:
    return {row[0] for row in _query(built, f"select distinct {column} from {relation}")}


def test_the_whole_project_builds_with_every_source_enabled(built):
    failed = [r["unique_id"] for r in built["results"] if r["status"] in ("error", "fail")]

    assert built["result"].returncode == 0, built["result"].stdout[-6000:]
    assert failed == []
    built_models = {r["unique_id"].split(".")[-1] for r in built["results"]
                    if r["unique_id"].startswith("model.")}
    for source in SOURCES:
        assert any(name.startswith(f"stg_{source}__") for name in built_models), source
    assert {"fct_gateway_transactions", "fct_payouts", "kpi_dso_monthly",
            "rpt_fct_gateway_transactions", "rpt_fct_payouts"} <= built_models


def test_every_source_landed_rows_and_unusable_rows_were_reported_not_dropped(built):
    for source, loads in built["loads"].items():
        assert sum(load.rows_loaded for load in loads) > 0, source

    quarantined = _query(built, """
        select source, table_name, file, row_number, reason
        from q2c_ops.quarantine order by source, table_name, row_number""")
    sources = {row[0] for row in quarantined}
    assert {"hubspot", "stripe", "netsuite"} <= sources
    assert all(row[2] and row[3] and row[4] for row in quarantined)
    netsuite = [row for row in quarantined if row[0] == "netsuite"]
    assert [(row[1], row[3]) for row in netsuite] == [("transaction", 10)]


def test_crm_records_of_both_crms_reach_the_core(built):
    assert _systems(built, "core.dim_accounts", "crm_source_system") >= {"salesforce", "hubspot"}
    # Every opportunity in the shared Salesforce export is soft-deleted (is_deleted true).
    assert _query(built, "select count(*) from raw_salesforce.opportunity") == [(10,)]
    assert _systems(built, "core.fct_quotes") == {"hubspot"}
    assert "hubspot" in _systems(built, "core.fct_interactions")
    hubspot_types = {row[0] for row in _query(built, """
        select distinct interaction_type from core.fct_interactions
        where source_system = 'hubspot'""")}
    assert {"ticket", "call"} <= hubspot_types


def test_invoices_payments_and_credit_notes_of_every_erp_reach_the_core(built):
    erps = {"quickbooks", "stripe", *ERPS}

    assert _systems(built, "core.fct_invoices") == erps
    assert _systems(built, "core.fct_invoice_lines") == erps
    assert _systems(built, "core.fct_payments") == erps
    assert _systems(built, "core.dim_accounts", "erp_source_system") - {None} == erps
    assert {"quickbooks", "netsuite", "stripe"} <= _systems(built, "core.fct_credit_notes")


def test_a_netsuite_credit_memo_applied_without_a_payment_credits_its_invoice(built):
    rows = _query(built, """
        select invoice_number, total_amount, paid_amount, credited_amount,
               computed_balance_amount, status
        from core.fct_invoices
        where source_system = 'netsuite' and invoice_number in ('INV-1001', 'INV-1002')
        order by invoice_number""")

    assert rows == [
        ("INV-1001", Decimal("1190.0000"), Decimal("952.0000"), Decimal("238.0000"),
         Decimal("0.0000"), "paid"),
        ("INV-1002", Decimal("500.0000"), Decimal("200.0000"), Decimal("0.0000"),
         Decimal("300.0000"), "partially_paid"),
    ]
    credit_rows = _query(built, """
        select allocation_type, amount, payment_key is null
        from core.fct_payment_allocations
        where source_system = 'netsuite' and credit_memo_id = '2001'""")
    assert credit_rows == [("credit_note", Decimal("238.0000"), True)]


def test_every_canonical_row_names_its_source_system_and_source_id(built):
    relations = [row[0] for row in _query(built, """
        select table_schema || '.' || table_name from information_schema.columns
        where table_schema = 'core' and column_name = 'source_id'
        intersect
        select table_schema || '.' || table_name from information_schema.columns
        where table_schema = 'core' and column_name = 'source_system'""")]

    assert len(relations) >= 12
    for relation in relations:
        missing = _query(built, f"""
            select count(*) from {relation}
            where source_system is null or source_id is null""")[0][0]
        assert missing == 0, relation


def test_ids_that_repeat_across_erps_stay_apart(built):
    keys = _query(built, """
        select count(*), count(distinct invoice_key),
               count(distinct source_system || ':' || invoice_id)
        from core.fct_invoices""")[0]

    assert keys[0] == keys[1] == keys[2]
    accounts = _query(built, """
        select count(*), count(distinct account_key) from core.dim_accounts""")[0]
    assert accounts[0] == accounts[1]


def test_kpi_marts_carry_every_erp(built):
    aging_currencies = {row[0] for row in _query(built, "select currency from kpi.kpi_ar_aging")}
    invoice_currencies = {row[0] for row in _query(built, """
        select distinct currency from core.fct_invoices
        where coalesce(balance_amount, computed_balance_amount) > 0""")}

    assert aging_currencies == invoice_currencies
    assert {"EUR", "KWD", "USD"} <= aging_currencies
