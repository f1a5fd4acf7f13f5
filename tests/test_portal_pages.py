"""The customer's pages with hand-computed values for the collections_support accounts,
the downloads, per-invoice links and their revocation, and the events they record.

Values (tests/collections_support.py, 15 March 2026): Alpha (German, de_DE) owes INV-A1
1190.00, INV-A2 500.00 and INV-A3 300.00 - 49.50 = 250.50, together 1940.50; CN-A1 leaves
100.00 of credit, so the balance is 1840.50, of which 1190.00 + 250.50 = 1440.50 overdue
(INV-A2 is due that day). Beta (English, en_GB) owes 400.00 + 600.00 = 1000.00, all overdue.

Where the nightly has built q2c's balances (tests/portal_support.py
`q2c_balances_warehouse`: portal payments of 250.50 to INV-A3 and 190.00 to INV-A1 that
the ERP has not booked), Alpha owes INV-A1 1190.00 - 190.00 = 1000.00 and INV-A2 500.00,
together 1500.00; less CN-A1's 100.00 the balance is 1400.00, of which INV-A1's 1000.00 is
overdue; INV-A3 is paid (300.00 - 49.50 - 250.50 = 0.00).
"""

from __future__ import annotations

import html
import re

import pytest
from portal_disputes_support import open_dispute
from portal_support import (
    ALPHA,
    ALPHA_CONTACT,
    ATTACHMENT_NAME,
    BETA_ADDRESS,
    EINVOICE_XML,
    public_ids,
    q2c_balances_warehouse,
    sign_in,
    smtp_settings,
    start_portal,
)

from q2c.cli import main
from q2c.opsdb import connect
from q2c.portal.dispute_replies import dispute_book
from q2c.portal.events import (
    DOCUMENT_DOWNLOADED,
    INVOICE_VIEWED,
    LINK_OPENED,
    LINK_REVOKED,
    SIGN_IN_REQUESTED,
    SIGNED_IN,
    SIGNED_OUT,
    STATEMENT_VIEWED,
    events_of,
)
from q2c.settings import PROJECT_ROOT


@pytest.fixture
def alpha(portal, smtp_server):
    return sign_in(portal, smtp_server, ALPHA_CONTACT)


@pytest.fixture
def beta(portal, smtp_server):
    return sign_in(portal, smtp_server, BETA_ADDRESS)


def text_of(page: str) -> str:
    """The visible text of the page's main part, whitespace collapsed."""
    main_part = re.search(r"<main.*?</main>", page, re.S).group(0)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", main_part)).split())


def events(portal, **filters):
    with connect(portal.settings.ops_store) as conn:
        return events_of(conn, **filters)


def test_alpha_statement_in_german(portal, alpha, world):
    page = alpha.get("/statement")
    assert page.status_code == 200
    assert '<html lang="de"' in page.text
    text = text_of(page.text)
    assert "Kontoauszug Stand 15.03.2026" in text
    assert "Offene Rechnungen 1.940,50 €" in text
    assert "Nicht verbrauchte Gutschriften 100,00 €" in text
    assert "Noch nicht verrechnete Zahlungen 0,00 €" in text
    assert "Saldo 1.840,50 € Davon überfällig 1.440,50 €" in text
    assert ("10.02.2026 Rechnung INV-A1 1.190,00 € 1.190,00 € "
            "12.02.2026 Rechnung INV-A3 250,50 € 1.440,50 € "
            "13.02.2026 Rechnung INV-A2 500,00 € 1.940,50 € "
            "01.03.2026 Gutschrift CN-A1 100,00 € 1.840,50 €") in text
    [viewed] = events(portal, kind=STATEMENT_VIEWED)
    assert viewed.account_key == world.account_keys[ALPHA]
    assert viewed.actor == "customer:salesforce:ct1"


def test_beta_statement_in_english(portal, beta):
    text = text_of(beta.get("/statement").text)
    assert "Account statement As of 15 Mar 2026" in text
    assert "Open invoices €1,000.00" in text
    assert "Balance €1,000.00 Of which overdue €1,000.00" in text


