"""Portal events: every view, download, dispute step, payment and sign-in, once.

One table serves as the audit log and as the source of the self-service KPIs, so the two
cannot disagree. Events are written by the portal while it serves requests (SQLite in the
operational store, the truth) and are never updated or deleted. `export_events` copies
them into the warehouse (`q2c_ops.portal_events`, a full replacement in one transaction)
for dbt.

`detail` is a small JSON object of facts about the event (the file downloaded, the dispute
reason, the checkout session); it never holds a secret, a token or a full address.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sqlite3
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import duckdb

from q2c.opsdb import ensure_schema
from q2c.warehouse import OPS_SCHEMA

logger = logging.getLogger(__name__)

EVENTS_TABLE = "portal_events"

# What a portal event can be. The KPIs count the customer's own actions (SELF_SERVICE).
SIGN_IN_REQUESTED = "sign_in_requested"
SIGNED_IN = "signed_in"
SIGN_IN_FAILED = "sign_in_failed"
SIGNED_OUT = "signed_out"
LINK_OPENED = "link_opened"
LINK_REVOKED = "link_revoked"
INVOICE_VIEWED = "invoice_viewed"
STATEMENT_VIEWED = "statement_viewed"
DOCUMENT_DOWNLOADED = "document_downloaded"
DISPUTE_OPENED = "dispute_opened"
DISPUTE_UPDATED = "dispute_updated"
DISPUTE_RESOLVED = "dispute_resolved"
PAYMENT_STARTED = "payment_started"
PAYMENT_CONFIRMED = "payment_confirmed"
CONTACT_CHANGE_REQUESTED = "contact_change_requested"
CONTACT_CHANGE_CONFIRMED = "contact_change_confirmed"
PREFERENCE_CHANGED = "preference_changed"
CONSENT_RECORDED = "consent_recorded"

KINDS = frozenset({
    SIGN_IN_REQUESTED, SIGNED_IN, SIGN_IN_FAILED, SIGNED_OUT, LINK_OPENED, LINK_REVOKED,
    INVOICE_VIEWED, STATEMENT_VIEWED, DOCUMENT_DOWNLOADED, DISPUTE_OPENED, DISPUTE_UPDATED,
    DISPUTE_RESOLVED, PAYMENT_STARTED, PAYMENT_CONFIRMED, CONTACT_CHANGE_REQUESTED,
    CONTACT_CHANGE_CONFIRMED, PREFERENCE_CHANGED, CONSENT_RECORDED,
})
SELF_SERVICE = frozenset({
    INVOICE_VIEWED, STATEMENT_VIEWED, DOCUMENT_DOWNLOADED, DISPUTE_OPENED,
    PAYMENT_STARTED, CONTACT_CHANGE_REQUESTED, PREFERENCE_CHANGED,
})

EVENTS_DDL = f"""
create table if not exists {EVENTS_TABLE} (
    event_id text primary key,
    occurred_at text not null,
    kind text not null,
    account_key text,
    invoice_id text,
    object_id text,
    actor text not null,
    client text,
    detail text not null default '{{}}'
);
create index if not exists portal_events_account on {EVENTS_TABLE} (account_key, occurred_at);
"""

# (column, warehouse type), in the store's column names.
_COLUMNS = (
    ("event_id", "varchar"), ("occurred_at", "timestamp"), ("kind", "varchar"),
    ("account_key", "varchar"), ("invoice_id", "varchar"), ("object_id", "varchar"),
    ("actor", "varchar"), ("client", "varchar"), ("detail", "varchar"),
)

WAREHOUSE_DDL = (
    f"create schema if not exists {OPS_SCHEMA};\n"
    f"create table if not exists {OPS_SCHEMA}.{EVENTS_TABLE} (\n    "
    + ",\n    ".join(f"{name} {kind}" for name, kind in _COLUMNS)
    + "\n);"
)


@dataclass(frozen=True)
class PortalEvent:
    """One recorded portal event."""

    event_id: str
    occurred_at: dt.datetime
    kind: str
    account_key: str | None
    invoice_id: str | None
    object_id: str | None
    actor: str
    client: str | None
    detail: dict[str, Any]


def record_event(
    conn: sqlite3.Connection,
    kind: str,
    *,
    actor: str,
    account_key: str | None = None,
    invoice_id: str | None = None,
    object_id: str | None = None,
    client: str | None = None,
    detail: Mapping[str, Any] | None = None,
    at: dt.datetime | None = None,
) -> str:
    """Append one event and return its id.

    Call it inside the transaction of the change it records (a dispute opened, a payment
    started), so an event exists exactly when its effect does.

    Args:
        kind: One of KINDS.
        actor: Who acted: `customer:<contact id>`, `link:<link id>`, `staff:<name>`,
            `stripe` or `system`; never an address.
        client: The client's address as the portal saw it, for the audit log.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown portal event kind {kind!r}: use one of q2c.portal.events")
    event_id = uuid.uuid4().hex
    moment = (at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    conn.execute(
        f"insert into {EVENTS_TABLE} (event_id, occurred_at, kind, account_key, invoice_id,"
        " object_id, actor, client, detail) values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (event_id, moment.isoformat(timespec="microseconds"), kind, account_key, invoice_id,
         object_id, actor, client, json.dumps(dict(detail or {}), sort_keys=True)),
    )
    return event_id


def events_of(conn: sqlite3.Connection, account_key: str | None = None,
              kind: str | None = None) -> list[PortalEvent]:
    """Events in the order they happened, for one account and one kind when given."""
    rows = conn.execute(
        f"select * from {EVENTS_TABLE} where (? is null or account_key = ?)"
        " and (? is null or kind = ?) order by occurred_at, event_id",
        (account_key, account_key, kind, kind),
    ).fetchall()
    return [_event_of(row) for row in rows]


def ensure_events(conn: sqlite3.Connection) -> None:
    """Create the events table when missing."""
    ensure_schema(conn, EVENTS_DDL)


def export_events(store_conn: sqlite3.Connection, duck_conn: duckdb.DuckDBPyConnection) -> int:
    """Replace the warehouse copy with every event of the store; return the rows copied."""
    ensure_events(store_conn)
    names = ", ".join(name for name, _ in _COLUMNS)
    rows = store_conn.execute(
        f"select {names} from {EVENTS_TABLE} order by occurred_at, event_id").fetchall()
    duck_conn.execute(WAREHOUSE_DDL)
    duck_conn.execute("begin transaction")
    try:
        duck_conn.execute(f"delete from {OPS_SCHEMA}.{EVENTS_TABLE}")
        if rows:
            marks = ", ".join("?" for _ in _COLUMNS)
            duck_conn.executemany(
                f"insert into {OPS_SCHEMA}.{EVENTS_TABLE} ({names}) values ({marks})",
                [tuple(row) for row in rows],
            )
    except BaseException:
        duck_conn.execute("rollback")
        raise
    duck_conn.execute("commit")
    logger.info("portal events copied to the warehouse: %d rows", len(rows))
    return len(rows)


def _event_of(row: sqlite3.Row) -> PortalEvent:
    return PortalEvent(
        event_id=row["event_id"], occurred_at=dt.datetime.fromisoformat(row["occurred_at"]),
        kind=row["kind"], account_key=row["account_key"], invoice_id=row["invoice_id"],
        object_id=row["object_id"], actor=row["actor"], client=row["client"],
        detail=json.loads(row["detail"] or "{}"),
    )
