"""The portal's records in the warehouse: the dispute rate, dispute resolution (first-contact
resolution) and self-service adoption marts on a seeded set, worked out by hand, and the
dunning mart and worklist that say why an invoice is not reminded.

The set is the collections fixture (`collections_support`: Alpha, Beta, Gamma; business
date 15 March 2026) with portal disputes and events seeded in an operational store, copied
by the nightly's `portal_records` asset and built by one dbt build of the models
downstream of the portal's staging models. Invoices (issue date, total EUR):
December 2025: INV-C1 (Gamma, 800). January 2026: INV-A4 (Alpha, 100), INV-B1 (Beta, 400),
INV-B2 (Beta, 600). February 2026: INV-A1 (Alpha, 1190), INV-A2 (Alpha, 500), INV-A3
(Alpha, 300), INV-C2 (Gamma, 200). Beta's INV-B2 has an open CRM billing dispute (since 20
February).

Seeded portal disputes (UTC):
- D-1 Alpha INV-A1, wrong_amount, line 1: opened 2 March 09:00, resolved by a credit of
  190.00 on 5 March 10:00 without a review (1 staff step).
- D-2 Gamma INV-C2, price_not_as_quoted: opened 3 March, under review 4 March, rejected 10
  March (2 staff steps).
- D-3 Beta INV-B2, duplicate: opened 4 March, open (its invoice key left to the lookup).
- D-4 Gamma INV-C1, not_received: opened 6 March, open.
- D-5 Gamma INV-C2, other: opened 11 March, under review 12 March.
Seeded events beside the disputes' own: Alpha viewed INV-A1 on 20 February, Beta signed
in on 21 February (no self-service), Gamma downloaded INV-C2's PDF on 2 March.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from collections_support import built_warehouse, run_dbt

from q2c import opsdb
from q2c.portal.dispute_inputs import DisputedInvoice, InvoiceLine, load_reasons
from q2c.portal.disputes import CREDITED, REJECTED, DisputeBook
from q2c.portal.events import (
    DOCUMENT_DOWNLOADED,
    INVOICE_VIEWED,
    SELF_SERVICE,
    SIGNED_IN,
    ensure_events,
    record_event,
)

REPO = Path(__file__).resolve().parents[1]
CONTENT = REPO / "content"
PORTAL_MODELS = ["stg_q2c_portal__portal_events+", "stg_q2c_portal__portal_disputes+"]


def _at(day: int, hour: int = 9, month: int = 3) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.moment = _at(1)

    def __call__(self) -> dt.datetime:
        return self.moment


def _invoice(built, number: str, with_key: bool = True) -> DisputedInvoice:
    [(account_key, invoice_id, invoice_key, total)] = built.query(
        "select account_key, invoice_id, invoice_key, total_amount from core.fct_invoices "
        "where invoice_number = ?", [number])
    return DisputedInvoice(account_key, invoice_id, number, "EUR", Decimal(total),
                           invoice_key=invoice_key if with_key else None,
                           lines=(InvoiceLine(1, "Analytics platform", Decimal(total)),))


def _seed(built, store: Path) -> dict[str, str]:
    """The disputes and events of the module docstring; returns the accounts' keys."""
    clock = Clock()
    book = DisputeBook(store, load_reasons(CONTENT), clock=clock)

    def step(moment: dt.datetime, action, *args, **kwargs):
        clock.moment = moment
        return action(*args, **kwargs)

    customer = {"actor": "customer:salesforce:ct1", "language": "en"}
    d1 = step(_at(2), book.open, _invoice(built, "INV-A1"), reason_code="wrong_amount",
              line_number=1, **customer)
    d2 = step(_at(3), book.open, _invoice(built, "INV-C2"),
              reason_code="price_not_as_quoted", **customer)
    step(_at(4), book.open, _invoice(built, "INV-B2", with_key=False),
         reason_code="duplicate", **customer)
    step(_at(4), book.review, d2.dispute_number, "Hank Holder")
    step(_at(5, 10), book.resolve, d1.dispute_number, "Olga Owner", CREDITED,
         amount="190.00")
    step(_at(6), book.open, _invoice(built, "INV-C1"), reason_code="not_received",
         **customer)
    step(_at(10), book.resolve, d2.dispute_number, "Hank Holder", REJECTED,
         reason="The price is the one of the signed order.")
    d5 = step(_at(11), book.open, _invoice(built, "INV-C2"), reason_code="other",
              comment="The discount is missing.", **customer)
    step(_at(12), book.review, d5.dispute_number, "Hank Holder")
    accounts = dict(built.query("select account_name, account_key from core.dim_accounts"))
    invoices = dict(built.query("select invoice_number, invoice_id from core.fct_invoices"))
    with opsdb.connect(store) as conn:
        ensure_events(conn)
        for kind, name, number, moment in (
                (INVOICE_VIEWED, "Alpha Tools GmbH", "INV-A1", _at(20, 10, month=2)),
                (SIGNED_IN, "Beta Foods Ltd", None, _at(21, 10, month=2)),
                (DOCUMENT_DOWNLOADED, "Gamma Retail Inc", "INV-C2", _at(2, 8))):
            record_event(conn, kind, actor="customer:salesforce:ct9",
                         account_key=accounts[name],
                         invoice_id=invoices[number] if number else None, at=moment)
    return accounts


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return built_warehouse(tmp_path_factory.mktemp)


