"""The delivery audit trail: an append-only, hash-chained log of what happened to each send.

Finance has to be able to prove what went where and when, and that nobody tidied the record
afterwards. Every event carries the hash of the event before it, and its own hash covers
its fields plus that previous hash, so changing or deleting any event breaks the chain from
there on and `verify_chain` names where. Triggers refuse UPDATE and DELETE through SQL, so
the code path that could change history does not exist; the chain catches anyone who goes
around it (dropping the triggers, editing the file).

One limit: removing the newest events leaves a shorter chain that still verifies. Pass
the head recorded elsewhere (a run's metadata, the warehouse copy) as `known_head` to catch
that too.

Events are appended inside the caller's write transaction (`q2c.opsdb.transaction`), so the
state change of an outbox row and the event that records it commit together, and the
sequence numbers and the chain stay in one order across processes.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import uuid
from dataclasses import asdict, dataclass

GENESIS_HASH = "0" * 64

QUEUED = "queued"
SKIPPED = "skipped"
CLAIMED = "claimed"
RESENT_IN_DOUBT = "resent_in_doubt"
SENT = "sent"
RETRY_SCHEDULED = "retry_scheduled"
FAILED_OVER = "failed_over"
BOUNCED = "bounced"
DEAD_LETTER = "dead_letter"
REQUEUED = "requeued"
HELD = "held"
CANCELLED = "cancelled"
# A functional acknowledgement (X12 997) of an EDI send: accepted (with or without errors),
# or rejected with the segments named.
ACKNOWLEDGED = "acknowledged"
ACK_REJECTED = "ack_rejected"
EVENTS = (
    QUEUED, SKIPPED, CLAIMED, RESENT_IN_DOUBT, SENT, RETRY_SCHEDULED, FAILED_OVER, BOUNCED,
    DEAD_LETTER, REQUEUED, HELD, CANCELLED, ACKNOWLEDGED, ACK_REJECTED,
)

AUDIT_DDL = """
create table if not exists delivery_events (
    seq integer primary key,
    event_id text not null unique,
    document_key text not null,
    attempt_key text,
    invoice_id text not null,
    invoice_number text not null,
    channel text,
    event text not null,
    detail text not null,
    location text,
    reference text,
    run_id text not null,
    occurred_at text not null,
    prev_hash text not null,
    hash text not null unique
);
create index if not exists delivery_events_document on delivery_events (document_key, seq);
create index if not exists delivery_events_attempt on delivery_events (attempt_key, seq);

create trigger if not exists delivery_events_no_update
before update on delivery_events
begin
    select raise(abort, 'delivery_events is append-only: record a new event instead');
end;

create trigger if not exists delivery_events_no_delete
before delete on delivery_events
begin
    select raise(abort, 'delivery_events is append-only: events are never deleted');