def test_invoice_list_shows_status_due_date_balance_and_po(portal, alpha, beta):
    text = text_of(alpha.get("/invoices").text)
    assert ("INV-A2 13.02.2026 15.03.2026 Offen <script>alert(1)</script>& "
            "500,00 € 500,00 €") in text
    assert "INV-A3 12.02.2026 14.03.2026 Teilweise bezahlt 300,00 € 250,50 €" in text
    assert "INV-A1 10.02.2026 12.03.2026 Überfällig PO-2026-17 1.190,00 € 1.190,00 €" in text
    assert "INV-A4 01.01.2026 31.01.2026 Bezahlt 100,00 € 0,00 €" in text
    beta_text = text_of(beta.get("/invoices").text)
    assert "INV-B2 2 Jan 2026 1 Feb 2026 Overdue In dispute €600.00 €600.00" in beta_text
    assert "INV-B1 29 Jan 2026 28 Feb 2026 Overdue €400.00 €400.00" in beta_text


def test_invoice_detail_with_lines_payments_and_legal_text(portal, alpha, world):
    invoice = public_ids(alpha.get("/invoices").text)["INV-A3"]
    page = alpha.get(f"/invoices/{invoice}")
    text = text_of(page.text)
    assert "Rechnung INV-A3 Status Teilweise bezahlt" in text
    assert "Offener Betrag 250,50 €" in text
    assert "1 Analytics platform 1 300,00 € 300,00 €" in text
    assert ("Zwischensumme 300,00 € Steuer 0,00 € Gesamt 300,00 € Bezahlt 49,50 € "
            "Gutgeschrieben 0,00 € Offener Betrag 250,50 €") in text
    assert "01.03.2026 Zahlung 49,50 €" in text
    legal = (PROJECT_ROOT / "content/legal/late_payment_de/v1/de.txt").read_text().strip()
    assert html.escape(legal, quote=True) in page.text
    [viewed] = events(portal, kind=INVOICE_VIEWED)
    assert viewed.invoice_id == world.invoice_ids["INV-A3"]
    assert viewed.detail == {"invoice_number": "INV-A3"}


def test_credit_notes_and_payments(portal, alpha):
    notes = text_of(alpha.get("/credit-notes").text)
    assert "CN-A1 01.03.2026 100,00 € 100,00 €" in notes
    payments = text_of(alpha.get("/payments").text)
    assert "01.03.2026 INV-A3 (49,50 €) 49,50 € 0,00 €" in payments
    assert "10.02.2026 INV-A4 (100,00 €) 100,00 € 0,00 €" in payments


def _file_links(client, invoice) -> dict[str, str]:
    page = client.get(f"/invoices/{invoice}").text
    return {html.unescape(label): path for path, label in
            re.findall(r'href="(/invoices/[^"]+/files/[^"]+)" download>([^<]+)<', page)}


def test_downloads_of_pdf_einvoice_and_attachment(portal, alpha, world):
    invoice = public_ids(alpha.get("/invoices").text)["INV-A1"]
    links = _file_links(alpha, invoice)
    assert sorted(links) == [f"Anlage: {ATTACHMENT_NAME}", "E-Rechnung (XML): INV-A1.xml",
                             "Rechnung (PDF): INV-A1.pdf"]
    pdf = alpha.get(links["Rechnung (PDF): INV-A1.pdf"])
    assert pdf.content == world.pdfs["INV-A1"]
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"].startswith('attachment; filename="INV-A1.pdf"')
    xml = alpha.get(links["E-Rechnung (XML): INV-A1.xml"])
    assert xml.content == EINVOICE_XML
    attachment = alpha.get(links[f"Anlage: {ATTACHMENT_NAME}"])
    assert attachment.content == b"Geliefert am 9. Februar.\n"
    downloaded = events(portal, kind=DOCUMENT_DOWNLOADED)
    assert [(e.detail["kind"], e.detail["filename"]) for e in downloaded] == [
        ("pdf", "INV-A1.pdf"), ("einvoice", "INV-A1.xml"), ("attachment", ATTACHMENT_NAME)]
    assert {e.invoice_id for e in downloaded} == {world.invoice_ids["INV-A1"]}


def test_invoice_without_documents_says_so(portal, alpha):
    invoice = public_ids(alpha.get("/invoices").text)["INV-A4"]
    assert "Noch kein Dokument zum Herunterladen verfügbar." in alpha.get(
        f"/invoices/{invoice}").text


