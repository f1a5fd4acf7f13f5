"""Invoice documents: loading from the core marts, HTML and PDF rendering, the render pool."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import io
import re
import shutil
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
import yaml
from babel.dates import format_date
from babel.numbers import format_currency
from pypdf import PdfReader

from q2c.content.registry import load_registry
from q2c.documents.email import render_invoice_email
from q2c.documents.load import load_invoice_batch, load_invoice_documents
from q2c.documents.model import Buyer, InvoiceDocument, InvoiceLine, TaxBreakdown
from q2c.documents.pool import (
    document_file_name,
    input_hash,
    manifest_input_hashes,
    plan_batch,
    record_manifest,
    render_batch,
)
from q2c.documents.render import (
    ContentFetchRefusedError,
    ContentUrlFetcher,
    render_html,
    render_pdf,
    resolve_content,
)
from q2c.money import Money
from q2c.settings import Seller
from q2c.warehouse import ensure_ops_tables

CONTENT_DIR = Path(__file__).resolve().parents[1] / "content"


def _money(amount: Decimal, currency: str) -> Money:
    return Money(amount, currency)


def make_invoice(
    number: str = "INV-2026-0042",
    currency: str = "EUR",
    language: str = "de",
    locale: str = "de_DE",
    prices: tuple[tuple[str, str, str], ...] = (
        ("Analytics Platform, Abonnement März 2026", "1", "800.00"),
        ("Onboarding-Workshop (Tage)", "2", "150.00"),
    ),
    discount: str = "100.00",
    tax_percent: str = "19",
    paid: str = "0",
    buyer_name: str = "Müller & Söhne Maschinenbau AG",
    issue_date: dt.date = dt.date(2026, 3, 2),
    credited: str = "0",
    memo: str | None = None,
) -> InvoiceDocument:
    """An invoice whose totals are computed here from its lines, the way the ERP does."""
    lines = tuple(
        InvoiceLine(
            index=i,
            description=text,
            quantity=Decimal(qty),
            unit_price=Decimal(price),
            amount=_money(Decimal(qty) * Decimal(price), currency),
        )
        for i, (text, qty, price) in enumerate(prices, start=1)
    )
    subtotal = sum((Decimal(q) * Decimal(p) for _, q, p in prices), Decimal(0))
    net = subtotal - Decimal(discount)
    tax = net * Decimal(tax_percent) / 100
    total = net + tax
    return InvoiceDocument(
        invoice_id=number.lower(),
        invoice_number=number,
        issue_date=issue_date,
        due_date=issue_date + dt.timedelta(days=30),
        currency=currency,
        language=language,
        locale=locale,
        seller=Seller(),
        buyer=Buyer(
            name=buyer_name,
            address_lines=("Industriestraße 12", "70565 Stuttgart"),
            country="DE",
            vat_id="DE129273398",
            email="ap@example.com",
        ),
        lines=lines,
        tax_breakdown=(
            TaxBreakdown(Decimal(tax_percent), _money(net, currency), _money(tax, currency)),
        ),
        subtotal=_money(subtotal, currency),
        discount=_money(Decimal(discount), currency),
        tax_total=_money(tax, currency),
        total=_money(total, currency),
        amount_paid=_money(Decimal(paid), currency),
        amount_credited=_money(Decimal(credited), currency),
        balance_due=_money(total - Decimal(paid) - Decimal(credited), currency),
        payment_term_days=30,
        payment_reference=number,
        memo=memo,
    )


def pdf_text(pdf: bytes) -> str:
    """The PDF's text with every kind of space made a plain space."""
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    return re.sub(r"[\s\u00a0\u202f]+", " ", text)


def spaced(text: str) -> str:
    return re.sub(r"[\s\u00a0\u202f]+", " ", text)


@pytest.fixture(scope="module")
def content():
    return load_registry(CONTENT_DIR)


# --- rendering -------------------------------------------------------------------------


