"""An invoice batch fanned out over Celery workers: chunks rendered and delivered as steps.

When one machine renders too slowly, a batch of invoices (the invoices issued on one
partition's day, or on a range of days) runs as `invoice_batch_fanout`: its PDFs are
rendered, and its invoices delivered, in chunks, each chunk one step that any free Celery
worker takes (dagster-celery). The steps around the chunks do what must happen once:

    plan_invoice_chunks -> render_chunk[chunk_0 .. chunk_n] -> queue_for_delivery
        -> deliver_chunk[chunk_0 .. chunk_n] -> record_deliveries

- `plan_invoice_chunks` reads the batch from the warehouse (quality holds left out, as in
  the nightly run) and splits the invoices that need a PDF into chunks, longest first.
- `render_chunk` renders its invoices in the worker's own process into the document
  store; it never opens the warehouse, so many run at once on many workers.
- `queue_for_delivery` records the new PDFs in the document manifest, builds the
  e-invoices, screens the batch for review and queues it in the outbox with every
  channel's bytes, then splits the batch's unsent invoices into chunks.
- `deliver_chunk` sends its invoices through the outbox. The delivery steps take the
  delivery pool (`q2c_delivery`, limit 1 in `orchestration/dagster-postgres.yaml`), so the
  mail relay sees one of them at a time unless the pool's limit is raised
  (`dagster instance concurrency set q2c_delivery 4`).
- `record_deliveries` copies the outbox and its audit trail into the warehouse.

Bounces and trading partners' acknowledgements of earlier sends are read by the nightly
run's outbox step, not here: this job sends a batch, the night settles what came back.

Every invoice is rendered once and delivered once, whatever is retried: a PDF's file name
and manifest row come from its content hash, the outbox keys each invoice by its document
(`document_key`), and a chunk step that runs again (a retry, a second run of the same
days) sends only what the outbox has not sent yet.

The workers and the run share the document store, the operational store (`ops.sqlite`)
and DAGSTER_HOME's storage folder (where steps hand their outputs over): one machine, or a
shared volume; see docs/deploy-kubernetes.md. The broker and result backend are
Q2C_CELERY_BROKER and Q2C_CELERY_BACKEND, read when a run starts.
"""

import datetime as dt
import os
import socket
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
from dagster_celery import celery_executor
from pydantic import Field

from assets.delivery import (
    DELIVERY_EVENTS_KEY,
    OUTBOX_KEY,
    cancel_rejected,
    due_for_delivery,
    queue_released_invoices,
    review_hold,
)
from assets.documents import DOCUMENT_PARTITIONS, DOCUMENTS_KEY, issue_window, quarantine_renders
from orchestration.jobs import DELIVERY_POOL, DELIVERY_TAG, NETWORK_RETRY
from orchestration.resources import Q2CSettings
from q2c import opsdb
from q2c.content.registry import load_registry
from q2c.delivery.export import export_deliveries
from q2c.delivery.outbox import Outbox, RetryPolicy, SendPace
from q2c.delivery.policy import load_policy as load_channel_policy
from q2c.documents.load import load_invoice_batch
from q2c.documents.model import InvoiceDocument
from q2c.documents.pool import (
    RenderedDocument,
    RenderFailure,
    plan_batch,
    record_manifest,
    render_to_store,
)
from q2c.documents.render import PdfRenderer, UsedContent, resolve_content
from q2c.einvoice_documents import (
    einvoice_targets,
    held_elsewhere,
    produce_einvoices,
)
from q2c.invoice_delivery import delivery_channels
from q2c.invoice_mail import stored_documents
from q2c.review import ReviewQueue, export_review
from q2c.review import load_policy as load_review_policy
from q2c.review.candidates import load_candidates
from q2c.warehouse import connect
from quality.runner import held_invoice_ids

FANOUT_JOB_NAME = "invoice_batch_fanout"

BROKER_ENV = "Q2C_CELERY_BROKER"
BACKEND_ENV = "Q2C_CELERY_BACKEND"
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
# Results in another Redis database than the queue, so `redis-cli -n 0` shows the queue only.
DEFAULT_BACKEND = "redis://127.0.0.1:6379/1"