def test_invoice_link_opens_that_invoice_only_until_revoked(portal, world, monkeypatch,
                                                            capsys):
    token = world.links["INV-A1"]
    client = portal.client()
    page = client.get(f"/documents/{token}")
    assert page.status_code == 200 and "INV-A1" not in page.text  # a scanner sees nothing
    assert client.get("/invoices", follow=False).headers["location"] == "/sign-in"
    opened = client.post(f"/documents/{token}")
    assert opened.status_code == 303
    invoice_page = client.get(opened.headers["location"])
    text = text_of(invoice_page.text)
    assert "Rechnung INV-A1" in text and "Offener Betrag 1.190,00 €" in text
    assert 'href="/statement"' not in invoice_page.text  # nothing else is listed
    assert client.get("/invoices").url.endswith(opened.headers["location"])
    pdf_link = _file_links(client, opened.headers["location"].rpartition("/")[2])[
        "Rechnung (PDF): INV-A1.pdf"]
    assert client.get(pdf_link).content == world.pdfs["INV-A1"]

    monkeypatch.setenv("Q2C_OPS_STORE", str(portal.settings.ops_store))
    monkeypatch.setenv("Q2C_PORTAL_DIR", str(world.portal_dir))
    link = f"{portal.base_url}/documents/{token}"
    assert main(["portal", "revoke-link", link, "--by", "tester", "--reason", "sent to "
                 "the wrong address"]) == 0
    assert "1 session(s) ended" in capsys.readouterr().out
    assert main(["portal", "revoke-link", token, "--by", "tester"]) == 0
    assert "was already revoked" in capsys.readouterr().out

    assert client.get(opened.headers["location"], follow=False).headers["location"] == (
        "/sign-in")
    assert portal.client().get(f"/documents/{token}").status_code == 404
    kinds = [(e.kind, e.actor) for e in events(portal)]
    link_id = events(portal, kind=LINK_OPENED)[0].object_id
    by_link = f"link:{link_id}"
    assert kinds == [(LINK_OPENED, by_link)] + [(INVOICE_VIEWED, by_link)] * 3 + [
        (DOCUMENT_DOWNLOADED, by_link), (LINK_REVOKED, "staff:tester")]
    revoked = events(portal, kind=LINK_REVOKED)[0]
    assert revoked.detail == {"reason": "sent to the wrong address", "sessions_ended": 1}
    assert revoked.invoice_id == world.invoice_ids["INV-A1"]
    assert token not in str([e.detail for e in events(portal)])


def test_a_signed_in_customer_opening_their_link_keeps_the_account(portal, alpha, world):
    opened = alpha.post(f"/documents/{world.links['INV-A1']}")
    assert opened.headers["location"].startswith("/invoices/")
    assert alpha.get("/statement").status_code == 200


def test_every_step_of_a_visit_is_an_event(portal, alpha, world):
    invoice = public_ids(alpha.get("/invoices").text)["INV-A1"]
    links = _file_links(alpha, invoice)
    alpha.get(links["Rechnung (PDF): INV-A1.pdf"])
    alpha.get("/statement")
    alpha.post("/sign-out")
    recorded = events(portal)
    assert [e.kind for e in recorded] == [
        SIGN_IN_REQUESTED, SIGNED_IN, INVOICE_VIEWED, DOCUMENT_DOWNLOADED, STATEMENT_VIEWED,
        SIGNED_OUT]
    assert {e.account_key for e in recorded[1:]} == {world.account_keys[ALPHA]}
    assert all(e.client == "127.0.0.1" for e in recorded)


_INPUT = re.compile(r"<(input|select|textarea)\b([^>]*)>", re.S)


def _checks_out(page: str, path: str) -> None:
    assert re.search(r'<html lang="(en|de)"', page), path
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert '<a class="skip-link" href="#main">' in page and 'id="main"' in page, path
    assert len(re.findall(r"<h1>", page)) == 1, path
    for kind, attributes in _INPUT.findall(page):
        if 'type="hidden"' in attributes:
            continue
        field = re.search(r'id="([^"]+)"', attributes)
        assert field and f'<label for="{field.group(1)}">' in page, f"{path}: {kind} unlabelled"
    for button in re.findall(r"<button[^>]*>(.*?)</button>", page, re.S):
        assert button.strip(), f"{path}: a button without text"


def test_pages_are_labelled_and_skippable(portal, alpha, world):
    invoice = public_ids(alpha.get("/invoices").text)["INV-A1"]
    for path in ("/invoices", f"/invoices/{invoice}", "/credit-notes", "/payments",
                 "/statement", "/nothing-here"):
        _checks_out(alpha.get(path).text, path)
    visitor = portal.client()
    for path in ("/sign-in", "/sign-in/sent", f"/sign-in/link/{'a' * 43}",
                 f"/documents/{world.links['INV-B1']}"):
        _checks_out(visitor.get(path).text, path)
    assert '<a href="/invoices" aria-current="page">Rechnungen</a>' in alpha.get(
        "/invoices").text