def test_german_invoice_pdf_shows_number_total_lines_and_due_date(content):
    doc = make_invoice()
    # 1 x 800.00 + 2 x 150.00 - 100.00 discount = 1000.00 net; 19 % VAT = 190.00
    expected_total = Decimal("1190.00")

    html, used = render_html(doc, content)
    text = pdf_text(render_pdf(html))

    assert doc.total.amount == expected_total
    assert "INV-2026-0042" in text
    total = format_currency(expected_total, "EUR", locale="de_DE", currency_digits=True)
    assert spaced(total) in text
    assert spaced(total) == "1.190,00 €"
    assert "Analytics Platform, Abonnement März 2026" in text
    assert "Onboarding-Workshop (Tage)" in text
    assert format_date(dt.date(2026, 4, 1), format="medium", locale="de_DE") in text
    assert "DE89 3704 0044 0532 0130 00" in text
    assert used.versions() == {
        "template": {"id": "invoice", "version": "4"},
        "theme": {"id": "default", "version": "3"},
        "texts": {"id": "invoice_labels", "version": "3"},
    }


def test_japanese_yen_invoice_has_no_decimals(content):
    doc = make_invoice(
        currency="JPY",
        language="ja",
        locale="ja_JP",
        prices=(
            ("データ分析プラットフォーム 月額利用料", "1", "10000"),
            ("導入サポート", "2", "500"),
        ),
        discount="0",
        tax_percent="10",
    )
    expected_total = (Decimal(10000) + 2 * Decimal(500)) * Decimal("1.10")

    text = pdf_text(render_pdf(render_html(doc, content)[0]))

    total = spaced(format_currency(expected_total, "JPY", locale="ja_JP", currency_digits=True))
    assert total in text
    assert total == "￥12,100"
    assert "請求書" in text and "導入サポート" in text
    assert format_date(doc.due_date, format="medium", locale="ja_JP") in text


def test_kuwaiti_dinar_invoice_shows_three_decimals(content):
    doc = make_invoice(
        currency="KWD",
        language="en",
        locale="en_US",
        prices=(("Consulting", "3", "41.125"),),
        discount="0",
        tax_percent="0",
    )
    expected_total = 3 * Decimal("41.125")

    text = pdf_text(render_pdf(render_html(doc, content)[0]))

    total = spaced(format_currency(expected_total, "KWD", locale="en_US", currency_digits=True))
    assert total == "KWD123.375"
    assert f"Total {total}" in text


def test_pdf_metadata_has_the_invoice_number_language_and_issue_date(content):
    doc = make_invoice()

    reader = PdfReader(io.BytesIO(render_pdf(render_html(doc, content)[0])))

    assert reader.metadata.title == "INV-2026-0042"
    assert reader.trailer["/Root"]["/Lang"] == "de"
    assert reader.metadata["/CreationDate"].startswith("D:20260302")
    assert reader.metadata["/ModDate"].startswith("D:20260302")


def test_same_inputs_give_the_same_pdf_bytes(content):
    html, _ = render_html(make_invoice(), content)

    assert render_pdf(html) == render_pdf(html)


def test_customer_name_with_markup_is_printed_as_text(content):
    doc = make_invoice(buyer_name="<script>alert('x')</script> GmbH")

    html, _ = render_html(doc, content)

    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; GmbH" in html
    assert "<script>alert('x')</script> GmbH" in pdf_text(render_pdf(html))


def test_paid_invoice_says_so_instead_of_asking_for_payment(content):
    doc = make_invoice(language="en", locale="en_GB", paid="1190.00")

    text = pdf_text(render_pdf(render_html(doc, content)[0]))

    assert "This invoice is paid in full." in text
    assert "Please transfer" not in text
    assert f"Balance due {spaced(format_currency(0, 'EUR', locale='en_GB'))}" in text


def test_long_invoice_breaks_over_pages_with_page_numbers(content):
    lines = tuple((f"Service line {i}", "1", "10.00") for i in range(1, 61))
    doc = make_invoice(language="en", locale="en_IE", prices=lines, discount="0")

    reader = PdfReader(io.BytesIO(render_pdf(render_html(doc, content)[0])))
    pages = len(reader.pages)

    assert pages > 1
    assert f"Page {pages} of {pages}" in spaced(reader.pages[-1].extract_text())
    assert "Service line 60" in pdf_text(render_pdf(render_html(doc, content)[0]))