def _celery_config(config: dict) -> dict:
    """The celery executor's config: broker and backend from the run config, else from
    Q2C_CELERY_BROKER / Q2C_CELERY_BACKEND when the run starts, else Redis on this machine.

    Read at run start, not at import, so one code image serves every deployment.
    """
    return {
        "broker": config.get("broker") or os.environ.get(BROKER_ENV) or DEFAULT_BROKER,
        "backend": config.get("backend") or os.environ.get(BACKEND_ENV) or DEFAULT_BACKEND,
        # A worker takes one step at a time and acknowledges it only when done, so a worker
        # that dies mid-step leaves the step to another worker instead of losing it.
        "config_source": {"worker_prefetch_multiplier": 1, "task_acks_late": True},
    }


q2c_celery_executor = celery_executor.configured(
    _celery_config,
    name="q2c_celery",
    config_schema={
        "broker": dg.Field(str, is_required=False,
                           description=f"Celery broker URL; default ${BROKER_ENV}."),
        "backend": dg.Field(str, is_required=False,
                            description=f"Celery result backend URL; default ${BACKEND_ENV}."),
    },
)


@dataclass(frozen=True)
class BatchPlan:
    """What the planning step found: the batch's invoices and what it did with them."""

    window: tuple[dt.date, dt.date] | None
    # Invoice id -> number of every invoice issued on the batch's days (held ones too).
    issued: dict[str, str]
    issue_dates: dict[str, dt.date]
    chunks: int
    sends_per_second: float
    to_render: int
    already_rendered: int
    held_back: dict[str, list[str]] = field(default_factory=dict)
    # (invoice id, table, field, reason) of invoices whose data cannot make a document.
    not_buildable: list[tuple[str, str, str, str]] = field(default_factory=list)

    def describe(self) -> str:
        if self.window is None:
            return "every day up to the run date"
        first, last = self.window
        return f"issued {first}" if first == last else f"issued {first} to {last}"


@dataclass(frozen=True)
class RenderChunk:
    key: str
    documents: tuple[InvoiceDocument, ...]
    used: UsedContent


@dataclass(frozen=True)
class ChunkRendering:
    key: str
    rendered: tuple[RenderedDocument, ...]
    failures: tuple[RenderFailure, ...]


@dataclass(frozen=True)
class DeliveryChunk:
    key: str
    invoice_ids: tuple[str, ...]
    sends_per_second: float


@dataclass(frozen=True)
class QueueReport:
    """What the queueing step did, and the audit chain head the delivery steps start from."""

    rendered: int
    render_failures: int
    einvoices_written: int
    queued_now: int
    already_known: int
    cancelled: list[str]
    not_due: dict[str, int]
    exported_head: tuple[int, str] | None


@dataclass(frozen=True)
class ChunkDelivery:
    key: str
    counts: dict[str, int]


class FanoutConfig(dg.Config):
    """How finely a batch is split, and how fast each delivery step may send."""

    chunks: int = Field(
        default=4, ge=1, le=256,
        description="Chunks per batch: the most steps that render (and deliver) at once.")
    max_sends_per_second: float = Field(
        default=10.0, ge=0,
        description="Sends per second of each delivery step at most (SMTP relay or SES, "
                    "not `.eml` files); 0 for no limit.")


def split_into_chunks(items: Sequence, chunks: int) -> list[list]:
    """Deal `items` round-robin into at most `chunks` non-empty lists, in their order.

    Given longest first, every chunk gets about the same amount of work.
    """
    dealt: list[list] = [[] for _ in range(max(1, chunks))]
    for position, item in enumerate(items):
        dealt[position % len(dealt)].append(item)
    return [chunk for chunk in dealt if chunk]


def _batch_invoices(conn, run_date: dt.date, window) -> dict[str, tuple[str, dt.date]]:
    """Invoice id -> (number, issue date) of the batch: issued by the run date, in the window."""
    sql = ("select invoice_id, invoice_number, issue_date from core.fct_invoices "
           "where issue_date <= ?")
    params: list = [run_date]
    if window is not None:
        sql += " and issue_date between ? and ?"
        params += list(window)
    rows = conn.execute(sql + " order by invoice_id", params).fetchall()
    return {invoice_id: (number, issued) for invoice_id, number, issued in rows}


