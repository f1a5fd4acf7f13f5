"""A small hand-made CRM and ERP, landed as files and built with dbt, for the collections tests.

Seller: the demo seller, in Europe/Berlin. The build's business date is the day it is in
Berlin at 23:30 UTC on 14 March 2026, i.e. 15 March 2026 (in UTC it is still the 14th).

Accounts (Salesforce, matched to QuickBooks customers by account number):

- Alpha Tools GmbH (German; owner Olga Owner; parent Alpha Holding AG, owned by Hank
  Holder; billing contact Anna Berg), EUR:
  INV-A1 1190.00 due 12 March (3 days past due: the reminder stage),
  INV-A2 500.00 due 15 March (due today: not overdue),
  INV-A3 300.00 due 14 March, 49.50 paid, 250.50 open (1 day past due),
  INV-A4 100.00 due 31 January, paid 10 February (10 days late, the payment history),
  credit note CN-A1 with 100.00 unapplied; an open technical case.
- Beta Foods Ltd (owner Hank Holder), EUR: INV-B1 400.00 due 28 February (15 days: second
  notice) with an open billing question, INV-B2 600.00 due 1 February (42 days: final
  notice) with an open billing dispute.
- Gamma Retail Inc (owner Olga Owner), EUR: INV-C1 800.00 due 20 January (54 days: the
  hand-over to the owner), INV-C2 200.00 due 5 March (10 days: reminder); a technical case
  closed on 11 March.

`built_warehouse()` lands these files, runs `dbt seed` and `dbt build` of the collections
marts once per test session and returns where it is; tests that change data work on a copy.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb

from q2c.delivery.export import WAREHOUSE_DDL as DELIVERY_WAREHOUSE_DDL
from q2c.review import ensure_review_warehouse_tables
from q2c.settings import business_date
from q2c.sources.landing import load_table
from q2c.sources.schema import RAW_TABLES

REPO = Path(__file__).resolve().parents[1]
DBT_PROJECT = REPO / "dbt_project"
DBT = Path(sys.executable).parent / "dbt"

# 23:30 UTC on 14 March is 00:30 on 15 March in Berlin.
RUN_MOMENT = dt.datetime(2026, 3, 14, 23, 30, tzinfo=dt.UTC)
SELLER_TIMEZONE = "Europe/Berlin"
AS_OF = business_date(RUN_MOMENT, SELLER_TIMEZONE)

BUILD_SELECT = [
    "+kpi_collections_worklist", "+fct_invoice_lines", "+fct_invoice_tax_lines",
    "+fct_credit_notes", "rpt_kpi_collections_worklist",
]
# The models whose data tests and unit tests the build runs (the others have their own).
OWN_MODELS = ["kpi_collections_worklist", "mart_dunning_actions", "fct_promises_to_pay",
              "stg_q2c_collections__collection_holds", "dunning_stages"]

FALSE = "false"

ROWS: dict[tuple[str, str], list[dict[str, str]]] = {
    ("salesforce", "user"): [
        {"id": "u1", "name": "Olga Owner", "email": "olga.owner@northwind.example",
         "is_active": "true"},
        {"id": "u2", "name": "Hank Holder", "email": "hank.holder@northwind.example",
         "is_active": "true"},
    ],
    ("salesforce", "account"): [
        {"id": "sfA", "name": "Alpha Tools GmbH", "account_number": "qbA", "owner_id": "u1",
         "parent_id": "sfP", "preferred_language_c": "de", "billing_country_code": "DE",
         "billing_street": "Hauptstrasse 1", "billing_city": "Berlin",
         "billing_postal_code": "10115", "segment_c": "enterprise", "is_deleted": FALSE},
        {"id": "sfP", "name": "Alpha Holding AG", "owner_id": "u2",
         "billing_country_code": "DE", "segment_c": "enterprise", "is_deleted": FALSE},
        {"id": "sfB", "name": "Beta Foods Ltd", "account_number": "qbB", "owner_id": "u2",
         "preferred_language_c": "en", "billing_country_code": "GB", "billing_city": "Leeds",
         "segment_c": "smb", "is_deleted": FALSE},
        {"id": "sfC", "name": "Gamma Retail Inc", "account_number": "qbC", "owner_id": "u1",
         "preferred_language_c": "en", "billing_country_code": "US",
         "billing_city": "Boston", "segment_c": "smb", "is_deleted": FALSE},
    ],
    ("salesforce", "contact"): [
        {"id": "ct1", "account_id": "sfA", "name": "Anna Berg",
         "email": "anna.berg@alpha-tools.example", "is_billing_contact_c": "true",
         "is_deleted": FALSE},
        {"id": "ct2", "account_id": "sfB", "name": "Ben Baker",
         "email": "ap@beta-foods.example", "is_billing_contact_c": "true",
         "is_deleted": FALSE},
        {"id": "ct3", "account_id": "sfC", "name": "Cora Cole",
         "email": "ap@gamma-retail.example", "is_billing_contact_c": "true",
         "is_deleted": FALSE},
    ],
    ("salesforce", "case"): [
        {"id": "cs1", "account_id": "sfB", "case_number": "00001", "type": "Billing Question",
         "is_closed": FALSE, "invoice_number_c": "INV-B1",
         "created_date": "2026-03-02 10:00:00", "is_deleted": FALSE},
        {"id": "cs2", "account_id": "sfB", "case_number": "00002", "type": "Billing Dispute",
         "is_closed": FALSE, "invoice_number_c": "INV-B2",
         "created_date": "2026-02-20 09:00:00", "is_deleted": FALSE},
        {"id": "cs3", "account_id": "sfC", "case_number": "00003", "type": "Technical",
         "is_closed": "true", "created_date": "2026-03-10 09:00:00",
         "closed_date": "2026-03-11 09:00:00", "is_deleted": FALSE},
        {"id": "cs4", "account_id": "sfA", "case_number": "00004", "type": "Technical",
         "is_closed": FALSE, "created_date": "2026-03-09 09:00:00", "is_deleted": FALSE},
    ],
    ("quickbooks", "customer"): [
        {"id": "qbA", "display_name": "Alpha Tools GmbH", "email": "ap@alpha-tools.example",
         "currency_id": "EUR", "_fivetran_deleted": FALSE},
        {"id": "qbB", "display_name": "Beta Foods Ltd", "email": "ap@beta-foods.example",
         "currency_id": "EUR", "_fivetran_deleted": FALSE},
        {"id": "qbC", "display_name": "Gamma Retail Inc",
         "email": "ap@gamma-retail.example", "currency_id": "EUR",
         "_fivetran_deleted": FALSE},
    ],
    ("quickbooks", "credit_memo"): [
        {"id": "cmA1", "doc_number": "CN-A1", "customer_id": "qbA", "currency_id": "EUR",
         "transaction_date": "2026-03-01", "total_amount": "100.00", "total_tax": "0",
         "balance": "100.00", "remaining_credit": "100.00", "_fivetran_deleted": FALSE},
    ],
    ("quickbooks", "payment"): [
        {"id": "p1", "customer_id": "qbA", "currency_id": "EUR",
         "transaction_date": "2026-03-01", "total_amount": "49.50",
         "_fivetran_deleted": FALSE},
        {"id": "p2", "customer_id": "qbA", "currency_id": "EUR",
         "transaction_date": "2026-02-10", "total_amount": "100.00",
         "_fivetran_deleted": FALSE},
    ],
    ("quickbooks", "payment_line"): [
        {"payment_id": "p1", "index": "0", "amount": "49.50", "invoice_id": "a3"},
        {"payment_id": "p2", "index": "0", "amount": "100.00", "invoice_id": "a4"},
    ],
}

# (id, number, customer, issue, due, total, open balance)
INVOICES = [
    ("a1", "INV-A1", "qbA", "2026-02-10", "2026-03-12", "1190.00", "1190.00"),
    ("a2", "INV-A2", "qbA", "2026-02-13", "2026-03-15", "500.00", "500.00"),
    ("a3", "INV-A3", "qbA", "2026-02-12", "2026-03-14", "300.00", "250.50"),
    ("a4", "INV-A4", "qbA", "2026-01-01", "2026-01-31", "100.00", "0.00"),
    ("b1", "INV-B1", "qbB", "2026-01-29", "2026-02-28", "400.00", "400.00"),
    ("b2", "INV-B2", "qbB", "2026-01-02", "2026-02-01", "600.00", "600.00"),
    ("c1", "INV-C1", "qbC", "2025-12-21", "2026-01-20", "800.00", "800.00"),
    ("c2", "INV-C2", "qbC", "2026-02-03", "2026-03-05", "200.00", "200.00"),
]


def _rows() -> dict[tuple[str, str], list[dict[str, str]]]:
    rows = {key: list(value) for key, value in ROWS.items()}
    rows[("quickbooks", "invoice")] = [
        {"id": i, "doc_number": number, "customer_id": customer, "currency_id": "EUR",
         "transaction_date": issued, "due_date": due, "total_amount": total,
         "total_tax": "0", "balance": balance, "email_status": "NotSet",
         "_fivetran_deleted": FALSE, "created_at": f"{issued} 08:00:00",
         "updated_at": f"{issued} 08:00:00"}
        for i, number, customer, issued, due, total, balance in INVOICES
    ]
    rows[("quickbooks", "invoice_line")] = [
        {"invoice_id": i, "index": "0", "amount": total, "description": "Analytics platform",
         "detail_type": "SalesItemLineDetail", "sales_item_quantity": "1",
         "sales_item_unit_price": total}
        for i, _, _, _, _, total, _ in INVOICES
    ]
    return rows


@dataclass(frozen=True)
class BuiltWarehouse:
    """The built warehouse and the results of the dbt build that made it."""

    path: Path
    results: dict[str, dict]

    def copy_to(self, folder: Path) -> Path:
        """A private copy of the warehouse for a test that changes it."""
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / "warehouse.duckdb"
        shutil.copyfile(self.path, target)
        return target

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        with duckdb.connect(str(self.path), read_only=True) as conn:
            return conn.execute(sql, params or []).fetchall()


_BUILT: dict[str, BuiltWarehouse] = {}


def built_warehouse(folder_factory) -> BuiltWarehouse:
    """Land the fixture and build the collections marts once per session."""
    if "warehouse" not in _BUILT:
        _BUILT["warehouse"] = _build(folder_factory("collections"))
    return _BUILT["warehouse"]


def land(folder: Path) -> Path:
    """Write the fixture as landed files and load every raw table into a new warehouse."""
    landing = folder / "landing"
    for (source, table), rows in _rows().items():
        raw = next(t for t in RAW_TABLES if t.source == source and t.name == table)
        path = landing / source / raw.file_names()[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(raw.columns))
            writer.writeheader()
            writer.writerows(rows)
    warehouse = folder / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as conn:
        for table in RAW_TABLES:
            load_table(conn, landing / table.source, table)
        conn.execute(DELIVERY_WAREHOUSE_DDL)
        ensure_review_warehouse_tables(conn)
    return warehouse


def run_dbt(folder: Path, warehouse: Path, *args: str) -> subprocess.CompletedProcess:
    """One dbt command on `warehouse`, with this folder's own target and log paths."""
    env = os.environ | {"Q2C_WAREHOUSE": str(warehouse),
                        "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"}
    command = [str(DBT), *args, "--project-dir", str(DBT_PROJECT),
               "--profiles-dir", str(DBT_PROJECT), "--target-path", str(folder / "target"),
               "--log-path", str(folder / "logs"),
               "--vars", json.dumps({"as_of_date": AS_OF.isoformat()})]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


def _build(folder: Path) -> BuiltWarehouse:
    warehouse = land(folder)
    for args in (["seed"], ["run", "--select", *BUILD_SELECT],
                 ["test", "--select", *OWN_MODELS]):
        done = run_dbt(folder, warehouse, *args)
        assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    results = json.loads((folder / "target" / "run_results.json").read_text())["results"]
    return BuiltWarehouse(warehouse, {r["unique_id"]: r for r in results})
