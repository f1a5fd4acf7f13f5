"""Review before sending: the policy, the queue and its gate, the command, and the SLA mart.

The SLA scenario below is used twice, through the queue API and as the dbt unit test in
`_review__models.yml`, with the same hand-computed result. SLA 24 h, as of 2026-06-30 12:00
UTC:

- June: j1 (8 h), j2 (exactly 24 h, the boundary is met) and j3 (1 h) approved in time, j4
  after 30 h; j5 pending since 06-10 (SLA missed); j6 rejected and j7 pending within its SLA
  (both outside the denominator); j8 queued after the as-of moment (not counted at all).
  share = 3 / (4 approved + 1 pending past SLA) = 0.6000; mean hours to approval
  (8 + 24 + 1 + 30) / 4 = 15.75.
- May: m1 approved after 8 h; m2 approved only after the as-of moment, so pending past
  its SLA then: share = 1/2 = 0.5000, mean 8.00 h.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from q2c.cli import main
from q2c.opsdb import connect
from q2c.review import (
    AlreadyDecidedError,
    ReviewCandidate,
    ReviewError,
    ReviewPolicyError,
    ReviewQueue,
    ReviewRequirement,
    UnknownInvoiceError,
    evaluate,
    export_review,
    load_policy,
)
from q2c.review.candidates import load_candidates

REPO = Path(__file__).resolve().parents[1]
DBT = Path(sys.executable).parent / "dbt"
UTC = dt.UTC

POLICY_YAML = """
version: "test-1"
sla_hours: 24
rules:
  - id: large_amount
    kind: amount_above
    amounts: {EUR: "10000.00", USD: "12000.00", JPY: "1500000", KWD: "3000.000"}
  - id: first_invoice
    kind: first_invoice_of_customer
  - id: credit_note
    kind: document_kind
    kinds: [credit_note]
  - id: on_hold
    kind: customer_on_hold
    accounts: [acct-hold, erp-77]
