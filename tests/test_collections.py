"""The collections worklist: whom to call first, and what is going on with each account.

Built for real by dbt from the hand-made CRM and ERP of `collections_support` (business
date 15 March 2026, reporting currency EUR at rate 1, large overdue amount 10000). The
risk score is 40 x min(days overdue, 90) / 90 + 25 x min(average days late, 60) / 60 + 15
for a broken promise + 20 x min(overdue amount, 10000) / 10000, rounded to cents.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from collections_support import built_warehouse

WORKLIST_COLUMNS = (
    "account_name", "priority_rank", "risk_score", "max_days_overdue", "avg_days_late",
    "overdue_amount_reporting", "suppressed_reason", "dunning_stage", "reminders_due_count",
    "suppressed_invoice_count",
)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return built_warehouse(tmp_path_factory.mktemp)


def _worklist(built, columns: tuple[str, ...]) -> dict[str, dict]:
    rows = built.query(f"select {', '.join(columns)} from kpi.kpi_collections_worklist "
                       "order by priority_rank")
    return {row[0]: dict(zip(columns, row, strict=True)) for row in rows}


def test_the_worklist_ranks_accounts_that_can_be_dunned_first_by_risk(built):
    """Gamma: INV-C1 54 days, INV-C2 10 days, 800 + 200 = 1000 overdue: 40 x 54 / 90 (24)
    + 20 x 1000 / 10000 (2) = 26.00, rank 1. Alpha: INV-A1 3 days and INV-A3 1 day, 1190
    + 250.50 = 1440.50 overdue, INV-A4 paid 10 days late: 40 x 3 / 90 (1.333) + 25 x 10 /
    60 (4.167) + 20 x 1440.50 / 10000 (2.881) = 8.38, rank 2. Beta: INV-B2 42 days, 400 +
    600 = 1000: 40 x 42 / 90 (18.667) + 2 = 20.67, but both its overdue invoices are
    suppressed (INV-B2 by the dispute, which comes first, INV-B1 by the billing case), so
    it ranks after the accounts that can be dunned: rank 3."""
    worklist = _worklist(built, WORKLIST_COLUMNS)

    assert list(worklist) == ["Gamma Retail Inc", "Alpha Tools GmbH", "Beta Foods Ltd"]
    assert worklist["Gamma Retail Inc"] == {
        "account_name": "Gamma Retail Inc", "priority_rank": 1, "risk_score": Decimal("26.00"),
        "max_days_overdue": 54, "avg_days_late": None,
        "overdue_amount_reporting": Decimal("1000.0000"), "suppressed_reason": None,
        "dunning_stage": "handoff", "reminders_due_count": 2, "suppressed_invoice_count": 0}
    assert worklist["Alpha Tools GmbH"] == {
        "account_name": "Alpha Tools GmbH", "priority_rank": 2, "risk_score": Decimal("8.38"),
        "max_days_overdue": 3, "avg_days_late": Decimal("10.00"),
        "overdue_amount_reporting": Decimal("1440.5000"), "suppressed_reason": None,
        "dunning_stage": "reminder", "reminders_due_count": 1, "suppressed_invoice_count": 0}
    assert worklist["Beta Foods Ltd"] == {
        "account_name": "Beta Foods Ltd", "priority_rank": 3, "risk_score": Decimal("20.67"),
        "max_days_overdue": 42, "avg_days_late": None,
        "overdue_amount_reporting": Decimal("1000.0000"), "suppressed_reason": "open_dispute",
        "dunning_stage": "final_notice", "reminders_due_count": 0,
        "suppressed_invoice_count": 2}
    parts = built.query("select lateness_points, history_points, promise_points, "
                        "exposure_points from kpi.kpi_collections_worklist "
                        "where account_name = 'Alpha Tools GmbH'")
    assert parts == [(Decimal("1.333333"), Decimal("4.166667"), Decimal("0.000000"),
                      Decimal("2.881000"))]


def test_the_worklist_carries_the_relationship_context_from_the_crm(built):
    """Owners, parents and contacts from Salesforce; cases known on 15 March: Alpha's open
    technical case of 9 March (a support case, no billing case); Beta's billing question
    and billing dispute (both billing cases, one a dispute), the latest of 2 March;
    Gamma's technical case closed on 11 March (none open, last interaction 10 March).
    Payment history: Alpha's INV-A4, due 31 January, paid 10 February: 1 paid, 10 days."""
    columns = ("account_name", "owner_name", "owner_email", "billing_contact_name",
               "parent_account_name", "parent_owner_name", "open_support_case_count",
               "open_billing_case_count", "open_dispute_count", "last_interaction_date",
               "last_interaction_type", "paid_invoice_count", "promise_count",
               "open_invoice_count", "open_amount")
    worklist = _worklist(built, columns)

    assert worklist["Alpha Tools GmbH"] == {
        "account_name": "Alpha Tools GmbH", "owner_name": "Olga Owner",
        "owner_email": "olga.owner@northwind.example", "billing_contact_name": "Anna Berg",
        "parent_account_name": "Alpha Holding AG", "parent_owner_name": "Hank Holder",
        "open_support_case_count": 1, "open_billing_case_count": 0, "open_dispute_count": 0,
        "last_interaction_date": dt.date(2026, 3, 9), "last_interaction_type": "case",
        "paid_invoice_count": 1, "promise_count": 0, "open_invoice_count": 3,
        "open_amount": Decimal("1940.5000")}
    beta = worklist["Beta Foods Ltd"]
    assert (beta["owner_name"], beta["open_support_case_count"],
            beta["open_billing_case_count"], beta["open_dispute_count"],
            beta["last_interaction_date"]) == (
        "Hank Holder", 2, 2, 1, dt.date(2026, 3, 2))
    gamma = worklist["Gamma Retail Inc"]
    assert (gamma["open_support_case_count"], gamma["last_interaction_date"],
            gamma["parent_account_name"]) == (0, dt.date(2026, 3, 10), None)


