"""The run summary a data engineer reads after the nightly job: what came in, what was
quarantined or held back and why, what was rendered and sent, and the headline KPIs."""

from __future__ import annotations

from pathlib import Path

import duckdb

from q2c.settings import Settings
from q2c.warehouse import OPS_SCHEMA


def _rows(conn: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[tuple]:
    try:
        return conn.execute(sql, params or []).fetchall()
    except duckdb.CatalogException:
        return []


def _latest_run(conn: duckdb.DuckDBPyConnection) -> str | None:
    rows = _rows(
        conn, f"select run_id from {OPS_SCHEMA}.ingest_report order by loaded_at desc limit 1"
    )
    return rows[0][0] if rows else None


def build_summary(conn: duckdb.DuckDBPyConnection, settings: Settings) -> str:
    """Return the summary of the latest run as plain text lines."""
    run_id = _latest_run(conn)
    lines = [f"q2c nightly run {run_id or '(none yet)'} as of {settings.run_date}", ""]

    lines.append("Ingest (rows loaded / quarantined, per raw table):")
    for source, table, loaded, quarantined, status, message in _rows(
        conn,
        f"select source, table_name, rows_loaded, rows_quarantined, status, message "
        f"from {OPS_SCHEMA}.ingest_report where run_id = ? order by source, table_name",
        [run_id],
    ):
        note = f"  {status}" if status != "loaded" else ""
        if message:
            note += f": {message}"
        lines.append(f"  raw_{source}.{table:<24} {loaded:>7} / {quarantined:<5}{note}")

    lines += ["", "Quarantined rows (q2c_ops.quarantine), by table and reason:"]
    quarantine = _rows(
        conn,
        f"select stage, source || '.' || table_name, reason, count(*) "
        f"from {OPS_SCHEMA}.quarantine group by all order by 1, 2, 4 desc limit 40",
    )
    lines += [f"  [{stage}] {table}: {count} x {reason}" for stage, table, reason, count
              in quarantine] or ["  none"]

    lines += ["", "Invoices held back from documents (q2c_ops.invoice_holds):"]
    holds = _rows(
        conn,
        f"select invoice_id, any_value(invoice_number), string_agg(distinct reason, '; ') "
        f"from {OPS_SCHEMA}.invoice_holds group by invoice_id order by 1 limit 40",
    )
    lines += [f"  invoice {invoice_id} ({number or 'no number'}): {reasons}"
              for invoice_id, number, reasons in holds] or ["  none"]

    documents = _rows(conn, f"select count(*), count(distinct invoice_id) "
                            f"from {OPS_SCHEMA}.document_manifest")
    deliveries = _rows(conn, f"select status, count(*) from {OPS_SCHEMA}.delivery_ledger "
                             "group by all order by 1")
    lines += ["", f"Documents: {documents[0][0] if documents else 0} PDFs in the manifest, "
                  f"in {settings.documents_dir}"]
    lines.append("Deliveries: " + (", ".join(f"{n} {s}" for s, n in deliveries) or "none")
                 + f" (mail channel {settings.mail_channel}"
                 + (f", outbox {settings.outbox_dir})" if settings.mail_channel == "eml" else ")"))

    aging = _rows(
        conn,
        "select currency, sum(current_amount), sum(days_1_30_amount), sum(days_31_60_amount), "
        "sum(days_61_90_amount), sum(days_over_90_amount), sum(total_open_amount) "
        "from kpi.kpi_ar_aging group by currency order by currency",
    )
    lines += ["", "AR aging (kpi.kpi_ar_aging): currency, current, 1-30, 31-60, 61-90, 90+, total"]
    lines += ["  " + "  ".join(str(v) for v in row) for row in aging] or ["  no open invoices"]

    lines += ["", f"Warehouse: {settings.warehouse_path}",
              f"Dagster UI on the same data: make ui (DAGSTER_HOME={settings.dagster_home})"]
    return "\n".join(lines)


def write_summary(text: str, home: Path) -> Path:
    path = home / "last_run_summary.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    return path