"""


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def candidate(invoice_id: str, **changes: object) -> ReviewCandidate:
    """A clean invoice (nothing to review) unless `changes` say otherwise."""
    fields: dict[str, object] = dict(
        invoice_id=invoice_id, invoice_number=f"INV-{invoice_id}", account_key="acct-1",
        document_kind="invoice", currency="EUR", total=Decimal("500.00"),
        issue_date=dt.date(2026, 6, 1), is_first_invoice=False, customer_on_hold=False,
        account_name="Acme GmbH",
    )
    return ReviewCandidate(**(fields | changes))


@pytest.fixture
def policy(tmp_path: Path):
    path = tmp_path / "review_policy.yaml"
    path.write_text(POLICY_YAML)
    return load_policy(path)


@pytest.fixture
def queue(tmp_path: Path) -> ReviewQueue:
    return ReviewQueue(tmp_path / "ops.sqlite")


# ---------------------------------------------------------------------------------------
# Policy
# ---------------------------------------------------------------------------------------
def test_each_rule_fires_with_its_reason_and_a_clean_invoice_does_not(policy) -> None:
    candidates = [
        candidate("clean"),
        candidate("eur-at-limit", total=Decimal("10000.00")),
        candidate("eur-above", total=Decimal("10000.01")),
        candidate("usd-below", currency="USD", total=Decimal("11999.99")),
        candidate("jpy-above", currency="JPY", total=Decimal("1500001")),
        candidate("kwd-above", currency="KWD", total=Decimal("3000.001")),
        candidate("chf-unlisted", currency="CHF", total=Decimal("99999999.00")),
        candidate("big-credit", document_kind="credit_note", total=Decimal("-20000.00")),
        candidate("first", is_first_invoice=True),
        candidate("hold-key", account_key="acct-hold"),
        candidate("hold-erp", erp_customer_id="erp-77"),
        candidate("hold-flag", customer_on_hold=True),
    ]

    requirements = evaluate(candidates, policy)

    assert requirements == [
        ReviewRequirement("eur-above", (
            "large_amount: total 10000.01 EUR is above 10000.00 EUR",)),
        ReviewRequirement("jpy-above", (
            "large_amount: total 1500001 JPY is above 1500000 JPY",)),
        ReviewRequirement("kwd-above", (
            "large_amount: total 3000.001 KWD is above 3000.000 KWD",)),
        ReviewRequirement("big-credit", (
            "large_amount: total -20000.00 EUR is beyond 10000.00 EUR in absolute value",
            "credit_note: every credit note is reviewed")),
        ReviewRequirement("first", ("first_invoice: first invoice of this customer",)),
        ReviewRequirement("hold-key", (
            "on_hold: customer acct-hold is on hold (listed in the policy)",)),
        ReviewRequirement("hold-erp", (
            "on_hold: customer erp-77 is on hold (listed in the policy)",)),
        ReviewRequirement("hold-flag", ("on_hold: customer is on hold (account flag)",)),
    ]
    assert requirements[3].rule_ids == ("large_amount", "credit_note")


def test_the_packaged_policy_reads_its_amounts_exactly() -> None:
    policy = load_policy()

    amounts = policy.rules[0].thresholds
    assert policy.sla_hours == 24
    assert [rule.id for rule in policy.rules] == [
        "large_amount", "first_invoice", "credit_note", "customer_on_hold"]
    assert {code: amounts[code] for code in ("EUR", "USD", "JPY", "KWD")} == {
        "EUR": Decimal("10000.00"), "USD": Decimal("12000.00"),
        "JPY": Decimal("1500000"), "KWD": Decimal("3000.000"),
    }
    assert len(policy.sha256) == 64


@pytest.mark.parametrize(("broken", "named"), [
    ('EUR: "10000.001"', ["large_amount", "amounts.EUR", "more decimals than EUR allows (2)"]),
    ('JPY: "1500000.5"', ["large_amount", "amounts.JPY", "more decimals than JPY allows (0)"]),
    ("EUR: 10000.50", ["large_amount", "amounts.EUR", "quoted text"]),
    ('EURO: "1.00"', ["large_amount", "amounts.EURO", "not an ISO 4217"]),
    ('EUR: "-5.00"', ["large_amount", "amounts.EUR", "0 or more"]),
    ('EUR: "ten"', ["large_amount", "amounts.EUR", "not a decimal amount"]),
])
def test_a_bad_amount_is_refused_naming_file_rule_and_field(
    tmp_path: Path, broken: str, named: list[str]
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        f"sla_hours: 24\nrules:\n  - id: large_amount\n    kind: amount_above\n"
        f"    amounts:\n      {broken}\n"
    )

    with pytest.raises(ReviewPolicyError) as error:
        load_policy(path)

    assert str(path) in str(error.value)
    for text in named:
        assert text in str(error.value)


@pytest.mark.parametrize(("document", "named"), [
    ("sla_hours: 0\nrules: []\n", ["sla_hours", "whole number of hours"]),
    ("sla_hours: 24\nrule: []\n", ["unknown field(s) rule"]),
    ("sla_hours: 24\nrules:\n  - {id: x, kind: amount_over}\n", ["rule `x`", "kind"]),
    ("sla_hours: 24\nrules:\n  - {id: x, kind: document_kind, kinds: [memo]}\n",
     ["rule `x`", "field `kinds`"]),
    ("sla_hours: 24\nrules:\n  - {id: x, kind: first_invoice_of_customer, amounts: {}}\n",
     ["rule `x`", "field `amounts`", "not a field of a first_invoice_of_customer rule"]),
    ("sla_hours: 24\nrules:\n  - {id: x, kind: first_invoice_of_customer}\n"
     "  - {id: x, kind: document_kind, kinds: [credit_note]}\n", ["rule `x`", "used twice"]),
    ("sla_hours: 24\nrules:\n  - {id: Big Amount, kind: first_invoice_of_customer}\n",
     ["field `id`"]),
])
def test_a_bad_policy_is_refused_as_a_whole(
    tmp_path: Path, document: str, named: list[str]
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(document)

    with pytest.raises(ReviewPolicyError) as error:
        load_policy(path)

    assert str(path) in str(error.value)
    for text in named:
        assert text in str(error.value)


# ---------------------------------------------------------------------------------------
# Queue, decisions and the release gate
# ---------------------------------------------------------------------------------------
def test_enqueue_twice_keeps_the_first_queued_at_and_the_decision(queue, policy) -> None:
    big = candidate("i1", total=Decimal("12000.00"))
    assert queue.enqueue(evaluate([big], policy), [big], at("2026-06-01 09:00"),
                         policy=policy) == ["i1"]
    queue.approve("INV-i1", by="alice", now=at("2026-06-01 10:00"))

    again = candidate("i1", total=Decimal("12000.00"), is_first_invoice=True)
    added = queue.enqueue(evaluate([again], policy), [again], at("2026-06-02 09:00"),
                          policy=policy)

    item = queue.find("i1")
    assert added == []
    assert (item.status, item.queued_at, item.decided_by, item.decided_at) == (
        "approved", at("2026-06-01 09:00"), "alice", at("2026-06-01 10:00"))
    assert item.reasons == ("large_amount: total 12000.00 EUR is above 10000.00 EUR",)
    assert (item.sla_due_at, item.policy_version) == (at("2026-06-02 09:00"), "test-1")
    assert [(d.action, d.actor) for d in queue.decisions("INV-i1")] == [
        ("queued", "review policy test-1"), ("approved", "alice")]


def test_decisions_record_who_when_and_why_and_are_taken_once(queue, policy) -> None:
    docs = [candidate(i, is_first_invoice=True) for i in ("a", "b", "c")]
    queue.screen(docs, policy, at("2026-06-01 09:00"))

    approved = queue.approve(["INV-a", "b"], by="alice", reason="checked with sales",
                             now=at("2026-06-01 12:30"))
    rejected = queue.reject("INV-c", by="bob", reason="wrong VAT id",
                            now=at("2026-06-01 13:00"))

    assert [(i.invoice_id, i.status, i.decided_by, i.decided_at, i.decision_reason)
            for i in approved] == [
        ("a", "approved", "alice", at("2026-06-01 12:30"), "checked with sales"),
        ("b", "approved", "alice", at("2026-06-01 12:30"), "checked with sales"),
    ]
    assert (rejected.status, rejected.decided_by, rejected.decision_reason) == (
        "rejected", "bob", "wrong VAT id")
    with pytest.raises(AlreadyDecidedError, match="INV-a was approved by alice.*reopen"):
        queue.reject("INV-a", by="bob", reason="changed my mind")
    with pytest.raises(AlreadyDecidedError):
        queue.approve("INV-c", by="alice")
    with pytest.raises(ReviewError, match="needs a reason"):
        queue.reject("INV-b", by="bob", reason="  ")
    with pytest.raises(ReviewError, match="--by"):
        queue.approve("INV-a", by=" ")
    with pytest.raises(UnknownInvoiceError, match="q2c review list --all"):
        queue.approve("INV-zzz", by="alice")
    assert queue.find("INV-a").status == "approved"
    assert queue.find("INV-c").decided_by == "bob"

    reopened = queue.reopen("INV-c", by="carol", reason="VAT id corrected",
                            now=at("2026-06-02 08:00"))
    queue.approve("INV-c", by="carol", now=at("2026-06-02 09:00"))

    assert (reopened.status, reopened.queued_at) == ("pending", at("2026-06-01 09:00"))
    assert [(d.action, d.actor, d.acted_at, d.reason) for d in queue.decisions("c")] == [
        ("queued", "review policy test-1", at("2026-06-01 09:00"),
         "first_invoice: first invoice of this customer"),
        ("rejected", "bob", at("2026-06-01 13:00"), "wrong VAT id"),
        ("reopened", "carol", at("2026-06-02 08:00"), "VAT id corrected"),
        ("approved", "carol", at("2026-06-02 09:00"), None),
    ]


def test_approving_several_changes_none_when_one_is_decided_already(queue, policy) -> None:
    docs = [candidate(i, is_first_invoice=True) for i in ("a", "b")]
    queue.screen(docs, policy, at("2026-06-01 09:00"))
    queue.reject("b", by="bob", reason="duplicate")

    with pytest.raises(AlreadyDecidedError, match="INV-b was rejected by bob"):
        queue.approve(["a", "b"], by="alice")

    assert queue.find("a").status == "pending"


def test_a_second_reviewer_cannot_overwrite_the_first(tmp_path: Path, policy) -> None:
    first, second = ReviewQueue(tmp_path / "ops.sqlite"), ReviewQueue(tmp_path / "ops.sqlite")
    first.screen([candidate("a", is_first_invoice=True)], policy, at("2026-06-01 09:00"))

    first.approve("a", by="alice")
    with pytest.raises(AlreadyDecidedError):
        second.reject("a", by="bob", reason="too late")

    assert (second.find("a").status, second.find("a").decided_by) == ("approved", "alice")


def test_the_release_gate_never_lets_a_pending_or_rejected_invoice_through(
    queue, policy
) -> None:
    docs = [
        candidate("clean"),
        candidate("big", total=Decimal("50000.00")),
        candidate("first", is_first_invoice=True),
        candidate("credit", document_kind="credit_note", total=Decimal("-10.00")),
    ]
    ids = [doc.invoice_id for doc in docs]
    sent: list[str] = []

    def deliver_run(now: str) -> None:
        gate = queue.screen(docs, policy, at(now))
        statuses = {item.invoice_id: item.status for item in queue.items()}
        assert not {statuses.get(i) for i in gate.allowed} & {"pending", "rejected"}
        sent.extend(i for i in gate.allowed if i not in sent)

    deliver_run("2026-06-01 09:00")
    assert sent == ["clean"]
    assert queue.release_gate(ids) == (["clean"], ["big", "first", "credit"], [])

    queue.approve("INV-big", by="alice", now=at("2026-06-01 10:00"))
    queue.reject("INV-first", by="alice", reason="wrong customer", now=at("2026-06-01 10:05"))
    deliver_run("2026-06-01 11:00")
    assert sent == ["clean", "big"]
    assert queue.release_gate(ids) == (["clean", "big"], ["credit"], ["first"])

    queue.reopen("INV-big", by="alice", reason="amount questioned")
    assert queue.release_gate(["big", "never-queued"]) == (["never-queued"], ["big"], [])

    queue.approve("INV-credit", by="bob", now=at("2026-06-01 12:00"))
    deliver_run("2026-06-01 13:00")
    assert sent == ["clean", "big", "credit"]


def test_the_decision_log_refuses_updates_and_deletes(queue, policy, tmp_path) -> None:
    queue.screen([candidate("a", is_first_invoice=True)], policy, at("2026-06-01 09:00"))
    queue.approve("a", by="alice")

    with connect(tmp_path / "ops.sqlite") as conn:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("update review_decisions set actor = 'mallory'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("delete from review_decisions")

    assert [d.actor for d in queue.decisions()] == ["review policy test-1", "alice"]


def test_an_approved_invoice_whose_amount_changes_waits_for_review_again(
    queue, policy
) -> None:
    queue.screen([candidate("i1", total=Decimal("20000.00"))], policy, at("2026-06-01 09:00"))
    queue.approve("INV-i1", by="alice", now=at("2026-06-01 10:00"))
    same = queue.screen([candidate("i1", total=Decimal("20000.0000"), is_first_invoice=True)],
                        policy, at("2026-06-01 11:00"))

    amended = queue.screen([candidate("i1", total=Decimal("2000000.00"))], policy,
                           at("2026-06-01 12:00"))
    again = queue.screen([candidate("i1", total=Decimal("2000000.00"))], policy,
                         at("2026-06-01 13:00"))

    item = queue.find("i1")
    assert same.allowed == ["i1"]  # the same amount at another scale is the same amount
    assert (amended.waiting, again.waiting, queue.status_of(["i1"])) == (
        ["i1"], ["i1"], {"i1": "pending"})
    assert (item.status, item.total, item.currency, item.decided_by, item.decided_at) == (
        "pending", Decimal("2000000.00"), "EUR", None, None)
    assert (item.queued_at, item.sla_due_at) == (at("2026-06-01 09:00"), at("2026-06-02 09:00"))
    assert item.reasons == (
        "large_amount: total 2000000.00 EUR is above 10000.00 EUR",
        "amount_changed: 20,000.00 EUR -> 2,000,000.00 EUR since approval",
    )
    assert item.rule_ids == ("large_amount",)
    history = queue.decisions("i1")
    assert [(d.action, d.actor, d.acted_at, d.reason, d.status_after) for d in history] == [
        ("queued", "review policy test-1", at("2026-06-01 09:00"),
         "large_amount: total 20000.00 EUR is above 10000.00 EUR", "pending"),
        ("approved", "alice", at("2026-06-01 10:00"), None, "approved"),
        ("changed", "q2c", at("2026-06-01 12:00"),
         "amount changed since approval: 20,000.00 EUR -> 2,000,000.00 EUR", "pending"),
    ]
    assert history[1].fingerprint == {
        "account_key": "acct-1", "currency": "EUR", "customer_on_hold": False,
        "document_kind": "invoice", "erp_customer_id": None, "is_first_invoice": False,
        "total": "20000.00",
    }
    assert history[2].fingerprint["total"] == "2000000.00"

    queue.approve("INV-i1", by="bob", reason="PO for 2M seen", now=at("2026-06-01 14:00"))
    assert queue.release_gate(["i1"]).allowed == ["i1"]
    assert queue.decisions("i1")[-1].fingerprint["total"] == "2000000.00"


def test_a_change_of_currency_or_of_a_rejected_amount_asks_again(queue, policy) -> None:
    docs = [candidate("cur", total=Decimal("20000.00")), candidate("rej", is_first_invoice=True)]
    queue.screen(docs, policy, at("2026-06-01 09:00"))
    queue.approve("cur", by="alice", now=at("2026-06-01 10:00"))
    queue.reject("rej", by="bob", reason="wrong VAT", now=at("2026-06-01 10:30"))

    gate = queue.screen([candidate("cur", currency="USD", total=Decimal("20000.00")),
                         candidate("rej", is_first_invoice=True, total=Decimal("480.00"))],
                        policy, at("2026-06-02 09:00"))

    assert gate == ([], ["cur", "rej"], [])
    assert [(d.invoice_id, d.reason) for d in queue.decisions() if d.action == "changed"] == [
        ("cur", "amount changed since approval: 20,000.00 EUR -> 20,000.00 USD"),
        ("rej", "amount changed since rejection: 500.00 EUR -> 480.00 EUR"),
    ]
    rejected_before = queue.find("rej")
    assert (rejected_before.status, rejected_before.decision_reason, rejected_before.reasons) == (
        "pending", None, ("first_invoice: first invoice of this customer",
                          "amount_changed: 500.00 EUR -> 480.00 EUR since rejection"))
    assert queue.find("cur").reasons == (
        "large_amount: total 20000.00 USD is above 12000.00 USD",
        "amount_changed: 20,000.00 EUR -> 20,000.00 USD since approval",
    )


def test_a_pending_invoice_changed_below_every_rule_still_waits_for_a_person(
    queue, policy
) -> None:
    queue.screen([candidate("i1", total=Decimal("20000.00"))], policy, at("2026-06-01 09:00"))

    gate = queue.screen([candidate("i1", total=Decimal("2000.00"))], policy,
                        at("2026-06-01 10:00"))

    item = queue.find("i1")
    assert gate.waiting == ["i1"]
    assert (item.status, item.total, item.rule_ids, item.queued_at) == (
        "pending", Decimal("2000.00"), (), at("2026-06-01 09:00"))
    assert item.reasons == (
        "amount_changed: 20,000.00 EUR -> 2,000.00 EUR while waiting for review",)
    assert [(d.action, d.reason) for d in queue.decisions("i1")][1:] == [
        ("changed", "amount changed while waiting for review: 20,000.00 EUR -> 2,000.00 EUR")]


def test_status_of_names_each_queued_document_and_leaves_out_the_rest(queue, policy) -> None:
    docs = [candidate(i, is_first_invoice=True) for i in ("a", "b", "c")]
    queue.screen([*docs, candidate("clean")], policy, at("2026-06-01 09:00"))
    queue.approve("a", by="alice")
    queue.reject("c", by="alice", reason="duplicate")

    assert queue.status_of(["a", "b", "c", "clean", "never", "a"]) == {
        "a": "approved", "b": "pending", "c": "rejected"}
    assert queue.status_of([]) == {}


OLD_STORE_DDL = """
create table review_queue (
    invoice_id text primary key, invoice_number text not null, document_kind text not null,
    account_key text, account_name text, currency text, total text, issue_date text,
    reasons text not null, rule_ids text not null,
    status text not null check (status in ('pending', 'approved', 'rejected')),
    queued_at text not null, sla_hours integer not null check (sla_hours > 0),
    sla_due_at text not null, decided_by text, decided_at text, decision_reason text,
    policy_version text not null, policy_hash text not null
);
create table review_decisions (
    decision_id integer primary key autoincrement, invoice_id text not null,
    invoice_number text not null,
    action text not null check (action in ('queued', 'approved', 'rejected', 'reopened')),
    actor text not null, acted_at text not null, reason text, status_after text not null,
    policy_hash text
);
create trigger review_decisions_no_update before update on review_decisions
begin select raise(abort, 'review_decisions is append-only'); end;
create trigger review_decisions_no_delete before delete on review_decisions
begin select raise(abort, 'review_decisions is append-only'); end;
insert into review_queue values ('i1', 'INV-i1', 'invoice', 'acct-1', 'Acme GmbH', 'EUR',
    '20000.00', '2026-06-01', '["large_amount: old"]', 'large_amount', 'approved',
    '2026-06-01T09:00:00.000000+00:00', 24, '2026-06-02T09:00:00.000000+00:00', 'alice',
    '2026-06-01T10:00:00.000000+00:00', null, 'old', 'hash-old');
