"""Dunning: the policy as data, the stage and suppression of each open invoice, and the
reminders sent exactly once through the outbox with a statement of open items attached.

The marts are built for real by dbt from the hand-made CRM and ERP of
`collections_support` (business date 15 March 2026 in Berlin); reminders go to a real SMTP
server on loopback. Stages of the shipped policy: reminder from 3 days past due, second
notice from 14, final notice from 30, hand-over to the account owner from 45.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from email.message import EmailMessage
from io import BytesIO
from pathlib import Path

import pytest
from collections_support import AS_OF, RUN_MOMENT, built_warehouse, run_dbt
from outbox_support import DOMAIN, PDF, SENDER
from pypdf import PdfReader

from q2c import opsdb
from q2c.cli import main as cli_main
from q2c.collections import holds as holds_module
from q2c.collections.actions import DunningAction, DunningError
from q2c.collections.holds import Hold, HoldError, HoldList, export_holds
from q2c.collections.policy import (
    DEFAULT_POLICY_FILE,
    SEED_FILE,
    PolicyError,
    check_content,
    load_policy,
    parse_policy,
)
from q2c.collections.reminders import plan_reminders, run_reminders
from q2c.content.registry import load_registry
from q2c.delivery.audit import read_events
from q2c.delivery.envelope import EMAIL
from q2c.delivery.mail_transport import email_payload
from q2c.delivery.message import build_invoice_email, message_id_for
from q2c.delivery.outbox import (
    Outbox,
    OutboxItem,
    PlannedSend,
    RetryPolicy,
    attempt_key,
    document_key,
)
from q2c.delivery.policy import AccountDelivery
from q2c.invoice_delivery import delivery_channels
from q2c.settings import Seller, Settings, business_date, load_settings
from q2c.warehouse import connect

NO_WAIT = RetryPolicy(max_attempts=1, base_seconds=0.0, max_seconds=0.0,
                      sleep=lambda seconds: None)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return built_warehouse(tmp_path_factory.mktemp)


def _settings(home: Path, warehouse: Path, smtp=None, **changes) -> Settings:
    """Settings of one test: its own store and folders, the built day, the demo seller."""
    settings = load_settings().with_overrides(
        home=home, warehouse_path=warehouse, ops_store_path=home / "ops.sqlite",
        outbox_dir=home / "outbox", portal_dir=home / "portal",
        documents_dir=home / "documents", as_of=AS_OF, seller=Seller(),
        delivery_policy_file=None, dunning_policy_file=None, dunning_enabled=True,
        mail_channel="smtp" if smtp else "eml",
        smtp_host=smtp.host if smtp else "127.0.0.1", smtp_port=smtp.port if smtp else 25,
        smtp_user=None, smtp_password=None, smtp_starttls=False,
    )
    return settings.with_overrides(**changes)


def _action(built, number: str) -> dict:
    rows = built.query(
        "select days_past_due, stage_name, suppressed_reason, dunning_action, is_on_hold, "
        "hold_reason, as_of_date from kpi.mart_dunning_actions where invoice_number = ?",
        [number])
    names = ("days_past_due", "stage", "reason", "action", "on_hold", "hold_reason", "as_of")
    return dict(zip(names, rows[0], strict=True))


def _by_invoice(messages) -> dict[str, EmailMessage]:
    parsed = [message.parsed() for message in messages]
    return {str(m["X-Q2C-Invoice-Number"]): m for m in parsed}


def _pdf_text(message: EmailMessage) -> str:
    attachment = next(message.iter_attachments())
    reader = PdfReader(BytesIO(attachment.get_content()))
    text = "".join(page.extract_text() for page in reader.pages)
    return re.sub(r"\s+", " ", text.replace("\xa0", " ").replace("\u202f", " "))


# --- the policy --------------------------------------------------------------------------

def test_the_shipped_policy_has_four_stages_and_the_seed_dbt_reads_matches_it():
    policy = load_policy()

    assert [(s.name, s.days_past_due, s.audience) for s in policy.stages] == [
        ("reminder", 3, "customer"), ("second_notice", 14, "customer"),
        ("final_notice", 30, "customer"), ("handoff", 45, "account_owner")]
    assert [s.kind for s in policy.stages][0] == "reminder_reminder"
    assert policy.stages[0].follows_customer_policy
    assert policy.stages[2].channels == ("email", "portal")
    assert SEED_FILE.read_text() == policy.seed_csv()
    check_content(policy, load_registry(), on=AS_OF)


@pytest.mark.parametrize(("change", "message"), [
    ({"days_past_due": 0}, "days_past_due is 0; give a whole number of at least 1"),
    ({"days_past_due": 14}, "must come later than second_notice (14 days)"),
    ({"channels": ["edi", "email"]}, "channel(s) edi cannot carry a reminder"),
    ({"templates": {"html": "dunning_email_html"}}, "must name the html and text"),
    ({"when": "always"}, "unknown field(s) when"),
])
def test_a_wrong_stage_is_refused_with_the_stage_named(change, message):
    policy = load_policy()
    stages = [{"name": s.name, "days_past_due": s.days_past_due, "audience": s.audience,
               "templates": {"html": s.html_template, "text": s.text_template},
               "channels": list(s.channels) if s.channels else "customer"}
              for s in policy.stages]
    stages[2].update(change)
    text = (f"version: 2\napproved_by: Credit Control\napproved_at: 2026-12-01T00:00:00Z\n"
            f"effective_from: 2018-01-01\nstages: {stages!r}\n")

    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "policy.yaml")

    assert message in str(caught.value)
    assert "final_notice" in str(caught.value)


def test_a_template_that_is_not_approved_stops_the_policy(tmp_path):
    text = DEFAULT_POLICY_FILE.read_text().replace(
        "dunning_email_html, text: dunning_email_text}\n    channels: [email, portal]",
        "dunning_final_html, text: dunning_email_text}\n    channels: [email, portal]")

    with pytest.raises(PolicyError, match="stage final_notice: template dunning_final_html"):
        check_content(parse_policy(text, "policy.yaml"), load_registry(), on=AS_OF)


# --- days past due and suppression in the mart ------------------------------------------

def test_the_business_day_is_the_sellers_day_at_the_day_boundary():
    """23:30 UTC on 14 March is 00:30 on the 15th in Berlin, still the 14th in New York."""
    assert business_date(RUN_MOMENT, "Europe/Berlin") == dt.date(2026, 3, 15)
    assert business_date(RUN_MOMENT, "UTC") == dt.date(2026, 3, 14)
    assert business_date(RUN_MOMENT, "America/New_York") == dt.date(2026, 3, 14)
    assert AS_OF == dt.date(2026, 3, 15)


def test_days_past_due_count_in_the_sellers_day_and_due_today_is_not_overdue(built):
    """As of 15 March (Berlin): INV-A1 due 12 March is 15 - 12 = 3 days past due, the
    reminder stage (on the UTC day, 14 March, it would be 2 days and no stage yet); INV-A2
    due 15 March is due today, 0 days, not overdue; INV-A3 due 14 March is 1 day past
    due, below the first stage."""
    assert _action(built, "INV-A1") | {"as_of": None} == {
        "days_past_due": 3, "stage": "reminder", "reason": None, "action": "remind",
        "on_hold": False, "hold_reason": None, "as_of": None}
    assert _action(built, "INV-A2")["days_past_due"] == 0
    assert _action(built, "INV-A2")["action"] == "not_due"
    assert _action(built, "INV-A3")["days_past_due"] == 1
    assert _action(built, "INV-A3")["action"] == "not_due"
    assert _action(built, "INV-A1")["as_of"] == dt.date(2026, 3, 15)


def test_an_open_dispute_and_an_open_billing_case_suppress_with_their_reason(built):
    """INV-B1 (28 Feb + 15 = 15 days, second notice) has an open billing question; INV-B2
    (1 Feb, 27 + 15 = 42 days, final notice) has an open billing dispute. INV-C1 (20 Jan,
    11 + 28 + 15 = 54 days) is handed over to its owner; Gamma's technical case closed on
    11 March suppresses nothing."""
    assert (_action(built, "INV-B1")["days_past_due"], _action(built, "INV-B1")["stage"],
            _action(built, "INV-B1")["reason"], _action(built, "INV-B1")["action"]) == (
        15, "second_notice", "open_billing_case", "suppressed")
    assert (_action(built, "INV-B2")["days_past_due"], _action(built, "INV-B2")["stage"],
            _action(built, "INV-B2")["reason"]) == (42, "final_notice", "open_dispute")
    assert (_action(built, "INV-C1")["days_past_due"], _action(built, "INV-C1")["action"]) == (
        54, "hand_over")


def test_promise_hold_and_lapsed_promise_rules_pass_their_unit_tests(built):
    """The dbt unit tests (hand-computed in their yml) ran in the build and passed: a
    current promise suppresses (n8), one in another currency does not (n9), a lapsed one no
    longer does (n10), a hold in force does (n7), a released or ended one does not (n11),
    and fct_promises_to_pay tells current, kept, broken, withdrawn and undated apart."""
    wanted = {
        "unit_test.q2c.mart_dunning_actions."
        "dunning_stage_and_first_suppression_reason_per_open_invoice",
        "unit_test.q2c.mart_dunning_actions."
        "dunning_shows_the_current_promise_and_the_hold_in_force",
        "unit_test.q2c.fct_promises_to_pay.promises_to_pay_current_kept_broken_withdrawn_undated",
    }

    assert {uid: built.results[uid]["status"] for uid in wanted} == dict.fromkeys(
        wanted, "pass")


def test_an_owner_hold_exported_to_the_warehouse_suppresses_the_accounts_invoices(
        built, tmp_path):
    warehouse = built.copy_to(tmp_path)
    holds = HoldList(tmp_path / "ops.sqlite", clock=lambda: RUN_MOMENT)
    gamma = built.query("select account_key from core.dim_accounts "
                        "where account_name = 'Gamma Retail Inc'")[0][0]
    holds.hold(gamma, dt.date(2026, 3, 31), "renewal talks", "Olga Owner",
               account_name="Gamma Retail Inc")
    with opsdb.connect(tmp_path / "ops.sqlite") as store, connect(warehouse) as conn:
        assert export_holds(store, conn) == 1

    done = run_dbt(tmp_path, warehouse, "run", "--select",
                   "stg_q2c_collections__collection_holds", "mart_dunning_actions")
    assert done.returncode == 0, done.stdout[-4000:]
    rebuilt = type(built)(warehouse, {})

    for number in ("INV-C1", "INV-C2"):
        assert (_action(rebuilt, number)["reason"], _action(rebuilt, number)["action"],
                _action(rebuilt, number)["hold_reason"]) == (
            "owner_hold", "suppressed", "renewal talks")
    assert _action(rebuilt, "INV-A1")["action"] == "remind"


# --- planning ----------------------------------------------------------------------------

def _due(invoice_id: str, stage: str, account_key: str | None = "acc-1") -> DunningAction:
    account = None if account_key is None else AccountDelivery(
        account_key=account_key, segment="smb", country="DE", preference=None,
        email="ap@customer.example", email_consent=True, peppol_id=None)
    return DunningAction(
        invoice_key=f"k-{invoice_id}", invoice_id=invoice_id, invoice_number=invoice_id.upper(),
        account_key=account_key, account_name="Customer", currency="EUR",
        open_amount=Decimal("100.00"), due_date=dt.date(2026, 2, 1), days_past_due=42,
        as_of_date=AS_OF, stage_name=stage, stage_audience="customer", action="remind",
        suppressed_reason=None, owner_name="Olga Owner", owner_email="olga@example.com",
        billing_contact_name=None, account=account)


def test_the_plan_queues_each_stage_once_and_never_after_a_later_one():
    """i1's second notice is new; i2's was queued before; i3 already had its final notice
    (an invoice whose due date moved back); i4 has no account; i5's account was held after
    the marts were built."""
    policy = load_policy()
    known = {document_key("i2", "reminder_second_notice"),
             document_key("i3", "reminder_final_notice")}
    held = {"acc-5": Hold(hold_id=1, account_key="acc-5", account_name=None,
                          held_until=dt.date(2026, 3, 31), reason="payment plan",
                          held_by="Olga Owner", held_at=RUN_MOMENT)}
    actions = [_due("i1", "second_notice"), _due("i2", "second_notice"),
               _due("i3", "second_notice"), _due("i4", "second_notice", account_key=None),
               _due("i5", "second_notice", account_key="acc-5")]

    plan = plan_reminders(actions, policy, held, known)

    assert [p.action.invoice_id for p in plan.planned] == ["i1"]
    assert plan.planned[0].document_key == document_key("i1", "reminder_second_notice")
    assert plan.already_queued == ["I2"]
    assert plan.skipped == {"a later stage (final_notice) was already queued": ["I3"],
                            "no account in core.dim_accounts": ["I4"]}
    assert plan.suppressed == {"owner_hold": 1}
    assert document_key("i5", "reminder_second_notice") not in plan.due_keys


# --- reminders through the outbox --------------------------------------------------------

def test_a_reminder_goes_out_once_through_the_outbox_and_not_again_on_rerun(
        built, smtp_server, tmp_path):
    """Due tonight: INV-A1 (reminder to Alpha), INV-C2 (reminder to Gamma) and INV-C1 (54
    days: hand-over to Gamma's owner, Olga). INV-B1 and INV-B2 are suppressed."""
    settings = _settings(tmp_path, built.copy_to(tmp_path), smtp_server)

    first = run_reminders(settings, "run-1", retry=NO_WAIT)
    second = run_reminders(settings, "run-2", retry=NO_WAIT)

    assert first.counts() | {"skipped_by_reason": None} == {
        "enabled": True, "due": 3, "queued_now": 3, "would_queue": 0, "already_queued": 0,
        "sent": 3, "failed_retry": 0, "dead_letter": 0, "cancelled_no_longer_due": 0,
        "suppressed_by_reason": {"open_billing_case": 1, "open_dispute": 1},
        "queued_by_stage": {"reminder": 2, "handoff": 1}, "skipped_by_reason": None}
    assert (second.counts()["queued_now"], second.counts()["sent"],
            second.counts()["already_queued"]) == (0, 0, 3)
    received = sorted((m.rcpt_tos[0], str(m.parsed()["X-Q2C-Invoice-Number"]),
                       str(m.parsed()["X-Q2C-Dunning-Stage"])) for m in smtp_server.messages)
    assert received == [("ap@alpha-tools.example", "INV-A1", "reminder"),
                        ("ap@gamma-retail.example", "INV-C2", "reminder"),
                        ("olga.owner@northwind.example", "INV-C1", "handoff")]

    box = Outbox(settings.ops_store)
    key = document_key("a1", "reminder_reminder")
    with opsdb.connect(settings.ops_store) as store:
        sent = [e for e in read_events(store, key) if e.event == "sent"]
        kinds = sorted(row[0] for row in store.execute("select kind from outbox"))
    assert len(sent) == 1 and sent[0].run_id == "run-1"
    assert kinds == ["reminder_handoff", "reminder_reminder", "reminder_reminder"]
    assert box.verify() == []
    alpha = _by_invoice(smtp_server.messages)["INV-A1"]
    assert alpha["Message-ID"] == message_id_for(attempt_key(key, "email"), "northwind.example")


def test_the_reminder_is_personalized_and_carries_the_statement_of_open_items(
        built, smtp_server, tmp_path):
    """Alpha (German): open INV-A1 1190.00, INV-A2 500.00 and INV-A3 250.50 (300.00 less
    49.50 paid) = 1940.50; CN-A1 leaves 100.00 of credit; balance 1940.50 - 100.00 =
    1840.50. INV-A4 is paid and other accounts' invoices are not Alpha's. Pay by 15 March
    + 7 days = 22 March."""
    settings = _settings(tmp_path, built.copy_to(tmp_path), smtp_server)

    run_reminders(settings, "run-1", retry=NO_WAIT)

    message = _by_invoice(smtp_server.messages)["INV-A1"]
    body = message.get_body(("plain",)).get_content().replace("\xa0", " ")
    assert message["Subject"] == "Zahlungserinnerung: Rechnung INV-A1 von Northwind " \
                                 "Analytics GmbH"
    assert body.startswith("Guten Tag Anna Berg,")
    assert "Bitte überweisen Sie 1.190,00 € bis zum 22.03.2026 unter Angabe von INV-A1." in body
    assert "Saldo: 1.840,50 €." in body
    assert "Olga Owner (olga.owner@northwind.example)" in body
    assert "§ 288" in body  # the German late-payment legal text
    attachment = next(message.iter_attachments())
    assert attachment.get_filename() == "account-statement-2026-03-15.pdf"
    text = _pdf_text(message)
    for item in ("INV-A1", "INV-A2", "INV-A3", "CN-A1", "1.190,00 €", "500,00 €",
                 "250,50 €", "1.940,50 €", "100,00 €", "1.840,50 €"):
        assert item in text, item
    for other in ("INV-A4", "INV-B1", "INV-C1"):
        assert other not in text
    assert Decimal("1190.00") + Decimal("500.00") + Decimal("250.50") - Decimal("100.00") \
        == Decimal("1840.50")


def test_the_hand_over_goes_to_the_account_owner_instead_of_the_customer(
        built, smtp_server, tmp_path):
    """INV-C1, 800.00, 54 days past due: Olga Owner gets it, in English; Gamma's statement
    shows INV-C1 800.00 + INV-C2 200.00 = 1000.00."""
    settings = _settings(tmp_path, built.copy_to(tmp_path), smtp_server)

    run_reminders(settings, "run-1", retry=NO_WAIT)

    to_customer = [m for m in smtp_server.messages
                   if m.rcpt_tos[0].endswith("gamma-retail.example")]
    assert [str(m.parsed()["X-Q2C-Invoice-Number"]) for m in to_customer] == ["INV-C2"]
    handover = _by_invoice(smtp_server.messages)["INV-C1"]
    body = handover.get_body(("plain",)).get_content()
    assert handover["To"] == "olga.owner@northwind.example"
    # A subject longer than one header line is folded after `Subject:`; unfolded, it reads:
    assert str(handover["Subject"]).strip() == (
        "Collections hand-over: Gamma Retail Inc, invoice INV-C1, 54 days overdue")
    assert body.startswith("Hello Olga Owner,")
    assert "(€800.00, due on Jan 20, 2026) is 54 days overdue" in body
    assert "Billing contact: Cora Cole (ap@gamma-retail.example)." in body
    assert "balance: €1,000.00." in body


def test_a_hold_set_after_queueing_cancels_the_accounts_reminders_and_the_rest_go_out(
        built, smtp_server, tmp_path):
    """The mail server is down at the first run: the three reminders wait (failed_retry).
    Olga then holds Gamma: the next run cancels INV-C1's and INV-C2's reminders and sends
    only INV-A1's."""
    settings = _settings(tmp_path, built.copy_to(tmp_path), smtp_server)
    smtp_server.stop()
    first = run_reminders(settings, "run-1", retry=NO_WAIT)
    gamma = built.query("select account_key from core.dim_accounts "
                        "where account_name = 'Gamma Retail Inc'")[0][0]
    HoldList(settings.ops_store, clock=lambda: RUN_MOMENT).hold(
        gamma, dt.date(2026, 3, 31), "payment plan agreed", "Olga Owner")
    smtp_server.start()

    second = run_reminders(settings, "run-2", retry=NO_WAIT)

    assert (first.counts()["queued_now"], first.counts()["sent"],
            first.counts()["failed_retry"]) == (3, 0, 3)
    assert second.counts()["suppressed_by_reason"]["owner_hold"] == 2
    assert (second.counts()["cancelled_no_longer_due"], second.counts()["sent"]) == (2, 1)
    assert [str(m.parsed()["X-Q2C-Invoice-Number"]) for m in smtp_server.messages] == [
        "INV-A1"]
    assert Outbox(settings.ops_store).status_counts()["cancelled"] == 2


def _invoice_email(invoice_id: str, number: str, to: str) -> OutboxItem:
    """The invoice document of `invoice_id` by email, as the invoice delivery queues it."""
    key = attempt_key(document_key(invoice_id), EMAIL)
    message = build_invoice_email(
        invoice_number=number, recipient=to, sender=SENDER, subject=f"Invoice {number}",
        html_body=f"<p>Invoice {number}</p>", text_body=f"Invoice {number}", pdf_bytes=PDF,
        pdf_filename=f"{number}.pdf", message_id_domain=DOMAIN, idempotency_key=key)
    send = PlannedSend(EMAIL, to, email_payload(message), f"{number}.eml", "message/rfc822")
    return OutboxItem(invoice_id=invoice_id, invoice_number=number, document_id=f"pdf-{number}",
                      account_key=None, plan=(send,))


def test_a_reminder_no_longer_due_is_never_sent_by_the_invoice_run_or_the_dunning_run(
        built, smtp_server, tmp_path):
    """The mail server is down at the first dunning run: INV-A1's and INV-C2's reminders and
    INV-C1's hand-over wait for a retry. A later run claimed INV-C2's reminder and stopped
    (its lease long expired: in doubt). INV-C2's invoice document is queued too. Then
    Gamma pays INV-C2 (ERP balance 200.00 -> 0.00) and the marts are rebuilt.

    The invoice delivery run comes first at night: it claims invoice documents only, so it
    sends INV-C2's invoice and none of the three reminders, not even the one in doubt. The
    dunning run then plans INV-A1 and INV-C1 (both already queued; INV-C2 is no longer
    open) and sends those two; INV-C2's reminder, claimed in doubt, is checked at send
    time, kept back as not due and goes back to queued. 1 invoice + 2 reminders reach the
    mail server, and no reminder of INV-C2.
    """
    warehouse = built.copy_to(tmp_path)
    settings = _settings(tmp_path, warehouse, smtp_server)
    smtp_server.stop()
    first = run_reminders(settings, "run-1", retry=NO_WAIT)
    box = Outbox(settings.ops_store)
    c2_reminder = document_key("c2", "reminder_reminder")
    with opsdb.connect(settings.ops_store) as store:
        store.execute("update outbox set status = 'claimed', claimed_by = 'run-0/1/stopped', "
                      "lease_expires_at = '2026-03-14T00:00:00.000000Z' "
                      "where document_key = ?", (c2_reminder,))
        store.commit()
    box.enqueue([_invoice_email("c2", "INV-C2", "ap@gamma-retail.example")], "invoice-run")
    with connect(warehouse) as conn:
        conn.execute("update raw_quickbooks.invoice set balance = '0.00' where id = 'c2'")
    rebuilt = run_dbt(tmp_path, warehouse, "run", "--select", "fct_invoices",
                      "mart_dunning_actions")
    assert rebuilt.returncode == 0, rebuilt.stdout[-4000:]
    smtp_server.start()

    invoice_run = box.process(delivery_channels(settings), "invoice-run", retry=NO_WAIT)
    invoice_mail = [str(m.parsed()["X-Q2C-Invoice-Number"]) for m in smtp_server.messages]
    second = run_reminders(settings, "run-2", retry=NO_WAIT)

    assert (first.counts()["queued_now"], first.counts()["failed_retry"]) == (3, 3)
    assert invoice_run.counts()["sent"] == 1 and invoice_mail == ["INV-C2"]
    assert (second.counts()["due"], second.counts()["already_queued"],
            second.counts()["sent"]) == (2, 2, 2)
    assert second.outbox.counts()["held"] == 1
    reminders = sorted((str(m.parsed()["X-Q2C-Invoice-Number"]),
                        str(m.parsed()["X-Q2C-Dunning-Stage"]))
                       for m in smtp_server.messages[1:])
    assert reminders == [("INV-A1", "reminder"), ("INV-C1", "handoff")]
    with opsdb.connect(settings.ops_store) as store:
        (status,) = store.execute("select status from outbox where document_key = ?",
                                  (c2_reminder,)).fetchone()
        events = read_events(store, c2_reminder)
    assert status == "queued"
    assert [e.event for e in events if e.event in ("sent", "held")] == ["held"]
    assert "no longer due tonight" in next(e.detail for e in events if e.event == "held")


def test_with_dunning_off_the_run_says_what_it_would_queue_and_sends_nothing(built, tmp_path):
    settings = _settings(tmp_path, built.copy_to(tmp_path), dunning_enabled=False)

    report = run_reminders(settings, "run-1")

    assert (report.counts()["would_queue"], report.counts()["queued_now"]) == (3, 0)
    assert sum(Outbox(settings.ops_store).status_counts().values()) == 0


def test_a_seed_that_no_longer_matches_the_policy_stops_the_reminders(built, tmp_path):
    changed = tmp_path / "policy.yaml"
    changed.write_text(DEFAULT_POLICY_FILE.read_text().replace(
        "days_past_due: 14", "days_past_due: 10"))
    settings = _settings(tmp_path, built.copy_to(tmp_path), dunning_policy_file=changed)

    with pytest.raises(DunningError, match="q2c collections policy --write-seed"):
        run_reminders(settings, "run-1")

    assert sum(Outbox(settings.ops_store).status_counts().values()) == 0


def test_marts_built_for_another_day_stop_the_reminders(built, tmp_path):
    settings = _settings(tmp_path, built.copy_to(tmp_path), as_of=dt.date(2026, 3, 16))

    with pytest.raises(DunningError, match="built for 2026-03-15, not for 2026-03-16"):
        run_reminders(settings, "run-1")


# --- the hold command --------------------------------------------------------------------

def test_the_hold_command_holds_an_account_by_name_and_copies_it_to_the_warehouse(
        built, tmp_path, monkeypatch, capsys):
    warehouse = built.copy_to(tmp_path)
    monkeypatch.setenv("Q2C_HOME", str(tmp_path))
    monkeypatch.setenv("Q2C_WAREHOUSE", str(warehouse))
    monkeypatch.delenv("Q2C_OPS_STORE", raising=False)
    monkeypatch.delenv("Q2C_CONFIG", raising=False)
    until = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).date()

    code = cli_main(["collections", "hold", "Gamma Retail Inc", "--until", until.isoformat(),
                     "--reason", "renewal talks", "--by", "Olga Owner"])
    listed = cli_main(["collections", "holds", "--all"])

    assert (code, listed) == (0, 0)
    out = capsys.readouterr().out
    assert "Held: hold 1 on Gamma Retail Inc" in out and "renewal talks" in out
    with connect(warehouse, read_only=True) as conn:
        copied = conn.execute("select account_name, held_until, reason, held_by "
                              "from q2c_ops.collection_holds").fetchall()
    assert copied == [("Gamma Retail Inc", until, "renewal talks", "Olga Owner")]
    assert cli_main(["collections", "hold", "Nobody GmbH", "--until", until.isoformat(),
                     "--reason", "x", "--by", "y"]) == 2


