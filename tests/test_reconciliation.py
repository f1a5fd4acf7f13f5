"""The nightly reconciliation: ERP balances, q2c's balances and the gateway, three ways.

A small QuickBooks company (the ERP) and its Stripe account (the gateway) are written as
landed CSV tables, loaded by `load_source` into a temporary DuckDB warehouse and built with
a real `dbt build` of the reconciliation marts, their reporting views and everything they
read (and once more on a real Postgres, which must give the same rows). The seeded set has
one mismatch of each reason code (some reasons by more than one check) next to items that
reconcile; every expected exception below is worked out by hand. A clean set, a higher
tolerance, the Dagster asset checks, the run summary with its email over real SMTP and the
nightly schedule's time zone are tested on top of those builds.

The reconciliation day is 2026-11-30 and var reconciliation_grace_days is 1: a charge or
payment dated 2026-11-29 or earlier must have its counterpart, one of 2026-11-30 may not
yet. All amounts are EUR unless a row says otherwise; Stripe writes cents.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import io
import json
import os
import subprocess
import sys
from decimal import Decimal
from email import policy
from email.parser import BytesParser
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml
from postgres_server import running_postgres

from assets.cash import (
    RECONCILIATION_EXCEPTIONS_KEY,
    RECONCILIATION_SUMMARY_KEY,
    RECONCILIATION_SUMMARY_MART_KEY,
    reconciliation_checks,
    reconciliation_summary,
)
from orchestration.jobs import NIGHTLY_JOB_NAME, build_nightly_schedule
from orchestration.resources import Q2CSettings
from q2c.payments.reconciliation import ReconciliationError, read_summary, send_summary
from q2c.settings import ConfigError, Seller, load_settings
from q2c.sources.landing import load_source
from q2c.warehouse import connect
from q2c.warehouse_postgres import push_to_postgres

REPO = Path(__file__).resolve().parents[1]
DBT_PROJECT = REPO / "dbt_project"
DBT = Path(sys.executable).parent / "dbt"
AS_OF = dt.date(2026, 11, 30)
MARTS = ("mart_reconciliation_exceptions", "mart_reconciliation_summary")
# Their views in the reporting schema, what BI tools read.
PUBLISHED = tuple(f"rpt_{mart}" for mart in MARTS)
SOURCES = ("quickbooks", "stripe")
DBT_VARS = {"as_of_date": AS_OF.isoformat(), "q2c_stripe_enabled": True,
            "q2c_salesforce_enabled": False}

# ---------------------------------------------------------------------------------------
# QuickBooks: customers 1 and 3 pay in EUR, customer 2 in USD. Every invoice is issued on
# 2026-11-01, due 2026-12-01, with one line of its total. Customer 3 has no open invoice,
# so q2c's own allocation finds no home for its unapplied cash and leaves it unallocated.
# ---------------------------------------------------------------------------------------
_SYNC = {"_fivetran_deleted": "false", "_fivetran_synced": "2026-11-30 00:30:00"}
QB_CUSTOMERS = [
    {"id": "1", "display_name": "Alpha GmbH", "company_name": "Alpha GmbH",
     "email": "ap@alpha.example", "currency_id": "EUR", "active": "true", **_SYNC},
    {"id": "2", "display_name": "Beta Inc", "company_name": "Beta Inc",
     "email": "ap@beta.example", "currency_id": "USD", "active": "true", **_SYNC},
    {"id": "3", "display_name": "Gamma SARL", "company_name": "Gamma SARL",
     "email": "ap@gamma.example", "currency_id": "EUR", "active": "true", **_SYNC},
]


def _qb_invoice(invoice_id: str, number: str, total: str, balance: str, customer: str = "1",
                currency: str = "EUR") -> dict[str, str]:
    return {"id": invoice_id, "doc_number": number, "customer_id": customer,
            "transaction_date": "2026-11-01", "due_date": "2026-12-01", "currency_id": currency,
            "total_amount": total, "total_tax": "0", "balance": balance,
            "created_at": "2026-11-01 09:00:00", "updated_at": "2026-11-29 09:00:00", **_SYNC}


def _qb_payment(payment_id: str, date: str, total: str, reference: str, unapplied: str = "0",
                customer: str = "1", currency: str = "EUR") -> dict[str, str]:
    return {"id": payment_id, "customer_id": customer, "transaction_date": date,
            "currency_id": currency, "total_amount": total, "unapplied_amount": unapplied,
            "reference_number": reference, "created_at": f"{date} 12:00:00",
            "updated_at": f"{date} 12:00:00", **_SYNC}


# The clean invoices: Q-100 paid by card (P-100 records charge ch_ok); Q-101 half paid by a
# bank transfer, ERP balance 200.00 - 150.00 = 50.00; Q-103 charged by card today, not yet
# booked (inside the grace day); P-110 and P-111 are customer 3's monthly 20.00 by "ACH",
# 31 days apart: a recurring payment, not one entered twice. q2c allocates the charges that
# name an open ERP invoice (ch_today to Q-103 here, ch_noerp to Q-102 below) by reference.
CLEAN_QB = {
    "invoice": [
        _qb_invoice("100", "Q-100", "100.00", "0"),
        _qb_invoice("101", "Q-101", "200.00", "50.00"),
        _qb_invoice("103", "Q-103", "70.00", "70.00"),
    ],
    "payment": [
        _qb_payment("P-100", "2026-11-20", "100.00", "ch_ok"),
        _qb_payment("P-101", "2026-11-15", "150.00", "BANK-101"),
        _qb_payment("P-110", "2026-10-01", "20.00", "ACH", unapplied="20.00", customer="3"),
        _qb_payment("P-111", "2026-11-01", "20.00", "ACH", unapplied="20.00", customer="3"),
    ],
    "payment_line": [
        {"payment_id": "P-100", "index": "0", "amount": "100.00", "invoice_id": "100"},
        {"payment_id": "P-101", "index": "0", "amount": "150.00", "invoice_id": "101"},
    ],
}
# The mismatches, one per case:
# - Q-101's ERP balance says 80.00 where its payments leave 200.00 - 150.00 = 50.00;
# - Q-102 (300.00) was paid by charge ch_noerp on 2026-11-20; the ERP records no payment;
# - P-104 (75.00, reference ch_never) is a card payment the gateway never captured;
# - P-105 records 60.00 USD for charge ch_eur, which Stripe took in EUR (invoice Q-105 USD);
# - P-106 records 120.00 for charge ch_short, which took 119.50: 0.50 apart;
# - Q-107 (80.00) was charged twice, ch_dup1 then ch_dup2; P-107 records the first;
# - P-108a and P-108b (customer 3) both record charge ch_twice (50.00) for Q-108;
# - P-109 and P-109b (customer 3) are one 30.00 check, CHK-77, entered on 2026-11-10 and
#   2026-11-12.
MISMATCH_QB = {
    "invoice": [
        _qb_invoice("101", "Q-101", "200.00", "80.00"),
        _qb_invoice("102", "Q-102", "300.00", "300.00"),
        _qb_invoice("104", "Q-104", "75.00", "0"),
        _qb_invoice("105", "Q-105", "60.00", "0", customer="2", currency="USD"),
        _qb_invoice("106", "Q-106", "120.00", "0"),
        _qb_invoice("107", "Q-107", "80.00", "0"),
        _qb_invoice("108", "Q-108", "50.00", "0", customer="3"),
        _qb_invoice("109", "Q-109", "30.00", "0", customer="3"),
    ],
    "payment": [
        _qb_payment("P-104", "2026-11-20", "75.00", "ch_never"),
        _qb_payment("P-105", "2026-11-20", "60.00", "ch_eur", customer="2", currency="USD"),
        _qb_payment("P-106", "2026-11-20", "120.00", "ch_short"),
        _qb_payment("P-107", "2026-11-20", "80.00", "ch_dup1"),
        _qb_payment("P-108a", "2026-11-21", "50.00", "ch_twice", customer="3"),
        _qb_payment("P-108b", "2026-11-22", "50.00", "ch_twice", unapplied="50.00",
                    customer="3"),
        _qb_payment("P-109", "2026-11-10", "30.00", "CHK-77", customer="3"),
        _qb_payment("P-109b", "2026-11-12", "30.00", "CHK-77", unapplied="30.00",
                    customer="3"),
    ],
    "payment_line": [
        {"payment_id": "P-104", "index": "0", "amount": "75.00", "invoice_id": "104"},
        {"payment_id": "P-105", "index": "0", "amount": "60.00", "invoice_id": "105"},
        {"payment_id": "P-106", "index": "0", "amount": "120.00", "invoice_id": "106"},
        {"payment_id": "P-107", "index": "0", "amount": "80.00", "invoice_id": "107"},
        {"payment_id": "P-108a", "index": "0", "amount": "50.00", "invoice_id": "108"},
        {"payment_id": "P-109", "index": "0", "amount": "30.00", "invoice_id": "109"},
    ],
}

# ---------------------------------------------------------------------------------------
# Stripe. A charge names the ERP invoice it pays in metadata q2c_invoice_number (what q2c's
# portal checkout sets); ch_sinv pays Stripe's own invoice S-1, whose record is Stripe.
# ---------------------------------------------------------------------------------------
_LIVE = {"livemode": "true"}


def _charge(charge_id: str, amount: str, created: str, invoice_number: str = "",
            currency: str = "eur", **extra: str) -> dict[str, str]:
    metadata = json.dumps({"q2c_invoice_number": invoice_number}) if invoice_number else "{}"
    return {"id": charge_id, "currency": currency, "amount": amount, "created": created,
            "status": "succeeded", "paid": "true", "captured": "true",
            "metadata": metadata, **_LIVE, **extra}


def _txn(txn_id: str, source: str, kind: str, amount: str, fee: str, net: str,
         payout: str) -> dict[str, str]:
    return {"id": txn_id, "source": source, "type": kind, "currency": "eur",
            "amount": amount, "fee": fee, "net": net, "payout_id": payout,
            "status": "available", "created": "2026-11-20 10:00:00",
            "available_on": "2026-11-22 00:00:00"}


# po_ok pays out ch_ok's 10000 - 170 = 9830 cents: it adds up.
CLEAN_STRIPE = {
    "charge": [
        _charge("ch_ok", "10000", "2026-11-20 10:00:00", "Q-100",
                balance_transaction_id="txn_ok"),
        _charge("ch_today", "7000", "2026-11-30 01:00:00", "Q-103"),
        _charge("ch_sinv", "2500", "2026-11-20 11:00:00", invoice_id="in_s1"),
    ],
    "invoice": [
        {"id": "in_s1", "number": "S-1", "currency": "eur", "status": "paid",
         "subtotal": "2500", "tax": "0", "total": "2500", "amount_remaining": "0",
         "created": "2026-11-19 09:00:00", "is_deleted": "false", **_LIVE},
    ],
    "invoice_line_item": [
        {"id": "il_s1", "invoice_id": "in_s1", "amount": "2500", "quantity": "1",
         "unit_amount_excluding_tax": "2500", "currency": "eur", "type": "invoiceitem",
         **_LIVE},
    ],
    "balance_transaction": [
        _txn("txn_ok", "ch_ok", "charge", "10000", "170", "9830", "po_ok"),
    ],
    "payout": [
        {"id": "po_ok", "currency": "eur", "amount": "9830", "status": "paid",
         "arrival_date": "2026-11-23 00:00:00", **_LIVE},
    ],
}
# ch_ghost took 45.00 for Q-999, which no invoice carries. po_bad paid out 300.00 for the
# one transaction it settled, ch_noerp's 30000 - 400 = 29600 cents: 4.00 too much.
MISMATCH_STRIPE = {
    "charge": [
        _charge("ch_noerp", "30000", "2026-11-20 10:00:00", "Q-102",
                balance_transaction_id="txn_noerp"),
        _charge("ch_ghost", "4500", "2026-11-20 10:30:00", "Q-999"),
        _charge("ch_eur", "6000", "2026-11-20 11:00:00", "Q-105"),
        _charge("ch_short", "11950", "2026-11-20 11:30:00", "Q-106"),
        _charge("ch_dup1", "8000", "2026-11-20 12:00:00", "Q-107"),
        _charge("ch_dup2", "8000", "2026-11-20 12:05:00", "Q-107"),
        _charge("ch_twice", "5000", "2026-11-21 09:00:00", "Q-108"),
    ],
    "balance_transaction": [
        _txn("txn_noerp", "ch_noerp", "charge", "30000", "400", "29600", "po_bad"),
    ],
    "payout": [
        {"id": "po_bad", "currency": "eur", "amount": "30000", "status": "paid",
         "arrival_date": "2026-11-23 00:00:00", **_LIVE},
    ],
}


def _qb_lines(invoices: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{"invoice_id": row["id"], "index": "0", "amount": row["total_amount"],
             "detail_type": "SalesItemLineDetail", "sales_item_quantity": "1",
             "sales_item_unit_price": row["total_amount"], **_SYNC} for row in invoices]


def _merge(*sets: dict[str, list[dict[str, str]]]) -> dict[str, list[dict[str, str]]]:
    """Tables of several sets in one; a later set's row replaces an earlier one's by id."""
    merged: dict[str, dict[str, dict[str, str]]] = {}
    for rows_by_table in sets:
        for table, rows in rows_by_table.items():
            kept = merged.setdefault(table, {})
            for row in rows:
                kept[row.get("id") or json.dumps(row, sort_keys=True)] = row
    return {table: list(rows.values()) for table, rows in merged.items()}


def write_landing(folder: Path, quickbooks: dict, stripe: dict) -> None:
    """One CSV per table the sets fill, under `<folder>/<source>/`, every key a column."""
    quickbooks = {**quickbooks, "customer": QB_CUSTOMERS,
                  "invoice_line": _qb_lines(quickbooks["invoice"])}
    for source, tables in (("quickbooks", quickbooks), ("stripe", stripe)):
        (folder / source).mkdir(parents=True)
        for table, rows in tables.items():
            header = list(dict.fromkeys(key for row in rows for key in row))
            path = folder / source / f"{table}.csv"
            with path.open("w", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, fieldnames=header, restval="")
                writer.writeheader()
                writer.writerows(rows)


def build_warehouse(tmp: Path, quickbooks: dict, stripe: dict,
                    project: Path = DBT_PROJECT) -> tuple[Path, list[dict]]:
    """Land the sets, build the reconciliation marts and all they read, then run the
    reconciliation models' own tests (the other models' tests belong to their modules).
    Returns the warehouse and the results of every model and test dbt ran."""
    write_landing(tmp / "landing", quickbooks, stripe)
    warehouse = tmp / "warehouse.duckdb"
    with connect(warehouse) as conn:
        for source in SOURCES:
            load_source(conn, tmp / "landing", source, "run-reconciliation")
    results = []
    for args in (["build", "--resource-type", "seed", "--resource-type", "model", "--select",
                  *(f"+{view}" for view in PUBLISHED)],
                 ["test", "--select", "intermediate.reconciliation", *MARTS, *PUBLISHED]):
        done = dbt(tmp, warehouse, *args, project=project)
        assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
        run_results = json.loads((tmp / "target" / "run_results.json").read_text())
        results += run_results["results"]
    return warehouse, results


def dbt(tmp: Path, warehouse: Path, *args: str, variables: dict | None = None,
        project: Path = DBT_PROJECT, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [
        str(DBT), *args,
        "--project-dir", str(project), "--profiles-dir", str(project),
        "--target-path", str(tmp / "target"), "--log-path", str(tmp / "logs"),
        "--vars", json.dumps(DBT_VARS | (variables or {})),
    ]
    env = os.environ | (env or {}) | {"Q2C_WAREHOUSE": str(warehouse),
                                      "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
                                      "DBT_INDIRECT_SELECTION": "cautious"}
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


def query(warehouse: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def exceptions(warehouse: Path) -> list[tuple]:
    """(check, reason, invoice, payment, charge, payout, duplicate of, currency, compared
    currency, erp, q2c, gateway, difference) of every exception, in a fixed order."""
    return query(warehouse, """
        select check_name, reason_code, invoice_number, payment_id, gateway_charge_id,
               payout_id, duplicate_of_id, currency, compared_currency, erp_amount,
               q2c_amount, gateway_amount, difference_amount
        from core.mart_reconciliation_exceptions
        order by check_name, reason_code, coalesce(gateway_charge_id, payment_id, payout_id,
                                                   invoice_number)
    """)


def _d(text: str) -> Decimal:
    return Decimal(text)


# Every exception of the seeded set, worked out by hand (EUR unless noted):
EXPECTED = [
    # P-108b records ch_twice after P-108a did: the 50.00 is booked twice.
    ("erp_gateway_payment", "duplicate", None, "P-108b", "ch_twice", None, "P-108a", "EUR",
     None, _d("50"), None, _d("50"), _d("50")),
    # P-104 (75.00, reference ch_never): no such charge; ERP 75.00 - gateway 0 = 75.00.
    ("erp_gateway_payment", "missing_at_gateway", "Q-104", "P-104", None, None, None, "EUR",
     None, _d("75"), None, None, _d("75")),
    # P-109b repeats P-109: customer 3, CHK-77, 30.00, two days apart (window 7 days).
    ("erp_payment_reference", "duplicate", None, "P-109b", None, None, "P-109", "EUR", None,
     _d("30"), None, None, _d("30")),
    # ERP payment P-106 120.00 - charge ch_short 119.50 = 0.50.
    ("gateway_charge", "amount_mismatch", "Q-106", "P-106", "ch_short", None, None, "EUR",
     None, _d("120"), None, _d("119.50"), _d("0.50")),
    # ch_eur took 60.00 EUR; P-105 records 60.00 USD: two currencies, no difference.
    ("gateway_charge", "currency_mismatch", "Q-105", "P-105", "ch_eur", None, None, "EUR",
     "USD", _d("60"), None, _d("60"), None),
    # ch_dup2 took Q-107's 80.00 again after ch_dup1 (which P-107 records).
    ("gateway_charge", "duplicate", "Q-107", None, "ch_dup2", None, "ch_dup1", "EUR", None,
     None, None, _d("80"), _d("80")),
    # ch_ghost took 45.00 for Q-999, which no invoice carries: ERP 0 - 45.00.
    ("gateway_charge", "missing_in_erp", "Q-999", None, "ch_ghost", None, None, "EUR", None,
     None, None, _d("45"), _d("-45")),
    # ch_noerp took 300.00 for Q-102 on 2026-11-20 (10 days > 1 grace day); no ERP payment.
    ("gateway_charge", "missing_in_erp", "Q-102", None, "ch_noerp", "po_bad", None, "EUR",
     None, None, None, _d("300"), _d("-300")),
    # ERP 80.00 open; q2c 200.00 - 150.00 = 50.00; no gateway cash: 80 - 50 - 0 = 30.
    ("invoice_balance", "amount_mismatch", "Q-101", None, None, None, None, "EUR", None,
     _d("80"), _d("50"), None, _d("30")),
    # po_bad paid 300.00 out of 296.00 net (30000 - 400 cents): 4.00 too much.
    ("payout", "amount_mismatch", None, None, None, "po_bad", None, "EUR", None, None,
     _d("296"), _d("300"), _d("4")),
]
# Per reason: 2 missing_in_erp (-45, -300), 1 missing_at_gateway (75), 3 amount_mismatch
# (0.50 + 30 + 4 = 34.50), 1 currency_mismatch (60.00 at stake), 3 duplicate (50+30+80=160).
EXPECTED_COUNTS = {"missing_in_erp": 2, "missing_at_gateway": 1, "amount_mismatch": 3,
                   "currency_mismatch": 1, "duplicate": 3}
EXPECTED_AT_STAKE = {"missing_in_erp": {"EUR": _d("345")}, "missing_at_gateway":
                     {"EUR": _d("75")}, "amount_mismatch": {"EUR": _d("34.50")},
                     "currency_mismatch": {"EUR": _d("60")}, "duplicate": {"EUR": _d("160")}}
# Items compared, 36 in all: 11 invoices (Q-100 to Q-109, S-1); 10 charges that name an
# invoice (ch_ok, ch_today, ch_sinv and the 7 of MISMATCH_STRIPE); 7 ERP card
# payments (P-100, P-104 to P-107, P-108a, P-108b); 6 ERP payments with a reference and no
# charge (P-101, P-104, P-109, P-109b, P-110, P-111); 2 payouts. 36 - 10 = 26 reconciled.
EXPECTED_COMPARED = {"invoice_balance": 11, "gateway_charge": 10, "erp_gateway_payment": 7,
                     "erp_payment_reference": 6, "payout": 2}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The clean set with every mismatch added, built once."""
    tmp = tmp_path_factory.mktemp("seeded")
    warehouse, results = build_warehouse(tmp, _merge(CLEAN_QB, MISMATCH_QB),
                                         _merge(CLEAN_STRIPE, MISMATCH_STRIPE))
    return {"tmp": tmp, "warehouse": warehouse, "results": results}


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The clean set alone, built once."""
    tmp = tmp_path_factory.mktemp("clean")
    warehouse, _ = build_warehouse(tmp, CLEAN_QB, CLEAN_STRIPE)
    return {"tmp": tmp, "warehouse": warehouse}


def rerun(seeded: dict, tmp: Path, variables: dict) -> tuple[Path, subprocess.CompletedProcess]:
    """The reconciliation models again, on a copy of the seeded warehouse, with `variables`."""
    warehouse = tmp / "warehouse.duckdb"
    warehouse.write_bytes(seeded["warehouse"].read_bytes())
    result = dbt(tmp, warehouse, "run", "--select", "intermediate.reconciliation", *MARTS,
                 variables=variables)
    return warehouse, result


# ---------------------------------------------------------------------------------------
# dbt: the exceptions mart
# ---------------------------------------------------------------------------------------
def test_the_reconciliation_models_build_and_their_tests_pass(seeded: dict) -> None:
    mine = {f"model.q2c.{path.stem}" for path in
            (DBT_PROJECT / "models" / "intermediate" / "reconciliation").glob("*.sql")}
    mine |= {f"model.q2c.{model}" for model in MARTS + PUBLISHED}
    statuses = {r["unique_id"]: r["status"] for r in seeded["results"]}
    tests = [uid for uid in statuses if uid.startswith("test.") and any(
        name.split(".")[-1] in uid for name in mine)]

    assert len(mine) == 9 + 2 + 2
    assert {statuses[uid] for uid in mine} == {"success"}
    assert len(tests) >= 20
    assert {statuses[uid] for uid in tests} == {"pass"}


def test_each_reason_code_is_found_with_hand_computed_amounts(seeded: dict) -> None:
    found = exceptions(seeded["warehouse"])

    assert found == EXPECTED
    assert {row[1] for row in found} == set(EXPECTED_COUNTS)


def test_every_exception_has_a_stable_key_a_day_and_what_to_check(seeded: dict) -> None:
    rows = query(seeded["warehouse"], """
        select exception_key, check_name, item_id, reason_code, detected_on, what_to_check,
               tolerance_amount
        from core.mart_reconciliation_exceptions
    """)
    keys = {(check, item, reason): key for key, check, item, reason, *_ in rows}

    # md5('payout|po_bad|amount_mismatch'): the same finding keeps its key every night.
    assert keys["payout", "po_bad", "amount_mismatch"] == query(
        seeded["warehouse"], "select md5('payout|po_bad|amount_mismatch')")[0][0]
    assert {row[4] for row in rows} == {AS_OF}
    assert {row[6] for row in rows} == {Decimal(0)}
    sentences = {row[2]: row[5] for row in rows}
    assert "ch_ghost" in sentences["ch_ghost"] and "Q-999" in sentences["ch_ghost"]
    assert "P-108a" in sentences[_payment_key("P-108b")]
    assert "CHK-77" in sentences[_payment_key("P-109b")]
    assert all(sentence.endswith(".") and len(sentence) > 60 for sentence in sentences.values())


def _payment_key(payment_id: str) -> str:
    return hashlib.md5(f"quickbooks|{payment_id}".encode()).hexdigest()


def test_the_summary_mart_counts_every_item_compared(seeded: dict) -> None:
    rows = query(seeded["warehouse"], """
        select check_name, outcome, sum(item_count)
        from core.mart_reconciliation_summary group by check_name, outcome
    """)
    compared: dict[str, int] = {}
    found: dict[str, int] = {}
    for check, outcome, count in rows:
        compared[check] = compared.get(check, 0) + count
        if outcome != "reconciled":
            found[outcome] = found.get(outcome, 0) + count

    assert compared == EXPECTED_COMPARED
    assert found == EXPECTED_COUNTS
    assert sum(compared.values()) - sum(found.values()) == 26


def test_allocation_and_reconciliation_read_one_match_of_charges_to_erp_payments(
        seeded: dict) -> None:
    """P-100, P-105, P-106, P-107 and P-108a record ch_ok, ch_eur, ch_short, ch_dup1 and
    ch_twice by their references; P-108b records ch_twice a second time (rank 2). Those
    charges are their ERP payments' cash, so q2c allocates none of them. The gateway cash
    q2c does allocate is the charges no ERP payment records: ch_noerp 300.00 to Q-102 and
    ch_today 70.00 to Q-103 (ch_dup2 finds Q-107 paid by P-107, ch_ghost no Q-999), and
    that is exactly the gateway_amount the invoice_balance check adds to q2c's balance."""
    matches = query(seeded["warehouse"], """
        select payment_id, charge_id, match_rank
        from intermediate.int_gateway_charge_erp_matches order by payment_id
    """)
    allocated = query(seeded["warehouse"], """
        select p.source_id, i.invoice_number, a.amount
        from core.fct_cash_applications as a
        inner join core.fct_payments as p on a.payment_key = p.payment_key
        inner join core.fct_invoices as i on a.invoice_key = i.invoice_key
        where p.source_system = 'stripe' and not a.is_erp_recorded order by 1
    """)
    awaiting = query(seeded["warehouse"], """
        select invoice_number, gateway_amount from intermediate.int_invoice_balances_compared
        where gateway_amount is not null order by 1
    """)

    assert matches == [("P-100", "ch_ok", 1), ("P-105", "ch_eur", 1),
                       ("P-106", "ch_short", 1), ("P-107", "ch_dup1", 1),
                       ("P-108a", "ch_twice", 1), ("P-108b", "ch_twice", 2)]
    assert allocated == [("ch_noerp", "Q-102", _d("300")), ("ch_today", "Q-103", _d("70"))]
    assert awaiting == [("Q-102", _d("300")), ("Q-103", _d("70"))]


