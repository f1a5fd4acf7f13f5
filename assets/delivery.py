"""Delivery: the review gate, then the outbox that sends each invoice once along its channels.

`review_queue` screens tonight's due invoices with the review policy and exports the queue;
`outbox` queues the approved ones with every channel's bytes, reads bounces, delivers
exactly once with failover, and exports the outbox and its audit trail for the dbt marts.

The nightly run (no partition) looks at every invoice due. In the one run of a backfill of
some issue dates (`dagster asset materialize --partition-range`, the documents' single-run
policy) both look at the invoices issued on those days only. They are not partitioned
themselves: Dagster cannot run a partitioned asset below the partitioned documents in the
nightly run, which has no partition. Either way the outbox sends each invoice once: what
it already holds is never queued again.
"""


import datetime as dt
import logging
from dataclasses import dataclass

import dagster as dg
import duckdb
from pydantic import Field

from assets.documents import DOCUMENTS_KEY, EINVOICES_KEY, issue_window
from orchestration.jobs import DELIVERY_POOL, DELIVERY_TAG, NETWORK_RETRY
from orchestration.resources import Q2CSettings
from q2c import opsdb
from q2c.attachments.nightly import AttachmentRun, plan_for_delivery
from q2c.content.registry import load_registry
from q2c.delivery.bounces import read_bounces
from q2c.delivery.envelope import PORTAL
from q2c.delivery.export import export_deliveries
from q2c.delivery.outbox import (
    DOCUMENT_KINDS,
    EnqueueReport,
    Outbox,
    RetryPolicy,
    SendPace,
    document_key,
)
from q2c.delivery.policy import load_policy as load_channel_policy
from q2c.documents.load import load_invoice_batch
from q2c.documents.pool import input_hash
from q2c.documents.render import resolve_content
from q2c.einvoice_documents import stored_einvoices
from q2c.invoice_delivery import (
    DeliverySelection,
    build_items,
    delivery_channels,
    delivery_start,
    select_due,
)
from q2c.invoice_mail import stored_documents
from q2c.review import PENDING, REJECTED, ReviewQueue, export_review
from q2c.review import load_policy as load_review_policy
from q2c.review.candidates import load_candidates
from q2c.warehouse import connect
from q2c.x12_invoices import read_partner_acknowledgements
from quality.runner import held_invoice_ids

logger = logging.getLogger(__name__)

REVIEW_QUEUE_KEY = dg.AssetKey(["q2c_ops", "review_queue"])
REVIEW_DECISIONS_KEY = dg.AssetKey(["q2c_ops", "review_decisions"])
OUTBOX_KEY = dg.AssetKey(["q2c_ops", "outbox"])
OUTBOX_PAYLOADS_KEY = dg.AssetKey(["q2c_ops", "outbox_payloads"])
DELIVERY_EVENTS_KEY = dg.AssetKey(["q2c_ops", "delivery_events"])


def due_for_delivery(settings, conn, issued: dict[str, str] | None = None) -> DeliverySelection:
    """Invoices due tonight; with `issued` (a partitioned run's days), those invoices only."""
    known = Outbox(settings.ops_store).document_keys_known()
    selection = select_due(conn, held_invoice_ids(conn), known,
                           load_channel_policy(settings.delivery_policy_file,
                                               ops_store=settings.ops_store),
                           settings.run_date, delivery_start(settings))
    if issued is None:
        return selection
    numbers = set(issued.values())
    selection.due = [invoice for invoice in selection.due if invoice.invoice_id in issued]
    selection.skipped = {
        reason: kept for reason, listed in selection.skipped.items()
        if (kept := [number for number in listed if number in numbers])
    }
    return selection


def _issued_on_days(conn, window) -> dict[str, str] | None:
    """Invoice id to number of the invoices issued on a partitioned run's days; None for a
    run without partition, which looks at every day."""
    if window is None:
        return None
    rows = conn.execute(
        "select invoice_id, invoice_number from core.fct_invoices "
        "where issue_date between ? and ?", list(window),
    ).fetchall()
    return dict(rows)


def _days(window, settings) -> str:
    return f"{window[0]} to {window[1]}" if window else f"all up to {settings.run_date}"


def review_hold(review: ReviewQueue, invoice_id: str) -> str | None:
    """Asked right before each send: a decision taken after queueing still counts."""
    status = review.status_of([invoice_id]).get(invoice_id)
    if status == PENDING:
        return "waiting for review approval again (reopened, or the amount changed)"
    if status == REJECTED:
        return "rejected in review"
    return None