@dg.op(out={"chunks": dg.DynamicOut(RenderChunk), "batch": dg.Out(BatchPlan)})
def plan_invoice_chunks(
    context: dg.OpExecutionContext, config: FanoutConfig, q2c: Q2CSettings
) -> Iterator[dg.DynamicOutput | dg.Output]:
    """Split the run's batch into chunks of invoices to render, longest invoices first.

    An invoice whose inputs and content versions hash to a PDF already in the store is
    not rendered again; an invoice with a quality hold is left out and named.
    """
    settings = q2c.load()
    window = issue_window(context)
    content = load_registry(settings.content_dir)
    used = resolve_content(content)
    with connect(settings.warehouse_path) as conn:
        held = held_invoice_ids(conn)
        invoices = _batch_invoices(conn, settings.run_date, window)
        loaded = load_invoice_batch(conn, [i for i in invoices if i not in held],
                                    settings.seller)
        known = set(stored_documents(conn))

    to_render, already_rendered = plan_batch(loaded.documents, known, content=content)
    longest_first = sorted(to_render, key=lambda doc: (-len(doc.lines), doc.invoice_id))
    chunks = split_into_chunks(longest_first, config.chunks)
    for index, documents in enumerate(chunks):
        yield dg.DynamicOutput(
            RenderChunk(f"chunk_{index}", tuple(documents), used),
            mapping_key=f"chunk_{index}", output_name="chunks",
        )

    batch = BatchPlan(
        window=window,
        issued={invoice_id: number for invoice_id, (number, _) in invoices.items()},
        issue_dates={invoice_id: issued for invoice_id, (_, issued) in invoices.items()},
        chunks=config.chunks, sends_per_second=config.max_sends_per_second,
        to_render=len(to_render), already_rendered=len(already_rendered),
        held_back={i: held[i] for i in invoices if i in held},
        not_buildable=[(r.invoice_id, r.table, r.field, r.reason) for r in loaded.rejected],
    )
    context.log.info(
        "invoice batch %s: %d invoices, %d to render in %d chunks, %d unchanged, %d held back, "
        "%d not buildable", batch.describe(), len(invoices), len(to_render), len(chunks),
        len(already_rendered), len(batch.held_back), len(batch.not_buildable),
    )
    yield dg.Output(batch, "batch", metadata={
        "issue_dates": batch.describe(), "invoices": len(invoices),
        "to_render": len(to_render), "render_chunks": len(chunks),
        "unchanged_not_rendered": len(already_rendered),
        "held_back": len(batch.held_back), "not_buildable": len(batch.not_buildable),
    })


# One warm renderer per worker process and content folder: fonts and parsed stylesheets
# stay loaded from one chunk step to the next on the same worker.
_renderers: dict[Path, PdfRenderer] = {}


def _warm_renderer(content_root: Path) -> PdfRenderer:
    if content_root not in _renderers:
        _renderers[content_root] = PdfRenderer(content_root)
    return _renderers[content_root]


def _worker_name() -> str:
    return f"{socket.gethostname()} pid {os.getpid()}"


@dg.op
def render_chunk(
    context: dg.OpExecutionContext, chunk: RenderChunk, q2c: Q2CSettings
) -> dg.Output[ChunkRendering]:
    """Render one chunk's PDFs into the document store, in this worker's process.

    A retried or repeated step writes the same files: each name carries the PDF's hash.
    """
    settings = q2c.load()
    content = load_registry(settings.content_dir)
    renderer = _warm_renderer(content.root)
    rendered, failures = [], []
    for doc in chunk.documents:
        try:
            rendered.append(
                render_to_store(doc, content, renderer, chunk.used, settings.documents_dir)
            )
        except Exception as exc:  # one bad invoice must not stop its chunk; it is reported
            failures.append(RenderFailure(doc.invoice_id, doc.invoice_number,
                                          f"{type(exc).__name__}: {exc}"))
            context.log.error("invoice %s not rendered: %s", doc.invoice_number, exc)

    context.log.info("%s: %d invoice PDFs rendered, %d failed, on %s", chunk.key,
                     len(rendered), len(failures), _worker_name())
    return dg.Output(
        ChunkRendering(chunk.key, tuple(rendered), tuple(failures)),
        metadata={"rendered": len(rendered), "failed": len(failures),
                  "invoices": dg.MetadataValue.json([d.invoice_number for d in rendered]),
                  "worker": _worker_name()},
    )


