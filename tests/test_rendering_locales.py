"""Localized invoices: Babel formatting per locale, right-to-left layout, embedded glyphs.

Every expected string here is written out by hand from the invoice's figures; the PDF is
read back with poppler's pdftotext (text, and word boxes for the layout checks) and with
pypdf and fontTools (the fonts it embeds).
"""

from __future__ import annotations

import datetime as dt
import html as html_lib
import io
import logging
import re
import subprocess
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fontTools.pens.boundsPen import BoundsPen
from fontTools.ttLib import TTFont
from pypdf import PdfReader

from q2c.content.formatting import fill_filter, locale_direction, money, text_direction
from q2c.content.registry import load_registry
from q2c.documents.model import Buyer, InvoiceDocument, InvoiceLine, TaxBreakdown
from q2c.documents.render import render_html, render_pdf
from q2c.money import Money
from q2c.settings import Seller

CONTENT_DIR = Path(__file__).resolve().parents[1] / "content"
LANGUAGES = ("en", "de", "fr", "es", "nl", "ja", "ar", "he")


@pytest.fixture(scope="module")
def content():
    return load_registry(CONTENT_DIR)


def make_invoice(
    language: str,
    locale: str,
    currency: str,
    lines: tuple[tuple[str | None, str, str, str], ...],
    *,
    buyer_name: str = "Müller & Söhne Maschinenbau AG",
    address: tuple[str, ...] = ("Industriestraße 12", "70565 Stuttgart"),
    country: str = "DE",
    tax_percent: str = "0",
    discount: str = "0",
    paid: str = "0",
    memo: str | None = None,
) -> InvoiceDocument:
    """An invoice whose totals are computed here from its lines, the way the ERP does.

    `lines` are (item name or None, description, quantity, unit price).
    """
    money = lambda value: Money(value, currency)  # noqa: E731
    items = tuple(
        InvoiceLine(
            index=index,
            description=description,
            quantity=Decimal(quantity),
            unit_price=Decimal(price),
            amount=money(Decimal(quantity) * Decimal(price)),
            item_name=name,
        )
        for index, (name, description, quantity, price) in enumerate(lines, start=1)
    )
    subtotal = sum((item.amount.amount for item in items), Decimal(0))
    net = subtotal - Decimal(discount)
    tax = money(net * Decimal(tax_percent) / 100)
    total = money(net) + tax
    issue = dt.date(2026, 3, 2)
    return InvoiceDocument(
        invoice_id="inv-2026-0042",
        invoice_number="INV-2026-0042",
        issue_date=issue,
        due_date=issue + dt.timedelta(days=30),
        currency=currency,
        language=language,
        locale=locale,
        seller=Seller(),
        buyer=Buyer(
            name=buyer_name,
            address_lines=address,
            country=country,
            vat_id="DE129273398" if country == "DE" else None,
            email="ap@example.com",
        ),
        lines=items,
        tax_breakdown=(TaxBreakdown(Decimal(tax_percent), money(net), tax),),
        subtotal=money(subtotal),
        discount=money(Decimal(discount)),
        tax_total=tax,
        total=total,
        amount_paid=money(Decimal(paid)),
        amount_credited=money(Decimal(0)),
        balance_due=total - money(Decimal(paid)),
        payment_term_days=30,
        payment_reference="INV-2026-0042",
        memo=memo,
    )


def render(doc: InvoiceDocument, content) -> tuple[str, bytes]:
    html, _ = render_html(doc, content)
    return html, render_pdf(html)


def _v3(content, content_id):
    """Version 3 of a content item: the invoice template, theme and labels tested here."""
    return next(entry for entry in content.versions(content_id) if entry.version == 3)


# --- reading the PDF back ---------------------------------------------------------------


def pdftotext(pdf: bytes, *options: str) -> str:
    return subprocess.run(
        ["pdftotext", "-enc", "UTF-8", *options, "-", "-"],
        input=pdf,
        capture_output=True,
        check=True,
    ).stdout.decode("utf-8")


def plain(text: str) -> str:
    """Text without bidi marks and embeddings (format characters), spaces collapsed."""
    text = "".join(char for char in text if unicodedata.category(char) != "Cf")
    return re.sub(r"[\s\u00a0\u202f]+", " ", text).strip()