def test_preview_of_a_draft_is_watermarked_and_production_ignores_the_draft(tmp_path):
    root = tmp_path / "content"
    shutil.copytree(CONTENT_DIR, root)
    registry_file = root / "registry.yaml"
    data = yaml.safe_load(registry_file.read_text())
    invoices = [e for e in data["entries"] if e["id"] == "invoice"]
    approved = max((e for e in invoices if e["status"] == "approved"), key=lambda e: e["version"])
    # The next free version, copied from the approved one as a content owner would.
    draft = max(e["version"] for e in invoices) + 1
    shutil.copytree(root / approved["path"], root / f"templates/invoice/v{draft}")
    data["entries"].append(
        {
            **approved,
            "version": draft,
            "status": "draft",
            "path": f"templates/invoice/v{draft}",
            "approved_by": None,
            "approved_at": None,
        }
    )
    registry_file.write_text(yaml.safe_dump(data, sort_keys=False))
    registry = load_registry(root)
    doc = make_invoice(language="en", locale="en_GB")

    preview, preview_used = render_html(doc, registry, preview=True)
    production, production_used = render_html(doc, registry)

    assert preview_used.template.ref == f"invoice@v{draft}" and preview_used.is_draft
    assert "DRAFT – not valid" in preview
    assert production_used.template.ref == f"invoice@v{approved['version']}"
    assert not production_used.is_draft and not production_used.is_preview
    assert "DRAFT" not in production


# --- page layout and the closing line -----------------------------------------------------

# (item name, description, quantity, unit price): six lines of two text lines each, one more
# than the longest demo invoice has.
_SIX_ITEMS = (
    (
        "Platform subscription, Enterprise",
        "Platform subscription, Enterprise (Mar 2026)",
        "1",
        "4900.00",
    ),
    ("Onboarding package", "Onboarding package (Mar 2026)", "3", "3500.00"),
    ("Training day", "Training day (Mar 2026)", "2", "1200.00"),
    ("Consulting hour", "Consulting hour (Mar 2026)", "8", "165.00"),
    ("Single sign-on add-on", "Single sign-on add-on (Mar 2026)", "1", "150.00"),
    ("Premium support", "Premium support (Mar 2026)", "1", "990.00"),
)
_FR_MEMO = (
    "Bon de commande PO-2026-004711, centre de coûts 4410 Ventes Sud. Période de service "
    "du 1er au 31 mars 2026 selon le contrat-cadre CC-2024-17 du 12 février 2024 ; merci "
    "de rappeler le numéro de commande pour toute question."
)
_DE_MEMO = (
    "Bestellnummer PO-2026-004711, Kostenstelle 4410 Vertrieb Süd. Leistungszeitraum 1. bis "
    "31. März 2026 gemäß Rahmenvertrag RV-2024-17 vom 12. Februar 2024; bitte geben Sie bei "
    "Rückfragen die Bestellnummer an."
)


def six_line_invoice(language: str, locale: str, tax_percent: str, memo: str) -> InvoiceDocument:
    """The fullest invoice that must fit on one page.

    Six item lines with item names, a discount line, one tax rate, paid and credited
    amounts, an open balance (so payment instructions print) and a long memo.
    """
    doc = make_invoice(
        language=language,
        locale=locale,
        prices=tuple((description, qty, price) for _, description, qty, price in _SIX_ITEMS),
        discount="300.00",
        tax_percent=tax_percent,
        paid="500.00",
        credited="250.00",
        memo=memo,
    )
    items = tuple(
        dataclasses.replace(line, item_name=name)
        for line, (name, *_) in zip(doc.lines, _SIX_ITEMS, strict=True)
    )
    discount = InvoiceLine(
        index=len(items) + 1,
        description="Remise / Rabatt",
        quantity=None,
        unit_price=None,
        amount=_money(Decimal("-300.00"), "EUR"),
        kind="discount",
    )
    return dataclasses.replace(doc, lines=(*items, discount))


