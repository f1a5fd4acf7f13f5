"""Disputes in the customer portal: reason codes as data, the steps open -> under review ->
resolved, each one an event in the same transaction and a reply from governed texts, the
attachment recognised by its bytes, one credit-note request per credited dispute, the
staff's command line, the pages, and reminders that pause while a dispute is open.

Replies go to a real SMTP server on loopback; reminders run on the collections warehouse
(`collections_support`, business date 15 March 2026 in Berlin) without a dbt build: the
reminder run asks the operational store about open disputes right before queueing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from decimal import Decimal
from email import policy
from email.parser import BytesParser
from pathlib import Path

import duckdb
import pytest
from collections_support import AS_OF, RUN_MOMENT, built_warehouse
from portal_disputes_support import JPEG, PDF, dispute_id_of, open_dispute, png
from portal_support import (
    ALPHA,
    ALPHA_CONTACT,
    ALPHA_ERP_ADDRESS,
    public_ids,
    sign_in,
    wait_for_mail,
)

from q2c import opsdb
from q2c.cli import main as cli_main
from q2c.collections.actions import DunningAction
from q2c.collections.policy import load_policy as load_dunning_policy
from q2c.collections.reminders import plan_reminders, run_reminders
from q2c.content.registry import load_registry
from q2c.delivery.mail_transport import SmtpTransport
from q2c.delivery.outbox import RetryPolicy, document_key
from q2c.delivery.policy import AccountDelivery
from q2c.portal.dispute_inputs import (
    MAX_ATTACHMENT_BYTES,
    DisputedInvoice,
    DisputeError,
    InvoiceLine,
    Upload,
    load_reasons,
)
from q2c.portal.dispute_replies import DisputeReplies, deliver_replies, reply_key
from q2c.portal.disputes import (
    CREDITED,
    REJECTED,
    Dispute,
    DisputeBook,
    export_disputes,
    open_disputed_invoices,
)
from q2c.portal.events import events_of
from q2c.settings import Seller, Settings, load_settings

CONTENT = Path(__file__).resolve().parents[1] / "content"
NO_WAIT = RetryPolicy(max_attempts=1, base_seconds=0.0, max_seconds=0.0,
                      sleep=lambda seconds: None)
OPENED = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)
SENDER = "Northwind Billing <billing@northwind.example>"
# INV-A1 as the portal shows it: 1000.00 of analytics and 190.00 of set-up.
INVOICE = DisputedInvoice(
    account_key="acc-alpha", invoice_id="a1", invoice_number="INV-A1", currency="EUR",
    total_amount=Decimal("1190.00"), invoice_key="key-a1",
    lines=(InvoiceLine(1, "Analytics platform", Decimal("1000.00")),
           InvoiceLine(2, "Set-up", Decimal("190.00"))))


class Clock:
    """A clock the test moves on."""

    def __init__(self, moment: dt.datetime) -> None:
        self.moment = moment

    def __call__(self) -> dt.datetime:
        return self.moment

    def advance(self, **delta: float) -> dt.datetime:
        self.moment += dt.timedelta(**delta)
        return self.moment


@pytest.fixture
def clock() -> Clock:
    return Clock(OPENED)


def _book(tmp_path: Path, clock: Clock, replies: bool = True) -> DisputeBook:
    reasons = load_reasons(CONTENT)
    writer = DisputeReplies(load_registry(CONTENT), reasons, seller_name=Seller().name,
                            sender=SENDER, portal_base_url="https://portal.example/",
                            today=lambda: AS_OF, clock=clock) if replies else None
    return DisputeBook(tmp_path / "ops.sqlite", reasons, replies=writer, clock=clock,
                       attachments_dir=tmp_path / "home" / "portal_attachments")


def _open(book: DisputeBook, **changes) -> Dispute:
    values = dict(reason_code="wrong_amount", comment="Set-up was agreed at 0.",
                  line_number=2, actor="customer:salesforce:ct1", language="de",
                  reply_to="anna.berg@alpha-tools.example", client="203.0.113.7")
    values.update(changes)
    invoice = values.pop("invoice", INVOICE)
    return book.open(invoice, **values)


# --- the reason codes ----------------------------------------------------------------------

def test_the_reason_codes_are_data_with_an_english_and_a_german_label():
    reasons = load_reasons(CONTENT)

    assert [r.code for r in reasons.offered()] == [
        "wrong_amount", "wrong_quantity", "not_received", "price_not_as_quoted", "duplicate",
        "tax_error", "other"]
    assert all(set(r.labels) == {"en", "de"} for r in reasons.reasons)
    assert reasons.get("duplicate").label("de-AT") == "Diese Rechnung wurde doppelt gestellt"
    assert reasons.get("tax_error").label("fr") == "The tax is wrong"
    assert (reasons.get("duplicate").names_line, reasons.get("other").comment_required) == (
        False, True)


def test_a_retired_reason_is_no_longer_offered_but_old_disputes_keep_it(tmp_path, clock):
    content = tmp_path / "content"
    (content / "portal").mkdir(parents=True)
    text = (CONTENT / "portal" / "dispute_reasons.yaml").read_text()
    text = text.replace("  - code: tax_error\n", "  - code: tax_error\n    retired: true\n")
    (content / "portal" / "dispute_reasons.yaml").write_text(text)
    reasons = load_reasons(content)
    book = DisputeBook(tmp_path / "ops.sqlite", reasons, clock=clock)

    assert "tax_error" not in [r.code for r in reasons.offered()]
    assert reasons.get("tax_error").label("en") == "The tax is wrong"
    with pytest.raises(DisputeError, match="no longer offered") as refused:
        _open(book, reason_code="tax_error")
    assert refused.value.key == "dispute_error_reason"


# --- the steps -----------------------------------------------------------------------------

def test_a_dispute_goes_open_under_review_resolved_and_each_step_is_an_event(tmp_path, clock):
    book = _book(tmp_path, clock)

    opened = _open(book)
    clock.advance(days=1)
    reviewed = book.review(opened.dispute_number, "Olga Owner")
    clock.advance(days=2)
    resolved = book.resolve(opened.dispute_number, "Olga Owner", CREDITED, amount="190.00")

    assert (opened.reference, opened.status, opened.staff_step_count) == ("D-1", "open", 0)
    assert (reviewed.status, reviewed.staff_step_count) == ("under_review", 1)
    assert (resolved.status, resolved.resolution, resolved.staff_step_count,
            str(resolved.credit_amount)) == ("resolved", "credited", 2, "190.00 EUR")
    assert resolved.resolved_at == OPENED + dt.timedelta(days=3)
    with opsdb.connect(book.store_path) as conn:
        events = events_of(conn, "acc-alpha")
    assert [(e.kind, e.actor, e.object_id, e.invoice_id) for e in events] == [
        ("dispute_opened", "customer:salesforce:ct1", opened.dispute_id, "a1"),
        ("dispute_updated", "staff:Olga Owner", opened.dispute_id, "a1"),
        ("dispute_resolved", "staff:Olga Owner", opened.dispute_id, "a1")]
    assert events[0].detail == {"attachment": False, "dispute": "D-1", "line": 2,
                                "reason": "wrong_amount"}
    assert events[0].client == "203.0.113.7"
    assert events[2].detail == {"credit_amount_minor": 19000, "dispute": "D-1",
                                "resolution": "credited"}


def test_a_credit_writes_one_credit_note_request_however_often_it_is_resolved(
        tmp_path, clock):
    """The second `resolve ... credited --amount 190.00` (a retried command) changes
    nothing: one request of 190.00 EUR = 19000 cents, for line 2 of INV-A1."""
    book = _book(tmp_path, clock)
    dispute = _open(book)

    first = book.resolve(dispute.dispute_number, "Olga Owner", CREDITED, amount="190.00")
    again = book.resolve(dispute.dispute_number, "Olga Owner", CREDITED, amount="190.00")

    assert first == again
    requests = book.credit_note_requests()
    assert [(r["dispute_number"], r["invoice_id"], r["invoice_number"], r["line_number"],
             r["currency"], r["amount_minor"], r["reason_code"], r["reason"],
             r["requested_by"]) for r in requests] == [
        (1, "a1", "INV-A1", 2, "EUR", 19000, "wrong_amount", "The amount is wrong",
         "Olga Owner")]
    with opsdb.connect(book.store_path) as conn:
        resolved = events_of(conn, "acc-alpha", kind="dispute_resolved")
    assert len(resolved) == 1


@pytest.mark.parametrize(("resolution", "amount", "reason", "message"), [
    (CREDITED, None, None, "a credit needs the amount to credit"),
    (CREDITED, "0.00", None, "is not above 0"),
    (CREDITED, "10.005", None, "has more decimals than EUR has (2)"),
    (CREDITED, "190.01", None, "is more than line 2 of dispute D-1 (190.00 EUR)"),
    (CREDITED, "ten", None, "is not an amount"),
    (REJECTED, None, None, "a rejection needs the reason the customer reads"),
    (REJECTED, None, "price\x1b[31m agreed", "control character U+001B"),
    ("waived", None, None, "resolution 'waived' is unknown"),
])
def test_a_resolution_is_refused_without_what_it_needs(tmp_path, clock, resolution, amount,
                                                       reason, message):
    book = _book(tmp_path, clock)
    dispute = _open(book)

    with pytest.raises(DisputeError, match=re.escape(message)):
        book.resolve(dispute.dispute_number, "Olga Owner", resolution, amount=amount,
                     reason=reason)

    assert book.by_number(1).status == "open"
    assert book.credit_note_requests() == []


def test_a_resolved_dispute_is_not_resolved_another_way_nor_reviewed(tmp_path, clock):
    book = _book(tmp_path, clock)
    dispute = _open(book)
    book.resolve(dispute.dispute_number, "Olga Owner", REJECTED,
                 reason="The set-up fee is in the signed order.")

    with pytest.raises(DisputeError, match="was resolved \\(rejected\\) by Olga Owner"):
        book.resolve(dispute.dispute_number, "Hank Holder", CREDITED, amount="10.00")
    with pytest.raises(DisputeError, match="is resolved, not open"):
        book.review(dispute.dispute_number, "Hank Holder")
    with pytest.raises(LookupError, match="no dispute D-7"):
        book.review(7, "Hank Holder")
    assert book.credit_note_requests() == []


def test_a_failed_step_leaves_neither_the_change_nor_its_event(tmp_path, clock):
    """The reply is written in the step's transaction: when it cannot be built, the
    dispute stays open and no event says otherwise."""
    book = _book(tmp_path, clock)
    dispute = _open(book)

    class Broken:
        def write(self, dispute, step):
            raise RuntimeError("texts unavailable")

    book.replies = Broken()
    with pytest.raises(RuntimeError):
        book.resolve(dispute.dispute_number, "Olga Owner", CREDITED, amount="50.00")

    assert (book.by_number(1).status, book.credit_note_requests()) == ("open", [])
    with opsdb.connect(book.store_path) as conn:
        assert [e.kind for e in events_of(conn, "acc-alpha")] == ["dispute_opened"]


def test_a_second_dispute_of_the_invoice_waits_until_the_first_is_resolved(tmp_path, clock):
    book = _book(tmp_path, clock)
    first = _open(book, line_number=2)

    with pytest.raises(DisputeError, match="already has dispute D-1") as same_line:
        _open(book, line_number=2)
    with pytest.raises(DisputeError, match="already has dispute D-1"):
        _open(book, line_number=None, reason_code="duplicate")
    other_line = _open(book, line_number=1, reason_code="wrong_quantity")
    book.resolve(first.dispute_number, "Olga Owner", REJECTED, reason="As agreed.")
    again = _open(book, line_number=2)

    assert same_line.value.key == "dispute_error_already_open"
    assert (other_line.reference, again.reference) == ("D-2", "D-3")
    assert open_disputed_invoices(book.store_path) == {("acc-alpha", "a1")}


@pytest.mark.parametrize(("changes", "message"), [
    ({"reason_code": "duplicate", "line_number": 1}, "concerns the whole invoice"),
    ({"line_number": 3}, "has no line 3"),
    ({"reason_code": "nonsense"}, "dispute reason 'nonsense' is not in"),
    ({"reason_code": "other", "comment": "  "}, "this reason needs a comment"),
])
def test_the_form_is_refused_with_what_to_fix(tmp_path, clock, changes, message):
    book = _book(tmp_path, clock)

    with pytest.raises(DisputeError, match=re.escape(message)):
        _open(book, **changes)

    assert open_disputed_invoices(book.store_path) == set()


# --- the comment and the attachment --------------------------------------------------------

def test_the_comment_is_kept_exactly_as_written_and_control_characters_are_refused(
        tmp_path, clock):
    book = _book(tmp_path, clock)
    comment = '<script>alert("x")</script>\r\nZeile 2 & „Menge“\tok'

    kept = _open(book, comment=comment)

    assert book.by_number(kept.dispute_number).comment == comment
    for bad in ("bell\x07", "over\u202eride", "nul\x00"):
        with pytest.raises(DisputeError, match="control character") as refused:
            _open(book, comment=bad, line_number=1)
        assert refused.value.key == "dispute_error_comment_text"
    with pytest.raises(DisputeError, match="2001 characters; keep it to 2000"):
        _open(book, comment="x" * 2001, line_number=1)


@pytest.mark.parametrize(("filename", "data", "kind", "name"), [
    ("Lieferschein März.png", PDF, "application/pdf", "Lieferschein-Marz.pdf"),
    ("photo.pdf", png(), "image/png", "photo.png"),
    ("../../etc/passwd", JPEG, "image/jpeg", "passwd.jpg"),
    ("C:\\Users\\anna\\scan.JPEG", JPEG, "image/jpeg", "scan.jpg"),
    ("\u202egpj.exe", PDF, "application/pdf", "gpj.pdf"),
    ("...", PDF, "application/pdf", "dispute-1.pdf"),
])
def test_the_attachment_type_comes_from_its_bytes_and_its_name_is_made_safe(
        tmp_path, clock, filename, data, kind, name):
    book = _book(tmp_path, clock)

    dispute = _open(book, upload=Upload(filename, data))

    assert (dispute.attachment.content_type, dispute.attachment.name) == (kind, name)
    assert book.attachment_bytes(dispute) == data


@pytest.mark.parametrize(("filename", "data", "message"), [
    ("invoice.pdf", b"MZ\x90\x00\x03 a program", "is not a PDF, PNG or JPEG"),
    ("note.jpg", b"<html><script>alert(1)</script></html>", "is not a PDF, PNG or JPEG"),
    ("cut.pdf", b"%PDF-1.7\n1 0 obj <<>> endobj\n", "is not a PDF, PNG or JPEG"),
    ("empty.png", b"", "the attached file is empty"),
    ("big.pdf", b"%PDF-1.7\n" + b"0" * MAX_ATTACHMENT_BYTES + b"\n%%EOF\n",
     "attach at most 10 MB"),
])
def test_a_file_that_is_not_an_allowed_type_or_too_large_is_refused_and_not_stored(
        tmp_path, clock, filename, data, message):
    book = _book(tmp_path, clock)

    with pytest.raises(DisputeError, match=message):
        _open(book, upload=Upload(filename, data))

    assert not book.attachments_dir.exists() or list(book.attachments_dir.iterdir()) == []
    assert open_disputed_invoices(book.store_path) == set()


def test_the_attachment_is_stored_under_a_random_name_and_served_only_unchanged(
        tmp_path, clock):
    book = _book(tmp_path, clock)
    dispute = _open(book, upload=Upload("Lieferschein.pdf", PDF))
    [stored] = list(book.attachments_dir.iterdir())

    assert re.fullmatch(r"[0-9a-f]{32}", stored.name)
    assert stored.name == dispute.attachment.stored_as
    assert dispute.attachment.sha256 == hashlib.sha256(PDF).hexdigest()
    assert stored.parent == tmp_path / "home" / "portal_attachments"
    stored.write_bytes(PDF.replace(b"1.7", b"1.4"))
    with pytest.raises(LookupError, match="changed since it was stored"):
        book.attachment_bytes(dispute)


# --- replies to the customer ---------------------------------------------------------------

def test_each_step_replies_once_in_the_customers_language_from_the_governed_texts(
        tmp_path, clock, smtp_server):
    """Anna writes in German; staff reject with a reason: three replies (received, under
    review, not accepted), each sent once although delivery runs twice."""
    book = _book(tmp_path, clock)
    dispute = _open(book)
    book.review(dispute.dispute_number, "Olga Owner")
    book.resolve(dispute.dispute_number, "Olga Owner", REJECTED,
                 reason="Die Einrichtung ist im Auftrag <vereinbart>.")
    transport = SmtpTransport(smtp_server.host, smtp_server.port)

    first = deliver_replies(book.store_path, transport)
    second = deliver_replies(book.store_path, transport)

    assert (first, second) == ({"sent": 3, "waiting": 0, "given_up": 0},
                               {"sent": 0, "waiting": 0, "given_up": 0})
    messages = [BytesParser(policy=policy.default).parsebytes(m.content)
                for m in smtp_server.messages]
    assert [str(m["Subject"]) for m in messages] == [
        "Ihre Beanstandung der Rechnung INV-A1 ist eingegangen",
        "Ihre Beanstandung der Rechnung INV-A1 wird geprüft",
        "Ihre Beanstandung der Rechnung INV-A1 ist geklärt"]
    assert {m.rcpt_tos[0] for m in smtp_server.messages} == {"anna.berg@alpha-tools.example"}
    assert messages[2]["Message-ID"].strip() == (
        f"<dispute.{reply_key(dispute.dispute_id, 'resolved')}@northwind.example>")
    opened = messages[0].get_body(("plain",)).get_content()
    assert "Beanstandung D-1 (Grund: Der Betrag ist falsch) erfasst" in opened
    assert f"https://portal.example/disputes/{dispute.dispute_id}" in opened
    assert "Set-up was agreed" not in opened  # the customer's comment is not repeated
    rejected_html = messages[2].get_body(("html",)).get_content()
    assert "Die Einrichtung ist im Auftrag &lt;vereinbart&gt;." in rejected_html
    assert "Zahlungserinnerungen zu ihr werden wieder versandt" in rejected_html
    with opsdb.connect(book.store_path) as conn:
        texts = {row[0] for row in conn.execute("select texts from portal_dispute_replies")}
    assert texts == {"portal_dispute_messages@v1"}


def test_a_credit_reply_names_the_amount_in_the_customers_format(tmp_path, clock,
                                                                 smtp_server):
    book = _book(tmp_path, clock)
    dispute = _open(book, language="en")
    book.resolve(dispute.dispute_number, "Olga Owner", CREDITED, amount="190.00")

    deliver_replies(book.store_path, SmtpTransport(smtp_server.host, smtp_server.port))

    credited = smtp_server.messages[-1].parsed().get_body(("plain",)).get_content()
    assert "we will issue a credit note of €190.00" in credited


def test_a_reply_waits_while_the_mail_server_is_down(tmp_path, clock, smtp_server):
    book = _book(tmp_path, clock)
    _open(book)
    transport = SmtpTransport(smtp_server.host, smtp_server.port)
    smtp_server.stop()

    waiting = deliver_replies(book.store_path, transport)
    smtp_server.start()
    sent = deliver_replies(book.store_path, transport)

    assert (waiting["waiting"], sent["sent"], len(smtp_server.messages)) == (1, 1, 1)


# --- the warehouse copy and the command line -----------------------------------------------

def test_the_export_copies_disputes_and_the_credit_note_requests_for_the_erp(
        tmp_path, clock):
    book = _book(tmp_path, clock, replies=False)
    credited = _open(book)
    _open(book, invoice=DisputedInvoice("acc-beta", "b2", "INV-B2", "JPY", Decimal("5000"),
                                        lines=(InvoiceLine(1, "Setup", Decimal("5000")),)),
          reason_code="duplicate", line_number=None, comment="")
    book.resolve(credited.dispute_number, "Olga Owner", CREDITED, amount="190.00")

    with opsdb.connect(book.store_path) as store, \
            duckdb.connect(str(tmp_path / "warehouse.duckdb")) as conn:
        copied = export_disputes(store, conn)
        disputes = conn.execute(
            "select dispute_number, invoice_number, currency, invoice_total_minor, "
            "line_number, status, resolution, credit_amount_minor, has_comment, "
            "has_attachment, staff_step_count from q2c_ops.portal_disputes "
            "order by dispute_number").fetchall()
        requests = conn.execute(
            "select invoice_id, line_number, currency, amount_minor, minor_units, amount, "
            "reason_code from q2c_ops.credit_note_requests").fetchall()
        columns = {row[0] for row in conn.execute(
            "select column_name from information_schema.columns "
            "where table_name = 'portal_disputes'").fetchall()}

    assert copied == 2
    assert disputes == [
        (1, "INV-A1", "EUR", 119000, 2, "resolved", "credited", 19000, True, False, 1),
        (2, "INV-B2", "JPY", 5000, None, "open", None, None, False, False, 0)]
    assert requests == [("a1", 2, "EUR", 19000, 2, Decimal("190.0000"), "wrong_amount")]
    assert not columns & {"comment", "reply_to", "attachment_file"}


def test_staff_review_and_resolve_from_the_command_line(tmp_path, monkeypatch, capsys,
                                                        smtp_server):
    monkeypatch.setenv("Q2C_HOME", str(tmp_path))
    monkeypatch.setenv("Q2C_WAREHOUSE", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.setenv("Q2C_MAIL_CHANNEL", "smtp")
    monkeypatch.setenv("Q2C_SMTP_HOST", smtp_server.host)
    monkeypatch.setenv("Q2C_SMTP_PORT", str(smtp_server.port))
    for name in ("Q2C_OPS_STORE", "Q2C_CONFIG", "Q2C_SMTP_USER", "Q2C_SMTP_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    book = DisputeBook(settings.ops_store, load_reasons(CONTENT))
    book.open(INVOICE, reason_code="other", comment="Wrong PO\x20number\nsee attached",
              upload=Upload("po.pdf", PDF), actor="customer:salesforce:ct1", language="en",
              reply_to="anna.berg@alpha-tools.example")
    out = tmp_path / "attachment.pdf"

    codes = [cli_main(["portal", "disputes", "list"]),
             cli_main(["portal", "disputes", "show", "D-1", "--attachment", str(out)]),
             cli_main(["portal", "disputes", "review", "D-1", "--by", "Olga Owner"]),
             cli_main(["portal", "disputes", "resolve", "1", "credited", "--amount", "50.00",
                       "--by", "Olga Owner"]),
             cli_main(["portal", "disputes", "resolve", "D-1", "rejected", "--reason", "no",
                       "--by", "Olga Owner"])]

    printed = capsys.readouterr()
    assert codes == [0, 0, 0, 0, 2]
    assert "D-1       2026" in printed.out and "  INV-A1   other" in printed.out
    assert "  Wrong PO number" in printed.out and "  see attached" in printed.out
    assert "resolved (credited), credit 50.00 EUR requested from the ERP." in printed.out
    assert "was resolved (credited) by Olga Owner" in printed.err
    assert out.read_bytes() == PDF
    assert [m.parsed()["X-Q2C-Dispute"] for m in smtp_server.messages] == ["D-1", "D-1"]
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        assert conn.execute("select status, credit_amount_minor "
                            "from q2c_ops.portal_disputes").fetchall() == [("resolved", 5000)]


# --- reminders pause while a dispute is open -----------------------------------------------

@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return built_warehouse(tmp_path_factory.mktemp)


def _due(invoice_id: str) -> DunningAction:
    account = AccountDelivery(account_key="acc-1", segment="smb", country="DE",
                              preference=None, email="ap@customer.example",
                              email_consent=True, peppol_id=None)
    return DunningAction(
        invoice_key=f"k-{invoice_id}", invoice_id=invoice_id,
        invoice_number=invoice_id.upper(), account_key="acc-1", account_name="Customer",
        currency="EUR", open_amount=Decimal("100.00"), due_date=dt.date(2026, 2, 1),
        days_past_due=42, as_of_date=AS_OF, stage_name="second_notice",
        stage_audience="customer", action="remind", suppressed_reason=None,
        owner_name="Olga Owner", owner_email="olga@example.com", billing_contact_name=None,
        account=account)


def _settings(home: Path, warehouse: Path, smtp) -> Settings:
    """Settings of one reminder run: its own store and folders, the built day."""
    return load_settings().with_overrides(
        home=home, warehouse_path=warehouse, ops_store_path=home / "ops.sqlite",
        outbox_dir=home / "outbox", portal_dir=home / "portal",
        documents_dir=home / "documents", as_of=AS_OF, seller=Seller(),
        delivery_policy_file=None, dunning_policy_file=None, dunning_enabled=True,
        mail_channel="smtp", smtp_host=smtp.host, smtp_port=smtp.port, smtp_user=None,
        smtp_password=None, smtp_starttls=False)


def test_the_plan_suppresses_the_invoices_with_an_open_portal_dispute():
    actions = [_due("i1"), _due("i2")]
    plan = plan_reminders(actions, load_dunning_policy(), {}, set(),
                          disputed={("acc-1", "i2"), ("acc-2", "i1")})

    assert [p.action.invoice_id for p in plan.planned] == ["i1"]
    assert plan.suppressed == {"portal_dispute": 1}
    assert document_key("i2", "reminder_second_notice") not in plan.due_keys


def test_reminders_pause_while_a_portal_dispute_is_open_and_resume_once_resolved(
        built, smtp_server, tmp_path):
    """Due tonight: INV-A1 (reminder to Alpha), INV-C2 (reminder to Gamma), INV-C1 (the
    hand-over to Olga). Alpha disputes INV-A1 in the portal after the marts were built: the
    first run sends the other two and keeps INV-A1's back. Staff reject the dispute: the
    next run sends INV-A1's reminder."""
    settings = _settings(tmp_path, built.copy_to(tmp_path), smtp_server)
    alpha = built.query("select account_key from core.dim_accounts "
                        "where account_name = 'Alpha Tools GmbH'")[0][0]
    book = DisputeBook(settings.ops_store, load_reasons(CONTENT), clock=lambda: RUN_MOMENT)
    dispute = book.open(
        DisputedInvoice(alpha, "a1", "INV-A1", "EUR", Decimal("1190.00")),
        reason_code="not_received", actor="customer:salesforce:ct1", language="de")

    paused = run_reminders(settings, "run-1", retry=NO_WAIT)
    sent_while_open = sorted(str(m.parsed()["X-Q2C-Invoice-Number"])
                             for m in smtp_server.messages)
    book.resolve(dispute.dispute_number, "Olga Owner", REJECTED, reason="Delivered 9 Feb.")
    resumed = run_reminders(settings, "run-2", retry=NO_WAIT)

    assert paused.counts()["suppressed_by_reason"] == {
        "open_billing_case": 1, "open_dispute": 1, "portal_dispute": 1}
    assert sent_while_open == ["INV-C1", "INV-C2"]
    assert (resumed.counts()["queued_now"], resumed.counts()["sent"]) == (1, 1)
    assert str(smtp_server.messages[-1].parsed()["X-Q2C-Invoice-Number"]) == "INV-A1"
    assert "portal_dispute" not in resumed.counts()["suppressed_by_reason"]