def test_the_postgres_warehouse_shows_the_same_pages(world, tmp_path, smtp_server,
                                                    monkeypatch):
    """`--warehouse postgres` reads the same core tables through read-only sessions."""
    from portal_support import copy_core_to_postgres
    from postgres_server import running_postgres

    from q2c.portal.access import CustomerView, PostgresReader
    from q2c.portal.web import Customer
    from q2c.warehouse_postgres import PostgresTarget

    with running_postgres() as server:
        server.create_database("portal")
        conn = server.connect("portal")
        try:
            copy_core_to_postgres(world, conn)
        finally:
            conn.close()
        for name, value in server.environment("portal").items():
            monkeypatch.setenv(name, value)
        portal = start_portal(lambda base: world.settings(
            tmp_path / "home", portal_base_url=base, **smtp_settings(smtp_server)),
            warehouse="postgres")
        try:
            # Only the account's billing address: the CRM contacts are not copied.
            alpha = sign_in(portal, smtp_server, "ap@alpha-tools.example")
            text = text_of(alpha.get("/statement").text)
            assert "Saldo 1.840,50 € Davon überfällig 1.440,50 €" in text
            invoice = public_ids(alpha.get("/invoices").text)["INV-A3"]
            assert "01.03.2026 Zahlung 49,50 €" in text_of(alpha.get(f"/invoices/{invoice}").text)
        finally:
            portal.stop()

        pg = PostgresTarget.from_env().connect()
        pg.set_session(readonly=True, autocommit=True)
        try:
            view = CustomerView(PostgresReader(pg), Customer(world.account_keys[ALPHA], "t", "de"),
                                secret=b"s" * 32)
            assert [i.invoice_number for i in view.invoices()] == [
                "INV-A2", "INV-A3", "INV-A1", "INV-A4"]
            with pytest.raises(Exception, match="read-only transaction"):
                view.reader.rows("insert into core.fct_invoices (invoice_id) values ('x')")
        finally:
            pg.close()



# ---------------------------------------------------------------------------------------
# q2c's balances, and portal disputes


@pytest.fixture
def balances_portal(world, tmp_path, tmp_path_factory, smtp_server):
    warehouse = q2c_balances_warehouse(world, tmp_path_factory)
    running = start_portal(lambda base: world.settings(
        tmp_path / "home", portal_base_url=base, warehouse_path=warehouse,
        **smtp_settings(smtp_server)))
    yield running
    running.stop()


def test_pages_show_q2c_balances_once_the_nightly_allocated_a_portal_payment(
        balances_portal, smtp_server):
    """fct_invoices still has the ERP's 1190.00 (INV-A1) and 250.50 (INV-A3) open."""
    alpha = sign_in(balances_portal, smtp_server, ALPHA_CONTACT)
    listed = alpha.get("/invoices").text
    text = text_of(listed)
    assert "INV-A3 12.02.2026 14.03.2026 Bezahlt 300,00 € 0,00 €" in text
    assert ("INV-A1 10.02.2026 12.03.2026 Teilweise bezahlt PO-2026-17 1.190,00 € "
            "1.000,00 €") in text
    assert "INV-A2 13.02.2026 15.03.2026 Offen" in text and "500,00 € 500,00 €" in text
    ids = public_ids(listed)

    paid = alpha.get(f"/invoices/{ids['INV-A3']}").text
    paid_text = text_of(paid)
    assert "Rechnung INV-A3 Status Bezahlt" in paid_text
    assert ("Gesamt 300,00 € Bezahlt 300,00 € Gutgeschrieben 0,00 € "
            "Offener Betrag 0,00 €") in paid_text
    assert "01.03.2026 Zahlung 49,50 € 14.03.2026 Zahlung 250,50 €" in paid_text
    assert f"/invoices/{ids['INV-A3']}/pay" not in paid
    partly = text_of(alpha.get(f"/invoices/{ids['INV-A1']}").text)
    assert "Offener Betrag 1.000,00 €" in partly
    assert "1.000,00 € mit Karte bezahlen" in partly

    statement = text_of(alpha.get("/statement").text)
    assert "Offene Rechnungen 1.500,00 €" in statement
    assert "Saldo 1.400,00 € Davon überfällig 1.000,00 €" in statement
    assert ("10.02.2026 Rechnung INV-A1 1.000,00 € 1.000,00 € "
            "13.02.2026 Rechnung INV-A2 500,00 € 1.500,00 € "
            "01.03.2026 Gutschrift CN-A1 100,00 € 1.400,00 €") in statement
    assert "INV-A3" not in statement