def _record_renders(conn, batch: BatchPlan, renderings: list[ChunkRendering], run_id: str):
    """Manifest rows for the new PDFs; the batch's quarantine rows replaced by this run's."""
    rendered = [doc for rendering in renderings for doc in rendering.rendered]
    failures = [failure for rendering in renderings for failure in rendering.failures]
    record_manifest(conn, rendered, run_id)
    quarantine_renders(conn, run_id, [
        *batch.not_buildable,
        *[(f.invoice_id, "document_manifest", "pdf", f.error) for f in failures],
    ], scope=list(batch.issued))
    return rendered, failures


def _rendered_days(batch: BatchPlan, rendered: list[RenderedDocument]):
    """A documents materialization per issue date that got new PDFs, for the partition view."""
    per_day = Counter(batch.issue_dates[doc.invoice_id] for doc in rendered)
    for day, count in sorted(per_day.items()):
        if DOCUMENT_PARTITIONS.has_partition_key(day.isoformat()):
            yield dg.AssetMaterialization(
                asset_key=DOCUMENTS_KEY, partition=day.isoformat(),
                metadata={"rendered": count, "job": FANOUT_JOB_NAME},
            )


def _screen(conn, settings, review: ReviewQueue, due_ids: list[str]) -> None:
    """Queue for review what the review policy marks, and export the review tables."""
    policy = load_review_policy(settings.review_policy_file)
    review.screen(load_candidates(conn, policy, due_ids), policy)
    with opsdb.connect(settings.ops_store) as store:
        export_review(store, conn)


@dg.op(out={"deliveries": dg.DynamicOut(DeliveryChunk), "queued": dg.Out(QueueReport)})
def queue_for_delivery(
    context: dg.OpExecutionContext, batch: BatchPlan, renderings: list[ChunkRendering],
    q2c: Q2CSettings,
) -> Iterator:
    """Record the chunks' PDFs, then queue the batch in the outbox and split what is unsent.

    As the nightly run does between its documents and its sends: e-invoices for the
    customers that take them, the review screen, then one outbox item per invoice with
    every channel's bytes built now. An invoice already in the outbox is never queued
    again; one queued earlier and not sent yet is delivered by this run's chunks.
    """
    settings = q2c.load()
    content = load_registry(settings.content_dir)
    used = resolve_content(content)
    channels = delivery_channels(settings)
    box = Outbox(settings.ops_store)
    review = ReviewQueue(settings.ops_store)

    with connect(settings.warehouse_path) as conn:
        rendered, failures = _record_renders(conn, batch, renderings, context.run_id)
        targets = einvoice_targets(conn, settings.run_date,
                                   held_elsewhere(held_invoice_ids(conn)),
                                   load_channel_policy(settings.delivery_policy_file))
        einvoice_run = produce_einvoices(conn, targets, settings, content, used,
                                         context.run_id)
        selection = due_for_delivery(settings, conn, batch.issued)
        _screen(conn, settings, review, [invoice.invoice_id for invoice in selection.due])
    queued = queue_released_invoices(box, review, settings, content, channels, selection,
                                     context.run_id)
    enqueued, exported_head = queued.enqueued, queued.exported_head
    cancelled = cancel_rejected(box, review)

    unsent = sorted(set(box.unsent_invoice_ids()) & set(batch.issued))
    chunks = split_into_chunks(unsent, batch.chunks)
    for index, invoice_ids in enumerate(chunks):
        yield dg.DynamicOutput(
            DeliveryChunk(f"chunk_{index}", tuple(invoice_ids), batch.sends_per_second),
            mapping_key=f"chunk_{index}", output_name="deliveries",
        )
    yield from _rendered_days(batch, rendered)
    report = QueueReport(
        rendered=len(rendered), render_failures=len(failures),
        einvoices_written=len(einvoice_run.written), queued_now=len(enqueued.queued),
        already_known=len(enqueued.already_known), cancelled=cancelled,
        not_due={reason: len(numbers) for reason, numbers in selection.skipped.items()},
        exported_head=exported_head,
    )
    context.log.info(
        "invoice batch %s: %d PDFs recorded, %d failed; outbox: %d queued now, %d already "
        "known; %d unsent invoices in %d delivery chunks", batch.describe(), len(rendered),
        len(failures), len(enqueued.queued), len(enqueued.already_known), len(unsent),
        len(chunks),
    )
    yield dg.Output(report, "queued", metadata={
        "rendered": len(rendered), "render_failures": len(failures),
        "einvoices_written": len(einvoice_run.written), "queued_now": len(enqueued.queued),
        "already_in_outbox": len(enqueued.already_known), "delivery_chunks": len(chunks),
        "not_due": dg.MetadataValue.json(report.not_due),
    })


