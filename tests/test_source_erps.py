"""NetSuite, Dynamics 365 Finance and Sage Intacct, from landed files to the conformed erp_*
adapters, built for real.

The fixture rows of tests/erp_fixtures.py are written as CSV exports, landed with
`load_source` into a temporary DuckDB (as ingest does) and built with one `dbt build` of the
three sources' staging and adapter models and the ERP union models (int_erp_*), with only
these three sources on. Every expected value below is worked out by hand from the
fixture rows; the comments in erp_fixtures.py give the arithmetic.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from erp_fixtures import write_landing
from postgres_server import running_postgres

from q2c.sources.landing import load_source
from q2c.warehouse import connect
from q2c.warehouse_postgres import push_to_postgres

REPO = Path(__file__).resolve().parents[1]
DBT_PROJECT = REPO / "dbt_project"
DBT = Path(sys.executable).parent / "dbt"
SOURCES = ("netsuite", "dynamics365", "sage_intacct")
ENTITIES = ("erp_customers", "erp_invoices", "erp_invoice_lines", "erp_invoice_tax_lines",
            "erp_credit_notes", "erp_payments", "erp_payment_allocations")
UNION_MODELS = ("int_erp_invoices_all", *(f"int_{entity}" for entity in ENTITIES))

# Only these three sources are on, so the union models hold their rows alone. Tests run
# only where all their parents are built (`cautious`), so no other source's test runs.
VARIABLES = json.dumps({**{f"q2c_{source}_enabled": True for source in SOURCES},
                        "q2c_salesforce_enabled": False, "q2c_quickbooks_enabled": False})
SELECTION = (*(f"+intermediate.{source}" for source in SOURCES), "iso_currencies",
             *UNION_MODELS)


def _dbt(tmp: Path, warehouse: Path, *args: str,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = os.environ | (env or {}) | {"Q2C_WAREHOUSE": str(warehouse),
                                      "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"}
    command = [str(DBT), *args, "--project-dir", str(DBT_PROJECT),
               "--profiles-dir", str(DBT_PROJECT), "--target-path", str(tmp / "target"),
               "--log-path", str(tmp / "logs")]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Land the three sources, run one `dbt build`, and return the warehouse and results."""
    tmp = tmp_path_factory.mktemp("erps")
    landing = tmp / "landing"
    warehouse = tmp / "warehouse.duckdb"
    with connect(warehouse) as conn:
        for source in SOURCES:
            write_landing(landing, source)
            load_source(conn, landing, source, "run-erps")

    result = _dbt(tmp, warehouse, "build", "--indirect-selection", "cautious",
                  "--select", *SELECTION, "--vars", VARIABLES)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    run_results = json.loads((tmp / "target" / "run_results.json").read_text())
    return {"warehouse": warehouse, "run_results": run_results}


def _rows(built: dict, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(built["warehouse"]), read_only=True) as conn:
        return conn.execute(sql, params or []).fetchall()


def _by_id(built: dict, relation: str, key: str, columns: str) -> dict:
    rows = _rows(built, f"select {key}, {columns} from intermediate.{relation}")
    return {row[0]: row[1:] for row in rows}


def D(value: str) -> Decimal:  # noqa: N802
    return Decimal(value)


# ---------------------------------------------------------------------------------------
# NetSuite
# ---------------------------------------------------------------------------------------
def test_netsuite_invoices_carry_totals_tax_balance_and_iso_currency(built):
    invoices = _by_id(
        built, "int_netsuite__erp_invoices", "invoice_id",
        "invoice_number, customer_id, currency_code, total_amount, tax_amount, "
        "balance_amount, home_total_amount, exchange_rate, issue_date, due_date, po_number, "
        "order_id",
    )

    assert set(invoices) == {"1001", "1002", "1003", "1005"}
    assert invoices["1001"] == (
        "INV-1001", "101", "EUR", D("1190.00"), D("190.00"), D("0.00"), D("1291.15"),
        D("1.085"), dt.date(2024, 3, 1), dt.date(2024, 3, 31), "PO-77", None,
    )
    assert invoices["1002"][3:6] == (D("500.00"), D("0"), D("300.00"))
    assert invoices["1003"][2:6] == ("JPY", D("110000"), D("10000"), D("0"))