# --- the pages -----------------------------------------------------------------------------

def test_a_customer_opens_a_dispute_with_an_attachment_and_follows_it(portal, smtp_server,
                                                                     world):
    alpha = sign_in(portal, smtp_server, ALPHA_CONTACT)
    invoice = public_ids(alpha.get("/invoices").text)["INV-A1"]
    page = alpha.get(f"/invoices/{invoice}")
    form = alpha.get(f"/invoices/{invoice}/dispute")
    comment = '<img src=x onerror="alert(3)">\nZweite Zeile'

    answer = open_dispute(alpha, invoice, reason="wrong_quantity", line="1", comment=comment,
                          attachment=("Liefer schein (1).pdf", PDF, "image/png"))
    dispute_id = dispute_id_of(answer)
    shown = alpha.get(f"/disputes/{dispute_id}")
    download = alpha.get(f"/disputes/{dispute_id}/attachment")

    assert f'href="/invoices/{invoice}/dispute"' in page.text
    assert "Die Menge ist falsch" in form.text  # Anna reads German
    assert answer.status_code == 303
    assert shown.status_code == 200
    assert "&lt;img src=x onerror=&#34;alert(3)&#34;&gt;<br>Zweite Zeile" in shown.text
    assert "<img src=x" not in shown.text
    assert "Eingegangen" in shown.text and "D-1" in shown.text
    assert download.content == PDF
    assert download.headers["content-type"] == "application/pdf"
    assert download.headers["content-disposition"].startswith("attachment;")
    assert "Liefer-schein-1.pdf" in download.headers["content-disposition"]
    assert download.headers["cache-control"] == "no-store"
    [mail] = [m for m in wait_for_mail(smtp_server, 2) if m.parsed()["X-Q2C-Dispute"]]
    assert mail.rcpt_tos == [ALPHA_ERP_ADDRESS]  # the account's billing address
    with opsdb.connect(portal.settings.ops_store) as conn:
        kinds = [(e.kind, e.invoice_id) for e in events_of(
            conn, world.account_keys[ALPHA]) if e.kind.startswith(("dispute", "document"))]
        stored = json.loads(conn.execute("select detail from portal_events where kind = "
                                         "'dispute_opened'").fetchone()[0])
    assert kinds == [("dispute_opened", world.invoice_ids["INV-A1"]),
                     ("document_downloaded", world.invoice_ids["INV-A1"])]
    assert stored == {"attachment": True, "dispute": "D-1", "line": 1,
                      "reason": "wrong_quantity"}