def compact(text: str) -> str:
    """Text without format characters and without any space: right-to-left extraction
    moves spaces around an isolated value, never its characters."""
    return re.sub(r"\s+", "", plain(text))


@dataclass(frozen=True)
class Word:
    text: str
    x_min: float
    y_min: float
    x_max: float
    y_max: float


_WORD = re.compile(
    r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>'
)


def words(pdf: bytes, page: int = 1) -> list[Word]:
    """The words pdftotext finds on a page with their boxes (points, origin top left).

    Right-to-left words come in the order of their glyphs on the page, so they read
    backwards here.
    """
    xhtml = pdftotext(pdf, "-bbox", "-f", str(page), "-l", str(page))
    return [
        Word(html_lib.unescape(text), float(x0), float(y0), float(x1), float(y1))
        for x0, y0, x1, y1, text in _WORD.findall(xhtml)
    ]


def word(found: list[Word], text: str) -> Word:
    matches = [w for w in found if w.text == text]
    assert len(matches) == 1, f"`{text}` found {len(matches)} times"
    return matches[0]


def same_line(a: Word, b: Word) -> bool:
    return abs((a.y_min + a.y_max) / 2 - (b.y_min + b.y_max) / 2) < 3


# --- the fonts a PDF embeds ---------------------------------------------------------------


@dataclass
class EmbeddedFont:
    """One font of a PDF: its name, its encoding, and each character it draws."""

    name: str
    encoding: str
    drawn: dict[str, bool]  # character -> drawn with a real glyph that has an outline


def _to_unicode(font) -> dict[int, str]:
    """Glyph id to text, from the font's ToUnicode CMap (bfchar and bfrange entries)."""
    cmap = font["/ToUnicode"].get_object().get_data().decode("latin-1")
    mapping: dict[int, str] = {}
    for block in re.findall(r"beginbfchar(.*?)endbfchar", cmap, re.S):
        for code, text in re.findall(r"<([0-9a-fA-F]+)>\s*<([0-9a-fA-F]+)>", block):
            mapping[int(code, 16)] = bytes.fromhex(text).decode("utf-16-be")
    for block in re.findall(r"beginbfrange(.*?)endbfrange", cmap, re.S):
        for start, end, text in re.findall(
            r"<([0-9a-fA-F]+)>\s*<([0-9a-fA-F]+)>\s*<([0-9a-fA-F]+)>", block
        ):
            first = int(text, 16)
            for offset, code in enumerate(range(int(start, 16), int(end, 16) + 1)):
                mapping[code] = chr(first + offset)
    return mapping


def _has_outline(program: TTFont, glyph_id: int) -> bool:
    order = program.getGlyphOrder()
    if not 0 < glyph_id < len(order):
        return False  # .notdef, or an id the font does not have
    pen = BoundsPen(program.getGlyphSet())
    program.getGlyphSet()[order[glyph_id]].draw(pen)
    return pen.bounds is not None


def embedded_fonts(pdf: bytes) -> list[EmbeddedFont]:
    """Every font of every page (and of the forms drawn on it), read with fontTools."""
    reader = PdfReader(io.BytesIO(pdf))
    fonts: dict[int, EmbeddedFont] = {}

    def visit(resources) -> None:
        resources = resources.get_object() if resources is not None else {}
        for ref in (resources.get("/Font") or {}).values():
            font = ref.get_object()
            key = ref.idnum
            if key in fonts:
                continue
            descendant = font["/DescendantFonts"][0].get_object()
            descriptor = descendant["/FontDescriptor"].get_object()
            stream = descriptor.get("/FontFile2") or descriptor.get("/FontFile3")
            assert stream is not None, f"{font['/BaseFont']} is not embedded"
            program = TTFont(io.BytesIO(stream.get_object().get_data()))
            drawn: dict[str, bool] = {}
            for glyph_id, text in _to_unicode(font).items():
                real = _has_outline(program, glyph_id) or text.isspace()
                for char in text:
                    drawn[char] = drawn.get(char, False) or real
            fonts[key] = EmbeddedFont(str(font["/BaseFont"]), str(font["/Encoding"]), drawn)
        for ref in (resources.get("/XObject") or {}).values():
            xobject = ref.get_object()
            if xobject.get("/Subtype") == "/Form":
                visit(xobject.get("/Resources"))

    for page in reader.pages:
        visit(page.get("/Resources"))
    return list(fonts.values())