end;
"""

_HASHED_FIELDS = (
    "seq", "event_id", "document_key", "attempt_key", "invoice_id", "invoice_number",
    "channel", "event", "detail", "location", "reference", "run_id", "occurred_at",
)


@dataclass(frozen=True)
class AuditEvent:
    """One recorded event, as stored."""

    seq: int
    event_id: str
    document_key: str
    attempt_key: str | None
    invoice_id: str
    invoice_number: str
    channel: str | None
    event: str
    detail: str
    location: str | None
    reference: str | None
    run_id: str
    occurred_at: str
    prev_hash: str
    hash: str


def canonical_event(fields: dict[str, object]) -> str:
    """The hashed form of an event: its fields (not the hashes) as sorted, compact JSON."""
    return json.dumps(
        {name: fields[name] for name in _HASHED_FIELDS},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    )


def event_hash(prev_hash: str, fields: dict[str, object]) -> str:
    """sha256(prev_hash + canonical event), hex."""
    return hashlib.sha256((prev_hash + canonical_event(fields)).encode("utf-8")).hexdigest()


def append_event(
    conn: sqlite3.Connection,
    *,
    document_key: str,
    invoice_id: str,
    invoice_number: str,
    event: str,
    run_id: str,
    occurred_at: str,
    detail: str = "",
    attempt_key: str | None = None,
    channel: str | None = None,
    location: str | None = None,
    reference: str | None = None,
) -> AuditEvent:
    """Append one event to the chain. Must run inside a write transaction.

    Raises:
        RuntimeError: Called outside a transaction, where another process could append
            between reading the head and writing, and fork the chain.
        ValueError: `event` is not one of EVENTS.
    """
    if not conn.in_transaction:
        raise RuntimeError(
            "append_event needs a write transaction: wrap it in q2c.opsdb.transaction(conn)"
        )
    if event not in EVENTS:
        raise ValueError(f"unknown delivery event {event!r}: use one of {', '.join(EVENTS)}")
    head = conn.execute(
        "select seq, hash from delivery_events order by seq desc limit 1"
    ).fetchone()
    seq, prev_hash = (head[0] + 1, head[1]) if head else (1, GENESIS_HASH)
    fields: dict[str, object] = {
        "seq": seq, "event_id": str(uuid.uuid4()), "document_key": document_key,
        "attempt_key": attempt_key, "invoice_id": invoice_id,
        "invoice_number": invoice_number, "channel": channel, "event": event,
        "detail": detail, "location": location, "reference": reference, "run_id": run_id,
        "occurred_at": occurred_at,
    }
    record = AuditEvent(**fields, prev_hash=prev_hash, hash=event_hash(prev_hash, fields))
    columns = ", ".join(asdict(record))
    conn.execute(
        f"insert into delivery_events ({columns}) values ({', '.join('?' * 15)})",
        tuple(asdict(record).values()),
    )
    return record


def read_events(conn: sqlite3.Connection, document_key: str | None = None) -> list[AuditEvent]:
    """Every event in order, or those of one document."""
    sql = "select * from delivery_events"
    params: tuple = ()
    if document_key is not None:
        sql += " where document_key = ?"
        params = (document_key,)
    rows = conn.execute(sql + " order by seq", params).fetchall()
    return [AuditEvent(**dict(row)) for row in rows]


def chain_head(conn: sqlite3.Connection) -> tuple[int, str]:
    """(seq, hash) of the newest event; (0, GENESIS_HASH) for an empty trail."""
    row = conn.execute("select seq, hash from delivery_events order by seq desc limit 1")
    head = row.fetchone()
    return (head[0], head[1]) if head else (0, GENESIS_HASH)


def verify_chain(
    conn: sqlite3.Connection, known_head: tuple[int, str] | None = None
) -> list[str]:
    """Check every link of the chain; return the problems found (empty when intact).

    Args:
        conn: The operational store.
        known_head: A (seq, hash) recorded earlier, e.g. in a run's metadata; the event
            with that seq must still exist with that hash, which catches a trail whose
            newest events were removed.
    """
    problems: list[str] = []
    expected_prev, expected_seq = GENESIS_HASH, 1
    hashes: dict[int, str] = {}
    for row in conn.execute("select * from delivery_events order by seq"):
        fields = dict(row)
        seq = fields["seq"]
        if seq != expected_seq:
            problems.append(
                f"events {expected_seq} to {seq - 1} are missing: the trail was cut"
            )
        if fields["prev_hash"] != expected_prev:
            problems.append(
                f"event {seq} ({fields['event']}, invoice {fields['invoice_number']}) does "
                "not link to the event before it: an event before it was changed or deleted"
            )
        if event_hash(fields["prev_hash"], fields) != fields["hash"]:
            problems.append(
                f"event {seq} ({fields['event']}, invoice {fields['invoice_number']}) does "
                "not match its hash: it was changed after it was recorded"
            )
        hashes[seq] = fields["hash"]
        expected_prev, expected_seq = fields["hash"], seq + 1
    if known_head is not None and known_head[0] > 0:
        seq, digest = known_head
        if seq not in hashes:
            problems.append(f"event {seq}, recorded earlier as the head, is gone")
        elif hashes[seq] != digest:
            problems.append(f"event {seq} differs from the head recorded earlier")
    return problems
