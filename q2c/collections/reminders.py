"""Tonight's reminders: from the dunning mart to the delivery outbox, each exactly once.

1. Read the policy in force and check it against the governed content and the stages dbt
   used (`staging.dunning_stages`); read `kpi.mart_dunning_actions`, built for this day.
2. Plan: every invoice whose reached stage is due (`remind`, `hand_over`). A hold set in
   the operational store after the marts were built still stops it, and so does a dispute
   the customer opened in the portal that is not resolved; a stage already in the
   outbox (`reminder_<stage>` keyed by invoice and stage), or one a later stage of the same
   invoice already went out for, is not queued again.
3. Build every planned send's bytes now, from the governed templates
   (`q2c.collections.render`) with the account's statement of open items as PDF
   (`q2c.attachments.statement`): to the customer along the stage's channels (the
   customer's delivery policy without EDI, or the stage's own list), or to the account
   owner by email for the hand-over.
4. Queue them in the outbox, cancel queued reminders that are no longer due (paid,
   disputed, promised, held or overtaken by the next stage), and deliver the reminder rows
   through the outbox, which records every attempt in the hash-chained audit trail. Right
   before each send the reminder is checked against tonight's due reminders once more; one
   that is not due stays back. The invoice deliveries in the same outbox are left to the
   invoice delivery run, which in turn claims invoice documents only
   (`q2c.delivery.outbox.DOCUMENT_KINDS`): no reminder goes out unchecked.

With dunning switched off (`dunning_enabled`, the default) steps 1 and 2 run and the
report says what would be queued; nothing is queued, cancelled or sent.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr

import duckdb

from q2c import opsdb
from q2c.attachments.statement import (
    AccountStatement,
    StatementError,
    load_account_statement,
    render_statement_pdf,
)
from q2c.collections.actions import (
    DunningAction,
    DunningError,
    check_stages,
    load_actions,
    suppressed_counts,
)
from q2c.collections.holds import Hold, HoldList, ensure_store, export_holds
from q2c.collections.message import reminder_message
from q2c.collections.policy import (
    ACCOUNT_OWNER,
    REMINDER_CHANNELS,
    DunningPolicy,
    Stage,
    check_content,
    load_policy,
)
from q2c.collections.render import (
    ReminderFacts,
    render_customer_reminder,
    render_owner_handoff,
)
from q2c.content.registry import ContentError, ContentRegistry, load_registry
from q2c.delivery.addresses import validate_recipient
from q2c.delivery.envelope import EMAIL, PORTAL, Channel
from q2c.delivery.errors import InvalidRecipientError
from q2c.delivery.export import export_deliveries
from q2c.delivery.mail_transport import email_payload
from q2c.delivery.outbox import (
    CLAIMED,
    FAILED_RETRY,
    QUEUED,
    Outbox,
    OutboxItem,
    OutboxReport,
    PlannedSend,
    RetryPolicy,
    attempt_key,
    document_key,
)
from q2c.delivery.policy import ChannelPolicy, PolicyRule, resolve_channels
from q2c.delivery.policy import load_policy as load_channel_policy
from q2c.delivery.portal import ACCOUNT_HEADER, PortalChannel, notice_key
from q2c.documents.load import load_invoice_batch
from q2c.documents.model import InvoiceDocument
from q2c.portal.disputes import open_disputed_invoices
from q2c.settings import Settings
from q2c.warehouse import connect

log = logging.getLogger(__name__)

REMINDER_KIND_PREFIX = "reminder_"
# The suppression reason of an invoice whose portal dispute is open (as in the dunning mart).
PORTAL_DISPUTE = "portal_dispute"
CANCELLED_BY = "q2c collections"


@dataclass(frozen=True)
class PlannedReminder:
    """A due stage of one invoice, to be rendered and queued."""

    action: DunningAction
    stage: Stage

    @property
    def document_key(self) -> str:
        return document_key(self.action.invoice_id, self.stage.kind)


@dataclass
class ReminderPlan:
    """What tonight's reminders are, and why every other overdue invoice gets none."""

    planned: list[PlannedReminder] = field(default_factory=list)
    suppressed: Counter = field(default_factory=Counter)
    already_queued: list[str] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)
    # The reminder document key each invoice is due tonight, queued or not.
    due_keys: set[str] = field(default_factory=set)

    def skip(self, reason: str, invoice_number: str) -> None:
        self.skipped.setdefault(reason, []).append(invoice_number)


