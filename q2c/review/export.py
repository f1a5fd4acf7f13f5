"""Copy the review queue and its history into the warehouse (`q2c_ops`) for dbt.

The operational store is the truth; the warehouse tables are replaced whole on each export,
so the marts (`mart_review_queue`, `kpi_approval_sla`) always show one consistent moment:
both tables are read in one SQLite read transaction and written in one DuckDB transaction.
Times are UTC, written as timestamps without a time zone, as everywhere in the warehouse.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sqlite3
from decimal import Decimal
from typing import TYPE_CHECKING, NamedTuple

from q2c.review.queue import ensure_review_schema

if TYPE_CHECKING:
    import duckdb

logger = logging.getLogger(__name__)

REVIEW_WAREHOUSE_DDL = """
create schema if not exists q2c_ops;

create table if not exists q2c_ops.review_queue (
    invoice_id varchar, invoice_number varchar, document_kind varchar,
    account_key varchar, account_name varchar, currency varchar,
    total_amount decimal(20, 4), issue_date date, reasons varchar, rule_ids varchar,
    status varchar, queued_at timestamp, sla_hours integer, sla_due_at timestamp,
    decided_by varchar, decided_at timestamp, decision_reason varchar,
    policy_version varchar, policy_hash varchar, exported_at timestamp
);

create table if not exists q2c_ops.review_decisions (
    decision_id bigint, invoice_id varchar, invoice_number varchar, action varchar,
    actor varchar, acted_at timestamp, reason varchar, status_after varchar,
    policy_hash varchar, exported_at timestamp
);
"""

_QUEUE_COLUMNS = (
    "invoice_id, invoice_number, document_kind, account_key, account_name, currency, "
    "total_amount, issue_date, reasons, rule_ids, status, queued_at, sla_hours, sla_due_at, "
    "decided_by, decided_at, decision_reason, policy_version, policy_hash, exported_at"
)
_DECISION_COLUMNS = (
    "decision_id, invoice_id, invoice_number, action, actor, acted_at, reason, "
    "status_after, policy_hash, exported_at"
)


class ReviewExport(NamedTuple):
    queue_rows: int
    decision_rows: int


def ensure_review_warehouse_tables(duck_conn: duckdb.DuckDBPyConnection) -> None:
    """Create the q2c_ops review tables (empty) so the dbt sources exist before any export."""
    duck_conn.execute(REVIEW_WAREHOUSE_DDL)


def export_review(
    store_conn: sqlite3.Connection,
    duck_conn: duckdb.DuckDBPyConnection,
    now: dt.datetime | None = None,
) -> ReviewExport:
    """Replace q2c_ops.review_queue and q2c_ops.review_decisions with the store's rows."""
    exported_at = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(tzinfo=None)
    ensure_review_schema(store_conn)
    store_conn.execute("begin")
    try:
        queue = store_conn.execute("select * from review_queue order by invoice_id").fetchall()
        decisions = store_conn.execute(
            "select * from review_decisions order by decision_id"
        ).fetchall()
    finally:
        store_conn.execute("commit")

    ensure_review_warehouse_tables(duck_conn)
    duck_conn.execute("begin transaction")
    try:
        duck_conn.execute("delete from q2c_ops.review_queue")
        duck_conn.execute("delete from q2c_ops.review_decisions")
        if queue:
            duck_conn.executemany(
                f"insert into q2c_ops.review_queue ({_QUEUE_COLUMNS}) "
                f"values ({', '.join('?' for _ in range(20))})",
                [_queue_values(row, exported_at) for row in queue],
            )
        if decisions:
            duck_conn.executemany(
                f"insert into q2c_ops.review_decisions ({_DECISION_COLUMNS}) "
                f"values ({', '.join('?' for _ in range(10))})",
                [_decision_values(row, exported_at) for row in decisions],
            )
        duck_conn.execute("commit")
    except BaseException:
        duck_conn.execute("rollback")
        raise
    logger.info("review export: %d queued documents and %d decisions to q2c_ops",
                len(queue), len(decisions))
    return ReviewExport(len(queue), len(decisions))


def _queue_values(row: sqlite3.Row, exported_at: dt.datetime) -> list[object]:
    return [
        row["invoice_id"], row["invoice_number"], row["document_kind"], row["account_key"],
        row["account_name"], row["currency"],
        Decimal(row["total"]) if row["total"] is not None else None,
        dt.date.fromisoformat(row["issue_date"]) if row["issue_date"] else None,
        "; ".join(json.loads(row["reasons"])), row["rule_ids"], row["status"],
        _naive_utc(row["queued_at"]), row["sla_hours"], _naive_utc(row["sla_due_at"]),
        row["decided_by"], _naive_utc(row["decided_at"]), row["decision_reason"],
        row["policy_version"], row["policy_hash"], exported_at,
    ]


def _decision_values(row: sqlite3.Row, exported_at: dt.datetime) -> list[object]:
    return [
        row["decision_id"], row["invoice_id"], row["invoice_number"], row["action"],
        row["actor"], _naive_utc(row["acted_at"]), row["reason"], row["status_after"],
        row["policy_hash"], exported_at,
    ]


def _naive_utc(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC).replace(tzinfo=None)
