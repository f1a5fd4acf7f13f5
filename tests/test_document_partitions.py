"""The documents asset by issue date: a backfill renders its days, the nightly run the rest.

The warehouse is built here from the core contract tables with a few invoices on three
issue dates, so every count below is counted by hand from `_INVOICES`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from test_documents import _CONTRACT_DDL

from assets.documents import (
    DEFAULT_DOCUMENTS_START,
    DOCUMENTS_KEY,
    document_partitions,
    invoice_documents,
)
from orchestration.jobs import NIGHTLY_JOB_NAME
from orchestration.resources import Q2CSettings
from q2c.warehouse import ensure_ops_tables

RUN_DATE = dt.date(2026, 3, 31)

# (invoice id, issue date, total); a total of None does not parse, so the invoice cannot
# be printed. Invoice 203 gets a quality hold below.
_INVOICES = [
    ("101", "2026-03-02", "119.00"),
    ("102", "2026-03-02", "119.00"),
    ("201", "2026-03-03", "119.00"),
    ("202", "2026-03-03", "119.00"),
    ("203", "2026-03-03", "119.00"),
    ("204", "2026-03-03", None),
    ("301", "2026-03-04", "119.00"),
]
HELD = "203"


def _build_warehouse(path: Path) -> None:
    """Core marts with one German customer and the invoices of `_INVOICES`.

    Each invoice: one line of 1 x 100.00 EUR, 19 % VAT = 19.00, total 119.00.
    """
    conn = duckdb.connect(str(path))
    conn.execute(_CONTRACT_DDL)
    ensure_ops_tables(conn)
    conn.execute("""
        insert into core.dim_accounts (account_key, account_name, country_code, language,
            locale, currency, billing_email, billing_street, billing_city,
            billing_postal_code, billing_country_code, vat_id, payment_term_days) values
        ('a1', 'Beispiel GmbH', 'DE', 'de', 'de_DE', 'EUR', 'rechnung@beispiel.example',
         'Hauptstraße 1', 'Berlin', '10115', 'DE', 'DE123456789', 14)
    """)
    for invoice_id, issued, total in _INVOICES:
        conn.execute(
            """
            insert into core.fct_invoices (invoice_id, invoice_number, account_key,
                issue_date, due_date, currency, subtotal_amount, discount_amount,
                tax_amount, total_amount, paid_amount, credited_amount, balance_amount,
                computed_balance_amount) values
            (?, ?, 'a1', ?, ?::date + 14, 'EUR', 100, 0, 19, ?, 0, 0, ?, ?)
            """,
            [invoice_id, f"INV-{invoice_id}", issued, issued, total, total, total],
        )
        conn.execute(
            "insert into core.fct_invoice_lines (invoice_id, line_index, line_type, "
            "item_name, description, quantity, unit_price, amount, currency) values "
            "(?, 1, 'item', 'Seats', 'Seats, March 2026', 1, 100, 100, 'EUR')",
            [invoice_id],
        )
        conn.execute(
            "insert into core.fct_invoice_tax_lines (invoice_id, line_index, tax_percent, "
            "taxable_amount, tax_amount, currency) values (?, 1, 19, 100, 19, 'EUR')",
            [invoice_id],
        )
    conn.execute(
        "insert into q2c_ops.quality_results (run_id, suite, success, validated_at) "
        "values ('checks-1', 'invoices', false, '2026-03-31 01:00')"
    )
    conn.execute(
        "insert into q2c_ops.invoice_holds (run_id, invoice_id, invoice_number, suite, "
        "expectation, reason, held_at) values ('checks-1', ?, ?, 'invoices', "
        "'due_date_after_issue_date', 'due date before issue date', '2026-03-31 01:00')",
        [HELD, f"INV-{HELD}"],
    )
    conn.close()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("Q2C_HOME", str(tmp_path))
    monkeypatch.setenv("Q2C_RENDER_WORKERS", "2")
    for name in ("Q2C_WAREHOUSE", "Q2C_DOCUMENTS_DIR", "Q2C_AS_OF", "Q2C_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    _build_warehouse(tmp_path / "warehouse.duckdb")
    return tmp_path


def _run(instance: dg.DagsterInstance, **kwargs) -> list[dg.AssetMaterialization]:
    resources = {"q2c": Q2CSettings(as_of=RUN_DATE.isoformat())}
    result = dg.materialize([invoice_documents], instance=instance, resources=resources,
                            **kwargs)
    assert result.success
    return result.asset_materializations_for_node("documents__invoice_pdfs")


def _materialize(home: Path, instance: dg.DagsterInstance, **kwargs) -> dict:
    """Materialize and return the metadata of the run's own (first) materialization."""
    first, *_ = _run(instance, **kwargs)
    return {name: value.value for name, value in first.metadata.items()}


def _manifest(home: Path) -> list[str]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as conn:
        rows = conn.execute(
            "select invoice_id from q2c_ops.document_manifest order by 1"
        ).fetchall()
    return [invoice_id for (invoice_id,) in rows]