def test_the_holds_are_copied_before_dbt_builds_the_dunning_mart_and_reminders_go_last():
    import dagster as dg

    from assets.cash import COLLECTION_HOLDS_KEY, DUNNING_REMINDERS_KEY
    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    holds = graph.get(dg.AssetKey(["staging", "stg_q2c_collections__collection_holds"]))
    reminders = graph.get(DUNNING_REMINDERS_KEY)

    assert holds.parent_keys == {COLLECTION_HOLDS_KEY}
    assert reminders.parent_keys == {dg.AssetKey(["kpi", "mart_dunning_actions"]),
                                     dg.AssetKey(["q2c_ops", "outbox"])}


# --- holds: plain text only, on the seller's days -----------------------------------------

HOLD_KEY = "0123456789abcdef0123456789abcdef"
# 22:30 UTC on 10 June 2026 is 00:30 on 11 June in Berlin (summer time, UTC+2): the
# seller's day is the 11th while the UTC day is still the 10th.
LATE = dt.datetime(2026, 6, 10, 22, 30, tzinfo=dt.UTC)
BERLIN = "Europe/Berlin"


@pytest.mark.parametrize(("reason", "by", "message"), [
    ("renewal\x1b[2J talks", "Olga", "--reason holds the control character U+001B at "
                                     "position 8"),
    ("renewal talks", "Olga\r\nroot", "--by holds the control character U+000D"),
    ("renewal\ttalks", "Olga", "U+0009"),
    ("paid \u202eeuqehc yb", "Olga", "U+202E"),
    ("x" * 501, "Olga", "--reason is 501 characters long; keep it to 500"),
    ("renewal talks", "O" * 101, "--by is 101 characters long; keep it to 100"),
])
def test_a_hold_reason_or_name_that_is_not_one_line_of_plain_text_is_refused(
        tmp_path, reason, by, message):
    holds = HoldList(tmp_path / "ops.sqlite", clock=lambda: RUN_MOMENT)

    with pytest.raises(HoldError, match=re.escape(message)):
        holds.hold(HOLD_KEY, dt.date(2026, 3, 31), reason, by)

    assert holds.holds() == []


