"""The subject and bodies of the invoice and payment reminder emails, from governed templates.

The bodies are the approved `invoice_email_html` and `invoice_email_text` templates (or the
`payment_reminder_email_*` ones), chosen for the `email` channel like any document's
content (`q2c.content.selection`): in the invoice's language, with the selected theme's
colors, the message blocks targeted at email readers and the invoice's legal texts. The
templates take a flat context of plain values (see `email_context()`) plus `labels`,
`colors`, `blocks`, `legal_texts` and `direction`, so a caller that has no
`InvoiceDocument` can fill them through the registry directly.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from q2c.content.registry import ContentRegistry
from q2c.content.selection import content_in_force
from q2c.documents.model import InvoiceDocument
from q2c.documents.render import legal_texts, message_blocks, selection_labels

HTML_TEMPLATE_ID = "invoice_email_html"
TEXT_TEMPLATE_ID = "invoice_email_text"
REMINDER_HTML_TEMPLATE_ID = "payment_reminder_email_html"
REMINDER_TEXT_TEMPLATE_ID = "payment_reminder_email_text"


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str
    versions: dict[str, dict[str, str]]
    # The selection record of the HTML body: every version used and why.
    content_selection: dict = field(default_factory=dict)


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
    return _render_email(
        doc, content, (HTML_TEMPLATE_ID, TEXT_TEMPLATE_ID), "email_subject", {}, portal_url, on
    )


def render_payment_reminder_email(
    doc: InvoiceDocument,
    content: ContentRegistry,
    *,
    as_of: dt.date,
    pay_by: dt.date,
    portal_url: str | None = None,
    on: dt.date | None = None,
) -> RenderedEmail:
    """Render the email reminding a customer of one overdue invoice.

    Args:
        doc: The overdue invoice, with the ERP's open balance.
        content: The content registry.
        as_of: The date of the reminder (days overdue are counted up to it).
        pay_by: The new date to pay by.
        portal_url: Where the customer can see and pay the invoice, if anywhere.
        on: The date the content must be in effect on (`as_of` by default).
    """
    extra = {"days_overdue": max(0, (as_of - doc.due_date).days), "pay_by": pay_by}
    return _render_email(
        doc,
        content,
        (REMINDER_HTML_TEMPLATE_ID, REMINDER_TEXT_TEMPLATE_ID),
        "reminder_email_subject",
        extra,
        portal_url,
        on or as_of,
    )


def _render_email(
    doc: InvoiceDocument,
    content: ContentRegistry,
    template_ids: tuple[str, str],
    subject_key: str,
    extra: Mapping[str, object],
    portal_url: str | None,
    on: dt.date | None,
) -> RenderedEmail:
    return render_governed_email(
        doc, content, template_ids, subject_key,
        {**email_context(doc, portal_url), **extra},
        {"number": doc.invoice_number, "seller": doc.seller.name},
        on,
    )


def render_governed_email(
    doc: InvoiceDocument,
    content: ContentRegistry,
    template_ids: tuple[str, str],
    subject_key: str,
    context: Mapping[str, object],
    subject_values: Mapping[str, str],
    on: dt.date | None,
) -> RenderedEmail:
    """Render an HTML and a text body and a subject from approved content in force `on`.

    Every email q2c sends (invoices, payment reminders, dunning) goes through here, so each
    one verifies its content, carries the theme's colors, the message blocks and legal
    texts its targeting selects, and records the exact versions it used.

    Args:
        template_ids: The HTML and the text template ids.
        subject_key: The label holding the subject, with `{name}` placeholders.
        context: The template variables of this kind of email.
        subject_values: What fills the subject's placeholders, literally.
    """
    in_force = content_in_force(content, on=on, channel="email")
    html_selection = in_force.select(doc, document=template_ids[0])
    text_selection = in_force.select(doc, document=template_ids[1])
    for entry in (*html_selection.entries(), text_selection.template):
        content.verify(entry)
    labels = selection_labels(content, html_selection)
    theme = html_selection.theme
    full_context = {
        **context,
        "labels": labels,
        "colors": content.read_yaml(theme, "theme.yaml").get("colors") or {},
        "blocks": message_blocks(content, html_selection, doc, labels),
        "legal_texts": legal_texts(content, html_selection),
        "direction": html_selection.direction,
    }

    subject = _fill(labels[subject_key], **subject_values)
    return RenderedEmail(
        subject=" ".join(subject.split()),
        html=content.template(html_selection.template).render(full_context),
        text=content.template(text_selection.template).render(full_context),
        versions={
            role: {"id": entry.id, "version": str(entry.version)}
            for role, entry in (
                ("html", html_selection.template),
                ("text", text_selection.template),
                ("theme", theme),
                ("texts", html_selection.texts),
            )
        },
        content_selection=html_selection.record(),
    )
