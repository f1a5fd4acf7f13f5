"""Helpers for the content tests: invoices, a hand-made content store, a copy of content/."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
import shutil
from decimal import Decimal
from pathlib import Path

import yaml
from pypdf import PdfReader

from q2c.documents.model import Buyer, InvoiceDocument, InvoiceLine, TaxBreakdown
from q2c.money import Money
from q2c.settings import Seller

CONTENT_DIR = Path(__file__).resolve().parents[1] / "content"
SHIPPED_LANGUAGES = ("en", "de", "fr", "es", "nl", "ja", "ar", "he")


def invoice(
    *,
    number: str = "INV-1",
    country: str | None = "DE",
    language: str = "de",
    locale: str = "de_DE",
    vat_id: str | None = "DE123456789",
    tax_percent: str = "19",
    lines: int = 1,
    seller_country: str = "DE",
    issue_date: dt.date = dt.date(2026, 12, 1),
) -> InvoiceDocument:
    """An EUR invoice of `lines` lines of 100.00 each, taxed at `tax_percent`."""
    net = Decimal(100) * lines
    tax = net * Decimal(tax_percent) / 100
    eur = lambda value: Money(value, "EUR")  # noqa: E731
    return InvoiceDocument(
        invoice_id=number.lower(),
        invoice_number=number,
        issue_date=issue_date,
        due_date=issue_date + dt.timedelta(days=30),
        currency="EUR",
        language=language,
        locale=locale,
        seller=Seller(country=seller_country),
        buyer=Buyer(
            name="Beispiel GmbH",
            address_lines=("Hauptstraße 1", "10115 Berlin"),
            country=country,
            vat_id=vat_id,
        ),
        lines=tuple(
            InvoiceLine(i, f"Service line {i}", Decimal(1), Decimal(100), eur(Decimal(100)))
            for i in range(1, lines + 1)
        ),
        tax_breakdown=(TaxBreakdown(Decimal(tax_percent), eur(net), eur(tax)),),
        subtotal=eur(net),
        discount=eur(Decimal(0)),
        tax_total=eur(tax),
        total=eur(net + tax),
        amount_paid=eur(Decimal(0)),
        amount_credited=eur(Decimal(0)),
        balance_due=eur(net + tax),
        payment_term_days=30,
        payment_reference=number,
    )


def copy_content(tmp_path: Path) -> Path:
    """A private copy of the shipped content store that a test may change."""
    target = tmp_path / "content"
    shutil.copytree(CONTENT_DIR, target)
    return target


def registry_data(root: Path) -> dict:
    return yaml.safe_load((root / "registry.yaml").read_text())


def write_registry(root: Path, data: dict) -> None:
    (root / "registry.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def entry(
    root: Path,
    content_id: str,
    kind: str,
    files: dict[str, str],
    *,
    version: int = 1,
    status: str = "approved",
    **fields: object,
) -> dict:
    """Write the files of one content version under `root` and return its registry entry."""
    path = fields.pop("path", f"{kind}/{content_id}/v{version}")
    for name, text in files.items():
        target = root / path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    record: dict = {
        "id": content_id,
        "version": version,
        "kind": kind,
        "status": status,
        "effective_from": "2018-01-01",
        "path": path,
        "main": next(iter(files)),
        "sha256": {
            name: hashlib.sha256((root / path / name).read_bytes()).hexdigest() for name in files
        },
    }
    if status != "draft":
        record["approved_by"] = "tests"
        record["approved_at"] = "2026-12-01T09:00:00+00:00"
    record.update(fields)
    return record


# A template that prints every variable selection hands to templates, for exact checks.
PROBE_TEMPLATE = """<!DOCTYPE html>
<html lang="{{ doc.language }}" dir="{{ direction }}"><head><title>{{ doc.invoice_number }}</title>
<link rel="stylesheet" href="{{ theme.stylesheet }}"></head><body>
<h1>{{ labels.invoice_title }}</h1>
{% for b in blocks %}<div class="block" data-id="{{ b.id }}" data-version="{{ b.version }}" \
data-placement="{{ b.placement }}">{{ b.html }}</div>
{% endfor %}
{% for l in legal_texts %}<p class="legal" data-id="{{ l.id }}" data-case="{{ l.case }}">\
{{ l.text }}</p>
{% endfor %}
{% if preview %}<div class="watermark">{{ labels.draft_watermark }}</div>{% endif %}
</body></html>
"""
THEME_YAML = "colors:\n  primary: '#1f3a5f'\nstylesheet: theme.css\nlogo: logo.svg\n"
THEME_FILES = {
    "theme.css": "body { font-family: 'DejaVu Sans'; }\n",
    "theme.yaml": THEME_YAML,
    "logo.svg": '<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>\n',
}
LABELS = {
    "en.yaml": "invoice_title: Invoice\ndraft_watermark: DRAFT – not valid\n",
    "de.yaml": "invoice_title: Rechnung\n",
    "ja.yaml": "invoice_title: 請求書\n",
    "ar.yaml": "invoice_title: فاتورة\n",
}


def pdf_pages(pdf: bytes) -> list[str]:
    """The text of each page, every kind of space made a plain space."""
    return [
        re.sub(r"[\s\u00a0\u202f]+", " ", page.extract_text())
        for page in PdfReader(io.BytesIO(pdf)).pages
    ]
