"""The nightly job and its schedule."""

from __future__ import annotations

import dagster as dg

NIGHTLY_JOB_NAME = "nightly_quote_to_cash"

nightly_job = dg.define_asset_job(
    NIGHTLY_JOB_NAME,
    selection=dg.AssetSelection.all(),
    description=(
        "Ingest CRM and ERP tables, rebuild the dbt models and KPI marts, check invoice "
        "quality, render the invoice PDFs and e-invoices of the invoices that passed, screen "
        "them for review and deliver them through the outbox, then build the delivery marts."
    ),
    executor_def=dg.in_process_executor,
    tags={"q2c/job": "nightly"},
)

# The job holds the documents asset, which is partitioned by issue date (in this same time
# zone); the schedule asks for no partition, so each night renders every invoice that is
# due (see the asset). A backfill of some days is launched on the asset, not on this job.
nightly_schedule = dg.ScheduleDefinition(
    name="nightly_quote_to_cash_schedule",
    job=nightly_job,
    cron_schedule="0 2 * * *",
    execution_timezone="Europe/Berlin",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every night at 02:00 in the seller's time zone.",
)
