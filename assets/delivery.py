"""Delivery: invoice PDFs emailed once each, through the delivery ledger."""


import dagster as dg

from assets.documents import DOCUMENTS_KEY
from orchestration.resources import Q2CSettings
from q2c.content.registry import load_registry
from q2c.delivery import deliver
from q2c.documents.load import load_invoice_batch
from q2c.documents.pool import input_hash
from q2c.documents.render import resolve_content
from q2c.invoice_mail import (
    delivery_requests,
    mail_channel,
    select_invoices_to_email,
    stored_documents,
)
from q2c.warehouse import connect
from quality.runner import held_invoice_ids


@dg.asset(
    key=dg.AssetKey(["delivery", "invoice_emails"]),
    group_name="delivery",
    kinds={"email"},
    deps=[DOCUMENTS_KEY],
)
def invoice_emails(context: dg.AssetExecutionContext, q2c: Q2CSettings):
    """Invoice emails (HTML and text body from governed templates, the PDF attached).

    Every send goes through `q2c_ops.delivery_ledger` keyed by invoice, channel and
    recipient, so a rerun or a retried step never emails an invoice twice.
    """
    settings = q2c.load()
    channel = mail_channel(settings)
    content = load_registry(settings.content_dir)

    used = resolve_content(content)
    with connect(settings.warehouse_path) as conn:
        selection = select_invoices_to_email(conn, held_invoice_ids(conn))
        batch = load_invoice_batch(conn, [c.invoice_id for c in selection.due], settings.seller)
        stored = stored_documents(conn)
        ready = []
        for doc in batch.documents:
            document = stored.get(input_hash(doc, used))
            if document is None:
                selection.skip("no stored PDF for the invoice as it is now", doc.invoice_number)
            else:
                ready.append((doc, document))
        requests = delivery_requests(ready, content, settings.mail_from)
        report = deliver(conn, requests, channel, context.run_id)

    counts = report.counts()
    context.log.info("invoice emails via %s: %s", channel.name, counts)
    return dg.MaterializeResult(
        metadata={
            "channel": channel.name,
            **{name: int(value) for name, value in counts.items()},
            "not_due": dg.MetadataValue.json(
                {reason: len(numbers) for reason, numbers in selection.skipped.items()}
            ),
            "failures": dg.MetadataValue.json({
                outcome.invoice_number: f"{outcome.status}: {outcome.error}"
                for outcome in report.outcomes if outcome.error
            }),
        }
    )
