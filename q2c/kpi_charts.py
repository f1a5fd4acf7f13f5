"""Trend charts of the headline KPIs, drawn from the KPI marts as PNG files.

Finance reads the marts in a BI tool; these charts are the glance a data engineer gets in the
Dagster UI after each night: DSO by month (standard and countback, per currency), the AR
aging buckets month end by month end (one chart per currency, since currencies are never
added), and the dispute rate by month of issue.

Preparing the series (`dso_chart`, `aging_charts`, `dispute_chart`) is apart from drawing
them, so the values plotted can be checked against the marts. Values stay `Decimal` until
the drawing, where matplotlib needs floats for pixel positions only.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import duckdb

# The months shown: two years is enough for a trend and stays readable.
MONTHS_SHOWN = 24
WIDTH_PX, HEIGHT_PX, DPI = 1000, 500, 100
AGING_BUCKETS = (
    ("current_amount", "current"),
    ("days_1_30_amount", "1-30 days"),
    ("days_31_60_amount", "31-60 days"),
    ("days_61_90_amount", "61-90 days"),
    ("days_over_90_amount", "over 90 days"),
)


@dataclass(frozen=True)
class Series:
    label: str
    points: tuple[tuple[dt.date, Decimal], ...]


@dataclass(frozen=True)
class Chart:
    """One picture: its file stem, title, axis label and the series drawn in it."""

    name: str
    title: str
    y_label: str
    series: tuple[Series, ...]
    source: str
    stacked: bool = False


def _rows(conn: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    try:
        return conn.execute(sql).fetchall()
    except duckdb.CatalogException:
        return []


def _last_months(rows: list[tuple], months: int) -> list[tuple]:
    """Rows whose first column (a date) is among the last `months` distinct ones."""
    shown = set(sorted({row[0] for row in rows})[-months:])
    return [row for row in rows if row[0] in shown]


def dso_chart(conn: duckdb.DuckDBPyConnection, months: int = MONTHS_SHOWN) -> Chart:
    """DSO days per month and currency, standard and countback (`kpi.kpi_dso_monthly`).

    A month without credit sales has no standard DSO and leaves a gap in that line.
    """
    rows = _last_months(_rows(conn, (
        "select month_start, currency, dso_days, countback_dso_days from kpi.kpi_dso_monthly "
        "order by month_start, currency")), months)
    series = []
    for currency in sorted({row[1] for row in rows}):
        mine = [row for row in rows if row[1] == currency]
        series.append(Series(f"{currency} standard", tuple(
            (month, Decimal(dso)) for month, _, dso, _ in mine if dso is not None)))
        series.append(Series(f"{currency} countback", tuple(
            (month, Decimal(back)) for month, _, _, back in mine if back is not None)))
    return Chart("kpi_dso_monthly", "Days sales outstanding by month", "days",
                 tuple(series), "kpi.kpi_dso_monthly")


def aging_charts(conn: duckdb.DuckDBPyConnection, months: int = MONTHS_SHOWN) -> list[Chart]:
    """Open receivables by aging bucket at each snapshot day, one chart per currency.

    Each point is the bucket's sum over all accounts on that day
    (`kpi.kpi_ar_aging_history`); the buckets stack up to the total open amount.
    """
    sums = ", ".join(f"sum({column})" for column, _ in AGING_BUCKETS)
    rows = _last_months(_rows(conn, (
        f"select as_of_date, currency, {sums} from kpi.kpi_ar_aging_history "
        "group by as_of_date, currency order by as_of_date, currency")), months)
    charts = []
    for currency in sorted({row[1] for row in rows}):
        mine = [row for row in rows if row[1] == currency]
        series = tuple(
            Series(label, tuple((row[0], Decimal(row[2 + i] or 0)) for row in mine))
            for i, (_, label) in enumerate(AGING_BUCKETS)
        )
        charts.append(Chart(f"kpi_ar_aging_{currency.lower()}",
                            f"AR aging by bucket, {currency}", currency, series,
                            "kpi.kpi_ar_aging_history", stacked=True))
    return charts


def dispute_chart(conn: duckdb.DuckDBPyConnection, months: int = MONTHS_SHOWN) -> Chart:
    """Disputed invoices as a share of those issued, by month of issue (percent)."""
    rows = _last_months(_rows(conn, (
        "select issue_month, dispute_rate from kpi.kpi_dispute_rate order by issue_month")),
        months)
    points = tuple((month, Decimal(rate) * 100) for month, rate in rows if rate is not None)
    return Chart("kpi_dispute_rate", "Dispute rate by month of issue", "% of invoices",
                 (Series("dispute rate", points),), "kpi.kpi_dispute_rate")


def kpi_charts(conn: duckdb.DuckDBPyConnection, months: int = MONTHS_SHOWN) -> list[Chart]:
    return [dso_chart(conn, months), *aging_charts(conn, months), dispute_chart(conn, months)]


def render_png(chart: Chart) -> bytes:
    """The chart as a PNG of WIDTH_PX x HEIGHT_PX, drawn without a display (Agg)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    drawn = [series for series in chart.series if series.points]
    if not drawn:
        axes.text(0.5, 0.5, f"no data in {chart.source} yet", ha="center", va="center",
                  transform=axes.transAxes)
    elif chart.stacked:
        days = [day for day, _ in drawn[0].points]
        axes.stackplot(days, *[[float(v) for _, v in s.points] for s in drawn],
                       labels=[s.label for s in drawn])
    else:
        # One colour per currency: its standard line solid, its countback line dashed.
        groups = list(dict.fromkeys(series.label.split()[0] for series in drawn))
        for series in drawn:
            axes.plot([day for day, _ in series.points],
                      [float(value) for _, value in series.points],
                      marker="o", markersize=3, label=series.label,
                      color=f"C{groups.index(series.label.split()[0]) % 10}",
                      linestyle="--" if "countback" in series.label else "-")
    axes.set_title(chart.title)
    axes.set_ylabel(chart.y_label)
    axes.grid(True, alpha=0.3)
    if drawn:
        axes.legend(loc="upper left", fontsize="small")
    figure.autofmt_xdate()
    figure.text(0.99, 0.01, f"source: {chart.source}", ha="right", va="bottom",
                fontsize="x-small", color="grey")

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def write_charts(charts: list[Chart], folder: Path) -> dict[str, Path]:
    """Draw every chart into `folder/<name>.png`, replacing the last night's pictures."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for chart in charts:
        path = folder / f"{chart.name}.png"
        tmp = path.with_suffix(".png.tmp")
        tmp.write_bytes(render_png(chart))
        tmp.replace(path)
        written[chart.name] = path
    return written