def test_a_reason_of_500_characters_is_kept_whole(tmp_path):
    holds = HoldList(tmp_path / "ops.sqlite", clock=lambda: RUN_MOMENT)

    hold = holds.hold(HOLD_KEY, dt.date(2026, 3, 31), "r" * 500, "Olga Owner")

    assert len(hold.reason) == 500 and holds.holds()[0].reason == "r" * 500


def _cli_env(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("Q2C_HOME", str(tmp_path))
    monkeypatch.setenv("Q2C_WAREHOUSE", str(tmp_path / "warehouse.duckdb"))
    for name in ("Q2C_OPS_STORE", "Q2C_CONFIG", "Q2C_DUNNING_POLICY", "Q2C_AS_OF"):
        monkeypatch.delenv(name, raising=False)


def test_the_hold_command_refuses_control_characters_before_storing_anything(
        tmp_path, monkeypatch, capsys):
    _cli_env(monkeypatch, tmp_path)

    code = cli_main(["collections", "hold", HOLD_KEY, "--until", "2099-12-31",
                     "--reason", "talks\x1b]0;owned\x07", "--by", "Olga"])

    assert code == 2
    err = capsys.readouterr().err
    assert "--reason holds the control character U+001B at position 6" in err
    assert "\x1b" not in err
    assert HoldList(tmp_path / "ops.sqlite").holds() == []


def test_the_holds_list_prints_stored_control_characters_escaped(
        tmp_path, monkeypatch, capsys):
    """A row written before the check (or by hand) cannot recolour the terminal."""
    _cli_env(monkeypatch, tmp_path)
    HoldList(tmp_path / "ops.sqlite")
    with opsdb.connect(tmp_path / "ops.sqlite") as store:
        store.execute(
            "insert into collection_holds (account_key, account_name, held_until, reason, "
            "held_by, held_at) values (?, ?, '2099-12-31', ?, ?, '2026-03-01T09:00:00Z')",
            (HOLD_KEY, "Acme\u202eCorp", "talks\x1b[31m red", "Olga\r\nroot"))

    assert cli_main(["collections", "holds", "--all"]) == 0

    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out and "\u202e" not in out
    assert "Acme\\u202eCorp: talks\\x1b[31m red" in out
    assert "Olga\\r\\nroot" in out


def test_a_hold_ends_and_starts_on_the_sellers_day_not_the_utc_day(tmp_path):
    """At 00:30 on 11 June in Berlin a hold until 10 June is past, even though it is still
    the 10th in UTC; one set now counts from the 11th."""
    holds = HoldList(tmp_path / "ops.sqlite", clock=lambda: LATE, timezone=BERLIN)

    with pytest.raises(HoldError, match=r"--until 2026-06-10 is already past \(it is "
                                        r"2026-06-11 for the seller\)"):
        holds.hold(HOLD_KEY, dt.date(2026, 6, 10), "trade fair", "Bob")
    hold = holds.hold(HOLD_KEY, dt.date(2026, 6, 11), "trade fair", "Bob")

    assert hold.held_on == dt.date(2026, 6, 11)
    assert (hold.in_force_on(dt.date(2026, 6, 10)), hold.in_force_on(dt.date(2026, 6, 11))) == (
        False, True)


def test_a_release_uses_the_sellers_day_too(tmp_path):
    """acc-1's hold ended on 10 June, so at 00:30 on the 11th (Berlin) there is nothing to
    release; acc-2's, released then, was in force through the 10th and not on the 11th."""
    store = tmp_path / "ops.sqlite"
    morning = dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.UTC)
    earlier = HoldList(store, clock=lambda: morning, timezone=BERLIN)
    earlier.hold("acc-1", dt.date(2026, 6, 10), "trade fair", "Bob")
    earlier.hold("acc-2", dt.date(2026, 6, 30), "renewal talks", "Olga")
    late = HoldList(store, clock=lambda: LATE, timezone=BERLIN)

    with pytest.raises(LookupError, match="account acc-1 has no hold in force"):
        late.release("acc-1", "Bob", "paid")
    (released,) = late.release("acc-2", "Olga", "signed")

    assert released.released_on == dt.date(2026, 6, 11)
    assert sorted(late.in_force(dt.date(2026, 6, 10))) == ["acc-1", "acc-2"]
    assert late.in_force(dt.date(2026, 6, 11)) == {}


