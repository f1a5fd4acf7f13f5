"""The customer portal in a real browser: Playwright drives Debian's Chromium through a
customer's whole visit, keeps a screenshot of every step and scans every portal page with
axe-core.

One portal runs for the module on 127.0.0.1 (tests/portal_support.py's world: the shared
hand-made warehouse, no dbt build of its own), with one SMTP test server, the Stripe stand-in
of tests/stripe_api_server.py and q2c's signed webhook endpoint on the portal's ops store.

The journey of Alpha Tools GmbH (German; figures of tests/collections_support.py at the
build's 15 March 2026):

1. The portal notice of INV-A1 (1190.00 EUR, open, 3 days overdue) reaches the SMTP server
   at ap@alpha-tools.example; its link opens a "Continue" page, whose button (a POST) shows
   INV-A1 and nothing else.
2. The billing contact anna.berg@alpha-tools.example signs in by magic link from a second
   mail, by keyboard alone: Tab to the skip link, Enter, Tab to the address, Enter; the
   link's "Weiter" by Tab and Enter; the invoice list; INV-A1 by Tab and Enter.
3. The PDF of INV-A1 downloads as an attachment named INV-A1.pdf, the rendered PDF's bytes.
4. A dispute of INV-A1 with a one-page PDF delivery note attached: its page says the
   reminders are paused, the acknowledgement is mailed to the billing address, and q2c's
   reminder plan for tonight, which would remind INV-A1 at the "reminder" stage, leaves it
   out as `portal_dispute`.
5. INV-A3 (300.00, 49.50 paid: 250.50 open) is paid: the portal sends the browser to the
   stand-in's Checkout page for 25050 cents; the test completes the session there (what
   the customer's paying does) and the browser comes back to the success URL: the payment
   waits for confirmation until the signed webhook events are delivered, then the invoice
   is shown paid (250,50 €); the invoice then has nothing left to pay until it is booked.

A second test passes over the main pages at a phone's width (375 px): none scrolls
sideways. Screenshots go to a folder under pytest's basetemp (printed) and are copied to
`test-artifacts/portal/` in the repository (git-ignored).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from browser_support import (
    PHONE_WIDTH,
    StepRecorder,
    focused_id,
    focused_text,
    horizontal_overflow,
    launch_chromium,
    publish_artifacts,
    tab_until,
)
from collections_support import AS_OF
from conftest import SmtpTestServer, _running_server
from playwright.sync_api import Browser, expect, sync_playwright
from portal_support import (
    ALPHA,
    ALPHA_CONTACT,
    ALPHA_ERP_ADDRESS,
    PortalWorld,
    RunningPortal,
    mail_text,
    portal_world,
    sign_in_links,
    smtp_settings,
    start_portal,
    wait_for_mail,
)
from stripe_api_server import StripeApiServer

from q2c import opsdb
from q2c.collections.actions import load_actions
from q2c.collections.policy import load_policy
from q2c.collections.reminders import PORTAL_DISPUTE, plan_reminders
from q2c.delivery.envelope import PORTAL, Envelope
from q2c.delivery.mail_transport import email_payload
from q2c.delivery.portal import ACCOUNT_HEADER, portal_notice_message
from q2c.invoice_delivery import delivery_channels
from q2c.payments.stripe_webhooks import make_webhook_server, serve_in_thread
from q2c.portal.disputes import open_disputed_invoices
from q2c.portal.events import (
    DISPUTE_OPENED,
    DOCUMENT_DOWNLOADED,
    LINK_OPENED,
    PAYMENT_CONFIRMED,
    SIGNED_IN,
    events_of,
)
from q2c.warehouse import connect as connect_warehouse

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts" / "portal"
WEBHOOK_SECRET = "whsec_q2cPortalBrowserJourney0001"
DESKTOP = {"width": 1280, "height": 900}
NOTICE_KEY = "portal-inv-a1-browser-0001"
COMMENT = "Die Lieferung vom 9. Februar ist nicht angekommen.\nLieferschein anbei."
DELIVERY_NOTE = "lieferschein-inv-a1.pdf"


@dataclass
class Journey:
    """The running parts the browser talks to, and what the test checks behind them."""

    world: PortalWorld
    portal: RunningPortal
    smtp: SmtpTestServer
    stripe: StripeApiServer
    store: Path
    screens: Path

    @property
    def base(self) -> str:
        return self.portal.base_url

    def send_notice(self, number: str) -> None:
        """Deliver invoice `number` to the portal as the invoice run does: publish its PDF
        and mail the notice with its link through the configured (SMTP) transport."""
        settings = self.portal.settings
        account = self.world.account_keys[ALPHA]
        channel = delivery_channels(settings)[PORTAL]
        notice = portal_notice_message(
            invoice_number=number, account_key=account, recipient=ALPHA_ERP_ADDRESS,
            sender=settings.mail_from, link=channel.link_for(NOTICE_KEY), key=NOTICE_KEY,
            message_id_domain="northwind.example", customer_name=ALPHA,
            seller_name=settings.seller.name)
        channel.send(Envelope(
            key=NOTICE_KEY, invoice_id=self.world.invoice_ids[number], invoice_number=number,
            document_id=f"doc-{number}", channel=PORTAL, recipient=ALPHA_ERP_ADDRESS,
            payload=self.world.pdfs[number], filename=f"{number}.pdf",
            content_type="application/pdf", notice=email_payload(notice),
            headers={ACCOUNT_HEADER: account}))

    def mail(self, count: int):
        """The `count`-th mail the SMTP server received, once it is there."""
        return wait_for_mail(self.smtp, count)[count - 1]

    def events(self, kind: str) -> list:
        with opsdb.connect(self.store) as conn:
            return events_of(conn, kind=kind)


@pytest.fixture(scope="module")
def journey(tmp_path_factory, request) -> Iterator[Journey]:
    world = portal_world(tmp_path_factory)
    folder = tmp_path_factory.mktemp("portal-browser")
    home, store = folder / "home", folder / "home" / "ops.sqlite"
    screens = folder / "screenshots"
    screens.mkdir()
    _announce(request, f"portal browser screenshots: {screens} (copied to {ARTIFACTS})")
    smtp = _running_server()
    stripe = StripeApiServer().start()
    webhooks = make_webhook_server(store, [WEBHOOK_SECRET])
    serve_in_thread(webhooks, poll_interval=0.05)
    stripe.connect_webhooks(f"http://127.0.0.1:{webhooks.server_address[1]}",
                            (WEBHOOK_SECRET,))
    portal = None
    with pytest.MonkeyPatch.context() as env:
        for name, value in stripe.env.items():
            env.setenv(name, value)
        try:
            # Its own portal store: the notice publishes there, the shared world's stays as
            # the other portal tests expect it.
            portal = start_portal(lambda base: world.settings(
                home, portal_base_url=base, ops_store_path=store, portal_dir=home / "portal",
                **smtp_settings(smtp)))
            yield Journey(world, portal, smtp, stripe, store, screens)
        finally:
            if portal is not None:
                portal.stop()
            webhooks.shutdown()
            webhooks.server_close()
            stripe.stop()
            smtp.stop()
            publish_artifacts(screens, ARTIFACTS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


def _announce(request, line: str) -> None:
    """Say where the screenshots are: on the terminal, or (in a pytest-xdist worker, whose
    output is not a terminal) in the captured output shown with the test's report."""
    config = request.config
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if hasattr(config, "workerinput") or terminal is None or capture is None:
        sys.stdout.write(line + "\n")
        return
    with capture.global_and_fixture_disabled():
        terminal.write_line(line)