@dg.op(retry_policy=NETWORK_RETRY, pool=DELIVERY_POOL, tags={DELIVERY_TAG: "outbox"})
def deliver_chunk(
    context: dg.OpExecutionContext, chunk: DeliveryChunk, q2c: Q2CSettings
) -> dg.Output[ChunkDelivery]:
    """Send one chunk's invoices through the outbox, each once, with failover.

    The outbox claims each invoice under a lease and records its send, so a retry of this
    step, or this chunk in a second run, sends only what is still unsent. A review
    decision taken after queueing still holds an invoice back.
    """
    settings = q2c.load()
    box = Outbox(settings.ops_store)
    review = ReviewQueue(settings.ops_store)
    paced = chunk.sends_per_second > 0 and settings.mail_channel != "eml"

    report = box.process(
        delivery_channels(settings), context.run_id, retry=RetryPolicy(),
        hold=lambda invoice_id: review_hold(review, invoice_id),
        invoice_ids=chunk.invoice_ids,
        pace=SendPace(chunk.sends_per_second) if paced else None,
    )

    counts = {name: int(value) for name, value in report.counts().items()}
    context.log.info("%s: %d invoices, %s, on %s", chunk.key, len(chunk.invoice_ids), counts,
                     _worker_name())
    return dg.Output(ChunkDelivery(chunk.key, counts),
                     metadata={**counts, "invoices": len(chunk.invoice_ids),
                               "worker": _worker_name()})


@dg.op
def record_deliveries(
    context: dg.OpExecutionContext, batch: BatchPlan, queued: QueueReport,
    deliveries: list[ChunkDelivery], q2c: Q2CSettings,
) -> Iterator[dg.AssetMaterialization | dg.Output]:
    """Copy the outbox and its audit trail into the warehouse, with the batch's counts.

    Stops the run when the audit trail no longer holds what the last run exported.
    """
    settings = q2c.load()
    box = Outbox(settings.ops_store)
    dead = box.dead_letters()
    problems = box.verify(known_head=queued.exported_head)
    with opsdb.connect(settings.ops_store) as store, connect(settings.warehouse_path) as conn:
        exported = export_deliveries(store, conn)

    counts: Counter = Counter()
    for delivery in deliveries:
        counts.update(delivery.counts)
    context.log.info("invoice batch %s delivered in %d chunks: %s; %d dead letters",
                     batch.describe(), len(deliveries), dict(counts), len(dead))
    yield dg.AssetMaterialization(asset_key=OUTBOX_KEY, metadata={
        "issue_dates": batch.describe(), "job": FANOUT_JOB_NAME,
        "delivery_chunks": len(deliveries), "queued_now": queued.queued_now,
        **{name: int(value) for name, value in counts.items()},
        "dead_letters": len(dead),
        "dagster/row_count": exported.get("outbox", 0),
    })
    yield dg.AssetMaterialization(asset_key=DELIVERY_EVENTS_KEY, metadata={
        "dagster/row_count": exported.get("delivery_events", 0),
    })
    if problems:
        raise dg.Failure(
            allow_retries=False,
            description=(f"the delivery audit trail in {settings.ops_store} changed during "
                         f"the run ({problems[0]}); `q2c outbox verify` lists every problem"),
            metadata={"problems": dg.MetadataValue.json(problems[:20])},
        )
    yield dg.Output(dict(counts))


@dg.job(
    name=FANOUT_JOB_NAME,
    description=(
        "Render and deliver one invoice batch (the invoices issued on a partition's day, or "
        "a range of days) in chunks that Celery workers take in parallel; each invoice is "
        "rendered and delivered once. Run after the nightly job has built the warehouse."
    ),
    partitions_def=DOCUMENT_PARTITIONS,
    executor_def=q2c_celery_executor,
    resource_defs={"q2c": Q2CSettings()},
    tags={"q2c/job": FANOUT_JOB_NAME, DELIVERY_TAG: "outbox"},
)
def invoice_batch_fanout():
    chunks, batch = plan_invoice_chunks()
    deliveries, queued = queue_for_delivery(batch, chunks.map(render_chunk).collect())
    record_deliveries(batch, queued, deliveries.map(deliver_chunk).collect())