@pytest.mark.parametrize(
    ("language", "locale", "tax_percent", "memo", "balance"),
    [
        # 4900 + 3 x 3500 + 2 x 1200 + 8 x 165 + 150 + 990 = 20260.00, less 300.00 discount
        # = 19960.00 net. 20 % VAT = 3992.00, total 23952.00, less 500.00 paid and 250.00
        # credited = 23202.00.
        ("fr", "fr_FR", "20", _FR_MEMO, "23202.00"),
        # 19 % VAT = 3792.40, total 23752.40, less 750.00 = 23002.40.
        ("de", "de_DE", "19", _DE_MEMO, "23002.40"),
    ],
)
def test_six_line_invoice_with_discount_payments_and_memo_fits_on_one_page(
    content, language, locale, tax_percent, memo, balance
):
    doc = six_line_invoice(language, locale, tax_percent, memo)
    labels, _ = content.labels(language)

    reader = PdfReader(io.BytesIO(render_pdf(render_html(doc, content)[0])))

    assert len(reader.pages) == 1
    text = spaced(reader.pages[0].extract_text())
    assert doc.balance_due.amount == Decimal(balance)
    assert spaced(format_currency(Decimal(balance), "EUR", locale=locale)) in text
    assert "Premium support (Mar 2026)" in text
    assert "DE89 3704 0044 0532 0130 00" in text
    assert spaced(memo) in text
    assert spaced(labels["page_of"].format(page=1, pages=1)) in text


# 15 lines are one more than fit on the first page together with the end of the invoice.
@pytest.mark.parametrize("count", [15, 24])
def test_a_page_never_holds_only_the_end_of_an_invoice(content, count):
    lines = tuple((f"Service line {i}", "1", "10.00") for i in range(1, count + 1))
    doc = make_invoice(
        language="en", locale="en_GB", prices=lines, discount="0", paid="5.00", memo=_DE_MEMO
    )

    reader = PdfReader(io.BytesIO(render_pdf(render_html(doc, content)[0])))
    last = spaced(reader.pages[-1].extract_text())

    assert len(reader.pages) > 1
    # The totals, payment instructions and note move as one block, with the last line.
    assert f"Service line {count} " in last
    assert "Balance due" in last and "Please transfer" in last and spaced(_DE_MEMO) in last
    assert "Balance due" not in spaced(reader.pages[0].extract_text())


@pytest.mark.parametrize(
    ("language", "locale", "memo", "closing"),
    [
        ("en", "en_GB", "Thank you for your business.", "Thank you for your business."),
        ("nl", "nl_NL", "Bedankt voor uw opdracht.", "Hartelijk dank voor uw opdracht."),
        ("fr", "fr_FR", "Merci pour votre confiance.", "Merci de votre confiance."),
    ],
)
def test_a_memo_is_a_labelled_note_that_replaces_the_closing_line(
    content, language, locale, memo, closing
):
    # Paid in full (1190.00 of 1190.00), so the payment box prints its paid-in-full line.
    doc = make_invoice(language=language, locale=locale, paid="1190.00", memo=memo)
    labels, _ = content.labels(language)

    text = pdf_text(render_pdf(render_html(doc, content)[0]))

    assert text.count(memo) == 1
    assert text.count(closing) == (1 if closing == memo else 0)
    assert f"{labels['note'].upper()} {memo}" in text
    assert labels["paid_in_full"] in text


def test_without_a_memo_the_thank_you_line_appears_once(content):
    doc = make_invoice(language="en", locale="en_GB", paid="1190.00")

    text = pdf_text(render_pdf(render_html(doc, content)[0]))

    assert text.count("Thank you for your business.") == 1
    assert text.lower().count("thank") == 1
    assert "This invoice is paid in full." in text


# --- the URL fetcher -------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x.png",
        "https://example.com/logo.png",
        "/etc/passwd",
        "file:///etc/passwd",
        "../pyproject.toml",
        "file://otherhost/work/main/content/registry.yaml",
        # A data: URL without the comma before its data is malformed.
        "data:text/plain",
    ],
)
def test_fetcher_refuses_anything_outside_the_content_store(url):
    fetcher = ContentUrlFetcher(CONTENT_DIR)

    with pytest.raises(ContentFetchRefusedError, match="refused to fetch"):
        fetcher.fetch(url)


