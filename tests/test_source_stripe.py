"""Stripe from landed Fivetran tables to the conformed adapters and the gateway marts.

The shared Fivetran Stripe seeds, with hand-made rows (ids starting `fx_`) appended, are
written to a landing folder, landed by `load_source` into a temporary DuckDB warehouse and
built with a real `dbt build` (Stripe enabled). QuickBooks and Salesforce land their shared
seeds too, because the union models read every enabled source. The fixture rows pin the
unit conversion (JPY 0, USD 2, KWD 3 decimals), allocations, fees and payouts to values
worked out by hand in the comments below.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from postgres_server import running_postgres

from q2c.sources.landing import load_source
from q2c.sources.schema import tables_of
from q2c.warehouse import connect
from q2c.warehouse_postgres import push_to_postgres

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SHARED_STRIPE = SHARED_DATA / "fivetran-stripe"
DBT_PROJECT = REPO / "dbt_project"
DBT = Path(sys.executable).parent / "dbt"

LIVE = {"livemode": "true"}
# Customers: fx_cus_gone is deleted and fx_cus_test is a test-mode customer; both stay out.
CUSTOMERS = [
    {"id": "fx_cus_us", "name": "Acme Corp", "email": "AP@Acme.example", "currency": "usd",
     "address_line_1": "1 Main St", "address_line_2": "Suite 5", "address_city": "Springfield",
     "address_postal_code": "12345", "address_state": "IL", "address_country": "us",
     "tax_info_tax_id": "US-99", "balance": "-2500", "is_deleted": "false", **LIVE},
    {"id": "fx_cus_jp", "name": "Kabushiki KK", "currency": "jpy", "balance": "300",
     "is_deleted": "false", **LIVE},
    {"id": "fx_cus_kw", "name": "Gulf Trading", "currency": "kwd", "balance": "12345",
     "is_deleted": "false", **LIVE},
    {"id": "fx_cus_gone", "name": "Gone Ltd", "currency": "usd", "is_deleted": "true", **LIVE},
    {"id": "fx_cus_test", "name": "Test Co", "currency": "usd", "is_deleted": "false",
     "livemode": "false"},
]


def _invoice(invoice_id, number, customer, currency, status, subtotal, tax, total, remaining,
             **extra):
    return {"id": invoice_id, "number": number, "customer_id": customer, "currency": currency,
            "status": status, "subtotal": subtotal, "tax": tax, "total": total,
            "amount_remaining": remaining, "is_deleted": "false", **LIVE, **extra}


# Only open, paid and uncollectible invoices are of record: the draft, the void, the deleted
# and the test-mode invoice stay out.
INVOICES = [
    _invoice("fx_in_us1", "FXS-0001", "fx_cus_us", "usd", "paid", "1700", "299", "1999", "0",
             created="2024-02-01 10:00:00", status_transitions_finalized_at="2024-02-01 11:00:00",
             status_transitions_paid_at="2024-02-03 09:00:00", due_date="2024-03-02 11:00:00"),
    _invoice("fx_in_us2", "FXS-0003", "fx_cus_us", "usd", "paid", "3000", "0", "3000", "0",
             created="2024-02-05 10:00:00"),
    _invoice("fx_in_jp1", "FXS-0002", "fx_cus_jp", "jpy", "paid", "5000", "", "5000", "0",
             created="2024-02-04 00:30:00"),
    _invoice("fx_in_kw1", "FXS-0004", "fx_cus_kw", "kwd", "open", "12345", "0", "12345",
             "12345", tax_percent="0", created="2024-02-07 10:00:00"),
    _invoice("fx_in_unc", "FXS-0005", "fx_cus_us", "usd", "uncollectible", "800", "", "800",
             "800", created="2024-01-05 10:00:00"),
    _invoice("fx_in_draft", "", "fx_cus_us", "usd", "draft", "100", "", "100", "100"),
    _invoice("fx_in_void", "FXS-0006", "fx_cus_us", "usd", "void", "100", "", "100", "0"),
    _invoice("fx_in_del", "FXS-0007", "fx_cus_us", "usd", "paid", "100", "", "100", "0",
             is_deleted="true"),
    _invoice("fx_in_test", "FXS-0008", "fx_cus_us", "usd", "paid", "100", "", "100", "0",
             livemode="false"),
]
# (id, invoice, amount, quantity, unit amount excluding tax, price); all minor units.
INVOICE_LINES = [
    ("fx_il_1", "fx_in_us1", "1000", "2", "500", "price_a"),
    ("fx_il_2", "fx_in_us1", "700", "1", "700", "price_b"),
    ("fx_il_kw", "fx_in_kw1", "12345", "3", "4115", "price_kw"),
    ("fx_il_jp", "fx_in_jp1", "5000", "4", "1250", "price_jp"),
    ("fx_il_void", "fx_in_void", "100", "1", "100", "price_a"),
]


def _charge(charge_id, currency, amount, created, **extra):
    return {"id": charge_id, "currency": currency, "amount": amount, "created": created,
            "status": "succeeded", "paid": "true", "captured": "true", "customer_id":
            "fx_cus_us", **LIVE, **extra}


# fx_ch_jp is a portal payment by its payment intent's metadata; fx_ch_portal by its own
# metadata (paying ERP invoice FX-1009); fx_ch_desc by its description. fx_ch_failed failed,
# fx_ch_auth was never captured and fx_ch_test is test mode: none of the three is a payment.
CHARGES = [
    _charge("fx_ch_us", "usd", "1999", "2024-02-03 09:00:00", invoice_id="fx_in_us1",
            payment_intent_id="fx_pi_us", balance_transaction_id="fx_txn_ch_us",
            card_id="card_1", receipt_number="1111-2222", amount_refunded="500",
            metadata='{"external_id":"abc"}'),
    _charge("fx_ch_jp", "jpy", "5000", "2024-02-04 01:00:00", customer_id="fx_cus_jp",
            invoice_id="fx_in_jp1", payment_intent_id="fx_pi_jp",
            balance_transaction_id="fx_txn_ch_jp", card_id="card_2"),
    _charge("fx_ch_portal", "usd", "25000", "2024-02-06 12:00:00",
            balance_transaction_id="fx_txn_ch_portal", card_id="card_1",
            metadata='{"q2c_channel":"portal","q2c_invoice_number":"FX-1009"}'),
    _charge("fx_ch_desc", "usd", "1000", "2024-02-08 12:00:00",
            description="Q2C portal checkout"),
    _charge("fx_ch_dis", "usd", "3000", "2024-02-05 12:00:00", invoice_id="fx_in_us2",
            balance_transaction_id="fx_txn_ch_dis", card_id="card_1"),
    _charge("fx_ch_eur", "eur", "1000", "2024-02-09 12:00:00",
            balance_transaction_id="fx_txn_ch_eur", card_id="card_1"),
    _charge("fx_ch_failed", "usd", "4000", "2024-02-02 12:00:00", status="failed",
            paid="false", captured="false", invoice_id="fx_in_unc"),
    _charge("fx_ch_auth", "usd", "700", "2024-02-02 13:00:00", captured="false"),
    _charge("fx_ch_test", "usd", "900", "2024-02-02 14:00:00", livemode="false"),
]
PAYMENT_INTENTS = [
    {"id": "fx_pi_jp", "currency": "jpy", "amount": "5000", "status": "succeeded",
     "metadata": '{"q2c_channel": "Portal"}', **LIVE},
    {"id": "fx_pi_us", "currency": "usd", "amount": "1999", "status": "succeeded",
     "description": "Invoice FXS-0001", "metadata": "{}", **LIVE},
]
REFUNDS = [
    {"id": "fx_re_1", "charge_id": "fx_ch_us", "balance_transaction_id": "fx_txn_re_1",
     "currency": "usd", "amount": "500", "status": "succeeded",
     "created": "2024-02-10 08:00:00", "_fivetran_synced": "2024-02-11 00:00:00"},
    {"id": "fx_re_failed", "charge_id": "fx_ch_us", "currency": "usd", "amount": "300",
     "status": "failed", "created": "2024-02-10 09:00:00"},
]
DISPUTES = [
    {"id": "fx_du_lost", "charge_id": "fx_ch_dis", "balance_transaction": "fx_txn_du",
     "currency": "usd", "amount": "3000", "status": "lost", "created": "2024-03-01 00:00:00",
     **LIVE},
    {"id": "fx_du_won", "charge_id": "fx_ch_us", "currency": "usd", "amount": "1999",
     "status": "won", "created": "2024-03-01 00:00:00", **LIVE},
]
# fx_cn_1: total 500 = subtotal 450 - discount 0 + tax 50.
CREDIT_NOTES = [
    {"id": "fx_cn_1", "number": "FXS-0001-CN-01", "invoice_id": "fx_in_us1",
     "refund_id": "fx_re_1", "currency": "usd", "amount": "500", "subtotal": "450",
     "discount_amount": "0", "total": "500", "status": "issued", "type": "post_payment",
     "reason": "order_change", "created": "2024-02-10 08:00:00", **LIVE},
    {"id": "fx_cn_void", "number": "FXS-0001-CN-02", "invoice_id": "fx_in_us1",
     "currency": "usd", "amount": "100", "subtotal": "100", "discount_amount": "0",
     "total": "100", "status": "void", "created": "2024-02-11 08:00:00", **LIVE},
]
CREDIT_NOTE_LINES = [
    {"id": "fx_cnli_1", "credit_note_id": "fx_cn_1", "amount": "450", "quantity": "1",
     "unit_amount_decimal": "450", "type": "custom_line_item", **LIVE},
]


def _txn(txn_id, source, kind, currency, amount, fee, net, payout, **extra):
    return {"id": txn_id, "source": source, "type": kind, "currency": currency,
            "amount": amount, "fee": fee, "net": net, "payout_id": payout,
            "status": "available", "created": "2024-02-10 00:00:00",
            "available_on": "2024-02-11 00:00:00", **extra}


# fx_po_1 settles 1911 - 500 - 150 + 2883 = 4144 cents and pays out 4144: difference 0.
# fx_po_2 settles 24245 - 4500 + 1038 = 20783 cents but pays out 21000: difference 217.
BALANCE_TRANSACTIONS = [
    _txn("fx_txn_ch_us", "fx_ch_us", "charge", "usd", "1999", "88", "1911", "fx_po_1"),
    _txn("fx_txn_re_1", "fx_re_1", "refund", "usd", "-500", "0", "-500", "fx_po_1"),
    _txn("fx_txn_fee", "", "stripe_fee", "usd", "-150", "0", "-150", "fx_po_1"),
    _txn("fx_txn_ch_dis", "fx_ch_dis", "charge", "usd", "3000", "117", "2883", "fx_po_1"),
    _txn("fx_txn_po_1", "fx_po_1", "payout", "usd", "-4144", "0", "-4144", "fx_po_1"),
    _txn("fx_txn_ch_jp", "fx_ch_jp", "charge", "jpy", "5000", "180", "4820", "fx_po_jp"),
    _txn("fx_txn_ch_portal", "fx_ch_portal", "charge", "usd", "25000", "755", "24245",
         "fx_po_2"),
    _txn("fx_txn_du", "fx_du_lost", "adjustment", "usd", "-3000", "1500", "-4500", "fx_po_2"),
    _txn("fx_txn_ch_eur", "fx_ch_eur", "charge", "usd", "1100", "62", "1038", "fx_po_2",
         exchange_rate="1.1"),
    _txn("fx_txn_kw", "", "adjustment", "kwd", "12345", "0", "12345", ""),
]
PAYOUTS = [
    {"id": "fx_po_1", "balance_transaction_id": "fx_txn_po_1", "currency": "usd",
     "amount": "4144", "arrival_date": "2024-02-12 00:00:00", "status": "paid", **LIVE},
    {"id": "fx_po_2", "currency": "usd", "amount": "21000",
     "arrival_date": "2024-03-05 00:00:00", "status": "in_transit", **LIVE},
    {"id": "fx_po_jp", "currency": "jpy", "amount": "4820",
     "arrival_date": "2024-02-12 00:00:00", "status": "paid", **LIVE},
    {"id": "fx_po_test", "currency": "usd", "amount": "100",
     "arrival_date": "2024-02-12 00:00:00", "status": "paid", "livemode": "false"},
]
FIXTURE: dict[str, list[dict[str, str]]] = {
    "customer": CUSTOMERS,
    "invoice": INVOICES,
    "invoice_line_item": [
        {"id": i, "invoice_id": inv, "amount": a, "quantity": q, "unit_amount_excluding_tax": u,
         "price_id": p, "currency": next(x["currency"] for x in INVOICES if x["id"] == inv),
         "type": "invoiceitem", "period_start": "2024-02-01 00:00:00", **LIVE}
        for i, inv, a, q, u, p in INVOICE_LINES
    ],
    "charge": CHARGES,
    "payment_intent": PAYMENT_INTENTS,
    "refund": REFUNDS,
    "credit_note": CREDIT_NOTES,
    "credit_note_line_item": CREDIT_NOTE_LINES,
    "balance_transaction": BALANCE_TRANSACTIONS,
    "payout": PAYOUTS,
    "dispute": DISPUTES,
}
# Rows that cannot be used, appended after the fixture rows: a charge without its id, and
# an older copy of refund fx_re_1 (synced before the one above, so that one is kept).
UNUSABLE: dict[str, list[dict[str, str]]] = {
    "charge": [{"id": "", "currency": "usd", "amount": "100", "status": "succeeded"}],
    "refund": [{"id": "fx_re_1", "charge_id": "fx_ch_us", "currency": "usd", "amount": "400",
                "status": "succeeded", "_fivetran_synced": "2024-02-10 09:00:00"}],
}

MY_MODELS = "iso_currencies staging.stripe intermediate.stripe fct_gateway_transactions fct_payouts"
UNION_ENTITIES = ("erp_customers", "erp_invoices", "erp_invoices_all", "erp_invoice_lines",
                  "erp_invoice_tax_lines", "erp_credit_notes", "erp_payments",
                  "erp_payment_allocations")


def _shared_rows(table: str) -> tuple[list[str], list[dict[str, str]]]:
    path = SHARED_STRIPE / f"{table}_data.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def _write_landing(folder: Path) -> dict[str, int]:
    """Shared rows, then fixture rows, then unusable rows; returns each table's row count
    before the unusable rows, so their line numbers can be worked out."""
    folder.mkdir(parents=True)
    counts = {}
    for table in tables_of("stripe"):
        header, rows = _shared_rows(table.name)
        extra = FIXTURE.get(table.name, []) + UNUSABLE.get(table.name, [])
        header += [key for row in extra for key in row if key not in header]
        header = list(dict.fromkeys(header))
        counts[table.name] = len(rows) + len(FIXTURE.get(table.name, []))
        with (folder / f"{table.name}.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=header, restval="")
            writer.writeheader()
            writer.writerows(rows + extra)
    return counts


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Land, build once, and return the warehouse path, dbt's results and row counts."""
    tmp = tmp_path_factory.mktemp("stripe")
    counts = _write_landing(tmp / "landing" / "stripe")
    path = tmp / "warehouse.duckdb"
    with connect(path) as conn:
        loads = load_source(conn, tmp / "landing", "stripe", "run-stripe")
        for source in ("quickbooks", "salesforce"):
            load_source(conn, SHARED_DATA, source, "run-stripe")

    result = _dbt_build(tmp, path)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    run_results = json.loads((tmp / "target" / "run_results.json").read_text())
    return {"path": path, "loads": loads, "counts": counts, "results": run_results["results"]}


