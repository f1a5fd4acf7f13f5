"""Dunning emails from the governed templates the policy names, stage by stage.

A customer stage renders its `html` and `text` templates (`dunning_email_html`,
`dunning_email_text` by default) in the customer's language, chosen for the `email` channel
like the invoice email (`q2c.content.selection`): the theme's colors, the message blocks
targeted at email readers, the late-payment legal text of the buyer's country and the
stage's wording from `dunning_labels` (`dunning_title_<stage>`, `dunning_intro_<stage>`,
`dunning_subject_<stage>`). It is personalized with the relationship: the billing contact
by name, the account owner as the signatory to contact. The hand-over stage renders the
owner's email in the language the policy gives it.

Every rendering records the exact versions it used (`versions`, `content_selection`), and
only approved content in force on the reminder's day is used.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from q2c.collections.policy import Stage
from q2c.content.formatting import parse_locale
from q2c.content.registry import ContentRegistry
from q2c.documents.email import RenderedEmail, render_governed_email
from q2c.documents.model import InvoiceDocument
from q2c.money import Money


@dataclass(frozen=True)
class ReminderFacts:
    """What a dunning email says beyond the invoice itself.

    Attributes:
        as_of: The reminder's day (the run's business date).
        days_past_due: Days since the due date, counted in the seller's time zone.
        pay_by: The day the customer is asked to pay by.
        signatory_name: The account owner, who signs; empty for the seller alone.
        signatory_email: Where the customer reaches the owner; may be empty.
        statement_balances: The balance of the attached statement per currency; empty
            when no statement is attached.
        portal_url: The portal link of a portal delivery; empty otherwise.
        policy_version: The dunning policy version that decided the stage.
    """

    as_of: dt.date
    days_past_due: int
    pay_by: dt.date
    signatory_name: str = ""
    signatory_email: str = ""
    statement_balances: Sequence[Money] = ()
    portal_url: str = ""
    policy_version: int = 1


def render_customer_reminder(
    doc: InvoiceDocument, stage: Stage, content: ContentRegistry, facts: ReminderFacts
) -> RenderedEmail:
    """Render the stage's email to the customer about one overdue invoice."""
    context = {
        "customer_name": doc.buyer.name,
        "contact_name": doc.buyer.contact_name or "",
        "invoice_number": doc.invoice_number,
        "issue_date": doc.issue_date,
        "due_date": doc.due_date,
        "amount_due": doc.balance_due,
        "payment_reference": doc.payment_reference,
        "seller_name": doc.seller.name,
        "stage": stage.name,
        "days_past_due": facts.days_past_due,
        "pay_by": facts.pay_by,
        "signatory_name": facts.signatory_name,
        "signatory_email": facts.signatory_email,
        "statement_balances": list(facts.statement_balances),
        "portal_url": facts.portal_url,
    }
    return _render(doc, stage, content, facts.as_of, context,
                   subject_key=f"dunning_subject_{stage.name}",
                   subject_values={"number": doc.invoice_number, "seller": doc.seller.name,
                                   "days": str(facts.days_past_due)})


def render_owner_handoff(
    doc: InvoiceDocument,
    stage: Stage,
    content: ContentRegistry,
    facts: ReminderFacts,
    *,
    owner_name: str,
    billing_email: str,
) -> RenderedEmail:
    """Render the hand-over of one overdue invoice to the account owner, in the language
    the policy gives the stage."""
    language = stage.language or "en"
    owner_doc = dataclasses.replace(doc, language=language,
                                    locale=str(parse_locale(language)))
    context = {
        "owner_name": owner_name,
        "customer_name": doc.buyer.name,
        "invoice_number": doc.invoice_number,
        "due_date": doc.due_date,
        "days_past_due": facts.days_past_due,
        "amount_due": doc.balance_due,
        "billing_contact_name": doc.buyer.contact_name or "",
        "billing_email": billing_email,
        "statement_balances": list(facts.statement_balances),
        "policy_version": facts.policy_version,
        "seller_name": doc.seller.name,
    }
    return _render(owner_doc, stage, content, facts.as_of, context,
                   subject_key="dunning_handoff_subject",
                   subject_values={"customer": doc.buyer.name, "number": doc.invoice_number,
                                   "days": str(facts.days_past_due)})


def _render(
    doc: InvoiceDocument,
    stage: Stage,
    content: ContentRegistry,
    on: dt.date,
    context: Mapping[str, object],
    *,
    subject_key: str,
    subject_values: Mapping[str, str],
) -> RenderedEmail:
    return render_governed_email(
        doc, content, (stage.html_template, stage.text_template), subject_key,
        {**context, "locale": doc.locale}, subject_values, on,
    )