def test_netsuite_invoice_lines_are_document_amounts_with_line_types(built):
    lines = _rows(
        built,
        "select line_index, line_type, item_id, quantity, unit_price, amount "
        "from intermediate.int_netsuite__erp_invoice_lines where invoice_id = '1001' "
        "order by line_index",
    )

    assert lines == [
        (1, "item", "11", D("10"), D("80"), D("800.00")),
        (2, "item", "12", D("4"), D("75"), D("300.00")),
        (3, "discount", "13", None, D("-100"), D("-100.00")),
        (4, "subtotal", "14", None, None, D("1100.00")),
    ]
    items = sum(amount for _, kind, *_, amount in lines if kind in ("item", "discount"))
    tax = _rows(built, "select line_index, tax_rate_id, tax_percent, tax_amount "
                       "from intermediate.int_netsuite__erp_invoice_tax_lines "
                       "where invoice_id = '1001'")
    assert tax == [(5, "9001", D("19"), D("190.00"))]
    assert items + tax[0][3] == D("1190.00")


def test_netsuite_credit_memo_and_payments_allocate_as_applied(built):
    credit = _by_id(built, "int_netsuite__erp_credit_notes", "credit_note_id",
                    "credit_note_number, invoice_id, total_amount, tax_amount, "
                    "remaining_credit_amount, reason")
    payments = _by_id(built, "int_netsuite__erp_payments", "payment_id",
                      "currency_code, total_amount, unapplied_amount, reference_number, "
                      "payment_date")
    allocations = _rows(
        built,
        "select payment_id, line_index, invoice_id, invoice_number, credit_note_id, "
        "allocation_kind, amount, allocation_date "
        "from intermediate.int_netsuite__erp_payment_allocations order by payment_id, "
        "line_index",
    )

    assert credit == {"2001": ("CM-2001", "1001", D("238.00"), D("38.00"), D("0.00"),
                               "Damaged goods")}
    assert payments == {
        "3001": ("EUR", D("1152.00"), D("0.00"), "CHK-5521", dt.date(2024, 3, 20)),
        "3002": ("JPY", D("120000"), D("10000"), None, dt.date(2024, 4, 2)),
    }
    assert allocations == [
        ("2001", 1, "1001", "INV-1001", "2001", "credit_note", D("238.00"),
         dt.date(2024, 3, 15)),
        ("3001", 1, "1001", "INV-1001", None, "payment", D("952.00"), dt.date(2024, 3, 20)),
        ("3001", 2, "1002", "INV-1002", None, "payment", D("200.00"), dt.date(2024, 3, 20)),
        ("3002", 1, "1003", "INV-1003", None, "payment", D("110000"), dt.date(2024, 4, 2)),
    ]


def test_netsuite_customers_resolve_address_term_and_currency(built):
    customers = _by_id(built, "int_netsuite__erp_customers", "customer_id",
                       "display_name, email, tax_id, currency_code, billing_street, "
                       "billing_city, billing_country, payment_term_days, "
                       "preferred_delivery_method, is_active")

    assert customers == {
        "101": ("Nordwind GmbH", "ap@nordwind.de", "DE811111111", "EUR", "Hauptstraße 5",
                "Berlin", "DE", 30, "email", True),
        "102": ("Sakura Trading KK", "keiri@sakura.example", None, "JPY", None, None, None,
                None, "print", True),
    }


def test_netsuite_unreadable_amounts_are_reported_not_dropped(built):
    line = _rows(
        built,
        "select amount, unparsed_fields, _q2c_source_file, _q2c_source_row "
        "from staging.stg_netsuite__transaction_lines "
        "where transaction_id = '1005' and transaction_line_id = '1'",
    )
    adapter = _rows(built, "select amount from intermediate.int_netsuite__erp_invoice_lines "
                           "where invoice_id = '1005'")
    quarantined = _rows(
        built,
        "select file, row_number, record_id, reason from q2c_ops.quarantine "
        "where source = 'netsuite' and table_name = 'transaction'",
    )

    assert len(line) == 1
    amount, fields, source_file, source_row = line[0]
    assert (amount, fields) == (None, "foreignamount")
    assert source_file.endswith("netsuite/transactionline.csv")
    assert source_row == 15  # the 14th fixture line, after the header
    assert adapter == [(None,)]
    assert len(quarantined) == 1
    file, row_number, record_id, reason = quarantined[0]
    assert file.endswith("netsuite/transaction.csv")
    assert (row_number, record_id) == (10, "1006")
    assert "fields but the header has" in reason
    assert not _rows(built, "select 1 from intermediate.int_netsuite__erp_invoices "
                            "where invoice_id in ('1004', '1006')")