def _dbt_build(tmp: Path, warehouse: Path, *args: str,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`dbt build` of the Stripe models and the unions, with its own target and log paths."""
    unions = [f"+int_{entity}" for entity in UNION_ENTITIES]
    command = [
        str(DBT), "build", *args,
        "--project-dir", str(DBT_PROJECT), "--profiles-dir", str(DBT_PROJECT),
        "--target-path", str(tmp / "target"), "--log-path", str(tmp / "logs"),
        "--vars", '{"q2c_stripe_enabled": true}',
        "--indirect-selection", "cautious",
        "--select", *MY_MODELS.split(), *unions,
    ]
    env = os.environ | (env or {}) | {"Q2C_WAREHOUSE": str(warehouse),
                                      "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"}
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


def _query(built: dict, sql: str) -> list[tuple]:
    with duckdb.connect(str(built["path"]), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def _one(built: dict, sql: str) -> tuple:
    rows = _query(built, sql)
    assert len(rows) == 1, rows
    return rows[0]


def _live(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [r for r in rows if (r.get("is_deleted") or "").lower() != "true"
            and (r.get("livemode") or "").lower() != "false"]


# ---------------------------------------------------------------------------------------
# Landing and build
# ---------------------------------------------------------------------------------------
def test_every_stripe_model_builds_and_no_test_errors(built: dict) -> None:
    nodes = {r["unique_id"]: r["status"] for r in built["results"]}
    models = DBT_PROJECT / "models"
    mine = {f"model.q2c.{sql.stem}" for folder in ("staging", "intermediate")
            for sql in (models / folder / "stripe").glob("*.sql")}
    mine |= {"model.q2c.fct_gateway_transactions", "model.q2c.fct_payouts"}
    assert len(mine) == 12 + 8 + 2
    assert mine <= set(nodes)
    assert {nodes[n] for n in nodes if n.startswith("model.")} == {"success"}
    my_tests = [n for n in nodes if n.startswith("test.")
                and ("stripe" in n or "gateway" in n or "payouts" in n)]
    assert len(my_tests) > 100
    assert {nodes[n] for n in my_tests} <= {"pass", "warn"}


def test_unusable_rows_are_quarantined_with_file_row_and_field(built: dict) -> None:
    rows = _query(built, "select table_name, file, row_number, field, reason "
                         "from q2c_ops.quarantine where source = 'stripe' order by table_name")
    charge_line = built["counts"]["charge"] + 2
    refund_line = built["counts"]["refund"] + 2
    assert [(t, Path(f).name, n, fld) for t, f, n, fld, _ in rows] == [
        ("charge", "charge.csv", charge_line, "id"),
        ("refund", "refund.csv", refund_line, "id"),
    ]
    assert "key column `id` is empty" in rows[0][4]
    assert "duplicate key" in rows[1][4]
    assert _one(built, "select amount from raw_stripe.refund where id = 'fx_re_1'") == ("500",)


def test_every_shared_row_lands(built: dict) -> None:
    loaded = {load.table.name: load.rows_loaded for load in built["loads"]}
    for table in tables_of("stripe"):
        expected = len(_shared_rows(table.name)[1]) + len(FIXTURE.get(table.name, []))
        assert loaded[table.name] == expected, table.name


# ---------------------------------------------------------------------------------------
# Units and currencies
# ---------------------------------------------------------------------------------------
def test_a_jpy_charge_of_5000_stays_5000_yen(built: dict) -> None:
    assert _one(built, "select currency_code, total_amount, fee_amount "
                       "from intermediate.int_stripe__erp_payments "
                       "where payment_id = 'fx_ch_jp'") == ("JPY", Decimal("5000"),
                                                            Decimal("180"))


def test_a_kwd_amount_of_12345_fils_is_12_345_dinar(built: dict) -> None:
    assert _one(built, "select currency_code, total_amount, balance_amount "
                       "from intermediate.int_stripe__erp_invoices "
                       "where invoice_id = 'fx_in_kw1'") == ("KWD", Decimal("12.345"),
                                                             Decimal("12.345"))
    assert _one(built, "select unit_price, amount from intermediate.int_stripe__erp_invoice_lines"
                       " where invoice_id = 'fx_in_kw1'") == (Decimal("4.115"),
                                                              Decimal("12.345"))
    assert _one(built, "select currency, gross_amount from core.fct_gateway_transactions "
                       "where source_id = 'fx_txn_kw'") == ("KWD", Decimal("12.345"))
    assert _one(built, "select balance_amount from intermediate.int_stripe__erp_customers "
                       "where customer_id = 'fx_cus_kw'") == (Decimal("12.345"),)


def test_a_usd_charge_of_1999_cents_is_19_99_dollars(built: dict) -> None:
    row = _one(built, "select currency_code, total_amount, unapplied_amount, payment_date, "
                      "payment_channel, payment_method, reference_number "
                      "from intermediate.int_stripe__erp_payments where payment_id = 'fx_ch_us'")
    assert row == ("USD", Decimal("19.99"), Decimal("0"), dt.date(2024, 2, 3), "card", "card",
                   "1111-2222")


def test_stripe_keeps_isk_two_decimal_and_mga_zero_decimal(built: dict) -> None:
    rows = _query(built, "select currency_code, iso_minor_units, minor_unit_factor "
                         "from staging.stg_stripe__currency_units "
                         "where currency_code in ('ISK', 'MGA', 'JPY', 'KWD', 'USD') "
                         "order by currency_code")
    assert rows == [("ISK", 0, Decimal("0.01")), ("JPY", 0, Decimal("1")),
                    ("KWD", 3, Decimal("0.001")), ("MGA", 2, Decimal("1")),
                    ("USD", 2, Decimal("0.01"))]


# ---------------------------------------------------------------------------------------
# Conformed adapters
# ---------------------------------------------------------------------------------------
def test_customers_are_the_live_undeleted_ones(built: dict) -> None:
    expected = {r["id"] for r in _live(_shared_rows("customer")[1] + CUSTOMERS)}
    rows = _query(built, "select customer_id from intermediate.int_stripe__erp_customers")
    assert {r[0] for r in rows} == expected
    assert len(rows) == len(expected) == 11 + 3
    assert _one(built, "select display_name, email, currency_code, billing_street, "
                       "billing_country, tax_id, balance_amount "
                       "from intermediate.int_stripe__erp_customers "
                       "where customer_id = 'fx_cus_us'") == (
        "Acme Corp", "ap@acme.example", "USD", "1 Main St, Suite 5", "US", "US-99",
        Decimal("-25.00"))


def test_invoices_of_record_are_open_paid_or_uncollectible(built: dict) -> None:
    rows = _query(built, "select invoice_id from intermediate.int_stripe__erp_invoices")
    assert {r[0] for r in rows} == {"ab1111", "fx_in_us1", "fx_in_us2", "fx_in_jp1",
                                    "fx_in_kw1", "fx_in_unc"}
    assert _one(built, "select invoice_number, customer_id, currency_code, billing_email, "
                       "tax_amount, total_amount, balance_amount, issue_date, due_date "
                       "from intermediate.int_stripe__erp_invoices "
                       "where invoice_id = 'fx_in_us1'") == (
        "FXS-0001", "fx_cus_us", "USD", "ap@acme.example", Decimal("2.99"), Decimal("19.99"),
        Decimal("0"), dt.date(2024, 2, 1), dt.date(2024, 3, 2))


def test_invoice_lines_are_numbered_items_of_invoices_of_record(built: dict) -> None:
    rows = _query(built, "select invoice_id, line_index, line_type, item_id, quantity, "
                         "unit_price, amount from intermediate.int_stripe__erp_invoice_lines "
                         "where invoice_id like 'fx%' order by invoice_id, line_index")
    assert rows == [
        ("fx_in_jp1", 1, "item", "price_jp", Decimal("4"), Decimal("1250"), Decimal("5000")),
        ("fx_in_kw1", 1, "item", "price_kw", Decimal("3"), Decimal("4.115"), Decimal("12.345")),
        ("fx_in_us1", 1, "item", "price_a", Decimal("2"), Decimal("5.00"), Decimal("10.00")),
        ("fx_in_us1", 2, "item", "price_b", Decimal("1"), Decimal("7.00"), Decimal("7.00")),
    ]


def test_tax_lines_only_where_the_invoice_carries_tax(built: dict) -> None:
    rows = _query(built, "select invoice_id, line_index, tax_percent, taxable_amount, "
                         "tax_amount from intermediate.int_stripe__erp_invoice_tax_lines "
                         "order by invoice_id")
    assert rows == [
        ("fx_in_kw1", 1, Decimal("0"), Decimal("12.345"), Decimal("0")),
        ("fx_in_us1", 1, None, Decimal("17.00"), Decimal("2.99")),
    ]


def test_issued_credit_notes_name_the_credited_invoice(built: dict) -> None:
    rows = _query(built, "select credit_note_id, credit_note_number, customer_id, invoice_id, "
                         "currency_code, total_amount, tax_amount, remaining_credit_amount, "
                         "issue_date from intermediate.int_stripe__erp_credit_notes "
                         "order by credit_note_id")
    assert rows == [
        ("cn_89hUNfs", "E89505E-0024-CN-01", None, "in_1J7DINLdeVo", "USD", Decimal("0.50"),
         Decimal("0"), Decimal("0"), dt.date(2021, 6, 30)),
        ("fx_cn_1", "FXS-0001-CN-01", "fx_cus_us", "fx_in_us1", "USD", Decimal("5.00"),
         Decimal("0.50"), Decimal("0"), dt.date(2024, 2, 10)),
    ]


def test_payments_are_the_succeeded_captured_live_charges(built: dict) -> None:
    rows = _query(built, "select payment_id, payment_channel, currency_code, total_amount, "
                         "unapplied_amount, fee_amount "
                         "from intermediate.int_stripe__erp_payments order by payment_id")
    assert rows == [
        ("fx_ch_desc", "portal", "USD", Decimal("10.00"), Decimal("10.00"), None),
        ("fx_ch_dis", "card", "USD", Decimal("30.00"), Decimal("0"), Decimal("1.17")),
        # Settled in USD: its fee is not in euros, so it is only in the gateway mart.
        ("fx_ch_eur", "card", "EUR", Decimal("10.00"), Decimal("10.00"), None),
        ("fx_ch_jp", "portal", "JPY", Decimal("5000"), Decimal("0"), Decimal("180")),
        ("fx_ch_portal", "portal", "USD", Decimal("250.00"), Decimal("0"), Decimal("7.55")),
        ("fx_ch_us", "card", "USD", Decimal("19.99"), Decimal("0"), Decimal("0.88")),
    ]


def test_allocations_pay_refund_charge_back_and_fee(built: dict) -> None:
    rows = _query(built, "select payment_id, line_index, invoice_id, invoice_number, "
                         "allocation_kind, amount, allocation_date "
                         "from intermediate.int_stripe__erp_payment_allocations "
                         "order by payment_id, line_index")
    feb = dt.date(2024, 2, 1)
    assert rows == [
        ("fx_ch_dis", 1, "fx_in_us2", "FXS-0003", "payment", Decimal("30.00"),
         feb.replace(day=5)),
        ("fx_ch_dis", 2, "fx_in_us2", "FXS-0003", "fee", Decimal("-1.17"), feb.replace(day=5)),
        ("fx_ch_dis", 3, "fx_in_us2", "FXS-0003", "chargeback", Decimal("-30.00"),
         dt.date(2024, 3, 1)),
        ("fx_ch_jp", 1, "fx_in_jp1", "FXS-0002", "payment", Decimal("5000"),
         feb.replace(day=4)),
        ("fx_ch_jp", 2, "fx_in_jp1", "FXS-0002", "fee", Decimal("-180"), feb.replace(day=4)),
        ("fx_ch_portal", 1, None, "FX-1009", "payment", Decimal("250.00"), feb.replace(day=6)),
        ("fx_ch_portal", 2, None, "FX-1009", "fee", Decimal("-7.55"), feb.replace(day=6)),
        ("fx_ch_us", 1, "fx_in_us1", "FXS-0001", "payment", Decimal("19.99"),
         feb.replace(day=3)),
        ("fx_ch_us", 2, "fx_in_us1", "FXS-0001", "fee", Decimal("-0.88"), feb.replace(day=3)),
        ("fx_ch_us", 3, "fx_in_us1", "FXS-0001", "refund", Decimal("-5.00"),
         feb.replace(day=10)),
    ]


# ---------------------------------------------------------------------------------------
# Gateway marts
# ---------------------------------------------------------------------------------------
def test_one_gateway_row_per_balance_transaction(built: dict) -> None:
    expected = {r["id"] for r in _shared_rows("balance_transaction")[1] + BALANCE_TRANSACTIONS}
    rows = _query(built, "select source_id, source_system from core.fct_gateway_transactions")
    assert len(rows) == len(expected) == 9 + 10
    assert {r[0] for r in rows} == expected
    assert {r[1] for r in rows} == {"stripe"}


def test_gateway_rows_carry_gross_fee_net_and_their_payout(built: dict) -> None:
    rows = _query(built, "select source_id, transaction_category, source_object_type, "
                         "charge_id, invoice_number, payout_id, currency, gross_amount, "
                         "fee_amount, net_amount, source_currency, source_amount "
                         "from core.fct_gateway_transactions where source_id in "
                         "('fx_txn_ch_us', 'fx_txn_re_1', 'fx_txn_fee', 'fx_txn_du', "
                         "'fx_txn_ch_eur', 'fx_txn_po_1') order by source_id")
    assert rows == [
        ("fx_txn_ch_eur", "charge", "charge", "fx_ch_eur", None, "fx_po_2", "USD",
         Decimal("11.00"), Decimal("0.62"), Decimal("10.38"), "EUR", Decimal("10.00")),
        ("fx_txn_ch_us", "charge", "charge", "fx_ch_us", "FXS-0001", "fx_po_1", "USD",
         Decimal("19.99"), Decimal("0.88"), Decimal("19.11"), "USD", Decimal("19.99")),
        ("fx_txn_du", "adjustment", "dispute", "fx_ch_dis", "FXS-0003", "fx_po_2", "USD",
         Decimal("-30.00"), Decimal("15.00"), Decimal("-45.00"), "USD", Decimal("-30.00")),
        ("fx_txn_fee", "fee", None, None, None, "fx_po_1", "USD",
         Decimal("-1.50"), Decimal("0"), Decimal("-1.50"), None, None),
        ("fx_txn_po_1", "payout", "payout", None, None, "fx_po_1", "USD",
         Decimal("-41.44"), Decimal("0"), Decimal("-41.44"), None, None),
        ("fx_txn_re_1", "refund", "refund", "fx_ch_us", "FXS-0001", "fx_po_1", "USD",
         Decimal("-5.00"), Decimal("0"), Decimal("-5.00"), "USD", Decimal("-5.00")),
    ]


def test_a_payout_sums_the_transactions_it_settled(built: dict) -> None:
    rows = _query(built, "select payout_id, currency, amount, arrival_date, status, "
                         "transaction_count, transactions_gross_amount, "
                         "transactions_fee_amount, transactions_net_amount, difference_amount "
                         "from core.fct_payouts where payout_id like 'fx%' order by payout_id")
    assert rows == [
        # 19.99 - 5.00 - 1.50 + 30.00 gross, 0.88 + 1.17 fees: 41.44 net, all paid out.
        ("fx_po_1", "USD", Decimal("41.44"), dt.date(2024, 2, 12), "paid", 4,
         Decimal("43.49"), Decimal("2.05"), Decimal("41.44"), Decimal("0")),
        # 250.00 - 30.00 + 11.00 gross, 7.55 + 15.00 + 0.62 fees: 207.83 net, 210.00 paid.
        ("fx_po_2", "USD", Decimal("210.00"), dt.date(2024, 3, 5), "in_transit", 3,
         Decimal("231.00"), Decimal("23.17"), Decimal("207.83"), Decimal("2.17")),
        ("fx_po_jp", "JPY", Decimal("4820"), dt.date(2024, 2, 12), "paid", 1,
         Decimal("5000"), Decimal("180"), Decimal("4820"), Decimal("0")),
    ]
    assert _one(built, "select count(*) from core.fct_payouts")[0] == 15 + 3
    assert _one(built, "select difference_amount from core.fct_payouts "
                       "where payout_id = 'po_0IFUKBig6peNXzgDZQM7WPAo'") == (Decimal("0"),)


# ---------------------------------------------------------------------------------------
# The coordinator's union models
# ---------------------------------------------------------------------------------------
def test_stripe_rows_reach_the_union_models_as_source_system_stripe(built: dict) -> None:
    checks = {
        "int_erp_customers": ("customer_id", "fx_cus_us"),
        "int_erp_invoices_all": ("invoice_id", "fx_in_us1"),
        "int_erp_invoices": ("invoice_id", "fx_in_kw1"),
        "int_erp_invoice_lines": ("invoice_id", "fx_in_us1"),
        "int_erp_invoice_tax_lines": ("invoice_id", "fx_in_us1"),
        "int_erp_credit_notes": ("credit_note_id", "fx_cn_1"),
        "int_erp_payments": ("payment_id", "fx_ch_jp"),
        "int_erp_payment_allocations": ("payment_id", "fx_ch_us"),
    }
    for model, (column, value) in checks.items():
        systems = _query(built, f"select distinct source_system from intermediate.{model} "
                                f"where {column} = '{value}'")
        assert systems == [("stripe",)], model
    assert _one(built, "select total_amount from intermediate.int_erp_invoices "
                       "where invoice_id = 'fx_in_kw1'") == (Decimal("12.345"),)
    assert _one(built, "select count(*) from intermediate.int_erp_payment_allocations "
                       "where source_system = 'stripe' and payment_id like 'fx%'") == (10,)


# ---------------------------------------------------------------------------------------
# Postgres
# ---------------------------------------------------------------------------------------
def test_postgres_builds_the_same_stripe_rows(built: dict, tmp_path: Path) -> None:
    relations = [f"intermediate.int_stripe__{entity}" for entity in (
        "erp_customers", "erp_invoices", "erp_invoice_lines", "erp_invoice_tax_lines",
        "erp_credit_notes", "erp_payments", "erp_payment_allocations")]
    relations += ["core.fct_gateway_transactions", "core.fct_payouts"]
    with running_postgres() as server:
        server.create_database("q2c_stripe")
        pg = server.connect("q2c_stripe")
        try:
            push_to_postgres(built["path"], pg)
        finally:
            pg.close()
        result = _dbt_build(tmp_path, built["path"], "--target", "postgres",
                            env=server.environment("q2c_stripe"))
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
        pg = server.connect("q2c_stripe")
        try:
            for relation in relations:
                with pg.cursor() as cur:
                    cur.execute(f"select * from {relation}")
                    on_postgres = sorted(cur.fetchall(), key=repr)
                on_duckdb = sorted(_query(built, f"select * from {relation}"), key=repr)
                assert on_duckdb, relation
                assert on_postgres == on_duckdb, relation
        finally:
            pg.close()
