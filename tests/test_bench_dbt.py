"""The dbt benchmark's generated raw layer: shape, row counts and money invariants.

The generator runs at 500 invoices; every check reads the raw text back and recomputes
with Decimal in Python, so nothing here trusts the generator's own SQL.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

# bench/ is a folder of scripts run with `python -m bench` from the repository, not an
# installed package, so the plain `pytest` command does not see it on its own.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.dbt_raw_layer import AS_OF, Sizes, generate  # noqa: E402
from q2c.sources.schema import DEFAULT_SOURCES, RAW_TABLES  # noqa: E402

INVOICES = 500
LINEAGE = [("_q2c_source_file", "VARCHAR"), ("_q2c_source_row", "INTEGER"),
           ("_q2c_loaded_at", "TIMESTAMP")]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bench_dbt") / "warehouse.duckdb"
    generate(path, Sizes(INVOICES))
    return path


def _rows(path: Path, table: str) -> list[dict[str, str | None]]:
    with duckdb.connect(str(path), read_only=True) as conn:
        cursor = conn.execute(f"select * from {table}")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _by(rows: list[dict], key: str) -> dict[str, dict]:
    return {row[key]: row for row in rows}


def _money(value: str | None) -> Decimal:
    return Decimal(value) if value else Decimal(0)


def test_row_counts_follow_the_invoice_count(warehouse: Path) -> None:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        counts = {
            f"{t.source}.{t.name}": conn.execute(f"select count(*) from {t.relation}")
            .fetchone()[0]
            for t in RAW_TABLES if t.source in DEFAULT_SOURCES
        }

    # 500 invoices: 50 accounts and customers (one in ten), 3 contacts each, 3 users (the
    # minimum), 125 opportunities (one in four) with 3 lines each, 25 cases (one in
    # twenty), five lines and one tax line per invoice, 375 payments (three in four).
    assert {k: v for k, v in counts.items() if k not in (
        "quickbooks.payment_line", "quickbooks.credit_memo")} == {
        "salesforce.account": 50, "salesforce.contact": 150, "salesforce.user": 3,
        "salesforce.opportunity": 125, "salesforce.opportunity_line_item": 375,
        "salesforce.case": 25, "quickbooks.customer": 50, "quickbooks.address": 50,
        "quickbooks.item": 40, "quickbooks.term": 4, "quickbooks.invoice": 500,
        "quickbooks.invoice_line": 2500, "quickbooks.invoice_tax_line": 500,
        "quickbooks.payment": 375,
    }
    assert counts["quickbooks.credit_memo"] > 0


def test_raw_tables_have_the_catalog_columns_as_text_then_lineage(warehouse: Path) -> None:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        for table in RAW_TABLES:
            columns = conn.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = ? and table_name = ? order by ordinal_position",
                [table.schema, table.name],
            ).fetchall()

            assert columns == [(c, "VARCHAR") for c in table.columns] + LINEAGE, table.name


def test_lineage_numbers_rows_from_line_two_of_the_named_file(warehouse: Path) -> None:
    rows = _rows(warehouse, 'raw_quickbooks."invoice"')

    assert sorted(r["_q2c_source_row"] for r in rows) == list(range(2, INVOICES + 2))
    assert {r["_q2c_source_file"] for r in rows} == {"bench_dbt/quickbooks/invoice.csv"}


def test_invoice_total_is_sales_lines_less_discount_plus_tax(warehouse: Path) -> None:
    invoices = _rows(warehouse, 'raw_quickbooks."invoice"')
    sales: dict[str, Decimal] = defaultdict(Decimal)
    discounts: dict[str, Decimal] = defaultdict(Decimal)
    for line in _rows(warehouse, 'raw_quickbooks."invoice_line"'):
        if line["detail_type"] == "SalesItemLineDetail":
            assert _money(line["amount"]) == (
                Decimal(line["sales_item_quantity"]) * _money(line["sales_item_unit_price"]))
            sales[line["invoice_id"]] += _money(line["amount"])
        elif line["detail_type"] == "DiscountLineDetail":
            discounts[line["invoice_id"]] += _money(line["amount"])
    taxes = _by(_rows(warehouse, 'raw_quickbooks."invoice_tax_line"'), "invoice_id")

    for invoice in invoices:
        number = invoice["id"]
        tax = _money(taxes[number]["amount"])
        assert tax == _money(invoice["total_tax"]), number
        assert sales[number] - discounts[number] + tax == _money(invoice["total_amount"])
    assert any(discounts.values())


def test_every_line_points_at_an_existing_invoice(warehouse: Path) -> None:
    invoice_ids = {r["id"] for r in _rows(warehouse, 'raw_quickbooks."invoice"')}
    memos = {r["id"] for r in _rows(warehouse, 'raw_quickbooks."credit_memo"')}
    payments = {r["id"] for r in _rows(warehouse, 'raw_quickbooks."payment"')}

    for table in ("invoice_line", "invoice_tax_line"):
        assert {r["invoice_id"] for r in _rows(warehouse, f'raw_quickbooks."{table}"')} \
            == invoice_ids
    for line in _rows(warehouse, 'raw_quickbooks."payment_line"'):
        assert line["payment_id"] in payments
        assert (line["invoice_id"] is None) != (line["credit_memo_id"] is None)
        assert line["invoice_id"] in invoice_ids or line["credit_memo_id"] in memos


def test_payment_lines_never_exceed_the_payment(warehouse: Path) -> None:
    payments = _rows(warehouse, 'raw_quickbooks."payment"')
    memos = _by(_rows(warehouse, 'raw_quickbooks."credit_memo"'), "id")
    applied: dict[str, Decimal] = defaultdict(Decimal)
    credited: dict[str, Decimal] = defaultdict(Decimal)
    invoices_paid: dict[str, int] = defaultdict(int)
    for line in _rows(warehouse, 'raw_quickbooks."payment_line"'):
        if line["invoice_id"]:
            applied[line["payment_id"]] += _money(line["amount"])
            invoices_paid[line["payment_id"]] += 1
        else:
            credited[line["payment_id"]] += _money(line["amount"])
            assert _money(line["amount"]) == _money(memos[line["credit_memo_id"]]
                                                    ["total_amount"])

    for payment in payments:
        number, total = payment["id"], _money(payment["total_amount"])
        if number in credited:  # a credit memo applied: total 0, memo covers the invoice
            assert total == 0 and applied[number] == credited[number] > 0, number
        else:
            paid = applied.get(number, Decimal(0))
            assert paid + _money(payment["unapplied_amount"]) == total, number
            assert paid <= total
    kinds = {
        "several invoices": any(n > 1 for n in invoices_paid.values()),
        "unapplied only": any(p["id"] not in applied and p["id"] not in credited
                              for p in payments),
        "overpaid": any(p["id"] in applied and _money(p["unapplied_amount"]) > 0
                        for p in payments),
        "credit memo": bool(credited),
    }
    assert kinds == dict.fromkeys(kinds, True)


def test_invoice_balance_is_total_less_allocations(warehouse: Path) -> None:
    invoices = _rows(warehouse, 'raw_quickbooks."invoice"')
    allocated: dict[str, Decimal] = defaultdict(Decimal)
    for line in _rows(warehouse, 'raw_quickbooks."payment_line"'):
        if line["invoice_id"]:
            allocated[line["invoice_id"]] += _money(line["amount"])
    open_by_customer: dict[str, Decimal] = defaultdict(Decimal)

    for invoice in invoices:
        total, balance = _money(invoice["total_amount"]), _money(invoice["balance"])
        assert balance == total - allocated[invoice["id"]] >= 0, invoice["id"]
        if invoice["_fivetran_deleted"] != "true":
            open_by_customer[invoice["customer_id"]] += balance
    partial = [i for i in invoices
               if 0 < _money(i["balance"]) < _money(i["total_amount"])]

    assert partial
    for customer in _rows(warehouse, 'raw_quickbooks."customer"'):
        assert _money(customer["balance"]) == open_by_customer[customer["id"]]


def test_dates_and_currencies_are_plausible(warehouse: Path) -> None:
    invoices = _by(_rows(warehouse, 'raw_quickbooks."invoice"'), "id")
    terms = _by(_rows(warehouse, 'raw_quickbooks."term"'), "id")
    payments = _by(_rows(warehouse, 'raw_quickbooks."payment"'), "id")
    decimals = {"JPY": 0, "EUR": 2, "USD": 2, "KWD": 3}

    for invoice in invoices.values():
        issued = dt.date.fromisoformat(invoice["transaction_date"])
        due = dt.date.fromisoformat(invoice["due_date"])
        assert issued <= AS_OF
        assert (due - issued).days == int(terms[invoice["sales_term_id"]]["due_days"])
        places = decimals.get(invoice["currency_id"])
        if places is not None:
            assert -_money(invoice["total_amount"]).as_tuple().exponent == places
    for line in _rows(warehouse, 'raw_quickbooks."payment_line"'):
        if line["invoice_id"]:
            payment, invoice = payments[line["payment_id"]], invoices[line["invoice_id"]]
            assert invoice["transaction_date"] <= payment["transaction_date"] \
                <= AS_OF.isoformat()
            assert payment["currency_id"] == invoice["currency_id"]
            assert payment["customer_id"] == invoice["customer_id"]
    assert {"JPY", "KWD"} <= {i["currency_id"] for i in invoices.values()}


def test_the_same_size_generates_the_same_rows(warehouse: Path, tmp_path: Path) -> None:
    again = tmp_path / "warehouse.duckdb"
    generate(again, Sizes(INVOICES))

    for table in ('raw_quickbooks."payment_line"', 'raw_salesforce."account"'):
        assert _rows(again, table) == _rows(warehouse, table)