def test_a_clean_set_has_no_exceptions(clean: dict) -> None:
    rows = query(clean["warehouse"], """
        select check_name, outcome, sum(item_count)
        from core.mart_reconciliation_summary group by check_name, outcome order by 1
    """)

    assert exceptions(clean["warehouse"]) == []
    # Q-100, Q-101 (50.00 = 50.00), Q-103 (70.00 = 0 + 70.00 awaiting the ERP), S-1;
    # ch_ok, ch_today (inside the grace day), ch_sinv (Stripe's own invoice); P-100;
    # P-101, P-110, P-111 (31 days apart); po_ok.
    assert rows == [("erp_gateway_payment", "reconciled", 1),
                    ("erp_payment_reference", "reconciled", 3),
                    ("gateway_charge", "reconciled", 3),
                    ("invoice_balance", "reconciled", 4),
                    ("payout", "reconciled", 1)]


@pytest.fixture(scope="module")
def tolerant(seeded: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seeded set reconciled again with a tolerance of 50 minor units (JPY: 5 yen of its
    own) and no grace day."""
    warehouse, result = rerun(seeded, tmp_path_factory.mktemp("tolerant"), {
        "reconciliation_tolerance_minor_units": 50,
        "reconciliation_tolerance_by_currency": {"JPY": "5"},
        "reconciliation_grace_days": 0,
    })
    assert result.returncode == 0, result.stdout[-4000:]
    return warehouse


def test_a_difference_up_to_the_tolerance_is_no_exception(tolerant: Path) -> None:
    """50 minor units are 0.50 EUR, 0.050 KWD; JPY has 5 of its own. ch_short's 0.50 is not
    above 0.50; every other EUR finding is (the smallest, po_bad, is 4.00)."""
    tolerances = query(tolerant, "select currency, tolerance_amount "
                                 "from intermediate.int_reconciliation_tolerances "
                                 "where currency in ('EUR', 'JPY', 'KWD') order by currency")
    found = exceptions(tolerant)

    assert tolerances == [("EUR", _d("0.5")), ("JPY", _d("5")), ("KWD", _d("0.05"))]
    assert "ch_short" not in {row[4] for row in found}
    assert [row for row in found if row[4] != "ch_today"] == [
        row for row in EXPECTED if row[4] != "ch_short"]


def test_without_grace_days_a_charge_of_today_is_missing(tolerant: Path) -> None:
    """ch_today took 70.00 for Q-103 this morning; with no grace day the ERP should have it:
    ERP 0 - gateway 70.00 = -70.00."""
    found = [row for row in exceptions(tolerant) if row[4] == "ch_today"]

    assert found == [("gateway_charge", "missing_in_erp", "Q-103", None, "ch_today", None,
                      None, "EUR", None, None, None, _d("70"), _d("-70"))]


def test_a_bad_tolerance_stops_the_build_naming_the_var(seeded: dict, tmp_path: Path) -> None:
    _, result = rerun(seeded, tmp_path, {"reconciliation_tolerance_minor_units": "0.5"})

    assert result.returncode != 0
    assert "var reconciliation_tolerance_minor_units must be a whole number" in result.stdout
    assert "got '0.5'" in result.stdout


def test_postgres_reconciles_row_for_row_like_duckdb(seeded: dict, tmp_path: Path) -> None:
    models = sorted(p.stem for p in
                    (DBT_PROJECT / "models" / "intermediate" / "reconciliation").glob("*.sql"))
    relations = [f"intermediate.{name}" for name in models] + [
        f"{schema}.{mart}" for mart in MARTS for schema in ("core", "reporting")]
    with running_postgres() as server:
        server.create_database("q2c_reconciliation")
        pg = server.connect("q2c_reconciliation")
        try:
            push_to_postgres(seeded["warehouse"], pg)
        finally:
            pg.close()
        result = dbt(tmp_path, seeded["warehouse"], "build", "--target", "postgres",
                     "--resource-type", "seed", "--resource-type", "model",
                     "--select", *(f"+{view}" for view in PUBLISHED),
                     env=server.environment("q2c_reconciliation"))
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
        pg = server.connect("q2c_reconciliation")
        try:
            for relation in relations:
                with pg.cursor() as cur:
                    cur.execute(f"select * from {relation}")
                    on_postgres = sorted(cur.fetchall(), key=repr)
                on_duckdb = sorted(query(seeded["warehouse"], f"select * from {relation}"),
                                   key=repr)
                assert on_postgres == on_duckdb, relation
        finally:
            pg.close()
    assert len(relations) == 9 + 2 * 2


# ---------------------------------------------------------------------------------------
# Dagster: the asset checks and the run summary
# ---------------------------------------------------------------------------------------
def run_reconciliation(warehouse: Path, selection: dg.AssetSelection
                       ) -> dg.ExecuteInProcessResult:
    """Run the checks or the summary asset in-process on a built warehouse; the dbt marts
    they read stand in as external assets."""
    defs = dg.Definitions(
        assets=[dg.AssetSpec(RECONCILIATION_EXCEPTIONS_KEY),
                dg.AssetSpec(RECONCILIATION_SUMMARY_MART_KEY), reconciliation_summary],
        asset_checks=[reconciliation_checks],
        jobs=[dg.define_asset_job("reconciliation", selection=selection)],
        resources={"q2c": Q2CSettings(warehouse_path=str(warehouse), as_of=AS_OF.isoformat())},
    )
    return defs.resolve_job_def("reconciliation").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)


def summary_metadata(result: dg.ExecuteInProcessResult) -> dict:
    (materialization,) = result.asset_materializations_for_node(
        "reports__reconciliation_summary")
    return {name: value.value for name, value in materialization.metadata.items()}


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """Settings from the environment only, with a home of the test's own."""
    monkeypatch.setenv("Q2C_HOME", str(tmp_path / "home"))
    for name in ("Q2C_CONFIG", "Q2C_FINANCE_EMAIL", "Q2C_MAIL_CHANNEL", "Q2C_NIGHTLY_AT",
                 "Q2C_OPS_STORE", "Q2C_AS_OF"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_each_reason_check_fails_with_error_severity(seeded: dict, environment) -> None:
    result = run_reconciliation(seeded["warehouse"],
                                dg.AssetSelection.checks(reconciliation_checks))
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}

    assert result.success
    assert sorted(evaluations) == sorted(f"no_{code}_exceptions" for code in EXPECTED_COUNTS)
    for code, count in EXPECTED_COUNTS.items():
        evaluation = evaluations[f"no_{code}_exceptions"]
        assert evaluation.asset_key == RECONCILIATION_EXCEPTIONS_KEY
        assert (evaluation.passed, evaluation.severity) == (False, dg.AssetCheckSeverity.ERROR)
        assert evaluation.metadata["exceptions"].value == count
    table = evaluations["no_amount_mismatch_exceptions"].metadata["exceptions_table"].value
    assert "| payout |  |  |  | po_bad | EUR |  | 296.00 | 300.00 | 4.00 |" in table


def test_every_check_passes_on_a_clean_set(clean: dict, environment) -> None:
    result = run_reconciliation(clean["warehouse"],
                                dg.AssetSelection.checks(reconciliation_checks))
    evaluations = result.get_asset_check_evaluations()

    assert len(evaluations) == 5
    assert all(e.passed for e in evaluations)


def test_the_summary_counts_exceptions_and_amounts_by_reason(seeded: dict,
                                                            environment) -> None:
    result = run_reconciliation(seeded["warehouse"],
                                dg.AssetSelection.assets(RECONCILIATION_SUMMARY_KEY))
    metadata = summary_metadata(result)

    assert result.success
    assert (metadata["items_compared"], metadata["items_reconciled"],
            metadata["exceptions"]) == (36, 26, 10)
    assert {code: metadata[f"exceptions_{code}"] for code in EXPECTED_COUNTS} == \
        EXPECTED_COUNTS
    assert metadata["difference_by_reason"] == {
        code: {currency: f"{amount:.2f}" for currency, amount in by_currency.items()}
        for code, by_currency in EXPECTED_AT_STAKE.items()}
    assert "| amount_mismatch | 3 | 34.50 EUR |" in metadata["summary"]
    assert "| gateway_charge | 10 | 5 | 5 |" in metadata["summary"]
    assert metadata["finance_email"] == {}


def test_the_summary_reaches_finance_once_over_smtp(seeded: dict, environment,
                                                    smtp_server) -> None:
    environment.setenv("Q2C_FINANCE_EMAIL", "finance@northwind.example")
    environment.setenv("Q2C_MAIL_CHANNEL", "smtp")
    environment.setenv("Q2C_SMTP_HOST", smtp_server.host)
    environment.setenv("Q2C_SMTP_PORT", str(smtp_server.port))
    selection = dg.AssetSelection.assets(RECONCILIATION_SUMMARY_KEY)

    first = run_reconciliation(seeded["warehouse"], selection)
    second = run_reconciliation(seeded["warehouse"], selection)

    assert first.success and second.success
    (mail,) = smtp_server.messages
    message = mail.parsed()
    assert mail.rcpt_tos == ["finance@northwind.example"]
    assert message["Subject"] == (
        "Reconciliation 2026-11-30: 10 exceptions (missing_in_erp 2, missing_at_gateway 1, "
        "amount_mismatch 3, currency_mismatch 1, duplicate 3)")
    body = message.get_body(("plain",)).get_content()
    assert "Items compared: 36, reconciled: 26, exceptions: 10." in body
    assert "Missing in the ERP (missing_in_erp): 2, 345.00 EUR" in body
    assert "Currency mismatch (currency_mismatch): 1, 60.00 EUR" in body
    assert "Duplicate (duplicate): 3, 160.00 EUR" in body
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_filename() == "reconciliation-exceptions-2026-11-30.csv"
    rows = list(csv.DictReader(io.StringIO(attachment.get_content())))
    assert len(rows) == 10
    short = next(row for row in rows if row["gateway_charge_id"] == "ch_short")
    assert (short["erp_amount"], short["gateway_amount"], short["difference_amount"]) == (
        "120.00", "119.50", "0.50")
    assert summary_metadata(first)["finance_email"] == {
        "finance@northwind.example": f"smtp://{smtp_server.host}:{smtp_server.port}"}
    assert summary_metadata(second)["finance_email"] == {
        "finance@northwind.example": "already sent"}


def test_a_clean_night_mails_all_reconciled_to_the_eml_folder(clean: dict, environment,
                                                               tmp_path: Path) -> None:
    environment.setenv("Q2C_FINANCE_EMAIL", "finance@northwind.example")
    environment.setenv("Q2C_MAIL_CHANNEL", "eml")

    result = run_reconciliation(clean["warehouse"],
                                dg.AssetSelection.assets(RECONCILIATION_SUMMARY_KEY))

    assert result.success
    (path,) = (tmp_path / "home" / "reconciliation").rglob("*.eml")
    message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    # 1 + 3 + 3 + 4 + 1 items of the clean set (test_a_clean_set_has_no_exceptions).
    assert message["Subject"] == "Reconciliation 2026-11-30: all 12 items reconciled"
    assert list(message.iter_attachments()) == []


def test_a_summary_the_relay_refused_is_sent_by_the_next_run(seeded: dict, environment,
                                                            smtp_server) -> None:
    environment.setenv("Q2C_MAIL_CHANNEL", "smtp")
    environment.setenv("Q2C_SMTP_HOST", smtp_server.host)
    environment.setenv("Q2C_SMTP_PORT", str(smtp_server.port))
    settings = load_settings()
    with connect(seeded["warehouse"], read_only=True) as conn:
        summary = read_summary(conn, AS_OF)

    smtp_server.stop()
    with pytest.raises(ReconciliationError, match=r"could not be mailed.*Q2C_FINANCE_EMAIL"):
        send_summary(summary, settings, "finance@northwind.example")
    smtp_server.start()
    receipt = send_summary(summary, settings, "finance@northwind.example")

    assert receipt is not None
    assert [mail.rcpt_tos for mail in smtp_server.messages] == [["finance@northwind.example"]]


def test_a_finance_email_that_is_no_address_is_refused(environment) -> None:
    environment.setenv("Q2C_FINANCE_EMAIL", "finance@northwind.example, accounts payable")

    with pytest.raises(ConfigError, match=r"Q2C_FINANCE_EMAIL.*'accounts payable'"):
        load_settings()


# ---------------------------------------------------------------------------------------
# The nightly schedule
# ---------------------------------------------------------------------------------------
def test_the_nightly_schedule_runs_at_the_set_hour_in_the_sellers_zone(
        environment, tmp_path: Path) -> None:
    seller = dataclasses.asdict(Seller()) | {"timezone": "America/New_York"}
    config = tmp_path / "q2c.yaml"
    config.write_text(yaml.safe_dump({"seller": seller}))
    environment.setenv("Q2C_CONFIG", str(config))
    environment.setenv("Q2C_NIGHTLY_AT", "03:30")

    schedule = build_nightly_schedule(load_settings())

    assert schedule.cron_schedule == "30 3 * * *"
    assert schedule.execution_timezone == "America/New_York"
    assert schedule.job_name == NIGHTLY_JOB_NAME


def test_by_default_the_schedule_is_two_in_the_morning_in_berlin(environment) -> None:
    schedule = build_nightly_schedule(load_settings())

    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 2 * * *",
                                                                      "Europe/Berlin")


def test_a_nightly_time_that_is_no_time_of_day_is_refused(environment) -> None:
    environment.setenv("Q2C_NIGHTLY_AT", "2am")

    with pytest.raises(ConfigError, match=r"nightly_at \(Q2C_NIGHTLY_AT\) is '2am'.*HH:MM"):
        load_settings()


def test_the_nightly_job_reconciles_and_checks() -> None:
    from orchestration.definitions import defs

    job = defs.resolve_job_def(NIGHTLY_JOB_NAME)
    graph = job.asset_layer.asset_graph
    checks = {key.name for key in graph.asset_check_keys
              if key.asset_key == RECONCILIATION_EXCEPTIONS_KEY}

    assert RECONCILIATION_SUMMARY_KEY in graph.get_all_asset_keys()
    assert {f"no_{code}_exceptions" for code in EXPECTED_COUNTS} <= checks
    assert [s.name for s in defs.schedules
            if s.job_name == NIGHTLY_JOB_NAME] == ["nightly_quote_to_cash_schedule"]