@pytest.fixture(scope="module")
def kpis(built, tmp_path_factory):
    """The seeded store copied by the nightly asset, and the portal's models built: the one
    dbt build of this module."""
    from assets.portal import portal_records
    from orchestration.resources import Q2CSettings

    folder = tmp_path_factory.mktemp("portal-kpis")
    warehouse = built.copy_to(folder)
    store = folder / "ops.sqlite"
    accounts = _seed(built, store)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("Q2C_HOME", str(folder))
        env.setenv("Q2C_OPS_STORE", str(store))
        env.delenv("Q2C_CONFIG", raising=False)
        copied = dg.materialize(
            [portal_records], resources={"q2c": Q2CSettings(warehouse_path=str(warehouse))})
    assert copied.success
    done = run_dbt(folder, warehouse, "build", "--select", *PORTAL_MODELS)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    return type(built)(warehouse, {}), accounts, copied


def _rows(warehouse, sql: str) -> list[tuple]:
    return warehouse.query(sql)


# --- the copy ------------------------------------------------------------------------------

def test_the_nightly_asset_copies_the_events_disputes_and_credit_note_requests(kpis):
    """Events: 5 disputes opened, 2 reviews, 2 resolutions and 3 seeded = 12."""
    warehouse, _, copied = kpis
    counts = {event.asset_key.path[-1]: event.materialization.metadata[
        "dagster/row_count"].value for event in copied.get_asset_materialization_events()}

    assert counts == {"portal_events": 12, "portal_disputes": 5, "credit_note_requests": 1}
    assert _rows(warehouse, "select dispute_number, invoice_number, line_number, currency, "
                            "amount_minor, amount, reason_code from "
                            "q2c_ops.credit_note_requests") == [
        (1, "INV-A1", 1, "EUR", 19000, Decimal("190.0000"), "wrong_amount")]


def test_the_nightly_asset_costs_nothing_without_a_portal(built, tmp_path, monkeypatch):
    from assets.portal import portal_records
    from orchestration.resources import Q2CSettings

    warehouse = built.copy_to(tmp_path)
    monkeypatch.setenv("Q2C_HOME", str(tmp_path))
    monkeypatch.delenv("Q2C_OPS_STORE", raising=False)
    monkeypatch.delenv("Q2C_CONFIG", raising=False)

    result = dg.materialize([portal_records],
                            resources={"q2c": Q2CSettings(warehouse_path=str(warehouse))})

    assert result.success
    assert not (tmp_path / "ops.sqlite").exists()
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        tables = conn.execute("select table_name from information_schema.tables "
                              "where table_schema = 'q2c_ops' and table_name like 'portal%'"
                              ).fetchall()
    assert tables == []