def test_the_hold_command_counts_in_the_sellers_time_zone(tmp_path, monkeypatch, capsys):
    """The demo seller is in Berlin: at 22:30 UTC on 10 June the command refuses a hold
    until the 10th and records one until the 11th as set on the 11th."""
    _cli_env(monkeypatch, tmp_path)
    monkeypatch.setattr(holds_module, "_now", lambda: LATE)

    past = cli_main(["collections", "hold", HOLD_KEY, "--until", "2026-06-10",
                     "--reason", "trade fair", "--by", "Bob"])
    today = cli_main(["collections", "hold", HOLD_KEY, "--until", "2026-06-11",
                      "--reason", "trade fair", "--by", "Bob"])

    assert (past, today) == (2, 0)
    assert "is already past (it is 2026-06-11 for the seller)" in capsys.readouterr().err
    with opsdb.connect(tmp_path / "ops.sqlite") as store:
        rows = store.execute("select held_on, held_until from collection_holds").fetchall()
    assert [tuple(row) for row in rows] == [("2026-06-11", "2026-06-11")]


# --- the policy command checks the content, as the reminder run does ---------------------

def test_the_policy_command_refuses_a_template_the_registry_does_not_have(
        tmp_path, monkeypatch, capsys):
    _cli_env(monkeypatch, tmp_path)
    changed = tmp_path / "policy.yaml"
    changed.write_text(DEFAULT_POLICY_FILE.read_text().replace(
        "{html: dunning_handoff_email_html,", "{html: dunning_handoff_missing_html,"))
    monkeypatch.setenv("Q2C_DUNNING_POLICY", str(changed))

    code = cli_main(["collections", "policy"])

    out, err = capsys.readouterr()
    assert code == 2 and "matches the policy" not in out
    assert "stage handoff: template dunning_handoff_missing_html" in err


def test_the_policy_command_passes_the_shipped_policy(tmp_path, monkeypatch, capsys):
    _cli_env(monkeypatch, tmp_path)

    assert cli_main(["collections", "policy"]) == 0

    out = capsys.readouterr().out
    assert "Every stage's templates are approved and in force" in out
    assert "matches the policy." in out
