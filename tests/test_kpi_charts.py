"""The KPI trend charts: the series drawn equal the marts, and the PNGs are real images."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import duckdb
import pytest
from PIL import Image

from q2c.kpi_charts import (
    HEIGHT_PX,
    WIDTH_PX,
    aging_charts,
    dispute_chart,
    dso_chart,
    kpi_charts,
    render_png,
    write_charts,
)

D = dt.date


@pytest.fixture
def marts():
    """Three KPI marts by hand, in the shapes dbt builds them."""
    conn = duckdb.connect()
    conn.execute("create schema kpi")
    conn.execute("""create table kpi.kpi_dso_monthly (month_start date, currency varchar,
        dso_days decimal(18, 4), countback_dso_days decimal(18, 4))""")
    conn.execute("""insert into kpi.kpi_dso_monthly values
        ('2026-09-01', 'EUR', 40.5000, 38.0000),
        ('2026-10-01', 'EUR', null, 45.2500),
        ('2026-10-01', 'JPY', 30.0000, 31.0000)""")
    conn.execute("""create table kpi.kpi_ar_aging_history (as_of_date date, account_key varchar,
        currency varchar, current_amount decimal(18, 3), days_1_30_amount decimal(18, 3),
        days_31_60_amount decimal(18, 3), days_61_90_amount decimal(18, 3),
        days_over_90_amount decimal(18, 3))""")
    conn.execute("""insert into kpi.kpi_ar_aging_history values
        ('2026-09-30', 'a1', 'EUR', 100.00, 50.00, 0, 0, 0),
        ('2026-09-30', 'a2', 'EUR', 25.50, 0, 10.00, 0, 0),
        ('2026-10-31', 'a1', 'EUR', 0, 0, 0, 80.00, 0),
        ('2026-09-30', 'a3', 'JPY', 5000, 0, 0, 0, 1200)""")
    conn.execute("""create table kpi.kpi_dispute_rate (issue_month date,
        dispute_rate decimal(10, 4))""")
    conn.execute("""insert into kpi.kpi_dispute_rate values
        ('2026-09-01', 0.2500), ('2026-10-01', 0.0000)""")
    yield conn
    conn.close()


def _points(chart) -> dict[str, list[tuple[dt.date, Decimal]]]:
    return {series.label: list(series.points) for series in chart.series}


def test_dso_lines_are_per_currency_and_a_month_without_sales_is_a_gap(marts):
    assert _points(dso_chart(marts)) == {
        "EUR standard": [(D(2026, 9, 1), Decimal("40.5"))],
        "EUR countback": [(D(2026, 9, 1), Decimal("38")), (D(2026, 10, 1), Decimal("45.25"))],
        "JPY standard": [(D(2026, 10, 1), Decimal("30"))],
        "JPY countback": [(D(2026, 10, 1), Decimal("31"))],
    }


def test_aging_buckets_are_summed_over_accounts_per_day_and_currency(marts):
    eur, jpy = aging_charts(marts)

    # EUR on 09-30: current 100.00 + 25.50 = 125.50; 1-30 50.00; 31-60 10.00.
    # EUR on 10-31: only a1's 80.00, 61-90 days past due.
    assert (eur.name, eur.stacked) == ("kpi_ar_aging_eur", True)
    assert _points(eur) == {
        "current": [(D(2026, 9, 30), Decimal("125.50")), (D(2026, 10, 31), Decimal(0))],
        "1-30 days": [(D(2026, 9, 30), Decimal("50.00")), (D(2026, 10, 31), Decimal(0))],
        "31-60 days": [(D(2026, 9, 30), Decimal("10.00")), (D(2026, 10, 31), Decimal(0))],
        "61-90 days": [(D(2026, 9, 30), Decimal(0)), (D(2026, 10, 31), Decimal("80.00"))],
        "over 90 days": [(D(2026, 9, 30), Decimal(0)), (D(2026, 10, 31), Decimal(0))],
    }
    assert _points(jpy)["current"] == [(D(2026, 9, 30), Decimal(5000))]
    assert _points(jpy)["over 90 days"] == [(D(2026, 9, 30), Decimal(1200))]


def test_the_dispute_rate_is_drawn_in_percent(marts):
    # 0.2500 of the invoices = 25 %.
    assert _points(dispute_chart(marts)) == {
        "dispute rate": [(D(2026, 9, 1), Decimal("25")), (D(2026, 10, 1), Decimal("0"))]}


def test_only_the_last_months_are_shown(marts):
    assert _points(dso_chart(marts, months=1)) == {
        "EUR standard": [],
        "EUR countback": [(D(2026, 10, 1), Decimal("45.25"))],
        "JPY standard": [(D(2026, 10, 1), Decimal("30"))],
        "JPY countback": [(D(2026, 10, 1), Decimal("31"))],
    }


def test_every_chart_is_a_png_of_the_stated_size(marts):
    for chart in kpi_charts(marts):
        image = Image.open(io.BytesIO(render_png(chart)))
        image.verify()
        assert (image.format, image.size) == ("PNG", (WIDTH_PX, HEIGHT_PX)), chart.name


def test_charts_are_written_once_each_and_a_missing_mart_draws_an_empty_chart(tmp_path):
    conn = duckdb.connect()
    written = write_charts(kpi_charts(conn), tmp_path / "reports")

    assert sorted(written) == ["kpi_dispute_rate", "kpi_dso_monthly"]
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == [
        "kpi_dispute_rate.png", "kpi_dso_monthly.png"]
    with Image.open(written["kpi_dso_monthly"]) as image:
        assert image.size == (WIDTH_PX, HEIGHT_PX)