def test_a_warehouse_without_portal_records_builds_with_crm_disputes_only(built):
    """The shared build had no portal: the staging models are empty, fct_disputes holds
    Beta's CRM dispute alone, and the dunning mart suppresses as before."""
    assert built.query("select count(*) from staging.stg_q2c_portal__portal_disputes") == [
        (0,)]
    assert built.query("select channel, invoice_number, status from core.fct_disputes") == [
        ("crm", "INV-B2", "open")]
    assert built.query("select count(*) from kpi.mart_dunning_actions "
                       "where suppressed_reason = 'portal_dispute'") == [(0,)]


# --- the KPI marts -------------------------------------------------------------------------

def test_the_dispute_rate_counts_crm_and_portal_disputes_once_per_invoice(kpis):
    """December: INV-C1 (D-4) of 1 issued: 1 / 1 = 1, 800 of 800. January: INV-B2 (the CRM
    dispute and D-3, once) of INV-A4, INV-B1, INV-B2: 1 / 3 = 0.3333, 600 of 100 + 400 +
    600 = 1100. February: INV-A1 (D-1) and INV-C2 (D-2, D-5, once) of 4: 2 / 4 = 0.5,
    1190 + 200 = 1390 of 1190 + 500 + 300 + 200 = 2190. Every disputed invoice had a portal
    dispute: 1, 1, 2."""
    warehouse, _, _ = kpis

    assert _rows(warehouse, "select issue_month, invoices_issued, invoices_disputed, "
                            "dispute_rate, issued_amount_reporting, disputed_amount_reporting, "
                            "invoices_disputed_in_portal from kpi.kpi_dispute_rate "
                            "order by issue_month") == [
        (dt.date(2025, 12, 1), 1, 1, Decimal("1.0000"), Decimal("800.0000"),
         Decimal("800.0000"), 1),
        (dt.date(2026, 1, 1), 3, 1, Decimal("0.3333"), Decimal("1100.0000"),
         Decimal("600.0000"), 1),
        (dt.date(2026, 2, 1), 4, 2, Decimal("0.5000"), Decimal("2190.0000"),
         Decimal("1390.0000"), 2)]
    assert _rows(warehouse, "select count(*) from reporting.kpi_dispute_rate") == [(3,)]


def test_first_contact_resolution_counts_disputes_resolved_at_the_first_staff_step(kpis):
    """March: D-1 resolved directly (1 step: first contact, 2 to 5 March = 3 days), D-2
    reviewed then rejected (2 steps, 3 to 10 March = 7 days). 1 / 2 = 0.5 over all and over
    the portal; 1 credited, 1 rejected; (3 + 7) / 2 = 5 days. Beta's CRM dispute and D-3,
    D-4, D-5 are not resolved."""
    warehouse, _, _ = kpis

    assert _rows(warehouse, "select resolved_month, disputes_resolved, disputes_measured, "
                            "disputes_resolved_first_contact, first_contact_resolution_rate, "
                            "portal_disputes_resolved, portal_first_contact_resolution_rate, "
                            "credited_count, corrected_count, rejected_count, "
                            "avg_days_to_resolve from kpi.kpi_dispute_resolution") == [
        (dt.date(2026, 3, 1), 2, 2, 1, Decimal("0.5000"), 2, Decimal("0.5000"), 1, 0, 1,
         Decimal("5.0000"))]
    assert _rows(warehouse, "select dispute_number, status, staff_step_count, "
                            "is_first_contact_resolution from core.fct_disputes "
                            "where channel = 'portal' order by dispute_number") == [
        (1, "resolved", 1, True), (2, "resolved", 2, False), (3, "open", 0, None),
        (4, "open", 0, None), (5, "under_review", 1, None)]