@dataclass
class ReminderReport:
    """One reminder run, in counts for the run's metadata."""

    as_of: dt.date
    enabled: bool
    policy: dict[str, object]
    plan: ReminderPlan
    queued: list[str] = field(default_factory=list)
    queued_by_stage: Counter = field(default_factory=Counter)
    cancelled: list[str] = field(default_factory=list)
    outbox: OutboxReport | None = None

    def counts(self) -> dict[str, object]:
        """Due, queued, sent and suppressed reminders, for logs and metadata."""
        sent = self.outbox.counts() if self.outbox is not None else {}
        return {
            "enabled": self.enabled,
            "due": len(self.plan.planned) + len(self.plan.already_queued),
            "queued_now": len(self.queued),
            "would_queue": 0 if self.enabled else len(self.plan.planned),
            "already_queued": len(self.plan.already_queued),
            "sent": int(sent.get("sent", 0)),
            "failed_retry": int(sent.get("failed_retry", 0)),
            "dead_letter": int(sent.get("dead_letter", 0)),
            "cancelled_no_longer_due": len(self.cancelled),
            "suppressed_by_reason": dict(self.plan.suppressed),
            "queued_by_stage": dict(self.queued_by_stage),
            "skipped_by_reason": {reason: len(numbers)
                                  for reason, numbers in self.plan.skipped.items()},
        }


def run_reminders(
    settings: Settings,
    run_id: str,
    *,
    content: ContentRegistry | None = None,
    channels: Mapping[str, Channel] | None = None,
    retry: RetryPolicy | None = None,
) -> ReminderReport:
    """Plan, queue and send tonight's reminders (see the module docstring).

    Args:
        settings: Warehouse, operational store, mail and dunning settings.
        run_id: Recorded on every outbox row and audit event.
        content: The content registry; the settings' content folder when None.
        channels: The email and portal transports; the configured ones when None.
        retry: The outbox's retry rules; RetryPolicy() when None.

    Raises:
        PolicyError: The policy file is wrong, not in effect, or names content that is not
            approved.
        DunningError: The marts are missing, stale, built with other stages, or the
            outbox's audit trail no longer matches what the warehouse recorded.
    """
    as_of = settings.run_date
    policy = load_policy(settings.dunning_policy_file)
    policy.check_in_effect(as_of)
    content = content or load_registry(settings.content_dir)
    check_content(policy, content, as_of)
    holds = HoldList(settings.ops_store).in_force(as_of)
    disputed = open_disputed_invoices(settings.ops_store)
    box = Outbox(settings.ops_store)

    with connect(settings.warehouse_path) as conn:
        check_stages(conn, policy)
        actions = load_actions(conn, as_of)
        plan = plan_reminders(actions, policy, holds, box.document_keys_known(),
                              disputed=disputed)
        report = ReminderReport(as_of, settings.dunning_enabled, policy.record(), plan)
        if not settings.dunning_enabled:
            log.info("dunning is off (Q2C_DUNNING_ENABLED): %d reminders would be queued",
                     len(plan.planned))
            return report
        channels = channels or _reminder_channels(settings)
        items = build_items(conn, plan, policy, content, settings, channels)
        exported_head = _exported_chain_head(conn)

    problems = box.verify(known_head=exported_head)
    if problems:
        raise DunningError(
            f"no reminder was queued or sent: the audit trail in {settings.ops_store} does "
            f"not match what the last run recorded ({problems[0]}); `q2c outbox verify` "
            "lists every problem"
        )
    enqueued = box.enqueue(items, run_id)
    report.queued = enqueued.queued
    report.queued_by_stage = Counter(item.kind.removeprefix(REMINDER_KIND_PREFIX)
                                     for item in items if item.document_key in enqueued.queued)
    report.cancelled = _cancel_no_longer_due(box, plan.due_keys)
    pending = sorted({invoice_id for _, invoice_id
                      in _unsent_reminders(box, QUEUED, FAILED_RETRY, CLAIMED)})
    if pending:
        report.outbox = box.process(
            channels, run_id, retry=retry or RetryPolicy(), invoice_ids=pending,
            hold=_still_due(settings, run_id, plan.due_keys),
            kinds=[stage.kind for stage in policy.stages],
        )
    _export(settings)
    log.info("reminders for %s: %s", as_of, report.counts())
    return report


