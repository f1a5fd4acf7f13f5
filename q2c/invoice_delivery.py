"""Which invoices go out tonight, through which channels, with which exact bytes.

This sits above `q2c.documents` (the PDF and the governed email bodies), `q2c.einvoice`
(the validated e-invoices), `q2c.review` (the approval gate) and `q2c.delivery` (channel
policy, outbox, channels) and joins them:

1. select the rendered invoices that are due: issued, no hold, not already emailed by the
   ERP (`EmailSent`), not already in the outbox;
2. resolve each customer's channels from the channel policy (preference, consent, Peppol id);
3. screen them with the review policy: an invoice that needs a person's approval waits in
   the review queue and does not reach the outbox until it is approved;
4. build every planned send's bytes now (the email with its PDF, the portal notice, the
   e-invoice), so what was approved is exactly what leaves, and queue them in the outbox.
   The supporting documents planned by `q2c.attachments.plan_for_delivery` go into the
   email beside the PDF and, where their rule says so, into the PDF itself; an invoice a
   required document is missing for is not queued (its hold names the rule and the place).

The outbox then delivers them exactly once each, with failover along the plan.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path

import duckdb

from q2c import opsdb
from q2c.attachments.embed import embed_files
from q2c.attachments.nightly import AttachmentRun
from q2c.attachments.planning import AttachmentPlan
from q2c.content.registry import ContentRegistry
from q2c.delivery.addresses import validate_recipient
from q2c.delivery.edi import EdiDropChannel
from q2c.delivery.envelope import EDI, EMAIL, PORTAL, Channel
from q2c.delivery.errors import InvalidRecipientError
from q2c.delivery.mail_transport import EmlFolderTransport, SmtpTransport, email_payload
from q2c.delivery.message import MailAttachment, build_invoice_email
from q2c.delivery.outbox import OutboxItem, PlannedSend, attempt_key, document_key
from q2c.delivery.policy import AccountDelivery, ChannelPolicy, resolve_channels
from q2c.delivery.portal import ACCOUNT_HEADER, PortalChannel, PortalStore, portal_notice_message
from q2c.documents.email import render_invoice_email
from q2c.documents.model import InvoiceDocument
from q2c.einvoice_documents import StoredEInvoice
from q2c.invoice_mail import StoredDocument, attachment_name
from q2c.settings import Settings
from q2c.warehouse import OPS_SCHEMA

log = logging.getLogger(__name__)

_DUE_SQL = f"""
select
    invoices.invoice_id,
    invoices.invoice_number,
    coalesce(invoices.erp_email_status, '') as erp_email_status,
    accounts.account_key,
    accounts.account_name,
    accounts.segment,
    accounts.country_code,
    accounts.billing_email,
    accounts.delivery_preference,
    accounts.invoice_delivery_channel,
    accounts.peppol_participant_id,
    accounts.einvoice_format,
    accounts.x12_partner,
    accounts.email_consent,
    invoices.issue_date < ? as before_delivery_start
from core.fct_invoices as invoices
left join core.dim_accounts as accounts on accounts.account_key = invoices.account_key
where invoices.issue_date <= ?
  and exists (
    select 1 from {OPS_SCHEMA}.document_manifest as documents
    where documents.invoice_id = invoices.invoice_id
)
order by invoices.invoice_number
"""

_MIME_BY_SUFFIX = {".xml": "application/xml", ".pdf": "application/pdf",
                   ".x12": "application/edi-x12"}


@dataclass(frozen=True)
class DueInvoice:
    """An invoice due for delivery, with its account's policy decision."""

    invoice_id: str
    invoice_number: str
    account: AccountDelivery
    account_name: str | None
    decision_record: dict


@dataclass
class DeliverySelection:
    """The invoices due tonight, and why each other one is not, in counts and numbers."""

    due: list[DueInvoice] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)

    def skip(self, reason: str, invoice_number: str) -> None:
        self.skipped.setdefault(reason, []).append(invoice_number)