def _recorder(journey: Journey, prefix: str) -> StepRecorder:
    sys.stdout.write(f"screenshots of this test: {journey.screens}/{prefix}*.png\n")
    return StepRecorder(journey.screens, prefix=prefix)


def _delivery_note() -> bytes:
    """A real one-page PDF, as a customer would attach a scanned delivery note."""
    from weasyprint import HTML

    return HTML(string="<h1>Lieferschein LS-2026-0209</h1><p>Alpha Tools GmbH, "
                       "Analytics platform, 1 Stück. Nicht zugestellt.</p>").write_pdf()


def _tonights_reminders(journey: Journey, disputed: set[tuple[str, str]]):
    """q2c's reminder plan for the build's day, with these invoices disputed in the portal.

    Due tonight, longest overdue first: INV-C1 (54 days: the hand-over), INV-C2 (10 days)
    and INV-A1 (3 days: the first reminder); Beta's two are suppressed in the mart.
    """
    with connect_warehouse(journey.world.warehouse, read_only=True) as conn:
        actions = load_actions(conn, AS_OF)
    return plan_reminders(actions, load_policy(), {}, set(), disputed=disputed)


def _numbers(plan) -> list[str]:
    return [planned.action.invoice_number for planned in plan.planned]


def test_a_customer_pays_disputes_and_downloads_in_chromium(journey: Journey, browser):
    steps = _recorder(journey, "journey-")
    signed_in_before = len(journey.events(SIGNED_IN))
    mails = len(journey.smtp.messages)
    context = browser.new_context(locale="de-DE", viewport=DESKTOP, accept_downloads=True)
    page = context.new_page()
    base = re.escape(journey.base)

    # 1. The portal notice of INV-A1 and its link.
    journey.send_notice("INV-A1")
    notice = journey.mail(mails + 1)
    (link,) = re.findall(rf"{base}/documents/[A-Za-z0-9_-]{{43}}", mail_text(notice))
    assert notice.rcpt_tos == [ALPHA_ERP_ADDRESS]
    assert notice.parsed()["Subject"] == "Invoice INV-A1 is ready in your portal"

    page.goto(link)
    expect(page.locator("h1")).to_have_text("Ihre Rechnung")
    steps.record(page, "invoice link continue page")
    page.get_by_role("button", name="Rechnung öffnen").click()
    expect(page.locator("h1")).to_have_text("Rechnung INV-A1")
    expect(page.locator("dd.amount-due")).to_have_text("1.190,00 €")
    expect(page.get_by_text(re.compile("INV-A[234]"))).to_have_count(0)
    steps.record(page, "invoice from the link")

    # 2. Magic-link sign-in, by keyboard alone.
    page.goto(f"{journey.base}/sign-in")
    expect(page.locator("h1")).to_have_text("Anmelden")
    page.keyboard.press("Tab")
    assert focused_text(page) == "Zum Inhalt springen"
    expect(page.locator(".skip-link")).to_be_in_viewport()
    steps.record(page, "sign-in with the skip link focused")
    page.keyboard.press("Enter")
    assert focused_id(page) == "main"
    page.keyboard.press("Tab")
    assert focused_id(page) == "email"
    page.keyboard.type(ALPHA_CONTACT)
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Bitte prüfen Sie Ihr Postfach")
    steps.record(page, "sign-in mail sent")

    sign_in_mail = journey.mail(mails + 2)
    assert sign_in_mail.rcpt_tos == [ALPHA_CONTACT]
    page.goto(sign_in_links(mail_text(sign_in_mail))[0])
    expect(page.locator("h1")).to_have_text("Anmeldung fortsetzen")
    steps.record(page, "magic link continue page")
    tab_until(page, "Weiter")
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{journey.base}/invoices")
    rows = page.locator("main table tbody tr")
    expect(rows.filter(has_text="INV-A1")).to_contain_text("1.190,00 €")
    expect(rows.filter(has_text="INV-A2")).to_contain_text("500,00 €")
    expect(rows.filter(has_text="INV-A3")).to_contain_text("250,50 €")
    steps.record(page, "invoice list")
    tab_until(page, "INV-A1")
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Rechnung INV-A1")

    # 3. The PDF, as an attachment.
    with page.expect_download() as downloading:
        page.get_by_role("link", name="Rechnung (PDF): INV-A1.pdf").click()
    pdf = downloading.value
    content = Path(pdf.path()).read_bytes()
    assert pdf.suggested_filename == "INV-A1.pdf"
    assert content[:5] == b"%PDF-"
    assert content == journey.world.pdfs["INV-A1"]
    steps.record(page, "invoice INV-A1 signed in")

    # 4. A dispute with a PDF attached; the reminder is paused.
    planned_before = _tonights_reminders(journey, set())
    assert _numbers(planned_before) == ["INV-C1", "INV-C2", "INV-A1"]
    note = _delivery_note()
    page.get_by_role("link", name="Rechnung beanstanden").click()
    expect(page.locator("h1")).to_have_text("Rechnung INV-A1 beanstanden")
    page.get_by_label("Was stimmt nicht?").select_option("not_received")
    page.get_by_label("Welche Position?").select_option("1")
    page.get_by_label("Kommentar").fill(COMMENT)
    page.get_by_label("Anhang (freiwillig)").set_input_files(
        files=[{"name": DELIVERY_NOTE, "mimeType": "application/pdf", "buffer": note}])
    steps.record(page, "dispute form filled in")
    page.get_by_role("button", name="Beanstandung senden").click()
    expect(page).to_have_url(re.compile(rf"{base}/disputes/[A-Za-z0-9_-]{{22}}$"))
    facts = page.locator("dl.facts")
    expect(facts).to_contain_text("Eingegangen")
    expect(facts).to_contain_text("INV-A1")
    expect(facts).to_contain_text("Ware oder Leistung nicht erhalten")
    expect(facts).to_contain_text("1: Analytics platform")
    expect(facts).to_contain_text("1.190,00 €")
    expect(page.get_by_role("status")).to_have_text(
        "Solange die Beanstandung offen ist, erhalten Sie zu dieser Rechnung keine "
        "Zahlungserinnerung.")
    assert page.locator("p.comment").inner_text() == COMMENT
    steps.record(page, "dispute opened")
    with page.expect_download() as downloading:
        page.get_by_role("link", name=re.compile("^Ihren Anhang herunterladen")).click()
    attached = downloading.value
    assert Path(attached.path()).read_bytes() == note
    assert attached.suggested_filename.endswith(".pdf")

    alpha = journey.world.account_keys[ALPHA]
    disputed = open_disputed_invoices(journey.store)
    assert disputed == {(alpha, journey.world.invoice_ids["INV-A1"])}
    planned = _tonights_reminders(journey, disputed)
    assert _numbers(planned) == ["INV-C1", "INV-C2"]
    assert planned.suppressed[PORTAL_DISPUTE] == 1
    acknowledgement = journey.mail(mails + 3)
    assert acknowledgement.rcpt_tos == [ALPHA_ERP_ADDRESS]
    assert acknowledgement.parsed()["Subject"] == (
        "Ihre Beanstandung der Rechnung INV-A1 ist eingegangen")

    # 5. INV-A3 paid through Checkout, paid once the signed webhook confirms it.
    page.goto(f"{journey.base}/invoices")
    page.get_by_role("link", name="INV-A3", exact=True).click()
    expect(page.locator("h1")).to_have_text("Rechnung INV-A3")
    expect(page.locator("dd.amount-due")).to_have_text("250,50 €")
    steps.record(page, "invoice INV-A3 before payment")
    invoice_a3 = page.url
    page.get_by_role("button", name="250,50 € mit Karte bezahlen").click()
    expect(page).to_have_url(re.compile(
        rf"^{re.escape(journey.stripe.url)}/c/pay/cs_test_[A-Za-z0-9]+$"))
    expect(page.locator("h1")).to_have_text("Pay 250.50 EUR")
    steps.record(page, "checkout page of the payment provider", scan=False)
    (session,) = journey.stripe.created()
    assert (session["amount_total"], session["currency"]) == (25050, "eur")
    assert session["client_reference_id"] == journey.world.invoice_ids["INV-A3"]
    assert session["metadata"]["q2c_invoice_number"] == "INV-A3"

    events = journey.stripe.complete(session["id"])
    page.goto(session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"]))
    expect(page.locator("h1")).to_have_text("Zahlung eingegangen")
    expect(page.get_by_role("status")).to_contain_text("die Bestätigung steht noch aus")
    steps.record(page, "payment awaiting the webhook")
    answers = journey.stripe.deliver(events)
    assert [answer.status for answer in answers] == [200, 200, 200]
    page.reload()
    expect(page.locator("h1")).to_have_text("Rechnung INV-A3 ist bezahlt")
    expect(page.get_by_role("status")).to_have_text(
        "Ihre Zahlung über 250,50 € ist bestätigt. Sie erscheint nach dem nächsten "
        "Buchungslauf im offenen Betrag der Rechnung.")
    steps.record(page, "invoice INV-A3 paid")
    page.goto(invoice_a3)
    expect(page.locator("main")).to_contain_text("Zahlung über 250,50 €")
    expect(page.locator("main")).to_contain_text("wird verbucht")
    expect(page.get_by_role("button", name="250,50 € mit Karte bezahlen")).to_have_count(0)
    steps.record(page, "invoice INV-A3 being booked, nothing left to pay")
    assert len(journey.stripe.created()) == 1
    context.close()

    assert [e.detail["invoice_number"] for e in journey.events(LINK_OPENED)] == ["INV-A1"]
    assert len(journey.events(SIGNED_IN)) == signed_in_before + 1
    downloads = [e.detail["kind"] for e in journey.events(DOCUMENT_DOWNLOADED)]
    assert downloads == ["pdf", "dispute_attachment"]
    assert len(journey.events(DISPUTE_OPENED)) == 1
    assert [e.object_id for e in journey.events(PAYMENT_CONFIRMED)] == [session["id"]]
    assert steps.serious_violations() == [], steps.report()


PHONE_PAGES = ("/invoices", "{A1}", "{A1}/dispute", "{A3}/cancelled", "/credit-notes",
               "/payments", "/statement")


def test_the_main_pages_fit_a_phone_width(journey: Journey, browser):
    steps = _recorder(journey, "phone-")
    context = browser.new_context(locale="de-DE", viewport={"width": PHONE_WIDTH,
                                                            "height": 740})
    page = context.new_page()
    overflowing: dict[str, int] = {}

    def visit(name: str) -> None:
        steps.record(page, name)
        extra = horizontal_overflow(page)
        if extra:
            overflowing[name] = extra

    page.goto(f"{journey.base}/sign-in")
    visit("sign-in")
    page.get_by_label("E-Mail-Adresse").fill(ALPHA_CONTACT)
    before = len(journey.smtp.messages)
    page.get_by_role("button", name="Anmeldelink senden").click()
    expect(page.locator("h1")).to_have_text("Bitte prüfen Sie Ihr Postfach")
    visit("sign-in mail sent")
    page.goto(sign_in_links(mail_text(journey.mail(before + 1)))[0])
    visit("magic link continue page")
    page.get_by_role("button", name="Weiter").click()
    expect(page).to_have_url(f"{journey.base}/invoices")
    links = {number: page.get_by_role("link", name=number, exact=True).get_attribute("href")
             for number in ("INV-A1", "INV-A3")}
    for path in PHONE_PAGES:
        page.goto(journey.base + path.format(A1=links["INV-A1"], A3=links["INV-A3"]))
        expect(page.locator("h1")).to_be_visible()
        visit(page.locator("h1").inner_text())
    context.close()

    assert len(steps.scanned) == 3 + len(PHONE_PAGES)
    assert overflowing == {}, f"pages wider than {PHONE_WIDTH} px: {overflowing}"
    assert steps.serious_violations() == [], steps.report()