insert into review_decisions values
    (7, 'i1', 'INV-i1', 'queued', 'review policy old', '2026-06-01T09:00:00.000000+00:00',
     'large_amount: old', 'pending', 'hash-old'),
    (8, 'i1', 'INV-i1', 'approved', 'alice', '2026-06-01T10:00:00.000000+00:00', null,
     'approved', 'hash-old');
"""


def test_a_store_from_before_fingerprints_is_migrated_keeping_its_history(
    tmp_path: Path, policy
) -> None:
    path = tmp_path / "ops.sqlite"
    with connect(path) as conn:
        conn.executescript(OLD_STORE_DDL)

    queue = ReviewQueue(path)
    ReviewQueue(path)  # opening it again finds nothing to do
    gate = queue.screen([candidate("i1", total=Decimal("20001.00"))], policy,
                        at("2026-06-03 09:00"))

    assert gate.waiting == ["i1"]
    assert [(d.decision_id, d.action, d.actor, d.fingerprint) for d in queue.decisions()][:2] == [
        (7, "queued", "review policy old", None), (8, "approved", "alice", None)]
    assert [(d.decision_id, d.action, d.reason) for d in queue.decisions()][2:] == [
        (9, "changed", "amount changed since approval: 20,000.00 EUR -> 20,001.00 EUR")]
    with connect(path) as conn, pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("delete from review_decisions")


def test_candidates_from_the_marts_know_first_invoices_and_holds(tmp_path: Path) -> None:
    policy_path = tmp_path / "policy.yaml"
    policy_path.write_text(POLICY_YAML.replace(
        "accounts: [acct-hold, erp-77]", "flag_column: is_on_hold"))
    policy = load_policy(policy_path)
    with duckdb.connect(str(tmp_path / "wh.duckdb")) as conn:
        conn.execute("create schema core")
        conn.execute("create table core.dim_accounts as select * from (values "
                     "('k1', 'Acme', 'c1', false), ('k2', 'Beta', 'c2', true)) "
                     "t(account_key, account_name, erp_customer_id, is_on_hold)")
        conn.execute("create table core.fct_invoices as select * from (values "
                     "('i1', 'INV-1', 'k1', 'EUR', 100.00, date '2026-01-05', "
                     " timestamp '2026-01-05 08:00'),"
                     "('i2', 'INV-2', 'k1', 'EUR', 200.00, date '2026-02-05', null),"
                     "('i3', 'INV-3', 'k2', 'JPY', 300, date '2026-02-01', null),"
                     "('i4', 'INV-4', null, 'EUR', 400.00, date '2026-02-01', null)) "
                     "t(invoice_id, invoice_number, account_key, currency, total_amount, "
                     "issue_date, created_at)")
        conn.execute("create table core.fct_credit_notes as select * from (values "
                     "('cm1', 'CN-1', 'k1', 'EUR', 50.00, date '2026-02-10')) "
                     "t(credit_memo_id, credit_note_number, account_key, currency, "
                     "total_amount, issue_date)")

        found = load_candidates(conn, policy, ["i2", "i3", "i4"], credit_note_ids=["cm1"])
        everything = load_candidates(conn, policy)

    assert [(c.invoice_id, c.document_kind, c.account_name, c.total, c.is_first_invoice,
             c.customer_on_hold) for c in found] == [
        ("i2", "invoice", "Acme", Decimal("200.00"), False, False),
        ("i3", "invoice", "Beta", Decimal("300"), True, True),
        ("i4", "invoice", None, Decimal("400.00"), True, False),
        ("cm1", "credit_note", "Acme", Decimal("50.00"), False, False),
    ]
    assert [c.invoice_id for c in everything if c.is_first_invoice] == ["i1", "i3", "i4"]
    assert [r.rule_ids for r in evaluate(found, policy)] == [
        ("first_invoice", "on_hold"), ("first_invoice",), ("credit_note",)]


def test_a_flag_column_missing_from_the_mart_names_the_rule(tmp_path: Path) -> None:
    policy_path = tmp_path / "policy.yaml"
    policy_path.write_text(POLICY_YAML.replace(
        "accounts: [acct-hold, erp-77]", "flag_column: credit_hold"))
    with duckdb.connect(str(tmp_path / "wh.duckdb")) as conn:
        conn.execute("create schema core")
        conn.execute("create table core.dim_accounts (account_key varchar)")

        with pytest.raises(ReviewPolicyError, match="rule `on_hold`, field `flag_column`"):
            load_candidates(conn, load_policy(policy_path), ["i1"])


# ---------------------------------------------------------------------------------------
# The q2c review command
# ---------------------------------------------------------------------------------------
@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy) -> Path:
    """An operational store with INV-a (large amount) and INV-b (first invoice) waiting."""
    monkeypatch.setenv("Q2C_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("Q2C_OPS_STORE", str(tmp_path / "ops.sqlite"))
    (tmp_path / "empty-q2c.yaml").write_text("")  # no settings beyond the environment
    monkeypatch.setenv("Q2C_CONFIG", str(tmp_path / "empty-q2c.yaml"))
    queue = ReviewQueue(tmp_path / "ops.sqlite")
    queue.screen([candidate("a", total=Decimal("12345.67"), account_name="Acme GmbH"),
                  candidate("b", is_first_invoice=True, account_name="Beta SA"),
                  candidate("c")], policy, dt.datetime.now(UTC))
    return tmp_path / "ops.sqlite"


def test_review_list_shows_the_waiting_invoices(store: Path, capsys) -> None:
    assert main(["review", "list"]) == 0
    table = capsys.readouterr().out.splitlines()

    assert table[0].split() == ["INVOICE", "CUSTOMER", "TOTAL", "QUEUED", "(UTC)", "WAITED",
                                "SLA", "REASONS"]
    assert table[2].startswith("INV-a") and "Acme GmbH" in table[2]
    assert "12,345.67 EUR" in table[2] and "due in" in table[2]
    assert "large_amount: total 12345.67 EUR is above 10000.00 EUR" in table[2]
    assert table[3].startswith("INV-b") and "first_invoice" in table[3]
    assert len(table) == 4

    assert main(["review", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(i["invoice_number"], i["total"], i["status"]) for i in listed] == [
        ("INV-a", "12345.67", "pending"), ("INV-b", "500.00", "pending")]


def test_review_approve_records_the_reviewer(store: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr("getpass.getuser", lambda: "os-user")

    assert main(["review", "approve", "INV-a", "--by", "alice", "--reason", "PO seen"]) == 0
    assert "Approved INV-a (Acme GmbH, 12,345.67 EUR) by alice" in capsys.readouterr().out
    assert main(["review", "reject", "b", "--reason", "not our customer"]) == 0
    assert "It will not be delivered" in capsys.readouterr().out

    queue = ReviewQueue(store)
    assert [(i.invoice_number, i.status, i.decided_by, i.decision_reason)
            for i in queue.items()] == [
        ("INV-a", "approved", "alice", "PO seen"),
        ("INV-b", "rejected", "os-user", "not our customer"),
    ]
    assert main(["review", "list"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "No invoices wait for review.", f"(review queue: {store})"]
    assert main(["review", "approve", "INV-a", "--by", "bob"]) == 1
    assert "reopen it first" in capsys.readouterr().err


def test_review_list_shows_amounts_in_the_currencys_minor_units(
    store: Path, policy, capsys
) -> None:
    ReviewQueue(store).screen([
        candidate("eur", total=Decimal("27417.6000")),
        candidate("kwd", currency="KWD", total=Decimal("4166.1670")),
        candidate("jpy", currency="JPY", total=Decimal("1500001.0000")),
        candidate("odd", total=Decimal("10000.0049")),
    ], policy, dt.datetime.now(UTC))

    assert main(["review", "list"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:]}
    assert main(["review", "list", "--json"]) == 0
    totals = {i["invoice_id"]: i["total"] for i in json.loads(capsys.readouterr().out)}

    assert "27,417.60 EUR" in rows["INV-eur"]
    assert "large_amount: total 27417.60 EUR is above 10000.00 EUR" in rows["INV-eur"]
    assert "4,166.167 KWD" in rows["INV-kwd"]
    assert "large_amount: total 4166.167 KWD is above 3000.000 KWD" in rows["INV-kwd"]
    assert "1,500,001 JPY" in rows["INV-jpy"]
    assert "large_amount: total 1500001 JPY is above 1500000 JPY" in rows["INV-jpy"]
    # half a cent above the threshold is never shown as equal to it
    assert "large_amount: total 10000.0049 EUR is above 10000.00 EUR" in rows["INV-odd"]
    assert {k: totals[k] for k in ("eur", "kwd", "jpy", "odd")} == {
        "eur": "27417.60", "kwd": "4166.167", "jpy": "1500001", "odd": "10000.0049"}


def test_review_list_shows_the_amount_as_changed_after_approval(
    store: Path, policy, capsys
) -> None:
    assert main(["review", "approve", "INV-a", "--by", "alice"]) == 0
    capsys.readouterr()
    gate = ReviewQueue(store).screen(
        [candidate("a", total=Decimal("2000000.00"), account_name="Acme GmbH")], policy,
        dt.datetime.now(UTC))

    assert main(["review", "list"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines()
               if line.startswith("INV-a"))
    assert main(["review", "history", "INV-a"]) == 0
    history = capsys.readouterr().out.splitlines()

    assert gate.waiting == ["a"]
    cells = re.split(r"\s{2,}", row)
    assert (cells[0], cells[2]) == ("INV-a", "2,000,000.00 EUR")
    assert cells[-1] == ("large_amount: total 2000000.00 EUR is above 10000.00 EUR; "
                         "amount_changed: 12,345.67 EUR -> 2,000,000.00 EUR since approval")
    assert history[-1].split()[1:4] == ["INV-a", "changed", "q2c"]
    assert history[-1].endswith(
        "amount changed since approval: 12,345.67 EUR -> 2,000,000.00 EUR")


def test_review_of_an_unknown_invoice_exits_2_and_says_how_to_list(store: Path,
                                                                   capsys) -> None:
    assert main(["review", "approve", "INV-404", "--by", "alice"]) == 2
    err = capsys.readouterr().err

    assert "no invoice 'INV-404' in the review queue" in err
    assert "q2c review list --all" in err
    assert ReviewQueue(store).find("INV-a").status == "pending"


def test_the_review_command_does_not_load_dagster(store: Path) -> None:
    script = (
        "import sys; from q2c.cli import main; code = main(['review', 'list']); "
        "heavy = sorted({'dagster', 'dbt', 'great_expectations', 'duckdb', 'weasyprint'} "
        "& {m.split('.')[0] for m in sys.modules}); print('HEAVY', heavy); sys.exit(code)"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=os.environ.copy(), check=False)

    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout
    assert "INV-a" in result.stdout


# ---------------------------------------------------------------------------------------
# Export and the dbt marts
# ---------------------------------------------------------------------------------------
# (id, queued at, decision, decided at), all UTC; see the module docstring.
SLA_SCENARIO = [
    ("m1", "2026-05-31 22:00", "approve", "2026-06-01 06:00"),
    ("m2", "2026-05-30 09:00", "approve", "2026-06-30 18:00"),
    ("j1", "2026-06-01 09:00", "approve", "2026-06-01 17:00"),
    ("j2", "2026-06-02 09:00", "approve", "2026-06-03 09:00"),
    ("j3", "2026-06-03 09:00", "approve", "2026-06-03 10:00"),
    ("j4", "2026-06-04 09:00", "approve", "2026-06-05 15:00"),
    ("j5", "2026-06-10 09:00", None, None),
    ("j6", "2026-06-11 09:00", "reject", "2026-06-11 12:00"),
    ("j7", "2026-06-30 08:00", None, None),
    ("j8", "2026-06-30 13:00", None, None),
]


def _seed_sla_scenario(queue: ReviewQueue, policy) -> None:
    for invoice_id, queued_at, _, _ in SLA_SCENARIO:
        doc = candidate(invoice_id, total=Decimal("25000.00"), account_key=f"k-{invoice_id}")
        queue.screen([doc], policy, at(queued_at))
    for invoice_id, _, decision, decided_at in SLA_SCENARIO:
        if decision == "approve":
            queue.approve(f"INV-{invoice_id}", by="alice", now=at(decided_at))
        elif decision == "reject":
            queue.reject(f"INV-{invoice_id}", by="bob", reason="wrong PO",
                         now=at(decided_at))


def test_the_approval_sla_mart_shows_the_hand_computed_share(
    tmp_path: Path, queue: ReviewQueue, policy
) -> None:
    _seed_sla_scenario(queue, policy)
    warehouse = tmp_path / "warehouse.duckdb"
    with connect(queue.store_path) as store, duckdb.connect(str(warehouse)) as duck:
        export_review(store, duck)
        counts = export_review(store, duck)  # a second export replaces, never appends
        stored = duck.execute("select count(*) from q2c_ops.review_queue").fetchone()[0]
    assert (counts.queue_rows, counts.decision_rows, stored) == (10, 17, 10)

    result = subprocess.run(
        [str(DBT), "build", "--select", "mart_review_queue", "kpi_approval_sla",
         "--project-dir", str(REPO / "dbt_project"),
         "--profiles-dir", str(REPO / "dbt_project"),
         "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs"),
         "--vars", "{as_of_timestamp: '2026-06-30 12:00:00'}"],
        env=os.environ | {"Q2C_WAREHOUSE": str(warehouse),
                          "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"},
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "1 unit test" in result.stdout

    with duckdb.connect(str(warehouse), read_only=True) as duck:
        kpi = duck.execute(
            "select month_start, queued_count, approved_count, approved_within_sla_count, "
            "approved_late_count, rejected_count, pending_count, pending_past_sla_count, "
            "sla_measured_count, share_approved_within_sla, avg_hours_to_approval "
            "from delivery.kpi_approval_sla order by month_start"
        ).fetchall()
        waiting = duck.execute(
            "select invoice_number, age_hours, hours_to_sla, is_sla_breached, reasons "
            "from delivery.mart_review_queue order by invoice_number"
        ).fetchall()

    assert kpi == [
        (dt.date(2026, 5, 1), 2, 1, 1, 0, 0, 1, 1, 2, Decimal("0.5000"), Decimal("8.00")),
        (dt.date(2026, 6, 1), 7, 4, 3, 1, 1, 2, 1, 5, Decimal("0.6000"), Decimal("15.75")),
    ]
    reason = "large_amount: total 25000.00 EUR is above 10000.00 EUR"
    # j5: 06-10 09:00 to 06-30 12:00 = 483 h, due 24 h after queueing; m2: 747 h; j7: 4 h.
    assert waiting == [
        ("INV-j5", Decimal("483.00"), Decimal("-459.00"), True, reason),
        ("INV-j7", Decimal("4.00"), Decimal("20.00"), False, reason),
        ("INV-m2", Decimal("747.00"), Decimal("-723.00"), True, reason),
    ]