def plan_reminders(
    actions: list[DunningAction],
    policy: DunningPolicy,
    holds: Mapping[str, Hold],
    known_keys: set[str],
    disputed: Collection[tuple[str, str]] = (),
) -> ReminderPlan:
    """Decide which due stages to queue tonight; count and name every other case.

    Args:
        disputed: (account key, invoice id) of the invoices with a portal dispute that is
            not resolved, as the operational store says now (`open_disputed_invoices`).
    """
    plan = ReminderPlan()
    plan.suppressed.update(suppressed_counts(actions))
    for action in actions:
        if not action.is_due:
            continue
        stage = policy.stage(action.stage_name or "")
        key = document_key(action.invoice_id, stage.kind)
        if (action.account_key, action.invoice_id) in disputed:
            plan.suppressed[PORTAL_DISPUTE] += 1
            log.info("invoice %s: not reminded, a portal dispute is open",
                     action.invoice_number)
            continue
        if action.account_key in holds:
            plan.suppressed["owner_hold"] += 1
            log.info("invoice %s: not reminded, %s", action.invoice_number,
                     holds[action.account_key].describe())
            continue
        plan.due_keys.add(key)
        if key in known_keys:
            plan.already_queued.append(action.invoice_number)
            continue
        later = [s for s in policy.stages if s.order > stage.order
                 and document_key(action.invoice_id, s.kind) in known_keys]
        if later:
            plan.skip(f"a later stage ({later[0].name}) was already queued", action.invoice_number)
        elif action.account is None:
            plan.skip("no account in core.dim_accounts", action.invoice_number)
        else:
            plan.planned.append(PlannedReminder(action, stage))
    return plan


def build_items(
    conn: duckdb.DuckDBPyConnection,
    plan: ReminderPlan,
    policy: DunningPolicy,
    content: ContentRegistry,
    settings: Settings,
    channels: Mapping[str, Channel],
) -> list[OutboxItem]:
    """One outbox item per planned reminder, every channel's bytes built now.

    A reminder that cannot be built (its invoice cannot be printed, no statement, no
    usable channel) is left out and named in the plan's skipped reasons.
    """
    ids = sorted({planned.action.invoice_id for planned in plan.planned})
    batch = load_invoice_batch(conn, ids, settings.seller)
    for rejected in batch.rejected:
        plan.skip(f"the invoice cannot be printed ({rejected.table}.{rejected.field})",
                  rejected.invoice_number or rejected.invoice_id)
    documents = {doc.invoice_id: doc for doc in batch.documents}
    builder = _ItemBuilder(conn, policy, content, settings, channels)
    items = []
    for planned in plan.planned:
        doc = documents.get(planned.action.invoice_id)
        if doc is None:
            continue
        try:
            item = builder.item(planned, doc)
        except (StatementError, ContentError, ValueError) as exc:
            plan.skip(f"not built ({type(exc).__name__}, see the log)",
                      planned.action.invoice_number)
            log.warning("reminder %s of invoice %s not built: %s", planned.stage.name,
                        planned.action.invoice_number, exc)
            continue
        if item.plan:
            items.append(item)
            continue
        reason = ("the account owner has no valid email in the CRM"
                  if planned.stage.audience == ACCOUNT_OWNER
                  else "no usable channel for the customer")
        plan.skip(reason, planned.action.invoice_number)
        log.warning("reminder %s of invoice %s not queued, %s: %s", planned.stage.name,
                    planned.action.invoice_number, reason, item.decision["skipped"])
    return items


