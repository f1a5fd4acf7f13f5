"""Every nightly run ends with its summary and the KPI trend charts as metadata.

One small nightly run on generated data (6 accounts); its numbers are compared with what
the landed files, the written deliveries and the run's own events say.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import re
from collections import Counter
from decimal import Decimal
from email import policy
from email.parser import BytesParser
from pathlib import Path

import dagster as dg
import pytest
from PIL import Image

from assets.quality import quality_checks
from q2c.demo import DUPLICATE_KEY, MISSING_KEY, generate
from q2c.kpi_charts import HEIGHT_PX, MONTHS_SHOWN, WIDTH_PX
from q2c.money import minor_units
from q2c.report import build_summary
from q2c.settings import load_settings
from q2c.sources.landing import find_table_file, source_folder
from q2c.sources.schema import tables_of
from q2c.warehouse import OPS_SCHEMA, connect, ensure_ops_tables

AS_OF = dt.date(2026, 11, 30)
HOLD_KINDS = {"invalid_currency", "due_before_issue", "total_mismatch",
              "unparseable_line_amount"}


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    from orchestration.run import run_nightly

    root = tmp_path_factory.mktemp("run-summary")
    landing, home = root / "landing", root / "var"
    summary = generate(landing, seed=7, accounts=6, as_of=AS_OF)
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("Q2C_HOME", str(home))
        monkeypatch.setenv("Q2C_LANDING_DIR", str(landing))
        monkeypatch.setenv("Q2C_AS_OF", AS_OF.isoformat())
        monkeypatch.setenv("Q2C_MAIL_CHANNEL", "eml")
        monkeypatch.setenv("Q2C_RENDER_WORKERS", "2")
        monkeypatch.setenv("Q2C_DELIVERY_LOOKBACK_DAYS", "90")
        for name in ("Q2C_WAREHOUSE", "Q2C_DOCUMENTS_DIR", "Q2C_OUTBOX_DIR", "Q2C_CONFIG",
                     "Q2C_SOURCES", "Q2C_FRESHNESS"):
            monkeypatch.delenv(name, raising=False)
        result = run_nightly(instance=dg.DagsterInstance.ephemeral())
    assert result.success, result.summary
    return {"home": home, "landing": landing, "generated": summary, "run": result}


def _metadata(small_run, node: str) -> dict:
    events = small_run["run"].result.asset_materializations_for_node(node)
    return {name: value.value for name, value in events[0].metadata.items()}


def _records(path: Path) -> int:
    """Data records of a CSV with any value, as the loader counts what it read."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle))
    return sum(1 for row in rows[1:] if any(value.strip() for value in row))


def _current_invoices(path: Path) -> set[str]:
    """Invoice ids the ERP holds now: keyed, latest sync per id, not soft-deleted."""
    with path.open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["id"]]
    current: dict[str, dict] = {}
    for row in sorted(rows, key=lambda r: r["_fivetran_synced"] or ""):
        current[row["id"]] = row
    return {key for key, row in current.items() if row["_fivetran_deleted"].lower() != "true"}


def _written_deliveries(home: Path) -> int:
    """Invoices handed to a channel, counted from what each channel wrote."""
    emails = [path for path in home.joinpath("outbox").rglob("*.eml")
              if not BytesParser(policy=policy.default).parsebytes(
                  path.read_bytes())["X-Q2C-Account-Key"]]  # portal notices: with the portal
    edi = list(home.joinpath("edi-outbound").glob("*.json"))
    portal = list(home.joinpath("portal").glob("*/index/*.json"))
    return len(emails) + len(edi) + len(portal)


def test_the_summary_is_on_the_run_whoever_started_it(small_run):
    summary = _metadata(small_run, "reports__run_summary")
    run_id = small_run["run"].run_id

    assert f"q2c nightly run {run_id}, business date {AS_OF}" in summary["summary"]
    assert "| rows read (in) |" in summary["summary"]
    assert "Invoices held back" in summary["summary"]


def test_counts_in_equal_the_landed_files(small_run):
    summary = _metadata(small_run, "reports__run_summary")
    generated = small_run["generated"]
    tables = [table for source in ("salesforce", "quickbooks") for table in tables_of(source)]
    files = [find_table_file(source_folder(small_run["landing"], table.source), table)
             for table in tables]
    read = sum(_records(path) for path in files if path is not None)
    # The generator wrote one invoice row without its id and one older duplicate: both are
    # kept out at ingest.
    quarantined = len(generated.bad_rows[MISSING_KEY]) + len(generated.bad_rows[DUPLICATE_KEY])

    assert summary["tables_loaded"] == len(tables)
    assert summary["rows_read"] == read
    assert summary["rows_quarantined"] == quarantined == 2
    assert summary["rows_loaded"] == read - quarantined