def select_due(
    conn: duckdb.DuckDBPyConnection,
    held: dict[str, list[str]],
    queued_keys: set[str],
    policy: ChannelPolicy,
    run_date,
    delivery_start,
) -> DeliverySelection:
    """Rendered invoices due for delivery with their channel decision; the rest by reason."""
    cursor = conn.execute(_DUE_SQL, [delivery_start, run_date])
    names = [column[0] for column in cursor.description]
    selection = DeliverySelection()
    for values in cursor.fetchall():
        row = dict(zip(names, values, strict=True))
        number = row["invoice_number"]
        if row["invoice_id"] in held:
            selection.skip("held back (quality rule or e-invoice rule)", number)
        elif document_key(row["invoice_id"]) in queued_keys:
            selection.skip("already in the outbox", number)
        elif row["before_delivery_start"]:
            selection.skip(f"issued before the delivery start {delivery_start} "
                           "(Q2C_DELIVER_FROM)", number)
        elif row["erp_email_status"].strip().lower() == "emailsent":
            selection.skip("already emailed by the ERP (EmailSent)", number)
        elif row["account_key"] is None:
            selection.skip("no account in dim_accounts", number)
        else:
            account = policy.account_for(AccountDelivery.from_row(row))
            decision = resolve_channels(account, policy)
            if not decision.channels:
                selection.skip(f"no usable channel ({decision.describe()})", number)
                continue
            selection.due.append(DueInvoice(
                row["invoice_id"], number, account, row["account_name"],
                decision.as_record(),
            ))
    return selection


_SETTINGS_DDL = """
create table if not exists q2c_settings (
    name text primary key, value text not null, set_at text not null
);
"""


def delivery_start(settings: Settings) -> dt.date:
    """The first issue date q2c delivers: `deliver_from`, else the one the first run fixed.

    The first run stores `run date - delivery_lookback_days` in the operational store and
    every later run reads it back, so the window does not move: an invoice that waits for
    review or for a fix longer than the look-back still goes out once it may.
    """
    if settings.deliver_from is not None:
        return settings.deliver_from
    with opsdb.connect(settings.ops_store) as store:
        opsdb.ensure_schema(store, _SETTINGS_DDL)
        with opsdb.transaction(store):
            row = store.execute(
                "select value from q2c_settings where name = 'delivery_start'"
            ).fetchone()
            if row is not None:
                return dt.date.fromisoformat(row[0])
            start = settings.first_delivery_start
            store.execute(
                "insert into q2c_settings values ('delivery_start', ?, ?)",
                [start.isoformat(), dt.datetime.now(dt.UTC).isoformat(timespec="seconds")],
            )
    log.info("delivery start fixed at %s (invoices issued earlier are not delivered)", start)
    return start


def delivery_channels(settings: Settings) -> dict[str, Channel]:
    """The configured transport of every channel; the portal notices go by the mail one."""
    mail = mail_transport(settings)
    portal = PortalChannel(PortalStore(settings.portal_store), settings.portal_base_url, mail)
    edi = EdiDropChannel(
        settings.einvoice_target, sender_id=settings.seller.peppol_id,
        region=settings.ses_region, endpoint_url=settings.s3_endpoint_url,
        key_path=settings.sftp_key_file, known_hosts_path=settings.sftp_known_hosts,
    )
    return {EMAIL: mail, PORTAL: portal, EDI: edi}


def mail_transport(settings: Settings) -> Channel:
    """`.eml` files in the outbox folder (default), an SMTP relay, or Amazon SES."""
    if settings.mail_channel == "eml":
        return EmlFolderTransport(settings.outbox_dir)
    if settings.mail_channel == "smtp":
        return SmtpTransport(
            settings.smtp_host, settings.smtp_port, user=settings.smtp_user,
            password=settings.smtp_password, starttls=settings.smtp_starttls,
            mail_from=parseaddr(settings.mail_from)[1] or None,
        )
    if settings.mail_channel == "ses":
        from q2c.delivery.ses import SesTransport

        return SesTransport(settings.ses_region, endpoint_url=settings.ses_endpoint_url,
                            configuration_set=settings.ses_configuration_set)
    raise ValueError(
        f"mail channel `{settings.mail_channel}` is unknown; set Q2C_MAIL_CHANNEL to eml, "
        "smtp or ses"
    )