@pytest.mark.parametrize(
    ("url", "content_type", "body"),
    [
        ("data:text/plain,hello", "text/plain", b"hello"),
        # base64 of "hello"
        ("data:text/plain;base64,aGVsbG8=", "text/plain", b"hello"),
        ("data:image/svg+xml,%3Csvg%2F%3E", "image/svg+xml", b"<svg/>"),
    ],
)
def test_fetcher_serves_data_urls_from_their_own_bytes(url, content_type, body):
    fetcher = ContentUrlFetcher(CONTENT_DIR)

    response = fetcher.fetch(url)

    assert response.content_type == content_type
    assert response.read() == body
    assert fetcher.refused == []


def test_a_data_url_image_renders_but_its_own_links_are_still_refused():
    def page(svg: str) -> str:
        src = "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
        return f'<html><head><title>x</title></head><body><p>x</p><img src="{src}"></body></html>'

    svg = '<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9">{}</svg>'
    square = svg.format('<rect width="9" height="9"/>')
    reaching = svg.format('<image href="http://127.0.0.1/x.png" width="9" height="9"/>')

    assert render_pdf(page(square)).startswith(b"%PDF-")
    with pytest.raises(ContentFetchRefusedError, match="refused to fetch `http://127.0.0.1"):
        render_pdf(page(reaching))


def test_fetcher_serves_theme_files():
    fetcher = ContentUrlFetcher(CONTENT_DIR)

    response = fetcher.fetch((CONTENT_DIR / "themes/default/v1/logo.svg").as_uri())

    assert response.content_type == "image/svg+xml"
    assert response.read().startswith(b"<svg")


@pytest.mark.parametrize(
    "tag",
    [
        '<img src="http://127.0.0.1/x.png">',
        '<img src="/etc/passwd">',
        '<link rel="stylesheet" href="http://127.0.0.1/evil.css">',
    ],
)
def test_rendering_stops_on_a_link_outside_the_content_store(tag):
    html = f"<html><head><title>x</title></head><body><p>x</p>{tag}</body></html>"

    with pytest.raises(ContentFetchRefusedError, match="refused to fetch"):
        render_pdf(html)


# --- loading from the marts ------------------------------------------------------------

_CONTRACT_DDL = """
create schema core;
create table core.dim_accounts (
    account_key varchar, crm_account_id varchar, erp_customer_id varchar,
    match_method varchar, account_name varchar, parent_account_key varchar,
    segment varchar, country_code varchar, language varchar, locale varchar,
    currency varchar, billing_email varchar, billing_contact_name varchar,
    billing_street varchar, billing_city varchar, billing_postal_code varchar,
    billing_region varchar, billing_country_code varchar, vat_id varchar,
    delivery_preference varchar, payment_term_days integer, source_systems varchar
);
create table core.fct_invoices (
    invoice_key varchar, invoice_id varchar, source_system varchar, invoice_number varchar,
    account_key varchar, erp_customer_id varchar, crm_opportunity_id varchar,
    issue_date date, due_date date, currency varchar, currency_minor_units integer,
    subtotal_amount decimal(20,4), discount_amount decimal(20,4), tax_amount decimal(20,4),
    total_amount decimal(20,4), paid_amount decimal(20,4), credited_amount decimal(20,4),
    balance_amount decimal(20,4), computed_balance_amount decimal(20,4),
    exchange_rate decimal(20,8), total_amount_home decimal(20,4), status varchar,
    is_disputed boolean, days_overdue integer, billing_email varchar,
    customer_memo varchar, created_at timestamp, updated_at timestamp
);
create table core.fct_invoice_lines (
    invoice_line_key varchar, invoice_key varchar, invoice_id varchar, line_index integer,
    line_type varchar, item_id varchar, item_name varchar, description varchar,
    quantity decimal(20,4), unit_price decimal(20,4), amount decimal(20,4),
    tax_code varchar, currency varchar
);
create table core.fct_invoice_tax_lines (
    invoice_key varchar, invoice_id varchar, line_index integer, tax_rate_id varchar,
    tax_percent decimal(20,4), taxable_amount decimal(20,4), tax_amount decimal(20,4),
    currency varchar
);
"""