def test_held_back_and_rendered_invoices_add_up_to_the_current_ones(small_run):
    summary = _metadata(small_run, "reports__run_summary")
    generated = small_run["generated"]
    held = {row.invoice_id for kind in HOLD_KINDS for row in generated.bad_rows[kind]}
    current = _current_invoices(small_run["landing"] / "quickbooks" / "invoice.csv")

    assert summary["invoices_held"] == len(held) == 4
    assert summary["documents_rendered"] == len(current - held)


def test_sent_and_failed_over_equal_what_the_channels_received(small_run):
    summary = _metadata(small_run, "reports__run_summary")
    outbox = _metadata(small_run, "outbox")

    assert summary["deliveries_sent"] == _written_deliveries(small_run["home"]) > 0
    assert summary["deliveries_sent"] == outbox["sent"]
    assert summary["failed_over"] == outbox["failovers"]
    assert summary["dead_letters"] == outbox["dead_letters"]
    assert summary["waiting_for_review"] == _metadata(small_run, "review_queue")[
        "pending_total"]


def test_failed_checks_are_those_the_run_recorded(small_run):
    summary = _metadata(small_run, "reports__run_summary")
    evaluations = small_run["run"].result.get_asset_check_evaluations()
    failed = {f"{e.asset_key.to_user_string()}:{e.check_name}": e.severity.value
              for e in evaluations if not e.passed}
    quality = {key for check in quality_checks for key in check.check_keys}
    failed_rules = [e for e in evaluations
                    if not e.passed and e.asset_check_key in quality]

    assert summary["failed_checks"] == failed and summary["checks_failed"] == len(failed)
    assert summary["quality_rules_failed"] == len(failed_rules) > 0


def test_the_kpi_charts_are_pngs_in_home_reports_and_in_the_metadata(small_run):
    charts = _metadata(small_run, "reports__kpi_trend_charts")
    folder = small_run["home"] / "reports"
    files = {name: Path(path) for name, path in charts["files"].items()}

    assert files["kpi_dso_monthly"] == folder / "kpi_dso_monthly.png"
    assert {"kpi_dso_monthly", "kpi_dispute_rate", "kpi_ar_aging_eur"} <= set(files)
    embedded = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)\)", charts["charts"])
    assert len(embedded) == len(files)
    assert {base64.b64decode(data) for data in embedded} == {
        path.read_bytes() for path in files.values()}
    for path in files.values():
        with Image.open(path) as image:
            assert (image.format, image.size) == ("PNG", (WIDTH_PX, HEIGHT_PX))


def test_the_charts_draw_one_point_per_mart_row_of_the_months_shown(small_run):
    points = _metadata(small_run, "reports__kpi_trend_charts")["points"]
    with connect(small_run["home"] / "warehouse.duckdb", read_only=True) as conn:
        disputes = conn.execute(
            "select count(dispute_rate) from (select dispute_rate from kpi.kpi_dispute_rate "
            "order by issue_month desc limit ?)", [MONTHS_SHOWN]).fetchone()[0]
        eur_days = conn.execute(
            "select count(distinct as_of_date) from kpi.kpi_ar_aging_history "
            "where currency = 'EUR' and as_of_date in (select distinct as_of_date "
            "from kpi.kpi_ar_aging_history order by as_of_date desc limit ?)",
            [MONTHS_SHOWN]).fetchone()[0]

    # The dispute mart has one row per month of issue; a month's rate is one point.
    assert points["kpi_dispute_rate"] == disputes > 0
    # Five buckets, one point each per snapshot day shown.
    assert points["kpi_ar_aging_eur"] == 5 * eur_days > 0


def _money_text(total: Decimal, currency: str) -> str:
    """How the summary prints an amount: the currency's minor units, thousands separated."""
    return f"{total:,.{minor_units(currency)}f}"