class _VisibleText(HTMLParser):
    """The text of an HTML body, as a reader of the page would see it."""

    def __init__(self):
        super().__init__()
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("head", "style", "title", "script"):
            self._hidden += 1

    def handle_endtag(self, tag):
        if tag in ("head", "style", "title", "script"):
            self._hidden -= 1

    def handle_data(self, data):
        if not self._hidden:
            self.parts.append(data)


def visible_characters(html: str) -> set[str]:
    parser = _VisibleText()
    parser.feed(html)
    return {
        char
        for char in "".join(parser.parts)
        if not char.isspace() and unicodedata.category(char) != "Cf"
    }


def missing_glyphs(html: str, pdf: bytes) -> set[str]:
    """Characters of the page that no embedded font draws with a real glyph.

    A character counts as drawn when some font maps a glyph to it that exists in the
    embedded font program and has an outline (the .notdef box does not count). Titles
    are upper-cased by the stylesheet, so an upper-case form drawn counts for both.
    """
    drawn = {char for font in embedded_fonts(pdf) for char, real in font.drawn.items() if real}
    return {
        char
        for char in visible_characters(html)
        if char not in drawn and not all(upper in drawn for upper in char.upper())
    }


# --- formatting, unit by unit ---------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "locale", "currency", "expected"),
    [
        ("1190.00", "de_DE", "EUR", "1.190,00\u00a0€"),
        ("12100", "ja_JP", "JPY", "￥12,100"),
        ("123.375", "en_US", "KWD", "KWD123.375"),
        ("10.5", "en_US", "KWD", "KWD10.500"),
        ("127.875", "ar_KW", "KWD", "\u200f127.875\u00a0د.ك.\u200f"),
        ("-5", "ar_KW", "KWD", "\u200f\u200e-5.000\u00a0د.ك.\u200f"),
        ("1150.00", "ar_SA", "SAR", "\u200f1,150.00\u00a0ر.س.\u200f"),
        ("3626.88", "he_IL", "ILS", "\u200f3,626.88\u00a0\u200f₪"),
        # ISO 4217 gives the Iraqi dinar three minor units; CLDR rounds it to none.
        ("1000.125", "en_US", "IQD", "IQD1,000.125"),
        # A unit price with more digits than the currency keeps them all.
        ("0.0125", "de_DE", "EUR", "0,0125\u00a0€"),
        ("41.1255", "en_US", "KWD", "KWD41.1255"),
    ],
)
def test_money_shows_the_currency_minor_units_exactly(amount, locale, currency, expected):
    assert money(Decimal(amount), locale, currency) == expected


def test_money_of_a_yen_amount_never_shows_decimals():
    assert money(Money(Decimal("500"), "JPY"), "ja_JP") == "￥500"
    assert money(Money(Decimal("500"), "JPY"), "en_US") == "¥500"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("DE89 3704", "ltr"),
        ("شركة الخليج", "rtl"),
        ("חברת הדוגמה", "rtl"),
        ("02\u200f/03\u200f/2026", "rtl"),
        ("2026-03-02", None),
        ("+49 30 1234567", None),
        ("123 Main Street", "ltr"),
    ],
)
def test_text_direction_follows_the_first_strong_character(text, expected):
    assert text_direction(text) == expected


def test_locale_direction():
    assert [locale_direction(name) for name in ("ar_KW", "he-IL", "de_DE", "ja")] == [
        "rtl",
        "rtl",
        "ltr",
        "ltr",
    ]


def test_fill_escapes_the_label_and_values_and_keeps_markup_values():
    filled = fill_filter("Pay <b>{amount}</b> by {due}", amount="1 & 2", due="<i>x</i>")

    assert str(filled) == "Pay &lt;b&gt;1 &amp; 2&lt;/b&gt; by &lt;i&gt;x&lt;/i&gt;"


@pytest.mark.parametrize("label", ["Pay {amount.__class__}", "Pay {0}", "Pay {amount!r}"])
def test_fill_refuses_placeholders_that_are_not_plain_names(label):
    with pytest.raises(ValueError, match="not a plain name"):
        fill_filter(label, amount="1")


# --- invoices per locale ----------------------------------------------------------------