@pytest.fixture
def marts(tmp_path: Path):
    """A warehouse with the core contract tables and a few hand-made invoices.

    Invoice 101 (Berlin customer, German): 3 x 200.00 + 1 x 400.00 = 1000.00, discount
    50.00, tax 7 % on 300.00 = 21.00 and 19 % on 650.00 = 123.50 (two tax lines at 19 %:
    400.00 and 250.00), total 1094.50, paid 94.50, balance 1000.00.
    Invoice 102 (US customer, no language): 2 x 49.99 = 99.98, no tax, nothing paid.
    Invoice 103 has no total (a value that did not parse) and is rejected.
    """
    conn = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    conn.execute(_CONTRACT_DDL)
    conn.execute("""
        insert into core.dim_accounts (account_key, account_name, country_code, language,
            locale, currency, billing_email, billing_contact_name, billing_street,
            billing_city, billing_postal_code, billing_region, billing_country_code, vat_id,
            payment_term_days) values
        ('a1', 'Beispiel GmbH', 'DE', 'de', 'de_DE', 'EUR', 'rechnung@beispiel.example',
         'Anna Beispiel', 'Hauptstraße 1' || chr(10) || 'Haus B', 'Berlin', '10115', null,
         'DE', 'DE123456789', 14),
        ('a2', 'Acme Corp', 'US', null, null, 'USD', 'ap@acme.example', null,
         '1 Market St', 'San Francisco', '94105', 'CA', 'US', null, null)
    """)
    conn.execute("""
        insert into core.fct_invoices (invoice_id, invoice_number, account_key, issue_date,
            due_date, currency, subtotal_amount, discount_amount, tax_amount, total_amount,
            paid_amount, credited_amount, balance_amount, computed_balance_amount,
            billing_email, customer_memo) values
        ('101', '1001', 'a1', '2026-02-01', '2026-02-15', 'EUR', 1000, 50, 144.5, 1094.5,
         94.5, 0, 1000, 1000, null, 'PO 4711'),
        ('102', '1002', 'a2', '2026-02-03', null, 'USD', 99.98, 0, 0, 99.98, 0, 0, null,
         99.98, 'billing@acme.example', null),
        ('103', '1003', 'a1', '2026-02-04', '2026-02-18', 'EUR', 10, 0, 0, null, 0, 0, 0, 0,
         null, null)
    """)
    conn.execute("""
        insert into core.fct_invoice_lines (invoice_id, line_index, line_type, item_name,
            description, quantity, unit_price, amount, currency) values
        ('101', 2, 'item', 'Support', 'Premium support, February', 1, 400, 400, 'EUR'),
        ('101', 1, 'item', 'Seats', 'Seats', 3, 200, 600, 'EUR'),
        ('101', 3, 'discount', null, 'Loyalty discount', null, null, -50, 'EUR'),
        ('102', 1, 'item', 'API calls', null, 2, 49.99, 99.98, 'USD')
    """)
    conn.execute("""
        insert into core.fct_invoice_tax_lines (invoice_id, line_index, tax_percent,
            taxable_amount, tax_amount, currency) values
        ('101', 1, 19, 400, 76, 'EUR'),
        ('101', 2, 7, 300, 21, 'EUR'),
        ('101', 3, 19, 250, 47.5, 'EUR')
    """)
    yield conn
    conn.close()