def test_self_service_adoption_of_invoiced_accounts_and_invoices(kpis):
    """Self-service events: Alpha's view of INV-A1 (20 February), Gamma's download of
    INV-C2 (2 March) and the five disputes opened (2 to 11 March); Beta's sign-in is none.
    December: Gamma invoiced, no event in December: 0 / 1; INV-C1 disputed (D-4): 1 / 1.
    January: Alpha and Beta invoiced, no event in January: 0 / 2; INV-B2 disputed (D-3) of
    INV-A4, INV-B1, INV-B2: 1 / 3 = 0.3333. February: Alpha and Gamma invoiced, Alpha's
    view in February: 1 / 2 = 0.5; INV-A1 (view, D-1) and INV-C2 (download, D-2, D-5) of 4:
    2 / 4 = 0.5; one self-service event in February, by one account."""
    warehouse, _, _ = kpis

    assert _rows(warehouse, "select month_start, active_account_count, "
                            "self_service_account_count, self_service_account_share, "
                            "invoices_issued, self_service_invoice_count, "
                            "self_service_invoice_share, self_service_event_count, "
                            "self_service_account_total from kpi.kpi_portal_adoption "
                            "order by month_start") == [
        (dt.date(2025, 12, 1), 1, 0, Decimal("0.0000"), 1, 1, Decimal("1.0000"), 0, 0),
        (dt.date(2026, 1, 1), 2, 0, Decimal("0.0000"), 3, 1, Decimal("0.3333"), 0, 0),
        (dt.date(2026, 2, 1), 2, 1, Decimal("0.5000"), 4, 2, Decimal("0.5000"), 1, 1)]
    assert _rows(warehouse, "select kind, count(*) from core.fct_portal_events "
                            "where is_self_service group by kind order by kind") == [
        ("dispute_opened", 5), ("document_downloaded", 1), ("invoice_viewed", 1)]


# --- dunning says why ----------------------------------------------------------------------

def test_the_dunning_mart_and_the_worklist_say_a_portal_dispute_is_open(kpis):
    """INV-C1 (D-4 open) and INV-C2 (D-5 under review): portal_dispute, so Gamma's overdue
    invoices are all suppressed: 'portal dispute open', 2 invoices, ranked after Alpha,
    which can be dunned. INV-B2's CRM dispute comes first (open_dispute), though D-3 is
    open too. INV-A1's D-1 was resolved on 5 March: it is reminded."""
    warehouse, accounts, _ = kpis

    assert _rows(warehouse, "select invoice_number, suppressed_reason, "
                            "has_open_portal_dispute, dunning_action "
                            "from kpi.mart_dunning_actions order by invoice_number") == [
        ("INV-A1", None, False, "remind"), ("INV-A2", None, False, "not_due"),
        ("INV-A3", None, False, "not_due"),
        ("INV-B1", "open_billing_case", False, "suppressed"),
        ("INV-B2", "open_dispute", True, "suppressed"),
        ("INV-C1", "portal_dispute", True, "suppressed"),
        ("INV-C2", "portal_dispute", True, "suppressed")]
    assert _rows(warehouse, "select account_name, priority_rank, suppressed_reason, "
                            "suppressed_reason_text, portal_disputed_invoice_count "
                            "from reporting.kpi_collections_worklist "
                            "order by priority_rank") == [
        ("Alpha Tools GmbH", 1, None, None, 0),
        ("Gamma Retail Inc", 2, "portal_dispute", "portal dispute open", 2),
        ("Beta Foods Ltd", 3, "open_dispute", "dispute open in the CRM", 1)]


def test_the_self_service_kinds_of_dbt_are_the_portal_events_ones():
    macro = (REPO / "dbt_project" / "macros" / "q2c_portal.sql").read_text()
    listed = macro.split("q2c_portal_self_service_kinds", 1)[1].split("]", 1)[0]

    assert set(re.findall(r"'([a-z_]+)'", listed)) == set(SELF_SERVICE)
