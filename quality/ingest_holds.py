"""Hold back invoices that lost a row at ingest.

A row of an invoice, its lines or its tax lines that could not be read (bad bytes, a broken
line) is quarantined at ingest, and the invoice would otherwise go out without it: without a
tax breakdown, without a line, or as a stale version of a row the ERP has since deleted. The
ingest step records such rows with the invoice's key; this turns them into holds, kept and
released like the holds of the quality suites (suite `ingest`).
"""

from __future__ import annotations

import datetime as dt
import json

import duckdb

from q2c.warehouse import OPS_SCHEMA, ensure_ops_tables

SUITE = "ingest"
RULE = "every_row_of_the_invoice_was_read"
_INVOICE_TABLES = ("invoice", "invoice_line", "invoice_tax_line")


def hold_invoices_with_unreadable_rows(
    conn: duckdb.DuckDBPyConnection, run_id: str
) -> dict[str, str]:
    """Record a hold for every invoice with a row quarantined at ingest in this run."""
    ensure_ops_tables(conn)
    rows = conn.execute(
        f"""
        select split_part(record_id, '|', 1) as invoice_id, table_name, file, row_number,
               reason
        from {OPS_SCHEMA}.quarantine
        where stage = 'ingest' and run_id = ? and source = 'quickbooks'
          and table_name in {_INVOICE_TABLES}
          and record_id is not null and reason not like 'duplicate key%'
        order by 1, file, row_number
        """,
        [run_id],
    ).fetchall()
    holds: dict[str, str] = {}
    for invoice_id, table, file, line, reason in rows:
        holds.setdefault(
            invoice_id, f"a row of {table} could not be read ({file}, line {line}: {reason})"
        )

    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    conn.execute(f"delete from {OPS_SCHEMA}.invoice_holds where suite = ?", [SUITE])
    if holds:
        conn.executemany(
            f"insert into {OPS_SCHEMA}.invoice_holds (run_id, invoice_id, invoice_number, "
            "suite, expectation, reason, held_at) values (?, ?, null, ?, ?, ?, ?)",
            [[run_id, invoice_id, SUITE, RULE, reason, now] for invoice_id, reason in
             holds.items()],
        )
    conn.execute(
        f"insert into {OPS_SCHEMA}.quality_results (run_id, suite, asset, expectation, "
        "column_name, severity, success, element_count, unexpected_count, unexpected_ids, "
        "validated_at) values (?, ?, 'raw_quickbooks.invoice', ?, null, 'error', ?, null, ?, "
        "?, ?)",
        [run_id, SUITE, RULE, not holds, len(holds), json.dumps(sorted(holds)), now],
    )
    return holds
