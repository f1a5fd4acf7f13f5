"""The billing address and the delivery preference a customer changes in the portal.

A new address is kept pending and counts only once confirmed from that address (a
single-use link, valid 24 hours, its token stored as a hash); a preference counts at once.
Both need the customer's consent to the governed wording, recorded with who, when and
which version. The delivery policy applies what counts (`q2c.delivery.overrides`): the
reminders are sent to the confirmed address, never to a pending one.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path

import pytest
from collections_support import AS_OF, built_warehouse
from portal_support import (
    ALPHA,
    ALPHA_CONTACT,
    ALPHA_ERP_ADDRESS,
    mail_text,
    sign_in,
    wait_for_mail,
)

from q2c import opsdb
from q2c.collections.reminders import run_reminders
from q2c.content.registry import load_registry
from q2c.delivery.outbox import RetryPolicy
from q2c.delivery.policy import AccountDelivery, load_policy, resolve_channels
from q2c.portal.contacts import (
    CHANGES_TABLE,
    ContactBook,
    ContactError,
    token_hash,
)
from q2c.portal.events import events_of
from q2c.settings import Seller, Settings, load_settings

CONTENT = Path(__file__).resolve().parents[1] / "content"
REQUESTED = dt.datetime(2026, 3, 10, 8, 0, tzinfo=dt.UTC)
NEW_ADDRESS = "rechnungen@alpha-tools.example"
NO_WAIT = RetryPolicy(max_attempts=1, base_seconds=0.0, max_seconds=0.0,
                      sleep=lambda seconds: None)
ALPHA_DELIVERY = AccountDelivery(account_key="acc-alpha", segment="enterprise", country="DE",
                                 preference=None, email=ALPHA_ERP_ADDRESS,
                                 email_consent=True, peppol_id=None)


class Clock:
    def __init__(self, moment: dt.datetime) -> None:
        self.moment = moment

    def __call__(self) -> dt.datetime:
        return self.moment


@pytest.fixture
def clock() -> Clock:
    return Clock(REQUESTED)


def _book(store: Path, clock) -> ContactBook:
    return ContactBook(store, load_registry(CONTENT), seller_name=Seller().name, clock=clock)


def _request(book: ContactBook, address: str = NEW_ADDRESS, account_key: str = "acc-alpha",
             **changes):
    values = dict(actor="customer:salesforce:ct1", language="de",
                  customer_name="Alpha Tools GmbH", previous_email=ALPHA_ERP_ADDRESS,
                  consent=True, client="203.0.113.7")
    values.update(changes)
    return book.request_address_change(account_key, address, **values)


def _email_of(store: Path) -> str | None:
    policy = load_policy(ops_store=store)
    return policy.account_for(ALPHA_DELIVERY).email


# --- the address ---------------------------------------------------------------------------

def test_a_new_address_counts_only_once_it_is_confirmed_from_that_address(tmp_path, clock):
    book = _book(tmp_path / "ops.sqlite", clock)

    change, token = _request(book)
    before = _email_of(book.store_path)
    clock.moment += dt.timedelta(hours=3)
    confirmed = book.confirm(token, client="198.51.100.4")
    decision = resolve_channels(ALPHA_DELIVERY, load_policy(ops_store=book.store_path))

    assert before == ALPHA_ERP_ADDRESS
    assert book.pending_for("acc-alpha") is None
    assert confirmed.confirmed_at == REQUESTED + dt.timedelta(hours=3)
    assert _email_of(book.store_path) == NEW_ADDRESS
    assert book.billing_email("acc-alpha", ALPHA_ERP_ADDRESS) == NEW_ADDRESS
    assert decision.as_record()["override"] == (
        "the customer's portal change of 2026-03-10T11:00:00.000000Z")
    with opsdb.connect(book.store_path) as conn:
        events = events_of(conn, "acc-alpha")
    # The request and its consent share a moment, so their order is not defined.
    assert sorted((e.kind, e.actor, e.client) for e in events[:2]) == [
        ("consent_recorded", "customer:salesforce:ct1", "203.0.113.7"),
        ("contact_change_requested", "customer:salesforce:ct1", "203.0.113.7")]
    assert (events[2].kind, events[2].client) == ("contact_change_confirmed", "198.51.100.4")
    assert [e.detail for e in events if e.kind == "contact_change_requested"] == [
        {"domain": "alpha-tools.example"}]


def test_the_link_works_once_its_token_is_kept_only_as_a_hash_and_it_expires(tmp_path,
                                                                            clock):
    book = _book(tmp_path / "ops.sqlite", clock)
    _, used = _request(book)
    book.confirm(used)
    _, late = _request(book, "late@alpha-tools.example")
    clock.moment += dt.timedelta(hours=24)

    with opsdb.connect(book.store_path) as conn:
        stored = [tuple(row) for row in conn.execute(f"select * from {CHANGES_TABLE}")]
    assert len(used) >= 43 and not any(used in str(value) for row in stored for value in row)
    assert token_hash(used) in {row[5] for row in stored}
    for token in (used, late, "x" * 43):
        assert book.pending(token) is None
        with pytest.raises(ContactError, match="no longer valid") as refused:
            book.confirm(token)
        assert refused.value.key == "account_confirm_invalid"
    assert _email_of(book.store_path) == NEW_ADDRESS


def test_a_newer_request_replaces_the_one_waiting(tmp_path, clock):
    book = _book(tmp_path / "ops.sqlite", clock)
    _, first = _request(book, "first@alpha-tools.example")
    _, second = _request(book, "second@alpha-tools.example")

    with pytest.raises(ContactError):
        book.confirm(first)
    book.confirm(second)

    assert _email_of(book.store_path) == "second@alpha-tools.example"


@pytest.mark.parametrize(("address", "changes", "key"), [
    ("not an address", {}, "account_error_address"),
    ("a@b.example, c@d.example", {}, "account_error_address"),
    (ALPHA_ERP_ADDRESS.upper(), {}, "account_error_same"),
    (NEW_ADDRESS, {"consent": False}, "account_error_consent"),
])
def test_an_address_change_is_refused_with_what_to_fix(tmp_path, clock, address, changes,
                                                       key):
    book = _book(tmp_path / "ops.sqlite", clock)

    with pytest.raises(ContactError) as refused:
        _request(book, address, **changes)

    assert refused.value.key == key
    assert book.pending_for("acc-alpha") is None
    assert book.consents("acc-alpha") == []


def test_an_account_asks_for_an_address_change_at_most_five_times_a_day(tmp_path, clock):
    book = _book(tmp_path / "ops.sqlite", clock)
    for number in range(5):
        _request(book, f"try{number}@alpha-tools.example")
        clock.moment += dt.timedelta(hours=1)

    with pytest.raises(ContactError) as refused:
        _request(book, "try5@alpha-tools.example")
    clock.moment = REQUESTED + dt.timedelta(days=1, minutes=1)
    _request(book, "try6@alpha-tools.example")

    assert refused.value.key == "account_error_too_many"
    assert book.pending_for("acc-alpha").new_email == "try6@alpha-tools.example"


def test_consent_is_recorded_with_who_when_and_the_wording_of_which_version(tmp_path,
                                                                           clock):
    book = _book(tmp_path / "ops.sqlite", clock)
    _request(book)

    [consent] = book.consents("acc-alpha")

    assert (consent["purpose"], consent["given_by"], consent["given_at"], consent["texts"],
            consent["text_key"], consent["language"], consent["client"]) == (
        "email", "customer:salesforce:ct1", "2026-03-10T08:00:00.000000Z",
        "portal_contact_messages@v1", "consent_email_delivery", "de", "203.0.113.7")
    assert consent["wording"] == (
        "Ich bin einverstanden, dass Northwind Analytics GmbH Rechnungen, "
        "Zahlungserinnerungen und Kontonachrichten für Alpha Tools GmbH per E-Mail an die "
        "von mir angegebene Rechnungsadresse sendet.")


# --- the delivery preference ---------------------------------------------------------------

def test_a_delivery_preference_counts_at_once_with_the_customers_consent(tmp_path, clock):
    """Alpha has no preference in the CRM or the ERP: the default policy's catch-all. It
    chooses the portal: rule portal-preferred, portal first and email as the failover."""
    book = _book(tmp_path / "ops.sqlite", clock)
    before = resolve_channels(ALPHA_DELIVERY, load_policy(ops_store=book.store_path))

    with pytest.raises(ContactError) as refused:
        book.set_preference("acc-alpha", "portal", actor="customer:salesforce:ct1",
                            language="en", customer_name="Alpha Tools GmbH", consent=False)
    override = book.set_preference("acc-alpha", "portal", actor="customer:salesforce:ct1",
                                   language="en", customer_name="Alpha Tools GmbH",
                                   consent=True)
    after = resolve_channels(ALPHA_DELIVERY, load_policy(ops_store=book.store_path))

    assert refused.value.key == "account_error_consent"
    assert before.rule != "portal-preferred"
    assert (override.preference, override.billing_email) == ("portal", None)
    assert (after.rule, after.channels) == ("portal-preferred", ("portal", "email"))
    assert [c["purpose"] for c in book.consents("acc-alpha")] == ["portal"]
    with opsdb.connect(book.store_path) as conn:
        assert sorted(e.kind for e in events_of(conn, "acc-alpha")) == [
            "consent_recorded", "preference_changed"]


def test_a_policy_loaded_without_the_store_or_with_an_empty_one_changes_nothing(tmp_path):
    assert load_policy(ops_store=tmp_path / "absent.sqlite").overrides == {}
    assert load_policy().account_for(ALPHA_DELIVERY) == ALPHA_DELIVERY


# --- the reminders follow the confirmed address only ----------------------------------------

@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return built_warehouse(tmp_path_factory.mktemp)


def _settings(home: Path, warehouse: Path, smtp) -> Settings:
    return load_settings().with_overrides(
        home=home, warehouse_path=warehouse, ops_store_path=home / "ops.sqlite",
        outbox_dir=home / "outbox", portal_dir=home / "portal",
        documents_dir=home / "documents", as_of=AS_OF, seller=Seller(),
        delivery_policy_file=None, dunning_policy_file=None, dunning_enabled=True,
        mail_channel="smtp", smtp_host=smtp.host, smtp_port=smtp.port, smtp_user=None,
        smtp_password=None, smtp_starttls=False)


@pytest.mark.parametrize("confirmed", [False, True])
def test_the_reminder_goes_to_a_changed_address_only_once_it_is_confirmed(
        built, smtp_server, tmp_path, confirmed):
    """INV-A1's reminder (Alpha, due tonight) goes to the ERP's billing address while the
    new one waits for confirmation, and to the new one once it is confirmed."""
    settings = _settings(tmp_path, built.copy_to(tmp_path), smtp_server)
    alpha = built.query("select account_key from core.dim_accounts "
                        "where account_name = 'Alpha Tools GmbH'")[0][0]
    book = ContactBook(settings.ops_store, load_registry(CONTENT), seller_name="Northwind")
    _, token = _request(book, account_key=alpha)
    if confirmed:
        book.confirm(token)

    run_reminders(settings, "run-1", retry=NO_WAIT)

    to_alpha = [m.rcpt_tos[0] for m in smtp_server.messages
                if str(m.parsed()["X-Q2C-Invoice-Number"]) == "INV-A1"]
    assert to_alpha == [NEW_ADDRESS if confirmed else ALPHA_ERP_ADDRESS]
    with opsdb.connect(settings.ops_store) as conn:
        decision = conn.execute("select decision from outbox where invoice_id = 'a1'"
                                ).fetchone()[0]
    assert ("portal change" in decision) is confirmed


# --- the pages -----------------------------------------------------------------------------

def test_a_customer_changes_the_billing_address_and_confirms_it_from_the_new_one(
        portal, smtp_server, world):
    alpha = sign_in(portal, smtp_server, ALPHA_CONTACT)
    settings_page = alpha.get("/account")
    asked = alpha.post("/account/billing-email", {"email": NEW_ADDRESS, "consent": "yes"})
    [confirmation] = [m for m in wait_for_mail(smtp_server, 2) if m.rcpt_tos == [NEW_ADDRESS]]
    link = re.findall(r"https?://\S+/account/confirm/[A-Za-z0-9_-]{43}",
                      mail_text(confirmation))[0]
    pending_page = alpha.get("/account")
    confirmer = portal.client()  # the mailbox of the new address, not signed in
    opened = confirmer.get(link)
    store = portal.settings.ops_store
    before = ContactBook(store, load_registry(CONTENT), seller_name="x").override(
        world.account_keys[ALPHA])
    done = confirmer.post(link)
    again = confirmer.post(link)

    assert settings_page.status_code == 200 and ALPHA_ERP_ADDRESS in settings_page.text
    assert "Ich bin einverstanden, dass Northwind Analytics GmbH Rechnungen" in (
        settings_page.text)
    assert (asked.status_code, asked.headers["location"]) == (303, "/account?saved=sent")
    assert NEW_ADDRESS in pending_page.text and "Bestätigungslink" in pending_page.text
    assert opened.status_code == 200 and NEW_ADDRESS in opened.text
    assert "Alpha Tools" not in opened.text
    assert before is None  # opening the link changed nothing
    assert done.status_code == 200 and NEW_ADDRESS in done.text
    assert again.status_code == 404
    [notice] = [m for m in wait_for_mail(smtp_server, 3) if m.rcpt_tos == [ALPHA_ERP_ADDRESS]]
    assert NEW_ADDRESS in mail_text(notice)
    assert ContactBook(store, load_registry(CONTENT), seller_name="x").billing_email(
        world.account_keys[ALPHA], ALPHA_ERP_ADDRESS) == NEW_ADDRESS
    assert f"<strong>{NEW_ADDRESS}</strong>" in alpha.get("/account").text


def test_the_preference_form_needs_the_consent_box(portal, smtp_server):
    alpha = sign_in(portal, smtp_server, ALPHA_CONTACT)
    alpha.get("/account")

    refused = alpha.post("/account/delivery", {"preference": "portal"})
    saved = alpha.post("/account/delivery", {"preference": "portal", "consent": "yes"})
    page = alpha.get(saved.headers["location"])

    assert refused.status_code == 400
    assert "Bitte setzen Sie das Häkchen, um zuzustimmen." in refused.text
    assert (saved.status_code, saved.headers["location"]) == (303, "/account?saved=portal")
    assert "Rechnungen erreichen Sie ab jetzt im Kundenportal." in page.text


def _sign_in_outcome(store: Path, address: str, portal) -> str:
    """Ask for a sign-in link for `address` and wait for the background lookup's outcome
    (`mailed` or `unknown`) in the store."""
    client = portal.client()
    client.get("/sign-in")
    assert client.post("/sign-in", {"email": address}).status_code == 303
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with opsdb.connect(store) as conn:
            row = conn.execute("select outcome from portal_signin_requests"
                               " order by created_at desc limit 1").fetchone()
        if row["outcome"] != "pending":
            return row["outcome"]
        time.sleep(0.05)
    raise AssertionError(f"the sign-in request of {address} was not looked up")


def test_a_confirmed_billing_address_signs_in_and_the_replaced_one_no_longer_does(
        portal, smtp_server, world):
    """Anna (CRM billing contact of Alpha) replaces Alpha's billing address
    ap@alpha-tools.example (the ERP's, in core.dim_accounts) with NEW_ADDRESS and it is
    confirmed: NEW_ADDRESS signs in to Alpha Tools; ap@alpha-tools.example gets no link
    any more (outcome `unknown`); Anna's own address, which was not replaced, still signs
    in."""
    store = portal.settings.ops_store
    assert _sign_in_outcome(store, NEW_ADDRESS, portal) == "unknown"
    alpha = sign_in(portal, smtp_server, ALPHA_CONTACT)
    alpha.get("/account")
    alpha.post("/account/billing-email", {"email": NEW_ADDRESS, "consent": "yes"})
    [confirmation] = [m for m in wait_for_mail(smtp_server, 2) if m.rcpt_tos == [NEW_ADDRESS]]
    link = re.findall(r"https?://\S+/account/confirm/[A-Za-z0-9_-]{43}",
                      mail_text(confirmation))[0]
    confirmer = portal.client()
    confirmer.get(link)
    assert confirmer.post(link).status_code == 200
    wait_for_mail(smtp_server, 3)  # the notice to the replaced address

    new = sign_in(portal, smtp_server, NEW_ADDRESS)
    new_mail = mail_text(smtp_server.messages[-1])
    replaced = _sign_in_outcome(store, ALPHA_ERP_ADDRESS, portal)
    anna = _sign_in_outcome(store, ALPHA_CONTACT, portal)

    recipients = [mail.rcpt_tos for mail in wait_for_mail(smtp_server, 5)]
    assert recipients == [[ALPHA_CONTACT], [NEW_ADDRESS], [ALPHA_ERP_ADDRESS], [NEW_ADDRESS],
                          [ALPHA_CONTACT]]
    assert "Alpha Tools GmbH" in new_mail
    assert "INV-A1" in new.get("/invoices").text
    with opsdb.connect(store) as conn:
        (session,) = conn.execute(
            "select account_key, contact_id from portal_sessions where ended_at is null"
            " and contact_id like 'portal-billing:%'").fetchall()
    assert tuple(session) == (world.account_keys[ALPHA],
                              f"portal-billing:{world.account_keys[ALPHA]}")
    assert (replaced, anna) == ("unknown", "mailed")