def cancel_rejected(box: Outbox, review: ReviewQueue) -> list[str]:
    """Cancel queued, not yet sent deliveries whose invoice a reviewer rejected since."""
    cancelled = []
    for invoice_id, status in review.status_of(box.unsent_invoice_ids()).items():
        if status != REJECTED:
            continue
        try:
            if box.cancel(document_key(invoice_id), by="q2c review",
                          reason="the invoice was rejected in review after it was queued"):
                cancelled.append(invoice_id)
        except ValueError as exc:
            logger.warning("delivery of invoice id %s not cancelled: %s", invoice_id, exc)
    return cancelled


def _stop_if_the_trail_changed(box: Outbox, exported_head, settings) -> None:
    """Send nothing when the operational store no longer holds what the last run recorded.

    A lost, restored or edited store would otherwise resend invoices it forgot it sent.
    """
    problems = box.verify(known_head=exported_head)
    if problems:
        raise dg.Failure(
            allow_retries=False,
            description=(
                f"delivery stopped, nothing was sent: the audit trail in {settings.ops_store} "
                f"does not match what the last run recorded ({problems[0]}). Restore the "
                "store from a backup, or, if it was reset on purpose, drop "
                "q2c_ops.delivery_events from the warehouse; `q2c outbox verify` lists "
                "every problem."
            ),
            metadata={"problems": dg.MetadataValue.json(problems[:20])},
        )


def _exported_chain_head(conn) -> tuple[int, str] | None:
    """The last audit event the previous run copied into the warehouse.

    The chain in the operational store must still contain that event with that hash: a
    rewritten or truncated history shows even when its hashes were recomputed.
    """
    try:
        row = conn.execute(
            "select seq, hash from q2c_ops.delivery_events order by seq desc limit 1"
        ).fetchone()
    except duckdb.CatalogException:
        return None
    return (int(row[0]), str(row[1])) if row else None


@dataclass(frozen=True)
class QueuedInvoices:
    """What queueing the released invoices did, for the step's metadata and later checks."""

    enqueued: EnqueueReport
    attachments: AttachmentRun
    exported_head: tuple[int, str] | None


def queue_released_invoices(
    box: Outbox, review: ReviewQueue, settings, content, channels,
    selection: DeliverySelection, run_id: str,
) -> QueuedInvoices:
    """Queue the due invoices review has released, with every channel's bytes built now.

    The nightly outbox step and the Celery fan-out job both queue this way, so an invoice
    waits for approval, needs its stored PDF as it is now, and is never queued twice,
    whichever job reaches it. An invoice that cannot go yet is recorded in `selection`.
    """
    used = resolve_content(content)
    with connect(settings.warehouse_path) as conn:
        gate = review.release_gate([invoice.invoice_id for invoice in selection.due])
        allowed = set(gate.allowed)
        for invoice in selection.due:
            if invoice.invoice_id not in allowed:
                selection.skip("waiting for review approval (q2c review list)",
                               invoice.invoice_number)
        due = [invoice for invoice in selection.due if invoice.invoice_id in allowed]
        batch = load_invoice_batch(conn, [invoice.invoice_id for invoice in due],
                                   settings.seller)
        stored = stored_documents(conn)
        einvoices = stored_einvoices(conn)
        exported_head = _exported_chain_head(conn)

    by_id = {invoice.invoice_id: invoice for invoice in due}
    ready = []
    for doc in batch.documents:
        document = stored.get(input_hash(doc, used))
        if document is None:
            selection.skip("no stored PDF for the invoice as it is now", doc.invoice_number)
        else:
            ready.append((by_id[doc.invoice_id], doc, document))
    _stop_if_the_trail_changed(box, exported_head, settings)

    with connect(settings.warehouse_path) as conn:
        attachments = plan_for_delivery(conn, [doc for _, doc, _ in ready], settings, content,
                                        run_id)
    items = build_items(ready, einvoices, content, settings, channels[PORTAL],
                        attachments=attachments)
    return QueuedInvoices(box.enqueue(items, run_id), attachments, exported_head)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(REVIEW_QUEUE_KEY, deps=[DOCUMENTS_KEY, EINVOICES_KEY],
                     description="Invoices waiting for a person's approval (`q2c review`)."),
        dg.AssetSpec(REVIEW_DECISIONS_KEY, deps=[DOCUMENTS_KEY, EINVOICES_KEY],
                     description="Who approved or rejected which invoice, when and why."),
    ],
    group_name="delivery",
    can_subset=False,
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def review_queue(context: dg.AssetExecutionContext, q2c: Q2CSettings):
    """Screen the invoices due tonight with the review policy and export the queue.

    An invoice the policy marks (a large amount, a customer's first invoice, a customer on
    hold) waits here until `q2c review approve` releases it; the outbox asks the same queue.
    """
    settings = q2c.load()
    policy = load_review_policy(settings.review_policy_file)
    queue = ReviewQueue(settings.ops_store)
    window = issue_window(context)
    with connect(settings.warehouse_path) as conn:
        due = due_for_delivery(settings, conn, _issued_on_days(conn, window)).due
        candidates = load_candidates(conn, policy, [invoice.invoice_id for invoice in due])
        gate = queue.screen(candidates, policy)
        with opsdb.connect(settings.ops_store) as store:
            exported = export_review(store, conn)

    now = dt.datetime.now(dt.UTC)
    pending = queue.pending()
    breached = [item.invoice_number for item in pending if item.is_sla_breached(now)]
    context.log.info(
        "review: %d due invoices screened, %d may go, %d wait for approval, %d rejected",
        len(candidates), len(gate.allowed), len(gate.waiting), len(gate.rejected),
    )
    metadata = {
        "issue_dates": _days(window, settings),
        "screened": len(candidates), "released": len(gate.allowed),
        "waiting_for_approval": len(gate.waiting), "rejected": len(gate.rejected),
        "pending_total": len(pending), "sla_breached": len(breached),
        "sla_breached_invoices": dg.MetadataValue.json(breached[:50]),
        "policy": f"{policy.source} v{policy.version}",
    }
    yield dg.MaterializeResult(asset_key=REVIEW_QUEUE_KEY, metadata={
        **metadata, "dagster/row_count": exported.queue_rows,
    })
    yield dg.MaterializeResult(asset_key=REVIEW_DECISIONS_KEY, metadata={
        "dagster/row_count": exported.decision_rows,
    })