def test_load_reads_invoice_amounts_lines_and_tax_from_the_contract_tables(marts):
    docs = {doc.invoice_id: doc for doc in load_invoice_documents(marts, None, Seller())}

    assert set(docs) == {"101", "102"}
    doc = docs["101"]
    eur = lambda value: Money(Decimal(value), "EUR")  # noqa: E731
    assert (doc.invoice_number, doc.issue_date, doc.due_date) == (
        "1001",
        dt.date(2026, 2, 1),
        dt.date(2026, 2, 15),
    )
    assert (doc.subtotal, doc.discount, doc.tax_total, doc.total) == (
        eur("1000"),
        eur("50"),
        eur("144.50"),
        eur("1094.50"),
    )
    assert (doc.amount_paid, doc.amount_credited, doc.balance_due) == (
        eur("94.50"),
        eur("0"),
        eur("1000"),
    )
    assert [(line.index, line.kind, line.description, line.amount) for line in doc.lines] == [
        (1, "item", "Seats", eur("600")),
        (2, "item", "Premium support, February", eur("400")),
        (3, "discount", "Loyalty discount", eur("-50")),
    ]
    assert doc.lines[1].item_name == "Support" and doc.lines[0].item_name is None
    assert doc.lines[0].quantity == Decimal(3) and doc.lines[0].unit_price == Decimal(200)
    assert [(t.rate, t.taxable, t.tax) for t in doc.tax_breakdown] == [
        (Decimal(7), eur("300"), eur("21")),
        (Decimal(19), eur("650"), eur("123.50")),
    ]
    assert (doc.language, doc.locale, doc.payment_term_days) == ("de", "de_DE", 14)
    assert doc.payment_reference == "1001" and doc.memo == "PO 4711"
    assert doc.buyer == Buyer(
        name="Beispiel GmbH",
        address_lines=("Hauptstraße 1", "Haus B", "10115 Berlin"),
        country="DE",
        vat_id="DE123456789",
        email="rechnung@beispiel.example",
        contact_name="Anna Beispiel",
    )


def test_load_fills_defaults_from_the_account_and_the_erp_figures(marts):
    (doc,) = load_invoice_documents(marts, ["102"], Seller())

    assert doc.buyer.address_lines == ("1 Market St", "San Francisco, CA 94105")
    assert doc.buyer.email == "billing@acme.example"
    assert (doc.language, doc.locale) == ("en", "en_US")
    assert doc.due_date == doc.issue_date
    # The ERP balance is empty, so the computed balance is printed.
    assert doc.balance_due == Money(Decimal("99.98"), "USD")


def test_load_rejects_an_invoice_without_total_and_a_missing_id(marts):
    result = load_invoice_batch(marts, ["101", "103", "999"], Seller())

    assert [doc.invoice_id for doc in result.documents] == ["101"]
    assert [(r.invoice_id, r.table, r.field) for r in result.rejected] == [
        ("103", "core.fct_invoices", "total_amount"),
        ("999", "core.fct_invoices", "invoice_id"),
    ]


def test_loaded_invoice_renders(marts, content):
    (doc,) = load_invoice_documents(marts, ["101"], Seller())

    text = pdf_text(render_pdf(render_html(doc, content)[0]))

    assert spaced(format_currency(Decimal("1094.50"), "EUR", locale="de_DE")) in text
    assert "Premium support, February" in text and "Haus B" in text


# --- the render pool and the manifest --------------------------------------------------


def test_pool_renders_a_batch_and_plan_skips_what_the_manifest_has(tmp_path, content):
    docs = [
        make_invoice(number=f"INV/2026 {n:03d}", issue_date=dt.date(2026, month, 10))
        for n, month in [(1, 1), (2, 1), (3, 2), (4, 3)]
    ]
    out_dir = tmp_path / "documents"

    rendered = render_batch(docs, out_dir, workers=2)

    assert [r.invoice_id for r in rendered] == [d.invoice_id for d in docs]
    used = resolve_content(content)
    for doc, result in zip(docs, rendered, strict=True):
        data = Path(result.path).read_bytes()
        assert result.content_hash == hashlib.sha256(data).hexdigest()
        assert result.bytes == len(data)
        assert result.input_hash == input_hash(doc, used)
        expected_name = f"INV_2026_{doc.invoice_number[-3:]}-{result.content_hash[:12]}.pdf"
        assert Path(result.path) == (
            out_dir / f"{doc.issue_date:%Y}" / f"{doc.issue_date:%m}" / expected_name
        )
        assert (result.template_id, result.template_version) == ("invoice", "4")
        assert (result.theme_id, result.theme_version, result.language) == ("default", "3", "de")
        # Worker processes give the same bytes as rendering here.
        assert data == render_pdf(render_html(doc, content)[0])

    conn = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    ensure_ops_tables(conn)
    assert record_manifest(conn, rendered, run_id="run-1") == 4
    assert record_manifest(conn, rendered, run_id="run-2") == 0
    stored = conn.execute(
        "select invoice_number, content_hash, bytes, run_id from q2c_ops.document_manifest "
        "order by invoice_number"
    ).fetchall()
    assert stored == [(r.invoice_number, r.content_hash, r.bytes, "run-1") for r in rendered]

    changed = dataclasses.replace(docs[2], memo="Corrected delivery address")
    to_render, already = plan_batch(
        [*docs[:2], changed, docs[3]], manifest_input_hashes(conn), content=content
    )
    conn.close()
    assert [d.invoice_number for d in to_render] == [changed.invoice_number]
    assert [d.invoice_number for d in already] == [
        docs[0].invoice_number,
        docs[1].invoice_number,
        docs[3].invoice_number,
    ]


