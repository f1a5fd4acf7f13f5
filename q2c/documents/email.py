"""The subject and bodies of the invoice email, from governed templates.

The bodies are the approved `invoice_email_html` and `invoice_email_text` templates, in the
invoice's language (labels from `invoice_labels`) and with the default theme's colors. The
templates take a flat context of plain values (see `email_context()`), so a caller that has
no `InvoiceDocument` can fill them through the registry directly.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from q2c.content.registry import ContentRegistry
from q2c.documents.model import InvoiceDocument
from q2c.documents.render import TEXTS_ID, THEME_ID

HTML_TEMPLATE_ID = "invoice_email_html"
TEXT_TEMPLATE_ID = "invoice_email_text"


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str
    versions: dict[str, dict[str, str]]


def email_context(doc: InvoiceDocument, portal_url: str | None = None) -> dict:
    """The variables both email templates use, taken from an invoice document."""
    return {
        "locale": doc.locale,
        "customer_name": doc.buyer.name,
        "contact_name": doc.buyer.contact_name or "",
        "invoice_number": doc.invoice_number,
        "issue_date": doc.issue_date,
        "due_date": doc.due_date,
        "amount_due": doc.balance_due,
        "is_settled": doc.is_settled,
        "payment_reference": doc.payment_reference,
        "seller_name": doc.seller.name,
        "portal_url": portal_url or "",
    }


def _fill(text: str, **values: str) -> str:
    """Replace `{name}` placeholders literally (no format-string attribute access)."""
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text


def render_invoice_email(
    doc: InvoiceDocument,
    content: ContentRegistry,
    portal_url: str | None = None,
    on: dt.date | None = None,
) -> RenderedEmail:
    """Render the subject line, HTML body and text body of one invoice's email."""
    html_entry = content.get(HTML_TEMPLATE_ID, on=on)
    text_entry = content.get(TEXT_TEMPLATE_ID, on=on)
    theme = content.get(THEME_ID, on=on)
    labels, texts = content.labels(doc.language, texts_id=TEXTS_ID, on=on)
    colors = content.read_yaml(theme, "theme.yaml").get("colors") or {}
    context = {**email_context(doc, portal_url), "labels": labels, "colors": colors}

    subject = _fill(labels["email_subject"], number=doc.invoice_number, seller=doc.seller.name)
    return RenderedEmail(
        subject=" ".join(subject.split()),
        html=content.template(html_entry).render(context),
        text=content.template(text_entry).render(context),
        versions={
            role: {"id": entry.id, "version": str(entry.version)}
            for role, entry in (
                ("html", html_entry),
                ("text", text_entry),
                ("theme", theme),
                ("texts", texts),
            )
        },
    )