def test_german_invoice_prints_german_amounts_dates_and_rates(content):
    doc = make_invoice(
        "de",
        "de_DE",
        "EUR",
        (
            (None, "Analytics Platform, Abonnement März 2026", "1", "800.00"),
            (None, "Onboarding-Workshop (Tage)", "2", "150.00"),
        ),
        tax_percent="19",
        discount="100.00",
    )
    # 800.00 + 2 x 150.00 = 1100.00; less 100.00 discount = 1000.00; 19 % VAT = 190.00.
    html, pdf = render(doc, content)
    text = plain(pdftotext(pdf, "-layout"))

    assert '<html lang="de" dir="ltr">' in html
    for expected in (
        "Zwischensumme 1.100,00 €",
        "Rabatt -100,00 €",
        "USt. 190,00 €",
        "Gesamtbetrag 1.190,00 €",
        "Offener Betrag 1.190,00 €",
        "19 % 1.000,00 € 190,00 €",
        "Rechnungsdatum 02.03.2026",
        "Fällig am 01.04.2026",
        "Bitte überweisen Sie 1.190,00 € bis zum 01.04.2026 auf das unten genannte Konto.",
        "DE89 3704 0044 0532 0130 00",
        "Seite 1 von 1",
    ):
        assert expected in text, expected
    assert "800,00 € 800,00 €" in text and "2 150,00 € 300,00 €" in text
    assert "Zahlbar innerhalb von 30" in text


def test_japanese_yen_invoice_has_no_minor_units(content):
    doc = make_invoice(
        "ja",
        "ja_JP",
        "JPY",
        (
            (None, "データ分析プラットフォーム 月額利用料", "1", "10000"),
            (None, "導入サポート", "2", "500"),
        ),
        buyer_name="株式会社サンプル商事",
        address=("東京都千代田区丸の内1-1-1",),
        country="JP",
        tax_percent="10",
    )
    # 10000 + 2 x 500 = 11000; 10 % consumption tax = 1100; total 12100.
    html, pdf = render(doc, content)
    text = compact(pdftotext(pdf, "-layout"))

    for expected in (
        "小計￥11,000",
        "消費税￥1,100",
        "合計￥12,100",
        "ご請求残高￥12,100",
        "10%￥11,000￥1,100",
        "2￥500￥1,000",
        "請求日2026/03/02",
        "お支払期限2026/04/01",
        "請求日から30日以内",
        "2026/04/01までに￥12,100を下記口座へお振り込みください。",
        "株式会社サンプル商事",
        "1/1ページ",
    ):
        assert expected in text, expected
    assert not re.search(r"￥[\d,]+\.\d", text)


def test_kuwaiti_invoice_in_arabic_keeps_three_decimals_right_to_left(content):
    doc = make_invoice(
        "ar",
        "ar_KW",
        "KWD",
        (
            ("استشارات", "خدمات استشارية، مارس 2026", "3", "41.125"),
            (None, "Support plan PRO-2026", "1", "10.5"),
        ),
        buyer_name="شركة الخليج للتجارة",
        address=("شارع الخليج العربي", "الكويت 13001"),
        country="KW",
        discount="5",
        paid="1",
    )
    # 3 x 41.125 = 123.375 and 10.500: 133.875; less 5.000 = 128.875; no VAT in Kuwait;
    # 1.000 paid leaves 127.875.
    html, pdf = render(doc, content)
    text = compact(pdftotext(pdf, "-layout"))

    assert '<html lang="ar" dir="rtl">' in html
    for expected in (
        "41.125د.ك.",
        "123.375د.ك.",
        "10.500د.ك.",
        "133.875د.ك.",
        "-5.000د.ك.",
        "128.875د.ك.",
        "-1.000د.ك.",
        "127.875د.ك.",
        # 02/03/2026 and 01/04/2026 (day first, read from the right) are printed with
        # the day at the right end: 2026/03/02 left to right.
        "2026/03/02",
        "2026/04/01",
        "يرجىتحويل127.875د.ك.فيموعدأقصاه2026/04/01",
        "INV-2026-0042",
        "DE8937040044053201300",
    ):
        assert expected in text, expected
    assert "128.88" not in text and "127.88" not in text

    found = words(pdf)
    # The balance label at the right, its amount left of it, the symbol left of the amount.
    label = word(found, "المستحق"[::-1])
    row = sorted((w for w in found if same_line(w, label)), key=lambda w: w.x_min)
    symbol, amount = [w for w in row if w.x_max < label.x_min]
    assert amount.text == "127.875" and {"د", "ك"} <= set(symbol.text)
    # The minus sign stays next to the digits of a negative amount.
    assert {"-5.000", "-1.000"} <= {w.text for w in found}