def test_the_worklist_and_promise_unit_tests_pass(built):
    """Promises to pay (current, kept, broken) and the ranking with payment history are
    pinned by dbt unit tests whose expected rows are worked out by hand in their yml: the
    build ran them and they passed."""
    wanted = {
        "unit_test.q2c.kpi_collections_worklist."
        "collections_worklist_open_items_owner_and_cases_per_account",
        "unit_test.q2c.kpi_collections_worklist."
        "collections_worklist_ranked_by_risk_history_promises_dunning",
        "unit_test.q2c.fct_promises_to_pay.promises_to_pay_current_kept_broken_withdrawn_undated",
    }

    assert {uid: built.results[uid]["status"] for uid in wanted} == dict.fromkeys(
        wanted, "pass")


def test_every_data_test_of_the_collections_models_passes_on_the_fixture(built):
    failed = {uid: result["status"] for uid, result in built.results.items()
              if result["status"] != "pass"}

    assert failed == {}
    assert any(uid.startswith("test.q2c.unique_kpi_collections_worklist_priority_rank")
               for uid in built.results)


def test_the_reporting_view_publishes_every_worklist_column_unchanged(built):
    """reporting.kpi_collections_worklist is what BI reads: the same columns as the mart,
    in its order (rank, risk score and its parts, payment history, promises, dunning and
    why it is suppressed included), and the same three rows."""
    def columns(schema: str) -> list[str]:
        return [row[0] for row in built.query(
            "select column_name from information_schema.columns where table_schema = ? "
            "and table_name = 'kpi_collections_worklist' order by ordinal_position", [schema])]

    published = built.query("select * from reporting.kpi_collections_worklist "
                            "order by priority_rank")

    assert columns("reporting") == columns("kpi")
    assert {"priority_rank", "risk_score", "avg_days_late", "paid_invoice_count",
            "kept_promise_count", "current_promise_date", "suppressed_reason",
            "dunning_stage"} <= set(columns("reporting"))
    assert published == built.query("select * from kpi.kpi_collections_worklist "
                                    "order by priority_rank")
    assert len(published) == 3