class OutboxConfig(dg.Config):
    """How fast and how much one run hands over, for a mail relay that limits senders.

    The pace applies when mail goes to an SMTP relay or SES, never to `.eml` files. Invoices
    over the per-run cap stay queued for the next run.
    """

    max_sends_per_second: float = Field(
        default=10.0, ge=0, description="Sends per second at most; 0 for no limit.")
    max_sends_per_run: int = Field(
        default=0, ge=0, description="Invoices handled per run at most; 0 for no limit.")


@dg.multi_asset(
    specs=[
        dg.AssetSpec(OUTBOX_KEY, deps=[REVIEW_QUEUE_KEY, DOCUMENTS_KEY, EINVOICES_KEY],
                     kinds={"email"},
                     description="One row per invoice document to deliver and its state."),
        dg.AssetSpec(OUTBOX_PAYLOADS_KEY, deps=[REVIEW_QUEUE_KEY],
                     description="What each channel of each plan sends (no payload bytes)."),
        dg.AssetSpec(DELIVERY_EVENTS_KEY, deps=[REVIEW_QUEUE_KEY],
                     description="The append-only, hash-chained delivery audit trail."),
    ],
    check_specs=[
        dg.AssetCheckSpec("no_dead_letters", asset=OUTBOX_KEY,
                          description="No invoice exhausted every channel of its plan."),
        dg.AssetCheckSpec("edi_rejections_handled", asset=OUTBOX_KEY,
                          description="Every 997 was read and matched, and no partner "
                                      "rejected an 810 that the policy says to alert on."),
        dg.AssetCheckSpec("audit_chain_intact", asset=DELIVERY_EVENTS_KEY,
                          description="Every delivery event still hashes to the next."),
    ],
    group_name="delivery",
    can_subset=False,
    backfill_policy=dg.BackfillPolicy.single_run(),
    retry_policy=NETWORK_RETRY,
    pool=DELIVERY_POOL,
    op_tags={DELIVERY_TAG: "outbox"},
)
def outbox(context: dg.AssetExecutionContext, config: OutboxConfig, q2c: Q2CSettings):
    """Queue tonight's approved invoices along their channel plans and deliver them.

    Each invoice is keyed by its document, so a rerun, a retried step or a second run at
    the same time never sends it twice; a permanent failure or a bounce moves it to the
    next channel of its plan, and one that exhausts them all is a dead letter. A run for
    some issue dates (a backfill) queues and sends the invoices issued on those days only.
    The step is in the delivery pool and retried as a network step: a retry sends only
    what the first try did not.
    """
    settings = q2c.load()
    content = load_registry(settings.content_dir)
    channels = delivery_channels(settings)
    box = Outbox(settings.ops_store)
    review = ReviewQueue(settings.ops_store)
    window = issue_window(context)

    with connect(settings.warehouse_path) as conn:
        issued = _issued_on_days(conn, window)
        selection = due_for_delivery(settings, conn, issued)
    queued = queue_released_invoices(box, review, settings, content, channels, selection,
                                     context.run_id)
    enqueued, attachments, exported_head = (
        queued.enqueued, queued.attachments, queued.exported_head)

    bounces = read_bounces(
        maildir=settings.bounce_maildir, sqs_queue_url=settings.ses_bounce_queue_url,
        region=settings.ses_region, endpoint_url=settings.ses_endpoint_url,
        on_bounce=lambda bounce: box.record_bounce(
            bounce.attempt_key, bounce.diagnostic, context.run_id),
    ) if settings.bounce_maildir or settings.ses_bounce_queue_url else None
    acks = read_partner_acknowledgements(settings, box, context.run_id)
    for alert in acks.alerts:
        context.log.error("invoice %s: partner %s rejected its 810 (%s); the policy says to "
                          "settle it with the partner, not to fail over",
                          alert.invoice_number, alert.partner, "; ".join(alert.errors))
    cancelled = cancel_rejected(box, review)
    paced = config.max_sends_per_second > 0 and settings.mail_channel != "eml"
    # Invoice documents only: a reminder waiting in the same outbox is sent by the dunning
    # step, which first checks that its invoice is still unpaid and undisputed.
    report = box.process(channels, context.run_id, retry=RetryPolicy(),
                         hold=lambda invoice_id: review_hold(review, invoice_id),
                         invoice_ids=issued, limit=config.max_sends_per_run or None,
                         pace=SendPace(config.max_sends_per_second) if paced else None,
                         kinds=DOCUMENT_KINDS)
    dead = box.dead_letters()
    problems = box.verify(known_head=exported_head)

    with opsdb.connect(settings.ops_store) as store, connect(settings.warehouse_path) as conn:
        exported = export_deliveries(store, conn)

    counts = report.counts()
    context.log.info("outbox: %d queued now, %d already known; %s; %d dead letters",
                     len(enqueued.queued), len(enqueued.already_known), counts, len(dead))
    yield dg.MaterializeResult(asset_key=OUTBOX_KEY, metadata={
        "issue_dates": _days(window, settings),
        "sends_per_second_limit": config.max_sends_per_second if paced else "none",
        "queued_now": len(enqueued.queued),
        "cancelled_after_rejection": dg.MetadataValue.json(cancelled),
        **{name: int(value) for name, value in counts.items()},
        "status_counts": dg.MetadataValue.json(box.status_counts()),
        "bounces_read": len(bounces.bounces) if bounces else 0,
        "edi_acknowledgements": dg.MetadataValue.json(acks.counts()),
        "supporting_documents": dg.MetadataValue.json(attachments.counts()),
        "dead_letters": len(dead),
        "not_due": dg.MetadataValue.json(
            {reason: len(numbers) for reason, numbers in selection.skipped.items()}
        ),
        "channels": ", ".join(f"{name}={channel.name}" for name, channel in channels.items()),
        "dagster/row_count": exported.get("outbox", 0),
    })
    yield dg.MaterializeResult(asset_key=OUTBOX_PAYLOADS_KEY, metadata={
        "dagster/row_count": exported.get("outbox_payloads", 0),
    })
    yield dg.MaterializeResult(asset_key=DELIVERY_EVENTS_KEY, metadata={
        "dagster/row_count": exported.get("delivery_events", 0),
        "chain_head": str(report.chain_head),
    })
    yield dg.AssetCheckResult(
        check_name="no_dead_letters", asset_key=OUTBOX_KEY, passed=not dead,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"dead_letters": dg.MetadataValue.json(
            {letter.invoice_number: letter.last_error for letter in dead[:50]}
        )},
    )
    yield dg.AssetCheckResult(
        check_name="edi_rejections_handled", asset_key=OUTBOX_KEY,
        passed=not acks.needs_attention,
        metadata={
            "alerts": dg.MetadataValue.json({
                alert.invoice_number: f"{alert.partner} status {alert.status}: "
                                      + "; ".join(alert.errors) for alert in acks.alerts[:50]
            }),
            "ack_files_not_matched": dg.MetadataValue.json(
                {problem.source: problem.reason for problem in acks.problems[:50]}
            ),
        },
    )
    yield dg.AssetCheckResult(
        check_name="audit_chain_intact", asset_key=DELIVERY_EVENTS_KEY, passed=not problems,
        metadata={"problems": dg.MetadataValue.json(problems[:20])},
    )
