"""q2c's allocation of cash to invoices and credit notes, built for real on DuckDB.

The QuickBooks and Stripe rows of tests/cash_fixtures.py are written as CSV exports, landed
with `load_source` (as ingest does) and built with `dbt run` of the cash marts and their
parents, QuickBooks and Stripe on, Salesforce off, as of 2024-03-31. Then `dbt test` runs
the data tests and every unit test of the cash models (models/intermediate/cash and
models/marts/core/_cash__unit_tests.yml): the unit tests that ran must be exactly the ones
pinned below, so a deleted, renamed or deselected test fails here. Every expected value is
worked out by hand from the fixture rows, in the comments.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
import yaml
from cash_fixtures import write_landing

from q2c.sources.landing import load_source
from q2c.warehouse import connect

REPO = Path(__file__).resolve().parents[1]
DBT_PROJECT = REPO / "dbt_project"
DBT = Path(sys.executable).parent / "dbt"
SOURCES = ("quickbooks", "stripe")
VARIABLES = json.dumps({"q2c_quickbooks_enabled": True, "q2c_stripe_enabled": True,
                        "q2c_salesforce_enabled": False, "as_of_date": "2024-03-31"})
MARTS = ("fct_cash_applications", "fct_invoice_balances", "mart_unallocated_cash")
REPORTING = tuple(f"rpt_{mart}" for mart in MARTS)
CASH_MODELS = ("intermediate.cash", *MARTS, *REPORTING)
# The unit tests the cash models must keep. A new test is added here too; one that
# disappears from yml (or stops running) fails this module.
PINNED_UNIT_TESTS = {
    "int_cash_allocations_by_reference": {
        "reference_match_needs_the_whole_number_on_the_account",
        "reference_match_spreads_over_named_invoices_earliest_due",
    },
    "int_cash_allocations_by_exact_amount": {
        "exact_amount_pays_the_oldest_invoice_of_that_amount",
        "exact_amount_breaks_ties_on_keys",
    },
    "int_cash_allocations_oldest_first": {
        "oldest_first_settles_the_earliest_due_invoices_first",
        "partial_payment_leaves_the_invoice_partly_open",
        "one_payment_across_several_invoices",
        "oldest_first_breaks_ties_on_keys",
    },
    "int_cash_reversals_followed": {"refund_reverses_the_cash_on_the_invoices_it_reached"},
    "int_cash_credit_notes_applied": {"credit_note_applies_only_what_remains_of_it"},
    "int_cash_unallocated_items": {"overpayment_leaves_the_excess_as_unallocated_cash"},
    "int_cash_payments_unapplied": {"a_charge_an_erp_payment_records_is_the_erp_payments_cash"},
    "int_cash_references_normalized": {
        "an_erp_payment_recording_a_charge_names_the_charges_invoices",
    },
    "int_cash_candidates_ranked": {"candidates_rank_reference_then_amount_then_due_date"},
    "fct_invoice_balances": {
        "chargeback_and_refund_take_back_the_cash_they_concern",
        "gateway_fee_settles_nothing",
    },
    "fct_cash_applications": {"every_application_records_its_rule"},
    "mart_unallocated_cash": {"unallocated_cash_lists_up_to_three_candidates"},
}


def _is_cash_model(name: str) -> bool:
    return name.startswith("int_cash_") or name in MARTS


def _declared_cash_unit_tests() -> dict[str, str]:
    """Unit test name -> model, for every unit test of a cash model in the project's yml."""
    declared: dict[str, str] = {}
    for path in sorted((DBT_PROJECT / "models").rglob("*.yml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for test in document.get("unit_tests") or []:
            if _is_cash_model(test["model"]):
                assert test["name"] not in declared, f"unit test {test['name']} twice"
                declared[test["name"]] = test["model"]
    return declared


def _dbt(tmp: Path, warehouse: Path, *args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"Q2C_WAREHOUSE": str(warehouse), "Q2C_HOME": str(tmp / "home"),
                        "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"}
    command = [str(DBT), *args, "--vars", VARIABLES,
               "--project-dir", str(DBT_PROJECT), "--profiles-dir", str(DBT_PROJECT),
               "--target-path", str(tmp / "target"), "--log-path", str(tmp / "logs")]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Land both sources, build the cash marts and their parents, test the cash models."""
    tmp = tmp_path_factory.mktemp("cash")
    landing = tmp / "landing"
    warehouse = tmp / "warehouse.duckdb"
    with connect(warehouse) as conn:
        for source in SOURCES:
            write_landing(landing, source)
            load_source(conn, landing, source, "run-cash")

    selection = [f"+{model}" for model in (*MARTS, *REPORTING)]
    run = _dbt(tmp, warehouse, "build", "--resource-type", "seed", "--resource-type", "model",
               "--select", *selection)
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]

    results_file = tmp / "target" / "run_results.json"
    results_file.unlink()  # the build's; a test run that breaks down must not reuse it
    tested = _dbt(tmp, warehouse, "test", "--indirect-selection", "cautious",
                  "--select", *CASH_MODELS)
    assert results_file.is_file(), tested.stdout[-6000:] + tested.stderr[-2000:]
    results = json.loads(results_file.read_text(encoding="utf-8"))["results"]
    return {"warehouse": warehouse, "results": results}


def _rows(built: dict, sql: str) -> list[tuple]:
    with duckdb.connect(str(built["warehouse"]), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def D(value: str) -> Decimal:  # noqa: N802
    return Decimal(value)


def _key(*parts: str) -> str:
    """q2c_surrogate_key: md5 of the parts joined with '|'."""
    return hashlib.md5("|".join(parts).encode()).hexdigest()


# ---------------------------------------------------------------------------------------
# dbt's own tests of the cash models
# ---------------------------------------------------------------------------------------
def test_the_declared_cash_unit_tests_are_the_pinned_ones() -> None:
    pinned = {name: model for model, names in PINNED_UNIT_TESTS.items() for name in names}

    assert _declared_cash_unit_tests() == pinned


def test_every_cash_unit_test_ran_and_passed(built: dict) -> None:
    declared = _declared_cash_unit_tests()
    unit = {r["unique_id"].rsplit(".", 1)[-1]: r for r in built["results"]
            if r["unique_id"].startswith("unit_test.")}

    assert sorted(unit) == sorted(declared)
    for name, model in declared.items():
        assert unit[name]["unique_id"] == f"unit_test.q2c.{model}.{name}"
    assert {name: r["status"] for name, r in unit.items() if r["status"] != "pass"} == {}


def test_every_data_test_of_the_cash_models_passes(built: dict) -> None:
    data = [r for r in built["results"] if r["unique_id"].startswith("test.")]
    failed = {r["unique_id"]: (r["status"], r.get("message")) for r in data
              if r["status"] != "pass"}

    assert len(data) > 30
    assert failed == {}


# ---------------------------------------------------------------------------------------
# The allocations made from the fixture
# ---------------------------------------------------------------------------------------
def test_each_allocation_records_the_rule_that_made_it(built: dict) -> None:
    """What each payment and credit note went to, and why (see cash_fixtures.py).

    ERP and gateway records taken as they are: 8006 pays 200 of G-301; ch_1 pays ST-0001
    100, its refund takes back 30 and its fee is 3.20; ch_3 pays ST-0003 60 and the lost
    dispute takes it back; ch_4's fee is 2.50. Credit notes: cn_1 (30) fills what ST-0001
    has open after the refund, 100 - 100 + 30 = 30; cn_2 (80) only the 50 ST-0002 has.
    8001's reference names A-103: 250 (issued 03-01, so allocated then). 8002 (200) has no
    usable reference, and A-102 has exactly 200 open. ch_4 names U-401: 75, and its refund
    re_4 reverses 25 there. Oldest first: 8003 (180) pays A-101 100 and the 300 - 250 = 50
    left on A-103; 8005 (100) pays the B-20x invoice 8004 did not take; ch_5 (20) pays
    ST-0003, reopened by the chargeback. 8004 (150) takes whichever of B-201 and B-202,
    both 150 and due 02-15, has the lower key. ch_6 and ch_7 are the cash of 8009 and 8010,
    which record them: 8009 (40, unapplied) takes the invoice ch_6 names, U-402, by that
    reference (on its own date, 02-27); QuickBooks applied 8010's 30 to U-403.
    """
    rows = _rows(built, """
        select a.allocation_rule, a.allocation_type, coalesce(p.source_id, c.source_id),
            i.invoice_number, a.amount, a.allocated_on, a.is_erp_recorded
        from core.fct_cash_applications as a
        left join core.fct_payments as p on a.payment_key = p.payment_key
        left join core.fct_credit_notes as c on a.credit_note_key = c.credit_note_key
        left join core.fct_invoices as i on a.invoice_key = i.invoice_key
    """)
    first_150 = "B-201" if _key("quickbooks", "9201") < _key("quickbooks", "9202") else "B-202"
    other_150 = {"B-201": "B-202", "B-202": "B-201"}[first_150]
    day = dt.date

    assert sorted(rows, key=repr) == sorted([
        ("erp_application", "payment", "8006", "G-301", D("200"), day(2024, 1, 25), True),
        ("erp_application", "payment", "ch_1", "ST-0001", D("100"), day(2024, 2, 5), True),
        ("erp_application", "refund", "ch_1", "ST-0001", D("-30"), day(2024, 2, 10), True),
        ("gateway_fee", "fee", "ch_1", "ST-0001", D("-3.20"), day(2024, 2, 5), True),
        ("erp_application", "payment", "ch_3", "ST-0003", D("60"), day(2024, 2, 6), True),
        ("erp_application", "chargeback", "ch_3", "ST-0003", D("-60"), day(2024, 2, 20),
         True),
        ("gateway_fee", "fee", "ch_4", None, D("-2.50"), day(2024, 2, 7), True),
        ("credit_note", "credit_note", "cn_1", "ST-0001", D("30"), day(2024, 2, 10), False),
        ("credit_note", "credit_note", "cn_2", "ST-0002", D("50"), day(2024, 2, 12), False),
        ("remittance_reference", "payment", "8001", "A-103", D("250"), day(2024, 3, 1),
         False),
        ("remittance_reference", "payment", "ch_4", "U-401", D("75"), day(2024, 2, 7), False),
        ("payment_reversal", "refund", "ch_4", "U-401", D("-25"), day(2024, 2, 15), False),
        ("exact_amount", "payment", "8002", "A-102", D("200"), day(2024, 2, 6), False),
        ("exact_amount", "payment", "8004", first_150, D("150"), day(2024, 2, 20), False),
        ("oldest_first", "payment", "8003", "A-101", D("100"), day(2024, 2, 10), False),
        ("oldest_first", "payment", "8003", "A-103", D("50"), day(2024, 3, 1), False),
        ("oldest_first", "payment", "8005", other_150, D("100"), day(2024, 2, 20), False),
        ("oldest_first", "payment", "ch_5", "ST-0003", D("20"), day(2024, 2, 25), False),
        ("remittance_reference", "payment", "8009", "U-402", D("40"), day(2024, 2, 27),
         False),
        ("erp_application", "payment", "8010", "U-403", D("30"), day(2024, 2, 28), True),
    ], key=repr)


def test_invoice_balances_are_q2c_own_beside_the_erp_balance(built: dict) -> None:
    """total - paid - credited, never below zero, with the ERP's balance beside it.

    A-101, A-102, A-103 and the first B-20x are paid in full (see the allocations). The
    other B-20x: 150 - 100 = 50. B-203: nothing, 80. G-301: 500 - 200 = 300, as the ERP
    says. U-401: paid 75 - 25 = 50, balance 25, the ERP still says 75. ST-0001: paid 100 -
    30 = 70, credited 30, balance 0. ST-0002: credited 50 of 50. ST-0003: paid 60 - 60 +
    20 = 20, balance 40. U-402: 40 paid once (by 8009, not again by ch_6), balance 0; the
    ERP still says 40. U-403: 30 paid by 8010, balance 0 as the ERP says.
    """
    rows = _rows(built, """
        select invoice_number, currency, total_amount, paid_amount, credited_amount,
            balance_amount, erp_balance_amount, settlement_status
        from core.fct_invoice_balances
    """)
    first_150 = "B-201" if _key("quickbooks", "9201") < _key("quickbooks", "9202") else "B-202"
    other_150 = {"B-201": "B-202", "B-202": "B-201"}[first_150]

    assert sorted(rows) == sorted([
        ("A-101", "EUR", D("100"), D("100"), D("0"), D("0"), D("100"), "paid"),
        ("A-102", "EUR", D("200"), D("200"), D("0"), D("0"), D("200"), "paid"),
        ("A-103", "EUR", D("300"), D("300"), D("0"), D("0"), D("300"), "paid"),
        (first_150, "EUR", D("150"), D("150"), D("0"), D("0"), D("150"), "paid"),
        (other_150, "EUR", D("150"), D("100"), D("0"), D("50"), D("150"), "partially_paid"),
        ("B-203", "EUR", D("80"), D("0"), D("0"), D("80"), D("80"), "open"),
        ("G-301", "EUR", D("500"), D("200"), D("0"), D("300"), D("300"), "partially_paid"),
        ("U-401", "USD", D("75"), D("50"), D("0"), D("25"), D("75"), "partially_paid"),
        ("ST-0001", "USD", D("100"), D("70"), D("30"), D("0"), D("0"), "paid"),
        ("ST-0002", "USD", D("50"), D("0"), D("50"), D("0"), D("0"), "credited"),
        ("ST-0003", "USD", D("60"), D("20"), D("0"), D("40"), D("0"), "partially_paid"),
        ("U-402", "USD", D("40"), D("40"), D("0"), D("0"), D("40"), "paid"),
        ("U-403", "USD", D("30"), D("30"), D("0"), D("0"), D("0"), "paid"),
    ])


def test_unallocated_cash_is_listed_with_candidates_and_reasons(built: dict) -> None:
    """What no invoice took, as of 2024-03-31, with the invoices proposed for it.

    8003: 180 - 100 - 50 = 30 over, qc1 has nothing open left: no candidate; 02-10 to
    03-31 is 19 + 31 = 50 days. 8008 (80, 02-12, 48 days): qc1 had nothing left either;
    its reference names B-203 of qc2, which has exactly 80 open. 8007: QuickBooks applied
    its 50 to invoice 9999, which q2c does not have (01-26, 5 + 29 + 31 = 65 days); G-301
    (300 open) is qc3's. CM-1 (40, 02-01, 28 + 31 = 59 days) names no invoice: G-301 too.
    cn_2: 80 - 50 = 30 (02-12, 48 days); ST-0003 has 40 open on cus_s1.
    """
    rows = _rows(built, """
        select unallocated_kind, source_id, currency, unallocated_amount, unallocated_reason,
            days_unallocated, candidate_count, candidate_1_invoice_number,
            candidate_1_open_amount, candidate_1_reason
        from core.mart_unallocated_cash
    """)
    same_above = "same account and currency; open amount is above the unallocated amount"

    assert sorted(rows) == sorted([
        ("payment", "8003", "EUR", D("30"), "exceeds_open_invoices", 50, 0, None, None, None),
        ("payment", "8008", "EUR", D("80"), "exceeds_open_invoices", 48, 1, "B-203", D("80"),
         "same currency, another account; the reference names its number; open amount "
         "equals the unallocated amount"),
        ("payment", "8007", "EUR", D("50"), "applied_to_unknown_invoice", 65, 1, "G-301",
         D("300"), same_above),
        ("credit_note", "7001", "EUR", D("40"), "names_no_invoice", 59, 1, "G-301", D("300"),
         same_above),
        ("credit_note", "cn_2", "USD", D("30"), "exceeds_named_invoice", 48, 1, "ST-0003",
         D("40"), same_above),
    ])


def test_no_cash_appears_or_disappears(built: dict) -> None:
    """Each payment's amount is what went to invoices as payments plus what is unallocated.

    8003: 180 = 150 + 30; 8007: 50 = 0 + 50; ch_4: 75 = 75 + 0 (its refund reversed on
    U-401 is money returned, not unallocated cash); every other payment is fully applied.
    ch_6 and ch_7 are the cash of the QuickBooks payments that record them (8009: 40 = 40
    + 0; 8010: 30 = 30 + 0): counted there, and nowhere as their own.
    """
    rows = _rows(built, """
        select p.source_id, p.amount,
            coalesce(sum(case when a.allocation_type = 'payment' then a.amount end), 0),
            coalesce(max(u.unallocated_amount), 0)
        from core.fct_payments as p
        left join core.fct_cash_applications as a on p.payment_key = a.payment_key
        left join core.mart_unallocated_cash as u on p.payment_key = u.payment_key
        group by p.source_id, p.amount
    """)
    recorded = {"ch_6": "8009", "ch_7": "8010"}
    amounts = {r[0]: r[1] for r in rows}

    assert len(rows) == 16
    assert [r for r in rows if r[0] not in recorded and r[1] != r[2] + r[3]] == []
    assert {r[0]: (r[2], r[3]) for r in rows if r[3]} == {
        "8003": (D("150"), D("30")), "8007": (D("0"), D("50")), "8008": (D("0"), D("80")),
    }
    assert {r[0]: (r[2], r[3]) for r in rows if r[0] in recorded} == {
        "ch_6": (D("0"), D("0")), "ch_7": (D("0"), D("0"))}
    assert {charge: amounts[charge] == amounts[payment]
            for charge, payment in recorded.items()} == {"ch_6": True, "ch_7": True}


def test_a_charge_an_erp_payment_records_is_allocated_once_as_that_payment(
    built: dict,
) -> None:
    """ch_6 (40.00 USD, names U-402) is recorded by 8009 (reference "ch_6"), ch_7 (30.00,
    payment intent pi_7, names U-403) by 8010 (reference "pi_7"). Each charge is its ERP
    payment's money: the charge is not allocated and not unallocated, and U-402 is paid
    40, not 40 + 40. Without the match, ch_6 would take U-402's 40 by its reference and
    8009's 40 would be left unallocated; ch_7 would be 30 unallocated beyond U-403, which
    8010 had already paid.
    """
    unapplied = _rows(built, """
        select u.payment_id, u.unapplied_amount, p.source_id
        from intermediate.int_cash_payments_unapplied as u
        left join core.fct_payments as p on u.recorded_by_payment_key = p.payment_key
        where u.payment_id in ('ch_6', 'ch_7')
    """)
    charge_rows = _rows(built, """
        select 'applications', count(*) from core.fct_cash_applications
        where payment_key in (select payment_key from core.fct_payments
                             where source_id in ('ch_6', 'ch_7'))
        union all
        select 'unallocated', count(*) from core.mart_unallocated_cash
        where source_id in ('ch_6', 'ch_7')
    """)
    paid = _rows(built, """
        select invoice_number, paid_amount from core.fct_invoice_balances
        where invoice_number in ('U-402', 'U-403')
    """)

    assert sorted(unapplied) == [("ch_6", D("0"), "8009"), ("ch_7", D("0"), "8010")]
    assert sorted(charge_rows) == [("applications", 0), ("unallocated", 0)]
    assert sorted(paid) == [("U-402", D("40")), ("U-403", D("30"))]


def test_reporting_publishes_the_cash_marts_unchanged(built: dict) -> None:
    for mart in MARTS:
        core = _rows(built, f"select * from core.{mart}")
        published = _rows(built, f"select * from reporting.{mart}")

        assert core and sorted(published, key=repr) == sorted(core, key=repr), mart