# ---------------------------------------------------------------------------------------
# Dynamics 365 Finance
# ---------------------------------------------------------------------------------------
def test_dynamics_invoices_with_due_dates_from_settlement_or_terms(built):
    invoices = _by_id(
        built, "int_dynamics365__erp_invoices", "invoice_id",
        "invoice_number, customer_id, currency_code, total_amount, tax_amount, "
        "balance_amount, issue_date, due_date, order_id, po_number",
    )

    assert set(invoices) == {"demf:CIV-0001", "demf:CIV-0002", "demf:CIV-0003",
                             "demf:CIV-0005"}
    assert invoices["demf:CIV-0001"] == (
        "CIV-0001", "demf:DE-001", "EUR", D("1785.00"), D("285.00"), D("0.00"),
        dt.date(2024, 3, 5), dt.date(2024, 4, 4), "SO-0042", "PO-9001",
    )
    # The settlement says 1900-01-01 (no date): Net30 from 2024-03-08.
    assert invoices["demf:CIV-0002"][3:8] == (
        D("595.00"), D("95.00"), D("295.00"), dt.date(2024, 3, 8), dt.date(2024, 4, 7),
    )
    # KWD keeps its three decimals; CurrentMonth + 15 days from 2024-03-10.
    assert invoices["demf:CIV-0003"][2:8] == (
        "KWD", D("425.875"), D("0.000"), D("0.000"), dt.date(2024, 3, 10),
        dt.date(2024, 4, 15),
    )


def test_dynamics_lines_and_tax_per_line(built):
    lines = _rows(
        built,
        "select invoice_id, line_index, line_type, item_id, quantity, unit_price, amount "
        "from intermediate.int_dynamics365__erp_invoice_lines order by invoice_id, line_index",
    )
    tax = _rows(
        built,
        "select invoice_id, line_index, taxable_amount, tax_amount "
        "from intermediate.int_dynamics365__erp_invoice_tax_lines "
        "order by invoice_id, line_index",
    )

    assert lines == [
        ("demf:CIV-0001", 1, "item", "M-100", D("10"), D("120"), D("1200.00")),
        ("demf:CIV-0001", 2, "item", "S-200", D("2"), D("150"), D("300.00")),
        ("demf:CIV-0002", 1, "item", "S-200", D("1"), D("500"), D("500.00")),
        ("demf:CIV-0003", 1, "item", "M-100", D("3"), D("125.25"), D("375.750")),
        ("demf:CIV-0003", 2, "item", "F-001", D("1"), D("50.125"), D("50.125")),
    ]
    assert tax == [
        ("demf:CIV-0001", 1, D("1200.00"), D("228.00")),
        ("demf:CIV-0001", 2, D("300.00"), D("57.00")),
        ("demf:CIV-0002", 1, D("500.00"), D("95.00")),
    ]
    assert sum(row[6] for row in lines[:2]) + sum(row[3] for row in tax[:2]) == D("1785.00")


def test_dynamics_settlements_credit_note_and_overpayment(built):
    payments = _by_id(built, "int_dynamics365__erp_payments", "payment_id",
                      "customer_id, currency_code, exchange_rate, total_amount, "
                      "unapplied_amount, payment_method, payment_date")
    allocations = _rows(
        built,
        "select payment_id, line_index, invoice_id, credit_note_id, allocation_kind, amount "
        "from intermediate.int_dynamics365__erp_payment_allocations "
        "order by payment_id, line_index",
    )
    credit = _by_id(built, "int_dynamics365__erp_credit_notes", "credit_note_id",
                    "credit_note_number, invoice_id, total_amount, tax_amount, "
                    "remaining_credit_amount, issue_date")

    assert payments == {
        "demf:ARP-0001": ("demf:DE-001", "EUR", D("1"), D("1966.00"), D("0.00"), "SEPA",
                          dt.date(2024, 3, 28)),
        "demf:ARP-0002": ("demf:DE-001", "EUR", D("1"), D("0"), D("0"), None,
                          dt.date(2024, 3, 29)),
        "demf:ARP-0003": ("demf:KW-001", "KWD", D("2.975"), D("450.000"), D("24.125"),
                          "WIRE", dt.date(2024, 4, 2)),
    }
    assert allocations == [
        ("demf:ARP-0001", 1, "demf:CIV-0001", None, "payment", D("1666.00")),
        ("demf:ARP-0001", 2, "demf:CIV-0002", None, "payment", D("300.00")),
        ("demf:ARP-0002", 1, "demf:CIV-0001", "demf:CCN-0001", "credit_note", D("119.00")),
        ("demf:ARP-0003", 1, "demf:CIV-0003", None, "payment", D("425.875")),
    ]
    assert credit == {"demf:CCN-0001": ("CCN-0001", "demf:CIV-0001", D("119.00"),
                                        D("19.00"), D("0.00"), dt.date(2024, 3, 12))}