class _ItemBuilder:
    """Builds outbox items, rendering each account's statement once per language."""

    def __init__(self, conn, policy, content, settings, channels) -> None:
        self.conn, self.policy, self.content = conn, policy, content
        self.settings, self.channels = settings, channels
        self.delivery_policy = load_channel_policy(settings.delivery_policy_file,
                                                   ops_store=settings.ops_store)
        self.sender_domain = (parseaddr(settings.mail_from)[1].rpartition("@")[2]
                              or "q2c.invalid")
        self._statements: dict[tuple, tuple[AccountStatement, bytes]] = {}

    def item(self, planned: PlannedReminder, doc: InvoiceDocument) -> OutboxItem:
        # The customer's confirmed portal changes (billing address, preference) apply.
        planned = dataclasses.replace(planned, action=dataclasses.replace(
            planned.action, account=self.delivery_policy.account_for(planned.action.account)))
        action, stage = planned.action, planned.stage
        statement = self._statement(doc) if stage.attach_statement else None
        facts = ReminderFacts(
            as_of=action.as_of_date, days_past_due=action.days_past_due,
            pay_by=action.as_of_date + dt.timedelta(days=self.policy.pay_within_days),
            signatory_name=action.owner_name or "", signatory_email=action.owner_email or "",
            statement_balances=(tuple(section.balance for section in statement[0].sections)
                                if statement else ()),
            policy_version=self.policy.version,
        )
        decision = self._decision(action, stage)
        sends, skipped = [], dict(decision["skipped"])
        for channel in decision["channels"]:
            try:
                sends.append(self._send(channel, planned, doc, facts, statement))
            except InvalidRecipientError as exc:
                skipped[channel] = str(exc)
        decision["skipped"] = skipped
        decision["dunning"] = {
            "stage": stage.name, "days_past_due": action.days_past_due,
            "as_of": action.as_of_date.isoformat(), "policy": self.policy.record(),
            "statement": statement[0].file_name if statement else None,
        }
        return OutboxItem(
            invoice_id=action.invoice_id, invoice_number=action.invoice_number,
            document_id=f"{stage.kind}@{action.as_of_date.isoformat()}",
            account_key=action.account_key, plan=tuple(sends), decision=decision,
            kind=stage.kind,
        )

    def _decision(self, action: DunningAction, stage: Stage) -> dict:
        """The channels to try, in order, and those left out with why."""
        if stage.audience == ACCOUNT_OWNER:
            return {"rule": f"dunning-{stage.name}", "audience": ACCOUNT_OWNER,
                    "channels": [EMAIL], "skipped": {}}
        if stage.follows_customer_policy:
            decision = resolve_channels(action.account, self.delivery_policy).as_record()
        else:
            rule = PolicyRule(name=f"dunning-{stage.name}", channels=stage.channels or ())
            own = ChannelPolicy(rules=(rule,), source=self.policy.source)
            decision = resolve_channels(action.account, own).as_record()
        skipped = dict(decision["skipped"])
        for channel in decision["channels"]:
            if channel not in REMINDER_CHANNELS:
                skipped[channel] = "a reminder is a letter; EDI carries e-invoices only"
        decision["channels"] = [ch for ch in decision["channels"] if ch in REMINDER_CHANNELS]
        decision["skipped"] = skipped
        decision["audience"] = stage.audience
        return decision

    def _send(self, channel: str, planned: PlannedReminder, doc: InvoiceDocument,
              facts: ReminderFacts, statement: tuple[AccountStatement, bytes] | None
              ) -> PlannedSend:
        action, stage = planned.action, planned.stage
        key = attempt_key(planned.document_key, channel)
        attachment = (statement[0].file_name, statement[1]) if statement else None
        if stage.audience == ACCOUNT_OWNER:
            recipient = validate_recipient(action.owner_email or "")
            rendered = render_owner_handoff(doc, stage, self.content, facts,
                                            owner_name=action.owner_name or "",
                                            billing_email=doc.buyer.email or "")
            return self._email(planned, recipient, rendered, key, attachment)
        recipient = validate_recipient(action.account.email or "")
        if channel == EMAIL:
            rendered = render_customer_reminder(doc, stage, self.content, facts)
            return self._email(planned, recipient, rendered, key, attachment)
        if statement is None:
            raise InvalidRecipientError("the portal publishes the statement, and this "
                                        "stage attaches none")
        portal: PortalChannel = self.channels[PORTAL]
        link = portal.link_for(key)
        rendered = render_customer_reminder(
            doc, stage, self.content, _with_portal(facts, link))
        notice = reminder_message(
            invoice_number=action.invoice_number, stage=stage.name, recipient=recipient,
            sender=self.settings.mail_from, subject=rendered.subject,
            html_body=rendered.html, text_body=rendered.text, key=notice_key(key),
            message_id_domain=self.sender_domain,
            headers={ACCOUNT_HEADER: action.account_key or ""},
        )
        return PlannedSend(PORTAL, recipient, statement[1],
                           f"{stage.kind}-{action.as_of_date.isoformat()}.pdf",
                           "application/pdf", notice=email_payload(notice),
                           headers={ACCOUNT_HEADER: action.account_key or ""})

    def _email(self, planned, recipient, rendered, key, attachment) -> PlannedSend:
        message = reminder_message(
            invoice_number=planned.action.invoice_number, stage=planned.stage.name,
            recipient=recipient, sender=self.settings.mail_from, subject=rendered.subject,
            html_body=rendered.html, text_body=rendered.text, key=key,
            message_id_domain=self.sender_domain, attachment=attachment,
        )
        return PlannedSend(EMAIL, recipient, email_payload(message),
                           f"{planned.action.invoice_number}-{planned.stage.kind}.eml",
                           "message/rfc822")

    def _statement(self, doc: InvoiceDocument) -> tuple[AccountStatement, bytes]:
        cache_key = (doc.account_key, doc.language, doc.locale, doc.buyer)
        if cache_key not in self._statements:
            statement = load_account_statement(self.conn, doc, self.settings.run_date)
            pdf, entry = render_statement_pdf(statement, self.content)
            log.info("statement of account %s rendered with %s (%d currencies)",
                     doc.account_key, entry.ref, len(statement.sections))
            self._statements[cache_key] = (statement, pdf)
        return self._statements[cache_key]


