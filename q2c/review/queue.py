"""The review queue: invoices waiting for a person, their decisions, and the release gate.

The queue lives in the operational store (SQLite, shared with the outbox) because people
decide while the nightly run delivers: `q2c review approve` and the delivery step write at
the same time, and each decision is one BEGIN IMMEDIATE transaction, so two reviewers
deciding the same invoice cannot both win.

`review_queue` holds one row per document with its current state; `review_decisions` is
the append-only history (queued, approved, rejected, reopened, each with who and when),
guarded by triggers that refuse updates and deletes.

The delivery step asks `release_gate` (or `screen`, which evaluates and queues first) before
anything enters the outbox: a document is allowed only when it is not in the queue or is
approved. A queued document keeps its first queued_at and its decision whatever later runs
or policy changes say; a decision is changed only through an explicit `reopen`, or when
the document itself changes.

An approval covers the document as the reviewer saw it. Each row and each history event
keep a fingerprint of the document (currency, total and the fields the rules read), and
`enqueue`/`screen` compare every candidate with its queued row: when the currency or the
total differs, the row takes the new amount, goes back to pending (an approval or a
rejection of the old amount no longer counts) and the history records a `changed` event by
`q2c`. Its queued_at and SLA stay, so the approval SLA keeps counting from the first time
the document waited. A changed document stays in the queue even when no rule marks it any
more: a person already looked at it (or was about to), and one more approval is cheaper
than a wrong release decided by a machine.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

from q2c.opsdb import connect, ensure_schema, transaction
from q2c.review.amounts import format_amount
from q2c.review.policy import ReviewCandidate, ReviewPolicy, ReviewRequirement, evaluate

logger = logging.getLogger(__name__)

PENDING = "pending"
APPROVED = "approved"
REJECTED = "rejected"
_ID_CHUNK = 500
LIST_HINT = "run `q2c review list --all` to see the queue"
SYSTEM_ACTOR = "q2c"
_SINCE = {PENDING: "while waiting for review", APPROVED: "since approval",
          REJECTED: "since rejection"}

_QUEUE_TABLE = """
create table if not exists review_queue (
    invoice_id text primary key,
    invoice_number text not null,
    document_kind text not null,
    account_key text,
    account_name text,
    currency text,
    total text,
    issue_date text,
    reasons text not null,
    rule_ids text not null,
    status text not null check (status in ('pending', 'approved', 'rejected')),
    queued_at text not null,
    sla_hours integer not null check (sla_hours > 0),
    sla_due_at text not null,
    decided_by text,
    decided_at text,
    decision_reason text,
    policy_version text not null,
    policy_hash text not null,
    fingerprint text
);
create index if not exists review_queue_by_number on review_queue (invoice_number);
create index if not exists review_queue_by_status on review_queue (status, queued_at);
"""

_DECISIONS_TABLE = """
create table if not exists review_decisions (
    decision_id integer primary key autoincrement,
    invoice_id text not null,
    invoice_number text not null,
    action text not null
        check (action in ('queued', 'approved', 'rejected', 'reopened', 'changed')),
    actor text not null,
    acted_at text not null,
    reason text,
    status_after text not null,
    policy_hash text,
    fingerprint text
)
"""

_DECISIONS_TRIGGERS = (
    "create trigger if not exists review_decisions_no_update before update on "
    "review_decisions begin select raise(abort, 'review_decisions is append-only'); end",
    "create trigger if not exists review_decisions_no_delete before delete on "
    "review_decisions begin select raise(abort, 'review_decisions is append-only'); end",
)

QUEUE_DDL = "".join(
    [_QUEUE_TABLE, _DECISIONS_TABLE, ";\n", *(f"{trigger};\n" for trigger in _DECISIONS_TRIGGERS)]
)

# The columns review_decisions had before `changed` events and fingerprints.
_DECISION_COLUMNS_V1 = (
    "decision_id, invoice_id, invoice_number, action, actor, acted_at, reason, "
    "status_after, policy_hash"
)


class ReviewError(Exception):
    """A review action that cannot be carried out as asked; the message says what to do."""


class UnknownInvoiceError(ReviewError, LookupError):
    """No queued document has the given number or id."""


class AlreadyDecidedError(ReviewError):
    """The document was approved or rejected before; reopen it to decide again."""


class GateResult(NamedTuple):
    """Document ids sorted by whether they may enter the outbox, in the order asked."""

    allowed: list[str]
    waiting: list[str]
    rejected: list[str]


@dataclass(frozen=True)
class ReviewItem:
    """One document in the queue, as stored."""

    invoice_id: str
    invoice_number: str
    document_kind: str
    account_key: str | None
    account_name: str | None
    currency: str | None
    total: Decimal | None
    issue_date: dt.date | None
    reasons: tuple[str, ...]
    rule_ids: tuple[str, ...]
    status: str
    queued_at: dt.datetime
    sla_hours: int
    sla_due_at: dt.datetime
    decided_by: str | None
    decided_at: dt.datetime | None
    decision_reason: str | None
    policy_version: str
    policy_hash: str

    def age_hours(self, now: dt.datetime) -> float:
        """Hours since the document was queued (for display; the marts compute their own)."""
        return (_utc(now) - self.queued_at).total_seconds() / 3600

    def is_sla_breached(self, now: dt.datetime) -> bool:
        """Still pending after the SLA ran out."""
        return self.status == PENDING and _utc(now) > self.sla_due_at


@dataclass(frozen=True)
class ReviewDecision:
    """One line of the append-only history."""

    decision_id: int
    invoice_id: str
    invoice_number: str
    action: str
    actor: str
    acted_at: dt.datetime
    reason: str | None
    status_after: str
    policy_hash: str | None
    fingerprint: dict[str, object] | None = None
    """The document as this event saw it (see `_fingerprint`); None before fingerprints."""


def ensure_review_schema(conn: sqlite3.Connection) -> None:
    """Create the review tables, and bring a store made before fingerprints up to date.

    The migration runs in one write transaction and checks again inside it, so two
    processes opening an old store at the same time migrate it once.
    """
    ensure_schema(conn, QUEUE_DDL)
    if _is_current(conn):
        return
    with transaction(conn):
        if "fingerprint" not in _columns(conn, "review_queue"):
            conn.execute("alter table review_queue add column fingerprint text")
        if "fingerprint" not in _columns(conn, "review_decisions"):
            _rebuild_decisions(conn)


def _is_current(conn: sqlite3.Connection) -> bool:
    return all("fingerprint" in _columns(conn, table)
               for table in ("review_queue", "review_decisions"))


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row["name"] for row in conn.execute(f"pragma table_info({table})")}


def _rebuild_decisions(conn: sqlite3.Connection) -> None:
    """Copy the history into a table that admits `changed` events (SQLite cannot alter a
    check constraint in place); decision ids are kept."""
    conn.execute("drop trigger if exists review_decisions_no_update")
    conn.execute("drop trigger if exists review_decisions_no_delete")
    conn.execute("alter table review_decisions rename to review_decisions_v1")
    conn.execute(_DECISIONS_TABLE)
    conn.execute(
        f"insert into review_decisions ({_DECISION_COLUMNS_V1}) "
        f"select {_DECISION_COLUMNS_V1} from review_decisions_v1 order by decision_id"
    )
    conn.execute("drop table review_decisions_v1")
    for trigger in _DECISIONS_TRIGGERS:
        conn.execute(trigger)
    logger.info("review: decision history moved to the schema with fingerprints")


class ReviewQueue:
    """The review queue in the operational store at `store_path`."""

    def __init__(self, store_path: Path) -> None:
        self.store_path = Path(store_path)
        with connect(self.store_path) as conn:
            ensure_review_schema(conn)

    # -- the delivery side ------------------------------------------------------------

    def enqueue(
        self,
        requirements: Iterable[ReviewRequirement],
        candidates: Iterable[ReviewCandidate],
        now: dt.datetime | None = None,
        *,
        policy: ReviewPolicy,
    ) -> list[str]:
        """Queue what needs review and re-check what is queued; returns the ids queued now.

        Pass every candidate about to be delivered, not only those with a requirement: a
        queued document whose currency or total differs from its row goes back to pending
        (see the module docstring). Other queued documents keep their queued_at, reasons
        and decision.
        """
        at = _utc(now)
        by_id = {candidate.invoice_id: candidate for candidate in candidates}
        required: dict[str, ReviewRequirement] = {}
        for requirement in requirements:
            if requirement.invoice_id not in by_id:
                raise ValueError(
                    f"review requirement for {requirement.invoice_id} has no candidate; "
                    "pass the candidates the requirements were evaluated from"
                )
            required[requirement.invoice_id] = requirement
        added = []
        with connect(self.store_path) as conn, transaction(conn):
            for candidate in by_id.values():
                requirement = required.get(candidate.invoice_id)
                row = _queued_row(conn, candidate)
                if row is None and requirement is not None:
                    _insert(conn, candidate, requirement, policy, at)
                    added.append(candidate.invoice_id)
                    logger.info("review: queued %s (%s)", candidate.invoice_number,
                                ", ".join(requirement.rule_ids))
                elif row is not None and _amount_changed(row, candidate):
                    _requeue_changed(conn, row, candidate, requirement, policy, at)
        return added

    def status_of(self, invoice_ids: Iterable[str]) -> dict[str, str]:
        """The review status (pending, approved, rejected) of each queued id; ids that were
        never queued are absent. For a last look at send time: a delivery queued while its
        review was approved must be held when the status is pending again, and cancelled
        when it is rejected."""
        return {invoice_id: status
                for invoice_id, (status, _) in self._statuses(list(invoice_ids)).items()}

    def release_gate(self, invoice_ids: Sequence[str]) -> GateResult:
        """Which documents may enter the outbox: not queued, or approved.

        Call it after `enqueue` (or use `screen`): a document never queued is allowed.
        """
        statuses = self._statuses(invoice_ids)
        result = GateResult([], [], [])
        for invoice_id in invoice_ids:
            status, number = statuses.get(invoice_id, (None, invoice_id))
            if status in (None, APPROVED):
                result.allowed.append(invoice_id)
            elif status == REJECTED:
                result.rejected.append(invoice_id)
            else:
                result.waiting.append(invoice_id)
        if result.waiting or result.rejected:
            logger.info(
                "review gate: %d allowed; waiting for approval: %s; rejected: %s",
                len(result.allowed),
                ", ".join(statuses[i][1] for i in result.waiting) or "none",
                ", ".join(statuses[i][1] for i in result.rejected) or "none",
            )
        return result

    def screen(
        self,
        candidates: Sequence[ReviewCandidate],
        policy: ReviewPolicy,
        now: dt.datetime | None = None,
    ) -> GateResult:
        """Evaluate the policy, queue what it marks, and gate: the one call before sending."""
        self.enqueue(evaluate(candidates, policy), candidates, now, policy=policy)
        return self.release_gate([candidate.invoice_id for candidate in candidates])

    # -- the reviewer side ------------------------------------------------------------

    def pending(self) -> list[ReviewItem]:
        return self.items(statuses=(PENDING,))

    def items(self, statuses: Sequence[str] | None = None) -> list[ReviewItem]:
        """Queued documents, oldest first; all of them when `statuses` is None."""
        sql = "select * from review_queue"
        params: list[str] = []
        if statuses is not None:
            sql += f" where status in ({', '.join('?' for _ in statuses)})"
            params = list(statuses)
        with connect(self.store_path) as conn:
            rows = conn.execute(sql + " order by queued_at, invoice_number", params).fetchall()
        return [_item(row) for row in rows]

    def find(self, invoice: str) -> ReviewItem:
        """The queued document with this id or printed number."""
        with connect(self.store_path) as conn:
            return _item(_resolve(conn, invoice))

    def approve(
        self,
        invoice: str | Sequence[str],
        by: str,
        reason: str | None = None,
        now: dt.datetime | None = None,
    ) -> list[ReviewItem]:
        """Approve one or more pending documents, all or none."""
        invoices = [invoice] if isinstance(invoice, str) else list(invoice)
        return self._decide(invoices, APPROVED, by, _optional_text(reason), now)

    def reject(
        self, invoice: str, by: str, reason: str, now: dt.datetime | None = None
    ) -> ReviewItem:
        """Reject a pending document; it will not be delivered. A reason is required."""
        text = _optional_text(reason)
        if text is None:
            raise ReviewError(
                f"a rejection of {invoice} needs a reason (what the sender must fix)"
            )
        return self._decide([invoice], REJECTED, by, text, now)[0]

    def reopen(
        self, invoice: str, by: str, reason: str, now: dt.datetime | None = None
    ) -> ReviewItem:
        """Put a decided document back to pending, so it can be decided again.

        The original queued_at stays: the SLA is measured from the first time it waited.
        """
        text = _optional_text(reason)
        if text is None:
            raise ReviewError(f"reopening {invoice} needs a reason")
        actor = _actor(by)
        at = _stamp(_utc(now))
        with connect(self.store_path) as conn, transaction(conn):
            row = _resolve(conn, invoice)
            if row["status"] == PENDING:
                raise ReviewError(
                    f"{row['invoice_number']} is pending already; approve or reject it"
                )
            conn.execute(
                "update review_queue set status = ?, decided_by = null, decided_at = null, "
                "decision_reason = null where invoice_id = ?",
                (PENDING, row["invoice_id"]),
            )
            _log(conn, row, "reopened", actor, at, text, PENDING)
            updated = conn.execute(
                "select * from review_queue where invoice_id = ?", (row["invoice_id"],)
            ).fetchone()
        logger.info("review: %s reopened by %s", row["invoice_number"], actor)
        return _item(updated)

    def decisions(self, invoice: str | None = None) -> list[ReviewDecision]:
        """The history, oldest first; of one document when `invoice` is given."""
        with connect(self.store_path) as conn:
            if invoice is None:
                rows = conn.execute("select * from review_decisions order by decision_id")
            else:
                invoice_id = _resolve(conn, invoice)["invoice_id"]
                rows = conn.execute(
                    "select * from review_decisions where invoice_id = ? order by decision_id",
                    (invoice_id,),
                )
            return [_decision(row) for row in rows.fetchall()]

    # -- internals --------------------------------------------------------------------

    def _decide(
        self, invoices: list[str], status: str, by: str, reason: str | None,
        now: dt.datetime | None,
    ) -> list[ReviewItem]:
        actor = _actor(by)
        at = _stamp(_utc(now))
        with connect(self.store_path) as conn, transaction(conn):
            rows = {row["invoice_id"]: row for row in (_resolve(conn, i) for i in invoices)}
            decided = [row for row in rows.values() if row["status"] != PENDING]
            if decided:
                raise AlreadyDecidedError(_already_decided_message(decided))
            for row in rows.values():
                conn.execute(
                    "update review_queue set status = ?, decided_by = ?, decided_at = ?, "
                    "decision_reason = ? where invoice_id = ? and status = ?",
                    (status, actor, at, reason, row["invoice_id"], PENDING),
                )
                _log(conn, row, status, actor, at, reason, status)
            updated = [
                conn.execute("select * from review_queue where invoice_id = ?",
                             (invoice_id,)).fetchone()
                for invoice_id in rows
            ]
        for row in updated:
            logger.info("review: %s %s by %s", row["invoice_number"], status, actor)
        return [_item(row) for row in updated]

    def _statuses(self, invoice_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        unique = list(dict.fromkeys(invoice_ids))
        found: dict[str, tuple[str, str]] = {}
        with connect(self.store_path) as conn:
            for start in range(0, len(unique), _ID_CHUNK):
                chunk = unique[start:start + _ID_CHUNK]
                rows = conn.execute(
                    "select invoice_id, status, invoice_number from review_queue "
                    f"where invoice_id in ({', '.join('?' for _ in chunk)})",
                    chunk,
                ).fetchall()
                found.update({r["invoice_id"]: (r["status"], r["invoice_number"]) for r in rows})
        return found


def _queued_row(conn: sqlite3.Connection, candidate: ReviewCandidate) -> sqlite3.Row | None:
    row = conn.execute(
        "select * from review_queue where invoice_id = ?", (candidate.invoice_id,)
    ).fetchone()
    if row is None:
        return None
    if row["document_kind"] != candidate.document_kind:
        raise ReviewError(
            f"document id {candidate.invoice_id} is queued as a {row['document_kind']} and "
            f"now comes as a {candidate.document_kind} ({candidate.invoice_number}); the "
            "review queue needs ids that are unique across document kinds"
        )
    return row


def _fingerprint(candidate: ReviewCandidate) -> str:
    """What the reviewer decides on: the amount and every fact the rules read."""
    return json.dumps({
        "currency": _currency(candidate.currency),
        "total": str(candidate.total) if candidate.total is not None else None,
        "document_kind": candidate.document_kind,
        "account_key": candidate.account_key,
        "erp_customer_id": candidate.erp_customer_id,
        "is_first_invoice": candidate.is_first_invoice,
        "customer_on_hold": candidate.customer_on_hold,
    }, sort_keys=True)


def _currency(code: str | None) -> str:
    return (code or "").strip().upper()


def _stored_total(row: sqlite3.Row) -> Decimal | None:
    return Decimal(row["total"]) if row["total"] is not None else None


def _amount_changed(row: sqlite3.Row, candidate: ReviewCandidate) -> bool:
    """Currency or total differ from the row (20000.00 and 20000.0000 are the same)."""
    return (_currency(row["currency"]) != _currency(candidate.currency)
            or _stored_total(row) != candidate.total)


def _requeue_changed(
    conn: sqlite3.Connection, row: sqlite3.Row, candidate: ReviewCandidate,
    requirement: ReviewRequirement | None, policy: ReviewPolicy, at: dt.datetime,
) -> None:
    """Put a queued document whose amount changed back to pending, with the new amount.

    Its reasons are those the policy gives the document as it is now, then the change.
    """
    old = format_amount(_stored_total(row), row["currency"], grouped=True)
    new = format_amount(candidate.total, candidate.currency, grouped=True)
    since = _SINCE[row["status"]]
    reasons = (*(requirement.reasons if requirement else ()),
               f"amount_changed: {old} -> {new} {since}")
    conn.execute(
        "update review_queue set currency = ?, total = ?, fingerprint = ?, reasons = ?, "
        "rule_ids = ?, status = ?, decided_by = null, decided_at = null, "
        "decision_reason = null, policy_version = ?, policy_hash = ? where invoice_id = ?",
        (
            candidate.currency,
            str(candidate.total) if candidate.total is not None else None,
            _fingerprint(candidate), json.dumps(list(reasons)),
            ",".join(requirement.rule_ids if requirement else ()), PENDING,
            policy.version, policy.sha256, row["invoice_id"],
        ),
    )
    updated = conn.execute(
        "select * from review_queue where invoice_id = ?", (row["invoice_id"],)
    ).fetchone()
    note = f"amount changed {since}: {old} -> {new}"
    _log(conn, updated, "changed", SYSTEM_ACTOR, _stamp(at), note, PENDING)
    log = logger.warning if row["status"] != PENDING else logger.info
    log("review: %s %s; it waits for review again", row["invoice_number"], note)


def _insert(
    conn: sqlite3.Connection, candidate: ReviewCandidate, requirement: ReviewRequirement,
    policy: ReviewPolicy, at: dt.datetime,
) -> None:
    queued_at = _stamp(at)
    conn.execute(
        "insert into review_queue (invoice_id, invoice_number, document_kind, account_key, "
        "account_name, currency, total, issue_date, reasons, rule_ids, status, queued_at, "
        "sla_hours, sla_due_at, policy_version, policy_hash, fingerprint) "
        "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            candidate.invoice_id, candidate.invoice_number, candidate.document_kind,
            candidate.account_key, candidate.account_name, candidate.currency,
            str(candidate.total) if candidate.total is not None else None,
            candidate.issue_date.isoformat() if candidate.issue_date else None,
            json.dumps(list(requirement.reasons)), ",".join(requirement.rule_ids),
            PENDING, queued_at, policy.sla_hours,
            _stamp(at + dt.timedelta(hours=policy.sla_hours)),
            policy.version, policy.sha256, _fingerprint(candidate),
        ),
    )
    row = conn.execute(
        "select * from review_queue where invoice_id = ?", (candidate.invoice_id,)
    ).fetchone()
    _log(conn, row, "queued", f"review policy {policy.version}", queued_at,
         "; ".join(requirement.reasons), PENDING)


def _log(
    conn: sqlite3.Connection, row: sqlite3.Row, action: str, actor: str, at: str,
    reason: str | None, status_after: str,
) -> None:
    """Append one history event; it carries the row's fingerprint, so an approval records
    exactly the document it approved."""
    conn.execute(
        "insert into review_decisions (invoice_id, invoice_number, action, actor, acted_at, "
        "reason, status_after, policy_hash, fingerprint) values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (row["invoice_id"], row["invoice_number"], action, actor, at, reason, status_after,
         row["policy_hash"], row["fingerprint"]),
    )


def _resolve(conn: sqlite3.Connection, invoice: str) -> sqlite3.Row:
    """The row whose id is `invoice`, else the one row whose printed number is."""
    text = str(invoice).strip()
    row = conn.execute("select * from review_queue where invoice_id = ?", (text,)).fetchone()
    if row is not None:
        return row
    rows = conn.execute(
        "select * from review_queue where invoice_number = ?", (text,)
    ).fetchall()
    if not rows:
        raise UnknownInvoiceError(f"no invoice {text!r} in the review queue; {LIST_HINT}")
    if len(rows) > 1:
        ids = ", ".join(r["invoice_id"] for r in rows)
        raise ReviewError(
            f"several queued documents carry the number {text!r} (ids {ids}); "
            "give the invoice id instead"
        )
    return rows[0]


def _already_decided_message(rows: list[sqlite3.Row]) -> str:
    done = "; ".join(
        f"{r['invoice_number']} was {r['status']} by {r['decided_by']} at "
        f"{_parse_stamp(r['decided_at']):%Y-%m-%d %H:%M} UTC"
        for r in rows
    )
    return (f"{done}. Nothing was changed; to decide again, reopen it first "
            "(`q2c review reopen INVOICE --reason TEXT`)")


def _actor(by: str) -> str:
    actor = (by or "").strip()
    if not actor:
        raise ReviewError("say who decides (--by NAME); a decision without a name is refused")
    return actor


def _optional_text(text: str | None) -> str | None:
    stripped = (text or "").strip()
    return stripped or None


def _utc(now: dt.datetime | None) -> dt.datetime:
    if now is None:
        return dt.datetime.now(dt.UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"review times must be timezone-aware (UTC), got {now!r}")
    return now.astimezone(dt.UTC)


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _parse_stamp(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC) if text else None


def _item(row: sqlite3.Row) -> ReviewItem:
    return ReviewItem(
        invoice_id=row["invoice_id"],
        invoice_number=row["invoice_number"],
        document_kind=row["document_kind"],
        account_key=row["account_key"],
        account_name=row["account_name"],
        currency=row["currency"],
        total=Decimal(row["total"]) if row["total"] is not None else None,
        issue_date=dt.date.fromisoformat(row["issue_date"]) if row["issue_date"] else None,
        reasons=tuple(json.loads(row["reasons"])),
        rule_ids=tuple(r for r in row["rule_ids"].split(",") if r),
        status=row["status"],
        queued_at=_parse_stamp(row["queued_at"]),
        sla_hours=row["sla_hours"],
        sla_due_at=_parse_stamp(row["sla_due_at"]),
        decided_by=row["decided_by"],
        decided_at=_parse_stamp(row["decided_at"]),
        decision_reason=row["decision_reason"],
        policy_version=row["policy_version"],
        policy_hash=row["policy_hash"],
    )


def _decision(row: sqlite3.Row) -> ReviewDecision:
    return ReviewDecision(
        decision_id=row["decision_id"],
        invoice_id=row["invoice_id"],
        invoice_number=row["invoice_number"],
        action=row["action"],
        actor=row["actor"],
        acted_at=_parse_stamp(row["acted_at"]),
        reason=row["reason"],
        status_after=row["status_after"],
        policy_hash=row["policy_hash"],
        fingerprint=json.loads(row["fingerprint"]) if row["fingerprint"] else None,
    )