def _quarantined(home: Path) -> list[str]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as conn:
        rows = conn.execute(
            "select record_id from q2c_ops.quarantine where stage = 'documents' order by 1"
        ).fetchall()
    return [invoice_id for (invoice_id,) in rows]


def _pdfs(home: Path) -> list[str]:
    return sorted(path.name.split("-")[1] for path in (home / "documents").rglob("*.pdf"))


def test_a_backfill_of_one_day_renders_only_the_invoices_issued_that_day(home):
    instance = dg.DagsterInstance.ephemeral()

    metadata = _materialize(home, instance, partition_key="2026-03-03")

    # 2026-03-03 has 201, 202, 203 and 204: 203 is held, 204 has no total.
    assert _manifest(home) == ["201", "202"]
    assert _pdfs(home) == ["201", "202"]
    assert (metadata["rendered"], metadata["held_back"], metadata["not_buildable"]) == (2, 1, 1)
    assert metadata["issue_dates"] == "2026-03-03 to 2026-03-03"
    assert _quarantined(home) == ["204"]
    assert instance.get_materialized_partitions(DOCUMENTS_KEY) == {"2026-03-03"}


def test_the_same_backfill_again_renders_nothing(home):
    instance = dg.DagsterInstance.ephemeral()
    _materialize(home, instance, partition_key="2026-03-03")
    stored = {path: path.stat().st_mtime_ns for path in (home / "documents").rglob("*.pdf")}

    metadata = _materialize(home, instance, partition_key="2026-03-03")

    assert (metadata["rendered"], metadata["unchanged_not_rendered"]) == (0, 2)
    assert _manifest(home) == ["201", "202"]
    assert {path: path.stat().st_mtime_ns
            for path in (home / "documents").rglob("*.pdf")} == stored


def test_a_backfill_of_two_days_runs_once_and_renders_both_days(home):
    instance = dg.DagsterInstance.ephemeral()
    days = {"dagster/asset_partition_range_start": "2026-03-02",
            "dagster/asset_partition_range_end": "2026-03-03"}

    metadata = _materialize(home, instance, tags=days)

    # 101 and 102 on the 2nd, 201 and 202 on the 3rd; 301 (the 4th) is outside the range.
    assert _manifest(home) == ["101", "102", "201", "202"]
    assert metadata["rendered"] == 4
    assert instance.get_materialized_partitions(DOCUMENTS_KEY) == {"2026-03-02", "2026-03-03"}


def test_the_nightly_run_without_a_partition_renders_every_day_still_due(home):
    instance = dg.DagsterInstance.ephemeral()
    _materialize(home, instance, partition_key="2026-03-03")

    run, *days = _run(instance)

    # 101, 102 (the 2nd) and 301 (the 4th) are new; 201 and 202 were rendered by the backfill.
    metadata = {name: value.value for name, value in run.metadata.items()}
    assert (run.partition, metadata["rendered"], metadata["unchanged_not_rendered"]) == (
        None, 3, 2)
    assert [(day.partition, day.metadata["rendered"].value) for day in days] == [
        ("2026-03-02", 2), ("2026-03-04", 1)]
    assert metadata["issue_dates"] == f"all up to {RUN_DATE}"
    assert _manifest(home) == ["101", "102", "201", "202", "301"]
    assert instance.get_materialized_partitions(DOCUMENTS_KEY) == {
        "2026-03-02", "2026-03-03", "2026-03-04"}
    assert _quarantined(home) == ["204"]


def test_a_backfill_keeps_the_quarantine_reasons_of_other_days(home):
    instance = dg.DagsterInstance.ephemeral()
    _materialize(home, instance)
    assert _quarantined(home) == ["204"]

    metadata = _materialize(home, instance, partition_key="2026-03-02")

    assert (metadata["rendered"], metadata["not_buildable"]) == (0, 0)
    assert _quarantined(home) == ["204"]


def test_the_nightly_schedule_asks_for_no_partition_so_a_night_renders_all_that_is_due():
    from orchestration.definitions import defs

    schedule = defs.resolve_schedule_def("nightly_quote_to_cash_schedule")
    context = dg.build_schedule_context(instance=dg.DagsterInstance.ephemeral())

    (request,) = schedule.evaluate_tick(context).run_requests

    assert request.job_name in (None, NIGHTLY_JOB_NAME)
    assert request.partition_key is None and request.partition_key_range is None
    partitions = defs.resolve_job_def(NIGHTLY_JOB_NAME).partitions_def
    assert partitions.start.date().isoformat() == DEFAULT_DOCUMENTS_START
    assert partitions.timezone == schedule.execution_timezone


def test_the_first_partition_can_be_moved_and_a_bad_date_is_named(monkeypatch):
    monkeypatch.setenv("Q2C_DOCUMENTS_START", "2024-07-01")
    assert document_partitions().get_first_partition_key() == "2024-07-01"

    monkeypatch.setenv("Q2C_DOCUMENTS_START", "1.7.2024")
    with pytest.raises(ValueError, match=r"`1\.7\.2024` \(Q2C_DOCUMENTS_START\).*YYYY-MM-DD"):
        document_partitions()
