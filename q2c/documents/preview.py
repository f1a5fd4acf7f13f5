"""Preview a content version on a real invoice: a PDF with a DRAFT watermark on every page.

A content owner checks a draft (or any version: an approved one, a retired one) before it
is approved, on an invoice from the warehouse: `q2c content preview ID --invoice N`. The
version is substituted for whatever its slot would select; everything else is selected as
production would on that date. The PDF is a preview: it carries the watermark on every page,
is written where the caller says, and is never recorded in the document manifest or sent.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb

from q2c.content.registry import ContentEntry, ContentError, ContentRegistry
from q2c.content.selection import Selection, select_content
from q2c.documents.load import load_invoice_batch
from q2c.documents.model import InvoiceDocument
from q2c.documents.render import render_html, render_pdf
from q2c.settings import Seller

log = logging.getLogger(__name__)

# Days a payment reminder gives to pay, in a preview (the dunning run sets its own).
REMINDER_PREVIEW_DAYS = 14
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class PreviewError(ContentError):
    """A preview cannot be made; the message says which invoice or version and why."""


@dataclass(frozen=True)
class Preview:
    """A rendered preview: the PDF bytes and the selection it was made with."""

    pdf: bytes
    selection: Selection
    invoice_number: str


def find_invoice(
    conn: duckdb.DuckDBPyConnection, reference: str, seller: Seller
) -> tuple[InvoiceDocument, str | None]:
    """The invoice with this number (or id) from the core marts, and its account's segment.

    Raises:
        PreviewError: When no invoice or more than one has that number, or it cannot be
            built (the loader's reason is given).
    """
    rows = conn.execute(
        "select invoice_id, invoice_number from core.fct_invoices "
        "where invoice_number = ? or invoice_id = ? order by invoice_id",
        [reference, reference],
    ).fetchall()
    if not rows:
        raise PreviewError(
            f"no invoice `{reference}` in core.fct_invoices; give an invoice number as "
            "printed, or an invoice id"
        )
    if len(rows) > 1:
        ids = ", ".join(str(row[0]) for row in rows)
        raise PreviewError(
            f"invoice `{reference}` matches {len(rows)} invoices ({ids}); give the id"
        )
    batch = load_invoice_batch(conn, [str(rows[0][0])], seller)
    if not batch.documents:
        rejected = batch.rejected[0]
        raise PreviewError(
            f"invoice `{reference}` cannot be printed: {rejected.table}, field "
            f"`{rejected.field}`: {rejected.reason}"
        )
    doc = batch.documents[0]
    segment = None
    if doc.account_key:
        found = conn.execute(
            "select segment from core.dim_accounts where account_key = ?", [doc.account_key]
        ).fetchone()
        segment = found[0] if found else None
    return doc, segment


def render_preview(
    doc: InvoiceDocument,
    content: ContentRegistry,
    entry: ContentEntry,
    *,
    on: dt.date,
    segment: str | None = None,
) -> Preview:
    """Render `doc` with `entry` substituted for its slot's choice, watermarked.

    A template entry decides which document is rendered (an invoice, a credit note, a
    payment reminder); any other entry is shown in the invoice. Credit notes and reminders
    get the extra context their templates name (a reminder dated `on`).

    Raises:
        PreviewError: When the version is an email body (not a document) or its template
            needs data an invoice does not have.
    """
    if entry.kind == "template" and (entry.main.endswith(".txt") or "email" in entry.slot):
        raise PreviewError(
            f"{entry.ref} is an email body, not a document; preview renders documents "
            "(invoice, credit note, payment reminder) and the content they print"
        )
    selection = select_content(content, doc, on=on, segment=segment, substitute=entry)
    extra = {
        "credited_invoice": None,
        "reminder": {
            "date": on,
            "pay_by": on + dt.timedelta(days=REMINDER_PREVIEW_DAYS),
            "days_overdue": max(0, (on - doc.due_date).days),
        },
    }
    try:
        html, selection = render_html(doc, content, used=selection, preview=True, extra=extra)
    except Exception as exc:  # a template that needs data an invoice lacks
        if isinstance(exc, ContentError):
            raise
        raise PreviewError(
            f"{selection.template.ref} could not be filled with invoice {doc.invoice_number}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    log.info(
        "preview of %s on invoice %s: %s", entry.ref, doc.invoice_id, selection.describe()
    )
    return Preview(render_pdf(html, content.root), selection, doc.invoice_number)


def preview_file_name(invoice_number: str, entry: ContentEntry) -> str:
    """`preview-<invoice>-<id>-v<version>.pdf`, safe as a file name."""
    stem = _UNSAFE.sub("_", f"preview-{invoice_number}-{entry.id}-v{entry.version}")
    return f"{stem.strip('._')}.pdf"


def write_preview(preview: Preview, out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(preview.pdf)
    return out
