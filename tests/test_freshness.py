"""Freshness of the raw tables, judged by the sync times in the data.

The landed QuickBooks files carry hand-set `_fivetran_synced` stamps; the run is pinned to
business day 2026-06-30, so every table is judged at 2026-07-01 00:00 UTC.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

import dagster as dg
import pytest

from assets.freshness import CHECK_NAME, build_freshness_checks
from orchestration.resources import Q2CSettings
from q2c.freshness import (
    FRESH,
    LANDING_FILE,
    LATE,
    SYNC_COLUMN,
    UNKNOWN,
    VERY_LATE,
    FreshnessLimits,
    LastSync,
    assess,
    last_syncs,
    parse_freshness,
    reference_time,
)
from q2c.settings import ConfigError, load_settings
from q2c.sources.landing import load_source
from q2c.warehouse import connect

AS_OF = dt.date(2026, 6, 30)
JUDGED_AT = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
FILE_TIME = dt.datetime(2026, 6, 30, 20, 0, tzinfo=dt.UTC)
HOURS = dt.timedelta(hours=1)


def _write(path: Path, header: str, *rows: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n")


def _land_quickbooks(landing: Path) -> None:
    """Hand-set stamps, judged at 2026-07-01 00:00 UTC with the 26 h / 50 h defaults.

    invoice: newest 06-30 9:30 (a one-digit hour, as Fivetran's exports write it; an older
    row too): 14.5 h, fresh. customer: 06-29 12:00, 36 h: late. payment: 06-27 00:00 at
    +02:00 = 06-26 22:00 UTC, 4 days and 2 h = 98 h: very late. invoice_line: no sync
    column, file modified 06-30 20:00 UTC, 4 h: fresh by its file. No other table has a
    file: unknown."""
    folder = landing / "quickbooks"
    _write(folder / "invoice.csv", "id,doc_number,_fivetran_synced",
           "1,INV-1,2026-06-01 08:00:00", "2,INV-2,2026-06-30 9:30:00")
    _write(folder / "customer.csv", "id,display_name,_fivetran_synced",
           "10,Acme,2026-06-29 12:00:00.000")
    _write(folder / "payment.csv", "id,total_amount,_fivetran_synced",
           "20,10.00,2026-06-27T00:00:00+02:00")
    _write(folder / "invoice_line.csv", "invoice_id,index,amount", "1,0,10.00")
    stamp = FILE_TIME.timestamp()
    os.utime(folder / "invoice_line.csv", (stamp, stamp))


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("freshness")
    _land_quickbooks(home / "landing")
    path = home / "warehouse.duckdb"
    with connect(path) as conn:
        load_source(conn, home / "landing", "quickbooks", "run-freshness")
    return path


def _by_table(syncs: list[LastSync]) -> dict[str, LastSync]:
    return {last.relation.split(".")[1]: last for last in syncs}


def test_the_newest_sync_stamp_of_a_table_is_its_last_sync(warehouse):
    with connect(warehouse, read_only=True) as conn:
        syncs = _by_table(last_syncs(conn, "quickbooks"))

    assert syncs["invoice"].synced_at == dt.datetime(2026, 6, 30, 9, 30, tzinfo=dt.UTC)
    assert syncs["invoice"].basis == SYNC_COLUMN and syncs["invoice"].rows == 2
    assert syncs["customer"].synced_at == dt.datetime(2026, 6, 29, 12, tzinfo=dt.UTC)
    # 00:00 at +02:00 is 22:00 UTC the day before.
    assert syncs["payment"].synced_at == dt.datetime(2026, 6, 26, 22, tzinfo=dt.UTC)


def test_a_table_without_sync_stamps_falls_back_to_its_landing_file_time(warehouse):
    with connect(warehouse, read_only=True) as conn:
        line = _by_table(last_syncs(conn, "quickbooks"))["invoice_line"]

    assert line.synced_at == FILE_TIME
    assert line.basis == LANDING_FILE and line.where.endswith("invoice_line.csv")


def test_a_table_with_no_rows_and_no_file_has_no_known_sync(warehouse):
    with connect(warehouse, read_only=True) as conn:
        term = _by_table(last_syncs(conn, "quickbooks"))["term"]

    verdict = assess(term, FreshnessLimits(), JUDGED_AT)
    assert term.synced_at is None and verdict.status == UNKNOWN
    assert "cannot tell when it was last synced" in verdict.message


def test_limits_split_fresh_late_and_very_late_at_26_and_50_hours():
    limits = FreshnessLimits()

    def status(hours_ago: float) -> str:
        last = LastSync("raw_x.t", JUDGED_AT - dt.timedelta(hours=hours_ago), SYNC_COLUMN, 1)
        return assess(last, limits, JUDGED_AT).status

    assert [status(h) for h in (0, 26, 26.01, 50, 50.01)] == [
        FRESH, FRESH, LATE, LATE, VERY_LATE]


def test_a_pinned_business_day_is_judged_at_its_end_and_an_open_one_now():
    now = dt.datetime(2026, 12, 5, 1, 38, tzinfo=dt.UTC)

    assert reference_time(AS_OF, now) == JUDGED_AT
    assert reference_time(dt.date(2026, 12, 5), now) == now
    assert reference_time(None, now) == now


def test_limits_are_read_per_source_from_the_variable_and_q2c_yaml():
    text = parse_freshness("20/40, stripe=6h/24h")
    mapping = parse_freshness({"default": {"warn_after_hours": 30, "fail_after_hours": 60},
                               "hubspot": {"warn_after_hours": 2, "fail_after_hours": 5}})

    assert text.for_source("quickbooks") == FreshnessLimits(20 * HOURS, 40 * HOURS)
    assert text.for_source("stripe") == FreshnessLimits(6 * HOURS, 24 * HOURS)
    assert mapping.for_source("salesforce") == FreshnessLimits(30 * HOURS, 60 * HOURS)
    assert mapping.for_source("hubspot") == FreshnessLimits(2 * HOURS, 5 * HOURS)
    assert parse_freshness(None).for_source("stripe") == FreshnessLimits(26 * HOURS, 50 * HOURS)


@pytest.mark.parametrize(("value", "said"), [
    ("stripee=6/24", "unknown source(s) stripee"),
    ("50/26", "must be above 0 and below the fail limit"),
    ("26", "gives no fail limit"),
    ("a/b", "give hours as numbers"),
])
def test_wrong_limits_are_refused_with_the_fix(monkeypatch, value, said):
    monkeypatch.setenv("Q2C_FRESHNESS", value)

    with pytest.raises(ConfigError, match=re.escape(said)):
        load_settings()


def _run_checks(warehouse: Path, monkeypatch,
                limits: str | None) -> dict[str, dg.AssetCheckEvaluation]:
    """Run the QuickBooks freshness check as Dagster runs it, in a job on its own."""
    monkeypatch.setenv("Q2C_AS_OF", AS_OF.isoformat())
    if limits:
        monkeypatch.setenv("Q2C_FRESHNESS", limits)
    checks = build_freshness_checks(("quickbooks",))
    specs = [dg.AssetSpec(key.asset_key) for check in checks for key in check.check_keys]
    job = dg.define_asset_job("freshness_only", selection=dg.AssetSelection.checks(*checks))
    defs = dg.Definitions(assets=specs, asset_checks=checks, jobs=[job],
                          resources={"q2c": Q2CSettings(warehouse_path=str(warehouse))})

    result = defs.resolve_job_def("freshness_only").execute_in_process(
        instance=dg.DagsterInstance.ephemeral())

    assert result.success
    return {evaluation.asset_key.path[-1]: evaluation
            for evaluation in result.get_asset_check_evaluations()
            if evaluation.check_name == CHECK_NAME}


def test_the_check_passes_fresh_tables_warns_late_ones_and_errors_very_late_ones(
        warehouse, monkeypatch):
    evaluations = _run_checks(warehouse, monkeypatch, limits=None)
    warn, error = dg.AssetCheckSeverity.WARN, dg.AssetCheckSeverity.ERROR

    assert evaluations["invoice"].passed
    assert evaluations["invoice_line"].passed
    assert (evaluations["customer"].passed, evaluations["customer"].severity) == (False, warn)
    assert (evaluations["payment"].passed, evaluations["payment"].severity) == (False, error)
    assert (evaluations["term"].passed, evaluations["term"].severity) == (False, warn)


def test_the_check_reports_the_age_and_where_the_sync_time_came_from(warehouse, monkeypatch):
    evaluations = _run_checks(warehouse, monkeypatch, limits=None)
    customer = {k: v.value for k, v in evaluations["customer"].metadata.items()}
    line = {k: v.value for k, v in evaluations["invoice_line"].metadata.items()}

    # 2026-07-01 00:00 - 2026-06-29 12:00 = 36 h; 2026-07-01 00:00 - 06-30 20:00 = 4 h.
    assert customer["age_hours"] == 36.0 and customer["status"] == LATE
    assert customer["last_synced_at"] == dt.datetime(2026, 6, 29, 12, tzinfo=dt.UTC).timestamp()
    assert (customer["warn_after_hours"], customer["fail_after_hours"]) == (26.0, 50.0)
    assert line["age_hours"] == 4.0 and line["sync_time_from"].startswith(LANDING_FILE)


def test_a_source_with_stricter_limits_fails_sooner(warehouse, monkeypatch):
    """quickbooks=10/30: invoice (14.5 h) is late, customer (36 h) very late."""
    evaluations = _run_checks(warehouse, monkeypatch, limits="26/50,quickbooks=10/30")

    assert evaluations["invoice"].severity == dg.AssetCheckSeverity.WARN
    assert not evaluations["invoice"].passed
    assert evaluations["customer"].severity == dg.AssetCheckSeverity.ERROR
    assert evaluations["invoice_line"].passed