def test_dynamics_customers_hierarchy_terms_and_hold(built):
    customers = _by_id(built, "int_dynamics365__erp_customers", "customer_id",
                       "parent_customer_id, display_name, email, tax_id, currency_code, "
                       "billing_city, billing_country, payment_term_days, is_active")

    assert customers == {
        "demf:DE-001": (None, "Kranich Maschinenbau AG", "rechnung@kranich.example",
                        "DE123456789", "EUR", "Stuttgart", "DE", 30, True),
        "demf:DE-002": ("demf:DE-001", "Kranich Service GmbH", None, None, "EUR", None,
                        None, 30, False),
        "demf:KW-001": (None, "Gulf Trading Co", None, None, "KWD", "Kuwait City", "KW",
                        None, True),
    }


def test_dynamics_unreadable_total_is_flagged_and_kept(built):
    staged = _rows(
        built,
        "select total_amount, unparsed_fields, _q2c_source_file, _q2c_source_row "
        "from staging.stg_dynamics365__invoice_headers where invoice_number = 'CIV-0005'",
    )
    adapter = _rows(built, "select total_amount, balance_amount "
                           "from intermediate.int_dynamics365__erp_invoices "
                           "where invoice_id = 'demf:CIV-0005'")
    warned = {r["unique_id"].split(".")[2]: (r["status"], r["failures"])
              for r in built["run_results"]["results"]
              if r["unique_id"].startswith("test.")}

    assert staged[0][:2] == (None, "totalinvoiceamount")
    assert staged[0][2].endswith("dynamics365/salesinvoiceheaderv2entity.csv")
    assert staged[0][3] == 7
    assert adapter == [(None, None)]
    assert warned["not_null_stg_dynamics365__invoice_headers_total_amount"] == ("warn", 1)
    assert not _rows(built, "select 1 from intermediate.int_dynamics365__erp_invoices "
                            "where invoice_number = 'CIV-0004'")


# ---------------------------------------------------------------------------------------
# Sage Intacct
# ---------------------------------------------------------------------------------------
def test_sage_invoices_in_document_currency_without_drafts(built):
    invoices = _by_id(
        built, "int_sage_intacct__erp_invoices", "invoice_id",
        "invoice_number, customer_id, currency_code, total_amount, tax_amount, "
        "balance_amount, home_total_amount, exchange_rate, issue_date, due_date, po_number",
    )

    assert set(invoices) == {"9001", "9002", "9003", "9006"}
    assert invoices["9001"] == (
        "INV-5001", "C-100", "USD", D("1081.25"), D("81.25"), D("0"), D("1081.25"), None,
        dt.date(2024, 2, 1), dt.date(2024, 3, 2), "PO-314",
    )
    assert invoices["9002"][3:6] == (D("400.00"), D("0"), D("150.00"))
    assert invoices["9003"][2:10] == (
        "JPY", D("330000"), D("30000"), D("0"), D("2211.00"), D("0.0067"),
        dt.date(2024, 2, 10), dt.date(2024, 3, 11),
    )


def test_sage_lines_split_entered_lines_from_tax(built):
    lines = _rows(
        built,
        "select invoice_id, line_index, line_type, item_id, amount "
        "from intermediate.int_sage_intacct__erp_invoice_lines order by invoice_id, line_index",
    )
    tax = _rows(
        built,
        "select invoice_id, line_index, tax_rate_id, tax_amount "
        "from intermediate.int_sage_intacct__erp_invoice_tax_lines order by invoice_id",
    )

    assert lines == [
        ("9001", 1, "item", "SVC-1", D("600.00")),
        ("9001", 2, "item", "LIC-1", D("400.00")),
        ("9002", 1, "item", "SVC-1", D("400.00")),
        ("9003", 1, "item", "PRT-9", D("300000")),
    ]
    assert tax == [("9001", 3, "2200", D("81.25")), ("9003", 2, "2210", D("30000"))]


