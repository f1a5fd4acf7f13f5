"""Long invoices: 200 lines over several pages, and long references inside their boxes.

The PDF is read back page by page with poppler's pdftotext (`-layout` for what a reader
sees on a line, `-raw` for the order the text is drawn in, `-bbox` for word positions);
the boxes of long references are checked in WeasyPrint's own layout.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from weasyprint import HTML
from weasyprint.formatting_structure import boxes

from q2c.content.registry import load_registry
from q2c.documents.model import Buyer, InvoiceDocument, InvoiceLine, TaxBreakdown
from q2c.documents.render import ContentUrlFetcher, render_html, render_pdf
from q2c.money import Money
from q2c.settings import Seller

CONTENT_DIR = Path(__file__).resolve().parents[1] / "content"
LINE_COUNT = 200
# Unbroken references longer than any box they are printed in.
PRODUCT_CODES = {
    7: "PRD-" + "".join(f"{n:02d}" for n in range(38)),  # 80 characters
    120: "SKU_" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" * 2 + "XYZ0",  # 80 characters
}
ORDER_ID = "SO-2026-000098765432101-EMEA-DE-BERLIN-RECURRING-BILLING-PLAN-7788"
EMAIL = "accounts.payable.department.all.subsidiaries@very-long-customer-domain-name.example"
# A 32-character IBAN (Saint Lucia), printed in groups of four.
LONG_IBAN = "LC55HEMM000100010012001200023015"
# A4 is 595.28 points wide; the theme's page margins left and right are 16 mm.
PAGE_WIDTH = 595.28
MARGIN = 16 / 25.4 * 72


def unit_price(index: int) -> Decimal:
    """A price no other line has (10.01, 10.02, ..., 12.00), so each row is recognisable."""
    return Decimal(1000 + index) / 100


def make_invoice(count: int, **changes) -> InvoiceDocument:
    lines = tuple(
        InvoiceLine(
            index=index,
            description=PRODUCT_CODES.get(index, f"Monthly fee, contract C-{index:03d}"),
            quantity=Decimal(1),
            unit_price=unit_price(index),
            amount=Money(unit_price(index), "EUR"),
            item_name=f"Service line {index:03d}",
        )
        for index in range(1, count + 1)
    )
    subtotal = Money(sum((line.amount.amount for line in lines), Decimal(0)), "EUR")
    tax = Money(subtotal.amount * Decimal("0.19"), "EUR")
    doc = InvoiceDocument(
        invoice_id="inv-2026-0200",
        invoice_number="INV-2026-0200",
        issue_date=dt.date(2026, 3, 2),
        due_date=dt.date(2026, 4, 1),
        currency="EUR",
        language="en",
        locale="en_IE",
        seller=Seller(),
        buyer=Buyer(
            name="Harbour & Finch Ltd",
            address_lines=("1 Quay Street", "Dublin D02 XY45"),
            country="IE",
            vat_id="IE6388047V",
            email=EMAIL,
        ),
        lines=lines,
        tax_breakdown=(TaxBreakdown(Decimal(19), subtotal, tax),),
        subtotal=subtotal,
        discount=Money(Decimal(0), "EUR"),
        tax_total=tax,
        total=subtotal + tax,
        amount_paid=Money(Decimal(0), "EUR"),
        amount_credited=Money(Decimal(0), "EUR"),
        balance_due=subtotal + tax,
        payment_term_days=30,
        payment_reference=ORDER_ID,
    )
    return dataclasses.replace(doc, **changes)


def pdftotext(pdf: bytes, *options: str) -> str:
    return subprocess.run(
        ["pdftotext", "-enc", "UTF-8", *options, "-", "-"],
        input=pdf,
        capture_output=True,
        check=True,
    ).stdout.decode("utf-8")


def squeeze(text: str) -> str:
    return re.sub(r"[\s\u00a0\u202f]+", " ", text).strip()


_WORD = re.compile(
    r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="[\d.]+">([^<]*)</word>'
)


def words(pdf: bytes, page: int | None = None) -> list[tuple[str, float, float, float]]:
    """(text, left, top, right) of each word, of one page or of all."""
    pages = ["-f", str(page), "-l", str(page)] if page else []
    return [
        (text, float(left), float(top), float(right))
        for left, top, right, text in _WORD.findall(pdftotext(pdf, "-bbox", *pages))
    ]


def test_no_word_of_any_page_runs_into_the_margins(long_invoice):
    found = words(long_invoice.pdf)

    assert len(found) > 2000
    outside = [
        (text, left, right)
        for text, left, _, right in found
        if left < MARGIN - 0.5 or right > PAGE_WIDTH - MARGIN + 0.5
    ]
    assert outside == []
    long_pieces = [text for text, _, _, _ in found if text and text in PRODUCT_CODES[7]]
    assert len(long_pieces) >= 2  # the 80-character code was broken into lines


@dataclasses.dataclass(frozen=True)
class LongInvoice:
    doc: InvoiceDocument
    pdf: bytes
    pages: list[str]  # `pdftotext -layout` of each page
    raw_pages: list[str]  # `pdftotext -raw` of each page


@pytest.fixture(scope="module")
def long_invoice() -> LongInvoice:
    content = load_registry(CONTENT_DIR)
    doc = make_invoice(LINE_COUNT)
    html, _ = render_html(doc, content)
    pdf = render_pdf(html)
    count = int(re.search(r"Pages:\s+(\d+)", subprocess.run(
        ["pdfinfo", "-"], input=pdf, capture_output=True, check=True
    ).stdout.decode())[1])
    pages = [pdftotext(pdf, "-layout", "-f", str(n), "-l", str(n)) for n in range(1, count + 1)]
    raw = [pdftotext(pdf, "-raw", "-f", str(n), "-l", str(n)) for n in range(1, count + 1)]
    return LongInvoice(doc, pdf, pages, raw)


def test_the_200_lines_flow_over_several_pages(long_invoice):
    # A row holds two lines of text (item name and detail), about 9 mm: 200 rows need at
    # least seven pages of 263 mm text height.
    assert len(long_invoice.pages) >= 7


def test_the_table_header_is_repeated_identically_on_every_page(long_invoice):
    headers = [
        [line for line in page.splitlines() if "Description" in line]
        for page in long_invoice.pages
    ]
    # The same words at the same horizontal positions on every page.
    positions = []
    for number in range(1, len(long_invoice.pages) + 1):
        found = words(long_invoice.pdf, number)
        (title,) = [w for w in found if w[0] == "Description"]
        positions.append([(text, left, right) for text, left, top, right in found
                          if abs(top - title[2]) < 1])

    assert all(len(found) == 1 for found in headers), headers
    assert {squeeze(found[0]) for found in headers} == {"No. Description Qty Unit price Amount"}
    assert [text for text, _, _ in positions[0]] == [
        "No.", "Description", "Qty", "Unit", "price", "Amount"
    ]
    assert all(found == positions[0] for found in positions[1:])


def test_every_page_says_page_x_of_y(long_invoice):
    count = len(long_invoice.pages)

    for number, page in enumerate(long_invoice.pages, start=1):
        assert re.findall(r"Page \d+ of \d+", page) == [f"Page {number} of {count}"]


def test_totals_and_payment_instructions_only_on_the_last_page(long_invoice):
    *earlier, last = [squeeze(page) for page in long_invoice.pages]
    # 200 lines at 10.01 to 12.00: 200 x 10 + (1 + ... + 200) / 100 = 2000 + 201 = 2201.00;
    # 19 % VAT = 418.19; total 2619.19.
    for text in ("Subtotal €2,201.00", "VAT €418.19", "Total €2,619.19", "Balance due €2,619.19",
                 "PAYMENT INSTRUCTIONS"):
        assert text in last, text
        assert not any(text in page for page in earlier), text
    assert "Service line 200" in last


def test_every_line_is_printed_exactly_once_and_never_split(long_invoice):
    seen: dict[int, int] = {}
    for page_number, page in enumerate(long_invoice.pages, start=1):
        text = squeeze(page)
        for number, name in re.findall(r"^\s*(\d+)\s+Service line (\d{3})\b", page, re.M):
            assert int(number) == int(name)
            index = int(number)
            assert index not in seen, f"line {index} on pages {seen[index]} and {page_number}"
            seen[index] = page_number
            # The whole row is on this page: its detail, its own price and its amount.
            price = f"€{unit_price(index):.2f}"
            assert f"Service line {index:03d} 1 {price} {price}" in text, index
            if index not in PRODUCT_CODES:
                assert f"Monthly fee, contract C-{index:03d}" in text, index

    assert sorted(seen) == list(range(1, LINE_COUNT + 1))
    for index, code in PRODUCT_CODES.items():
        # Drawn in pieces, one per line of its cell, all on the page of its row.
        drawn = [re.sub(r"\s", "", raw) for raw in long_invoice.raw_pages]
        assert [n for n, text in enumerate(drawn, start=1) if code in text] == [seen[index]]


def _descendants(box):
    yield box
    for child in getattr(box, "children", ()):
        yield from _descendants(child)


def _classes(box) -> set[str]:
    element = getattr(box, "element", None)
    return set((element.get("class") or "").split()) if element is not None else set()


def test_long_references_wrap_inside_their_box():
    content = load_registry(CONTENT_DIR)
    doc = make_invoice(
        8,
        invoice_number="INV-" + "2026" * 12,
        seller=Seller(iban=LONG_IBAN),
    )
    html, _ = render_html(doc, content)
    layout = HTML(
        string=html,
        base_url=CONTENT_DIR.as_uri() + "/",
        url_fetcher=ContentUrlFetcher(CONTENT_DIR),
    ).render()
    # WeasyPrint's laid-out boxes of each page (its own tests read them the same way).
    laid_out = [box for page in layout.pages for box in _descendants(page._page_box)]

    checked = {}
    for box in laid_out:
        if not isinstance(box, boxes.BlockContainerBox):
            continue
        classes = _classes(box)
        tag = box.element_tag
        wrapping = {"reference", "email", "item-detail"} & classes
        if not (wrapping or (tag == "td" and "description" in classes)):
            continue
        text = "".join(b.text for b in _descendants(box) if isinstance(b, boxes.TextBox))
        left, right = box.content_box_x(), box.content_box_x() + box.width
        for piece in _descendants(box):
            if isinstance(piece, boxes.TextBox):
                assert left - 0.01 <= piece.position_x, (text, piece.text)
                assert piece.position_x + piece.width <= right + 0.01, (text, piece.text)
        lines = sum(isinstance(b, boxes.LineBox) for b in _descendants(box))
        checked[re.sub(r"\s", "", text)] = lines

    iban = " ".join(LONG_IBAN[i : i + 4] for i in range(0, len(LONG_IBAN), 4))
    for reference in (PRODUCT_CODES[7], ORDER_ID, EMAIL, doc.invoice_number, iban):
        assert checked.get(re.sub(r"\s", "", reference), 0) >= 2, (reference, checked)