def _with_portal(facts: ReminderFacts, link: str) -> ReminderFacts:
    return ReminderFacts(
        as_of=facts.as_of, days_past_due=facts.days_past_due, pay_by=facts.pay_by,
        signatory_name=facts.signatory_name, signatory_email=facts.signatory_email,
        statement_balances=facts.statement_balances, portal_url=link,
        policy_version=facts.policy_version,
    )


def _reminder_channels(settings: Settings) -> dict[str, Channel]:
    """The configured email transport and the portal (reminders never go by EDI)."""
    from q2c.invoice_delivery import delivery_channels

    configured = delivery_channels(settings)
    return {EMAIL: configured[EMAIL], PORTAL: configured[PORTAL]}


def _unsent_reminders(box: Outbox, *statuses: str) -> list[tuple[str, str]]:
    """(document key, invoice id) of the reminders in the outbox with one of `statuses`."""
    marks = ", ".join("?" for _ in statuses)
    with opsdb.connect(box.store_path) as conn:
        rows = conn.execute(
            "select document_key, invoice_id from outbox "
            f"where substr(kind, 1, ?) = ? and status in ({marks}) order by queued_at",
            (len(REMINDER_KIND_PREFIX), REMINDER_KIND_PREFIX, *statuses),
        ).fetchall()
    return [(row[0], row[1]) for row in rows]


def _cancel_no_longer_due(box: Outbox, due_keys: set[str]) -> list[str]:
    """Cancel queued reminders that tonight's mart no longer calls for.

    A reminder queued on an earlier night and not yet sent (a mail server that was down)
    must not reach a customer who has paid, disputed the invoice, promised to pay, been
    held by the owner, or moved on to the next stage since.
    """
    cancelled = []
    for doc_key, _ in _unsent_reminders(box, QUEUED, FAILED_RETRY):
        if doc_key in due_keys:
            continue
        try:
            if box.cancel(doc_key, by=CANCELLED_BY,
                          reason="no longer due: paid, disputed, promised, held or "
                                 "overtaken by the next stage since it was queued"):
                cancelled.append(doc_key)
        except ValueError as exc:
            log.warning("reminder %s not cancelled: %s", doc_key[:12], exc)
    return cancelled


def _still_due(settings: Settings, run_id: str, due_keys: set[str]):
    """The outbox hold of the reminder run: the due-check made at send time.

    The run claims reminder rows only; the one it has just claimed goes out when tonight's
    mart still calls for it (`due_keys`), and stays back otherwise: a reminder left in
    doubt by an earlier run whose invoice has been paid, disputed or promised since.
    """
    prefix = f"{run_id}/{os.getpid()}/"

    def hold(invoice_id: str) -> str | None:
        with opsdb.connect(settings.ops_store) as conn:
            row = conn.execute(
                "select document_key, kind from outbox where invoice_id = ? and status = ? "
                "and substr(claimed_by, 1, ?) = ?",
                (invoice_id, CLAIMED, len(prefix), prefix),
            ).fetchone()
        if row is None or not str(row[1]).startswith(REMINDER_KIND_PREFIX):
            return "left to the invoice delivery run: the reminder run sends reminders only"
        if row[0] in due_keys:
            return None
        return ("no longer due tonight: paid, disputed, promised, held or overtaken by the "
                "next stage since it was queued")

    return hold


def _exported_chain_head(conn: duckdb.DuckDBPyConnection) -> tuple[int, str] | None:
    """The last audit event a run copied into the warehouse, to check the store against."""
    try:
        row = conn.execute(
            "select seq, hash from q2c_ops.delivery_events order by seq desc limit 1"
        ).fetchone()
    except duckdb.CatalogException:
        return None
    return (int(row[0]), str(row[1])) if row else None


def _export(settings: Settings) -> None:
    """Copy the outbox, its audit trail and the holds into the warehouse for dbt."""
    ensure_store(settings.ops_store)
    with opsdb.connect(settings.ops_store) as store, connect(settings.warehouse_path) as conn:
        export_deliveries(store, conn)
        export_holds(store, conn)
