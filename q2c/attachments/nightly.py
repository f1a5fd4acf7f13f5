"""The delivery step's attachments: plan every due invoice's, and hold those missing one.

`plan_for_delivery` plans the supporting documents of the invoices about to be queued
and records in `q2c_ops.invoice_holds` (suite `attachments`) every invoice a required
document is missing for, with the reason; `q2c.invoice_delivery.build_items` then leaves
those out of the outbox and adds the planned documents to the others.

The hold is a delivery hold, not a data-quality one: the invoice is still rendered and its
e-invoice still built, so it leaves the night its document appears. That is why it writes
no `quality_results` row (which would make `quality.runner.held_invoice_ids` keep the
invoice from being rendered at all); every night the delivery step plans the invoice again
and replaces the suite's holds with what is still missing.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import duckdb

from q2c.attachments.facts import InvoiceFacts, load_invoice_facts
from q2c.attachments.planning import AttachmentPlan, StatementSource, plan_attachments
from q2c.attachments.repository import DocumentRepository, open_repository
from q2c.attachments.rules import AttachmentRules, load_rules
from q2c.attachments.statement import WarehouseStatementSource
from q2c.content.registry import ContentRegistry
from q2c.documents.model import InvoiceDocument
from q2c.invoice_mail import attachment_name
from q2c.settings import Settings
from q2c.warehouse import OPS_SCHEMA

log = logging.getLogger(__name__)

HOLD_SUITE = "attachments"
HOLD_PREFIX = "attachments: "


@dataclass
class AttachmentRun:
    """Tonight's plans by invoice id; `held` are the invoices not to queue."""

    plans: dict[str, AttachmentPlan] = field(default_factory=dict)

    @property
    def held(self) -> dict[str, AttachmentPlan]:
        return {invoice_id: plan for invoice_id, plan in self.plans.items() if plan.held}

    def plan_for(self, invoice_id: str) -> AttachmentPlan | None:
        return self.plans.get(invoice_id)

    def counts(self) -> dict[str, int]:
        """For run metadata: invoices planned and held, documents attached and embedded."""
        plans = list(self.plans.values())
        return {"planned": len(plans), "held": len(self.held),
                "attached": sum(len(plan.for_email) for plan in plans),
                "embedded": sum(len(plan.for_pdf) for plan in plans)}


def repository_from(settings: Settings) -> DocumentRepository:
    """The configured repository: `Q2C_ATTACHMENTS` (a folder, or s3://bucket/prefix)."""
    return open_repository(settings.attachments_repository,
                           endpoint_url=settings.s3_endpoint_url, region=settings.ses_region)


def plan_for_delivery(
    conn: duckdb.DuckDBPyConnection,
    docs: Sequence[InvoiceDocument],
    settings: Settings,
    content: ContentRegistry,
    run_id: str,
    *,
    rules: AttachmentRules | None = None,
    repository: DocumentRepository | None = None,
    statement_source: StatementSource | None = None,
) -> AttachmentRun:
    """Plan the attachments of `docs` and record the holds of this run.

    Rules, repository and statement source come from the settings unless given.

    Raises:
        AttachmentRulesError: The rules file is unusable or tests an unknown attribute.
    """
    rules = rules or load_rules(settings.attachment_rules_file)
    repository = repository or repository_from(settings)
    facts = load_invoice_facts(conn, [doc.invoice_id for doc in docs])
    if facts:
        rules.check_attributes(next(iter(facts.values())).attributes.keys())
    statements = statement_source or WarehouseStatementSource(conn, content, settings.run_date)
    run = AttachmentRun()
    for doc in docs:
        invoice_facts = facts.get(doc.invoice_id) or InvoiceFacts(doc.invoice_id,
                                                                  doc.invoice_number)
        run.plans[doc.invoice_id] = plan_attachments(
            doc, invoice_facts, rules, repository, statements,
            reserved_names=(attachment_name(doc.invoice_number),),
        )
    record_holds(conn, run, run_id)
    log.info("attachments: %s (rules %s, repository %r)", run.counts(), rules.source,
             repository)
    return run


def record_holds(conn: duckdb.DuckDBPyConnection, run: AttachmentRun, run_id: str) -> None:
    """Replace the suite's holds with this run's: one row per missing required document."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    conn.execute(f"delete from {OPS_SCHEMA}.invoice_holds where suite = ?", [HOLD_SUITE])
    rows = [
        [run_id, plan.invoice_id, plan.invoice_number, HOLD_SUITE, missing.rule_id,
         HOLD_PREFIX + missing.reason(plan.invoice_number), now]
        for plan in run.held.values() for missing in plan.missing_required
    ]
    if rows:
        conn.executemany(
            f"insert into {OPS_SCHEMA}.invoice_holds (run_id, invoice_id, invoice_number, "
            "suite, expectation, reason, held_at) values (?, ?, ?, ?, ?, ?, ?)", rows)