def _alpha_view(reader, world):
    from q2c.portal.access import CustomerView
    from q2c.portal.web import Customer

    return CustomerView(reader, Customer(world.account_keys[ALPHA], "t", "de"),
                        secret=b"s" * 32)


def _figures(view) -> list[tuple]:
    return [(i.invoice_number, str(i.balance), str(i.paid), i.status, i.days_overdue)
            for i in view.invoices()]


def test_without_q2c_balances_the_erp_balance_is_shown(world):
    import duckdb

    with duckdb.connect(str(world.warehouse), read_only=True) as conn:
        view = _alpha_view(conn, world)
        assert view.q2c_balances is False
        assert _figures(view) == [
            ("INV-A2", "500.00", "0.00", "open", 0),
            ("INV-A3", "250.50", "49.50", "partially_paid", 1),
            ("INV-A1", "1190.00", "0.00", "overdue", 3),
            ("INV-A4", "0.00", "100.00", "paid", 0)]


def test_duckdb_and_postgres_read_the_same_q2c_balances(world, tmp_path_factory):
    """Both readers run the same statements; the copy in Postgres gives the same objects."""
    import duckdb
    from portal_support import copy_core_to_postgres
    from postgres_server import running_postgres

    from q2c.portal.access import PostgresReader

    warehouse = q2c_balances_warehouse(world, tmp_path_factory)
    expected = [("INV-A2", "500.00", "0.00", "open", 0),
                ("INV-A3", "0.00", "300.00", "paid", 0),
                ("INV-A1", "1000.00", "190.00", "partially_paid", 3),
                ("INV-A4", "0.00", "100.00", "paid", 0)]
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        duck = _alpha_view(conn, world)
        assert duck.q2c_balances is True
        assert _figures(duck) == expected
        from_duckdb = (duck.invoices(), duck.statement(), duck.invoice_by_id("a3"),
                       duck.payments_applied(duck.invoice_by_id("a3"),
                                             ["pi_portalA3", "ch_portalA1", "ch_other"]))
    with running_postgres() as server:
        server.create_database("balances")
        pg = server.connect("balances")
        try:
            copy_core_to_postgres(world, pg, warehouse)
            pg.set_session(readonly=True, autocommit=True)
            view = _alpha_view(PostgresReader(pg), world)
            assert view.q2c_balances is True
            from_postgres = (view.invoices(), view.statement(), view.invoice_by_id("a3"),
                             view.payments_applied(view.invoice_by_id("a3"),
                                                   ["pi_portalA3", "ch_portalA1", "ch_other"]))
        finally:
            pg.close()
    assert from_postgres == from_duckdb
    invoices, statement, a3, applied = from_postgres
    assert (str(statement.invoices_open_total), str(statement.balance),
            str(statement.overdue_total)) == ("1500.00", "1400.00", "1000.00")
    assert [(item.date.isoformat(), str(item.amount)) for item in a3.applied] == [
        ("2026-03-01", "49.50"), ("2026-03-14", "250.50")]
    assert applied == {"pi_portalA3"}  # ch_portalA1 was applied to INV-A1, not INV-A3


def test_an_open_portal_dispute_hides_the_pay_button_until_it_is_resolved(portal, alpha):
    ids = public_ids(alpha.get("/invoices").text)
    pay = f'action="/invoices/{ids["INV-A3"]}/pay"'
    assert pay in alpha.get(f"/invoices/{ids['INV-A3']}").text

    opened = open_dispute(alpha, ids["INV-A3"], comment="Der Betrag stimmt nicht.")
    assert opened.status_code == 303, opened.text

    listed = text_of(alpha.get("/invoices").text)
    assert ("INV-A3 12.02.2026 14.03.2026 Teilweise bezahlt Beanstandet 300,00 € "
            "250,50 €") in listed
    assert "INV-A1 10.02.2026 12.03.2026 Überfällig PO-2026-17" in listed
    page = alpha.get(f"/invoices/{ids['INV-A3']}").text
    assert "Status Teilweise bezahlt Beanstandet" in text_of(page)
    assert pay not in page
    assert 'action="/invoices/' in alpha.get(f"/invoices/{ids['INV-A1']}").text

    book = dispute_book(portal.settings)
    (dispute,) = book.listing()
    book.resolve(dispute.dispute_number, "Olga Owner", "rejected",
                 reason="The amount is the one agreed.")

    assert pay in alpha.get(f"/invoices/{ids['INV-A3']}").text
    assert "Beanstandet" not in text_of(alpha.get("/invoices").text)
