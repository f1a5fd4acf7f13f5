"""Copy the outbox and its audit trail from the operational store into the warehouse.

dbt builds `fct_deliveries`, the dead-letter mart and the on-time delivery KPI from these
copies (`q2c_ops.outbox`, `q2c_ops.outbox_payloads`, `q2c_ops.delivery_events`). The copy
leaves out the payload bytes (documents live in the document store) and masks email
addresses to their domain, as the logs do. It is a full replacement taken from one
consistent snapshot of the store, committed in one warehouse transaction, so a reader
never sees half of a run and a rerun converges to the store.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sqlite3

import duckdb
import pandas as pd

from q2c.delivery.addresses import mask_address

logger = logging.getLogger(__name__)

OPS_SCHEMA = "q2c_ops"

# (column, warehouse type) per table, in the store's column names.
_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "outbox": (
        ("document_key", "varchar"), ("kind", "varchar"), ("invoice_id", "varchar"),
        ("invoice_number", "varchar"), ("document_id", "varchar"),
        ("account_key", "varchar"), ("plan", "varchar"), ("decision", "varchar"),
        ("channel_index", "integer"), ("status", "varchar"), ("attempts", "integer"),
        ("channel_attempts", "integer"), ("next_attempt_at", "timestamp"),
        ("claimed_by", "varchar"), ("lease_expires_at", "timestamp"),
        ("last_error", "varchar"), ("sent_attempt_key", "varchar"),
        ("sent_channel", "varchar"), ("sent_at", "timestamp"),
        ("receipt_location", "varchar"), ("receipt_reference", "varchar"),
        ("queued_at", "timestamp"), ("updated_at", "timestamp"), ("run_id", "varchar"),
    ),
    "outbox_payloads": (
        ("attempt_key", "varchar"), ("document_key", "varchar"), ("position", "integer"),
        ("channel", "varchar"), ("recipient", "varchar"), ("payload_sha256", "varchar"),
        ("payload_bytes", "bigint"), ("filename", "varchar"), ("content_type", "varchar"),
        ("sender_id", "varchar"), ("has_notice", "boolean"),
    ),
    "delivery_events": (
        ("seq", "bigint"), ("event_id", "varchar"), ("document_key", "varchar"),
        ("attempt_key", "varchar"), ("invoice_id", "varchar"), ("invoice_number", "varchar"),
        ("channel", "varchar"), ("event", "varchar"), ("detail", "varchar"),
        ("location", "varchar"), ("reference", "varchar"), ("run_id", "varchar"),
        ("occurred_at", "timestamp"), ("prev_hash", "varchar"), ("hash", "varchar"),
    ),
}

_SELECT = {
    "outbox": "select * from outbox order by queued_at, document_key",
    "outbox_payloads": (
        "select *, notice is not null as has_notice from outbox_payloads "
        "order by document_key, position"
    ),
    "delivery_events": "select * from delivery_events order by seq",
}

WAREHOUSE_DDL = f"create schema if not exists {OPS_SCHEMA};\n" + "\n".join(
    f"create table if not exists {OPS_SCHEMA}.{table} (\n    "
    + ",\n    ".join(f"{name} {kind}" for name, kind in columns)
    + "\n);"
    for table, columns in _COLUMNS.items()
)


def export_deliveries(
    store_conn: sqlite3.Connection, duck_conn: duckdb.DuckDBPyConnection
) -> dict[str, int]:
    """Replace the warehouse copies with the store's rows; return rows copied per table."""
    frames = _read_snapshot(store_conn)
    duck_conn.execute(WAREHOUSE_DDL)
    duck_conn.execute("begin transaction")
    try:
        for table, frame in frames.items():
            _replace(duck_conn, table, frame)
    except BaseException:
        duck_conn.execute("rollback")
        raise
    duck_conn.execute("commit")
    counts = {table: len(frame) for table, frame in frames.items()}
    logger.info("delivery records copied to the warehouse: %s", counts)
    return counts


def _read_snapshot(store_conn: sqlite3.Connection) -> dict[str, pd.DataFrame]:
    """All three tables from one read transaction, so they agree with each other."""
    store_conn.execute("begin")
    try:
        frames = {
            table: _frame(table, store_conn.execute(_SELECT[table]).fetchall())
            for table in _COLUMNS
        }
    finally:
        store_conn.execute("commit")
    return frames


def _frame(table: str, rows: list[sqlite3.Row]) -> pd.DataFrame:
    columns = _COLUMNS[table]
    records = [
        {name: _value(table, name, kind, row[name]) for name, kind in columns} for row in rows
    ]
    return pd.DataFrame.from_records(records, columns=[name for name, _ in columns])


def _value(table: str, name: str, kind: str, value: object) -> object:
    if value is None:
        return None
    if kind == "timestamp":
        # Naive UTC: the warehouse's convention for timestamp columns.
        moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return moment.astimezone(dt.UTC).replace(tzinfo=None)
    if kind == "boolean":
        return bool(value)
    if table == "outbox" and name == "plan":
        return " -> ".join(json.loads(str(value)))
    if table == "outbox_payloads" and name == "recipient" and "@" in str(value):
        return mask_address(str(value))
    return value


def _replace(duck_conn: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    columns = _COLUMNS[table]
    names = ", ".join(name for name, _ in columns)
    casts = ", ".join(f"cast({name} as {kind}) as {name}" for name, kind in columns)
    duck_conn.execute(f"delete from {OPS_SCHEMA}.{table}")
    if frame.empty:
        return
    duck_conn.register("q2c_delivery_export", frame)
    try:
        duck_conn.execute(
            f"insert into {OPS_SCHEMA}.{table} ({names}) "
            f"select {casts} from q2c_delivery_export"
        )
    finally:
        duck_conn.unregister("q2c_delivery_export")
