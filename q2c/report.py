"""The run summary a data engineer reads after the nightly job: what came in, what was
quarantined or held back and why, what was rendered and sent, and the headline KPIs.

Everything is read back from the warehouse for one run id, so the summary of a run says what
that run did, not what earlier runs left behind; the holds are those in force, since a run
that found its data unchanged keeps the holds an earlier run found.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import duckdb

from q2c.money import is_iso_currency, minor_units
from q2c.settings import Seller, Settings
from q2c.warehouse import OPS_SCHEMA

_LIST_LIMIT = 25


def _rows(conn: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[tuple]:
    try:
        return conn.execute(sql, params or []).fetchall()
    except (duckdb.CatalogException, duckdb.BinderException):
        return []  # a mart this deployment does not build (yet): its section says so


def latest_run_id(conn: duckdb.DuckDBPyConnection) -> str | None:
    rows = _rows(
        conn, f"select run_id from {OPS_SCHEMA}.ingest_report order by loaded_at desc limit 1"
    )
    return rows[0][0] if rows else None


def _amount(value: Decimal, currency: str) -> str:
    places = minor_units(currency) if is_iso_currency(currency) else 2
    return f"{Decimal(value):,.{places}f}"


def _more(total: int, shown: int, where: str) -> list[str]:
    return [f"  … {total - shown} more in {where}"] if total > shown else []


def _ingest(conn, run_id: str) -> list[str]:
    lines = ["Ingest (rows loaded / quarantined, per raw table):"]
    for source, table, loaded, quarantined, status, missing, message in _rows(
        conn,
        f"select source, table_name, rows_loaded, rows_quarantined, status, missing_columns, "
        f"message from {OPS_SCHEMA}.ingest_report where run_id = ? order by source, table_name",
        [run_id],
    ):
        note = "" if status == "loaded" else f"  {status}"
        if message:
            note += f": {message}"
        elif missing:
            note += f": columns added empty: {missing.replace(',', ', ')}"
        lines.append(f"  raw_{source}.{table:<24} {loaded:>7} / {quarantined:<5}{note}")

    rows = _rows(
        conn,
        f"select file, row_number, coalesce(field, '-'), reason from {OPS_SCHEMA}.quarantine "
        f"where stage = 'ingest' and run_id = ? order by file, row_number",
        [run_id],
    )
    lines += ["", "Rows quarantined at ingest (file:line, field, reason):"]
    lines += [f"  {file}:{line}  {field}  {reason}" for file, line, field, reason
              in rows[:_LIST_LIMIT]] or ["  none"]
    return lines + _more(len(rows), _LIST_LIMIT, f"{OPS_SCHEMA}.quarantine")


def _quality(conn, run_id: str) -> list[str]:
    # Each step replaces its own holds, so the table holds exactly those in force. A step that
    # found its data and rules unchanged keeps the holds of the run that validated them.
    holds = _rows(
        conn,
        f"select invoice_id, any_value(invoice_number), string_agg(distinct reason, '; '), "
        f"bool_and(run_id <> ?) from {OPS_SCHEMA}.invoice_holds group by invoice_id "
        f"order by 1",
        [run_id],
    )
    lines = ["", "Invoices held back (quality rules, unreadable rows, e-invoice rules; not sent):"]
    lines += [f"  invoice {invoice_id} ({number or 'no number'}): {reasons}"
              + (" (found by an earlier run; data and rules unchanged)" if kept else "")
              for invoice_id, number, reasons, kept in holds[:_LIST_LIMIT]] or ["  none"]
    lines += _more(len(holds), _LIST_LIMIT, f"{OPS_SCHEMA}.invoice_holds")

    warnings = _rows(
        conn,
        f"select suite || '.' || expectation, unexpected_count, unexpected_ids "
        f"from {OPS_SCHEMA}.quality_results where run_id = ? and not success "
        f"and severity = 'warn' order by 1",
        [run_id],
    )
    lines += ["", "Quality warnings (reported, invoices not held):"]
    lines += [f"  {rule}: {count} rows (ids {ids[:80]})" for rule, count, ids in warnings] or [
        "  none"]

    rejected = _rows(
        conn,
        f"select record_id, table_name, field, reason from {OPS_SCHEMA}.quarantine "
        f"where stage = 'documents' and run_id = ? order by 1",
        [run_id],
    )
    if rejected:
        lines += ["", "Invoices that could not be printed:"]
        lines += [f"  invoice {invoice_id}: {table}.{field}: {reason}"
                  for invoice_id, table, field, reason in rejected[:_LIST_LIMIT]]
    return lines


def _documents_and_delivery(conn, run_id: str, settings: Settings) -> list[str]:
    rendered = _rows(conn, f"select count(*) from {OPS_SCHEMA}.document_manifest "
                           "where run_id = ?", [run_id])[0][0]
    stored = _rows(conn, f"select count(*) from {OPS_SCHEMA}.document_manifest")[0][0]
    einvoices = _rows(conn, f"select format, count(*) from {OPS_SCHEMA}.einvoice_manifest "
                            "group by 1 order by 1")
    lines = ["", f"Documents: {rendered} PDFs rendered this run, {stored} in the document store "
                 f"({settings.documents_dir})"]
    if einvoices:
        lines.append("E-invoices stored: " + ", ".join(f"{n} {fmt}" for fmt, n in einvoices))
    return lines + _delivery(settings, run_id)


def _delivery(settings: Settings, run_id: str) -> list[str]:
    """Outbox and review state from the operational store (the truth, not the copies)."""
    import sqlite3

    if not settings.ops_store.is_file():
        return ["Delivery: nothing queued yet"]
    store = sqlite3.connect(f"file:{settings.ops_store}?mode=ro", uri=True)
    try:
        sent = store.execute(
            "select coalesce(sent_channel, '?'), count(*) from outbox where status = 'sent' "
            "group by 1 order by 1").fetchall()
        this_run = store.execute(
            "select channel, count(*) from delivery_events where event = 'sent' and "
            "run_id = ? group by 1 order by 1", [run_id]).fetchall()
        states = store.execute(
            "select status, count(*) from outbox where status != 'sent' group by 1 order by 1"
        ).fetchall()
        pending = store.execute(
            "select count(*) from review_queue where status = 'pending'").fetchone()[0]
    except sqlite3.OperationalError:
        return ["Delivery: nothing queued yet"]
    finally:
        store.close()
    where = (f"outbox {settings.outbox_dir}" if settings.mail_channel == "eml"
             else settings.mail_channel)
    lines = [f"Delivered this run (email via {where}, portal {settings.portal_store}, "
             f"e-invoices to {settings.einvoice_target}): "
             + (", ".join(f"{n} by {channel}" for channel, n in this_run) or "none"),
             "  delivered in all runs: "
             + (", ".join(f"{n} by {channel}" for channel, n in sent) or "none yet")]
    if states:
        lines.append("  not delivered yet: " + ", ".join(f"{n} {s}" for s, n in states))
    if pending:
        lines.append(f"  waiting for review approval: {pending} (q2c review list)")
    return lines


def _aging(conn) -> list[str]:
    rows = _rows(
        conn,
        "select currency, sum(current_amount), sum(days_1_30_amount), sum(days_31_60_amount), "
        "sum(days_61_90_amount), sum(days_over_90_amount), sum(total_open_amount) "
        "from kpi.kpi_ar_aging group by currency order by currency",
    )
    header = ("currency", "current", "1-30", "31-60", "61-90", "90+", "total open")
    lines = ["", "AR aging (kpi.kpi_ar_aging, open ERP balances by days past due):",
             "  " + "".join(f"{h:>16}" for h in header)]
    for currency, *amounts in rows:
        lines.append("  " + f"{currency:>16}" + "".join(
            f"{_amount(a or 0, currency):>16}" for a in amounts))
    return lines if rows else lines[:2] + ["  no open invoices"]


def _reconciliation(conn, settings_is_demo: bool) -> list[str]:
    """Tonight's reconciliation exceptions, so a difference is read in the summary, not only
    in the BI tool."""
    rows = _rows(
        conn,
        "select reason_code, currency, count(*), sum(difference_amount) "
        "from core.mart_reconciliation_exceptions group by 1, 2 order by 1, 2",
    )
    lines = ["", "Reconciliation exceptions (core.mart_reconciliation_exceptions, "
                 "count and summed difference per currency):"]
    lines += [f"  {reason}: {count} {currency or '-'} {_amount(total or 0, currency or '')}"
              for reason, currency, count, total in rows] or ["  none"]
    explained = _rows(
        conn,
        "with own as (select invoice_key, sum(amount) as amount from core.fct_cash_applications "
        "where not is_erp_recorded group by 1) "
        "select count(*) from core.mart_reconciliation_exceptions e join own using (invoice_key) "
        "where e.check_name = 'invoice_balance' and e.difference_amount = own.amount",
    )
    if explained and explained[0][0]:
        lines.append(f"  of these, {explained[0][0]} invoice balances differ by exactly the cash "
                     "q2c allocated by its own rules and the ERP has not applied "
                     "(core.fct_cash_applications, is_erp_recorded false): apply it in the ERP")
        if settings_is_demo:
            lines.append("  (the demo data overpays a few invoices on purpose; the ERP leaves "
                         "that cash unapplied and q2c's oldest_first rule applies it)")
    return lines


def _unallocated(conn) -> list[str]:
    rows = _rows(
        conn,
        "select currency, count(*), sum(unallocated_amount) from core.mart_unallocated_cash "
        "group by 1 order by 1",
    )
    lines = ["", "Unallocated cash and credit (core.mart_unallocated_cash, no invoice took it):"]
    lines += [f"  {currency}: {count} items, {_amount(total or 0, currency)}"
              for currency, count, total in rows] or ["  none"]
    return lines


def _dunning(conn, settings: Settings) -> list[str]:
    """What dunning owes tonight and whether it is sent: off by default, it only reports."""
    actions = dict(_rows(
        conn, "select dunning_action, count(*) from kpi.mart_dunning_actions group by 1"))
    suppressed = _rows(
        conn,
        "select suppressed_reason, count(*) from kpi.mart_dunning_actions "
        "where dunning_action = 'suppressed' group by 1 order by 1",
    )
    due = actions.get("remind", 0) + actions.get("hand_over", 0)
    state = ("on: due reminders are queued and sent" if settings.dunning_enabled
             else "off (Q2C_DUNNING_ENABLED): nothing is sent, the counts say what would be")
    lines = ["", f"Dunning (kpi.mart_dunning_actions), {state}:"]
    if not actions:
        return lines + ["  no dunning actions (mart not built or no open invoice)"]
    lines.append(f"  reminders due: {due} ({actions.get('remind', 0)} to customers, "
                 f"{actions.get('hand_over', 0)} handed over to account owners)")
    lines.append("  suppressed: " + (", ".join(f"{n} {reason}" for reason, n in suppressed)
                                     or "none"))
    return lines


def build_summary(
    conn: duckdb.DuckDBPyConnection, settings: Settings, run_id: str | None = None
) -> str:
    """The summary of one run (the latest by default) as plain text."""
    run_id = run_id or latest_run_id(conn)
    if run_id is None:
        return "q2c has not run yet: `q2c run --landing DIR` loads a landing folder."

    lines = [f"q2c nightly run {run_id}, business date {settings.run_date}", ""]
    if settings.seller == Seller():
        lines += [f"Seller: the demo seller {settings.seller.name}; give the seller: block in "
                  "q2c.yaml before any real invoice goes out.", ""]
    lines += _ingest(conn, run_id)
    lines += _quality(conn, run_id)
    lines += _documents_and_delivery(conn, run_id, settings)
    lines += _aging(conn)
    lines += _reconciliation(conn, settings.seller == Seller())
    lines += _unallocated(conn)
    lines += _dunning(conn, settings)
    lines += ["", f"Warehouse: {settings.warehouse_path}",
              f"Dagster UI on the same data: make ui (DAGSTER_HOME={settings.dagster_home})"]
    return "\n".join(lines)


def summary_path(home: Path) -> Path:
    return home / "last_run_summary.txt"


def write_summary(text: str, home: Path) -> Path:
    path = summary_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    return path


@dataclass(frozen=True)
class RunCounts:
    """The numbers of one run: what came in, what was held or failed, what went out."""

    tables_loaded: int
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    quality_rules_failed: int
    invoices_held: int
    documents_rendered: int
    einvoices_built: int
    deliveries_sent: int
    failed_over: int
    dead_letters: int
    waiting_for_review: int


def run_counts(conn: duckdb.DuckDBPyConnection, settings: Settings, run_id: str) -> RunCounts:
    """Count what one run did, from the same records `build_summary` reads."""
    ingest = _rows(
        conn,
        f"select count(*), coalesce(sum(rows_read), 0), coalesce(sum(rows_loaded), 0), "
        f"coalesce(sum(rows_quarantined), 0) from {OPS_SCHEMA}.ingest_report where run_id = ?",
        [run_id],
    ) or [(0, 0, 0, 0)]
    tables, read, loaded, quarantined = (int(value) for value in ingest[0])

    def count(sql: str) -> int:
        rows = _rows(conn, sql, [run_id])
        return int(rows[0][0]) if rows else 0

    events = _ops_count(settings, "select event, count(*) from delivery_events "
                                  "where run_id = ? group by event", [run_id])
    pending = _ops_count(settings, "select 'pending', count(*) from review_queue "
                                   "where status = 'pending'", [])
    return RunCounts(
        tables_loaded=tables, rows_read=read, rows_loaded=loaded, rows_quarantined=quarantined,
        quality_rules_failed=count(f"select count(*) from {OPS_SCHEMA}.quality_results "
                                   "where run_id = ? and not success"),
        invoices_held=count(f"select count(distinct invoice_id) from {OPS_SCHEMA}.invoice_holds "
                            "where run_id = ?"),
        documents_rendered=count(f"select count(*) from {OPS_SCHEMA}.document_manifest "
                                 "where run_id = ?"),
        einvoices_built=count(f"select count(*) from {OPS_SCHEMA}.einvoice_manifest "
                              "where run_id = ?"),
        deliveries_sent=events.get("sent", 0),
        failed_over=events.get("failed_over", 0),
        dead_letters=events.get("dead_letter", 0),
        waiting_for_review=pending.get("pending", 0),
    )


def _ops_count(settings: Settings, sql: str, params: list) -> dict[str, int]:
    """`{label: count}` from the operational store; empty before anything was queued."""
    import sqlite3

    if not settings.ops_store.is_file():
        return {}
    store = sqlite3.connect(f"file:{settings.ops_store}?mode=ro", uri=True)
    try:
        return {str(label): int(n) for label, n in store.execute(sql, params).fetchall()}
    except sqlite3.OperationalError:
        return {}
    finally:
        store.close()