def test_saudi_invoice_in_arabic_is_laid_out_right_to_left(content):
    doc = make_invoice(
        "ar",
        "ar_SA",
        "SAR",
        (("منصة التحليلات", "اشتراك شهري", "1", "1000"),),
        buyer_name="مؤسسة الرياض للتقنية",
        address=("طريق الملك فهد", "الرياض 12211"),
        country="SA",
        tax_percent="15",
    )
    # 1000.00 plus 15 % VAT (150.00) = 1150.00.
    html, pdf = render(doc, content)
    text = plain(pdftotext(pdf, "-layout"))
    found = words(pdf)

    for expected in ("1,000.00ر.س.", "150.00ر.س.", "1,150.00ر.س.", "15%"):
        assert expected in compact(text), expected
    # Latin-script values keep their own order inside right-to-left lines.
    assert "10117 Berlin" in text and "Berlin 10117" not in text
    assert "Friedrichstrasse 68, 10117 Berlin" in text
    assert "DE89 3704 0044 0532 0130 00" in text
    # The line table is mirrored: the line number column at the right, amounts at the left.
    number, description, quantity = (word(found, label[::-1]) for label in ("م", "الوصف", "الكمية"))
    assert same_line(number, description) and same_line(description, quantity)
    assert number.x_min > description.x_max > quantity.x_max
    # So are the totals: the label at the right of its amount, in the left half.
    balance = word(found, "الرصيد"[::-1])
    (amount,) = [w for w in found if w.text == "1,150.00" and same_line(w, balance)]
    assert balance.x_min > amount.x_max and amount.x_max < 595.28 / 2


def test_hebrew_invoice_is_laid_out_right_to_left(content):
    doc = make_invoice(
        "he",
        "he_IL",
        "ILS",
        ((None, "ייעוץ מקצועי", "2", "1500"), (None, "Cloud hosting", "1", "99.90")),
        buyer_name="חברת הדוגמה בע״מ",
        address=("רחוב הרצל 1", "תל אביב 6100000"),
        country="IL",
        tax_percent="17",
    )
    # 2 x 1500.00 + 99.90 = 3099.90; 17 % VAT = 526.983, rounded 526.98; total 3626.88.
    html, pdf = render(doc, content)
    text = compact(pdftotext(pdf, "-layout"))
    found = words(pdf)

    assert '<html lang="he" dir="rtl">' in html
    # "3,000.00 ₪" read from the right: the sign stands left of the number on the page.
    for expected in (
        "₪3,000.00",
        "₪3,099.90",
        "₪526.98",
        "₪3,626.88",
        "2במרץ2026",
        "1באפר׳2026",
        "נאלהעביר₪3,626.88עד1באפר׳2026לחשבוןשלהלן.",
        "חברתהדוגמהבע״מ",
    ):
        assert expected in text, expected
    # The day of "2 במרץ 2026" is at the right of the month, the year at its left.
    month = word(found, "במרץ"[::-1])
    row = sorted((w for w in found if same_line(w, month)), key=lambda w: w.x_min)
    at = row.index(month)
    assert (row[at - 1].text, row[at + 1].text) == ("2026", "2")


# --- glyphs of every shipped language -----------------------------------------------------