def test_sage_payments_credits_and_unapplied_cash(built):
    payments = _by_id(built, "int_sage_intacct__erp_payments", "payment_id",
                      "currency_code, total_amount, unapplied_amount, payment_method, "
                      "reference_number, payment_date")
    allocations = _rows(
        built,
        "select payment_id, line_index, invoice_id, invoice_number, credit_note_id, "
        "allocation_kind, amount, allocation_date "
        "from intermediate.int_sage_intacct__erp_payment_allocations "
        "order by payment_id, line_index",
    )
    credit = _by_id(built, "int_sage_intacct__erp_credit_notes", "credit_note_id",
                    "credit_note_number, invoice_id, total_amount, remaining_credit_amount, "
                    "reason")

    assert payments == {
        "8001": ("USD", D("1081.25"), D("0"), "Printed Check", "CHK 1042",
                 dt.date(2024, 2, 26)),
        "8002": ("USD", D("0"), D("0"), "Credit Memo", None, dt.date(2024, 2, 21)),
        "8003": ("JPY", D("350000"), D("20000"), "EFT", None, dt.date(2024, 3, 1)),
    }
    assert allocations == [
        ("8001", 1, "9001", "INV-5001", None, "payment", D("831.25"), dt.date(2024, 2, 26)),
        ("8001", 2, "9002", "INV-5002", None, "payment", D("250.00"), dt.date(2024, 2, 26)),
        ("8002", 1, "9001", "INV-5001", "7001", "credit_note", D("250.00"),
         dt.date(2024, 2, 21)),
        ("8003", 1, "9003", "INV-5003", None, "payment", D("330000"), dt.date(2024, 3, 1)),
    ]
    assert credit == {"7001": ("CM-7001", "9001", D("250.00"), D("0.00"), "Service credit")}


def test_sage_customers_contact_address_and_delivery(built):
    customers = _by_id(built, "int_sage_intacct__erp_customers", "customer_id",
                       "display_name, company_name, contact_name, email, billing_street, "
                       "billing_city, billing_region, billing_country, "
                       "preferred_delivery_method, balance_amount, is_active")

    assert customers == {
        "C-100": ("Harbor Freight Partners", "Harbor Freight Partners LLC", "Dana Reyes",
                  "ar@harborfreight.example", "400 Pier Ave, Suite 9", "Oakland", "CA",
                  "US", "email", D("150.00"), True),
        "C-200": ("Osaka Components", None, None, None, None, None, None, None, "print",
                  None, True),
    }


def test_sage_unreadable_total_is_flagged_and_kept(built):
    staged = _rows(
        built,
        "select total_amount, unparsed_fields, _q2c_source_file, _q2c_source_row "
        "from staging.stg_sage_intacct__ar_invoices where invoice_id = '9006'",
    )
    adapter = _rows(built, "select total_amount from intermediate.int_sage_intacct__erp_invoices "
                           "where invoice_id = '9006'")

    assert staged[0][:2] == (None, "totalentered, totaldue")
    assert staged[0][2].endswith("sage_intacct/ar_invoice.csv")
    assert staged[0][3] == 7
    assert adapter == [(None,)]


# ---------------------------------------------------------------------------------------
# All three through the coordinator's union models
# ---------------------------------------------------------------------------------------
def test_every_adapter_row_reaches_its_union_with_its_source_system(built):
    for entity in ENTITIES:
        union = f"intermediate.int_{entity}"
        counts = dict(_rows(built, f"select source_system, count(*) from {union} group by 1"))
        expected = {
            source: _rows(built, f"select count(*) from intermediate.int_{source}__{entity}")
            for source in SOURCES
        }
        assert counts == {source: rows[0][0] for source, rows in expected.items()}, entity
    totals = dict(_rows(built, "select source_system, sum(total_amount) "
                               "from intermediate.int_erp_invoices group by source_system"))
    assert totals == {"netsuite": D("1190") + D("500") + D("110000") + D("1234.50"),
                      "dynamics365": D("1785") + D("595") + D("425.875"),
                      "sage_intacct": D("1081.25") + D("400") + D("330000")}


def test_postgres_builds_the_same_conformed_rows(built, tmp_path):
    with running_postgres() as server:
        server.create_database("q2c_erps")
        pg = server.connect("q2c_erps")
        try:
            push_to_postgres(built["warehouse"], pg)
        finally:
            pg.close()
        result = _dbt(tmp_path, built["warehouse"], "build", "--target", "postgres",
                      "--indirect-selection", "cautious", "--select", *SELECTION,
                      "--vars", VARIABLES, env=server.environment("q2c_erps"))
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
        pg = server.connect("q2c_erps")
        try:
            for entity in ENTITIES:
                sql = f"select * from intermediate.int_{entity}"
                with pg.cursor() as cur:
                    cur.execute(sql)
                    on_postgres = sorted(cur.fetchall(), key=repr)
                on_duckdb = sorted(_rows(built, sql), key=repr)
                assert on_duckdb, entity
                assert on_postgres == on_duckdb, entity
        finally:
            pg.close()