def test_the_summary_names_reconciliation_unallocated_cash_and_dunning(small_run):
    summary = small_run["run"].summary
    with connect(small_run["home"] / "warehouse.duckdb", read_only=True) as conn:
        exceptions = conn.execute("select reason_code, currency, difference_amount "
                                  "from core.mart_reconciliation_exceptions").fetchall()
        unallocated = conn.execute("select currency, unallocated_amount "
                                   "from core.mart_unallocated_cash").fetchall()
        actions = conn.execute("select dunning_action, suppressed_reason "
                               "from kpi.mart_dunning_actions").fetchall()

    # Exceptions: one line per reason and currency, the count and the summed difference.
    by_reason: dict[tuple[str, str], list[Decimal]] = {}
    for reason, currency, difference in exceptions:
        by_reason.setdefault((reason, currency), []).append(Decimal(difference or 0))
    for (reason, currency), differences in by_reason.items():
        assert (f"  {reason}: {len(differences)} {currency} "
                f"{_money_text(sum(differences), currency)}") in summary
    # Unallocated cash: one line per currency, items and their sum.
    by_currency: dict[str, list[Decimal]] = {}
    for currency, amount in unallocated:
        by_currency.setdefault(currency, []).append(Decimal(amount))
    assert by_currency, "the generated payments leave some cash unallocated"
    for currency, amounts in by_currency.items():
        assert (f"  {currency}: {len(amounts)} items, "
                f"{_money_text(sum(amounts), currency)}") in summary
    # Dunning, off by default: what is due is `remind` plus `hand_over`; suppressed by reason.
    due = Counter(action for action, _ in actions)
    suppressed = Counter(reason for action, reason in actions if action == "suppressed")
    assert due["remind"] > 0
    assert "Dunning (kpi.mart_dunning_actions), off (Q2C_DUNNING_ENABLED)" in summary
    assert (f"  reminders due: {due['remind'] + due['hand_over']} ({due['remind']} to "
            f"customers, {due['hand_over']} handed over to account owners)") in summary
    assert "  suppressed: " + (", ".join(f"{n} {reason}" for reason, n in sorted(
        suppressed.items())) or "none") in summary


def test_the_summary_lists_every_failed_asset_check_of_the_run(small_run):
    run = small_run["run"]
    failed = sorted(
        (e.asset_key.to_user_string(), e.check_name, e.severity.value.lower())
        for e in run.result.get_asset_check_evaluations() if not e.passed)

    assert failed
    assert f"Failed asset checks of this run ({len(failed)}):" in run.summary
    for asset, check, severity in failed:
        assert f"\n  {asset}: {check} ({severity})" in run.summary
    assert run.summary_path.read_text() == run.summary + "\n"


def test_a_warehouse_without_the_marts_still_gets_a_summary(tmp_path, monkeypatch):
    """Only the ingest record exists: every mart section says there is nothing, none fails."""
    monkeypatch.setenv("Q2C_HOME", str(tmp_path))
    monkeypatch.delenv("Q2C_CONFIG", raising=False)
    settings = load_settings()
    with connect(tmp_path / "warehouse.duckdb") as conn:
        ensure_ops_tables(conn)
        conn.execute(f"insert into {OPS_SCHEMA}.ingest_report (run_id, source, table_name, "
                     "rows_loaded, rows_quarantined, status, loaded_at) values "
                     "('run-1', 'quickbooks', 'invoice', 3, 0, 'loaded', now())")
        summary = build_summary(conn, settings)

    assert "q2c nightly run run-1" in summary
    assert "Reconciliation exceptions (core.mart_reconciliation_exceptions" in summary
    assert "Unallocated cash and credit (core.mart_unallocated_cash" in summary
    assert "  no dunning actions (mart not built or no open invoice)" in summary


def test_holds_kept_from_an_earlier_run_are_listed_as_still_in_force(tmp_path, monkeypatch):
    monkeypatch.setenv("Q2C_HOME", str(tmp_path))
    for name in ("Q2C_WAREHOUSE", "Q2C_CONFIG", "Q2C_OPS_STORE"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    with connect(settings.warehouse_path) as conn:
        conn.execute(
            f"insert into {OPS_SCHEMA}.invoice_holds values "
            "('run-1', 'i1', 'INV-1', 'invoices', 'e1', 'no tax lines', now()), "
            "('run-2', 'i2', 'INV-2', 'einvoice', 'e2', 'BR-CO-15', now())")
        summary = build_summary(conn, settings, "run-2")

    held = summary.split("Invoices held back", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    assert held == [
        "  invoice i1 (INV-1): no tax lines (found by an earlier run; data and rules unchanged)",
        "  invoice i2 (INV-2): BR-CO-15",
    ]