def test_plan_renders_a_duplicate_once(content):
    doc = make_invoice()

    to_render, already = plan_batch([doc, doc], set(), content=content)

    assert (len(to_render), len(already)) == (1, 1)


def test_input_hash_changes_with_the_content_version(content):
    doc = make_invoice()
    used = resolve_content(content)
    sel = used.select(doc)
    t = sel.choices[0]
    newer = dataclasses.replace(
        sel,
        choices=(
            dataclasses.replace(t, entry=dataclasses.replace(t.entry, version=t.entry.version + 1)),
            *sel.choices[1:],
        ),
    )

    # Only the template's version differs: same id, files, sha256 and language.
    assert t.role == "template" and t.entry.id == "invoice"
    assert newer.template.ref == f"invoice@v{t.entry.version + 1}"
    assert input_hash(doc, sel) == input_hash(doc, used)
    assert input_hash(doc, used) != input_hash(doc, newer)
    assert input_hash(doc, used) == input_hash(make_invoice(), used)
    # So does a new version of the theme, the labels or a legal text. Message blocks are
    # left out of the hash on purpose (Selection.hash_payload).
    for i, choice in enumerate(sel.choices):
        if choice.role == "block":
            continue
        bumped = dataclasses.replace(
            choice, entry=dataclasses.replace(choice.entry, version=choice.entry.version + 1)
        )
        changed = dataclasses.replace(
            sel, choices=(*sel.choices[:i], bumped, *sel.choices[i + 1 :])
        )
        assert input_hash(doc, changed) != input_hash(doc, sel), choice.label


@pytest.mark.parametrize(
    ("number", "stem"),
    [
        ("INV-2026-001", "INV-2026-001"),
        ("../../etc/passwd", "etc_passwd"),
        ("Rechnung Nr. 7/2026", "Rechnung_Nr._7_2026"),
        ("///", "invoice"),
    ],
)
def test_file_names_are_safe(number, stem):
    assert document_file_name(number, "ab" * 32) == f"{stem}-{'ab' * 6}.pdf"


# --- the invoice email -----------------------------------------------------------------


def test_invoice_email_is_localized_and_escaped(content):
    doc = make_invoice(buyer_name="Dupont & <b>Fils</b>", language="fr", locale="fr_FR")

    email = render_invoice_email(doc, content)

    amount = format_currency(doc.balance_due.amount, "EUR", locale="fr_FR")
    due = format_date(doc.due_date, format="medium", locale="fr_FR")
    assert email.subject == "Facture INV-2026-0042 de Northwind Analytics GmbH"
    assert f"Montant dû : {amount}, payable au plus tard le {due}." in email.text
    assert "Bonjour Dupont & <b>Fils</b>," in email.text
    assert "Dupont &amp; &lt;b&gt;Fils&lt;/b&gt;" in email.html
    assert email.versions["html"] == {"id": "invoice_email_html", "version": "1"}


def test_line_numbers_count_the_printed_lines_from_one_whatever_the_erp_index(content):
    """QuickBooks numbers its lines from 0; the invoice numbers what it prints from 1."""
    doc = make_invoice()
    from_zero = dataclasses.replace(doc, lines=tuple(
        dataclasses.replace(line, index=line.index - 1) for line in doc.lines))

    html, _ = render_html(from_zero, content)

    cells = re.findall(r'<td class="position">(?:<bdi[^>]*>)?(\d+)', html)
    assert [line.index for line in from_zero.item_lines] == [0, 1]
    assert cells == ["1", "2"]