def test_the_form_comes_back_with_what_to_fix_and_nothing_is_stored(portal, smtp_server):
    alpha = sign_in(portal, smtp_server, ALPHA_CONTACT)
    invoice = public_ids(alpha.get("/invoices").text)["INV-A1"]

    wrong_type = open_dispute(alpha, invoice, comment="keep me",
                              attachment=("scan.pdf", b"GIF89a not allowed", "application/pdf"))
    no_token = alpha.post(f"/invoices/{invoice}/dispute", {"reason": "duplicate"},
                          csrf=False, files={"attachment": ("", b"", "text/plain")})

    assert wrong_type.status_code == 400
    assert "Der Anhang ist keine PDF-, PNG- oder JPEG-Datei." in wrong_type.text
    assert ">keep me</textarea>" in wrong_type.text
    assert no_token.status_code == 403
    assert open_disputed_invoices(portal.settings.ops_store) == set()


@pytest.mark.parametrize("line", ["²", "٣", "9" * 5000, "1234567"])
def test_a_line_that_is_not_a_line_number_is_refused_with_what_to_fix(portal, smtp_server,
                                                                      line):
    """The line is a printed line number: up to six ASCII digits. `²` passes str.isdigit
    but not int(), `٣` (Arabic-Indic three) both, 5000 nines are beyond what int() reads
    and 1234567 beyond six digits: each is the form again with what to fix (400), and
    nothing is stored."""
    alpha = sign_in(portal, smtp_server, ALPHA_CONTACT)
    invoice = public_ids(alpha.get("/invoices").text)["INV-A1"]

    answer = open_dispute(alpha, invoice, reason="wrong_quantity", line=line, comment="x")

    assert answer.status_code == 400
    assert "Wählen Sie eine Position dieser Rechnung oder die ganze Rechnung." in answer.text
    assert open_disputed_invoices(portal.settings.ops_store) == set()
