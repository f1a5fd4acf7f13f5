"""The KPI marts' dbt unit tests, run through the real dbt CLI.

Every expected value of those tests is worked out by hand in the test's yml description.
dbt mocks each input of a unit test but reads the input's columns from the warehouse, so
the parents are first built empty over an empty raw layer landed the way ingest lands it.
Then every unit test of a `kpi_` model must run and pass, and the tests that ran must be
exactly the ones declared in yml: a deleted, renamed or deselected test fails here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import yaml

from q2c.delivery.export import WAREHOUSE_DDL as DELIVERY_WAREHOUSE_DDL
from q2c.review import ensure_review_warehouse_tables
from q2c.sources.landing import load_table
from q2c.sources.schema import RAW_TABLES

REPO = Path(__file__).resolve().parents[1]
DBT_PROJECT = REPO / "dbt_project"
DBT = Path(sys.executable).parent / "dbt"
KPI_MODELS = "kpi_*"
# The unit tests each KPI mart must keep. A new test is added here too; one that disappears
# from yml (or stops running) fails this module.
PINNED_UNIT_TESTS = {
    "kpi_ar_aging": {"aging_buckets_split_on_30_60_90_days"},
    "kpi_ar_aging_history": {"aging_history_rebuilds_open_amounts_on_each_snapshot_day"},
    "kpi_dso_monthly": {"dso_standard_and_countback_per_month_and_currency"},
    "kpi_days_to_pay_by_account": {"days_to_pay_simple_and_weighted_per_account_and_month"},
    "kpi_days_to_pay_monthly": {"days_to_pay_monthly_adds_up_accounts_before_dividing"},
    "kpi_dispute_rate": {"dispute_rate_counts_each_disputed_invoice_once_by_issue_month"},
    "kpi_dispute_resolution": {"dispute_resolution_first_contact_outcomes_and_days"},
    "kpi_portal_adoption": {"portal_adoption_share_of_invoiced_accounts_and_invoices"},
    "kpi_time_to_invoice": {"time_to_invoice_mean_and_median_by_first_invoice_month"},
    "kpi_first_contact_resolution": {"first_contact_resolution_of_closed_billing_cases"},
    "kpi_self_service_adoption": {
        "self_service_adoption_share_of_count_and_reporting_amount",
    },
    "kpi_unbilled_won_quotes": {
        "unbilled_won_quotes_older_than_30_days",
        "unbilled_won_quotes_follow_var_unbilled_after_days",
    },
    "kpi_collections_worklist": {
        "collections_worklist_open_items_owner_and_cases_per_account",
        "collections_worklist_ranked_by_risk_history_promises_dunning",
    },
    "kpi_approval_sla": {"approval_sla_counts_late_approvals_and_overdue_pending"},
    "kpi_on_time_delivery": {"on_time_counts_first_lasting_send_against_issue_date_plus_n"},
}


def _declared_kpi_unit_tests() -> dict[str, str]:
    """Unit test name -> model, for every unit test of a kpi_ model in the project's yml."""
    declared: dict[str, str] = {}
    for path in sorted((DBT_PROJECT / "models").rglob("*.yml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for test in document.get("unit_tests") or []:
            if test["model"].startswith("kpi_"):
                assert test["name"] not in declared, f"unit test {test['name']} twice"
                declared[test["name"]] = test["model"]
    return declared


def _dbt(tmp: Path, warehouse: Path, *args: str) -> subprocess.CompletedProcess:
    env = os.environ | {
        "Q2C_WAREHOUSE": str(warehouse),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
    }
    command = [
        str(DBT), *args,
        "--project-dir", str(DBT_PROJECT), "--profiles-dir", str(DBT_PROJECT),
        "--target-path", str(tmp / "target"), "--log-path", str(tmp / "logs"),
    ]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def unit_test_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Build the KPI marts' parents empty, run their unit tests once, return the results."""
    tmp = tmp_path_factory.mktemp("kpi")
    warehouse = tmp / "warehouse.duckdb"
    landing = tmp / "landing"
    landing.mkdir()
    with duckdb.connect(str(warehouse)) as conn:
        for table in RAW_TABLES:
            load_table(conn, landing, table)
        conn.execute(DELIVERY_WAREHOUSE_DDL)
        ensure_review_warehouse_tables(conn)

    for args in (["seed"], ["run", "--empty", "--select", f"+{KPI_MODELS}"]):
        built = _dbt(tmp, warehouse, *args)
        assert built.returncode == 0, built.stdout[-6000:] + built.stderr[-2000:]

    results_file = tmp / "target" / "run_results.json"
    results_file.unlink()  # the build's; a test run that breaks down must not reuse it
    tested = _dbt(tmp, warehouse, "test", "--select", f"test_type:unit,{KPI_MODELS}")
    assert results_file.is_file(), tested.stdout[-6000:] + tested.stderr[-2000:]
    results = json.loads(results_file.read_text(encoding="utf-8"))["results"]
    by_name = {r["unique_id"].rsplit(".", 1)[-1]: r for r in results}
    assert len(by_name) == len(results), "two unit tests share a name"
    return by_name


def test_the_declared_kpi_unit_tests_are_the_pinned_ones() -> None:
    pinned = {name: model for model, names in PINNED_UNIT_TESTS.items() for name in names}

    assert _declared_kpi_unit_tests() == pinned


def test_every_declared_kpi_unit_test_ran(unit_test_results: dict[str, dict]) -> None:
    declared = _declared_kpi_unit_tests()

    assert sorted(unit_test_results) == sorted(declared)
    assert len(unit_test_results) == len(declared)
    for name, model in declared.items():
        assert unit_test_results[name]["unique_id"] == f"unit_test.q2c.{model}.{name}"


def test_every_kpi_unit_test_passed(unit_test_results: dict[str, dict]) -> None:
    failed = {
        name: (result["status"], result.get("message"))
        for name, result in unit_test_results.items()
        if result["status"] != "pass"
    }

    assert failed == {}


def test_every_kpi_mart_has_a_unit_test(unit_test_results: dict[str, dict]) -> None:
    marts = sorted(p.stem for p in (DBT_PROJECT / "models").rglob("kpi_*.sql"))
    tested = {result["unique_id"].split(".")[2] for result in unit_test_results.values()}

    assert marts and [m for m in marts if m not in tested] == []
