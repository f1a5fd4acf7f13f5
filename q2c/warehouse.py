"""The warehouse connection and q2c's own operational tables.

The warehouse is a DuckDB file by default. Raw tables live in `raw_<source>` schemas, dbt
builds `staging`, `intermediate`, `core` and `kpi`, and q2c keeps its operational records
(ingest report, quarantine, quality holds, document and e-invoice manifests) in `q2c_ops`,
where `q2c.delivery.export` also copies the delivery outbox for dbt.
DuckDB allows one writing process per file, so callers open a connection for one step and
close it before dbt runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

OPS_SCHEMA = "q2c_ops"

OPS_DDL = f"""
create schema if not exists {OPS_SCHEMA};

create table if not exists {OPS_SCHEMA}.ingest_report (
    run_id varchar, source varchar, table_name varchar, file varchar,
    rows_read integer, rows_loaded integer, rows_quarantined integer,
    missing_columns varchar, extra_columns integer, status varchar, message varchar,
    loaded_at timestamp
);

create table if not exists {OPS_SCHEMA}.quarantine (
    run_id varchar, stage varchar, source varchar, table_name varchar, file varchar,
    row_number integer, record_id varchar, field varchar, reason varchar,
    raw_record varchar, detected_at timestamp
);

create table if not exists {OPS_SCHEMA}.quality_results (
    run_id varchar, suite varchar, asset varchar, expectation varchar, column_name varchar,
    severity varchar, success boolean, element_count integer, unexpected_count integer,
    unexpected_ids varchar, validated_at timestamp
);

create table if not exists {OPS_SCHEMA}.invoice_holds (
    run_id varchar, invoice_id varchar, invoice_number varchar, suite varchar,
    expectation varchar, reason varchar, held_at timestamp
);

create table if not exists {OPS_SCHEMA}.document_manifest (
    document_id varchar primary key, invoice_id varchar, invoice_number varchar,
    input_hash varchar, content_hash varchar, template_id varchar,
    template_version varchar, theme_id varchar, theme_version varchar, language varchar,
    path varchar, bytes integer, rendered_at timestamp, run_id varchar
);

create table if not exists {OPS_SCHEMA}.einvoice_manifest (
    document_id varchar primary key, invoice_id varchar, invoice_number varchar,
    format varchar, input_hash varchar, path varchar, sha256 varchar, receiver_id varchar,
    created_at timestamp, run_id varchar
);
"""


class WarehouseBusyError(RuntimeError):
    """Another process holds the DuckDB warehouse file."""


def ensure_ops_tables(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(OPS_DDL)


@contextmanager
def connect(path: Path, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse for one step and always close it, so dbt can take the file next."""
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise
        raise WarehouseBusyError(
            f"the warehouse {path} is in use by another process (another `q2c run`, or a run "
            "started from the Dagster UI); wait for it to finish, or point Q2C_HOME at "
            f"another folder. DuckDB said: {exc}"
        ) from exc
    try:
        if not read_only:
            ensure_ops_tables(conn)
        yield conn
    finally:
        conn.close()
