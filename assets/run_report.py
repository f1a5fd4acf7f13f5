"""The report every run leaves behind: its summary, and the KPI trend charts.

`run_summary` comes last in the nightly job, after the outbox and the delivery marts, and
puts the run's summary (`q2c.report`) on the run as Markdown with its numbers as metadata,
so the Dagster UI shows what each night did whoever started it. `kpi_trend_charts` draws the
headline KPIs (`q2c.kpi_charts`) into `$Q2C_HOME/reports/` and shows the pictures.
"""

import base64
from dataclasses import asdict

import dagster as dg

from assets.delivery import DELIVERY_EVENTS_KEY, OUTBOX_KEY
from assets.transform import q2c_delivery_marts
from orchestration.resources import Q2CSettings
from q2c.kpi_charts import kpi_charts, write_charts
from q2c.report import RunCounts, build_summary, run_counts
from q2c.warehouse import connect

RUN_SUMMARY_KEY = dg.AssetKey(["reports", "run_summary"])
KPI_CHARTS_KEY = dg.AssetKey(["reports", "kpi_trend_charts"])
KPI_MARTS = [dg.AssetKey(["kpi", name]) for name in
             ("kpi_dso_monthly", "kpi_ar_aging_history", "kpi_dispute_rate")]
_OWNERS = ["team:data-platform", "team:finance-ops"]
_LABELS = {
    "tables_loaded": "raw tables loaded",
    "rows_read": "rows read (in)",
    "rows_loaded": "rows loaded",
    "rows_quarantined": "rows quarantined",
    "quality_rules_failed": "quality rules failed",
    "invoices_held": "invoices held back",
    "documents_rendered": "PDFs rendered (out)",
    "einvoices_built": "e-invoices built (out)",
    "deliveries_sent": "deliveries sent",
    "failed_over": "failed over to the next channel",
    "dead_letters": "dead letters (every channel failed)",
    "waiting_for_review": "waiting for review (all runs)",
}


def failed_checks(instance: dg.DagsterInstance, run_id: str) -> dict[str, str]:
    """The asset checks that failed in this run so far, with their severity.

    In the nightly job every check step comes before this one: the in-process executor runs
    steps in order of their dependencies and the summary depends on the last assets.
    """
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION, limit=10_000).records
    failed = {}
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        if not evaluation.passed:
            key = evaluation.asset_check_key
            failed[f"{key.asset_key.to_user_string()}:{key.name}"] = evaluation.severity.value
    return failed


def summary_markdown(counts: RunCounts, checks: dict[str, str], text: str) -> str:
    rows = [f"| {_LABELS[name]} | {value} |" for name, value in asdict(counts).items()]
    rows.append(f"| asset checks failed | {len(checks)} |")
    failed = [f"- `{name}` ({severity})" for name, severity in sorted(checks.items())]
    return "\n".join([
        "| this run | count |", "|---|---:|", *rows, "",
        *(["**Failed checks**", "", *failed[:50], ""] if failed else []),
        "```", text, "```",
    ])


@dg.asset(
    key=RUN_SUMMARY_KEY,
    deps=[OUTBOX_KEY, DELIVERY_EVENTS_KEY, *q2c_delivery_marts.keys],
    group_name="reporting",
    owners=_OWNERS,
    kinds={"duckdb", "sqlite"},
)
def run_summary(context: dg.AssetExecutionContext, q2c: Q2CSettings):
    """What this run did: rows in, quarantined, checks failed, invoices held back, documents
    rendered, deliveries sent and failed over. The same summary `q2c run` prints."""
    settings = q2c.load()
    with connect(settings.warehouse_path, read_only=True) as conn:
        text = build_summary(conn, settings, context.run_id)
        counts = run_counts(conn, settings, context.run_id)
    checks = failed_checks(context.instance, context.run_id)

    context.log.info(
        "run summary: %d rows loaded, %d invoices held back, %d PDFs rendered, %d sent, "
        "%d failed over, %d checks failed", counts.rows_loaded, counts.invoices_held,
        counts.documents_rendered, counts.deliveries_sent, counts.failed_over, len(checks))
    return dg.MaterializeResult(metadata={
        **asdict(counts),
        "checks_failed": len(checks),
        "failed_checks": dg.MetadataValue.json(checks),
        "summary": dg.MetadataValue.md(summary_markdown(counts, checks, text)),
    })


@dg.asset(
    key=KPI_CHARTS_KEY,
    deps=KPI_MARTS,
    group_name="kpi",
    owners=["team:finance-data"],
    kinds={"duckdb", "matplotlib"},
)
def kpi_trend_charts(context: dg.AssetExecutionContext, q2c: Q2CSettings):
    """PNG trend charts of DSO, AR aging by bucket and dispute rate, in
    `$Q2C_HOME/reports/`, shown here as pictures (each file is replaced every run)."""
    settings = q2c.load()
    with connect(settings.warehouse_path, read_only=True) as conn:
        charts = kpi_charts(conn)
    written = write_charts(charts, settings.home / "reports")

    pictures = []
    for chart in charts:
        encoded = base64.b64encode(written[chart.name].read_bytes()).decode()
        pictures.append(f"### {chart.title}\n\n![{chart.title}](data:image/png;base64,"
                        f"{encoded})")
    context.log.info("KPI charts written to %s: %s", settings.home / "reports",
                     ", ".join(sorted(written)))
    return dg.MaterializeResult(metadata={
        "charts": dg.MetadataValue.md("\n\n".join(pictures)),
        "folder": dg.MetadataValue.path(str(settings.home / "reports")),
        "files": dg.MetadataValue.json({name: str(path) for name, path in written.items()}),
        "points": dg.MetadataValue.json({
            chart.name: sum(len(series.points) for series in chart.series)
            for chart in charts}),
    })