_BUYERS = {
    "en": ("Harbour & Finch Ltd", ("1 Quay Street", "Dublin D02 XY45"), "IE", "en_IE", "EUR"),
    "de": ("Müller & Söhne GmbH", ("Große Straße 5", "80331 München"), "DE", "de_DE", "EUR"),
    "fr": ("Société Générale d'Études", ("12 rue de l'Église", "75004 Paris"), "FR", "fr_FR",
           "EUR"),
    "es": ("Compañía Ibérica S.L.", ("Calle Año Nuevo 3", "28013 Madrid"), "ES", "es_ES",
           "EUR"),
    "nl": ("Bakkerij De Ĳsbeer B.V.", ("Coöperatieweg 2", "1011 AB Amsterdam"), "NL", "nl_NL",
           "EUR"),
    "ja": ("株式会社サンプル商事", ("東京都千代田区丸の内1-1-1",), "JP", "ja_JP", "JPY"),
    "ar": ("شركة الخليج للتجارة", ("شارع الخليج العربي", "الكويت 13001"), "KW", "ar_KW", "KWD"),
    "he": ("חברת הדוגמה בע״מ", ("רחוב הרצל 1", "תל אביב 6100000"), "IL", "he_IL", "ILS"),
}
_FONT_OF = {
    "en": "DejaVuSans",
    "de": "DejaVuSans",
    "fr": "DejaVuSans",
    "es": "DejaVuSans",
    "nl": "DejaVuSans",
    "ja": "NotoSansCJKJP",
    "ar": "NotoSansArabic",
    "he": "NotoSansHebrew",
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_character_of_every_language_is_drawn_by_an_embedded_font(
    content, language, caplog
):
    name, address, country, locale, currency = _BUYERS[language]
    doc = make_invoice(
        language,
        locale,
        currency,
        ((None, name, "2", "150"),),
        buyer_name=name,
        address=address,
        country=country,
        tax_percent="10",
        memo=f"{name}: {address[0]}",
    )

    with caplog.at_level(logging.WARNING, logger="weasyprint"):
        html, pdf = render(doc, content)
    fonts = embedded_fonts(pdf)
    labels, _ = content.labels(language, entry=_v3(content, "invoice_labels"))

    assert missing_glyphs(html, pdf) == set()
    assert [font.name for font in fonts if font.encoding != "/Identity-H"] == []
    assert not [r for r in caplog.records if ".notdef" in r.getMessage()]
    families = {re.sub(r"^/[A-Z]{6}\+|[-\s]", "", font.name) for font in fonts}
    assert any(family.startswith(_FONT_OF[language]) for family in families), families
    text = compact(pdftotext(pdf, "-layout"))
    assert compact(name) in text
    assert compact(labels["balance_due"]) in text


def test_the_glyph_check_finds_a_character_no_font_has(content, caplog):
    doc = make_invoice(
        "en", "en_IE", "EUR", ((None, "Support", "1", "10"),), buyer_name="Flamingo \U0001f9a9 Ltd"
    )

    with caplog.at_level(logging.WARNING, logger="weasyprint"):
        html, pdf = render(doc, content)

    assert missing_glyphs(html, pdf) == {"\U0001f9a9"}
    assert [r for r in caplog.records if ".notdef" in r.getMessage()]


# --- the template's context -------------------------------------------------------------


def test_template_prints_blocks_and_legal_texts_where_they_belong(content):
    template = content.template(_v3(content, "invoice"))
    labels, _ = content.labels("ar", entry=_v3(content, "invoice_labels"))
    theme = {"colors": {"primary": "#1f3a5f"}, "stylesheet": "x.css", "logo": "x.svg"}
    doc = make_invoice("ar", "ar_KW", "KWD", ((None, "Support", "1", "10"),))
    context = {"doc": doc, "labels": labels, "locale": doc.locale, "theme": theme}

    html = template.render(
        **context,
        preview=False,
        direction="rtl",
        blocks=[
            {"id": "promo", "version": 2, "placement": "top", "html": "<p>عرض الربيع</p>",
             "language": "ar"},
            {"id": "survey", "version": 1, "placement": "bottom", "html": "<p>Tell us</p>",
             "language": "en"},
        ],
        legal_texts=[
            {"id": "reverse_charge", "version": 1, "case": "reverse_charge",
             "text": "Reverse charge: VAT <payable> by the recipient.", "language": "en"},
        ],
    )
    bare = template.render(**context, preview=False)

    assert '<html lang="ar" dir="rtl">' in html
    order = [
        html.index(marker)
        for marker in (
            'data-block="promo@v2" lang="ar" dir="rtl"><p>عرض الربيع</p>',
            '<table class="lines numbered">',
            '<table class="totals">',
            'data-case="reverse_charge" lang="en" dir="ltr">Reverse charge: VAT &lt;payable&gt; '
            "by the recipient.",
            '<section class="payment">',
            '<p class="thanks">',
            'data-block="survey@v1" lang="en" dir="ltr"><p>Tell us</p>',
        )
    ]
    assert order == sorted(order)
    # Without `direction`, `blocks` and `legal_texts` the locale gives the direction.
    assert '<html lang="ar" dir="rtl">' in bare
    assert "message-block" not in bare and 'class="legal"' not in bare