def build_items(
    due: list[tuple[DueInvoice, InvoiceDocument, StoredDocument]],
    einvoices: dict[str, StoredEInvoice],
    content: ContentRegistry,
    settings: Settings,
    portal: PortalChannel,
    attachments: AttachmentRun | None = None,
) -> list[OutboxItem]:
    """One outbox item per invoice, its plan in policy order, every payload built now.

    A channel that cannot be built for an invoice (no validated e-invoice, an address that
    is not deliverable) is left out of the plan and recorded as skipped with the reason.
    With `attachments` (tonight's `plan_for_delivery`), an invoice missing a required
    supporting document is not queued, and the others carry theirs in the email and the
    PDF; the decision record lists each document with its rule and sha256.
    """
    items = []
    for invoice, doc, stored in due:
        extra = attachments.plan_for(invoice.invoice_id) if attachments else None
        if extra is not None and extra.held:
            log.warning("invoice %s not queued, held back for its attachments: %s",
                        doc.invoice_number, "; ".join(extra.reasons()))
            continue
        doc_key = document_key(invoice.invoice_id)
        record = dict(invoice.decision_record)
        skipped = dict(record.get("skipped") or {})
        if extra is not None:
            record["attachments"] = extra.record()
        try:
            pdf = Path(stored.pdf_path).read_bytes()
        except OSError as exc:
            log.warning("invoice %s not queued: its PDF %s cannot be read (%s); it is "
                        "rendered again and queued by the next run", doc.invoice_number,
                        stored.pdf_path, exc)
            continue
        plan = []
        for channel in record["channels"]:
            try:
                send = _planned_send(channel, invoice, doc, pdf, attempt_key(doc_key, channel),
                                     einvoices, content, settings, portal, extra)
            except (InvalidRecipientError, ValueError) as exc:
                send, reason = None, str(exc)
            else:
                reason = "no validated e-invoice for the invoice" if send is None else ""
            if send is None:
                skipped[channel] = reason
                log.info("invoice %s: channel %s left out: %s", doc.invoice_number, channel,
                         reason)
            else:
                plan.append(send)
        record["skipped"] = skipped
        if plan:
            items.append(OutboxItem(
                invoice_id=invoice.invoice_id, invoice_number=invoice.invoice_number,
                document_id=stored.document_id, account_key=invoice.account.account_key,
                plan=tuple(plan), decision=record,
            ))
        else:
            log.warning("invoice %s has no deliverable channel: %s", doc.invoice_number,
                        skipped)
    return items


def _with_embedded(pdf: bytes, extra: AttachmentPlan | None, invoice_number: str) -> bytes:
    """The PDF to send: as stored, plus the supporting documents its rules embed."""
    return embed_files(pdf, extra.for_pdf, invoice_number) if extra is not None else pdf


def _planned_send(channel, invoice, doc, pdf, key, einvoices, content, settings, portal,
                  extra=None):
    sender_domain = parseaddr(settings.mail_from)[1].rpartition("@")[2] or "q2c.invalid"
    if channel == EMAIL:
        stored = einvoices.get(invoice.invoice_id)
        if stored is not None and stored.format == "facturx":
            pdf = stored.path.read_bytes()  # the same invoice, with its CII XML embedded
        email = render_invoice_email(doc, content)
        message = build_invoice_email(
            invoice_number=doc.invoice_number, recipient=invoice.account.email or "",
            sender=settings.mail_from, subject=email.subject, html_body=email.html,
            text_body=email.text, pdf_bytes=_with_embedded(pdf, extra, doc.invoice_number),
            pdf_filename=attachment_name(doc.invoice_number),
            message_id_domain=sender_domain, idempotency_key=key,
            attachments=[MailAttachment(item.name, item.content, item.mime_type)
                         for item in (extra.for_email if extra is not None else ())],
        )
        return PlannedSend(EMAIL, validate_recipient(invoice.account.email or ""),
                           email_payload(message), f"{doc.invoice_number}.eml",
                           "message/rfc822")
    if channel == PORTAL:
        recipient = validate_recipient(invoice.account.email or "")
        notice = portal_notice_message(
            invoice_number=doc.invoice_number, account_key=invoice.account.account_key,
            recipient=recipient, sender=settings.mail_from, link=portal.link_for(key),
            key=key, message_id_domain=sender_domain, customer_name=invoice.account_name,
            seller_name=settings.seller.name,
        )
        return PlannedSend(PORTAL, recipient, _with_embedded(pdf, extra, doc.invoice_number),
                           attachment_name(doc.invoice_number),
                           "application/pdf", notice=email_payload(notice),
                           headers={ACCOUNT_HEADER: invoice.account.account_key})
    if channel == EDI:
        stored = einvoices.get(invoice.invoice_id)
        # The receiver the e-invoice was built for: a Peppol id, or an X12 partner's ISA id.
        if stored is None or not stored.receiver_id:
            return None
        return PlannedSend(EDI, stored.receiver_id, stored.path.read_bytes(),
                           stored.path.name, _MIME_BY_SUFFIX.get(stored.path.suffix,
                                                                 "application/octet-stream"),
                           sender_id=settings.seller.peppol_id)
    raise ValueError(f"channel {channel!r} is not one q2c delivers through")
